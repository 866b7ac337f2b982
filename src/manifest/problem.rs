//! [`Problem`]: one finding about one manifest file (an error or a warning), with file, line,
//! column and field path, and [`FieldPath`], the field path it names.
//!
//! Problems are data, not failures of the caller: a bad manifest marks only its environment
//! invalid. Messages never contain a secret value (see `secrets.rs`).

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// How bad a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The file is not loaded; its environment is `Invalid`.
    Error,
    /// The file is loaded; something deserves a look (a mutable tag, an ungated version, ...).
    Warning,
}

impl Severity {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding about one manifest file.
///
/// `Display` prints `file:line:col: field: message`, leaving out the parts that are unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The manifest file (as given to the loader, not canonicalized).
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Field path such as `spec.services.web.version` or `spec.smoke[0].http.url`.
    pub field: Option<String>,
    /// What is wrong and, where possible, how to fix it. Never contains a secret value.
    pub message: String,
    /// Error (file not loaded) or warning.
    pub severity: Severity,
}

impl Problem {
    /// An error about a whole file (no line, no field).
    pub fn file_error(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Problem {
            file: file.into(),
            line: None,
            column: None,
            field: None,
            message: message.into(),
            severity: Severity::Error,
        }
    }

    /// True for [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// One step of a [`FieldPath`]: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A mapping key (`spec`, `services`, `web`).
    Key(String),
    /// A sequence index (`smoke[0]`).
    Index(usize),
}

/// A path to a field of a manifest, printed as `spec.smoke[0].http.url`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    /// Parses `spec.smoke[0].http` (the form serde_yaml prints) into segments.
    pub fn parse(text: &str) -> Self {
        let mut segments = Vec::new();
        for part in text.split('.').filter(|p| !p.is_empty()) {
            let (key, mut rest) = match part.find('[') {
                Some(at) => (&part[..at], &part[at..]),
                None => (part, ""),
            };
            if !key.is_empty() {
                segments.push(Segment::Key(key.to_string()));
            }
            while let Some(close) = rest.find(']') {
                if let Ok(index) = rest[1..close].parse() {
                    segments.push(Segment::Index(index));
                }
                rest = &rest[close + 1..];
            }
        }
        FieldPath(segments)
    }

    /// This path plus one key.
    pub fn key(&self, key: &str) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Key(key.to_string()));
        next
    }

    /// This path plus one index.
    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Index(index));
        next
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_leaves_out_unknown_parts() {
        let mut problem = Problem::file_error("d/a.yaml", "too big");
        assert_eq!(problem.to_string(), "d/a.yaml: too big");
        problem.line = Some(3);
        problem.column = Some(7);
        problem.field = Some("spec.services.web.version".into());
        assert_eq!(
            problem.to_string(),
            "d/a.yaml:3:7: spec.services.web.version: too big"
        );
        problem.column = None;
        assert_eq!(
            problem.to_string(),
            "d/a.yaml:3: spec.services.web.version: too big"
        );
    }

    #[test]
    fn field_paths_round_trip() {
        for text in [
            "spec",
            "spec.smoke[0].http.url",
            "spec.smoke[2][1]",
            "spec.services.web",
        ] {
            assert_eq!(FieldPath::parse(text).to_string(), text);
        }
        assert_eq!(
            FieldPath::parse("spec.smoke[1].exec").0,
            vec![
                Segment::Key("spec".into()),
                Segment::Key("smoke".into()),
                Segment::Index(1),
                Segment::Key("exec".into())
            ]
        );
    }
}
