//! Validation of `services`: members, targets and redundancy groups that
//! exist, and service levels with increasing `valid_from`.

use std::collections::{BTreeSet, HashSet};

use chrono::NaiveTime;

use super::raw::{RawBusinessHours, RawConfig, RawLevel};
use super::validate::Validator;
use crate::inventory::{Service, ServiceLevel};
use crate::time::schedule::{BusinessHours, Schedule};

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

pub(super) fn services(
    v: &mut Validator<'_>,
    raw: &RawConfig,
    member_ids: &HashSet<&str>,
    target_ids: &HashSet<&str>,
) -> Vec<Service> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let paths =
        super::validate::item_paths("services", raw.services.iter().map(|x| x.id.value.as_str()));
    for (i, s) in raw.services.iter().enumerate() {
        let p = paths[i].clone();
        let id = v.id(&s.id, &format!("{p}.id")).to_string();
        if !seen.insert(id.clone()) {
            v.report(
                &s.id,
                format!("{p}.id"),
                format!("duplicate service id {id:?}"),
            );
        }
        if s.name.value.trim().is_empty() {
            v.report(&s.name, format!("{p}.name"), "must not be empty");
        }
        for (j, m) in s.serves.iter().enumerate() {
            if !member_ids.contains(m.value.as_str()) {
                v.report(
                    m,
                    format!("{p}.serves[{j}]"),
                    format!("unknown member {:?}", m.value),
                );
            }
        }
        let check_target = |v: &mut Validator<'_>, t: &super::raw::S<String>, path: String| {
            if !target_ids.contains(t.value.as_str()) {
                v.report(t, path, format!("unknown target {:?}", t.value));
            }
        };
        for (j, t) in s.targets.iter().enumerate() {
            check_target(v, t, format!("{p}.targets[{j}]"));
        }
        for (g, group) in s.redundancy.iter().enumerate() {
            if group.len() < 2 {
                if let Some(first) = group.first() {
                    v.report(
                        first,
                        format!("{p}.redundancy[{g}]"),
                        "a redundancy group needs at least two targets (one alone belongs in targets)",
                    );
                }
            }
            for (j, t) in group.iter().enumerate() {
                check_target(v, t, format!("{p}.redundancy[{g}][{j}]"));
            }
        }
        if s.targets.is_empty() && s.redundancy.iter().all(|g| g.is_empty()) {
            v.report(
                &s.id,
                format!("{p}.targets"),
                "a service needs targets or redundancy groups",
            );
        }
        if s.sla.is_empty() {
            v.report(
                &s.id,
                format!("{p}.sla"),
                "a service needs at least one service level (sla: [{ valid_from, objective }])",
            );
        }
        let mut levels: Vec<ServiceLevel> = Vec::new();
        for (j, l) in s.sla.iter().enumerate() {
            let lp = format!("{p}.sla[{j}]");
            if let Some(prev) = levels.last() {
                if l.valid_from.value <= prev.valid_from {
                    v.report(
                        &l.valid_from,
                        format!("{lp}.valid_from"),
                        "service levels must be listed with increasing valid_from",
                    );
                }
            }
            if let Some(level) = level(v, l, &lp) {
                levels.push(level);
            }
        }
        out.push(Service {
            id,
            name: s.name.value.clone(),
            serves: s.serves.iter().map(|m| m.value.clone()).collect(),
            targets: s.targets.iter().map(|t| t.value.clone()).collect(),
            redundancy: s
                .redundancy
                .iter()
                .map(|g| g.iter().map(|t| t.value.clone()).collect())
                .collect(),
            levels,
        });
    }
    out
}

/// A service is told live (its state, root causes, burn alerts) by the
/// agents that watch every part of it (`targets[].agents`): parts with no
/// agent in common would leave it told by none.
pub(super) fn agents_in_common(v: &mut Validator<'_>, raw: &RawConfig) {
    let agents_of: std::collections::HashMap<&str, BTreeSet<&str>> = raw
        .targets
        .iter()
        .filter(|t| !t.agents.is_empty())
        .map(|t| {
            (
                t.id.value.as_str(),
                t.agents.iter().map(|a| a.value.as_str()).collect(),
            )
        })
        .collect();
    let paths =
        super::validate::item_paths("services", raw.services.iter().map(|x| x.id.value.as_str()));
    for (i, s) in raw.services.iter().enumerate() {
        let mut common: Option<BTreeSet<&str>> = None;
        for t in s.targets.iter().chain(s.redundancy.iter().flatten()) {
            if let Some(agents) = agents_of.get(t.value.as_str()) {
                common = Some(match common {
                    None => agents.clone(),
                    Some(c) => c.intersection(agents).copied().collect(),
                });
            }
        }
        if common.is_some_and(|c| c.is_empty()) {
            v.report(
                &s.id,
                format!("{}.targets", paths[i]),
                "no agent watches all of its targets (targets[].agents): its live state and alerts would come from none; give its targets an agent in common",
            );
        }
    }
}

fn level(v: &mut Validator<'_>, l: &RawLevel, p: &str) -> Option<ServiceLevel> {
    let mut ok = true;
    let objective = l.objective.value;
    if objective > 0.0 && objective <= 1.0 {
        v.report(
            &l.objective,
            format!("{p}.objective"),
            format!(
                "is a percentage: did you mean {}?",
                percent_text(objective * 100.0)
            ),
        );
        ok = false;
    } else if !(objective > 0.0 && objective <= 100.0) {
        v.report(
            &l.objective,
            format!("{p}.objective"),
            "must be a percentage above 0 and at most 100, e.g. 99.5",
        );
        ok = false;
    }
    let min_coverage = l
        .min_coverage
        .as_ref()
        .map_or(DEFAULT_MIN_COVERAGE_PERCENT, |m| m.value);
    if let Some(m) = &l.min_coverage {
        if !(0.0..=100.0).contains(&m.value) {
            v.report(
                m,
                format!("{p}.min_coverage"),
                "must be a percentage from 0 to 100, e.g. 90",
            );
            ok = false;
        } else if m.value > 0.0 && m.value <= 1.0 {
            v.report(
                m,
                format!("{p}.min_coverage"),
                format!(
                    "is a percentage: did you mean {}?",
                    percent_text(m.value * 100.0)
                ),
            );
            ok = false;
        }
    }
    let schedule = match l.schedule.as_ref().map(|s| s.value.as_str()) {
        None | Some("24x7") => {
            if let Some(bh) = &l.business_hours {
                if let Some(at) = bh.from.as_ref().or(bh.to.as_ref()) {
                    v.report(
                        at,
                        format!("{p}.business_hours"),
                        "business_hours is set but schedule is not business_hours",
                    );
                    ok = false;
                }
            }
            Schedule::Always
        }
        Some("business_hours") => match business_hours(v, l.business_hours.as_ref(), p) {
            Some(bh) => Schedule::BusinessHours(bh),
            None => {
                ok = false;
                Schedule::Always
            }
        },
        Some(other) => {
            if let Some(s) = &l.schedule {
                v.report(
                    s,
                    format!("{p}.schedule"),
                    format!("unknown schedule {other:?}: expected 24x7 or business_hours"),
                );
            }
            ok = false;
            Schedule::Always
        }
    };
    let degraded_counts_as_up = match l.degraded.as_ref().map(|d| d.value.as_str()) {
        None | Some("up") => true,
        Some("down") => false,
        Some(other) => {
            if let Some(d) = &l.degraded {
                v.report(
                    d,
                    format!("{p}.degraded"),
                    format!("unknown value {other:?}: expected up or down"),
                );
            }
            ok = false;
            true
        }
    };
    let unreachable_counts_as_down = match l.unreachable.as_ref().map(|d| d.value.as_str()) {
        None | Some("excluded") => false,
        Some("down") => true,
        Some(other) => {
            if let Some(d) = &l.unreachable {
                v.report(
                    d,
                    format!("{p}.unreachable"),
                    format!("unknown value {other:?}: expected excluded or down"),
                );
            }
            ok = false;
            false
        }
    };
    ok.then_some(ServiceLevel {
        valid_from: l.valid_from.value,
        objective: percent_ratio(objective),
        min_coverage: percent_ratio(min_coverage),
        schedule,
        degraded_counts_as_up,
        unreachable_counts_as_down,
    })
}

/// The verdict's default minimum coverage, percent of scheduled time.
pub const DEFAULT_MIN_COVERAGE_PERCENT: f64 = 90.0;

/// A percentage as a ratio, exact to 1e-6: `99.9` gives `0.999`, not
/// `0.9990000000000001` (the nearest double to the decimal, so it is
/// written back as written).
pub fn percent_ratio(percent: f64) -> f64 {
    (percent * 1e4).round() / 1e6
}

/// A percentage as a person would write it (`99.5`, not `99.50000000000001`).
fn percent_text(p: f64) -> String {
    let r = (p * 1e4).round() / 1e4;
    format!("{r}")
}

fn business_hours(
    v: &mut Validator<'_>,
    raw: Option<&RawBusinessHours>,
    p: &str,
) -> Option<BusinessHours> {
    let mut bh = BusinessHours::office();
    let Some(raw) = raw else {
        return Some(bh);
    };
    let mut ok = true;
    if let Some(days) = &raw.days {
        bh.days = BTreeSet::new();
        for (i, d) in days.iter().enumerate() {
            match DAYS
                .iter()
                .position(|x| x.eq_ignore_ascii_case(d.value.trim()))
            {
                Some(n) => {
                    bh.days.insert(n as u32);
                }
                None => {
                    v.report(
                        d,
                        format!("{p}.business_hours.days[{i}]"),
                        format!(
                            "unknown day {:?}: expected one of {}",
                            d.value,
                            DAYS.join(", ")
                        ),
                    );
                    ok = false;
                }
            }
        }
    }
    for (field, raw_t, slot) in [
        ("from", &raw.from, &mut bh.from),
        ("to", &raw.to, &mut bh.to),
    ] {
        if let Some(t) = raw_t {
            match NaiveTime::parse_from_str(t.value.trim(), "%H:%M") {
                Ok(x) => *slot = x,
                Err(_) => {
                    v.report(
                        t,
                        format!("{p}.business_hours.{field}"),
                        format!("invalid time {:?}: write HH:MM, e.g. 07:00", t.value),
                    );
                    ok = false;
                }
            }
        }
    }
    if ok && bh.from >= bh.to {
        if let Some(at) = raw.to.as_ref().or(raw.from.as_ref()) {
            v.report(
                at,
                format!("{p}.business_hours.to"),
                "must be later than from (same day)",
            );
        }
        ok = false;
    }
    if let Some(h) = &raw.public_holidays {
        bh.public_holidays = h.value;
    }
    bh.closed = raw.closed.iter().map(|d| d.value).collect();
    ok.then_some(bh)
}
