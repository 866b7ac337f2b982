//! End to end: `c2quay deploy` against Docker, Compose v2 and the broker emulator. Issue 7, tests
//! 5, 7, 8 and 9: the broker down at record time, all-or-nothing vs per-service gating, a one-shot
//! migration service, and a failed pull.
//!
//! Measured wall times are printed as `E2E-TIME <scenario>: <s>` (run with `--nocapture`).

use crate::support::{self, c2quay};

use std::time::Instant;

use c2quay::{Spec, Svc, World, deployed, emulator, report_time, requests_to};
use c2quay_broker_emulator::{EmulatorConfig, FaultKind, FaultSpec};
use support::docker::{free_ports, http_get, require_docker};

const BODY: &str = "c2quay-test web version";

/// Issue 7 tests 5 and 9: a failed pull changes nothing (exit 4, step pull); the broker down at
/// record time leaves v2 up, rolls nothing back, exits 6 and keeps the record in the outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_failure_changes_nothing_and_record_failure_keeps_v2() {
    if !require_docker() {
        return;
    }
    let started = Instant::now();
    let port = free_ports(1)[0];
    let web = Svc::web("web", "shop-web", "1", port);
    let broker = emulator(
        EmulatorConfig::default(),
        &[("shop-web", "1"), ("shop-web", "2"), ("shop-web", "9")],
    )
    .await;
    let world = World::new("e2e-apply", std::slice::from_ref(&web));
    let mut spec = Spec::new(vec![web.clone()], &broker.base_url);
    spec.http_smoke = vec![(format!("http://127.0.0.1:{port}/"), BODY.into())];
    world.write_manifest(&spec);
    let v1 = world.deploy(&[]).await;
    assert_eq!(v1.code, 0, "v1 deploy: {}", v1.text());

    // A pull from a loopback registry where nothing listens.
    let ids = world.container_ids();
    let mut pull_spec = spec.clone();
    pull_spec.pull = "always".into();
    pull_spec.services = vec![web.at("9", "127.0.0.1:5999/c2quay-test/missing:1")];
    world.write_manifest(&pull_spec);
    let pull = world.deploy(&[]).await;
    report_time("pull failure", pull.elapsed);
    assert_eq!(pull.code, 4, "{}", pull.text());
    assert!(pull.stderr.contains("failed step: pull"), "{}", pull.text());
    assert!(
        pull.text().contains("127.0.0.1:5999"),
        "names the image: {}",
        pull.text()
    );
    assert_eq!(
        world.container_ids(),
        ids,
        "a failed pull changes no container"
    );
    assert!(
        http_get(&format!("http://127.0.0.1:{port}/"))
            .1
            .contains("version 1")
    );
    assert_eq!(deployed(&broker), vec![("shop-web".into(), "1".into())]);

    // The broker refuses every record-deployment request (4 attempts each, with retries).
    let rollbacks_before = world.files_in("reports").len();
    broker.inject_fault(FaultSpec::new(FaultKind::Unavailable, 50).on_path("/deployed-versions"));
    spec.services = vec![web.at("2", "c2quay-test/web:2")];
    world.write_manifest(&spec);
    let record = world.deploy(&[]).await;
    report_time("record failure (broker 503 at record)", record.elapsed);
    // A re-run while the broker still refuses: still exit 6, never "up to date" (issue 19).
    let still = world.deploy(&[]).await;
    broker.clear_faults();
    assert_eq!(still.code, 6, "{}", still.text());
    assert!(
        still
            .text()
            .contains("sent 0 of 1 pending record(s) from the outbox first"),
        "{}",
        still.text()
    );
    assert_eq!(record.code, 6, "{}", record.text());
    assert!(
        record.stderr.contains("record shop-web 2: FAILED"),
        "{}",
        record.text()
    );
    assert!(
        http_get(&format!("http://127.0.0.1:{port}/"))
            .1
            .contains("version 2")
    );
    assert_eq!(
        world.containers()["web"].1,
        "c2quay-test/web:2",
        "not rolled back"
    );
    let new_reports: Vec<String> = world.files_in("reports")[..]
        .iter()
        .map(|p| c2quay::file_name(p))
        .collect();
    assert_eq!(
        new_reports.len(),
        rollbacks_before + 2,
        "only deploy reports (the deploy and its re-run): {new_reports:?}"
    );
    assert!(
        !record.stderr.contains("rollback report"),
        "no rollback ran: {}",
        record.text()
    );
    assert_eq!(deployed(&broker), vec![("shop-web".into(), "1".into())]);
    let outbox = world.files_in("outbox");
    assert_eq!(outbox.len(), 1, "one pending record: {outbox:?}");
    let pending = c2quay::read_json(&outbox[0]);
    assert_eq!(
        (pending["pacticipant"].as_str(), pending["version"].as_str()),
        (Some("shop-web"), Some("2")),
        "{pending:#}"
    );
    let report = world.latest_report("deploy").expect("report");
    assert_eq!(report["outcome"]["outcome"], "recordFailed", "{report:#}");
    assert_eq!(report["records"][0]["status"], "failed", "{report:#}");
    // The release is applied: the next run sends the pending record first, then is up to date.
    let again = world.deploy(&[]).await;
    assert_eq!(again.code, 0, "{}", again.text());
    assert!(
        again
            .stdout
            .contains("sent 1 of 1 pending record(s) from the outbox first"),
        "{}",
        again.text()
    );
    assert!(again.stdout.contains("up to date"), "{}", again.text());
    assert_eq!(deployed(&broker), vec![("shop-web".into(), "2".into())]);
    assert!(world.files_in("outbox").is_empty());
    report_time("scenario pull+record failure (total)", started.elapsed());
    broker.shutdown().await;
}

/// Issue 7 test 7: two changed services with `allOrNothing` make exactly one matrix query;
/// per-service mode makes one can-i-deploy query per service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_or_nothing_asks_once_per_service_asks_each() {
    if !require_docker() {
        return;
    }
    let started = Instant::now();
    let ports = free_ports(2);
    let web = Svc::web("web", "shop-web", "1", ports[0]);
    let api = Svc::web("api", "shop-api", "1", ports[1]);
    let broker = emulator(
        EmulatorConfig::default(),
        &[
            ("shop-web", "1"),
            ("shop-web", "2"),
            ("shop-api", "1"),
            ("shop-api", "2"),
        ],
    )
    .await;
    let world = World::new("e2e-aon", &[web.clone(), api.clone()]);
    let mut spec = Spec::new(vec![web.clone(), api.clone()], &broker.base_url);
    spec.all_or_nothing = true;
    world.write_manifest(&spec);
    let v1 = world.deploy(&[]).await;
    assert_eq!(v1.code, 0, "v1 deploy: {}", v1.text());
    assert_eq!(
        requests_to(&broker, "/matrix"),
        1,
        "{:#?}",
        broker.requests()
    );

    broker.clear_requests();
    spec.services = vec![
        web.at("2", "c2quay-test/web:2"),
        api.at("2", "c2quay-test/web:2"),
    ];
    world.write_manifest(&spec);
    let aon = world.deploy(&[]).await;
    report_time("two services v1->v2, all-or-nothing", aon.elapsed);
    assert_eq!(aon.code, 0, "{}", aon.text());
    assert_eq!(
        requests_to(&broker, "/matrix"),
        1,
        "{:#?}",
        broker.requests()
    );
    let query = broker
        .requests()
        .into_iter()
        .find(|r| r.path.contains("/matrix"))
        .and_then(|r| r.query)
        .unwrap_or_default();
    assert!(
        query.contains("shop-web") && query.contains("shop-api"),
        "{query}"
    );
    assert_eq!(
        deployed(&broker),
        vec![
            ("shop-api".into(), "2".into()),
            ("shop-web".into(), "2".into())
        ]
    );

    broker.clear_requests();
    spec.all_or_nothing = false;
    spec.services = vec![web.clone(), api.clone()];
    world.write_manifest(&spec);
    let per = world.deploy(&[]).await;
    report_time("two services v2->v1, per service", per.elapsed);
    assert_eq!(per.code, 0, "{}", per.text());
    // Per service asks /can-i-deploy (no row limit, issue 13), never /matrix.
    assert_eq!(
        (
            requests_to(&broker, "/can-i-deploy"),
            requests_to(&broker, "/matrix")
        ),
        (2, 0),
        "{:#?}",
        broker.requests()
    );
    assert_eq!(
        deployed(&broker),
        vec![
            ("shop-api".into(), "1".into()),
            ("shop-web".into(), "1".into())
        ]
    );
    report_time("scenario all-or-nothing (total)", started.elapsed());
    broker.shutdown().await;
}

/// Issue 7 test 8: a one-shot migration service (restart "no", exits 0) does not fail the
/// deploy, neither the first one nor a later one that re-runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_migration_does_not_fail_the_deploy() {
    if !require_docker() {
        return;
    }
    let started = Instant::now();
    let port = free_ports(1)[0];
    let web = Svc::web("web", "shop-web", "1", port);
    let migrate = Svc {
        name: "migrate".into(),
        pacticipant: "shop-migrate".into(),
        version: "1".into(),
        image: "c2quay-test/tool:1".into(),
        port: None,
        one_shot: Some("[\"sh\", \"-c\", \"echo migrated\"]".into()),
    };
    let broker = emulator(
        EmulatorConfig::default(),
        &[
            ("shop-web", "1"),
            ("shop-web", "2"),
            ("shop-migrate", "1"),
            ("shop-migrate", "2"),
        ],
    )
    .await;
    let world = World::new("e2e-oneshot", &[web.clone(), migrate.clone()]);
    let mut spec = Spec::new(vec![web.clone(), migrate.clone()], &broker.base_url);
    spec.http_smoke = vec![(format!("http://127.0.0.1:{port}/"), BODY.into())];
    world.write_manifest(&spec);
    let first = world.deploy(&[]).await;
    report_time("web + one-shot migration, first deploy", first.elapsed);
    assert_eq!(first.code, 0, "{}", first.text());
    let (_, image, state) = world.containers()["migrate"].clone();
    assert_eq!(
        (image.as_str(), state.as_str()),
        ("c2quay-test/tool:1", "exited")
    );

    spec.services = vec![
        web.at("2", "c2quay-test/web:2"),
        migrate.at("2", "c2quay-test/tool:1"),
    ];
    world.write_manifest(&spec);
    let second = world.deploy(&[]).await;
    report_time("web v2 + migration re-run", second.elapsed);
    assert_eq!(second.code, 0, "{}", second.text());
    assert!(
        http_get(&format!("http://127.0.0.1:{port}/"))
            .1
            .contains("version 2")
    );
    assert_eq!(
        deployed(&broker),
        vec![
            ("shop-migrate".into(), "2".into()),
            ("shop-web".into(), "2".into())
        ]
    );
    report_time("scenario one-shot (total)", started.elapsed());
    broker.shutdown().await;
}
