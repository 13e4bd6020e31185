//! Validation of `snmp` blocks. Each block (`defaults.snmp`, a target's
//! `snmp`) is first read field by field into a [`Partial`], reporting bad
//! values where they were written; a target's partial then falls back key by
//! key to the defaults, and the rules that tie fields together (a v3 user,
//! passphrases for the security level, no MD5/DES unless allowed) are
//! checked on the result and reported at the target's `snmp` key.

use std::path::Path;
use std::time::Duration;

use super::raw::{RawSnmp, S};
use super::validate::{Origin, Validator};
use crate::inventory::{
    defaults, CustomKind, CustomOid, InterfaceFilter, Pattern, SnmpAuthProtocol, SnmpCredentials,
    SnmpModules, SnmpPrivProtocol, SnmpSettings,
};
use crate::model::secret::{Secret, SecretRef};

const MODULES: [&str; 3] = ["system", "interfaces", "host_resources"];
/// Largest max-repetitions we send; bigger answers risk tooBig and IP fragments.
const MAX_REPETITIONS_LIMIT: u32 = 200;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Version {
    V2c,
    V3,
}

/// USM security levels, named as in net-snmp.
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Level {
    NoAuthNoPriv,
    AuthNoPriv,
    AuthPriv,
}

/// One block's fields, each `None` when unset (or invalid, already reported).
#[derive(Default, Clone)]
pub(super) struct Partial {
    enabled: Option<bool>,
    version: Option<Version>,
    community: Option<Secret>,
    user: Option<String>,
    level: Option<Level>,
    auth_protocol: Option<SnmpAuthProtocol>,
    auth_passphrase: Option<Secret>,
    priv_protocol: Option<SnmpPrivProtocol>,
    priv_passphrase: Option<Secret>,
    context: Option<String>,
    allow_weak_crypto: Option<bool>,
    port: Option<u16>,
    timeout: Option<Duration>,
    retries: Option<u32>,
    max_repetitions: Option<u32>,
    interval: Option<Duration>,
    modules: Option<SnmpModules>,
    interfaces: Option<InterfaceFilter>,
    custom: Option<Vec<CustomOid>>,
    /// Fields that were written but invalid (already reported): they do not
    /// fall back to the defaults, and rules needing them stay quiet.
    bad: Vec<&'static str>,
}

impl Partial {
    fn or(self, base: &Partial) -> Partial {
        let mut bad = self.bad.clone();
        macro_rules! pick {
            ($($f:ident),*) => {{
                $(
                    if self.$f.is_none()
                        && !self.bad.contains(&stringify!($f))
                        && base.bad.contains(&stringify!($f))
                    {
                        bad.push(stringify!($f));
                    }
                )*
                Partial {
                    $($f: if self.bad.contains(&stringify!($f)) {
                        None
                    } else {
                        self.$f.or_else(|| base.$f.clone())
                    },)*
                    bad,
                }
            }};
        }
        pick!(
            enabled,
            version,
            community,
            user,
            level,
            auth_protocol,
            auth_passphrase,
            priv_protocol,
            priv_passphrase,
            context,
            allow_weak_crypto,
            port,
            timeout,
            retries,
            max_repetitions,
            interval,
            modules,
            interfaces,
            custom
        )
    }
}

pub(super) fn choice<T: Copy>(
    v: &mut Validator<'_>,
    raw: &Option<S<String>>,
    path: &str,
    names: &[(&str, T)],
) -> Option<T> {
    let raw = raw.as_ref()?;
    let found = names
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(raw.value.trim()))
        .map(|(_, t)| *t);
    if found.is_none() {
        let all: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
        v.report(
            raw,
            path,
            format!(
                "unknown value {:?}: expected one of {}",
                raw.value,
                all.join(", ")
            ),
        );
    }
    found
}

pub(super) fn secret(
    v: &mut Validator<'_>,
    raw: &Option<S<String>>,
    path: &str,
    config_dir: &Path,
) -> Option<Secret> {
    let raw = raw.as_ref()?;
    // Never echo the value: it may be the secret itself, written inline.
    let r = match SecretRef::parse(raw.value.trim(), config_dir) {
        Ok(r) => r,
        Err(e) => {
            v.report(raw, path, e.to_string());
            return None;
        }
    };
    let resolved = match v.secrets {
        // The form is checked; nothing is read (`utkikk report`).
        super::Secrets::Skip => return Some(Secret::unresolved()),
        super::Secrets::LedgerOnly if path != "ledger.url" => return Some(Secret::unresolved()),
        super::Secrets::LedgerOnly => r.resolve(),
        super::Secrets::Resolve => r.resolve(),
        super::Secrets::ResolveWith(vars) => r.resolve_with(|name| vars.get(name).cloned()),
    };
    match resolved {
        Ok(s) => Some(s),
        Err(e) => {
            v.report(raw, path, e.to_string());
            None
        }
    }
}

/// Read one block's fields. `path` is e.g. `defaults.snmp` or `targets[3].snmp`.
pub(super) fn partial(
    v: &mut Validator<'_>,
    raw: &RawSnmp,
    path: &str,
    config_dir: &Path,
) -> Partial {
    let mut bad: Vec<&'static str> = Vec::new();
    let mut check = |name: &'static str, given: bool, ok: bool| {
        if given && !ok {
            bad.push(name);
        }
    };
    let version = choice(
        v,
        &raw.version,
        &format!("{path}.version"),
        &[("2c", Version::V2c), ("3", Version::V3)],
    );
    let level = choice(
        v,
        &raw.security_level,
        &format!("{path}.security_level"),
        &[
            ("noAuthNoPriv", Level::NoAuthNoPriv),
            ("authNoPriv", Level::AuthNoPriv),
            ("authPriv", Level::AuthPriv),
        ],
    );
    let max_repetitions = match &raw.max_repetitions {
        Some(m) if m.value == 0 || m.value > MAX_REPETITIONS_LIMIT => {
            v.report(
                m,
                format!("{path}.max_repetitions"),
                format!("must be from 1 to {MAX_REPETITIONS_LIMIT}"),
            );
            None
        }
        m => m.as_ref().map(|m| m.value),
    };
    let port = match &raw.port {
        Some(p) if p.value == 0 => {
            v.report(p, format!("{path}.port"), "must be from 1 to 65535");
            None
        }
        p => p.as_ref().map(|p| p.value),
    };
    let user = raw.user.as_ref().and_then(|u| {
        if u.value.is_empty() || u.value.len() > 32 {
            v.report(u, format!("{path}.user"), "must be 1-32 characters");
            None
        } else {
            Some(u.value.clone())
        }
    });
    let modules = raw.modules.as_ref().map(|list| {
        let mut m = SnmpModules::default();
        for (i, name) in list.iter().enumerate() {
            match name.value.as_str() {
                "system" => m.system = true,
                "interfaces" => m.interfaces = true,
                "host_resources" => m.host_resources = true,
                other => v.report(
                    name,
                    format!("{path}.modules[{i}]"),
                    format!(
                        "unknown module {other:?}: expected one of {}",
                        MODULES.join(", ")
                    ),
                ),
            }
        }
        m
    });
    let interfaces = raw.interfaces.as_ref().map(|f| InterfaceFilter {
        name: pattern(v, &f.name, &format!("{path}.interfaces.name")),
        alias: pattern(v, &f.alias, &format!("{path}.interfaces.alias")),
        types: f.types.iter().map(|t| t.value).collect(),
    });
    let custom = raw.custom.as_ref().map(|list| {
        let mut out: Vec<CustomOid> = Vec::new();
        for (i, c) in list.iter().enumerate() {
            let p = format!("{path}.custom[{i}]");
            let oid = parse_oid(&c.oid.value);
            if oid.is_none() {
                v.report(
                    &c.oid,
                    format!("{p}.oid"),
                    format!(
                        "invalid OID {:?}: write it numerically, e.g. 1.3.6.1.4.1.2021.10.1.3.1",
                        c.oid.value
                    ),
                );
            }
            if !valid_metric_name(&c.name.value) {
                v.report(
                    &c.name,
                    format!("{p}.name"),
                    format!(
                        "invalid metric name {:?}: use [a-zA-Z_:][a-zA-Z0-9_:]*",
                        c.name.value
                    ),
                );
            } else if out.iter().any(|o| o.name == c.name.value) {
                v.report(
                    &c.name,
                    format!("{p}.name"),
                    format!("metric name {:?} used twice", c.name.value),
                );
            }
            let kind = choice(
                v,
                &Some(c.kind.clone()),
                &format!("{p}.type"),
                &[
                    ("gauge", CustomKind::Gauge),
                    ("counter", CustomKind::Counter),
                ],
            );
            if let (Some(oid), Some(kind)) = (oid, kind) {
                out.push(CustomOid {
                    oid,
                    name: c.name.value.clone(),
                    kind,
                    help: c.help.as_ref().map(|h| h.value.clone()).unwrap_or_else(|| {
                        format!("SNMP OID {}", c.oid.value.trim_start_matches('.'))
                    }),
                });
            }
        }
        out
    });
    let community = secret(v, &raw.community, &format!("{path}.community"), config_dir);
    let auth_protocol = choice(
        v,
        &raw.auth_protocol,
        &format!("{path}.auth_protocol"),
        &SnmpAuthProtocol::NAMES,
    );
    let auth_passphrase = secret(
        v,
        &raw.auth_passphrase,
        &format!("{path}.auth_passphrase"),
        config_dir,
    );
    let priv_protocol = choice(
        v,
        &raw.priv_protocol,
        &format!("{path}.priv_protocol"),
        &SnmpPrivProtocol::NAMES,
    );
    let priv_passphrase = secret(
        v,
        &raw.priv_passphrase,
        &format!("{path}.priv_passphrase"),
        config_dir,
    );
    let timeout = v.duration(&raw.timeout, &format!("{path}.timeout"));
    let interval = v.duration(&raw.interval, &format!("{path}.interval"));
    check("version", raw.version.is_some(), version.is_some());
    check("level", raw.security_level.is_some(), level.is_some());
    check("community", raw.community.is_some(), community.is_some());
    check("user", raw.user.is_some(), user.is_some());
    check(
        "auth_protocol",
        raw.auth_protocol.is_some(),
        auth_protocol.is_some(),
    );
    check(
        "auth_passphrase",
        raw.auth_passphrase.is_some(),
        auth_passphrase.is_some(),
    );
    check(
        "priv_protocol",
        raw.priv_protocol.is_some(),
        priv_protocol.is_some(),
    );
    check(
        "priv_passphrase",
        raw.priv_passphrase.is_some(),
        priv_passphrase.is_some(),
    );
    check("port", raw.port.is_some(), port.is_some());
    check("timeout", raw.timeout.is_some(), timeout.is_some());
    check(
        "max_repetitions",
        raw.max_repetitions.is_some(),
        max_repetitions.is_some(),
    );
    check("interval", raw.interval.is_some(), interval.is_some());
    Partial {
        enabled: raw.enabled.as_ref().map(|e| e.value),
        version,
        community,
        user,
        level,
        auth_protocol,
        auth_passphrase,
        priv_protocol,
        priv_passphrase,
        context: raw.context.as_ref().map(|c| c.value.clone()),
        allow_weak_crypto: raw.allow_weak_crypto.as_ref().map(|a| a.value),
        port,
        timeout,
        retries: raw.retries.as_ref().map(|r| r.value),
        max_repetitions,
        interval,
        modules,
        interfaces,
        custom,
        bad,
    }
}

/// The settings of a target with an `snmp` block; `None` when disabled or
/// when a rule failed (reported at `at`, the block's position).
pub(super) fn settings(
    v: &mut Validator<'_>,
    own: Partial,
    defaults: &Partial,
    at: Origin,
    path: &str,
) -> Option<SnmpSettings> {
    let p = own.or(defaults);
    if p.enabled == Some(false) {
        return None;
    }
    let fail = |v: &mut Validator<'_>, field: &str, msg: String| {
        v.report_at(at, format!("{path}.{field}"), msg);
    };
    let weak_ok = p.allow_weak_crypto.unwrap_or(false);
    let is_bad = |f: &str| p.bad.contains(&f);
    let fail = |v: &mut Validator<'_>, field: &str, msg: String| {
        // A field written but invalid was reported where it was written.
        if !is_bad(field) {
            fail(v, field, msg);
        }
    };
    let credentials = match p.version {
        None if is_bad("version") => None,
        None => {
            fail(
                v,
                "version",
                "missing: set version to 2c or 3 here or in defaults.snmp".into(),
            );
            None
        }
        Some(Version::V2c) => match p.community.clone() {
            Some(community) => Some(SnmpCredentials::V2c { community }),
            None => {
                fail(
                    v,
                    "community",
                    "SNMPv2c needs a community (env:NAME or file:PATH)".into(),
                );
                None
            }
        },
        Some(Version::V3) => {
            if is_bad("level") {
                return None;
            }
            let level = p.level.unwrap_or(Level::AuthPriv);
            let mut ok = true;
            let user = p.user.clone().unwrap_or_else(|| {
                fail(v, "user", "SNMPv3 needs a user".into());
                ok = false;
                String::new()
            });
            let auth = if level == Level::NoAuthNoPriv {
                None
            } else {
                let proto = p.auth_protocol.unwrap_or(SnmpAuthProtocol::Sha256);
                if proto == SnmpAuthProtocol::Md5 && !weak_ok {
                    fail(
                        v,
                        "auth_protocol",
                        "MD5 is broken; use SHA-256 or stronger, or set allow_weak_crypto: true for an old device".into(),
                    );
                    ok = false;
                }
                let s = passphrase(v, &fail, "auth_passphrase", p.auth_passphrase.clone());
                ok &= s.is_some();
                s.map(|s| (proto, s))
            };
            let privacy = if level == Level::AuthPriv {
                let proto = p.priv_protocol.unwrap_or(SnmpPrivProtocol::Aes128);
                if proto == SnmpPrivProtocol::Des && !weak_ok {
                    fail(
                        v,
                        "priv_protocol",
                        "DES is broken; use AES, or set allow_weak_crypto: true for an old device"
                            .into(),
                    );
                    ok = false;
                }
                let s = passphrase(v, &fail, "priv_passphrase", p.priv_passphrase.clone());
                ok &= s.is_some();
                s.map(|s| (proto, s))
            } else {
                None
            };
            ok.then(|| SnmpCredentials::V3 {
                user,
                auth,
                privacy,
                context: p.context.clone().unwrap_or_default(),
            })
        }
    };
    let timeout = p.timeout.unwrap_or(defaults::SNMP_TIMEOUT);
    let retries = p.retries.unwrap_or(defaults::SNMP_RETRIES);
    let interval = p.interval.unwrap_or(defaults::SNMP_INTERVAL);
    if timeout * (retries + 1) >= interval {
        fail(
            v,
            "timeout",
            format!(
                "timeout ({}) times attempts ({}) must be shorter than interval ({})",
                humantime::format_duration(timeout),
                retries + 1,
                humantime::format_duration(interval)
            ),
        );
        return None;
    }
    Some(SnmpSettings {
        credentials: credentials?,
        port: p.port.unwrap_or(defaults::SNMP_PORT),
        timeout,
        retries,
        max_repetitions: p.max_repetitions.unwrap_or(defaults::SNMP_MAX_REPETITIONS),
        interval,
        modules: p.modules.unwrap_or(SnmpModules {
            system: true,
            interfaces: true,
            host_resources: false,
        }),
        interfaces: p.interfaces.unwrap_or_default(),
        custom: p.custom.unwrap_or_default(),
    })
}

/// A v3 passphrase the security level needs: present, and at least 8
/// characters (RFC 3414).
fn passphrase(
    v: &mut Validator<'_>,
    fail: &dyn Fn(&mut Validator<'_>, &str, String),
    field: &str,
    value: Option<Secret>,
) -> Option<Secret> {
    match value {
        // (An unresolved stand-in says nothing about the real length.)
        Some(s) if s.expose().len() >= 8 || s.is_unresolved() => Some(s),
        Some(_) => {
            fail(v, field, "must be at least 8 characters (RFC 3414)".into());
            None
        }
        None => {
            fail(
                v,
                field,
                "the security level needs this passphrase (env:NAME or file:PATH)".into(),
            );
            None
        }
    }
}

fn pattern(v: &mut Validator<'_>, raw: &Option<S<String>>, path: &str) -> Option<Pattern> {
    let raw = raw.as_ref()?;
    match regex::Regex::new(&format!("^(?:{})$", raw.value)) {
        Ok(r) => Some(Pattern(r)),
        Err(e) => {
            let msg = e.to_string();
            let last = msg.lines().last().unwrap_or("invalid").trim().to_string();
            v.report(
                raw,
                path,
                format!("invalid regular expression {:?}: {last}", raw.value),
            );
            None
        }
    }
}

/// `1.3.6.1.2.1.1.3.0` (a leading dot allowed) into arcs.
pub fn parse_oid(s: &str) -> Option<Vec<u64>> {
    let s = s.trim().trim_start_matches('.');
    let arcs: Option<Vec<u64>> = s.split('.').map(|a| a.parse().ok()).collect();
    arcs.filter(|a| a.len() >= 2 && a[0] <= 2)
}

fn valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids() {
        assert_eq!(parse_oid(".1.3.6.1"), Some(vec![1, 3, 6, 1]));
        assert_eq!(parse_oid("1.3.6.1.2.1.1.3.0").map(|o| o.len()), Some(9));
        assert_eq!(parse_oid("ifHCInOctets"), None);
        assert_eq!(parse_oid("1"), None);
        assert_eq!(parse_oid("1..3"), None);
    }
}
