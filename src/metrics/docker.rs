//! Whether the Docker daemon answers, and how fast: `c2quay_docker_up` and
//! `c2quay_docker_list_duration_seconds`, set from the agent's container list (the first scan,
//! each resync, each reconcile's observation).

use std::time::Duration;

use prometheus::{Gauge, IntGauge, Opts, Registry};

use super::register::register;
use super::{Error, Metrics, Result};

/// The daemon's two gauges.
#[derive(Debug)]
pub(super) struct DockerMetrics {
    up: IntGauge,
    list_duration_seconds: Gauge,
}

impl DockerMetrics {
    /// Creates and registers both gauges; `up` starts at 0 until Docker answered once.
    pub(super) fn register(registry: &Registry) -> Result<DockerMetrics> {
        let up = IntGauge::with_opts(Opts::new(
            "docker_up",
            "1 if the Docker daemon answered the agent's last container list, else 0.",
        ))
        .map_err(|source| Error::Register {
            metric: "docker_up",
            source,
        })?;
        register(registry, "docker_up", up.clone())?;
        let list_duration_seconds = Gauge::with_opts(Opts::new(
            "docker_list_duration_seconds",
            "How long the Docker daemon took to answer the agent's last container list, in seconds (a timeout counts its full length).",
        ))
        .map_err(|source| Error::Register {
            metric: "docker_list_duration_seconds",
            source,
        })?;
        register(
            registry,
            "docker_list_duration_seconds",
            list_duration_seconds.clone(),
        )?;
        Ok(DockerMetrics {
            up,
            list_duration_seconds,
        })
    }
}

impl Metrics {
    /// Records one container list: whether Docker answered and how long it took.
    pub fn observe_docker(&self, answered: bool, took: Duration) {
        self.docker.up.set(i64::from(answered));
        self.docker.list_duration_seconds.set(took.as_secs_f64());
    }
}
