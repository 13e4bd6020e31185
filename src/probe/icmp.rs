//! ICMP echo prober on surge-ping: one shared client (socket) per address
//! family, opened once at start. A cycle sends `count` echoes `spacing`
//! apart, each waiting up to `timeout` for its own reply, all concurrently.
//!
//! surge-ping hands ICMP error messages (destination unreachable, time
//! exceeded) back as `Ok` packets: only an Echo Reply counts as a reply here.
//! RTT is timed in user space from `send_to` returning to the receive task
//! seeing the reply (no kernel timestamps in surge-ping 0.9).

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use chrono::Utc;
use futures_util::stream::{FuturesUnordered, StreamExt};
use surge_ping::{Client, Config, IcmpPacket, PingIdentifier, PingSequence, SurgeError, ICMP};

use super::{FailureReason, IcmpOutcome, Observation, Outcome, ProbeKind, Prober, Request};
use crate::inventory::IcmpSettings;

const ICMPV4_ECHO_REPLY: u8 = 0;
const ICMPV6_ECHO_REPLY: u8 = 129;

/// Shared ICMP sockets. Cheap to share behind an `Arc`.
pub struct IcmpProber {
    v4: Result<Client, FailureReason>,
    v6: Result<Client, FailureReason>,
    next_ident: AtomicU16,
}

/// What opening the sockets found, for the one startup line.
#[derive(Debug, Clone)]
pub struct SocketReport {
    pub v4: Result<&'static str, FailureReason>,
    pub v6: Result<&'static str, FailureReason>,
}

impl IcmpProber {
    /// Open one socket per family: raw first (sees ICMP errors from routers,
    /// needs CAP_NET_RAW), else an unprivileged ping socket (allowed by
    /// net.ipv4.ping_group_range). Must be called inside the tokio runtime.
    pub fn open() -> (Self, SocketReport) {
        let (v4, v4r) = open_client(ICMP::V4);
        let (v6, v6r) = open_client(ICMP::V6);
        let seed = (std::process::id() as u16).wrapping_mul(0x9e37);
        (
            IcmpProber {
                v4,
                v6,
                next_ident: AtomicU16::new(seed),
            },
            SocketReport { v4: v4r, v6: v6r },
        )
    }

    /// A fresh echo identifier for a target (raw sockets demultiplex on it;
    /// the kernel picks its own on ping sockets).
    pub fn next_ident(&self) -> u16 {
        self.next_ident.fetch_add(1, Ordering::Relaxed)
    }

    /// Run one cycle against `ip`. `seq` is the target's running sequence
    /// number; it advances by `count` so late replies of an earlier cycle
    /// never match this one.
    pub async fn probe(
        &self,
        ip: IpAddr,
        settings: &IcmpSettings,
        ident: u16,
        seq: &mut u16,
    ) -> IcmpOutcome {
        let at = Utc::now();
        let client = match (&ip, &self.v4, &self.v6) {
            (IpAddr::V4(_), Ok(c), _) | (IpAddr::V6(_), _, Ok(c)) => c,
            (IpAddr::V4(_), Err(e), _) | (IpAddr::V6(_), _, Err(e)) => {
                let mut o = IcmpOutcome::not_run(at, e.clone());
                o.address = Some(ip);
                return o;
            }
        };
        let payload = payload(settings.payload_bytes as usize);
        let first_seq = *seq;
        *seq = seq.wrapping_add(settings.count as u16);
        let start = tokio::time::Instant::now();
        // FuturesUnordered polls only the echoes that were woken, not all of
        // them on every reply (join_all does, and it showed in profiles).
        let mut echoes: FuturesUnordered<_> = (0..settings.count)
            .map(|i| {
                let payload = &payload;
                async move {
                    if i > 0 {
                        tokio::time::sleep_until(start + settings.spacing * i).await;
                    }
                    let mut pinger = client.pinger(ip, PingIdentifier(ident)).await;
                    pinger.timeout(settings.timeout);
                    let seq = PingSequence(first_seq.wrapping_add(i as u16));
                    (i, classify(pinger.ping(seq, payload).await))
                }
            })
            .collect();
        let mut results = Vec::with_capacity(settings.count as usize);
        while let Some(r) = echoes.next().await {
            results.push(r);
        }
        // Back in send order, so jitter compares consecutive echoes.
        results.sort_unstable_by_key(|(i, _)| *i);
        summarize(at, ip, results.into_iter().map(|(_, e)| e).collect())
    }
}

/// The ICMP prober of one target: an echo cycle on the shared sockets,
/// scheduled or on demand (the same cycle: a check is an observation
/// like any other).
pub struct IcmpTargetProber {
    sockets: std::sync::Arc<IcmpProber>,
    target: String,
    settings: IcmpSettings,
    ident: u16,
    seq: u16,
}

impl IcmpTargetProber {
    pub fn new(sockets: std::sync::Arc<IcmpProber>, target: &str, settings: IcmpSettings) -> Self {
        let ident = sockets.next_ident();
        IcmpTargetProber {
            sockets,
            target: target.to_string(),
            settings,
            ident,
            seq: 0,
        }
    }
}

impl Prober for IcmpTargetProber {
    const KIND: ProbeKind = ProbeKind::Icmp;

    async fn run(&mut self, ip: IpAddr, request: Request) -> Vec<Observation> {
        if matches!(request, Request::ReadEnds(_)) {
            return Vec::new();
        }
        let outcome = self
            .sockets
            .probe(ip, &self.settings, self.ident, &mut self.seq)
            .await;
        vec![Observation {
            target: self.target.clone(),
            on_demand: request != Request::Cycle,
            outcome: Outcome::Icmp(outcome),
        }]
    }
}

fn open_client(
    kind: ICMP,
) -> (
    Result<Client, FailureReason>,
    Result<&'static str, FailureReason>,
) {
    let raw = Config::builder()
        .kind(kind)
        .sock_type_hint(socket2::Type::RAW)
        .build();
    // surge-ping falls back to the other socket type by itself.
    match Client::new(&raw) {
        Ok(c) => {
            let ty = if c.get_socket().get_type() == socket2::Type::RAW {
                "raw"
            } else {
                "ping (unprivileged)"
            };
            (Ok(c), Ok(ty))
        }
        Err(e) => {
            let reason = match e.kind() {
                io::ErrorKind::PermissionDenied => FailureReason::Permission,
                _ if e.raw_os_error() == Some(97) => FailureReason::FamilyUnavailable, // EAFNOSUPPORT
                _ => FailureReason::SendError {
                    message: e.to_string(),
                },
            };
            (Err(reason.clone()), Err(reason))
        }
    }
}

fn payload(len: usize) -> Vec<u8> {
    // A recognisable pattern, as ping(8) fills its payload.
    (0..len).map(|i| (i % 256) as u8).collect()
}

enum Echo {
    Reply(Duration),
    Lost(FailureReason),
}

fn classify(r: Result<(IcmpPacket, Duration), SurgeError>) -> Echo {
    match r {
        Ok((packet, rtt)) => {
            let (from, icmp_type, code, echo_reply) = match &packet {
                IcmpPacket::V4(p) => (
                    IpAddr::V4(p.get_source()),
                    p.get_icmp_type().0,
                    p.get_icmp_code().0,
                    ICMPV4_ECHO_REPLY,
                ),
                IcmpPacket::V6(p) => (
                    IpAddr::V6(p.get_source()),
                    p.get_icmpv6_type().0,
                    p.get_icmpv6_code().0,
                    ICMPV6_ECHO_REPLY,
                ),
            };
            if icmp_type == echo_reply {
                Echo::Reply(rtt)
            } else {
                Echo::Lost(FailureReason::IcmpUnreachable {
                    from,
                    icmp_type,
                    code,
                })
            }
        }
        Err(SurgeError::Timeout { .. }) => Echo::Lost(FailureReason::Timeout),
        Err(SurgeError::IOError(e)) => Echo::Lost(match e.kind() {
            io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::AddrNotAvailable => FailureReason::NoRoute,
            _ => FailureReason::SendError {
                message: e.to_string(),
            },
        }),
        Err(e) => Echo::Lost(FailureReason::SendError {
            message: e.to_string(),
        }),
    }
}

/// Fold the echoes of one cycle into an outcome. With no reply, the reason
/// is the most telling one seen: an ICMP error names a router, a missing
/// route names our own side, a timeout says least.
fn summarize(at: chrono::DateTime<Utc>, ip: IpAddr, echoes: Vec<Echo>) -> IcmpOutcome {
    let sent = echoes.len() as u32;
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
            Echo::Reply(rtt) => {
                rtts.push(rtt);
                all_send_errors = false;
            }
            Echo::Lost(f) => {
                if !matches!(f, FailureReason::SendError { .. }) {
                    all_send_errors = false;
                }
                if worst.as_ref().is_none_or(|w| rank(&f) > rank(w)) {
                    worst = Some(f);
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
    IcmpOutcome {
        at,
        address: Some(ip),
        sent,
        received,
        rtts,
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
        let o = summarize(Utc::now(), ip(), echoes);
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
            Echo::Reply(Duration::from_millis(1)),
            Echo::Lost(FailureReason::Timeout),
        ];
        let o = summarize(Utc::now(), ip(), echoes);
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
        let o = summarize(Utc::now(), ip(), vec![e(), e()]);
        assert!(o.is_probe_error());
        let o = summarize(
            Utc::now(),
            ip(),
            vec![e(), Echo::Lost(FailureReason::Timeout)],
        );
        assert!(!o.is_probe_error());
        assert_eq!(o.failure, Some(FailureReason::Timeout));
    }
}
