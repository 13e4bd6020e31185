//! What the HTML and PDF forms both print, formatted once for a language:
//! a service's row, an outage's row, the summary in plain words at the
//! top, and why time was excluded.

use super::locale::{cut, Lang, Text};
use super::{MemberReport, ServiceSummary};
use crate::sla::outages::OutageView;
use crate::sla::service::Unknown;

/// Decimals a percentage needs: two, or as many as the objective has
/// (99.995 % needs three).
pub fn places(objective: Option<f64>) -> usize {
    let Some(o) = objective else { return 2 };
    (2..=4)
        .find(|p| {
            let f = 10f64.powi(*p as i32);
            let x = o * 100.0 * f;
            (x - x.round()).abs() < 1e-6
        })
        .unwrap_or(4)
}

/// A service's row, formatted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServiceCells {
    pub name: String,
    /// The hours the objective counts in, in words.
    pub schedule: String,
    pub objective: String,
    pub availability: String,
    pub nodata: bool,
    pub verdict: &'static str,
    pub verdict_class: &'static str,
    /// Coverage, and the minimum a verdict needs when it was not reached.
    pub coverage: String,
    pub downtime: String,
    pub outages: String,
    pub mean_time_to_restore: String,
    pub error_budget: String,
    pub excluded: String,
    pub maintenance: String,
}

impl ServiceSummary {
    pub fn cells(&self, lang: Lang) -> ServiceCells {
        let dash = || "–".to_string();
        let p = places(self.objective);
        let (verdict, verdict_class) = lang.verdict(self.met, self.unknown);
        let coverage = match (self.coverage, self.unknown, self.min_coverage) {
            (Some(c), Some(Unknown::CoverageBelowMinimum), Some(min)) => format!(
                "{} ({} {})",
                lang.percent(c, 1),
                lang.text(Text::AtLeast),
                lang.percent(min, 0)
            ),
            (Some(c), ..) => lang.percent(c, 1),
            (None, ..) => dash(),
        };
        ServiceCells {
            name: self.name.clone(),
            schedule: self
                .schedule
                .as_ref()
                .map_or_else(String::new, |s| lang.schedule(s)),
            objective: self.objective.map_or_else(dash, |o| lang.percent(o, p)),
            availability: self
                .availability
                .map_or(lang.text(Text::NoData).to_string(), |a| {
                    lang.availability(a, p)
                }),
            nodata: self.availability.is_none(),
            verdict,
            verdict_class,
            coverage,
            downtime: lang.duration(self.downtime_seconds),
            outages: self.outages.to_string(),
            mean_time_to_restore: self
                .mean_time_to_recover_seconds
                .map_or_else(dash, |s| lang.duration(s)),
            // Only with a verdict: below the minimum coverage it would
            // read as one.
            error_budget: match (self.met, self.error_budget_remaining) {
                (Some(_), Some(b)) => lang.percent(b.max(-9.99), 0),
                _ => dash(),
            },
            excluded: lang.duration(self.excluded_seconds),
            maintenance: lang.duration(self.maintenance_seconds),
        }
    }
}

/// An outage's row: start, end, duration, affected services (those whose
/// time was excluded marked so), root cause, reason, note.
pub fn outage_cells(
    o: &OutageView,
    lang: Lang,
    service_name: impl Fn(&str) -> String,
) -> [String; 7] {
    let services = o
        .outage
        .services
        .iter()
        .map(|s| {
            if o.outage.excluded_services.contains(s) {
                format!("{} ({})", service_name(s), lang.text(Text::ExcludedShort))
            } else {
                service_name(s)
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    [
        lang.date_time(o.outage.start_ms),
        lang.date_time(o.outage.end_ms),
        lang.duration(o.duration_seconds),
        services,
        o.root_cause_name.clone(),
        {
            let reason = lang.reason(o.outage.reason_code.as_deref(), o.outage.reason.as_deref());
            // From a record shared by agents: which saw it.
            match o.agents.is_empty() {
                true => reason,
                false => format!(
                    "{reason} ({} {})",
                    lang.text(Text::SeenBy),
                    o.agents.join(", ")
                ),
            }
        },
        o.note.clone().unwrap_or_default(),
    ]
}

/// A cell of the regional overview: the availability (or why there is
/// none), the coverage beneath it, and a class for HTML.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RegionCell {
    pub text: String,
    pub coverage: String,
    pub class: &'static str,
}

pub fn region_cell(s: Option<&ServiceSummary>, lang: Lang) -> RegionCell {
    let Some(s) = s else {
        return RegionCell {
            text: "·".into(),
            coverage: String::new(),
            class: "none",
        };
    };
    let p = places(s.objective);
    let (verdict, class) = lang.verdict(s.met, s.unknown);
    let text = match (s.availability, s.met) {
        (Some(a), Some(true)) => lang.availability(a, p),
        (Some(a), Some(false)) => format!("{} ✗", lang.availability(a, p)),
        _ => verdict.to_string(),
    };
    RegionCell {
        text,
        coverage: s.coverage.map_or_else(String::new, |c| {
            format!("{} {}", lang.text(Text::CoverageShort), lang.percent(c, 1))
        }),
        class,
    }
}

/// The members an outage hit, by name.
pub fn members_hit(o: &OutageView, name: impl Fn(&str) -> String) -> String {
    o.outage
        .members
        .iter()
        .map(|m| name(m))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The trend table: month names, and per service its name and cells.
pub type History = (Vec<String>, Vec<(String, Vec<RegionCell>)>);

/// The trend table: a header of month names and, per service, a cell per
/// month (the [`super::HISTORY_MONTHS`] before and the report's own) with a
/// class for HTML. `None` when no past month has figures (a new install):
/// a row of dashes says nothing.
pub fn history_table(r: &MemberReport, lang: Lang) -> Option<History> {
    let any = r
        .services
        .iter()
        .any(|s| s.history.iter().any(|m| m.availability.is_some()));
    if !any {
        return None;
    }
    let month_of = |m: &str| {
        super::Month::parse(m).map_or(m.to_string(), |m| lang.month_short(m.year, m.month))
    };
    let mut header: Vec<String> = r
        .services
        .iter()
        .find(|s| !s.history.is_empty())
        .map(|s| s.history.iter().map(|m| month_of(&m.month)).collect())
        .unwrap_or_default();
    header.push(month_of(&r.month));
    let cell =
        |a: Option<f64>, met: Option<bool>, unknown: Option<Unknown>, objective: Option<f64>| {
            let p = places(objective);
            let (text, class) = match (a, met, unknown) {
                (None, ..) => ("–".to_string(), "nodata"),
                (Some(a), Some(true), _) => (lang.number(cut(a, p) * 100.0, p), "met"),
                (Some(a), Some(false), _) => {
                    (format!("{} ✗", lang.number(cut(a, p) * 100.0, p)), "missed")
                }
                (Some(a), None, _) => (
                    format!("{} ?", lang.number(cut(a, p) * 100.0, p)),
                    "unknown",
                ),
            };
            RegionCell {
                text,
                coverage: String::new(),
                class,
            }
        };
    let rows = r
        .services
        .iter()
        .map(|s| {
            let mut cells: Vec<RegionCell> = s
                .history
                .iter()
                .map(|m| cell(m.availability, m.met, m.unknown, m.objective))
                .collect();
            cells.push(cell(s.availability, s.met, s.unknown, s.objective));
            (s.name.clone(), cells)
        })
        .collect();
    Some((header, rows))
}

fn list(lang: Lang, items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {} {last}", init.join(", "), lang.text(Text::And)),
    }
}

impl MemberReport {
    /// The month in plain words, for the top of the report: which services
    /// met their level, which did not (and by how much), which could not
    /// be judged, and the unplanned outages.
    pub fn summary_sentences(&self, lang: Lang) -> Vec<String> {
        let t = |x| lang.text(x);
        let judged: Vec<&ServiceSummary> = self
            .services
            .iter()
            .filter(|s| s.objective.is_some())
            .collect();
        if judged.is_empty() {
            return Vec::new();
        }
        let month = super::Month::parse(&self.month)
            .map_or(self.month.clone(), |m| lang.month(m.year, m.month));
        let when = if self.complete {
            t(Text::InMonth).replace("{month}", &month)
        } else {
            t(Text::SoFarInMonth).replace("{month}", &month)
        };
        let missed: Vec<String> = judged
            .iter()
            .filter(|s| s.met == Some(false))
            .map(|s| {
                let p = places(s.objective);
                format!(
                    "{} ({} {} {})",
                    s.name,
                    s.availability
                        .map_or_else(String::new, |a| lang.availability(a, p)),
                    t(Text::Against),
                    s.objective.map_or_else(String::new, |o| lang.percent(o, p))
                )
            })
            .collect();
        let unknown: Vec<&ServiceSummary> =
            judged.iter().copied().filter(|s| s.met.is_none()).collect();
        let met = judged.iter().filter(|s| s.met == Some(true)).count();
        let mut out = Vec::new();
        let first = if met == 0 && missed.is_empty() {
            // Nothing could be judged: the lines below say why.
            None
        } else if missed.is_empty() && unknown.is_empty() {
            Some(t(Text::AllMet).replace("{when}", &when))
        } else if missed.is_empty() {
            Some(
                t(if met == 1 {
                    Text::OneJudgedMet
                } else {
                    Text::AllJudgedMet
                })
                .replace("{n}", &met.to_string())
                .replace("{when}", &when),
            )
        } else if met == 0 {
            Some(
                t(Text::NoneMet)
                    .replace("{when}", &when)
                    .replace("{missed}", &list(lang, &missed)),
            )
        } else {
            Some(
                t(Text::AllMetExcept)
                    .replace("{when}", &when)
                    .replace("{missed}", &list(lang, &missed)),
            )
        };
        out.extend(first);
        for s in unknown {
            out.push(match (s.unknown, s.coverage, s.min_coverage) {
                (Some(Unknown::CoverageBelowMinimum), Some(c), Some(min)) => {
                    t(Text::UnknownCoverage)
                        .replace("{service}", &s.name)
                        .replace("{coverage}", &lang.percent(c, 1))
                        .replace("{min}", &lang.percent(min, 0))
                }
                _ => t(Text::UnknownNoData).replace("{service}", &s.name),
            });
        }
        let unplanned: Vec<&OutageView> =
            self.outages.iter().filter(|o| !o.outage.planned).collect();
        out.push(if unplanned.is_empty() {
            t(Text::NoOutages).to_string()
        } else {
            let total: f64 = unplanned.iter().map(|o| o.duration_seconds).sum();
            t(Text::OutagesTotal)
                .replace("{n}", &unplanned.len().to_string())
                .replace("{time}", &lang.duration(total))
        });
        out
    }

    /// For each service with excluded time: how long, and which root
    /// causes kept it from being observed.
    pub fn excluded_notes(&self, lang: Lang) -> Vec<String> {
        self.services
            .iter()
            .filter(|s| s.excluded_seconds > 0.0)
            .map(|s| {
                let mut roots: Vec<String> = Vec::new();
                for o in &self.outages {
                    if o.outage.excluded_services.contains(&s.service)
                        && !roots.contains(&o.root_cause_name)
                    {
                        roots.push(o.root_cause_name.clone());
                    }
                }
                let because = if roots.is_empty() {
                    lang.text(Text::ExcludedBecauseParent).to_string()
                } else {
                    lang.text(Text::ExcludedBecause)
                        .replace("{roots}", &list(lang, &roots))
                };
                lang.text(Text::ExcludedNote)
                    .replace("{service}", &s.name)
                    .replace("{time}", &lang.duration(s.excluded_seconds))
                    .replace("{because}", &because)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_follow_the_objective() {
        assert_eq!(places(Some(0.995)), 2);
        assert_eq!(places(Some(0.999)), 2);
        assert_eq!(places(Some(0.9995)), 2);
        assert_eq!(places(Some(0.99995)), 3);
        assert_eq!(places(None), 2);
    }
}
