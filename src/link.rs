//! Links judged from both ends: what each end's interface says (from its
//! device's SNMP poll), and utilisation from counter deltas.
//!
//! Pure logic: callers pass snapshots and instants. Owns: interface
//! lookup by name, end verdicts, counter-rate bookkeeping. Must not touch:
//! states (health.rs combines the verdicts), metrics.

use std::collections::HashMap;
use std::time::Instant;

use crate::inventory::LinkEnd;
use crate::model::EndStatus;
use crate::probe::snmp::{self, DeviceSnapshot, Interface};

/// Find an end's interface: by ifName first, then by ifAlias.
pub fn find<'a>(snap: &'a DeviceSnapshot, name: &str) -> Option<&'a Interface> {
    snmp::find_interface(&snap.interfaces, name)
}

/// The verdict of `end` from its device's latest successful poll.
pub fn end_status(end: &LinkEnd, snap: &DeviceSnapshot) -> EndStatus {
    snmp::end_status(&end.device, &end.interface, find(snap, &end.interface))
}

/// Bits per second in and out of one interface over the last interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub in_bps: f64,
    pub out_bps: f64,
}

/// Previous octet counters per (device, ifIndex), to turn counters into
/// rates. A counter that went back (device reboot, counter reset, a
/// Counter64 passing 2^53) gives no rate for that interval: never a
/// negative rate, never a spike.
#[derive(Debug, Default)]
pub struct CounterRates {
    prev: HashMap<(String, u64), (u64, u64, Instant)>,
}

impl CounterRates {
    pub fn update(
        &mut self,
        device: &str,
        i: &Interface,
        rebooted: bool,
        now: Instant,
    ) -> Option<Rates> {
        let (inn, out) = (i.in_octets()?, i.out_octets()?);
        let key = (device.to_string(), i.index);
        let prev = self.prev.insert(key, (inn, out, now));
        let (pin, pout, then) = prev?;
        let secs = now.checked_duration_since(then)?.as_secs_f64();
        if rebooted || inn < pin || out < pout || secs <= 0.0 {
            return None;
        }
        Some(Rates {
            in_bps: (inn - pin) as f64 * 8.0 / secs,
            out_bps: (out - pout) as f64 * 8.0 / secs,
        })
    }

    /// Forget a device (removed, or its poll failed: the next good poll
    /// starts a new interval rather than spanning the gap).
    pub fn forget(&mut self, device: &str) {
        self.prev.retain(|(d, _), _| d != device);
    }
}

/// Utilisation 0–1 (may exceed 1 if ifHighSpeed understates the link).
pub fn utilisation(bps: f64, i: &Interface) -> Option<f64> {
    let mbps = i.high_speed_mbps().filter(|s| *s > 0)?;
    Some(bps / (mbps as f64 * 1e6))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn iface(index: u64, name: &str, oper: u64, admin: u64, inn: u64, out: u64) -> Interface {
        let mut i = Interface {
            index,
            names: std::sync::Arc::new(snmp::IfNames {
                name: name.into(),
                alias: format!("alias-{name}"),
                ..Default::default()
            }),
            ..Default::default()
        };
        i.values[0] = Some(inn);
        i.values[1] = Some(out);
        i.values[6] = Some(oper);
        i.values[7] = Some(admin);
        i.values[8] = Some(1000);
        i
    }

    fn end(name: &str) -> LinkEnd {
        LinkEnd {
            device: "sw1".into(),
            interface: name.into(),
        }
    }

    #[test]
    fn end_verdicts() {
        let snap = DeviceSnapshot {
            interfaces: vec![
                iface(1, "ge-0/0/1", 1, 1, 0, 0),
                iface(2, "ge-0/0/2", 2, 1, 0, 0),
                iface(3, "ge-0/0/3", 2, 2, 0, 0),
                iface(4, "ge-0/0/4", 7, 1, 0, 0),
            ],
            ..Default::default()
        };
        assert_eq!(end_status(&end("ge-0/0/1"), &snap), EndStatus::Up);
        assert_eq!(end_status(&end("alias-ge-0/0/1"), &snap), EndStatus::Up);
        let s = end_status(&end("ge-0/0/2"), &snap);
        assert!(s.is_down() && s.to_string().contains("down(2)"), "{s}");
        assert!(matches!(
            end_status(&end("ge-0/0/3"), &snap),
            EndStatus::AdminDown { .. }
        ));
        let s = end_status(&end("ge-0/0/4"), &snap);
        assert!(s.is_down() && s.to_string().contains("lowerLayerDown(7)"));
        assert!(matches!(
            end_status(&end("nope"), &snap),
            EndStatus::Unknown { .. }
        ));
    }

    #[test]
    fn rates_never_negative_and_skip_resets() {
        let mut r = CounterRates::default();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(10);
        let t2 = t1 + Duration::from_secs(10);
        let t3 = t2 + Duration::from_secs(10);
        assert_eq!(
            r.update("sw1", &iface(1, "a", 1, 1, 1000, 2000), false, t0),
            None
        );
        let x = r
            .update("sw1", &iface(1, "a", 1, 1, 2000, 4500), false, t1)
            .unwrap();
        assert_eq!(x.in_bps, 800.0);
        assert_eq!(x.out_bps, 2000.0);
        // Counters reset (reboot): no rate, not a negative one.
        assert_eq!(
            r.update("sw1", &iface(1, "a", 1, 1, 10, 20), false, t2),
            None
        );
        // And the next interval is measured from the reset.
        let x = r
            .update("sw1", &iface(1, "a", 1, 1, 1260, 20), false, t3)
            .unwrap();
        assert_eq!(x.in_bps, 1000.0);
        // A reboot flag alone also skips, even if counters happen to grow.
        assert_eq!(
            r.update(
                "sw1",
                &iface(1, "a", 1, 1, 5000, 5000),
                true,
                t3 + Duration::from_secs(10)
            ),
            None
        );
        let u = utilisation(1e8, &iface(1, "a", 1, 1, 0, 0)).unwrap();
        assert!((u - 0.1).abs() < 1e-12);
    }
}
