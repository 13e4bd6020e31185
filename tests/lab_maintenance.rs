//! Lab scenarios for maintenance windows and for the ledger's truth: faults
//! injected at recorded times on the region template, compared with what
//! the API says afterwards (see tests/lab/mod.rs).

mod lab;

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use lab::{conforms, far_host_v4, restore, silence, wait_until, Agent, FAST};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(60);
const TOKEN: &str = "lab-api-token-7f3a";

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `from=…&to=…`: from `t` until a minute from now.
fn since(t: DateTime<Utc>) -> String {
    format!(
        "from={}&to={}",
        rfc3339(t),
        rfc3339(Utc::now() + chrono::Duration::minutes(1))
    )
}

fn json(agent: &Agent, path: &str) -> (u16, Value) {
    let (status, body) = agent.get(path);
    (status, serde_json::from_str(&body).unwrap_or_default())
}

fn ms(v: &Value) -> i64 {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default())
        .map(|t| t.timestamp_millis())
        .unwrap_or_else(|_| panic!("not RFC 3339: {v}"))
}

lab_test!(
    maintenance_windows_quiet_alerts_and_count_as_planned,
    || {
        let far = far_host_v4(&["198.51.100.1/24", "198.51.100.2/24"]);
        let t0 = Utc::now();
        let agent = Agent::start_env(
            &format!(
                r#"
agent: {{ id: lab, api_token: "env:UTKIKK_API_TOKEN", sla_interval: 1s }}
{FAST}
targets:
  - {{ id: sw1, kind: switch, address: 198.51.100.1 }}
  - {{ id: srv1, kind: server, address: 198.51.100.2, parents: [sw1] }}
services:
  - id: svc
    name: Service
    targets: [srv1]
    sla: [{{ valid_from: 2020-01-01, objective: 99.5 }}]
maintenance:
  - id: future-patching
    targets: [srv1]
    category: planned_change
    weekly: {{ days: [sun], at: "03:00", duration: 1h }}
    from: 2099-01-01
"#
            ),
            &[("UTKIKK_API_TOKEN", TOKEN)],
        );
        agent.wait_state("sw1", "up", DEADLINE);
        agent.wait_state("srv1", "up", DEADLINE);
        // The service is up now; the thresholds are there for alert rules.
        let service_up = |agent: &Agent| {
            agent
                .metrics()
                .lines()
                .find(|l| l.starts_with("utkikk_service_up{service=\"svc\"}"))
                .map(|l| l.rsplit(' ').next().unwrap_or_default().to_string())
        };
        wait_until("utkikk_service_up 1", DEADLINE, || {
            service_up(&agent).as_deref() == Some("1")
        });
        assert!(agent.metrics().contains(
            "utkikk_target_degraded_rtt_seconds{target=\"srv1\",member=\"\",site=\"\"} 0.2"
        ));
        let window = |start: DateTime<Utc>, end: DateTime<Utc>| {
            format!(
                r#"{{"targets":["srv1"],"category":"carrier_work","note":"fibre splice","start":"{}","end":"{}"}}"#,
                rfc3339(start),
                rfc3339(end)
            )
        };
        let hour = chrono::Duration::hours(1);
        let body = window(Utc::now(), Utc::now() + hour);
        // Every answer below is checked against the document's schemas.
        let (_, doc) = json(&agent, "/api/openapi.json");
        let windows = "/api/v1/maintenance";
        let one_window = "/api/v1/maintenance/{id}";
        // Writes need the token.
        let (status, e) = agent.write("POST", "/api/v1/maintenance", None, &body);
        assert_eq!(status, 401, "{e}");
        conforms(&doc, "post", windows, status, &e);
        let (status, _) = agent.write("POST", "/api/v1/maintenance", Some("wrong"), &body);
        assert_eq!(status, 401);
        // Bad windows: 400 naming every field at fault.
        let (status, e) = agent.write(
        "POST",
        "/api/v1/maintenance",
        Some(TOKEN),
        r#"{"targets":["nope"],"category":"party","start":"soon","end":"2026-01-01T00:00:00Z"}"#,
    );
        assert_eq!(status, 400, "{e}");
        conforms(&doc, "post", windows, status, &e);
        assert_eq!(e["parameter"], "targets[0]");
        let fields: Vec<&str> = e["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["targets[0]", "category", "start"]);
        let (status, e) = agent.write(
            "POST",
            "/api/v1/maintenance",
            Some(TOKEN),
            &window(Utc::now() - hour - hour, Utc::now() - hour),
        );
        assert_eq!(status, 400, "after the fact: {e}");
        assert_eq!(e["parameter"], "end");

        // Declared now, for an hour.
        let declared = Utc::now().timestamp_millis();
        let (status, w) = agent.write("POST", "/api/v1/maintenance", Some(TOKEN), &body);
        assert_eq!(status, 201, "{w}");
        conforms(&doc, "post", windows, status, &w);
        let id = w["id"].as_i64().unwrap();
        assert_eq!(w["source"], "api");
        assert_eq!(w["category"], "carrier_work");
        assert!(!w["current"].is_null(), "{w}");
        let t = agent.wait_state("srv1", "maintenance", DEADLINE);
        assert_eq!(t["observed_state"], "up");
        assert_eq!(t["maintenance"], id);
        wait_until("utkikk_target_in_maintenance", DEADLINE, || {
            agent
                .metrics()
                .contains("utkikk_target_in_maintenance{target=\"srv1\",member=\"\",site=\"\"} 1")
        });
        assert!(agent.metrics().contains(
        "utkikk_target_state{target=\"srv1\",member=\"\",site=\"\",kind=\"server\",state=\"maintenance\"} 1"
    ));
        // The server goes silent inside the window: it is seen down, shown as
        // maintenance, and the outage is planned.
        far.sh("ip addr del 198.51.100.2/24 dev far0");
        wait_until("srv1 seen down in the window", DEADLINE, || {
            agent.target("srv1")["observed_state"] == "down"
        });
        assert_eq!(agent.state("srv1"), "maintenance");
        // Planned work counts neither way: no utkikk_service_up.
        wait_until("no utkikk_service_up in maintenance", DEADLINE, || {
            service_up(&agent).is_none()
        });
        // Config windows change with the config only; the API window is withdrawn.
        let (_, list) = json(&agent, "/api/v1/maintenance");
        let config_id = list["windows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["source"] == "config")
            .map(|w| w["id"].as_i64().unwrap())
            .unwrap();
        conforms(&doc, "get", windows, 200, &list);
        let (status, e) = agent.write(
            "DELETE",
            &format!("/api/v1/maintenance/{config_id}"),
            Some(TOKEN),
            "",
        );
        assert_eq!(status, 409);
        conforms(&doc, "delete", one_window, status, &e);
        let (status, _) = agent.write("DELETE", &format!("/api/v1/maintenance/{id}"), None, "");
        assert_eq!(status, 401);
        std::thread::sleep(Duration::from_millis(1500)); // some planned downtime
        let withdrawn = Utc::now().timestamp_millis();
        let (status, w) = agent.write(
            "DELETE",
            &format!("/api/v1/maintenance/{id}"),
            Some(TOKEN),
            "",
        );
        assert_eq!(status, 200, "{w}");
        conforms(&doc, "delete", one_window, status, &w);
        assert!(!w["withdrawn"].is_null());
        // Out of the window, the outage goes on unplanned and alerts can fire.
        let t = agent.wait_state("srv1", "down", DEADLINE);
        assert!(t["maintenance"].is_null());
        wait_until("utkikk_service_up 0", DEADLINE, || {
            service_up(&agent).as_deref() == Some("0")
        });
        // Named by its root cause, for routing and inhibition.
        let cause = "utkikk_service_root_cause{service=\"svc\",root_cause=\"srv1\"} 1";
        wait_until("the service's root cause", DEADLINE, || {
            agent.metrics().contains(cause)
        });
        wait_until("in_maintenance back to 0", DEADLINE, || {
            agent
                .metrics()
                .contains("utkikk_target_in_maintenance{target=\"srv1\",member=\"\",site=\"\"} 0")
        });
        std::thread::sleep(Duration::from_millis(1500)); // some unplanned downtime
        far.sh("ip addr add 198.51.100.2/24 dev far0");
        agent.wait_state("srv1", "up", DEADLINE);
        wait_until("no root cause once up", DEADLINE, || {
            !agent.metrics().contains("utkikk_service_root_cause{")
                && service_up(&agent).as_deref() == Some("1")
        });

        // One outage, cut where the window was withdrawn: planned, then not.
        // The live state is up before the ledger has the change (its writer
        // batches): wait until the outage has ended there too.
        let outages = || json(&agent, &format!("/api/v1/outages?{}", since(t0)));
        wait_until("the outage ended in the ledger", DEADLINE, || {
            outages().1["outages"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|x| x["root_cause"] == "srv1" && x["continues_after"] == false)
                    && a.iter()
                        .filter(|x| x["root_cause"] == "srv1")
                        .all(|x| x["continues_after"] == false)
            })
        });
        let (status, o) = outages();
        assert_eq!(status, 200, "{o}");
        let pieces: Vec<&Value> = o["outages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["root_cause"] == "srv1")
            .collect();
        assert_eq!(pieces.len(), 2, "{o:#}");
        assert_eq!(pieces[0]["planned"], true);
        assert_eq!(pieces[1]["planned"], false);
        let cut = ms(&pieces[0]["end"]);
        assert!((cut - withdrawn).abs() < 1000, "cut at the withdrawal");
        assert!(ms(&pieces[0]["start"]) >= declared);
        assert_eq!(pieces[1]["services"][0], "svc");
        // The figures: the planned part is maintenance, the rest downtime.
        let (_, av) = json(
            &agent,
            &format!("/api/v1/targets/srv1/availability?{}", since(t0)),
        );
        let m = av["seconds"]["maintenance"].as_f64().unwrap();
        let d = av["seconds"]["down"].as_f64().unwrap();
        assert!(m > 1.0 && d > 1.0, "{av:#}");
        let month = Utc::now()
            .with_timezone(&chrono_tz::Europe::Oslo)
            .format("%Y-%m")
            .to_string();
        let (_, sla) = json(&agent, &format!("/api/v1/services/svc/sla?month={month}"));
        let f = &sla["figures"];
        assert!(f["maintenance_seconds"].as_f64().unwrap() > 1.0, "{sla:#}");
        assert!(f["downtime_seconds"].as_f64().unwrap() > 1.0, "{sla:#}");
        assert_eq!(f["outages"], 1, "{sla:#}");

        // An operator's note on the unplanned outage: it needs the token,
        // names an outage that exists and is unplanned, and shows with it.
        let note = |start: &Value, text: &str| {
            format!(r#"{{"root_cause":"srv1","start":{start},"note":{text}}}"#)
        };
        let path = "/api/v1/outages/notes";
        let good = note(&pieces[1]["start"], r#""Strømbrudd i rack 3""#);
        let (status, e) = agent.write("POST", path, None, &good);
        assert_eq!(status, 401);
        conforms(&doc, "post", path, status, &e);
        let (status, e) = agent.write(
            "POST",
            path,
            Some(TOKEN),
            &note(&pieces[0]["start"], r#""x""#),
        );
        assert_eq!(status, 404, "the planned part takes no note: {e}");
        let (status, e) = agent.write(
            "POST",
            path,
            Some(TOKEN),
            &note(&Value::from(rfc3339(t0)), r#""x""#),
        );
        assert_eq!(status, 404, "no outage began then: {e}");
        conforms(&doc, "post", path, status, &e);
        let (status, e) = agent.write("POST", path, Some(TOKEN), &good.replace("srv1", "nope"));
        assert_eq!(
            (status, e["parameter"].as_str()),
            (400, Some("root_cause")),
            "{e}"
        );
        let (status, e) = agent.write("POST", path, Some(TOKEN), r#"{"root_cause":"srv1"}"#);
        assert_eq!(
            (status, e["parameter"].as_str()),
            (400, Some("body")),
            "{e}"
        );
        conforms(&doc, "post", path, status, &e);
        let (status, n) = agent.write("POST", path, Some(TOKEN), &good);
        assert_eq!(status, 200, "{n}");
        conforms(&doc, "post", path, status, &n);
        assert_eq!(n["note"], "Strømbrudd i rack 3");
        assert_eq!(ms(&n["end"]), ms(&pieces[1]["end"]), "{n}");
        let noted = |agent: &Agent| {
            let (_, o) = json(agent, &format!("/api/v1/outages?{}", since(t0)));
            o["outages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| x["root_cause"] == "srv1")
                .map(|x| x["note"].clone())
                .collect::<Vec<Value>>()
        };
        assert_eq!(
            noted(&agent),
            [Value::Null, Value::from("Strømbrudd i rack 3")]
        );
        // Removed with an empty note.
        let (status, _) = agent.write(
            "POST",
            path,
            Some(TOKEN),
            &note(&pieces[1]["start"], "null"),
        );
        assert_eq!(status, 200);
        assert_eq!(noted(&agent), [Value::Null, Value::Null]);

        // Documented, and the token never shows.
        for p in [
            "/api/v1/maintenance",
            "/api/v1/maintenance/{id}",
            "/api/v1/outages/notes",
        ] {
            assert!(doc["paths"].get(p).is_some(), "{p} undocumented");
        }
        let (status, one) = json(&agent, &format!("/api/v1/maintenance/{id}"));
        assert_eq!(status, 200);
        conforms(&doc, "get", one_window, status, &one);
        let (status, e) = json(&agent, "/api/v1/maintenance/12345678");
        assert_eq!(status, 404);
        conforms(&doc, "get", one_window, status, &e);
        let (_, all) = json(&agent, "/api/v1/maintenance?all=true");
        conforms(&doc, "get", windows, 200, &all);
        assert_eq!(all["windows"].as_array().unwrap().len(), 2);
        let (_, current) = json(&agent, "/api/v1/maintenance");
        assert_eq!(
            current["windows"].as_array().unwrap().len(),
            1,
            "withdrawn ones are history"
        );
        for text in [agent.log(), agent.metrics(), current.to_string()] {
            assert!(!text.contains(TOKEN), "the API token leaked");
        }
    }
);

lab_test!(region_faults_at_recorded_times_match_the_api, || {
    let far = lab::region_far_host();
    let dir = tempfile::tempdir().unwrap();
    let snmpd = lab::region_snmpd(&far, dir.path());
    // The template as shipped, with shorter intervals for the lab and an
    // API token.
    const INTERVAL_MS: i64 = 2000;
    let services = lab::RegionServices::start(&far, dir.path());
    let yaml = std::fs::read_to_string("config/kongsbergregionen.yaml")
        .unwrap()
        .replace(
            "    interval: 10s\n    count: 5\n    spacing: 200ms\n    timeout: 1s\n",
            "    interval: 2s\n    count: 2\n    spacing: 100ms\n    timeout: 500ms\n",
        )
        .replace(
            "    interval: 60s\n    timeout: 2s\n",
            "    interval: 4s\n    timeout: 1s\n",
        )
        .replace(
            "  resolve_interval: 5m\n",
            "  resolve_interval: 5m\n  api_token: env:UTKIKK_API_TOKEN\n  sla_interval: 2s\n",
        );
    let yaml = services.for_lab(&yaml);
    assert!(yaml.contains("interval: 2s") && yaml.contains("api_token"));
    let agent = Agent::start_env(
        &yaml,
        &[
            ("UTKIKK_SNMP_AUTH_PASSPHRASE", "lab-auth-passphrase"),
            ("UTKIKK_SNMP_PRIV_PASSPHRASE", "lab-priv-passphrase"),
            ("UTKIKK_API_TOKEN", TOKEN),
        ],
    );
    wait_until("all 41 targets up", DEADLINE, || {
        let (_, v) = json(&agent, "/api/v1/targets");
        let ts = v["targets"].as_array().cloned().unwrap_or_default();
        ts.len() == 41 && ts.iter().all(|t| t["state"] == "up")
    });
    let begin = Utc::now();
    // A maintenance window on the finance server, declared before its fault.
    let (status, w) = agent.write(
        "POST",
        "/api/v1/maintenance",
        Some(TOKEN),
        &format!(
            r#"{{"targets":["kdc-oko1"],"category":"planned_change","note":"OS upgrade","start":"{}","end":"{}"}}"#,
            rfc3339(Utc::now()),
            rfc3339(Utc::now() + chrono::Duration::hours(2))
        ),
    );
    assert_eq!(status, 201, "{w}");
    agent.wait_state("kdc-oko1", "maintenance", DEADLINE);

    // Four faults at once on separate branches, each at a recorded time:
    // (root cause, addresses silenced, targets behind it that must not get
    // outages of their own, planned)
    let faults: [(&str, &[&str], &[&str], bool); 4] = [
        (
            "link-kongsberg-ovre-eiker",
            &[
                "203.0.113.97",
                "203.0.113.98",
                "203.0.113.99",
                "203.0.113.104",
            ],
            &["ovre-eiker-r1", "ovre-eiker-sw1", "ovre-eiker-helse1"],
            false,
        ),
        // Its web check (a service check, not pinged) is unreachable
        // behind it, not an outage of its own.
        ("kdc-sak1", &["198.51.100.20"], &["kdc-sak-web"], false),
        (
            "notodden-sw1",
            &["203.0.113.3", "203.0.113.10"],
            &["notodden-skole1"],
            false,
        ),
        ("kdc-oko1", &["198.51.100.22"], &[], true),
    ];
    let watch = lab::Watcher::start();
    let mut truth: Vec<(i64, i64)> = Vec::new();
    for (_, addrs, _, _) in &faults {
        let start = Utc::now().timestamp_millis();
        silence(&far, addrs);
        truth.push((start, 0));
    }
    for (root, _, behind, planned) in &faults {
        if *planned {
            wait_until("kdc-oko1 seen down", DEADLINE, || {
                agent.target(root)["observed_state"] == "down"
            });
        } else {
            agent.wait_state(root, "down", DEADLINE);
        }
        for b in *behind {
            let t = agent.wait_state(b, "unreachable", DEADLINE);
            assert_eq!(t["root_cause"], *root, "{b}");
        }
    }
    // Restore in turn, each at a recorded time.
    for (i, (root, addrs, behind, _)) in faults.iter().enumerate() {
        truth[i].1 = Utc::now().timestamp_millis();
        restore(&far, addrs);
        wait_until(&format!("{root} back"), DEADLINE, || {
            agent.target(root)["observed_state"] == "up"
                && behind.iter().all(|b| agent.state(b) == "up")
        });
    }
    // What the live API showed meanwhile: everything behind a root cause
    // with that root cause, from the first moment it was shown failing.
    let seen = watch.stop();
    for (root, _, behind, _) in &faults {
        lab::assert_root_cause_shown(&seen, root, behind);
    }

    // A link cut shorter than detection (three 2 s cycles): no outage,
    // whatever the checks on demand of the targets behind it see.
    let flesberg = ["203.0.113.49", "203.0.113.50", "203.0.113.51"];
    silence(&far, &flesberg);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    restore(&far, &flesberg);
    // The shared snmpd restarts: every device polled over SNMP reboots
    // (sysUpTime goes back), and each reboot is counted once.
    let snmp_devices: Vec<String> = {
        let (_, v) = json(&agent, "/api/v1/targets");
        v["targets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| !t["snmp"].is_null())
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(snmp_devices.len() >= 10, "{snmp_devices:?}");
    snmpd.restart();
    let reboots = |m: &str, id: &str| -> f64 {
        m.lines()
            .find(|l| {
                l.starts_with("utkikk_device_reboots_total{")
                    && l.contains(&format!("target=\"{id}\""))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    };
    wait_until("every device's reboot seen", DEADLINE, || {
        let m = agent.metrics();
        snmp_devices.iter().all(|d| reboots(&m, d) >= 1.0)
    });
    // Two more polls of each: still once.
    std::thread::sleep(std::time::Duration::from_secs(9));
    let m = agent.metrics();
    for d in &snmp_devices {
        assert_eq!(reboots(&m, d), 1.0, "{d}");
    }
    {
        let db = rusqlite::Connection::open_with_flags(
            agent.data_dir().join("ledger.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        for d in &snmp_devices {
            let n: i64 = db
                .query_row(
                    "SELECT COUNT(*) FROM device_events WHERE target = ?1 AND kind = 'reboot'",
                    [d],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "{d}: reboots in the ledger");
        }
    }

    // The outage list against the truth: one outage per fault, starting and
    // ending within one probe interval of when it truly did (plus SLACK_MS
    // for the timers of a loaded CI machine: the cycle after a change
    // starts up to one interval later, by design, and a little more when
    // the machine is busy).
    const SLACK_MS: i64 = 500;
    let (status, o) = json(&agent, &format!("/api/v1/outages?{}", since(begin)));
    assert_eq!(status, 200, "{o}");
    let outages = o["outages"].as_array().unwrap();
    // No false outage: the four faults, nothing else (not the short cut,
    // not the reboots, not a target behind a root cause).
    for x in outages {
        assert!(
            faults.iter().any(|(root, ..)| x["root_cause"] == *root),
            "an outage that did not happen: {x:#}"
        );
    }
    for ((root, _, behind, planned), (start, end)) in faults.iter().zip(&truth) {
        let mine: Vec<&Value> = outages
            .iter()
            .filter(|x| x["root_cause"] == *root)
            .collect();
        assert_eq!(mine.len(), 1, "{root}: {o:#}");
        let x = mine[0];
        let (got_start, got_end) = (ms(&x["start"]), ms(&x["end"]));
        eprintln!(
            "{root}: start {:+} ms, end {:+} ms against the truth",
            got_start - start,
            got_end - end
        );
        // (A cycle begun just before the change can see it: a little early.)
        assert!(
            (got_start - start).abs() <= INTERVAL_MS + SLACK_MS,
            "{root}: began {} ms after the fault\n{}",
            got_start - start,
            agent
                .log()
                .lines()
                .filter(|l| l.contains(root) && l.contains("state change"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(
            (got_end - end).abs() <= INTERVAL_MS + SLACK_MS,
            "{root}: ended {} ms after the repair",
            got_end - end
        );
        assert_eq!(x["planned"], *planned, "{root}");
        for b in *behind {
            assert!(
                !outages.iter().any(|x| x["root_cause"] == *b),
                "{b} is behind {root}: no outage of its own: {o:#}\n{}",
                agent
                    .log()
                    .lines()
                    .filter(|l| l.contains("state change") && l.contains("ovre-eiker"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
    let link = outages
        .iter()
        .find(|x| x["root_cause"] == "link-kongsberg-ovre-eiker")
        .unwrap();
    assert!(
        link["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "ovre-eiker"),
        "{link}"
    );
    // Availability of the host that went silent: down time as recorded.
    let (_, av) = json(
        &agent,
        &format!("/api/v1/targets/kdc-sak1/availability?{}", since(begin)),
    );
    let down_ms = (av["seconds"]["down"].as_f64().unwrap() * 1000.0) as i64;
    let true_ms = truth[1].1 - truth[1].0;
    assert!(
        (down_ms - true_ms).abs() <= INTERVAL_MS + SLACK_MS,
        "kdc-sak1 down {down_ms} ms, truly {true_ms} ms"
    );
    // The planned one is maintenance, not downtime.
    let (_, av) = json(
        &agent,
        &format!("/api/v1/targets/kdc-oko1/availability?{}", since(begin)),
    );
    assert_eq!(av["seconds"]["down"], 0.0, "{av:#}");
    assert!(av["seconds"]["maintenance"].as_f64().unwrap() > 0.0);
});
