//! End to end (issue 20 item 4): the daemon's address pools used up is the host's fault, not the
//! release's. The test fills the pools with networks of its own until the daemon refuses one,
//! then a first deploy fails at `up`: the environment is `HostBlocked` naming the cause and the
//! fix, the generation is not failed, `c2quay doctor` says the pools are full, and once one
//! network is freed the agent deploys the same generation by itself.
//!
//! Filling the pools makes every other project's first `up` on the host fail too, so the test is
//! `#[ignore]`d in the parallel run and `scripts/test.sh` runs it alone, holding the Docker lock
//! of `docker_faults` exclusively.

use std::time::{Duration, Instant};

use crate::docker_faults::{
    CONVERGE, figure, gated_env, lock_docker, ready_at, write_compose, write_manifest,
};
use crate::support::{agent, docker};

use agent::{Agent, Broker, World};
use docker::{docker, require_docker};

/// At most this many networks are created to fill the pools (a default 20.10 holds 31).
const MAX_NETWORKS: usize = 300;

/// Networks created by the test; removed on drop.
struct Filler {
    names: Vec<String>,
    /// The daemon's answer to the one network too many.
    refusal: String,
}

impl Filler {
    /// Creates networks until the daemon refuses one (bounded by [`MAX_NETWORKS`]).
    fn fill() -> Filler {
        let mut filler = Filler {
            names: Vec::new(),
            refusal: String::new(),
        };
        for n in 0..MAX_NETWORKS {
            let name = format!("c2qpool-{}-{n}", std::process::id());
            let out = docker(&["network", "create", &name]);
            if !out.status.success() {
                filler.refusal = String::from_utf8_lossy(&out.stderr).trim().to_string();
                break;
            }
            filler.names.push(name);
        }
        filler
    }

    /// Removes one of the test's networks: room for one more project.
    fn free_one(&mut self) {
        let name = self.names.pop().expect("a network to free");
        assert!(docker(&["network", "rm", &name]).status.success());
    }
}

impl Drop for Filler {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = docker(&["network", "rm", name]);
        }
    }
}

#[test]
#[ignore = "uses up the daemon's address pools: run alone (scripts/test.sh does, after the parallel run)"]
fn used_up_address_pools_block_on_the_host_and_the_release_deploys_once_a_network_is_freed() {
    if !require_docker() {
        return;
    }
    let _lock = lock_docker(true);
    let world = World::new();
    let broker = Broker::start();
    let (spec, _guard) = gated_env(&world, &broker, "pools", true);
    write_compose(&spec, "", "");
    write_manifest(&world, &spec, "", "never");
    let mut filler = Filler::fill();
    assert!(
        filler.refusal.contains("non-overlapping IPv4 address pool"),
        "the daemon never refused a network ({} created): {}",
        filler.names.len(),
        filler.refusal
    );
    eprintln!(
        "FIGURE host faults: the pools were full after {} test networks: {}",
        filler.names.len(),
        filler.refusal
    );
    let state = world.state.to_str().expect("utf-8 path");
    let desired = world.desired.to_str().expect("utf-8 path");
    let (code, out, _) = world.c2quay(&["doctor", "--desired", desired, "--state-dir", state]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("FAIL  address pools: 0 of") && out.contains("default-address-pools"),
        "{out}"
    );

    let agent = Agent::start(&world, &[]);
    let started = Instant::now();
    let status = agent.wait_status("pools", CONVERGE, "host blocked", |s| {
        s["phase"] == "HostBlocked"
    });
    let message = status["message"].as_str().unwrap_or_default();
    for part in [
        "address_pools",
        "non-overlapping",
        "default-address-pools",
        "not a failed release",
    ] {
        assert!(message.contains(part), "{part} in {status}");
    }
    assert_eq!(
        status["failedGeneration"],
        serde_json::Value::Null,
        "{status}"
    );
    let (_, metrics) = agent.get("/metrics").expect("/metrics");
    let blocked = "c2quay_host_blocked{cause=\"address_pools\",environment=\"pools\"} 1";
    assert!(
        metrics.lines().any(|l| l == blocked),
        "{blocked} in\n{metrics}"
    );
    figure(
        "address pools used up",
        "HostBlocked (address_pools), not failed",
        started.elapsed(),
    );

    filler.free_one();
    let freed = Instant::now();
    agent.wait_status(
        "pools",
        Duration::from_secs(90),
        "deployed once a network is free",
        |s| ready_at(s, "1"),
    );
    assert_eq!(spec.served_version().as_deref(), Some("1"));
    assert_eq!(broker.current(&spec.pacticipant), vec!["1"]);
    figure(
        "one network freed",
        "Ready at 1 with no new commit",
        freed.elapsed(),
    );
}
