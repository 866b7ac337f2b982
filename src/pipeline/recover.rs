//! Crash recovery from the journal, and the record outbox drain.
//!
//! After a crash or `kill -9` at any point of a deploy, the journal holds an intent. Recovery
//! inspects the containers: if the target images run and are ready, it finishes (smoke, record
//! through the outbox); otherwise it rolls back to the previous images. Recovering twice is
//! harmless: the intent is cleared only after the host is consistent, and outbox records are
//! keyed by a deterministic id.

use std::time::Duration;

use tracing::{info, warn};

use super::outcome::RecordItem;
use super::run::{error_chain, record_all, update_status};
use super::{Brokers, Context, Error, Result, project_of};
use crate::compose::{Compose, UpOptions};
use crate::manifest::Environment;
use crate::smoke::Smoke;
use crate::state::{Operation, Step};

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

/// Recovers an environment with an open intent, before anything else is done with it.
pub async fn recover<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    lock_wait: Duration,
) -> Result<Recovery> {
    let name = env.name().to_string();
    let state_err = |source| Error::State {
        environment: name.clone(),
        source,
    };
    let _lock = ctx
        .state
        .lock_environment_async(&name, "agent-recovery", lock_wait)
        .await
        .map_err(state_err)?;
    let Some(intent) = ctx.state.read_intent(&name).map_err(state_err)? else {
        return Ok(Recovery::Nothing);
    };
    info!(environment = %name, generation = %intent.generation, step = ?intent.step, "recovering an interrupted {:?}", intent.operation);
    let project = project_of(env);
    if let Err(error) = ctx.compose.remove_leftovers(&project).await {
        warn!(environment = %name, error = %error_chain(&error), "cannot remove leftovers of an interrupted recreate");
    }
    if intent.step >= Step::SmokePassed {
        // Smoke passed: only the records and the applied release may be missing.
        for record in &intent.records {
            ctx.state.outbox_put(&name, record).map_err(state_err)?;
        }
        if intent.operation == Operation::Deploy && intent.generation == env.generation {
            // Without it the planner would see the old release and deploy (and record) again.
            let now = ctx.clock.now();
            update_status(&ctx.state, &name, |status| {
                super::status::record_applied(status, env, now)
            })?;
        }
        ctx.state.clear_intent(&name).map_err(state_err)?;
        return Ok(Recovery::Finished);
    }
    let services = intent.changed_services.clone();
    let observe = |source| Error::Observe {
        environment: name.clone(),
        step: "snapshot",
        source,
    };
    let (model, containers) = tokio::join!(ctx.compose.config(&project), ctx.compose.ps(&project));
    let (model, containers) = (model.map_err(observe)?, containers.map_err(observe)?);
    let targets_run = intent.operation == Operation::Deploy
        && intent.generation == env.generation
        && intent.target_images.iter().all(|(service, image)| {
            containers
                .iter()
                .any(|c| &c.service == service && &c.image == image && c.state == "running")
        });
    if targets_run
        && ctx
            .compose
            .wait_ready(&project, &model, &services, env.wait_timeout())
            .await
            .is_ok()
        && super::run::run_smoke(ctx, env).await.is_ok()
    {
        for record in &intent.records {
            ctx.state.outbox_put(&name, record).map_err(state_err)?;
        }
        let now = ctx.clock.now();
        update_status(&ctx.state, &name, |status| {
            super::status::record_applied(status, env, now)
        })?;
        ctx.state.clear_intent(&name).map_err(state_err)?;
        info!(environment = %name, "interrupted deploy finished: target images run, ready and smoke-tested");
        return Ok(Recovery::Finished);
    }
    // Roll back to the images that ran before.
    let mut pins = super::run::desired_pins(env);
    pins.extend(intent.previous_images.clone());
    let to_restore: Vec<String> = intent.previous_images.keys().cloned().collect();
    if to_restore.is_empty() {
        ctx.state.clear_intent(&name).map_err(state_err)?;
        return Ok(Recovery::Failed(
            "no previous images were journaled; left as is".into(),
        ));
    }
    let restored = async {
        ctx.compose
            .up(&project, &model, &pins, &to_restore, &UpOptions::default())
            .await?;
        ctx.compose
            .wait_ready(
                &project,
                &model,
                &to_restore,
                super::rollback::rollback_timeout(env),
            )
            .await
            .map(|_| ())
    }
    .await;
    match restored {
        Ok(()) => {
            if intent.operation == Operation::Deploy {
                update_status(&ctx.state, &name, |status| {
                    status.failed_generation = Some(intent.generation.clone())
                })?;
            }
            ctx.state.clear_intent(&name).map_err(state_err)?;
            info!(environment = %name, "interrupted deploy rolled back to the previous images");
            Ok(Recovery::RolledBack)
        }
        Err(error) => Ok(Recovery::Failed(format!(
            "rollback during recovery failed: {}",
            error_chain(&error)
        ))),
    }
}

/// Tries the pending records of the environment, oldest first, once the oldest one's retry
/// time has come; stops at the first failure.
pub async fn drain_outbox<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Context<C, B, S>,
    env: &Environment,
) -> Result<Vec<RecordItem>> {
    let name = env.name();
    let (pending, problems) = ctx.state.outbox_list(name).map_err(|source| Error::State {
        environment: name.to_string(),
        source,
    })?;
    for problem in problems {
        warn!(environment = name, error = %error_chain(&problem), "unreadable outbox entry kept for inspection");
    }
    // Oldest first, and only once the oldest is due: a younger record never overtakes an older
    // one (`record_all` stops sending at the first failure).
    match pending.first() {
        Some(oldest) if oldest.is_due(ctx.clock.now()) => Ok(record_all(ctx, env, &pending).await),
        _ => Ok(Vec::new()),
    }
}

/// Delay before the next record attempt: 2s, 4s, 8s ... capped at 5 minutes.
pub fn record_retry_delay(attempts: u32) -> Duration {
    let seconds = 2u64.saturating_pow(attempts.min(16)).min(300);
    Duration::from_secs(seconds)
}
