//! Issue 13, point 3: a new consumer whose pact only the new provider verified is not deployable
//! while the old provider is deployed, and becomes deployable once the new provider's deployment
//! is recorded: what lets per-service deploys go in waves. c2quay's per-service gate and the
//! official `pact broker can-i-deploy` give the same answer at each point, and the provider is
//! deployable alone from the start.

use super::{assert_same, cand, cli_verdict, client, pact_cli, pact_doc};

use c2quay::broker::{Broker, GateMode, Verdict};
use c2quay_broker_emulator::{EmulatorConfig, RunningEmulator, start};

/// Foo 2 (consumer) has a pact that only Bar 2 verified; Bar 1 is deployed in production.
fn seed_consumer_needs_new_provider(e: &RunningEmulator) {
    e.create_environment("production", true).expect("env");
    e.create_version("Bar", "1", None);
    e.seed_pact("Foo", "2", "Bar", &pact_doc("Foo", "Bar", "v2"));
    e.seed_verification("Bar", "2", "Foo", "2", true)
        .expect("verify");
    e.record_deployment("Bar", "1", "production", None)
        .expect("Bar 1 live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_waits_for_the_provider_record_and_the_official_cli_agrees() {
    let Some(bin) =
        pact_cli("the_consumer_waits_for_the_provider_record_and_the_official_cli_agrees")
    else {
        return;
    };
    let e = start(EmulatorConfig::default()).await.expect("starts");
    seed_consumer_needs_new_provider(&e);
    let broker = client(&e);
    let ask = |p: &'static str, v: &'static str| {
        let broker = &broker;
        async move {
            broker
                .can_i_deploy("production", &[cand(p, v)], GateMode::PerService)
                .await
                .expect("gate")
                .remove(0)
        }
    };

    let consumer_before = ask("Foo", "2").await;
    let provider = ask("Bar", "2").await;
    assert_eq!(
        consumer_before.verdict,
        Verdict::Unknown,
        "{consumer_before:?}"
    );
    assert_eq!(provider.verdict, Verdict::Deployable, "{provider:?}");
    let (code, summary) = cli_verdict(&bin, &e.base_url, &[cand("Foo", "2")]).await;
    assert_same("consumer before", &consumer_before, code, &summary);
    let (code, summary) = cli_verdict(&bin, &e.base_url, &[cand("Bar", "2")]).await;
    assert_same("provider", &provider, code, &summary);

    // The first wave records the provider; the consumer is asked again.
    broker
        .record_deployment("production", &cand("Bar", "2"), None)
        .await
        .expect("record Bar 2");
    let consumer_after = ask("Foo", "2").await;
    assert_eq!(
        consumer_after.verdict,
        Verdict::Deployable,
        "{consumer_after:?}"
    );
    let (code, summary) = cli_verdict(&bin, &e.base_url, &[cand("Foo", "2")]).await;
    assert_same("consumer after", &consumer_after, code, &summary);
    e.shutdown().await;
}
