//! `c2quay agent`, `status`, `plan` and `retry`: running and operating the controller.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::common::{print_json, real_context};
use super::{Dirs, Output};
use crate::agent::{self, DesiredEnv, DesiredSet};
use crate::docker::{Applier, Engine};
use crate::metrics::Metrics;
use crate::pipeline::{self, error_chain};
use crate::plan::{self, Action, Desired};
use crate::state::StateDir;

/// Arguments of `c2quay agent` (each flag also reads an environment variable, for systemd).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  c2quay agent --desired /etc/c2quay/desired --state-dir /var/lib/c2quay\n  c2quay agent --desired desired --state-dir .state --once"
)]
pub struct AgentArgs {
    /// Directories.
    #[command(flatten)]
    pub dirs: Dirs,
    /// Address of /metrics, /healthz, /readyz and /api/v1/environments.
    #[arg(long, env = "C2QUAY_LISTEN", default_value = "127.0.0.1:9464")]
    pub listen: SocketAddr,
    /// Allow `--listen` on a non-loopback address (status and metrics become reachable).
    #[arg(long, env = "C2QUAY_LISTEN_ANY")]
    pub listen_any: bool,
    /// Disable the HTTP endpoints.
    #[arg(long)]
    pub no_http: bool,
    /// This host's name, matched against `spec.hosts`.
    #[arg(long, env = "C2QUAY_HOST")]
    pub host: Option<String>,
    /// Periodic resync interval.
    #[arg(long, env = "C2QUAY_RESYNC", default_value = "60s", value_parser = humantime::parse_duration)]
    pub resync: Duration,
    /// Environments reconciled in parallel. The default is two per CPU core, at least 2 and at
    /// most 8: a deploy mostly waits (health checks, stop timeouts), so two per core keep the
    /// CPU busy, while the daemon creates networks and containers one at a time, so more than
    /// 8 concurrent `up`s only queue inside it.
    #[arg(long, env = "C2QUAY_PARALLEL", default_value_t = default_parallel())]
    pub parallel: usize,
    /// Grace period for running reconciles at shutdown.
    #[arg(long, env = "C2QUAY_GRACE", default_value = "120s", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// Debounce of desired-directory file events.
    #[arg(long, env = "C2QUAY_DEBOUNCE", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub debounce: Duration,
    /// Reconcile every environment once, print a summary and exit (0 when all are Ready).
    #[arg(long)]
    pub once: bool,
    /// Where agents claim their Compose projects, one agent per project on a host (the
    /// shipped unit sets /run/lock/c2quay; without it claims are off). Every agent of the host
    /// must use the same directory.
    #[arg(long, env = "C2QUAY_CLAIMS_DIR")]
    pub claims_dir: Option<std::path::PathBuf>,
    /// Manage projects even when another live agent claims them (after moving an agent to a
    /// new state directory while the old one still runs, say).
    #[arg(long)]
    pub take_over: bool,
    /// Keep the desired checkout at its upstream: `git fetch` + fast-forward every INTERVAL
    /// (as `c2quay sync`; dirty or diverged checkouts are refused), with metrics. Needs write
    /// access to the checkout and the git server's credentials; the shipped timer is the
    /// alternative that keeps both away from the agent.
    #[arg(long, env = "C2QUAY_GIT_SYNC", value_name = "INTERVAL", value_parser = humantime::parse_duration)]
    pub git_sync: Option<Duration>,
}

/// Arguments of `c2quay status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// One environment (default: all).
    pub environment: Option<String>,
    /// The state directory.
    #[arg(long, env = "C2QUAY_STATE_DIR", default_value = "/var/lib/c2quay")]
    pub state_dir: std::path::PathBuf,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Arguments of `c2quay plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// One environment (default: all).
    pub environment: Option<String>,
    /// Directories.
    #[command(flatten)]
    pub dirs: Dirs,
    /// This host's name, matched against `spec.hosts`.
    #[arg(long, env = "C2QUAY_HOST")]
    pub host: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Arguments of `c2quay retry`.
#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// The environment.
    pub environment: String,
    /// The state directory.
    #[arg(long, env = "C2QUAY_STATE_DIR", default_value = "/var/lib/c2quay")]
    pub state_dir: std::path::PathBuf,
}

/// `--parallel`'s default on this machine: two per CPU core, clamped to 2..=8.
pub fn default_parallel() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    (cores * 2).clamp(2, 8)
}

/// Runs the agent until SIGTERM/SIGINT (or once).
pub async fn agent(args: AgentArgs) -> i32 {
    if !args.listen.ip().is_loopback() && !args.listen_any && !args.no_http {
        eprintln!(
            "error: --listen {} is not a loopback address; pass --listen-any to expose status and metrics beyond this host",
            args.listen
        );
        return 2;
    }
    let metrics = match Metrics::new() {
        Ok(metrics) => Arc::new(metrics),
        Err(error) => {
            eprintln!("error: metrics: {error}");
            return 1;
        }
    };
    let ctx = match real_context(&args.dirs.state_dir, Some(metrics)).await {
        Ok(ctx) => Arc::new(ctx),
        Err(message) => {
            eprintln!("error: {message}");
            return 1;
        }
    };
    let mut config = agent::Config::new(args.dirs.desired.clone());
    config.listen = (!args.no_http).then_some(args.listen);
    if let Some(host) = args.host {
        config.host = host;
    }
    config.resync = args.resync;
    config.parallel = args.parallel.max(1);
    config.once = args.once;
    config.grace = args.grace;
    config.debounce = args.debounce;
    config.claims_dir = args.claims_dir.clone();
    config.take_over = args.take_over;
    config.git_sync = args.git_sync;
    let once = args.once;
    match agent::run(config, ctx, shutdown_signal()).await {
        Ok(summary) => {
            if once {
                for (name, phase) in &summary.phases {
                    println!(
                        "{name}: {phase} ({})",
                        summary.results.get(name).map(String::as_str).unwrap_or("")
                    );
                }
                if summary.all_ready() { 0 } else { 1 }
            } else {
                0
            }
        }
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            1
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

/// Runs `status` from the state directory (works with the agent stopped).
pub fn status(args: StatusArgs) -> i32 {
    if let Err(message) = super::common::existing_state_dir(&args.state_dir) {
        eprintln!("error: {message}");
        return 1;
    }
    let state = match StateDir::open(&args.state_dir) {
        Ok(state) => state,
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            return 1;
        }
    };
    let (mut statuses, errors) = state.list_statuses();
    if let Some(name) = &args.environment {
        statuses.retain(|s| &s.name == name);
        let file = state.status_file(name);
        if let Some(error) = errors.iter().find(|e| e.path() == Some(file.as_path())) {
            // Unreadable, or written by a newer c2quay: say so, not "no status".
            eprintln!("error: {}", error_chain(error));
            return 1;
        }
        if statuses.is_empty() {
            eprintln!(
                "error: no status for environment {name} in {}",
                args.state_dir.display()
            );
            return 1;
        }
    }
    match (args.output, &args.environment) {
        // One environment asked for: its object, as kubectl's `get NAME -o json`.
        (Output::Json, Some(_)) => print_json(&statuses[0]),
        (Output::Json, None) => print_json(&statuses),
        (Output::Text, _) => print_status_table(&statuses, args.environment.is_some()),
    }
    for error in &errors {
        eprintln!("warning: {}", error_chain(error));
    }
    if errors.is_empty() { 0 } else { 1 }
}

/// The status table; for one environment also its releases and conditions, and the whole
/// message.
fn print_status_table(statuses: &[crate::state::EnvironmentStatus], one: bool) {
    let now = std::time::SystemTime::now();
    let mut table = super::table::new(&[
        "ENVIRONMENT",
        "PHASE",
        "AGE",
        "APPLIED",
        "PENDING",
        "LAST RESULT",
        "MESSAGE",
    ]);
    for s in statuses {
        // AGE: how long the environment has been in or out of Ready (the Ready condition's
        // last transition), as kubectl shows a pod's.
        let age = (s.condition(crate::state::ConditionType::Ready))
            .map(|c| super::table::age(c.last_transition_time, now))
            .unwrap_or_else(|| "-".into());
        let message = match one {
            true => s.message.clone(),
            false => s.message.lines().next().unwrap_or("").to_string(),
        };
        table.add_row(vec![
            s.name.clone(),
            s.phase.as_str().to_string(),
            age,
            s.applied_generation.clone().unwrap_or_else(|| "-".into()),
            s.pending_records.to_string(),
            s.last_result.clone().unwrap_or_else(|| "-".into()),
            message,
        ]);
    }
    super::table::print(&table);
    let Some(s) = statuses.first().filter(|_| one) else {
        return;
    };
    for (what, revision) in [
        ("applied", &s.applied_revision),
        ("observed", &s.observed_revision),
    ] {
        if let Some(revision) = revision {
            println!("  {what} revision: {revision}");
        }
    }
    for (service, release) in &s.releases {
        let id = (release.image_id.as_deref())
            .map(|id| format!(" ({})", short_id(id)))
            .unwrap_or_default();
        let version = release.version.as_deref().unwrap_or("-");
        println!("  {service}: {version} {}{id}", release.image);
    }
    for c in &s.conditions {
        println!(
            "  condition {:?}={:?} ({}): {}",
            c.type_, c.status, c.reason, c.message
        );
    }
}

/// Runs `plan`: what the agent would do now, with the broker's current answers. Read-only.
pub async fn plan(args: PlanArgs) -> i32 {
    if let Err(message) = super::common::existing_state_dir(&args.dirs.state_dir) {
        eprintln!("error: {message}");
        return 1;
    }
    let ctx = match real_context(&args.dirs.state_dir, None).await {
        Ok(ctx) => ctx,
        Err(message) => {
            eprintln!("error: {message}");
            return 1;
        }
    };
    let host = args.host.unwrap_or_else(agent::hostname);
    let desired = DesiredSet::load(&args.dirs.desired, &host, &DesiredSet::default());
    let mut rows = Vec::new();
    for (name, hosts) in &desired.other_hosts {
        if args.environment.as_ref().is_some_and(|n| n != name) {
            continue;
        }
        let reason = format!(
            "spec.hosts names {}, not this host ({host}): the agent here leaves it alone; --host to plan as another host",
            hosts.join(", ")
        );
        rows.push(
            serde_json::json!({"environment": name, "action": "other-host", "reason": reason}),
        );
    }
    for (name, entry) in &desired.entries {
        if args.environment.as_ref().is_some_and(|n| n != name) {
            continue;
        }
        let row = match entry {
            DesiredEnv::Invalid { message, .. } => {
                serde_json::json!({"environment": name, "action": "invalid", "reason": message})
            }
            DesiredEnv::Valid(env) => {
                let project = pipeline::project_of(env);
                let observed = match ctx.compose.ps(&project).await {
                    Ok(containers) => containers,
                    Err(error) => {
                        eprintln!("error: {name}: cannot observe: {}", error_chain(&error));
                        return 1;
                    }
                };
                let model = match ctx.compose.config(&project).await {
                    Ok(model) => model,
                    Err(error) => {
                        let reason =
                            format!("the Compose files do not render: {}", error_chain(&error));
                        rows.push(serde_json::json!({"environment": name, "action": "invalid", "reason": reason}));
                        continue;
                    }
                };
                let applied = pipeline::applied_state(&ctx.state, name);
                let plan = plan::plan(
                    Desired::Valid(env),
                    Some(&model),
                    &applied,
                    &observed,
                    ctx.clock.now(),
                );
                let diff = match &plan.action {
                    Action::Deploy { changed, removed } => {
                        plan_diff(&ctx.state, env, &model, &observed, changed, removed)
                    }
                    _ => serde_json::Map::new(),
                };
                let gate = if matches!(
                    plan.action,
                    Action::Deploy { .. } | Action::WaitForGate { .. }
                ) {
                    match pipeline::verify(&ctx, env).await {
                        Ok(report) => report.gate_reasons_or_ok(),
                        Err(error) => vec![format!("broker: {}", error_chain(&error))],
                    }
                } else {
                    Vec::new()
                };
                serde_json::json!({"environment": name, "action": plan.action.name(), "reason": plan.reason, "diff": diff, "gate": gate})
            }
        };
        rows.push(row);
    }
    match args.output {
        Output::Json => print_json(&rows),
        Output::Text => {
            for row in &rows {
                println!(
                    "{}: {}: {}",
                    row["environment"].as_str().unwrap_or(""),
                    row["action"].as_str().unwrap_or(""),
                    row["reason"].as_str().unwrap_or("")
                );
                for (service, fields) in row["diff"].as_object().into_iter().flatten() {
                    println!("  {service}:");
                    for field in fields.as_array().into_iter().flatten() {
                        let side = |key: &str| field[key].as_str().unwrap_or("(none)").to_string();
                        println!(
                            "    {}: {} -> {}",
                            field["field"].as_str().unwrap_or(""),
                            side("from"),
                            side("to")
                        );
                    }
                }
                for line in row["gate"].as_array().into_iter().flatten() {
                    println!("  gate: {}", line.as_str().unwrap_or(""));
                }
            }
        }
    }
    0
}

/// `sha256:0123456789ab` of an image id.
fn short_id(id: &str) -> String {
    id.chars().take("sha256:".len() + 12).collect()
}

/// The per-service diff of a planned deploy: the image (what runs -> the pin) and every
/// changed field of the rendered service against the last applied model (secrets masked).
fn plan_diff(
    state: &StateDir,
    env: &crate::manifest::Environment,
    model: &crate::docker::RenderedModel,
    observed: &[crate::docker::Container],
    changed: &[String],
    removed: &[String],
) -> serde_json::Map<String, serde_json::Value> {
    use crate::plan::diff::{FieldDiff, service_diff};
    let applied_model = std::fs::read_to_string(state.applied_model_file(env.name()))
        .ok()
        .and_then(|text| crate::docker::parse::config(&text).ok());
    let values = |m: Option<&crate::docker::RenderedModel>, s: &str| {
        m.and_then(|m| m.get(s)).map(|r| r.config.values.clone())
    };
    let mut out = serde_json::Map::new();
    for service in changed.iter().chain(removed) {
        let mut rows = Vec::new();
        let running = crate::plan::running_container(observed, service).map(|c| c.image.clone());
        let desired = env
            .pinned_image(service)
            .or_else(|| model.get(service).and_then(|r| r.image.clone()));
        if running != desired && !removed.contains(service) {
            rows.push(FieldDiff {
                field: "image".into(),
                from: running,
                to: desired,
            });
        }
        rows.extend(service_diff(
            values(applied_model.as_ref(), service).as_ref(),
            values(Some(model), service).as_ref(),
        ));
        out.insert(
            service.clone(),
            serde_json::to_value(rows).unwrap_or_default(),
        );
    }
    out
}

/// Runs `retry`: forgets the failed generation so the agent deploys it again.
pub fn retry(args: RetryArgs) -> i32 {
    let state = match StateDir::open(&args.state_dir) {
        Ok(state) => state,
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            return 1;
        }
    };
    let lock = match state.lock_environment(&args.environment, "retry", Duration::from_secs(30)) {
        Ok(lock) => lock,
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            return 1;
        }
    };
    match state.read_status(&args.environment) {
        Ok(Some(mut status)) => {
            let failed = status.failed_generation.take();
            status.failed_model = None;
            status.gate_checks = 0;
            status.next_gate_check_at = None;
            status.gate_blocked_generation = None;
            if let Err(error) = crate::status::replace(&state, &lock, &mut status) {
                eprintln!("error: {}", error_chain(&error));
                return 1;
            }
            // The audit log is what a status rebuilt after corruption takes a failed
            // generation from: the retry forgets it there too.
            let said = "c2quay retry: the failed generation is forgotten, the gate backoff reset";
            if let Err(error) = state.audit(
                &args.environment,
                failed.as_deref(),
                "retry",
                "requested",
                said,
            ) {
                eprintln!("warning: {}", error_chain(&error));
            }
            match failed {
                Some(generation) => println!(
                    "{}: generation {generation} will be tried again at the agent's next reconcile",
                    args.environment
                ),
                None => println!(
                    "{}: no failed generation; gate backoff reset",
                    args.environment
                ),
            }
            0
        }
        Ok(None) => {
            eprintln!("error: no status for environment {}", args.environment);
            1
        }
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            1
        }
    }
}
