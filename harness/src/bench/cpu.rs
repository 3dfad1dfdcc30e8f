//! The CPU time a process serving a target spent in a cell's window, per
//! successful call: what the proxy costs the machine per call, a figure
//! that holds where throughput ratios depend on who else shares the cores
//! (the client and the backend run on the same machine in a comparison).
//!
//! Read from `/proc/<pid>/stat` (user plus system time of all its
//! threads), so Linux only; elsewhere, or for a target this process does
//! not run, there is no figure.

use std::time::Duration;

/// A process whose CPU time is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessCpu {
    pid: u32,
    /// Clock ticks per second of `/proc`'s times.
    ticks_per_second: u64,
}

impl ProcessCpu {
    /// The process `pid`, if this system reports CPU time per process.
    pub fn of(pid: u32) -> Option<ProcessCpu> {
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
        let cpu = ProcessCpu {
            pid,
            ticks_per_second: u64::try_from(ticks).ok().filter(|&t| t > 0)?,
        };
        cpu.used().map(|_| cpu)
    }

    /// CPU time used so far, user and system; `None` once it has exited
    /// (a zombie's figure would stand still and pass for an idle process).
    pub fn used(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        let ticks = user_and_system_ticks(&stat)?;
        Some(Duration::from_secs_f64(
            ticks as f64 / self.ticks_per_second as f64,
        ))
    }
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The
/// command name (field 2) is in parentheses and may hold spaces, so the
/// fields are counted after its closing parenthesis.
fn user_and_system_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // Field 3, the state: Z (zombie) or X (dead) has exited.
    if matches!(fields.next()?, "Z" | "X") {
        return None;
    }
    let mut fields = fields.skip(10);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (my (odd) proxy) S 1 4242 4242 0 -1 4194560 523 0 0 0 \
                    1234 567 0 0 20 0 3 0 1000 0 0";
        assert_eq!(user_and_system_ticks(stat), Some(1234 + 567));
        assert_eq!(user_and_system_ticks("4242 (cut) S 1 2"), None);
        let zombie = stat.replace(") S ", ") Z ");
        assert_eq!(user_and_system_ticks(&zombie), None, "exited");
    }

    #[test]
    fn this_process_uses_cpu_and_an_absent_one_has_no_figure() {
        let me = ProcessCpu::of(std::process::id()).expect("Linux reports CPU per process");
        let before = me.used().expect("running");
        // Busy until the clock ticks (10 ms of CPU), bounded for a loaded machine.
        let start = std::time::Instant::now();
        let mut spins = 0u64;
        while me.used().expect("running") == before && start.elapsed() < Duration::from_secs(20) {
            for _ in 0..10_000 {
                spins = std::hint::black_box(spins.wrapping_add(1));
            }
        }
        assert!(
            me.used().expect("running") > before,
            "no CPU time after {spins} spins"
        );
        assert_eq!(ProcessCpu::of(u32::MAX), None);
    }
}
