//! The SNMP device series: what the last successful poll of each device
//! read, encoded on every scrape by a [`Collector`] (prometheus-client's
//! families cannot set a counter to an absolute value, and a device's
//! interface set changes between polls).
//!
//! Names and labels are snmp_exporter's `if_mib` ones (`ifHCInOctets`,
//! `ifOperStatus`, … with `ifIndex`, `ifName`, `ifAlias`, `ifDescr`), plus
//! utkikk's `target`, `member`, `site`, so existing interface dashboards
//! work. Those counters have no `_total`: they are typed `unknown` in
//! OpenMetrics (which requires `_total` on counters) and `counter` in the
//! 0.0.4 text format.

use std::collections::HashSet;
use std::sync::Arc;

use arc_swap::ArcSwap;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, EncodeMetric, LabelSetEncoder,
};
use prometheus_client::metrics::MetricType;

use super::TargetLabels;
use crate::inventory::CustomKind;
use crate::probe::snmp::{DeviceSnapshot, IF_METRICS};

/// Each device's last snapshot, by target id. Published whole (a
/// persistent map: a copy is O(1)), so a scrape encodes a consistent set
/// without a lock the live-state owner would wait on.
type Devices = imbl::OrdMap<String, Arc<(TargetLabels, DeviceSnapshot)>>;

#[derive(Debug, Default)]
pub struct SnmpSeries {
    devices: ArcSwap<Devices>,
    /// Custom counter names seen, for the 0.0.4 type line.
    custom_counters: ArcSwap<HashSet<String>>,
}

/// utkikk's own labels of a device.
struct Base<'a>(&'a TargetLabels);

impl EncodeLabelSet for Base<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        ("target", self.0.target.as_str()).encode(encoder.encode_label())?;
        ("member", self.0.member.as_str()).encode(encoder.encode_label())?;
        ("site", self.0.site.as_str()).encode(encoder.encode_label())
    }
}

/// A device's labels plus extra ones (interface, storage, sys info).
struct With<'a, const N: usize>(&'a TargetLabels, [(&'static str, &'a str); N]);

impl<const N: usize> EncodeLabelSet for With<'_, N> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        Base(self.0).encode(encoder)?;
        for l in &self.1 {
            l.encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Value(f64);

impl EncodeMetric for Value {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.0)
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

/// Encode one family from a stream of samples, nothing when it is empty.
/// Samples are encoded as they come: a scrape of thousands of interfaces
/// never holds them all as label sets at once.
fn emit<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    ty: MetricType,
    samples: impl Iterator<Item = (L, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut samples = samples.peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, None, ty)?;
    for (labels, v) in samples {
        Value(v).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl SnmpSeries {
    pub fn set(&self, labels: &TargetLabels, snap: DeviceSnapshot) {
        let known = self.custom_counters.load();
        let new: Vec<&str> = snap
            .custom
            .iter()
            .filter(|(c, _)| c.kind == CustomKind::Counter && !known.contains(&c.name))
            .map(|(c, _)| c.name.as_str())
            .collect();
        if !new.is_empty() {
            self.custom_counters.rcu(|names| {
                let mut names = (**names).clone();
                names.extend(new.iter().map(|n| n.to_string()));
                names
            });
        }
        let entry = Arc::new((labels.clone(), snap));
        self.devices.rcu(|d| {
            let mut d = (**d).clone();
            d.insert(labels.target.clone(), entry.clone());
            d
        });
    }

    pub fn remove(&self, target: &str) {
        if self.devices.load().contains_key(target) {
            self.devices.rcu(|d| {
                let mut d = (**d).clone();
                d.remove(target);
                d
            });
        }
    }

    /// Names typed `counter` in the 0.0.4 text format.
    pub fn counter_names(&self) -> HashSet<String> {
        let mut names: HashSet<String> = IF_METRICS
            .iter()
            .filter(|(_, counter, _)| *counter)
            .map(|(n, _, _)| (*n).to_string())
            .collect();
        names.extend(self.custom_counters.load().iter().cloned());
        names
    }
}

impl Collector for SnmpSeries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let devices = self.devices.load_full();
        let devs = || devices.values().map(|d| (&d.0, &d.1));
        emit(
            &mut encoder,
            "sysUpTime",
            "The time (in hundredths of a second) since the network management portion of the system was last re-initialized - 1.3.6.1.2.1.1.3",
            MetricType::Gauge,
            devs().map(|(l, s)| (Base(l), s.uptime_ticks as f64)),
        )?;
        emit(
            &mut encoder,
            "utkikk_snmp_device_info",
            "What the device says about itself (sysName, sysDescr, sysObjectID, sysLocation); always 1",
            MetricType::Gauge,
            devs().filter_map(|(l, s)| {
                let s = s.system.as_ref()?;
                Some((
                    With(
                        l,
                        [
                            ("sys_name", s.name.as_str()),
                            ("sys_descr", s.descr.as_str()),
                            ("sys_object_id", s.object_id.as_str()),
                            ("sys_location", s.location.as_str()),
                        ],
                    ),
                    1.0,
                ))
            }),
        )?;
        for (c, (name, counter, help)) in IF_METRICS.iter().enumerate() {
            let ty = if *counter {
                MetricType::Unknown
            } else {
                MetricType::Gauge
            };
            emit(
                &mut encoder,
                name,
                help,
                ty,
                devs().flat_map(|(l, s)| {
                    s.interfaces.iter().filter_map(move |i| {
                        let v = i.values[c]?;
                        Some((
                            With(
                                l,
                                [
                                    ("ifIndex", i.index_label.as_str()),
                                    ("ifName", i.name.as_str()),
                                    ("ifAlias", i.alias.as_str()),
                                    ("ifDescr", i.descr.as_str()),
                                ],
                            ),
                            v as f64,
                        ))
                    })
                }),
            )?;
        }
        emit(
            &mut encoder,
            "hrProcessorLoad",
            "The average, over the last minute, of the percentage of time that this processor was not idle - 1.3.6.1.2.1.25.3.3.1.2",
            MetricType::Gauge,
            devs().flat_map(|(l, s)| {
                s.processors
                    .iter()
                    .map(move |(idx, load)| (With(l, [("hrDeviceIndex", idx.as_str())]), *load as f64))
            }),
        )?;
        for (k, (name, help)) in [
            ("hrStorageAllocationUnits", "The size, in bytes, of the data objects allocated from this pool - 1.3.6.1.2.1.25.2.3.1.4"),
            ("hrStorageSize", "The size of the storage represented by this entry, in units of hrStorageAllocationUnits - 1.3.6.1.2.1.25.2.3.1.5"),
            ("hrStorageUsed", "The amount of the storage represented by this entry that is allocated, in units of hrStorageAllocationUnits - 1.3.6.1.2.1.25.2.3.1.6"),
        ]
        .into_iter()
        .enumerate()
        {
            emit(
                &mut encoder,
                name,
                help,
                MetricType::Gauge,
                devs().flat_map(|(l, s)| {
                    s.storage.iter().map(move |st| {
                        let v = match k {
                            0 => st.allocation_units,
                            1 => st.size,
                            _ => st.used,
                        };
                        (
                            With(
                                l,
                                [
                                    ("hrStorageIndex", st.index_label.as_str()),
                                    ("hrStorageDescr", st.descr.as_str()),
                                ],
                            ),
                            v as f64,
                        )
                    })
                }),
            )?;
        }
        // Custom OIDs: one family per name, across devices.
        let mut names: Vec<(&str, CustomKind, &str)> = Vec::new();
        for (_, s) in devs() {
            for (c, _) in &s.custom {
                if !names.iter().any(|(n, _, _)| *n == c.name) {
                    names.push((&c.name, c.kind, &c.help));
                }
            }
        }
        for (name, kind, help) in names {
            let ty = match kind {
                CustomKind::Counter => MetricType::Unknown,
                CustomKind::Gauge => MetricType::Gauge,
            };
            emit(
                &mut encoder,
                name,
                help,
                ty,
                devs().flat_map(|(l, s)| {
                    s.custom
                        .iter()
                        .filter(move |(c, _)| c.name == name)
                        .map(move |(_, v)| (Base(l), *v))
                }),
            )?;
        }
        Ok(())
    }
}
