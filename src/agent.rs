//! The running agent: wiring and reload. It starts the ledger, the ICMP
//! sockets and the probe runtime, the live-state owner
//! ([`crate::live`]) with its scheduler, and the background jobs
//! ([`crate::jobs`]); it swaps the whole configuration on reload.
//!
//! [`Agent`] is a cheap `Clone` handle. It holds no live state of its own:
//! readers take the owner's snapshot.
//!
//! ICMP echoes are paced by the engine on a thread of its own
//! (`utkikk-icmp`, waiting in one epoll); the live-state owner and the
//! engine's name lookups run on the probe runtime (`utkikk-probe`, one
//! thread, current-thread tokio); SNMP polls on the main runtime. A long
//! `/metrics` encode or a reload never delays the thread that sees the
//! echo replies.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::Utc;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::{self, ConfigError};
use crate::inventory::Inventory;
use crate::ledger::Ledger;
use crate::live::{Live, Parts, Snapshot, OBSERVATION_QUEUE};
use crate::metrics::Metrics;
use crate::probe::icmp::Engine;
use crate::probe::FailureReason;
use crate::schedule::Scheduler;

pub use crate::live::Event;

/// Transitions kept for slow subscribers before they start missing some.
const TRANSITION_BUFFER: usize = 4096;

#[derive(Clone)]
pub struct Agent {
    shared: Arc<Shared>,
}

struct Shared {
    config_path: PathBuf,
    live: Live,
    metrics: Metrics,
    events: broadcast::Sender<Event>,
    ready: AtomicBool,
    /// Ends the probe runtime's thread when sent (or dropped).
    probe_runtime_stop: Mutex<Option<oneshot::Sender<()>>>,
    ledger: Ledger,
    data_dir_override: Option<PathBuf>,
    /// Serializes reloads (SIGHUP and POST /-/reload may race), so the
    /// last file read is the one that runs. Nothing on the probe path
    /// takes it.
    reloading: Mutex<()>,
    /// When the last reload over HTTP began (ms): they are rate-limited.
    http_reload_at: std::sync::atomic::AtomicI64,
    /// Ledger queries for the API run at most this many at once.
    ledger_queries: Arc<tokio::sync::Semaphore>,
    jobs: CancellationToken,
}

/// API ledger queries that may run at once: one per core of the small
/// box the agent is meant for, so probing keeps its share.
pub const MAX_LEDGER_QUERIES: usize = 2;

impl Agent {
    /// Start the probe runtime, open the ICMP sockets and start probing
    /// `inventory`. Fails only if the probe thread cannot be started.
    /// `data_dir` (from `--data-dir`) overrides `agent.data_dir`, also in
    /// every reloaded config.
    pub async fn start(
        mut inventory: Inventory,
        config_path: &Path,
        data_dir: Option<PathBuf>,
    ) -> std::io::Result<Agent> {
        if let Some(d) = &data_dir {
            inventory.agent.data_dir = d.clone();
        }
        let started = Utc::now();
        let metrics = Metrics::new(&inventory.agent.id, &inventory.agent.rtt_buckets);
        let ledger = Ledger::start(
            &inventory.agent.data_dir,
            &inventory.agent.id,
            started,
            metrics.clone(),
            inventory.maintenance.clone(),
            &inventory.agent.ledger,
        )?;
        let (probe_runtime, probe_runtime_stop) = spawn_probe_runtime()?;
        let (events, _) = broadcast::channel(TRANSITION_BUFFER);
        let (observations_tx, observations) = mpsc::channel(OBSERVATION_QUEUE);
        let (engine, icmp, report) = {
            // The engine's name lookups are spawned on the probe runtime.
            let _in_probe_runtime = probe_runtime.enter();
            Engine::open(
                observations_tx.clone(),
                metrics.icmp_engine(),
                inventory.agent.max_concurrent_probes,
                inventory.agent.resolve_interval,
            )?
        };
        report_sockets(&report, &metrics);
        let scheduler = Scheduler::new(
            (engine.spawn()?, icmp),
            observations_tx,
            metrics.clone(),
            inventory.agent.max_concurrent_snmp_polls,
            // With the live owner: a poll's requests and its observation
            // wake no other thread (on the shared runtime each answer
            // could wake a second worker).
            probe_runtime.clone(),
        );
        let inventory = Arc::new(inventory);
        let live = Live::start(
            Parts {
                runtime: probe_runtime,
                inventory: inventory.clone(),
                scheduler,
                metrics: metrics.clone(),
                ledger: ledger.clone(),
                events: events.clone(),
            },
            observations,
        );
        live.install(inventory).await;
        let jobs = CancellationToken::new();
        tokio::spawn(crate::jobs::sla_rounds(
            live.clone(),
            ledger.clone(),
            metrics.clone(),
            jobs.clone(),
        ));
        let shared = Arc::new(Shared {
            config_path: config_path.to_path_buf(),
            live,
            metrics,
            events,
            ready: AtomicBool::new(true),
            probe_runtime_stop: Mutex::new(Some(probe_runtime_stop)),
            ledger,
            data_dir_override: data_dir,
            reloading: Mutex::new(()),
            http_reload_at: std::sync::atomic::AtomicI64::new(i64::MIN),
            ledger_queries: Arc::new(tokio::sync::Semaphore::new(MAX_LEDGER_QUERIES)),
            jobs,
        });
        shared.metrics.reload_successful.set(1);
        shared
            .metrics
            .reload_success_timestamp
            .set(Utc::now().timestamp_millis() as f64 / 1e3);
        Ok(Agent { shared })
    }

    /// Load, validate and swap the config file (blocking: call off the
    /// runtime's workers). On error the running config is untouched and
    /// `utkikk_config_last_reload_successful` goes to 0.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let s = &self.shared;
        let _one_at_a_time = s.reloading.lock().unwrap_or_else(PoisonError::into_inner);
        match config::load(&s.config_path) {
            Ok(mut new) => {
                if let Some(d) = &s.data_dir_override {
                    new.agent.data_dir = d.clone();
                }
                let old = s.live.snapshot().inventory.clone();
                if new.agent.data_dir != old.agent.data_dir {
                    tracing::warn!("agent.data_dir changed; the ledger moves at the next restart");
                }
                if new.agent.ledger != old.agent.ledger {
                    tracing::warn!("ledger (backend, url or ca_file) changed; it takes effect at the next restart");
                }
                if new.agent.listen_address != old.agent.listen_address {
                    tracing::warn!(
                        "agent.listen_address changed; it takes effect at the next restart"
                    );
                }
                if new.agent.rtt_buckets != old.agent.rtt_buckets {
                    tracing::warn!(
                        "agent.rtt_buckets changed; it takes effect at the next restart"
                    );
                }
                if new.agent.max_concurrent_probes != old.agent.max_concurrent_probes {
                    tracing::warn!(
                        "agent.max_concurrent_probes changed; it takes effect at the next restart"
                    );
                }
                if new.maintenance != old.maintenance {
                    s.ledger.set_config_windows(new.maintenance.clone());
                }
                let targets = new.targets.len();
                s.live.install_blocking(Arc::new(new));
                s.live.maintenance_changed();
                s.metrics.reload_successful.set(1);
                s.metrics
                    .reload_success_timestamp
                    .set(Utc::now().timestamp_millis() as f64 / 1e3);
                tracing::info!(targets, "configuration reloaded");
                Ok(())
            }
            Err(e) => {
                s.metrics.reload_successful.set(0);
                for p in &e.problems {
                    tracing::error!("{p}");
                }
                tracing::error!(
                    problems = e.problems.len(),
                    "configuration reload failed; the previous configuration keeps running"
                );
                Err(e)
            }
        }
    }

    /// Whether a reload over HTTP may begin now (at most one per
    /// `min_gap_ms`); takes the slot when it may.
    pub fn http_reload_slot(&self, now_ms: i64, min_gap_ms: i64) -> bool {
        let last = &self.shared.http_reload_at;
        let prev = last.load(Ordering::SeqCst);
        now_ms.saturating_sub(prev) >= min_gap_ms
            && last
                .compare_exchange(prev, now_ms, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }

    /// The slots of [`MAX_LEDGER_QUERIES`].
    pub fn ledger_queries(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.shared.ledger_queries
    }

    pub fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::SeqCst)
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The live stream of state transitions and device events.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// The live state as last published: inventory, states, maintenance.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.live.snapshot()
    }

    /// The inventory running now.
    pub fn inventory(&self) -> Arc<Inventory> {
        self.shared.live.snapshot().inventory.clone()
    }

    /// Stop probing: abort every probe task (in-flight probes are dropped),
    /// wait for them to end, save the links' figures, end the probe
    /// runtime, and close the ledger.
    pub async fn stop(&self) {
        self.shared.ready.store(false, Ordering::SeqCst);
        self.shared.jobs.cancel();
        self.shared.live.stop().await;
        let stop = self
            .shared
            .probe_runtime_stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(tx) = stop {
            let _ = tx.send(());
        }
        // Commit what is queued and record a clean stop, off the runtime.
        let ledger = self.shared.ledger.clone();
        match tokio::task::spawn_blocking(move || ledger.stop()).await {
            Ok(Ok(())) => tracing::info!("ledger closed cleanly"),
            Ok(Err(e)) => tracing::error!("ledger not closed cleanly: {e}"),
            Err(e) => tracing::error!("ledger stop failed: {e}"),
        }
    }

    /// The ledger this agent writes.
    pub fn ledger(&self) -> &Ledger {
        &self.shared.ledger
    }

    /// Declare or withdraw a maintenance window (waits for the ledger; call
    /// off the runtime's workers), then apply it to the live states.
    pub fn change_maintenance(
        &self,
        op: crate::ledger::MaintenanceOp,
    ) -> Result<crate::ledger::MaintenanceDone, crate::ledger::LedgerError> {
        let r = self.shared.ledger.change_maintenance(op);
        self.shared.live.maintenance_changed();
        r
    }
}

/// A current-thread runtime on a thread of its own, running until the
/// returned sender is used or dropped.
fn spawn_probe_runtime() -> std::io::Result<(tokio::runtime::Handle, oneshot::Sender<()>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    let (tx, rx) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("utkikk-probe".into())
        .spawn(move || {
            runtime.block_on(async {
                let _ = rx.await;
            });
        })?;
    Ok((handle, tx))
}

fn report_sockets(report: &crate::probe::icmp::SocketReport, metrics: &Metrics) {
    for (family, kernel) in [
        ("ipv4", report.kernel_timestamps[0]),
        ("ipv6", report.kernel_timestamps[1]),
    ] {
        if !kernel {
            tracing::warn!(family, "the kernel gives no timestamps on this ICMP socket; RTTs are timed in user space (rtt_clock \"user\")");
        }
    }
    metrics.set_icmp_socket("ipv4", report.v4.is_ok());
    metrics.set_icmp_socket("ipv6", report.v6.is_ok());
    match (&report.v4, &report.v6) {
        (Err(FailureReason::Permission), _) | (_, Err(FailureReason::Permission)) => {
            tracing::error!(
                "cannot open an ICMP socket: permission denied; give utkikk CAP_NET_RAW (setcap cap_net_raw+ep, or AmbientCapabilities=CAP_NET_RAW) or let its group use ping sockets via sysctl net.ipv4.ping_group_range; ICMP targets stay unmonitored until then"
            );
        }
        _ => {}
    }
    for (family, r) in [("ipv4", &report.v4), ("ipv6", &report.v6)] {
        match r {
            Ok(kind) => tracing::info!(family, socket = kind, "ICMP socket open"),
            Err(FailureReason::Permission) => {}
            Err(e) => tracing::warn!(
                family,
                "no ICMP socket: {e}; these targets stay unmonitored"
            ),
        }
    }
}
