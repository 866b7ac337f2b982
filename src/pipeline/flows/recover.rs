//! The recover flow: an interrupted deploy, from the journal.
//!
//! After a crash or `kill -9` at any point of a deploy, the journal holds an intent. Recovery
//! inspects the containers: if the target images run and are ready, it finishes (smoke, record
//! through the outbox); otherwise it rolls back to the previous images through the same
//! rollback as a failed deploy (report, audit line, metric). Recovering twice is harmless: the
//! intent is cleared only after the host is consistent, and outbox records are keyed by a
//! deterministic id.

use tracing::{info, warn};

use super::super::run::Run;
use super::super::steps::smoke::run_smoke;
use super::super::{Brokers, Context, Error, Outcome, Result, StepFailure, project_of};
use super::rollback::roll_back;
use crate::docker::Compose;
use crate::error_chain;
use crate::events::StepName;
use crate::manifest::{Environment, RollbackMode};
use crate::smoke::Smoke;
use crate::state::{EnvLock, Intent, Operation, Step};

/// What recovery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// No open intent.
    Nothing,
    /// The interrupted deploy was finished (its records are in the outbox).
    Finished,
    /// The interrupted deploy was rolled back to the previous images.
    RolledBack,
    /// Recovery could not make the host consistent; the message says why.
    Failed(String),
}

/// Recovers an environment with an open intent, before anything else is done with it. The
/// caller holds the environment lock.
pub async fn recover<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    lock: &EnvLock,
) -> Result<Recovery> {
    let name = env.name().to_string();
    let state_err = |source| Error::State {
        environment: name.clone(),
        source,
    };
    let Some(intent) = ctx.state.read_intent(&name).map_err(state_err)? else {
        return Ok(Recovery::Nothing);
    };
    info!(environment = %name, generation = %intent.generation, step = ?intent.step, "recovering an interrupted {:?}", intent.operation);
    let project = project_of(env);
    if let Err(error) = ctx.compose.remove_leftovers(&project).await {
        warn!(environment = %name, error = %error_chain(&error), "cannot remove leftovers of an interrupted recreate");
    }
    let is_this_deploy =
        intent.operation == Operation::Deploy && intent.generation == env.generation;
    if intent.step >= Step::SmokePassed {
        // Smoke passed: only the records and the applied release may be missing.
        finish(ctx, env, &intent, lock, is_this_deploy)?;
        return Ok(Recovery::Finished);
    }
    let mut run = Run::new(ctx, env);
    run.snapshot(&project).await?;
    let services = intent.changed_services.clone();
    let targets_run = is_this_deploy
        && intent.target_images.iter().all(|(service, image)| {
            (run.observed.iter())
                .any(|c| &c.service == service && &c.image == image && c.state == "running")
        });
    if targets_run
        && ctx
            .compose
            .wait_ready(&project, &run.model, &services, env.wait_timeout())
            .await
            .is_ok()
        && run_smoke(ctx, env).await.is_ok()
    {
        finish(ctx, env, &intent, lock, true)?;
        info!(environment = %name, "interrupted deploy finished: target images run, ready and smoke-tested");
        return Ok(Recovery::Finished);
    }
    // Roll back to the images that ran before, as a failed deploy would.
    if intent.previous_images.is_empty() {
        ctx.state.clear_intent(&name).map_err(state_err)?;
        return Ok(Recovery::Failed(
            "no previous images were journaled; left as is".into(),
        ));
    }
    let failure = StepFailure::new(
        interrupted_step(intent.step),
        format!(
            "the deploy of generation {} was interrupted at step {:?} and its target images do not run ready",
            intent.generation, intent.step
        ),
    );
    let outcome = roll_back(
        &mut run,
        &project,
        &intent.previous_images,
        &services,
        RollbackMode::On,
        failure,
    )
    .await;
    match outcome {
        Outcome::RolledBack { .. } => {
            if intent.operation == Operation::Deploy {
                crate::status::update(&ctx.state, lock, |status| {
                    status.failed_generation = Some(intent.generation.clone())
                })
                .map_err(state_err)?;
            }
            ctx.state.clear_intent(&name).map_err(state_err)?;
            info!(environment = %name, "interrupted deploy rolled back to the previous images");
            Ok(Recovery::RolledBack)
        }
        Outcome::RollbackFailed { rollback, .. } => Ok(Recovery::Failed(format!(
            "rollback during recovery failed: {rollback}"
        ))),
        other => Ok(Recovery::Failed(format!(
            "rollback during recovery ended {}",
            other.name()
        ))),
    }
}

/// Puts the intent's records in the outbox, marks the release applied (when it is the desired
/// generation's deploy) and clears the intent.
fn finish<C, B, S>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    intent: &Intent,
    lock: &EnvLock,
    applied: bool,
) -> Result<()> {
    let name = env.name();
    let state_err = |source| Error::State {
        environment: name.to_string(),
        source,
    };
    for record in &intent.records {
        ctx.state.outbox_put(name, record).map_err(state_err)?;
    }
    if applied {
        // Without it the planner would see the old release and deploy (and record) again.
        let now = ctx.clock.now();
        crate::status::update(&ctx.state, lock, |status| {
            super::super::record_applied(status, env, now)
        })
        .map_err(state_err)?;
    }
    ctx.state.clear_intent(name).map_err(state_err)
}

/// The step an interrupted deploy was in, from the last step its journal reached. An
/// interrupted pull counts as `up`: the restore runs (a no-op when nothing changed).
fn interrupted_step(reached: Step) -> StepName {
    match reached {
        Step::Started | Step::Pulled => StepName::Up,
        Step::UpDone => StepName::Readiness,
        _ => StepName::Smoke,
    }
}
