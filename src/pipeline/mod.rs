//! One reconcile of one environment: snapshot -> plan -> gate -> pull/up/readiness -> smoke ->
//! verify -> record, with the rollback policy of DESIGN.md §2.
//!
//! The CLI (`c2quay deploy`) and the agent call the same [`deploy`]; everything with side effects
//! comes in through [`Context`] (Compose, brokers, smoke checks, the state directory, the clock).
//!
//! **Architecture Invariant:** nothing is recorded in the broker before apply, smoke and verify
//! succeeded: the outbox entry is written after `SmokePassed`, and the record step is always last.
//! **Architecture Invariant:** a failed gate changes nothing on the host.

mod brokers;
mod outcome;
mod recover;
mod rollback;
mod run;
mod status;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::broker::{self, Broker};
use crate::compose::{self, Container, Project, RenderedModel};
use crate::manifest::{BrokerSpec, Environment, RollbackMode};
use crate::state::{self, Clock, StateDir};

#[cfg(any(test, feature = "test-support"))]
pub use brokers::FakeBrokers;
pub use brokers::{HttpBrokers, auth_of};
pub use outcome::{DeployReport, Outcome, RecordItem, RecordStatus, StepTiming};
pub use recover::{Recovery, record_retry_delay};
pub use recover::{drain_outbox, recover};
pub use rollback::{rollback_override_commands, rollback_to_snapshot};
pub use run::{
    applied_state, candidates, deploy, desired_pins, error_chain, heal, try_applied_state,
    update_status, verify,
};
pub use status::{applied_state_of, block_gate, record_applied, status_after};

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
    /// Metrics, when running as the agent.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
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
}

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions {
            rollback: None,
            dry_run: false,
            force_recreate: false,
            lock_wait: DEFAULT_LOCK_WAIT,
            holder: "deploy",
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
}

impl Snapshot {
    /// Service -> image reference actually running (what a rollback restores).
    pub fn running_images(&self) -> BTreeMap<String, String> {
        let mut images = BTreeMap::new();
        for container in &self.containers {
            if container.state == "running" || !images.contains_key(&container.service) {
                images.insert(container.service.clone(), container.image.clone());
            }
        }
        images
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
        /// The step (`snapshot`).
        step: &'static str,
        /// The Compose error.
        #[source]
        source: compose::Error,
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
        }
    }

    /// True when retrying later may help (the agent requeues with backoff).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Observe { .. } | Error::Gate { .. } => true,
            Error::State { source, .. } => source.is_transient(),
            Error::NotDeployable { .. }
            | Error::MissingService { .. }
            | Error::NoSnapshot { .. } => false,
        }
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
