//! HTTP(S): one request over a new connection (hyper's HTTP/1.1 client
//! connection, over rustls for `https`), its answer judged by status,
//! body and response time, the certificate by its expiry. Phases are
//! blackbox_exporter's: `resolve`, `connect`, `tls`, `processing` (the
//! request sent, until the answer's headers), `transfer` (the body).

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{HeaderName, HeaderValue, HOST, LOCATION, PROXY_AUTHORIZATION, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{connect, connect_as, lookup, tls, Progress};
use crate::inventory::checks::{defaults, HttpCheck, Proxy};
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
        // elsewhere is looked up (by the proxy, when there is one).
        let ip = if c.proxy.is_some() || url.host_str().map(str::to_string) == first_host {
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
    let host = url.host_str()?;
    let found = lookup(p, host.trim_matches(['[', ']'])).await;
    if found.is_none() {
        p.problem(CheckProblem::Connect {
            error: format!("redirect host {} does not resolve", quote(host)),
        });
    }
    found
}

/// Connect (to the proxy, if any), shake hands for https, send the
/// request, read the answer.
async fn exchange(
    p: &mut Progress,
    ip: IpAddr,
    url: &url::Url,
    c: &HttpCheck,
    tls: Option<&tls::Client>,
) -> Option<Answer> {
    let https = url.scheme() == "https";
    let port = url.port_or_known_default().unwrap_or(80);
    let Some(proxy) = &c.proxy else {
        let stream = connect(p, SocketAddr::new(ip, port)).await?;
        return if https {
            let stream = secure(p, stream, url, c, tls).await?;
            request(p, stream, url, c, false).await
        } else {
            request(p, stream, url, c, false).await
        };
    };
    let stream = to_proxy(p, proxy).await?;
    if https {
        let tunnel = tunnel(p, stream, proxy, url, port).await?;
        let stream = secure(p, tunnel, url, c, tls).await?;
        request(p, stream, url, c, false).await
    } else {
        request(p, stream, url, c, true).await
    }
}

/// The TLS handshake with the URL's host over `stream`.
async fn secure<S>(
    p: &mut Progress,
    stream: S,
    url: &url::Url,
    c: &HttpCheck,
    tls: Option<&tls::Client>,
) -> Option<tokio_rustls::client::TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(client) = tls else {
        p.problem(CheckProblem::Tls {
            error: "no TLS client for this check".into(),
        });
        return None;
    };
    let name = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
    client
        .handshake(p, stream, name, c.cert_expiry_warning)
        .await
}

/// A connection to the proxy: its name looked up (`resolve`), then
/// `connect`. A failure is the proxy's, and named so.
async fn to_proxy(p: &mut Progress, proxy: &Proxy) -> Option<tokio::net::TcpStream> {
    let failed = |error: String| CheckProblem::Proxy {
        proxy: proxy.name(),
        error,
    };
    let Some(ip) = lookup(p, &proxy.host).await else {
        p.problem(failed("its name does not resolve".into()));
        return None;
    };
    connect_as(p, SocketAddr::new(ip, proxy.port), failed).await
}

/// A `CONNECT` tunnel through the proxy to the URL's host (hyper's
/// client and upgrade); its time is the `connect` phase's.
async fn tunnel(
    p: &mut Progress,
    stream: tokio::net::TcpStream,
    proxy: &Proxy,
    url: &url::Url,
    port: u16,
) -> Option<TokioIo<hyper::upgrade::Upgraded>> {
    let host = url.host_str().unwrap_or_default();
    let authority = format!("{host}:{port}");
    let failed = |p: &mut Progress, error: String| {
        p.end();
        p.problem(CheckProblem::Proxy {
            proxy: proxy.name(),
            error,
        })
    };
    p.begin("connect");
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(x) => x,
        Err(e) => {
            failed(p, quote(&e.to_string()));
            return None;
        }
    };
    let mut req = match hyper::Request::builder()
        .method(hyper::Method::CONNECT)
        .uri(authority.as_str())
        .header(HOST, authority.as_str())
        .header(USER_AGENT, AGENT)
        .body(Empty::<Bytes>::new())
    {
        Ok(r) => r,
        Err(e) => {
            failed(p, quote(&e.to_string()));
            return None;
        }
    };
    if let Some(auth) = proxy_authorization(proxy) {
        req.headers_mut().insert(PROXY_AUTHORIZATION, auth);
    }
    let asked = async {
        let response = sender.send_request(req).await?;
        let status = response.status();
        if !status.is_success() {
            return Ok(Err(status));
        }
        hyper::upgrade::on(response).await.map(Ok)
    };
    // The connection is driven beside the request, in this task; it ends
    // when it hands itself over to the tunnel.
    let conn = conn.with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let mut asked = std::pin::pin!(asked);
    let outcome = tokio::select! {
        biased;
        r = &mut asked => r,
        r = &mut conn => match r {
            Err(e) => Err(e),
            Ok(()) => asked.await,
        },
    };
    match outcome {
        Ok(Ok(upgraded)) => {
            p.end();
            Some(TokioIo::new(upgraded))
        }
        Ok(Err(status)) => {
            failed(
                p,
                format!("answered {status} to CONNECT {}", quote(&authority)),
            );
            None
        }
        Err(e) => {
            failed(p, quote(&e.to_string()));
            None
        }
    }
}

/// `Proxy-Authorization`'s value, marked sensitive (hyper keeps it out
/// of its debug output).
fn proxy_authorization(proxy: &Proxy) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(proxy.authorization.as_ref()?.expose()).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// The request over `stream`; `via_proxy`: in absolute form, with the
/// proxy's credentials (an `http` URL through a proxy).
async fn request<S>(
    p: &mut Progress,
    stream: S,
    url: &url::Url,
    c: &HttpCheck,
    via_proxy: bool,
) -> Option<Answer>
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
    let req = match build(url, c, via_proxy) {
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

fn build(
    url: &url::Url,
    c: &HttpCheck,
    via_proxy: bool,
) -> Result<hyper::Request<Empty<Bytes>>, String> {
    let mut path = if via_proxy {
        // Absolute form (RFC 9112 3.2.2), without a fragment.
        let mut u = url.clone();
        u.set_fragment(None);
        u.to_string()
    } else {
        url.path().to_string()
    };
    if let (false, Some(q)) = (via_proxy, url.query()) {
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
    if via_proxy {
        if let Some(auth) = c.proxy.as_ref().and_then(proxy_authorization) {
            req.headers_mut().insert(PROXY_AUTHORIZATION, auth);
        }
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
