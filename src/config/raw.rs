//! Raw configuration as written in YAML: every leaf that validation may
//! complain about is wrapped in [`Spanned`] so a problem can name its
//! file:line:column. Nothing here is checked beyond its YAML type; see
//! `validate.rs` for the rules and `defaults.rs`-style constants in
//! [`crate::inventory`] for the values used when a key is absent.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Deserialize;
use serde_saphyr::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub agent: RawAgent,
    #[serde(default)]
    pub defaults: RawDefaults,
    #[serde(default)]
    pub members: Vec<RawMember>,
    #[serde(default)]
    pub sites: Vec<RawSite>,
    #[serde(default)]
    pub targets: Vec<RawTarget>,
    #[serde(default)]
    pub services: Vec<RawService>,
    #[serde(default)]
    pub maintenance: Vec<RawMaintenance>,
    #[serde(default)]
    pub reports: RawReports,
}

/// The monthly reports.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReports {
    /// The inter-municipal company, named in each report's header.
    pub organisation: Option<S<String>>,
}

/// A maintenance window; the keys of the API's JSON body, with positions.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMaintenance {
    pub id: S<String>,
    #[serde(default)]
    pub targets: Vec<S<String>>,
    pub category: Option<S<String>>,
    pub note: Option<S<String>>,
    /// One-off: RFC 3339 instants with offset.
    pub start: Option<S<String>>,
    pub end: Option<S<String>>,
    pub weekly: Option<RawWeekly>,
    pub monthly: Option<RawMonthly>,
    pub from: Option<S<NaiveDate>>,
    pub until: Option<S<NaiveDate>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeekly {
    #[serde(default)]
    pub days: Vec<S<String>>,
    pub at: S<String>,
    pub duration: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMonthly {
    pub day: Option<S<u32>>,
    pub weekday: Option<S<String>>,
    /// 1–4, or `last`.
    pub week: Option<S<serde_json::Value>>,
    pub at: S<String>,
    pub duration: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub id: S<String>,
    pub name: S<String>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLevel {
    pub valid_from: S<NaiveDate>,
    /// Percent, e.g. 99.5.
    pub objective: S<f64>,
    /// `24x7` (default) or `business_hours`.
    pub schedule: Option<S<String>>,
    pub business_hours: Option<RawBusinessHours>,
    /// How `degraded` counts: `up` (default) or `down`.
    pub degraded: Option<S<String>>,
    /// How `unreachable` counts: `excluded` (default) or `down`.
    pub unreachable: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBusinessHours {
    pub days: Option<Vec<S<String>>>,
    pub from: Option<S<String>>,
    pub to: Option<S<String>>,
    pub public_holidays: Option<S<bool>>,
    #[serde(default)]
    pub closed: Vec<S<NaiveDate>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    pub id: Option<S<String>>,
    pub listen_address: Option<S<String>>,
    pub data_dir: Option<S<String>>,
    pub max_concurrent_probes: Option<S<u32>>,
    pub max_concurrent_snmp_polls: Option<S<u32>>,
    pub resolve_interval: Option<S<String>>,
    pub sla_interval: Option<S<String>>,
    /// Bearer token for the API's writes: `env:NAME` or `file:PATH`.
    pub api_token: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    #[serde(default)]
    pub icmp: RawIcmp,
    #[serde(default)]
    pub thresholds: RawThresholds,
    #[serde(default)]
    pub snmp: RawSnmp,
}

/// Every field optional: the same type serves `defaults.icmp` and a target's
/// own `icmp` block, which overrides the defaults key by key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIcmp {
    pub enabled: Option<S<bool>>,
    pub interval: Option<S<String>>,
    pub count: Option<S<u32>>,
    pub spacing: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub payload_bytes: Option<S<u32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawThresholds {
    pub degraded_loss_ratio: Option<S<f64>>,
    pub degraded_rtt: Option<S<String>>,
    pub fail_after: Option<S<u32>>,
    pub recover_after: Option<S<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMember {
    pub id: S<String>,
    pub name: S<String>,
    #[serde(default)]
    pub kommunenummer: Vec<RawKommunenummer>,
    pub merged_into: Option<RawMerge>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKommunenummer {
    pub number: S<String>,
    pub from: S<NaiveDate>,
    pub until: Option<S<NaiveDate>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMerge {
    pub member: S<String>,
    pub date: S<NaiveDate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    pub id: S<String>,
    pub name: S<String>,
    pub member: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub id: S<String>,
    pub name: Option<S<String>>,
    pub kind: S<String>,
    pub address: S<String>,
    pub site: Option<S<String>>,
    pub member: Option<S<String>>,
    #[serde(default)]
    pub serves: Vec<S<String>>,
    #[serde(default)]
    pub parents: Vec<S<String>>,
    #[serde(default)]
    pub labels: BTreeMap<String, S<String>>,
    #[serde(default)]
    pub icmp: RawIcmp,
    #[serde(default)]
    pub thresholds: RawThresholds,
    /// Present (even empty) means: poll this target over SNMP.
    pub snmp: Option<S<RawSnmp>>,
    /// For `link` targets: the interfaces at each end (device, ifName or ifAlias).
    #[serde(default)]
    pub ends: Vec<RawLinkEnd>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLinkEnd {
    pub device: S<String>,
    pub interface: S<String>,
}

/// Every field optional, as for [`RawIcmp`]: `defaults.snmp` and a target's
/// `snmp` block. Secrets are references (`env:NAME`, `file:PATH`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSnmp {
    pub enabled: Option<S<bool>>,
    pub version: Option<S<String>>,
    pub community: Option<S<String>>,
    pub user: Option<S<String>>,
    pub security_level: Option<S<String>>,
    pub auth_protocol: Option<S<String>>,
    pub auth_passphrase: Option<S<String>>,
    pub priv_protocol: Option<S<String>>,
    pub priv_passphrase: Option<S<String>>,
    pub context: Option<S<String>>,
    /// Allow MD5 and DES, which are broken; off unless said.
    pub allow_weak_crypto: Option<S<bool>>,
    pub port: Option<S<u16>>,
    pub timeout: Option<S<String>>,
    pub retries: Option<S<u32>>,
    pub max_repetitions: Option<S<u32>>,
    pub interval: Option<S<String>>,
    pub modules: Option<Vec<S<String>>>,
    pub interfaces: Option<RawInterfaceFilter>,
    pub custom: Option<Vec<RawCustomOid>>,
}

#[derive(Debug, Default, Deserialize)]
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCustomOid {
    pub oid: S<String>,
    pub name: S<String>,
    #[serde(rename = "type")]
    pub kind: S<String>,
    pub help: Option<S<String>>,
}
