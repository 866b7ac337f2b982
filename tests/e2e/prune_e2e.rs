//! End to end (issue 13 item 4): a manifest removed from the desired directory leaves its
//! containers running (`Orphaned`) unless it asked for `policy.prune: onRemove`; then the agent
//! takes the project down (volumes kept) and records the undeployment in the broker.

use crate::support::{self, agent};

use agent::{Broker, World};
use support::docker::{ComposeProjectGuard, require_docker};

fn status(world: &World, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(world.env_state(name).join("status.json")).expect("status");
    serde_json::from_str(&text).expect("status json")
}

/// Deploys `name` at 1 with `prune` (or without), removes its manifest, runs `agent --once`.
fn removed_after_deploy(
    name: &str,
    prune: bool,
) -> (World, Broker, agent::EnvSpec, ComposeProjectGuard) {
    let broker = Broker::start();
    let world = World::new();
    let (mut spec, guard) = world.env(name, Some(&broker));
    broker.seed_deployable(&spec.pacticipant, "1");
    if prune {
        // Appended under `policy:`, the manifest's last section.
        spec.extra_yaml = "    prune: onRemove\n".into();
    }
    spec.write(&world.desired);
    let (code, text) = world.deploy(name);
    assert_eq!(code, 0, "deploy: {text}");
    assert_eq!(broker.current(&spec.pacticipant), vec!["1"]);
    std::fs::remove_file(world.desired.join(format!("{name}.yaml"))).expect("remove manifest");
    let dirs = [
        "--desired",
        world.desired.to_str().expect("utf-8"),
        "--state-dir",
        world.state.to_str().expect("utf-8"),
    ];
    let (code, out, err) = world.c2quay(&[&["agent", "--once", "--no-http"][..], &dirs].concat());
    assert_eq!(
        code, 1,
        "an Orphaned environment is not Ready: {out}\n{err}"
    );
    (world, broker, spec, guard)
}

#[test]
fn a_removed_manifest_with_prune_on_remove_is_taken_down_and_undeployed() {
    if !require_docker() {
        return;
    }
    let (world, broker, spec, _guard) = removed_after_deploy("pruned", true);

    assert_eq!(spec.web_containers(), Vec::<(String, String)>::new());
    assert!(broker.current(&spec.pacticipant).is_empty(), "undeployed");
    let orphaned = status(&world, "pruned");
    assert_eq!(orphaned["phase"], "Orphaned", "{orphaned:#}");
    let message = orphaned["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("taken down (volumes kept), undeployments recorded"),
        "{message}"
    );
    assert!(
        !world
            .env_state("pruned")
            .join("applied-manifest.json")
            .exists()
    );
}

#[test]
fn a_removed_manifest_without_prune_keeps_running_and_deployed() {
    if !require_docker() {
        return;
    }
    let (world, broker, spec, _guard) = removed_after_deploy("kept", false);

    let running: Vec<String> = (spec.web_containers().into_iter())
        .map(|(_, state)| state)
        .collect();
    assert_eq!(running, vec!["running"]);
    assert_eq!(broker.current(&spec.pacticipant), vec!["1"]);
    let orphaned = status(&world, "kept");
    assert_eq!(orphaned["phase"], "Orphaned");
    let hint = format!("docker compose -p {} down", spec.project);
    assert!(
        orphaned["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&hint),
        "the hint names the real project: {orphaned:#}"
    );
}
