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
    Ok(trs
        .into_iter()
        .map(|(t, rows)| {
            let tl = timeline::build(window, &runs, &rows, current_run, now_ms);
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
