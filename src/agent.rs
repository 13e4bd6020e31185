//! The running agent: ties inventory, scheduler, health and metrics
//! together, and swaps the whole configuration atomically on reload.
//!
//! [`Agent`] is a cheap `Clone` handle around `Arc<Shared>`. The locks are
//! `std::sync::Mutex`: they are held for microseconds and never across an
//! `.await`, so a tokio mutex would only add cost.
//!
//! Probes run on a runtime of their own: one thread, current-thread tokio.
//! RTTs are timed in user space, so a long `/metrics` encode or a reload on
//! the HTTP runtime must not delay the thread that sees the replies; and one
//! thread without cross-thread wake-ups is also the cheapest per echo.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{broadcast, oneshot};

use crate::config::{self, ConfigError};
use crate::health::{HealthBook, SnmpStatus, State, Transition};
use crate::inventory::{Inventory, Target, TargetKind};
use crate::ledger::{Ledger, Record};
use crate::link::{self, CounterRates, EndStatus};
use crate::linkstats::{LinkStats, Peak};
use crate::metrics::{Metrics, TargetLabels};
use crate::probe::icmp::IcmpProber;
use crate::probe::snmp::SnmpPoll;
use crate::probe::{FailureReason, ProbeOutcome};
use crate::schedule::{OutcomeSink, Scheduler};
use crate::sla::rollup;

/// Transitions kept for slow subscribers before they start missing some.
const TRANSITION_BUFFER: usize = 4096;

#[derive(Clone)]
pub struct Agent {
    shared: Arc<Shared>,
}

struct Shared {
    config_path: PathBuf,
    inventory: Mutex<Arc<Inventory>>,
    book: Mutex<HealthBook>,
    metrics: Metrics,
    events: broadcast::Sender<Event>,
    scheduler: Mutex<Scheduler>,
    ready: AtomicBool,
    /// Ends the probe runtime's thread when sent (or dropped).
    probe_runtime_stop: Mutex<Option<oneshot::Sender<()>>>,
    ledger: Ledger,
    data_dir_override: Option<PathBuf>,
    /// Octet counters of link-end interfaces, for utilisation.
    link_rates: Mutex<CounterRates>,
    /// Serializes reloads (SIGHUP and POST /-/reload may race), so the
    /// last file read is the one that runs.
    reloading: Mutex<()>,
    /// Targets inside a maintenance window now, with the window's id.
    in_maintenance: Mutex<HashMap<String, i64>>,
    /// Links' figures of today (and yesterday, for late cycles), by link
    /// and Oslo day start; written to the ledger every SLA round.
    link_days: Mutex<HashMap<(String, i64), LinkDay>>,
    /// Each down service's root causes as last exported.
    service_causes: Mutex<HashMap<String, Vec<String>>>,
}

#[derive(Default)]
struct LinkDay {
    stats: LinkStats,
    /// Changed since last queued for the ledger.
    dirty: bool,
}

/// The state a target shows: `maintenance` inside a window (alerts stay
/// quiet), else what the probes see. The ledger always keeps the latter.
pub(crate) fn shown_state(
    in_maintenance: &HashMap<String, i64>,
    id: &str,
    observed: State,
) -> State {
    if in_maintenance.contains_key(id) {
        State::Maintenance
    } else {
        observed
    }
}

/// Recover the data from a poisoned lock: a panic elsewhere must not take
/// the whole agent down with it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The sink the scheduler feeds; a weak handle so tasks do not keep the
/// agent alive.
struct Sink(std::sync::Weak<Shared>);

impl OutcomeSink for Sink {
    fn observe(&self, target: &Target, outcome: ProbeOutcome) {
        if let Some(shared) = self.0.upgrade() {
            shared.observe(target, outcome);
        }
    }

    fn observe_snmp(&self, target: &Target, poll: SnmpPoll, requests: u32) {
        if let Some(shared) = self.0.upgrade() {
            shared.observe_snmp(target, poll, requests);
        }
    }
}

/// What the agent publishes on its event stream (the ledger subscribes).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Transition(Transition),
    /// sysUpTime went back: the device (or its SNMP agent) restarted.
    Reboot {
        target: String,
        at: DateTime<Utc>,
        uptime_seconds: f64,
    },
}

impl Agent {
    /// Start the probe runtime, open the ICMP sockets and start probing
    /// `inventory`. Fails only if the probe thread cannot be started.
    /// `data_dir` (from `--data-dir`) overrides `agent.data_dir`, also in
    /// every reloaded config.
    pub fn start(
        mut inventory: Inventory,
        config_path: &Path,
        data_dir: Option<PathBuf>,
    ) -> std::io::Result<Agent> {
        if let Some(d) = &data_dir {
            inventory.agent.data_dir = d.clone();
        }
        let started = Utc::now();
        let metrics = Metrics::new(&inventory.agent.id);
        let ledger = Ledger::start(
            &inventory.agent.data_dir,
            &inventory.agent.id,
            started,
            metrics.clone(),
            inventory.maintenance.clone(),
        )?;
        let (probe_runtime, probe_runtime_stop) = spawn_probe_runtime()?;
        let (prober, report) = {
            // surge-ping spawns its receive task on the current runtime.
            let _in_probe_runtime = probe_runtime.enter();
            IcmpProber::open()
        };
        report_sockets(&report, &metrics);
        let prober = Arc::new(prober);
        let (tx, _) = broadcast::channel(TRANSITION_BUFFER);
        let max = inventory.agent.max_concurrent_probes;
        let max_snmp = inventory.agent.max_concurrent_snmp_polls;
        let snmp_runtime = tokio::runtime::Handle::current();
        let shared = Arc::new_cyclic(|weak: &std::sync::Weak<Shared>| {
            let sink = Arc::new(Sink(weak.clone()));
            Shared {
                config_path: config_path.to_path_buf(),
                inventory: Mutex::new(Arc::new(inventory.clone())),
                book: Mutex::new(HealthBook::new()),
                metrics: metrics.clone(),
                events: tx,
                scheduler: Mutex::new(Scheduler::new(
                    prober,
                    sink,
                    metrics,
                    max,
                    max_snmp,
                    probe_runtime,
                    snmp_runtime,
                )),
                ready: AtomicBool::new(false),
                probe_runtime_stop: Mutex::new(Some(probe_runtime_stop)),
                ledger,
                data_dir_override: data_dir,
                link_rates: Mutex::new(CounterRates::default()),
                link_days: Mutex::new(HashMap::new()),
                service_causes: Mutex::new(HashMap::new()),
                reloading: Mutex::new(()),
                in_maintenance: Mutex::new(HashMap::new()),
            }
        });
        shared.install(&inventory, None);
        shared.watch_maintenance();
        tokio::spawn(sla_metrics(Arc::downgrade(&shared)));
        tokio::spawn(maintenance_watch(Arc::downgrade(&shared)));
        shared.ready.store(true, Ordering::SeqCst);
        shared.metrics.reload_successful.set(1);
        shared
            .metrics
            .reload_success_timestamp
            .set(Utc::now().timestamp_millis() as f64 / 1e3);
        Ok(Agent { shared })
    }

    /// Load, validate and swap the config file. On error the running config
    /// is untouched and `utkikk_config_last_reload_successful` goes to 0.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let s = &self.shared;
        let _one_at_a_time = lock(&s.reloading);
        match config::load(&s.config_path) {
            Ok(mut new) => {
                if let Some(d) = &s.data_dir_override {
                    new.agent.data_dir = d.clone();
                }
                let old = lock(&s.inventory).clone();
                if new.agent.data_dir != old.agent.data_dir {
                    tracing::warn!("agent.data_dir changed; the ledger moves at the next restart");
                }
                if new.agent.listen_address != old.agent.listen_address {
                    tracing::warn!(
                        "agent.listen_address changed; it takes effect at the next restart"
                    );
                }
                if new.agent.max_concurrent_probes != old.agent.max_concurrent_probes {
                    tracing::warn!(
                        "agent.max_concurrent_probes changed; it takes effect at the next restart"
                    );
                }
                if new.maintenance != old.maintenance {
                    s.ledger.set_config_windows(new.maintenance.clone());
                }
                s.install(&new, Some(&old));
                s.watch_maintenance();
                s.metrics.reload_successful.set(1);
                s.metrics
                    .reload_success_timestamp
                    .set(Utc::now().timestamp_millis() as f64 / 1e3);
                tracing::info!(targets = new.targets.len(), "configuration reloaded");
                Ok(())
            }
            Err(e) => {
                s.metrics.reload_successful.set(0);
                for p in &e.problems {
                    tracing::error!("{p}");
                }
                tracing::error!(
                    problems = e.problems.len(),
                    "configuration reload failed; the previous configuration keeps running"
                );
                Err(e)
            }
        }
    }

    pub fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::SeqCst)
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The live stream of state transitions and device events (the ledger
    /// subscribes here).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// Read the inventory and states together, consistently.
    pub fn with_state<R>(&self, f: impl FnOnce(&Inventory, &HealthBook) -> R) -> R {
        let inv = lock(&self.shared.inventory).clone();
        let book = lock(&self.shared.book);
        f(&inv, &book)
    }

    /// Stop probing: abort every probe task (in-flight probes are dropped),
    /// wait for them to end, then end the probe runtime.
    pub async fn stop(&self) {
        self.shared.ready.store(false, Ordering::SeqCst);
        // Build the future under the lock, await it without.
        let scheduler_stop = lock(&self.shared.scheduler).stopper();
        scheduler_stop.await;
        if let Some(tx) = lock(&self.shared.probe_runtime_stop).take() {
            let _ = tx.send(());
        }
        self.shared.save_link_days(Utc::now().timestamp_millis());
        // Commit what is queued and record a clean stop, off the runtime.
        let ledger = self.shared.ledger.clone();
        match tokio::task::spawn_blocking(move || ledger.stop()).await {
            Ok(Ok(())) => tracing::info!("ledger closed cleanly"),
            Ok(Err(e)) => tracing::error!("ledger not closed cleanly: {e}"),
            Err(e) => tracing::error!("ledger stop failed: {e}"),
        }
    }

    /// The ledger this agent writes.
    pub fn ledger(&self) -> &Ledger {
        &self.shared.ledger
    }

    /// Targets inside a maintenance window now, with the window's id.
    pub fn in_maintenance(&self) -> HashMap<String, i64> {
        lock(&self.shared.in_maintenance).clone()
    }

    /// Declare or withdraw a maintenance window (waits for the ledger; call
    /// off the runtime's workers), then apply it to the live states.
    pub fn change_maintenance(
        &self,
        op: crate::ledger::MaintenanceOp,
    ) -> Result<crate::ledger::MaintenanceDone, crate::ledger::LedgerError> {
        let r = self.shared.ledger.change_maintenance(op);
        self.shared.watch_maintenance();
        r
    }
}

impl Shared {
    fn install(&self, new: &Inventory, old: Option<&Inventory>) {
        let now = Utc::now();
        {
            let mut book = lock(&self.book);
            for tr in book.apply_inventory(new, old, now) {
                tracing::info!(
                    target_id = %tr.target,
                    from = tr.from.as_str(),
                    to = tr.to.as_str(),
                    reason = tr.reason.as_deref().unwrap_or(""),
                    "state change"
                );
                self.ledger.record(Record::Transition(tr.clone()));
                let _ = self.events.send(Event::Transition(tr));
            }
            if let Some(old) = old {
                for t in &old.targets {
                    let same_labels = new.target(&t.id).is_some_and(|n| {
                        TargetLabels::of(n) == TargetLabels::of(t) && n.kind == t.kind
                    });
                    if !same_labels {
                        self.metrics.remove_target(t);
                    } else if new.target(&t.id).is_some_and(|n| n.snmp.is_none()) {
                        self.metrics.remove_snmp_device(&t.id);
                    }
                }
            }
            let maint = lock(&self.in_maintenance);
            for t in &new.targets {
                if let Some(h) = book.get(&t.id) {
                    self.metrics
                        .set_state(t, shown_state(&maint, &t.id, h.state));
                }
                self.metrics
                    .set_in_maintenance(t, maint.contains_key(&t.id));
                self.metrics.set_thresholds(t);
            }
        }
        self.metrics.set_target_count(new.targets.len());
        self.metrics.set_services(&new.services);
        *lock(&self.inventory) = Arc::new(new.clone());
        lock(&self.scheduler).apply(new);
    }

    fn observe(&self, target: &Target, outcome: ProbeOutcome) {
        if target.kind == TargetKind::Link {
            let at = outcome.at.timestamp_millis();
            self.add_link_figures(&target.id, at, |s| s.record_probe(&outcome));
        }
        let transitions = {
            let mut book = lock(&self.book);
            // Removed by a reload while this cycle ran: its series are gone
            // (removed under this same lock) and must stay gone.
            if book.get(&target.id).is_none() {
                return;
            }
            self.metrics.record_outcome(target, &outcome);
            // Dated at the cycle's start: a failure began before the first
            // cycle that saw it, so this is within one interval of the truth.
            let at = outcome.at.min(Utc::now());
            book.observe(&target.id, outcome, at)
        };
        self.publish(transitions);
    }

    /// `utkikk_link_utilization_ratio` of links whose first end is on this
    /// device, from the end interface's octet counters and ifHighSpeed.
    fn update_utilisation(&self, inv: &Inventory, device: &Target, poll: &SnmpPoll) {
        let mut rates = lock(&self.link_rates);
        let Ok(snap) = &poll.result else {
            rates.forget(&device.id);
            for (l, end) in inv.link_ends_on(&device.id) {
                if end == 0 {
                    self.metrics.remove_link_utilisation(&l.id);
                }
            }
            return;
        };
        let now = tokio::time::Instant::now().into_std();
        for (l, end) in inv.link_ends_on(&device.id) {
            if end != 0 {
                continue;
            }
            let Some(i) = link::find(snap, &l.ends[0].interface) else {
                self.metrics.remove_link_utilisation(&l.id);
                continue;
            };
            if let Some(r) = rates.update(&device.id, i, poll.rebooted, now) {
                if let (Some(out), Some(inn)) = (
                    link::utilisation(r.out_bps, i),
                    link::utilisation(r.in_bps, i),
                ) {
                    self.metrics.set_link_utilisation(&l.id, out, inn);
                    let at_ms = poll.at.timestamp_millis();
                    let peak = |ratio, bps| Peak { ratio, bps, at_ms };
                    self.add_link_figures(&l.id, at_ms, |s| {
                        s.record_rates(peak(out, r.out_bps), peak(inn, r.in_bps))
                    });
                }
            }
        }
    }

    /// `utkikk_service_up` of every service, from the states shown now.
    fn update_services_now(&self) {
        let inv = lock(&self.inventory).clone();
        let now = Utc::now();
        let Some(today) = rollup::day_of(now.timestamp_millis()) else {
            return;
        };
        // Each target's shown state, and its root cause when it fails.
        let states: HashMap<String, (State, Option<String>)> = {
            let book = lock(&self.book);
            let maint = lock(&self.in_maintenance);
            inv.targets
                .iter()
                .map(|t| {
                    let (observed, cause) =
                        book.get(&t.id).map_or((State::Unmonitored, None), |h| {
                            (h.state, h.root_cause.clone())
                        });
                    let shown = shown_state(&maint, &t.id, observed);
                    let cause = match shown {
                        State::Down => Some(t.id.clone()),
                        State::Unreachable => cause,
                        _ => None,
                    };
                    (t.id.clone(), (shown, cause))
                })
                .collect()
        };
        let state_of = |t: &str| states.get(t).map_or(State::Unmonitored, |s| s.0);
        let mut causes = lock(&self.service_causes);
        let mut seen = std::collections::HashSet::new();
        for svc in &inv.services {
            seen.insert(svc.id.as_str());
            let up = svc.level_on(today).and_then(|level| {
                crate::sla::service::up_now(svc, level, now.timestamp_millis(), state_of)
            });
            self.metrics.set_service_up(&svc.id, up);
            // The failing required targets, and the members of groups
            // with none up.
            let mut now_causes: Vec<String> = if up == Some(false) {
                let up_now = |t: &String| matches!(state_of(t), State::Up | State::Degraded);
                svc.targets
                    .iter()
                    .chain(
                        svc.redundancy
                            .iter()
                            .filter(|g| !g.iter().any(up_now))
                            .flatten(),
                    )
                    .filter_map(|t| states.get(t).and_then(|s| s.1.clone()))
                    .collect()
            } else {
                Vec::new()
            };
            now_causes.sort();
            now_causes.dedup();
            let before = causes.remove(&svc.id).unwrap_or_default();
            let gone: Vec<String> = before
                .into_iter()
                .filter(|c| !now_causes.contains(c))
                .collect();
            self.metrics
                .set_service_root_causes(&svc.id, &now_causes, &gone);
            if !now_causes.is_empty() {
                causes.insert(svc.id.clone(), now_causes);
            }
        }
        // Services removed by a reload.
        let removed: Vec<String> = causes
            .keys()
            .filter(|k| !seen.contains(k.as_str()))
            .cloned()
            .collect();
        for svc in removed {
            if let Some(gone) = causes.remove(&svc) {
                self.metrics.set_service_root_causes(&svc, &[], &gone);
            }
        }
    }

    /// Add to a link's figures of the Oslo day of `at_ms`; not while it is
    /// in planned maintenance, nor for days already written for good.
    fn add_link_figures(&self, link: &str, at_ms: i64, add: impl FnOnce(&mut LinkStats)) {
        if lock(&self.in_maintenance).contains_key(link) {
            return;
        }
        let Some(day_ms) = rollup::day_of(at_ms).and_then(rollup::day_start) else {
            return;
        };
        if day_ms < oldest_link_day(Utc::now().timestamp_millis()) {
            return;
        }
        let mut days = lock(&self.link_days);
        let day = days.entry((link.to_string(), day_ms)).or_default();
        add(&mut day.stats);
        day.dirty = true;
    }

    /// Queue the links' changed figures for the ledger; forget days
    /// before yesterday (written for good).
    fn save_link_days(&self, now_ms: i64) {
        let mut days = lock(&self.link_days);
        for ((link, day_ms), day) in days.iter_mut().filter(|(_, d)| d.dirty) {
            day.dirty = false;
            self.ledger.record(Record::LinkDay {
                target: link.clone(),
                day_ms: *day_ms,
                data: day.stats.to_json(),
            });
        }
        let oldest = oldest_link_day(now_ms);
        days.retain(|(_, day_ms), _| *day_ms >= oldest);
    }

    fn publish(&self, transitions: Vec<Transition>) {
        if transitions.is_empty() {
            return;
        }
        let inv = lock(&self.inventory).clone();
        for tr in transitions {
            if let Some(t) = inv.target(&tr.target) {
                let state = shown_state(&lock(&self.in_maintenance), &tr.target, tr.to);
                self.metrics.set_state(t, state);
            }
            self.metrics.count_transition(&tr.target, tr.from, tr.to);
            tracing::info!(
                target_id = %tr.target,
                from = tr.from.as_str(),
                to = tr.to.as_str(),
                reason = tr.reason.as_deref().unwrap_or(""),
                root_cause = tr.root_cause.as_deref().unwrap_or(""),
                "state change"
            );
            self.ledger.record(Record::Transition(tr.clone()));
            // No subscriber is fine: the ledger is written directly.
            let _ = self.events.send(Event::Transition(tr));
        }
    }

    fn observe_snmp(&self, target: &Target, poll: SnmpPoll, requests: u32) {
        let status = SnmpStatus::of(poll.at, poll.result.as_ref().map(|_| ()));
        let transitions = {
            let mut book = lock(&self.book);
            let Some(h) = book.get(&target.id) else {
                return; // removed by a reload while this poll ran
            };
            // Log a change of SNMP verdict once, not every poll.
            let before = h.snmp.as_ref().map(|s| (s.ok, s.reason.clone()));
            if before != Some((status.ok, status.reason.clone())) {
                match &poll.result {
                    Ok(_) => tracing::info!(target_id = %target.id, "SNMP polling works"),
                    Err(e) => tracing::warn!(
                        target_id = %target.id,
                        reason = e.code(),
                        "SNMP polling fails: {e}"
                    ),
                }
            }
            self.metrics.record_snmp(target, &poll, requests);
            let now = Utc::now();
            let mut transitions = book.observe_snmp(&target.id, status, now);
            // Links with an end on this device learn what that end says.
            let inv = lock(&self.inventory).clone();
            for (link, end) in inv.link_ends_on(&target.id) {
                let e = &link.ends[end];
                let verdict = match &poll.result {
                    Ok(snap) => link::end_status(e, snap),
                    Err(err) => {
                        EndStatus::Unknown(format!("{} could not be polled: {err}", e.device))
                    }
                };
                transitions.extend(book.observe_link_end(&link.id, end, verdict, now));
            }
            self.update_utilisation(&inv, target, &poll);
            transitions
        };
        if poll.rebooted {
            let uptime_seconds = poll
                .result
                .as_ref()
                .map_or(0.0, |s| s.uptime_ticks as f64 / 100.0);
            tracing::warn!(
                target_id = %target.id,
                uptime_seconds,
                "device rebooted (sysUpTime went back)"
            );
            self.ledger.record(Record::Reboot {
                target: target.id.clone(),
                at: poll.at,
                uptime_seconds,
            });
            let _ = self.events.send(Event::Reboot {
                target: target.id.clone(),
                at: poll.at,
                uptime_seconds,
            });
        }
        self.publish(transitions);
    }
}

impl Shared {
    /// Bring the live states in line with the maintenance windows now:
    /// targets entering a window show `maintenance` (the ledger keeps what
    /// the probes see; the figures treat the window's time as planned), and
    /// leave it for their observed state when it ends.
    fn watch_maintenance(&self) {
        let now = Utc::now().timestamp_millis();
        let windows = self.ledger.maintenance();
        let mut now_in: HashMap<String, i64> = HashMap::new();
        let mut begun: Vec<(&crate::maintenance::Window, crate::sla::interval::Interval)> =
            Vec::new();
        for w in windows.iter() {
            if let Some(occ) = w.active_at(now) {
                begun.push((w, occ));
                for t in &w.spec.targets {
                    now_in.entry(t.clone()).or_insert(w.id);
                }
            }
        }
        let inv = lock(&self.inventory).clone();
        let book = lock(&self.book);
        let mut maint = lock(&self.in_maintenance);
        for t in &inv.targets {
            let was = maint.get(&t.id).copied();
            let is = now_in.get(&t.id).copied();
            if was.is_some() == is.is_some() {
                continue;
            }
            let observed = book.get(&t.id).map_or(State::Unmonitored, |h| h.state);
            self.metrics
                .set_state(t, shown_state(&now_in, &t.id, observed));
            self.metrics.set_in_maintenance(t, is.is_some());
            match is {
                Some(id) => {
                    let (w, occ) = begun
                        .iter()
                        .find(|(w, _)| w.id == id)
                        .map(|(w, o)| (Some(*w), Some(*o)))
                        .unwrap_or((None, None));
                    tracing::info!(
                        target_id = %t.id,
                        window = id,
                        category = w.map_or("", |w| w.spec.category.as_str()),
                        until = occ.map(|o| crate::sla::calendar::oslo_rfc3339(o.end)).unwrap_or_default(),
                        observed = observed.as_str(),
                        "maintenance begins"
                    );
                }
                None => tracing::info!(
                    target_id = %t.id,
                    window = was.unwrap_or_default(),
                    state = observed.as_str(),
                    "maintenance ends"
                ),
            }
        }
        *maint = now_in
            .into_iter()
            .filter(|(t, _)| inv.target(t).is_some())
            .collect();
    }
}

/// Windows begin and end on the clock: check every second.
async fn maintenance_watch(shared: std::sync::Weak<Shared>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(s) = shared.upgrade() else {
            return;
        };
        s.watch_maintenance();
        s.update_services_now();
    }
}

/// The start of yesterday (Oslo): link figures of older days are final.
fn oldest_link_day(now_ms: i64) -> i64 {
    rollup::day_of(now_ms)
        .and_then(|d| d.pred_opt())
        .and_then(rollup::day_start)
        .unwrap_or(i64::MIN)
}

/// Days summed up ahead of time per round of [`sla_metrics`].
const BACKFILL_PER_ROUND: usize = 31;

/// Compute this month's SLA figures of every service for the metrics, every
/// `agent.sla_interval`, off the runtime's workers; freeze last month's;
/// sum up closed days (see [`crate::sla::rollup`]).
async fn sla_metrics(shared: std::sync::Weak<Shared>) {
    let mut known: Vec<String> = Vec::new();
    // Let the writer open and migrate the ledger first (a moment), so the
    // first reading does not meet a file without its tables.
    for _ in 0..100 {
        match shared.upgrade() {
            Some(s) if s.ledger.current_run().is_none() => {}
            _ => break,
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    loop {
        let Some(s) = shared.upgrade() else {
            return;
        };
        let inv = lock(&s.inventory).clone();
        let ledger = s.ledger.clone();
        let metrics = s.metrics.clone();
        let interval = inv.agent.sla_interval;
        if !ledger.is_failing() {
            s.save_link_days(Utc::now().timestamp_millis());
        }
        drop(s);
        // Services removed by a reload lose their series.
        for gone in known
            .iter()
            .filter(|k| !inv.services.iter().any(|s| &s.id == *k))
        {
            metrics.set_sla(gone, None, None, None, None);
            metrics.set_service_up(gone, None);
        }
        known = inv.services.iter().map(|s| s.id.clone()).collect();
        let task = tokio::task::spawn_blocking(move || {
            let now = Utc::now();
            let month = crate::sla::calendar::Month::parse(
                &now.with_timezone(&chrono_tz::Europe::Oslo)
                    .format("%Y-%m")
                    .to_string(),
            );
            let store = if ledger.path().exists() {
                match crate::ledger::Store::open_read_only(ledger.path()) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::warn!("SLA metrics: cannot read the ledger: {e}");
                        return;
                    }
                }
            } else {
                None
            };
            let Some(month) = month else { return };
            // Last month's results, once closed, are frozen: kept as they
            // are now, whatever the config says later.
            if let Some(store) = store.as_ref() {
                for svc in &inv.services {
                    match crate::sla::freeze_month(store, svc, month.prev(), now.timestamp_millis())
                    {
                        Ok(Some(result)) => {
                            tracing::info!(service = %svc.id, month = %month.prev(), "month closed: results frozen");
                            ledger.record(Record::Frozen {
                                kind: crate::sla::FROZEN_SERVICE.to_string(),
                                id: svc.id.clone(),
                                month: month.prev().to_string(),
                                result,
                            });
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!(service = %svc.id, "freezing last month: {e}"),
                    }
                }
            }
            // Then every member's report and the regional overview of last
            // month, as they are once its service results are frozen.
            if let Some(store) = store.as_ref() {
                match crate::report::freeze_reports(
                    store,
                    &inv,
                    month.prev(),
                    now.timestamp_millis(),
                ) {
                    Ok(records) => {
                        if !records.is_empty() {
                            tracing::info!(month = %month.prev(), reports = records.len(), "month closed: reports frozen");
                        }
                        for r in records {
                            ledger.record(r);
                        }
                    }
                    Err(e) => tracing::warn!("freezing last month's reports: {e}"),
                }
            }
            // Closed days summed up once, a month's worth per round, so
            // queries read them instead of every transition. Not while the
            // ledger cannot be written: they would only wait in memory.
            if let Some(store) = store.as_ref().filter(|_| !ledger.is_failing()) {
                match crate::sla::rollup::backfill(
                    store,
                    &inv,
                    ledger.current_run(),
                    now.timestamp_millis(),
                    BACKFILL_PER_ROUND,
                ) {
                    Ok(records) => {
                        if !records.is_empty() {
                            tracing::debug!(records = records.len(), "closed days summed up");
                        }
                        for r in records {
                            ledger.record(r);
                        }
                    }
                    Err(e) => tracing::warn!("summing up closed days: {e}"),
                }
            }
            for svc in &inv.services {
                match crate::sla::service_month(
                    store.as_ref(),
                    svc,
                    month,
                    ledger.current_run(),
                    now.timestamp_millis(),
                ) {
                    Ok(Some((level, _, f))) => metrics.set_sla(
                        &svc.id,
                        Some(level.objective),
                        f.availability,
                        f.error_budget_remaining,
                        f.coverage,
                    ),
                    Ok(None) => metrics.set_sla(&svc.id, None, None, None, None),
                    Err(e) => tracing::warn!(service = %svc.id, "SLA metrics: {e}"),
                }
            }
        });
        let _ = task.await;
        tokio::time::sleep(interval).await;
    }
}

/// A current-thread runtime on a thread of its own, running until the
/// returned sender is used or dropped.
fn spawn_probe_runtime() -> std::io::Result<(tokio::runtime::Handle, oneshot::Sender<()>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    let (tx, rx) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("utkikk-probe".into())
        .spawn(move || {
            runtime.block_on(async {
                let _ = rx.await;
            });
        })?;
    Ok((handle, tx))
}

fn report_sockets(report: &crate::probe::icmp::SocketReport, metrics: &Metrics) {
    metrics.set_icmp_socket("ipv4", report.v4.is_ok());
    metrics.set_icmp_socket("ipv6", report.v6.is_ok());
    match (&report.v4, &report.v6) {
        (Err(FailureReason::Permission), _) | (_, Err(FailureReason::Permission)) => {
            tracing::error!(
                "cannot open an ICMP socket: permission denied; give utkikk CAP_NET_RAW (setcap cap_net_raw+ep, or AmbientCapabilities=CAP_NET_RAW) or let its group use ping sockets via sysctl net.ipv4.ping_group_range; ICMP targets stay unmonitored until then"
            );
        }
        _ => {}
    }
    for (family, r) in [("ipv4", &report.v4), ("ipv6", &report.v6)] {
        match r {
            Ok(kind) => tracing::info!(family, socket = kind, "ICMP socket open"),
            Err(FailureReason::Permission) => {}
            Err(e) => tracing::warn!(
                family,
                "no ICMP socket: {e}; these targets stay unmonitored"
            ),
        }
    }
}
