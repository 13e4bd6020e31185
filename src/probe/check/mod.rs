//! Service checks: TCP, HTTP(S), TLS certificates and DNS. One
//! [`CheckProber`] per target, run by the scheduler like an SNMP device
//! (its own timer, requests on demand); it answers with one
//! [`CheckOutcome`]: what it measured and the worst thing it found, or
//! nothing wrong. A check that could not run at all (the agent out of
//! sockets) is [`Outcome::NotRun`], never a failure of the service.
//!
//! No wire code of our own: TCP is tokio's, TLS rustls', HTTP hyper's
//! client connection, DNS hickory's messages on our own UDP or TCP socket.

pub mod dns;
mod http;
mod tcp;
pub mod tls;

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::{FailureReason, Observation, Outcome, ProbeKind, Prober, Request};
use crate::inventory::{CheckSettings, CheckSpec};
use crate::model::CheckProblem;

/// The protocol of a check (the inventory knows nothing of probes).
pub fn kind_of(spec: &CheckSpec) -> ProbeKind {
    match spec {
        CheckSpec::Tcp(_) => ProbeKind::Tcp,
        CheckSpec::Http(_) => ProbeKind::Http,
        CheckSpec::Tls(_) => ProbeKind::Tls,
        CheckSpec::Dns(_) => ProbeKind::Dns,
    }
}

/// What one check of one target found.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    pub at: DateTime<Utc>,
    pub kind: ProbeKind,
    /// The whole check, from the first connection attempt.
    pub duration: Duration,
    /// Time in each phase, in order (`resolve`, `connect`, `tls`,
    /// `processing`, `transfer` for HTTP; `connect`, `exchange` for TCP;
    /// `query` for DNS). Phases not reached are absent.
    pub phases: Vec<(&'static str, Duration)>,
    /// The worst problem found; `None` when the check passes.
    pub problem: Option<CheckProblem>,
    /// HTTP: the last answer's status.
    pub http_status: Option<u16>,
    /// HTTP: redirects followed.
    pub redirects: u32,
    /// TLS: the certificate of the chain that expires first.
    pub cert: Option<tls::CertInfo>,
    /// DNS: records in the answer section.
    pub dns_answers: Option<u32>,
}

impl CheckOutcome {
    pub fn passed(&self) -> bool {
        self.problem.is_none()
    }

    /// Time in `phase`, summed over redirects.
    pub fn phase(&self, phase: &str) -> Duration {
        self.phases
            .iter()
            .filter(|(p, _)| *p == phase)
            .map(|(_, d)| *d)
            .sum()
    }
}

/// A check in progress: the clock of its phases and what it found so
/// far. Lives outside the check's future, so a timeout still knows
/// where the check stopped and what it had measured.
pub(crate) struct Progress {
    start: Instant,
    phase_start: Instant,
    current: &'static str,
    /// `current` has begun and not ended.
    in_phase: bool,
    phases: Vec<(&'static str, Duration)>,
    problems: Vec<CheckProblem>,
    http_status: Option<u16>,
    redirects: u32,
    cert: Option<tls::CertInfo>,
    dns_answers: Option<u32>,
    /// The check could not run (a local failure).
    not_run: Option<FailureReason>,
}

impl Progress {
    fn new() -> Self {
        let now = Instant::now();
        Progress {
            start: now,
            phase_start: now,
            current: "connect",
            in_phase: false,
            phases: Vec::new(),
            problems: Vec::new(),
            http_status: None,
            redirects: 0,
            cert: None,
            dns_answers: None,
            not_run: None,
        }
    }

    /// `phase` begins now.
    pub(crate) fn begin(&mut self, phase: &'static str) {
        self.phase_start = Instant::now();
        self.current = phase;
        self.in_phase = true;
    }

    /// The current phase ends now.
    pub(crate) fn end(&mut self) {
        if std::mem::take(&mut self.in_phase) {
            self.phases.push((self.current, self.phase_start.elapsed()));
        }
    }

    pub(crate) fn problem(&mut self, p: CheckProblem) {
        self.problems.push(p);
    }

    /// The check could not run: nothing is known of the service.
    pub(crate) fn not_run(&mut self, reason: FailureReason) {
        self.not_run = Some(reason);
    }

    fn finish(mut self, kind: ProbeKind, at: DateTime<Utc>) -> Outcome {
        if let Some(reason) = self.not_run {
            return Outcome::NotRun {
                probe: kind,
                at,
                reason,
            };
        }
        // The worst first: a failure before a degradation, else in order.
        let problem = match self.problems.iter().position(|p| !p.is_degraded()) {
            Some(i) => Some(self.problems.swap_remove(i)),
            None => self.problems.into_iter().next(),
        };
        Outcome::Check(std::sync::Arc::new(CheckOutcome {
            at,
            kind,
            duration: self.start.elapsed(),
            phases: self.phases,
            problem,
            http_status: self.http_status,
            redirects: self.redirects,
            cert: self.cert,
            dns_answers: self.dns_answers,
        }))
    }
}

/// A socket error: the agent's own (out of descriptors or memory: the
/// check did not run) or the path's and the server's.
pub(crate) fn socket_error(p: &mut Progress, e: &std::io::Error) {
    socket_error_as(p, e, |error| CheckProblem::Connect { error })
}

/// [`socket_error`], the path's or the server's failure told by `fail`
/// (given the quoted error).
fn socket_error_as(
    p: &mut Progress,
    e: &std::io::Error,
    fail: impl FnOnce(String) -> CheckProblem,
) {
    if is_local(e) {
        p.not_run(FailureReason::NoSocket {
            message: e.to_string(),
        })
    } else {
        p.problem(fail(crate::model::check::quote(&e.to_string())))
    }
}

/// The agent's own shortage (out of descriptors or memory), not the
/// path's or the server's.
fn is_local(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Connect to `addr` over TCP, timing the `connect` phase.
pub(crate) async fn connect(
    p: &mut Progress,
    addr: std::net::SocketAddr,
) -> Option<tokio::net::TcpStream> {
    connect_as(p, addr, |error| CheckProblem::Connect { error }).await
}

/// [`connect`], a failure told by `fail` (given the quoted error).
pub(crate) async fn connect_as(
    p: &mut Progress,
    addr: std::net::SocketAddr,
    fail: impl FnOnce(String) -> CheckProblem,
) -> Option<tokio::net::TcpStream> {
    p.begin("connect");
    let stream = tokio::net::TcpStream::connect(addr).await;
    p.end();
    match stream {
        Ok(s) => {
            // Checks are short: send at once.
            let _ = s.set_nodelay(true);
            Some(s)
        }
        Err(e) => {
            socket_error_as(p, &e, fail);
            None
        }
    }
}

/// Look `host` up (a name; an address is taken as it is), timing the
/// `resolve` phase; `None` when it does not resolve.
pub(crate) async fn lookup(p: &mut Progress, host: &str) -> Option<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip);
    }
    p.begin("resolve");
    let found = tokio::net::lookup_host((host, 0)).await;
    p.end();
    found.ok()?.next().map(|a| a.ip())
}

/// One target's check.
pub struct CheckProber {
    target: String,
    settings: CheckSettings,
    /// The target's address as written: the TLS check's server name
    /// unless it sets its own.
    host: String,
    /// Built once: the TLS client (roots, client certificate).
    tls: Option<tls::Client>,
    /// Time the scheduler spent resolving the address for this check.
    resolve: Duration,
}

impl CheckProber {
    /// Fails only when the TLS client cannot be built (validation builds
    /// it first, so not for a loaded config).
    pub fn new(
        target: &str,
        address: &crate::inventory::Address,
        settings: CheckSettings,
    ) -> Result<Self, tls::TlsSetupError> {
        let tls = match &settings.spec {
            // Built for http:// too: a redirect may lead to https.
            CheckSpec::Http(h) => Some(tls::Client::new(&h.tls, true)?),
            CheckSpec::Tls(t) => Some(tls::Client::new(&t.tls, false)?),
            _ => None,
        };
        Ok(CheckProber {
            target: target.to_string(),
            settings,
            host: address.to_string(),
            tls,
            resolve: Duration::ZERO,
        })
    }

    async fn check(&mut self, ip: IpAddr) -> Outcome {
        let at = Utc::now();
        let kind = kind_of(&self.settings.spec);
        let mut p = Progress::new();
        if !self.resolve.is_zero() {
            p.phases
                .push(("resolve", std::mem::take(&mut self.resolve)));
        }
        let timeout = self.settings.timeout;
        let run = async {
            match &self.settings.spec {
                CheckSpec::Tcp(c) => tcp::run(&mut p, ip, c).await,
                CheckSpec::Http(c) => http::run(&mut p, ip, c, self.tls.as_ref()).await,
                CheckSpec::Tls(c) => {
                    if let Some(client) = &self.tls {
                        tls::run(&mut p, ip, c, client, &self.host).await
                    }
                }
                CheckSpec::Dns(c) => dns::run(&mut p, ip, c).await,
            }
        };
        if tokio::time::timeout(timeout, run).await.is_err() {
            p.end();
            p.problem(CheckProblem::Timeout {
                phase: p.current,
                after_ms: timeout.as_millis() as u64,
            });
        }
        p.finish(kind, at)
    }
}

impl Prober for CheckProber {
    fn kind(&self) -> ProbeKind {
        kind_of(&self.settings.spec)
    }

    fn resolved_in(&mut self, took: Duration) {
        self.resolve = took;
    }

    async fn run(&mut self, ip: IpAddr, request: Request) -> Vec<Observation> {
        let on_demand = match request {
            Request::Cycle => false,
            Request::Check => true,
            // A check has no link ends.
            Request::ReadEnds(_) => return Vec::new(),
        };
        let outcome = self.check(ip).await;
        vec![Observation {
            target: self.target.clone(),
            on_demand,
            outcome,
        }]
    }
}
