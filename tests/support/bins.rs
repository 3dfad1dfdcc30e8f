//! The workspace's binaries for tests that run them as a user would.
//!
//! The root package cannot use `CARGO_BIN_EXE_*` (the binaries belong to
//! other packages), and `cargo test` does not build another package's binary
//! unless that package has integration tests of its own. So the first test
//! that needs a binary runs `cargo build -p NAME --bin NAME` (a no-op when it
//! is fresh) and uses the executable cargo reports — never a stale one left
//! over from an older build.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

/// The workspace root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// How long building the binary may take (a cold build of the proxy, maybe
/// waiting for another cargo to release the build directory).
const BUILD_BOUND: Duration = Duration::from_secs(20 * 60);

///
/// # Panics
///
/// When cargo cannot build it, with cargo's output.
pub fn proxy_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| build_binary("mcp-proxy"))
}

/// The `mcp-harness` executable, built (or found fresh) once per test run.
///
/// # Panics
///
/// When cargo cannot build it, with cargo's output.
pub fn harness_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| build_binary("mcp-harness"))
}

fn build_binary(name: &str) -> PathBuf {
    // Cargo tells the processes it runs which cargo it is.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .current_dir(root())
        .args([
            "build",
            "-p",
            name,
            "--bin",
            name,
            "--message-format=json-render-diagnostics",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The test binary lives in <target>/<profile>/deps; build the same profile
    // (`dev` and `test` share the `debug` folder; other profiles are named
    // after their folder).
    if let Some(profile) = test_profile_dir().as_deref().and_then(Path::file_name)
        && profile != "debug"
    {
        command.arg("--profile").arg(profile);
    }
    let output = run_bounded(command, BUILD_BOUND);
    assert!(
        output.status.success(),
        "`cargo build -p {name} --bin {name}` failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let executable = output
        .stdout
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
        .filter(|message| {
            message["reason"] == "compiler-artifact" && message["target"]["name"] == name
        })
        .find_map(|message| message["executable"].as_str().map(PathBuf::from));
    let executable = executable
        .or_else(|| test_profile_dir().map(|dir| dir.join(name)))
        .unwrap_or_else(|| panic!("cargo built {name} but did not say where"));
    assert!(
        executable.is_file(),
        "the {name} binary is missing at {}; build it with `cargo build -p {name}`",
        executable.display()
    );
    executable
}

/// Run `command` (stdout and stderr piped) to completion, killing it and
/// panicking if it takes longer than `bound` (a cargo waiting forever on a
/// lock held elsewhere must not hang the test run).
pub fn run_bounded(mut command: Command, bound: Duration) -> Output {
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    // Read both pipes on threads of their own, so a full pipe never stalls it.
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut bytes);
        bytes
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut bytes);
        bytes
    });
    let poll = Duration::from_millis(100);
    let mut status = None;
    for _ in 0..=bound.as_millis() / poll.as_millis() {
        status = child.try_wait().expect("wait for the child");
        if status.is_some() {
            break;
        }
        std::thread::sleep(poll);
    }
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{command:?} did not finish within {bound:?}");
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// `<target>/<profile>`: the parent of the `deps` folder this test runs from.
fn test_profile_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    (deps.file_name()? == "deps").then(|| deps.parent().map(Path::to_path_buf))?
}

/// A folder of its own under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "mcp-gateway-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|error| panic!("create {}: {error}", path.display()));
        Self(path)
    }

    /// Write `contents` to `name` in the folder; return the file's path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents)
            .unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
