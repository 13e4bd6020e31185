//! `GET /api/v1/outages?member=&service=&from=&to=` (or `month=YYYY-MM`):
//! every stretch a target was `down`, with the services that were down
//! meanwhile and the members they serve.

use aide::transform::TransformOperation;
use axum::body::Bytes;
use axum::extract::{Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::availability::{window, ScopeQuery, WindowQuery};
use super::{doc, error, param_error, read_ledger, read_region};
use crate::agent::Agent;
use crate::sla::outages::{list, OutageView};
use crate::time::calendar::oslo_rfc3339;
use crate::time::interval::Interval;

/// The window (`month`, or `from` and `to`; neither: this month so
/// far) and what to list of it.
#[derive(Deserialize, JsonSchema)]
pub struct OutageQuery {
    /// RFC 3339; with `to`, instead of `month`.
    #[schemars(extend("format" = "date-time"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    /// RFC 3339, later than `from` and at most 400 days after it.
    #[schemars(extend("format" = "date-time"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    /// YYYY-MM (Europe/Oslo); instead of `from` and `to`.
    #[schemars(regex(pattern = r"^[0-9]{4}-[0-9]{2}$"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    month: Option<String>,
    /// Only outages that hit this member (its id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    member: Option<String>,
    /// Only outages that took this service down (its id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service: Option<String>,
}

/// The outages of a window.
#[derive(Serialize, JsonSchema)]
pub struct OutageList {
    pub from: String,
    pub to: String,
    /// `region`: from the record merged across the agents (the default
    /// when they share a PostgreSQL ledger; each outage names the agents
    /// that saw it); `agent`: this agent's own record.
    pub scope: &'static str,
    pub outages: Vec<OutageView>,
    /// Present only while the ledger cannot be written: what the answer
    /// lacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<Incomplete>,
}

/// The answer is read from the ledger file, which lacks what waits in
/// memory while it cannot be written (disk full, …).
#[derive(Serialize, JsonSchema)]
pub struct Incomplete {
    pub reason: String,
    /// The state changes in the window (of the member's, if one was
    /// asked for) not yet written: outages they begin or end are missing
    /// from `outages` or shown as going on.
    pub unwritten_transitions: Vec<UnwrittenTransition>,
}

#[derive(Serialize, JsonSchema)]
pub struct UnwrittenTransition {
    pub target: String,
    pub from: crate::model::State,
    pub to: crate::model::State,
    pub at: String,
    pub reason: Option<String>,
    pub reason_code: Option<&'static str>,
    pub root_cause: Option<String>,
}

/// Header on answers that lack records the ledger could not write yet.
pub const INCOMPLETE_HEADER: &str = "x-utkikk-incomplete";

/// What the answer lacks while the ledger cannot be written, if it does.
fn incomplete(agent: &Agent, w: Interval, member: Option<&str>) -> Option<Incomplete> {
    let ledger = agent.ledger();
    if !ledger.is_failing() {
        return None;
    }
    let inv = agent.inventory();
    let scope = member.map(|m| crate::sla::outages::scope(&inv, m).0);
    let unwritten = ledger.unwritten();
    Some(Incomplete {
        reason: format!(
            "the ledger cannot be written now: {} record(s) wait in memory and are written once it can be; this answer is read from the file",
            unwritten.len()
        ),
        unwritten_transitions: unwritten
            .iter()
            .filter(|t| (w.start..=w.end).contains(&t.at.timestamp_millis()))
            .filter(|t| scope.as_ref().is_none_or(|s| s.contains(t.target.as_str())))
            .map(|t| UnwrittenTransition {
                target: t.target.clone(),
                from: t.from,
                to: t.to,
                at: oslo_rfc3339(t.at.timestamp_millis()),
                reason: t.reason.as_ref().map(|r| r.to_string()),
                reason_code: t.reason.as_ref().map(|r| r.code()),
                root_cause: t.root_cause.clone(),
            })
            .collect(),
    })
}

pub fn outages_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("listOutages")
        .tag("outages")
        .summary(
            "Each stretch a target was down, with the services out meanwhile and their members",
        )
        .description(
            "The window is month=YYYY-MM, or from and to (RFC 3339); with neither, the current \
             month so far (Europe/Oslo). While the ledger cannot be written the answer has \
             `incomplete` and the header `x-utkikk-incomplete: ledger-not-writable`.",
        )
        .response_with::<200, Json<OutageList>, _>(|r| r.description("Outages"))
        .with(doc::bad_parameter)
        .with(doc::ledger_unavailable)
}

pub async fn outages(
    AxState(agent): AxState<Agent>,
    Query(q): Query<OutageQuery>,
    Query(scope): Query<ScopeQuery>,
) -> Response {
    let shared = match scope.shared(&agent) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    // No window at all: this month so far (Europe/Oslo).
    let this_month = (q.from.is_none() && q.to.is_none() && q.month.is_none())
        .then(|| crate::time::oslo::month_of(Utc::now()));
    let wq = WindowQuery {
        from: q.from.clone(),
        to: q.to.clone(),
        month: q.month.clone().or(this_month),
    };
    let (requested, _) = match window(&wq) {
        Ok(w) => w,
        Err(e) => return e.into_response(),
    };
    let now = Utc::now().timestamp_millis();
    if requested.start >= now {
        return param_error(
            if q.month.is_some() { "month" } else { "from" },
            "the window starts in the future",
        );
    }
    let w = Interval::new(requested.start, requested.end.min(now));
    let inv = agent.inventory();
    if let Some(m) = &q.member {
        if !inv.members.iter().any(|x| &x.id == m) {
            return param_error("member", format!("unknown member {m:?}"));
        }
    }
    if let Some(s) = &q.service {
        if !inv.services.iter().any(|x| &x.id == s) {
            return param_error("service", format!("unknown service {s:?}"));
        }
    }
    let member = q.member.clone();
    // A window the ledger had not begun by is refused: "no outages" would
    // claim that what was never watched was up.
    let read = move |store: Option<&crate::ledger::Store>, current_run| {
        let first = match store {
            Some(s) => s.first_run_start()?,
            None => None,
        };
        if first.is_some_and(|f| w.end <= f) {
            return Ok(Err(first.unwrap_or_default()));
        }
        Ok(Ok(list(
            store,
            &inv,
            w,
            member.as_deref(),
            current_run,
            now,
        )?))
    };
    let scope_name = if shared.is_some() { "region" } else { "agent" };
    let region = shared.map(|shared| super::Region {
        shared,
        window: w,
        only: q
            .member
            .as_deref()
            .map(|m| crate::sla::outages::scope_targets(&agent.inventory(), m)),
    });
    let answer = super::read_from(&agent, region, read).await;
    let all = match answer {
        Ok(Ok(v)) => v,
        Ok(Err(first)) => {
            return param_error(
                if q.month.is_some() { "month" } else { "to" },
                format!(
                    "the window ends before the ledger's first run ({}): nothing was watched then",
                    oslo_rfc3339(first)
                ),
            )
        }
        Err(r) => return r,
    };
    let outages = all
        .into_iter()
        .filter(|o| {
            q.service
                .as_ref()
                .is_none_or(|s| o.outage.services.contains(s))
        })
        .collect();
    let incomplete = incomplete(&agent, w, q.member.as_deref());
    let header = incomplete.as_ref().map(|_| {
        [(
            axum::http::HeaderName::from_static(INCOMPLETE_HEADER),
            axum::http::HeaderValue::from_static("ledger-not-writable"),
        )]
    });
    (
        header,
        Json(OutageList {
            from: oslo_rfc3339(w.start),
            to: oslo_rfc3339(w.end),
            scope: scope_name,
            outages,
            incomplete,
        }),
    )
        .into_response()
}

/// The longest note kept, in characters.
const NOTE_MAX_CHARS: usize = 2000;

/// The operators' note on an unplanned outage.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "OutageNoteInput")]
pub struct NoteInput {
    root_cause: String,
    /// The outage's `start` as `/api/v1/outages` gives it.
    start: String,
    /// `null` or empty removes the note.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

#[derive(Serialize, JsonSchema)]
#[schemars(rename = "OutageNote")]
pub struct NoteView {
    root_cause: String,
    start: String,
    end: Option<String>,
    note: Option<String>,
}

pub fn note_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("setOutageNote")
        .tag("outages")
        .summary("Write or remove the operators' note on an unplanned outage; reports (also frozen ones) show it")
        .with(doc::json_body::<NoteInput>)
        .response_with::<200, Json<NoteView>, _>(|r| r.description("Kept (or removed)"))
        .with(doc::bad_parameter)
        .with(doc::needs_token)
        .response_with::<404, Json<super::ErrorBody>, _>(|r| {
            r.description("No unplanned outage of that root cause began at that start")
        })
        .with(doc::ledger_unwritable)
}

/// `POST /api/v1/outages/notes`: write (or, with no text, remove) the
/// operators' note on an unplanned outage, named by its root cause and
/// start; reports show it beside the outage. Needs the bearer token.
pub async fn note(
    AxState(agent): AxState<Agent>,
    axum::Extension(status): axum::Extension<super::status::StatusState>,
    body: Bytes,
) -> Response {
    let input: NoteInput = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => {
            return param_error(
                "body",
                format!("not an outage note ({{\"root_cause\", \"start\", \"note\"}}): {e}"),
            )
        }
    };
    let Ok(start) = chrono::DateTime::parse_from_rfc3339(&input.start) else {
        return param_error(
            "start",
            "not an RFC 3339 time: give the outage's start as /api/v1/outages has it",
        );
    };
    let start_ms = start.timestamp_millis();
    let text = input
        .note
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    if let Some(t) = &text {
        if t.chars().count() > NOTE_MAX_CHARS {
            return param_error("note", format!("longer than {NOTE_MAX_CHARS} characters"));
        }
        if t.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            return param_error(
                "note",
                "has control characters (only newlines and tabs may be)",
            );
        }
    }
    let now = Utc::now().timestamp_millis();
    if start_ms >= now {
        return param_error("start", "is in the future");
    }
    let inv = agent.inventory();
    if inv.target(&input.root_cause).is_none() {
        return param_error(
            "root_cause",
            format!("unknown target {:?}", input.root_cause),
        );
    }
    let target = input.root_cause.clone();
    // The outage as a record has it: began at `start` (not continuing
    // from before), unplanned; and when it ended, if it has.
    let find = move |store: &crate::ledger::Store, current_run, w: Interval| {
        let hit = list(Some(store), &inv, w, None, current_run, now)?
            .into_iter()
            .any(|o| {
                o.outage.target == target
                    && o.outage.start_ms == start_ms
                    && !o.outage.continues_before
                    && !o.outage.planned
            });
        if !hit {
            return Ok(None);
        }
        Ok(Some(store.left_down_after(&target, start_ms)?))
    };
    // From just before: an outage that began at `start` does not
    // continue from before this window.
    let w = Interval::new(start_ms - 1, (start_ms + 1).min(now));
    // Agents sharing a record: an outage of the region's (as the outage
    // list has it by default), or of this agent's own.
    let regional = match agent.ledger().shared().cloned() {
        Some(shared) => {
            let find = find.clone();
            let only = std::iter::once(input.root_cause.clone()).collect();
            // To now: when it ended is read from the same record.
            let to_now = Interval::new(w.start, now);
            read_region(&agent, shared, to_now, Some(only), move |store| {
                find(store, None, w)
            })
            .await
        }
        None => Ok(None),
    };
    let found = match regional {
        Ok(Some(end)) => Ok(Some(end)),
        Err(r) => Err(r),
        Ok(None) => {
            read_ledger(&agent, move |store, current_run| match store {
                Some(store) => find(store, current_run, w),
                None => Ok(None),
            })
            .await
        }
    };
    let end_ms = match found {
        Err(r) => return r,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!(
                    "no unplanned outage of {:?} began at {}: take root_cause and start from /api/v1/outages",
                    input.root_cause, input.start
                ),
            )
        }
        Ok(Some(end)) => end,
    };
    let n = crate::ledger::OutageNote {
        target: input.root_cause.clone(),
        start_ms,
        end_ms,
        note: text.clone(),
    };
    let ledger = agent.ledger().clone();
    match tokio::task::spawn_blocking(move || ledger.set_outage_note(n)).await {
        // The status pages show it at once.
        Ok(Ok(())) => status.figures.invalidate(),
        Ok(Err(e)) => {
            tracing::error!("outage note: cannot write the ledger: {e}");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the ledger cannot be written, so the note was not kept: {e}"),
            );
        }
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("task failed: {e}"),
            )
        }
    }
    tracing::info!(
        root_cause = %input.root_cause,
        start = %oslo_rfc3339(start_ms),
        removed = text.is_none(),
        "outage note written through the API"
    );
    Json(NoteView {
        root_cause: input.root_cause,
        start: oslo_rfc3339(start_ms),
        end: end_ms.map(oslo_rfc3339),
        note: text,
    })
    .into_response()
}
