//! Whether the agent can read and write an environment's state: `c2quay_state_error`. An
//! environment whose status cannot be read or written is never exported as Ready, whatever its
//! last phase said.

use prometheus::{IntGaugeVec, Registry};

use super::register::gauge;
use super::{Metrics, Result};

/// Creates and registers `c2quay_state_error{environment}`.
pub(super) fn register(registry: &Registry) -> Result<IntGaugeVec> {
    gauge(
        registry,
        "state_error",
        "1 while the agent cannot read or write the environment's state files (status.json), else 0.",
        &["environment"],
    )
}

impl Metrics {
    /// Sets whether the state of `env` could be read and written in its last reconcile; an
    /// error also sets `c2quay_environment_ready` to 0.
    pub fn set_state_error(&self, env: &str, failing: bool) {
        self.init_environment(env);
        self.state_error
            .with_label_values(&[env])
            .set(i64::from(failing));
        if failing {
            self.environment_ready.with_label_values(&[env]).set(0);
        }
    }
}
