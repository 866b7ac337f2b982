//! Issue 21 item 1: `policy.sync: manual`. A manual environment is observed, planned and
//! gate-checked read-only by the agent, shows `OutOfSync` with the plan and the broker's answer,
//! and is applied only by `c2quay deploy ENV` (or the trigger endpoint: `trigger_e2e.rs`).

use crate::support::{agent, docker};

use std::time::Duration;

use agent::{Agent, Broker, World, condition};
use docker::require_docker;

const CONVERGE: Duration = Duration::from_secs(60);

fn out_of_sync_saying(status: &serde_json::Value, said: &str) -> bool {
    status["phase"] == "OutOfSync" && status["message"].as_str().is_some_and(|m| m.contains(said))
}

#[test]
fn a_manual_environment_stays_out_of_sync_with_the_plan_and_the_brokers_answer_until_deploy() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let broker = Broker::start();
    let (mut spec, _guard) = world.env("manual", Some(&broker));
    spec.sync = Some("manual".into());
    spec.gate_retry = Some(("1s".into(), "2s".into()));
    broker.seed_deployable(&spec.pacticipant, "1");
    broker.seed_unverified(&spec.pacticipant, "2");
    spec.write(&world.desired);
    // The first release of a manual environment is applied by a person too.
    let (code, out) = world.deploy("manual");
    assert_eq!(code, 0, "{out}");
    let agent = Agent::start(&world, &[]);
    agent.wait_status("manual", CONVERGE, "Ready at 1", |s| {
        s["phase"] == "Ready" && s["releases"]["web"]["version"] == "1"
    });

    // v2 is committed: planned and asked about, not applied. The broker has no verification.
    spec.version = "2".into();
    spec.write(&world.desired);
    let status = agent.wait_status("manual", CONVERGE, "OutOfSync, not deployable", |s| {
        out_of_sync_saying(s, "not deployable")
    });
    let message = status["message"].as_str().unwrap_or_default();
    for said in [
        "policy.sync is manual",
        "web 1 -> 2",
        "c2quay deploy manual",
    ] {
        assert!(message.contains(said), "{said}: {message}");
    }
    let gated = condition(&status, "Gated").expect("Gated");
    assert_eq!(gated.0, "False", "{gated:?}");
    assert_eq!(spec.served_version().as_deref(), Some("1"));

    // The verification arrives: the next read-only check (gate backoff 1s, 2s) says so.
    broker.verify(&spec.pacticipant, "2");
    let status = agent.wait_status("manual", CONVERGE, "OutOfSync, deployable", |s| {
        out_of_sync_saying(s, "says deployable")
    });
    assert_eq!(
        condition(&status, "Gated").map(|c| c.0).as_deref(),
        Some("True")
    );
    let (_, metrics) = agent.get("/metrics").expect("/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("c2quay_environment_phase{")
                && l.contains("environment=\"manual\"")
                && l.contains("phase=\"OutOfSync\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
    // Deployable, and still not applied: resyncs (every 2 s) and gate checks change nothing.
    std::thread::sleep(Duration::from_secs(5));
    let status = agent.status("manual").expect("status");
    assert_eq!(status["phase"], "OutOfSync", "{status}");
    assert_eq!(spec.served_version().as_deref(), Some("1"));
    assert_eq!(
        spec.web_containers(),
        [("c2quay-test/web:1".to_string(), "running".to_string())]
    );
    assert_eq!(broker.current(&spec.pacticipant), ["1"]);

    // A person says go.
    let (code, out) = world.deploy("manual");
    assert_eq!(code, 0, "{out}");
    agent.wait_status("manual", CONVERGE, "Ready at 2", |s| {
        s["phase"] == "Ready" && s["releases"]["web"]["version"] == "2"
    });
    assert_eq!(spec.served_version().as_deref(), Some("2"));
    assert_eq!(broker.current(&spec.pacticipant), ["2"]);
}

#[test]
fn drift_of_a_manual_environment_is_healed_while_its_change_waits() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let (mut spec, _guard) = world.env("manheal", None);
    spec.sync = Some("manual".into());
    spec.self_heal = true;
    spec.write(&world.desired);
    let (code, out) = world.deploy("manheal");
    assert_eq!(code, 0, "{out}");
    let agent = Agent::start(&world, &[]);
    agent.wait_phase("manheal", "Ready", CONVERGE);
    spec.version = "2".into();
    spec.write(&world.desired);
    agent.wait_status("manheal", CONVERGE, "OutOfSync", |s| {
        s["phase"] == "OutOfSync"
    });

    // The applied release's container is stopped: healed from the applied release (web 1),
    // and the held change still waits.
    let ids = docker::service_container_ids(&spec.project, "web", true);
    assert_eq!(ids.len(), 1, "{ids:?}");
    docker::docker_ok(&["stop", "-t", "1", &ids[0]]);
    assert!(
        agent::wait_until(CONVERGE, || {
            let healed =
                spec.web_containers() == [("c2quay-test/web:1".to_string(), "running".to_string())];
            healed && spec.served_version().as_deref() == Some("1")
        }),
        "not healed to web 1: {:?}\n{}",
        spec.web_containers(),
        agent::tail(&agent.log_text(), 40)
    );
    // Healed (not a new release), then out of sync again: the change still waits.
    let status = agent.wait_status("manheal", CONVERGE, "healed, OutOfSync again", |s| {
        s["phase"] == "OutOfSync" && s["heals"].as_array().is_some_and(|h| !h.is_empty())
    });
    let history = status["history"].as_array().cloned().unwrap_or_default();
    assert!(
        history
            .iter()
            .any(|e| e["action"] == "heal" && e["result"] == "healed"),
        "{history:?}\n{}",
        agent::tail(&agent.log_text(), 40)
    );
    assert_eq!(spec.served_version().as_deref(), Some("1"));
}
