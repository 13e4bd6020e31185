//! ICMP echo probing: our own engine ([`engine`]) on raw or ping sockets
//! ([`socket`]), echo packets read and written in [`packet`], and here the
//! fold of one cycle's echoes into an [`IcmpOutcome`].
//!
//! Why not surge-ping (used until issue 16): a future, timer and
//! allocations per echo, a task per target, user-space RTTs taken after
//! `send_to` returns and when a task is woken, and ICMP errors handed back
//! as replies. The engine paces every echo from one timer, sends and reads
//! in batches, and times RTTs with the kernel's clocks.

pub mod engine;
mod packet;
mod socket;

use std::net::IpAddr;
use std::time::Duration;

use chrono::Utc;

pub use engine::{Command, Engine, EngineHandle, EngineMetrics, SocketReport};

use super::{FailureReason, IcmpOutcome, RttClock};

/// One echo of a cycle.
#[derive(Debug, Clone)]
pub(crate) enum Echo {
    /// Sent (or about to be), fate unknown.
    Waiting,
    /// Answered after `rtt`; `kernel` when both ends of it are the
    /// kernel's timestamps.
    Reply {
        rtt: Duration,
        kernel: bool,
    },
    Lost(FailureReason),
}

/// Fold the echoes of one cycle into an outcome. With no reply, the reason
/// is the most telling one seen: an ICMP error names a router, a missing
/// route names our own side, a timeout says least.
pub(crate) fn summarize(at: chrono::DateTime<Utc>, ip: IpAddr, echoes: &[Echo]) -> IcmpOutcome {
    let sent = echoes.len() as u32;
    let mut kernel_clock = true;
    let mut rtts = Vec::with_capacity(echoes.len());
    let mut worst: Option<FailureReason> = None;
    let rank = |f: &FailureReason| match f {
        FailureReason::IcmpUnreachable { .. } => 4,
        FailureReason::NoRoute => 3,
        FailureReason::Timeout => 2,
        _ => 1,
    };
    let mut all_send_errors = !echoes.is_empty();
    for e in echoes {
        match e {
            Echo::Reply { rtt, kernel } => {
                rtts.push(*rtt);
                kernel_clock &= kernel;
                all_send_errors = false;
            }
            Echo::Waiting => {
                all_send_errors = false;
                if worst.is_none() {
                    worst = Some(FailureReason::Timeout);
                }
            }
            Echo::Lost(f) => {
                if !matches!(f, FailureReason::SendError { .. }) {
                    all_send_errors = false;
                }
                if worst.as_ref().is_none_or(|w| rank(f) > rank(w)) {
                    worst = Some(f.clone());
                }
            }
        }
    }
    let received = rtts.len() as u32;
    let failure = if received > 0 {
        None
    } else if all_send_errors {
        worst
    } else {
        worst
            .filter(|w| !matches!(w, FailureReason::SendError { .. }))
            .or(Some(FailureReason::Timeout))
    };
    let rtt_clock = (received > 0).then_some(if kernel_clock {
        RttClock::Kernel
    } else {
        RttClock::User
    });
    IcmpOutcome {
        at,
        address: Some(ip),
        sent,
        received,
        rtts,
        rtt_clock,
        failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip() -> IpAddr {
        IpAddr::from([198, 51, 100, 1])
    }

    #[test]
    fn an_icmp_error_is_never_a_reply() {
        let echoes = vec![
            Echo::Lost(FailureReason::Timeout),
            Echo::Lost(FailureReason::IcmpUnreachable {
                from: IpAddr::from([198, 51, 100, 254]),
                icmp_type: 3,
                code: 1,
            }),
        ];
        let o = summarize(Utc::now(), ip(), &echoes);
        assert_eq!(o.received, 0);
        assert_eq!(
            o.failure.as_ref().map(|f| f.code()),
            Some("icmp_unreachable")
        );
        assert!(!o.is_probe_error());
    }

    #[test]
    fn partial_loss_is_a_success_with_loss() {
        let echoes = vec![
            Echo::Reply {
                rtt: Duration::from_millis(1),
                kernel: true,
            },
            Echo::Lost(FailureReason::Timeout),
        ];
        let o = summarize(Utc::now(), ip(), &echoes);
        assert!(o.success());
        assert_eq!(o.failure, None);
        assert_eq!(o.loss_ratio(), Some(0.5));
    }

    #[test]
    fn only_local_send_errors_mean_the_probe_did_not_run() {
        let e = || {
            Echo::Lost(FailureReason::SendError {
                message: "x".into(),
            })
        };
        let o = summarize(Utc::now(), ip(), &[e(), e()]);
        assert!(o.is_probe_error());
        let o = summarize(Utc::now(), ip(), &[e(), Echo::Lost(FailureReason::Timeout)]);
        assert!(!o.is_probe_error());
        assert_eq!(o.failure, Some(FailureReason::Timeout));
    }
}
