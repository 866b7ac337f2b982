//! Issue 21 items 3 and 4 end to end: the real binary, the real engine, the broker emulator and
//! the official `pact broker can-i-deploy`.
//!
//! - A service whose version is its pinned image's digest (`version: { from: digest }`, the
//!   image pushed to the test world's registry on 127.0.0.1:5000 and pinned by the digest it
//!   returned), and one whose version is the desired directory's commit (`version: { from: git,
//!   short: 12 }`), are gated and recorded under those versions; a new digest or a new commit is
//!   a new release, gated again; the official CLI agrees with the gate for each version.
//! - The agent releases each new commit of the desired directory of a `from: git` service, though
//!   no manifest changed (HEAD moved).
//! - A gate-only service (gated and recorded, never given to Compose) in per-service and
//!   all-or-nothing mode, through the three identity forms: written out, digest, git.

use std::time::Duration;

use c2quay_broker_emulator::{EmulatorConfig, RunningEmulator};
use serde_json::Value;

use crate::support::c2quay::{Svc, World, deployed, emulator, pact};
use crate::support::docker::{free_port, http_get, require_docker};
use crate::support::git::{commit_all, git};
use crate::support::pact::pact_cli;
use crate::support::registry::{digest_of, digest_ref, require_registry};

/// The broker environment of [`emulator`].
const BROKER_ENV: &str = "test";

/// Makes `pacticipant` `version` known to the broker with a pact to `<pacticipant>-provider`
/// (version 7, deployed in [`BROKER_ENV`]); verified or not.
fn seed(broker: &RunningEmulator, pacticipant: &str, version: &str, verified: bool) {
    let provider = format!("{pacticipant}-provider");
    let doc = pact(pacticipant, &provider, version);
    broker.seed_pact(pacticipant, version, &provider, &doc);
    if broker
        .currently_deployed(BROKER_ENV)
        .iter()
        .all(|d| d.pacticipant != provider)
    {
        broker.create_version(&provider, "7", Some("main"));
        broker
            .record_deployment(&provider, "7", BROKER_ENV, None)
            .expect("record the provider");
    }
    if verified {
        verify(broker, pacticipant, version);
    }
}

fn verify(broker: &RunningEmulator, pacticipant: &str, version: &str) {
    broker
        .seed_verification(
            &format!("{pacticipant}-provider"),
            "7",
            pacticipant,
            version,
            true,
        )
        .expect("seed the verification");
}

/// The versions of `pacticipant` currently deployed in [`BROKER_ENV`].
fn current(broker: &RunningEmulator, pacticipant: &str) -> Vec<String> {
    deployed(broker)
        .into_iter()
        .filter(|(p, _)| p == pacticipant)
        .map(|(_, v)| v)
        .collect()
}

/// Every record of `pacticipant` in [`BROKER_ENV`], oldest first.
fn history(broker: &RunningEmulator, pacticipant: &str) -> Vec<String> {
    broker
        .deployments(BROKER_ENV)
        .into_iter()
        .filter(|d| d.pacticipant == pacticipant)
        .map(|d| d.version)
        .collect()
}

/// The manifest of `world`: `services` (lines under `services:`), a smoke check of `port`, and
/// `compose.pull` (`always` only for images in the test registry: a real pull, from loopback).
fn write_manifest(
    world: &World,
    pull: &str,
    broker: &str,
    all_or_nothing: bool,
    services: &str,
    port: u16,
) {
    let text = format!(
        "apiVersion: c2quay.dev/v1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  compose:\n    \
         project: {project}\n    directory: {dir}\n    files: [compose.yaml]\n    waitTimeout: 20s\n    \
         pull: {pull}\n  broker:\n    url: {broker}\n    environment: {BROKER_ENV}\n    \
         allOrNothing: {all_or_nothing}\n  services:\n{services}  smoke:\n    - name: web answers\n      \
         http: {{ url: \"http://127.0.0.1:{port}/\", status: 200 }}\n      attempts: 10\n      interval: 300ms\n",
        env = world.env,
        project = world.project,
        dir = world.compose_dir.display(),
    );
    std::fs::write(world.desired.join(format!("{}.yaml", world.env)), text).expect("manifest");
}

/// The `web` service's manifest lines.
fn web(version: &str, image: &str) -> String {
    format!(
        "    web:\n      pacticipant: shop-web\n      version: {version}\n      image: \"{image}\"\n"
    )
}

/// The official CLI's answer for `pacticipant` `version` to [`BROKER_ENV`]: `Some(true)` when
/// it says deployable (its table form exits 0, and its `-o json` form's `summary.deployable` is
/// `true`: both are asked, as in the fidelity tests); `None` when the CLI is not installed
/// (printed; a failure when `CI` or `C2QUAY_REQUIRE_PACT_CLI` is set).
async fn official_can_i_deploy(
    broker: &RunningEmulator,
    pacticipant: &str,
    version: &str,
) -> Option<bool> {
    let bin = pact_cli("the official can-i-deploy comparison")?;
    let run = |json: bool| {
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.args(["broker", "can-i-deploy", "--pacticipant", pacticipant])
            .args(["--version", version, "--to-environment", BROKER_ENV])
            .args(["--broker-base-url", &broker.base_url])
            .env("PACT_DO_NOT_TRACK", "true")
            .env("PACT_BROKER_HTTP_RETRIES", "1")
            .kill_on_drop(true);
        if json {
            cmd.args(["-o", "json"]);
        }
        for var in [
            "PACT_BROKER_BASE_URL",
            "PACT_BROKER_USERNAME",
            "PACT_BROKER_PASSWORD",
            "PACT_BROKER_TOKEN",
        ] {
            cmd.env_remove(var);
        }
        async move {
            tokio::time::timeout(Duration::from_secs(60), cmd.output())
                .await
                .expect("the pact CLI finishes within a minute")
                .expect("the pact CLI runs")
        }
    };
    let table = run(false).await;
    let out = run(true).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Value = serde_json::from_str::<Value>(&stdout)
        .unwrap_or_else(|e| panic!("pact can-i-deploy output is not JSON ({e}): {stdout}"))
        ["summary"]
        .clone();
    let deployable = summary["deployable"] == Value::Bool(true);
    assert_eq!(table.status.success(), deployable, "exit code vs {summary}");
    Some(deployable)
}

/// Asserts that the official CLI answers `gate_allowed` for `pacticipant` `version`.
async fn cli_agrees(
    broker: &RunningEmulator,
    pacticipant: &str,
    version: &str,
    gate_allowed: bool,
) {
    if let Some(deployable) = official_can_i_deploy(broker, pacticipant, version).await {
        assert_eq!(
            deployable, gate_allowed,
            "pact can-i-deploy {pacticipant} {version} vs the gate"
        );
    }
}

/// The version the web service on `port` serves.
fn served(port: u16) -> String {
    http_get(&format!("http://127.0.0.1:{port}/version"))
        .1
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_versioned_service_is_gated_and_recorded_under_its_registry_digest() {
    if !require_registry() {
        return;
    }
    let (one, two) = (
        digest_ref("c2quay-test/web:1").unwrap(),
        digest_ref("c2quay-test/web:2").unwrap(),
    );
    let (v1, v2) = (digest_of(&one), digest_of(&two));
    let broker = emulator(EmulatorConfig::default(), &[]).await;
    let port = free_port();
    let world = World::new("e2e-digest", &[Svc::web("web", "shop-web", "1", port)]);
    seed(&broker, "shop-web", &v1, true);
    write_manifest(
        &world,
        "always",
        &broker.base_url,
        false,
        &web("{ from: digest }", &one),
        port,
    );
    let first = world.deploy(&[]).await;
    assert_eq!(first.code, 0, "{}", first.text());
    assert_eq!(current(&broker, "shop-web"), [v1.as_str()]);
    assert_eq!(
        world.containers()["web"].1,
        one,
        "pinned by the registry's digest"
    );
    assert_eq!(served(port), "1");
    let status = world.status().expect("status");
    assert_eq!(
        status["releases"]["web"]["version"],
        v1.as_str(),
        "{status:#}"
    );
    cli_agrees(&broker, "shop-web", &v1, true).await;

    // Another digest is another release: gated again; unverified, it is held.
    seed(&broker, "shop-web", &v2, false);
    write_manifest(
        &world,
        "always",
        &broker.base_url,
        false,
        &web("{ from: digest }", &two),
        port,
    );
    let blocked = world.deploy(&[]).await;
    assert_eq!(blocked.code, 3, "{}", blocked.text());
    assert_eq!(served(port), "1");
    cli_agrees(&broker, "shop-web", &v2, false).await;

    verify(&broker, "shop-web", &v2);
    let second = world.deploy(&[]).await;
    assert_eq!(second.code, 0, "{}", second.text());
    assert_eq!(served(port), "2");
    assert_eq!(history(&broker, "shop-web"), [v1, v2.clone()]);
    assert_eq!(current(&broker, "shop-web"), [v2.as_str()]);
    cli_agrees(&broker, "shop-web", &v2, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_git_versioned_service_is_gated_and_recorded_under_the_desired_commit() {
    if !require_docker() {
        return;
    }
    let broker = emulator(EmulatorConfig::default(), &[]).await;
    let port = free_port();
    let world = World::new("e2e-git", &[Svc::web("web", "shop-web", "1", port)]);
    git(&world.desired, &["init", "--quiet"]);
    write_manifest(
        &world,
        "never",
        &broker.base_url,
        false,
        &web("{ from: git, short: 12 }", "c2quay-test/web:1"),
        port,
    );
    let first_sha = commit_all(&world.desired, "shop: web from git");
    let first = first_sha[..12].to_string();
    seed(&broker, "shop-web", &first, true);
    let deploy = world.deploy(&[]).await;
    assert_eq!(deploy.code, 0, "{}", deploy.text());
    assert_eq!(current(&broker, "shop-web"), [first.as_str()]);
    let status = world.status().expect("status");
    assert_eq!(
        status["releases"]["web"]["version"],
        first.as_str(),
        "{status:#}"
    );
    cli_agrees(&broker, "shop-web", &first, true).await;

    // A commit that changes no manifest is still a new commit: a new release, gated again.
    git(
        &world.desired,
        &["commit", "--quiet", "--allow-empty", "-m", "next"],
    );
    let next = git(&world.desired, &["rev-parse", "HEAD"])[..12].to_string();
    assert_ne!(next, first);
    seed(&broker, "shop-web", &next, false);
    let blocked = world.deploy(&[]).await;
    assert_eq!(blocked.code, 3, "{}", blocked.text());
    assert!(blocked.text().contains(&next), "{}", blocked.text());
    cli_agrees(&broker, "shop-web", &next, false).await;
    cli_agrees(&broker, "shop-web", &first, true).await;

    verify(&broker, "shop-web", &next);
    let deploy = world.deploy(&[]).await;
    assert_eq!(deploy.code, 0, "{}", deploy.text());
    assert_eq!(history(&broker, "shop-web"), [first, next.clone()]);
    assert_eq!(current(&broker, "shop-web"), [next.as_str()]);
    cli_agrees(&broker, "shop-web", &next, true).await;
}

/// A gate-only `api` next to a running `web`, through the three identity forms: written out
/// (`"3"`), the digest of an image it does not run, the desired directory's commit. The second
/// step also bumps `web` while `api` is unverified: per service, `web` goes ahead; all or
/// nothing, nothing does.
async fn gate_only_through_the_three_identity_forms(all_or_nothing: bool) {
    let one = digest_ref("c2quay-test/web:1").unwrap();
    let digest = digest_of(&one);
    let broker = emulator(EmulatorConfig::default(), &[]).await;
    let port = free_port();
    let name = if all_or_nothing {
        "e2e-gate-only-aon"
    } else {
        "e2e-gate-only"
    };
    let world = World::new(name, &[Svc::web("web", "shop-web", "1", port)]);
    git(&world.desired, &["init", "--quiet"]);
    let api = |version: &str, image: Option<&str>| {
        let image = image
            .map(|i| format!("      image: \"{i}\"\n"))
            .unwrap_or_default();
        format!(
            "    api:\n      pacticipant: shop-api\n      gateOnly: true\n      version: {version}\n{image}"
        )
    };
    let write = |services: String| {
        write_manifest(
            &world,
            "never",
            &broker.base_url,
            all_or_nothing,
            &services,
            port,
        );
        commit_all(&world.desired, "shop")
    };

    // 1. Written out.
    seed(&broker, "shop-web", "1", true);
    seed(&broker, "shop-api", "3", true);
    write(format!(
        "{}{}",
        api("\"3\"", None),
        web("\"1\"", "c2quay-test/web:1")
    ));
    let literal = world.deploy(&[]).await;
    assert_eq!(literal.code, 0, "{}", literal.text());
    assert_eq!(current(&broker, "shop-api"), ["3"]);
    assert_eq!(current(&broker, "shop-web"), ["1"]);
    let containers = world.containers();
    assert_eq!(
        containers.keys().collect::<Vec<_>>(),
        ["web"],
        "api is never given to Compose"
    );
    cli_agrees(&broker, "shop-api", "3", true).await;

    // 2. The digest of an image it does not run, not yet verified; web bumped to 2.
    seed(&broker, "shop-api", &digest, false);
    seed(&broker, "shop-web", "2", true);
    write(format!(
        "{}{}",
        api("{ from: digest }", Some(&one)),
        web("\"2\"", "c2quay-test/web:2")
    ));
    let held = world.deploy(&[]).await;
    assert_eq!(held.code, 3, "{}", held.text());
    assert_eq!(
        current(&broker, "shop-api"),
        ["3"],
        "the unverified digest is not recorded"
    );
    cli_agrees(&broker, "shop-api", &digest, false).await;
    if all_or_nothing {
        assert_eq!(served(port), "1", "all or nothing: web waits with api");
        assert_eq!(current(&broker, "shop-web"), ["1"]);
    } else {
        assert_eq!(served(port), "2", "per service: web goes ahead");
        assert_eq!(current(&broker, "shop-web"), ["2"]);
    }
    verify(&broker, "shop-api", &digest);
    let released = world.deploy(&[]).await;
    assert_eq!(released.code, 0, "{}", released.text());
    assert_eq!(current(&broker, "shop-api"), [digest.as_str()]);
    assert_eq!(current(&broker, "shop-web"), ["2"]);
    assert_eq!(served(port), "2");
    cli_agrees(&broker, "shop-api", &digest, true).await;

    // 3. The desired directory's commit.
    let sha = write(format!(
        "{}{}",
        api("{ from: git }", None),
        web("\"2\"", "c2quay-test/web:2")
    ));
    seed(&broker, "shop-api", &sha, true);
    let from_git = world.deploy(&[]).await;
    assert_eq!(from_git.code, 0, "{}", from_git.text());
    assert_eq!(
        history(&broker, "shop-api"),
        ["3".to_string(), digest, sha.clone()]
    );
    assert_eq!(current(&broker, "shop-api"), [sha.as_str()]);
    assert_eq!(
        current(&broker, "shop-web"),
        ["2"],
        "web was not released again"
    );
    assert_eq!(world.containers().keys().collect::<Vec<_>>(), ["web"]);
    let status = world.status().expect("status");
    assert_eq!(
        status["releases"]["api"]["version"],
        sha.as_str(),
        "{status:#}"
    );
    cli_agrees(&broker, "shop-api", &sha, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_only_service_per_service_is_gated_and_recorded_in_all_three_identity_forms() {
    if !require_registry() {
        return;
    }
    gate_only_through_the_three_identity_forms(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_only_service_all_or_nothing_is_gated_and_recorded_in_all_three_identity_forms() {
    if !require_registry() {
        return;
    }
    gate_only_through_the_three_identity_forms(true).await;
}

/// The agent's path: a commit of the desired directory that changes no manifest moves HEAD; the
/// agent reloads, the `from: git` service's version (so its generation) is new, and the new
/// release is gated and recorded with no file event at all.
#[test]
fn the_agent_releases_each_new_desired_commit_of_a_git_versioned_service() {
    use crate::support::agent::{Agent, Broker, World as AgentWorld};
    if !require_docker() {
        return;
    }
    let broker = Broker::start();
    let world = AgentWorld::new();
    git(&world.desired, &["init", "--quiet"]);
    let (mut spec, _guard) = world.env("gitver", Some(&broker));
    spec.image = Some("c2quay-test/web:1".into());
    let text = spec
        .yaml()
        .replace("version: \"1\"", "version: { from: git, short: 12 }");
    assert!(text.contains("from: git"), "{text}");
    std::fs::write(world.desired.join("gitver.yaml"), text).expect("manifest");
    let first = commit_all(&world.desired, "gitver")[..12].to_string();
    broker.seed_deployable(&spec.pacticipant, &first);

    let agent = Agent::start(&world, &[]);
    agent.wait_status(
        "gitver",
        Duration::from_secs(60),
        "Ready at the first commit",
        |s| s["phase"] == "Ready" && s["releases"]["web"]["version"] == first.as_str(),
    );
    assert_eq!(broker.current(&spec.pacticipant), [first.as_str()]);

    git(
        &world.desired,
        &["commit", "--quiet", "--allow-empty", "-m", "next"],
    );
    let next = git(&world.desired, &["rev-parse", "HEAD"])[..12].to_string();
    broker.seed_deployable(&spec.pacticipant, &next);
    agent.wait_status(
        "gitver",
        Duration::from_secs(60),
        "Ready at the next commit",
        |s| s["phase"] == "Ready" && s["releases"]["web"]["version"] == next.as_str(),
    );
    let recorded = crate::support::agent::wait_until(Duration::from_secs(20), || {
        broker.current(&spec.pacticipant) == [next.as_str()]
    });
    assert!(recorded, "{:?}", broker.records(&spec.pacticipant));
    assert_eq!(
        broker.records(&spec.pacticipant),
        [(first, false), (next, true)]
    );
}
