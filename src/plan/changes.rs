//! What differs between the desired environment (the manifest and the rendered Compose model)
//! and what was applied: releases (gated and recorded), configurations (applied, never gated
//! or recorded) and removed services. Pure.

use std::collections::BTreeMap;
use std::fmt;

use super::{AppliedState, changed_services};
use crate::docker::{Container, RenderedModel};
use crate::manifest::Environment;

/// How the configuration of one service changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// The service is new in the rendered model (or nothing was applied yet).
    Added,
    /// These top-level fields of the rendered service changed (`environment`, `ports`, ...).
    Fields(Vec<String>),
}

impl fmt::Display for ConfigChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigChange::Added => f.write_str("new service"),
            ConfigChange::Fields(fields) => f.write_str(&fields.join(", ")),
        }
    }
}

/// Everything a deploy has to apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Services whose release (version or pinned image) differs: gated when versioned, and
    /// recorded after smoke.
    pub releases: Vec<String>,
    /// Services whose rendered configuration differs from the applied one.
    pub configs: BTreeMap<String, ConfigChange>,
    /// Services applied before that the rendered model no longer has (to stop and remove).
    pub removed: Vec<String>,
}

impl Changes {
    /// Whether nothing differs.
    pub fn is_empty(&self) -> bool {
        self.releases.is_empty() && self.configs.is_empty() && self.removed.is_empty()
    }

    /// Services with a new release or a new configuration, in name order (not the removed ones).
    pub fn services(&self) -> Vec<String> {
        let mut services: Vec<String> = self
            .releases
            .iter()
            .chain(self.configs.keys())
            .cloned()
            .collect();
        services.sort();
        services.dedup();
        services
    }
}

/// What differs between `env` with its rendered model and what was applied and runs.
///
/// Without a model (`None`) only releases are compared. Configurations are compared per service
/// by hash: a service missing from `applied.configs` is new, unless the applied state predates
/// config tracking (a release applied, no configuration recorded), which adopts what runs.
pub fn changes(
    env: &Environment,
    rendered: Option<&RenderedModel>,
    applied: &AppliedState,
    observed: &[Container],
) -> Changes {
    let mut changes = Changes {
        releases: changed_services(env, applied, observed),
        ..Changes::default()
    };
    let Some(model) = rendered else {
        return changes;
    };
    let tracked = !applied.configs.is_empty();
    let nothing_applied = applied.generation.is_none() && applied.releases.is_empty();
    for (service, desired) in model.iter() {
        match applied.configs.get(service) {
            Some(config) if config.hash != desired.config.hash => {
                let fields = desired.config.changed_fields(&config.fields);
                changes
                    .configs
                    .insert(service.clone(), ConfigChange::Fields(fields));
            }
            Some(_) => {}
            None if tracked || nothing_applied => {
                changes.configs.insert(service.clone(), ConfigChange::Added);
            }
            None => {}
        }
    }
    changes.removed = applied
        .configs
        .keys()
        .filter(|service| !model.contains_key(*service))
        .cloned()
        .collect();
    changes
}

/// A hash of the whole rendered configuration (every service's config hash): what, with the
/// manifest's generation, identifies a failed release so it is not retried until one changes.
pub fn model_hash(model: &RenderedModel) -> String {
    use sha2::{Digest, Sha256};
    let text = model
        .iter()
        .map(|(service, rendered)| format!("{service}={}", rendered.config.hash))
        .collect::<Vec<_>>()
        .join(";");
    let mut hex = hex::encode(Sha256::digest(text.as_bytes()));
    hex.truncate(16);
    hex
}
