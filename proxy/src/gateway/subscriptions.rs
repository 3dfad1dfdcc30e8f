//! Resource subscriptions, shared between sessions: the backend hears
//! `resources/subscribe` from the first session that subscribes to a URI
//! only, and `resources/unsubscribe` when the last one leaves; its
//! `resources/updated` notifications go to every subscribed session (see
//! [`super::notify`]).
//!
//! Subscription changes are serialized under one async lock held across
//! the backend call, and a subscriber is recorded only once the backend
//! confirmed: a later session never answers `{}` for a subscription that
//! is still pending or failed, and a cancelled call leaves nothing behind.

use serde_json::{Value, json};

use super::Gateway;
use crate::call::{Call, Method};
use crate::jsonrpc::ErrorObject;
use crate::session::Session;

impl Gateway {
    pub(super) async fn subscribe(
        &self,
        session: &Session,
        params: Option<Value>,
    ) -> Result<Value, ErrorObject> {
        let method = Method::ResourcesSubscribe;
        let (uri, backend) = self.uri_target(session, method, params.as_ref())?;
        let mut subscribers = self.subscribers.lock().await;
        // The map holds only URIs with at least one subscriber.
        let result = if subscribers.contains_key(&uri) {
            json!({})
        } else {
            // Recorded before it is sent, so an endpoint that (re)connects
            // meanwhile renews it too (a duplicate renewal is harmless).
            self.backends[backend].record_subscription(&uri, true);
            match self.forward(Call::new(method, backend, params)).await {
                Ok(result) => result,
                Err(error) => {
                    self.backends[backend].record_subscription(&uri, false);
                    return Err(error);
                }
            }
        };
        subscribers
            .entry(uri.clone())
            .or_default()
            .insert(session.id().to_owned());
        session.set_subscribed(&uri, true);
        Ok(result)
    }

    /// The backend hears `resources/unsubscribe` when the last subscribed
    /// session leaves, never while another still listens.
    pub(super) async fn unsubscribe(
        &self,
        session: &Session,
        params: Option<Value>,
    ) -> Result<Value, ErrorObject> {
        let method = Method::ResourcesUnsubscribe;
        let (uri, backend) = self.uri_target(session, method, params.as_ref())?;
        session.set_subscribed(&uri, false);
        let mut subscribers = self.subscribers.lock().await;
        let Some(sessions) = subscribers.get_mut(&uri) else {
            return Ok(json!({}));
        };
        sessions.remove(session.id());
        if !sessions.is_empty() {
            return Ok(json!({}));
        }
        subscribers.remove(&uri);
        self.backends[backend].record_subscription(&uri, false);
        self.forward(Call::new(method, backend, params)).await
    }
}
