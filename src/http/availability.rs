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

use super::{doc, error, param_error, read_ledger, read_shared, IdPath};
use crate::agent::Agent;
use crate::ledger::shared::SharedRecord;
use crate::sla::{timeline, vantage};
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

/// Whose record answers.
#[derive(Deserialize, JsonSchema)]
pub struct ScopeQuery {
    /// `region`: the record merged across the agents that watch the target
    /// (the default when agents share a PostgreSQL ledger); `agent`: this
    /// agent's own record (the default, and only choice, otherwise).
    #[schemars(regex(pattern = r"^(region|agent)$"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl ScopeQuery {
    /// The shared record when it answers (`scope=region`, the default with
    /// a shared ledger); `None`: this agent's own file.
    pub fn shared(&self, agent: &Agent) -> Result<Option<SharedRecord>, ParamError> {
        let shared = agent.ledger().shared().cloned();
        match (self.scope.as_deref(), shared) {
            (None | Some("region"), Some(s)) => Ok(Some(s)),
            (None | Some("agent"), _) => Ok(None),
            (Some("region"), None) => Err(bad(
                "scope",
                "region needs a ledger shared by the agents (ledger.backend: postgres)",
            )),
            (Some(other), _) => Err(bad("scope", format!("{other:?}: use region or agent"))),
        }
    }
}

/// One agent's own figures for the target (`scope=region`).
#[derive(Serialize, JsonSchema)]
struct AgentFigures {
    agent: String,
    seconds: BTreeMap<&'static str, f64>,
    availability: Option<f64>,
    coverage: f64,
}

/// A target's time in each state over a window.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Availability")]
struct AvailabilityView {
    target: String,
    /// `region` (merged across agents: up while any agent saw it up, down
    /// only while every agent that could observe it agreed) or `agent`
    /// (this agent's own record).
    scope: &'static str,
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
    /// With `scope=region`: each watching agent's own figures (an agent
    /// whose file was begun anew appears once per file).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    agents: Vec<AgentFigures>,
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
    Query(scope): Query<ScopeQuery>,
) -> Response {
    let shared = match scope.shared(&agent) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
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
    if let Some(shared) = shared {
        return region_availability(&agent, shared, id, w, month, known).await;
    }
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
    view(id, "agent", w, month, &tl, vec![])
}

fn view(
    target: String,
    scope: &'static str,
    w: Interval,
    month: Option<Month>,
    tl: &timeline::Timeline,
    agents: Vec<AgentFigures>,
) -> Response {
    let s = tl.summary();
    Json(AvailabilityView {
        target,
        scope,
        from: oslo_rfc3339(w.start),
        to: oslo_rfc3339(w.end),
        month: month.map(|m| m.to_string()),
        total_seconds: s.total_seconds,
        seconds: s.seconds,
        availability: s.availability,
        coverage: s.coverage,
        agents,
    })
    .into_response()
}

/// The target's figures from the record shared by the agents, merged
/// across those that watch it.
async fn region_availability(
    agent: &Agent,
    shared: SharedRecord,
    id: String,
    w: Interval,
    month: Option<Month>,
    known: bool,
) -> Response {
    let windows = agent.ledger().maintenance();
    let (watchers, designated) = agent
        .inventory()
        .target(&id)
        .map(|t| (t.agents.clone(), t.designated_agent.clone()))
        .unwrap_or_default();
    let target = id.clone();
    let found = read_shared(agent, shared, move |reader| {
        vantage::timelines(reader, [target.as_str()], w, &windows, |_| vantage::Watch {
            agents: &watchers,
            designated: designated.as_deref(),
        })
    })
    .await;
    let merged = match found {
        Ok(mut m) => m.remove(&id),
        Err(r) => return r,
    };
    let Some(merged) = merged.filter(|m| {
        known
            || m.views
                .iter()
                .any(|(_, t)| t.ms(crate::model::State::Unmonitored) < w.len())
    }) else {
        return error(StatusCode::NOT_FOUND, format!("unknown target {id:?}"));
    };
    let agents = merged
        .views
        .iter()
        .map(|(name, t)| {
            let s = t.summary();
            AgentFigures {
                agent: name.clone(),
                seconds: s.seconds,
                availability: s.availability,
                coverage: s.coverage,
            }
        })
        .collect();
    view(id, "region", w, month, &merged.timeline, agents)
}
