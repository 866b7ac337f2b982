//! Restore: the one rollback primitive. `up` with the previous pins, then readiness with the
//! rollback timeout. Every rollback (after a failed deploy, in recovery, `c2quay rollback`) runs
//! it through [`roll_back`](crate::pipeline::flows) and so has the same side effects.

use std::time::Duration;

use super::super::run::Run;
use crate::docker::{Compose, ImagePins, Project, UpOptions};
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
    /// what they run) and waits for them with the rollback timeout. Not timed as `up` and
    /// `readiness` steps: the caller times it as the `rollback` step. `Err` names the sub-step.
    pub(in crate::pipeline) async fn restore(
        &mut self,
        project: &Project,
        pins: &ImagePins,
        services: &[String],
    ) -> Result<(), String> {
        let compose = &self.ctx.compose;
        compose
            .up(project, &self.model, pins, services, &UpOptions::default())
            .await
            .map_err(|e| format!("up: {}", error_chain(&e)))?;
        let timeout = rollback_timeout(self.env);
        self.observed = compose
            .wait_ready(project, &self.model, services, timeout)
            .await
            .map_err(|e| format!("readiness: {}", error_chain(&e)))?;
        Ok(())
    }
}
