//! What c2quay last applied to an environment, as the planner reads it: releases, configs, the
//! failed generation, and the gate and host blocks that make it wait.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// What c2quay last applied to an environment: the input the planner compares against.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedState {
    /// Generation of the manifest that was last applied successfully.
    pub generation: Option<String>,
    /// Generation whose deploy failed and was rolled back; not retried until it changes.
    pub failed_generation: Option<String>,
    /// [`model_hash`] of the rendered model of that failed deploy: a change of the Compose
    /// files alone is a new release too. `None` when unknown (compare the generation only).
    pub failed_model: Option<String>,
    /// Service -> what was applied (version and image reference).
    pub releases: BTreeMap<String, AppliedRelease>,
    /// Generation whose gate is blocked, and when the gate may be asked again.
    pub gate_blocked: Option<GateBlock>,
    /// Generation (and rendered model) the host refused to apply, and when to try again.
    #[serde(default)]
    pub host_blocked: Option<HostBlocked>,
    /// Times of the recent heals (for the heal cap).
    pub heals: Vec<SystemTime>,
    /// Service -> the configuration that was applied (every service of the rendered model).
    /// Empty when nothing was applied yet, or when the state predates config tracking.
    pub configs: BTreeMap<String, AppliedConfig>,
    /// The generation a local `c2quay suspend` holds: while the manifest has it, the planner
    /// only observes.
    #[serde(default)]
    pub suspended_generation: Option<String>,
}

/// The configuration applied to one service: c2quay's config hash of the rendered service, and
/// Compose's `config-hash` label its container had right after the apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedConfig {
    /// [`ServiceConfig::hash`](crate::docker::ServiceConfig) of the applied rendered service.
    pub hash: String,
    /// Top-level field -> its hash, to name what changed.
    pub fields: BTreeMap<String, String>,
    /// Compose's `com.docker.compose.config-hash` of the container seen after the apply; a
    /// container with another one was re-created by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose_hash: Option<String>,
}

/// One applied service release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedRelease {
    /// The release identity recorded in the broker, when gated.
    pub version: Option<String>,
    /// The image reference that was pinned.
    pub image: String,
    /// The broker's pacticipant, when gated (`None` in older state: the service name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pacticipant: Option<String>,
    /// The image id its container ran right after the apply (`None` when not seen): what runs
    /// is compared by id when known, so a moved tag is drift and a rollback by id is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
}

/// A blocked gate: which generation, and when to ask the broker again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateBlock {
    /// The generation that was blocked.
    pub generation: String,
    /// Do not ask before this time.
    pub next_check_at: SystemTime,
}

/// An apply the host refused: which generation and model, why, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostBlocked {
    /// The generation refused.
    pub generation: String,
    /// [`model_hash`] of its rendered model, when known.
    pub model: Option<String>,
    /// What refused it.
    pub cause: crate::docker::HostCause,
    /// Do not try before this time.
    pub next_attempt_at: SystemTime,
}
