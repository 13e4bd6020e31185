//! The SNMP device series: what the last successful poll of each device
//! read, written on every scrape as text (prometheus-client's families
//! cannot set a counter to an absolute value, and a device's interface set
//! changes between polls). Each device's label sets are rendered once per
//! poll, not once per family and scrape: a 50-interface switch has 750
//! interface samples and 50 label sets.
//!
//! Names and labels are snmp_exporter's `if_mib` ones (`ifHCInOctets`,
//! `ifOperStatus`, … with `ifIndex`, `ifName`, `ifAlias`, `ifDescr`), plus
//! utkikk's `target`, `member`, `site`, so existing interface dashboards
//! work. Those counters have no `_total`: they are typed `unknown` in
//! OpenMetrics (which requires `_total` on counters) and `counter` in the
//! 0.0.4 text format.

use std::fmt::Write;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::TargetLabels;
use crate::inventory::CustomKind;
use crate::probe::snmp::{DeviceSnapshot, IF_METRICS};

/// Each device's last snapshot, by target id. Published whole (a
/// persistent map: a copy is O(1)), so a scrape encodes a consistent set
/// without a lock the live-state owner would wait on.
type Devices = imbl::OrdMap<String, Arc<Device>>;

/// A device's last snapshot and its label sets, rendered
/// (`target="…",member="…",site="…",…`, values escaped).
#[derive(Debug)]
struct Device {
    snap: DeviceSnapshot,
    base: String,
    info: Option<String>,
    interfaces: Vec<Arc<str>>,
    processors: Vec<Arc<str>>,
    storage: Vec<Arc<str>>,
}

/// Each row's label set: the previous poll's where the row at the same
/// place has the same labels (the usual case: names change rarely), else
/// rendered anew.
fn row_labels<R>(
    rows: &[R],
    prev: Option<(&[R], &[Arc<str>])>,
    same: impl Fn(&R, &R) -> bool,
    render: impl Fn(&R) -> String,
) -> Vec<Arc<str>> {
    rows.iter()
        .enumerate()
        .map(|(k, r)| {
            prev.and_then(|(rows, labels)| {
                rows.get(k)
                    .filter(|p| same(p, r))
                    .and_then(|_| labels.get(k).cloned())
            })
            .unwrap_or_else(|| render(r).into())
        })
        .collect()
}

impl Device {
    /// `prev`: the device's last poll, made with the same target labels.
    fn new(l: &TargetLabels, base: String, snap: DeviceSnapshot, prev: Option<&Device>) -> Device {
        let info = snap.system.as_ref().map(|s| {
            label_set(
                l,
                &[
                    ("sys_name", &s.name),
                    ("sys_descr", &s.descr),
                    ("sys_object_id", &s.object_id),
                    ("sys_location", &s.location),
                ],
            )
        });
        let interfaces = row_labels(
            &snap.interfaces,
            prev.map(|p| (&p.snap.interfaces[..], &p.interfaces[..])),
            |a, b| Arc::ptr_eq(&a.names, &b.names) || a.names == b.names,
            |i| {
                let n = &i.names;
                label_set(
                    l,
                    &[
                        ("ifIndex", &n.index_label),
                        ("ifName", &n.name),
                        ("ifAlias", &n.alias),
                        ("ifDescr", &n.descr),
                    ],
                )
            },
        );
        let processors = row_labels(
            &snap.processors,
            prev.map(|p| (&p.snap.processors[..], &p.processors[..])),
            |a, b| a.0 == b.0,
            |(idx, _)| label_set(l, &[("hrDeviceIndex", idx)]),
        );
        let storage = row_labels(
            &snap.storage,
            prev.map(|p| (&p.snap.storage[..], &p.storage[..])),
            |a, b| a.index_label == b.index_label && a.descr == b.descr,
            |st| {
                label_set(
                    l,
                    &[
                        ("hrStorageIndex", &st.index_label),
                        ("hrStorageDescr", &st.descr),
                    ],
                )
            },
        );
        Device {
            snap,
            base,
            info,
            interfaces,
            processors,
            storage,
        }
    }
}

/// utkikk's own labels of a device, then `extra`, as the text format
/// writes them (escaping as prometheus-client does).
fn label_set(l: &TargetLabels, extra: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let own = [
        ("target", l.target.as_str()),
        ("member", l.member.as_str()),
        ("site", l.site.as_str()),
    ];
    for (name, value) in own.iter().chain(extra) {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

#[derive(Debug, Default)]
pub struct SnmpSeries {
    devices: ArcSwap<Devices>,
}

/// Counters keep snmp_exporter's names (no `_total`), which OpenMetrics
/// allows only for `unknown`; the 0.0.4 text format calls them counters.
#[derive(Clone, Copy)]
enum Kind {
    Gauge,
    Counter,
}

/// A sample's value: what SNMP reads is an integer (written as one, as
/// snmp_exporter does: shorter, and exact); a custom OID's may be scaled.
#[derive(Clone, Copy)]
enum Num {
    Int(u64),
    Signed(i64),
    Float(f64),
}

/// Write one family from a stream of samples, nothing when it is empty.
fn family<'a, W: Write>(
    w: &mut W,
    openmetrics: bool,
    name: &str,
    help: &str,
    kind: Kind,
    samples: impl Iterator<Item = (&'a str, Num)>,
) -> std::fmt::Result {
    let mut samples = samples.peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let ty = match (kind, openmetrics) {
        (Kind::Gauge, _) => "gauge",
        (Kind::Counter, true) => "unknown",
        (Kind::Counter, false) => "counter",
    };
    for piece in ["# HELP ", name, " ", help, "\n# TYPE ", name, " ", ty, "\n"] {
        w.write_str(piece)?;
    }
    let (mut int, mut float) = (itoa::Buffer::new(), dtoa::Buffer::new());
    for (labels, v) in samples {
        let v = match v {
            Num::Int(i) => int.format(i),
            Num::Signed(i) => int.format(i),
            Num::Float(f) => float.format(f),
        };
        for piece in [name, "{", labels, "} ", v, "\n"] {
            w.write_str(piece)?;
        }
    }
    Ok(())
}

impl SnmpSeries {
    pub fn set(&self, labels: &TargetLabels, snap: DeviceSnapshot) {
        let prev = self.devices.load().get(&labels.target).cloned();
        // Its label sets begin with the target's own labels: reused only
        // while those are the same.
        let base = label_set(labels, &[]);
        let prev = prev.filter(|p| p.base == base);
        let entry = Arc::new(Device::new(labels, base, snap, prev.as_deref()));
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

    /// Every device family as text: OpenMetrics, or Prometheus 0.0.4.
    pub fn encode_text<W: Write>(&self, w: &mut W, openmetrics: bool) -> std::fmt::Result {
        let devices = self.devices.load_full();
        let devs = || devices.values().map(|d| &**d);
        family(
            w,
            openmetrics,
            "sysUpTime",
            "The time (in hundredths of a second) since the network management portion of the system was last re-initialized - 1.3.6.1.2.1.1.3",
            Kind::Gauge,
            devs().map(|d| (d.base.as_str(), Num::Int(d.snap.uptime_ticks))),
        )?;
        family(
            w,
            openmetrics,
            "utkikk_snmp_device_info",
            "What the device says about itself (sysName, sysDescr, sysObjectID, sysLocation); always 1",
            Kind::Gauge,
            devs().filter_map(|d| Some((d.info.as_deref()?, Num::Int(1)))),
        )?;
        for (c, (name, counter, help)) in IF_METRICS.iter().enumerate() {
            let kind = if *counter { Kind::Counter } else { Kind::Gauge };
            family(
                w,
                openmetrics,
                name,
                help,
                kind,
                devs().flat_map(|d| {
                    d.snap
                        .interfaces
                        .iter()
                        .zip(&d.interfaces)
                        .filter_map(move |(i, labels)| Some((&**labels, Num::Int(i.values[c]?))))
                }),
            )?;
        }
        family(
            w,
            openmetrics,
            "hrProcessorLoad",
            "The average, over the last minute, of the percentage of time that this processor was not idle - 1.3.6.1.2.1.25.3.3.1.2",
            Kind::Gauge,
            devs().flat_map(|d| {
                d.snap
                    .processors
                    .iter()
                    .zip(&d.processors)
                    .map(|((_, load), labels)| (&**labels, Num::Signed(*load)))
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
            family(
                w,
                openmetrics,
                name,
                help,
                Kind::Gauge,
                devs().flat_map(|d| {
                    d.snap.storage.iter().zip(&d.storage).map(move |(st, labels)| {
                        let v = match k {
                            0 => st.allocation_units,
                            1 => st.size,
                            _ => st.used,
                        };
                        (&**labels, Num::Int(v))
                    })
                }),
            )?;
        }
        // Custom OIDs: one family per name, across devices.
        let mut names: Vec<(&str, CustomKind, &str)> = Vec::new();
        for d in devs() {
            for (c, _) in &d.snap.custom {
                if !names.iter().any(|(n, _, _)| *n == c.name) {
                    names.push((&c.name, c.kind, &c.help));
                }
            }
        }
        for (name, kind, help) in names {
            let kind = match kind {
                CustomKind::Counter => Kind::Counter,
                CustomKind::Gauge => Kind::Gauge,
            };
            family(
                w,
                openmetrics,
                name,
                help,
                kind,
                devs().flat_map(|d| {
                    d.snap
                        .custom
                        .iter()
                        .filter(move |(c, _)| c.name == name)
                        .map(move |(_, v)| (d.base.as_str(), Num::Float(*v)))
                }),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::TargetLabelValues;
    use crate::probe::snmp::{IfNames, Interface};

    #[test]
    fn device_series_in_both_formats_with_values_escaped() {
        let series = SnmpSeries::default();
        let labels = TargetLabels(Arc::new(TargetLabelValues {
            target: "sw".into(),
            member: "m".into(),
            site: String::new(),
        }));
        let mut values = [None; 9];
        values[0] = Some(12_345_678_901);
        let snap = DeviceSnapshot {
            uptime_ticks: 100,
            interfaces: vec![Interface {
                index: 3,
                names: Arc::new(IfNames {
                    index_label: "3".into(),
                    name: "ge\"0\\1".into(),
                    alias: "up\nlink".into(),
                    descr: "d".into(),
                    if_type: None,
                }),
                values,
            }],
            ..Default::default()
        };
        series.set(&labels, snap);
        let text = |om| {
            let mut s = String::new();
            series.encode_text(&mut s, om).unwrap();
            s
        };
        let (om, prom) = (text(true), text(false));
        let sample = r#"ifHCInOctets{target="sw",member="m",site="",ifIndex="3",ifName="ge\"0\\1",ifAlias="up\nlink",ifDescr="d"} 12345678901"#;
        for t in [&om, &prom] {
            assert!(
                t.contains("sysUpTime{target=\"sw\",member=\"m\",site=\"\"} 100\n"),
                "{t}"
            );
            assert!(t.lines().any(|l| l == sample), "{t}");
            // Only the values read are written: no empty families.
            assert!(!t.contains("hrProcessorLoad"), "{t}");
            assert!(!t.contains("ifOutErrors"), "{t}");
        }
        assert!(om.contains("# TYPE ifHCInOctets unknown\n"));
        assert!(prom.contains("# TYPE ifHCInOctets counter\n"));
        assert!(
            om.contains("# TYPE sysUpTime gauge\n") && prom.contains("# TYPE sysUpTime gauge\n")
        );
        // The next poll reuses the label sets of unchanged rows, and
        // renders a renamed row's (or all, when the target's labels
        // changed) anew.
        let mut next = snap_again(&labels, &series);
        next.interfaces[0].names = Arc::new(IfNames {
            alias: "uplink".into(),
            ..IfNames::clone(&next.interfaces[0].names)
        });
        series.set(&labels, next.clone());
        assert!(text(true).contains(r#"ifAlias="uplink",ifDescr="d"} 12345678901"#));
        let moved = TargetLabels(Arc::new(TargetLabelValues {
            target: "sw".into(),
            member: "n".into(),
            site: String::new(),
        }));
        series.set(&moved, next);
        assert!(text(true).contains(r#"ifHCInOctets{target="sw",member="n",site="",ifIndex="3""#));
        series.remove("sw");
        assert_eq!(text(true), "");
    }

    /// The snapshot last set for `labels`' target, to poll "again".
    fn snap_again(labels: &TargetLabels, series: &SnmpSeries) -> DeviceSnapshot {
        let devices = series.devices.load();
        let d = devices.get(&labels.target).expect("set");
        // Same rows: their label sets are shared with the next poll's.
        let again = Device::new(labels, d.base.clone(), d.snap.clone(), Some(d));
        assert!(Arc::ptr_eq(&again.interfaces[0], &d.interfaces[0]));
        d.snap.clone()
    }
}
