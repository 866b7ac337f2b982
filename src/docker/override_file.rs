//! The pinning override file: rendered purely, written atomically (temp, fsync, rename, 0600).
//!
//! The YAML is written by hand because it needs Compose's `!reset` tag (`build: !reset null`
//! makes Compose drop a base file's `build:` so it runs the pinned image instead of building).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Error, ImagePins, RenderedModel, Result};

/// The override file of `project` inside `dir`.
pub fn path_for(dir: &Path, project: &str) -> PathBuf {
    dir.join(format!("{project}.c2quay-override.yaml"))
}

/// A YAML double-quoted scalar: safe for any string (quotes, backslashes, control characters).
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Renders the override for `pins`. A pinned service whose base model has `build:` gets
/// `build: !reset null`. Fails when a pinned service is not in `model`.
pub fn render(project: &str, pins: &ImagePins, model: &RenderedModel) -> Result<String> {
    let mut out = String::from(
        "# Written by c2quay: pins the images of the services it deploys. Do not edit.\nservices:\n",
    );
    if pins.is_empty() {
        // An empty mapping keeps the file valid for Compose.
        return Ok("# Written by c2quay: no pins.\nservices: {}\n".to_string());
    }
    for (service, image) in pins {
        let base = model.get(service).ok_or_else(|| Error::MissingService {
            project: project.to_string(),
            service: service.clone(),
        })?;
        out.push_str(&format!(
            "  {}:\n    image: {}\n",
            quote(service),
            quote(image)
        ));
        if base.has_build {
            out.push_str("    build: !reset null\n");
        }
    }
    Ok(out)
}

/// Whether `render` will emit a `!reset` tag for these pins.
pub fn needs_reset(pins: &ImagePins, model: &RenderedModel) -> bool {
    pins.keys()
        .any(|s| model.get(s).is_some_and(|m| m.has_build))
}

/// Writes `content` to `path` atomically: a temp file in the same directory (mode 0600),
/// fsync, rename, fsync of the directory. Creates the directory (0700) when missing.
pub fn write_atomic(path: &Path, content: &str) -> Result<()> {
    let err = |source| Error::Override {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.as_os_str().is_empty() && !dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err)?;
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let result = (|| {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::super::RenderedService;
    use super::*;

    fn model() -> RenderedModel {
        let mut m = RenderedModel::new();
        let svc = |build| RenderedService {
            image: Some("x".into()),
            has_build: build,
            restart: None,
            has_healthcheck: false,
            ..Default::default()
        };
        m.insert("web".into(), svc(false));
        m.insert("api".into(), svc(true));
        m
    }

    #[test]
    fn renders_pins_and_resets_build() {
        let mut pins = ImagePins::new();
        pins.insert("web".into(), "c2quay-test/web:2".into());
        pins.insert("api".into(), "sha256:abcd".into());
        let text = render("shop", &pins, &model()).unwrap();
        assert_eq!(
            text,
            "# Written by c2quay: pins the images of the services it deploys. Do not edit.\nservices:\n  \"api\":\n    image: \"sha256:abcd\"\n    build: !reset null\n  \"web\":\n    image: \"c2quay-test/web:2\"\n"
        );
        // The non-tag part is plain YAML: serde_yaml reads the images back.
        let plain = text.replace(" !reset null", " null");
        let v: serde_yaml::Value = serde_yaml::from_str(&plain).unwrap();
        assert_eq!(
            v["services"]["web"]["image"].as_str(),
            Some("c2quay-test/web:2")
        );
        assert!(needs_reset(&pins, &model()));
    }

    #[test]
    fn quoting_survives_hostile_values() {
        let hostile = "a\"b\\c\nd: e # f\u{1}";
        let q = quote(hostile);
        let back: String = serde_yaml::from_str(&q).unwrap();
        assert_eq!(back, hostile);
    }

    #[test]
    fn unknown_service_is_an_error_and_empty_pins_are_valid() {
        let mut pins = ImagePins::new();
        pins.insert("nope".into(), "x:1".into());
        let err = render("shop", &pins, &model()).unwrap_err();
        assert_eq!(err.kind(), "missing_service");
        assert!(err.to_string().contains("\"nope\""), "{err}");
        let empty = render("shop", &ImagePins::new(), &model()).unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&empty).unwrap();
        assert!(v["services"].as_mapping().unwrap().is_empty());
    }

    #[test]
    fn writes_atomically_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("env"), "shop");
        write_atomic(&path, "one").unwrap();
        write_atomic(&path, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temp files left: {names:?}");
    }
}
