//! The report as two CSV files for a spreadsheet: one row per service
//! (member, service, month, objective, availability, downtime,
//! maintenance, excluded, coverage, verdict, outages, mean time to
//! restore, error budget left) and one row per unplanned outage.
//!
//! Form: UTF-8 with a byte-order mark (so spreadsheets read æøå right),
//! header row in the report's language. In bokmål the separator is `;` and
//! numbers have a decimal comma, as Norwegian spreadsheets expect; in
//! English the separator is `,` with a decimal point. Ratios are
//! percentages with two decimals (no `%` sign), durations are hours with
//! four decimals, times are RFC 3339 with their Oslo offset. An empty
//! cell is "no data".

use super::locale::{Lang, Text};
use super::MemberReport;

const BOM: &str = "\u{feff}";

fn writer(lang: Lang) -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .delimiter(match lang {
            Lang::Nb => b';',
            Lang::En => b',',
        })
        .from_writer(BOM.as_bytes().to_vec())
}

fn finish(w: csv::Writer<Vec<u8>>) -> Result<String, csv::Error> {
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The services file.
pub fn services(reports: &[MemberReport], lang: Lang) -> Result<String, csv::Error> {
    let t = |x| lang.text(x);
    let pct = |x| format!("{} (%)", t(x));
    let hrs = |x| format!("{} ({})", t(x), t(Text::Hours));
    let mut w = writer(lang);
    w.write_record([
        t(Text::Member),
        t(Text::Service),
        t(Text::Month),
        &pct(Text::Objective),
        &pct(Text::Availability),
        &hrs(Text::Downtime),
        &hrs(Text::Maintenance),
        &hrs(Text::Excluded),
        &pct(Text::Coverage),
        t(Text::Verdict),
        t(Text::OutageCount),
        &hrs(Text::MeanTimeToRestore),
        &pct(Text::ErrorBudget),
    ])?;
    let pct = |x: Option<f64>| x.map_or(String::new(), |r| lang.number(r * 100.0, 2));
    let hours = |s: f64| lang.number(s / 3600.0, 4);
    for r in reports {
        for s in &r.services {
            // Empty only when nothing was observed ("no data").
            let met = match (s.met, s.unknown) {
                (None, None | Some(crate::sla::service::Unknown::NoData)) => "",
                _ => lang.verdict(s.met, s.unknown).0,
            };
            w.write_record([
                r.member.as_str(),
                s.service.as_str(),
                r.month.as_str(),
                &pct(s.objective),
                &pct(s.availability),
                &hours(s.downtime_seconds),
                &hours(s.maintenance_seconds),
                &hours(s.excluded_seconds),
                &pct(s.coverage),
                met,
                &s.outages.to_string(),
                &s.mean_time_to_recover_seconds.map_or(String::new(), hours),
                &pct(s.met.and(s.error_budget_remaining)),
            ])?;
        }
    }
    finish(w)
}

/// The outages file.
pub fn outages(reports: &[MemberReport], lang: Lang) -> Result<String, csv::Error> {
    let t = |x| lang.text(x);
    let mut w = writer(lang);
    w.write_record([
        t(Text::Member),
        t(Text::Start),
        t(Text::End),
        &format!("{} ({})", t(Text::Duration), t(Text::Hours)),
        t(Text::Services),
        t(Text::ExcludedFor),
        t(Text::RootCause),
        t(Text::Reason),
        t(Text::Note),
    ])?;
    for r in reports {
        for o in &r.outages {
            w.write_record([
                r.member.as_str(),
                o.start.as_str(),
                o.end.as_str(),
                &lang.number(o.duration_seconds / 3600.0, 4),
                &o.outage.services.join(" "),
                &o.outage.excluded_services.join(" "),
                o.outage.target.as_str(),
                &lang.reason(o.outage.reason_code.as_deref(), o.outage.reason.as_deref()),
                o.note.as_deref().unwrap_or(""),
            ])?;
        }
    }
    finish(w)
}
