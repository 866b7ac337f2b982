//! Smoke: every smoke check of the manifest, in order; the first failure stops.

use std::collections::BTreeMap;

use super::super::run::Run;
use super::super::{Brokers, Context, StepFailure};
use crate::error_chain;
use crate::events::StepName;
use crate::manifest::Environment;
use crate::smoke::{Smoke, SmokeContext};

/// Runs the smoke checks of `env`; `Err` says which check failed and why.
pub(in crate::pipeline) async fn run_smoke<C, B: Brokers, S: Smoke>(
    ctx: &Context<C, B, S>,
    env: &Environment,
) -> Result<(), String> {
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

impl<C, B: Brokers, S: Smoke> Run<'_, C, B, S> {
    /// The smoke step (no step at all when the manifest has no checks).
    pub(in crate::pipeline) async fn smoke(&mut self) -> Result<(), StepFailure> {
        if self.env.manifest.spec.smoke.is_empty() {
            return Ok(());
        }
        let started = self.start_step(StepName::Smoke);
        let smoke = run_smoke(self.ctx, self.env).await;
        self.check(StepName::Smoke, started, smoke)
    }
}
