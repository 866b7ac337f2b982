//! One reconcile of one environment: snapshot -> plan -> gate -> pull/up/readiness -> smoke ->
//! verify -> record, with the rollback policy of DESIGN.md §2.
//!
//! The CLI (`c2quay deploy`) and the agent call the same flows; everything with side effects
//! comes in through [`Context`] (Compose, brokers, smoke checks, the state directory, the clock,
//! the event sinks).
//!
//! # Layout
//!
//! - `steps/`: one file per step (observe, gate, apply, smoke, verify, record, restore). A step
//!   does one thing, times itself and emits its [`PipelineEvent`](crate::events::PipelineEvent)s.
//!   `restore` is the one rollback primitive.
//! - `flows/`: the orders steps run in (deploy, heal, verify, recover, rollback). A flow that
//!   changes the host takes an [`EnvLock`] as proof that it holds the environment lock
//!   ([`with_env_lock`] is the one way to take it).
//! - `run.rs`: the bookkeeping of one flow (report, model, last observation, events).
//!
//! **Architecture Invariant:** nothing is recorded in the broker before apply, smoke and verify
//! succeeded: the outbox entry is written after `SmokePassed`, and the record step is always last.
//! **Architecture Invariant:** a failed gate changes nothing on the host.

mod brokers;
mod flows;
mod outcome;
mod run;
mod steps;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::broker::{self, Broker, Candidate};
use crate::docker::{self, Container, ImagePins, Project, RenderedModel};
use crate::events::{Events, StepName};
use crate::manifest::{BrokerSpec, Environment, RollbackMode};
use crate::state::{self, Clock, EnvLock, StateDir};

pub use crate::errors::error_chain;
pub use crate::status::{applied_state_of, block_gate, record_applied, status_after};
#[cfg(any(test, feature = "test-support"))]
pub use brokers::FakeBrokers;
pub use brokers::{HttpBrokers, auth_of};
pub use flows::{
    MAX_RESUMES, ManualRollback, OrphanRecords, PruneReport, Recovery, RollbackReport, deploy,
    deploy_locked, deploy_sending_pending, heal, prunable_environment, prune, recover,
    recover_said, rollback_override_commands, rollback_to_snapshot, saved_environment,
    send_orphan_records, settle, verify,
};
pub use outcome::{DeployReport, GateEntry, Outcome, RecordItem, RecordStatus, StepTiming};
pub use steps::observe::{applied_state, try_applied_state};
pub use steps::record::{drain_outbox, record_retry_delay};

/// How long a deploy waits for another holder of the environment lock by default.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(30);
/// Rollback readiness timeout when the manifest sets no `waitTimeout`.
pub const DEFAULT_ROLLBACK_TIMEOUT: Duration = Duration::from_secs(180);

/// Gives the pipeline a broker client for an environment's broker section.
pub trait Brokers: Send + Sync {
    /// The client type.
    type Client: Broker;
    /// A (cached) client for `spec`. Fails when credentials cannot be read.
    fn client(&self, spec: &BrokerSpec) -> Result<Arc<Self::Client>, broker::Error>;
}

/// Everything with side effects that one reconcile uses.
pub struct Context<C, B, S> {
    /// `docker compose`.
    pub compose: C,
    /// Broker clients by broker section.
    pub brokers: B,
    /// Smoke checks.
    pub smoke: S,
    /// The state directory.
    pub state: StateDir,
    /// Timestamps.
    pub clock: Arc<dyn Clock>,
    /// Metrics, when running as the agent (the agent's own gauges; the pipeline's steps reach
    /// metrics through `events`).
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// Where the pipeline's events go (metrics, audit log, log, notifications).
    pub events: Events,
}

/// Options of one deploy.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// Rollback policy override (`--rollback`); the manifest's when `None`.
    pub rollback: Option<RollbackMode>,
    /// Print the plan and change nothing.
    pub dry_run: bool,
    /// `up --force-recreate`.
    pub force_recreate: bool,
    /// How long to wait for the environment lock.
    pub lock_wait: Duration,
    /// Who holds the lock (`deploy`, `agent`), written into the lock file.
    pub holder: &'static str,
    /// The project's rendered model when the caller has a fresh one (the agent renders again
    /// only when an input file changed): the deploy then runs no `docker compose config`.
    pub model: Option<std::sync::Arc<crate::docker::RenderedModel>>,
    /// `--service`: apply only these services' changes (gate, up, smoke, verify and record
    /// for them); the other changed services keep what runs and stay out of sync. `None`:
    /// every change. Refused for an all-or-nothing environment.
    pub only: Option<Vec<String>>,
    /// The commit of the desired checkout the manifest comes from (`main@sha1:<hex>`), when it
    /// is a git work tree: the audit lines carry it and a successful deploy records it as the
    /// applied revision.
    pub revision: Option<String>,
}

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions {
            rollback: None,
            dry_run: false,
            force_recreate: false,
            lock_wait: DEFAULT_LOCK_WAIT,
            holder: "deploy",
            model: None,
            only: None,
            revision: None,
        }
    }
}

/// What the host ran at one moment: containers with image ids, and the rendered model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Environment name.
    pub environment: String,
    /// Compose project name.
    pub project: String,
    /// Manifest generation at the time.
    pub generation: String,
    /// RFC 3339 time of the snapshot.
    pub taken_at: String,
    /// Every container of the project.
    pub containers: Vec<Container>,
    /// Service -> image of the rendered Compose model (without c2quay's override).
    pub rendered: BTreeMap<String, Option<String>>,
    /// Service -> version of the release applied when the snapshot was taken (from the
    /// status): what `c2quay rollback` records in the broker when it restores this snapshot.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<String, String>,
}

impl Snapshot {
    /// Service -> image reference actually running (what a rollback restores).
    pub fn running_images(&self) -> BTreeMap<String, String> {
        let mut images = BTreeMap::new();
        for container in &self.containers {
            if container.state.is_running() || !images.contains_key(&container.service) {
                images.insert(container.service.clone(), container.image.clone());
            }
        }
        images
    }

    /// Service -> image id (`sha256:...`) the container of [`Snapshot::running_images`] runs.
    pub fn running_image_ids(&self) -> BTreeMap<String, String> {
        let mut ids = BTreeMap::new();
        for container in &self.containers {
            if !container.image_id.is_empty()
                && (container.state.is_running() || !ids.contains_key(&container.service))
            {
                ids.insert(container.service.clone(), container.image_id.clone());
            }
        }
        ids
    }
}

/// Errors that stop a reconcile before or outside the outcome policy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The environment cannot be deployed on this machine (compose files missing, ...).
    #[error("environment {environment} cannot be deployed here: {message}")]
    NotDeployable {
        /// Environment name.
        environment: String,
        /// The problems, one per line.
        message: String,
    },
    /// A manifest service is missing from the rendered Compose model.
    #[error(
        "environment {environment}: service {service} is not in the Compose model of project {project} (files: {files})"
    )]
    MissingService {
        /// Environment name.
        environment: String,
        /// The missing service.
        service: String,
        /// Compose project.
        project: String,
        /// Compose files, comma-joined.
        files: String,
    },
    /// Reading the current state (config, ps) failed; nothing was changed.
    #[error("environment {environment}: step {step} failed")]
    Observe {
        /// Environment name.
        environment: String,
        /// The step (`snapshot`, `rollback`).
        step: StepName,
        /// The Compose error.
        #[source]
        source: docker::Error,
    },
    /// The broker could not be asked (network, auth, configuration); nothing was changed.
    #[error("environment {environment}: gate could not be checked")]
    Gate {
        /// Environment name.
        environment: String,
        /// The broker error.
        #[source]
        source: broker::Error,
    },
    /// The state directory failed (lock, journal, outbox, status).
    #[error("environment {environment}")]
    State {
        /// Environment name.
        environment: String,
        /// The state error.
        #[source]
        source: state::Error,
    },
    /// `policy.prune: onRemove` could not take the project of a removed manifest down.
    #[error(
        "environment {environment}: cannot take project {project} down (policy.prune onRemove)"
    )]
    Prune {
        /// Environment name.
        environment: String,
        /// Compose project.
        project: String,
        /// The Compose error.
        #[source]
        source: docker::Error,
    },
    /// No snapshot to roll back to.
    #[error("environment {environment}: no pre-deploy snapshot to roll back to (looked in {dir})")]
    NoSnapshot {
        /// Environment name.
        environment: String,
        /// Where snapshots are kept.
        dir: PathBuf,
    },
}

impl Error {
    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotDeployable { .. } => "not_deployable_here",
            Error::MissingService { .. } => "missing_service",
            Error::Observe { .. } => "observe",
            Error::Gate { .. } => "gate_error",
            Error::State { .. } => "state",
            Error::NoSnapshot { .. } => "no_snapshot",
            Error::Prune { .. } => "prune",
        }
    }

    /// True when retrying later may help (the agent requeues with backoff).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Observe { .. } | Error::Gate { .. } | Error::Prune { .. } => true,
            Error::State { source, .. } => source.is_transient(),
            Error::NotDeployable { .. }
            | Error::MissingService { .. }
            | Error::NoSnapshot { .. } => false,
        }
    }
}

/// A step that failed and why: what a failed flow reports, rolls back for and shows in status.
/// Serialised as the `failed_step` / `cause` pair reports always had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFailure {
    /// The step that failed.
    #[serde(rename = "failed_step")]
    pub step: StepName,
    /// Why, as an error chain.
    #[serde(rename = "cause")]
    pub error: String,
    /// Set when the host, not the release, refused the step (address pools, disk, daemon, a
    /// port held outside the project): the release is retried, not marked failed.
    #[serde(
        default,
        rename = "host_cause",
        skip_serializing_if = "Option::is_none"
    )]
    pub host: Option<crate::docker::HostCause>,
}

impl StepFailure {
    /// A failure of `step` because of `error`.
    pub fn new(step: StepName, error: impl Into<String>) -> StepFailure {
        StepFailure {
            step,
            error: error.into(),
            host: None,
        }
    }

    /// This failure, refused by the host for `cause` (if any).
    pub fn with_host(mut self, cause: Option<crate::docker::HostCause>) -> StepFailure {
        self.host = cause;
        self
    }
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.step, self.error)
    }
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The Compose project of an environment.
pub fn project_of(env: &Environment) -> Project {
    Project {
        name: env.project.clone(),
        directory: env.compose_directory.clone(),
        files: env.compose_files.clone(),
    }
}

/// Checks that every non-gateOnly manifest service exists in the rendered model.
pub fn check_services_exist(env: &Environment, model: &RenderedModel) -> Result<()> {
    for (service, spec) in &env.manifest.spec.services {
        if !spec.gate_only && !model.contains_key(service) {
            return Err(Error::MissingService {
                environment: env.name().to_string(),
                service: service.clone(),
                project: env.project.clone(),
                files: env
                    .compose_files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    Ok(())
}

/// Takes the lock of `environment` for `holder` (waiting up to `wait`), runs `flow` with it, and
/// releases it. The one way a flow gets the [`EnvLock`] it needs.
pub async fn with_env_lock<T>(
    state: &StateDir,
    environment: &str,
    holder: &str,
    wait: Duration,
    flow: impl AsyncFnOnce(&EnvLock) -> Result<T>,
) -> Result<T> {
    let lock = state
        .lock_environment_async(environment, holder, wait)
        .await
        .map_err(|source| Error::State {
            environment: environment.to_string(),
            source,
        })?;
    flow(&lock).await
}

/// The sinks every real context has: the log, the audit log, and metrics when given.
pub fn standard_events(
    state: &StateDir,
    clock: Arc<dyn Clock>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
) -> Events {
    let events = Events::none()
        .with(Arc::new(crate::events::LogSink))
        .with(Arc::new(crate::events::AuditSink::new(
            state.clone(),
            clock,
        )));
    match metrics {
        Some(metrics) => events.with(metrics),
        None => events,
    }
}

/// Service -> desired image for every pinned service.
pub fn desired_pins(env: &Environment) -> ImagePins {
    env.pinned_services()
        .into_iter()
        .filter_map(|s| env.pinned_image(&s).map(|image| (s, image)))
        .collect()
}

/// The pins of a deploy wave: [`desired_pins`], except that each service the gate `held` keeps
/// the image it runs (`None`: none runs, no pin), so `up` of a service that depends on it does
/// not switch it.
pub fn wave_pins(env: &Environment, held: &BTreeMap<String, Option<String>>) -> ImagePins {
    let mut pins = desired_pins(env);
    for (service, image) in held {
        match image {
            Some(image) => pins.insert(service.clone(), image.clone()),
            None => pins.remove(service),
        };
    }
    pins
}

/// The broker candidates among `services`, in service order.
pub fn candidates(env: &Environment, services: &[String]) -> Vec<Candidate> {
    let gated = env.gated_services();
    services
        .iter()
        .filter(|s| gated.contains(s))
        .filter_map(|s| {
            env.version(s).map(|v| Candidate {
                pacticipant: env.pacticipant(s),
                version: v.to_string(),
            })
        })
        .collect()
}
