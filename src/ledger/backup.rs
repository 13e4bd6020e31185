//! Copies of the ledger that can be trusted: `utkikk ledger backup` (SQLite's
//! online backup API, consistent while the agent writes: a plain `cp` of a
//! WAL database leaves the newest data behind in `ledger.db-wal`),
//! `utkikk ledger check`, and the copy taken before a schema migration.
//!
//! A backup is one self-contained file (rollback journal mode, no `-wal`),
//! integrity-checked before it is renamed into place, so a file at the
//! destination is always a whole ledger.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::LedgerError;

fn db(e: rusqlite::Error) -> LedgerError {
    LedgerError::Db(e.to_string())
}

fn unreadable(path: &Path, e: std::io::Error) -> LedgerError {
    LedgerError::Db(format!("cannot read {}: {e}", path.display()))
}

fn io(path: &Path, e: std::io::Error) -> LedgerError {
    LedgerError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// What a ledger file holds, as `utkikk ledger check` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub schema: i64,
    pub runs: i64,
    pub transitions: i64,
    pub device_events: i64,
    pub frozen_months: i64,
    /// The first run's start and the last sign of life (ms, UTC).
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    pub bytes: u64,
}

/// Open `path` read-only, check its integrity and sum up what it holds.
pub fn check(path: &Path) -> Result<Summary, LedgerError> {
    let meta = std::fs::metadata(path).map_err(|e| unreadable(path, e))?;
    let conn = super::store::read_only(path)?;
    super::store::integrity(&conn, path)?;
    let schema: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db)?;
    if schema == 0 {
        return Err(LedgerError::Db(format!(
            "{} is not a utkikk ledger (no schema)",
            path.display()
        )));
    }
    let count = |table: &str| -> Result<i64, LedgerError> {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .map_err(db)
    };
    let (first_ms, last_ms): (Option<i64>, Option<i64>) = conn
        .query_row(
            "SELECT min(started_ms), max(coalesce(stopped_ms, last_seen_ms)) FROM runs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(db)?;
    Ok(Summary {
        schema,
        runs: count("runs")?,
        transitions: count("transitions")?,
        device_events: count("device_events")?,
        frozen_months: if schema >= 3 {
            count("monthly_results")?
        } else {
            0
        },
        first_ms,
        last_ms,
        bytes: meta.len(),
    })
}

/// Copy the ledger at `src` to `dest` (which must not exist) while it may
/// be written: one read transaction copies every page, so the copy is the
/// ledger as of one instant. Returns what the copy holds.
pub fn backup(src: &Path, dest: &Path) -> Result<Summary, LedgerError> {
    if dest.exists() {
        return Err(LedgerError::Io {
            path: dest.to_path_buf(),
            reason: "exists already; give a new file name (a backup never overwrites)".into(),
        });
    }
    std::fs::metadata(src).map_err(|e| unreadable(src, e))?;
    copy(&super::store::read_only(src)?, dest)
}

/// The copy taken before migrating the schema from `from` to `to`, next to
/// the ledger: `ledger.db.schema6-20261130T051500Z.bak`.
pub(super) fn before_migration(
    conn: &Connection,
    ledger: &Path,
    from: usize,
    to: usize,
) -> Result<PathBuf, LedgerError> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let name = format!(
        "{}.schema{from}-{stamp}.bak",
        ledger
            .file_name()
            .map_or("ledger.db".into(), |n| n.to_string_lossy())
    );
    let dest = ledger.with_file_name(name);
    copy(conn, &dest)?;
    tracing::info!(
        backup = %dest.display(),
        "ledger schema {from} is upgraded to {to}; the ledger as it was is kept in the backup (restore it to go back to the older utkikk)"
    );
    Ok(dest)
}

fn copy(from: &Connection, dest: &Path) -> Result<Summary, LedgerError> {
    let tmp = dest.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        {
            let mut to = Connection::open(&tmp).map_err(db)?;
            {
                let b = rusqlite::backup::Backup::new(from, &mut to).map_err(db)?;
                // All pages in one step: one read transaction (a writer in
                // WAL mode is not blocked), and no restart when the agent
                // commits in between, as a stepwise copy would.
                loop {
                    match b.step(-1).map_err(db)? {
                        rusqlite::backup::StepResult::Done => break,
                        rusqlite::backup::StepResult::More => continue,
                        _ => std::thread::sleep(std::time::Duration::from_millis(50)),
                    }
                }
            }
            // One self-contained file.
            let _: String = to
                .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
                .map_err(db)?;
        }
        let f = std::fs::File::open(&tmp).map_err(|e| io(&tmp, e))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
        let summary = check(&tmp)?;
        std::fs::rename(&tmp, dest).map_err(|e| io(dest, e))?;
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(Summary {
            bytes: std::fs::metadata(dest).map_or(summary.bytes, |m| m.len()),
            ..summary
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Record, Store};
    use crate::model::{State, Transition};

    fn tr(at: i64, to: State) -> Record {
        Record::Transition(Transition {
            target: "t".into(),
            from: State::Unmonitored,
            to,
            at: chrono::DateTime::from_timestamp_millis(at).unwrap(),
            reason: None,
            root_cause: None,
        })
    }

    #[test]
    fn a_backup_while_written_is_whole_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let mut store = Store::open(&path).unwrap();
        let run = store.begin_run("t", 1_000).unwrap();
        store
            .write(run, &[tr(1_000, State::Up), tr(2_000, State::Down)], 3_000)
            .unwrap();
        // The writer keeps its connection open: the newest pages are in the
        // WAL, where a plain copy of ledger.db would miss them.
        let copy = dir.path().join("copy.db");
        let s = backup(&path, &copy).unwrap();
        assert_eq!((s.runs, s.transitions), (1, 2));
        assert_eq!(s.first_ms, Some(1_000));
        assert!(!dir.path().join("copy.db-wal").exists());
        store.write(run, &[tr(4_000, State::Up)], 5_000).unwrap();
        assert_eq!(check(&copy).unwrap().transitions, 2, "as of one instant");
        // Never over an existing file.
        assert!(matches!(backup(&path, &copy), Err(LedgerError::Io { .. })));
        // Not a ledger.
        let junk = dir.path().join("junk");
        std::fs::write(&junk, b"hello").unwrap();
        assert!(check(&junk).is_err());
        // The copy opens as a ledger.
        drop(store);
        let back = Store::open(&copy).unwrap();
        assert_eq!(back.count_transitions().unwrap(), 2);
    }

    /// An older ledger is copied before its schema is upgraded, and the
    /// copy is the ledger as the older utkikk left it.
    #[test]
    fn a_migration_keeps_the_ledger_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        {
            let conn = Connection::open(&path).unwrap();
            let _: String = conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .unwrap();
            for sql in &crate::ledger::store::MIGRATIONS[..6] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 6).unwrap();
            conn.execute(
                "INSERT INTO runs (agent, version, started_ms, last_seen_ms) VALUES ('old', '0.0.9', 1000, 2000)",
                [],
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert!(store.is_current().unwrap());
        let kept: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.to_string_lossy().contains(".schema6-")
                    && p.extension().is_some_and(|x| x == "bak")
            })
            .collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
        let s = check(&kept[0]).unwrap();
        assert_eq!((s.schema, s.runs), (6, 1));
        // A new ledger has nothing to keep.
        let fresh = dir.path().join("new").join("ledger.db");
        Store::open(&fresh).unwrap();
        let baks = std::fs::read_dir(fresh.parent().unwrap())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "bak"))
            })
            .count();
        assert_eq!(baks, 0);
    }
}
