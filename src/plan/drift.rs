//! Why a service counts as drifted: what runs differs from what c2quay applied.

use std::fmt;

/// Why a service counts as drifted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// No container for the service.
    Missing,
    /// The container is not running: its state, with the exit code when it exited, e.g.
    /// `exited (137)` (a kill or an OOM kill), `restarting (3)` (a crash loop), `created` (never
    /// started: a failed `up`).
    NotRunning(String),
    /// The container's healthcheck reports unhealthy.
    Unhealthy,
    /// Fewer containers run than the model's `scale` / `deploy.replicas` asks.
    Replicas {
        /// Running containers.
        running: usize,
        /// What the model asks.
        wanted: u32,
    },
    /// The container was re-created from another configuration than was applied (Compose's
    /// config hash differs: someone ran `docker compose up` by hand).
    OtherConfig,
    /// The container runs another image than was applied.
    OtherImage {
        /// What was applied.
        applied: String,
        /// What runs.
        running: String,
    },
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Missing => f.write_str("container missing"),
            Drift::NotRunning(state) => write!(f, "container {state}"),
            Drift::Unhealthy => f.write_str("container unhealthy"),
            Drift::Replicas { running, wanted } => {
                write!(f, "{running} of {wanted} replicas running")
            }
            Drift::OtherConfig => f.write_str(
                "container re-created outside c2quay from another configuration (Compose config hash differs)",
            ),
            Drift::OtherImage { applied, running } => {
                write!(f, "runs {running} instead of {applied}")
            }
        }
    }
}
