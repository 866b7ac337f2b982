//! Parsing one manifest text into an [`Environment`]: YAML, the inline-secret scan, the shape
//! check against the JSON Schema (every structural error at once), the typed parse, the rules,
//! then path resolution and the generation hash.
//!
//! Pure apart from reading the current directory to make a relative source path absolute, and
//! the desired directory's HEAD for `version: { from: git }` (once per load, files only); the
//! filesystem checks (file size, Compose files exist) are in `load.rs` and `environment.rs`.
//! Every `version: { from: ... }` is resolved here, so an [`Environment`]'s manifest holds
//! literal versions only and its generation changes whenever a resolved version does.

use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::environment::Environment;
use super::locate::{line_of, value_of};
use super::problem::{FieldPath, Problem, Severity};
use super::types::Manifest;
use super::version::{DesiredCommit, resolve_versions, versions_as_written};
use super::{rules, secrets, shape};

/// Parses and validates one manifest. `source` names the file in problems and anchors a
/// relative `compose.directory`. `Ok` carries the warnings; `Err` carries errors and warnings.
///
/// A `version: { from: git }` reads the commit of the work tree holding `source`'s directory
/// (files only, no process: [`crate::git::head_commit`]); `version.rs` resolves it.
pub fn parse_str(text: &str, source: &Path) -> Result<Environment, Vec<Problem>> {
    let dir = source.parent().unwrap_or(Path::new("."));
    parse_with(text, source, &DesiredCommit::new(dir))
}

/// [`parse_str`] with the desired directory's commit shared by the files of one load.
pub(super) fn parse_with(
    text: &str,
    source: &Path,
    commit: &DesiredCommit,
) -> Result<Environment, Vec<Problem>> {
    let at = |path: &FieldPath, message: String, severity: Severity| {
        let location = line_of(text, path);
        Problem {
            file: source.to_path_buf(),
            line: location.map(|l| l.0),
            column: location.map(|l| l.1),
            field: Some(path.to_string()),
            message,
            severity,
        }
    };
    if let Some(problem) = too_deep_flow_nesting(text, source) {
        return Err(vec![problem]);
    }
    let raw: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| vec![yaml_problem(source, &e)])?;
    if raw.is_null() {
        return Err(vec![Problem::file_error(
            source,
            "empty manifest: expected apiVersion, kind, metadata and spec",
        )]);
    }
    let inline = secrets::find_inline_secrets(&raw);
    if !inline.is_empty() {
        return Err(inline
            .into_iter()
            .map(|s| at(&s.path, s.message, Severity::Error))
            .collect());
    }
    // The typed parse; when it fails, every structural error at once (serde_yaml stops at
    // the first) from the schema, or the parse's own error for what the schema cannot say.
    let mut manifest: Manifest = match serde_yaml::from_str(text) {
        Ok(manifest) => manifest,
        Err(error) => return Err(structural_errors(text, source, &raw, &error)),
    };
    let mut problems: Vec<Problem> = versions_as_written(text, &raw, &mut manifest)
        .into_iter()
        .map(|(path, message)| at(&path, message, Severity::Error))
        .collect();
    problems.extend(
        rules::check(&manifest)
            .into_iter()
            .map(|finding| at(&finding.path, finding.message, finding.severity)),
    );
    if problems.iter().any(Problem::is_error) {
        return Err(problems);
    }
    let unresolved: Vec<Problem> = resolve_versions(&mut manifest, commit)
        .into_iter()
        .map(|(path, message)| at(&path, message, Severity::Error))
        .collect();
    if !unresolved.is_empty() {
        problems.extend(unresolved);
        return Err(problems);
    }
    Ok(build(source, manifest, problems))
}

/// The schema's errors of a manifest the typed parse refused with `error`, each at its line
/// and column; `error` itself when the schema finds nothing.
fn structural_errors(
    text: &str,
    source: &Path,
    raw: &serde_yaml::Value,
    error: &serde_yaml::Error,
) -> Vec<Problem> {
    let mut shape_errors: Vec<Problem> = shape::check(raw)
        .into_iter()
        .map(|error| {
            let location = if error.at_value {
                value_of(text, &error.path)
            } else {
                line_of(text, &error.path)
            };
            Problem {
                file: source.to_path_buf(),
                line: location.map(|l| l.0),
                column: location.map(|l| l.1),
                field: Some(error.path.to_string()),
                message: error.message,
                severity: Severity::Error,
            }
        })
        .collect();
    if shape_errors.is_empty() {
        return vec![yaml_problem(source, error)];
    }
    shape_errors.sort_by_key(|p| (p.line, p.column));
    shape_errors
}

/// The deepest nesting of flow collections (`[..]`, `{..}`) a manifest may use.
///
/// libyaml's scanner does work proportional to the current flow depth for every token, so a
/// 1 MiB file of nested brackets costs minutes of CPU before serde_yaml's recursion limit is
/// reached (found by `tests/it/parser_fuzz.rs`). Real manifests nest flow collections 2 or 3 deep.
pub const MAX_FLOW_NESTING: usize = 16;

/// Refuses text whose brackets and braces nest deeper than [`MAX_FLOW_NESTING`], before the
/// YAML parser sees it. Brackets inside quotes and comments are counted too: that can only
/// refuse a file with 17 unbalanced `[`/`{` in strings, and nothing can hide nesting from it.
fn too_deep_flow_nesting(text: &str, source: &Path) -> Option<Problem> {
    let (mut depth, mut line, mut column) = (0usize, 1usize, 0usize);
    for c in text.chars() {
        column += 1;
        match c {
            '\n' => (line, column) = (line + 1, 0),
            '[' | '{' => {
                depth += 1;
                if depth > MAX_FLOW_NESTING {
                    return Some(Problem {
                        line: Some(line),
                        column: Some(column),
                        ..Problem::file_error(
                            source,
                            format!(
                                "flow collections (`[` or `{{`) nested more than {MAX_FLOW_NESTING} levels deep: the document expands too far (YAML alias bomb or nesting too deep); refused"
                            ),
                        )
                    });
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// The environment of a manifest that passed every rule.
fn build(source: &Path, manifest: Manifest, warnings: Vec<Problem>) -> Environment {
    let compose = &manifest.spec.compose;
    let project = compose
        .project
        .clone()
        .unwrap_or_else(|| manifest.metadata.name.clone());
    let base = absolute(source.parent().unwrap_or(Path::new("")));
    let compose_directory = normalize(&base.join(&compose.directory));
    let files: Vec<PathBuf> = if compose.files.is_empty() {
        vec![PathBuf::from("compose.yaml")]
    } else {
        compose.files.clone()
    };
    let compose_files = files
        .iter()
        .map(|f| normalize(&compose_directory.join(f)))
        .collect();
    let generation = generation(&manifest);
    Environment {
        source: source.to_path_buf(),
        manifest,
        project,
        compose_directory,
        compose_files,
        generation,
        warnings,
    }
}

/// The first 16 hex chars of the sha256 of the manifest's canonical JSON.
pub fn generation(manifest: &Manifest) -> String {
    let json = serde_json::to_vec(manifest).unwrap_or_default();
    let digest = Sha256::digest(&json);
    hex::encode(digest)[..16].to_string()
}

/// A problem from a serde_yaml error: its location, the field path it names, and its message
/// without the " at line N column M" that the location already says.
pub fn yaml_problem(source: &Path, error: &serde_yaml::Error) -> Problem {
    let location = error.location();
    let mut message = error.to_string();
    if let Some(location) = &location {
        message = message.replacen(
            &format!(" at line {} column {}", location.line(), location.column()),
            "",
            1,
        );
    }
    let mut field = None;
    if let Some((prefix, rest)) = message.split_once(": ") {
        let looks_like_path = !prefix.is_empty()
            && prefix
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '.' | '[' | ']' | '_' | '-'));
        if looks_like_path {
            field = Some(prefix.to_string());
            message = rest.to_string();
        }
    }
    let named = backticked_after(&message, "unknown field `")
        .or_else(|| backticked_after(&message, "missing field `"));
    if let Some(named) = named {
        field = Some(match field {
            Some(parent) => format!("{parent}.{named}"),
            None => named,
        });
    }
    if message.contains("repetition limit exceeded") || message.contains("recursion limit exceeded")
    {
        message = format!(
            "{message}: the document expands too far (YAML alias bomb or nesting too deep); refused"
        );
    }
    Problem {
        file: source.to_path_buf(),
        line: location.as_ref().map(|l| l.line()),
        column: location.as_ref().map(|l| l.column()),
        field,
        message,
        severity: Severity::Error,
    }
}

fn backticked_after(message: &str, marker: &str) -> Option<String> {
    let start = message.find(marker)? + marker.len();
    let end = message[start..].find('`')?;
    Some(message[start..start + end].to_string())
}

/// `path` made absolute against the current directory (unchanged when that is unknown).
fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// Removes `.` and resolves `..` lexically (`/a/desired/../examples` -> `/a/examples`).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if out.file_name().is_some() {
                    out.pop();
                } else if !out.has_root() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
