//! Issue 19, item 6, through the real binary and a real engine: the status of a rolled-back
//! generation keeps holding it across the state file's schema generations.
//!
//! One environment is deployed at 1, then at a release whose smoke fails (rolled back to 1).
//! Then `c2quay agent --once` runs over the status file in three forms, and each time the known-bad
//! generation stays held, nothing is deployed (the same container keeps running 1, one failed
//! smoke in the audit log):
//! - written by an older c2quay (no `schemaVersion`): read as version 1, not moved aside;
//! - unreadable (truncated): moved aside and rebuilt, the failed generation taken from the
//!   audit log;
//! - written by a newer c2quay (`schemaVersion` one above this binary's): refused naming the file and both versions,
//!   the file byte for byte as it was.
//!
//! After `c2quay retry`, a status rebuilt from the audit log lets the generation be tried again.

use std::path::Path;

use serde_json::Value;

use crate::support::agent::{EnvSpec, World};
use crate::support::docker::{project_container_ids, require_docker};

fn agent_once(world: &World) -> (i32, String) {
    let (code, out, err) = world.c2quay(&[
        "agent",
        "--once",
        "--no-http",
        "--desired",
        world.desired.to_str().expect("utf-8 path"),
        "--state-dir",
        world.state.to_str().expect("utf-8 path"),
    ]);
    (code, format!("{out}\n{err}"))
}

fn status(world: &World, name: &str) -> Value {
    let path = world.env_state(name).join("status.json");
    let text = std::fs::read_to_string(&path).expect("status.json");
    serde_json::from_str(&text).expect("status.json parses")
}

fn write_status(world: &World, name: &str, text: &str) {
    std::fs::write(world.env_state(name).join("status.json"), text).expect("write status.json");
}

fn set_aside_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("env dir")
        .filter_map(Result::ok)
        .filter(|e| (e.file_name().to_string_lossy()).starts_with("status.json.corrupt-"))
        .count()
}

fn failed_smokes(world: &World, name: &str) -> usize {
    (world.audit(name).iter())
        .filter(|e| e["step"] == "smoke" && e["outcome"] == "failed")
        .count()
}

/// Asserts the known-bad generation is still held and nothing was deployed since.
fn assert_held(world: &World, spec: &EnvSpec, failed: &Value, containers: &[String], when: &str) {
    let s = status(world, &spec.name);
    assert_eq!(
        s["failedGeneration"], *failed,
        "{when}: the failed generation was forgotten: {s}"
    );
    assert_eq!(s["phase"], "RolledBack", "{when}: {s}");
    assert_eq!(
        s["schemaVersion"],
        c2quay::state::SCHEMA_VERSION,
        "{when}: written as the current schema: {s}"
    );
    assert_eq!(
        project_container_ids(&spec.project),
        containers,
        "{when}: the good container was replaced"
    );
    assert_eq!(
        failed_smokes(world, &spec.name),
        1,
        "{when}: the known-bad release was deployed again"
    );
    assert_eq!(spec.served_version().as_deref(), Some("1"), "{when}");
}

#[test]
fn a_failed_generation_stays_held_across_old_unreadable_and_newer_status_files() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let (mut spec, _guard) = world.env("held", None);
    spec.write(&world.desired);
    let (code, out) = agent_once(&world);
    assert_eq!(code, 0, "first deploy: {out}");
    assert_eq!(spec.served_version().as_deref(), Some("1"));

    spec.version = "2".into();
    spec.image = Some("c2quay-test/web:smokefail".into());
    let smokefail = spec.yaml().replace(
        "status: 200\n",
        "status: 200\n        bodyContains: version\n",
    );
    crate::support::agent::write_atomic(&world.desired.join("held.yaml"), &smokefail);
    let (_, out) = agent_once(&world);
    let rolled = status(&world, "held");
    assert_eq!(rolled["phase"], "RolledBack", "{out}\n{rolled}");
    let failed = rolled["failedGeneration"].clone();
    assert!(failed.is_string(), "{rolled}");
    let containers = project_container_ids(&spec.project);
    assert_eq!(failed_smokes(&world, "held"), 1);
    let env_dir = world.env_state("held");

    // Written by an older c2quay: no schemaVersion.
    let mut old = rolled.clone();
    old.as_object_mut().expect("object").remove("schemaVersion");
    write_status(
        &world,
        "held",
        &serde_json::to_string_pretty(&old).expect("json"),
    );
    let (_, out) = agent_once(&world);
    assert_eq!(
        set_aside_count(&env_dir),
        0,
        "an older status was moved aside: {out}"
    );
    assert_held(&world, &spec, &failed, &containers, "older status");

    // Unreadable: moved aside, rebuilt, the failed generation recovered from the audit log.
    write_status(&world, "held", "{\"name\": \"held\", \"pha");
    let (_, out) = agent_once(&world);
    assert_eq!(
        set_aside_count(&env_dir),
        1,
        "the unreadable status was not moved aside: {out}"
    );
    assert_held(&world, &spec, &failed, &containers, "unreadable status");

    // Written by a newer c2quay: refused, untouched.
    let mut newer = status(&world, "held");
    let future = c2quay::state::SCHEMA_VERSION + 1;
    newer["schemaVersion"] = future.into();
    newer["fieldOfTheFuture"] = true.into();
    let text = serde_json::to_string_pretty(&newer).expect("json");
    write_status(&world, "held", &text);
    let (code, out) = agent_once(&world);
    assert_ne!(code, 0, "{out}");
    let (named, supported) = (
        format!("schemaVersion {future}"),
        format!("supports {}", c2quay::state::SCHEMA_VERSION),
    );
    for part in ["held/status.json", named.as_str(), supported.as_str()] {
        assert!(
            out.contains(part),
            "the refusal does not say {part:?}: {out}"
        );
    }
    let after = std::fs::read_to_string(env_dir.join("status.json")).expect("status.json");
    assert_eq!(after, text, "a newer status was overwritten");
    assert_eq!(
        set_aside_count(&env_dir),
        1,
        "a newer status was moved aside"
    );
    assert_eq!(project_container_ids(&spec.project), containers);
    assert_eq!(failed_smokes(&world, "held"), 1);

    // `c2quay retry` forgets the failed generation in the audit log too: rebuilt after that,
    // the status lets the generation be tried again (it fails and rolls back once more).
    let current = status_text_without_future(&newer);
    write_status(&world, "held", &current);
    let state = world.state.to_str().expect("utf-8 path");
    let (code, out, err) = world.c2quay(&["retry", "held", "--state-dir", state]);
    assert_eq!(code, 0, "retry: {out}{err}");
    write_status(&world, "held", "{\"name\": \"held\", \"pha");
    let (_, out) = agent_once(&world);
    assert_eq!(set_aside_count(&env_dir), 2, "{out}");
    assert_eq!(
        failed_smokes(&world, "held"),
        2,
        "the retried generation was not tried: {out}"
    );
    assert_eq!(status(&world, "held")["phase"], "RolledBack");
    assert_eq!(spec.served_version().as_deref(), Some("1"));
}

/// The newer status back as this c2quay writes it.
fn status_text_without_future(newer: &Value) -> String {
    let mut current = newer.clone();
    current["schemaVersion"] = c2quay::state::SCHEMA_VERSION.into();
    current
        .as_object_mut()
        .expect("object")
        .remove("fieldOfTheFuture");
    serde_json::to_string_pretty(&current).expect("json")
}
