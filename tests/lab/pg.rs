//! A real PostgreSQL server inside the scenario's namespace.
//!
//! The server refuses to run as root, and inside the lab's user namespace
//! we are root. So it runs in a nested user namespace where we are an
//! ordinary user (`unshare -U --map-user=1000`): the same network
//! namespace (it listens on the scenario's own 127.0.0.1), the same files
//! (owned by whoever runs the tests). A cluster is made per scenario in a
//! temporary directory, with `trust` authentication on loopback and, when
//! asked, TLS with a certificate for 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{sh, wait_until, Certs};

/// The newest installed PostgreSQL's programs.
fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("postgres").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().expect(
        "PostgreSQL is not installed (/usr/lib/postgresql/*/bin/postgres): scripts/test installs it (apt-get install postgresql)",
    )
}

/// As an ordinary user, in this network namespace.
fn as_user(program: &Path) -> Command {
    let mut c = Command::new("unshare");
    c.args(["-U", "--map-user=1000", "--map-group=1000", "--"])
        .arg(program);
    c
}

pub struct Postgres {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
    /// Listened on besides 127.0.0.1 (agents in other namespaces).
    also: Option<String>,
}

impl Postgres {
    /// initdb and start on 127.0.0.1:`port`; with `tls` (made for
    /// 127.0.0.1), TLS only, with its `good` certificate.
    pub fn start(port: u16, tls: Option<&Certs>) -> Postgres {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let out = as_user(&bin_dir().join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "utkikk", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(t) = tls {
            std::fs::copy(t.path("good.pem"), data.join("server.crt")).expect("copy cert");
            std::fs::copy(t.path("good.key"), data.join("server.key")).expect("copy key");
            sh(&format!("chmod 600 {}", data.join("server.key").display()));
            let mut conf =
                std::fs::read_to_string(data.join("postgresql.conf")).unwrap_or_default();
            conf.push_str(
                "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
            );
            std::fs::write(data.join("postgresql.conf"), conf).expect("write postgresql.conf");
            // Only TLS connections over TCP.
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            )
            .expect("write pg_hba.conf");
        }
        let mut pg = Postgres {
            dir,
            child: None,
            port,
            also: None,
        };
        pg.resume();
        pg
    }

    /// As [`Postgres::start`] without TLS, listening on `addr` too (an
    /// address of this namespace that agents in others reach it by).
    pub fn start_also_on(port: u16, addr: &str) -> Postgres {
        let mut pg = Postgres::start(port, None);
        pg.halt();
        let hba = pg.dir.path().join("data").join("pg_hba.conf");
        let mut text = std::fs::read_to_string(&hba).unwrap_or_default();
        text.push_str("host all all 0.0.0.0/0 trust\n");
        std::fs::write(&hba, text).expect("write pg_hba.conf");
        pg.also = Some(addr.to_string());
        pg.resume();
        pg
    }

    /// Start the server (again) on the same cluster; wait until it answers.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("server log");
        let child = as_user(&bin_dir().join("postgres"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args([
                "-c",
                &match &self.also {
                    Some(a) => format!("listen_addresses=127.0.0.1,{a}"),
                    None => "listen_addresses=127.0.0.1".into(),
                },
                "-c",
                &format!("port={}", self.port),
                "-c",
            ])
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.path().display()
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        let ready = bin_dir().join("pg_isready");
        let sock = self.dir.path().to_path_buf();
        let port = self.port;
        wait_until(
            "PostgreSQL accepting connections",
            Duration::from_secs(60),
            || {
                Command::new(&ready)
                    .arg("-q")
                    .arg("-h")
                    .arg(&sock)
                    .arg("-p")
                    .arg(port.to_string())
                    .status()
                    .is_ok_and(|s| s.success())
            },
        );
    }

    /// Stop the server at once (`immediate`: as if it crashed; clients'
    /// connections break mid-transaction).
    pub fn halt(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-QUIT", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// A connection string for `utkikk` (no password: trust).
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=utkikk dbname=postgres sslmode=disable",
            self.port
        )
    }

    /// A client for the test's own queries (over the Unix socket).
    pub fn client(&self) -> postgres::Client {
        postgres::Config::new()
            .host_path(self.dir.path())
            .port(self.port)
            .user("utkikk")
            .dbname("postgres")
            .connect(postgres::NoTls)
            .expect("connect to the lab's PostgreSQL")
    }

    /// One number from a query.
    pub fn count(&self, sql: &str) -> i64 {
        self.client()
            .query_one(sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.halt();
    }
}
