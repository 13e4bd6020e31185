//! Probes: one per protocol behind one shape, [`Prober`]: a prober is asked
//! to run (its scheduled cycle, a check on demand, a read of link ends)
//! and answers with typed [`Observation`]s — what it saw, per protocol,
//! never a state. Probes know nothing of states, SLAs or storage; the
//! grading of an observation against a target's thresholds is
//! [`Outcome::verdict`], and the one place observations turn into states
//! is [`crate::health::HealthBook::observe`].

pub mod check;
pub mod icmp;
pub mod snmp;

use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use crate::model::FailureReason;
use crate::model::{EndStatus, Reason};

/// Longest a single name lookup may take before the cycle counts it failed.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Offset of a target's first cycle within its interval.
pub fn spread_offset(id: &str, interval: Duration) -> Duration {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    let ms = interval.as_millis().max(1) as u64;
    Duration::from_millis(h.finish() % ms)
}

/// The protocols that probe targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    Icmp,
    Snmp,
    Tcp,
    Http,
    Tls,
    Dns,
}

impl ProbeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Icmp => "icmp",
            ProbeKind::Snmp => "snmp",
            ProbeKind::Tcp => "tcp",
            ProbeKind::Http => "http",
            ProbeKind::Tls => "tls",
            ProbeKind::Dns => "dns",
        }
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a prober is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The scheduled cycle.
    Cycle,
    /// Look at the target now, because a child's failure needs to know
    /// whether this target fails too (dependency check on demand).
    /// ICMP: an echo cycle; SNMP: one GET of sysUpTime.
    Check,
    /// Read these link ends' interfaces now (one GET of ifOperStatus and
    /// ifAdminStatus each, not a whole poll).
    ReadEnds(Vec<EndQuery>),
}

/// A link end to read on the device that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndQuery {
    pub link: String,
    pub end: usize,
    /// ifName, or failing that ifAlias.
    pub interface: String,
}

/// What one probe of one target found.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The target observed (for a link end: the link).
    pub target: String,
    /// Asked for on demand, not the scheduled cycle.
    pub on_demand: bool,
    pub outcome: Outcome,
}

/// A probe's result, typed per protocol.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// An ICMP echo cycle.
    Icmp(IcmpOutcome),
    /// A whole SNMP poll of a device.
    Snmp(snmp::SnmpPoll),
    /// An SNMP check on demand (sysUpTime only).
    SnmpCheck(snmp::SnmpCheck),
    /// A service check (TCP, HTTP(S), TLS, DNS). Shared: the health book
    /// keeps this same outcome as the target's last check.
    Check(std::sync::Arc<check::CheckOutcome>),
    /// One end of a link, read on its device.
    LinkEnd {
        at: DateTime<Utc>,
        end: usize,
        status: EndStatus,
    },
    /// The probe could not run (a name that does not resolve): says
    /// nothing about the target.
    NotRun {
        probe: ProbeKind,
        at: DateTime<Utc>,
        reason: FailureReason,
    },
}

/// How one observation grades a target, before hysteresis.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Up(Reason),
    Degraded(Reason),
    Down(Reason),
    /// The probe could not run: nothing is known.
    NotRun(Reason),
}

/// A target's thresholds for grading its echo cycles.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    pub degraded_loss_ratio: f64,
    pub degraded_rtt: Duration,
}

impl Outcome {
    /// When the observation began.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Outcome::Icmp(o) => o.at,
            Outcome::Snmp(p) => p.at,
            Outcome::SnmpCheck(c) => c.at,
            Outcome::Check(c) => c.at,
            Outcome::LinkEnd { at, .. } | Outcome::NotRun { at, .. } => *at,
        }
    }

    pub fn kind(&self) -> ProbeKind {
        match self {
            Outcome::Icmp(_) => ProbeKind::Icmp,
            Outcome::Snmp(_) | Outcome::SnmpCheck(_) | Outcome::LinkEnd { .. } => ProbeKind::Snmp,
            Outcome::Check(c) => c.kind,
            Outcome::NotRun { probe, .. } => *probe,
        }
    }

    /// The grade of a probe of the target itself (`None` for a link end:
    /// the link weighs its ends with its echoes). An SNMP answer is up,
    /// an authentication or agent error degraded (the device answers),
    /// silence down.
    pub fn verdict(&self, limits: &Limits) -> Option<Verdict> {
        Some(match self {
            Outcome::Icmp(o) => o.verdict(limits),
            Outcome::Snmp(p) => snmp_verdict(p.result.as_ref().err()),
            Outcome::SnmpCheck(c) => snmp_verdict(c.result.as_ref().err()),
            Outcome::Check(c) => match &c.problem {
                None => Verdict::Up(Reason::CheckPasses {
                    check: c.kind.as_str(),
                }),
                Some(p) if p.is_degraded() => Verdict::Degraded(Reason::Check(p.clone())),
                Some(p) => Verdict::Down(Reason::Check(p.clone())),
            },
            Outcome::LinkEnd { .. } => return None,
            Outcome::NotRun { probe, reason, .. } => Verdict::NotRun(match probe {
                ProbeKind::Icmp => Reason::NotRun(reason.clone()),
                ProbeKind::Snmp => Reason::SnmpNotRun(reason.clone()),
                check => Reason::CheckNotRun {
                    check: check.as_str(),
                    reason: reason.clone(),
                },
            }),
        })
    }
}

fn snmp_verdict(err: Option<&crate::model::SnmpError>) -> Verdict {
    match err {
        None => Verdict::Up(Reason::SnmpAnswers),
        Some(crate::model::SnmpError::Local(message)) => {
            Verdict::NotRun(Reason::SnmpNotRun(crate::model::FailureReason::NoSocket {
                message: message.clone(),
            }))
        }
        Some(e) if e.is_silence() => Verdict::Down(Reason::Snmp(e.clone())),
        Some(e) => Verdict::Degraded(Reason::Snmp(e.clone())),
    }
}

/// A protocol's probe of one target, run by the scheduler: on its timer
/// ([`Request::Cycle`]) and on demand. One prober per target, owned by
/// that target's task: one request at a time by construction.
pub trait Prober: Send + 'static {
    /// The protocol (for metrics and for a probe that could not run).
    fn kind(&self) -> ProbeKind;

    /// The scheduler looked the address up for this run, taking `took`
    /// (not called when the address is literal or the answer cached).
    fn resolved_in(&mut self, _took: Duration) {}

    /// Run `request` against `ip` (resolved by the scheduler).
    fn run(
        &mut self,
        ip: IpAddr,
        request: Request,
    ) -> impl Future<Output = Vec<Observation>> + Send;
}

/// The result of one probe cycle of one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IcmpOutcome {
    /// When the cycle started.
    pub at: DateTime<Utc>,
    /// The address actually probed (after name resolution).
    pub address: Option<IpAddr>,
    pub sent: u32,
    pub received: u32,
    /// Round-trip times of the replies received, in send order.
    #[serde(skip)]
    pub rtts: Vec<Duration>,
    /// Which clock timed the RTTs; `None` without a reply.
    pub rtt_clock: Option<RttClock>,
    /// Set when nothing came back, or the probe could not run.
    pub failure: Option<FailureReason>,
}

/// Which clock timed a cycle's round trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RttClock {
    /// The kernel's software timestamps: the echo leaving the device
    /// and the reply arriving, with no scheduling delay in between.
    Kernel,
    /// User-space time around the system calls, where the kernel gave no
    /// timestamp for at least one echo (older kernels, or a timestamp
    /// lost): can read high by the agent's own wake-up delay.
    User,
}

/// Summary statistics of the RTTs of one cycle.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct RttStats {
    pub min_seconds: f64,
    pub avg_seconds: f64,
    pub max_seconds: f64,
    /// Mean absolute difference of consecutive RTTs (IPDV, RFC 3393/5481),
    /// not the standard deviation: it measures what a stream of packets
    /// experiences from one packet to the next. 0 with fewer than two replies.
    pub jitter_seconds: f64,
}

impl IcmpOutcome {
    /// A cycle that could not run (or failed before sending anything).
    pub fn not_run(at: DateTime<Utc>, reason: FailureReason) -> Self {
        IcmpOutcome {
            at,
            address: None,
            sent: 0,
            received: 0,
            rtts: Vec::new(),
            rtt_clock: None,
            failure: Some(reason),
        }
    }

    pub fn success(&self) -> bool {
        self.received > 0
    }

    /// Some echoes answered and some lost: a failure that began (or
    /// ended) inside the cycle looks like this.
    pub fn partial(&self) -> bool {
        self.received > 0 && self.received < self.sent
    }

    /// Graded against `limits`: no reply is down, loss or mean RTT above
    /// the limits degraded.
    pub fn verdict(&self, limits: &Limits) -> Verdict {
        if self.is_probe_error() {
            let r = self.failure.clone().unwrap_or(FailureReason::Timeout);
            return Verdict::NotRun(Reason::NotRun(r));
        }
        if !self.success() {
            return Verdict::Down(Reason::Icmp(
                self.failure.clone().unwrap_or(FailureReason::Timeout),
            ));
        }
        let loss = self.loss_ratio().unwrap_or(0.0);
        if loss > limits.degraded_loss_ratio {
            return Verdict::Degraded(Reason::Loss {
                ratio: loss,
                limit: limits.degraded_loss_ratio,
            });
        }
        if let Some(stats) = self.rtt_stats() {
            let limit = limits.degraded_rtt.as_secs_f64();
            if stats.avg_seconds > limit {
                return Verdict::Degraded(Reason::Rtt {
                    mean_seconds: stats.avg_seconds,
                    limit_seconds: limit,
                });
            }
        }
        Verdict::Up(Reason::Replies)
    }

    /// The probe could not run: the result says nothing about the target.
    pub fn is_probe_error(&self) -> bool {
        self.received == 0 && self.failure.as_ref().is_some_and(|f| f.is_probe_error())
    }

    /// 1 − received/sent; `None` when nothing was sent.
    pub fn loss_ratio(&self) -> Option<f64> {
        (self.sent > 0)
            .then(|| f64::from(self.sent - self.received.min(self.sent)) / f64::from(self.sent))
    }

    pub fn rtt_stats(&self) -> Option<RttStats> {
        let first = self.rtts.first()?;
        let secs: Vec<f64> = self.rtts.iter().map(Duration::as_secs_f64).collect();
        let mut min = first.as_secs_f64();
        let mut max = min;
        for &s in &secs {
            min = min.min(s);
            max = max.max(s);
        }
        let avg = secs.iter().sum::<f64>() / secs.len() as f64;
        let jitter = if secs.len() < 2 {
            0.0
        } else {
            secs.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / (secs.len() - 1) as f64
        };
        Some(RttStats {
            min_seconds: min,
            avg_seconds: avg,
            max_seconds: max,
            jitter_seconds: jitter,
        })
    }
}

#[cfg(test)]
impl IcmpOutcome {
    /// A cycle of `sent` echoes, answered after `rtts_ms` (for tests).
    pub(crate) fn echoes(sent: u32, rtts_ms: &[u64]) -> IcmpOutcome {
        IcmpOutcome {
            at: Utc::now(),
            address: None,
            sent,
            received: rtts_ms.len() as u32,
            rtts: rtts_ms.iter().map(|&m| Duration::from_millis(m)).collect(),
            rtt_clock: (!rtts_ms.is_empty()).then_some(RttClock::Kernel),
            failure: rtts_ms.is_empty().then_some(FailureReason::Timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(sent: u32, rtts_ms: &[u64]) -> IcmpOutcome {
        IcmpOutcome::echoes(sent, rtts_ms)
    }

    #[test]
    fn stats_and_jitter_are_mean_absolute_difference() {
        let o = outcome(5, &[10, 14, 12, 20]);
        let s = o.rtt_stats().unwrap();
        assert!((s.min_seconds - 0.010).abs() < 1e-9);
        assert!((s.max_seconds - 0.020).abs() < 1e-9);
        assert!((s.avg_seconds - 0.014).abs() < 1e-9);
        // |14-10| + |12-14| + |20-12| = 14 ms over 3 differences
        assert!((s.jitter_seconds - 0.014 / 3.0).abs() < 1e-9);
        assert_eq!(o.loss_ratio(), Some(0.2));
    }

    #[test]
    fn no_replies_no_stats() {
        let o = outcome(3, &[]);
        assert!(o.rtt_stats().is_none());
        assert_eq!(o.loss_ratio(), Some(1.0));
        assert!(!o.success());
    }

    #[test]
    fn permission_is_a_probe_error_not_a_failure_of_the_target() {
        let o = IcmpOutcome::not_run(Utc::now(), FailureReason::Permission);
        assert!(o.is_probe_error());
        let t = IcmpOutcome::not_run(Utc::now(), FailureReason::Timeout);
        assert!(!t.is_probe_error());
    }

    #[test]
    fn a_check_grades_by_the_worst_problem_it_found() {
        use crate::model::CheckProblem;
        let outcome = |problem: Option<CheckProblem>| {
            Outcome::Check(std::sync::Arc::new(check::CheckOutcome {
                at: Utc::now(),
                kind: ProbeKind::Http,
                duration: Duration::from_millis(5),
                phases: Vec::new(),
                problem,
                http_status: Some(200),
                redirects: 0,
                cert: None,
                dns_answers: None,
            }))
            .verdict(&Limits::default())
        };
        let Some(Verdict::Up(r)) = outcome(None) else {
            panic!("a passing check is up");
        };
        assert_eq!(r.code(), "check_passes");
        assert_eq!(r.to_string(), "HTTP check passes");
        let slow = CheckProblem::Slow {
            seconds: 2.5,
            limit_seconds: 2.0,
        };
        let Some(Verdict::Degraded(r)) = outcome(Some(slow)) else {
            panic!("slow is degraded");
        };
        assert_eq!(r.to_string(), "answered in 2500 ms, above 2000 ms");
        let status = CheckProblem::Status {
            got: 502,
            expected: "2xx".into(),
        };
        assert!(matches!(outcome(Some(status)), Some(Verdict::Down(_))));
        let not_run = Outcome::NotRun {
            probe: ProbeKind::Dns,
            at: Utc::now(),
            reason: FailureReason::NoSocket {
                message: "Too many open files".into(),
            },
        }
        .verdict(&Limits::default());
        let Some(Verdict::NotRun(r)) = not_run else {
            panic!("a check without a socket did not run");
        };
        assert!(r.to_string().starts_with("DNS check could not run"), "{r}");
    }

    #[test]
    fn an_snmp_poll_without_a_socket_did_not_run() {
        use crate::model::SnmpError;
        let check = |result| {
            Outcome::SnmpCheck(snmp::SnmpCheck {
                at: Utc::now(),
                result,
                requests: 0,
            })
            .verdict(&Limits::default())
        };
        let Some(Verdict::NotRun(r)) = check(Err(SnmpError::Local(
            "Too many open files (os error 24)".into(),
        ))) else {
            panic!("a poll that could not open its socket is not run");
        };
        assert_eq!(r.code(), "probe_not_run");
        assert!(r.to_string().contains("could not open a socket"), "{r}");
        assert!(matches!(
            check(Err(SnmpError::Io("connection refused".into()))),
            Some(Verdict::Down(_))
        ));
    }
}
