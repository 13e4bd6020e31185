//! `GET /api/v1/reports/{member}/{YYYY-MM}.{json,html,csv}` (and
//! `{YYYY-MM}-outages.csv`, `.pdf`), `?lang=nb|en`: a member's monthly report, as
//! `utkikk report` writes it; `…/reports/region/{YYYY-MM}.{json,html}`: the
//! regional overview (`region` is not a member id: the config refuses it).

use aide::transform::TransformOperation;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use schemars::JsonSchema;
use serde::Deserialize;

use super::availability::ScopeQuery;
use super::{doc, error, param_error};
use crate::agent::Agent;
use crate::ledger::shared::SharedRecord;
use crate::report::{self, Lang, ReportError};
use crate::time::calendar::Month;
use crate::time::interval::Interval;

#[derive(Deserialize, JsonSchema)]
pub struct ReportQuery {
    /// The report's language: `nb` (bokmål, the default) or `en`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["nb", "en"]))]
    lang: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
pub struct ReportPath {
    /// A member's id, or `region` for the regional overview (JSON and
    /// HTML only).
    member: String,
    /// `YYYY-MM.pdf` (PDF/A-2b), `YYYY-MM.json` (the report model),
    /// `YYYY-MM.html` (one self-contained page), `YYYY-MM.csv` (the
    /// services, one row each) or `YYYY-MM-outages.csv` (the unplanned
    /// outages).
    #[schemars(regex(pattern = r"^[0-9]{4}-[0-9]{2}(\.(pdf|json|html|csv)|-outages\.csv)$"))]
    file: String,
}

/// What `….json` answers: a member's report, or the region's.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum ReportJson {
    Member(report::MemberReport),
    Region(report::region::RegionReport),
}

pub fn member_report_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.id("getReport")
        .tag("reports")
        .summary("A member's monthly uptime report, as `utkikk report` writes it")
        .description(
            "CSV: UTF-8 with a BOM; in bokmål separated by `;` with decimal commas, in English \
             by `,` with decimal points. `region` as the member gives the regional overview.",
        )
        .response_with::<200, Json<ReportJson>, _>(|mut r| {
            let content = &mut r.inner().content;
            for (kind, format) in [
                ("text/html", None),
                ("text/csv", None),
                ("application/pdf", Some("binary")),
            ] {
                let mut schema = schemars::json_schema!({"type": "string"});
                if let Some(f) = format {
                    schema.insert("format".into(), f.into());
                }
                content.insert(
                    kind.into(),
                    aide::openapi::MediaType {
                        schema: Some(aide::openapi::SchemaObject {
                            json_schema: schema,
                            example: None,
                            external_docs: None,
                        }),
                        ..Default::default()
                    },
                );
            }
            r.description("The report, in the form the file name asks for")
        })
        .with(doc::bad_parameter)
        .response_with::<404, Json<super::ErrorBody>, _>(|r| {
            r.description("Unknown member, or a file name that is not a report")
        })
        .with(doc::ledger_unavailable)
}

/// What a file name asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Json,
    Html,
    Pdf,
    ServicesCsv,
    OutagesCsv,
}

fn parse_file(file: &str) -> Option<(Month, Form)> {
    let (stem, ext) = file.rsplit_once('.')?;
    let (month, form) = match (ext, stem.strip_suffix("-outages")) {
        ("csv", Some(m)) => (m, Form::OutagesCsv),
        ("csv", None) => (stem, Form::ServicesCsv),
        ("json", None) => (stem, Form::Json),
        ("html", None) => (stem, Form::Html),
        ("pdf", None) => (stem, Form::Pdf),
        _ => return None,
    };
    Some((Month::parse(month)?, form))
}

/// Build a report off the runtime: ledger errors become 503 (through
/// `read_ledger`), an unknown member 404, anything else about the request
/// 400.
async fn build<T: Send + 'static>(
    agent: &Agent,
    shared: Option<SharedRecord>,
    month: Month,
    now: i64,
    f: impl FnOnce(Option<&crate::ledger::Store>, Option<i64>) -> Result<T, ReportError>
        + Send
        + 'static,
) -> Result<T, Response> {
    let ledger_errors = |r: Result<T, ReportError>| match r {
        Err(ReportError::Ledger(e)) => Err(e),
        r => Ok(r),
    };
    // The month so far, from the record merged across the agents; a month
    // not begun is refused as from one agent's file.
    let region = shared
        .zip(
            month
                .window()
                .filter(|w| w.start < now)
                .map(|w| Interval::new(w.start, w.end.min(now))),
        )
        .map(|(shared, window)| super::Region {
            shared,
            window,
            only: None,
        });
    let built = super::read_from(agent, region, move |store, current_run| {
        ledger_errors(f(store, current_run))
    })
    .await?;
    built.map_err(|e| match e {
        ReportError::UnknownMember(_) => error(StatusCode::NOT_FOUND, e.to_string()),
        e => error(StatusCode::BAD_REQUEST, e.to_string()),
    })
}

/// A PDF laid out by Typst, off the runtime's workers, in one of the
/// slots ledger queries take (layout is as heavy).
async fn pdf_off_runtime(
    agent: &Agent,
    f: impl FnOnce() -> Result<Vec<u8>, String> + Send + 'static,
) -> Result<Result<Vec<u8>, String>, Response> {
    let permit = super::heavy_slot(agent).await?;
    Ok(tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let pdf = f();
        report::pdf::forget_layouts();
        crate::memory::release_freed();
        pdf
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|x| x))
}

pub async fn member_report(
    AxState(agent): AxState<Agent>,
    Path(ReportPath { member, file }): Path<ReportPath>,
    Query(q): Query<ReportQuery>,
    Query(scope): Query<ScopeQuery>,
) -> Response {
    let shared = match scope.shared(&agent) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let Some((month, form)) = parse_file(&file) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("{file:?}: expected YYYY-MM.pdf, .html, .json, .csv or YYYY-MM-outages.csv"),
        );
    };
    let lang = match q.lang.as_deref() {
        None => Lang::default(),
        Some(l) => match Lang::parse(l) {
            Some(l) => l,
            None => return param_error("lang", "expected nb or en"),
        },
    };
    let now = Utc::now().timestamp_millis();
    let inv = agent.inventory();
    if member == "region" {
        return region(&agent, shared, inv, month, form, lang, now).await;
    }
    let r = match build(&agent, shared, month, now, move |store, current_run| {
        report::member_report(store, &inv, &member, month, current_run, now)
    })
    .await
    {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let filename = format!("{}-{file}", r.member);
    let one = std::slice::from_ref(&r);
    let text = |r: Result<String, String>| r.map(String::into_bytes);
    let (body, kind) = match form {
        Form::Json => (
            text(serde_json::to_string_pretty(&r).map_err(|e| e.to_string())),
            "application/json",
        ),
        Form::Html => (
            text(report::html::member(&r, lang).map_err(|e| e.to_string())),
            "text/html; charset=utf-8",
        ),
        Form::Pdf => (
            match pdf_off_runtime(&agent, move || {
                report::pdf::member(&r, lang).map_err(|e| e.to_string())
            })
            .await
            {
                Ok(pdf) => pdf,
                Err(busy) => return busy,
            },
            "application/pdf",
        ),
        Form::ServicesCsv => (
            text(report::csv::services(one, lang).map_err(|e| e.to_string())),
            "text/csv; charset=utf-8; header=present",
        ),
        Form::OutagesCsv => (
            text(report::csv::outages(one, lang).map_err(|e| e.to_string())),
            "text/csv; charset=utf-8; header=present",
        ),
    };
    match body {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, kind.to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("inline; filename=\"{filename}\""),
                ),
            ],
            body,
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// `GET /api/v1/reports/region/{YYYY-MM}.{json,html}`: the overview.
async fn region(
    agent: &Agent,
    shared: Option<SharedRecord>,
    inv: std::sync::Arc<crate::inventory::Inventory>,
    month: Month,
    form: Form,
    lang: Lang,
    now: i64,
) -> Response {
    let r = match build(agent, shared, month, now, move |store, current_run| {
        report::region::region_report(store, &inv, month, current_run, now)
    })
    .await
    {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (body, kind) = match form {
        Form::Json => (
            serde_json::to_string_pretty(&r)
                .map(String::into_bytes)
                .map_err(|e| e.to_string()),
            "application/json",
        ),
        Form::Html => (
            report::html::region(&r, lang)
                .map(String::into_bytes)
                .map_err(|e| e.to_string()),
            "text/html; charset=utf-8",
        ),
        Form::Pdf => (
            match pdf_off_runtime(agent, move || {
                report::pdf::region(&r, lang).map_err(|e| e.to_string())
            })
            .await
            {
                Ok(pdf) => pdf,
                Err(busy) => return busy,
            },
            "application/pdf",
        ),
        Form::ServicesCsv | Form::OutagesCsv => {
            return error(
                StatusCode::NOT_FOUND,
                "the regional overview is JSON or HTML; every member's CSV rows come from `utkikk report --all --format csv`",
            )
        }
    };
    match body {
        Ok(body) => ([(header::CONTENT_TYPE, kind)], body).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        let m = Month::parse("2026-10").unwrap();
        assert_eq!(parse_file("2026-10.json"), Some((m, Form::Json)));
        assert_eq!(parse_file("2026-10.html"), Some((m, Form::Html)));
        assert_eq!(parse_file("2026-10.csv"), Some((m, Form::ServicesCsv)));
        assert_eq!(
            parse_file("2026-10-outages.csv"),
            Some((m, Form::OutagesCsv))
        );
        assert_eq!(parse_file("2026-10.pdf"), Some((m, Form::Pdf)));
        assert_eq!(parse_file("2026-10.docx"), None);
        assert_eq!(parse_file("2026-13.json"), None);
        assert_eq!(parse_file("2026-10-outages.json"), None);
    }
}
