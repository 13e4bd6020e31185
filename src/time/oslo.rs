//! Europe/Oslo, in one place: local dates of instants, midnights, local
//! wall-clock times as instants. One policy for the two DST changes:
//! a local time skipped by spring-forward (02:00–03:00 on the last Sunday
//! of March) is moved forward by the gap's length (02:30 becomes 03:30
//! CEST); a local time that happens twice in October is the earlier one.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Europe::Oslo;

/// The Oslo calendar day holding `ms`.
pub fn date_of(ms: i64) -> Option<NaiveDate> {
    DateTime::from_timestamp_millis(ms).map(|t| t.with_timezone(&Oslo).date_naive())
}

/// Today in Oslo.
pub fn today() -> Option<NaiveDate> {
    date_of(Utc::now().timestamp_millis())
}

/// Midnight starting `day`, in UTC milliseconds.
pub fn day_start(day: NaiveDate) -> Option<i64> {
    // Midnight always exists in Oslo (DST moves 02:00 and 03:00).
    local_ms(day.and_hms_opt(0, 0, 0)?)
}

/// A wall-clock time in Oslo as UTC milliseconds, by the policy above.
pub fn local_ms(t: NaiveDateTime) -> Option<i64> {
    Oslo.from_local_datetime(&t)
        .earliest()
        .or_else(|| {
            Oslo.from_local_datetime(&(t + chrono::Duration::hours(1)))
                .earliest()
        })
        .map(|x| x.timestamp_millis())
}

/// An instant as RFC 3339 in Europe/Oslo, with its offset (empty for an
/// instant chrono cannot represent).
pub fn rfc3339(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t
            .with_timezone(&Oslo)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
        None => String::new(),
    }
}

/// `YYYY-MM` of the Oslo month holding `t`.
pub fn month_of(t: DateTime<Utc>) -> String {
    t.with_timezone(&Oslo).format("%Y-%m").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|d| d.and_hms_opt(h, min, 0))
            .unwrap()
    }

    #[test]
    fn one_policy_for_both_dst_changes() {
        // Spring forward: 02:30 does not exist; it is 03:30 CEST.
        assert_eq!(
            local_ms(at(2026, 3, 29, 2, 30)).map(rfc3339).unwrap(),
            "2026-03-29T03:30:00.000+02:00"
        );
        // Fall back: 02:30 happens twice; the earlier (CEST) one.
        assert_eq!(
            local_ms(at(2026, 10, 25, 2, 30)).map(rfc3339).unwrap(),
            "2026-10-25T02:30:00.000+02:00"
        );
    }

    #[test]
    fn days_follow_oslo_midnights() {
        let d = NaiveDate::from_ymd_opt(2026, 10, 25).unwrap();
        let start = day_start(d).unwrap();
        assert_eq!(date_of(start), Some(d));
        assert_eq!(date_of(start - 1), d.pred_opt());
        let next = day_start(d.succ_opt().unwrap()).unwrap();
        assert_eq!(next - start, 25 * 3_600_000, "the day clocks go back");
    }
}
