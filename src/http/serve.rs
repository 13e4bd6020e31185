//! The HTTP server loop, with the limits `axum::serve` does not have:
//!
//! - At most `max_connections` connections are open at once. Further ones
//!   wait in the kernel's accept queue, where they cost the agent no file
//!   descriptor, until one closes: clients cannot starve the probes of
//!   sockets.
//! - A request's head must arrive within [`HEADER_READ_TIMEOUT`]. hyper
//!   starts the same timer when a kept-alive connection goes idle, so idle
//!   connections close after it too, and so do slowloris heads.
//! - Each request, its body included, is answered or stopped by
//!   [`super::REQUEST_DEADLINE`] (a layer of the router).
//! - Failed accepts are logged (one line per [`WARN_EVERY`] at most, with
//!   the count) and counted; out of descriptors, the loop pauses a second
//!   instead of spinning.
//! - On shutdown the loop stops accepting and asks every connection to
//!   close after the request it is serving; the caller bounds the wait.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::metrics::HttpMetrics;

/// A request's head (and, between requests, the next one) must arrive
/// within this.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// At most one log line this often for each kind of trouble.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// Pause after an accept failed for want of resources.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Descriptors kept for all but HTTP connections and SNMP sockets: the
/// runtime, ICMP sockets, the ledger and the API's queries on it, logs,
/// secret and config files, report output.
pub const FD_RESERVE_BASE: u64 = 128;

/// How many HTTP connections fit under the open-file limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// The soft open-file limit in force (after raising it).
    pub limit: u64,
    /// Kept for probing and the rest: [`FD_RESERVE_BASE`] and one socket
    /// per SNMP device.
    pub reserve: u64,
    /// HTTP connections allowed: `wanted`, or fewer to fit.
    pub connections: usize,
}

/// Raise the soft open-file limit to the hard one (systemd starts
/// services at 1024 soft; Go's runtime does the same), then fit `wanted`
/// connections under it, keeping the reserve for `snmp_devices` devices.
/// At least 4 connections are allowed, so the API stays reachable.
pub fn fd_budget(wanted: usize, snmp_devices: usize) -> FdBudget {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        let raised = rustix::process::Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            lim = raised;
        }
    }
    fit(lim.current.unwrap_or(u64::MAX), wanted, snmp_devices)
}

fn fit(limit: u64, wanted: usize, snmp_devices: usize) -> FdBudget {
    let reserve = FD_RESERVE_BASE + snmp_devices as u64;
    let room = usize::try_from(limit.saturating_sub(reserve)).unwrap_or(usize::MAX);
    FdBudget {
        limit,
        reserve,
        connections: wanted.min(room).max(4),
    }
}

/// Logs a recurring condition at most once per period, with how many
/// times it happened since the last line.
struct Throttle {
    last: Option<Instant>,
    since: u64,
}

impl Throttle {
    fn new() -> Self {
        Throttle {
            last: None,
            since: 0,
        }
    }

    /// `Some(n)` when a line is due: `n` occurrences since the last one.
    fn due(&mut self) -> Option<u64> {
        self.since += 1;
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < WARN_EVERY)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.since))
    }
}

/// Errors from `accept` that concern only the one connection (it was
/// reset before we took it): nothing to report.
fn concerns_one_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionRefused | K::ConnectionAborted | K::ConnectionReset
    )
}

/// Serve `router` on `listener` until `shutdown` completes, then wait for
/// the open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    metrics: HttpMetrics,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let max_connections = max_connections.max(1);
    metrics.connections_max.set(max_connections as i64);
    let slots = Arc::new(Semaphore::new(max_connections));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let connections = tokio_util::task::TaskTracker::new();
    let mut full = Throttle::new();
    let mut failed = Throttle::new();
    tokio::pin!(shutdown);
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if let Some(n) = full.due() {
                    tracing::warn!(
                        limit = max_connections,
                        times = n,
                        "all HTTP connections are in use: new ones wait to be accepted (idle ones close after {HEADER_READ_TIMEOUT:?})"
                    );
                }
                tokio::select! {
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    _ = &mut shutdown => break,
                }
            }
        };
        let (stream, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) if concerns_one_connection(&e) => continue,
                Err(e) => {
                    metrics.accept_errors.inc();
                    if let Some(n) = failed.due() {
                        tracing::error!(
                            times = n,
                            "cannot accept an HTTP connection: {e}; trying again in {ACCEPT_BACKOFF:?}"
                        );
                    }
                    drop(permit);
                    tokio::select! {
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                        _ = &mut shutdown => break,
                    }
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let mut stop = stop_rx.clone();
        let open = OpenConnection::new(&metrics);
        connections.spawn(async move {
            let _open = open;
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = async { drop(stop.wait_for(|s| *s).await) } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!("HTTP connection ended: {e}");
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Counts a connection as open while it lives.
struct OpenConnection(HttpMetrics);

impl OpenConnection {
    fn new(m: &HttpMetrics) -> Self {
        m.connections_open.inc();
        OpenConnection(m.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_open.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_under_the_open_file_limit() {
        assert_eq!(fit(65536, 256, 100).connections, 256);
        assert_eq!(fit(1024, 2000, 100).connections, 1024 - 128 - 100);
        assert_eq!(fit(64, 256, 100).connections, 4);
        assert_eq!(fit(u64::MAX, 256, 0).connections, 256);
    }

    #[test]
    fn throttle_lets_one_line_through_per_period_and_counts_the_rest() {
        let mut t = Throttle::new();
        assert_eq!(t.due(), Some(1));
        assert_eq!(t.due(), None);
        assert_eq!(t.due(), None);
        t.last = Some(Instant::now() - WARN_EVERY);
        assert_eq!(t.due(), Some(3));
    }
}
