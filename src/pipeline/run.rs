//! The deploy flow itself: the strict order of DESIGN.md §2 under the environment lock.

use std::collections::BTreeMap;
use std::time::Instant;

use tracing::{info, warn};

use super::outcome::{GateEntry, RecordItem, RecordStatus};
use super::rollback::roll_back;
use super::{
    Brokers, Context, DeployOptions, DeployReport, Error, Outcome, Result, Snapshot, StepTiming,
    check_services_exist, project_of,
};
use crate::broker::{Broker, Candidate, GateMode, Verdict};
use crate::compose::{self, Compose, Container, ImagePins, Project, UpOptions};
use crate::manifest::{Environment, PullPolicy};
use crate::metrics::{GateResult, Outcome as MetricOutcome, Step as MetricStep};
use crate::plan::{self, AppliedState};
use crate::smoke::{Smoke, SmokeContext};
use crate::state::{self, Intent, Operation, PendingRecord, Step};

/// Runs one deploy of `env` now: the same pipeline for `c2quay deploy` and the agent.
///
/// Returns a report whose [`Outcome`] says how it ended; `Err` only when nothing could be done
/// safely (the environment is not deployable here, Docker could not be observed, the broker
/// could not be asked, the state directory failed before any change).
pub async fn deploy<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    options: &DeployOptions,
) -> Result<DeployReport> {
    let name = env.name().to_string();
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
    let _lock = ctx
        .state
        .lock_environment_async(&name, options.holder, options.lock_wait)
        .await
        .map_err(state_err)?;
    let mut run = Run::new(ctx, env);

    // 1. pre-snapshot
    let started = Instant::now();
    let project = project_of(env);
    let pre = run.snapshot(&project).await?;
    check_services_exist(env, &run.model)?;
    run.report.pre_snapshot = Some(
        ctx.state
            .write_snapshot(&name, "pre", &pre)
            .map_err(state_err)?,
    );
    run.step(MetricStep::Snapshot, started, true);

    // 2. plan: an unreadable status stops here (planning as if nothing was applied would
    // redeploy and re-record everything).
    let applied = try_applied_state(&ctx.state, &name).map_err(state_err)?;
    let changed = plan::changed_services(env, &applied, &pre.containers);
    run.report.changed = changed.clone();
    run.report.plan = describe_plan(env, &changed);
    run.audit("plan", "ok", &run.report.plan.clone());
    if changed.is_empty() {
        run.report.outcome = Outcome::UpToDate;
        return run.finish(None).await;
    }
    let to_apply: Vec<String> = changed
        .iter()
        .filter(|s| env.pinned_services().contains(s))
        .cloned()
        .collect();
    let pins = desired_pins(env);
    if options.dry_run {
        run.report.outcome = Outcome::DryRun;
        run.report.hints = dry_run_lines(env, &project, &pins, &to_apply);
        return Ok(run.report);
    }

    // 3. gate
    let to_record = candidates(env, &changed);
    if let Some(spec) = &env.manifest.spec.broker
        && !to_record.is_empty()
    {
        let started = Instant::now();
        match ask_gate(ctx, env, spec, &to_record).await {
            Ok(entries) => run.report.gate = entries,
            Err(error) => {
                run.step(MetricStep::Gate, started, false);
                run.audit("gate", "error", &error_chain(&error));
                return Err(error);
            }
        }
        let passed = run.report.gate_passed();
        run.step(MetricStep::Gate, started, passed);
        if let Some(metrics) = &ctx.metrics {
            for entry in &run.report.gate {
                metrics.observe_gate_check(&name, verdict_label(entry.answer.verdict));
            }
        }
        if !passed {
            let reasons = run.report.gate_reasons();
            run.audit("gate", "blocked", &reasons.join("; "));
            run.report.outcome = Outcome::GateBlocked;
            run.report.hints = reasons;
            return run.finish(None).await;
        }
        run.audit("gate", "ok", "broker says deployable");
    }

    // Journal the intent before the first side effect.
    let records: Vec<PendingRecord> = to_record
        .iter()
        .map(|candidate| pending_record(ctx, env, candidate))
        .collect();
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
        changed_services: to_apply.clone(),
        records: records.clone(),
        step: Step::Started,
    };
    ctx.state.write_intent(&name, &intent).map_err(state_err)?;

    // 4-6. pull, up, readiness, smoke, verify: a failure rolls back per policy.
    if !to_apply.is_empty()
        && let Err((step, cause)) = run
            .apply(&project, &pins, &to_apply, options, &mut intent)
            .await
    {
        let mode = options
            .rollback
            .unwrap_or(env.manifest.spec.policy.rollback);
        let outcome = roll_back(&mut run, &project, &pre, &to_apply, mode, step, &cause).await;
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
    write_applied(ctx, env)?;
    ctx.state.clear_intent(&name).map_err(state_err)?;
    let started = Instant::now();
    // The whole outbox goes out oldest first: a record of an earlier deploy still pending is
    // sent before this deploy's, or the broker would call the older version current (issue 6).
    let queued = match ctx.state.outbox_list(&name) {
        Ok((queued, _)) => queued,
        Err(_) => records.clone(),
    };
    let items = record_all(ctx, env, &queued).await;
    let all_recorded = items.iter().all(|i| i.status == RecordStatus::Recorded);
    run.step(MetricStep::Record, started, all_recorded);
    run.report.records = items;
    run.report.outcome = if all_recorded {
        Outcome::Deployed
    } else {
        Outcome::RecordFailed
    };
    run.finish(Some(&project)).await
}

/// Asks the broker about the changed services without touching anything (`c2quay verify`).
pub async fn verify<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Context<C, B, S>,
    env: &Environment,
) -> Result<DeployReport> {
    let mut run = Run::new(ctx, env);
    let project = project_of(env);
    let observed = ctx
        .compose
        .ps(&project)
        .await
        .map_err(|source| Error::Observe {
            environment: env.name().to_string(),
            step: "snapshot",
            source,
        })?;
    let applied = try_applied_state(&ctx.state, env.name()).map_err(|source| Error::State {
        environment: env.name().to_string(),
        source,
    })?;
    let mut changed = plan::changed_services(env, &applied, &observed);
    if changed.is_empty() {
        // Nothing changes: verify answers for the desired versions anyway.
        changed = env.gated_services();
    }
    run.report.changed = changed.clone();
    let candidates = candidates(env, &changed);
    if let Some(spec) = &env.manifest.spec.broker
        && !candidates.is_empty()
    {
        run.report.gate = ask_gate(ctx, env, spec, &candidates).await?;
    }
    run.report.outcome = if run.report.gate_passed() {
        Outcome::Deployed
    } else {
        Outcome::GateBlocked
    };
    Ok(run.report)
}

/// Re-applies the applied release of drifted services: no gate, no record (`selfHeal`).
pub async fn heal<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    services: &[String],
    options: &DeployOptions,
) -> Result<DeployReport> {
    let name = env.name().to_string();
    let state_err = |source| Error::State {
        environment: name.clone(),
        source,
    };
    let _lock = ctx
        .state
        .lock_environment_async(&name, options.holder, options.lock_wait)
        .await
        .map_err(state_err)?;
    let mut run = Run::new(ctx, env);
    let project = project_of(env);
    let started = Instant::now();
    let _pre = run.snapshot(&project).await?;
    run.step(MetricStep::Snapshot, started, true);
    let applied = try_applied_state(&ctx.state, &name).map_err(state_err)?;
    let mut pins = desired_pins(env);
    for (service, release) in &applied.releases {
        pins.insert(service.clone(), release.image.clone());
    }
    run.report.changed = services.to_vec();
    run.report.plan = format!("heal {}", services.join(", "));
    let started = Instant::now();
    let up = ctx
        .compose
        .up(&project, &run.model, &pins, services, &UpOptions::default())
        .await;
    run.step(MetricStep::Up, started, up.is_ok());
    let ready = match up {
        Ok(()) => {
            let started = Instant::now();
            let ready = ctx
                .compose
                .wait_ready(&project, &run.model, services, env.wait_timeout())
                .await;
            run.step(MetricStep::Readiness, started, ready.is_ok());
            ready.map(|_| ())
        }
        Err(error) => Err(error),
    };
    run.report.outcome = match ready {
        Ok(()) => Outcome::Deployed,
        Err(error) => Outcome::RollbackFailed {
            failed_step: "heal".into(),
            cause: error_chain(&error),
            rollback: "a heal is not rolled back".into(),
        },
    };
    run.finish(Some(&project)).await
}

/// Asks the broker about `candidates`: one query for an all-or-nothing set of 2+, else one per
/// candidate. Entries come back in the candidates' order.
async fn ask_gate<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    spec: &crate::manifest::BrokerSpec,
    candidates: &[Candidate],
) -> Result<Vec<GateEntry>> {
    let gate_error = |source| Error::Gate {
        environment: env.name().to_string(),
        source,
    };
    let client = ctx.brokers.client(spec).map_err(gate_error)?;
    let mode = if spec.all_or_nothing && candidates.len() >= 2 {
        GateMode::AllOrNothing
    } else {
        GateMode::PerService
    };
    let answers = client
        .can_i_deploy(&spec.environment, candidates, mode)
        .await
        .map_err(gate_error)?;
    Ok(match mode {
        GateMode::AllOrNothing => answers
            .into_iter()
            .map(|answer| GateEntry {
                candidates: candidates.to_vec(),
                answer,
            })
            .collect(),
        GateMode::PerService => candidates
            .iter()
            .zip(answers)
            .map(|(candidate, answer)| GateEntry {
                candidates: vec![candidate.clone()],
                answer,
            })
            .collect(),
    })
}

/// The state of one run: the report being built and the rendered model.
pub(super) struct Run<'a, C, B, S> {
    pub(super) ctx: &'a Context<C, B, S>,
    pub(super) env: &'a Environment,
    pub(super) report: DeployReport,
    /// The rendered model observed by the last snapshot: every later step of the run uses it
    /// instead of asking `docker compose config` again.
    pub(super) model: crate::compose::RenderedModel,
    /// The project's containers as last observed (snapshot, then readiness).
    observed: Vec<Container>,
}

impl<'a, C: Compose, B: Brokers, S: Smoke> Run<'a, C, B, S> {
    fn new(ctx: &'a Context<C, B, S>, env: &'a Environment) -> Self {
        Run {
            ctx,
            env,
            report: DeployReport::new(env.name(), &env.generation),
            model: Default::default(),
            observed: Vec::new(),
        }
    }

    /// Observes the project: rendered model and containers, asked of Compose concurrently.
    pub(super) async fn snapshot(&mut self, project: &Project) -> Result<Snapshot> {
        let (model, containers) = tokio::join!(
            self.ctx.compose.config(project),
            self.ctx.compose.ps(project)
        );
        self.model = model.map_err(|source| self.observe_error(source))?;
        let containers = containers.map_err(|source| self.observe_error(source))?;
        Ok(self.snapshot_of(project, containers))
    }

    /// Observes the containers only, with the model of the last [`Run::snapshot`]: the model
    /// cannot have changed under the environment lock, the containers can.
    async fn containers_snapshot(&mut self, project: &Project) -> Result<Snapshot> {
        let containers =
            (self.ctx.compose.ps(project).await).map_err(|source| self.observe_error(source))?;
        Ok(self.snapshot_of(project, containers))
    }

    fn observe_error(&self, source: crate::compose::Error) -> Error {
        Error::Observe {
            environment: self.env.name().to_string(),
            step: "snapshot",
            source,
        }
    }

    fn snapshot_of(&mut self, project: &Project, containers: Vec<Container>) -> Snapshot {
        self.observed = containers.clone();
        Snapshot {
            environment: self.env.name().to_string(),
            project: project.name.clone(),
            generation: self.env.generation.clone(),
            taken_at: humantime::format_rfc3339_millis(self.ctx.clock.now()).to_string(),
            containers,
            rendered: self
                .model
                .iter()
                .map(|(s, r)| (s.clone(), r.image.clone()))
                .collect(),
        }
    }

    /// Records a step's timing in the report, the metrics and the audit log.
    pub(super) fn step(&mut self, step: MetricStep, started: Instant, ok: bool) {
        let elapsed = started.elapsed();
        self.report.steps.push(StepTiming {
            step: step.as_str().to_string(),
            millis: elapsed.as_millis() as u64,
            result: if ok { "ok" } else { "failed" }.to_string(),
        });
        if let Some(metrics) = &self.ctx.metrics {
            metrics.observe_step(self.env.name(), step, elapsed);
        }
        info!(environment = self.env.name(), generation = %self.env.generation, step = step.as_str(), ok, millis = elapsed.as_millis() as u64, "step done");
    }

    /// Appends one line to the environment's audit log (failures only warn: the log is advisory).
    pub(super) fn audit(&self, step: &str, outcome: &str, message: &str) {
        let event = state::AuditEvent::new(
            self.ctx.clock.now(),
            self.env.name(),
            step,
            outcome,
            message,
        )
        .with_generation(self.env.generation.clone());
        if let Err(error) = self.ctx.state.append_audit(self.env.name(), &event) {
            warn!(environment = self.env.name(), error = %error_chain(&error), "cannot append to the audit log");
        }
    }

    /// pull -> up -> readiness -> smoke -> verify. `Err((step, cause))` on the first failure.
    async fn apply(
        &mut self,
        project: &Project,
        pins: &ImagePins,
        services: &[String],
        options: &DeployOptions,
        intent: &mut Intent,
    ) -> std::result::Result<(), (&'static str, String)> {
        let ctx = self.ctx;
        let env = self.env;
        let name = env.name();
        let service_pins: ImagePins = services
            .iter()
            .filter_map(|s| pins.get(s).map(|i| (s.clone(), i.clone())))
            .collect();
        let policy = env.manifest.spec.compose.pull;
        if policy != PullPolicy::Never {
            let started = Instant::now();
            let pulled = ctx
                .compose
                .pull_with_policy(project, &self.model, &service_pins, services, policy)
                .await;
            self.step(MetricStep::Pull, started, pulled.is_ok());
            self.check("pull", pulled.map_err(|e| error_chain(&e)))?;
        }
        intent.step = Step::Pulled;
        self.write_intent(intent);
        // Leftovers of an interrupted recreate (seen by the pre-snapshot: nothing else recreates
        // under the lock) would make `up` fail on a name conflict.
        if (self.observed.iter()).any(|c| compose::parse::is_leftover_name(&c.name)) {
            match ctx.compose.remove_leftovers(project).await {
                Ok(removed) => {
                    let names: Vec<&str> = removed.iter().map(|c| c.name.as_str()).collect();
                    self.audit("leftovers", "removed", &names.join(", "));
                }
                Err(error) => {
                    warn!(environment = name, error = %error_chain(&error), "cannot remove leftovers")
                }
            }
        }
        let started = Instant::now();
        let up_options = UpOptions {
            force_recreate: options.force_recreate,
            remove_orphans: env.manifest.spec.policy.remove_orphans,
        };
        let up = (ctx.compose)
            .up(project, &self.model, pins, services, &up_options)
            .await;
        self.step(MetricStep::Up, started, up.is_ok());
        self.check("up", up.map_err(|e| error_chain(&e)))?;
        intent.step = Step::UpDone;
        self.write_intent(intent);
        let started = Instant::now();
        let ready = ctx
            .compose
            .wait_ready(project, &self.model, services, env.wait_timeout())
            .await;
        self.step(MetricStep::Readiness, started, ready.is_ok());
        let ready = ready.map(|containers| self.observed = containers);
        self.check("readiness", ready.map_err(|e| error_chain(&e)))?;
        intent.step = Step::Ready;
        self.write_intent(intent);
        if !env.manifest.spec.smoke.is_empty() {
            let started = Instant::now();
            let smoke = run_smoke(ctx, env).await;
            self.step(MetricStep::Smoke, started, smoke.is_ok());
            self.check("smoke", smoke)?;
        }
        let started = Instant::now();
        // Readiness's last observation is the proof: image ids change only by a recreate.
        let verified = verify_pins(&service_pins, &self.model, &self.observed);
        self.step(MetricStep::Verify, started, verified.is_ok());
        self.check("verify", verified)?;
        info!(environment = name, "apply, readiness and smoke passed");
        Ok(())
    }

    fn check(
        &self,
        step: &'static str,
        result: std::result::Result<(), String>,
    ) -> std::result::Result<(), (&'static str, String)> {
        match result {
            Ok(()) => {
                self.audit(step, "ok", "");
                Ok(())
            }
            Err(cause) => {
                self.audit(step, "failed", &cause);
                Err((step, cause))
            }
        }
    }

    fn write_intent(&self, intent: &Intent) {
        if let Err(error) = self.ctx.state.write_intent(self.env.name(), intent) {
            warn!(environment = self.env.name(), error = %error_chain(&error), "cannot update the journal");
        }
    }

    /// Post-snapshot, report, audit line; returns the report.
    pub(super) async fn finish(mut self, project: Option<&Project>) -> Result<DeployReport> {
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
        let outcome = self.report.outcome.name();
        self.audit("result", outcome, &self.report.plan.clone());
        Ok(self.report)
    }
}

/// Runs every smoke check of the manifest in order; the first failure stops.
pub(super) async fn run_smoke<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Context<C, B, S>,
    env: &Environment,
) -> std::result::Result<(), String> {
    let smoke_ctx = SmokeContext {
        environment: env.name().to_string(),
        env_vars: BTreeMap::new(),
    };
    for check in &env.manifest.spec.smoke {
        let result = ctx
            .smoke
            .run(check, &smoke_ctx)
            .await
            .map_err(|e| format!("smoke check {:?}: {}", check.name, error_chain(&e)))?;
        // A failed check is a result with `passed: false`, not an `Err`.
        if !result.passed {
            return Err(format!(
                "smoke check {:?} failed after {} attempt(s): {}",
                check.name,
                result.attempts,
                result.last_failure.as_deref().unwrap_or("no reason given")
            ));
        }
    }
    Ok(())
}

/// Checks that each pinned service's container runs the pinned image. A one-shot service
/// (restart `no` or `on-failure`) that exited 0 counts: readiness accepted it as done.
fn verify_pins(
    pins: &ImagePins,
    model: &crate::compose::RenderedModel,
    containers: &[Container],
) -> std::result::Result<(), String> {
    for (service, image) in pins {
        let one_shot = model
            .get(service)
            .is_some_and(|m| match m.restart.as_deref() {
                None => true,
                Some(r) => r == "no" || r.starts_with("on-failure"),
            });
        let running = containers
            .iter()
            .find(|c| &c.service == service && c.state == "running")
            .or_else(|| {
                containers.iter().find(|c| {
                    &c.service == service && one_shot && c.state == "exited" && c.exit_code == 0
                })
            });
        match running {
            Some(container) if &container.image == image => {}
            Some(container) => {
                return Err(format!(
                    "service {service} runs {} ({}), not the pinned {image}",
                    container.image, container.image_id
                ));
            }
            None => return Err(format!("service {service} has no running container")),
        }
    }
    Ok(())
}

/// Records every pending record; failures stay in the outbox. Items in input order.
pub(super) async fn record_all<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    records: &[PendingRecord],
) -> Vec<RecordItem> {
    let mut items = Vec::new();
    let Some(spec) = &env.manifest.spec.broker else {
        return items;
    };
    let client = match ctx.brokers.client(spec) {
        Ok(client) => client,
        Err(error) => {
            let message = error_chain(&error);
            return records
                .iter()
                .map(|r| RecordItem {
                    candidate: Candidate {
                        pacticipant: r.pacticipant.clone(),
                        version: r.version.clone(),
                    },
                    status: RecordStatus::Failed,
                    error: Some(message.clone()),
                })
                .collect();
        }
    };
    // Set by the first failure: later records wait for it (they must not overtake it).
    let mut pending_head: Option<PendingRecord> = None;
    for record in records {
        let candidate = Candidate {
            pacticipant: record.pacticipant.clone(),
            version: record.version.clone(),
        };
        if let Some(head) = &pending_head {
            let message = format!(
                "not sent: waits for the older record of {} {}",
                head.pacticipant, head.version
            );
            let mut waiting = record.clone();
            waiting.last_error = Some(message.clone());
            waiting.next_attempt_at = head.next_attempt_at;
            if let Err(error) = ctx.state.outbox_update(env.name(), &waiting) {
                warn!(environment = env.name(), error = %error_chain(&error), "cannot update the outbox entry");
            }
            items.push(RecordItem {
                candidate,
                status: RecordStatus::Failed,
                error: Some(message),
            });
            continue;
        }
        let result = client
            .record_deployment(
                &record.broker_environment,
                &candidate,
                record.application_instance.as_deref(),
            )
            .await;
        let item = match result {
            Ok(()) => {
                if let Err(error) = ctx.state.outbox_remove(env.name(), &record.id) {
                    warn!(environment = env.name(), error = %error_chain(&error), "recorded, but the outbox entry could not be removed");
                }
                RecordItem {
                    candidate,
                    status: RecordStatus::Recorded,
                    error: None,
                }
            }
            Err(error) => {
                let message = error_chain(&error);
                let mut failed = record.clone();
                let delay = super::recover::record_retry_delay(failed.attempts + 1);
                failed.record_failure(&message, ctx.clock.now(), delay);
                if let Err(error) = ctx.state.outbox_update(env.name(), &failed) {
                    warn!(environment = env.name(), error = %error_chain(&error), "cannot update the outbox entry");
                }
                pending_head = Some(failed);
                RecordItem {
                    candidate,
                    status: RecordStatus::Failed,
                    error: Some(message),
                }
            }
        };
        if let Some(metrics) = &ctx.metrics {
            metrics.observe_record(
                env.name(),
                if item.status == RecordStatus::Recorded {
                    MetricOutcome::Succeeded
                } else {
                    MetricOutcome::Failed
                },
            );
        }
        items.push(item);
    }
    items
}

/// The applied state the planner compares against, from the status file (empty when none).
/// A corrupt or unreadable status file is an error naming the file: the pipeline stops.
pub fn try_applied_state(
    state: &state::StateDir,
    environment: &str,
) -> std::result::Result<AppliedState, state::Error> {
    Ok(state
        .read_status(environment)?
        .map(|status| super::status::applied_state_of(&status))
        .unwrap_or_default())
}

/// Like [`try_applied_state`], but an unreadable status only warns and counts as "nothing
/// applied". For read-only views (`c2quay plan`); the pipeline uses [`try_applied_state`].
pub fn applied_state(state: &state::StateDir, environment: &str) -> AppliedState {
    match state.read_status(environment) {
        Ok(Some(status)) => super::status::applied_state_of(&status),
        Ok(None) => AppliedState::default(),
        Err(error) => {
            warn!(environment, error = %error_chain(&error), "status unreadable; planning as if nothing was applied");
            AppliedState::default()
        }
    }
}

/// Stores what now runs as the applied release (generation and per-service images).
fn write_applied<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Context<C, B, S>,
    env: &Environment,
) -> Result<()> {
    let now = ctx.clock.now();
    update_status(&ctx.state, env.name(), |status| {
        super::status::record_applied(status, env, now)
    })
}

/// Reads, changes and writes the status of `environment` (a fresh one when there is none).
/// A corrupt status is an error, never silently replaced: it holds history and backoff.
pub fn update_status(
    state: &state::StateDir,
    environment: &str,
    change: impl FnOnce(&mut state::EnvironmentStatus),
) -> Result<()> {
    let state_err = |source| Error::State {
        environment: environment.to_string(),
        source,
    };
    let mut status = state
        .read_status(environment)
        .map_err(state_err)?
        .unwrap_or_else(|| state::EnvironmentStatus::new(environment));
    change(&mut status);
    state.write_status(environment, &status).map_err(state_err)
}

/// Service -> desired image for every pinned service.
pub fn desired_pins(env: &Environment) -> ImagePins {
    env.pinned_services()
        .into_iter()
        .filter_map(|s| env.pinned_image(&s).map(|image| (s, image)))
        .collect()
}

/// The broker candidates among `services`, in service order.
pub fn candidates(env: &Environment, services: &[String]) -> Vec<Candidate> {
    let gated = env.gated_services();
    services
        .iter()
        .filter(|s| gated.contains(s))
        .filter_map(|s| {
            env.manifest.spec.services[s]
                .version
                .as_ref()
                .map(|v| Candidate {
                    pacticipant: env.pacticipant(s),
                    version: v.clone(),
                })
        })
        .collect()
}

fn pending_record<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    candidate: &Candidate,
) -> PendingRecord {
    let broker = env.manifest.spec.broker.as_ref();
    PendingRecord::new(
        env.name(),
        &env.generation,
        broker.map(|b| b.environment.as_str()).unwrap_or_default(),
        &candidate.pacticipant,
        &candidate.version,
        broker.and_then(|b| b.application_instance.as_deref()),
        ctx.clock.now(),
    )
}

fn describe_plan(env: &Environment, changed: &[String]) -> String {
    if changed.is_empty() {
        return format!("generation {}: up to date", env.generation);
    }
    let parts: Vec<String> = changed
        .iter()
        .map(|s| {
            let spec = &env.manifest.spec.services[s];
            match (env.pinned_image(s), &spec.version) {
                (Some(image), Some(v)) if !spec.gate_only => format!("{s} -> {v} ({image})"),
                (Some(image), _) => format!("{s} -> {image}"),
                (None, Some(v)) => format!("{s} -> {v} (gate only)"),
                (None, None) => s.clone(),
            }
        })
        .collect();
    format!("generation {}: deploy {}", env.generation, parts.join(", "))
}

fn dry_run_lines(
    env: &Environment,
    project: &Project,
    pins: &ImagePins,
    services: &[String],
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
    for candidate in candidates(env, services) {
        lines.push(format!(
            "  record {} {} after smoke",
            candidate.pacticipant, candidate.version
        ));
    }
    lines
}

fn verdict_label(verdict: Verdict) -> GateResult {
    match verdict {
        Verdict::Deployable => GateResult::Deployable,
        Verdict::NotDeployable => GateResult::NotDeployable,
        Verdict::Unknown => GateResult::Unknown,
    }
}

/// An error and all its sources, `: `-joined (reqwest and io hide the cause otherwise).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
