//! End to end (issue 19 item 3): `sudo c2quay deploy` on a state directory another user owns
//! (the agent's, under systemd) refuses before it changes anything, naming the owner and how to
//! run it instead, while reading (`c2quay status`) still works; and an environment whose state
//! the agent cannot read is never exported as Ready.

use std::time::Duration;

use crate::support::{self, agent};

use agent::{Broker, World};
use support::docker::require_docker;

#[test]
fn a_deploy_as_another_user_refuses_and_status_still_reads() {
    if !require_docker() {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: changing a directory's owner needs root");
        return;
    }
    let broker = Broker::start();
    let world = World::new();
    let (mut spec, _guard) = world.env("owned", Some(&broker));
    broker.seed_deployable(&spec.pacticipant, "1");
    broker.seed_deployable(&spec.pacticipant, "2");
    spec.write(&world.desired);
    let (code, text) = world.deploy("owned");
    assert_eq!(code, 0, "{text}");
    std::os::unix::fs::chown(&world.state, Some(65534), Some(65534)).expect("chown");
    spec.version = "2".into();
    spec.write(&world.desired);

    let (code, text) = world.deploy("owned");

    assert_ne!(code, 0, "{text}");
    assert!(text.contains("belongs to uid 65534"), "{text}");
    assert!(text.contains("sudo -u"), "{text}");
    assert_eq!(
        spec.served_version().as_deref(),
        Some("1"),
        "nothing changed"
    );
    let (code, out, err) = world.c2quay(&[
        "status",
        "owned",
        "--state-dir",
        world.state.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("owned"), "{out}");
    std::os::unix::fs::chown(&world.state, Some(0), Some(0)).expect("chown back");
}

/// Issue 19 item 3, second half: an environment whose status the agent cannot read is never
/// exported as Ready: `c2quay_state_error 1`, `c2quay_environment_ready 0` (the alert
/// `C2quayStateError` fires on it), until the file is readable again.
#[test]
fn an_unreadable_status_is_a_state_error_and_never_ready() {
    if !require_docker() {
        return;
    }
    let broker = Broker::start();
    let world = World::new();
    let (spec, _guard) = world.env("unreadable", Some(&broker));
    broker.seed_deployable(&spec.pacticipant, "1");
    spec.write(&world.desired);
    let agent = agent::Agent::start(&world, &[]);
    agent.wait_phase("unreadable", "Ready", Duration::from_secs(60));
    let ready = metric_is(
        &agent,
        "c2quay_environment_ready{environment=\"unreadable\"} 1",
    );
    assert!(ready, "Ready first");

    // A status file that cannot be read (here: a directory where the file should be).
    let status = world.env_state("unreadable").join("status.json");
    let saved = std::fs::read(&status).expect("status");
    std::fs::remove_file(&status).expect("remove status");
    std::fs::create_dir(&status).expect("a directory in its place");

    let error = wait_metric(&agent, "c2quay_state_error{environment=\"unreadable\"} 1");
    assert!(error, "state error exported");
    assert!(metric_is(
        &agent,
        "c2quay_environment_ready{environment=\"unreadable\"} 0"
    ));

    std::fs::remove_dir(&status).expect("remove the directory");
    std::fs::write(&status, saved).expect("status back");
    // The next resync reconciles an environment whose state failed (not only the 15 s retry).
    assert!(wait_metric(
        &agent,
        "c2quay_state_error{environment=\"unreadable\"} 0"
    ));
    assert!(wait_metric(
        &agent,
        "c2quay_environment_ready{environment=\"unreadable\"} 1"
    ));
}

fn metric_is(agent: &agent::Agent, line: &str) -> bool {
    agent
        .get("/metrics")
        .is_ok_and(|(_, text)| text.lines().any(|l| l == line))
}

/// Waits (at most 30 s) until `/metrics` has `line`.
fn wait_metric(agent: &agent::Agent, line: &str) -> bool {
    agent::wait_until(Duration::from_secs(30), || metric_is(agent, line))
}
