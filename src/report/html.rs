//! The report as one self-contained HTML file: inline CSS, the daily
//! availability charts as inline SVG, no scripts, no external resources.
//! Every number and date is formatted for the report's language before it
//! reaches the template (`member.html`, auto-escaped by minijinja).

use serde::Serialize;

use super::locale::{Lang, Text};
use super::MemberReport;
use crate::time::calendar::Month;

/// The templates: a base page, the member's report, the overview, and the
/// outage table both show.
const TEMPLATES: [(&str, &str); 4] = [
    ("base.html", include_str!("base.html")),
    ("member.html", include_str!("member.html")),
    ("region.html", include_str!("region.html")),
    ("outages.html", include_str!("outages.html")),
];

#[derive(Debug, thiserror::Error)]
#[error("cannot render the report: {0}")]
pub struct RenderError(String);

#[derive(Serialize)]
struct View {
    lang: &'static str,
    t: Labels,
    organisation: Option<String>,
    name: String,
    kommunenummer: Option<String>,
    period: String,
    from: String,
    to: String,
    generated: String,
    version: String,
    merged_into: Option<String>,
    includes: String,
    /// The month in plain words.
    summary: Vec<String>,
    services: Vec<super::cells::ServiceCells>,
    /// Why time was excluded, per service.
    excluded: Vec<String>,
    /// The last twelve months: month names, and per service its cells.
    history: Option<super::cells::History>,
    charts: Vec<Chart>,
    outages: Vec<OutageRow>,
    more_outages: Option<String>,
    maintenance: Vec<MaintenanceRow>,
    /// Formatted cells: name, median, p95, loss, peak out, peak in.
    links: Vec<[String; 6]>,
}

#[derive(Serialize)]
struct OutageRow {
    start: String,
    end: String,
    duration: String,
    services: String,
    root_cause: String,
    reason: String,
    note: String,
    /// The members it hit (the regional overview only).
    members: Option<String>,
}

#[derive(Serialize)]
struct MaintenanceRow {
    start: String,
    end: String,
    duration: String,
    category: String,
    targets: String,
    note: String,
}

#[derive(Serialize)]
struct Chart {
    name: String,
    svg: String,
}

/// The template's texts, in the report's language.
#[derive(Serialize)]
struct Labels {
    title: &'static str,
    municipality: &'static str,
    period: &'static str,
    generated: &'static str,
    merged_into: &'static str,
    includes: &'static str,
    summary: &'static str,
    service: &'static str,
    objective: &'static str,
    availability: &'static str,
    met: &'static str,
    downtime: &'static str,
    maintenance: &'static str,
    coverage: &'static str,
    daily: &'static str,
    outages: &'static str,
    start: &'static str,
    end: &'static str,
    duration: &'static str,
    services: &'static str,
    root_cause: &'static str,
    reason: &'static str,
    category: &'static str,
    targets: &'static str,
    note: &'static str,
    no_services: &'static str,
    no_outages: &'static str,
    no_maintenance: &'static str,
    footnote: &'static str,
    chart_legend: &'static str,
    region_title: &'static str,
    member: &'static str,
    worst: &'static str,
    links: &'static str,
    link: &'static str,
    median_rtt: &'static str,
    p95_rtt: &'static str,
    loss: &'static str,
    peak_out: &'static str,
    peak_in: &'static str,
    links_note: &'static str,
    members: &'static str,
    history: &'static str,
    history_note: &'static str,
    verdict: &'static str,
    in_brief: &'static str,
    budget: &'static str,
    outage_count: &'static str,
    mean_time_to_restore: &'static str,
    error_budget: &'static str,
    excluded: &'static str,
}

impl Labels {
    fn of(lang: Lang) -> Labels {
        let t = |x| lang.text(x);
        Labels {
            title: t(Text::Title),
            municipality: t(Text::Municipality),
            period: t(Text::Period),
            generated: t(Text::Generated),
            merged_into: t(Text::MergedInto),
            includes: t(Text::Includes),
            summary: t(Text::Summary),
            service: t(Text::Service),
            objective: t(Text::Objective),
            availability: t(Text::Availability),
            met: t(Text::Met),
            downtime: t(Text::Downtime),
            maintenance: t(Text::Maintenance),
            coverage: t(Text::Coverage),
            daily: t(Text::Daily),
            outages: t(Text::Outages),
            start: t(Text::Start),
            end: t(Text::End),
            duration: t(Text::Duration),
            services: t(Text::Services),
            root_cause: t(Text::RootCause),
            reason: t(Text::Reason),
            category: t(Text::Category),
            targets: t(Text::Targets),
            note: t(Text::Note),
            no_services: t(Text::NoServices),
            no_outages: t(Text::NoOutages),
            no_maintenance: t(Text::NoMaintenance),
            footnote: t(Text::Footnote),
            chart_legend: t(Text::ChartLegend),
            region_title: t(Text::RegionTitle),
            member: t(Text::Member),
            worst: t(Text::Worst),
            links: t(Text::Links),
            link: t(Text::Link),
            median_rtt: t(Text::MedianRtt),
            p95_rtt: t(Text::P95Rtt),
            loss: t(Text::Loss),
            peak_out: t(Text::PeakOut),
            peak_in: t(Text::PeakIn),
            links_note: t(Text::LinksNote),
            members: t(Text::Members),
            history: t(Text::History),
            history_note: t(Text::HistoryNote),
            verdict: t(Text::Verdict),
            in_brief: t(Text::InBrief),
            budget: t(Text::Budget),
            outage_count: t(Text::OutageCount),
            mean_time_to_restore: t(Text::MeanTimeToRestore),
            error_budget: t(Text::ErrorBudget),
            excluded: t(Text::Excluded),
        }
    }
}

fn ms_of(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).map_or(0, |t| t.timestamp_millis())
}

/// The member's report as HTML.
pub fn member(r: &MemberReport, lang: Lang) -> Result<String, RenderError> {
    let services = r.services.iter().map(|s| s.cells(lang)).collect();
    let (listed, left, left_seconds) = r.listed_outages();
    let outages = outage_rows(&listed, lang, |id| r.service_name(id));
    let more_outages = (left > 0).then(|| lang.more_outages(left, left_seconds));
    let maintenance = r
        .maintenance
        .iter()
        .map(|m| MaintenanceRow {
            start: lang.date_time(ms_of(&m.start)),
            end: lang.date_time(ms_of(&m.end)),
            duration: lang.duration(m.duration_seconds),
            category: lang.category(&m.category).to_string(),
            targets: m.targets.join(", "),
            note: m.note.clone().unwrap_or_default(),
        })
        .collect();
    let floor = chart_floor(r);
    let charts = r
        .services
        .iter()
        .map(|s| Chart {
            name: s.name.clone(),
            svg: chart(r, &s.service, s.objective, floor, lang),
        })
        .collect();
    let month = Month::parse(&r.month);
    let view = View {
        lang: lang.code(),
        t: Labels::of(lang),
        organisation: r.organisation.clone(),
        name: r.name.clone(),
        kommunenummer: r.kommunenummer.clone(),
        period: month.map_or(r.month.clone(), |m| lang.month(m.year, m.month)),
        from: lang.date_time(ms_of(&r.from)),
        to: lang.date_time(ms_of(&r.to)),
        generated: lang.date_time(ms_of(&r.generated)),
        version: r.version.clone(),
        merged_into: r.merged_into.clone(),
        includes: r.includes.join(", "),
        summary: r.summary_sentences(lang),
        services,
        excluded: r.excluded_notes(lang),
        history: super::cells::history_table(r, lang),
        charts,
        outages,
        more_outages,
        maintenance,
        links: r.links.iter().map(|l| l.cells(lang)).collect(),
    };
    render("member.html", &view)
}

fn render(name: &str, view: &impl Serialize) -> Result<String, RenderError> {
    let mut env = minijinja::Environment::new();
    for (n, t) in TEMPLATES {
        env.add_template(n, t)
            .map_err(|e| RenderError(e.to_string()))?;
    }
    env.get_template(name)
        .and_then(|t| t.render(view))
        .map_err(|e| RenderError(e.to_string()))
}

fn outage_rows(
    outages: &[crate::sla::outages::OutageView],
    lang: Lang,
    service_name: impl Fn(&str) -> String,
) -> Vec<OutageRow> {
    outages
        .iter()
        .map(|o| {
            let [start, end, duration, services, root_cause, reason, note] =
                super::cells::outage_cells(o, lang, &service_name);
            OutageRow {
                start,
                end,
                duration,
                services,
                root_cause,
                reason,
                note,
                members: None,
            }
        })
        .collect()
}

#[derive(Serialize)]
struct RegionView {
    lang: &'static str,
    t: Labels,
    organisation: Option<String>,
    period: String,
    from: String,
    to: String,
    generated: String,
    version: String,
    columns: Vec<RegionColumn>,
    rows: Vec<RegionRow>,
    outages: Vec<OutageRow>,
}

#[derive(Serialize)]
struct RegionColumn {
    name: String,
    objective: String,
}

#[derive(Serialize)]
struct RegionRow {
    name: String,
    kommunenummer: Option<String>,
    cells: Vec<super::cells::RegionCell>,
}

/// The regional overview as HTML: the members × services matrix, each
/// cell coloured by whether the objective was met, and the worst outages.
pub fn region(r: &super::region::RegionReport, lang: Lang) -> Result<String, RenderError> {
    let view = RegionView {
        lang: lang.code(),
        t: Labels::of(lang),
        organisation: r.organisation.clone(),
        period: Month::parse(&r.month).map_or(r.month.clone(), |m| lang.month(m.year, m.month)),
        from: lang.date_time(ms_of(&r.from)),
        to: lang.date_time(ms_of(&r.to)),
        generated: lang.date_time(ms_of(&r.generated)),
        version: r.version.clone(),
        columns: r
            .services
            .iter()
            .map(|c| RegionColumn {
                name: c.name.clone(),
                objective: c.objective.map_or(String::new(), |o| lang.percent(o, 2)),
            })
            .collect(),
        rows: r
            .members
            .iter()
            .map(|m| RegionRow {
                name: m.name.clone(),
                kommunenummer: m.kommunenummer.clone(),
                cells: m
                    .cells
                    .iter()
                    .map(|c| super::cells::region_cell(c.as_ref(), lang))
                    .collect(),
            })
            .collect(),
        outages: outage_rows(&r.worst_outages, lang, |id| r.service_name(id))
            .into_iter()
            .zip(&r.worst_outages)
            .map(|(mut row, o)| {
                row.members = Some(super::cells::members_hit(o, |m| r.member_name(m)));
                row
            })
            .collect(),
    };
    render("region.html", &view)
}

/// Escape text for SVG (the template does not see inside it).
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The lower end of every chart of a report: 90 %, or lower in steps of
/// ten when a day or an objective of any service went lower. One scale
/// for all charts, so bars of two services compare at a glance.
pub(crate) fn chart_floor(r: &MemberReport) -> f64 {
    let lowest = r
        .daily
        .iter()
        .flat_map(|d| d.services.iter().filter_map(|f| f.availability))
        .chain(r.services.iter().filter_map(|s| s.objective))
        .fold(1.0_f64, f64::min);
    ((lowest * 10.0).floor() / 10.0).clamp(0.0, 0.9)
}

/// A bar per day: the day's availability on a scale from `floor` (see
/// [`chart_floor`]) to 100 %, green when it meets the objective, red when
/// not; a day with no data is a pale full-height bar (not a stub that a
/// row of would read as a line). A dashed line marks the objective.
pub(crate) fn chart(
    r: &MemberReport,
    service: &str,
    objective: Option<f64>,
    floor: f64,
    lang: Lang,
) -> String {
    let days: Vec<(&str, Option<f64>)> = r
        .daily
        .iter()
        .map(|d| {
            let a = d
                .services
                .iter()
                .find(|f| f.service == service)
                .and_then(|f| f.availability);
            (d.date.as_str(), a)
        })
        .collect();
    let (w, h, left, bottom, top) = (640.0, 150.0, 48.0, 22.0, 8.0);
    let plot_h = h - bottom - top;
    let n = days.len().max(1) as f64;
    let slot = (w - left - 4.0) / n;
    let y = |v: f64| top + plot_h * (1.0 - ((v - floor) / (1.0 - floor)).clamp(0.0, 1.0));
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"100%\" role=\"img\" aria-label=\"{}\">",
        esc(&format!("{}: {}", lang.text(Text::Daily), service))
    );
    for v in [floor, (floor + 1.0) / 2.0, 1.0] {
        s += &format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#d5dbe1\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\" fill=\"#5b6773\">{}</text>",
            w - 4.0,
            left - 4.0,
            y(v) + 3.0,
            esc(&lang.percent(v, 0)),
            y = y(v)
        );
    }
    for (i, (date, a)) in days.iter().enumerate() {
        let x = left + slot * i as f64 + slot * 0.15;
        let bw = slot * 0.7;
        let (fill, top_y, label, stroke) = match a {
            Some(v) => (
                if objective.is_some_and(|o| *v < o) {
                    "#c62828"
                } else {
                    "#2e7d32"
                },
                y(*v),
                lang.percent(*v, 3),
                "",
            ),
            None => (
                "#eef1f4",
                top,
                lang.text(Text::NoData).to_string(),
                " stroke=\"#c5ccd3\" stroke-width=\"0.5\"",
            ),
        };
        s += &format!(
            "<rect x=\"{x:.1}\" y=\"{top_y:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"{fill}\"{stroke}><title>{}</title></rect>",
            (h - bottom - top_y).max(0.0),
            esc(&format!("{date}: {label}"))
        );
        let day = date
            .rsplit('-')
            .next()
            .unwrap_or("")
            .trim_start_matches('0');
        if i % 2 == 0 {
            s += &format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\" fill=\"#5b6773\">{day}</text>",
                x + bw / 2.0,
                h - 8.0
            );
        }
    }
    if let Some(o) = objective.filter(|o| *o >= floor) {
        s += &format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#1d2733\" stroke-dasharray=\"4 3\"><title>{}</title></line>",
            w - 4.0,
            esc(&format!("{}: {}", lang.text(Text::Objective), lang.percent(o, 2))),
            y = y(o)
        );
    }
    s + "</svg>"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Day, DayFigure};
    use crate::sla::rollup::tests::ledger;
    use crate::time::calendar::{oslo_ms, Month};

    /// One scale for every chart of a report (the lowest day of any
    /// service sets it), and a day without data is a pale bar of full
    /// height, not a grey stub at the bottom that a row of would read as
    /// the dashed objective line.
    #[test]
    fn every_chart_has_one_scale_and_no_data_is_a_full_pale_bar() {
        let dir = tempfile::tempdir().unwrap();
        let (store, inv, _) = ledger(dir.path());
        let oct = Month::parse("2026-10").unwrap();
        let mut r = crate::report::member_report(
            Some(&store),
            &inv,
            "a",
            oct,
            None,
            oslo_ms(2026, 11, 2, 12, 0),
        )
        .unwrap();
        let mut other = r.services[0].clone();
        other.service = "other".into();
        r.services.push(other);
        r.daily = vec![
            Day {
                date: "2026-10-01".into(),
                services: vec![
                    DayFigure {
                        service: r.services[0].service.clone(),
                        availability: Some(0.75),
                    },
                    DayFigure {
                        service: "other".into(),
                        availability: None,
                    },
                ],
            },
            Day {
                date: "2026-10-02".into(),
                services: vec![DayFigure {
                    service: "other".into(),
                    availability: Some(1.0),
                }],
            },
        ];
        // 75 % on one service's day puts both charts' floor at 70 %.
        let floor = chart_floor(&r);
        assert!((floor - 0.7).abs() < 1e-9, "{floor}");
        let first = chart(&r, &r.services[0].service, Some(0.995), floor, Lang::Nb);
        let second = chart(&r, "other", Some(0.995), floor, Lang::Nb);
        for svg in [&first, &second] {
            assert!(svg.contains(">70\u{a0}%<"), "{svg}");
        }
        // The no-data day: full height from the top of the plot, pale, outlined.
        let nodata = second
            .split("<rect")
            .find(|r| r.contains("Ingen data"))
            .unwrap();
        assert!(
            nodata.contains("fill=\"#eef1f4\"") && nodata.contains("stroke="),
            "{nodata}"
        );
        assert!(nodata.contains("y=\"8.0\""), "from the top: {nodata}");
    }
}
