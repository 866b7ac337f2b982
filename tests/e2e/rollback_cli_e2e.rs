//! End to end (issue 13 item 4): `c2quay rollback ENV` holds the environment. It restores the
//! release that ran before, runs readiness and smoke, records the restored version in the
//! broker, and marks the generation so the agent does not deploy it again until `c2quay retry`.
//! Each case runs with `init: true` and with a PID 1 that ignores SIGTERM (10 s stops).

use crate::support::{self, agent};

use agent::{Broker, World};
use support::docker::require_docker;

fn status(world: &World, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(world.env_state(name).join("status.json")).expect("status");
    serde_json::from_str(&text).expect("status json")
}

fn rollback_is_held_recorded_and_released_by_retry(slow_stop: bool) {
    if !require_docker() {
        return;
    }
    let broker = Broker::start();
    let world = World::new();
    let name = if slow_stop { "rb-slow" } else { "rb-init" };
    let (mut spec, _guard) = if slow_stop {
        world.env_slow_stop(name, Some(&broker))
    } else {
        world.env(name, Some(&broker))
    };
    let p = spec.pacticipant.clone();
    broker.seed_deployable(&p, "1");
    broker.seed_deployable(&p, "2");
    for version in ["1", "2"] {
        spec.version = version.into();
        spec.write(&world.desired);
        let (code, text) = world.deploy(name);
        assert_eq!(code, 0, "deploy {version}: {text}");
    }
    assert_eq!(broker.current(&p), vec!["2"]);
    let dirs = [
        "--desired",
        world.desired.to_str().expect("utf-8"),
        "--state-dir",
        world.state.to_str().expect("utf-8"),
    ];

    // The slow variant asks for JSON (issue 14 item 7), the other for the text.
    let output: &[&str] = if slow_stop { &["-o", "json"] } else { &[] };
    let (code, out, err) = world.c2quay(&[&["rollback", name][..], &dirs, output].concat());

    assert_eq!(code, 0, "rollback: {out}\n{err}");
    if slow_stop {
        let done: serde_json::Value = serde_json::from_str(&out).expect("rollback json");
        assert_eq!(done["restored"]["web"], "c2quay-test/web:1", "{done}");
        assert_eq!(done["records"][0]["status"], "recorded", "{done}");
        assert_eq!(done["records"][0]["version"], "1", "{done}");
    } else {
        assert!(out.contains(&format!("record {p} 1: Recorded")), "{out}");
    }
    assert_eq!(spec.served_version().as_deref(), Some("1"));
    assert_eq!(broker.current(&p), vec!["1"], "the broker knows what runs");
    let held = status(&world, name);
    assert_eq!(held["phase"], "RolledBack", "{held:#}");
    assert_eq!(held["releases"]["web"]["version"], "1", "{held:#}");
    assert!(
        held["message"]
            .as_str()
            .unwrap_or_default()
            .contains("rolled back by hand"),
        "{held:#}"
    );

    // The agent holds it: no redeploy of generation 2, no new record.
    let records = broker.records(&p).len();
    let (code, out, err) = world.c2quay(&[&["agent", "--once", "--no-http"][..], &dirs].concat());
    // `--once` exits 1 when an environment is not Ready.
    assert_eq!(code, 1, "agent --once: {out}\n{err}");
    assert!(out.contains("RolledBack"), "{out}");
    assert_eq!(spec.served_version().as_deref(), Some("1"));
    assert_eq!(broker.records(&p).len(), records);
    let after = status(&world, name);
    assert_eq!(after["phase"], "RolledBack", "{after:#}");
    assert!(
        after["message"]
            .as_str()
            .unwrap_or_default()
            .contains("rolled back by hand"),
        "why it is held stays in the message: {after:#}"
    );

    // `retry` releases the hold: the agent deploys and records 2 again.
    let (code, out, err) = world.c2quay(&[
        "retry",
        name,
        "--state-dir",
        world.state.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "retry: {out}\n{err}");
    let (code, out, err) = world.c2quay(&[&["agent", "--once", "--no-http"][..], &dirs].concat());
    assert_eq!(code, 0, "agent --once after retry: {out}\n{err}");
    assert_eq!(spec.served_version().as_deref(), Some("2"));
    assert_eq!(broker.current(&p), vec!["2"]);
    assert_eq!(status(&world, name)["phase"], "Ready");
}

#[test]
fn manual_rollback_is_held_recorded_and_released_by_retry() {
    rollback_is_held_recorded_and_released_by_retry(false);
}

#[test]
fn manual_rollback_of_a_slow_stopping_service_is_held_recorded_and_released_by_retry() {
    rollback_is_held_recorded_and_released_by_retry(true);
}
