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

    /// An availability as a percentage, cut (not rounded) to `places`
    /// decimals: 99.996 % with two is `99,99 %`, so only a whole month up
    /// reads `100,00 %` and a missed objective never reads as met.
    pub fn availability(self, ratio: f64, places: usize) -> String {
        self.percent(cut(ratio, places), places)
    }

    /// A duration to the second: `0:00:28`, `3:05:00`, `26:40:12` (hours
    /// are not folded into days: a month's downtime adds up in hours).
    pub fn duration(self, seconds: f64) -> String {
        let s = seconds.max(0.0).round() as i64;
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }

    /// The verdict on a service's month, and a class for HTML.
    pub fn verdict(
        self,
        met: Option<bool>,
        unknown: Option<crate::sla::service::Unknown>,
    ) -> (&'static str, &'static str) {
        use crate::sla::service::Unknown;
        match (met, unknown) {
            (Some(true), _) => (self.text(Text::Met), "met"),
            (Some(false), _) => (self.text(Text::Missed), "missed"),
            (None, Some(Unknown::CoverageBelowMinimum)) => {
                (self.text(Text::TooLittleObserved), "unknown")
            }
            (None, _) => (self.text(Text::NoData), "nodata"),
        }
    }

    /// The hours a service level counts in: `hele døgnet` or
    /// `hverdager 07–17, unntatt helligdager`.
    pub fn schedule(self, s: &crate::time::schedule::Schedule) -> String {
        use crate::time::schedule::Schedule;
        let bh = match s {
            Schedule::Always => return self.text(Text::AroundTheClock).to_string(),
            Schedule::BusinessHours(bh) => bh,
        };
        const NB_DAYS: [&str; 7] = ["man.", "tir.", "ons.", "tor.", "fre.", "lør.", "søn."];
        const EN_DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        let days: Vec<u32> = bh.days.iter().copied().collect();
        let names = match self {
            Lang::Nb => NB_DAYS,
            Lang::En => EN_DAYS,
        };
        let days = if days == [0, 1, 2, 3, 4] {
            self.text(Text::Weekdays).to_string()
        } else if days.len() == 7 {
            self.text(Text::EveryDay).to_string()
        } else {
            days.iter()
                .filter_map(|d| names.get(*d as usize).copied())
                .collect::<Vec<_>>()
                .join(", ")
        };
        // Bokmål writes whole hours as `07–17`.
        let whole = bh.from.minute() == 0 && bh.to.minute() == 0 && self == Lang::Nb;
        let time = |t: chrono::NaiveTime| {
            if whole {
                format!("{:02}", t.hour())
            } else {
                t.format("%H:%M").to_string()
            }
        };
        let mut out = format!("{days} {}\u{2013}{}", time(bh.from), time(bh.to));
        if bh.public_holidays {
            out.push_str(self.text(Text::ExceptHolidays));
        }
        if !bh.closed.is_empty() {
            out.push_str(
                &self
                    .text(Text::ExtraClosed)
                    .replace("{n}", &bh.closed.len().to_string()),
            );
        }
        out
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

    /// A month in a table header: `okt. 26` or `Oct 26`.
    pub fn month_short(self, year: i32, month: u32) -> String {
        let i = (month.clamp(1, 12) - 1) as usize;
        let name = match self {
            Lang::Nb => NB_SHORT[i],
            Lang::En => EN_SHORT[i],
        };
        format!("{name} {:02}", year.rem_euclid(100))
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
                .replace("{time}", &self.duration(seconds))
        )
    }

    /// Why an outage began, in this language: from its stable code, or
    /// the ledger's (English) words for a code not known here or a row
    /// written before codes were kept. English keeps the ledger's words,
    /// which carry the details (addresses, figures).
    pub fn reason(self, code: Option<&str>, text: Option<&str>) -> String {
        let nb = match code {
            Some("timeout") => "ikke svar innen tidsfristen",
            Some("icmp_unreachable") => "ICMP-melding fra en ruter: adressen kan ikke nås",
            Some("no_route") => "ingen rute til adressen (samband nede?)",
            Some("loss") => "for stort pakketap",
            Some("rtt") => "for lang svartid",
            Some("snmp_unreachable") => "enheten svarer ikke på SNMP",
            Some("snmp_auth") => "SNMP-autentisering feilet",
            Some("snmp_error") => "enheten svarte med SNMP-feil",
            Some("link_end_down") => "grensesnittet i en ende av sambandet er nede",
            Some("link_ends_unknown") => "endene av sambandet kunne ikke leses",
            Some("parent_down") => "bak en feil lenger oppe i nettet",
            Some("probe_not_run") => "målingen kunne ikke kjøres",
            _ => "",
        };
        match (self, text) {
            (Lang::Nb, _) if !nb.is_empty() => nb.to_string(),
            (_, Some(t)) => t.to_string(),
            (Lang::En, None) => code.unwrap_or_default().replace('_', " "),
            (Lang::Nb, None) => String::new(),
        }
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

/// A ratio cut (not rounded) to `places` decimals of its percentage.
pub fn cut(ratio: f64, places: usize) -> f64 {
    let f = 10f64.powi(places as i32);
    // (The small term absorbs binary noise: 0.995 × 10⁴ is 9949.99…)
    ((ratio * 100.0 * f) + 1e-6).floor() / f / 100.0
}

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
    TooLittleObserved,
    AroundTheClock,
    Weekdays,
    EveryDay,
    ExceptHolidays,
    ExtraClosed,
    Excluded,
    Schedule,
    ErrorBudget,
    MeanTimeToRestore,
    AtLeast,
    ExcludedShort,
    /// Before the agents that saw an outage (a record shared by agents).
    SeenBy,
    And,
    InMonth,
    SoFarInMonth,
    Against,
    AllMet,
    AllJudgedMet,
    OneJudgedMet,
    NoneMet,
    AllMetExcept,
    UnknownCoverage,
    UnknownNoData,
    OutagesTotal,
    ExcludedBecause,
    ExcludedBecauseParent,
    ExcludedNote,
    Verdict,
    InBrief,
    Budget,
    OutageCount,
    CoverageShort,
    Members,
    ExcludedFor,
    History,
    HistoryNote,
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
            Text::TooLittleObserved => ("Ukjent – for lite observert", "Unknown – too little observed"),
            Text::AroundTheClock => ("hele døgnet, alle dager", "around the clock, every day"),
            Text::Weekdays => ("hverdager", "weekdays"),
            Text::EveryDay => ("alle dager", "every day"),
            Text::ExceptHolidays => (", unntatt helligdager", ", public holidays excepted"),
            Text::ExtraClosed => (" og {n} andre stengte dager", " and {n} other closed days"),
            Text::Excluded => ("Utelatt", "Excluded"),
            Text::AtLeast => ("krav", "needs"),
            Text::ExcludedShort => ("utelatt", "excluded"),
            Text::SeenBy => ("sett av", "seen by"),
            Text::And => ("og", "and"),
            Text::InMonth => ("i {month}", "in {month}"),
            Text::SoFarInMonth => ("så langt i {month}", "so far in {month}"),
            Text::Against => ("mot", "against"),
            Text::AllMet => (
                "Alle tjenester nådde tjenestenivået {when}.",
                "Every service met its objective {when}.",
            ),
            Text::OneJudgedMet => (
                "Den ene tjenesten som kunne vurderes, nådde tjenestenivået {when}.",
                "The one service that could be judged met its objective {when}.",
            ),
            Text::AllJudgedMet => (
                "De {n} tjenestene som kunne vurderes, nådde tjenestenivået {when}.",
                "The {n} services that could be judged met their objective {when}.",
            ),
            Text::NoneMet => (
                "Ingen tjenester nådde tjenestenivået {when}: {missed}.",
                "No service met its objective {when}: {missed}.",
            ),
            Text::AllMetExcept => (
                "Alle tjenester nådde tjenestenivået {when}, unntatt {missed}.",
                "Every service met its objective {when}, except {missed}.",
            ),
            Text::UnknownCoverage => (
                "{service} kan ikke vurderes: bare {coverage} av tiden ble overvåket, og minst {min} trengs.",
                "{service} cannot be judged: only {coverage} of its time was monitored, and {min} is needed.",
            ),
            Text::UnknownNoData => (
                "{service} kan ikke vurderes: ingenting ble observert.",
                "{service} cannot be judged: nothing was observed.",
            ),
            Text::OutagesTotal => (
                "Uplanlagte avvik: {n}, til sammen {time}.",
                "Unplanned outages: {n}, together {time}.",
            ),
            Text::ExcludedBecause => ("fordi {roots} var nede", "because {roots} went down"),
            Text::ExcludedBecauseParent => (
                "fordi noe den er avhengig av, var nede",
                "because something it depends on was down",
            ),
            Text::ExcludedNote => (
                "{service}: {time} er holdt utenfor tilgjengeligheten. Tjenesten kunne ikke observeres {because}; tjenestenivået sier at slik tid ikke telles (unreachable: excluded).",
                "{service}: {time} was left out of the availability. The service could not be observed {because}; its service level does not count such time (unreachable: excluded).",
            ),
            Text::Verdict => ("Vurdering", "Verdict"),
            Text::OutageCount => ("Antall avvik", "Outages"),
            Text::CoverageShort => ("dekning", "coverage"),
            Text::ExcludedFor => ("Utelatt for", "Excluded for"),
            Text::History => ("Siste 12 måneder", "The last 12 months"),
            Text::HistoryNote => (
                "Tilgjengelighet per måned (%), slik månedene ble låst da de var over; siste kolonne er denne rapportens måned. –: ingen tall for den måneden. ✗: tjenestenivået ikke nådd, ?: for lite observert.",
                "Availability per month (%), as each month was fixed when it closed; the last column is this report's month. –: no figures for that month. ✗: objective missed, ?: too little observed.",
            ),
            Text::Members => ("Berørte medlemmer", "Members hit"),
            Text::InBrief => ("Kort fortalt", "In brief"),
            Text::Budget => ("Nedetid og feilbudsjett", "Downtime and error budget"),
            Text::Schedule => ("Gjelder", "Counts"),
            Text::ErrorBudget => ("Feilbudsjett igjen", "Error budget left"),
            Text::MeanTimeToRestore => ("Snitt gjenoppretting", "Mean time to restore"),
            Text::ChartLegend => (
                "Grønn: tjenestenivået nådd den dagen, rød: ikke nådd, lys grå søyle: ingen data. Stiplet linje: tjenestenivået. Samme skala i alle diagrammene.",
                "Green: the objective met that day, red: missed, pale grey bar: no data. Dashed line: the objective. One scale for all charts.",
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
            Lang::Nb.duration(3.0 * 3600.0 + 5.0 * 60.0 + 29.0),
            "3:05:29"
        );
        assert_eq!(Lang::En.duration(28.4), "0:00:28", "seconds, not 0:00");
        assert_eq!(Lang::En.duration(0.16), "0:00:00");
        assert_eq!(Lang::Nb.duration(100.0 * 3600.0), "100:00:00");
        // Availability is cut, never rounded up to a met objective.
        assert_eq!(Lang::Nb.availability(0.99996, 2), "99,99\u{a0}%");
        assert_eq!(Lang::Nb.availability(1.0, 2), "100,00\u{a0}%");
        assert_eq!(Lang::En.availability(0.995, 2), "99.50%");
        assert_eq!(Lang::En.availability(0.99499, 2), "99.49%");
        assert_eq!(Lang::parse("nn"), None);
    }

    #[test]
    fn schedules_in_words() {
        use crate::time::schedule::{BusinessHours, Schedule};
        let office = Schedule::BusinessHours(BusinessHours::office());
        assert_eq!(
            Lang::Nb.schedule(&office),
            "hverdager 07\u{2013}17, unntatt helligdager"
        );
        assert_eq!(
            Lang::En.schedule(&office),
            "weekdays 07:00\u{2013}17:00, public holidays excepted"
        );
        assert_eq!(
            Lang::Nb.schedule(&Schedule::Always),
            "hele døgnet, alle dager"
        );
        let mut bh = BusinessHours::office();
        bh.days = [0, 2].into_iter().collect();
        bh.public_holidays = false;
        bh.to = chrono::NaiveTime::from_hms_opt(15, 30, 0).unwrap();
        assert_eq!(
            Lang::Nb.schedule(&Schedule::BusinessHours(bh)),
            "man., ons. 07:00\u{2013}15:30"
        );
    }
}
