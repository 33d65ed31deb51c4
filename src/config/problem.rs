//! A configuration problem, named by file and key (`redial check` prints one per line).

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// Dotted key path, e.g. `queues[0].timezone` or `sip.listen`; empty for
    /// problems with the whole file (unreadable, not TOML).
    pub key: String,
    pub message: String,
}

impl Problem {
    pub fn new(file: &Path, key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { file: file.to_path_buf(), key: key.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.message)
        }
    }
}

/// All the problems found while loading a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Collects problems while a file is validated.
#[derive(Debug)]
pub(crate) struct Collector<'a> {
    pub file: &'a Path,
    pub problems: &'a mut Vec<Problem>,
}

impl Collector<'_> {
    pub fn push(&mut self, key: impl Into<String>, message: impl fmt::Display) {
        self.problems.push(Problem::new(self.file, key, message.to_string()));
    }

    /// Runs `parse` on a value, recording its error under `key`.
    pub fn check<T, E: fmt::Display>(&mut self, key: impl Into<String>, r: Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(key, e);
                None
            }
        }
    }
}

/// Reads and deserialises a TOML file, naming the key of a type error.
pub(crate) fn read_toml<T: serde::de::DeserializeOwned>(file: &Path) -> Result<T, Problem> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Problem::new(file, "", format!("cannot read: {e}")))?;
    parse_toml(file, &text)
}

pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(file: &Path, text: &str) -> Result<T, Problem> {
    let de = toml::Deserializer::parse(text)
        .map_err(|e| Problem::new(file, "", format!("not valid TOML: {}", e.message())))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." { String::new() } else { key };
        let inner = e.into_inner();
        let line = inner
            .span()
            .map(|s| format!(" (line {})", text[..s.start.min(text.len())].lines().count().max(1)))
            .unwrap_or_default();
        Problem::new(file, key, format!("{}{line}", inner.message()))
    })
}

pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("`{s}` is not a duration like 90s, 10m, 4h ({e})"))
}
