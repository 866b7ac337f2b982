//! One container as the Engine sees it, with its state and health as closed enums (serialized
//! as Docker's own lowercase words, so snapshots keep their shape).

use std::fmt;

use serde::{Deserialize, Serialize};

/// One container as `ps` + `inspect` see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// Container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// Compose project label.
    pub project: String,
    /// Compose service label.
    pub service: String,
    /// The image reference the container was created from.
    pub image: String,
    /// The image id (`sha256:...`) the container actually runs.
    pub image_id: String,
    /// Docker's state of the container.
    pub state: ContainerState,
    /// Its healthcheck's verdict ([`Health::None`] when it has none).
    pub health: Health,
    /// Exit code when exited.
    pub exit_code: i64,
    /// Docker's restart policy (`no`, `always`, `unless-stopped`, `on-failure`); empty when
    /// unknown. A long-running service (`always`, `unless-stopped`) that exited 0 was stopped,
    /// not finished.
    #[serde(default)]
    pub restart_policy: String,
    /// Whether the kernel's OOM killer ended it.
    #[serde(default)]
    pub oom_killed: bool,
    /// Compose's `com.docker.compose.config-hash` label (empty when absent): it changes when
    /// the container is re-created from another configuration.
    #[serde(default)]
    pub config_hash: String,
}

/// Docker's container state (`State.Status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Restarting after an exit (its restart policy).
    Restarting,
    /// Being removed.
    Removing,
    /// Exited (see the exit code).
    Exited,
    /// Dead: the daemon failed to remove or stop it.
    Dead,
    /// A word this version does not know, or none.
    #[default]
    #[serde(other, rename = "")]
    Unknown,
}

impl ContainerState {
    /// Docker's word for it (empty when unknown).
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Paused => "paused",
            ContainerState::Restarting => "restarting",
            ContainerState::Removing => "removing",
            ContainerState::Exited => "exited",
            ContainerState::Dead => "dead",
            ContainerState::Unknown => "",
        }
    }

    /// Whether it runs.
    pub fn is_running(self) -> bool {
        self == ContainerState::Running
    }
}

impl From<&str> for ContainerState {
    /// Docker's word, in any case; anything else is [`ContainerState::Unknown`].
    fn from(word: &str) -> Self {
        match word.to_ascii_lowercase().as_str() {
            "created" => ContainerState::Created,
            "running" => ContainerState::Running,
            "paused" => ContainerState::Paused,
            "restarting" => ContainerState::Restarting,
            "removing" => ContainerState::Removing,
            "exited" => ContainerState::Exited,
            "dead" => ContainerState::Dead,
            _ => ContainerState::Unknown,
        }
    }
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A container's healthcheck verdict (`State.Health.Status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Checks run, none passed yet.
    Starting,
    /// The last checks passed.
    Healthy,
    /// The checks fail.
    Unhealthy,
    /// No healthcheck (or none known).
    #[default]
    #[serde(other, rename = "")]
    None,
}

impl Health {
    /// Docker's word for it (empty without a healthcheck).
    pub fn as_str(self) -> &'static str {
        match self {
            Health::None => "",
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

impl From<&str> for Health {
    /// Docker's word, in any case; anything else (`none`, empty) is [`Health::None`].
    fn from(word: &str) -> Self {
        match word.to_ascii_lowercase().as_str() {
            "starting" => Health::Starting,
            "healthy" => Health::Healthy,
            "unhealthy" => Health::Unhealthy,
            _ => Health::None,
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_health_keep_dockers_words_in_json() {
        for word in [
            "created",
            "running",
            "paused",
            "restarting",
            "removing",
            "exited",
            "dead",
        ] {
            let state = ContainerState::from(word);
            assert_eq!(state.as_str(), word);
            assert_eq!(
                serde_json::to_string(&state).unwrap(),
                format!("\"{word}\"")
            );
            assert_eq!(
                serde_json::from_str::<ContainerState>(&format!("\"{word}\"")).unwrap(),
                state
            );
        }
        assert_eq!(ContainerState::from("Running"), ContainerState::Running);
        assert_eq!(
            serde_json::from_str::<ContainerState>("\"frozen\"").unwrap(),
            ContainerState::Unknown
        );
        assert_eq!(
            serde_json::from_str::<Health>("\"\"").unwrap(),
            Health::None
        );
        assert_eq!(serde_json::to_string(&Health::None).unwrap(), "\"\"");
        assert_eq!(
            serde_json::from_str::<Health>("\"healthy\"").unwrap(),
            Health::Healthy
        );
    }
}
