//! Secret references: config settings that hold secrets (SNMP communities,
//! v3 keys, the API token) never contain the secret itself but `env:NAME` or
//! `file:PATH`. The resolved value lives in [`Secret`], whose `Debug` and
//! `Display` never show it, so it cannot leak through logs or error messages.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("secret must be a reference `env:NAME` or `file:PATH`, not an inline value")]
    NotAReference,
    #[error("secret reference `{0}` names nothing")]
    Empty(String),
    #[error("environment variable {0} is not set or not UTF-8")]
    EnvMissing(String),
    #[error("cannot read secret file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("secret from {0} is empty")]
    EmptyValue(String),
}

impl SecretRef {
    /// Parse `env:NAME` / `file:PATH`; a relative path is taken relative to
    /// the config file's directory.
    pub fn parse(s: &str, config_dir: &Path) -> Result<Self, SecretError> {
        if let Some(name) = s.strip_prefix("env:") {
            if name.is_empty() {
                return Err(SecretError::Empty(s.to_string()));
            }
            Ok(SecretRef::Env(name.to_string()))
        } else if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err(SecretError::Empty(s.to_string()));
            }
            Ok(SecretRef::File(config_dir.join(path)))
        } else {
            Err(SecretError::NotAReference)
        }
    }

    /// Read the secret now. Trailing newlines of files are dropped.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        self.resolve_with(|_| None)
    }

    /// [`SecretRef::resolve`], with `env` consulted before the process
    /// environment (an EnvironmentFile the service will be started with).
    pub fn resolve_with(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Secret, SecretError> {
        let value = match self {
            SecretRef::Env(name) => env(name)
                .or_else(|| std::env::var(name).ok())
                .ok_or_else(|| SecretError::EnvMissing(name.clone()))?,
            SecretRef::File(path) => read_secret_file(path)?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        };
        if value.is_empty() {
            return Err(SecretError::EmptyValue(self.to_string()));
        }
        Ok(Secret(value))
    }
}

/// The largest secret file read.
pub const MAX_SECRET_FILE: u64 = 64 * 1024;

/// A secret file's text: a regular file (not a FIFO, which would block a
/// reload, nor a device such as /dev/zero, which never ends) of at most
/// [`MAX_SECRET_FILE`] bytes, in UTF-8.
fn read_secret_file(path: &Path) -> Result<String, SecretError> {
    use std::io::Read;
    let err = |reason: String| SecretError::File {
        path: path.to_path_buf(),
        reason,
    };
    // (metadata follows symlinks: what would be opened.)
    let meta = std::fs::metadata(path).map_err(|e| err(e.kind().to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    if meta.len() > MAX_SECRET_FILE {
        return Err(err(format!("larger than {} KiB", MAX_SECRET_FILE / 1024)));
    }
    let file = std::fs::File::open(path).map_err(|e| err(e.kind().to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(e.kind().to_string()))?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(err(format!("larger than {} KiB", MAX_SECRET_FILE / 1024)));
    }
    String::from_utf8(bytes).map_err(|_| err("not UTF-8 text".into()))
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "env:{n}"),
            SecretRef::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

/// A resolved secret. Only [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret from a literal (tests only: config secrets are references).
    #[cfg(test)]
    pub(crate) fn new(s: &str) -> Self {
        Secret(s.to_string())
    }

    /// A secret made from others (an `Authorization` value from a
    /// basic-auth password): as secret as they are.
    pub fn derived(s: String) -> Self {
        Secret(s)
    }

    /// A stand-in for a secret that was deliberately not read (commands
    /// that need none, such as `utkikk report`). Empty.
    pub fn unresolved() -> Self {
        Secret(String::new())
    }

    /// The stand-in of [`Secret::unresolved`] (a secret read is never
    /// empty: that is refused).
    pub fn is_unresolved(&self) -> bool {
        self.0.is_empty()
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_secret_is_refused() {
        assert_eq!(
            SecretRef::parse("public", Path::new("/etc")),
            Err(SecretError::NotAReference)
        );
    }

    #[test]
    fn file_reference_is_relative_to_config_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("community"), "s3cret\n").unwrap();
        let r = SecretRef::parse("file:community", dir.path()).unwrap();
        let s = r.resolve().unwrap();
        assert_eq!(s.expose(), "s3cret");
        assert!(!format!("{s:?} {s}").contains("s3cret"));
    }

    #[test]
    fn missing_env_names_the_variable_not_a_value() {
        let r = SecretRef::parse("env:UTKIKK_TEST_SURELY_UNSET", Path::new(".")).unwrap();
        let e = r.resolve().unwrap_err();
        assert_eq!(
            e.to_string(),
            "environment variable UTKIKK_TEST_SURELY_UNSET is not set or not UTF-8"
        );
    }
}
