//! Lab scenarios for SNMP polling against a real net-snmp `snmpd` in a far
//! host's namespace (see tests/lab/mod.rs and ../shared/LAB.md).

mod lab;

use std::time::Duration;

use lab::{far_host_v4, wait_until, Agent, FarHost, SnmpRec, Snmpd, Snmpsim, FAST};

const DEADLINE: Duration = Duration::from_secs(40);

const COMMUNITY: &str = "lab-c0mmunity-xyzzy";
const AUTH_PASS: &str = "auth-passphrase-plugh";
const PRIV_PASS: &str = "priv-passphrase-frotz";
const WRONG_PASS: &str = "wrong-passphrase-quux";

/// Secrets as the agent sees them: only through `env:` references.
const ENV: [(&str, &str); 4] = [
    ("LAB_COMMUNITY", COMMUNITY),
    ("LAB_AUTH", AUTH_PASS),
    ("LAB_PRIV", PRIV_PASS),
    ("LAB_WRONG", WRONG_PASS),
];

fn snmpd_users() -> String {
    format!(
        "rocommunity {COMMUNITY} default\n\
         createUser labuser SHA-256 \"{AUTH_PASS}\" AES \"{PRIV_PASS}\"\n\
         createUser labuser512 SHA-512 \"{AUTH_PASS}\" AES-256 \"{PRIV_PASS}\"\n\
         rouser labuser priv\n\
         rouser labuser512 priv\n"
    )
}

/// A far "switch" at 198.51.100.1 with a few ports (veth pairs inside its
/// namespace) and snmpd answering on it.
fn switch(dir: &std::path::Path) -> (FarHost, Snmpd) {
    let far = far_host_v4(&["198.51.100.1/24"]);
    far.sh("ip link add ge-0-0-1 type veth peer name ge-0-0-2");
    far.sh("ip link add ge-0-0-3 type veth peer name ge-0-0-4");
    far.sh("ip link add xe-1-0-0 type veth peer name xe-1-0-1");
    for p in ["ge-0-0-1", "ge-0-0-2", "ge-0-0-3", "ge-0-0-4"] {
        far.sh(&format!("ip link set {p} up"));
    }
    let snmpd = Snmpd::start(&far, dir, "198.51.100.1", &snmpd_users());
    (far, snmpd)
}

fn config(targets: &str) -> String {
    format!(
        "agent: {{ id: lab, sla_interval: 1s }}\n{FAST}\
         \x20 snmp: {{ interval: 2s, timeout: 800ms, retries: 1 }}\n\
         members:\n  - {{ id: kongsberg, name: Kongsberg }}\n\
         sites:\n  - {{ id: dc, name: Datasenter, member: kongsberg }}\n\
         targets:\n{targets}"
    )
}

fn snmp_ok(agent: &Agent, id: &str) -> bool {
    agent.target(id)["snmp"]["last_poll"]["ok"] == true
}

/// The lines of `metrics` for family `name` that carry `target="id"`.
fn series<'a>(metrics: &'a str, name: &str, id: &str) -> Vec<&'a str> {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with(&format!("{name}{{"))
                && (id.is_empty() || l.contains(&format!("target=\"{id}\"")))
        })
        .collect()
}

/// Run promtool on a scrape. The only complaints allowed are its naming
/// lints about the series that keep snmp_exporter's IF-MIB names
/// (camelCase, counters without `_total`): those names are the point.
fn promtool_accepts(metrics: &str, dir: &std::path::Path) {
    let file = dir.join("scrape.prom");
    std::fs::write(&file, metrics).expect("write scrape");
    let out = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).expect("scrape file"))
        .output()
        .expect("promtool (Debian package prometheus) must be installed");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let snmp_names = [
        "sysUpTime",
        "ifHCInOctets",
        "ifHCOutOctets",
        "ifInErrors",
        "ifOutErrors",
        "ifInDiscards",
        "ifOutDiscards",
        "ifOperStatus",
        "ifAdminStatus",
        "ifHighSpeed",
        "hrProcessorLoad",
        "hrStorageAllocationUnits",
        "hrStorageSize",
        "hrStorageUsed",
        // a custom counter of the v2c scenario, named as configured
        "lab_lo_in_octets",
    ];
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let name = line.split(' ').next().unwrap_or_default();
        let lint = line.ends_with("should be written in 'snake_case' not 'camelCase'")
            || line.ends_with("counter metrics should have \"_total\" suffix");
        assert!(
            lint && snmp_names.contains(&name),
            "promtool complained beyond the IF-MIB naming lints: {line}\n{text}"
        );
    }
}

lab_test!(snmp_v2c_and_v3_poll_a_switch, || {
    let dir = tempfile::tempdir().unwrap();
    let (_far, _snmpd) = switch(dir.path());
    let agent = Agent::start_env(
        &config(
            "  - { id: sw-v2c, kind: switch, address: 198.51.100.1, site: dc,\n\
             \x20     snmp: { version: 2c, community: env:LAB_COMMUNITY, modules: [system, interfaces, host_resources],\n\
             \x20             custom: [ { oid: 1.3.6.1.2.1.1.7.0, name: lab_sys_services, type: gauge },\n\
             \x20                       { oid: .1.3.6.1.2.1.2.2.1.10.1, name: lab_lo_in_octets, type: counter, help: Octets in on lo } ] } }\n\
             \x20 - { id: sw-v3, kind: switch, address: 198.51.100.1, site: dc,\n\
             \x20     snmp: { version: \"3\", user: labuser, auth_protocol: SHA-256, auth_passphrase: env:LAB_AUTH,\n\
             \x20             priv_protocol: AES, priv_passphrase: env:LAB_PRIV } }\n\
             \x20 - { id: sw-v3-512, kind: switch, address: 198.51.100.1, site: dc, icmp: { enabled: false },\n\
             \x20     snmp: { version: \"3\", user: labuser512, security_level: authPriv, auth_protocol: SHA-512,\n\
             \x20             auth_passphrase: env:LAB_AUTH, priv_protocol: AES-256, priv_passphrase: env:LAB_PRIV } }\n",
        ),
        &ENV,
    );
    for id in ["sw-v2c", "sw-v3", "sw-v3-512"] {
        wait_until(&format!("{id} polled over SNMP"), DEADLINE, || {
            snmp_ok(&agent, id)
        });
        agent.wait_state(id, "up", DEADLINE);
    }
    let t = agent.target("sw-v3");
    assert_eq!(t["snmp"]["version"], "3");
    assert!(t["snmp"]["last_poll"]["reason"].is_null());

    let m = agent.metrics();
    for id in ["sw-v2c", "sw-v3", "sw-v3-512"] {
        let up = series(&m, "ifOperStatus", id);
        let port = up
            .iter()
            .find(|l| l.contains("ifName=\"ge-0-0-1\""))
            .unwrap_or_else(|| panic!("ge-0-0-1 of {id} in:\n{}", up.join("\n")));
        assert!(port.contains("member=\"kongsberg\"") && port.contains("site=\"dc\""));
        assert!(port.contains("ifIndex=\"") && port.contains("ifDescr=\"ge-0-0-1\""));
        assert!(port.contains("ifAlias=\""));
        assert!(port.ends_with(" 1") || port.ends_with(" 1.0"), "{port}");
        let down = up
            .iter()
            .find(|l| l.contains("ifName=\"xe-1-0-0\""))
            .unwrap();
        assert!(down.ends_with(" 2") || down.ends_with(" 2.0"), "{down}");
        for name in [
            "ifHCInOctets",
            "ifHCOutOctets",
            "ifInErrors",
            "ifAdminStatus",
            "ifHighSpeed",
            "sysUpTime",
        ] {
            assert!(!series(&m, name, id).is_empty(), "{name} for {id}");
        }
        let info = series(&m, "utkikk_snmp_device_info", id);
        assert!(
            info.iter().any(|l| l.contains("sys_name=\"lab-device\"")),
            "{info:?}"
        );
        assert!(series(&m, "utkikk_probe_success", id)
            .iter()
            .any(|l| l.contains("probe=\"snmp\"") && l.ends_with(" 1")));
        assert!(!series(&m, "utkikk_snmp_poll_duration_seconds_count", id).is_empty());
    }
    assert!(
        m.contains("# TYPE ifHCInOctets counter"),
        "0.0.4 text types the IF-MIB counters"
    );
    promtool_accepts(&m, dir.path());
});

lab_test!(snmp_auth_failures_are_named_and_secrets_stay_secret, || {
    let dir = tempfile::tempdir().unwrap();
    let (_far, _snmpd) = switch(dir.path());
    let agent = Agent::start_env(
        &config(
            "  - { id: sw-wrongpass, kind: switch, address: 198.51.100.1, site: dc,\n\
             \x20     snmp: { version: \"3\", user: labuser, auth_protocol: SHA-256, auth_passphrase: env:LAB_WRONG,\n\
             \x20             priv_protocol: AES, priv_passphrase: env:LAB_PRIV } }\n\
             \x20 - { id: sw-nouser, kind: switch, address: 198.51.100.1, site: dc, icmp: { enabled: false },\n\
             \x20     snmp: { version: \"3\", user: nosuchuser, auth_passphrase: env:LAB_AUTH, priv_passphrase: env:LAB_PRIV } }\n\
             \x20 - { id: sw-wrongcomm, kind: switch, address: 198.51.100.1, site: dc,\n\
             \x20     snmp: { version: 2c, community: env:LAB_WRONG } }\n",
        ),
        &ENV,
    );
    // Reachable over ICMP, but SNMP refuses us: degraded, reason snmp_auth.
    let t = agent.wait_state("sw-wrongpass", "degraded", DEADLINE);
    assert!(
        t["reason"].as_str().unwrap().starts_with("snmp_auth"),
        "{t:#}"
    );
    assert_eq!(t["snmp"]["last_poll"]["reason"], "snmp_auth");
    // SNMP-only target: the device answers (with a refusal), so degraded.
    let t = agent.wait_state("sw-nouser", "degraded", DEADLINE);
    assert_eq!(t["snmp"]["last_poll"]["reason"], "snmp_auth");
    // v2c: agents drop a wrong community without a word; the agent still
    // answers SNMPv3 discovery, so the silence is a refused community.
    let t = agent.wait_state("sw-wrongcomm", "degraded", DEADLINE);
    assert_eq!(t["snmp"]["last_poll"]["reason"], "snmp_auth", "{t:#}");
    assert!(t["snmp"]["last_poll"]["message"]
        .as_str()
        .unwrap()
        .contains("community is refused"));

    let m = agent.metrics();
    for id in ["sw-wrongpass", "sw-nouser", "sw-wrongcomm"] {
        assert!(
            series(&m, "utkikk_snmp_errors_total", id)
                .iter()
                .any(|l| l.contains("reason=\"auth\"") && !l.ends_with(" 0")),
            "{id}"
        );
    }
    assert!(series(&m, "utkikk_probe_success", "sw-wrongpass")
        .iter()
        .any(|l| l.contains("probe=\"snmp\"") && l.ends_with(" 0")));
    // An auth failure is logged once per change, not once per poll.
    let log = agent.log();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("SNMP polling fails") && l.contains("sw-wrongpass"))
            .count(),
        1,
        "{log}"
    );
    let (_, api) = agent.get("/api/v1/targets");
    for secret in [COMMUNITY, AUTH_PASS, PRIV_PASS, WRONG_PASS] {
        assert!(!log.contains(secret), "secret in the log");
        assert!(!m.contains(secret), "secret in the metrics");
        assert!(!api.contains(secret), "secret in the API");
    }
});

lab_test!(snmpd_stopped_degrades_and_restart_is_a_reboot, || {
    let dir = tempfile::tempdir().unwrap();
    let (_far, snmpd) = switch(dir.path());
    let agent = Agent::start_env(
        &config(
            "  - { id: sw1, kind: switch, address: 198.51.100.1, site: dc,\n\
             \x20     snmp: { version: \"3\", user: labuser, auth_passphrase: env:LAB_AUTH, priv_passphrase: env:LAB_PRIV } }\n\
             \x20 - { id: sw2, kind: switch, address: 198.51.100.1, site: dc, icmp: { enabled: false },\n\
             \x20     snmp: { version: 2c, community: env:LAB_COMMUNITY } }\n\
             \x20 - { id: uplink, kind: link, address: 198.51.100.1, icmp: { enabled: false }, ends: [ { device: sw2, interface: far0 } ] }\n",
        ),
        &ENV,
    );
    agent.wait_state("sw1", "up", DEADLINE);
    agent.wait_state("sw2", "up", DEADLINE);
    wait_until("a second successful poll", DEADLINE, || {
        series(
            &agent.metrics(),
            "utkikk_snmp_poll_duration_seconds_count",
            "sw1",
        )
        .iter()
        .any(|l| !l.ends_with(" 1") && !l.ends_with(" 0"))
    });

    snmpd.stop();
    // Pings still answer: ICMP+SNMP device is degraded, SNMP-only is down.
    let t = agent.wait_state("sw1", "degraded", DEADLINE);
    assert!(
        t["reason"]
            .as_str()
            .unwrap()
            .starts_with("snmp_unreachable"),
        "{t:#}"
    );
    agent.wait_state("sw2", "down", DEADLINE);
    let m = agent.metrics();
    assert!(series(&m, "utkikk_snmp_errors_total", "sw1")
        .iter()
        .any(
            |l| (l.contains("reason=\"timeout\"") || l.contains("reason=\"io\""))
                && !l.ends_with(" 0")
        ));
    // Values that can no longer be read are not exported as current.
    assert!(series(&m, "ifHCInOctets", "sw1").is_empty());

    snmpd.restart();
    agent.wait_state("sw1", "up", DEADLINE);
    agent.wait_state("sw2", "up", DEADLINE);
    wait_until("the restart counted as a reboot", DEADLINE, || {
        let m = agent.metrics();
        ["sw1", "sw2"].iter().all(|id| {
            series(&m, "utkikk_device_reboots_total", id)
                .iter()
                .any(|l| l.ends_with(" 1"))
        })
    });
    let log = agent.log();
    assert!(log.contains("device rebooted"), "{log}");
    // Utilisation after the restart: a value again, and never negative.
    wait_until("uplink utilisation after the restart", DEADLINE, || {
        value(
            &agent.metrics(),
            "utkikk_link_utilization_ratio",
            "",
            "link=\"uplink\"",
        )
        .is_some()
    });
    for line in agent
        .metrics()
        .lines()
        .filter(|l| l.starts_with("utkikk_link_utilization_ratio{"))
    {
        let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(v >= 0.0, "{line}");
    }
    // v3 after the agent restart: engine boots moved on, the session was
    // rediscovered, and polling works again without an auth error.
    assert!(snmp_ok(&agent, "sw1"));
});

lab_test!(interface_filter_polls_only_matching_ports, || {
    let dir = tempfile::tempdir().unwrap();
    let (_far, _snmpd) = switch(dir.path());
    let agent = Agent::start_env(
        &config(
            "  - { id: sw1, kind: switch, address: 198.51.100.1, site: dc,\n\
             \x20     snmp: { version: 2c, community: env:LAB_COMMUNITY, interfaces: { name: 'ge-0-0-[13]' } } }\n",
        ),
        &ENV,
    );
    wait_until("sw1 polled", DEADLINE, || snmp_ok(&agent, "sw1"));
    let m = agent.metrics();
    let ports: Vec<&str> = series(&m, "ifHCInOctets", "sw1");
    assert_eq!(ports.len(), 2, "{ports:?}");
    assert!(ports
        .iter()
        .all(|l| l.contains("ifName=\"ge-0-0-1\"") || l.contains("ifName=\"ge-0-0-3\"")));
    // The filtered rows were fetched with GETs, not by walking the table.
});

lab_test!(link_judged_from_both_ends, || {
    let dir = tempfile::tempdir().unwrap();
    let (far, _snmpd) = switch(dir.path());
    let agent = Agent::start_env(
        &config(
            "  - { id: sw1, kind: switch, address: 198.51.100.1, site: dc,\n\
             \x20     snmp: { version: 2c, community: env:LAB_COMMUNITY } }\n\
             \x20 - { id: link-a, kind: link, address: 198.51.100.1, parents: [sw1], site: dc,\n\
             \x20     ends: [ { device: sw1, interface: ge-0-0-1 }, { device: sw1, interface: ge-0-0-2 } ] }\n\
             \x20 - { id: link-mon, kind: link, address: 198.51.100.1, icmp: { enabled: false }, site: dc,\n\
             \x20     ends: [ { device: sw1, interface: far0 } ] }\n",
        ),
        &ENV,
    );
    let t = agent.wait_state("link-a", "up", DEADLINE);
    assert_eq!(t["ends"][0]["device"], "sw1");
    agent.wait_state("link-mon", "up", DEADLINE);
    // Utilisation of the monitor's own link (it carries the pings and polls).
    wait_until("utilisation of link-mon", DEADLINE, || {
        let m = agent.metrics();
        ["out", "in"].iter().all(|d| {
            m.lines().any(|l| {
                l.starts_with("utkikk_link_utilization_ratio{")
                    && l.contains("link=\"link-mon\"")
                    && l.contains(&format!("direction=\"{d}\""))
                    && l.rsplit(' ')
                        .next()
                        .and_then(|v| v.parse::<f64>().ok())
                        .is_some_and(|v| (0.0..1.0).contains(&v))
            })
        })
    });

    // Shut one end: the other end loses carrier while administratively up.
    far.sh("ip link set ge-0-0-1 down");
    let t = agent.wait_state("link-a", "down", DEADLINE);
    let reason = t["reason"].as_str().unwrap();
    assert!(
        reason.contains("ge-0-0-2 on sw1") && reason.contains("administratively up"),
        "{t:#}"
    );
    assert_eq!(t["ends"][0]["last"]["status"], "admin_down", "{t:#}");
    assert_eq!(t["ends"][1]["last"]["status"], "down", "{t:#}");
    // The device itself is fine: only the link is down.
    assert_eq!(agent.state("sw1"), "up");
    far.sh("ip link set ge-0-0-1 up");
    agent.wait_state("link-a", "up", DEADLINE);

    // The month's report has the member's links, from the figures the
    // agent keeps in the ledger (written every SLA round): link-a's echoes
    // answered and lost while its end was shut, link-mon's peak traffic.
    let month = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Oslo)
        .format("%Y-%m")
        .to_string();
    let mut last = serde_json::Value::Null;
    wait_until("the links in the month's report", DEADLINE, || {
        let (code, body) = agent.get(&format!("/api/v1/reports/kongsberg/{month}.json"));
        assert_eq!(code, 200, "{body}");
        last = serde_json::from_str(&body).unwrap();
        let link = |id: &str| {
            last["links"]
                .as_array()
                .and_then(|ls| ls.iter().find(|l| l["link"] == id))
                .cloned()
                .unwrap_or_default()
        };
        let a = link("link-a");
        let mon = link("link-mon");
        a["echoes"].as_u64().unwrap_or(0) >= 4
            && a["median_rtt_seconds"]
                .as_f64()
                .is_some_and(|s| s > 0.0 && s < 0.2)
            && a["p95_rtt_seconds"].as_f64() >= a["median_rtt_seconds"].as_f64()
            && a["loss"].as_f64().is_some_and(|l| (0.0..1.0).contains(&l))
            && mon["echoes"] == 0
            && mon["peak_out"]["utilisation"]
                .as_f64()
                .is_some_and(|u| (0.0..1.0).contains(&u))
            && mon["peak_out"]["bits_per_second"]
                .as_f64()
                .is_some_and(|b| b > 0.0)
    });
    // And the member's PDF lists them.
    let (code, _) = agent.get(&format!("/api/v1/reports/kongsberg/{month}.pdf"));
    assert_eq!(code, 200, "{last:#}");
});

/// The value of the first series of `name` for `id` whose line contains `filter`.
fn value(metrics: &str, name: &str, id: &str, filter: &str) -> Option<f64> {
    series(metrics, name, id)
        .into_iter()
        .find(|l| l.contains(filter))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

lab_test!(snmpsim_big_and_odd_devices, || {
    let dir = tempfile::tempdir().unwrap();
    let far = far_host_v4(&["198.51.100.1/24"]);
    // A 48-port access switch with port descriptions (ifAlias).
    let mut sw48 = SnmpRec::switch(
        "sim-sw48",
        48,
        |i| format!("ge-0/0/{}", i - 1),
        |i| {
            if i == 1 {
                "Samband Notodden".into()
            } else {
                format!("Access port {i}")
            }
        },
    );
    // A Counter64 past 2^53: exported modulo 2^53, as snmp_exporter does.
    sw48.set("1.3.6.1.2.1.31.1.1.1.6.2", 70, (1u64 << 53) + 42);
    sw48.write(dir.path(), "switch48");
    // A chassis with 520 interfaces, of which six carry samband.
    SnmpRec::switch(
        "sim-chassis",
        520,
        |i| format!("xe-{}/{}/{}", i / 100, (i / 10) % 10, i % 10),
        |i| {
            if i % 100 == 7 {
                format!("Samband {i}")
            } else {
                String::new()
            }
        },
    )
    .write(dir.path(), "chassis520");
    // An agent whose ifDescr walk goes 1, 3, then back to 2.
    let broken = SnmpRec::switch("sim-broken", 3, |i| format!("port{i}"), |_| String::new());
    let mut lines = broken.lines();
    let at = lines
        .iter()
        .position(|l| l.starts_with("1.3.6.1.2.1.2.2.1.2.2|"))
        .unwrap();
    lines.swap(at, at + 1);
    broken.write_lines(dir.path(), "broken", lines);
    let _sim = Snmpsim::start(&far, dir.path(), "198.51.100.1");

    let agent = Agent::start_env(
        &config(
            "  - { id: sw48, kind: switch, address: 198.51.100.1, snmp: { version: 2c, community: env:SIM_SW48 } }\n\
             \x20 - { id: chassis, kind: router, address: 198.51.100.1,\n\
             \x20     snmp: { version: 2c, community: env:SIM_CHASSIS, interfaces: { alias: 'Samband .*' } } }\n\
             \x20 - { id: broken, kind: switch, address: 198.51.100.1, snmp: { version: 2c, community: env:SIM_BROKEN } }\n",
        ),
        &[
            ("SIM_SW48", "switch48"),
            ("SIM_CHASSIS", "chassis520"),
            ("SIM_BROKEN", "broken"),
        ],
    );
    for id in ["sw48", "chassis", "broken"] {
        wait_until(&format!("{id} polled"), DEADLINE, || snmp_ok(&agent, id));
        agent.wait_state(id, "up", DEADLINE);
    }
    let m = agent.metrics();
    assert_eq!(series(&m, "ifOperStatus", "sw48").len(), 48);
    assert!(
        series(&m, "ifOperStatus", "sw48").iter().any(
            |l| l.contains("ifName=\"ge-0/0/0\"") && l.contains("ifAlias=\"Samband Notodden\"")
        ),
        "ifAlias label"
    );
    assert_eq!(
        value(&m, "ifHCInOctets", "sw48", "ifIndex=\"2\""),
        Some(42.0)
    );
    assert_eq!(
        value(&m, "ifHCOutOctets", "sw48", "ifIndex=\"2\""),
        Some(4_000_000.0)
    );
    assert_eq!(
        value(&m, "ifOperStatus", "sw48", "ifIndex=\"2\""),
        Some(2.0)
    );

    // The chassis: only the six samband interfaces are polled ...
    let ports = series(&m, "ifHCInOctets", "chassis");
    assert_eq!(ports.len(), 6, "{ports:?}");
    assert!(ports.iter().all(|l| l.contains("ifAlias=\"Samband ")));
    // ... and after the first poll (which walks the names once), a poll is
    // the scalars plus one GET, not a walk of 520 rows.
    let polls =
        |m: &str| value(m, "utkikk_snmp_poll_duration_seconds_count", "chassis", "").unwrap_or(0.0);
    let requests = |m: &str| value(m, "utkikk_snmp_requests_total", "chassis", "").unwrap_or(0.0);
    let (p1, r1) = (polls(&m), requests(&m));
    let mut later = String::new();
    wait_until("two more chassis polls", DEADLINE, || {
        later = agent.metrics();
        polls(&later) >= p1 + 2.0
    });
    let per_poll = (requests(&later) - r1) / (polls(&later) - p1);
    assert!(per_poll <= 3.0, "{per_poll} requests per poll");

    // The broken agent: the walk stops, is counted, and the device is
    // still polled (what could be read is exported).
    let nonincr = value(&m, "utkikk_snmp_walk_non_increasing_total", "broken", "").unwrap_or(0.0);
    assert!(nonincr >= 1.0, "non-increasing walks counted");
    assert!(!series(&m, "ifOperStatus", "broken").is_empty());
});

// An agent out of file descriptors (a limit below what its devices need):
// polls that cannot open a socket did not run. An SNMP-only device stays
// unmonitored and a pinged one keeps its echoes' grade; none is written
// to the ledger as down or degraded, as they were when a socket error was
// taken for the device's silence. The agent says why at start and in its
// log, and still stops cleanly.
lab_test!(out_of_file_descriptors_is_not_run_never_down, || {
    let dir = tempfile::tempdir().unwrap();
    let (_far, _snmpd) = switch(dir.path());
    let mut targets = String::new();
    for i in 0..30 {
        targets.push_str(&format!(
            "  - {{ id: ip{i}, kind: switch, address: 198.51.100.1, site: dc, snmp: {{ version: 2c, community: env:LAB_COMMUNITY }} }}\n\
             \x20 - {{ id: only{i}, kind: switch, address: 198.51.100.1, site: dc, icmp: {{ enabled: false }}, snmp: {{ version: 2c, community: env:LAB_COMMUNITY }} }}\n"
        ));
    }
    let mut agent = Agent::prepare(&config(&targets));
    agent.env = ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    agent.wrapper = ["prlimit", "--nofile=48:48", "--"]
        .map(String::from)
        .to_vec();
    agent.launch();
    wait_until("polls out of file descriptors", DEADLINE, || {
        agent.log().contains("Too many open files")
    });
    let log = agent.log();
    assert!(
        log.contains("the open-file limit leaves room for")
            && log.contains("below what probing needs"),
        "{log}"
    );
    let ids: Vec<String> = (0..30)
        .flat_map(|i| [format!("ip{i}"), format!("only{i}")])
        .collect();
    wait_until("some devices polled and up", DEADLINE, || {
        ids.iter().any(|id| {
            lab::ledger_transitions(&agent, id)
                .iter()
                .any(|t| t.0 == "up")
        })
    });
    // Long enough for the starved polls to have failed many times over
    // (fail_after is 2 polls of 2 s): the ledger's heartbeat shows the
    // agent ran on for 12 s more.
    let since = chrono::Utc::now().timestamp_millis() + 12_000;
    wait_until("the agent to run on 12 s", DEADLINE, || {
        rusqlite::Connection::open_with_flags(
            agent.data_dir().join("ledger.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|db| {
            db.query_row("SELECT max(last_seen_ms) FROM runs", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .is_ok_and(|seen| seen >= since)
    });
    let log = agent.log();
    for id in &ids {
        let trs = lab::ledger_transitions(&agent, id);
        assert!(
            trs.iter().all(|t| t.0 == "up" || t.0 == "unmonitored"),
            "{id}: {trs:?}\n{log}"
        );
    }
    let starved: Vec<&String> = ids
        .iter()
        .filter(|id| {
            log.lines().any(|l| {
                l.contains(&format!("target_id={id} ")) && l.contains("could not open a socket")
            })
        })
        .collect();
    assert!(!starved.is_empty(), "{log}");
    assert!(
        starved.iter().any(|id| id.starts_with("only")),
        "{starved:?}"
    );
    for id in starved.iter().filter(|id| id.starts_with("only")) {
        assert!(
            !lab::ledger_transitions(&agent, id)
                .iter()
                .any(|t| t.0 == "up"),
            "{id} was never polled, yet recorded up"
        );
    }
    eprintln!(
        "{} of {} devices could not open a socket",
        starved.len(),
        ids.len()
    );
    // No secret in what was logged about it.
    assert!(!log.contains(COMMUNITY));
    assert_eq!(agent.stop(), Some(0), "{}", agent.log());
});
