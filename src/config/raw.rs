//! Raw configuration as written in YAML: every leaf that validation may
//! complain about is wrapped in [`Spanned`] so a problem can name its
//! file:line:column. Nothing here is checked beyond its YAML type; see
//! `validate.rs` for the rules and `defaults.rs`-style constants in
//! [`crate::inventory`] for the values used when a key is absent.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// A value with where it was written (file:line:column), as it reads in
/// YAML (the JSON Schema shows `T`).
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct S<T>(pub Spanned<T>);

impl<T> std::ops::Deref for S<T> {
    type Target = Spanned<T>;
    fn deref(&self) -> &Spanned<T> {
        &self.0
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for S<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The agent itself: its id, where it listens and keeps its ledger.
    #[serde(default)]
    pub agent: RawAgent,
    /// Settings every target inherits unless it sets its own.
    #[serde(default)]
    pub defaults: RawDefaults,
    /// The member municipalities (stable ids; names, numbers and merges effective-dated).
    #[serde(default)]
    pub members: Vec<RawMember>,
    /// Places (a data centre, a town hall), each belonging to a member.
    #[serde(default)]
    pub sites: Vec<RawSite>,
    /// What to probe: links, switches, routers, firewalls, servers, services.
    #[serde(default)]
    pub targets: Vec<RawTarget>,
    /// What members rely on, made of targets, with their service levels (SLA).
    #[serde(default)]
    pub services: Vec<RawService>,
    /// Planned maintenance windows from the config (the API can declare more).
    #[serde(default)]
    pub maintenance: Vec<RawMaintenance>,
    /// The monthly reports.
    #[serde(default)]
    pub reports: RawReports,
    /// The status pages (`/status`, `/status/{member}`): the region's page
    /// and how often an open page refreshes itself. Each member's page is
    /// set on the member (`members[].status_page`).
    #[serde(default)]
    pub status_page: RawStatusPage,
    /// Where the record is kept: the embedded SQLite file in `agent.data_dir`
    /// (the default), or also a PostgreSQL database shared by several agents.
    #[serde(default)]
    pub ledger: RawLedger,
}

/// The ledger's backend.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLedger {
    /// `sqlite` (default: one agent, no server) or `postgres`: every record
    /// is committed to the agent's SQLite file first and copied from there
    /// to PostgreSQL, so nothing is lost while the server is unreachable.
    pub backend: Option<S<String>>,
    /// PostgreSQL connection string (`postgresql://user:password@host/db?sslmode=verify-full`
    /// or `host=… dbname=…`), given as `env:NAME` or `file:PATH`: it holds
    /// the password. With TLS (`sslmode=require`, `verify-ca` or
    /// `verify-full`) the server's certificate and name are always checked.
    /// Only with `backend: postgres`.
    pub url: Option<S<String>>,
    /// PEM file of the CA(s) that sign the PostgreSQL server's certificate;
    /// default: the system's CAs.
    pub ca_file: Option<S<String>>,
}

/// The status pages.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStatusPage {
    /// Who may see the region's page (`/status`); off unless set. The
    /// region's token also opens every member's page.
    pub region: Option<S<RawStatusAccess>>,
    /// How often an open page asks for news (a small script; the page
    /// works without it); default `30s`, at least `1s`.
    pub refresh: Option<S<String>>,
}

/// Who may read a status page: everyone (`public: true`) or whoever has
/// the read token. Neither: the page is off (404). A read token never
/// allows a write.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStatusAccess {
    /// Anyone may read the page, without a token.
    pub public: Option<S<bool>>,
    /// The read token: `env:NAME` or `file:PATH` (at least 16 characters).
    /// Given as `Authorization: Bearer …` or `?token=…` (a browser then
    /// keeps it in a cookie and the address loses it).
    pub token: Option<S<String>>,
}

/// The monthly reports.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawReports {
    /// The inter-municipal company, named in each report's header.
    pub organisation: Option<S<String>>,
}

/// A maintenance window; the keys of the API's JSON body, with positions.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMaintenance {
    /// Stable id of the window (changing it withdraws the old window).
    pub id: S<String>,
    /// Targets covered by the window.
    #[serde(default)]
    pub targets: Vec<S<String>>,
    /// `planned_change`, `carrier_work`, `vendor_work`, `power_work` or `other`.
    pub category: Option<S<String>>,
    /// Shown in the reports beside the window.
    pub note: Option<S<String>>,
    /// One-off: RFC 3339 instants with offset.
    pub start: Option<S<String>>,
    /// End of a one-off window (RFC 3339 with offset).
    pub end: Option<S<String>>,
    /// A window every week on the given days.
    pub weekly: Option<RawWeekly>,
    /// A window every month on a day or a weekday of a week.
    pub monthly: Option<RawMonthly>,
    /// First day a recurring window applies (Europe/Oslo).
    pub from: Option<S<NaiveDate>>,
    /// Last day a recurring window applies (Europe/Oslo).
    pub until: Option<S<NaiveDate>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWeekly {
    /// Weekdays: `mon` … `sun`.
    #[serde(default)]
    pub days: Vec<S<String>>,
    /// Start, local time `HH:MM` (Europe/Oslo).
    pub at: S<String>,
    /// How long, e.g. `2h`.
    pub duration: S<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMonthly {
    /// Day of the month, 1–31 (or use `weekday` and `week`).
    pub day: Option<S<u32>>,
    /// `mon` … `sun`, with `week`.
    pub weekday: Option<S<String>>,
    /// 1–4, or `last`.
    pub week: Option<S<serde_json::Value>>,
    /// Start, local time `HH:MM` (Europe/Oslo).
    pub at: S<String>,
    /// How long, e.g. `2h`.
    pub duration: S<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    /// Stable id (reports and the ledger key on it).
    pub id: S<String>,
    /// Shown in reports and dashboards.
    pub name: S<String>,
    /// Member ids that rely on the service.
    #[serde(default)]
    pub serves: Vec<S<String>>,
    /// Targets that must all be up.
    #[serde(default)]
    pub targets: Vec<S<String>>,
    /// Redundancy groups: each is up while any of its targets is up.
    #[serde(default)]
    pub redundancy: Vec<Vec<S<String>>>,
    /// The service levels, each in force from its `valid_from`.
    #[serde(default)]
    pub sla: Vec<RawLevel>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLevel {
    /// First day the level is in force (Europe/Oslo); a month is judged by the level of its first day.
    pub valid_from: S<NaiveDate>,
    /// Percent, e.g. 99.5.
    pub objective: S<f64>,
    /// `24x7` (default) or `business_hours`.
    pub schedule: Option<S<String>>,
    /// With `schedule: business_hours`: the hours that count.
    pub business_hours: Option<RawBusinessHours>,
    /// How `degraded` counts: `up` (default) or `down`.
    pub degraded: Option<S<String>>,
    /// How `unreachable` counts: `excluded` (default) or `down`.
    pub unreachable: Option<S<String>>,
    /// Percent of the scheduled time that must have been observed for a
    /// verdict (default 90); below it the month's verdict is unknown.
    pub min_coverage: Option<S<f64>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBusinessHours {
    /// Weekdays, default `mon`–`fri`.
    pub days: Option<Vec<S<String>>>,
    /// Opening time `HH:MM`, default 07:00.
    pub from: Option<S<String>>,
    /// Closing time `HH:MM`, default 17:00.
    pub to: Option<S<String>>,
    /// Norwegian public holidays are closed (default true).
    pub public_holidays: Option<S<bool>>,
    /// Further closed days (dates).
    #[serde(default)]
    pub closed: Vec<S<NaiveDate>>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    /// Names this agent in metrics (`utkikk_build_info`) and the ledger; default `utkikk`.
    pub id: Option<S<String>>,
    /// HTTP address for /metrics and the API; default `127.0.0.1:9474`.
    pub listen_address: Option<S<String>>,
    /// Directory of the ledger (relative to this file); default `/var/lib/utkikk`.
    pub data_dir: Option<S<String>>,
    /// ICMP cycles in flight at most; default 4096.
    pub max_concurrent_probes: Option<S<u32>>,
    /// SNMP device polls in flight at most; default 64.
    pub max_concurrent_snmp_polls: Option<S<u32>>,
    /// Service checks (TCP, HTTP, TLS, DNS) in flight at most; default 256.
    pub max_concurrent_checks: Option<S<u32>>,
    /// How often host names are resolved again; default `5m`.
    pub resolve_interval: Option<S<String>>,
    /// How often this month's SLA metrics are computed and link figures saved; default `1m`.
    pub sla_interval: Option<S<String>>,
    /// Bearer token for the API's writes: `env:NAME` or `file:PATH`.
    pub api_token: Option<S<String>>,
    /// Upper bounds of the per-target ICMP RTT histogram
    /// (`utkikk_icmp_rtt_seconds`), ascending durations; `[]` turns it off.
    /// Each target has this many series plus three. Default `[1ms, 2ms,
    /// 5ms, 10ms, 20ms, 50ms, 100ms, 500ms]`: 11 series a target, 110,000
    /// at 10,000 targets. Read at start only.
    pub rtt_buckets: Option<Vec<S<String>>>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    /// ICMP defaults.
    #[serde(default)]
    pub icmp: RawIcmp,
    /// State thresholds defaults.
    #[serde(default)]
    pub thresholds: RawThresholds,
    /// SNMP defaults (a target is polled only with its own `snmp` block).
    #[serde(default)]
    pub snmp: RawSnmp,
}

/// Every field optional: the same type serves `defaults.icmp` and a target's
/// own `icmp` block, which overrides the defaults key by key.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawIcmp {
    /// Probe over ICMP (default true).
    pub enabled: Option<S<bool>>,
    /// One cycle every …; default `10s`.
    pub interval: Option<S<String>>,
    /// Echoes per cycle; default 5.
    pub count: Option<S<u32>>,
    /// Time between a cycle's echoes; default `200ms`.
    pub spacing: Option<S<String>>,
    /// How long to wait for each reply; default `1s`.
    pub timeout: Option<S<String>>,
    /// Echo payload size; default 56.
    pub payload_bytes: Option<S<u32>>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawThresholds {
    /// Loss in a cycle above this (but below 1) is `degraded`; default 0.2.
    pub degraded_loss_ratio: Option<S<f64>>,
    /// Mean RTT of a cycle above this is `degraded`; default `200ms`.
    pub degraded_rtt: Option<S<String>>,
    /// Consecutive bad cycles before `down` or `degraded`; default 3.
    pub fail_after: Option<S<u32>>,
    /// Consecutive good cycles before `up` again; default 2.
    pub recover_after: Option<S<u32>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMember {
    /// Stable id (never reused: reports and merges key on it).
    pub id: S<String>,
    /// The municipality's name, as in reports.
    pub name: S<String>,
    /// The member's municipality numbers, each with the dates it was valid.
    #[serde(default)]
    pub kommunenummer: Vec<RawKommunenummer>,
    /// The member merged into another on a date: later months are reported there.
    pub merged_into: Option<RawMerge>,
    /// Who may read the member's status page (`/status/{id}`), its feed and
    /// badges; off unless set.
    pub status_page: Option<S<RawStatusAccess>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKommunenummer {
    /// Four digits, quoted (e.g. `'3006'`).
    pub number: S<String>,
    /// First day the number was valid.
    pub from: S<NaiveDate>,
    /// Last day the number was valid (open if absent).
    pub until: Option<S<NaiveDate>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMerge {
    /// The member it merged into.
    pub member: S<String>,
    /// The day of the merge.
    pub date: S<NaiveDate>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    /// Stable id.
    pub id: S<String>,
    /// Shown in dashboards.
    pub name: S<String>,
    /// The member the site belongs to (its targets' member).
    pub member: Option<S<String>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    /// Stable id (metrics, the ledger and reports key on it).
    pub id: S<String>,
    /// Shown in reports and dashboards; default the id.
    pub name: Option<S<String>>,
    /// `link`, `switch`, `router`, `firewall`, `server` or `service`.
    pub kind: S<String>,
    /// IPv4, IPv6 or a host name (resolved every `agent.resolve_interval`).
    pub address: S<String>,
    /// The site it is at (gives its member).
    pub site: Option<S<String>>,
    /// Its member, when it has no site.
    pub member: Option<S<String>>,
    /// Further members it serves (shared infrastructure).
    #[serde(default)]
    pub serves: Vec<S<String>>,
    /// Targets it depends on: while a parent is down it is `unreachable`, not `down`.
    #[serde(default)]
    pub parents: Vec<S<String>>,
    /// The agents (`agent.id`) that watch it, when several agents share a
    /// PostgreSQL ledger; an agent not listed does not probe it, and the
    /// region's record merges only the listed agents' views. Default: every
    /// agent.
    #[serde(default)]
    pub agents: Vec<S<String>>,
    /// The agent whose `down` is believed whatever the others see (one of
    /// `agents`, when those are listed). Default: `down` only when every
    /// agent that could observe it agrees.
    pub designated_agent: Option<S<String>>,
    /// Extra labels (free-form key: value).
    #[serde(default)]
    pub labels: BTreeMap<String, S<String>>,
    /// Overrides `defaults.icmp` key by key.
    #[serde(default)]
    pub icmp: RawIcmp,
    /// Overrides `defaults.thresholds` key by key.
    #[serde(default)]
    pub thresholds: RawThresholds,
    /// Present (even empty) means: poll this target over SNMP.
    // Boxed: a target without it costs 8 bytes here, not 1.4 KB (10,000
    // targets were 45 MB of raw config while a file was read).
    pub snmp: Option<Box<S<RawSnmp>>>,
    /// A TCP check: connect to a port (and optionally exchange a line). A
    /// target with a check (`tcp`, `http`, `tls` or `dns`) is graded by it
    /// alone and is not pinged; make the server it runs on its parent.
    pub tcp: Option<Box<S<RawTcp>>>,
    /// An HTTP(S) check: a request and the answer it must get.
    pub http: Option<Box<S<RawHttp>>>,
    /// A TLS check: the certificate chain of any TLS port (HTTPS, LDAPS, SMTPS, IMAPS…).
    pub tls: Option<Box<S<RawTlsCheck>>>,
    /// A DNS check: a question to the target (a DNS server) and the answer expected.
    pub dns: Option<Box<S<RawDns>>>,
    /// For `link` targets: the interfaces at each end (device, ifName or ifAlias).
    #[serde(default)]
    pub ends: Vec<RawLinkEnd>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLinkEnd {
    /// The SNMP-polled target the interface is on.
    pub device: S<String>,
    /// Its ifName (or, failing that, ifAlias).
    pub interface: S<String>,
}

/// Every field optional, as for [`RawIcmp`]: `defaults.snmp` and a target's
/// `snmp` block. Secrets are references (`env:NAME`, `file:PATH`).
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSnmp {
    /// Poll over SNMP (default true where a block is present).
    pub enabled: Option<S<bool>>,
    /// `2c` or `3`.
    pub version: Option<S<String>>,
    /// v2c community: a reference `env:NAME` or `file:PATH`, never the secret itself.
    pub community: Option<S<String>>,
    /// v3 user name.
    pub user: Option<S<String>>,
    /// v3: `noAuthNoPriv`, `authNoPriv` or `authPriv`.
    pub security_level: Option<S<String>>,
    /// v3: `SHA`, `SHA-224`, `SHA-256`, `SHA-384`, `SHA-512` (or `MD5` with allow_weak_crypto).
    pub auth_protocol: Option<S<String>>,
    /// v3 authentication passphrase: `env:NAME` or `file:PATH`.
    pub auth_passphrase: Option<S<String>>,
    /// v3: `AES` (`AES-128`), `AES-192`, `AES-256` (or `DES` with allow_weak_crypto).
    pub priv_protocol: Option<S<String>>,
    /// v3 privacy passphrase: `env:NAME` or `file:PATH`.
    pub priv_passphrase: Option<S<String>>,
    /// v3 context name.
    pub context: Option<S<String>>,
    /// Allow MD5 and DES, which are broken; off unless said.
    pub allow_weak_crypto: Option<S<bool>>,
    /// UDP port; default 161.
    pub port: Option<S<u16>>,
    /// Per request attempt; default `2s`.
    pub timeout: Option<S<String>>,
    /// Attempts after the first; default 2.
    pub retries: Option<S<u32>>,
    /// GETBULK max-repetitions; default 25.
    pub max_repetitions: Option<S<u32>>,
    /// One poll every …; default `1m`.
    pub interval: Option<S<String>>,
    /// What to walk: `system`, `interfaces` (IF-MIB), `host_resources` (default: `system` and `interfaces`).
    pub modules: Option<Vec<S<String>>>,
    /// Only the interfaces matching all given filters (default all).
    pub interfaces: Option<RawInterfaceFilter>,
    /// Further OIDs exported as metrics.
    pub custom: Option<Vec<RawCustomOid>>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawInterfaceFilter {
    /// Regular expression matched against the whole ifName.
    pub name: Option<S<String>>,
    /// Regular expression matched against the whole ifAlias.
    pub alias: Option<S<String>>,
    /// IANAifType numbers, e.g. 6 (ethernetCsmacd), 161 (ieee8023adLag).
    #[serde(default)]
    pub types: Vec<S<u32>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCustomOid {
    /// Numeric OID, e.g. `1.3.6.1.4.1.9.9.109.1.1.1.1.8.1`.
    pub oid: S<String>,
    /// Metric name (Prometheus rules apply).
    pub name: S<String>,
    /// `gauge` or `counter`.
    #[serde(rename = "type")]
    pub kind: S<String>,
    /// Metric help text.
    pub help: Option<S<String>>,
}

/// A TCP check.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTcp {
    /// The port to connect to.
    pub port: S<u16>,
    /// A line sent once connected (`\r\n` is appended), e.g. `QUIT`.
    pub send: Option<S<String>>,
    /// Regular expression searched for in what the server sends, e.g. `^220 ` for SMTP.
    pub expect: Option<S<String>>,
    /// One check every …; default `30s`.
    pub interval: Option<S<String>>,
    /// The whole check at most; default `10s` (less than the interval).
    pub timeout: Option<S<String>>,
}

/// An HTTP(S) check.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// Absolute `http://` or `https://` URL. Its host is sent as `Host` and
    /// TLS server name; the connection goes to the target's `address`.
    pub url: S<String>,
    /// Default `GET`.
    pub method: Option<S<String>>,
    /// Request headers. Values of `Authorization`, `Proxy-Authorization`,
    /// `Cookie` and any header named like a key, token or secret must be
    /// references (`env:NAME`, `file:PATH`); others may be plain.
    #[serde(default)]
    pub headers: BTreeMap<String, S<String>>,
    /// HTTP basic authentication.
    pub basic_auth: Option<RawBasicAuth>,
    /// Status codes that pass: numbers and classes such as `2xx`; default `[2xx]`.
    pub status: Option<Vec<S<serde_json::Value>>>,
    /// Regular expression the body (its first MiB) must match.
    pub body: Option<S<String>>,
    /// Regular expression the body must not match (e.g. `maintenance`).
    pub body_not: Option<S<String>>,
    /// A condition on a JSON body.
    pub json: Option<RawJsonCondition>,
    /// An answer slower than this (the whole check) is `degraded`.
    pub degraded_response_time: Option<S<String>>,
    /// Follow redirects (default false: a 3xx is judged by `status`).
    pub follow_redirects: Option<S<bool>>,
    /// With `follow_redirects`: at most this many; default 10.
    pub max_redirects: Option<S<u32>>,
    /// How `https` is verified, and the client certificate.
    pub tls: Option<RawTlsClient>,
    /// A certificate expiring sooner is `degraded`; default `14d`.
    pub cert_expiry_warning: Option<S<String>>,
    /// Through an HTTP proxy (default none: straight to the target's address).
    pub proxy: Option<RawProxy>,
    /// One check every …; default `30s`.
    pub interval: Option<S<String>>,
    /// The whole check at most; default `10s` (less than the interval).
    pub timeout: Option<S<String>>,
}

/// An HTTP proxy. `http://` URLs go to it in absolute form, `https://`
/// through a `CONNECT` tunnel, TLS verified end to end as without it.
/// The proxy looks up the URL's host; the target's `address` is not used.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    /// `http://host:port`, e.g. `http://proxy.iks.local:3128` (the port is required).
    pub url: S<String>,
    /// `Proxy-Authorization: Basic`, the password a reference.
    pub basic_auth: Option<RawBasicAuth>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBasicAuth {
    pub username: S<String>,
    /// `env:NAME` or `file:PATH`.
    pub password: S<String>,
}

/// The value at a JSON pointer (RFC 6901, e.g. `/status`).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawJsonCondition {
    pub pointer: S<String>,
    /// Must equal this value (any JSON/YAML value).
    pub equals: Option<S<serde_json::Value>>,
    /// Or its text must match this regular expression.
    pub matches: Option<S<String>>,
}

/// How a check's TLS client verifies the server and presents itself.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTlsClient {
    /// PEM file of the CAs to trust instead of the system's (relative to this file).
    pub ca_file: Option<S<String>>,
    /// PEM file of a client certificate chain, with `client_key`.
    pub client_cert: Option<S<String>>,
    /// The client certificate's key: `file:PATH` or `env:NAME` (PEM).
    pub client_key: Option<S<String>>,
    /// The name verified and sent as SNI; default the URL's host (HTTP) or the target's address (TLS).
    pub server_name: Option<S<String>>,
    /// Accept any certificate (its expiry is still graded); default false.
    pub insecure_skip_verify: Option<S<bool>>,
}

/// A TLS check.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTlsCheck {
    /// Default 443.
    pub port: Option<S<u16>>,
    /// How the chain is verified, and the client certificate.
    pub tls: Option<RawTlsClient>,
    /// A certificate expiring sooner is `degraded`; default `14d`.
    pub cert_expiry_warning: Option<S<String>>,
    /// One check every …; default `30s`.
    pub interval: Option<S<String>>,
    /// The whole check at most; default `10s` (less than the interval).
    pub timeout: Option<S<String>>,
}

/// A DNS check.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    /// The name asked for.
    pub name: S<String>,
    /// Record type, default `A`.
    #[serde(rename = "type")]
    pub record_type: Option<S<String>>,
    /// Default 53.
    pub port: Option<S<u16>>,
    /// `udp` (default) or `tcp`.
    pub transport: Option<S<String>>,
    /// Response codes that pass, e.g. `[NOERROR]` (the default) or `[NXDOMAIN]`.
    pub rcode: Option<Vec<S<String>>>,
    /// Regular expression some answer record's data must match.
    pub answer: Option<S<String>>,
    /// The answer section must not be empty; default true when `rcode` is NOERROR only.
    pub require_answer: Option<S<bool>>,
    /// One check every …; default `30s`.
    pub interval: Option<S<String>>,
    /// The whole check at most; default `10s` (less than the interval).
    pub timeout: Option<S<String>>,
}
