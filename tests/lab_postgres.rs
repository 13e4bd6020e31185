//! The PostgreSQL ledger (`ledger.backend: postgres`) against a real
//! server in each scenario's namespace (tests/lab/pg.rs): every record
//! reaches it exactly once, across server crashes under load, restarts of
//! the agent and several agents; TLS with the config's CA; the connection
//! string's password nowhere in logs or metrics.

mod lab;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use lab::pg::Postgres;
use lab::{far_host_v4, restore, sh, silence, wait_until, Agent, Certs, FarHost, FAST};
use rusqlite::{Connection, OpenFlags};
use utkikk::inventory::LedgerBackend;
use utkikk::ledger::shared::Reader;
use utkikk::ledger::{Ledger, Record};
use utkikk::metrics::{Format, Metrics};
use utkikk::model::secret::Secret;
use utkikk::model::{State, Transition};
use utkikk::sla::timeline::{StateKey, Timeline};
use utkikk::sla::vantage;
use utkikk::time::interval::Interval;

const DEADLINE: Duration = Duration::from_secs(60);
const TOKEN: &str = "lab-api-token-2b9e";

fn backend(pg: &Postgres) -> LedgerBackend {
    LedgerBackend::Postgres {
        url: Secret::derived(pg.url()),
        ca_pem: None,
    }
}

/// A ledger in `dir` for agent `id`, copying to `pg`.
fn shipping_ledger(
    pg: &Postgres,
    dir: &std::path::Path,
    id: &str,
    started: chrono::DateTime<Utc>,
) -> Ledger {
    Ledger::start(
        dir,
        id,
        started,
        Metrics::new(id, &[]),
        vec![],
        &backend(pg),
    )
    .unwrap()
}

fn transition(i: i64) -> Record {
    let (from, to) = if i % 2 == 0 {
        (State::Up, State::Down)
    } else {
        (State::Down, State::Up)
    };
    Record::Transition(Transition {
        target: format!("t{}", i % 7),
        from,
        to,
        at: Utc::now() + TimeDelta::milliseconds(i),
        reason: None,
        root_cause: (i % 3 == 0).then(|| "core".to_string()),
    })
}

fn metric(m: &Metrics, name: &str) -> f64 {
    m.encode(Format::PrometheusText)
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn local(dir: &std::path::Path) -> Connection {
    Connection::open_with_flags(dir.join("ledger.db"), OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the SQLite file")
}

/// What the server holds of one file's transitions, in the file's words:
/// (local id, target, from, to, at, root cause), in id order.
type Row = (i64, String, String, String, i64, Option<String>);

fn in_postgres(pg: &Postgres, agent: &str) -> Vec<Row> {
    if pg.count("SELECT count(*) FROM pg_tables WHERE tablename = 'transitions'") == 0 {
        return Vec::new();
    }
    pg.client()
        .query(
            "SELECT t.local_id, t.target, t.from_state, t.to_state, t.at_ms, t.root_cause
             FROM transitions t JOIN runs r ON r.id = t.run_id WHERE r.agent = $1 ORDER BY t.local_id",
            &[&agent],
        )
        .expect("query PostgreSQL")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect()
}

fn in_sqlite(dir: &std::path::Path) -> Vec<Row> {
    let c = local(dir);
    let mut st = c
        .prepare("SELECT id, target, from_state, to_state, at_ms, root_cause FROM transitions ORDER BY id")
        .expect("prepare");
    st.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

lab_test!(
    every_record_reaches_postgres_once_across_crashes_under_load,
    || {
        let mut pg = Postgres::start(5432, None);
        let dir = tempfile::tempdir().unwrap();
        let metrics = Metrics::new("lab", &[]);
        let ledger = Ledger::start(
            dir.path(),
            "lab",
            Utc::now(),
            metrics.clone(),
            vec![],
            &backend(&pg),
        )
        .unwrap();
        for i in 0..300 {
            ledger.record(transition(i));
        }
        ledger.flush().unwrap();
        wait_until("300 transitions in PostgreSQL", DEADLINE, || {
            in_postgres(&pg, "lab").len() == 300
        });
        assert_eq!(in_postgres(&pg, "lab"), in_sqlite(dir.path()));

        // The server crashes while records keep coming; they are
        // acknowledged (committed to the file) all the same, and copied
        // once it is back. A writer keeps going through it all.
        let writer = {
            let ledger = ledger.clone();
            std::thread::spawn(move || {
                for i in 300..3000 {
                    ledger.record(transition(i));
                    if i % 100 == 0 {
                        ledger.flush().unwrap();
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                ledger.flush().unwrap();
            })
        };
        wait_until("some copied after the first 300", DEADLINE, || {
            in_postgres(&pg, "lab").len() > 400
        });
        pg.halt();
        wait_until("the failure seen", DEADLINE, || {
            metric(&metrics, "utkikk_ledger_postgres_up") == 0.0
        });
        let during = in_sqlite(dir.path()).len();
        wait_until("records acknowledged while it is down", DEADLINE, || {
            in_sqlite(dir.path()).len() > during + 200
        });
        pg.resume();
        writer.join().unwrap();
        wait_until("all 3000 in PostgreSQL", DEADLINE, || {
            in_postgres(&pg, "lab").len() >= 3000
        });
        let copied = in_postgres(&pg, "lab");
        assert_eq!(copied.len(), 3000, "nothing duplicated");
        assert_eq!(copied, in_sqlite(dir.path()), "nothing lost or changed");
        assert!(metric(&metrics, "utkikk_ledger_ship_errors_total") >= 1.0);
        wait_until("backlog drained", DEADLINE, || {
            metric(&metrics, "utkikk_ledger_ship_backlog_records") == 0.0
                && metric(&metrics, "utkikk_ledger_postgres_up") == 1.0
        });

        // A clean stop reaches the server; a second run is a second row.
        ledger.stop().unwrap();
        drop(ledger);
        assert_eq!(
            pg.count("SELECT count(*) FROM runs WHERE clean = 1 AND stopped_ms IS NOT NULL"),
            1
        );
        let again = shipping_ledger(&pg, dir.path(), "lab", Utc::now());
        again.record(transition(3000));
        again.flush().unwrap();
        // Another agent, its own file, into the same database at once.
        let dir2 = tempfile::tempdir().unwrap();
        let other = shipping_ledger(&pg, dir2.path(), "lab2", Utc::now());
        for i in 0..50 {
            other.record(transition(i));
        }
        other.flush().unwrap();
        wait_until("both agents' records in PostgreSQL", DEADLINE, || {
            in_postgres(&pg, "lab").len() == 3001 && in_postgres(&pg, "lab2").len() == 50
        });
        assert_eq!(in_postgres(&pg, "lab2"), in_sqlite(dir2.path()));
        assert_eq!(
            pg.count("SELECT count(DISTINCT journal) FROM runs"),
            2,
            "each file is its own journal"
        );
        assert_eq!(pg.count("SELECT count(*) FROM runs"), 3);
        again.stop().unwrap();
        other.stop().unwrap();
        assert_eq!(
            pg.count("SELECT version FROM schema_version"),
            utkikk::ledger::pg::MIGRATIONS.len() as i64
        );
    }
);

lab_test!(
    the_agent_copies_over_tls_and_never_shows_the_password,
    || {
        let _far = far_host_v4(&["198.51.100.1/24"]);
        let dir = tempfile::tempdir().unwrap();
        let certs = Certs::make(dir.path(), &["127.0.0.1"]);
        let pg = Postgres::start(5432, Some(&certs));
        let password = "pg-lab-pass-93fe1c";
        let yaml = format!(
            "agent: {{ id: lab }}\n{FAST}\nledger: {{ backend: postgres, url: \"env:UTKIKK_PG_URL\", ca_file: {} }}\ntargets:\n  - {{ id: sw1, kind: switch, address: 198.51.100.1 }}\n  - {{ id: sw2, kind: switch, address: 198.51.100.1, agents: [elsewhere] }}\nservices:\n  - {{ id: mine, name: Mine, targets: [sw1], sla: [{{ valid_from: 2024-01-01, objective: 99.5 }}] }}\n  - {{ id: split, name: Split, targets: [sw1, sw2], sla: [{{ valid_from: 2024-01-01, objective: 99.5 }}] }}\n",
            certs.path("ca.pem")
        );
        let mut agent = Agent::prepare(&yaml);
        agent.env = vec![(
            "UTKIKK_PG_URL".into(),
            format!("postgresql://utkikk:{password}@127.0.0.1:5432/postgres?sslmode=verify-full"),
        )];
        agent.spawn();
        agent.wait_state("sw1", "up", DEADLINE);
        wait_until("sw1's transition to up in PostgreSQL", DEADLINE, || {
            pg.count(
                "SELECT count(*) FROM transitions t JOIN runs r ON r.id = t.run_id
                 WHERE r.agent = 'lab' AND t.target = 'sw1' AND t.to_state = 'up'",
            ) == 1
        });
        assert_eq!(
            pg.count(
                "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                 WHERE a.application_name = 'utkikk' AND s.ssl"
            ),
            1,
            "the agent's connection uses TLS"
        );
        let metrics = agent.metrics();
        assert!(metrics.contains("utkikk_ledger_postgres_up 1"), "{metrics}");
        // sw2 is watched by another agent only: this one never probes it.
        assert_eq!(agent.state("sw2"), "unmonitored");
        assert!(
            !metrics.contains("utkikk_target_state{target=\"sw2\""),
            "no state series for a target another agent watches"
        );
        assert_eq!(
            pg.count("SELECT count(*) FROM transitions WHERE target = 'sw2'"),
            0
        );
        // A service with a part another agent watches is that agent's to
        // tell: no live series here (one unmonitored for ever would page
        // for coverage); a service of its own targets has them.
        wait_until("mine's live series", DEADLINE, || {
            agent
                .metrics()
                .contains("utkikk_service_up{service=\"mine\"} 1")
        });
        let metrics = agent.metrics();
        for name in ["utkikk_service_up", "utkikk_service_monitored"] {
            let split = format!("{name}{{service=\"split\"}}");
            assert!(!metrics.contains(&split), "{split}: {metrics}");
        }
        assert_eq!(agent.stop(), Some(0));
        assert_eq!(
            pg.count("SELECT count(*) FROM runs WHERE agent = 'lab' AND clean = 1"),
            1,
            "the clean stop reached the server"
        );
        for (what, text) in [("log", agent.log()), ("metrics", metrics)] {
            assert!(!text.contains(password), "the password in the {what}");
        }

        // A server whose certificate the CA did not sign is refused, and
        // the error names the certificate, not the password.
        let other_dir = dir.path().join("other");
        std::fs::create_dir_all(&other_dir).unwrap();
        let other = Certs::make(&other_dir, &["127.0.0.1"]);
        let ca = std::fs::read(other.path("ca.pem")).unwrap();
        let url = Secret::derived(format!(
            "postgresql://utkikk:{password}@127.0.0.1:5432/postgres?sslmode=verify-full"
        ));
        let e = utkikk::ledger::pg::connect(&url, Some(&ca))
            .err()
            .expect("a certificate from another CA is refused");
        let e = e.to_string();
        assert!(e.contains("certificate"), "{e}");
        assert!(!e.contains(password), "{e}");
    }
);

/// `target` moves `from` → `to` at `at`.
fn moved(target: &str, from: State, to: State, at: chrono::DateTime<Utc>) -> Record {
    Record::Transition(Transition {
        target: target.into(),
        from,
        to,
        at,
        reason: None,
        root_cause: None,
    })
}

fn down_spans(t: &Timeline) -> Vec<(i64, i64)> {
    t.states
        .get(&StateKey::of(State::Down))
        .map(|s| s.spans().iter().map(|i| (i.start, i.end)).collect())
        .unwrap_or_default()
}

lab_test!(
    two_agents_one_record_up_from_either_down_only_when_both_agree,
    || {
        let pg = Postgres::start(5432, None);
        let t0 = Utc::now() - TimeDelta::seconds(60);
        let ms = |s: i64| t0 + TimeDelta::seconds(s);
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let start = |dir: &std::path::Path, id: &str, at| shipping_ledger(&pg, dir, id, at);
        let a = start(dir_a.path(), "a", t0);
        let b = start(dir_b.path(), "b", t0);
        let (up, down, unmon) = (State::Up, State::Down, State::Unmonitored);
        for t in ["x", "y", "z"] {
            a.record(moved(t, unmon, up, ms(1)));
            b.record(moved(t, unmon, up, ms(1)));
        }
        // x and z: only a sees them fail (its own uplink, say); y: both
        // do, b two seconds later and for two seconds longer.
        for t in ["x", "y", "z"] {
            a.record(moved(t, up, down, ms(10)));
            a.record(moved(t, down, up, ms(20)));
        }
        // w: watched by a alone; b's view of it (up) does not count.
        a.record(moved("w", unmon, up, ms(1)));
        a.record(moved("w", up, down, ms(10)));
        a.record(moved("w", down, up, ms(20)));
        b.record(moved("w", unmon, up, ms(1)));
        b.record(moved("y", up, down, ms(12)));
        b.record(moved("y", down, up, ms(22)));
        a.flush().unwrap();
        b.flush().unwrap();
        // a is stopped for a while (an upgrade) and comes back; b watches.
        a.stop().unwrap();
        drop(a);
        let gap_from = Utc::now();
        wait_until("the clock moves on past a's stop", DEADLINE, || {
            Utc::now() > gap_from + TimeDelta::milliseconds(300)
        });
        let a = start(dir_a.path(), "a", Utc::now());
        for t in ["x", "y", "z"] {
            a.record(moved(t, unmon, up, Utc::now()));
        }
        a.flush().unwrap();
        a.stop().unwrap();
        b.stop().unwrap();
        wait_until("three clean runs in PostgreSQL", DEADLINE, || {
            pg.count("SELECT count(*) FROM runs WHERE clean = 1") == 3
        });
        let end = pg.count("SELECT max(stopped_ms) FROM runs WHERE agent = 'b'");
        let window = Interval::new(ms(1).timestamp_millis(), end);

        let mut reader = Reader::connect(&Secret::derived(pg.url()), None).unwrap();
        // z is watched by a and b, with a designated; the rest by anyone.
        let both = ["a".to_string(), "b".to_string()];
        let only_a = ["a".to_string()];
        let watch = |t: &str| vantage::Watch {
            agents: match t {
                "z" => &both[..],
                "w" => &only_a[..],
                _ => &[],
            },
            designated: (t == "z").then_some("a"),
        };
        let merged =
            vantage::timelines(&mut reader, ["x", "y", "z", "w"], window, &[], watch).unwrap();
        let (x, y, z) = (&merged["x"], &merged["y"], &merged["z"]);
        let at = |s: i64| ms(s).timestamp_millis();

        // x: a saw it down, b up: up all along, and no time unobserved.
        assert_eq!(down_spans(&x.timeline), vec![]);
        assert_eq!(x.timeline.summary().coverage, 1.0);
        assert_eq!(x.timeline.ms(State::Up), window.len());
        let a_view = x.views.iter().find(|(agent, _)| agent == "a").map(|v| &v.1);
        let a_gap: i64 = x
            .views
            .iter()
            .filter(|(agent, _)| agent == "a")
            .map(|(_, t)| t.ms(State::Unmonitored))
            .sum();
        assert!(a_gap > 0, "a's own view has its stop as unmonitored");
        assert_eq!(x.views.len(), 2, "one view per file: a (two runs), b");

        // y: down while both agree, one outage, both agents named.
        assert_eq!(down_spans(&y.timeline), vec![(at(12), at(20))]);
        let views = y.views();
        assert_eq!(
            vantage::seen_down_by(&views, Interval::new(at(12), at(20))),
            vec!["a".to_string(), "b".to_string()]
        );
        assert_eq!(y.timeline.summary().coverage, 1.0);

        // z: a is its designated agent, believed when it says down.
        assert_eq!(down_spans(&z.timeline), vec![(at(10), at(20))]);

        // w: only a's view counts, so a's down is the record's.
        let w = &merged["w"];
        assert_eq!(down_spans(&w.timeline), vec![(at(10), at(20))]);
        assert_eq!(w.views.len(), 1);

        // One agent's view from the server is its own file's record.
        let store = utkikk::ledger::Store::open_read_only(&dir_a.path().join("ledger.db")).unwrap();
        let own = utkikk::sla::timelines(&store, ["x"], window, None, end).unwrap();
        let a_view = a_view.expect("a's view of x");
        assert_eq!(&own["x"], a_view);
    }
);

/// When `agent` first recorded each of `targets` up (ms), latest of them.
fn all_up_since(pg: &Postgres, agent: &str, targets: &[&str]) -> Option<i64> {
    let firsts: Vec<i64> = targets
        .iter()
        .filter_map(|t| {
            pg.client()
                .query_one(
                    "SELECT min(t.at_ms) FROM transitions t JOIN runs r ON r.id = t.run_id
                     WHERE r.agent = $1 AND t.target = $2 AND t.to_state = 'up'",
                    &[&agent, t],
                )
                .ok()?
                .get::<_, Option<i64>>(0)
        })
        .collect();
    (firsts.len() == targets.len())
        .then(|| firsts.into_iter().max())
        .flatten()
}

/// The state `agent` last recorded for `target` in PostgreSQL.
fn last_state(pg: &Postgres, agent: &str, target: &str) -> Option<String> {
    pg.client()
        .query_opt(
            "SELECT t.to_state FROM transitions t JOIN runs r ON r.id = t.run_id
             WHERE r.agent = $1 AND t.target = $2 ORDER BY t.at_ms DESC, t.local_id DESC LIMIT 1",
            &[&agent, &target],
        )
        .ok()
        .flatten()
        .map(|r| r.get(0))
}

/// The files `utkikk report` writes with `config` for `month`, by name.
fn report_files(
    config: &std::path::Path,
    pg: &Postgres,
    month: &str,
    format: &str,
) -> std::collections::BTreeMap<String, Vec<u8>> {
    let out = tempfile::tempdir().unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_utkikk"))
        .args(["report", "--config"])
        .arg(config)
        .args(["--month", month, "--all", "--format", format, "--out"])
        .arg(out.path())
        .env("UTKIKK_PG_URL", pg.url())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(!err.contains("secret"), "{err}");
    std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

lab_test!(a_month_report_made_on_either_agent_is_identical, || {
    let pg = Postgres::start(5432, None);
    let oslo = |d: u32, h: u32, m: u32, s: u32| {
        chrono::TimeZone::with_ymd_and_hms(&chrono_tz::Europe::Oslo, 2026, 10, d, h, m, s)
            .single()
            .expect("a time in October")
            .with_timezone(&Utc)
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = shipping_ledger(&pg, dir_a.path(), "a", oslo(1, 0, 0, 0));
    let b = shipping_ledger(&pg, dir_b.path(), "b", oslo(1, 0, 0, 0));
    let (up, down, unmon, unreach) = (
        State::Up,
        State::Down,
        State::Unmonitored,
        State::Unreachable,
    );
    for l in [&a, &b] {
        for t in ["core", "srv"] {
            l.record(moved(t, unmon, up, oslo(1, 0, 0, 1)));
        }
    }
    // a's own uplink: a loses core (and srv behind it); b sees both up.
    a.record(moved("core", up, down, oslo(10, 3, 0, 0)));
    a.record(moved("srv", up, unreach, oslo(10, 3, 0, 0)));
    a.record(moved("core", down, up, oslo(10, 3, 30, 0)));
    a.record(moved("srv", unreach, up, oslo(10, 3, 30, 0)));
    // srv fails: both see it, b a cycle later.
    a.record(moved("srv", up, down, oslo(20, 14, 0, 0)));
    b.record(moved("srv", up, down, oslo(20, 14, 0, 1)));
    a.record(moved("srv", down, up, oslo(20, 14, 30, 0)));
    b.record(moved("srv", down, up, oslo(20, 14, 30, 1)));
    for l in [&a, &b] {
        l.flush().unwrap();
        l.stop().unwrap();
    }
    drop((a, b));
    wait_until("both runs copied", DEADLINE, || {
        pg.count("SELECT count(*) FROM runs WHERE clean = 1") == 2
    });
    let config = |id: &str, dir: &std::path::Path| {
        let path = dir.join("utkikk.yaml");
        std::fs::write(
                &path,
                format!(
                    "agent: {{ id: {id}, data_dir: \"{}\" }}\nledger: {{ backend: postgres, url: \"env:UTKIKK_PG_URL\" }}\nreports: {{ organisation: Lab IKS }}\nmembers:\n  - {{ id: m1, name: M1 }}\ntargets:\n  - {{ id: core, kind: router, address: 198.51.100.1 }}\n  - {{ id: srv, kind: server, address: 198.51.100.10, member: m1, parents: [core] }}\nservices:\n  - {{ id: web, name: Web, serves: [m1], targets: [srv], sla: [{{ valid_from: 2024-01-01, objective: 99.5 }}] }}\n",
                    dir.display()
                ),
            )
            .unwrap();
        path
    };
    let (conf_a, conf_b) = (config("a", dir_a.path()), config("b", dir_b.path()));
    let json = |files: std::collections::BTreeMap<String, Vec<u8>>| {
        files
            .into_iter()
            .map(|(name, bytes)| {
                let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                // When it was made: the one thing that differs.
                v.as_object_mut().map(|o| o.remove("generated"));
                (name, v)
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (from_a, from_b) = (
        json(report_files(&conf_a, &pg, "2026-10", "json")),
        json(report_files(&conf_b, &pg, "2026-10", "json")),
    );
    assert!(!from_a.is_empty());
    assert_eq!(from_a, from_b);
    let csv = report_files(&conf_a, &pg, "2026-10", "csv");
    assert_eq!(csv, report_files(&conf_b, &pg, "2026-10", "csv"));
    // The report to read (HTML, and the PDF from the same cells) names
    // the agents that saw the outage.
    let html = report_files(&conf_a, &pg, "2026-10", "html");
    assert!(
        html.values()
            .any(|f| String::from_utf8_lossy(f).contains("sett av a, b")),
        "{:?}",
        html.keys()
    );
    let m1 = from_a
        .iter()
        .find(|(name, _)| name.contains("m1"))
        .map(|(_, v)| v)
        .expect("m1's report");
    // One outage: srv's, while both agents saw it, naming both; a's
    // uplink is not one.
    let outages = m1["outages"].as_array().expect("outages");
    assert_eq!(outages.len(), 1, "{m1}");
    assert_eq!(outages[0]["root_cause"], "srv");
    assert_eq!(outages[0]["agents"], serde_json::json!(["a", "b"]));
    assert_eq!(outages[0]["duration_seconds"], serde_json::json!(1799.0));
    let web = &m1["services"][0];
    assert_eq!(web["outages"], serde_json::json!(1), "{web}");
    assert_eq!(web["downtime_seconds"], serde_json::json!(1799.0), "{web}");
    assert!(web["coverage"].as_f64().unwrap_or(0.0) > 0.99, "{web}");
    assert_eq!(web["met"], serde_json::json!(true), "{web}");
    // From a's own file (scope agent): its uplink's fault is an outage
    // of core.
    let out = tempfile::tempdir().unwrap();
    let own = std::process::Command::new(env!("CARGO_BIN_EXE_utkikk"))
        .args(["report", "--scope", "agent", "--config"])
        .arg(&conf_a)
        .args([
            "--month", "2026-10", "--member", "m1", "--format", "json", "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        own.status.success(),
        "{}",
        String::from_utf8_lossy(&own.stderr)
    );
    let file = std::fs::read_dir(out.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let own: serde_json::Value =
        serde_json::from_slice(&std::fs::read(file.path()).unwrap()).unwrap();
    let roots: Vec<&str> = own["outages"]
        .as_array()
        .expect("outages")
        .iter()
        .filter_map(|o| o["root_cause"].as_str())
        .collect();
    assert_eq!(roots, ["core", "srv"], "{own}");

    // The region's October frozen in the shared record (as an agent's
    // jobs do once the month is over and every agent's records of it are
    // copied): once only; then both agents' reports are the same to the
    // byte, `generated` included, and say they are frozen; November's
    // shows October in its history.
    let inv = utkikk::config::parse_with(
        &conf_a,
        &std::fs::read_to_string(&conf_a).unwrap(),
        &utkikk::config::Secrets::Skip,
    )
    .unwrap();
    let october = utkikk::time::calendar::Month::parse("2026-10").unwrap();
    let mut reader = Reader::connect(&Secret::derived(pg.url()), None).unwrap();
    let now = Utc::now().timestamp_millis();
    let w = october.window().unwrap();
    assert_eq!(
        reader.unsettled(w.start, w.end).unwrap(),
        Vec::<String>::new(),
        "both agents' files are copied through October"
    );
    let kept = utkikk::report::freeze_shared(&mut reader, &inv, october, now).unwrap();
    assert_eq!(kept, Some(3), "web's month, m1's report, the overview");
    assert_eq!(
        utkikk::report::freeze_shared(&mut reader, &inv, october, now).unwrap(),
        Some(0)
    );
    let (frozen_a, frozen_b) = (
        report_files(&conf_a, &pg, "2026-10", "json"),
        report_files(&conf_b, &pg, "2026-10", "json"),
    );
    assert_eq!(frozen_a, frozen_b);
    let m1: serde_json::Value = serde_json::from_slice(
        frozen_a
            .iter()
            .find(|(name, _)| name.contains("m1"))
            .map(|(_, v)| v)
            .expect("m1's report"),
    )
    .unwrap();
    assert_eq!(m1["services"][0]["frozen"], serde_json::json!(true), "{m1}");
    assert_eq!(m1["outages"][0]["agents"], serde_json::json!(["a", "b"]));
    let november = report_files(&conf_b, &pg, "2026-11", "json");
    let nov: serde_json::Value = serde_json::from_slice(
        november
            .iter()
            .find(|(name, _)| name.contains("m1"))
            .map(|(_, v)| v)
            .expect("m1's November"),
    )
    .unwrap();
    let history = &nov["services"][0]["history"];
    assert_eq!(history[11]["month"], "2026-10", "{history}");
    assert_eq!(
        history[11]["availability"], m1["services"][0]["availability"],
        "{history}"
    );
});

lab_test!(two_vantage_points_one_outage_only_when_both_see_it, || {
    // The region (a far host): srv and sw at 198.51.100.10/.11. Agent
    // a runs here and reaches it over mon0; agent b runs in a site
    // namespace of its own and reaches it over its own uplink. The
    // lab's PostgreSQL listens here, for b on 198.18.1.1.
    let far = FarHost::new();
    far.link("mon0", "far0");
    sh("ip addr add 198.18.0.1/30 dev mon0");
    far.sh("ip addr add 198.18.0.2/30 dev far0");
    far.sh("ip route add local 198.51.100.0/24 dev lo");
    sh("ip route add 198.51.100.0/24 via 198.18.0.2");
    let site = FarHost::new();
    site.sh(&format!(
        "ip link add bup type veth peer name far1 netns {}",
        far.pid
    ));
    site.sh("ip link set bup up && ip addr add 198.18.0.5/30 dev bup");
    site.sh("ip route add 198.51.100.0/24 via 198.18.0.6");
    far.sh("ip link set far1 up && ip addr add 198.18.0.6/30 dev far1");
    site.link("lab1", "site0");
    sh("ip addr add 198.18.1.1/30 dev lab1");
    site.sh("ip addr add 198.18.1.2/30 dev site0");
    let pg = Postgres::start_also_on(5432, "198.18.1.1");

    let yaml = |id: &str, listen: &str| {
        format!(
                "agent: {{ id: {id}, listen_address: \"{listen}\", api_token: \"env:UTKIKK_API_TOKEN\" }}\n{FAST}\nledger: {{ backend: postgres, url: \"env:UTKIKK_PG_URL\" }}\nmembers:\n  - {{ id: m1, name: M1, status_page: {{ public: true }} }}\ntargets:\n  - {{ id: srv, name: Filtjener, kind: server, address: 198.51.100.10, member: m1 }}\n  - {{ id: sw, name: Kjernesvitsj, kind: switch, address: 198.51.100.11, member: m1 }}\nservices:\n  - {{ id: net, name: Net, serves: [m1], targets: [sw], sla: [{{ valid_from: 2024-01-01, objective: 99.5 }}] }}\n"
            )
    };
    let url =
        |host: &str| format!("host={host} port=5432 user=utkikk dbname=postgres sslmode=disable");
    let mut a = Agent::prepare(&yaml("a", "127.0.0.1:9474"));
    a.env = vec![
        ("UTKIKK_PG_URL".into(), url("127.0.0.1")),
        ("UTKIKK_API_TOKEN".into(), TOKEN.into()),
    ];
    a.spawn();
    let mut b = Agent::prepare(&yaml("b", "198.18.1.2:9474"));
    b.env = vec![
        ("UTKIKK_PG_URL".into(), url("198.18.1.1")),
        ("UTKIKK_API_TOKEN".into(), TOKEN.into()),
    ];
    b.wrapper = vec![
        "nsenter".into(),
        "-t".into(),
        site.pid.to_string(),
        "-n".into(),
        "--".into(),
    ];
    b.launch();
    let targets = ["srv", "sw"];
    wait_until("both agents see both targets up", DEADLINE, || {
        all_up_since(&pg, "a", &targets).is_some() && all_up_since(&pg, "b", &targets).is_some()
    });
    let from = all_up_since(&pg, "a", &targets)
        .max(all_up_since(&pg, "b", &targets))
        .expect("both up");

    // a's own uplink fails: the region's answers to a are lost. a sees
    // both targets down; b sees them up.
    far.sh("ip route replace blackhole 0.0.0.0/0 table 100");
    far.sh("ip rule add to 198.18.0.1 lookup 100 pref 10");
    a.wait_state("sw", "down", DEADLINE);
    a.wait_state("srv", "down", DEADLINE);
    far.sh("ip rule del to 198.18.0.1 lookup 100 pref 10");
    a.wait_state("sw", "up", DEADLINE);
    a.wait_state("srv", "up", DEADLINE);
    assert_eq!(last_state(&pg, "b", "srv").as_deref(), Some("up"));

    // srv itself fails: both see it.
    let failed = Utc::now().timestamp_millis();
    silence(&far, &["198.51.100.10"]);
    a.wait_state("srv", "down", DEADLINE);
    wait_until("b records srv down", DEADLINE, || {
        last_state(&pg, "b", "srv").as_deref() == Some("down")
    });
    // While it lasts, the region's list has it going on (the agents'
    // runs go on past their last copied heartbeat).
    wait_until(
        "srv's outage going on in the region's list",
        DEADLINE,
        || {
            let (status, body) = a.get("/api/v1/outages");
            let list: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            status == 200
                && list["outages"].as_array().is_some_and(|l| {
                    l.iter()
                        .any(|o| o["root_cause"] == "srv" && o["continues_after"] == true)
                })
        },
    );
    restore(&far, &["198.51.100.10"]);
    a.wait_state("srv", "up", DEADLINE);
    wait_until("b records srv up again", DEADLINE, || {
        last_state(&pg, "b", "srv").as_deref() == Some("up")
    });

    // a is stopped for a while (an upgrade); b watches on.
    assert_eq!(a.stop(), Some(0));
    let stopped = pg.count("SELECT max(stopped_ms) FROM runs WHERE agent = 'a'");
    wait_until("b's run copied past a's stop by 3 s", DEADLINE, || {
        pg.count("SELECT max(last_seen_ms) FROM runs WHERE agent = 'b'") > stopped + 3000
    });
    a.spawn();
    a.wait_state("srv", "up", DEADLINE);
    a.wait_state("sw", "up", DEADLINE);
    let to = Utc::now().timestamp_millis();
    wait_until("both agents' runs copied past now", DEADLINE, || {
        pg.count("SELECT coalesce(min(m), 0) FROM (SELECT max(last_seen_ms) AS m FROM runs GROUP BY agent) x") >= to
    });
    // The API answers from the merged record by default (scope=region),
    // from its own file with scope=agent.
    let rfc = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .expect("a time")
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let window_q = format!("from={}&to={}", rfc(from), rfc(to));
    let api = |t: &str, scope: &str| -> serde_json::Value {
        let (status, body) = a.get(&format!(
            "/api/v1/targets/{t}/availability?{window_q}{scope}"
        ));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("JSON")
    };
    let (srv_api, sw_api, srv_own) = (api("srv", ""), api("sw", ""), api("srv", "&scope=agent"));
    // The service over sw: a's own file has a's uplink fault as its
    // downtime; the region has none, and less time unmonitored.
    let sla = |scope: &str| -> serde_json::Value {
        let month = Utc::now()
            .with_timezone(&chrono_tz::Europe::Oslo)
            .format("%Y-%m");
        let (status, body) = a.get(&format!("/api/v1/services/net/sla?month={month}{scope}"));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("JSON")
    };
    let (net_region, net_own) = (sla(""), sla("&scope=agent"));
    let month = Utc::now()
        .with_timezone(&chrono_tz::Europe::Oslo)
        .format("%Y-%m");
    let (status, body) = a.get(&format!("/api/v1/members/m1/sla?month={month}"));
    assert_eq!(status, 200, "{body}");
    let m1: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    // The outage list: the region's has srv's outage alone, naming both
    // agents; a's own file also has sw's (its uplink).
    let outages = |scope: &str| -> serde_json::Value {
        let (status, body) = a.get(&format!("/api/v1/outages?{window_q}{scope}"));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("JSON")
    };
    let (listed, listed_own) = (outages(""), outages("&scope=agent"));
    let roots = |v: &serde_json::Value| -> Vec<String> {
        v["outages"]
            .as_array()
            .expect("outages")
            .iter()
            .filter_map(|o| o["root_cause"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(listed["scope"], "region", "{listed}");
    assert_eq!(roots(&listed), ["srv"], "{listed}");
    assert_eq!(
        listed["outages"][0]["agents"],
        serde_json::json!(["a", "b"]),
        "{listed}"
    );
    assert_eq!(listed["outages"][0]["services"], serde_json::json!([]));
    assert_eq!(listed_own["scope"], "agent");
    assert!(
        roots(&listed_own).contains(&"sw".to_string()),
        "{listed_own}"
    );
    assert!(
        listed_own["outages"][0].get("agents").is_none(),
        "{listed_own}"
    );
    // A note on the region's outage, written through a: kept in a's file,
    // copied to the shared record, shown with the region's outage.
    let note = format!(
        r#"{{"root_cause":"srv","start":{},"note":"Strømbrudd"}}"#,
        listed["outages"][0]["start"]
    );
    let (status, body) = a.write("POST", "/api/v1/outages/notes", Some(TOKEN), &note);
    assert_eq!(status, 200, "{body}");
    wait_until("the note in the region's list", DEADLINE, || {
        outages("")["outages"][0]["note"] == "Strømbrudd"
    });
    // The member's status page reads the region's record too: srv's
    // outage with its note, nothing of a's uplink.
    wait_until("the region's outage on m1's status feed", DEADLINE, || {
        let (status, feed) = a.get("/status/m1/feed.atom?lang=en");
        assert_eq!(status, 200, "{feed}");
        assert!(!feed.contains("Kjernesvitsj"), "{feed}");
        feed.contains("Filtjener") && feed.contains("Strømbrudd")
    });
    assert_eq!(a.stop(), Some(0));
    assert_eq!(b.stop(), Some(0));
    wait_until("three clean runs in PostgreSQL", DEADLINE, || {
        pg.count("SELECT count(*) FROM runs WHERE clean = 1") == 3
    });

    let window = Interval::new(from, to);
    let mut reader = Reader::connect(&Secret::derived(pg.url()), None).unwrap();
    let merged = vantage::timelines(&mut reader, targets, window, &[], |_| {
        vantage::Watch::default()
    })
    .unwrap();
    let view = |t: &str, agent: &str| {
        merged[t]
            .views
            .iter()
            .find(|(a, _)| a == agent)
            .map(|(_, tl)| tl.clone())
            .expect("a view")
    };
    // sw: only a saw it fail (its uplink): no outage, fully covered.
    let sw = &merged["sw"];
    assert!(view("sw", "a").ms(State::Down) > 0, "a saw sw down");
    assert_eq!(down_spans(&sw.timeline), vec![], "{sw:?}");
    assert_eq!(sw.timeline.summary().coverage, 1.0);
    // srv: one outage, from both agents, dated within one interval of
    // the failure (1 s; plus an echo's timeout, 0.4 s, either way: a
    // cycle begun just before it can fail, and each date is its streak's
    // first cycle).
    let srv = &merged["srv"];
    let spans = down_spans(&srv.timeline);
    assert_eq!(spans.len(), 1, "{spans:?}");
    let (start, end) = spans[0];
    assert_eq!(
        vantage::seen_down_by(&srv.views(), Interval::new(start, end)),
        vec!["a".to_string(), "b".to_string()]
    );
    let near = |at: i64| (failed - 1400..=failed + 1400).contains(&at);
    assert!(
        near(start),
        "the record dates it {} ms after the failure",
        start - failed
    );
    for agent in ["a", "b"] {
        let own = down_spans(&view("srv", agent));
        let last = own.last().expect("each agent saw srv down");
        assert!(
            near(last.0),
            "{agent} dates it {} ms after the failure",
            last.0 - failed
        );
        assert!(
            last.0 <= start,
            "the record's outage begins once both agree"
        );
    }
    // a's stop is unmonitored in its view, not in the record.
    assert!(view("srv", "a").ms(State::Unmonitored) >= 3000);
    assert_eq!(srv.timeline.summary().coverage, 1.0);
    assert_eq!(sw.timeline.ms(State::Unmonitored), 0);
    // The API's region figures are the record's; its agent figures a's own.
    for (answer, merged) in [(&srv_api, &srv.timeline), (&sw_api, &sw.timeline)] {
        assert_eq!(answer["scope"], "region");
        let s = merged.summary();
        assert_eq!(
            answer["coverage"],
            serde_json::json!(s.coverage),
            "{answer}"
        );
        assert_eq!(
            answer["seconds"]["down"],
            serde_json::json!(s.seconds["down"]),
            "{answer}"
        );
        let agents: Vec<&str> = answer["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .filter_map(|a| a["agent"].as_str())
            .collect();
        assert_eq!(agents, ["a", "b"], "{answer}");
    }
    assert_eq!(net_region["scope"], "region", "{net_region}");
    assert_eq!(m1["services"][0]["scope"], "region", "{m1}");
    for k in ["downtime_seconds", "outages"] {
        assert_eq!(
            m1["services"][0]["figures"][k], net_region["figures"][k],
            "{k}: {m1}"
        );
    }
    // Asked a moment apart while the agents run: the month so far grew.
    let up = |v: &serde_json::Value| v["figures"]["up_seconds"].as_f64().unwrap_or(f64::NAN);
    assert!(
        (up(&m1["services"][0]) - up(&net_region)).abs() < 2.0,
        "{m1} {net_region}"
    );
    assert_eq!(net_own["scope"], "agent", "{net_own}");
    let fig = |v: &serde_json::Value, k: &str| v["figures"][k].as_f64().unwrap_or(f64::NAN);
    assert_eq!(fig(&net_region, "downtime_seconds"), 0.0, "{net_region}");
    assert!(fig(&net_own, "downtime_seconds") > 0.0, "{net_own}");
    assert!(
        fig(&net_region, "unmonitored_seconds") < fig(&net_own, "unmonitored_seconds"),
        "{net_region} {net_own}"
    );
    assert_eq!(srv_own["scope"], "agent");
    assert!(
        srv_own["coverage"].as_f64().unwrap_or(1.0) < 1.0,
        "{srv_own}"
    );
    for log in [a.log(), b.log()] {
        assert!(!log.contains("panicked"), "{log}");
    }
});

/// Every row of `sql_lite` from the file and `sql_pg` from the server (the
/// same columns, as text), for one file.
fn rows_both(
    dir: &std::path::Path,
    pg: &Postgres,
    sql_lite: &str,
    sql_pg: &str,
) -> (Vec<String>, Vec<String>) {
    let c = local(dir);
    let journal: String = c
        .query_row("SELECT value FROM meta WHERE key = 'journal'", [], |r| {
            r.get(0)
        })
        .expect("journal");
    let mut st = c.prepare(sql_lite).expect("prepare");
    let lite: Vec<String> = st
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let server: Vec<String> = pg
        .client()
        .query(sql_pg, &[&journal])
        .expect("query PostgreSQL")
        .iter()
        .map(|r| r.get(0))
        .collect();
    (lite, server)
}

lab_test!(
    every_kind_of_row_and_a_killed_run_reach_postgres_as_in_the_file,
    || {
        let far = far_host_v4(&["198.51.100.1/24"]);
        let mut pg = Postgres::start(5432, None);
        // Device events and link days, written through the ledger.
        let dir = tempfile::tempdir().unwrap();
        let ledger = shipping_ledger(&pg, dir.path(), "lab", Utc::now());
        for i in 0..20 {
            ledger.record(Record::Reboot {
                target: format!("sw{}", i % 3),
                at: Utc::now() + TimeDelta::milliseconds(i),
                uptime_seconds: i as f64,
            });
            // The same link and day again: the file keeps the last row.
            ledger.record(Record::LinkDay {
                target: format!("link{}", i % 2),
                day_ms: 1_764_543_600_000,
                data: format!("{{\"n\":{i}}}"),
            });
        }
        ledger.flush().unwrap();
        ledger.stop().unwrap();
        drop(ledger);
        let events = || {
            rows_both(
                dir.path(),
                &pg,
                "SELECT id || ' ' || target || ' ' || kind || ' ' || at_ms || ' ' || coalesce(detail, '') FROM device_events ORDER BY id",
                "SELECT e.local_id || ' ' || e.target || ' ' || e.kind || ' ' || e.at_ms || ' ' || coalesce(e.detail, '')
                 FROM device_events e JOIN runs r ON r.id = e.run_id WHERE r.journal = $1 ORDER BY e.local_id",
            )
        };
        let links = || {
            rows_both(
                dir.path(),
                &pg,
                "SELECT target || ' ' || day_ms || ' ' || data FROM link_days ORDER BY target, day_ms",
                "SELECT l.target || ' ' || l.day_ms || ' ' || l.data
                 FROM link_days l JOIN runs r ON r.id = l.run_id WHERE r.journal = $1 ORDER BY l.target, l.day_ms",
            )
        };
        let (lite, server) = events();
        assert_eq!(lite.len(), 20);
        assert_eq!(server, lite, "device events");
        let (lite, server) = links();
        assert_eq!(lite.len(), 2, "{lite:?}");
        assert_eq!(server, lite, "link days: the last of each");

        // An agent killed (SIGKILL) mid-run, then started again: its first
        // run ends where the file says it was last seen, in both.
        let yaml = format!(
            "agent: {{ id: killed }}\n{FAST}\nledger: {{ backend: postgres, url: \"env:UTKIKK_PG_URL\" }}\ntargets:\n  - {{ id: sw1, kind: switch, address: 198.51.100.1 }}\n"
        );
        let mut agent = Agent::prepare(&yaml);
        agent.env = vec![("UTKIKK_PG_URL".into(), pg.url())];
        agent.spawn();
        agent.wait_state("sw1", "up", DEADLINE);
        wait_until("sw1 up in PostgreSQL", DEADLINE, || {
            pg.count("SELECT count(*) FROM transitions WHERE target = 'sw1'") == 1
        });
        agent.kill();
        // Until it runs again, what its file holds is not known to be in
        // PostgreSQL: a closed month waits for it before it is frozen.
        let killed_at = Utc::now().timestamp_millis();
        let since = pg.count("SELECT min(started_ms) FROM runs WHERE agent = 'killed'");
        let mut reader = Reader::connect(&Secret::derived(pg.url()), None).unwrap();
        assert_eq!(reader.unsettled(since, killed_at).unwrap(), ["killed"]);
        agent.spawn();
        agent.wait_state("sw1", "up", DEADLINE);
        wait_until("its file copied whole past the kill", DEADLINE, || {
            reader.unsettled(since, killed_at).unwrap().is_empty()
        });
        drop(reader);
        // With the server away, the region's figures are refused with why
        // (this agent's own still answer); back, they answer again.
        let month = Utc::now()
            .with_timezone(&chrono_tz::Europe::Oslo)
            .format("%Y-%m")
            .to_string();
        let path = format!("/api/v1/targets/sw1/availability?month={month}");
        pg.halt();
        let (status, body) = agent.get(&path);
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("the shared record cannot be read"), "{body}");
        assert_eq!(agent.get(&format!("{path}&scope=agent")).0, 200);
        pg.resume();
        wait_until("the region's figures again", DEADLINE, || {
            agent.get(&path).0 == 200
        });
        assert_eq!(agent.stop(), Some(0));
        let data = agent.data_dir();
        let runs = || {
            rows_both(
                &data,
                &pg,
                "SELECT id || ' ' || agent || ' ' || started_ms || ' ' || last_seen_ms || ' ' || coalesce(stopped_ms, -1) || ' ' || clean FROM runs ORDER BY id",
                "SELECT local_id || ' ' || agent || ' ' || started_ms || ' ' || last_seen_ms || ' ' || coalesce(stopped_ms, -1) || ' ' || clean
                 FROM runs WHERE journal = $1 ORDER BY local_id",
            )
        };
        let transitions = || {
            rows_both(
                &data,
                &pg,
                "SELECT id || ' ' || run_id || ' ' || target || ' ' || to_state || ' ' || at_ms FROM transitions ORDER BY id",
                "SELECT t.local_id || ' ' || r.local_id || ' ' || t.target || ' ' || t.to_state || ' ' || t.at_ms
                 FROM transitions t JOIN runs r ON r.id = t.run_id WHERE r.journal = $1 ORDER BY t.local_id",
            )
        };
        let (lite, server) = runs();
        assert_eq!(lite.len(), 2, "{lite:?}");
        // The next start closes the killed run where it was last seen,
        // not clean.
        let killed: Vec<&str> = lite[0].split(' ').collect();
        assert_eq!(killed[3], killed[4], "{lite:?}");
        assert_eq!(killed[5], "0", "{lite:?}");
        assert_eq!(server, lite, "runs");
        let (lite, server) = transitions();
        assert!(lite.len() >= 2, "{lite:?}");
        assert_eq!(server, lite, "transitions");
        drop(far);
    }
);
