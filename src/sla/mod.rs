//! Availability from the ledger: interval algebra, state timelines, and
//! (next) calendars, schedules and service levels.
//!
//! Pure where it can be: the functions here take rows read from the
//! ledger and a window, and never look at a clock.

pub mod calendar;
pub mod interval;
pub mod timeline;
