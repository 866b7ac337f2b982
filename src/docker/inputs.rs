//! The files a project's rendered model is made from: its Compose files, the project's `.env`,
//! and every file they reference (`include`, `extends.file`, `env_file`), followed through
//! included files. The agent stamps them (size, mtime, inode) to know when to render again and
//! watches their directories, so a change of any of them is deployed and an unchanged project
//! is never rendered twice.
//!
//! [`references`] is pure; [`inputs`] reads the files; [`InputStamp::of`] only stats them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_yaml::Value;

use super::Project;

/// How deep `include` chains are followed (a cycle stops at the first repeat anyway).
const MAX_DEPTH: usize = 8;

/// Every file that can change `project`'s rendered model, in name order: the Compose files,
/// `<directory>/.env`, and what they reference, recursively. A file that does not exist (yet)
/// is listed too: creating it is a change. A file that does not parse contributes itself only.
pub fn inputs(project: &Project) -> Vec<PathBuf> {
    let mut found = BTreeSet::new();
    found.insert(project.directory.join(".env"));
    let mut pending: Vec<(PathBuf, usize)> = project.files.iter().map(|f| (f.clone(), 0)).collect();
    while let Some((file, depth)) = pending.pop() {
        if !found.insert(file.clone()) || depth >= MAX_DEPTH {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let base = file.parent().unwrap_or(&project.directory).to_path_buf();
        for reference in references(&text, &base) {
            let follow = reference.is_compose_file;
            if follow {
                pending.push((reference.path, depth + 1));
            } else {
                found.insert(reference.path);
            }
        }
    }
    found.into_iter().collect()
}

/// A file one Compose file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Absolute (joined to the referencing file's directory when relative).
    pub path: PathBuf,
    /// Whether it is a Compose file itself (`include`, `extends.file`), to be followed.
    pub is_compose_file: bool,
}

/// The files `text` (one Compose file, in directory `base`) references: `include` entries
/// (short and long syntax, with their `env_file`s), `services.*.extends.file` and
/// `services.*.env_file` (string, list, or `path:` entries). Pure; garbage gives nothing.
pub fn references(text: &str, base: &Path) -> Vec<Reference> {
    let Ok(root) = serde_yaml::from_str::<Value>(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut add = |value: &Value, is_compose_file: bool| {
        for path in paths_of(value) {
            out.push(Reference {
                path: base.join(path),
                is_compose_file,
            });
        }
    };
    if let Some(includes) = root.get("include").and_then(Value::as_sequence) {
        for include in includes {
            match include {
                Value::String(_) => add(include, true),
                Value::Mapping(_) => {
                    if let Some(path) = include.get("path") {
                        add(path, true);
                    }
                    if let Some(env_file) = include.get("env_file") {
                        add(env_file, false);
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(services) = root.get("services").and_then(Value::as_mapping) {
        for service in services.values() {
            if let Some(file) = service.get("extends").and_then(|e| e.get("file")) {
                add(file, true);
            }
            if let Some(env_file) = service.get("env_file") {
                add(env_file, false);
            }
        }
    }
    out
}

/// The path strings of a reference value: a string, a list of strings, or `path:` entries.
fn paths_of(value: &Value) -> Vec<String> {
    match value {
        Value::String(path) => vec![path.clone()],
        Value::Sequence(items) => items.iter().flat_map(paths_of).collect(),
        Value::Mapping(_) => value.get("path").map(paths_of).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// What the input files look like now: per file, its size, mtime and inode (`None` when it
/// does not exist). Equal stamps mean the rendered model cannot have changed (for one process:
/// interpolation also reads the process environment, which a process does not change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputStamp(Vec<(PathBuf, Option<FileStamp>)>);

/// Size, mtime and inode of one file.
type FileStamp = (u64, SystemTime, u64);

/// The stamp of `file` now (`None` when it does not exist).
fn file_stamp(file: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(file).ok().map(|m| {
        let mtime = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        (m.len(), mtime, m.ino())
    })
}

impl InputStamp {
    /// Stats `files` (no reads).
    pub fn of(files: &[PathBuf]) -> InputStamp {
        InputStamp(
            files
                .iter()
                .map(|file| (file.clone(), file_stamp(file)))
                .collect(),
        )
    }

    /// Whether every file still has the size, mtime and inode it had (stats only, no
    /// allocation: the resync asks this of every environment).
    pub fn is_current(&self) -> bool {
        self.0
            .iter()
            .all(|(file, stamp)| file_stamp(file) == *stamp)
    }

    /// The directories holding the input files (what to watch), in name order.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let dirs: BTreeSet<PathBuf> = self
            .0
            .iter()
            .filter_map(|(file, _)| file.parent().map(Path::to_path_buf))
            .collect();
        dirs.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_cover_include_extends_and_env_files() {
        let text = "\
include:
  - common/base.yaml
  - path: [db/one.yaml, db/two.yaml]
    env_file: db/db.env
services:
  web:
    extends: { file: shared.yaml, service: base }
    env_file: [web.env, { path: /etc/web/extra.env, required: false }]
  worker:
    env_file: worker.env
";
        let base = Path::new("/srv/shop");
        let refs = references(text, base);
        let compose: Vec<&Path> = refs
            .iter()
            .filter(|r| r.is_compose_file)
            .map(|r| r.path.as_path())
            .collect();
        let env: Vec<&Path> = refs
            .iter()
            .filter(|r| !r.is_compose_file)
            .map(|r| r.path.as_path())
            .collect();
        assert_eq!(
            compose,
            [
                Path::new("/srv/shop/common/base.yaml"),
                Path::new("/srv/shop/db/one.yaml"),
                Path::new("/srv/shop/db/two.yaml"),
                Path::new("/srv/shop/shared.yaml"),
            ]
        );
        assert_eq!(
            env,
            [
                Path::new("/srv/shop/db/db.env"),
                Path::new("/srv/shop/web.env"),
                Path::new("/etc/web/extra.env"),
                Path::new("/srv/shop/worker.env"),
            ]
        );
        assert!(references(": not yaml : [", base).is_empty());
    }

    #[test]
    fn inputs_follow_includes_and_stamps_see_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(
            root.join("compose.yaml"),
            "include: [sub/inc.yaml]\nservices:\n  web:\n    image: x\n",
        )
        .unwrap();
        std::fs::write(
            root.join("sub/inc.yaml"),
            "services:\n  db:\n    image: y\n    env_file: db.env\n",
        )
        .unwrap();
        let project = Project {
            name: "shop".into(),
            directory: root.to_path_buf(),
            files: vec![root.join("compose.yaml")],
        };
        let files = inputs(&project);
        assert_eq!(
            files,
            [
                root.join(".env"),
                root.join("compose.yaml"),
                root.join("sub/db.env"),
                root.join("sub/inc.yaml"),
            ]
        );
        let before = InputStamp::of(&files);
        assert_eq!(before, InputStamp::of(&files));
        assert!(before.is_current());
        assert_eq!(before.dirs(), [root.to_path_buf(), root.join("sub")]);
        std::fs::write(root.join("sub/db.env"), "A=1\n").unwrap();
        assert_ne!(before, InputStamp::of(&files), "a new env file is a change");
        assert!(!before.is_current());
    }
}
