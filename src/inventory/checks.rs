//! Service checks: a target whose state is its application's answer
//! (a TCP port, an HTTP(S) endpoint, a TLS certificate, a DNS server)
//! rather than its ICMP stack. Validated by `config::checks`; run by
//! [`crate::probe::check`].

use std::time::Duration;

use super::Pattern;
use crate::model::secret::Secret;

/// Defaults of the checks, one place for the README and the code.
pub mod defaults {
    use std::time::Duration;

    pub const INTERVAL: Duration = Duration::from_secs(30);
    pub const TIMEOUT: Duration = Duration::from_secs(10);
    /// A certificate that expires sooner than this is `degraded`.
    pub const CERT_EXPIRY_WARNING: Duration = Duration::from_secs(14 * 86_400);
    pub const MAX_REDIRECTS: u32 = 10;
    /// Bytes of an HTTP body read at most (a body condition sees no more).
    pub const MAX_BODY_BYTES: usize = 1 << 20;
    /// Bytes of a TCP banner read at most.
    pub const MAX_BANNER_BYTES: usize = 4096;
    pub const DNS_PORT: u16 = 53;
}

/// One target's check and its timing.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSettings {
    pub interval: Duration,
    /// The whole check (connection, TLS, request, answer) at most.
    pub timeout: Duration,
    pub spec: CheckSpec,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckSpec {
    Tcp(TcpCheck),
    Http(Box<HttpCheck>),
    Tls(TlsCheck),
    Dns(DnsCheck),
}

/// Connect to a port; optionally send a line and expect an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpCheck {
    pub port: u16,
    /// Sent once connected (with `\r\n` appended).
    pub send: Option<String>,
    /// Searched for in what the server sends (e.g. an SMTP banner `^220 `).
    pub expect: Option<Pattern>,
}

/// How a TLS client verifies and presents itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsClient {
    /// PEM bundle of the CAs to trust instead of the system's (a
    /// municipality's internal CA). Read at load.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate chain (PEM), with `client_key`.
    pub client_cert_pem: Option<Vec<u8>>,
    /// Client private key (PEM): a secret.
    pub client_key_pem: Option<Secret>,
    /// The name to verify and send as SNI; default the URL's host or the
    /// target's address.
    pub server_name: Option<String>,
    /// Accept any certificate (expiry is still read and graded).
    pub insecure_skip_verify: bool,
}

/// An HTTP(S) request and the conditions its answer must meet.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpCheck {
    /// Absolute `http://` or `https://` URL; its host is sent as `Host`
    /// and SNI, the connection goes to the target's address.
    pub url: url::Url,
    pub method: String,
    /// Headers sent; values may be secrets.
    pub headers: Vec<(String, HeaderValue)>,
    /// Status codes that pass (e.g. 200–299).
    pub status: Vec<StatusRange>,
    /// Searched for in the body (up to `MAX_BODY_BYTES`).
    pub body: Option<Pattern>,
    /// Not to be found in the body.
    pub body_not: Option<Pattern>,
    pub json: Option<JsonCondition>,
    /// A slower answer is `degraded`.
    pub degraded_response_time: Option<Duration>,
    pub follow_redirects: bool,
    pub max_redirects: u32,
    pub tls: TlsClient,
    pub cert_expiry_warning: Duration,
    /// Through this HTTP proxy; `None`: straight to the target.
    pub proxy: Option<Proxy>,
}

/// An HTTP proxy: `http` URLs are sent to it in absolute form, `https`
/// through a `CONNECT` tunnel (TLS end to end, verified as without it).
#[derive(Debug, Clone, PartialEq)]
pub struct Proxy {
    /// A name (looked up at each check) or an address.
    pub host: String,
    pub port: u16,
    /// `Proxy-Authorization`'s value (`Basic …`); never shown.
    pub authorization: Option<Secret>,
}

impl Proxy {
    /// `host:port`, as reasons name it.
    pub fn name(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A header's value: plain, or a secret (never shown).
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderValue {
    Plain(String),
    Secret(Secret),
}

impl HeaderValue {
    pub fn expose(&self) -> &str {
        match self {
            HeaderValue::Plain(s) => s,
            HeaderValue::Secret(s) => s.expose(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    pub from: u16,
    pub to: u16,
}

impl StatusRange {
    pub fn contains(&self, code: u16) -> bool {
        (self.from..=self.to).contains(&code)
    }
}

impl std::fmt::Display for StatusRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else if self.from % 100 == 0 && self.to == self.from + 99 {
            write!(f, "{}xx", self.from / 100)
        } else {
            write!(f, "{}-{}", self.from, self.to)
        }
    }
}

/// A JSON body's value at a pointer (RFC 6901), compared or matched.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonCondition {
    pub pointer: String,
    /// Equal to this JSON value.
    pub equals: Option<serde_json::Value>,
    /// Or, its text (a string as is, anything else as JSON) matches this.
    pub matches: Option<Pattern>,
}

/// A TLS port's certificate chain.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsCheck {
    pub port: u16,
    pub tls: TlsClient,
    pub cert_expiry_warning: Duration,
}

/// A DNS question to the target (a DNS server) and the answer expected.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsCheck {
    pub port: u16,
    pub name: String,
    /// `A`, `AAAA`, `MX`, … (hickory's names).
    pub record_type: String,
    pub tcp: bool,
    /// Response codes that pass (default `NOERROR`).
    pub rcodes: Vec<String>,
    /// Some answer record (its data as text) must match.
    pub answer: Option<Pattern>,
    /// The answer must not be empty.
    pub require_answer: bool,
}

#[cfg(test)]
mod tests {
    use super::Proxy;

    #[test]
    fn a_proxy_is_named_host_and_port_an_ipv6_address_bracketed() {
        let p = |host: &str| Proxy {
            host: host.into(),
            port: 3128,
            authorization: None,
        };
        assert_eq!(p("proxy.iks.local").name(), "proxy.iks.local:3128");
        assert_eq!(p("198.51.100.30").name(), "198.51.100.30:3128");
        assert_eq!(p("2001:db8::3").name(), "[2001:db8::3]:3128");
    }
}
