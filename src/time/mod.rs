//! Time: interval algebra over UTC milliseconds, and Europe/Oslo — the
//! calendar months that are SLA windows, local days, schedules with
//! Norwegian public holidays.
//!
//! A leaf: it knows nothing of targets, states or storage, so everything
//! else may use it without forming a cycle.

pub mod calendar;
pub mod interval;
pub mod oslo;
pub mod schedule;
