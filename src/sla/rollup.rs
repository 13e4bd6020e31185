//! Closed days summed up once: a service's tally of a day, and the day's
//! outages, kept in the ledger (table `day_results`) so that a month is
//! read as about thirty small rows per service instead of being rebuilt
//! from every transition (a month of 1,000 busy targets is 300,000 rows:
//! reading them alone takes longer than an API answer should).
//!
//! A day result is a cache of what the transitions give, never a record of
//! its own, and it is exact or absent:
//! - it is kept only for a day that closed [`FREEZE_AFTER_MS`] ago;
//! - it carries a fingerprint of everything that went into it besides the
//!   ledger (the service or the inventory, and the version of utkikk), and
//!   is only used while that fingerprint matches: after a config change or
//!   an upgrade the day is computed from the transitions again;
//! - the writer drops day results that a later write could change (a
//!   transition dated inside the day, a run started, a maintenance window
//!   declared or withdrawn, which all count from their own instant), and
//!   refuses one computed before a transition of its day was written.
//!
//! Every answer walks its window day by day: a whole, closed day with a
//! kept result uses it, the rest is computed from the transitions in as
//! few pieces as possible. Both give the same figures (pieces add up, see
//! [`Tally::add`] and [`super::outages::merge`]), so answers do not depend
//! on what happens to be kept.

use std::collections::HashMap;

use chrono::NaiveDate;
use sha2::{Digest, Sha256};

use super::outages::{self, Kept};
use super::service::Tally;
use super::FREEZE_AFTER_MS;
use crate::inventory::{Inventory, Service, ServiceLevel};
use crate::ledger::{LedgerError, Record, Store};
use crate::time::interval::Interval;

/// A service's tally of a day, keyed by the service id.
pub const KIND_SERVICE: &str = "service";
/// A day's outage pieces, keyed by member id (or [`ALL`]).
pub const KIND_OUTAGES: &str = "outages";
/// The key of every outage of the day.
pub const ALL: &str = "*";
/// Days further back than this are not summed up ahead of time (they are
/// computed when asked for).
pub const BACKFILL_DAYS: i64 = 400;

pub use crate::time::oslo::{date_of as day_of, day_start};

/// The whole Oslo days overlapping `window`, in order (23, 24 or 25 hours).
pub fn days(window: Interval) -> Vec<(NaiveDate, Interval)> {
    let mut out = Vec::new();
    let Some(mut day) = day_of(window.start) else {
        return out;
    };
    while let (Some(start), Some(next)) = (day_start(day), day.succ_opt()) {
        if start >= window.end {
            break;
        }
        let Some(end) = day_start(next) else { break };
        out.push((day, Interval::new(start, end)));
        day = next;
    }
    out
}

/// Whether a day's result may be kept: it closed long enough ago that
/// what was queued at its end is written.
pub fn closed(day: Interval, now_ms: i64) -> bool {
    now_ms >= day.end + FREEZE_AFTER_MS
}

/// The form of what is kept; part of every fingerprint.
const FORMAT: &str = "day results 3";

fn digest(parts: &str) -> String {
    let hash =
        Sha256::digest(format!("{}\n{FORMAT}\n{parts}", env!("CARGO_PKG_VERSION")).as_bytes());
    hash.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// What a service's day tally depends on besides the ledger.
pub fn service_fingerprint(service: &Service, level: &ServiceLevel) -> String {
    digest(&format!(
        "{:?}\n{:?}\n{:?}",
        service.targets, service.redundancy, level
    ))
}

/// What a day's outages depend on besides the ledger: the targets (names,
/// parents, members) and the services.
pub fn inventory_fingerprint(inv: &Inventory) -> String {
    let targets: Vec<_> = inv
        .targets
        .iter()
        .map(|t| (&t.id, &t.name, &t.parents, &t.serves, &t.member))
        .collect();
    let services: Vec<_> = inv
        .services
        .iter()
        .map(|s| (&s.id, &s.targets, &s.redundancy, &s.serves, &s.levels))
        .collect();
    digest(&format!("{targets:?}\n{services:?}"))
}

/// Walk `window` day by day, in order: each whole, closed day with a
/// result in `kept` (by day start) that `parse` reads gives that result;
/// the rest of the window is handed to `compute` in as few pieces as
/// possible, none spanning two calendar months (the service level in
/// force is the one of the month's first day).
pub fn by_days<T>(
    window: Interval,
    now_ms: i64,
    kept: &HashMap<i64, String>,
    parse: impl Fn(&str) -> Option<T>,
    mut compute: impl FnMut(Interval) -> Result<T, LedgerError>,
) -> Result<Vec<T>, LedgerError> {
    let mut out = Vec::new();
    let mut todo: Option<Interval> = None;
    for (date, day) in days(window) {
        let piece = day.intersect(&window);
        if piece.is_empty() {
            continue;
        }
        if chrono::Datelike::day(&date) == 1 {
            if let Some(t) = todo.take() {
                out.push(compute(t)?);
            }
        }
        let found = (piece == day && closed(day, now_ms))
            .then(|| kept.get(&day.start).and_then(|s| parse(s)))
            .flatten();
        match found {
            Some(r) => {
                if let Some(t) = todo.take() {
                    out.push(compute(t)?);
                }
                out.push(r);
            }
            None => {
                todo = Some(match todo {
                    Some(t) => Interval::new(t.start, piece.end),
                    None => piece,
                });
            }
        }
    }
    if let Some(t) = todo {
        out.push(compute(t)?);
    }
    Ok(out)
}

/// A service's tally over `window` under `level`: kept days read, the rest
/// computed from the transitions.
pub fn service_tally(
    store: &Store,
    service: &Service,
    level: &ServiceLevel,
    window: Interval,
    current_run: Option<i64>,
    now_ms: i64,
) -> Result<Tally, LedgerError> {
    let fp = service_fingerprint(service, level);
    let kept = store.day_results(KIND_SERVICE, &service.id, &fp, window.start, window.end)?;
    let parts = by_days(
        window,
        now_ms,
        &kept,
        |s| serde_json::from_str::<Tally>(s).ok(),
        |piece| {
            store.check_cancelled()?;
            compute_tally(store, service, level, piece, current_run, now_ms)
        },
    )?;
    let mut total = Tally::default();
    for t in parts {
        total.add(t);
    }
    Ok(total)
}

/// A service's tally over `window` from the transitions.
pub fn compute_tally(
    store: &Store,
    service: &Service,
    level: &ServiceLevel,
    window: Interval,
    current_run: Option<i64>,
    now_ms: i64,
) -> Result<Tally, LedgerError> {
    let all = service
        .targets
        .iter()
        .chain(service.redundancy.iter().flatten())
        .map(String::as_str);
    let tls = super::timelines(store, all, window, current_run, now_ms)?;
    let empty = super::timeline::build(window, &[], &[], None, now_ms);
    Ok(Tally::of(service, level, window, |t| {
        tls.get(t).cloned().unwrap_or_else(|| empty.clone())
    }))
}

/// A day, and the service's tally of it under the level it was judged by
/// (`None`: no level covered it).
pub type DayTally = (NaiveDate, Option<(ServiceLevel, Tally)>);

/// A service's tally of each Oslo day overlapping `window`, in order (the
/// last cut at `now_ms`), under the level in force for its month, with
/// that level; `None` for a day no level covers. A closed day with a kept
/// result reads it; a day before the ledger's first run is unmonitored
/// without a query; the rest is computed from the transitions.
pub fn day_tallies(
    store: &Store,
    service: &Service,
    window: Interval,
    current_run: Option<i64>,
    now_ms: i64,
) -> Result<Vec<DayTally>, LedgerError> {
    let first_run = store.first_run_start()?;
    let mut kept: HashMap<String, HashMap<i64, String>> = HashMap::new();
    let mut out = Vec::new();
    for (date, day) in days(window) {
        let piece = day
            .intersect(&window)
            .intersect(&Interval::new(i64::MIN, now_ms));
        let Some(level) = level_for(service, date).filter(|_| !piece.is_empty()) else {
            out.push((date, None));
            continue;
        };
        let tally = if first_run.is_none_or(|f| piece.end <= f) {
            let empty = super::timeline::build(piece, &[], &[], None, now_ms);
            Tally::of(service, level, piece, |_| empty.clone())
        } else {
            let fp = service_fingerprint(service, level);
            if !kept.contains_key(&fp) {
                let rows =
                    store.day_results(KIND_SERVICE, &service.id, &fp, window.start, window.end)?;
                kept.insert(fp.clone(), rows);
            }
            let found = (piece == day && closed(day, now_ms))
                .then(|| kept.get(&fp).and_then(|k| k.get(&day.start)))
                .flatten()
                .and_then(|s| serde_json::from_str::<Tally>(s).ok());
            match found {
                Some(t) => t,
                None => {
                    store.check_cancelled()?;
                    compute_tally(store, service, level, piece, current_run, now_ms)?
                }
            }
        };
        out.push((date, Some((level.clone(), tally))));
    }
    Ok(out)
}

/// The level a day is judged by: the one in force on the first day of its
/// month (the SLA window).
fn level_for(service: &Service, day: NaiveDate) -> Option<&ServiceLevel> {
    let first = NaiveDate::from_ymd_opt(
        chrono::Datelike::year(&day),
        chrono::Datelike::month(&day),
        1,
    )?;
    service.level_on(first)
}

/// The level in force for a window starting at `start_ms` (the first day
/// of its month), as [`service_tally`] wants it.
pub fn level_at(service: &Service, start_ms: i64) -> Option<&ServiceLevel> {
    level_for(service, day_of(start_ms)?)
}

/// Day results not yet kept for closed days, newest first, for at most
/// `max_days` days (back to the first run, and no more than
/// [`BACKFILL_DAYS`]): records to queue for the writer.
pub fn backfill(
    store: &Store,
    inv: &Inventory,
    current_run: Option<i64>,
    now_ms: i64,
    max_days: usize,
) -> Result<Vec<Record>, LedgerError> {
    let Some(first_run) = store.first_run_start()? else {
        return Ok(Vec::new());
    };
    let from = first_run.max(now_ms - BACKFILL_DAYS * 86_400_000);
    let through_id = store.last_transition_id()?;
    let kept = store.day_results_kept(from - 86_400_000)?;
    let has = |kind: &str, key: &str, day: i64, fp: &str| {
        kept.contains(&(kind.to_string(), key.to_string(), day, fp.to_string()))
    };
    let inv_fp = inventory_fingerprint(inv);
    // The targets that can concern each member: once, not once a day.
    let roots_of: HashMap<&str, _> = inv
        .members
        .iter()
        .map(|m| (m.id.as_str(), outages::scope(inv, &m.id).0))
        .collect();
    let mut fingerprints: HashMap<(usize, NaiveDate), String> = HashMap::new();
    let mut out = Vec::new();
    let mut done = 0;
    let mut all_days = days(Interval::new(from, now_ms));
    all_days.reverse();
    for (date, day) in all_days {
        if done >= max_days {
            break;
        }
        if !closed(day, now_ms) {
            continue;
        }
        let record = |kind: &str, key: &str, fingerprint: &str, data: String| Record::Day {
            kind: kind.to_string(),
            key: key.to_string(),
            day,
            fingerprint: fingerprint.to_string(),
            through_id,
            data,
        };
        let mut worked = false;
        let keys = std::iter::once(ALL).chain(inv.members.iter().map(|m| m.id.as_str()));
        if keys
            .clone()
            .any(|k| !has(KIND_OUTAGES, k, day.start, &inv_fp))
        {
            worked = true;
            let pieces = outages::pieces(store, inv, day, None, current_run, now_ms)?;
            for key in keys {
                let roots = roots_of.get(key);
                let mine = Kept::pack(
                    pieces
                        .iter()
                        .filter(|p| key == ALL || roots.is_some_and(|r| p.concerns(key, r))),
                );
                let data =
                    serde_json::to_string(&mine).map_err(|e| LedgerError::Db(e.to_string()))?;
                out.push(record(KIND_OUTAGES, key, &inv_fp, data));
            }
        }
        for (i, svc) in inv.services.iter().enumerate() {
            let Some(level) = level_for(svc, date) else {
                continue;
            };
            let fp = fingerprints
                .entry((i, level.valid_from))
                .or_insert_with(|| service_fingerprint(svc, level))
                .clone();
            if has(KIND_SERVICE, &svc.id, day.start, &fp) {
                continue;
            }
            worked = true;
            let tally = compute_tally(store, svc, level, day, current_run, now_ms)?;
            let data = serde_json::to_string(&tally).map_err(|e| LedgerError::Db(e.to_string()))?;
            out.push(record(KIND_SERVICE, &svc.id, &fp, data));
        }
        if worked {
            done += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{State, Transition};
    use crate::time::calendar::Month;

    use crate::time::calendar::oslo_ms as ms;

    fn tr(target: &str, at: i64, to: State) -> Record {
        Record::Transition(Transition {
            target: target.into(),
            from: State::Unmonitored,
            to,
            at: chrono::DateTime::from_timestamp_millis(at).unwrap(),
            reason: (to == State::Down).then_some(crate::model::Reason::Icmp(
                crate::model::FailureReason::Timeout,
            )),
            root_cause: None,
        })
    }

    const CONFIG: &str = "
reports: { organisation: Testregionen IKT }
members:
  - { id: a, name: Aby kommune, kommunenummer: [{ number: '3301', from: 2020-01-01 }] }
  - { id: b, name: Bekk kommune }
  - { id: c, name: Cedal kommune, merged_into: { member: a, date: 2026-11-01 } }
targets:
  - { id: core, kind: router, address: 198.51.100.1 }
  - { id: sw, kind: switch, address: 198.51.100.2, parents: [core], member: a }
  - { id: srv, kind: server, address: 198.51.100.3, parents: [sw], member: a }
  - { id: l1, kind: link, address: 198.51.100.4, member: b }
  - { id: l2, kind: link, address: 198.51.100.5, member: b }
  - { id: la, name: Samband Aby–Bekk, kind: link, address: 198.51.100.6, member: a }
services:
  - id: files
    name: Files
    serves: [a]
    targets: [srv]
    sla: [{ valid_from: 2026-01-01, objective: 99.5 }]
  - id: net
    name: Net
    serves: [b]
    redundancy: [[l1, l2]]
    sla: [{ valid_from: 2026-01-01, objective: 99.9 }]
  - id: c-web
    name: Web, Cedal
    serves: [c]
    targets: [l1]
    sla: [{ valid_from: 2026-01-01, objective: 99.0 }]
";

    /// A link's figures of the Oslo day of `d` October/November 2026: one
    /// cycle per RTT (ms) answered, `lost` echoes unanswered, and a poll
    /// at noon with `peak` utilisation out (half that in) of 1 Gbit/s.
    pub(crate) fn link_day(
        target: &str,
        m: u32,
        d: u32,
        rtts_ms: &[u64],
        lost: u32,
        peak: f64,
    ) -> Record {
        let mut s = crate::linkstats::LinkStats::default();
        for rtt in rtts_ms {
            s.record_probe(&crate::probe::IcmpOutcome::echoes(1, &[*rtt]));
        }
        s.record_probe(&crate::probe::IcmpOutcome::echoes(lost, &[]));
        let at_ms = ms(2026, m, d, 12, 0);
        let p = |r: f64| crate::linkstats::Peak {
            ratio: r,
            bps: r * 1e9,
            at_ms,
        };
        s.record_rates(p(peak), p(peak / 2.0));
        Record::LinkDay {
            target: target.into(),
            day_ms: ms(2026, m, d, 0, 0),
            data: s.to_json(),
        }
    }

    /// October 2026 (with its 25-hour day): a night outage of `core` across
    /// midnight with two targets behind it, a link pair failing one then
    /// both, an outage in the night the clocks go back (inside planned
    /// work that began in the hour that happens twice), a gap between the
    /// agent's runs, and an outage across the month's end. Member c merges
    /// into a on 1 November.
    pub(crate) fn ledger(dir: &std::path::Path) -> (Store, Inventory, i64) {
        let inv = crate::config::parse(std::path::Path::new("t.yaml"), CONFIG).unwrap();
        let mut store = Store::open(&dir.join("ledger.db")).unwrap();
        let run = store.begin_run("t", ms(2026, 10, 1, 0, 0)).unwrap();
        let spec = crate::maintenance::Spec {
            targets: vec!["srv".into()],
            category: crate::maintenance::Category::PlannedChange,
            note: Some("OS-oppgradering".into()),
            schedule: crate::maintenance::Recurrence::Once {
                start_ms: ms(2026, 10, 25, 2, 0),
                end_ms: ms(2026, 10, 25, 2, 40),
            },
        };
        store
            .declare_window(
                &crate::maintenance::Origin::Api,
                &spec,
                ms(2026, 10, 1, 0, 0),
            )
            .unwrap();
        let mut recs = vec![];
        for t in ["core", "sw", "srv", "l1", "l2"] {
            recs.push(tr(t, ms(2026, 10, 1, 0, 0), State::Up));
        }
        recs.extend([
            tr("core", ms(2026, 10, 5, 23, 30), State::Down),
            tr("sw", ms(2026, 10, 5, 23, 30), State::Unreachable),
            tr("srv", ms(2026, 10, 5, 23, 30), State::Unreachable),
            tr("core", ms(2026, 10, 6, 1, 0), State::Up),
            tr("sw", ms(2026, 10, 6, 1, 0), State::Up),
            tr("srv", ms(2026, 10, 6, 1, 0), State::Up),
            tr("l1", ms(2026, 10, 12, 10, 0), State::Down),
            tr("l2", ms(2026, 10, 12, 10, 30), State::Down),
            tr("l1", ms(2026, 10, 12, 11, 0), State::Up),
            tr("l2", ms(2026, 10, 13, 0, 0), State::Up),
            // Link la's 12 October, written twice by this run: the second
            // replaces the first.
            link_day("la", 10, 12, &[500; 10], 10, 0.9),
            link_day("la", 10, 12, &[2, 3, 4, 5, 40], 1, 0.42),
        ]);
        store.write(run, &recs, ms(2026, 10, 20, 0, 0)).unwrap();
        store.end_run(run, ms(2026, 10, 20, 0, 0)).unwrap();
        // The agent was away from 20 October to 22 October 12:00.
        let run = store.begin_run("t", ms(2026, 10, 22, 12, 0)).unwrap();
        let mut recs = vec![];
        for t in ["core", "sw", "l1", "l2"] {
            recs.push(tr(t, ms(2026, 10, 22, 12, 0), State::Up));
        }
        recs.extend([
            tr("srv", ms(2026, 10, 22, 12, 0), State::Up),
            tr("srv", ms(2026, 10, 25, 2, 30), State::Down),
            tr("srv", ms(2026, 10, 25, 2, 45), State::Up),
            tr("srv", ms(2026, 10, 31, 23, 50), State::Down),
            tr("srv", ms(2026, 11, 1, 0, 10), State::Up),
            // Another run's 12 October adds to the first run's.
            link_day("la", 10, 12, &[3, 3, 3], 0, 0.1),
            link_day("la", 10, 31, &[4; 11], 0, 0.634),
            link_day("la", 11, 1, &[800], 0, 0.99),
        ]);
        store.write(run, &recs, ms(2026, 11, 3, 0, 0)).unwrap();
        (store, inv, run)
    }

    fn answers(store: &Store, inv: &Inventory, now: i64) -> String {
        let mut out = String::new();
        for m in ["2026-10", "2026-11"] {
            let month = Month::parse(m).unwrap();
            for s in &inv.services {
                let r = super::super::compute_service_month(Some(store), s, month, None, now)
                    .unwrap()
                    .map(|(_, w, f)| (w, f));
                out += &format!("{m} {}: {r:?}\n", s.id);
            }
            let w = month.window().unwrap();
            let w = Interval::new(w.start, w.end.min(now));
            for member in [None, Some("a"), Some("b")] {
                let l = outages::list(Some(store), inv, w, member, None, now).unwrap();
                out += &format!("{m} {member:?}: {}\n", serde_json::to_string(&l).unwrap());
            }
        }
        // A window across the month's end and not on day boundaries.
        let w = Interval::new(ms(2026, 10, 5, 12, 0), ms(2026, 11, 1, 12, 0));
        let l = outages::list(Some(store), inv, w, Some("a"), None, now).unwrap();
        out += &serde_json::to_string(&l).unwrap();
        out
    }

    fn keep(store: &mut Store, run: i64, inv: &Inventory, now: i64) -> usize {
        let recs = backfill(store, inv, None, now, 1000).unwrap();
        let n = recs.len();
        store.write(run, &recs, now).unwrap();
        n
    }

    #[test]
    fn kept_days_give_the_same_answers_as_the_transitions() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, inv, run) = ledger(dir.path());
        let now = ms(2026, 11, 2, 12, 0);
        let live = answers(&store, &inv, now);
        assert!(live.contains("\"root_cause\":\"core\""), "{live}");
        let n = keep(&mut store, run, &inv, now);
        // 32 closed days (1 October to 1 November), each with the outages
        // of all and of three members, and three services.
        assert_eq!(n, 32 * 7);
        assert_eq!(backfill(&store, &inv, None, now, 1000).unwrap(), vec![]);
        let kept = answers(&store, &inv, now);
        for (l, k) in live.lines().zip(kept.lines()) {
            assert_eq!(l, k);
        }
        assert_eq!(live, kept);
        // The core outage across midnight is one outage, with its services.
        let w = Month::parse("2026-10").unwrap().window().unwrap();
        let l = outages::list(Some(&store), &inv, w, Some("a"), None, now).unwrap();
        let core: Vec<_> = l.iter().filter(|o| o.outage.target == "core").collect();
        assert_eq!(core.len(), 1);
        assert_eq!(core[0].duration_seconds, 5400.0);
        assert_eq!(core[0].outage.services, vec!["files"]);
    }

    #[test]
    fn a_late_transition_drops_the_days_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, inv, run) = ledger(dir.path());
        let now = ms(2026, 11, 2, 12, 0);
        keep(&mut store, run, &inv, now);
        // Written late, dated 15 October in the first run (a full disk
        // drained): the days from then on are dropped.
        let (first, first_end) = (run - 1, ms(2026, 10, 20, 0, 0));
        for (at, s) in [((9, 0), State::Down), ((9, 20), State::Up)] {
            let r = tr("srv", ms(2026, 10, 15, at.0, at.1), s);
            store.write(first, &[r], first_end).unwrap();
        }
        let kept = store.day_results_kept(0).unwrap();
        assert!(!kept.is_empty());
        assert!(kept
            .iter()
            .all(|(_, _, day, _)| *day < ms(2026, 10, 15, 0, 0)));
        let with_kept = answers(&store, &inv, now);
        assert!(with_kept.contains("\"start\":\"2026-10-15T09:00:00.000+02:00\""));
        // And a result computed before such a write is not kept.
        let stale = backfill(&store, &inv, None, now, 1000).unwrap();
        let r = tr("srv", ms(2026, 10, 19, 9, 0), State::Degraded);
        store.write(first, &[r], first_end).unwrap();
        store.write(run, &stale, now).unwrap();
        let kept = store.day_results_kept(0).unwrap();
        assert!(kept
            .iter()
            .all(|(_, _, day, _)| *day < ms(2026, 10, 19, 0, 0)));
        assert!(kept
            .iter()
            .any(|(_, _, day, _)| *day > ms(2026, 10, 15, 0, 0)));
        let with_kept = answers(&store, &inv, now);
        store
            .conn_for_tests()
            .execute("DELETE FROM day_results", [])
            .unwrap();
        assert_eq!(with_kept, answers(&store, &inv, now));
    }

    #[test]
    fn a_changed_config_is_not_answered_from_days_kept_before() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, mut inv, run) = ledger(dir.path());
        let now = ms(2026, 11, 2, 12, 0);
        keep(&mut store, run, &inv, now);
        let oct = Month::parse("2026-10").unwrap();
        let f = |store: &Store, inv: &Inventory| {
            super::super::compute_service_month(Some(store), &inv.services[0], oct, None, now)
                .unwrap()
                .unwrap()
                .2
        };
        let before = f(&store, &inv);
        inv.services[0].targets = vec!["l1".into()];
        let after = f(&store, &inv);
        assert_ne!(before.downtime_seconds, after.downtime_seconds);
        assert_eq!(after.downtime_seconds, 3600.0);
        // Another member for srv: the outage lists follow too.
        let w = oct.window().unwrap();
        let n = |inv: &Inventory| {
            outages::list(Some(&store), inv, w, Some("b"), None, now)
                .unwrap()
                .len()
        };
        let b_before = n(&inv);
        inv.targets[2].member = Some("b".into());
        assert!(n(&inv) > b_before);
    }

    #[test]
    fn days_follow_oslo_midnights() {
        let oct = Month::parse("2026-10").unwrap().window().unwrap();
        let d = days(oct);
        assert_eq!(d.len(), 31);
        assert_eq!(d[0].1.start, oct.start);
        assert_eq!(d[30].1.end, oct.end);
        // 25 October 2026: the clocks go back, 25 hours.
        assert_eq!(d[24].1.len(), 25 * 3_600_000);
        assert!(d.windows(2).all(|w| w[0].1.end == w[1].1.start));
        let mar = Month::parse("2026-03").unwrap().window().unwrap();
        assert_eq!(days(mar)[28].1.len(), 23 * 3_600_000);
        // A window inside one day.
        let w = Interval::new(ms(2026, 10, 3, 10, 0), ms(2026, 10, 3, 11, 0));
        assert_eq!(days(w).len(), 1);
    }
}
