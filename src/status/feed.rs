//! A member's incidents and planned maintenance as an Atom feed (RFC
//! 4287): an entry per outage (open, then updated when resolved: the same
//! id) and per occurrence of planned maintenance.

use atom_syndication::{Content, Entry, Feed, FixedDateTime, Link, Text};
use chrono::TimeZone;

use super::words::{self, Lang};
use super::{service_names, target_name, MemberFigures, OpenIncident, Planned};
use crate::inventory::Inventory;

/// What a member's feed is made of.
pub struct FeedInput<'a> {
    pub agent: &'a str,
    pub member: &'a str,
    pub member_name: &'a str,
    pub open: &'a [OpenIncident],
    pub figures: &'a MemberFigures,
    pub planned: &'a [Planned],
    pub now_ms: i64,
}

fn at(ms: i64) -> FixedDateTime {
    chrono_tz::Europe::Oslo
        .timestamp_millis_opt(ms)
        .single()
        .map(|t| t.fixed_offset())
        .unwrap_or_default()
}

fn entry(
    id: String,
    title: String,
    updated: i64,
    published: i64,
    lines: Vec<String>,
    href: &str,
) -> Entry {
    Entry {
        id,
        title: Text::plain(title),
        updated: at(updated),
        published: Some(at(published)),
        content: Some(Content {
            value: Some(lines.join("\n")),
            content_type: Some("text".into()),
            ..Default::default()
        }),
        links: vec![Link {
            href: href.to_string(),
            rel: "alternate".into(),
            mime_type: Some("text/html".into()),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The feed as XML.
pub fn member(lang: Lang, inv: &Inventory, input: FeedInput<'_>) -> String {
    let page = format!("/status/{}", input.member);
    let urn = |what: &str| format!("urn:utkikk:{}:{}:{what}", input.agent, input.member);
    let l = |k: &str| words::label(lang, k);
    let (down, resolved, planned) = match lang {
        Lang::Nb => ("Feil", "Løst", "Planlagt vedlikehold"),
        Lang::En => ("Incident", "Resolved", "Planned maintenance"),
    };
    let mut entries = Vec::new();
    for i in input.open {
        let note = input.figures.note_of(&i.target, i.since_ms);
        let mut lines = vec![
            format!("{}: {}", l("since").to_string(), lang.date_time(i.since_ms)),
            format!(
                "{}: {}",
                l("reason"),
                lang.reason(i.reason_code, i.reason.as_deref())
            ),
            format!("{}: {}", l("affected"), service_names(inv, &i.services)),
        ];
        lines.extend(note.map(|n| format!("{}: {n}", l("message"))));
        entries.push(entry(
            urn(&format!("outage:{}:{}", i.target, i.since_ms)),
            format!("{down}: {}", target_name(inv, &i.target)),
            i.since_ms,
            i.since_ms,
            lines,
            &page,
        ));
    }
    for o in input
        .figures
        .outages
        .iter()
        .filter(|o| !o.outage.continues_after && !o.outage.planned)
    {
        let p = &o.outage;
        let mut lines = vec![
            format!("{}: {}", l("start"), lang.date_time(p.start_ms)),
            format!("{}: {}", l("end"), lang.date_time(p.end_ms)),
            format!("{}: {}", l("duration"), lang.duration(o.duration_seconds)),
            format!(
                "{}: {}",
                l("reason"),
                lang.reason(p.reason_code.as_deref(), p.reason.as_deref())
            ),
            format!("{}: {}", l("affected"), service_names(inv, &p.services)),
        ];
        lines.extend(o.note.clone().map(|n| format!("{}: {n}", l("message"))));
        entries.push(entry(
            urn(&format!("outage:{}:{}", p.target, p.start_ms)),
            format!("{resolved}: {}", o.root_cause_name),
            p.end_ms,
            p.start_ms,
            lines,
            &page,
        ));
    }
    for m in input.planned {
        let covers = m.covers(inv);
        let mut lines = vec![
            format!("{}: {}", l("from"), lang.date_time(m.start_ms)),
            format!("{}: {}", l("to"), lang.date_time(m.end_ms)),
            format!("{}: {covers}", l("covers")),
        ];
        lines.extend(m.note.clone().map(|n| format!("{}: {n}", l("note"))));
        entries.push(entry(
            urn(&format!("maintenance:{}:{}", m.window, m.start_ms)),
            format!(
                "{planned}: {} ({})",
                lang.category(m.category),
                lang.date_time(m.start_ms)
            ),
            m.declared_ms,
            m.declared_ms,
            lines,
            &page,
        ));
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.updated));
    let updated = entries
        .iter()
        .map(|e| e.updated)
        .max()
        .unwrap_or_else(|| at(input.figures.computed_ms.min(input.now_ms)));
    let feed = Feed {
        title: Text::plain(format!("{}: {}", l("status"), input.member_name)),
        id: urn("feed"),
        updated,
        lang: Some(lang.code().into()),
        links: vec![
            Link {
                href: format!("{page}/feed.atom"),
                rel: "self".into(),
                mime_type: Some("application/atom+xml".into()),
                ..Default::default()
            },
            Link {
                href: page.clone(),
                rel: "alternate".into(),
                mime_type: Some("text/html".into()),
                ..Default::default()
            },
        ],
        entries,
        ..Default::default()
    };
    feed.to_string()
}
