//! The resolved, validated model the agent runs on. Built only by
//! [`crate::config::load`]; every reference in it points at something that
//! exists, ids are unique and the parent graph has no cycles.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;
use serde::Serialize;

/// Defaults used where neither `defaults` nor the target sets a value.
/// One place, so the README and `check-config` agree with the code.
pub mod defaults {
    use std::time::Duration;

    /// 9474 is unassigned by IANA and not in Prometheus' exporter port list.
    pub const LISTEN_ADDRESS: &str = "127.0.0.1:9474";
    pub const AGENT_ID: &str = "utkikk";
    pub const DATA_DIR: &str = "/var/lib/utkikk";
    pub const MAX_CONCURRENT_PROBES: u32 = 4096;
    pub const RESOLVE_INTERVAL: Duration = Duration::from_secs(300);
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
}

#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    pub source: PathBuf,
    pub agent: AgentSettings,
    pub members: Vec<Member>,
    pub sites: Vec<Site>,
    /// In config order.
    pub targets: Vec<Target>,
}

impl Inventory {
    pub fn target(&self, id: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.id == id)
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
    pub resolve_interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub kommunenummer: Vec<KommunenummerPeriod>,
    pub merged_into: Option<Merge>,
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
