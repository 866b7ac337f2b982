//! [`Run`]: the bookkeeping of one flow: the report being built, the rendered model every step
//! uses, the last observation of the containers, step timings and events.

use std::time::Instant;

use tracing::warn;

use super::{Context, DeployReport, StepFailure, StepTiming};
use crate::docker::{Container, RenderedModel};
use crate::error_chain;
use crate::events::{PipelineEvent, Scope, StepName};
use crate::manifest::Environment;
use crate::state::Intent;

/// The state of one flow over one environment.
pub(super) struct Run<'a, C, B, S> {
    /// Everything with side effects.
    pub(super) ctx: &'a Context<C, B, S>,
    /// The environment worked on.
    pub(super) env: &'a Environment,
    /// The report being built.
    pub(super) report: DeployReport,
    /// The rendered model observed by the last snapshot: every later step of the run uses it
    /// instead of asking `docker compose config` again.
    pub(super) model: RenderedModel,
    /// The project's containers as last observed (snapshot, then readiness).
    pub(super) observed: Vec<Container>,
    pub(super) scope: Scope,
}

impl<'a, C, B, S> Run<'a, C, B, S> {
    /// A run with nothing done yet.
    pub(super) fn new(ctx: &'a Context<C, B, S>, env: &'a Environment) -> Self {
        Run {
            ctx,
            env,
            report: DeployReport::new(env.name(), &env.generation),
            model: Default::default(),
            observed: Vec::new(),
            scope: Scope {
                environment: env.name().to_string(),
                generation: env.generation.clone(),
                revision: None,
            },
        }
    }

    /// Sends `event` to the context's sinks.
    pub(super) fn emit(&self, event: PipelineEvent) {
        self.ctx.events.emit(&self.scope, &event);
    }

    /// Starts `step`: says so as an event and returns its start time for [`Run::end_step`].
    pub(super) fn start_step(&self, step: StepName) -> Instant {
        self.emit(PipelineEvent::StepStarted { step });
        Instant::now()
    }

    /// Ends `step` (started at `started`): its timing goes into the report and out as an event.
    pub(super) fn end_step(&mut self, step: StepName, started: Instant, failure: Option<&str>) {
        let elapsed = started.elapsed();
        self.report.steps.push(StepTiming {
            step,
            millis: elapsed.as_millis() as u64,
            result: if failure.is_none() { "ok" } else { "failed" }.to_string(),
        });
        self.emit(PipelineEvent::StepFinished {
            step,
            elapsed,
            failure: failure.map(str::to_string),
        });
    }

    /// Ends `step` with `result`: a failure becomes a [`StepFailure`] naming the step.
    pub(super) fn check<T>(
        &mut self,
        step: StepName,
        started: Instant,
        result: Result<T, String>,
    ) -> Result<T, StepFailure> {
        match result {
            Ok(value) => {
                self.end_step(step, started, None);
                Ok(value)
            }
            Err(cause) => {
                self.end_step(step, started, Some(&cause));
                Err(StepFailure::new(step, cause))
            }
        }
    }

    /// Writes the journal's intent; a failure only warns (the previous intent still recovers).
    pub(super) fn write_intent(&self, intent: &Intent) {
        if let Err(error) = self.ctx.state.write_intent(self.env.name(), intent) {
            warn!(environment = self.env.name(), error = %error_chain(&error), "cannot update the journal");
        }
    }
}
