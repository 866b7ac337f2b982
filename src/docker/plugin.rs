//! Finding the Compose v2 plugin binary, and the version cache.
//!
//! `docker compose X` runs three processes: the `docker` CLI, the plugin's metadata check
//! (`docker-compose docker-cli-plugin-metadata`), then the plugin itself. The plugin binary
//! also works on its own (`docker-compose X`, Compose's standalone mode, same code), so c2quay
//! runs it directly when it finds it where the `docker` CLI looks for plugins: one process per
//! Compose command instead of three.
//!
//! `docker compose version` runs on every start of a `c2quay` command; the answer is cached
//! in the state directory, keyed by the program's path, size and modification time, so an
//! upgrade of Compose is seen at once.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use super::override_file::write_atomic;
use super::version::ComposeVersion;

/// Where the `docker` CLI looks for plugins, in its order: `$DOCKER_CONFIG/cli-plugins` (or
/// `~/.docker/cli-plugins`), then the system directories.
pub fn default_plugin_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    match std::env::var_os("DOCKER_CONFIG") {
        Some(config) => dirs.push(PathBuf::from(config).join("cli-plugins")),
        None => {
            if let Some(home) = std::env::var_os("HOME") {
                dirs.push(PathBuf::from(home).join(".docker/cli-plugins"));
            }
        }
    }
    for system in [
        "/usr/local/lib/docker/cli-plugins",
        "/usr/local/libexec/docker/cli-plugins",
        "/usr/lib/docker/cli-plugins",
        "/usr/libexec/docker/cli-plugins",
    ] {
        dirs.push(PathBuf::from(system));
    }
    dirs
}

/// The first executable `docker-compose` plugin binary in `dirs`.
pub fn find_plugin(dirs: &[PathBuf]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    dirs.iter()
        .map(|dir| dir.join("docker-compose"))
        .find(|path| {
            std::fs::metadata(path)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// One cached answer of `version --short` for one program file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CachedVersion {
    program: PathBuf,
    size: u64,
    modified_nanos: u128,
    raw: String,
}

/// The identity of a program file: size and modification time.
fn identity(program: &Path) -> Option<(u64, u128)> {
    let meta = std::fs::metadata(program).ok()?;
    let modified = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some((meta.len(), modified.as_nanos()))
}

/// The cached version of `program`, when `cache` holds one for the same file as it is now.
pub fn cached_version(cache: &Path, program: &Path) -> Option<ComposeVersion> {
    let text = std::fs::read_to_string(cache).ok()?;
    let cached: CachedVersion = serde_json::from_str(&text).ok()?;
    let (size, modified_nanos) = identity(program)?;
    (cached.program == program && cached.size == size && cached.modified_nanos == modified_nanos)
        .then(|| ComposeVersion::parse(&cached.raw))
        .flatten()
}

/// Remembers `version` for `program` in `cache` (atomically, mode 0600). Best effort: a cache
/// that cannot be written only costs one `version` run next time.
pub fn remember_version(cache: &Path, program: &Path, version: &ComposeVersion) {
    let Some((size, modified_nanos)) = identity(program) else {
        return;
    };
    let entry = CachedVersion {
        program: program.to_path_buf(),
        size,
        modified_nanos,
        raw: version.raw.clone(),
    };
    if let Ok(text) = serde_json::to_string(&entry) {
        let _ = write_atomic(cache, &text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn executable(path: &Path, body: &str) {
        std::fs::write(path, body).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn the_first_executable_plugin_wins_and_plain_files_do_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("docker-compose"), "not executable").unwrap();
        executable(&b.join("docker-compose"), "#!/bin/sh\n");
        let dirs = vec![dir.path().join("missing"), a.clone(), b.clone()];
        assert_eq!(find_plugin(&dirs), Some(b.join("docker-compose")));
        assert_eq!(find_plugin(&dirs[..2]), None);
    }

    #[test]
    fn a_cached_version_holds_until_the_program_changes() {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("docker-compose");
        executable(&program, "#!/bin/sh\necho 2.40.3\n");
        let cache = dir.path().join("state/compose-version.json");
        assert_eq!(cached_version(&cache, &program), None);
        let version = ComposeVersion::parse("2.40.3").unwrap();
        remember_version(&cache, &program, &version);
        assert_eq!(cached_version(&cache, &program), Some(version));
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // An upgrade rewrites the binary: another size, so the cache no longer answers.
        executable(&program, "#!/bin/sh\necho 2.41.0 # a newer build\n");
        assert_eq!(cached_version(&cache, &program), None);
        // Another program is not answered from this program's entry.
        assert_eq!(cached_version(&cache, &dir.path().join("other")), None);
    }
}
