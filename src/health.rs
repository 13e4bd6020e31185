//! Target states: turns typed observations into `up`, `degraded`, `down`,
//! `unreachable` or `unmonitored`, with hysteresis, and attributes failures
//! behind a failing parent to the root-cause target.
//!
//! Pure logic over a [`HealthBook`]: no clocks (callers pass instants), no
//! I/O. What it needs from the world (a parent looked at now, a link end
//! read again) it asks for in its [`Effects`]. Owns: per-target state.
//! Must not touch: probes, metrics, storage.
//!
//! Rules:
//! - An observation grades a target up, degraded (replies, but loss or mean
//!   RTT above the target's thresholds; SNMP failing on a pinged device),
//!   down (no reply; a link end down) or not run (the probe could not run).
//!   Not run makes the target `unmonitored` at once: we do not know.
//! - Leaving `unmonitored` (at start, or after an error) takes the first
//!   real observation as is: there is no earlier state to protect.
//! - Otherwise the state gets worse after `fail_after` consecutive
//!   observations worse than it, and better after `recover_after` better
//!   ones; it moves to the mildest of the worse (or the worst of the better)
//!   observations in the streak, so flapping between degraded and down is
//!   `degraded`, not an outage. A streak that began with a cycle which lost
//!   some replies, followed by silence only, is a failure that began inside
//!   that cycle: `down`, dated there.
//! - Dependencies are checked on demand, as Icinga does for host
//!   dependencies: a failing (or lossy) observation of a target asks for its
//!   parents to be looked at now. A target's failure is confirmed only once
//!   every parent has either been seen clear since the failure began (the
//!   failure is the target's own: `down`), or is confirmed failing itself
//!   (`unreachable`, root cause the parent's root cause). Until then the
//!   confirmation is held, for at most a bounded time. So the record never
//!   books an outage of a target whose failure its parent explains, in
//!   whatever order their cycles run.
//! - A link with an end read as down is re-read at once when echoes across
//!   it come back (the cycle waits for that reading), and at every cycle
//!   while an end stays down: a restored link is not held down by an old
//!   reading.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use crate::inventory::{Inventory, Target};
use crate::link;
use crate::model::{EndName, EndStatus, EndUnknown, Reason, SnmpError};
pub use crate::model::{State, Transition};
use crate::probe::{EndQuery, IcmpOutcome, Limits, Observation, Outcome, ProbeKind, Verdict};

type Time = DateTime<Utc>;

/// Time allowed on top of a probe's own budget before its answer is
/// given up on.
const ANSWER_SLACK: Duration = Duration::from_millis(500);
/// How long an agent may go on reporting an interface down after it came
/// up (net-snmp caches its interface table for 1–3 s; devices similar):
/// echoes back across a link this long before its end reads up date the
/// repair.
const END_STALENESS: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// How one observation graded a target, before hysteresis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Grade {
    Up = 0,
    Degraded = 1,
    Down = 2,
}

impl Grade {
    fn of_state(s: State) -> Option<Self> {
        match s {
            State::Up => Some(Grade::Up),
            State::Degraded => Some(Grade::Degraded),
            State::Down | State::Unreachable => Some(Grade::Down),
            State::Maintenance | State::Unmonitored => None,
        }
    }
}

/// One observation, graded: `Err` when the probe could not run.
#[derive(Debug, Clone)]
struct Seen {
    grade: Result<(Grade, Reason), Reason>,
    /// Some replies lost, some not (a failure beginning or ending inside
    /// the cycle, or a lossy path).
    partial: bool,
    /// When the observation began.
    at: Time,
}

#[derive(Debug, Clone)]
pub struct TargetHealth {
    pub state: State,
    pub since: Time,
    pub reason: Option<Reason>,
    pub root_cause: Option<String>,
    /// The last ICMP echo cycle (shared with the published snapshot).
    pub last_icmp: Option<std::sync::Arc<IcmpOutcome>>,
    /// The last SNMP poll's (or check's) verdict, for targets polled over SNMP.
    pub snmp: Option<SnmpStatus>,
    /// The last service check, for targets that have one.
    pub last_check: Option<std::sync::Arc<crate::probe::check::CheckOutcome>>,
    /// For links: what each end's interface said at its last reading
    /// (`None` until then).
    pub ends: Vec<Option<EndStatus>>,
    streak: Streak,
    /// Since when every observation has been `down`, across transitions: a
    /// hard failure that began mid-cycle first looks like loss (degraded),
    /// and its outage began with the first cycle that got nothing back.
    down_run_since: Option<Time>,
    /// Start of the last cycle, if it lost some replies but not all.
    partial_cycle_at: Option<Time>,
    /// When the target last went down on its own (while it stays failing):
    /// if a root cause above it turns out to have failed first, that outage
    /// is re-attributed to it.
    own_down_at: Option<Time>,
    /// Boxed, as `held` and `parked`: 10,000 of these live in one map.
    spec: Box<Spec>,
    /// Start of the latest observation that graded the target, and of the
    /// latest clear one (every reply back, or SNMP answering).
    seen_at: Option<Time>,
    clear_at: Option<Time>,
    /// A confirmed failure waiting for its parents to be judged.
    held: Option<Box<Hold>>,
    /// An echo cycle of a link waiting for its ends to be read again.
    parked: Option<Box<Parked>>,
    /// A check on demand was asked for; its answer is due by then.
    check_due: Option<Time>,
    /// Ends asked to be read again, and when their answers are due.
    ends_awaited: Vec<usize>,
    ends_due: Option<Time>,
    /// Echoes came back across the link (after failing) while an end
    /// still read down: since when, and how many cycles.
    echoes_back: Option<(Time, u32)>,
    echoes_failed: bool,
}

/// What a target is and how it is probed, from the inventory.
#[derive(Debug, Clone, Default)]
struct Spec {
    icmp: bool,
    snmp: bool,
    /// A service check grades it (alone: validation allows no ICMP or
    /// SNMP beside it).
    check: bool,
    /// Its own cycle interval (ICMP, else SNMP).
    interval: Duration,
    /// How long a check of it takes at most.
    check_budget: Duration,
    limits: Limits,
    fail_after: u32,
    recover_after: u32,
    parents: Vec<String>,
    /// For links: each end's device, interface, and how long a read of it
    /// takes at most.
    ends: Vec<(String, String, Duration)>,
}

impl Spec {
    fn of(t: &Target, inv: &Inventory) -> Spec {
        let icmp_budget = t.icmp.cycle_length();
        let snmp_budget = t.snmp.as_ref().map(|s| s.request_budget());
        Spec {
            icmp: t.icmp.enabled,
            snmp: t.snmp.is_some(),
            check: t.check.is_some(),
            interval: if let Some(c) = &t.check {
                c.interval
            } else if t.icmp.enabled {
                t.icmp.interval
            } else {
                t.snmp.as_ref().map_or(t.icmp.interval, |s| s.interval)
            },
            check_budget: if let Some(c) = &t.check {
                c.timeout
            } else if t.icmp.enabled {
                icmp_budget
            } else {
                snmp_budget.unwrap_or(icmp_budget)
            } + ANSWER_SLACK,
            limits: Limits {
                degraded_loss_ratio: t.thresholds.degraded_loss_ratio,
                degraded_rtt: t.thresholds.degraded_rtt,
            },
            fail_after: t.thresholds.fail_after.max(1),
            recover_after: t.thresholds.recover_after.max(1),
            parents: t.parents.clone(),
            ends: t
                .ends
                .iter()
                .map(|e| {
                    let budget = inv
                        .target(&e.device)
                        .and_then(|d| d.snmp.as_ref())
                        .map_or(Duration::ZERO, |s| s.request_budget());
                    (e.device.clone(), e.interface.clone(), budget + ANSWER_SLACK)
                })
                .collect(),
        }
    }

    /// Something can look at it on demand.
    fn checkable(&self) -> bool {
        self.icmp || self.snmp || self.check || !self.ends.is_empty()
    }

    fn any_probe(&self) -> bool {
        self.checkable()
    }
}

#[derive(Debug, Clone)]
struct Hold {
    /// When the failure began (its streak's start).
    at: Time,
    reason: Reason,
    deadline: Time,
}

#[derive(Debug, Clone)]
struct Parked {
    cycle: std::sync::Arc<IcmpOutcome>,
    deadline: Time,
}

/// How the last SNMP poll (or check) of a target went.
#[derive(Debug, Clone, PartialEq)]
pub struct SnmpStatus {
    pub at: Time,
    pub error: Option<SnmpError>,
}

impl SnmpStatus {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

impl schemars::JsonSchema for SnmpStatus {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SnmpStatus".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "How the last SNMP poll went.",
            "type": "object",
            "required": ["at", "ok", "reason", "message"],
            "properties": {
                "at": {"type": "string", "format": "date-time"},
                "ok": {"type": "boolean"},
                "reason": {
                    "description": "`snmp_unreachable` (no answer), `snmp_auth`, `snmp_error` (the device answered with an error), or `probe_not_run` (a local failure: nothing is known of the device); null when ok.",
                    "type": ["string", "null"],
                    "enum": ["snmp_unreachable", "snmp_auth", "snmp_error", "probe_not_run", null]
                },
                "message": {"type": ["string", "null"]}
            }
        })
    }
}

/// `{at, ok, reason, message}`: `reason` is `snmp_unreachable` (no answer),
/// `snmp_auth`, `snmp_error` or `probe_not_run`.
impl Serialize for SnmpStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("SnmpStatus", 4)?;
        st.serialize_field("at", &self.at)?;
        st.serialize_field("ok", &self.ok())?;
        st.serialize_field("reason", &self.error.as_ref().map(|e| e.verdict_code()))?;
        st.serialize_field("message", &self.error.as_ref().map(|e| e.to_string()))?;
        st.end()
    }
}

/// Consecutive observations on each side of the current state.
#[derive(Debug, Clone, Copy, Default)]
struct Streak {
    worse: Side,
    better: Side,
}

/// Consecutive observations worse (or better) than the current state.
#[derive(Debug, Clone, Copy, Default)]
struct Side {
    n: u32,
    /// The mildest of the worse (the worst of the better) observations.
    extreme: Option<Grade>,
    /// When the streak began: a confirmed change is dated there, not when
    /// hysteresis was satisfied.
    since: Option<Time>,
    /// The streak began with a cycle that lost only some replies; and the
    /// extreme of the observations after that one.
    lead_partial: bool,
    rest: Option<Grade>,
}

impl Side {
    /// Add `obs`; `toward` picks the extreme (`min` on the worse side,
    /// `max` on the better). Returns the streak's start and the state it
    /// moves to once confirmed: its extreme, except that a first cycle
    /// with some replies lost followed only by `clean` observations (down
    /// on the worse side, up on the better) is a change inside that cycle,
    /// not a lossy path: `clean`.
    fn push(
        &mut self,
        obs: Grade,
        partial: bool,
        at: Time,
        toward: fn(Grade, Grade) -> Grade,
        clean: Grade,
    ) -> (Time, Grade) {
        if self.n == 0 {
            self.lead_partial = partial;
            self.rest = None;
        } else {
            self.rest = Some(self.rest.map_or(obs, |r| toward(r, obs)));
        }
        self.n += 1;
        let since = *self.since.get_or_insert(at);
        let extreme = self.extreme.map_or(obs, |e| toward(e, obs));
        self.extreme = Some(extreme);
        let goal = if self.lead_partial && self.rest == Some(clean) {
            clean
        } else {
            extreme
        };
        (since, goal)
    }
}

/// What the world must do after an observation: transitions to publish,
/// targets to look at now, link ends to read again.
#[derive(Debug, Default)]
pub struct Effects {
    pub transitions: Vec<Transition>,
    /// Targets to check now (their parents' failure is being decided).
    pub checks: Vec<String>,
    /// Link ends to read now, with the device that carries each.
    pub end_reads: Vec<(String, EndQuery)>,
}

/// What the parents say about a child's failure that began at some instant.
enum ParentsSay {
    /// A parent is failing: the root cause.
    Explain(String),
    /// Every parent was seen clear since (or cannot be looked at).
    Own,
    /// These parents are still being judged.
    Pending(Vec<String>),
}

#[derive(Debug, Default)]
pub struct HealthBook {
    /// Boxed: the map's spare places cost a pointer, not ~350 bytes.
    /// foldhash: looked up several times per observation, and the keys
    /// are the config's ids (not chosen by anyone on the network).
    targets: HashMap<String, Box<TargetHealth>, foldhash::fast::RandomState>,
    children: HashMap<String, Vec<String>>,
    /// Links with an end on each device, with the end's index.
    ends_on: HashMap<String, Vec<(String, usize)>>,
    /// Targets with a held confirmation or a parked cycle.
    waiting: HashSet<String>,
}

impl HealthBook {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, id: &str) -> Option<&TargetHealth> {
        self.targets.get(id).map(|h| &**h)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &TargetHealth)> {
        self.targets.iter().map(|(id, h)| (id, &**h))
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
        now: Time,
    ) -> Vec<Transition> {
        let mut next = HashMap::with_capacity_and_hasher(inv.targets.len(), Default::default());
        for t in &inv.targets {
            let kept = previous
                .and_then(|p| p.target(&t.id))
                .filter(|old| same_identity(old, t))
                .and_then(|_| self.targets.remove(&t.id));
            let spec = Spec::of(t, inv);
            let h = match kept {
                Some(mut h) => {
                    if !spec.snmp {
                        h.snmp = None;
                    }
                    if h.ends.len() != spec.ends.len() {
                        h.ends = vec![None; spec.ends.len()];
                        h.parked = None;
                        h.ends_awaited.clear();
                    }
                    h.spec = Box::new(spec);
                    h
                }
                None => {
                    let reason = if spec.any_probe() {
                        Reason::NotProbedYet
                    } else {
                        Reason::NoProbeEnabled
                    };
                    Box::new(TargetHealth {
                        state: State::Unmonitored,
                        since: now,
                        reason: Some(reason),
                        root_cause: None,
                        last_icmp: None,
                        snmp: None,
                        last_check: None,
                        ends: vec![None; spec.ends.len()],
                        streak: Streak::default(),
                        down_run_since: None,
                        partial_cycle_at: None,
                        own_down_at: None,
                        spec: Box::new(spec),
                        seen_at: None,
                        clear_at: None,
                        held: None,
                        parked: None,
                        check_due: None,
                        ends_awaited: Vec::new(),
                        ends_due: None,
                        echoes_back: None,
                        echoes_failed: false,
                    })
                }
            };
            next.insert(t.id.clone(), h);
        }
        let dropped = std::mem::replace(&mut self.targets, next);
        self.children = inv.children();
        self.ends_on.clear();
        for t in &inv.targets {
            for (i, e) in t.ends.iter().enumerate() {
                self.ends_on
                    .entry(e.device.clone())
                    .or_default()
                    .push((t.id.clone(), i));
            }
        }
        self.waiting.retain(|id| self.targets.contains_key(id));
        let mut out: Vec<Transition> = dropped
            .into_iter()
            .filter(|(_, h)| h.state != State::Unmonitored)
            .map(|(id, h)| Transition {
                reason: Some(if inv.target(&id).is_some() {
                    Reason::IdentityChanged
                } else {
                    Reason::RemovedFromConfig
                }),
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

    /// Feed one observation; `now` is the wall clock (for deadlines). The
    /// one entry through which probes change states.
    pub fn observe(&mut self, obs: &Observation, now: Time) -> Effects {
        let mut fx = Effects::default();
        let id = obs.target.as_str();
        let at = obs.outcome.at();
        let Some(h) = self.targets.get_mut(id) else {
            return fx; // removed by a reload while its probe ran
        };
        if obs.on_demand && !matches!(obs.outcome, Outcome::LinkEnd { .. }) {
            h.check_due = None;
        }
        match &obs.outcome {
            Outcome::Icmp(cycle) => {
                // One copy, shared by the live view and a parked cycle.
                let cycle = std::sync::Arc::new(cycle.clone());
                h.last_icmp = Some(cycle.clone());
                if h.spec.icmp {
                    self.observe_icmp(id, cycle, now, &mut fx);
                }
            }
            Outcome::Snmp(poll) => {
                h.snmp = Some(SnmpStatus {
                    at,
                    error: poll.result.as_ref().err().cloned(),
                });
                let grades = !h.spec.icmp;
                let on_device = self.ends_on.get(id).cloned().unwrap_or_default();
                for (link, end) in on_device {
                    let Some(l) = self.targets.get(&link) else {
                        continue;
                    };
                    let Some((device, interface, _)) = l.spec.ends.get(end) else {
                        continue;
                    };
                    let status = match &poll.result {
                        Ok(snap) => link::end_status(
                            &crate::inventory::LinkEnd {
                                device: device.clone(),
                                interface: interface.clone(),
                            },
                            snap,
                        ),
                        Err(e) => EndStatus::Unknown {
                            end: EndName {
                                device: device.clone(),
                                interface: interface.clone(),
                                if_index: None,
                            },
                            why: EndUnknown::PollFailed(e.clone()),
                        },
                    };
                    self.observe_end(&link, end, status, false, at, now, &mut fx);
                }
                if grades {
                    let seen = seen_of(obs.outcome.verdict(&Limits::default()), false, at);
                    self.apply(id, seen, now, &mut fx);
                }
            }
            Outcome::SnmpCheck(check) => {
                h.snmp = Some(SnmpStatus {
                    at,
                    error: check.result.as_ref().err().cloned(),
                });
                if !h.spec.icmp {
                    let seen = seen_of(obs.outcome.verdict(&Limits::default()), false, at);
                    self.apply(id, seen, now, &mut fx);
                }
            }
            Outcome::Check(c) => {
                h.last_check = Some(c.clone());
                if h.spec.check {
                    let seen = seen_of(obs.outcome.verdict(&h.spec.limits), false, at);
                    self.apply(id, seen, now, &mut fx);
                }
            }
            Outcome::LinkEnd { end, status, .. } => {
                self.observe_end(id, *end, status.clone(), obs.on_demand, at, now, &mut fx);
            }
            Outcome::NotRun { probe, reason, .. } => {
                if *probe == ProbeKind::Icmp {
                    // The API shows the cycle that could not run, and why.
                    h.last_icmp = Some(std::sync::Arc::new(IcmpOutcome::not_run(
                        at,
                        reason.clone(),
                    )));
                }
                let grades = match probe {
                    ProbeKind::Icmp => h.spec.icmp,
                    ProbeKind::Snmp => !h.spec.icmp && h.spec.snmp,
                    ProbeKind::Tcp | ProbeKind::Http | ProbeKind::Tls | ProbeKind::Dns => {
                        h.spec.check
                    }
                };
                if grades {
                    let seen = seen_of(obs.outcome.verdict(&h.spec.limits), false, at);
                    self.apply(id, seen, now, &mut fx);
                }
            }
        }
        fx
    }

    /// The earliest instant at which [`HealthBook::expire`] has work.
    pub fn next_deadline(&self) -> Option<Time> {
        self.waiting
            .iter()
            .filter_map(|id| self.targets.get(id))
            .flat_map(|h| {
                [
                    h.held.as_ref().map(|x| x.deadline),
                    h.parked.as_ref().map(|x| x.deadline),
                ]
            })
            .flatten()
            .min()
    }

    /// Settle what waited past its deadline: a parked link cycle is taken
    /// with the ends as they are; a held failure is decided with what the
    /// parents say now.
    pub fn expire(&mut self, now: Time) -> Effects {
        let mut fx = Effects::default();
        let mut due: Vec<String> = self
            .waiting
            .iter()
            .filter(|id| {
                self.targets.get(*id).is_some_and(|h| {
                    h.held.as_ref().is_some_and(|x| x.deadline <= now)
                        || h.parked.as_ref().is_some_and(|x| x.deadline <= now)
                })
            })
            .cloned()
            .collect();
        due.sort();
        for id in due {
            let parked = self
                .targets
                .get_mut(&id)
                .and_then(|h| h.parked.take_if(|p| p.deadline <= now));
            if let Some(p) = parked {
                self.unpark(&id, *p, now, &mut fx);
            }
            if self
                .targets
                .get(&id)
                .and_then(|h| h.held.as_ref())
                .is_some_and(|x| x.deadline <= now)
            {
                self.decide_held(&id, now, &mut fx);
            }
            self.refresh_waiting(&id);
        }
        fx
    }

    fn refresh_waiting(&mut self, id: &str) {
        let waits = self
            .targets
            .get(id)
            .is_some_and(|h| h.held.is_some() || h.parked.is_some());
        if waits {
            self.waiting.insert(id.to_string());
        } else {
            self.waiting.remove(id);
        }
    }

    fn observe_icmp(
        &mut self,
        id: &str,
        cycle: std::sync::Arc<IcmpOutcome>,
        now: Time,
        fx: &mut Effects,
    ) {
        let Some(h) = self.targets.get_mut(id) else {
            return;
        };
        // A link with an end read as down: read it again, at every cycle
        // while it stays down; if echoes came back, this cycle waits for
        // that reading (a restored link is not held down by an old one).
        let down_ends: Vec<usize> = h
            .ends
            .iter()
            .enumerate()
            .filter(|(_, e)| e.as_ref().is_some_and(EndStatus::is_down))
            .map(|(i, _)| i)
            .collect();
        if let Some(earlier) = h.parked.take() {
            // A cycle still waiting: taken as the ends are now, in order.
            self.unpark(id, *earlier, now, fx);
        }
        let Some(h) = self.targets.get_mut(id) else {
            return;
        };
        let silent = !cycle.success() && !cycle.is_probe_error();
        if silent && down_ends.is_empty() && h.down_run_since.is_none() && !h.spec.ends.is_empty() {
            // Echoes across a link just stopped: read its ends now, for
            // the evidence (an interface down names the fault better than
            // silence does) rather than at their devices' next polls.
            let all: Vec<usize> = (0..h.spec.ends.len()).collect();
            request_end_reads(id, h, &all, now, fx);
        }
        h.echoes_back = match (cycle.success(), h.echoes_back) {
            (false, _) => None,
            (true, _) if down_ends.is_empty() => None,
            (true, Some((since, n))) => Some((since, n + 1)),
            (true, None) if h.echoes_failed => Some((cycle.at, 1)),
            (true, None) => None,
        };
        h.echoes_failed = !cycle.success();
        if !down_ends.is_empty() {
            let asked = request_end_reads(id, h, &down_ends, now, fx);
            if asked && cycle.success() {
                let deadline = h.ends_due.unwrap_or(now);
                h.parked = Some(Box::new(Parked { cycle, deadline }));
                self.waiting.insert(id.to_string());
                return;
            }
        }
        let seen = icmp_seen(h, &cycle);
        seed_repair(h, &seen);
        self.apply(id, seen, now, fx);
    }

    fn unpark(&mut self, id: &str, p: Parked, now: Time, fx: &mut Effects) {
        let Some(h) = self.targets.get_mut(id) else {
            return;
        };
        let seen = icmp_seen(h, &p.cycle);
        seed_repair(h, &seen);
        self.apply(id, seen, now, fx);
    }

    /// What one end of a link says. A pinged link weighs it with its next
    /// echo cycle (or the one waiting for it); a link judged by its ends
    /// alone takes it as an observation: an end down makes it down, all
    /// readable ends up make it up, and with no end readable it is
    /// unmonitored.
    #[allow(clippy::too_many_arguments)]
    fn observe_end(
        &mut self,
        id: &str,
        end: usize,
        status: EndStatus,
        fresh_read: bool,
        at: Time,
        now: Time,
        fx: &mut Effects,
    ) {
        let Some(h) = self.targets.get_mut(id) else {
            return;
        };
        let Some(slot) = h.ends.get_mut(end) else {
            return;
        };
        *slot = Some(status);
        if fresh_read {
            h.ends_awaited.retain(|e| *e != end);
            if h.ends_awaited.is_empty() {
                h.ends_due = None;
            }
        }
        if h.spec.icmp {
            let down = ends_down(&h.ends);
            // Down on its own with an end down: that end is the evidence.
            if h.state == State::Down && h.root_cause.is_none() && !down.is_empty() {
                h.reason = Some(Reason::EndsDown(down.clone()));
            }
            let settled = h.ends_awaited.is_empty() || down.is_empty();
            if settled {
                if let Some(p) = h.parked.take() {
                    self.unpark(id, *p, now, fx);
                    self.refresh_waiting(id);
                }
            }
            return;
        }
        let down = ends_down(&h.ends);
        let grade = if !down.is_empty() {
            Ok((Grade::Down, Reason::EndsDown(down)))
        } else if h.ends.iter().any(|e| matches!(e, Some(EndStatus::Up))) {
            Ok((Grade::Up, Reason::EndsUp))
        } else {
            let unknown: Vec<EndStatus> = h
                .ends
                .iter()
                .flatten()
                .filter(|e| !matches!(e, EndStatus::Up))
                .cloned()
                .collect();
            Err(Reason::EndsUnknown(unknown))
        };
        let seen = Seen {
            grade,
            partial: false,
            at,
        };
        self.apply(id, seen, now, fx);
    }

    fn apply(&mut self, id: &str, seen: Seen, now: Time, fx: &mut Effects) {
        let Some(h) = self.targets.get_mut(id) else {
            return;
        };
        let at = seen.at;
        let (obs, reason) = match seen.grade {
            Err(reason) => {
                h.streak = Streak::default();
                h.down_run_since = None;
                h.held = None;
                if h.state == State::Unmonitored {
                    h.reason = Some(reason);
                } else {
                    set(h, id, State::Unmonitored, Some(reason), None, at, fx);
                    self.reattribute_descendants(id, at, fx);
                }
                self.refresh_waiting(id);
                self.settle_children(id, now, fx);
                return;
            }
            Ok(x) => x,
        };
        // What this observation says to the targets behind this one.
        h.seen_at = Some(h.seen_at.map_or(at, |s| s.max(at)));
        let clear = obs != Grade::Down && !seen.partial;
        if clear {
            h.clear_at = Some(h.clear_at.map_or(at, |c| c.max(at)));
        }
        // A failure that begins mid-cycle leaves a cycle with some replies
        // lost just before the silent ones: the outage began in that cycle.
        if obs == Grade::Down {
            if h.down_run_since.is_none() {
                h.down_run_since = Some(h.partial_cycle_at.unwrap_or(at));
            }
        } else {
            h.down_run_since = None;
        }
        h.partial_cycle_at = seen.partial.then_some(at);
        if !clear {
            self.ask_parents(id, now, fx);
        }
        let Some(h) = self.targets.get_mut(id) else {
            return;
        };
        // A change confirmed by hysteresis happened when its streak began:
        // the first failed (or good) cycle, within one interval of the truth.
        let (target, since) = match Grade::of_state(h.state) {
            None => (Some(obs), at),
            Some(cur) if obs == cur => {
                h.streak = Streak::default();
                (None, at)
            }
            Some(cur) if obs > cur => {
                h.streak.better = Side::default();
                let (since, goal) =
                    h.streak
                        .worse
                        .push(obs, seen.partial, at, Grade::min, Grade::Down);
                // `fail_after` observations, spanning as long as that many
                // cycles would: checks on demand add evidence, they do not
                // make a short blip an outage.
                let confirmed = h.streak.worse.n >= h.spec.fail_after
                    && lasted(since, at, &h.spec, h.spec.fail_after);
                (confirmed.then_some(goal), since)
            }
            Some(_) => {
                h.streak.worse = Side::default();
                let (since, goal) =
                    h.streak
                        .better
                        .push(obs, seen.partial, at, Grade::max, Grade::Up);
                let confirmed = h.streak.better.n >= h.spec.recover_after
                    && lasted(since, at, &h.spec, h.spec.recover_after);
                (confirmed.then_some(goal), since)
            }
        };
        if h.streak.worse.n == 0 && h.held.take().is_some() {
            self.refresh_waiting(id);
        }
        let Some(h) = self.targets.get_mut(id) else {
            return;
        };
        let when = match target {
            Some(Grade::Down) => since.min(h.down_run_since.unwrap_or(since)).max(h.since),
            Some(_) => since.max(h.since),
            None => at,
        };
        match target {
            Some(Grade::Down) if !h.state.failing() => {
                self.confirm_failure(id, when, reason, now, fx);
            }
            Some(Grade::Down) => self.reattribute(id, when, reason, fx),
            Some(g) => {
                let state = if g == Grade::Up {
                    State::Up
                } else {
                    State::Degraded
                };
                h.held = None;
                h.streak = Streak::default();
                if h.state != state || h.root_cause.is_some() {
                    set(h, id, state, Some(reason), None, when, fx);
                    self.reattribute_descendants(id, when, fx);
                } else {
                    h.reason = Some(reason);
                }
            }
            None if h.state.failing() && obs == Grade::Down => {
                // Parents may have changed since the last observation.
                self.reattribute(id, at, reason, fx);
            }
            None => {
                // Same state: the reason names the evidence of now.
                if Grade::of_state(h.state) == Some(obs) {
                    h.reason = Some(reason);
                } else if h.state.failing() && h.streak.better.n > 0 {
                    h.reason = Some(Reason::Recovering {
                        good: h.streak.better.n,
                        needed: h.spec.recover_after,
                    });
                }
            }
        }
        self.refresh_waiting(id);
        // This target's observation may settle the children waiting on it.
        self.settle_children(id, now, fx);
    }

    /// Ask for checks of the parents of `id` whose answer could explain
    /// its failing observation: not failing already, not asked already.
    fn ask_parents(&mut self, id: &str, now: Time, fx: &mut Effects) {
        let Some(h) = self.targets.get(id) else {
            return;
        };
        let since = h.down_run_since.or(h.partial_cycle_at).unwrap_or(now);
        let held = h.held.is_some();
        let parents = h.spec.parents.clone();
        for p in parents {
            let Some(ph) = self.targets.get_mut(&p) else {
                continue;
            };
            if ph.state.failing() || !ph.spec.checkable() {
                continue;
            }
            if ph.check_due.is_some_and(|d| d > now) {
                continue; // an answer is on its way
            }
            // Once per failure, unless the child waits on the answer.
            if !held && ph.seen_at.is_some_and(|s| s >= since) {
                continue;
            }
            request_check(&p, ph, now, fx);
        }
    }

    /// What the parents of `id` say about its failure that began at `at`.
    fn parents_say(&self, id: &str, at: Time) -> ParentsSay {
        let Some(h) = self.targets.get(id) else {
            return ParentsSay::Own;
        };
        let mut pending = Vec::new();
        for p in &h.spec.parents {
            let Some(ph) = self.targets.get(p) else {
                continue;
            };
            match ph.state {
                State::Down => return ParentsSay::Explain(p.clone()),
                State::Unreachable => {
                    return ParentsSay::Explain(ph.root_cause.clone().unwrap_or(p.clone()))
                }
                _ => {}
            }
            let cannot_say =
                !ph.spec.checkable() || (ph.state == State::Unmonitored && ph.seen_at.is_some());
            if cannot_say || ph.clear_at.is_some_and(|c| c >= at) {
                continue;
            }
            pending.push(p.clone());
        }
        if pending.is_empty() {
            ParentsSay::Own
        } else {
            ParentsSay::Pending(pending)
        }
    }

    /// A failure of a target not failing yet is confirmed: `unreachable`
    /// behind a failing parent, held while a parent is being judged, else
    /// `down`.
    fn confirm_failure(&mut self, id: &str, at: Time, reason: Reason, now: Time, fx: &mut Effects) {
        match self.parents_say(id, at) {
            ParentsSay::Explain(root) => {
                self.fail(id, State::Unreachable, Some(root), at, reason, now, fx)
            }
            ParentsSay::Own => self.fail(id, State::Down, None, at, reason, now, fx),
            ParentsSay::Pending(parents) => {
                let Some(h) = self.targets.get(id) else {
                    return;
                };
                let interval = h.spec.interval;
                // Long enough for a parent to confirm a failure that began
                // with this one: its `fail_after` cycles and one more.
                let deadline = h.held.as_ref().map(|x| x.deadline).unwrap_or_else(|| {
                    let budget = parents
                        .iter()
                        .filter_map(|p| self.targets.get(p))
                        .map(|p| p.spec.interval * (p.spec.fail_after + 1) + p.spec.check_budget)
                        .max()
                        .unwrap_or(interval);
                    at + chrono::Duration::from_std(budget).unwrap_or_default()
                });
                if deadline <= now && !parents.iter().any(|p| self.is_held(p)) {
                    self.fail(id, State::Down, None, at, reason, now, fx);
                    return;
                }
                if let Some(h) = self.targets.get_mut(id) {
                    h.held = Some(Box::new(Hold {
                        at,
                        reason,
                        deadline,
                    }));
                }
                self.waiting.insert(id.to_string());
                self.ask_parents(id, now, fx);
            }
        }
    }

    fn is_held(&self, id: &str) -> bool {
        self.targets.get(id).is_some_and(|h| h.held.is_some())
    }

    /// Decide a held failure with what the parents say now (past its
    /// deadline: a parent still being judged no longer holds it, unless
    /// that parent waits on its own parents).
    fn decide_held(&mut self, id: &str, now: Time, fx: &mut Effects) {
        let Some(hold) = self.targets.get(id).and_then(|h| h.held.clone()) else {
            return;
        };
        match self.parents_say(id, hold.at) {
            ParentsSay::Explain(root) => self.fail(
                id,
                State::Unreachable,
                Some(root),
                hold.at,
                hold.reason,
                now,
                fx,
            ),
            ParentsSay::Own => self.fail(id, State::Down, None, hold.at, hold.reason, now, fx),
            ParentsSay::Pending(parents) => {
                if hold.deadline > now {
                    return;
                }
                let parent_deadline = parents
                    .iter()
                    .filter_map(|p| self.targets.get(p)?.held.as_ref().map(|x| x.deadline))
                    .max();
                match parent_deadline {
                    Some(d) => {
                        if let Some(h) = self.targets.get_mut(id).and_then(|h| h.held.as_mut()) {
                            h.deadline = d.max(now) + chrono::Duration::milliseconds(1);
                        }
                    }
                    None => self.fail(id, State::Down, None, hold.at, hold.reason, now, fx),
                }
            }
        }
    }

    /// Held children of `id` whose parents may now say something.
    fn settle_children(&mut self, id: &str, now: Time, fx: &mut Effects) {
        let Some(children) = self.children.get(id).cloned() else {
            return;
        };
        for c in children {
            if self.is_held(&c) {
                self.decide_held(&c, now, fx);
                self.refresh_waiting(&c);
            }
        }
    }

    /// Move a target into a failing state at `at` (no earlier than its
    /// current state began), then re-attribute and settle what is behind it.
    #[allow(clippy::too_many_arguments)]
    fn fail(
        &mut self,
        id: &str,
        state: State,
        root: Option<String>,
        at: Time,
        cause: Reason,
        now: Time,
        fx: &mut Effects,
    ) {
        // Targets behind this one that failed since it was last seen clear
        // date its failure: theirs began while it already failed.
        let at = if state == State::Down {
            self.failing_behind(id, at).map_or(at, |b| b.min(at))
        } else {
            at
        };
        let Some(h) = self.targets.get_mut(id) else {
            return;
        };
        h.held = None;
        h.streak = Streak::default();
        let reason = match &root {
            Some(r) => Reason::Parent {
                root: r.clone(),
                cause: Box::new(cause),
                afterwards: false,
            },
            None => cause,
        };
        let at = at.max(h.since);
        if h.state != state || h.root_cause != root {
            set(h, id, state, Some(reason), root, at, fx);
            self.reattribute_descendants(id, at, fx);
        } else {
            h.reason = Some(reason);
        }
        self.refresh_waiting(id);
        self.settle_children(id, now, fx);
    }

    /// The earliest start of a failing run of a target behind `id` (not
    /// failing in its state yet) that began after `id` was last seen
    /// clear: evidence that `id` itself failed by then.
    fn failing_behind(&self, id: &str, at: Time) -> Option<Time> {
        let h = self.targets.get(id)?;
        let floor_of = |h: &TargetHealth| h.clear_at.into_iter().chain([h.since]).max();
        let mut best: Option<Time> = None;
        // (target, the latest instant a target between it and `id` was
        // seen clear: a failure before that is not evidence for `id`)
        let mut work: Vec<(&String, Time)> = Vec::new();
        let floor = floor_of(h)?;
        work.extend(self.children.get(id)?.iter().map(|c| (c, floor)));
        let mut seen = HashSet::new();
        while let Some((c, floor)) = work.pop() {
            if !seen.insert(c) {
                continue;
            }
            let Some(ch) = self.targets.get(c) else {
                continue;
            };
            let Some(d) = ch.down_run_since else {
                continue;
            };
            if ch.state.failing() || d <= floor {
                continue;
            }
            if d < at {
                best = Some(best.map_or(d, |b| b.min(d)));
            }
            let floor = floor_of(ch).map_or(floor, |f| f.max(floor));
            work.extend(
                self.children
                    .get(c)
                    .into_iter()
                    .flatten()
                    .map(|g| (g, floor)),
            );
        }
        best
    }

    /// A target already failing fails on: attributed anew from what its
    /// parents are now (a parent recovered: `down` on its own; a parent
    /// failed: `unreachable`).
    fn reattribute(&mut self, id: &str, at: Time, reason: Reason, fx: &mut Effects) {
        let (state, root) = self.attribution(id);
        let Some(h) = self.targets.get_mut(id) else {
            return;
        };
        let reason = match &root {
            Some(r) => Reason::Parent {
                root: r.clone(),
                cause: Box::new(reason),
                afterwards: false,
            },
            None => reason,
        };
        if h.state != state || h.root_cause != root {
            set(h, id, state, Some(reason), root, at, fx);
            self.reattribute_descendants(id, at, fx);
        } else {
            h.reason = Some(reason);
        }
    }

    /// `down` with no failing parent, else `unreachable` with the root cause.
    fn attribution(&self, id: &str) -> (State, Option<String>) {
        let Some(h) = self.targets.get(id) else {
            return (State::Down, None);
        };
        for p in &h.spec.parents {
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
    fn reattribute_descendants(&mut self, id: &str, at: Time, fx: &mut Effects) {
        let mut work: Vec<String> = self.children.get(id).cloned().unwrap_or_default();
        let mut seen = HashSet::new();
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
                let cause = match &ch.reason {
                    Some(Reason::Parent { cause, .. }) => (**cause).clone(),
                    Some(r) => r.clone(),
                    None => Reason::Icmp(crate::model::FailureReason::Timeout),
                };
                let reason = root.as_ref().map(|r| Reason::Parent {
                    root: r.clone(),
                    cause: Box::new(cause.clone()),
                    afterwards: false,
                });
                // Behind a chain, what counts is when the root cause went.
                let root_since = root
                    .as_ref()
                    .and_then(|r| self.targets.get(r))
                    .map(|r| r.since);
                let Some(ch) = self.targets.get_mut(&child) else {
                    continue;
                };
                let when = root_since.map_or(at, |r| r.min(at)).max(ch.since);
                set(ch, &child, state, reason, root.clone(), when, fx);
                // It went down on its own after the root cause already had:
                // that was the root cause too. Say so from then on (the
                // ledger is append-only: a later row with the earlier
                // instant, read in time order, corrects it).
                if let (Some(d), Some(rs)) = (ch.own_down_at, root_since) {
                    if rs.min(at) <= d {
                        ch.own_down_at = None;
                        ch.since = ch.since.min(d);
                        fx.transitions.push(Transition {
                            target: child.clone(),
                            from: State::Down,
                            to: state,
                            at: d,
                            reason: root.as_ref().map(|r| Reason::Parent {
                                root: r.clone(),
                                cause: Box::new(cause),
                                afterwards: true,
                            }),
                            root_cause: root,
                        });
                    }
                }
                work.extend(self.children.get(&child).cloned().unwrap_or_default());
            }
        }
    }
}

/// Whether a streak begun at `since`, seen again at `at`, spans `n`
/// cycles of the target (`n - 1` intervals, less half an interval for
/// timer jitter).
fn lasted(since: Time, at: Time, spec: &Spec, n: u32) -> bool {
    let need = spec.interval * n.saturating_sub(1);
    let need = need.saturating_sub(spec.interval / 2);
    (at - since).to_std().unwrap_or_default() >= need
}

/// A link whose echoes came back while an end's reading lagged: once the
/// end reads up (soon enough to be a lagging reading, not a real fault),
/// the cycles since the echoes came back count as good, and the repair is
/// dated at the first of them.
fn seed_repair(h: &mut TargetHealth, seen: &Seen) {
    let Some((since, n)) = h.echoes_back else {
        return;
    };
    let good = matches!(seen.grade, Ok((Grade::Up | Grade::Degraded, _)));
    if !good {
        return;
    }
    h.echoes_back = None;
    if h.state.failing() && h.streak.better.n == 0 && n > 1 && seen.at - since <= END_STALENESS {
        h.streak.worse = Side::default();
        h.streak.better = Side {
            n: n - 1,
            extreme: Some(Grade::Up),
            since: Some(since),
            lead_partial: false,
            rest: None,
        };
    }
}

/// Ask for a check of `p` now, with its answer due by its budget.
fn request_check(p: &str, ph: &mut TargetHealth, now: Time, fx: &mut Effects) {
    if !ph.spec.icmp && !ph.spec.snmp {
        // A link judged by its ends alone: read them.
        let all: Vec<usize> = (0..ph.spec.ends.len()).collect();
        request_end_reads(p, ph, &all, now, fx);
        return;
    }
    ph.check_due = Some(now + chrono::Duration::from_std(ph.spec.check_budget).unwrap_or_default());
    fx.checks.push(p.to_string());
}

/// Ask for `ends` of link `id` to be read again, unless a reading is on
/// its way; true when one is (now or already).
fn request_end_reads(
    id: &str,
    h: &mut TargetHealth,
    ends: &[usize],
    now: Time,
    fx: &mut Effects,
) -> bool {
    if h.ends_due.is_some_and(|d| d > now) {
        return true;
    }
    let mut budget = Duration::ZERO;
    h.ends_awaited.clear();
    for &e in ends {
        let Some((device, interface, b)) = h.spec.ends.get(e) else {
            continue;
        };
        budget = budget.max(*b);
        h.ends_awaited.push(e);
        fx.end_reads.push((
            device.clone(),
            EndQuery {
                link: id.to_string(),
                end: e,
                interface: interface.clone(),
            },
        ));
    }
    if h.ends_awaited.is_empty() {
        h.ends_due = None;
        return false;
    }
    h.ends_due = Some(now + chrono::Duration::from_std(budget).unwrap_or_default());
    true
}

/// Grade an echo cycle of `h`: an end read as down holds a link down
/// whatever the echoes say; SNMP failing degrades a device that answers
/// pings.
fn icmp_seen(h: &TargetHealth, cycle: &IcmpOutcome) -> Seen {
    let down = ends_down(&h.ends);
    let grade = match cycle.verdict(&h.spec.limits) {
        Verdict::NotRun(r) => Err(r),
        // An interface down names the fault better than silence does.
        Verdict::Down(_) if !down.is_empty() => Ok((Grade::Down, Reason::EndsDown(down))),
        Verdict::Down(r) => Ok((Grade::Down, r)),
        v => {
            let (g, r) = match v {
                Verdict::Up(r) => (Grade::Up, r),
                Verdict::Degraded(r) => (Grade::Degraded, r),
                Verdict::Down(r) | Verdict::NotRun(r) => (Grade::Down, r),
            };
            // An SNMP poll that did not run (no socket here) says nothing
            // of the device: the echoes' grade stands.
            let snmp_error = h
                .snmp
                .as_ref()
                .and_then(|s| s.error.clone())
                .filter(|e| !e.is_local());
            if !down.is_empty() {
                Ok((Grade::Down, Reason::EndsDown(down)))
            } else if let (Grade::Up, Some(e)) = (g, snmp_error) {
                Ok((Grade::Degraded, Reason::Snmp(e)))
            } else {
                Ok((g, r))
            }
        }
    };
    Seen {
        grade,
        partial: cycle.partial(),
        at: cycle.at,
    }
}

fn seen_of(verdict: Option<Verdict>, partial: bool, at: Time) -> Seen {
    let grade = match verdict {
        Some(Verdict::Up(r)) => Ok((Grade::Up, r)),
        Some(Verdict::Degraded(r)) => Ok((Grade::Degraded, r)),
        Some(Verdict::Down(r)) => Ok((Grade::Down, r)),
        Some(Verdict::NotRun(r)) => Err(r),
        None => Err(Reason::NotProbedYet),
    };
    Seen { grade, partial, at }
}

fn set(
    h: &mut TargetHealth,
    id: &str,
    to: State,
    reason: Option<Reason>,
    root_cause: Option<String>,
    at: Time,
    fx: &mut Effects,
) {
    // Never dated before the state it ends began: the ledger stays in order.
    let at = at.max(h.since);
    let from = h.state;
    h.state = to;
    h.since = at;
    match to {
        State::Down => h.own_down_at = Some(at),
        State::Unreachable => {}
        _ => h.own_down_at = None,
    }
    h.reason = reason.clone();
    h.root_cause = root_cause.clone();
    fx.transitions.push(Transition {
        target: id.to_string(),
        from,
        to,
        at,
        reason,
        root_cause,
    });
}

/// The ends read as down.
fn ends_down(ends: &[Option<EndStatus>]) -> Vec<EndStatus> {
    ends.iter()
        .flatten()
        .filter(|e| e.is_down())
        .cloned()
        .collect()
}

/// Address and kind are what a target *is*; other settings may change on
/// reload without losing its state.
fn same_identity(a: &Target, b: &Target) -> bool {
    a.address == b.address && a.kind == b.kind
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Address, AgentSettings, IcmpSettings, TargetKind, Thresholds};
    use crate::model::FailureReason;
    use crate::probe::snmp::SnmpCheck;
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
                interval: Duration::from_secs(1),
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
            check: None,
            ends: vec![],
            affected_members: vec![],
            agents: vec![],
            designated_agent: None,
        }
    }

    fn inventory(targets: Vec<Target>) -> Inventory {
        Inventory {
            index: Default::default(),
            source: "t.yaml".into(),
            agent: AgentSettings {
                id: "t".into(),
                listen_address: "127.0.0.1:0".parse().unwrap(),
                data_dir: ".".into(),
                max_concurrent_probes: 10,
                max_concurrent_snmp_polls: 10,
                max_concurrent_checks: 10,
                resolve_interval: Duration::from_secs(60),
                sla_interval: Duration::from_secs(60),
                api_token: None,
                rtt_buckets: vec![],
                ledger: Default::default(),
            },
            members: vec![],
            sites: vec![],
            targets,
            services: vec![],
            maintenance: vec![],
            reports: Default::default(),
            status_page: Default::default(),
        }
    }

    fn t0() -> Time {
        DateTime::from_timestamp(1_790_000_000, 0).unwrap()
    }

    /// `n` tenths of a second after `t0`.
    fn s(n: i64) -> Time {
        t0() + chrono::Duration::milliseconds(100 * n)
    }

    fn cycle(received: u32, rtt_ms: u64) -> IcmpOutcome {
        IcmpOutcome {
            at: t0(),
            address: None,
            sent: 4,
            received,
            rtts: vec![Duration::from_millis(rtt_ms); received as usize],
            rtt_clock: None,
            failure: (received == 0).then_some(FailureReason::Timeout),
        }
    }

    fn up() -> IcmpOutcome {
        cycle(4, 1)
    }
    fn lost() -> IcmpOutcome {
        cycle(0, 1)
    }
    fn half() -> IcmpOutcome {
        cycle(2, 1)
    }

    /// Feed an echo cycle begun at `at` (and seen then).
    fn feed(b: &mut HealthBook, id: &str, mut c: IcmpOutcome, at: Time) -> Effects {
        c.at = at;
        b.observe(&icmp_obs(id, c, false), at)
    }

    fn icmp_obs(id: &str, c: IcmpOutcome, on_demand: bool) -> Observation {
        Observation {
            target: id.into(),
            on_demand,
            outcome: Outcome::Icmp(c),
        }
    }

    /// The answer to a check on demand, begun at `at`.
    fn answer(b: &mut HealthBook, id: &str, mut c: IcmpOutcome, at: Time) -> Effects {
        c.at = at;
        b.observe(&icmp_obs(id, c, true), at)
    }

    fn book(targets: Vec<Target>) -> HealthBook {
        let mut b = HealthBook::new();
        b.apply_inventory(&inventory(targets), None, t0());
        b
    }

    fn state(b: &HealthBook, id: &str) -> State {
        b.get(id).unwrap().state
    }

    fn reason(b: &HealthBook, id: &str) -> String {
        b.get(id)
            .unwrap()
            .reason
            .as_ref()
            .map(|r| r.to_string())
            .unwrap_or_default()
    }

    /// core → sw → srv, all up at `at`.
    fn chain_up(at: Time) -> HealthBook {
        let mut b = book(vec![
            target("core", &[]),
            target("sw", &["core"]),
            target("srv", &["sw"]),
        ]);
        for id in ["core", "sw", "srv"] {
            feed(&mut b, id, up(), at);
        }
        b
    }

    #[test]
    fn starts_unmonitored_then_takes_first_observation() {
        let mut b = book(vec![target("a", &[])]);
        assert_eq!(state(&b, "a"), State::Unmonitored);
        assert_eq!(reason(&b, "a"), "not probed yet");
        let fx = feed(&mut b, "a", up(), s(1));
        assert_eq!(fx.transitions.len(), 1);
        assert_eq!(state(&b, "a"), State::Up);
    }

    #[test]
    fn one_lost_cycle_is_not_an_outage_fail_after_is() {
        let mut b = book(vec![target("a", &[])]);
        feed(&mut b, "a", up(), s(0));
        feed(&mut b, "a", lost(), s(10));
        feed(&mut b, "a", lost(), s(20));
        assert_eq!(state(&b, "a"), State::Up);
        feed(&mut b, "a", up(), s(30)); // streak broken
        feed(&mut b, "a", lost(), s(40));
        feed(&mut b, "a", lost(), s(50));
        assert_eq!(state(&b, "a"), State::Up);
        let fx = feed(&mut b, "a", lost(), s(60));
        assert_eq!(state(&b, "a"), State::Down);
        assert_eq!(fx.transitions[0].from, State::Up);
        assert_eq!(fx.transitions[0].at, s(40), "dated at the streak's start");
        assert_eq!(reason(&b, "a"), "no reply before the timeout");
        feed(&mut b, "a", up(), s(70));
        assert_eq!(state(&b, "a"), State::Down);
        assert_eq!(
            reason(&b, "a"),
            "good again for 1 of the 2 cycles needed to recover"
        );
        let fx = feed(&mut b, "a", up(), s(80));
        assert_eq!(state(&b, "a"), State::Up);
        assert_eq!(fx.transitions[0].at, s(70), "recovery too");
    }

    /// Seen in the lab: the server's cycles are phased before its switch's,
    /// so it lost its replies first. Its parent is checked at once, and its
    /// failure is the parent's from its first failing instant: it never
    /// has an outage of its own, whatever the phases.
    #[test]
    fn a_child_failing_first_is_unreachable_from_its_first_failing_instant() {
        let mut b = book(vec![target("sw", &[]), target("srv", &["sw"])]);
        feed(&mut b, "sw", up(), s(0));
        feed(&mut b, "srv", up(), s(0));
        // The switch dies at s(9). The server's cycle at s(10) sees it
        // first and asks for its parent to be checked.
        let fx = feed(&mut b, "srv", lost(), s(10));
        assert_eq!(fx.checks, vec!["sw".to_string()]);
        let fx = answer(&mut b, "sw", lost(), s(12));
        assert!(fx.checks.is_empty() && fx.transitions.is_empty());
        feed(&mut b, "srv", lost(), s(20));
        // Confirmed by hysteresis, but the parent is being judged: held.
        let mut all = feed(&mut b, "srv", lost(), s(30)).transitions;
        assert_eq!(state(&b, "srv"), State::Up, "held, not down");
        // The switch is checked again while its child waits; its own
        // cycles confirm it once they span its `fail_after` cycles.
        all.extend(answer(&mut b, "sw", lost(), s(31)).transitions);
        assert_eq!(state(&b, "sw"), State::Up, "two failing answers in 2 s");
        all.extend(feed(&mut b, "sw", lost(), s(33)).transitions);
        assert_eq!(state(&b, "sw"), State::Down);
        assert_eq!(state(&b, "srv"), State::Unreachable);
        assert_eq!(b.get("srv").unwrap().root_cause.as_deref(), Some("sw"));
        assert!(
            !all.iter().any(|t| t.to == State::Down && t.target == "srv"),
            "{all:?}"
        );
        let srv = all.iter().find(|t| t.target == "srv").unwrap();
        assert_eq!(srv.at, s(10), "from its first failing instant");
        // The switch's failure is dated by the first evidence of it: the
        // server's failing cycle after the switch was last seen clear.
        let sw = all.iter().find(|t| t.target == "sw").unwrap();
        assert_eq!(sw.at, s(10), "{all:?}");
        assert_eq!(
            reason(&b, "srv"),
            "parent sw is down; no reply before the timeout"
        );
    }

    #[test]
    fn a_parent_seen_clear_since_the_child_failed_leaves_the_child_down() {
        let mut b = book(vec![target("sw", &[]), target("srv", &["sw"])]);
        feed(&mut b, "sw", up(), s(0));
        feed(&mut b, "srv", up(), s(0));
        let fx = feed(&mut b, "srv", lost(), s(10));
        assert_eq!(fx.checks, vec!["sw".to_string()]);
        answer(&mut b, "sw", up(), s(12));
        feed(&mut b, "srv", lost(), s(20));
        let fx = feed(&mut b, "srv", lost(), s(30));
        assert_eq!(state(&b, "srv"), State::Down);
        assert_eq!(
            (fx.transitions[0].to, fx.transitions[0].at),
            (State::Down, s(10))
        );
        // A check is asked once per failure, not at every cycle.
        assert!(fx.checks.is_empty());
    }

    /// Checks on demand add evidence; they do not make a blip shorter
    /// than `fail_after` cycles an outage.
    #[test]
    fn a_blip_shorter_than_detection_is_no_outage_whatever_the_checks() {
        let mut b = book(vec![
            target("link", &[]),
            target("a", &["link"]),
            target("b", &["link"]),
        ]);
        for id in ["link", "a", "b"] {
            feed(&mut b, id, up(), s(0));
        }
        let mut all = Vec::new();
        all.extend(feed(&mut b, "a", lost(), s(10)).transitions);
        all.extend(answer(&mut b, "link", lost(), s(11)).transitions);
        all.extend(feed(&mut b, "b", lost(), s(15)).transitions);
        all.extend(answer(&mut b, "link", lost(), s(16)).transitions);
        all.extend(feed(&mut b, "link", lost(), s(18)).transitions);
        assert_eq!(b.get("link").unwrap().streak.worse.n, 3);
        for id in ["link", "a", "b"] {
            all.extend(feed(&mut b, id, up(), s(20)).transitions);
        }
        assert!(all.is_empty(), "{all:?}");
        assert_eq!(state(&b, "link"), State::Up);
    }

    #[test]
    fn a_hold_ends_by_its_deadline() {
        let mut b = book(vec![target("sw", &[]), target("srv", &["sw"])]);
        feed(&mut b, "sw", up(), s(0));
        feed(&mut b, "srv", up(), s(0));
        for n in [10, 20, 30] {
            feed(&mut b, "srv", lost(), s(n));
        }
        assert_eq!(
            state(&b, "srv"),
            State::Up,
            "held: the switch never answered"
        );
        let deadline = b.next_deadline().expect("a deadline");
        assert!(deadline > s(30));
        assert!(b
            .expire(deadline - chrono::Duration::milliseconds(1))
            .transitions
            .is_empty());
        let fx = b.expire(deadline);
        assert_eq!(state(&b, "srv"), State::Down);
        assert_eq!(fx.transitions[0].at, s(10));
        assert_eq!(b.next_deadline(), None);
    }

    #[test]
    fn a_child_recovering_while_held_has_no_outage() {
        let mut b = book(vec![target("sw", &[]), target("srv", &["sw"])]);
        feed(&mut b, "sw", up(), s(0));
        feed(&mut b, "srv", up(), s(0));
        for n in [10, 20, 30] {
            feed(&mut b, "srv", lost(), s(n));
        }
        let fx = feed(&mut b, "srv", up(), s(40));
        assert!(fx.transitions.is_empty());
        assert_eq!(state(&b, "srv"), State::Up);
        assert_eq!(b.next_deadline(), None);
    }

    /// A chain: core → sw → srv. The core is cut; the server, then the
    /// switch, see it before the core's own cycle does.
    #[test]
    fn behind_a_chain_the_root_cause_is_found_whatever_the_phases() {
        let mut b = chain_up(s(0));
        let mut all = Vec::new();
        let mut checks = Vec::new();
        for n in (10..=80).step_by(10) {
            let fx = feed(&mut b, "srv", lost(), s(n));
            checks.extend(fx.checks);
            all.extend(fx.transitions);
            // The switch is checked when asked; it then asks for the core.
            while let Some(c) = checks.pop() {
                let fx = answer(&mut b, &c, lost(), s(n + 2));
                checks.extend(fx.checks);
                all.extend(fx.transitions);
            }
        }
        assert_eq!(state(&b, "core"), State::Down, "{all:?}");
        assert_eq!(state(&b, "sw"), State::Unreachable);
        assert_eq!(state(&b, "srv"), State::Unreachable);
        assert_eq!(b.get("srv").unwrap().root_cause.as_deref(), Some("core"));
        assert!(
            !all.iter()
                .any(|t| t.to == State::Down && t.target != "core"),
            "{all:?}"
        );
        let core = all.iter().find(|t| t.target == "core").unwrap();
        assert_eq!(core.at, s(10), "the first evidence, behind it");
    }

    /// The link's first failing cycle lost only some replies (the cut came
    /// inside it): that streak is a failure, not loss, and the targets
    /// behind it are attributed to it from the start.
    #[test]
    fn a_cut_inside_a_cycle_is_down_from_that_cycle_not_degraded() {
        let mut b = book(vec![target("link", &[]), target("sw", &["link"])]);
        let mut th = b.targets.get_mut("link").unwrap().spec.clone();
        th.fail_after = 2;
        b.targets.get_mut("link").unwrap().spec = th;
        feed(&mut b, "link", up(), s(0));
        feed(&mut b, "sw", up(), s(0));
        feed(&mut b, "link", half(), s(10));
        assert_eq!(state(&b, "link"), State::Up);
        let fx = feed(&mut b, "link", lost(), s(20));
        assert_eq!(state(&b, "link"), State::Down, "{fx:?}");
        assert_eq!(fx.transitions[0].at, s(10));
        for n in [21, 31, 41] {
            feed(&mut b, "sw", lost(), s(n));
        }
        assert_eq!(state(&b, "sw"), State::Unreachable);
        // Steady loss, though, is degraded.
        let mut b = book(vec![target("a", &[])]);
        feed(&mut b, "a", up(), s(0));
        for n in [10, 20, 30] {
            feed(&mut b, "a", half(), s(n));
        }
        assert_eq!(state(&b, "a"), State::Degraded);
        assert_eq!(reason(&b, "a"), "loss 50 % above 20 %");
    }

    #[test]
    fn a_repair_inside_a_cycle_is_up_from_that_cycle_not_degraded() {
        let mut b = book(vec![target("link", &[])]);
        feed(&mut b, "link", up(), s(0));
        for n in [10, 20, 30] {
            feed(&mut b, "link", lost(), s(n));
        }
        assert_eq!(state(&b, "link"), State::Down);
        feed(&mut b, "link", half(), s(40));
        let fx = feed(&mut b, "link", up(), s(50));
        assert_eq!(state(&b, "link"), State::Up, "{fx:?}");
        assert_eq!(fx.transitions[0].at, s(40));
        // A path that stays lossy, though, recovers to degraded.
        let mut b = book(vec![target("a", &[])]);
        feed(&mut b, "a", up(), s(0));
        for n in [10, 20, 30] {
            feed(&mut b, "a", lost(), s(n));
        }
        feed(&mut b, "a", half(), s(40));
        feed(&mut b, "a", half(), s(50));
        assert_eq!(state(&b, "a"), State::Degraded);
    }

    #[test]
    fn a_partial_cycle_before_silence_dates_the_outage() {
        let mut b = book(vec![target("sw", &[])]);
        feed(&mut b, "sw", up(), s(0));
        feed(&mut b, "sw", half(), s(10));
        feed(&mut b, "sw", lost(), s(20));
        let fx = feed(&mut b, "sw", lost(), s(30));
        assert_eq!(
            (fx.transitions[0].to, fx.transitions[0].at),
            (State::Down, s(10))
        );
    }

    #[test]
    fn loss_and_latency_degrade() {
        let mut b = book(vec![target("a", &[])]);
        feed(&mut b, "a", cycle(4, 150), s(0));
        assert_eq!(state(&b, "a"), State::Degraded);
        assert_eq!(reason(&b, "a"), "mean RTT 150.0 ms above 100.0 ms");
    }

    #[test]
    fn flapping_between_degraded_and_down_is_degraded() {
        let mut b = book(vec![target("a", &[])]);
        feed(&mut b, "a", up(), s(0));
        feed(&mut b, "a", lost(), s(10));
        feed(&mut b, "a", half(), s(20));
        feed(&mut b, "a", lost(), s(30));
        assert_eq!(state(&b, "a"), State::Degraded);
    }

    #[test]
    fn probe_error_is_unmonitored_never_down() {
        let mut b = book(vec![target("a", &[])]);
        feed(&mut b, "a", up(), s(0));
        let err = IcmpOutcome::not_run(s(10), FailureReason::Permission);
        b.observe(&icmp_obs("a", err, false), s(10));
        assert_eq!(state(&b, "a"), State::Unmonitored);
        assert!(reason(&b, "a").contains("CAP_NET_RAW"));
    }

    #[test]
    fn a_target_down_on_its_own_is_reattributed_when_its_parent_fails() {
        let mut b = chain_up(s(0));
        // The server fails alone; its switch answers the check.
        feed(&mut b, "srv", lost(), s(10));
        answer(&mut b, "sw", up(), s(11));
        feed(&mut b, "srv", lost(), s(20));
        feed(&mut b, "srv", lost(), s(30));
        assert_eq!(state(&b, "srv"), State::Down);
        // Later the switch goes down: the server is re-attributed at once.
        answer(&mut b, "core", up(), s(41));
        for n in [40, 50, 60] {
            feed(&mut b, "sw", lost(), s(n));
        }
        assert_eq!(state(&b, "sw"), State::Down);
        assert_eq!(state(&b, "srv"), State::Unreachable);
        assert_eq!(b.get("srv").unwrap().root_cause.as_deref(), Some("sw"));
        // The core goes down: the root cause moves up the whole chain.
        for n in [70, 80, 90] {
            feed(&mut b, "core", lost(), s(n));
        }
        assert_eq!(state(&b, "sw"), State::Unreachable);
        assert_eq!(b.get("sw").unwrap().root_cause.as_deref(), Some("core"));
        assert_eq!(b.get("srv").unwrap().root_cause.as_deref(), Some("core"));
        // Core recovers; the switch's own next failing cycle makes it down again.
        feed(&mut b, "core", up(), s(100));
        feed(&mut b, "core", up(), s(110));
        assert_eq!(state(&b, "core"), State::Up);
        assert_eq!(state(&b, "sw"), State::Unreachable);
        feed(&mut b, "sw", lost(), s(120));
        assert_eq!(state(&b, "sw"), State::Down);
        assert_eq!(b.get("sw").unwrap().root_cause, None);
    }

    #[test]
    fn reload_keeps_unchanged_state_and_drops_removed() {
        let inv1 = inventory(vec![target("a", &[]), target("b", &[])]);
        let mut b = HealthBook::new();
        b.apply_inventory(&inv1, None, s(0));
        feed(&mut b, "a", up(), s(1));
        feed(&mut b, "b", up(), s(1));
        let mut moved = target("b", &[]);
        moved.address = Address::Ip([127, 0, 0, 2].into());
        let inv2 = inventory(vec![target("a", &[]), moved, target("c", &[])]);
        let out = b.apply_inventory(&inv2, Some(&inv1), s(2));
        assert_eq!(out[0].reason, Some(Reason::IdentityChanged));
        assert_eq!(state(&b, "a"), State::Up);
        assert_eq!(state(&b, "b"), State::Unmonitored);
        assert_eq!(state(&b, "c"), State::Unmonitored);
        let inv3 = inventory(vec![target("a", &[])]);
        b.apply_inventory(&inv3, Some(&inv2), s(3));
        assert!(b.get("b").is_none());
    }

    fn snmp_check(id: &str, err: Option<SnmpError>, at: Time) -> Observation {
        Observation {
            target: id.into(),
            on_demand: false,
            outcome: Outcome::SnmpCheck(SnmpCheck {
                at,
                result: err.map_or(Ok(()), Err),
                requests: 1,
            }),
        }
    }

    fn snmp_target(id: &str, icmp: bool) -> Target {
        let mut t = target(id, &[]);
        t.icmp.enabled = icmp;
        t.snmp = Some(Box::new(crate::inventory::SnmpSettings {
            credentials: crate::inventory::SnmpCredentials::V2c {
                community: crate::model::secret::Secret::new("x"),
            },
            port: 161,
            timeout: Duration::from_secs(1),
            retries: 1,
            max_repetitions: 10,
            interval: Duration::from_secs(1),
            modules: Default::default(),
            interfaces: Default::default(),
            custom: vec![],
        }));
        t
    }

    #[test]
    fn snmp_failure_degrades_a_pinged_device_and_auth_is_its_own_reason() {
        let mut b = book(vec![snmp_target("sw", true)]);
        feed(&mut b, "sw", up(), s(0));
        let auth = SnmpError::Auth("Not authenticated".into());
        let fx = b.observe(&snmp_check("sw", Some(auth), s(1)), s(1));
        assert!(fx.transitions.is_empty());
        for n in [10, 20] {
            feed(&mut b, "sw", up(), s(n));
        }
        assert_eq!(state(&b, "sw"), State::Up, "hysteresis: fail_after 3");
        feed(&mut b, "sw", up(), s(30));
        assert_eq!(state(&b, "sw"), State::Degraded);
        assert!(reason(&b, "sw").starts_with("snmp_auth"));
        // ICMP failing wins over any SNMP verdict.
        for n in [40, 50, 60] {
            feed(&mut b, "sw", lost(), s(n));
        }
        assert_eq!(state(&b, "sw"), State::Down);
    }

    #[test]
    fn snmp_only_device_silent_is_down_answering_is_up() {
        let mut b = book(vec![snmp_target("sw", false)]);
        let timeout = SnmpError::Timeout {
            attempts: 3,
            timeout_ms: 1000,
        };
        b.observe(&snmp_check("sw", None, s(0)), s(0));
        assert_eq!(state(&b, "sw"), State::Up);
        for n in [10, 20, 30] {
            b.observe(&snmp_check("sw", Some(timeout.clone()), s(n)), s(n));
        }
        assert_eq!(state(&b, "sw"), State::Down);
        assert!(reason(&b, "sw").starts_with("snmp_unreachable"));
        // A name that stops resolving: the SNMP probe did not run.
        let not_run = Observation {
            target: "sw".into(),
            on_demand: false,
            outcome: Outcome::NotRun {
                probe: ProbeKind::Snmp,
                at: s(40),
                reason: FailureReason::ResolveFailed,
            },
        };
        b.observe(&not_run, s(40));
        assert_eq!(state(&b, "sw"), State::Unmonitored);
    }

    fn end_obs(link: &str, end: usize, status: EndStatus, fresh: bool, at: Time) -> Observation {
        Observation {
            target: link.into(),
            on_demand: fresh,
            outcome: Outcome::LinkEnd { at, end, status },
        }
    }

    fn end_down(device: &str) -> EndStatus {
        EndStatus::Down {
            end: EndName {
                device: device.into(),
                interface: "ge-0/0/2".into(),
                if_index: Some(2),
            },
            oper_status: 2,
        }
    }

    fn link_target(icmp: bool) -> Vec<Target> {
        let mut l = target("link", &[]);
        l.kind = TargetKind::Link;
        l.icmp.enabled = icmp;
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
        vec![l, snmp_target("a", true), snmp_target("b", true)]
    }

    #[test]
    fn link_end_down_makes_the_link_down_even_when_pings_pass() {
        let mut b = book(link_target(true));
        feed(&mut b, "link", up(), s(0));
        b.observe(&end_obs("link", 1, end_down("b"), false, s(1)), s(1));
        let mut reads = Vec::new();
        for n in [10, 20, 30] {
            let fx = feed(&mut b, "link", up(), s(n));
            reads.extend(fx.end_reads);
            // The reading comes back: still down.
            if let Some((dev, q)) = reads.pop() {
                assert_eq!((dev.as_str(), q.end), ("b", 1));
                b.observe(&end_obs("link", 1, end_down("b"), true, s(n + 1)), s(n + 1));
            }
        }
        assert_eq!(state(&b, "link"), State::Down);
        assert!(
            reason(&b, "link").contains("ge-0/0/2 on b"),
            "{}",
            reason(&b, "link")
        );
    }

    /// The end's device is polled once a minute; the link's echoes come back
    /// after a repair. The end is read again at once, the cycle waits for
    /// it, and the recovery is dated at that cycle — not at the device's
    /// next poll.
    #[test]
    fn a_restored_link_is_not_held_down_by_an_old_end_reading() {
        let mut b = book(link_target(true));
        feed(&mut b, "link", up(), s(0));
        for n in [10, 20, 30] {
            feed(&mut b, "link", lost(), s(n));
        }
        b.observe(&end_obs("link", 1, end_down("b"), false, s(35)), s(35));
        assert_eq!(state(&b, "link"), State::Down);
        // Repaired; the next cycle gets its echoes back.
        let fx = feed(&mut b, "link", up(), s(40));
        assert_eq!(fx.end_reads.len(), 1, "{fx:?}");
        assert!(fx.transitions.is_empty(), "the cycle waits for the reading");
        assert!(b.next_deadline().is_some());
        b.observe(&end_obs("link", 1, EndStatus::Up, true, s(41)), s(41));
        assert_eq!(
            reason(&b, "link"),
            "good again for 1 of the 2 cycles needed to recover"
        );
        let fx = feed(&mut b, "link", up(), s(50));
        assert_eq!(state(&b, "link"), State::Up);
        assert_eq!(fx.transitions[0].at, s(40));
        // While an end stays down and echoes fail, it is read every cycle.
        let mut b = book(link_target(true));
        feed(&mut b, "link", up(), s(0));
        b.observe(&end_obs("link", 1, end_down("b"), false, s(1)), s(1));
        let fx = feed(&mut b, "link", lost(), s(10));
        assert_eq!(fx.end_reads.len(), 1);
        // No answer (device dead): a reading is asked again next cycle.
        let fx = feed(&mut b, "link", lost(), s(110));
        assert_eq!(fx.end_reads.len(), 1);
        // The reason names what holds it down now: the interface.
        for n in [210, 310] {
            feed(&mut b, "link", lost(), s(n));
        }
        assert_eq!(state(&b, "link"), State::Down);
        assert!(reason(&b, "link").starts_with("interface ge-0/0/2 on b"));
        // Echoes across a link stop: both its ends are read at once.
        let mut b = book(link_target(true));
        feed(&mut b, "link", up(), s(0));
        let fx = feed(&mut b, "link", lost(), s(10));
        let devices: Vec<&str> = fx.end_reads.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(devices, ["a", "b"]);
        let fx = feed(&mut b, "link", lost(), s(110));
        assert!(fx.end_reads.is_empty(), "once per failure");
    }

    /// An agent's interface table lags (net-snmp caches it for 1–3 s): the
    /// fresh reading right after the repair still says down. Once it reads
    /// up, the repair is dated at the first cycle that got echoes back.
    #[test]
    fn a_lagging_end_reading_does_not_delay_the_repair() {
        let mut b = book(link_target(true));
        feed(&mut b, "link", up(), s(0));
        for n in [10, 20, 30] {
            feed(&mut b, "link", lost(), s(n));
        }
        b.observe(&end_obs("link", 1, end_down("b"), false, s(35)), s(35));
        feed(&mut b, "link", up(), s(40)); // parked
        b.observe(&end_obs("link", 1, end_down("b"), true, s(41)), s(41));
        assert_eq!(state(&b, "link"), State::Down);
        feed(&mut b, "link", up(), s(50)); // parked again
                                           // The end reads up: both cycles with echoes back count.
        let fx = b.observe(&end_obs("link", 1, EndStatus::Up, true, s(51)), s(51));
        assert_eq!(state(&b, "link"), State::Up);
        assert_eq!(fx.transitions[0].at, s(40), "{fx:?}");
        // Echoes through another path while the end is truly down for
        // long: no earlier repair than the end's.
        let mut b = book(link_target(true));
        feed(&mut b, "link", up(), s(0));
        for n in [10, 20, 30] {
            feed(&mut b, "link", lost(), s(n));
        }
        b.observe(&end_obs("link", 1, end_down("b"), false, s(35)), s(35));
        for n in (40..=200).step_by(10) {
            feed(&mut b, "link", up(), s(n));
            b.observe(&end_obs("link", 1, end_down("b"), true, s(n + 1)), s(n + 1));
        }
        feed(&mut b, "link", up(), s(210));
        let mut all = b
            .observe(&end_obs("link", 1, EndStatus::Up, true, s(211)), s(211))
            .transitions;
        all.extend(feed(&mut b, "link", up(), s(220)).transitions);
        assert_eq!(state(&b, "link"), State::Up);
        assert_eq!(all[0].at, s(210), "{all:?}");
    }

    #[test]
    fn a_parked_cycle_is_taken_as_is_when_the_reading_never_comes() {
        let mut b = book(link_target(true));
        feed(&mut b, "link", up(), s(0));
        b.observe(&end_obs("link", 1, end_down("b"), false, s(1)), s(1));
        feed(&mut b, "link", up(), s(10));
        let deadline = b.next_deadline().unwrap();
        b.expire(deadline);
        assert_eq!(b.next_deadline(), None);
        assert_eq!(b.get("link").unwrap().streak.worse.n, 1);
    }

    #[test]
    fn link_judged_by_ends_alone_is_unmonitored_when_no_end_can_be_read() {
        let mut b = book(link_target(false));
        b.observe(&end_obs("link", 0, EndStatus::Up, false, s(0)), s(0));
        assert_eq!(state(&b, "link"), State::Up);
        let unknown = EndStatus::Unknown {
            end: EndName {
                device: "a".into(),
                interface: "x".into(),
                if_index: None,
            },
            why: EndUnknown::NotPolled,
        };
        b.observe(&end_obs("link", 0, unknown, false, s(10)), s(10));
        assert_eq!(state(&b, "link"), State::Unmonitored);
    }
}
