//! The `mcp-proxy` command line: `serve` and `check`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mcp_proxy::ConfigWatch;
use mcp_proxy::config::{
    self, Access, AuditTarget, AuthMethod, Config, LoadBalancing, Role, TransportConfig,
};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

/// mimalloc rather than the system allocator: a call through the proxy
/// allocates and frees many small buffers across threads, where glibc's
/// malloc spent a fifth of the proxy's CPU (README, "Benchmarks").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A resilient MCP gateway: many MCP servers behind one streamable-HTTP endpoint.
#[derive(Parser)]
#[command(name = "mcp-proxy", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy until SIGTERM or SIGINT, then drain and stop
    /// gracefully. SIGHUP reloads the config file.
    Serve {
        /// The config file: YAML (.yaml, .yml) or TOML (.toml), one schema.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Log filter, in RUST_LOG syntax (e.g. `info`, `mcp_proxy=debug`).
        /// RUST_LOG, when set, wins.
        #[arg(long, default_value = "info", value_name = "FILTER")]
        log: String,
        /// Reload the config when the file changes (it is read once a
        /// second). SIGHUP and `POST /admin/reload` reload it in any case.
        #[arg(long)]
        watch: bool,
    },
    /// Validate a config file and print a summary; exit 0 if valid, 1 if not.
    Check {
        /// The config file: YAML (.yaml, .yml) or TOML (.toml), one schema.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Serve { config, log, watch } => serve(&config, &log, watch),
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(config) => {
            // Values from ${VAR} and *_file keys are never printed.
            print!("{}", config.secrets.redact(&summary(path, &config)));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn summary(path: &std::path::Path, config: &Config) -> String {
    let mut text = format!(
        "{}: valid\nproxy {:?} listening on http://{}/mcp, separator {:?}, {} backend(s):\n",
        path.display(),
        config.proxy.name,
        config.proxy.listen,
        config.proxy.separator,
        config.backends.len()
    );
    for backend in &config.backends {
        let targets: Vec<String> = backend
            .endpoints
            .iter()
            .map(|endpoint| match endpoint {
                TransportConfig::Stdio { command, args, .. } => {
                    format!("{command} {}", args.join(" "))
                        .trim_end()
                        .to_owned()
                }
                TransportConfig::Http { .. } => endpoint.label(),
            })
            .collect();
        text.push_str(&format!(
            "  {:<20} {:<5} {}\n",
            backend.name,
            backend.transport_kind(),
            targets.join(", ")
        ));
        let mut policies = Vec::new();
        if let Some(d) = backend.timeout.per_try {
            policies.push(format!("timeout {d:?} per try"));
        }
        if let Some(d) = backend.timeout.overall {
            policies.push(format!("timeout {d:?} overall"));
        }
        if let Some(retry) = &backend.retry {
            policies.push(format!("up to {} retries", retry.max_retries));
        }
        if let Some(hedging) = backend.hedging {
            policies.push(format!(
                "hedging after {:?} (up to {})",
                hedging.delay, hedging.max_hedges
            ));
        }
        if backend.endpoints.len() > 1 {
            let balancing = match backend.load_balancing {
                LoadBalancing::RoundRobin => "round robin",
                LoadBalancing::LeastRequests => "least requests",
                LoadBalancing::Random => "random",
            };
            policies.push(format!(
                "{} endpoints, {balancing}",
                backend.endpoints.len()
            ));
        }
        if let Some(outliers) = backend.outlier_detection {
            policies.push(format!(
                "ejection after {} failures in a row",
                outliers.consecutive_failures
            ));
        }
        if let Some(max) = backend.max_concurrency {
            policies.push(format!("{max} in flight"));
        }
        if let Some(rate) = backend.rate_limit {
            policies.push(format!("{} calls per {:?}", rate.requests, rate.per));
        }
        if let Some(breaker) = backend.circuit_breaker {
            policies.push(format!(
                "circuit breaker at {}% failures",
                breaker.failure_rate * 100.0
            ));
        }
        match &backend.role {
            Role::Primary => {}
            Role::Canary { of, weight, sticky } => policies.push(format!(
                "canary of {of}: {weight}% of its calls{}",
                if *sticky { " (per session)" } else { "" }
            )),
            Role::Mirror { of, percent, .. } => {
                policies.push(format!("mirror of {of}: {percent}% of its calls"))
            }
            Role::Failover { of, priority } => {
                policies.push(format!("failover for {of} (priority {priority})"))
            }
        }
        let shaping = &backend.shaping;
        if !shaping.aliases.is_empty() {
            policies.push(format!("{} alias(es)", shaping.aliases.len()));
        }
        if let Some(cache) = shaping.cache {
            policies.push(format!("cache of {} answers", cache.max_entries));
        }
        if shaping.coalesce {
            policies.push("coalescing".to_owned());
        }
        if backend.endpoints.iter().any(|e| {
            matches!(
                e,
                TransportConfig::Stdio {
                    inherit_env: true,
                    ..
                }
            )
        }) {
            policies.push("inherits the proxy's environment".to_owned());
        }
        if backend.forward_auth {
            policies
                .push("forwards the client's Authorization header (token passthrough)".to_owned());
        }
        if !policies.is_empty() {
            text.push_str(&format!("  {:<20} {}\n", "", policies.join(", ")));
        }
    }
    if let Some(tracing) = &config.proxy.tracing {
        text.push_str(&format!(
            "tracing: spans exported over OTLP/HTTP to {} as service {}\n",
            tracing.otlp_endpoint, tracing.service_name
        ));
    }
    text.push_str(&security_summary(config));
    text
}

/// Who may call, what each role may use, the audit log and `/admin/*`.
fn security_summary(config: &Config) -> String {
    let mut text = String::new();
    match &config.auth {
        None if config.proxy.allow_unauthenticated && !config.proxy.listen.ip().is_loopback() => {
            text.push_str("auth: none, on a non-loopback address (allow_unauthenticated)\n");
        }
        None => text.push_str("auth: none (loopback only)\n"),
        Some(auth) => {
            let method = match &auth.method {
                AuthMethod::Bearer(tokens) => {
                    let subjects: Vec<&str> = tokens.iter().map(|t| t.subject.as_str()).collect();
                    format!("{} bearer token(s) ({})", tokens.len(), subjects.join(", "))
                }
                AuthMethod::Jwt(jwt) => {
                    let mut sources = Vec::new();
                    if let Some(url) = &jwt.keys.jwks_url {
                        sources.push(format!("JWKS {url}"));
                    }
                    if !jwt.keys.static_keys.is_empty() {
                        sources.push(format!("{} static key(s)", jwt.keys.static_keys.len()));
                    }
                    if jwt.keys.secret.is_some() {
                        sources.push("an HMAC secret".to_owned());
                    }
                    format!(
                        "JWT ({}; issuer {}; keys: {})",
                        jwt.algorithms.join(", "),
                        jwt.issuer.as_deref().unwrap_or("not checked"),
                        sources.join(", ")
                    )
                }
            };
            text.push_str(&format!("auth: {method}, resource {}", auth.resource));
            if let Some(rate) = auth.rate_limit {
                text.push_str(&format!(
                    ", {} calls per {:?} per caller",
                    rate.requests, rate.per
                ));
            }
            text.push('\n');
        }
    }
    if let Some(authorization) = &config.authorization {
        let roles: Vec<&str> = authorization.roles.keys().map(String::as_str).collect();
        text.push_str(&format!(
            "authorization: {} role(s) ({}), default {}\n",
            roles.len(),
            roles.join(", "),
            match authorization.default {
                Access::Allow => "allow",
                Access::Deny => "deny",
            }
        ));
    }
    if let Some(audit) = &config.audit {
        let to = match &audit.to {
            AuditTarget::Stdout => "stdout".to_owned(),
            AuditTarget::File(path) => path.display().to_string(),
        };
        text.push_str(&format!(
            "audit: to {to}, arguments {}\n",
            if audit.include_arguments {
                "included"
            } else {
                "as a SHA-256 digest"
            }
        ));
    }
    let admin = &config.admin;
    if admin.listen.is_some() || admin.token.is_some() {
        text.push_str(&format!(
            "admin: {}{}\n",
            admin
                .listen
                .map_or("on the main listener".to_owned(), |a| format!(
                    "on http://{a}"
                )),
            if admin.token.is_some() {
                ", token required"
            } else {
                ""
            }
        ));
    }
    text
}

fn serve(path: &std::path::Path, log: &str, watch: bool) -> ExitCode {
    let filter = EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(log));
    let filter = match filter {
        Ok(filter) => filter,
        Err(error) => {
            eprintln!("error: invalid --log filter {log:?}: {error}");
            return ExitCode::FAILURE;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = match config::load(path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        // Both before the start: a SIGHUP while backends start reloads
        // rather than kills, and an edit made meanwhile is seen.
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => Some(hangup),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; reload with POST /admin/reload");
                None
            }
        };
        let mut watch = watch.then(|| ConfigWatch::new(path.to_path_buf()));
        let proxy = match mcp_proxy::server::start(config).await {
            Ok(proxy) => proxy,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        };
        proxy.set_config_file(path.to_path_buf());
        let stop = wait_for_signal();
        tokio::pin!(stop);
        loop {
            // Each reload logs what it applied or why it was rejected.
            tokio::select! {
                biased;
                () = &mut stop => break,
                Some(()) = async { hangup.as_mut()?.recv().await } => {
                    tracing::info!("SIGHUP received: reloading {}", path.display());
                    let _ = proxy.reload_config_file().await;
                }
                () = async {
                    match watch.as_mut() {
                        Some(watch) => watch.changed().await,
                        None => std::future::pending().await,
                    }
                } => {
                    tracing::info!("{} changed: reloading", path.display());
                    let _ = proxy.reload_config_file().await;
                }
            }
        }
        proxy.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                biased;
                _ = terminate.recv() => tracing::info!("SIGTERM received"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the proxy");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
