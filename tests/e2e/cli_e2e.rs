//! End to end (issue 14 item 7): the read-only commands that fit the ecosystem, through the
//! real binary on a real deploy: `status ENV -o json` is one object, `history ENV` merges the
//! reconciles and the audit log, `wait ENV --for PHASE` exits 0 once it is reached and 1 on
//! timeout naming the phase it saw, `completion bash` prints a completion script, and the
//! status table has an AGE column.

use crate::support::{self, agent};

use agent::World;
use support::docker::require_docker;

#[test]
fn status_history_wait_and_completion_answer_like_kubectl() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let (mut spec, _guard) = world.env("cli", None);
    spec.write(&world.desired);
    let (code, text) = world.deploy("cli");
    assert_eq!(code, 0, "{text}");
    spec.version = "2".into();
    spec.write(&world.desired);
    let (code, text) = world.deploy("cli");
    assert_eq!(code, 0, "{text}");
    let state = world.state.to_str().expect("utf-8");

    let (code, out, err) = world.c2quay(&["status", "cli", "--state-dir", state, "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(status.is_object(), "one environment is an object: {out}");
    assert_eq!(status["phase"], "Ready", "{status}");

    let (code, out, _) = world.c2quay(&["status", "--state-dir", state]);
    assert_eq!(code, 0);
    let header = out.lines().next().unwrap_or("");
    assert!(
        header.starts_with("ENVIRONMENT") && header.contains(" AGE "),
        "{out}"
    );

    let (code, out, err) = world.c2quay(&["history", "cli", "--state-dir", state, "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let entries: Vec<serde_json::Value> = serde_json::from_str(&out).expect("history json");
    let sources: std::collections::BTreeSet<&str> = entries
        .iter()
        .filter_map(|e| e["source"].as_str())
        .collect();
    assert_eq!(sources, ["audit", "reconcile"].into(), "{out}");
    let deploys = (entries.iter())
        .filter(|e| e["source"] == "reconcile" && e["result"] == "deployed")
        .count();
    assert_eq!(deploys, 2, "{out}");
    let times: Vec<&str> = entries.iter().filter_map(|e| e["at"].as_str()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "oldest first");

    let (code, out, _) = world.c2quay(&[
        "wait",
        "cli",
        "--for",
        "Ready",
        "--timeout",
        "5s",
        "--state-dir",
        state,
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, _, err) = world.c2quay(&[
        "wait",
        "cli",
        "--for",
        "RolledBack",
        "--timeout",
        "1s",
        "--state-dir",
        state,
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("not RolledBack after 1s; last: Ready"),
        "{err}"
    );
    let (code, _, err) = world.c2quay(&["wait", "cli", "--for", "Sideways", "--state-dir", state]);
    assert_eq!(code, 2, "a usage error");
    assert!(err.contains("not a phase"), "{err}");

    let (code, out, _) = world.c2quay(&["completion", "bash"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("_c2quay()") && out.contains("history"),
        "a bash completion script"
    );
}
