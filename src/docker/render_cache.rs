//! The rendered model kept on disk between processes: `compose config` is asked again only
//! when its answer can have changed. The key covers everything the answer depends on: the
//! project (name, directory, files), every input file's size, mtime and inode
//! ([`InputStamp`]), the process environment (Compose interpolates `${VAR}` from it) and the
//! Compose version. The file holds rendered values (environment values may be secrets), so it
//! is written 0600 like the override and `applied-model.json`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::inputs::InputStamp;
use super::{ComposeVersion, Project, RenderedModel, parse};

/// One cached render.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    key: String,
    config: String,
}

/// The cache file of `project` in `dir`.
fn path_for(dir: &Path, project: &str) -> PathBuf {
    dir.join(format!("{project}.render.json"))
}

/// The key of a render of `project` with these inputs, this environment and this Compose.
pub fn key(project: &Project, stamp: &InputStamp, version: &ComposeVersion) -> String {
    let mut hash = Sha256::new();
    hash.update(format!("{project:?}\0{stamp:?}\0{version:?}\0").as_bytes());
    let mut vars: Vec<(std::ffi::OsString, std::ffi::OsString)> = std::env::vars_os().collect();
    vars.sort();
    for (name, value) in vars {
        hash.update(name.as_encoded_bytes());
        hash.update(b"=");
        hash.update(value.as_encoded_bytes());
        hash.update(b"\0");
    }
    hex::encode(hash.finalize())
}

/// The cached model of `project` when it was rendered under `key`.
pub fn load(dir: &Path, project: &str, key: &str) -> Option<RenderedModel> {
    let text = std::fs::read_to_string(path_for(dir, project)).ok()?;
    let entry: Entry = serde_json::from_str(&text).ok()?;
    if entry.key != key {
        return None;
    }
    parse::config(&entry.config).ok()
}

/// Keeps `config` (the `compose config` answer) as the render of `project` under `key`.
pub fn store(dir: &Path, project: &str, key: &str, config: &str) -> super::Result<()> {
    let entry = Entry {
        key: key.to_string(),
        config: config.to_string(),
    };
    let text = serde_json::to_string(&entry).unwrap_or_default();
    super::override_file::write_atomic(&path_for(dir, project), &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(dir: &Path) -> Project {
        Project {
            name: "shop".into(),
            directory: dir.to_path_buf(),
            files: vec![dir.join("compose.yaml")],
        }
    }

    const CONFIG: &str =
        r#"{"name":"shop","services":{"web":{"image":"web:1","environment":{"A":"1"}}}}"#;

    #[test]
    fn a_render_is_reused_until_an_input_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let compose = dir.path().join("compose.yaml");
        std::fs::write(&compose, "services: {web: {image: web:1}}\n").unwrap();
        let project = project(dir.path());
        let version = ComposeVersion::parse("2.40.0").unwrap();
        let cache = dir.path().join("cache");
        let key_now = || key(&project, &InputStamp::of(&project.files), &version);

        let first = key_now();
        assert!(load(&cache, "shop", &first).is_none(), "nothing cached yet");
        store(&cache, "shop", &first, CONFIG).unwrap();
        let model = load(&cache, "shop", &key_now()).expect("the same inputs: a hit");
        assert_eq!(
            model.get("web").and_then(|s| s.image.as_deref()),
            Some("web:1")
        );
        assert_eq!(model.source(), Some(CONFIG));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(path_for(&cache, "shop"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "rendered values are private");

        std::fs::write(
            &compose,
            "services: {web: {image: web:1, environment: [A=2]}}\n",
        )
        .unwrap();
        assert!(
            load(&cache, "shop", &key_now()).is_none(),
            "an edited file: a miss"
        );
        let newer = ComposeVersion::parse("2.41.0").unwrap();
        let other = key(&project, &InputStamp::of(&project.files), &newer);
        assert_ne!(other, key_now(), "another Compose renders again");
    }
}
