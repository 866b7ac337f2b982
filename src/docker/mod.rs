//! The Docker adapter: the [`Engine`] port (observation, removal, events) on the Docker Engine
//! API, and the [`Applier`] port (render, pull, apply) on the Compose v2 CLI.
//!
//! **Invariant:** only this module talks to Docker: it builds argv for, or parses the output
//! of, `docker compose`, and it alone speaks the Engine API. [`Compose`] is both ports at once,
//! which is what the pipeline and the agent use; [`CliCompose`] is the real implementation and
//! [`fake::FakeCompose`] (test support) a stateful fake.
//!
//! # Layout
//!
//! - `engine`: [`engine::DockerEngine`], the Engine API client (bollard), and the pure mapping
//!   of its answers into [`Container`]; `events`: which container events matter (pure);
//!   `wait`: the readiness loop, generic over [`Engine`]; `readiness`: its pure decision.
//! - `argv`: pure argv builders; `parse`: pure JSON parsers; `override_file`: the pinning
//!   override (pure rendering, atomic 0600 write); `version`: Compose version parsing and
//!   feature gates; `run`: the one child-process runner of the crate (timeouts, process-group
//!   kill, PDEATHSIG, stderr tails), used by Compose and by the smoke `exec` check.
//! - `cli`: [`CliCompose`], the real adapter; `fake`: [`fake::FakeCompose`].
//!
//! # Pins and services
//!
//! `pins` should hold every service c2quay pins in the environment (unchanged ones at the image
//! they run), `services` only those to pull or (re)create. `up` does not pass `--no-deps`, so
//! Compose also starts missing dependencies; a dependency whose pin is left out would be
//! recreated from the base file's image. `up` always passes `--pull never`: pulling is its own
//! step, before anything is stopped, so a failed pull changes nothing.
//!
//! # Rollback pins by image id
//!
//! A pin may be an image id (`sha256:<64 hex>`). Verified on Compose 2.40.3 with Docker 20.10:
//! `image: sha256:<id>` plus `up --pull never` runs that image, so no rollback tag is needed.
//! Image-id pins are never pulled.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod argv;
mod cli;
mod container;
pub mod engine;
mod error;
pub mod events;
#[cfg(any(test, feature = "test-support"))]
pub mod fake;
pub mod inputs;
pub mod model;
pub mod override_file;
pub mod parse;
mod plugin;
pub mod pools;
pub mod readiness;
pub mod render_cache;
pub mod run;
mod version;
pub mod wait;

pub use cli::{CliCompose, CliConfig};
pub use container::{Container, ContainerState, Health};
pub use engine::{DockerEngine, EngineConfig};
pub use error::{Error, HostCause, Result, ServiceFailure};
pub use events::ContainerEvent;
pub use model::{RenderedModel, RenderedService, ServiceConfig};
pub use readiness::{ReadinessVerdict, evaluate};
pub use version::ComposeVersion;
pub use wait::{Progress, WaitSettings, no_progress};

use crate::manifest::PullPolicy;

/// A Compose project as the pipeline names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// `-p` project name.
    pub name: String,
    /// `--project-directory`.
    pub directory: PathBuf,
    /// `-f` files, absolute, in order (the override, when any, is appended by the caller's options).
    pub files: Vec<PathBuf>,
}

/// Options of `up`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpOptions {
    /// `--force-recreate`.
    pub force_recreate: bool,
    /// `--remove-orphans`.
    pub remove_orphans: bool,
    /// `--no-deps`: leave the dependencies as they are (a rollback does not run a job again).
    pub no_deps: bool,
}

/// Image pins written into an override file: service -> image reference or image id.
pub type ImagePins = BTreeMap<String, String>;

/// A stream of container events; it ends (or yields an error) when the daemon goes away.
pub type EventStream = Pin<Box<dyn futures_util::Stream<Item = Result<ContainerEvent>> + Send>>;

/// What c2quay observes and removes on the Docker engine (the Engine API, no processes).
pub trait Engine: Send + Sync {
    /// Every container of the project, stopped ones and leftovers included, with the image
    /// ids they run.
    fn ps(&self, project: &Project) -> impl Future<Output = Result<Vec<Container>>> + Send;
    /// Every Compose-managed container on the host, all projects, in a constant number of
    /// requests plus one per container that is not running.
    fn ps_all(&self) -> impl Future<Output = Result<Vec<Container>>> + Send;
    /// The last `lines` lines of a service's logs (stdout and stderr).
    fn logs_tail(
        &self,
        project: &Project,
        service: &str,
        lines: usize,
    ) -> impl Future<Output = Result<String>> + Send;
    /// Leftovers of an interrupted recreate (`<12 hex>_<name>` containers with the project's labels).
    fn leftovers(&self, project: &Project) -> impl Future<Output = Result<Vec<Container>>> + Send;
    /// Removes the leftovers (forced) and returns what was removed. The pipeline calls it
    /// before `up` when a service's normal container is absent.
    fn remove_leftovers(
        &self,
        project: &Project,
    ) -> impl Future<Output = Result<Vec<Container>>> + Send;
    /// The id (`sha256:...`) an image reference resolves to on this host now, `None` when the
    /// host has no such image. A rollback compares it with the id that ran before: a tag moved
    /// since (a re-pushed `:stable`) is restored by id, not by the tag.
    fn image_id(&self, reference: &str) -> impl Future<Output = Result<Option<String>>> + Send;
    /// Subscribes to the events of `project`'s containers (of every Compose project when
    /// `None`) that can change what runs or whether it is ready, from the moment of the call.
    fn events(&self, project: Option<&str>) -> impl Future<Output = Result<EventStream>> + Send;
    /// c2quay's own readiness: waits until every service in `services` is ready (for
    /// `min_ready` when a service has no healthcheck, see [`wait::wait_ready`]) or `timeout`
    /// passes, and returns the project's containers as last observed (the caller's proof of what
    /// runs). On failure the error is [`Error::NotReady`] naming each service, its state and its
    /// last log lines. Driven by [`Engine::events`] ([`wait::wait_ready`]).
    fn wait_ready(
        &self,
        project: &Project,
        model: &RenderedModel,
        services: &[String],
        timeout: Duration,
        min_ready: Duration,
        progress: Progress<'_>,
    ) -> impl Future<Output = Result<Vec<Container>>> + Send {
        async move {
            wait::wait_ready(
                self,
                project,
                model,
                services,
                timeout,
                min_ready,
                (&WaitSettings::default(), progress),
            )
            .await
        }
    }
}

/// What c2quay changes through the Compose v2 CLI (there is no Compose library).
pub trait Applier: Send + Sync {
    /// The rendered model of the project (service -> image, build, restart, healthcheck).
    fn config(&self, project: &Project) -> impl Future<Output = Result<RenderedModel>> + Send;
    /// Pulls the pinned images of `services` with the manifest's pull policy: `never` pulls
    /// nothing; unpinned services and image-id pins (`sha256:...`) are never pulled. A failed
    /// pull changes nothing. `model` is the project's rendered model (from [`Applier::config`]).
    fn pull_with_policy(
        &self,
        project: &Project,
        model: &RenderedModel,
        pins: &ImagePins,
        services: &[String],
        policy: PullPolicy,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Writes the override for `pins` (checked against `model`) and runs `up -d` for `services`
    /// (never called with an empty list).
    fn up(
        &self,
        project: &Project,
        model: &RenderedModel,
        pins: &ImagePins,
        services: &[String],
        options: &UpOptions,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Takes the project down by name (`down --remove-orphans`, volumes kept): its containers
    /// and networks go, whether or not its Compose files still exist.
    fn take_down(&self, project_name: &str) -> impl Future<Output = Result<()>> + Send;
}

/// Both ports: what the pipeline and the agent take (`C: Compose`).
pub trait Compose: Engine + Applier {}

impl<T: Engine + Applier> Compose for T {}
