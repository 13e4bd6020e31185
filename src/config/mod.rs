//! Configuration: reads one YAML file, decodes it strictly (unknown keys are
//! errors) into [`raw`] types that remember where each value was written, and
//! validates them into an [`Inventory`]. Every problem found is returned at
//! once, each with file:line:column and the path of the field.
//!
//! Owns: parsing, defaults, validation, secret references.
//! Must not touch: sockets, the scheduler, anything that runs.

mod maintenance;
mod raw;
pub mod secret;
mod services;
mod snmp;
mod validate;

pub use snmp::parse_oid;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::inventory::Inventory;

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based; 0 when the problem has no single place (an unreadable file).
    pub line: u32,
    pub column: u32,
    /// Dotted path of the field, e.g. `targets[3].icmp.timeout`; empty when
    /// the YAML itself could not be read.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if self.path.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.path, self.message)
        }
    }
}

/// Every problem of one config file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Read, decode and validate `path`.
pub fn load(path: &Path) -> Result<Inventory, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        problems: vec![Problem {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot read config file: {e}"),
        }],
    })?;
    parse(path, &text)
}

/// Decode and validate config text; `path` is used for messages and to
/// resolve relative paths.
pub fn parse(path: &Path, text: &str) -> Result<Inventory, ConfigError> {
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        with_snippet: false,
    };
    let raw: raw::RawConfig = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line() as u32, l.column() as u32))
            .unwrap_or((0, 0));
        ConfigError {
            problems: vec![Problem {
                file: path.to_path_buf(),
                line,
                column,
                path: String::new(),
                message: decode_message(&e),
            }],
        }
    })?;
    validate::validate(path, raw)
}

/// serde-saphyr's message without its own location suffix (we print the
/// location in front, compiler style).
fn decode_message(e: &serde_saphyr::Error) -> String {
    let full = e.without_snippet().to_string();
    let first = full.lines().next().unwrap_or_default().trim();
    let first = match first.rfind(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    // serde names Rust types; say what the YAML should hold instead.
    match first {
        "invalid u32" | "invalid u64" => "expected a whole number".to_string(),
        "invalid f64" => "expected a number".to_string(),
        "invalid bool" => "expected true or false".to_string(),
        other => other.to_string(),
    }
}
