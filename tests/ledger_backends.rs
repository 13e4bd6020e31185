//! The ledger's contract, run against both backends: the same scenarios,
//! each written through [`Ledger`] and read back from the record it keeps
//! — the agent's SQLite file (`backend: sqlite`), or the record in
//! PostgreSQL made into a ledger for the answer (`backend: postgres`, see
//! `utkikk::sla::vantage::materialise`) — with the same assertions on
//! timelines, outages, their root causes and services, notes, link
//! figures and a member's report. PostgreSQL is a real server in the
//! scenario's namespace (tests/lab/pg.rs).

mod lab;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use lab::pg::Postgres;
use lab::wait_until;
use utkikk::inventory::{Inventory, LedgerBackend};
use utkikk::ledger::shared::Reader;
use utkikk::ledger::{Ledger, OutageNote, Record, Store};
use utkikk::metrics::Metrics;
use utkikk::model::secret::Secret;
use utkikk::model::{State, Transition};
use utkikk::time::interval::Interval;

const DEADLINE: Duration = Duration::from_secs(60);

/// Where a scenario's ledger keeps its record.
struct Bench {
    pg: Option<Postgres>,
    dir: tempfile::TempDir,
}

impl Bench {
    fn sqlite() -> Bench {
        Bench {
            pg: None,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn postgres() -> Bench {
        Bench {
            pg: Some(Postgres::start(5432, None)),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("a")
    }

    /// A run of agent `a` begun at `started`.
    fn ledger(&self, started: DateTime<Utc>) -> Ledger {
        let backend = match &self.pg {
            None => LedgerBackend::Sqlite,
            Some(pg) => LedgerBackend::Postgres {
                url: Secret::derived(pg.url()),
                ca_pem: None,
            },
        };
        Ledger::start(
            &self.data_dir(),
            "a",
            started,
            Metrics::new("a", &[]),
            vec![],
            &backend,
        )
        .unwrap()
    }

    /// The agent's own file.
    fn file(&self) -> Store {
        Store::open_read_only(&self.data_dir().join("ledger.db")).unwrap()
    }

    /// The record over `window` as the backend keeps it, once every run
    /// has ended: the file itself, or what PostgreSQL holds of it (waited
    /// for until it has every run and transition the file has).
    fn record(&self, inv: &Inventory, window: Interval) -> Store {
        let Some(pg) = &self.pg else {
            return self.file();
        };
        let count = |sql: &str| {
            rusqlite::Connection::open_with_flags(
                self.data_dir().join("ledger.db"),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .unwrap()
            .query_row(sql, [], |r| r.get::<_, i64>(0))
            .unwrap()
        };
        let kinds = [
            "SELECT count(*) FROM runs WHERE clean = 1",
            "SELECT count(*) FROM transitions",
            "SELECT count(*) FROM link_days",
            "SELECT count(*) FROM maintenance",
            "SELECT CAST(coalesce(sum(coalesce(withdrawn_ms, 0)), 0) AS BIGINT) FROM maintenance",
            "SELECT count(*) FROM outage_notes",
            "SELECT CAST(coalesce(sum(written_ms), 0) AS BIGINT) FROM outage_notes",
        ];
        let want: Vec<i64> = kinds.iter().map(|sql| count(sql)).collect();
        wait_until("the file's record in PostgreSQL", DEADLINE, || {
            kinds.iter().map(|sql| pg.count(sql)).collect::<Vec<_>>() == want
        });
        let mut reader = Reader::connect(&Secret::derived(pg.url()), None).unwrap();
        utkikk::sla::vantage::materialise(&mut reader, inv, window, None).unwrap()
    }

    /// Stop `ledger`'s run; the window from `from_ms` to its end, and the
    /// record over it.
    fn close(&self, ledger: Ledger, inv: &Inventory, from_ms: i64) -> (Interval, Store) {
        ledger.flush().unwrap();
        ledger.stop().unwrap();
        drop(ledger);
        let end = self.file().last_run().unwrap().map(|r| r.end_ms).unwrap();
        let window = Interval::new(from_ms, end);
        (window, self.record(inv, window))
    }

    /// The agents an outage names: none from one agent's own file.
    fn named(&self) -> serde_json::Value {
        match self.pg {
            None => serde_json::Value::Null,
            Some(_) => serde_json::json!(["a"]),
        }
    }
}

/// Each scenario twice: on SQLite alone, and with PostgreSQL.
macro_rules! on_both {
    ($sqlite:ident, $postgres:ident, $body:expr) => {
        lab_test!($sqlite, || {
            let body: fn(Bench) = $body;
            body(Bench::sqlite())
        });
        lab_test!($postgres, || {
            let body: fn(Bench) = $body;
            body(Bench::postgres())
        });
    };
}

fn inventory() -> Inventory {
    utkikk::config::parse(
        Path::new("contract.yaml"),
        "agent: { id: a }\n\
         reports: { organisation: Lab IKS }\n\
         members:\n  - { id: m1, name: M1 }\n\
         targets:\n\
         \x20 - { id: up1, kind: link, address: 198.51.100.1, serves: [m1] }\n\
         \x20 - { id: sw, kind: switch, address: 198.51.100.2, parents: [up1], member: m1 }\n\
         \x20 - { id: srv, kind: server, address: 198.51.100.3, parents: [sw], member: m1 }\n\
         services:\n\
         \x20 - { id: web, name: Web, serves: [m1], targets: [srv], sla: [{ valid_from: 2024-01-01, objective: 99.5 }] }\n",
    )
    .unwrap()
}

fn moved(target: &str, from: State, to: State, at: DateTime<Utc>) -> Record {
    Record::Transition(Transition {
        target: target.into(),
        from,
        to,
        at,
        reason: None,
        root_cause: None,
    })
}

fn link_day(at: DateTime<Utc>, sent: u64, received: u64) -> Record {
    let day = utkikk::time::oslo::date_of(at.timestamp_millis())
        .and_then(utkikk::time::oslo::day_start)
        .unwrap();
    Record::LinkDay {
        target: "up1".into(),
        day_ms: day,
        data: format!("{{\"sent\":{sent},\"received\":{received},\"rtt_us\":[]}}"),
    }
}

on_both!(
    runs_outages_notes_and_links_read_back_alike_sqlite,
    runs_outages_notes_and_links_read_back_alike_postgres,
    |bench| {
        let inv = inventory();
        let (up, down, unmon, unreach) = (
            State::Up,
            State::Down,
            State::Unmonitored,
            State::Unreachable,
        );
        // Two minutes ago, a run: sw fails (srv unreachable behind it),
        // later srv fails of its own; the link's echoes of the day.
        let t0 = Utc::now() - TimeDelta::seconds(120);
        let at = |s: i64| t0 + TimeDelta::seconds(s);
        let ledger = bench.ledger(t0);
        for t in ["up1", "sw", "srv"] {
            ledger.record(moved(t, unmon, up, at(1)));
        }
        ledger.record(moved("sw", up, down, at(10)));
        ledger.record(moved("srv", up, unreach, at(10)));
        ledger.record(moved("sw", down, up, at(20)));
        ledger.record(moved("srv", unreach, up, at(20)));
        ledger.record(moved("srv", up, down, at(40)));
        ledger.record(moved("srv", down, up, at(45)));
        ledger.record(link_day(at(50), 100, 95));
        ledger.flush().unwrap();
        ledger
            .set_outage_note(OutageNote {
                target: "sw".into(),
                start_ms: at(10).timestamp_millis(),
                end_ms: Some(at(20).timestamp_millis()),
                note: Some("Carrier cut the fibre".into()),
            })
            .unwrap();
        ledger.stop().unwrap();
        drop(ledger);
        // Stopped a while; a second run, whose echoes add to the day's.
        let gap_from = Utc::now();
        wait_until("the clock moves past the stop", DEADLINE, || {
            Utc::now() > gap_from + TimeDelta::milliseconds(500)
        });
        let started = Utc::now();
        let ledger = bench.ledger(started);
        for t in ["up1", "sw", "srv"] {
            ledger.record(moved(t, unmon, up, started));
        }
        ledger.record(link_day(at(50), 50, 50));
        let (window, record) = bench.close(ledger, &inv, at(1).timestamp_millis());
        let end = window.end;

        // Timelines: exact, the stop unmonitored, never up.
        let tl = utkikk::sla::timelines(&record, ["up1", "sw", "srv"], window, None, end).unwrap();
        assert_eq!(tl["sw"].ms(State::Down), 10_000);
        assert_eq!(tl["srv"].ms(State::Unreachable), 10_000);
        assert_eq!(tl["srv"].ms(State::Down), 5_000);
        assert_eq!(tl["up1"].ms(State::Down), 0);
        let gap = tl["up1"].ms(State::Unmonitored);
        assert!(gap >= 500, "the stop is unmonitored: {gap} ms");
        for t in ["sw", "srv"] {
            assert_eq!(tl[t].ms(State::Unmonitored), gap, "{t}");
        }
        // The same as the file says, whichever backend.
        let own =
            utkikk::sla::timelines(&bench.file(), ["up1", "sw", "srv"], window, None, end).unwrap();
        assert_eq!(tl, own);

        // Outages: sw's (root cause; srv behind it is not one), and srv's
        // own; the note on sw's; the agents named with a shared record.
        let listed =
            utkikk::sla::outages::list(Some(&record), &inv, window, None, None, end).unwrap();
        let listed: Vec<serde_json::Value> = listed
            .iter()
            .map(|o| serde_json::to_value(o).unwrap())
            .collect();
        let roots: Vec<&str> = listed
            .iter()
            .filter_map(|o| o["root_cause"].as_str())
            .collect();
        assert_eq!(roots, ["sw", "srv"], "{listed:?}");
        assert_eq!(listed[0]["duration_seconds"], serde_json::json!(10.0));
        assert_eq!(listed[0]["services"], serde_json::json!(["web"]));
        assert_eq!(listed[0]["note"], "Carrier cut the fibre");
        assert_eq!(listed[1]["duration_seconds"], serde_json::json!(5.0));
        assert_eq!(listed[1]["services"], serde_json::json!(["web"]));
        for o in &listed {
            assert_eq!(o.get("agents").cloned().unwrap_or_default(), bench.named());
        }

        // A member's report of this month: the outages, the service's
        // figures and the link's echoes of both runs.
        let month = utkikk::time::calendar::Month::parse(&utkikk::time::oslo::month_of(
            DateTime::from_timestamp_millis(window.start).unwrap(),
        ))
        .unwrap();
        let report =
            utkikk::report::member_report(Some(&record), &inv, "m1", month, None, end).unwrap();
        let report = serde_json::to_value(&report).unwrap();
        assert_eq!(report["outages"].as_array().map(Vec::len), Some(2));
        let web = &report["services"][0];
        assert_eq!(web["downtime_seconds"], serde_json::json!(5.0), "{web}");
        assert_eq!(web["excluded_seconds"], serde_json::json!(10.0), "{web}");
        assert_eq!(web["outages"], serde_json::json!(1), "{web}");
        let link = &report["links"][0];
        assert_eq!(link["echoes"], serde_json::json!(150), "{link}");
        assert_eq!(link["loss"], serde_json::json!(5.0 / 150.0), "{link}");
    }
);

on_both!(
    a_busy_run_reads_back_as_the_file_has_it_sqlite,
    a_busy_run_reads_back_as_the_file_has_it_postgres,
    |bench| {
        let inv = inventory();
        // 3,000 changes over three targets in the last minute, some in
        // the same millisecond: the record has them all, in their order.
        let t0 = Utc::now() - TimeDelta::seconds(60);
        let ledger = bench.ledger(t0);
        let states = [State::Up, State::Down, State::Degraded, State::Unreachable];
        let targets = ["up1", "sw", "srv"];
        let mut was = [State::Unmonitored; 3];
        for i in 0..3000i64 {
            let k = (i % 3) as usize;
            let to = states[((i / 3 + k as i64) % 4) as usize];
            let at = t0 + TimeDelta::milliseconds(1 + i * 17 / 3);
            ledger.record(moved(targets[k], was[k], to, at));
            was[k] = to;
        }
        let (window, record) = bench.close(ledger, &inv, t0.timestamp_millis());
        let end = window.end;
        let read =
            |store: &Store| utkikk::sla::timelines(store, targets, window, None, end).unwrap();
        let (tl, own) = (read(&record), read(&bench.file()));
        assert_eq!(tl, own);
        for t in targets {
            let total: i64 = State::ALL.iter().map(|s| tl[t].ms(*s)).sum();
            assert_eq!(total, window.len(), "{t}: the states fill the window");
            assert!(tl[t].ms(State::Down) > 0 && tl[t].ms(State::Degraded) > 0);
        }
        let count = |store: &Store| {
            utkikk::sla::outages::list(Some(store), &inv, window, None, None, end)
                .unwrap()
                .iter()
                .map(|o| (o.outage.target.clone(), o.outage.start_ms, o.outage.end_ms))
                .collect::<Vec<_>>()
        };
        assert_eq!(count(&record), count(&bench.file()));
    }
);

on_both!(
    maintenance_windows_read_back_alike_sqlite,
    maintenance_windows_read_back_alike_postgres,
    |bench| {
        use utkikk::ledger::{MaintenanceDone, MaintenanceOp};
        use utkikk::maintenance::{Category, Recurrence, Spec};
        let inv = inventory();
        let (up, down, unmon) = (State::Up, State::Down, State::Unmonitored);
        let t0 = Utc::now();
        let ledger = bench.ledger(t0);
        for t in ["up1", "sw", "srv"] {
            ledger.record(moved(t, unmon, up, t0));
        }
        // Planned work on srv from now on (a window counts only from when
        // it was declared); one withdrawn at once, which covers nothing.
        let spec = |note: &str| Spec {
            targets: vec!["srv".into()],
            category: Category::VendorWork,
            note: Some(note.into()),
            schedule: Recurrence::Once {
                start_ms: t0.timestamp_millis(),
                end_ms: t0.timestamp_millis() + 600_000,
            },
        };
        let declared = match ledger
            .change_maintenance(MaintenanceOp::Declare(spec("Firmware")))
            .unwrap()
        {
            MaintenanceDone::Declared(w) => w,
            other => panic!("{other:?}"),
        };
        let gone = match ledger
            .change_maintenance(MaintenanceOp::Declare(spec("Cancelled")))
            .unwrap()
        {
            MaintenanceDone::Declared(w) => w,
            other => panic!("{other:?}"),
        };
        ledger
            .change_maintenance(MaintenanceOp::Withdraw(gone.id))
            .unwrap();
        let from = declared.declared_ms.max(gone.declared_ms) + 100;
        wait_until("the clock moves past the declarations", DEADLINE, || {
            Utc::now().timestamp_millis() > from + 300
        });
        let at = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap();
        ledger.record(moved("srv", up, down, at(from)));
        ledger.record(moved("srv", down, up, at(from + 200)));
        let (window, record) = bench.close(ledger, &inv, t0.timestamp_millis());
        let end = window.end;
        // srv's failure inside the window is planned: maintenance, not down.
        let tl = utkikk::sla::timelines(&record, ["srv"], window, None, end).unwrap();
        assert_eq!(tl["srv"].ms(State::Down), 0);
        assert!(tl["srv"].ms(State::Maintenance) >= 200);
        let listed =
            utkikk::sla::outages::list(Some(&record), &inv, window, None, None, end).unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert!(listed[0].outage.planned);
        assert_eq!(listed[0].duration_seconds, 0.2);
        // The report lists the window declared over its time, and the one
        // withdrawn only for the moment it was in force.
        let month = utkikk::time::calendar::Month::parse(&utkikk::time::oslo::month_of(
            DateTime::from_timestamp_millis(window.start).unwrap(),
        ))
        .unwrap();
        let report =
            utkikk::report::member_report(Some(&record), &inv, "m1", month, None, end).unwrap();
        let seconds = |note: &str| -> f64 {
            report
                .maintenance
                .iter()
                .filter(|m| m.note.as_deref() == Some(note))
                .map(|m| m.duration_seconds)
                .sum()
        };
        assert!(seconds("Firmware") >= 0.3, "{:?}", report.maintenance);
        assert!(seconds("Cancelled") < 0.1, "{:?}", report.maintenance);
        assert!(report.outages.is_empty(), "planned outages are not listed");
    }
);
