//! The controller: converges every environment of the desired directory and keeps converging.
//!
//! One closed [`Event`] enum feeds one work queue keyed by environment (at most one reconcile per
//! environment at a time, parallel across environments up to `--parallel`). Triggers are file
//! events (debounced), a periodic resync (one Engine API container list for all projects), container events
//! (the Engine API event stream), and requeue timers from backoff. Each reconcile re-reads manifest, state and
//! containers, so a restart changes nothing: the journal and the outbox carry what must survive.

pub mod claims;
mod desired;
mod gauges;
mod git_sync;
mod http;
pub mod models;
mod orphaned;
mod out_of_sync;
mod pending;
mod queue;
mod reconcile;
pub mod resync;
mod trigger;
mod trigger_auth;
mod watch;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

pub use desired::{DesiredEnv, DesiredSet, changed_names};
pub use queue::WorkQueue;
pub use reconcile::{ReconcileOutcome, reconcile};
pub use trigger::TriggerOutcome;
pub use trigger_auth::{TriggerAuth, hmac_sha256};

use crate::docker::Compose;
use crate::pipeline::{Brokers, Context};
use crate::smoke::Smoke;

/// Default resync interval.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(60);
/// Default debounce of file events.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(500);
/// Default grace period for the running step at shutdown.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(120);

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The desired directory.
    pub desired: PathBuf,
    /// Where `/metrics`, `/healthz`, `/readyz` and the status API listen (none: no HTTP).
    pub listen: Option<SocketAddr>,
    /// This host's name (environments with `spec.hosts` not naming it are ignored).
    pub host: String,
    /// Periodic resync.
    pub resync: Duration,
    /// Environments reconciled in parallel.
    pub parallel: usize,
    /// Reconcile everything once and exit.
    pub once: bool,
    /// Grace period for running reconciles at shutdown.
    pub grace: Duration,
    /// Debounce of file events.
    pub debounce: Duration,
    /// Whether to follow the Engine API container events.
    pub container_events: bool,
    /// Where this agent claims its Compose projects ([`claims`]); `None`: claims are off.
    pub claims_dir: Option<PathBuf>,
    /// Manage projects another live agent claims (`--take-over`).
    pub take_over: bool,
    /// Keep the desired checkout at its upstream, syncing this often (`--git-sync`); `None`:
    /// something else (the shipped timer) syncs it.
    pub git_sync: Option<Duration>,
    /// Who may call the trigger endpoint (`--trigger-token-file`,
    /// `--trigger-hmac-secret-file`); neither: it answers 403.
    pub trigger: TriggerAuth,
}

impl Config {
    /// A config with defaults for everything but the desired directory.
    pub fn new(desired: PathBuf) -> Self {
        Config {
            desired,
            listen: None,
            host: hostname(),
            resync: DEFAULT_RESYNC,
            parallel: 4,
            once: false,
            grace: DEFAULT_GRACE,
            debounce: DEFAULT_DEBOUNCE,
            container_events: true,
            claims_dir: None,
            take_over: false,
            git_sync: None,
            trigger: TriggerAuth::default(),
        }
    }
}

/// Everything that can make the agent reconcile. Nothing else does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Files in the desired directory changed (debounced).
    DesiredChanged,
    /// A Compose input file of some environment changed (debounced).
    ComposeChanged,
    /// A container of this Compose project changed.
    ContainersChanged(String),
    /// A timer for this environment fired (gate retry, record retry, backoff).
    Requeue(String),
    /// The periodic resync.
    Resync,
    /// A resync's container pass finished: these environments need a reconcile.
    Resynced(Vec<String>),
    /// The trigger endpoint asked for a reconcile now: resolve this ticket of
    /// [`Shared::triggers`] against the desired set and queue its environments.
    Triggered(u64),
}

/// What `--once` prints and returns.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    /// Environment -> phase after the run.
    pub phases: BTreeMap<String, String>,
    /// Environment -> last result.
    pub results: BTreeMap<String, String>,
}

impl Summary {
    /// True when every environment ended `Ready` (or held on purpose: `Suspended`, or
    /// `OutOfSync` by `policy.sync: manual` or `deploy --service`).
    pub fn all_ready(&self) -> bool {
        (self.phases.values()).all(|p| matches!(p.as_str(), "Ready" | "Suspended" | "OutOfSync"))
    }
}

/// Errors that stop the agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP listener could not bind.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The desired directory cannot be watched.
    #[error("cannot watch the desired directory {dir}: {message}")]
    Watch {
        /// The directory.
        dir: PathBuf,
        /// notify's message.
        message: String,
    },
}

/// State shared by the main loop, the reconciles and the HTTP endpoints.
pub struct Shared {
    /// The current desired set.
    pub desired: RwLock<DesiredSet>,
    /// The first full scan is done.
    pub scanned: AtomicBool,
    /// Docker answered the last observation.
    pub docker_ok: AtomicBool,
    /// The rendered Compose model of each environment, rendered again when an input changed.
    pub models: models::Models,
    /// The status files as the resync last parsed them.
    pub statuses: resync::StatusCache,
    /// A resync's container pass is running (its Docker call never blocks the main loop).
    pub resync_running: AtomicBool,
    /// The Compose projects this agent claimed.
    pub claims: claims::Claims,
    /// The triggers in flight and the waiters of each environment's next reconcile.
    pub triggers: trigger::Triggers,
    /// Asks `--git-sync`'s task for a sync now (the trigger endpoint); `None` without it.
    pub git_sync: Option<git_sync::GitSyncHandle>,
}

impl Shared {
    /// Records whether Docker answered a container list and how fast: the flag `/readyz`
    /// reads and the `c2quay_docker_*` gauges.
    pub fn docker_answered(
        &self,
        metrics: Option<&crate::metrics::Metrics>,
        answered: bool,
        took: Duration,
    ) {
        self.docker_ok.store(answered, Ordering::SeqCst);
        if let Some(metrics) = metrics {
            metrics.observe_docker(answered, took);
        }
    }
}

/// Runs the agent until `shutdown` completes (or, with `--once`, until everything reconciled).
pub async fn run<C, B, S>(
    config: Config,
    ctx: Arc<Context<C, B, S>>,
    shutdown: impl Future<Output = ()>,
) -> Result<Summary, Error>
where
    C: Compose + 'static,
    B: Brokers + 'static,
    S: Smoke + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let git_sync = match config.git_sync.filter(|_| !config.once) {
        Some(interval) => {
            let (metrics, clock) = (ctx.metrics.clone(), ctx.clock.clone());
            let dir = config.desired.clone();
            Some(git_sync::start(dir, interval, metrics, clock, tx.clone()))
        }
        None => {
            if let Some(metrics) = ctx.metrics.clone().filter(|_| !config.once) {
                git_sync::follow_record(ctx.state.root().to_path_buf(), metrics);
            }
            None
        }
    };
    let shared = Arc::new(Shared {
        desired: RwLock::new(DesiredSet::default()),
        scanned: AtomicBool::new(false),
        docker_ok: AtomicBool::new(false),
        models: models::Models::default(),
        statuses: resync::StatusCache::default(),
        resync_running: AtomicBool::new(false),
        claims: claims::Claims::new(
            config.claims_dir.clone(),
            format!(
                "c2quay agent pid {} (state directory {}) since {}",
                std::process::id(),
                ctx.state.root().display(),
                humantime::format_rfc3339_seconds(ctx.clock.now())
            ),
            config.take_over,
        ),
        triggers: trigger::Triggers::default(),
        git_sync,
    });
    if let Some(addr) = config.listen {
        let trigger = trigger::Trigger {
            auth: config.trigger.clone(),
            events: tx.clone(),
        };
        http::serve(addr, ctx.clone(), shared.clone(), trigger).await?;
    }
    let _watcher = if config.once {
        None
    } else {
        Some(watch::watch_desired(
            &config.desired,
            config.debounce,
            tx.clone(),
        )?)
    };
    let mut compose_watcher = if config.once {
        None
    } else {
        Some(watch::ComposeWatcher::new(config.debounce, tx.clone())?)
    };
    if config.container_events && !config.once {
        watch::follow_container_events(ctx.clone(), tx.clone());
    }

    // The first scan: load the desired directory, observe once, queue every environment.
    let initial = DesiredSet::load(&config.desired, &config.host, &DesiredSet::default());
    let mut queue = WorkQueue::new();
    for name in initial.entries.keys() {
        queue.enqueue(name);
    }
    for name in orphan_candidates(&ctx, &initial) {
        queue.enqueue(&name);
    }
    *write(&shared.desired) = initial;
    let listed = std::time::Instant::now();
    let docker_ok = ctx.compose.ps_all().await.is_ok();
    shared.docker_answered(ctx.metrics.as_deref(), docker_ok, listed.elapsed());
    shared.scanned.store(true, Ordering::SeqCst);
    notify_systemd(&[sd_notify::NotifyState::Ready]);
    info!(
        environments = queue.queued_len(),
        docker_ok,
        parallel = config.parallel.max(1),
        "first scan done"
    );

    let mut summary = Summary::default();
    let mut running: JoinSet<(String, ReconcileOutcome)> = JoinSet::new();
    let mut resync = tokio::time::interval(config.resync);
    resync.reset();
    let mut watchdog = tokio::time::interval(watchdog_interval());
    tokio::pin!(shutdown);
    loop {
        while running.len() < config.parallel.max(1) {
            let Some(name) = queue.take_next() else { break };
            let ctx = ctx.clone();
            let shared = shared.clone();
            // A trigger asked for this reconcile: it applies, and its waiters get the outcome.
            let waiters = shared.triggers.start(&name);
            running.spawn(async move {
                let outcome = reconcile(&ctx, &shared, &name, waiters.is_some()).await;
                for waiter in waiters.into_iter().flatten() {
                    let _ = waiter.send(outcome.clone());
                }
                (name, outcome)
            });
        }
        if config.once && running.is_empty() && queue.queued_len() == 0 {
            break;
        }
        tokio::select! {
            Some(joined) = running.join_next(), if !running.is_empty() => {
                match joined {
                    Ok((name, outcome)) => {
                        queue.done(&name);
                        if let Some(watcher) = &mut compose_watcher {
                            watcher.sync(shared.models.dirs());
                        }
                        summary.phases.insert(name.clone(), outcome.phase.clone());
                        summary.results.insert(name.clone(), outcome.result.clone());
                        if let Some(delay) = outcome.requeue_after && !config.once {
                            schedule(tx.clone(), name, delay);
                        }
                    }
                    Err(error) => warn!(error = %error, "a reconcile task panicked or was cancelled"),
                }
            }
            Some(event) = rx.recv() => handle_event(event, &config, &ctx, &shared, &tx, &mut queue),
            _ = resync.tick(), if !config.once => handle_event(Event::Resync, &config, &ctx, &shared, &tx, &mut queue),
            _ = watchdog.tick() => {
                let status = format!("{} environments, {} running (at most {}), {} queued", read(&shared.desired).entries.len(), running.len(), config.parallel.max(1), queue.queued_len());
                notify_systemd(&[sd_notify::NotifyState::Watchdog, sd_notify::NotifyState::Status(&status)]);
            }
            _ = &mut shutdown => {
                info!(running = running.len(), grace = ?config.grace, "shutting down: no new work; waiting for running reconciles");
                notify_systemd(&[sd_notify::NotifyState::Stopping]);
                let drained = tokio::time::timeout(config.grace, async {
                    while running.join_next().await.is_some() {}
                }).await;
                if drained.is_err() {
                    warn!("grace period over: stopping running reconciles; the journal covers them");
                    running.shutdown().await;
                }
                break;
            }
        }
    }
    Ok(summary)
}

/// Turns one event into queued environments. Never awaits: the main loop (and with it the
/// systemd watchdog ping) never waits for Docker; the resync's Docker call runs in a task
/// whose answer comes back as [`Event::Resynced`].
fn handle_event<C: Compose + 'static, B: Brokers + 'static, S: Smoke + 'static>(
    event: Event,
    config: &Config,
    ctx: &Arc<Context<C, B, S>>,
    shared: &Arc<Shared>,
    tx: &mpsc::UnboundedSender<Event>,
    queue: &mut WorkQueue,
) {
    match event {
        Event::DesiredChanged => {
            let previous = read(&shared.desired).clone();
            let next = DesiredSet::load(&config.desired, &config.host, &previous);
            let changed = changed_names(&previous, &next);
            shared.models.retain(|name| next.entries.contains_key(name));
            *write(&shared.desired) = next;
            for name in &changed {
                queue.enqueue(name);
            }
            info!(changed = ?changed, "desired directory changed");
        }
        Event::ComposeChanged => {
            let stale: Vec<String> = read(&shared.desired)
                .entries
                .iter()
                .filter_map(|(name, entry)| match entry {
                    DesiredEnv::Valid(env) => shared
                        .models
                        .stale(name, &crate::pipeline::project_of(env))
                        .then(|| name.clone()),
                    DesiredEnv::Invalid { .. } => None,
                })
                .collect();
            for name in &stale {
                queue.enqueue(name);
            }
            info!(changed = ?stale, "compose files changed");
        }
        Event::ContainersChanged(project) => {
            let name = read(&shared.desired).by_project(&project);
            if let Some(name) = name {
                queue.enqueue(&name);
            }
        }
        Event::Requeue(name) => {
            queue.enqueue(&name);
        }
        Event::Resync => {
            // Reload when anything in the directory changed (notify can miss events), then one
            // container list for all projects decides which environments need a reconcile:
            // idle environments cost no process and no broker request.
            let started = std::time::Instant::now();
            let previous = read(&shared.desired).clone();
            let next = DesiredSet::reload_if_changed(&config.desired, &config.host, &previous);
            let changed = changed_names(&previous, &next);
            *write(&shared.desired) = next.clone();
            for name in &changed {
                queue.enqueue(name);
            }
            if shared.resync_running.swap(true, Ordering::SeqCst) {
                debug!("the previous resync's container pass is still running");
                return;
            }
            let (ctx, shared, tx) = (ctx.clone(), shared.clone(), tx.clone());
            tokio::spawn(async move {
                let listed = std::time::Instant::now();
                let list = ctx.compose.ps_all().await;
                shared.docker_answered(ctx.metrics.as_deref(), list.is_ok(), listed.elapsed());
                let needing = match list {
                    Ok(containers) => resync::needing_reconcile(
                        &ctx,
                        &next,
                        &shared.models,
                        &shared.statuses,
                        containers,
                    ),
                    Err(error) => {
                        warn!(error = %crate::error_chain(&error), "resync: docker is not reachable");
                        resync::not_yet_unknown(&ctx, &next, &shared.statuses)
                    }
                };
                shared.resync_running.store(false, Ordering::SeqCst);
                debug!(
                    environments = next.entries.len(),
                    queued = changed.len() + needing.len(),
                    micros = started.elapsed().as_micros() as u64,
                    "resync done"
                );
                let _ = tx.send(Event::Resynced(needing));
            });
        }
        Event::Resynced(names) => {
            for name in &names {
                queue.enqueue(name);
            }
        }
        Event::Triggered(ticket) => {
            let names = shared.triggers.resolve(ticket, &read(&shared.desired));
            for name in &names {
                queue.enqueue(name);
            }
            info!(queued = ?names, "triggered");
        }
    }
}

/// Environments with a status file but no manifest any more (to be marked `Orphaned`).
fn orphan_candidates<C, B, S>(ctx: &Context<C, B, S>, desired: &DesiredSet) -> Vec<String> {
    let (statuses, _) = ctx.state.list_statuses();
    statuses
        .into_iter()
        .map(|s| s.name)
        .filter(|name| !desired.entries.contains_key(name))
        .collect()
}

fn schedule(tx: mpsc::UnboundedSender<Event>, name: String, delay: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let _ = tx.send(Event::Requeue(name));
    });
}

fn watchdog_interval() -> Duration {
    let mut usec = 0;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Duration::from_micros(usec / 2)
    } else {
        Duration::from_secs(10)
    }
}

fn notify_systemd(states: &[sd_notify::NotifyState<'_>]) {
    // Outside systemd (no NOTIFY_SOCKET) this is a no-op.
    let _ = sd_notify::notify(false, states);
}

/// This machine's host name (`gethostname(2)`, which needs no `/proc`: the unit hides
/// `/proc/sys`; then `$HOSTNAME`, then `localhost`).
pub fn hostname() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or
    // fails.
    let answered = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } == 0;
    let name = answered
        .then(|| {
            let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
            String::from_utf8_lossy(&buffer[..end]).trim().to_string()
        })
        .filter(|s| !s.is_empty());
    name.or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
