//! `GET /api/v1/targets/{id}/availability?from=&to=` or `?month=YYYY-MM`:
//! a target's time in each state over a window, from the ledger, with
//! availability and coverage.

use std::collections::BTreeMap;

use aide::transform::TransformOperation;
use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{doc, error, param_error, read_ledger, IdPath};
use crate::agent::Agent;
use crate::sla::timeline;
use crate::time::calendar::{oslo_rfc3339, Month};
use crate::time::interval::Interval;

/// A window: `month`, or `from` and `to`.
#[derive(Deserialize, JsonSchema)]
pub struct WindowQuery {
    /// RFC 3339; with `to`, instead of `month`.
    #[schemars(extend("format" = "date-time"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// RFC 3339, later than `from` and at most 400 days after it.
    #[schemars(extend("format" = "date-time"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// YYYY-MM (Europe/Oslo); instead of `from` and `to`.
    #[schemars(regex(pattern = r"^[0-9]{4}-[0-9]{2}$"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month: Option<String>,
}

/// A target's time in each state over a window.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Availability")]
struct AvailabilityView {
    target: String,
    /// Start of the window, RFC 3339 in Europe/Oslo.
    from: String,
    /// End of the window as evaluated: never later than now.
    to: String,
    /// The month asked for, if one was.
    month: Option<String>,
    total_seconds: f64,
    /// Seconds in each state (`up`, `degraded`, `down`, `unreachable`,
    /// `maintenance`, `unmonitored`).
    seconds: BTreeMap<&'static str, f64>,
    /// (up + degraded) ÷ (total − unmonitored − maintenance − unreachable);
    /// `null` when nothing was observed ("no data", never 100 %).
    availability: Option<f64>,
    /// Monitored ÷ total.
    coverage: f64,
}

pub fn target_availability_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("getTargetAvailability")
        .tag("targets")
        .summary("Time in each state over a window, availability and coverage")
        .response_with::<200, Json<AvailabilityView>, _>(|r| r.description("Availability"))
        .with(doc::bad_parameter)
        .with(doc::not_found)
        .with(doc::ledger_unavailable)
}

/// A bad query parameter: answered with 400 naming it.
pub struct ParamError {
    pub parameter: &'static str,
    pub message: String,
}

pub(super) fn bad(parameter: &'static str, message: impl Into<String>) -> ParamError {
    ParamError {
        parameter,
        message: message.into(),
    }
}

impl IntoResponse for ParamError {
    fn into_response(self) -> Response {
        param_error(self.parameter, self.message)
    }
}

/// The window a query asks for: `month`, or `from` and `to`, not both.
pub fn window(q: &WindowQuery) -> Result<(Interval, Option<Month>), ParamError> {
    match (&q.month, &q.from, &q.to) {
        (Some(m), None, None) => {
            let month = Month::parse(m)
                .ok_or_else(|| bad("month", format!("{m:?} is not a month: use YYYY-MM")))?;
            let w = month
                .window()
                .ok_or_else(|| bad("month", format!("{m:?} is out of range")))?;
            Ok((w, Some(month)))
        }
        (None, Some(f), Some(t)) => {
            let from = instant("from", f)?;
            let to = instant("to", t)?;
            if to <= from {
                return Err(bad("to", "must be later than from"));
            }
            if to - from > MAX_WINDOW_MS {
                return Err(bad(
                    "to",
                    format!(
                        "a window is at most {MAX_WINDOW_DAYS} days (as long as closed days are kept); ask for several"
                    ),
                ));
            }
            Ok((Interval::new(from, to), None))
        }
        (Some(_), _, _) => Err(bad("month", "give either month or from and to, not both")),
        (None, None, _) => Err(bad(
            "from",
            "missing: give month=YYYY-MM, or from and to (RFC 3339)",
        )),
        (None, Some(_), None) => Err(bad("to", "missing: give from and to (RFC 3339)")),
    }
}

/// The longest window a query may ask for.
pub const MAX_WINDOW_DAYS: i64 = 400;
const MAX_WINDOW_MS: i64 = MAX_WINDOW_DAYS * 86_400_000;

fn instant(name: &'static str, v: &str) -> Result<i64, ParamError> {
    let t = DateTime::parse_from_rfc3339(v).map_err(|_| {
        bad(
            name,
            format!("{v:?} is not an RFC 3339 time, e.g. 2026-10-01T00:00:00+02:00"),
        )
    })?;
    use chrono::Datelike;
    let years = crate::time::calendar::YEARS;
    if !years.contains(&t.year()) {
        return Err(bad(
            name,
            format!(
                "{v:?} is outside the years {}–{} this record can hold",
                years.start(),
                years.end()
            ),
        ));
    }
    Ok(t.timestamp_millis())
}

pub async fn target_availability(
    AxState(agent): AxState<Agent>,
    Path(IdPath { id }): Path<IdPath>,
    Query(q): Query<WindowQuery>,
) -> Response {
    let (requested, month) = match window(&q) {
        Ok(w) => w,
        Err(e) => return e.into_response(),
    };
    let now = Utc::now().timestamp_millis();
    if requested.start >= now {
        return param_error(
            if month.is_some() { "month" } else { "from" },
            "the window starts in the future",
        );
    }
    let w = Interval::new(requested.start, requested.end.min(now));
    let known = agent.inventory().target(&id).is_some();
    let target = id.clone();
    let found = read_ledger(&agent, move |store, current_run| {
        let Some(store) = store else {
            return Ok(known.then(|| timeline::build(w, &[], &[], None, now)));
        };
        let runs = store.runs(w.start, w.end)?;
        let trs = store.transitions(&target, &runs, w.start, w.end)?;
        if !known && trs.is_empty() {
            return Ok(None);
        }
        let windows = store.maintenance_windows()?;
        Ok(Some(timeline::build_planned(
            &target,
            &windows,
            w,
            &runs,
            &trs,
            current_run,
            now,
        )))
    })
    .await;
    let tl = match found {
        Ok(Some(tl)) => tl,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("unknown target {id:?}")),
        Err(r) => return r,
    };
    let s = tl.summary();
    Json(AvailabilityView {
        target: id,
        from: oslo_rfc3339(w.start),
        to: oslo_rfc3339(w.end),
        month: month.map(|m| m.to_string()),
        total_seconds: s.total_seconds,
        seconds: s.seconds,
        availability: s.availability,
        coverage: s.coverage,
    })
    .into_response()
}
