//! The status pages as HTML: server-rendered (minijinja, auto-escaped),
//! complete without JavaScript; `assets/refresh.js` only swaps in the
//! page's news. Every number and date is in the page's language before it
//! reaches a template.

use std::time::Duration;

use serde::Serialize;

use super::words::{self, Lang};
use super::{Condition, MemberFigures, Planned, ServiceNow};
use crate::inventory::Service;
use crate::live::Snapshot;
use crate::sla::service::{Figures, Unknown};

const TEMPLATES: [(&str, &str); 4] = [
    ("base.html", include_str!("templates/base.html")),
    ("region.html", include_str!("templates/region.html")),
    ("member.html", include_str!("templates/member.html")),
    ("closed.html", include_str!("templates/closed.html")),
];

/// The style sheet and the refresh script, served as files (the pages'
/// Content-Security-Policy allows nothing inline).
pub const STYLE: &str = include_str!("assets/status.css");
pub const SCRIPT: &str = include_str!("assets/refresh.js");

#[derive(Debug, thiserror::Error)]
#[error("cannot render the status page: {0}")]
pub struct RenderError(String);

/// What every page needs besides its figures.
#[derive(Debug, Clone)]
pub struct Context {
    pub lang: Lang,
    /// The language was asked for in the address: links keep it.
    pub lang_in_query: bool,
    pub refresh: Duration,
    pub organisation: Option<String>,
    pub now_ms: i64,
}

impl Context {
    /// `path` with the language kept when the address had it.
    fn href(&self, path: &str) -> String {
        if self.lang_in_query {
            format!("{path}?lang={}", self.lang.code())
        } else {
            path.to_string()
        }
    }
}

#[derive(Serialize)]
struct Base {
    lang: &'static str,
    t: std::collections::BTreeMap<&'static str, &'static str>,
    title: String,
    organisation: Option<String>,
    /// The other language's link.
    other_lang: &'static str,
    other_lang_href: String,
    refresh_ms: u128,
    updated: String,
    version: &'static str,
    feed: Option<String>,
    summary: &'static str,
    worst: &'static str,
}

impl Base {
    fn new(ctx: &Context, title: String, path: &str, worst: Option<Condition>) -> Base {
        let other = match ctx.lang {
            Lang::Nb => Lang::En,
            Lang::En => Lang::Nb,
        };
        Base {
            lang: ctx.lang.code(),
            t: words::labels(ctx.lang),
            title,
            organisation: ctx.organisation.clone(),
            other_lang: other.code(),
            other_lang_href: format!("{path}?lang={}", other.code()),
            refresh_ms: ctx.refresh.as_millis(),
            updated: ctx.lang.date_time(ctx.now_ms),
            version: env!("CARGO_PKG_VERSION"),
            feed: None,
            summary: words::summary(ctx.lang, worst),
            worst: worst.unwrap_or(Condition::Up).code(),
        }
    }
}

/// A condition as shown: its class, its word and its sign.
#[derive(Serialize)]
struct Shown {
    code: &'static str,
    word: &'static str,
    sign: &'static str,
}

fn shown(lang: Lang, c: Condition) -> Shown {
    Shown {
        code: c.code(),
        word: words::condition(lang, c),
        sign: words::sign(c),
    }
}

/// The templates, parsed once. One that does not parse (they are part of
/// the binary, and a test renders each) makes its pages answer 500.
pub struct Pages {
    env: minijinja::Environment<'static>,
    problem: Option<String>,
}

impl Default for Pages {
    fn default() -> Self {
        let mut env = minijinja::Environment::new();
        let mut problem = None;
        for (n, src) in TEMPLATES {
            if let Err(e) = env.add_template(n, src) {
                problem = Some(e.to_string());
            }
        }
        Pages { env, problem }
    }
}

impl Pages {
    fn render(&self, name: &str, view: impl Serialize) -> Result<String, RenderError> {
        if let Some(p) = &self.problem {
            return Err(RenderError(p.clone()));
        }
        self.env
            .get_template(name)
            .and_then(|t| t.render(view))
            .map_err(|e| RenderError(e.to_string()))
    }
}

#[derive(Serialize)]
struct RegionView {
    base: Base,
    members: Vec<RegionMember>,
}

#[derive(Serialize)]
struct RegionMember {
    name: String,
    /// `None` for a member whose page is off.
    href: Option<String>,
    /// `None` for a member no service serves.
    worst: Option<Shown>,
    /// "3 Oppe, 1 Nede" in words.
    counts: String,
    incidents: usize,
}

/// The region's page: each member with its services' conditions now.
pub fn region(pages: &Pages, ctx: &Context, snap: &Snapshot) -> Result<String, RenderError> {
    let inv = &snap.inventory;
    let mut members = Vec::new();
    let mut worst_all: Option<Condition> = None;
    for m in inv.members.iter().filter(|m| m.merged_into.is_none()) {
        let services = super::member_services(inv, &m.id, ctx.now_ms);
        let now: Vec<(&Service, ServiceNow)> = services
            .iter()
            .map(|s| (*s, super::service_now(snap, s)))
            .collect();
        let worst = now.iter().map(|(_, n)| n.condition).max();
        worst_all = worst_all.max(worst);
        let mut counts: Vec<(Condition, usize)> = Vec::new();
        for (_, n) in &now {
            match counts.iter_mut().find(|(c, _)| *c == n.condition) {
                Some((_, k)) => *k += 1,
                None => counts.push((n.condition, 1)),
            }
        }
        counts.sort_by_key(|c| std::cmp::Reverse(c.0));
        let counts = counts
            .iter()
            .map(|(c, k)| format!("{k} {}", words::condition(ctx.lang, *c).to_lowercase()))
            .collect::<Vec<_>>()
            .join(", ");
        members.push(RegionMember {
            name: m.name.clone(),
            href: (m.status_page != crate::inventory::PageAccess::Off)
                .then(|| ctx.href(&format!("/status/{}", m.id))),
            worst: worst.map(|w| shown(ctx.lang, w)),
            counts,
            incidents: super::open_incidents(snap, &m.id, &now).len(),
        });
    }
    let title = format!(
        "{}: {}",
        words::label(ctx.lang, "status"),
        ctx.organisation
            .clone()
            .unwrap_or_else(|| words::label(ctx.lang, "region").to_string())
    );
    pages.render(
        "region.html",
        RegionView {
            base: Base::new(ctx, title, "/status", worst_all),
            members,
        },
    )
}

#[derive(Serialize)]
struct MemberView {
    base: Base,
    name: String,
    merged_into: Option<String>,
    region_href: Option<String>,
    services: Vec<ServiceRow>,
    incidents: Vec<IncidentRow>,
    planned: Vec<PlannedRow>,
    history: Vec<HistoryRow>,
    resolved: Vec<ResolvedRow>,
}

#[derive(Serialize)]
struct ServiceRow {
    id: String,
    name: String,
    now: Shown,
    since: String,
    causes: String,
    last_24h: Cell,
    last_30_days: Cell,
    this_month: Cell,
    objective: String,
}

/// An availability in a table: its words and whether it met the
/// objective (`met`, `missed`, `unknown`).
#[derive(Serialize)]
struct Cell {
    text: String,
    class: &'static str,
}

fn cell(lang: Lang, f: Option<&Figures>) -> Cell {
    let Some(f) = f else {
        return Cell {
            text: words::label(lang, "no_level").to_string(),
            class: "unknown",
        };
    };
    match (f.availability, f.unknown) {
        (None, _) => Cell {
            text: words::label(lang, "nodata").to_string(),
            class: "unknown",
        },
        (Some(a), Some(Unknown::CoverageBelowMinimum)) => Cell {
            text: format!(
                "{} ({})",
                lang.availability(a, 2),
                words::label(lang, "too_little")
            ),
            class: "unknown",
        },
        (Some(a), _) => Cell {
            text: lang.availability(a, 2),
            class: if f.met == Some(false) {
                "missed"
            } else {
                "met"
            },
        },
    }
}

#[derive(Serialize)]
struct IncidentRow {
    root_cause: String,
    since: String,
    since_iso: String,
    reason: String,
    services: String,
    note: Option<String>,
}

#[derive(Serialize)]
struct PlannedRow {
    start: String,
    end: String,
    start_iso: String,
    now: bool,
    category: String,
    covers: String,
    note: Option<String>,
}

#[derive(Serialize)]
struct HistoryRow {
    id: String,
    name: String,
    label: String,
    bars: Vec<Bar>,
    /// Newest first, for the table.
    days: Vec<DayRow>,
}

#[derive(Serialize)]
struct Bar {
    class: &'static str,
    date: String,
    /// The ratio, exact (for tests and tools); empty without one.
    availability: String,
    downtime_seconds: String,
}

#[derive(Serialize)]
struct DayRow {
    date: String,
    class: &'static str,
    availability: String,
    downtime: String,
    maintenance: String,
    coverage: String,
}

#[derive(Serialize)]
struct ResolvedRow {
    root_cause: String,
    start: String,
    end: String,
    duration: String,
    reason: String,
    services: String,
    note: Option<String>,
}

/// A day's class: no downtime, some within the objective, the objective
/// missed, or nothing to judge.
fn day_class(f: Option<&Figures>) -> &'static str {
    match f {
        Some(f) if f.scheduled_seconds == 0.0 => "none",
        Some(f) => match (f.availability, f.met) {
            (None, _) => "nodata",
            // Too little observed to call the day good.
            (Some(_), _) if f.downtime_seconds == 0.0 && f.unknown.is_some() => "nodata",
            (Some(_), _) if f.downtime_seconds == 0.0 => "up",
            (Some(_), Some(false)) => "down",
            (Some(a), _) if a < f.objective => "down",
            _ => "partial",
        },
        None => "none",
    }
}

/// What the member's page needs besides the snapshot.
pub struct MemberInput<'a> {
    pub member: &'a str,
    pub figures: &'a MemberFigures,
    pub planned: &'a [Planned],
    /// The region's page may be linked (the reader can open it).
    pub region_href: bool,
}

/// A member's page.
pub fn member(
    pages: &Pages,
    ctx: &Context,
    snap: &Snapshot,
    input: MemberInput<'_>,
) -> Result<String, RenderError> {
    let inv = &snap.inventory;
    let lang = ctx.lang;
    let m = inv.members.iter().find(|m| m.id == input.member);
    let name = m.map_or_else(|| input.member.to_string(), |m| m.name.clone());
    let merged_into = m
        .and_then(|m| m.merged_into.as_ref())
        .filter(|mg| crate::time::oslo::date_of(ctx.now_ms).is_some_and(|d| mg.date <= d))
        .map(|mg| super::member_name(inv, &mg.member));
    let services = super::member_services(inv, input.member, ctx.now_ms);
    let now: Vec<(&Service, ServiceNow)> = services
        .iter()
        .map(|s| (*s, super::service_now(snap, s)))
        .collect();
    let worst = now.iter().map(|(_, n)| n.condition).max();
    let figures_of = |id: &str| input.figures.services.iter().find(|f| f.id == id);
    let rows = now
        .iter()
        .map(|(s, n)| {
            let f = figures_of(&s.id);
            ServiceRow {
                id: s.id.clone(),
                name: s.name.clone(),
                now: shown(lang, n.condition),
                since: n.since_ms.map(|t| lang.date_time(t)).unwrap_or_default(),
                causes: super::target_names(inv, &n.causes),
                last_24h: cell(lang, f.and_then(|f| f.last_24h.as_ref())),
                last_30_days: cell(lang, f.and_then(|f| f.last_30_days.as_ref())),
                this_month: cell(lang, f.and_then(|f| f.this_month.as_ref())),
                objective: f
                    .and_then(|f| f.level.as_ref())
                    .map(|l| lang.percent(l.objective, 2))
                    .unwrap_or_default(),
            }
        })
        .collect();
    let incidents = super::open_incidents(snap, input.member, &now)
        .iter()
        .map(|i| IncidentRow {
            root_cause: super::target_name(inv, &i.target),
            since: lang.date_time(i.since_ms),
            since_iso: crate::time::oslo::rfc3339(i.since_ms),
            reason: lang.reason(i.reason_code, i.reason.as_deref()),
            services: if i.services.is_empty() {
                words::label(lang, "none_affected").to_string()
            } else {
                super::service_names(inv, &i.services)
            },
            // Notes come with the outages read from the ledger.
            note: input.figures.note_of(&i.target, i.since_ms),
        })
        .collect();
    let planned = input
        .planned
        .iter()
        .map(|p| PlannedRow {
            start: lang.date_time(p.start_ms),
            end: lang.date_time(p.end_ms),
            start_iso: crate::time::oslo::rfc3339(p.start_ms),
            now: p.now,
            category: lang.category(p.category).to_string(),
            covers: p.covers(inv),
            note: p.note.clone(),
        })
        .collect();
    let history = services
        .iter()
        .filter_map(|s| figures_of(&s.id).map(|f| (s, f)))
        .map(|(s, f)| history_row(lang, s, f))
        .collect();
    let mut resolved: Vec<&crate::sla::outages::OutageView> = input
        .figures
        .outages
        .iter()
        .filter(|o| !o.outage.continues_after && !o.outage.planned)
        .collect();
    resolved.sort_by_key(|o| std::cmp::Reverse(o.outage.end_ms));
    let resolved = resolved
        .into_iter()
        .take(super::RESOLVED_SHOWN)
        .map(|o| ResolvedRow {
            root_cause: o.root_cause_name.clone(),
            start: lang.date_time(o.outage.start_ms),
            end: lang.date_time(o.outage.end_ms),
            duration: lang.duration(o.duration_seconds),
            reason: lang.reason(o.outage.reason_code.as_deref(), o.outage.reason.as_deref()),
            services: super::service_names(
                inv,
                &o.outage
                    .services
                    .iter()
                    .filter(|s| services.iter().any(|x| &x.id == *s))
                    .cloned()
                    .collect::<Vec<_>>(),
            ),
            note: o.note.clone(),
        })
        .collect();
    let path = format!("/status/{}", input.member);
    let mut base = Base::new(
        ctx,
        format!("{}: {name}", words::label(lang, "status")),
        &path,
        worst,
    );
    base.feed = Some(format!("{path}/feed.atom"));
    pages.render(
        "member.html",
        MemberView {
            base,
            name,
            merged_into,
            region_href: input.region_href.then(|| ctx.href("/status")),
            services: rows,
            incidents,
            planned,
            history,
            resolved,
        },
    )
}

fn history_row(lang: Lang, s: &Service, f: &super::ServiceFigures) -> HistoryRow {
    let mut counts = [0usize; 4];
    let bars: Vec<Bar> = f
        .days
        .iter()
        .map(|d| {
            let class = day_class(d.figures.as_ref());
            let i = match class {
                "up" => 0,
                "partial" => 1,
                "down" => 2,
                _ => 3,
            };
            counts[i] += 1;
            Bar {
                class,
                date: d.date.to_string(),
                availability: d
                    .figures
                    .as_ref()
                    .and_then(|f| f.availability)
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                downtime_seconds: d
                    .figures
                    .as_ref()
                    .map(|f| f.downtime_seconds.to_string())
                    .unwrap_or_default(),
            }
        })
        .collect();
    let label = format!(
        "{}: {} {}, {} {}, {} {}, {} {}",
        s.name,
        counts[0],
        words::label(lang, "legend_up"),
        counts[1],
        words::label(lang, "legend_partial"),
        counts[2],
        words::label(lang, "legend_down"),
        counts[3],
        words::label(lang, "legend_nodata"),
    );
    let days = f
        .days
        .iter()
        .rev()
        .map(|d| {
            let fig = d.figures.as_ref();
            DayRow {
                date: d.date.format("%Y-%m-%d").to_string(),
                class: day_class(fig),
                availability: match fig {
                    None => words::label(lang, "no_level").to_string(),
                    Some(f) if f.scheduled_seconds == 0.0 => {
                        words::label(lang, "outside_hours").to_string()
                    }
                    Some(f) => f
                        .availability
                        .map(|a| lang.availability(a, 2))
                        .unwrap_or_else(|| words::label(lang, "nodata").to_string()),
                },
                downtime: fig
                    .map(|f| lang.duration(f.downtime_seconds))
                    .unwrap_or_default(),
                maintenance: fig
                    .map(|f| lang.duration(f.maintenance_seconds))
                    .unwrap_or_default(),
                coverage: fig
                    .and_then(|f| f.coverage)
                    .map(|c| lang.percent(c, 1))
                    .unwrap_or_default(),
            }
        })
        .collect();
    HistoryRow {
        id: s.id.clone(),
        name: s.name.clone(),
        label,
        bars,
        days,
    }
}

/// The page a reader without access gets (401): how to give the token.
pub fn closed(pages: &Pages, ctx: &Context, path: &str) -> Result<String, RenderError> {
    #[derive(Serialize)]
    struct View {
        base: Base,
        text: &'static str,
    }
    let text = match ctx.lang {
        Lang::Nb => "Denne siden krever en lesenøkkel fra IKS-et. Åpne lenken du har fått (den har ?token=… på slutten); nettleseren husker nøkkelen etterpå.",
        Lang::En => "This page needs a read token from the IKS. Open the link you were given (it ends in ?token=…); the browser keeps the token after that.",
    };
    pages.render(
        "closed.html",
        View {
            base: Base::new(ctx, words::label(ctx.lang, "page").to_string(), path, None),
            text,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_told_by_downtime_against_the_objective() {
        let f = |avail: Option<f64>, down: f64, met: Option<bool>| Figures {
            objective: 0.99,
            scheduled_seconds: 86_400.0,
            up_seconds: 86_400.0 - down,
            downtime_seconds: down,
            maintenance_seconds: 0.0,
            unmonitored_seconds: 0.0,
            excluded_seconds: 0.0,
            availability: avail,
            coverage: Some(1.0),
            outages: 0,
            mean_time_to_recover_seconds: None,
            error_budget_remaining: None,
            met,
            min_coverage: None,
            unknown: None,
        };
        assert_eq!(day_class(Some(&f(Some(1.0), 0.0, Some(true)))), "up");
        assert_eq!(
            day_class(Some(&f(Some(0.995), 432.0, Some(true)))),
            "partial"
        );
        assert_eq!(day_class(Some(&f(Some(0.9), 8640.0, Some(false)))), "down");
        assert_eq!(day_class(Some(&f(None, 0.0, None))), "nodata");
        assert_eq!(day_class(None), "none");
    }
}
