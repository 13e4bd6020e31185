//! The status pages' figures: each service's condition now, a member's
//! open incidents and planned maintenance (from the live snapshot and the
//! maintenance windows in memory, at every request), and its availability
//! and 90 days of daily figures (from the ledger's kept days; the caller
//! caches them, see `http::status`). [`page`] renders them as HTML,
//! [`feed`] as Atom, [`badge`] as SVG.
//!
//! Owns: what a status page says. Must not touch: HTTP, access rules,
//! the probe path (it reads the published snapshot only).

pub mod badge;
pub mod feed;
pub mod page;
pub mod words;

use std::collections::HashSet;

use chrono::NaiveDate;
use serde::Serialize;

use crate::inventory::{Inventory, Service, ServiceLevel};
use crate::ledger::{LedgerError, Store};
use crate::live::Snapshot;
use crate::maintenance::Window;
use crate::model::State;
use crate::sla::outages::OutageView;
use crate::sla::service::{Figures, Tally};
use crate::time::interval::Interval;

pub use words::Lang;

/// Daily bars on a member's page.
pub const DAYS_SHOWN: usize = 90;
/// Planned maintenance shown this far ahead.
pub const MAINTENANCE_AHEAD_MS: i64 = 14 * 86_400_000;
/// Resolved incidents shown from this far back.
pub const RESOLVED_BACK_MS: i64 = 30 * 86_400_000;
/// Resolved incidents shown at most.
pub const RESOLVED_SHOWN: usize = 25;

/// A service's condition now, as a status page says it; ordered from the
/// best to the worst, so a service is its worst part and a redundancy
/// group its best.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    Up,
    Degraded,
    /// Nothing observed it now (the agent could not probe it): never
    /// shown as up.
    Unknown,
    Maintenance,
    /// Down, or unreachable behind a failed part of the network (members
    /// cannot reach it either; the cause says which).
    Down,
}

impl Condition {
    pub fn of(state: State) -> Condition {
        match state {
            State::Up => Condition::Up,
            State::Degraded => Condition::Degraded,
            State::Down | State::Unreachable => Condition::Down,
            State::Maintenance => Condition::Maintenance,
            State::Unmonitored => Condition::Unknown,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Condition::Up => "up",
            Condition::Degraded => "degraded",
            Condition::Unknown => "unknown",
            Condition::Maintenance => "maintenance",
            Condition::Down => "down",
        }
    }
}

/// A service now.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceNow {
    pub condition: Condition,
    /// The root causes (target ids) behind a `down` service.
    pub causes: Vec<String>,
    /// Since when the parts that make the condition have been so.
    pub since_ms: Option<i64>,
}

/// `service` now, from its targets' shown states: each required target
/// must work, and each redundancy group needs one member that does.
pub fn service_now(snap: &Snapshot, service: &Service) -> ServiceNow {
    let cond = |t: &str| Condition::of(snap.shown_state(t));
    let mut parts: Vec<(Condition, Vec<&str>)> = service
        .targets
        .iter()
        .map(|t| (cond(t), vec![t.as_str()]))
        .collect();
    for group in &service.redundancy {
        let best = group.iter().map(|t| cond(t)).min();
        if let Some(best) = best {
            let at: Vec<&str> = group
                .iter()
                .filter(|t| cond(t) == best)
                .map(String::as_str)
                .collect();
            parts.push((best, at));
        }
    }
    let Some(condition) = parts.iter().map(|(c, _)| *c).max() else {
        return ServiceNow {
            condition: Condition::Unknown,
            causes: Vec::new(),
            since_ms: None,
        };
    };
    let making: Vec<&str> = parts
        .iter()
        .filter(|(c, _)| *c == condition)
        .flat_map(|(_, ts)| ts.iter().copied())
        .collect();
    let since_ms = making
        .iter()
        .filter_map(|t| snap.target(t))
        .map(|l| l.since.timestamp_millis())
        .min();
    let mut causes: Vec<String> = if condition == Condition::Down {
        making
            .iter()
            .map(|t| {
                snap.target(t)
                    .and_then(|l| l.root_cause.clone())
                    .unwrap_or_else(|| t.to_string())
            })
            .collect()
    } else {
        Vec::new()
    };
    causes.sort();
    causes.dedup();
    ServiceNow {
        condition,
        causes,
        since_ms,
    }
}

/// The services a member's page shows: those serving it today (and the
/// members merged into it).
pub fn member_services<'a>(inv: &'a Inventory, member: &str, now_ms: i64) -> Vec<&'a Service> {
    let Some(today) = crate::time::oslo::date_of(now_ms) else {
        return Vec::new();
    };
    inv.member_on(member, today)
        .map(|on| on.services)
        .unwrap_or_default()
}

/// A target's name (its id if it is gone).
pub fn target_name(inv: &Inventory, target: &str) -> String {
    inv.target(target)
        .map_or_else(|| target.to_string(), |t| t.name.clone())
}

/// Services' names, in words (ids for those gone).
pub fn service_names(inv: &Inventory, ids: &[String]) -> String {
    ids.iter()
        .map(|id| {
            inv.services
                .iter()
                .find(|s| &s.id == id)
                .map_or_else(|| id.clone(), |s| s.name.clone())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Targets' names, in words.
pub fn target_names(inv: &Inventory, ids: &[String]) -> String {
    ids.iter()
        .map(|t| target_name(inv, t))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A member's name (its id if it is gone).
pub fn member_name(inv: &Inventory, member: &str) -> String {
    inv.members
        .iter()
        .find(|m| m.id == member)
        .map_or_else(|| member.to_string(), |m| m.name.clone())
}

/// An unplanned outage going on now that concerns a member.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenIncident {
    /// The root cause (a target that is down).
    pub target: String,
    pub since_ms: i64,
    pub reason_code: Option<&'static str>,
    pub reason: Option<String>,
    /// The member's services down because of it (ids).
    pub services: Vec<String>,
}

/// The incidents open now for a member: each target it depends on that
/// is down itself (not behind another) outside maintenance.
pub fn open_incidents(
    snap: &Snapshot,
    member: &str,
    services: &[(&Service, ServiceNow)],
) -> Vec<OpenIncident> {
    let inv = &snap.inventory;
    let (scope, _) = crate::sla::outages::scope(inv, member);
    let mut out: Vec<OpenIncident> = inv
        .targets
        .iter()
        .filter(|t| scope.contains(t.id.as_str()))
        .filter(|t| !snap.in_maintenance.contains_key(&t.id))
        .filter_map(|t| {
            let live = snap.target(&t.id)?;
            (live.state == State::Down).then(|| OpenIncident {
                target: t.id.clone(),
                since_ms: live.since.timestamp_millis(),
                reason_code: live.reason.as_ref().map(|r| r.code()),
                reason: live.reason.as_ref().map(|r| r.to_string()),
                services: services
                    .iter()
                    .filter(|(_, now)| now.causes.contains(&t.id))
                    .map(|(s, _)| s.id.clone())
                    .collect(),
            })
        })
        .collect();
    out.sort_by(|a, b| b.since_ms.cmp(&a.since_ms).then(a.target.cmp(&b.target)));
    out
}

/// One occurrence of planned maintenance.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub window: i64,
    /// When the window was declared (its feed entry's date).
    pub declared_ms: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub category: &'static str,
    pub note: Option<String>,
    /// The member's targets it covers (ids), in config order.
    pub targets: Vec<String>,
    /// The member's services it touches (ids).
    pub services: Vec<String>,
    pub now: bool,
}

/// Maintenance going on now or beginning within
/// [`MAINTENANCE_AHEAD_MS`] on anything the member depends on, in order
/// of start.
pub fn planned(
    inv: &Inventory,
    windows: &[Window],
    member: &str,
    services: &[&Service],
    now_ms: i64,
) -> Vec<Planned> {
    let (scope, _) = crate::sla::outages::scope(inv, member);
    let mut out = Vec::new();
    for w in windows {
        let targets: Vec<String> = inv
            .targets
            .iter()
            .filter(|t| scope.contains(t.id.as_str()) && w.covers(&t.id))
            .map(|t| t.id.clone())
            .collect();
        if targets.is_empty() {
            continue;
        }
        let touched: HashSet<&str> = targets.iter().map(String::as_str).collect();
        let services: Vec<String> = services
            .iter()
            .filter(|s| {
                s.targets
                    .iter()
                    .chain(s.redundancy.iter().flatten())
                    .any(|t| touched.contains(t.as_str()))
            })
            .map(|s| s.id.clone())
            .collect();
        let current = w.active_at(now_ms);
        let ahead = w.effective(Interval::new(now_ms, now_ms + MAINTENANCE_AHEAD_MS));
        let occurrences = current.into_iter().chain(
            ahead
                .spans()
                .iter()
                .copied()
                .filter(|o| current.is_none_or(|c| o.start >= c.end)),
        );
        for o in occurrences {
            out.push(Planned {
                window: w.id,
                declared_ms: w.declared_ms,
                start_ms: o.start,
                end_ms: o.end,
                category: w.spec.category.as_str(),
                note: w.spec.note.clone(),
                targets: targets.clone(),
                services: services.clone(),
                now: o.start <= now_ms && now_ms < o.end,
            });
        }
    }
    out.sort_by_key(|p| (p.start_ms, p.window));
    out
}

/// A service's figures from the ledger.
#[derive(Debug, Clone)]
pub struct ServiceFigures {
    pub id: String,
    /// The level in force today.
    pub level: Option<ServiceLevel>,
    pub last_24h: Option<Figures>,
    pub last_30_days: Option<Figures>,
    pub this_month: Option<Figures>,
    /// The last [`DAYS_SHOWN`] days, oldest first, today (so far) last.
    pub days: Vec<DayFigures>,
}

#[derive(Debug, Clone)]
pub struct DayFigures {
    pub date: NaiveDate,
    /// `None`: no service level covered the day.
    pub figures: Option<Figures>,
}

/// What a member's page reads from the ledger.
#[derive(Debug, Clone)]
pub struct MemberFigures {
    pub computed_ms: i64,
    pub services: Vec<ServiceFigures>,
    /// The member's outages of the last [`RESOLVED_BACK_MS`], with the
    /// operators' notes.
    pub outages: Vec<OutageView>,
}

impl MemberFigures {
    /// The operators' note on the outage of `target` that began at
    /// `start_ms` (an open incident is its root cause and its `since`).
    pub fn note_of(&self, target: &str, start_ms: i64) -> Option<String> {
        self.outages
            .iter()
            .find(|o| o.outage.target == target && o.outage.start_ms == start_ms)
            .and_then(|o| o.note.clone())
    }
}

impl Planned {
    /// What it covers, in words: the member's services it touches, or
    /// its targets when it touches none.
    pub fn covers(&self, inv: &Inventory) -> String {
        if self.services.is_empty() {
            target_names(inv, &self.targets)
        } else {
            service_names(inv, &self.services)
        }
    }
}

/// Where the figures a status page shows at `now_ms` begin: the first of
/// the [`DAYS_SHOWN`] days (which reach further back than the outages of
/// [`RESOLVED_BACK_MS`] and the last 24 hours).
pub fn shown_from(now_ms: i64) -> i64 {
    crate::time::oslo::date_of(now_ms)
        .and_then(|d| d.checked_sub_days(chrono::Days::new(DAYS_SHOWN as u64 - 1)))
        .and_then(crate::time::oslo::day_start)
        .unwrap_or(now_ms)
        .min(now_ms - RESOLVED_BACK_MS)
        .min(now_ms - 86_400_000)
}

/// A member's figures at `now_ms`: for each of `services`, the last 24
/// hours, 30 days (today and the 29 before), this month and
/// [`DAYS_SHOWN`] daily figures, closed days read from the kept day
/// results; and its outages of the last 30 days.
pub fn member_figures(
    store: Option<&Store>,
    inv: &Inventory,
    member: &str,
    services: &[Service],
    current_run: Option<i64>,
    now_ms: i64,
) -> Result<MemberFigures, LedgerError> {
    let Some(store) = store else {
        return Ok(MemberFigures {
            computed_ms: now_ms,
            services: services
                .iter()
                .map(|s| ServiceFigures {
                    id: s.id.clone(),
                    level: None,
                    last_24h: None,
                    last_30_days: None,
                    this_month: None,
                    days: Vec::new(),
                })
                .collect(),
            outages: Vec::new(),
        });
    };
    let today = crate::time::oslo::date_of(now_ms);
    let window = Interval::new(shown_from(now_ms), now_ms);
    let mut out = Vec::new();
    for s in services {
        let level = today.and_then(|d| s.level_on(d)).cloned();
        let days = crate::sla::rollup::day_tallies(store, s, window, current_run, now_ms)?;
        let sum = |keep: &dyn Fn(NaiveDate) -> bool| -> Option<Figures> {
            let level = level.as_ref()?;
            let mut total = Tally::default();
            for (date, t) in &days {
                if let (true, Some((_, t))) = (keep(*date), t) {
                    total.add(t.clone());
                }
            }
            Some(total.figures(level))
        };
        let month_start = today.and_then(|d| chrono::Datelike::with_day(&d, 1));
        let last_30 = today.and_then(|d| d.checked_sub_days(chrono::Days::new(29)));
        let day_24 = Interval::new(now_ms - 86_400_000, now_ms);
        let last_24h = match level.as_ref() {
            Some(l) => {
                let t =
                    crate::sla::rollup::service_tally(store, s, l, day_24, current_run, now_ms)?;
                Some(t.figures(l))
            }
            None => None,
        };
        out.push(ServiceFigures {
            id: s.id.clone(),
            last_30_days: sum(&|d| last_30.is_some_and(|f| d >= f)),
            this_month: sum(&|d| month_start.is_some_and(|f| d >= f)),
            last_24h,
            days: days
                .into_iter()
                .map(|(date, t)| DayFigures {
                    date,
                    figures: t.map(|(l, t)| t.figures(&l)),
                })
                .collect(),
            level,
        });
    }
    let outages = crate::sla::outages::list(
        Some(store),
        inv,
        Interval::new(now_ms - RESOLVED_BACK_MS, now_ms),
        Some(member),
        current_run,
        now_ms,
    )?;
    Ok(MemberFigures {
        computed_ms: now_ms,
        services: out,
        outages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_order_from_best_to_worst() {
        use Condition::*;
        assert!(Up < Degraded && Degraded < Unknown && Unknown < Maintenance && Maintenance < Down);
        assert_eq!(Condition::of(State::Unmonitored), Unknown);
        assert_eq!(Condition::of(State::Unreachable), Down);
    }
}
