//! The rollback flow: restore the images that ran before, per `policy.rollback`, around the one
//! `restore` step. A failed deploy, recovery and `c2quay rollback` all come here, so every
//! rollback writes a report, an audit line, a post-rollback snapshot and the metric.
//!
//! A rollback after a failed deploy never touches the broker: nothing new was recorded before
//! smoke passed. `c2quay rollback` of a release that was recorded records the restored one.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use tracing::{info, warn};

use super::super::run::Run;
use super::super::{
    Brokers, Context, Error, Outcome, RecordItem, Result, Snapshot, StepFailure, desired_pins,
    project_of, with_env_lock,
};
use crate::docker::{Compose, ImagePins, Project, UpOptions};
use crate::error_chain;
use crate::events::{PipelineEvent, StepName};
use crate::manifest::{Environment, RollbackMode};
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
    pub failed_step: StepName,
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

/// Rolls `services` back to `previous` (service -> image that ran before), per `mode`, after
/// `failure`; returns the flow's outcome. With `restore_model` (a deploy that changed
/// configuration) the saved model of the last successful deploy is re-applied, services new in
/// the failed one removed (under `policy.removeOrphans`).
pub(in crate::pipeline) async fn roll_back<C: Compose, B: Brokers, S: Smoke>(
    run: &mut Run<'_, C, B, S>,
    project: &Project,
    previous: &ImagePins,
    services: &[String],
    mode: RollbackMode,
    failure: StepFailure,
    restore_model: Option<&Path>,
) -> Outcome {
    let env = run.env;
    let mut pins = desired_pins(env);
    let mut failure = failure;
    // `docker compose pull` names services, not images (they are in the override file): say
    // which images could not be had, so the phase tells an operator what to fix.
    if failure.step == StepName::Pull {
        failure.error = format!(
            "cannot pull {}: {}",
            describe_images(services, &pins),
            failure.error
        );
    }
    // Everything not being rolled back stays pinned as it runs now.
    for (service, image) in previous {
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
        failed_step: failure.step,
        cause: failure.error.clone(),
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
    let started = run.start_step(StepName::Rollback);
    // The deploy failed and was not (or not wholly) rolled back, `rollback` says why.
    let not_rolled_back = |rollback: String| Outcome::RollbackFailed {
        failure: failure.clone(),
        rollback,
    };
    let restoring = mode == RollbackMode::On && failure.step != StepName::Pull;
    let outcome = if failure.step == StepName::Pull {
        // A failed pull happens before anything is stopped: nothing to restore.
        report.result = "nothing to roll back: the pull failed before any container changed".into();
        Outcome::RolledBack {
            failure: failure.clone(),
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
                match restore(run, project, &pins, &to_restore, restore_model).await {
                    Ok(()) => {
                        report.result = "succeeded".into();
                        info!(
                            environment = env.name(),
                            "rolled back to the previous images"
                        );
                        Outcome::RolledBack {
                            failure: failure.clone(),
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
    let succeeded = matches!(outcome, Outcome::RolledBack { .. });
    run.end_step(
        StepName::Rollback,
        started,
        (!succeeded).then_some(report.result.as_str()),
    );
    if restoring && let Ok(post) = run.containers_snapshot(project).await {
        report.post_snapshot = run
            .ctx
            .state
            .write_snapshot(env.name(), "post-rollback", &post)
            .ok();
    }
    match run.ctx.state.write_report(env.name(), "rollback", &report) {
        Ok(path) => run.report.rollback_report = Some(path),
        Err(error) => {
            warn!(environment = env.name(), error = %error_chain(&error), "cannot write the rollback report")
        }
    }
    run.emit(PipelineEvent::RollbackDone {
        result: report.result.clone(),
        succeeded,
        cause: failure.error.clone(),
    });
    outcome
}

/// The `restore` step, from the saved model when one is given. Jobs get their previous image
/// pinned for the future but are not started (a completed migration is not run again), and
/// `--no-deps` keeps Compose from starting them as dependencies.
async fn restore<C: Compose, B, S>(
    run: &mut Run<'_, C, B, S>,
    project: &Project,
    pins: &ImagePins,
    services: &[String],
    restore_model: Option<&Path>,
) -> std::result::Result<(), String> {
    let mut options = UpOptions {
        no_deps: true,
        ..UpOptions::default()
    };
    let project = match restore_model {
        Some(path) => {
            options.remove_orphans = run.env.manifest.spec.policy.remove_orphans;
            run.restore_model(project, path)?
        }
        None => project.clone(),
    };
    let services: Vec<String> = services
        .iter()
        .filter(|s| run.model.get(*s).is_some_and(|m| !m.job))
        .cloned()
        .collect();
    if services.is_empty() {
        return Ok(());
    }
    run.restore(&project, pins, &services, &options).await
}

/// `previous` (service -> image reference that ran) with every reference whose tag moved since
/// (a re-pushed `:stable`, a pull of the new release's tag) replaced by the image id that ran
/// (`ran`): a rollback restores what ran, not what the tag names now. A reference the engine
/// cannot resolve is kept (`up --pull never` then says so).
pub(in crate::pipeline) async fn pins_that_ran<C: Compose>(
    compose: &C,
    previous: &ImagePins,
    ran: &std::collections::BTreeMap<String, String>,
) -> ImagePins {
    let mut pins = ImagePins::new();
    for (service, reference) in previous {
        let pin = match ran.get(service) {
            Some(id) if !reference.starts_with("sha256:") => {
                match compose.image_id(reference).await {
                    Ok(Some(now)) if now != *id => {
                        info!(service, reference, ran = %id, now = %now, "the tag moved since: rolling back by image id");
                        id.clone()
                    }
                    _ => reference.clone(),
                }
            }
            _ => reference.clone(),
        };
        pins.insert(service.clone(), pin);
    }
    pins
}

/// Adds `header` and the indented `commands` to the deploy report's hints.
fn hint_commands<C, B, S>(run: &mut Run<'_, C, B, S>, header: &str, commands: &[String]) {
    run.report.hints.push(header.to_string());
    (run.report.hints).extend(commands.iter().map(|c| format!("  {c}")));
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

/// What `c2quay rollback` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ManualRollback {
    /// Service -> image restored (empty: the snapshot shows no running container).
    pub restored: ImagePins,
    /// The broker records of the restored versions (the whole outbox, oldest first).
    pub records: Vec<RecordItem>,
}

/// `c2quay rollback ENV [--from-snapshot FILE]`: restores the images of a snapshot (the newest
/// pre-deploy snapshot when `snapshot` is `None`), under the environment lock, through the same
/// rollback as a failed deploy (report, audit line, metric), then the smoke checks.
///
/// The environment is then held: phase `RolledBack`, the manifest's generation marked failed
/// (the agent does not deploy it again until a new commit or `c2quay retry`), the restored
/// releases applied, and their versions recorded in the broker through the outbox. When the
/// smoke checks fail the hold stays (phase `Degraded`) and nothing is recorded.
pub async fn rollback_to_snapshot<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    snapshot: Option<&Path>,
    lock_wait: Duration,
) -> Result<ManualRollback> {
    let name = env.name().to_string();
    with_env_lock(&ctx.state, &name, "rollback", lock_wait, async |lock| {
        let state_err = |source| Error::State {
            environment: name.clone(),
            source,
        };
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
        let images = pins_that_ran(
            &ctx.compose,
            &snapshot.running_images(),
            &snapshot.running_image_ids(),
        )
        .await;
        let services: Vec<String> = images.keys().cloned().collect();
        if services.is_empty() {
            return Ok(ManualRollback {
                restored: ImagePins::new(),
                records: Vec::new(),
            });
        }
        let project = project_of(env);
        let mut run = Run::new(ctx, env);
        run.snapshot(&project).await.map_err(|error| match error {
            Error::Observe {
                environment,
                source,
                ..
            } => Error::Observe {
                environment,
                step: StepName::Rollback,
                source,
            },
            other => other,
        })?;
        let failure = StepFailure::new(
            StepName::Rollback,
            format!("c2quay rollback to {}", path.display()),
        );
        let outcome = roll_back(
            &mut run,
            &project,
            &images,
            &services,
            RollbackMode::On,
            failure,
            None,
        )
        .await;
        match outcome {
            Outcome::RolledBack { .. } => {}
            Outcome::RollbackFailed { rollback, .. } => {
                return Err(Error::NotDeployable {
                    environment: name.clone(),
                    message: format!("rollback to {} failed: {rollback}", path.display()),
                });
            }
            other => {
                return Err(Error::NotDeployable {
                    environment: name.clone(),
                    message: format!("rollback to {} ended {}", path.display(), other.name()),
                });
            }
        }
        let smoke = run.smoke().await.map_err(|failure| failure.error);
        let restored = restored_releases(env, &snapshot, &images);
        let model_hash = crate::plan::model_hash(&run.model);
        let now = ctx.clock.now();
        crate::status::update(&ctx.state, lock, |status| {
            crate::status::record_manual_rollback(
                status,
                &crate::status::RollbackByHand {
                    env,
                    model: &run.model,
                    observed: &run.observed,
                    restored: &restored,
                    model_hash: &model_hash,
                    smoke: smoke.as_ref().err().map(String::as_str),
                },
                now,
            )
        })
        .map_err(state_err)?;
        if let Err(error) = smoke {
            return Err(Error::NotDeployable {
                environment: name.clone(),
                message: format!(
                    "restored {}, but the smoke checks failed (nothing recorded in the broker): {error}",
                    path.display()
                ),
            });
        }
        // Record the restored versions, oldest pending record first.
        let gated = env.gated_services();
        for (service, release) in &restored {
            let Some(version) = &release.version else {
                continue;
            };
            if !gated.contains(service) {
                continue;
            }
            let candidate = crate::broker::Candidate {
                pacticipant: env.pacticipant(service),
                version: version.clone(),
            };
            let record = super::super::steps::record::pending_record(ctx, env, &candidate);
            ctx.state.outbox_put(&name, &record).map_err(state_err)?;
        }
        let records = run.record_outbox().await?;
        Ok(ManualRollback {
            restored: images,
            records,
        })
    })
    .await
}

/// The releases `images` restore: each with the version applied when `snapshot` was taken, or
/// the one the manifest's image template gives for the restored reference (snapshots from
/// before versions were kept); `None` when neither says.
fn restored_releases(
    env: &Environment,
    snapshot: &Snapshot,
    images: &ImagePins,
) -> BTreeMap<String, crate::status::RestoredRelease> {
    let references = snapshot.running_images();
    images
        .iter()
        .map(|(service, pin)| {
            let reference = references.get(service).unwrap_or(pin);
            let version = snapshot.versions.get(service).cloned().or_else(|| {
                let template = env.manifest.spec.services.get(service)?.image.as_deref()?;
                version_in(template, reference)
            });
            let release = crate::status::RestoredRelease {
                image: reference.clone(),
                version,
            };
            (service.clone(), release)
        })
        .collect()
}

/// The `{version}` of `template` that makes it `reference`, if one does.
fn version_in(template: &str, reference: &str) -> Option<String> {
    let (prefix, suffix) = template.split_once("{version}")?;
    let version = reference.strip_prefix(prefix)?.strip_suffix(suffix)?;
    (!version.is_empty() && !suffix.contains("{version}")).then(|| version.to_string())
}

#[cfg(test)]
mod tests {
    use super::version_in;

    #[test]
    fn a_version_is_read_back_from_the_image_template() {
        assert_eq!(
            version_in("registry:5000/web:{version}", "registry:5000/web:1.4.2").as_deref(),
            Some("1.4.2")
        );
        assert_eq!(
            version_in("web:{version}-alpine", "web:2-alpine").as_deref(),
            Some("2")
        );
        assert_eq!(version_in("web:{version}", "api:2"), None);
        assert_eq!(version_in("web:stable", "web:stable"), None);
        assert_eq!(version_in("web:{version}", "web:"), None);
    }
}
