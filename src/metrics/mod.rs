//! Prometheus metrics (prometheus-client). One [`Metrics`] handle, cloned
//! into whoever records; `/metrics` encodes its registry.
//!
//! Per-target series carry `target`, `member`, `site`; the state series adds
//! `kind` and `state`. Series of targets removed by a reload are removed.

mod checks;
mod snmp;
mod states;

pub use states::TargetStates;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::inventory::Target;
use crate::model::State;
use crate::probe::IcmpOutcome;

/// A target's own labels (`target`, `member`, `site`) in one allocation
/// that every series of the target shares: at 10,000 targets with ~20
/// series each, a set of owned strings per series was the largest part
/// of the agent's memory.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct TargetLabels(Arc<TargetLabelValues>);

#[derive(Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabelValues {
    pub target: String,
    pub member: String,
    pub site: String,
}

impl TargetLabels {
    pub fn of(t: &Target) -> Self {
        TargetLabels(Arc::new(TargetLabelValues {
            target: t.id.clone(),
            member: t.member.clone().unwrap_or_default(),
            site: t.site.clone().unwrap_or_default(),
        }))
    }
}

impl std::ops::Deref for TargetLabels {
    type Target = TargetLabelValues;
    fn deref(&self) -> &TargetLabelValues {
        &self.0
    }
}

impl EncodeLabelSet for TargetLabels {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelSetEncoder,
    ) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    #[prometheus(flatten)]
    base: TargetLabels,
    probe: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    target: String,
    from: &'static str,
    to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    agent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FamilyLabels {
    family: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClockLabels {
    clock: &'static str,
}

type FGauge = Gauge<f64, AtomicU64>;
type HistogramFamily = Family<TargetLabels, Histogram, fn() -> Histogram>;

/// Makes each target's RTT histogram with the configured bounds.
#[derive(Clone, Debug)]
struct RttBuckets(Arc<[f64]>);

impl prometheus_client::metrics::family::MetricConstructor<Histogram> for RttBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

/// A service's 0/1 gauge set, or its series removed for `None`.
fn set_flag(family: &Family<ServiceLabels, Gauge>, service: &str, v: Option<bool>) {
    let l = ServiceLabels {
        service: service.to_string(),
    };
    match v {
        Some(v) => {
            family.get_or_create(&l).set(i64::from(v));
        }
        None => {
            family.remove(&l);
        }
    }
}

/// Each service's closed months, by service id.
pub type ClosedMonths = Vec<(String, Vec<ClosedMonth>)>;

/// A closed month's frozen result, for the history series.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedMonth {
    /// YYYY-MM.
    pub month: String,
    pub objective: f64,
    /// Only with a verdict.
    pub availability: Option<f64>,
    pub met: Option<bool>,
}

/// A service's SLA gauges this month. The verdict's figures
/// (availability, error budget) are `None` when no verdict can be given.
#[derive(Debug, Clone, Copy, Default)]
pub struct SlaGauges {
    pub objective: Option<f64>,
    pub min_coverage: Option<f64>,
    pub availability: Option<f64>,
    pub budget: Option<f64>,
    pub coverage: Option<f64>,
}

/// All of the agent's metrics. Clones share the same series.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// `utkikk_target_state`, `…_in_maintenance` and the thresholds.
    states: Arc<states::StateSeries>,
    probe_success: Family<ProbeLabels, Gauge>,
    /// `None` when `agent.rtt_buckets` is empty: no histogram at all.
    icmp_rtt: Option<Family<TargetLabels, Histogram, RttBuckets>>,
    icmp_requests: Family<TargetLabels, Counter>,
    icmp_responses: Family<TargetLabels, Counter>,
    icmp_loss: Family<TargetLabels, FGauge>,
    icmp_jitter: Family<TargetLabels, FGauge>,
    transitions: Family<TransitionLabels, Counter>,
    pub schedule_lag: Histogram,
    pub probes_in_flight: Gauge,
    targets: Gauge,
    icmp_socket_up: Family<FamilyLabels, Gauge>,
    /// Replies by the clock that timed them (two series, made at start).
    replies_by_clock: Family<ClockLabels, Counter>,
    replies_kernel_clock: Counter,
    replies_user_clock: Counter,
    pub reload_successful: Gauge,
    pub reload_success_timestamp: FGauge,
    snmp_duration: HistogramFamily,
    snmp_errors: Family<ReasonLabels, Counter>,
    snmp_requests: Family<TargetLabels, Counter>,
    snmp_non_increasing: Family<TargetLabels, Counter>,
    reboots: Family<TargetLabels, Counter>,
    snmp_devices: Arc<snmp::SnmpSeries>,
    link_utilisation: Family<LinkLabels, FGauge>,
    ledger_write_errors: Counter,
    ledger_records: Counter,
    ledger_pending: Gauge,
    ledger_shipped: Counter,
    ledger_ship_errors: Counter,
    ledger_ship_backlog: Gauge,
    ledger_postgres_up: Gauge,
    sla_objective: Family<ServiceLabels, FGauge>,
    sla_availability: Family<ServiceWindowLabels, FGauge>,
    sla_budget: Family<ServiceLabels, FGauge>,
    closed_availability: Family<ServiceMonthLabels, FGauge>,
    closed_objective: Family<ServiceMonthLabels, FGauge>,
    closed_met: Family<ServiceMonthLabels, Gauge>,
    coverage: Family<ServiceLabels, FGauge>,
    min_coverage: Family<ServiceLabels, FGauge>,
    service_up: Family<ServiceLabels, Gauge>,
    service_monitored: Family<ServiceLabels, Gauge>,
    service_info: Family<ServiceInfoLabels, Gauge>,
    member_info: Family<MemberInfoLabels, Gauge>,
    service_root_cause: Family<ServiceCauseLabels, Gauge>,
    checks: checks::CheckSeries,
    pub http: HttpMetrics,
    /// The last scrape's size in bytes (`usize::MAX` before the first):
    /// how the HTTP handler chooses to encode the next one.
    last_scrape_bytes: Arc<std::sync::atomic::AtomicUsize>,
}

/// The HTTP server's own figures (src/http/serve.rs).
#[derive(Clone, Default)]
pub struct HttpMetrics {
    pub connections_open: Gauge,
    pub connections_max: Gauge,
    pub accept_errors: Counter,
    pub request_timeouts: Counter,
    /// Connections closed because the client stopped reading its answer.
    pub write_stalls: Counter,
    pub queries_refused: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceInfoLabels {
    service: String,
    service_name: String,
    member: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceMonthLabels {
    service: String,
    /// YYYY-MM, Europe/Oslo.
    month: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MemberInfoLabels {
    member: String,
    member_name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceCauseLabels {
    service: String,
    root_cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceWindowLabels {
    service: String,
    window: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LinkLabels {
    link: String,
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    #[prometheus(flatten)]
    base: TargetLabels,
    reason: &'static str,
}

fn snmp_duration_histogram() -> Histogram {
    // 1 ms … ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Metrics {
    /// The agent's metrics; `rtt_buckets` are the upper bounds of each
    /// target's RTT histogram (none: no histogram).
    pub fn new(agent_id: &str, rtt_buckets: &[std::time::Duration]) -> Self {
        let rtt_bounds: Arc<[f64]> = rtt_buckets.iter().map(|d| d.as_secs_f64()).collect();
        let clocks = Family::<ClockLabels, Counter>::default();
        // One at a time: each guard holds the family's lock.
        let kernel_clock = clocks
            .get_or_create(&ClockLabels { clock: "kernel" })
            .clone();
        let user_clock = clocks.get_or_create(&ClockLabels { clock: "user" }).clone();
        let mut m = Metrics {
            last_scrape_bytes: Arc::new(usize::MAX.into()),
            registry: Arc::new(Registry::default()),
            states: Arc::default(),
            probe_success: Family::default(),
            icmp_rtt: (!rtt_bounds.is_empty())
                .then(|| Family::new_with_constructor(RttBuckets(rtt_bounds))),
            icmp_requests: Family::default(),
            icmp_responses: Family::default(),
            icmp_loss: Family::default(),
            icmp_jitter: Family::default(),
            transitions: Family::default(),
            schedule_lag: Histogram::new(exponential_buckets(0.0005, 4.0, 10)),
            probes_in_flight: Gauge::default(),
            targets: Gauge::default(),
            icmp_socket_up: Family::default(),
            replies_by_clock: clocks.clone(),
            replies_kernel_clock: kernel_clock,
            replies_user_clock: user_clock,
            reload_successful: Gauge::default(),
            reload_success_timestamp: FGauge::default(),
            snmp_duration: Family::new_with_constructor(
                snmp_duration_histogram as fn() -> Histogram,
            ),
            snmp_errors: Family::default(),
            snmp_requests: Family::default(),
            snmp_non_increasing: Family::default(),
            reboots: Family::default(),
            snmp_devices: Arc::new(snmp::SnmpSeries::default()),
            link_utilisation: Family::default(),
            ledger_write_errors: Counter::default(),
            ledger_records: Counter::default(),
            ledger_pending: Gauge::default(),
            ledger_shipped: Counter::default(),
            ledger_ship_errors: Counter::default(),
            ledger_ship_backlog: Gauge::default(),
            ledger_postgres_up: Gauge::default(),
            sla_objective: Family::default(),
            sla_availability: Family::default(),
            sla_budget: Family::default(),
            closed_availability: Family::default(),
            closed_objective: Family::default(),
            closed_met: Family::default(),
            coverage: Family::default(),
            min_coverage: Family::default(),
            service_up: Family::default(),
            service_monitored: Family::default(),
            service_info: Family::default(),
            member_info: Family::default(),
            service_root_cause: Family::default(),
            checks: checks::CheckSeries::default(),
            http: HttpMetrics::default(),
        };
        let build: Family<BuildLabels, Gauge> = Family::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
                agent: agent_id.to_string(),
            })
            .set(1);
        let mut r = Registry::default();
        r.register(
            "utkikk_probe_success",
            "Whether the target's last probe cycle got any reply (1) or not (0)",
            m.probe_success.clone(),
        );
        if let Some(rtt) = &m.icmp_rtt {
            r.register(
                "utkikk_icmp_rtt_seconds",
                "Round-trip time of each ICMP echo reply (bounds: agent.rtt_buckets)",
                rtt.clone(),
            );
        }
        r.register(
            "utkikk_icmp_requests",
            "ICMP echo requests sent",
            m.icmp_requests.clone(),
        );
        r.register(
            "utkikk_icmp_responses",
            "ICMP echo replies received (loss = 1 - responses/requests)",
            m.icmp_responses.clone(),
        );
        r.register(
            "utkikk_icmp_loss_ratio",
            "Share of echoes lost in the last cycle",
            m.icmp_loss.clone(),
        );
        r.register(
            "utkikk_icmp_jitter_seconds",
            "Mean absolute difference of consecutive RTTs in the last cycle",
            m.icmp_jitter.clone(),
        );
        r.register(
            "utkikk_state_transitions",
            "State transitions of each target",
            m.transitions.clone(),
        );
        r.register(
            "utkikk_schedule_lag_seconds",
            "How late each probe cycle started after its scheduled time",
            m.schedule_lag.clone(),
        );
        r.register(
            "utkikk_probes_in_flight",
            "Probe cycles running now",
            m.probes_in_flight.clone(),
        );
        r.register("utkikk_targets", "Targets configured", m.targets.clone());
        r.register(
            "utkikk_icmp_socket_up",
            "Whether an ICMP socket of the address family could be opened",
            m.icmp_socket_up.clone(),
        );
        r.register(
            "utkikk_icmp_replies_by_clock",
            "Echo replies by the clock that timed their RTT: kernel (software timestamps of the echo leaving and the reply arriving) or user (user-space time, where the kernel gave no timestamp)",
            m.replies_by_clock.clone(),
        );
        r.register(
            "utkikk_config_last_reload_successful",
            "Whether the last configuration reload succeeded",
            m.reload_successful.clone(),
        );
        r.register(
            "utkikk_config_last_reload_success_timestamp_seconds",
            "Time of the last successful configuration reload",
            m.reload_success_timestamp.clone(),
        );
        m.checks.register(&mut r);
        r.register(
            "utkikk_snmp_poll_duration_seconds",
            "Duration of each SNMP poll of a device",
            m.snmp_duration.clone(),
        );
        r.register(
            "utkikk_snmp_errors",
            "SNMP polls that failed, by reason (timeout, auth, decode, agent_error, io)",
            m.snmp_errors.clone(),
        );
        r.register(
            "utkikk_snmp_requests",
            "SNMP requests sent, retries included",
            m.snmp_requests.clone(),
        );
        r.register(
            "utkikk_snmp_walk_non_increasing",
            "Walks cut short because the agent returned an OID that did not increase",
            m.snmp_non_increasing.clone(),
        );
        r.register(
            "utkikk_device_reboots",
            "Reboots seen: sysUpTime went back between two polls",
            m.reboots.clone(),
        );
        r.register(
            "utkikk_link_utilization_ratio",
            "Utilisation of a link over the last SNMP interval, from its first end's octet counters and ifHighSpeed; direction out = away from the first end",
            m.link_utilisation.clone(),
        );
        r.register(
            "utkikk_ledger_write_errors",
            "Failed attempts to write the ledger (records stay queued and are retried)",
            m.ledger_write_errors.clone(),
        );
        r.register(
            "utkikk_ledger_records_written",
            "Records (transitions, device events) committed to the ledger",
            m.ledger_records.clone(),
        );
        r.register(
            "utkikk_ledger_pending_records",
            "Records queued for the ledger and not yet committed",
            m.ledger_pending.clone(),
        );
        r.register(
            "utkikk_ledger_shipped_records",
            "Records (transitions, device events, link days) copied from this agent's SQLite file to the shared PostgreSQL record (ledger.backend: postgres)",
            m.ledger_shipped.clone(),
        );
        r.register(
            "utkikk_ledger_ship_errors",
            "Failed attempts to copy records to PostgreSQL (they stay in the SQLite file and are copied when it answers again)",
            m.ledger_ship_errors.clone(),
        );
        r.register(
            "utkikk_ledger_ship_backlog_records",
            "Transitions and device events committed to this agent's SQLite file and not yet in PostgreSQL",
            m.ledger_ship_backlog.clone(),
        );
        r.register(
            "utkikk_ledger_postgres_up",
            "1 while the shared PostgreSQL record is reachable and written, 0 while not (ledger.backend: postgres only)",
            m.ledger_postgres_up.clone(),
        );
        r.register(
            "utkikk_sla_objective_ratio",
            "Service level objective in force this month",
            m.sla_objective.clone(),
        );
        r.register(
            "utkikk_sla_availability_ratio",
            "Availability of the service this calendar month (Europe/Oslo) so far; absent while no verdict can be given (nothing observed, or coverage below utkikk_sla_min_coverage_ratio)",
            m.sla_availability.clone(),
        );
        r.register(
            "utkikk_sla_error_budget_remaining_ratio",
            "Share of this month's error budget left (1 untouched, 0 spent, negative overspent); absent while no verdict can be given",
            m.sla_budget.clone(),
        );
        r.register(
            "utkikk_sla_closed_month_availability_ratio",
            "Availability of the service in each of the last 12 closed months (Europe/Oslo), as frozen when the month closed; absent for a month without a verdict",
            m.closed_availability.clone(),
        );
        r.register(
            "utkikk_sla_closed_month_objective_ratio",
            "The objective in force in each of the last 12 closed months, as frozen",
            m.closed_objective.clone(),
        );
        r.register(
            "utkikk_sla_closed_month_met",
            "Whether the service met its objective in each of the last 12 closed months (1) or missed it (0); absent for a month without a verdict (too little coverage, nothing observed)",
            m.closed_met.clone(),
        );
        r.register(
            "utkikk_monitoring_coverage_ratio",
            "Share of the service's scheduled time this month that was monitored",
            m.coverage.clone(),
        );
        r.register(
            "utkikk_sla_min_coverage_ratio",
            "Share of the scheduled time that must be monitored for a verdict under the level in force",
            m.min_coverage.clone(),
        );
        r.register(
            "utkikk_service_up",
            "Whether the service is up now (1) or down (0) under its level in force, from its targets' states; absent outside its schedule, in maintenance, or when that cannot be said. 1 - avg_over_time() of it is the error ratio of a window",
            m.service_up.clone(),
        );
        r.register(
            "utkikk_service_monitored",
            "Whether the service is observed now (1) or unmonitored (0: probes unable to run, targets unmonitored); absent outside its schedule. avg_over_time() of it is the coverage of a window",
            m.service_monitored.clone(),
        );
        r.register(
            "utkikk_service_info",
            "1 for each member a service serves (join on `service` to see services by member)",
            m.service_info.clone(),
        );
        r.register(
            "utkikk_member_info",
            "1 for each member in the config, with its name (members without services too)",
            m.member_info.clone(),
        );
        r.register(
            "utkikk_service_root_cause",
            "1 for each target whose failure has the service down now (the down target itself, or the down parent of an unreachable one); for routing and inhibiting its alerts under the root cause's page",
            m.service_root_cause.clone(),
        );
        r.register(
            "utkikk_http_connections_open",
            "HTTP connections open now",
            m.http.connections_open.clone(),
        );
        r.register(
            "utkikk_http_connections_max",
            "HTTP connections served at once at most (--web.max-connections, lowered to fit the open-file limit); more wait to be accepted",
            m.http.connections_max.clone(),
        );
        r.register(
            "utkikk_http_accept_errors",
            "Connections that could not be accepted (e.g. out of file descriptors)",
            m.http.accept_errors.clone(),
        );
        r.register(
            "utkikk_http_request_timeouts",
            "Requests stopped at their deadline (answered 503)",
            m.http.request_timeouts.clone(),
        );
        r.register(
            "utkikk_http_write_stalls",
            "Connections closed because the client read nothing of its answer for 30 s",
            m.http.write_stalls.clone(),
        );
        r.register(
            "utkikk_api_queries_refused",
            "Ledger queries refused because as many as allowed were running (answered 503)",
            m.http.queries_refused.clone(),
        );
        r.register_collector(Box::new(m.states.clone()));
        r.register(
            "utkikk_build_info",
            "Version of utkikk and the agent id; always 1",
            build,
        );
        m.registry = Arc::new(r);
        m
    }

    /// Every series in `format`, handed to `sink` in pieces of about 64 KB
    /// as they fill (the caller sends each on at once: the whole scrape is
    /// never in memory). The Prometheus text format 0.0.4 is for clients
    /// that do not ask for OpenMetrics (curl, promtool, older scrapers):
    /// converted line by line as the registry is encoded. The SNMP
    /// device series follow the registry's, written as text in either
    /// format (see [`snmp`]). The sink returns false to stop the encoding
    /// (the client left).
    pub fn scrape_into(&self, format: Format, sink: &mut dyn FnMut(Vec<u8>) -> bool) {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = Chunks::new(sink);
        // An error here is only the sink's stop.
        match format {
            Format::OpenMetrics => {
                let _ = encode_registry(&mut out, &self.registry)
                    .and_then(|()| self.snmp_devices.encode_text(&mut out, true))
                    .and_then(|()| encode_eof(&mut out));
            }
            Format::PrometheusText => {
                let mut text = ToPrometheusText::new(out);
                let _ = encode_registry(&mut text, &self.registry);
                text.flush_help(None);
                out = text.out;
                let _ = self.snmp_devices.encode_text(&mut out, false);
            }
        }
        out.finish();
    }

    /// The last scrape's size in bytes, `None` before the first.
    pub fn last_scrape_bytes(&self) -> Option<usize> {
        let n = self
            .last_scrape_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        (n != usize::MAX).then_some(n)
    }

    pub fn set_last_scrape_bytes(&self, n: usize) {
        self.last_scrape_bytes
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// The whole scrape in one string (tests).
    pub fn encode(&self, format: Format) -> String {
        let mut all = Vec::new();
        self.scrape_into(format, &mut |c| {
            all.extend_from_slice(&c);
            true
        });
        String::from_utf8_lossy(&all).into_owned()
    }

    /// Encode the targets' state series from `source` at each scrape
    /// (the live state calls this once, when it starts).
    pub fn follow_states(&self, source: Box<dyn TargetStates>) {
        self.states.follow(source);
    }

    /// A target's series that change with its cycles, looked up once:
    /// the live-state owner keeps them, so recording a cycle touches no
    /// map.
    pub fn target_series(&self, t: &Target) -> TargetSeries {
        TargetSeries {
            labels: TargetLabels::of(t),
            icmp: None,
        }
    }

    /// A probe that could not run (a name that does not resolve): the
    /// protocol's `utkikk_probe_success` is 0.
    pub fn record_not_run(&self, s: &TargetSeries, probe: crate::probe::ProbeKind) {
        self.probe_success
            .get_or_create(&probe_labels(&s.labels, probe.as_str()))
            .set(0);
    }

    /// Record a service check: `utkikk_probe_success{probe}` (1 when it
    /// passes, degraded included) and its own series.
    pub fn record_check(&self, s: &TargetSeries, c: &crate::probe::check::CheckOutcome) {
        let probe = probe_labels(&s.labels, c.kind.as_str());
        self.probe_success.get_or_create(&probe).set(i64::from(
            c.problem.as_ref().is_none_or(|p| p.is_degraded()),
        ));
        self.checks.record(&s.labels, probe, c);
    }

    /// Record an SNMP check on demand: its requests (its answer shows in
    /// the device's state, not in `utkikk_probe_success`, which is the
    /// scheduled poll's).
    pub fn record_snmp_check(&self, s: &TargetSeries, check: &crate::probe::snmp::SnmpCheck) {
        self.snmp_requests
            .get_or_create(&s.labels)
            .inc_by(u64::from(check.requests));
    }

    /// Record one SNMP poll: its own series, and the device's values
    /// (kept: the poll is taken, so its snapshot is not copied).
    pub fn record_snmp(&self, s: &TargetSeries, poll: crate::probe::snmp::SnmpPoll) {
        let requests = poll.requests;
        let labels = &s.labels;
        self.probe_success
            .get_or_create(&probe_labels(labels, "snmp"))
            .set(i64::from(poll.result.is_ok()));
        self.snmp_duration
            .get_or_create(labels)
            .observe(poll.duration.as_secs_f64());
        self.snmp_requests
            .get_or_create(labels)
            .inc_by(u64::from(requests));
        if poll.non_increasing > 0 {
            self.snmp_non_increasing
                .get_or_create(labels)
                .inc_by(u64::from(poll.non_increasing));
        }
        if poll.rebooted {
            self.reboots.get_or_create(labels).inc();
        }
        match poll.result {
            Ok(snap) => self.snmp_devices.set(labels, snap),
            Err(e) => {
                self.snmp_errors
                    .get_or_create(&ReasonLabels {
                        base: labels.clone(),
                        reason: e.code(),
                    })
                    .inc();
                // Values we can no longer read are not exported as if current.
                self.snmp_devices.remove(&labels.target);
            }
        }
    }

    pub fn set_link_utilisation(&self, link: &str, out: f64, inn: f64) {
        for (direction, v) in [("out", out), ("in", inn)] {
            self.link_utilisation
                .get_or_create(&LinkLabels {
                    link: link.to_string(),
                    direction: direction.to_string(),
                })
                .set(v);
        }
    }

    pub fn remove_link_utilisation(&self, link: &str) {
        for direction in ["out", "in"] {
            self.link_utilisation.remove(&LinkLabels {
                link: link.to_string(),
                direction: direction.to_string(),
            });
        }
    }

    /// This month's figures of a service; `None` clears what cannot be said
    /// (`None` for all: the service has no level in force or is gone).
    pub fn set_sla(&self, service: &str, g: Option<SlaGauges>) {
        let g = g.unwrap_or_default();
        let l = ServiceLabels {
            service: service.to_string(),
        };
        let lw = ServiceWindowLabels {
            service: service.to_string(),
            window: "month".to_string(),
        };
        let set = |f: &Family<ServiceLabels, FGauge>, v: Option<f64>| match v {
            Some(v) => {
                f.get_or_create(&l).set(v);
            }
            None => {
                f.remove(&l);
            }
        };
        set(&self.sla_objective, g.objective);
        set(&self.min_coverage, g.min_coverage);
        set(&self.sla_budget, g.budget);
        set(&self.coverage, g.coverage);
        match g.availability {
            Some(v) => {
                self.sla_availability.get_or_create(&lw).set(v);
            }
            None => {
                self.sla_availability.remove(&lw);
            }
        }
    }

    /// The closed months' frozen results: `months` are each service's
    /// (month, objective, availability with a verdict, met); the series
    /// of services and months not in it are removed. Called when they
    /// change (the SLA job reads them again only then).
    pub fn set_closed_months(&self, months: &[(String, Vec<ClosedMonth>)]) {
        self.closed_availability.clear();
        self.closed_objective.clear();
        self.closed_met.clear();
        for (service, list) in months {
            for m in list {
                let l = ServiceMonthLabels {
                    service: service.clone(),
                    month: m.month.clone(),
                };
                self.closed_objective.get_or_create(&l).set(m.objective);
                if let Some(met) = m.met {
                    self.closed_met.get_or_create(&l).set(i64::from(met));
                }
                if let Some(a) = m.availability {
                    self.closed_availability.get_or_create(&l).set(a);
                }
            }
        }
    }

    pub fn ledger_write_error(&self) {
        self.ledger_write_errors.inc();
    }

    pub fn ledger_written(&self, n: usize) {
        self.ledger_records.inc_by(n as u64);
    }

    pub fn ledger_shipped(&self, n: usize) {
        self.ledger_shipped.inc_by(n as u64);
    }

    pub fn ledger_ship_error(&self) {
        self.ledger_ship_errors.inc();
    }

    pub fn set_ledger_ship_state(&self, backlog: i64, up: bool) {
        self.ledger_ship_backlog.set(backlog);
        self.ledger_postgres_up.set(i64::from(up));
    }

    pub fn set_ledger_pending(&self, n: usize) {
        self.ledger_pending.set(n as i64);
    }

    /// Forget a device's SNMP values (its `snmp` block was removed).
    pub fn remove_snmp_device(&self, target: &str) {
        self.snmp_devices.remove(target);
    }

    /// Make sure the SNMP error and reboot counters exist (at 0) for a
    /// polled target, so `increase()` sees the first one.
    pub fn init_snmp_target(&self, t: &Target) {
        let labels = TargetLabels::of(t);
        for reason in crate::probe::snmp::SNMP_ERROR_CODES {
            let _ = self.snmp_errors.get_or_create(&ReasonLabels {
                base: labels.clone(),
                reason,
            });
        }
        let _ = self.reboots.get_or_create(&labels);
    }

    /// The handles the ICMP engine updates.
    pub fn icmp_engine(&self) -> crate::probe::icmp::EngineMetrics {
        crate::probe::icmp::EngineMetrics {
            schedule_lag: self.schedule_lag.clone(),
            probes_in_flight: self.probes_in_flight.clone(),
            kernel_clock: self.replies_kernel_clock.clone(),
            user_clock: self.replies_user_clock.clone(),
            socket_up: ["ipv4", "ipv6"].map(|family| self.icmp_socket(family)),
        }
    }

    /// `utkikk_icmp_socket_up` of `family`.
    fn icmp_socket(&self, family: &str) -> Gauge {
        self.icmp_socket_up
            .get_or_create(&FamilyLabels {
                family: family.to_string(),
            })
            .clone()
    }

    pub fn set_icmp_socket(&self, family: &str, up: bool) {
        self.icmp_socket(family).set(i64::from(up));
    }

    pub fn set_target_count(&self, n: usize) {
        self.targets.set(n as i64);
    }

    pub fn observe_lag(&self, seconds: f64) {
        self.schedule_lag.observe(seconds);
    }

    /// Whether a service is up now; `None` removes the series (outside its
    /// schedule, planned work, unmonitored, or the service is gone).
    pub fn set_service_up(&self, service: &str, up: Option<bool>) {
        set_flag(&self.service_up, service, up);
    }

    /// Whether a service is observed now; `None` removes the series
    /// (outside its schedule, or the service is gone).
    pub fn set_service_monitored(&self, service: &str, monitored: Option<bool>) {
        set_flag(&self.service_monitored, service, monitored);
    }

    /// The members in the config (after every config load).
    pub fn set_members(&self, members: &[crate::inventory::Member]) {
        self.member_info.clear();
        for m in members {
            self.member_info
                .get_or_create(&MemberInfoLabels {
                    member: m.id.clone(),
                    member_name: m.name.clone(),
                })
                .set(1);
        }
    }

    /// Which members each service serves (after every config load).
    pub fn set_services(&self, services: &[crate::inventory::Service]) {
        self.service_info.clear();
        for s in services {
            for member in &s.serves {
                self.service_info
                    .get_or_create(&ServiceInfoLabels {
                        service: s.id.clone(),
                        service_name: s.name.clone(),
                        member: member.clone(),
                    })
                    .set(1);
            }
        }
    }

    /// The root causes of a service being down now; `gone` are last
    /// round's that no longer are.
    pub fn set_service_root_causes(&self, service: &str, now: &[String], gone: &[String]) {
        let l = |c: &String| ServiceCauseLabels {
            service: service.to_string(),
            root_cause: c.clone(),
        };
        for c in gone {
            self.service_root_cause.remove(&l(c));
        }
        for c in now {
            self.service_root_cause.get_or_create(&l(c)).set(1);
        }
    }

    pub fn count_transition(&self, target: &str, from: State, to: State) {
        self.transitions
            .get_or_create(&TransitionLabels {
                target: target.to_string(),
                from: from.as_str(),
                to: to.as_str(),
            })
            .inc();
    }

    /// Record one echo cycle (the target's ICMP series are made at its
    /// first).
    pub fn record_outcome(&self, s: &mut TargetSeries, o: &IcmpOutcome) {
        let icmp = s.icmp.get_or_insert_with(|| IcmpSeries {
            success: self
                .probe_success
                .get_or_create(&probe_labels(&s.labels, "icmp"))
                .clone(),
            requests: self.icmp_requests.get_or_create(&s.labels).clone(),
            responses: self.icmp_responses.get_or_create(&s.labels).clone(),
            rtt: self
                .icmp_rtt
                .as_ref()
                .map(|f| f.get_or_create(&s.labels).clone()),
            loss: self.icmp_loss.get_or_create(&s.labels).clone(),
            jitter: self.icmp_jitter.get_or_create(&s.labels).clone(),
        });
        icmp.success.set(i64::from(o.success()));
        if o.is_probe_error() {
            return;
        }
        icmp.requests.inc_by(u64::from(o.sent));
        icmp.responses.inc_by(u64::from(o.received));
        if let Some(rtt) = &icmp.rtt {
            for r in &o.rtts {
                rtt.observe(r.as_secs_f64());
            }
        }
        if let Some(loss) = o.loss_ratio() {
            icmp.loss.set(loss);
        }
        icmp.jitter
            .set(o.rtt_stats().map_or(0.0, |s| s.jitter_seconds));
    }

    /// Drop every series of a target (removed, or its labels changed).
    pub fn remove_target(&self, t: &Target) {
        let base = TargetLabels::of(t);
        self.probe_success.remove(&probe_labels(&base, "icmp"));
        self.probe_success.remove(&probe_labels(&base, "snmp"));
        for kind in ["tcp", "http", "tls", "dns"] {
            let probe = probe_labels(&base, kind);
            self.checks.remove(&base, &probe);
            self.probe_success.remove(&probe);
        }
        self.snmp_duration.remove(&base);
        self.snmp_requests.remove(&base);
        self.snmp_non_increasing.remove(&base);
        self.reboots.remove(&base);
        for reason in crate::probe::snmp::SNMP_ERROR_CODES {
            self.snmp_errors.remove(&ReasonLabels {
                base: base.clone(),
                reason,
            });
        }
        self.snmp_devices.remove(&base.target);
        self.remove_link_utilisation(&base.target);
        if let Some(rtt) = &self.icmp_rtt {
            rtt.remove(&base);
        }
        self.icmp_requests.remove(&base);
        self.icmp_responses.remove(&base);
        self.icmp_loss.remove(&base);
        self.icmp_jitter.remove(&base);
        for from in State::ALL {
            for to in State::ALL {
                self.transitions.remove(&TransitionLabels {
                    target: base.target.clone(),
                    from: from.as_str(),
                    to: to.as_str(),
                });
            }
        }
    }
}

fn probe_labels(base: &TargetLabels, probe: &'static str) -> ProbeLabels {
    ProbeLabels {
        base: base.clone(),
        probe,
    }
}

/// One target's series, kept by the live-state owner (see
/// [`Metrics::target_series`]). Handles: a series removed from its family
/// (the target left, or its labels changed) is made anew with the
/// target's new series.
pub struct TargetSeries {
    labels: TargetLabels,
    icmp: Option<IcmpSeries>,
}

struct IcmpSeries {
    success: Gauge,
    requests: Counter,
    responses: Counter,
    rtt: Option<Histogram>,
    loss: FGauge,
    jitter: FGauge,
}

/// The text formats `/metrics` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    PrometheusText,
}

/// Chunks of about this size.
const CHUNK: usize = 64 * 1024;

/// A `fmt::Write` into [`CHUNK`]-sized buffers, each handed to the sink
/// when full.
struct Chunks<'s> {
    sink: &'s mut dyn FnMut(Vec<u8>) -> bool,
    current: Vec<u8>,
    /// The sink said stop.
    stopped: bool,
}

impl<'s> Chunks<'s> {
    fn new(sink: &'s mut dyn FnMut(Vec<u8>) -> bool) -> Self {
        Chunks {
            sink,
            current: Vec::new(),
            stopped: false,
        }
    }

    fn push(&mut self, s: &str) {
        if self.current.capacity() == 0 {
            self.current.reserve_exact(CHUNK + CHUNK / 4);
        }
        self.current.extend_from_slice(s.as_bytes());
        if self.current.len() >= CHUNK && !self.stopped {
            self.stopped = !(self.sink)(std::mem::take(&mut self.current));
        }
    }

    fn finish(mut self) {
        if !self.current.is_empty() && !self.stopped {
            (self.sink)(std::mem::take(&mut self.current));
        }
    }
}

impl std::fmt::Write for Chunks<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.push(s);
        if self.stopped {
            return Err(std::fmt::Error);
        }
        Ok(())
    }
}

/// OpenMetrics in, Prometheus text 0.0.4 out, a line at a time.
/// prometheus-client speaks only OpenMetrics. The two text formats differ,
/// for what we expose, in four ways: a counter family is named without
/// `_total` in OpenMetrics but with it in 0.0.4; `# UNIT` lines; `# EOF`;
/// and `unknown` is `untyped` in 0.0.4. (The SNMP counters that keep
/// snmp_exporter's names are written by [`snmp`] in either format.)
/// A `# HELP` line waits for its `# TYPE` line, which says whether it is
/// renamed.
struct ToPrometheusText<'s> {
    out: Chunks<'s>,
    /// The `#` line being written (sample lines go straight through).
    line: String,
    /// Where the next piece goes: a line's start, inside a `#` line, or
    /// inside a sample line.
    at: LineAt,
    help: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Default)]
enum LineAt {
    #[default]
    Start,
    Meta,
    Sample,
}

impl<'s> ToPrometheusText<'s> {
    fn new(out: Chunks<'s>) -> Self {
        ToPrometheusText {
            out,
            line: String::new(),
            at: LineAt::Start,
            help: None,
        }
    }

    fn line_done(&mut self) {
        let line = std::mem::take(&mut self.line);
        if line == "# EOF" || line.starts_with("# UNIT ") {
            return;
        }
        if line.starts_with("# HELP ") {
            self.flush_help(None);
            self.help = Some(line);
            return;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap_or_default();
            if rest.ends_with(" counter") {
                self.flush_help(Some(name));
                self.out.push(&format!("# TYPE {name}_total counter\n"));
            } else if rest.ends_with(" unknown") {
                self.flush_help(None);
                self.out.push(&format!("# TYPE {name} untyped\n"));
            } else {
                self.flush_help(None);
                self.out.push(&line);
                self.out.push("\n");
            }
            return;
        }
        self.flush_help(None);
        self.out.push(&line);
        self.out.push("\n");
    }

    /// The waiting `# HELP` line; renamed to `counter`'s `_total` name
    /// when it is that counter's.
    fn flush_help(&mut self, counter: Option<&str>) {
        let Some(help) = self.help.take() else {
            return;
        };
        let rest = &help["# HELP ".len()..];
        let name = rest.split(' ').next().unwrap_or_default();
        if counter == Some(name) {
            self.out.push("# HELP ");
            self.out.push(name);
            self.out.push("_total");
            self.out.push(&rest[name.len()..]);
        } else {
            self.out.push(&help);
        }
        self.out.push("\n");
    }
}

impl std::fmt::Write for ToPrometheusText<'_> {
    fn write_str(&mut self, mut s: &str) -> std::fmt::Result {
        // Most pieces are bits of a sample line (a label, a value) with no
        // line end: straight through.
        if self.at == LineAt::Sample && !s.as_bytes().contains(&b'\n') {
            self.out.push(s);
            return if self.out.stopped {
                Err(std::fmt::Error)
            } else {
                Ok(())
            };
        }
        while !s.is_empty() {
            if self.at == LineAt::Start {
                if s.starts_with('#') {
                    self.at = LineAt::Meta;
                } else {
                    self.flush_help(None);
                    self.at = LineAt::Sample;
                }
            }
            let end = s.as_bytes().iter().position(|&b| b == b'\n');
            let (piece, rest) = match end {
                Some(i) => (&s[..i], &s[i + 1..]),
                None => (s, ""),
            };
            match self.at {
                LineAt::Meta => {
                    self.line.push_str(piece);
                    if end.is_some() {
                        self.line_done();
                    }
                }
                _ => {
                    self.out.push(piece);
                    if end.is_some() {
                        self.out.push("\n");
                    }
                }
            }
            if end.is_some() {
                self.at = LineAt::Start;
            }
            s = rest;
        }
        if self.out.stopped {
            return Err(std::fmt::Error);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_get_their_total_name_in_prometheus_text() {
        let om = "# HELP a_requests Requests.\n# TYPE a_requests counter\na_requests_total{x=\"1\"} 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n# EOF\n";
        let want = "# HELP a_requests_total Requests.\n# TYPE a_requests_total counter\na_requests_total{x=\"1\"} 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n";
        // Whole, and in pieces cut anywhere (as the encoder writes them).
        for step in [om.len(), 1, 3, 7] {
            let mut got = Vec::new();
            let mut sink = |c: Vec<u8>| {
                got.extend_from_slice(&c);
                true
            };
            let mut t = ToPrometheusText::new(Chunks::new(&mut sink));
            let bytes = om.as_bytes();
            for piece in bytes.chunks(step) {
                std::fmt::Write::write_str(&mut t, std::str::from_utf8(piece).unwrap()).unwrap();
            }
            t.out.finish();
            assert_eq!(String::from_utf8(got).unwrap(), want, "pieces of {step}");
        }
        // `unknown` is untyped (the SNMP counters are written by
        // `snmp`, not converted).
        let om = "# HELP u In.\n# TYPE u unknown\nu{i=\"1\"} 5\n# UNIT x seconds\n# EOF\n";
        let mut got = Vec::new();
        let mut sink = |c: Vec<u8>| {
            got.extend_from_slice(&c);
            true
        };
        let mut t = ToPrometheusText::new(Chunks::new(&mut sink));
        std::fmt::Write::write_str(&mut t, om).unwrap();
        t.out.finish();
        assert_eq!(
            String::from_utf8(got).unwrap(),
            "# HELP u In.\n# TYPE u untyped\nu{i=\"1\"} 5\n"
        );
    }

    /// The RTT histogram has the configured bounds, or is not there at all.
    #[test]
    fn rtt_histogram_bounds_are_configured_or_it_is_off() {
        use std::time::Duration;
        let labels = TargetLabels(Arc::new(TargetLabelValues {
            target: "t".into(),
            member: String::new(),
            site: String::new(),
        }));
        let m = Metrics::new("a", &[Duration::from_millis(1), Duration::from_millis(3)]);
        m.icmp_rtt
            .as_ref()
            .expect("a histogram")
            .get_or_create(&labels)
            .observe(0.002);
        let text = m.encode(Format::PrometheusText);
        let buckets: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("utkikk_icmp_rtt_seconds_bucket{"))
            .collect();
        assert_eq!(buckets.len(), 3, "{buckets:?}");
        assert!(buckets[0].contains("le=\"0.001\"") && buckets[0].ends_with(" 0"));
        assert!(buckets[1].contains("le=\"0.003\"") && buckets[1].ends_with(" 1"));
        assert!(buckets[2].contains("le=\"+Inf\"") && buckets[2].ends_with(" 1"));

        let off = Metrics::new("a", &[]);
        assert!(off.icmp_rtt.is_none());
        assert!(!off
            .encode(Format::PrometheusText)
            .contains("utkikk_icmp_rtt"));
    }
}
