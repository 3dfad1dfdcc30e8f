//! What a reload changes: each backend of the new config is kept, rebuilt
//! or added, each old one that is gone is removed, and the settings that
//! only a restart can change are named and left as they run.
//!
//! A backend is *kept* — its connections, children, breaker, ejection and
//! (with the same shaping) cache — when everything the backend itself
//! reads is unchanged: its transport, resilience and pool keys, and whose
//! traffic it serves. Traffic weights (canary `weight`, `sticky`, mirror
//! `mirror_percent`, `mirror_max_in_flight`, `mirror_unsafe`, failover
//! `priority`) and shaping belong to the
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
                        same_shaping: running.backends[old].shaping == backend.shaping
                            && keys_stay(running, next, &backend.name),
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
    ///
    /// Rules of access are judged with the callers' roles of the same
    /// file: while `auth` waits for a restart, so does `authorization`.
    /// Sessions keep the clients' tokens only when some backend forwarded
    /// them from the start, so `forward_auth` cannot be turned on by a
    /// reload either.
    pub(crate) fn applicable(running: &Config, next: Config) -> Config {
        let mut applied = next;
        let (separator, admin_tools) = (applied.proxy.separator.clone(), applied.proxy.admin_tools);
        applied.proxy = running.proxy.clone();
        applied.proxy.separator = separator;
        applied.proxy.admin_tools = admin_tools;
        if running.auth != applied.auth {
            applied.authorization = running.authorization.clone();
        }
        applied.auth = running.auth.clone();
        applied.audit = running.audit.clone();
        applied.admin = running.admin.clone();
        if !forwards_credentials(running) {
            for backend in &mut applied.backends {
                backend.forward_auth = false;
            }
        }
        applied
    }
}

/// Whether some backend passes clients' tokens on (`forward_auth`).
fn forwards_credentials(config: &Config) -> bool {
    config.backends.iter().any(|backend| backend.forward_auth)
}

/// Whether the cache keys of `primary`'s calls mean the same in `next`:
/// they hold the primary's place in the config and, under a sticky split,
/// its canaries' places, so a kept cache needs them all where they were.
fn keys_stay(running: &Config, next: &Config, primary: &str) -> bool {
    let place = |config: &Config, name: &str| config.backends.iter().position(|b| b.name == name);
    next.backends
        .iter()
        .filter(|b| b.name == primary || b.role.primary() == Some(primary))
        .all(|b| place(running, &b.name) == place(next, &b.name))
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
            unsafe_calls: false,
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

/// The keys that differ and only a restart applies: the listener, the
/// bounds on clients, the seed and name every backend was built with, who
/// may connect (and with it the rules of access), the audit log, the admin
/// API, and `forward_auth` turned on for the first time.
fn restart_needed(running: &Config, next: &Config) -> Vec<&'static str> {
    let (old, new) = (&running.proxy, &next.proxy);
    let checks: [(&'static str, bool); 18] = [
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
        ("proxy.tracing", old.tracing != new.tracing),
        (
            "proxy.allow_unauthenticated",
            old.allow_unauthenticated != new.allow_unauthenticated,
        ),
        ("auth", running.auth != next.auth),
        (
            "authorization",
            running.auth != next.auth && running.authorization != next.authorization,
        ),
        (
            "backends[].forward_auth",
            !forwards_credentials(running) && forwards_credentials(next),
        ),
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
                // Kept, but moved: its cache keys held its old place.
                Fate::Kept {
                    old: 0,
                    same_shaping: false
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

    /// A config from YAML through the loader; every `${VAR}` is a token.
    fn load(text: &str) -> Config {
        crate::config::load_str(
            text,
            crate::config::Format::Yaml,
            "test.yaml",
            std::path::Path::new("."),
            &|name| Some(format!("{name}-0123456789abcdef")),
        )
        .unwrap_or_else(|error| panic!("{error}"))
    }

    fn with_auth(token_scopes: &str, writer_allows: &str) -> Config {
        load(&format!(
            "auth:\n  resource: http://127.0.0.1:8080/mcp\n  bearer:\n    tokens:\n      - {{ token: \"${{T}}\", subject: t, scopes: {token_scopes} }}\n      - {{ token: \"${{U}}\", subject: u, scopes: [writer] }}\nauthorization:\n  roles:\n    reader:\n      - allow: {{ backend: a, tools: [get] }}\n    writer:\n      - allow: {writer_allows}\nbackends:\n  - {{ name: a, transport: http, url: http://127.0.0.1:9/mcp }}\n"
        ))
    }

    #[test]
    fn access_rules_wait_with_the_roles_they_judge() {
        // The token's roles change with the rules: applying the rules
        // alone would judge the old roles by the new rules.
        let running = with_auth("[writer]", "{ backend: a, tools: [write_*] }");
        let next = with_auth("[reader]", "{ backend: \"*\" }");
        let plan = Plan::new(&running, &next);
        assert_eq!(plan.restart_needed, ["auth", "authorization"]);
        let applied = Plan::applicable(&running, next);
        assert_eq!(applied.authorization, running.authorization);
        // With the same callers, new rules apply at once.
        let rules_only = with_auth("[writer]", "{ backend: \"*\" }");
        assert!(Plan::new(&running, &rules_only).restart_needed.is_empty());
        let applied = Plan::applicable(&running, rules_only.clone());
        assert_eq!(applied.authorization, rules_only.authorization);
    }

    #[test]
    fn forwarding_tokens_cannot_start_with_a_reload() {
        let running = config(vec![backend("a")]);
        let mut forwarding = backend("a");
        forwarding.forward_auth = true;
        let next = config(vec![forwarding]);
        let plan = Plan::new(&running, &next);
        assert_eq!(plan.restart_needed, ["backends[].forward_auth"]);
        let applied = Plan::applicable(&running, next);
        assert!(!applied.backends[0].forward_auth);
    }

    #[test]
    fn a_cache_is_kept_only_where_its_keys_mean_the_same() {
        let canary = |name: &str| BackendConfig {
            role: Role::Canary {
                of: "a".to_owned(),
                weight: 10.0,
                sticky: true,
            },
            ..backend(name)
        };
        let running = config(vec![backend("a"), canary("a1"), canary("a2")]);
        // The canaries swap places: side keys would point at the other.
        let swapped = config(vec![backend("a"), canary("a2"), canary("a1")]);
        assert_eq!(
            Plan::new(&running, &swapped).fates[0],
            Fate::Kept {
                old: 0,
                same_shaping: false
            }
        );
        // A backend added at the end moves nothing.
        let added = config(vec![backend("a"), canary("a1"), canary("a2"), backend("b")]);
        assert_eq!(
            Plan::new(&running, &added).fates[0],
            Fate::Kept {
                old: 0,
                same_shaping: true
            }
        );
    }
}
