//! `c2quay deploy`, `c2quay verify` and `c2quay rollback`: one environment, now, from the CLI.

use std::path::PathBuf;
use std::time::Duration;

use super::common::{HostArgs, RealContext, load_environment, print_data, real_context};
use super::interrupt::{Interrupted, signal_name, until_interrupted};
use super::{Dirs, EXIT_CODES, LogFormat, Output};
use crate::manifest::{Environment, RollbackMode};
use crate::pipeline::{self, DeployOptions, DeployReport, Outcome, RecordStatus, error_chain};
use crate::state::{EnvLock, HistoryEntry};

/// Arguments of `c2quay deploy`.
#[derive(Debug, clap::Args)]
#[command(after_help = format!("Examples:\n  c2quay deploy shop-staging --desired desired --state-dir /var/lib/c2quay\n  c2quay deploy shop-staging --dry-run\n\n{EXIT_CODES}"))]
pub struct DeployArgs {
    /// The environment (its `metadata.name`).
    pub environment: String,
    /// Directories.
    #[command(flatten)]
    pub dirs: Dirs,
    /// The host this runs on.
    #[command(flatten)]
    pub host: HostArgs,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Recreate containers even when the image reference is unchanged (a rebuilt tag).
    #[arg(long)]
    pub force_recreate: bool,
    /// Override `policy.rollback` for this run.
    #[arg(long, value_parser = parse_rollback)]
    pub rollback: Option<RollbackMode>,
    /// How long to wait for the environment lock held by another run.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub lock_wait: Duration,
    /// After SIGINT or SIGTERM, how long the deploy may go on to finish its step (or its
    /// rollback) before it is abandoned to the journal; a second signal abandons it at once.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// Apply only this service's changes (repeatable): gate, up, smoke, verify and record for
    /// it; the other changed services keep what runs and the environment shows `OutOfSync`.
    /// A running agent applies the rest at its next reconcile. Refused for an all-or-nothing
    /// environment (its releases deploy as one verified set).
    #[arg(long = "service", value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Arguments of `c2quay verify`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Asks the broker about the versions that would be deployed; changes nothing.\nExit 0 when deployable, 3 when not (or unknown) or when the broker could not be asked, 1 on other errors."
)]
pub struct VerifyArgs {
    /// The environment.
    pub environment: String,
    /// Directories.
    #[command(flatten)]
    pub dirs: Dirs,
    /// Ask only about this service's release (repeatable).
    #[arg(long = "service", value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Arguments of `c2quay rollback`.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The environment.
    pub environment: String,
    /// Directories.
    #[command(flatten)]
    pub dirs: Dirs,
    /// The host this runs on.
    #[command(flatten)]
    pub host: HostArgs,
    /// The snapshot to restore (default: the newest pre-deploy snapshot).
    #[arg(long)]
    pub from_snapshot: Option<PathBuf>,
    /// How long to wait for the environment lock.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub lock_wait: Duration,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

fn parse_rollback(text: &str) -> Result<RollbackMode, String> {
    match text {
        "on" => Ok(RollbackMode::On),
        "off" => Ok(RollbackMode::Off),
        "dry-run" => Ok(RollbackMode::DryRun),
        other => Err(format!("{other:?} is not one of on, off, dry-run")),
    }
}

/// Adds the live progress on stderr to `ctx`, unless the logs are JSON (then every stderr line
/// is a JSON object, and the log carries each step).
fn with_progress(mut ctx: RealContext, log_format: LogFormat) -> RealContext {
    use std::io::IsTerminal;
    if log_format == LogFormat::Text {
        let sink = super::progress::ProgressSink::new(std::io::stderr().is_terminal());
        ctx.events = ctx.events.with(std::sync::Arc::new(sink));
    }
    ctx
}

/// Runs `deploy`.
pub async fn deploy(args: DeployArgs, log_format: LogFormat) -> i32 {
    let env = match load_environment(&args.dirs.desired, &args.environment) {
        Ok(env) => env,
        Err(message) => return fail(&message),
    };
    if let Err(message) = args.host.check(&env) {
        return fail(&message);
    }
    let ctx = match real_context(&args.dirs.state_dir, None).await {
        Ok(ctx) => with_progress(ctx, log_format),
        Err(message) => return fail(&message),
    };
    if let Ok(Some(status)) = ctx.state.read_status(env.name()) {
        // As `flux reconcile` of a suspended resource: say so and change nothing.
        if let Some(s) = status.suspended.filter(|s| s.generation == env.generation) {
            let name = env.name();
            return fail(&format!(
                "{name} is {}: nothing deployed; `c2quay resume {name}` first",
                s.describe()
            ));
        }
    }
    let options = DeployOptions {
        rollback: args.rollback,
        dry_run: args.dry_run,
        force_recreate: args.force_recreate,
        lock_wait: args.lock_wait,
        holder: "deploy",
        model: None,
        only: (!args.services.is_empty()).then(|| args.services.clone()),
        revision: desired_revision(&args.dirs.desired).await,
    };
    let started = std::time::Instant::now();
    let started_at = ctx.clock.now();
    // The deploy and its status write happen under one hold of the environment lock: nothing
    // (the agent, a `retry`) can write the status in between.
    let deploying = pipeline::with_env_lock(
        &ctx.state,
        env.name(),
        "deploy",
        args.lock_wait,
        async |lock| {
            let report = pipeline::deploy_sending_pending(&ctx, &env, &options, lock).await?;
            let run = (&options.revision, started_at, started);
            let written = write_outcome(&ctx, &env, &report, lock, run);
            Ok((report, written))
        },
    );
    let what = format!("the deploy of {}", env.name());
    let (deployed, signalled) = match until_interrupted(deploying, args.grace, &what).await {
        Interrupted::No(deployed) => (deployed, None),
        Interrupted::Finished(deployed, code) => (deployed, Some(code)),
        Interrupted::Abandoned(code) => return abandoned(&ctx, &env, code),
    };
    let code = deploy_exit(deployed, &args);
    match signalled {
        Some(signal) => {
            eprintln!(
                "c2quay: interrupted by {}; the deploy of {} finished first (exit {code} without the signal)",
                signal_name(signal),
                env.name()
            );
            signal
        }
        None => code,
    }
}

/// What an abandoned deploy left, on stderr; the exit code of the signal.
fn abandoned(ctx: &RealContext, env: &Environment, code: i32) -> i32 {
    let name = env.name();
    match ctx.state.read_intent(name) {
        Ok(Some(intent)) => eprintln!(
            "c2quay: abandoned the deploy of {name} ({}) after step {:?}: the journal keeps it; \
             `c2quay deploy {name}` or the agent resumes it from there",
            signal_name(code),
            intent.step
        ),
        _ => eprintln!(
            "c2quay: abandoned the deploy of {name} ({}) before it changed anything on the host",
            signal_name(code)
        ),
    }
    code
}

/// Prints a finished deploy's report (or error) and returns its exit code.
fn deploy_exit(
    deployed: pipeline::Result<(DeployReport, Result<(), String>)>,
    args: &DeployArgs,
) -> i32 {
    match deployed {
        Ok((report, written)) => {
            // Keep the status in step for `c2quay status` and the agent (the agent does the same
            // after its own deploys): phase, failed generation, conditions, history.
            if let Err(message) = written {
                eprintln!(
                    "warning: the status of {} was not updated: {message}",
                    args.environment
                );
            }
            if !print_data(&report, args.output) {
                print_report(&report);
            }
            if report.outcome.exit_code() != 0 {
                print_hint(&report, &args.environment);
            }
            report.outcome.exit_code()
        }
        Err(error) => {
            let code = if matches!(error, pipeline::Error::Gate { .. }) {
                3
            } else {
                1
            };
            eprintln!("error: {}", error_chain(&error));
            eprintln!("nothing on the host was changed.");
            code
        }
    }
}

/// Writes the outcome of a deploy into the environment's status; the caller holds the lock.
/// A dry run changes nothing.
fn write_outcome(
    ctx: &RealContext,
    env: &Environment,
    report: &DeployReport,
    lock: &EnvLock,
    (revision, started_at, started): (&Option<String>, std::time::SystemTime, std::time::Instant),
) -> Result<(), String> {
    if report.outcome == Outcome::DryRun {
        return Ok(());
    }
    let name = env.name();
    let now = ctx.clock.now();
    let (pending, _) = ctx.state.outbox_list(name).unwrap_or_default();
    crate::status::update(&ctx.state, lock, |status| {
        pipeline::status_after(status, env, report, now);
        status.pending_records = pending.len();
        status.last_reconcile_at = Some(now);
        status.last_result = Some(report.outcome.name().to_string());
        status.last_action = Some("deploy".to_string());
        status.observed_revision = revision.clone();
        status.push_history(HistoryEntry {
            at: started_at,
            generation: Some(env.generation.clone()),
            revision: revision.clone(),
            action: "deploy (cli)".to_string(),
            reason: report.plan.clone(),
            result: report.outcome.name().to_string(),
            duration_ms: started.elapsed().as_millis() as u64,
        });
    })
    .map_err(|e| error_chain(&e))
}

/// The commit of the desired checkout (`main@sha1:<hex>`), when it is a git work tree; a
/// failure to read it is a warning, not a reason not to deploy.
async fn desired_revision(desired: &std::path::Path) -> Option<String> {
    match crate::git::read_revision(desired).await {
        Ok(revision) => revision.map(|r| r.to_string()),
        Err(error) => {
            eprintln!("warning: {}", error_chain(&error));
            None
        }
    }
}

/// Runs `verify`.
pub async fn verify(args: VerifyArgs) -> i32 {
    let env = match load_environment(&args.dirs.desired, &args.environment) {
        Ok(env) => env,
        Err(message) => return fail(&message),
    };
    let ctx = match real_context(&args.dirs.state_dir, None).await {
        Ok(ctx) => ctx,
        Err(message) => return fail(&message),
    };
    let only = (!args.services.is_empty()).then_some(args.services.as_slice());
    match pipeline::verify(&ctx, &env, only).await {
        Ok(report) => {
            match print_data(&report.gate, args.output) {
                true => {}
                false => {
                    if report.gate.is_empty() {
                        println!(
                            "{}: no gated service to ask the broker about",
                            args.environment
                        );
                    }
                    for entry in &report.gate {
                        println!(
                            "{}: {:?}: {}",
                            entry.who(),
                            entry.answer.verdict,
                            entry.answer.reason.replace('\n', " / ")
                        );
                        for row in &entry.answer.failing_rows {
                            println!("  {row}");
                        }
                    }
                }
            }
            if report.gate_passed() { 0 } else { 3 }
        }
        // A broker that could not be asked blocks the gate, as in `deploy` (exit 3, README).
        Err(error @ pipeline::Error::Gate { .. }) => {
            eprintln!("error: {}", error_chain(&error));
            3
        }
        Err(error) => fail(&error_chain(&error)),
    }
}

/// Runs `rollback`.
pub async fn rollback(args: RollbackArgs, log_format: LogFormat) -> i32 {
    let env = match load_environment(&args.dirs.desired, &args.environment) {
        Ok(env) => env,
        Err(message) => return fail(&message),
    };
    if let Err(message) = args.host.check(&env) {
        return fail(&message);
    }
    let ctx = match real_context(&args.dirs.state_dir, None).await {
        Ok(ctx) => with_progress(ctx, log_format),
        Err(message) => return fail(&message),
    };
    match pipeline::rollback_to_snapshot(&ctx, &env, args.from_snapshot.as_deref(), args.lock_wait)
        .await
    {
        Ok(done) if print_data(&done, args.output) => {
            match (done.records.iter()).all(|r| r.status == RecordStatus::Recorded) {
                true => 0,
                false => Outcome::RecordFailed.exit_code(),
            }
        }
        Ok(done) if done.restored.is_empty() => {
            println!(
                "{}: the snapshot shows no running container; nothing restored",
                args.environment
            );
            0
        }
        Ok(done) => {
            for (service, image) in &done.restored {
                println!("{service}: restored {image}");
            }
            for record in &done.records {
                println!(
                    "record {} {}: {:?}",
                    record.candidate.pacticipant, record.candidate.version, record.status
                );
            }
            println!(
                "{}: held at the restored release (phase RolledBack); `c2quay retry {}` deploys the manifest again",
                args.environment, args.environment
            );
            if done
                .records
                .iter()
                .all(|r| r.status == RecordStatus::Recorded)
            {
                0
            } else {
                eprintln!(
                    "some broker records are pending: they wait in the outbox and the agent retries them"
                );
                Outcome::RecordFailed.exit_code()
            }
        }
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            5
        }
    }
}

fn print_report(report: &DeployReport) {
    // The plan, the steps, the gate's answer and each record were shown live on stderr (once),
    // a failure's cause goes in the hint there too; stdout gets the outcome.
    let summary = match &report.outcome {
        Outcome::UpToDate => "up to date: nothing to do".to_string(),
        Outcome::DryRun => "dry run: nothing changed".to_string(),
        Outcome::Deployed => "deployed and recorded".to_string(),
        Outcome::GateBlocked => "gate blocked: nothing on the host changed".to_string(),
        Outcome::RolledBack { failure } if failure.host.is_some() => format!(
            "the host refused {} ({}): rolled back, the previous images run again; tried again by the agent (or re-run)",
            failure.step,
            failure.host.map_or("", |c| c.as_str())
        ),
        Outcome::RolledBack { failure } => {
            format!(
                "{} failed; rolled back: the previous images run again",
                failure.step
            )
        }
        Outcome::RollbackFailed { failure, rollback } => {
            format!("{} failed; NOT rolled back: {rollback}", failure.step)
        }
        Outcome::RecordFailed => {
            "deployed and healthy, but some broker records are pending".to_string()
        }
    };
    println!("{}: {summary}", report.environment);
    // A dry run's lines, and the waves of a per-service deploy that went ahead in parts.
    if matches!(
        report.outcome,
        Outcome::DryRun | Outcome::Deployed | Outcome::UpToDate
    ) {
        for line in &report.hints {
            println!("{line}");
        }
    }
    if let Some(path) = &report.report_path {
        println!("report: {}", path.display());
    }
}

/// The hint on stderr after a failure: what failed, what runs, where to look, what to run next.
fn print_hint(report: &DeployReport, environment: &str) {
    eprintln!("--- c2quay: {environment} did not deploy cleanly ---");
    let (step, cause) = match &report.outcome {
        Outcome::RolledBack { failure } | Outcome::RollbackFailed { failure, .. } => {
            (failure.step.as_str(), failure.error.as_str())
        }
        Outcome::GateBlocked => ("gate", "the broker did not say deployable"),
        Outcome::RecordFailed => ("record", "the broker did not accept every record"),
        _ => ("", ""),
    };
    eprintln!("failed step: {step}");
    eprintln!("cause: {cause}");
    eprintln!("affected services: {}", report.changed.join(", "));
    if let Some(path) = &report.pre_snapshot {
        eprintln!("pre-deploy snapshot: {}", path.display());
    }
    if let Some(path) = &report.post_snapshot {
        eprintln!("post snapshot: {}", path.display());
    }
    if let Some(path) = &report.rollback_report {
        eprintln!("rollback report: {}", path.display());
    }
    match &report.outcome {
        Outcome::RolledBack { .. } => eprintln!("rollback: succeeded, the previous images run"),
        Outcome::RollbackFailed { rollback, .. } => eprintln!("rollback: not done: {rollback}"),
        _ => {}
    }
    for record in &report.records {
        let status = match record.status {
            RecordStatus::Recorded => "recorded".to_string(),
            RecordStatus::Failed => format!("FAILED ({})", record.error.as_deref().unwrap_or("")),
            RecordStatus::NotAttempted => "not attempted".to_string(),
        };
        eprintln!(
            "record {} {}: {status}",
            record.candidate.pacticipant, record.candidate.version
        );
    }
    for line in &report.hints {
        eprintln!("{line}");
    }
    let next = match &report.outcome {
        Outcome::GateBlocked => format!(
            "c2quay verify {environment}   # re-ask the broker; the agent retries by itself"
        ),
        Outcome::RecordFailed => format!(
            "c2quay status {environment}   # the agent retries pending records from the outbox"
        ),
        Outcome::RolledBack { .. } => format!(
            "c2quay status {environment}; fix the release, commit a new version (or c2quay retry {environment})"
        ),
        _ => format!("c2quay rollback {environment}   # restore the pre-deploy snapshot"),
    };
    eprintln!("next: {next}");
}

fn fail(message: &str) -> i32 {
    eprintln!("error: {message}");
    1
}
