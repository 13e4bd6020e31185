//! Lab scenarios for ICMP probing, target states, reload and the API, each
//! in its own private network namespace (see tests/lab/mod.rs).

mod lab;

use std::time::Duration;

use lab::{far_host_v4, sh, wait_until, Agent, FarHost, FAST};

/// Generous: a state needs `fail_after` 1 s cycles plus the first spread.
const DEADLINE: Duration = Duration::from_secs(30);

fn config(targets: &str) -> String {
    format!(
        "agent: {{ id: lab }}\n{FAST}\nmembers:\n  - {{ id: kongsberg, name: Kongsberg }}\nsites:\n  - {{ id: dc, name: Datasenter, member: kongsberg }}\ntargets:\n{targets}"
    )
}

lab_test!(target_up_and_api_shape, || {
    let _far = far_host_v4(&["198.51.100.1/24"]);
    let agent = Agent::start(&config(
        "  - { id: sw1, name: Switch 1, kind: switch, address: 198.51.100.1, site: dc, labels: { rack: a1 } }\n",
    ));
    let t = agent.wait_state("sw1", "up", DEADLINE);
    assert_eq!(t["id"], "sw1");
    assert_eq!(t["name"], "Switch 1");
    assert_eq!(t["kind"], "switch");
    assert_eq!(t["member"], "kongsberg", "member inherited from the site");
    assert_eq!(t["site"], "dc");
    assert_eq!(t["labels"]["rack"], "a1");
    assert!(t["since"].as_str().unwrap().ends_with('Z'));
    assert!(t["root_cause"].is_null());
    let p = &t["last_probe"];
    assert_eq!(p["probe"], "icmp");
    assert_eq!(p["success"], true);
    assert_eq!(p["sent"], 2);
    assert_eq!(p["received"], 2);
    assert_eq!(p["loss_ratio"], 0.0);
    let rtt = &p["rtt"];
    for k in [
        "min_seconds",
        "avg_seconds",
        "max_seconds",
        "jitter_seconds",
    ] {
        assert!(rtt[k].as_f64().unwrap() >= 0.0, "{k} in {rtt}");
    }
    assert!(rtt["min_seconds"].as_f64() <= rtt["max_seconds"].as_f64());

    let (status, body) = agent.get("/api/v1/targets");
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["targets"].as_array().unwrap().len(), 1);

    let (status, body) = agent.get("/api/v1/targets/nope");
    assert_eq!(status, 404);
    let err: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["status"], 404);
    assert_eq!(err["error"], "unknown target \"nope\"");

    assert_eq!(agent.get("/-/healthy").0, 200);
    let (status, page) = agent.get("/");
    assert_eq!(status, 200);
    assert!(page.contains("/api/v1/targets"));

    // A real scrape passes promtool's checks.
    let metrics = agent.metrics();
    for name in [
        "utkikk_target_state{",
        "utkikk_probe_success{",
        "utkikk_icmp_rtt_seconds_bucket{",
        "utkikk_icmp_requests_total{",
        "utkikk_icmp_responses_total{",
        "utkikk_icmp_loss_ratio{",
        "utkikk_icmp_jitter_seconds{",
        "utkikk_state_transitions_total{",
        "utkikk_schedule_lag_seconds_bucket{",
        "utkikk_config_last_reload_successful ",
        "utkikk_config_last_reload_success_timestamp_seconds ",
        "utkikk_build_info{",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    assert!(metrics.contains(
        "utkikk_target_state{target=\"sw1\",member=\"kongsberg\",site=\"dc\",kind=\"switch\",state=\"up\"} 1"
    ));
    // The RTT histogram's default bounds: 1 ms … 500 ms and +Inf.
    let bounds: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("utkikk_icmp_rtt_seconds_bucket{") && l.contains("target=\"sw1\"")
        })
        .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(
        bounds,
        ["0.001", "0.002", "0.005", "0.01", "0.02", "0.05", "0.1", "0.5", "+Inf"]
    );
    let file = agent.dir.path().join("scrape.txt");
    std::fs::write(&file, &metrics).unwrap();
    let lint = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect("promtool (Debian package prometheus) must be installed");
    assert!(
        lint.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
});

lab_test!(link_cut_goes_down_then_recovers, || {
    let _far = far_host_v4(&["198.51.100.1/24"]);
    let agent = Agent::start(&config(
        "  - { id: link1, kind: link, address: 198.51.100.1, site: dc }\n",
    ));
    agent.wait_state("link1", "up", DEADLINE);
    sh("ip link set mon0 down");
    let t = agent.wait_state("link1", "down", DEADLINE);
    let code = t["last_probe"]["failure"]["code"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        code == "no_route" || code == "timeout",
        "a cut link fails with no_route or timeout, got {code}"
    );
    sh("ip link set mon0 up");
    agent.wait_state("link1", "up", DEADLINE);
    // Hysteresis: straight from up to down and back, nothing in between.
    let m = agent.metrics();
    assert!(
        m.contains("utkikk_state_transitions_total{target=\"link1\",from=\"up\",to=\"down\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("utkikk_state_transitions_total{target=\"link1\",from=\"down\",to=\"up\"} 1"),
        "{m}"
    );
    assert!(!m.contains("to=\"degraded\""), "{m}");
    assert!(agent
        .log()
        .contains("message=\"state change\" target_id=link1 from=up to=down"));
});

lab_test!(host_that_stops_answering_is_down, || {
    let far = far_host_v4(&["198.51.100.1/24"]);
    let agent = Agent::start(&config(
        "  - { id: srv1, kind: server, address: 198.51.100.1, site: dc }\n",
    ));
    agent.wait_state("srv1", "up", DEADLINE);
    far.sh("sysctl -qw net.ipv4.icmp_echo_ignore_all=1");
    let t = agent.wait_state("srv1", "down", DEADLINE);
    assert_eq!(t["last_probe"]["failure"]["code"], "timeout");
    assert_eq!(t["last_probe"]["loss_ratio"], 1.0);
    assert!(t["reason"].as_str().unwrap().contains("timeout"));
    far.sh("sysctl -qw net.ipv4.icmp_echo_ignore_all=0");
    agent.wait_state("srv1", "up", DEADLINE);
});

lab_test!(
    child_of_down_parent_is_unreachable_naming_the_parent,
    || {
        // The switch and the server behind it share the cut link.
        let _far = far_host_v4(&["198.51.100.1/24", "198.51.100.2/24"]);
        let agent = Agent::start(&config(concat!(
            "  - { id: sw1, kind: switch, address: 198.51.100.1, site: dc }\n",
            "  - { id: srv1, kind: server, address: 198.51.100.2, site: dc, parents: [sw1] }\n",
        )));
        agent.wait_state("sw1", "up", DEADLINE);
        agent.wait_state("srv1", "up", DEADLINE);
        sh("ip link set mon0 down");
        agent.wait_state("sw1", "down", DEADLINE);
        let child = agent.wait_state("srv1", "unreachable", DEADLINE);
        assert_eq!(child["root_cause"], "sw1");
        assert!(child["reason"]
            .as_str()
            .unwrap()
            .contains("parent sw1 is down"));
        // The parent itself is never unreachable.
        assert_eq!(agent.target("sw1")["root_cause"], serde_json::Value::Null);
        sh("ip link set mon0 up");
        agent.wait_state("sw1", "up", DEADLINE);
        agent.wait_state("srv1", "up", DEADLINE);
    }
);

lab_test!(icmp_unreachable_from_a_router_is_down_not_up, || {
    // mon0 --- far0 [router] with no way on to 203.0.113.0/24: it answers
    // every echo for that range with ICMP destination unreachable.
    let router = far_host_v4(&["198.51.100.1/24"]);
    router.sh("sysctl -qw net.ipv4.ip_forward=1");
    router.sh("sysctl -qw net.ipv4.icmp_ratelimit=0");
    router.sh("ip route add unreachable 203.0.113.0/24");
    sh("ip route add 203.0.113.0/24 via 198.51.100.1");
    let agent = Agent::start(&config(
        "  - { id: behind, kind: server, address: 203.0.113.10, site: dc }\n",
    ));
    let t = agent.wait_state("behind", "down", DEADLINE);
    let f = &t["last_probe"]["failure"];
    assert_eq!(f["code"], "icmp_unreachable", "{t:#}");
    assert!(f["message"].as_str().unwrap().contains("198.51.100.1"));
    assert_eq!(t["last_probe"]["received"], 0);
    // It never looked up, not even for one cycle.
    assert!(!agent
        .log()
        .contains("target_id=behind from=unmonitored to=up"));
});

lab_test!(ipv6_target, || {
    let far = FarHost::new();
    far.link("mon0", "far0");
    sh("ip addr add 2001:db8:1::fe/64 dev mon0 nodad");
    far.sh("ip addr add 2001:db8:1::1/64 dev far0 nodad");
    let agent = Agent::start(&config(
        "  - { id: web6, kind: service, address: \"2001:db8:1::1\", site: dc }\n",
    ));
    let t = agent.wait_state("web6", "up", DEADLINE);
    assert_eq!(t["last_probe"]["address"], "2001:db8:1::1");
    far.sh("ip link set far0 down");
    agent.wait_state("web6", "down", DEADLINE);
});

lab_test!(
    reload_adds_removes_changes_and_keeps_unchanged_state,
    || {
        let _far = far_host_v4(&[
            "198.51.100.1/24",
            "198.51.100.2/24",
            "198.51.100.3/24",
            "198.51.100.4/24",
            "198.51.100.5/24",
        ]);
        let mut agent = Agent::start(&config(concat!(
            "  - { id: keep, kind: switch, address: 198.51.100.1 }\n",
            "  - { id: drop, kind: server, address: 198.51.100.2 }\n",
            "  - { id: move, kind: server, address: 198.51.100.3 }\n",
        )));
        let keep_since = agent.wait_state("keep", "up", DEADLINE)["since"].clone();
        agent.wait_state("drop", "up", DEADLINE);
        agent.wait_state("move", "up", DEADLINE);

        agent.rewrite_config(&config(concat!(
            "  - { id: keep, kind: switch, address: 198.51.100.1 }\n",
            "  - { id: move, kind: server, address: 198.51.100.4 }\n",
            "  - { id: new, kind: server, address: 198.51.100.5 }\n",
        )));
        agent.signal("HUP");
        wait_until("reload to drop the removed target", DEADLINE, || {
            agent.get("/api/v1/targets/drop").0 == 404
        });
        assert_eq!(
            agent.target("keep")["since"],
            keep_since,
            "unchanged target kept its state"
        );
        assert_eq!(agent.state("keep"), "up");
        assert_eq!(agent.target("move")["address"], "198.51.100.4");
        agent.wait_state("new", "up", DEADLINE);
        let t = agent.wait_state("move", "up", DEADLINE);
        assert_eq!(t["last_probe"]["address"], "198.51.100.4");
        let m = agent.metrics();
        assert!(
            !m.contains("target=\"drop\",member"),
            "series of a removed target are gone"
        );
        assert!(m.contains("utkikk_config_last_reload_successful 1"));
        assert_eq!(agent.stop(), Some(0), "SIGTERM exits 0");
    }
);

// Under journald (its JOURNAL_STREAM is the agent's stderr) each log
// line starts with its syslog priority and has no time of its own, so
// `journalctl -p warning` filters; the refused reload is an error.
lab_test!(journald_log_lines_carry_their_priority, || {
    use std::os::unix::fs::MetadataExt;
    let _far = far_host_v4(&["198.51.100.1/24"]);
    let mut agent = Agent::prepare(&config(
        "  - { id: sw1, kind: switch, address: 198.51.100.1 }\n",
    ));
    // The log file exists before the agent starts: name it as systemd
    // names the stream.
    let log = agent.dir.path().join("utkikk.log");
    std::fs::write(&log, "").unwrap();
    let m = std::fs::metadata(&log).unwrap();
    agent
        .env
        .push(("JOURNAL_STREAM".into(), format!("{}:{}", m.dev(), m.ino())));
    agent.spawn();
    agent.wait_state("sw1", "up", DEADLINE);
    agent.rewrite_config(&config(
        "  - { id: sw1, kind: switch, address: 198.51.100.1, parents: [ghost] }\n",
    ));
    agent.signal("HUP");
    wait_until("the refused reload in the log", DEADLINE, || {
        agent.log().contains("unknown parent target")
    });
    let text = agent.log();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 3, "{text}");
    for l in &lines {
        let (prio, level) = match l.get(..3) {
            Some("<3>") => ("<3>", "level=error"),
            Some("<4>") => ("<4>", "level=warn"),
            Some("<6>") => ("<6>", "level=info"),
            Some("<7>") => ("<7>", "level=debug"),
            _ => panic!("no priority: {l:?}"),
        };
        assert!(l.starts_with(&format!("{prio}{level} ")), "{l:?}");
        assert!(!l.contains(" ts=") && !l.contains("<3>ts="), "{l:?}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<3>") && l.contains("unknown parent target")),
        "{text}"
    );
    assert!(lines.iter().any(|l| l.starts_with("<6>")), "{text}");
});

lab_test!(bad_reload_keeps_the_old_config_running, || {
    let _far = far_host_v4(&["198.51.100.1/24"]);
    const TOKEN: &str = "lab-reload-token-0123456789";
    let with_token = |targets: &str| {
        config(targets).replace(
            "agent: { id: lab }",
            "agent: { id: lab, api_token: env:UTKIKK_LAB_TOKEN }",
        )
    };
    let agent = Agent::start_env(
        &with_token("  - { id: sw1, kind: switch, address: 198.51.100.1 }\n"),
        &[("UTKIKK_LAB_TOKEN", TOKEN)],
    );
    agent.wait_state("sw1", "up", DEADLINE);
    agent.rewrite_config(&with_token(
        "  - { id: sw1, kind: switch, address: 198.51.100.1, parents: [ghost] }\n",
    ));
    // A reload over HTTP is a write: no token, no reload (SIGHUP needs none).
    let (status, body) = agent.post("/-/reload");
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains(TOKEN));
    let (status, _) = agent.post_token("/-/reload", Some("wrong"));
    assert_eq!(status, 401);
    let (status, body) = agent.post_token("/-/reload", Some(TOKEN));
    assert_eq!(status, 500);
    let file = agent.config_path().display().to_string();
    assert!(
        body.contains(&format!("{file}:"))
            && body.contains(": targets[sw1].parents[0]: unknown parent target \"ghost\""),
        "{body}"
    );
    assert!(agent
        .metrics()
        .contains("utkikk_config_last_reload_successful 0"));
    // Still probing the old config.
    let before = agent.target("sw1")["last_probe"]["at"].clone();
    wait_until("another cycle of the old config", DEADLINE, || {
        agent.target("sw1")["last_probe"]["at"] != before
    });
    assert_eq!(agent.state("sw1"), "up");
    // And a good config reloads over HTTP, at most once a second.
    agent.rewrite_config(&with_token(
        "  - { id: sw1, kind: switch, address: 198.51.100.1 }\n",
    ));
    let started = std::time::Instant::now();
    let mut sent = std::time::Instant::now();
    let (mut status, mut body) = agent.post_token("/-/reload", Some(TOKEN));
    while status == 429 {
        assert!(started.elapsed() < DEADLINE, "{body}");
        std::thread::sleep(Duration::from_millis(200));
        sent = std::time::Instant::now();
        (status, body) = agent.post_token("/-/reload", Some(TOKEN));
    }
    assert_eq!(status, 200, "{body}");
    let (status, body) = agent.post_token("/-/reload", Some(TOKEN));
    // (Unless the machine was so slow that a second has passed.)
    if sent.elapsed() < Duration::from_millis(900) {
        assert_eq!(status, 429, "right after one: {body}");
    }
    assert!(agent
        .metrics()
        .contains("utkikk_config_last_reload_successful 1"));
    // Write access follows the config in force: a reload that drops the
    // token disables writes at once.
    agent.rewrite_config(&config(
        "  - { id: sw1, kind: switch, address: 198.51.100.1 }\n",
    ));
    let (mut status, mut body) = agent.post_token("/-/reload", Some(TOKEN));
    while status == 429 {
        assert!(started.elapsed() < DEADLINE, "{body}");
        std::thread::sleep(Duration::from_millis(200));
        (status, body) = agent.post_token("/-/reload", Some(TOKEN));
    }
    assert_eq!(status, 200, "{body}");
    let (status, body) = agent.post_token("/-/reload", Some(TOKEN));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("writes are disabled"), "{body}");
    let (status, e) = agent.write("DELETE", "/api/v1/maintenance/1", Some(TOKEN), "");
    assert_eq!(status, 403, "{e}");
});

lab_test!(no_icmp_permission_is_unmonitored_never_down, || {
    let _far = far_host_v4(&["198.51.100.1/24"]);
    // No CAP_NET_RAW, and this namespace's ping_group_range admits no group.
    let agent = Agent::start_with(
        &config("  - { id: sw1, kind: switch, address: 198.51.100.1 }\n"),
        &[
            "setpriv",
            "--bounding-set=-net_raw",
            "--inh-caps=-net_raw",
            "--",
        ],
    );
    wait_until("a probe cycle", DEADLINE, || {
        !agent.target("sw1")["last_probe"].is_null()
    });
    // One more cycle: with fail_after 2, a failure counted as down would show now.
    let first = agent.target("sw1")["last_probe"]["at"].clone();
    wait_until("another cycle", DEADLINE, || {
        agent.target("sw1")["last_probe"]["at"] != first
    });
    let t = agent.target("sw1");
    assert_eq!(t["state"], "unmonitored", "{t:#}");
    assert_eq!(t["last_probe"]["failure"]["code"], "permission");
    let log = agent.log();
    let line = log
        .lines()
        .find(|l| l.contains("cannot open an ICMP socket"))
        .unwrap_or_else(|| panic!("no startup line about ICMP permission in:\n{log}"));
    assert!(line.contains("CAP_NET_RAW") && line.contains("net.ipv4.ping_group_range"));
    assert!(!log.contains("to=down"));
    assert!(agent
        .metrics()
        .contains("utkikk_icmp_socket_up{family=\"ipv4\"} 0"));
});

lab_test!(
    ping_sockets_without_cap_net_raw_see_replies_errors_and_ipv6,
    || {
        // No CAP_NET_RAW, but ping_group_range admits the agent's group:
        // unprivileged ping sockets, with ICMP errors from the error queue.
        let router = far_host_v4(&["198.51.100.1/24"]);
        router.sh("sysctl -qw net.ipv4.ip_forward=1");
        router.sh("sysctl -qw net.ipv4.icmp_ratelimit=0");
        router.sh("ip route add unreachable 203.0.113.0/24");
        sh("ip route add 203.0.113.0/24 via 198.51.100.1");
        sh("ip addr add 2001:db8:1::fe/64 dev mon0 nodad");
        router.sh("ip addr add 2001:db8:1::1/64 dev far0 nodad");
        // Only group 0 is mapped in the lab's user namespace.
        sh("sysctl -qw net.ipv4.ping_group_range='0 0'");
        let agent = Agent::start_with(
            &config(concat!(
                "  - { id: sw1, kind: switch, address: 198.51.100.1 }\n",
                "  - { id: web6, kind: service, address: \"2001:db8:1::1\" }\n",
                "  - { id: behind, kind: server, address: 203.0.113.10 }\n",
            )),
            &[
                "setpriv",
                "--bounding-set=-net_raw",
                "--inh-caps=-net_raw",
                "--",
            ],
        );
        for id in ["sw1", "web6"] {
            let t = agent.wait_state(id, "up", DEADLINE);
            let p = &t["last_probe"];
            assert_eq!(p["received"], p["sent"], "{t:#}");
            // RTTs from the kernel's timestamps on ping sockets too.
            assert_eq!(p["rtt_clock"], "kernel", "{t:#}");
        }
        let t = agent.wait_state("behind", "down", DEADLINE);
        let f = &t["last_probe"]["failure"];
        assert_eq!(f["code"], "icmp_unreachable", "{t:#}");
        assert!(
            f["message"].as_str().unwrap().contains("198.51.100.1"),
            "{f}"
        );
        assert_eq!(t["last_probe"]["received"], 0);
        let log = agent.log();
        assert!(log.contains("socket=\"ping (unprivileged)\""), "{log}");
        assert!(!log.contains("target_id=behind from=unmonitored to=up"));
        let m = agent.metrics();
        assert!(
            m.contains("utkikk_icmp_socket_up{family=\"ipv4\"} 1"),
            "{m}"
        );
        assert!(
            m.contains("utkikk_icmp_replies_by_clock_total{clock=\"user\"} 0"),
            "{m}"
        );
        // Cut: sends fail (no route), never a probe error.
        router.sh("ip link set far0 down");
        let t = agent.wait_state("sw1", "down", DEADLINE);
        assert_ne!(t["last_probe"]["failure"]["code"], "send_error", "{t:#}");
    }
);

lab_test!(example_config_runs_and_shows_targets_up, || {
    let yaml = std::fs::read_to_string("config/example.yaml").unwrap();
    let agent = Agent::start(&yaml);
    for id in [
        "kongsberg-core",
        "link-kongsberg-flesberg",
        "flesberg-access",
        "flesberg-fileserver",
        "kongsberg-web-v6",
        "localhost-by-name",
    ] {
        agent.wait_state(id, "up", DEADLINE);
    }
    // Then, as the README goes on: this month's report for every member.
    // Each member's PDF has a service with its level, figures in bokmål's
    // form and the hours its objective counts in.
    let out = agent.dir.path().join("reports");
    let month = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Oslo)
        .format("%Y-%m")
        .to_string();
    let texts = || -> Vec<(String, String)> {
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_utkikk"))
            .args(["report", "--config"])
            .arg(agent.config_path())
            .arg("--data-dir")
            .arg(agent.data_dir())
            .args(["--month", &month, "--all", "--format", "pdf", "--out"])
            .arg(&out)
            .output()
            .expect("utkikk report");
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        ["kongsberg", "flesberg"]
            .iter()
            .map(|m| {
                let pdf = out.join(format!("{m}-{month}.pdf"));
                let text = std::process::Command::new("pdftotext")
                    .args(["-layout"])
                    .arg(&pdf)
                    .arg("-")
                    .output()
                    .expect("pdftotext (poppler-utils)");
                (
                    m.to_string(),
                    String::from_utf8_lossy(&text.stdout).into_owned(),
                )
            })
            .collect()
    };
    // The ledger has the targets' first transitions once the writer has
    // committed them: until then a service has no data.
    let last = std::cell::RefCell::new(Vec::new());
    let shown = || {
        let t = texts();
        let ok = t
            .iter()
            .all(|(_, t)| t.contains("Sak/arkiv") && t.contains("100,00"));
        *last.borrow_mut() = t;
        ok
    };
    let start = std::time::Instant::now();
    while !shown() {
        assert!(
            start.elapsed() < DEADLINE,
            "no figures in every member's report: {:#?}",
            last.borrow()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for (member, text) in texts() {
        assert!(
            text.contains("Tjenestenivå") && text.contains("99,50"),
            "{member}:\n{text}"
        );
        assert!(
            text.contains("hele døgnet, alle dager"),
            "{member}:\n{text}"
        );
        // Minutes of a month observed: figures, and no verdict yet.
        assert!(
            text.contains("Ukjent – for lite observert"),
            "{member}:\n{text}"
        );
        assert!(!text.contains("Oppfylt"), "{member}:\n{text}");
        assert!(text.contains("kan ikke vurderes"), "said in words:\n{text}");
        if member == "flesberg" {
            assert!(
                text.contains("3334"),
                "Flesberg's kommunenummer since 2024:\n{text}"
            );
            assert!(text.contains("Nett og samband, Flesberg"), "{text}");
            assert!(
                text.contains("hverdager 07–17, unntatt helligdager"),
                "{text}"
            );
        }
    }
});

lab_test!(region_template_runs_in_the_lab, || {
    let far = lab::region_far_host();
    // One snmpd answers SNMPv3 for every address of the far host.
    let dir = tempfile::tempdir().unwrap();
    let _snmpd = lab::region_snmpd(&far, dir.path());
    let services = lab::RegionServices::start(&far, dir.path());
    // The template's 60 s SNMP interval, shortened for the lab.
    let yaml = services.for_lab(
        &std::fs::read_to_string("config/kongsbergregionen.yaml")
            .unwrap()
            .replace(
                "    interval: 60s\n    timeout: 2s\n",
                "    interval: 4s\n    timeout: 1s\n",
            ),
    );
    assert!(yaml.contains("interval: 4s"));
    let agent = Agent::start_env(
        &yaml,
        &[
            ("UTKIKK_SNMP_AUTH_PASSPHRASE", "lab-auth-passphrase"),
            ("UTKIKK_SNMP_PRIV_PASSPHRASE", "lab-priv-passphrase"),
        ],
    );
    let not_up = || -> Vec<String> {
        let (_, body) = agent.get("/api/v1/targets");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let ts = v["targets"].as_array().cloned().unwrap_or_default();
        assert_eq!(ts.len(), 41, "{}", &body[..body.len().min(600)]);
        ts.iter()
            .filter(|t| t["state"] != "up")
            .map(|t| format!("{}={}", t["id"], t["state"]))
            .collect()
    };
    let start = std::time::Instant::now();
    while !not_up().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not up after 60 s: {:?}",
            not_up()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Every switch and router is polled over SNMPv3, and stays up.
    lab::wait_until(
        "every switch and router polled over SNMPv3",
        Duration::from_secs(60),
        || {
            let (_, body) = agent.get("/api/v1/targets");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let ts = v["targets"].as_array().cloned().unwrap_or_default();
            let polled: Vec<_> = ts.iter().filter(|t| !t["snmp"].is_null()).collect();
            polled.len() == 18
                && polled.iter().all(|t| {
                    t["snmp"]["version"] == "3"
                        && t["snmp"]["last_poll"]["ok"] == true
                        && t["state"] == "up"
                })
        },
    );
    // Cut the Flesberg link's far end: Rollag and Nore og Uvdal behind it are
    // unreachable with the link as root cause.
    // (The far host answers /28 by /28 from here on; 48, 64 and 80 go silent.)
    far.sh(concat!(
        "ip route add local 203.0.113.0/28 dev lo && ip route add local 203.0.113.32/28 dev lo && ",
        "ip route add local 203.0.113.96/28 dev lo && ip route add local 203.0.113.112/28 dev lo && ",
        "ip route del local 203.0.113.0/24 dev lo table local"
    ));
    agent.wait_state("link-kongsberg-flesberg", "down", Duration::from_secs(60));
    let t = agent.wait_state("nore-og-uvdal-sw1", "unreachable", Duration::from_secs(60));
    assert_eq!(t["root_cause"], "link-kongsberg-flesberg");
});

lab_test!(name_that_stops_resolving_is_unmonitored_not_down, || {
    let _far = far_host_v4(&["198.51.100.1/24"]);
    let dir = tempfile::tempdir().unwrap();
    let hosts = lab::private_hosts(
        dir.path(),
        "127.0.0.1 localhost\n198.51.100.1 sw1.lab.example\n",
    );
    let agent = Agent::start(&format!(
        "agent: {{ id: lab, resolve_interval: 1s }}\n{FAST}\ntargets:\n  - {{ id: sw1, kind: switch, address: sw1.lab.example }}\n"
    ));
    let t = agent.wait_state("sw1", "up", DEADLINE);
    assert_eq!(t["address"], "sw1.lab.example");
    assert_eq!(t["last_probe"]["address"], "198.51.100.1");
    // The name disappears: the target is unmonitored, the agent runs on.
    std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
    let t = agent.wait_state("sw1", "unmonitored", DEADLINE);
    assert_eq!(t["last_probe"]["failure"]["code"], "resolve_failed");
    assert!(t["reason"].as_str().unwrap().contains("does not resolve"));
    assert!(!agent.log().contains("to=down"));
    // The name resolves again: back to up.
    std::fs::write(
        &hosts,
        "127.0.0.1 localhost\n198.51.100.1 sw1.lab.example\n",
    )
    .unwrap();
    agent.wait_state("sw1", "up", DEADLINE);
    assert_eq!(agent.get("/-/healthy").0, 200);
});
