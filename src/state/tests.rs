//! Tests of the state directory itself: creation, permissions, names and listing.

use std::os::unix::fs::PermissionsExt;

use super::*;

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn open_creates_a_private_root_and_envs_dir() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("var/lib/c2quay");
    let s = StateDir::open(&root).unwrap();
    assert_eq!(s.root(), root);
    assert_eq!(mode_of(&root), 0o700);
    assert_eq!(mode_of(&s.envs_dir()), 0o700);
    let env = s.ensure_env("shop").unwrap();
    assert_eq!(env, root.join("envs/shop"));
    assert_eq!(mode_of(&env), 0o700);
}

#[test]
fn open_refuses_a_root_writable_by_others_and_says_how_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o775)).unwrap();
    let err = StateDir::open(&root).unwrap_err();
    assert_eq!(err.kind(), "permissions");
    assert!(
        err.to_string()
            .contains(&format!("chmod 700 {}", root.display())),
        "{err}"
    );
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o750)).unwrap();
    assert!(StateDir::open(&root).is_ok(), "group-readable is fine");
}

#[test]
fn paths_follow_the_documented_layout() {
    let s = StateDir {
        root: PathBuf::from("/s"),
        clock: Arc::new(SystemClock),
    };
    assert_eq!(s.env_dir("shop"), Path::new("/s/envs/shop"));
    assert_eq!(s.lock_file("shop"), Path::new("/s/envs/shop/lock"));
    assert_eq!(s.status_file("shop"), Path::new("/s/envs/shop/status.json"));
    assert_eq!(s.intent_file("shop"), Path::new("/s/envs/shop/intent.json"));
    assert_eq!(
        s.override_file("shop"),
        Path::new("/s/envs/shop/override.compose.yaml")
    );
    assert_eq!(s.audit_file("shop"), Path::new("/s/envs/shop/audit.jsonl"));
    assert_eq!(s.outbox_dir("shop"), Path::new("/s/envs/shop/outbox"));
    assert_eq!(s.snapshots_dir("shop"), Path::new("/s/envs/shop/snapshots"));
    assert_eq!(s.reports_dir("shop"), Path::new("/s/envs/shop/reports"));
}

#[test]
fn environment_names_that_escape_or_hide_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = StateDir::open(&dir.path().join("s")).unwrap();
    for bad in [
        "",
        "..",
        "../x",
        "a/b",
        ".hidden",
        "-x",
        "a b",
        &"x".repeat(129),
    ] {
        let err = s.ensure_env(bad).unwrap_err();
        assert_eq!(err.kind(), "invalid", "{bad:?}");
    }
    for good in ["shop", "shop-prod", "Shop_1.eu", "a"] {
        s.ensure_env(good).unwrap();
    }
    assert_eq!(
        s.list_environments().unwrap(),
        ["Shop_1.eu", "a", "shop", "shop-prod"]
    );
}

#[test]
fn quarantine_uses_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let s = StateDir::open_with_clock(&dir.path().join("s"), Arc::new(FixedClock::at_unix(42)))
        .unwrap();
    s.ensure_env("shop").unwrap();
    std::fs::write(s.status_file("shop"), b"{").unwrap();
    let moved = s.quarantine(&s.status_file("shop")).unwrap();
    assert_eq!(moved, s.env_dir("shop").join("status.json.corrupt-42"));
    assert_eq!(s.read_status("shop").unwrap(), None);
}

/// Issue 19 item 3: a command run by another user than the state directory's owner (`sudo
/// c2quay deploy` on the agent's directory) writes nothing and says who owns it; reading works.
#[test]
fn another_users_state_directory_is_read_but_never_written() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: changing a directory's owner needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = StateDir::open(&dir.path().join("s")).unwrap();
    s.ensure_env("shop").unwrap();
    let nobody = 65534;
    std::os::unix::fs::chown(s.root(), Some(nobody), Some(nobody)).unwrap();

    let lock = s.lock_environment("shop", "deploy", std::time::Duration::ZERO);
    let write = s.ensure_env("other");

    for err in [
        lock.map(|_| ()).unwrap_err(),
        write.map(|_| ()).unwrap_err(),
    ] {
        assert_eq!(err.kind(), "permissions");
        let text = err.to_string();
        assert!(text.contains("belongs to uid 65534"), "{text}");
        assert!(text.contains("runs as uid 0"), "{text}");
        assert!(text.contains("run it as the owner (sudo -u"), "{text}");
    }
    assert!(!s.env_dir("other").exists(), "nothing written");
    assert_eq!(s.read_status("shop").unwrap(), None, "reading still works");
}
