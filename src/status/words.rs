//! The status pages' words in bokmål (the default) and English; numbers
//! and dates are formatted by the reports' [`Lang`].

use std::collections::BTreeMap;

pub use crate::report::locale::Lang;

use super::Condition;

/// The language of a request: `?lang=` first, then the best of
/// `Accept-Language` that we have (any Norwegian is bokmål here), else
/// bokmål.
pub fn choose(query: Option<&str>, accept_language: Option<&str>) -> Lang {
    if let Some(l) = query.and_then(Lang::parse) {
        return l;
    }
    let Some(header) = accept_language else {
        return Lang::Nb;
    };
    let mut best: Option<(f32, Lang)> = None;
    for part in header.split(',') {
        let mut fields = part.split(';');
        let tag = fields.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = fields
            .filter_map(|f| f.trim().strip_prefix("q="))
            .find_map(|v| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let primary = tag.split('-').next().unwrap_or("");
        let lang = match primary {
            "nb" | "no" | "nn" => Lang::Nb,
            "en" => Lang::En,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, lang));
        }
    }
    best.map_or(Lang::Nb, |(_, l)| l)
}

/// A condition in words.
pub fn condition(lang: Lang, c: Condition) -> &'static str {
    let (nb, en) = match c {
        Condition::Up => ("Oppe", "Up"),
        Condition::Degraded => ("Redusert", "Degraded"),
        Condition::Unknown => ("Ukjent", "Unknown"),
        Condition::Maintenance => ("Vedlikehold", "Maintenance"),
        Condition::Down => ("Nede", "Down"),
    };
    pick(lang, nb, en)
}

/// A sign beside the word, so that no condition is told by colour alone.
pub fn sign(c: Condition) -> &'static str {
    match c {
        Condition::Up => "\u{2713}",          // ✓
        Condition::Degraded => "!",           // !
        Condition::Unknown => "?",            // ?
        Condition::Maintenance => "\u{2692}", // ⚒
        Condition::Down => "\u{2715}",        // ✕
    }
}

fn pick(lang: Lang, nb: &'static str, en: &'static str) -> &'static str {
    match lang {
        Lang::Nb => nb,
        Lang::En => en,
    }
}

/// Every label the templates use, by key.
const LABELS: &[(&str, &str, &str)] = &[
    ("skip", "Gå til innholdet", "Skip to content"),
    ("status", "Driftsstatus", "Status"),
    ("region", "Regionen", "The region"),
    ("members", "Kommuner", "Municipalities"),
    ("member", "Kommune", "Municipality"),
    ("services", "Tjenester", "Services"),
    ("service", "Tjeneste", "Service"),
    ("now", "Nå", "Now"),
    ("since", "siden", "since"),
    ("services_now", "Tjenestene nå", "Services now"),
    ("last_24h", "Siste 24 timer", "Last 24 hours"),
    ("last_30_days", "Siste 30 dager", "Last 30 days"),
    ("this_month", "Denne måneden", "This month"),
    ("objective", "Mål", "Objective"),
    ("open_incidents", "Pågående feil", "Open incidents"),
    ("no_open_incidents", "Ingen pågående feil.", "No open incidents."),
    ("root_cause", "Årsak", "Root cause"),
    ("reason", "Hvorfor", "Why"),
    ("affected", "Berørte tjenester", "Services affected"),
    ("none_affected", "ingen (reserve tok over)", "none (redundancy held)"),
    ("message", "Melding fra driften", "Message from operations"),
    ("planned", "Planlagt vedlikehold", "Planned maintenance"),
    ("no_planned", "Ikke noe planlagt vedlikehold de neste 14 dagene.", "No planned maintenance in the next 14 days."),
    ("planned_intro", "Pågående og de neste 14 dagene.", "Going on now and in the next 14 days."),
    ("going_on", "pågår", "going on"),
    ("from", "Fra", "From"),
    ("to", "Til", "To"),
    ("category", "Type", "Kind"),
    ("covers", "Gjelder", "Covers"),
    ("note", "Merknad", "Note"),
    ("history", "Siste 90 dager", "Last 90 days"),
    ("history_intro", "Én stolpe per dag, eldst til venstre. Høyden og mønsteret viser dagen: full og hel uten nedetid, kortere og stripete med nedetid innenfor målet, kortest og rutete når målet ikke ble nådd, bare omriss uten måledata.", "One bar a day, oldest on the left. Height and pattern tell the day: full and solid without downtime, shorter and striped with downtime within the objective, shortest and checked when the objective was missed, outline only without data."),
    ("day_figures", "Tallene dag for dag", "The figures day by day"),
    ("date", "Dato", "Date"),
    ("availability", "Tilgjengelighet", "Availability"),
    ("downtime", "Nedetid", "Downtime"),
    ("maintenance", "Vedlikehold", "Maintenance"),
    ("coverage", "Dekning", "Coverage"),
    ("resolved", "Løste feil siste 30 dager", "Resolved incidents, last 30 days"),
    ("no_resolved", "Ingen feil de siste 30 dagene.", "No incidents in the last 30 days."),
    ("start", "Start", "Start"),
    ("end", "Slutt", "End"),
    ("duration", "Varighet", "Duration"),
    ("no_services", "Ingen tjenester er registrert for denne kommunen.", "No services are registered for this municipality."),
    ("no_services_short", "ingen registrert", "none registered"),
    ("merged", "Kommunen er slått sammen med", "The municipality has merged into"),
    ("updated", "Oppdatert", "Updated"),
    ("refresh_note", "Siden oppdaterer seg selv; uten JavaScript: last den inn på nytt.", "The page updates itself; without JavaScript, reload it."),
    ("feed", "Hendelser og vedlikehold som Atom-feed", "Incidents and maintenance as an Atom feed"),
    ("language", "Språk", "Language"),
    ("other_language", "English", "Norsk (bokmål)"),
    ("nodata", "ingen data", "no data"),
    ("too_little", "for lite observert", "too little observed"),
    ("outside_hours", "utenfor tjenestetiden", "outside service hours"),
    ("no_level", "ingen tjenestenivåavtale", "no service level"),
    ("legend_up", "uten nedetid", "no downtime"),
    ("legend_partial", "nedetid innenfor målet", "downtime within the objective"),
    ("legend_down", "målet ikke nådd", "objective missed"),
    ("legend_nodata", "ingen data", "no data"),
    ("all_up", "Alle tjenester er oppe.", "All services are up."),
    ("some_down", "Noen tjenester har feil.", "Some services have problems."),
    ("some_maintenance", "Noen tjenester har vedlikehold.", "Some services are in maintenance."),
    ("some_unknown", "Tilstanden til noen tjenester er ukjent nå.", "The state of some services is unknown now."),
    ("some_degraded", "Noen tjenester går tregt.", "Some services are degraded."),
    ("worst", "Verst nå", "Worst now"),
    ("incidents", "Feil", "Incidents"),
    ("page", "Statusside", "Status page"),
    ("version", "utkikk", "utkikk"),
];

/// The labels in `lang`, for a template's `t`.
pub fn labels(lang: Lang) -> BTreeMap<&'static str, &'static str> {
    LABELS
        .iter()
        .map(|(k, nb, en)| (*k, pick(lang, nb, en)))
        .collect()
}

/// One label.
pub fn label(lang: Lang, key: &str) -> &'static str {
    LABELS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map_or("", |(_, nb, en)| pick(lang, nb, en))
}

/// The line under a page's title: what is wrong now, worst first.
pub fn summary(lang: Lang, worst: Option<Condition>) -> &'static str {
    label(
        lang,
        match worst {
            None | Some(Condition::Up) => "all_up",
            Some(Condition::Down) => "some_down",
            Some(Condition::Maintenance) => "some_maintenance",
            Some(Condition::Unknown) => "some_unknown",
            Some(Condition::Degraded) => "some_degraded",
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_is_the_query_then_the_best_accepted_then_bokmal() {
        assert_eq!(choose(Some("en"), Some("nb")), Lang::En);
        assert_eq!(choose(None, Some("en-GB,en;q=0.9,nb;q=0.8")), Lang::En);
        assert_eq!(choose(None, Some("de, nn;q=0.5, en;q=0.4")), Lang::Nb);
        assert_eq!(choose(None, Some("de, fr")), Lang::Nb);
        assert_eq!(choose(Some("sv"), Some("en;q=0")), Lang::Nb);
        assert_eq!(choose(None, None), Lang::Nb);
    }

    #[test]
    fn every_label_has_both_languages_and_the_keys_are_unique() {
        let mut keys = std::collections::HashSet::new();
        for (k, nb, en) in LABELS {
            assert!(keys.insert(k), "{k} twice");
            assert!(!nb.is_empty() && !en.is_empty(), "{k}");
        }
    }
}
