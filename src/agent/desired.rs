//! The agent's view of the desired directory: valid and invalid environments by name.
//!
//! Reloading is cheap (a few small files), so every file event reloads the whole directory and
//! [`changed_names`] says which environments to reconcile. A file that does not parse still gets
//! an environment name: the name it had at its last good load, else its file stem.
//!
//! When the directory is in a git work tree, each load also carries the commit it is at
//! ([`RevisionCell`]): read with `git` once per load, by the first reconcile that needs it (the
//! main loop never waits for a process), and shared by every reconcile of that load. A load
//! happens on file events (a `git pull` rewrites the manifests it changes), on a resync that
//! finds a file or HEAD changed (a commit that touched no manifest moves HEAD: its reflog and
//! `HEAD` are stamped), and after `--git-sync` fast-forwarded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::git;
use crate::manifest::{self, Environment, Problem};

/// One entry of the desired set.
#[derive(Debug, Clone)]
pub enum DesiredEnv {
    /// A valid environment owned by this host.
    Valid(Arc<Environment>),
    /// A manifest that failed to load or validate; running services stay untouched.
    Invalid {
        /// The manifest file.
        file: PathBuf,
        /// Every error, one per line, with file, line and field.
        message: String,
    },
}

impl DesiredEnv {
    /// What identifies this entry's content: the generation, or the error text.
    pub fn fingerprint(&self) -> String {
        match self {
            DesiredEnv::Valid(env) => env.generation.clone(),
            DesiredEnv::Invalid { message, .. } => format!("invalid:{message}"),
        }
    }
}

/// Every environment of the desired directory that this host owns.
#[derive(Debug, Clone, Default)]
pub struct DesiredSet {
    /// By environment name.
    pub entries: BTreeMap<String, DesiredEnv>,
    /// Manifest file -> environment name (kept across reloads for files that break).
    pub names_by_file: BTreeMap<PathBuf, String>,
    /// Valid environments whose `spec.hosts` does not name this host: name -> those hosts.
    pub other_hosts: BTreeMap<String, Vec<String>>,
    /// Why the directory itself could not be read, when it could not.
    pub dir_error: Option<String>,
    /// What the directory's entries looked like when this set was loaded (name, size,
    /// modification time, inode), or `None` when that could not be read.
    pub stamp: Option<Vec<FileStamp>>,
    /// The commit of the work tree holding the directory, read on first use.
    pub revision: Arc<RevisionCell>,
}

/// The revision of one load of the desired directory: read with `git` at most once, by the
/// first reconcile that asks ([`RevisionCell::get`]).
#[derive(Debug, Default)]
pub struct RevisionCell {
    /// The desired directory and the git directory of its work tree; `None` when it is in none
    /// (then no process is started).
    place: Option<(PathBuf, PathBuf)>,
    /// HEAD's stamp at the load ([`git::head_stamp`]).
    head: Option<Vec<(u64, Option<std::time::SystemTime>)>>,
    value: tokio::sync::OnceCell<Option<git::Revision>>,
}

impl RevisionCell {
    /// The cell of a load of `dir` (stamped now), empty.
    fn new(dir: &Path) -> RevisionCell {
        let place = git::find_git_dir(dir).map(|git_dir| (dir.to_path_buf(), git_dir));
        let head = place.as_ref().map(|(_, git_dir)| git::head_stamp(git_dir));
        RevisionCell {
            place,
            head,
            value: tokio::sync::OnceCell::new(),
        }
    }

    /// Whether HEAD moved since the load (a commit, a fast-forward, a checkout).
    fn head_moved(&self) -> bool {
        match (&self.place, &self.head) {
            (Some((_, git_dir)), Some(head)) => git::head_stamp(git_dir) != *head,
            _ => false,
        }
    }

    /// The revision (`None`: not a work tree, no commit yet, or git failed: logged). Sets
    /// `c2quay_desired_revision_timestamp_seconds` when read.
    pub async fn get(&self, metrics: Option<&crate::metrics::Metrics>) -> Option<git::Revision> {
        let (dir, _) = self.place.as_ref()?;
        let read = self.value.get_or_init(|| async {
            match git::read_revision(dir).await {
                Ok(revision) => {
                    let committed = revision.as_ref().and_then(|r| r.committed_at);
                    if let (Some(metrics), Some(at)) = (metrics, committed) {
                        metrics.set_desired_revision_time(at);
                    }
                    tracing::info!(dir = %dir.display(), revision = ?revision.as_ref().map(ToString::to_string), "desired revision");
                    revision
                }
                Err(error) => {
                    tracing::warn!(error = %crate::error_chain(&error), "cannot read the desired directory's git revision; status carries none");
                    None
                }
            }
        });
        read.await.clone()
    }
}

/// One directory entry as [`DesiredSet::stamp`] remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    name: std::ffi::OsString,
    size: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

/// The stamps of every entry of `dir` (symlinks followed), in name order; `None` when the
/// directory or an entry cannot be read.
fn stamp_dir(dir: &Path) -> Option<Vec<FileStamp>> {
    use std::os::unix::fs::MetadataExt;
    let mut stamps = Vec::new();
    for entry in std::fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        let meta = std::fs::metadata(entry.path()).ok()?;
        stamps.push(FileStamp {
            name: entry.file_name(),
            size: meta.len(),
            modified: meta.modified().ok(),
            inode: meta.ino(),
        });
    }
    stamps.sort_by(|a, b| a.name.cmp(&b.name));
    Some(stamps)
}

impl DesiredSet {
    /// [`DesiredSet::load`], unless no entry of `dir` changed (name, size, modification time
    /// and inode all as at `previous`'s load): then `previous` as it is, without parsing a
    /// file. For the periodic resync, which catches what file events missed; a file event
    /// always reloads.
    pub fn reload_if_changed(dir: &Path, host: &str, previous: &DesiredSet) -> DesiredSet {
        match (&previous.stamp, stamp_dir(dir)) {
            (Some(before), Some(now))
                if *before == now
                    && previous.dir_error.is_none()
                    && !previous.revision.head_moved() =>
            {
                previous.clone()
            }
            _ => DesiredSet::load(dir, host, previous),
        }
    }

    /// Loads `dir`, keeping only environments owned by `host`; `previous` names broken files.
    pub fn load(dir: &Path, host: &str, previous: &DesiredSet) -> DesiredSet {
        // Stamped before reading: a change made during the load makes the next stamp differ.
        let stamp = stamp_dir(dir);
        let revision = Arc::new(RevisionCell::new(dir));
        let report = match manifest::load_dir(dir) {
            Ok(report) => report,
            Err(error) => {
                // Keep what we had: an unreadable directory must not orphan everything.
                let mut kept = previous.clone();
                kept.dir_error = Some(crate::pipeline::error_chain(&error));
                return kept;
            }
        };
        let mut set = DesiredSet {
            stamp,
            revision,
            ..DesiredSet::default()
        };
        for env in report.environments {
            set.names_by_file
                .insert(env.source.clone(), env.name().to_string());
            if env.owned_by(host) {
                set.entries
                    .insert(env.name().to_string(), DesiredEnv::Valid(Arc::new(env)));
            } else {
                let hosts = env.manifest.spec.hosts.clone();
                set.other_hosts.insert(env.name().to_string(), hosts);
            }
        }
        let mut errors_by_file: BTreeMap<PathBuf, Vec<&Problem>> = BTreeMap::new();
        for problem in report.problems.iter().filter(|p| p.is_error()) {
            errors_by_file
                .entry(problem.file.clone())
                .or_default()
                .push(problem);
        }
        for (file, problems) in errors_by_file {
            let name = previous
                .names_by_file
                .get(&file)
                .cloned()
                .or_else(|| set.names_by_file.get(&file).cloned())
                .unwrap_or_else(|| file_stem(&file));
            if set.entries.contains_key(&name) {
                // A duplicate-name problem on a file whose twin is valid: keep the valid one
                // out too, both files are reported.
                set.entries.remove(&name);
            }
            let message = problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n");
            set.names_by_file.insert(file.clone(), name.clone());
            set.entries
                .insert(name, DesiredEnv::Invalid { file, message });
        }
        set
    }

    /// The valid environment named `name`, if any.
    pub fn valid(&self, name: &str) -> Option<Arc<Environment>> {
        match self.entries.get(name) {
            Some(DesiredEnv::Valid(env)) => Some(env.clone()),
            _ => None,
        }
    }

    /// The environment whose Compose project is `project`.
    pub fn by_project(&self, project: &str) -> Option<String> {
        self.entries.iter().find_map(|(name, entry)| match entry {
            DesiredEnv::Valid(env) if env.project == project => Some(name.clone()),
            _ => None,
        })
    }
}

/// Environments added, removed or changed between two loads, in name order.
pub fn changed_names(old: &DesiredSet, new: &DesiredSet) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (name, entry) in &new.entries {
        match old.entries.get(name) {
            Some(previous) if previous.fingerprint() == entry.fingerprint() => {}
            _ => names.push(name.clone()),
        }
    }
    for name in old.entries.keys() {
        if !new.entries.contains_key(name) {
            names.push(name.clone());
        }
    }
    names.sort();
    names.dedup();
    names
}

fn file_stem(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "\
apiVersion: c2quay.dev/v1
kind: Environment
metadata:
  name: NAME
spec:
  HOSTS
  compose:
    directory: /srv/shop
  services:
    web:
      image: c2quay-test/web:VERSION
";

    fn write(dir: &Path, file: &str, name: &str, version: &str, hosts: &str) {
        let text = MANIFEST
            .replace("NAME", name)
            .replace("VERSION", version)
            .replace("HOSTS", hosts);
        std::fs::write(dir.join(file), text).unwrap();
    }

    #[test]
    fn reload_reports_changed_added_removed_and_broken_files_keep_their_name() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", "alpha", "1", "hosts: []");
        write(dir.path(), "b.yaml", "beta", "1", "hosts: []");
        write(dir.path(), "c.yaml", "gamma", "1", "hosts: [other-host]");
        let first = DesiredSet::load(dir.path(), "this-host", &DesiredSet::default());
        assert_eq!(first.entries.keys().collect::<Vec<_>>(), ["alpha", "beta"]);

        write(dir.path(), "a.yaml", "alpha", "2", "hosts: []");
        std::fs::write(dir.path().join("b.yaml"), "apiVersion: [broken").unwrap();
        write(dir.path(), "d.yaml", "delta", "1", "hosts: []");
        let second = DesiredSet::load(dir.path(), "this-host", &first);
        assert_eq!(changed_names(&first, &second), ["alpha", "beta", "delta"]);
        match &second.entries["beta"] {
            DesiredEnv::Invalid { message, .. } => assert!(message.contains("b.yaml"), "{message}"),
            other => panic!("beta should be invalid, got {other:?}"),
        }

        std::fs::remove_file(dir.path().join("d.yaml")).unwrap();
        let third = DesiredSet::load(dir.path(), "this-host", &second);
        assert_eq!(changed_names(&second, &third), ["delta"]);
        assert!(changed_names(&third, &third).is_empty());
    }

    #[test]
    fn a_resync_reuses_an_unchanged_directory_and_sees_any_change() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", "alpha", "1", "hosts: []");
        let first = DesiredSet::load(dir.path(), "this-host", &DesiredSet::default());
        assert!(first.stamp.is_some());

        // Unchanged: the same set, reused (its environments are the very same values).
        let again = DesiredSet::reload_if_changed(dir.path(), "this-host", &first);
        match (&first.entries["alpha"], &again.entries["alpha"]) {
            (DesiredEnv::Valid(a), DesiredEnv::Valid(b)) => assert!(Arc::ptr_eq(a, b)),
            other => panic!("alpha should stay valid, got {other:?}"),
        }

        // A rewrite of the same size is seen (modification time, or inode for a rename-over).
        std::thread::sleep(std::time::Duration::from_millis(20));
        write(dir.path(), "a.yaml", "alpha", "2", "hosts: []");
        let changed = DesiredSet::reload_if_changed(dir.path(), "this-host", &again);
        assert_eq!(changed_names(&again, &changed), ["alpha"]);

        // A new file is seen, and so is a removed one.
        write(dir.path(), "b.yaml", "beta", "1", "hosts: []");
        let added = DesiredSet::reload_if_changed(dir.path(), "this-host", &changed);
        assert_eq!(changed_names(&changed, &added), ["beta"]);
        std::fs::remove_file(dir.path().join("b.yaml")).unwrap();
        let removed = DesiredSet::reload_if_changed(dir.path(), "this-host", &added);
        assert_eq!(changed_names(&added, &removed), ["beta"]);
    }
}
