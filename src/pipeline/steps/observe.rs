//! Observe: the rendered model and the containers of the project (a snapshot), and the applied
//! state from the status file.

use std::collections::BTreeMap;

use tracing::warn;

use super::super::run::Run;
use super::super::{Error, Result, Snapshot};
use crate::docker::{self, Compose, Container, Project, RenderedModel};
use crate::error_chain;
use crate::events::StepName;
use crate::plan::AppliedState;
use crate::state::{self, StateDir};
use crate::status;

impl<C: Compose, B, S> Run<'_, C, B, S> {
    /// Observes the project: rendered model and containers, asked of Compose concurrently.
    pub(in crate::pipeline) async fn snapshot(&mut self, project: &Project) -> Result<Snapshot> {
        let (model, containers) = tokio::join!(
            self.ctx.compose.config(project),
            self.ctx.compose.ps(project)
        );
        self.model = model.map_err(|source| self.observe_error(source))?;
        docker::model::mark_jobs(&mut self.model, self.env.declared_jobs());
        let containers = containers.map_err(|source| self.observe_error(source))?;
        Ok(self.snapshot_of(project, containers))
    }

    /// [`Run::snapshot`] with `rendered`, the caller's fresh rendered model, when it has one:
    /// only the containers are asked for.
    pub(in crate::pipeline) async fn snapshot_with(
        &mut self,
        project: &Project,
        rendered: Option<&RenderedModel>,
    ) -> Result<Snapshot> {
        let Some(rendered) = rendered else {
            return self.snapshot(project).await;
        };
        self.model = rendered.clone();
        docker::model::mark_jobs(&mut self.model, self.env.declared_jobs());
        self.containers_snapshot(project).await
    }

    /// Observes the containers only, with the model of the last [`Run::snapshot`]: the model
    /// cannot have changed under the environment lock, the containers can.
    pub(in crate::pipeline) async fn containers_snapshot(
        &mut self,
        project: &Project,
    ) -> Result<Snapshot> {
        let containers =
            (self.ctx.compose.ps(project).await).map_err(|source| self.observe_error(source))?;
        Ok(self.snapshot_of(project, containers))
    }

    fn observe_error(&self, source: docker::Error) -> Error {
        Error::Observe {
            environment: self.env.name().to_string(),
            step: StepName::Snapshot,
            source,
        }
    }

    fn snapshot_of(&mut self, project: &Project, containers: Vec<Container>) -> Snapshot {
        self.observed = containers.clone();
        Snapshot {
            environment: self.env.name().to_string(),
            project: project.name.clone(),
            generation: self.env.generation.clone(),
            taken_at: humantime::format_rfc3339_millis(self.ctx.clock.now()).to_string(),
            containers,
            rendered: self
                .model
                .iter()
                .map(|(s, r)| (s.clone(), r.image.clone()))
                .collect(),
            versions: BTreeMap::new(),
        }
    }
}

/// The applied state the planner compares against, from the status file (empty when none).
/// A corrupt or unreadable status file is an error naming the file: the pipeline stops.
pub fn try_applied_state(
    state: &StateDir,
    environment: &str,
) -> std::result::Result<AppliedState, state::Error> {
    Ok(state
        .read_status(environment)?
        .map(|status| status::applied_state_of(&status))
        .unwrap_or_default())
}

/// Like [`try_applied_state`], but an unreadable status only warns and counts as "nothing
/// applied". For read-only views (`c2quay plan`); the pipeline uses [`try_applied_state`].
pub fn applied_state(state: &StateDir, environment: &str) -> AppliedState {
    match state.read_status(environment) {
        Ok(Some(status)) => status::applied_state_of(&status),
        Ok(None) => AppliedState::default(),
        Err(error) => {
            warn!(environment, error = %error_chain(&error), "status unreadable; planning as if nothing was applied");
            AppliedState::default()
        }
    }
}
