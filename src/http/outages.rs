//! `GET /api/v1/outages?member=&service=&from=&to=` (or `month=YYYY-MM`):
//! every stretch a target was `down`, with the services that were down
//! meanwhile and the members they serve.

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::availability::{window, WindowQuery};
use super::{error, param_error};
use crate::agent::Agent;
use crate::inventory::{Inventory, ServiceLevel};
use crate::ledger::{LedgerError, Store};
use crate::sla::calendar::oslo_rfc3339;
use crate::sla::interval::{Interval, IntervalSet};
use crate::sla::outages::{down_spans, overlaps, Outage};
use crate::sla::schedule::Schedule;
use crate::sla::{service, timeline, timelines};

#[derive(Deserialize)]
pub struct OutageQuery {
    from: Option<String>,
    to: Option<String>,
    month: Option<String>,
    member: Option<String>,
    service: Option<String>,
}

#[derive(Serialize)]
pub struct OutageView {
    /// The root cause: the target that was down.
    pub root_cause: String,
    pub root_cause_name: String,
    pub start: String,
    pub end: String,
    pub duration_seconds: f64,
    pub reason: Option<String>,
    /// Began before the window asked about.
    pub continues_before: bool,
    /// Lasted past the window, or is still going on.
    pub continues_after: bool,
    /// Inside a planned maintenance window.
    pub planned: bool,
    /// Services that were down during it.
    pub services: Vec<String>,
    /// Members served by those services, and by the target itself.
    pub members: Vec<String>,
}

#[derive(Serialize)]
pub struct OutageList {
    pub from: String,
    pub to: String,
    pub outages: Vec<OutageView>,
}

/// The level to judge a service by in a window without one in force.
fn default_level() -> ServiceLevel {
    ServiceLevel {
        valid_from: NaiveDate::MIN,
        objective: 1.0,
        schedule: Schedule::Always,
        degraded_counts_as_up: true,
        unreachable_counts_as_down: false,
    }
}

/// All outages in `w`, newest last. Reads the ledger: call off the runtime.
pub fn list(
    store: Option<&Store>,
    inv: &Inventory,
    w: Interval,
    current_run: Option<i64>,
    now: i64,
) -> Result<Vec<OutageView>, LedgerError> {
    let Some(store) = store else {
        return Ok(Vec::new());
    };
    let runs = store.runs(w.start, w.end)?;
    let mut outages: Vec<Outage> = Vec::new();
    for t in &inv.targets {
        let trs = store.transitions(&t.id, &runs, w.end)?;
        outages.extend(down_spans(&t.id, w, &runs, &trs, current_run, now));
    }
    // Each service's own down time over the window.
    let tls = timelines(
        store,
        inv.services
            .iter()
            .flat_map(|s| s.targets.iter().chain(s.redundancy.iter().flatten()))
            .map(String::as_str),
        w,
        current_run,
        now,
    )?;
    let empty = timeline::build(w, &[], &[], None, now);
    let start_day = chrono::DateTime::from_timestamp_millis(w.start)
        .map(|t| t.with_timezone(&chrono_tz::Europe::Oslo).date_naive());
    // For each service, its parts (a required target, or a redundancy
    // group) with the time each was out (down, or unreachable behind a
    // down parent; a group only when no member was up).
    let mut parts: HashMap<&str, Vec<(Vec<&str>, IntervalSet)>> = HashMap::new();
    for s in &inv.services {
        let level = start_day
            .and_then(|d| s.level_on(d).cloned())
            .unwrap_or_else(default_level);
        let classes = |t: &str| {
            service::Classes::of(
                &tls.get(t).cloned().unwrap_or_else(|| empty.clone()),
                &level,
            )
        };
        let mut v: Vec<(Vec<&str>, IntervalSet)> = Vec::new();
        for t in &s.targets {
            let c = classes(t);
            v.push((vec![t.as_str()], c.down.union(&c.excluded)));
        }
        for g in &s.redundancy {
            let members: Vec<service::Classes> = g.iter().map(|t| classes(t)).collect();
            let c = service::Classes::any(w, &members);
            v.push((
                g.iter().map(String::as_str).collect(),
                c.down.union(&c.excluded),
            ));
        }
        parts.insert(s.id.as_str(), v);
    }
    let children = inv.children();
    let below = |root: &str| -> BTreeSet<String> {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut work = vec![root.to_string()];
        while let Some(t) = work.pop() {
            if seen.insert(t.clone()) {
                work.extend(children.get(&t).cloned().unwrap_or_default());
            }
        }
        seen
    };
    outages.sort_by(|a, b| (a.start_ms, &a.target).cmp(&(b.start_ms, &b.target)));
    Ok(outages
        .into_iter()
        .map(|o| {
            let span = Interval::new(o.start_ms, o.end_ms);
            // A service is affected when one of its parts that depends on
            // the root cause (or something behind it) was out meanwhile.
            let behind = below(&o.target);
            let services: Vec<String> = inv
                .services
                .iter()
                .filter(|s| {
                    parts.get(s.id.as_str()).is_some_and(|ps| {
                        ps.iter().any(|(targets, out)| {
                            targets.iter().any(|t| behind.contains(*t)) && overlaps(out, span)
                        })
                    })
                })
                .map(|s| s.id.clone())
                .collect();
            let target = inv.target(&o.target);
            let mut members: BTreeSet<String> = inv
                .services
                .iter()
                .filter(|s| services.contains(&s.id))
                .flat_map(|s| s.serves.iter().cloned())
                .collect();
            if let Some(t) = target {
                members.extend(t.serves.iter().cloned());
                members.extend(t.member.iter().cloned());
            }
            OutageView {
                root_cause_name: target.map_or_else(|| o.target.clone(), |t| t.name.clone()),
                root_cause: o.target,
                start: oslo_rfc3339(o.start_ms),
                end: oslo_rfc3339(o.end_ms),
                duration_seconds: span.len() as f64 / 1e3,
                reason: o.reason,
                continues_before: o.continues_before,
                continues_after: o.continues_after,
                planned: false,
                services,
                members: members.into_iter().collect(),
            }
        })
        .collect())
}

pub async fn outages(AxState(agent): AxState<Agent>, Query(q): Query<OutageQuery>) -> Response {
    let wq = WindowQuery {
        from: q.from.clone(),
        to: q.to.clone(),
        month: q.month.clone(),
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
    let inv = agent.with_state(|inv, _| std::sync::Arc::new(inv.clone()));
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
    let ledger = agent.ledger().clone();
    let inv2 = inv.clone();
    let result = tokio::task::spawn_blocking(move || {
        let store = if ledger.path().exists() {
            Some(Store::open_read_only(ledger.path())?)
        } else {
            None
        };
        list(store.as_ref(), &inv2, w, ledger.current_run(), now)
    })
    .await;
    let all = match result {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the ledger cannot be read: {e}"),
            )
        }
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("query failed: {e}"),
            )
        }
    };
    let outages = all
        .into_iter()
        .filter(|o| q.member.as_ref().is_none_or(|m| o.members.contains(m)))
        .filter(|o| q.service.as_ref().is_none_or(|s| o.services.contains(s)))
        .collect();
    Json(OutageList {
        from: oslo_rfc3339(w.start),
        to: oslo_rfc3339(w.end),
        outages,
    })
    .into_response()
}
