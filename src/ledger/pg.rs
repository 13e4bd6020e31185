//! The shared record in PostgreSQL (`ledger.backend: postgres`).
//!
//! Every record is committed to the agent's own SQLite file first, as with
//! the embedded backend: that is the durability promise, and it holds while
//! the server is down. The shipper (a thread of its own) then copies what
//! the file has and the server lacks, in transactions that move a cursor
//! per file and kind of row together with the rows. Rows are keyed by the
//! file's identity (`meta.journal`, random, made once) and their id in the
//! file, and inserted with `ON CONFLICT`: a batch sent again after a
//! commit whose answer was lost adds nothing. So a server that was down, a
//! connection cut mid-batch or an agent killed mid-copy loses nothing and
//! duplicates nothing; the backlog drains when the server answers again.
//!
//! Several agents ship into one database, each from its own file; their
//! runs say which agent (`runs.agent`) each row came from.
//!
//! Owns: the PostgreSQL schema and the copying. Must not touch: HTTP,
//! probes, states.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::{Client, Transaction};
use rusqlite::{params, Connection, OptionalExtension};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::LedgerError;
use crate::metrics::Metrics;
use crate::model::secret::Secret;

/// The PostgreSQL schema, migration by migration: the same versions as the
/// SQLite file's ([`super::store::MIGRATIONS`]), each the same change in
/// PostgreSQL's words, plus what copying needs (each row's file and id in
/// it; the cursors). Never edit one that has shipped: add a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: runs, transitions, device events.
    "CREATE TABLE runs (
        id BIGSERIAL PRIMARY KEY,
        journal TEXT NOT NULL,
        local_id BIGINT NOT NULL,
        agent TEXT NOT NULL,
        version TEXT NOT NULL,
        started_ms BIGINT NOT NULL,
        last_seen_ms BIGINT NOT NULL,
        stopped_ms BIGINT,
        clean SMALLINT NOT NULL DEFAULT 0,
        UNIQUE (journal, local_id)
    );
    CREATE TABLE transitions (
        id BIGSERIAL PRIMARY KEY,
        run_id BIGINT NOT NULL REFERENCES runs(id),
        local_id BIGINT NOT NULL,
        target TEXT NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        reason TEXT,
        root_cause TEXT,
        UNIQUE (run_id, local_id)
    );
    CREATE INDEX transitions_target_at ON transitions(target, at_ms);
    CREATE INDEX transitions_at ON transitions(at_ms);
    CREATE TABLE device_events (
        id BIGSERIAL PRIMARY KEY,
        run_id BIGINT NOT NULL REFERENCES runs(id),
        local_id BIGINT NOT NULL,
        target TEXT NOT NULL,
        kind TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        detail TEXT,
        UNIQUE (run_id, local_id)
    );
    CREATE INDEX device_events_target_at ON device_events(target, at_ms);",
    // 2: the covering index for timelines and outages.
    "CREATE INDEX transitions_timeline ON transitions(target, at_ms, run_id, to_state, reason);",
    // 3: maintenance windows and the frozen results of closed months.
    "CREATE TABLE maintenance (
        id BIGSERIAL PRIMARY KEY,
        config_id TEXT,
        spec TEXT NOT NULL,
        declared_ms BIGINT NOT NULL,
        withdrawn_ms BIGINT
    );
    CREATE TABLE monthly_results (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        month TEXT NOT NULL,
        computed_ms BIGINT NOT NULL,
        result TEXT NOT NULL,
        PRIMARY KEY (kind, id, month)
    );",
    // 4: results of closed days.
    "CREATE TABLE day_results (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        day_ms BIGINT NOT NULL,
        end_ms BIGINT NOT NULL,
        fingerprint TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (kind, key, day_ms)
    );
    CREATE INDEX day_results_end ON day_results(end_ms);",
    // 5: links' daily figures, one row per link, Oslo day and run.
    "CREATE TABLE link_days (
        target TEXT NOT NULL,
        day_ms BIGINT NOT NULL,
        run_id BIGINT NOT NULL REFERENCES runs(id),
        data TEXT NOT NULL,
        PRIMARY KEY (target, day_ms, run_id)
    );",
    // 6: operators' notes on outages.
    "CREATE TABLE outage_notes (
        target TEXT NOT NULL,
        start_ms BIGINT NOT NULL,
        end_ms BIGINT,
        note TEXT NOT NULL,
        written_ms BIGINT NOT NULL,
        PRIMARY KEY (target, start_ms)
    );",
    // 7: the reason's stable code.
    "ALTER TABLE transitions ADD COLUMN reason_code TEXT;
    DROP INDEX transitions_timeline;
    CREATE INDEX transitions_timeline ON transitions(target, at_ms, run_id, to_state, reason, reason_code);",
    // 8: the SQLite file's identity has no table here (each run names its
    // file); instead, how far each file has been copied, per kind of row.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE shipped (
        journal TEXT NOT NULL,
        kind TEXT NOT NULL,
        through BIGINT NOT NULL,
        PRIMARY KEY (journal, kind)
    );",
    // 9: maintenance windows and outage notes shared: each file's windows
    // as copies keyed like its other rows (their withdrawal updates the
    // copy); a note removed stays as an empty note, the newest write of
    // a note standing whichever agent made it.
    "ALTER TABLE maintenance ADD COLUMN journal TEXT, ADD COLUMN local_id BIGINT;
    CREATE UNIQUE INDEX maintenance_copy ON maintenance(journal, local_id);
    CREATE INDEX outage_notes_written ON outage_notes(written_ms);",
];

/// Held while migrating, so agents starting together migrate once.
const MIGRATION_LOCK: i64 = 0x7574_6b69_6b6b_0001;
/// Rows per kind in one transaction at most.
const BATCH: i64 = 5000;
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How often the shipper looks even when not told of a commit.
const IDLE: Duration = Duration::from_secs(5);

pub(super) fn pg(e: postgres::Error) -> LedgerError {
    // postgres' errors name the server's message or the I/O failure; the
    // connection string (and its password) is never part of them. Their
    // causes say what failed ("error performing TLS handshake" alone does
    // not say that the certificate's issuer is unknown).
    let mut text = format!("PostgreSQL: {e}");
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.ends_with(&c_text) {
            text.push_str(": ");
            text.push_str(&c_text);
        }
        cause = c.source();
    }
    LedgerError::Db(text)
}

fn lite(e: rusqlite::Error) -> LedgerError {
    LedgerError::Db(e.to_string())
}

/// Where the server is, for logs: hosts, port and database, never the
/// user's password.
pub fn describe(url: &Secret) -> String {
    match url.expose().parse::<postgres::Config>() {
        Ok(c) => {
            let hosts: Vec<String> = c
                .get_hosts()
                .iter()
                .map(|h| match h {
                    postgres::config::Host::Tcp(h) => h.clone(),
                    postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .collect();
            let ports: Vec<String> = c.get_ports().iter().map(u16::to_string).collect();
            format!(
                "{}{}{}/{}",
                hosts.join(","),
                if ports.is_empty() { "" } else { ":" },
                ports.join(","),
                c.get_dbname().unwrap_or("")
            )
        }
        Err(_) => "(unreadable connection string)".into(),
    }
}

/// The TLS client for the server: its certificate verified against
/// `ca_pem` or, without one, the system's CAs (`sslmode` in the
/// connection string says whether TLS is used at all).
fn tls(ca_pem: Option<&[u8]>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, LedgerError> {
    let bad = |e: String| LedgerError::Db(format!("ledger.ca_file: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for c in CertificateDer::pem_slice_iter(pem) {
                let c = c.map_err(|e| bad(e.to_string()))?;
                roots.add(c).map_err(|e| bad(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(bad("no PEM certificate in the file".into()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| LedgerError::Db(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A connection string as libpq reads it, `sslmode=verify-ca` and
/// `verify-full` included: the driver knows only `disable`, `prefer` and
/// `require`, and its TLS (rustls) always checks the server's chain and
/// name, so both are `require` here.
pub fn parse_url(url: &str) -> Result<postgres::Config, postgres::Error> {
    let url = url
        .replace("sslmode=verify-full", "sslmode=require")
        .replace("sslmode=verify-ca", "sslmode=require");
    url.parse()
}

/// Connect, with timeouts so a server gone silent fails a write instead of
/// holding it. Call off any async runtime (the client runs its own).
pub fn connect(url: &Secret, ca_pem: Option<&[u8]>) -> Result<Client, LedgerError> {
    let mut config =
        parse_url(url.expose()).map_err(|e| LedgerError::Db(format!("ledger.url: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    config
        .tcp_user_timeout(Duration::from_secs(30))
        .keepalives_idle(Duration::from_secs(30))
        .application_name("utkikk");
    config.connect(tls(ca_pem)?).map_err(pg)
}

/// The schema's version (0: none yet).
pub fn schema_version(client: &mut Client) -> Result<i64, LedgerError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
        .map_err(pg)?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let row = client
        .query_opt("SELECT version FROM schema_version", &[])
        .map_err(pg)?;
    Ok(row.map_or(0, |r| r.get::<_, i64>(0)))
}

/// Bring the schema up to date, one transaction per migration under an
/// advisory lock (another agent migrating at the same time waits, then
/// finds nothing to do). A schema newer than this utkikk knows is refused.
pub fn migrate(client: &mut Client) -> Result<(), LedgerError> {
    let know = MIGRATIONS.len() as i64;
    loop {
        let mut tx = client.transaction().map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(pg)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .map_err(pg)?;
        let have: i64 = tx
            .query_opt("SELECT version FROM schema_version", &[])
            .map_err(pg)?
            .map_or(0, |r| r.get(0));
        if have > know {
            return Err(LedgerError::Db(format!(
                "the PostgreSQL ledger's schema version {have} is newer than this utkikk knows ({know}); upgrade utkikk"
            )));
        }
        let Some(sql) = MIGRATIONS.get(have as usize) else {
            return tx.commit().map_err(pg);
        };
        tx.batch_execute(sql).map_err(pg)?;
        tx.execute("DELETE FROM schema_version", &[]).map_err(pg)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&(have + 1)],
        )
        .map_err(pg)?;
        tx.commit().map_err(pg)?;
    }
}

/// A run as copied: its id in PostgreSQL and what was last sent of it.
#[derive(Debug, Clone, PartialEq)]
struct ShippedRun {
    pg_id: i64,
    last_seen_ms: i64,
    stopped_ms: Option<i64>,
    clean: bool,
}

/// A local run's row.
struct LocalRun {
    id: i64,
    agent: String,
    version: String,
    started_ms: i64,
    last_seen_ms: i64,
    stopped_ms: Option<i64>,
    clean: bool,
}

/// The copying state of one SQLite file into one PostgreSQL database.
pub struct Shipper {
    client: Client,
    journal: String,
    /// Local run id → what the server has of it.
    runs: std::collections::BTreeMap<i64, ShippedRun>,
    /// Cursors: the last local id (rowid for link days) copied.
    transitions: i64,
    events: i64,
    link_days: i64,
    /// What the file's maintenance windows and notes were when last
    /// copied (`None`: not yet by this process): all are copied again
    /// when it changes — they are few, and change in place.
    windows: Option<Fingerprint>,
    notes: Option<Fingerprint>,
    /// The [`DRAINED`] cursor.
    drained: i64,
}

/// Rows, latest time and sum of times of a small table that changes in
/// place: any write changes it.
type Fingerprint = (i64, i64, i64);

/// What one [`Shipper::ship`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shipped {
    /// Rows copied (transitions, device events, link days).
    pub rows: usize,
    /// Transitions and device events in the file still to copy.
    pub backlog: i64,
}

impl Shipper {
    /// Connect and read how far `journal` was copied.
    pub fn open(mut client: Client, journal: &str) -> Result<Shipper, LedgerError> {
        migrate(&mut client)?;
        let mut runs = std::collections::BTreeMap::new();
        for r in client
            .query(
                "SELECT local_id, id, last_seen_ms, stopped_ms, clean FROM runs WHERE journal = $1",
                &[&journal],
            )
            .map_err(pg)?
        {
            runs.insert(
                r.get::<_, i64>(0),
                ShippedRun {
                    pg_id: r.get(1),
                    last_seen_ms: r.get(2),
                    stopped_ms: r.get(3),
                    clean: r.get::<_, i16>(4) != 0,
                },
            );
        }
        let mut cursor = |kind: &str| -> Result<i64, LedgerError> {
            Ok(client
                .query_opt(
                    "SELECT through FROM shipped WHERE journal = $1 AND kind = $2",
                    &[&journal, &kind],
                )
                .map_err(pg)?
                .map_or(0, |r| r.get(0)))
        };
        let transitions = cursor("transitions")?;
        let events = cursor("device_events")?;
        let link_days = cursor("link_days")?;
        let drained = cursor(DRAINED)?;
        Ok(Shipper {
            client,
            journal: journal.to_string(),
            runs,
            transitions,
            events,
            link_days,
            windows: None,
            notes: None,
            drained,
        })
    }

    /// Copy one batch of each kind (and every run that changed) in one
    /// transaction; call again while [`Shipped::backlog`] is above zero.
    pub fn ship(&mut self, local: &Connection) -> Result<Shipped, LedgerError> {
        // Runs first: rows refer to them. The oldest run the server may
        // still lack an end of, and every newer one.
        let from = self
            .runs
            .iter()
            .find(|(_, r)| r.stopped_ms.is_none())
            .map(|(id, _)| *id)
            .unwrap_or_else(|| self.runs.keys().next_back().map_or(0, |id| id + 1));
        let local_runs = read_runs(local, from)?;
        let transitions = read_transitions(local, self.transitions)?;
        let events = read_events(local, self.events)?;
        let link_days = read_link_days(local, self.link_days)?;
        let windows_now = fingerprint(
            local,
            "SELECT count(*), coalesce(max(max(declared_ms, coalesce(withdrawn_ms, 0))), 0),
                    coalesce(total(declared_ms + coalesce(withdrawn_ms, 0)), 0) FROM maintenance",
        )?;
        let notes_now = fingerprint(
            local,
            "SELECT count(*), coalesce(max(written_ms), 0), coalesce(total(written_ms), 0) FROM outage_notes",
        )?;
        let windows = match self.windows == Some(windows_now) {
            true => Vec::new(),
            false => read_all(
                local,
                "SELECT id, config_id, spec, declared_ms, withdrawn_ms FROM maintenance ORDER BY id",
            )?,
        };
        let notes = match self.notes == Some(notes_now) {
            true => Vec::new(),
            false => read_all(
                local,
                "SELECT target, start_ms, end_ms, note, written_ms FROM outage_notes ORDER BY written_ms",
            )?,
        };
        let mut tx = self.client.transaction().map_err(pg)?;
        let mut runs = self.runs.clone();
        for r in &local_runs {
            let want = (r.last_seen_ms, r.stopped_ms, r.clean);
            if runs
                .get(&r.id)
                .is_some_and(|s| (s.last_seen_ms, s.stopped_ms, s.clean) == want)
            {
                continue;
            }
            let pg_id = upsert_run(&mut tx, &self.journal, r)?;
            runs.insert(
                r.id,
                ShippedRun {
                    pg_id,
                    last_seen_ms: r.last_seen_ms,
                    stopped_ms: r.stopped_ms,
                    clean: r.clean,
                },
            );
        }
        let run_of = |local_run: i64| -> Result<i64, LedgerError> {
            runs.get(&local_run).map(|r| r.pg_id).ok_or_else(|| {
                LedgerError::Db(format!(
                    "a row of run {local_run}, which the SQLite file does not list"
                ))
            })
        };
        let mut rows = 0;
        if let Some(last) = transitions.last().map(|t| t.0) {
            let mut cols = TransitionCols::default();
            for t in &transitions {
                cols.push(run_of(t.1)?, t);
            }
            tx.execute(
                "INSERT INTO transitions (run_id, local_id, target, from_state, to_state, at_ms, reason, root_cause, reason_code)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[])
                 ON CONFLICT (run_id, local_id) DO NOTHING",
                &[&cols.run, &cols.id, &cols.target, &cols.from, &cols.to, &cols.at, &cols.reason, &cols.root, &cols.code],
            )
            .map_err(pg)?;
            set_cursor(&mut tx, &self.journal, "transitions", last)?;
            rows += transitions.len();
        }
        if let Some(last) = events.last().map(|e| e.0) {
            let mut run = Vec::with_capacity(events.len());
            for e in &events {
                run.push(run_of(e.1)?);
            }
            let id: Vec<i64> = events.iter().map(|e| e.0).collect();
            let target: Vec<&str> = events.iter().map(|e| e.2.as_str()).collect();
            let kind: Vec<&str> = events.iter().map(|e| e.3.as_str()).collect();
            let at: Vec<i64> = events.iter().map(|e| e.4).collect();
            let detail: Vec<Option<&str>> = events.iter().map(|e| e.5.as_deref()).collect();
            tx.execute(
                "INSERT INTO device_events (run_id, local_id, target, kind, at_ms, detail)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[])
                 ON CONFLICT (run_id, local_id) DO NOTHING",
                &[&run, &id, &target, &kind, &at, &detail],
            )
            .map_err(pg)?;
            set_cursor(&mut tx, &self.journal, "device_events", last)?;
            rows += events.len();
        }
        if let Some(last) = link_days.last().map(|l| l.0) {
            let mut run = Vec::with_capacity(link_days.len());
            for l in &link_days {
                run.push(run_of(l.1)?);
            }
            let target: Vec<&str> = link_days.iter().map(|l| l.2.as_str()).collect();
            let day: Vec<i64> = link_days.iter().map(|l| l.3).collect();
            let data: Vec<&str> = link_days.iter().map(|l| l.4.as_str()).collect();
            // A day's row is replaced as the day goes on (a new rowid each
            // time in the file): the newest stands. Within one batch only
            // the newest of a key is sent (ON CONFLICT cannot touch a row
            // twice in one statement).
            let mut newest: std::collections::HashMap<(&str, i64, i64), usize> =
                std::collections::HashMap::new();
            for i in 0..link_days.len() {
                newest.insert((target[i], day[i], run[i]), i);
            }
            let mut keep: Vec<usize> = newest.into_values().collect();
            keep.sort_unstable();
            let pick = |v: &[i64]| keep.iter().map(|&i| v[i]).collect::<Vec<i64>>();
            let pick_s = |v: &[&str]| keep.iter().map(|&i| v[i].to_string()).collect::<Vec<_>>();
            tx.execute(
                "INSERT INTO link_days (target, day_ms, run_id, data)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[])
                 ON CONFLICT (target, day_ms, run_id) DO UPDATE SET data = EXCLUDED.data",
                &[&pick_s(&target), &pick(&day), &pick(&run), &pick_s(&data)],
            )
            .map_err(pg)?;
            set_cursor(&mut tx, &self.journal, "link_days", last)?;
            rows += link_days.len();
        }
        ship_windows(&mut tx, &self.journal, &windows)?;
        ship_notes(&mut tx, &notes)?;
        tx.commit().map_err(pg)?;
        // Only now: a transaction that failed leaves the cursors as they were.
        self.windows = Some(windows_now);
        self.notes = Some(notes_now);
        self.runs = runs;
        if let Some(t) = transitions.last() {
            self.transitions = t.0;
        }
        if let Some(e) = events.last() {
            self.events = e.0;
        }
        if let Some(l) = link_days.last() {
            self.link_days = l.0;
        }
        // Everything the file had when its runs were read is here now:
        // say through when (see [`super::shared::Reader::settled`]).
        let short = |n: usize| (n as i64) < BATCH;
        if short(transitions.len()) && short(events.len()) && short(link_days.len()) {
            let through = local_runs
                .iter()
                .map(|r| r.stopped_ms.unwrap_or(r.last_seen_ms))
                .max()
                .unwrap_or(0);
            if through > self.drained {
                let mut tx = self.client.transaction().map_err(pg)?;
                set_cursor(&mut tx, &self.journal, DRAINED, through)?;
                tx.commit().map_err(pg)?;
                self.drained = through;
            }
        }
        let backlog = backlog(local, self.transitions, self.events)?;
        Ok(Shipped { rows, backlog })
    }
}

/// The `shipped` kind that says until when a file was copied whole: every
/// row it held when its runs last reached that time is on the server.
pub const DRAINED: &str = "drained";

/// id, config id, spec, declared, withdrawn.
type LocalWindow = (i64, Option<String>, String, i64, Option<i64>);

/// target, start, end, note (empty: removed), written.
type LocalNote = (String, i64, Option<i64>, String, i64);

/// The file's windows as its copies on the server (a withdrawal updates
/// the copy).
fn ship_windows(
    tx: &mut Transaction<'_>,
    journal: &str,
    windows: &[LocalWindow],
) -> Result<(), LedgerError> {
    if windows.is_empty() {
        return Ok(());
    }
    let id: Vec<i64> = windows.iter().map(|w| w.0).collect();
    let config: Vec<Option<&str>> = windows.iter().map(|w| w.1.as_deref()).collect();
    let spec: Vec<&str> = windows.iter().map(|w| w.2.as_str()).collect();
    let declared: Vec<i64> = windows.iter().map(|w| w.3).collect();
    let withdrawn: Vec<Option<i64>> = windows.iter().map(|w| w.4).collect();
    tx.execute(
        "INSERT INTO maintenance (journal, local_id, config_id, spec, declared_ms, withdrawn_ms)
         SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::bigint[])
         ON CONFLICT (journal, local_id) DO UPDATE SET withdrawn_ms = EXCLUDED.withdrawn_ms",
        &[&journal, &id, &config, &spec, &declared, &withdrawn],
    )
    .map_err(pg)?;
    Ok(())
}

/// The file's notes into the shared ones: the newest write of a note
/// stands, whichever agent made it.
fn ship_notes(tx: &mut Transaction<'_>, notes: &[LocalNote]) -> Result<(), LedgerError> {
    // One row per key in a statement: the newest (they come by time).
    let mut newest: std::collections::HashMap<(&str, i64), &LocalNote> = Default::default();
    for n in notes {
        newest.insert((n.0.as_str(), n.1), n);
    }
    if newest.is_empty() {
        return Ok(());
    }
    let rows: Vec<&LocalNote> = newest.into_values().collect();
    let target: Vec<&str> = rows.iter().map(|n| n.0.as_str()).collect();
    let start: Vec<i64> = rows.iter().map(|n| n.1).collect();
    let end: Vec<Option<i64>> = rows.iter().map(|n| n.2).collect();
    let note: Vec<&str> = rows.iter().map(|n| n.3.as_str()).collect();
    let written: Vec<i64> = rows.iter().map(|n| n.4).collect();
    tx.execute(
        "INSERT INTO outage_notes (target, start_ms, end_ms, note, written_ms)
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[])
         ON CONFLICT (target, start_ms) DO UPDATE SET
             end_ms = EXCLUDED.end_ms, note = EXCLUDED.note, written_ms = EXCLUDED.written_ms
         WHERE EXCLUDED.written_ms >= outage_notes.written_ms",
        &[&target, &start, &end, &note, &written],
    )
    .map_err(pg)?;
    Ok(())
}

fn fingerprint(local: &Connection, sql: &str) -> Result<Fingerprint, LedgerError> {
    local
        .query_row(sql, [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, f64>(2)? as i64))
        })
        .map_err(lite)
}

fn read_all<T>(local: &Connection, sql: &str) -> Result<Vec<T>, LedgerError>
where
    T: for<'r> TryFrom<&'r rusqlite::Row<'r>, Error = rusqlite::Error>,
{
    let mut st = local.prepare_cached(sql).map_err(lite)?;
    let rows = st.query_map([], |r| T::try_from(r)).map_err(lite)?;
    rows.collect::<Result<_, _>>().map_err(lite)
}

fn upsert_run(tx: &mut Transaction<'_>, journal: &str, r: &LocalRun) -> Result<i64, LedgerError> {
    let clean = i16::from(r.clean);
    let row = tx
        .query_one(
            "INSERT INTO runs (journal, local_id, agent, version, started_ms, last_seen_ms, stopped_ms, clean)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (journal, local_id) DO UPDATE SET
                 last_seen_ms = GREATEST(runs.last_seen_ms, EXCLUDED.last_seen_ms),
                 stopped_ms = EXCLUDED.stopped_ms,
                 clean = EXCLUDED.clean
             RETURNING id",
            &[
                &journal,
                &r.id,
                &r.agent,
                &r.version,
                &r.started_ms,
                &r.last_seen_ms,
                &r.stopped_ms,
                &clean,
            ],
        )
        .map_err(pg)?;
    Ok(row.get(0))
}

fn set_cursor(
    tx: &mut Transaction<'_>,
    journal: &str,
    kind: &str,
    through: i64,
) -> Result<(), LedgerError> {
    tx.execute(
        "INSERT INTO shipped (journal, kind, through) VALUES ($1, $2, $3)
         ON CONFLICT (journal, kind) DO UPDATE SET through = GREATEST(shipped.through, EXCLUDED.through)",
        &[&journal, &kind, &through],
    )
    .map_err(pg)?;
    Ok(())
}

#[derive(Default)]
struct TransitionCols<'a> {
    run: Vec<i64>,
    id: Vec<i64>,
    target: Vec<&'a str>,
    from: Vec<&'a str>,
    to: Vec<&'a str>,
    at: Vec<i64>,
    reason: Vec<Option<&'a str>>,
    root: Vec<Option<&'a str>>,
    code: Vec<Option<&'a str>>,
}

/// A local transition: id, run, target, from, to, at, reason, root cause,
/// reason code.
type LocalTransition = (
    i64,
    i64,
    String,
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
);

impl<'a> TransitionCols<'a> {
    fn push(&mut self, run: i64, t: &'a LocalTransition) {
        self.run.push(run);
        self.id.push(t.0);
        self.target.push(&t.2);
        self.from.push(&t.3);
        self.to.push(&t.4);
        self.at.push(t.5);
        self.reason.push(t.6.as_deref());
        self.root.push(t.7.as_deref());
        self.code.push(t.8.as_deref());
    }
}

fn read_runs(local: &Connection, from: i64) -> Result<Vec<LocalRun>, LedgerError> {
    let mut st = local
        .prepare_cached(
            "SELECT id, agent, version, started_ms, last_seen_ms, stopped_ms, clean FROM runs
             WHERE id >= ?1 ORDER BY id",
        )
        .map_err(lite)?;
    let rows = st
        .query_map(params![from], |r| {
            Ok(LocalRun {
                id: r.get(0)?,
                agent: r.get(1)?,
                version: r.get(2)?,
                started_ms: r.get(3)?,
                last_seen_ms: r.get(4)?,
                stopped_ms: r.get(5)?,
                clean: r.get::<_, i64>(6)? != 0,
            })
        })
        .map_err(lite)?;
    rows.collect::<Result<_, _>>().map_err(lite)
}

/// Up to [`BATCH`] rows of `sql` (`… WHERE id > ?1 ORDER BY id LIMIT ?2`)
/// after the cursor `after`, each as a tuple of its columns.
fn read_after<T>(local: &Connection, sql: &str, after: i64) -> Result<Vec<T>, LedgerError>
where
    T: for<'r> TryFrom<&'r rusqlite::Row<'r>, Error = rusqlite::Error>,
{
    let mut st = local.prepare_cached(sql).map_err(lite)?;
    let rows = st
        .query_map(params![after, BATCH], |r| T::try_from(r))
        .map_err(lite)?;
    rows.collect::<Result<_, _>>().map_err(lite)
}

fn read_transitions(local: &Connection, after: i64) -> Result<Vec<LocalTransition>, LedgerError> {
    read_after(
        local,
        "SELECT id, run_id, target, from_state, to_state, at_ms, reason, root_cause, reason_code
         FROM transitions WHERE id > ?1 ORDER BY id LIMIT ?2",
        after,
    )
}

/// id, run, target, kind, at, detail.
type LocalEvent = (i64, i64, String, String, i64, Option<String>);

fn read_events(local: &Connection, after: i64) -> Result<Vec<LocalEvent>, LedgerError> {
    read_after(
        local,
        "SELECT id, run_id, target, kind, at_ms, detail FROM device_events
         WHERE id > ?1 ORDER BY id LIMIT ?2",
        after,
    )
}

/// rowid, run, target, day, data.
type LocalLinkDay = (i64, i64, String, i64, String);

fn read_link_days(local: &Connection, after: i64) -> Result<Vec<LocalLinkDay>, LedgerError> {
    read_after(
        local,
        "SELECT rowid, run_id, target, day_ms, data FROM link_days
         WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
        after,
    )
}

/// Transitions and device events after the cursors.
fn backlog(local: &Connection, transitions: i64, events: i64) -> Result<i64, LedgerError> {
    local
        .query_row(
            "SELECT (SELECT count(*) FROM transitions WHERE id > ?1)
                  + (SELECT count(*) FROM device_events WHERE id > ?2)",
            params![transitions, events],
            |r| r.get(0),
        )
        .map_err(lite)
}

/// The file's identity, once the writer has made the schema current.
fn journal_of(local: &Connection) -> Result<Option<String>, LedgerError> {
    local
        .query_row("SELECT value FROM meta WHERE key = 'journal'", [], |r| {
            r.get(0)
        })
        .optional()
        .or_else(|e| match e {
            // No meta table yet: the writer has not migrated the file.
            rusqlite::Error::SqliteFailure(_, Some(m)) if m.contains("no such table") => Ok(None),
            e => Err(e),
        })
        .map_err(lite)
}

/// What wakes the shipping thread.
pub(super) enum Wake {
    /// The writer committed: look now.
    Committed,
    /// The agent stops: copy what can be copied at once, then end.
    Stop,
}

/// The shipping thread: copies `path` into the server whenever the writer
/// commits (and every few seconds), retrying with backoff while it cannot.
pub(super) struct Thread {
    pub path: PathBuf,
    pub url: Secret,
    pub ca_pem: Option<Vec<u8>>,
    pub metrics: Metrics,
}

impl Thread {
    pub fn run(self, wake: Receiver<Wake>) {
        let server = describe(&self.url);
        let mut shipper: Option<Shipper> = None;
        let mut failing: Option<LedgerError> = None;
        let mut backoff = RETRY_MIN;
        let mut retry_at: Option<Instant> = None;
        let mut local: Option<Connection> = None;
        loop {
            let wait = retry_at.map_or(IDLE, |r| r.saturating_duration_since(Instant::now()));
            let stop = match wake.recv_timeout(wait) {
                Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => true,
                Ok(Wake::Committed) | Err(RecvTimeoutError::Timeout) => false,
            };
            // Commits come often: one pass covers all of them.
            while let Ok(w) = wake.try_recv() {
                if matches!(w, Wake::Stop) {
                    break;
                }
            }
            // At stop, one attempt whatever the backoff said: the server
            // may be back. The agent waits for it only briefly
            // (`SHIP_AT_STOP`); what does not arrive, the next start copies.
            if !stop && retry_at.is_some_and(|r| Instant::now() < r) {
                continue;
            }
            match self.pass(&mut shipper, &mut local) {
                Ok(()) => {
                    if failing.take().is_some() {
                        tracing::info!(%server, "ledger: copying to PostgreSQL again; nothing was lost");
                    }
                    backoff = RETRY_MIN;
                    retry_at = None;
                }
                Err(e) => {
                    self.metrics.ledger_ship_error();
                    if failing.as_ref() != Some(&e) {
                        tracing::error!(%server, "ledger: cannot copy to PostgreSQL ({e}); records stay in the SQLite file and are copied when it answers");
                        failing = Some(e);
                    }
                    // A failed transaction or a broken connection: begin
                    // again from what the server says it has.
                    shipper = None;
                    self.metrics.set_ledger_ship_state(-1, false);
                    retry_at = Some(Instant::now() + backoff);
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
            if stop {
                return;
            }
        }
    }

    /// Connect if needed, then copy until caught up.
    fn pass(
        &self,
        shipper: &mut Option<Shipper>,
        local: &mut Option<Connection>,
    ) -> Result<(), LedgerError> {
        if local.is_none() {
            if !self.path.exists() {
                return Ok(());
            }
            *local = Some(super::store::read_only(&self.path)?);
        }
        let Some(conn) = local.as_ref() else {
            return Ok(());
        };
        let Some(journal) = journal_of(conn)? else {
            return Ok(());
        };
        if shipper.is_none() {
            let client = connect(&self.url, self.ca_pem.as_deref())?;
            *shipper = Some(Shipper::open(client, &journal)?);
            tracing::info!(server = %describe(&self.url), "ledger: copying to PostgreSQL");
        }
        let Some(s) = shipper.as_mut() else {
            return Ok(());
        };
        loop {
            let done = s.ship(conn)?;
            self.metrics.ledger_shipped(done.rows);
            self.metrics.set_ledger_ship_state(done.backlog, true);
            if done.rows == 0 || done.backlog == 0 {
                return Ok(());
            }
        }
    }
}
