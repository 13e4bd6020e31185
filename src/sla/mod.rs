//! Availability from the ledger: interval algebra, state timelines, and
//! (next) calendars, schedules and service levels.
//!
//! Pure where it can be: the functions here take rows read from the
//! ledger and a window, and never look at a clock.

pub mod outages;
pub mod rollup;
pub mod service;
pub mod timeline;
pub mod vantage;

use std::collections::HashMap;

use crate::inventory::{Service, ServiceLevel};
use crate::ledger::{LedgerError, Store};
use crate::time::calendar::Month;
use crate::time::interval::Interval;
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
            let tl =
                timeline::build_planned(&t, &windows, window, &runs, &rows, current_run, now_ms);
            (t, tl)
        })
        .collect())
}

/// How many past months a report shows beside its own.
pub const HISTORY_MONTHS: usize = 12;

/// How long after a month's end its results are frozen: transitions
/// queued at the end of the month are in the ledger by then.
pub const FREEZE_AFTER_MS: i64 = 10 * 60 * 1000;

/// Kind of a frozen service month in the ledger.
pub const FROZEN_SERVICE: &str = "service";

/// A service's month: the level in force, the time evaluated, the figures.
pub type ServiceMonth = (ServiceLevel, Interval, service::Figures);

/// A service's figures for a calendar month (Europe/Oslo), evaluated up to
/// `now_ms` for the month in progress. `None` when no service level is in
/// force at the start of the month. A closed month whose result was frozen
/// (see [`freeze_month`]) is answered from the ledger as it was then:
/// later changes to the config do not rewrite it.
pub fn service_month(
    store: Option<&Store>,
    service: &Service,
    month: Month,
    current_run: Option<i64>,
    now_ms: i64,
) -> Result<Option<ServiceMonth>, LedgerError> {
    service_month_frozen(store, service, month, current_run, now_ms).map(|(r, _)| r)
}

/// The month's frozen result only (none for a month not yet closed and
/// frozen, or unreadable): cheap, for a report's trend of past months.
pub fn frozen_month(
    store: &Store,
    service: &Service,
    month: Month,
) -> Result<Option<ServiceMonth>, LedgerError> {
    Ok(store
        .frozen(FROZEN_SERVICE, &service.id, &month.to_string())?
        .and_then(|json| serde_json::from_str::<ServiceMonth>(&json).ok()))
}

/// [`service_month`], and whether it was answered from a frozen result.
pub fn service_month_frozen(
    store: Option<&Store>,
    service: &Service,
    month: Month,
    current_run: Option<i64>,
    now_ms: i64,
) -> Result<(Option<ServiceMonth>, bool), LedgerError> {
    if let Some(store) = store {
        if let Some(json) = store.frozen(FROZEN_SERVICE, &service.id, &month.to_string())? {
            match serde_json::from_str::<ServiceMonth>(&json) {
                Ok(r) => return Ok((Some(r), true)),
                Err(e) => tracing::warn!(
                    service = %service.id,
                    month = %month,
                    "frozen result cannot be read ({e}); computing it again"
                ),
            }
        }
    }
    Ok((
        compute_service_month(store, service, month, current_run, now_ms)?,
        false,
    ))
}

/// The month's result to freeze, once it is closed (and
/// [`FREEZE_AFTER_MS`] past) and not yet frozen; `None` otherwise.
pub fn freeze_month(
    store: &Store,
    service: &Service,
    month: Month,
    now_ms: i64,
) -> Result<Option<String>, LedgerError> {
    let Some(w) = month.window() else {
        return Ok(None);
    };
    if now_ms < w.end + FREEZE_AFTER_MS
        || store
            .frozen(FROZEN_SERVICE, &service.id, &month.to_string())?
            .is_some()
    {
        return Ok(None);
    }
    let Some(r) = compute_service_month(Some(store), service, month, None, now_ms)? else {
        return Ok(None);
    };
    serde_json::to_string(&r)
        .map(Some)
        .map_err(|e| LedgerError::Db(e.to_string()))
}

/// The level in force at the start of `month` and the part of the month
/// evaluated by `now_ms`; `None` when no level was in force or nothing of
/// the month has passed.
pub fn month_level(
    service: &Service,
    month: Month,
    now_ms: i64,
) -> Option<(&ServiceLevel, Interval)> {
    let full = month.window()?;
    let level = service.level_on(month.start()?.date_naive())?;
    let window = Interval::new(full.start, full.end.min(now_ms));
    (!window.is_empty()).then_some((level, window))
}

/// [`service_month`] computed from the transitions (closed days from
/// their kept tallies, see [`rollup`]), never from a frozen result.
pub fn compute_service_month(
    store: Option<&Store>,
    service: &Service,
    month: Month,
    current_run: Option<i64>,
    now_ms: i64,
) -> Result<Option<ServiceMonth>, LedgerError> {
    let Some((level, window)) = month_level(service, month, now_ms) else {
        return Ok(None);
    };
    let tally = match store {
        Some(store) => rollup::service_tally(store, service, level, window, current_run, now_ms)?,
        // No ledger yet: all the scheduled time went unobserved.
        None => {
            let scheduled_ms = level.schedule.within(window).len();
            service::Tally {
                scheduled_ms,
                unmonitored_ms: scheduled_ms,
                ..Default::default()
            }
        }
    };
    Ok(Some((level.clone(), window, tally.figures(level))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::ServiceLevel;
    use crate::ledger::store::{RunRow, TransitionRow};
    use crate::model::State;
    use crate::time::schedule::Schedule;
    use chrono::NaiveDate;

    use crate::time::calendar::oslo_ms as ms;

    #[test]
    fn a_closed_month_once_frozen_does_not_follow_later_config_changes() {
        use crate::ledger::Record;
        use crate::model::Transition;
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("ledger.db")).unwrap();
        let run = store.begin_run("t", ms(2026, 10, 1, 0, 0)).unwrap();
        let tr = |target: &str, at: i64, to: State| {
            Record::Transition(Transition {
                target: target.into(),
                from: State::Unmonitored,
                to,
                at: chrono::DateTime::from_timestamp_millis(at).unwrap(),
                reason: None,
                root_cause: None,
            })
        };
        let records = [
            tr("a", ms(2026, 10, 1, 0, 0), State::Up),
            tr("b", ms(2026, 10, 1, 0, 0), State::Up),
            tr("b", ms(2026, 10, 10, 12, 0), State::Down),
            tr("b", ms(2026, 10, 10, 13, 0), State::Up),
        ];
        store.write(run, &records, ms(2026, 11, 2, 0, 0)).unwrap();
        store.end_run(run, ms(2026, 11, 2, 0, 0)).unwrap();
        let level = ServiceLevel {
            valid_from: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            objective: 0.999,
            min_coverage: 0.9,
            schedule: Schedule::Always,
            degraded_counts_as_up: true,
            unreachable_counts_as_down: false,
        };
        let mut svc = Service {
            id: "svc".into(),
            name: "svc".into(),
            serves: vec![],
            targets: vec!["a".into(), "b".into()],
            redundancy: vec![],
            levels: vec![level],
        };
        let oct = Month::parse("2026-10").unwrap();
        let now = ms(2026, 11, 2, 0, 0);
        // Not yet: the month closed less than FREEZE_AFTER_MS ago.
        let just_closed = oct.window().unwrap().end + 1000;
        assert_eq!(freeze_month(&store, &svc, oct, just_closed).unwrap(), None);
        let frozen = freeze_month(&store, &svc, oct, now).unwrap().unwrap();
        store
            .write(
                run,
                &[Record::Frozen {
                    kind: FROZEN_SERVICE.into(),
                    id: "svc".into(),
                    month: "2026-10".into(),
                    result: frozen,
                }],
                now,
            )
            .unwrap();
        assert_eq!(freeze_month(&store, &svc, oct, now).unwrap(), None, "once");
        // The service loses target b after October closed.
        svc.targets = vec!["a".into()];
        let (_, _, f) = service_month(Some(&store), &svc, oct, None, now)
            .unwrap()
            .unwrap();
        assert_eq!(f.downtime_seconds, 3600.0);
        assert_eq!(f.outages, 1);
        // Unfrozen, the same question follows the new config.
        let (_, _, f) = compute_service_month(Some(&store), &svc, oct, None, now)
            .unwrap()
            .unwrap();
        assert_eq!(f.downtime_seconds, 0.0);
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
            reason_code: None,
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
            min_coverage: 0.9,
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
