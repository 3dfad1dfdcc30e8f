//! What the gateway tells sessions on a backend's behalf: list changes
//! (the catalog is rebuilt and `list_changed` sent when a kind really
//! changed), resource updates (to the subscribed sessions) and log messages
//! (to the sessions whose `logging/setLevel` lets them through, the logger
//! named after the backend).

use std::sync::{Arc, PoisonError};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Gateway;
use super::catalog::Catalog;
use crate::backend::{BackendEvent, ListKind};
use crate::call::{Call, Method};
use crate::jsonrpc::{self, ErrorObject};
use crate::session::Session;

/// MCP log levels, least severe first (RFC 5424 severities).
const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// A log level's rank in [`LOG_LEVELS`].
fn log_severity(level: &str) -> Option<u8> {
    LOG_LEVELS
        .iter()
        .position(|&known| known == level)
        .and_then(|rank| u8::try_from(rank).ok())
}

impl Gateway {
    /// `logging/setLevel` applies to every connected backend that offers logging.
    ///
    /// The session receives backend log messages from then on, at that
    /// level and above. Backends have one level for all clients: the last
    /// level set is the one they use.
    pub(super) async fn set_log_level(
        &self,
        session: &Session,
        params: Option<Value>,
    ) -> Result<Value, ErrorObject> {
        let level = params
            .as_ref()
            .and_then(|p| p.get("level"))
            .and_then(Value::as_str);
        let Some(severity) = level.and_then(log_severity) else {
            return Err(ErrorObject::new(
                jsonrpc::INVALID_PARAMS,
                format!("logging/setLevel needs a \"level\", one of {LOG_LEVELS:?}"),
            ));
        };
        session.set_log_severity(severity);
        for (index, backend) in self.backends().iter().enumerate() {
            if backend.is_connected()
                && backend.listing().capabilities.contains_key("logging")
                && self.may_hear(session, index)
            {
                // One backend refusing a level must not fail the others.
                let call = Call::new(Method::SetLogLevel, index, params.clone());
                let _ = self.forward(call).await;
            }
        }
        Ok(json!({}))
    }

    /// Consume backend events until every sender is gone: rebuild the catalog
    /// on listing changes and tell the sessions what changed.
    pub(crate) async fn run_events(
        self: Arc<Self>,
        mut events: mpsc::UnboundedReceiver<BackendEvent>,
    ) {
        while let Some(event) = events.recv().await {
            match event {
                BackendEvent::ListingChanged { kinds } => self.rebuild(&kinds),
                BackendEvent::Notification { backend, message } => self.relay(backend, message),
            }
        }
    }

    pub(super) fn rebuild(&self, kinds: &[ListKind]) {
        let rules: Vec<_> = self.shapers.iter().map(|s| &s.rules).collect();
        let fresh = Arc::new(Catalog::build(self.backends(), &rules, &self.separator));
        let previous = std::mem::replace(
            &mut *self.catalog.write().unwrap_or_else(PoisonError::into_inner),
            Arc::clone(&fresh),
        );
        let mut announced: Vec<&str> = Vec::new();
        for &kind in kinds {
            let notification = kind.list_changed();
            if previous.items(kind) != fresh.items(kind) && !announced.contains(&notification) {
                announced.push(notification);
            }
        }
        for notification in announced {
            let message = jsonrpc::notification(notification, None);
            for session in self.sessions.all() {
                session.push(&message);
            }
        }
    }

    fn relay(&self, backend: usize, message: Value) {
        let name = self.backends[backend].name();
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match method {
            "notifications/resources/updated" => {
                let uri = message
                    .pointer("/params/uri")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                for session in self.sessions.all().iter().filter(|s| s.is_subscribed(uri)) {
                    session.push(&message);
                }
            }
            "notifications/message" => {
                let mut message = message;
                if let Some(params) = message.get_mut("params").and_then(Value::as_object_mut) {
                    let logger = params
                        .get("logger")
                        .and_then(Value::as_str)
                        .map(|l| format!("{name}{}{l}", self.separator));
                    params.insert(
                        "logger".into(),
                        Value::String(logger.unwrap_or_else(|| name.to_owned())),
                    );
                }
                let severity = message
                    .pointer("/params/level")
                    .and_then(Value::as_str)
                    .and_then(log_severity)
                    .unwrap_or(0);
                let wanting: Vec<_> = self
                    .sessions
                    .all()
                    .into_iter()
                    .filter(|s| s.wants_log(severity))
                    .collect();
                for session in self.hearing(&wanting, backend) {
                    session.push(&message);
                }
            }
            _ => tracing::debug!(backend = name, method, "backend notification not relayed"),
        }
    }
}
