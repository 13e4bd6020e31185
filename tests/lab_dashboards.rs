//! The Grafana dashboards against a real Prometheus (Debian package
//! `prometheus`) scraping a lab agent, with utkikk's recording rules loaded:
//! every template variable's values and every panel's query, variables
//! filled in as Grafana would, must parse and return data. Grafana itself
//! is not needed for that: the queries are what can break.

mod lab;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lab::{far_host_v4, wait_until, Agent, Snmpd, FAST};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(60);
const PROM: &str = "http://127.0.0.1:9090";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// GET a Prometheus API path with query parameters; its JSON.
fn api(path: &str, params: &[(&str, &str)]) -> Value {
    let mut req = http().get(format!("{PROM}{path}"));
    for (k, v) in params {
        req = req.query(*k, *v);
    }
    match req.call() {
        Ok(mut r) => serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default())
            .unwrap_or_default(),
        Err(_) => Value::Null,
    }
}

/// An instant query's result: `Ok(series)` or `Err(what Prometheus said)`.
fn query(expr: &str) -> Result<Vec<Value>, String> {
    let v = api("/api/v1/query", &[("query", expr)]);
    if v["status"] == "success" {
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    } else {
        Err(format!("{} {}", v["errorType"], v["error"]))
    }
}

/// Grafana's built-in variables, as a dashboard would fill them over the
/// last few minutes.
fn builtins(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
        .replace("$__interval", "1s")
}

/// Fill `$name` with the variable's values as Grafana does for a multi-
/// value regex (`(a|b)`); longest names first so `$target` is not `$t…`.
fn fill(expr: &str, vars: &[(String, Vec<String>)]) -> String {
    let mut sorted: Vec<&(String, Vec<String>)> = vars.iter().collect();
    sorted.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    let mut out = builtins(expr);
    for (name, values) in sorted {
        out = out.replace(&format!("${name}"), &format!("({})", values.join("|")));
    }
    out
}

/// `label_values(selector, label)` as Prometheus' label values API.
fn label_values(q: &str) -> Result<Vec<String>, String> {
    let inner = q
        .trim()
        .strip_prefix("label_values(")
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("not label_values(): {q}"))?;
    let (selector, label) = inner
        .rsplit_once(',')
        .ok_or_else(|| format!("no label in {q}"))?;
    let v = api(
        &format!("/api/v1/label/{}/values", label.trim()),
        &[("match[]", selector.trim())],
    );
    if v["status"] != "success" {
        return Err(format!("{q}: {v}"));
    }
    Ok(v["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// Every annotation query of a dashboard (Prometheus ones), by name.
fn annotation_queries(dash: &Value) -> Vec<(String, String)> {
    dash["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            Some((
                a["name"].as_str().unwrap_or("").to_string(),
                a["expr"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// Every link of a dashboard: its own, and each panel's data links
/// (defaults and overrides), as URLs.
fn links(dash: &Value) -> Vec<String> {
    let mut out: Vec<String> = dash["links"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["url"].as_str().map(str::to_string))
        .collect();
    for p in dash["panels"].as_array().into_iter().flatten() {
        let fc = &p["fieldConfig"];
        let lists = std::iter::once(&fc["defaults"]["links"]).chain(
            fc["overrides"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|o| o["properties"].as_array().into_iter().flatten())
                .filter(|prop| prop["id"] == "links")
                .map(|prop| &prop["value"]),
        );
        for list in lists {
            for l in list.as_array().into_iter().flatten() {
                out.extend(l["url"].as_str().map(str::to_string));
            }
        }
    }
    out
}

/// Every panel query of a dashboard, with its panel's title.
fn panel_queries(dash: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = t["expr"].as_str() {
                out.push((
                    p["title"].as_str().unwrap_or("").to_string(),
                    expr.to_string(),
                ));
            }
        }
    }
    out
}

/// What is wrong with a dashboard now: variables without values, queries
/// that fail or return nothing. Empty when all is well.
fn problems(dash: &Value, annotated: &mut Vec<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut vars: Vec<(String, Vec<String>)> = Vec::new();
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] != "query" {
            continue;
        }
        let name = v["name"].as_str().unwrap_or_default().to_string();
        let q = fill(v["definition"].as_str().unwrap_or_default(), &vars);
        match label_values(&q) {
            Ok(values) if !values.is_empty() => vars.push((name, values)),
            Ok(_) => {
                problems.push(format!("variable ${name}: no values from {q}"));
                vars.push((name, vec!["none".into()]));
            }
            Err(e) => {
                problems.push(format!("variable ${name}: {e}"));
                vars.push((name, vec!["none".into()]));
            }
        }
    }
    for (title, expr) in panel_queries(dash) {
        let filled = fill(&expr, &vars);
        match query(&filled) {
            Ok(r) if !r.is_empty() => {}
            Ok(_) => problems.push(format!("{title:?}: no data from {filled}")),
            Err(e) => problems.push(format!("{title:?}: {e} in {filled}")),
        }
    }
    // Annotations: each query is one Prometheus takes; outages and
    // maintenance must show somewhere (a dashboard scoped to one link or
    // device has none of them in the lab), reboots need not.
    for (name, expr) in annotation_queries(dash) {
        let filled = fill(&expr, &vars);
        match query(&filled) {
            Ok(r) if !r.is_empty() => annotated.push(name),
            Ok(_) => {}
            Err(e) => problems.push(format!("annotation {name:?}: {e} in {filled}")),
        }
    }
    problems
}

fn dashboards() -> Vec<(PathBuf, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("dashboards"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, v)
        })
        .collect()
}

#[test]
fn dashboards_are_current_schema_with_the_uids_alerts_link_to() {
    let alerts =
        std::fs::read_to_string(root().join("deploy/prometheus/rules/utkikk-alerts.yml")).unwrap();
    let all = dashboards();
    let uids: Vec<&str> = all.iter().filter_map(|(_, d)| d["uid"].as_str()).collect();
    assert_eq!(
        uids,
        [
            "utkikk-agent",
            "utkikk-checks",
            "utkikk-devices",
            "utkikk-links",
            "utkikk-member",
            "utkikk-region"
        ]
    );
    for (path, d) in &all {
        let uid = d["uid"].as_str().unwrap();
        assert_eq!(path.file_stem().unwrap(), uid, "file named by its uid");
        assert!(d["schemaVersion"].as_i64().unwrap() >= 39, "{uid}");
        assert!(
            alerts.contains(&format!("/d/{uid}/")),
            "no alert links to {uid}"
        );
        // Every variable a query uses is defined; every panel has a query.
        let defined: Vec<String> = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| format!("${}", v["name"].as_str().unwrap()))
            .collect();
        for (title, expr) in panel_queries(d) {
            for word in expr.split(|c: char| !(c.is_alphanumeric() || c == '$' || c == '_')) {
                if word.starts_with('$') && !word.starts_with("$__") {
                    assert!(
                        defined.contains(&word.to_string()),
                        "{uid} {title:?}: {word} undefined"
                    );
                }
            }
        }
        // Outages, maintenance and reboots annotated on every dashboard.
        let names: Vec<String> = annotation_queries(d).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["Outages", "Maintenance", "Reboots"], "{uid}");
        for p in d["panels"].as_array().unwrap() {
            if p["type"] != "row" {
                assert!(
                    !p["targets"].as_array().unwrap().is_empty(),
                    "{uid}: {}",
                    p["title"]
                );
            }
        }
    }
}

/// Drill-down: every link names a dashboard that exists and only
/// variables that dashboard has; the region reaches the member dashboard,
/// that one the links and devices dashboards, and each of them links
/// back to the region.
#[test]
fn dashboard_links_point_at_dashboards_and_variables_that_exist() {
    let all = dashboards();
    let vars = |d: &Value| -> Vec<String> {
        d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_string())
            .collect()
    };
    let by_uid: std::collections::BTreeMap<&str, &Value> = all
        .iter()
        .map(|(_, d)| (d["uid"].as_str().unwrap(), d))
        .collect();
    let mut reached = std::collections::BTreeSet::new();
    for (_, d) in &all {
        let uid = d["uid"].as_str().unwrap();
        for url in links(d) {
            let rest = url
                .strip_prefix("/d/")
                .unwrap_or_else(|| panic!("{uid}: {url} is not a dashboard link"));
            let target = rest.split('/').next().unwrap();
            let to = by_uid
                .get(target)
                .unwrap_or_else(|| panic!("{uid}: {url} names no dashboard"));
            reached.insert((uid.to_string(), target.to_string()));
            let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
            for pair in query.split('&') {
                if let Some(name) = pair.strip_prefix("var-") {
                    let name = name.split('=').next().unwrap();
                    assert!(
                        vars(to).iter().any(|v| v == name),
                        "{uid}: {url} sets ${name}, which {target} does not have"
                    );
                }
            }
        }
    }
    for (from, to) in [
        ("utkikk-region", "utkikk-member"),
        ("utkikk-member", "utkikk-links"),
        ("utkikk-member", "utkikk-devices"),
        ("utkikk-devices", "utkikk-devices"),
        ("utkikk-member", "utkikk-region"),
        ("utkikk-links", "utkikk-region"),
        ("utkikk-devices", "utkikk-region"),
        ("utkikk-agent", "utkikk-region"),
        ("utkikk-checks", "utkikk-region"),
    ] {
        assert!(
            reached.contains(&(from.to_string(), to.to_string())),
            "no link from {from} to {to}"
        );
    }
}

lab_test!(
    every_dashboard_query_returns_data_from_a_real_prometheus,
    || {
        let dir = tempfile::tempdir().unwrap();
        // A switch polled over SNMP, a link with an end on it and a server
        // behind the link, and a server that never answers (a service down,
        // with its root cause).
        let far = far_host_v4(&["198.51.100.1/24", "198.51.100.2/24"]);
        far.sh("ip link add ge-0-0-1 type veth peer name ge-0-0-2");
        far.sh("ip link set ge-0-0-1 up");
        far.sh("ip link set ge-0-0-2 up");
        let _snmpd = Snmpd::start(
            &far,
            dir.path(),
            "198.51.100.1",
            "rocommunity lab-dash-c0mm default\n",
        );
        // A web server and a DNS server behind the link, for the checks'
        // dashboard.
        let certs = lab::Certs::make(dir.path(), &["198.51.100.2"]);
        let _nginx = lab::Nginx::start(
            &far,
            &dir.path().join("nginx"),
            "198.51.100.2",
            &certs,
            200,
            "ok",
        );
        let _dns = lab::unbound(&far, &dir.path().join("unbound"), "198.51.100.2");
        let ca = certs.path("ca.pem");
        let now = chrono::Utc::now();
        let mut agent = Agent::prepare(
        &format!(
            "agent: {{ id: lab, sla_interval: 1s }}\n{FAST}\
             \x20 snmp: {{ interval: 2s, timeout: 800ms, retries: 1 }}\n\
             members:\n  - {{ id: kongsberg, name: Kongsberg }}\n  - {{ id: flesberg, name: Flesberg }}\n\
             sites:\n  - {{ id: dc, name: Datasenter, member: kongsberg }}\n  - {{ id: fl, name: Rådhus, member: flesberg }}\n\
             targets:\n\
             \x20 - {{ id: sw1, kind: switch, address: 198.51.100.1, site: dc, snmp: {{ version: 2c, community: env:LAB_COMMUNITY }} }}\n\
             \x20 - {{ id: link-a, kind: link, address: 198.51.100.2, site: dc, parents: [sw1], serves: [flesberg],\n\
             \x20     ends: [ {{ device: sw1, interface: ge-0-0-1 }} ] }}\n\
             \x20 - {{ id: srv1, kind: server, address: 198.51.100.2, site: fl, parents: [link-a] }}\n\
             \x20 - {{ id: dead, kind: server, address: 198.51.100.99, site: fl }}\n\
             \x20 - {{ id: spare, kind: server, address: 198.51.100.2, site: fl }}\n\
             \x20 - {{ id: web-check, kind: service, address: 198.51.100.2, site: fl, parents: [srv1],\n\
             \x20     http: {{ url: 'https://198.51.100.2/', tls: {{ ca_file: '{ca}' }}, interval: 1s, timeout: 800ms }} }}\n\
             \x20 - {{ id: dns-check, kind: service, address: 198.51.100.2, site: fl, parents: [srv1],\n\
             \x20     dns: {{ name: www.lab.test, interval: 1s, timeout: 800ms }} }}\n\
             services:\n\
             \x20 - {{ id: files, name: Filer, serves: [flesberg], targets: [srv1], sla: [{{ valid_from: 2020-01-01, objective: 99.5, min_coverage: 0 }}] }}\n\
             \x20 - {{ id: net, name: Nett, serves: [kongsberg, flesberg], targets: [link-a], sla: [{{ valid_from: 2020-01-01, objective: 99.9, min_coverage: 0 }}] }}\n\
             \x20 - {{ id: web, name: Web, serves: [flesberg], targets: [dead], sla: [{{ valid_from: 2020-01-01, objective: 99.0, min_coverage: 0 }}] }}\n\
             maintenance:\n\
             \x20 - {{ id: now, targets: [spare], start: \"{start}\", end: \"{end}\" }}\n",
            start = (now - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%S+00:00"),
            end = (now + chrono::Duration::hours(2)).format("%Y-%m-%dT%H:%M:%S+00:00"),
        ),
    );
        agent
            .env
            .push(("LAB_COMMUNITY".into(), "lab-dash-c0mm".into()));
        // Last month in the ledger: everything up all month, so the agent
        // freezes its results and the past months' panels have a month.
        {
            use utkikk::health::{State, Transition};
            use utkikk::ledger::{Record, Store};
            let month = utkikk::time::calendar::Month::parse(&utkikk::time::oslo::month_of(now))
                .unwrap()
                .prev();
            let w = month.window().unwrap();
            std::fs::create_dir_all(agent.data_dir()).unwrap();
            let mut store = Store::open(&agent.data_dir().join("ledger.db")).unwrap();
            let run = store.begin_run("lab", w.start).unwrap();
            let records: Vec<Record> = ["sw1", "link-a", "srv1", "dead", "spare"]
                .iter()
                .map(|t| {
                    Record::Transition(Transition {
                        target: t.to_string(),
                        from: State::Unmonitored,
                        to: State::Up,
                        at: chrono::DateTime::from_timestamp_millis(w.start).unwrap(),
                        reason: Some(utkikk::model::Reason::NotProbedYet),
                        root_cause: None,
                    })
                })
                .collect();
            store.write(run, &records, w.end).unwrap();
            store.end_run(run, w.end).unwrap();
        }
        agent.spawn();
        agent.wait_state("link-a", "up", DEADLINE);
        agent.wait_state("dead", "down", DEADLINE);
        agent.wait_state("web-check", "up", DEADLINE);
        agent.wait_state("dns-check", "up", DEADLINE);

        // Prometheus scraping the agent every second, with utkikk's rules.
        let rules = root().join("deploy/prometheus/rules");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
        &config,
        format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n\
             rule_files: ['{r}/utkikk-recording.yml', '{r}/utkikk-thresholds.yml', '{r}/utkikk-alerts.yml']\n\
             scrape_configs:\n  - job_name: utkikk\n    static_configs: [{{ targets: ['127.0.0.1:9474'] }}]\n",
            r = rules.display()
        ),
    )
    .unwrap();
        let _prom = Prometheus(
            Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("tsdb").display()
                ))
                .args(["--web.listen-address=127.0.0.1:9090", "--log.level=warn"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("prometheus (Debian package `prometheus`; scripts/test installs it)"),
        );
        wait_until("Prometheus scrapes the agent", DEADLINE, || {
            query("up{job=\"utkikk\"} == 1").is_ok_and(|r| !r.is_empty())
        });

        // Every dashboard, until all its queries give data (rates need a few
        // scrapes, utilisation two polls) or the deadline passes.
        let all = dashboards();
        let start = Instant::now();
        let last = loop {
            let mut annotated = Vec::new();
            let mut now: Vec<String> = all
                .iter()
                .flat_map(|(_, d)| problems(d, &mut annotated))
                .collect();
            for name in ["Outages", "Maintenance"] {
                if !annotated.iter().any(|a| a == name) {
                    now.push(format!("annotation {name:?}: no data on any dashboard"));
                }
            }
            if now.is_empty() || start.elapsed() > Duration::from_secs(120) {
                break now;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        assert!(
            last.is_empty(),
            "dashboard queries without data:\n{}",
            last.join("\n")
        );
        let n: usize = all.iter().map(|(_, d)| panel_queries(d).len()).sum();
        assert!(n >= 40, "{n} queries");
        drop(agent);
    }
);
