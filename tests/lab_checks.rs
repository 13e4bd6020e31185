//! Lab scenarios for the service checks (issue 18): real servers in a far
//! namespace — nginx (HTTP and HTTPS with certificates made here: a good
//! one, one that expires in two days, an expired one), unbound with a test
//! zone, a TCP banner server — and real faults: wrong status, body
//! changed, slow answers, certificates near or past expiry, DNS SERVFAIL
//! and NXDOMAIN, a server gone silent, and the link above cut — and
//! tinyproxy in front (CONNECT and plain HTTP, basic auth): a wrong
//! proxy password, the proxy stopped.

mod lab;

use std::time::Duration;

use lab::{
    banner, far_host_v4, restore, silence, tinyproxy, unbound, wait_until, Agent, Certs, Nginx,
    FAST, LAB_PROXY_PASSWORD,
};

const DEADLINE: Duration = Duration::from_secs(60);
/// The header secret: sent by the check, required by nginx, never shown.
const API_KEY: &str = lab::LAB_API_KEY;

fn reason_code(agent: &Agent, id: &str) -> String {
    agent.target(id)["reason_code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn wait_reason(agent: &Agent, id: &str, state: &str, code: &str) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    wait_until(&format!("{id} {state} ({code})"), DEADLINE, || {
        last = agent.target(id);
        last["state"] == state && last["reason_code"] == code
    });
    last
}

lab_test!(service_checks_grade_real_servers_and_their_faults, || {
    let far = far_host_v4(&[
        "198.51.100.1/24",
        "198.51.100.10/24",
        "198.51.100.30/24",
        "198.51.100.53/24",
    ]);
    let work = tempfile::tempdir().expect("tempdir");
    let certs = Certs::make(work.path(), &["www.lab.test"]);
    let ngx_dir = work.path().join("nginx");
    let dns_dir = work.path().join("unbound");
    let mut nginx = Nginx::start(
        &far,
        &ngx_dir,
        "198.51.100.10",
        &certs,
        200,
        "Velkommen til Kongsberg",
    );
    let dns = unbound(&far, &dns_dir, "198.51.100.53");
    let smtp = banner(&far, "198.51.100.10");
    let proxy = tinyproxy(&far, &work.path().join("tinyproxy"), "198.51.100.30");
    let ca = certs.path("ca.pem");
    let check = "interval: 1s, timeout: 800ms";
    let yaml = format!(
        "agent: {{ id: lab }}\n{FAST}\ntargets:\n  \
         - {{ id: uplink, kind: link, address: 198.51.100.1 }}\n  \
         - {{ id: web01, kind: server, address: 198.51.100.10, parents: [uplink] }}\n  \
         - {{ id: web-health, kind: service, address: 198.51.100.10, parents: [web01], http: {{ url: 'http://www.lab.test/health', headers: {{ X-Api-Key: 'env:LAB_API_KEY' }}, json: {{ pointer: /status, equals: ok }}, {check} }} }}\n  \
         - {{ id: web-https, kind: service, address: 198.51.100.10, parents: [web01], http: {{ url: 'https://www.lab.test/', body: Velkommen, tls: {{ ca_file: '{ca}' }}, {check} }} }}\n  \
         - {{ id: web-redirect, kind: service, address: 198.51.100.10, parents: [web01], http: {{ url: 'http://www.lab.test/old', follow_redirects: true, status: [401], {check} }} }}\n  \
         - {{ id: web-slow, kind: service, address: 198.51.100.10, parents: [web01], http: {{ url: 'http://www.lab.test/slow.txt', degraded_response_time: 300ms, interval: 5s, timeout: 4s }} }}\n  \
         - {{ id: cert-soon, kind: service, address: www.lab.test, parents: [web01], tls: {{ port: 8443, tls: {{ ca_file: '{ca}' }}, {check} }} }}\n  \
         - {{ id: cert-expired, kind: service, address: www.lab.test, parents: [web01], tls: {{ port: 9443, tls: {{ ca_file: '{ca}' }}, {check} }} }}\n  \
         - {{ id: smtp, kind: service, address: 198.51.100.10, parents: [web01], tcp: {{ port: 25, expect: '^220 ', {check} }} }}\n  \
         - {{ id: web-proxied, kind: service, address: 198.51.100.10, parents: [web01], http: {{ url: 'https://www.lab.test/', body: Velkommen, tls: {{ ca_file: '{ca}' }}, proxy: {{ url: 'http://198.51.100.30:3128', basic_auth: {{ username: lab, password: 'env:LAB_PROXY_PASSWORD' }} }}, {check} }} }}\n  \
         - {{ id: web-proxied-plain, kind: service, address: 198.51.100.10, parents: [web01], http: {{ url: 'http://www.lab.test/health?via=proxy', headers: {{ X-Api-Key: 'env:LAB_API_KEY' }}, json: {{ pointer: /status, equals: ok }}, proxy: {{ url: 'http://proxy.lab.test:3128', basic_auth: {{ username: lab, password: 'env:LAB_PROXY_PASSWORD' }} }}, {check} }} }}\n  \
         - {{ id: web-proxy-denied, kind: service, address: 198.51.100.10, parents: [web01], http: {{ url: 'https://www.lab.test/', tls: {{ ca_file: '{ca}' }}, proxy: {{ url: 'http://198.51.100.30:3128', basic_auth: {{ username: lab, password: 'env:LAB_PROXY_WRONG' }} }}, {check} }} }}\n  \
         - {{ id: dns-www, kind: service, address: 198.51.100.53, dns: {{ name: www.lab.test, answer: '^198\\.51\\.100\\.10$', {check} }} }}\n  \
         - {{ id: dns-big, kind: service, address: 198.51.100.53, dns: {{ name: big.lab.test, type: TXT, answer: 'record-23-x', {check} }} }}\n  \
         - {{ id: dns-nx, kind: service, address: 198.51.100.53, dns: {{ name: nope.lab.test, rcode: [NXDOMAIN], {check} }} }}\n  \
         - {{ id: dns-broken, kind: service, address: 198.51.100.53, dns: {{ name: x.broken.lab, transport: tcp, {check} }} }}\n"
    );
    // www.lab.test for the TLS checks' address (and server name).
    let _hosts = lab::private_hosts(
        work.path(),
        "198.51.100.10 www.lab.test\n198.51.100.30 proxy.lab.test\n",
    );
    let agent = Agent::start_env(
        &yaml,
        &[
            ("LAB_API_KEY", API_KEY),
            ("LAB_PROXY_PASSWORD", LAB_PROXY_PASSWORD),
            ("LAB_PROXY_WRONG", "not-the-password"),
        ],
    );

    // Everything as it should be, or failing as it must.
    for id in [
        "uplink",
        "web01",
        "web-health",
        "web-https",
        "web-redirect",
        "web-proxied",
        "web-proxied-plain",
        "smtp",
        "dns-www",
        "dns-big",
        "dns-nx",
    ] {
        agent.wait_state(id, "up", DEADLINE);
    }
    let t = wait_reason(&agent, "web-slow", "degraded", "slow_response");
    assert!(
        t["reason"].as_str().unwrap().contains("above 300 ms"),
        "{t:#}"
    );
    let t = wait_reason(&agent, "cert-soon", "degraded", "tls_cert_expiring");
    let reason = t["reason"].as_str().unwrap();
    assert!(
        reason.contains("soon.www.lab.test")
            && (reason.contains("(in 1 day)") || reason.contains("(in 2 days)")),
        "{t:#}"
    );
    let t = wait_reason(&agent, "cert-expired", "down", "tls_cert_expired");
    assert!(
        t["reason"]
            .as_str()
            .unwrap()
            .starts_with("certificate expired.www.lab.test expired on "),
        "{t:#}"
    );
    let t = wait_reason(&agent, "web-proxy-denied", "down", "proxy_failed");
    // tinyproxy answers a CONNECT it refuses with 401, not 407.
    let reason = t["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("proxy 198.51.100.30:3128: answered 40")
            && reason.ends_with(" to CONNECT www.lab.test:443"),
        "{t:#}"
    );
    let t = wait_reason(&agent, "dns-broken", "down", "dns_rcode");
    assert!(t["reason"].as_str().unwrap().contains("SERVFAIL"), "{t:#}");

    // What the API shows of a check, and the metrics.
    let t = agent.target("web-https");
    let last = &t["check"]["last"];
    assert_eq!(t["check"]["probe"], "http", "{t:#}");
    assert_eq!(last["http_status"], 200, "{t:#}");
    assert!(last["phases"]["tls"].as_f64().unwrap() > 0.0, "{t:#}");
    assert!(
        last["certificate"]["subject"] == "good.www.lab.test",
        "{t:#}"
    );
    assert_eq!(
        agent.target("web-redirect")["check"]["last"]["redirects"],
        1
    );
    let m = agent.metrics();
    for phase in ["connect", "tls", "processing", "transfer"] {
        assert!(
            m.lines()
                .any(|l| l.starts_with("utkikk_http_duration_seconds{")
                    && l.contains("target=\"web-https\"")
                    && l.contains(&format!("phase=\"{phase}\""))),
            "no {phase} phase:\n{m}"
        );
    }
    let soon = m
        .lines()
        .find(|l| l.starts_with("utkikk_tls_cert_not_after_seconds{") && l.contains("cert-soon"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
        .expect("cert-soon's not_after");
    let left = soon - chrono::Utc::now().timestamp();
    assert!((86_400..=2 * 86_400 + 60).contains(&left), "{left}");
    assert!(m.contains("utkikk_probe_success{target=\"dns-www\""), "{m}");
    // All 24 records: the truncated UDP answer was asked again over TCP.
    assert!(
        m.lines().any(|l| l.starts_with("utkikk_dns_answer_rrs{")
            && l.contains("target=\"dns-big\"")
            && l.ends_with(" 24")),
        "{m}"
    );

    // Wrong status: /health answers 503.
    nginx.serve(&certs, 503, "Velkommen til Kongsberg");
    let t = wait_reason(&agent, "web-health", "down", "http_status");
    assert!(t["reason"]
        .as_str()
        .unwrap()
        .contains("HTTP status 503, expected 2xx"));
    // The body changed.
    nginx.serve(&certs, 200, "Under vedlikehold");
    agent.wait_state("web-health", "up", DEADLINE);
    let t = wait_reason(&agent, "web-https", "down", "http_body");
    assert!(
        t["reason"].as_str().unwrap().contains("/Velkommen/"),
        "{t:#}"
    );
    nginx.serve(&certs, 200, "Velkommen til Kongsberg");
    agent.wait_state("web-https", "up", DEADLINE);

    // Through the proxy: the certificate is the server's (TLS end to
    // end), and the proxy saw both requests.
    let t = agent.target("web-proxied");
    assert_eq!(
        t["check"]["checks"],
        "GET https://www.lab.test/ via proxy 198.51.100.30:3128"
    );
    assert_eq!(
        t["check"]["last"]["certificate"]["subject"], "good.www.lab.test",
        "{t:#}"
    );
    let log =
        std::fs::read_to_string(work.path().join("tinyproxy/tinyproxy.log")).unwrap_or_default();
    assert!(log.contains("CONNECT www.lab.test:443"), "{log}");
    assert!(
        log.contains("GET http://www.lab.test/health?via=proxy"),
        "{log}"
    );
    // The proxy stops: both checks fail, and say it is the proxy.
    drop(proxy);
    for id in ["web-proxied", "web-proxied-plain"] {
        let t = wait_reason(&agent, id, "down", "proxy_failed");
        let reason = t["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("proxy 198.51.100.30:3128: ")
                || reason.starts_with("proxy proxy.lab.test:3128: "),
            "{t:#}"
        );
        assert!(reason.contains("refused"), "{t:#}");
    }
    assert_eq!(agent.state("web-https"), "up");

    // The banner server stops: refused, down.
    drop(smtp);
    wait_reason(&agent, "smtp", "down", "connect_failed");

    // The DNS server goes silent: no answer in time, down.
    silence(&far, &["198.51.100.53"]);
    wait_reason(&agent, "dns-www", "down", "check_timeout");
    restore(&far, &["198.51.100.53"]);
    agent.wait_state("dns-www", "up", DEADLINE);
    drop(dns);
    // unbound gone: the port is closed (ICMP port unreachable): down.
    wait_until("dns-www down without its server", DEADLINE, || {
        agent.state("dns-www") == "down"
    });

    // The link above is cut: the web checks are unreachable behind it,
    // not outages of their own.
    silence(&far, &["198.51.100.1", "198.51.100.10"]);
    agent.wait_state("uplink", "down", DEADLINE);
    for id in ["web01", "web-health", "web-https", "cert-soon"] {
        let t = agent.wait_state(id, "unreachable", DEADLINE);
        assert_eq!(t["root_cause"], "uplink", "{id}: {t:#}");
    }
    restore(&far, &["198.51.100.1", "198.51.100.10"]);
    agent.wait_state("web-health", "up", DEADLINE);
    let health = lab::ledger_transitions(&agent, "web-health");
    assert!(
        health
            .iter()
            .any(|(to, _, root)| to == "unreachable" && root.as_deref() == Some("uplink")),
        "{health:?}"
    );

    // The header secret is sent (nginx checks it) and never shown.
    let api = agent.get("/api/v1/targets").1;
    for (what, text) in [
        ("metrics", agent.metrics()),
        ("API", api),
        ("log", agent.log()),
    ] {
        assert!(!text.contains(API_KEY), "the API key is in the {what}");
        assert!(
            !text.contains(LAB_PROXY_PASSWORD),
            "the proxy password is in the {what}"
        );
    }
    assert_eq!(reason_code(&agent, "web-health"), "check_passes");
});
