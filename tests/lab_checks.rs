//! Lab scenarios for the service checks (issue 18): real servers in a far
//! namespace — nginx (HTTP and HTTPS with certificates made here: a good
//! one, one that expires in two days, an expired one), unbound with a test
//! zone, a TCP banner server — and real faults: wrong status, body
//! changed, slow answers, certificates near or past expiry, DNS SERVFAIL
//! and NXDOMAIN, a server gone silent, and the link above cut.

mod lab;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lab::{far_host_v4, restore, silence, wait_until, Agent, FarHost, FAST};

const DEADLINE: Duration = Duration::from_secs(60);
/// The header secret: sent by the check, required by nginx, never shown.
const API_KEY: &str = "lab-secret-4711";

/// A CA, and certificates it signed for `www.lab.test`.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn make(dir: &Path) -> Certs {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let now = time::OffsetDateTime::now_utc();
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Utkikk Lab CA");
        ca.not_before = now - time::Duration::days(30);
        ca.not_after = now + time::Duration::days(3650);
        let ca_cert = ca.self_signed(&ca_key).expect("CA cert");
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("ca.pem");
        let issuer = Issuer::new(ca, ca_key);
        for (name, from, until) in [("good", -30, 365), ("soon", -30, 2), ("expired", -60, -1)] {
            let key = KeyPair::generate().expect("key");
            let mut p = CertificateParams::new(vec!["www.lab.test".to_string()]).expect("params");
            p.distinguished_name
                .push(DnType::CommonName, format!("{name}.www.lab.test"));
            p.not_before = now + time::Duration::days(from);
            p.not_after = now + time::Duration::days(until);
            let cert = p.signed_by(&key, &issuer).expect("signed");
            std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).expect("cert");
            std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).expect("key");
        }
        Certs {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, f: &str) -> String {
        self.dir.join(f).display().to_string()
    }
}

/// nginx in the far namespace, one process (no master: a user namespace
/// cannot switch users), restarted to change what it serves.
struct Nginx {
    far_pid: u32,
    dir: PathBuf,
    child: Option<Child>,
}

impl Nginx {
    fn start(far: &FarHost, dir: &Path, certs: &Certs, status: u16, body: &str) -> Nginx {
        let mut n = Nginx {
            far_pid: far.pid,
            dir: dir.to_path_buf(),
            child: None,
        };
        n.serve(certs, status, body);
        n
    }

    /// (Re)start serving `/health` with `status` and `/` with `body`.
    fn serve(&mut self, certs: &Certs, status: u16, body: &str) {
        self.stop();
        let d = self.dir.display();
        std::fs::write(self.dir.join("slow.txt"), "x".repeat(6000)).expect("slow.txt");
        let tls = |port: u16, name: &str| {
            format!(
                "server {{ listen 198.51.100.10:{port} ssl; ssl_certificate {}; ssl_certificate_key {};\n\
                 location / {{ return 200 \"{body}\\n\"; }} }}\n",
                certs.path(&format!("{name}.pem")),
                certs.path(&format!("{name}.key"))
            )
        };
        let conf = format!(
            "user root root; daemon off; master_process off; worker_processes 1;\n\
             pid {d}/nginx.pid; error_log {d}/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{ access_log off; default_type text/plain;\n\
             client_body_temp_path {d}/t1; proxy_temp_path {d}/t2; fastcgi_temp_path {d}/t3;\n\
             uwsgi_temp_path {d}/t4; scgi_temp_path {d}/t5;\n\
             server {{ listen 198.51.100.10:80; root {d};\n\
               location = /health {{ if ($http_x_api_key != \"{API_KEY}\") {{ return 401; }}\n\
                 default_type application/json; return {status} '{{\"status\":\"ok\"}}'; }}\n\
               location = /slow.txt {{ limit_rate 2k; }}\n\
               location = /old {{ return 301 /health; }}\n\
               location / {{ return 200 \"{body}\\n\"; }} }}\n\
             {}{}{} }}\n",
            tls(443, "good"),
            tls(8443, "soon"),
            tls(9443, "expired"),
        );
        std::fs::write(self.dir.join("nginx.conf"), conf).expect("nginx.conf");
        let child = Command::new("nsenter")
            .args(["-t", &self.far_pid.to_string(), "-n", "--"])
            .arg("nginx")
            .arg("-c")
            .arg(self.dir.join("nginx.conf"))
            .arg("-p")
            .arg(&self.dir)
            .arg("-e")
            .arg(self.dir.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (Debian package nginx) must be installed");
        self.child = Some(child);
        let pidfile = self.dir.join("nginx.pid");
        let log = self.dir.join("error.log");
        wait_until("nginx to listen", Duration::from_secs(20), || {
            pidfile.exists() || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("emerg"))
        });
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(!log.contains("emerg"), "nginx failed: {log}");
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(self.dir.join("nginx.pid"));
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A process in the far namespace, killed when dropped.
struct FarProcess(Child);

impl FarProcess {
    fn start(far: &FarHost, args: &[&str]) -> FarProcess {
        let child = Command::new("nsenter")
            .args(["-t", &far.pid.to_string(), "-n", "--"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?}: {e}"));
        FarProcess(child)
    }
}

impl Drop for FarProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// unbound on 198.51.100.53: `lab.test` served locally, `broken.lab`
/// forwarded to an address that does not exist (SERVFAIL).
fn unbound(far: &FarHost, dir: &Path) -> FarProcess {
    let d = dir.display();
    let conf = format!(
        "server:\n  interface: 198.51.100.53\n  port: 53\n  username: \"\"\n  chroot: \"\"\n  \
         directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  use-syslog: no\n  logfile: \"{d}/unbound.log\"\n  \
         do-daemonize: no\n  access-control: 0.0.0.0/0 allow\n  module-config: \"iterator\"\n  \
         local-zone: \"lab.test.\" static\n  local-data: \"www.lab.test. 60 IN A 198.51.100.10\"\n  \
         domain-insecure: \"broken.lab.\"\n\
         forward-zone:\n  name: \"broken.lab.\"\n  forward-addr: 198.51.100.99\n"
    );
    std::fs::write(dir.join("unbound.conf"), conf).expect("unbound.conf");
    let p = FarProcess::start(
        far,
        &[
            "unbound",
            "-d",
            "-c",
            &dir.join("unbound.conf").display().to_string(),
        ],
    );
    let log = dir.join("unbound.log");
    wait_until("unbound to start", Duration::from_secs(20), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("start of service"))
    });
    p
}

/// A TCP banner server on 198.51.100.10:25 (an SMTP greeting).
fn banner(far: &FarHost) -> FarProcess {
    let script = "import socket\n\
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
        s.bind(('198.51.100.10', 25)); s.listen(64)\n\
        while True:\n    c, _ = s.accept(); c.sendall(b'220 mail.lab.test ESMTP\\r\\n'); c.close()\n";
    let p = FarProcess::start(far, &["python3", "-c", script]);
    wait_until("banner server to listen", Duration::from_secs(20), || {
        far.sh("ss -Htln | grep -F 198.51.100.10:25 | wc -l").trim() != "0"
    });
    p
}

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
    let far = far_host_v4(&["198.51.100.1/24", "198.51.100.10/24", "198.51.100.53/24"]);
    let work = tempfile::tempdir().expect("tempdir");
    let certs = Certs::make(work.path());
    let ngx_dir = work.path().join("nginx");
    let dns_dir = work.path().join("unbound");
    std::fs::create_dir_all(&ngx_dir).unwrap();
    std::fs::create_dir_all(&dns_dir).unwrap();
    let mut nginx = Nginx::start(&far, &ngx_dir, &certs, 200, "Velkommen til Kongsberg");
    let dns = unbound(&far, &dns_dir);
    let smtp = banner(&far);
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
         - {{ id: dns-www, kind: service, address: 198.51.100.53, dns: {{ name: www.lab.test, answer: '^198\\.51\\.100\\.10$', {check} }} }}\n  \
         - {{ id: dns-nx, kind: service, address: 198.51.100.53, dns: {{ name: nope.lab.test, rcode: [NXDOMAIN], {check} }} }}\n  \
         - {{ id: dns-broken, kind: service, address: 198.51.100.53, dns: {{ name: x.broken.lab, transport: tcp, {check} }} }}\n"
    );
    // www.lab.test for the TLS checks' address (and server name).
    let _hosts = lab::private_hosts(work.path(), "198.51.100.10 www.lab.test\n");
    let agent = Agent::start_env(&yaml, &[("LAB_API_KEY", API_KEY)]);

    // Everything as it should be, or failing as it must.
    for id in [
        "uplink",
        "web01",
        "web-health",
        "web-https",
        "web-redirect",
        "smtp",
        "dns-www",
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
    }
    assert_eq!(reason_code(&agent, "web-health"), "check_passes");
});
