//! Glue between the status file and the planner: what was applied, and recording a new release.

use std::time::SystemTime;

use crate::manifest::Environment;
use crate::plan::{AppliedRelease, AppliedState, GateBlock};
use crate::state::{EnvironmentStatus, Release};

/// The planner's view of what was applied, from an environment's status.
pub fn applied_state_of(status: &EnvironmentStatus) -> AppliedState {
    AppliedState {
        generation: status.applied_generation.clone(),
        failed_generation: status.failed_generation.clone(),
        releases: status
            .releases
            .iter()
            .map(|(service, release)| {
                (
                    service.clone(),
                    AppliedRelease {
                        version: release.version.clone(),
                        image: release.image.clone(),
                    },
                )
            })
            .collect(),
        gate_blocked: match (&status.gate_blocked_generation, status.next_gate_check_at) {
            (Some(generation), Some(next_check_at)) => Some(GateBlock {
                generation: generation.clone(),
                next_check_at,
            }),
            _ => None,
        },
        heals: status.heals.clone(),
    }
}

/// Marks the desired release of `env` as applied: generation, per-service version and image.
/// Clears a failed generation and a blocked gate.
pub fn record_applied(status: &mut EnvironmentStatus, env: &Environment, _now: SystemTime) {
    status.applied_generation = Some(env.generation.clone());
    status.failed_generation = None;
    status.gate_checks = 0;
    status.next_gate_check_at = None;
    status.gate_blocked_generation = None;
    for (service, spec) in &env.manifest.spec.services {
        let image = match env.pinned_image(service) {
            Some(image) if !spec.gate_only => image,
            _ => match &spec.version {
                // A gate-only service runs elsewhere: keep its version, no image.
                Some(_) => String::new(),
                None => continue,
            },
        };
        status.releases.insert(
            service.clone(),
            Release {
                version: spec.version.clone(),
                image,
                image_id: None,
            },
        );
    }
}
