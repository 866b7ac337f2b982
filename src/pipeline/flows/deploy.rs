//! The deploy flow: the strict order of DESIGN.md §2 under the environment lock.

use super::super::run::Run;
use super::super::steps::record::{pending_record, pending_record_of, undeployments};
use super::super::{
    Brokers, Context, DeployOptions, DeployReport, Error, Outcome, Result, candidates,
    check_services_exist, desired_pins, project_of, wave_pins, with_env_lock,
};
use super::apply_release;
use super::rollback::{pins_that_ran, roll_back};
use crate::docker::{Compose, Container, ImagePins, Project, RenderedModel};
use crate::events::{PipelineEvent, StepName};
use crate::manifest::Environment;
use crate::plan;
use crate::smoke::Smoke;
use crate::state::{EnvLock, Intent, Operation, PendingRecord, RecordKind, Step};

/// Runs one deploy of `env` now under its lock: the same pipeline for `c2quay deploy` and the
/// agent.
///
/// Returns a report whose [`Outcome`] says how it ended; `Err` only when nothing could be done
/// safely (the environment is not deployable here, Docker could not be observed, the broker
/// could not be asked, the state directory failed before any change).
pub async fn deploy<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    options: &DeployOptions,
) -> Result<DeployReport> {
    let (state, name) = (&ctx.state, env.name());
    with_env_lock(
        state,
        name,
        options.holder,
        options.lock_wait,
        async |lock| deploy_locked(ctx, env, options, lock).await,
    )
    .await
}

/// [`deploy`] for a caller that already holds the environment lock.
///
/// In per-service gate mode the deploy makes progress in waves: the releases the broker allows
/// now are applied and recorded, then the rest are asked again (a consumer the broker did not
/// know to be deployable becomes so once the provider it needs is recorded), all in this one
/// call. Each wave is journaled and committed on its own, so a crash resumes the wave in
/// flight and the next plan holds only what still waits.
pub async fn deploy_locked<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    options: &DeployOptions,
    lock: &EnvLock,
) -> Result<DeployReport> {
    let mut earlier: Vec<DeployReport> = Vec::new();
    loop {
        let report = deploy_wave(ctx, env, options, lock).await?;
        // Every wave records at least one release, so this ends within one wave per release.
        let progressed = report.outcome == Outcome::Deployed && !report.records.is_empty();
        if progressed && !report.waiting.is_empty() && earlier.len() < MAX_WAVES {
            earlier.push(report);
            continue;
        }
        return Ok(merge_waves(earlier, report));
    }
}

/// `c2quay deploy`: the outbox's pending records are sent first (whatever their retry time: a
/// person or CI asked now), then [`deploy_locked`]. While any record is still pending after it,
/// the outcome is `RecordFailed` (exit 6) even when nothing else had to change: a CI re-run
/// never says "up to date" while the broker still calls an older version current.
pub async fn deploy_sending_pending<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    options: &DeployOptions,
    lock: &EnvLock,
) -> Result<DeployReport> {
    let name = env.name().to_string();
    let state_err = |source| Error::State {
        environment: name.clone(),
        source,
    };
    let mut sent = match options.dry_run {
        true => Vec::new(),
        false => Run::new(ctx, env).record_outbox().await?,
    };
    let mut report = deploy_locked(ctx, env, options, lock).await?;
    let sent_any = !sent.is_empty();
    if sent_any {
        let ok = (sent.iter()).filter(|r| r.status == super::super::RecordStatus::Recorded);
        report.hints.insert(
            0,
            format!(
                "sent {} of {} pending record(s) from the outbox first",
                ok.count(),
                sent.len()
            ),
        );
        // Records this deploy made again are already in its report.
        sent.retain(|r| !report.records.contains(r));
        sent.append(&mut report.records);
        report.records = sent;
    }
    let (still, _) = ctx.state.outbox_list(&name).map_err(state_err)?;
    let pending =
        !still.is_empty() && matches!(report.outcome, Outcome::UpToDate | Outcome::Deployed);
    if pending {
        report.outcome = Outcome::RecordFailed;
    }
    // The report file says what this command did, pending records included.
    if (pending || sent_any)
        && let Some(path) = &report.report_path
    {
        crate::state::atomic::write_json_atomic(path, &report).map_err(state_err)?;
    }
    Ok(report)
}

/// At most this many waves of one deploy (each records at least one release).
const MAX_WAVES: usize = 32;

/// The last wave's report with the earlier waves' records and a line per earlier wave.
fn merge_waves(earlier: Vec<DeployReport>, mut last: DeployReport) -> DeployReport {
    if earlier.is_empty() {
        return last;
    }
    let mut records = Vec::new();
    let mut hints = Vec::new();
    // The first wave's plan is the whole change asked for.
    last.plan = earlier[0].plan.clone();
    for (n, wave) in earlier.into_iter().enumerate() {
        let recorded: Vec<String> = (wave.records.iter())
            .filter(|r| r.kind == RecordKind::Deployment)
            .map(|r| format!("{} {}", r.candidate.pacticipant, r.candidate.version))
            .collect();
        hints.push(format!(
            "wave {}: deployed and recorded {}; asked the broker again for {}",
            n + 1,
            recorded.join(", "),
            wave.waiting.join(", ")
        ));
        hints.extend(wave.hints.iter().map(|h| format!("  {h}")));
        records.extend(wave.records);
    }
    records.append(&mut last.records);
    last.records = records;
    hints.append(&mut last.hints);
    last.hints = hints;
    last
}

/// One wave of [`deploy_locked`]: plan, gate, apply and record what the gate allows now.
async fn deploy_wave<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    options: &DeployOptions,
    lock: &EnvLock,
) -> Result<DeployReport> {
    let name = env.name().to_string();
    check_selection(env, options.only.as_deref())?;
    env.check_deployable_here()
        .map_err(|problems| Error::NotDeployable {
            environment: name.clone(),
            message: problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        })?;
    let state_err = |source| Error::State {
        environment: name.clone(),
        source,
    };
    let mut run = Run::new(ctx, env);
    run.scope.revision = options.revision.clone();

    // 1. pre-snapshot
    let started = run.start_step(StepName::Snapshot);
    let project = project_of(env);
    let mut pre = run
        .snapshot_with(&project, options.model.as_deref())
        .await?;
    check_services_exist(env, &run.model)?;
    run.end_step(StepName::Snapshot, started, None);

    // 2. plan: an unreadable status stops here (planning as if nothing was applied would
    // redeploy and re-record everything).
    let applied = super::super::try_applied_state(&ctx.state, &name).map_err(state_err)?;
    pre.versions = (applied.releases.iter())
        .filter_map(|(s, r)| r.version.clone().map(|v| (s.clone(), v)))
        .collect();
    let changes = plan::changes(env, Some(&run.model), &applied, &pre.containers);
    let changed = changes.services();
    run.report.changed = changed.clone();
    run.report.model_hash = Some(plan::model_hash(&run.model));
    run.report.plan = describe_plan(env, &changes);
    run.emit(PipelineEvent::Planned {
        plan: run.report.plan.clone(),
    });
    if changes.is_empty() {
        run.report.outcome = Outcome::UpToDate;
        return run.finish(None).await;
    }
    // New releases of the pinned services, and every service whose configuration changed.
    let mut to_apply: Vec<String> = changed
        .iter()
        .filter(|s| env.pinned_services().contains(s) || changes.configs.contains_key(*s))
        .cloned()
        .collect();
    // `--service`: the changes of the other services wait (pinned to what runs below).
    let unselected: Vec<String> = match &options.only {
        Some(only) => changed
            .iter()
            .filter(|s| !only.contains(s))
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    let selected = |s: &String| options.only.as_ref().is_none_or(|only| only.contains(s));
    to_apply.retain(selected);
    // Removals go with `up --remove-orphans`, which removes them all: only when each is named.
    let removing = env.manifest.spec.policy.remove_orphans
        && !changes.removed.is_empty()
        && changes.removed.iter().all(selected);
    if removing && to_apply.is_empty() {
        // Only removals: `up --remove-orphans` of what runs (unchanged, so not re-created)
        // stops and removes them; a finished one-shot is not started again.
        to_apply = running_services(&run.model, &pre.containers);
    }
    let mut pins = desired_pins(env);
    let mut held_pins = std::collections::BTreeMap::new();
    if !unselected.is_empty() {
        let running = pre.running_images();
        held_pins = (unselected.iter())
            .map(|s| (s.clone(), running.get(s).cloned()))
            .collect();
        pins = wave_pins(env, &held_pins);
        run.report.skipped = unselected.clone();
    }
    if options.dry_run {
        run.report.outcome = Outcome::DryRun;
        run.report.hints = dry_run_lines(env, &project, &pins, &to_apply, &changes);
        return Ok(run.report);
    }

    // Whoever deploys (the agent or a CLI run), `c2quay status` shows the deploy in flight.
    let now = ctx.clock.now();
    let progressing = crate::status::Cause::Progressing {
        reason: &run.report.plan,
    };
    crate::status::update(&ctx.state, lock, |status| {
        crate::status::transition(status, progressing, now);
    })
    .map_err(state_err)?;

    // 3. gate: only new releases; a configuration change alone is neither gated nor recorded.
    let releases: Vec<String> = changes
        .releases
        .iter()
        .filter(|s| selected(s))
        .cloned()
        .collect();
    let mut to_record = candidates(env, &releases);
    if to_apply.is_empty() && to_record.is_empty() && !removing {
        // `--service` named only services without a change.
        run.report.outcome = Outcome::UpToDate;
        return run.finish(None).await;
    }
    if let Some(spec) = &env.manifest.spec.broker
        && !to_record.is_empty()
        && !run.gate(spec, &to_record).await?
    {
        let held = held_by_gate(env, &releases, &run.report.gate);
        to_record.retain(|c| !held.iter().any(|s| env.pacticipant(s) == c.pacticipant));
        if to_record.is_empty() {
            run.report.waiting = releases.clone();
            run.report.outcome = Outcome::GateBlocked;
            run.report.hints = run.report.gate_reasons();
            return run.finish(None).await;
        }
        // Per service: go on with what the broker allows; the held releases keep what runs
        // (their pins too: a dependency of an applied service is not switched by `up`).
        let running = pre.running_images();
        held_pins.extend((held.iter()).map(|s| (s.clone(), running.get(s).cloned())));
        pins = wave_pins(env, &held_pins);
        to_apply.retain(|s| !held.contains(s));
        run.report.hints = run.report.gate_reasons();
        run.report.waiting = held;
    }

    // The pre snapshot (what a rollback restores), then the intent, before the first side
    // effect. A deploy that changes nothing writes none: `c2quay rollback` restores the
    // snapshot of the last change.
    run.report.pre_snapshot = Some(
        ctx.state
            .write_snapshot(&name, "pre", &pre)
            .map_err(state_err)?,
    );
    let mut records: Vec<PendingRecord> = to_record
        .iter()
        .map(|candidate| pending_record(ctx, env, candidate))
        .collect();
    if removing {
        records.extend(
            undeployments(env, &applied, &changes.removed)
                .iter()
                .map(|candidate| pending_record_of(RecordKind::Undeployment, ctx, env, candidate)),
        );
    }
    let mut intent = Intent {
        generation: env.generation.clone(),
        operation: Operation::Deploy,
        started_at: ctx.clock.now(),
        pre_snapshot: run.report.pre_snapshot.clone().unwrap_or_default(),
        target_images: to_apply
            .iter()
            .filter_map(|s| pins.get(s).map(|image| (s.clone(), image.clone())))
            .collect(),
        previous_images: pre
            .running_images()
            .into_iter()
            .filter(|(s, _)| to_apply.contains(s))
            .collect(),
        previous_image_ids: pre
            .running_image_ids()
            .into_iter()
            .filter(|(s, _)| to_apply.contains(s))
            .collect(),
        changed_services: to_apply.clone(),
        records: records.clone(),
        step: Step::Started,
        resumes: 0,
        restore_model: restore_model(ctx, env, &changes),
        model_hash: run.report.model_hash.clone(),
        held: held_pins,
    };
    ctx.state.write_intent(&name, &intent).map_err(state_err)?;

    // 4-6. pull, up, readiness, smoke, verify: a failure rolls back per policy.
    if !to_apply.is_empty()
        && let Err(failure) = apply_release(
            &mut run,
            &project,
            &pins,
            &to_apply,
            options.force_recreate,
            &mut intent,
        )
        .await
    {
        let mode = options
            .rollback
            .unwrap_or(env.manifest.spec.policy.rollback);
        // An interrupted rollback is finished by recovery, not resumed as a deploy.
        intent.operation = Operation::Rollback;
        run.write_intent(&intent);
        let previous = pins_that_ran(
            &ctx.compose,
            &pre.running_images(),
            &pre.running_image_ids(),
        )
        .await;
        let outcome = roll_back(
            &mut run,
            &project,
            &previous,
            &to_apply,
            mode,
            failure,
            intent.restore_model.as_deref(),
        )
        .await;
        run.report.outcome = outcome;
        ctx.state.clear_intent(&name).map_err(state_err)?;
        return run.finish(Some(&project)).await;
    }

    // 7. record, always last: the outbox holds each record until the broker accepts it.
    intent.step = Step::SmokePassed;
    ctx.state.write_intent(&name, &intent).map_err(state_err)?;
    for record in &records {
        ctx.state.outbox_put(&name, record).map_err(state_err)?;
    }
    let kept = [run.report.waiting.clone(), run.report.skipped.clone()].concat();
    super::commit_applied(&run, lock, &kept)?;
    ctx.state.clear_intent(&name).map_err(state_err)?;
    let started = run.start_step(StepName::Record);
    // The whole outbox goes out oldest first: a record of an earlier deploy still pending is
    // sent before this deploy's, or the broker would call the older version current (issue 6).
    let queued = match ctx.state.outbox_list(&name) {
        Ok((queued, _)) => queued,
        Err(_) => records.clone(),
    };
    let items = run.record(&queued).await;
    let all_recorded = items
        .iter()
        .all(|i| i.status == super::super::RecordStatus::Recorded);
    run.end_step(
        StepName::Record,
        started,
        (!all_recorded).then_some("some records wait in the outbox"),
    );
    run.report.records = items;
    run.report.outcome = if all_recorded {
        Outcome::Deployed
    } else {
        Outcome::RecordFailed
    };
    run.finish(Some(&project)).await
}

fn describe_plan(env: &Environment, changes: &plan::Changes) -> String {
    if changes.is_empty() {
        return format!("generation {}: up to date", env.generation);
    }
    let mut parts: Vec<String> = changes
        .releases
        .iter()
        .map(|s| {
            let spec = &env.manifest.spec.services[s];
            match (env.pinned_image(s), env.version(s)) {
                (Some(image), Some(v)) if !spec.gate_only => format!("{s} -> {v} ({image})"),
                (Some(image), _) => format!("{s} -> {image}"),
                (None, Some(v)) => format!("{s} -> {v} (gate only)"),
                (None, None) => s.clone(),
            }
        })
        .collect();
    parts.extend(
        changes
            .configs
            .iter()
            .map(|(service, change)| format!("{service} config ({change})")),
    );
    parts.extend(changes.removed.iter().map(|s| format!("remove {s}")));
    format!("generation {}: deploy {}", env.generation, parts.join(", "))
}

/// Refuses a `--service` selection that names a service the manifest does not have, or any
/// for an all-or-nothing environment: its releases are verified as one set, and applying part
/// of the set would run a combination the broker never said yes to.
pub(super) fn check_selection(env: &Environment, only: Option<&[String]>) -> Result<()> {
    let Some(only) = only else { return Ok(()) };
    let refuse = |message: String| {
        Err(Error::NotDeployable {
            environment: env.name().to_string(),
            message,
        })
    };
    if (env.manifest.spec.broker.as_ref()).is_some_and(|b| b.all_or_nothing) {
        return refuse(
            "--service: this environment is all-or-nothing (spec.broker.allOrNothing): its \
             releases are verified and deployed as one set; deploy it whole"
                .into(),
        );
    }
    let unknown: Vec<&String> = (only.iter())
        .filter(|s| !env.manifest.spec.services.contains_key(*s))
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&String> = env.manifest.spec.services.keys().collect();
        return refuse(format!(
            "--service: no service {unknown:?} in the manifest (its services: {known:?})"
        ));
    }
    Ok(())
}

/// The services among `releases` whose new release the gate did not allow, when it was asked
/// per service (one answer per gated release, in order). Every release for an all-or-nothing
/// answer: one query decides for the whole set.
fn held_by_gate(
    env: &Environment,
    releases: &[String],
    gate: &[super::super::outcome::GateEntry],
) -> Vec<String> {
    let per_service = gate.iter().all(|entry| entry.candidates.len() == 1);
    if !per_service {
        return releases.to_vec();
    }
    releases
        .iter()
        .filter(|service| {
            let pacticipant = env.pacticipant(service);
            gate.iter().any(|entry| {
                entry.candidates[0].pacticipant == pacticipant
                    && entry.answer.verdict != crate::broker::Verdict::Deployable
            })
        })
        .cloned()
        .collect()
}

/// Services of `model` with a running container, in name order.
fn running_services(model: &RenderedModel, observed: &[Container]) -> Vec<String> {
    model
        .keys()
        .filter(|s| {
            observed
                .iter()
                .any(|c| c.service == **s && c.state.is_running())
        })
        .cloned()
        .collect()
}

/// The saved model a rollback of this deploy restores: the last applied one, when the deploy
/// changes configuration and one was saved.
fn restore_model<C, B, S>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    changes: &plan::Changes,
) -> Option<std::path::PathBuf> {
    let path = ctx.state.applied_model_file(env.name());
    (!changes.configs.is_empty() && path.is_file()).then_some(path)
}

fn dry_run_lines(
    env: &Environment,
    project: &Project,
    pins: &ImagePins,
    services: &[String],
    changes: &plan::Changes,
) -> Vec<String> {
    let mut lines = vec![format!(
        "dry run: would gate, pull and apply in project {}",
        project.name
    )];
    for service in services {
        if let Some(image) = pins.get(service) {
            lines.push(format!("  {service}: pin {image}"));
        }
    }
    for (service, change) in &changes.configs {
        lines.push(format!("  {service}: apply config ({change})"));
    }
    for service in &changes.removed {
        lines.push(format!("  {service}: stop and remove"));
    }
    for candidate in candidates(env, &changes.releases) {
        lines.push(format!(
            "  record {} {} after smoke",
            candidate.pacticipant, candidate.version
        ));
    }
    lines
}
