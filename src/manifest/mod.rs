//! Environment manifests: the types users commit, their validation, and loading a directory.
//!
//! Owns the file format (DESIGN.md §3): [`Manifest`] (serde types, unknown fields are errors),
//! the duration grammar and bounds (`duration.rs`), the shape check against the JSON Schema
//! that reports every structural error of a file at once (`shape.rs`), the rules checked
//! beyond types (`rules.rs`), release identity from the artefacts (`version.rs`: `version:
//! { from: digest | git }`, resolved at load), the inline-secret scan (`secrets.rs`), and
//! [`load_dir`], which turns a desired directory into valid [`Environment`]s plus a list of
//! [`Problem`]s with file, line, column and field. Does not know about Docker or the broker.
//!
//! A bad file is data, not a failure: [`load_dir`] fails only when the directory itself cannot
//! be read; every other problem marks only its own file.

mod duration;
mod environment;
mod load;
mod locate;
mod parse;
mod problem;
mod rules;
mod secrets;
mod shape;
mod types;
mod version;

use std::path::PathBuf;

pub use duration::{Bounds, DurationSpec, GRAMMAR as DURATION_GRAMMAR, parse_duration};
pub use environment::Environment;
pub use load::{MAX_MANIFEST_BYTES, load_dir, load_file};
pub use locate::line_of;
pub use parse::parse_str;
pub use problem::{FieldPath, Problem, Segment, Severity};
pub use secrets::looks_like_credential;
pub use types::*;
pub use version::{VersionFrom, VersionSource, VersionSpec, image_digest};

/// The result of loading a desired directory: what is valid, and every problem found.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Valid environments in file name order (warnings are inside each).
    pub environments: Vec<Environment>,
    /// Errors and warnings of all files, in file name order.
    pub problems: Vec<Problem>,
}

impl LoadReport {
    /// True when no problem is an error.
    pub fn is_valid(&self) -> bool {
        !self.problems.iter().any(Problem::is_error)
    }
}

/// Why a desired directory could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory is missing, not a directory, or not readable.
    #[error("cannot read desired directory {dir}")]
    ReadDir {
        /// The directory that was given.
        dir: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::ReadDir { .. } => "read_dir",
        }
    }

    /// True when retrying later may help (the directory may appear after a `git pull`).
    pub fn is_transient(&self) -> bool {
        true
    }
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The JSON Schema of a manifest, generated from the types, for editors and CI.
pub fn json_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Manifest).to_value();
    if let Some(object) = schema.as_object_mut() {
        object.insert(
            "$id".into(),
            "https://c2quay.dev/schemas/environment-v1.json".into(),
        );
        object.insert("title".into(), "c2quay Environment".into());
    }
    descriptions_into_branches(&mut schema);
    schema
}

/// Copies a field's own description into the `$ref` branch of its `anyOf` (an optional
/// section such as `spec.broker`). An editor shows the description of the branch that matched
/// before the field's own, which was the referenced type's generic text.
fn descriptions_into_branches(node: &mut serde_json::Value) {
    match node {
        serde_json::Value::Object(map) => {
            if let (Some(description), Some(serde_json::Value::Array(branches))) =
                (map.get("description").cloned(), map.get_mut("anyOf"))
            {
                for branch in branches.iter_mut().filter_map(|b| b.as_object_mut()) {
                    if branch.contains_key("$ref") {
                        branch.insert("description".into(), description.clone());
                    }
                }
            }
            map.values_mut().for_each(descriptions_into_branches);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(descriptions_into_branches),
        _ => {}
    }
}
