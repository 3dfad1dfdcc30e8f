//! The audit log: one JSON line per call, saying who called what, from
//! where, and how it ended (`audit:` in the config).
//!
//! Recording never makes a call wait: [`AuditLog::record`] puts the entry
//! in a bounded queue (`audit.queue`) and returns; a writer task turns
//! entries into lines and writes them, a batch at a time, to stdout or to
//! a file opened for appending, flushing after each batch. When the writer
//! falls behind and the queue is full, the entry is dropped and counted
//! ([`AuditLog::dropped`]): a slow disk must not slow the gateway down.
//!
//! Arguments are logged as the SHA-256 digest of their canonical JSON (the
//! same text whatever order the client wrote the keys in), so two calls with
//! the same arguments can be matched without the log holding them; the raw
//! arguments are written too only with `include_arguments: true`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::config::{AuditConfig, AuditTarget};
use crate::shaping::key::canonical_json;

/// The most entries the writer takes from the queue for one write.
const BATCH: usize = 256;

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct AuditEntry {
    /// When the call was received (RFC 3339, UTC; for display only).
    #[serde(serialize_with = "rfc3339")]
    pub(crate) time: SystemTime,
    /// The caller's subject, when it authenticated.
    pub(crate) subject: Option<String>,
    /// The client session.
    pub(crate) session: Option<String>,
    /// The client's address.
    pub(crate) client: Option<SocketAddr>,
    /// The JSON-RPC method.
    pub(crate) method: String,
    /// The backend the call went to.
    pub(crate) backend: Option<String>,
    /// The tool or prompt name, or the resource URI.
    pub(crate) target: Option<String>,
    /// `ok`, `error`, `denied`, `unauthenticated`, `limited`...
    pub(crate) outcome: &'static str,
    /// The JSON-RPC error code, when the call failed.
    pub(crate) code: Option<i64>,
    /// How long the call took, in milliseconds.
    pub(crate) latency_ms: f64,
    /// Hex SHA-256 of the arguments' canonical JSON.
    pub(crate) arguments_sha256: Option<String>,
    /// The arguments themselves, only with `include_arguments`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) arguments: Option<Value>,
}

impl AuditEntry {
    /// An entry for `method` ending in `outcome`, every optional field empty.
    // The front door builds entries (not wired yet).
    #[allow(dead_code)]
    pub(crate) fn new(time: SystemTime, method: impl Into<String>, outcome: &'static str) -> Self {
        Self {
            time,
            subject: None,
            session: None,
            client: None,
            method: method.into(),
            backend: None,
            target: None,
            outcome,
            code: None,
            latency_ms: 0.0,
            arguments_sha256: None,
            arguments: None,
        }
    }

    /// Fills in the arguments' digest, and the arguments themselves when
    /// `include` (the log's `include_arguments`).
    // The front door records the arguments of each call (not wired yet).
    #[allow(dead_code)]
    pub(crate) fn with_arguments(mut self, arguments: Option<&Value>, include: bool) -> Self {
        self.arguments_sha256 = arguments.map(arguments_sha256);
        self.arguments = arguments.filter(|_| include).cloned();
        self
    }
}

/// Hex SHA-256 of `arguments`' canonical JSON.
pub(crate) fn arguments_sha256(arguments: &Value) -> String {
    let digest = Sha256::digest(canonical_json(arguments).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The audit log: a bounded queue in front of a writer task.
#[derive(Debug)]
pub(crate) struct AuditLog {
    sender: mpsc::Sender<AuditEntry>,
    dropped: Arc<AtomicU64>,
    include_arguments: bool,
}

// The front door records each call (not wired yet).
#[allow(dead_code)]
impl AuditLog {
    /// Opens `config.to` (a file is created if missing, and appended to) and
    /// starts the writer on the current tokio runtime.
    pub(crate) fn start(config: &AuditConfig) -> std::io::Result<AuditLog> {
        let out: Box<dyn AsyncWrite + Send + Unpin> = match &config.to {
            AuditTarget::Stdout => Box::new(tokio::io::stdout()),
            AuditTarget::File(path) => Box::new(tokio::fs::File::from_std(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )),
        };
        Ok(Self::to_writer(out, config.queue, config.include_arguments))
    }

    /// A log writing to `out`, with room for `queue` entries (at least one).
    pub(crate) fn to_writer(
        out: Box<dyn AsyncWrite + Send + Unpin>,
        queue: usize,
        include_arguments: bool,
    ) -> AuditLog {
        let (sender, receiver) = mpsc::channel(queue.max(1));
        tokio::spawn(write_lines(receiver, out));
        AuditLog {
            sender,
            dropped: Arc::new(AtomicU64::new(0)),
            include_arguments,
        }
    }

    /// Whether entries should carry the raw arguments.
    pub(crate) fn include_arguments(&self) -> bool {
        self.include_arguments
    }

    /// Queues `entry` for writing, or drops it (counted) if the queue is
    /// full or the writer has stopped. Never waits.
    pub(crate) fn record(&self, entry: AuditEntry) {
        if self.sender.try_send(entry).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Entries dropped so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The writer task: a batch of lines per write, flushed after each, until
/// every sender is gone.
async fn write_lines(
    mut receiver: mpsc::Receiver<AuditEntry>,
    mut out: Box<dyn AsyncWrite + Send + Unpin>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut buffer = Vec::new();
    let mut failing = false;
    while receiver.recv_many(&mut batch, BATCH).await > 0 {
        buffer.clear();
        for entry in batch.drain(..) {
            if serde_json::to_writer(&mut buffer, &entry).is_ok() {
                buffer.push(b'\n');
            }
        }
        let written = async {
            out.write_all(&buffer).await?;
            out.flush().await
        }
        .await;
        match written {
            Ok(()) => failing = false,
            // Warned once per run of failures, not once per batch.
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%error, "cannot write the audit log; its lines are lost");
            }
            Err(_) => {}
        }
    }
}

/// `time` as RFC 3339 in UTC with milliseconds: `2026-01-01T00:00:00.000Z`.
fn rfc3339<S: serde::Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_rfc3339(*time))
}

fn format_rfc3339(time: SystemTime) -> String {
    // A time before 1970 is shown as the epoch: it is display only.
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days ≥ 0).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use tokio::io::AsyncBufReadExt;

    use super::*;

    /// 2026-01-01T00:00:00Z.
    fn new_year() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_767_225_600)
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(format_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(new_year()), "2026-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339(new_year() + Duration::from_millis(59 * 86_400_000 + 3_723_456)),
            "2026-03-01T01:02:03.456Z"
        );
        assert_eq!(
            format_rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn the_digest_ignores_key_order_and_only_the_flag_adds_arguments() {
        let a = json!({"b": [1, {"y": 2, "x": 1}], "a": "s"});
        let b = json!({"a": "s", "b": [1, {"x": 1, "y": 2}]});
        assert_eq!(arguments_sha256(&a), arguments_sha256(&b));
        assert_ne!(arguments_sha256(&a), arguments_sha256(&json!({"a": "t"})));
        // The digest of canonical `{}`, as sha256sum prints it.
        assert_eq!(
            arguments_sha256(&json!({})),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let entry = AuditEntry::new(new_year(), "tools/call", "ok");
        let hidden = entry.clone().with_arguments(Some(&a), false);
        assert_eq!(hidden.arguments, None);
        assert_eq!(hidden.arguments_sha256, Some(arguments_sha256(&b)));
        let shown = entry.clone().with_arguments(Some(&a), true);
        assert_eq!(shown.arguments, Some(a));
        assert_eq!(entry.with_arguments(None, true).arguments_sha256, None);
    }

    #[tokio::test]
    async fn one_json_line_per_entry() {
        let (write, read) = tokio::io::duplex(64 * 1024);
        let log = AuditLog::to_writer(Box::new(write), 16, true);
        let mut entry = AuditEntry::new(new_year(), "tools/call", "denied")
            .with_arguments(Some(&json!({"q": 1})), log.include_arguments());
        entry.subject = Some("ci-bot".into());
        entry.session = Some("s-1".into());
        entry.client = Some("10.0.0.7:5123".parse().unwrap());
        entry.backend = Some("search".into());
        entry.target = Some("find".into());
        entry.code = Some(-32016);
        entry.latency_ms = 1.5;
        log.record(entry);
        log.record(AuditEntry::new(new_year(), "initialize", "ok"));
        let mut lines = tokio::io::BufReader::new(read).lines();
        let first: Value =
            serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(
            first,
            json!({
                "time": "2026-01-01T00:00:00.000Z",
                "subject": "ci-bot",
                "session": "s-1",
                "client": "10.0.0.7:5123",
                "method": "tools/call",
                "backend": "search",
                "target": "find",
                "outcome": "denied",
                "code": -32016,
                "latency_ms": 1.5,
                "arguments_sha256": arguments_sha256(&json!({"q": 1})),
                "arguments": {"q": 1},
            })
        );
        let second: Value =
            serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(second["method"], "initialize");
        assert_eq!(second["subject"], Value::Null);
        assert!(second.get("arguments").is_none(), "{second}");
        assert_eq!(log.dropped(), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_drops_without_waiting() {
        // The writer cannot run before this test yields: the queue of 2
        // takes two entries and the rest are dropped, at once.
        let (write, read) = tokio::io::duplex(64 * 1024);
        let log = AuditLog::to_writer(Box::new(write), 2, false);
        for _ in 0..5 {
            log.record(AuditEntry::new(new_year(), "ping", "ok"));
        }
        assert_eq!(log.dropped(), 3);
        let mut lines = tokio::io::BufReader::new(read).lines();
        for _ in 0..2 {
            let line = lines.next_line().await.unwrap().unwrap();
            assert!(line.contains("\"ping\""), "{line}");
        }
        // Room again once the writer has caught up.
        log.record(AuditEntry::new(new_year(), "later", "ok"));
        assert_eq!(log.dropped(), 3);
        let line = lines.next_line().await.unwrap().unwrap();
        assert!(line.contains("\"later\""), "{line}");
    }

    #[tokio::test]
    async fn a_file_is_appended_to() {
        let path =
            std::env::temp_dir().join(format!("mcp-proxy-audit-{}.jsonl", std::process::id()));
        std::fs::write(&path, "earlier\n").unwrap();
        let config = AuditConfig {
            to: AuditTarget::File(path.clone()),
            include_arguments: false,
            queue: 4,
        };
        let log = AuditLog::start(&config).unwrap();
        log.record(AuditEntry::new(new_year(), "ping", "ok"));
        drop(log);
        let mut text = String::new();
        for _ in 0..200 {
            text = std::fs::read_to_string(&path).unwrap();
            if text.lines().count() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = std::fs::remove_file(&path);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0], "earlier");
        assert!(lines[1].contains("\"method\":\"ping\""), "{text}");
    }
}
