//! The flows: the orders steps run in. `deploy` (gate, apply, smoke, verify, record),
//! `heal` (re-apply the applied release), `verify` (the gate alone), `recover` (an interrupted
//! deploy from the journal) and `rollback` (the policy around the one `restore` step).
//!
//! A flow that changes the host or the status takes an [`EnvLock`](crate::state::EnvLock):
//! the caller holds the environment lock ([`with_env_lock`](super::with_env_lock)).

mod deploy;
mod heal;
mod prune;
mod recover;
mod rollback;
mod verify;

use tracing::warn;

use super::run::Run;
use super::{Brokers, DeployReport, Result, StepFailure};
use crate::docker::{Compose, ImagePins, Project, UpOptions};
use crate::error_chain;
use crate::events::{PipelineEvent, StepName};
use crate::smoke::Smoke;
use crate::state::{EnvLock, Intent, Step};

pub use deploy::{deploy, deploy_locked, deploy_sending_pending};
pub use heal::heal;
pub use prune::{
    OrphanRecords, PruneReport, prunable_environment, prune, saved_environment, send_orphan_records,
};
pub use recover::{MAX_RESUMES, Recovery, recover, recover_said, settle};
pub use rollback::{
    ManualRollback, RollbackReport, rollback_override_commands, rollback_to_snapshot,
};
pub use verify::verify;

/// pull -> up -> readiness -> smoke -> verify, journaling each step reached: the apply of a
/// deploy, and of an interrupted deploy that recovery resumes from where its journal got (a
/// pull that finished is not repeated; a step reached is never journaled back).
pub(in crate::pipeline) async fn apply_release<C: Compose, B: Brokers, S: Smoke>(
    run: &mut Run<'_, C, B, S>,
    project: &Project,
    pins: &ImagePins,
    services: &[String],
    force_recreate: bool,
    intent: &mut Intent,
) -> std::result::Result<(), StepFailure> {
    if intent.step < Step::Pulled {
        run.pull(project, pins, services).await?;
        intent.step = Step::Pulled;
        run.write_intent(intent);
    }
    run.remove_leftovers_seen(project).await;
    let up_options = UpOptions {
        force_recreate,
        remove_orphans: run.env.manifest.spec.policy.remove_orphans,
        no_deps: false,
    };
    run.up(StepName::Up, project, pins, services, &up_options)
        .await?;
    intent.step = intent.step.max(Step::UpDone);
    run.write_intent(intent);
    run.readiness(project, services, run.env.wait_timeout())
        .await?;
    intent.step = intent.step.max(Step::Ready);
    run.write_intent(intent);
    run.smoke().await?;
    run.verify(pins, services)?;
    tracing::info!(
        environment = run.env.name(),
        "apply, readiness and smoke passed"
    );
    Ok(())
}

/// Marks what `run` applied as the environment's applied state: the release, every service's
/// configuration with its container's Compose config hash (from the run's last observation),
/// and the rendered model a later rollback of a configuration change restores. The services
/// the gate `held` keep their applied release and configuration. The applied revision becomes
/// the run's (none when the manifest does not come from a git checkout) once nothing was held.
pub(in crate::pipeline) fn commit_applied<C, B, S>(
    run: &Run<'_, C, B, S>,
    lock: &EnvLock,
    held: &[String],
) -> Result<()> {
    let (ctx, env) = (run.ctx, run.env);
    let state_err = |source| super::Error::State {
        environment: env.name().to_string(),
        source,
    };
    if let Some(text) = run.model.source() {
        (ctx.state.write_applied_model(env.name(), text)).map_err(state_err)?;
    }
    prune::save_manifest(&ctx.state, env).map_err(state_err)?;
    crate::status::update(&ctx.state, lock, |status| {
        crate::status::record_applied(status, env, &run.model, &run.observed, held);
        if held.is_empty() {
            status.applied_revision = run.scope.revision.clone();
        }
    })
    .map_err(state_err)
}

impl<C: Compose, B, S> Run<'_, C, B, S> {
    /// Ends a flow: post-snapshot (when `project` is given), the report file, the `Finished`
    /// event; returns the report.
    pub(in crate::pipeline) async fn finish(
        mut self,
        project: Option<&Project>,
    ) -> Result<DeployReport> {
        let name = self.env.name().to_string();
        if let Some(project) = project
            && let Ok(post) = self.containers_snapshot(project).await
        {
            match self.ctx.state.write_snapshot(&name, "post", &post) {
                Ok(path) => self.report.post_snapshot = Some(path),
                Err(error) => {
                    warn!(environment = %name, error = %error_chain(&error), "cannot write the post snapshot")
                }
            }
        }
        match self.ctx.state.write_report(&name, "deploy", &self.report) {
            Ok(path) => self.report.report_path = Some(path),
            Err(error) => {
                warn!(environment = %name, error = %error_chain(&error), "cannot write the deploy report")
            }
        }
        self.emit(PipelineEvent::Finished {
            outcome: self.report.outcome.name(),
            plan: self.report.plan.clone(),
        });
        Ok(self.report)
    }
}
