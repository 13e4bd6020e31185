//! Each service's state now, from its targets' shown states:
//! `utkikk_service_up` and `utkikk_service_root_cause`, and the next
//! instant at which a schedule or a service level could change them.

use std::collections::{HashMap, HashSet};

use crate::inventory::Inventory;
use crate::metrics::Metrics;
use crate::model::State;
use crate::time::interval::Interval;
use crate::time::oslo;

/// The root causes last exported per service, to withdraw those that no
/// longer are.
#[derive(Debug, Default)]
pub struct ServicesNow {
    causes: HashMap<String, Vec<String>>,
}

impl ServicesNow {
    /// Export every service's state at `now_ms`; `shown` gives a target's
    /// shown state and, when it fails, its root cause.
    pub fn update(
        &mut self,
        inv: &Inventory,
        now_ms: i64,
        shown: impl Fn(&str) -> (State, Option<String>),
        metrics: &Metrics,
    ) {
        let Some(today) = oslo::date_of(now_ms) else {
            return;
        };
        let state_of = |t: &str| shown(t).0;
        let mut seen = HashSet::new();
        for svc in &inv.services {
            seen.insert(svc.id.as_str());
            // A service with a part this agent does not watch
            // (`targets[].agents`) is another agent's to tell: no series
            // here, rather than one unmonitored for ever.
            let watched = svc
                .targets
                .iter()
                .chain(svc.redundancy.iter().flatten())
                .all(|t| inv.target(t).is_none_or(|t| t.watched_by(&inv.agent.id)));
            let now = svc
                .level_on(today)
                .filter(|_| watched)
                .and_then(|level| crate::sla::service::now(svc, level, now_ms, state_of));
            let up = now.and_then(|n| n.up);
            metrics.set_service_up(&svc.id, up);
            metrics.set_service_monitored(&svc.id, now.map(|n| n.monitored));
            // The failing required targets, and the members of groups
            // with none up.
            let mut now_causes: Vec<String> = if up == Some(false) {
                let up_now = |t: &String| matches!(state_of(t), State::Up | State::Degraded);
                svc.targets
                    .iter()
                    .chain(
                        svc.redundancy
                            .iter()
                            .filter(|g| !g.iter().any(up_now))
                            .flatten(),
                    )
                    .filter_map(|t| shown(t).1)
                    .collect()
            } else {
                Vec::new()
            };
            now_causes.sort();
            now_causes.dedup();
            let before = self.causes.remove(&svc.id).unwrap_or_default();
            let gone: Vec<String> = before
                .into_iter()
                .filter(|c| !now_causes.contains(c))
                .collect();
            metrics.set_service_root_causes(&svc.id, &now_causes, &gone);
            if !now_causes.is_empty() {
                self.causes.insert(svc.id.clone(), now_causes);
            }
        }
        // Services removed by a reload.
        let removed: Vec<String> = self
            .causes
            .keys()
            .filter(|k| !seen.contains(k.as_str()))
            .cloned()
            .collect();
        for svc in removed {
            if let Some(gone) = self.causes.remove(&svc) {
                metrics.set_service_root_causes(&svc, &[], &gone);
            }
        }
    }
}

/// The next instant after `now_ms` at which a service's schedule opens or
/// closes, or a day (and with it the level in force) begins.
pub fn next_boundary(inv: &Inventory, now_ms: i64) -> Option<i64> {
    let today = oslo::date_of(now_ms)?;
    let midnight = today.succ_opt().and_then(oslo::day_start)?;
    let ahead = Interval::new(now_ms, midnight);
    inv.services
        .iter()
        .filter_map(|s| s.level_on(today))
        .flat_map(|l| {
            l.schedule
                .within(ahead)
                .spans()
                .iter()
                .flat_map(|i| [i.start, i.end])
                .collect::<Vec<_>>()
        })
        .filter(|t| *t > now_ms)
        .chain([midnight])
        .min()
}
