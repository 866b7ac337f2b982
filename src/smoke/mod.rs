//! Smoke checks (http / tcp / exec) run after apply, with attempts and intervals.
//!
//! [`Smoke`] is the port the pipeline uses; [`Checks`] is the real implementation and
//! [`fake::FakeSmoke`] a stateful fake (test support). A check that fails is not an error: it
//! is a [`SmokeResult`] with `passed: false`, the attempts used and the last failure reason.
//! [`Error`] is for checks that cannot be run at all (none of http/tcp/exec, empty argv).
//!
//! **Invariant:** `exec` checks run with a clean environment: only `PATH`,
//! `C2QUAY_ENVIRONMENT`, the context's variables and the check's own `env`. The agent's broker
//! credentials never reach them.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::manifest::SmokeCheck;

mod checks;
#[cfg(any(test, feature = "test-support"))]
pub mod fake;

pub use checks::Checks;

/// Default per-attempt timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default pause between attempts.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Default number of attempts.
pub const DEFAULT_ATTEMPTS: u32 = 1;

/// What a check may know about where it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmokeContext {
    /// The environment's name, exported to `exec` checks as `C2QUAY_ENVIRONMENT`.
    pub environment: String,
    /// Extra variables for `exec` checks (the check's own `env` wins on a clash).
    pub env_vars: BTreeMap<String, String>,
}

/// The outcome of one check after all its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmokeResult {
    /// The check's name.
    pub name: String,
    /// Whether an attempt passed.
    pub passed: bool,
    /// Attempts used (1-based; equals the limit when it failed).
    pub attempts: u32,
    /// Why the last failed attempt failed, e.g.
    /// `GET http://127.0.0.1:18080/ -> 200 but body does not contain "version 2"`.
    pub last_failure: Option<String>,
    /// Wall time of all attempts.
    #[serde(with = "millis")]
    pub elapsed: Duration,
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Runs smoke checks.
pub trait Smoke: Send + Sync {
    /// Runs `check` with its attempts, interval and per-attempt timeout.
    fn run(
        &self,
        check: &SmokeCheck,
        ctx: &SmokeContext,
    ) -> impl Future<Output = Result<SmokeResult>> + Send;
}

/// A check that cannot be run at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The check is malformed (no kind, several kinds, empty argv, bad URL).
    #[error("smoke check {check:?}: {detail}")]
    Invalid {
        /// The check's name.
        check: String,
        /// What is wrong.
        detail: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for smoke checks")]
    Client(#[source] reqwest::Error),
}

impl Error {
    /// A bounded label for metrics and reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "invalid",
            Error::Client(_) => "client",
        }
    }
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;
