//! The Prometheus registry and the metric definitions of c2quay.
//!
//! [`Metrics`] owns two registries: one prefixed with `c2quay_` holding every c2quay metric,
//! and one unprefixed holding the standard `process_*` metrics (so process dashboards that
//! expect `process_cpu_seconds_total` keep working). Both are owned by the agent, never the
//! global default registry, so every test gets fresh counters.
//!
//! Label values come only from closed sets: environment names (validated `[a-z0-9-]`), the
//! enums below ([`Step`], [`ReconcileResult`], ...), [`PHASES`], HTTP methods and status codes.
//! Never versions, image references or error strings.
//!
//! This module does not decide anything: it is told what happened by the agent and the
//! pipeline through typed helper methods. [`DOCUMENTED_METRICS`] lists every metric name and
//! type; `docs/metrics.md`, the Grafana dashboard and the alert rules are checked against it
//! by `tests/it/ops_files.rs`.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod docker;
mod documented;
mod git;
mod host;
mod labels;
mod register;
mod sink;
mod state;
#[cfg(test)]
mod tests;

pub use labels::{GateResult, Outcome, PHASES, ReconcileResult, RecoveryResult, Step};

use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec, Registry, TextEncoder};

use register::{counter, gauge, histogram, register};

pub use documented::DOCUMENTED_METRICS;

/// Buckets for reconcile and step durations: a no-op reconcile takes milliseconds, a deploy
/// with `compose pull` and `up --wait` can take minutes.
const RECONCILE_BUCKETS_SECONDS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Buckets for one broker HTTP request.
const BROKER_BUCKETS_SECONDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// HTTP methods kept as label values; anything else is exported as `other`.
const HTTP_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// Errors from building the metrics registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A metric could not be created or registered (a bad name, or registered twice).
    #[error("could not register metric `{metric}`")]
    Register {
        /// The metric name without the `c2quay_` prefix.
        metric: &'static str,
        /// The error from the prometheus crate.
        #[source]
        source: prometheus::Error,
    },
}

impl Error {
    /// A bounded label for this error, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Register { .. } => "register",
        }
    }
}

/// The result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The c2quay metrics and their registries. Cheap to share behind an `Arc`; every method
/// takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    process_registry: Registry,
    /// Environments whose series were created by [`Metrics::init_environment`].
    known_environments: Mutex<BTreeSet<String>>,
    reconcile_total: IntCounterVec,
    reconcile_duration_seconds: HistogramVec,
    step_duration_seconds: HistogramVec,
    environment_phase: IntGaugeVec,
    environment_ready: IntGaugeVec,
    gate_checks_total: IntCounterVec,
    gate_blocked: IntGaugeVec,
    gate_blocked_since_timestamp_seconds: IntGaugeVec,
    rollbacks_total: IntCounterVec,
    recoveries_total: IntCounterVec,
    drift_detected: IntGaugeVec,
    heals_total: IntCounterVec,
    pending_records: IntGaugeVec,
    records_total: IntCounterVec,
    broker_requests_total: IntCounterVec,
    broker_request_duration_seconds: HistogramVec,
    last_success_timestamp_seconds: IntGaugeVec,
    manifest_errors: IntGaugeVec,
    docker: docker::DockerMetrics,
    git: git::GitMetrics,
    state_error: IntGaugeVec,
    host_blocked: IntGaugeVec,
}

impl Metrics {
    /// Creates every metric on fresh registries, sets `c2quay_build_info` and registers the
    /// process collector. Fails only on a programming error (a duplicate or invalid name).
    pub fn new() -> Result<Metrics> {
        let registry = Registry::new_custom(Some("c2quay".into()), None).map_err(|source| {
            Error::Register {
                metric: "registry",
                source,
            }
        })?;
        let process_registry = Registry::new();
        #[cfg(target_os = "linux")]
        register(
            &process_registry,
            "process",
            prometheus::process_collector::ProcessCollector::for_self(),
        )?;

        let env = &["environment"];
        let env_result = &["environment", "result"];
        let r = &registry;
        let metrics = Metrics {
            reconcile_total: counter(
                r,
                "reconcile_total",
                "Reconciles of an environment, by how they ended (noop, deployed, healed, gate_blocked, rolled_back, failed, skipped).",
                env_result,
            )?,
            reconcile_duration_seconds: histogram(
                r,
                "reconcile_duration_seconds",
                "Wall-clock duration of one reconcile of an environment, in seconds.",
                env,
                RECONCILE_BUCKETS_SECONDS,
            )?,
            step_duration_seconds: histogram(
                r,
                "step_duration_seconds",
                "Duration of one pipeline step (snapshot, plan, gate, pull, up, readiness, smoke, verify, record, rollback), in seconds.",
                &["environment", "step"],
                RECONCILE_BUCKETS_SECONDS,
            )?,
            environment_phase: gauge(
                r,
                "environment_phase",
                "The current phase of an environment: 1 for the current phase, 0 for every other one.",
                &["environment", "phase"],
            )?,
            environment_ready: gauge(
                r,
                "environment_ready",
                "1 if the environment is Ready (converged, smoke-tested, recorded), else 0.",
                env,
            )?,
            gate_checks_total: counter(
                r,
                "gate_checks_total",
                "can-i-deploy checks against the Pact Broker, by answer (deployable, not_deployable, unknown, error).",
                env_result,
            )?,
            gate_blocked: gauge(
                r,
                "gate_blocked",
                "1 while the broker does not allow the desired versions of the environment, else 0.",
                env,
            )?,
            gate_blocked_since_timestamp_seconds: gauge(
                r,
                "gate_blocked_since_timestamp_seconds",
                "Unix time at which the gate of the environment became blocked; 0 when not blocked.",
                env,
            )?,
            rollbacks_total: counter(
                r,
                "rollbacks_total",
                "Rollbacks after a failed deploy or smoke check, by result (succeeded, failed).",
                env_result,
            )?,
            recoveries_total: counter(
                r,
                "recoveries_total",
                "Interrupted operations recovered after a restart, by result (resumed, finished, rolled_back, failed).",
                env_result,
            )?,
            drift_detected: gauge(
                r,
                "drift_detected",
                "1 if the running containers differ from the applied state (stopped, missing, unhealthy, other image), else 0.",
                env,
            )?,
            heals_total: counter(
                r,
                "heals_total",
                "Drift repairs: re-applies of the already recorded versions.",
                env,
            )?,
            pending_records: gauge(
                r,
                "pending_records",
                "Successful deployments waiting in the outbox to be recorded in the broker.",
                env,
            )?,
            records_total: counter(
                r,
                "records_total",
                "record-deployment attempts against the broker, by result (succeeded, failed).",
                env_result,
            )?,
            broker_requests_total: counter(
                r,
                "broker_requests_total",
                "HTTP requests to the Pact Broker, by method and status code (`error` when no response arrived).",
                &["method", "status"],
            )?,
            broker_request_duration_seconds: histogram(
                r,
                "broker_request_duration_seconds",
                "Duration of one HTTP request to the Pact Broker, in seconds.",
                &["method"],
                BROKER_BUCKETS_SECONDS,
            )?,
            last_success_timestamp_seconds: gauge(
                r,
                "last_success_timestamp_seconds",
                "Unix time of the last reconcile that left the environment converged (noop, deployed or healed).",
                env,
            )?,
            manifest_errors: gauge(
                r,
                "manifest_errors",
                "Problems found in the manifest of the environment at its last load; 0 when valid.",
                env,
            )?,
            docker: docker::DockerMetrics::register(r)?,
            git: git::GitMetrics::register(r)?,
            state_error: state::register(r)?,
            host_blocked: host::register(r)?,
            known_environments: Mutex::new(BTreeSet::new()),
            registry,
            process_registry,
        };
        let build_info = gauge(
            &metrics.registry,
            "build_info",
            "Always 1; the labels carry the c2quay version, the git commit and its date.",
            &["version", "commit", "build_date"],
        )?;
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                env!("C2QUAY_GIT_COMMIT"),
                env!("C2QUAY_BUILD_DATE"),
            ])
            .set(1);
        Ok(metrics)
    }

    /// The Prometheus text exposition of every metric, for `/metrics`.
    pub fn render(&self) -> String {
        let mut families = self.registry.gather();
        families.extend(self.process_registry.gather());
        let mut text = String::new();
        if let Err(error) = TextEncoder::new().encode_utf8(&families, &mut text) {
            // Only reachable with an inconsistent metric family, which `gather` never returns.
            tracing::error!(%error, "could not encode the metrics");
        }
        text
    }

    /// The content type of [`Metrics::render`]'s output, for the `/metrics` response.
    pub fn content_type(&self) -> &'static str {
        prometheus::TEXT_FORMAT
    }

    /// Creates every series of an environment (counters at 0, phase `Pending`), so that
    /// `increase()` sees the first rollback or failure. Idempotent; every other
    /// environment method calls it, but calling it when a manifest is first loaded gives
    /// the counters a 0 sample before anything happens.
    pub fn init_environment(&self, env: &str) {
        let mut known = lock(&self.known_environments);
        if known.contains(env) {
            return;
        }
        known.insert(env.to_owned());
        for result in ReconcileResult::ALL {
            self.reconcile_total
                .with_label_values(&[env, result.as_str()]);
        }
        for result in GateResult::ALL {
            self.gate_checks_total
                .with_label_values(&[env, result.as_str()]);
        }
        for outcome in Outcome::ALL {
            self.rollbacks_total
                .with_label_values(&[env, outcome.as_str()]);
            self.records_total
                .with_label_values(&[env, outcome.as_str()]);
        }
        for result in RecoveryResult::ALL {
            self.recoveries_total
                .with_label_values(&[env, result.as_str()]);
        }
        self.heals_total.with_label_values(&[env]);
        for phase in PHASES {
            let value = i64::from(*phase == "Pending");
            self.environment_phase
                .with_label_values(&[env, phase])
                .set(value);
        }
        for gauge in [
            &self.environment_ready,
            &self.gate_blocked,
            &self.gate_blocked_since_timestamp_seconds,
            &self.drift_detected,
            &self.pending_records,
            &self.manifest_errors,
            &self.state_error,
        ] {
            gauge.with_label_values(&[env]).set(0);
        }
        self.init_host_blocked(env);
    }

    /// Removes every series of an environment whose manifest was deleted, so dashboards and
    /// alerts stop showing it.
    pub fn forget_environment(&self, env: &str) {
        lock(&self.known_environments).remove(env);
        for result in ReconcileResult::ALL {
            let _ = self
                .reconcile_total
                .remove_label_values(&[env, result.as_str()]);
        }
        for result in GateResult::ALL {
            let _ = self
                .gate_checks_total
                .remove_label_values(&[env, result.as_str()]);
        }
        for outcome in Outcome::ALL {
            let _ = self
                .rollbacks_total
                .remove_label_values(&[env, outcome.as_str()]);
            let _ = self
                .records_total
                .remove_label_values(&[env, outcome.as_str()]);
        }
        for result in RecoveryResult::ALL {
            let _ = self
                .recoveries_total
                .remove_label_values(&[env, result.as_str()]);
        }
        for step in Step::ALL {
            let _ = self
                .step_duration_seconds
                .remove_label_values(&[env, step.as_str()]);
        }
        for phase in PHASES {
            let _ = self.environment_phase.remove_label_values(&[env, phase]);
        }
        let _ = self.heals_total.remove_label_values(&[env]);
        let _ = self.reconcile_duration_seconds.remove_label_values(&[env]);
        for gauge in [
            &self.environment_ready,
            &self.gate_blocked,
            &self.gate_blocked_since_timestamp_seconds,
            &self.drift_detected,
            &self.pending_records,
            &self.manifest_errors,
            &self.last_success_timestamp_seconds,
            &self.state_error,
        ] {
            let _ = gauge.remove_label_values(&[env]);
        }
        self.forget_host_blocked(env);
    }

    /// Sets the one-hot phase of an environment (every other phase to 0) and
    /// `c2quay_environment_ready`. `phase` must be one of [`PHASES`]; anything else is
    /// logged and ignored, so a label never carries an unbounded value.
    pub fn set_phase(&self, env: &str, phase: &str) {
        if !PHASES.contains(&phase) {
            tracing::warn!(
                environment = env,
                phase,
                "unknown phase not exported as a metric"
            );
            return;
        }
        self.init_environment(env);
        for other in PHASES {
            self.environment_phase
                .with_label_values(&[env, other])
                .set(i64::from(*other == phase));
        }
        self.environment_ready
            .with_label_values(&[env])
            .set(i64::from(phase == "Ready"));
    }

    /// Counts one finished reconcile and observes its duration. A successful result
    /// ([`ReconcileResult::is_success`]) also sets the last success timestamp to now.
    pub fn observe_reconcile(&self, env: &str, result: ReconcileResult, duration: Duration) {
        self.init_environment(env);
        self.reconcile_total
            .with_label_values(&[env, result.as_str()])
            .inc();
        self.reconcile_duration_seconds
            .with_label_values(&[env])
            .observe(duration.as_secs_f64());
        if result.is_success() {
            self.set_last_success(env, SystemTime::now());
        }
    }

    /// Observes the duration of one pipeline step.
    pub fn observe_step(&self, env: &str, step: Step, duration: Duration) {
        self.step_duration_seconds
            .with_label_values(&[env, step.as_str()])
            .observe(duration.as_secs_f64());
    }

    /// A timer that observes the step's duration when dropped (or on `observe_duration`).
    pub fn step_timer(&self, env: &str, step: Step) -> prometheus::HistogramTimer {
        self.step_duration_seconds
            .with_label_values(&[env, step.as_str()])
            .start_timer()
    }

    /// Counts one can-i-deploy answer.
    pub fn observe_gate_check(&self, env: &str, result: GateResult) {
        self.init_environment(env);
        self.gate_checks_total
            .with_label_values(&[env, result.as_str()])
            .inc();
    }

    /// Sets whether the gate of an environment is blocked. The first call with `true` after
    /// an open gate sets the blocked-since timestamp to now; `false` resets it to 0. Use
    /// [`Metrics::set_gate_blocked_since`] when the time the gate closed is known (it
    /// survives agent restarts in status).
    pub fn set_gate_blocked(&self, env: &str, blocked: bool) {
        self.init_environment(env);
        let since = self
            .gate_blocked_since_timestamp_seconds
            .with_label_values(&[env]);
        let already_blocked = self.gate_blocked.with_label_values(&[env]).get() == 1;
        if !blocked {
            self.set_gate_blocked_since(env, None);
        } else if !already_blocked || since.get() == 0 {
            self.set_gate_blocked_since(env, Some(SystemTime::now()));
        }
    }

    /// Sets whether the gate of an environment is blocked and since when: `Some(since)`
    /// while blocked (the time the gate first said no or unknown), `None` once it allows the
    /// deploy.
    pub fn set_gate_blocked_since(&self, env: &str, blocked_since: Option<SystemTime>) {
        self.init_environment(env);
        self.gate_blocked
            .with_label_values(&[env])
            .set(i64::from(blocked_since.is_some()));
        self.gate_blocked_since_timestamp_seconds
            .with_label_values(&[env])
            .set(blocked_since.map_or(0, unix_seconds));
    }

    /// Counts one finished rollback.
    pub fn observe_rollback(&self, env: &str, outcome: Outcome) {
        self.init_environment(env);
        self.rollbacks_total
            .with_label_values(&[env, outcome.as_str()])
            .inc();
    }

    /// Counts one recovery of an interrupted operation.
    pub fn observe_recovery(&self, env: &str, result: RecoveryResult) {
        self.init_environment(env);
        self.recoveries_total
            .with_label_values(&[env, result.as_str()])
            .inc();
    }

    /// Sets whether the running containers of an environment drifted from its applied state.
    pub fn set_drift_detected(&self, env: &str, drifted: bool) {
        self.init_environment(env);
        self.drift_detected
            .with_label_values(&[env])
            .set(i64::from(drifted));
    }

    /// Counts one drift repair.
    pub fn observe_heal(&self, env: &str) {
        self.init_environment(env);
        self.heals_total.with_label_values(&[env]).inc();
    }

    /// Sets the number of deployments of an environment waiting in the outbox.
    pub fn set_pending_records(&self, env: &str, n_pending_records: usize) {
        self.init_environment(env);
        self.pending_records
            .with_label_values(&[env])
            .set(saturating_i64(n_pending_records));
    }

    /// Counts one record-deployment attempt.
    pub fn observe_record(&self, env: &str, outcome: Outcome) {
        self.init_environment(env);
        self.records_total
            .with_label_values(&[env, outcome.as_str()])
            .inc();
    }

    /// Counts one HTTP request to the broker and observes its duration. `method` is the
    /// HTTP method (anything unusual is exported as `other`); `status` is the response
    /// code, or `None` when no response arrived (exported as `error`).
    pub fn observe_broker_request(&self, method: &str, status: Option<u16>, duration: Duration) {
        let method = HTTP_METHODS
            .iter()
            .find(|known| known.eq_ignore_ascii_case(method))
            .copied()
            .unwrap_or("other");
        let status = match status {
            Some(code @ 100..=599) => code.to_string(),
            Some(_) => "invalid".to_owned(),
            None => "error".to_owned(),
        };
        self.broker_requests_total
            .with_label_values(&[method, status.as_str()])
            .inc();
        self.broker_request_duration_seconds
            .with_label_values(&[method])
            .observe(duration.as_secs_f64());
    }

    /// Sets the time of the last reconcile that left the environment converged.
    pub fn set_last_success(&self, env: &str, at: SystemTime) {
        self.last_success_timestamp_seconds
            .with_label_values(&[env])
            .set(unix_seconds(at));
    }

    /// Sets the number of problems in the environment's manifest (0 when it is valid).
    pub fn set_manifest_errors(&self, env: &str, n_problems: usize) {
        self.init_environment(env);
        self.manifest_errors
            .with_label_values(&[env])
            .set(saturating_i64(n_problems));
    }
}

/// Locks the set of known environments; a poisoned lock still holds a usable set.
fn lock(set: &Mutex<BTreeSet<String>>) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
    set.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whole seconds since the Unix epoch (0 before it).
fn unix_seconds(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |since| saturating_i64(since.as_secs()))
}

/// Converts a count to a gauge value, saturating instead of wrapping.
fn saturating_i64(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}
