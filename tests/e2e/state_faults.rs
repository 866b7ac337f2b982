//! Issue 6, item 5: faults of the state directory under the real `c2quay agent`, real Docker
//! and the broker emulator.
//!
//! - Disk full in the middle of a deploy (after `up`, while smoke runs): the agent says "disk
//!   full" naming the file, no state file is corrupted (status, intent and audit log still
//!   parse), HTTP keeps answering, and once space is freed the interrupted deploy is finished
//!   from the journal: the environment converges to Ready and the record is made, exactly once.
//! - A read-only state directory: the deploy is refused before touching the host, loudly, and
//!   goes through once the directory is writable again.
//! - A corrupt `status.json`, `intent.json` and outbox entry: the agent names each file, never
//!   overwrites the bad bytes (they stay in place or move to `<file>.corrupt-<ts>`), keeps
//!   serving, and recovers by re-observing: a rebuilt status, an environment that is Ready
//!   again, and an unreadable pending record that status reports instead of claiming
//!   "every deployment is recorded".
//!
//! The first two mount a small tmpfs on the state directory (we run as root); the mount is
//! removed by a guard. Without permission to mount they skip, or fail when
//! `C2QUAY_REQUIRE_DOCKER` is set.

use crate::support::{agent, docker};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use agent::{Agent, Broker, EnvSpec, World, condition, tail, wait_until};
use docker::{docker_required, require_docker};
use serde_json::Value;

/// Size of the tmpfs mounted on the state directory.
const TMPFS_SIZE: &str = "8m";
/// Bound of every wait for the agent to converge.
const CONVERGE: Duration = Duration::from_secs(90);

#[test]
fn disk_full_mid_deploy_is_reported_corrupts_nothing_and_recovers() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let Some(_mount) = TmpfsMount::on(&world.state) else {
        return;
    };
    let broker = Broker::start();
    let (mut spec, _guard) = world.env("full", Some(&broker));
    let hold = SmokeHold::new(&world, &mut spec);
    broker.seed_deployable(&spec.pacticipant, "1");
    spec.write(&world.desired);
    let agent = Agent::start(&world, &[]);
    agent.wait_phase("full", "Ready", CONVERGE);
    assert_eq!(broker.current(&spec.pacticipant), vec!["1".to_string()]);

    // Deploy 2 and hold it in smoke: `up` is done, the journal says `ready`.
    hold.engage();
    broker.seed_deployable(&spec.pacticipant, "2");
    spec.version = "2".into();
    spec.write(&world.desired);
    hold.wait_reached(&agent);

    // Fill the disk, then let smoke pass: the journal, outbox and status writes now fail.
    let filler = Filler::fill(&world.state);
    let status_before: Value = serde_json::from_slice(
        &std::fs::read(world.env_state("full").join("status.json")).unwrap(),
    )
    .unwrap();
    let log_mark = agent.log_text().len();
    let full_at = Instant::now();
    hold.release();
    let reported = wait_until(CONVERGE, || {
        agent.log_text()[log_mark..].contains("disk full")
    });
    let new_log = agent.log_text()[log_mark..].to_string();
    assert!(
        reported,
        "no 'disk full' in the log:\n{}",
        tail(&new_log, 40)
    );
    println!(
        "FIGURE state faults: disk full reported {:?} after smoke passed",
        full_at.elapsed()
    );
    let named: Vec<&str> = new_log
        .lines()
        .filter(|l| l.contains("disk full"))
        .collect();
    assert!(
        named
            .iter()
            .any(|l| l.contains(&*world.state.to_string_lossy())),
        "the disk-full errors do not name a file:\n{}",
        named.join("\n")
    );
    // Let at least one retry run against the full disk.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(agent.get("/healthz").map(|r| r.0).ok(), Some(200));
    let (code, _) = agent.get("/metrics").expect("/metrics while full");
    assert_eq!(code, 200);
    // Every file still parses, and the applied release in status is still the old one (a
    // status written into space a failed write freed may report the error, which is welcome).
    assert_state_files_parse(&world, "full");
    let status_while_full: Value = serde_json::from_slice(
        &std::fs::read(world.env_state("full").join("status.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(status_while_full["releases"], status_before["releases"]);
    assert_eq!(
        status_while_full["appliedGeneration"],
        status_before["appliedGeneration"]
    );
    println!(
        "FIGURE state faults: status while full: phase {}, message {:?}",
        status_while_full["phase"], status_while_full["message"]
    );
    assert!(
        world.intent_open("full"),
        "the journal of the interrupted deploy is gone: nothing would finish it"
    );
    assert_eq!(
        broker.current(&spec.pacticipant),
        vec!["1".to_string()],
        "recorded before the record was safely queued"
    );

    // Free the space: the interrupted deploy is finished and recorded, exactly once.
    let freed_at = Instant::now();
    drop(filler);
    let status = agent.wait_status("full", CONVERGE, "Ready at 2", |s| {
        s["phase"] == "Ready" && s["releases"]["web"]["version"] == "2"
    });
    assert!(
        wait_until(CONVERGE, || broker.current(&spec.pacticipant) == ["2"]),
        "version 2 never recorded; records {:?}\n{}",
        broker.records(&spec.pacticipant),
        tail(&agent.log_text(), 40)
    );
    println!(
        "FIGURE state faults: after freeing space, Ready at 2 and recorded in {:?}",
        freed_at.elapsed()
    );
    assert!(!world.intent_open("full"));
    assert!(wait_until(Duration::from_secs(20), || world
        .outbox_len("full")
        == 0));
    assert!(broker.duplicate_records(&spec.pacticipant).is_empty());
    assert_eq!(
        condition(&status, "Recorded").map(|c| c.0),
        Some("True".to_string())
    );
    assert_state_files_parse(&world, "full");
    assert_eq!(spec.served_version().as_deref(), Some("2"));
}

#[test]
fn read_only_state_dir_refuses_the_deploy_before_touching_the_host() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let Some(mount) = TmpfsMount::on(&world.state) else {
        return;
    };
    let broker = Broker::start();
    let (mut spec, _guard) = world.env("ro", Some(&broker));
    broker.seed_deployable(&spec.pacticipant, "1");
    spec.write(&world.desired);
    let agent = Agent::start(&world, &[]);
    agent.wait_phase("ro", "Ready", CONVERGE);

    mount.remount("ro");
    let status_before = std::fs::read(world.env_state("ro").join("status.json")).unwrap();
    let log_mark = agent.log_text().len();
    broker.seed_deployable(&spec.pacticipant, "2");
    spec.version = "2".into();
    spec.write(&world.desired);
    let reported = wait_until(CONVERGE, || {
        agent.log_text()[log_mark..].contains("Read-only file system")
    });
    assert!(
        reported,
        "no read-only error in the log:\n{}",
        tail(&agent.log_text()[log_mark..], 40)
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(agent.get("/healthz").map(|r| r.0).ok(), Some(200));
    assert_eq!(
        spec.served_version().as_deref(),
        Some("1"),
        "the host changed though nothing could be journaled"
    );
    assert_eq!(broker.current(&spec.pacticipant), vec!["1".to_string()]);
    assert_eq!(
        std::fs::read(world.env_state("ro").join("status.json")).unwrap(),
        status_before
    );
    println!("FIGURE state faults: read-only state dir: deploy refused, host unchanged");

    let writable_at = Instant::now();
    mount.remount("rw");
    agent.wait_status("ro", CONVERGE, "Ready at 2", |s| {
        s["phase"] == "Ready" && s["releases"]["web"]["version"] == "2"
    });
    assert!(wait_until(CONVERGE, || broker.current(&spec.pacticipant) == ["2"]));
    println!(
        "FIGURE state faults: writable again, Ready at 2 and recorded in {:?}",
        writable_at.elapsed()
    );
    assert_state_files_parse(&world, "ro");
}

/// FIXME(lead): passes once `agent/reconcile.rs` moves a corrupt status or intent aside and
/// reports unreadable outbox entries (the patch is in the issue 6 item 5 report).
#[test]
fn corrupt_status_intent_and_outbox_are_named_kept_and_recovered_from() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let broker = Broker::start();
    let names = ["cstatus", "cintent", "coutbox"];
    let mut specs = Vec::new();
    let mut guards = Vec::new();
    for name in names {
        let (spec, guard) = world.env(name, Some(&broker));
        broker.seed_deployable(&spec.pacticipant, "1");
        spec.write(&world.desired);
        specs.push(spec);
        guards.push(guard);
    }
    let mut agent = Agent::start(&world, &[]);
    for name in names {
        agent.wait_phase(name, "Ready", CONVERGE);
    }
    assert!(agent.sigterm(Duration::from_secs(30)).is_some());

    // Damage one file of each environment, as a torn write or a bad disk would.
    let status_file = world.env_state("cstatus").join("status.json");
    let status_text = std::fs::read(&status_file).unwrap();
    let bad_status = status_text[..status_text.len() / 2].to_vec();
    std::fs::write(&status_file, &bad_status).unwrap();
    let intent_file = world.env_state("cintent").join("intent.json");
    let bad_intent = b"{\"generation\": \"0123\", \"operation\": \"depl".to_vec();
    std::fs::write(&intent_file, &bad_intent).unwrap();
    let outbox_file = world
        .env_state("coutbox")
        .join("outbox")
        .join("00000000deadbeef.json");
    std::fs::create_dir_all(outbox_file.parent().unwrap()).unwrap();
    let bad_record = b"{\"id\": \"00000000deadbeef\", \"environment\": \"cou".to_vec();
    std::fs::write(&outbox_file, &bad_record).unwrap();

    let restarted = Instant::now();
    let agent = Agent::start(&world, &[]);
    let mut missing = Vec::new();
    // Each file is named in the log.
    for file in [&status_file, &intent_file, &outbox_file] {
        let name = file.to_string_lossy().into_owned();
        if !wait_until(Duration::from_secs(30), || agent.log_text().contains(&name)) {
            missing.push(format!("the log never names {name}"));
        }
    }
    assert_eq!(agent.get("/healthz").map(|r| r.0).ok(), Some(200));
    // The bad bytes are never overwritten: in place, or moved aside next to it.
    for (file, bad) in [
        (&status_file, &bad_status),
        (&intent_file, &bad_intent),
        (&outbox_file, &bad_record),
    ] {
        if !bad_bytes_kept(file, bad) {
            missing.push(format!("the corrupt bytes of {} are gone", file.display()));
        }
    }
    // Recovery by re-observation: both environments become Ready with a readable status.
    // One deadline for all: when recovery is missing, the test fails in bounded time.
    let deadline = Instant::now() + Duration::from_secs(60);
    for name in ["cstatus", "cintent"] {
        let left = deadline.saturating_duration_since(Instant::now());
        let ready = wait_until(left, || {
            agent.status(name).is_some_and(|s| s["phase"] == "Ready")
        });
        if !ready {
            missing.push(format!(
                "{name} never Ready again; status {:?}",
                agent.get(&format!("/api/v1/environments/{name}"))
            ));
        }
    }
    if world.intent_open("cintent")
        && std::fs::read(&intent_file).ok().as_ref() == Some(&bad_intent)
    {
        missing.push("the corrupt intent still blocks cintent".into());
    }
    // The unreadable pending record is reported, not papered over with "Recorded".
    let left = deadline.saturating_duration_since(Instant::now());
    let reported = wait_until(left.max(Duration::from_secs(5)), || {
        agent.status("coutbox").is_some_and(|s| {
            condition(&s, "Recorded").is_some_and(|(status, _, message)| {
                status != "True" && message.contains("00000000deadbeef")
            })
        })
    });
    if !reported {
        missing.push(format!(
            "coutbox status does not report the unreadable outbox entry: {:?}",
            agent.status("coutbox").map(|s| condition(&s, "Recorded"))
        ));
    }
    println!(
        "FIGURE state faults: corrupt status/intent/outbox handled in {:?} ({} problems)",
        restarted.elapsed(),
        missing.len()
    );
    for (spec, name) in specs.iter().zip(names) {
        assert_eq!(spec.served_version().as_deref(), Some("1"), "{name}");
    }
    assert!(
        missing.is_empty(),
        "{}\n--- agent log (tail) ---\n{}",
        missing.join("\n"),
        tail(&agent.log_text(), 60)
    );
}

/// A tmpfs mounted on a directory for the test's life; unmounted (lazily) on drop.
struct TmpfsMount {
    dir: PathBuf,
}

impl TmpfsMount {
    /// Mounts a [`TMPFS_SIZE`] tmpfs (mode 0700) on `dir`, creating it. `None` (skip) when
    /// mounting is not permitted; panics instead when Docker tests are required.
    fn on(dir: &Path) -> Option<TmpfsMount> {
        std::fs::create_dir_all(dir).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={TMPFS_SIZE},mode=0700"))
            .arg("tmpfs")
            .arg(dir)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(TmpfsMount {
                dir: dir.to_path_buf(),
            }),
            other => {
                let why = match other {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    !docker_required(),
                    "cannot mount a tmpfs on {} (needs root): {why}",
                    dir.display()
                );
                eprintln!("skipping: cannot mount a tmpfs: {why}");
                None
            }
        }
    }

    /// `mount -o remount,<mode>` (`ro` or `rw`).
    fn remount(&self, mode: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "remount {mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).output();
    }
}

/// A file that fills a filesystem until ENOSPC; removed on drop (which frees the space).
struct Filler {
    path: PathBuf,
}

impl Filler {
    /// Writes into `<dir>/filler` until the filesystem is full (bounded by the tmpfs size).
    fn fill(dir: &Path) -> Filler {
        use std::io::Write;
        let path = dir.join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0usize;
        // A tmpfs of TMPFS_SIZE fills after at most that many bytes; the bound is twice that.
        for _ in 0..(2 * 8 * 1024 * 1024 / chunk.len()) {
            match file.write(&chunk) {
                Ok(n) => written += n,
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                    break;
                }
            }
        }
        // Single bytes too, so not even a partial page is left.
        while file.write(&[0]).is_ok_and(|n| n == 1) {
            written += 1;
        }
        println!("FIGURE state faults: filled the state tmpfs with {written} bytes");
        Filler { path }
    }
}

impl Drop for Filler {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// An exec smoke check that blocks while a hold file exists and marks when it was reached:
/// a window after `up`, with the journal at `ready`, before the records are queued.
struct SmokeHold {
    hold: PathBuf,
    reached: PathBuf,
}

impl SmokeHold {
    /// Adds the check to `spec`.
    fn new(world: &World, spec: &mut EnvSpec) -> SmokeHold {
        let hold = world.root.path().join("smoke-hold");
        let reached = world.root.path().join("smoke-reached");
        // `smoke_sleep` is spliced into `sh -c "sleep {..}"`: only builtins after `sleep 0`.
        spec.smoke_sleep = Some(format!(
            "0; : > {reached}; while [ -e {hold} ]; do sleep 0.2; done",
            reached = reached.display(),
            hold = hold.display()
        ));
        SmokeHold { hold, reached }
    }

    fn engage(&self) {
        let _ = std::fs::remove_file(&self.reached);
        std::fs::write(&self.hold, b"").expect("hold file");
    }

    fn wait_reached(&self, agent: &Agent) {
        assert!(
            wait_until(CONVERGE, || self.reached.exists()),
            "the deploy never reached smoke:\n{}",
            tail(&agent.log_text(), 40)
        );
    }

    fn release(&self) {
        std::fs::remove_file(&self.hold).expect("release the hold");
    }
}

impl Drop for SmokeHold {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.hold);
    }
}

/// Asserts that the status, the intent (when present), every outbox entry and every audit line
/// of `env` parse.
fn assert_state_files_parse(world: &World, env: &str) {
    let dir = world.env_state(env);
    let mut files = vec![dir.join("status.json")];
    if dir.join("intent.json").exists() {
        files.push(dir.join("intent.json"));
    }
    if let Ok(entries) = std::fs::read_dir(dir.join("outbox")) {
        files.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json")),
        );
    }
    for file in files {
        let text = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        serde_json::from_slice::<Value>(&text)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
    }
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap_or_default();
    for (i, line) in audit.lines().enumerate() {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("audit.jsonl line {} does not parse: {e}: {line}", i + 1));
    }
}

/// Whether `bad` is still in `file` or in a `<file name>.corrupt-*` next to it.
fn bad_bytes_kept(file: &Path, bad: &[u8]) -> bool {
    if std::fs::read(file).ok().as_deref() == Some(bad) {
        return true;
    }
    let prefix = format!(
        "{}.corrupt-",
        file.file_name().unwrap_or_default().to_string_lossy()
    );
    std::fs::read_dir(file.parent().expect("parent"))
        .map(|entries| {
            entries.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with(&prefix)
                    && std::fs::read(e.path()).ok().as_deref() == Some(bad)
            })
        })
        .unwrap_or(false)
}
