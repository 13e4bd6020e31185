//! SVG badges for intranet pages: a member's (or one service's)
//! condition now, and its availability this month. White text on colours
//! dark enough for it (WCAG AA), the words in the badge and its title.

use serde::Serialize;

use super::words::{self, Lang};
use super::Condition;
use crate::sla::service::Figures;

const TEMPLATE: &str = include_str!("templates/badge.xml");

/// Roughly the width of a character of 11 px Verdana.
const CHAR_PX: usize = 7;
const PAD_PX: usize = 12;

#[derive(Serialize)]
struct View<'a> {
    label: &'a str,
    value: &'a str,
    colour: &'a str,
    width: usize,
    left: usize,
    right: usize,
    left_mid: usize,
    right_mid: usize,
}

fn render(label: &str, value: &str, colour: &str) -> String {
    let left = label.chars().count() * CHAR_PX + PAD_PX;
    let right = value.chars().count() * CHAR_PX + PAD_PX;
    let view = View {
        label,
        value,
        colour,
        width: left + right,
        left,
        right,
        left_mid: left / 2,
        right_mid: left + right / 2,
    };
    let mut env = minijinja::Environment::new();
    // `.xml`: minijinja escapes what goes in.
    env.add_template("badge.xml", TEMPLATE)
        .and_then(|_| env.get_template("badge.xml"))
        .and_then(|t| t.render(view))
        .unwrap_or_default()
}

fn colour(c: Condition) -> &'static str {
    match c {
        Condition::Up => "#1e7b34",
        Condition::Degraded => "#8a5200",
        Condition::Unknown => "#555",
        Condition::Maintenance => "#1f3a8a",
        Condition::Down => "#b71c1c",
    }
}

/// `status | Oppe`.
pub fn condition(lang: Lang, label: &str, c: Condition) -> String {
    render(label, words::condition(lang, c), colour(c))
}

/// `oppetid desember | 99,95 %`; grey without a verdict.
pub fn availability(lang: Lang, label: &str, f: Option<&Figures>) -> String {
    let (value, colour) = match f.and_then(|f| f.availability.map(|a| (a, f.met))) {
        Some((a, met)) => (
            lang.availability(a, 2),
            match met {
                Some(true) => "#1e7b34",
                Some(false) => "#b71c1c",
                None => "#555",
            },
        ),
        None => (words::label(lang, "nodata").to_string(), "#555"),
    };
    render(label, &value, colour)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_badge_says_its_words_and_escapes_them() {
        let svg = condition(Lang::En, "A & B <x>", Condition::Down);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("A &amp; B &lt;x&gt;: Down"), "{svg}");
        assert!(svg.contains("#b71c1c"), "{svg}");
    }
}
