//! A link's figures over a day (or a month): round-trip times as a
//! histogram, echoes sent and answered, and the peak utilisation each way.
//!
//! The agent keeps one [`LinkStats`] per link target and Oslo day, fed by
//! the link's ICMP cycles and its first end's SNMP counter rates, and
//! writes it to the ledger (`link_days`, one row per link, day and run).
//! Reports merge the rows of a month. Pure logic: no clocks, no storage.
//!
//! RTTs are kept in an HDR histogram (microseconds, 1 µs – 60 s, two
//! significant digits), so the median and 95th percentile of a month are
//! those of every echo, within 1 %, not an average of daily figures.

use std::collections::HashMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::probe::IcmpOutcome;
use crate::time::oslo;

/// Lowest and highest RTT the histogram tells apart, in microseconds
/// (longer ones count as 60 s).
const RTT_LOW_US: u64 = 1;
const RTT_HIGH_US: u64 = 60_000_000;
const RTT_SIGFIG: u8 = 2;

/// The highest utilisation of one direction, and when it was seen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Peak {
    /// Ratio 0–1 of the interface's speed (ifHighSpeed); may exceed 1
    /// when the speed understates the link.
    pub ratio: f64,
    pub bps: f64,
    pub at_ms: i64,
}

fn higher(a: Option<Peak>, b: Option<Peak>) -> Option<Peak> {
    match (a, b) {
        (Some(a), Some(b)) if b.ratio > a.ratio => Some(b),
        (Some(a), _) => Some(a),
        (None, b) => b,
    }
}

#[derive(Debug, Clone)]
pub struct LinkStats {
    /// Echo requests sent while the link was observed (not in planned
    /// maintenance; cycles that could not run are not counted).
    pub sent: u64,
    pub received: u64,
    /// Counts per bucket fit in u32 (a month of echoes every second is
    /// 2.7 million), which halves the agent's memory per link-day (10 KB).
    rtt_us: Histogram<u32>,
    /// From the first end's interface: out = towards the far end.
    pub peak_out: Option<Peak>,
    pub peak_in: Option<Peak>,
}

impl Default for LinkStats {
    fn default() -> Self {
        LinkStats {
            sent: 0,
            received: 0,
            rtt_us: empty_histogram(),
            peak_out: None,
            peak_in: None,
        }
    }
}

fn empty_histogram() -> Histogram<u32> {
    // Constant bounds, valid (low ≥ 1, high ≥ 2·low, sigfig ≤ 5): this
    // cannot fail whatever the input.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(RTT_LOW_US, RTT_HIGH_US, RTT_SIGFIG)
        .expect("constant histogram bounds are valid")
}

/// What a day of one link comes to, for reports and the API.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub sent: u64,
    pub received: u64,
    /// Share of echoes unanswered, 0–1 (outages included, planned
    /// maintenance not). `None` when none were sent.
    pub loss: Option<f64>,
    pub median_rtt_seconds: Option<f64>,
    pub p95_rtt_seconds: Option<f64>,
    pub peak_out: Option<Peak>,
    pub peak_in: Option<Peak>,
}

/// The stored form: counts, and the histogram as (value, count) pairs of
/// its non-empty buckets.
#[derive(Debug, Serialize, Deserialize)]
struct Kept {
    sent: u64,
    received: u64,
    rtt_us: Vec<(u64, u64)>,
    #[serde(default)]
    peak_out: Option<Peak>,
    #[serde(default)]
    peak_in: Option<Peak>,
}

impl LinkStats {
    /// An ICMP cycle of the link. Cycles that could not run say nothing
    /// about the link and are left out.
    pub fn record_probe(&mut self, outcome: &IcmpOutcome) {
        if outcome.failure.as_ref().is_some_and(|f| f.is_probe_error()) {
            return;
        }
        self.sent += u64::from(outcome.sent);
        self.received += u64::from(outcome.received.min(outcome.sent));
        for rtt in &outcome.rtts {
            let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
            self.rtt_us.saturating_record(us.max(RTT_LOW_US));
        }
    }

    /// One interval's utilisation of the first end (out, in).
    pub fn record_rates(&mut self, out: Peak, inn: Peak) {
        self.peak_out = higher(self.peak_out, Some(out));
        self.peak_in = higher(self.peak_in, Some(inn));
    }

    pub fn is_empty(&self) -> bool {
        self.sent == 0 && self.peak_out.is_none() && self.peak_in.is_none()
    }

    pub fn merge(&mut self, other: &LinkStats) {
        self.sent += other.sent;
        self.received += other.received;
        for v in other.rtt_us.iter_recorded() {
            self.rtt_us
                .saturating_record_n(v.value_iterated_to(), v.count_at_value());
        }
        self.peak_out = higher(self.peak_out, other.peak_out);
        self.peak_in = higher(self.peak_in, other.peak_in);
    }

    pub fn summary(&self) -> Summary {
        let quantile = |q: f64| {
            (!self.rtt_us.is_empty()).then(|| {
                // The bucket's middle: within half a bucket (< 1 %).
                let v = self.rtt_us.value_at_quantile(q);
                self.rtt_us.median_equivalent(v) as f64 / 1e6
            })
        };
        Summary {
            sent: self.sent,
            received: self.received,
            loss: (self.sent > 0).then(|| (self.sent - self.received) as f64 / self.sent as f64),
            median_rtt_seconds: quantile(0.5),
            p95_rtt_seconds: quantile(0.95),
            peak_out: self.peak_out,
            peak_in: self.peak_in,
        }
    }

    /// JSON for the ledger.
    pub fn to_json(&self) -> String {
        let kept = Kept {
            sent: self.sent,
            received: self.received,
            rtt_us: self
                .rtt_us
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), u64::from(v.count_at_value())))
                .collect(),
            peak_out: self.peak_out,
            peak_in: self.peak_in,
        };
        serde_json::to_string(&kept).unwrap_or_default()
    }

    /// Read back what [`LinkStats::to_json`] wrote; `None` if it is not that.
    pub fn from_json(s: &str) -> Option<LinkStats> {
        let mut stats = LinkStats::default();
        stats.add_json(s).then_some(stats)
    }

    /// Add what [`LinkStats::to_json`] wrote (a month summing its days
    /// without a histogram per day); false, and nothing added, if `s` is
    /// not that.
    pub fn add_json(&mut self, s: &str) -> bool {
        let Ok(kept) = serde_json::from_str::<Kept>(s) else {
            return false;
        };
        self.sent += kept.sent;
        self.received += kept.received.min(kept.sent);
        for (v, n) in kept.rtt_us {
            self.rtt_us
                .saturating_record_n(v, u32::try_from(n).unwrap_or(u32::MAX));
        }
        self.peak_out = higher(self.peak_out, kept.peak_out);
        self.peak_in = higher(self.peak_in, kept.peak_in);
        true
    }
}

/// The figures of today and yesterday (late cycles) of every link, by
/// link and Oslo day start, as the agent collects them; queued for the
/// ledger when changed.
#[derive(Debug, Default)]
pub struct LinkDays {
    days: HashMap<(String, i64), (LinkStats, bool)>,
}

impl LinkDays {
    /// Add to a link's figures of the Oslo day of `at_ms`; not for days
    /// already written for good (before yesterday of `now_ms`).
    pub fn add(&mut self, link: &str, at_ms: i64, now_ms: i64, add: impl FnOnce(&mut LinkStats)) {
        let Some(day_ms) = oslo::date_of(at_ms).and_then(oslo::day_start) else {
            return;
        };
        if day_ms < oldest_day(now_ms) {
            return;
        }
        let day = self.days.entry((link.to_string(), day_ms)).or_default();
        add(&mut day.0);
        day.1 = true;
    }

    /// The changed figures, as (link, day start, JSON), marked saved; days
    /// before yesterday are forgotten (written for good).
    pub fn take_changed(&mut self, now_ms: i64) -> Vec<(String, i64, String)> {
        let mut out = Vec::new();
        for ((link, day_ms), (stats, dirty)) in self.days.iter_mut().filter(|(_, d)| d.1) {
            *dirty = false;
            out.push((link.clone(), *day_ms, stats.to_json()));
        }
        let oldest = oldest_day(now_ms);
        self.days.retain(|(_, day_ms), _| *day_ms >= oldest);
        out
    }
}

/// The start of yesterday (Oslo): link figures of older days are final.
fn oldest_day(now_ms: i64) -> i64 {
    oslo::date_of(now_ms)
        .and_then(|d| d.pred_opt())
        .and_then(oslo::day_start)
        .unwrap_or(i64::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::FailureReason;
    use std::time::Duration;

    fn cycle(rtts_ms: &[u64], sent: u32) -> IcmpOutcome {
        IcmpOutcome::echoes(sent, rtts_ms)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b * 0.01
    }

    #[test]
    fn quantiles_loss_and_peaks_survive_storage_and_merging() {
        let mut day1 = LinkStats::default();
        // 100 echoes of 1..=100 ms, then a cycle lost entirely.
        for chunk in (1..=100).collect::<Vec<u64>>().chunks(5) {
            day1.record_probe(&cycle(chunk, 5));
        }
        day1.record_probe(&cycle(&[], 5));
        let t = |r: f64| Peak {
            ratio: r,
            bps: r * 1e9,
            at_ms: (r * 1000.0) as i64,
        };
        day1.record_rates(t(0.2), t(0.1));
        day1.record_rates(t(0.1), t(0.7));
        let s = day1.summary();
        assert_eq!((s.sent, s.received), (105, 100));
        assert!(close(s.loss.unwrap(), 5.0 / 105.0));
        assert!(close(s.median_rtt_seconds.unwrap(), 0.050));
        assert!(close(s.p95_rtt_seconds.unwrap(), 0.095));
        assert_eq!(s.peak_out.unwrap().ratio, 0.2);
        assert_eq!(s.peak_in.unwrap().at_ms, 700);

        // Stored and read back: the same figures.
        let back = LinkStats::from_json(&day1.to_json()).unwrap();
        assert_eq!(back.summary(), s);

        // A second day of slow echoes moves the month's quantiles: they
        // are those of all echoes, not an average of days.
        let mut day2 = LinkStats::default();
        for _ in 0..20 {
            day2.record_probe(&cycle(&[500; 5], 5));
        }
        let mut month = back;
        month.merge(&day2);
        let m = month.summary();
        assert_eq!((m.sent, m.received), (205, 200));
        assert!(close(m.median_rtt_seconds.unwrap(), 0.100));
        assert!(close(m.p95_rtt_seconds.unwrap(), 0.500));
        assert_eq!(m.peak_in.unwrap().ratio, 0.7);
    }

    #[test]
    fn probe_errors_and_empty_days_say_nothing() {
        let mut s = LinkStats::default();
        let mut o = cycle(&[], 3);
        o.failure = Some(FailureReason::Permission);
        s.record_probe(&o);
        assert!(s.is_empty());
        let sum = s.summary();
        assert_eq!(sum.loss, None);
        assert_eq!(sum.median_rtt_seconds, None);
        // An RTT past the histogram's range counts as its highest value,
        // and a sub-microsecond one as 1 µs: never a panic.
        s.record_probe(&IcmpOutcome {
            rtts: vec![Duration::from_secs(3600), Duration::ZERO],
            received: 2,
            ..cycle(&[1], 2)
        });
        assert!(s.summary().p95_rtt_seconds.unwrap() >= 59.0);
        assert!(LinkStats::from_json("not json").is_none());
    }
}
