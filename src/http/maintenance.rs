//! `GET/POST /api/v1/maintenance`, `GET/DELETE /api/v1/maintenance/{id}`:
//! planned maintenance windows. Writes need `Authorization: Bearer <token>`
//! with the token from `agent.api_token`, compared in constant time; there
//! is no write access at all while no token is configured.

use aide::transform::TransformOperation;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{NaiveDate, NaiveTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{doc, error, param_error};
use crate::agent::Agent;
use crate::ledger::{MaintenanceDone, MaintenanceOp};
use crate::maintenance::{Category, MonthDay, Origin, Recurrence, SpecInput, Window};
use crate::time::calendar::oslo_rfc3339;
use crate::time::interval::Interval;

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One occurrence of a window, RFC 3339 in Europe/Oslo.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Occurrence")]
pub struct OccurrenceView {
    start: String,
    end: String,
}

/// When a window applies.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "MaintenanceSchedule")]
pub struct ScheduleView {
    /// `once`, `weekly` or `monthly`.
    #[schemars(extend("enum" = ["once", "weekly", "monthly"]))]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    days: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    day: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    weekday: Option<&'static str>,
    /// 1–4, or -1 for the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    week: Option<i32>,
    /// Local time in Europe/Oslo, HH:MM.
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<String>,
    duration_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<NaiveDate>,
}

/// A maintenance window.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "MaintenanceWindow")]
pub struct WindowView {
    id: i64,
    /// `config` or `api`.
    #[schemars(extend("enum" = ["config", "api"]))]
    source: &'static str,
    /// The window's id in the config file.
    config_id: Option<String>,
    targets: Vec<String>,
    category: Category,
    note: Option<String>,
    schedule: ScheduleView,
    /// It counts only from here: maintenance cannot be declared afterwards.
    declared: String,
    /// Removed (from the config, or through the API) at this time; what
    /// happened of it before stays.
    withdrawn: Option<String>,
    /// The occurrence going on now.
    current: Option<OccurrenceView>,
    /// The next occurrence within 62 days.
    next: Option<OccurrenceView>,
}

fn hhmm(t: NaiveTime) -> String {
    t.format("%H:%M").to_string()
}

fn day_name(d: u32) -> &'static str {
    DAYS.get(d as usize).copied().unwrap_or("?")
}

fn schedule_view(r: &Recurrence) -> ScheduleView {
    let mut v = ScheduleView {
        kind: "once",
        start: None,
        end: None,
        days: Vec::new(),
        day: None,
        weekday: None,
        week: None,
        at: None,
        duration_seconds: 0.0,
        from: None,
        until: None,
    };
    match r {
        Recurrence::Once { start_ms, end_ms } => {
            v.start = Some(oslo_rfc3339(*start_ms));
            v.end = Some(oslo_rfc3339(*end_ms));
            v.duration_seconds = (end_ms - start_ms) as f64 / 1e3;
        }
        Recurrence::Weekly {
            days,
            at,
            duration_ms,
            from,
            until,
        } => {
            v.kind = "weekly";
            v.days = days.iter().map(|d| day_name(*d)).collect();
            v.at = Some(hhmm(*at));
            v.duration_seconds = *duration_ms as f64 / 1e3;
            (v.from, v.until) = (*from, *until);
        }
        Recurrence::Monthly {
            on,
            at,
            duration_ms,
            from,
            until,
        } => {
            v.kind = "monthly";
            match on {
                MonthDay::Day(d) => v.day = Some(*d),
                MonthDay::Weekday { weekday, week } => {
                    v.weekday = Some(day_name(*weekday));
                    v.week = Some(*week);
                }
            }
            v.at = Some(hhmm(*at));
            v.duration_seconds = *duration_ms as f64 / 1e3;
            (v.from, v.until) = (*from, *until);
        }
    }
    v
}

fn occurrence(i: Interval) -> OccurrenceView {
    OccurrenceView {
        start: oslo_rfc3339(i.start),
        end: oslo_rfc3339(i.end),
    }
}

pub fn window_view(w: &Window, now: i64) -> WindowView {
    // Occurrences are at most 31 days long: look that far back, so the
    // one going on now is whole and not taken for the next.
    let around = Interval::new(now - 32 * 86_400_000, now + 62 * 86_400_000);
    let next = w
        .effective(around)
        .spans()
        .iter()
        .find(|s| s.start > now)
        .copied();
    WindowView {
        id: w.id,
        source: match w.origin {
            Origin::Config(_) => "config",
            Origin::Api => "api",
        },
        config_id: match &w.origin {
            Origin::Config(c) => Some(c.clone()),
            Origin::Api => None,
        },
        targets: w.spec.targets.clone(),
        category: w.spec.category,
        note: w.spec.note.clone(),
        schedule: schedule_view(&w.spec.schedule),
        declared: oslo_rfc3339(w.declared_ms),
        withdrawn: w.withdrawn_ms.map(oslo_rfc3339),
        current: w.active_at(now).map(occurrence),
        next: next.map(occurrence),
    }
}

/// A path's `{id}` of a maintenance window.
#[derive(Deserialize, JsonSchema)]
pub struct WindowId {
    /// The window's id (`id` in its answers).
    #[schemars(regex(pattern = r"^-?[0-9]+$"))]
    id: String,
}

#[derive(Deserialize, JsonSchema)]
pub struct ListQuery {
    /// `true`: also windows withdrawn or over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["true", "false"]))]
    all: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct WindowList {
    windows: Vec<WindowView>,
}

pub fn list_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("listMaintenance")
        .tag("maintenance")
        .summary("Maintenance windows: those still current, or all with all=true")
        .response_with::<200, Json<WindowList>, _>(|r| r.description("Windows"))
        .with(doc::bad_parameter)
}

pub async fn list(AxState(agent): AxState<Agent>, Query(q): Query<ListQuery>) -> Response {
    let all = match q.all.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return param_error("all", format!("{other:?}: use true or false")),
    };
    let now = Utc::now().timestamp_millis();
    let windows = agent
        .ledger()
        .maintenance()
        .iter()
        .filter(|w| all || w.is_current(now))
        .map(|w| window_view(w, now))
        .collect();
    Json(WindowList { windows }).into_response()
}

pub fn one_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("getMaintenance")
        .tag("maintenance")
        .summary("One maintenance window")
        .response_with::<200, Json<WindowView>, _>(|r| r.description("The window"))
        .with(doc::not_found)
}

pub async fn one(
    AxState(agent): AxState<Agent>,
    Path(WindowId { id }): Path<WindowId>,
) -> Response {
    let now = Utc::now().timestamp_millis();
    let found = id.parse::<i64>().ok().and_then(|n| {
        agent
            .ledger()
            .maintenance()
            .iter()
            .find(|w| w.id == n)
            .map(|w| window_view(w, now))
    });
    match found {
        Some(v) => Json(v).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no maintenance window {id:?}"),
        ),
    }
}

#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Problem")]
struct ProblemView {
    field: String,
    message: String,
}

/// The error answer to an invalid window: every field at fault.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "InvalidWindow")]
struct InvalidBody {
    status: u16,
    error: String,
    /// The first field at fault.
    parameter: String,
    problems: Vec<ProblemView>,
}

fn invalid(problems: Vec<crate::maintenance::FieldError>) -> Response {
    let status = StatusCode::BAD_REQUEST;
    let first = problems
        .first()
        .map(|p| p.field.clone())
        .unwrap_or_default();
    let error = problems
        .iter()
        .map(|p| format!("{}: {}", p.field, p.message))
        .collect::<Vec<_>>()
        .join("; ");
    (
        status,
        Json(InvalidBody {
            status: status.as_u16(),
            error,
            parameter: first,
            problems: problems
                .into_iter()
                .map(|p| ProblemView {
                    field: p.field,
                    message: p.message,
                })
                .collect(),
        }),
    )
        .into_response()
}

/// Run a change off the runtime's workers (it waits for the ledger); a
/// failure becomes 503 (the ledger cannot be written) or 500.
async fn change(agent: &Agent, op: MaintenanceOp) -> Result<MaintenanceDone, Box<Response>> {
    let a = agent.clone();
    match tokio::task::spawn_blocking(move || a.change_maintenance(op)).await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(e)) => {
            tracing::error!("maintenance: cannot write the ledger: {e}");
            Err(Box::new(error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the ledger cannot be written, so nothing was changed: {e}"),
            )))
        }
        Err(e) => Err(Box::new(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("task failed: {e}"),
        ))),
    }
}

pub fn create_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("declareMaintenance")
        .tag("maintenance")
        .summary("Declare a maintenance window; it counts from now on")
        .with(doc::json_body::<SpecInput>)
        .response_with::<201, Json<WindowView>, _>(|r| {
            r.description("Declared (Location: its address)")
        })
        .response_with::<400, Json<InvalidBody>, _>(|r| {
            r.description("Invalid window: every field at fault")
        })
        .with(doc::needs_token)
        .with(doc::ledger_unwritable)
}

/// `POST /api/v1/maintenance`: declare a window (JSON, the config's keys).
pub async fn create(
    AxState(agent): AxState<Agent>,
    axum::Extension(status): axum::Extension<super::status::StatusState>,
    body: Bytes,
) -> Response {
    let input: SpecInput = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => return param_error("body", format!("not a maintenance window: {e}")),
    };
    let inv = agent.inventory();
    let spec = match input.into_spec(|t| inv.target(t).is_some()) {
        Ok(s) => s,
        Err(problems) => return invalid(problems),
    };
    let now = Utc::now().timestamp_millis();
    let over = match &spec.schedule {
        Recurrence::Once { end_ms, .. } => *end_ms <= now,
        Recurrence::Weekly { until, .. } | Recurrence::Monthly { until, .. } => {
            until.is_some_and(|u| crate::time::oslo::date_of(now).is_some_and(|today| u < today))
        }
    };
    if over {
        return invalid(vec![crate::maintenance::FieldError {
            field: if matches!(spec.schedule, Recurrence::Once { .. }) {
                "end"
            } else {
                "until"
            }
            .into(),
            message: "is in the past: maintenance cannot be declared after the fact".into(),
        }]);
    }
    match change(&agent, MaintenanceOp::Declare(spec)).await {
        Err(r) => *r,
        Ok(MaintenanceDone::Declared(w)) => {
            // Outages it covers are planned now: the status pages say so.
            status.figures.invalidate();
            tracing::info!(
                window = w.id,
                category = w.spec.category.as_str(),
                targets = w.spec.targets.len(),
                "maintenance window declared through the API"
            );
            (
                StatusCode::CREATED,
                [(header::LOCATION, format!("/api/v1/maintenance/{}", w.id))],
                Json(window_view(&w, Utc::now().timestamp_millis())),
            )
                .into_response()
        }
        Ok(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected ledger answer",
        ),
    }
}

/// `DELETE /api/v1/maintenance/{id}`: withdraw a window now. What already
/// took place of it stays maintenance.
pub fn withdraw_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("withdrawMaintenance")
        .tag("maintenance")
        .summary("Withdraw a window now; what took place of it stays maintenance")
        .response_with::<200, Json<WindowView>, _>(|r| r.description("Withdrawn"))
        .with(doc::needs_token)
        .with(doc::not_found)
        .response_with::<409, Json<super::ErrorBody>, _>(|r| {
            r.description("A window from the config file (change the config), or one already over")
        })
        .with(doc::ledger_unwritable)
}

pub async fn withdraw(
    AxState(agent): AxState<Agent>,
    axum::Extension(status): axum::Extension<super::status::StatusState>,
    Path(WindowId { id }): Path<WindowId>,
) -> Response {
    let Ok(n) = id.parse::<i64>() else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no maintenance window {id:?}"),
        );
    };
    match change(&agent, MaintenanceOp::Withdraw(n)).await {
        Err(r) => *r,
        Ok(MaintenanceDone::Withdrawn(w)) => {
            status.figures.invalidate();
            tracing::info!(
                window = w.id,
                "maintenance window withdrawn through the API"
            );
            Json(window_view(&w, Utc::now().timestamp_millis())).into_response()
        }
        Ok(MaintenanceDone::NotFound) => error(
            StatusCode::NOT_FOUND,
            format!("no maintenance window {id:?}"),
        ),
        Ok(MaintenanceDone::FromConfig(c)) => error(
            StatusCode::CONFLICT,
            format!(
                "window {n} is {c:?} in the config file's maintenance list: remove it there and reload"
            ),
        ),
        Ok(MaintenanceDone::AlreadyOver) => error(
            StatusCode::CONFLICT,
            format!("window {n} is already withdrawn or over"),
        ),
        Ok(MaintenanceDone::Declared(_)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected ledger answer",
        ),
    }
}
