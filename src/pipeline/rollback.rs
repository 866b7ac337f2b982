//! Rollback: restore the images of the pre-deploy snapshot, per `policy.rollback`.
//!
//! A rollback never touches the broker: nothing new was recorded before smoke passed.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::{info, warn};

use super::run::{Run, error_chain};
use super::{
    Brokers, Context, DEFAULT_ROLLBACK_TIMEOUT, Error, Outcome, Result, Snapshot, project_of,
};
use crate::compose::{Compose, ImagePins, Project, RenderedModel, UpOptions};
use crate::manifest::{Environment, RollbackMode};
use crate::metrics::{Outcome as MetricOutcome, Step as MetricStep};
use crate::smoke::Smoke;

/// The JSON rollback report written next to the snapshots.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackReport {
    /// Environment name.
    pub environment: String,
    /// Generation that failed.
    pub generation: String,
    /// The step that failed.
    pub failed_step: String,
    /// Why it failed.
    pub cause: String,
    /// The rollback mode.
    pub mode: String,
    /// Service -> image restored.
    pub restored: ImagePins,
    /// Services that had no container before the deploy (left as they are).
    pub without_previous: Vec<String>,
    /// `succeeded`, `failed: ...`, `skipped (off)`, `skipped (dry-run)`, `nothing to roll back`.
    pub result: String,
    /// Milliseconds the rollback took.
    pub millis: u64,
    /// The post-rollback snapshot.
    pub post_snapshot: Option<std::path::PathBuf>,
    /// Commands an operator would run (mode `off` / `dry-run`, or after a failure).
    pub commands: Vec<String>,
}

/// The rollback timeout: 2 x `waitTimeout`, or 3 minutes when the manifest sets none.
pub fn rollback_timeout(env: &Environment) -> Duration {
    match env.manifest.spec.compose.wait_timeout {
        Some(wait) => wait.get() * 2,
        None => DEFAULT_ROLLBACK_TIMEOUT,
    }
}

/// Rolls `services` back to what `pre` shows running, per `mode`; returns the deploy outcome.
pub(super) async fn roll_back<C: Compose, B: Brokers, S: Smoke>(
    run: &mut Run<'_, C, B, S>,
    project: &Project,
    pre: &Snapshot,
    services: &[String],
    mode: RollbackMode,
    failed_step: &str,
    cause: &str,
) -> Outcome {
    let env = run.env;
    let previous = pre.running_images();
    let mut pins = super::run::desired_pins(env);
    // `docker compose pull` names services, not images (they are in the override file): say
    // which images could not be had, so the phase tells an operator what to fix.
    let cause = match failed_step {
        "pull" => format!("cannot pull {}: {cause}", describe_images(services, &pins)),
        _ => cause.to_string(),
    };
    let cause = cause.as_str();
    // Everything not being rolled back stays pinned as it runs now.
    for (service, image) in &previous {
        pins.insert(service.clone(), image.clone());
    }
    let restored: ImagePins = services
        .iter()
        .filter_map(|s| previous.get(s).map(|image| (s.clone(), image.clone())))
        .collect();
    let without_previous: Vec<String> = services
        .iter()
        .filter(|s| !previous.contains_key(*s))
        .cloned()
        .collect();
    let to_restore: Vec<String> = restored.keys().cloned().collect();
    let commands = rollback_override_commands(project, &restored);
    let mut report = RollbackReport {
        environment: env.name().to_string(),
        generation: env.generation.clone(),
        failed_step: failed_step.to_string(),
        cause: cause.to_string(),
        mode: match mode {
            RollbackMode::On => "on",
            RollbackMode::Off => "off",
            RollbackMode::DryRun => "dry-run",
        }
        .to_string(),
        restored: restored.clone(),
        without_previous,
        result: String::new(),
        millis: 0,
        post_snapshot: None,
        commands: commands.clone(),
    };
    let started = Instant::now();
    // The deploy failed and was not (or not wholly) rolled back, `rollback` says why.
    let not_rolled_back = |rollback: String| Outcome::RollbackFailed {
        failed_step: failed_step.into(),
        cause: cause.into(),
        rollback,
    };
    let outcome = if failed_step == "pull" {
        // A failed pull happens before anything is stopped: nothing to restore.
        report.result = "nothing to roll back: the pull failed before any container changed".into();
        Outcome::RolledBack {
            failed_step: failed_step.into(),
            cause: cause.into(),
        }
    } else {
        match mode {
            RollbackMode::Off => {
                report.result = "skipped (policy.rollback off)".into();
                hint_commands(run, "rollback is off; to roll back by hand run:", &commands);
                not_rolled_back("rollback is off".into())
            }
            RollbackMode::DryRun => {
                report.result = "skipped (policy.rollback dry-run)".into();
                run.report
                    .hints
                    .push("rollback dry-run; the rollback would restore:".into());
                for (service, image) in &restored {
                    run.report.hints.push(format!("  {service}: {image}"));
                }
                not_rolled_back("rollback is dry-run".into())
            }
            RollbackMode::On if to_restore.is_empty() => {
                report.result = "nothing to roll back: no changed service ran before".into();
                not_rolled_back("no previous image to restore".into())
            }
            RollbackMode::On => {
                match restore(run.ctx, env, project, &run.model, &pins, &to_restore).await {
                    Ok(()) => {
                        report.result = "succeeded".into();
                        info!(
                            environment = env.name(),
                            "rolled back to the previous images"
                        );
                        Outcome::RolledBack {
                            failed_step: failed_step.into(),
                            cause: cause.into(),
                        }
                    }
                    Err(error) => {
                        report.result = format!("failed: {error}");
                        warn!(environment = env.name(), error = %error, "rollback failed");
                        hint_commands(
                            run,
                            "the rollback failed; to retry it by hand run:",
                            &commands,
                        );
                        not_rolled_back(error)
                    }
                }
            }
        }
    };
    report.millis = started.elapsed().as_millis() as u64;
    run.step(
        MetricStep::Rollback,
        started,
        matches!(outcome, Outcome::RolledBack { .. }),
    );
    if mode == RollbackMode::On
        && failed_step != "pull"
        && let Ok(post) = run.snapshot(project).await
    {
        report.post_snapshot = run
            .ctx
            .state
            .write_snapshot(env.name(), "post-rollback", &post)
            .ok();
    }
    if let Some(metrics) = &run.ctx.metrics {
        metrics.observe_rollback(
            env.name(),
            if matches!(outcome, Outcome::RolledBack { .. }) {
                MetricOutcome::Succeeded
            } else {
                MetricOutcome::Failed
            },
        );
    }
    match run.ctx.state.write_report(env.name(), "rollback", &report) {
        Ok(path) => run.report.rollback_report = Some(path),
        Err(error) => {
            warn!(environment = env.name(), error = %error_chain(&error), "cannot write the rollback report")
        }
    }
    run.audit("rollback", &report.result, cause);
    outcome
}

/// Adds `header` and the indented `commands` to the deploy report's hints.
fn hint_commands<C, B, S>(run: &mut Run<'_, C, B, S>, header: &str, commands: &[String]) {
    run.report.hints.push(header.to_string());
    (run.report.hints).extend(commands.iter().map(|c| format!("  {c}")));
}

/// `up` with the previous pins, then readiness with the rollback timeout.
async fn restore<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    project: &Project,
    model: &RenderedModel,
    pins: &ImagePins,
    services: &[String],
) -> std::result::Result<(), String> {
    ctx.compose
        .up(project, model, pins, services, &UpOptions::default())
        .await
        .map_err(|e| format!("up: {}", error_chain(&e)))?;
    ctx.compose
        .wait_ready(project, model, services, rollback_timeout(env))
        .await
        .map(|_| ())
        .map_err(|e| format!("readiness: {}", error_chain(&e)))
}

/// `service image` pairs of `services` as pinned in `pins`, comma-separated.
fn describe_images(services: &[String], pins: &ImagePins) -> String {
    services
        .iter()
        .map(|s| match pins.get(s) {
            Some(image) => format!("{s} {image}"),
            None => s.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The commands an operator would run to pin `restored` by hand.
pub fn rollback_override_commands(project: &Project, restored: &ImagePins) -> Vec<String> {
    let files: String = project
        .files
        .iter()
        .map(|f| format!(" -f {}", f.display()))
        .collect();
    let mut lines = vec![format!(
        "cat > /tmp/{}-rollback.yaml <<'EOF'\nservices:{}\nEOF",
        project.name,
        restored
            .iter()
            .map(|(s, image)| format!("\n  {s}:\n    image: {image}"))
            .collect::<String>()
    )];
    lines.push(format!(
        "docker compose -p {} --project-directory {}{files} -f /tmp/{}-rollback.yaml up -d {}",
        project.name,
        project.directory.display(),
        project.name,
        restored.keys().cloned().collect::<Vec<_>>().join(" ")
    ));
    lines
}

/// `c2quay rollback ENV [--from-snapshot FILE]`: restores the images of a snapshot (the newest
/// pre-deploy snapshot when `snapshot` is `None`), under the environment lock.
pub async fn rollback_to_snapshot<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    snapshot: Option<&Path>,
    lock_wait: Duration,
) -> Result<ImagePins> {
    let name = env.name().to_string();
    let state_err = |source| Error::State {
        environment: name.clone(),
        source,
    };
    let _lock = ctx
        .state
        .lock_environment_async(&name, "rollback", lock_wait)
        .await
        .map_err(state_err)?;
    let path = match snapshot {
        Some(path) => path.to_path_buf(),
        None => ctx
            .state
            .latest_snapshot(&name, "pre")
            .map_err(state_err)?
            .ok_or_else(|| Error::NoSnapshot {
                environment: name.clone(),
                dir: ctx.state.snapshots_dir(&name),
            })?,
    };
    let snapshot: Snapshot = ctx.state.read_snapshot(&path).map_err(state_err)?;
    let project = project_of(env);
    let images = snapshot.running_images();
    let mut pins = super::run::desired_pins(env);
    pins.extend(images.clone());
    let services: Vec<String> = images.keys().cloned().collect();
    if services.is_empty() {
        return Ok(ImagePins::new());
    }
    let model = ctx
        .compose
        .config(&project)
        .await
        .map_err(|source| Error::Observe {
            environment: name.clone(),
            step: "rollback",
            source,
        })?;
    restore(ctx, env, &project, &model, &pins, &services)
        .await
        .map_err(|message| Error::NotDeployable {
            environment: name.clone(),
            message: format!("rollback to {} failed: {message}", path.display()),
        })?;
    Ok(images)
}
