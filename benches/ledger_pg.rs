//! The PostgreSQL ledger next to the SQLite one, on the synthetic year of
//! `benches/ledger.rs` (run by hand through `scripts/bench-pg`, which
//! starts a throwaway server; results in BENCHMARKS.md):
//!
//! - how many records a second the shipper copies from an agent's file
//!   into the server (the whole year, the backlog of an agent whose server
//!   was away; fsync'd commits on both sides);
//! - the month's timelines of all 1,000 targets: from the SQLite file, and
//!   from the server with one agent and with two agents merged;
//! - the merged month made into a ledger in memory (what region outage
//!   lists, reports and status pages are computed from), and the month's
//!   outage list from it next to the same list from the file.
//!
//! Needs `UTKIKK_BENCH_PG_URL` (an empty database it may wipe) and
//! `UTKIKK_BENCH_KEEP` (the directory with the ledger bench's `year.db`).

use std::path::Path;
use std::time::Instant;

use utkikk::ledger::pg::{self, Shipper};
use utkikk::ledger::shared::Reader;
use utkikk::ledger::Store;
use utkikk::model::secret::Secret;
use utkikk::sla::vantage;
use utkikk::time::calendar::Month;

const TARGETS: usize = 1000;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("PostgreSQL ledger benchmark: run it with scripts/bench-pg");
        return;
    }
    let (Some(url), Some(keep)) = (
        std::env::var_os("UTKIKK_BENCH_PG_URL"),
        std::env::var_os("UTKIKK_BENCH_KEEP"),
    ) else {
        eprintln!("set UTKIKK_BENCH_PG_URL and UTKIKK_BENCH_KEEP (see scripts/bench-pg)");
        std::process::exit(2);
    };
    let url = Secret::derived(url.to_string_lossy().into_owned());
    let year = Path::new(&keep).join("year.db");
    assert!(
        year.exists(),
        "no {}: run the ledger bench with UTKIKK_BENCH_KEEP first",
        year.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");

    let mut client = pg::connect(&url, None).expect("connect");
    client
        .batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        .expect("wipe the bench database");
    drop(client);

    // Two agents' files: the year as it is, and a copy of it under
    // another agent and journal (the same observations from a second
    // vantage point: the merge has twice the rows to read).
    let mut files = Vec::new();
    for agent in ["bench", "bench2"] {
        let path = dir.path().join(format!("{agent}.db"));
        // The file and its WAL together (no writer is running): the
        // ledger bench leaves its last writes in the WAL.
        std::fs::copy(&year, &path).expect("copy the year");
        let wal = year.with_extension("db-wal");
        if wal.exists() {
            std::fs::copy(&wal, path.with_extension("db-wal")).expect("copy the WAL");
        }
        drop(Store::open(&path).expect("bring the copy to the current schema"));
        let c = rusqlite::Connection::open(&path).expect("open the copy");
        c.execute_batch(&format!(
            "UPDATE meta SET value = lower(hex(randomblob(16))) WHERE key = 'journal';
             UPDATE runs SET agent = '{agent}';"
        ))
        .expect("make it its own agent's file");
        files.push((agent, path, c));
    }

    let month = Month::parse("2026-10").expect("month");
    let window = month.window().expect("window");
    let now = window.end + 86_400_000;
    let targets: Vec<String> = (0..TARGETS).map(|t| format!("t{t}")).collect();
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let time5 = |f: &mut dyn FnMut() -> usize| {
        let mut v = Vec::new();
        let mut n = 0;
        for _ in 0..5 {
            let t0 = Instant::now();
            n = f();
            v.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        (med(&mut v), n)
    };

    let store = Store::open_read_only(&files[0].1).expect("open read-only");
    let (ms, n) = time5(&mut || {
        utkikk::sla::timelines(
            &store,
            targets.iter().map(String::as_str),
            window,
            None,
            now,
        )
        .map(|t| t.len())
        .unwrap_or(0)
    });
    println!("SQLite: {month} timelines of {n} targets (one agent's file): median {ms:.0} ms of 5");

    let mut reader = None;
    for (k, (agent, _, local)) in files.iter().enumerate() {
        let journal: String = local
            .query_row("SELECT value FROM meta WHERE key = 'journal'", [], |r| {
                r.get(0)
            })
            .expect("journal");
        let mut shipper =
            Shipper::open(pg::connect(&url, None).expect("connect"), &journal).expect("open");
        let t0 = Instant::now();
        let mut rows = 0;
        loop {
            let s = shipper.ship(local).expect("ship");
            rows += s.rows;
            if s.backlog == 0 && s.rows == 0 {
                break;
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "PostgreSQL: agent {agent}'s year copied: {rows} records in {secs:.1} s = {:.0} records/s",
            rows as f64 / secs
        );
        let reader = reader.get_or_insert_with(|| Reader::connect(&url, None).expect("reader"));
        let (ms, n) = time5(&mut || {
            vantage::timelines(
                reader,
                targets.iter().map(String::as_str),
                window,
                &[],
                |_| vantage::Watch::default(),
            )
            .map(|t| t.len())
            .unwrap_or(0)
        });
        println!(
            "PostgreSQL: {month} timelines of {n} targets, {} agent(s) merged: median {ms:.0} ms of 5",
            k + 1
        );
    }
    // What region answers (outage lists, reports, status pages) are made
    // from: the merged month as a ledger in memory, then the same code as
    // for a file.
    let config = format!(
        "targets:\n{}",
        (0..TARGETS)
            .map(|t| format!(
                "  - {{ id: t{t}, kind: server, address: 198.18.{}.{} }}\n",
                t / 250,
                t % 250 + 1
            ))
            .collect::<String>()
    );
    let inv = utkikk::config::parse(Path::new("bench.yaml"), &config).expect("inventory");
    let reader = reader.as_mut().expect("reader");
    let (ms, n) = time5(&mut || {
        vantage::materialise(reader, &inv, window, None)
            .and_then(|s| s.count_transitions())
            .unwrap_or(0) as usize
    });
    println!(
        "PostgreSQL: {month} of {TARGETS} targets, 2 agents merged, made a ledger in memory ({n} transitions): median {ms:.0} ms of 5"
    );
    let region = vantage::materialise(reader, &inv, window, None).expect("materialise");
    for (label, s) in [("SQLite", &store), ("PostgreSQL merged", &region)] {
        let (ms, n) = time5(&mut || {
            utkikk::sla::outages::list(Some(s), &inv, window, None, None, now)
                .map(|l| l.len())
                .unwrap_or(0)
        });
        println!("{label}: {month} outage list of all {TARGETS} targets ({n} outages): median {ms:.0} ms of 5");
    }
    let mut client = pg::connect(&url, None).expect("connect");
    let size: i64 = client
        .query_one("SELECT pg_database_size(current_database())", &[])
        .expect("size")
        .get(0);
    println!("PostgreSQL: database {:.0} MB", size as f64 / 1e6);
}
