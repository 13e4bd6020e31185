//! `utkikk report` against a ledger written here: the files, their form,
//! and clear errors (with a nonzero exit) for what cannot be reported.

use std::process::Command;

use chrono::TimeZone;
use chrono_tz::Europe::Oslo;
use utkikk::health::{State, Transition};
use utkikk::ledger::{Record, Store};

const CONFIG: &str = "
agent: { id: t, api_token: env:UTKIKK_TEST_TOKEN_NEVER_SET }
reports: { organisation: Testregionen IKT }
members:
  - { id: a, name: Aby kommune, kommunenummer: [{ number: '3301', from: 2020-01-01 }] }
targets:
  - { id: srv, kind: server, address: 198.51.100.3, member: a }
services:
  - { id: files, name: Filer, serves: [a], targets: [srv], sla: [{ valid_from: 2026-01-01, objective: 99.5 }] }
";

fn ms(m: u32, d: u32, h: u32, min: u32) -> i64 {
    Oslo.with_ymd_and_hms(2026, m, d, h, min, 0)
        .earliest()
        .map(|t| t.timestamp_millis())
        .unwrap()
}

fn tr(at: i64, to: State) -> Record {
    Record::Transition(Transition {
        target: "srv".into(),
        from: State::Unmonitored,
        to,
        at: chrono::DateTime::from_timestamp_millis(at).unwrap(),
        reason: Some(utkikk::model::Reason::Icmp(
            utkikk::model::FailureReason::Timeout,
        )),
        root_cause: None,
    })
}

/// A config and a ledger for October 2026: the server down for an hour.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("utkikk.yaml"), CONFIG).unwrap();
    let mut store = Store::open(&dir.path().join("data").join("ledger.db")).unwrap();
    let run = store.begin_run("t", ms(10, 1, 0, 0)).unwrap();
    let records = [
        tr(ms(10, 1, 0, 0), State::Up),
        tr(ms(10, 14, 9, 0), State::Down),
        tr(ms(10, 14, 10, 0), State::Up),
    ];
    store.write(run, &records, ms(11, 1, 0, 5)).unwrap();
    store.end_run(run, ms(11, 1, 0, 5)).unwrap();
    dir
}

fn report(dir: &tempfile::TempDir, args: &[&str]) -> (i32, String, String) {
    report_as(dir, args, Command::new(env!("CARGO_BIN_EXE_utkikk")))
}

fn report_as(dir: &tempfile::TempDir, args: &[&str], mut cmd: Command) -> (i32, String, String) {
    let out = cmd
        .arg("report")
        .arg("--config")
        .arg(dir.path().join("utkikk.yaml"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--out")
        .arg(dir.path().join("out"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn writes_csv_and_json_for_a_member() {
    // (The config names an API token in a variable that is not set: a
    // report reads no secret, so it runs all the same.)
    let dir = setup();
    let (code, stdout, stderr) = report(
        &dir,
        &["--month", "2026-10", "--member", "a", "--format", "csv"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    let services = std::fs::read_to_string(dir.path().join("out/a-2026-10-services.csv")).unwrap();
    assert!(services.starts_with('\u{feff}'), "UTF-8 with a BOM");
    // 3,600 s of 745 hours: 99.87 %, in bokmål with a decimal comma.
    assert!(
        services.contains(
            "a;files;2026-10;99,50;99,87;1,0000;0,0000;0,0000;100,00;Oppfylt;1;1,0000;73,15"
        ),
        "{services}"
    );
    let outages = std::fs::read_to_string(dir.path().join("out/a-2026-10-outages.csv")).unwrap();
    assert!(
        outages.contains("2026-10-14T09:00:00.000+02:00"),
        "{outages}"
    );

    let (code, _, stderr) = report(
        &dir,
        &[
            "--month", "2026-10", "--all", "--format", "json", "--lang", "en",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/a-2026-10.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["organisation"], "Testregionen IKT");
    assert_eq!(json["kommunenummer"], "3301");
    assert_eq!(json["services"][0]["downtime_seconds"], 3600.0);
    assert_eq!(json["outages"][0]["duration_seconds"], 3600.0);

    let (code, stdout, stderr) = report(&dir, &["--month", "2026-10", "--all", "--format", "pdf"]);
    assert_eq!(code, 0, "{stderr}");
    for name in ["a-2026-10.pdf", "region-2026-10.pdf"] {
        assert!(stdout.contains(name), "{stdout}");
        let pdf = std::fs::read(dir.path().join("out").join(name)).unwrap();
        assert!(pdf.starts_with(b"%PDF-"), "{name}");
    }
}

#[test]
fn refuses_what_it_cannot_report_with_a_clear_error() {
    let dir = setup();
    let cases: [(&[&str], i32, &str); 4] = [
        (
            &["--month", "2026-10", "--member", "zz", "--format", "csv"],
            1,
            "unknown member \"zz\"",
        ),
        (
            &["--month", "2199-01", "--member", "a", "--format", "csv"],
            1,
            "month 2199-01 has not begun",
        ),
        (
            &["--month", "2026-13", "--member", "a", "--format", "csv"],
            2,
            "expected YYYY-MM",
        ),
        (
            &[
                "--month", "2026-10", "--member", "a", "--all", "--format", "csv",
            ],
            2,
            "cannot be used with",
        ),
    ];
    for (args, code, says) in cases {
        let (got, _, stderr) = report(&dir, args);
        assert_eq!(got, code, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    let (got, _, stderr) = report(
        &dir,
        &["--month", "2026-10", "--member", "a", "--format", "json"],
    );
    assert_eq!(got, 1);
    assert!(stderr.contains("no ledger at"), "{stderr}");
}

/// `--month previous`: the last closed month in Europe/Oslo.
#[test]
fn previous_is_the_last_closed_month() {
    use chrono::Datelike;
    let dir = setup();
    let (code, stdout, stderr) = report(
        &dir,
        &["--month", "previous", "--member", "a", "--format", "json"],
    );
    assert_eq!(code, 0, "{stderr}");
    let today = chrono::Utc::now().with_timezone(&Oslo).date_naive();
    let (y, m) = if today.month() == 1 {
        (today.year() - 1, 12)
    } else {
        (today.year(), today.month() - 1)
    };
    let want = format!("a-{y}-{m:02}.json");
    assert!(stdout.contains(&want), "{want} in {stdout}");
}

/// A ledger in a directory the user may not enter is not "missing":
/// the error says permission denied.
#[test]
fn a_ledger_it_may_not_read_is_not_called_missing() {
    use std::os::unix::fs::PermissionsExt;
    let dir = setup();
    let perms = |p: &std::path::Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    perms(dir.path(), 0o755);
    perms(&dir.path().join("utkikk.yaml"), 0o644);
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap();
    let cmd = if root {
        // Root reads anything: run as nobody instead (util-linux setpriv).
        perms(&dir.path().join("data"), 0o750);
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_utkikk"));
        c
    } else {
        perms(&dir.path().join("data"), 0o000);
        Command::new(env!("CARGO_BIN_EXE_utkikk"))
    };
    let (code, _, stderr) = report_as(
        &dir,
        &["--month", "2026-10", "--member", "a", "--format", "json"],
        cmd,
    );
    perms(&dir.path().join("data"), 0o755);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert!(!stderr.contains("no ledger"), "{stderr}");
}
