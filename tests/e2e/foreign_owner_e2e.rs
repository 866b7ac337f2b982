//! End to end (issue 19 item 3, first half): `sudo c2quay deploy` on a state directory another
//! user owns (the agent's, under systemd) refuses before it changes anything, naming the owner
//! and how to run it instead; reading (`c2quay status`) still works.

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
