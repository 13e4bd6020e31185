//! `GET /api/v1/services` and `GET /api/v1/services/{id}/sla?month=YYYY-MM`.

use aide::transform::TransformOperation;
use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::availability::ScopeQuery;
use super::{doc, error, month_param, param_error, IdPath};
use crate::agent::Agent;
use crate::inventory::{Service, ServiceLevel};
use crate::sla::service::Figures;
use crate::time::calendar::oslo_rfc3339;
use crate::time::interval::Interval;
use crate::time::schedule::Schedule;

/// A service level, from the day it is in force.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Level")]
pub struct LevelView {
    pub valid_from: NaiveDate,
    /// Ratio 0–1.
    pub objective: f64,
    /// Ratio 0–1 of the scheduled time that must be observed for a verdict.
    pub min_coverage: f64,
    /// `24x7` or `business_hours`.
    pub schedule: &'static str,
    /// e.g. `mon-fri 07:00-17:00, public holidays closed`.
    pub business_hours: Option<String>,
    pub degraded_counts_as: &'static str,
    pub unreachable_counts_as: &'static str,
}

pub fn level_view(l: &ServiceLevel) -> LevelView {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let (schedule, business_hours) = match &l.schedule {
        Schedule::Always => ("24x7", None),
        Schedule::BusinessHours(bh) => {
            let days: Vec<&str> = bh
                .days
                .iter()
                .filter_map(|d| DAYS.get(*d as usize).copied())
                .collect();
            let mut text = format!(
                "{} {}-{}",
                days.join(","),
                bh.from.format("%H:%M"),
                bh.to.format("%H:%M")
            );
            if bh.public_holidays {
                text.push_str(", Norwegian public holidays closed");
            }
            if !bh.closed.is_empty() {
                text.push_str(&format!(", {} extra closed day(s)", bh.closed.len()));
            }
            ("business_hours", Some(text))
        }
    };
    LevelView {
        valid_from: l.valid_from,
        objective: l.objective,
        min_coverage: l.min_coverage,
        schedule,
        business_hours,
        degraded_counts_as: if l.degraded_counts_as_up {
            "up"
        } else {
            "down"
        },
        unreachable_counts_as: if l.unreachable_counts_as_down {
            "down"
        } else {
            "excluded"
        },
    }
}

#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Service")]
pub struct ServiceView {
    id: String,
    name: String,
    serves: Vec<String>,
    targets: Vec<String>,
    redundancy: Vec<Vec<String>>,
    levels: Vec<LevelView>,
}

fn service_view(s: &Service) -> ServiceView {
    ServiceView {
        id: s.id.clone(),
        name: s.name.clone(),
        serves: s.serves.clone(),
        targets: s.targets.clone(),
        redundancy: s.redundancy.clone(),
        levels: s.levels.iter().map(level_view).collect(),
    }
}

#[derive(Serialize, JsonSchema)]
pub struct ServiceList {
    services: Vec<ServiceView>,
}

pub fn services_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("listServices")
        .tag("services")
        .summary("Services with their targets, redundancy groups and service levels")
        .response_with::<200, Json<ServiceList>, _>(|r| r.description("Services"))
}

pub async fn services(AxState(agent): AxState<Agent>) -> Json<ServiceList> {
    let services = agent
        .inventory()
        .services
        .iter()
        .map(service_view)
        .collect();
    Json(ServiceList { services })
}

#[derive(Deserialize, JsonSchema)]
pub struct MonthQuery {
    /// YYYY-MM (Europe/Oslo), a month that has begun.
    #[schemars(regex(pattern = r"^[0-9]{4}-[0-9]{2}$"), required)]
    month: Option<String>,
}

/// A service's month under the level in force at its start.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "ServiceMonth")]
struct SlaView {
    service: String,
    name: String,
    /// `region`: from the record merged across the agents that share a
    /// PostgreSQL ledger; `agent`: from this agent's own file.
    scope: &'static str,
    month: String,
    /// RFC 3339, Europe/Oslo.
    from: String,
    /// End of what was evaluated: the month's end, or now for this month.
    to: String,
    complete: bool,
    /// Answered from the frozen results of the closed month.
    frozen: bool,
    /// The level in force at the start of the month; `null` if none was.
    level: Option<LevelView>,
    figures: Option<Figures>,
    /// Present when scheduled time was excluded: why, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    excluded: Option<ExcludedView>,
}

/// Why a service's time was left out of its figures.
/// Scheduled time left out of the figures, and why.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Excluded")]
struct ExcludedView {
    seconds: f64,
    /// The root causes behind which the service could not be observed.
    because: Vec<String>,
    explanation: String,
}

impl ExcludedView {
    fn new(seconds: f64, because: Vec<String>) -> ExcludedView {
        let who = match because.as_slice() {
            [] => "something it depends on".to_string(),
            [one] => one.clone(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
        };
        ExcludedView {
            explanation: format!(
                "{seconds} s of scheduled time were left out of the figures: the service could not be observed because {who} went down, and its level does not count such time (unreachable: excluded)"
            ),
            seconds,
            because,
        }
    }
}

impl SlaView {
    /// A service's month as evaluated (`None`: no level was in force).
    fn new(
        svc: &Service,
        month: crate::time::calendar::Month,
        window: crate::time::interval::Interval,
        now: i64,
        (evaluated, frozen): (Option<crate::sla::ServiceMonth>, bool),
    ) -> SlaView {
        let (level, to, figures) = match evaluated {
            Some((level, w, f)) => (Some(level_view(&level)), w.end, Some(f)),
            None => (None, window.end.min(now), None),
        };
        SlaView {
            service: svc.id.clone(),
            name: svc.name.clone(),
            scope: "agent",
            month: month.to_string(),
            from: oslo_rfc3339(window.start),
            to: oslo_rfc3339(to),
            complete: window.end <= now,
            frozen,
            level,
            figures,
            excluded: None,
        }
    }
}

pub fn service_sla_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("getServiceSla")
        .tag("services")
        .summary("A service's figures for a month, under the level in force at its start")
        .response_with::<200, Json<SlaView>, _>(|r| r.description("The month"))
        .with(doc::bad_parameter)
        .with(doc::not_found)
        .with(doc::ledger_unavailable)
}

pub async fn service_sla(
    AxState(agent): AxState<Agent>,
    Path(IdPath { id }): Path<IdPath>,
    Query(q): Query<MonthQuery>,
    Query(scope): Query<ScopeQuery>,
) -> Response {
    let shared = match scope.shared(&agent) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let now = Utc::now().timestamp_millis();
    let (month, window) = match month_param(q.month.as_deref(), now) {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let Some(service) = agent
        .inventory()
        .services
        .iter()
        .find(|s| s.id == id)
        .cloned()
    else {
        return error(StatusCode::NOT_FOUND, format!("unknown service {id:?}"));
    };
    let svc = service.clone();
    let inv = agent.inventory();
    let region = shared.is_some();
    let compute = move |store: Option<&crate::ledger::Store>, current_run| {
        let evaluated = crate::sla::service_month_frozen(store, &svc, month, current_run, now)?;
        // Only a service with excluded time pays for the outage list that
        // says why.
        let excluded = evaluated
            .0
            .as_ref()
            .map(|(_, _, f)| f.excluded_seconds)
            .filter(|s| *s > 0.0);
        let because = match excluded {
            Some(_) => {
                let w = Interval::new(window.start, window.end.min(now));
                let mut roots: Vec<String> = Vec::new();
                for o in crate::sla::outages::list(store, &inv, w, None, current_run, now)? {
                    if o.outage.excluded_services.contains(&svc.id)
                        && !roots.contains(&o.outage.target)
                    {
                        roots.push(o.outage.target);
                    }
                }
                roots
            }
            None => Vec::new(),
        };
        Ok::<_, crate::ledger::LedgerError>((
            evaluated,
            excluded.map(|s| ExcludedView::new(s, because)),
        ))
    };
    // The region's month: its parts and all they depend on, from the
    // record merged across the agents (frozen once closed).
    let source = shared.map(|shared| super::Region {
        shared,
        window: Interval::new(window.start, window.end.min(now)),
        only: Some(crate::sla::outages::service_targets(
            &agent.inventory(),
            &service,
        )),
    });
    let answer = super::read_from(&agent, source, compute).await;
    let answer = match answer {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (evaluated, excluded) = answer;
    let mut view = SlaView::new(&service, month, window, now, evaluated);
    view.excluded = excluded;
    if region {
        view.scope = "region";
    }
    Json(view).into_response()
}

/// Every service serving a member that month.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "MemberMonth")]
struct MemberSlaView {
    member: String,
    name: String,
    month: String,
    /// The kommunenummer in force on the first day of the month.
    kommunenummer: Option<String>,
    /// Set when the member had merged into another before this month: its
    /// figures for the month belong to that member.
    merged_into: Option<String>,
    /// Members merged into this one by the start of the month, whose
    /// services are counted here.
    includes: Vec<String>,
    services: Vec<SlaView>,
}

pub fn member_sla_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("getMemberSla")
        .tag("services")
        .summary("Every service serving a member that month, the member as defined that month")
        .response_with::<200, Json<MemberSlaView>, _>(|r| r.description("The member's month"))
        .with(doc::bad_parameter)
        .with(doc::not_found)
        .with(doc::ledger_unavailable)
}

/// `GET /api/v1/members/{id}/sla?month=YYYY-MM`: every service serving the
/// member that month, with the member as it was defined that month.
pub async fn member_sla(
    AxState(agent): AxState<Agent>,
    Path(IdPath { id }): Path<IdPath>,
    Query(q): Query<MonthQuery>,
    Query(scope): Query<ScopeQuery>,
) -> Response {
    let shared = match scope.shared(&agent) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let now = Utc::now().timestamp_millis();
    let (month, window) = match month_param(q.month.as_deref(), now) {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let Some(first_day) = month.start().map(|s| s.date_naive()) else {
        return param_error("month", "out of range");
    };
    let inv = agent.inventory();
    let Some(on) = inv.member_on(&id, first_day) else {
        return error(StatusCode::NOT_FOUND, format!("unknown member {id:?}"));
    };
    let (member, merged_into, includes) = (
        on.member.clone(),
        on.merged_into.clone(),
        on.includes.clone(),
    );
    let serving: Vec<Service> = on.services.into_iter().cloned().collect();
    let region = shared.is_some();
    let compute = move |store: Option<&crate::ledger::Store>, current_run| {
        serving
            .into_iter()
            .map(|svc| {
                let r = crate::sla::service_month_frozen(store, &svc, month, current_run, now)?;
                Ok((svc, r))
            })
            .collect::<Result<Vec<_>, crate::ledger::LedgerError>>()
    };
    let source = shared.map(|shared| super::Region {
        shared,
        window: Interval::new(window.start, window.end.min(now)),
        only: Some(crate::sla::outages::scope_targets(&inv, &id)),
    });
    let evaluated = super::read_from(&agent, source, compute).await;
    let evaluated = match evaluated {
        Ok(x) => x,
        Err(r) => return r,
    };
    let services = evaluated
        .into_iter()
        .map(|(svc, r)| {
            let mut v = SlaView::new(&svc, month, window, now, r);
            if region {
                v.scope = "region";
            }
            v
        })
        .collect();
    Json(MemberSlaView {
        kommunenummer: member.kommunenummer_on(first_day).map(str::to_string),
        member: member.id,
        name: member.name,
        month: month.to_string(),
        merged_into,
        includes,
        services,
    })
    .into_response()
}
