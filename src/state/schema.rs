//! Schema versions of the state files: `status.json`, `intent.json`, the outbox entries,
//! snapshots and reports carry a top-level `schemaVersion`.
//!
//! Version 1 is every file written before the field existed (no `schemaVersion`): each shape a
//! released c2quay wrote is kept as a fixture under `tests/fixtures/state/` and must keep
//! loading. Version 4 ([`SCHEMA_VERSION`]) is what this code writes. Reading a file goes:
//! parse the JSON (failure: [`Error::Corrupt`]), read its version, refuse a version newer than
//! [`SCHEMA_VERSION`] ([`Error::NewerSchema`]: a downgrade; the file is neither moved aside nor
//! overwritten), apply the migrations from its version up, then deserialize, where a field
//! added since the file was written takes its default. Only a file that does not parse or whose
//! fields have the wrong shape is corrupt, and that error names the field.
//!
//! The rule for a new field: give it `#[serde(default)]` (and a default that means what the
//! older code did). Bump [`SCHEMA_VERSION`] and add a migration only when a field is renamed,
//! removed or changes meaning, or when a file may hold an enum value an older reader does not
//! know (it would take the file for corrupt); the audit log, the lock file and `applied-model.json` are not
//! versioned (the first is advisory and read leniently, the others are not c2quay's shapes).

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::atomic::write_atomic;
use super::error::{Error, Result};

/// The schema version this c2quay writes and the newest it reads.
pub const SCHEMA_VERSION: u32 = 4;

/// The name of the version field, first in every versioned file.
pub const SCHEMA_VERSION_FIELD: &str = "schemaVersion";

/// The version of a file without [`SCHEMA_VERSION_FIELD`]: every file written before it existed.
pub const UNVERSIONED: u32 = 1;

/// A migration takes a file's top-level object from version `n` to `n + 1`.
type Migration = fn(&mut Map<String, Value>);

/// `MIGRATIONS[n - 1]` takes version `n` to `n + 1`; its length is `SCHEMA_VERSION - 1`.
const MIGRATIONS: [Migration; SCHEMA_VERSION as usize - 1] = [v1_to_v2, v2_to_v3, v3_to_v4];

/// Version 1 to 2: nothing is renamed or removed. Every field added while files had no version
/// (`failedModel`, `configs`, `pacticipant`, `resumes`, `previousImageIds`, `restoreModel`,
/// `modelHash`, `held`, `kind`, `versions`, the container's `restartPolicy`, `oomKilled`,
/// `configHash`) defaults when missing, so the object is taken as it is.
fn v1_to_v2(_object: &mut Map<String, Value>) {}

/// Version 2 to 3: nothing is renamed or removed, but `status.json` may hold values a version 2
/// reader does not know (the phase `Unknown`, the conditions `Ready` and `DockerReachable`):
/// such a reader would take the file for corrupt, so version 3 makes it refuse the file as
/// newer instead. A version 2 object is a valid version 3 object.
fn v2_to_v3(_object: &mut Map<String, Value>) {}

/// Version 3 to 4: nothing is renamed or removed; `status.json` may hold the phase
/// `OutOfSync`, which a version 3 reader does not know. A version 3 object is a valid version 4
/// object.
fn v3_to_v4(_object: &mut Map<String, Value>) {}

/// Serializes `value` as pretty JSON with `schemaVersion` first and writes it atomically (0600).
/// Every state file is a JSON object; a value that serializes as anything else is written
/// without the field.
pub fn write_versioned<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    #[derive(Serialize)]
    struct Versioned<'a, T: ?Sized> {
        #[serde(rename = "schemaVersion")]
        schema_version: u32,
        #[serde(flatten)]
        value: &'a T,
    }
    let versioned = Versioned {
        schema_version: SCHEMA_VERSION,
        value,
    };
    // A value that is not a JSON object (only tests write one) cannot carry the field.
    let mut bytes = serde_json::to_vec_pretty(&versioned)
        .or_else(|_| serde_json::to_vec_pretty(value))
        .map_err(|source| Error::Serialize {
            path: path.to_path_buf(),
            source,
        })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes, super::atomic::FILE_MODE)
}

/// Reads a versioned file: parse, check the version, migrate, deserialize. A missing file is an
/// `Io` error (see [`read_versioned_opt`]).
pub fn read_versioned<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    from_versioned_slice(path, &bytes)
}

/// Like [`read_versioned`], but a missing file is `Ok(None)`.
pub fn read_versioned_opt<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match read_versioned(path) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// [`read_versioned`] on bytes already read from `path` (named in errors).
pub fn from_versioned_slice<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T> {
    let corrupt = |field: Option<String>, source| Error::Corrupt {
        path: path.to_path_buf(),
        line: None,
        field: field.map(String::into_boxed_str),
        source,
    };
    let mut value: Value = serde_json::from_slice(bytes).map_err(|e| corrupt(None, e))?;
    if let Value::Object(object) = &mut value {
        let version = take_version(path, object)?;
        for migrate in &MIGRATIONS[(version - 1) as usize..] {
            migrate(object);
        }
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        corrupt((field != ".").then_some(field), e.into_inner())
    })
}

/// Removes and returns the object's schema version ([`UNVERSIONED`] when absent).
fn take_version(path: &Path, object: &mut Map<String, Value>) -> Result<u32> {
    let Some(raw) = object.remove(SCHEMA_VERSION_FIELD) else {
        return Ok(UNVERSIONED);
    };
    match raw.as_u64() {
        Some(found) if found > u64::from(SCHEMA_VERSION) => Err(Error::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        }),
        Some(found) if found >= u64::from(UNVERSIONED) => Ok(found as u32),
        _ => Err(Error::Corrupt {
            path: path.to_path_buf(),
            line: None,
            field: Some(SCHEMA_VERSION_FIELD.into()),
            source: <serde_json::Error as serde::de::Error>::custom(format!(
                "{SCHEMA_VERSION_FIELD} must be a whole number from {UNVERSIONED}, found {raw}"
            )),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Shape {
        name: String,
        #[serde(default)]
        added_later: Vec<u32>,
    }

    fn file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn written_files_carry_the_version_first_and_read_back() {
        let (_d, path) = file("");
        let value = Shape {
            name: "shop".into(),
            added_later: vec![1],
        };
        write_versioned(&path, &value).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with(&format!(
                "{{\n  \"schemaVersion\": {SCHEMA_VERSION},\n  \"name\""
            )),
            "{text}"
        );
        assert_eq!(read_versioned::<Shape>(&path).unwrap(), value);
    }

    #[test]
    fn a_file_without_a_version_is_version_1_and_missing_fields_default() {
        let (_d, path) = file(r#"{"name": "shop"}"#);
        let read: Shape = read_versioned(&path).unwrap();
        assert_eq!(read.added_later, Vec::<u32>::new());
    }

    #[test]
    fn a_newer_version_is_a_downgrade_naming_the_file_and_both_versions() {
        let text = r#"{"schemaVersion": 7, "name": "shop", "fromTheFuture": true}"#;
        let (_d, path) = file(text);
        let err = read_versioned::<Shape>(&path).unwrap_err();
        assert_eq!(err.kind(), "newer_schema");
        let message = err.to_string();
        for part in [
            path.to_str().unwrap(),
            "schemaVersion 7",
            &format!("supports {SCHEMA_VERSION}"),
        ] {
            assert!(message.contains(part), "{part} in {message}");
        }
        assert!(!err.is_transient());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "untouched");
    }

    #[test]
    fn a_wrong_field_is_corrupt_and_names_the_field() {
        let (_d, path) = file(r#"{"name": "shop", "addedLater": ["x"]}"#);
        let err = read_versioned::<Shape>(&path).unwrap_err();
        assert_eq!(err.kind(), "corrupt");
        assert!(err.to_string().contains("field `addedLater[0]`"), "{err}");
        let (_d, path) = file(r#"{"schemaVersion": "two", "name": "shop"}"#);
        let err = read_versioned::<Shape>(&path).unwrap_err();
        assert!(err.to_string().contains("field `schemaVersion`"), "{err}");
        let (_d, path) = file(r#"{"schemaVersion": 0, "name": "shop"}"#);
        assert_eq!(
            read_versioned::<Shape>(&path).unwrap_err().kind(),
            "corrupt"
        );
    }

    #[test]
    fn truncated_json_is_corrupt_and_missing_files_are_none() {
        let (d, path) = file(r#"{"name": "sh"#);
        assert_eq!(
            read_versioned::<Shape>(&path).unwrap_err().kind(),
            "corrupt"
        );
        assert_eq!(
            read_versioned_opt::<Shape>(&d.path().join("none.json")).unwrap(),
            None
        );
    }
}

#[cfg(test)]
#[path = "schema_fixtures.rs"]
mod fixtures;
