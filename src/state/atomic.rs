//! Crash-safe file writes and strict JSON reads.
//!
//! A write goes to a temp file in the same directory, is fsynced, renamed over the target, and
//! the directory is fsynced: a crash or a full disk leaves either the old or the new file, never
//! a mix. Reads never repair or delete anything: a corrupt file is an error naming it, and is
//! moved aside only when a caller asks ([`quarantine`]).

use std::fs::{File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::clock::unix_secs;
use super::error::{Error, Result};

/// Mode of every file c2quay writes.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory c2quay creates.
pub const DIR_MODE: u32 = 0o700;

/// Writes `bytes` to `path` atomically with permission bits `mode` (umask does not apply).
///
/// The parent directory must exist. On any failure the temp file is removed and the previous
/// content of `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{:016x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let result = write_then_rename(&tmp, path, bytes, mode);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

/// Serializes `value` as pretty JSON (with a trailing newline) and writes it atomically, mode 0600.
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| Error::Serialize {
        path: path.to_path_buf(),
        source,
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes, FILE_MODE)
}

/// Reads and parses a JSON file. A missing file is an `Io` error (see [`read_json_opt`]);
/// a truncated or invalid one is [`Error::Corrupt`] naming the file.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Corrupt {
        path: path.to_path_buf(),
        line: None,
        field: None,
        source,
    })
}

/// Like [`read_json`], but a missing file is `Ok(None)`.
pub fn read_json_opt<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match read_json(path) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Moves a (corrupt) file aside to `<name>.corrupt-<unix-ts>` in the same directory and returns
/// the new path. Never called implicitly: only when an operator or caller decides to.
pub fn quarantine(path: &Path, now: SystemTime) -> Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = parent_dir(path);
    let base = format!("{name}.corrupt-{}", unix_secs(now));
    let mut target = dir.join(&base);
    let mut n = 1;
    while target.exists() {
        target = dir.join(format!("{base}.{n}"));
        n += 1;
    }
    std::fs::rename(path, &target).map_err(|e| Error::io("move aside", path, e))?;
    sync_dir(dir)?;
    Ok(target)
}

/// Creates `dir` (and missing parents) with mode 0700; an existing directory is left as is.
pub fn create_dir_private(dir: &Path) -> Result<()> {
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::io("create directory", dir, e)),
    }
}

/// Fsyncs a directory so a rename or unlink inside it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(|e| Error::io("open directory", dir, e))?;
    match d.sync_all() {
        // Some filesystems do not support fsync on directories.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        r => r.map_err(|e| Error::io("fsync directory", dir, e)),
    }
}

/// Removes a file (idempotent) and fsyncs its directory.
pub fn remove_durable(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(parent_dir(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn write_then_rename(tmp: &Path, path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)
        .map_err(|e| Error::io("create temp file for", path, e))?;
    f.set_permissions(Permissions::from_mode(mode))
        .map_err(|e| Error::io("chmod", tmp, e))?;
    f.write_all(bytes)
        .map_err(|e| Error::io("write", path, e))?;
    f.sync_all().map_err(|e| Error::io("fsync", path, e))?;
    drop(f);
    std::fs::rename(tmp, path).map_err(|e| Error::io("rename temp file over", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn mode_of(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn write_atomic_replaces_content_with_exact_mode_and_no_temp_left() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"one", FILE_MODE).unwrap();
        write_atomic(&p, b"two", FILE_MODE).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(mode_of(&p), 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.json")]);
    }

    #[test]
    fn write_atomic_failure_keeps_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"good", FILE_MODE).unwrap();
        // Renaming a file over a non-empty directory fails after the temp file was written.
        let target_dir = dir.path().join("d");
        std::fs::create_dir(&target_dir).unwrap();
        std::fs::write(target_dir.join("x"), b"x").unwrap();
        let err = write_atomic(&target_dir, b"bad", FILE_MODE).unwrap_err();
        assert_eq!(err.kind(), "io");
        assert!(err.to_string().contains("/d"), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), b"good");
        let leftovers = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".tmp-")
            })
            .count();
        assert_eq!(leftovers, 0, "temp file removed after failure");
    }

    #[test]
    fn write_atomic_into_missing_directory_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing/a.json");
        let err = write_atomic(&p, b"x", FILE_MODE).unwrap_err();
        assert!(err.to_string().contains("missing/a.json"), "{err}");
    }

    #[test]
    fn json_round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.json");
        assert_eq!(read_json_opt::<Vec<u32>>(&p).unwrap(), None);
        assert!(read_json::<Vec<u32>>(&p).unwrap_err().is_not_found());
        write_json_atomic(&p, &vec![1u32, 2]).unwrap();
        assert_eq!(read_json::<Vec<u32>>(&p).unwrap(), vec![1, 2]);
        assert_eq!(mode_of(&p), 0o600);
    }

    #[test]
    fn truncated_json_is_corrupt_and_left_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("status.json");
        std::fs::write(&p, b"{\"name\": \"sh").unwrap();
        let err = read_json::<serde_json::Value>(&p).unwrap_err();
        assert_eq!(err.kind(), "corrupt");
        assert!(err.to_string().contains("status.json"), "{err}");
        assert_eq!(
            std::fs::read(&p).unwrap(),
            b"{\"name\": \"sh",
            "not touched"
        );
        let empty = dir.path().join("empty.json");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(
            read_json_opt::<serde_json::Value>(&empty)
                .unwrap_err()
                .kind(),
            "corrupt"
        );
    }

    #[test]
    fn quarantine_moves_aside_with_unix_timestamp_and_never_clobbers() {
        let dir = tempfile::tempdir().unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let p = dir.path().join("status.json");
        std::fs::write(&p, b"garbage").unwrap();
        let moved = quarantine(&p, now).unwrap();
        assert_eq!(moved, dir.path().join("status.json.corrupt-1000"));
        assert!(!p.exists());
        std::fs::write(&p, b"garbage2").unwrap();
        let moved2 = quarantine(&p, now).unwrap();
        assert_eq!(moved2, dir.path().join("status.json.corrupt-1000.1"));
        assert_eq!(std::fs::read(&moved).unwrap(), b"garbage");
    }

    #[test]
    fn create_dir_private_and_remove_durable() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        create_dir_private(&d).unwrap();
        assert_eq!(mode_of(&d), 0o700);
        create_dir_private(&d).unwrap();
        let f = d.join("f");
        std::fs::write(&f, b"x").unwrap();
        remove_durable(&f).unwrap();
        remove_durable(&f).unwrap();
        assert!(!f.exists());
    }
}
