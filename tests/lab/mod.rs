//! The lab: real ICMP through the kernel between private network namespaces.
//!
//! Every lab test re-runs itself under `unshare -rn` (a new user and network
//! namespace, see ../shared/LAB.md), so each scenario has a network of its own
//! with only `lo` in it: nothing it does can reach the machine's own
//! namespace, and scenarios running in parallel cannot disturb each other.
//! Inside, far hosts are further namespaces (`unshare -n sleep`), joined to
//! the monitor by veth pairs. Only documentation ranges are used.
//!
//! Tests wait for conditions (poll until a deadline), never for fixed times.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod pg;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const INSIDE: &str = "UTKIKK_LAB_INSIDE";

/// Run the calling test inside a fresh private namespace. Returns `true`
/// when already inside (run the scenario), `false` in the outer process after
/// the inner run passed. Panics if the namespace cannot be made: a lab test
/// never skips silently.
pub fn enter(test_name: &str) -> bool {
    if std::env::var_os(INSIDE).is_some() {
        sh("ip link set lo up");
        return true;
    }
    let exe = std::env::current_exe().expect("test binary path");
    // -m as well: a scenario may bind-mount its own /etc/hosts.
    let out = Command::new("unshare")
        .args(["-rmn", "--"])
        .arg(exe)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .output()
        .expect("cannot run unshare (util-linux): the lab needs `unshare -rn`");
    assert!(
        out.status.success(),
        "lab scenario {test_name} failed inside its namespace ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// Declare a lab scenario: `lab_test!(name, || { ... });`
#[macro_export]
macro_rules! lab_test {
    ($name:ident, $body:expr) => {
        #[test]
        fn $name() {
            if lab::enter(stringify!($name)) {
                let body: fn() = $body;
                body();
            }
        }
    };
}

/// Replace /etc/hosts inside this scenario's private mount namespace with a
/// file of its own; returns that file (rewrite it in place to change names).
pub fn private_hosts(dir: &Path, content: &str) -> PathBuf {
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, content).expect("write hosts");
    sh(&format!("mount --bind {} /etc/hosts", hosts.display()));
    hosts
}

/// Run a shell command in the current namespace; panic with its output on failure.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .unwrap_or_else(|e| panic!("cannot run sh for {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "command failed: {cmd}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A far host: its own network namespace, kept alive by a sleeping process.
pub struct FarHost {
    child: Child,
    pub pid: u32,
}

impl FarHost {
    pub fn new() -> FarHost {
        let child = Command::new("unshare")
            .args(["-n", "--", "sleep", "3600"])
            .spawn()
            .expect("unshare -n for a far host");
        let pid = child.id();
        // The namespace exists once /proc/PID/ns/net differs from ours.
        let ours = std::fs::read_link("/proc/self/ns/net").expect("own netns");
        wait_until("far host namespace", Duration::from_secs(10), || {
            std::fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|n| n != ours)
        });
        let h = FarHost { child, pid };
        h.sh("ip link set lo up");
        h
    }

    /// Run a shell command inside this host's namespace.
    pub fn sh(&self, cmd: &str) -> String {
        sh(&format!("nsenter -t {} -n -- sh -c '{}'", self.pid, cmd))
    }

    /// Create a veth pair `mon_if` (here) <-> `far_if` (there).
    pub fn link(&self, mon_if: &str, far_if: &str) {
        sh(&format!(
            "ip link add {mon_if} type veth peer name {far_if} netns {}",
            self.pid
        ));
        sh(&format!("ip link set {mon_if} up"));
        self.sh(&format!("ip link set {far_if} up"));
    }
}

impl Drop for FarHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `cond` every 100 ms until it holds; panic after `deadline`.
pub fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        if cond() {
            return;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running `utkikk run` in this namespace, on 127.0.0.1:9474.
pub struct Agent {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    log: PathBuf,
    http: ureq::Agent,
    pub wrapper: Vec<String>,
    pub env: Vec<(String, String)>,
    /// More arguments after `run …` (flags such as --web.max-connections).
    pub args: Vec<String>,
}

pub const BASE: &str = "http://127.0.0.1:9474";

impl Agent {
    /// Write `yaml` to a config file and start the agent on it.
    pub fn start(yaml: &str) -> Agent {
        Self::start_with(yaml, &[])
    }

    /// As `start`, with `wrapper` (e.g. setpriv ...) in front of the binary.
    pub fn start_with(yaml: &str, wrapper: &[&str]) -> Agent {
        Self::start_full(yaml, wrapper, &[])
    }

    /// As `start`, with environment variables (secrets referenced as `env:`).
    pub fn start_env(yaml: &str, env: &[(&str, &str)]) -> Agent {
        Self::start_full(yaml, &[], env)
    }

    /// Prepare an agent (config written, nothing started): set up its data
    /// directory first, then [`Agent::spawn`].
    pub fn prepare(yaml: &str) -> Agent {
        Self::prepare_full(yaml, &[], &[])
    }

    fn start_full(yaml: &str, wrapper: &[&str], env: &[(&str, &str)]) -> Agent {
        let mut a = Self::prepare_full(yaml, wrapper, env);
        a.spawn();
        a
    }

    fn prepare_full(yaml: &str, wrapper: &[&str], env: &[(&str, &str)]) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("utkikk.yaml");
        std::fs::write(&config, yaml).expect("write config");
        let log = dir.path().join("utkikk.log");
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let a = Agent {
            child: None,
            dir,
            config,
            log,
            http,
            wrapper: wrapper.iter().map(|s| s.to_string()).collect(),
            args: Vec::new(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        a
    }

    /// The ledger's directory (`--data-dir`), inside this agent's tempdir.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Start the binary (again) with the same config, data directory and
    /// log file, and wait until it is ready.
    pub fn spawn(&mut self) {
        self.launch();
        wait_until("utkikk to be ready", Duration::from_secs(20), || {
            self.get("/-/ready").0 == 200
        });
    }

    /// Start the binary without waiting for its HTTP API (which a starved
    /// agent may not serve).
    pub fn launch(&mut self) {
        let logfile = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let bin = env!("CARGO_BIN_EXE_utkikk");
        let mut cmd = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.args(["run", "--config"])
            .arg(&self.config)
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--log.level", "debug"])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(logfile);
        cmd.args(&self.args);
        self.child = Some(cmd.spawn().expect("start utkikk"));
    }

    /// SIGKILL: no chance to flush or stop cleanly.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        match self.http.get(format!("{BASE}{path}")).call() {
            Ok(mut r) => (
                r.status().as_u16(),
                r.body_mut().read_to_string().unwrap_or_default(),
            ),
            Err(_) => (0, String::new()),
        }
    }

    /// GET with the answer's headers (names in lower case).
    pub fn get_full(
        &self,
        path: &str,
    ) -> (u16, std::collections::BTreeMap<String, String>, String) {
        match self.http.get(format!("{BASE}{path}")).call() {
            Ok(r) => answer(r),
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    /// GET with request headers, redirects not followed; the status, the
    /// answer's headers (names in lower case) and its body.
    pub fn get_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, std::collections::BTreeMap<String, String>, String) {
        let http: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut req = http.get(format!("{BASE}{path}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        match req.call() {
            Ok(r) => answer(r),
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    pub fn post(&self, path: &str) -> (u16, String) {
        self.post_token(path, None)
    }

    /// POST with no body, with a bearer token when given; the body as text.
    pub fn post_token(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut req = self.http.post(format!("{BASE}{path}"));
        if let Some(t) = token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        match req.send_empty() {
            Ok(mut r) => (
                r.status().as_u16(),
                r.body_mut().read_to_string().unwrap_or_default(),
            ),
            Err(e) => panic!("POST {path}: {e}"),
        }
    }

    /// POST a JSON body or DELETE, with a bearer token when given.
    pub fn write(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        let url = format!("{BASE}{path}");
        let auth = token.map(|t| format!("Bearer {t}"));
        let r = match method {
            "POST" => {
                let mut req = self.http.post(&url).content_type("application/json");
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.send(body)
            }
            "DELETE" => {
                let mut req = self.http.delete(&url);
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.call()
            }
            m => panic!("method {m}"),
        };
        match r {
            Ok(mut r) => (
                r.status().as_u16(),
                serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default())
                    .unwrap_or_default(),
            ),
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    pub fn target(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/api/v1/targets/{id}"));
        assert_eq!(status, 200, "GET target {id}: {body}");
        serde_json::from_str(&body).expect("target JSON")
    }

    pub fn state(&self, id: &str) -> String {
        self.target(id)["state"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Wait until target `id` is in `state`; return its JSON.
    pub fn wait_state(&self, id: &str, state: &str, deadline: Duration) -> Value {
        let start = Instant::now();
        loop {
            let last = self.target(id);
            if last["state"] == state {
                return last;
            }
            assert!(
                start.elapsed() < deadline,
                "timed out after {deadline:?} waiting for {id} to be {state}; last: {last:#}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200);
        body
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn rewrite_config(&self, yaml: &str) {
        std::fs::write(&self.config, yaml).expect("rewrite config");
    }

    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            sh(&format!("kill -{sig} {}", c.id()));
        }
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return st.code();
            }
            if start.elapsed() > Duration::from_secs(15) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("utkikk did not exit within 15 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An answer's status, headers (names in lower case) and body.
fn answer(
    mut r: ureq::http::Response<ureq::Body>,
) -> (u16, std::collections::BTreeMap<String, String>, String) {
    (
        r.status().as_u16(),
        r.headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        r.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// Fast settings for lab scenarios: a cycle a second, two misses to fail.
pub const FAST: &str = r#"
defaults:
  icmp: { interval: 1s, count: 2, spacing: 100ms, timeout: 400ms }
  thresholds: { fail_after: 2, recover_after: 2, degraded_rtt: 200ms }
"#;

/// One far host answering every documentation address the region template
/// (`config/kongsbergregionen.yaml`) uses, routed from here.
pub fn region_far_host() -> FarHost {
    let far = FarHost::new();
    far.link("mon0", "far0");
    far.sh("ip route add local 198.51.100.0/24 dev lo");
    far.sh("ip route add local 203.0.113.0/24 dev lo");
    far.sh("ip -6 route add local 2001:db8:100::/48 dev lo");
    far.sh("ip addr add 198.18.0.2/30 dev far0");
    far.sh("ip -6 addr add 2001:db8:ffff::2/64 dev far0 nodad");
    sh("ip addr add 198.18.0.1/30 dev mon0");
    sh("ip -6 addr add 2001:db8:ffff::1/64 dev mon0 nodad");
    sh("ip route add 198.51.100.0/24 via 198.18.0.2");
    sh("ip route add 203.0.113.0/24 via 198.18.0.2");
    sh("ip -6 route add 2001:db8:100::/48 via 2001:db8:ffff::2");
    far
}

/// One snmpd on the region far host answering SNMPv3 for every address, with
/// the template's user (`UTKIKK_SNMP_*_PASSPHRASE`: lab-auth-passphrase,
/// lab-priv-passphrase).
pub fn region_snmpd(far: &FarHost, dir: &Path) -> Snmpd {
    Snmpd::start(
        far,
        dir,
        "0.0.0.0",
        "createUser utkikk-ro SHA-256 \"lab-auth-passphrase\" AES \"lab-priv-passphrase\"\nrouser utkikk-ro priv\n",
    )
}

/// A far host joined to this namespace by `mon0`/`far0`, with
/// 198.51.100.254/24 here and `far_addrs` there (each `ADDR/PREFIX`).
pub fn far_host_v4(far_addrs: &[&str]) -> FarHost {
    let far = FarHost::new();
    far.link("mon0", "far0");
    sh("ip addr add 198.51.100.254/24 dev mon0");
    for a in far_addrs {
        far.sh(&format!("ip addr add {a} dev far0"));
    }
    far
}

/// A net-snmp `snmpd` in a far host's namespace (LAB.md): its own config
/// file, and a persistent directory kept apart from it, so a restart keeps
/// snmpEngineBoots counting as a real device does.
pub struct Snmpd {
    netns_pid: u32,
    dir: PathBuf,
}

impl Snmpd {
    /// Start snmpd in `host`'s namespace, listening on `listen` (e.g.
    /// `198.51.100.1`), with `extra` config lines (communities, users).
    pub fn start(host: &FarHost, dir: &Path, listen: &str, extra: &str) -> Snmpd {
        std::fs::create_dir_all(dir.join("persist")).expect("snmpd dir");
        let conf = format!(
            "agentAddress udp:{listen}:161\nsysName lab-device\nsysLocation Kongsberg rack 3\n{extra}\n"
        );
        std::fs::write(dir.join("snmpd.conf"), conf).expect("snmpd.conf");
        let s = Snmpd {
            netns_pid: host.pid,
            dir: dir.to_path_buf(),
        };
        s.run();
        s
    }

    fn pidfile(&self) -> PathBuf {
        self.dir.join("snmpd.pid")
    }

    fn run(&self) {
        let _ = std::fs::remove_file(self.pidfile());
        // -f in the background: we own the process; -C: only our config.
        sh(&format!(
            "MIBS= nsenter -t {pid} -n -- snmpd -f -Lf {dir}/snmpd.log -C -c {dir}/snmpd.conf --persistentDir={dir}/persist -p {dir}/snmpd.pid >/dev/null 2>&1 &",
            pid = self.netns_pid,
            dir = self.dir.display()
        ));
        let pidfile = self.pidfile();
        let log = self.dir.join("snmpd.log");
        wait_until("snmpd to start", Duration::from_secs(20), || {
            pidfile.exists()
                && std::fs::read_to_string(&log).is_ok_and(|l| l.contains("NET-SNMP version"))
        });
    }

    pub fn stop(&self) {
        let pid = std::fs::read_to_string(self.pidfile()).unwrap_or_default();
        let pid = pid.trim().to_string();
        if pid.is_empty() {
            return;
        }
        let _ = Command::new("kill").arg(&pid).status();
        wait_until("snmpd to stop", Duration::from_secs(20), || {
            !Path::new(&format!("/proc/{pid}")).exists()
        });
        let _ = std::fs::remove_file(self.pidfile());
    }

    /// Stop and start again with the same persistent state.
    pub fn restart(&self) {
        self.stop();
        let _ = std::fs::remove_file(self.dir.join("snmpd.log"));
        self.run();
    }
}

impl Drop for Snmpd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// snmpsim (`snmpsimd`) serving `.snmprec` files from `data` in `host`'s
/// namespace on `listen`:161; each file answers to the community named
/// like the file. snmpsimd refuses to run as root without dropping
/// privileges, which a user namespace cannot do: it runs in a nested user
/// namespace as uid 1000, allowed to bind port 161 by the far namespace's
/// `ip_unprivileged_port_start`.
pub struct Snmpsim {
    child: Child,
}

impl Snmpsim {
    pub fn start(host: &FarHost, dir: &Path, listen: &str) -> Snmpsim {
        let log = dir.join("snmpsim.log");
        host.sh("sysctl -qw net.ipv4.ip_unprivileged_port_start=0");
        let child = Command::new("nsenter")
            .args(["-t", &host.pid.to_string(), "-n", "--"])
            .args(["unshare", "-U", "--map-user=1000", "--map-group=1000", "--"])
            .arg("snmpsimd")
            .arg(format!("--data-dir={}", dir.join("data").display()))
            .arg(format!("--cache-dir={}", dir.join("cache").display()))
            .arg(format!("--agent-udpv4-endpoint={listen}:161"))
            .arg(format!("--logging-method=file:{}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("snmpsimd (Debian package snmpsim) must be installed");
        wait_until("snmpsimd to listen", Duration::from_secs(60), || {
            std::fs::read_to_string(&log)
                .is_ok_and(|l| l.contains("Listening at UDP/IPv4 endpoint"))
        });
        Snmpsim { child }
    }
}

impl Drop for Snmpsim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A device's MIB for snmpsim, kept in OID order as `.snmprec` needs.
#[derive(Default)]
pub struct SnmpRec {
    rows: std::collections::BTreeMap<Vec<u64>, (u32, String)>,
}

impl SnmpRec {
    pub fn set(&mut self, oid: &str, ty: u32, value: impl ToString) -> &mut Self {
        let arcs = oid
            .split('.')
            .map(|a| a.parse().expect("numeric OID"))
            .collect();
        self.rows.insert(arcs, (ty, value.to_string()));
        self
    }

    /// A switch: system group and `ports` interfaces named by `name(i)`,
    /// aliased by `alias(i)`; odd ports up, even ports down (admin up).
    pub fn switch(
        sys_name: &str,
        ports: u64,
        name: impl Fn(u64) -> String,
        alias: impl Fn(u64) -> String,
    ) -> SnmpRec {
        let mut r = SnmpRec::default();
        r.set(
            "1.3.6.1.2.1.1.1.0",
            4,
            format!("{sys_name} simulated switch"),
        )
        .set("1.3.6.1.2.1.1.2.0", 6, "1.3.6.1.4.1.2636.1.1.1.2.29")
        .set("1.3.6.1.2.1.1.3.0", 67, 123_456)
        .set("1.3.6.1.2.1.1.5.0", 4, sys_name)
        .set("1.3.6.1.2.1.1.6.0", 4, "Kongsberg datasenter")
        .set("1.3.6.1.2.1.2.1.0", 2, ports)
        .set("1.3.6.1.2.1.31.1.5.0", 67, 100);
        for i in 1..=ports {
            let oper = if i % 2 == 1 { 1 } else { 2 };
            r.set(&format!("1.3.6.1.2.1.2.2.1.1.{i}"), 2, i)
                .set(&format!("1.3.6.1.2.1.2.2.1.2.{i}"), 4, name(i))
                .set(&format!("1.3.6.1.2.1.2.2.1.3.{i}"), 2, 6)
                .set(&format!("1.3.6.1.2.1.2.2.1.7.{i}"), 2, 1)
                .set(&format!("1.3.6.1.2.1.2.2.1.8.{i}"), 2, oper)
                .set(&format!("1.3.6.1.2.1.2.2.1.13.{i}"), 65, i)
                .set(&format!("1.3.6.1.2.1.2.2.1.14.{i}"), 65, i * 2)
                .set(&format!("1.3.6.1.2.1.2.2.1.19.{i}"), 65, i * 3)
                .set(&format!("1.3.6.1.2.1.2.2.1.20.{i}"), 65, i * 4)
                .set(&format!("1.3.6.1.2.1.31.1.1.1.1.{i}"), 4, name(i))
                .set(&format!("1.3.6.1.2.1.31.1.1.1.6.{i}"), 70, 1_000_000 * i)
                .set(&format!("1.3.6.1.2.1.31.1.1.1.10.{i}"), 70, 2_000_000 * i)
                .set(&format!("1.3.6.1.2.1.31.1.1.1.15.{i}"), 66, 1000)
                .set(&format!("1.3.6.1.2.1.31.1.1.1.18.{i}"), 4, alias(i));
        }
        r
    }

    /// Write as `data/COMMUNITY.snmprec` under `dir`.
    pub fn write(&self, dir: &Path, community: &str) {
        self.write_lines(dir, community, self.lines());
    }

    pub fn lines(&self) -> Vec<String> {
        self.rows
            .iter()
            .map(|(oid, (ty, v))| {
                let oid: Vec<String> = oid.iter().map(u64::to_string).collect();
                format!("{}|{ty}|{v}", oid.join("."))
            })
            .collect()
    }

    pub fn write_lines(&self, dir: &Path, community: &str, lines: Vec<String>) {
        std::fs::create_dir_all(dir.join("data")).expect("data dir");
        std::fs::write(
            dir.join("data").join(format!("{community}.snmprec")),
            lines.join("\n") + "\n",
        )
        .expect("write snmprec");
    }
}

/// Silence addresses of a far host: their replies (ICMP and SNMP) are
/// dropped by a policy route to a blackhole, as if the devices behind them
/// were gone. The far host's other addresses answer on.
pub fn silence(far: &FarHost, addrs: &[&str]) {
    far.sh("ip route replace blackhole 0.0.0.0/0 table 100");
    for a in addrs {
        far.sh(&format!("ip rule add from {a} lookup 100 pref 10"));
    }
}

pub fn restore(far: &FarHost, addrs: &[&str]) {
    for a in addrs {
        far.sh(&format!("ip rule del from {a} lookup 100 pref 10"));
    }
}

/// One look at every target through `/api/v1/targets`.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub id: String,
    pub state: String,
    pub root_cause: Option<String>,
    pub reason: String,
    /// The last echo cycle: (received, sent).
    pub echoes: Option<(u64, u64)>,
}

/// Watches the live API from a thread of its own, as Grafana and alert
/// rules do, every 50 ms, keeping every look.
pub struct Watcher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Seen>>>,
}

impl Watcher {
    pub fn start() -> Watcher {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let http: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(5)))
                .build()
                .into();
            let mut seen = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                let body = http
                    .get(format!("{BASE}/api/v1/targets"))
                    .call()
                    .ok()
                    .and_then(|mut r| r.body_mut().read_to_string().ok())
                    .unwrap_or_default();
                let at = Instant::now();
                let v: Value = serde_json::from_str(&body).unwrap_or_default();
                for t in v["targets"].as_array().into_iter().flatten() {
                    let p = &t["last_probe"];
                    seen.push(Seen {
                        at,
                        id: t["id"].as_str().unwrap_or_default().to_string(),
                        state: t["state"].as_str().unwrap_or_default().to_string(),
                        root_cause: t["root_cause"].as_str().map(String::from),
                        reason: t["reason"].as_str().unwrap_or_default().to_string(),
                        echoes: p["sent"]
                            .as_u64()
                            .map(|s| (p["received"].as_u64().unwrap_or(0), s)),
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            seen
        });
        Watcher {
            stop,
            thread: Some(thread),
        }
    }

    /// Stop watching; every look taken.
    pub fn stop(mut self) -> Vec<Seen> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Check what the live API showed while targets behind `root` failed:
/// each of `behind` shown failing only as `unreachable` with `root` as its
/// root cause (never `down`, never another root cause).
pub fn assert_root_cause_shown(seen: &[Seen], root: &str, behind: &[&str]) {
    for s in seen.iter().filter(|s| behind.contains(&s.id.as_str())) {
        match s.state.as_str() {
            "down" => panic!(
                "{} shown down (reason {:?}); its failure is {root}'s",
                s.id, s.reason
            ),
            "unreachable" => assert_eq!(
                s.root_cause.as_deref(),
                Some(root),
                "{} shown unreachable behind {:?}, not {root}",
                s.id,
                s.root_cause
            ),
            _ => {}
        }
    }
}

/// A target's transitions in the agent's ledger: (to, at_ms, root_cause).
pub fn ledger_transitions(agent: &Agent, target: &str) -> Vec<(String, i64, Option<String>)> {
    let db = rusqlite::Connection::open_with_flags(
        agent.data_dir().join("ledger.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the ledger");
    let mut q = db
        .prepare(
            "SELECT to_state, at_ms, root_cause FROM transitions WHERE target = ?1 ORDER BY id",
        )
        .expect("query");
    q.query_map([target], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// Milliseconds since the epoch of an RFC 3339 value.
pub fn epoch_ms(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default())
        .map(|t| t.timestamp_millis())
        .unwrap_or_else(|_| panic!("not RFC 3339: {v}"))
}

/// Check an answer against the OpenAPI document the agent serves: `body`
/// must be valid under the JSON schema given for `method path` answering
/// `status` (formats checked too). Panics with every mismatch.
pub fn conforms(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let what = format!("{} {path} → {status}", method.to_uppercase());
    let schema = &doc["paths"][path][method]["responses"][status.to_string()]["content"]
        ["application/json"]["schema"];
    assert!(
        schema.is_object() || schema.is_boolean(),
        "{what}: the document gives no JSON schema"
    );
    // The schema, with the document's components beside it so that its
    // references (#/components/schemas/…) resolve.
    let mut root = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"].clone(),
    });
    match schema {
        Value::Object(keys) => {
            for (k, v) in keys {
                root[k] = v.clone();
            }
        }
        _ => return, // `true`: anything goes
    }
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("{what}: not a valid schema: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: the answer does not match the document:\n  {}\n{body:#}",
        errors.join("\n  ")
    );
}

/// The header secret the lab's nginx requires on `/health` (sent by
/// checks as `X-Api-Key`).
pub const LAB_API_KEY: &str = "lab-secret-4711";

/// A CA, and three certificates it signed for `names` (DNS names or IP
/// addresses): `good` (a year left), `soon` (expires in two days) and
/// `expired` (yesterday); each with the common name `KIND.FIRST-NAME`.
pub struct Certs {
    dir: PathBuf,
}

impl Certs {
    pub fn make(dir: &Path, names: &[&str]) -> Certs {
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
        let sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        for (kind, from, until) in [("good", -30, 365), ("soon", -30, 2), ("expired", -60, -1)] {
            let key = KeyPair::generate().expect("key");
            let mut p = CertificateParams::new(sans.clone()).expect("params");
            p.distinguished_name
                .push(DnType::CommonName, format!("{kind}.{}", names[0]));
            p.not_before = now + time::Duration::days(from);
            p.not_after = now + time::Duration::days(until);
            let cert = p.signed_by(&key, &issuer).expect("signed");
            std::fs::write(dir.join(format!("{kind}.pem")), cert.pem()).expect("cert");
            std::fs::write(dir.join(format!("{kind}.key")), key.serialize_pem()).expect("key");
        }
        Certs {
            dir: dir.to_path_buf(),
        }
    }

    /// A file of the set: `ca.pem`, `good.pem`, `soon.key`…
    pub fn path(&self, f: &str) -> String {
        self.dir.join(f).display().to_string()
    }
}

/// nginx in a far namespace, one process (no master: a user namespace
/// cannot switch users), restarted to change what it serves. On
/// `listen` (an address, or 0.0.0.0 for every local one): port 80
/// (`/health` JSON with the status asked for, behind `X-Api-Key`;
/// `/slow.txt` at 2 KB/s; `/old` redirecting to `/health`; `/` the body
/// asked for), 443 and 636 with the good certificate, 8443 with the one
/// that expires soon, 9443 with the expired one.
pub struct Nginx {
    far_pid: u32,
    dir: PathBuf,
    listen: String,
    child: Option<Child>,
}

impl Nginx {
    pub fn start(
        far: &FarHost,
        dir: &Path,
        listen: &str,
        certs: &Certs,
        status: u16,
        body: &str,
    ) -> Nginx {
        std::fs::create_dir_all(dir).expect("nginx dir");
        let mut n = Nginx {
            far_pid: far.pid,
            dir: dir.to_path_buf(),
            listen: listen.to_string(),
            child: None,
        };
        n.serve(certs, status, body);
        n
    }

    /// (Re)start serving `/health` with `status` and `/` with `body`.
    pub fn serve(&mut self, certs: &Certs, status: u16, body: &str) {
        self.stop();
        let d = self.dir.display();
        let at = &self.listen;
        std::fs::write(self.dir.join("slow.txt"), "x".repeat(6000)).expect("slow.txt");
        let tls = |port: u16, name: &str| {
            format!(
                "server {{ listen {at}:{port} ssl; ssl_certificate {}; ssl_certificate_key {};\n\
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
             server {{ listen {at}:80; root {d};\n\
               location = /health {{ if ($http_x_api_key != \"{LAB_API_KEY}\") {{ return 401; }}\n\
                 default_type application/json; return {status} '{{\"status\":\"ok\"}}'; }}\n\
               location = /slow.txt {{ limit_rate 2k; }}\n\
               location = /old {{ return 301 /health; }}\n\
               location / {{ return 200 \"{body}\\n\"; }} }}\n\
             {}{}{}{} }}\n",
            tls(443, "good"),
            tls(636, "good"),
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

/// A process in a far namespace, killed when dropped.
pub struct FarProcess(Child);

impl FarProcess {
    pub fn start(far: &FarHost, args: &[&str]) -> FarProcess {
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

/// unbound (Debian package unbound) on `listen`:53 in a far namespace:
/// `lab.test` served locally (`www.lab.test` is 198.51.100.10,
/// `big.lab.test` TXT records too many for a UDP answer),
/// `broken.lab` forwarded to an address that does not exist (SERVFAIL).
pub fn unbound(far: &FarHost, dir: &Path, listen: &str) -> FarProcess {
    std::fs::create_dir_all(dir).expect("unbound dir");
    let d = dir.display();
    // big.lab.test: 24 TXT records of 100 characters, more than a UDP
    // answer holds (1,232 bytes): the answer comes truncated and is
    // asked again over TCP.
    let big: String = (0..24)
        .map(|i| {
            format!(
                "local-data: 'big.lab.test. 60 IN TXT \"record-{i:02}-{}\"'\n  ",
                "x".repeat(90)
            )
        })
        .collect();
    let conf = format!(
        "server:\n  interface: {listen}\n  port: 53\n  username: \"\"\n  chroot: \"\"\n  \
         directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  use-syslog: no\n  logfile: \"{d}/unbound.log\"\n  \
         do-daemonize: no\n  access-control: 0.0.0.0/0 allow\n  module-config: \"iterator\"\n  \
         local-zone: \"lab.test.\" static\n  local-data: \"www.lab.test. 60 IN A 198.51.100.10\"\n  \
         {big}\
         local-zone: \"kongsbergregionen.no.\" static\n  \
         local-data: \"www.kongsbergregionen.no. 60 IN A 198.51.100.80\"\n  \
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

/// A TCP banner server on `listen`:25 in a far namespace (an SMTP
/// greeting; `0.0.0.0` for every local address).
pub fn banner(far: &FarHost, listen: &str) -> FarProcess {
    let script = format!(
        "import socket\n\
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
        s.bind(('{listen}', 25)); s.listen(64)\n\
        while True:\n    c, _ = s.accept(); c.sendall(b'220 mail.lab.test ESMTP\\r\\n'); c.close()\n"
    );
    let p = FarProcess::start(far, &["python3", "-c", &script]);
    let wanted = format!("{listen}:25");
    wait_until("banner server to listen", Duration::from_secs(20), || {
        far.sh(&format!("ss -Htln | grep -F {wanted} | wc -l"))
            .trim()
            != "0"
    });
    p
}

/// The user and password of [`tinyproxy`]'s basic authentication.
pub const LAB_PROXY_USER: &str = "lab";
pub const LAB_PROXY_PASSWORD: &str = "proxy-passord-9f2c";

/// tinyproxy (Debian package tinyproxy) on `listen`:3128 in a far
/// namespace: basic authentication ([`LAB_PROXY_USER`],
/// [`LAB_PROXY_PASSWORD`]), CONNECT to ports 443 and 8443 only.
pub fn tinyproxy(far: &FarHost, dir: &Path, listen: &str) -> FarProcess {
    std::fs::create_dir_all(dir).expect("tinyproxy dir");
    let d = dir.display();
    let conf = format!(
        "Port 3128\nListen {listen}\nTimeout 30\nMaxClients 64\n\
         LogFile \"{d}/tinyproxy.log\"\nPidFile \"{d}/tinyproxy.pid\"\nLogLevel Info\n\
         BasicAuth {LAB_PROXY_USER} {LAB_PROXY_PASSWORD}\nConnectPort 443\nConnectPort 8443\n"
    );
    let path = dir.join("tinyproxy.conf");
    std::fs::write(&path, conf).expect("tinyproxy.conf");
    let p = FarProcess::start(far, &["tinyproxy", "-d", "-c", &path.display().to_string()]);
    let wanted = format!("{listen}:3128");
    wait_until("tinyproxy to listen", Duration::from_secs(20), || {
        far.sh(&format!("ss -Htln | grep -F {wanted} | wc -l"))
            .trim()
            != "0"
    });
    p
}

/// The region template's service checks' servers on the region far host
/// (`region_far_host`): nginx on every address (HTTPS on 443, LDAPS's
/// certificate on 636), unbound on 198.51.100.53, an SMTP banner on every
/// address; certificates from a CA of the lab's own.
pub struct RegionServices {
    pub certs: Certs,
    _nginx: Nginx,
    _dns: FarProcess,
    _smtp: FarProcess,
}

impl RegionServices {
    pub fn start(far: &FarHost, dir: &Path) -> RegionServices {
        let certs = Certs::make(
            dir,
            &[
                "elements.kongsbergregionen.no",
                "dc1.ad.kongsbergregionen.no",
            ],
        );
        RegionServices {
            _nginx: Nginx::start(far, &dir.join("nginx"), "0.0.0.0", &certs, 200, "Elements"),
            _dns: unbound(far, &dir.join("unbound"), "198.51.100.53"),
            _smtp: banner(far, "0.0.0.0"),
            certs,
        }
    }

    /// The template's checks trusting the lab's CA (the template trusts
    /// the system's), every 2 s (the template: 30 s, LDAPS 5 min).
    pub fn for_lab(&self, yaml: &str) -> String {
        let ca = self.certs.path("ca.pem");
        let fast = "interval: 2s, timeout: 1s";
        let out = yaml
            .replace(
                "status: [2xx], degraded_response_time: 2s }",
                &format!("status: [2xx], degraded_response_time: 2s, tls: {{ ca_file: '{ca}' }}, {fast} }}"),
            )
            .replace(
                "tls: { server_name: dc1.ad.kongsbergregionen.no }, cert_expiry_warning: 21d, interval: 5m }",
                &format!("tls: {{ server_name: dc1.ad.kongsbergregionen.no, ca_file: '{ca}' }}, cert_expiry_warning: 21d, {fast} }}"),
            )
            .replace("expect: \"^220 \" }", &format!("expect: \"^220 \", {fast} }}"))
            .replace("type: A }", &format!("type: A, {fast} }}"));
        assert_eq!(
            out.matches(fast).count(),
            4,
            "the template's checks changed"
        );
        out
    }
}
