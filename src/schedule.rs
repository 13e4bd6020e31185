//! Which targets are probed, and requests on demand. ICMP targets are
//! handed to the ICMP engine ([`crate::probe::icmp::Engine`]), which paces
//! them all from one timer on its own thread and bounds the cycles in
//! flight itself. Each SNMP target has a task ([`Prober`]) with its own
//! `tokio::time::interval`, first tick spread over the interval by a hash
//! of the target id (stable across reloads and restarts), missed ticks
//! skipped (service checks: the first tick moved to the next slot of a
//! 250 ms grid, so checks share wake-ups); between ticks it takes
//! requests on demand (a dependency check,
//! a read of link ends). A semaphore bounds how many polls run at once; a
//! dead or slow target only ever holds its own permit, so it never delays
//! another.
//! Tasks are stopped by aborting them (a removed target, shutdown): no
//! cancellation token is polled on the hot path.
//!
//! Owns: task lifecycles, name resolution, scheduling lag.
//! Must not touch: states (observations go to the live-state owner over a
//! channel).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::runtime::Handle;

use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::AbortHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::task::TaskTracker;

use crate::inventory::{Address, Inventory, Target};
use crate::metrics::Metrics;
use crate::probe::check::CheckProber;
use crate::probe::icmp::{Command, EngineHandle};
use crate::probe::snmp::SnmpProber;
use crate::probe::{
    spread_offset, EndQuery, FailureReason, Observation, Outcome, Prober, Request, RESOLVE_TIMEOUT,
};

/// Link ends waiting to be read per device at most; more are dropped (the
/// owner asks again at the next cycle).
const MAX_WAITING_ENDS: usize = 64;

/// Service checks start on slots this far apart: the checks of a slot
/// run together and share the runtime's wake-ups (on a VM each wake from
/// idle costs more CPU than a DNS check itself; BENCHMARKS.md, issue 18:
/// a third to three quarters less CPU per check). The price: a check
/// may wait for the others of its slot to take the CPU (about 0.5 ms
/// each for HTTPS), which its phases then include — 1,000 checks a
/// minute put about four in a slot.
const CHECK_GRID: Duration = Duration::from_millis(250);

pub struct Scheduler {
    icmp: EngineHandle,
    /// The engine's thread, joined at stop.
    icmp_thread: Option<std::thread::JoinHandle<()>>,
    observations: mpsc::Sender<Observation>,
    metrics: Metrics,
    snmp_permits: Arc<Semaphore>,
    /// Service checks in flight at most, and the setting it was made for.
    check_permits: Arc<Semaphore>,
    check_permits_for: u32,
    tracker: TaskTracker,
    /// SNMP polls (BER decoding, v3 crypto) run here: the probe runtime,
    /// with the live owner (the ICMP engine has its own thread).
    snmp_runtime: Handle,
    resolve_interval: Duration,
    /// The inventory last applied: what the engine was given for each
    /// ICMP target (its address and settings; a change of anything else
    /// leaves its cycles alone). Shared with the live state, not copied.
    applied: Option<Arc<Inventory>>,
    running: HashMap<String, Running>,
}

struct Running {
    target: Target,
    abort: AbortHandle,
    requests: Arc<Requests>,
}

/// Requests on demand for one task: a flag for a check, the link ends to
/// read, and a `Notify` to wake the task. Small and allocated once (a
/// channel per target cost a block of slots each).
#[derive(Default)]
struct Requests {
    wake: Notify,
    check: AtomicBool,
    /// Held only to push or take, never across an await.
    ends: std::sync::Mutex<Vec<EndQuery>>,
}

impl Requests {
    fn check(&self) {
        self.check.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    fn read_ends(&self, ends: Vec<EndQuery>) -> bool {
        {
            let mut waiting = self
                .ends
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if waiting.len() + ends.len() > MAX_WAITING_ENDS {
                return false;
            }
            for e in ends {
                if !waiting.contains(&e) {
                    waiting.push(e);
                }
            }
        }
        self.wake.notify_one();
        true
    }

    /// The next request waiting, if any: link ends first (a parked link
    /// cycle waits on them), then a check.
    fn take(&self) -> Option<Request> {
        let ends = std::mem::take(
            &mut *self
                .ends
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if !ends.is_empty() {
            return Some(Request::ReadEnds(ends));
        }
        self.check
            .swap(false, Ordering::AcqRel)
            .then_some(Request::Check)
    }
}

/// What every probe task needs besides its prober: only that (a task
/// per target, so its size counts).
struct TaskSpec {
    id: String,
    interval: Duration,
    /// Salt for the first tick's offset, so a device's SNMP polls do not
    /// start with its pings.
    salt: &'static str,
    observations: mpsc::Sender<Observation>,
    lag: prometheus_client::metrics::histogram::Histogram,
    in_flight: prometheus_client::metrics::gauge::Gauge,
    permits: Arc<Semaphore>,
    resolver: Resolver,
    /// Ticks on [`CHECK_GRID`]'s slots (service checks).
    on_grid: bool,
}

impl Scheduler {
    /// `icmp` drives the engine running on `icmp_thread`.
    pub fn new(
        (icmp_thread, icmp): (std::thread::JoinHandle<()>, EngineHandle),
        observations: mpsc::Sender<Observation>,
        metrics: Metrics,
        max_concurrent_snmp: u32,
        snmp_runtime: Handle,
    ) -> Self {
        let tracker = TaskTracker::new();
        Scheduler {
            icmp,
            icmp_thread: Some(icmp_thread),
            observations,
            metrics,
            snmp_permits: Arc::new(Semaphore::new(max_concurrent_snmp as usize)),
            check_permits: Arc::new(Semaphore::new(0)),
            check_permits_for: 0,
            tracker,
            snmp_runtime,
            resolve_interval: Duration::from_secs(300),
            applied: None,
            running: HashMap::new(),
        }
    }

    /// Make the running tasks match `inv`: stop removed or changed targets,
    /// start new or changed ones, leave unchanged ones alone (their timers
    /// keep their phase).
    pub fn apply(&mut self, inv: &Arc<Inventory>) {
        if self.resolve_interval != inv.agent.resolve_interval {
            self.icmp
                .send(Command::ResolveInterval(inv.agent.resolve_interval));
        }
        self.resolve_interval = inv.agent.resolve_interval;
        let wanted: HashMap<&str, &Target> = inv
            .targets
            .iter()
            .filter(|t| t.icmp.enabled && t.watched_by(&inv.agent.id))
            .map(|t| (t.id.as_str(), t))
            .collect();
        let same = |old: &Target, new: &Target| old.address == new.address && old.icmp == new.icmp;
        let mut kept = std::collections::HashSet::new();
        for (old, old_agent) in self
            .applied
            .iter()
            .flat_map(|a| a.targets.iter().map(|t| (t, a.agent.id.as_str())))
        {
            if !old.icmp.enabled || !old.watched_by(old_agent) {
                continue;
            }
            if wanted
                .get(old.id.as_str())
                .is_some_and(|new| same(old, new))
            {
                kept.insert(old.id.as_str());
            } else {
                self.icmp.send(Command::Remove(old.id.clone()));
            }
        }
        for t in wanted.values() {
            if kept.contains(t.id.as_str()) {
                continue;
            }
            self.icmp.send(Command::Set {
                id: t.id.clone(),
                address: t.address.clone(),
                settings: t.icmp.clone(),
            });
        }
        drop(kept);
        self.applied = Some(inv.clone());
        let wanted: HashMap<&str, &Target> = inv
            .targets
            .iter()
            .filter(|t| (t.snmp.is_some() || t.check.is_some()) && t.watched_by(&inv.agent.id))
            .map(|t| (t.id.as_str(), t))
            .collect();
        stop_unwanted(&mut self.running, &wanted);
        if self.check_permits_for != inv.agent.max_concurrent_checks {
            // Tasks keep the semaphore they started with until restarted.
            self.check_permits = Arc::new(Semaphore::new(inv.agent.max_concurrent_checks as usize));
            self.check_permits_for = inv.agent.max_concurrent_checks;
        }
        let runtime = self.snmp_runtime.clone();
        for t in inv.targets.iter() {
            if self.running.contains_key(&t.id) || !t.watched_by(&inv.agent.id) {
                continue;
            }
            if let Some(settings) = &t.snmp {
                self.metrics.init_snmp_target(t);
                let prober = SnmpProber::new(&t.id, (**settings).clone());
                let spec = self.spec(
                    t,
                    settings.interval,
                    "snmp/",
                    self.snmp_permits.clone(),
                    false,
                );
                let r = self.spawn(t, spec, prober, &runtime);
                self.running.insert(t.id.clone(), r);
            } else if let Some(settings) = &t.check {
                let prober = match CheckProber::new(&t.id, &t.address, (**settings).clone()) {
                    Ok(p) => p,
                    Err(e) => {
                        // Validation builds the same client: not for a loaded config.
                        tracing::error!(target_id = %t.id, error = %e, "check not started");
                        continue;
                    }
                };
                let spec = self.spec(
                    t,
                    settings.interval,
                    "check/",
                    self.check_permits.clone(),
                    true,
                );
                let r = self.spawn(t, spec, prober, &runtime);
                self.running.insert(t.id.clone(), r);
            }
        }
    }

    fn spec(
        &self,
        t: &Target,
        interval: Duration,
        salt: &'static str,
        permits: Arc<Semaphore>,
        on_grid: bool,
    ) -> TaskSpec {
        TaskSpec {
            id: t.id.clone(),
            interval,
            salt,
            observations: self.observations.clone(),
            lag: self.metrics.schedule_lag.clone(),
            in_flight: self.metrics.probes_in_flight.clone(),
            permits,
            resolver: Resolver::new(&t.address, self.resolve_interval),
            on_grid,
        }
    }

    fn spawn<P: Prober>(&self, t: &Target, spec: TaskSpec, prober: P, on: &Handle) -> Running {
        let requests = Arc::new(Requests::default());
        let target = t.clone();
        let handle = self
            .tracker
            .spawn_on(run(spec, prober, requests.clone()), on);
        Running {
            target,
            abort: handle.abort_handle(),
            requests,
        }
    }

    /// Look at `target` now (a dependency check on demand): an echo cycle,
    /// or for a target without ICMP one SNMP GET. False when it has no
    /// probe. Asked twice before it ran, it runs once.
    pub fn check(&self, target: &str) -> bool {
        let icmp = self
            .applied
            .as_ref()
            .and_then(|a| a.target(target))
            .is_some_and(|t| t.icmp.enabled);
        if icmp {
            self.icmp.send(Command::Check(target.to_string()));
            return true;
        }
        self.running
            .get(target)
            .map(|r| r.requests.check())
            .is_some()
    }

    /// Read link ends on `device` now. False when it is not polled over
    /// SNMP or too many wait already.
    pub fn read_ends(&self, device: &str, ends: Vec<EndQuery>) -> bool {
        self.running
            .get(device)
            .is_some_and(|r| r.requests.read_ends(ends))
    }

    /// A future that cancels every task (in-flight probes are dropped) and
    /// waits for them; it does not borrow the scheduler.
    pub fn stopper(&mut self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.icmp.send(Command::Stop);
        let icmp_thread = self.icmp_thread.take();
        self.applied = None;
        for (_, r) in self.running.drain() {
            r.abort.abort();
        }
        let tracker = self.tracker.clone();
        async move {
            tracker.close();
            tracker.wait().await;
            if let Some(t) = icmp_thread {
                let _ = tokio::task::spawn_blocking(move || t.join()).await;
            }
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

/// A target's address: literal, or a name looked up again once the last
/// answer is `interval` old. A name that stops resolving is a probe error
/// (the target becomes `unmonitored`), not a stop.
struct Resolver {
    address: Address,
    interval: Duration,
    resolved: Option<(IpAddr, Instant)>,
    /// How long the last lookup took, until taken.
    took: Option<Duration>,
}

impl Resolver {
    fn new(address: &Address, interval: Duration) -> Self {
        Resolver {
            address: address.clone(),
            interval,
            resolved: None,
            took: None,
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
        let started = Instant::now();
        let lookup =
            tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, 0))).await;
        self.took = Some(started.elapsed());
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

/// Keeps `utkikk_probes_in_flight` right however the cycle ends. Holds
/// the one gauge, not a clone of every metric handle.
struct InFlight(prometheus_client::metrics::gauge::Gauge);

impl InFlight {
    fn new(gauge: &prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        InFlight(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The first slot of `grid` at or after `t`, slots counted from one
/// instant for the whole process (tasks started by a reload share the
/// slots of those started before).
fn on_grid(t: Instant, grid: Duration) -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    slot_after(*EPOCH.get_or_init(Instant::now), t, grid)
}

/// The first instant `epoch + k * grid` (k any integer) at or after `t`.
/// `t` may lie before `epoch` (a runtime with a clock of its own, as in
/// tests with paused time): never later than `t` plus one slot.
fn slot_after(epoch: Instant, t: Instant, grid: Duration) -> Instant {
    let g = grid.as_nanos().max(1);
    let nanos = |n: u128| Duration::from_nanos(n.min(u64::MAX as u128) as u64);
    if t >= epoch {
        let since = (t - epoch).as_nanos();
        epoch + nanos(since.div_ceil(g) * g)
    } else {
        let before = (epoch - t).as_nanos();
        epoch.checked_sub(nanos(before / g * g)).unwrap_or(t)
    }
}

/// One target's task for one protocol: its timer, requests on demand, and
/// the observations sent to the live-state owner.
async fn run<P: Prober>(mut spec: TaskSpec, mut prober: P, requests: Arc<Requests>) {
    let offset = spread_offset(&format!("{}{}", spec.salt, spec.id), spec.interval);
    let mut first = Instant::now() + offset;
    if spec.on_grid {
        first = on_grid(first, CHECK_GRID);
    }
    let mut ticker = tokio::time::interval_at(first, spec.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        let (request, scheduled) = match requests.take() {
            Some(r) => (r, None),
            None => tokio::select! {
                biased;
                _ = requests.wake.notified() => continue,
                t = ticker.tick() => (Request::Cycle, Some(t)),
            },
        };
        let Ok(permit) = spec.permits.clone().acquire_owned().await else {
            return; // semaphore closed: shutting down
        };
        if let Some(t) = scheduled {
            spec.lag.observe(t.elapsed().as_secs_f64());
        }
        let guard = InFlight::new(&spec.in_flight);
        let observations = match spec.resolver.address().await {
            Ok(ip) => {
                if let Some(took) = spec.resolver.took.take() {
                    prober.resolved_in(took);
                }
                prober.run(ip, request).await
            }
            Err(reason) => vec![Observation {
                target: spec.id.clone(),
                on_demand: scheduled.is_none(),
                outcome: Outcome::NotRun {
                    probe: prober.kind(),
                    at: Utc::now(),
                    reason,
                },
            }],
        };
        drop(guard);
        drop(permit);
        for o in observations {
            if spec.observations.send(o).await.is_err() {
                return; // the owner is gone: stopping
            }
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

    #[test]
    fn grid_slots_are_shared_and_never_early() {
        let g = Duration::from_millis(250);
        let base = on_grid(Instant::now(), g);
        for ms in [0u64, 1, 249, 250, 251, 12_345] {
            let t = base + Duration::from_millis(ms);
            let slot = on_grid(t, g);
            assert!(slot >= t && slot < t + g, "{ms}");
            assert_eq!((slot - base).as_nanos() % g.as_nanos(), 0, "{ms}");
        }
        // Two instants in one slot start together.
        let a = on_grid(base + Duration::from_millis(10), g);
        let b = on_grid(base + Duration::from_millis(240), g);
        assert_eq!(a, b);
    }

    #[test]
    fn a_slot_before_the_epoch_is_the_next_one_not_the_epoch() {
        let g = Duration::from_millis(250);
        let epoch = Instant::now() + Duration::from_secs(3600);
        for ms in [0u64, 1, 100, 249, 250, 251, 1_000_000] {
            let t = epoch - Duration::from_millis(ms);
            let slot = slot_after(epoch, t, g);
            assert!(slot >= t && slot < t + g, "{ms}");
            assert_eq!((epoch - slot).as_nanos() % g.as_nanos(), 0, "{ms}");
        }
    }
}
