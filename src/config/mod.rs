//! Configuration: reads one YAML file, decodes it strictly (unknown keys are
//! errors) into [`raw`] types that remember where each value was written, and
//! validates them into an [`Inventory`]. Every problem found is returned at
//! once, each with file:line:column and the path of the field.
//!
//! Owns: parsing, defaults, validation, secret references.
//! Must not touch: sockets, the scheduler, anything that runs.

mod checks;
pub mod env_file;
mod maintenance;
mod raw;

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

/// How loading a config treats its secret references (`env:NAME`,
/// `file:PATH`).
#[derive(Debug, Clone, Default)]
pub enum Secrets {
    /// Read them now (the agent): one that cannot be read is a problem.
    #[default]
    Resolve,
    /// Read them with these variables before the process environment
    /// (`check-config --env-file`: what the service will see).
    ResolveWith(std::collections::HashMap<String, String>),
    /// Check their form only and read nothing (commands that use none,
    /// such as `report`).
    Skip,
    /// Read only the shared ledger's connection string (`ledger.url`),
    /// for `report` from the record several agents share.
    LedgerOnly,
}

/// Read, decode and validate `path`, reading its secrets.
pub fn load(path: &Path) -> Result<Inventory, ConfigError> {
    load_with(path, &Secrets::Resolve)
}

/// [`load`], with secrets treated as `secrets` says.
pub fn load_with(path: &Path, secrets: &Secrets) -> Result<Inventory, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        problems: vec![Problem {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot read config file: {e}"),
        }],
    })?;
    parse_with(path, &text, secrets)
}

/// Decode and validate config text; `path` is used for messages and to
/// resolve relative paths.
/// The JSON Schema of the config file (for editors: YAML language servers
/// read it), from the same types the parser reads; `utkikk config-schema`
/// prints it, and `config/utkikk.schema.json` is a copy CI keeps current.
pub fn json_schema() -> String {
    let mut schema = schemars::schema_for!(raw::RawConfig);
    schema.insert(
        "title".into(),
        serde_json::Value::String("utkikk configuration".into()),
    );
    schema.insert(
        "$id".into(),
        serde_json::Value::String("https://utkikk.example.org/utkikk.schema.json".into()),
    );
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// Every key of the config with its description and type, as a Markdown
/// table (the README's reference: `utkikk config-schema --markdown`),
/// made from the same JSON Schema so the two cannot drift apart.
pub fn reference_markdown() -> String {
    let schema: serde_json::Value = serde_json::from_str(&json_schema()).unwrap_or_default();
    let mut rows = Vec::new();
    reference_rows(&schema, &schema, "", &mut rows);
    let mut out = String::from("| key | type | what |\n| --- | --- | --- |\n");
    for (path, kind, what) in rows {
        out += &format!("| `{path}` | {kind} | {} |\n", what.replace('|', "\\|"));
    }
    out
}

fn reference_rows(
    root: &serde_json::Value,
    node: &serde_json::Value,
    path: &str,
    rows: &mut Vec<(String, String, String)>,
) {
    let resolve = |v: &serde_json::Value| -> serde_json::Value {
        v["$ref"]
            .as_str()
            .and_then(|r| r.rsplit('/').next())
            .map_or_else(|| v.clone(), |name| root["$defs"][name].clone())
    };
    let node = resolve(node);
    for alt in node["anyOf"].as_array().into_iter().flatten() {
        if alt["type"] != "null" {
            reference_rows(root, alt, path, rows);
        }
    }
    if let Some(items) = node.get("items") {
        reference_rows(root, items, &format!("{path}[]"), rows);
    }
    let Some(props) = node["properties"].as_object() else {
        return;
    };
    let mut keys: Vec<&String> = props.keys().collect();
    keys.sort();
    for key in keys {
        let v = &props[key];
        let target = resolve(v);
        let full = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let what = v["description"]
            .as_str()
            .or(target["description"].as_str())
            .unwrap_or("")
            .replace('\n', " ");
        let kind = type_name(root, v);
        rows.push((full.clone(), kind, what));
        reference_rows(root, v, &full, rows);
    }
}

fn type_name(root: &serde_json::Value, v: &serde_json::Value) -> String {
    if let Some(r) = v["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or("");
        return type_name(root, &root["$defs"][name]);
    }
    if let Some(alts) = v["anyOf"].as_array() {
        let named: Vec<String> = alts
            .iter()
            .filter(|a| a["type"] != "null")
            .map(|a| type_name(root, a))
            .collect();
        return named.join(" or ");
    }
    let types: Vec<&str> = match &v["type"] {
        serde_json::Value::String(t) => vec![t.as_str()],
        serde_json::Value::Array(ts) => ts
            .iter()
            .filter_map(|t| t.as_str())
            .filter(|t| *t != "null")
            .collect(),
        _ => vec!["any"],
    };
    types
        .iter()
        .map(|t| match *t {
            "array" => format!("list of {}", type_name(root, &v["items"])),
            "object" if v.get("properties").is_some() => "map".to_string(),
            "object" => "map of string".to_string(),
            "string" if v["format"] == "date" => "date".to_string(),
            "integer" => "integer".to_string(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

pub fn parse(path: &Path, text: &str) -> Result<Inventory, ConfigError> {
    parse_with(path, text, &Secrets::Resolve)
}

/// [`parse`], with secrets treated as `secrets` says.
pub fn parse_with(path: &Path, text: &str, secrets: &Secrets) -> Result<Inventory, ConfigError> {
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        with_snippet: false,
        budget: Some(yaml_budget(text.len())),
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
    validate::validate(path, raw, secrets)
}

/// The YAML parser's limits for a config of `len` bytes. Its defaults
/// against alias bombs (aliases, anchors, their ratio, copies kept for
/// replay) and deep nesting stay. Its node and event caps (250,000 nodes:
/// about 35,000 targets) become one node and two events per byte of the
/// file: a file's own nodes take at least a byte each, so only expansion
/// can reach them.
pub fn yaml_budget(len: usize) -> serde_saphyr::Budget {
    let mut b = serde_saphyr::Budget::default();
    b.max_nodes = b.max_nodes.max(len);
    b.max_events = b.max_events.max(len.saturating_mul(2));
    b
}

/// A breached YAML limit in words: which, and what to do.
fn budget_message(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    let b = serde_saphyr::Budget::default();
    let aliases = "write the repeated parts out instead of aliases (`*name`)";
    match breach {
        B::Depth { .. } => format!(
            "nested deeper than {} levels: no config needs that many; the YAML is likely malformed",
            b.max_depth
        ),
        B::Aliases { aliases: n } => format!(
            "{n} aliases, more than the {} allowed (a guard against alias bombs): {aliases}",
            b.max_aliases
        ),
        B::Anchors { anchors: n } => format!(
            "{n} anchors (`&name`), more than the {} allowed: {aliases}",
            b.max_anchors
        ),
        B::AliasAnchorRatio {
            aliases: a,
            anchors: n,
        } => format!(
            "{a} aliases to {n} anchors, more than {} per anchor: refused as a possible alias bomb; {aliases}",
            b.alias_anchor_ratio_multiplier
        ),
        B::RecordedAnchorEvents { .. } | B::RecordedAnchorBytes { .. } => format!(
            "the anchors hold more than {} events or {} MiB to replay (a guard against alias bombs): {aliases}",
            b.max_recorded_anchor_events,
            b.max_recorded_anchor_bytes >> 20
        ),
        B::Nodes { nodes } => format!(
            "the aliases expand to more than {nodes} YAML nodes, more than the file's size allows: {aliases}"
        ),
        B::Events { events } => format!(
            "the aliases expand to more than {events} YAML events, more than the file's size allows: {aliases}"
        ),
        B::MergeKeys { merge_keys } => format!(
            "{merge_keys} merge keys (`<<`), more than the {} allowed: write the entries out",
            b.max_merge_keys
        ),
        B::Documents { documents } => format!(
            "{documents} YAML documents (`---`): a config is one document"
        ),
        B::ScalarBytes { .. } => format!(
            "more than {} MiB of text in values: no config needs that much",
            b.max_total_scalar_bytes >> 20
        ),
        other => format!("a YAML limit was reached: {other:?}"),
    }
}

/// serde-saphyr's message without its own location suffix (we print the
/// location in front, compiler style).
fn decode_message(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as E;
    match e {
        E::Budget { breach, .. } => return budget_message(breach),
        E::WithSnippet { error, .. } => return decode_message(error),
        // Reported where the alias is used; say where its anchor is.
        E::AliasError {
            error, locations, ..
        } => {
            let at = locations.defined_location;
            return format!(
                "{} (in what the alias refers to: the anchor at line {}, column {})",
                decode_message(error),
                at.line(),
                at.column()
            );
        }
        _ => {}
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse(Path::new("c.yaml"), text) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// A target's failure hits its own member, those it serves, those of
    /// the services that use it, and the same of everything behind it.
    #[test]
    fn affected_members_follow_services_and_parents() {
        let text = "agent: { id: a }\n\
            members:\n  - { id: kongsberg, name: Kongsberg }\n  - { id: flesberg, name: Flesberg }\n  - { id: rollag, name: Rollag }\n\
            targets:\n\
            \x20 - { id: core, kind: switch, address: 198.51.100.1, member: kongsberg }\n\
            \x20 - { id: link-fl, kind: link, address: 198.51.100.2, member: kongsberg, parents: [core], serves: [flesberg] }\n\
            \x20 - { id: fl-srv, kind: server, address: 198.51.100.3, member: flesberg, parents: [link-fl] }\n\
            \x20 - { id: kb-srv, kind: server, address: 198.51.100.4, member: kongsberg, parents: [core] }\n\
            \x20 - { id: lone, kind: server, address: 198.51.100.5 }\n\
            services:\n\
            \x20 - { id: files, name: Filer, serves: [flesberg, rollag], targets: [fl-srv], sla: [{ valid_from: 2020-01-01, objective: 99.5 }] }\n";
        let inv = parse(Path::new("c.yaml"), text)
            .map_err(|e| e.to_string())
            .unwrap();
        let hit = |id: &str| {
            let t = inv.targets.iter().find(|t| t.id == id).unwrap();
            (t.affected_members.join(","), t.is_shared())
        };
        assert_eq!(hit("core"), ("flesberg,kongsberg,rollag".into(), true));
        assert_eq!(hit("link-fl"), ("flesberg,kongsberg,rollag".into(), true));
        assert_eq!(hit("fl-srv"), ("flesberg,rollag".into(), true));
        assert_eq!(hit("kb-srv"), ("kongsberg".into(), false));
        assert_eq!(hit("lone"), (String::new(), false));
    }

    /// 50,000 targets: past the YAML parser's default of 250,000 nodes,
    /// which stopped configs at about 35,000.
    #[test]
    fn fifty_thousand_targets_load() {
        let mut text = String::from("agent:\n  id: big\ntargets:\n");
        for i in 0..50_000u32 {
            let [_, _, a, b] = i.to_be_bytes();
            text.push_str(&format!(
                "  - id: t{i}\n    name: Target {i}\n    kind: server\n    address: 198.18.{a}.{b}\n    labels: {{ rack: r{} }}\n",
                i % 40
            ));
        }
        let inv = parse(Path::new("c.yaml"), &text).map_err(|e| e.to_string());
        assert_eq!(inv.map(|i| i.targets.len()), Ok(50_000));
    }

    /// The guards against alias bombs and deep nesting stay, and say in
    /// words what was hit.
    #[test]
    fn alias_bombs_and_deep_nesting_are_refused_in_words() {
        // Every target's parents one long anchored list: small to write,
        // vast once expanded.
        let mut bomb = format!(
            "targets:\n  - id: a\n    kind: server\n    address: 127.0.0.1\n    parents: &p [{}]\n",
            vec!["a"; 2000].join(", ")
        );
        for i in 0..300 {
            bomb.push_str(&format!(
                "  - id: b{i}\n    kind: server\n    address: 127.0.0.1\n    parents: *p\n"
            ));
        }
        let p = problems(&bomb);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("c.yaml:"), "{p:?}");
        assert!(p[0].contains("instead of aliases"), "{p:?}");

        // `monthly.week` takes any YAML (1–4 or `last`, checked later).
        let deep = format!(
            "maintenance:\n  - id: m\n    targets: [a]\n    monthly: {{ week: {}{} }}\n",
            "[".repeat(100),
            "]".repeat(100)
        );
        let p = problems(&deep);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("nested deeper than 64 levels"), "{p:?}");
    }
}
