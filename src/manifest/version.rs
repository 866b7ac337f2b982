//! Release identity from the artefacts (issue 21 item 3): a service's `version` written out,
//! or taken from what is deployed: `{ from: digest }` (the pinned image's `sha256:<hex>`) or
//! `{ from: git, short: N }` (the desired directory's commit, all of it or its first N hex
//! digits), the Go tool's `resolved_image_digest` and `git_sha` strategies.
//!
//! [`VersionSpec`] is the field's type; [`check`] its rules (called by `rules.rs`: a digest
//! version needs a digest pin, `short` is for git and 7 to 40); [`resolve_versions`] replaces
//! each `From` by the literal it stands for when the manifest is loaded (`parse.rs`), reading
//! the desired directory's commit once per load ([`DesiredCommit`], files only, through
//! [`crate::git::head_commit`]); [`versions_as_written`] keeps a plain-scalar version
//! (`version: 1.10`) as its text, which a string-or-mapping field receives as a number.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::locate::value_of;
use super::problem::FieldPath;
use super::types::{Manifest, ServiceSpec};

/// [`ServiceSpec::version`]: written out (`"1.4.3"`), or taken from what is deployed
/// (`{ from: digest }`, `{ from: git, short: 12 }`). Loading resolves a `From` into the
/// `Literal` it stands for, so an [`super::Environment`]'s manifest holds literals only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum VersionSpec {
    /// The version as written.
    Literal(String),
    /// The version of an artefact: the pinned image's digest, or the desired directory's commit.
    From(VersionFrom),
}

impl VersionSpec {
    /// The written (or resolved) version; `None` for an unresolved `From`.
    pub fn literal(&self) -> Option<&str> {
        match self {
            VersionSpec::Literal(text) => Some(text),
            VersionSpec::From(_) => None,
        }
    }

    /// Whether it is `{ from: <source> }`.
    pub fn is_from(&self, source: VersionSource) -> bool {
        matches!(self, VersionSpec::From(from) if from.from == source)
    }
}

/// `version: { from: ..., short: ... }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VersionFrom {
    /// Where the version comes from.
    pub from: VersionSource,
    /// `from: git` only: the first N hex digits of the commit (7 to 40); default all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short: Option<u8>,
}

/// [`VersionFrom::from`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionSource {
    /// The pinned image's `@sha256:` digest, written `sha256:<64 hex>`.
    Digest,
    /// The commit of the desired directory's git work tree (40 hex digits, or `short`).
    Git,
}

impl<'de> Deserialize<'de> for VersionSpec {
    /// A string, or a mapping. A plain number or boolean (`version: 1.10`) arrives here as a
    /// value, not its text; `parse.rs` puts the text written back.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = VersionSpec;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a version string, `{ from: digest }` or `{ from: git }`")
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<VersionSpec, E> {
                Ok(VersionSpec::Literal(value.to_string()))
            }

            fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<VersionSpec, E> {
                Ok(VersionSpec::Literal(value.to_string()))
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<VersionSpec, E> {
                Ok(VersionSpec::Literal(value.to_string()))
            }

            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<VersionSpec, E> {
                Ok(VersionSpec::Literal(value.to_string()))
            }

            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<VersionSpec, E> {
                Ok(VersionSpec::Literal(value.to_string()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<VersionSpec, A::Error> {
                VersionFrom::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(VersionSpec::From)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for VersionSpec {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "VersionSpec".into()
    }

    /// One node for both forms (the object keywords apply to a mapping only), so a plain
    /// number stays a type error that the shape check reads as text, like any string field.
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Release identity recorded in the broker. A service with a version is gated. A string, or taken from what is deployed: `{ from: digest }` (the pinned image's `sha256:<hex>` digest) or `{ from: git }` (the desired directory's commit; `short: N` keeps its first N hex digits).",
            "type": ["string", "object"],
            "properties": {
                "from": {
                    "description": "`digest`: the pinned image's `@sha256:` digest (`sha256:<64 hex>`); `git`: the commit of the desired directory's git work tree.",
                    "type": "string",
                    "enum": ["digest", "git"]
                },
                "short": {
                    "description": "`from: git` only: the first N hex digits of the commit, from 7 to 40 (default: all).",
                    "type": "integer",
                    "minimum": 7,
                    "maximum": 40
                }
            },
            "required": ["from"],
            "additionalProperties": false
        })
    }
}

/// The errors of a service's `version`: a written one is not empty and has no whitespace; a
/// `from` one follows [`check_from`].
pub(super) fn check(service: &ServiceSpec, path: &FieldPath) -> Vec<(FieldPath, String)> {
    match &service.version {
        Some(VersionSpec::Literal(version)) if version.trim().is_empty() => vec![(
            path.key("version"),
            "must not be empty: it is the release identity recorded in the broker".into(),
        )],
        Some(VersionSpec::Literal(version))
            if version.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            vec![(
                path.key("version"),
                format!("{version:?} must not contain whitespace"),
            )]
        }
        Some(VersionSpec::From(from)) => check_from(service, from, path),
        Some(VersionSpec::Literal(_)) | None => Vec::new(),
    }
}

/// What `{version}` in the image expands to while the rules check it: the written version, or
/// a commit's worth of hex digits for `from: git` (a valid tag, as the commit will be); none
/// for `from: digest`, whose image may not use it.
pub(super) fn expansion_for_rules(version: &VersionSpec) -> Option<String> {
    match version {
        VersionSpec::Literal(text) => Some(text.clone()),
        VersionSpec::From(from) if from.from == VersionSource::Git => Some("0".repeat(40)),
        VersionSpec::From(_) => None,
    }
}

/// `version: { from: ... }`: a digest version needs a digest pin; `short` is for git only and
/// from 7 to 40. Whether the directory is a git work tree is the loader's question ([`resolve_versions`]).
fn check_from(
    service: &ServiceSpec,
    from: &VersionFrom,
    path: &FieldPath,
) -> Vec<(FieldPath, String)> {
    let mut errors = Vec::new();
    let version = path.key("version");
    match from.from {
        VersionSource::Digest => {
            if from.short.is_some() {
                errors.push((
                    version.key("short"),
                    "applies to `from: git` only; a digest version is the whole `sha256:<hex>`"
                        .into(),
                ));
            }
            match &service.image {
                None => errors.push((
                    version.key("from"),
                    "`from: digest` takes the version from the pinned image's @sha256: digest, but the service has no `image`".into(),
                )),
                Some(image) if image.contains("{version}") => errors.push((
                    path.key("image"),
                    "cannot use `{version}`: with `version: { from: digest }` the version is this image's digest".into(),
                )),
                Some(image) if image_digest(image).is_none() => errors.push((
                    version.key("from"),
                    format!(
                        "`from: digest` needs a digest pin, and {image:?} has no valid @sha256: digest: pin \
                         `repo@sha256:<64 hex>` or `repo:tag@sha256:<64 hex>` (a tag can move, so it is never a version)"
                    ),
                )),
                Some(_) => {}
            }
        }
        VersionSource::Git => {
            if from.short.is_some_and(|n| !(7..=40).contains(&n)) {
                errors.push((
                    version.key("short"),
                    "must be from 7 to 40 (hex digits of the commit)".into(),
                ));
            }
        }
    }
    errors
}

/// The `sha256:<64 lowercase hex>` digest of an image reference (`repo@sha256:...`,
/// `repo:tag@sha256:...`), when it has a well-formed one.
pub fn image_digest(image: &str) -> Option<&str> {
    let (_, digest) = image.rsplit_once('@')?;
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(digest)
}

/// The commit of a desired directory, read at most once per load, and only when a manifest
/// asks for it (`version: { from: git }`): one version for every service that uses it.
#[derive(Debug)]
pub(super) struct DesiredCommit {
    dir: PathBuf,
    commit: std::cell::OnceCell<Result<String, String>>,
}

impl DesiredCommit {
    /// The (not yet read) commit of the work tree holding `dir`.
    pub(super) fn new(dir: &Path) -> DesiredCommit {
        // The parent of a bare file name (`shop.yaml`) is the empty path: the current directory.
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        DesiredCommit {
            dir: dir.to_path_buf(),
            commit: std::cell::OnceCell::new(),
        }
    }

    /// The commit's full object name, or why there is none, in a sentence for the field.
    pub(super) fn get(&self) -> Result<&str, &str> {
        let read = self.commit.get_or_init(|| {
            let shown = &self.dir;
            match crate::git::head_commit(&self.dir) {
                Ok(Some(sha)) => Ok(sha),
                Ok(None) => Err(format!(
                    "`from: git` takes the version from the desired directory's commit, and {} has no commit yet",
                    shown.display()
                )),
                Err(crate::git::Error::NotAWorkTree { .. }) => Err(format!(
                    "`from: git` takes the version from the desired directory's commit, but {} is not in a git work tree",
                    shown.display()
                )),
                Err(error) => Err(format!(
                    "`from: git` takes the version from the desired directory's commit: {}",
                    crate::error_chain(&error)
                )),
            }
        });
        read.as_deref().map_err(String::as_str)
    }
}

/// Puts back the text of a version written as a plain number or boolean (`version: 1.10`),
/// which the typed parse of a string-or-mapping field receives as a value (`1.1`): the text is
/// taken from where the value is written, and kept only when it parses to the same value.
pub(super) fn versions_as_written(
    text: &str,
    raw: &serde_yaml::Value,
    manifest: &mut Manifest,
) -> Vec<(FieldPath, String)> {
    let mut problems = Vec::new();
    let services = raw.get("spec").and_then(|spec| spec.get("services"));
    for (name, service) in &mut manifest.spec.services {
        let Some(value) = services
            .and_then(|s| s.get(name.as_str()))
            .and_then(|s| s.get("version"))
            .filter(|v| v.is_number() || v.is_bool())
        else {
            continue;
        };
        let path = FieldPath::default()
            .key("spec")
            .key("services")
            .key(name)
            .key("version");
        match scalar_text(text, &path).filter(|written| {
            serde_yaml::from_str::<serde_yaml::Value>(written)
                .ok()
                .as_ref()
                == Some(value)
        }) {
            Some(written) => service.version = Some(VersionSpec::Literal(written)),
            None => problems.push((
                path,
                "write this version as a quoted string (its text could not be read exactly)".into(),
            )),
        }
    }
    problems
}

/// The plain scalar written as the value of `path` on the key's own line.
fn scalar_text(text: &str, path: &FieldPath) -> Option<String> {
    let (line, column) = value_of(text, path)?;
    let line = text.lines().nth(line.checked_sub(1)?)?;
    let before = line.get(..column.checked_sub(1)?)?;
    let mut value = line.get(column - 1..)?;
    if let Some(comment) = value.find(" #") {
        value = &value[..comment];
    }
    if before.contains(['{', '[']) {
        value = value.split([',', '}', ']']).next().unwrap_or(value);
    }
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// Replaces each `version: { from: ... }` by the version it stands for: the pinned image's
/// digest (`sha256:<hex>`, as `docker inspect` and a registry print it), or the desired
/// directory's commit (all of it, or its first `short` hex digits). The rules have passed, so
/// a digest version has a well-formed digest pin.
pub(super) fn resolve_versions(
    manifest: &mut Manifest,
    commit: &DesiredCommit,
) -> Vec<(FieldPath, String)> {
    let mut problems = Vec::new();
    for (name, service) in &mut manifest.spec.services {
        let Some(VersionSpec::From(from)) = service.version.clone() else {
            continue;
        };
        let path = FieldPath::default()
            .key("spec")
            .key("services")
            .key(name)
            .key("version")
            .key("from");
        let resolved = match from.from {
            VersionSource::Digest => service
                .image
                .as_deref()
                .and_then(image_digest)
                .map(str::to_string)
                .ok_or_else(|| "`from: digest` needs a digest pin in `image`".to_string()),
            VersionSource::Git => commit.get().map_err(str::to_string).map(|sha| {
                let keep = from.short.map_or(sha.len(), usize::from).min(sha.len());
                sha[..keep].to_string()
            }),
        };
        match resolved {
            Ok(version) => service.version = Some(VersionSpec::Literal(version)),
            Err(message) => problems.push((path, message)),
        }
    }
    problems
}

#[cfg(test)]
#[path = "version_tests.rs"]
mod tests;
