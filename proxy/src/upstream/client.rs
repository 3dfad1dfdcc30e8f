//! The way back from a backend to the client whose call it serves.
//!
//! A backend may ask its client something while it serves a call
//! (`sampling/createMessage`, `elicitation/create`, `roots/list`). The
//! proxy is the backend's client, so it passes the question on to the
//! client of the call, and the answer back. What the transport needs for
//! that is a [`ClientLink`]: which session the call came from, and a way to
//! ask that session's client and wait for its answer.
//!
//! The link travels with the call's task, as a tracing span does, rather
//! than through every stage's signature: the front puts it in scope around
//! the call ([`with_client`]), and the request table records it when the
//! call's upstream request starts ([`current`]). Every stage between would
//! only have passed it on; and what runs in a task of its own — a mirror's
//! copy, a supervisor's listing or renewal — has none, so a shadow backend
//! can never reach a client.

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::jsonrpc::ErrorObject;
use crate::platform::BoxFuture;

/// What the transport asks of a call's client; the session side implements it.
pub(crate) trait Client: Send + Sync {
    /// The client's session, to tell calls of different sessions apart.
    fn session(&self) -> &str;

    /// Send a request to the client and wait for its answer: the client's
    /// whole JSON-RPC response (its `result` or `error` unchanged; the id
    /// is the proxy's own), or the proxy's refusal (the client did not
    /// declare the capability, it cannot be reached, it did not answer in
    /// time). When `until` is cancelled (the call it serves ended, or the
    /// backend cancelled its request) the client is told its request is
    /// cancelled and the answer is an error.
    fn ask(
        &self,
        method: &str,
        params: Option<Value>,
        until: CancellationToken,
    ) -> BoxFuture<'static, Result<Value, ErrorObject>>;
}

/// A call's way back to its client. Cheap to clone.
#[derive(Clone)]
pub(crate) struct ClientLink(Arc<dyn Client>);

impl ClientLink {
    /// A link through `client`.
    pub(crate) fn new(client: impl Client + 'static) -> Self {
        Self(Arc::new(client))
    }

    /// See [`Client::session`].
    pub(crate) fn session(&self) -> &str {
        self.0.session()
    }

    /// See [`Client::ask`].
    pub(crate) fn ask(
        &self,
        method: &str,
        params: Option<Value>,
        until: CancellationToken,
    ) -> BoxFuture<'static, Result<Value, ErrorObject>> {
        self.0.ask(method, params, until)
    }
}

impl std::fmt::Debug for ClientLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ClientLink").field(&self.session()).finish()
    }
}

tokio::task_local! {
    static LINK: ClientLink;
}

/// Run `call` with `link` as its way back to the client: every upstream
/// request it starts records the link.
pub(crate) fn with_client<F: Future>(link: ClientLink, call: F) -> impl Future<Output = F::Output> {
    LINK.scope(link, call)
}

/// The link of the call being polled, if it has one.
pub(crate) fn current() -> Option<ClientLink> {
    LINK.try_with(ClientLink::clone).ok()
}

/// A client for tests: it records what it is asked and answers after a
/// second, unless its wait ends first.
#[cfg(test)]
pub(crate) mod testing {
    use tokio::sync::mpsc;

    use super::*;

    struct Scripted {
        session: &'static str,
        asked: mpsc::UnboundedSender<(String, CancellationToken)>,
        answer: Value,
    }

    impl Client for Scripted {
        fn session(&self) -> &str {
            self.session
        }

        fn ask(
            &self,
            method: &str,
            _: Option<Value>,
            until: CancellationToken,
        ) -> BoxFuture<'static, Result<Value, ErrorObject>> {
            let _ = self.asked.send((method.to_owned(), until.clone()));
            let answer = self.answer.clone();
            Box::pin(async move {
                tokio::select! {
                    () = until.cancelled() => Err(ErrorObject::new(-1, "ended")),
                    () = tokio::time::sleep(std::time::Duration::from_secs(1)) => Ok(answer),
                }
            })
        }
    }

    /// A link to a client of `session` answering `{"role": "assistant"}`,
    /// and what it was asked (the method, and its wait's end).
    pub(crate) fn scripted(
        session: &'static str,
    ) -> (
        ClientLink,
        mpsc::UnboundedReceiver<(String, CancellationToken)>,
    ) {
        let (asked, received) = mpsc::unbounded_channel();
        let answer =
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": {"role": "assistant"}});
        (
            ClientLink::new(Scripted {
                session,
                asked,
                answer,
            }),
            received,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named(&'static str);

    impl Client for Named {
        fn session(&self) -> &str {
            self.0
        }

        fn ask(
            &self,
            _: &str,
            _: Option<Value>,
            _: CancellationToken,
        ) -> BoxFuture<'static, Result<Value, ErrorObject>> {
            Box::pin(async { Ok(Value::Null) })
        }
    }

    #[tokio::test]
    async fn the_link_is_in_scope_only_inside_its_call_and_not_in_spawned_tasks() {
        assert!(current().is_none());
        let seen = with_client(ClientLink::new(Named("s1")), async {
            let inside = current().map(|link| link.session().to_owned());
            let spawned = tokio::spawn(async { current().is_some() }).await.unwrap();
            (inside, spawned)
        })
        .await;
        assert_eq!(seen, (Some("s1".to_owned()), false));
        assert!(current().is_none());
    }
}
