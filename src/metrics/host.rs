//! Whether the host refuses an environment's apply, and why: `c2quay_host_blocked`. One series
//! per cause ([`HostCause::ALL`]); at most one is 1.

use prometheus::{IntGaugeVec, Registry};

use super::register::gauge;
use super::{Metrics, Result};
use crate::docker::HostCause;

/// Creates and registers `c2quay_host_blocked{environment,cause}`.
pub(super) fn register(registry: &Registry) -> Result<IntGaugeVec> {
    gauge(
        registry,
        "host_blocked",
        "1 while the host refuses the environment's apply for this cause (address_pools, disk_full, daemon_unavailable, port_taken); the same generation is retried with backoff.",
        &["environment", "cause"],
    )
}

impl Metrics {
    /// Sets which cause, if any, makes the host refuse the apply of `env` now.
    pub fn set_host_blocked(&self, env: &str, cause: Option<HostCause>) {
        self.init_environment(env);
        for each in HostCause::ALL {
            self.host_blocked
                .with_label_values(&[env, each.as_str()])
                .set(i64::from(Some(each) == cause));
        }
    }

    /// `c2quay_host_blocked` of a newly seen environment: 0 for every cause.
    pub(super) fn init_host_blocked(&self, env: &str) {
        for cause in HostCause::ALL {
            self.host_blocked
                .with_label_values(&[env, cause.as_str()])
                .set(0);
        }
    }

    /// Removes the `c2quay_host_blocked` series of a forgotten environment.
    pub(super) fn forget_host_blocked(&self, env: &str) {
        for cause in HostCause::ALL {
            let _ = self
                .host_blocked
                .remove_label_values(&[env, cause.as_str()]);
        }
    }
}
