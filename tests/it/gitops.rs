//! Issue 15 items 1 and 2, without Docker: the desired directory as a git checkout. The real
//! binary against local repositories only (`git init --bare`, clone, commit, push; no network):
//! the revision in status, and `c2quay sync` (fast-forward, dirty and diverged refusals, exit
//! codes) and the agent's `--git-sync` metric for a failing sync.

use std::time::Duration;

use serde_json::Value;

use crate::support::agent::{Agent, World, wait_until};
use crate::support::git::{Remote, commit_all, git, path};
use std::path::Path;
use std::process::{Command, Stdio};

/// `c2quay args`: (exit code, stdout, stderr).
fn c2quay(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_c2quay"))
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env_remove("C2QUAY_DESIRED")
        .env_remove("C2QUAY_STATE_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("run c2quay");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_agent_s_status_and_history_carry_the_commit_it_saw() {
    let remote = Remote::new();
    let work = remote.clone_to("work");
    // A manifest that does not validate: the agent reconciles it without Docker.
    std::fs::write(
        work.join("shop.yaml"),
        "apiVersion: c2quay.dev/v1\nkind: Environment\nmetadata:\n  name: shop\nspec: {}\n",
    )
    .expect("manifest");
    let sha = commit_all(&work, "shop, broken");
    let state = remote.root.path().join("state");
    let nowhere = format!("unix://{}", remote.root.path().join("no.sock").display());
    let out = Command::new(env!("CARGO_BIN_EXE_c2quay"))
        .args(["agent", "--once", "--no-http", "--desired", path(&work)])
        .args(["--state-dir", path(&state)])
        .env("DOCKER_HOST", &nowhere)
        .env_remove("C2QUAY_DESIRED")
        .stdin(Stdio::null())
        .output()
        .expect("agent --once");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let (code, stdout, stderr) =
        c2quay(&["status", "shop", "-o", "json", "--state-dir", path(&state)]);
    assert_eq!(code, 0, "{stderr}");
    let status: Value = serde_json::from_str(&stdout).expect("status JSON");
    assert_eq!(status["phase"], "Invalid", "{status}");
    let revision = format!("main@sha1:{sha}");
    assert_eq!(status["observedRevision"], revision.as_str(), "{status}");
    assert!(
        status.get("appliedRevision").is_none(),
        "nothing applied: {status}"
    );
    let last = status["history"].as_array().and_then(|h| h.last()).cloned();
    assert_eq!(
        last.expect("a history entry")["revision"],
        revision.as_str()
    );
    let (_, text, _) = c2quay(&["status", "shop", "--state-dir", path(&state)]);
    assert!(
        text.contains(&format!("observed revision: {revision}")),
        "{text}"
    );
}

/// `c2quay sync --desired DIR`.
fn sync(dir: &Path) -> (i32, String, String) {
    c2quay(&["sync", "--desired", path(dir), "--timeout", "30s"])
}

#[test]
fn sync_fast_forwards_to_the_pushed_commit_and_then_is_up_to_date() {
    let remote = Remote::new();
    let host = remote.clone_to("host");
    let ci = remote.clone_to("ci");
    std::fs::write(ci.join("shop.yaml"), "version: 2\n").expect("manifest");
    let pushed = commit_all(&ci, "shop 2");
    git(&ci, &["push", "--quiet", "origin", "main"]);

    let (code, stdout, stderr) = sync(&host);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("fast-forwarded to main@sha1:{pushed}")),
        "{stdout}"
    );
    assert_eq!(git(&host, &["rev-parse", "HEAD"]), pushed);
    assert_eq!(
        std::fs::read_to_string(host.join("shop.yaml")).unwrap(),
        "version: 2\n"
    );

    let (code, stdout, _) = sync(&host);
    assert_eq!(code, 0);
    assert!(stdout.contains("up to date at main@sha1:"), "{stdout}");
}

#[test]
fn sync_refuses_a_dirty_tree_naming_the_dir_the_branch_and_the_file() {
    let remote = Remote::new();
    let host = remote.clone_to("host");
    let ci = remote.clone_to("ci");
    std::fs::write(ci.join("shop.yaml"), "version: 2\n").expect("manifest");
    commit_all(&ci, "shop 2");
    git(&ci, &["push", "--quiet", "origin", "main"]);
    let before = git(&host, &["rev-parse", "HEAD"]);
    std::fs::write(host.join("README"), "edited on the host\n").expect("edit");

    let (code, stdout, stderr) = sync(&host);
    assert_eq!(code, 10, "{stdout}{stderr}");
    assert!(stderr.contains(path(&host)), "{stderr}");
    assert!(stderr.contains("branch main"), "{stderr}");
    assert!(stderr.contains("README"), "{stderr}");
    assert_eq!(git(&host, &["rev-parse", "HEAD"]), before, "nothing merged");
    assert_eq!(
        std::fs::read_to_string(host.join("README")).unwrap(),
        "edited on the host\n",
        "the local change is kept"
    );
}

#[test]
fn sync_refuses_a_diverged_branch_and_merges_nothing() {
    let remote = Remote::new();
    let host = remote.clone_to("host");
    let ci = remote.clone_to("ci");
    std::fs::write(ci.join("shop.yaml"), "version: 2\n").expect("manifest");
    commit_all(&ci, "shop 2");
    git(&ci, &["push", "--quiet", "origin", "main"]);
    std::fs::write(host.join("local.yaml"), "made on the host\n").expect("local");
    let local = commit_all(&host, "a commit on the host");

    let (code, stdout, stderr) = sync(&host);
    assert_eq!(code, 11, "{stdout}{stderr}");
    assert!(stderr.contains(path(&host)), "{stderr}");
    assert!(
        stderr.contains("branch main") && stderr.contains("origin/main"),
        "{stderr}"
    );
    assert!(stderr.contains("diverged"), "{stderr}");
    assert_eq!(git(&host, &["rev-parse", "HEAD"]), local, "nothing merged");
}

#[test]
fn sync_of_a_directory_outside_git_fails_with_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, stderr) = sync(dir.path());
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not inside a git work tree"), "{stderr}");
}

/// The value of the sample `series` (name and labels as exposed) in a `/metrics` text.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn a_failing_git_sync_of_the_agent_raises_its_metric_and_never_its_last_success() {
    let remote = Remote::new();
    let world = World::new();
    let checkout = world.root.path().join("checkout");
    remote.clone_into(&checkout);
    // The agent's desired directory is the checkout; its upstream is then gone.
    std::fs::remove_dir_all(&world.desired).expect("rm desired");
    std::os::unix::fs::symlink(&checkout, &world.desired).expect("symlink");
    std::fs::remove_dir_all(&remote.bare).expect("rm the bare repository");

    let agent = Agent::start_without_docker(&world, &["--git-sync", "1s"]);
    let failed = r#"c2quay_git_sync_total{result="failed"}"#;
    let mut text = String::new();
    let raised = wait_until(Duration::from_secs(20), || {
        text = agent
            .get("/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default();
        sample(&text, failed).is_some_and(|n| n >= 2.0)
    });
    assert!(
        raised,
        "{failed} did not rise:\n{text}\n{}",
        agent.log_text()
    );
    assert_eq!(
        sample(&text, "c2quay_git_sync_last_success_timestamp_seconds"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"c2quay_git_sync_total{result="up_to_date"}"#),
        Some(0.0)
    );
    assert!(
        agent.log_text().contains("desired checkout sync failed"),
        "{}",
        agent.log_text()
    );
}

#[test]
fn an_agent_that_does_not_sync_exports_no_sync_series() {
    let world = World::new();
    let agent = Agent::start_without_docker(&world, &[]);
    let (_, text) = agent.get("/metrics").expect("metrics");
    assert!(
        !text.contains("c2quay_git_sync_last_success_timestamp_seconds "),
        "{text}"
    );
    assert!(!text.contains("c2quay_git_sync_total{"), "{text}");
}

/// A deploy records its revision as the applied one, and its audit lines carry it; a deploy
/// of a manifest from no checkout clears it (with fakes: no Docker).
#[tokio::test]
async fn a_deploy_records_its_revision_as_applied_and_in_its_audit_lines() {
    use super::pipeline_fakes::{Fixture, V2};
    use c2quay::broker::Verdict;
    use c2quay::pipeline::{DeployOptions, Outcome, deploy};
    let f = Fixture::new(&["web"]);
    f.broker.set_verdict("shop-web", "2", Verdict::Deployable);
    let env = f.web("2", V2);
    let revision = format!("main@sha1:{}", "a".repeat(40));
    let options = DeployOptions {
        revision: Some(revision.clone()),
        ..Default::default()
    };
    let report = deploy(&f.ctx, &env, &options).await.expect("deploy report");
    assert_eq!(report.outcome, Outcome::Deployed, "{report:#?}");
    assert_eq!(
        f.status().applied_revision.as_deref(),
        Some(revision.as_str())
    );
    let audit = f.ctx.state.read_audit(env.name()).expect("audit");
    let result = audit
        .iter()
        .find(|e| e.step == "result")
        .expect("a result line");
    assert_eq!(result.revision.as_deref(), Some(revision.as_str()));
    assert!(
        audit
            .iter()
            .all(|e| e.revision.as_deref() == Some(revision.as_str()))
    );
}

/// The shipped timer runs `c2quay sync --state-dir`: its outcome is kept for the agent, which
/// does not sync itself and still exports the sync series, so the alert fires for a failing
/// timer too (issue 15 item 2).
#[test]
fn a_failing_timer_sync_reaches_the_agents_sync_series_through_the_state_directory() {
    let remote = Remote::new();
    let host = remote.clone_to("host");
    let world = World::new();
    std::fs::create_dir_all(&world.state).expect("state dir");
    let state = path(&world.state);
    let timer_sync = || c2quay(&["sync", "--desired", path(&host), "--state-dir", state]);
    let (code, stdout, stderr) = timer_sync();
    assert_eq!(code, 0, "{stdout}{stderr}");
    std::fs::remove_dir_all(&remote.bare).expect("rm the bare repository");
    let (code, _, _) = timer_sync();
    assert_eq!(code, 1, "the fetch fails");
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(world.state.join("git-sync.json")).expect("the record"),
    )
    .expect("record json");
    assert_eq!(record["result"], "failed", "{record}");
    assert!(
        record["lastSuccessAt"].is_string(),
        "the first sync's: {record}"
    );

    let agent = Agent::start_without_docker(&world, &[]);
    let mut text = String::new();
    let exported = wait_until(Duration::from_secs(10), || {
        text = (agent.get("/metrics"))
            .map(|(_, body)| body)
            .unwrap_or_default();
        sample(&text, r#"c2quay_git_sync_total{result="failed"}"#) == Some(1.0)
    });
    assert!(exported, "{text}\n{}", agent.log_text());
    let last = sample(&text, "c2quay_git_sync_last_success_timestamp_seconds");
    assert!(
        last.is_some_and(|t| t > 1.0e9),
        "the first sync's time: {last:?}"
    );
}
