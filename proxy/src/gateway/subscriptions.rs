//! Resource subscriptions, shared between sessions: the backend hears
//! `resources/subscribe` from the first session that subscribes to a URI
//! only, and `resources/unsubscribe` when the last one leaves; its
//! `resources/updated` notifications go to every subscribed session (see
//! [`super::notify`]).
//!
//! Changes to one URI's subscription are serialized under that URI's own
//! async lock, held across the backend call, and a subscriber is recorded
//! only once the backend confirmed: a later session never answers `{}` for
//! a subscription that is still pending or failed, and a cancelled call
//! leaves nothing behind. The lock is per URI, not proxy-wide, so a backend
//! that hangs on one subscribe holds up only that URI, never the others nor
//! other backends.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Value, json};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use super::Gateway;
use crate::call::{Call, Method};
use crate::jsonrpc::ErrorObject;
use crate::session::Session;

/// The sessions subscribed to one URI.
type Sessions = HashSet<String>;

/// Resource URI → the sessions subscribed to it, each URI behind a lock of
/// its own. An entry exists while a session is subscribed or a change is
/// under way. One map for the proxy's life, whichever gateway a reload put
/// in place.
#[derive(Default)]
pub(crate) struct Subscribers {
    uris: Mutex<HashMap<String, Arc<AsyncMutex<Sessions>>>>,
}

/// One URI's subscribers, locked for a change.
struct Locked<'a> {
    // Fields drop in order: the lock is let go before `_forget` looks.
    sessions: OwnedMutexGuard<Sessions>,
    _forget: Forget<'a>,
}

/// Forgets a URI's entry when it is dropped, if the entry is empty and
/// no one else holds or awaits it.
struct Forget<'a> {
    uri: &'a str,
    owner: &'a Subscribers,
}

impl Subscribers {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<AsyncMutex<Sessions>>>> {
        self.uris.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wait for `uri`'s lock (and only its own).
    async fn lock<'a>(&'a self, uri: &'a str) -> Locked<'a> {
        let entry = Arc::clone(self.map().entry(uri.to_owned()).or_default());
        Locked {
            sessions: entry.lock_owned().await,
            _forget: Forget { uri, owner: self },
        }
    }
}

impl std::ops::Deref for Locked<'_> {
    type Target = Sessions;

    fn deref(&self) -> &Sessions {
        &self.sessions
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Sessions {
        &mut self.sessions
    }
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        // Whoever else holds or awaits the entry cloned it under the map's
        // lock, which is held here: a count of one means no one.
        let mut map = self.owner.map();
        let unused = map.get(self.uri).is_some_and(|entry| {
            Arc::strong_count(entry) == 1 && entry.try_lock().is_ok_and(|s| s.is_empty())
        });
        if unused {
            map.remove(self.uri);
        }
    }
}

impl Gateway {
    pub(super) async fn subscribe(
        &self,
        session: &Session,
        params: Option<Value>,
    ) -> Result<Value, ErrorObject> {
        let method = Method::ResourcesSubscribe;
        let (uri, backend) = self.uri_target(session, method, params.as_ref())?;
        let mut subscribers = self.subscribers.lock(&uri).await;
        // Sessions are recorded only once the backend confirmed.
        let result = if subscribers.is_empty() {
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
        } else {
            json!({})
        };
        subscribers.insert(session.id().to_owned());
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
        let mut subscribers = self.subscribers.lock(&uri).await;
        if !subscribers.remove(session.id()) || !subscribers.is_empty() {
            return Ok(json!({}));
        }
        self.backends[backend].record_subscription(&uri, false);
        self.forward(Call::new(method, backend, params)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_uri_held_does_not_hold_another_and_entries_are_forgotten() {
        let subscribers = Subscribers::default();
        let mut held = subscribers.lock("a://held").await;
        // Another URI's lock is free while this one is held.
        let other = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            subscribers.lock("b://free"),
        )
        .await;
        assert!(other.is_ok(), "a held URI blocked another");
        drop(other);
        // The same URI waits.
        let same = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            subscribers.lock("a://held"),
        )
        .await;
        assert!(same.is_err(), "the same URI was not serialized");
        held.insert("session".into());
        drop(held);
        assert_eq!(subscribers.map().len(), 1, "a subscribed URI is kept");
        let mut again = subscribers.lock("a://held").await;
        assert!(again.contains("session"));
        again.clear();
        drop(again);
        assert!(subscribers.map().is_empty(), "an empty set is forgotten");
    }
}
