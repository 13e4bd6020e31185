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

use super::timeline::{build, run_spans, StateKey, Timeline};
use crate::ledger::shared::{Journal, Reader};
use crate::ledger::store::{Rows, RunRow, TransitionRow};
use crate::ledger::{LedgerError, Store};
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

/// A run not stopped whose last sign of life reached the shared record
/// this recently is taken to be going on: three heartbeats (the copy
/// follows each within seconds).
pub const RUNNING_WITHIN_MS: i64 = 3 * crate::ledger::HEARTBEAT.as_millis() as i64;

/// Each target's rows from the shared ledger, split by the file (journal)
/// they came from, of the files whose agent watches it.
struct Read<'a> {
    journals: Vec<Journal>,
    /// Per target, in id order: who watches it, and its rows in each
    /// watching file.
    rows: Vec<(String, Watch<'a>, Vec<FileRows>)>,
}

/// A file's index in [`Read::journals`] and a target's rows there.
type FileRows = (usize, Vec<TransitionRow>);

fn read<'a>(
    reader: &mut Reader,
    targets: impl IntoIterator<Item = &'a str>,
    window: Interval,
    watch: impl Fn(&str) -> Watch<'a>,
) -> Result<Read<'a>, LedgerError> {
    let mut journals = reader.runs(window.start, window.end)?;
    // An agent running now has its last run copied up to its last
    // heartbeat, a few seconds ago: it goes on (as an agent's own current
    // run lasts until now), so the region's last seconds are not
    // unmonitored and an outage still going is not shown as over.
    let now = chrono::Utc::now().timestamp_millis();
    for j in &mut journals {
        if let Some(last) = j.runs.last_mut() {
            if !last.clean && last.end_ms >= now - RUNNING_WITHIN_MS && window.end <= now + 1 {
                last.end_ms = last.end_ms.max(window.end);
            }
        }
    }
    let trs = reader.transitions_of(targets, &journals, window.start, window.end)?;
    let file_of: HashMap<i64, usize> = journals
        .iter()
        .enumerate()
        .flat_map(|(i, j)| j.runs.iter().map(move |r| (r.id, i)))
        .collect();
    let mut rows: Vec<_> = trs
        .into_iter()
        .map(|(target, rows)| {
            let mut own: Vec<Vec<TransitionRow>> = vec![Vec::new(); journals.len()];
            for r in rows {
                if let Some(&i) = file_of.get(&r.run_id) {
                    own[i].push(r);
                }
            }
            let w = watch(&target);
            let own = own
                .into_iter()
                .enumerate()
                .filter(|(i, _)| w.agents.is_empty() || w.agents.contains(&journals[*i].agent))
                .collect();
            (target, w, own)
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Read { journals, rows })
}

impl Read<'_> {
    /// One target's view from each watching file over `window`.
    fn views(
        &self,
        own: &[(usize, Vec<TransitionRow>)],
        window: Interval,
    ) -> Vec<(String, Timeline)> {
        own.iter()
            .map(|(i, rows)| {
                let j = &self.journals[*i];
                (j.agent.clone(), build(window, &j.runs, rows, None, 0))
            })
            .collect()
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
    let read = read(reader, targets, window, watch)?;
    Ok(read
        .rows
        .iter()
        .map(|(target, w, own)| {
            let views = read.views(own, window);
            let planned = crate::maintenance::of_target(windows, target, window);
            let timeline =
                merge(window, &as_views(&views), w.designated).with_maintenance(&planned);
            (target.clone(), Merged { timeline, views })
        })
        .collect())
}

/// The region's record of every target of `inv` over `window`, made into
/// a ledger of its own in memory ([`Store::in_memory`]): what is computed
/// from one agent's file (outages and their root causes, services
/// affected, reports, status pages) is then computed the same way from
/// the record merged across the agents.
///
/// Its runs are the union of the agents' runs; each target moves to its
/// merged state at each change, with the reason of an agent that saw that
/// state (its designated agent first). Planned maintenance is not in the
/// transitions: `windows` go in as windows, applied by whoever reads, as
/// with a file: the region's ([`Reader::windows`]), with the operators'
/// notes on outages. A link's daily figures are one agent's per day (its
/// designated agent's where it kept some): two agents' echoes of one link
/// are not added up. `only`: the targets wanted (a member's, see
/// [`super::outages::scope`]); `None`: all.
pub fn materialise(
    reader: &mut Reader,
    inv: &crate::inventory::Inventory,
    window: Interval,
    only: Option<&std::collections::HashSet<String>>,
) -> Result<Store, LedgerError> {
    let windows = reader.windows()?;
    let notes = reader.notes(window.end.saturating_add(1))?;
    // A millisecond either side, so that an outage already going at the
    // window's start (or still going at its end) says so.
    let ext = Interval::new(window.start.saturating_sub(1), window.end.saturating_add(1));
    let read = read(
        reader,
        inv.targets
            .iter()
            .map(|t| t.id.as_str())
            .filter(|t| only.is_none_or(|o| o.contains(*t))),
        ext,
        |t| inv.target(t).map(Watch::of).unwrap_or_default(),
    )?;
    let covered = IntervalSet::from_intervals(read.journals.iter().flat_map(|j| {
        run_spans(&j.runs, None, 0)
            .map(|(_, i)| i)
            .collect::<Vec<_>>()
    }))
    .restrict(ext);
    let mut rows = Rows {
        runs: covered
            .spans()
            .iter()
            .zip(1..)
            .map(|(i, id)| RunRow {
                id,
                started_ms: i.start,
                end_ms: i.end,
                clean: true,
            })
            .collect(),
        windows,
        notes,
        ..Rows::default()
    };
    for (target, w, own) in &read.rows {
        let views = read.views(own, ext);
        let merged = merge(ext, &as_views(&views), w.designated);
        // Whose rows say why: the designated agent's first.
        let mut order: Vec<&FileRows> = own.iter().collect();
        order.sort_by_key(|(i, _)| Some(read.journals[*i].agent.as_str()) != w.designated);
        let why = |state: &str, at: i64| {
            order.iter().find_map(|(_, rows)| {
                let n = rows.partition_point(|r| r.at_ms <= at);
                rows.get(n.checked_sub(1)?)
                    .filter(|r| r.to_state == state)
                    .map(|r| (r.reason.clone(), r.reason_code.clone()))
            })
        };
        let mut segments: Vec<(Interval, State)> = merged
            .states
            .iter()
            .flat_map(|(k, set)| set.spans().iter().map(move |i| (*i, k.state())))
            .collect();
        segments.sort_by_key(|(i, _)| i.start);
        for run in &rows.runs {
            let mut was = State::Unmonitored;
            for (span, state) in segments
                .iter()
                .filter(|(i, _)| i.start < run.end_ms && i.end > run.started_ms)
            {
                if *state == was {
                    continue;
                }
                let at = span.start.max(run.started_ms);
                let (reason, reason_code) = why(state.as_str(), at).unwrap_or_default();
                rows.transitions.push(TransitionRow {
                    run_id: run.id,
                    target: target.clone(),
                    from_state: was.as_str().to_string(),
                    to_state: state.as_str().to_string(),
                    at_ms: at,
                    reason,
                    reason_code,
                    root_cause: None,
                });
                was = *state;
            }
        }
        let down: Vec<(String, IntervalSet)> = views
            .iter()
            .map(|(agent, t)| (agent.clone(), set_of(t, State::Down)))
            .filter(|(_, s)| !s.is_empty())
            .collect();
        if !down.is_empty() {
            rows.seen_down.insert(target.clone(), down);
        }
    }
    rows.link_days = link_days(reader, inv, &read.journals, window)?;
    // The region's frozen months: the window's, and the history before.
    let month_of = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(crate::time::oslo::month_of)
            .and_then(|m| crate::time::calendar::Month::parse(&m))
    };
    if let (Some(first), Some(last)) = (month_of(window.start), month_of(window.end - 1)) {
        let oldest = (0..super::HISTORY_MONTHS).fold(first, |m, _| m.prev());
        rows.frozen = reader.frozen(&oldest.to_string(), &last.to_string())?;
    }
    let mut store = Store::in_memory()?;
    store.import(REGION, rows)?;
    Ok(store)
}

/// The agent named by the runs of a merged record.
pub const REGION: &str = "region";

/// The links' daily figures for the days `window` touches: per link
/// and day, one agent's rows (its designated agent's, if it kept any;
/// else the first watching agent's that did).
fn link_days(
    reader: &mut Reader,
    inv: &crate::inventory::Inventory,
    journals: &[Journal],
    window: Interval,
) -> Result<Vec<(String, i64, i64, String)>, LedgerError> {
    let links: Vec<&str> = inv
        .targets
        .iter()
        .filter(|t| t.kind == crate::inventory::TargetKind::Link)
        .map(|t| t.id.as_str())
        .collect();
    // Every day the window touches: a day's row is dated at its start.
    let first_day = crate::time::oslo::date_of(window.start)
        .and_then(crate::time::oslo::day_start)
        .unwrap_or(window.start)
        .min(window.start);
    let all = reader.link_days(&links, journals, first_day, window.end)?;
    let agent_of: HashMap<i64, &str> = journals
        .iter()
        .flat_map(|j| j.runs.iter().map(move |r| (r.id, j.agent.as_str())))
        .collect();
    // (target, day) → the agent chosen.
    let mut chosen: HashMap<(&str, i64), &str> = HashMap::new();
    for (target, day, run, _) in &all {
        let (Some(agent), Some(t)) = (agent_of.get(run), inv.target(target)) else {
            continue;
        };
        let w = Watch::of(t);
        if !w.agents.is_empty() && !w.agents.iter().any(|a| a == agent) {
            continue;
        }
        let slot = chosen.entry((target.as_str(), *day)).or_insert(agent);
        if w.designated == Some(*agent) {
            *slot = agent;
        }
    }
    Ok(all
        .iter()
        .filter(|(target, day, run, _)| {
            agent_of
                .get(run)
                .is_some_and(|a| chosen.get(&(target.as_str(), *day)) == Some(a))
        })
        .cloned()
        .collect())
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
