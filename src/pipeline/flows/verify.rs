//! The verify flow (`c2quay verify`): the gate alone, read-only.

use super::super::run::Run;
use super::super::steps::gate::ask_gate;
use super::super::{
    Brokers, Context, DeployReport, Error, Outcome, Result, candidates, project_of,
};
use crate::docker::Compose;
use crate::events::StepName;
use crate::manifest::Environment;
use crate::plan;

/// Asks the broker about the changed services (the desired versions when nothing changed)
/// without touching anything; with `only` (`--service`), about those services alone.
pub async fn verify<C: Compose, B: Brokers, S>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    only: Option<&[String]>,
) -> Result<DeployReport> {
    super::deploy::check_selection(env, only)?;
    let mut run = Run::new(ctx, env);
    let project = project_of(env);
    let observed = ctx
        .compose
        .ps(&project)
        .await
        .map_err(|source| Error::Observe {
            environment: env.name().to_string(),
            step: StepName::Snapshot,
            source,
        })?;
    let applied =
        super::super::try_applied_state(&ctx.state, env.name()).map_err(|source| Error::State {
            environment: env.name().to_string(),
            source,
        })?;
    let mut changed = plan::changed_services(env, &applied, &observed);
    if changed.is_empty() {
        // Nothing changes: verify answers for the desired versions anyway.
        changed = env.gated_services();
    }
    if let Some(only) = only {
        changed.retain(|s| only.contains(s));
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
