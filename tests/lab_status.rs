//! Lab scenarios for the status pages: what a member and the region see
//! through a fault, a note and planned maintenance, who may see it, and
//! the same pages in headless Chromium (see tests/lab/mod.rs).

mod lab;

use std::str::FromStr;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use lab::{far_host_v4, restore, silence, wait_until, Agent, FAST};

const DEADLINE: Duration = Duration::from_secs(60);
const API_TOKEN: &str = "lab-api-token-7f3a";
const REGION_TOKEN: &str = "lab-region-read-token-1";
const MEMBER_A_TOKEN: &str = "lab-member-a-read-token";

/// Members `a` (behind a token), `b` (public) and `c` (no page); a switch
/// both share and a server each.
fn config() -> String {
    format!(
        r#"
agent: {{ id: lab, api_token: "env:UTKIKK_API_TOKEN", sla_interval: 1s }}
{FAST}
reports: {{ organisation: Lab-regionen IKT }}
status_page:
  region: {{ token: "env:REGION_TOKEN" }}
  refresh: 1s
members:
  - {{ id: a, name: Aby kommune, status_page: {{ token: "env:MEMBER_A_TOKEN" }} }}
  - {{ id: b, name: Bby kommune, status_page: {{ public: true }} }}
  - {{ id: c, name: Cby kommune }}
targets:
  - {{ id: sw1, name: Kjernesvitsj, kind: switch, address: 198.51.100.1, serves: [a, b] }}
  - {{ id: srv-a, name: Fagserver Aby, kind: server, address: 198.51.100.2, parents: [sw1], member: a }}
  - {{ id: srv-b, name: Fagserver Bby, kind: server, address: 198.51.100.3, parents: [sw1], member: b }}
services:
  - id: svc-a
    name: Sak/arkiv Aby
    serves: [a]
    targets: [srv-a]
    sla: [{{ valid_from: 2020-01-01, objective: 99.5 }}]
  - id: svc-b
    name: Sak/arkiv Bby
    serves: [b]
    targets: [srv-b]
    sla: [{{ valid_from: 2020-01-01, objective: 99.5 }}]
"#
    )
}

fn start() -> (lab::FarHost, Agent) {
    let far = far_host_v4(&["198.51.100.1/24", "198.51.100.2/24", "198.51.100.3/24"]);
    let agent = Agent::start_env(
        &config(),
        &[
            ("UTKIKK_API_TOKEN", API_TOKEN),
            ("REGION_TOKEN", REGION_TOKEN),
            ("MEMBER_A_TOKEN", MEMBER_A_TOKEN),
        ],
    );
    for t in ["sw1", "srv-a", "srv-b"] {
        agent.wait_state(t, "up", DEADLINE);
    }
    (far, agent)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A page as a reader with `token` (a bearer token) sees it, in English.
fn page(agent: &Agent, path: &str, token: Option<&str>) -> (u16, String) {
    let auth = token.map(bearer);
    let mut headers = vec![("Accept-Language", "en")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let (status, _, body) = agent.get_with(path, &headers);
    (status, body)
}

/// The `data-condition` of a service's row on a member page.
fn condition(body: &str, service: &str) -> Option<String> {
    let row = body.split(&format!("data-service=\"{service}\"")).nth(1)?;
    let row = row.split("</tr>").next()?;
    let c = row.split("data-condition=\"").nth(1)?;
    Some(c.split('"').next()?.to_string())
}

/// The daily bars of a service: (date, availability, downtime seconds).
fn bars(body: &str, service: &str) -> Vec<(String, String, f64)> {
    let Some(div) = body
        .split("class=\"bars\" role=\"img\"")
        .skip(1)
        .find(|part| part.contains(&format!("data-service=\"{service}\"")))
        .and_then(|part| part.split("</div>").next())
    else {
        return Vec::new();
    };
    let attr = |span: &str, name: &str| {
        span.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|v| v.split('"').next())
            .unwrap_or_default()
            .to_string()
    };
    div.split("<span class=\"bar ")
        .skip(1)
        .map(|span| {
            (
                attr(span, "data-date"),
                attr(span, "data-availability"),
                attr(span, "data-downtime-seconds").parse().unwrap_or(0.0),
            )
        })
        .collect()
}

lab_test!(
    status_pages_show_faults_notes_and_maintenance_to_those_allowed,
    || {
        let (far, agent) = start();

        // Who may see what.
        let (s, body) = page(&agent, "/status", None);
        assert_eq!(s, 401, "the region page needs its token: {body}");
        assert!(body.contains("<html lang=\"en\">"), "{body}");
        let (s, _) = page(&agent, "/status", Some(MEMBER_A_TOKEN));
        assert_eq!(s, 401, "a member's token does not open the region");
        let (s, body) = page(&agent, "/status", Some(REGION_TOKEN));
        assert_eq!(s, 200, "{body}");
        assert!(
            body.contains("Aby kommune") && body.contains("Cby kommune"),
            "{body}"
        );
        assert!(
            body.contains("href=\"&#x2f;status&#x2f;a\""),
            "a's page is linked: {body}"
        );
        assert!(
            !body.contains("&#x2f;status&#x2f;c"),
            "c has no page to link: {body}"
        );
        assert_eq!(page(&agent, "/status", Some(API_TOKEN)).0, 200);
        assert_eq!(page(&agent, "/status/a", None).0, 401);
        assert_eq!(
            page(&agent, "/status/a", Some("lab-member-a-read-tokeX")).0,
            401
        );
        assert_eq!(page(&agent, "/status/a", Some(MEMBER_A_TOKEN)).0, 200);
        assert_eq!(page(&agent, "/status/a", Some(REGION_TOKEN)).0, 200);
        assert_eq!(page(&agent, "/status/b", None).0, 200, "b is public");
        assert_eq!(
            page(&agent, "/status/c", Some(REGION_TOKEN)).0,
            404,
            "c's page is off"
        );
        assert_eq!(page(&agent, "/status/nobody", Some(REGION_TOKEN)).0, 404);
        assert_eq!(page(&agent, "/status/b/feed.atom", None).0, 200);
        assert_eq!(page(&agent, "/status/a/feed.atom", None).0, 401);
        assert_eq!(page(&agent, "/status/a/badge/state.svg", None).0, 401);
        // A browser's `?token=` link: kept in a cookie, the address without it.
        let (s, h, _) = agent.get_with(&format!("/status/a?lang=en&token={MEMBER_A_TOKEN}"), &[]);
        assert_eq!(s, 303);
        assert_eq!(h["location"], "/status/a?lang=en");
        let cookie = h["set-cookie"].split(';').next().unwrap().to_string();
        assert!(h["set-cookie"].contains("HttpOnly") && h["set-cookie"].contains("SameSite=Lax"));
        let (s, h, body) = agent.get_with("/status/a?lang=en", &[("Cookie", &cookie)]);
        assert_eq!(s, 200, "{body}");
        assert_eq!(h["cache-control"], "private, no-store");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(h["content-security-policy"].contains("default-src 'none'"));
        // A read token opens no write, whatever it opens to read.
        for t in [REGION_TOKEN, MEMBER_A_TOKEN] {
            let (s, _) = agent.write(
            "POST",
            "/api/v1/maintenance",
            Some(t),
            r#"{"targets":["srv-a"],"category":"other","start":"2099-01-01T00:00:00Z","end":"2099-01-01T01:00:00Z"}"#,
        );
            assert_eq!(s, 401, "a read token must not write");
        }
        // No token in the log, the metrics or the page.
        let (_, body) = page(&agent, "/status/a", Some(MEMBER_A_TOKEN));
        for t in [API_TOKEN, REGION_TOKEN, MEMBER_A_TOKEN] {
            assert!(!body.contains(t), "a token on the page");
            assert!(!agent.metrics().contains(t), "a token in the metrics");
        }

        // All up, in bokmål by default.
        let (_, h, body) = agent.get_with("/status/b", &[]);
        assert!(body.contains("<html lang=\"nb\">"), "{body}");
        assert!(body.contains("Alle tjenester er oppe."), "{body}");
        assert_eq!(h["cache-control"], "no-cache");
        assert_eq!(condition(&body, "svc-b").as_deref(), Some("up"));
        let (_, body) = page(&agent, "/status/b?lang=en", None);
        assert!(body.contains("All services are up."), "{body}");

        // A fault on a's server: a's page says so at once (the live state),
        // b's does not.
        silence(&far, &["198.51.100.2"]);
        let down = agent.wait_state("srv-a", "down", DEADLINE);
        let start = down["since"].as_str().unwrap().to_string();
        let (_, body) = page(&agent, "/status/a", Some(MEMBER_A_TOKEN));
        assert_eq!(condition(&body, "svc-a").as_deref(), Some("down"), "{body}");
        assert!(body.contains("Some services have problems."), "{body}");
        assert!(body.contains("data-root-cause=\"Fagserver Aby\""), "{body}");
        let (_, body) = page(&agent, "/status/b", None);
        assert_eq!(condition(&body, "svc-b").as_deref(), Some("up"));
        assert!(
            !body.contains("Fagserver Aby"),
            "b's page shows a's fault: {body}"
        );
        let (_, body) = page(&agent, "/status", Some(REGION_TOKEN));
        assert!(body.contains("data-condition=\"down\""), "{body}");
        let (s, svg) = page(&agent, "/status/a/badge/state.svg", Some(MEMBER_A_TOKEN));
        assert_eq!(s, 200);
        assert!(svg.contains("Aby kommune: Down"), "{svg}");

        // The operators' message is on the page at once.
        let outages = agent.get("/api/v1/outages?member=a").1;
        let outages: serde_json::Value = serde_json::from_str(&outages).unwrap();
        let open = outages["outages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["root_cause"] == "srv-a")
            .unwrap_or_else(|| panic!("the outage is listed: {outages:#}"));
        let note = format!(
            r#"{{"root_cause":"srv-a","start":"{}","note":"Fibre cut at Aby; the carrier is on site <b>now</b>."}}"#,
            open["start"].as_str().unwrap()
        );
        let (s, v) = agent.write("POST", "/api/v1/outages/notes", Some(API_TOKEN), &note);
        assert_eq!(s, 200, "{v}");
        let (_, body) = page(&agent, "/status/a", Some(MEMBER_A_TOKEN));
        assert!(
            body.contains("Fibre cut at Aby; the carrier is on site &lt;b&gt;now&lt;&#x2f;b&gt;."),
            "the note, escaped, at once: {body}"
        );
        let (_, feed) = page(&agent, "/status/a/feed.atom", Some(MEMBER_A_TOKEN));
        let parsed =
            atom_syndication::Feed::from_str(&feed).unwrap_or_else(|e| panic!("{e}: {feed}"));
        let since_ms = chrono::DateTime::parse_from_rfc3339(&start)
            .unwrap()
            .timestamp_millis();
        let entry = parsed
            .entries()
            .iter()
            .find(|e| e.id() == format!("urn:utkikk:lab:a:outage:srv-a:{since_ms}"))
            .unwrap_or_else(|| panic!("the incident in the feed: {feed}"));
        assert!(entry.title().as_str().contains("Fagserver Aby"));
        assert!(entry
            .content()
            .and_then(|c| c.value())
            .unwrap_or_default()
            .contains("Fibre cut"));

        // Planned maintenance on b's server: on b's page and feed, not a's.
        let in_an_hour = Utc::now() + chrono::Duration::hours(1);
        let window = format!(
            r#"{{"targets":["srv-b"],"category":"vendor_work","note":"Firmware upgrade","start":"{}","end":"{}"}}"#,
            in_an_hour.to_rfc3339_opts(SecondsFormat::Secs, true),
            (in_an_hour + chrono::Duration::hours(2)).to_rfc3339_opts(SecondsFormat::Secs, true)
        );
        let (s, v) = agent.write("POST", "/api/v1/maintenance", Some(API_TOKEN), &window);
        assert_eq!(s, 201, "{v}");
        let (_, body) = page(&agent, "/status/b", None);
        assert!(
            body.contains("Firmware upgrade") && body.contains("Vendor work"),
            "{body}"
        );
        let (_, body) = page(&agent, "/status/a", Some(MEMBER_A_TOKEN));
        assert!(!body.contains("Firmware upgrade"), "{body}");
        let (_, feed) = page(&agent, "/status/b/feed.atom", None);
        assert!(feed.contains("Firmware upgrade"), "{feed}");

        // Resolved: the incident moves to the list of resolved ones.
        restore(&far, &["198.51.100.2"]);
        agent.wait_state("srv-a", "up", DEADLINE);
        let (_, body) = page(&agent, "/status/a", Some(MEMBER_A_TOKEN));
        assert_eq!(condition(&body, "svc-a").as_deref(), Some("up"));
        let mut last = String::new();
        wait_until("the outage among the resolved ones", DEADLINE, || {
            last = page(&agent, "/status/a", Some(MEMBER_A_TOKEN)).1;
            last.contains("class=\"resolved\"")
        });
        assert!(last.contains("Fibre cut at Aby"), "the note stays: {last}");

        // The bars are the ledger's days: this month's add up to the month's
        // downtime as the SLA API has it.
        let month = chrono::Utc::now()
            .with_timezone(&chrono_tz::Europe::Oslo)
            .format("%Y-%m")
            .to_string();
        let sla = agent
            .get(&format!("/api/v1/services/svc-a/sla?month={month}"))
            .1;
        let sla: serde_json::Value = serde_json::from_str(&sla).unwrap();
        let downtime = sla["figures"]["downtime_seconds"].as_f64().unwrap();
        assert!(downtime > 0.0, "{sla:#}");
        let days = bars(&last, "svc-a");
        assert_eq!(days.len(), 90, "{last}");
        let in_month: f64 = days
            .iter()
            .filter(|(d, _, _)| d.starts_with(&month))
            .map(|(_, _, s)| s)
            .sum();
        assert!(
            (in_month - downtime).abs() < 0.01,
            "bars {in_month} s, ledger {downtime} s"
        );
        let today = days.last().unwrap();
        assert!(today.2 > 0.0, "today's bar has the downtime: {today:?}");
        let before: Vec<_> = days[..89].iter().filter(|d| !d.1.is_empty()).collect();
        assert!(
            before.is_empty(),
            "days before the ledger began have no figures: {before:?}"
        );
    }
);

/// The pinned axe-core that scripts/test fetches (the lab has no network).
const AXE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/target/test-deps/axe-core-4.14.1/axe.min.js"
);

/// chromedriver on loopback, stopped with the test.
struct Chromedriver(std::process::Child);

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const DRIVER: &str = "http://127.0.0.1:9515";

fn chromedriver() -> Chromedriver {
    let child = std::process::Command::new("chromedriver")
        .args(["--port=9515", "--allowed-ips=127.0.0.1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("chromedriver is needed (scripts/test installs chromium-driver): {e}")
        });
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    wait_until("chromedriver to listen", DEADLINE, || {
        http.get(format!("{DRIVER}/status"))
            .call()
            .is_ok_and(|r| r.status() == 200)
    });
    Chromedriver(child)
}

async fn browser(profile: &std::path::Path) -> fantoccini::Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--window-size=1200,1600",
                format!("--user-data-dir={}", profile.display()),
            ],
            // A Norwegian reader's browser.
            "prefs": { "intl.accept_languages": "nb-NO,nb,no" },
        }),
    );
    fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(DRIVER)
        .await
        .unwrap_or_else(|e| panic!("a Chromium session through chromedriver: {e}"))
}

/// axe-core's WCAG 2.1 A and AA rules on the page now: the violations,
/// each with where.
async fn axe(client: &fantoccini::Client) -> Vec<String> {
    let source = std::fs::read_to_string(AXE).unwrap_or_else(|e| {
        panic!("{AXE}: {e}; scripts/test fetches axe-core (run it, or its axe-core lines)")
    });
    client
        .execute(&format!("{source}\n;return true;"), vec![])
        .await
        .expect("inject axe-core");
    let found = client
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } })
                 .then(r => done({ passes: r.passes.length, violations: r.violations.map(v => v.id + ": " + v.help + " at " + v.nodes.map(n => n.target.join(" ")).join(", ")) }))
                 .catch(e => done({ passes: 0, violations: ["axe failed: " + e] }));"#,
            vec![],
        )
        .await
        .expect("run axe-core");
    // It ran its rules: a page passes many.
    assert!(
        found["passes"].as_u64().unwrap_or(0) >= 10,
        "axe-core did not run: {found}"
    );
    serde_json::from_value(found["violations"].clone()).expect("axe-core's violations")
}

async fn js(client: &fantoccini::Client, script: &str) -> serde_json::Value {
    client.execute(script, vec![]).await.unwrap_or_default()
}

/// Wait (polling the page as it is, never reloading it) until `script`
/// returns true.
async fn wait_page(client: &fantoccini::Client, what: &str, script: &str) {
    let start = std::time::Instant::now();
    loop {
        if js(client, script).await == serde_json::Value::Bool(true) {
            return;
        }
        let html = client.source().await.unwrap_or_default();
        assert!(
            start.elapsed() < DEADLINE,
            "timed out waiting for {what}; the page:\n{html}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Tab through the page: the elements focused in order (tag, id or
/// text), until the focus comes round again.
async fn tab_order(client: &fantoccini::Client) -> Vec<String> {
    js(
        client,
        "document.activeElement && document.activeElement.blur(); window.focus(); return true;",
    )
    .await;
    let mut seen = Vec::new();
    for _ in 0..200 {
        client
            .active_element()
            .await
            .expect("the focused element")
            .send_keys("\u{E004}")
            .await
            .expect("Tab");
        let now = js(
            client,
            "const e = document.activeElement; return e === document.body ? 'body' : e.tagName.toLowerCase() + ':' + (e.id || e.textContent.trim().slice(0, 40));",
        )
        .await;
        let now = now.as_str().unwrap_or_default().to_string();
        if seen.first() == Some(&now) || now == "body" {
            break;
        }
        seen.push(now);
    }
    seen
}

lab_test!(
    status_pages_in_a_browser_refresh_pass_axe_and_work_by_keyboard,
    || {
        let (far, agent) = start();
        let _driver = chromedriver();
        let profile = tempfile::tempdir().unwrap();
        let shots = std::env::var_os("UTKIKK_STATUS_SCREENSHOTS").map(std::path::PathBuf::from);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
        let client = browser(profile.path()).await;
        let base = lab::BASE;
        // A maintenance window ahead, so the member page has every part.
        let soon = Utc::now() + chrono::Duration::hours(3);
        let window = format!(
            r#"{{"targets":["srv-a"],"category":"planned_change","note":"Oppgradering av fagsystem","start":"{}","end":"{}"}}"#,
            soon.to_rfc3339_opts(SecondsFormat::Secs, true),
            (soon + chrono::Duration::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true)
        );
        assert_eq!(agent.write("POST", "/api/v1/maintenance", Some(API_TOKEN), &window).0, 201);

        // Without the token: the page that says how to get in, itself
        // accessible.
        client.goto(&format!("{base}/status/a")).await.unwrap();
        assert_eq!(js(&client, "return document.documentElement.lang").await, "nb");
        let violations = axe(&client).await;
        assert!(violations.is_empty(), "the 401 page: {violations:#?}");

        // The region's link with its token: the browser keeps the token.
        client.goto(&format!("{base}/status?token={REGION_TOKEN}")).await.unwrap();
        let url = client.current_url().await.unwrap();
        assert!(!url.as_str().contains("token"), "the token left the address: {url}");
        assert_eq!(js(&client, "return document.documentElement.lang").await, "nb");
        let violations = axe(&client).await;
        assert!(violations.is_empty(), "the region page (nb): {violations:#?}");
        client.goto(&format!("{base}/status?lang=en")).await.unwrap();
        assert_eq!(js(&client, "return document.documentElement.lang").await, "en");
        let violations = axe(&client).await;
        assert!(violations.is_empty(), "the region page (en): {violations:#?}");

        // a's page (the region's token opens it), all up.
        client.goto(&format!("{base}/status/a")).await.unwrap();
        let cond = "return document.querySelector('#service-svc-a [data-condition]').dataset.condition";
        assert_eq!(js(&client, cond).await, "up");

        // The fault shows within a refresh, without reloading the page,
        // and a screen reader hears the summary change.
        silence(&far, &["198.51.100.2"]);
        agent.wait_state("srv-a", "down", DEADLINE);
        wait_page(&client, "svc-a down on the open page", &format!("{cond} === 'down'")).await;
        assert_eq!(
            js(&client, "return document.getElementById('announce').textContent").await,
            "Noen tjenester har feil."
        );
        // The operators' message, on the open page at its next refresh.
        let outages: serde_json::Value =
            serde_json::from_str(&agent.get("/api/v1/outages?member=a").1).unwrap();
        let start = outages["outages"][0]["start"].as_str().unwrap().to_string();
        let note = format!(r#"{{"root_cause":"srv-a","start":"{start}","note":"Leverandøren feilsøker. Neste melding kl. 14."}}"#);
        assert_eq!(agent.write("POST", "/api/v1/outages/notes", Some(API_TOKEN), &note).0, 200);
        wait_page(&client, "the note on the open page", "return document.body.textContent.includes('Leverandøren feilsøker')").await;

        // Every WCAG 2.1 A/AA rule axe-core checks, with an incident, a
        // note, maintenance and 90 bars on the page, in both languages.
        let violations = axe(&client).await;
        assert!(violations.is_empty(), "a's page (nb): {violations:#?}");
        if let Some(dir) = &shots {
            std::fs::write(dir.join("status-member-nb.png"), client.screenshot().await.unwrap()).unwrap();
        }
        client.goto(&format!("{base}/status/a?lang=en")).await.unwrap();
        assert_eq!(js(&client, "return document.documentElement.lang").await, "en");
        let violations = axe(&client).await;
        assert!(violations.is_empty(), "a's page (en): {violations:#?}");
        if let Some(dir) = &shots {
            std::fs::write(dir.join("status-member-en.png"), client.screenshot().await.unwrap()).unwrap();
        }

        // The keyboard reaches every link and every day table, the skip
        // link first, and a day table opens with Enter.
        let order = tab_order(&client).await;
        let reachable = js(
            &client,
            "return document.querySelectorAll('a[href], summary').length",
        )
        .await;
        assert_eq!(Some(order.len() as u64), reachable.as_u64(), "{order:#?}");
        assert!(order[0].starts_with("a:Skip to content"), "{order:#?}");
        assert!(order.iter().any(|o| o == "summary:days-svc-a-summary"), "{order:#?}");
        js(&client, "document.getElementById('days-svc-a-summary').focus(); return true;").await;
        client.active_element().await.unwrap().send_keys("\u{E007}").await.unwrap();
        assert_eq!(js(&client, "return document.getElementById('days-svc-a').open").await, true);
        // The skip link is seen when focused (not left off screen).
        js(&client, "document.querySelector('a.skip').focus(); return true;").await;
        let left = js(&client, "return document.querySelector('a.skip').getBoundingClientRect().left").await;
        assert!(left.as_f64().unwrap_or(-1.0) >= 0.0, "the focused skip link is off screen: {left}");

        // The README's pictures of the region during the fault.
        if let Some(dir) = &shots {
            for (lang, file) in [("nb", "status-region-nb.png"), ("en", "status-region-en.png")] {
                client.goto(&format!("{base}/status?lang={lang}")).await.unwrap();
                std::fs::write(dir.join(file), client.screenshot().await.unwrap()).unwrap();
            }
        }
        client.close().await.unwrap();
    });
    }
);
