//! Validation of [`RawConfig`] into an [`Inventory`]. Collects every problem
//! instead of stopping at the first, so an operator fixes a file in one pass.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{RawConfig, RawIcmp, RawStatusAccess, RawThresholds, S};
use super::{checks, maintenance, services, snmp, ConfigError, Problem};
use crate::inventory::{
    defaults, Address, AgentSettings, IcmpSettings, Inventory, KommunenummerPeriod, LedgerBackend,
    Member, Merge, PageAccess, Site, StatusPageSettings, Target, TargetKind, Thresholds,
};

/// Largest ICMP payload that fits an IPv4 datagram (65535 − 20 − 8).
const MAX_PAYLOAD_BYTES: u32 = 65507;
/// Names reserved for utkikk's own metric labels.
const RESERVED_LABELS: [&str; 7] = [
    "target", "member", "site", "kind", "state", "probe", "agent",
];

/// How problems name the items of a list: by id (`targets[kdc-sw1]`),
/// clearer than a position in a long file, or by index (`targets[5]`)
/// where the id is empty, unusual or not unique. One path per item.
pub(super) fn item_paths<'a>(list: &str, ids: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let ids: Vec<&str> = ids.into_iter().collect();
    let mut count: HashMap<&str, usize> = HashMap::new();
    for id in &ids {
        *count.entry(id).or_default() += 1;
    }
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let plain = !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && count.get(id) == Some(&1);
            if plain {
                format!("{list}[{id}]")
            } else {
                format!("{list}[{i}]")
            }
        })
        .collect()
}

pub(super) struct Validator<'a> {
    file: &'a Path,
    problems: Vec<Problem>,
    pub(super) secrets: &'a super::Secrets,
}

impl Validator<'_> {
    pub(super) fn report<T>(
        &mut self,
        at: &S<T>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.problems.push(Problem {
            file: self.file.to_path_buf(),
            line: at.referenced.line() as u32,
            column: at.referenced.column() as u32,
            path: path.into(),
            message: message.into(),
        });
    }

    pub(super) fn report_at(
        &mut self,
        at: Origin,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.problems.push(Problem {
            file: self.file.to_path_buf(),
            line: at.line,
            column: at.column,
            path: path.into(),
            message: message.into(),
        });
    }

    pub(super) fn id<'s>(&mut self, id: &'s S<String>, path: &str) -> &'s str {
        let v = id.value.as_str();
        let ok = !v.is_empty()
            && v.len() <= 64
            && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            self.report(
                id,
                path,
                format!(
                    "invalid id {v:?}: use 1-64 ASCII letters, digits, '-', '_' or '.', starting with a letter or digit"
                ),
            );
        }
        v
    }

    pub(super) fn duration(&mut self, v: &Option<S<String>>, path: &str) -> Option<Duration> {
        let v = v.as_ref()?;
        match humantime::parse_duration(v.value.trim()) {
            Ok(d) if d.is_zero() => {
                self.report(v, path, "must be greater than zero");
                None
            }
            Ok(d) => Some(d),
            Err(_) => {
                self.report(
                    v,
                    path,
                    format!(
                        "invalid duration {:?}: write a number and a unit, e.g. 10s, 500ms or 5m",
                        v.value
                    ),
                );
                None
            }
        }
    }

    fn positive(&mut self, v: &Option<S<u32>>, path: &str) -> Option<u32> {
        let v = v.as_ref()?;
        if v.value == 0 {
            self.report(v, path, "must be at least 1");
            return None;
        }
        Some(v.value)
    }
}

/// Where a resolved setting came from, for cross-field messages.
#[derive(Clone, Copy)]
pub(super) struct Origin {
    line: u32,
    column: u32,
}

impl<T> From<&S<T>> for Origin {
    fn from(s: &S<T>) -> Self {
        Origin {
            line: s.referenced.line() as u32,
            column: s.referenced.column() as u32,
        }
    }
}

pub(super) fn validate(
    file: &Path,
    raw: RawConfig,
    secrets: &super::Secrets,
) -> Result<Inventory, ConfigError> {
    let mut v = Validator {
        file,
        problems: Vec::new(),
        secrets,
    };
    let config_dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();

    let agent = agent_settings(&mut v, &raw, &config_dir);
    let base_icmp = builtin_icmp();
    let base_thresholds = builtin_thresholds();
    let default_icmp = icmp_settings(&mut v, &raw.defaults.icmp, &base_icmp, "defaults.icmp");
    check_cycle_fits(&mut v, &raw.defaults.icmp, &default_icmp, "defaults.icmp");
    let default_thresholds = thresholds(
        &mut v,
        &raw.defaults.thresholds,
        &base_thresholds,
        "defaults.thresholds",
    );

    let default_snmp = snmp::partial(&mut v, &raw.defaults.snmp, "defaults.snmp", &config_dir);

    let mut members = members(&mut v, &raw);
    let member_ids: HashSet<&str> = members.iter().map(|m| m.id.as_str()).collect();
    let sites = sites(&mut v, &raw, &member_ids);
    let site_member: HashMap<&str, Option<&str>> = sites
        .iter()
        .map(|s| (s.id.as_str(), s.member.as_deref()))
        .collect();

    let target_ids: HashSet<&str> = raw.targets.iter().map(|t| t.id.value.as_str()).collect();
    let mut seen_targets: HashSet<String> = HashSet::new();
    let mut targets = Vec::with_capacity(raw.targets.len());
    let target_paths = item_paths("targets", raw.targets.iter().map(|t| t.id.value.as_str()));
    for (i, t) in raw.targets.iter().enumerate() {
        let p = target_paths[i].clone();
        let id = v.id(&t.id, &format!("{p}.id")).to_string();
        if !seen_targets.insert(id.clone()) {
            v.report(
                &t.id,
                format!("{p}.id"),
                format!("duplicate target id {id:?}"),
            );
        }
        let kind = TargetKind::parse(&t.kind.value).unwrap_or_else(|| {
            let names: Vec<&str> = TargetKind::ALL.iter().map(|k| k.as_str()).collect();
            v.report(
                &t.kind,
                format!("{p}.kind"),
                format!(
                    "unknown kind {:?}: expected one of {}",
                    t.kind.value,
                    names.join(", ")
                ),
            );
            TargetKind::Server
        });
        let address = match parse_address(&t.address.value) {
            Ok(a) => a,
            Err(msg) => {
                v.report(&t.address, format!("{p}.address"), msg);
                Address::Host(t.address.value.clone())
            }
        };
        let site = t.site.as_ref().map(|s| {
            if !site_member.contains_key(s.value.as_str()) {
                v.report(
                    s,
                    format!("{p}.site"),
                    format!("unknown site {:?}", s.value),
                );
            }
            s.value.clone()
        });
        let mut member = t.member.as_ref().map(|m| {
            if !member_ids.contains(m.value.as_str()) {
                v.report(
                    m,
                    format!("{p}.member"),
                    format!("unknown member {:?}", m.value),
                );
            }
            m.value.clone()
        });
        if member.is_none() {
            // A target at a member's site belongs to that member unless it says otherwise.
            member = site
                .as_deref()
                .and_then(|s| site_member.get(s).copied().flatten())
                .map(str::to_string);
        }
        let mut serves = Vec::new();
        for (j, m) in t.serves.iter().enumerate() {
            if !member_ids.contains(m.value.as_str()) {
                v.report(
                    m,
                    format!("{p}.serves[{j}]"),
                    format!("unknown member {:?}", m.value),
                );
            }
            serves.push(m.value.clone());
        }
        let mut parents = Vec::new();
        for (j, parent) in t.parents.iter().enumerate() {
            let pp = format!("{p}.parents[{j}]");
            if parent.value == t.id.value {
                v.report(parent, pp, "a target cannot be its own parent");
            } else if !target_ids.contains(parent.value.as_str()) {
                v.report(
                    parent,
                    pp,
                    format!("unknown parent target {:?}", parent.value),
                );
            } else if parents.contains(&parent.value) {
                v.report(
                    parent,
                    pp,
                    format!("parent {:?} listed twice", parent.value),
                );
            } else {
                parents.push(parent.value.clone());
            }
        }
        let mut labels = BTreeMap::new();
        for (k, val) in &t.labels {
            if !valid_label_name(k) {
                v.report(
                    val,
                    format!("{p}.labels.{k}"),
                    format!("invalid label name {k:?}: use [a-zA-Z_][a-zA-Z0-9_]*, not starting with __"),
                );
            } else if RESERVED_LABELS.contains(&k.as_str()) {
                v.report(
                    val,
                    format!("{p}.labels.{k}"),
                    format!("label name {k:?} is reserved for utkikk's own labels"),
                );
            }
            labels.insert(k.clone(), val.value.clone());
        }
        let check = checks::check(&mut v, t, &p, &config_dir);
        let mut icmp = icmp_settings(&mut v, &t.icmp, &default_icmp, &format!("{p}.icmp"));
        check_cycle_fits(&mut v, &t.icmp, &icmp, &format!("{p}.icmp"));
        if check.is_some() {
            // Graded by its check alone (an explicit `enabled: true` was reported).
            icmp.enabled = false;
        }
        let thresholds = thresholds(
            &mut v,
            &t.thresholds,
            &default_thresholds,
            &format!("{p}.thresholds"),
        );
        let snmp = t.snmp.as_deref().and_then(|block| {
            let sp = format!("{p}.snmp");
            let own = snmp::partial(&mut v, &block.value, &sp, &config_dir);
            snmp::settings(&mut v, own, &default_snmp, block.into(), &sp).map(Box::new)
        });
        let mut ends = Vec::new();
        if !t.ends.is_empty() && kind != TargetKind::Link {
            v.report(
                &t.ends[0].device,
                format!("{p}.ends"),
                format!("only link targets have ends, this is a {}", kind.as_str()),
            );
        }
        if t.ends.len() > 2 {
            v.report(
                &t.ends[2].device,
                format!("{p}.ends[2]"),
                "a link has at most two ends",
            );
        }
        for (j, e) in t.ends.iter().enumerate() {
            if !target_ids.contains(e.device.value.as_str()) {
                v.report(
                    &e.device,
                    format!("{p}.ends[{j}].device"),
                    format!("unknown device target {:?}", e.device.value),
                );
            } else if e.device.value == t.id.value {
                v.report(
                    &e.device,
                    format!("{p}.ends[{j}].device"),
                    "a link cannot be its own end",
                );
            }
            if e.interface.value.trim().is_empty() {
                v.report(
                    &e.interface,
                    format!("{p}.ends[{j}].interface"),
                    "must name an interface (ifName or ifAlias)",
                );
            }
            ends.push(crate::inventory::LinkEnd {
                device: e.device.value.clone(),
                interface: e.interface.value.trim().to_string(),
            });
        }
        let mut agents: Vec<String> = Vec::new();
        for (j, a) in t.agents.iter().enumerate() {
            let a = v.id(a, &format!("{p}.agents[{j}]")).to_string();
            if agents.contains(&a) {
                v.report(
                    &t.agents[j],
                    format!("{p}.agents[{j}]"),
                    format!("agent {a:?} is listed twice"),
                );
            }
            agents.push(a);
        }
        let designated_agent = t.designated_agent.as_ref().map(|d| {
            let path = format!("{p}.designated_agent");
            let d_id = v.id(d, &path).to_string();
            if !agents.is_empty() && !agents.contains(&d_id) {
                v.report(
                    d,
                    path,
                    format!(
                        "{d_id:?} is not one of the agents that watch it ({})",
                        agents.join(", ")
                    ),
                );
            }
            d_id
        });
        targets.push(Target {
            name: t
                .name
                .as_ref()
                .map(|n| n.value.clone())
                .unwrap_or_else(|| id.clone()),
            id,
            kind,
            address,
            site,
            member,
            serves,
            parents,
            labels,
            icmp,
            thresholds,
            snmp,
            check,
            ends,
            affected_members: Vec::new(),
            agents,
            designated_agent,
        });
    }
    check_cycles(&mut v, &raw);
    // A link end must be a device whose interfaces are polled.
    for (i, t) in raw.targets.iter().enumerate() {
        for (j, e) in t.ends.iter().enumerate() {
            if e.device.value == t.id.value {
                continue; // reported above
            }
            let Some(dev) = targets.iter().find(|d| d.id == e.device.value) else {
                continue;
            };
            let polled = dev.snmp.as_ref().is_some_and(|s| s.modules.interfaces);
            let has_block = raw
                .targets
                .iter()
                .find(|d| d.id.value == e.device.value)
                .is_some_and(|d| d.snmp.is_some());
            if !polled && !has_block {
                v.report(
                    &e.device,
                    format!("{}.ends[{j}].device", target_paths[i]),
                    format!(
                        "{:?} is not polled over SNMP with the interfaces module: give it an snmp block",
                        e.device.value
                    ),
                );
            } else if !polled && dev.snmp.as_ref().is_some_and(|s| !s.modules.interfaces) {
                v.report(
                    &e.device,
                    format!("{}.ends[{j}].device", target_paths[i]),
                    format!("{:?} does not poll the interfaces module", e.device.value),
                );
            }
        }
    }

    let service_list = services::services(&mut v, &raw, &member_ids, &target_ids);
    services::agents_in_common(&mut v, &raw);
    let maintenance = maintenance::windows(&mut v, &raw, &target_ids);
    let reports = crate::inventory::ReportSettings {
        organisation: raw
            .reports
            .organisation
            .as_ref()
            .map(|o| o.value.trim().to_string())
            .filter(|o| !o.is_empty()),
    };

    let status_page = status_pages(&mut v, &raw, &mut members, &agent, &config_dir);
    // Alone (no shared ledger), a target this agent does not watch would
    // never be watched at all.
    if agent.ledger == LedgerBackend::Sqlite {
        for (raw_t, path) in raw.targets.iter().zip(&target_paths) {
            if let Some(first) = raw_t.agents.first() {
                if !raw_t.agents.iter().any(|a| a.value == agent.id) {
                    v.report(
                        first,
                        format!("{path}.agents"),
                        format!(
                            "this agent ({}) is not listed and the ledger is not shared (ledger.backend: postgres): nothing would watch it",
                            agent.id
                        ),
                    );
                }
            }
        }
    }

    if v.problems.is_empty() {
        let mut inventory = Inventory {
            index: Default::default(),
            source: file.to_path_buf(),
            agent,
            members,
            sites,
            targets,
            services: service_list,
            maintenance,
            reports,
            status_page,
        };
        inventory.resolve_affected_members();
        Ok(inventory)
    } else {
        let mut problems = v.problems;
        problems.sort_by_key(|p| (p.line, p.column));
        problems.dedup();
        Err(ConfigError { problems })
    }
}

fn agent_settings(v: &mut Validator<'_>, raw: &RawConfig, config_dir: &Path) -> AgentSettings {
    let a = &raw.agent;
    let id = match &a.id {
        Some(id) => v.id(id, "agent.id").to_string(),
        None => defaults::AGENT_ID.to_string(),
    };
    let listen_address = match &a.listen_address {
        Some(s) => s.value.parse::<SocketAddr>().unwrap_or_else(|_| {
            v.report(
                s,
                "agent.listen_address",
                format!(
                    "invalid listen address {:?}: expected IP:PORT, e.g. 127.0.0.1:9474 or [::1]:9474",
                    s.value
                ),
            );
            default_listen_address()
        }),
        None => default_listen_address(),
    };
    let data_dir = match &a.data_dir {
        Some(d) if d.value.trim().is_empty() => {
            v.report(d, "agent.data_dir", "must not be empty");
            PathBuf::from(defaults::DATA_DIR)
        }
        Some(d) => config_dir.join(&d.value),
        None => PathBuf::from(defaults::DATA_DIR),
    };
    AgentSettings {
        id,
        listen_address,
        data_dir,
        max_concurrent_probes: v
            .positive(&a.max_concurrent_probes, "agent.max_concurrent_probes")
            .unwrap_or(defaults::MAX_CONCURRENT_PROBES),
        max_concurrent_snmp_polls: v
            .positive(
                &a.max_concurrent_snmp_polls,
                "agent.max_concurrent_snmp_polls",
            )
            .unwrap_or(defaults::MAX_CONCURRENT_SNMP_POLLS),
        max_concurrent_checks: v
            .positive(&a.max_concurrent_checks, "agent.max_concurrent_checks")
            .unwrap_or(defaults::MAX_CONCURRENT_CHECKS),
        resolve_interval: v
            .duration(&a.resolve_interval, "agent.resolve_interval")
            .unwrap_or(defaults::RESOLVE_INTERVAL),
        sla_interval: v
            .duration(&a.sla_interval, "agent.sla_interval")
            .unwrap_or(defaults::SLA_INTERVAL),
        api_token: snmp::secret(v, &a.api_token, "agent.api_token", config_dir),
        rtt_buckets: rtt_buckets(v, a.rtt_buckets.as_deref()),
        ledger: ledger_backend(v, raw, config_dir),
    }
}

/// `ledger`: the backend, and for PostgreSQL its connection string (a
/// secret reference; its form is checked, never echoed) and CA file.
fn ledger_backend(v: &mut Validator<'_>, raw: &RawConfig, config_dir: &Path) -> LedgerBackend {
    #[derive(Clone, Copy, PartialEq)]
    enum Kind {
        Sqlite,
        Postgres,
    }
    let l = &raw.ledger;
    let kind = snmp::choice(
        v,
        &l.backend,
        "ledger.backend",
        &[("sqlite", Kind::Sqlite), ("postgres", Kind::Postgres)],
    );
    let at = l.backend.as_ref().map(Origin::from);
    if kind.is_none() && l.backend.is_some() {
        // Reported as an unknown value; nothing more to say of the rest.
        return LedgerBackend::Sqlite;
    }
    match kind {
        Some(Kind::Postgres) => {
            let Some(raw_url) = &l.url else {
                if let Some(at) = at {
                    v.report_at(
                        at,
                        "ledger.url",
                        "backend postgres needs a url (env:NAME or file:PATH)",
                    );
                }
                return LedgerBackend::Sqlite;
            };
            let url = snmp::secret(v, &l.url, "ledger.url", config_dir);
            if let Some(u) = url.as_ref().filter(|u| !u.is_unresolved()) {
                if let Err(e) = crate::ledger::pg::parse_url(u.expose()) {
                    // Its cause names the option ("invalid value for
                    // option `port`"), never the value.
                    let why = std::error::Error::source(&e)
                        .map_or_else(|| e.to_string(), |c| c.to_string());
                    v.report(
                        raw_url,
                        "ledger.url",
                        format!("not a PostgreSQL connection string: {why}"),
                    );
                }
            }
            let ca_pem = l
                .ca_file
                .as_ref()
                .and_then(|f| checks::read_pem(v, f, "ledger.ca_file", config_dir));
            match url {
                Some(url) => LedgerBackend::Postgres { url, ca_pem },
                None => LedgerBackend::Sqlite,
            }
        }
        _ => {
            for (given, key) in [(&l.url, "ledger.url"), (&l.ca_file, "ledger.ca_file")] {
                if let Some(g) = given {
                    v.report(g, key, "only with backend: postgres");
                }
            }
            LedgerBackend::Sqlite
        }
    }
}

/// `agent.rtt_buckets`: ascending durations, at most 64 of them.
fn rtt_buckets(v: &mut Validator<'_>, raw: Option<&[S<String>]>) -> Vec<Duration> {
    let Some(raw) = raw else {
        return defaults::RTT_BUCKETS_MS
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect();
    };
    const MAX: usize = 64;
    let mut out: Vec<Duration> = Vec::new();
    for (i, b) in raw.iter().enumerate() {
        let path = format!("agent.rtt_buckets[{i}]");
        if i == MAX {
            v.report(
                b,
                &path,
                format!("at most {MAX} buckets (each is a series for every target)"),
            );
            break;
        }
        let Some(d) = v.duration(&Some(b.clone()), &path) else {
            continue;
        };
        if out.last().is_some_and(|last| *last >= d) {
            v.report(b, &path, "must be greater than the bucket before it");
            continue;
        }
        out.push(d);
    }
    out
}

pub(crate) fn default_listen_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9474))
}

fn builtin_icmp() -> IcmpSettings {
    IcmpSettings {
        enabled: true,
        interval: defaults::ICMP_INTERVAL,
        count: defaults::ICMP_COUNT,
        spacing: defaults::ICMP_SPACING,
        timeout: defaults::ICMP_TIMEOUT,
        payload_bytes: defaults::ICMP_PAYLOAD_BYTES,
    }
}

fn builtin_thresholds() -> Thresholds {
    Thresholds {
        degraded_loss_ratio: defaults::DEGRADED_LOSS_RATIO,
        degraded_rtt: defaults::DEGRADED_RTT,
        fail_after: defaults::FAIL_AFTER,
        recover_after: defaults::RECOVER_AFTER,
    }
}

fn icmp_settings(
    v: &mut Validator<'_>,
    raw: &RawIcmp,
    base: &IcmpSettings,
    path: &str,
) -> IcmpSettings {
    let payload_bytes = match &raw.payload_bytes {
        Some(p) if p.value > MAX_PAYLOAD_BYTES => {
            v.report(
                p,
                format!("{path}.payload_bytes"),
                format!("must be at most {MAX_PAYLOAD_BYTES}"),
            );
            base.payload_bytes
        }
        Some(p) => p.value,
        None => base.payload_bytes,
    };
    IcmpSettings {
        enabled: raw.enabled.as_ref().map_or(base.enabled, |e| e.value),
        interval: v
            .duration(&raw.interval, &format!("{path}.interval"))
            .unwrap_or(base.interval),
        count: v
            .positive(&raw.count, &format!("{path}.count"))
            .unwrap_or(base.count),
        spacing: v
            .duration(&raw.spacing, &format!("{path}.spacing"))
            .unwrap_or(base.spacing),
        timeout: v
            .duration(&raw.timeout, &format!("{path}.timeout"))
            .unwrap_or(base.timeout),
        payload_bytes,
    }
}

/// A cycle must end before the next starts, or cycles would overlap and the
/// scheduler would skip them. Only reported where one of the fields was set,
/// so a bad `defaults` block is reported once, not once per target.
fn check_cycle_fits(v: &mut Validator<'_>, raw: &RawIcmp, s: &IcmpSettings, path: &str) {
    let set_here = [&raw.timeout, &raw.interval, &raw.spacing]
        .into_iter()
        .flatten()
        .next();
    let origin: Origin = match (set_here, raw.count.as_ref()) {
        (Some(at), _) => at.into(),
        (None, Some(count)) => count.into(),
        (None, None) => return,
    };
    let (field, message) = if s.timeout >= s.interval {
        (
            "timeout",
            format!(
                "timeout ({}) must be shorter than interval ({})",
                humantime::format_duration(s.timeout),
                humantime::format_duration(s.interval)
            ),
        )
    } else if s.cycle_length() >= s.interval {
        (
            "interval",
            format!(
                "a cycle of {} echoes {} apart with a {} timeout takes {}, which does not fit in the interval ({})",
                s.count,
                humantime::format_duration(s.spacing),
                humantime::format_duration(s.timeout),
                humantime::format_duration(s.cycle_length()),
                humantime::format_duration(s.interval)
            ),
        )
    } else {
        return;
    };
    v.problems.push(Problem {
        file: v.file.to_path_buf(),
        line: origin.line,
        column: origin.column,
        path: format!("{path}.{field}"),
        message,
    });
}

fn thresholds(
    v: &mut Validator<'_>,
    raw: &RawThresholds,
    base: &Thresholds,
    path: &str,
) -> Thresholds {
    let degraded_loss_ratio = match &raw.degraded_loss_ratio {
        Some(r) if !(0.0..1.0).contains(&r.value) => {
            v.report(
                r,
                format!("{path}.degraded_loss_ratio"),
                "must be a ratio from 0 up to (not including) 1, e.g. 0.2 for 20 %",
            );
            base.degraded_loss_ratio
        }
        Some(r) => r.value,
        None => base.degraded_loss_ratio,
    };
    Thresholds {
        degraded_loss_ratio,
        degraded_rtt: v
            .duration(&raw.degraded_rtt, &format!("{path}.degraded_rtt"))
            .unwrap_or(base.degraded_rtt),
        fail_after: v
            .positive(&raw.fail_after, &format!("{path}.fail_after"))
            .unwrap_or(base.fail_after),
        recover_after: v
            .positive(&raw.recover_after, &format!("{path}.recover_after"))
            .unwrap_or(base.recover_after),
    }
}

fn members(v: &mut Validator<'_>, raw: &RawConfig) -> Vec<Member> {
    let ids: HashSet<&str> = raw.members.iter().map(|m| m.id.value.as_str()).collect();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let paths = item_paths("members", raw.members.iter().map(|m| m.id.value.as_str()));
    for (i, m) in raw.members.iter().enumerate() {
        let p = paths[i].clone();
        let id = v.id(&m.id, &format!("{p}.id")).to_string();
        if !seen.insert(id.clone()) {
            v.report(
                &m.id,
                format!("{p}.id"),
                format!("duplicate member id {id:?}"),
            );
        }
        if id == "region" {
            v.report(
                &m.id,
                format!("{p}.id"),
                "\"region\" names the regional overview (/api/v1/reports/region/…); choose another member id",
            );
        }
        if m.name.value.trim().is_empty() {
            v.report(&m.name, format!("{p}.name"), "must not be empty");
        }
        let mut periods: Vec<KommunenummerPeriod> = Vec::new();
        for (j, k) in m.kommunenummer.iter().enumerate() {
            let kp = format!("{p}.kommunenummer[{j}]");
            let n = &k.number.value;
            if n.len() != 4 || !n.chars().all(|c| c.is_ascii_digit()) {
                v.report(
                    &k.number,
                    format!("{kp}.number"),
                    format!("kommunenummer must be four digits, got {n:?} (quote it: \"0604\")"),
                );
            }
            if let Some(until) = &k.until {
                if until.value < k.from.value {
                    v.report(until, format!("{kp}.until"), "until is before from");
                }
            }
            let period = KommunenummerPeriod {
                number: n.clone(),
                from: k.from.value,
                until: k.until.as_ref().map(|u| u.value),
            };
            if let Some(other) = periods.iter().find(|o| overlaps(o, &period)) {
                v.report(
                    &k.from,
                    format!("{kp}.from"),
                    format!(
                        "period overlaps the one for kommunenummer {:?}",
                        other.number
                    ),
                );
            }
            periods.push(period);
        }
        let merged_into = m.merged_into.as_ref().map(|mg| {
            if mg.member.value == m.id.value {
                v.report(
                    &mg.member,
                    format!("{p}.merged_into.member"),
                    "a member cannot merge into itself",
                );
            } else if !ids.contains(mg.member.value.as_str()) {
                v.report(
                    &mg.member,
                    format!("{p}.merged_into.member"),
                    format!("unknown member {:?}", mg.member.value),
                );
            }
            Merge {
                member: mg.member.value.clone(),
                date: mg.date.value,
            }
        });
        out.push(Member {
            id,
            name: m.name.value.clone(),
            kommunenummer: periods,
            merged_into,
            status_page: crate::inventory::PageAccess::Off,
        });
    }
    out
}

/// The shortest read token taken: a status page's token is its only lock.
const MIN_READ_TOKEN_CHARS: usize = 16;

/// One page's access: public, a read token, or off.
fn page_access(
    v: &mut Validator<'_>,
    raw: &Option<S<RawStatusAccess>>,
    path: &str,
    config_dir: &Path,
) -> PageAccess {
    let Some(block) = raw else {
        return PageAccess::Off;
    };
    let public = block.value.public.as_ref().is_some_and(|p| p.value);
    let token = snmp::secret(v, &block.value.token, &format!("{path}.token"), config_dir);
    match (public, token, &block.value.token) {
        (true, _, Some(t)) => {
            v.report(
                t,
                format!("{path}.token"),
                "a public page needs no token: give public: true or a token, not both",
            );
            PageAccess::Off
        }
        (true, _, None) => PageAccess::Public,
        (false, Some(secret), Some(t)) => {
            if !secret.is_unresolved() && secret.expose().chars().count() < MIN_READ_TOKEN_CHARS {
                // The value is never echoed, only its length's bound.
                v.report(
                    t,
                    format!("{path}.token"),
                    format!("the token is shorter than {MIN_READ_TOKEN_CHARS} characters: too easy to guess"),
                );
            }
            PageAccess::Token(secret)
        }
        (false, _, _) => PageAccess::Off,
    }
}

/// The status pages: the region's, each member's; read tokens that would
/// open more than their page (the write token, another page's) refused.
fn status_pages(
    v: &mut Validator<'_>,
    raw: &RawConfig,
    members: &mut [Member],
    agent: &AgentSettings,
    config_dir: &Path,
) -> StatusPageSettings {
    let region = page_access(v, &raw.status_page.region, "status_page.region", config_dir);
    let refresh = v
        .duration(&raw.status_page.refresh, "status_page.refresh")
        .unwrap_or(StatusPageSettings::default().refresh);
    if let Some(r) = &raw.status_page.refresh {
        if refresh < std::time::Duration::from_secs(1) {
            v.report(r, "status_page.refresh", "must be at least 1s");
        }
    }
    let mut seen: Vec<(String, crate::model::secret::Secret)> = Vec::new();
    if let PageAccess::Token(t) = &region {
        seen.push(("status_page.region.token".into(), t.clone()));
    }
    let paths = item_paths("members", raw.members.iter().map(|m| m.id.value.as_str()));
    for (i, m) in raw.members.iter().enumerate() {
        let path = format!("{}.status_page", paths[i]);
        let access = page_access(v, &m.status_page, &path, config_dir);
        if let (PageAccess::Token(t), Some(block)) = (&access, &m.status_page) {
            let at = block.value.token.as_ref().unwrap_or(&m.id);
            if !t.is_unresolved() {
                if agent.api_token.as_ref() == Some(t) {
                    v.report(at, format!("{path}.token"), "the same as agent.api_token: a read token must not open writes; give the page a token of its own");
                } else if let Some((other, _)) = seen.iter().find(|(_, s)| s == t) {
                    v.report(at, format!("{path}.token"), format!("the same as {other}: each page needs a token of its own, or one member could read another's"));
                }
            }
            seen.push((format!("{path}.token"), t.clone()));
        }
        if let Some(member) = members.get_mut(i) {
            member.status_page = access;
        }
    }
    if let (PageAccess::Token(t), Some(block)) = (&region, &raw.status_page.region) {
        if !t.is_unresolved() && agent.api_token.as_ref() == Some(t) {
            if let Some(at) = &block.value.token {
                v.report(at, "status_page.region.token", "the same as agent.api_token: a read token must not open writes; give the page a token of its own");
            }
        }
    }
    StatusPageSettings { region, refresh }
}

fn overlaps(a: &KommunenummerPeriod, b: &KommunenummerPeriod) -> bool {
    let a_end = a.until.unwrap_or(chrono::NaiveDate::MAX);
    let b_end = b.until.unwrap_or(chrono::NaiveDate::MAX);
    a.from <= b_end && b.from <= a_end
}

fn sites(v: &mut Validator<'_>, raw: &RawConfig, member_ids: &HashSet<&str>) -> Vec<Site> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let paths = item_paths("sites", raw.sites.iter().map(|s| s.id.value.as_str()));
    for (i, s) in raw.sites.iter().enumerate() {
        let p = paths[i].clone();
        let id = v.id(&s.id, &format!("{p}.id")).to_string();
        if !seen.insert(id.clone()) {
            v.report(
                &s.id,
                format!("{p}.id"),
                format!("duplicate site id {id:?}"),
            );
        }
        if let Some(m) = &s.member {
            if !member_ids.contains(m.value.as_str()) {
                v.report(
                    m,
                    format!("{p}.member"),
                    format!("unknown member {:?}", m.value),
                );
            }
        }
        out.push(Site {
            id,
            name: s.name.value.clone(),
            member: s.member.as_ref().map(|m| m.value.clone()),
        });
    }
    out
}

/// Report each dependency cycle once, at the parent reference that closes it.
fn check_cycles(v: &mut Validator<'_>, raw: &RawConfig) {
    let index: HashMap<&str, usize> = raw
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.value.as_str(), i))
        .collect();
    let target_paths = item_paths("targets", raw.targets.iter().map(|t| t.id.value.as_str()));
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut mark = vec![0u8; raw.targets.len()];
    for start in 0..raw.targets.len() {
        if mark[start] != 0 {
            continue;
        }
        // Iterative DFS: (node, next parent index to look at).
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        mark[start] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let parents = &raw.targets[node].parents;
            if *next >= parents.len() {
                mark[node] = 2;
                stack.pop();
                continue;
            }
            let j = *next;
            *next += 1;
            let Some(&parent) = index.get(parents[j].value.as_str()) else {
                continue;
            };
            if parent == node {
                continue; // self-parent is reported on its own
            }
            match mark[parent] {
                0 => {
                    mark[parent] = 1;
                    stack.push((parent, 0));
                }
                1 => {
                    let pos = stack.iter().position(|&(n, _)| n == parent).unwrap_or(0);
                    let mut names: Vec<&str> = stack[pos..]
                        .iter()
                        .map(|&(n, _)| raw.targets[n].id.value.as_str())
                        .collect();
                    names.push(raw.targets[parent].id.value.as_str());
                    v.report(
                        &parents[j],
                        format!("{}.parents[{j}]", target_paths[node]),
                        format!(
                            "dependency cycle (each target depends on the next): {}",
                            names.join(" -> ")
                        ),
                    );
                }
                _ => {}
            }
        }
    }
}

fn parse_address(s: &str) -> Result<Address, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        if ip.is_unspecified() || ip.is_multicast() {
            return Err(format!(
                "address {s:?} is not a host address (unspecified or multicast)"
            ));
        }
        return Ok(Address::Ip(ip));
    }
    if valid_hostname(s) {
        Ok(Address::Host(s.to_string()))
    } else {
        Err(format!(
            "invalid address {s:?}: expected an IPv4 address, an IPv6 address or a host name"
        ))
    }
}

/// RFC 1123 host name; a name whose last label is all digits is taken for a
/// mistyped IPv4 address (e.g. 198.51.100.300) and refused.
fn valid_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = s.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    labels.iter().all(label_ok)
        && labels
            .last()
            .is_some_and(|l| !l.chars().all(|c| c.is_ascii_digit()))
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert!(matches!(parse_address("127.0.0.1"), Ok(Address::Ip(_))));
        assert!(matches!(parse_address("::1"), Ok(Address::Ip(_))));
        assert!(matches!(
            parse_address("sw1.kongsberg.example"),
            Ok(Address::Host(_))
        ));
        assert!(parse_address("198.51.100.300").is_err());
        assert!(parse_address("0.0.0.0").is_err());
        assert!(parse_address("foo_bar").is_err());
        assert!(parse_address("-a.example").is_err());
        assert!(parse_address("").is_err());
    }

    #[test]
    fn label_names() {
        assert!(valid_label_name("rack"));
        assert!(valid_label_name("_x1"));
        assert!(!valid_label_name("1x"));
        assert!(!valid_label_name("__meta"));
        assert!(!valid_label_name("a-b"));
    }
}
