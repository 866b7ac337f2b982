//! Issue 15, the GitOps loop end to end: a commit pushed to a local bare repository is synced
//! by the agent (`--git-sync`), deployed on the real engine, and `c2quay status ENV -o json`
//! names the commit as the applied revision; the deploy's audit lines carry it too.

use std::time::Duration;

use crate::support::agent::{Agent, World, wait_until};
use crate::support::docker::require_docker;
use crate::support::git::{Remote, commit_all, git};

const CONVERGE: Duration = Duration::from_secs(60);

/// `c2quay status NAME -o json` of `world` (the agent may be running).
fn status_json(world: &World, name: &str) -> serde_json::Value {
    let state = world.state.to_str().expect("utf-8 path");
    let (code, stdout, stderr) =
        world.c2quay(&["status", name, "-o", "json", "--state-dir", state]);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).expect("status JSON")
}

#[test]
fn a_pushed_commit_is_synced_deployed_and_named_as_the_applied_revision() {
    if !require_docker() {
        return;
    }
    let remote = Remote::new();
    let world = World::new();
    // The host's desired directory is a clone of the repository; CI commits in another.
    std::fs::remove_dir_all(&world.desired).expect("rm desired");
    remote.clone_into(&world.desired);
    let ci = remote.clone_to("ci");
    let (mut spec, _guard) = world.env("gitops", None);
    spec.write(&ci);
    let first = commit_all(&ci, "gitops: web 1");
    git(&ci, &["push", "--quiet", "origin", "main"]);

    let agent = Agent::start(&world, &["--git-sync", "1s"]);
    let applied = |sha: &str| format!("main@sha1:{sha}");
    agent.wait_status("gitops", CONVERGE, "Ready at the first commit", |s| {
        s["phase"] == "Ready" && s["appliedRevision"] == applied(&first).as_str()
    });
    assert_eq!(spec.served_version().as_deref(), Some("1"));

    // The next commit: synced, deployed, and named.
    spec.version = "2".into();
    spec.write(&ci);
    let second = commit_all(&ci, "gitops: web 2");
    git(&ci, &["push", "--quiet", "origin", "main"]);
    agent.wait_status("gitops", CONVERGE, "Ready at the second commit", |s| {
        s["phase"] == "Ready"
            && s["releases"]["web"]["version"] == "2"
            && s["appliedRevision"] == applied(&second).as_str()
    });
    assert_eq!(spec.served_version().as_deref(), Some("2"));
    assert_eq!(git(&world.desired, &["rev-parse", "HEAD"]), second);

    let status = status_json(&world, "gitops");
    assert_eq!(
        status["appliedRevision"],
        applied(&second).as_str(),
        "{status}"
    );
    assert_eq!(
        status["observedRevision"],
        applied(&second).as_str(),
        "{status}"
    );
    let (_, list) = agent.get("/api/v1/environments").expect("list");
    assert!(list.contains(&applied(&second)), "{list}");
    let deployed = world.audit("gitops").into_iter().any(|line| {
        line["step"] == "result"
            && line["outcome"] == "deployed"
            && line["revision"] == applied(&second).as_str()
    });
    assert!(
        deployed,
        "no deployed audit line names {second}: {:?}",
        world.audit("gitops")
    );

    // The sync's own metrics.
    let synced = wait_until(Duration::from_secs(10), || {
        agent.get("/metrics").is_ok_and(|(_, text)| {
            text.contains("c2quay_git_sync_total{result=\"fast_forwarded\"} 2")
                && !text.contains("c2quay_git_sync_last_success_timestamp_seconds 0\n")
                && text.contains("c2quay_desired_revision_timestamp_seconds ")
        })
    });
    assert!(synced, "{:?}", agent.get("/metrics").map(|(_, t)| t));
}
