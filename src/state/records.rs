//! Snapshots and reports: timestamped JSON files, the last [`KEEP_PER_KIND`] of each kind kept.
//!
//! `snapshots/<ts>-<label>.json` (`pre`, `post`, `post-rollback`) and
//! `reports/<ts>-<kind>.json` (`deploy`, `rollback`), where `<ts>` is the compact form of the
//! clock's time (`20260102T030405.678Z`), so file names sort by time. Pruning never removes the
//! pre-snapshot named by the open intent: a recovery may still need it.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StateDir;
use super::atomic;
use super::clock::file_timestamp;
use super::error::{Error, Result};
use super::schema::{read_versioned, write_versioned};

/// How many snapshots of each label and reports of each kind are kept.
pub const KEEP_PER_KIND: usize = 20;

/// Length of the timestamp prefix of a snapshot or report file name.
const TS_LEN: usize = "20260102T030405.678Z".len();

impl StateDir {
    /// Writes a snapshot (`label`: `pre`, `post`, `post-rollback`, ...) of environment `env`
    /// and returns its path; prunes older snapshots with the same label beyond the last 20.
    pub fn write_snapshot<T: Serialize + ?Sized>(
        &self,
        env: &str,
        label: &str,
        snapshot: &T,
    ) -> Result<PathBuf> {
        self.ensure_env(env)?;
        let path = self.write_timestamped(&self.snapshots_dir(env), label, snapshot)?;
        self.prune(env, &self.snapshots_dir(env), label)?;
        Ok(path)
    }

    /// Writes a report (`kind`: `deploy`, `rollback`) and returns its path; keeps the last 20
    /// of that kind.
    pub fn write_report<T: Serialize + ?Sized>(
        &self,
        env: &str,
        kind: &str,
        report: &T,
    ) -> Result<PathBuf> {
        self.ensure_env(env)?;
        let path = self.write_timestamped(&self.reports_dir(env), kind, report)?;
        self.prune(env, &self.reports_dir(env), kind)?;
        Ok(path)
    }

    /// Snapshots of `env`, oldest first; only those with `label` when given.
    pub fn list_snapshots(&self, env: &str, label: Option<&str>) -> Result<Vec<PathBuf>> {
        self.validate_env_name(env)?;
        list_kind(&self.snapshots_dir(env), label)
    }

    /// Reports of `env`, oldest first; only those of `kind` when given.
    pub fn list_reports(&self, env: &str, kind: Option<&str>) -> Result<Vec<PathBuf>> {
        self.validate_env_name(env)?;
        list_kind(&self.reports_dir(env), kind)
    }

    /// The newest snapshot of `env` with `label`, if any.
    pub fn latest_snapshot(&self, env: &str, label: &str) -> Result<Option<PathBuf>> {
        Ok(self.list_snapshots(env, Some(label))?.pop())
    }

    /// Reads a snapshot or report file (any path, e.g. from `--from-snapshot`).
    pub fn read_snapshot<T: DeserializeOwned>(&self, path: &Path) -> Result<T> {
        read_versioned(path)
    }

    fn write_timestamped<T: Serialize + ?Sized>(
        &self,
        dir: &Path,
        label: &str,
        value: &T,
    ) -> Result<PathBuf> {
        validate_label(label)?;
        atomic::create_dir_private(dir)?;
        let ts = file_timestamp(self.clock().now());
        let mut path = dir.join(format!("{ts}-{label}.json"));
        let mut n = 1;
        while path.exists() {
            path = dir.join(format!("{ts}-{label}.{n}.json"));
            n += 1;
        }
        write_versioned(&path, value)?;
        Ok(path)
    }

    fn prune(&self, env: &str, dir: &Path, label: &str) -> Result<()> {
        let files = list_kind(dir, Some(label))?;
        if files.len() <= KEEP_PER_KIND {
            return Ok(());
        }
        // An unreadable intent must not make us delete what it might reference: keep everything.
        let protected = match self.read_intent(env) {
            Ok(intent) => intent.map(|i| i.pre_snapshot),
            Err(_) => return Ok(()),
        };
        let excess = files.len() - KEEP_PER_KIND;
        for old in files.iter().take(excess) {
            if protected.as_deref() != Some(old.as_path()) {
                atomic::remove_durable(old)?;
            }
        }
        Ok(())
    }
}

fn validate_label(label: &str) -> Result<()> {
    let ok = !label.is_empty()
        && label.len() <= 64
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            what: "label",
            value: label.to_string(),
            rule: "1-64 characters from [a-z0-9-]",
        })
    }
}

/// The label of a `<ts>-<label>[.<n>].json` file name.
fn label_of(file_name: &str) -> Option<&str> {
    let stem = file_name.strip_suffix(".json")?;
    let rest = stem.get(TS_LEN..)?.strip_prefix('-')?;
    Some(rest.split('.').next().unwrap_or(rest))
}

/// Files of `dir` with `label` (all when `None`), sorted oldest first. A missing dir is empty.
fn list_kind(dir: &Path, label: Option<&str>) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        match label_of(&name) {
            Some(l) if label.is_none_or(|want| want == l) => names.push(name),
            _ => {}
        }
    }
    names.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// Orders by timestamp, then by collision counter (`x.json` before `x.1.json` before `x.2.json`).
fn sort_key(name: &str) -> (&str, u32) {
    let stem = name.strip_suffix(".json").unwrap_or(name);
    let n = stem
        .rsplit_once('.')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0);
    (name.get(..TS_LEN).unwrap_or(name), n)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::clock::FixedClock;
    use super::*;

    fn state() -> (tempfile::TempDir, StateDir, Arc<FixedClock>) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::at_unix(1_767_323_045));
        let s = StateDir::open_with_clock(&dir.path().join("state"), clock.clone()).unwrap();
        (dir, s, clock)
    }

    #[test]
    fn snapshot_is_named_by_time_and_label_and_reads_back() {
        let (_d, s, _c) = state();
        let v = serde_json::json!({"services": {"web": {"imageId": "sha256:abc"}}});
        let p = s.write_snapshot("shop", "pre", &v).unwrap();
        assert_eq!(
            p,
            s.snapshots_dir("shop")
                .join("20260102T030405.000Z-pre.json")
        );
        assert_eq!(s.read_snapshot::<serde_json::Value>(&p).unwrap(), v);
        assert_eq!(s.latest_snapshot("shop", "pre").unwrap(), Some(p));
        assert_eq!(s.latest_snapshot("shop", "post").unwrap(), None);
    }

    #[test]
    fn same_millisecond_does_not_overwrite() {
        let (_d, s, _c) = state();
        let a = s.write_snapshot("shop", "post-rollback", &1).unwrap();
        let b = s.write_snapshot("shop", "post-rollback", &2).unwrap();
        let c = s.write_snapshot("shop", "post-rollback", &3).unwrap();
        assert_ne!(a, b);
        assert_eq!(
            s.list_snapshots("shop", Some("post-rollback")).unwrap(),
            vec![a, b, c.clone()]
        );
        assert_eq!(s.latest_snapshot("shop", "post-rollback").unwrap(), Some(c));
    }

    #[test]
    fn keeps_the_last_20_of_each_kind_only() {
        let (_d, s, clock) = state();
        for i in 0..25 {
            clock.advance(Duration::from_secs(1));
            s.write_snapshot("shop", "pre", &i).unwrap();
            s.write_report("shop", "deploy", &i).unwrap();
        }
        s.write_snapshot("shop", "post", &0).unwrap();
        let pre = s.list_snapshots("shop", Some("pre")).unwrap();
        assert_eq!(pre.len(), KEEP_PER_KIND);
        assert_eq!(
            s.read_snapshot::<i32>(&pre[0]).unwrap(),
            5,
            "oldest five pruned"
        );
        assert_eq!(
            s.list_snapshots("shop", None).unwrap().len(),
            21,
            "post kept"
        );
        let reports = s.list_reports("shop", Some("deploy")).unwrap();
        assert_eq!(reports.len(), KEEP_PER_KIND);
        assert_eq!(s.read_snapshot::<i32>(reports.last().unwrap()).unwrap(), 24);
    }

    #[test]
    fn prune_keeps_the_pre_snapshot_of_the_open_intent() {
        let (_d, s, clock) = state();
        let first = s.write_snapshot("shop", "pre", &0).unwrap();
        let intent = crate::state::journal::tests::intent(first.clone());
        s.write_intent("shop", &intent).unwrap();
        for i in 1..25 {
            clock.advance(Duration::from_secs(1));
            s.write_snapshot("shop", "pre", &i).unwrap();
        }
        assert!(first.exists(), "referenced by the intent");
        assert_eq!(
            s.list_snapshots("shop", Some("pre")).unwrap().len(),
            KEEP_PER_KIND + 1
        );
    }

    #[test]
    fn label_is_validated_and_parsed() {
        let (_d, s, _c) = state();
        assert_eq!(
            s.write_report("shop", "../x", &0).unwrap_err().kind(),
            "invalid"
        );
        assert_eq!(
            label_of("20260102T030405.000Z-post-rollback.json"),
            Some("post-rollback")
        );
        assert_eq!(label_of("20260102T030405.000Z-pre.3.json"), Some("pre"));
        assert_eq!(label_of("notes.txt"), None);
        assert_eq!(
            s.list_reports("other", None).unwrap(),
            Vec::<PathBuf>::new()
        );
    }
}
