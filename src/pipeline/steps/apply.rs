//! Apply: pull the pinned images, clear leftovers of an interrupted recreate, `up`, and wait for
//! readiness. Each is its own step with its own [`StepName`].

use std::time::Duration;

use tracing::warn;

use super::super::StepFailure;
use super::super::run::Run;
use crate::docker::{self, Compose, ImagePins, Project, UpOptions};
use crate::error_chain;
use crate::events::{PipelineEvent, StepName};
use crate::manifest::PullPolicy;

impl<C: Compose, B, S> Run<'_, C, B, S> {
    /// Pulls the pins of `services` per the manifest's pull policy (`never`: no step at all).
    pub(in crate::pipeline) async fn pull(
        &mut self,
        project: &Project,
        pins: &ImagePins,
        services: &[String],
    ) -> Result<(), StepFailure> {
        let policy = self.env.manifest.spec.compose.pull;
        if policy == PullPolicy::Never {
            return Ok(());
        }
        let service_pins: ImagePins = services
            .iter()
            .filter_map(|s| pins.get(s).map(|i| (s.clone(), i.clone())))
            .collect();
        let started = self.start_step(StepName::Pull);
        let pulled = (self.ctx.compose)
            .pull_with_policy(project, &self.model, &service_pins, services, policy)
            .await;
        let host = pulled.as_ref().err().and_then(docker::Error::host_cause);
        (self.check(StepName::Pull, started, pulled.map_err(|e| error_chain(&e))))
            .map_err(|failure| failure.with_host(host))
    }

    /// Removes leftovers of an interrupted recreate when the last observation shows one (they
    /// would make `up` fail on a name conflict). A failure only warns: `up` says the rest.
    pub(in crate::pipeline) async fn remove_leftovers_seen(&mut self, project: &Project) {
        if !(self.observed.iter()).any(|c| docker::parse::is_leftover_name(&c.name)) {
            return;
        }
        match self.ctx.compose.remove_leftovers(project).await {
            Ok(removed) => self.emit(PipelineEvent::LeftoversRemoved {
                names: removed.into_iter().map(|c| c.name).collect(),
            }),
            Err(error) => {
                warn!(environment = self.env.name(), error = %error_chain(&error), "cannot remove leftovers")
            }
        }
    }

    /// `up -d` of `services` with `pins` (the whole pin set: unchanged services keep theirs).
    pub(in crate::pipeline) async fn up(
        &mut self,
        step: StepName,
        project: &Project,
        pins: &ImagePins,
        services: &[String],
        options: &UpOptions,
    ) -> Result<(), StepFailure> {
        let started = self.start_step(step);
        let up = (self.ctx.compose)
            .up(project, &self.model, pins, services, options)
            .await;
        let host = up.as_ref().err().and_then(docker::Error::host_cause);
        (self.check(step, started, up.map_err(|e| error_chain(&e))))
            .map_err(|failure| failure.with_host(host))
    }

    /// Waits until `services` are ready or `timeout` passes; the containers readiness saw last
    /// become the run's observation (the proof verify checks the pins against).
    pub(in crate::pipeline) async fn readiness(
        &mut self,
        project: &Project,
        services: &[String],
        timeout: Duration,
    ) -> Result<(), StepFailure> {
        let started = self.start_step(StepName::Readiness);
        let (events, scope) = (&self.ctx.events, &self.scope);
        let progress = |waiting: &[(String, String)], waited: Duration| {
            let waiting = waiting.to_vec();
            let event = PipelineEvent::ReadinessWaiting {
                waiting,
                waited,
                timeout,
            };
            events.emit(scope, &event);
        };
        let ready = (self.ctx.compose)
            .wait_ready(
                project,
                &self.model,
                services,
                timeout,
                self.env.min_ready(),
                &progress,
            )
            .await;
        let containers = self.check(
            StepName::Readiness,
            started,
            ready.map_err(|e| error_chain(&e)),
        )?;
        self.observed = containers;
        Ok(())
    }
}
