//! The operators' kit checked with the real tools: Prometheus' config,
//! recording rules and alerts (`promtool check` and the alert unit tests in
//! deploy/prometheus/tests), and Alertmanager's config, routing and
//! templates (`amtool`). scripts/test installs both (packages `prometheus`
//! and `prometheus-alertmanager`).

mod lab;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lab::wait_until;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Run a tool; its output, or a failure that shows what it said.
fn run(tool: &str, args: &[&str], dir: &Path) -> String {
    run_env(tool, args, dir, &[])
}

/// [`run`] with variables added to the environment.
fn run_env(tool: &str, args: &[&str], dir: &Path, env: &[(&str, &str)]) -> String {
    let out = Command::new(tool)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{tool} is needed (scripts/test installs it): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{tool} {args:?} failed:\n{text}");
    text
}

#[test]
fn prometheus_config_and_rules_pass_promtool_and_their_unit_tests() {
    let dir = root().join("deploy/prometheus");
    run("promtool", &["check", "config", "prometheus.yml"], &dir);
    run(
        "promtool",
        &["check", "config", "prometheus-agents.yml"],
        &dir,
    );
    run(
        "promtool",
        &[
            "check",
            "rules",
            "rules/utkikk-recording.yml",
            "rules/utkikk-thresholds.yml",
            "rules/utkikk-alerts.yml",
        ],
        &dir,
    );
    let out = run(
        "promtool",
        &["test", "rules", "tests/utkikk-alerts.test.yml"],
        &dir,
    );
    assert!(out.contains("SUCCESS"), "{out}");
}

#[derive(serde::Deserialize)]
struct RuleFile {
    groups: Vec<Group>,
}

#[derive(serde::Deserialize)]
struct Group {
    rules: Vec<Rule>,
}

#[derive(serde::Deserialize)]
struct Rule {
    alert: Option<String>,
    expr: String,
}

#[derive(serde::Deserialize)]
struct TestFile {
    tests: Vec<TestGroup>,
}

#[derive(serde::Deserialize)]
struct TestGroup {
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
}

#[derive(serde::Deserialize)]
struct AlertTest {
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<serde_json::Value>,
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_alert_is_tested_firing_and_uses_metrics_the_agent_exports() {
    let dir = root().join("deploy/prometheus");
    let rules: Vec<Rule> = [
        "rules/utkikk-recording.yml",
        "rules/utkikk-thresholds.yml",
        "rules/utkikk-alerts.yml",
    ]
    .iter()
    .flat_map(|f| read::<RuleFile>(&dir.join(f)).groups)
    .flat_map(|g| g.rules)
    .collect();
    let tests: TestFile = read(&dir.join("tests/utkikk-alerts.test.yml"));
    let fired: BTreeSet<&str> = tests
        .tests
        .iter()
        .flat_map(|t| &t.alert_rule_test)
        .filter(|a| !a.exp_alerts.is_empty())
        .map(|a| a.alertname.as_str())
        .collect();
    let alerts: BTreeSet<&str> = rules.iter().filter_map(|r| r.alert.as_deref()).collect();
    assert!(alerts.len() >= 12, "{alerts:?}");
    let untested: Vec<&&str> = alerts.difference(&fired).collect();
    assert!(
        untested.is_empty(),
        "alerts never tested firing: {untested:?}"
    );

    // Every utkikk_* metric a rule reads is one the agent registers.
    let source = std::fs::read_to_string(root().join("src/metrics/mod.rs")).unwrap()
        + &std::fs::read_to_string(root().join("src/metrics/snmp.rs")).unwrap()
        + &std::fs::read_to_string(root().join("src/metrics/states.rs")).unwrap()
        + &std::fs::read_to_string(root().join("src/metrics/checks.rs")).unwrap();
    let exported: BTreeSet<String> = source
        .split('"')
        .filter(|s| {
            s.starts_with("utkikk_") && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
        .map(str::to_string)
        .collect();
    for rule in &rules {
        for word in rule
            .expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .filter(|w| w.starts_with("utkikk_"))
        {
            let base = ["_bucket", "_count", "_sum", "_total"]
                .iter()
                .find_map(|s| word.strip_suffix(s))
                .unwrap_or(word);
            assert!(
                exported.contains(base),
                "{word} (in {:?}) is not a metric utkikk exports",
                rule.expr
            );
        }
    }
}

/// The Alertmanager config with its template path pointing into the repo.
fn alertmanager_config(tmp: &Path) -> PathBuf {
    let dir = root().join("deploy/alertmanager");
    let config = std::fs::read_to_string(dir.join("alertmanager.yml"))
        .unwrap()
        .replace(
            "/etc/alertmanager/templates/utkikk.tmpl",
            &dir.join("templates/utkikk.tmpl").display().to_string(),
        );
    let path = tmp.join("alertmanager.yml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn alertmanager_config_routes_and_templates() {
    let tmp = tempfile::tempdir().unwrap();
    let config = alertmanager_config(tmp.path());
    let file = format!("--config.file={}", config.display());
    let out = run(
        "amtool",
        &["check-config", &config.display().to_string()],
        tmp.path(),
    );
    assert!(
        out.contains("SUCCESS") && out.contains("1 templates"),
        "{out}"
    );
    // Pages to on-call (a member's own where it has one, and the IKS's for
    // shared infrastructure), tickets to the queue.
    for (receiver, labels) in [
        (
            "kongsberg-on-call",
            &["severity=page", "member=kongsberg"][..],
        ),
        (
            "kongsberg-on-call",
            &["severity=page", "member=kongsberg", "shared=false"],
        ),
        (
            "iks-on-call,kongsberg-on-call",
            &["severity=page", "member=kongsberg", "shared=true"],
        ),
        (
            "iks-on-call",
            &["severity=page", "member=flesberg", "shared=true"],
        ),
        ("iks-on-call", &["severity=page", "member=flesberg"]),
        (
            "iks-on-call",
            &["severity=page", "alertname=UtkikkAgentDown"],
        ),
        ("ticket-queue", &["severity=ticket", "member=kongsberg"]),
    ] {
        let verify = format!("--verify.receivers={receiver}");
        let mut args = vec!["config", "routes", "test", file.as_str(), verify.as_str()];
        args.extend_from_slice(labels);
        run("amtool", &args, tmp.path());
    }
    // A notification names the member, the root cause and the dashboard.
    let dir = root().join("deploy/alertmanager");
    let render = |what: &str, kind: &str| {
        run_env(
            "amtool",
            &[
                "template",
                "render",
                "--template.glob=templates/utkikk.tmpl",
                "--template.data=tests/link-down.json",
                &format!("--template.type={kind}"),
                &format!("--template.text={{{{ template \"{what}\" . }}}}"),
            ],
            &dir,
            &[("TZ", "Europe/Oslo")],
        )
    };
    let subject = render("utkikk.subject", "text");
    assert!(
        subject.contains("[FIRING:1] flesberg: root cause link-kb-fl — Link link-kb-fl is down"),
        "{subject}"
    );
    let text = render("utkikk.text", "text");
    for want in [
        "member:     flesberg",
        "affects:    flesberg, kongsberg (shared infrastructure)",
        "root cause: link-kb-fl",
        // 21:30 UTC, in Europe/Oslo (summer time in October).
        "since:      2026-10-05 23:30 CEST",
        "dashboard:  https://grafana.example.org/d/utkikk-links/",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    let html = render("utkikk.html", "html");
    assert!(
        html.contains("<a href=\"https://grafana.example.org/d/utkikk-links/"),
        "{html}"
    );
}

/// A real Alertmanager in the scenario's private namespace, stopped on drop.
struct Alertmanager(std::process::Child);

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const AM_URL: &str = "--alertmanager.url=http://127.0.0.1:9093";

/// Each alert's state (`active` or `suppressed`) by a label that tells
/// them apart.
fn alert_states(dir: &Path) -> BTreeMap<String, String> {
    let out = Command::new("amtool")
        .args([
            AM_URL,
            "alert",
            "query",
            "--active",
            "--inhibited",
            "-o",
            "json",
        ])
        .current_dir(dir)
        .output()
        .expect("amtool");
    let alerts: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    alerts
        .iter()
        .map(|a| {
            let l = &a["labels"];
            let name = format!(
                "{}/{}",
                l["alertname"].as_str().unwrap_or_default(),
                l["service"]
                    .as_str()
                    .or(l["target"].as_str())
                    .unwrap_or_default()
            );
            (
                name,
                a["status"]["state"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

lab_test!(
    alertmanager_inhibits_under_the_root_cause_and_the_agent,
    || {
        let tmp = tempfile::tempdir().unwrap();
        // Quick groups: inhibition is marked when a group is flushed.
        let config = alertmanager_config(tmp.path());
        let text = std::fs::read_to_string(&config).unwrap();
        let text: String = text
            .lines()
            .map(|l| match l.split_once("group_wait:") {
                Some((indent, _)) => format!("{indent}group_wait: 1s"),
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&config, text).unwrap();
        let _am = Alertmanager(
            Command::new("prometheus-alertmanager")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.path={}",
                    tmp.path().join("data").display()
                ))
                .args([
                    "--web.listen-address=127.0.0.1:9093",
                    "--cluster.listen-address=",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("prometheus-alertmanager (scripts/test installs it)"),
        );
        let add = |labels: &[&str]| {
            let mut args = vec![AM_URL, "alert", "add"];
            args.extend_from_slice(labels);
            // Retried until Alertmanager listens.
            wait_until(
                "alertmanager takes an alert",
                Duration::from_secs(30),
                || {
                    Command::new("amtool")
                        .args(&args)
                        .output()
                        .is_ok_and(|o| o.status.success())
                },
            );
        };
        let common = ["instance=agent:9474", "job=utkikk", "severity=page"];
        let with = |extra: &[&'static str]| -> Vec<&'static str> {
            common
                .iter()
                .copied()
                .chain(extra.iter().copied())
                .collect()
        };
        // A cut link, a service it took down, a service down for its own
        // reason, and the link's own latency symptom.
        add(&with(&[
            "alertname=UtkikkLinkDown",
            "target=link-x",
            "root_cause=link-x",
            "member=flesberg",
        ]));
        add(&with(&[
            "alertname=UtkikkErrorBudgetBurn",
            "service=net",
            "root_cause=link-x",
        ]));
        add(&with(&["alertname=UtkikkErrorBudgetBurn", "service=files"]));
        add(&[
            "alertname=UtkikkHighLatency",
            "instance=agent:9474",
            "job=utkikk",
            "severity=ticket",
            "target=link-x",
        ]);
        add(&[
            "alertname=UtkikkLinkUtilizationHigh",
            "instance=agent:9474",
            "job=utkikk",
            "severity=ticket",
            "target=link-x",
            "direction=out",
        ]);
        // A second agent that cannot open its ICMP socket: that most of
        // its targets are unmonitored follows, and does not page again.
        add(&[
            "alertname=UtkikkCannotProbe",
            "instance=agent2:9474",
            "job=utkikk",
            "severity=page",
            "family=ipv4",
        ]);
        add(&[
            "alertname=UtkikkTargetsUnmonitored",
            "instance=agent2:9474",
            "job=utkikk",
            "severity=page",
        ]);
        let expect = |want: &[(&str, &str)]| {
            let want: BTreeMap<String, String> = want
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let mut last = BTreeMap::new();
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                wait_until("the alerts' states", Duration::from_secs(60), || {
                    last = alert_states(tmp.path());
                    last == want
                })
            }));
            assert!(ok.is_ok(), "want {want:?}, last {last:?}");
        };
        expect(&[
            ("UtkikkCannotProbe/", "active"),
            ("UtkikkErrorBudgetBurn/files", "active"),
            ("UtkikkErrorBudgetBurn/net", "suppressed"),
            ("UtkikkHighLatency/link-x", "suppressed"),
            ("UtkikkLinkDown/link-x", "active"),
            ("UtkikkLinkUtilizationHigh/link-x", "suppressed"),
            ("UtkikkTargetsUnmonitored/", "suppressed"),
        ]);
        // The agent itself down: everything it said is held back.
        add(&with(&["alertname=UtkikkAgentDown"]));
        expect(&[
            ("UtkikkAgentDown/", "active"),
            ("UtkikkCannotProbe/", "active"),
            ("UtkikkErrorBudgetBurn/files", "suppressed"),
            ("UtkikkErrorBudgetBurn/net", "suppressed"),
            ("UtkikkHighLatency/link-x", "suppressed"),
            ("UtkikkLinkDown/link-x", "suppressed"),
            ("UtkikkLinkUtilizationHigh/link-x", "suppressed"),
            ("UtkikkTargetsUnmonitored/", "suppressed"),
        ]);
    }
);

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let tmp = tempfile::tempdir().unwrap();
    // systemd-analyze checks that ExecStart exists: point it at this build.
    let unit = std::fs::read_to_string(root().join("deploy/systemd/utkikk.service"))
        .unwrap()
        .replace("/usr/bin/utkikk", env!("CARGO_BIN_EXE_utkikk"));
    for (key, want) in [
        ("AmbientCapabilities", "CAP_NET_RAW"),
        ("CapabilityBoundingSet", "CAP_NET_RAW"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("User", "utkikk"),
        ("StateDirectory", "utkikk"),
        ("PrivateTmp", "yes"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
    ] {
        assert!(
            unit.lines().any(|l| l == format!("{key}={want}")),
            "{key}={want} missing"
        );
    }
    // Each log line with its priority, for `journalctl -p`.
    assert!(
        unit.lines()
            .any(|l| l.starts_with("ExecStart=") && l.ends_with(" --log.format journald")),
        "ExecStart without --log.format journald"
    );
    let path = tmp.path().join("utkikk.service");
    std::fs::write(&path, unit).unwrap();
    let p = path.display().to_string();
    run("systemd-analyze", &["verify", &p], tmp.path());
    // Exposure 2.0 or less ("OK" on systemd's 0-10 scale; it is 1.6).
    run(
        "systemd-analyze",
        &["security", "--offline=true", "--threshold=20", &p],
        tmp.path(),
    );
}

/// The monthly report job: a timer on the 1st (Oslo time) and a oneshot
/// that writes last month's reports for every member, without network or
/// capabilities.
#[test]
fn the_monthly_report_timer_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let service = std::fs::read_to_string(root().join("deploy/systemd/utkikk-report.service"))
        .unwrap()
        .replace("/usr/bin/utkikk", env!("CARGO_BIN_EXE_utkikk"));
    let timer = std::fs::read_to_string(root().join("deploy/systemd/utkikk-report.timer")).unwrap();
    for want in [
        "--month previous --all --format pdf --out ${UTKIKK_REPORT_DIR}",
        "User=utkikk",
        "PrivateNetwork=yes",
        "CapabilityBoundingSet=",
    ] {
        assert!(service.contains(want), "{want} missing");
    }
    assert!(timer.contains("OnCalendar=*-*-01 06:00:00 Europe/Oslo"));
    assert!(timer.contains("Persistent=true"));
    std::fs::write(tmp.path().join("utkikk-report.service"), &service).unwrap();
    std::fs::write(tmp.path().join("utkikk-report.timer"), &timer).unwrap();
    let s = tmp
        .path()
        .join("utkikk-report.service")
        .display()
        .to_string();
    let t = tmp.path().join("utkikk-report.timer").display().to_string();
    run("systemd-analyze", &["verify", &s, &t], tmp.path());
    run(
        "systemd-analyze",
        &["security", "--offline=true", "--threshold=20", &s],
        tmp.path(),
    );
    // The schedule is what it says: the next run is on a 1st.
    let next = run(
        "systemd-analyze",
        &["calendar", "*-*-01 06:00:00 Europe/Oslo"],
        tmp.path(),
    );
    assert!(next.contains("-01 06:00:00"), "{next}");
}

/// Purges the package when the test ends, whatever happened.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "utkikk"]).output();
    }
}

/// Build the .deb (cargo-deb, from this test build's binary: no release
/// build in CI), install it with dpkg, and check what an administrator
/// gets: the binary, the config that passes check-config, the unit, the
/// user and state directory, the secrets file readable by root only.
#[test]
fn the_debian_package_installs_and_its_config_checks() {
    // SAFETY of the machine: dpkg -i changes it; CI runs as root on a
    // throwaway machine, and the package is purged at the end.
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    assert!(
        root_user,
        "this test installs the package with dpkg -i: run it as root (CI does)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let deb = tmp.path().join("utkikk.deb");
    let bin = Path::new(env!("CARGO_BIN_EXE_utkikk"));
    assert!(bin.ends_with("target/debug/utkikk"), "{}", bin.display());
    run(
        "cargo",
        &[
            "deb",
            "--profile",
            "dev",
            "--no-build",
            "--fast",
            "--output",
            &deb.display().to_string(),
        ],
        &root(),
    );
    let listing = run(
        "dpkg-deb",
        &["--contents", &deb.display().to_string()],
        tmp.path(),
    );
    for path in [
        "./usr/bin/utkikk",
        "./etc/utkikk/utkikk.yaml",
        "./usr/lib/systemd/system/utkikk.service",
        "./usr/lib/systemd/system/utkikk-report.service",
        "./usr/lib/systemd/system/utkikk-report.timer",
        "./usr/share/utkikk/prometheus/rules/utkikk-alerts.yml",
        "./usr/share/utkikk/prometheus/rules/utkikk-thresholds.yml",
    ] {
        assert!(
            listing.contains(path),
            "{path} not in the package:\n{listing}"
        );
    }
    let _purge = Purge;
    run("dpkg", &["-i", &deb.display().to_string()], tmp.path());
    let out = run(
        "/usr/bin/utkikk",
        &["check-config", "/etc/utkikk/utkikk.yaml"],
        tmp.path(),
    );
    assert!(out.contains("/etc/utkikk/utkikk.yaml: OK"), "{out}");
    let stat = |path: &str| run("stat", &["-c", "%a %U %G", path], tmp.path());
    assert_eq!(stat("/var/lib/utkikk").trim(), "750 utkikk utkikk");
    assert_eq!(stat("/etc/default/utkikk").trim(), "600 root root");
    let conffiles = run(
        "dpkg-query",
        &["--showformat=${Conffiles}", "--show", "utkikk"],
        tmp.path(),
    );
    assert!(
        conffiles.contains("/etc/utkikk/utkikk.yaml") && conffiles.contains("/etc/default/utkikk"),
        "{conffiles}"
    );
    // The installed unit is the one checked above.
    let unit = std::fs::read_to_string("/usr/lib/systemd/system/utkikk.service")
        .or_else(|_| std::fs::read_to_string("/lib/systemd/system/utkikk.service"))
        .unwrap();
    assert!(unit.contains("AmbientCapabilities=CAP_NET_RAW"));
    // Purging keeps a ledger (the record), and says so.
    std::fs::write("/var/lib/utkikk/ledger.db", b"").unwrap();
    let out = Command::new("dpkg")
        .args(["--purge", "utkikk"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the ledger in /var/lib/utkikk is kept"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::path::Path::new("/var/lib/utkikk/ledger.db").exists());
    std::fs::remove_dir_all("/var/lib/utkikk").unwrap();
    let _ = Command::new("deluser")
        .args(["--quiet", "--system", "utkikk"])
        .output();
}

fn yaml(path: &Path) -> serde_json::Value {
    read(path)
}

/// There is no container engine here: check what can be checked without
/// one. Every file the Dockerfile copies and the compose file mounts
/// exists, images are pinned, utkikk runs as a non-root user with every
/// capability dropped (unprivileged ICMP through ping_group_range), and the
/// configs mounted into Prometheus and Alertmanager pass their own tools.
#[test]
fn container_files_are_consistent() {
    let deploy = root().join("deploy");
    // Dockerfile
    let dockerfile = std::fs::read_to_string(deploy.join("Dockerfile")).unwrap();
    let mut stages = 0;
    for line in dockerfile.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first().copied() {
            Some("FROM") => {
                stages += 1;
                let image = words[1];
                assert!(
                    image.contains(':') && !image.ends_with(":latest"),
                    "unpinned base image {image}"
                );
            }
            Some("COPY") if !line.contains("--from=") => {
                let src = words[1];
                if src != "." {
                    assert!(root().join(src).exists(), "COPY {src}: no such file");
                }
            }
            Some("USER") => assert!(!words[1].starts_with('0') && words[1] != "root"),
            _ => {}
        }
    }
    assert!(stages >= 2, "multi-stage");
    assert!(dockerfile.contains("USER 10001:10001") && dockerfile.contains("EXPOSE 9474"));
    assert!(dockerfile.contains("COPY deploy/utkikk.yaml /etc/utkikk/utkikk.yaml"));
    let rust = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("FROM rust:"))
        .and_then(|r| r.split('-').next())
        .unwrap();
    let cargo = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let msrv = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .map(|v| v.trim_end_matches('"'))
        .unwrap();
    let num = |v: &str| -> Vec<u32> { v.split('.').map(|x| x.parse().unwrap()).collect() };
    assert!(
        num(rust) >= num(msrv),
        "rust:{rust} older than rust-version {msrv}"
    );
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l == "target/"),
        "the build context skips target/"
    );

    // compose.yaml
    let compose = yaml(&deploy.join("compose.yaml"));
    let services = compose["services"].as_object().unwrap();
    for name in ["utkikk", "prometheus", "alertmanager", "grafana"] {
        assert!(services.contains_key(name), "{name} missing");
    }
    for (name, s) in services {
        if let Some(image) = s["image"].as_str().filter(|_| s.get("build").is_none()) {
            assert!(
                image.contains(':') && !image.ends_with(":latest"),
                "{name}: {image}"
            );
        }
        for v in s["volumes"].as_array().into_iter().flatten() {
            let v = v.as_str().unwrap();
            let src = v.split(':').next().unwrap();
            if src.starts_with('.') {
                assert!(
                    deploy.join(src).exists(),
                    "{name}: mount source {src} missing"
                );
            }
        }
    }
    let u = &services["utkikk"];
    assert!(root()
        .join(u["build"]["dockerfile"].as_str().unwrap())
        .exists());
    assert_eq!(u["user"], "10001:10001");
    assert_eq!(u["cap_drop"][0], "ALL");
    assert_eq!(u["sysctls"]["net.ipv4.ping_group_range"], "0 2147483647");
    // The configs the other containers are started with.
    let arg = |svc: &str, flag: &str| -> String {
        services[svc]["command"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c.as_str()?.strip_prefix(flag).map(str::to_string))
            .next()
            .unwrap()
    };
    let prom = arg("prometheus", "--config.file=/etc/prometheus/");
    run(
        "promtool",
        &["check", "config", &prom],
        &deploy.join("prometheus"),
    );
    let prom_text = std::fs::read_to_string(deploy.join("prometheus").join(&prom)).unwrap();
    assert!(prom_text.contains("utkikk:9474") && prom_text.contains("alertmanager:9093"));
    let am = arg("alertmanager", "--config.file=/etc/alertmanager/");
    assert!(deploy.join("alertmanager").join(am).exists());
    let am_text = std::fs::read_to_string(deploy.join("alertmanager/alertmanager.yml")).unwrap();
    assert!(am_text.contains("/etc/alertmanager/templates/utkikk.tmpl"));
    // Grafana: the data source is the compose Prometheus, the provider
    // reads the folder the dashboards are mounted on.
    let ds = yaml(&root().join("dashboards/provisioning/datasources.yaml"));
    assert_eq!(ds["datasources"][0]["url"], "http://prometheus:9090");
    let provider = yaml(&root().join("dashboards/provisioning/dashboards.yaml"));
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let mounts = services["grafana"]["volumes"].as_array().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m.as_str().unwrap() == format!("../dashboards:{path}:ro")),
        "dashboards not mounted at {path}"
    );
}
