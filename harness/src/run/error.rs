//! Why a run stopped before it could be judged: its setup failed (a work
//! folder, a fake, the proxy), the proxy never became ready, or the load
//! could not reach it. The message becomes the report's error.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use mcp_proxy::config::ConfigError;
use mcp_proxy::server::StartError;

use crate::load::LoadError;

/// Why a run stopped before its checks.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    /// The temporary folder for journals and the proxy's files.
    #[error("cannot create a work folder: {0}")]
    WorkDir(io::Error),
    /// The scenario's path, which stdio fakes are given, has no absolute form.
    #[error("cannot resolve {}: {source}", path.display())]
    ResolveScenario { path: PathBuf, source: io::Error },
    /// An HTTP fake on an ephemeral port, which a `--target` proxy cannot know.
    #[error(
        "fake {fake:?} needs a fixed port to run against --target: give it `port`, or run with --ports / --port {fake}=PORT, or let the harness start the target (--target-cmd)"
    )]
    FakeNeedsPort { fake: String },
    /// The issuer's JWKS server on a free port, which a running target cannot know.
    #[error(
        "issuer {issuer:?} needs a fixed port to run against --target: give it `port` (the target's config names its JWKS URL)"
    )]
    IssuerNeedsPort { issuer: String },
    /// The issuer's JWKS server could not start.
    #[error("cannot start the JWKS server of issuer {issuer:?}: {source}")]
    StartJwks {
        issuer: String,
        source: std::io::Error,
    },
    /// The identities' keys or credentials could not be made.
    #[error("identities: {0}")]
    Identity(String),
    /// A stdio fake, which only a proxy the harness starts can spawn.
    #[error(
        "fake {fake:?} is a stdio fake; a running --target cannot spawn it: let the harness start the target with --target-cmd and {{fake.{fake}.command}}"
    )]
    StdioFakeWithTarget { fake: String },
    /// A scenario without a `proxy:` section, in a mode that configures our proxy.
    #[error("{0}")]
    NeedsTarget(String),
    /// A `--target-cmd` or `--target-config` placeholder that names nothing.
    #[error("{place}: {source}")]
    Placeholder {
        /// `--target-cmd` or the template's path.
        place: String,
        source: super::placeholders::UnknownPlaceholder,
    },
    /// The `--target-config` template could not be read.
    #[error("cannot read the --target-config template {}: {source}", path.display())]
    ReadTemplate { path: PathBuf, source: io::Error },
    /// The `--target-cmd` gateway did not start.
    #[error(transparent)]
    TargetCmd(#[from] crate::target_cmd::TargetCmdError),
    /// An HTTP fake that could not start.
    #[error("cannot start fake {fake:?}: {source}")]
    FakeStart { fake: String, source: io::Error },
    /// A stdio fake's journal could not be read back.
    #[error("cannot read the journal {}: {source}", path.display())]
    ReadJournal { path: PathBuf, source: io::Error },
    /// The inline proxy config, with the fakes' addresses filled in, is invalid.
    #[error(transparent)]
    ProxyConfig(ConfigError),
    /// The in-process proxy could not start.
    #[error("cannot start the proxy: {0}")]
    ProxyStart(StartError),
    /// No free loopback port for a spawned proxy.
    #[error("cannot find a free port for the proxy: {0}")]
    FreePort(io::Error),
    /// The generated config of a spawned proxy does not serialize.
    #[error("cannot write the proxy config: {0}")]
    SerializeConfig(serde_json::Error),
    /// The generated config of a spawned proxy could not be written.
    #[error("cannot write {}: {source}", path.display())]
    WriteConfig { path: PathBuf, source: io::Error },
    /// The log file of a spawned proxy could not be created.
    #[error("cannot create the proxy log: {0}")]
    CreateLog(io::Error),
    /// The proxy binary could not be run.
    #[error("cannot run {}: {source}", bin.display())]
    Spawn { bin: PathBuf, source: io::Error },
    /// The load could not be set up (a target that is not a plain HTTP URL),
    /// or a session for the readiness poll did not open.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A session for the readiness poll opened, but listing tools failed.
    #[error("tools/list failed: {0}")]
    ListTools(LoadError),
    /// Ctrl-C while waiting for the proxy.
    #[error("interrupted")]
    Interrupted,
    /// A spawned proxy exited while the harness waited for it.
    #[error("the proxy exited before it was ready ({status})")]
    ProxyExited { status: String },
    /// The proxy did not list the workload's tools in time.
    #[error("the proxy at {url} was not ready within {}s ({problem})", timeout.as_secs())]
    NotReady {
        url: String,
        timeout: Duration,
        /// What the last attempt saw.
        problem: String,
    },
    /// The proxy became ready only after the first outage had begun.
    #[error(
        "the proxy took {:.1}s to become ready, past the first outage at {:.1}s",
        ready_at.as_secs_f64(),
        first_outage.as_secs_f64()
    )]
    ReadyTooLate {
        ready_at: Duration,
        first_outage: Duration,
    },
}
