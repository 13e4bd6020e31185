//! The status pages: `/status` (the region), `/status/{member}`, its
//! Atom feed and SVG badges, and their style sheet and script.
//!
//! Access (per page, from the config): off (404, the default), public, or
//! a read token — given as `Authorization: Bearer`, `?token=` or the
//! cookie a browser got from a `?token=` link (the page then answers 303
//! to the same address without the token, so it stays out of history and
//! bookmarks). The region's token opens every member page that is on;
//! `agent.api_token` opens every page that is on. Read tokens are only
//! ever compared (in constant time), never shown or logged, and open no
//! write: writes check `agent.api_token` alone.
//!
//! What is down now comes from the live snapshot at each request; the
//! ledger's figures (availability, daily bars, resolved outages and the
//! operators' notes) are computed at most once per refresh interval per
//! member ([`FiguresCache`]), and again at once after a note or a
//! maintenance change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aide::transform::TransformOperation;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use chrono::Utc;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::agent::Agent;
use crate::inventory::{Inventory, PageAccess, Service};
use crate::status::page::{self, Context, Pages};
use crate::status::{self, words, MemberFigures};
use crate::time::interval::Interval;

/// The cookie a browser keeps a read token in.
const COOKIE: &str = "utkikk_status";
/// How long the browser keeps it: 30 days.
const COOKIE_MAX_AGE_S: u32 = 30 * 86_400;

const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The templates and the figures cache, shared by the handlers.
#[derive(Clone, Default)]
pub struct StatusState {
    pub pages: Arc<Pages>,
    pub figures: Arc<FiguresCache>,
}

/// Each member's ledger figures, computed at most once per refresh
/// interval (concurrent readers wait for the one computing).
#[derive(Default)]
pub struct FiguresCache {
    /// Bumped when something the figures show changed in the ledger
    /// (a note, a maintenance window): every entry is stale then.
    generation: AtomicU64,
    members: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Cached>>>>>,
}

struct Cached {
    generation: u64,
    inventory: Arc<Inventory>,
    computed_ms: i64,
    figures: Arc<MemberFigures>,
}

impl FiguresCache {
    /// The figures shown may have changed: compute them again.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    async fn get(
        &self,
        agent: &Agent,
        inv: &Arc<Inventory>,
        member: &str,
        now_ms: i64,
    ) -> Result<Arc<MemberFigures>, Response> {
        let ttl_ms = inv
            .status_page
            .refresh
            .clamp(MIN_FIGURES_AGE, MAX_FIGURES_AGE)
            .as_millis() as i64;
        let slot = {
            let mut members = self
                .members
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Members a reload removed go with their entries.
            members.retain(|id, _| inv.members.iter().any(|m| &m.id == id));
            members.entry(member.to_string()).or_default().clone()
        };
        let mut cached = slot.lock().await;
        let generation = self.generation.load(Ordering::Relaxed);
        if let Some(c) = cached.as_ref() {
            if c.generation == generation
                && Arc::ptr_eq(&c.inventory, inv)
                && now_ms - c.computed_ms < ttl_ms
                && now_ms >= c.computed_ms
            {
                return Ok(c.figures.clone());
            }
        }
        let services: Vec<Service> = status::member_services(inv, member, now_ms)
            .into_iter()
            .cloned()
            .collect();
        let (inv2, id) = (inv.clone(), member.to_string());
        // Agents sharing a record: the region's figures, whichever agent
        // serves the page.
        let region = agent
            .ledger()
            .shared()
            .cloned()
            .map(|shared| super::Region {
                shared,
                window: Interval::new(status::shown_from(now_ms), now_ms),
                only: Some(crate::sla::outages::scope_targets(inv, member)),
            });
        let figures = super::read_from(agent, region, move |store, current_run| {
            status::member_figures(store, &inv2, &id, &services, current_run, now_ms)
        })
        .await?;
        let figures = Arc::new(figures);
        *cached = Some(Cached {
            generation,
            inventory: inv.clone(),
            computed_ms: now_ms,
            figures: figures.clone(),
        });
        Ok(figures)
    }
}

/// Figures are kept at least this long, whatever the refresh interval…
const MIN_FIGURES_AGE: std::time::Duration = std::time::Duration::from_secs(10);
/// …and at most this long.
const MAX_FIGURES_AGE: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Deserialize, JsonSchema)]
pub struct PageQuery {
    /// `nb` (bokmål, the default) or `en`; without it, `Accept-Language`.
    #[serde(default)]
    lang: Option<String>,
    /// A read token (a browser is then sent to the address without it,
    /// the token kept in a cookie).
    #[serde(default)]
    token: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
pub struct BadgeQuery {
    #[serde(default)]
    lang: Option<String>,
    #[serde(default)]
    token: Option<String>,
    /// One of the member's services (its id) instead of the member.
    #[serde(default)]
    service: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
pub struct MemberPath {
    /// The member's id.
    member: String,
}

#[derive(Deserialize, JsonSchema)]
pub struct BadgePath {
    member: String,
    /// `state.svg` or `availability.svg`.
    badge: String,
}

/// The page a request is for.
#[derive(Clone, Copy)]
enum Page<'a> {
    Region,
    Member(&'a str),
}

/// Whether the reader may see a page.
#[derive(Debug, PartialEq)]
enum Access {
    Open,
    /// A valid token came in the address: a browser gets it as a cookie.
    OpenByQuery,
    NeedsToken,
    NotFound,
}

fn same(given: &str, secret: &crate::model::secret::Secret) -> bool {
    use subtle::ConstantTimeEq;
    !secret.is_unresolved() && bool::from(given.as_bytes().ct_eq(secret.expose().as_bytes()))
}

/// The token the reader gave, and whether it came in the address.
fn given_token(headers: &HeaderMap, query: Option<&str>) -> Option<(String, bool)> {
    if let Some(t) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string())
    {
        return Some((t, false));
    }
    if let Some(t) = query.filter(|t| !t.is_empty()) {
        return Some((t.to_string(), true));
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .and_then(|(_, v)| {
            url::form_urlencoded::parse(format!("v={v}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        })
        .map(|t| (t, false))
}

fn access(inv: &Inventory, page: Page<'_>, given: Option<&(String, bool)>) -> Access {
    let page_access = match page {
        Page::Region => &inv.status_page.region,
        Page::Member(id) => match inv.members.iter().find(|m| m.id == id) {
            Some(m) => &m.status_page,
            None => return Access::NotFound,
        },
    };
    let opened = |(t, by_query): &(String, bool)| {
        let mut keys: Vec<&crate::model::secret::Secret> = Vec::new();
        if let PageAccess::Token(s) = page_access {
            keys.push(s);
        }
        if let (Page::Member(_), PageAccess::Token(s)) = (page, &inv.status_page.region) {
            keys.push(s);
        }
        keys.extend(inv.agent.api_token.as_ref());
        // Every key compared, whichever matches.
        let hit = keys.iter().fold(false, |hit, k| same(t, k) | hit);
        match (hit, by_query) {
            (true, true) => Access::OpenByQuery,
            (true, false) => Access::Open,
            (false, _) => Access::NeedsToken,
        }
    };
    match page_access {
        PageAccess::Off => Access::NotFound,
        PageAccess::Public => match given {
            // A valid token in the address of a public page still goes
            // to a cookie (the region link may need it).
            Some(g) if g.1 && opened(g) == Access::OpenByQuery => Access::OpenByQuery,
            _ => Access::Open,
        },
        PageAccess::Token(_) => given.map_or(Access::NeedsToken, opened),
    }
}

/// Headers every status answer carries.
fn secured(mut r: Response, public: bool) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::VARY,
        HeaderValue::from_static("Accept-Language, Authorization, Cookie"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if public {
            "no-cache"
        } else {
            "private, no-store"
        }),
    );
    r
}

fn context(agent_inv: &Inventory, lang: Option<&str>, headers: &HeaderMap, now_ms: i64) -> Context {
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    Context {
        lang: words::choose(lang, accept),
        lang_in_query: lang.and_then(words::Lang::parse).is_some(),
        refresh: agent_inv.status_page.refresh,
        organisation: agent_inv.reports.organisation.clone(),
        now_ms,
    }
}

fn html(status: StatusCode, body: Result<String, page::RenderError>) -> Response {
    match body {
        Ok(b) => (status, Html(b)).into_response(),
        Err(e) => {
            tracing::error!("{e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered\n",
            )
                .into_response()
        }
    }
}

/// 404 or 401 as a page, or `None` when the reader may go on.
fn refused(st: &StatusState, ctx: &Context, path: &str, a: &Access) -> Option<Response> {
    match a {
        Access::Open | Access::OpenByQuery => None,
        Access::NotFound => Some(secured(
            html(
                StatusCode::NOT_FOUND,
                Ok(match ctx.lang {
                    words::Lang::Nb => "<!doctype html><html lang=\"nb\"><head><meta charset=\"utf-8\"><title>Fant ikke siden</title></head><body><main><h1>Fant ikke siden</h1><p>Det finnes ingen statusside her.</p></main></body></html>",
                    words::Lang::En => "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not found</title></head><body><main><h1>Not found</h1><p>There is no status page here.</p></main></body></html>",
                }
                .to_string()),
            ),
            false,
        )),
        Access::NeedsToken => {
            let mut r = html(StatusCode::UNAUTHORIZED, page::closed(&st.pages, ctx, path));
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"utkikk status\""),
            );
            Some(secured(r, false))
        }
    }
}

/// A browser that came with `?token=`: keep the token in a cookie and
/// go to the same address without it.
fn to_cookie(path: &str, ctx: &Context, token: &str, headers: &HeaderMap) -> Response {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let value: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let cookie = format!(
        "{COOKIE}={value}; Path=/status; Max-Age={COOKIE_MAX_AGE_S}; HttpOnly; SameSite=Lax{}",
        if https { "; Secure" } else { "" }
    );
    let location = if ctx.lang_in_query {
        format!("{path}?lang={}", ctx.lang.code())
    } else {
        path.to_string()
    };
    let mut r = StatusCode::SEE_OTHER.into_response();
    let h = r.headers_mut();
    if let (Ok(c), Ok(l)) = (
        HeaderValue::from_str(&cookie),
        HeaderValue::from_str(&location),
    ) {
        h.insert(header::SET_COOKIE, c);
        h.insert(header::LOCATION, l);
    }
    secured(r, false)
}

/// A request for a page, with what every answer needs: the snapshot it
/// is answered from, its language, the reader's token and access.
struct Visit {
    now: i64,
    snap: Arc<crate::live::Snapshot>,
    ctx: Context,
    given: Option<(String, bool)>,
    access: Access,
    /// `/status` or `/status/{member}`.
    path: String,
    /// Anyone may read the page (its answers may be cached anywhere).
    public: bool,
}

impl Visit {
    fn new(agent: &Agent, headers: &HeaderMap, q: &PageQuery, member: Option<&str>) -> Visit {
        let now = Utc::now().timestamp_millis();
        let snap = agent.snapshot();
        let inv = &snap.inventory;
        let ctx = context(inv, q.lang.as_deref(), headers, now);
        let given = given_token(headers, q.token.as_deref());
        let (page, path, page_access) = match member {
            None => (
                Page::Region,
                "/status".to_string(),
                Some(&inv.status_page.region),
            ),
            Some(m) => (
                Page::Member(m),
                format!("/status/{m}"),
                inv.members
                    .iter()
                    .find(|x| x.id == m)
                    .map(|x| &x.status_page),
            ),
        };
        let access = access(inv, page, given.as_ref());
        let public = page_access == Some(&PageAccess::Public);
        Visit {
            now,
            ctx,
            given,
            access,
            path,
            public,
            snap,
        }
    }

    /// 404 or 401, or the 303 that moves a token from the address to a
    /// cookie (for a page; a feed or a badge keeps it in the address).
    fn refused(&self, st: &StatusState, headers: &HeaderMap, cookie: bool) -> Option<Response> {
        if let Some(r) = refused(st, &self.ctx, &self.path, &self.access) {
            return Some(r);
        }
        match (&self.access, &self.given) {
            (Access::OpenByQuery, Some((t, _))) if cookie => {
                Some(to_cookie(&self.path, &self.ctx, t, headers))
            }
            _ => None,
        }
    }
}

pub fn region_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("statusRegion")
        .tag("status")
        .summary("The region's status page: each member with its services' condition now")
        .description("HTML, bokmål by default (`?lang=en` or Accept-Language for English). Off unless `status_page.region` is set; with a token: `Authorization: Bearer`, `?token=` or the cookie a `?token=` link sets.")
        .response_with::<200, Html<String>, _>(|r| r.description("The page"))
        .response_with::<303, (), _>(|r| r.description("The token from the address kept in a cookie; the same page without it"))
        .response_with::<401, Html<String>, _>(|r| r.description("The page needs a read token"))
        .response_with::<404, Html<String>, _>(|r| r.description("The page is off"))
}

pub async fn region(
    AxState(agent): AxState<Agent>,
    Extension(st): Extension<StatusState>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let v = Visit::new(&agent, &headers, &q, None);
    if let Some(r) = v.refused(&st, &headers, true) {
        return r;
    }
    secured(
        html(StatusCode::OK, page::region(&st.pages, &v.ctx, &v.snap)),
        v.public,
    )
}

pub fn member_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("statusMember")
        .tag("status")
        .summary("A member's status page: its services now, their availability (24 h, 30 days, this month) and 90 daily bars, open incidents with the operators' notes, planned maintenance, resolved incidents")
        .description("HTML. Off unless `members[].status_page` is set; public, or behind the member's read token (or the region's).")
        .response_with::<200, Html<String>, _>(|r| r.description("The page"))
        .response_with::<303, (), _>(|r| r.description("The token from the address kept in a cookie; the same page without it"))
        .response_with::<401, Html<String>, _>(|r| r.description("The page needs a read token"))
        .response_with::<404, Html<String>, _>(|r| r.description("No such page, or it is off"))
        .response_with::<503, axum::Json<super::ErrorBody>, _>(|r| r.description("The ledger cannot be read, or too many queries wait"))
}

pub async fn member(
    AxState(agent): AxState<Agent>,
    Extension(st): Extension<StatusState>,
    Path(MemberPath { member }): Path<MemberPath>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let v = Visit::new(&agent, &headers, &q, Some(&member));
    if let Some(r) = v.refused(&st, &headers, true) {
        return r;
    }
    let inv = &v.snap.inventory;
    let figures = match st.figures.get(&agent, inv, &member, v.now).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let services = status::member_services(inv, &member, v.now);
    let planned = status::planned(
        inv,
        &agent.ledger().maintenance(),
        &member,
        &services,
        v.now,
    );
    let region_href = matches!(
        access(inv, Page::Region, v.given.as_ref()),
        Access::Open | Access::OpenByQuery
    );
    let body = page::member(
        &st.pages,
        &v.ctx,
        &v.snap,
        page::MemberInput {
            member: &member,
            figures: &figures,
            planned: &planned,
            region_href,
        },
    );
    secured(html(StatusCode::OK, body), v.public)
}

pub fn feed_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("statusFeed")
        .tag("status")
        .summary("A member's incidents and planned maintenance as an Atom feed")
        .description("Access as the member's page (a feed reader gives the token as `?token=` or a bearer token).")
        .response_with::<200, String, _>(|r| r.description("Atom (application/atom+xml)"))
        .response_with::<401, Html<String>, _>(|r| r.description("The feed needs a read token"))
        .response_with::<404, Html<String>, _>(|r| r.description("No such page, or it is off"))
}

pub async fn feed(
    AxState(agent): AxState<Agent>,
    Extension(st): Extension<StatusState>,
    Path(MemberPath { member }): Path<MemberPath>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let v = Visit::new(&agent, &headers, &q, Some(&member));
    if let Some(r) = v.refused(&st, &headers, false) {
        return r;
    }
    let (inv, snap, now) = (&v.snap.inventory, &v.snap, v.now);
    let figures = match st.figures.get(&agent, inv, &member, now).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let services = status::member_services(inv, &member, now);
    let now_of: Vec<(&Service, status::ServiceNow)> = services
        .iter()
        .map(|s| (*s, status::service_now(snap, s)))
        .collect();
    let open = status::open_incidents(snap, &member, &now_of);
    let planned = status::planned(inv, &agent.ledger().maintenance(), &member, &services, now);
    let xml = status::feed::member(
        v.ctx.lang,
        inv,
        status::feed::FeedInput {
            agent: &inv.agent.id,
            member: &member,
            member_name: &status::member_name(inv, &member),
            open: &open,
            figures: &figures,
            planned: &planned,
            now_ms: now,
        },
    );
    secured(
        (
            [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
            xml,
        )
            .into_response(),
        v.public,
    )
}

pub fn badge_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("statusBadge")
        .tag("status")
        .summary("An SVG badge: `state.svg` (the worst condition now of the member's services, or of one with `?service=`) or `availability.svg` (this month: the member's lowest, or the service's)")
        .description("Access as the member's page.")
        .response_with::<200, String, _>(|r| r.description("SVG (image/svg+xml)"))
        .response_with::<401, Html<String>, _>(|r| r.description("The badge needs a read token"))
        .response_with::<404, Html<String>, _>(|r| r.description("No such badge, page or service, or the page is off"))
}

pub async fn badge(
    AxState(agent): AxState<Agent>,
    Extension(st): Extension<StatusState>,
    Path(BadgePath { member, badge }): Path<BadgePath>,
    Query(q): Query<BadgeQuery>,
    headers: HeaderMap,
) -> Response {
    let page_query = PageQuery {
        lang: q.lang.clone(),
        token: q.token.clone(),
    };
    let mut v = Visit::new(&agent, &headers, &page_query, Some(&member));
    let (snap, now, ctx) = (v.snap.clone(), v.now, v.ctx.clone());
    let inv = &snap.inventory;
    let services = status::member_services(inv, &member, now);
    let chosen: Vec<&Service> = match &q.service {
        Some(id) => services.iter().copied().filter(|s| &s.id == id).collect(),
        None => services.clone(),
    };
    // An unknown service is not found, for a reader who may look.
    if q.service.is_some() && chosen.is_empty() && v.access != Access::NeedsToken {
        v.access = Access::NotFound;
    }
    if let Some(r) = v.refused(&st, &headers, false) {
        return r;
    }
    let label_name = match chosen.as_slice() {
        [one] if q.service.is_some() => one.name.clone(),
        _ => status::member_name(inv, &member),
    };
    let svg = match badge.as_str() {
        "state.svg" => {
            let worst = chosen
                .iter()
                .map(|s| status::service_now(&snap, s).condition)
                .max()
                .unwrap_or(status::Condition::Unknown);
            status::badge::condition(ctx.lang, &label_name, worst)
        }
        "availability.svg" => {
            let figures = match st.figures.get(&agent, inv, &member, now).await {
                Ok(f) => f,
                Err(r) => return r,
            };
            // The lowest this month of the services chosen.
            let month = figures
                .services
                .iter()
                .filter(|f| chosen.iter().any(|s| s.id == f.id))
                .filter_map(|f| f.this_month.as_ref())
                .filter(|f| f.availability.is_some())
                .min_by(|a, b| {
                    a.availability
                        .partial_cmp(&b.availability)
                        .unwrap_or(std::cmp::Ordering::Equal)
                });
            let label = format!(
                "{label_name} {}",
                words::label(ctx.lang, "this_month").to_lowercase()
            );
            status::badge::availability(ctx.lang, &label, month)
        }
        _ => {
            return refused(&st, &ctx, &v.path, &Access::NotFound).unwrap_or_default();
        }
    };
    secured(
        ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
        v.public,
    )
}

pub fn asset_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("statusAsset")
        .tag("status")
        .summary("The status pages' style sheet (`status.css`) and refresh script (`status.js`)")
        .response_with::<200, String, _>(|r| r.description("CSS or JavaScript"))
        .response_with::<404, Html<String>, _>(|r| r.description("No such file"))
}

#[derive(Deserialize, JsonSchema)]
pub struct AssetPath {
    /// `status.css` or `status.js`.
    file: String,
}

pub async fn asset(Path(AssetPath { file }): Path<AssetPath>) -> Response {
    let (kind, body) = match file.as_str() {
        "status.css" => ("text/css; charset=utf-8", page::STYLE),
        "status.js" => ("text/javascript; charset=utf-8", page::SCRIPT),
        _ => return (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    };
    let mut r = ([(header::CONTENT_TYPE, kind)], body).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory() -> Inventory {
        let vars: HashMap<String, String> = [
            ("API", "write-token-0123456789"),
            ("REGION", "region-token-0123456789"),
            ("A", "member-a-token-0123456"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        crate::config::parse_with(
            std::path::Path::new("t.yaml"),
            r#"
agent: { api_token: "env:API" }
status_page: { region: { token: "env:REGION" } }
members:
  - { id: a, name: A, status_page: { token: "env:A" } }
  - { id: b, name: B, status_page: { public: true } }
  - { id: c, name: C }
"#,
            &crate::config::Secrets::ResolveWith(vars),
        )
        .expect("a valid config")
    }

    fn bearer(t: &str) -> Option<(String, bool)> {
        Some((t.to_string(), false))
    }

    #[test]
    fn each_token_opens_what_it_should_and_nothing_else() {
        let inv = inventory();
        let (a, b, c) = (Page::Member("a"), Page::Member("b"), Page::Member("c"));
        let member_a = bearer("member-a-token-0123456");
        let region = bearer("region-token-0123456789");
        let write = bearer("write-token-0123456789");
        assert_eq!(access(&inv, a, None), Access::NeedsToken);
        assert_eq!(access(&inv, a, member_a.as_ref()), Access::Open);
        assert_eq!(access(&inv, a, region.as_ref()), Access::Open);
        assert_eq!(access(&inv, a, write.as_ref()), Access::Open);
        assert_eq!(
            access(&inv, a, bearer("member-a-token-012345").as_ref()),
            Access::NeedsToken
        );
        assert_eq!(access(&inv, Page::Region, None), Access::NeedsToken);
        assert_eq!(
            access(&inv, Page::Region, member_a.as_ref()),
            Access::NeedsToken
        );
        assert_eq!(access(&inv, Page::Region, region.as_ref()), Access::Open);
        assert_eq!(access(&inv, b, None), Access::Open);
        assert_eq!(access(&inv, b, bearer("nonsense").as_ref()), Access::Open);
        // Off is off, whatever the token.
        assert_eq!(access(&inv, c, region.as_ref()), Access::NotFound);
        assert_eq!(access(&inv, c, write.as_ref()), Access::NotFound);
        assert_eq!(
            access(&inv, Page::Member("zz"), region.as_ref()),
            Access::NotFound
        );
        // From the address: to a cookie.
        let by_query = Some(("member-a-token-0123456".to_string(), true));
        assert_eq!(access(&inv, a, by_query.as_ref()), Access::OpenByQuery);
    }

    #[test]
    fn a_token_comes_from_the_header_the_address_or_the_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(given_token(&h, None), None);
        assert_eq!(given_token(&h, Some("q")), Some(("q".into(), true)));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("x=1; utkikk_status=a%3Bb%20c; y=2"),
        );
        assert_eq!(given_token(&h, None), Some(("a;b c".into(), false)));
        assert_eq!(given_token(&h, Some("q")), Some(("q".into(), true)));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  t1 "),
        );
        assert_eq!(given_token(&h, Some("q")), Some(("t1".into(), false)));
    }

    #[test]
    fn a_cookie_holds_any_token_and_the_address_loses_it() {
        let ctx = Context {
            lang: words::Lang::En,
            lang_in_query: true,
            refresh: std::time::Duration::from_secs(30),
            organisation: None,
            now_ms: 0,
        };
        let r = to_cookie("/status/a", &ctx, "a;b c", &HeaderMap::new());
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()[header::LOCATION], "/status/a?lang=en");
        let cookie = r.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(
            cookie.starts_with("utkikk_status=a%3Bb+c; Path=/status;"),
            "{cookie}"
        );
        assert!(!cookie.contains("Secure"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(cookie.split(';').next().unwrap()).unwrap(),
        );
        assert_eq!(given_token(&h, None), Some(("a;b c".into(), false)));
    }
}
