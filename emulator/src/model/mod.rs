//! The emulator's in-memory broker state and the mutations the HTTP routes
//! and the test helpers apply to it.
//!
//! Nothing here does IO: every function takes `&mut State` (or `&State`) and
//! returns plain data, so the rules (auto-undeploy, idempotent
//! record-deployment, verification keyed by pact content) are testable
//! without a server. Ordering ("latest", "newest first") uses a global
//! sequence number, never the clock.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Validation errors in the broker's hash form: field -> messages
/// (base-level errors use the empty-string key).
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// A pacticipant (an application that takes part in pacts).
#[derive(Debug, Clone, Serialize)]
pub struct Pacticipant {
    /// Unique name.
    pub name: String,
    /// Main branch name, detected from the first `main`/`master`/`develop` branch.
    pub main_branch: Option<String>,
    /// Creation timestamp (RFC 3339).
    pub created_at: String,
}

/// One version of a pacticipant.
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    /// Global creation order; larger is newer.
    pub order: u64,
    /// Pacticipant name.
    pub pacticipant: String,
    /// Version number.
    pub number: String,
    /// Branches this version is on, in the order they were added.
    pub branches: Vec<String>,
    /// Tags of this version.
    pub tags: Vec<String>,
    /// Optional CI build URL.
    pub build_url: Option<String>,
    /// Creation timestamp.
    pub created_at: String,
}

/// The latest publication of a pact for one consumer version and provider.
#[derive(Debug, Clone, Serialize)]
pub struct Pact {
    /// Global order of the (latest) publication.
    pub order: u64,
    /// Consumer name.
    pub consumer: String,
    /// Provider name.
    pub provider: String,
    /// Consumer version number.
    pub consumer_version: String,
    /// Content hash (the broker's "pact version sha").
    pub sha: String,
    /// Publication timestamp.
    pub created_at: String,
}

/// A verification result, attached to pact content (sha) and a provider version.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// Global order; also the id in the verification URL.
    pub order: u64,
    /// Provider name.
    pub provider: String,
    /// Consumer name.
    pub consumer: String,
    /// Pact content sha that was verified.
    pub sha: String,
    /// Provider version that verified it.
    pub provider_version: String,
    /// Outcome.
    pub success: bool,
    /// Timestamp.
    pub verified_at: String,
}

/// An environment (test, production, ...).
#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    /// Server-generated uuid.
    pub uuid: String,
    /// Unique name without spaces.
    pub name: String,
    /// Display name (generated from the name when blank).
    pub display_name: String,
    /// Whether this is a production environment.
    pub production: bool,
    /// Contacts as sent by the client.
    pub contacts: Option<serde_json::Value>,
    /// Creation timestamp.
    pub created_at: String,
    /// Last update timestamp.
    pub updated_at: Option<String>,
}

/// One deployment record (kept after undeployment, for "exactly once" checks).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeployedVersion {
    /// Global order; larger is newer.
    pub order: u64,
    /// Record uuid.
    pub uuid: String,
    /// Pacticipant name.
    pub pacticipant: String,
    /// Version number.
    pub version: String,
    /// Environment uuid.
    pub environment_uuid: String,
    /// Environment name (denormalised for assertions).
    pub environment_name: String,
    /// Application instance, if any.
    pub application_instance: Option<String>,
    /// Whether the record is current.
    pub currently_deployed: bool,
    /// Creation timestamp.
    pub created_at: String,
    /// When it was undeployed (explicitly or by a newer deployment).
    pub undeployed_at: Option<String>,
}

/// One release record.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReleasedVersion {
    /// Global order.
    pub order: u64,
    /// Record uuid.
    pub uuid: String,
    /// Pacticipant name.
    pub pacticipant: String,
    /// Version number.
    pub version: String,
    /// Environment uuid.
    pub environment_uuid: String,
    /// Whether the release is still supported.
    pub currently_supported: bool,
    /// Creation timestamp.
    pub created_at: String,
    /// When support ended.
    pub support_ended_at: Option<String>,
}

/// The whole broker state.
#[derive(Debug, Default, Clone, Serialize)]
pub struct State {
    seq: u64,
    /// Pacticipants in creation order.
    pub pacticipants: Vec<Pacticipant>,
    /// Versions in creation order.
    pub versions: Vec<Version>,
    /// Pact content by sha.
    pub contents: BTreeMap<String, String>,
    /// Latest pact publication per (consumer, consumer version, provider).
    pub pacts: Vec<Pact>,
    /// Verification results in publication order.
    pub verifications: Vec<Verification>,
    /// Environments in creation order.
    pub environments: Vec<Environment>,
    /// Deployment records in creation order (incl. undeployed ones).
    pub deployed: Vec<DeployedVersion>,
    /// Release records in creation order.
    pub released: Vec<ReleasedVersion>,
}

/// What publishing one pact did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOutcome {
    /// Content sha of the pact.
    pub sha: String,
    /// Whether the consumer version was created by this publication.
    pub version_created: bool,
    /// Whether a different content was already published for this consumer version.
    pub content_changed: bool,
}

/// Current time as the broker renders it (`2026-01-01T00:00:00+00:00`).
pub fn now() -> String {
    let s = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    s.strip_suffix('Z')
        .map_or(s.clone(), |t| format!("{t}+00:00"))
}

/// A random (version 4) uuid.
pub fn new_uuid() -> String {
    let mut b = fastrand::u128(..).to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The content sha of a pact: sha256 of its compact JSON, first 40 hex chars
/// (the real broker uses sha1 of normalised content; only equality matters).
pub fn content_sha(content: &serde_json::Value) -> String {
    let text = content.to_string();
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(digest)[..40].to_string()
}

/// "test" -> "Test", "pre-prod" -> "Pre prod" (the broker's display-name generation).
pub fn display_name_for(name: &str) -> String {
    let spaced = name.replace(['-', '_'], " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl State {
    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Finds a pacticipant by exact name.
    pub fn pacticipant(&self, name: &str) -> Option<&Pacticipant> {
        self.pacticipants.iter().find(|p| p.name == name)
    }

    /// Creates the pacticipant if missing; returns whether it was created.
    pub fn ensure_pacticipant(&mut self, name: &str) -> bool {
        if self.pacticipant(name).is_some() {
            return false;
        }
        self.pacticipants.push(Pacticipant {
            name: name.to_string(),
            main_branch: None,
            created_at: now(),
        });
        true
    }

    /// Finds a version.
    pub fn version(&self, pacticipant: &str, number: &str) -> Option<&Version> {
        self.versions
            .iter()
            .find(|v| v.pacticipant == pacticipant && v.number == number)
    }

    fn version_mut(&mut self, pacticipant: &str, number: &str) -> Option<&mut Version> {
        self.versions
            .iter_mut()
            .find(|v| v.pacticipant == pacticipant && v.number == number)
    }

    /// All versions of a pacticipant, oldest first.
    pub fn versions_of<'a>(
        &'a self,
        pacticipant: &'a str,
    ) -> impl Iterator<Item = &'a Version> + 'a {
        self.versions
            .iter()
            .filter(move |v| v.pacticipant == pacticipant)
    }

    /// The newest version of a pacticipant.
    pub fn latest_version<'a>(&'a self, pacticipant: &'a str) -> Option<&'a Version> {
        self.versions_of(pacticipant).max_by_key(|v| v.order)
    }

    /// Creates the pacticipant and version if missing; returns whether the version was created.
    pub fn ensure_version(&mut self, pacticipant: &str, number: &str) -> bool {
        self.ensure_pacticipant(pacticipant);
        if self.version(pacticipant, number).is_some() {
            return false;
        }
        let order = self.next();
        self.versions.push(Version {
            order,
            pacticipant: pacticipant.to_string(),
            number: number.to_string(),
            branches: Vec::new(),
            tags: Vec::new(),
            build_url: None,
            created_at: now(),
        });
        true
    }

    /// Adds a version to a branch (creating both as needed); returns whether the version was created.
    pub fn add_branch(&mut self, pacticipant: &str, number: &str, branch: &str) -> bool {
        let created = self.ensure_version(pacticipant, number);
        if let Some(v) = self.version_mut(pacticipant, number) {
            if !v.branches.iter().any(|b| b == branch) {
                v.branches.push(branch.to_string());
            }
        }
        if let Some(p) = self.pacticipants.iter_mut().find(|p| p.name == pacticipant) {
            if p.main_branch.is_none() && ["main", "master", "develop"].contains(&branch) {
                p.main_branch = Some(branch.to_string());
            }
        }
        created
    }

    /// Tags a version (creating it as needed); returns whether the tag was new.
    pub fn add_tag(&mut self, pacticipant: &str, number: &str, tag: &str) -> bool {
        self.ensure_version(pacticipant, number);
        match self.version_mut(pacticipant, number) {
            Some(v) if !v.tags.iter().any(|t| t == tag) => {
                v.tags.push(tag.to_string());
                true
            }
            _ => false,
        }
    }

    /// Applies a version body (`branch`, `buildUrl`, `tags`); `replace` = PUT semantics.
    pub fn update_version(
        &mut self,
        pacticipant: &str,
        number: &str,
        body: &serde_json::Value,
        replace: bool,
    ) -> bool {
        let created = self.ensure_version(pacticipant, number);
        if let Some(b) = body.get("branch").and_then(|b| b.as_str()) {
            self.add_branch(pacticipant, number, b);
        }
        if let Some(v) = self.version_mut(pacticipant, number) {
            match body.get("buildUrl") {
                Some(serde_json::Value::String(u)) => v.build_url = Some(u.clone()),
                Some(serde_json::Value::Null) => v.build_url = None,
                _ if replace => v.build_url = None,
                _ => {}
            }
            if let Some(tags) = body.get("tags").and_then(|t| t.as_array()) {
                v.tags = tags
                    .iter()
                    .filter_map(|t| t.get("name").and_then(|n| n.as_str()).or(t.as_str()))
                    .map(str::to_string)
                    .collect();
            } else if replace {
                v.tags.clear();
            }
        }
        created
    }

    /// Deletes a version; returns whether it existed.
    pub fn delete_version(&mut self, pacticipant: &str, number: &str) -> bool {
        let before = self.versions.len();
        self.versions
            .retain(|v| !(v.pacticipant == pacticipant && v.number == number));
        before != self.versions.len()
    }

    /// Publishes (or republishes) a pact for a consumer version.
    pub fn publish_pact(
        &mut self,
        consumer: &str,
        consumer_version: &str,
        provider: &str,
        content: &serde_json::Value,
    ) -> PublishOutcome {
        let version_created = self.ensure_version(consumer, consumer_version);
        self.ensure_pacticipant(provider);
        let sha = content_sha(content);
        self.contents
            .entry(sha.clone())
            .or_insert_with(|| content.to_string());
        let order = self.next();
        let existing = self.pacts.iter_mut().find(|p| {
            p.consumer == consumer
                && p.provider == provider
                && p.consumer_version == consumer_version
        });
        let content_changed = match existing {
            Some(p) => {
                let changed = p.sha != sha;
                if changed {
                    p.sha = sha.clone();
                    p.order = order;
                    p.created_at = now();
                }
                changed
            }
            None => {
                self.pacts.push(Pact {
                    order,
                    consumer: consumer.to_string(),
                    provider: provider.to_string(),
                    consumer_version: consumer_version.to_string(),
                    sha: sha.clone(),
                    created_at: now(),
                });
                false
            }
        };
        PublishOutcome {
            sha,
            version_created,
            content_changed,
        }
    }

    /// The latest pact for a consumer version and provider.
    pub fn pact(&self, provider: &str, consumer: &str, consumer_version: &str) -> Option<&Pact> {
        self.pacts.iter().find(|p| {
            p.provider == provider
                && p.consumer == consumer
                && p.consumer_version == consumer_version
        })
    }

    /// Whether any pact exists between the two (the integrations table).
    pub fn integration_exists(&self, consumer: &str, provider: &str) -> bool {
        self.pacts
            .iter()
            .any(|p| p.consumer == consumer && p.provider == provider)
    }

    /// Records a verification of pact content `sha` by a provider version (created as needed).
    pub fn verify(
        &mut self,
        provider: &str,
        consumer: &str,
        sha: &str,
        provider_version: &str,
        success: bool,
    ) -> Verification {
        self.ensure_version(provider, provider_version);
        let order = self.next();
        let v = Verification {
            order,
            provider: provider.to_string(),
            consumer: consumer.to_string(),
            sha: sha.to_string(),
            provider_version: provider_version.to_string(),
            success,
            verified_at: now(),
        };
        self.verifications.push(v.clone());
        v
    }
}

mod deploy;

#[cfg(test)]
mod tests;
