//! `GET /api/v1/outages?member=&service=&from=&to=` (or `month=YYYY-MM`):
//! every stretch a target was `down`, with the services that were down
//! meanwhile and the members they serve.

use axum::extract::{Query, State as AxState};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::availability::{window, WindowQuery};
use super::{param_error, read_ledger};
use crate::agent::Agent;
use crate::sla::calendar::oslo_rfc3339;
use crate::sla::interval::Interval;
use crate::sla::outages::{list, OutageView};

#[derive(Deserialize)]
pub struct OutageQuery {
    from: Option<String>,
    to: Option<String>,
    month: Option<String>,
    member: Option<String>,
    service: Option<String>,
}

#[derive(Serialize)]
pub struct OutageList {
    pub from: String,
    pub to: String,
    pub outages: Vec<OutageView>,
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
    let member = q.member.clone();
    let all = match read_ledger(&agent, move |store, current_run| {
        list(store, &inv, w, member.as_deref(), current_run, now)
    })
    .await
    {
        Ok(v) => v,
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
    Json(OutageList {
        from: oslo_rfc3339(w.start),
        to: oslo_rfc3339(w.end),
        outages,
    })
    .into_response()
}
