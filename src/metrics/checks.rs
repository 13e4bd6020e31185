//! Series of the service checks (TCP, HTTP(S), TLS, DNS), named so an
//! operator who knows blackbox_exporter finds them: its
//! `probe_http_duration_seconds{phase}` is `utkikk_http_duration_seconds
//! {phase}` here, its `probe_ssl_earliest_cert_expiry` is
//! `utkikk_tls_cert_not_after_seconds`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{FGauge, ProbeLabels, TargetLabels};
use crate::probe::check::CheckOutcome;

/// HTTP phases, as blackbox_exporter names them.
pub const HTTP_PHASES: [&str; 5] = ["resolve", "connect", "tls", "processing", "transfer"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    #[prometheus(flatten)]
    base: TargetLabels,
    phase: &'static str,
}

#[derive(Clone, Default)]
pub(super) struct CheckSeries {
    duration: Family<ProbeLabels, FGauge>,
    connect: Family<ProbeLabels, FGauge>,
    http_phase: Family<PhaseLabels, FGauge>,
    http_status: Family<TargetLabels, Gauge>,
    http_redirects: Family<TargetLabels, Gauge>,
    cert_not_after: Family<TargetLabels, Gauge>,
    dns_answers: Family<TargetLabels, Gauge>,
}

impl CheckSeries {
    pub(super) fn register(&self, r: &mut Registry) {
        r.register(
            "utkikk_check_duration_seconds",
            "How long the last service check took, from its first connection attempt to its answer",
            self.duration.clone(),
        );
        r.register(
            "utkikk_check_connect_duration_seconds",
            "How long the last service check's TCP connection took to open",
            self.connect.clone(),
        );
        r.register(
            "utkikk_http_duration_seconds",
            "Time of the last HTTP check in each phase (resolve, connect, tls, processing, transfer), summed over redirects; as blackbox_exporter's probe_http_duration_seconds",
            self.http_phase.clone(),
        );
        r.register(
            "utkikk_http_status_code",
            "HTTP status of the last check's final answer (0: none)",
            self.http_status.clone(),
        );
        r.register(
            "utkikk_http_redirects",
            "Redirects the last HTTP check followed",
            self.http_redirects.clone(),
        );
        r.register(
            "utkikk_tls_cert_not_after_seconds",
            "Expiry (Unix time) of the certificate in the served chain that expires first",
            self.cert_not_after.clone(),
        );
        r.register(
            "utkikk_dns_answer_rrs",
            "Records in the answer section of the last DNS check",
            self.dns_answers.clone(),
        );
    }

    pub(super) fn record(&self, base: &TargetLabels, probe: ProbeLabels, c: &CheckOutcome) {
        self.duration
            .get_or_create(&probe)
            .set(c.duration.as_secs_f64());
        let connect = c.phases.iter().any(|(p, _)| *p == "connect");
        if connect {
            self.connect
                .get_or_create(&probe)
                .set(c.phase("connect").as_secs_f64());
        } else {
            self.connect.remove(&probe);
        }
        match c.kind {
            crate::probe::ProbeKind::Http => {
                for phase in HTTP_PHASES {
                    self.http_phase
                        .get_or_create(&PhaseLabels {
                            base: base.clone(),
                            phase,
                        })
                        .set(c.phase(phase).as_secs_f64());
                }
                self.http_status
                    .get_or_create(base)
                    .set(c.http_status.map_or(0, i64::from));
                self.http_redirects
                    .get_or_create(base)
                    .set(i64::from(c.redirects));
            }
            crate::probe::ProbeKind::Dns => match c.dns_answers {
                Some(n) => {
                    self.dns_answers.get_or_create(base).set(i64::from(n));
                }
                None => {
                    self.dns_answers.remove(base);
                }
            },
            _ => {}
        }
        // A chain not seen this time is not exported as if current.
        match &c.cert {
            Some(cert) => {
                self.cert_not_after
                    .get_or_create(base)
                    .set(cert.not_after.timestamp());
            }
            None => {
                self.cert_not_after.remove(base);
            }
        }
    }

    pub(super) fn remove(&self, base: &TargetLabels, probe: &ProbeLabels) {
        self.duration.remove(probe);
        self.connect.remove(probe);
        for phase in HTTP_PHASES {
            self.http_phase.remove(&PhaseLabels {
                base: base.clone(),
                phase,
            });
        }
        self.http_status.remove(base);
        self.http_redirects.remove(base);
        self.cert_not_after.remove(base);
        self.dns_answers.remove(base);
    }
}
