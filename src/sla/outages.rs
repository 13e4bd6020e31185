//! Outages: each stretch of time a target was `down` (it is the root cause;
//! targets `unreachable` behind it are not outages of their own), with the
//! services that were down meanwhile and the members those serve.

use serde::Serialize;

use super::interval::{Interval, IntervalSet};
use crate::health::State;
use crate::ledger::store::{RunRow, TransitionRow};

/// One outage, clipped to the window asked about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outage {
    pub target: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Why it went down (the transition's reason).
    pub reason: Option<String>,
    /// It began before the window.
    pub continues_before: bool,
    /// It lasted past the window (or lasts still).
    pub continues_after: bool,
}

/// The `down` stretches of one target in `window`, from its transitions.
/// A run that ends while down ends the outage there: after that the time
/// is unmonitored, not down.
pub fn down_spans(
    target: &str,
    window: Interval,
    runs: &[RunRow],
    transitions: &[TransitionRow],
    current_run: Option<i64>,
    now_ms: i64,
) -> Vec<Outage> {
    let mut out = Vec::new();
    let mut prev_end = i64::MIN;
    for run in runs {
        let end = if Some(run.id) == current_run {
            now_ms.max(run.end_ms)
        } else {
            run.end_ms
        };
        let start = run.started_ms.max(prev_end);
        if end <= start {
            continue;
        }
        prev_end = end;
        let mut open: Option<(i64, Option<String>)> = None;
        let close = |from: i64, to: i64, reason: Option<String>, out: &mut Vec<Outage>| {
            let clipped = Interval::new(from, to).intersect(&window);
            if !clipped.is_empty() {
                out.push(Outage {
                    target: target.to_string(),
                    start_ms: clipped.start,
                    end_ms: clipped.end,
                    reason,
                    continues_before: from < window.start,
                    continues_after: to > window.end
                        || (Some(run.id) == current_run && to >= now_ms),
                });
            }
        };
        for tr in transitions.iter().filter(|t| t.run_id == run.id) {
            let at = tr.at_ms.clamp(start, end);
            let down = tr.to_state == State::Down.as_str();
            match (&open, down) {
                (None, true) => open = Some((at, tr.reason.clone())),
                (Some((from, reason)), false) => {
                    close(*from, at, reason.clone(), &mut out);
                    open = None;
                }
                _ => {}
            }
        }
        if let Some((from, reason)) = open {
            close(from, end, reason, &mut out);
        }
    }
    out
}

/// Whether `span` overlaps `set`.
pub fn overlaps(set: &IntervalSet, span: Interval) -> bool {
    !set.restrict(span).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: i64, s: i64, e: i64) -> RunRow {
        RunRow {
            id,
            started_ms: s,
            end_ms: e,
            clean: true,
        }
    }

    fn tr(run_id: i64, at: i64, to: &str, reason: &str) -> TransitionRow {
        TransitionRow {
            run_id,
            target: "t".into(),
            from_state: String::new(),
            to_state: to.into(),
            at_ms: at,
            reason: Some(reason.into()),
            root_cause: None,
        }
    }

    #[test]
    fn spans_are_split_at_the_window_and_end_with_the_run() {
        let runs = [run(1, 0, 1000), run(2, 2000, 3000)];
        let trs = [
            tr(1, 100, "up", "ok"),
            tr(1, 200, "down", "link cut"),
            tr(1, 300, "up", "ok"),
            tr(1, 900, "down", "host silent"),
            tr(2, 2100, "up", "ok"),
        ];
        let all = down_spans("t", Interval::new(0, 5000), &runs, &trs, None, 0);
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].start_ms, all[0].end_ms), (200, 300));
        assert_eq!(all[0].reason.as_deref(), Some("link cut"));
        // The run died while down: the outage ends with it (then: unmonitored).
        assert_eq!((all[1].start_ms, all[1].end_ms), (900, 1000));
        // A window boundary inside an outage: clipped and flagged.
        let part = down_spans("t", Interval::new(250, 950), &runs, &trs, None, 0);
        assert_eq!((part[0].start_ms, part[0].end_ms), (250, 300));
        assert!(part[0].continues_before && !part[0].continues_after);
        assert_eq!((part[1].start_ms, part[1].end_ms), (900, 950));
        assert!(part[1].continues_after);
    }
}
