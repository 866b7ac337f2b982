//! The Compose version: loose parsing of `docker compose version --short` and feature gates.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A Compose version such as `2.40.3` (suffixes like `-desktop.1` are kept only in `raw`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComposeVersion {
    /// Major version (2, 5, ...).
    pub major: u64,
    /// Minor version.
    pub minor: u64,
    /// Patch version (0 when absent).
    pub patch: u64,
    /// The text as reported, trimmed.
    pub raw: String,
}

impl ComposeVersion {
    /// Parses `2.40.3`, `v2.40.3-desktop.1`, `Docker Compose version v2.40.3`, `1.29.2`, `5.0`.
    /// Returns `None` when no `MAJOR.MINOR` can be found.
    pub fn parse(text: &str) -> Option<ComposeVersion> {
        let raw = text.trim().to_string();
        // Take the first whitespace-separated word that starts with a digit (after an optional `v`).
        let word = raw
            .split(|c: char| c.is_whitespace() || c == ',')
            .map(|w| w.strip_prefix('v').unwrap_or(w))
            .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
        let core = word.split(['-', '+']).next().unwrap_or(word);
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(ComposeVersion {
            major,
            minor,
            patch,
            raw,
        })
    }

    /// Whether this version is at least `major.minor`.
    pub fn at_least(&self, major: u64, minor: u64) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// Compose v2 or later.
    pub fn is_v2_or_later(&self) -> bool {
        self.major >= 2
    }

    /// `build: !reset null` in an override file (Compose 2.24.0).
    pub fn supports_reset_tag(&self) -> bool {
        self.at_least(2, 24)
    }

    /// `docker compose pull --policy missing|always` (Compose 2.22.0).
    pub fn supports_pull_policy(&self) -> bool {
        self.at_least(2, 22)
    }
}

impl fmt::Display for ComposeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_loose_forms() {
        let cases = [
            ("2.40.3\n", (2, 40, 3)),
            ("v2.40.3-desktop.1", (2, 40, 3)),
            ("Docker Compose version v2.21.0", (2, 21, 0)),
            ("docker-compose version 1.29.2, build 5becea4c", (1, 29, 2)),
            ("5.0", (5, 0, 0)),
            ("v5.1.0+dirty", (5, 1, 0)),
        ];
        for (text, (ma, mi, pa)) in cases {
            let v = ComposeVersion::parse(text).unwrap_or_else(|| panic!("{text:?} did not parse"));
            assert_eq!((v.major, v.minor, v.patch), (ma, mi, pa), "{text:?}");
        }
        assert_eq!(ComposeVersion::parse("garbage"), None);
        assert_eq!(ComposeVersion::parse(""), None);
    }

    #[test]
    fn gates_features() {
        let old = ComposeVersion::parse("2.20.2").unwrap();
        let new = ComposeVersion::parse("2.40.3").unwrap();
        let five = ComposeVersion::parse("5.0.0").unwrap();
        let v1 = ComposeVersion::parse("1.29.2").unwrap();
        assert!(!old.supports_reset_tag() && !old.supports_pull_policy());
        assert!(new.supports_reset_tag() && new.supports_pull_policy());
        assert!(five.supports_reset_tag() && five.is_v2_or_later());
        assert!(!v1.is_v2_or_later());
        assert_eq!(new.to_string(), "2.40.3");
    }
}
