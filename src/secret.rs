//! A secret value (broker token, password) that never shows itself in `Debug` or `Display`.
//!
//! **Invariant:** a credential is only ever held as [`Secret`]; logs, errors, status files and
//! metrics can therefore format any struct that contains one without leaking it.

use std::fmt;
use std::path::Path;

/// A credential held in memory. `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// Why a secret could not be read from its file or environment variable.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The secret file could not be read.
    #[error("cannot read secret file {path}")]
    File {
        /// The file that was named in the manifest.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The environment variable is not set or is not valid UTF-8.
    #[error("environment variable {name} (named in the manifest) is not set")]
    EnvMissing {
        /// The variable's name.
        name: String,
    },
    /// The file or variable is empty.
    #[error("secret from {origin} is empty")]
    Empty {
        /// Where the secret came from (a path or `env NAME`).
        origin: String,
    },
}

impl Secret {
    /// Wraps a value. Use only at the edge where the value was read.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// Reads a secret from a file, trimming one trailing newline and surrounding whitespace.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::File {
            path: path.to_path_buf(),
            source,
        })?;
        let value = text.trim();
        if value.is_empty() {
            return Err(Error::Empty {
                origin: path.display().to_string(),
            });
        }
        Ok(Secret(value.to_string()))
    }

    /// Reads a secret from the named environment variable.
    pub fn from_env(name: &str) -> Result<Self, Error> {
        let value = std::env::var(name).map_err(|_| Error::EnvMissing {
            name: name.to_string(),
        })?;
        if value.trim().is_empty() {
            return Err(Error::Empty {
                origin: format!("env {name}"),
            });
        }
        Ok(Secret(value.trim().to_string()))
    }

    /// The value itself, for building an `Authorization` header. Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let secret = Secret::new("tok-canary-123");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(secret.expose(), "tok-canary-123");
    }

    #[test]
    fn from_file_trims_newline_and_rejects_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc\n").unwrap();
        assert_eq!(Secret::from_file(&path).unwrap().expose(), "abc");
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(Secret::from_file(&path), Err(Error::Empty { .. })));
    }
}
