//! Monthly uptime reports for member municipalities: the report model,
//! built from the ledger as it stood for the month (members, merges and
//! kommunenummer of that month; frozen service results once it closed),
//! and its forms. JSON is the model itself; CSV is two files ready for a
//! spreadsheet (see [`csv`]).
//!
//! Pure given the store: the caller says what "now" is, so the same
//! ledger, month and version give the same report (a closed month's
//! report is dated when its results were frozen, not when it was asked
//! for).

pub mod cells;
pub mod csv;
pub mod html;
pub mod locale;
pub mod pdf;
pub mod region;

use std::collections::BTreeSet;

use serde::Serialize;

use crate::inventory::Inventory;
use crate::ledger::{LedgerError, Store};
use crate::linkstats::LinkStats;
use crate::maintenance::Window;
use crate::sla::outages::{self, OutageView};
use crate::sla::{rollup, FROZEN_SERVICE};
use crate::time::calendar::{oslo_rfc3339, Month};
use crate::time::interval::Interval;
pub use locale::Lang;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("unknown member {0:?}")]
    UnknownMember(String),
    #[error("month {0} has not begun")]
    FutureMonth(String),
    #[error("month {0} is out of range")]
    BadMonth(String),
    #[error("no ledger at {0}: give --data-dir, or run the agent first")]
    NoLedger(std::path::PathBuf),
    #[error("cannot read the ledger at {path}: {reason} (run as the agent's user, e.g. sudo -u utkikk, or as a member of its group)")]
    LedgerUnreadable {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("cannot write {path}: {reason}")]
    Write {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The forms a report can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Html,
    Pdf,
}

/// Which members: one, or every member still on its own that month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    Member(String),
    All,
}

/// Write the reports of `who` for `month` into `out`; the files written.
/// JSON and HTML: one `MEMBER-YYYY-MM.json` (`.html`) per member. CSV: one
/// `MEMBER-YYYY-MM-services.csv` and one `…-outages.csv` (`all-…` for
/// every member in one pair). With every member, JSON and HTML add the
/// regional overview, `region-YYYY-MM.json` (`.html`).
#[allow(clippy::too_many_arguments)]
pub fn write_files(
    store: Option<&Store>,
    inv: &Inventory,
    who: &Who,
    month: Month,
    format: Format,
    lang: Lang,
    out: &std::path::Path,
    current_run: Option<i64>,
    now_ms: i64,
) -> Result<Vec<std::path::PathBuf>, ReportError> {
    let first_day = month
        .start()
        .ok_or_else(|| ReportError::BadMonth(month.to_string()))?
        .date_naive();
    let ids: Vec<String> = match who {
        Who::Member(m) => vec![m.clone()],
        Who::All => inv
            .members
            .iter()
            .filter(|m| m.merged_into.as_ref().is_none_or(|mg| mg.date > first_day))
            .map(|m| m.id.clone())
            .collect(),
    };
    let reports = ids
        .iter()
        .map(|id| member_report(store, inv, id, month, current_run, now_ms))
        .collect::<Result<Vec<_>, _>>()?;
    std::fs::create_dir_all(out).map_err(|e| ReportError::Write {
        path: out.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut files: Vec<(std::path::PathBuf, Vec<u8>)> = Vec::new();
    match format {
        Format::Json => {
            for r in &reports {
                let json = serde_json::to_string_pretty(r).map_err(|e| ReportError::Write {
                    path: out.to_path_buf(),
                    reason: e.to_string(),
                })?;
                files.push((
                    out.join(format!("{}-{month}.json", r.member)),
                    (json + "\n").into_bytes(),
                ));
            }
        }
        Format::Html => {
            for r in &reports {
                let html = html::member(r, lang).map_err(|e| ReportError::Write {
                    path: out.to_path_buf(),
                    reason: e.to_string(),
                })?;
                files.push((
                    out.join(format!("{}-{month}.html", r.member)),
                    html.into_bytes(),
                ));
            }
        }
        Format::Pdf => {
            for r in &reports {
                let pdf = pdf::member(r, lang).map_err(|e| ReportError::Write {
                    path: out.to_path_buf(),
                    reason: e.to_string(),
                })?;
                files.push((out.join(format!("{}-{month}.pdf", r.member)), pdf));
            }
        }
        Format::Csv => {
            let stem = match who {
                Who::Member(m) => m.as_str(),
                Who::All => "all",
            };
            let err = |e: ::csv::Error| ReportError::Write {
                path: out.to_path_buf(),
                reason: e.to_string(),
            };
            files.push((
                out.join(format!("{stem}-{month}-services.csv")),
                csv::services(&reports, lang).map_err(err)?.into_bytes(),
            ));
            files.push((
                out.join(format!("{stem}-{month}-outages.csv")),
                csv::outages(&reports, lang).map_err(err)?.into_bytes(),
            ));
        }
    }
    // With every member, the regional overview too (its CSV is the
    // `all-…` pair above).
    if *who == Who::All && format != Format::Csv {
        let region = region::region_report(store, inv, month, current_run, now_ms)?;
        let err = |reason: String| ReportError::Write {
            path: out.to_path_buf(),
            reason,
        };
        let (ext, body) = match format {
            Format::Html => (
                "html",
                html::region(&region, lang)
                    .map_err(|e| err(e.to_string()))?
                    .into_bytes(),
            ),
            Format::Pdf => (
                "pdf",
                pdf::region(&region, lang).map_err(|e| err(e.to_string()))?,
            ),
            _ => (
                "json",
                (serde_json::to_string_pretty(&region).map_err(|e| err(e.to_string()))? + "\n")
                    .into_bytes(),
            ),
        };
        files.push((out.join(format!("region-{month}.{ext}")), body));
    }
    for (path, body) in &files {
        std::fs::write(path, body).map_err(|e| ReportError::Write {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

/// One member's report for one month.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct MemberReport {
    /// The inter-municipal company (`reports.organisation`).
    pub organisation: Option<String>,
    pub member: String,
    pub name: String,
    /// The kommunenummer in force on the first day of the month.
    pub kommunenummer: Option<String>,
    /// Set when the member had merged into another before the month: its
    /// services are reported there.
    pub merged_into: Option<String>,
    /// Members merged into this one by the start of the month.
    pub includes: Vec<String>,
    pub month: String,
    /// RFC 3339, Europe/Oslo.
    pub from: String,
    /// The month's end, or now for the month in progress.
    pub to: String,
    /// The month has closed.
    pub complete: bool,
    /// When its figures were fixed: the freezing of a closed month, else now.
    pub generated: String,
    pub version: String,
    pub services: Vec<ServiceSummary>,
    /// Unplanned outages concerning the member, oldest first.
    pub outages: Vec<OutageView>,
    /// Planned maintenance on the member's targets in the month.
    pub maintenance: Vec<MaintenanceEntry>,
    /// Each day's availability per service (`None`: nothing observed).
    pub daily: Vec<Day>,
    /// The member's links (its own and those its services need): RTT,
    /// loss and peak utilisation over the month.
    #[serde(default)]
    pub links: Vec<LinkFigures>,
}

/// A link's month.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct LinkFigures {
    pub link: String,
    pub name: String,
    /// ICMP echo requests sent over the month, outside planned maintenance.
    pub echoes: u64,
    /// Ratio 0–1 of echoes unanswered (outages included); `None`: none sent.
    pub loss: Option<f64>,
    pub median_rtt_seconds: Option<f64>,
    pub p95_rtt_seconds: Option<f64>,
    /// The highest utilisation towards the far end (the first end's
    /// interface out), averaged over one SNMP poll interval.
    pub peak_out: Option<PeakView>,
    /// The highest utilisation from the far end (first end's interface in).
    pub peak_in: Option<PeakView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct PeakView {
    /// Ratio of the interface's ifHighSpeed (may exceed 1 if that
    /// understates the link).
    pub utilisation: f64,
    pub bits_per_second: f64,
    /// RFC 3339, Europe/Oslo: the poll that saw it.
    pub at: String,
}

impl LinkFigures {
    /// The cells of a links table, formatted for `lang`: name, median RTT,
    /// 95th percentile RTT, loss, peak out, peak in.
    pub fn cells(&self, lang: locale::Lang) -> [String; 6] {
        let none = || "–".to_string();
        let rtt = |s: Option<f64>| s.map_or_else(none, |s| lang.milliseconds(s));
        let peak = |p: &Option<PeakView>| {
            p.as_ref().map_or_else(none, |p| {
                format!(
                    "{} ({})",
                    lang.percent(p.utilisation, 1),
                    lang.bit_rate(p.bits_per_second)
                )
            })
        };
        [
            self.name.clone(),
            rtt(self.median_rtt_seconds),
            rtt(self.p95_rtt_seconds),
            self.loss.map_or_else(none, |l| lang.percent(l, 3)),
            peak(&self.peak_out),
            peak(&self.peak_in),
        ]
    }
}

/// The month of each link among `targets`, from the figures the agent kept
/// per day (every run's).
fn link_figures(
    store: &Store,
    inv: &Inventory,
    targets: &BTreeSet<&str>,
    month: Interval,
) -> Result<Vec<LinkFigures>, ReportError> {
    let links: Vec<&crate::inventory::Target> = inv
        .targets
        .iter()
        .filter(|t| t.kind == crate::inventory::TargetKind::Link && targets.contains(t.id.as_str()))
        .collect();
    let ids: Vec<&str> = links.iter().map(|t| t.id.as_str()).collect();
    let mut sums: std::collections::HashMap<String, LinkStats> = Default::default();
    for (target, day_ms, data) in store.link_days(&ids, month.start, month.end)? {
        if !sums.entry(target.clone()).or_default().add_json(&data) {
            tracing::warn!(link = %target, day_ms, "a link's day in the ledger cannot be read; left out");
        }
    }
    let peak = |p: Option<crate::linkstats::Peak>| {
        p.map(|p| PeakView {
            utilisation: p.ratio,
            bits_per_second: p.bps,
            at: oslo_rfc3339(p.at_ms),
        })
    };
    Ok(links
        .into_iter()
        .map(|t| {
            let s = sums
                .get(&t.id)
                .map(LinkStats::summary)
                .unwrap_or_else(|| LinkStats::default().summary());
            LinkFigures {
                link: t.id.clone(),
                name: t.name.clone(),
                echoes: s.sent,
                loss: s.loss,
                median_rtt_seconds: s.median_rtt_seconds,
                p95_rtt_seconds: s.p95_rtt_seconds,
                peak_out: peak(s.peak_out),
                peak_in: peak(s.peak_in),
            }
        })
        .collect())
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ServiceSummary {
    pub service: String,
    pub name: String,
    /// Ratio 0–1; `None` when no service level was in force.
    pub objective: Option<f64>,
    /// `None`: no data (nothing observed), never 100 %.
    pub availability: Option<f64>,
    pub met: Option<bool>,
    /// Why `met` is `None`: `no_data` or `coverage_below_minimum`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown: Option<crate::sla::service::Unknown>,
    pub downtime_seconds: f64,
    pub maintenance_seconds: f64,
    /// Scheduled time not counted because the service could not be
    /// observed behind a failed parent (`unreachable: excluded`).
    #[serde(default)]
    pub excluded_seconds: f64,
    pub coverage: Option<f64>,
    /// The coverage a verdict needs (ratio 0–1).
    #[serde(default)]
    pub min_coverage: Option<f64>,
    pub outages: usize,
    /// 1 − downtime ÷ allowed downtime; negative once overspent.
    #[serde(default)]
    pub error_budget_remaining: Option<f64>,
    #[serde(default)]
    pub mean_time_to_recover_seconds: Option<f64>,
    /// The hours the objective counts in.
    #[serde(default)]
    pub schedule: Option<crate::time::schedule::Schedule>,
    /// The twelve months before this one, oldest first, from their frozen
    /// results (a month with none has no figures). Member reports only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<MonthFigure>,
    /// The figures are the month's frozen results.
    pub frozen: bool,
}

/// A past month of a service, as frozen when it closed.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct MonthFigure {
    /// `YYYY-MM`.
    pub month: String,
    /// `None`: no frozen result, or nothing observed.
    pub availability: Option<f64>,
    pub met: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown: Option<crate::sla::service::Unknown>,
    pub objective: Option<f64>,
}

pub use crate::sla::HISTORY_MONTHS;

/// The [`HISTORY_MONTHS`] before `month` of `svc`, oldest first.
fn history(
    store: &Store,
    svc: &crate::inventory::Service,
    month: Month,
) -> Result<Vec<MonthFigure>, ReportError> {
    let mut out = Vec::with_capacity(HISTORY_MONTHS);
    let mut m = month;
    for _ in 0..HISTORY_MONTHS {
        m = m.prev();
        let r = crate::sla::frozen_month(store, svc, m)?;
        let f = r.as_ref().map(|(_, _, f)| f);
        out.push(MonthFigure {
            month: m.to_string(),
            availability: f.and_then(|f| f.availability),
            met: f.and_then(|f| f.met),
            unknown: f.and_then(|f| f.unknown),
            objective: f.map(|f| f.objective),
        });
    }
    out.reverse();
    Ok(out)
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct MaintenanceEntry {
    pub window: i64,
    pub category: String,
    pub note: Option<String>,
    pub start: String,
    pub end: String,
    pub duration_seconds: f64,
    /// The member's targets it covered.
    pub targets: Vec<String>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Day {
    /// `YYYY-MM-DD`, Europe/Oslo.
    pub date: String,
    pub services: Vec<DayFigure>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct DayFigure {
    pub service: String,
    /// `None`: nothing observed that day.
    pub availability: Option<f64>,
}

/// Kind of a frozen member report in the ledger's monthly results.
pub const FROZEN_MEMBER_REPORT: &str = "member-report";
/// Kind of a frozen regional overview (id `region`).
pub const FROZEN_REGION_REPORT: &str = "region-report";

/// A report kept when its month closed, if there is one.
fn frozen_report<T: serde::de::DeserializeOwned>(
    store: Option<&Store>,
    kind: &str,
    id: &str,
    month: Month,
) -> Result<Option<T>, ReportError> {
    let Some(json) = store
        .map(|s| s.frozen(kind, id, &month.to_string()))
        .transpose()?
        .flatten()
    else {
        return Ok(None);
    };
    match serde_json::from_str(&json) {
        Ok(r) => Ok(Some(r)),
        Err(e) => {
            tracing::warn!(kind, id, month = %month, "frozen report cannot be read ({e}); making it again");
            Ok(None)
        }
    }
}

/// The reports of a closed month to keep as they are (every member's and
/// the regional overview), once the month's service results are frozen:
/// later config changes (a new SLA, a renamed service, a merge) do not
/// change a report already sent. Records for the writer; empty until then.
pub fn freeze_reports(
    store: &Store,
    inv: &Inventory,
    month: Month,
    now_ms: i64,
) -> Result<Vec<crate::ledger::Record>, ReportError> {
    let Some(w) = month.window() else {
        return Ok(Vec::new());
    };
    let Some(first_day) = month.start().map(|s| s.date_naive()) else {
        return Ok(Vec::new());
    };
    if now_ms < w.end + crate::sla::FREEZE_AFTER_MS {
        return Ok(Vec::new());
    }
    // Nothing to keep for a month over before the ledger began, or for a
    // config without members.
    if inv.members.is_empty() || store.first_run_start()?.is_none_or(|first| first >= w.end) {
        return Ok(Vec::new());
    }
    let m = month.to_string();
    // The services' own results first (the SLA task freezes them).
    for svc in inv
        .services
        .iter()
        .filter(|s| s.level_on(first_day).is_some())
    {
        if store.frozen(FROZEN_SERVICE, &svc.id, &m)?.is_none() {
            return Ok(Vec::new());
        }
    }
    let mut out = Vec::new();
    for member in &inv.members {
        if store
            .frozen(FROZEN_MEMBER_REPORT, &member.id, &m)?
            .is_some()
        {
            continue;
        }
        let r = member_report(Some(store), inv, &member.id, month, None, now_ms)?;
        out.push(crate::ledger::Record::Frozen {
            kind: FROZEN_MEMBER_REPORT.to_string(),
            id: member.id.clone(),
            month: m.clone(),
            result: json(&r)?,
        });
    }
    if store.frozen(FROZEN_REGION_REPORT, "region", &m)?.is_none() {
        let r = region::region_report(Some(store), inv, month, None, now_ms)?;
        out.push(crate::ledger::Record::Frozen {
            kind: FROZEN_REGION_REPORT.to_string(),
            id: "region".to_string(),
            month: m,
            result: json(&r)?,
        });
    }
    Ok(out)
}

/// How long after a month's end the region's results wait for agents
/// whose records of it are not all copied yet (cut off from the server,
/// or killed and not started again); then they are frozen without them.
pub const SETTLE_MS: i64 = 2 * 86_400_000;

/// Freeze the region's results of a closed month in the shared record,
/// as each agent freezes its own (services, then every member's report
/// and the overview): once [`crate::sla::FREEZE_AFTER_MS`] has passed and
/// every agent that ran in the month has its records of it copied (or
/// [`SETTLE_MS`] has passed). Any agent may do it; the first result kept
/// stands, and all compute the same. `None` while it is too early; else
/// how many results this call kept (0: they were kept already).
pub fn freeze_shared(
    reader: &mut crate::ledger::shared::Reader,
    inv: &Inventory,
    month: Month,
    now_ms: i64,
) -> Result<Option<u64>, ReportError> {
    let Some(w) = month.window() else {
        return Ok(None);
    };
    let m = month.to_string();
    if now_ms < w.end + crate::sla::FREEZE_AFTER_MS {
        return Ok(None);
    }
    if reader.has_frozen(FROZEN_REGION_REPORT, "region", &m)? {
        return Ok(Some(0));
    }
    let late = reader.unsettled(w.start, w.end)?;
    if !late.is_empty() {
        if now_ms < w.end + SETTLE_MS {
            return Ok(None);
        }
        tracing::warn!(
            month = %m,
            agents = ?late,
            "freezing the region's month without all of these agents' records (not copied through its end two days on)"
        );
    }
    let mut store = crate::sla::vantage::materialise(reader, inv, w, None)?;
    let mut rows: Vec<crate::ledger::store::FrozenRow> = Vec::new();
    for svc in &inv.services {
        if let Some(result) = crate::sla::freeze_month(&store, svc, month, now_ms)? {
            let row = (
                FROZEN_SERVICE.to_string(),
                svc.id.clone(),
                m.clone(),
                now_ms,
                result,
            );
            store.keep_frozen(&row)?;
            rows.push(row);
        }
    }
    for r in freeze_reports(&store, inv, month, now_ms)? {
        if let crate::ledger::Record::Frozen {
            kind,
            id,
            month,
            result,
        } = r
        {
            rows.push((kind, id, month, now_ms, result));
        }
    }
    Ok(Some(reader.keep_frozen(&rows)?))
}

fn json<T: Serialize>(v: &T) -> Result<String, ReportError> {
    serde_json::to_string(v).map_err(|e| ReportError::Write {
        path: std::path::PathBuf::from("ledger"),
        reason: e.to_string(),
    })
}

/// The report of `member` for `month`, as of `now_ms`: as it was frozen,
/// for a closed month whose reports were kept.
pub fn member_report(
    store: Option<&Store>,
    inv: &Inventory,
    member: &str,
    month: Month,
    current_run: Option<i64>,
    now_ms: i64,
) -> Result<MemberReport, ReportError> {
    let bad = || ReportError::BadMonth(month.to_string());
    let full = month.window().ok_or_else(bad)?;
    let first_day = month.start().ok_or_else(bad)?.date_naive();
    if full.start >= now_ms {
        return Err(ReportError::FutureMonth(month.to_string()));
    }
    if let Some(mut r) = frozen_report::<MemberReport>(store, FROZEN_MEMBER_REPORT, member, month)?
    {
        r.outages.iter_mut().for_each(OutageView::read_back);
        if let Some(store) = store {
            outages::annotate(store, &mut r.outages)?;
        }
        return Ok(r);
    }
    let on = inv
        .member_on(member, first_day)
        .ok_or_else(|| ReportError::UnknownMember(member.to_string()))?;
    let window = Interval::new(full.start, full.end.min(now_ms));
    let mut services = Vec::new();
    let mut frozen = Vec::new();
    for svc in &on.services {
        let (mut summary, frozen_at) = service_summary(store, svc, month, current_run, now_ms)?;
        if let Some(store) = store {
            summary.history = history(store, svc, month)?;
        }
        services.push(summary);
        frozen.push(frozen_at);
    }
    let ids: Vec<&str> = on.ids().collect();
    // The member's own targets and those its services need.
    let mut targets: BTreeSet<&str> = inv
        .targets
        .iter()
        .filter(|t| {
            t.member.as_deref().is_some_and(|m| ids.contains(&m))
                || t.serves.iter().any(|m| ids.contains(&m.as_str()))
        })
        .map(|t| t.id.as_str())
        .collect();
    for svc in &on.services {
        targets.extend(
            svc.targets
                .iter()
                .chain(svc.redundancy.iter().flatten())
                .map(String::as_str),
        );
    }
    let (outages, maintenance, daily, links) = match (store, on.merged_into.is_some()) {
        (Some(store), false) => {
            let mut outages: Vec<OutageView> = Vec::new();
            let mut seen: std::collections::HashSet<(String, i64)> = Default::default();
            for id in &ids {
                for o in outages::list(Some(store), inv, window, Some(id), current_run, now_ms)? {
                    // A member and those merged into it share outages.
                    if !o.outage.planned
                        && seen.insert((o.outage.target.clone(), o.outage.start_ms))
                    {
                        outages.push(o);
                    }
                }
            }
            outages.sort_by(|a, b| {
                (a.outage.start_ms, &a.outage.target).cmp(&(b.outage.start_ms, &b.outage.target))
            });
            let windows = store.maintenance_windows()?;
            let maintenance = maintenance_entries(&windows, &targets, window);
            let daily = daily(store, &on.services, month, window, current_run, now_ms)?;
            let links = link_figures(store, inv, &targets, full)?;
            (outages, maintenance, daily, links)
        }
        _ => (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
    };
    let complete = full.end <= now_ms;
    let generated = generated_at(complete, &frozen, now_ms);
    Ok(MemberReport {
        organisation: inv.reports.organisation.clone(),
        member: on.member.id.clone(),
        name: on.member.name.clone(),
        kommunenummer: on.member.kommunenummer_on(first_day).map(str::to_string),
        merged_into: on.merged_into.clone(),
        includes: on.includes.clone(),
        month: month.to_string(),
        from: oslo_rfc3339(window.start),
        to: oslo_rfc3339(window.end),
        complete,
        generated: oslo_rfc3339(generated),
        version: env!("CARGO_PKG_VERSION").to_string(),
        services,
        outages,
        maintenance,
        daily,
        links,
    })
}

/// At most this many outages are listed in the PDF and HTML: the longest,
/// in time order. JSON and CSV have them all.
pub const LISTED_OUTAGES: usize = 100;

impl MemberReport {
    /// The outages the PDF and HTML list, and the number and total seconds
    /// of those they leave to the CSV and JSON.
    pub fn listed_outages(&self) -> (Vec<OutageView>, usize, f64) {
        if self.outages.len() <= LISTED_OUTAGES {
            return (self.outages.clone(), 0, 0.0);
        }
        let mut by_length: Vec<&OutageView> = self.outages.iter().collect();
        by_length.sort_by(|a, b| b.duration_seconds.total_cmp(&a.duration_seconds));
        let rest = &by_length[LISTED_OUTAGES..];
        let left = (rest.len(), rest.iter().map(|o| o.duration_seconds).sum());
        let mut listed: Vec<OutageView> = by_length[..LISTED_OUTAGES]
            .iter()
            .map(|o| (*o).clone())
            .collect();
        listed.sort_by_key(|o| o.outage.start_ms);
        (listed, left.0, left.1)
    }

    /// A service's name as the report shows it (its id if not among the
    /// member's services).
    pub fn service_name(&self, id: &str) -> String {
        self.services
            .iter()
            .find(|s| s.service == id)
            .map_or(id.to_string(), |s| s.name.clone())
    }
}

/// A service's month for a report, and when it was frozen (if it was).
pub fn service_summary(
    store: Option<&Store>,
    svc: &crate::inventory::Service,
    month: Month,
    current_run: Option<i64>,
    now_ms: i64,
) -> Result<(ServiceSummary, Option<i64>), ReportError> {
    let (r, frozen) = crate::sla::service_month_frozen(store, svc, month, current_run, now_ms)?;
    let frozen_at = match (frozen, store) {
        (true, Some(s)) => s.frozen_at(FROZEN_SERVICE, &svc.id, &month.to_string())?,
        _ => None,
    };
    let f = r.as_ref().map(|(_, _, f)| f);
    Ok((
        ServiceSummary {
            service: svc.id.clone(),
            name: svc.name.clone(),
            objective: f.map(|f| f.objective),
            availability: f.and_then(|f| f.availability),
            met: f.and_then(|f| f.met),
            unknown: f.and_then(|f| f.unknown),
            downtime_seconds: f.map_or(0.0, |f| f.downtime_seconds),
            maintenance_seconds: f.map_or(0.0, |f| f.maintenance_seconds),
            excluded_seconds: f.map_or(0.0, |f| f.excluded_seconds),
            coverage: f.and_then(|f| f.coverage),
            min_coverage: f.and_then(|f| f.min_coverage),
            outages: f.map_or(0, |f| f.outages),
            error_budget_remaining: f.and_then(|f| f.error_budget_remaining),
            mean_time_to_recover_seconds: f.and_then(|f| f.mean_time_to_recover_seconds),
            schedule: r.as_ref().map(|(level, _, _)| level.schedule.clone()),
            history: Vec::new(),
            frozen,
        },
        frozen_at,
    ))
}

/// When a report's figures were fixed: for a closed month whose every
/// service is frozen, the latest freezing (so the same ledger gives the
/// same report); otherwise now.
fn generated_at(complete: bool, frozen: &[Option<i64>], now_ms: i64) -> i64 {
    let all: Option<Vec<i64>> = frozen.iter().copied().collect();
    match all {
        Some(v) if complete && !v.is_empty() => v.into_iter().max().unwrap_or(now_ms),
        _ => now_ms,
    }
}

/// Each occurrence of a window covering one of `targets` in `over`.
fn maintenance_entries(
    windows: &[Window],
    targets: &BTreeSet<&str>,
    over: Interval,
) -> Vec<MaintenanceEntry> {
    let mut out: Vec<(i64, MaintenanceEntry)> = Vec::new();
    for w in windows {
        let mine: Vec<String> = w
            .spec
            .targets
            .iter()
            .filter(|t| targets.contains(t.as_str()))
            .cloned()
            .collect();
        if mine.is_empty() {
            continue;
        }
        for span in w.effective(over).spans() {
            out.push((
                span.start,
                MaintenanceEntry {
                    window: w.id,
                    category: w.spec.category.as_str().to_string(),
                    note: w.spec.note.clone(),
                    start: oslo_rfc3339(span.start),
                    end: oslo_rfc3339(span.end),
                    duration_seconds: span.len() as f64 / 1e3,
                    targets: mine.clone(),
                },
            ));
        }
    }
    out.sort_by_key(|(start, e)| (*start, e.window));
    out.into_iter().map(|(_, e)| e).collect()
}

/// Each day's availability of each service, by the level of the month.
fn daily(
    store: &Store,
    services: &[&crate::inventory::Service],
    month: Month,
    window: Interval,
    current_run: Option<i64>,
    now_ms: i64,
) -> Result<Vec<Day>, LedgerError> {
    let first_day = month.start().map(|s| s.date_naive());
    let mut out = Vec::new();
    for (date, day) in rollup::days(window) {
        let piece = day.intersect(&window);
        if piece.is_empty() {
            continue;
        }
        let mut row = Vec::new();
        for svc in services {
            let level = first_day.and_then(|d| svc.level_on(d));
            let availability = match level {
                Some(level) => {
                    rollup::service_tally(store, svc, level, piece, current_run, now_ms)?
                        .figures(level)
                        .availability
                }
                None => None,
            };
            row.push(DayFigure {
                service: svc.id.clone(),
                availability,
            });
        }
        out.push(Day {
            date: date.format("%Y-%m-%d").to_string(),
            services: row,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sla::rollup::tests::ledger;
    use crate::time::calendar::oslo_ms as ms;

    fn report(store: &Store, inv: &Inventory, member: &str, month: &str) -> MemberReport {
        let now = ms(2026, 11, 2, 12, 0);
        member_report(
            Some(store),
            inv,
            member,
            Month::parse(month).unwrap(),
            None,
            now,
        )
        .unwrap()
    }

    #[test]
    fn links_sum_up_every_runs_days_of_the_month() {
        let dir = tempfile::tempdir().unwrap();
        let (store, inv, _) = ledger(dir.path());
        let oct = report(&store, &inv, "a", "2026-10");
        let [la] = &oct.links[..] else {
            panic!("{:?}", oct.links)
        };
        // 12 October twice in run 1 (the second replaced the first: its
        // 90 % peak is gone) and once in run 2, plus 31 October.
        assert_eq!(la.echoes, 20);
        assert_eq!(la.loss, Some(0.05));
        let out = la.peak_out.as_ref().unwrap();
        assert_eq!(
            (out.utilisation, out.at.as_str()),
            (0.634, "2026-10-31T12:00:00.000+01:00")
        );
        assert!((la.median_rtt_seconds.unwrap() - 0.004).abs() < 0.00005);
        // November has only its own first day; and since c merged into
        // a, c's link l1 (its web service's) is a's too.
        let nov = report(&store, &inv, "a", "2026-11");
        let ids: Vec<&str> = nov.links.iter().map(|l| l.link.as_str()).collect();
        assert_eq!(ids, ["l1", "la"]);
        assert_eq!(nov.links[1].echoes, 1);
        assert!((nov.links[1].median_rtt_seconds.unwrap() - 0.8).abs() < 0.008);
        // Links with nothing kept: listed, without figures.
        let b = report(&store, &inv, "b", "2026-10");
        let ids: Vec<&str> = b.links.iter().map(|l| l.link.as_str()).collect();
        assert_eq!(ids, ["l1", "l2"]);
        assert_eq!(
            (
                b.links[0].echoes,
                b.links[0].loss,
                b.links[0].peak_in.as_ref()
            ),
            (0, None, None)
        );
        assert!(b.links[0].cells(locale::Lang::Nb)[1..]
            .iter()
            .all(|c| c == "–"));
    }

    #[test]
    fn a_members_month_as_json_and_csv() {
        let dir = tempfile::tempdir().unwrap();
        let (store, inv, _) = ledger(dir.path());
        let oct = report(&store, &inv, "a", "2026-10");
        assert_eq!(oct.kommunenummer.as_deref(), Some("3301"));
        assert_eq!(oct.organisation.as_deref(), Some("Testregionen IKT"));
        // October has 31 days, one of them 25 hours long.
        assert_eq!(oct.daily.len(), 31);
        let one = std::slice::from_ref(&oct);
        let services_nb = csv::services(one, Lang::Nb).unwrap();
        let outages_nb = csv::outages(one, Lang::Nb).unwrap();
        let services_en = csv::services(one, Lang::En).unwrap();
        insta::assert_json_snapshot!("a-2026-10", oct, { ".version" => "[version]" });
        insta::assert_snapshot!("a-2026-10-services-nb", services_nb);
        insta::assert_snapshot!("a-2026-10-outages-nb", outages_nb);
        insta::assert_snapshot!("a-2026-10-services-en", services_en);
    }

    /// Run headless Chromium on `page` with `args`, offline (no network
    /// namespace of its own is needed: the page has nothing to fetch).
    fn chromium(page: &std::path::Path, args: &[&str]) -> std::process::Output {
        let profile = tempfile::tempdir().unwrap();
        std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(args)
            .arg(format!("file://{}", page.display()))
            .output()
            .unwrap_or_else(|e| panic!("chromium is needed (scripts/test installs it): {e}"))
    }

    #[test]
    fn chromium_draws_the_html_report_with_its_figures() {
        let dir = tempfile::tempdir().unwrap();
        let (store, inv, _) = ledger(dir.path());
        let oct = report(&store, &inv, "a", "2026-10");
        let page = dir.path().join("a-2026-10-nb.html");
        std::fs::write(&page, html::member(&oct, Lang::Nb).unwrap()).unwrap();
        // The DOM as the browser built it: the chart is SVG, not text.
        let dom = chromium(&page, &["--dump-dom"]);
        assert!(
            dom.status.success(),
            "{}",
            String::from_utf8_lossy(&dom.stderr)
        );
        let dom = String::from_utf8_lossy(&dom.stdout);
        assert!(dom.contains("<svg"), "{dom}");
        assert!(dom.matches("<rect").count() >= 31, "a bar per day: {dom}");
        // Printed, as a manager would: the figures are on the page.
        let pdf = dir.path().join("printed.pdf");
        let out = chromium(
            &page,
            &[
                "--no-pdf-header-footer",
                &format!("--print-to-pdf={}", pdf.display()),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed = std::fs::read(&pdf).unwrap();
        let text = pdf::tests::poppler("pdftotext", &["-layout"], &printed);
        for want in [
            "Tilgjengelighetsrapport: Aby kommune",
            "99,96",
            "Oppfylt",
            "25. okt. 2026",
            "Planlagt vedlikehold",
            "4,0 ms",
            "63,4 % (634 Mbit/s)",
        ] {
            assert!(
                text.contains(want),
                "{want:?} not in Chromium's print:\n{text}"
            );
        }
    }

    #[test]
    fn html_is_one_self_contained_file_in_either_language() {
        let dir = tempfile::tempdir().unwrap();
        let (store, inv, _) = ledger(dir.path());
        let oct = report(&store, &inv, "a", "2026-10");
        let nb = html::member(&oct, Lang::Nb).unwrap();
        let en = html::member(&oct, Lang::En).unwrap();
        if let Some(out) = std::env::var_os("UTKIKK_REPORT_HTML_OUT") {
            std::fs::write(std::path::Path::new(&out).join("a-2026-10-nb.html"), &nb).unwrap();
            std::fs::write(std::path::Path::new(&out).join("a-2026-10-en.html"), &en).unwrap();
        }
        for page in [&nb, &en] {
            assert!(!page.contains("<script") && !page.contains("<link"));
            assert!(!page.contains("src=\"") && !page.contains("url("));
            assert_eq!(page.matches("<svg").count(), 1, "one chart per service");
        }
        assert!(nb.contains("<html lang=\"nb\">"));
        assert!(nb.contains("Tilgjengelighetsrapport: Aby kommune"));
        assert!(nb.contains("oktober 2026"));
        assert!(nb.contains("99,96\u{a0}%"), "availability in bokmål");
        assert!(nb.contains("25. okt. 2026 kl. 02:40"));
        assert!(nb.contains("Planlagt endring") && nb.contains("OS-oppgradering"));
        assert!(en.contains("99.96%") && en.contains("25 Oct 2026 02:40"));
        // Text from the ledger and config is escaped.
        let mut odd = oct.clone();
        odd.name = "<b>Aby</b> & co".into();
        let page = html::member(&odd, Lang::En).unwrap();
        assert!(
            page.contains("&lt;b&gt;Aby&lt;&#x2f;b&gt; &amp; co")
                || page.contains("&lt;b&gt;Aby&lt;/b&gt; &amp; co"),
            "{page}"
        );
        insta::assert_snapshot!("a-2026-10-html-nb", nb);
    }

    #[test]
    fn the_regional_overview_is_members_by_services() {
        let dir = tempfile::tempdir().unwrap();
        let (store, inv, _) = ledger(dir.path());
        let now = ms(2026, 11, 2, 12, 0);
        let oct = Month::parse("2026-10").unwrap();
        let r = region::region_report(Some(&store), &inv, oct, None, now).unwrap();
        let cols: Vec<&str> = r.services.iter().map(|c| c.service.as_str()).collect();
        assert_eq!(cols, ["files", "net", "c-web"]);
        let rows: Vec<&str> = r.members.iter().map(|m| m.member.as_str()).collect();
        assert_eq!(rows, ["a", "b", "c"]);
        let served =
            |m: usize| -> Vec<bool> { r.members[m].cells.iter().map(Option::is_some).collect() };
        assert_eq!(served(0), [true, false, false]);
        assert_eq!(served(2), [false, false, true]);
        // Longest first: the link pair's 13.5 hours, then the core's 1.5.
        let worst: Vec<f64> = r.worst_outages.iter().map(|o| o.duration_seconds).collect();
        assert_eq!(worst[..2], [48600.0, 5400.0]);
        assert!(r.worst_outages.iter().all(|o| !o.outage.planned));
        // After the merge, c is a row no more; its service is a's.
        let nov = Month::parse("2026-11").unwrap();
        let r = region::region_report(Some(&store), &inv, nov, None, now).unwrap();
        assert_eq!(r.members.len(), 2);
        assert_eq!(
            r.members[0]
                .cells
                .iter()
                .map(Option::is_some)
                .collect::<Vec<_>>(),
            [true, false, true]
        );
        let page = html::region(&r, Lang::Nb).unwrap();
        assert!(page.contains("Tilgjengelighet i regionen") && page.contains("Aby kommune"));
        let oct_page = html::region(
            &region::region_report(Some(&store), &inv, oct, None, now).unwrap(),
            Lang::Nb,
        )
        .unwrap();
        if let Some(out) = std::env::var_os("UTKIKK_REPORT_HTML_OUT") {
            std::fs::write(
                std::path::Path::new(&out).join("region-2026-10-nb.html"),
                &oct_page,
            )
            .unwrap();
        }
        insta::assert_snapshot!("region-2026-10-html-nb", oct_page);
    }

    #[test]
    fn a_report_sent_stays_as_it_was_after_config_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, mut inv, run) = ledger(dir.path());
        let oct = Month::parse("2026-10").unwrap();
        let now = ms(2026, 11, 2, 12, 0);
        // Not before the services' months are frozen.
        assert!(freeze_reports(&store, &inv, oct, now).unwrap().is_empty());
        let services: Vec<crate::ledger::Record> = inv
            .services
            .iter()
            .filter_map(|s| {
                let result = crate::sla::freeze_month(&store, s, oct, now).unwrap()?;
                Some(crate::ledger::Record::Frozen {
                    kind: FROZEN_SERVICE.into(),
                    id: s.id.clone(),
                    month: "2026-10".into(),
                    result,
                })
            })
            .collect();
        store.write(run, &services, now).unwrap();
        let reports = freeze_reports(&store, &inv, oct, now).unwrap();
        assert_eq!(reports.len(), 4, "three members and the region");
        store.write(run, &reports, now).unwrap();
        assert!(freeze_reports(&store, &inv, oct, now).unwrap().is_empty());
        let before = report(&store, &inv, "a", "2026-10");
        assert!(before.services.iter().all(|s| s.frozen));
        let region_before = region::region_report(Some(&store), &inv, oct, None, now).unwrap();
        // A renamed member, a renamed service with another objective, a
        // service gone, a member merged away.
        inv.members[0].name = "Aby og Cedal kommune".into();
        inv.services[0].name = "Fil og utskrift".into();
        inv.services[0].levels[0].objective = 0.9999;
        inv.services.retain(|s| s.id != "net");
        let later = ms(2026, 12, 5, 12, 0);
        let after = member_report(Some(&store), &inv, "a", oct, None, later).unwrap();
        let json = |r: &MemberReport| serde_json::to_string(r).unwrap();
        assert_eq!(json(&before), json(&after));
        // Read back, the outages keep their instants (the forms use them).
        assert_eq!(after.outages[0].outage.start_ms, ms(2026, 10, 5, 23, 30));
        assert_eq!(
            html::member(&before, Lang::Nb).unwrap(),
            html::member(&after, Lang::Nb).unwrap()
        );
        let region_after = region::region_report(Some(&store), &inv, oct, None, later).unwrap();
        assert_eq!(
            serde_json::to_string(&region_before).unwrap(),
            serde_json::to_string(&region_after).unwrap()
        );
        // November is not closed: it follows the config.
        let nov = report(&store, &inv, "a", "2026-11");
        assert_eq!(nov.name, "Aby og Cedal kommune");

        // A note written after the month was frozen shows in its report
        // (words, not figures), on the outage it names and on no other.
        let note = |target: &str, start_ms, end_ms, note: Option<&str>| crate::ledger::OutageNote {
            target: target.into(),
            start_ms,
            end_ms,
            note: note.map(str::to_string),
        };
        store
            .set_outage_note(
                &note(
                    "srv",
                    ms(2026, 10, 31, 23, 50),
                    Some(ms(2026, 11, 1, 0, 10)),
                    Some("Strømbrudd; UPS-batteri byttet"),
                ),
                later,
            )
            .unwrap();
        store
            .set_outage_note(
                &note(
                    "core",
                    ms(2026, 10, 5, 23, 30),
                    Some(ms(2026, 10, 6, 1, 0)),
                    Some("Fiber kuttet ved graving"),
                ),
                later,
            )
            .unwrap();
        let noted = member_report(Some(&store), &inv, "a", oct, None, later).unwrap();
        let notes: Vec<(&str, Option<&str>)> = noted
            .outages
            .iter()
            .map(|o| (o.start.as_str(), o.note.as_deref()))
            .collect();
        assert_eq!(
            notes,
            [
                (
                    "2026-10-05T23:30:00.000+02:00",
                    Some("Fiber kuttet ved graving")
                ),
                ("2026-10-25T02:40:00.000+02:00", None),
                (
                    "2026-10-31T23:50:00.000+01:00",
                    Some("Strømbrudd; UPS-batteri byttet")
                ),
            ]
        );
        assert!(html::member(&noted, Lang::Nb)
            .unwrap()
            .contains("<td>Fiber kuttet ved graving</td>"));
        assert!(csv::outages(std::slice::from_ref(&noted), Lang::Nb)
            .unwrap()
            .contains(";Fiber kuttet ved graving"));
        let region_noted = region::region_report(Some(&store), &inv, oct, None, later).unwrap();
        assert!(region_noted.worst_outages.iter().any(|o| o.note.is_some()));
        // The figures stay as sent.
        let figures = |r: &MemberReport| serde_json::to_string(&r.services).unwrap();
        assert_eq!(figures(&noted), figures(&before));
        // The outage across the month's end carries its note into
        // November, where it is cut at the month's start.
        let nov = report(&store, &inv, "a", "2026-11");
        let first = &nov.outages[0];
        assert!(first.outage.continues_before, "{first:?}");
        assert_eq!(
            first.note.as_deref(),
            Some("Strømbrudd; UPS-batteri byttet")
        );
        // Removed: gone from the frozen report too.
        store
            .set_outage_note(&note("core", ms(2026, 10, 5, 23, 30), None, None), later)
            .unwrap();
        let removed = member_report(Some(&store), &inv, "a", oct, None, later).unwrap();
        assert_eq!(removed.outages[0].note, None);
    }

    #[test]
    fn an_outage_across_the_months_end_is_in_both_reports() {
        let dir = tempfile::tempdir().unwrap();
        let (store, inv, _) = ledger(dir.path());
        let last = |r: &MemberReport| r.outages.last().cloned().unwrap();
        let oct = last(&report(&store, &inv, "a", "2026-10"));
        let nov = report(&store, &inv, "a", "2026-11").outages[0].clone();
        assert_eq!((oct.duration_seconds, nov.duration_seconds), (600.0, 600.0));
        assert!(oct.outage.continues_after && !oct.outage.continues_before);
        assert!(nov.outage.continues_before && !nov.outage.continues_after);
    }

    #[test]
    fn a_merged_member_reports_where_it_belongs_each_month() {
        let dir = tempfile::tempdir().unwrap();
        let (store, inv, _) = ledger(dir.path());
        // Before the merge: c has its own service.
        let c_oct = report(&store, &inv, "c", "2026-10");
        assert_eq!(c_oct.merged_into, None);
        assert_eq!(c_oct.services.len(), 1);
        assert_eq!(c_oct.services[0].service, "c-web");
        let a_oct = report(&store, &inv, "a", "2026-10");
        assert!(a_oct.services.iter().all(|s| s.service != "c-web"));
        // After: c's service is reported with a.
        let c_nov = report(&store, &inv, "c", "2026-11");
        assert_eq!(c_nov.merged_into.as_deref(), Some("a"));
        assert!(c_nov.services.is_empty() && c_nov.outages.is_empty());
        let a_nov = report(&store, &inv, "a", "2026-11");
        assert_eq!(a_nov.includes, vec!["c"]);
        assert!(a_nov.services.iter().any(|s| s.service == "c-web"));
        // --all leaves out members merged away before the month.
        let out = dir.path().join("out");
        let files = write_files(
            Some(&store),
            &inv,
            &Who::All,
            Month::parse("2026-11").unwrap(),
            Format::Json,
            Lang::Nb,
            &out,
            None,
            ms(2026, 11, 2, 12, 0),
        )
        .unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["a-2026-11.json", "b-2026-11.json", "region-2026-11.json"]
        );
    }

    #[test]
    fn no_data_unknown_members_and_future_months() {
        let dir = tempfile::tempdir().unwrap();
        let (store, inv, _) = ledger(dir.path());
        // September: before the first run. No data, never 100 %.
        let sep = report(&store, &inv, "b", "2026-09");
        assert_eq!(sep.services[0].availability, None);
        assert_eq!(sep.services[0].met, None);
        assert_eq!(sep.services[0].coverage, Some(0.0));
        let now = ms(2026, 11, 2, 12, 0);
        let dec = Month::parse("2026-12").unwrap();
        assert!(matches!(
            member_report(Some(&store), &inv, "a", dec, None, now),
            Err(ReportError::FutureMonth(_))
        ));
        let oct = Month::parse("2026-10").unwrap();
        let e = member_report(Some(&store), &inv, "zz", oct, None, now).unwrap_err();
        assert_eq!(e.to_string(), "unknown member \"zz\"");
    }
}
