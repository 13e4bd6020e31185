//! A target's state over a window, rebuilt from the ledger: every run of the
//! agent starts its targets `unmonitored` and moves them by the recorded
//! transitions; time outside every run (the agent stopped, or dead between
//! its last sign of life and its next start) is `unmonitored`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ledger::store::{RunRow, TransitionRow};
use crate::model::State;
use crate::time::interval::{Interval, IntervalSet};

/// Where a target was in each state during a window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    pub window: Option<Interval>,
    pub states: BTreeMap<StateKey, IntervalSet>,
}

/// `State` with an order, for map keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StateKey(pub u8);

impl StateKey {
    pub fn of(s: State) -> Self {
        StateKey(State::ALL.iter().position(|x| *x == s).unwrap_or(0) as u8)
    }
    pub fn state(self) -> State {
        State::ALL
            .get(self.0 as usize)
            .copied()
            .unwrap_or(State::Unmonitored)
    }
}

pub fn parse_state(s: &str) -> State {
    State::ALL
        .iter()
        .copied()
        .find(|x| x.as_str() == s)
        .unwrap_or(State::Unmonitored)
}

/// The time each run covered: a run still going (`current_run`) lasts
/// until now; clocks can step back, so runs never overlap.
pub fn run_spans(
    runs: &[RunRow],
    current_run: Option<i64>,
    now_ms: i64,
) -> impl Iterator<Item = (&RunRow, Interval)> {
    let mut prev_end = i64::MIN;
    runs.iter().filter_map(move |run| {
        let end = if Some(run.id) == current_run {
            now_ms.max(run.end_ms)
        } else {
            run.end_ms
        };
        let start = run.started_ms.max(prev_end);
        if end <= start {
            return None;
        }
        prev_end = end;
        Some((run, Interval::new(start, end)))
    })
}

/// Build the timeline of one target over `window` from its runs (in start
/// order) and its transitions (in time order). `now_ms` ends the run that is
/// still going (the last run, if `current_run` names it).
pub fn build(
    window: Interval,
    runs: &[RunRow],
    transitions: &[TransitionRow],
    current_run: Option<i64>,
    now_ms: i64,
) -> Timeline {
    let mut pieces: BTreeMap<StateKey, Vec<Interval>> = BTreeMap::new();
    let mut covered: Vec<Interval> = Vec::new();
    for (run, Interval { start, end }) in run_spans(runs, current_run, now_ms) {
        covered.push(Interval::new(start, end));
        let mut state = State::Unmonitored;
        let mut t = start;
        for tr in transitions.iter().filter(|tr| tr.run_id == run.id) {
            let at = tr.at_ms.clamp(start, end);
            if at > t {
                pieces
                    .entry(StateKey::of(state))
                    .or_default()
                    .push(Interval::new(t, at));
                t = at;
            }
            state = parse_state(&tr.to_state);
        }
        if end > t {
            pieces
                .entry(StateKey::of(state))
                .or_default()
                .push(Interval::new(t, end));
        }
    }
    let mut states: BTreeMap<StateKey, IntervalSet> = pieces
        .into_iter()
        .map(|(k, v)| (k, IntervalSet::from_intervals(v).restrict(window)))
        .collect();
    let gaps = IntervalSet::single(window).difference(&IntervalSet::from_intervals(covered));
    let unmon = states
        .remove(&StateKey::of(State::Unmonitored))
        .unwrap_or_default()
        .union(&gaps);
    states.insert(StateKey::of(State::Unmonitored), unmon);
    states.retain(|_, s| !s.is_empty());
    Timeline {
        window: Some(window),
        states,
    }
}

/// [`build`], with the target's maintenance windows counted as planned.
pub fn build_planned(
    target: &str,
    windows: &[crate::maintenance::Window],
    window: Interval,
    runs: &[RunRow],
    transitions: &[TransitionRow],
    current_run: Option<i64>,
    now_ms: i64,
) -> Timeline {
    let planned = crate::maintenance::of_target(windows, target, window);
    build(window, runs, transitions, current_run, now_ms).with_maintenance(&planned)
}

/// Time in each state and the figures derived from it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Seconds in each state (all six listed).
    pub seconds: BTreeMap<&'static str, f64>,
    pub total_seconds: f64,
    /// (up + degraded) ÷ (total − unmonitored − maintenance − unreachable):
    /// `degraded` counts as up and `unreachable` belongs to its root cause,
    /// the service-level defaults. `None` ("no data") when nothing counted.
    pub availability: Option<f64>,
    /// Monitored ÷ total.
    pub coverage: f64,
}

impl Timeline {
    /// Planned time: what was observed inside `planned` counts as
    /// `maintenance`. Unmonitored time stays unmonitored: nothing was seen.
    pub fn with_maintenance(mut self, planned: &IntervalSet) -> Timeline {
        if planned.is_empty() {
            return self;
        }
        let keep = [
            StateKey::of(State::Unmonitored),
            StateKey::of(State::Maintenance),
        ];
        let mut moved = IntervalSet::new();
        for (k, set) in self.states.iter_mut() {
            if keep.contains(k) {
                continue;
            }
            moved = moved.union(&set.intersection(planned));
            *set = set.difference(planned);
        }
        let m = self
            .states
            .entry(StateKey::of(State::Maintenance))
            .or_default();
        *m = m.union(&moved);
        self.states.retain(|_, s| !s.is_empty());
        self
    }

    pub fn ms(&self, s: State) -> i64 {
        self.states
            .get(&StateKey::of(s))
            .map_or(0, IntervalSet::len)
    }

    pub fn summary(&self) -> Summary {
        let total = self.window.map_or(0, |w| w.len());
        let seconds = State::ALL
            .iter()
            .map(|s| (s.as_str(), self.ms(*s) as f64 / 1e3))
            .collect();
        let up = self.ms(State::Up) + self.ms(State::Degraded);
        let counted = total
            - self.ms(State::Unmonitored)
            - self.ms(State::Maintenance)
            - self.ms(State::Unreachable);
        Summary {
            seconds,
            total_seconds: total as f64 / 1e3,
            availability: (counted > 0).then(|| up as f64 / counted as f64),
            coverage: if total > 0 {
                (total - self.ms(State::Unmonitored)) as f64 / total as f64
            } else {
                0.0
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: i64, start: i64, end: i64) -> RunRow {
        RunRow {
            id,
            started_ms: start,
            end_ms: end,
            clean: true,
        }
    }

    fn tr(run_id: i64, at: i64, to: State) -> TransitionRow {
        TransitionRow {
            run_id,
            target: "t".into(),
            from_state: String::new(),
            to_state: to.as_str().into(),
            at_ms: at,
            reason: None,
            reason_code: None,
            root_cause: None,
        }
    }

    #[test]
    fn gaps_between_runs_are_unmonitored_never_up() {
        // Run 1: 0..100, up from 10, down 50..60. Agent dead 100..200.
        // Run 2: 200..300, up from 205.
        let runs = [run(1, 0, 100), run(2, 200, 300)];
        let trs = [
            tr(1, 10, State::Up),
            tr(1, 50, State::Down),
            tr(1, 60, State::Up),
            tr(2, 205, State::Up),
        ];
        let t = build(Interval::new(0, 400), &runs, &trs, None, 0);
        assert_eq!(t.ms(State::Up), 40 + 40 + 95);
        assert_eq!(t.ms(State::Down), 10);
        // 0..10, 100..200, 200..205, 300..400
        assert_eq!(t.ms(State::Unmonitored), 10 + 100 + 5 + 100);
        let s = t.summary();
        assert_eq!(s.availability, Some(175.0 / 185.0));
        assert!((s.coverage - 185.0 / 400.0).abs() < 1e-12);
    }

    #[test]
    fn the_state_before_the_window_carries_in_and_the_current_run_ends_now() {
        let runs = [run(7, 0, 50)];
        let trs = [tr(7, 5, State::Down)];
        let t = build(Interval::new(100, 200), &runs, &trs, Some(7), 150);
        assert_eq!(t.ms(State::Down), 50);
        assert_eq!(t.ms(State::Unmonitored), 50);
    }

    #[test]
    fn no_observed_time_is_no_data_not_100_percent() {
        let t = build(Interval::new(0, 100), &[], &[], None, 0);
        let s = t.summary();
        assert_eq!(s.availability, None);
        assert_eq!(s.coverage, 0.0);
        assert_eq!(s.seconds["unmonitored"], 0.1);
    }

    #[test]
    fn maintenance_covers_what_was_seen_not_what_was_not() {
        let runs = [run(1, 0, 100)];
        let trs = [
            tr(1, 10, State::Up),
            tr(1, 40, State::Down),
            tr(1, 60, State::Up),
        ];
        let planned = IntervalSet::single(Interval::new(0, 50));
        let t = build(Interval::new(0, 100), &runs, &trs, None, 0).with_maintenance(&planned);
        assert_eq!(t.ms(State::Unmonitored), 10);
        assert_eq!(t.ms(State::Maintenance), 40);
        assert_eq!(t.ms(State::Down), 10);
        assert_eq!(t.ms(State::Up), 40);
        assert_eq!(t.summary().availability, Some(0.8));
    }

    #[test]
    fn unreachable_is_excluded_degraded_counts_as_up() {
        let runs = [run(1, 0, 100)];
        let trs = [
            tr(1, 0, State::Up),
            tr(1, 20, State::Degraded),
            tr(1, 40, State::Unreachable),
            tr(1, 60, State::Down),
            tr(1, 80, State::Up),
        ];
        let s = build(Interval::new(0, 100), &runs, &trs, None, 0).summary();
        assert_eq!(s.availability, Some(60.0 / 80.0));
        assert_eq!(s.coverage, 1.0);
    }
}
