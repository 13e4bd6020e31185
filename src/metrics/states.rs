//! The per-target series that follow the live state
//! (`utkikk_target_state`, `utkikk_target_in_maintenance`) and the
//! inventory (`utkikk_target_info`, the degraded thresholds): encoded at each scrape from what
//! the live-state owner published, so nothing is stored per target for
//! them. At 10,000 targets they were 90,000 series in families' maps
//! (~10 MB) and a map update at every transition.

use std::sync::OnceLock;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, EncodeMetric, LabelSetEncoder, MetricEncoder,
};
use prometheus_client::metrics::MetricType;

use crate::inventory::Target;
use crate::model::State;

/// The targets as they are now, for the scrape: each configured target
/// with the state it shows and whether it is inside a maintenance window.
pub trait TargetStates: Send + Sync + 'static {
    fn for_each(&self, f: &mut dyn FnMut(&Target, State, bool));
}

/// Set once, when the live state starts; nothing is encoded before.
#[derive(Default)]
pub struct StateSeries(OnceLock<Box<dyn TargetStates>>);

impl std::fmt::Debug for StateSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateSeries")
    }
}

impl StateSeries {
    /// Follow `source` from now on (a second call is ignored: the live
    /// state's snapshot handle never changes).
    pub fn follow(&self, source: Box<dyn TargetStates>) {
        let _ = self.0.set(source);
    }
}

/// A target's labels, borrowed, plus extra ones.
struct Labels<'a, const N: usize>(&'a Target, [(&'static str, &'a str); N]);

impl<const N: usize> EncodeLabelSet for Labels<'_, N> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        let t = self.0;
        ("target", t.id.as_str()).encode(encoder.encode_label())?;
        ("member", t.member.as_deref().unwrap_or("")).encode(encoder.encode_label())?;
        ("site", t.site.as_deref().unwrap_or("")).encode(encoder.encode_label())?;
        for l in &self.1 {
            l.encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// A label set behind a reference (the encoder wants a sized one).
struct Dyn<'a>(&'a dyn EncodeLabelSet);

impl EncodeLabelSet for Dyn<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }
}

#[derive(Debug)]
enum Value {
    Int(i64),
    Float(f64),
}

impl EncodeMetric for Value {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        match self {
            Value::Int(v) => encoder.encode_gauge(v),
            Value::Float(v) => encoder.encode_gauge(v),
        }
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

/// One gauge family over every target (`samples` writes a target's), or
/// nothing without targets.
fn family(
    source: &dyn TargetStates,
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &Samples,
) -> Fmt {
    let mut any = false;
    source.for_each(&mut |_, _, _| any = true);
    if !any {
        return Ok(());
    }
    let mut fam = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    let mut result = Ok(());
    source.for_each(&mut |t, state, maintenance| {
        if result.is_ok() {
            result = samples(t, state, maintenance, &mut |labels, v| {
                v.encode(fam.encode_family(&Dyn(labels))?)
            });
        }
    });
    result
}

type Fmt = Result<(), std::fmt::Error>;
/// Writes one sample.
type Sink<'a> = dyn FnMut(&dyn EncodeLabelSet, Value) -> Fmt + 'a;
/// Writes a target's samples of one family (its state, whether in
/// maintenance, and where they go).
type Samples = dyn Fn(&Target, State, bool, &mut Sink<'_>) -> Fmt;

impl Collector for StateSeries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Fmt {
        let Some(source) = self.0.get() else {
            return Ok(());
        };
        let source = &**source;
        family(
            source,
            &mut encoder,
            "utkikk_target_state",
            "Current state of each target: 1 for the state it is in, 0 for the others",
            &|t, state, _, out| {
                for s in State::ALL {
                    let labels = Labels(t, [("kind", t.kind.as_str()), ("state", s.as_str())]);
                    out(&labels, Value::Int(i64::from(s == state)))?;
                }
                Ok(())
            },
        )?;
        family(
            source,
            &mut encoder,
            "utkikk_target_info",
            "What the config says of each target: its kind, the members its failure hits (comma-separated: its own, those it serves, those of the services and targets behind it) and whether that is more than its own member (shared infrastructure); always 1",
            &|t, _, _, out| {
                let affected = t.affected_members.join(",");
                let shared = if t.is_shared() { "true" } else { "false" };
                let labels = Labels(
                    t,
                    [
                        ("kind", t.kind.as_str()),
                        ("affected_members", affected.as_str()),
                        ("shared", shared),
                    ],
                );
                out(&labels, Value::Int(1))
            },
        )?;
        family(
            source,
            &mut encoder,
            "utkikk_target_in_maintenance",
            "Whether the target is inside a planned maintenance window now (1) or not (0); its state shows maintenance meanwhile",
            &|t, _, maintenance, out| out(&Labels(t, []), Value::Int(i64::from(maintenance))),
        )?;
        family(
            source,
            &mut encoder,
            "utkikk_target_degraded_rtt_seconds",
            "The target's threshold (config): mean RTT above it makes a reachable target degraded",
            &|t, _, _, out| {
                out(
                    &Labels(t, []),
                    Value::Float(t.thresholds.degraded_rtt.as_secs_f64()),
                )
            },
        )?;
        family(
            source,
            &mut encoder,
            "utkikk_target_degraded_loss_ratio",
            "The target's threshold (config): loss above it makes a reachable target degraded",
            &|t, _, _, out| {
                out(
                    &Labels(t, []),
                    Value::Float(t.thresholds.degraded_loss_ratio),
                )
            },
        )
    }
}
