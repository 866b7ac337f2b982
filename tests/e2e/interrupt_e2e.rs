//! End to end (issue 19 item 2): a `c2quay deploy` cancelled by SIGTERM (a cancelled CI job) or
//! SIGINT (Ctrl-C) while `up` stops a slow-stopping service (a PID 1 that ignores SIGTERM: the
//! 10 s stop timeout) is not abandoned at once. Within its grace it finishes (the new version
//! serves and is recorded) and exits 143; past the grace it is abandoned to the journal, exits
//! 143 naming the step, and the next `c2quay deploy` resumes it and records it exactly once.

use crate::support::{self, agent};

use std::process::{Command, Stdio};
use std::time::Duration;

use agent::{Broker, EnvSpec, World};
use support::docker::{ComposeProjectGuard, require_docker};

/// A slow-stopping environment deployed at 1, its manifest now asking for 2.
fn at_1_asking_for_2(name: &str) -> (World, Broker, EnvSpec, ComposeProjectGuard) {
    let broker = Broker::start();
    let world = World::new();
    let (mut spec, guard) = world.env_slow_stop(name, Some(&broker));
    broker.seed_deployable(&spec.pacticipant, "1");
    broker.seed_deployable(&spec.pacticipant, "2");
    spec.write(&world.desired);
    let (code, text) = world.deploy(name);
    assert_eq!(code, 0, "v1: {text}");
    spec.version = "2".into();
    spec.write(&world.desired);
    (world, broker, spec, guard)
}

/// Runs `c2quay deploy NAME` with `extra`, runs `during` after `after`, then sends `signal`;
/// (exit code, stderr).
fn deploy_signalled(
    world: &World,
    name: &str,
    extra: &[&str],
    signal: i32,
    after: Duration,
    during: impl FnOnce(),
) -> (i32, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_c2quay"))
        .args(["deploy", name, "--desired"])
        .arg(&world.desired)
        .arg("--state-dir")
        .arg(&world.state)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start deploy");
    std::thread::sleep(after);
    during();
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(child.id() as i32, signal) };
    let out = child.wait_with_output().expect("deploy ends");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_sigterm_during_up_lets_the_deploy_finish_then_exits_143() {
    if !require_docker() {
        return;
    }
    let (world, broker, spec, _guard) = at_1_asking_for_2("int-finish");

    // Issue 14 item 4: while a CLI deploy runs, `c2quay status` says Progressing.
    let phase_meanwhile = std::cell::RefCell::new(String::new());
    let (code, stderr) = deploy_signalled(
        &world,
        "int-finish",
        &[],
        libc::SIGTERM,
        Duration::from_secs(3),
        || *phase_meanwhile.borrow_mut() = cli_phase(&world, "int-finish"),
    );
    assert_eq!(phase_meanwhile.into_inner(), "Progressing");
    assert_eq!(cli_phase(&world, "int-finish"), "Ready", "after the deploy");

    assert_eq!(code, 143, "{stderr}");
    assert!(
        stderr.contains("SIGTERM received: finishing the deploy of int-finish"),
        "{stderr}"
    );
    assert!(stderr.contains("finished first"), "{stderr}");
    assert_eq!(spec.served_version().as_deref(), Some("2"));
    assert_eq!(broker.current(&spec.pacticipant), vec!["2"]);
    assert!(!world.intent_open("int-finish"), "nothing left to resume");
}

#[test]
fn past_the_grace_the_deploy_is_abandoned_to_the_journal_and_the_next_run_resumes_it() {
    if !require_docker() {
        return;
    }
    let (world, broker, spec, _guard) = at_1_asking_for_2("int-abandon");

    let (code, stderr) = deploy_signalled(
        &world,
        "int-abandon",
        &["--grace", "1s"],
        libc::SIGINT,
        Duration::from_secs(3),
        || {},
    );

    assert_eq!(code, 130, "{stderr}");
    assert!(
        stderr.contains("abandoned the deploy of int-abandon (SIGINT) after step"),
        "{stderr}"
    );
    assert!(world.intent_open("int-abandon"), "the journal keeps it");
    let (code, text) = world.deploy("int-abandon");
    assert_eq!(code, 0, "the next run resumes: {text}");
    assert_eq!(spec.served_version().as_deref(), Some("2"));
    assert_eq!(broker.current(&spec.pacticipant), vec!["2"]);
    assert!(
        broker.duplicate_records(&spec.pacticipant).is_empty(),
        "{:?}",
        broker.records(&spec.pacticipant)
    );
}

/// The phase `c2quay status NAME -o json` prints.
fn cli_phase(world: &World, name: &str) -> String {
    let state = world.state.to_str().expect("utf-8 path");
    let (code, out, err) = world.c2quay(&["status", name, "--state-dir", state, "-o", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let parsed: serde_json::Value = serde_json::from_str(&out).expect("status json");
    let status = if parsed.is_array() {
        &parsed[0]
    } else {
        &parsed
    };
    status["phase"].as_str().unwrap_or_default().to_string()
}
