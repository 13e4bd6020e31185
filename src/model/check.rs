//! What a service check (TCP, HTTP(S), TLS, DNS) found wrong, typed. The
//! prober that knows the check's conditions builds these; each says
//! whether it makes the target `down` or only `degraded`. Built from
//! what the server sent and the check's own settings: never a secret
//! (header values, passwords and keys are not in any of them).

use std::fmt;

use chrono::{DateTime, Utc};

/// Longest text of a server's own we quote in a reason (a banner, a DNS
/// answer, an error message).
const QUOTE_CHARS: usize = 120;

/// What a check found wrong.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckProblem {
    /// The connection was refused, reset or could not be made.
    Connect { error: String },
    /// The check's HTTP proxy failed it: unreachable, or it would not
    /// pass the request on (`proxy` is its `host:port`).
    Proxy { proxy: String, error: String },
    /// Nothing (or not all) came back in time; `phase` is where it stopped.
    Timeout { phase: &'static str, after_ms: u64 },
    /// The TLS handshake failed (not the certificate's dates: those are
    /// [`CheckProblem::CertExpired`] and [`CheckProblem::CertExpiring`]).
    Tls { error: String },
    /// The certificate chain does not verify (unknown CA, wrong name,
    /// revoked…).
    CertInvalid { subject: String, error: String },
    CertExpired {
        subject: String,
        not_after: DateTime<Utc>,
    },
    /// Valid, but expires within the warning time: `degraded`.
    CertExpiring {
        subject: String,
        not_after: DateTime<Utc>,
        days_left: i64,
    },
    /// The server did not speak the protocol (a malformed HTTP answer).
    Protocol { error: String },
    /// An HTTP status outside the expected ones.
    Status { got: u16, expected: String },
    /// The body lacks what it must have (or has what it must not).
    Body { condition: String },
    /// A redirect the check does not follow, or too many.
    Redirect { location: String, why: &'static str },
    /// The answer came, but slower than the `degraded` limit.
    Slow { seconds: f64, limit_seconds: f64 },
    /// The TCP answer does not match `expect`.
    Banner { expected: String, got: String },
    /// The DNS server answered with another response code.
    DnsRcode { got: String, expected: String },
    /// The DNS answer lacks the expected record.
    DnsAnswer { expected: String, got: String },
}

impl CheckProblem {
    /// Only `degraded`: the service answers, but not well.
    pub fn is_degraded(&self) -> bool {
        matches!(
            self,
            CheckProblem::Slow { .. } | CheckProblem::CertExpiring { .. }
        )
    }

    /// Short, stable code (API `reason_code`, metrics).
    pub fn code(&self) -> &'static str {
        match self {
            CheckProblem::Connect { .. } => "connect_failed",
            CheckProblem::Proxy { .. } => "proxy_failed",
            CheckProblem::Timeout { .. } => "check_timeout",
            CheckProblem::Tls { .. } => "tls_handshake",
            CheckProblem::CertInvalid { .. } => "tls_cert_invalid",
            CheckProblem::CertExpired { .. } => "tls_cert_expired",
            CheckProblem::CertExpiring { .. } => "tls_cert_expiring",
            CheckProblem::Protocol { .. } => "protocol_error",
            CheckProblem::Status { .. } => "http_status",
            CheckProblem::Body { .. } => "http_body",
            CheckProblem::Redirect { .. } => "http_redirect",
            CheckProblem::Slow { .. } => "slow_response",
            CheckProblem::Banner { .. } => "tcp_answer",
            CheckProblem::DnsRcode { .. } => "dns_rcode",
            CheckProblem::DnsAnswer { .. } => "dns_answer",
        }
    }
}

/// `s` cut to [`QUOTE_CHARS`] characters, control characters escaped.
pub fn quote(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(QUOTE_CHARS)
        .flat_map(char::escape_default)
        .collect();
    if s.chars().count() > QUOTE_CHARS {
        out.push('…');
    }
    out
}

fn date(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

impl fmt::Display for CheckProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckProblem::Connect { error } => write!(f, "connection failed: {error}"),
            CheckProblem::Proxy { proxy, error } => write!(f, "proxy {proxy}: {error}"),
            CheckProblem::Timeout { phase, after_ms } => {
                write!(f, "no answer after {after_ms} ms (stopped at {phase})")
            }
            CheckProblem::Tls { error } => write!(f, "TLS handshake failed: {error}"),
            CheckProblem::CertInvalid { subject, error } => {
                write!(f, "certificate {subject} is not valid: {error}")
            }
            CheckProblem::CertExpired { subject, not_after } => {
                write!(f, "certificate {subject} expired on {}", date(not_after))
            }
            CheckProblem::CertExpiring {
                subject,
                not_after,
                days_left,
            } => write!(
                f,
                "certificate {subject} expires on {} (in {days_left} day{})",
                date(not_after),
                if *days_left == 1 { "" } else { "s" }
            ),
            CheckProblem::Protocol { error } => write!(f, "not a valid answer: {error}"),
            CheckProblem::Status { got, expected } => {
                write!(f, "HTTP status {got}, expected {expected}")
            }
            CheckProblem::Body { condition } => write!(f, "body: {condition}"),
            CheckProblem::Redirect { location, why } => {
                write!(f, "redirect to {} {why}", quote(location))
            }
            CheckProblem::Slow {
                seconds,
                limit_seconds,
            } => write!(
                f,
                "answered in {:.0} ms, above {:.0} ms",
                seconds * 1e3,
                limit_seconds * 1e3
            ),
            CheckProblem::Banner { expected, got } => {
                write!(f, "answer {got:?} does not match /{expected}/")
            }
            CheckProblem::DnsRcode { got, expected } => {
                write!(f, "DNS answered {got}, expected {expected}")
            }
            CheckProblem::DnsAnswer { expected, got } => {
                write!(f, "no answer record matches /{expected}/ (got: {got})")
            }
        }
    }
}
