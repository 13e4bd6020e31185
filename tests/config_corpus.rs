//! The invalid-config corpus: every `tests/invalid-configs/NAME.yaml` must
//! make `utkikk check-config` exit 1 and print exactly `NAME.expected`.
//! Regenerate the expectations after a deliberate change with
//! `UTKIKK_BLESS=1 cargo test --test config_corpus`, then review the diff.

use std::path::Path;
use std::process::Command;

fn check_config(file: &Path) -> (Option<i32>, String, String) {
    check_config_env(file, &[])
}

fn check_config_env(file: &Path, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_utkikk"))
        .arg("check-config")
        .arg(file)
        .envs(env.iter().copied())
        .output()
        .expect("run utkikk");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_invalid_config_gives_its_exact_message() {
    let dir = Path::new("tests/invalid-configs");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("corpus directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "corpus went missing");
    let bless = std::env::var_os("UTKIKK_BLESS").is_some();
    let mut failures = Vec::new();
    for file in &files {
        let (code, stdout, stderr) = check_config(file);
        let expected_path = file.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &stderr).expect("write expectation");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{} has no .expected file", file.display()));
        if code != Some(1) || !stdout.is_empty() || stderr != expected {
            failures.push(format!(
                "{}: exit {code:?}\n--- expected\n{expected}--- got\n{stderr}",
                file.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The region template names SNMPv3 passphrases as env:NAME. Without them
/// the config is still valid, and check-config says which secrets are not
/// set, on their own; with its example env file it passes.
#[test]
fn secrets_not_set_are_their_own_finding_and_an_env_file_supplies_them() {
    let region = Path::new("config/kongsbergregionen.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_utkikk"))
        .arg("check-config")
        .arg(region)
        .env_remove("UTKIKK_SNMP_AUTH_PASSPHRASE")
        .env_remove("UTKIKK_SNMP_PRIV_PASSPHRASE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("secrets, read as the agent would read them:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("defaults.snmp.auth_passphrase: environment variable UTKIKK_SNMP_AUTH_PASSPHRASE is not set"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the config is valid, but 2 secrets are not usable"),
        "{stderr}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_utkikk"))
        .args(["check-config", "--env-file", "config/kongsbergregionen.env"])
        .arg(region)
        .env_remove("UTKIKK_SNMP_AUTH_PASSPHRASE")
        .env_remove("UTKIKK_SNMP_PRIV_PASSPHRASE")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A broken env file is located, and its values are not echoed.
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("env");
    std::fs::write(&env, "UTKIKK_SNMP_AUTH_PASSPHRASE=\"hunter2\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_utkikk"))
        .arg("check-config")
        .arg("--env-file")
        .arg(&env)
        .arg(region)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(":1:1: UTKIKK_SNMP_AUTH_PASSPHRASE: the value's quote is not closed"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn shipped_configs_are_valid() {
    // The region template reads its SNMPv3 passphrases from the environment.
    let env = [
        ("UTKIKK_SNMP_AUTH_PASSPHRASE", "template-auth-passphrase"),
        ("UTKIKK_SNMP_PRIV_PASSPHRASE", "template-priv-passphrase"),
    ];
    for file in [
        "config/example.yaml",
        "config/kongsbergregionen.yaml",
        "deploy/utkikk.yaml",
    ] {
        let (code, stdout, stderr) = check_config_env(Path::new(file), &env);
        assert_eq!(code, Some(0), "{file}: {stderr}");
        assert!(stdout.contains(": OK ("), "{stdout}");
    }
    let (_, stdout, _) = check_config_env(Path::new("config/kongsbergregionen.yaml"), &env);
    assert!(
        stdout.contains("41 targets, 18 polled over SNMP, 4 service checks"),
        "{stdout}"
    );
}

#[test]
fn a_missing_secret_is_a_config_error_that_names_the_variable_only() {
    let (code, _, stderr) = check_config(Path::new("config/kongsbergregionen.yaml"));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("defaults.snmp.auth_passphrase: environment variable UTKIKK_SNMP_AUTH_PASSPHRASE is not set"),
        "{stderr}"
    );
}

#[test]
fn unreadable_file_is_one_clear_error() {
    let (code, _, stderr) = check_config(Path::new("tests/invalid-configs/does-not-exist.yml"));
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with("tests/invalid-configs/does-not-exist.yml: cannot read config file: "),
        "{stderr}"
    );
}

fn schema_text() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_utkikk"))
        .arg("config-schema")
        .output()
        .expect("run utkikk config-schema");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_json_schema_file_is_current() {
    let committed = std::fs::read_to_string("config/utkikk.schema.json").unwrap();
    assert!(
        committed == schema_text(),
        "config/utkikk.schema.json is stale: run `utkikk config-schema > config/utkikk.schema.json`"
    );
}

#[test]
fn shipped_configs_match_the_json_schema_and_typos_do_not() {
    let schema: serde_json::Value = serde_json::from_str(&schema_text()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let yaml = |text: &str| -> serde_json::Value { serde_saphyr::from_str(text).unwrap() };
    for file in [
        "config/example.yaml",
        "config/kongsbergregionen.yaml",
        "deploy/utkikk.yaml",
    ] {
        let doc = yaml(&std::fs::read_to_string(file).unwrap());
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{file}: {errors:?}");
    }
    // What an editor should flag: an unknown key, deep inside too, and a
    // value of the wrong type.
    for bad in [
        "agnet: { id: x }\n",
        "targets:\n  - { id: a, address: 192.0.2.1, thresholds: { fail_aftr: 3 } }\n",
        "members: { id: x }\n",
    ] {
        assert!(!validator.is_valid(&yaml(bad)), "accepted: {bad}");
    }
}

#[test]
fn the_readme_config_reference_is_the_codes() {
    let out = Command::new(env!("CARGO_BIN_EXE_utkikk"))
        .args(["config-schema", "--markdown"])
        .output()
        .expect("run utkikk config-schema --markdown");
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.lines().count() > 100, "{table}");
    let readme = std::fs::read_to_string("README.md").unwrap();
    let start = "<!-- config-reference:start -->\n";
    let inside = readme
        .split_once(start)
        .and_then(|(_, rest)| rest.split_once("<!-- config-reference:end -->"))
        .map(|(table, _)| table)
        .expect("README has the config reference markers");
    assert!(
        inside == table,
        "README's config reference is stale: replace it with `utkikk config-schema --markdown`"
    );
}

/// A secret file that never ends (/dev/zero), one that blocks (a FIFO) and
/// one too big are refused with the reason, not read. (`timeout` turns a
/// hang, which is what a FIFO did, into a failure instead of a stuck test.)
#[test]
fn secret_files_that_are_not_small_regular_files_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'x'; 65 * 1024]).unwrap();
    for (file, says) in [
        ("/dev/zero".to_string(), "not a regular file"),
        (fifo.display().to_string(), "not a regular file"),
        (big.display().to_string(), "larger than 64 KiB"),
    ] {
        let config = dir.path().join("utkikk.yaml");
        std::fs::write(
            &config,
            format!("agent: {{ id: t, api_token: \"file:{file}\" }}\ntargets:\n  - {{ id: a, kind: server, address: 198.51.100.1 }}\n"),
        )
        .unwrap();
        let out = Command::new("timeout")
            .arg("30")
            .arg(env!("CARGO_BIN_EXE_utkikk"))
            .arg("check-config")
            .arg(&config)
            .output()
            .expect("timeout (coreutils)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(124), "{file}: hung");
        assert_eq!(out.status.code(), Some(1), "{file}: {stderr}");
        assert!(stderr.contains(says), "{file}: {stderr}");
    }
}

/// A config with no targets would have the agent watch nothing: said, and
/// refused unless asked for.
#[test]
fn an_empty_config_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("utkikk.yaml");
    std::fs::write(&config, "agent: { id: t }\n").unwrap();
    let (code, _, stderr) = check_config(&config);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("no targets: utkikk would watch nothing"),
        "{stderr}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_utkikk"))
        .args(["check-config", "--allow-empty"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `run` refuses it too, before listening.
    let out = Command::new("timeout")
        .arg("30")
        .arg(env!("CARGO_BIN_EXE_utkikk"))
        .args(["run", "--web.listen-address", "127.0.0.1:1", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("would watch nothing"));
}
