//! The report's two languages: Norwegian bokmål (the default) and English,
//! with numbers and dates in each one's own form: `99,95 %` and
//! `3. okt. 2026 kl. 14:05` in bokmål, `99.95%` and `3 Oct 2026 14:05` in
//! English. Times are Europe/Oslo.

use chrono::{Datelike, TimeZone, Timelike};
use chrono_tz::Europe::Oslo;

/// A report language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    Nb,
    En,
}

impl Lang {
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "nb" => Some(Lang::Nb),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Nb => "nb",
            Lang::En => "en",
        }
    }

    /// The decimal separator.
    fn decimal(self) -> char {
        match self {
            Lang::Nb => ',',
            Lang::En => '.',
        }
    }

    /// A number with `places` decimals in the language's form.
    pub fn number(self, x: f64, places: usize) -> String {
        let s = format!("{x:.places$}");
        match self.decimal() {
            '.' => s,
            c => s.replace('.', &c.to_string()),
        }
    }

    /// A ratio (0–1) as a percentage: `99,95 %` (with a no-break space, as
    /// bokmål writes it) or `99.95%`.
    pub fn percent(self, ratio: f64, places: usize) -> String {
        let n = self.number(ratio * 100.0, places);
        match self {
            Lang::Nb => format!("{n}\u{a0}%"),
            Lang::En => format!("{n}%"),
        }
    }

    /// A duration as h:mm (rounded to the minute).
    pub fn hours_minutes(self, seconds: f64) -> String {
        let minutes = (seconds / 60.0).round() as i64;
        format!("{}:{:02}", minutes / 60, minutes % 60)
    }

    /// An instant in Oslo: `3. okt. 2026 kl. 14:05` or `3 Oct 2026 14:05`.
    pub fn date_time(self, ms: i64) -> String {
        let Some(t) = Oslo.timestamp_millis_opt(ms).single() else {
            return String::new();
        };
        let (d, m, y) = (t.day(), t.month0() as usize, t.year());
        let (h, min) = (t.hour(), t.minute());
        match self {
            Lang::Nb => format!("{d}. {} {y} kl. {h:02}:{min:02}", NB_SHORT[m]),
            Lang::En => format!("{d} {} {y} {h:02}:{min:02}", EN_SHORT[m]),
        }
    }

    /// A calendar month: `oktober 2026` or `October 2026`.
    pub fn month(self, year: i32, month: u32) -> String {
        let i = (month.clamp(1, 12) - 1) as usize;
        match self {
            Lang::Nb => format!("{} {year}", NB_LONG[i]),
            Lang::En => format!("{} {year}", EN_LONG[i]),
        }
    }

    /// A maintenance category's name.
    pub fn category(self, c: &str) -> &str {
        let (nb, en) = match c {
            "planned_change" => ("Planlagt endring", "Planned change"),
            "carrier_work" => ("Arbeid hos linjeleverandør", "Carrier work"),
            "vendor_work" => ("Arbeid hos leverandør", "Vendor work"),
            "power_work" => ("Strømarbeid", "Power work"),
            "other" => ("Annet", "Other"),
            _ => return c,
        };
        match self {
            Lang::Nb => nb,
            Lang::En => en,
        }
    }

    /// A round-trip time to about two significant digits (what the RTT
    /// histogram resolves): `0,45 ms`, `4,0 ms`, `40 ms`.
    pub fn milliseconds(self, seconds: f64) -> String {
        let ms = seconds * 1e3;
        let places = if ms < 1.0 {
            2
        } else if ms < 10.0 {
            1
        } else {
            0
        };
        format!("{}\u{a0}ms", self.number(ms, places))
    }

    /// A bit rate in the largest unit that keeps it ≥ 1: `634,2 Mbit/s`.
    pub fn bit_rate(self, bps: f64) -> String {
        let (v, unit) = if bps >= 1e9 {
            (bps / 1e9, "Gbit/s")
        } else if bps >= 1e6 {
            (bps / 1e6, "Mbit/s")
        } else {
            (bps / 1e3, "kbit/s")
        };
        format!(
            "{}\u{a0}{unit}",
            self.number(v, if v >= 100.0 { 0 } else { 1 })
        )
    }

    /// "N shorter outages are not listed here (together h:mm) …".
    pub fn more_outages(self, n: usize, seconds: f64) -> String {
        format!(
            "{n} {}",
            self.text(Text::MoreOutages)
                .replace("{time}", &self.hours_minutes(seconds))
        )
    }

    /// A text of the report in this language.
    pub fn text(self, t: Text) -> &'static str {
        let (nb, en) = t.both();
        match self {
            Lang::Nb => nb,
            Lang::En => en,
        }
    }
}

// Språkrådet: the short months are not abbreviated.
const NB_SHORT: [&str; 12] = [
    "jan.", "feb.", "mars", "apr.", "mai", "juni", "juli", "aug.", "sep.", "okt.", "nov.", "des.",
];
const EN_SHORT: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const NB_LONG: [&str; 12] = [
    "januar",
    "februar",
    "mars",
    "april",
    "mai",
    "juni",
    "juli",
    "august",
    "september",
    "oktober",
    "november",
    "desember",
];
const EN_LONG: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// The report's texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    Title,
    Member,
    Municipality,
    Period,
    Generated,
    Service,
    Objective,
    Availability,
    Met,
    Missed,
    NoData,
    Downtime,
    Maintenance,
    Coverage,
    Outages,
    Start,
    End,
    Duration,
    Services,
    RootCause,
    Reason,
    Note,
    Category,
    Targets,
    Planned,
    Month,
    Hours,
    MergedInto,
    Includes,
    Summary,
    Daily,
    NoServices,
    NoOutages,
    NoMaintenance,
    Footnote,
    ChartLegend,
    RegionTitle,
    Worst,
    MoreOutages,
    Links,
    Link,
    MedianRtt,
    P95Rtt,
    Loss,
    PeakOut,
    PeakIn,
    LinksNote,
}

impl Text {
    fn both(self) -> (&'static str, &'static str) {
        match self {
            Text::Title => ("Tilgjengelighetsrapport", "Availability report"),
            Text::Member => ("Medlem", "Member"),
            Text::Municipality => ("Kommunenummer", "Municipality number"),
            Text::Period => ("Periode", "Period"),
            Text::Generated => ("Laget", "Generated"),
            Text::Service => ("Tjeneste", "Service"),
            Text::Objective => ("Tjenestenivå", "Objective"),
            Text::Availability => ("Tilgjengelighet", "Availability"),
            Text::Met => ("Oppfylt", "Met"),
            Text::Missed => ("Ikke oppfylt", "Missed"),
            Text::NoData => ("Ingen data", "No data"),
            Text::Downtime => ("Nedetid", "Downtime"),
            Text::Maintenance => ("Planlagt vedlikehold", "Planned maintenance"),
            Text::Coverage => ("Dekning", "Coverage"),
            Text::Outages => ("Avvik", "Unplanned outages"),
            Text::Start => ("Start", "Start"),
            Text::End => ("Slutt", "End"),
            Text::Duration => ("Varighet", "Duration"),
            Text::Services => ("Berørte tjenester", "Affected services"),
            Text::RootCause => ("Rotårsak", "Root cause"),
            Text::Reason => ("Grunn", "Reason"),
            Text::Note => ("Merknad", "Note"),
            Text::Category => ("Kategori", "Category"),
            Text::Targets => ("Berørte mål", "Targets"),
            Text::Planned => ("Planlagt", "Planned"),
            Text::Month => ("Måned", "Month"),
            Text::Hours => ("timer", "hours"),
            Text::MergedInto => ("Slått sammen med", "Merged into"),
            Text::Includes => ("Omfatter også", "Also includes"),
            Text::Summary => ("Tjenester og tjenestenivå", "Services and service levels"),
            Text::Daily => ("Tilgjengelighet per dag", "Availability per day"),
            Text::NoServices => (
                "Ingen tjenester med tjenestenivå denne måneden.",
                "No services with a service level this month.",
            ),
            Text::NoOutages => ("Ingen uplanlagte avvik.", "No unplanned outages."),
            Text::NoMaintenance => ("Ikke noe planlagt vedlikehold.", "No planned maintenance."),
            Text::RegionTitle => (
                "Tilgjengelighet i regionen",
                "Availability across the region",
            ),
            Text::Worst => ("Månedens største avvik", "The month's worst outages"),
            Text::MoreOutages => (
                "kortere avvik er ikke listet her (til sammen {time}); CSV- og JSON-rapporten har alle.",
                "shorter outages are not listed here (together {time}); the CSV and JSON reports have them all.",
            ),
            Text::Links => ("Samband", "Links"),
            Text::Link => ("Samband", "Link"),
            Text::MedianRtt => ("Svartid, median", "RTT, median"),
            Text::P95Rtt => ("Svartid, p95", "RTT, p95"),
            Text::Loss => ("Pakketap", "Loss"),
            Text::PeakOut => ("Topp ut", "Peak out"),
            Text::PeakIn => ("Topp inn", "Peak in"),
            Text::LinksNote => (
                "Svartid (median og 95-persentil) og pakketap fra ICMP-ekko gjennom måneden, utenom planlagt vedlikehold; pakketapet tar med avvik. Topp: høyeste utnyttelse av sambandet, fra SNMP-tellerne i første ende, snitt over én avlesning; «ut» er mot andre ende.",
                "RTT (median and 95th percentile) and loss from ICMP echoes over the month, outside planned maintenance; loss includes outages. Peak: the link's highest utilisation, from the SNMP counters at its first end, averaged over one poll; \u{201c}out\u{201d} is towards the far end.",
            ),
            Text::ChartLegend => (
                "Grønn: tjenestenivået nådd den dagen, rød: ikke nådd, grå: ingen data. Stiplet linje: tjenestenivået.",
                "Green: the objective met that day, red: missed, grey: no data. Dashed line: the objective.",
            ),
            Text::Footnote => (
                "Tilgjengelighet = oppetid ÷ (planlagt driftstid − planlagt vedlikehold − tid uten overvåking). Tid utenfor overvåking regnes aldri som oppe. Tider i norsk tid (Europe/Oslo).",
                "Availability = up ÷ (scheduled − planned maintenance − unmonitored). Time not monitored never counts as up. Times in Norwegian time (Europe/Oslo).",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::calendar::oslo_ms;

    #[test]
    fn numbers_and_dates_in_each_language() {
        assert_eq!(Lang::Nb.percent(0.9995, 2), "99,95\u{a0}%");
        assert_eq!(Lang::En.percent(0.9995, 2), "99.95%");
        assert_eq!(Lang::Nb.number(1234.5, 1), "1234,5");
        let t = oslo_ms(2026, 10, 3, 14, 5);
        assert_eq!(Lang::Nb.date_time(t), "3. okt. 2026 kl. 14:05");
        assert_eq!(Lang::En.date_time(t), "3 Oct 2026 14:05");
        // Winter time, and a short month written out.
        let t = oslo_ms(2026, 3, 1, 9, 0);
        assert_eq!(Lang::Nb.date_time(t), "1. mars 2026 kl. 09:00");
        assert_eq!(Lang::Nb.month(2026, 10), "oktober 2026");
        assert_eq!(Lang::En.month(2026, 10), "October 2026");
        assert_eq!(
            Lang::Nb.hours_minutes(3.0 * 3600.0 + 5.0 * 60.0 + 29.0),
            "3:05"
        );
        assert_eq!(Lang::En.hours_minutes(59.0), "0:01");
        assert_eq!(Lang::parse("nn"), None);
    }
}
