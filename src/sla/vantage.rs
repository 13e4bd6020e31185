//! Several agents' views of one target made into one record: what the
//! region's figures are computed from when agents share a PostgreSQL
//! ledger (see [`crate::ledger::pg::Reader`]).
//!
//! At each instant the target is in the best state any agent that could
//! observe it saw: `up` when any agent saw it up, `down` only when every
//! agent that observed it saw it down (an agent that saw it `unreachable`
//! could not observe it: its own path was cut), `unmonitored` only when no
//! agent watched. A target's designated agent, where it has one, is
//! believed when it says `down`. Coverage is thus the union of the agents'
//! runs.
//!
//! Pure: views in, a timeline out.

use std::collections::{BTreeSet, HashMap};

use super::timeline::{build, StateKey, Timeline};
use crate::ledger::shared::Reader;
use crate::ledger::LedgerError;
use crate::model::State;
use crate::time::interval::{Interval, IntervalSet};

/// Best first: the state the merged record takes where views differ.
/// `maintenance` (a planned window an agent recorded live) sits above
/// `down`, since a failure inside a planned window is planned anyway.
const RANK: [State; 5] = [
    State::Up,
    State::Degraded,
    State::Maintenance,
    State::Down,
    State::Unreachable,
];

/// One agent's view of a target over the window.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub agent: &'a str,
    pub timeline: &'a Timeline,
}

fn set_of(t: &Timeline, s: State) -> IntervalSet {
    t.states.get(&StateKey::of(s)).cloned().unwrap_or_default()
}

/// The record of a target over `window` from its agents' views (built
/// without maintenance windows: apply those to the result, once).
/// `designated`: the agent whose `down` is believed whatever the others saw.
pub fn merge(window: Interval, views: &[View<'_>], designated: Option<&str>) -> Timeline {
    let mut claimed = IntervalSet::new();
    let mut merged = Timeline {
        window: Some(window),
        states: Default::default(),
    };
    if let Some(d) = designated {
        let forced = views
            .iter()
            .filter(|v| v.agent == d)
            .fold(IntervalSet::new(), |acc, v| {
                acc.union(&set_of(v.timeline, State::Down))
            })
            .restrict(window);
        claimed = forced.clone();
        merged.states.insert(StateKey::of(State::Down), forced);
    }
    for state in RANK {
        let seen = views
            .iter()
            .fold(IntervalSet::new(), |acc, v| {
                acc.union(&set_of(v.timeline, state))
            })
            .restrict(window)
            .difference(&claimed);
        claimed = claimed.union(&seen);
        let entry = merged.states.entry(StateKey::of(state)).or_default();
        *entry = entry.union(&seen);
    }
    merged.states.insert(
        StateKey::of(State::Unmonitored),
        IntervalSet::single(window).difference(&claimed),
    );
    merged.states.retain(|_, s| !s.is_empty());
    merged
}

/// The agents that saw the target `down` at some time in `span`, by name.
pub fn seen_down_by(views: &[View<'_>], span: Interval) -> Vec<String> {
    let span = IntervalSet::single(span);
    views
        .iter()
        .filter(|v| {
            !set_of(v.timeline, State::Down)
                .intersection(&span)
                .is_empty()
        })
        .map(|v| v.agent.to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// A target's record merged from its agents, with the views it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub timeline: Timeline,
    /// Each agent's own timeline (agents with several files: one per file).
    pub views: Vec<(String, Timeline)>,
}

impl Merged {
    pub fn views(&self) -> Vec<View<'_>> {
        as_views(&self.views)
    }
}

fn as_views(views: &[(String, Timeline)]) -> Vec<View<'_>> {
    views
        .iter()
        .map(|(agent, timeline)| View { agent, timeline })
        .collect()
}

/// Who watches a target (`targets[].agents`, `designated_agent`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Watch<'a> {
    /// Only these agents' views count; empty: every agent's.
    pub agents: &'a [String],
    pub designated: Option<&'a str>,
}

impl<'a> Watch<'a> {
    pub fn of(t: &'a crate::inventory::Target) -> Watch<'a> {
        Watch {
            agents: &t.agents,
            designated: t.designated_agent.as_deref(),
        }
    }
}

/// The merged record of `targets` over `window` from the shared ledger:
/// each file's runs and transitions make that agent's view, the views of
/// the agents that watch the target are merged, then the maintenance
/// `windows` applied once.
pub fn timelines<'a>(
    reader: &mut Reader,
    targets: impl IntoIterator<Item = &'a str>,
    window: Interval,
    windows: &[crate::maintenance::Window],
    watch: impl Fn(&str) -> Watch<'a>,
) -> Result<HashMap<String, Merged>, LedgerError> {
    let journals = reader.runs(window.start, window.end)?;
    let trs = reader.transitions_of(targets, &journals, window.start, window.end)?;
    let file_of: HashMap<i64, usize> = journals
        .iter()
        .enumerate()
        .flat_map(|(i, j)| j.runs.iter().map(move |r| (r.id, i)))
        .collect();
    Ok(trs
        .into_iter()
        .map(|(target, rows)| {
            let mut own: Vec<Vec<_>> = vec![Vec::new(); journals.len()];
            for r in rows {
                if let Some(&i) = file_of.get(&r.run_id) {
                    own[i].push(r);
                }
            }
            let w = watch(&target);
            let views: Vec<(String, Timeline)> = journals
                .iter()
                .zip(&own)
                .filter(|(j, _)| w.agents.is_empty() || w.agents.contains(&j.agent))
                .map(|(j, rows)| (j.agent.clone(), build(window, &j.runs, rows, None, 0)))
                .collect();
            let planned = crate::maintenance::of_target(windows, &target, window);
            let timeline =
                merge(window, &as_views(&views), w.designated).with_maintenance(&planned);
            (target, Merged { timeline, views })
        })
        .collect())
}

/// A service's figures for `month` from the record merged across the
/// agents, as [`super::compute_service_month`] computes them from one
/// agent's file (closed months are not frozen in the shared record yet:
/// always computed).
pub fn service_month(
    reader: &mut Reader,
    inv: &crate::inventory::Inventory,
    service: &crate::inventory::Service,
    month: crate::time::calendar::Month,
    windows: &[crate::maintenance::Window],
    now_ms: i64,
) -> Result<Option<super::ServiceMonth>, LedgerError> {
    let Some((level, window)) = super::month_level(service, month, now_ms) else {
        return Ok(None);
    };
    let targets = service
        .targets
        .iter()
        .chain(service.redundancy.iter().flatten())
        .map(String::as_str);
    let merged = timelines(reader, targets, window, windows, |t| {
        inv.target(t).map(Watch::of).unwrap_or_default()
    })?;
    let figures = super::service::figures(service, level, window, |t| {
        merged
            .get(t)
            .map(|m| m.timeline.clone())
            .unwrap_or_else(|| build(window, &[], &[], None, 0))
    });
    Ok(Some((level.clone(), window, figures)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Interval = Interval { start: 0, end: 100 };

    fn tl(parts: &[(State, i64, i64)]) -> Timeline {
        let mut t = Timeline {
            window: Some(W),
            states: Default::default(),
        };
        for &(s, a, b) in parts {
            let e = t.states.entry(StateKey::of(s)).or_default();
            *e = e.union(&IntervalSet::single(Interval::new(a, b)));
        }
        // What the agent did not say is unmonitored, as in a built timeline.
        let said = t
            .states
            .values()
            .fold(IntervalSet::new(), |acc, s| acc.union(s));
        let gaps = IntervalSet::single(W).difference(&said);
        if !gaps.is_empty() {
            t.states.insert(StateKey::of(State::Unmonitored), gaps);
        }
        t
    }

    fn two<'a>(a: &'a Timeline, b: &'a Timeline) -> [View<'a>; 2] {
        [
            View {
                agent: "a",
                timeline: a,
            },
            View {
                agent: "b",
                timeline: b,
            },
        ]
    }

    fn spans(t: &Timeline, s: State) -> Vec<(i64, i64)> {
        set_of(t, s)
            .spans()
            .iter()
            .map(|i| (i.start, i.end))
            .collect()
    }

    #[test]
    fn a_fault_one_agent_sees_is_not_an_outage() {
        // a's own uplink fails (30..60): a sees the target down (or
        // unreachable behind its uplink); b sees it up throughout.
        let a = tl(&[
            (State::Up, 0, 30),
            (State::Down, 30, 60),
            (State::Up, 60, 100),
        ]);
        let b = tl(&[(State::Up, 0, 100)]);
        let views = two(&a, &b);
        let m = merge(W, &views, None);
        assert_eq!(spans(&m, State::Up), vec![(0, 100)]);
        assert_eq!(m.ms(State::Down), 0);
        assert_eq!(m.summary().coverage, 1.0);
    }

    #[test]
    fn a_fault_both_see_is_one_outage_listing_both_from_when_they_agree() {
        let a = tl(&[
            (State::Up, 0, 30),
            (State::Down, 30, 60),
            (State::Up, 60, 100),
        ]);
        let b = tl(&[
            (State::Up, 0, 35),
            (State::Down, 35, 62),
            (State::Up, 62, 100),
        ]);
        let views = two(&a, &b);
        let m = merge(W, &views, None);
        assert_eq!(spans(&m, State::Down), vec![(35, 60)]);
        assert_eq!(seen_down_by(&views, Interval::new(35, 60)), vec!["a", "b"]);
        // Before it, only one agent's view of a different fault.
        assert_eq!(
            seen_down_by(&views, Interval::new(0, 30)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn an_agent_that_cannot_observe_does_not_outvote_one_that_sees_down() {
        // b's path is cut (unreachable behind its uplink): a's down stands.
        let a = tl(&[(State::Down, 0, 100)]);
        let b = tl(&[(State::Unreachable, 0, 100)]);
        let views = two(&a, &b);
        assert_eq!(spans(&merge(W, &views, None), State::Down), vec![(0, 100)]);
        // Unreachable from every agent: unreachable.
        let views = [View {
            agent: "b",
            timeline: &b,
        }];
        assert_eq!(
            spans(&merge(W, &views, None), State::Unreachable),
            vec![(0, 100)]
        );
    }

    #[test]
    fn one_agent_stopped_leaves_coverage_whole_and_none_leaves_it_unmonitored() {
        // a is stopped 20..50 (unmonitored), b runs 0..40 and 45..100.
        let a = tl(&[(State::Up, 0, 20), (State::Up, 50, 100)]);
        let b = tl(&[(State::Up, 0, 40), (State::Up, 45, 100)]);
        let views = two(&a, &b);
        let m = merge(W, &views, None);
        assert_eq!(spans(&m, State::Unmonitored), vec![(40, 45)]);
        assert_eq!(spans(&m, State::Up), vec![(0, 40), (45, 100)]);
        // No view at all: nothing was watched.
        let m = merge(W, &[], None);
        assert_eq!(spans(&m, State::Unmonitored), vec![(0, 100)]);
        assert_eq!(m.summary().coverage, 0.0);
    }

    #[test]
    fn the_designated_agent_is_believed_when_it_says_down() {
        let a = tl(&[
            (State::Up, 0, 30),
            (State::Down, 30, 60),
            (State::Up, 60, 100),
        ]);
        let b = tl(&[(State::Up, 0, 100)]);
        let views = two(&a, &b);
        let m = merge(W, &views, Some("a"));
        assert_eq!(spans(&m, State::Down), vec![(30, 60)]);
        assert_eq!(spans(&m, State::Up), vec![(0, 30), (60, 100)]);
        // b designated: its up wins, a's down is outvoted as before.
        assert_eq!(merge(W, &views, Some("b")).ms(State::Down), 0);
    }

    #[test]
    fn the_merged_states_partition_the_window_and_one_view_is_itself() {
        let a = tl(&[
            (State::Up, 0, 10),
            (State::Degraded, 10, 25),
            (State::Down, 25, 40),
            (State::Maintenance, 55, 70),
            (State::Unreachable, 70, 90),
        ]);
        let b = tl(&[
            (State::Down, 5, 30),
            (State::Up, 30, 50),
            (State::Degraded, 80, 100),
        ]);
        let both = two(&a, &b);
        for views in [&both[..1], &both[..]] {
            let m = merge(W, views, None);
            let total: i64 = m.states.values().map(IntervalSet::len).sum();
            assert_eq!(total, W.len(), "{m:?}");
            let union = m
                .states
                .values()
                .fold(IntervalSet::new(), |acc, s| acc.union(s));
            assert_eq!(union, IntervalSet::single(W));
            if views.len() == 1 {
                assert_eq!(m, a);
            }
        }
    }
}
