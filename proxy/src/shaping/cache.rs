//! A bounded cache of successful answers, each kept for its own TTL.
//!
//! It owns only storage: what may be cached, and for how long, is decided
//! by the caller, which puts nothing but successful answers here. The
//! cache never holds more than `max_entries`. A put on a full cache first
//! drops the entries that have expired, and only when none has does it
//! evict a live one, the oldest inserted (FIFO, not LRU: a hit costs no
//! bookkeeping, and with short TTLs the oldest entry is the nearest to
//! expiring anyway).
//!
//! Time comes from `tokio::time`, so the tests run on the paused clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::RequestKey;

/// The longest an answer is kept, whatever TTL it came with, so that the
/// expiry instant can never overflow.
const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// A bounded TTL cache of successful answers, shared by all sessions.
pub(crate) struct ResponseCache {
    max_entries: usize,
    inner: Mutex<Inner>,
}

/// What the cache has done since it was made, for metrics and `/admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CacheCounts {
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    /// Live entries now.
    pub(crate) entries: usize,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<RequestKey, Entry>,
    /// Insertion number to key, oldest first: the FIFO eviction order.
    by_age: BTreeMap<u64, RequestKey>,
    /// `(expiry, insertion number)`, soonest first, to find the expired
    /// entries without looking at the live ones.
    by_expiry: BTreeSet<(Instant, u64)>,
    next_seq: u64,
    hits: u64,
    misses: u64,
}

struct Entry {
    value: Value,
    expires_at: Instant,
    seq: u64,
}

impl ResponseCache {
    /// A cache of at most `max_entries` answers; with 0 it stores nothing.
    pub(crate) fn new(max_entries: usize) -> Self {
        Self {
            max_entries,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The cached answer for `key`, if there is one that has not expired.
    /// An expired entry counts as a miss and is removed.
    pub(crate) fn get(&self, key: &RequestKey) -> Option<Value> {
        let now = Instant::now();
        let mut inner = self.lock();
        let live = match inner.entries.get(key) {
            Some(entry) if entry.expires_at > now => Some(entry.value.clone()),
            Some(_) => {
                inner.remove(key);
                None
            }
            None => None,
        };
        match live {
            Some(_) => inner.hits += 1,
            None => inner.misses += 1,
        }
        live
    }

    /// Keeps `value` as the answer for `key` for `ttl` (at most a year).
    /// A put for a key already cached replaces its answer and counts as a
    /// new insertion. A zero TTL stores nothing: the answer would be
    /// expired before anyone could read it.
    pub(crate) fn put(&self, key: RequestKey, value: Value, ttl: Duration) {
        if self.max_entries == 0 || ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut inner = self.lock();
        inner.remove(&key);
        if inner.entries.len() >= self.max_entries {
            inner.remove_expired(now);
        }
        while inner.entries.len() >= self.max_entries {
            let Some((_, oldest)) = inner.by_age.pop_first() else {
                break;
            };
            inner.remove(&oldest);
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let expires_at = now + ttl.min(MAX_TTL);
        inner.by_age.insert(seq, key.clone());
        inner.by_expiry.insert((expires_at, seq));
        inner.entries.insert(
            key,
            Entry {
                value,
                expires_at,
                seq,
            },
        );
    }

    /// Hits and misses so far, and the live entries now.
    pub(crate) fn counts(&self) -> CacheCounts {
        let mut inner = self.lock();
        // Expired entries are collected here so they are not counted as held.
        inner.remove_expired(Instant::now());
        CacheCounts {
            hits: inner.hits,
            misses: inner.misses,
            entries: inner.entries.len(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state stays consistent between statements that could panic,
        // so a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    /// Removes `key` and its places in both orders, if it is cached.
    fn remove(&mut self, key: &RequestKey) {
        if let Some(entry) = self.entries.remove(key) {
            self.by_age.remove(&entry.seq);
            self.by_expiry.remove(&(entry.expires_at, entry.seq));
        }
    }

    fn remove_expired(&mut self, now: Instant) {
        while let Some(&(expires_at, seq)) = self.by_expiry.first() {
            if expires_at > now {
                break;
            }
            self.by_expiry.pop_first();
            if let Some(key) = self.by_age.remove(&seq) {
                self.entries.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(n: u64) -> RequestKey {
        RequestKey::new(0, "tools/call", "echo", Some(&json!({ "n": n })), None)
    }

    const TTL: Duration = Duration::from_secs(10);

    #[test]
    fn the_cache_is_send_and_sync() {
        fn shareable<T: Send + Sync>() {}
        shareable::<ResponseCache>();
    }

    #[tokio::test(start_paused = true)]
    async fn a_hit_before_the_ttl_and_a_miss_after() {
        let cache = ResponseCache::new(4);
        cache.put(key(1), json!("one"), TTL);
        tokio::time::advance(TTL - Duration::from_millis(1)).await;
        assert_eq!(cache.get(&key(1)), Some(json!("one")));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(cache.get(&key(1)), None, "expired at exactly the TTL");
        assert_eq!(
            cache.counts(),
            CacheCounts {
                hits: 1,
                misses: 1,
                entries: 0
            },
            "the expired entry was removed by the get"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_bound_holds_and_the_oldest_inserted_goes_first() {
        let cache = ResponseCache::new(3);
        for n in 1..=3 {
            cache.put(key(n), json!(n), TTL);
        }
        // A hit does not protect an entry: eviction is by insertion.
        assert!(cache.get(&key(1)).is_some());
        cache.put(key(4), json!(4), TTL);
        assert_eq!(cache.counts().entries, 3);
        assert_eq!(cache.get(&key(1)), None);
        // Putting a cached key again makes it the newest.
        cache.put(key(2), json!("two again"), TTL);
        cache.put(key(5), json!(5), TTL);
        assert_eq!(cache.get(&key(3)), None);
        assert_eq!(cache.get(&key(2)), Some(json!("two again")));
        assert_eq!(cache.get(&key(4)), Some(json!(4)));
        assert_eq!(cache.get(&key(5)), Some(json!(5)));
        assert_eq!(cache.counts().entries, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_evicted_before_live_ones() {
        let cache = ResponseCache::new(3);
        cache.put(key(1), json!(1), TTL);
        cache.put(key(2), json!(2), Duration::from_secs(1));
        cache.put(key(3), json!(3), Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(1)).await;
        cache.put(key(4), json!(4), TTL);
        cache.put(key(5), json!(5), TTL);
        // 2 and 3 had expired, so 1, the oldest, is still there.
        assert_eq!(cache.get(&key(1)), Some(json!(1)));
        assert_eq!(cache.get(&key(4)), Some(json!(4)));
        assert_eq!(cache.get(&key(5)), Some(json!(5)));
        assert_eq!(cache.counts().entries, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn counts_hits_misses_and_live_entries() {
        let cache = ResponseCache::new(8);
        assert_eq!(cache.counts(), CacheCounts::default());
        assert_eq!(cache.get(&key(1)), None);
        cache.put(key(1), json!(1), TTL);
        cache.put(key(2), json!(2), Duration::from_secs(1));
        assert!(cache.get(&key(1)).is_some());
        assert!(cache.get(&key(2)).is_some());
        assert_eq!(
            cache.counts(),
            CacheCounts {
                hits: 2,
                misses: 1,
                entries: 2
            }
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            cache.counts().entries,
            1,
            "an expired entry is not counted as held"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn zero_capacity_or_zero_ttl_stores_nothing() {
        let none = ResponseCache::new(0);
        none.put(key(1), json!(1), TTL);
        assert_eq!(none.get(&key(1)), None);

        let cache = ResponseCache::new(2);
        cache.put(key(1), json!(1), Duration::ZERO);
        assert_eq!(cache.counts().entries, 0);
        // A huge TTL is capped rather than overflowing the clock.
        cache.put(key(2), json!(2), Duration::MAX);
        tokio::time::advance(MAX_TTL - Duration::from_secs(1)).await;
        assert_eq!(cache.get(&key(2)), Some(json!(2)));
    }
}
