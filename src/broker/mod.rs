//! The Pact Broker HAL client: index, can-i-deploy (matrix), environments, record-deployment.
//!
//! **Invariant:** only this module knows HAL shapes and broker URLs.
//! The [`Broker`] trait is what the pipeline uses; `HttpBroker` is the real client.

use std::future::Future;

use serde::{Deserialize, Serialize};

/// One pacticipant version to be gated or recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// The pacticipant name in the broker.
    pub pacticipant: String,
    /// The version number (release identity).
    pub version: String,
}

/// The broker's three answers, kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// `deployable: true`.
    Deployable,
    /// `deployable: false`: a verification failed or a specified version is unknown to the broker.
    NotDeployable,
    /// `deployable: null`: a verification is missing or pending.
    Unknown,
}

/// The answer to one can-i-deploy question, with what an operator needs to see why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateAnswer {
    /// The verdict.
    pub verdict: Verdict,
    /// `summary.reason` as the broker wrote it.
    pub reason: String,
    /// `summary.success`.
    pub success: u64,
    /// `summary.failed`.
    pub failed: u64,
    /// `summary.unknown`.
    pub unknown: u64,
    /// One line per failing or unverified matrix row ("Foo 1 -> Bar 2: failed").
    pub failing_rows: Vec<String>,
}

/// How a set of candidates is gated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GateMode {
    /// One query per candidate (fan-out, bounded parallelism).
    PerService,
    /// One matrix query for the whole set (used for 2+ candidates).
    AllOrNothing,
}

/// What the pipeline needs from a Pact Broker.
pub trait Broker: Send + Sync {
    /// Asks whether `candidates` can be deployed to `environment`. Per service: one answer per
    /// candidate, in the caller's order. All-or-nothing: exactly one answer for the whole set.
    fn can_i_deploy(
        &self,
        environment: &str,
        candidates: &[Candidate],
        mode: GateMode,
    ) -> impl Future<Output = Result<Vec<GateAnswer>>> + Send;

    /// Records that `candidate` now runs in `environment` (idempotent, by the broker's own rule).
    fn record_deployment(
        &self,
        environment: &str,
        candidate: &Candidate,
        application_instance: Option<&str>,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// Errors from talking to the broker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Placeholder until the client lands.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;
