//! What several subcommands share: the runtime, the real adapters, loading one environment.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::broker::RequestObserver;
use crate::docker::{CliCompose, CliConfig};
use crate::manifest::{self, Environment};
use crate::metrics::Metrics;
use crate::pipeline::{Context, HttpBrokers, error_chain};
use crate::smoke::Checks;
use crate::state::{StateDir, SystemClock};

/// The context of a real run: Docker through the Compose CLI, brokers over HTTP.
pub type RealContext = Context<CliCompose, HttpBrokers, Checks>;

/// Runs a future on a fresh multi-threaded runtime and returns its exit code.
pub fn block_on(future: impl Future<Output = i32>) -> i32 {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            1
        }
    }
}

/// For read-only commands (`status`, `plan`, `verify`): `Err` naming `state_dir` when it does
/// not exist, so a mistyped `--state-dir` is said, not created and shown as an empty table.
pub fn existing_state_dir(state_dir: &Path) -> Result<(), String> {
    if state_dir.is_dir() {
        return Ok(());
    }
    Err(format!(
        "state directory {} does not exist (nothing was created); check --state-dir, or deploy first",
        state_dir.display()
    ))
}

/// Builds the real adapters on `state_dir`; `metrics` is given to the agent only.
pub async fn real_context(
    state_dir: &Path,
    metrics: Option<Arc<Metrics>>,
) -> Result<RealContext, String> {
    let state =
        StateDir::open(state_dir).map_err(|e| format!("state directory: {}", error_chain(&e)))?;
    let mut config = CliConfig::new(state.root().join("overrides"));
    config.version_cache = Some(state.root().join("compose-version.json"));
    config.render_cache = Some(state.root().join("renders"));
    let compose = CliCompose::detect(config)
        .await
        .map_err(|e| format!("docker compose: {}", error_chain(&e)))?;
    let observer: Option<Arc<dyn RequestObserver>> = metrics
        .clone()
        .map(|m| Arc::new(MetricsObserver(m)) as Arc<dyn RequestObserver>);
    let smoke = Checks::new().map_err(|e| format!("smoke checks: {}", error_chain(&e)))?;
    let clock: Arc<dyn crate::state::Clock> = Arc::new(SystemClock);
    let events = crate::pipeline::standard_events(&state, clock.clone(), metrics.clone());
    Ok(Context {
        compose,
        brokers: HttpBrokers::new(observer),
        smoke,
        state,
        clock,
        metrics,
        events,
    })
}

/// Feeds every broker request into the metrics.
struct MetricsObserver(Arc<Metrics>);

impl RequestObserver for MetricsObserver {
    fn observe(&self, method: &str, _relation: &str, status: Option<u16>, elapsed: Duration) {
        self.0.observe_broker_request(method, status, elapsed);
    }
}

/// Which host a command that changes the host runs on, matched against `spec.hosts`.
#[derive(Debug, Clone, clap::Args)]
pub struct HostArgs {
    /// This host's name, matched against `spec.hosts` (default: the machine's host name).
    #[arg(long, env = "C2QUAY_HOST")]
    pub host: Option<String>,
    /// Act even when the manifest's `spec.hosts` does not name this host.
    #[arg(long)]
    pub force: bool,
}

impl HostArgs {
    /// This host's name: `--host`, else the machine's host name.
    pub fn name(&self) -> String {
        self.host.clone().unwrap_or_else(crate::agent::hostname)
    }

    /// Refuses an environment whose `spec.hosts` does not name this host (unless `--force`),
    /// with a message naming both and how to go on.
    pub fn check(&self, env: &Environment) -> Result<(), String> {
        let host = self.name();
        if self.force || env.owned_by(&host) {
            return Ok(());
        }
        let source = match &self.host {
            Some(_) => "given by --host or C2QUAY_HOST",
            None => "this machine's host name; --host or C2QUAY_HOST to say otherwise",
        };
        Err(format!(
            "environment {} is not for this host: spec.hosts in {} names {}, and this host is {host} ({source}); nothing was changed. Pass --force to act here anyway",
            env.name(),
            env.source.display(),
            env.manifest.spec.hosts.join(", ")
        ))
    }
}

/// Loads the environment `name` from the desired directory, with a message naming the problem.
pub fn load_environment(desired: &Path, name: &str) -> Result<Environment, String> {
    let report = manifest::load_dir(desired).map_err(|e| error_chain(&e))?;
    if let Some(env) = report.environments.into_iter().find(|e| e.name() == name) {
        return Ok(env);
    }
    let problems: Vec<String> = report
        .problems
        .iter()
        .filter(|p| p.is_error())
        .map(|p| p.to_string())
        .collect();
    if problems.is_empty() {
        Err(format!(
            "no environment named {name} in {}",
            desired.display()
        ))
    } else {
        Err(format!(
            "no valid environment named {name} in {}; problems:\n  {}",
            desired.display(),
            problems.join("\n  ")
        ))
    }
}

/// Prints `value` as JSON or YAML when `output` asks for data and returns true; returns false
/// for text and wide, which the caller prints in its own way.
pub fn print_data(value: &impl serde::Serialize, output: super::Output) -> bool {
    match output {
        super::Output::Json => print_json(value),
        super::Output::Yaml => match serde_yaml::to_string(value) {
            Ok(text) => print!("{text}"),
            Err(error) => eprintln!("error: cannot render YAML: {error}"),
        },
        super::Output::Text | super::Output::Wide => return false,
    }
    true
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(error) => eprintln!("error: cannot render JSON: {error}"),
    }
}
