//! The seed file format (`--seed FILE`, YAML or JSON) and how it is applied.
//!
//! ```yaml
//! environments:
//!   - { name: test, production: false }
//!   - { name: production, production: true, displayName: Production }
//! versions:            # optional: create-or-update-version
//!   - { pacticipant: web, version: "1", branch: main, tags: [prod] }
//! pacts:               # consumer version publishes a pact with provider
//!   - { consumer: web, consumerVersion: "1", provider: api, branch: main }   # content: optional pact JSON
//! verifications:       # provider version verifies the pact content of that consumer version
//!   - { provider: api, providerVersion: "7", consumer: web, consumerVersion: "1", success: true }
//! deployments:         # record-deployment (auto-undeploys the previous one)
//!   - { pacticipant: api, version: "7", environment: production, applicationInstance: blue }
//! releases:
//!   - { pacticipant: api, version: "7", environment: production }
//! ```
//! Entries are applied in the order above; a reference to something missing
//! is an error naming the section and index.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::State;

/// Errors loading or applying a seed.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The file could not be read.
    #[error("cannot read seed file {path}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is neither valid JSON nor valid YAML for this format.
    #[error("seed file {path} is not a valid seed: {message}")]
    Parse {
        /// The file.
        path: String,
        /// Parser message.
        message: String,
    },
    /// An entry refers to something that does not exist or is invalid.
    #[error("seed {section}[{index}]: {message}")]
    Invalid {
        /// Section name.
        section: &'static str,
        /// Index in the section.
        index: usize,
        /// What is wrong.
        message: String,
    },
}

impl SeedError {
    /// A bounded label for this error.
    pub fn kind(&self) -> &'static str {
        match self {
            SeedError::Read { .. } => "read",
            SeedError::Parse { .. } => "parse",
            SeedError::Invalid { .. } => "invalid",
        }
    }
}

/// An environment to create.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedEnvironment {
    /// Name.
    pub name: String,
    /// Production flag.
    pub production: bool,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A version to create or update.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedVersion {
    /// Pacticipant.
    pub pacticipant: String,
    /// Version number.
    pub version: String,
    /// Branch.
    #[serde(default)]
    pub branch: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A pact publication.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedPact {
    /// Consumer.
    pub consumer: String,
    /// Consumer version.
    pub consumer_version: String,
    /// Provider.
    pub provider: String,
    /// Consumer version branch.
    #[serde(default)]
    pub branch: Option<String>,
    /// Pact content; defaults to a minimal pact between the two.
    #[serde(default)]
    pub content: Option<Value>,
}

/// A verification result.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedVerification {
    /// Provider.
    pub provider: String,
    /// Provider version (created if missing).
    pub provider_version: String,
    /// Consumer.
    pub consumer: String,
    /// Consumer version whose pact content is verified.
    pub consumer_version: String,
    /// Outcome.
    pub success: bool,
}

/// A deployment or release.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedDeployment {
    /// Pacticipant.
    pub pacticipant: String,
    /// Version (must exist).
    pub version: String,
    /// Environment name.
    pub environment: String,
    /// Application instance.
    #[serde(default)]
    pub application_instance: Option<String>,
}

/// A whole seed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seed {
    /// Environments.
    #[serde(default)]
    pub environments: Vec<SeedEnvironment>,
    /// Versions.
    #[serde(default)]
    pub versions: Vec<SeedVersion>,
    /// Pacts.
    #[serde(default)]
    pub pacts: Vec<SeedPact>,
    /// Verifications.
    #[serde(default)]
    pub verifications: Vec<SeedVerification>,
    /// Deployments.
    #[serde(default)]
    pub deployments: Vec<SeedDeployment>,
    /// Releases.
    #[serde(default)]
    pub releases: Vec<SeedDeployment>,
}

/// A minimal pact document between two pacticipants.
pub fn minimal_pact(consumer: &str, provider: &str) -> Value {
    json!({"consumer": {"name": consumer}, "provider": {"name": provider}, "interactions": [],
           "metadata": {"pactSpecification": {"version": "3.0.0"}}})
}

impl Seed {
    /// Parses JSON or YAML text (`path` is only used in errors).
    pub fn parse(text: &str, path: &str) -> Result<Self, SeedError> {
        serde_json::from_str(text)
            .or_else(|_| serde_yaml::from_str(text))
            .map_err(|e| SeedError::Parse {
                path: path.to_string(),
                message: e.to_string(),
            })
    }

    /// Reads and parses a seed file.
    pub fn load(path: &std::path::Path) -> Result<Self, SeedError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SeedError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Applies the seed to a state.
    pub fn apply(&self, state: &mut State) -> Result<(), SeedError> {
        let invalid = |section, index, message: String| SeedError::Invalid {
            section,
            index,
            message,
        };
        for (i, e) in self.environments.iter().enumerate() {
            let body =
                json!({"name": e.name, "production": e.production, "displayName": e.display_name});
            state
                .upsert_environment(&body, None)
                .map_err(|errs| invalid("environments", i, format!("{errs:?}")))?;
        }
        for v in &self.versions {
            let tags: Vec<Value> = v.tags.iter().map(|t| json!({"name": t})).collect();
            state.update_version(
                &v.pacticipant,
                &v.version,
                &json!({"branch": v.branch, "tags": tags}),
                false,
            );
        }
        for p in &self.pacts {
            let content = p
                .content
                .clone()
                .unwrap_or_else(|| minimal_pact(&p.consumer, &p.provider));
            state.publish_pact(&p.consumer, &p.consumer_version, &p.provider, &content);
            if let Some(b) = &p.branch {
                state.add_branch(&p.consumer, &p.consumer_version, b);
            }
        }
        for (i, v) in self.verifications.iter().enumerate() {
            let sha = state
                .pact(&v.provider, &v.consumer, &v.consumer_version)
                .map(|p| p.sha.clone())
                .ok_or_else(|| {
                    invalid(
                        "verifications",
                        i,
                        format!(
                            "no pact from {} version {} with {}",
                            v.consumer, v.consumer_version, v.provider
                        ),
                    )
                })?;
            state.verify(
                &v.provider,
                &v.consumer,
                &sha,
                &v.provider_version,
                v.success,
            );
        }
        for (section, list) in [
            ("deployments", &self.deployments),
            ("releases", &self.releases),
        ] {
            for (i, d) in list.iter().enumerate() {
                let env = state
                    .environment_named(&d.environment)
                    .cloned()
                    .ok_or_else(|| {
                        invalid(
                            section,
                            i,
                            format!("environment '{}' does not exist", d.environment),
                        )
                    })?;
                if state.version(&d.pacticipant, &d.version).is_none() {
                    return Err(invalid(
                        section,
                        i,
                        format!("version {} of {} does not exist", d.version, d.pacticipant),
                    ));
                }
                if section == "deployments" {
                    state.record_deployment(
                        &d.pacticipant,
                        &d.version,
                        &env,
                        d.application_instance.as_deref(),
                    );
                } else {
                    state.record_release(&d.pacticipant, &d.version, &env.uuid);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_seed_applies_and_reports_missing_refs() {
        let yaml = "environments:\n  - { name: production, production: true }\npacts:\n  - { consumer: web, consumerVersion: '1', provider: api }\nverifications:\n  - { provider: api, providerVersion: '7', consumer: web, consumerVersion: '1', success: true }\ndeployments:\n  - { pacticipant: api, version: '7', environment: production }\n";
        let seed = Seed::parse(yaml, "s.yaml").expect("parses");
        let mut state = State::default();
        seed.apply(&mut state).expect("applies");
        assert_eq!(state.deployed.len(), 1);
        assert_eq!(state.verifications.len(), 1);
        let bad = Seed::parse(
            "deployments:\n  - { pacticipant: x, version: '1', environment: nope }\n",
            "b.yaml",
        )
        .expect("parses");
        let err = bad.apply(&mut State::default()).expect_err("missing env");
        assert_eq!(
            err.to_string(),
            "seed deployments[0]: environment 'nope' does not exist"
        );
        assert_eq!(
            Seed::parse("envs: 1", "x").map_err(|e| e.kind()).err(),
            Some("parse")
        );
    }
}
