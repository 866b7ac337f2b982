//! The one owner of `status.json`: [`update`] is its only writer and needs the environment's
//! [`EnvLock`], so no two writers interleave (a CLI deploy, `retry` and the agent included).
//! Also the glue between the status file and the planner: what was applied
//! ([`applied_state_of`]), recording a new release ([`record_applied`]), and the phase and
//! conditions a deploy outcome leads to ([`status_after`], shared by the CLI and the agent).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

mod transition;

pub use transition::{Cause, GateCheck, TRANSIENT_RETRY, transition};

use crate::docker::{Container, RenderedModel};
use crate::events::StepName;
use crate::manifest::Environment;
use crate::pipeline::{DeployReport, Outcome, StepFailure};
use crate::plan::{self, AppliedConfig, AppliedRelease, AppliedState, GateBlock};
use crate::state::{
    self, ConditionStatus, ConditionType, EnvLock, EnvironmentStatus, Phase, Release, StateDir,
};

/// Reads, changes and writes the status of the locked environment (a fresh one when there is
/// none). The only writer of `status.json`. A corrupt status is an error, never silently
/// replaced: it holds history and backoff.
pub fn update(
    state: &StateDir,
    lock: &EnvLock,
    change: impl FnOnce(&mut EnvironmentStatus),
) -> Result<(), state::Error> {
    let environment = lock.environment();
    let mut status = state
        .read_status(environment)?
        .unwrap_or_else(|| EnvironmentStatus::new(environment));
    change(&mut status);
    refresh_conditions(&mut status, SystemTime::now());
    state.write_status(environment, &status)
}

/// Writes `status` as the status of the locked environment, replacing what is there (the agent,
/// which read it under the same lock and changed it).
pub fn replace(
    state: &StateDir,
    lock: &EnvLock,
    status: &mut EnvironmentStatus,
) -> Result<(), state::Error> {
    refresh_conditions(status, SystemTime::now());
    state.write_status(lock.environment(), status)
}

/// Makes the conditions agree with the phase, before every write: `Ready` mirrors the phase
/// (its reason is the phase when it is not `Ready`), and a `Ready` environment passed its gate,
/// runs as applied and passed its smoke checks, whatever an earlier failure left in those
/// conditions (a revert to the release that runs is `Ready` without a deploy). Pure.
pub fn refresh_conditions(status: &mut EnvironmentStatus, now: SystemTime) {
    let message = status.message.clone();
    if status.phase != Phase::Ready {
        let reason = status.phase.as_str();
        status.set_condition(
            ConditionType::Ready,
            ConditionStatus::False,
            reason,
            &message,
            now,
        );
        return;
    }
    status.set_condition(
        ConditionType::Ready,
        ConditionStatus::True,
        "Ready",
        &message,
        now,
    );
    let runs = match &status.applied_generation {
        Some(generation) => format!("generation {generation} runs as applied"),
        None => "runs as applied".to_string(),
    };
    for type_ in [
        ConditionType::Gated,
        ConditionType::Applied,
        ConditionType::SmokePassed,
    ] {
        if status
            .condition(type_)
            .is_some_and(|c| c.status != ConditionStatus::True)
        {
            status.set_condition(type_, ConditionStatus::True, "Ready", &runs, now);
        }
    }
}

/// Notes whether the Docker engine answered the environment's observation: the
/// `DockerReachable` condition. An unanswered observation is [`Cause::DockerUnreachable`].
pub fn docker_answered(status: &mut EnvironmentStatus, now: SystemTime) {
    status.set_condition(
        ConditionType::DockerReachable,
        ConditionStatus::True,
        "Answered",
        "the Docker engine answered",
        now,
    );
}

/// The planner's view of what was applied, from an environment's status.
pub fn applied_state_of(status: &EnvironmentStatus) -> AppliedState {
    AppliedState {
        generation: status.applied_generation.clone(),
        failed_generation: status.failed_generation.clone(),
        failed_model: status.failed_model.clone(),
        releases: status
            .releases
            .iter()
            .map(|(service, release)| {
                (
                    service.clone(),
                    AppliedRelease {
                        version: release.version.clone(),
                        image: release.image.clone(),
                        pacticipant: release.pacticipant.clone(),
                        image_id: release.image_id.clone(),
                    },
                )
            })
            .collect(),
        host_blocked: status.host_block.as_ref().map(|block| plan::HostBlocked {
            generation: block.generation.clone(),
            model: block.model_hash.clone(),
            cause: block.cause,
            next_attempt_at: block.next_attempt_at,
        }),
        gate_blocked: match (&status.gate_blocked_generation, status.next_gate_check_at) {
            (Some(generation), Some(next_check_at)) => Some(GateBlock {
                generation: generation.clone(),
                next_check_at,
            }),
            _ => None,
        },
        heals: status.heals.clone(),
        configs: status.configs.clone(),
        suspended_generation: status.suspended.as_ref().map(|s| s.generation.clone()),
    }
}

/// Marks the desired release of `env` as applied: generation, per-service version and image,
/// and the configuration of every service of the rendered `model` with the Compose config hash
/// its container shows in `observed` (the observation right after the apply). Forgets services
/// that left the manifest and the model. Clears a failed generation and a blocked gate. The
/// services the gate `held` (a per-service wave) keep their applied release and configuration,
/// and the generation counts as applied only when none was held.
pub fn record_applied(
    status: &mut EnvironmentStatus,
    env: &Environment,
    model: &RenderedModel,
    observed: &[Container],
    held: &[String],
) {
    if held.is_empty() {
        status.applied_generation = Some(env.generation.clone());
    }
    status.failed_generation = None;
    status.failed_model = None;
    status.gate_checks = 0;
    status.next_gate_check_at = None;
    status.gate_blocked_generation = None;
    for (service, spec) in &env.manifest.spec.services {
        if held.contains(service) {
            continue;
        }
        let image = match env.pinned_image(service) {
            Some(image) if !spec.gate_only => image,
            _ => match &spec.version {
                // A gate-only service runs elsewhere: keep its version, no image.
                Some(_) => String::new(),
                None => continue,
            },
        };
        let image_id = running_image_id(observed, service);
        status.releases.insert(
            service.clone(),
            Release {
                version: env.version(service).map(str::to_string),
                image,
                image_id,
                pacticipant: Some(env.pacticipant(service)),
            },
        );
    }
    status.releases.retain(|service, _| {
        env.manifest.spec.services.contains_key(service) || model.contains_key(service)
    });
    let kept: Vec<(String, AppliedConfig)> = (held.iter())
        .filter_map(|s| status.configs.get(s).map(|c| (s.clone(), c.clone())))
        .collect();
    adopt_configs(status, model, observed);
    if !model.is_empty() {
        for service in held {
            status.configs.remove(service);
        }
        status.configs.extend(kept);
    }
}

/// The image id the running container of `service` runs, in `observed`.
fn running_image_id(observed: &[Container], service: &str) -> Option<String> {
    (observed.iter())
        .find(|c| c.service == service && c.state.is_running() && !c.image_id.is_empty())
        .map(|c| c.image_id.clone())
}

/// One release `c2quay rollback` restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredRelease {
    /// The image reference restored.
    pub image: String,
    /// Its version, when known (the snapshot's, or read back from the image template).
    pub version: Option<String>,
}

/// What a `c2quay rollback` did, for [`record_manual_rollback`].
pub struct RollbackByHand<'a> {
    /// The environment.
    pub env: &'a Environment,
    /// The rendered model the restored containers run with.
    pub model: &'a RenderedModel,
    /// The containers after the restore.
    pub observed: &'a [Container],
    /// Service -> the release restored.
    pub restored: &'a BTreeMap<String, RestoredRelease>,
    /// [`plan::model_hash`] of `model`: the failed release is the generation with this model.
    pub model_hash: &'a str,
    /// Why the smoke checks failed after the restore, if they did.
    pub smoke: Option<&'a str>,
}

/// Holds an environment after `c2quay rollback`: the restored releases become the applied ones,
/// the manifest's generation (with this model) is marked failed so the agent does not deploy
/// it again until a new commit or `c2quay retry`, and the phase says so.
pub fn record_manual_rollback(
    status: &mut EnvironmentStatus,
    rollback: &RollbackByHand<'_>,
    now: SystemTime,
) {
    let env = rollback.env;
    for (service, restored) in rollback.restored {
        let image_id = running_image_id(rollback.observed, service);
        status.releases.insert(
            service.clone(),
            Release {
                version: restored.version.clone(),
                image: restored.image.clone(),
                image_id,
                pacticipant: Some(env.pacticipant(service)),
            },
        );
    }
    adopt_configs(status, rollback.model, rollback.observed);
    status.failed_generation = Some(env.generation.clone());
    status.failed_model = Some(rollback.model_hash.to_string());
    clear_gate_block(status);
    let restored: Vec<String> = (rollback.restored.iter())
        .map(|(service, r)| match &r.version {
            Some(version) => format!("{service} {version}"),
            None => format!("{service} {}", r.image),
        })
        .collect();
    transition(
        status,
        Cause::RolledBackByHand {
            env,
            restored: &restored.join(", "),
            smoke_failed: rollback.smoke,
        },
        now,
    );
}

/// Sets the applied configuration of every service of `model`, with the Compose config hash
/// its container shows in `observed`. Nothing when the model is empty (not rendered).
pub fn adopt_configs(
    status: &mut EnvironmentStatus,
    model: &RenderedModel,
    observed: &[Container],
) {
    if model.is_empty() {
        return;
    }
    status.configs = model
        .iter()
        .map(|(service, rendered)| {
            let compose_hash = observed
                .iter()
                .filter(|c| c.service == *service && !c.config_hash.is_empty())
                .max_by_key(|c| c.state.is_running())
                .map(|c| c.config_hash.clone());
            let config = AppliedConfig {
                hash: rendered.config.hash.clone(),
                fields: rendered.config.fields.clone(),
                compose_hash,
            };
            (service.clone(), config)
        })
        .collect();
}

/// When the agent looks again at an environment whose rollback failed.
pub const REPLAN_AFTER_FAILED_ROLLBACK: Duration = Duration::from_secs(15);

/// Sets phase, message, failed generation, gate backoff and conditions of `status` from the
/// outcome of one deploy of `env`; returns when to look again (gate backoff, record retry), if
/// ever. The applied release itself is written by the pipeline ([`record_applied`]); callers
/// that hold an older copy of the status take `applied_generation` and `releases` over first.
pub fn status_after(
    status: &mut EnvironmentStatus,
    env: &Environment,
    report: &DeployReport,
    now: SystemTime,
) -> Option<Duration> {
    status.observed_generation = Some(env.generation.clone());
    let delay = status_of_outcome(status, env, report, now);
    if !report.skipped.is_empty()
        && matches!(
            report.outcome,
            Outcome::Deployed | Outcome::UpToDate | Outcome::RecordFailed
        )
    {
        // `--service` applied part of the generation: what runs serves, the rest waits.
        status.phase = Phase::OutOfSync;
        status.message = format!(
            "{}; still out of sync: {} (not named by --service; the agent applies them at its \
             next reconcile, or `c2quay deploy {}`)",
            status.message,
            report.skipped.join(", "),
            env.name()
        );
    }
    delay
}

/// [`status_after`] for the outcome alone.
fn status_of_outcome(
    status: &mut EnvironmentStatus,
    env: &Environment,
    report: &DeployReport,
    now: SystemTime,
) -> Option<Duration> {
    match &report.outcome {
        Outcome::Deployed | Outcome::UpToDate | Outcome::DryRun => {
            status.phase = Phase::Ready;
            status.message = report.plan.clone();
            clear_gate_block(status);
            status.host_block = None;
            status.failed_generation = None;
            status.failed_model = None;
            status.set_condition(
                ConditionType::Gated,
                ConditionStatus::True,
                "Deployable",
                "the broker said deployable",
                now,
            );
            status.set_condition(
                ConditionType::Applied,
                ConditionStatus::True,
                "Applied",
                &report.plan,
                now,
            );
            status.set_condition(
                ConditionType::SmokePassed,
                ConditionStatus::True,
                "SmokePassed",
                "smoke checks passed",
                now,
            );
            None
        }
        Outcome::RecordFailed => {
            status.phase = Phase::Ready;
            status.message = format!("{}; some broker records are pending", report.plan);
            clear_gate_block(status);
            status.host_block = None;
            status.failed_generation = None;
            status.failed_model = None;
            status.set_condition(
                ConditionType::Applied,
                ConditionStatus::True,
                "Applied",
                &report.plan,
                now,
            );
            Some(crate::pipeline::record_retry_delay(1))
        }
        Outcome::GateBlocked => {
            let reasons = report.gate_reasons().join("\n");
            status.phase = Phase::GateBlocked;
            let went_ahead: Vec<String> = (report.records.iter())
                .filter(|r| r.status != crate::pipeline::RecordStatus::NotAttempted)
                .map(|r| format!("{} {}", r.candidate.pacticipant, r.candidate.version))
                .collect();
            status.message = if went_ahead.is_empty() {
                reasons.clone()
            } else {
                format!(
                    "deployed {}; waiting for the gate: {}\n{reasons}",
                    went_ahead.join(", "),
                    report.waiting.join(", ")
                )
            };
            let delay = block_gate(status, env, now);
            status.set_condition(
                ConditionType::Gated,
                ConditionStatus::False,
                "GateBlocked",
                &reasons,
                now,
            );
            Some(delay)
        }
        Outcome::RolledBack { failure } | Outcome::RollbackFailed { failure, .. }
            if failure.host.is_some() =>
        {
            let rollback = match &report.outcome {
                Outcome::RollbackFailed { rollback, .. } => Some(rollback.as_str()),
                _ => None,
            };
            Some(host_refused(status, env, report, failure, rollback, now))
        }
        Outcome::RolledBack { failure } => {
            status.phase = Phase::RolledBack;
            status.message = format!(
                "{} failed ({}); rolled back to the previous images",
                failure.step, failure.error
            );
            status.failed_generation = Some(env.generation.clone());
            status.failed_model = report.model_hash.clone();
            let message = status.message.clone();
            failed_conditions(status, failure, "RolledBack", &message, now);
            None
        }
        Outcome::RollbackFailed { failure, rollback } => {
            status.phase = Phase::Degraded;
            status.message = format!(
                "{} failed ({}); not rolled back: {rollback}",
                failure.step, failure.error
            );
            status.failed_generation = Some(env.generation.clone());
            status.failed_model = report.model_hash.clone();
            let message = status.message.clone();
            failed_conditions(status, failure, "RollbackFailed", &message, now);
            // Something may not run now: look again soon (the planner heals or reports it)
            // even when no container event comes.
            Some(REPLAN_AFTER_FAILED_ROLLBACK)
        }
    }
}

/// The first retry after the host refused an apply; each further refusal doubles it.
pub const HOST_RETRY_FIRST: Duration = Duration::from_secs(15);
/// The longest wait between two attempts of an apply the host refused.
pub const HOST_RETRY_MAX: Duration = Duration::from_secs(5 * 60);

/// The wait before attempt `attempts + 1` of an apply the host refused `attempts` times.
pub fn host_retry_delay(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    HOST_RETRY_FIRST
        .saturating_mul(1 << doublings)
        .min(HOST_RETRY_MAX)
}

/// The host refused the apply of `env`'s generation (`failure.host` is set): `HostBlocked`, the
/// generation is not failed and is tried again with backoff. Returns the delay.
fn host_refused(
    status: &mut EnvironmentStatus,
    env: &Environment,
    report: &DeployReport,
    failure: &StepFailure,
    rollback: Option<&str>,
    now: SystemTime,
) -> Duration {
    let Some(cause) = failure.host else {
        return HOST_RETRY_FIRST;
    };
    let attempts = match &status.host_block {
        Some(block) if block.generation == env.generation => block.attempts + 1,
        _ => 1,
    };
    let delay = host_retry_delay(attempts);
    status.host_block = Some(state::HostBlock {
        generation: env.generation.clone(),
        model_hash: report.model_hash.clone(),
        cause,
        attempts,
        next_attempt_at: now + delay,
    });
    let restored = match rollback {
        None => "the previous release was restored".to_string(),
        Some(why) => format!("not rolled back: {why}"),
    };
    status.phase = Phase::HostBlocked;
    status.message = format!(
        "the host refused generation {} ({}) at {}: {}; {restored}; not a failed release: \
         attempt {} failed, next in {}; to fix: {}",
        env.generation,
        cause.as_str(),
        failure.step,
        failure.error,
        attempts,
        humantime::format_duration(delay),
        cause.fix()
    );
    let message = status.message.clone();
    status.set_condition(
        ConditionType::Applied,
        ConditionStatus::False,
        "HostRefused",
        &message,
        now,
    );
    delay
}

/// Conditions after a failed deploy of a new generation: the gate passed, the release is not
/// applied, and `SmokePassed` says whether the smoke checks failed or never ran (the previous
/// generation's `True` no longer describes what the agent tried last).
fn failed_conditions(
    status: &mut EnvironmentStatus,
    failure: &StepFailure,
    applied_reason: &str,
    message: &str,
    now: SystemTime,
) {
    status.set_condition(
        ConditionType::Applied,
        ConditionStatus::False,
        applied_reason,
        message,
        now,
    );
    let (smoke, reason) = match failure.step {
        StepName::Smoke => (ConditionStatus::False, "SmokeFailed"),
        StepName::Verify => (ConditionStatus::True, "SmokePassed"),
        _ => (ConditionStatus::Unknown, "NotRun"),
    };
    let smoke_message = match smoke {
        ConditionStatus::False => message.to_string(),
        ConditionStatus::True => "smoke checks passed; verify failed".to_string(),
        ConditionStatus::Unknown => format!("smoke checks did not run: {} failed", failure.step),
    };
    status.set_condition(
        ConditionType::SmokePassed,
        smoke,
        reason,
        &smoke_message,
        now,
    );
}

fn clear_gate_block(status: &mut EnvironmentStatus) {
    status.gate_checks = 0;
    status.next_gate_check_at = None;
    status.gate_blocked_generation = None;
}

/// Counts one more blocked gate check of `env`'s generation and schedules the next one with
/// `policy.gateRetry` backoff; a new generation starts the backoff again. Returns the delay.
pub fn block_gate(status: &mut EnvironmentStatus, env: &Environment, now: SystemTime) -> Duration {
    if status.gate_blocked_generation.as_deref() != Some(env.generation.as_str()) {
        // A new commit resets the backoff.
        status.gate_checks = 0;
    }
    status.gate_checks += 1;
    let retry = &env.manifest.spec.policy.gate_retry;
    let delay = plan::gate_retry_delay(retry.initial.get(), retry.max.get(), status.gate_checks);
    status.next_gate_check_at = Some(now + delay);
    status.gate_blocked_generation = Some(env.generation.clone());
    delay
}
