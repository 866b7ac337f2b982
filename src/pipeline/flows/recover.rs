//! The recover flow: an interrupted operation, from the journal, after a restart.
//!
//! Interrupted is not failed. After a crash, `kill -9` or a stop of the agent at any point of a
//! deploy, the journal holds an intent. Recovery first waits for a settled host (the daemon may
//! still be stopping a container for a killed `docker compose`), then:
//! - a deploy of the desired generation that had not passed smoke is **resumed**: `up` with the
//!   target pins again (idempotent; Compose waits for an in-flight stop itself), readiness,
//!   smoke, verify and the records through the outbox. Only a failure of the release itself
//!   rolls back, per `policy.rollback`, and marks the generation failed;
//! - a deploy past smoke is **finished** (records, applied release);
//! - an interrupted rollback is finished (the previous images are restored);
//! - an intent resumed [`MAX_RESUMES`] times already (the agent keeps dying on it), or one of a
//!   generation that is no longer desired, is rolled back and the reason said.
//!
//! Each recovery emits [`PipelineEvent::Recovered`] (audit line, `c2quay_recoveries_total`).
//! Recovering twice is harmless: the intent is cleared only after the host is consistent, and
//! outbox records are keyed by a deterministic id.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::super::run::Run;
use super::super::{Brokers, Context, Error, Outcome, Result, StepFailure, project_of};
use super::apply_release;
use super::rollback::{pins_that_ran, roll_back};
use crate::docker::{Compose, Container, Project};
use crate::error_chain;
use crate::events::{PipelineEvent, RecoveryResult, StepName};
use crate::manifest::{Environment, RollbackMode};
use crate::smoke::Smoke;
use crate::state::{EnvLock, Intent, Operation, Step};

/// How many times one intent is resumed before recovery gives up and rolls back: an agent that
/// is killed by the deploy itself (OOM) must not loop forever.
pub const MAX_RESUMES: u32 = 3;

/// How long the project's containers must stay unchanged before recovery judges them.
const SETTLE_QUIET: Duration = Duration::from_secs(1);

/// The longest wait for a settled host: Compose's default stop grace period (10 s) and a margin.
const SETTLE_BOUND: Duration = Duration::from_secs(15);

/// How often the containers are observed while settling.
const SETTLE_POLL: Duration = Duration::from_millis(200);

/// What recovery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// No open intent.
    Nothing,
    /// The interrupted deploy was resumed and its release passed (records are in the outbox).
    Resumed,
    /// The interrupted deploy was past smoke and was finished (its records are in the outbox).
    Finished,
    /// The interrupted operation was rolled back to the previous images (a failed release, an
    /// interrupted rollback, the resume bound, or a generation no longer desired).
    RolledBack,
    /// Recovery could not make the host consistent; the message says why.
    Failed(String),
}

impl Recovery {
    /// The metric label of this recovery (`None` when there was nothing to recover).
    pub fn result(&self) -> Option<RecoveryResult> {
        Some(match self {
            Recovery::Nothing => return None,
            Recovery::Resumed => RecoveryResult::Resumed,
            Recovery::Finished => RecoveryResult::Finished,
            Recovery::RolledBack => RecoveryResult::RolledBack,
            Recovery::Failed(_) => RecoveryResult::Failed,
        })
    }
}

/// Recovers an environment with an open intent, before anything else is done with it. The
/// caller holds the environment lock.
pub async fn recover<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    lock: &EnvLock,
) -> Result<Recovery> {
    Ok(recover_said(ctx, env, lock, None).await?.0)
}

/// [`recover`], with the sentence that names what it did ("resumed an interrupted deploy of
/// generation G at step S after a restart"; `None` when there was nothing to recover), for the
/// status history. `revision` is the desired checkout's commit (the applied revision of a
/// deploy that recovery resumes or finishes).
pub async fn recover_said<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    lock: &EnvLock,
    revision: Option<&str>,
) -> Result<(Recovery, Option<String>)> {
    let name = env.name().to_string();
    let state_err = |source| Error::State {
        environment: name.clone(),
        source,
    };
    let Some(mut intent) = ctx.state.read_intent(&name).map_err(state_err)? else {
        return Ok((Recovery::Nothing, None));
    };
    info!(environment = %name, generation = %intent.generation, step = ?intent.step, resumes = intent.resumes, "recovering an interrupted {:?}", intent.operation);
    let project = project_of(env);
    settle(&ctx.compose, &project).await;
    if let Err(error) = ctx.compose.remove_leftovers(&project).await {
        warn!(environment = %name, error = %error_chain(&error), "cannot remove leftovers of an interrupted recreate");
    }
    let mut run = Run::new(ctx, env);
    run.scope.revision = revision.map(str::to_string);
    run.snapshot(&project).await?;
    // The deploy journaled is the one desired when neither the manifest nor the rendered
    // Compose model changed since (a journal without a model hash predates config tracking).
    let same_model = intent
        .model_hash
        .as_ref()
        .is_none_or(|hash| *hash == crate::plan::model_hash(&run.model));
    let is_this_deploy =
        intent.operation == Operation::Deploy && intent.generation == env.generation && same_model;
    let at = interrupted_step(intent.step);
    if intent.operation == Operation::Deploy && intent.step >= Step::SmokePassed {
        // Smoke passed: only the records and the applied release may be missing.
        finish(&run, &intent, lock, is_this_deploy)?;
        let message = format!(
            "finished an interrupted deploy of generation {} at step {at} after a restart",
            intent.generation
        );
        return Ok(said(&run, Recovery::Finished, &intent, at, message));
    }
    let services = intent.changed_services.clone();
    let why_not_resumed = if intent.operation == Operation::Rollback {
        Some(format!(
            "finished an interrupted rollback of generation {} after a restart",
            intent.generation
        ))
    } else if !is_this_deploy && !same_model {
        Some(format!(
            "rolled back an interrupted {:?} of generation {}: the rendered Compose model \
             changed since",
            intent.operation, intent.generation
        ))
    } else if !is_this_deploy {
        Some(format!(
            "rolled back an interrupted {:?} of generation {}: generation {} is desired now",
            intent.operation, intent.generation, env.generation
        ))
    } else if intent.resumes >= MAX_RESUMES {
        Some(format!(
            "rolled back the deploy of generation {}: it was interrupted {} times (the agent \
             keeps dying during it, e.g. killed for memory); not resuming again",
            intent.generation,
            intent.resumes + 1
        ))
    } else {
        None
    };
    let (failure, mode, message) = match why_not_resumed {
        None => {
            intent.resumes += 1;
            ctx.state.write_intent(&name, &intent).map_err(state_err)?;
            info!(environment = %name, generation = %intent.generation, step = %at, resume = intent.resumes, "resuming an interrupted deploy");
            match resume(&mut run, &project, &mut intent).await {
                Ok(()) => {
                    finish(&run, &intent, lock, true)?;
                    let message = format!(
                        "resumed an interrupted deploy of generation {} at step {at} after a \
                         restart (resume {} of at most {MAX_RESUMES})",
                        intent.generation, intent.resumes
                    );
                    return Ok(said(&run, Recovery::Resumed, &intent, at, message));
                }
                Err(failure) => {
                    let message = format!(
                        "resumed an interrupted deploy of generation {} at step {at} after a \
                         restart; the release failed at {}: {}",
                        intent.generation, failure.step, failure.error
                    );
                    (failure, env.manifest.spec.policy.rollback, message)
                }
            }
        }
        Some(message) => {
            let failure = StepFailure::new(
                if intent.operation == Operation::Rollback {
                    StepName::Rollback
                } else {
                    at
                },
                message.clone(),
            );
            (failure, RollbackMode::On, message)
        }
    };
    // Roll back to the images that ran before, as a failed deploy would.
    if intent.previous_images.is_empty() {
        ctx.state.clear_intent(&name).map_err(state_err)?;
        let message = format!("{message}; no previous images were journaled: left as is");
        return Ok(said(
            &run,
            Recovery::Failed(message.clone()),
            &intent,
            at,
            message,
        ));
    }
    let previous = pins_that_ran(
        &ctx.compose,
        &intent.previous_images,
        &intent.previous_image_ids,
    )
    .await;
    let outcome = roll_back(
        &mut run,
        &project,
        &previous,
        &services,
        mode,
        failure,
        intent.restore_model.as_deref(),
    )
    .await;
    let mark_failed = || {
        crate::status::update(&ctx.state, lock, |status| {
            status.failed_generation = Some(intent.generation.clone());
            status.failed_model = intent.model_hash.clone();
        })
        .map_err(state_err)
    };
    let recovery = match outcome {
        Outcome::RolledBack { .. } => {
            mark_failed()?;
            ctx.state.clear_intent(&name).map_err(state_err)?;
            Recovery::RolledBack
        }
        // The policy keeps the failed release in place: it is failed, not interrupted.
        Outcome::RollbackFailed { rollback, .. } if mode != RollbackMode::On => {
            mark_failed()?;
            ctx.state.clear_intent(&name).map_err(state_err)?;
            Recovery::Failed(format!("not rolled back: {rollback}"))
        }
        Outcome::RollbackFailed { rollback, .. } => {
            Recovery::Failed(format!("rollback during recovery failed: {rollback}"))
        }
        other => Recovery::Failed(format!("rollback during recovery ended {}", other.name())),
    };
    let message = match &recovery {
        Recovery::Failed(why) => format!("{message}; {why}"),
        _ => message,
    };
    Ok(said(&run, recovery, &intent, at, message))
}

/// Logs and emits `recovery` (audit line, metric) and returns it.
fn said<C, B, S>(
    run: &Run<'_, C, B, S>,
    recovery: Recovery,
    intent: &Intent,
    at: StepName,
    message: String,
) -> (Recovery, Option<String>) {
    info!(environment = run.env.name(), ?recovery, "{message}");
    if let Some(result) = recovery.result() {
        run.emit(PipelineEvent::Recovered {
            result,
            generation: intent.generation.clone(),
            step: at,
            message: message.clone(),
        });
    }
    (recovery, Some(message))
}

/// The interrupted deploy again from where its journal got ([`apply_release`]), then
/// `SmokePassed` journaled. `Err` is a failure of the release.
async fn resume<C: Compose, B: Brokers, S: Smoke>(
    run: &mut Run<'_, C, B, S>,
    project: &Project,
    intent: &mut Intent,
) -> std::result::Result<(), StepFailure> {
    let pins = super::super::wave_pins(run.env, &intent.held);
    let services = intent.changed_services.clone();
    apply_release(run, project, &pins, &services, false, intent).await?;
    intent.step = Step::SmokePassed;
    run.write_intent(intent);
    Ok(())
}

/// Waits until the project's containers stop changing (no container appears, goes or changes
/// state or health for [`SETTLE_QUIET`]), at most [`SETTLE_BOUND`]: a `docker compose` killed
/// with the agent may have left the daemon stopping or starting containers. An observation
/// error ends the wait (the steps after it say what is wrong).
///
/// The agent also settles each environment once after it starts, before its first plan: a
/// container that dies because of c2quay's own interrupted recreate is not drift.
pub async fn settle<C: Compose>(compose: &C, project: &Project) {
    let started = Instant::now();
    let Ok(first) = compose.ps(project).await else {
        return;
    };
    if first.is_empty() {
        return;
    }
    let mut last = fingerprint(&first);
    let mut quiet_since = Instant::now();
    while started.elapsed() < SETTLE_BOUND && quiet_since.elapsed() < SETTLE_QUIET {
        tokio::time::sleep(SETTLE_POLL).await;
        let Ok(now) = compose.ps(project).await else {
            return;
        };
        let now = fingerprint(&now);
        if now != last {
            last = now;
            quiet_since = Instant::now();
        }
    }
    if quiet_since.elapsed() < SETTLE_QUIET {
        warn!(project = %project.name, "containers still changing after {SETTLE_BOUND:?}; recovering anyway");
    }
}

/// What settling compares: each container's id, state and health, in a stable order.
fn fingerprint(containers: &[Container]) -> Vec<(String, &'static str, &'static str)> {
    let mut seen: Vec<_> = containers
        .iter()
        .map(|c| (c.id.clone(), c.state.as_str(), c.health.as_str()))
        .collect();
    seen.sort();
    seen
}

/// Puts the intent's records in the outbox, marks the release applied (when it is the desired
/// generation's deploy) and clears the intent.
fn finish<C, B, S>(
    run: &Run<'_, C, B, S>,
    intent: &Intent,
    lock: &EnvLock,
    applied: bool,
) -> Result<()> {
    let (ctx, name) = (run.ctx, run.env.name());
    let state_err = |source| Error::State {
        environment: name.to_string(),
        source,
    };
    for record in &intent.records {
        ctx.state.outbox_put(name, record).map_err(state_err)?;
    }
    if applied {
        // Without it the planner would see the old release and deploy (and record) again.
        let held: Vec<String> = intent.held.keys().cloned().collect();
        super::commit_applied(run, lock, &held)?;
    }
    ctx.state.clear_intent(name).map_err(state_err)
}

/// The step an interrupted deploy was in, from the last step its journal reached.
fn interrupted_step(reached: Step) -> StepName {
    match reached {
        Step::Started => StepName::Pull,
        Step::Pulled => StepName::Up,
        Step::UpDone => StepName::Readiness,
        Step::Ready => StepName::Smoke,
        Step::SmokePassed | Step::Recorded => StepName::Record,
    }
}
