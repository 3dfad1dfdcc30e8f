//! The proxy under test, in one of four modes:
//!
//! - in-process: the `mcp-proxy` library started on an ephemeral port (the
//!   default; nothing to install);
//! - binary: a spawned `mcp-proxy serve` with a generated config file, in
//!   its own process group, stopped with SIGTERM (and killed if it lingers);
//! - target: an already running proxy at a URL, a black box the harness
//!   neither starts nor stops;
//! - target command: any gateway at a URL that the harness starts itself
//!   once the fakes listen (`--target-cmd`, its config rendered from
//!   `--target-config`; see `placeholders.rs`), and stops after the run.
//!   The gateway is still a black box: only its command line and config
//!   file know it.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::RunError;
use super::placeholders::{Placeholders, Rendering};
use crate::process_group::GroupChild;
use crate::report::TARGET_MODE_PREFIX;
use crate::report::replay::Flag;
use crate::scenario::{FakeAddress, Scenario, to_json};
use crate::shell;
use crate::target_cmd::{self, TargetProcess};

/// The config file of a spawned proxy binary, in the run's work folder
/// (rewritten by reload faults).
pub(crate) const BINARY_CONFIG_FILE: &str = "proxy.yaml";

/// How long a spawned proxy binary may take to exit after SIGTERM.
const BINARY_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Which proxy a run aims at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyMode {
    /// The proxy library, in this process.
    InProcess,
    /// `PATH serve --config <generated>`.
    Binary(PathBuf),
    /// An external proxy's MCP endpoint URL.
    Target(String),
    /// A gateway the harness starts and stops itself.
    TargetCmd(TargetCmd),
}

/// `run --target URL --target-cmd CMD [--target-config FILE] [--target-log FILE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetCmd {
    /// Its MCP endpoint, once it runs.
    pub url: String,
    /// The command, placeholders and all; run as `sh -c "exec CMD"`.
    pub command: String,
    /// A config file with placeholders, rendered into the run's work folder
    /// as `{config}`.
    pub config_template: Option<PathBuf>,
    /// Where its output goes (default: the run's work folder, removed after
    /// the run).
    pub log: Option<PathBuf>,
}

impl ProxyMode {
    /// A short name for reports.
    pub fn describe(&self) -> String {
        match self {
            ProxyMode::InProcess => "in-process mcp-proxy".into(),
            ProxyMode::Binary(path) => format!("binary {}", path.display()),
            ProxyMode::Target(url) => format!("{TARGET_MODE_PREFIX}{url}"),
            ProxyMode::TargetCmd(target) => {
                format!(
                    "{TARGET_MODE_PREFIX}{} (started: {})",
                    target.url, target.command
                )
            }
        }
    }

    /// The mode as `mcp-harness run` flags, for the replay command.
    pub fn flags(&self) -> Vec<Flag> {
        match self {
            ProxyMode::InProcess => Vec::new(),
            ProxyMode::Binary(path) => vec![Flag::with("--proxy-bin", path.display().to_string())],
            ProxyMode::Target(url) => vec![Flag::with("--target", url)],
            ProxyMode::TargetCmd(target) => {
                let mut flags = vec![
                    Flag::with("--target", &target.url),
                    Flag::with("--target-cmd", &target.command),
                ];
                flags.extend(
                    target
                        .config_template
                        .iter()
                        .map(|file| Flag::with("--target-config", file.display().to_string())),
                );
                flags.extend(
                    target
                        .log
                        .iter()
                        .map(|file| Flag::with("--target-log", file.display().to_string())),
                );
                flags
            }
        }
    }
}

/// A proxy started for a run.
pub(crate) enum ProxyUnderTest {
    InProcess(mcp_proxy::server::RunningProxy),
    Binary { child: GroupChild, url: String },
    Target(String),
    Started { process: TargetProcess, url: String },
}

impl ProxyUnderTest {
    /// Starts the proxy of `scenario` in `mode`, reaching fakes at `address`;
    /// a started gateway not yet ready when `cancel` fires is stopped.
    pub(crate) async fn start(
        mode: &ProxyMode,
        scenario: &Scenario,
        address: &dyn Fn(&str) -> FakeAddress,
        work_dir: &Path,
        seed: u64,
        cancel: &CancellationToken,
    ) -> Result<ProxyUnderTest, RunError> {
        let file = scenario.file.display().to_string();
        let base_dir = match scenario.file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        let section = || {
            scenario
                .proxy
                .as_ref()
                .ok_or_else(|| RunError::NeedsTarget(scenario.needs_target().unwrap_or_default()))
        };
        match mode {
            ProxyMode::InProcess => {
                let listen = SocketAddr::from(([127, 0, 0, 1], 0));
                let config = section()?
                    .config(&file, &base_dir, address, listen, seed)
                    .map_err(RunError::ProxyConfig)?;
                let proxy = mcp_proxy::server::start(config)
                    .await
                    .map_err(RunError::ProxyStart)?;
                Ok(ProxyUnderTest::InProcess(proxy))
            }
            ProxyMode::Binary(bin) => {
                let listen = free_loopback_port().map_err(RunError::FreePort)?;
                let tree = section()?.config_tree(address, listen, seed);
                let config_path = work_dir.join(BINARY_CONFIG_FILE);
                let text = serde_json::to_string_pretty(&to_json(&tree))
                    .map_err(RunError::SerializeConfig)?;
                std::fs::write(&config_path, text).map_err(|source| RunError::WriteConfig {
                    path: config_path.clone(),
                    source,
                })?;
                let log = std::fs::File::create(work_dir.join("proxy.log"))
                    .map_err(RunError::CreateLog)?;
                let child = GroupChild::spawn(
                    Command::new(bin)
                        .arg("serve")
                        .arg("--config")
                        .arg(&config_path)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(log),
                )
                .map_err(|source| RunError::Spawn {
                    bin: bin.clone(),
                    source,
                })?;
                Ok(ProxyUnderTest::Binary {
                    child,
                    url: format!("http://{listen}/mcp"),
                })
            }
            ProxyMode::Target(url) => Ok(ProxyUnderTest::Target(url.clone())),
            ProxyMode::TargetCmd(target) => {
                let placeholders = Placeholders::of_fakes(
                    scenario
                        .fakes
                        .iter()
                        .map(|f| (f.name.as_str(), address(&f.name))),
                );
                let command = target_command_line(target, placeholders, work_dir)?;
                let log = target
                    .log
                    .clone()
                    .unwrap_or_else(|| work_dir.join("target.log"));
                let process = TargetProcess::start(&command, &target.url, &log, cancel).await?;
                Ok(ProxyUnderTest::Started {
                    process,
                    url: target.url.clone(),
                })
            }
        }
    }

    /// The MCP endpoint.
    pub(crate) fn url(&self) -> String {
        match self {
            ProxyUnderTest::InProcess(p) => p.url(),
            ProxyUnderTest::Binary { url, .. } => url.clone(),
            ProxyUnderTest::Target(url) | ProxyUnderTest::Started { url, .. } => url.clone(),
        }
    }

    /// The process id of a spawned binary still running; `None` for the
    /// others (whose memory is not theirs alone, or not the harness's to see).
    pub(crate) fn pid(&self) -> Option<u32> {
        match self {
            ProxyUnderTest::Binary { child, .. } => child.id(),
            _ => None,
        }
    }

    /// For a spawned binary: `Ok` while it runs, `Err(status)` once it
    /// exited; `None` for proxies whose life the harness does not own.
    pub(crate) fn stayed_up(&mut self) -> Option<Result<(), String>> {
        match self {
            ProxyUnderTest::Binary { .. } | ProxyUnderTest::Started { .. } => {
                Some(self.exited().map_or(Ok(()), Err))
            }
            _ => None,
        }
    }

    /// Whether a spawned binary has already exited (with its status).
    pub(crate) fn exited(&mut self) -> Option<String> {
        match self {
            ProxyUnderTest::Binary { child, .. } => child.exited().map(|status| status.to_string()),
            ProxyUnderTest::Started { process, .. } => process.exited().map(|status| {
                format!(
                    "{status}; the end of its log:\n{}",
                    target_cmd::tail(process.log())
                )
            }),
            _ => None,
        }
    }

    /// Stops what the run started: the in-process proxy shuts down
    /// gracefully (stopping its stdio fakes); a binary gets SIGTERM (it then
    /// stops its stdio fakes itself), and SIGKILL if it lingers — its fakes,
    /// each in a process group of their own, then exit on end of input; a
    /// target is left alone; a started target gets SIGTERM, then SIGKILL,
    /// to its process group.
    pub(crate) async fn stop(self) {
        match self {
            ProxyUnderTest::InProcess(proxy) => {
                proxy.shutdown().await;
            }
            ProxyUnderTest::Binary { child, .. } => {
                child.stop(BINARY_STOP_TIMEOUT).await;
            }
            ProxyUnderTest::Started { process, .. } => process.stop().await,
            ProxyUnderTest::Target(_) => {}
        }
    }
}

/// The `--target-cmd` command line with the fakes' `placeholders` and
/// `{config}`, the `--target-config` template rendered into `work_dir`
/// (as one shell word, like a fake's command).
fn target_command_line(
    target: &TargetCmd,
    mut placeholders: Placeholders,
    work_dir: &Path,
) -> Result<String, RunError> {
    if let Some(template) = &target.config_template {
        let config = render_config(template, &placeholders, work_dir)?;
        placeholders.set("config", shell::quote(&config.display().to_string()));
    }
    placeholders
        .render(&target.command, Rendering::Command)
        .map_err(|source| RunError::Placeholder {
            place: "--target-cmd".into(),
            source,
        })
}

/// Renders the `--target-config` template into `work_dir`, under the
/// template's own file name (a gateway may read the format from it).
fn render_config(
    template: &Path,
    placeholders: &Placeholders,
    work_dir: &Path,
) -> Result<PathBuf, RunError> {
    let text = std::fs::read_to_string(template).map_err(|source| RunError::ReadTemplate {
        path: template.to_owned(),
        source,
    })?;
    let rendered = placeholders
        .render(&text, Rendering::ConfigTemplate)
        .map_err(|source| RunError::Placeholder {
            place: template.display().to_string(),
            source,
        })?;
    let name = template
        .file_name()
        .map_or_else(|| "target-config".into(), |n| n.to_owned());
    let path = work_dir.join(name);
    std::fs::write(&path, rendered).map_err(|source| RunError::WriteConfig {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// A loopback port that is free right now (bound, then released).
fn free_loopback_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind(("127.0.0.1", 0))?.local_addr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_is_one_shell_word_in_the_command_line() {
        let dir = std::env::temp_dir().join(format!("target cmd {}", std::process::id()));
        let work_dir = dir.join("work dir");
        std::fs::create_dir_all(&work_dir).unwrap();
        let template = dir.join("gw.toml");
        std::fs::write(&template, "listen = 1\n").unwrap();
        let target = TargetCmd {
            url: "http://127.0.0.1:18580/".into(),
            command: "gw --config {config}".into(),
            config_template: Some(template),
            log: None,
        };
        let command = target_command_line(&target, Placeholders::default(), &work_dir).unwrap();
        let config = work_dir.join("gw.toml");
        assert_eq!(command, format!("gw --config '{}'", config.display()));
        assert_eq!(std::fs::read_to_string(&config).unwrap(), "listen = 1\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
