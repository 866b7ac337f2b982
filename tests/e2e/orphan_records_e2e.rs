//! End to end (issue 19 item 7): a record still pending when its manifest is removed or renamed is
//! never stranded. The agent sends it from the removed environment's saved manifest, or drops
//! it with an audit line when the renamed manifest records the same pacticipant itself.

use crate::support::{self, agent};

use agent::{Broker, World};
use c2quay_broker_emulator::{FaultKind, FaultSpec};
use support::docker::{ComposeProjectGuard, require_docker};

fn status(world: &World, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(world.env_state(name).join("status.json")).expect("status");
    serde_json::from_str(&text).expect("status json")
}

/// `name` deployed at 1 while the broker refuses records: its record waits in the outbox.
fn deployed_with_a_pending_record(
    name: &str,
) -> (World, Broker, agent::EnvSpec, ComposeProjectGuard) {
    let broker = Broker::start();
    let world = World::new();
    let (spec, guard) = world.env(name, Some(&broker));
    broker.seed_deployable(&spec.pacticipant, "1");
    spec.write(&world.desired);
    broker
        .emu()
        .inject_fault(FaultSpec::new(FaultKind::Unavailable, 1000).on_path("/deployed-versions"));
    let (code, text) = world.deploy(name);
    assert_eq!(code, 6, "the record waits: {text}");
    assert_eq!(world.outbox_len(name), 1);
    broker.emu().clear_faults();
    (world, broker, spec, guard)
}

fn agent_once(world: &World) -> (i32, String) {
    let (code, out, err) = world.c2quay(&[
        "agent",
        "--once",
        "--no-http",
        "--desired",
        world.desired.to_str().expect("utf-8"),
        "--state-dir",
        world.state.to_str().expect("utf-8"),
    ]);
    (code, format!("{out}\n{err}"))
}

#[test]
fn a_removed_manifests_pending_record_is_still_sent() {
    if !require_docker() {
        return;
    }
    let (world, broker, spec, _guard) = deployed_with_a_pending_record("gone");
    std::fs::remove_file(world.desired.join("gone.yaml")).expect("remove manifest");

    // The record keeps its retry time (a few seconds of backoff): `--once` tries once per run.
    let mut text = String::new();
    for _ in 0..5 {
        text = agent_once(&world).1;
        if !broker.current(&spec.pacticipant).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }

    assert_eq!(broker.current(&spec.pacticipant), vec!["1"], "{text}");
    assert_eq!(world.outbox_len("gone"), 0);
    let orphaned = status(&world, "gone");
    assert_eq!(orphaned["phase"], "Orphaned", "{orphaned:#}");
    assert_eq!(orphaned["pendingRecords"], 0, "{orphaned:#}");
}

#[test]
fn a_renamed_manifest_records_itself_and_the_old_names_record_is_dropped_once() {
    if !require_docker() {
        return;
    }
    let (world, broker, mut spec, _guard) = deployed_with_a_pending_record("old-name");
    std::fs::remove_file(world.desired.join("old-name.yaml")).expect("remove manifest");
    spec.name = "new-name".into();
    spec.write(&world.desired);

    let (code, text) = agent_once(&world);

    assert_eq!(code, 1, "old-name is Orphaned, so not all Ready: {text}");
    assert_eq!(broker.current(&spec.pacticipant), vec!["1"], "{text}");
    assert!(
        broker.duplicate_records(&spec.pacticipant).is_empty(),
        "{:?}",
        broker.records(&spec.pacticipant)
    );
    assert_eq!(world.outbox_len("old-name"), 0);
    assert_eq!(status(&world, "new-name")["phase"], "Ready");
    // Nothing is pending and new-name owns the project: the old name is forgotten (no
    // `Orphaned` ghost), its audit log kept.
    assert!(!world.env_state("old-name").join("status.json").exists());
    assert!(
        world.audit_has("old-name", 0, "record", "superseded"),
        "{:?}",
        world.audit("old-name")
    );
    assert!(
        world.audit_has("old-name", 0, "orphan", "forgotten"),
        "{:?}",
        world.audit("old-name")
    );
    let (_, listed) = agent_once(&world);
    assert!(!listed.contains("old-name"), "{listed}");
}
