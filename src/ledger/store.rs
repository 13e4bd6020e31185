//! The SQLite side of the ledger: schema migrations, writes in
//! transactions, and the reads the availability figures need.
//!
//! WAL with `synchronous=FULL`: a committed transaction survives a crash or
//! power cut. Times are milliseconds since the Unix epoch, UTC.

use std::path::Path;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::{LedgerError, Record};
use crate::maintenance::{self, Origin, Spec, Window};

/// Schema migrations, applied in order; `PRAGMA user_version` counts how
/// many have run. Never edit one that has shipped: add a new one.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: runs, transitions, device events.
    "CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        agent TEXT NOT NULL,
        version TEXT NOT NULL,
        started_ms INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL,
        stopped_ms INTEGER,
        clean INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE transitions (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        target TEXT NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        reason TEXT,
        root_cause TEXT
    );
    CREATE INDEX transitions_target_at ON transitions(target, at_ms);
    CREATE INDEX transitions_at ON transitions(at_ms);
    CREATE TABLE device_events (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        target TEXT NOT NULL,
        kind TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        detail TEXT
    );
    CREATE INDEX device_events_target_at ON device_events(target, at_ms);",
    // 2: a covering index for timelines and outages: one target's month
    // is read from contiguous index pages, not from a page per day.
    "CREATE INDEX transitions_timeline ON transitions(target, at_ms, run_id, to_state, reason);",
    // 3: maintenance windows (declared and withdrawn, never deleted) and
    // the frozen results of closed months.
    "CREATE TABLE maintenance (
        id INTEGER PRIMARY KEY,
        config_id TEXT,
        spec TEXT NOT NULL,
        declared_ms INTEGER NOT NULL,
        withdrawn_ms INTEGER
    );
    CREATE TABLE monthly_results (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        month TEXT NOT NULL,
        computed_ms INTEGER NOT NULL,
        result TEXT NOT NULL,
        PRIMARY KEY (kind, id, month)
    );",
    // 4: results of closed days (a cache of what the transitions give,
    // keyed by a fingerprint of the config and version that computed them).
    "CREATE TABLE day_results (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        day_ms INTEGER NOT NULL,
        end_ms INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (kind, key, day_ms)
    );
    CREATE INDEX day_results_end ON day_results(end_ms);",
    // 5: links' daily figures (RTT histogram, echoes, peak utilisation),
    // one row per link, Oslo day and run: a run replaces only its own row,
    // so a restart within the day adds to what the earlier run saw.
    "CREATE TABLE link_days (
        target TEXT NOT NULL,
        day_ms INTEGER NOT NULL,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        data TEXT NOT NULL,
        PRIMARY KEY (target, day_ms, run_id)
    );",
    // 6: operators' notes on outages, by root cause and start.
    "CREATE TABLE outage_notes (
        target TEXT NOT NULL,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER,
        note TEXT NOT NULL,
        written_ms INTEGER NOT NULL,
        PRIMARY KEY (target, start_ms)
    );",
    // 7: the reason's stable code beside its (English) words, so reports
    // can say it in their own language; the covering index carries it.
    "ALTER TABLE transitions ADD COLUMN reason_code TEXT;
    DROP INDEX transitions_timeline;
    CREATE INDEX transitions_timeline ON transitions(target, at_ms, run_id, to_state, reason, reason_code);",
    // 8: the file's own identity (random, made once): a shared PostgreSQL
    // record keys what it copies from this file on it, so a file begun
    // again (ids from 1) is never taken for the one before.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('journal', lower(hex(randomblob(16))));",
    // 9: a note removed stays as an empty note (a tombstone) dated when it
    // was removed, so a shared record learns of the removal; notes are
    // found by when they were written.
    "CREATE INDEX outage_notes_written ON outage_notes(written_ms);",
];

/// Day results that a write dated at or before `from_ms` could change are
/// dropped (they are computed again from the transitions).
fn drop_day_results_after(conn: &Connection, from_ms: i64) -> Result<(), LedgerError> {
    conn.execute(
        "DELETE FROM day_results WHERE end_ms > ?1",
        params![from_ms],
    )
    .map_err(db)?;
    Ok(())
}

fn declare(
    tx: &rusqlite::Transaction<'_>,
    origin: &Origin,
    spec: &Spec,
    now_ms: i64,
) -> Result<i64, LedgerError> {
    let json = serde_json::to_string(spec).map_err(|e| LedgerError::Db(e.to_string()))?;
    let config_id = match origin {
        Origin::Config(id) => Some(id.as_str()),
        Origin::Api => None,
    };
    tx.execute(
        "INSERT INTO maintenance (config_id, spec, declared_ms) VALUES (?1, ?2, ?3)",
        params![config_id, json, now_ms],
    )
    .map_err(db)?;
    Ok(tx.last_insert_rowid())
}

pub struct Store {
    conn: Connection,
    /// Set when whoever asked no longer waits (see [`Store::cancel_on`]).
    cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// In a record merged from several agents ([`Store::in_memory`]):
    /// per target, when each agent saw it `down` (outages name them).
    seen_down: Option<SeenDown>,
}

/// Per target, each agent and the time it saw the target `down`.
pub type SeenDown =
    std::collections::HashMap<String, Vec<(String, crate::time::interval::IntervalSet)>>;

/// A frozen result: kind, id, month (`YYYY-MM`), when computed, result.
pub type FrozenRow = (String, String, String, i64, String);

/// Rows of a record made elsewhere, put into a [`Store::in_memory`] as
/// they are (see [`Store::import`]).
#[derive(Debug, Default)]
pub struct Rows {
    pub runs: Vec<RunRow>,
    pub transitions: Vec<TransitionRow>,
    /// (target, day start, run id, data).
    pub link_days: Vec<(String, i64, i64, String)>,
    pub windows: Vec<Window>,
    pub notes: Vec<super::OutageNote>,
    pub frozen: Vec<FrozenRow>,
    pub seen_down: SeenDown,
}

/// One run of the agent as recorded: from its start to its clean stop, or
/// to the last time it was seen alive (heartbeat or write) if it died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub id: i64,
    pub started_ms: i64,
    pub end_ms: i64,
    pub clean: bool,
}

/// A stored transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionRow {
    pub run_id: i64,
    pub target: String,
    pub from_state: String,
    pub to_state: String,
    pub at_ms: i64,
    pub reason: Option<String>,
    /// [`crate::model::Reason::code`]; `None` in rows written before
    /// schema 7.
    pub reason_code: Option<String>,
    pub root_cause: Option<String>,
}

fn db(e: rusqlite::Error) -> LedgerError {
    LedgerError::Db(e.to_string())
}

/// As [`db`], but a file that is not a database or is damaged (truncated,
/// overwritten) is [`LedgerError::Corrupt`]: retrying will not help.
fn db_at(path: &Path) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
    move |e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            LedgerError::Corrupt {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }
        }
        _ => db(e),
    }
}

/// A read-only connection that waits up to 5 s for a writer's lock.
pub(super) fn read_only(path: &Path) -> Result<Connection, LedgerError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db_at(path))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(db)?;
    Ok(conn)
}

/// `PRAGMA integrity_check`: anything but "ok" is corruption.
pub(super) fn integrity(conn: &Connection, path: &Path) -> Result<(), LedgerError> {
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(db_at(path))?;
    if check != "ok" {
        return Err(LedgerError::Corrupt {
            path: path.to_path_buf(),
            detail: check,
        });
    }
    Ok(())
}

impl Store {
    /// Open (creating if needed) for writing: pragmas, integrity check,
    /// migrations.
    pub fn open(path: &Path) -> Result<Store, LedgerError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| LedgerError::Io {
                path: dir.to_path_buf(),
                reason: e.to_string(),
            })?;
        }
        let conn = Connection::open(path).map_err(db_at(path))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(db_at(path))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(LedgerError::Db(format!(
                "cannot use WAL (journal_mode is {mode})"
            )));
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(db_at(path))?;
        integrity(&conn, path)?;
        let mut store = Store {
            conn,
            cancel: None,
            seen_down: None,
        };
        store.migrate(path)?;
        Ok(store)
    }

    /// Open an existing ledger for reading only (queries, reports).
    pub fn open_read_only(path: &Path) -> Result<Store, LedgerError> {
        let conn = read_only(path)?;
        // Queries read a month of many targets: a larger page cache.
        conn.execute_batch("PRAGMA cache_size=-65536;")
            .map_err(db)?;
        Ok(Store {
            conn,
            cancel: None,
            seen_down: None,
        })
    }

    /// An empty ledger of the current schema in memory: the record merged
    /// from several agents, made for one answer (filled by
    /// [`Store::import`]), so what is computed from one agent's file is
    /// computed the same way from it.
    pub fn in_memory() -> Result<Store, LedgerError> {
        let conn = Connection::open_in_memory().map_err(db)?;
        for sql in MIGRATIONS {
            conn.execute_batch(sql).map_err(db)?;
        }
        conn.pragma_update(None, "user_version", MIGRATIONS.len() as i64)
            .map_err(db)?;
        Ok(Store {
            conn,
            cancel: None,
            seen_down: None,
        })
    }

    /// Put `rows` in as they are, ids kept, in one transaction. For
    /// [`Store::in_memory`]: a file written by an agent is never imported
    /// into.
    pub fn import(&mut self, agent: &str, rows: Rows) -> Result<(), LedgerError> {
        let tx = self.conn.transaction().map_err(db)?;
        {
            let mut run = tx
                .prepare(
                    "INSERT INTO runs (id, agent, version, started_ms, last_seen_ms, stopped_ms, clean)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
                )
                .map_err(db)?;
            for r in &rows.runs {
                run.execute(params![
                    r.id,
                    agent,
                    env!("CARGO_PKG_VERSION"),
                    r.started_ms,
                    r.end_ms,
                    r.clean as i64
                ])
                .map_err(db)?;
            }
            let mut tr = tx
                .prepare(
                    "INSERT INTO transitions (run_id, target, from_state, to_state, at_ms, reason, root_cause, reason_code)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(db)?;
            for t in &rows.transitions {
                tr.execute(params![
                    t.run_id,
                    t.target,
                    t.from_state,
                    t.to_state,
                    t.at_ms,
                    t.reason,
                    t.root_cause,
                    t.reason_code
                ])
                .map_err(db)?;
            }
            let mut link = tx
                .prepare("INSERT OR REPLACE INTO link_days (target, day_ms, run_id, data) VALUES (?1, ?2, ?3, ?4)")
                .map_err(db)?;
            for (target, day, run, data) in &rows.link_days {
                link.execute(params![target, day, run, data]).map_err(db)?;
            }
            let mut window = tx
                .prepare(
                    "INSERT INTO maintenance (id, config_id, spec, declared_ms, withdrawn_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(db)?;
            for w in &rows.windows {
                let spec =
                    serde_json::to_string(&w.spec).map_err(|e| LedgerError::Db(e.to_string()))?;
                let config_id = match &w.origin {
                    Origin::Config(id) => Some(id.as_str()),
                    Origin::Api => None,
                };
                window
                    .execute(params![
                        w.id,
                        config_id,
                        spec,
                        w.declared_ms,
                        w.withdrawn_ms
                    ])
                    .map_err(db)?;
            }
            let mut note = tx
                .prepare(
                    "INSERT OR REPLACE INTO outage_notes (target, start_ms, end_ms, note, written_ms)
                     VALUES (?1, ?2, ?3, ?4, 0)",
                )
                .map_err(db)?;
            for n in &rows.notes {
                if let Some(text) = &n.note {
                    note.execute(params![n.target, n.start_ms, n.end_ms, text])
                        .map_err(db)?;
                }
            }
            let mut frozen = tx
                .prepare(
                    "INSERT OR IGNORE INTO monthly_results (kind, id, month, computed_ms, result)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(db)?;
            for (kind, id, month, computed_ms, result) in &rows.frozen {
                frozen
                    .execute(params![kind, id, month, computed_ms, result])
                    .map_err(db)?;
            }
        }
        tx.commit().map_err(db)?;
        self.seen_down = Some(rows.seen_down);
        Ok(())
    }

    /// Keep a frozen result unless one is kept already (the first stands).
    pub fn keep_frozen(&mut self, row: &FrozenRow) -> Result<(), LedgerError> {
        let (kind, id, month, computed_ms, result) = row;
        self.conn
            .execute(
                "INSERT OR IGNORE INTO monthly_results (kind, id, month, computed_ms, result)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![kind, id, month, computed_ms, result],
            )
            .map_err(db)?;
        Ok(())
    }

    /// In a merged record: per target, when each agent saw it `down`.
    pub fn seen_down(&self) -> Option<&SeenDown> {
        self.seen_down.as_ref()
    }

    /// Let `flag` stop this store's queries: once it is set, long
    /// computations end at their next [`Store::check_cancelled`].
    /// [`Store::interrupt_handle`] stops SQL already running.
    pub fn cancel_on(&mut self, flag: std::sync::Arc<std::sync::atomic::AtomicBool>) {
        self.cancel = Some(flag);
    }

    /// `Err(Cancelled)` once the flag given to [`Store::cancel_on`] is set.
    pub fn check_cancelled(&self) -> Result<(), LedgerError> {
        match &self.cancel {
            Some(f) if f.load(std::sync::atomic::Ordering::Relaxed) => Err(LedgerError::Cancelled),
            _ => Ok(()),
        }
    }

    /// Interrupts the SQL statement running on this store (from any
    /// thread); it then fails.
    pub fn interrupt_handle(&self) -> rusqlite::InterruptHandle {
        self.conn.get_interrupt_handle()
    }

    /// [`Store::open_read_only`] once the writer has created or migrated
    /// the schema (a moment at start or after an upgrade; up to two
    /// seconds).
    pub fn open_when_current(path: &Path) -> Result<Store, LedgerError> {
        for _ in 0..20 {
            let store = Store::open_read_only(path)?;
            if store.is_current()? {
                return Ok(store);
            }
            drop(store);
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Err(LedgerError::Db(
            "its schema is being created or brought up to date; try again shortly".into(),
        ))
    }

    /// Bring the schema up to date. A ledger that has data is copied first
    /// (next to it, see [`super::backup::before_migration`]): a migration
    /// cannot be undone, and the older utkikk refuses the newer schema.
    fn migrate(&mut self, path: &Path) -> Result<(), LedgerError> {
        let have: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db)?;
        let have = usize::try_from(have).unwrap_or(0);
        if have > MIGRATIONS.len() {
            return Err(LedgerError::Db(format!(
                "ledger schema version {have} is newer than this utkikk knows ({}); upgrade utkikk",
                MIGRATIONS.len()
            )));
        }
        if have > 0 && have < MIGRATIONS.len() {
            super::backup::before_migration(&self.conn, path, have, MIGRATIONS.len())?;
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(have) {
            let tx = self.conn.transaction().map_err(db)?;
            tx.execute_batch(sql).map_err(db)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(db)?;
            tx.commit().map_err(db)?;
        }
        Ok(())
    }

    /// Whether the schema is the one this utkikk writes (a reader that
    /// opens the file while the writer creates or migrates it waits).
    /// A schema newer than this utkikk knows is an error.
    pub fn is_current(&self) -> Result<bool, LedgerError> {
        let have = self.schema_version()?;
        let know = MIGRATIONS.len() as i64;
        if have > know {
            return Err(LedgerError::Db(format!(
                "ledger schema version {have} is newer than this utkikk knows ({know}); upgrade utkikk"
            )));
        }
        Ok(have == know)
    }

    pub fn schema_version(&self) -> Result<i64, LedgerError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db)
    }

    /// Record the start of a run; a previous run that never stopped cleanly
    /// ends where it was last seen.
    pub fn begin_run(&mut self, agent: &str, started_ms: i64) -> Result<i64, LedgerError> {
        let tx = self.conn.transaction().map_err(db)?;
        tx.execute(
            "UPDATE runs SET stopped_ms = last_seen_ms WHERE stopped_ms IS NULL",
            [],
        )
        .map_err(db)?;
        tx.execute(
            "INSERT INTO runs (agent, version, started_ms, last_seen_ms) VALUES (?1, ?2, ?3, ?3)",
            params![agent, env!("CARGO_PKG_VERSION"), started_ms],
        )
        .map_err(db)?;
        let id = tx.last_insert_rowid();
        // A clock stepped back can start a run inside a day already summed.
        drop_day_results_after(&tx, started_ms)?;
        tx.commit().map_err(db)?;
        Ok(id)
    }

    /// Write records and move the run's last-seen time, in one transaction.
    pub fn write(
        &mut self,
        run_id: i64,
        records: &[Record],
        seen_ms: i64,
    ) -> Result<(), LedgerError> {
        let tx = self.conn.transaction().map_err(db)?;
        // The earliest transition written: day results from then on are stale.
        let mut late: Option<i64> = None;
        {
            let mut tr = tx
                .prepare_cached(
                    "INSERT INTO transitions (run_id, target, from_state, to_state, at_ms, reason, root_cause, reason_code)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(db)?;
            let mut ev = tx
                .prepare_cached(
                    "INSERT INTO device_events (run_id, target, kind, at_ms, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(db)?;
            let mut day = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO day_results (kind, key, day_ms, end_ms, fingerprint, data)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6
                     WHERE NOT EXISTS (SELECT 1 FROM transitions WHERE id > ?7 AND +at_ms < ?4)",
                )
                .map_err(db)?;
            for r in records {
                match r {
                    Record::Day {
                        kind,
                        key,
                        day: span,
                        fingerprint,
                        through_id,
                        data,
                    } => {
                        // Kept only if no transition of the day was written
                        // after it was computed. (`+at_ms`: the few rows
                        // after `through_id` by rowid, not every row of the
                        // year before the day's end by the time index.)
                        day.execute(params![
                            kind,
                            key,
                            span.start,
                            span.end,
                            fingerprint,
                            data,
                            through_id
                        ])
                        .map_err(db)?;
                    }
                    Record::Transition(t) => {
                        late = Some(late.map_or(t.at.timestamp_millis(), |l: i64| {
                            l.min(t.at.timestamp_millis())
                        }));
                        tr.execute(params![
                            run_id,
                            t.target,
                            t.from.as_str(),
                            t.to.as_str(),
                            t.at.timestamp_millis(),
                            t.reason.as_ref().map(|r| r.to_string()),
                            t.root_cause,
                            t.reason.as_ref().map(|r| r.code())
                        ])
                        .map_err(db)?;
                    }
                    Record::LinkDay {
                        target,
                        day_ms,
                        data,
                    } => {
                        tx.prepare_cached(
                            "INSERT OR REPLACE INTO link_days (target, day_ms, run_id, data)
                             VALUES (?1, ?2, ?3, ?4)",
                        )
                        .map_err(db)?
                        .execute(params![target, day_ms, run_id, data])
                        .map_err(db)?;
                    }
                    Record::Frozen {
                        kind,
                        id,
                        month,
                        result,
                    } => {
                        // The first result of a month stands.
                        tx.execute(
                            "INSERT OR IGNORE INTO monthly_results (kind, id, month, computed_ms, result)
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![kind, id, month, seen_ms, result],
                        )
                        .map_err(db)?;
                    }
                    Record::Reboot {
                        target,
                        at,
                        uptime_seconds,
                    } => {
                        ev.execute(params![
                            run_id,
                            target,
                            "reboot",
                            at.timestamp_millis(),
                            format!("uptime after reboot {uptime_seconds:.2} s")
                        ])
                        .map_err(db)?;
                    }
                }
            }
        }
        if let Some(at) = late {
            drop_day_results_after(&tx, at)?;
        }
        tx.execute(
            "UPDATE runs SET last_seen_ms = max(last_seen_ms, ?2) WHERE id = ?1",
            params![run_id, seen_ms],
        )
        .map_err(db)?;
        tx.commit().map_err(db)
    }

    pub fn end_run(&mut self, run_id: i64, stopped_ms: i64) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "UPDATE runs SET stopped_ms = ?2, last_seen_ms = max(last_seen_ms, ?2), clean = 1 WHERE id = ?1",
                params![run_id, stopped_ms],
            )
            .map_err(db)?;
        Ok(())
    }

    /// Runs overlapping `[from, to)`. A run still going (or one that died)
    /// ends at its last-seen time; the caller extends the current run to now.
    pub fn runs(&self, from_ms: i64, to_ms: i64) -> Result<Vec<RunRow>, LedgerError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, started_ms, coalesce(stopped_ms, last_seen_ms), clean FROM runs
                 WHERE started_ms < ?2 AND coalesce(stopped_ms, last_seen_ms) >= ?1 ORDER BY started_ms, id",
            )
            .map_err(db)?;
        let rows = st
            .query_map(params![from_ms, to_ms], |r| {
                Ok(RunRow {
                    id: r.get(0)?,
                    started_ms: r.get(1)?,
                    end_ms: r.get(2)?,
                    clean: r.get::<_, i64>(3)? != 0,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    /// Transitions of `target` in the given runs that matter for
    /// `[from, to)`: those inside it, and the last one before `from` (the
    /// state the window opens in). In time order; same-millisecond ones in
    /// the order written. Only `run_id`, `to_state`, `at_ms`, `reason`
    /// and `reason_code` are filled.
    pub fn transitions(
        &self,
        target: &str,
        runs: &[RunRow],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<TransitionRow>, LedgerError> {
        let (Some(first), Some(last)) = (runs.first(), runs.last()) else {
            return Ok(Vec::new());
        };
        // Only what timelines and outages use, all in the covering index.
        let row = |r: &rusqlite::Row<'_>| {
            Ok(TransitionRow {
                run_id: r.get(0)?,
                target: String::new(),
                from_state: String::new(),
                to_state: r.get(1)?,
                at_ms: r.get(2)?,
                reason: r.get(3)?,
                reason_code: r.get(4)?,
                root_cause: None,
            })
        };
        let mut before = self
            .conn
            .prepare_cached(
                "SELECT run_id, to_state, at_ms, reason, reason_code FROM transitions
                 WHERE target = ?1 AND run_id BETWEEN ?2 AND ?3 AND at_ms < ?4 ORDER BY at_ms DESC, id DESC LIMIT 1",
            )
            .map_err(db)?;
        let mut out: Vec<TransitionRow> = before
            .query_map(params![target, first.id, last.id, from_ms], row)
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)?;
        let mut inside = self
            .conn
            .prepare_cached(
                "SELECT run_id, to_state, at_ms, reason, reason_code FROM transitions
                 WHERE target = ?1 AND run_id BETWEEN ?2 AND ?3 AND at_ms >= ?4 AND at_ms < ?5 ORDER BY at_ms, id",
            )
            .map_err(db)?;
        let rows = inside
            .query_map(params![target, first.id, last.id, from_ms, to_ms], row)
            .map_err(db)?;
        for r in rows {
            out.push(r.map_err(db)?);
        }
        Ok(out)
    }

    /// [`Store::transitions`] for many targets. (One range scan over the
    /// window for all targets measured slower than a covering-index range
    /// per target: the rows of a month are spread over the table.)
    pub fn transitions_of<'a>(
        &self,
        targets: impl IntoIterator<Item = &'a str>,
        runs: &[RunRow],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<std::collections::HashMap<String, Vec<TransitionRow>>, LedgerError> {
        targets
            .into_iter()
            .map(|t| Ok((t.to_string(), self.transitions(t, runs, from_ms, to_ms)?)))
            .collect()
    }

    /// Every maintenance window ever declared, oldest first.
    pub fn maintenance_windows(&self) -> Result<Vec<Window>, LedgerError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, config_id, spec, declared_ms, withdrawn_ms FROM maintenance ORDER BY id",
            )
            .map_err(db)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                ))
            })
            .map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, config_id, spec, declared_ms, withdrawn_ms) = row.map_err(db)?;
            let spec: Spec = serde_json::from_str(&spec).map_err(|e| {
                LedgerError::Db(format!("maintenance window {id} cannot be read: {e}"))
            })?;
            out.push(Window {
                id,
                origin: config_id.map_or(Origin::Api, Origin::Config),
                spec,
                declared_ms,
                withdrawn_ms,
            });
        }
        Ok(out)
    }

    /// Declare a window now; its id.
    pub fn declare_window(
        &mut self,
        origin: &Origin,
        spec: &Spec,
        now_ms: i64,
    ) -> Result<i64, LedgerError> {
        let tx = self.conn.transaction().map_err(db)?;
        let id = declare(&tx, origin, spec, now_ms)?;
        drop_day_results_after(&tx, now_ms)?;
        tx.commit().map_err(db)?;
        Ok(id)
    }

    /// Withdraw a window now (what already happened of it stays).
    pub fn withdraw_window(&mut self, id: i64, now_ms: i64) -> Result<(), LedgerError> {
        let tx = self.conn.transaction().map_err(db)?;
        tx.execute(
            "UPDATE maintenance SET withdrawn_ms = ?2 WHERE id = ?1 AND withdrawn_ms IS NULL",
            params![id, now_ms],
        )
        .map_err(db)?;
        drop_day_results_after(&tx, now_ms)?;
        tx.commit().map_err(db)
    }

    /// Bring the config's windows in the ledger in line with `config`, in
    /// one transaction: changed or removed ones are withdrawn now, new or
    /// changed ones declared now.
    pub fn sync_config_windows(
        &mut self,
        config: &[(String, Spec)],
        now_ms: i64,
    ) -> Result<(), LedgerError> {
        let stored = self.maintenance_windows()?;
        let (withdraw, declared) = maintenance::config_changes(&stored, config, now_ms);
        if withdraw.is_empty() && declared.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction().map_err(db)?;
        for id in withdraw {
            tx.execute(
                "UPDATE maintenance SET withdrawn_ms = ?2 WHERE id = ?1",
                params![id, now_ms],
            )
            .map_err(db)?;
        }
        for (id, spec) in declared {
            declare(&tx, &Origin::Config(id.clone()), spec, now_ms)?;
        }
        drop_day_results_after(&tx, now_ms)?;
        tx.commit().map_err(db)
    }

    /// The frozen result of a closed month, if one was kept.
    pub fn frozen(&self, kind: &str, id: &str, month: &str) -> Result<Option<String>, LedgerError> {
        self.conn
            .query_row(
                "SELECT result FROM monthly_results WHERE kind = ?1 AND id = ?2 AND month = ?3",
                params![kind, id, month],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)
    }

    /// How many closed months of `kind` are frozen: it changes exactly
    /// when another one is.
    pub fn frozen_count(&self, kind: &str) -> Result<i64, LedgerError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM monthly_results WHERE kind = ?1",
                params![kind],
                |r| r.get(0),
            )
            .map_err(db)
    }

    /// When the frozen result of a closed month was computed.
    pub fn frozen_at(&self, kind: &str, id: &str, month: &str) -> Result<Option<i64>, LedgerError> {
        self.conn
            .query_row(
                "SELECT computed_ms FROM monthly_results WHERE kind = ?1 AND id = ?2 AND month = ?3",
                params![kind, id, month],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)
    }

    /// Kept results of the days starting in `[from, to)` for one kind, key
    /// and fingerprint, by the day's start.
    pub fn day_results(
        &self,
        kind: &str,
        key: &str,
        fingerprint: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<std::collections::HashMap<i64, String>, LedgerError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT day_ms, data FROM day_results
                 WHERE kind = ?1 AND key = ?2 AND day_ms >= ?3 AND day_ms < ?4 AND fingerprint = ?5",
            )
            .map_err(db)?;
        let rows = st
            .query_map(params![kind, key, from_ms, to_ms, fingerprint], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    /// Which day results are kept for days starting at or after `from_ms`:
    /// (kind, key, day start, fingerprint).
    pub fn day_results_kept(
        &self,
        from_ms: i64,
    ) -> Result<std::collections::HashSet<(String, String, i64, String)>, LedgerError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT kind, key, day_ms, fingerprint FROM day_results WHERE day_ms >= ?1",
            )
            .map_err(db)?;
        let rows = st
            .query_map(params![from_ms], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    /// The kept daily figures of `targets` for the days starting in
    /// `[from, to)`: (target, day start, data), every run's row.
    pub fn link_days(
        &self,
        targets: &[&str],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(String, i64, String)>, LedgerError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT target, day_ms, data FROM link_days
                 WHERE target = ?1 AND day_ms >= ?2 AND day_ms < ?3 ORDER BY day_ms, run_id",
            )
            .map_err(db)?;
        let mut all = Vec::new();
        for t in targets {
            let rows = st
                .query_map(params![t, from_ms, to_ms], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(db)?;
            for row in rows {
                all.push(row.map_err(db)?);
            }
        }
        Ok(all)
    }

    /// Write or (with no text) remove the note on an outage.
    pub fn set_outage_note(
        &mut self,
        n: &super::OutageNote,
        now_ms: i64,
    ) -> Result<(), LedgerError> {
        match &n.note {
            Some(text) => self.conn.execute(
                "INSERT OR REPLACE INTO outage_notes (target, start_ms, end_ms, note, written_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![n.target, n.start_ms, n.end_ms, text, now_ms],
            ),
            // Kept empty (schema 9): a shared record learns of it.
            None => self.conn.execute(
                "UPDATE outage_notes SET note = '', written_ms = ?3 WHERE target = ?1 AND start_ms = ?2",
                params![n.target, n.start_ms, now_ms],
            ),
        }
        .map_err(db)?;
        Ok(())
    }

    /// When `target` next went to a state other than `down` after `at_ms`.
    pub fn left_down_after(&self, target: &str, at_ms: i64) -> Result<Option<i64>, LedgerError> {
        self.conn
            .query_row(
                "SELECT min(at_ms) FROM transitions WHERE target = ?1 AND at_ms > ?2 AND to_state != 'down'",
                params![target, at_ms],
                |r| r.get(0),
            )
            .map_err(db)
    }

    /// Every note on an outage that began before `to_ms`.
    pub fn outage_notes(&self, to_ms: i64) -> Result<Vec<super::OutageNote>, LedgerError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT target, start_ms, end_ms, note FROM outage_notes WHERE start_ms < ?1 AND note <> ''
                 ORDER BY target, start_ms",
            )
            .map_err(db)?;
        let rows = st
            .query_map(params![to_ms], |r| {
                Ok(super::OutageNote {
                    target: r.get(0)?,
                    start_ms: r.get(1)?,
                    end_ms: r.get(2)?,
                    note: Some(r.get(3)?),
                })
            })
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    /// The id of the last transition written (0 when none): a day result
    /// computed now is stale if a later one is dated inside its day.
    pub fn last_transition_id(&self) -> Result<i64, LedgerError> {
        self.conn
            .query_row("SELECT coalesce(max(id), 0) FROM transitions", [], |r| {
                r.get(0)
            })
            .map_err(db)
    }

    /// This file's identity (schema 8 on).
    pub fn journal_id(&self) -> Result<String, LedgerError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = 'journal'", [], |r| {
                r.get(0)
            })
            .map_err(db)
    }

    /// When the first run began.
    pub fn first_run_start(&self) -> Result<Option<i64>, LedgerError> {
        self.conn
            .query_row("SELECT min(started_ms) FROM runs", [], |r| r.get(0))
            .map_err(db)
    }

    /// Drop every kept day result: they are computed again when asked for
    /// (benchmarks start cold with this).
    pub fn drop_day_results(&mut self) -> Result<(), LedgerError> {
        drop_day_results_after(&self.conn, i64::MIN)
    }

    #[cfg(test)]
    pub(crate) fn conn_for_tests(&self) -> &Connection {
        &self.conn
    }

    pub fn count_transitions(&self) -> Result<i64, LedgerError> {
        self.conn
            .query_row("SELECT count(*) FROM transitions", [], |r| r.get(0))
            .map_err(db)
    }

    pub fn last_run(&self) -> Result<Option<RunRow>, LedgerError> {
        self.conn
            .query_row(
                "SELECT id, started_ms, coalesce(stopped_ms, last_seen_ms), clean FROM runs ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok(RunRow {
                        id: r.get(0)?,
                        started_ms: r.get(1)?,
                        end_ms: r.get(2)?,
                        clean: r.get::<_, i64>(3)? != 0,
                    })
                },
            )
            .optional()
            .map_err(db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_ledger_says_to_move_it_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        {
            let mut store = Store::open(&path).unwrap();
            store.begin_run("lab", 0).unwrap();
        }
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len / 3).unwrap();
        drop(f);
        let _ = std::fs::remove_file(dir.path().join("ledger.db-wal"));
        let _ = std::fs::remove_file(dir.path().join("ledger.db-shm"));
        let e = Store::open(&path)
            .err()
            .expect("a truncated ledger is refused");
        assert!(matches!(e, LedgerError::Corrupt { .. }), "{e:?}");
        assert!(e.to_string().contains("move it aside"), "{e}");
        // Half a page header: not a database at all.
        std::fs::write(&path, b"SQLite format 3\0 truncated").unwrap();
        let e = Store::open(&path).err().expect("not a database");
        assert!(e.to_string().contains("move it aside"), "{e}");
    }

    #[test]
    fn an_interrupt_stops_sql_that_would_run_for_ever() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("l.db")).unwrap();
        let handle = store.interrupt_handle();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = done.clone();
        // An interrupt before the statement starts does nothing: repeat
        // until it ended.
        let interrupter = std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                handle.interrupt();
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        let r: Result<i64, _> = store.conn.query_row(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
            [],
            |r| r.get(0),
        );
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        interrupter.join().unwrap();
        assert!(r.is_err(), "{r:?}");
    }
}
