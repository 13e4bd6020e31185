//! The regional overview for the company's board: every member (as it
//! stood that month) against every service serving it, and the month's
//! worst unplanned outages.

use serde::Serialize;

use super::{ReportError, ServiceSummary};
use crate::inventory::Inventory;
use crate::ledger::Store;
use crate::sla::outages::{self, OutageView};
use crate::time::calendar::{oslo_rfc3339, Month};
use crate::time::interval::Interval;

/// How many outages the overview lists.
pub const WORST: usize = 10;

#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct RegionReport {
    pub organisation: Option<String>,
    pub month: String,
    pub from: String,
    pub to: String,
    pub complete: bool,
    pub generated: String,
    pub version: String,
    /// The columns: every service with a level in force that month.
    pub services: Vec<Column>,
    /// The rows: every member on its own that month.
    pub members: Vec<Row>,
    /// The longest unplanned outages of the month, longest first.
    pub worst_outages: Vec<OutageView>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Column {
    pub service: String,
    pub name: String,
    pub objective: Option<f64>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Row {
    pub member: String,
    pub name: String,
    pub kommunenummer: Option<String>,
    /// One per column: `None` where the service does not serve the member.
    pub cells: Vec<Option<ServiceSummary>>,
}

impl RegionReport {
    /// A service's name as the overview shows it.
    pub fn service_name(&self, id: &str) -> String {
        self.services
            .iter()
            .find(|c| c.service == id)
            .map_or(id.to_string(), |c| c.name.clone())
    }

    /// A member's name as the overview shows it.
    pub fn member_name(&self, id: &str) -> String {
        self.members
            .iter()
            .find(|m| m.member == id)
            .map_or(id.to_string(), |m| m.name.clone())
    }
}

/// The overview of `month`, as of `now_ms` (as it was frozen, for a closed
/// month whose reports were kept).
pub fn region_report(
    store: Option<&Store>,
    inv: &Inventory,
    month: Month,
    current_run: Option<i64>,
    now_ms: i64,
) -> Result<RegionReport, ReportError> {
    let bad = || ReportError::BadMonth(month.to_string());
    let full = month.window().ok_or_else(bad)?;
    let first_day = month.start().ok_or_else(bad)?.date_naive();
    if full.start >= now_ms {
        return Err(ReportError::FutureMonth(month.to_string()));
    }
    if let Some(mut r) =
        super::frozen_report::<RegionReport>(store, super::FROZEN_REGION_REPORT, "region", month)?
    {
        r.worst_outages.iter_mut().for_each(OutageView::read_back);
        if let Some(store) = store {
            crate::sla::outages::annotate(store, &mut r.worst_outages)?;
        }
        return Ok(r);
    }
    let window = Interval::new(full.start, full.end.min(now_ms));
    let mut frozen: Vec<Option<i64>> = Vec::new();
    let mut summaries: Vec<(Column, ServiceSummary)> = Vec::new();
    for svc in &inv.services {
        let Some(level) = svc.level_on(first_day) else {
            continue;
        };
        let (summary, frozen_at) = super::service_summary(store, svc, month, current_run, now_ms)?;
        frozen.push(frozen_at);
        summaries.push((
            Column {
                service: svc.id.clone(),
                name: svc.name.clone(),
                objective: Some(level.objective),
            },
            summary,
        ));
    }
    let members = inv
        .members
        .iter()
        .filter_map(|m| inv.member_on(&m.id, first_day))
        .filter(|on| on.merged_into.is_none())
        .map(|on| Row {
            member: on.member.id.clone(),
            name: on.member.name.clone(),
            kommunenummer: on.member.kommunenummer_on(first_day).map(str::to_string),
            cells: summaries
                .iter()
                .map(|(c, s)| {
                    on.services
                        .iter()
                        .any(|x| x.id == c.service)
                        .then(|| s.clone())
                })
                .collect(),
        })
        .collect();
    let mut worst: Vec<OutageView> = outages::list(store, inv, window, None, current_run, now_ms)?
        .into_iter()
        .filter(|o| !o.outage.planned)
        .collect();
    worst.sort_by(|a, b| {
        b.duration_seconds
            .total_cmp(&a.duration_seconds)
            .then(a.outage.start_ms.cmp(&b.outage.start_ms))
    });
    worst.truncate(WORST);
    let complete = full.end <= now_ms;
    Ok(RegionReport {
        organisation: inv.reports.organisation.clone(),
        month: month.to_string(),
        from: oslo_rfc3339(window.start),
        to: oslo_rfc3339(window.end),
        complete,
        generated: oslo_rfc3339(super::generated_at(complete, &frozen, now_ms)),
        version: env!("CARGO_PKG_VERSION").to_string(),
        services: summaries.into_iter().map(|(c, _)| c).collect(),
        members,
        worst_outages: worst,
    })
}
