//! # c2quay-broker-emulator
//!
//! A stateful **stand-in for the Pact Broker, for c2quay's tests and demos.
//! It is not a broker for production**: state lives in memory, nothing is
//! persisted, there is no UI, no webhooks, and only the parts of the broker's
//! HTTP API that c2quay and the official `pact broker` CLI use are
//! implemented (see `emulator/README.md` for the list and the deviations).
//!
//! Use it in-process from tests:
//!
//! ```no_run
//! # async fn demo() -> Result<(), c2quay_broker_emulator::Error> {
//! use c2quay_broker_emulator::{EmulatorConfig, start};
//! let broker = start(EmulatorConfig::default()).await?;
//! broker.create_environment("production", true)?;
//! broker.seed_pact("web", "1", "api", &serde_json::json!({"interactions": []}));
//! broker.seed_verification("api", "7", "web", "1", true)?;
//! // ... point a client at broker.base_url, then assert on broker.requests()
//! broker.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! or as the binary `c2quay-broker-emulator --listen 127.0.0.1:9292 [--seed FILE]`.
//!
//! # Layout
//! - `model`: the state and its mutations (auto-undeploy, idempotency, verification by content sha).
//! - `query`: Rack-style parsing of `/matrix` and `/can-i-deploy` queries (pure).
//! - `matrix`: the decision rules of reference §2.5 (pure).
//! - `hal`: HAL+JSON rendering with absolute hrefs.
//! - `routes`: request routing over the state (synchronous, under one lock).
//! - `auth`, `faults`: authentication; fault injection and the request log.
//! - `server`: the axum glue and the `/_emulator/...` admin API.
//! - `seed`: the `--seed` file format.

pub mod auth;
pub mod faults;
pub mod hal;
pub mod matrix;
pub mod model;
pub mod query;
pub mod routes;
pub mod seed;
pub mod server;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub use auth::{AuthConfig, BasicUser, Credential};
pub use faults::{Chaos, FaultKind, FaultSpec, RequestRecord};
pub use model::{DeployedVersion, State};
pub use seed::Seed;
use server::{Shared, lock};

/// Errors from starting or driving the emulator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The seed could not be applied.
    #[error(transparent)]
    Seed(#[from] seed::SeedError),
    /// A helper referred to a pact that was never published.
    #[error("no pact from {consumer} version {consumer_version} with {provider}")]
    NoSuchPact {
        /// Consumer.
        consumer: String,
        /// Consumer version.
        consumer_version: String,
        /// Provider.
        provider: String,
    },
    /// A helper referred to a missing environment.
    #[error("environment '{0}' does not exist")]
    NoSuchEnvironment(String),
    /// A helper referred to a missing version.
    #[error("version {version} of {pacticipant} does not exist")]
    NoSuchVersion {
        /// Pacticipant.
        pacticipant: String,
        /// Version.
        version: String,
    },
    /// An environment failed validation.
    #[error("environment '{name}' is invalid: {errors:?}")]
    InvalidEnvironment {
        /// Name.
        name: String,
        /// Field errors.
        errors: model::FieldErrors,
    },
}

impl Error {
    /// A bounded label for this error.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Bind { .. } => "bind",
            Error::Seed(_) => "seed",
            Error::NoSuchPact { .. } => "no_such_pact",
            Error::NoSuchEnvironment(_) => "no_such_environment",
            Error::NoSuchVersion { .. } => "no_such_version",
            Error::InvalidEnvironment { .. } => "invalid_environment",
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to run the emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address to bind; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Path prefix the API is served under (`""` or e.g. `/broker`).
    pub path_prefix: String,
    /// Fixed base URL for hrefs (like `PACT_BROKER_BASE_URL`); default: from the request's Host.
    pub base_url: Option<String>,
    /// Authentication; default none.
    pub auth: AuthConfig,
    /// Initial state.
    pub seed: Option<Seed>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            path_prefix: String::new(),
            base_url: None,
            auth: AuthConfig::default(),
            seed: None,
        }
    }
}

/// A running emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct RunningEmulator {
    /// Base URL clients use, e.g. `http://127.0.0.1:40123` or `http://127.0.0.1:40123/broker`.
    pub base_url: String,
    /// The bound address.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Starts the emulator on `config.listen` and returns once it accepts connections.
pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator> {
    let mut state = State::default();
    if let Some(seed) = &config.seed {
        seed.apply(&mut state)?;
    }
    let prefix = config.path_prefix.trim_end_matches('/').to_string();
    let prefix = if prefix.is_empty() || prefix.starts_with('/') {
        prefix
    } else {
        format!("/{prefix}")
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: config.listen,
        source,
    })?;
    let shared = Arc::new(Shared {
        state: Mutex::new(state),
        faults: Mutex::default(),
        log: Mutex::default(),
        auth: config.auth,
        prefix: prefix.clone(),
        base_url: config.base_url,
    });
    let app = axum::Router::new()
        .fallback(server::handle)
        .with_state(shared.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = rx.await;
        });
        if let Err(e) = serve.await {
            eprintln!("c2quay-broker-emulator: server error: {e}");
        }
    });
    Ok(RunningEmulator {
        base_url: format!("http://{addr}{prefix}"),
        addr,
        shared,
        shutdown: Some(tx),
        task: Some(task),
    })
}

impl RunningEmulator {
    /// Runs `f` on the state under the lock.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut lock(&self.shared.state))
    }

    /// A copy of the whole state.
    pub fn state(&self) -> State {
        self.with_state(|s| s.clone())
    }

    /// The same JSON as `GET /_emulator/state`.
    pub fn state_json(&self) -> serde_json::Value {
        self.with_state(|s| server::state_json(s))
    }

    /// Applies a seed.
    pub fn apply_seed(&self, seed: &Seed) -> Result<()> {
        self.with_state(|s| seed.apply(s)).map_err(Error::from)
    }

    /// Publishes a pact (creating pacticipants and the consumer version); returns the content sha.
    pub fn seed_pact(
        &self,
        consumer: &str,
        consumer_version: &str,
        provider: &str,
        content: &serde_json::Value,
    ) -> String {
        self.with_state(|s| {
            s.publish_pact(consumer, consumer_version, provider, content)
                .sha
        })
    }

    /// Publishes a verification of the pact content of `consumer` `consumer_version`
    /// by `provider` `provider_version` (created if missing).
    pub fn seed_verification(
        &self,
        provider: &str,
        provider_version: &str,
        consumer: &str,
        consumer_version: &str,
        success: bool,
    ) -> Result<()> {
        self.with_state(|s| {
            let sha = s
                .pact(provider, consumer, consumer_version)
                .map(|p| p.sha.clone())
                .ok_or_else(|| Error::NoSuchPact {
                    consumer: consumer.into(),
                    consumer_version: consumer_version.into(),
                    provider: provider.into(),
                })?;
            s.verify(provider, consumer, &sha, provider_version, success);
            Ok(())
        })
    }

    /// Creates an environment; returns its uuid.
    pub fn create_environment(&self, name: &str, production: bool) -> Result<String> {
        let body = serde_json::json!({"name": name, "production": production});
        self.with_state(|s| s.upsert_environment(&body, None))
            .map(|e| e.uuid)
            .map_err(|errors| Error::InvalidEnvironment {
                name: name.into(),
                errors,
            })
    }

    /// Creates a version (like create-or-update-version), optionally on a branch.
    pub fn create_version(&self, pacticipant: &str, version: &str, branch: Option<&str>) {
        self.with_state(|s| {
            s.ensure_version(pacticipant, version);
            if let Some(b) = branch {
                s.add_branch(pacticipant, version, b);
            }
        });
    }

    /// Records a deployment directly (same rules as the HTTP route).
    pub fn record_deployment(
        &self,
        pacticipant: &str,
        version: &str,
        environment: &str,
        instance: Option<&str>,
    ) -> Result<DeployedVersion> {
        self.with_state(|s| {
            let env = s
                .environment_named(environment)
                .cloned()
                .ok_or_else(|| Error::NoSuchEnvironment(environment.into()))?;
            if s.version(pacticipant, version).is_none() {
                return Err(Error::NoSuchVersion {
                    pacticipant: pacticipant.into(),
                    version: version.into(),
                });
            }
            Ok(s.record_deployment(pacticipant, version, &env, instance))
        })
    }

    /// Records a release directly (same rules as the HTTP route: releases never retire earlier
    /// ones, and releasing a version again changes nothing).
    pub fn record_release(
        &self,
        pacticipant: &str,
        version: &str,
        environment: &str,
    ) -> Result<()> {
        self.with_state(|s| {
            let uuid = s
                .environment_named(environment)
                .map(|e| e.uuid.clone())
                .ok_or_else(|| Error::NoSuchEnvironment(environment.into()))?;
            if s.version(pacticipant, version).is_none() {
                return Err(Error::NoSuchVersion {
                    pacticipant: pacticipant.into(),
                    version: version.into(),
                });
            }
            s.record_release(pacticipant, version, &uuid);
            Ok(())
        })
    }

    /// Every deployment record in an environment (by name), including undeployed ones, oldest first.
    pub fn deployments(&self, environment: &str) -> Vec<DeployedVersion> {
        self.with_state(|s| {
            s.deployed
                .iter()
                .filter(|d| d.environment_name == environment)
                .cloned()
                .collect()
        })
    }

    /// The current deployment records in an environment (by name), oldest first.
    pub fn currently_deployed(&self, environment: &str) -> Vec<DeployedVersion> {
        self.deployments(environment)
            .into_iter()
            .filter(|d| d.currently_deployed)
            .collect()
    }

    /// The request log (admin requests excluded), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).clone()
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// Queues a fault.
    pub fn inject_fault(&self, spec: FaultSpec) {
        lock(&self.shared.faults).push(spec);
    }

    /// Removes all pending faults and stops any chaos.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Starts random faults ([`Chaos`]), or stops them with `None`; queued faults are kept.
    pub fn set_chaos(&self, chaos: Option<Chaos>) {
        lock(&self.shared.faults).set_chaos(chaos);
    }

    /// Stops the server and waits for it to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
