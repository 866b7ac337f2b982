//! The Pact Broker HAL client: index, can-i-deploy (matrix), environments, record-deployment,
//! record-undeployment.
//!
//! **Invariant:** only this module knows HAL shapes and broker URLs.
//! The [`Broker`] trait is what the pipeline uses; [`HttpBroker`] is the real client and
//! [`FakeBroker`] the stateful stand-in for tests.
//!
//! Files: `requests.rs` (pure URL and body builders), `parse.rs` (pure JSON parsers),
//! `backoff.rs` (pure retry delays), `origins.rs` (where credentials may go), `http.rs`
//! (config, auth, the one place that sends with retries), `client.rs` (index, can-i-deploy,
//! matrix, environments, record-deployment), `undeploy.rs` (record-undeployment), `diagnose.rs`
//! (`c2quay doctor`'s broker checks), `stats.rs` (request counts and the metrics hook),
//! `error.rs`, `fake.rs`.

use std::future::Future;

use serde::{Deserialize, Serialize};

mod backoff;
mod client;
mod diagnose;
mod error;
#[cfg(any(test, feature = "test-support"))]
pub mod fake;
mod http;
pub mod origins;
pub mod parse;
pub mod requests;
mod stats;
mod undeploy;

pub use backoff::{Backoff, MAX_BACKOFF_DELAY, RETRY_AFTER_CAP, parse_retry_after};
pub use client::{
    RELATION_CAN_I_DEPLOY, RELATION_ENVIRONMENTS, RELATION_INDEX, RELATION_MATRIX,
    RELATION_RECORD_DEPLOYMENT, RELATION_VERSION,
};
pub use diagnose::Finding;
pub use error::{Error, Result, is_retryable_status};
#[cfg(any(test, feature = "test-support"))]
pub use fake::FakeBroker;
pub use http::{
    Auth, Config, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_ATTEMPTS, DEFAULT_PARALLELISM,
    DEFAULT_REQUEST_TIMEOUT, DEFAULT_RETRY_BASE_DELAY, HttpBroker,
};
pub use stats::{RequestObserver, RequestStats, StatsSnapshot, status_label};
pub use undeploy::{RELATION_CURRENTLY_DEPLOYED, RELATION_DEPLOYED_VERSION, RELATION_ENVIRONMENT};

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

/// What a record-undeployment found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UndeployOutcome {
    /// These versions were currently deployed (in the instance asked) and now are not.
    Undeployed {
        /// The version numbers marked undeployed, newest first as the broker lists them.
        versions: Vec<String>,
    },
    /// Nothing of the pacticipant was currently deployed there: already undeployed (a retry
    /// after a lost answer) or never recorded. Success, not an error.
    NothingDeployed,
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

    /// Records that `pacticipant` no longer runs in `environment` (in `application_instance`,
    /// or the record without an instance when `None`): every such currently deployed version
    /// is marked undeployed. Idempotent: nothing currently deployed is
    /// [`UndeployOutcome::NothingDeployed`].
    fn record_undeployment(
        &self,
        environment: &str,
        pacticipant: &str,
        application_instance: Option<&str>,
    ) -> impl Future<Output = Result<UndeployOutcome>> + Send;
}
