//! Restore: the one rollback primitive. `up` with the previous pins, then readiness with the
//! rollback timeout. Every rollback (after a failed deploy, in recovery, `c2quay rollback`) runs
//! it through [`roll_back`](crate::pipeline::flows) and so has the same side effects.

use std::time::Duration;

use std::path::Path;

use super::super::run::Run;
use crate::docker::{self, Compose, ImagePins, Project, UpOptions};
use crate::error_chain;
use crate::manifest::Environment;

/// The rollback timeout: 2 x `waitTimeout`, or 3 minutes when the manifest sets none.
pub(in crate::pipeline) fn rollback_timeout(env: &Environment) -> Duration {
    match env.manifest.spec.compose.wait_timeout {
        Some(wait) => wait.get() * 2,
        None => super::super::DEFAULT_ROLLBACK_TIMEOUT,
    }
}

impl<C: Compose, B, S> Run<'_, C, B, S> {
    /// Re-creates `services` from `pins` (the whole pin set: the services not restored keep
    /// what they run) in `project` with the run's model (the previous model, when a
    /// configuration is restored: see [`Run::restore_model`]) and waits for them with the rollback timeout. Not timed as `up` and
    /// `readiness` steps: the caller times it as the `rollback` step. `Err` names the sub-step.
    pub(in crate::pipeline) async fn restore(
        &mut self,
        project: &Project,
        pins: &ImagePins,
        services: &[String],
        options: &UpOptions,
    ) -> Result<(), String> {
        let compose = &self.ctx.compose;
        compose
            .up(project, &self.model, pins, services, options)
            .await
            .map_err(|e| format!("up: {}", error_chain(&e)))?;
        let timeout = rollback_timeout(self.env);
        self.observed = compose
            // The previous release served before: no stability window for the way back.
            .wait_ready(
                project,
                &self.model,
                services,
                timeout,
                Duration::ZERO,
                &docker::no_progress,
            )
            .await
            .map_err(|e| format!("readiness: {}", error_chain(&e)))?;
        Ok(())
    }

    /// Switches the run to the saved model at `path` (the last applied one) for a rollback of
    /// a configuration change: the returned project applies that model file instead of the
    /// Compose files, from the same project directory, so the restored containers get the
    /// configuration they had. `Err` says why the saved model cannot be used.
    pub(in crate::pipeline) fn restore_model(
        &mut self,
        project: &Project,
        path: &Path,
    ) -> Result<Project, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the applied model {}: {e}", path.display()))?;
        self.model = docker::parse::config(&text)
            .map_err(|e| format!("the applied model {}: {e}", path.display()))?;
        docker::model::mark_jobs(&mut self.model, self.env.declared_jobs());
        Ok(Project {
            files: vec![path.to_path_buf()],
            ..project.clone()
        })
    }
}
