//! Probes: one per protocol, each turning a target into a [`ProbeOutcome`].
//! Probes know nothing of states, SLAs or storage.

pub mod icmp;
pub mod snmp;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    Icmp,
}

impl ProbeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Icmp => "icmp",
        }
    }
}

/// Why a cycle failed or could not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// No reply within the timeout.
    Timeout,
    /// An ICMP error came back (destination unreachable, time exceeded…):
    /// `from` is the router that sent it.
    IcmpUnreachable {
        from: IpAddr,
        icmp_type: u8,
        code: u8,
    },
    /// The kernel had no route, or the local link is down.
    NoRoute,
    /// No ICMP socket could be opened: missing CAP_NET_RAW and not allowed by
    /// net.ipv4.ping_group_range. The probe could not run.
    Permission,
    /// The address family has no socket here (IPv6 disabled).
    FamilyUnavailable,
    /// The host name did not resolve. The probe could not run.
    ResolveFailed,
    /// Any other local error sending the echo.
    SendError { message: String },
}

impl FailureReason {
    /// True when the probe could not run at all: the target's state is then
    /// `unmonitored`, never `down`.
    pub fn is_probe_error(&self) -> bool {
        matches!(
            self,
            FailureReason::Permission
                | FailureReason::FamilyUnavailable
                | FailureReason::ResolveFailed
                | FailureReason::SendError { .. }
        )
    }

    /// Short, stable code for metrics labels and the API.
    pub fn code(&self) -> &'static str {
        match self {
            FailureReason::Timeout => "timeout",
            FailureReason::IcmpUnreachable { .. } => "icmp_unreachable",
            FailureReason::NoRoute => "no_route",
            FailureReason::Permission => "permission",
            FailureReason::FamilyUnavailable => "family_unavailable",
            FailureReason::ResolveFailed => "resolve_failed",
            FailureReason::SendError { .. } => "send_error",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::Timeout => f.write_str("no reply before the timeout"),
            FailureReason::IcmpUnreachable {
                from,
                icmp_type,
                code,
            } => {
                // ICMPv4 11 and ICMPv6 3 are "time exceeded" (a routing loop
                // or TTL too small); the rest we send back are unreachables.
                let what = match (from, icmp_type) {
                    (IpAddr::V4(_), 11) | (IpAddr::V6(_), 3) => "time exceeded",
                    _ => "destination unreachable",
                };
                write!(f, "ICMP {what} from {from} (type {icmp_type}, code {code})")
            }
            FailureReason::NoRoute => f.write_str("no route to the address (link down?)"),
            FailureReason::Permission => f.write_str(
                "no ICMP socket: needs CAP_NET_RAW or net.ipv4.ping_group_range covering the agent's group",
            ),
            FailureReason::FamilyUnavailable => {
                f.write_str("no socket for this address family on this host")
            }
            FailureReason::ResolveFailed => f.write_str("host name does not resolve"),
            FailureReason::SendError { message } => write!(f, "send failed: {message}"),
        }
    }
}

/// The result of one probe cycle of one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeOutcome {
    pub probe: ProbeKind,
    /// When the cycle started.
    pub at: DateTime<Utc>,
    /// The address actually probed (after name resolution).
    pub address: Option<IpAddr>,
    pub sent: u32,
    pub received: u32,
    /// Round-trip times of the replies received, in send order.
    #[serde(skip)]
    pub rtts: Vec<Duration>,
    /// Set when nothing came back, or the probe could not run.
    pub failure: Option<FailureReason>,
}

/// Summary statistics of the RTTs of one cycle.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RttStats {
    pub min_seconds: f64,
    pub avg_seconds: f64,
    pub max_seconds: f64,
    /// Mean absolute difference of consecutive RTTs (IPDV, RFC 3393/5481),
    /// not the standard deviation: it measures what a stream of packets
    /// experiences from one packet to the next. 0 with fewer than two replies.
    pub jitter_seconds: f64,
}

impl ProbeOutcome {
    /// A cycle that could not run (or failed before sending anything).
    pub fn not_run(probe: ProbeKind, at: DateTime<Utc>, reason: FailureReason) -> Self {
        ProbeOutcome {
            probe,
            at,
            address: None,
            sent: 0,
            received: 0,
            rtts: Vec::new(),
            failure: Some(reason),
        }
    }

    pub fn success(&self) -> bool {
        self.received > 0
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
impl ProbeOutcome {
    /// A cycle of `sent` echoes, answered after `rtts_ms` (for tests).
    pub(crate) fn echoes(sent: u32, rtts_ms: &[u64]) -> ProbeOutcome {
        ProbeOutcome {
            probe: ProbeKind::Icmp,
            at: Utc::now(),
            address: None,
            sent,
            received: rtts_ms.len() as u32,
            rtts: rtts_ms.iter().map(|&m| Duration::from_millis(m)).collect(),
            failure: rtts_ms.is_empty().then_some(FailureReason::Timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(sent: u32, rtts_ms: &[u64]) -> ProbeOutcome {
        ProbeOutcome::echoes(sent, rtts_ms)
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
        let o = ProbeOutcome::not_run(ProbeKind::Icmp, Utc::now(), FailureReason::Permission);
        assert!(o.is_probe_error());
        let t = ProbeOutcome::not_run(ProbeKind::Icmp, Utc::now(), FailureReason::Timeout);
        assert!(!t.is_probe_error());
    }
}
