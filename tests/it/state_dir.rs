//! The state directory as other processes and a full disk see it: lock contention between two
//! processes, file modes, corrupt files, bounded history, ENOSPC on a tiny tmpfs, and status
//! files of every released schema (and a newer one) through `c2quay status`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use c2quay::state::{
    AuditEvent, EnvironmentStatus, FixedClock, HISTORY_LIMIT, HistoryEntry, Intent, Operation,
    PendingRecord, Phase, StateDir, Step,
};

/// When set, the test binary runs as the lock-holding child of `two_processes_contend_for_the_lock`.
const CHILD_ENV: &str = "C2QUAY_STATE_TEST_LOCK_CHILD";

#[test]
fn two_processes_contend_for_the_lock() {
    if let Ok(root) = std::env::var(CHILD_ENV) {
        // Child: hold the lock until killed.
        let state = StateDir::open(Path::new(&root)).unwrap();
        let _lock = state
            .lock_environment("shop", "agent", Duration::ZERO)
            .unwrap();
        println!("LOCKED {}", std::process::id());
        std::io::stdout().flush().unwrap();
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let state = StateDir::open(&root).unwrap();
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "state_dir::two_processes_contend_for_the_lock",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &root)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let child_pid = child.0.id();
    // libtest prints "test <name> ... " on the same line before the child's own output.
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let locked = lines.by_ref().map_while(Result::ok).find_map(|l| {
        l.split_once("LOCKED ")
            .map(|(_, pid)| pid.trim().to_string())
    });
    assert_eq!(locked, Some(child_pid.to_string()));

    let start = Instant::now();
    let err = state
        .lock_environment("shop", "deploy", Duration::from_millis(400))
        .unwrap_err();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(400),
        "gave up after {waited:?}"
    );
    assert_eq!(err.kind(), "locked");
    let msg = err.to_string();
    assert!(msg.contains(&format!("pid {child_pid}")), "{msg}");
    assert!(
        msg.contains("`c2quay agent`") && msg.contains("started 20"),
        "{msg}"
    );
    // Another environment is not blocked by it.
    drop(
        state
            .lock_environment("blog", "deploy", Duration::ZERO)
            .unwrap(),
    );

    // A holder killed with SIGKILL leaves its lock file, but not its lock.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let lock = state
        .lock_environment("shop", "deploy", Duration::from_secs(2))
        .unwrap();
    assert_eq!(lock.holder().pid, std::process::id());
    assert_eq!(
        state.lock_holder("shop").unwrap().unwrap().command,
        "deploy"
    );
}

#[test]
fn every_file_is_0600_and_every_directory_0700() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let clock = Arc::new(FixedClock::at_unix(1_767_323_045));
    let state = StateDir::open_with_clock(&root, clock.clone()).unwrap();
    let now = clock_now(&state);
    let _lock = state
        .lock_environment("shop", "deploy", Duration::ZERO)
        .unwrap();
    let pre = state
        .write_snapshot("shop", "pre", &serde_json::json!({"web": "sha256:1"}))
        .unwrap();
    let record = PendingRecord::new("shop", "g1", "production", "web", "2", None, now);
    state.write_intent("shop", &intent(&pre, &record)).unwrap();
    state.update_intent_step("shop", Step::SmokePassed).unwrap();
    state.outbox_put("shop", &record).unwrap();
    state
        .write_status("shop", &EnvironmentStatus::new("shop"))
        .unwrap();
    state
        .write_report(
            "shop",
            "deploy",
            &serde_json::json!({"result": "succeeded"}),
        )
        .unwrap();
    state
        .append_audit("shop", &AuditEvent::new(now, "shop", "up", "succeeded", ""))
        .unwrap();
    c2quay::state::write_atomic(&state.override_file("shop"), b"services: {}\n", 0o600).unwrap();

    let (mut files, mut dirs) = (0, 0);
    for path in walk(&root) {
        let meta = std::fs::metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            dirs += 1;
            assert_eq!(mode, 0o700, "{}", path.display());
        } else {
            files += 1;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
    }
    assert_eq!(
        (files, dirs),
        (8, 6),
        "lock status intent override audit outbox snapshot report; root envs shop outbox snapshots reports"
    );
}

#[test]
fn a_truncated_status_is_an_error_naming_the_file_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(&dir.path().join("state")).unwrap();
    let mut good = EnvironmentStatus::new("shop");
    good.phase = Phase::Ready;
    state.write_status("shop", &good).unwrap();

    // A writer that crashed mid-way leaves only its temp file: the status still reads as good.
    let text = std::fs::read(state.status_file("shop")).unwrap();
    std::fs::write(
        state.env_dir("shop").join(".status.json.tmp-99999-0"),
        &text[..text.len() / 2],
    )
    .unwrap();
    assert_eq!(state.read_status("shop").unwrap(), Some(good.clone()));

    // A status file truncated by something else is reported, never repaired or deleted.
    std::fs::write(state.status_file("shop"), &text[..text.len() / 2]).unwrap();
    let err = state.read_status("shop").unwrap_err();
    assert_eq!(err.kind(), "corrupt");
    let msg = err.to_string();
    assert!(
        msg.contains(&state.status_file("shop").display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("truncated or not valid JSON"), "{msg}");
    let (ok, errors) = state.list_statuses();
    assert!(ok.is_empty());
    assert_eq!(errors.len(), 1);
    assert_eq!(
        std::fs::read(state.status_file("shop")).unwrap(),
        &text[..text.len() / 2]
    );

    // Only when asked: move it aside, and a new status can be written.
    let aside = state.quarantine(&state.status_file("shop")).unwrap();
    assert!(
        aside
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("status.json.corrupt-")
    );
    state.write_status("shop", &good).unwrap();
    assert_eq!(state.read_status("shop").unwrap(), Some(good));
}

/// `c2quay status NAME -o json` on `root`: (exit code, stdout, stderr).
fn c2quay_status(root: &Path, name: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_c2quay"))
        .args(["status", name, "-o", "json", "--state-dir"])
        .arg(root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

#[test]
fn status_reads_every_released_status_shape_and_refuses_a_newer_one_untouched() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state");
    let mut shapes: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("status.v")
        })
        .collect();
    shapes.sort();
    assert!(shapes.len() >= 3, "{shapes:?}");
    for shape in &shapes {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(&dir.path().join("state")).unwrap();
        state.ensure_env("shop").unwrap();
        std::fs::copy(shape, state.status_file("shop")).unwrap();
        let (code, stdout, stderr) = c2quay_status(state.root(), "shop");
        assert_eq!(code, 0, "{}: {stderr}", shape.display());
        let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(listed["phase"], "RolledBack", "{}", shape.display());
        assert_eq!(listed["failedGeneration"], "9f2c1e0a7b3d4c55");
        assert_eq!(
            std::fs::read(state.status_file("shop")).unwrap(),
            std::fs::read(shape).unwrap(),
            "reading changed the file"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(&dir.path().join("state")).unwrap();
    state.ensure_env("shop").unwrap();
    let version = c2quay::state::SCHEMA_VERSION;
    let current =
        std::fs::read_to_string(fixtures.join(format!("status.v{version}.json"))).unwrap();
    let newer = current.replace(
        &format!("\"schemaVersion\": {version}"),
        "\"schemaVersion\": 9",
    );
    std::fs::write(state.status_file("shop"), &newer).unwrap();
    let (code, _, stderr) = c2quay_status(state.root(), "shop");
    assert_eq!(code, 1, "{stderr}");
    let file = state.status_file("shop").display().to_string();
    let supports = format!("supports {version}");
    for part in [file.as_str(), "schemaVersion 9", supports.as_str()] {
        assert!(stderr.contains(part), "{part} in {stderr}");
    }
    assert_eq!(
        std::fs::read_to_string(state.status_file("shop")).unwrap(),
        newer
    );
}

#[test]
fn history_stays_bounded_across_many_reconciles() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(&dir.path().join("state")).unwrap();
    for i in 0..25u64 {
        let mut status = state
            .read_status("shop")
            .unwrap()
            .unwrap_or_else(|| EnvironmentStatus::new("shop"));
        status.push_history(HistoryEntry {
            at: UNIX_EPOCH + Duration::from_secs(i),
            generation: Some(format!("g{i}")),
            revision: None,
            action: "noop".into(),
            reason: "up to date".into(),
            result: "succeeded".into(),
            duration_ms: i,
        });
        state.write_status("shop", &status).unwrap();
    }
    let status = state.read_status("shop").unwrap().unwrap();
    assert_eq!(status.history.len(), HISTORY_LIMIT);
    let gens: Vec<_> = status
        .history
        .iter()
        .map(|h| h.generation.clone().unwrap())
        .collect();
    assert_eq!(gens.first().map(String::as_str), Some("g15"));
    assert_eq!(gens.last().map(String::as_str), Some("g24"));
}

#[test]
fn a_full_disk_leaves_the_previous_status_intact() {
    let Some(mount) = TinyTmpfs::mount() else {
        return;
    };
    let state = StateDir::open(&mount.path().join("state")).unwrap();
    let mut good = EnvironmentStatus::new("shop");
    good.phase = Phase::Ready;
    state.write_status("shop", &good).unwrap();

    let filler = mount.path().join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 4096];
    let full = loop {
        if let Err(e) = f.write_all(&chunk) {
            break e;
        }
    };
    assert_eq!(full.raw_os_error(), Some(libc::ENOSPC));
    drop(f);

    let mut bigger = good.clone();
    bigger.phase = Phase::Degraded;
    bigger.message = "x".repeat(16 * 1024);
    let err = state.write_status("shop", &bigger).unwrap_err();
    assert!(err.is_disk_full(), "{err:?}");
    assert_eq!(err.kind(), "full");
    assert!(
        err.to_string().contains("disk full") && err.to_string().contains("status.json"),
        "{err}"
    );
    assert_eq!(
        state.read_status("shop").unwrap(),
        Some(good.clone()),
        "previous status intact"
    );
    let leftovers: Vec<_> = walk(state.root())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let audit = state.append_audit(
        "shop",
        &AuditEvent::new(UNIX_EPOCH, "shop", "x", "y", &"z".repeat(8192)),
    );
    assert!(audit.as_ref().is_err_and(|e| e.is_disk_full()), "{audit:?}");

    std::fs::remove_file(&filler).unwrap();
    state.write_status("shop", &bigger).unwrap();
    assert_eq!(
        state.read_status("shop").unwrap().unwrap().phase,
        Phase::Degraded
    );
}

/// A child process killed (by its own id) when the test ends, even on a failed assertion.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A 64 KiB tmpfs mounted for one test and unmounted on drop.
struct TinyTmpfs {
    dir: tempfile::TempDir,
}

impl TinyTmpfs {
    /// Mounts it, or explains on stderr why not (needs root / CAP_SYS_ADMIN) and returns None.
    fn mount() -> Option<TinyTmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(TinyTmpfs { dir }),
            Ok(o) => {
                eprintln!(
                    "SKIPPED ENOSPC check: cannot mount tmpfs: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED ENOSPC check: cannot run mount: {e}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TinyTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn clock_now(state: &StateDir) -> std::time::SystemTime {
    state.clock().now()
}

fn intent(pre: &Path, record: &PendingRecord) -> Intent {
    Intent {
        generation: "g1".into(),
        operation: Operation::Deploy,
        started_at: record.created_at,
        pre_snapshot: pre.to_path_buf(),
        target_images: [("web".to_string(), "c2quay-test/web:2".to_string())].into(),
        previous_images: [("web".to_string(), "sha256:1".to_string())].into(),
        changed_services: vec!["web".into()],
        records: vec![record.clone()],
        step: Step::Started,
        resumes: 0,
        previous_image_ids: Default::default(),
        restore_model: None,
        model_hash: None,
        held: Default::default(),
    }
}

/// Every file and directory under `root`, `root` included.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if out[i].is_dir() {
            let children: Vec<_> = std::fs::read_dir(&out[i])
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            out.extend(children);
        }
        i += 1;
    }
    out
}
