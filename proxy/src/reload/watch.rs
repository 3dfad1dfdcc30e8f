//! `--watch`: notice that the config file changed, by reading it once a
//! second. Polling rather than file-system events: editors replace files
//! in ways (rename over, truncate then write) that events report
//! differently on every system, and a config file is small. A change
//! counts once the file has read the same on two ticks in a row, so a
//! file caught half-written is not reloaded.

use std::path::PathBuf;
use std::time::Duration;

/// How often the file is read.
const POLL: Duration = Duration::from_secs(1);

/// Watches one config file for changes of its content.
pub struct ConfigWatch {
    path: PathBuf,
    /// The content last reported (or read at the start).
    reported: Option<Vec<u8>>,
    /// The content read on the previous tick.
    previous: Option<Vec<u8>>,
    ticks: tokio::time::Interval,
}

impl ConfigWatch {
    /// Start watching `path`, as it reads now.
    pub fn new(path: PathBuf) -> Self {
        let now = std::fs::read(&path).ok();
        let mut ticks = tokio::time::interval(POLL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            path,
            reported: now.clone(),
            previous: now,
            ticks,
        }
    }

    /// Wait until the file's content differs from what was last reported
    /// and has stayed so for one tick. A file that cannot be read (being
    /// replaced) is no change.
    pub async fn changed(&mut self) {
        loop {
            self.ticks.tick().await;
            let Ok(content) = std::fs::read(&self.path) else {
                continue;
            };
            let stable = self.previous.as_ref() == Some(&content);
            let new = self.reported.as_ref() != Some(&content);
            self.previous = Some(content.clone());
            if stable && new {
                self.reported = Some(content);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of this test's own (the process id and name keep parallel
    /// tests and runs apart).
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mcp-proxy-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir.join(name)
    }

    #[tokio::test(start_paused = true)]
    async fn reports_a_change_once_the_file_is_stable() {
        let path = scratch("stable.yaml");
        std::fs::write(&path, "a: 1\n").expect("write");
        let mut watch = ConfigWatch::new(path.clone());
        // Unchanged: nothing to report within ten ticks.
        let quiet = tokio::time::timeout(POLL * 10, watch.changed()).await;
        assert!(quiet.is_err(), "an unchanged file was reported");

        std::fs::write(&path, "a: 2\n").expect("write");
        let started = tokio::time::Instant::now();
        watch.changed().await;
        // Seen on one tick, confirmed on the next.
        assert!(started.elapsed() >= POLL, "reported before it was stable");
        // Reported once: no second report for the same content.
        let again = tokio::time::timeout(POLL * 10, watch.changed()).await;
        assert!(again.is_err(), "the same change was reported twice");
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_file_is_no_change() {
        let path = scratch("missing.yaml");
        std::fs::write(&path, "a: 1\n").expect("write");
        let mut watch = ConfigWatch::new(path.clone());
        std::fs::remove_file(&path).expect("remove");
        let quiet = tokio::time::timeout(POLL * 5, watch.changed()).await;
        assert!(quiet.is_err(), "a file being replaced was reported");
        std::fs::write(&path, "a: 1\n").expect("write");
        let quiet = tokio::time::timeout(POLL * 5, watch.changed()).await;
        assert!(quiet.is_err(), "the same content back was reported");
        let _ = std::fs::remove_file(&path);
    }
}
