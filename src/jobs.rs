//! Background jobs on deadlines: every `agent.sla_interval`, this
//! month's SLA figures of every service for the metrics; last month's
//! results and reports frozen once it closed; closed days summed up ahead
//! of time (see [`crate::sla::rollup`]). Each round runs off the runtime's
//! workers, and the next one is due an interval after this one began (no
//! drift), or at once after a round that overran.
//!
//! Owns: the rounds' timing. Must not touch: live state (it reads the
//! inventory from the live snapshot).

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::inventory::Inventory;
use crate::ledger::{Ledger, Record};
use crate::live::Live;
use crate::metrics::{Metrics, SlaGauges};

/// Days summed up ahead of time per round.
const BACKFILL_PER_ROUND: usize = 31;
/// How long the first round waits for the writer to open the ledger.
const LEDGER_OPEN_WAIT: Duration = Duration::from_secs(10);

/// Run SLA rounds until `stop` is cancelled.
pub async fn sla_rounds(live: Live, ledger: Ledger, metrics: Metrics, stop: CancellationToken) {
    // Let the writer open and migrate the ledger first (a moment), so the
    // first reading does not meet a file without its tables.
    let opened = tokio::time::Instant::now() + LEDGER_OPEN_WAIT;
    while ledger.current_run().is_none() && tokio::time::Instant::now() < opened {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    let mut known: Vec<String> = Vec::new();
    let mut closed_for: Option<ClosedKey> = None;
    let mut region = RegionFreeze::default();
    let mut due = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(due) => {}
        }
        let began = tokio::time::Instant::now();
        let inv = live.snapshot().inventory.clone();
        // Services removed by a reload lose their series.
        for gone in known
            .iter()
            .filter(|k| !inv.services.iter().any(|s| &s.id == *k))
        {
            metrics.set_sla(gone, None);
            metrics.set_service_up(gone, None);
            metrics.set_service_monitored(gone, None);
        }
        known = inv.services.iter().map(|s| s.id.clone()).collect();
        let interval = inv.agent.sla_interval;
        let (l, m) = (ledger.clone(), metrics.clone());
        let last = closed_for.clone();
        if let Ok(key) = tokio::task::spawn_blocking(move || {
            let key = round(&inv, &l, &m, last);
            crate::memory::release_freed();
            key
        })
        .await
        {
            closed_for = key;
        }
        region.round(&live.snapshot().inventory, &ledger).await;
        due = (began + interval).max(tokio::time::Instant::now());
    }
}

/// Freezing the region's last month in a shared ledger (see
/// [`crate::report::freeze_shared`]): tried at most once a minute, not
/// again once done.
#[derive(Default)]
struct RegionFreeze {
    done: Option<crate::time::calendar::Month>,
    last_try: Option<tokio::time::Instant>,
}

/// How often the region's month is looked at until it is frozen.
const REGION_FREEZE_EVERY: Duration = Duration::from_secs(60);

impl RegionFreeze {
    async fn round(&mut self, inv: &std::sync::Arc<Inventory>, ledger: &Ledger) {
        let Some(shared) = ledger.shared().cloned() else {
            return;
        };
        let now = Utc::now();
        let Some(month) = crate::time::calendar::Month::parse(&crate::time::oslo::month_of(now))
            .map(|m| m.prev())
        else {
            return;
        };
        let too_early = month
            .window()
            .is_none_or(|w| now.timestamp_millis() < w.end + crate::sla::FREEZE_AFTER_MS);
        let tried_lately = self
            .last_try
            .is_some_and(|t| t.elapsed() < REGION_FREEZE_EVERY);
        if self.done == Some(month) || too_early || tried_lately {
            return;
        }
        self.last_try = Some(tokio::time::Instant::now());
        let inv = inv.clone();
        let done = tokio::task::spawn_blocking(move || {
            // An error of the server's closes the connection; any other
            // (a report that cannot be made) is told as it is.
            shared.with(|reader| {
                match crate::report::freeze_shared(reader, &inv, month, now.timestamp_millis()) {
                    Err(crate::report::ReportError::Ledger(e)) => Err(e),
                    r => Ok(r),
                }
            })
        })
        .await;
        match done {
            Ok(Ok(Ok(Some(kept)))) => {
                if kept > 0 {
                    tracing::info!(month = %month, results = kept, "month closed: the region's results frozen in the shared ledger");
                }
                self.done = Some(month);
            }
            Ok(Ok(Ok(None))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(month = %month, "freezing the region's month: {e}"),
            Ok(Err(e)) => tracing::warn!(month = %month, "freezing the region's month: {e}"),
            Err(e) => tracing::warn!("freezing the region's month: {e}"),
        }
    }
}

/// What the closed-month series were last read for: the month, the
/// services, and how many months were frozen then. They are read again
/// only when that changes (a month closes, a reload), not every round.
type ClosedKey = (crate::time::calendar::Month, Vec<String>, i64);

/// How many closed months the history series show.
const CLOSED_MONTHS: usize = 12;

/// Each service's frozen results of the [`CLOSED_MONTHS`] months before
/// `month` (months not frozen, or unreadable, left out).
fn closed_months(
    store: &crate::ledger::Store,
    inv: &Inventory,
    month: crate::time::calendar::Month,
) -> crate::metrics::ClosedMonths {
    inv.services
        .iter()
        .map(|svc| {
            let list = std::iter::successors(Some(month.prev()), |m| Some(m.prev()))
                .take(CLOSED_MONTHS)
                .filter_map(|m| match crate::sla::frozen_month(store, svc, m) {
                    Ok(r) => r.map(|(level, _, f)| crate::metrics::ClosedMonth {
                        month: m.to_string(),
                        objective: level.objective,
                        availability: f.met.and(f.availability),
                        met: f.met,
                    }),
                    Err(e) => {
                        tracing::warn!(service = %svc.id, month = %m, "closed month: {e}");
                        None
                    }
                })
                .collect();
            (svc.id.clone(), list)
        })
        .collect()
}

/// One round: freeze last month, sum up closed days, the closed months'
/// series (when `closed_for` is out of date), this month's figures.
/// Returns what the closed-month series are now for.
fn round(
    inv: &Inventory,
    ledger: &Ledger,
    metrics: &Metrics,
    closed_for: Option<ClosedKey>,
) -> Option<ClosedKey> {
    let now = Utc::now();
    let month = crate::time::calendar::Month::parse(&crate::time::oslo::month_of(now));
    let store = if ledger.path().exists() {
        match crate::ledger::Store::open_read_only(ledger.path()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("SLA metrics: cannot read the ledger: {e}");
                return closed_for;
            }
        }
    } else {
        None
    };
    let Some(month) = month else {
        return closed_for;
    };
    // Last month's results, once closed, are frozen: kept as they
    // are now, whatever the config says later.
    if let Some(store) = store.as_ref() {
        for svc in &inv.services {
            match crate::sla::freeze_month(store, svc, month.prev(), now.timestamp_millis()) {
                Ok(Some(result)) => {
                    tracing::info!(service = %svc.id, month = %month.prev(), "month closed: results frozen");
                    ledger.record(Record::Frozen {
                        kind: crate::sla::FROZEN_SERVICE.to_string(),
                        id: svc.id.clone(),
                        month: month.prev().to_string(),
                        result,
                    });
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(service = %svc.id, "freezing last month: {e}"),
            }
        }
    }
    // Then every member's report and the regional overview of last
    // month, as they are once its service results are frozen.
    if let Some(store) = store.as_ref() {
        match crate::report::freeze_reports(store, inv, month.prev(), now.timestamp_millis()) {
            Ok(records) => {
                if !records.is_empty() {
                    tracing::info!(month = %month.prev(), reports = records.len(), "month closed: reports frozen");
                }
                for r in records {
                    ledger.record(r);
                }
            }
            Err(e) => tracing::warn!("freezing last month's reports: {e}"),
        }
    }
    // Closed days summed up once, a month's worth per round, so
    // queries read them instead of every transition. Not while the
    // ledger cannot be written: they would only wait in memory.
    if let Some(store) = store.as_ref().filter(|_| !ledger.is_failing()) {
        match crate::sla::rollup::backfill(
            store,
            inv,
            ledger.current_run(),
            now.timestamp_millis(),
            BACKFILL_PER_ROUND,
        ) {
            Ok(records) => {
                if !records.is_empty() {
                    tracing::debug!(records = records.len(), "closed days summed up");
                }
                for r in records {
                    ledger.record(r);
                }
            }
            Err(e) => tracing::warn!("summing up closed days: {e}"),
        }
    }
    let mut closed_for = closed_for;
    if let Some(store) = store.as_ref() {
        match store.frozen_count(crate::sla::FROZEN_SERVICE) {
            Ok(count) => {
                let ids = inv.services.iter().map(|s| s.id.clone()).collect();
                let key = (month, ids, count);
                if closed_for.as_ref() != Some(&key) {
                    metrics.set_closed_months(&closed_months(store, inv, month));
                    closed_for = Some(key);
                }
            }
            Err(e) => tracing::warn!("closed months: {e}"),
        }
    }
    for svc in &inv.services {
        match crate::sla::service_month(
            store.as_ref(),
            svc,
            month,
            ledger.current_run(),
            now.timestamp_millis(),
        ) {
            Ok(Some((level, _, f))) => metrics.set_sla(
                &svc.id,
                Some(SlaGauges {
                    objective: Some(level.objective),
                    min_coverage: Some(level.min_coverage),
                    // Only with a verdict: below the minimum coverage the
                    // figure would read as one.
                    availability: f.met.and(f.availability),
                    budget: f.met.and(f.error_budget_remaining),
                    coverage: f.coverage,
                }),
            ),
            Ok(None) => metrics.set_sla(&svc.id, None),
            Err(e) => tracing::warn!(service = %svc.id, "SLA metrics: {e}"),
        }
    }
    closed_for
}
