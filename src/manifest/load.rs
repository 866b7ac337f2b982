//! Reading manifests from disk: one file, or every `*.yaml`/`*.yml` file of a desired directory.
//!
//! Each file is parsed on its own, so one bad file never hides the others. Hidden files and
//! editor files (`.#*`, `*~`, `*.swp`, `*.tmp`) are skipped; symlinks that lead outside the
//! directory, FIFOs, devices and directories are not opened and are reported; files over
//! [`MAX_MANIFEST_BYTES`] are refused; two files with one `metadata.name` are both reported.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::environment::{Environment, missing_compose_files};
use super::locate::line_of;
use super::parse::parse_with;
use super::problem::{FieldPath, Problem, Severity};
use super::version::DesiredCommit;
use super::{Error, LoadReport, Result};

/// The largest manifest file read (1 MiB); larger files are refused.
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// Loads every manifest of `dir` (not recursive). Fails only when `dir` cannot be read.
pub fn load_dir(dir: &Path) -> Result<LoadReport> {
    let read_error = |source| Error::ReadDir {
        dir: dir.to_path_buf(),
        source,
    };
    let mut names: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_manifest_name(&name) {
            names.push(name);
        }
    }
    names.sort();
    let canonical_dir = dir.canonicalize().map_err(read_error)?;
    let mut report = LoadReport::default();
    // One commit for every `version: { from: git }` of this load, read on first use.
    let commit = DesiredCommit::new(dir);
    let mut texts: BTreeMap<PathBuf, String> = BTreeMap::new();
    for name in names {
        let path = dir.join(&name);
        if let Err(problem) = check_symlink(&path, &canonical_dir) {
            report.problems.push(problem);
            continue;
        }
        let text = match read_text(&path) {
            Ok(text) => text,
            Err(problem) => {
                report.problems.push(problem);
                continue;
            }
        };
        match parse_with_local_checks(&text, &path, &commit) {
            Ok(env) => {
                report.problems.extend(env.warnings.iter().cloned());
                report.environments.push(env);
            }
            Err(problems) => report.problems.extend(problems),
        }
        texts.insert(path, text);
    }
    reject_duplicate_names(&mut report, &texts);
    reject_shared_projects(&mut report, &texts);
    report
        .problems
        .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Ok(report)
}

/// Loads one manifest file. `Ok` carries warnings (including Compose files missing here).
pub fn load_file(path: &Path) -> std::result::Result<Environment, Vec<Problem>> {
    let text = read_text(path).map_err(|problem| vec![problem])?;
    let dir = path.parent().unwrap_or(Path::new("."));
    parse_with_local_checks(&text, path, &DesiredCommit::new(dir))
}

/// Whether a directory entry is a manifest to load (by name only).
pub fn is_manifest_name(name: &str) -> bool {
    let editor_file = name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".tmp");
    !editor_file && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

fn parse_with_local_checks(
    text: &str,
    path: &Path,
    commit: &DesiredCommit,
) -> std::result::Result<Environment, Vec<Problem>> {
    let mut env = parse_with(text, path, commit)?;
    let mut missing = missing_compose_files(&env, Severity::Warning);
    for problem in &mut missing {
        if let Some(field) = &problem.field {
            let location = line_of(text, &FieldPath::parse(field));
            problem.line = location.map(|l| l.0);
            problem.column = location.map(|l| l.1);
        }
        problem
            .message
            .push_str(" (an error when deploying on this machine)");
    }
    env.warnings.extend(missing);
    env.warnings.sort_by_key(|w| w.line);
    Ok(env)
}

/// Refuses a symlink that is dangling or leads outside `canonical_dir`.
fn check_symlink(path: &Path, canonical_dir: &Path) -> std::result::Result<(), Problem> {
    let metadata = std::fs::symlink_metadata(path)
        .map_err(|e| Problem::file_error(path, format!("cannot read file metadata: {e}")))?;
    if !metadata.file_type().is_symlink() {
        return Ok(());
    }
    let target = path.canonicalize().map_err(|e| {
        Problem::file_error(
            path,
            format!("symlink cannot be followed ({e}); not loaded"),
        )
    })?;
    if !target.starts_with(canonical_dir) {
        return Err(Problem::file_error(
            path,
            format!(
                "symlink points outside the desired directory (to {}); not loaded",
                target.display()
            ),
        ));
    }
    Ok(())
}

/// Reads a regular file of at most [`MAX_MANIFEST_BYTES`] as UTF-8, never opening a FIFO or a
/// device (metadata first, then `O_NONBLOCK` and a second check on the open file).
fn read_text(path: &Path) -> std::result::Result<String, Problem> {
    let fail = |message: String| Problem::file_error(path, message);
    let metadata = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    check_regular(&metadata).map_err(fail)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options
        .open(path)
        .map_err(|e| fail(format!("cannot open: {e}")))?;
    let metadata = file
        .metadata()
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    check_regular(&metadata).map_err(fail)?;
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(fail(too_big()));
    }
    String::from_utf8(bytes).map_err(|e| {
        fail(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

fn check_regular(metadata: &std::fs::Metadata) -> std::result::Result<(), String> {
    let kind = metadata.file_type();
    if kind.is_dir() {
        return Err("is a directory, not a manifest file; not loaded".into());
    }
    if !kind.is_file() {
        return Err("not a regular file (FIFO, socket or device); not loaded".into());
    }
    if metadata.len() > MAX_MANIFEST_BYTES {
        return Err(too_big());
    }
    Ok(())
}

fn too_big() -> String {
    format!("file is larger than {MAX_MANIFEST_BYTES} bytes (1 MiB); refused")
}

/// Turns every environment whose `metadata.name` is declared by several files into errors
/// that name the other files.
fn reject_duplicate_names(report: &mut LoadReport, texts: &BTreeMap<PathBuf, String>) {
    let mut by_name: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for env in &report.environments {
        by_name
            .entry(env.name().to_string())
            .or_default()
            .push(env.source.clone());
    }
    let name_path = FieldPath::parse("metadata.name");
    let mut rejected = Vec::new();
    for (name, files) in by_name.into_iter().filter(|(_, files)| files.len() > 1) {
        for file in &files {
            let others: Vec<String> = files
                .iter()
                .filter(|f| *f != file)
                .map(|f| f.display().to_string())
                .collect();
            let location = texts.get(file).and_then(|text| line_of(text, &name_path));
            report.problems.push(Problem {
                file: file.clone(),
                line: location.map(|l| l.0),
                column: location.map(|l| l.1),
                field: Some(name_path.to_string()),
                message: format!(
                    "duplicate environment name {name:?}: also declared in {}",
                    others.join(", ")
                ),
                severity: Severity::Error,
            });
            rejected.push(file.clone());
        }
    }
    report
        .environments
        .retain(|env| !rejected.contains(&env.source));
}

/// A Compose project has one owning environment per host: a manifest naming the project of an
/// earlier one (in file-name order) for a host they share (no `hosts` means every host) is
/// refused, naming both files; the first keeps it. Two owners would deploy the same containers
/// and record the same releases twice.
fn reject_shared_projects(report: &mut LoadReport, texts: &BTreeMap<PathBuf, String>) {
    let share_a_host = |a: &Environment, b: &Environment| {
        let (a, b) = (&a.manifest.spec.hosts, &b.manifest.spec.hosts);
        a.is_empty() || b.is_empty() || a.iter().any(|host| b.contains(host))
    };
    let mut rejected = Vec::new();
    for (i, env) in report.environments.iter().enumerate() {
        let Some(owner) = (report.environments[..i].iter())
            .filter(|earlier| !rejected.contains(&earlier.source))
            .find(|earlier| earlier.project == env.project && share_a_host(earlier, env))
        else {
            continue;
        };
        let field = match env.manifest.spec.compose.project {
            Some(_) => FieldPath::parse("spec.compose.project"),
            None => FieldPath::parse("metadata.name"),
        };
        let location = texts
            .get(&env.source)
            .and_then(|text| line_of(text, &field));
        report.problems.push(Problem {
            file: env.source.clone(),
            line: location.map(|l| l.0),
            column: location.map(|l| l.1),
            field: Some(field.to_string()),
            message: format!(
                "Compose project {:?} already belongs to environment {:?} ({}): one environment \
                 owns a project on a host; give this one its own `spec.compose.project`, or limit \
                 both with `spec.hosts`",
                env.project,
                owner.name(),
                owner.source.display()
            ),
            severity: Severity::Error,
        });
        rejected.push(env.source.clone());
    }
    report
        .environments
        .retain(|env| !rejected.contains(&env.source));
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
