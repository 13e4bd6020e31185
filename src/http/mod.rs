//! HTTP: `/metrics`, management endpoints as Prometheus exporters have them,
//! the targets API and a small landing page.
//!
//! Owns: routing, JSON shapes, status codes. Must not touch: probing or
//! state logic (it reads through [`Agent`]).

use std::collections::BTreeMap;
use std::future::Future;

use aide::axum::routing::{delete_with, get_with, post_with};
use aide::axum::ApiRouter;
use aide::openapi::OpenApi;
use aide::transform::TransformOperation;
use axum::extract::{Path, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

mod availability;
mod doc;
mod maintenance;
mod outages;
mod reports;
pub mod serve;
mod services;
pub mod status;

use crate::agent::Agent;
use crate::health::SnmpStatus;
use crate::inventory::Target;
use crate::live::Snapshot;
use crate::model::State;
use crate::probe::check::CheckOutcome;
use crate::probe::{IcmpOutcome, ProbeKind, RttStats};

/// Every route with its operation's documentation. `guard_writes` puts
/// the token check on the writes (and only those).
fn routes(guard_writes: impl FnOnce(ApiRouter<Agent>) -> ApiRouter<Agent>) -> ApiRouter<Agent> {
    let writes = ApiRouter::new()
        .api_route("/-/reload", post_with(reload, reload_docs))
        .api_route(
            "/api/v1/outages/notes",
            post_with(outages::note, outages::note_docs),
        )
        .api_route(
            "/api/v1/maintenance",
            post_with(maintenance::create, maintenance::create_docs),
        )
        .api_route(
            "/api/v1/maintenance/{id}",
            delete_with(maintenance::withdraw, maintenance::withdraw_docs),
        );
    ApiRouter::new()
        .api_route("/", get_with(landing, landing_docs))
        .api_route("/metrics", get_with(metrics, metrics_docs))
        .api_route("/-/healthy", get_with(healthy, healthy_docs))
        .api_route("/-/ready", get_with(ready, ready_docs))
        .api_route("/api/v1/targets", get_with(targets, targets_docs))
        .api_route("/api/v1/targets/{id}", get_with(target, target_docs))
        .api_route(
            "/api/v1/targets/{id}/availability",
            get_with(
                availability::target_availability,
                availability::target_availability_docs,
            ),
        )
        .api_route(
            "/api/v1/services",
            get_with(services::services, services::services_docs),
        )
        .api_route(
            "/api/v1/outages",
            get_with(outages::outages, outages::outages_docs),
        )
        .api_route(
            "/api/v1/maintenance",
            get_with(maintenance::list, maintenance::list_docs),
        )
        .api_route(
            "/api/v1/maintenance/{id}",
            get_with(maintenance::one, maintenance::one_docs),
        )
        .api_route("/api/openapi.json", get_with(openapi, openapi_docs))
        .api_route("/status", get_with(status::region, status::region_docs))
        .api_route(
            "/status/{member}",
            get_with(status::member, status::member_docs),
        )
        .api_route(
            "/status/{member}/feed.atom",
            get_with(status::feed, status::feed_docs),
        )
        .api_route(
            "/status/{member}/badge/{badge}",
            get_with(status::badge, status::badge_docs),
        )
        .api_route(
            "/assets/{file}",
            get_with(status::asset, status::asset_docs),
        )
        .api_route(
            "/api/v1/members/{id}/sla",
            get_with(services::member_sla, services::member_sla_docs),
        )
        .api_route(
            "/api/v1/services/{id}/sla",
            get_with(services::service_sla, services::service_sla_docs),
        )
        .api_route(
            "/api/v1/reports/{member}/{file}",
            get_with(reports::member_report, reports::member_report_docs),
        )
        .merge(guard_writes(writes))
}

/// The routes and the OpenAPI document generated from them (aide keeps
/// its generator per thread: started afresh here).
fn build(
    guard_writes: impl FnOnce(ApiRouter<Agent>) -> ApiRouter<Agent>,
) -> (Router<Agent>, OpenApi, Vec<String>) {
    let problems = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    aide::generate::reset_context();
    aide::generate::infer_responses(false);
    // The answers' shapes as they are written (an `Option` is there as
    // null; a field skipped when empty is not required).
    aide::generate::in_context(|ctx| {
        ctx.schema = schemars::SchemaGenerator::new(
            schemars::generate::SchemaSettings::draft2020_12()
                .for_serialize()
                .with(|s| {
                    s.inline_subschemas = false;
                    s.definitions_path = "#/components/schemas/".into();
                }),
        )
    });
    let seen = problems.clone();
    aide::generate::on_error(move |e| seen.borrow_mut().push(e.to_string()));
    let mut api = doc::frame();
    let router = routes(guard_writes).finish_api_with(&mut api, doc::finish);
    doc::drop_unreferenced(&mut api);
    aide::generate::reset_context();
    let problems = problems.take();
    (router, api, problems)
}

/// The OpenAPI document of the API, as `/api/openapi.json` serves it.
pub fn document() -> serde_json::Value {
    let (_, api, _) = build(|w| w);
    serde_json::to_value(&api).unwrap_or_default()
}

pub fn router(agent: Agent) -> Router {
    // Every write, and only writes, needs the bearer token: one check,
    // on these routes.
    let guard = agent.clone();
    let (router, api, problems) = build(move |writes| {
        writes.route_layer(axum::middleware::from_fn_with_state(guard, require_token))
    });
    for p in problems {
        tracing::warn!("the OpenAPI document: {p}");
    }
    let document = axum::body::Bytes::from(serde_json::to_vec(&api).unwrap_or_default());
    let status = status::StatusState::default();
    router
        .fallback(not_found)
        .layer(axum::Extension(OpenApiJson(document)))
        .layer(axum::Extension(status))
        .layer(axum::middleware::from_fn_with_state(
            agent.clone(),
            deadline,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(
            MAX_BODY_BYTES as usize,
        ))
        .layer(axum::middleware::from_fn(refuse_large_bodies))
        .layer(axum::middleware::from_fn(json_errors))
        .with_state(agent)
}

/// Write access: the bearer token of the config in force (read at each
/// request, so a reload's new token applies at once), compared in
/// constant time. The token never appears in an answer or a log line.
/// Without `agent.api_token` writes are disabled (403).
async fn require_token(
    AxState(agent): AxState<Agent>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use subtle::ConstantTimeEq;
    let Some(token) = agent.inventory().agent.api_token.clone() else {
        return error(
            StatusCode::FORBIDDEN,
            "writes are disabled: set agent.api_token in the config to allow them",
        );
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    match given {
        Some(t) if bool::from(t.as_bytes().ct_eq(token.expose().as_bytes())) => next.run(req).await,
        _ => {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "a valid bearer token is needed: Authorization: Bearer <agent.api_token>",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"utkikk\""),
            );
            r
        }
    }
}

/// Serve until `shutdown` completes; in-flight requests are finished.
/// At most `max_connections` at once (see [`serve::serve`] for the limits).
pub async fn serve(
    listener: TcpListener,
    agent: Agent,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let metrics = agent.metrics().http.clone();
    serve::serve(listener, router(agent), metrics, max_connections, shutdown).await
}

/// Every error answer under `/api/`.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Error")]
struct ErrorBody {
    /// The HTTP status again.
    status: u16,
    /// What went wrong, in words.
    error: String,
    /// The query parameter at fault, for 400s.
    #[serde(skip_serializing_if = "Option::is_none")]
    parameter: Option<String>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorBody {
            status: status.as_u16(),
            error: message.into(),
            parameter: None,
        }),
    )
        .into_response()
}

/// How long a request waits for one of the agent's
/// [`crate::agent::MAX_LEDGER_QUERIES`] before it is refused.
const QUERY_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Every request is answered or stopped within this (a 503 then), its
/// body included; work it started off the runtime is told to stop.
pub const REQUEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// One of the slots for heavy work (ledger queries, PDF layout): waits
/// up to [`QUERY_QUEUE_WAIT`], then 503 with Retry-After.
async fn heavy_slot(agent: &Agent) -> Result<tokio::sync::OwnedSemaphorePermit, Response> {
    let slots = agent.ledger_queries().clone();
    if let Ok(p) = slots.clone().try_acquire_owned() {
        return Ok(p);
    }
    match tokio::time::timeout(QUERY_QUEUE_WAIT, slots.acquire_owned()).await {
        Ok(Ok(p)) => Ok(p),
        _ => {
            agent.metrics().http.queries_refused.inc();
            tracing::warn!(
                "a ledger query waited {QUERY_QUEUE_WAIT:?} for one of the {} that may run at once: refused",
                crate::agent::MAX_LEDGER_QUERIES
            );
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "busy: {} ledger queries are running and this one waited {} s; try again shortly",
                    crate::agent::MAX_LEDGER_QUERIES,
                    QUERY_QUEUE_WAIT.as_secs()
                ),
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
            Err(r)
        }
    }
}

/// Tells blocking work to stop when the request that started it is
/// dropped (the client went away, or [`REQUEST_DEADLINE`] passed).
struct StopWhenDropped {
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
    interrupt: std::sync::Arc<std::sync::OnceLock<rusqlite::InterruptHandle>>,
    done: bool,
}

impl Drop for StopWhenDropped {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.flag.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.interrupt.get() {
            h.interrupt();
        }
    }
}

/// Run a ledger query off the runtime: `f` gets a read-only store (`None`
/// while no ledger file exists yet) and this run's id. At most
/// [`crate::agent::MAX_LEDGER_QUERIES`] run at once; one whose request is
/// dropped is interrupted. Errors become 503 (the ledger cannot be read,
/// or too busy) or 500.
async fn read_ledger<T: Send + 'static>(
    agent: &Agent,
    f: impl FnOnce(Option<&crate::ledger::Store>, Option<i64>) -> Result<T, crate::ledger::LedgerError>
        + Send
        + 'static,
) -> Result<T, Response> {
    let permit = heavy_slot(agent).await?;
    let ledger = agent.ledger();
    let result =
        query_off_runtime(permit, ledger.path().to_path_buf(), ledger.current_run(), f).await;
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!("ledger query: {e}");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the ledger cannot be read: {e}"),
            ))
        }
        Err(e) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("query failed: {e}"),
        )),
    }
}

/// `f` on a blocking thread with the record shared by the agents
/// (`scope=region`), in one of the API's ledger query slots.
async fn read_shared<T: Send + 'static>(
    agent: &Agent,
    shared: crate::ledger::shared::SharedRecord,
    f: impl FnOnce(&mut crate::ledger::shared::Reader) -> Result<T, crate::ledger::LedgerError>
        + Send
        + 'static,
) -> Result<T, Response> {
    let permit = heavy_slot(agent).await?;
    let result = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        shared.with(f)
    })
    .await;
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!("shared ledger query: {e}");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the shared record cannot be read: {e}; scope=agent answers from this agent's own"
                ),
            ))
        }
        Err(e) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("query failed: {e}"),
        )),
    }
}

/// `f` on the record merged across the agents over `window`, made into a
/// ledger in memory ([`crate::sla::vantage::materialise`]) with the
/// region's maintenance windows and outage notes, in one of the API's
/// ledger query slots. `f` computes as from one agent's file (no run of
/// that record is going on). `only`: the targets wanted; `None`: all.
pub(super) async fn read_region<T: Send + 'static>(
    agent: &Agent,
    shared: crate::ledger::shared::SharedRecord,
    window: crate::time::interval::Interval,
    only: Option<std::collections::HashSet<String>>,
    f: impl FnOnce(&crate::ledger::Store) -> Result<T, crate::ledger::LedgerError> + Send + 'static,
) -> Result<T, Response> {
    let inv = agent.inventory();
    read_shared(agent, shared, move |reader| {
        let store = crate::sla::vantage::materialise(reader, &inv, window, only.as_ref())?;
        f(&store)
    })
    .await
}

/// The record merged across the agents over `window`, of the targets
/// wanted (`only`; `None`: all): where a region answer is read.
pub(super) struct Region {
    pub shared: crate::ledger::shared::SharedRecord,
    pub window: crate::time::interval::Interval,
    pub only: Option<std::collections::HashSet<String>>,
}

/// `f` on the region's record ([`read_region`], no run going on) when
/// `region` is given, else on this agent's own file ([`read_ledger`]).
pub(super) async fn read_from<T: Send + 'static>(
    agent: &Agent,
    region: Option<Region>,
    f: impl FnOnce(Option<&crate::ledger::Store>, Option<i64>) -> Result<T, crate::ledger::LedgerError>
        + Send
        + 'static,
) -> Result<T, Response> {
    match region {
        Some(Region {
            shared,
            window,
            only,
        }) => {
            read_region(agent, shared, window, only, move |store| {
                f(Some(store), None)
            })
            .await
        }
        None => read_ledger(agent, f).await,
    }
}

/// `f` on a blocking thread with a read-only store of the ledger at
/// `path` (`None` while there is none), holding `permit` until it has
/// really ended. Dropping the returned future (the client went away, or
/// the deadline passed) interrupts its SQL and cancels its store.
async fn query_off_runtime<T: Send + 'static>(
    permit: tokio::sync::OwnedSemaphorePermit,
    path: std::path::PathBuf,
    current_run: Option<i64>,
    f: impl FnOnce(Option<&crate::ledger::Store>, Option<i64>) -> Result<T, crate::ledger::LedgerError>
        + Send
        + 'static,
) -> Result<Result<T, crate::ledger::LedgerError>, tokio::task::JoinError> {
    let mut stop = StopWhenDropped {
        flag: Default::default(),
        interrupt: Default::default(),
        done: false,
    };
    let (flag, interrupt) = (stop.flag.clone(), stop.interrupt.clone());
    let result = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let store = if path.exists() {
            let mut store = crate::ledger::Store::open_when_current(&path)?;
            let _ = interrupt.set(store.interrupt_handle());
            store.cancel_on(flag);
            // Cancelled before the handle was set: stop now.
            store.check_cancelled()?;
            Some(store)
        } else {
            None
        };
        let r = f(store.as_ref(), current_run);
        drop(store);
        crate::memory::release_freed();
        r
    })
    .await;
    stop.done = true;
    result
}

/// The largest request body read: axum's limit as a body is read is set
/// to it, and a declared length above it is refused at once.
pub const MAX_BODY_BYTES: u64 = 2 << 20;

/// 413 at once for a request that declares a body over
/// [`MAX_BODY_BYTES`], rather than reading it up to the limit.
async fn refuse_large_bodies(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        let mut r = error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body may be at most {MAX_BODY_BYTES} bytes"),
        );
        r.headers_mut().insert(
            header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        return r;
    }
    next.run(req).await
}

/// Every error under `/api/` in the API's JSON shape. axum's own
/// rejections (a path that is not UTF-8, a query field given twice, a
/// body too large, a method not allowed) are plain text otherwise; their
/// words are kept, their headers (Allow, Retry-After) too.
async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !api || is_json || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    } else {
        text
    };
    // "Failed to deserialize query string: duplicate field `month`".
    let parameter = message
        .strip_prefix("Failed to deserialize query string: ")
        .and_then(|m| m.split('`').nth(1))
        .map(str::to_string);
    let mut r = (
        status,
        Json(ErrorBody {
            status: status.as_u16(),
            error: message,
            parameter,
        }),
    )
        .into_response();
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            r.headers_mut().insert(k.clone(), v.clone());
        }
    }
    r
}

/// Stops a request at [`REQUEST_DEADLINE`] with a 503 (and closes its
/// connection: its body may be half read).
async fn deadline(
    AxState(agent): AxState<Agent>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // Kept for the log line of a request stopped (cheap clones; words
    // only when it happens).
    let (method, uri) = (req.method().clone(), req.uri().clone());
    match tokio::time::timeout(REQUEST_DEADLINE, next.run(req)).await {
        Ok(r) => r,
        Err(_) => {
            agent.metrics().http.request_timeouts.inc();
            tracing::warn!(
                method = %method,
                path = uri.path(),
                "request not answered within {REQUEST_DEADLINE:?}: stopped"
            );
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the request was not answered within {} s and was stopped; ask for less (a shorter window), or try again later",
                    REQUEST_DEADLINE.as_secs()
                ),
            );
            r.headers_mut().insert(
                header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            r
        }
    }
}

/// The `month` parameter: a month that has begun, with its window.
fn month_param(
    month: Option<&str>,
    now_ms: i64,
) -> Result<
    (
        crate::time::calendar::Month,
        crate::time::interval::Interval,
    ),
    availability::ParamError,
> {
    use availability::bad;
    let Some(m) = month else {
        return Err(bad("month", "missing: give month=YYYY-MM"));
    };
    let Some(month) = crate::time::calendar::Month::parse(m) else {
        return Err(bad("month", format!("{m:?} is not a month: use YYYY-MM")));
    };
    let Some(window) = month.window() else {
        return Err(bad("month", format!("{m:?} is out of range")));
    };
    if window.start >= now_ms {
        return Err(bad("month", "the month has not begun"));
    }
    Ok((month, window))
}

/// The document, serialized once when the router is built.
#[derive(Clone)]
struct OpenApiJson(axum::body::Bytes);

async fn openapi(axum::Extension(OpenApiJson(doc)): axum::Extension<OpenApiJson>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], doc).into_response()
}

fn openapi_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("getOpenApi")
        .tag("management")
        .summary("This document (OpenAPI 3.1), generated from the agent's own routes and types")
        .response_with::<200, Json<serde_json::Value>, _>(|r| r.description("OpenAPI 3.1"))
}

/// 400 naming the query parameter at fault.
fn param_error(parameter: &str, message: impl Into<String>) -> Response {
    let status = StatusCode::BAD_REQUEST;
    (
        status,
        Json(ErrorBody {
            status: status.as_u16(),
            error: format!("{parameter}: {}", message.into()),
            parameter: Some(parameter.to_string()),
        }),
    )
        .into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such path; see / for what is here",
    )
}

fn landing_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("landing")
        .tag("management")
        .summary("Landing page: links to what is here")
        .response_with::<200, Html<String>, _>(|r| r.description("HTML"))
}

async fn landing() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>utkikk</title></head><body>",
        "<h1>utkikk</h1><p>Availability monitoring agent, version ",
        env!("CARGO_PKG_VERSION"),
        ".</p><ul>",
        "<li><a href=\"/status\">/status</a> – status pages (the region; /status/{member}), when the config turns them on</li>",
        "<li><a href=\"/metrics\">/metrics</a> – Prometheus metrics</li>",
        "<li><a href=\"/api/v1/targets\">/api/v1/targets</a> – every target's state</li>",
        "<li><a href=\"/api/v1/services\">/api/v1/services</a> – services and their service levels; /api/v1/services/{id}/sla?month=YYYY-MM</li>",
        "<li>/api/v1/outages?month=YYYY-MM, /api/v1/members/{id}/sla?month=YYYY-MM, /api/v1/targets/{id}/availability?month=YYYY-MM</li>",
        "<li><a href=\"/api/openapi.json\">/api/openapi.json</a> – the API described (OpenAPI 3.1)</li>",
        "<li><a href=\"/-/healthy\">/-/healthy</a>, <a href=\"/-/ready\">/-/ready</a></li>",
        "<li>POST /-/reload – reload the configuration</li>",
        "</ul></body></html>"
    ))
}

fn metrics_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("metrics")
        .tag("management")
        .summary("Prometheus metrics")
        .description("OpenMetrics 1.0 when the Accept header asks for it (Prometheus does), else the text format 0.0.4.")
        .response_with::<200, String, _>(|r| r.description("Metrics"))
}

/// Chunks of the scrape waiting for the client at most, before later ones
/// are held back on the encoder's side.
const SCRAPE_CHUNKS_IN_FLIGHT: usize = 4;

/// Scrapes at least this large give their freed memory back.
const SCRAPE_TRIM_BYTES: usize = 4 << 20;
/// A scrape whose last one was at most this large is encoded on the
/// worker and sent whole.
const SCRAPE_INLINE_BYTES: usize = 256 << 10;

/// OpenMetrics when the scraper asks for it (Prometheus does), the classic
/// text format otherwise. Encoded off the runtime's workers (10,000
/// targets take a fifth of a second) straight into the response: each
/// 64 KB piece is sent as it fills (chunked transfer encoding), so the
/// scrape is not held in memory while the client keeps up. The encoder
/// never waits for the client (it reads the registry under the families'
/// locks, which the live-state owner needs): pieces a slow client has not
/// taken yet are held back and sent after. A small scrape (the last one
/// was at most [`SCRAPE_INLINE_BYTES`]) is encoded on the worker and sent
/// whole.
async fn metrics(AxState(agent): AxState<Agent>, headers: HeaderMap) -> Response {
    let wants_openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (format, kind) = if wants_openmetrics {
        (
            crate::metrics::Format::OpenMetrics,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
    } else {
        (
            crate::metrics::Format::PrometheusText,
            "text/plain; version=0.0.4; charset=utf-8",
        )
    };
    let m = agent.metrics().clone();
    if m.last_scrape_bytes()
        .is_some_and(|n| n <= SCRAPE_INLINE_BYTES)
    {
        // Small (a few devices, a few hundred targets): encoded here, in
        // well under a millisecond, and sent whole — a blocking thread and
        // a channel would cost more than the encoding.
        let mut body = Vec::new();
        m.scrape_into(format, &mut |chunk| {
            // The first chunk is the body (most small scrapes are one).
            if body.is_empty() {
                body = chunk;
            } else {
                body.extend_from_slice(&chunk);
            }
            true
        });
        m.set_last_scrape_bytes(body.len());
        return ([(header::CONTENT_TYPE, kind)], body).into_response();
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(SCRAPE_CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut held: std::collections::VecDeque<Vec<u8>> = std::collections::VecDeque::new();
        let mut bytes = 0;
        m.scrape_into(format, &mut |chunk| {
            bytes += chunk.len();
            held.push_back(chunk);
            while let Some(c) = held.pop_front() {
                match tx.try_send(c) {
                    Ok(()) => {}
                    Err(tokio::sync::mpsc::error::TrySendError::Full(c)) => {
                        held.push_front(c);
                        return true;
                    }
                    // The client left: stop encoding.
                    Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                        held.clear();
                        return false;
                    }
                }
            }
            true
        });
        m.set_last_scrape_bytes(bytes);
        // The registry is no longer read: waiting for the client is fine.
        for c in held {
            if tx.blocking_send(c).is_err() {
                break;
            }
        }
        // The chunks of a large scrape (all of it, for a slow client) are
        // freed: give them back (not after small ones, which would pay a
        // walk of the heaps for nothing).
        if bytes >= SCRAPE_TRIM_BYTES {
            crate::memory::release_freed();
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        let c = rx.recv().await?;
        Some((
            Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(c)),
            rx,
        ))
    });
    (
        [(header::CONTENT_TYPE, kind)],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

fn healthy_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("healthy")
        .tag("management")
        .summary("200 while the process runs")
        .response_with::<200, String, _>(|r| r.description("Healthy"))
}

async fn healthy() -> &'static str {
    "Healthy\n"
}

fn ready_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("ready")
        .tag("management")
        .summary("200 once the config is loaded and probing scheduled")
        .response_with::<200, String, _>(|r| r.description("Ready"))
        .response_with::<503, String, _>(|r| r.description("Not ready"))
}

async fn ready(AxState(agent): AxState<Agent>) -> Response {
    if agent.is_ready() {
        (StatusCode::OK, "Ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Not ready\n").into_response()
    }
}

/// Reloads over HTTP: at most one a second.
const RELOAD_MIN_GAP_MS: i64 = 1000;

fn reload_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("reload")
        .tag("management")
        .summary("Reload the config (at most one a second); the old one keeps running if the new one is invalid")
        .response_with::<200, String, _>(|r| r.description("Reloaded"))
        .response_with::<500, String, _>(|r| {
            r.description("Invalid config: every problem with file:line:column (plain text, as Prometheus answers)")
        })
        .with(doc::needs_token)
        .response_with::<429, Json<ErrorBody>, _>(|r| {
            r.description("A reload began less than a second ago (Retry-After)")
        })
}

/// Like every write, it needs the bearer token (SIGHUP needs none: it
/// takes a local user allowed to signal the agent).
async fn reload(AxState(agent): AxState<Agent>) -> Response {
    if !agent.http_reload_slot(chrono::Utc::now().timestamp_millis(), RELOAD_MIN_GAP_MS) {
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "a reload began less than a second ago; try again",
        );
        r.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
        return r;
    }
    // Reading and validating a file is blocking work.
    let result = tokio::task::spawn_blocking(move || agent.reload()).await;
    match result {
        Ok(Ok(())) => (StatusCode::OK, "configuration reloaded\n").into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "reload task failed"),
    }
}

/// A target as the API shows it.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Target")]
pub struct TargetView {
    pub id: String,
    pub name: String,
    #[schemars(extend("enum" = ["link", "switch", "router", "firewall", "server", "service"]))]
    pub kind: &'static str,
    pub address: String,
    pub member: Option<String>,
    pub site: Option<String>,
    pub serves: Vec<String>,
    pub parents: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// What the target shows: `maintenance` inside a window, else what
    /// the probes see.
    pub state: State,
    /// What the probes see, also inside a maintenance window.
    pub observed_state: State,
    /// The maintenance window the target is in now.
    pub maintenance: Option<i64>,
    pub since: DateTime<Utc>,
    pub reason: Option<String>,
    /// The reason as a stable code: `not_probed_yet`, `no_probe_enabled`,
    /// `identity_changed`, `removed_from_config`, `probe_not_run`,
    /// `timeout`, `icmp_unreachable`, `no_route`, `loss`, `rtt`,
    /// `replies`, `snmp_unreachable`, `snmp_auth`, `snmp_error`,
    /// `snmp_answers`, `link_end_down`, `link_ends_up`,
    /// `link_ends_unknown`, `recovering` or `parent_down`; for service
    /// checks `check_passes`, `connect_failed`, `proxy_failed`, `check_timeout`,
    /// `tls_handshake`, `tls_cert_invalid`, `tls_cert_expired`,
    /// `tls_cert_expiring`, `protocol_error`, `http_status`, `http_body`,
    /// `http_redirect`, `slow_response`, `tcp_answer`, `dns_rcode` or
    /// `dns_answer`.
    pub reason_code: Option<&'static str>,
    pub root_cause: Option<String>,
    pub last_probe: Option<ProbeView>,
    /// For targets polled over SNMP: the last poll's verdict.
    pub snmp: Option<SnmpView>,
    /// For service checks (TCP, HTTP(S), TLS, DNS): what is checked and
    /// what the last check found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckView>,
    /// For links: each end's interface and what it said at the last poll.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ends: Vec<EndView>,
}

#[derive(Serialize, JsonSchema)]
pub struct EndView {
    pub device: String,
    pub interface: String,
    /// `null` until the end's device has been polled.
    pub last: Option<crate::model::EndStatus>,
}

#[derive(Serialize, JsonSchema)]
pub struct SnmpView {
    pub version: &'static str,
    pub last_poll: Option<SnmpStatus>,
}

#[derive(Serialize, JsonSchema)]
pub struct ProbeView {
    pub probe: ProbeKind,
    pub at: DateTime<Utc>,
    pub address: Option<String>,
    pub success: bool,
    pub sent: u32,
    pub received: u32,
    pub loss_ratio: Option<f64>,
    pub rtt: Option<RttStats>,
    /// Which clock timed the RTTs: `kernel` (the kernel's timestamps of
    /// the echo leaving and the reply arriving) or `user` (user-space time
    /// around the system calls: where the kernel gave none). `null`
    /// without a reply.
    pub rtt_clock: Option<crate::probe::RttClock>,
    pub failure: Option<FailureView>,
}

#[derive(Serialize, JsonSchema)]
pub struct CheckView {
    pub probe: ProbeKind,
    /// What is checked: the URL, `port N`, or `NAME TYPE`.
    pub checks: String,
    pub interval_seconds: f64,
    pub timeout_seconds: f64,
    /// `null` until the first check.
    pub last: Option<CheckResultView>,
}

#[derive(Serialize, JsonSchema)]
pub struct CheckResultView {
    pub at: DateTime<Utc>,
    /// Nothing wrong (a `degraded` finding is a problem too).
    pub passed: bool,
    pub duration_seconds: f64,
    /// Seconds in each phase reached (HTTP: `resolve`, `connect`, `tls`,
    /// `processing`, `transfer`).
    pub phases: BTreeMap<&'static str, f64>,
    pub problem: Option<FailureView>,
    pub http_status: Option<u16>,
    pub redirects: u32,
    /// The served chain's certificate that expires first.
    pub certificate: Option<CertificateView>,
    pub dns_answers: Option<u32>,
}

#[derive(Serialize, JsonSchema)]
pub struct CertificateView {
    pub subject: String,
    pub not_after: DateTime<Utc>,
}

fn check_view(s: &crate::inventory::CheckSettings, last: Option<&CheckOutcome>) -> CheckView {
    use crate::inventory::CheckSpec;
    CheckView {
        probe: crate::probe::check::kind_of(&s.spec),
        checks: match &s.spec {
            CheckSpec::Tcp(c) => format!("port {}", c.port),
            CheckSpec::Http(c) => match &c.proxy {
                None => format!("{} {}", c.method, c.url),
                Some(p) => format!("{} {} via proxy {}", c.method, c.url, p.name()),
            },
            CheckSpec::Tls(c) => format!("port {}", c.port),
            CheckSpec::Dns(c) => format!("{} {}", c.name, c.record_type),
        },
        interval_seconds: s.interval.as_secs_f64(),
        timeout_seconds: s.timeout.as_secs_f64(),
        last: last.map(|c| {
            let mut phases = BTreeMap::new();
            for (p, d) in &c.phases {
                *phases.entry(*p).or_insert(0.0) += d.as_secs_f64();
            }
            CheckResultView {
                at: c.at,
                passed: c.passed(),
                duration_seconds: c.duration.as_secs_f64(),
                phases,
                problem: c.problem.as_ref().map(|p| FailureView {
                    code: p.code(),
                    message: p.to_string(),
                }),
                http_status: c.http_status,
                redirects: c.redirects,
                certificate: c.cert.as_ref().map(|x| CertificateView {
                    subject: x.subject.clone(),
                    not_after: x.not_after,
                }),
                dns_answers: c.dns_answers,
            }
        }),
    }
}

#[derive(Serialize, JsonSchema)]
pub struct FailureView {
    pub code: &'static str,
    pub message: String,
}

fn probe_view(o: &IcmpOutcome) -> ProbeView {
    ProbeView {
        probe: ProbeKind::Icmp,
        at: o.at,
        address: o.address.map(|a| a.to_string()),
        success: o.success(),
        sent: o.sent,
        received: o.received,
        loss_ratio: o.loss_ratio(),
        rtt: o.rtt_stats(),
        rtt_clock: o.rtt_clock,
        failure: o.failure.as_ref().map(|f| FailureView {
            code: f.code(),
            message: f.to_string(),
        }),
    }
}

fn view(t: &Target, snap: &Snapshot) -> Option<TargetView> {
    let h = snap.target(&t.id)?;
    let window = snap.in_maintenance.get(&t.id).copied();
    Some(TargetView {
        id: t.id.clone(),
        name: t.name.clone(),
        kind: t.kind.as_str(),
        address: t.address.to_string(),
        member: t.member.clone(),
        site: t.site.clone(),
        serves: t.serves.clone(),
        parents: t.parents.clone(),
        labels: t.labels.clone(),
        state: snap.shown_state(&t.id),
        observed_state: h.state,
        maintenance: window,
        since: h.since,
        reason: h.reason.as_ref().map(|r| r.to_string()),
        reason_code: h.reason.as_ref().map(|r| r.code()),
        root_cause: h.root_cause.clone(),
        last_probe: h.last_icmp.as_deref().map(probe_view),
        snmp: t.snmp.as_ref().map(|s| SnmpView {
            version: s.credentials.version(),
            last_poll: h.snmp.clone(),
        }),
        check: t
            .check
            .as_deref()
            .map(|c| check_view(c, h.last_check.as_deref())),
        ends: t
            .ends
            .iter()
            .enumerate()
            .map(|(i, e)| EndView {
                device: e.device.clone(),
                interface: e.interface.clone(),
                last: h.ends.get(i).cloned().flatten(),
            })
            .collect(),
    })
}

#[derive(Serialize, JsonSchema)]
struct TargetList {
    targets: Vec<TargetView>,
}

fn targets_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("listTargets")
        .tag("targets")
        .summary("Every target with its current state")
        .response_with::<200, Json<TargetList>, _>(|r| r.description("Targets"))
}

async fn targets(AxState(agent): AxState<Agent>) -> Json<TargetList> {
    let snap = agent.snapshot();
    let targets = snap
        .inventory
        .targets
        .iter()
        .filter_map(|t| view(t, &snap))
        .collect();
    Json(TargetList { targets })
}

/// A path's `{id}`.
#[derive(Deserialize, JsonSchema)]
pub struct IdPath {
    /// The id, as the config has it.
    pub id: String,
}

fn target_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("getTarget")
        .tag("targets")
        .summary("One target")
        .response_with::<200, Json<TargetView>, _>(|r| r.description("The target"))
        .with(doc::not_found)
}

async fn target(AxState(agent): AxState<Agent>, Path(IdPath { id }): Path<IdPath>) -> Response {
    let snap = agent.snapshot();
    let found = snap.inventory.target(&id).and_then(|t| view(t, &snap));
    match found {
        Some(v) => Json(v).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("unknown target {id:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Every operation of the document has an id and a tag, and every
    /// error answer says its shape; aide met no problem making it.
    #[test]
    fn every_operation_is_named_tagged_and_its_errors_described() {
        let (_, api, problems) = build(|w| w);
        assert!(problems.is_empty(), "{problems:?}");
        let d = serde_json::to_value(&api).unwrap();
        assert_eq!(d["openapi"], "3.1.0");
        let mut ids = std::collections::BTreeSet::new();
        let mut operations = 0;
        for (path, item) in d["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                operations += 1;
                let what = format!("{method} {path}");
                let id = op["operationId"].as_str().expect(&what);
                assert!(ids.insert(id.to_string()), "{what}: {id} twice");
                let tags = op["tags"].as_array().expect(&what);
                assert!(!tags.is_empty(), "{what}");
                for t in tags {
                    assert!(
                        d["tags"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|k| k["name"] == *t),
                        "{what}: tag {t} not described"
                    );
                }
                // Path parameters are declared.
                for name in path.split('{').skip(1).filter_map(|p| p.split('}').next()) {
                    assert!(
                        op["parameters"].as_array().is_some_and(|ps| ps
                            .iter()
                            .any(|p| p["name"] == name && p["in"] == "path")),
                        "{what}: path parameter {name} undeclared"
                    );
                }
                let responses = op["responses"].as_object().expect(&what);
                assert!(
                    responses.keys().any(|c| c.starts_with('2')),
                    "{what}: no success answer"
                );
                for (code, r) in responses {
                    assert!(r["description"].is_string(), "{what} {code}");
                    if code.starts_with('4') || code.starts_with('5') {
                        assert!(r["content"].is_object(), "{what} {code}: no content");
                    }
                }
                if method != "get" {
                    assert!(
                        op["security"].is_array(),
                        "{what}: a write without the token"
                    );
                }
            }
        }
        assert_eq!(operations, 24);
        // Every reference resolves.
        let text = d.to_string();
        for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &r[..r.find('"').unwrap()];
            assert!(
                d["components"]["schemas"][name].is_object(),
                "{name} referenced, not defined"
            );
        }
    }

    /// The answers' schemas keep the names clients and the lab know them by.
    #[test]
    fn the_answers_schemas_are_named() {
        let d = document();
        for name in [
            "Error",
            "Target",
            "State",
            "Availability",
            "Service",
            "Level",
            "ServiceMonth",
            "MemberMonth",
            "Figures",
            "Outage",
            "OutageList",
            "MaintenanceWindow",
            "MaintenanceInput",
            "InvalidWindow",
            "MemberReport",
            "RegionReport",
            "OutageNoteInput",
            "OutageNote",
        ] {
            assert!(
                d["components"]["schemas"][name].is_object(),
                "{name}: {:?}",
                d["components"]["schemas"]
                    .as_object()
                    .map(|m| m.keys().collect::<Vec<_>>())
            );
        }
    }

    /// A client that gives up stops the work it started: the slot comes
    /// back although the query would otherwise run for ever.
    #[tokio::test]
    async fn a_query_whose_client_is_gone_stops_and_frees_its_slot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        drop(crate::ledger::Store::open(&path).unwrap());
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(1));
        let permit = slots.clone().try_acquire_owned().unwrap();
        let query = query_off_runtime(permit, path, None, |store, _| loop {
            store.expect("a ledger").check_cancelled()?;
            std::thread::sleep(Duration::from_millis(5));
        });
        let gave_up: Result<Result<Result<(), _>, _>, _> =
            tokio::time::timeout(Duration::from_millis(200), query).await;
        assert!(gave_up.is_err());
        let freed = tokio::time::timeout(Duration::from_secs(20), slots.acquire()).await;
        assert!(freed.is_ok(), "the query ran on after its client left");
    }
}
