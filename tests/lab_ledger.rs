//! Lab scenarios for the availability ledger: crashes, clean stops, and the
//! availability API over it (see tests/lab/mod.rs).

mod lab;

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use lab::{conforms, far_host_v4, wait_until, Agent, FAST};
use rusqlite::{Connection, OpenFlags};

const DEADLINE: Duration = Duration::from_secs(30);

fn config() -> String {
    format!(
        "agent: {{ id: lab }}\n{FAST}\ntargets:\n  - {{ id: sw1, kind: switch, address: 198.51.100.1 }}\n  - {{ id: srv1, kind: server, address: 198.51.100.2, parents: [sw1] }}\n"
    )
}

fn written(agent: &Agent) -> f64 {
    agent
        .metrics()
        .lines()
        .find(|l| l.starts_with("utkikk_ledger_records_written_total "))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

fn open(agent: &Agent) -> Connection {
    Connection::open_with_flags(
        agent.data_dir().join("ledger.db"),
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the ledger")
}

fn json(agent: &Agent, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = agent.get(path);
    (status, serde_json::from_str(&body).unwrap_or_default())
}

lab_test!(
    sigkill_loses_no_acknowledged_record_and_the_gap_is_unmonitored,
    || {
        let far = far_host_v4(&["198.51.100.1/24", "198.51.100.2/24"]);
        let t0 = Utc::now();
        let mut agent = Agent::start(&config());
        agent.wait_state("sw1", "up", DEADLINE);
        agent.wait_state("srv1", "up", DEADLINE);
        // Make transitions happen while we kill: the far host flaps.
        let flapper = far.sh("(while true; do sysctl -qw net.ipv4.icmp_echo_ignore_all=1; sleep 2.5; sysctl -qw net.ipv4.icmp_echo_ignore_all=0; sleep 2.5; done) >/dev/null 2>&1 & echo $!");
        let flapper = flapper.trim().to_string();
        wait_until("a few transitions written", Duration::from_secs(60), || {
            written(&agent) >= 6.0
        });
        let acknowledged = written(&agent);
        let killed_at = Utc::now().timestamp_millis();
        agent.kill();

        agent.spawn();
        lab::sh(&format!("kill {flapper}"));
        far.sh("sysctl -qw net.ipv4.icmp_echo_ignore_all=0");
        wait_until("the new run recorded", DEADLINE, || {
            let c = open(&agent);
            c.query_row("SELECT count(*) FROM runs", [], |r| r.get::<_, i64>(0))
                .is_ok_and(|n| n == 2)
        });
        let c = open(&agent);
        let check: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        let stored: i64 = c
            .query_row(
                "SELECT (SELECT count(*) FROM transitions) + (SELECT count(*) FROM device_events)
                      + (SELECT count(*) FROM monthly_results) + (SELECT count(*) FROM day_results)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            stored as f64 >= acknowledged,
            "{stored} records stored, {acknowledged} acknowledged before the kill"
        );
        let (clean, stopped, started2): (i64, i64, i64) = c
        .query_row(
            "SELECT r1.clean, r1.stopped_ms, r2.started_ms FROM runs r1, runs r2 WHERE r1.id < r2.id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
        assert_eq!(clean, 0, "a killed run is not a clean stop");
        assert!(
            stopped <= killed_at,
            "the dead run ends at its last sign of life"
        );
        assert!(started2 >= killed_at);
        let gap_s = (started2 - stopped) as f64 / 1e3;

        // The gap is unmonitored in the availability figures, never up.
        let from = t0.to_rfc3339_opts(SecondsFormat::Millis, true);
        let to = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let (status, a) = json(
            &agent,
            &format!("/api/v1/targets/sw1/availability?from={from}&to={to}"),
        );
        assert_eq!(status, 200, "{a}");
        let unmonitored = a["seconds"]["unmonitored"].as_f64().unwrap();
        assert!(
            unmonitored >= gap_s,
            "unmonitored {unmonitored} s < gap {gap_s} s: {a:#}"
        );
        assert!(a["coverage"].as_f64().unwrap() < 1.0);
        let sum: f64 = a["seconds"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!(
            (sum - a["total_seconds"].as_f64().unwrap()).abs() < 0.01,
            "{a:#}"
        );
        assert!(
            a["seconds"]["down"].as_f64().unwrap() > 0.0,
            "the flapping was recorded: {a:#}"
        );

        // A clean stop is recorded as such.
        assert_eq!(agent.stop(), Some(0));
        let c = open(&agent);
        let clean: i64 = c
            .query_row("SELECT clean FROM runs ORDER BY id DESC LIMIT 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(clean, 1);
    }
);

lab_test!(availability_api_answers_and_refuses_bad_parameters, || {
    let _far = far_host_v4(&["198.51.100.1/24", "198.51.100.2/24"]);
    let agent = Agent::start(&config());
    agent.wait_state("sw1", "up", DEADLINE);
    let month = utkikk::time::oslo::month_of(Utc::now()); // months are Oslo's
    wait_until("some up time recorded", DEADLINE, || {
        let (_, a) = json(
            &agent,
            &format!("/api/v1/targets/sw1/availability?month={month}"),
        );
        a["seconds"]["up"].as_f64().is_some_and(|s| s > 1.0)
    });
    let (status, a) = json(
        &agent,
        &format!("/api/v1/targets/sw1/availability?month={month}"),
    );
    assert_eq!(status, 200);
    assert_eq!(a["target"], "sw1");
    assert_eq!(a["month"], month);
    assert_eq!(a["availability"], 1.0, "{a:#}");
    // Most of the month so far was before this agent ran: unmonitored.
    assert!(a["coverage"].as_f64().unwrap() < 1.0);
    assert!(
        a["from"].as_str().unwrap().ends_with(":00"),
        "RFC 3339 with the Oslo offset: {a}"
    );
    for s in [
        "up",
        "degraded",
        "down",
        "unreachable",
        "maintenance",
        "unmonitored",
    ] {
        assert!(a["seconds"][s].is_number(), "{s}");
    }

    for (query, parameter) in [
        ("month=2026-13", "month"),
        ("month=oct", "month"),
        ("from=yesterday&to=2026-01-01T00:00:00Z", "from"),
        ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
        ("from=2026-01-01T00:00:00Z", "to"),
        ("", "from"),
        ("month=2099-01", "month"),
    ] {
        let (status, e) = json(&agent, &format!("/api/v1/targets/sw1/availability?{query}"));
        assert_eq!(status, 400, "{query}: {e}");
        assert_eq!(e["parameter"], parameter, "{query}: {e}");
        assert!(e["error"].as_str().unwrap().starts_with(parameter));
    }
    let (status, _) = json(
        &agent,
        &format!("/api/v1/targets/nope/availability?month={month}"),
    );
    assert_eq!(status, 404);

    // axum's own refusals answer in the API's JSON shape too.
    let (status, e) = json(&agent, "/api/v1/outages?month=2026-10&month=2026-11");
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["parameter"], "month", "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("duplicate field"),
        "{e}"
    );
    let (status, e) = json(&agent, "/api/v1/targets/%FF%FE");
    assert_eq!(status, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("UTF-8"), "{e}");
    assert_eq!(e["status"], 400);
    let (status, e) = agent.write("DELETE", "/api/v1/targets", None, "");
    assert_eq!(status, 405, "{e}");
    assert_eq!(e["status"], 405, "{e}");
});

fn metric(agent: &Agent, name: &str) -> f64 {
    agent
        .metrics()
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

lab_test!(full_disk_keeps_probing_and_loses_nothing, || {
    let far = far_host_v4(&["198.51.100.1/24", "198.51.100.2/24"]);
    let mut agent = Agent::prepare(&config());
    // The data directory on a small filesystem of its own (private mounts).
    let data = agent.data_dir();
    std::fs::create_dir_all(&data).unwrap();
    lab::sh(&format!(
        "mount -t tmpfs -o size=4m tmpfs {}",
        data.display()
    ));
    agent.spawn();
    agent.wait_state("sw1", "up", DEADLINE);
    wait_until("the first records written", DEADLINE, || {
        metric(&agent, "utkikk_ledger_records_written_total") >= 2.0
    });
    // Fill the disk.
    lab::sh(&format!(
        "dd if=/dev/zero of={}/filler bs=64k >/dev/null 2>&1 || true",
        data.display()
    ));
    far.sh("sysctl -qw net.ipv4.icmp_echo_ignore_all=1");
    // Probing goes on: the state still changes ...
    agent.wait_state("sw1", "down", DEADLINE);
    // ... the ledger says it cannot write, and keeps the records.
    wait_until("ledger write errors counted", DEADLINE, || {
        metric(&agent, "utkikk_ledger_write_errors_total") > 0.0
            && metric(&agent, "utkikk_ledger_pending_records") > 0.0
    });
    assert!(
        agent.log().contains("ledger: cannot write"),
        "{}",
        agent.log()
    );
    // Outage lists say they lack what waits, and show it.
    let (status, headers, body) = agent.get_full("/api/v1/outages");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        headers.get("x-utkikk-incomplete").map(String::as_str),
        Some("ledger-not-writable")
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let (_, doc) = json(&agent, "/api/openapi.json");
    conforms(&doc, "get", "/api/v1/outages", 200, &v);
    let unwritten = v["incomplete"]["unwritten_transitions"].as_array().unwrap();
    assert!(
        unwritten
            .iter()
            .any(|t| t["target"] == "sw1" && t["to"] == "down" && t["reason_code"] == "timeout"),
        "{v:#}"
    );
    assert!(v["incomplete"]["reason"]
        .as_str()
        .unwrap()
        .contains("cannot be written"));
    far.sh("sysctl -qw net.ipv4.icmp_echo_ignore_all=0");
    agent.wait_state("sw1", "up", DEADLINE);
    // Space again: the queued records are written, none lost.
    std::fs::remove_file(data.join("filler")).unwrap();
    wait_until("the queue drained", Duration::from_secs(60), || {
        metric(&agent, "utkikk_ledger_pending_records") == 0.0
    });
    let c = open(&agent);
    let downs: i64 = c
        .query_row(
            "SELECT count(*) FROM transitions WHERE target = 'sw1' AND to_state = 'down'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let ups: i64 = c
        .query_row(
            "SELECT count(*) FROM transitions WHERE target = 'sw1' AND to_state = 'up'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!((downs, ups), (1, 2), "unmonitored→up, up→down, down→up");
    assert!(agent
        .log()
        .contains("ledger: writing again; nothing was lost"));
    let (_, headers, body) = agent.get_full("/api/v1/outages");
    assert!(!headers.contains_key("x-utkikk-incomplete"), "{headers:?}");
    assert!(!body.contains("incomplete"), "{body}");
    assert_eq!(agent.stop(), Some(0));
});

lab_test!(service_levels_from_the_ledger, || {
    let far = far_host_v4(&["198.51.100.1/24", "198.51.100.2/24", "198.51.100.3/24"]);
    // The second link on a prefix of its own: it stays when the switch's goes.
    far.sh("ip addr add 203.0.113.4/24 dev far0");
    lab::sh("ip addr add 203.0.113.254/24 dev mon0");
    let yaml = format!(
        "agent: {{ id: lab, sla_interval: 1s }}\n{FAST}\n\
         members:\n  - {{ id: kongsberg, name: Kongsberg, kommunenummer: [ {{ number: \"3006\", from: 2020-01-01, until: 2023-12-31 }}, {{ number: \"3303\", from: 2024-01-01 }} ] }}\n\
         \x20 - {{ id: nedre-eiker, name: Nedre Eiker, merged_into: {{ member: kongsberg, date: 2020-01-01 }} }}\n\
         targets:\n\
         \x20 - {{ id: sw1, kind: switch, address: 198.51.100.1 }}\n\
         \x20 - {{ id: srv1, kind: server, address: 198.51.100.2, parents: [sw1] }}\n\
         \x20 - {{ id: l1, kind: link, address: 198.51.100.3 }}\n\
         \x20 - {{ id: l2, kind: link, address: 203.0.113.4 }}\n\
         services:\n\
         \x20 - id: svc-a\n\
         \x20   name: Sak/arkiv\n\
         \x20   serves: [kongsberg]\n\
         \x20   targets: [srv1]\n\
         \x20   redundancy: [[l1, l2]]\n\
         \x20   sla: [ {{ valid_from: 2020-01-01, objective: 99.5, min_coverage: 0 }} ]\n\
         \x20 - id: svc-b\n\
         \x20   name: Future\n\
         \x20   serves: [nedre-eiker]\n\
         \x20   targets: [sw1]\n\
         \x20   sla: [ {{ valid_from: 2099-01-01, objective: 99, schedule: business_hours, business_hours: {{ days: [mon, tue, wed, thu, fri], from: \"08:00\", to: \"16:00\" }} }} ]\n\
         \x20 - {{ id: svc-c, name: Arkiv, serves: [kongsberg], targets: [srv1], sla: [ {{ valid_from: 2020-01-01, objective: 99.9 }} ] }}\n"
    );
    let agent = Agent::start(&yaml);
    for id in ["sw1", "srv1", "l1", "l2"] {
        agent.wait_state(id, "up", DEADLINE);
    }
    // One of the two redundant links goes down: the service stays up.
    far.sh("ip addr del 198.51.100.3/24 dev far0");
    agent.wait_state("l1", "down", DEADLINE);

    let (status, list) = json(&agent, "/api/v1/services");
    assert_eq!(status, 200);
    let services = list["services"].as_array().unwrap();
    assert_eq!(services.len(), 3);
    assert_eq!(services[0]["redundancy"][0][1], "l2");
    assert_eq!(services[0]["levels"][0]["objective"], 0.995);
    assert_eq!(services[0]["levels"][0]["schedule"], "24x7");
    assert_eq!(services[1]["levels"][0]["schedule"], "business_hours");

    let month = utkikk::time::oslo::month_of(Utc::now()); // months are Oslo's
    let (status, sla) = json(&agent, &format!("/api/v1/services/svc-a/sla?month={month}"));
    assert_eq!(status, 200, "{sla}");
    assert_eq!(sla["complete"], false);
    assert_eq!(sla["frozen"], false, "a month in progress is computed");
    let f = &sla["figures"];
    assert_eq!(f["availability"], 1.0, "{sla:#}");
    assert_eq!(f["downtime_seconds"], 0.0);
    assert_eq!(f["outages"], 0);
    assert_eq!(f["met"], true);
    assert_eq!(f["error_budget_remaining"], 1.0);
    assert!(
        f["coverage"].as_f64().unwrap() < 1.0,
        "the month began before this agent"
    );
    assert!(f["unmonitored_seconds"].as_f64().unwrap() > 0.0);

    // The default minimum coverage (90 %) is far from met by an agent that
    // began minutes ago: the fact (availability) without a verdict.
    let (status, c) = json(&agent, &format!("/api/v1/services/svc-c/sla?month={month}"));
    assert_eq!(status, 200, "{c}");
    let f = &c["figures"];
    assert_eq!(f["availability"], 1.0, "{c:#}");
    assert!(f["met"].is_null(), "no verdict at low coverage: {c:#}");
    assert_eq!(f["unknown"], "coverage_below_minimum", "{c:#}");
    assert_eq!(f["min_coverage"], 0.9);
    assert_eq!(f["objective"], 0.999, "exact, not 0.9990000000000001");
    assert!(f["coverage"].as_f64().unwrap() < 0.9);

    // No level in force this month: said so, no figures, no 100 %.
    let (status, b) = json(&agent, &format!("/api/v1/services/svc-b/sla?month={month}"));
    assert_eq!(status, 200);
    assert!(b["level"].is_null() && b["figures"].is_null(), "{b}");

    for (query, parameter) in [
        ("", "month"),
        ("month=2026-1", "month"),
        ("month=2099-01", "month"),
    ] {
        let (status, e) = json(&agent, &format!("/api/v1/services/svc-a/sla?{query}"));
        assert_eq!(status, 400, "{query}: {e}");
        assert_eq!(e["parameter"], parameter);
    }
    assert_eq!(
        json(&agent, &format!("/api/v1/services/nope/sla?month={month}")).0,
        404
    );

    // Outages: the link alone took no service down.
    let (status, o) = json(&agent, &format!("/api/v1/outages?month={month}"));
    assert_eq!(status, 200, "{o}");
    let l1 = &o["outages"][0];
    assert_eq!(l1["root_cause"], "l1", "{o:#}");
    assert_eq!(l1["continues_after"], true, "still down");
    assert_eq!(l1["planned"], false);
    assert!(l1["services"].as_array().unwrap().is_empty(), "{o:#}");
    // The switch goes down: srv1 behind it is unreachable, svc-a is out,
    // and the outage is the switch's, affecting svc-a and its member.
    // Deleting the primary address takes srv1's (a secondary) with it.
    far.sh("ip addr del 198.51.100.1/24 dev far0");
    agent.wait_state("sw1", "down", DEADLINE);
    agent.wait_state("srv1", "unreachable", DEADLINE);
    let mut last = serde_json::Value::Null;
    let attributed = (0..300).any(|_| {
        let (_, o) = json(
            &agent,
            &format!("/api/v1/outages?month={month}&member=kongsberg"),
        );
        let ok = o["outages"].as_array().is_some_and(|v| {
            v.iter()
                .any(|x| x["root_cause"] == "sw1" && x["services"][0] == "svc-a")
        });
        last = o;
        if !ok {
            std::thread::sleep(Duration::from_millis(100));
        }
        ok
    });
    assert!(attributed, "switch outage not attributed: {last:#}");
    let (_, o) = json(
        &agent,
        &format!("/api/v1/outages?month={month}&service=svc-a"),
    );
    let outages = o["outages"].as_array().unwrap();
    let sw1 = outages.iter().find(|x| x["root_cause"] == "sw1").unwrap();
    assert_eq!(sw1["members"][0], "kongsberg");
    assert!(sw1["start"].as_str().unwrap().contains("+0"), "Oslo offset");
    // The link alone still took nothing down; srv1 behind the switch has no
    // outage of its own beyond the moment before its parent was seen down
    // (a child can reach fail_after first: at most one probe interval).
    for x in outages {
        assert_ne!(x["root_cause"], "l1", "{o:#}");
        if x["root_cause"] == "srv1" {
            assert!(x["duration_seconds"].as_f64().unwrap() <= 1.0, "{o:#}");
        }
    }
    for (query, parameter) in [
        ("month=2026-10&member=nobody", "member"),
        ("month=2026-10&service=nothing", "service"),
        ("from=2026-10-01T00:00:00Z", "to"),
        // Unbounded or insane windows (57 s of work, or a wrong empty list).
        ("from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z", "from"),
        ("from=1893-01-01T00:00:00Z&to=1893-02-01T00:00:00Z", "from"),
        ("from=2026-01-01T00:00:00Z&to=2027-06-01T00:00:00Z", "to"),
        ("month=+999-01", "month"),
        ("month=0000-01", "month"),
        // Before the ledger's first run: nothing was watched.
        ("month=2001-01", "month"),
    ] {
        let (status, e) = json(&agent, &format!("/api/v1/outages?{query}"));
        assert_eq!(status, 400, "{query}: {e}");
        assert_eq!(e["parameter"], parameter);
    }
    // No window: this month so far, as with month=.
    let (status, now) = json(&agent, "/api/v1/outages");
    assert_eq!(status, 200, "{now}");
    let oslo_month = Utc::now()
        .with_timezone(&chrono_tz::Europe::Oslo)
        .format("%Y-%m")
        .to_string();
    let (_, this) = json(&agent, &format!("/api/v1/outages?month={oslo_month}"));
    assert_eq!(now["from"], this["from"], "{now}");
    // The member's month: its services, as the member was defined then.
    let (status, ms) = json(
        &agent,
        &format!("/api/v1/members/kongsberg/sla?month={month}"),
    );
    assert_eq!(status, 200, "{ms}");
    assert_eq!(
        ms["kommunenummer"], "3303",
        "the number in force this month"
    );
    assert!(ms["merged_into"].is_null());
    // Nedre Eiker merged into Kongsberg: its services count for Kongsberg ...
    assert_eq!(ms["includes"][0], "nedre-eiker", "{ms:#}");
    let names: Vec<&str> = ms["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["svc-a", "svc-b", "svc-c"]);
    // ... and the merged member's own month says where its figures went.
    let (status, ne) = json(
        &agent,
        &format!("/api/v1/members/nedre-eiker/sla?month={month}"),
    );
    assert_eq!(status, 200);
    assert_eq!(ne["merged_into"], "kongsberg");
    assert!(ne["services"].as_array().unwrap().is_empty());
    // Before the merge (and the 2024 renumbering) the member was itself.
    let (_, old) = json(&agent, "/api/v1/members/kongsberg/sla?month=2019-06");
    assert!(
        old["kommunenummer"].is_null() && old["includes"].as_array().unwrap().is_empty(),
        "{old}"
    );
    let (_, ne19) = json(&agent, "/api/v1/members/nedre-eiker/sla?month=2019-06");
    assert!(ne19["merged_into"].is_null(), "{ne19}");
    assert_eq!(ne19["services"][0]["service"], "svc-b");
    assert_eq!(
        json(&agent, &format!("/api/v1/members/nobody/sla?month={month}")).0,
        404
    );

    // The OpenAPI document describes the live router, and every answer is
    // valid under the schema it gives.
    let (status, doc) = json(&agent, "/api/openapi.json");
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (path, ops) in paths {
        if path.starts_with("/api/v1/maintenance/") {
            continue; // window ids: tests/lab_maintenance.rs
        }
        if path.starts_with("/status") || path.starts_with("/assets/") {
            continue; // HTML, off in this config: tests/lab_status.rs
        }
        let id = if path.contains("/services/") {
            "svc-a"
        } else if path.contains("/members/") {
            "kongsberg"
        } else {
            "sw1"
        };
        let url = path
            .replace("{id}", id)
            .replace("{member}", "kongsberg")
            .replace("{file}", &format!("{month}.json"));
        let url = if ["/sla", "/availability", "/outages"]
            .iter()
            .any(|p| url.ends_with(p))
        {
            format!("{url}?month={month}")
        } else {
            url
        };
        if ops.get("get").is_some() {
            let (status, body) = agent.get(&url);
            assert_eq!(status, 200, "GET {url} (documented): {body}");
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                conforms(&doc, "get", path, 200, &v);
            }
        }
    }
    for route in [
        "/api/v1/targets/{id}/availability",
        "/api/v1/outages",
        "/api/v1/members/{id}/sla",
    ] {
        assert!(paths.contains_key(route), "{route} undocumented");
    }
    // Errors too, and answers the loop above did not see.
    for (path, url, status) in [
        (
            "/api/v1/targets/{id}",
            "/api/v1/targets/nope".to_string(),
            404,
        ),
        (
            "/api/v1/outages",
            "/api/v1/outages?month=2026-13".to_string(),
            400,
        ),
        (
            "/api/v1/services/{id}/sla",
            "/api/v1/services/svc-a/sla".to_string(),
            400,
        ),
        (
            "/api/v1/services/{id}/sla",
            format!("/api/v1/services/svc-c/sla?month={month}"),
            200,
        ),
        (
            "/api/v1/members/{id}/sla",
            format!("/api/v1/members/nedre-eiker/sla?month={month}"),
            200,
        ),
        (
            "/api/v1/reports/{member}/{file}",
            format!("/api/v1/reports/region/{month}.json"),
            200,
        ),
    ] {
        let (got, body) = json(&agent, &url);
        assert_eq!(got, status, "{url}: {body}");
        conforms(&doc, "get", path, status, &body);
    }

    // The SLA metrics, computed every sla_interval.
    wait_until("SLA metrics", DEADLINE, || {
        let m = agent.metrics();
        m.contains("utkikk_sla_objective_ratio{service=\"svc-a\"} 0.995")
            && m.contains("utkikk_sla_availability_ratio{service=\"svc-a\",window=\"month\"} ")
            && m.contains("utkikk_sla_error_budget_remaining_ratio{service=\"svc-a\"} ")
            && m.contains("utkikk_monitoring_coverage_ratio{service=\"svc-a\"} ")
            && m.contains("utkikk_sla_min_coverage_ratio{service=\"svc-c\"} 0.9\n")
    });
    let m = agent.metrics();
    // No level in force: no SLA series and no up/down (utkikk_service_info,
    // which members it serves, is there all the same).
    assert!(
        !m.lines().any(|l| (l.starts_with("utkikk_sla")
            || l.starts_with("utkikk_service_up")
            || l.starts_with("utkikk_monitoring_coverage"))
            && l.contains("service=\"svc-b\"")),
        "no level, no series"
    );
    // Below the minimum coverage: the level and the coverage, no verdict.
    assert!(m.contains("utkikk_sla_objective_ratio{service=\"svc-c\"} 0.999\n"));
    assert!(m.contains("utkikk_monitoring_coverage_ratio{service=\"svc-c\"} "));
    assert!(
        !m.lines().any(|l| (l.starts_with("utkikk_sla_availability")
            || l.starts_with("utkikk_sla_error_budget"))
            && l.contains("service=\"svc-c\"")),
        "no verdict's figures at low coverage"
    );
    assert!(m.contains("utkikk_ledger_write_errors_total 0"));
    // promtool accepts the scrape.
    let file = agent.dir.path().join("scrape.prom");
    std::fs::write(&file, &m).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
});

lab_test!(closed_days_are_summed_up_and_answer_exactly, || {
    use utkikk::health::{State, Transition};
    use utkikk::ledger::{Record, Store};
    use utkikk::sla::rollup::{day_of, day_start};
    let _far = far_host_v4(&["198.51.100.1/24", "198.51.100.2/24"]);
    let yaml = format!(
        "agent: {{ id: lab, sla_interval: 1s }}\n{FAST}\n\
         members:\n  - {{ id: m, name: M }}\n\
         targets:\n\
         \x20 - {{ id: sw1, kind: switch, address: 198.51.100.1 }}\n\
         \x20 - {{ id: srv1, kind: server, address: 198.51.100.2, parents: [sw1] }}\n\
         services:\n\
         \x20 - {{ id: svc, name: Svc, serves: [m], targets: [srv1], sla: [ {{ valid_from: 2020-01-01, objective: 99.5 }} ] }}\n"
    );
    let mut agent = Agent::prepare(&yaml);
    // An earlier run, three days ago to two days ago at noon: the switch
    // down across midnight with the server behind it, then the server
    // alone for a quarter of an hour.
    let today = day_of(Utc::now().timestamp_millis()).unwrap();
    let d = today - chrono::Days::new(3);
    let (d0, d1, d2) = (
        day_start(d).unwrap(),
        day_start(d + chrono::Days::new(1)).unwrap(),
        day_start(d + chrono::Days::new(2)).unwrap(),
    );
    let (min, hour) = (60_000, 3_600_000);
    let tr = |target: &str, at: i64, to: State, cause: Option<&str>| {
        Record::Transition(Transition {
            target: target.into(),
            from: State::Unmonitored,
            to,
            at: chrono::DateTime::from_timestamp_millis(at).unwrap(),
            reason: Some(utkikk::model::Reason::NotProbedYet),
            root_cause: cause.map(str::to_string),
        })
    };
    {
        let mut store = Store::open(&agent.data_dir().join("ledger.db")).unwrap();
        let run = store.begin_run("lab", d0).unwrap();
        let records = [
            tr("sw1", d0, State::Up, None),
            tr("srv1", d0, State::Up, None),
            tr("sw1", d1 - 30 * min, State::Down, None),
            tr("srv1", d1 - 30 * min, State::Unreachable, Some("sw1")),
            tr("sw1", d1 + 30 * min, State::Up, None),
            tr("srv1", d1 + 30 * min, State::Up, None),
            tr("srv1", d1 + 8 * hour, State::Down, None),
            tr("srv1", d1 + 8 * hour + 15 * min, State::Up, None),
        ];
        store.write(run, &records, d1 + 12 * hour).unwrap();
        store.end_run(run, d1 + 12 * hour).unwrap();
    }
    agent.spawn();
    // The agent sums up the closed days in the background.
    let kept = |kind: &str, key: &str| {
        open(&agent)
            .query_row(
                "SELECT count(*) FROM day_results WHERE kind = ?1 AND key = ?2 AND day_ms IN (?3, ?4)",
                rusqlite::params![kind, key, d0, d1],
                |r| r.get::<_, i64>(0),
            )
            .unwrap_or(0)
    };
    wait_until("the closed days summed up", DEADLINE, || {
        kept("service", "svc") == 2 && kept("outages", "m") == 2 && kept("outages", "*") == 2
    });
    let rfc = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    };
    let (status, list) = json(
        &agent,
        &format!(
            "/api/v1/outages?member=m&from={}&to={}",
            rfc(d0).replace('+', "%2B"),
            rfc(d2).replace('+', "%2B")
        ),
    );
    assert_eq!(status, 200, "{list}");
    let outages = list["outages"].as_array().unwrap();
    assert_eq!(outages.len(), 2, "{list:#}");
    // One outage across midnight, not two.
    assert_eq!(outages[0]["root_cause"], "sw1");
    assert_eq!(outages[0]["duration_seconds"], 3600.0);
    assert_eq!(outages[0]["continues_before"], false);
    assert_eq!(outages[0]["continues_after"], false);
    assert_eq!(outages[0]["services"][0], "svc");
    assert_eq!(outages[1]["root_cause"], "srv1");
    assert_eq!(outages[1]["duration_seconds"], 900.0);
    // The service's months: the server's own quarter of an hour is
    // downtime; the hour behind the switch is excluded (the switch's).
    let month = |ms: i64| {
        let d = day_of(ms).unwrap();
        format!("{}", d.format("%Y-%m"))
    };
    let mut months = vec![month(d0), month(d1)];
    months.dedup();
    let (mut down, mut excluded, mut outages_n) = (0.0, 0.0, 0);
    for m in &months {
        let (status, sla) = json(&agent, &format!("/api/v1/services/svc/sla?month={m}"));
        assert_eq!(status, 200, "{sla}");
        assert!(sla["frozen"].is_boolean(), "{sla}");
        down += sla["figures"]["downtime_seconds"].as_f64().unwrap();
        excluded += sla["figures"]["excluded_seconds"].as_f64().unwrap();
        outages_n += sla["figures"]["outages"].as_u64().unwrap();
    }
    assert_eq!((down, excluded, outages_n), (900.0, 3600.0, 1));

    // The member's report for the month of the server's own outage, in
    // every form, with the fields the OpenAPI document requires.
    let m1 = month(d1);
    let (status, report) = json(&agent, &format!("/api/v1/reports/m/{m1}.json"));
    assert_eq!(status, 200, "{report}");
    let (_, doc) = json(&agent, "/api/openapi.json");
    let report_path = "/api/v1/reports/{member}/{file}";
    conforms(&doc, "get", report_path, 200, &report);
    assert_eq!(report["member"], "m");
    assert!(report["outages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["root_cause"] == "srv1" && o["duration_seconds"] == 900.0));
    let (status, html) = agent.get(&format!("/api/v1/reports/m/{m1}.html?lang=en"));
    assert_eq!(status, 200);
    assert!(html.contains("Availability report: M") && html.contains("<svg"));
    let (status, csv) = agent.get(&format!("/api/v1/reports/m/{m1}.csv"));
    assert_eq!(status, 200);
    assert!(csv.starts_with('\u{feff}') && csv.contains(&format!("m;svc;{m1};99,50;")));
    let (status, csv) = agent.get(&format!("/api/v1/reports/m/{m1}-outages.csv?lang=en"));
    assert_eq!(status, 200);
    assert!(csv.contains(",srv1,"), "{csv}");
    let pdf = ureq::get(&format!("{}/api/v1/reports/m/{m1}.pdf", lab::BASE))
        .call()
        .unwrap();
    assert_eq!(
        pdf.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/pdf")
    );
    let bytes = pdf.into_body().read_to_vec().unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    let (status, region) = json(&agent, &format!("/api/v1/reports/region/{m1}.json"));
    assert_eq!(status, 200, "{region}");
    conforms(&doc, "get", report_path, 200, &region);
    assert_eq!(region["members"][0]["member"], "m");
    for (path, want) in [
        (format!("/api/v1/reports/nobody/{m1}.json"), 404),
        ("/api/v1/reports/m/2199-01.json".to_string(), 400),
        // Outside the years the record can hold: not a report name.
        ("/api/v1/reports/m/2999-01.json".to_string(), 404),
        (format!("/api/v1/reports/m/{m1}.json?lang=de"), 400),
        (format!("/api/v1/reports/m/{m1}.docx"), 404),
    ] {
        let (status, body) = json(&agent, &path);
        assert_eq!(status, want, "{path}: {body}");
        conforms(&doc, "get", report_path, status, &body);
    }
    assert_eq!(agent.stop(), Some(0));
});

// `utkikk ledger backup` of a running agent's ledger: checked, and put in
// place of the ledger it gives the same outages and the same figures.
lab_test!(
    a_backup_of_the_running_ledger_restores_to_the_same_figures,
    || {
        let far = far_host_v4(&["198.51.100.1/24", "198.51.100.2/24"]);
        let from = Utc::now();
        let mut agent = Agent::start(&config());
        agent.wait_state("srv1", "up", DEADLINE);
        // An outage of srv1, over and written.
        far.sh("ip addr del 198.51.100.2/24 dev far0");
        agent.wait_state("srv1", "down", DEADLINE);
        far.sh("ip addr add 198.51.100.2/24 dev far0");
        agent.wait_state("srv1", "up", DEADLINE);
        // The window: from before the start to the outage's end, all of it
        // written (the time after the last write is unknown to a copy).
        let mut window = String::new();
        wait_until("the outage in the ledger", DEADLINE, || {
            let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
            let (_, o) = json(
                &agent,
                &format!(
                    "/api/v1/outages?from={}&to={now}",
                    from.to_rfc3339_opts(SecondsFormat::Millis, true)
                ),
            );
            let end = o["outages"].as_array().and_then(|o| {
                o.iter()
                    .find(|x| x["root_cause"] == "srv1" && x["continues_after"] == false)
                    .and_then(|x| x["end"].as_str().map(String::from))
            });
            if let Some(end) = end {
                window = format!(
                    "from={}&to={}",
                    from.to_rfc3339_opts(SecondsFormat::Millis, true),
                    end.replace('+', "%2B")
                );
            }
            !window.is_empty()
        });
        let figures = |agent: &Agent| {
            let (s1, o) = json(agent, &format!("/api/v1/outages?{window}"));
            let (s2, a) = json(
                agent,
                &format!("/api/v1/targets/srv1/availability?{window}"),
            );
            assert_eq!((s1, s2), (200, 200), "{o} {a}");
            (o["outages"].clone(), a["seconds"].clone())
        };
        let live = figures(&agent);

        // The copy, taken while the agent writes.
        let copy = agent.dir.path().join("ledger-backup.db");
        let run = |args: &[&std::ffi::OsStr]| {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_utkikk"))
                .args(args)
                .output()
                .expect("utkikk");
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let (code, stdout, stderr) = run(&[
            "ledger".as_ref(),
            "backup".as_ref(),
            "--data-dir".as_ref(),
            agent.data_dir().as_os_str(),
            copy.as_os_str(),
        ]);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stdout.contains(": OK: schema "), "{stdout}");
        let (code, stdout, stderr) = run(&["ledger".as_ref(), "check".as_ref(), copy.as_os_str()]);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stdout.contains(" transitions"), "{stdout}");
        // Never over an existing file.
        let (code, _, stderr) = run(&[
            "ledger".as_ref(),
            "backup".as_ref(),
            "--data-dir".as_ref(),
            agent.data_dir().as_os_str(),
            copy.as_os_str(),
        ]);
        assert_eq!(code, Some(1));
        assert!(stderr.contains("exists already"), "{stderr}");
        assert_eq!(agent.stop(), Some(0));

        // Restored: a new agent on the copy answers the same.
        let mut restored = Agent::prepare(&config());
        std::fs::create_dir_all(restored.data_dir()).unwrap();
        std::fs::copy(&copy, restored.data_dir().join("ledger.db")).unwrap();
        restored.spawn();
        assert_eq!(figures(&restored), live, "{window}");
        assert_eq!(restored.stop(), Some(0));
    }
);

// A second agent on a data directory in use is refused, naming the first
// one's PID; the first goes on, and readers (report) need no lock.
lab_test!(a_second_agent_on_the_same_data_dir_is_refused, || {
    let _far = far_host_v4(&["198.51.100.1/24", "198.51.100.2/24"]);
    let agent = Agent::start(&config());
    agent.wait_state("sw1", "up", DEADLINE);
    let lock = std::fs::read_to_string(agent.data_dir().join("utkikk.lock")).unwrap();
    let pid = lock.trim().to_string();
    assert!(pid.parse::<u32>().is_ok(), "{lock:?}");
    let out = std::process::Command::new("timeout")
        .arg("30")
        .arg(env!("CARGO_BIN_EXE_utkikk"))
        .args(["run", "--config"])
        .arg(agent.config_path())
        .arg("--data-dir")
        .arg(agent.data_dir())
        .args(["--web.listen-address", "127.0.0.1:9475"])
        .output()
        .expect("a second utkikk");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(124),
        "the second agent ran on: {stderr}"
    );
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "another utkikk (PID {pid}) is running on the data directory"
        )),
        "{stderr}"
    );
    // The first one still writes.
    let before = written(&agent);
    agent.wait_state("sw1", "up", DEADLINE);
    wait_until("the first agent still writes", DEADLINE, || {
        let (_, b) = agent.get("/-/healthy");
        !b.is_empty() && written(&agent) >= before
    });
    // Only one run in the ledger: the second never began one.
    let runs: i64 = open(&agent)
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(runs, 1);
});

// SIGTERM while a client holds a half-sent request (and another an idle
// connection): the agent still exits, within its deadline, and the run is
// closed cleanly in the ledger. Before, it ran on indefinitely.
lab_test!(
    sigterm_with_a_half_sent_request_exits_and_closes_the_run,
    || {
        use std::io::Write;
        let _far = far_host_v4(&["198.51.100.1/24", "198.51.100.2/24"]);
        let mut agent = Agent::start(&config());
        agent.wait_state("sw1", "up", DEADLINE);
        let mut half = std::net::TcpStream::connect("127.0.0.1:9474").unwrap();
        half.write_all(b"GET /api/v1/targets HTTP/1.1\r\nHost: lab\r\nX-Slow: ")
            .unwrap();
        let _idle = std::net::TcpStream::connect("127.0.0.1:9474").unwrap();
        // Both must be accepted before the signal: a connection still in the
        // listen backlog is never served, and the server stops at once
        // without it (seen once in CI under load). The scrape's own
        // connection makes the third.
        wait_until("both connections accepted", DEADLINE, || {
            agent
                .metrics()
                .lines()
                .find_map(|l| l.strip_prefix("utkikk_http_connections_open "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .is_some_and(|open| open >= 3.0)
        });
        // (stop() fails the test if the agent is not gone 15 s after SIGTERM.)
        assert_eq!(agent.stop(), Some(0));
        let clean: i64 = open(&agent)
            .query_row("SELECT clean FROM runs ORDER BY id DESC LIMIT 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(clean, 1, "the run is closed as a clean stop");
        assert!(
            agent.log().contains("connections are dropped"),
            "{}",
            agent.log()
        );
    }
);

/// Read from `s` until the server closes the connection (EOF or reset),
/// or `within` passes: whether it closed, and what it sent.
fn closed_by_server(s: &mut std::net::TcpStream, within: Duration) -> (bool, String) {
    use std::io::Read;
    let start = std::time::Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    while start.elapsed() < within {
        match s.read(&mut buf) {
            Ok(0) => return (true, String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (true, String::from_utf8_lossy(&got).into_owned()),
        }
    }
    (false, String::from_utf8_lossy(&got).into_owned())
}

// Idle connections, a head sent a byte a second (slowloris) and a body
// that never ends are closed by the agent; more connections than allowed
// wait to be accepted and say so in the log; the API answers again once
// they are gone. Before, all of them stayed open indefinitely.
lab_test!(idle_slow_and_excess_connections_are_closed_or_wait, || {
    use std::io::Write;
    use std::net::TcpStream;
    let _far = far_host_v4(&["198.51.100.1/24", "198.51.100.2/24"]);
    let token = "lab-api-token-5c1e";
    let yaml = config().replacen(
        "agent: { id: lab }",
        "agent: { id: lab, api_token: \"env:UTKIKK_API_TOKEN\" }",
        1,
    );
    let mut agent = Agent::prepare(&yaml);
    agent.env = vec![("UTKIKK_API_TOKEN".into(), token.into())];
    agent.args = vec!["--web.max-connections".into(), "6".into()];
    agent.spawn();
    agent.wait_state("sw1", "up", DEADLINE);
    assert!(agent.metrics().contains("utkikk_http_connections_max 6"));

    // A body promised and never sent, on a write that reads it.
    let mut body = TcpStream::connect("127.0.0.1:9474").unwrap();
    write!(
        body,
        "POST /api/v1/maintenance HTTP/1.1\r\nHost: lab\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"targets\":"
    )
    .unwrap();
    // A head that never ends, a byte at a time.
    let mut slow = TcpStream::connect("127.0.0.1:9474").unwrap();
    slow.write_all(b"GET /api/v1/targets HTTP/1.1\r\nHost: lab\r\n")
        .unwrap();
    let trickle = std::thread::spawn(move || {
        for _ in 0..40 {
            if slow.write_all(b"X").is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        let (closed, _) = closed_by_server(&mut slow, Duration::from_secs(1));
        closed
    });
    // Idle ones, filling the rest of the six.
    let mut idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect("127.0.0.1:9474").unwrap())
        .collect();
    // A seventh waits to be accepted: its request is answered once others
    // have closed.
    let mut waiting = TcpStream::connect("127.0.0.1:9474").unwrap();
    waiting
        .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
        .unwrap();

    for (i, s) in idle.iter_mut().enumerate() {
        let (closed, _) = closed_by_server(s, Duration::from_secs(60));
        assert!(closed, "idle connection {i} still open after 60 s");
    }
    let (closed, answer) = closed_by_server(&mut waiting, Duration::from_secs(60));
    assert!(closed && answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(
        trickle.join().unwrap(),
        "a head sent a byte a second was never cut off"
    );
    let (closed, answer) = closed_by_server(&mut body, Duration::from_secs(90));
    assert!(closed, "a never-ending body kept its connection");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(answer.contains("not answered within"), "{answer:?}");

    let log = agent.log();
    assert!(log.contains("all HTTP connections are in use"), "{log}");
    assert!(log.contains("not answered within"), "{log}");
    // A body over the limit is refused at once, in the API's JSON shape.
    let mut big = TcpStream::connect("127.0.0.1:9474").unwrap();
    write!(
        big,
        "POST /api/v1/maintenance HTTP/1.1\r\nHost: lab\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"targets\":",
        8 << 20
    )
    .unwrap();
    let (_, answer) = closed_by_server(&mut big, Duration::from_secs(20));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    assert!(answer.contains("\"status\":413"), "{answer:?}");
    // All gone: the API answers and counts what happened.
    let m = agent.metrics();
    assert!(m.contains("utkikk_http_request_timeouts_total 1"), "{m}");
    agent.wait_state("sw1", "up", DEADLINE);
});
