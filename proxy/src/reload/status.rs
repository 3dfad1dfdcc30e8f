//! What reloads did, for `/admin/status`, the logs and the callers of a
//! reload: the changes a reload applied, why one was rejected, and the
//! counts.

use serde::Serialize;

use crate::config::ConfigError;

/// The changes a reload applied, by backend name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReloadReport {
    /// Running on as they were (connections, breaker, ejection; the cache
    /// too unless its shaping or place in the config changed).
    pub kept: Vec<String>,
    /// Replaced by a new backend; calls in flight finish on the old.
    pub rebuilt: Vec<String>,
    /// New backends, connecting.
    pub added: Vec<String>,
    /// Gone: they drain their calls in flight, then stop.
    pub removed: Vec<String>,
    /// Changed keys that only a restart applies; they keep their running
    /// values (e.g. `proxy.listen`).
    pub restart_needed: Vec<String>,
}

/// Why a reload was not applied. The running config stays.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadError {
    /// The new config is invalid: `file:line: key: message`.
    #[error("{0}")]
    Invalid(ConfigError),
    /// The proxy was started without a config file to read again.
    #[error("no config file to reload: the proxy was not started from one")]
    NoSource,
    /// The proxy is shutting down.
    #[error("the proxy is shutting down")]
    ShuttingDown,
}

/// The last reload, as `/admin/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LastReload {
    /// `applied` or `rejected`.
    pub result: &'static str,
    /// When, in seconds since the Unix epoch (the platform's wall clock).
    pub at: u64,
    /// What changed, when applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<ReloadReport>,
    /// Why not, when rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The reload history `/admin/status` reports.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct History {
    /// The file the proxy reloads from, if any.
    pub config: Option<String>,
    /// Reloads applied.
    pub applied: u64,
    /// Reloads rejected (the config stayed as it was).
    pub rejected: u64,
    /// The most recent one.
    pub last: Option<LastReload>,
    /// Keys changed in the file that keep their running values until a restart.
    pub restart_needed: Vec<String>,
}

impl History {
    pub(crate) fn applied(&mut self, at: u64, report: &ReloadReport) {
        self.applied += 1;
        self.restart_needed.clone_from(&report.restart_needed);
        self.last = Some(LastReload {
            result: "applied",
            at,
            changes: Some(report.clone()),
            error: None,
        });
    }

    pub(crate) fn rejected(&mut self, at: u64, error: &ReloadError) {
        self.rejected += 1;
        self.last = Some(LastReload {
            result: "rejected",
            at,
            changes: None,
            error: Some(error.to_string()),
        });
    }
}
