//! A process's resident memory, as the kernel counts it: `VmRSS` in
//! `/proc/PID/status`. Linux only; elsewhere there is no such file and
//! [`supported`] says so before a bench starts anything.
//!
//! Only a process of its own has a resident set that is the proxy's
//! alone, which is why the memory and soak benches run the proxy as a
//! binary (`--proxy-bin`), never in the harness's process.

use std::path::PathBuf;

/// Why a resident set could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RssError {
    /// No `/proc/self/status` with a `VmRSS` line: not Linux.
    #[error(
        "the proxy's memory is read from /proc/PID/status (VmRSS), which only Linux has; this system has no such file"
    )]
    Unsupported,
    /// The file could not be read (the process is gone, most likely).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// `/proc/PID/status`.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file has no `VmRSS` line (a zombie, or another format).
    #[error("{} has no VmRSS line", path.display())]
    NoVmRss {
        /// `/proc/PID/status`.
        path: PathBuf,
    },
}

/// Whether this system has `/proc/PID/status` with `VmRSS` (checked on
/// this process).
pub fn supported() -> Result<(), RssError> {
    match std::fs::read_to_string("/proc/self/status") {
        Ok(status) if vm_rss_kib(&status).is_some() => Ok(()),
        _ => Err(RssError::Unsupported),
    }
}

/// The resident set of process `pid`, in KiB.
pub fn read_kib(pid: u32) -> Result<u64, RssError> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let status = match std::fs::read_to_string(&path) {
        Ok(status) => status,
        Err(source) => return Err(RssError::Read { path, source }),
    };
    vm_rss_kib(&status).ok_or(RssError::NoVmRss { path })
}

/// The `VmRSS:  1234 kB` line of a status file, in KiB (the kernel's `kB`
/// is 1024 bytes).
fn vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let mut words = line.split_whitespace();
    let value = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(value)
}

/// KiB as MiB, for tables.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_kib_from_its_line() {
        let status = "Name:\tmcp-proxy\nVmPeak:\t  99999 kB\nVmRSS:\t   13312 kB\nThreads:\t3\n";
        assert_eq!(vm_rss_kib(status), Some(13_312));
        assert_eq!(vm_rss_kib("Name:\tx\n"), None);
        assert_eq!(vm_rss_kib("VmRSS:\tlots kB\n"), None);
        assert_eq!(vm_rss_kib("VmRSS:\t12 MB\n"), None);
    }

    #[test]
    fn this_process_has_a_resident_set_on_linux() {
        if cfg!(target_os = "linux") {
            supported().unwrap();
            assert!(read_kib(std::process::id()).unwrap() > 0);
        } else {
            assert!(matches!(supported(), Err(RssError::Unsupported)));
        }
    }
}
