//! End to end (issue 19 item 5): two agents with separate state directories on one desired
//! directory and Compose project. The first claims the project; the second stands back
//! (`Pending`, naming the first) and deploys and records nothing, so a new version is
//! deployed and recorded exactly once.

use crate::support::{self, agent};

use std::time::Duration;

use agent::{Agent, Broker, World};
use support::docker::require_docker;

#[test]
fn a_second_agent_on_a_claimed_project_stands_back_and_records_nothing() {
    if !require_docker() {
        return;
    }
    let claims = tempfile::tempdir().expect("claims dir");
    let claims_arg = claims.path().to_str().expect("utf-8").to_string();
    let broker = Broker::start();
    let world = World::new();
    let (mut spec, _guard) = world.env("claimed", Some(&broker));
    broker.seed_deployable(&spec.pacticipant, "1");
    broker.seed_deployable(&spec.pacticipant, "2");
    spec.write(&world.desired);
    let first = Agent::start(&world, &["--claims-dir", &claims_arg]);
    first.wait_phase("claimed", "Ready", Duration::from_secs(60));

    // The same desired directory, another state directory.
    let other = World {
        root: tempfile::tempdir().expect("tempdir"),
        desired: world.desired.clone(),
        state: world.root.path().join("other-state"),
    };
    let second = Agent::start(&other, &["--claims-dir", &claims_arg]);
    let standing = second.wait_phase("claimed", "Pending", Duration::from_secs(30));
    let message = standing["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("is managed by c2quay agent pid {}", first.pid())),
        "{standing:#}"
    );

    spec.version = "2".into();
    spec.write(&world.desired);
    first.wait_status("claimed", Duration::from_secs(60), "Ready at 2", |s| {
        s["phase"] == "Ready" && s["releases"]["web"]["version"] == "2"
    });
    std::thread::sleep(Duration::from_secs(3)); // a resync of the second agent
    assert_eq!(broker.current(&spec.pacticipant), vec!["2"]);
    assert!(
        broker.duplicate_records(&spec.pacticipant).is_empty(),
        "{:?}",
        broker.records(&spec.pacticipant)
    );
    assert_eq!(
        second.status("claimed").expect("status")["phase"],
        "Pending"
    );
}
