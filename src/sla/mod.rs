//! Availability from the ledger: interval algebra, state timelines, and
//! (next) calendars, schedules and service levels.
//!
//! Pure where it can be: the functions here take rows read from the
//! ledger and a window, and never look at a clock.

pub mod calendar;
pub mod interval;
pub mod outages;
pub mod schedule;
pub mod service;
pub mod timeline;

use std::collections::HashMap;

use crate::inventory::{Service, ServiceLevel};
use crate::ledger::{LedgerError, Store};
use calendar::Month;
use interval::Interval;
use timeline::Timeline;

/// Timelines of `targets` over `window` from the ledger (the runs read once).
pub fn timelines<'a>(
    store: &Store,
    targets: impl IntoIterator<Item = &'a str>,
    window: Interval,
    current_run: Option<i64>,
    now_ms: i64,
) -> Result<HashMap<String, Timeline>, LedgerError> {
    let runs = store.runs(window.start, window.end)?;
    let mut wanted: Vec<&str> = targets.into_iter().collect();
    wanted.sort_unstable();
    wanted.dedup();
    let trs = store.transitions_of(wanted, &runs, window.start, window.end)?;
    let windows = store.maintenance_windows()?;
    Ok(trs
        .into_iter()
        .map(|(t, rows)| {
            let planned = crate::maintenance::of_target(&windows, &t, window);
            let tl = timeline::build(window, &runs, &rows, current_run, now_ms)
                .with_maintenance(&planned);
            (t, tl)
        })
        .collect())
}

/// A service's figures for a calendar month (Europe/Oslo), evaluated up to
/// `now_ms` for the month in progress. `None` when no service level is in
/// force at the start of the month.
pub fn service_month(
    store: Option<&Store>,
    service: &Service,
    month: Month,
    current_run: Option<i64>,
    now_ms: i64,
) -> Result<Option<(ServiceLevel, Interval, service::Figures)>, LedgerError> {
    let Some(full) = month.window() else {
        return Ok(None);
    };
    let Some(first_day) = month.start().map(|s| s.date_naive()) else {
        return Ok(None);
    };
    let Some(level) = service.level_on(first_day) else {
        return Ok(None);
    };
    let window = Interval::new(full.start, full.end.min(now_ms));
    if window.is_empty() {
        return Ok(None);
    }
    let all = service
        .targets
        .iter()
        .chain(service.redundancy.iter().flatten())
        .map(String::as_str);
    let tls = match store {
        Some(store) => timelines(store, all, window, current_run, now_ms)?,
        None => HashMap::new(),
    };
    let empty = timeline::build(window, &[], &[], None, now_ms);
    let figures = service::figures(service, level, window, |t| {
        tls.get(t).cloned().unwrap_or_else(|| empty.clone())
    });
    Ok(Some((level.clone(), window, figures)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::State;
    use crate::inventory::ServiceLevel;
    use crate::ledger::store::{RunRow, TransitionRow};
    use crate::sla::schedule::Schedule;
    use chrono::{NaiveDate, TimeZone};
    use chrono_tz::Europe::Oslo;

    fn ms(y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
        Oslo.with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .map(|t| t.timestamp_millis())
            .unwrap_or_default()
    }

    #[test]
    fn an_outage_across_a_month_boundary_is_split_between_the_months() {
        // Up from 1 October; down 31 October 23:30 until 1 November 00:30 (Oslo).
        let runs = [RunRow {
            id: 1,
            started_ms: ms(2026, 10, 1, 0, 0),
            end_ms: ms(2026, 11, 30, 0, 0),
            clean: true,
        }];
        let tr = |at: i64, s: State| TransitionRow {
            run_id: 1,
            target: "core".into(),
            from_state: String::new(),
            to_state: s.as_str().into(),
            at_ms: at,
            reason: Some("link cut".into()),
            root_cause: None,
        };
        let trs = [
            tr(ms(2026, 10, 1, 0, 0), State::Up),
            tr(ms(2026, 10, 31, 23, 30), State::Down),
            tr(ms(2026, 11, 1, 0, 30), State::Up),
        ];
        let service = Service {
            id: "svc".into(),
            name: "svc".into(),
            serves: vec![],
            targets: vec!["core".into()],
            redundancy: vec![],
            levels: vec![],
        };
        let level = ServiceLevel {
            valid_from: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default(),
            objective: 0.999,
            schedule: Schedule::Always,
            degraded_counts_as_up: true,
            unreachable_counts_as_down: false,
        };
        let now = ms(2026, 11, 30, 0, 0);
        for (month, hours) in [("2026-10", 745.0), ("2026-11", 29.0 * 24.0)] {
            let w = Month::parse(month).and_then(|m| m.window()).unwrap();
            let w = Interval::new(w.start, w.end.min(now));
            let tl = timeline::build(w, &runs, &trs, None, now);
            let f = service::figures(&service, &level, w, |_| tl.clone());
            assert_eq!(f.downtime_seconds, 1800.0, "{month}");
            assert_eq!(f.outages, 1, "{month}");
            assert_eq!(f.scheduled_seconds, hours * 3600.0, "{month}");
            let spans = outages::down_spans("core", w, &runs, &trs, None, now);
            assert_eq!(spans.len(), 1);
            assert_eq!(spans[0].end_ms - spans[0].start_ms, 1_800_000);
            // October's half continues after, November's began before.
            assert_eq!(spans[0].continues_after, month == "2026-10");
            assert_eq!(spans[0].continues_before, month == "2026-11");
        }
    }
}
