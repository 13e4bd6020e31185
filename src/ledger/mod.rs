//! The availability ledger: every state transition and device event, and
//! the agent's own runs, in SQLite (`ledger.db` in the data directory).
//!
//! Writes happen on a thread of their own, never on the async runtime's
//! workers. [`Ledger::record`] only queues: it cannot block or fail. The
//! writer commits what is queued in one transaction (WAL,
//! `synchronous=FULL`), together with a heartbeat that moves the run's
//! last-seen time, so after a crash the time from the last sign of life to
//! the next start is a gap, `unmonitored`. When the disk is full, read-only
//! or the file cannot be opened, records stay queued, the error is counted
//! (`utkikk_ledger_write_errors_total`) and logged once per change, and the
//! write is retried with backoff: nothing acknowledged is lost, and probing
//! goes on.
//!
//! Owns: the database file. Must not touch: HTTP, probes, states.

pub mod backup;
pub mod pg;
pub mod shared;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::maintenance::{self, Origin, Spec, Window};
use crate::metrics::Metrics;
use crate::model::Transition;
pub use store::Store;

/// File name inside the data directory.
pub const FILE_NAME: &str = "ledger.db";
/// How often the run's last-seen time is written when nothing else is.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Records per transaction at most.
const BATCH: usize = 5000;
/// How long a stop waits for the run's end to reach PostgreSQL.
const SHIP_AT_STOP: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger database error: {0}")]
    Db(String),
    #[error("cannot create {path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("ledger {path} is damaged ({detail}); move it aside (keep it for recovery: `utkikk ledger check` and sqlite3's .recover read what is left) and restart to begin a new one")]
    Corrupt { path: PathBuf, detail: String },
    #[error("the ledger writer has stopped")]
    Stopped,
    #[error("the query was stopped: no one waits for its answer any more")]
    Cancelled,
}

/// What the ledger stores.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Transition(Transition),
    Reboot {
        target: String,
        at: DateTime<Utc>,
        uptime_seconds: f64,
    },
    /// The result of a closed month (JSON), kept as first computed.
    Frozen {
        kind: String,
        id: String,
        month: String,
        result: String,
    },
    /// A closed day's result (JSON), a cache of what its transitions give:
    /// kept only while no transition dated inside the day is written after
    /// `through_id`, and dropped when one is.
    Day {
        kind: String,
        key: String,
        day: crate::time::interval::Interval,
        fingerprint: String,
        through_id: i64,
        data: String,
    },
    /// A link's figures for an Oslo day as this run saw them so far
    /// ([`crate::linkstats::LinkStats`] JSON), replacing this run's
    /// earlier row of the day. Not counted as a record written: it is a
    /// running summary, written again as the day goes on.
    LinkDay {
        target: String,
        day_ms: i64,
        data: String,
    },
}

/// An operator's note on an unplanned outage, which reports show beside
/// it: keyed by the root cause and the outage's start. `note: None`
/// removes it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutageNote {
    pub target: String,
    pub start_ms: i64,
    /// The outage's end when the note was written; `None` while it went on.
    pub end_ms: Option<i64>,
    pub note: Option<String>,
}

/// A change to the maintenance windows asked for through the API.
#[derive(Debug, Clone)]
pub enum MaintenanceOp {
    Declare(Spec),
    Withdraw(i64),
}

/// What came of a [`MaintenanceOp`].
#[derive(Debug, Clone, PartialEq)]
pub enum MaintenanceDone {
    Declared(Window),
    Withdrawn(Window),
    NotFound,
    /// Config windows change with the config, not through the API.
    FromConfig(String),
    /// Already withdrawn, or over.
    AlreadyOver,
}

/// The maintenance windows as last read from (or, while the file cannot
/// be written, meant for) the ledger.
pub type Windows = Arc<Vec<Window>>;

enum Cmd {
    Record(Record),
    /// The config's windows (at start and on every reload).
    ConfigWindows(Vec<(String, Spec)>),
    Maintenance(
        MaintenanceOp,
        mpsc::Sender<Result<MaintenanceDone, LedgerError>>,
    ),
    Note(OutageNote, mpsc::Sender<Result<(), LedgerError>>),
    /// Commit everything queued, then answer.
    Flush(mpsc::Sender<Result<(), LedgerError>>),
    /// Commit, mark the run cleanly stopped, and end the thread.
    Stop(mpsc::Sender<Result<(), LedgerError>>),
}

/// Handle to the ledger writer. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    tx: mpsc::Sender<Cmd>,
    path: PathBuf,
    /// This run's id in the ledger, 0 until the file is open.
    run_id: Arc<AtomicI64>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
    windows: Arc<RwLock<Windows>>,
    /// The last write failed (records are queued, retried).
    failing: Arc<AtomicBool>,
    /// The transitions queued while writes fail (empty otherwise).
    unwritten: Arc<arc_swap::ArcSwap<Vec<Transition>>>,
    /// The data directory's lock, held while the process lives.
    _lock: Option<Arc<std::fs::File>>,
    /// The thread copying the file to PostgreSQL (`ledger.backend: postgres`).
    shipper: Arc<Mutex<Option<Shipper>>>,
    /// The record shared with other agents, for readers (`ledger.backend:
    /// postgres`).
    shared: Option<shared::SharedRecord>,
}

/// The PostgreSQL shipper's thread and the channel it says it is done on.
type Shipper = (std::thread::JoinHandle<()>, mpsc::Receiver<()>);

/// The lock file in the data directory: one agent per ledger.
pub const LOCK_NAME: &str = "utkikk.lock";

/// Take the data directory's exclusive lock (`flock`), writing our PID in
/// the file. Another agent holding it is an error naming its PID; a
/// directory that cannot be created or a lock file that cannot be opened
/// is left to the writer to report (it retries), so `None`.
fn lock_data_dir(data_dir: &Path) -> std::io::Result<Option<std::fs::File>> {
    use std::io::{Read, Seek, Write};
    if let Err(e) = std::fs::create_dir_all(data_dir) {
        tracing::warn!(dir = %data_dir.display(), "cannot create the data directory ({e}); not locked");
        return Ok(None);
    }
    let path = data_dir.join(LOCK_NAME);
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(file = %path.display(), "cannot open the lock file ({e}); not locked");
            return Ok(None);
        }
    };
    use rustix::fs::{flock, FlockOperation};
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            file.set_len(0)?;
            file.rewind()?;
            writeln!(file, "{}", std::process::id())?;
            file.sync_all()?;
            Ok(Some(file))
        }
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            Err(std::io::Error::other(format!(
                "another utkikk{} is running on the data directory {} (it holds {}); two agents on one ledger would corrupt the record",
                if pid.is_empty() {
                    String::new()
                } else {
                    format!(" (PID {pid})")
                },
                data_dir.display(),
                path.display()
            )))
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), "cannot lock ({e}); not locked");
            Ok(None)
        }
    }
}

impl Ledger {
    /// Start the writer for `data_dir/ledger.db`. The database is opened on
    /// the writer thread (and opened again until it works); `started` is
    /// this run's start, recorded as such even if the file opens later.
    pub fn start(
        data_dir: &Path,
        agent: &str,
        started: DateTime<Utc>,
        metrics: Metrics,
        config_windows: Vec<(String, Spec)>,
        backend: &crate::inventory::LedgerBackend,
    ) -> std::io::Result<Ledger> {
        let lock = lock_data_dir(data_dir)?;
        let path = data_dir.join(FILE_NAME);
        let (ship_tx, shipper) = match backend {
            crate::inventory::LedgerBackend::Sqlite => (None, None),
            crate::inventory::LedgerBackend::Postgres { url, ca_pem } => {
                let (tx, rx) = mpsc::sync_channel(1);
                let thread = pg::Thread {
                    path: path.clone(),
                    url: url.clone(),
                    ca_pem: ca_pem.clone(),
                    metrics: metrics.clone(),
                };
                let (done_tx, done_rx) = mpsc::channel();
                let handle = std::thread::Builder::new()
                    .name("utkikk-ledger-pg".into())
                    .spawn(move || {
                        thread.run(rx);
                        let _ = done_tx.send(());
                    })?;
                (Some(tx), Some((handle, done_rx)))
            }
        };
        let (tx, rx) = mpsc::channel();
        let run_id = Arc::new(AtomicI64::new(0));
        // Until the file is read, the config's windows count from now.
        let mut initial = Vec::new();
        apply_config_in_memory(&mut initial, &config_windows, started.timestamp_millis());
        let windows = Arc::new(RwLock::new(Arc::new(initial)));
        let failing = Arc::new(AtomicBool::new(false));
        let unwritten: Arc<arc_swap::ArcSwap<Vec<Transition>>> = Arc::default();
        let mut writer = Writer {
            failing_shared: failing.clone(),
            unwritten_shared: unwritten.clone(),
            windows: windows.clone(),
            config_windows,
            windows_dirty: true,
            run_id_shared: run_id.clone(),
            path: path.clone(),
            agent: agent.to_string(),
            started_ms: started.timestamp_millis(),
            store: None,
            run_id: None,
            pending: Vec::new(),
            metrics,
            failing: None,
            retry_at: None,
            backoff: RETRY_MIN,
            ship: ship_tx,
        };
        let thread = std::thread::Builder::new()
            .name("utkikk-ledger".into())
            .spawn(move || writer.run(rx))?;
        Ok(Ledger {
            tx,
            path,
            run_id,
            thread: Arc::new(Mutex::new(Some(thread))),
            windows,
            failing,
            unwritten,
            _lock: lock.map(Arc::new),
            shipper: Arc::new(Mutex::new(shipper)),
            shared: match backend {
                crate::inventory::LedgerBackend::Sqlite => None,
                crate::inventory::LedgerBackend::Postgres { url, ca_pem } => {
                    Some(shared::SharedRecord::new(url.clone(), ca_pem.clone()))
                }
            },
        })
    }

    /// The record shared with other agents, when the ledger is shared.
    pub fn shared(&self) -> Option<&shared::SharedRecord> {
        self.shared.as_ref()
    }

    /// Every maintenance window known (withdrawn ones too).
    pub fn maintenance(&self) -> Windows {
        self.windows
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The config's windows changed (a reload): bring the ledger in line.
    pub fn set_config_windows(&self, windows: Vec<(String, Spec)>) {
        let _ = self.tx.send(Cmd::ConfigWindows(windows));
    }

    /// Declare or withdraw a window; waits for the ledger write. Call off
    /// the async runtime's workers.
    pub fn change_maintenance(&self, op: MaintenanceOp) -> Result<MaintenanceDone, LedgerError> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(Cmd::Maintenance(op, tx))
            .map_err(|_| LedgerError::Stopped)?;
        rx.recv().map_err(|_| LedgerError::Stopped)?
    }

    /// Write (or remove) an outage note; waits for the ledger write. Call
    /// off the async runtime's workers.
    pub fn set_outage_note(&self, note: OutageNote) -> Result<(), LedgerError> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(Cmd::Note(note, tx))
            .map_err(|_| LedgerError::Stopped)?;
        rx.recv().map_err(|_| LedgerError::Stopped)?
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This run's id in the ledger, once the file is open.
    pub fn current_run(&self) -> Option<i64> {
        Some(self.run_id.load(Ordering::SeqCst)).filter(|id| *id > 0)
    }

    /// Whether the last write failed (the disk full or read-only, …):
    /// records wait in memory, so optional ones are better not queued.
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::SeqCst)
    }

    /// The transitions waiting in memory because the ledger cannot be
    /// written now (empty while it can): answers from the file lack them.
    pub fn unwritten(&self) -> Arc<Vec<Transition>> {
        self.unwritten.load_full()
    }

    /// Queue a record. Never blocks; never fails while the writer runs.
    pub fn record(&self, r: Record) {
        // Only fails after `stop`: nothing to write to any more.
        let _ = self.tx.send(Cmd::Record(r));
    }

    /// Wait until everything queued so far is committed (or the write failed).
    pub fn flush(&self) -> Result<(), LedgerError> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(Cmd::Flush(tx))
            .map_err(|_| LedgerError::Stopped)?;
        rx.recv().map_err(|_| LedgerError::Stopped)?
    }

    /// Commit what is queued, record a clean stop, end the writer thread.
    pub fn stop(&self) -> Result<(), LedgerError> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(Cmd::Stop(tx))
            .map_err(|_| LedgerError::Stopped)?;
        let r = rx.recv().map_err(|_| LedgerError::Stopped)?;
        if let Some(t) = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = t.join();
        }
        // The writer told the shipper to stop after its last commit: it
        // copies the run's end if the server answers at once. A server
        // gone silent does not hold up the exit: the file keeps it all,
        // and the next start copies the rest.
        if let Some((t, done)) = self
            .shipper
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            if done.recv_timeout(SHIP_AT_STOP).is_ok() {
                let _ = t.join();
            } else {
                tracing::warn!(
                    "ledger: the last records were not copied to PostgreSQL within {SHIP_AT_STOP:?}; the next start copies them"
                );
            }
        }
        r
    }
}

/// Bring in-memory windows in line with the config (while the ledger
/// cannot be written): the same rule as the ledger's. Windows only in
/// memory have negative ids.
fn apply_config_in_memory(windows: &mut Vec<Window>, config: &[(String, Spec)], now_ms: i64) {
    let (withdraw, declare) = maintenance::config_changes(windows, config, now_ms);
    for w in windows.iter_mut().filter(|w| withdraw.contains(&w.id)) {
        w.withdrawn_ms = Some(now_ms);
    }
    for (id, spec) in declare {
        // Not in the ledger yet: a negative id of its own, so a later
        // change withdraws exactly this one.
        let temp = -(windows.len() as i64) - 1;
        windows.push(Window {
            id: temp,
            origin: Origin::Config(id.clone()),
            spec: spec.clone(),
            declared_ms: now_ms,
            withdrawn_ms: None,
        });
    }
}

struct Writer {
    windows: Arc<RwLock<Windows>>,
    config_windows: Vec<(String, Spec)>,
    /// The ledger's config windows need syncing, or the book re-reading.
    windows_dirty: bool,
    run_id_shared: Arc<AtomicI64>,
    path: PathBuf,
    agent: String,
    started_ms: i64,
    store: Option<Store>,
    run_id: Option<i64>,
    pending: Vec<Record>,
    metrics: Metrics,
    /// The error of the failing state, to log a change only once.
    failing: Option<LedgerError>,
    failing_shared: Arc<AtomicBool>,
    unwritten_shared: Arc<arc_swap::ArcSwap<Vec<Transition>>>,
    retry_at: Option<Instant>,
    backoff: Duration,
    /// Tells the PostgreSQL shipper of each commit (and of the stop).
    ship: Option<mpsc::SyncSender<pg::Wake>>,
}

impl Writer {
    fn run(&mut self, rx: mpsc::Receiver<Cmd>) {
        let mut next_heartbeat = Instant::now();
        loop {
            let now = Instant::now();
            let wake = self
                .retry_at
                .map_or(next_heartbeat, |r| r.min(next_heartbeat));
            let cmd = rx.recv_timeout(wake.saturating_duration_since(now));
            let mut reply = None;
            let mut stop = false;
            match cmd {
                Ok(Cmd::Record(r)) => {
                    self.pending.push(r);
                    // Take whatever else is queued: one transaction for all.
                    while self.pending.len() < BATCH {
                        match rx.try_recv() {
                            Ok(Cmd::Record(r)) => self.pending.push(r),
                            Ok(Cmd::ConfigWindows(w)) => self.config_changed(w),
                            Ok(Cmd::Maintenance(op, tx)) => {
                                let r = self.maintenance(op);
                                let _ = tx.send(r);
                            }
                            Ok(Cmd::Note(note, tx)) => {
                                let _ = tx.send(self.note(&note));
                            }
                            Ok(Cmd::Flush(tx)) => {
                                reply = Some(tx);
                                break;
                            }
                            Ok(Cmd::Stop(tx)) => {
                                reply = Some(tx);
                                stop = true;
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                }
                Ok(Cmd::ConfigWindows(w)) => self.config_changed(w),
                Ok(Cmd::Maintenance(op, tx)) => {
                    let r = self.maintenance(op);
                    let _ = tx.send(r);
                }
                Ok(Cmd::Note(note, tx)) => {
                    let _ = tx.send(self.note(&note));
                }
                Ok(Cmd::Flush(tx)) => reply = Some(tx),
                Ok(Cmd::Stop(tx)) => {
                    reply = Some(tx);
                    stop = true;
                }
                Err(RecvTimeoutError::Timeout) => {}
                // Every handle dropped without stop: write what we have.
                Err(RecvTimeoutError::Disconnected) => stop = true,
            }
            self.metrics.set_ledger_pending(self.pending.len());
            let heartbeat_due = Instant::now() >= next_heartbeat;
            let retry_due = self.retry_at.is_none_or(|r| Instant::now() >= r);
            let must = reply.is_some() || stop;
            let work = !self.pending.is_empty() || heartbeat_due || self.windows_dirty;
            let result = if must || (retry_due && work) {
                let r = self.write();
                if r.is_ok() && heartbeat_due {
                    next_heartbeat = Instant::now() + HEARTBEAT;
                }
                Some(r)
            } else {
                None
            };
            if stop {
                let r = match (result, self.store.as_mut(), self.run_id) {
                    (Some(Ok(())), Some(store), Some(id)) => {
                        store.end_run(id, Utc::now().timestamp_millis())
                    }
                    (Some(Err(e)), _, _) => Err(e),
                    _ => Err(LedgerError::Stopped),
                };
                if let Err(e) = &r {
                    tracing::error!(
                        pending = self.pending.len(),
                        "ledger: stopping with records not written: {e}"
                    );
                }
                if let Some(ship) = self.ship.take() {
                    // With its one slot full, the sender dropped here says
                    // the same once that wake is taken.
                    let _ = ship.try_send(pg::Wake::Stop);
                }
                if let Some(tx) = reply {
                    let _ = tx.send(r);
                }
                return;
            }
            if let (Some(tx), Some(r)) = (reply, result) {
                let _ = tx.send(r);
            }
            if heartbeat_due && self.retry_at.is_some_and(|r| Instant::now() < r) {
                next_heartbeat = Instant::now() + HEARTBEAT;
            }
        }
    }

    fn config_changed(&mut self, windows: Vec<(String, Spec)>) {
        self.config_windows = windows;
        self.windows_dirty = true;
        if self.write().is_err() {
            // Not in the ledger yet: alerts still go quiet meanwhile.
            let mut book = self.windows_book().as_ref().clone();
            apply_config_in_memory(
                &mut book,
                &self.config_windows,
                Utc::now().timestamp_millis(),
            );
            self.set_book(book);
        }
    }

    fn windows_book(&self) -> Windows {
        self.windows
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_book(&self, windows: Vec<Window>) {
        *self.windows.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(windows);
    }

    fn note(&mut self, note: &OutageNote) -> Result<(), LedgerError> {
        self.write()?;
        let store = self.store.as_mut().ok_or(LedgerError::Stopped)?;
        store.set_outage_note(note, Utc::now().timestamp_millis())
    }

    fn maintenance(&mut self, op: MaintenanceOp) -> Result<MaintenanceDone, LedgerError> {
        self.write()?;
        let store = self.store.as_mut().ok_or(LedgerError::Stopped)?;
        let now = Utc::now().timestamp_millis();
        let done = match op {
            MaintenanceOp::Declare(spec) => {
                let id = store.declare_window(&Origin::Api, &spec, now)?;
                MaintenanceDone::Declared(Window {
                    id,
                    origin: Origin::Api,
                    spec,
                    declared_ms: now,
                    withdrawn_ms: None,
                })
            }
            MaintenanceOp::Withdraw(id) => {
                let windows = store.maintenance_windows()?;
                match windows.into_iter().find(|w| w.id == id) {
                    None => MaintenanceDone::NotFound,
                    Some(Window {
                        origin: Origin::Config(c),
                        ..
                    }) => MaintenanceDone::FromConfig(c),
                    Some(w) if !w.is_current(now) => MaintenanceDone::AlreadyOver,
                    Some(mut w) => {
                        store.withdraw_window(id, now)?;
                        w.withdrawn_ms = Some(now);
                        MaintenanceDone::Withdrawn(w)
                    }
                }
            }
        };
        let all = store.maintenance_windows()?;
        self.set_book(all);
        Ok(done)
    }

    /// Open if needed, then commit everything pending with a heartbeat.
    fn write(&mut self) -> Result<(), LedgerError> {
        let r = self.try_write();
        match &r {
            Ok(()) => {
                if self.failing.take().is_some() {
                    tracing::info!(path = %self.path.display(), "ledger: writing again; nothing was lost");
                }
                self.retry_at = None;
                self.backoff = RETRY_MIN;
                self.metrics.set_ledger_pending(0);
                self.failing_shared.store(false, Ordering::SeqCst);
                if !self.unwritten_shared.load().is_empty() {
                    self.unwritten_shared.store(Arc::default());
                }
            }
            Err(e) => {
                self.metrics.ledger_write_error();
                self.unwritten_shared.store(Arc::new(
                    self.pending
                        .iter()
                        .filter_map(|r| match r {
                            Record::Transition(t) => Some(t.clone()),
                            _ => None,
                        })
                        .collect(),
                ));
                self.failing_shared.store(true, Ordering::SeqCst);
                if self.failing.as_ref() != Some(e) {
                    tracing::error!(
                        path = %self.path.display(),
                        pending = self.pending.len(),
                        "ledger: cannot write ({e}); records stay queued and the write is retried"
                    );
                    self.failing = Some(e.clone());
                }
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(RETRY_MAX);
                self.metrics.set_ledger_pending(self.pending.len());
            }
        }
        r
    }

    fn try_write(&mut self) -> Result<(), LedgerError> {
        if self.store.is_none() {
            let store = Store::open(&self.path)?;
            self.store = Some(store);
        }
        let store = self.store.as_mut().ok_or(LedgerError::Stopped)?;
        if self.run_id.is_none() {
            let id = store.begin_run(&self.agent, self.started_ms)?;
            tracing::info!(path = %self.path.display(), run = id, "ledger open");
            self.run_id = Some(id);
            self.run_id_shared.store(id, Ordering::SeqCst);
        }
        let run_id = self.run_id.ok_or(LedgerError::Stopped)?;
        let now = Utc::now().timestamp_millis();
        if let Err(e) = store.write(run_id, &self.pending, now) {
            // A broken connection (file removed, disk gone) is reopened next time.
            if matches!(e, LedgerError::Db(_)) && !self.path.exists() {
                self.store = None;
            }
            return Err(e);
        }
        let n = self
            .pending
            .iter()
            .filter(|r| !matches!(r, Record::LinkDay { .. }))
            .count();
        self.pending.clear();
        self.metrics.ledger_written(n);
        if let Some(ship) = &self.ship {
            // A wake already waiting covers this commit too.
            let _ = ship.try_send(pg::Wake::Committed);
        }
        if self.windows_dirty {
            store.sync_config_windows(&self.config_windows, now)?;
            let all = store.maintenance_windows()?;
            self.set_book(all);
            self.windows_dirty = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maintenance::{Category, Recurrence};

    fn spec(target: &str) -> Spec {
        Spec {
            targets: vec![target.into()],
            category: Category::PlannedChange,
            note: None,
            schedule: Recurrence::Once {
                start_ms: 0,
                end_ms: 10,
            },
        }
    }

    #[test]
    fn in_memory_config_windows_change_one_by_one() {
        let mut windows = Vec::new();
        let a = ("a".to_string(), spec("sw"));
        let b = ("b".to_string(), spec("fw"));
        apply_config_in_memory(&mut windows, &[a.clone(), b.clone()], 100);
        assert_eq!(windows.len(), 2);
        assert!(windows.iter().all(|w| w.id < 0));
        // b changes: only b is withdrawn and declared again; a stays as it was.
        let b2 = ("b".to_string(), spec("core"));
        apply_config_in_memory(&mut windows, &[a, b2], 200);
        let live: Vec<(&Origin, i64)> = windows
            .iter()
            .filter(|w| w.withdrawn_ms.is_none())
            .map(|w| (&w.origin, w.declared_ms))
            .collect();
        assert_eq!(
            live,
            [
                (&Origin::Config("a".into()), 100),
                (&Origin::Config("b".into()), 200)
            ]
        );
    }
}
