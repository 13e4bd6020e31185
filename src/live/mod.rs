//! The live state, with one owner: a task that owns the health book, the
//! inventory it runs on, the scheduler, what maintenance covers now, the
//! links' figures of today and their counter rates, and the services' root
//! causes. Probers send it typed observations over a channel; commands
//! (a new inventory, a maintenance change, stop) come over another. It
//! publishes an immutable [`Snapshot`] within 50 ms of a state change and
//! within a second of other news (a cycle's round-trip times)
//! (`arc-swap`; the per-target part is a table by inventory position in
//! shared chunks, so publishing copies only what changed and a reader
//! never copies 10,000 targets): the HTTP handlers, metrics
//! and service evaluation read that, and never take a lock the probe path
//! waits on.
//!
//! The owner sleeps until its next deadline — a held failure or a parked
//! link cycle (see [`crate::health`]), a maintenance window beginning or
//! ending, a service schedule opening or closing, the links' figures due
//! for the ledger — never on a fixed tick.
//!
//! Owns: live state. Must not touch: HTTP, the SLA maths.

mod services;
mod table;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::health::{Effects, HealthBook, SnmpStatus};
use crate::inventory::{Inventory, Target, TargetKind};
use crate::ledger::{Ledger, Record};
use crate::link::{self, CounterRates};
use crate::linkstats::{LinkDays, Peak};
use crate::metrics::{Metrics, TargetLabels, TargetSeries};
use crate::model::{EndStatus, Reason, SnmpError, State, Transition};
use crate::probe::snmp::SnmpPoll;
use crate::probe::{EndQuery, IcmpOutcome, Observation, Outcome};
use crate::schedule::Scheduler;
pub use services::next_boundary;
use table::Table;

/// Observations waiting for the owner; a prober whose send finds it full
/// waits (its next cycle is late, which `utkikk_schedule_lag_seconds`
/// shows) rather than anything being dropped.
pub const OBSERVATION_QUEUE: usize = 8192;
/// Messages handled before a snapshot is published, at most.
const BATCH: usize = 512;
/// A snapshot with a state change (or a maintenance change, or services
/// due) goes out this soon at most: a batch of observations, not each
/// one, pays for copying the table's changed chunks.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);
/// Without one, the targets' details (last cycle, SNMP status, link
/// ends) wait this long at most: at 10,000 targets a snapshot every 50 ms
/// copied most chunks twenty times a second to show new round-trip times.
const DETAILS_EVERY: Duration = Duration::from_secs(1);
/// Without other deadlines, look at the clock at least this often.
const IDLE_WAKE: Duration = Duration::from_secs(3600);

/// What the agent publishes on its event stream.
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

/// A target as it is now, for readers.
#[derive(Debug, Clone)]
pub struct TargetLive {
    /// What the probes see (the ledger keeps this).
    pub state: State,
    pub since: DateTime<Utc>,
    pub reason: Option<Reason>,
    pub root_cause: Option<String>,
    pub last_icmp: Option<Arc<IcmpOutcome>>,
    pub snmp: Option<SnmpStatus>,
    /// The last service check (shared with the health book).
    pub last_check: Option<Arc<crate::probe::check::CheckOutcome>>,
    pub ends: Vec<Option<EndStatus>>,
}

/// The live state as published after a batch: consistent in itself.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub inventory: Arc<Inventory>,
    /// By the inventory's positions.
    targets: Table<TargetLive>,
    /// Targets inside a maintenance window now, with the window's id.
    pub in_maintenance: Arc<HashMap<String, i64>>,
}

impl Snapshot {
    fn empty(inventory: Arc<Inventory>) -> Self {
        Snapshot {
            inventory,
            targets: Table::default(),
            in_maintenance: Arc::default(),
        }
    }

    pub fn target(&self, id: &str) -> Option<&TargetLive> {
        self.targets.get(self.inventory.position(id)?)
    }

    /// What a target shows: `maintenance` inside a window (alerts stay
    /// quiet), else what the probes see.
    pub fn shown_state(&self, id: &str) -> State {
        shown(&self.in_maintenance, id, self.target(id).map(|t| t.state))
    }
}

fn shown(in_maintenance: &HashMap<String, i64>, id: &str, observed: Option<State>) -> State {
    if in_maintenance.contains_key(id) {
        State::Maintenance
    } else {
        observed.unwrap_or(State::Unmonitored)
    }
}

/// The published snapshot, as the source of the targets' state series.
struct Published(Arc<ArcSwap<Snapshot>>);

impl crate::metrics::TargetStates for Published {
    fn for_each(&self, f: &mut dyn FnMut(&Target, State, bool)) {
        let s = self.0.load();
        for (i, t) in s.inventory.targets.iter().enumerate() {
            if !t.watched_by(&s.inventory.agent.id) {
                // Another agent's: this one has no state of it to show
                // (an `unmonitored` series would count against it).
                continue;
            }
            let observed = s.targets.get(i).map(|l| l.state);
            f(
                t,
                shown(&s.in_maintenance, &t.id, observed),
                s.in_maintenance.contains_key(&t.id),
            );
        }
    }
}

enum Command {
    /// Run on this inventory (the first, or a reload).
    Install(Arc<Inventory>, oneshot::Sender<()>),
    /// The maintenance windows changed (API, reload).
    MaintenanceChanged,
    /// Stop probing, save the links' figures, and end.
    Stop(oneshot::Sender<()>),
}

/// A cheap handle on the live state: its snapshot, and commands to its
/// owner.
#[derive(Clone)]
pub struct Live {
    commands: mpsc::UnboundedSender<Command>,
    snapshot: Arc<ArcSwap<Snapshot>>,
}

/// What the owner works with, besides its channels.
pub struct Parts {
    /// Where the owner runs: the probe runtime's thread, so an echo
    /// cycle's observation reaches it without waking another thread (the
    /// old design observed there too, under a lock).
    pub runtime: tokio::runtime::Handle,
    pub inventory: Arc<Inventory>,
    pub scheduler: Scheduler,
    pub metrics: Metrics,
    pub ledger: Ledger,
    pub events: broadcast::Sender<Event>,
}

impl Live {
    /// Start the owner on `parts.runtime`. `observations` is the
    /// receiving end of the channel the scheduler's probers send on.
    pub fn start(parts: Parts, observations: mpsc::Receiver<Observation>) -> Live {
        let (tx, rx) = mpsc::unbounded_channel();
        let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::empty(
            parts.inventory.clone(),
        )));
        parts
            .metrics
            .follow_states(Box::new(Published(snapshot.clone())));
        let owner = Owner {
            book: HealthBook::new(),
            inventory: parts.inventory,
            series: Vec::new(),
            installed: false,
            scheduler: parts.scheduler,
            metrics: parts.metrics,
            ledger: parts.ledger,
            events: parts.events,
            in_maintenance: HashMap::new(),
            link_rates: CounterRates::default(),
            link_days: LinkDays::default(),
            services: services::ServicesNow::default(),
            published: Table::default(),
            published_at: tokio::time::Instant::now(),
            publish_due: false,
            dirty: Vec::new(),
            dirty_marks: Vec::new(),
            snapshot: snapshot.clone(),
            services_due: true,
            maintenance_at: None,
            services_at: None,
            link_days_at: None,
        };
        parts.runtime.spawn(owner.run(rx, observations));
        Live {
            commands: tx,
            snapshot,
        }
    }

    /// The live state as last published.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Run on `inventory`; returns once the owner has taken it.
    pub async fn install(&self, inventory: Arc<Inventory>) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Install(inventory, tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// As [`Live::install`], from a thread outside the runtime.
    pub fn install_blocking(&self, inventory: Arc<Inventory>) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Install(inventory, tx)).is_ok() {
            let _ = rx.blocking_recv();
        }
    }

    pub fn maintenance_changed(&self) {
        let _ = self.commands.send(Command::MaintenanceChanged);
    }

    /// Stop probing (in-flight probes are dropped), save the links'
    /// figures; returns when done.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Stop(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

struct Owner {
    book: HealthBook,
    inventory: Arc<Inventory>,
    /// Each target's metric series, in the inventory's order.
    series: Vec<TargetSeries>,
    installed: bool,
    scheduler: Scheduler,
    metrics: Metrics,
    ledger: Ledger,
    events: broadcast::Sender<Event>,
    in_maintenance: HashMap<String, i64>,
    /// Octet counters of link-end interfaces, for utilisation.
    link_rates: CounterRates,
    link_days: LinkDays,
    services: services::ServicesNow,
    /// The per-target part of the snapshot, updated in place.
    published: Table<TargetLive>,
    /// When the last snapshot went out, and whether one is waiting.
    published_at: tokio::time::Instant,
    publish_due: bool,
    /// Positions of the targets changed since the last snapshot, and
    /// which positions are in that list.
    dirty: Vec<usize>,
    dirty_marks: Vec<bool>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    /// Services to evaluate again before the next snapshot.
    services_due: bool,
    maintenance_at: Option<DateTime<Utc>>,
    services_at: Option<DateTime<Utc>>,
    link_days_at: Option<DateTime<Utc>>,
}

impl Owner {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut observations: mpsc::Receiver<Observation>,
    ) {
        loop {
            let deadline = self.next_deadline();
            let mut wake =
                tokio::time::Instant::now() + (deadline - Utc::now()).to_std().unwrap_or_default();
            if self.publish_due {
                wake = wake.min(self.published_at + self.publish_after());
            }
            tokio::select! {
                biased;
                c = commands.recv() => match c {
                    Some(Command::Stop(done)) => {
                        self.stop().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(c) => self.command(c),
                    None => {
                        self.stop().await;
                        return;
                    }
                },
                o = observations.recv() => match o {
                    Some(o) => {
                        self.observe(o);
                        // Take what else is queued before publishing once.
                        for _ in 0..BATCH {
                            match observations.try_recv() {
                                Ok(o) => self.observe(o),
                                Err(_) => break,
                            }
                        }
                    }
                    None => {
                        self.stop().await;
                        return;
                    }
                },
                _ = tokio::time::sleep_until(wake) => {}
            }
            self.deadlines();
            if tokio::time::Instant::now() >= self.published_at + self.publish_after() {
                self.publish();
            } else {
                self.publish_due = true;
            }
        }
    }

    /// How long after the last snapshot the next one is due: soon when
    /// the services are to be evaluated again (a state or maintenance
    /// changed, a schedule opened or closed).
    fn publish_after(&self) -> Duration {
        if self.services_due {
            PUBLISH_EVERY
        } else {
            DETAILS_EVERY
        }
    }

    fn next_deadline(&self) -> DateTime<Utc> {
        let idle = Utc::now() + chrono::Duration::from_std(IDLE_WAKE).unwrap_or_default();
        [
            self.book.next_deadline(),
            self.maintenance_at,
            self.services_at,
            self.link_days_at,
        ]
        .into_iter()
        .flatten()
        .fold(idle, DateTime::min)
    }

    /// Whatever is due by now.
    fn deadlines(&mut self) {
        let now = Utc::now();
        if self.book.next_deadline().is_some_and(|d| d <= now) {
            let fx = self.book.expire(now);
            self.effects(fx);
        }
        if self.maintenance_at.is_some_and(|d| d <= now) {
            self.sync_maintenance();
        }
        if self.services_at.is_some_and(|d| d <= now) {
            self.services_due = true;
        }
        if self.link_days_at.is_some_and(|d| d <= now) {
            self.save_link_days();
        }
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Install(inv, done) => {
                self.install(inv);
                // The old inventory's and the load's transient memory.
                crate::memory::release_freed();
                // Published before the caller goes on: once the agent says
                // it is ready (or a reload returns), the API lists the
                // configured targets, not the snapshot before them.
                self.publish();
                let _ = done.send(());
            }
            Command::MaintenanceChanged => self.sync_maintenance(),
            Command::Stop(_) => {}
        }
    }

    async fn stop(&mut self) {
        let stopper = self.scheduler.stopper();
        stopper.await;
        self.save_link_days();
        self.publish();
    }

    fn install(&mut self, new: Arc<Inventory>) {
        let now = Utc::now();
        let old = self.installed.then(|| self.inventory.clone());
        let transitions = self.book.apply_inventory(&new, old.as_deref(), now);
        if let Some(old) = &old {
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
        self.inventory = new.clone();
        self.series = new
            .targets
            .iter()
            .map(|t| self.metrics.target_series(t))
            .collect();
        self.installed = true;
        self.transitions(transitions);
        self.metrics.set_target_count(new.targets.len());
        self.metrics.set_services(&new.services);
        self.metrics.set_members(&new.members);
        self.scheduler.apply(&new);
        // Every target anew: removed ones leave the published map.
        self.published = Table::with_len(new.targets.len());
        self.dirty = (0..new.targets.len()).collect();
        self.dirty_marks = vec![true; new.targets.len()];
        self.sync_maintenance();
        self.link_days_at =
            Some(now + chrono::Duration::from_std(new.agent.sla_interval).unwrap_or_default());
    }

    fn observe(&mut self, o: Observation) {
        let inv = self.inventory.clone();
        let Some((i, target)) = inv
            .position(&o.target)
            .and_then(|i| Some((i, inv.targets.get(i)?)))
        else {
            return; // removed by a reload while it was probed
        };
        let Some(h) = self.book.get(&target.id) else {
            return;
        };
        // What SNMP said before, to log a change once (not every poll).
        let before_snmp = match o.outcome {
            Outcome::Snmp(_) | Outcome::SnmpCheck(_) => h.snmp.as_ref().map(|s| s.error.clone()),
            _ => None,
        };
        let now = Utc::now();
        // Dated at the probe's start: a failure began before the first
        // cycle that saw it, so this is within one interval of the truth.
        let fx = self.book.observe(&o, now);
        match o.outcome {
            Outcome::Icmp(cycle) => {
                self.metrics.record_outcome(&mut self.series[i], &cycle);
                if target.kind == TargetKind::Link && !self.in_maintenance.contains_key(&target.id)
                {
                    let at = cycle.at.timestamp_millis();
                    self.link_days
                        .add(&target.id, at, now.timestamp_millis(), |s| {
                            s.record_probe(&cycle)
                        });
                }
            }
            Outcome::Snmp(poll) => {
                self.log_snmp_change(target, before_snmp.as_ref());
                self.update_utilisation(target, &poll);
                if poll.rebooted {
                    self.reboot(target, &poll);
                }
                for (l, _) in inv.link_ends_on(&target.id) {
                    self.mark_dirty(&l.id);
                }
                self.metrics.record_snmp(&self.series[i], poll);
            }
            Outcome::SnmpCheck(check) => {
                self.log_snmp_change(target, before_snmp.as_ref());
                self.metrics.record_snmp_check(&self.series[i], &check);
            }
            Outcome::Check(check) => self.metrics.record_check(&self.series[i], &check),
            Outcome::LinkEnd { .. } => {}
            Outcome::NotRun { probe, .. } => self.metrics.record_not_run(&self.series[i], probe),
        }
        self.mark_dirty_at(i);
        self.effects(fx);
    }

    /// Target `id` goes into the next snapshot.
    fn mark_dirty(&mut self, id: &str) {
        if let Some(i) = self.inventory.position(id) {
            self.mark_dirty_at(i);
        }
    }

    fn mark_dirty_at(&mut self, i: usize) {
        if let Some(m) = self.dirty_marks.get_mut(i) {
            if !*m {
                *m = true;
                self.dirty.push(i);
            }
        }
    }

    /// Log a change of SNMP verdict once, not every poll.
    /// `before`: what the last poll said (`None`: no poll had ended yet).
    fn log_snmp_change(&self, target: &Target, before: Option<&Option<SnmpError>>) {
        let Some(now) = self.book.get(&target.id).and_then(|h| h.snmp.as_ref()) else {
            return;
        };
        if before == Some(&now.error) {
            return;
        }
        match &now.error {
            None => tracing::info!(target_id = %target.id, "SNMP polling works"),
            Some(e) => tracing::warn!(
                target_id = %target.id,
                reason = e.code(),
                "SNMP polling fails: {e}"
            ),
        }
    }

    fn reboot(&mut self, target: &Target, poll: &SnmpPoll) {
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

    /// Carry out what the health book asked for, and publish its transitions.
    fn effects(&mut self, fx: Effects) {
        for id in fx.checks {
            if !self.scheduler.check(&id) {
                tracing::debug!(target_id = %id, "dependency check not queued");
            }
        }
        let mut by_device: HashMap<String, Vec<EndQuery>> = HashMap::new();
        for (device, q) in fx.end_reads {
            by_device.entry(device).or_default().push(q);
        }
        for (device, qs) in by_device {
            if !self.scheduler.read_ends(&device, qs) {
                tracing::debug!(target_id = %device, "link end read not queued");
            }
        }
        self.transitions(fx.transitions);
    }

    fn transitions(&mut self, transitions: Vec<Transition>) {
        for tr in transitions {
            self.metrics.count_transition(&tr.target, tr.from, tr.to);
            tracing::info!(
                target_id = %tr.target,
                from = tr.from.as_str(),
                to = tr.to.as_str(),
                reason = %tr.reason.as_ref().map(|r| r.to_string()).unwrap_or_default(),
                root_cause = tr.root_cause.as_deref().unwrap_or(""),
                "state change"
            );
            self.mark_dirty(&tr.target);
            self.services_due = true;
            self.ledger.record(Record::Transition(tr.clone()));
            // No subscriber is fine: the ledger is written directly.
            let _ = self.events.send(Event::Transition(tr));
        }
    }

    /// `utkikk_link_utilization_ratio` of links whose first end is on this
    /// device, from the end interface's octet counters and ifHighSpeed.
    fn update_utilisation(&mut self, device: &Target, poll: &SnmpPoll) {
        let inv = self.inventory.clone();
        let Ok(snap) = &poll.result else {
            self.link_rates.forget(&device.id);
            for (l, end) in inv.link_ends_on(&device.id) {
                if end == 0 {
                    self.metrics.remove_link_utilisation(&l.id);
                }
            }
            return;
        };
        let now = tokio::time::Instant::now().into_std();
        let now_ms = Utc::now().timestamp_millis();
        for (l, end) in inv.link_ends_on(&device.id) {
            if end != 0 {
                continue;
            }
            let Some(i) = link::find(snap, &l.ends[0].interface) else {
                self.metrics.remove_link_utilisation(&l.id);
                continue;
            };
            let Some(r) = self.link_rates.update(&device.id, i, poll.rebooted, now) else {
                continue;
            };
            if let (Some(out), Some(inn)) = (
                link::utilisation(r.out_bps, i),
                link::utilisation(r.in_bps, i),
            ) {
                self.metrics.set_link_utilisation(&l.id, out, inn);
                if self.in_maintenance.contains_key(&l.id) {
                    continue;
                }
                let at_ms = poll.at.timestamp_millis();
                let peak = |ratio, bps| Peak { ratio, bps, at_ms };
                self.link_days.add(&l.id, at_ms, now_ms, |s| {
                    s.record_rates(peak(out, r.out_bps), peak(inn, r.in_bps))
                });
            }
        }
    }

    /// Queue the links' changed figures for the ledger (not while it
    /// cannot be written: they would only wait in memory).
    fn save_link_days(&mut self) {
        let now = Utc::now();
        self.link_days_at = Some(
            now + chrono::Duration::from_std(self.inventory.agent.sla_interval).unwrap_or_default(),
        );
        for (target, day_ms, data) in self.link_days.take_changed(now.timestamp_millis()) {
            self.ledger.record(Record::LinkDay {
                target,
                day_ms,
                data,
            });
        }
    }

    /// Bring the live states in line with the maintenance windows now:
    /// targets entering a window show `maintenance` (the ledger keeps what
    /// the probes see; the figures treat the window's time as planned), and
    /// leave it for their observed state when it ends.
    fn sync_maintenance(&mut self) {
        let now = Utc::now();
        let now_ms = now.timestamp_millis();
        let windows = self.ledger.maintenance();
        let active = crate::maintenance::in_force_at(&windows, now_ms);
        let now_in: HashMap<String, i64> = active
            .iter()
            .filter(|(t, _, _)| self.inventory.target(t).is_some())
            .map(|(t, id, _)| (t.clone(), *id))
            .collect();
        let inv = self.inventory.clone();
        for t in &inv.targets {
            let was = self.in_maintenance.get(&t.id).copied();
            let is = now_in.get(&t.id).copied();
            if was.is_some() == is.is_some() {
                continue;
            }
            let observed = self.book.get(&t.id).map(|h| h.state);
            let observed = observed.unwrap_or(State::Unmonitored);
            match is {
                Some(id) => {
                    let (category, until) = active
                        .iter()
                        .find(|(x, w, _)| x == &t.id && *w == id)
                        .and_then(|(_, _, occ)| {
                            let w = windows.iter().find(|w| w.id == id)?;
                            Some((
                                w.spec.category.as_str(),
                                crate::time::oslo::rfc3339(occ.end),
                            ))
                        })
                        .unwrap_or(("", String::new()));
                    tracing::info!(
                        target_id = %t.id,
                        window = id,
                        category,
                        until,
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
            self.services_due = true;
        }
        self.in_maintenance = now_in;
        self.maintenance_at = crate::maintenance::next_change(&windows, now_ms, 86_400_000)
            .and_then(DateTime::from_timestamp_millis);
    }

    /// Publish what changed since the last snapshot, evaluating the
    /// services first when their inputs changed.
    fn publish(&mut self) {
        self.publish_due = false;
        self.published_at = tokio::time::Instant::now();
        if self.services_due {
            self.services_due = false;
            let now_ms = Utc::now().timestamp_millis();
            let book = &self.book;
            let maint = &self.in_maintenance;
            self.services.update(
                &self.inventory,
                now_ms,
                |t| {
                    let h = book.get(t);
                    let s = shown(maint, t, h.map(|h| h.state));
                    let cause = match s {
                        State::Down => Some(t.to_string()),
                        State::Unreachable => h.and_then(|h| h.root_cause.clone()),
                        _ => None,
                    };
                    (s, cause)
                },
                &self.metrics,
            );
            self.services_at = services::next_boundary(&self.inventory, now_ms)
                .and_then(DateTime::from_timestamp_millis);
        }
        let current = self.snapshot.load();
        let same_maintenance = *current.in_maintenance == self.in_maintenance;
        if self.dirty.is_empty()
            && same_maintenance
            && Arc::ptr_eq(&current.inventory, &self.inventory)
        {
            return;
        }
        let mut dirty = std::mem::take(&mut self.dirty);
        for &i in &dirty {
            if let Some(m) = self.dirty_marks.get_mut(i) {
                *m = false;
            }
            let Some(t) = self.inventory.targets.get(i) else {
                continue;
            };
            let live = self.book.get(&t.id).map(|h| {
                Arc::new(TargetLive {
                    state: h.state,
                    since: h.since,
                    reason: h.reason.clone(),
                    root_cause: h.root_cause.clone(),
                    last_icmp: h.last_icmp.clone(),
                    snmp: h.snmp.clone(),
                    last_check: h.last_check.clone(),
                    ends: h.ends.clone(),
                })
            });
            self.published.set(i, live);
        }
        dirty.clear();
        self.dirty = dirty;
        let in_maintenance = if same_maintenance {
            current.in_maintenance.clone()
        } else {
            Arc::new(self.in_maintenance.clone())
        };
        self.snapshot.store(Arc::new(Snapshot {
            inventory: self.inventory.clone(),
            targets: self.published.clone(),
            in_maintenance,
        }));
    }
}
