//! A service's figures over a window: its targets' timelines combined
//! (all required targets, and each redundancy group up while any member is),
//! restricted to the service level's schedule.
//!
//! Availability = up ÷ (scheduled − maintenance − unmonitored − excluded).
//! Precedence when combining, for the required targets: any target down
//! makes the service down; otherwise any unmonitored makes it unmonitored
//! (we cannot say); otherwise maintenance; otherwise excluded (an
//! `unreachable` counted as excluded); otherwise up. A redundancy group is
//! up while any member is up; otherwise unmonitored, maintenance, excluded,
//! and down only when every member is down.

use serde::Serialize;

use super::timeline::Timeline;
use crate::inventory::{Service, ServiceLevel};
use crate::model::State;
use crate::time::interval::{Interval, IntervalSet};

/// A timeline sorted into what it means for a service level.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Classes {
    pub up: IntervalSet,
    pub down: IntervalSet,
    pub unmonitored: IntervalSet,
    pub maintenance: IntervalSet,
    pub excluded: IntervalSet,
}

impl Classes {
    pub fn of(t: &Timeline, level: &ServiceLevel) -> Classes {
        let set = |s: State| {
            t.states
                .get(&super::timeline::StateKey::of(s))
                .cloned()
                .unwrap_or_default()
        };
        let (mut up, mut down) = (set(State::Up), set(State::Down));
        if level.degraded_counts_as_up {
            up = up.union(&set(State::Degraded));
        } else {
            down = down.union(&set(State::Degraded));
        }
        let mut excluded = IntervalSet::new();
        if level.unreachable_counts_as_down {
            down = down.union(&set(State::Unreachable));
        } else {
            excluded = set(State::Unreachable);
        }
        Classes {
            up,
            down,
            unmonitored: set(State::Unmonitored),
            maintenance: set(State::Maintenance),
            excluded,
        }
    }

    /// All of `parts` must be up: any part down makes the whole down.
    fn all(window: Interval, parts: &[Classes]) -> Classes {
        let (down, [unmonitored, maintenance, excluded], up) =
            Self::peel(window, parts, |c| &c.down);
        Classes {
            up,
            down,
            unmonitored,
            maintenance,
            excluded,
        }
    }

    /// Any of `parts` up is enough: the whole is down only when none is up
    /// and no other class applies.
    pub fn any(window: Interval, parts: &[Classes]) -> Classes {
        let (up, [unmonitored, maintenance, excluded], down) = Self::peel(window, parts, |c| &c.up);
        Classes {
            up,
            down,
            unmonitored,
            maintenance,
            excluded,
        }
    }

    /// Take from `window`, in order of precedence, the union over `parts`
    /// of `first`, then of unmonitored, maintenance and excluded; what is
    /// left belongs to the opposite of `first`.
    fn peel(
        window: Interval,
        parts: &[Classes],
        first: fn(&Classes) -> &IntervalSet,
    ) -> (IntervalSet, [IntervalSet; 3], IntervalSet) {
        let union = |f: fn(&Classes) -> &IntervalSet| {
            parts
                .iter()
                .fold(IntervalSet::new(), |acc, c| acc.union(f(c)))
        };
        let mut rest = IntervalSet::single(window);
        let head = union(first).intersection(&rest);
        rest = rest.difference(&head);
        let middle: [fn(&Classes) -> &IntervalSet; 3] =
            [|c| &c.unmonitored, |c| &c.maintenance, |c| &c.excluded];
        let mut taken: [IntervalSet; 3] = Default::default();
        for (slot, f) in taken.iter_mut().zip(middle) {
            *slot = rest.intersection(&union(f));
            rest = rest.difference(slot);
        }
        (head, taken, rest)
    }

    fn restrict(&self, s: &IntervalSet) -> Classes {
        Classes {
            up: self.up.intersection(s),
            down: self.down.intersection(s),
            unmonitored: self.unmonitored.intersection(s),
            maintenance: self.maintenance.intersection(s),
            excluded: self.excluded.intersection(s),
        }
    }
}

/// A service's figures over a window.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Figures {
    /// Ratio 0–1.
    pub objective: f64,
    pub scheduled_seconds: f64,
    pub up_seconds: f64,
    /// Unplanned downtime in scheduled time.
    pub downtime_seconds: f64,
    pub maintenance_seconds: f64,
    pub unmonitored_seconds: f64,
    pub excluded_seconds: f64,
    /// `None`: nothing observed ("no data"), never 100 %.
    pub availability: Option<f64>,
    /// Monitored ÷ scheduled; `None` with no scheduled time.
    pub coverage: Option<f64>,
    /// Separate stretches of downtime in scheduled time.
    pub outages: usize,
    pub mean_time_to_recover_seconds: Option<f64>,
    /// 1 − downtime ÷ allowed downtime; negative once overspent.
    pub error_budget_remaining: Option<f64>,
    /// `None` when no verdict can be given: `unknown` says why.
    pub met: Option<bool>,
    /// The coverage a verdict needs (ratio 0–1). `None` in figures frozen
    /// before it existed.
    #[serde(default)]
    pub min_coverage: Option<f64>,
    /// Why `met` is `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown: Option<Unknown>,
}

/// Why a window has no verdict.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Unknown {
    /// Nothing in scheduled time was observed as up or down.
    NoData,
    /// Less of the scheduled time was observed than the level's
    /// `min_coverage`.
    CoverageBelowMinimum,
}

impl Unknown {
    pub fn code(self) -> &'static str {
        match self {
            Unknown::NoData => "no_data",
            Unknown::CoverageBelowMinimum => "coverage_below_minimum",
        }
    }
}

/// The service's own classes over `window` (all of the day, before the
/// schedule is applied).
pub fn combined(
    service: &Service,
    level: &ServiceLevel,
    window: Interval,
    timeline_of: impl Fn(&str) -> Timeline,
) -> Classes {
    let mut parts: Vec<Classes> = service
        .targets
        .iter()
        .map(|t| Classes::of(&timeline_of(t), level))
        .collect();
    for group in &service.redundancy {
        let members: Vec<Classes> = group
            .iter()
            .map(|t| Classes::of(&timeline_of(t), level))
            .collect();
        parts.push(Classes::any(window, &members));
    }
    Classes::all(window, &parts)
}

/// What `service` is at `now_ms` under `level`, from its targets' states
/// then (`state_of`): up or down, and whether it is observed at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// `Some(false)` when down; `None` when its classes say neither
    /// (unmonitored, planned maintenance, an excluded `unreachable`).
    pub up: Option<bool>,
    /// False while unmonitored (it counts against coverage).
    pub monitored: bool,
}

/// [`Now`] of `service` at `now_ms`; `None` outside the level's schedule.
pub fn now(
    service: &Service,
    level: &ServiceLevel,
    now_ms: i64,
    state_of: impl Fn(&str) -> State,
) -> Option<Now> {
    let instant = Interval::new(now_ms, now_ms + 1);
    if level.schedule.within(instant).is_empty() {
        return None;
    }
    let c = combined(service, level, instant, |t| Timeline {
        window: Some(instant),
        states: [(
            super::timeline::StateKey::of(state_of(t)),
            IntervalSet::single(instant),
        )]
        .into_iter()
        .collect(),
    });
    let up = if !c.up.is_empty() {
        Some(true)
    } else if !c.down.is_empty() {
        Some(false)
    } else {
        None
    };
    Some(Now {
        up,
        monitored: c.unmonitored.is_empty(),
    })
}

/// Combine the service's targets (looked up with `timeline_of`) over
/// `window` under `level`.
pub fn figures(
    service: &Service,
    level: &ServiceLevel,
    window: Interval,
    timeline_of: impl Fn(&str) -> Timeline,
) -> Figures {
    Tally::of(service, level, window, timeline_of).figures(level)
}

/// What a service's figures are made of, over some scheduled time: the
/// milliseconds in each class and the stretches of downtime. Tallies of
/// consecutive pieces of a window add up to the tally of the window (a
/// stretch of downtime across the seam counts once), so closed days can be
/// kept and summed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Tally {
    pub scheduled_ms: i64,
    pub up_ms: i64,
    pub down_ms: i64,
    pub maintenance_ms: i64,
    pub unmonitored_ms: i64,
    pub excluded_ms: i64,
    /// Downtime in scheduled time, in order: `[start, end)`.
    pub down: Vec<(i64, i64)>,
}

impl Tally {
    /// The tally of the service over `window`.
    pub fn of(
        service: &Service,
        level: &ServiceLevel,
        window: Interval,
        timeline_of: impl Fn(&str) -> Timeline,
    ) -> Tally {
        let scheduled = level.schedule.within(window);
        let c = combined(service, level, window, timeline_of).restrict(&scheduled);
        Tally {
            scheduled_ms: scheduled.len(),
            up_ms: c.up.len(),
            down_ms: c.down.len(),
            maintenance_ms: c.maintenance.len(),
            unmonitored_ms: c.unmonitored.len(),
            excluded_ms: c.excluded.len(),
            down: c.down.spans().iter().map(|i| (i.start, i.end)).collect(),
        }
    }

    /// Add the tally of the piece that follows this one.
    pub fn add(&mut self, next: Tally) {
        self.scheduled_ms += next.scheduled_ms;
        self.up_ms += next.up_ms;
        self.down_ms += next.down_ms;
        self.maintenance_ms += next.maintenance_ms;
        self.unmonitored_ms += next.unmonitored_ms;
        self.excluded_ms += next.excluded_ms;
        let mut rest = next.down.into_iter();
        if let (Some(last), Some(first)) = (self.down.last_mut(), rest.as_slice().first()) {
            if last.1 == first.0 {
                last.1 = first.1;
                rest.next();
            }
        }
        self.down.extend(rest);
    }

    pub fn figures(&self, level: &ServiceLevel) -> Figures {
        let s = |ms: i64| ms as f64 / 1e3;
        let (up, down) = (s(self.up_ms), s(self.down_ms));
        let counted = up + down;
        let availability = (counted > 0.0).then(|| up / counted);
        let outages = self.down.len();
        let allowed = (1.0 - level.objective) * counted;
        let coverage = (self.scheduled_ms > 0)
            .then(|| (self.scheduled_ms - self.unmonitored_ms) as f64 / self.scheduled_ms as f64);
        let (met, unknown) = match (availability, coverage) {
            (None, _) | (_, None) => (None, Some(Unknown::NoData)),
            (Some(_), Some(c)) if c < level.min_coverage => {
                (None, Some(Unknown::CoverageBelowMinimum))
            }
            (Some(a), Some(_)) => (Some(a >= level.objective), None),
        };
        Figures {
            objective: level.objective,
            scheduled_seconds: s(self.scheduled_ms),
            up_seconds: up,
            downtime_seconds: down,
            maintenance_seconds: s(self.maintenance_ms),
            unmonitored_seconds: s(self.unmonitored_ms),
            excluded_seconds: s(self.excluded_ms),
            availability,
            coverage,
            outages,
            mean_time_to_recover_seconds: (outages > 0).then(|| down / outages as f64),
            error_budget_remaining: (counted > 0.0).then(|| {
                if allowed > 0.0 {
                    1.0 - down / allowed
                } else if down > 0.0 {
                    -1.0
                } else {
                    1.0
                }
            }),
            met,
            min_coverage: Some(level.min_coverage),
            unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::store::{RunRow, TransitionRow};
    use crate::sla::timeline::build;
    use crate::time::schedule::Schedule;
    use chrono::NaiveDate;
    use std::collections::HashMap;

    fn level(objective: f64) -> ServiceLevel {
        ServiceLevel {
            valid_from: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            objective,
            min_coverage: 0.9,
            schedule: Schedule::Always,
            degraded_counts_as_up: true,
            unreachable_counts_as_down: false,
        }
    }

    /// Timelines over [0, 1000) from (at, state) lists, one run.
    fn timelines(spec: &[(&str, &[(i64, State)])]) -> HashMap<String, Timeline> {
        let runs = [RunRow {
            id: 1,
            started_ms: 0,
            end_ms: 1000,
            clean: true,
        }];
        spec.iter()
            .map(|(id, changes)| {
                let trs: Vec<TransitionRow> = changes
                    .iter()
                    .map(|(at, s)| TransitionRow {
                        run_id: 1,
                        target: id.to_string(),
                        from_state: String::new(),
                        to_state: s.as_str().into(),
                        at_ms: *at,
                        reason: None,
                        reason_code: None,
                        root_cause: None,
                    })
                    .collect();
                (
                    id.to_string(),
                    build(Interval::new(0, 1000), &runs, &trs, None, 0),
                )
            })
            .collect()
    }

    fn service(targets: &[&str], groups: &[&[&str]]) -> Service {
        Service {
            id: "svc".into(),
            name: "svc".into(),
            serves: vec![],
            targets: targets.iter().map(|s| s.to_string()).collect(),
            redundancy: groups
                .iter()
                .map(|g| g.iter().map(|s| s.to_string()).collect())
                .collect(),
            levels: vec![],
        }
    }

    #[test]
    fn redundancy_group_is_up_while_any_member_is() {
        use State::*;
        let tl = timelines(&[
            ("app", &[(0, Up)]),
            ("link-a", &[(0, Up), (100, Down), (300, Up)]),
            ("link-b", &[(0, Up), (200, Down), (400, Up)]),
        ]);
        let f = figures(
            &service(&["app"], &[&["link-a", "link-b"]]),
            &level(0.99),
            Interval::new(0, 1000),
            |t| tl[t].clone(),
        );
        // Both links down only in [200, 300).
        assert_eq!(f.downtime_seconds, 0.1);
        assert_eq!(f.outages, 1);
        assert_eq!(f.availability, Some(0.9));
        assert_eq!(f.met, Some(false));
        assert_eq!(f.coverage, Some(1.0));
    }

    #[test]
    fn required_targets_down_first_then_unmonitored_then_excluded() {
        use State::*;
        let tl = timelines(&[
            ("a", &[(100, Up), (500, Unreachable), (600, Up)]),
            ("b", &[(0, Up), (50, Down), (150, Up)]),
        ]);
        let f = figures(
            &service(&["a", "b"], &[]),
            &level(0.5),
            Interval::new(0, 1000),
            |t| tl[t].clone(),
        );
        // [0,50) a unmonitored; [50,150) b down (wins over a's unmonitored);
        // [500,600) a unreachable → excluded.
        assert_eq!(f.downtime_seconds, 0.1);
        assert_eq!(f.unmonitored_seconds, 0.05);
        assert_eq!(f.excluded_seconds, 0.1);
        assert_eq!(f.up_seconds, 0.75);
        assert_eq!(f.availability, Some(0.75 / 0.85));
        assert_eq!(f.coverage, Some(0.95));
        let eb = f.error_budget_remaining.unwrap();
        assert!((eb - (1.0 - 0.1 / (0.5 * 0.85))).abs() < 1e-9);
    }

    #[test]
    fn nothing_observed_is_no_data() {
        let tl = timelines(&[("a", &[])]);
        let f = figures(
            &service(&["a"], &[]),
            &level(0.995),
            Interval::new(0, 1000),
            |t| tl[t].clone(),
        );
        assert_eq!(f.availability, None);
        assert_eq!(f.met, None);
        assert_eq!(f.unknown, Some(Unknown::NoData));
        assert_eq!(f.coverage, Some(0.0));
        assert_eq!(f.error_budget_remaining, None);
    }

    #[test]
    fn no_verdict_below_the_minimum_coverage() {
        use State::*;
        // Observed (all up) for the last 2 % of the window only.
        let tl = timelines(&[("a", &[(980, Up)])]);
        let f = figures(
            &service(&["a"], &[]),
            &level(0.995),
            Interval::new(0, 1000),
            |t| tl[t].clone(),
        );
        assert_eq!(f.availability, Some(1.0), "the fact stays");
        assert_eq!(f.coverage, Some(0.02));
        assert_eq!(f.met, None, "no verdict at 2 % coverage");
        assert_eq!(f.unknown, Some(Unknown::CoverageBelowMinimum));
        assert_eq!(f.min_coverage, Some(0.9));
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["unknown"], "coverage_below_minimum");
        // Exactly at the minimum there is one.
        let tl = timelines(&[("a", &[(100, Up)])]);
        let f = figures(
            &service(&["a"], &[]),
            &level(0.995),
            Interval::new(0, 1000),
            |t| tl[t].clone(),
        );
        assert_eq!((f.met, f.unknown), (Some(true), None));
        let mut lax = level(0.995);
        lax.min_coverage = 0.0;
        let tl = timelines(&[("a", &[(980, Up)])]);
        let f = figures(&service(&["a"], &[]), &lax, Interval::new(0, 1000), |t| {
            tl[t].clone()
        });
        assert_eq!(f.met, Some(true), "min_coverage 0: any observation judges");
    }

    #[test]
    fn degraded_and_unreachable_can_count_as_down() {
        use State::*;
        let tl = timelines(&[("a", &[(0, Degraded), (100, Unreachable), (200, Up)])]);
        let mut l = level(0.9);
        l.degraded_counts_as_up = false;
        l.unreachable_counts_as_down = true;
        let f = figures(&service(&["a"], &[]), &l, Interval::new(0, 1000), |t| {
            tl[t].clone()
        });
        assert_eq!(f.downtime_seconds, 0.2);
        assert_eq!(f.outages, 1, "degraded then unreachable is one stretch");
        assert_eq!(f.availability, Some(0.8));
    }

    /// Whether the service is up (`now`'s `up`; `None` outside the
    /// schedule too).
    fn up_now(
        service: &Service,
        level: &ServiceLevel,
        now_ms: i64,
        state_of: impl Fn(&str) -> State,
    ) -> Option<bool> {
        now(service, level, now_ms, state_of).and_then(|n| n.up)
    }

    #[test]
    fn up_now_follows_the_states_redundancy_and_schedule() {
        use State::*;
        let svc = service(&["a"], &[&["b", "c"]]);
        let lv = level(0.995);
        // Wednesday 21 October 2026, 12:00 Oslo.
        let noon = crate::time::calendar::oslo_ms(2026, 10, 21, 12, 0);
        let now = |a, b, c| {
            up_now(&svc, &lv, noon, |t| match t {
                "a" => a,
                "b" => b,
                _ => c,
            })
        };
        assert_eq!(now(Up, Up, Up), Some(true));
        assert_eq!(
            now(Degraded, Down, Up),
            Some(true),
            "one of the pair is enough"
        );
        assert_eq!(now(Down, Up, Up), Some(false));
        assert_eq!(now(Up, Down, Down), Some(false), "the whole pair down");
        assert_eq!(
            now(Maintenance, Up, Up),
            None,
            "planned work is not counted"
        );
        assert_eq!(now(Unreachable, Up, Up), None, "excluded by default");
        assert_eq!(now(Unmonitored, Up, Up), None);
        let strict = ServiceLevel {
            unreachable_counts_as_down: true,
            ..lv.clone()
        };
        assert_eq!(
            up_now(&svc, &strict, noon, |t| if t == "a" {
                Unreachable
            } else {
                Up
            }),
            Some(false)
        );
        // Outside business hours the service is not scheduled.
        let office = ServiceLevel {
            schedule: Schedule::BusinessHours(crate::time::schedule::BusinessHours::office()),
            ..lv
        };
        assert_eq!(up_now(&svc, &office, noon, |_| Down), Some(false));
        let night = crate::time::calendar::oslo_ms(2026, 10, 21, 23, 0);
        assert_eq!(up_now(&svc, &office, night, |_| Down), None);
    }

    /// Observed is what coverage counts: up, down, planned work and an
    /// excluded `unreachable` are; unmonitored is not; outside the
    /// schedule there is nothing to say.
    #[test]
    fn monitored_now_is_what_coverage_counts() {
        use State::*;
        let svc = service(&["a"], &[]);
        let lv = level(0.995);
        let noon = crate::time::calendar::oslo_ms(2026, 10, 21, 12, 0);
        let monitored = |s: State| now(&svc, &lv, noon, |_| s).map(|n| n.monitored);
        for s in [Up, Degraded, Down, Maintenance, Unreachable] {
            assert_eq!(monitored(s), Some(true), "{s:?}");
        }
        assert_eq!(monitored(Unmonitored), Some(false));
        let office = ServiceLevel {
            schedule: Schedule::BusinessHours(crate::time::schedule::BusinessHours::office()),
            ..lv
        };
        let night = crate::time::calendar::oslo_ms(2026, 10, 21, 23, 0);
        assert_eq!(now(&svc, &office, night, |_| Unmonitored), None);
    }
}
