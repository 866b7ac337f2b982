//! `c2quay retry`, `suspend` and `resume`: change what the agent may do with an environment,
//! through its status, under the environment lock; nothing on the host changes here.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::common::{load_environment, print_data};
use super::{Dirs, Output};
use crate::error_chain;
use crate::state::{EnvLock, EnvironmentStatus, StateDir, Suspension};
use crate::status::{Cause, transition};

/// How long a command waits for the environment lock (a deploy in flight holds it).
const LOCK_WAIT: Duration = Duration::from_secs(60);

/// Arguments of `c2quay retry`.
#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// The environment.
    pub environment: String,
    /// The state directory.
    #[arg(long, env = "C2QUAY_STATE_DIR", default_value = "/var/lib/c2quay")]
    pub state_dir: PathBuf,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Arguments of `c2quay suspend`.
#[derive(Debug, clap::Args)]
pub struct SuspendArgs {
    /// The environment.
    pub environment: String,
    /// Directories (the manifest names the generation the suspension holds).
    #[command(flatten)]
    pub dirs: Dirs,
    /// Why, shown in status next to who suspended it and when.
    #[arg(long)]
    pub reason: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Arguments of `c2quay resume`.
#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// The environment.
    pub environment: String,
    /// The state directory.
    #[arg(long, env = "C2QUAY_STATE_DIR", default_value = "/var/lib/c2quay")]
    pub state_dir: PathBuf,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// What a control command did, for `-o json|yaml`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Done {
    environment: String,
    /// `retried`, `suspended`, `resumed`, `notSuspended`.
    result: &'static str,
    generation: Option<String>,
    phase: String,
    message: String,
}

/// Runs `retry`: forgets the failed generation so the agent deploys it again.
pub fn retry(args: RetryArgs) -> i32 {
    let name = args.environment.as_str();
    with_status(&args.state_dir, name, "retry", false, |state, status| {
        let failed = status.failed_generation.take();
        status.failed_model = None;
        status.gate_checks = 0;
        status.next_gate_check_at = None;
        status.gate_blocked_generation = None;
        // The audit log is what a status rebuilt after corruption takes a failed generation
        // from: the retry forgets it there too.
        let said = "c2quay retry: the failed generation is forgotten, the gate backoff reset";
        if let Err(error) = state.audit(name, failed.as_deref(), "retry", "requested", said) {
            eprintln!("warning: {}", error_chain(&error));
        }
        let text = match &failed {
            Some(generation) => format!(
                "{name}: generation {generation} will be tried again at the agent's next reconcile"
            ),
            None => format!("{name}: no failed generation; gate backoff reset"),
        };
        ("retried", failed, text)
    })
    .map_or(1, |done| report(&done, args.output))
}

/// Runs `suspend`: the agent only observes the environment (no deploy, heal or rollback)
/// until `resume` or a manifest of another generation.
pub fn suspend(args: SuspendArgs) -> i32 {
    let name = args.environment.as_str();
    let env = match load_environment(&args.dirs.desired, name) {
        Ok(env) => env,
        Err(message) => {
            eprintln!("error: {message}");
            return 1;
        }
    };
    let by = who();
    let reason = args.reason.clone();
    let state_dir = &args.dirs.state_dir;
    with_status(state_dir, name, "suspend", true, |state, status| {
        let suspension = Suspension {
            generation: env.generation.clone(),
            at: state.clock().now(),
            by,
            reason,
        };
        let said = format!("c2quay suspend: {}", suspension.describe());
        status.suspended = Some(suspension);
        transition(status, Cause::Suspended, state.clock().now());
        if let Err(error) = state.audit(name, Some(&env.generation), "suspend", "requested", &said)
        {
            eprintln!("warning: {}", error_chain(&error));
        }
        let text = format!(
            "{name}: suspended at generation {}: the agent only observes it until \
             `c2quay resume {name}` or a manifest change",
            env.generation
        );
        ("suspended", Some(env.generation.clone()), text)
    })
    .map_or(1, |done| report(&done, args.output))
}

/// Runs `resume`: ends a local suspension; the agent reconciles at its next pass.
pub fn resume(args: ResumeArgs) -> i32 {
    let name = args.environment.as_str();
    with_status(&args.state_dir, name, "resume", false, |state, status| {
        let Some(suspension) = status.suspended.take() else {
            return ("notSuspended", None, format!("{name}: not suspended"));
        };
        let said = format!("c2quay resume: {} ended", suspension.describe());
        transition(status, Cause::Resumed, state.clock().now());
        let generation = Some(suspension.generation);
        if let Err(error) = state.audit(name, generation.as_deref(), "resume", "requested", &said) {
            eprintln!("warning: {}", error_chain(&error));
        }
        let text = format!("{name}: resumed: the agent reconciles it at its next pass");
        ("resumed", generation, text)
    })
    .map_or(1, |done| report(&done, args.output))
}

/// Takes the environment lock, reads its status (a new one when `create` and there is
/// none), lets `change` edit it, and writes it back. `change` returns the result, the
/// generation concerned and the line to print. Errors are printed.
fn with_status(
    state_dir: &std::path::Path,
    name: &str,
    command: &str,
    create: bool,
    change: impl FnOnce(&StateDir, &mut EnvironmentStatus) -> (&'static str, Option<String>, String),
) -> Option<(Done, String)> {
    let fail = |message: String| {
        eprintln!("error: {message}");
        None
    };
    if let Err(message) = super::common::existing_state_dir(state_dir) {
        return fail(message);
    }
    let state = match StateDir::open(state_dir) {
        Ok(state) => state,
        Err(error) => return fail(error_chain(&error)),
    };
    let lock: EnvLock = match state.lock_environment(name, command, LOCK_WAIT) {
        Ok(lock) => lock,
        Err(error) => return fail(error_chain(&error)),
    };
    let mut status = match state.read_status(name) {
        Ok(Some(status)) => status,
        Ok(None) if create => EnvironmentStatus::new(name),
        Ok(None) => return fail(format!("no status for environment {name}")),
        Err(error) => return fail(error_chain(&error)),
    };
    let (result, generation, text) = change(&state, &mut status);
    if let Err(error) = crate::status::replace(&state, &lock, &mut status) {
        return fail(error_chain(&error));
    }
    let done = Done {
        environment: name.to_string(),
        result,
        generation,
        phase: status.phase.as_str().to_string(),
        message: status.message.clone(),
    };
    Some((done, text))
}

/// Prints what was done (text or data) and returns exit code 0.
fn report((done, text): &(Done, String), output: Output) -> i32 {
    if !print_data(done, output) {
        println!("{text}");
    }
    0
}

/// Who runs this command: `SUDO_USER` behind sudo, else `USER`, else the uid.
fn who() -> String {
    // SAFETY: getuid(2) cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("uid {uid}"))
}
