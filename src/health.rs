//! Target states: turns probe outcomes into `up`, `degraded`, `down`,
//! `unreachable` or `unmonitored`, with hysteresis, and attributes failures
//! behind a down parent to the root-cause target.
//!
//! Pure logic over a [`HealthBook`]: no clocks (callers pass `now`), no I/O.
//! Owns: per-target state. Must not touch: probes, metrics, storage.
//!
//! Rules:
//! - A cycle is observed as up, degraded (replies, but loss or mean RTT above
//!   the target's thresholds), down (no reply) or error (the probe could not
//!   run). An error makes the target `unmonitored` at once: we do not know.
//! - Leaving `unmonitored` (at start, or after an error) takes the first
//!   real observation as is: there is no earlier state to protect.
//! - Otherwise the state gets worse after `fail_after` consecutive cycles
//!   worse than it, and better after `recover_after` consecutive cycles better
//!   than it; it moves to the mildest of the worse (or the worst of the better)
//!   observations in the streak, so flapping between degraded and down is
//!   `degraded`, not an outage.
//! - A failing target with a parent in `down` or `unreachable` is
//!   `unreachable`, and its root cause is that parent's root cause. When a
//!   target goes down, its failing descendants are re-attributed at once.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::inventory::{Inventory, Target, Thresholds};
use crate::link::EndStatus;
use crate::probe::snmp::SnmpError;
use crate::probe::ProbeOutcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Up,
    Degraded,
    Down,
    Unreachable,
    Maintenance,
    Unmonitored,
}

impl State {
    pub const ALL: [State; 6] = [
        State::Up,
        State::Degraded,
        State::Down,
        State::Unreachable,
        State::Maintenance,
        State::Unmonitored,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Degraded => "degraded",
            State::Down => "down",
            State::Unreachable => "unreachable",
            State::Maintenance => "maintenance",
            State::Unmonitored => "unmonitored",
        }
    }

    fn failing(self) -> bool {
        matches!(self, State::Down | State::Unreachable)
    }
}

/// How one cycle looked, before hysteresis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Observation {
    Up = 0,
    Degraded = 1,
    Down = 2,
}

impl Observation {
    fn of_state(s: State) -> Option<Self> {
        match s {
            State::Up => Some(Observation::Up),
            State::Degraded => Some(Observation::Degraded),
            State::Down | State::Unreachable => Some(Observation::Down),
            State::Maintenance | State::Unmonitored => None,
        }
    }
}

/// A state change, as published to the transitions stream (and, later,
/// stored in the ledger).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    pub target: String,
    pub from: State,
    pub to: State,
    pub at: DateTime<Utc>,
    pub reason: Option<String>,
    /// For `unreachable`: the down target this failure is attributed to.
    pub root_cause: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetHealth {
    pub state: State,
    pub since: DateTime<Utc>,
    pub reason: Option<String>,
    pub root_cause: Option<String>,
    pub last_outcome: Option<ProbeOutcome>,
    /// The last SNMP poll's verdict, for targets polled over SNMP.
    pub snmp: Option<SnmpStatus>,
    /// For links: what each end's interface said at its device's last poll
    /// (`None` until then).
    pub ends: Vec<Option<EndStatus>>,
    #[serde(skip)]
    streak: Streak,
    /// Since when every observation has been `down`, across transitions: a
    /// hard failure that began mid-cycle first looks like loss (degraded),
    /// and its outage began with the first cycle that got nothing back.
    #[serde(skip)]
    down_run_since: Option<DateTime<Utc>>,
    /// Start of the last cycle, if it lost some replies but not all.
    #[serde(skip)]
    partial_cycle_at: Option<DateTime<Utc>>,
    /// When the target last went down on its own (while it stays failing):
    /// if a root cause above it turns out to have failed first, that outage
    /// is re-attributed to it.
    #[serde(skip)]
    own_down_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    icmp_enabled: bool,
    #[serde(skip)]
    thresholds: Thresholds,
    #[serde(skip)]
    parents: Vec<String>,
}

/// How the last SNMP poll of a target went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnmpStatus {
    pub at: DateTime<Utc>,
    pub ok: bool,
    /// `snmp_unreachable` (no answer) or `snmp_auth`, `snmp_error` otherwise.
    pub reason: Option<String>,
    pub message: Option<String>,
}

impl SnmpStatus {
    pub fn of(at: DateTime<Utc>, result: Result<(), &SnmpError>) -> Self {
        match result {
            Ok(()) => SnmpStatus {
                at,
                ok: true,
                reason: None,
                message: None,
            },
            Err(e) => SnmpStatus {
                at,
                ok: false,
                reason: Some(
                    match e {
                        SnmpError::Timeout { .. } | SnmpError::Io(_) => "snmp_unreachable",
                        SnmpError::Auth(_) => "snmp_auth",
                        SnmpError::Decode(_) | SnmpError::Agent(_) => "snmp_error",
                    }
                    .to_string(),
                ),
                message: Some(e.to_string()),
            },
        }
    }

    fn describe(&self) -> String {
        format!(
            "{}: {}",
            self.reason.as_deref().unwrap_or("snmp"),
            self.message.as_deref().unwrap_or("")
        )
    }
}

/// Consecutive observations on one side of the current state.
#[derive(Debug, Clone, Copy, Default)]
struct Streak {
    worse: u32,
    /// Mildest observation in the current worse streak.
    worse_mildest: Option<Observation>,
    better: u32,
    /// Worst observation in the current better streak.
    better_worst: Option<Observation>,
    /// When the current worse / better streak began: a confirmed change is
    /// dated there, not when hysteresis was satisfied.
    worse_since: Option<DateTime<Utc>>,
    better_since: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
pub struct HealthBook {
    targets: HashMap<String, TargetHealth>,
    children: HashMap<String, Vec<String>>,
}

impl HealthBook {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, id: &str) -> Option<&TargetHealth> {
        self.targets.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &TargetHealth)> {
        self.targets.iter()
    }

    /// Adopt a (re)loaded inventory. Targets that keep their id and address
    /// keep their state and history; new ones start `unmonitored`; removed ones
    /// are dropped.
    ///
    /// Returns a transition to `unmonitored` for every target that was in
    /// another state and is dropped (removed, or its address or kind
    /// changed): its record must not run on as if it were still watched.
    pub fn apply_inventory(
        &mut self,
        inv: &Inventory,
        previous: Option<&Inventory>,
        now: DateTime<Utc>,
    ) -> Vec<Transition> {
        let mut next = HashMap::with_capacity(inv.targets.len());
        for t in &inv.targets {
            let kept = previous
                .and_then(|p| p.target(&t.id))
                .filter(|old| same_identity(old, t))
                .and_then(|_| self.targets.remove(&t.id));
            let h = match kept {
                Some(mut h) => {
                    h.thresholds = t.thresholds.clone();
                    h.parents = t.parents.clone();
                    h.icmp_enabled = t.icmp.enabled;
                    if t.snmp.is_none() {
                        h.snmp = None;
                    }
                    if h.ends.len() != t.ends.len() {
                        h.ends = vec![None; t.ends.len()];
                    }
                    h
                }
                None => {
                    let reason = if t.icmp.enabled || t.snmp.is_some() || !t.ends.is_empty() {
                        "not probed yet"
                    } else {
                        "no probe enabled"
                    };
                    TargetHealth {
                        state: State::Unmonitored,
                        since: now,
                        reason: Some(reason.to_string()),
                        root_cause: None,
                        last_outcome: None,
                        snmp: None,
                        ends: vec![None; t.ends.len()],
                        streak: Streak::default(),
                        down_run_since: None,
                        partial_cycle_at: None,
                        own_down_at: None,
                        icmp_enabled: t.icmp.enabled,
                        thresholds: t.thresholds.clone(),
                        parents: t.parents.clone(),
                    }
                }
            };
            next.insert(t.id.clone(), h);
        }
        let dropped = std::mem::replace(&mut self.targets, next);
        self.children = inv.children();
        let mut out: Vec<Transition> = dropped
            .into_iter()
            .filter(|(_, h)| h.state != State::Unmonitored)
            .map(|(id, h)| Transition {
                reason: Some(
                    if inv.target(&id).is_some() {
                        "address or kind changed by a reload; monitoring starts anew"
                    } else {
                        "removed from the configuration"
                    }
                    .to_string(),
                ),
                target: id,
                from: h.state,
                to: State::Unmonitored,
                at: now,
                root_cause: None,
            })
            .collect();
        out.sort_by(|a, b| a.target.cmp(&b.target));
        out
    }

    /// Feed one probe outcome; returns every transition it caused (the
    /// target's own and its descendants' re-attribution).
    pub fn observe(
        &mut self,
        id: &str,
        outcome: ProbeOutcome,
        now: DateTime<Utc>,
    ) -> Vec<Transition> {
        let Some(h) = self.targets.get_mut(id) else {
            return Vec::new(); // removed by a reload while its probe ran
        };
        let mut observed = classify(&outcome, &h.thresholds);
        // A failure that begins mid-cycle leaves a cycle with some replies
        // lost just before the silent ones: the outage began in that cycle.
        let partial = outcome.received > 0 && outcome.received < outcome.sent;
        let silent = outcome.failure.is_some() && outcome.received == 0;
        if silent && h.down_run_since.is_none() {
            h.down_run_since = h.partial_cycle_at;
        }
        h.partial_cycle_at = partial.then_some(now);
        h.last_outcome = Some(outcome);
        // Reachable over ICMP but SNMP fails: the device is not all right.
        if let (Ok((Observation::Up, _)), Some(snmp)) = (&observed, &h.snmp) {
            if !snmp.ok {
                observed = Ok((Observation::Degraded, snmp.describe()));
            }
        }
        // A link whose end interface is down is down, whatever the ping says.
        if let Ok((obs, _)) = &observed {
            if let Some(reason) = ends_down(&h.ends).filter(|_| *obs != Observation::Down) {
                observed = Ok((Observation::Down, reason));
            }
        }
        self.apply(id, observed, now)
    }

    /// Feed what one end of a link says. A link that is also pinged uses it
    /// at its next ICMP cycle; a link judged by its ends alone takes each
    /// end's reading as an observation: an end down (operationally, while
    /// administratively up) makes it down, all readable ends up make it up,
    /// and with no end readable it is unmonitored.
    pub fn observe_link_end(
        &mut self,
        id: &str,
        end: usize,
        status: EndStatus,
        now: DateTime<Utc>,
    ) -> Vec<Transition> {
        let Some(h) = self.targets.get_mut(id) else {
            return Vec::new();
        };
        let Some(slot) = h.ends.get_mut(end) else {
            return Vec::new();
        };
        *slot = Some(status);
        if h.icmp_enabled {
            return Vec::new();
        }
        let observed = if let Some(reason) = ends_down(&h.ends) {
            Ok((Observation::Down, reason))
        } else if h.ends.iter().any(|e| matches!(e, Some(EndStatus::Up))) {
            Ok((Observation::Up, "link interfaces up".to_string()))
        } else {
            let why: Vec<String> = h
                .ends
                .iter()
                .flatten()
                .filter_map(|e| match e {
                    EndStatus::AdminDown(r) | EndStatus::Unknown(r) => Some(r.clone()),
                    _ => None,
                })
                .collect();
            Err(format!(
                "no end of the link can be judged: {}",
                why.join("; ")
            ))
        };
        self.apply(id, observed, now)
    }

    /// Feed one SNMP poll's verdict. For a target that is also pinged, it
    /// only colours the next ICMP cycle (up becomes degraded while SNMP
    /// fails); for an SNMP-only target it is the observation itself: an
    /// answer is up, an auth or agent error degraded (the device answers),
    /// no answer down.
    pub fn observe_snmp(
        &mut self,
        id: &str,
        status: SnmpStatus,
        now: DateTime<Utc>,
    ) -> Vec<Transition> {
        let Some(h) = self.targets.get_mut(id) else {
            return Vec::new();
        };
        let observed = match (status.ok, status.reason.as_deref()) {
            (true, _) => Ok((Observation::Up, "SNMP answers".to_string())),
            (false, Some("snmp_unreachable")) => Ok((Observation::Down, status.describe())),
            (false, _) => Ok((Observation::Degraded, status.describe())),
        };
        h.snmp = Some(status);
        if h.icmp_enabled {
            return Vec::new();
        }
        self.apply(id, observed, now)
    }

    fn apply(
        &mut self,
        id: &str,
        observed: Result<(Observation, String), String>,
        now: DateTime<Utc>,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        let Some(h) = self.targets.get_mut(id) else {
            return out;
        };
        let (obs, reason) = match observed {
            Err(reason) => {
                h.streak = Streak::default();
                h.down_run_since = None;
                if h.state == State::Unmonitored {
                    h.reason = Some(reason);
                } else {
                    set(h, id, State::Unmonitored, Some(reason), None, now, &mut out);
                }
                self.reattribute_descendants(id, now, &mut out);
                return out;
            }
            Ok(x) => x,
        };
        if obs == Observation::Down {
            h.down_run_since.get_or_insert(now);
        } else {
            h.down_run_since = None;
        }
        // A change confirmed by hysteresis happened when its streak began:
        // the first failed (or good) cycle, within one interval of the truth.
        let (target, at) = match Observation::of_state(h.state) {
            None => (Some(obs), now),
            Some(cur) if obs == cur => {
                h.streak = Streak::default();
                (None, now)
            }
            Some(cur) if obs > cur => {
                h.streak.better = 0;
                h.streak.better_worst = None;
                h.streak.better_since = None;
                h.streak.worse += 1;
                let since = *h.streak.worse_since.get_or_insert(now);
                let mildest = h.streak.worse_mildest.map_or(obs, |m| m.min(obs));
                h.streak.worse_mildest = Some(mildest);
                let t = (h.streak.worse >= h.thresholds.fail_after).then_some(mildest);
                (t, since)
            }
            Some(_) => {
                h.streak.worse = 0;
                h.streak.worse_mildest = None;
                h.streak.worse_since = None;
                h.streak.better += 1;
                let since = *h.streak.better_since.get_or_insert(now);
                let worst = h.streak.better_worst.map_or(obs, |w| w.max(obs));
                h.streak.better_worst = Some(worst);
                let t = (h.streak.better >= h.thresholds.recover_after).then_some(worst);
                (t, since)
            }
        };
        let at = match target {
            Some(Observation::Down) => at.min(h.down_run_since.unwrap_or(at)).max(h.since),
            Some(_) => at.max(h.since).min(now),
            None => now,
        };
        // A failing target whose parents changed since its last observation
        // (a parent recovered) is attributed anew even without a transition.
        let goal =
            target.or_else(|| (h.state.failing() && obs == Observation::Down).then_some(obs));
        if let Some(goal) = goal {
            let (state, root) = match goal {
                Observation::Up => (State::Up, None),
                Observation::Degraded => (State::Degraded, None),
                Observation::Down => self.attribution(id),
            };
            let Some(h) = self.targets.get_mut(id) else {
                return out;
            };
            if target.is_some() {
                h.streak = Streak::default();
            }
            let reason = match &root {
                Some(r) => Some(format!("parent {r} is down; {reason}")),
                None => Some(reason),
            };
            if h.state != state || h.root_cause != root {
                set(h, id, state, reason, root, at, &mut out);
                self.reattribute_descendants(id, at, &mut out);
            } else if target.is_some() {
                h.reason = reason;
            }
        }
        out
    }

    /// `down` with no failing parent, else `unreachable` with the root cause.
    fn attribution(&self, id: &str) -> (State, Option<String>) {
        let Some(h) = self.targets.get(id) else {
            return (State::Down, None);
        };
        for p in &h.parents {
            if let Some(ph) = self.targets.get(p) {
                match ph.state {
                    State::Down => return (State::Unreachable, Some(p.clone())),
                    State::Unreachable => {
                        return (
                            State::Unreachable,
                            ph.root_cause.clone().or(Some(p.clone())),
                        )
                    }
                    _ => {}
                }
            }
        }
        (State::Down, None)
    }

    /// After `id` changed, failing descendants that were failing on their own
    /// observations are attributed anew (down → unreachable when `id` went
    /// down; the root cause follows when `id` itself became unreachable).
    /// Descendants whose parent recovered are left until their own next
    /// observation, so a recovering path does not produce short child outages.
    /// `at` is when `id` changed (the start of its streak): a child that
    /// went down after that is attributed from its own change on, so the
    /// ledger holds no outage of its own for it.
    fn reattribute_descendants(&mut self, id: &str, at: DateTime<Utc>, out: &mut Vec<Transition>) {
        let mut work: Vec<String> = self.children.get(id).cloned().unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        while let Some(child) = work.pop() {
            if !seen.insert(child.clone()) {
                continue;
            }
            let Some(ch) = self.targets.get(&child) else {
                continue;
            };
            if !ch.state.failing() {
                continue;
            }
            let (state, root) = self.attribution(&child);
            if state == State::Down {
                continue; // parent recovered: wait for the child's own next cycle
            }
            let Some(ch) = self.targets.get(&child) else {
                continue;
            };
            if ch.state != state || ch.root_cause != root {
                let reason = root
                    .as_ref()
                    .map(|r| format!("parent {r} is down; no reply"));
                // Behind a chain, what counts is when the root cause went.
                let root_since = root
                    .as_ref()
                    .and_then(|r| self.targets.get(r))
                    .map(|r| r.since);
                let Some(ch) = self.targets.get_mut(&child) else {
                    continue;
                };
                let when = root_since.map_or(at, |r| r.min(at)).max(ch.since);
                set(ch, &child, state, reason.clone(), root.clone(), when, out);
                // It went down on its own after the root cause already had:
                // that was the root cause too. Say so from then on (the
                // ledger is append-only: a later row with the earlier
                // instant, read in time order, corrects it).
                if let (Some(d), Some(rs)) = (ch.own_down_at, root_since) {
                    if rs.min(at) <= d {
                        ch.own_down_at = None;
                        ch.since = ch.since.min(d);
                        out.push(Transition {
                            target: child.clone(),
                            from: State::Down,
                            to: state,
                            at: d,
                            reason: reason.map(|r| format!("{r} (attributed afterwards)")),
                            root_cause: root,
                        });
                    }
                }
                work.extend(self.children.get(&child).cloned().unwrap_or_default());
            }
        }
    }
}

fn set(
    h: &mut TargetHealth,
    id: &str,
    to: State,
    reason: Option<String>,
    root_cause: Option<String>,
    now: DateTime<Utc>,
    out: &mut Vec<Transition>,
) {
    // Never dated before the state it ends began: the ledger stays in order.
    let now = now.max(h.since);
    let from = h.state;
    h.state = to;
    h.since = now;
    match to {
        State::Down => h.own_down_at = Some(now),
        State::Unreachable => {}
        _ => h.own_down_at = None,
    }
    h.reason = reason.clone();
    h.root_cause = root_cause.clone();
    out.push(Transition {
        target: id.to_string(),
        from,
        to,
        at: now,
        reason,
        root_cause,
    });
}

/// The reasons of the ends that are down, if any.
fn ends_down(ends: &[Option<EndStatus>]) -> Option<String> {
    let down: Vec<&str> = ends
        .iter()
        .flatten()
        .filter_map(|e| match e {
            EndStatus::Down(r) => Some(r.as_str()),
            _ => None,
        })
        .collect();
    (!down.is_empty()).then(|| down.join("; "))
}

/// Address and kind are what a target *is*; other settings may change on
/// reload without losing its state.
fn same_identity(a: &Target, b: &Target) -> bool {
    a.address == b.address && a.kind == b.kind
}

/// Classify one cycle; `Err` when the probe could not run.
fn classify(o: &ProbeOutcome, th: &Thresholds) -> Result<(Observation, String), String> {
    if o.is_probe_error() {
        let reason = o
            .failure
            .as_ref()
            .map_or_else(|| "probe did not run".to_string(), |f| f.to_string());
        return Err(format!("probe could not run: {reason}"));
    }
    if !o.success() {
        let reason = o
            .failure
            .as_ref()
            .map_or_else(|| "no reply".to_string(), |f| f.to_string());
        return Ok((Observation::Down, reason));
    }
    let loss = o.loss_ratio().unwrap_or(0.0);
    if loss > th.degraded_loss_ratio {
        return Ok((
            Observation::Degraded,
            format!(
                "loss {:.0} % above {:.0} %",
                loss * 100.0,
                th.degraded_loss_ratio * 100.0
            ),
        ));
    }
    if let Some(stats) = o.rtt_stats() {
        let limit = th.degraded_rtt.as_secs_f64();
        if stats.avg_seconds > limit {
            return Ok((
                Observation::Degraded,
                format!(
                    "mean RTT {:.1} ms above {:.1} ms",
                    stats.avg_seconds * 1e3,
                    limit * 1e3
                ),
            ));
        }
    }
    Ok((Observation::Up, "replies within thresholds".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Address, AgentSettings, IcmpSettings, TargetKind};
    use crate::probe::{FailureReason, ProbeKind};
    use std::time::Duration;

    fn target(id: &str, parents: &[&str]) -> Target {
        Target {
            id: id.into(),
            name: id.into(),
            kind: TargetKind::Server,
            address: Address::Ip([127, 0, 0, 1].into()),
            site: None,
            member: None,
            serves: vec![],
            parents: parents.iter().map(|p| p.to_string()).collect(),
            labels: Default::default(),
            icmp: IcmpSettings {
                enabled: true,
                interval: Duration::from_secs(10),
                count: 4,
                spacing: Duration::from_millis(100),
                timeout: Duration::from_secs(1),
                payload_bytes: 56,
            },
            thresholds: Thresholds {
                degraded_loss_ratio: 0.2,
                degraded_rtt: Duration::from_millis(100),
                fail_after: 3,
                recover_after: 2,
            },
            snmp: None,
            ends: vec![],
        }
    }

    fn inventory(targets: Vec<Target>) -> Inventory {
        Inventory {
            source: "t.yaml".into(),
            agent: AgentSettings {
                id: "t".into(),
                listen_address: "127.0.0.1:0".parse().unwrap(),
                data_dir: ".".into(),
                max_concurrent_probes: 10,
                max_concurrent_snmp_polls: 10,
                resolve_interval: Duration::from_secs(60),
                sla_interval: Duration::from_secs(60),
                api_token: None,
            },
            members: vec![],
            sites: vec![],
            targets,
            services: vec![],
            maintenance: vec![],
            reports: Default::default(),
        }
    }

    fn ok(rtt_ms: u64, received: u32) -> ProbeOutcome {
        ProbeOutcome {
            probe: ProbeKind::Icmp,
            at: Utc::now(),
            address: None,
            sent: 4,
            received,
            rtts: vec![Duration::from_millis(rtt_ms); received as usize],
            failure: (received == 0).then_some(FailureReason::Timeout),
        }
    }

    fn up() -> ProbeOutcome {
        ok(1, 4)
    }
    fn lost() -> ProbeOutcome {
        ok(1, 0)
    }

    fn book(targets: Vec<Target>) -> HealthBook {
        let mut b = HealthBook::new();
        b.apply_inventory(&inventory(targets), None, Utc::now());
        b
    }

    fn state(b: &HealthBook, id: &str) -> State {
        b.get(id).unwrap().state
    }

    #[test]
    fn starts_unmonitored_then_takes_first_observation() {
        let mut b = book(vec![target("a", &[])]);
        assert_eq!(state(&b, "a"), State::Unmonitored);
        let t = b.observe("a", up(), Utc::now());
        assert_eq!(t.len(), 1);
        assert_eq!(state(&b, "a"), State::Up);
    }

    #[test]
    fn one_lost_cycle_is_not_an_outage_fail_after_is() {
        let mut b = book(vec![target("a", &[])]);
        b.observe("a", up(), Utc::now());
        b.observe("a", lost(), Utc::now());
        b.observe("a", lost(), Utc::now());
        assert_eq!(state(&b, "a"), State::Up);
        b.observe("a", up(), Utc::now()); // streak broken
        b.observe("a", lost(), Utc::now());
        b.observe("a", lost(), Utc::now());
        assert_eq!(state(&b, "a"), State::Up);
        let t = b.observe("a", lost(), Utc::now());
        assert_eq!(state(&b, "a"), State::Down);
        assert_eq!(t[0].from, State::Up);
        assert_eq!(t[0].reason.as_deref(), Some("no reply before the timeout"));
        b.observe("a", up(), Utc::now());
        assert_eq!(state(&b, "a"), State::Down);
        b.observe("a", up(), Utc::now());
        assert_eq!(state(&b, "a"), State::Up);
    }

    /// core → sw → srv, all up at `t`.
    fn chain_up(t: DateTime<Utc>) -> HealthBook {
        let mut b = book(vec![
            target("core", &[]),
            target("sw", &["core"]),
            target("srv", &["sw"]),
        ]);
        for id in ["core", "sw", "srv"] {
            b.observe(id, up(), t);
        }
        b
    }

    #[test]
    fn a_confirmed_change_is_dated_at_the_start_of_its_streak() {
        let t0 = Utc::now();
        let s = |n: i64| t0 + chrono::Duration::seconds(n);
        let mut b = book(vec![target("sw", &[]), target("srv", &["sw"])]);
        b.observe("sw", up(), s(0));
        b.observe("srv", up(), s(0));
        // The switch fails from 10 s; three cycles confirm it at 12 s.
        b.observe("sw", lost(), s(10));
        b.observe("sw", lost(), s(11));
        // The server behind it fails from 11 s and is confirmed first.
        for n in 11..14 {
            b.observe("srv", lost(), s(n));
        }
        assert_eq!(state(&b, "srv"), State::Down);
        let t = b.observe("sw", lost(), s(14));
        let sw = t.iter().find(|t| t.target == "sw").unwrap();
        assert_eq!(sw.at, s(10), "dated at the first failed cycle");
        // The server failed after its parent: unreachable from its own
        // change on, so its down lasted no time at all.
        let srv = t.iter().find(|t| t.target == "srv").unwrap();
        assert_eq!((srv.to, srv.at), (State::Unreachable, s(11)));
        // Behind a chain (core → sw → srv), the root cause's time counts:
        // srv failed after core did, before sw was confirmed.
        let mut b = chain_up(s(0));
        for n in 10..13 {
            b.observe("core", lost(), s(n));
        }
        for n in 11..14 {
            b.observe("srv", lost(), s(n));
        }
        let mut all = Vec::new();
        for n in 12..15 {
            all.extend(b.observe("sw", lost(), s(n)));
        }
        let srv = all.iter().find(|t| t.target == "srv").unwrap();
        assert_eq!((srv.to, srv.at), (State::Unreachable, s(11)), "{all:?}");
        // Seen in the lab: sw and srv are confirmed down on their own, sw
        // then becomes srv's root cause, and only later does core (which
        // failed first) go down: both outages were core's.
        let mut b = chain_up(s(0));
        b.observe("core", ok(1, 1), s(10)); // partial: degraded first
        b.observe("core", lost(), s(11));
        b.observe("core", lost(), s(12));
        assert_eq!(state(&b, "core"), State::Degraded);
        for n in 12..15 {
            b.observe("srv", lost(), s(n));
        }
        for n in 13..16 {
            b.observe("sw", lost(), s(n));
        }
        assert_eq!(state(&b, "srv"), State::Unreachable);
        let mut all = Vec::new();
        for n in 13..16 {
            all.extend(b.observe("core", lost(), s(n)));
        }
        assert_eq!(state(&b, "core"), State::Down);
        for (id, own) in [("sw", s(13)), ("srv", s(12))] {
            let fix = all
                .iter()
                .find(|t| t.target == id && t.at == own && t.to == State::Unreachable);
            assert!(fix.is_some(), "{id} re-attributed from {own}: {all:?}");
        }
        // Recovery too is dated at the first good cycle.
        b.observe("sw", up(), s(20));
        let t = b.observe("sw", up(), s(21));
        assert_eq!((t[0].to, t[0].at), (State::Up, s(20)));
        // A hard failure that began mid-cycle first looks like loss: the
        // outage begins with the cycle that lost the first replies.
        let mut b = book(vec![target("sw", &[])]);
        b.observe("sw", up(), s(30));
        let half = ok(1, 1); // one of two echoes answered
        b.observe("sw", half, s(40));
        b.observe("sw", lost(), s(41));
        let t = b.observe("sw", lost(), s(42));
        assert_eq!((t[0].to, t[0].at), (State::Degraded, s(40)));
        let mut t = b.observe("sw", lost(), s(43));
        t.extend(b.observe("sw", lost(), s(44)));
        t.extend(b.observe("sw", lost(), s(45)));
        let down = t.iter().find(|t| t.target == "sw").unwrap();
        // The cycle at 40 lost one echo of two: the failure began in it.
        assert_eq!((down.to, down.at), (State::Down, s(40)), "{t:?}");
    }

    #[test]
    fn loss_and_latency_degrade() {
        let mut b = book(vec![target("a", &[])]);
        b.observe("a", up(), Utc::now());
        for _ in 0..3 {
            b.observe("a", ok(1, 2), Utc::now()); // 50 % loss
        }
        assert_eq!(state(&b, "a"), State::Degraded);
        assert!(b
            .get("a")
            .unwrap()
            .reason
            .as_deref()
            .unwrap()
            .contains("loss 50 %"));
        let mut b = book(vec![target("a", &[])]);
        b.observe("a", ok(150, 4), Utc::now());
        assert_eq!(state(&b, "a"), State::Degraded);
    }

    #[test]
    fn flapping_between_degraded_and_down_is_degraded() {
        let mut b = book(vec![target("a", &[])]);
        b.observe("a", up(), Utc::now());
        b.observe("a", lost(), Utc::now());
        b.observe("a", ok(1, 2), Utc::now());
        b.observe("a", lost(), Utc::now());
        assert_eq!(state(&b, "a"), State::Degraded);
    }

    #[test]
    fn probe_error_is_unmonitored_never_down() {
        let mut b = book(vec![target("a", &[])]);
        b.observe("a", up(), Utc::now());
        let err = ProbeOutcome::not_run(ProbeKind::Icmp, Utc::now(), FailureReason::Permission);
        b.observe("a", err, Utc::now());
        assert_eq!(state(&b, "a"), State::Unmonitored);
        assert!(b
            .get("a")
            .unwrap()
            .reason
            .as_deref()
            .unwrap()
            .contains("CAP_NET_RAW"));
    }

    #[test]
    fn child_of_down_parent_is_unreachable_with_root_cause() {
        let mut b = book(vec![
            target("core", &[]),
            target("sw", &["core"]),
            target("srv", &["sw"]),
        ]);
        for id in ["core", "sw", "srv"] {
            b.observe(id, up(), Utc::now());
        }
        // The server notices first and goes down on its own...
        for _ in 0..3 {
            b.observe("srv", lost(), Utc::now());
        }
        assert_eq!(state(&b, "srv"), State::Down);
        for _ in 0..3 {
            b.observe("sw", lost(), Utc::now());
        }
        // ...then the switch goes down: the server is re-attributed at once.
        assert_eq!(state(&b, "sw"), State::Down);
        assert_eq!(state(&b, "srv"), State::Unreachable);
        assert_eq!(b.get("srv").unwrap().root_cause.as_deref(), Some("sw"));
        // The core goes down: the root cause moves up the whole chain.
        for _ in 0..3 {
            b.observe("core", lost(), Utc::now());
        }
        assert_eq!(state(&b, "sw"), State::Unreachable);
        assert_eq!(b.get("sw").unwrap().root_cause.as_deref(), Some("core"));
        assert_eq!(b.get("srv").unwrap().root_cause.as_deref(), Some("core"));
        // Core recovers; the switch's own next failing cycle makes it down again.
        b.observe("core", up(), Utc::now());
        b.observe("core", up(), Utc::now());
        assert_eq!(state(&b, "core"), State::Up);
        assert_eq!(state(&b, "sw"), State::Unreachable);
        b.observe("sw", lost(), Utc::now());
        assert_eq!(state(&b, "sw"), State::Down);
        assert_eq!(b.get("sw").unwrap().root_cause, None);
    }

    #[test]
    fn reload_keeps_unchanged_state_and_drops_removed() {
        let inv1 = inventory(vec![target("a", &[]), target("b", &[])]);
        let mut b = HealthBook::new();
        b.apply_inventory(&inv1, None, Utc::now());
        b.observe("a", up(), Utc::now());
        b.observe("b", up(), Utc::now());
        let mut moved = target("b", &[]);
        moved.address = Address::Ip([127, 0, 0, 2].into());
        let inv2 = inventory(vec![target("a", &[]), moved, target("c", &[])]);
        b.apply_inventory(&inv2, Some(&inv1), Utc::now());
        assert_eq!(state(&b, "a"), State::Up);
        assert_eq!(state(&b, "b"), State::Unmonitored);
        assert_eq!(state(&b, "c"), State::Unmonitored);
        let inv3 = inventory(vec![target("a", &[])]);
        b.apply_inventory(&inv3, Some(&inv2), Utc::now());
        assert!(b.get("b").is_none());
    }

    fn snmp(ok: bool, err: Option<SnmpError>) -> SnmpStatus {
        SnmpStatus::of(
            Utc::now(),
            if ok {
                Ok(())
            } else {
                Err(err.as_ref().unwrap())
            },
        )
    }

    #[test]
    fn snmp_failure_degrades_a_pinged_device_and_auth_is_its_own_reason() {
        let mut b = book(vec![target("sw", &[])]);
        b.observe("sw", up(), Utc::now());
        let auth = SnmpError::Auth("Not authenticated".into());
        assert!(b
            .observe_snmp("sw", snmp(false, Some(auth)), Utc::now())
            .is_empty());
        for _ in 0..2 {
            b.observe("sw", up(), Utc::now());
        }
        assert_eq!(state(&b, "sw"), State::Up, "hysteresis: fail_after 3");
        b.observe("sw", up(), Utc::now());
        assert_eq!(state(&b, "sw"), State::Degraded);
        assert!(b
            .get("sw")
            .unwrap()
            .reason
            .as_deref()
            .unwrap()
            .starts_with("snmp_auth"));
        // ICMP failing wins over any SNMP verdict.
        for _ in 0..3 {
            b.observe("sw", lost(), Utc::now());
        }
        assert_eq!(state(&b, "sw"), State::Down);
    }

    #[test]
    fn snmp_only_device_silent_is_down_answering_is_up() {
        let mut t = target("sw", &[]);
        t.icmp.enabled = false;
        let mut b = book(vec![t]);
        let timeout = SnmpError::Timeout {
            attempts: 3,
            timeout_ms: 1000,
        };
        b.observe_snmp("sw", snmp(true, None), Utc::now());
        assert_eq!(state(&b, "sw"), State::Up);
        for _ in 0..3 {
            b.observe_snmp("sw", snmp(false, Some(timeout.clone())), Utc::now());
        }
        assert_eq!(state(&b, "sw"), State::Down);
        assert!(b
            .get("sw")
            .unwrap()
            .reason
            .as_deref()
            .unwrap()
            .starts_with("snmp_unreachable"));
    }

    #[test]
    fn link_end_down_makes_the_link_down_even_when_pings_pass() {
        let mut l = target("link", &[]);
        l.kind = TargetKind::Link;
        l.ends = vec![
            crate::inventory::LinkEnd {
                device: "a".into(),
                interface: "ge-0/0/1".into(),
            },
            crate::inventory::LinkEnd {
                device: "b".into(),
                interface: "ge-0/0/2".into(),
            },
        ];
        let mut b = book(vec![l]);
        b.observe("link", up(), Utc::now());
        b.observe_link_end("link", 0, EndStatus::AdminDown("shut".into()), Utc::now());
        b.observe_link_end(
            "link",
            1,
            EndStatus::Down("ge-0/0/2 on b is down".into()),
            Utc::now(),
        );
        for _ in 0..3 {
            b.observe("link", up(), Utc::now());
        }
        assert_eq!(state(&b, "link"), State::Down);
        assert!(b
            .get("link")
            .unwrap()
            .reason
            .as_deref()
            .unwrap()
            .contains("ge-0/0/2 on b"));
        b.observe_link_end("link", 1, EndStatus::Up, Utc::now());
        for _ in 0..2 {
            b.observe("link", up(), Utc::now());
        }
        assert_eq!(state(&b, "link"), State::Up);
    }

    #[test]
    fn link_judged_by_ends_alone_is_unmonitored_when_no_end_can_be_read() {
        let mut l = target("link", &[]);
        l.kind = TargetKind::Link;
        l.icmp.enabled = false;
        l.ends = vec![crate::inventory::LinkEnd {
            device: "a".into(),
            interface: "x".into(),
        }];
        let mut b = book(vec![l]);
        b.observe_link_end("link", 0, EndStatus::Up, Utc::now());
        assert_eq!(state(&b, "link"), State::Up);
        b.observe_link_end(
            "link",
            0,
            EndStatus::Unknown("a could not be polled".into()),
            Utc::now(),
        );
        assert_eq!(state(&b, "link"), State::Unmonitored);
    }
}
