//! The heal flow: re-applies the applied release of drifted services (`selfHeal`). No gate, no
//! record: healing is not a new release.

use super::super::run::Run;
use super::super::{
    Brokers, Context, DeployOptions, DeployReport, Error, Outcome, Result, desired_pins, project_of,
};
use crate::docker::{Compose, UpOptions};
use crate::events::StepName;
use crate::manifest::Environment;
use crate::smoke::Smoke;
use crate::state::EnvLock;

/// Re-creates `services` from the applied release and waits for them. The caller holds the lock.
pub async fn heal<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    services: &[String],
    options: &DeployOptions,
    _lock: &EnvLock,
) -> Result<DeployReport> {
    let name = env.name().to_string();
    let mut run = Run::new(ctx, env);
    run.scope.revision = options.revision.clone();
    let project = project_of(env);
    let started = run.start_step(StepName::Heal);
    run.snapshot(&project).await?;
    run.end_step(StepName::Snapshot, started, None);
    let applied =
        super::super::try_applied_state(&ctx.state, &name).map_err(|source| Error::State {
            environment: name.clone(),
            source,
        })?;
    let mut pins = desired_pins(env);
    for (service, release) in &applied.releases {
        pins.insert(service.clone(), release.image.clone());
    }
    run.report.changed = services.to_vec();
    run.report.plan = format!("heal {}", services.join(", "));
    let healed = async {
        run.up(
            StepName::Up,
            &project,
            &pins,
            services,
            &UpOptions::default(),
        )
        .await?;
        run.readiness(&project, services, env.wait_timeout()).await
    }
    .await;
    run.report.outcome = match healed {
        Ok(()) => Outcome::Deployed,
        Err(failure) => Outcome::RollbackFailed {
            failure: super::super::StepFailure::new(StepName::Heal, failure.error),
            rollback: "a heal is not rolled back".into(),
        },
    };
    run.finish(Some(&project)).await
}
