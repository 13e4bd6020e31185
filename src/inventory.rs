//! The resolved, validated model the agent runs on. Built only by
//! [`crate::config::load`]; every reference in it points at something that
//! exists, ids are unique and the parent graph has no cycles.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;
use serde::Serialize;

use crate::model::secret::Secret;

pub mod checks;
pub use checks::{CheckSettings, CheckSpec};

/// Defaults used where neither `defaults` nor the target sets a value.
/// One place, so the README and `check-config` agree with the code.
pub mod defaults {
    use std::time::Duration;

    /// 9474 is unassigned by IANA and not in Prometheus' exporter port list.
    pub const LISTEN_ADDRESS: &str = "127.0.0.1:9474";
    pub const AGENT_ID: &str = "utkikk";
    pub const DATA_DIR: &str = "/var/lib/utkikk";
    pub const MAX_CONCURRENT_PROBES: u32 = 4096;
    pub const MAX_CONCURRENT_SNMP_POLLS: u32 = 64;
    pub const MAX_CONCURRENT_CHECKS: u32 = 256;
    pub const RESOLVE_INTERVAL: Duration = Duration::from_secs(300);
    pub const SLA_INTERVAL: Duration = Duration::from_secs(60);
    /// The RTT histogram's upper bounds, in milliseconds: coarse enough
    /// for a 10,000-target region (11 series a target), with bounds at the
    /// usual `degraded_rtt` thresholds (20 and 50 ms).
    pub const RTT_BUCKETS_MS: [u64; 8] = [1, 2, 5, 10, 20, 50, 100, 500];
    pub const ICMP_INTERVAL: Duration = Duration::from_secs(10);
    pub const ICMP_COUNT: u32 = 5;
    pub const ICMP_SPACING: Duration = Duration::from_millis(200);
    pub const ICMP_TIMEOUT: Duration = Duration::from_secs(1);
    /// Same as ping(8): 56 bytes of payload, 64-byte ICMP message.
    pub const ICMP_PAYLOAD_BYTES: u32 = 56;
    pub const DEGRADED_LOSS_RATIO: f64 = 0.2;
    pub const DEGRADED_RTT: Duration = Duration::from_millis(200);
    pub const FAIL_AFTER: u32 = 3;
    pub const RECOVER_AFTER: u32 = 2;
    pub const SNMP_PORT: u16 = 161;
    pub const SNMP_TIMEOUT: Duration = Duration::from_secs(2);
    pub const SNMP_RETRIES: u32 = 2;
    pub const SNMP_MAX_REPETITIONS: u32 = 25;
    pub const SNMP_INTERVAL: Duration = Duration::from_secs(60);
}

#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    /// Each target's position in `targets`, made at the first lookup
    /// (`targets` does not change once the inventory is built).
    pub index: TargetIndex,
    pub source: PathBuf,
    pub agent: AgentSettings,
    pub members: Vec<Member>,
    pub sites: Vec<Site>,
    /// In config order.
    pub targets: Vec<Target>,
    pub services: Vec<Service>,
    /// Maintenance windows from the config, by their config id.
    pub maintenance: Vec<(String, crate::maintenance::Spec)>,
    pub reports: ReportSettings,
    pub status_page: StatusPageSettings,
}

/// Who may read a status page.
#[derive(Clone, Default, PartialEq)]
pub enum PageAccess {
    /// Not served (404): the default, so an upgrade publishes nothing.
    #[default]
    Off,
    /// Anyone may read it.
    Public,
    /// Whoever gives this read token.
    Token(crate::model::secret::Secret),
}

impl std::fmt::Debug for PageAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PageAccess::Off => "Off",
            PageAccess::Public => "Public",
            PageAccess::Token(_) => "Token(…)",
        })
    }
}

/// The status pages.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusPageSettings {
    /// The region's page (`/status`).
    pub region: PageAccess,
    /// How often an open page asks for news.
    pub refresh: Duration,
}

impl Default for StatusPageSettings {
    fn default() -> Self {
        StatusPageSettings {
            region: PageAccess::Off,
            refresh: Duration::from_secs(30),
        }
    }
}

/// How the monthly reports are made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportSettings {
    /// The inter-municipal company, named in each report's header.
    pub organisation: Option<String>,
}

/// A service members rely on, made of targets, with its service levels.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub serves: Vec<String>,
    /// All must be up.
    pub targets: Vec<String>,
    /// Each group is up while any of its targets is up.
    pub redundancy: Vec<Vec<String>>,
    /// In `valid_from` order.
    pub levels: Vec<ServiceLevel>,
}

impl Service {
    /// The level in force on `day` (the latest `valid_from` not after it).
    pub fn level_on(&self, day: NaiveDate) -> Option<&ServiceLevel> {
        self.levels.iter().rev().find(|l| l.valid_from <= day)
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServiceLevel {
    pub valid_from: NaiveDate,
    /// Ratio 0–1 (config: percent).
    pub objective: f64,
    /// Ratio 0–1 of the scheduled time that must have been observed for a
    /// verdict (config: percent, default 90).
    pub min_coverage: f64,
    pub schedule: crate::time::schedule::Schedule,
    pub degraded_counts_as_up: bool,
    pub unreachable_counts_as_down: bool,
}

/// A member as it stood on a day (the first of a month): merged into
/// another by then (its figures belong there), or with the members merged
/// into it, and the services serving it or them.
#[derive(Debug, Clone)]
pub struct MemberOn<'a> {
    pub member: &'a Member,
    pub merged_into: Option<String>,
    pub includes: Vec<String>,
    pub services: Vec<&'a Service>,
}

impl MemberOn<'_> {
    /// The member and those merged into it.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.member.id.as_str()).chain(self.includes.iter().map(String::as_str))
    }
}

/// Target ids to positions, without a second copy of the ids: a table
/// of positions hashed by the id they point at.
#[derive(Default, Clone)]
pub struct TargetIndex(
    std::sync::OnceLock<(hashbrown::HashTable<u32>, foldhash::fast::RandomState)>,
);

impl TargetIndex {
    fn position(&self, targets: &[Target], id: &str) -> Option<usize> {
        let (table, hasher) = self.0.get_or_init(|| {
            let hasher = foldhash::fast::RandomState::default();
            let mut table = hashbrown::HashTable::with_capacity(targets.len());
            for (i, t) in targets.iter().enumerate() {
                let h = hasher.hash_one(t.id.as_str());
                table.insert_unique(h, i as u32, |&j| {
                    hasher.hash_one(targets[j as usize].id.as_str())
                });
            }
            (table, hasher)
        });
        let h = hasher.hash_one(id);
        table
            .find(h, |&j| targets.get(j as usize).is_some_and(|t| t.id == id))
            .map(|&j| j as usize)
    }
}

impl fmt::Debug for TargetIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TargetIndex")
    }
}

/// Derived from `targets`: two inventories with the same targets have the
/// same index, built or not.
impl PartialEq for TargetIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Inventory {
    /// Fill each target's `affected_members`: its own member and those it
    /// serves, the members of the services that use it, and the same of
    /// every target behind it (through `parents`, any depth). Called once
    /// the inventory is built (the parent graph has no cycles).
    pub fn resolve_affected_members(&mut self) {
        let pos: HashMap<&str, usize> = self
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.as_str(), i))
            .collect();
        // What each target hits by itself.
        let mut own: Vec<Vec<&str>> = self
            .targets
            .iter()
            .map(|t| {
                t.member
                    .iter()
                    .chain(&t.serves)
                    .map(String::as_str)
                    .collect()
            })
            .collect();
        for s in &self.services {
            for t in s.targets.iter().chain(s.redundancy.iter().flatten()) {
                if let Some(&i) = pos.get(t.as_str()) {
                    own[i].extend(s.serves.iter().map(String::as_str));
                }
            }
        }
        // Each target's own set goes to it and to all its ancestors.
        let mut hit: Vec<std::collections::BTreeSet<&str>> = vec![Default::default(); own.len()];
        let mut stack = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, members) in own.iter().enumerate() {
            if members.is_empty() {
                continue;
            }
            stack.push(i);
            seen.clear();
            while let Some(j) = stack.pop() {
                if !seen.insert(j) {
                    continue;
                }
                hit[j].extend(members.iter().copied());
                stack.extend(
                    self.targets[j]
                        .parents
                        .iter()
                        .filter_map(|p| pos.get(p.as_str()).copied()),
                );
            }
        }
        let hit: Vec<Vec<String>> = hit
            .into_iter()
            .map(|set| set.into_iter().map(str::to_string).collect())
            .collect();
        for (t, members) in self.targets.iter_mut().zip(hit) {
            t.affected_members = members;
        }
    }

    /// Member `id` as it stood on `day`; `None` for an unknown member.
    pub fn member_on(&self, id: &str, day: NaiveDate) -> Option<MemberOn<'_>> {
        let member = self.members.iter().find(|m| m.id == id)?;
        let merged_into = member
            .merged_into
            .as_ref()
            .filter(|mg| mg.date <= day)
            .map(|mg| mg.member.clone());
        let includes: Vec<String> = self
            .members
            .iter()
            .filter(|o| {
                o.merged_into
                    .as_ref()
                    .is_some_and(|mg| mg.member == id && mg.date <= day)
            })
            .map(|o| o.id.clone())
            .collect();
        let services = if merged_into.is_some() {
            Vec::new()
        } else {
            self.services
                .iter()
                .filter(|s| s.serves.iter().any(|x| x == id || includes.contains(x)))
                .collect()
        };
        Some(MemberOn {
            member,
            merged_into,
            includes,
            services,
        })
    }

    pub fn target(&self, id: &str) -> Option<&Target> {
        self.position(id).map(|i| &self.targets[i])
    }

    /// Where target `id` is in `targets`.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.index.position(&self.targets, id)
    }

    /// Links with an end on `device`, with the index of that end.
    pub fn link_ends_on<'a>(
        &'a self,
        device: &'a str,
    ) -> impl Iterator<Item = (&'a Target, usize)> + 'a {
        self.targets.iter().flat_map(move |t| {
            t.ends
                .iter()
                .enumerate()
                .filter(move |(_, e)| e.device == device)
                .map(move |(i, _)| (t, i))
        })
    }

    /// Children of every target (the reverse of `parents`).
    pub fn children(&self) -> HashMap<String, Vec<String>> {
        let mut children: HashMap<String, Vec<String>> = HashMap::new();
        for t in &self.targets {
            for p in &t.parents {
                children.entry(p.clone()).or_default().push(t.id.clone());
            }
        }
        children
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentSettings {
    pub id: String,
    pub listen_address: SocketAddr,
    pub data_dir: PathBuf,
    pub max_concurrent_probes: u32,
    pub max_concurrent_snmp_polls: u32,
    /// Service checks (TCP, HTTP, TLS, DNS) in flight at most.
    pub max_concurrent_checks: u32,
    pub resolve_interval: Duration,
    /// How often the SLA metrics are computed.
    pub sla_interval: Duration,
    /// Bearer token the API's writes need; without one they are refused.
    pub api_token: Option<crate::model::secret::Secret>,
    /// Upper bounds of the per-target RTT histogram, ascending; empty:
    /// no histogram.
    pub rtt_buckets: Vec<Duration>,
    /// Where the record is kept besides the agent's SQLite file.
    pub ledger: LedgerBackend,
}

/// `ledger.backend`: the embedded SQLite file alone, or PostgreSQL too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LedgerBackend {
    #[default]
    Sqlite,
    /// Every record is committed to the SQLite file first, then copied to
    /// this server (see [`crate::ledger::pg`]).
    Postgres {
        /// The connection string; it holds the password.
        url: crate::model::secret::Secret,
        /// PEM CA(s) for the server's certificate; `None`: the system's.
        ca_pem: Option<Vec<u8>>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub kommunenummer: Vec<KommunenummerPeriod>,
    pub merged_into: Option<Merge>,
    /// Who may read the member's status page.
    #[serde(skip)]
    pub status_page: PageAccess,
}

impl Member {
    /// The municipality number in force on `day`, if any.
    pub fn kommunenummer_on(&self, day: NaiveDate) -> Option<&str> {
        self.kommunenummer
            .iter()
            .find(|p| p.from <= day && p.until.is_none_or(|u| day <= u))
            .map(|p| p.number.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KommunenummerPeriod {
    pub number: String,
    pub from: NaiveDate,
    /// Inclusive last day; `None` while in force.
    pub until: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Merge {
    pub member: String,
    pub date: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Site {
    pub id: String,
    pub name: String,
    pub member: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Link,
    Switch,
    Router,
    Firewall,
    Server,
    Service,
}

impl TargetKind {
    pub const ALL: [TargetKind; 6] = [
        TargetKind::Link,
        TargetKind::Switch,
        TargetKind::Router,
        TargetKind::Firewall,
        TargetKind::Server,
        TargetKind::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Link => "link",
            TargetKind::Switch => "switch",
            TargetKind::Router => "router",
            TargetKind::Firewall => "firewall",
            TargetKind::Server => "server",
            TargetKind::Service => "service",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What to probe: a literal address, or a name resolved at load and again
/// every `agent.resolve_interval`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    Ip(IpAddr),
    Host(String),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Ip(ip) => ip.fmt(f),
            Address::Host(h) => f.write_str(h),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub id: String,
    pub name: String,
    pub kind: TargetKind,
    pub address: Address,
    pub site: Option<String>,
    pub member: Option<String>,
    pub serves: Vec<String>,
    pub parents: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub icmp: IcmpSettings,
    pub thresholds: Thresholds,
    /// Polled over SNMP when set. Boxed: most targets are not polled, and
    /// the settings (credentials, v3 keys, OIDs) are about half the size
    /// of a target (2.6 MB of 6 MB at 10,000 targets, BENCHMARKS.md).
    pub snmp: Option<Box<SnmpSettings>>,
    /// A service check (TCP, HTTP(S), TLS, DNS): when set, it alone
    /// grades the target. Boxed for the same reason as `snmp`.
    pub check: Option<Box<CheckSettings>>,
    /// For `link` targets: the interface at each end, read from the end
    /// devices' SNMP polls. Empty for everything else.
    pub ends: Vec<LinkEnd>,
    /// The agents that watch it (`agent.id`s); empty: every agent.
    pub agents: Vec<String>,
    /// The agent whose `down` is believed whatever the others see.
    pub designated_agent: Option<String>,
    /// The members its failure hits, sorted: its own, those it `serves`,
    /// and those of every target and service behind it
    /// ([`Inventory::resolve_affected_members`]).
    pub affected_members: Vec<String>,
}

impl Target {
    /// Whether the agent `agent` (its `agent.id`) probes it.
    pub fn watched_by(&self, agent: &str) -> bool {
        self.agents.is_empty() || self.agents.iter().any(|a| a == agent)
    }

    /// Whether its failure hits a member other than its own (shared
    /// infrastructure: the IKS's on-call is paged for it).
    pub fn is_shared(&self) -> bool {
        self.affected_members
            .iter()
            .any(|m| Some(m) != self.member.as_ref())
    }
}

/// One end of a link: an interface of a device polled over SNMP, named by
/// its ifName or, failing that, its ifAlias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkEnd {
    pub device: String,
    pub interface: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IcmpSettings {
    pub enabled: bool,
    pub interval: Duration,
    pub count: u32,
    pub spacing: Duration,
    pub timeout: Duration,
    pub payload_bytes: u32,
}

impl IcmpSettings {
    /// From the first echo sent to the last one's deadline.
    pub fn cycle_length(&self) -> Duration {
        self.spacing * self.count.saturating_sub(1) + self.timeout
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Loss above this (but below 1) makes a reachable target `degraded`.
    pub degraded_loss_ratio: f64,
    /// Mean RTT above this makes a reachable target `degraded`.
    pub degraded_rtt: Duration,
    pub fail_after: u32,
    pub recover_after: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SnmpSettings {
    pub credentials: SnmpCredentials,
    pub port: u16,
    /// Per request attempt.
    pub timeout: Duration,
    /// Further attempts after a timeout.
    pub retries: u32,
    pub max_repetitions: u32,
    pub interval: Duration,
    pub modules: SnmpModules,
    pub interfaces: InterfaceFilter,
    pub custom: Vec<CustomOid>,
}

impl SnmpSettings {
    /// Longest one request can take with its retries.
    pub fn request_budget(&self) -> Duration {
        self.timeout * (self.retries + 1)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SnmpCredentials {
    V2c {
        community: Secret,
    },
    V3 {
        user: String,
        auth: Option<(SnmpAuthProtocol, Secret)>,
        /// Only with `auth`.
        privacy: Option<(SnmpPrivProtocol, Secret)>,
        context: String,
    },
}

impl SnmpCredentials {
    pub fn version(&self) -> &'static str {
        match self {
            SnmpCredentials::V2c { .. } => "2c",
            SnmpCredentials::V3 { .. } => "3",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnmpAuthProtocol {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl SnmpAuthProtocol {
    pub const NAMES: [(&'static str, SnmpAuthProtocol); 6] = [
        ("MD5", SnmpAuthProtocol::Md5),
        ("SHA", SnmpAuthProtocol::Sha1),
        ("SHA-224", SnmpAuthProtocol::Sha224),
        ("SHA-256", SnmpAuthProtocol::Sha256),
        ("SHA-384", SnmpAuthProtocol::Sha384),
        ("SHA-512", SnmpAuthProtocol::Sha512),
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnmpPrivProtocol {
    Des,
    Aes128,
    Aes192,
    Aes256,
}

impl SnmpPrivProtocol {
    pub const NAMES: [(&'static str, SnmpPrivProtocol); 5] = [
        ("DES", SnmpPrivProtocol::Des),
        ("AES", SnmpPrivProtocol::Aes128),
        ("AES-128", SnmpPrivProtocol::Aes128),
        ("AES-192", SnmpPrivProtocol::Aes192),
        ("AES-256", SnmpPrivProtocol::Aes256),
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SnmpModules {
    pub system: bool,
    pub interfaces: bool,
    pub host_resources: bool,
}

/// Which interfaces to poll. An interface is polled when it matches every
/// filter that is set; with none set, all are.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InterfaceFilter {
    pub name: Option<Pattern>,
    pub alias: Option<Pattern>,
    pub types: Vec<u32>,
}

impl InterfaceFilter {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.alias.is_none() && self.types.is_empty()
    }

    pub fn admits(&self, name: &str, alias: &str, if_type: Option<u32>) -> bool {
        self.name.as_ref().is_none_or(|p| p.0.is_match(name))
            && self.alias.as_ref().is_none_or(|p| p.0.is_match(alias))
            && (self.types.is_empty() || if_type.is_some_and(|t| self.types.contains(&t)))
    }
}

/// A regular expression anchored at both ends, compared by its source.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CustomOid {
    /// Numeric, without a leading dot.
    pub oid: Vec<u64>,
    /// The metric name it is exported under.
    pub name: String,
    pub kind: CustomKind,
    pub help: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomKind {
    Gauge,
    Counter,
}
