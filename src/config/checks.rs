//! Validation of a target's service check (`tcp`, `http`, `tls`, `dns`).
//! Every bad value is reported where it was written; the TLS client is
//! built here once (CA bundle, client certificate and key), so a file
//! that does not parse is a config error, not a check that fails later.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine;

use super::raw::{RawBasicAuth, RawHttp, RawProxy, RawTarget, RawTlsClient, S};
use super::snmp::secret;
use super::validate::{Origin, Validator};
use crate::inventory::checks::{
    defaults, CheckSettings, CheckSpec, DnsCheck, HeaderValue, HttpCheck, JsonCondition, Proxy,
    StatusRange, TcpCheck, TlsCheck, TlsClient,
};
use crate::inventory::Pattern;
use crate::model::secret::{Secret, SecretRef};

/// Largest CA bundle or client certificate file read.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// Headers whose values must be secret references.
fn sensitive_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization" | "proxy-authorization" | "cookie"
    ) || ["key", "token", "secret", "password", "auth"]
        .iter()
        .any(|w| n.contains(w))
}

/// A regular expression searched for (not anchored).
fn search(v: &mut Validator<'_>, raw: &Option<S<String>>, path: &str) -> Option<Pattern> {
    let raw = raw.as_ref()?;
    match regex::RegexBuilder::new(&raw.value)
        .size_limit(1 << 20)
        .build()
    {
        Ok(re) => Some(Pattern(re)),
        Err(e) => {
            v.report(raw, path, format!("invalid regular expression: {e}"));
            None
        }
    }
}

pub(super) fn read_pem(
    v: &mut Validator<'_>,
    raw: &S<String>,
    path: &str,
    dir: &Path,
) -> Option<Vec<u8>> {
    use std::io::Read;
    let file = dir.join(raw.value.trim());
    let read = std::fs::File::open(&file).and_then(|f| {
        let mut buf = Vec::new();
        f.take(MAX_PEM_BYTES + 1).read_to_end(&mut buf)?;
        Ok(buf)
    });
    match read {
        Ok(b) if b.len() as u64 > MAX_PEM_BYTES => {
            v.report(
                raw,
                path,
                format!("{} is larger than 1 MiB", file.display()),
            );
            None
        }
        Ok(b) => Some(b),
        Err(e) => {
            v.report(raw, path, format!("cannot read {}: {e}", file.display()));
            None
        }
    }
}

fn tls_client(
    v: &mut Validator<'_>,
    raw: Option<&RawTlsClient>,
    path: &str,
    dir: &Path,
    at: Origin,
) -> TlsClient {
    let Some(raw) = raw else {
        return TlsClient::default();
    };
    let ca_pem = raw
        .ca_file
        .as_ref()
        .and_then(|f| read_pem(v, f, &format!("{path}.ca_file"), dir));
    let client_cert_pem = raw
        .client_cert
        .as_ref()
        .and_then(|f| read_pem(v, f, &format!("{path}.client_cert"), dir));
    let client_key_pem = secret(v, &raw.client_key, &format!("{path}.client_key"), dir);
    if raw.client_cert.is_some() != raw.client_key.is_some() {
        v.report_at(
            at,
            path,
            "client_cert and client_key go together: give both or neither",
        );
    }
    let server_name = raw.server_name.as_ref().and_then(|n| {
        let name = n.value.trim();
        if rustls::pki_types::ServerName::try_from(name).is_err() {
            v.report(
                n,
                format!("{path}.server_name"),
                format!("{name:?} is not a valid server name (a DNS name or an IP address)"),
            );
            None
        } else {
            Some(name.to_string())
        }
    });
    TlsClient {
        ca_pem,
        client_cert_pem,
        client_key_pem,
        server_name,
        insecure_skip_verify: raw.insecure_skip_verify.as_ref().is_some_and(|b| b.value),
    }
}

/// Build the client once, as the check will: a bundle or key that does
/// not parse is reported at the `tls` key.
fn try_client(v: &mut Validator<'_>, tls: &TlsClient, http: bool, path: &str, at: Origin) {
    let unread = tls
        .client_key_pem
        .as_ref()
        .is_some_and(|k| k.is_unresolved());
    if unread {
        return; // secrets not read (`utkikk report`)
    }
    if let Err(e) = crate::probe::check::tls::Client::new(tls, http) {
        v.report_at(at, path, e.to_string());
    }
}

/// The check's interval and timeout: the timeout must be shorter.
fn timing(
    v: &mut Validator<'_>,
    interval: &Option<S<String>>,
    timeout: &Option<S<String>>,
    path: &str,
) -> (Duration, Duration) {
    let i = v
        .duration(interval, &format!("{path}.interval"))
        .unwrap_or(defaults::INTERVAL);
    let t = v
        .duration(timeout, &format!("{path}.timeout"))
        .unwrap_or(defaults::TIMEOUT.min(i / 2));
    if t >= i {
        let at = timeout.as_ref().or(interval.as_ref());
        if let Some(at) = at {
            v.report(
                at,
                format!("{path}.timeout"),
                format!(
                    "timeout {} must be shorter than the interval {}",
                    humantime::format_duration(t),
                    humantime::format_duration(i)
                ),
            );
        }
    }
    (i, t)
}

fn port(v: &mut Validator<'_>, raw: &Option<S<u16>>, path: &str, default: u16) -> u16 {
    match raw {
        Some(p) if p.value == 0 => {
            v.report(p, path, "must be from 1 to 65535");
            default
        }
        Some(p) => p.value,
        None => default,
    }
}

fn warning(v: &mut Validator<'_>, raw: &Option<S<String>>, path: &str) -> Duration {
    v.duration(raw, path)
        .unwrap_or(defaults::CERT_EXPIRY_WARNING)
}

/// The target's check, if it has one. `p` is the target's path.
pub(super) fn check(
    v: &mut Validator<'_>,
    t: &RawTarget,
    p: &str,
    dir: &Path,
) -> Option<Box<CheckSettings>> {
    let given: Vec<(&str, Origin)> = [
        t.tcp.as_deref().map(|b| ("tcp", Origin::from(b))),
        t.http.as_deref().map(|b| ("http", Origin::from(b))),
        t.tls.as_deref().map(|b| ("tls", Origin::from(b))),
        t.dns.as_deref().map(|b| ("dns", Origin::from(b))),
    ]
    .into_iter()
    .flatten()
    .collect();
    let &(first, _) = given.first()?;
    if let Some((second, at2)) = given.get(1) {
        v.report_at(
            *at2,
            format!("{p}.{second}"),
            format!(
                "a target has one check; it already has {first}: make another target for this one"
            ),
        );
    }
    if let Some(snmp) = t.snmp.as_deref() {
        v.report(
            snmp,
            format!("{p}.snmp"),
            format!("a target with a check ({first}) is graded by it alone: poll the server it runs on over SNMP, as its parent"),
        );
    }
    if let Some(e) = t.icmp.enabled.as_ref().filter(|e| e.value) {
        v.report(
            e,
            format!("{p}.icmp.enabled"),
            format!("a target with a check ({first}) is graded by it alone: ping the server it runs on, as its parent"),
        );
    }
    let path = format!("{p}.{first}");
    let (interval, timeout, spec) = if let Some(b) = t.tcp.as_deref() {
        let c = &b.value;
        let (i, to) = timing(v, &c.interval, &c.timeout, &path);
        let send = c.send.as_ref().map(|s| s.value.clone());
        if let Some(s) = c.send.as_ref().filter(|s| s.value.contains(['\r', '\n'])) {
            v.report(s, format!("{path}.send"), "one line: \\r\\n is appended");
        }
        let spec = CheckSpec::Tcp(TcpCheck {
            port: port(v, &Some(c.port.clone()), &format!("{path}.port"), 1),
            send,
            expect: search(v, &c.expect, &format!("{path}.expect")),
        });
        (i, to, spec)
    } else if let Some(b) = t.http.as_deref() {
        let (i, to) = timing(v, &b.value.interval, &b.value.timeout, &path);
        (
            i,
            to,
            CheckSpec::Http(Box::new(http(v, &b.value, &path, dir, b.into())?)),
        )
    } else if let Some(b) = t.tls.as_deref() {
        let c = &b.value;
        let (i, to) = timing(v, &c.interval, &c.timeout, &path);
        let tls = tls_client(v, c.tls.as_ref(), &format!("{path}.tls"), dir, b.into());
        try_client(v, &tls, false, &format!("{path}.tls"), b.into());
        let spec = CheckSpec::Tls(TlsCheck {
            port: port(v, &c.port, &format!("{path}.port"), 443),
            tls,
            cert_expiry_warning: warning(
                v,
                &c.cert_expiry_warning,
                &format!("{path}.cert_expiry_warning"),
            ),
        });
        (i, to, spec)
    } else {
        let b = t.dns.as_deref()?;
        let (i, to) = timing(v, &b.value.interval, &b.value.timeout, &path);
        (i, to, CheckSpec::Dns(dns(v, &b.value, &path)))
    };
    Some(Box::new(CheckSettings {
        interval,
        timeout,
        spec,
    }))
}

/// `None` when the URL is unusable (reported; the other keys are still
/// checked).
fn http(
    v: &mut Validator<'_>,
    c: &RawHttp,
    path: &str,
    dir: &Path,
    at: Origin,
) -> Option<HttpCheck> {
    let url = match url::Url::parse(c.url.value.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            if !u.username().is_empty() || u.password().is_some() {
                // Never echo the URL: it holds a password.
                v.report(
                    &c.url,
                    format!("{path}.url"),
                    "credentials in the URL are refused: use basic_auth with a password reference",
                );
            }
            Some(u)
        }
        _ => {
            v.report(
                &c.url,
                format!("{path}.url"),
                "expected an absolute http:// or https:// URL with a host",
            );
            None
        }
    };
    let method = match &c.method {
        Some(m) => {
            let up = m.value.trim().to_ascii_uppercase();
            if hyper::Method::from_bytes(up.as_bytes()).is_err() {
                v.report(
                    m,
                    format!("{path}.method"),
                    format!("invalid method {up:?}"),
                );
            }
            up
        }
        None => "GET".to_string(),
    };
    let mut headers = Vec::new();
    for (name, value) in &c.headers {
        let hp = format!("{path}.headers.{name}");
        if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            v.report(value, &hp, format!("invalid header name {name:?}"));
            continue;
        }
        if name.eq_ignore_ascii_case("host") {
            v.report(value, &hp, "Host is the URL's host: change the URL");
            continue;
        }
        let reference = SecretRef::parse(value.value.trim(), dir).is_ok();
        let hv = if reference {
            secret(v, &Some(value.clone()), &hp, dir).map(HeaderValue::Secret)
        } else if sensitive_header(name) {
            // Never echo the value: it is likely the secret itself.
            v.report(
                value,
                &hp,
                format!("the value of {name} must be a reference (env:NAME or file:PATH), not written here"),
            );
            None
        } else {
            Some(HeaderValue::Plain(value.value.clone()))
        };
        if let Some(hv) = hv {
            if !hv.expose().is_empty() && hyper::header::HeaderValue::from_str(hv.expose()).is_err()
            {
                v.report(value, &hp, "the value has characters a header cannot carry");
            }
            headers.push((name.clone(), hv));
        }
    }
    if let Some(b) = &c.basic_auth {
        if c.headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("authorization"))
        {
            v.report(
                &b.username,
                format!("{path}.basic_auth"),
                "give basic_auth or an Authorization header, not both",
            );
        }
        if let Some(value) = basic_auth(v, b, &format!("{path}.basic_auth"), dir) {
            headers.push(("authorization".into(), HeaderValue::Secret(value)));
        }
    }
    let status = match &c.status {
        None => vec![StatusRange { from: 200, to: 299 }],
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let r = status_range(&s.value);
                if r.is_none() {
                    v.report(
                        s,
                        format!("{path}.status[{i}]"),
                        "expected a status code (100-599) or a class such as 2xx",
                    );
                }
                r
            })
            .collect(),
    };
    let json = c.json.as_ref().map(|j| {
        if !(j.pointer.value.is_empty() || j.pointer.value.starts_with('/')) {
            v.report(
                &j.pointer,
                format!("{path}.json.pointer"),
                "a JSON pointer starts with '/' (RFC 6901), e.g. /status",
            );
        }
        if j.equals.is_none() && j.matches.is_none() {
            v.report(&j.pointer, format!("{path}.json"), "give equals or matches");
        }
        JsonCondition {
            pointer: j.pointer.value.clone(),
            equals: j.equals.as_ref().map(|e| e.value.clone()),
            matches: search(v, &j.matches, &format!("{path}.json.matches")),
        }
    });
    let tls = tls_client(v, c.tls.as_ref(), &format!("{path}.tls"), dir, at);
    try_client(v, &tls, true, &format!("{path}.tls"), at);
    let max_redirects = match &c.max_redirects {
        Some(m) if m.value > 30 => {
            v.report(m, format!("{path}.max_redirects"), "at most 30");
            defaults::MAX_REDIRECTS
        }
        Some(m) => m.value,
        None => defaults::MAX_REDIRECTS,
    };
    Some(HttpCheck {
        method,
        headers,
        status,
        body: search(v, &c.body, &format!("{path}.body")),
        body_not: search(v, &c.body_not, &format!("{path}.body_not")),
        json,
        degraded_response_time: v.duration(
            &c.degraded_response_time,
            &format!("{path}.degraded_response_time"),
        ),
        follow_redirects: c.follow_redirects.as_ref().is_some_and(|b| b.value),
        max_redirects,
        tls,
        cert_expiry_warning: warning(
            v,
            &c.cert_expiry_warning,
            &format!("{path}.cert_expiry_warning"),
        ),
        proxy: c
            .proxy
            .as_ref()
            .and_then(|x| proxy(v, x, &c.headers, &format!("{path}.proxy"), dir)),
        // Last: every other key is checked (and reported) first.
        url: url?,
    })
}

/// `Basic …` for `b`, its password read from the reference; `None` when
/// something is wrong (reported).
fn basic_auth(v: &mut Validator<'_>, b: &RawBasicAuth, path: &str, dir: &Path) -> Option<Secret> {
    let colon = b.username.value.contains(':');
    if colon {
        v.report(
            &b.username,
            format!("{path}.username"),
            "a basic-auth user name cannot contain ':'",
        );
    }
    // The password is checked either way: every problem is reported.
    let pw = secret(
        v,
        &Some(b.password.clone()),
        &format!("{path}.password"),
        dir,
    )?;
    if colon {
        return None;
    }
    let token = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        b.username.value,
        pw.expose()
    ));
    Some(Secret::derived(format!("Basic {token}")))
}

/// An HTTP proxy: `http://host:port`, nothing more.
fn proxy(
    v: &mut Validator<'_>,
    x: &RawProxy,
    headers: &BTreeMap<String, S<String>>,
    path: &str,
    dir: &Path,
) -> Option<Proxy> {
    let url = match url::Url::parse(x.url.value.trim()) {
        Ok(u) if u.scheme() == "http" && u.host_str().is_some() => u,
        Ok(u) if u.scheme() == "https" => {
            v.report(
                &x.url,
                format!("{path}.url"),
                "only http:// proxies (https:// URLs still go through them, TLS end to end)",
            );
            return None;
        }
        _ => {
            v.report(
                &x.url,
                format!("{path}.url"),
                "expected http://host:port, e.g. http://proxy.iks.local:3128",
            );
            return None;
        }
    };
    let mut ok = true;
    if !url.username().is_empty() || url.password().is_some() {
        // Never echo the URL: it holds a password.
        v.report(
            &x.url,
            format!("{path}.url"),
            "credentials in the proxy URL are refused: use proxy.basic_auth with a password reference",
        );
        ok = false;
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        v.report(
            &x.url,
            format!("{path}.url"),
            "a proxy URL is http://host:port, with no path",
        );
        ok = false;
    }
    // The URL's own default (80) is rarely a proxy's: say it.
    let port = url.port();
    if port.is_none() {
        v.report(
            &x.url,
            format!("{path}.url"),
            "give the proxy's port, e.g. http://proxy.iks.local:3128",
        );
    }
    if let Some(b) = &x.basic_auth {
        if headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("proxy-authorization"))
        {
            v.report(
                &b.username,
                format!("{path}.basic_auth"),
                "give proxy.basic_auth or a Proxy-Authorization header, not both",
            );
        }
    }
    let authorization = match &x.basic_auth {
        Some(b) => Some(basic_auth(v, b, &format!("{path}.basic_auth"), dir)?),
        None => None,
    };
    let host = url.host_str()?.trim_matches(['[', ']']).to_string();
    Some(Proxy {
        host,
        port: port.filter(|_| ok)?,
        authorization,
    })
}

/// `200`, `"200"`, `"2xx"` or `"200-204"`.
fn status_range(v: &serde_json::Value) -> Option<StatusRange> {
    let ok = |c: u16| (100..=599).contains(&c);
    let r = match v {
        serde_json::Value::Number(n) => {
            let c = u16::try_from(n.as_u64()?).ok()?;
            StatusRange { from: c, to: c }
        }
        serde_json::Value::String(s) => {
            let s = s.trim().to_ascii_lowercase();
            if let Some(class) = s.strip_suffix("xx") {
                let c: u16 = class.parse().ok()?;
                StatusRange {
                    from: c * 100,
                    to: c * 100 + 99,
                }
            } else if let Some((a, b)) = s.split_once('-') {
                StatusRange {
                    from: a.trim().parse().ok()?,
                    to: b.trim().parse().ok()?,
                }
            } else {
                let c = s.parse().ok()?;
                StatusRange { from: c, to: c }
            }
        }
        _ => return None,
    };
    (ok(r.from) && ok(r.to) && r.from <= r.to).then_some(r)
}

fn dns(v: &mut Validator<'_>, c: &super::raw::RawDns, path: &str) -> DnsCheck {
    use crate::probe::check::dns;
    let name = c.name.value.trim().to_string();
    if name.is_empty() || !dns::valid_name(&name) {
        v.report(
            &c.name,
            format!("{path}.name"),
            format!("{name:?} is not a DNS name"),
        );
    }
    let record_type = match &c.record_type {
        Some(t) if !dns::valid_record_type(t.value.trim()) => {
            v.report(
                t,
                format!("{path}.type"),
                format!(
                    "unknown record type {:?}: e.g. A, AAAA, MX, TXT, SOA, NS, SRV, PTR, CNAME",
                    t.value
                ),
            );
            "A".to_string()
        }
        Some(t) => t.value.trim().to_ascii_uppercase(),
        None => "A".to_string(),
    };
    let tcp = match &c.transport {
        Some(t) if t.value.eq_ignore_ascii_case("tcp") => true,
        Some(t) if t.value.eq_ignore_ascii_case("udp") => false,
        Some(t) => {
            v.report(t, format!("{path}.transport"), "expected udp or tcp");
            false
        }
        None => false,
    };
    let known = dns::rcode_names();
    let rcodes: Vec<String> = match &c.rcode {
        None => vec!["NOERROR".to_string()],
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let up = r.value.trim().to_ascii_uppercase();
                if known.contains(&up) {
                    Some(up)
                } else {
                    v.report(
                        r,
                        format!("{path}.rcode[{i}]"),
                        format!(
                            "unknown response code {:?}: expected one of {}",
                            r.value,
                            known.join(", ")
                        ),
                    );
                    None
                }
            })
            .collect(),
    };
    let only_noerror = rcodes.iter().all(|r| r == "NOERROR");
    DnsCheck {
        port: port(v, &c.port, &format!("{path}.port"), defaults::DNS_PORT),
        name,
        record_type,
        tcp,
        require_answer: c.require_answer.as_ref().map_or(only_noerror, |b| b.value),
        rcodes,
        answer: search(v, &c.answer, &format!("{path}.answer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_classes_and_ranges() {
        let r = |v: serde_json::Value| status_range(&v).map(|r| (r.from, r.to));
        assert_eq!(r(serde_json::json!(200)), Some((200, 200)));
        assert_eq!(r(serde_json::json!("2xx")), Some((200, 299)));
        assert_eq!(r(serde_json::json!("301-308")), Some((301, 308)));
        assert_eq!(r(serde_json::json!("204")), Some((204, 204)));
        for bad in [
            serde_json::json!(99),
            serde_json::json!("7xx"),
            serde_json::json!("308-301"),
            serde_json::json!("ok"),
            serde_json::json!(true),
        ] {
            assert_eq!(r(bad.clone()), None, "{bad}");
        }
        assert_eq!(StatusRange { from: 200, to: 299 }.to_string(), "2xx");
        assert_eq!(StatusRange { from: 301, to: 302 }.to_string(), "301-302");
    }

    #[test]
    fn secret_looking_headers_must_be_references() {
        for h in [
            "Authorization",
            "cookie",
            "X-Api-Key",
            "X-Auth-Token",
            "Client-Secret",
        ] {
            assert!(sensitive_header(h), "{h}");
        }
        for h in ["Accept", "User-Agent", "X-Request-Id"] {
            assert!(!sensitive_header(h), "{h}");
        }
    }
}
