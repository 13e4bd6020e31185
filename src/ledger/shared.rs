//! Reading the shared record in PostgreSQL: every agent's runs and
//! transitions, as copied there by [`super::pg::Shipper`], kept apart by
//! the file (journal) they came from. Merging the agents' views into the
//! region's record is [`crate::sla::vantage`]'s work; this module only
//! reads rows.
//!
//! Owns: queries on the shared schema. Must not touch: HTTP, probes,
//! states, the SQLite file.

use std::collections::HashMap;

use postgres::Client;

use super::pg::{self, pg as pg_error};
use super::store::{FrozenRow, RunRow, TransitionRow};
use super::{LedgerError, OutageNote};
use crate::maintenance::{Origin, Spec, Window};
use crate::model::secret::Secret;

/// The runs of one agent's file that overlap a window, in start order.
/// Their ids are the server's, unique across files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    pub journal: String,
    pub agent: String,
    pub runs: Vec<RunRow>,
}

/// A connection that reads the shared record.
pub struct Reader {
    client: Client,
}

impl Reader {
    /// Connect; the schema must be the one this utkikk writes (an agent
    /// brings it up to date at start; a reader changes nothing).
    pub fn connect(url: &Secret, ca_pem: Option<&[u8]>) -> Result<Reader, LedgerError> {
        let mut client = pg::connect(url, ca_pem)?;
        let have = pg::schema_version(&mut client)?;
        let want = pg::MIGRATIONS.len() as i64;
        if have != want {
            return Err(LedgerError::Db(format!(
                "the PostgreSQL ledger's schema is version {have}, this utkikk reads {want}; {}",
                if have < want {
                    "start an agent of this version on it first"
                } else {
                    "upgrade utkikk"
                }
            )));
        }
        Ok(Reader { client })
    }

    /// Each file's runs overlapping `[from, to)`, by agent; a run still going ends
    /// at its last sign of life copied here.
    pub fn runs(&mut self, from_ms: i64, to_ms: i64) -> Result<Vec<Journal>, LedgerError> {
        let rows = self
            .client
            .query(
                "SELECT journal, agent, id, started_ms, coalesce(stopped_ms, last_seen_ms), clean FROM runs
                 WHERE started_ms < $2 AND coalesce(stopped_ms, last_seen_ms) >= $1
                 ORDER BY agent, journal, started_ms, local_id",
                &[&from_ms, &to_ms],
            )
            .map_err(pg_error)?;
        let mut out: Vec<Journal> = Vec::new();
        for r in rows {
            let journal: String = r.get(0);
            let run = RunRow {
                id: r.get(2),
                started_ms: r.get(3),
                end_ms: r.get(4),
                clean: r.get::<_, i16>(5) != 0,
            };
            match out.last_mut() {
                Some(j) if j.journal == journal => j.runs.push(run),
                _ => out.push(Journal {
                    journal,
                    agent: r.get(1),
                    runs: vec![run],
                }),
            }
        }
        Ok(out)
    }

    /// The transitions of each of `targets` in the given runs that matter
    /// for `[from, to)`: those inside it and, per run, the last one before
    /// it (the state the window opens in). In time order per run; filled
    /// as [`super::Store::transitions`] fills them.
    pub fn transitions_of<'a>(
        &mut self,
        targets: impl IntoIterator<Item = &'a str>,
        journals: &[Journal],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<HashMap<String, Vec<TransitionRow>>, LedgerError> {
        let runs: Vec<i64> = journals
            .iter()
            .flat_map(|j| j.runs.iter().map(|r| r.id))
            .collect();
        let targets: Vec<String> = targets.into_iter().map(str::to_string).collect();
        let mut out: HashMap<String, Vec<TransitionRow>> =
            targets.iter().map(|t| (t.clone(), Vec::new())).collect();
        if runs.is_empty() || targets.is_empty() {
            return Ok(out);
        }
        // The state each view opens the window in: per target, the last
        // transition before it in each run begun before it (one per file,
        // as a rule), found by walking the index back from the window's
        // start — not by reading the file's whole past.
        let begun_before: Vec<i64> = journals
            .iter()
            .flat_map(|j| {
                j.runs
                    .iter()
                    .filter(|r| r.started_ms < from_ms)
                    .map(|r| r.id)
            })
            .collect();
        let rows = self
            .client
            .query(
                "SELECT t.target, x.run_id, x.to_state, x.at_ms, x.reason, x.reason_code, x.local_id
                 FROM unnest($1::text[]) AS t(target)
                 CROSS JOIN unnest($5::bigint[]) AS r(run_id)
                 CROSS JOIN LATERAL (
                     SELECT run_id, to_state, at_ms, reason, reason_code, local_id FROM transitions
                     WHERE target = t.target AND run_id = r.run_id AND at_ms < $3
                     ORDER BY at_ms DESC, local_id DESC LIMIT 1
                 ) x
                 UNION ALL
                 SELECT target, run_id, to_state, at_ms, reason, reason_code, local_id
                 FROM transitions
                 WHERE target = ANY($1) AND run_id = ANY($2) AND at_ms >= $3 AND at_ms < $4",
                &[&targets, &runs, &from_ms, &to_ms, &begun_before],
            )
            .map_err(pg_error)?;
        // Put in order here, per target: the server would sort a month of
        // a region's rows on disk (beyond work_mem), which took most of
        // the query's time.
        let mut keyed: HashMap<String, Vec<(i64, TransitionRow)>> = HashMap::new();
        for r in rows {
            let row = TransitionRow {
                run_id: r.get(1),
                target: String::new(),
                from_state: String::new(),
                to_state: r.get(2),
                at_ms: r.get(3),
                reason: r.get(4),
                reason_code: r.get(5),
                root_cause: None,
            };
            keyed.entry(r.get(0)).or_default().push((r.get(6), row));
        }
        for (target, mut rows) in keyed {
            rows.sort_unstable_by_key(|(local_id, t)| (t.at_ms, t.run_id, *local_id));
            if let Some(v) = out.get_mut(&target) {
                v.extend(rows.into_iter().map(|(_, t)| t));
            }
        }
        Ok(out)
    }
}

impl Reader {
    /// The region's maintenance windows (see [`region_windows`]).
    pub fn windows(&mut self) -> Result<Vec<Window>, LedgerError> {
        let rows = self
            .client
            .query(
                "SELECT id, config_id, spec, declared_ms, withdrawn_ms FROM maintenance
                 WHERE journal IS NOT NULL ORDER BY id",
                &[],
            )
            .map_err(pg_error)?;
        let mut copies = Vec::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.get(0);
            let spec: String = r.get(2);
            let config_id: Option<String> = r.get(1);
            copies.push((
                spec.clone(),
                Window {
                    id,
                    origin: config_id.map_or(Origin::Api, Origin::Config),
                    spec: serde_json::from_str::<Spec>(&spec).map_err(|e| {
                        LedgerError::Db(format!("maintenance window {id} cannot be read: {e}"))
                    })?,
                    declared_ms: r.get(3),
                    withdrawn_ms: r.get(4),
                },
            ));
        }
        Ok(region_windows(copies))
    }

    /// The region's frozen results of the months `from` to `to` (`YYYY-MM`,
    /// both included).
    pub fn frozen(&mut self, from: &str, to: &str) -> Result<Vec<FrozenRow>, LedgerError> {
        let rows = self
            .client
            .query(
                "SELECT kind, id, month, computed_ms, result FROM monthly_results
                 WHERE month >= $1 AND month <= $2",
                &[&from, &to],
            )
            .map_err(pg_error)?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect())
    }

    /// Whether the region has a frozen result of `kind` for `id` and `month`.
    pub fn has_frozen(&mut self, kind: &str, id: &str, month: &str) -> Result<bool, LedgerError> {
        Ok(self
            .client
            .query_opt(
                "SELECT 1 FROM monthly_results WHERE kind = $1 AND id = $2 AND month = $3",
                &[&kind, &id, &month],
            )
            .map_err(pg_error)?
            .is_some())
    }

    /// Keep the region's results of a closed month, in one transaction;
    /// the first kept of each stands (agents freezing at once compute the
    /// same). How many were new.
    pub fn keep_frozen(&mut self, rows: &[FrozenRow]) -> Result<u64, LedgerError> {
        let mut tx = self.client.transaction().map_err(pg_error)?;
        let mut added = 0;
        for (kind, id, month, computed_ms, result) in rows {
            added += tx
                .execute(
                    "INSERT INTO monthly_results (kind, id, month, computed_ms, result)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    &[kind, id, month, computed_ms, result],
                )
                .map_err(pg_error)?;
        }
        tx.commit().map_err(pg_error)?;
        Ok(added)
    }

    /// The agents whose files had runs before `end_ms` but are not known
    /// to be copied whole through it (see [`super::pg::DRAINED`]): what
    /// they saw before it may not all be here yet.
    pub fn unsettled(&mut self, start_ms: i64, end_ms: i64) -> Result<Vec<String>, LedgerError> {
        let rows = self
            .client
            .query(
                "SELECT DISTINCT r.agent FROM runs r
                 LEFT JOIN shipped s ON s.journal = r.journal AND s.kind = $3
                 WHERE r.started_ms < $2 AND coalesce(r.stopped_ms, r.last_seen_ms) >= $1
                   AND coalesce(s.through, 0) < $2
                 ORDER BY r.agent",
                &[&start_ms, &end_ms, &super::pg::DRAINED],
            )
            .map_err(pg_error)?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    /// The notes on outages begun before `to_ms` (removed ones left out).
    pub fn notes(&mut self, to_ms: i64) -> Result<Vec<OutageNote>, LedgerError> {
        let rows = self
            .client
            .query(
                "SELECT target, start_ms, end_ms, note FROM outage_notes
                 WHERE start_ms < $1 AND note <> '' ORDER BY target, start_ms",
                &[&to_ms],
            )
            .map_err(pg_error)?;
        Ok(rows
            .into_iter()
            .map(|r| OutageNote {
                target: r.get(0),
                start_ms: r.get(1),
                end_ms: r.get(2),
                note: Some(r.get(3)),
            })
            .collect())
    }

    /// The links' daily figures of `targets` for the days starting in
    /// `[from, to)` kept by the given runs: (target, day start, run id,
    /// data), run ids the server's.
    pub fn link_days(
        &mut self,
        targets: &[&str],
        journals: &[Journal],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(String, i64, i64, String)>, LedgerError> {
        let runs: Vec<i64> = journals
            .iter()
            .flat_map(|j| j.runs.iter().map(|r| r.id))
            .collect();
        if runs.is_empty() || targets.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .client
            .query(
                "SELECT target, day_ms, run_id, data FROM link_days
                 WHERE target = ANY($1) AND run_id = ANY($2) AND day_ms >= $3 AND day_ms < $4
                 ORDER BY target, day_ms, run_id",
                &[&targets, &runs, &from_ms, &to_ms],
            )
            .map_err(pg_error)?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect())
    }
}

/// The region's windows from every file's copies (with the spec as
/// stored): one declared through an agent's API is the region's as it is;
/// a window of the config, which every agent declares, is one window for
/// each stretch in which any agent had it (same id and spec) declared and
/// not withdrawn — from the first declaration to the last withdrawal —
/// named by its lowest id. In id order.
pub fn region_windows(copies: Vec<(String, Window)>) -> Vec<Window> {
    let mut out: Vec<Window> = Vec::new();
    let mut config: HashMap<(String, String), Vec<Window>> = HashMap::new();
    for (spec, w) in copies {
        match &w.origin {
            Origin::Api => out.push(w),
            Origin::Config(id) => config.entry((id.clone(), spec)).or_default().push(w),
        }
    }
    for (_, mut copies) in config {
        copies.sort_by_key(|w| (w.declared_ms, w.id));
        let mut open: Option<Window> = None;
        for w in copies {
            match open.as_mut() {
                Some(o) if o.withdrawn_ms.is_none_or(|end| w.declared_ms <= end) => {
                    o.id = o.id.min(w.id);
                    o.withdrawn_ms = match (o.withdrawn_ms, w.withdrawn_ms) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        _ => None,
                    };
                }
                _ => out.extend(open.replace(w)),
            }
        }
        out.extend(open);
    }
    out.sort_by_key(|w| w.id);
    out
}

/// The shared record as the agent's API reads it: one connection, opened
/// when first needed and again after a failure (the server restarted, the
/// network cut it), so a server that is away costs one failed connect per
/// request, not a dead handle forever. Blocking: call off the runtime.
#[derive(Clone)]
pub struct SharedRecord {
    url: Secret,
    ca_pem: Option<Vec<u8>>,
    conn: std::sync::Arc<std::sync::Mutex<Slot>>,
}

/// The open connection, if any. The driver's client runs a runtime of its
/// own, which must not be dropped on an async task (tokio panics): the
/// agent drops its ledger there at exit, so the client goes to a thread.
#[derive(Default)]
struct Slot(Option<Reader>);

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(r) = self.0.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ = std::thread::Builder::new()
                    .name("utkikk-pg-close".into())
                    .spawn(move || drop(r));
            }
        }
    }
}

impl SharedRecord {
    pub fn new(url: Secret, ca_pem: Option<Vec<u8>>) -> SharedRecord {
        SharedRecord {
            url,
            ca_pem,
            conn: Default::default(),
        }
    }

    /// `f` on the connection; an error closes it.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut Reader) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        let mut conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let reader = match conn.0.as_mut() {
            Some(r) => r,
            None => conn
                .0
                .insert(Reader::connect(&self.url, self.ca_pem.as_deref())?),
        };
        let r = f(reader);
        if r.is_err() {
            // On a blocking thread (the caller's promise): dropped here.
            conn.0 = None;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maintenance::{Category, Recurrence};

    fn copy(id: i64, origin: Origin, declared: i64, withdrawn: Option<i64>) -> (String, Window) {
        let spec = Spec {
            targets: vec!["sw".into()],
            category: Category::PlannedChange,
            note: None,
            schedule: Recurrence::Once {
                start_ms: 0,
                end_ms: 10,
            },
        };
        (
            serde_json::to_string(&spec).unwrap_or_default(),
            Window {
                id,
                origin,
                spec,
                declared_ms: declared,
                withdrawn_ms: withdrawn,
            },
        )
    }

    #[test]
    fn a_config_window_every_agent_declared_is_one_window_while_any_had_it() {
        let cfg = || Origin::Config("patching".into());
        let got = region_windows(vec![
            // a declares it at 100 and drops it at 500; b from 120 on, and
            // drops it at 600; later a takes it up again at 900.
            copy(7, cfg(), 100, Some(500)),
            copy(3, cfg(), 120, Some(600)),
            copy(9, cfg(), 900, None),
            // Declared through an API: as it is.
            copy(5, Origin::Api, 300, None),
        ]);
        let seen: Vec<(i64, i64, Option<i64>)> = got
            .iter()
            .map(|w| (w.id, w.declared_ms, w.withdrawn_ms))
            .collect();
        assert_eq!(seen, [(3, 100, Some(600)), (5, 300, None), (9, 900, None)]);
        // One agent still has it: not withdrawn.
        let got = region_windows(vec![
            copy(1, cfg(), 100, Some(500)),
            copy(2, cfg(), 110, None),
        ]);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].id, got[0].withdrawn_ms), (1, None));
    }
}
