//! What a reload changes: each backend of the new config is kept, rebuilt
//! or added, each old one that is gone is removed, and the settings that
//! only a restart can change are named and left as they run.
//!
//! A backend is *kept* — its connections, children, breaker, ejection and
//! (with the same shaping) cache — when everything the backend itself
//! reads is unchanged: its transport, resilience and pool keys, and whose
//! traffic it serves. Traffic weights (canary `weight`, `sticky`, mirror
//! `mirror_percent`, failover `priority`) and shaping belong to the
//! gateway's traffic and shaping stages, which every reload builds anew,
//! so changing them keeps the backend.

use crate::config::{BackendConfig, Config, Role, Shaping};

/// What becomes of one backend of the new config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// The running backend at this index of the old config stays, and so
    /// does its cache when `same_shaping`.
    Kept { old: usize, same_shaping: bool },
    /// The backend at this index of the old config is replaced by a new one
    /// (calls in flight finish on the old).
    Rebuilt { old: usize },
    /// New in this config.
    Added,
}

/// The changes from one config to the next.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// One per backend of the new config, in its order.
    pub fates: Vec<Fate>,
    /// Indices, in the old config, of backends the new one does not have.
    pub removed: Vec<usize>,
    /// Keys whose change needs a restart (they keep their running values).
    pub restart_needed: Vec<&'static str>,
}

impl Plan {
    pub(crate) fn new(running: &Config, next: &Config) -> Self {
        let fates = next
            .backends
            .iter()
            .map(
                |backend| match running.backends.iter().position(|b| b.name == backend.name) {
                    None => Fate::Added,
                    Some(old) if same_backend(&running.backends[old], backend) => Fate::Kept {
                        old,
                        same_shaping: running.backends[old].shaping == backend.shaping,
                    },
                    Some(old) => Fate::Rebuilt { old },
                },
            )
            .collect();
        let removed = running
            .backends
            .iter()
            .enumerate()
            .filter(|(_, old)| !next.backends.iter().any(|b| b.name == old.name))
            .map(|(index, _)| index)
            .collect();
        Self {
            fates,
            removed,
            restart_needed: restart_needed(running, next),
        }
    }

    /// `next` as it can be applied: the settings that need a restart keep
    /// the values the proxy runs with, so they are reported again on every
    /// reload until the restart.
    pub(crate) fn applicable(running: &Config, next: Config) -> Config {
        let mut applied = next;
        let separator = applied.proxy.separator.clone();
        applied.proxy = running.proxy.clone();
        applied.proxy.separator = separator;
        applied.auth = running.auth.clone();
        applied.audit = running.audit.clone();
        applied.admin = running.admin.clone();
        applied
    }
}

/// Whether the backend reads nothing different in `next`.
fn same_backend(running: &BackendConfig, next: &BackendConfig) -> bool {
    own_part(running) == own_part(next)
}

/// The keys a backend reads itself: all but the traffic weights and shaping.
fn own_part(backend: &BackendConfig) -> BackendConfig {
    let role = match &backend.role {
        Role::Primary => Role::Primary,
        Role::Canary { of, .. } => Role::Canary {
            of: of.clone(),
            weight: 0.0,
            sticky: false,
        },
        Role::Mirror { of, .. } => Role::Mirror {
            of: of.clone(),
            percent: 0.0,
            max_in_flight: 0,
        },
        Role::Failover { of, .. } => Role::Failover {
            of: of.clone(),
            priority: 0,
        },
    };
    BackendConfig {
        role,
        shaping: Shaping::default(),
        ..backend.clone()
    }
}

/// The keys, outside `backends`, `authorization` and `proxy.separator`,
/// that differ: the listener, the bounds on clients, the seed and name
/// every backend was built with, who may connect, the audit log, the
/// admin API. (`proxy.default_call_timeout` is applied: loading copies it
/// into every backend that sets no `timeout.overall`, which a change
/// rebuilds.)
fn restart_needed(running: &Config, next: &Config) -> Vec<&'static str> {
    let (old, new) = (&running.proxy, &next.proxy);
    let checks: [(&'static str, bool); 15] = [
        ("proxy.name", old.name != new.name),
        ("proxy.listen", old.listen != new.listen),
        (
            "proxy.shutdown_timeout",
            old.shutdown_timeout != new.shutdown_timeout,
        ),
        (
            "proxy.max_body_size",
            old.max_body_size != new.max_body_size,
        ),
        (
            "proxy.allowed_origins",
            old.allowed_origins != new.allowed_origins,
        ),
        (
            "proxy.session_idle_timeout",
            old.session_idle_timeout != new.session_idle_timeout,
        ),
        ("proxy.max_sessions", old.max_sessions != new.max_sessions),
        (
            "proxy.max_in_flight",
            old.max_in_flight != new.max_in_flight,
        ),
        (
            "proxy.max_in_flight_per_session",
            old.max_in_flight_per_session != new.max_in_flight_per_session,
        ),
        (
            "proxy.progress_queue",
            old.progress_queue != new.progress_queue,
        ),
        ("proxy.seed", old.seed != new.seed),
        (
            "proxy.allow_unauthenticated",
            old.allow_unauthenticated != new.allow_unauthenticated,
        ),
        ("auth", running.auth != next.auth),
        ("audit", running.audit != next.audit),
        ("admin", running.admin != next.admin),
    ];
    checks
        .into_iter()
        .filter(|&(_, changed)| changed)
        .map(|(key, _)| key)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ProxySettings, TransportConfig};

    fn backend(name: &str) -> BackendConfig {
        BackendConfig::new(
            name,
            TransportConfig::Http {
                url: format!("http://127.0.0.1:9/{name}"),
                headers: Default::default(),
            },
        )
    }

    fn config(backends: Vec<BackendConfig>) -> Config {
        Config {
            proxy: ProxySettings::default(),
            backends,
            ..Config::default()
        }
    }

    #[test]
    fn backends_are_kept_rebuilt_added_and_removed_by_name() {
        let running = config(vec![backend("a"), backend("b"), backend("c")]);
        let mut changed = backend("b");
        changed.wait_for_ready = std::time::Duration::from_secs(9);
        let next = config(vec![backend("d"), changed, backend("a")]);
        let plan = Plan::new(&running, &next);
        assert_eq!(
            plan.fates,
            [
                Fate::Added,
                Fate::Rebuilt { old: 1 },
                Fate::Kept {
                    old: 0,
                    same_shaping: true
                },
            ]
        );
        assert_eq!(plan.removed, [2]);
        assert!(plan.restart_needed.is_empty());
    }

    #[test]
    fn weights_and_shaping_keep_the_backend_but_whose_traffic_does_not() {
        let canary = |of: &str, weight: f64| BackendConfig {
            role: Role::Canary {
                of: of.to_owned(),
                weight,
                sticky: false,
            },
            ..backend("next")
        };
        let running = config(vec![backend("a"), backend("b"), canary("a", 10.0)]);
        let mut shaped = backend("a");
        shaped.shaping.hide.tools = Some(vec!["secret_*".to_owned()]);
        let next = config(vec![shaped, backend("b"), canary("a", 50.0)]);
        let plan = Plan::new(&running, &next);
        assert_eq!(
            plan.fates,
            [
                Fate::Kept {
                    old: 0,
                    same_shaping: false
                },
                Fate::Kept {
                    old: 1,
                    same_shaping: true
                },
                Fate::Kept {
                    old: 2,
                    same_shaping: true
                },
            ]
        );
        // A canary of another primary is another backend.
        let moved = config(vec![backend("a"), backend("b"), canary("b", 10.0)]);
        assert_eq!(
            Plan::new(&running, &moved).fates[2],
            Fate::Rebuilt { old: 2 }
        );
    }

    #[test]
    fn what_needs_a_restart_is_named_and_keeps_its_running_value() {
        let running = config(vec![backend("a")]);
        let mut next = running.clone();
        next.proxy.listen = "127.0.0.1:9999".parse().expect("an address");
        next.proxy.separator = "__".to_owned();
        next.proxy.max_sessions = 3;
        let plan = Plan::new(&running, &next);
        assert_eq!(plan.restart_needed, ["proxy.listen", "proxy.max_sessions"]);
        let applied = Plan::applicable(&running, next);
        assert_eq!(applied.proxy.listen, running.proxy.listen);
        assert_eq!(applied.proxy.max_sessions, running.proxy.max_sessions);
        // The separator is the gateway's: applied.
        assert_eq!(applied.proxy.separator, "__");
    }
}
