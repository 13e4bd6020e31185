//! Calendar in Europe/Oslo: month windows (the SLA window), with the DST
//! changes that make March 743 hours and October 745.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Oslo;
use chrono_tz::Tz;

use super::interval::Interval;

/// A calendar month, as `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

/// The years utkikk answers for: before 2000 there was no such record,
/// and before 1895 Oslo was not even on CET (local mean time).
pub const YEARS: std::ops::RangeInclusive<i32> = 2000..=2199;

impl Month {
    /// Parse `YYYY-MM`: digits only (`+999-01` is not a month), a year in
    /// [`YEARS`].
    pub fn parse(s: &str) -> Option<Month> {
        let (y, m) = s.split_once('-')?;
        let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
        if y.len() != 4 || m.len() != 2 || !digits(y) || !digits(m) {
            return None;
        }
        let month = Month {
            year: y.parse().ok()?,
            month: m.parse().ok()?,
        };
        ((1..=12).contains(&month.month) && YEARS.contains(&month.year)).then_some(month)
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    pub fn prev(self) -> Month {
        if self.month == 1 {
            Month {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Month {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    /// Midnight at the start of the month, Europe/Oslo.
    pub fn start(self) -> Option<DateTime<Tz>> {
        let day = NaiveDate::from_ymd_opt(self.year, self.month, 1)?;
        let ms = super::oslo::day_start(day)?;
        Some(Utc.timestamp_millis_opt(ms).single()?.with_timezone(&Oslo))
    }

    /// `[start of month, start of next month)` in UTC milliseconds.
    pub fn window(self) -> Option<Interval> {
        Some(Interval::new(
            self.start()?.timestamp_millis(),
            self.next().start()?.timestamp_millis(),
        ))
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

pub use super::oslo::rfc3339 as oslo_rfc3339;

/// Local Oslo time as UTC milliseconds, for tests (the earlier of an hour
/// that happens twice).
#[cfg(test)]
pub fn oslo_ms(y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
    Oslo.with_ymd_and_hms(y, m, d, h, min, 0)
        .earliest()
        .map(|t| t.timestamp_millis())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(m: &str) -> i64 {
        Month::parse(m).unwrap().window().unwrap().len() / 3_600_000
    }

    #[test]
    fn months_in_oslo_have_their_dst_lengths() {
        assert_eq!(hours("2026-03"), 743);
        assert_eq!(hours("2026-10"), 745);
        assert_eq!(hours("2026-02"), 672);
        assert_eq!(hours("2026-12"), 744);
        assert_eq!(hours("2028-02"), 696);
    }

    #[test]
    fn parse_and_format() {
        assert_eq!(Month::parse("2026-10").unwrap().to_string(), "2026-10");
        assert!(Month::parse("2026-13").is_none());
        assert!(Month::parse("2026-1").is_none());
        assert!(Month::parse("26-01").is_none());
        assert_eq!(
            Month::parse("2026-12").unwrap().next().to_string(),
            "2027-01"
        );
        let w = Month::parse("2026-10").unwrap().window().unwrap();
        assert_eq!(oslo_rfc3339(w.start), "2026-10-01T00:00:00.000+02:00");
        assert_eq!(oslo_rfc3339(w.end), "2026-11-01T00:00:00.000+01:00");
    }
}
