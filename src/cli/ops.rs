//! `c2quay agent`, `status`, `plan` and `retry`: running and operating the controller.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::common::{print_data, real_context};
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
    /// Turn the trigger endpoint on (`POST /api/v1/environments/{name}/reconcile`, `POST
    /// /api/v1/reconcile`) for callers that send `Authorization: Bearer <the file's token>`.
    #[arg(long, env = "C2QUAY_TRIGGER_TOKEN_FILE", value_name = "PATH")]
    pub trigger_token_file: Option<std::path::PathBuf>,
    /// Turn the trigger endpoint on for callers that sign the body with the file's secret
    /// (`X-Hub-Signature-256: sha256=<hex HMAC-SHA256>`, as GitHub and Gitea webhooks do).
    #[arg(long, env = "C2QUAY_TRIGGER_HMAC_SECRET_FILE", value_name = "PATH")]
    pub trigger_hmac_secret_file: Option<std::path::PathBuf>,
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
    /// Show only this service's changes and gate answer (repeatable), as `deploy --service`
    /// would apply them.
    #[arg(long = "service", value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
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
    let trigger = match trigger_auth(&args) {
        Ok(trigger) => trigger,
        Err(message) => {
            eprintln!("error: {message}");
            return 1;
        }
    };
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
    config.trigger = trigger;
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

/// The trigger endpoint's credentials from their files (the messages name the files, never
/// their content).
fn trigger_auth(args: &AgentArgs) -> Result<agent::TriggerAuth, String> {
    let read = |path: &Option<std::path::PathBuf>, flag: &str| {
        let Some(path) = path else { return Ok(None) };
        warn_if_readable_by_others(path, flag);
        crate::secret::Secret::from_file(path)
            .map(Some)
            .map_err(|error| format!("{flag}: {}", error_chain(&error)))
    };
    Ok(agent::TriggerAuth {
        token: read(&args.trigger_token_file, "--trigger-token-file")?,
        hmac_secret: read(&args.trigger_hmac_secret_file, "--trigger-hmac-secret-file")?,
    })
}

fn warn_if_readable_by_others(path: &std::path::Path, flag: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(file = %path.display(), "{flag}: the file is readable by others than its owner; chmod 600 it");
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
                let only = (!args.services.is_empty()).then_some(args.services.as_slice());
                let picked = |services: &[String]| -> Vec<String> {
                    let named = |s: &&String| only.is_none_or(|only| only.contains(s));
                    services.iter().filter(named).cloned().collect()
                };
                let diff = match &plan.action {
                    Action::Deploy { changed, removed }
                    | Action::OutOfSync {
                        changed, removed, ..
                    } => plan_diff(
                        &ctx.state,
                        env,
                        &model,
                        &observed,
                        &picked(changed),
                        &picked(removed),
                    ),
                    _ => serde_json::Map::new(),
                };
                let gate = if matches!(
                    plan.action,
                    Action::Deploy { .. } | Action::WaitForGate { .. } | Action::OutOfSync { .. }
                ) {
                    match pipeline::verify(&ctx, env, only).await {
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
        Output::Json | Output::Yaml => {
            print_data(&rows, args.output);
        }
        Output::Text | Output::Wide => {
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
