//! Issue 6, item 2: a hostile desired directory. `c2quay validate` and `c2quay agent --once` meet
//! symlinks leading outside, dangling and looping symlinks, a FIFO, a device file, an unreadable
//! file, a directory named like a manifest, binary and oversized files, thousands of files, and
//! manifests renamed over each other or rewritten while being read: no panic, no hang (every run
//! is killed after a timeout), and each bad file is reported on its own while the good one loads.
//!
//! No Docker is needed: the compose directories do not exist, so the agent's one reconcile of a
//! good environment fails at `docker compose ps` (or at finding Docker) and nothing runs.

use crate::support::docker;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use docker::run_with_timeout;
use serde_json::Value;

/// The most one `c2quay` run may take before it is killed (and the test fails).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn manifest(name: &str) -> String {
    format!(
        "apiVersion: c2quay.dev/v1\nkind: Environment\nmetadata:\n  name: {name}\nspec:\n  compose:\n    \
         project: hostile-{name}\n    directory: /nonexistent/c2quay-hostile/{name}\n    files: [compose.yaml]\n    \
         pull: never\n  services:\n    web:\n      pacticipant: web\n      version: \"1\"\n      \
         image: c2quay-test/web:1\n"
    )
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    fn text(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// No panic message and no signal death.
    fn assert_sane(&self, what: &str) {
        assert!(
            self.code >= 0,
            "{what}: killed by a signal\n{}",
            self.text()
        );
        assert!(
            !self.stderr.contains("panicked") && !self.stdout.contains("panicked"),
            "{what}: panicked\n{}",
            self.text()
        );
    }
}

fn c2quay(args: &[&str]) -> Run {
    let started = Instant::now();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_c2quay"));
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .env_remove("C2QUAY_DESIRED")
        .env_remove("C2QUAY_STATE_DIR");
    let out = run_with_timeout(&mut cmd, RUN_TIMEOUT)
        .unwrap_or_else(|e| panic!("c2quay {args:?} hung or failed to start: {e}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

fn validate(dir: &Path) -> (Run, Value) {
    let run = c2quay(&["validate", "-o", "json", &dir.display().to_string()]);
    run.assert_sane("validate");
    let json = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("validate -o json is not JSON ({e})\n{}", run.text()));
    (run, json)
}

/// File name -> error messages of the validate report.
fn errors_by_file(report: &Value) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in report["problems"].as_array().into_iter().flatten() {
        if p["severity"] != "error" {
            continue;
        }
        let file = p["file"].as_str().unwrap_or_default();
        let name = Path::new(file)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.entry(name)
            .or_default()
            .push(p["message"].as_str().unwrap_or_default().to_string());
    }
    out
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn mkfifo(path: &Path) -> bool {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    unsafe { libc::mkfifo(c.as_ptr(), 0o644) == 0 }
}

/// A character device like /dev/null (needs CAP_MKNOD); else a symlink to /dev/null.
fn make_device(path: &Path) -> &'static str {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path; makedev has no preconditions.
    let made = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 3)) == 0 };
    if made {
        "character device"
    } else {
        std::os::unix::fs::symlink("/dev/null", path).expect("symlink to /dev/null");
        "symlink to /dev/null (mknod not permitted)"
    }
}

#[test]
fn every_hostile_entry_is_reported_on_its_own_and_the_good_one_loads() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("desired");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("good.yaml"), manifest("good")).expect("good");
    let outside = root.path().join("outside-target.yaml");
    std::fs::write(&outside, manifest("outside")).expect("outside target");
    std::os::unix::fs::symlink(&outside, dir.join("outside.yaml")).expect("symlink");
    std::os::unix::fs::symlink(dir.join("missing.yaml"), dir.join("dangling.yaml"))
        .expect("symlink");
    std::os::unix::fs::symlink(dir.join("loop.yaml"), dir.join("loop.yaml")).expect("symlink");
    assert!(mkfifo(&dir.join("fifo.yaml")), "mkfifo");
    let device = make_device(&dir.join("device.yaml"));
    std::fs::create_dir(dir.join("directory.yaml")).expect("dir");
    std::fs::write(dir.join("binary.yaml"), [0xff, 0xfe, 0x00, 0x81]).expect("binary");
    std::fs::write(dir.join("huge.yaml"), vec![b'#'; 2 * 1024 * 1024]).expect("huge");
    let unreadable = dir.join("unreadable.yaml");
    std::fs::write(&unreadable, manifest("unreadable")).expect("unreadable");
    std::fs::set_permissions(
        &unreadable,
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .expect("chmod 000");
    // A symlink inside the directory is fine: it loads (under its own metadata.name).
    std::fs::write(dir.join(".hidden-target"), manifest("inside")).expect("inside");
    std::os::unix::fs::symlink(dir.join(".hidden-target"), dir.join("inside.yaml"))
        .expect("symlink");

    let (run, report) = validate(&dir);
    assert_eq!(
        run.code,
        1,
        "invalid files make validate fail:\n{}",
        run.text()
    );
    let errors = errors_by_file(&report);
    let expect: &[(&str, &str)] = &[
        ("outside.yaml", "outside the desired directory"),
        ("dangling.yaml", "cannot be followed"),
        ("loop.yaml", "cannot be followed"),
        ("fifo.yaml", "not a regular file"),
        ("directory.yaml", "is a directory"),
        ("binary.yaml", "not UTF-8"),
        ("huge.yaml", "larger than"),
        (
            "device.yaml",
            if device == "character device" {
                "not a regular file"
            } else {
                "outside the desired directory"
            },
        ),
    ];
    for (file, needle) in expect {
        let messages = errors
            .get(*file)
            .unwrap_or_else(|| panic!("{file} not reported:\n{}", run.text()));
        assert_eq!(messages.len(), 1, "{file}: one problem: {messages:?}");
        assert!(
            messages[0].contains(needle),
            "{file}: {messages:?} should say {needle:?}"
        );
    }
    let loaded: Vec<&str> = report["environments"]
        .as_array()
        .expect("environments")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    // chmod 000 does not stop root (CAP_DAC_OVERRIDE): as root the file loads like any other.
    if is_root() {
        assert!(
            loaded.contains(&"unreadable"),
            "root reads a 0000 file: {loaded:?}"
        );
    } else {
        let m = errors.get("unreadable.yaml").expect("unreadable reported");
        assert!(m[0].contains("ermission denied"), "{m:?}");
    }
    assert!(
        loaded.contains(&"good") && loaded.contains(&"inside"),
        "{loaded:?}"
    );
    assert!(!loaded.contains(&"outside"), "{loaded:?}");
    println!(
        "FIGURE hostile desired dir: {} entries, {} reported as errors, {} loaded, device = {device}, root = {}, validate took {:?}",
        std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0),
        errors.len(),
        loaded.len(),
        is_root(),
        run.elapsed
    );

    // The agent: one pass over the same directory, then `status` tells each environment apart.
    let state = root.path().join("state");
    let dir_s = dir.display().to_string();
    let state_s = state.display().to_string();
    let run = c2quay(&[
        "agent",
        "--once",
        "--no-http",
        "--desired",
        &dir_s,
        "--state-dir",
        &state_s,
    ]);
    run.assert_sane("agent --once");
    assert_eq!(run.code, 1, "not all Ready, so exit 1:\n{}", run.text());
    let status = c2quay(&["status", "-o", "json", "--state-dir", &state_s]);
    status.assert_sane("status");
    assert_eq!(status.code, 0, "{}", status.text());
    let status: Value = serde_json::from_str(&status.stdout).expect("status JSON");
    let text = status.to_string();
    for (file, _) in expect {
        let env = file.trim_end_matches(".yaml");
        assert!(
            text.contains(&format!("\"{env}\"")),
            "agent status lacks {env}: {text}"
        );
    }
    println!(
        "agent --once over the hostile dir: exit {} in {:?}",
        run.code, run.elapsed
    );
}

#[test]
fn two_thousand_manifests_are_read_in_bounded_time() {
    const N: usize = 2000;
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("desired");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for i in 0..N {
        std::fs::write(
            dir.join(format!("env-{i:04}.yaml")),
            manifest(&format!("env-{i:04}")),
        )
        .expect("write");
    }
    // Two files claiming one name are both refused, the rest load.
    std::fs::write(dir.join("zz-duplicate.yaml"), manifest("env-0007")).expect("dup");
    let (run, report) = validate(&dir);
    let loaded = report["environments"].as_array().map(Vec::len).unwrap_or(0);
    let errors = errors_by_file(&report);
    assert_eq!(run.code, 1, "{}", run.text());
    assert_eq!(loaded, N - 1, "every other manifest loads");
    assert!(errors.contains_key("env-0007.yaml") && errors.contains_key("zz-duplicate.yaml"));
    println!("FIGURE validate of {} manifests: {:?}", N + 1, run.elapsed);
}

/// Rewrites and renames manifests in a bounded loop until told to stop.
fn churn(dir: PathBuf, stop: Arc<AtomicBool>) -> usize {
    let mut rounds = 0;
    while !stop.load(Ordering::Relaxed) && rounds < 100_000 {
        let a = dir.join("a.yaml");
        let b = dir.join("b.yaml");
        // A manifest renamed over another (b's environment disappears, a's takes its file).
        let _ = std::fs::write(&a, manifest("churn-a"));
        let _ = std::fs::rename(&a, &b);
        let _ = std::fs::write(&a, manifest("churn-a2"));
        // A file rewritten in place (truncate, then write in two halves) while being read.
        let text = manifest("churn-c");
        let (head, tail) = text.split_at(text.len() / 2);
        if let Ok(mut f) = std::fs::File::create(dir.join("c.yaml")) {
            use std::io::Write as _;
            let _ = f.write_all(head.as_bytes());
            let _ = f.flush();
            let _ = f.write_all(tail.as_bytes());
        }
        let _ = std::fs::remove_file(&b);
        rounds += 1;
    }
    rounds
}

#[test]
fn manifests_renamed_over_each_other_or_rewritten_while_read() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("desired");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("stable.yaml"), manifest("stable")).expect("stable");
    let stop = Arc::new(AtomicBool::new(false));
    let churner = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || churn(dir, stop))
    };
    let state = root.path().join("state");
    let (dir_s, state_s) = (dir.display().to_string(), state.display().to_string());
    let mut codes = BTreeMap::<i32, usize>::new();
    for i in 0..20 {
        let (run, report) = validate(&dir);
        *codes.entry(run.code).or_default() += 1;
        assert!(run.code == 0 || run.code == 1, "run {i}:\n{}", run.text());
        let names: Vec<&str> = report["environments"]
            .as_array()
            .expect("environments")
            .iter()
            .filter_map(|e| e["name"].as_str())
            .collect();
        assert!(
            names.contains(&"stable"),
            "run {i}: the stable manifest always loads: {names:?}"
        );
        if i % 5 == 0 {
            let run = c2quay(&[
                "agent",
                "--once",
                "--no-http",
                "--desired",
                &dir_s,
                "--state-dir",
                &state_s,
            ]);
            run.assert_sane("agent --once under churn");
        }
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = churner.join().expect("churn thread");
    println!(
        "FIGURE churn: {rounds} rename/rewrite rounds during 20 validate + 4 agent runs; exit codes {codes:?}"
    );
    assert!(rounds > 0);
}
