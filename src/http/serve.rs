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
//! - An answer's bytes must keep leaving: a connection whose client reads
//!   nothing for [`WRITE_STALL_TIMEOUT`] while the agent has more to send
//!   is closed and counted (a scrape never read would otherwise hold its
//!   connection, and its slot, for good).
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

/// How long a write may wait for the client to read before the
/// connection is closed (as nginx's `send_timeout`: between two writes,
/// not for the whole answer, so a slow reader that keeps reading is fine).
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);

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
    serve_with(
        listener,
        router,
        metrics,
        max_connections,
        WRITE_STALL_TIMEOUT,
        shutdown,
    )
    .await
}

async fn serve_with(
    listener: TcpListener,
    router: Router,
    metrics: HttpMetrics,
    max_connections: usize,
    write_stall: Duration,
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
        let stalls = metrics.write_stalls.clone();
        connections.spawn(async move {
            let _open = open;
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let io = TokioIo::new(StallGuard::new(stream, write_stall));
            let conn = builder.serve_connection(io, service);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = async { drop(stop.wait_for(|s| *s).await) } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                if stalled(&e) {
                    stalls.inc();
                }
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

/// Whether hyper ended a connection because its writes stalled.
fn stalled(e: &hyper::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
}

/// A stream whose writes fail with `TimedOut` once one has waited
/// `limit` without the peer taking a byte.
struct StallGuard<S> {
    inner: S,
    limit: Duration,
    /// Armed while a write waits; reset by every write that goes through.
    timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<S> StallGuard<S> {
    fn new(inner: S, limit: Duration) -> Self {
        StallGuard {
            inner,
            limit,
            timer: None,
        }
    }

    /// After a write was polled: disarm on progress; on waiting, arm the
    /// timer (once) and fail when it has run out.
    fn check<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        r: std::task::Poll<std::io::Result<T>>,
    ) -> std::task::Poll<std::io::Result<T>> {
        use std::task::Poll;
        if r.is_ready() {
            self.timer = None;
            return r;
        }
        let limit = self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the client read nothing for {limit:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for StallGuard<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for StallGuard<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, r)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, r)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_shutdown(cx);
        self.check(cx, r)
    }
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

    /// Poll `cond` every 20 ms until it holds or `within` passes.
    async fn until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + within;
        while !cond() {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    // A client that asks for an answer bigger than the socket buffers and
    // never reads it loses its connection once the stall limit passes
    // (counted); one that reads gets the whole answer however long the
    // pauses between its writes were below the limit.
    #[tokio::test]
    async fn a_client_that_stops_reading_loses_its_connection() {
        use std::io::{Read, Write};
        const BIG: usize = 32 << 20;
        let router = Router::new().fallback(|| async { vec![b'x'; BIG] });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let metrics = HttpMetrics::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_with(
            listener,
            router,
            metrics.clone(),
            8,
            Duration::from_millis(500),
            async {
                let _ = stopped.await;
            },
        ));
        const GET: &[u8] = b"GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

        let mut mute = std::net::TcpStream::connect(addr).expect("connect");
        mute.write_all(GET).expect("request");
        assert!(
            until(Duration::from_secs(30), || metrics.write_stalls.get() == 1).await,
            "a client that never reads kept its connection"
        );
        assert!(
            until(Duration::from_secs(30), || metrics.connections_open.get()
                == 0)
            .await
        );

        let got = tokio::task::spawn_blocking(move || {
            let mut reader = std::net::TcpStream::connect(addr).expect("connect");
            reader.write_all(GET).expect("request");
            let mut got = Vec::new();
            reader.read_to_end(&mut got).expect("answer");
            got
        })
        .await
        .expect("reader");
        assert!(got.starts_with(b"HTTP/1.1 200"));
        assert!(got.len() > BIG, "{} bytes", got.len());
        assert_eq!(metrics.write_stalls.get(), 1);

        let _ = stop.send(());
        server.await.expect("server task").expect("serve");
        drop(mute);
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
