//! End to end (issue 13 item 3): in per-service mode a new consumer and the new provider it needs
//! are deployed in one `c2quay deploy`: the broker emulator's matrix allows the provider now and
//! the consumer only once the provider's deployment is recorded. All-or-nothing asks once for
//! the pair, which the broker allows together (its one-query semantics).

use crate::support::{self, c2quay};

use c2quay::{Spec, Svc, World, deployed, emulator, pact, requests_to};
use c2quay_broker_emulator::{EmulatorConfig, RunningEmulator};
use support::docker::{free_port, http_get, require_docker};

/// shop-web 2 has a pact with shop-api that only shop-api 2 verified; shop-api 1 runs.
async fn consumer_needs_the_new_provider() -> RunningEmulator {
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
    broker.seed_pact(
        "shop-web",
        "2",
        "shop-api",
        &pact("shop-web", "shop-api", "2"),
    );
    broker
        .seed_verification("shop-api", "2", "shop-web", "2", true)
        .expect("seed verification");
    broker
}

/// web and api at 1, deployed with `allOrNothing`; the manifest then asks for both at 2.
async fn pair_bumped_to_2(
    env: &str,
    all_or_nothing: bool,
) -> (RunningEmulator, World, Spec, [u16; 2]) {
    let broker = consumer_needs_the_new_provider().await;
    let ports = [free_port(), free_port()];
    let web = Svc::web("web", "shop-web", "1", ports[0]);
    let api = Svc::web("api", "shop-api", "1", ports[1]);
    let world = World::new(env, &[web.clone(), api.clone()]);
    let mut spec = Spec::new(vec![web.clone(), api.clone()], &broker.base_url);
    spec.all_or_nothing = all_or_nothing;
    world.write_manifest(&spec);
    let v1 = world.deploy(&[]).await;
    assert_eq!(v1.code, 0, "v1: {}", v1.text());
    spec.services = vec![
        web.at("2", "c2quay-test/web:2"),
        api.at("2", "c2quay-test/web:2"),
    ];
    (broker, world, spec, ports)
}

/// Both pacticipants currently deployed at 2.
fn both_at_2() -> Vec<(String, String)> {
    vec![
        ("shop-api".into(), "2".into()),
        ("shop-web".into(), "2".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_service_deploys_the_provider_then_the_consumer_it_unblocks() {
    if !require_docker() {
        return;
    }
    let (broker, world, spec, ports) = pair_bumped_to_2("e2e-waves", false).await;
    world.write_manifest(&spec);
    let v2 = world.deploy(&[]).await;

    assert_eq!(v2.code, 0, "v2: {}", v2.text());
    assert!(
        v2.text()
            .contains("wave 1: deployed and recorded shop-api 2"),
        "{}",
        v2.text()
    );
    assert_eq!(deployed(&broker), both_at_2());
    for port in ports {
        let (status, body) = http_get(&format!("http://127.0.0.1:{port}/"));
        assert_eq!((status, body.trim()), (200, "c2quay-test web version 2"));
    }
    let status = world.status().expect("status");
    assert_eq!(status["phase"], "Ready", "{status:#}");
    assert_eq!(status["releases"]["web"]["version"], "2", "{status:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_or_nothing_asks_once_for_the_pair_and_deploys_it_in_one_wave() {
    if !require_docker() {
        return;
    }
    let (broker, world, spec, _) = pair_bumped_to_2("e2e-waves-aon", true).await;
    let asked_before = requests_to(&broker, "/matrix");
    world.write_manifest(&spec);
    let v2 = world.deploy(&[]).await;

    // The pair verified together is deployable together: one query, one wave.
    assert_eq!(v2.code, 0, "v2: {}", v2.text());
    assert_eq!(requests_to(&broker, "/matrix") - asked_before, 1);
    assert!(!v2.text().contains("wave 1"), "{}", v2.text());
    assert_eq!(deployed(&broker), both_at_2());
}
