//! From a client's request to a [`Call`]: which backend serves the name or
//! URI it addresses, what the backend calls it, the params as the
//! backend's shaping rules make them, and whether the call may be
//! repeated or cached, all decided here once.
//!
//! A name is `backend<separator>name`; hidden names, and a tool's name
//! under its alias, are unknown (`-32602`). A URI belongs to the backend
//! that owns it ([`Catalog::owner`](super::catalog::Catalog::owner): listed,
//! by prefix, by scheme, or the only one serving resources), so a URI the
//! backend serves without listing it reaches it and gets its own answer; a
//! hidden one, or one the proxy cannot route, is `-32002`, as a server
//! answers it. An item the session's caller may not use is refused here too
//! (`-32016`, see [`super::access`]).

use serde_json::{Value, json};

use super::Gateway;
use crate::auth::ItemKind;
use crate::backend::ListKind;
use crate::call::{Call, Method};
use crate::jsonrpc::{self, ErrorObject};
use crate::session::Session;
use crate::upstream::ProgressSink;

impl Gateway {
    /// The call a `tools/call`, `prompts/get` or `resources/read` makes.
    pub(crate) fn resolve(
        &self,
        session: &Session,
        method: Method,
        params: Option<Value>,
        progress: Option<ProgressSink>,
    ) -> Result<Call, ErrorObject> {
        let (backend, target, params) = match method {
            Method::ResourcesRead => {
                let (uri, backend) = self.uri_target(session, method, params.as_ref())?;
                let params = params.unwrap_or_else(|| json!({ "uri": uri }));
                (backend, uri, params)
            }
            _ => self.named(session, method, params)?,
        };
        let audience = self.audience(session, backend);
        let credential = session.credential();
        let session = session.shared_id();
        // The primary's listing says what its tools are; until it has
        // listed, the first backend serving it that has (a standby
        // serving while the primary has never been up).
        let listed = std::iter::once(backend)
            .chain(self.traffic.serving(backend))
            .find(|&b| self.backends[b].has_listed())
            .unwrap_or(backend);
        Ok(Call {
            method,
            backend,
            safety: self.backends[listed].safety(method, &target),
            audience,
            credential,
            target,
            params: Some(params),
            progress,
            session,
            trace: None,
        })
    }

    /// Who may share a call's answer through the cache or coalescing: only
    /// the same caller (with `auth:`, answers may differ by caller), under
    /// a sticky canary split only the same side of it, and nobody else at
    /// all for a client the backend may ask things of (sampling,
    /// elicitation, roots): its answer may be built from that client's
    /// replies, and a shared call would ask only one of its clients.
    fn audience(&self, session: &Session, backend: usize) -> Option<String> {
        let side = self.traffic.audience(backend, session.id());
        let own = session
            .may_be_asked()
            .then(|| format!("session {}", session.id()));
        let parts: Vec<&str> = [
            session.caller().map(|c| c.subject.as_str()),
            side.as_deref(),
            own.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!parts.is_empty()).then(|| parts.join("\n"))
    }

    /// The backend, own name and shaped params of a tool call or prompt.
    fn named(
        &self,
        session: &Session,
        method: Method,
        params: Option<Value>,
    ) -> Result<(usize, String, Value), ErrorObject> {
        let what = match method {
            Method::ToolsCall => "tool",
            _ => "prompt",
        };
        let Some(mut params) = params.filter(Value::is_object) else {
            return Err(ErrorObject::new(
                jsonrpc::INVALID_PARAMS,
                format!("{} needs params with a {what} name", method.as_str()),
            ));
        };
        let Some(name) = params
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return Err(ErrorObject::new(
                jsonrpc::INVALID_PARAMS,
                format!("{} needs a \"name\" string", method.as_str()),
            ));
        };
        let name = name.as_str();
        let unknown =
            || ErrorObject::new(jsonrpc::INVALID_PARAMS, format!("unknown {what}: {name}"));
        let Some((backend, client_name)) = self.split_name(name) else {
            return Err(unknown());
        };
        let rules = &self.shapers[backend].rules;
        // Hidden names, and a tool's name under its alias, are unknown.
        let own = match method {
            Method::ToolsCall => rules.called_tool(client_name),
            _ => rules
                .visible(ListKind::Prompts, client_name)
                .then(|| client_name.to_owned()),
        };
        let Some(own) = own else {
            return Err(unknown());
        };
        let kind = match method {
            Method::ToolsCall => ItemKind::Tool,
            _ => ItemKind::Prompt,
        };
        self.check_access(session, kind, backend, client_name)?;
        if method == Method::ToolsCall {
            rules.shape_tool_params(&own, name, &mut params)?;
        }
        params["name"] = Value::String(own.clone());
        Ok((backend, own, params))
    }

    /// The call a `completion/complete` makes: to the backend owning the
    /// prompt or resource template it refers to.
    pub(super) fn resolve_completion(
        &self,
        session: &Session,
        params: Option<Value>,
    ) -> Result<Call, ErrorObject> {
        let Some(mut params) = params.filter(Value::is_object) else {
            return Err(ErrorObject::new(
                jsonrpc::INVALID_PARAMS,
                "completion/complete needs params",
            ));
        };
        let reference = &params["ref"];
        let backend = match reference.get("type").and_then(Value::as_str) {
            Some("ref/prompt") => {
                let name = reference
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let Some((backend, own_name)) = self
                    .split_name(name)
                    .filter(|&(b, own)| self.shapers[b].rules.visible(ListKind::Prompts, own))
                else {
                    return Err(ErrorObject::new(
                        jsonrpc::INVALID_PARAMS,
                        format!("unknown prompt: {name}"),
                    ));
                };
                self.check_access(session, ItemKind::Prompt, backend, own_name)?;
                params["ref"]["name"] = Value::String(own_name.to_owned());
                backend
            }
            Some("ref/resource") => {
                let uri = reference
                    .get("uri")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let catalog = self.catalog();
                let Some(backend) = catalog
                    .route_template(uri)
                    .or_else(|| catalog.route_uri(uri))
                    .filter(|&b| self.shapers[b].rules.visible(ListKind::Resources, uri))
                else {
                    return Err(ErrorObject::new(
                        jsonrpc::INVALID_PARAMS,
                        format!("unknown resource template: {uri}"),
                    ));
                };
                self.check_access(session, ItemKind::Resource, backend, uri)?;
                backend
            }
            _ => {
                return Err(ErrorObject::new(
                    jsonrpc::INVALID_PARAMS,
                    "ref.type must be ref/prompt or ref/resource",
                ));
            }
        };
        Ok(Call::new(Method::Complete, backend, Some(params)))
    }

    /// What a request addresses, as the audit log names it: the backend,
    /// and the tool or prompt as the client named it, or the URI. `None`
    /// for what a request does not name (or names nothing known by).
    pub(crate) fn addressed(
        &self,
        method: &str,
        params: Option<&Value>,
    ) -> (Option<String>, Option<String>) {
        let text = |pointer: &str| {
            params
                .and_then(|p| p.pointer(pointer))
                .and_then(Value::as_str)
        };
        let by_name = |name: Option<&str>| {
            let backend = name
                .and_then(|name| self.split_name(name))
                .map(|(backend, _)| self.backends[backend].name().to_owned());
            (backend, name.map(str::to_owned))
        };
        let by_uri = |uri: Option<&str>| {
            let backend = uri
                .and_then(|uri| self.catalog().owner(uri).ok())
                .map(|backend| self.backends[backend].name().to_owned());
            (backend, uri.map(str::to_owned))
        };
        match Method::parse(method) {
            Some(Method::ToolsCall | Method::PromptsGet) => by_name(text("/name")),
            Some(
                Method::ResourcesRead | Method::ResourcesSubscribe | Method::ResourcesUnsubscribe,
            ) => by_uri(text("/uri")),
            Some(Method::Complete) => match text("/ref/type") {
                Some("ref/prompt") => by_name(text("/ref/name")),
                _ => by_uri(text("/ref/uri")),
            },
            _ => (None, None),
        }
    }

    /// Split `backend<separator>name` into the backend's index and the backend's own name.
    fn split_name<'a>(&self, name: &'a str) -> Option<(usize, &'a str)> {
        let (backend, rest) = name.split_once(self.separator.as_str())?;
        self.by_name.get(backend).map(|&index| (index, rest))
    }

    /// The URI a request names and the backend that serves it.
    pub(super) fn uri_target(
        &self,
        session: &Session,
        method: Method,
        params: Option<&Value>,
    ) -> Result<(String, usize), ErrorObject> {
        let Some(uri) = params.and_then(|p| p.get("uri")).and_then(Value::as_str) else {
            return Err(ErrorObject::new(
                jsonrpc::INVALID_PARAMS,
                format!("{} needs a \"uri\" string", method.as_str()),
            ));
        };
        let not_found = |message: String| {
            ErrorObject::new(jsonrpc::RESOURCE_NOT_FOUND, message).with_data(json!({ "uri": uri }))
        };
        let backend = (self.catalog().owner(uri))
            .map_err(|why| not_found(format!("resource not found: {uri} ({why})")))?;
        // A hidden URI is unknown, as if its backend did not serve it (and
        // saying more would tell that it exists).
        if !self.shapers[backend]
            .rules
            .visible(ListKind::Resources, uri)
        {
            return Err(not_found(format!("resource not found: {uri}")));
        }
        self.check_access(session, ItemKind::Resource, backend, uri)?;
        Ok((uri.to_owned(), backend))
    }
}
