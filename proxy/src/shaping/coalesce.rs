//! Coalescing: identical calls in flight at the same time share one
//! backend call.
//!
//! The first caller for a key (the leader) starts the call; callers with
//! the same key while it runs (followers) wait for its result, error
//! included. Once it finishes the key is forgotten, so a later call starts
//! afresh: this shares calls, it does not cache answers.
//!
//! The call belongs to all of its waiters, not to the leader. It is a
//! [`Shared`] future, driven by whichever waiter is polled: when the
//! leader's client goes away and its future is dropped, a follower drives
//! the call on and still gets the answer. When every waiter is gone the
//! call is dropped with the last one, so an abandoned call is cancelled at
//! the backend as an uncoalesced one would be. The map holds only a weak
//! handle, so it never keeps a call alive by itself.
//!
//! Nothing is spawned: the call runs in its waiters' tasks, under their
//! tracing spans, and needs no runtime handle.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared, WeakShared};
use serde_json::Value;

use super::RequestKey;

type Call<E> = Shared<BoxFuture<'static, Result<Value, E>>>;

/// Joins identical in-flight calls; `E` is the error a call can end with,
/// handed to every waiter.
pub(crate) struct Coalescer<E> {
    state: Arc<Mutex<State<E>>>,
}

struct State<E> {
    calls: HashMap<RequestKey, InFlight<E>>,
    /// Tells a call from a later one under the same key, so that a call
    /// that ends late never removes its successor's entry.
    next_id: u64,
    coalesced: u64,
}

struct InFlight<E> {
    id: u64,
    call: WeakShared<BoxFuture<'static, Result<Value, E>>>,
}

impl<E> Coalescer<E>
where
    E: Clone + Send + Sync + 'static,
{
    pub(crate) fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                calls: HashMap::new(),
                next_id: 0,
                coalesced: 0,
            })),
        }
    }

    /// Runs the call `start` makes for `key`, or, if a call for `key` is
    /// in flight, waits for that one instead (and `start` is never called).
    pub(crate) async fn run<S, F>(&self, key: RequestKey, start: S) -> Result<Value, E>
    where
        S: FnOnce() -> F,
        F: Future<Output = Result<Value, E>> + Send + 'static,
    {
        let (shared, unused) = {
            let mut state = lock(&self.state);
            // An entry whose call can no longer be upgraded has lost all of
            // its waiters and is being dropped; it is replaced, not joined.
            match state.calls.get(&key).and_then(|entry| entry.call.upgrade()) {
                Some(shared) => {
                    state.coalesced += 1;
                    (shared, Some(start))
                }
                None => (self.start(&mut state, key, start()), None),
            }
        };
        // A follower's own call is never made; what `start` holds goes now
        // rather than when the wait ends. Outside the lock, as
        // is every drop of a clone of the call: the last clone drops the
        // call, and its guard takes the lock.
        drop(unused);
        shared.await
    }

    /// Followers that joined a call in flight, since start.
    pub(crate) fn coalesced(&self) -> u64 {
        lock(&self.state).coalesced
    }

    fn start<F>(&self, state: &mut State<E>, key: RequestKey, call: F) -> Call<E>
    where
        F: Future<Output = Result<Value, E>> + Send + 'static,
    {
        let id = state.next_id;
        state.next_id += 1;
        let forget = Forget {
            state: Arc::clone(&self.state),
            key: key.clone(),
            id,
        };
        // The guard lives inside the call, so the entry goes exactly when
        // the call does: on completion (before any waiter sees the result,
        // so no later caller can join a finished call), when the last
        // waiter drops it, or when it panics.
        let shared = async move {
            let _forget = forget;
            call.await
        }
        .boxed()
        .shared();
        // A Shared that has not been polled can always be downgraded.
        if let Some(weak) = shared.downgrade() {
            state.calls.insert(key, InFlight { id, call: weak });
        }
        shared
    }
}

impl<E> Default for Coalescer<E>
where
    E: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

/// Removes its call's entry from the map when the call ends or is dropped.
struct Forget<E> {
    state: Arc<Mutex<State<E>>>,
    key: RequestKey,
    id: u64,
}

impl<E> Drop for Forget<E> {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        if state
            .calls
            .get(&self.key)
            .is_some_and(|entry| entry.id == self.id)
        {
            state.calls.remove(&self.key);
        }
    }
}

fn lock<E>(state: &Mutex<State<E>>) -> MutexGuard<'_, State<E>> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn key(target: &str) -> RequestKey {
        RequestKey::new(0, "tools/call", target, Some(&json!({"a": 1})), None)
    }

    /// Makes calls that count how many were started and how many dropped.
    #[derive(Clone, Default)]
    struct Probe {
        started: Arc<AtomicU32>,
        dropped: Arc<AtomicU32>,
    }

    struct DropGuard(Arc<AtomicU32>);

    impl Drop for DropGuard {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Probe {
        /// A call that answers `answer` after `delay`.
        fn call<E: Send + 'static>(
            &self,
            delay: Duration,
            answer: Result<Value, E>,
        ) -> impl Future<Output = Result<Value, E>> + Send + 'static {
            let started = Arc::clone(&self.started);
            let guard = DropGuard(Arc::clone(&self.dropped));
            async move {
                let _guard = guard;
                started.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                answer
            }
        }

        fn started(&self) -> u32 {
            self.started.load(Ordering::SeqCst)
        }

        fn dropped(&self) -> u32 {
            self.dropped.load(Ordering::SeqCst)
        }
    }

    fn in_flight<E>(coalescer: &Coalescer<E>) -> usize {
        lock(&coalescer.state).calls.len()
    }

    const SLOW: Duration = Duration::from_secs(5);

    #[test]
    fn the_coalescer_and_its_waits_are_send() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Coalescer<String>>();
        // And a wait can move between worker threads, as handlers do.
        fn sendable<T: Send>(_: &T) {}
        let coalescer = Coalescer::<String>::new();
        sendable(&coalescer.run(key("echo"), || async { Ok(json!(1)) }));
    }

    #[tokio::test(start_paused = true)]
    async fn identical_concurrent_calls_run_once_and_share_the_answer() {
        let coalescer = Coalescer::<String>::new();
        let probe = Probe::default();
        let (a, b) = tokio::join!(
            coalescer.run(key("echo"), || probe.call(SLOW, Ok(json!("one")))),
            coalescer.run(key("echo"), || probe.call(SLOW, Ok(json!("two")))),
        );
        assert_eq!(a, Ok(json!("one")));
        assert_eq!(b, Ok(json!("one")), "the follower got the leader's answer");
        assert_eq!(probe.started(), 1);
        assert_eq!(coalescer.coalesced(), 1);
        assert_eq!(in_flight(&coalescer), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn different_keys_run_separately() {
        let coalescer = Coalescer::<String>::new();
        let probe = Probe::default();
        let (a, b) = tokio::join!(
            coalescer.run(key("echo"), || probe.call(SLOW, Ok(json!("one")))),
            coalescer.run(key("other"), || probe.call(SLOW, Ok(json!("two")))),
        );
        assert_eq!((a, b), (Ok(json!("one")), Ok(json!("two"))));
        assert_eq!(probe.started(), 2);
        assert_eq!(coalescer.coalesced(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_call_finishes_the_next_one_runs_again() {
        let coalescer = Coalescer::<String>::new();
        let probe = Probe::default();
        let first = coalescer
            .run(key("echo"), || probe.call(SLOW, Ok(json!("one"))))
            .await;
        let second = coalescer
            .run(key("echo"), || probe.call(SLOW, Ok(json!("two"))))
            .await;
        assert_eq!((first, second), (Ok(json!("one")), Ok(json!("two"))));
        assert_eq!(probe.started(), 2);
        assert_eq!(coalescer.coalesced(), 0);
    }

    /// Spawns `run` for `key` on `coalescer` with a call that answers
    /// `answer` after [`SLOW`], optionally giving up after `patience`.
    fn spawn_run(
        coalescer: &Arc<Coalescer<String>>,
        probe: &Probe,
        answer: &str,
        patience: Option<Duration>,
    ) -> tokio::task::JoinHandle<Option<Result<Value, String>>> {
        let (coalescer, probe) = (Arc::clone(coalescer), probe.clone());
        let answer = json!(answer);
        tokio::spawn(async move {
            let run = coalescer.run(key("echo"), || probe.call(SLOW, Ok(answer)));
            match patience {
                Some(patience) => tokio::time::timeout(patience, run).await.ok(),
                None => Some(run.await),
            }
        })
    }

    /// Lets the other tasks run until `done` holds, without letting the
    /// paused clock move (a task that yields keeps the runtime busy).
    async fn until(done: impl Fn() -> bool) {
        while !done() {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_follower_still_gets_the_answer_when_the_leader_times_out() {
        let coalescer = Arc::new(Coalescer::<String>::new());
        let probe = Probe::default();
        // The leader's client gives up halfway through the call.
        let leader = spawn_run(&coalescer, &probe, "answer", Some(SLOW / 2));
        until(|| probe.started() == 1).await;
        let follower = spawn_run(&coalescer, &probe, "own call", None);
        until(|| coalescer.coalesced() == 1).await;
        assert_eq!(
            probe.dropped(),
            0,
            "the follower never made a call of its own"
        );

        assert_eq!(leader.await.unwrap(), None, "the leader timed out");
        assert_eq!(probe.dropped(), 0, "the shared call lives on");
        let answer = tokio::time::timeout(2 * SLOW, follower).await;
        assert_eq!(answer.unwrap().unwrap(), Some(Ok(json!("answer"))));
        assert_eq!(probe.started(), 1, "the shared call ran once");
        assert_eq!(probe.dropped(), 1);
        assert_eq!(in_flight(&coalescer), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_follower_still_gets_the_answer_when_the_leader_task_is_aborted() {
        let coalescer = Arc::new(Coalescer::<String>::new());
        let probe = Probe::default();
        let leader = spawn_run(&coalescer, &probe, "answer", None);
        until(|| probe.started() == 1).await;
        let follower = spawn_run(&coalescer, &probe, "own call", None);
        until(|| coalescer.coalesced() == 1).await;
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        let answer = tokio::time::timeout(2 * SLOW, follower).await;
        assert_eq!(answer.unwrap().unwrap(), Some(Ok(json!("answer"))));
        assert_eq!(probe.started(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn when_every_waiter_is_gone_the_call_is_dropped_and_forgotten() {
        let coalescer = Coalescer::<String>::new();
        let probe = Probe::default();
        let (a, b) = tokio::join!(
            tokio::time::timeout(
                SLOW / 2,
                coalescer.run(key("echo"), || probe.call(SLOW, Ok(json!("one"))))
            ),
            tokio::time::timeout(
                SLOW / 4,
                coalescer.run(key("echo"), || probe.call(SLOW, Ok(json!("two"))))
            ),
        );
        assert!(a.is_err() && b.is_err());
        assert_eq!(probe.started(), 1);
        assert_eq!(
            probe.dropped(),
            1,
            "the shared call; the follower never made one"
        );
        assert_eq!(in_flight(&coalescer), 0, "no stale entry");
        let fresh = coalescer
            .run(key("echo"), || probe.call(SLOW, Ok(json!("fresh"))))
            .await;
        assert_eq!(fresh, Ok(json!("fresh")));
        assert_eq!(probe.started(), 2, "the new call ran, it did not join");
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_is_shared_too() {
        let coalescer = Coalescer::<String>::new();
        let probe = Probe::default();
        let (a, b) = tokio::join!(
            coalescer.run(key("echo"), || probe
                .call(SLOW, Err("backend down".to_owned()))),
            coalescer.run(key("echo"), || probe.call(SLOW, Ok(json!("unused")))),
        );
        assert_eq!(a, Err("backend down".to_owned()));
        assert_eq!(b, Err("backend down".to_owned()));
        assert_eq!(probe.started(), 1);
        assert_eq!(in_flight(&coalescer), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_panics_is_forgotten() {
        let coalescer = Arc::new(Coalescer::<String>::new());
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let coalescer = Arc::clone(&coalescer);
                tokio::spawn(async move {
                    coalescer
                        .run(key("echo"), || async {
                            tokio::time::sleep(SLOW).await;
                            panic!("the backend call panicked")
                        })
                        .await
                })
            })
            .collect();
        for waiter in waiters {
            assert!(waiter.await.unwrap_err().is_panic(), "nobody hangs");
        }
        assert_eq!(coalescer.coalesced(), 1);
        assert_eq!(in_flight(&coalescer), 0);
    }
}
