//! Outages: each stretch of time a target was `down` (it is the root cause;
//! targets `unreachable` behind it are not outages of their own), with the
//! services that were down meanwhile and the members those serve.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::NaiveDate;
use serde::Serialize;

use super::{rollup, service, timeline};
use crate::inventory::{Inventory, ServiceLevel};
use crate::ledger::store::{RunRow, TransitionRow};
use crate::ledger::{LedgerError, Store};
use crate::model::State;
use crate::time::calendar::oslo_rfc3339;
use crate::time::interval::{Interval, IntervalSet};
use crate::time::schedule::Schedule;

/// One outage, clipped to the window asked about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outage {
    pub target: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Why it went down (the transition's reason).
    pub reason: Option<String>,
    /// Its stable code ([`crate::model::Reason::code`]).
    pub reason_code: Option<String>,
    /// It began before the window.
    pub continues_before: bool,
    /// It lasted past the window (or lasts still).
    pub continues_after: bool,
}

/// The `down` stretches of one target in `window`, from its transitions.
/// A run that ends while down ends the outage there: after that the time
/// is unmonitored, not down.
pub fn down_spans(
    target: &str,
    window: Interval,
    runs: &[RunRow],
    transitions: &[TransitionRow],
    current_run: Option<i64>,
    now_ms: i64,
) -> Vec<Outage> {
    let mut out = Vec::new();
    for (run, Interval { start, end }) in timeline::run_spans(runs, current_run, now_ms) {
        type Why = (Option<String>, Option<String>);
        let mut open: Option<(i64, Why)> = None;
        let close = |from: i64, to: i64, (reason, reason_code): Why, out: &mut Vec<Outage>| {
            let clipped = Interval::new(from, to).intersect(&window);
            if !clipped.is_empty() {
                out.push(Outage {
                    target: target.to_string(),
                    start_ms: clipped.start,
                    end_ms: clipped.end,
                    reason,
                    reason_code,
                    continues_before: from < window.start,
                    continues_after: to > window.end
                        || (Some(run.id) == current_run && to >= now_ms),
                });
            }
        };
        for tr in transitions.iter().filter(|t| t.run_id == run.id) {
            let at = tr.at_ms.clamp(start, end);
            let down = tr.to_state == State::Down.as_str();
            match (&open, down) {
                (None, true) => open = Some((at, (tr.reason.clone(), tr.reason_code.clone()))),
                (Some((from, reason)), false) => {
                    close(*from, at, reason.clone(), &mut out);
                    open = None;
                }
                _ => {}
            }
        }
        if let Some((from, reason)) = open {
            close(from, end, reason, &mut out);
        }
    }
    out
}

/// Cut an outage where planned maintenance begins or ends: the pieces
/// inside a window are planned (`true`), the rest (an overrun) is not.
pub fn split_planned(o: Outage, planned: &IntervalSet) -> Vec<(Outage, bool)> {
    let span = IntervalSet::single(Interval::new(o.start_ms, o.end_ms));
    let inside = span.intersection(planned);
    if inside.is_empty() {
        return vec![(o, false)];
    }
    let outside = span.difference(planned);
    let mut pieces: Vec<(Interval, bool)> = inside
        .spans()
        .iter()
        .map(|i| (*i, true))
        .chain(outside.spans().iter().map(|i| (*i, false)))
        .collect();
    pieces.sort_by_key(|(i, _)| i.start);
    pieces
        .into_iter()
        .map(|(i, planned)| {
            (
                Outage {
                    target: o.target.clone(),
                    start_ms: i.start,
                    end_ms: i.end,
                    reason: o.reason.clone(),
                    reason_code: o.reason_code.clone(),
                    continues_before: o.continues_before && i.start == o.start_ms,
                    continues_after: o.continues_after && i.end == o.end_ms,
                },
                planned,
            )
        })
        .collect()
}

/// Whether `span` overlaps `set` (no allocation: a binary search).
pub fn overlaps(set: &IntervalSet, span: Interval) -> bool {
    let spans = set.spans();
    let i = spans.partition_point(|s| s.end <= span.start);
    spans.get(i).is_some_and(|s| s.start < span.end)
}

/// An outage (or the piece of one inside a computed window): what a day
/// keeps of its outages, and (flattened into [`OutageView`]) what the API
/// shows of it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Piece {
    /// The root cause: the target that was down.
    #[serde(rename = "root_cause")]
    pub target: String,
    /// Not shown (see `start` and `end`); set again from them when an
    /// answer is read back (see [`OutageView::read_back`]).
    #[serde(skip)]
    pub start_ms: i64,
    #[serde(skip)]
    pub end_ms: i64,
    /// Why it went down (the transition's reason).
    pub reason: Option<String>,
    /// Its stable code ([`crate::model::Reason::code`]); `None` for
    /// transitions written before the ledger kept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// Began before the window asked about.
    pub continues_before: bool,
    /// Lasted past the window, or is still going on.
    pub continues_after: bool,
    /// Inside a planned maintenance window.
    pub planned: bool,
    /// Services that were down during it, in config order.
    pub services: Vec<String>,
    /// Of `services`, those whose time during it was excluded from their
    /// figures rather than counted as downtime: they could not be observed
    /// behind the failed root cause (`unreachable: excluded`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_services: Vec<String>,
    /// Members served by those services, and by the target itself; sorted.
    pub members: Vec<String>,
}

impl Piece {
    /// Whether a member's list of a day must keep this piece: it concerns
    /// the member, or it runs on past the day's edge from a target whose
    /// outages can concern the member (`roots`, see [`scope`]): another
    /// day's piece of the same outage may.
    pub fn concerns(&self, member: &str, roots: &HashSet<&str>) -> bool {
        self.members.iter().any(|m| m == member)
            || ((self.continues_before || self.continues_after)
                && roots.contains(self.target.as_str()))
    }
}

/// A day's pieces as kept in the ledger: every name (target, service,
/// member) and reason listed once, the pieces as rows of indexes, about a
/// fifth of the plain JSON and quicker to read back.
#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct Kept {
    names: Vec<String>,
    /// (reason, its code)
    reasons: Vec<(Option<String>, Option<String>)>,
    /// (target, start_ms, end_ms, reason, flags: 1 continues before,
    /// 2 continues after, 4 planned; services, members, excluded services)
    #[allow(clippy::type_complexity)]
    pieces: Vec<(u32, i64, i64, u32, u8, Vec<u32>, Vec<u32>, Vec<u32>)>,
}

impl Kept {
    pub fn pack<'a>(pieces: impl IntoIterator<Item = &'a Piece>) -> Kept {
        let mut k = Kept::default();
        let mut names: HashMap<String, u32> = HashMap::new();
        let mut reasons: HashMap<(Option<String>, Option<String>), u32> = HashMap::new();
        let mut name = |k: &mut Kept, s: &str| -> u32 {
            *names.entry(s.to_string()).or_insert_with(|| {
                k.names.push(s.to_string());
                (k.names.len() - 1) as u32
            })
        };
        for p in pieces {
            let why = (p.reason.clone(), p.reason_code.clone());
            let reason = *reasons.entry(why.clone()).or_insert_with(|| {
                k.reasons.push(why);
                (k.reasons.len() - 1) as u32
            });
            let flags = u8::from(p.continues_before)
                | (u8::from(p.continues_after) << 1)
                | (u8::from(p.planned) << 2);
            let target = name(&mut k, &p.target);
            let services = p.services.iter().map(|s| name(&mut k, s)).collect();
            let members = p.members.iter().map(|s| name(&mut k, s)).collect();
            let excluded = p
                .excluded_services
                .iter()
                .map(|s| name(&mut k, s))
                .collect();
            k.pieces.push((
                target, p.start_ms, p.end_ms, reason, flags, services, members, excluded,
            ));
        }
        k
    }

    /// The pieces back; `None` if the row does not hold together.
    pub fn unpack(self) -> Option<Vec<Piece>> {
        let name = |i: &u32| self.names.get(*i as usize).cloned();
        self.pieces
            .iter()
            .map(
                |(t, start_ms, end_ms, r, flags, services, members, excluded)| {
                    let (reason, reason_code) = self.reasons.get(*r as usize)?.clone();
                    Some(Piece {
                        target: name(t)?,
                        start_ms: *start_ms,
                        end_ms: *end_ms,
                        reason,
                        reason_code,
                        continues_before: flags & 1 != 0,
                        continues_after: flags & 2 != 0,
                        planned: flags & 4 != 0,
                        services: services.iter().map(name).collect::<Option<_>>()?,
                        excluded_services: excluded.iter().map(name).collect::<Option<_>>()?,
                        members: members.iter().map(name).collect::<Option<_>>()?,
                    })
                },
            )
            .collect()
    }
}

/// An outage (or its piece inside the window asked about).
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[schemars(rename = "Outage")]
pub struct OutageView {
    /// The root cause's name (`root_cause` is its id).
    pub root_cause_name: String,
    /// RFC 3339, Europe/Oslo.
    pub start: String,
    pub end: String,
    pub duration_seconds: f64,
    #[serde(flatten)]
    pub outage: Piece,
    /// The operators' note on the outage (`POST /api/v1/outages/notes`).
    #[serde(default)]
    pub note: Option<String>,
    /// From the record merged across agents (a shared ledger): the agents
    /// that saw the root cause down during it, by id. Absent from one
    /// agent's own record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
}

/// Put the operators' notes on `views`, replacing any they carry (a frozen
/// report shows the notes as they are now: they are words, not figures),
/// and, in a record merged across agents, the agents that saw each.
/// A note belongs to the outage of its root cause that began at its start;
/// a piece cut at its window's start takes the latest note of its root
/// cause begun before it, unless that outage had ended by then.
pub fn annotate(store: &Store, views: &mut [OutageView]) -> Result<(), LedgerError> {
    let Some(to) = views.iter().map(|v| v.outage.start_ms).max() else {
        return Ok(());
    };
    let notes = store.outage_notes(to.saturating_add(1))?;
    let mut by_target: HashMap<&str, Vec<&crate::ledger::OutageNote>> = HashMap::new();
    for n in &notes {
        // In start order (the query sorts them).
        by_target.entry(n.target.as_str()).or_default().push(n);
    }
    for v in views {
        let p = &v.outage;
        v.note = by_target
            .get(p.target.as_str())
            .and_then(|ns| ns.iter().rev().find(|n| n.start_ms <= p.start_ms))
            .filter(|n| {
                n.start_ms == p.start_ms
                    || (p.continues_before && n.end_ms.is_none_or(|e| e > p.start_ms))
            })
            .and_then(|n| n.note.clone());
        if let Some(seen) = store.seen_down().and_then(|s| s.get(&p.target)) {
            let span = IntervalSet::single(Interval::new(p.start_ms, p.end_ms));
            v.agents = seen
                .iter()
                .filter(|(_, down)| !down.intersection(&span).is_empty())
                .map(|(agent, _)| agent.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
        }
    }
    Ok(())
}

impl OutageView {
    /// After reading a kept answer back: the instants from `start` and `end`.
    pub fn read_back(&mut self) {
        let ms =
            |s: &str| chrono::DateTime::parse_from_rfc3339(s).map_or(0, |t| t.timestamp_millis());
        self.outage.start_ms = ms(&self.start);
        self.outage.end_ms = ms(&self.end);
    }
}

/// The level to judge a service by in a window without one in force.
fn default_level() -> ServiceLevel {
    ServiceLevel {
        valid_from: NaiveDate::MIN,
        objective: 1.0,
        min_coverage: 0.9,
        schedule: Schedule::Always,
        degraded_counts_as_up: true,
        unreachable_counts_as_down: false,
    }
}

/// What a member's outages can involve: the targets whose outages can
/// concern it (its own, those its services need, and everything above
/// those), and the services (by index) those outages can affect.
pub fn scope<'a>(inv: &'a Inventory, member: &str) -> (HashSet<&'a str>, HashSet<usize>) {
    let parents: HashMap<&str, &Vec<String>> = inv
        .targets
        .iter()
        .map(|t| (t.id.as_str(), &t.parents))
        .collect();
    let up_from = |start: &'a str| -> HashSet<&'a str> {
        let mut seen = HashSet::new();
        let mut work = vec![start];
        while let Some(t) = work.pop() {
            if seen.insert(t) {
                if let Some((_, ps)) = parents.get_key_value(t) {
                    work.extend(ps.iter().map(String::as_str));
                }
            }
        }
        seen
    };
    let parts_of =
        |s: &'a crate::inventory::Service| s.targets.iter().chain(s.redundancy.iter().flatten());
    let mut roots: HashSet<&str> = inv
        .targets
        .iter()
        .filter(|t| t.member.as_deref() == Some(member) || t.serves.iter().any(|m| m == member))
        .map(|t| t.id.as_str())
        .collect();
    for s in inv
        .services
        .iter()
        .filter(|s| s.serves.iter().any(|m| m == member))
    {
        for t in parts_of(s) {
            roots.extend(up_from(t));
        }
    }
    let services = inv
        .services
        .iter()
        .enumerate()
        .filter(|(_, s)| parts_of(s).any(|t| up_from(t).iter().any(|a| roots.contains(a))))
        .map(|(i, _)| i)
        .collect();
    (roots, services)
}

/// Every target a member's outages and figures read: those of [`scope`]
/// and the parts of the services it can affect.
pub fn scope_targets(inv: &Inventory, member: &str) -> HashSet<String> {
    let (roots, services) = scope(inv, member);
    let mut out: HashSet<String> = roots.into_iter().map(str::to_string).collect();
    for i in services {
        let s = &inv.services[i];
        out.extend(
            s.targets
                .iter()
                .chain(s.redundancy.iter().flatten())
                .cloned(),
        );
    }
    out
}

/// Every target a service's figures and the causes of its outages read:
/// its parts and everything they depend on.
pub fn service_targets(inv: &Inventory, service: &crate::inventory::Service) -> HashSet<String> {
    let parents: HashMap<&str, &Vec<String>> = inv
        .targets
        .iter()
        .map(|t| (t.id.as_str(), &t.parents))
        .collect();
    let mut out: HashSet<String> = HashSet::new();
    let mut work: Vec<&str> = service
        .targets
        .iter()
        .chain(service.redundancy.iter().flatten())
        .map(String::as_str)
        .collect();
    while let Some(t) = work.pop() {
        if out.insert(t.to_string()) {
            if let Some(ps) = parents.get(t) {
                work.extend(ps.iter().map(String::as_str));
            }
        }
    }
    out
}

/// The outages in `w` (within one calendar month) from the transitions, as
/// pieces cut at the edges of `w`, in no particular order. With `member`,
/// only what its outages can involve is read: other pieces may be missing.
pub fn pieces(
    store: &Store,
    inv: &Inventory,
    w: Interval,
    member: Option<&str>,
    current_run: Option<i64>,
    now: i64,
) -> Result<Vec<Piece>, LedgerError> {
    store.check_cancelled()?;
    let scope = member.map(|m| scope(inv, m));
    let root_ok = |t: &str| scope.as_ref().is_none_or(|(roots, _)| roots.contains(t));
    let service_ok = |i: usize| scope.as_ref().is_none_or(|(_, svcs)| svcs.contains(&i));
    let runs = store.runs(w.start, w.end)?;
    let windows = store.maintenance_windows()?;
    let planned_of = |t: &str| crate::maintenance::of_target(&windows, t, w);
    let mut outages: Vec<(Outage, bool)> = Vec::new();
    let mut wanted: HashSet<&str> = inv
        .targets
        .iter()
        .map(|t| t.id.as_str())
        .filter(|t| root_ok(t))
        .collect();
    for (_, s) in inv
        .services
        .iter()
        .enumerate()
        .filter(|(i, _)| service_ok(*i))
    {
        wanted.extend(
            s.targets
                .iter()
                .chain(s.redundancy.iter().flatten())
                .map(String::as_str),
        );
    }
    let all = store.transitions_of(wanted, &runs, w.start, w.end)?;
    for t in inv.targets.iter().filter(|t| root_ok(&t.id)) {
        if let Some(trs) = all.get(&t.id) {
            let planned = planned_of(&t.id);
            for o in down_spans(&t.id, w, &runs, trs, current_run, now) {
                outages.extend(split_planned(o, &planned));
            }
        }
    }
    // Each service's own down time over the window.
    // The services' targets are inventory targets: their rows are read.
    let tls: HashMap<&str, timeline::Timeline> = inv
        .services
        .iter()
        .flat_map(|s| s.targets.iter().chain(s.redundancy.iter().flatten()))
        .filter_map(|t| {
            let rows = all.get(t)?;
            Some((
                t.as_str(),
                timeline::build_planned(t, &windows, w, &runs, rows, current_run, now),
            ))
        })
        .collect();
    let empty = timeline::build(w, &[], &[], None, now);
    // For each service, its parts (a required target, or a redundancy
    // group) with the time each was out (down, or unreachable behind a
    // down parent; a group only when no member was up).
    // Each part: its targets, the time it was out, and of that the time
    // excluded from the figures (behind a down parent, not counted).
    let mut parts: HashMap<&str, Vec<Part>> = HashMap::new();
    for (i, s) in inv.services.iter().enumerate() {
        if !service_ok(i) {
            parts.insert(s.id.as_str(), Vec::new());
            continue;
        }
        // The level in force on the first day of the month (the computed
        // windows never span two months).
        let level = rollup::level_at(s, w.start)
            .cloned()
            .unwrap_or_else(default_level);
        let classes = |t: &str| {
            service::Classes::of(
                &tls.get(t).cloned().unwrap_or_else(|| empty.clone()),
                &level,
            )
        };
        let mut v: Vec<Part> = Vec::new();
        // Out: down, behind a down parent, or in planned work — inside the
        // service's schedule: an outage at night does not affect a
        // business-hours service.
        let scheduled = level.schedule.within(w);
        let out = |c: &service::Classes| {
            (
                c.down
                    .union(&c.excluded)
                    .union(&c.maintenance)
                    .intersection(&scheduled),
                c.excluded.intersection(&scheduled),
            )
        };
        for t in &s.targets {
            let (o, x) = out(&classes(t));
            v.push((vec![t.as_str()], o, x));
        }
        for g in &s.redundancy {
            let members: Vec<service::Classes> = g.iter().map(|t| classes(t)).collect();
            let (o, x) = out(&service::Classes::any(w, &members));
            v.push((g.iter().map(String::as_str).collect(), o, x));
        }
        parts.insert(s.id.as_str(), v);
    }
    let children = inv.children();
    let below = |root: &str| -> BTreeSet<String> {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut work = vec![root.to_string()];
        while let Some(t) = work.pop() {
            if seen.insert(t.clone()) {
                work.extend(children.get(&t).cloned().unwrap_or_default());
            }
        }
        seen
    };
    // Which service parts each target belongs to.
    let mut part_of: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
    let service_parts: Vec<&Vec<Part>> =
        inv.services.iter().map(|s| &parts[s.id.as_str()]).collect();
    for (si, ps) in service_parts.iter().enumerate() {
        for (pi, (targets, ..)) in ps.iter().enumerate() {
            for t in targets {
                part_of.entry(t).or_default().push((si, pi));
            }
        }
    }
    // Per root cause, once: the parts that depend on it or on what is behind it.
    let mut candidates: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
    let by_id: HashMap<&str, &crate::inventory::Target> =
        inv.targets.iter().map(|t| (t.id.as_str(), t)).collect();
    Ok(outages
        .into_iter()
        .map(|(o, planned)| {
            let span = Interval::new(o.start_ms, o.end_ms);
            // A service is affected when one of its parts that depends on
            // the root cause (or something behind it) was out meanwhile.
            let cands = candidates.entry(o.target.clone()).or_insert_with(|| {
                let mut v: Vec<(usize, usize)> = below(&o.target)
                    .iter()
                    .flat_map(|t| part_of.get(t.as_str()).cloned().unwrap_or_default())
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            });
            let mut hit: Vec<usize> = cands
                .iter()
                .filter(|(si, pi)| overlaps(&service_parts[*si][*pi].1, span))
                .map(|(si, _)| *si)
                .collect();
            hit.dedup();
            let services: Vec<String> = hit.iter().map(|si| inv.services[*si].id.clone()).collect();
            // Excluded: out during it only as time not counted (no part
            // that depends on the root cause counted it).
            let excluded_services: Vec<String> = hit
                .iter()
                .filter(|si| {
                    let mine = cands.iter().filter(|(s, _)| s == *si);
                    mine.clone().all(|(s, pi)| {
                        let (_, o, x) = &service_parts[*s][*pi];
                        !overlaps(&o.difference(x), span)
                    }) && mine
                        .clone()
                        .any(|(s, pi)| overlaps(&service_parts[*s][*pi].2, span))
                })
                .map(|si| inv.services[*si].id.clone())
                .collect();
            let target = by_id.get(o.target.as_str()).copied();
            let mut members: BTreeSet<String> = hit
                .iter()
                .flat_map(|si| inv.services[*si].serves.iter().cloned())
                .collect();
            if let Some(t) = target {
                members.extend(t.serves.iter().cloned());
                members.extend(t.member.iter().cloned());
            }
            Piece {
                target: o.target,
                start_ms: o.start_ms,
                end_ms: o.end_ms,
                reason: o.reason,
                reason_code: o.reason_code,
                continues_before: o.continues_before,
                continues_after: o.continues_after,
                planned,
                services,
                excluded_services,
                members: members.into_iter().collect(),
            }
        })
        .collect())
}

/// A service's part (a required target or a redundancy group): its
/// targets, the scheduled time it was out, and of that the time excluded
/// from the figures.
type Part<'a> = (Vec<&'a str>, IntervalSet, IntervalSet);

/// Join pieces of one outage cut at the seam of two computed windows (a
/// day's end): same target, one ending where the next begins, the first
/// continuing after and the second before, both planned or both not.
/// Affected services and members are those of any piece. Newest last.
pub fn merge(pieces: Vec<Piece>) -> Vec<Piece> {
    // Only pieces cut at an edge can join.
    let (mut edge, mut out): (Vec<Piece>, Vec<Piece>) = pieces
        .into_iter()
        .partition(|p| p.continues_before || p.continues_after);
    edge.sort_by(|a, b| (&a.target, a.start_ms).cmp(&(&b.target, b.start_ms)));
    let mut joined: Vec<Piece> = Vec::with_capacity(edge.len());
    for p in edge {
        if let Some(last) = joined.last_mut() {
            if last.target == p.target
                && last.end_ms == p.start_ms
                && last.continues_after
                && p.continues_before
                && last.planned == p.planned
            {
                last.end_ms = p.end_ms;
                last.continues_after = p.continues_after;
                // Excluded stays excluded only if no piece counted it.
                for s in p.services {
                    let excluded = p.excluded_services.contains(&s);
                    if !last.services.contains(&s) {
                        if excluded {
                            last.excluded_services.push(s.clone());
                        }
                        last.services.push(s);
                    } else if !excluded {
                        last.excluded_services.retain(|x| *x != s);
                    }
                }
                last.members.extend(p.members);
                last.members.sort_unstable();
                last.members.dedup();
                continue;
            }
        }
        joined.push(p);
    }
    out.extend(joined);
    out.sort_unstable_by(|a, b| {
        a.start_ms
            .cmp(&b.start_ms)
            .then_with(|| a.target.cmp(&b.target))
            .then_with(|| a.end_ms.cmp(&b.end_ms))
    });
    out
}

/// All outages in `w` (of `member`'s, when given), newest last: closed
/// days from their kept pieces, the rest from the transitions. Reads the
/// ledger: call off the runtime.
pub fn list(
    store: Option<&Store>,
    inv: &Inventory,
    w: Interval,
    member: Option<&str>,
    current_run: Option<i64>,
    now: i64,
) -> Result<Vec<OutageView>, LedgerError> {
    let Some(store) = store else {
        return Ok(Vec::new());
    };
    let fp = rollup::inventory_fingerprint(inv);
    let key = member.unwrap_or(rollup::ALL);
    let kept = store.day_results(rollup::KIND_OUTAGES, key, &fp, w.start, w.end)?;
    let parts = rollup::by_days(
        w,
        now,
        &kept,
        |s| serde_json::from_str::<Kept>(s).ok().and_then(Kept::unpack),
        |piece| pieces(store, inv, piece, member, current_run, now),
    )?;
    let by_id: HashMap<&str, &crate::inventory::Target> =
        inv.targets.iter().map(|t| (t.id.as_str(), t)).collect();
    Ok(merge(parts.into_iter().flatten().collect())
        .into_iter()
        .filter(|p| member.is_none_or(|m| p.members.iter().any(|x| x == m)))
        .map(|mut p| {
            // A piece cut at a seam inside `w` that nothing continued
            // (it ended exactly there) did not go on.
            p.continues_after &= p.end_ms >= w.end;
            p.continues_before &= p.start_ms <= w.start;
            p
        })
        .map(|p| OutageView {
            root_cause_name: by_id
                .get(p.target.as_str())
                .map_or_else(|| p.target.clone(), |t| t.name.clone()),
            start: oslo_rfc3339(p.start_ms),
            end: oslo_rfc3339(p.end_ms),
            duration_seconds: (p.end_ms - p.start_ms) as f64 / 1e3,
            outage: p,
            note: None,
            agents: Vec::new(),
        })
        .collect::<Vec<_>>())
    .and_then(|mut views| {
        annotate(store, &mut views)?;
        Ok(views)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: i64, s: i64, e: i64) -> RunRow {
        RunRow {
            id,
            started_ms: s,
            end_ms: e,
            clean: true,
        }
    }

    fn tr(run_id: i64, at: i64, to: &str, reason: &str) -> TransitionRow {
        TransitionRow {
            run_id,
            target: "t".into(),
            from_state: String::new(),
            to_state: to.into(),
            at_ms: at,
            reason: Some(reason.into()),
            reason_code: None,
            root_cause: None,
        }
    }

    #[test]
    fn spans_are_split_at_the_window_and_end_with_the_run() {
        let runs = [run(1, 0, 1000), run(2, 2000, 3000)];
        let trs = [
            tr(1, 100, "up", "ok"),
            tr(1, 200, "down", "link cut"),
            tr(1, 300, "up", "ok"),
            tr(1, 900, "down", "host silent"),
            tr(2, 2100, "up", "ok"),
        ];
        let all = down_spans("t", Interval::new(0, 5000), &runs, &trs, None, 0);
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].start_ms, all[0].end_ms), (200, 300));
        assert_eq!(all[0].reason.as_deref(), Some("link cut"));
        // The run died while down: the outage ends with it (then: unmonitored).
        assert_eq!((all[1].start_ms, all[1].end_ms), (900, 1000));
        // A window boundary inside an outage: clipped and flagged.
        let part = down_spans("t", Interval::new(250, 950), &runs, &trs, None, 0);
        assert_eq!((part[0].start_ms, part[0].end_ms), (250, 300));
        assert!(part[0].continues_before && !part[0].continues_after);
        assert_eq!((part[1].start_ms, part[1].end_ms), (900, 950));
        assert!(part[1].continues_after);
    }

    #[test]
    fn an_outage_overrunning_its_window_is_planned_then_unplanned() {
        let o = Outage {
            target: "t".into(),
            start_ms: 100,
            end_ms: 500,
            reason: None,
            reason_code: None,
            continues_before: true,
            continues_after: false,
        };
        let planned = IntervalSet::single(Interval::new(0, 300));
        let pieces = split_planned(o.clone(), &planned);
        let got: Vec<(i64, i64, bool, bool)> = pieces
            .iter()
            .map(|(o, p)| (o.start_ms, o.end_ms, *p, o.continues_before))
            .collect();
        assert_eq!(got, [(100, 300, true, true), (300, 500, false, false)]);
        assert_eq!(split_planned(o, &IntervalSet::new()).len(), 1);
    }

    /// Seen in the lab: a link cut at 00:43 on a Monday listed the
    /// business-hours service behind it as affected. Only services inside
    /// their schedule during the outage are.
    #[test]
    fn a_business_hours_service_is_not_affected_at_night() {
        use crate::ledger::{Record, Store};
        use crate::model::{FailureReason, Reason, State, Transition};
        use crate::time::calendar::oslo_ms as ms;
        let inv = crate::config::parse(
            std::path::Path::new("t.yaml"),
            "
members: [{ id: tinn, name: Tinn }]
targets:
  - { id: link, kind: link, address: 198.51.100.1, serves: [tinn] }
  - { id: srv, kind: server, address: 198.51.100.2, parents: [link] }
services:
  - { id: always, name: Always, serves: [tinn], targets: [srv], sla: [{ valid_from: 2026-01-01, objective: 99.5 }] }
  - id: office
    name: Office
    serves: [tinn]
    targets: [srv]
    sla: [{ valid_from: 2026-01-01, objective: 99.0, schedule: business_hours }]
  - { id: strict, name: Strict, serves: [tinn], targets: [srv], sla: [{ valid_from: 2026-01-01, objective: 99.5, unreachable: down }] }
",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("ledger.db")).unwrap();
        let start = ms(2026, 11, 2, 0, 0); // a Monday
        let run = store.begin_run("t", start).unwrap();
        let tr = |t: &str, at: i64, to: State, root: Option<&str>| {
            Record::Transition(Transition {
                target: t.into(),
                from: State::Unmonitored,
                to,
                at: chrono::DateTime::from_timestamp_millis(at).unwrap(),
                reason: Some(Reason::Icmp(FailureReason::Timeout)),
                root_cause: root.map(String::from),
            })
        };
        let mut recs = vec![
            tr("link", start, State::Up, None),
            tr("srv", start, State::Up, None),
        ];
        // 00:43–00:50 at night, then 09:00–09:10 in office hours.
        for ((h0, m0), (h1, m1)) in [((0, 43), (0, 50)), ((9, 0), (9, 10))] {
            let (cut, repaired) = (ms(2026, 11, 2, h0, m0), ms(2026, 11, 2, h1, m1));
            recs.push(tr("link", cut, State::Down, None));
            recs.push(tr("srv", cut, State::Unreachable, Some("link")));
            recs.push(tr("link", repaired, State::Up, None));
            recs.push(tr("srv", repaired, State::Up, None));
        }
        let now = ms(2026, 11, 2, 12, 0);
        store.write(run, &recs, now).unwrap();
        let w = Interval::new(start, now);
        let mut got = pieces(&store, &inv, w, None, None, now).unwrap();
        got.sort_by_key(|p| p.start_ms);
        let services: Vec<Vec<String>> = got.iter().map(|p| p.services.clone()).collect();
        assert_eq!(
            services,
            [
                vec!["always".to_string(), "strict".into()],
                vec!["always".into(), "office".into(), "strict".into()]
            ]
        );
        // The server behind the link could not be observed: with
        // `unreachable: excluded` (the default) the time is excluded, not
        // counted; `strict` counts it as down.
        let excluded: Vec<Vec<String>> = got.iter().map(|p| p.excluded_services.clone()).collect();
        assert_eq!(
            excluded,
            [
                vec!["always".to_string()],
                vec!["always".into(), "office".into()]
            ]
        );
        // Kept days carry it.
        let back = Kept::pack(&got).unpack().unwrap();
        assert_eq!(back[1].excluded_services, got[1].excluded_services);
        // Joining two pieces: excluded only if no piece counted it.
        let mut a = got[1].clone();
        let mut b = got[1].clone();
        a.continues_after = true;
        b.continues_before = true;
        b.start_ms = a.end_ms;
        b.end_ms = a.end_ms + 1000;
        b.excluded_services = vec!["office".into()];
        let joined = merge(vec![a, b]);
        assert_eq!(joined.len(), 1);
        assert_eq!(joined[0].excluded_services, ["office"]);
    }
}
