//! Per-target timers. Each probed target has its own task with its own
//! `tokio::time::interval`, first tick spread over the interval by a hash of
//! the target id (stable across reloads and restarts), missed ticks skipped.
//! A global semaphore bounds how many cycles run at once; a dead or slow
//! target only ever holds its own permit, so it never delays another.
//! Tasks are stopped by aborting them (a removed target, shutdown): no
//! cancellation token is polled on the hot path.
//!
//! Owns: task lifecycles, name resolution, scheduling lag.
//! Must not touch: states (outcomes go to an [`OutcomeSink`]).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::task::TaskTracker;

use crate::inventory::{Address, Inventory, Target};
use crate::metrics::Metrics;
use crate::probe::icmp::IcmpProber;
use crate::probe::snmp::{DevicePoller, SnmpPoll};
use crate::probe::{FailureReason, ProbeKind, ProbeOutcome};

/// Longest a single name lookup may take before the cycle counts it failed.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where finished cycles go.
pub trait OutcomeSink: Send + Sync + 'static {
    fn observe(&self, target: &Target, outcome: ProbeOutcome);
    /// One SNMP poll; `requests` is how many requests it sent.
    fn observe_snmp(&self, target: &Target, poll: SnmpPoll, requests: u32);
}

pub struct Scheduler {
    prober: Arc<IcmpProber>,
    sink: Arc<dyn OutcomeSink>,
    metrics: Metrics,
    permits: Arc<Semaphore>,
    snmp_permits: Arc<Semaphore>,
    tracker: TaskTracker,
    runtime: Handle,
    /// SNMP polls (BER decoding, v3 crypto) run here, off the ICMP thread.
    snmp_runtime: Handle,
    resolve_interval: Duration,
    running: HashMap<String, Running>,
    running_snmp: HashMap<String, Running>,
}

struct Running {
    target: Target,
    abort: AbortHandle,
}

impl Scheduler {
    pub fn new(
        prober: Arc<IcmpProber>,
        sink: Arc<dyn OutcomeSink>,
        metrics: Metrics,
        max_concurrent: u32,
        max_concurrent_snmp: u32,
        runtime: Handle,
        snmp_runtime: Handle,
    ) -> Self {
        Scheduler {
            prober,
            sink,
            metrics,
            permits: Arc::new(Semaphore::new(max_concurrent as usize)),
            snmp_permits: Arc::new(Semaphore::new(max_concurrent_snmp as usize)),
            tracker: TaskTracker::new(),
            runtime,
            snmp_runtime,
            resolve_interval: Duration::from_secs(300),
            running: HashMap::new(),
            running_snmp: HashMap::new(),
        }
    }

    /// Make the running tasks match `inv`: stop removed or changed targets,
    /// start new or changed ones, leave unchanged ones alone (their timers
    /// keep their phase). Tasks run on the runtime given to [`Scheduler::new`].
    pub fn apply(&mut self, inv: &Inventory) {
        self.resolve_interval = inv.agent.resolve_interval;
        let wanted: HashMap<&str, &Target> = inv
            .targets
            .iter()
            .filter(|t| t.icmp.enabled)
            .map(|t| (t.id.as_str(), t))
            .collect();
        stop_unwanted(&mut self.running, &wanted);
        for t in inv.targets.iter().filter(|t| t.icmp.enabled) {
            if self.running.contains_key(&t.id) {
                continue;
            }
            let task = TargetTask {
                target: t.clone(),
                ident: self.prober.next_ident(),
                prober: self.prober.clone(),
                sink: self.sink.clone(),
                metrics: self.metrics.clone(),
                permits: self.permits.clone(),
                resolver: Resolver::new(&t.address, self.resolve_interval),
            };
            let handle = self.tracker.spawn_on(task.run(), &self.runtime);
            self.running.insert(
                t.id.clone(),
                Running {
                    target: t.clone(),
                    abort: handle.abort_handle(),
                },
            );
        }
        self.apply_snmp(inv);
    }

    /// The SNMP side of [`Scheduler::apply`]: one polling task per device.
    fn apply_snmp(&mut self, inv: &Inventory) {
        let wanted: HashMap<&str, &Target> = inv
            .targets
            .iter()
            .filter(|t| t.snmp.is_some())
            .map(|t| (t.id.as_str(), t))
            .collect();
        stop_unwanted(&mut self.running_snmp, &wanted);
        for t in inv.targets.iter().filter(|t| t.snmp.is_some()) {
            if self.running_snmp.contains_key(&t.id) {
                continue;
            }
            self.metrics.init_snmp_target(t);
            let task = SnmpTask {
                target: t.clone(),
                sink: self.sink.clone(),
                metrics: self.metrics.clone(),
                permits: self.snmp_permits.clone(),
                resolver: Resolver::new(&t.address, self.resolve_interval),
            };
            let handle = self.tracker.spawn_on(task.run(), &self.snmp_runtime);
            self.running_snmp.insert(
                t.id.clone(),
                Running {
                    target: t.clone(),
                    abort: handle.abort_handle(),
                },
            );
        }
    }

    /// A future that cancels every task (in-flight probes are dropped) and
    /// waits for them; it does not borrow the scheduler, so no lock is held
    /// while it runs.
    pub fn stopper(&mut self) -> impl std::future::Future<Output = ()> + Send + 'static {
        for (_, r) in self.running.drain().chain(self.running_snmp.drain()) {
            r.abort.abort();
        }
        let tracker = self.tracker.clone();
        async move {
            tracker.close();
            tracker.wait().await;
        }
    }
}

/// Abort the tasks of targets removed or changed (a changed target gets a
/// new task with its new settings).
fn stop_unwanted(running: &mut HashMap<String, Running>, wanted: &HashMap<&str, &Target>) {
    running.retain(|id, r| {
        let keep = wanted.get(id.as_str()).is_some_and(|t| **t == r.target);
        if !keep {
            r.abort.abort();
        }
        keep
    });
}

/// Offset of a target's first cycle within its interval.
pub fn spread_offset(id: &str, interval: Duration) -> Duration {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    let ms = interval.as_millis().max(1) as u64;
    Duration::from_millis(h.finish() % ms)
}

struct TargetTask {
    target: Target,
    ident: u16,
    prober: Arc<IcmpProber>,
    sink: Arc<dyn OutcomeSink>,
    metrics: Metrics,
    permits: Arc<Semaphore>,
    resolver: Resolver,
}

/// Keeps `utkikk_probes_in_flight` right however the cycle ends.
struct InFlight(Metrics);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.probes_in_flight.dec();
    }
}

impl TargetTask {
    async fn run(mut self) {
        let interval = self.target.icmp.interval;
        let first = Instant::now() + spread_offset(&self.target.id, interval);
        let mut ticker = tokio::time::interval_at(first, interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut seq: u16 = 0;
        loop {
            let scheduled = ticker.tick().await;
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                return; // semaphore closed: shutting down
            };
            self.metrics.observe_lag(scheduled.elapsed().as_secs_f64());
            self.metrics.probes_in_flight.inc();
            let guard = InFlight(self.metrics.clone());
            let outcome = self.cycle(&mut seq).await;
            drop(guard);
            drop(permit);
            self.sink.observe(&self.target, outcome);
        }
    }

    async fn cycle(&mut self, seq: &mut u16) -> ProbeOutcome {
        match self.resolver.address().await {
            Ok(ip) => {
                self.prober
                    .probe(ip, &self.target.icmp, self.ident, seq)
                    .await
            }
            Err(reason) => ProbeOutcome::not_run(ProbeKind::Icmp, Utc::now(), reason),
        }
    }
}

/// A target's address: literal, or a name looked up again once the last
/// answer is `interval` old. A name that stops resolving is a probe error
/// (the target becomes `unmonitored`), not a stop.
struct Resolver {
    address: Address,
    interval: Duration,
    resolved: Option<(IpAddr, Instant)>,
}

impl Resolver {
    fn new(address: &Address, interval: Duration) -> Self {
        Resolver {
            address: address.clone(),
            interval,
            resolved: None,
        }
    }

    async fn address(&mut self) -> Result<IpAddr, FailureReason> {
        let name = match &self.address {
            Address::Ip(ip) => return Ok(*ip),
            Address::Host(name) => name.clone(),
        };
        if let Some((ip, at)) = self.resolved {
            if at.elapsed() < self.interval {
                return Ok(ip);
            }
        }
        let lookup =
            tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, 0))).await;
        match lookup {
            Ok(Ok(mut addrs)) => match addrs.next() {
                Some(a) => {
                    self.resolved = Some((a.ip(), Instant::now()));
                    Ok(a.ip())
                }
                None => {
                    self.resolved = None;
                    Err(FailureReason::ResolveFailed)
                }
            },
            _ => {
                self.resolved = None;
                Err(FailureReason::ResolveFailed)
            }
        }
    }
}

struct SnmpTask {
    target: Target,
    sink: Arc<dyn OutcomeSink>,
    metrics: Metrics,
    permits: Arc<Semaphore>,
    resolver: Resolver,
}

impl SnmpTask {
    async fn run(mut self) {
        let Some(settings) = self.target.snmp.clone() else {
            return;
        };
        let interval = settings.interval;
        // Salted so a device's SNMP polls do not start with its pings.
        let first = Instant::now() + spread_offset(&format!("snmp/{}", self.target.id), interval);
        let mut ticker = tokio::time::interval_at(first, interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut poller: Option<(IpAddr, DevicePoller)> = None;
        loop {
            let scheduled = ticker.tick().await;
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                return;
            };
            self.metrics.observe_lag(scheduled.elapsed().as_secs_f64());
            let ip = match self.resolver.address().await {
                Ok(ip) => ip,
                Err(reason) => {
                    drop(permit);
                    // Could not run: say so as a probe error on the ICMP
                    // side's terms (the name does not resolve).
                    let o = ProbeOutcome::not_run(ProbeKind::Icmp, Utc::now(), reason);
                    if !self.target.icmp.enabled {
                        self.sink.observe(&self.target, o);
                    }
                    continue;
                }
            };
            if poller.as_ref().is_none_or(|(p, _)| *p != ip) {
                let addr = std::net::SocketAddr::new(ip, settings.port);
                poller = Some((ip, DevicePoller::new(addr, settings.clone())));
            }
            let Some((_, device)) = poller.as_mut() else {
                continue;
            };
            self.metrics.probes_in_flight.inc();
            let guard = InFlight(self.metrics.clone());
            let poll = device.poll().await;
            let requests = device.requests_last_poll();
            drop(guard);
            drop(permit);
            self.sink.observe_snmp(&self.target, poll, requests);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_stable_and_inside_the_interval() {
        let i = Duration::from_secs(10);
        for n in 0..200 {
            let id = format!("t{n}");
            let o = spread_offset(&id, i);
            assert!(o < i);
            assert_eq!(o, spread_offset(&id, i));
        }
    }
}
