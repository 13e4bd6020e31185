//! Why a target is in its state, typed: probes and health build these,
//! and only the edges (the API, logs, the ledger's text) render them to
//! words. Nothing matches reasons by their text.

use std::fmt;
use std::net::IpAddr;

use serde::{Serialize, Serializer};

/// Why an ICMP echo cycle got nothing back, or could not run.
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
    /// The agent could not open a socket (out of file descriptors or
    /// memory): says nothing about the target.
    NoSocket { message: String },
    /// The agent's ICMP engine stopped (its wait on the sockets failed,
    /// or it panicked): nothing is probed until the agent restarts.
    EngineStopped { message: String },
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
                | FailureReason::NoSocket { .. }
                | FailureReason::EngineStopped { .. }
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
            FailureReason::NoSocket { .. } => "no_socket",
            FailureReason::EngineStopped { .. } => "engine_stopped",
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
            FailureReason::NoSocket { message } => write!(
                f,
                "the agent could not open a socket ({message}); nothing is known of the target"
            ),
            FailureReason::EngineStopped { message } => write!(
                f,
                "the agent's ICMP engine stopped ({message}); nothing is probed until the agent restarts"
            ),
        }
    }
}

/// Why an SNMP request failed. Built from kinds only: never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "code", content = "detail", rename_all = "snake_case")]
pub enum SnmpError {
    #[error("no answer after {attempts} attempt(s) of {timeout_ms} ms (agent down or filtered; or a wrong v2c community on an agent without SNMPv3)")]
    Timeout { attempts: u32, timeout_ms: u64 },
    #[error("authentication failed ({0})")]
    Auth(String),
    #[error("could not decode the answer ({0})")]
    Decode(String),
    #[error("the agent answered with error {0}")]
    Agent(String),
    #[error("socket error ({0}); an ICMP port unreachable means no SNMP agent listens")]
    Io(String),
    /// The poll did not run: the agent could not open its socket (out of
    /// file descriptors, buffers or memory). Not a fault of the device.
    #[error("the agent could not open a socket ({0}); the poll did not run")]
    Local(String),
}

/// Every [`SnmpError::code`].
pub const SNMP_ERROR_CODES: [&str; 6] = ["timeout", "auth", "decode", "agent_error", "io", "local"];

impl SnmpError {
    /// Stable code for the `reason` label of `utkikk_snmp_errors_total`.
    pub fn code(&self) -> &'static str {
        match self {
            SnmpError::Timeout { .. } => "timeout",
            SnmpError::Auth(_) => "auth",
            SnmpError::Decode(_) => "decode",
            SnmpError::Agent(_) => "agent_error",
            SnmpError::Io(_) => "io",
            SnmpError::Local(_) => "local",
        }
    }

    /// The device's verdict: no answer at all (`snmp_unreachable`), an
    /// authentication failure (`snmp_auth`), another error (`snmp_error`,
    /// the device answered), or none (`probe_not_run`).
    pub fn verdict_code(&self) -> &'static str {
        match self {
            SnmpError::Timeout { .. } | SnmpError::Io(_) => "snmp_unreachable",
            SnmpError::Auth(_) => "snmp_auth",
            SnmpError::Decode(_) | SnmpError::Agent(_) => "snmp_error",
            SnmpError::Local(_) => "probe_not_run",
        }
    }

    /// The poll did not run (a local failure): nothing is known of the
    /// device.
    pub fn is_local(&self) -> bool {
        matches!(self, SnmpError::Local(_))
    }

    /// Nothing answered: the device may be gone (otherwise it answers,
    /// however badly).
    pub fn is_silence(&self) -> bool {
        matches!(self, SnmpError::Timeout { .. } | SnmpError::Io(_))
    }
}

/// One end of a link, named for people: its interface on its device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndName {
    pub device: String,
    pub interface: String,
    pub if_index: Option<u64>,
}

impl fmt::Display for EndName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.interface, self.device)?;
        if let Some(i) = self.if_index {
            write!(f, " (ifIndex {i})")?;
        }
        Ok(())
    }
}

/// Why an end of a link could not be judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndUnknown {
    /// Its device has not been polled yet.
    NotPolled,
    /// Its device's poll (or the end's own read) failed.
    PollFailed(SnmpError),
    /// No interface of that ifName or ifAlias.
    NoSuchInterface,
    NoOperStatus,
}

/// What one end of a link says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndStatus {
    Up,
    /// Operationally down (IF-MIB ifOperStatus) while administratively up:
    /// a failure.
    Down {
        end: EndName,
        oper_status: u64,
    },
    /// Shut on purpose: not a failure of the link.
    AdminDown {
        end: EndName,
    },
    /// The end could not be read.
    Unknown {
        end: EndName,
        why: EndUnknown,
    },
}

impl EndStatus {
    pub fn is_down(&self) -> bool {
        matches!(self, EndStatus::Down { .. })
    }

    fn code(&self) -> &'static str {
        match self {
            EndStatus::Up => "up",
            EndStatus::Down { .. } => "down",
            EndStatus::AdminDown { .. } => "admin_down",
            EndStatus::Unknown { .. } => "unknown",
        }
    }
}

fn oper_name(s: u64) -> String {
    let name = match s {
        1 => "up",
        2 => "down",
        3 => "testing",
        4 => "unknown",
        5 => "dormant",
        6 => "notPresent",
        7 => "lowerLayerDown",
        _ => return s.to_string(),
    };
    format!("{name}({s})")
}

impl fmt::Display for EndStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndStatus::Up => f.write_str("up"),
            EndStatus::Down { end, oper_status } => write!(
                f,
                "interface {end} is down (ifOperStatus {}) while administratively up",
                oper_name(*oper_status)
            ),
            EndStatus::AdminDown { end } => write!(f, "{end} is administratively down"),
            EndStatus::Unknown { end, why } => match why {
                EndUnknown::NotPolled => write!(f, "{} not polled yet", end.device),
                EndUnknown::PollFailed(e) => {
                    write!(f, "{} could not be polled: {e}", end.device)
                }
                EndUnknown::NoSuchInterface => write!(
                    f,
                    "no interface {:?} (ifName or ifAlias) on {}",
                    end.interface, end.device
                ),
                EndUnknown::NoOperStatus => write!(f, "{end} has no ifOperStatus"),
            },
        }
    }
}

impl schemars::JsonSchema for EndStatus {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EndStatus".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "What a link end's interface said at the last poll.",
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"type": "string", "enum": ["up", "down", "admin_down", "unknown"]},
                "reason": {"type": "string", "description": "Why, in words: absent when up."}
            }
        })
    }
}

/// `{"status": "down", "reason": "…"}`, as the API has always shown it.
impl Serialize for EndStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("EndStatus", 2)?;
        st.serialize_field("status", self.code())?;
        match self {
            EndStatus::Up => st.skip_field("reason")?,
            other => st.serialize_field("reason", &other.to_string())?,
        }
        st.end()
    }
}

/// Why a target is in its state (or why its last observation graded it
/// as it did).
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    NotProbedYet,
    NoProbeEnabled,
    /// Its address or kind changed by a reload: monitoring starts anew.
    IdentityChanged,
    RemovedFromConfig,
    /// The probe could not run: says nothing about the target.
    NotRun(FailureReason),
    /// An SNMP-only target whose probe could not run.
    SnmpNotRun(FailureReason),
    /// An echo cycle got nothing back.
    Icmp(FailureReason),
    /// Replies, but too many lost.
    Loss {
        ratio: f64,
        limit: f64,
    },
    /// Replies, but slow.
    Rtt {
        mean_seconds: f64,
        limit_seconds: f64,
    },
    Replies,
    /// A service check whose probe could not run (`check` is `tcp`,
    /// `http`, `tls` or `dns`).
    CheckNotRun {
        check: &'static str,
        reason: FailureReason,
    },
    /// A service check found something wrong.
    Check(super::CheckProblem),
    /// A service check passed.
    CheckPasses {
        check: &'static str,
    },
    /// SNMP polling fails.
    Snmp(SnmpError),
    SnmpAnswers,
    /// A link held down by the ends that are down.
    EndsDown(Vec<EndStatus>),
    EndsUp,
    /// No end of the link could be judged.
    EndsUnknown(Vec<EndStatus>),
    /// Good observations again, but not yet enough to recover.
    Recovering {
        good: u32,
        needed: u32,
    },
    /// Failing behind a failing parent; `root` is the root cause.
    Parent {
        root: String,
        cause: Box<Reason>,
        /// Seen as its own failure first, attributed once the parent's was
        /// confirmed.
        afterwards: bool,
    },
}

impl Reason {
    /// Short, stable code (API `reason_code`).
    pub fn code(&self) -> &'static str {
        match self {
            Reason::NotProbedYet => "not_probed_yet",
            Reason::NoProbeEnabled => "no_probe_enabled",
            Reason::IdentityChanged => "identity_changed",
            Reason::RemovedFromConfig => "removed_from_config",
            Reason::NotRun(_) | Reason::SnmpNotRun(_) | Reason::CheckNotRun { .. } => {
                "probe_not_run"
            }
            Reason::Check(p) => p.code(),
            Reason::CheckPasses { .. } => "check_passes",
            Reason::Icmp(f) => match f {
                FailureReason::IcmpUnreachable { .. } => "icmp_unreachable",
                FailureReason::NoRoute => "no_route",
                _ => "timeout",
            },
            Reason::Loss { .. } => "loss",
            Reason::Rtt { .. } => "rtt",
            Reason::Replies => "replies",
            Reason::Snmp(e) => e.verdict_code(),
            Reason::SnmpAnswers => "snmp_answers",
            Reason::EndsDown(_) => "link_end_down",
            Reason::EndsUp => "link_ends_up",
            Reason::EndsUnknown(_) => "link_ends_unknown",
            Reason::Recovering { .. } => "recovering",
            Reason::Parent { .. } => "parent_down",
        }
    }
}

fn join(f: &mut fmt::Formatter<'_>, ends: &[EndStatus]) -> fmt::Result {
    for (i, e) in ends.iter().enumerate() {
        if i > 0 {
            f.write_str("; ")?;
        }
        write!(f, "{e}")?;
    }
    Ok(())
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NotProbedYet => f.write_str("not probed yet"),
            Reason::NoProbeEnabled => f.write_str("no probe enabled"),
            Reason::IdentityChanged => {
                f.write_str("address or kind changed by a reload; monitoring starts anew")
            }
            Reason::RemovedFromConfig => f.write_str("removed from the configuration"),
            Reason::NotRun(r) => write!(f, "probe could not run: {r}"),
            Reason::SnmpNotRun(r) => write!(f, "SNMP poll could not run: {r}"),
            Reason::CheckNotRun { check, reason } => {
                write!(f, "{} check could not run: {reason}", check.to_uppercase())
            }
            Reason::Check(p) => write!(f, "{p}"),
            Reason::CheckPasses { check } => write!(f, "{} check passes", check.to_uppercase()),
            Reason::Icmp(r) => write!(f, "{r}"),
            Reason::Loss { ratio, limit } => write!(
                f,
                "loss {:.0} % above {:.0} %",
                ratio * 100.0,
                limit * 100.0
            ),
            Reason::Rtt {
                mean_seconds,
                limit_seconds,
            } => write!(
                f,
                "mean RTT {:.1} ms above {:.1} ms",
                mean_seconds * 1e3,
                limit_seconds * 1e3
            ),
            Reason::Replies => f.write_str("replies within thresholds"),
            Reason::Snmp(e) => write!(f, "{}: {e}", e.verdict_code()),
            Reason::SnmpAnswers => f.write_str("SNMP answers"),
            Reason::EndsDown(ends) => join(f, ends),
            Reason::EndsUp => f.write_str("link interfaces up"),
            Reason::EndsUnknown(ends) => {
                f.write_str("no end of the link can be judged: ")?;
                join(f, ends)
            }
            Reason::Recovering { good, needed } => write!(
                f,
                "good again for {good} of the {needed} cycles needed to recover"
            ),
            Reason::Parent {
                root,
                cause,
                afterwards,
            } => {
                write!(f, "parent {root} is down; {cause}")?;
                if *afterwards {
                    f.write_str(" (attributed afterwards)")?;
                }
                Ok(())
            }
        }
    }
}

/// Rendered to words: the ledger keeps text, the API shows it.
impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_before() {
        let end = EndName {
            device: "b".into(),
            interface: "ge-0/0/2".into(),
            if_index: Some(2),
        };
        let down = EndStatus::Down {
            end: end.clone(),
            oper_status: 7,
        };
        assert_eq!(
            down.to_string(),
            "interface ge-0/0/2 on b (ifIndex 2) is down (ifOperStatus lowerLayerDown(7)) while administratively up"
        );
        assert_eq!(
            serde_json::to_value(&down).unwrap()["status"],
            serde_json::json!("down")
        );
        let r = Reason::Parent {
            root: "sw".into(),
            cause: Box::new(Reason::Icmp(FailureReason::Timeout)),
            afterwards: false,
        };
        assert_eq!(
            r.to_string(),
            "parent sw is down; no reply before the timeout"
        );
        assert_eq!(r.code(), "parent_down");
        let auth = Reason::Snmp(SnmpError::Auth("x".into()));
        assert!(auth.to_string().starts_with("snmp_auth: "));
    }
}
