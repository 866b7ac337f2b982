//! The rendered Compose model is desired state (issue 12), end to end: the real binary, a real
//! engine, Compose v2 and the broker emulator. A change of `compose.yaml` or `.env` alone is
//! deployed (by the agent, on the file event, without asking the broker), a service added or
//! removed is started or stopped (a removed gated one is undeployed in the broker exactly once),
//! a configuration change that breaks readiness rolls back to the previous configuration, and a
//! container re-created by hand with another configuration is drift.

use std::fs;
use std::time::Duration;

use crate::support::{agent, docker};

use agent::{Agent, Broker, EnvSpec, World, wait_until, write_atomic};
use docker::{docker_ok, require_docker, service_container_ids};

const CONVERGE: Duration = Duration::from_secs(60);

/// The compose file of `spec`'s project: `web` with `GREETING`, on the spec's port.
fn compose(spec: &EnvSpec, greeting: &str, slow_stop: bool, extra_services: &str) -> String {
    let environment = format!("    environment:\n      GREETING: \"{greeting}\"\n");
    agent::web_compose(spec.port, slow_stop, &environment, extra_services)
}

/// `KEY=value` lines of the environment of `service`'s running container.
fn container_env(project: &str, service: &str) -> Vec<String> {
    let Some(id) = service_container_ids(project, service, true)
        .into_iter()
        .next()
    else {
        return Vec::new();
    };
    // The container may be gone between the two calls (a recreate): nothing then.
    let out = docker::docker(&["inspect", "-f", "{{json .Config.Env}}", &id]);
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

fn greeting(project: &str) -> Option<String> {
    container_env(project, "web")
        .into_iter()
        .find_map(|kv| kv.strip_prefix("GREETING=").map(str::to_string))
}

/// An environment variable changed in `compose.yaml` is deployed by the agent on the file event
/// (the resync is an hour away), with no request to the broker; an `.env` change too.
#[test]
fn the_agent_deploys_compose_and_env_file_changes_without_asking_the_broker() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let broker = Broker::start();
    let (spec, _guard) = world.env("cfg-agent", Some(&broker));
    broker.seed_deployable(&spec.pacticipant, "1");
    spec.write_compose(&compose(&spec, "${GREETING:-one}", false, ""));
    spec.write(&world.desired);
    let agent = Agent::start(&world, &["--resync", "1h"]);
    agent.wait_phase("cfg-agent", "Ready", CONVERGE);
    assert_eq!(greeting(&spec.project).as_deref(), Some("one"));
    let requests = broker.emu().requests().len();

    // `.env` feeds the interpolation: a change of it alone is a change.
    fs::write(spec.compose_dir.join(".env"), "GREETING=two\n").expect(".env");
    assert!(
        wait_until(Duration::from_secs(30), || greeting(&spec.project)
            .as_deref()
            == Some("two")),
        "the .env change was not applied; log:\n{}",
        agent::tail(&agent.log_text(), 40)
    );
    agent.wait_phase("cfg-agent", "Ready", CONVERGE);

    spec.write_compose(&compose(&spec, "three", false, ""));
    let written = std::time::Instant::now();
    assert!(
        wait_until(Duration::from_secs(30), || greeting(&spec.project)
            .as_deref()
            == Some("three")),
        "the compose.yaml change was not applied; log:\n{}",
        agent::tail(&agent.log_text(), 40)
    );
    // A figure for the record, not an assertion: file write to the new container running.
    eprintln!(
        "compose.yaml write -> new environment running: {:?}",
        written.elapsed()
    );
    let status = agent.wait_phase("cfg-agent", "Ready", CONVERGE);
    let last = status["history"].as_array().and_then(|h| {
        h.iter()
            .rev()
            .find(|e| e["action"] == "deploy")
            .map(|e| e["reason"].to_string())
    });
    assert!(
        last.as_deref()
            .is_some_and(|r| r.contains("web: environment")),
        "the plan names the field: {last:?}"
    );
    assert_eq!(spec.served_version().as_deref(), Some("1"));
    assert_eq!(
        broker.emu().requests().len(),
        requests,
        "a configuration change asks nothing of the broker and records nothing"
    );

    // A compose.yaml that does not render: Invalid, naming the file; what runs is untouched;
    // the next good commit is deployed.
    spec.write_compose("services:\n  web: [not, a, mapping\n");
    let invalid = agent.wait_phase("cfg-agent", "Invalid", CONVERGE);
    let message = invalid["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("do not render") && message.contains("compose.yaml"),
        "{invalid}"
    );
    assert_eq!(greeting(&spec.project).as_deref(), Some("three"));
    assert_eq!(spec.served_version().as_deref(), Some("1"));
    spec.write_compose(&compose(&spec, "four", false, ""));
    assert!(
        wait_until(Duration::from_secs(30), || greeting(&spec.project)
            .as_deref()
            == Some("four")),
        "the fixed compose.yaml was not applied; log:\n{}",
        agent::tail(&agent.log_text(), 40)
    );
    agent.wait_phase("cfg-agent", "Ready", CONVERGE);
}

/// `c2quay deploy` starts a service added to compose.yaml, applies a port change, and stops a
/// removed gated service, recording its undeployment once.
#[test]
fn added_removed_and_re_ported_services_are_applied_and_undeployed_once() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let broker = Broker::start();
    let (mut spec, _guard) = world.env("cfg-cli", Some(&broker));
    broker.seed_deployable(&spec.pacticipant, "1");
    broker.seed_deployable("cfg-cli-worker", "1");
    let worker = "  worker:\n    image: c2quay-test/web:1\n    pull_policy: never\n    init: true\n    stop_grace_period: 2s\n";
    spec.write_compose(&compose(&spec, "one", false, worker));
    spec.extra_yaml = String::new();
    let with_worker = spec.yaml().replace(
        "  smoke:\n",
        "    worker:\n      pacticipant: cfg-cli-worker\n      version: \"1\"\n      image: c2quay-test/web:1\n  smoke:\n",
    );
    write_atomic(&world.desired.join("cfg-cli.yaml"), &with_worker);
    let deploy = |what: &str| {
        let (code, out) = world.deploy("cfg-cli");
        assert_eq!(code, 0, "{what}: {out}");
        out
    };
    deploy("first deploy");
    assert_eq!(
        service_container_ids(&spec.project, "worker", false).len(),
        1
    );
    assert_eq!(broker.current("cfg-cli-worker"), ["1"]);

    // A port change alone: re-created on the new port, no record.
    let records = broker.record_requests();
    let old_port = spec.port;
    spec.port = docker::free_port();
    spec.write_compose(&compose(&spec, "one", false, worker));
    let manifest_text = with_worker.replace(
        &format!("127.0.0.1:{old_port}/"),
        &format!("127.0.0.1:{}/", spec.port),
    );
    write_atomic(&world.desired.join("cfg-cli.yaml"), &manifest_text);
    let out = deploy("port change");
    assert!(out.contains("web config (ports)"), "{out}");
    assert_eq!(spec.served_version().as_deref(), Some("1"));
    assert_eq!(
        broker.record_requests(),
        records,
        "no record for a port change"
    );

    // The worker leaves compose.yaml and the manifest: stopped, removed, undeployed once.
    spec.write_compose(&compose(&spec, "one", false, ""));
    let without_worker = spec.yaml();
    write_atomic(&world.desired.join("cfg-cli.yaml"), &without_worker);
    let out = deploy("removal");
    assert!(out.contains("remove worker"), "{out}");
    assert!(
        service_container_ids(&spec.project, "worker", false).is_empty(),
        "the removed service's container is gone"
    );
    assert!(
        wait_until(Duration::from_secs(10), || broker
            .current("cfg-cli-worker")
            .is_empty()),
        "the broker still calls the worker deployed: {:?}",
        broker.records("cfg-cli-worker")
    );
    let out = deploy("again");
    assert!(out.contains("up to date"), "{out}");
    let undeploys = broker
        .emu()
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .count();
    assert_eq!(undeploys, 1, "the undeployment is recorded exactly once");
    assert_eq!(
        broker.current(&spec.pacticipant),
        ["1"],
        "web stays deployed"
    );
}

/// A configuration change whose container never gets healthy rolls back to the previous
/// configuration (not only the previous image), for a polite image and for one whose PID 1
/// ignores SIGTERM.
#[test]
fn a_config_change_that_breaks_readiness_rolls_back_to_the_previous_config() {
    if !require_docker() {
        return;
    }
    for slow_stop in [false, true] {
        let world = World::new();
        let (spec, _guard) = world.env(&format!("cfg-rb-{slow_stop}"), None);
        spec.write_compose(&compose(&spec, "one", slow_stop, ""));
        // A healthcheck that never passes is waited for until waitTimeout (it may recover).
        let manifest = spec.yaml().replace("waitTimeout: 20s", "waitTimeout: 6s");
        write_atomic(
            &world.desired.join(format!("{}.yaml", spec.name)),
            &manifest,
        );
        let state = world.state.to_str().unwrap();
        let (code, out) = world.deploy(&spec.name);
        assert_eq!(code, 0, "{out}");

        // The new config: another greeting and a healthcheck that always fails.
        let broken = compose(&spec, "two", slow_stop, "").replace(
            "    ports:\n",
            "    healthcheck:\n      test: [\"CMD\", \"false\"]\n      interval: 1s\n      retries: 1\n    ports:\n",
        );
        spec.write_compose(&broken);
        let (code, out) = world.deploy(&spec.name);
        assert_ne!(code, 0, "the broken config must fail: {out}");
        assert!(out.contains("rolled back"), "slow_stop={slow_stop}: {out}");
        assert_eq!(
            greeting(&spec.project).as_deref(),
            Some("one"),
            "slow_stop={slow_stop}: the previous configuration runs again"
        );
        assert_eq!(spec.served_version().as_deref(), Some("1"));
        let (_, status, _) = world.c2quay(&["status", &spec.name, "--state-dir", state]);
        assert!(status.contains("RolledBack"), "{status}");
    }
}

/// `docker compose up` by hand with another environment is drift: reported as `Drifted`
/// without self-heal, re-applied with it.
#[test]
fn a_hand_made_compose_up_with_another_config_is_drift() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let (mut spec, _guard) = world.env("cfg-drift", None);
    spec.write_compose(&compose(&spec, "one", false, ""));
    spec.write(&world.desired);
    let agent = Agent::start(&world, &[]);
    agent.wait_phase("cfg-drift", "Ready", CONVERGE);

    let by_hand = |greeting: &str| {
        let file = spec.compose_dir.join("by-hand.yaml");
        fs::write(&file, compose(&spec, greeting, false, "")).expect("by-hand file");
        docker_ok(&[
            "compose",
            "-p",
            &spec.project,
            "-f",
            file.to_str().unwrap(),
            "up",
            "-d",
            "--wait",
        ]);
    };
    by_hand("by-hand");
    let status = agent.wait_phase("cfg-drift", "Drifted", CONVERGE);
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("web") && m.contains("another configuration")),
        "{status}"
    );
    assert_eq!(greeting(&spec.project).as_deref(), Some("by-hand"));
    drop(agent);

    spec.self_heal = true;
    spec.write(&world.desired);
    let agent = Agent::start(&world, &[]);
    assert!(
        wait_until(CONVERGE, || greeting(&spec.project).as_deref()
            == Some("one")),
        "not healed; log:\n{}",
        agent::tail(&agent.log_text(), 40)
    );
    agent.wait_phase("cfg-drift", "Ready", CONVERGE);
}

/// `c2quay plan` shows the rendered per-service diff (an environment key, a port), masks the
/// values of credential-looking keys, and changes nothing.
#[test]
fn plan_shows_the_rendered_diff_with_credentials_masked() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let (spec, _guard) = world.env("cfg-plan", None);
    let with_password = |greeting: &str, password: &str| {
        compose(&spec, greeting, false, "").replace(
            "    environment:\n",
            &format!("    environment:\n      DB_PASSWORD: \"{password}\"\n"),
        )
    };
    spec.write_compose(&with_password("one", "first-secret-value"));
    spec.write(&world.desired);
    let desired = world.desired.to_str().unwrap();
    let state = world.state.to_str().unwrap();
    let (code, out) = world.deploy("cfg-plan");
    assert_eq!(code, 0, "{out}");

    spec.write_compose(&with_password("two", "second-secret-value"));
    let plan = |format: &str| {
        let (code, out, err) = world.c2quay(&[
            "plan",
            "cfg-plan",
            "--desired",
            desired,
            "--state-dir",
            state,
            "-o",
            format,
        ]);
        assert_eq!(code, 0, "{out}\n{err}");
        assert!(
            !out.contains("secret-value") && !err.contains("secret-value"),
            "a credential leaked: {out}\n{err}"
        );
        out
    };
    let json: serde_json::Value = serde_json::from_str(&plan("json")).expect("plan JSON");
    let row = &json[0];
    assert_eq!(row["action"], "deploy", "{row}");
    let diff = row["diff"]["web"].as_array().expect("a diff of web");
    let field = |name: &str| diff.iter().find(|d| d["field"] == name).cloned();
    let changed = field("environment.GREETING").expect("GREETING in the diff");
    assert_eq!(
        (changed["from"].as_str(), changed["to"].as_str()),
        (Some("one"), Some("two"))
    );
    let password = field("environment.DB_PASSWORD").expect("DB_PASSWORD in the diff");
    assert_eq!(password["to"], "***", "{password}");
    let text = plan("text");
    assert!(text.contains("environment.GREETING: one -> two"), "{text}");
    assert_eq!(
        greeting(&spec.project).as_deref(),
        Some("one"),
        "plan changes nothing"
    );
}
