//! Maintenance windows: planned time when targets may fail without it
//! counting against a service level.
//!
//! A window names its targets, a category and a free note, and when it
//! applies: once (`start`..`end`), or recurring weekly or monthly at a local
//! time in Europe/Oslo for a duration. Windows come from the config and from
//! the API; both are kept in the ledger with the instant they were
//! *declared* and, once removed, *withdrawn*. A window only ever counts
//! between those two instants: declaring one afterwards cannot turn an
//! outage that already happened into planned work, and removing one does
//! not rewrite the maintenance that already took place.
//!
//! Pure: no clock, no I/O. Owns: the window model, when windows apply, and
//! parsing their definition. Must not touch: the ledger, HTTP.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use crate::time::interval::{Interval, IntervalSet};

/// What kind of work a window is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "MaintenanceCategory")]
pub enum Category {
    PlannedChange,
    CarrierWork,
    VendorWork,
    PowerWork,
    Other,
}

impl Category {
    pub const ALL: [Category; 5] = [
        Category::PlannedChange,
        Category::CarrierWork,
        Category::VendorWork,
        Category::PowerWork,
        Category::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::PlannedChange => "planned_change",
            Category::CarrierWork => "carrier_work",
            Category::VendorWork => "vendor_work",
            Category::PowerWork => "power_work",
            Category::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s.trim())
    }

    pub fn names() -> String {
        Category::ALL.map(Category::as_str).join(", ")
    }
}

/// Which day of the month a monthly window falls on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MonthDay {
    /// Day 1–31; in a shorter month, its last day.
    Day(u32),
    /// The `week`th (1–4, or -1 for the last) `weekday` (0 = Monday).
    Weekday { weekday: u32, week: i32 },
}

/// When a window applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Recurrence {
    Once {
        start_ms: i64,
        end_ms: i64,
    },
    Weekly {
        /// 0 = Monday … 6 = Sunday.
        days: BTreeSet<u32>,
        at: NaiveTime,
        duration_ms: i64,
        from: Option<NaiveDate>,
        until: Option<NaiveDate>,
    },
    Monthly {
        on: MonthDay,
        at: NaiveTime,
        duration_ms: i64,
        from: Option<NaiveDate>,
        until: Option<NaiveDate>,
    },
}

/// A window's definition, as configured or posted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    pub targets: Vec<String>,
    pub category: Category,
    pub note: Option<String>,
    pub schedule: Recurrence,
}

/// Where a window was declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", content = "config_id", rename_all = "snake_case")]
pub enum Origin {
    /// `maintenance[].id` in the config file.
    Config(String),
    Api,
}

/// A window as kept in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Ledger row id (negative while only in memory).
    pub id: i64,
    pub origin: Origin,
    pub spec: Spec,
    pub declared_ms: i64,
    pub withdrawn_ms: Option<i64>,
}

use crate::time::oslo::{date_of as oslo_date, local_ms as oslo_ms};

fn last_day_of_month(y: i32, m: u32) -> Option<u32> {
    let next = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)?
    };
    Some(next.pred_opt()?.day())
}

impl MonthDay {
    fn matches(&self, d: NaiveDate) -> bool {
        match *self {
            MonthDay::Day(n) => {
                let last = last_day_of_month(d.year(), d.month()).unwrap_or(28);
                d.day() == n.min(last)
            }
            MonthDay::Weekday { weekday, week } => {
                if d.weekday().num_days_from_monday() != weekday {
                    return false;
                }
                if week < 0 {
                    let last = last_day_of_month(d.year(), d.month()).unwrap_or(28);
                    d.day() + 7 > last
                } else {
                    (d.day() - 1) / 7 + 1 == week as u32
                }
            }
        }
    }
}

impl Recurrence {
    /// Longest stretch one occurrence lasts.
    fn duration_ms(&self) -> i64 {
        match self {
            Recurrence::Once { start_ms, end_ms } => end_ms - start_ms,
            Recurrence::Weekly { duration_ms, .. } | Recurrence::Monthly { duration_ms, .. } => {
                *duration_ms
            }
        }
    }

    /// Every occurrence overlapping `over`, clipped to it.
    pub fn occurrences(&self, over: Interval) -> IntervalSet {
        if over.is_empty() {
            return IntervalSet::new();
        }
        let (at, from, until) = match self {
            Recurrence::Once { start_ms, end_ms } => {
                return IntervalSet::single(Interval::new(*start_ms, *end_ms)).restrict(over)
            }
            Recurrence::Weekly {
                at, from, until, ..
            }
            | Recurrence::Monthly {
                at, from, until, ..
            } => (*at, *from, *until),
        };
        let dur = self.duration_ms();
        let days_back = (dur / 86_400_000 + 1) as u64;
        let (Some(first), Some(last)) = (
            oslo_date(over.start).and_then(|d| d.checked_sub_days(Days::new(days_back))),
            oslo_date(over.end),
        ) else {
            return IntervalSet::new();
        };
        let mut spans = Vec::new();
        let mut day = first;
        while day <= last {
            let in_range = from.is_none_or(|f| day >= f) && until.is_none_or(|u| day <= u);
            let hit = in_range
                && match self {
                    Recurrence::Weekly { days, .. } => {
                        days.contains(&day.weekday().num_days_from_monday())
                    }
                    Recurrence::Monthly { on, .. } => on.matches(day),
                    Recurrence::Once { .. } => false,
                };
            if hit {
                if let Some(s) = oslo_ms(day.and_time(at)) {
                    spans.push(Interval::new(s, s + dur));
                }
            }
            match day.succ_opt() {
                Some(d) => day = d,
                None => break,
            }
        }
        IntervalSet::from_intervals(spans).restrict(over)
    }
}

impl Window {
    /// When the window could count at all: from its declaration until it
    /// was withdrawn.
    pub fn in_force(&self) -> Interval {
        Interval::new(self.declared_ms, self.withdrawn_ms.unwrap_or(i64::MAX))
    }

    pub fn covers(&self, target: &str) -> bool {
        self.spec.targets.iter().any(|t| t == target)
    }

    /// The time this window counts within `over`.
    pub fn effective(&self, over: Interval) -> IntervalSet {
        let over = over.intersect(&self.in_force());
        self.spec.schedule.occurrences(over)
    }

    /// The occurrence going on at `now_ms`, if any.
    pub fn active_at(&self, now_ms: i64) -> Option<Interval> {
        let probe = Interval::new(now_ms, now_ms + 1);
        if self.effective(probe).is_empty() {
            return None;
        }
        // The whole occurrence, for its end: look a duration either side.
        let d = self.spec.schedule.duration_ms();
        self.spec
            .schedule
            .occurrences(Interval::new(now_ms - d, now_ms + d))
            .spans()
            .iter()
            .find(|s| s.start <= now_ms && now_ms < s.end)
            .copied()
    }

    /// Whether anything of it can still happen at or after `now_ms`.
    pub fn is_current(&self, now_ms: i64) -> bool {
        if self.withdrawn_ms.is_some_and(|w| w <= now_ms) {
            return false;
        }
        match &self.spec.schedule {
            Recurrence::Once { end_ms, .. } => *end_ms > now_ms,
            Recurrence::Weekly { until, .. } | Recurrence::Monthly { until, .. } => {
                until.is_none_or(|u| oslo_date(now_ms).is_none_or(|today| u >= today))
            }
        }
    }
}

/// The maintenance time of `target` within `over`, from every window.
pub fn of_target(windows: &[Window], target: &str, over: Interval) -> IntervalSet {
    windows
        .iter()
        .filter(|w| w.covers(target))
        .fold(IntervalSet::new(), |acc, w| acc.union(&w.effective(over)))
}

/// The first window (lowest id) covering `target` at `now_ms`.
pub fn active<'a>(windows: &'a [Window], target: &str, now_ms: i64) -> Option<&'a Window> {
    windows
        .iter()
        .filter(|w| w.covers(target))
        .find(|w| w.active_at(now_ms).is_some())
}

/// Every target inside a window now, with the first such window's id (and
/// the occurrence going on, for its end).
pub fn in_force_at(windows: &[Window], now_ms: i64) -> Vec<(String, i64, Interval)> {
    let mut out: Vec<(String, i64, Interval)> = Vec::new();
    for w in windows {
        if let Some(occ) = w.active_at(now_ms) {
            for t in &w.spec.targets {
                if !out.iter().any(|(x, _, _)| x == t) {
                    out.push((t.clone(), w.id, occ));
                }
            }
        }
    }
    out
}

/// The next instant after `now_ms`, within `horizon_ms`, at which a
/// window begins or ends; `None` when none does.
pub fn next_change(windows: &[Window], now_ms: i64, horizon_ms: i64) -> Option<i64> {
    let over = Interval::new(now_ms, now_ms.saturating_add(horizon_ms));
    windows
        .iter()
        .flat_map(|w| {
            w.effective(over)
                .spans()
                .iter()
                .flat_map(|s| [s.start, s.end])
                .collect::<Vec<_>>()
        })
        .filter(|t| *t > now_ms && *t < over.end)
        .min()
}

/// What bringing the ledger's config windows in line with the config takes:
/// the stored windows to withdraw (gone from the config, or changed) and
/// the config windows to declare (new, or changed).
pub fn config_changes<'a>(
    stored: &[Window],
    config: &'a [(String, Spec)],
    now_ms: i64,
) -> (Vec<i64>, Vec<&'a (String, Spec)>) {
    let live: Vec<&Window> = stored
        .iter()
        .filter(|w| {
            matches!(w.origin, Origin::Config(_)) && w.withdrawn_ms.is_none_or(|x| x > now_ms)
        })
        .collect();
    let withdraw = live
        .iter()
        .filter(|w| {
            !config
                .iter()
                .any(|(id, spec)| w.origin == Origin::Config(id.clone()) && &w.spec == spec)
        })
        .map(|w| w.id)
        .collect();
    let declare = config
        .iter()
        .filter(|(id, spec)| {
            !live
                .iter()
                .any(|w| w.origin == Origin::Config(id.clone()) && &w.spec == spec)
        })
        .collect();
    (withdraw, declare)
}

/// A problem with a window definition: the field at fault and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_string(),
        message: message.into(),
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

pub fn parse_day(s: &str) -> Result<u32, String> {
    DAYS.iter()
        .position(|d| d.eq_ignore_ascii_case(s.trim()))
        .map(|n| n as u32)
        .ok_or_else(|| format!("unknown day {s:?}: expected one of {}", DAYS.join(", ")))
}

pub fn parse_time(s: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M")
        .map_err(|_| format!("invalid time {s:?}: write HH:MM, e.g. 22:00"))
}

/// A duration of a minute up to 31 days, e.g. `4h` or `90m`.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?}: {e}; e.g. 4h or 90m"))?;
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    if !(60_000..=31 * 86_400_000).contains(&ms) {
        return Err(format!("duration {s:?} out of range: from 1m to 31 days"));
    }
    Ok(ms)
}

pub fn parse_instant(s: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
        .map_err(|_| {
            format!(
                "invalid time {s:?}: write RFC 3339 with an offset, e.g. 2026-11-24T22:00:00+01:00"
            )
        })
}

/// A window's definition as written in JSON (the API) — the config has the
/// same keys, with positions for its errors. Exactly one of: `start` and
/// `end` (once), `weekly`, `monthly`.
//
// Nothing serializes it: `skip_serializing_if` marks the keys that may be
// left out in its schema (the API's document is of what is written).
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "MaintenanceInput")]
pub struct SpecInput {
    /// Target ids, at least one, each once (at most 10,000).
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Category>")]
    pub category: Option<String>,
    /// At most 2,000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// RFC 3339: a one-off window's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub start: Option<String>,
    /// RFC 3339: a one-off window's end, in the future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<WeeklyInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<MonthlyInput>,
    /// A recurring window's first day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<NaiveDate>,
    /// A recurring window's last day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<NaiveDate>,
}

/// Every week on `days` at `at` (Europe/Oslo) for `duration`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeeklyInput {
    /// `mon` … `sun`.
    #[serde(default)]
    pub days: Vec<String>,
    /// HH:MM, e.g. `22:00`.
    pub at: String,
    /// e.g. `4h`, `90m`.
    pub duration: String,
}

/// Every month on `day`, or on the `week`th `weekday`, at `at` for
/// `duration`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MonthlyInput {
    /// 1–31; in a shorter month, its last day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<u32>,
    /// `mon` … `sun`, with `week`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekday: Option<String>,
    /// 1–4, or `last`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<WeekInput>")]
    pub week: Option<serde_json::Value>,
    /// HH:MM.
    pub at: String,
    /// e.g. `4h`.
    pub duration: String,
}

/// The schema of `monthly.week`: 1–4, or `last`.
#[derive(schemars::JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum WeekInput {
    Number(u8),
    Last(String),
}

/// Longest note kept.
pub const NOTE_MAX: usize = 2000;
/// Most targets one window may name.
pub const MAX_TARGETS: usize = 10_000;

impl SpecInput {
    /// Check and convert; every problem is listed. `known` says whether a
    /// target id exists.
    pub fn into_spec(self, known: impl Fn(&str) -> bool) -> Result<Spec, Vec<FieldError>> {
        let mut errs = Vec::new();
        if self.targets.is_empty() {
            errs.push(field_error("targets", "name at least one target"));
        }
        if self.targets.len() > MAX_TARGETS {
            // (Not one error per entry: the answer stays small.)
            errs.push(field_error(
                "targets",
                format!("at most {MAX_TARGETS} targets in one window"),
            ));
        } else {
            let mut seen = std::collections::HashSet::new();
            for (i, t) in self.targets.iter().enumerate() {
                if !known(t) {
                    errs.push(field_error(
                        &format!("targets[{i}]"),
                        format!("unknown target {t:?}"),
                    ));
                } else if !seen.insert(t.as_str()) {
                    errs.push(field_error(
                        &format!("targets[{i}]"),
                        format!("{t:?} is named twice"),
                    ));
                }
            }
        }
        let category = match self.category.as_deref() {
            None => Category::PlannedChange,
            Some(c) => Category::parse(c).unwrap_or_else(|| {
                errs.push(field_error(
                    "category",
                    format!(
                        "unknown category {c:?}: expected one of {}",
                        Category::names()
                    ),
                ));
                Category::Other
            }),
        };
        if self
            .note
            .as_ref()
            .is_some_and(|n| n.chars().count() > NOTE_MAX)
        {
            errs.push(field_error(
                "note",
                format!("longer than {NOTE_MAX} characters"),
            ));
        }
        let kinds = [
            self.start.is_some() || self.end.is_some(),
            self.weekly.is_some(),
            self.monthly.is_some(),
        ];
        let schedule = match kinds {
            [true, false, false] => self.once(&mut errs),
            [false, true, false] => self.weekly(&mut errs),
            [false, false, true] => self.monthly(&mut errs),
            [false, false, false] => {
                errs.push(field_error(
                    "start",
                    "say when: start and end (one-off), weekly or monthly",
                ));
                None
            }
            _ => {
                errs.push(field_error(
                    "start",
                    "give only one of: start and end, weekly, monthly",
                ));
                None
            }
        };
        if let (Some(f), Some(u)) = (self.from, self.until) {
            if u < f {
                errs.push(field_error("until", "is before from"));
            }
        }
        match schedule {
            Some(schedule) if errs.is_empty() => Ok(Spec {
                targets: self.targets,
                category,
                note: self.note.filter(|n| !n.trim().is_empty()),
                schedule,
            }),
            _ => Err(errs),
        }
    }

    fn once(&self, errs: &mut Vec<FieldError>) -> Option<Recurrence> {
        if self.from.is_some() || self.until.is_some() {
            errs.push(field_error(
                if self.from.is_some() { "from" } else { "until" },
                "from and until are for weekly and monthly windows",
            ));
        }
        let mut get = |field: &str, v: &Option<String>| match v {
            None => {
                errs.push(field_error(
                    field,
                    "missing: a one-off window needs start and end",
                ));
                None
            }
            Some(s) => parse_instant(s)
                .map_err(|m| errs.push(field_error(field, m)))
                .ok(),
        };
        let start = get("start", &self.start);
        let end = get("end", &self.end);
        let (start_ms, end_ms) = (start?, end?);
        if end_ms <= start_ms {
            errs.push(field_error("end", "must be later than start"));
            return None;
        }
        if end_ms - start_ms > 31 * 86_400_000 {
            errs.push(field_error("end", "a window lasts at most 31 days"));
            return None;
        }
        Some(Recurrence::Once { start_ms, end_ms })
    }

    fn weekly(&self, errs: &mut Vec<FieldError>) -> Option<Recurrence> {
        let w = self.weekly.as_ref()?;
        let mut days = BTreeSet::new();
        if w.days.is_empty() {
            errs.push(field_error("weekly.days", "name at least one day"));
        }
        for (i, d) in w.days.iter().enumerate() {
            match parse_day(d) {
                Ok(n) => {
                    days.insert(n);
                }
                Err(m) => errs.push(field_error(&format!("weekly.days[{i}]"), m)),
            }
        }
        let at = parse_time(&w.at).map_err(|m| errs.push(field_error("weekly.at", m)));
        let dur =
            parse_duration(&w.duration).map_err(|m| errs.push(field_error("weekly.duration", m)));
        let (at, duration_ms) = (at.ok()?, dur.ok()?);
        if duration_ms > 7 * 86_400_000 {
            errs.push(field_error("weekly.duration", "longer than a week"));
            return None;
        }
        Some(Recurrence::Weekly {
            days,
            at,
            duration_ms,
            from: self.from,
            until: self.until,
        })
    }

    fn monthly(&self, errs: &mut Vec<FieldError>) -> Option<Recurrence> {
        let m = self.monthly.as_ref()?;
        let on = match (m.day, &m.weekday, &m.week) {
            (Some(d), None, None) => {
                if !(1..=31).contains(&d) {
                    errs.push(field_error("monthly.day", "must be 1–31"));
                    None
                } else {
                    Some(MonthDay::Day(d))
                }
            }
            (None, Some(wd), Some(week)) => {
                let weekday =
                    parse_day(wd).map_err(|e| errs.push(field_error("monthly.weekday", e)));
                let week = match week {
                    serde_json::Value::Number(n)
                        if n.as_i64().is_some_and(|n| (1..=4).contains(&n)) =>
                    {
                        n.as_i64().map(|n| n as i32)
                    }
                    serde_json::Value::String(s) if s == "last" => Some(-1),
                    _ => {
                        errs.push(field_error("monthly.week", "must be 1–4 or \"last\""));
                        None
                    }
                };
                match (weekday, week) {
                    (Ok(weekday), Some(week)) => Some(MonthDay::Weekday { weekday, week }),
                    _ => None,
                }
            }
            _ => {
                errs.push(field_error(
                    "monthly",
                    "give day (1–31), or weekday and week (1–4 or last)",
                ));
                None
            }
        };
        let at = parse_time(&m.at).map_err(|e| errs.push(field_error("monthly.at", e)));
        let dur =
            parse_duration(&m.duration).map_err(|e| errs.push(field_error("monthly.duration", e)));
        Some(Recurrence::Monthly {
            on: on?,
            at: at.ok()?,
            duration_ms: dur.ok()?,
            from: self.from,
            until: self.until,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::calendar::{oslo_rfc3339, Month};

    fn window(schedule: Recurrence) -> Window {
        Window {
            id: 1,
            origin: Origin::Api,
            spec: Spec {
                targets: vec!["sw".into()],
                category: Category::PlannedChange,
                note: None,
                schedule,
            },
            declared_ms: 0,
            withdrawn_ms: None,
        }
    }

    fn input(json: &str) -> Result<Spec, Vec<FieldError>> {
        let i: SpecInput = serde_json::from_str(json).unwrap();
        i.into_spec(|t| t == "sw" || t == "fw")
    }

    #[test]
    fn weekly_windows_are_local_time_across_dst() {
        // Sundays 02:30 for 2 h: on 29 March 2026 02:30 does not exist
        // (clocks jump 02:00 → 03:00): it is moved forward by the gap, to
        // 03:30 CEST, as java.time and most schedulers do.
        let spec =
            input(r#"{"targets":["sw"],"weekly":{"days":["sun"],"at":"02:30","duration":"2h"}}"#)
                .unwrap();
        let w = window(spec.schedule);
        let march = Month::parse("2026-03").unwrap().window().unwrap();
        let occ = w.effective(march);
        let starts: Vec<String> = occ.spans().iter().map(|s| oslo_rfc3339(s.start)).collect();
        assert_eq!(
            starts,
            [
                "2026-03-01T02:30:00.000+01:00",
                "2026-03-08T02:30:00.000+01:00",
                "2026-03-15T02:30:00.000+01:00",
                "2026-03-22T02:30:00.000+01:00",
                "2026-03-29T03:30:00.000+02:00",
            ]
        );
        assert_eq!(occ.len(), 5 * 2 * 3_600_000);
    }

    #[test]
    fn monthly_by_day_and_by_weekday() {
        // The 31st, in a 30-day month, is its last day.
        let spec = input(r#"{"targets":["sw"],"monthly":{"day":31,"at":"22:00","duration":"1h"}}"#)
            .unwrap();
        let nov = Month::parse("2026-11").unwrap().window().unwrap();
        let occ = window(spec.schedule).effective(nov);
        assert_eq!(
            oslo_rfc3339(occ.spans()[0].start),
            "2026-11-30T22:00:00.000+01:00"
        );
        // Second Tuesday; last Sunday.
        let spec = input(r#"{"targets":["sw"],"monthly":{"weekday":"tue","week":2,"at":"20:00","duration":"4h"}}"#).unwrap();
        let occ = window(spec.schedule).effective(nov);
        assert_eq!(
            oslo_rfc3339(occ.spans()[0].start),
            "2026-11-10T20:00:00.000+01:00"
        );
        let spec = input(r#"{"targets":["sw"],"monthly":{"weekday":"sun","week":"last","at":"01:00","duration":"1h"}}"#).unwrap();
        let occ = window(spec.schedule).effective(nov);
        assert_eq!(
            oslo_rfc3339(occ.spans()[0].start),
            "2026-11-29T01:00:00.000+01:00"
        );
    }

    #[test]
    fn a_window_counts_only_between_declaration_and_withdrawal() {
        let mut w = window(Recurrence::Once {
            start_ms: 1000,
            end_ms: 5000,
        });
        w.declared_ms = 2000;
        w.withdrawn_ms = Some(4000);
        assert_eq!(
            w.effective(Interval::new(0, 10_000)).spans(),
            [Interval::new(2000, 4000)]
        );
        assert_eq!(w.active_at(3000), Some(Interval::new(1000, 5000)));
        assert_eq!(w.active_at(4500), None);
        assert!(!w.is_current(4000));
        let ws = [w];
        assert_eq!(of_target(&ws, "sw", Interval::new(0, 10_000)).len(), 2000);
        assert!(of_target(&ws, "other", Interval::new(0, 10_000)).is_empty());
    }

    #[test]
    fn an_occurrence_from_the_day_before_reaches_into_the_window() {
        // Saturdays 22:00 for 6 h: the window from Sunday 00:00 sees 4 h.
        let spec =
            input(r#"{"targets":["sw"],"weekly":{"days":["sat"],"at":"22:00","duration":"6h"}}"#)
                .unwrap();
        let sun = crate::time::calendar::oslo_ms(2026, 11, 22, 0, 0);
        let occ = window(spec.schedule).effective(Interval::new(sun, sun + 86_400_000));
        assert_eq!(occ.len(), 4 * 3_600_000);
    }

    #[test]
    fn bad_definitions_name_every_field() {
        let e = input(r#"{"targets":["nope"],"category":"party","start":"tomorrow","end":"2026-11-24T22:00:00+01:00"}"#)
            .unwrap_err();
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["targets[0]", "category", "start"]);
        // Duplicates are refused, and a huge list is one error.
        let e = input(r#"{"targets":["sw","sw"],"start":"2026-11-24T22:00:00+01:00","end":"2026-11-24T23:00:00+01:00"}"#)
            .unwrap_err();
        assert_eq!(e[0].field, "targets[1]");
        assert!(e[0].message.contains("named twice"));
        let many = vec!["\"sw\""; MAX_TARGETS + 1].join(",");
        let e = input(&format!(r#"{{"targets":[{many}],"start":"2026-11-24T22:00:00+01:00","end":"2026-11-24T23:00:00+01:00"}}"#))
            .unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        let e = input(r#"{"targets":["sw"],"start":"2026-11-24T22:00:00+01:00","end":"2026-11-24T21:00:00+01:00"}"#)
            .unwrap_err();
        assert_eq!(e[0].field, "end");
        let e =
            input(r#"{"targets":["sw"],"weekly":{"days":["sun"],"at":"25:00","duration":"2s"}}"#)
                .unwrap_err();
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["weekly.at", "weekly.duration"]);
        let e = input(r#"{"targets":["sw"]}"#).unwrap_err();
        assert_eq!(e[0].field, "start");
    }

    #[test]
    fn config_changes_withdraw_changed_and_declare_new() {
        let spec = |n: &str| Spec {
            targets: vec![n.into()],
            category: Category::CarrierWork,
            note: None,
            schedule: Recurrence::Once {
                start_ms: 0,
                end_ms: 10,
            },
        };
        let stored = vec![
            Window {
                id: 1,
                origin: Origin::Config("a".into()),
                spec: spec("sw"),
                declared_ms: 0,
                withdrawn_ms: None,
            },
            Window {
                id: 2,
                origin: Origin::Config("b".into()),
                spec: spec("sw"),
                declared_ms: 0,
                withdrawn_ms: None,
            },
            Window {
                id: 3,
                origin: Origin::Api,
                spec: spec("sw"),
                declared_ms: 0,
                withdrawn_ms: None,
            },
        ];
        // a unchanged, b changed, c new; the API window is not the config's.
        let config = vec![
            ("a".to_string(), spec("sw")),
            ("b".to_string(), spec("fw")),
            ("c".to_string(), spec("sw")),
        ];
        let (withdraw, declare) = config_changes(&stored, &config, 100);
        assert_eq!(withdraw, [2]);
        let ids: Vec<&str> = declare.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
    }
}
