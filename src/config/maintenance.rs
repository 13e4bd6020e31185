//! Validation of `maintenance`: windows with known targets and a valid
//! schedule. The rules are the API's ([`SpecInput::into_spec`]); here each
//! problem gets the position of the key at fault.

use std::collections::HashSet;

use super::raw::{RawConfig, RawMaintenance, S};
use super::validate::{Origin, Validator};
use crate::maintenance::{MonthlyInput, Spec, SpecInput, WeeklyInput};

pub(super) fn windows(
    v: &mut Validator<'_>,
    raw: &RawConfig,
    target_ids: &HashSet<&str>,
) -> Vec<(String, Spec)> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let paths = super::validate::item_paths(
        "maintenance",
        raw.maintenance.iter().map(|x| x.id.value.as_str()),
    );
    for (i, m) in raw.maintenance.iter().enumerate() {
        let p = paths[i].clone();
        let id = v.id(&m.id, &format!("{p}.id")).to_string();
        if !seen.insert(id.clone()) {
            v.report(
                &m.id,
                format!("{p}.id"),
                format!("duplicate maintenance id {id:?}"),
            );
        }
        match input(m).into_spec(|t| target_ids.contains(t)) {
            Ok(spec) => out.push((id, spec)),
            Err(errs) => {
                for e in errs {
                    let at = position(m, &e.field);
                    v.report_at(at, format!("{p}.{}", e.field), e.message);
                }
            }
        }
    }
    out
}

fn input(m: &RawMaintenance) -> SpecInput {
    let val = |s: &Option<S<String>>| s.as_ref().map(|s| s.value.clone());
    SpecInput {
        targets: m.targets.iter().map(|t| t.value.clone()).collect(),
        category: val(&m.category),
        note: val(&m.note),
        start: val(&m.start),
        end: val(&m.end),
        weekly: m.weekly.as_ref().map(|w| WeeklyInput {
            days: w.days.iter().map(|d| d.value.clone()).collect(),
            at: w.at.value.clone(),
            duration: w.duration.value.clone(),
        }),
        monthly: m.monthly.as_ref().map(|x| MonthlyInput {
            day: x.day.as_ref().map(|d| d.value),
            weekday: val(&x.weekday),
            week: x.week.as_ref().map(|w| w.value.clone()),
            at: x.at.value.clone(),
            duration: x.duration.value.clone(),
        }),
        from: m.from.as_ref().map(|d| d.value),
        until: m.until.as_ref().map(|d| d.value),
    }
}

/// Where the key named by an error's field is written (the window's id
/// when the key is absent).
fn position(m: &RawMaintenance, field: &str) -> Origin {
    fn at<T>(s: &S<T>) -> Origin {
        Origin::from(s)
    }
    let index = |prefix: &str| -> Option<usize> {
        field.strip_prefix(prefix)?.strip_suffix(']')?.parse().ok()
    };
    let w = m.weekly.as_ref();
    let mo = m.monthly.as_ref();
    let found = match field {
        "category" => m.category.as_ref().map(at),
        "note" => m.note.as_ref().map(at),
        "start" => m.start.as_ref().map(at),
        "end" => m.end.as_ref().or(m.start.as_ref()).map(at),
        "from" => m.from.as_ref().map(at),
        "until" => m.until.as_ref().map(at),
        "weekly.at" => w.map(|w| at(&w.at)),
        "weekly.duration" => w.map(|w| at(&w.duration)),
        "monthly.day" => mo.and_then(|x| x.day.as_ref()).map(at),
        "monthly.weekday" => mo.and_then(|x| x.weekday.as_ref()).map(at),
        "monthly.week" => mo.and_then(|x| x.week.as_ref()).map(at),
        "monthly" => mo.map(|x| at(&x.at)),
        "monthly.at" => mo.map(|x| at(&x.at)),
        "monthly.duration" => mo.map(|x| at(&x.duration)),
        f if f.starts_with("targets[") => index("targets[").and_then(|i| m.targets.get(i)).map(at),
        f if f.starts_with("weekly.days[") => index("weekly.days[")
            .and_then(|i| w.and_then(|w| w.days.get(i)))
            .map(at),
        _ => None,
    };
    found.unwrap_or_else(|| at(&m.id))
}
