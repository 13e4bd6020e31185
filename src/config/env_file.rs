//! A systemd `EnvironmentFile` (`/etc/default/utkikk`), read as systemd
//! reads it, so `utkikk check-config --env-file` checks the secrets the
//! service will see: `KEY=VALUE` lines; blank lines and lines starting with
//! `#` or `;` are ignored; a value may be wrapped in single or double quotes
//! (double quotes take `\"` and `\\`); a line ending in `\` continues on
//! the next. Values are never echoed in errors.

use std::collections::HashMap;
use std::path::Path;

use super::{ConfigError, Problem};

fn problem(path: &Path, line: usize, message: impl Into<String>) -> ConfigError {
    ConfigError {
        problems: vec![Problem {
            file: path.to_path_buf(),
            line: line as u32,
            column: 1,
            path: String::new(),
            message: message.into(),
        }],
    }
}

/// The variables of the file at `path`.
pub fn read(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| problem(path, 0, format!("cannot read environment file: {e}")))?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> Result<HashMap<String, String>, ConfigError> {
    let mut vars = HashMap::new();
    let mut problems = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, first)) = lines.next() {
        let number = i + 1;
        let mut line = first.to_string();
        while line.ends_with('\\') {
            line.pop();
            match lines.next() {
                Some((_, next)) => line.push_str(next),
                None => break,
            }
        }
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            problems.extend(problem(path, number, "expected KEY=VALUE").problems);
            continue;
        };
        let key = key.trim();
        let valid = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            problems.extend(
                problem(
                    path,
                    number,
                    format!("{key:?} is not a variable name (letters, digits and _)"),
                )
                .problems,
            );
            continue;
        }
        match unquote(value.trim()) {
            Some(v) => {
                vars.insert(key.to_string(), v);
            }
            None => problems.extend(
                problem(
                    path,
                    number,
                    format!("{key}: the value's quote is not closed"),
                )
                .problems,
            ),
        }
    }
    if problems.is_empty() {
        Ok(vars)
    } else {
        Err(ConfigError { problems })
    }
}

/// A value without its quotes; `None` if a quote is left open.
fn unquote(v: &str) -> Option<String> {
    let Some(q) = v.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        return Some(v.to_string());
    };
    let inner = &v[1..];
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if q == '"' => out.push(chars.next()?),
            c if c == q => return Some(out),
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_systemd_reads() {
        let text = "# comment\n; also\n\nA=1\nB = two words \nC=\"quoted \\\"x\\\"\"\nD='single'\nE=long\\\nline\n";
        let v = parse(Path::new("env"), text).unwrap();
        assert_eq!(v["A"], "1");
        assert_eq!(v["B"], "two words");
        assert_eq!(v["C"], "quoted \"x\"");
        assert_eq!(v["D"], "single");
        assert_eq!(v["E"], "longline");
    }

    #[test]
    fn bad_lines_are_located_and_values_not_echoed() {
        let e = parse(
            Path::new("env"),
            "OK=1\nno equals\n1X=secret\nQ=\"open secret\n",
        )
        .unwrap_err();
        let lines: Vec<u32> = e.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [2, 3, 4]);
        assert!(!e.to_string().contains("open secret"), "{e}");
        assert!(!e.to_string().contains("=secret"), "{e}");
    }
}
