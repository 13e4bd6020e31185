//! When a service level applies: around the clock, or business hours in
//! Europe/Oslo on working days — not weekends, not Norwegian public holidays
//! (computed, Easter-based ones included), not extra closed days.

use std::collections::BTreeSet;

use chrono::{Datelike, Days, NaiveDate, NaiveTime, Weekday};

use super::interval::{Interval, IntervalSet};

/// Norwegian public holidays (offentlige høytidsdager) of a year.
pub fn holidays(year: i32) -> Vec<(NaiveDate, &'static str)> {
    let mut out = Vec::new();
    let fixed = [
        (1, 1, "1. nyttårsdag"),
        (5, 1, "Arbeidernes dag"),
        (5, 17, "Grunnlovsdag"),
        (12, 25, "1. juledag"),
        (12, 26, "2. juledag"),
    ];
    for (m, d, name) in fixed {
        if let Some(day) = NaiveDate::from_ymd_opt(year, m, d) {
            out.push((day, name));
        }
    }
    if let Ok(easter) = computus::gregorian_naive(year) {
        let rel = [
            (-3i64, "Skjærtorsdag"),
            (-2, "Langfredag"),
            (0, "1. påskedag"),
            (1, "2. påskedag"),
            (39, "Kristi himmelfartsdag"),
            (49, "1. pinsedag"),
            (50, "2. pinsedag"),
        ];
        for (offset, name) in rel {
            let day = if offset < 0 {
                easter.checked_sub_days(Days::new(offset.unsigned_abs()))
            } else {
                easter.checked_add_days(Days::new(offset as u64))
            };
            if let Some(day) = day {
                out.push((day, name));
            }
        }
    }
    out.sort();
    out
}

/// Business hours: these weekdays, from–to local time, minus holidays and
/// extra closed days.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct BusinessHours {
    pub days: BTreeSet<u32>,
    /// Local wall-clock times, `from < to`.
    pub from: NaiveTime,
    pub to: NaiveTime,
    /// Norwegian public holidays are closed (default yes).
    pub public_holidays: bool,
    pub closed: BTreeSet<NaiveDate>,
}

impl BusinessHours {
    /// Mon–Fri 07:00–17:00, public holidays closed.
    pub fn office() -> Self {
        BusinessHours {
            days: (0..5).collect(),
            from: NaiveTime::from_hms_opt(7, 0, 0).unwrap_or_default(),
            to: NaiveTime::from_hms_opt(17, 0, 0).unwrap_or_default(),
            public_holidays: true,
            closed: BTreeSet::new(),
        }
    }
}

#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub enum Schedule {
    Always,
    BusinessHours(BusinessHours),
}

pub fn weekday_index(w: Weekday) -> u32 {
    w.num_days_from_monday()
}

impl Schedule {
    /// The scheduled time within `window` (UTC milliseconds).
    pub fn within(&self, window: Interval) -> IntervalSet {
        let bh = match self {
            Schedule::Always => return IntervalSet::single(window),
            Schedule::BusinessHours(bh) => bh,
        };
        let Some(first) = super::oslo::date_of(window.start) else {
            return IntervalSet::new();
        };
        let Some(last) = super::oslo::date_of(window.end) else {
            return IntervalSet::new();
        };
        let mut holiday_days: BTreeSet<NaiveDate> = BTreeSet::new();
        if bh.public_holidays {
            for y in first.year()..=last.year() {
                holiday_days.extend(holidays(y).into_iter().map(|(d, _)| d));
            }
        }
        let mut spans = Vec::new();
        let mut day = first;
        while day <= last {
            let open = bh.days.contains(&weekday_index(day.weekday()))
                && !holiday_days.contains(&day)
                && !bh.closed.contains(&day);
            if open {
                let start = super::oslo::local_ms(day.and_time(bh.from));
                let end = super::oslo::local_ms(day.and_time(bh.to));
                if let (Some(s), Some(e)) = (start, end) {
                    spans.push(Interval::new(s, e));
                }
            }
            match day.succ_opt() {
                Some(d) => day = d,
                None => break,
            }
        }
        IntervalSet::from_intervals(spans).restrict(window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::calendar::Month;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn holidays_2026() {
        let h: Vec<NaiveDate> = holidays(2026).into_iter().map(|(d, _)| d).collect();
        // Easter Sunday 2026 is 5 April.
        for day in [
            d(2026, 1, 1),
            d(2026, 4, 2), // skjærtorsdag
            d(2026, 4, 3), // langfredag
            d(2026, 4, 5), // 1. påskedag
            d(2026, 4, 6), // 2. påskedag
            d(2026, 5, 1),
            d(2026, 5, 14), // Kristi himmelfartsdag
            d(2026, 5, 17),
            d(2026, 5, 24), // 1. pinsedag
            d(2026, 5, 25), // 2. pinsedag
            d(2026, 12, 25),
            d(2026, 12, 26),
        ] {
            assert!(h.contains(&day), "{day}");
        }
        assert_eq!(h.len(), 12);
        let h27: Vec<NaiveDate> = holidays(2027).into_iter().map(|(d, _)| d).collect();
        assert!(h27.contains(&d(2027, 3, 26)), "langfredag 2027");
    }

    fn hours(s: &IntervalSet) -> f64 {
        s.len() as f64 / 3.6e6
    }

    #[test]
    fn business_hours_of_a_month() {
        let office = Schedule::BusinessHours(BusinessHours::office());
        // April 2026: 22 weekdays, minus skjærtorsdag, langfredag and
        // 2. påskedag: 19 days of 10 hours.
        let april = Month::parse("2026-04").unwrap().window().unwrap();
        assert_eq!(hours(&office.within(april)), 190.0);
        // October 2026 (DST ends on Sunday 25th): 22 weekdays, no holidays.
        let oct = Month::parse("2026-10").unwrap().window().unwrap();
        assert_eq!(hours(&office.within(oct)), 220.0);
        assert_eq!(hours(&Schedule::Always.within(oct)), 745.0);
        // Extra closed days (julaften) come off as well.
        let mut bh = BusinessHours::office();
        bh.closed.insert(d(2026, 12, 24));
        let dec = Month::parse("2026-12").unwrap().window().unwrap();
        // December 2026: 23 weekdays, minus 25 Dec (Fri) and 24 Dec (closed).
        assert_eq!(hours(&Schedule::BusinessHours(bh).within(dec)), 210.0);
    }

    #[test]
    fn business_hours_are_local_time_across_dst() {
        let office = Schedule::BusinessHours(BusinessHours::office());
        let march = Month::parse("2026-03").unwrap().window().unwrap();
        let s = office.within(march);
        // 2 March 2026 (CET): 07:00 local = 06:00 UTC.
        let first = s.spans()[0];
        assert_eq!(
            crate::time::calendar::oslo_rfc3339(first.start),
            "2026-03-02T07:00:00.000+01:00"
        );
        // 30 March 2026 (CEST): 07:00 local = 05:00 UTC.
        let last = *s.spans().last().unwrap();
        assert_eq!(
            crate::time::calendar::oslo_rfc3339(last.start),
            "2026-03-31T07:00:00.000+02:00"
        );
        assert_eq!(hours(&s), 220.0);
    }
}
