//! Ledger benchmark (run by hand: `cargo bench --bench ledger`; results in
//! BENCHMARKS.md). Builds a synthetic ledger of one year, 1,000 targets and
//! ten transitions per target per day, then times what the API and the
//! monthly reports ask of it: the month SLA of every service, and one
//! member's outage list. Also measures sustained fsync'd transition writes.

use std::time::{Duration, Instant};

use chrono::{NaiveDate, TimeZone, Utc};
use utkikk::health::{State, Transition};
use utkikk::inventory::{Inventory, Member, Service, ServiceLevel};
use utkikk::ledger::{Record, Store};
use utkikk::time::calendar::Month;
use utkikk::time::schedule::Schedule;

const TARGETS: usize = 1000;
const PER_DAY: i64 = 10;
const DAYS: i64 = 365;
const SERVICES: usize = 100;

fn transition(target: &str, from: State, to: State, at_ms: i64) -> Record {
    Record::Transition(Transition {
        target: target.to_string(),
        from,
        to,
        at: Utc.timestamp_millis_opt(at_ms).single().unwrap_or_default(),
        reason: Some(utkikk::model::Reason::Icmp(
            utkikk::model::FailureReason::Timeout,
        )),
        root_cause: None,
    })
}

fn main() {
    // `cargo test --all-targets` runs bench targets too: only `cargo bench`
    // (which passes --bench) runs the measurement.
    if !std::env::args().any(|a| a == "--bench") {
        println!("ledger benchmark: run it with `cargo bench --bench ledger`");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");

    // --- sustained fsync'd writes --------------------------------------
    let skip_writes = std::env::var_os("UTKIKK_BENCH_QUERIES_ONLY").is_some();
    let path = dir.path().join("writes.db");
    let mut store = Store::open(&path).expect("open");
    let run = store.begin_run("bench", 0).expect("run");
    let t0 = Instant::now();
    let mut n = 0;
    while !skip_writes && t0.elapsed() < Duration::from_secs(5) {
        store
            .write(run, &[transition("t1", State::Up, State::Down, n)], n)
            .expect("write");
        n += 1;
    }
    let single = n as f64 / t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let mut batches = 0;
    let batch: Vec<Record> = (0..100)
        .map(|i| transition("t2", State::Up, State::Down, i))
        .collect();
    while !skip_writes && t0.elapsed() < Duration::from_secs(5) {
        store.write(run, &batch, batches).expect("write");
        batches += 1;
    }
    let batched = (batches * 100) as f64 / t0.elapsed().as_secs_f64();
    println!("sustained writes, one transaction (fsync) per transition: {single:.0}/s");
    println!("sustained writes, 100 transitions per transaction: {batched:.0}/s");

    // --- a synthetic year ----------------------------------------------
    // UTKIKK_BENCH_KEEP=DIR keeps (and reuses) the year's ledger there.
    let keep = std::env::var_os("UTKIKK_BENCH_KEEP").map(std::path::PathBuf::from);
    let path = keep
        .clone()
        .unwrap_or_else(|| dir.path().to_path_buf())
        .join("year.db");
    let reuse = keep.is_some() && path.exists();
    let mut store = Store::open(&path).expect("open");
    let year_start = Month::parse("2025-11")
        .and_then(|m| m.window())
        .map(|w| w.start)
        .unwrap_or(0);
    let day_ms = 86_400_000i64;
    // (A run begun in the past drops the kept days after it: only when
    // writing the year.)
    let run = if reuse {
        0
    } else {
        store.begin_run("bench", year_start).expect("run")
    };
    let t0 = Instant::now();
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let cycle = [
        State::Up,
        State::Degraded,
        State::Up,
        State::Down,
        State::Up,
    ];
    for d in 0..if reuse { 0 } else { DAYS } {
        let mut recs = Vec::with_capacity(TARGETS * PER_DAY as usize);
        for t in 0..TARGETS {
            let id = format!("t{t}");
            let mut times: Vec<i64> = (0..PER_DAY)
                .map(|_| (next() % day_ms as u64) as i64)
                .collect();
            times.sort_unstable();
            for (k, at) in times.into_iter().enumerate() {
                let i = (d * PER_DAY) as usize + k;
                let from = cycle[i % cycle.len()];
                let to = cycle[(i + 1) % cycle.len()];
                recs.push(transition(&id, from, to, year_start + d * day_ms + at));
            }
        }
        store
            .write(run, &recs, year_start + (d + 1) * day_ms)
            .expect("write a day");
    }
    let rows = store.count_transitions().expect("count");
    println!(
        "synthetic year: {rows} transitions for {TARGETS} targets written in {:.1} s, file {:.0} MB",
        t0.elapsed().as_secs_f64(),
        std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) as f64 / 1e6
    );
    drop(store);

    // Services: 100, each with 8 required targets and a redundancy pair,
    // serving one of seven members.
    let members: Vec<Member> = (0..7)
        .map(|i| Member {
            id: format!("m{i}"),
            name: format!("Member {i}"),
            kommunenummer: vec![],
            merged_into: None,
            status_page: Default::default(),
        })
        .collect();
    let level = ServiceLevel {
        valid_from: NaiveDate::from_ymd_opt(2020, 1, 1).unwrap_or_default(),
        objective: 0.995,
        min_coverage: 0.9,
        schedule: Schedule::Always,
        degraded_counts_as_up: true,
        unreachable_counts_as_down: false,
    };
    let services: Vec<Service> = (0..SERVICES)
        .map(|s| Service {
            id: format!("s{s}"),
            name: format!("Service {s}"),
            serves: vec![format!("m{}", s % 7)],
            targets: (0..8)
                .map(|k| format!("t{}", (s * 10 + k) % TARGETS))
                .collect(),
            redundancy: vec![vec![
                format!("t{}", (s * 10 + 8) % TARGETS),
                format!("t{}", (s * 10 + 9) % TARGETS),
            ]],
            levels: vec![level.clone()],
        })
        .collect();
    let config = format!(
        "targets:\n{}",
        (0..TARGETS)
            .map(|t| format!(
                "  - {{ id: t{t}, kind: {}, address: 198.18.{}.{} }}\n",
                // Every tenth target a link: 100 links, about 14 a member.
                if t % 10 == 0 { "link" } else { "server" },
                t / 250,
                t % 250 + 1
            ))
            .collect::<String>()
    );
    let mut inv: Inventory =
        utkikk::config::parse(std::path::Path::new("bench.yaml"), &config).expect("inventory");
    inv.members = members;
    inv.services = services;
    for (i, t) in inv.targets.iter_mut().enumerate() {
        t.member = Some(format!("m{}", (i / 10) % 7));
    }

    let month = Month::parse("2026-10").expect("month");
    let window = month.window().expect("window");
    let closed_now = window.end + day_ms;
    // The month in progress: 20 October at noon, the day so far computed.
    let running_now = window.start + 19 * day_ms + 12 * 3_600_000;
    // UTKIKK_BENCH_WARM=1: only the answers from the days kept by an
    // earlier run (for profiling).
    let warm = std::env::var_os("UTKIKK_BENCH_WARM").is_some();
    if !warm {
        Store::open(&path)
            .and_then(|mut s| s.drop_day_results())
            .expect("start cold");
    }
    seed_link_days(&path, &inv, month);
    let store = Store::open_read_only(&path).expect("open read-only");
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let time5 = |f: &dyn Fn() -> usize| {
        let mut v = Vec::new();
        let mut n = 0;
        for _ in 0..5 {
            let t0 = Instant::now();
            n = f();
            v.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        (med(&mut v), n)
    };
    let all_slas = |now: i64| {
        inv.services
            .iter()
            .filter(|s| {
                // Computed (not frozen), whether or not a frozen row exists.
                matches!(
                    utkikk::sla::compute_service_month(Some(&store), s, month, None, now),
                    Ok(Some(_))
                )
            })
            .count()
    };
    let member_outages = |now: i64| {
        let w = utkikk::time::interval::Interval::new(window.start, window.end.min(now));
        utkikk::sla::outages::list(Some(&store), &inv, w, Some("m3"), None, now)
            .map(|l| l.len())
            .unwrap_or(0)
    };
    let report = |label: &str| {
        for (when, now) in [("closed", closed_now), ("in progress", running_now)] {
            let (ms, n) = time5(&|| all_slas(now));
            println!(
                "{label}: month SLA of all {n} services ({month}, {when}): median {ms:.1} ms of 5"
            );
            let (ms, n) = time5(&|| member_outages(now));
            println!("{label}: member m3's outage list ({month}, {when}, {n} outages): median {ms:.1} ms of 5");
        }
    };
    if warm {
        report("closed days kept");
        freeze_past_months(&path, &store, &inv, month, closed_now);
        bench_reports(&store, &inv, month, closed_now);
        return;
    }
    report("nothing kept");

    // Sum up the month's closed days, as the agent does in the background.
    let t0 = Instant::now();
    let records =
        utkikk::sla::rollup::backfill(&store, &inv, None, closed_now, 31).expect("sum up days");
    let computed = t0.elapsed().as_secs_f64();
    let bytes: usize = records
        .iter()
        .map(|r| match r {
            Record::Day { data, .. } => data.len(),
            _ => 0,
        })
        .sum();
    // (Opening for writing runs the integrity check: not timed.)
    let mut w = Store::open(&path).expect("open for writing");
    let run = w.begin_run("bench-days", closed_now).expect("run");
    let t0 = Instant::now();
    w.write(run, &records, closed_now).expect("keep days");
    let written = t0.elapsed().as_secs_f64();
    w.end_run(run, closed_now).expect("end run");
    drop(w);
    println!(
        "summing up the 31 closed days of the month: {} results ({:.1} MB of JSON) computed in {computed:.1} s, written in {:.2} s",
        records.len(),
        bytes as f64 / 1e6,
        written
    );
    report("closed days kept");
    freeze_past_months(&path, &store, &inv, month, closed_now);
    bench_reports(&store, &inv, month, closed_now);
    let now = closed_now;

    // The closed month frozen, as the agent does ten minutes after its end:
    // then each service's month is one row.
    let frozen: Vec<Record> = inv
        .services
        .iter()
        .filter_map(|s| {
            let result = utkikk::sla::freeze_month(&store, s, month, now).ok()??;
            Some(Record::Frozen {
                kind: utkikk::sla::FROZEN_SERVICE.to_string(),
                id: s.id.clone(),
                month: month.to_string(),
                result,
            })
        })
        .collect();
    if !frozen.is_empty() {
        let mut w = Store::open(&path).expect("open for writing");
        let run = w.begin_run("bench-freeze", now).expect("run");
        w.write(run, &frozen, now).expect("freeze");
        w.end_run(run, now).expect("end run");
    }
    let mut frozen_ms = Vec::new();
    for _ in 0..5 {
        let t0 = Instant::now();
        for s in &inv.services {
            let _ = utkikk::sla::service_month(Some(&store), s, month, None, now);
        }
        frozen_ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "month SLA of all {SERVICES} services ({month}, closed and frozen): median {:.2} ms of 5",
        med(&mut frozen_ms)
    );
}

/// Peak resident memory so far (VmHWM), in MB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// All seven members' reports plus the regional overview, as `utkikk
/// report --all` writes them, in each form: time and peak memory.
/// Each link's days of the month, as the agent keeps them (once): echoes
/// every 10 s, three a cycle (25,920 a day), RTTs spread over 1–60 ms, one
/// in a thousand lost, and a peak poll.
fn seed_link_days(path: &std::path::Path, inv: &Inventory, month: Month) {
    use utkikk::linkstats::{LinkStats, Peak};
    let window = month.window().expect("window");
    let links: Vec<&str> = inv
        .targets
        .iter()
        .filter(|t| t.kind == utkikk::inventory::TargetKind::Link)
        .map(|t| t.id.as_str())
        .collect();
    let mut w = Store::open(path).expect("open for writing");
    if !w
        .link_days(&links, window.start, window.end)
        .expect("link days")
        .is_empty()
    {
        return;
    }
    let t0 = Instant::now();
    let run = w.begin_run("bench-links", window.end).expect("run");
    let mut records = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for (i, link) in links.iter().enumerate() {
        for day in 0..31 {
            let day_ms = utkikk::sla::rollup::day_of(window.start + day * 86_400_000 + 43_200_000)
                .and_then(utkikk::sla::rollup::day_start)
                .expect("day");
            let rtts: Vec<Duration> = (0..25_894)
                .map(|_| {
                    // xorshift: a spread of RTTs, skewed low.
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let u = (x % 10_000) as f64 / 10_000.0;
                    Duration::from_micros((1_000.0 + 59_000.0 * u * u * u) as u64 + i as u64)
                })
                .collect();
            let mut stats = LinkStats::default();
            stats.record_probe(&utkikk::probe::IcmpOutcome {
                at: Utc::now(),
                address: None,
                sent: 25_920,
                received: rtts.len() as u32,
                rtts,
                rtt_clock: None,
                failure: None,
            });
            let at_ms = day_ms + 14 * 3_600_000;
            let r = (day as f64 + 1.0) / 40.0;
            stats.record_rates(
                Peak {
                    ratio: r,
                    bps: r * 1e9,
                    at_ms,
                },
                Peak {
                    ratio: r / 2.0,
                    bps: r * 5e8,
                    at_ms,
                },
            );
            records.push(Record::LinkDay {
                target: link.to_string(),
                day_ms,
                data: stats.to_json(),
            });
        }
    }
    let bytes: usize = records
        .iter()
        .map(|r| match r {
            Record::LinkDay { data, .. } => data.len(),
            _ => 0,
        })
        .sum();
    w.write(run, &records, window.end).expect("link days");
    w.end_run(run, window.end).expect("end run");
    println!(
        "seeded {} link days ({:.1} MB) in {:.1} s",
        records.len(),
        bytes as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );
}

/// Freeze the services' results of the eleven months before `month` that
/// the synthetic year covers (as the agent does when each closes), so the
/// reports' twelve-month trend has figures to read. Once per kept ledger.
fn freeze_past_months(
    path: &std::path::Path,
    store: &Store,
    inv: &Inventory,
    month: Month,
    now: i64,
) {
    let t0 = Instant::now();
    let mut frozen = Vec::new();
    let mut m = month;
    for _ in 0..11 {
        m = m.prev();
        for s in &inv.services {
            if let Some(result) = utkikk::sla::freeze_month(store, s, m, now).ok().flatten() {
                frozen.push(Record::Frozen {
                    kind: utkikk::sla::FROZEN_SERVICE.to_string(),
                    id: s.id.clone(),
                    month: m.to_string(),
                    result,
                });
            }
        }
    }
    if !frozen.is_empty() {
        let n = frozen.len();
        let mut w = Store::open(path).expect("open for writing");
        let run = w.begin_run("bench-freeze-past", now).expect("run");
        w.write(run, &frozen, now).expect("freeze");
        w.end_run(run, now).expect("end run");
        println!(
            "froze {n} service months before {month} (for the reports' trend) in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
    }
}

fn bench_reports(store: &Store, inv: &Inventory, month: Month, now: i64) {
    use utkikk::report::{write_files, Format, Lang, Who};
    for (name, format) in [
        ("pdf", Format::Pdf),
        ("json", Format::Json),
        ("html", Format::Html),
        ("csv", Format::Csv),
    ] {
        let out = tempfile::tempdir().expect("tempdir");
        // Reset the peak to now (Linux: clear_refs 5).
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let mut times = Vec::new();
        let mut files = 0;
        for _ in 0..3 {
            let t0 = Instant::now();
            files = write_files(
                Some(store),
                inv,
                &Who::All,
                month,
                format,
                Lang::Nb,
                out.path(),
                None,
                now,
            )
            .map(|f| f.len())
            .expect("reports");
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "reports --all --format {name} ({month}, {files} files): median {:.0} ms of 3, peak RSS {:.0} MB",
            times[1],
            peak_rss_mb()
        );
    }
}
