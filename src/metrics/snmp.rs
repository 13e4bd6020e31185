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

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;

use super::TargetLabels;
use crate::inventory::CustomKind;
use crate::probe::snmp::{DeviceSnapshot, IF_METRICS};

#[derive(Debug, Default)]
pub struct SnmpSeries {
    devices: Mutex<BTreeMap<String, (TargetLabels, DeviceSnapshot)>>,
    /// Custom counter names seen, for the 0.0.4 type line.
    custom_counters: Mutex<HashSet<String>>,
}

type Labels = Vec<(&'static str, String)>;

fn base(t: &TargetLabels) -> Labels {
    vec![
        ("target", t.target.clone()),
        ("member", t.member.clone()),
        ("site", t.site.clone()),
    ]
}

/// One sample to encode: labels and value.
struct Sample(Labels, f64);

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

fn emit(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    ty: MetricType,
    samples: &[Sample],
) -> Result<(), std::fmt::Error> {
    if samples.is_empty() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, None, ty)?;
    for Sample(labels, v) in samples {
        let m = family.encode_family(labels)?;
        Value(*v).encode(m)?;
    }
    Ok(())
}

impl SnmpSeries {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (TargetLabels, DeviceSnapshot)>> {
        self.devices.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set(&self, labels: &TargetLabels, snap: DeviceSnapshot) {
        {
            let mut names = self
                .custom_counters
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (c, _) in &snap.custom {
                if c.kind == CustomKind::Counter {
                    names.insert(c.name.clone());
                }
            }
        }
        self.lock()
            .insert(labels.target.clone(), (labels.clone(), snap));
    }

    pub fn remove(&self, target: &str) {
        self.lock().remove(target);
    }

    /// Names typed `counter` in the 0.0.4 text format.
    pub fn counter_names(&self) -> HashSet<String> {
        let mut names: HashSet<String> = IF_METRICS
            .iter()
            .filter(|(_, counter, _)| *counter)
            .map(|(n, _, _)| (*n).to_string())
            .collect();
        names.extend(
            self.custom_counters
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .cloned(),
        );
        names
    }
}

impl Collector for SnmpSeries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let devices = self.lock();
        let mut uptime = Vec::new();
        let mut info = Vec::new();
        let mut ifs: Vec<Vec<Sample>> = (0..IF_METRICS.len()).map(|_| Vec::new()).collect();
        let mut cpu = Vec::new();
        let mut storage: [Vec<Sample>; 3] = [Vec::new(), Vec::new(), Vec::new()];
        let mut custom: BTreeMap<String, (CustomKind, String, Vec<Sample>)> = BTreeMap::new();
        for (labels, snap) in devices.values() {
            let b = base(labels);
            uptime.push(Sample(b.clone(), snap.uptime_ticks as f64));
            if let Some(s) = &snap.system {
                let mut l = b.clone();
                l.push(("sys_name", s.name.clone()));
                l.push(("sys_descr", s.descr.clone()));
                l.push(("sys_object_id", s.object_id.clone()));
                l.push(("sys_location", s.location.clone()));
                info.push(Sample(l, 1.0));
            }
            for i in &snap.interfaces {
                let mut l = b.clone();
                l.push(("ifIndex", i.index.to_string()));
                l.push(("ifName", i.name.clone()));
                l.push(("ifAlias", i.alias.clone()));
                l.push(("ifDescr", i.descr.clone()));
                for (c, v) in i.values.iter().enumerate() {
                    if let Some(v) = v {
                        ifs[c].push(Sample(l.clone(), *v as f64));
                    }
                }
            }
            for (idx, load) in &snap.processors {
                let mut l = b.clone();
                l.push(("hrDeviceIndex", idx.to_string()));
                cpu.push(Sample(l, *load as f64));
            }
            for s in &snap.storage {
                let mut l = b.clone();
                l.push(("hrStorageIndex", s.index.to_string()));
                l.push(("hrStorageDescr", s.descr.clone()));
                storage[0].push(Sample(l.clone(), s.allocation_units as f64));
                storage[1].push(Sample(l.clone(), s.size as f64));
                storage[2].push(Sample(l, s.used as f64));
            }
            for (c, v) in &snap.custom {
                custom
                    .entry(c.name.clone())
                    .or_insert_with(|| (c.kind, c.help.clone(), Vec::new()))
                    .2
                    .push(Sample(b.clone(), *v));
            }
        }
        emit(
            &mut encoder,
            "sysUpTime",
            "The time (in hundredths of a second) since the network management portion of the system was last re-initialized - 1.3.6.1.2.1.1.3",
            MetricType::Gauge,
            &uptime,
        )?;
        emit(
            &mut encoder,
            "utkikk_snmp_device_info",
            "What the device says about itself (sysName, sysDescr, sysObjectID, sysLocation); always 1",
            MetricType::Gauge,
            &info,
        )?;
        for (c, (name, counter, help)) in IF_METRICS.iter().enumerate() {
            let ty = if *counter {
                MetricType::Unknown
            } else {
                MetricType::Gauge
            };
            emit(&mut encoder, name, help, ty, &ifs[c])?;
        }
        emit(
            &mut encoder,
            "hrProcessorLoad",
            "The average, over the last minute, of the percentage of time that this processor was not idle - 1.3.6.1.2.1.25.3.3.1.2",
            MetricType::Gauge,
            &cpu,
        )?;
        for (i, (name, help)) in [
            ("hrStorageAllocationUnits", "The size, in bytes, of the data objects allocated from this pool - 1.3.6.1.2.1.25.2.3.1.4"),
            ("hrStorageSize", "The size of the storage represented by this entry, in units of hrStorageAllocationUnits - 1.3.6.1.2.1.25.2.3.1.5"),
            ("hrStorageUsed", "The amount of the storage represented by this entry that is allocated, in units of hrStorageAllocationUnits - 1.3.6.1.2.1.25.2.3.1.6"),
        ]
        .into_iter()
        .enumerate()
        {
            emit(&mut encoder, name, help, MetricType::Gauge, &storage[i])?;
        }
        for (name, (kind, help, samples)) in &custom {
            let ty = match kind {
                CustomKind::Counter => MetricType::Unknown,
                CustomKind::Gauge => MetricType::Gauge,
            };
            emit(&mut encoder, name, help, ty, samples)?;
        }
        Ok(())
    }
}
