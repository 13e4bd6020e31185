//! HTTP(S): one request over a new connection (hyper's HTTP/1.1 client
//! connection, over rustls for `https`), its answer judged by status,
//! body and response time, the certificate by its expiry. Phases are
//! blackbox_exporter's: `resolve`, `connect`, `tls`, `processing` (the
//! request sent, until the answer's headers), `transfer` (the body).

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{HeaderName, HeaderValue, HOST, LOCATION, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{connect, tls, Progress};
use crate::inventory::checks::{defaults, HttpCheck};
use crate::model::check::quote;
use crate::model::CheckProblem;

const AGENT: &str = concat!("utkikk/", env!("CARGO_PKG_VERSION"));

/// One answer: its status, where it redirects, its body (cut at
/// [`defaults::MAX_BODY_BYTES`]).
struct Answer {
    status: u16,
    location: Option<String>,
    body: Vec<u8>,
}

pub(super) async fn run(p: &mut Progress, ip: IpAddr, c: &HttpCheck, tls: Option<&tls::Client>) {
    let mut url = c.url.clone();
    let first_host = url.host_str().map(str::to_string);
    let mut answer;
    loop {
        // The configured URL's host is the target's address; a redirect
        // elsewhere is looked up.
        let ip = if url.host_str().map(str::to_string) == first_host {
            ip
        } else {
            match resolve(p, &url).await {
                Some(ip) => ip,
                None => return,
            }
        };
        let Some(a) = exchange(p, ip, &url, c, tls).await else {
            return;
        };
        answer = a;
        let redirect = (300..400).contains(&answer.status) && c.follow_redirects;
        let Some(location) = answer.location.as_ref().filter(|_| redirect) else {
            break;
        };
        if p.redirects >= c.max_redirects {
            p.problem(CheckProblem::Redirect {
                location: location.clone(),
                why: "is one too many (max_redirects)",
            });
            return;
        }
        match url.join(location) {
            Ok(next) if matches!(next.scheme(), "http" | "https") => url = next,
            _ => {
                p.problem(CheckProblem::Redirect {
                    location: location.clone(),
                    why: "is not an http(s) URL",
                });
                return;
            }
        }
        p.redirects += 1;
    }
    judge(p, c, &answer);
}

/// Look up a redirect's host (timed as `resolve`).
async fn resolve(p: &mut Progress, url: &url::Url) -> Option<IpAddr> {
    let host = url.host_str()?.trim_matches(['[', ']']).to_string();
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip);
    }
    p.begin("resolve");
    let found = tokio::net::lookup_host((host, 0)).await;
    p.end();
    match found.ok().and_then(|mut a| a.next()) {
        Some(a) => Some(a.ip()),
        None => {
            p.problem(CheckProblem::Connect {
                error: format!(
                    "redirect host {} does not resolve",
                    quote(url.host_str().unwrap_or(""))
                ),
            });
            None
        }
    }
}

/// Connect, shake hands for https, send the request, read the answer.
async fn exchange(
    p: &mut Progress,
    ip: IpAddr,
    url: &url::Url,
    c: &HttpCheck,
    tls: Option<&tls::Client>,
) -> Option<Answer> {
    let port = url.port_or_known_default().unwrap_or(80);
    let stream = connect(p, SocketAddr::new(ip, port)).await?;
    let host = url.host_str().unwrap_or_default();
    if url.scheme() == "https" {
        let Some(client) = tls else {
            p.problem(CheckProblem::Tls {
                error: "no TLS client for this check".into(),
            });
            return None;
        };
        let name = host.trim_matches(['[', ']']);
        let stream = client
            .handshake(p, stream, name, c.cert_expiry_warning)
            .await?;
        request(p, stream, url, c).await
    } else {
        request(p, stream, url, c).await
    }
}

async fn request<S>(p: &mut Progress, stream: S, url: &url::Url, c: &HttpCheck) -> Option<Answer>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let protocol = |p: &mut Progress, e: hyper::Error| {
        p.end();
        p.problem(CheckProblem::Protocol {
            error: quote(&e.to_string()),
        });
    };
    p.begin("processing");
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(x) => x,
        Err(e) => {
            protocol(p, e);
            return None;
        }
    };
    let req = match build(url, c) {
        Ok(r) => r,
        Err(e) => {
            p.end();
            p.problem(CheckProblem::Protocol { error: e });
            return None;
        }
    };
    // The connection is driven beside the request, in this task: nothing
    // outlives the check.
    let mut conn = std::pin::pin!(conn);
    let mut conn_done = false;
    let mut send = std::pin::pin!(sender.send_request(req));
    let response = tokio::select! {
        biased;
        r = &mut send => r,
        r = &mut conn => {
            conn_done = true;
            match r {
                Err(e) => Err(e),
                // The connection ended (Connection: close); the answer,
                // if one came, is waiting.
                Ok(()) => send.await,
            }
        }
    };
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            protocol(p, e);
            return None;
        }
    };
    p.end();
    p.http_status = Some(response.status().as_u16());
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|l| l.to_str().ok())
        .map(str::to_string);
    p.begin("transfer");
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame?;
            if let Some(data) = frame.data_ref() {
                let room = defaults::MAX_BODY_BYTES.saturating_sub(bytes.len());
                bytes.extend_from_slice(&data[..data.len().min(room)]);
                if room <= data.len() {
                    break;
                }
            }
        }
        Ok::<(), hyper::Error>(())
    };
    let read = if conn_done {
        read.await
    } else {
        tokio::select! {
            r = read => r,
            // The connection ends with the body (Connection: close).
            Err(e) = &mut conn => Err(e),
        }
    };
    if let Err(e) = read {
        protocol(p, e);
        return None;
    }
    p.end();
    Some(Answer {
        status,
        location,
        body: bytes,
    })
}

fn build(url: &url::Url, c: &HttpCheck) -> Result<hyper::Request<Empty<Bytes>>, String> {
    let mut path = url.path().to_string();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let mut req = hyper::Request::builder()
        .method(c.method.as_str())
        .uri(path)
        .header(HOST, host)
        .header(USER_AGENT, AGENT)
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| quote(&e.to_string()))?;
    for (name, value) in &c.headers {
        // Checked at load; never quote a value (it may be a secret).
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {}", quote(name)))?;
        let value = HeaderValue::from_str(value.expose())
            .map_err(|_| format!("invalid value for header {name}"))?;
        req.headers_mut().insert(name, value);
    }
    Ok(req)
}

/// The answer against the check's conditions.
fn judge(p: &mut Progress, c: &HttpCheck, a: &Answer) {
    if !c.status.iter().any(|r| r.contains(a.status)) {
        let expected: Vec<String> = c.status.iter().map(|r| r.to_string()).collect();
        p.problem(CheckProblem::Status {
            got: a.status,
            expected: expected.join(", "),
        });
    }
    let text = String::from_utf8_lossy(&a.body);
    if let Some(re) = &c.body {
        if !re.0.is_match(&text) {
            p.problem(CheckProblem::Body {
                condition: format!("no match for /{}/", re.0.as_str()),
            });
        }
    }
    if let Some(re) = &c.body_not {
        if re.0.is_match(&text) {
            p.problem(CheckProblem::Body {
                condition: format!("matches /{}/, which it must not", re.0.as_str()),
            });
        }
    }
    if let Some(j) = &c.json {
        if let Some(problem) = json_problem(j, &a.body) {
            p.problem(CheckProblem::Body { condition: problem });
        }
    }
    if let Some(limit) = c.degraded_response_time {
        let took = p.start.elapsed();
        if took > limit {
            p.problem(CheckProblem::Slow {
                seconds: took.as_secs_f64(),
                limit_seconds: limit.as_secs_f64(),
            });
        }
    }
}

fn json_problem(j: &crate::inventory::checks::JsonCondition, body: &[u8]) -> Option<String> {
    let doc: serde_json::Value = match serde_json::from_slice(body) {
        Ok(d) => d,
        Err(e) => return Some(format!("not JSON ({e})")),
    };
    let Some(v) = doc.pointer(&j.pointer) else {
        return Some(format!("no value at {}", quote(&j.pointer)));
    };
    if let Some(want) = &j.equals {
        if v != want {
            return Some(format!(
                "{} is {}, expected {}",
                quote(&j.pointer),
                quote(&v.to_string()),
                quote(&want.to_string())
            ));
        }
    }
    if let Some(re) = &j.matches {
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if !re.0.is_match(&text) {
            return Some(format!(
                "{} is {}, which does not match /{}/",
                quote(&j.pointer),
                quote(&text),
                re.0.as_str()
            ));
        }
    }
    None
}
