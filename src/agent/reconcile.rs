//! One reconcile of one environment by the agent: recover, drain the outbox, observe, plan, act,
//! and write status, metrics and history. The deploy itself is the pipeline's, not a copy.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tracing::{Instrument, info, info_span, warn};

use super::models::RenderFailure;
use super::pending::refresh_pending;
use super::{DesiredEnv, Shared, read};
use crate::docker::Compose;
use crate::manifest::{Environment, SyncMode};
use crate::metrics::ReconcileResult;
use crate::pipeline::{self, Brokers, Context, DeployOptions, Outcome, error_chain};
use crate::plan::{self, Action, Desired};
use crate::smoke::Smoke;
use crate::state::{EnvLock, EnvironmentStatus, HistoryEntry, Phase};
use crate::status::{Cause, TRANSIENT_RETRY, transition};

/// How long the agent waits for the environment lock (a manual `c2quay deploy` may hold it).
const AGENT_LOCK_WAIT: Duration = Duration::from_secs(30);

/// What one reconcile ended with.
#[derive(Debug, Clone)]
pub struct ReconcileOutcome {
    /// The phase written to status.
    pub phase: String,
    /// A short result (`noop`, `deployed`, `gate_blocked`, `error`, ...).
    pub result: String,
    /// When to reconcile again if nothing else triggers it.
    pub requeue_after: Option<Duration>,
    /// The status message written (the trigger endpoint answers with it).
    pub message: String,
    /// The generation reconciled (empty: no valid manifest).
    pub generation: String,
}

/// Reconciles the environment `name` once. Never panics on bad input; errors end in status.
/// `requested`: someone asked for this reconcile (the trigger endpoint), so it plans with
/// [`plan::plan_requested`] (a manual environment is applied, a gate backoff is not waited
/// out).
pub async fn reconcile<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Arc<Context<C, B, S>>,
    shared: &Arc<Shared>,
    name: &str,
    requested: bool,
) -> ReconcileOutcome {
    let entry = read(&shared.desired).entries.get(name).cloned();
    let generation = match &entry {
        Some(DesiredEnv::Valid(env)) => env.generation.clone(),
        _ => String::new(),
    };
    let span = info_span!("reconcile", environment = name, generation = %generation);
    let locked =
        pipeline::with_env_lock(&ctx.state, name, "agent", AGENT_LOCK_WAIT, async |lock| {
            Ok(reconcile_locked(ctx, shared, name, entry, &generation, lock, requested).await)
        });
    match locked.instrument(span).await {
        Ok(outcome) => outcome,
        Err(error) => {
            // Another holder (a manual `c2quay deploy`) keeps the lock: its status is its own to
            // write; look again soon.
            warn!(environment = name, error = %error_chain(&error), "environment lock not taken; reconciling later");
            ReconcileOutcome {
                phase: "Unknown".into(),
                result: "locked".into(),
                requeue_after: Some(TRANSIENT_RETRY),
                message: format!(
                    "the environment lock is held elsewhere: {}",
                    error_chain(&error)
                ),
                generation,
            }
        }
    }
}

/// [`reconcile`]'s body, run while holding the environment lock: every status write of one
/// reconcile happens under it.
async fn reconcile_locked<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Arc<Context<C, B, S>>,
    shared: &Arc<Shared>,
    name: &str,
    entry: Option<DesiredEnv>,
    generation: &str,
    lock: &EnvLock,
    requested: bool,
) -> ReconcileOutcome {
    {
        let started = Instant::now();
        let mut status = match ctx.state.read_status(name) {
            Ok(Some(status)) => status,
            Ok(None) => EnvironmentStatus::new(name),
            // A corrupt status is moved aside (never overwritten) and rebuilt from observation;
            // a generation the audit log records as failed stays failed.
            Err(error)
                if error.kind() == "corrupt" && set_aside(ctx, &error, "status").is_some() =>
            {
                ctx.state.rebuilt_status(name)
            }
            Err(error) => {
                // Never overwrite a status we cannot read with a fresh one (one written by a
                // newer c2quay included): report and retry.
                warn!(error = %error_chain(&error), "status file unreadable; leaving it as is");
                shared.statuses.set_failing(name, true);
                if let Some(metrics) = &ctx.metrics {
                    metrics.set_state_error(name, true);
                }
                return ReconcileOutcome {
                    phase: "Unknown".into(),
                    result: "state_error".into(),
                    requeue_after: Some(TRANSIENT_RETRY),
                    message: format!("status file unreadable: {}", error_chain(&error)),
                    generation: generation.to_string(),
                };
            }
        };
        // The commit of the desired checkout (read once per load of the desired set).
        let cell = read(&shared.desired).revision.clone();
        let revision = cell
            .get(ctx.metrics.as_deref())
            .await
            .map(|r| r.to_string());
        if entry.is_some() {
            status.observed_revision = revision.clone();
        }
        let (action, mut reason, result, requeue_after) = match entry {
            None => super::orphaned::orphaned(ctx, shared, name, &mut status, lock).await,
            Some(DesiredEnv::Invalid { message, .. }) => {
                let now = ctx.clock.now();
                transition(&mut status, Cause::Invalid { message: &message }, now);
                ("invalid".to_string(), message, "invalid".to_string(), None)
            }
            Some(DesiredEnv::Valid(env)) => {
                let revision = revision.as_deref();
                reconcile_valid(ctx, shared, &env, &mut status, lock, revision, requested).await
            }
        };
        if result == super::orphaned::FORGOTTEN {
            if let Some(metrics) = &ctx.metrics {
                metrics.forget_environment(name);
            }
            return ReconcileOutcome {
                phase: Phase::Orphaned.as_str().to_string(),
                result,
                requeue_after: None,
                message: status.message.clone(),
                generation: generation.to_string(),
            };
        }
        if let Some(note) = parked_intent(ctx, name, &status) {
            // Recovery needs the manifest (project files, smoke checks, broker): until a valid
            // one returns, the journal and the containers are left exactly as they are.
            status.message = format!("{}; {note}", status.message);
            reason = format!("{reason}; {note}");
        }
        info!(action = %action, reason = %reason, result = %result, "reconciled");
        let now = ctx.clock.now();
        let elapsed = started.elapsed();
        status.last_reconcile_at = Some(now);
        status.last_result = Some(result.clone());
        status.last_action = Some(action.clone());
        status.push_history(HistoryEntry {
            at: now,
            generation: (!generation.is_empty()).then(|| generation.to_string()),
            revision,
            action,
            reason,
            result: result.clone(),
            duration_ms: elapsed.as_millis() as u64,
        });
        let written = crate::status::replace(&ctx.state, lock, &mut status);
        if let Err(error) = &written {
            warn!(error = %error_chain(error), "cannot write status");
        }
        shared.statuses.set_failing(name, written.is_err());
        if let Some(metrics) = &ctx.metrics
            && status.phase == Phase::Orphaned
        {
            // No longer managed: its series go, so dashboards and alerts stop showing it.
            metrics.forget_environment(name);
        } else if let Some(metrics) = &ctx.metrics {
            let result = reconcile_result(&result);
            super::gauges::export(
                metrics,
                name,
                &status,
                result,
                elapsed,
                written.is_ok(),
                now,
            );
        }
        ReconcileOutcome {
            phase: status.phase.as_str().to_string(),
            result,
            requeue_after,
            message: status.message.clone(),
            generation: generation.to_string(),
        }
    }
}

type Step = (String, String, String, Option<Duration>);

/// The bounded metric label of a reconcile result.
fn reconcile_result(result: &str) -> ReconcileResult {
    match result {
        "noop" | "up_to_date" | "await_change" | "waiting_for_gate" | "waiting_for_host"
        | "drifted" | "suspended" | "orphaned" => ReconcileResult::Noop,
        "out_of_sync" => ReconcileResult::Skipped,
        "deployed" | "record_failed" => ReconcileResult::Deployed,
        "healed" => ReconcileResult::Healed,
        "gate_blocked" | "gate_error" => ReconcileResult::GateBlocked,
        "rolled_back" => ReconcileResult::RolledBack,
        "invalid" => ReconcileResult::Skipped,
        _ => ReconcileResult::Failed,
    }
}

/// Describes an open journal intent that cannot be recovered now (the manifest is invalid or
/// removed), or `None`.
fn parked_intent<C, B, S>(
    ctx: &Context<C, B, S>,
    name: &str,
    status: &EnvironmentStatus,
) -> Option<String> {
    if !matches!(status.phase, Phase::Invalid | Phase::Orphaned) {
        return None;
    }
    let intent = ctx.state.read_intent(name).ok().flatten()?;
    Some(format!(
        "an interrupted {:?} of generation {} (step {:?}, {} record(s) to make) is open in the \
         journal: its containers are left as they are, and it is recovered (finished or rolled \
         back) as soon as the manifest is valid again",
        intent.operation,
        intent.generation,
        intent.step,
        intent.records.len()
    ))
}

async fn reconcile_valid<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Arc<Context<C, B, S>>,
    shared: &Arc<Shared>,
    env: &Environment,
    status: &mut EnvironmentStatus,
    lock: &EnvLock,
    revision: Option<&str>,
    requested: bool,
) -> Step {
    let name = env.name();
    status.observed_generation = Some(env.generation.clone());
    // 0. One agent per Compose project on a host: a live foreign claim means standing back.
    if let Err(owner) = shared.claims.claim(&env.project) {
        let cause = Cause::ClaimedElsewhere {
            project: &env.project,
            owner: &owner,
        };
        let delay = transition(status, cause, ctx.clock.now());
        return (
            "standby".into(),
            status.message.clone(),
            "standby".into(),
            delay,
        );
    }
    // 1. An interrupted operation is recovered before anything else (resumed, finished or
    // rolled back; interrupted is not failed), and the history says which.
    let started = Instant::now();
    let mut recovered = None;
    let first = first_look(name);
    match ctx.state.read_intent(name) {
        Ok(Some(_)) => match pipeline::recover_said(ctx, env, lock, revision).await {
            Ok((recovery, said)) => {
                info!(?recovery, "recovered an interrupted operation");
                recovered = recovery.result().zip(said);
            }
            Err(error) => {
                return transient(status, "recover", &error_chain(&error), ctx.clock.now());
            }
        },
        // Nothing journaled, but this agent has not looked at the environment yet: a killed
        // predecessor's `docker compose` may have left the daemon stopping a container.
        Ok(None) if first => pipeline::settle(&ctx.compose, &pipeline::project_of(env)).await,
        Ok(None) => {}
        // A corrupt journal cannot be recovered from: move it aside and re-observe instead
        // (the planner compares what runs with what was applied, and redeploys or reports).
        Err(error) if error.kind() == "corrupt" && set_aside(ctx, &error, "intent").is_some() => {}
        Err(error) => return transient(status, "recover", &error_chain(&error), ctx.clock.now()),
    }
    // Reload: recovery may have written status.
    if let Ok(Some(fresh)) = ctx.state.read_status(name) {
        *status = fresh;
        status.observed_generation = Some(env.generation.clone());
        status.observed_revision = revision.map(str::to_string);
    }
    if let Some((result, said)) = recovered {
        let now = ctx.clock.now();
        status.push_history(HistoryEntry {
            at: now,
            generation: Some(env.generation.clone()),
            revision: revision.map(str::to_string),
            action: "recover".into(),
            reason: said,
            result: result.as_str().into(),
            duration_ms: started.elapsed().as_millis() as u64,
        });
    }
    // 2. Pending records are retried before anything new happens.
    let mut record_requeue = None;
    if env.manifest.spec.broker.is_some() {
        match pipeline::drain_outbox(ctx, env).await {
            Ok(items) => {
                for item in &items {
                    info!(pacticipant = %item.candidate.pacticipant, version = %item.candidate.version, status = ?item.status, "outbox record attempt");
                }
            }
            Err(error) => warn!(error = %error_chain(&error), "cannot read the outbox"),
        }
        record_requeue = refresh_pending(ctx, env, status);
    }
    if let Some(suspension) = status.suspended.take_if(|s| s.generation != env.generation) {
        // A local suspension holds one generation: a new commit ends it.
        let said = format!(
            "{}; ended by generation {}",
            suspension.describe(),
            env.generation
        );
        info!("{said}");
        if let Err(error) = ctx.state.audit(
            env.name(),
            Some(&env.generation),
            "resume",
            "manifest_changed",
            &said,
        ) {
            warn!(error = %error_chain(&error), "cannot write the audit log");
        }
    }
    if env.manifest.spec.suspend || status.suspended.is_some() {
        transition(status, Cause::Suspended, ctx.clock.now());
        return (
            "suspended".into(),
            status.message.clone(),
            "suspended".into(),
            None,
        );
    }
    // 3. Observe and plan.
    let project = pipeline::project_of(env);
    let listed = Instant::now();
    let observed = ctx.compose.ps(&project).await;
    shared.docker_answered(ctx.metrics.as_deref(), observed.is_ok(), listed.elapsed());
    let observed = match observed {
        Ok(containers) => {
            crate::status::docker_answered(status, ctx.clock.now());
            containers
        }
        Err(error) => {
            let message = error_chain(&error);
            let cause = Cause::DockerUnreachable { message: &message };
            let delay = transition(status, cause, ctx.clock.now());
            return (
                "observe".into(),
                status.message.clone(),
                "docker_unreachable".into(),
                delay,
            );
        }
    };
    // The rendered Compose model is desired state too: rendered again only when an input
    // file changed. Compose files that do not render change nothing on the host.
    let model = match shared.models.get(&ctx.compose, name, &project).await {
        Ok(model) => model,
        Err(RenderFailure::Invalid(message)) => {
            let message = format!(
                "the Compose files of {name} do not render ({}), running services untouched: {message}",
                describe_files(&project)
            );
            transition(
                status,
                Cause::Invalid { message: &message },
                ctx.clock.now(),
            );
            return ("invalid".into(), message, "invalid".into(), None);
        }
        Err(RenderFailure::Transient(message)) => {
            return transient(status, "render", &message, ctx.clock.now());
        }
    };
    let applied = pipeline::applied_state_of(status);
    let now = ctx.clock.now();
    let desired = Desired::Valid(env);
    let plan = if requested {
        plan::plan_requested(desired, Some(&model), &applied, &observed, now)
    } else {
        plan::plan(desired, Some(&model), &applied, &observed, now)
    };
    if plan.action == Action::Noop && status.configs.is_empty() {
        // State from before config tracking: adopt what runs as the applied configuration.
        crate::status::adopt_configs(status, &model, &observed);
    }
    if plan.action == Action::Noop && status.applied_generation.as_ref() == Some(&env.generation) {
        // The applied generation is still the desired one: the checkout's commit holds it too.
        status.applied_revision = revision.map(str::to_string);
    }
    info!(action = plan.action.name(), reason = %plan.reason, "plan");
    let action = plan.action.name().to_string();
    let options = DeployOptions {
        holder: "agent",
        lock_wait: AGENT_LOCK_WAIT,
        model: Some(model.clone()),
        revision: revision.map(str::to_string),
        ..DeployOptions::default()
    };
    let (result, requeue) = match &plan.action {
        Action::Deploy { .. } => {
            transition(
                status,
                Cause::Progressing {
                    reason: &plan.reason,
                },
                now,
            );
            if let Err(error) = crate::status::replace(&ctx.state, lock, status) {
                warn!(error = %error_chain(&error), "cannot write status");
            }
            match pipeline::deploy_locked(ctx, env, &options, lock).await {
                Ok(report) => {
                    // The pipeline wrote the applied release; take it over.
                    if let Ok(Some(fresh)) = ctx.state.read_status(env.name()) {
                        status.applied_generation = fresh.applied_generation;
                        status.applied_revision = fresh.applied_revision;
                        status.releases = fresh.releases;
                        status.configs = fresh.configs;
                    }
                    let delay = transition(
                        status,
                        Cause::DeployEnded {
                            env,
                            report: &report,
                        },
                        now,
                    );
                    (report.outcome.name().to_string(), delay)
                }
                Err(error) => {
                    warn!(error = %error_chain(&error), kind = error.kind(), "deploy did not start");
                    let delay =
                        transition(status, Cause::DeployNotStarted { env, error: &error }, now);
                    let result = match error {
                        pipeline::Error::Gate { .. } => "gate_error",
                        _ => "error",
                    };
                    (result.to_string(), delay)
                }
            }
        }
        Action::Heal { services } => {
            let heal = pipeline::heal(ctx, env, services, &options, lock).await;
            status.heals.push(now);
            status.heals.retain(|at| {
                now.duration_since(*at)
                    .map(|age| age < plan::HEAL_WINDOW)
                    .unwrap_or(true)
            });
            if let Some(metrics) = &ctx.metrics {
                metrics.observe_heal(name);
            }
            match heal {
                Ok(report) => {
                    let delay = transition(
                        status,
                        Cause::HealEnded {
                            services,
                            report: &report,
                        },
                        now,
                    );
                    let result = if report.outcome == Outcome::Deployed {
                        "healed"
                    } else {
                        "heal_failed"
                    };
                    // A manual environment may still hold a change: plan again at once.
                    let held = (env.manifest.spec.policy.sync == SyncMode::Manual)
                        .then_some(Duration::from_secs(1));
                    (result.to_string(), delay.or(held).or(record_requeue))
                }
                Err(error) => return transient(status, "heal", &error_chain(&error), now),
            }
        }
        Action::OutOfSync { gate, .. } => {
            let delay = super::out_of_sync::check(ctx, env, status, &plan.reason, *gate, now).await;
            ("out_of_sync".to_string(), delay)
        }
        action => {
            let delay = transition(
                status,
                Cause::Planned {
                    action,
                    reason: &plan.reason,
                },
                now,
            );
            let result = match action {
                Action::Noop => "noop",
                Action::ReportDrift { .. } => "drifted",
                Action::HealCapReached { .. } => "degraded",
                Action::WaitForGate { .. } => "waiting_for_gate",
                Action::WaitForHost { .. } => "waiting_for_host",
                Action::AwaitChange => "await_change",
                Action::Suspended => "suspended",
                _ => "invalid",
            };
            let delay = match action {
                Action::Noop => record_requeue,
                _ => delay,
            };
            (result.to_string(), delay)
        }
    };
    let requeue = match (requeue, refresh_pending(ctx, env, status)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    (action, plan.reason, result, requeue)
}

/// Whether this process reconciles `name` for the first time (and notes that it has now).
fn first_look(name: &str) -> bool {
    static SEEN: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut seen = SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    seen.insert(name.to_string())
}

/// `compose.yaml, compose.prod.yaml` in `/srv/shop`.
fn describe_files(project: &crate::docker::Project) -> String {
    let names: Vec<String> = project
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    names.join(", ")
}

fn transient(status: &mut EnvironmentStatus, step: &str, message: &str, now: SystemTime) -> Step {
    let delay = transition(status, Cause::TransientError { step, message }, now);
    (
        step.to_string(),
        status.message.clone(),
        "error".into(),
        delay,
    )
}

/// Moves the corrupt state file of `error` aside (`<file>.corrupt-<ts>`) with a loud log;
/// returns where it went, or `None` (logged) when it could not be moved.
fn set_aside<C, B, S>(
    ctx: &Context<C, B, S>,
    error: &crate::state::Error,
    what: &str,
) -> Option<std::path::PathBuf> {
    let path = error.path()?;
    match ctx.state.quarantine(path) {
        Ok(moved) => {
            warn!(file = %path.display(), moved_to = %moved.display(), error = %error_chain(error), "corrupt {what} file moved aside; rebuilding from observation");
            Some(moved)
        }
        Err(move_error) => {
            warn!(file = %path.display(), error = %error_chain(&move_error), "corrupt {what} file could not be moved aside");
            None
        }
    }
}
