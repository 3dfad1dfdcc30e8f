//! Network faults in simulation: a scenario's `network` faults, applied to
//! turmoil's link between the proxy and each HTTP fake while their time
//! triggers hold.
//!
//! Why a module of its own that also steps the simulation: turmoil's link
//! controls (partition, latency, fail rate) are methods of [`Sim`], out of
//! reach of the software on its hosts, and take effect between steps. So
//! [`run`] replaces `Sim::run`: before each step it works out, for each link
//! with network faults, the state the faults that hold at `sim.elapsed()`
//! ask for, and changes what differs from the last state applied. A step is
//! one tick, so a fault starts and ends on the first tick boundary at or
//! after its time — the boundary at which the hosts' clocks read that time.
//!
//! Faults that hold at once combine in file order, as behaviour faults do:
//! the last latency and the last `drop_connections` win, and partitions add
//! up their directions (`to_fake` and `from_fake` together cut both ways).
//!
//! What turmoil 0.7's network makes of them:
//! - `latency`: every message (a TCP segment, or a SYN), either way, arrives
//!   after `latency` plus `jitter` times a draw from turmoil's latency curve
//!   (exponential, λ = 5, capped at 1) from the simulation's seeded
//!   generator: most messages close to `latency`, on average `jitter / 5`
//!   more, none more than `latency + jitter`; whole milliseconds.
//! - `partition`: messages that way are dropped, and those in flight lost.
//!   Connecting across a cut toward the fake is refused at once (the lost SYN
//!   takes its answer with it); across a `from_fake` cut it succeeds and the
//!   answers are lost. turmoil's TCP does not retransmit: a connection that
//!   lost a segment stalls for good, and only timeouts end the calls on it.
//! - `drop_connections`: each message on the link has this chance to break
//!   it: that message and everything in flight on the link, both ways, are
//!   lost (their connections stall, as above, or their connects are
//!   refused); the next message repairs the link.

use std::time::Duration;

use turmoil::Sim;

use super::{PROXY_HOST, fake_host};
use crate::scenario::{Fault, FaultAction, LinkFault, Trigger};

/// Steps `sim` until its clients are done, as `Sim::run` does, applying the
/// network faults among `faults` before every step.
pub(super) fn run(sim: &mut Sim<'_>, faults: &[Fault]) -> turmoil::Result {
    let mut links = links(faults);
    loop {
        let now = sim.elapsed();
        for link in &mut links {
            link.apply(sim, now);
        }
        if sim.step()? {
            return Ok(());
        }
    }
}

/// The links that have network faults, one per fake, in order of first
/// mention.
fn links(faults: &[Fault]) -> Vec<Link> {
    let mut links: Vec<Link> = Vec::new();
    for fault in faults {
        let FaultAction::Network { link: change, .. } = fault.action else {
            continue;
        };
        let entry = (fault.trigger.clone(), change);
        match links.iter_mut().find(|l| l.fake == fault.fake) {
            Some(link) => link.faults.push(entry),
            None => links.push(Link {
                fake: fault.fake.clone(),
                faults: vec![entry],
                applied: LinkState::default(),
            }),
        }
    }
    links
}

/// The link between the proxy and one fake.
struct Link {
    /// The fake's name (its host is [`fake_host`] of it).
    fake: String,
    /// Its network faults, in file order.
    faults: Vec<(Trigger, LinkFault)>,
    /// What was last applied; the default is the link as the simulation
    /// builds it.
    applied: LinkState,
}

impl Link {
    /// Brings the link to the state its faults ask for at `now`.
    fn apply(&mut self, sim: &mut Sim<'_>, now: Duration) {
        let wanted = LinkState::at(&self.faults, now);
        if wanted == self.applied {
            return;
        }
        let fake = fake_host(&self.fake);
        let fake = fake.as_str();
        if wanted.latency != self.applied.latency {
            // No latency fault is the simulation's own latency: none (see
            // `simulate`'s builder).
            let (least, jitter) = wanted.latency.unwrap_or_default();
            sim.set_link_latency(PROXY_HOST, fake, least);
            sim.set_link_max_message_latency(PROXY_HOST, fake, least.saturating_add(jitter));
        }
        if wanted.break_rate != self.applied.break_rate {
            sim.set_link_fail_rate(PROXY_HOST, fake, wanted.break_rate);
        }
        // Both directions are set outright at every change, not only when
        // their cut changes: a link that drop_connections broke stays broken
        // both ways until its next message, so when the breaks end it is
        // mended here rather than by a later message that would also lift a
        // one-way partition begun in between. Setting a direction as it
        // already is changes nothing; mending a break while breaks go on
        // only lets the next message draw again instead of passing surely.
        cut(sim, PROXY_HOST, fake, wanted.to_fake_cut);
        cut(sim, fake, PROXY_HOST, wanted.from_fake_cut);
        self.applied = wanted;
    }
}

/// Drops messages from `from` to `to` (`true`) or lets them through.
fn cut(sim: &mut Sim<'_>, from: &str, to: &str, cut: bool) {
    if cut {
        sim.partition_oneway(from, to);
    } else {
        sim.repair_oneway(from, to);
    }
}

/// What a link does at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct LinkState {
    /// The least latency and the jitter; `None`: no latency fault.
    latency: Option<(Duration, Duration)>,
    /// Messages from the proxy to the fake are dropped.
    to_fake_cut: bool,
    /// Messages from the fake to the proxy are dropped.
    from_fake_cut: bool,
    /// turmoil's fail rate: the chance that a message breaks the link.
    break_rate: f64,
}

impl LinkState {
    /// The state `faults` (in file order) ask for at `now`.
    fn at(faults: &[(Trigger, LinkFault)], now: Duration) -> Self {
        let mut state = Self::default();
        for (_, fault) in faults.iter().filter(|(trigger, _)| trigger.holds_at(now)) {
            match *fault {
                LinkFault::Latency { latency, jitter } => state.latency = Some((latency, jitter)),
                LinkFault::Partition(direction) => {
                    state.to_fake_cut |= direction.cuts_to_fake();
                    state.from_fake_cut |= direction.cuts_from_fake();
                }
                LinkFault::DropConnections(rate) => state.break_rate = rate,
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::Instant;

    use super::*;
    use crate::scenario::Direction;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn network_fault(at: u64, length: u64, link: LinkFault) -> Fault {
        Fault {
            name: None,
            fake: "a".into(),
            tool: None,
            trigger: Trigger::Time {
                at: ms(at),
                length: Some(ms(length)),
                every: None,
            },
            action: FaultAction::Network { link, line: 1 },
        }
    }

    #[test]
    fn faults_that_hold_together_combine_in_file_order() {
        let time = |at, length| Trigger::Time {
            at: ms(at),
            length: Some(ms(length)),
            every: None,
        };
        let faults = [
            (
                time(0, 100),
                LinkFault::Latency {
                    latency: ms(10),
                    jitter: ms(0),
                },
            ),
            (
                time(50, 100),
                LinkFault::Latency {
                    latency: ms(30),
                    jitter: ms(5),
                },
            ),
            (time(0, 100), LinkFault::Partition(Direction::ToFake)),
            (time(50, 100), LinkFault::Partition(Direction::FromFake)),
            (time(120, 10), LinkFault::DropConnections(0.2)),
        ];
        assert_eq!(
            LinkState::at(&faults, ms(10)),
            LinkState {
                latency: Some((ms(10), ms(0))),
                to_fake_cut: true,
                ..LinkState::default()
            }
        );
        assert_eq!(
            LinkState::at(&faults, ms(60)),
            LinkState {
                latency: Some((ms(30), ms(5))),
                to_fake_cut: true,
                from_fake_cut: true,
                break_rate: 0.0,
            }
        );
        assert_eq!(
            LinkState::at(&faults, ms(125)),
            LinkState {
                latency: Some((ms(30), ms(5))),
                from_fake_cut: true,
                break_rate: 0.2,
                ..LinkState::default()
            }
        );
        assert_eq!(LinkState::at(&faults, ms(150)), LinkState::default());
    }

    #[test]
    fn only_network_faults_make_links_one_per_fake() {
        let mut other = network_fault(0, 10, LinkFault::DropConnections(0.1));
        other.fake = "b".into();
        let outage = Fault {
            action: FaultAction::Outage { exit_code: 1 },
            ..network_fault(0, 10, LinkFault::DropConnections(0.1))
        };
        let faults = [
            network_fault(0, 10, LinkFault::Partition(Direction::Both)),
            outage,
            other,
            network_fault(20, 10, LinkFault::DropConnections(0.1)),
        ];
        let links = links(&faults);
        let shape: Vec<_> = links
            .iter()
            .map(|l| (l.fake.as_str(), l.faults.len()))
            .collect();
        assert_eq!(shape, [("a", 2), ("b", 1)]);
    }

    /// One ping: connect to the fake's echo port, send a byte, read it back.
    async fn ping() -> Result<(), String> {
        let mut stream = turmoil::net::TcpStream::connect((fake_host("a"), 80))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream.write_all(b"x").await.map_err(|e| e.to_string())?;
        let mut byte = [0];
        stream
            .read_exact(&mut byte)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// What one ping saw: when it started, how long it took, and its error.
    type Pings = Vec<(Duration, Duration, Option<String>)>;

    /// Pings the fake's host from the proxy's host every 10ms (one at a
    /// time, each on a new connection, given up after 400ms) for `length`,
    /// on a network with `faults` applied by [`run`].
    fn pings_under(faults: &[Fault], length: Duration) -> Pings {
        let mut sim = turmoil::Builder::new()
            .rng_seed(3)
            .tick_duration(ms(1))
            .min_message_latency(Duration::ZERO)
            .max_message_latency(Duration::ZERO)
            .simulation_duration(length + Duration::from_secs(5))
            .build();
        sim.host(fake_host("a"), || async {
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", 80)).await?;
            loop {
                let (mut stream, _) = listener.accept().await?;
                tokio::spawn(async move {
                    let mut byte = [0];
                    if stream.read_exact(&mut byte).await.is_ok() {
                        let _ = stream.write_all(&byte).await;
                    }
                });
            }
        });
        let pings: Rc<RefCell<Pings>> = Rc::default();
        let seen = Rc::clone(&pings);
        sim.client(PROXY_HOST, async move {
            let start = Instant::now();
            while start.elapsed() < length {
                let sent = Instant::now();
                let error = match tokio::time::timeout(ms(400), ping()).await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e),
                    Err(_) => Some("no answer".to_owned()),
                };
                seen.borrow_mut()
                    .push((sent - start, sent.elapsed(), error));
                tokio::time::sleep(ms(10)).await;
            }
            Ok(())
        });
        run(&mut sim, faults).expect("the simulation runs");
        pings.take()
    }

    /// The pings that started within `from..to`.
    fn between(pings: &Pings, from: u64, to: u64) -> Vec<&(Duration, Duration, Option<String>)> {
        let selected: Vec<_> = pings
            .iter()
            .filter(|(at, _, _)| (ms(from)..ms(to)).contains(at))
            .collect();
        assert!(!selected.is_empty(), "no pings within {from}..{to}ms");
        selected
    }

    #[test]
    fn each_kind_of_network_fault_acts_on_the_link_and_ends_on_time() {
        let faults = [
            network_fault(
                1000,
                1000,
                LinkFault::Latency {
                    latency: ms(50),
                    jitter: ms(0),
                },
            ),
            network_fault(2500, 1000, LinkFault::Partition(Direction::ToFake)),
            network_fault(4000, 1000, LinkFault::Partition(Direction::FromFake)),
            network_fault(5500, 1000, LinkFault::DropConnections(0.3)),
            network_fault(
                7000,
                1000,
                LinkFault::Latency {
                    latency: ms(20),
                    jitter: ms(40),
                },
            ),
        ];
        let pings = pings_under(&faults, ms(8500));
        let quick_and_fine = |from, to| {
            for (at, took, error) in between(&pings, from, to) {
                assert!(
                    error.is_none() && *took <= ms(3),
                    "ping at {at:?}: {error:?} after {took:?}"
                );
            }
        };
        quick_and_fine(0, 1000);
        // Latency: the SYN, the byte and its echo each take 50ms.
        for (at, took, error) in between(&pings, 1000, 1850) {
            assert!(error.is_none(), "ping at {at:?}: {error:?}");
            assert!(
                (ms(150)..=ms(153)).contains(took),
                "ping at {at:?} took {took:?}"
            );
        }
        quick_and_fine(2000, 2500);
        // Cut toward the fake: connecting is refused at once.
        for (at, took, error) in between(&pings, 2500, 3500) {
            let error = error.as_deref().unwrap_or("answered");
            assert!(
                error.starts_with("connect:") && *took <= ms(3),
                "ping at {at:?}: {error} after {took:?}"
            );
        }
        quick_and_fine(3500, 4000);
        // Cut from the fake: it connects and hears, but its echo is lost.
        for (at, _, error) in between(&pings, 4000, 4600) {
            assert_eq!(error.as_deref(), Some("no answer"), "ping at {at:?}");
        }
        quick_and_fine(5000, 5500);
        // Breaks: some pings lose their connect or their bytes, not all.
        let broken = between(&pings, 5500, 6500);
        let failed = broken.iter().filter(|(_, _, e)| e.is_some()).count();
        assert!(
            failed > 0 && failed < broken.len(),
            "{failed} of {} pings failed",
            broken.len()
        );
        quick_and_fine(6600, 7000);
        // Jitter: three messages of 20..60ms each, not all alike.
        let jittered = between(&pings, 7000, 7850);
        let took: Vec<Duration> = jittered.iter().map(|(_, took, _)| *took).collect();
        assert!(jittered.iter().all(|(_, _, e)| e.is_none()), "{jittered:?}");
        assert!(
            took.iter().all(|t| (ms(60)..=ms(183)).contains(t)),
            "{took:?}"
        );
        assert!(took.iter().any(|t| *t != took[0]), "{took:?}");
        quick_and_fine(8000, 8500);
    }

    /// The real proxy in simulation, with a fake whose link is cut toward
    /// it, cut from it, slowed and broken in turn.
    const THROUGH_THE_PROXY: &str = "\
name: network
description: the link to a fake is cut each way, slowed and broken
seed: 5
duration: 10s
grace: 2s
proxy:
  backends:
    - name: a
      fake: a
      timeout: { per_try: 500ms }
      reconnect: { initial: 100ms, max: 400ms }
fakes:
  - name: a
    transport: http
    tools: [{ name: echo, read_only: true }]
faults:
  - { name: cut-to, fake: a, at: 1s, for: 1.5s, network: { partition: to_fake } }
  - { name: cut-from, fake: a, at: 3.5s, for: 1.5s, network: { partition: from_fake } }
  - { name: slow, fake: a, at: 6s, for: 1s, network: { latency: 100ms } }
  - { name: breaks, fake: a, at: 8s, for: 1.5s, network: { drop_connections: 0.05 } }
workload:
  open: { rate: 40 }
  call_timeout: 2s
  calls: [{ tool: a/echo }]
expect:
  # (The call in flight when the first connect is refused is lost: -32011.)
  - name: requests lost make the backend unavailable at once
    errors: { window: { during: cut-to, skip: 50ms }, code: -32010, min_rate: 1 }
  - name: the fake hears no call while cut off
    count: { fake: a, window: { during: cut-to, skip: 10ms }, max: 0 }
  - name: the fake runs calls it cannot answer
    count: { fake: a, window: { during: cut-from }, outcomes: [success], min: 40 }
  - name: answers lost are timeouts
    errors: { window: { during: cut-from, skip: 10ms }, code: -32013, min_rate: 1 }
  - name: served again between the cuts
    threshold: { window: { from: 3s, to: 3.5s }, error_rate: { max: 0 } }
  - name: served again after the breaks
    threshold: { window: { after: breaks, skip: 100ms }, error_rate: { max: 0 } }
";

    #[test]
    fn through_the_proxy_each_kind_of_network_fault_shows_to_clients() {
        let path = std::path::Path::new("network.yaml");
        let scenario = crate::scenario::load_str(THROUGH_THE_PROXY, path).unwrap();
        let run = crate::sim::check_determinism(&scenario, scenario.seed)
            .unwrap_or_else(|difference| panic!("{difference}"));
        let report = &run.report;
        assert_eq!(report.error, None);
        let failed = report.failures();
        assert!(failed.is_empty(), "{failed:#?}");
        let phase = |label: &str| {
            report
                .phases
                .iter()
                .find(|p| p.label == label)
                .unwrap_or_else(|| panic!("no phase {label:?}: {:#?}", report.phases))
        };
        let healthy = phase("before cut-to");
        assert!(
            healthy.calls >= 35 && healthy.errors == 0 && healthy.p50 < ms(10),
            "{healthy:?}"
        );
        for cut in ["during cut-to", "during cut-from"] {
            let cut = phase(cut);
            assert!(cut.error_rate > 0.95, "{cut:?}");
        }
        // 100ms each way on a kept-alive connection: at least 200ms a call.
        let slow = phase("during slow");
        assert!(
            slow.errors == 0 && (ms(200)..ms(250)).contains(&slow.p50),
            "{slow:?}"
        );
        // Some calls lose a message and stall until the proxy's timeout.
        let breaks = phase("during breaks");
        assert!(breaks.errors > 0 && breaks.error_rate < 0.5, "{breaks:?}");
    }
}
