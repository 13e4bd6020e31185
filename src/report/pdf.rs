//! The report as PDF/A-2b, laid out by Typst (as a library): the report is
//! written as Typst markup, compiled with the fonts bundled in the binary
//! (typst-assets: Libertinus Serif and DejaVu Sans Mono; no system fonts),
//! and exported with the creation date and document id taken from the
//! report, so the same ledger, month and version give the same bytes.
//! Text from the config and the ledger reaches Typst only as string
//! literals, never as markup.

use std::sync::LazyLock;

use chrono::{Datelike, Timelike};
use typst::diag::{FileError, FileResult};
use typst::foundations::{Bytes, Datetime, Smart};
use typst::layout::PagedDocument;
use typst::syntax::{FileId, Source};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World};
use typst_pdf::{PdfOptions, PdfStandard, PdfStandards, Timestamp};

use super::locale::{Lang, Text};
use super::region::RegionReport;
use super::MemberReport;
use crate::time::calendar::Month;

#[derive(Debug, thiserror::Error)]
#[error("cannot make the PDF: {0}")]
pub struct PdfError(String);

/// The bundled fonts, read once.
static FONTS: LazyLock<(LazyHash<FontBook>, Vec<Font>)> = LazyLock::new(|| {
    let fonts: Vec<Font> = typst_assets::fonts()
        .flat_map(|data| Font::iter(Bytes::new(data)))
        .collect();
    (LazyHash::new(FontBook::from_fonts(&fonts)), fonts)
});

static LIBRARY: LazyLock<LazyHash<Library>> = LazyLock::new(|| LazyHash::new(Library::default()));

struct ReportWorld {
    main: Source,
    today: Option<Datetime>,
}

impl World for ReportWorld {
    fn library(&self) -> &LazyHash<Library> {
        &LIBRARY
    }
    fn book(&self) -> &LazyHash<FontBook> {
        &FONTS.0
    }
    fn main(&self) -> FileId {
        self.main.id()
    }
    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == self.main.id() {
            Ok(self.main.clone())
        } else {
            Err(FileError::AccessDenied)
        }
    }
    fn file(&self, _id: FileId) -> FileResult<Bytes> {
        Err(FileError::AccessDenied)
    }
    fn font(&self, index: usize) -> Option<Font> {
        FONTS.1.get(index).cloned()
    }
    fn today(&self, _offset: Option<i64>) -> Option<Datetime> {
        self.today
    }
}

/// A Typst string literal: the text shown as it is.
fn lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A table cell holding `s` as text.
fn cell(s: &str) -> String {
    format!("[#{}]", lit(s))
}

fn ms_of(rfc3339: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(rfc3339).ok()
}

/// The page set-up, title block and document metadata.
fn preamble(lang: Lang, title: &str, organisation: Option<&str>, version: &str) -> String {
    format!(
        r##"#set document(title: {title}, author: {author})
#set page(paper: "a4", margin: (x: 1.8cm, top: 1.8cm, bottom: 2.2cm), footer: context [
  #set text(size: 8pt, fill: luma(90))
  #{foot} #h(1fr) #counter(page).display("1 / 1", both: true)
])
#set text(font: "Libertinus Serif", size: 10pt, lang: "{lang}")
#set par(justify: false)
#show heading.where(level: 1): set text(size: 17pt)
#show heading.where(level: 2): set text(size: 12.5pt)
#show heading.where(level: 2): it => block(above: 1.4em, below: 0.6em, it)
#set table(stroke: (x, y) => if y == 0 {{ (bottom: 0.8pt) }} else {{ (bottom: 0.3pt + luma(200)) }}, inset: (x: 4pt, y: 3.5pt))
#show table.cell.where(y: 0): set text(weight: "bold")
"##,
        title = lit(title),
        author = lit(organisation.unwrap_or("utkikk")),
        foot = lit(&format!("utkikk {version}")),
        lang = lang.code(),
    )
}

/// A table with a header row repeated on every page.
fn table(columns: &[(&str, bool)], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| cell(c)).collect())
        .collect();
    table_of_cells(columns, &rows)
}

/// [`table`] of cells already in Typst markup (`[…]`).
fn table_of_cells(columns: &[(&str, bool)], rows: &[Vec<String>]) -> String {
    let cols = columns
        .iter()
        .map(|_| "auto")
        .collect::<Vec<_>>()
        .join(", ");
    let align = columns
        .iter()
        .map(|(_, right)| if *right { "right" } else { "left" })
        .collect::<Vec<_>>()
        .join(", ");
    let header = columns
        .iter()
        .map(|(h, _)| cell(h))
        .collect::<Vec<_>>()
        .join(", ");
    let body = rows
        .iter()
        .map(|r| r.join(", "))
        .collect::<Vec<_>>()
        .join(",\n  ");
    format!(
        "#table(columns: ({cols},), align: ({align},),\n  table.header({header}),\n  {body}\n)\n"
    )
}

fn compile(markup: String, generated: &str, ident: &str) -> Result<Vec<u8>, PdfError> {
    let when = ms_of(generated);
    let date = when.and_then(|t| {
        let t = t.with_timezone(&chrono::Utc);
        Datetime::from_ymd_hms(
            t.year(),
            t.month() as u8,
            t.day() as u8,
            t.hour() as u8,
            t.minute() as u8,
            t.second() as u8,
        )
    });
    let world = ReportWorld {
        main: Source::detached(markup),
        today: date,
    };
    let document = typst::compile::<PagedDocument>(&world)
        .output
        .map_err(|errors| {
            PdfError(
                errors
                    .iter()
                    .map(|e| e.message.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
    let standards = PdfStandards::new(&[PdfStandard::A_2b]).map_err(|e| PdfError(e.to_string()))?;
    let options = PdfOptions {
        ident: Smart::Custom(ident),
        timestamp: date.map(Timestamp::new_utc),
        standards,
        ..PdfOptions::default()
    };
    let pdf = typst_pdf::pdf(&document, &options).map_err(|errors| {
        PdfError(
            errors
                .iter()
                .map(|e| e.message.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    });
    drop(document);
    pdf
}

/// Forget Typst's memoized layout results not used in the last two
/// layouts. Typst memoizes in a process-wide cache that only grows
/// unless told otherwise (typst-cli evicts after each compile too), so a
/// long-running agent calls this after each PDF it lays out: without it,
/// every report asked for stayed in memory. A batch (`report --all`)
/// keeps the cache: eight PDFs took three times as long with it evicted
/// between them.
pub fn forget_layouts() {
    comemo::evict(2);
}

fn period(lang: Lang, month: &str) -> String {
    Month::parse(month).map_or(month.to_string(), |m| lang.month(m.year, m.month))
}

fn date(lang: Lang, rfc3339: &str) -> String {
    ms_of(rfc3339).map_or(String::new(), |t| lang.date_time(t.timestamp_millis()))
}

fn outage_table(
    lang: Lang,
    outages: &[crate::sla::outages::OutageView],
    service_name: impl Fn(&str) -> String,
) -> String {
    let t = |x| lang.text(x);
    let rows: Vec<Vec<String>> = outages
        .iter()
        .map(|o| super::cells::outage_cells(o, lang, &service_name).to_vec())
        .collect();
    table(
        &[
            (t(Text::Start), false),
            (t(Text::End), false),
            (t(Text::Duration), true),
            (t(Text::Services), false),
            (t(Text::RootCause), false),
            (t(Text::Reason), false),
            (t(Text::Note), false),
        ],
        &rows,
    )
}

/// A member's report as PDF/A-2b.
pub fn member(r: &MemberReport, lang: Lang) -> Result<Vec<u8>, PdfError> {
    let t = |x| lang.text(x);
    let title = format!("{}: {}", t(Text::Title), r.name);
    let mut m = preamble(lang, &title, r.organisation.as_deref(), &r.version);
    if let Some(org) = &r.organisation {
        m += &format!("#text(fill: luma(90))[#{}]\n", lit(org));
    }
    m += &format!("= #{}\n", lit(&title));
    let mut meta: Vec<(&str, String)> = Vec::new();
    if let Some(k) = &r.kommunenummer {
        meta.push((t(Text::Municipality), k.clone()));
    }
    meta.push((
        t(Text::Period),
        format!(
            "{} ({} – {})",
            period(lang, &r.month),
            date(lang, &r.from),
            date(lang, &r.to)
        ),
    ));
    meta.push((t(Text::Generated), date(lang, &r.generated)));
    if let Some(mg) = &r.merged_into {
        meta.push((t(Text::MergedInto), mg.clone()));
    }
    if !r.includes.is_empty() {
        meta.push((t(Text::Includes), r.includes.join(", ")));
    }
    m += "#grid(columns: 2, column-gutter: 12pt, row-gutter: 5pt,\n";
    for (k, v) in &meta {
        m += &format!("  text(weight: \"bold\", {}), {},\n", lit(k), lit(v));
    }
    m += ")\n#line(length: 100%, stroke: 0.8pt)\n";

    let brief = r.summary_sentences(lang);
    if !brief.is_empty() {
        m += &format!("== #{}\n", lit(t(Text::InBrief)));
        for line in &brief {
            m += &format!("#text(size: 11pt, {})\n\n", lit(line));
        }
    }
    m += &format!("== #{}\n", lit(t(Text::Summary)));
    if r.services.is_empty() {
        m += &format!("#emph({})\n", lit(t(Text::NoServices)));
    } else {
        let cells: Vec<_> = r.services.iter().map(|s| s.cells(lang)).collect();
        let rows: Vec<Vec<String>> = cells
            .iter()
            .map(|c| {
                let name = if c.schedule.is_empty() {
                    cell(&c.name)
                } else {
                    format!(
                        "[#{} \\ #text(size: 7.5pt, fill: luma(90), {})]",
                        lit(&c.name),
                        lit(&c.schedule)
                    )
                };
                let verdict = match c.verdict_class {
                    "met" => format!(
                        "[#text(fill: rgb(\"#2e7d32\"), weight: \"bold\", {})]",
                        lit(c.verdict)
                    ),
                    "missed" => format!(
                        "[#text(fill: rgb(\"#c62828\"), weight: \"bold\", {})]",
                        lit(c.verdict)
                    ),
                    "unknown" => format!(
                        "[#text(fill: rgb(\"#8a5a00\"), weight: \"bold\", {})]",
                        lit(c.verdict)
                    ),
                    _ => format!("[#emph({})]", lit(c.verdict)),
                };
                vec![
                    name,
                    cell(&c.objective),
                    cell(&c.availability),
                    verdict,
                    cell(&c.coverage),
                ]
            })
            .collect();
        m += &table_of_cells(
            &[
                (t(Text::Service), false),
                (t(Text::Objective), true),
                (t(Text::Availability), true),
                (t(Text::Verdict), false),
                (t(Text::Coverage), true),
            ],
            &rows,
        );
        m += &format!("=== #{}\n", lit(t(Text::Budget)));
        let rows: Vec<Vec<String>> = cells
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.downtime.clone(),
                    c.outages.clone(),
                    c.mean_time_to_restore.clone(),
                    c.error_budget.clone(),
                    c.excluded.clone(),
                    c.maintenance.clone(),
                ]
            })
            .collect();
        m += &table(
            &[
                (t(Text::Service), false),
                (t(Text::Downtime), true),
                (t(Text::OutageCount), true),
                (t(Text::MeanTimeToRestore), true),
                (t(Text::ErrorBudget), true),
                (t(Text::Excluded), true),
                (t(Text::Maintenance), true),
            ],
            &rows,
        );
        for note in r.excluded_notes(lang) {
            m += &format!("#text(size: 8.5pt, fill: luma(90), {})\n\n", lit(&note));
        }
        if let Some((months, rows)) = super::cells::history_table(r, lang) {
            m += &format!("== #{}\n", lit(t(Text::History)));
            let mut cols: Vec<(&str, bool)> = vec![(t(Text::Service), false)];
            cols.extend(months.iter().map(|x| (x.as_str(), true)));
            let rows: Vec<Vec<String>> = rows
                .iter()
                .map(|(name, cells)| {
                    let mut v = vec![cell(name)];
                    v.extend(cells.iter().map(|c| {
                        let colour = match c.class {
                            "met" => "rgb(\"#2e7d32\")",
                            "missed" => "rgb(\"#c62828\")",
                            "unknown" => "rgb(\"#8a5a00\")",
                            _ => "luma(120)",
                        };
                        format!("[#text(fill: {colour}, {})]", lit(&c.text))
                    }));
                    v
                })
                .collect();
            m += "#[#set text(size: 7pt)\n";
            m += &table_of_cells(&cols, &rows);
            m += "]\n";
            m += &format!(
                "#text(size: 8.5pt, fill: luma(90), {})\n\n",
                lit(t(Text::HistoryNote))
            );
        }
        let floor = super::html::chart_floor(r);
        m += &format!("== #{}\n", lit(t(Text::Daily)));
        m += &format!(
            "#text(size: 8.5pt, fill: luma(90), {})\n",
            lit(t(Text::ChartLegend))
        );
        for s in &r.services {
            let svg = super::html::chart(r, &s.service, s.objective, floor, lang);
            m += &format!(
                "#block(breakable: false)[#text(weight: \"bold\", {})\n#image(bytes({}), format: \"svg\", width: 100%)]\n",
                lit(&s.name),
                lit(&svg)
            );
        }
    }
    m += &format!("== #{}\n", lit(t(Text::Outages)));
    if r.outages.is_empty() {
        m += &format!("#emph({})\n", lit(t(Text::NoOutages)));
    } else {
        let (listed, left, left_seconds) = r.listed_outages();
        m += &outage_table(lang, &listed, |id| r.service_name(id));
        if left > 0 {
            m += &format!("#emph({})\n", lit(&lang.more_outages(left, left_seconds)));
        }
    }
    m += &format!("== #{}\n", lit(t(Text::Maintenance)));
    if r.maintenance.is_empty() {
        m += &format!("#emph({})\n", lit(t(Text::NoMaintenance)));
    } else {
        let rows: Vec<Vec<String>> = r
            .maintenance
            .iter()
            .map(|w| {
                vec![
                    date(lang, &w.start),
                    date(lang, &w.end),
                    lang.duration(w.duration_seconds),
                    lang.category(&w.category).to_string(),
                    w.targets.join(", "),
                    w.note.clone().unwrap_or_default(),
                ]
            })
            .collect();
        m += &table(
            &[
                (t(Text::Start), false),
                (t(Text::End), false),
                (t(Text::Duration), true),
                (t(Text::Category), false),
                (t(Text::Targets), false),
                (t(Text::Note), false),
            ],
            &rows,
        );
    }
    if !r.links.is_empty() {
        m += &format!("== #{}\n", lit(t(Text::Links)));
        let rows: Vec<Vec<String>> = r.links.iter().map(|l| l.cells(lang).to_vec()).collect();
        m += &table(
            &[
                (t(Text::Link), false),
                (t(Text::MedianRtt), true),
                (t(Text::P95Rtt), true),
                (t(Text::Loss), true),
                (t(Text::PeakOut), true),
                (t(Text::PeakIn), true),
            ],
            &rows,
        );
        m += &format!(
            "#text(size: 8.5pt, fill: luma(90), {})\n",
            lit(t(Text::LinksNote))
        );
    }
    m += &format!(
        "#v(1em)\n#text(size: 8.5pt, fill: luma(90), {})\n",
        lit(t(Text::Footnote))
    );
    compile(m, &r.generated, &format!("utkikk/{}/{}", r.member, r.month))
}

/// The regional overview as PDF/A-2b.
pub fn region(r: &RegionReport, lang: Lang) -> Result<Vec<u8>, PdfError> {
    let t = |x| lang.text(x);
    let title = t(Text::RegionTitle);
    let mut m = preamble(lang, title, r.organisation.as_deref(), &r.version);
    if r.services.len() > 6 {
        m += "#set page(flipped: true)\n";
    }
    if let Some(org) = &r.organisation {
        m += &format!("#text(fill: luma(90))[#{}]\n", lit(org));
    }
    m += &format!("= #{}\n", lit(title));
    m += &format!(
        "#grid(columns: 2, column-gutter: 12pt, row-gutter: 5pt,\n  text(weight: \"bold\", {}), {},\n  text(weight: \"bold\", {}), {},\n)\n#line(length: 100%, stroke: 0.8pt)\n",
        lit(t(Text::Period)),
        lit(&format!(
            "{} ({} – {})",
            period(lang, &r.month),
            date(lang, &r.from),
            date(lang, &r.to)
        )),
        lit(t(Text::Generated)),
        lit(&date(lang, &r.generated)),
    );
    m += &format!("== #{}\n", lit(t(Text::Availability)));
    let mut columns: Vec<(String, bool)> = vec![(t(Text::Member).to_string(), false)];
    columns.extend(r.services.iter().map(|c| (c.name.clone(), true)));
    let rows: Vec<Vec<String>> = r
        .members
        .iter()
        .map(|row| {
            let mut v = vec![cell(&match &row.kommunenummer {
                Some(k) => format!("{} ({k})", row.name),
                None => row.name.clone(),
            })];
            v.extend(row.cells.iter().map(|c| {
                let c = super::cells::region_cell(c.as_ref(), lang);
                if c.coverage.is_empty() {
                    cell(&c.text)
                } else {
                    format!(
                        "[#{} \\ #text(size: 7pt, fill: luma(90), {})]",
                        lit(&c.text),
                        lit(&c.coverage)
                    )
                }
            }));
            v
        })
        .collect();
    let cols: Vec<(&str, bool)> = columns.iter().map(|(s, r)| (s.as_str(), *r)).collect();
    m += &table_of_cells(&cols, &rows);
    m += &format!("== #{}\n", lit(t(Text::Worst)));
    if r.worst_outages.is_empty() {
        m += &format!("#emph({})\n", lit(t(Text::NoOutages)));
    } else {
        let rows: Vec<Vec<String>> = r
            .worst_outages
            .iter()
            .map(|o| {
                let mut v = super::cells::outage_cells(o, lang, |id| r.service_name(id)).to_vec();
                v.insert(4, super::cells::members_hit(o, |m| r.member_name(m)));
                v
            })
            .collect();
        m += &table(
            &[
                (t(Text::Start), false),
                (t(Text::End), false),
                (t(Text::Duration), true),
                (t(Text::Services), false),
                (t(Text::Members), false),
                (t(Text::RootCause), false),
                (t(Text::Reason), false),
                (t(Text::Note), false),
            ],
            &rows,
        );
    }
    m += &format!(
        "#v(1em)\n#text(size: 8.5pt, fill: luma(90), {})\n",
        lit(t(Text::Footnote))
    );
    compile(m, &r.generated, &format!("utkikk/region/{}", r.month))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::{member_report, region::region_report};
    use crate::sla::rollup::tests::ledger;
    use crate::time::calendar::oslo_ms as ms;
    use std::process::Command;

    /// Run a poppler tool on `pdf`; its standard output.
    pub(crate) fn poppler(tool: &str, args: &[&str], pdf: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.pdf");
        std::fs::write(&path, pdf).unwrap();
        let out = Command::new(tool)
            .args(args)
            .arg(&path)
            .args(if tool == "pdftotext" {
                &["-"][..]
            } else {
                &[][..]
            })
            .output()
            .unwrap_or_else(|e| panic!("{tool} (poppler-utils) is needed: {e}"));
        assert!(
            out.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn a_members_pdf_is_pdf_a_with_its_figures_and_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let (store, inv, _) = ledger(dir.path());
        let now = ms(2026, 11, 2, 12, 0);
        let oct = Month::parse("2026-10").unwrap();
        let r = member_report(Some(&store), &inv, "a", oct, None, now).unwrap();
        let pdf = member(&r, Lang::Nb).unwrap();
        if let Some(out) = std::env::var_os("UTKIKK_REPORT_HTML_OUT") {
            std::fs::write(std::path::Path::new(&out).join("a-2026-10-nb.pdf"), &pdf).unwrap();
        }
        let info = poppler("pdfinfo", &[], &pdf);
        assert!(
            info.contains("Title:") && info.contains("Aby kommune"),
            "{info}"
        );
        let meta = poppler("pdfinfo", &["-meta"], &pdf);
        assert!(
            meta.contains("<pdfaid:part>2</pdfaid:part>") || meta.contains("pdfaid:part=\"2\""),
            "PDF/A-2: {meta}"
        );
        assert!(
            meta.contains("<pdfaid:conformance>B</pdfaid:conformance>")
                || meta.contains("pdfaid:conformance=\"B\""),
            "PDF/A-2b: {meta}"
        );
        // PDF/A needs every font embedded (and, for text to be found,
        // mapped to Unicode): pdffonts lists each with "emb" and "uni".
        let fonts = poppler("pdffonts", &[], &pdf);
        let rows: Vec<&str> = fonts.lines().skip(2).collect();
        assert!(!rows.is_empty(), "{fonts}");
        for row in rows {
            let cols: Vec<&str> = row.split_whitespace().collect();
            let n = cols.len();
            assert!(
                n >= 7 && cols[n - 5] == "yes" && cols[n - 3] == "yes",
                "{fonts}"
            );
        }
        let text = poppler("pdftotext", &["-layout"], &pdf);
        for want in [
            "Tilgjengelighetsrapport: Aby kommune",
            "3301",
            "99,96",
            "Oppfylt",
            "25. okt. 2026 kl. 02:40",
            "OS-oppgradering",
            // The links: median, 95th percentile, loss, peak out.
            "Samband Aby–Bekk",
            "4,0 ms",
            "40 ms",
            "5,000 %",
            "63,4 % (634 Mbit/s)",
            // The month in plain words, and the level's hours.
            "Kort fortalt",
            "Alle tjenester nådde tjenestenivået i oktober 2026.",
            "Uplanlagte avvik: 3, til sammen 1:45:00.",
            "hele døgnet, alle dager",
            // Seconds in durations, the budget and time to restore.
            "0:07:30",
            "93 %",
            // Excluded time, said why; reasons in bokmål.
            "Files (utelatt)",
            "fordi core var nede",
            "ikke svar innen",
        ] {
            assert!(text.contains(want), "{want:?} not in:\n{text}");
        }
        assert!(!text.contains("no reply"), "English in bokmål:\n{text}");
        // The same ledger, month and version: the same bytes.
        assert_eq!(pdf, member(&r, Lang::Nb).unwrap());
        let en = poppler("pdftotext", &[], &member(&r, Lang::En).unwrap());
        assert!(
            en.contains("Availability report") && en.contains("99.96%") && en.contains("RTT, p95"),
            "{en}"
        );
        assert!(
            en.contains("Every service met its objective in October 2026.")
                && en.contains("around the clock, every day"),
            "{en}"
        );
    }

    /// Observed for a sliver of the month: no verdict, said so in words,
    /// with the coverage and what a verdict needs.
    #[test]
    fn a_service_seen_too_little_has_no_verdict() {
        use crate::sla::service::Unknown;
        let dir = tempfile::tempdir().unwrap();
        let (store, inv, _) = ledger(dir.path());
        let oct = Month::parse("2026-10").unwrap();
        let mut r =
            member_report(Some(&store), &inv, "a", oct, None, ms(2026, 11, 2, 12, 0)).unwrap();
        let s = &mut r.services[0];
        s.met = None;
        s.unknown = Some(Unknown::CoverageBelowMinimum);
        s.coverage = Some(0.2);
        s.min_coverage = Some(0.9);
        let text = poppler("pdftotext", &["-layout"], &member(&r, Lang::Nb).unwrap());
        for want in [
            "Ukjent – for lite observert",
            "20,0 % (krav 90 %)",
            "Files kan ikke vurderes: bare 20,0 % av tiden ble overvåket, og minst 90 % trengs.",
        ] {
            assert!(text.contains(want), "{want:?} not in:\n{text}");
        }
        assert!(!text.contains("Oppfylt"), "{text}");
        let html = crate::report::html::member(&r, Lang::En).unwrap();
        assert!(html.contains("Unknown – too little observed"), "{html}");
        // Missed, in words, by how much.
        let s = &mut r.services[0];
        s.met = Some(false);
        s.unknown = None;
        s.availability = Some(0.99416);
        s.coverage = Some(0.95);
        assert_eq!(
            r.summary_sentences(Lang::Nb)[0],
            "Ingen tjenester nådde tjenestenivået i oktober 2026: Files (99,41\u{a0}% mot 99,50\u{a0}%)."
        );
        let mut two = r.services[0].clone();
        two.name = "Sak".into();
        two.met = Some(true);
        r.services.push(two);
        assert_eq!(
            r.summary_sentences(Lang::En)[0],
            "Every service met its objective in October 2026, except Files (99.41% against 99.50%)."
        );
    }

    #[test]
    fn fifty_outages_run_onto_more_pages_and_the_region_fits() {
        let dir = tempfile::tempdir().unwrap();
        let (store, inv, _) = ledger(dir.path());
        let now = ms(2026, 11, 2, 12, 0);
        let oct = Month::parse("2026-10").unwrap();
        let mut r = member_report(Some(&store), &inv, "a", oct, None, now).unwrap();
        let one = r.outages[0].clone();
        r.outages = (0..50)
            .map(|i| {
                let mut o = one.clone();
                o.outage.reason = Some(format!("avvik nr. {i}"));
                o.outage.reason_code = None;
                o
            })
            .collect();
        let pdf = member(&r, Lang::Nb).unwrap();
        let info = poppler("pdfinfo", &[], &pdf);
        let pages: usize = info
            .lines()
            .find_map(|l| l.strip_prefix("Pages:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap();
        assert!(pages >= 2, "{info}");
        let text = poppler("pdftotext", &[], &pdf);
        assert!(text.contains("avvik nr. 0") && text.contains("avvik nr. 49"));
        // The table header is repeated on the next page.
        assert!(text.matches("Rotårsak").count() >= 2, "{text}");
        // Past LISTED_OUTAGES, the longest are listed and the rest counted.
        r.outages = (0..250).map(|_| one.clone()).collect();
        let text = poppler("pdftotext", &[], &member(&r, Lang::Nb).unwrap());
        assert!(
            text.contains("150 kortere avvik er ikke listet her (til sammen 225:00:00)"),
            "{text}"
        );
        let overview = region_report(Some(&store), &inv, oct, None, now).unwrap();
        let text = poppler("pdftotext", &[], &region(&overview, Lang::Nb).unwrap());
        assert!(text.contains("Tilgjengelighet i regionen") && text.contains("Cedal kommune"));
    }

    #[test]
    fn text_reaches_typst_only_as_a_string() {
        assert_eq!(lit(r#"a "b" \c #d [e] $f$"#), r#""a \"b\" \\c #d [e] $f$""#);
        assert_eq!(lit("x\ny"), r#""x\ny""#);
    }

    /// The last twelve months beside this one, from the frozen results:
    /// months without one are dashes, a missed month is marked.
    #[test]
    fn the_last_twelve_months_from_the_frozen_results() {
        use crate::ledger::Record;
        let dir = tempfile::tempdir().unwrap();
        let (mut store, inv, _) = ledger(dir.path());
        let now = ms(2026, 11, 2, 12, 0);
        let oct = Month::parse("2026-10").unwrap();
        let svc = &inv.services[0];
        let (level, window, figures) =
            crate::sla::compute_service_month(Some(&store), svc, oct, None, now)
                .unwrap()
                .unwrap();
        let mut missed = figures.clone();
        missed.availability = Some(0.9912);
        missed.met = Some(false);
        let run = store.begin_run("t", now).unwrap();
        let frozen = |month: &str, f: &crate::sla::service::Figures| Record::Frozen {
            kind: crate::sla::FROZEN_SERVICE.into(),
            id: svc.id.clone(),
            month: month.into(),
            result: serde_json::to_string(&(level.clone(), window, f.clone())).unwrap(),
        };
        store
            .write(
                run,
                &[frozen("2026-09", &figures), frozen("2026-08", &missed)],
                now,
            )
            .unwrap();
        let r = member_report(Some(&store), &inv, "a", oct, None, now).unwrap();
        let h = &r.services[0].history;
        assert_eq!(h.len(), 12);
        assert_eq!(h[0].month, "2025-10");
        assert_eq!(h[11].month, "2026-09");
        assert_eq!(h[10].met, Some(false));
        assert!(h[..10].iter().all(|m| m.availability.is_none()));
        let text = poppler("pdftotext", &["-layout"], &member(&r, Lang::Nb).unwrap());
        for want in [
            "Siste 12 måneder",
            "okt. 25",
            "sep. 26",
            "okt. 26",
            "99,12 ✗",
            "99,96",
        ] {
            assert!(text.contains(want), "{want:?} not in:\n{text}");
        }
        let html = crate::report::html::member(&r, Lang::En).unwrap();
        assert!(
            html.contains("The last 12 months") && html.contains("Sep 26"),
            "{html}"
        );
    }
}
