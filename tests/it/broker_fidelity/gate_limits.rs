//! Issue 13, point 1: the broker's `/matrix` keeps its newest 100 rows unless told otherwise
//! (`limit` defaults to 100, applied before the decision) while `/can-i-deploy` applies no limit.
//! With 101 consumer versions released to production and the oldest one failing verification
//! against the provider being deployed, c2quay's gate must say no, as `/can-i-deploy` does.
//!
//! The official `pact broker can-i-deploy` asks `/matrix` without a limit, so on that case it
//! says yes, from the same truncated answer the broker gives (and the emulator models); within
//! the limit it says no, exactly as c2quay does. Before this fix c2quay said Deployable on the
//! 101-version case too, per service and all-or-nothing.

use super::{assert_same, cand, cli_verdict, client, pact_cli, pact_doc};

use c2quay::broker::{Broker, GateMode, Verdict};
use c2quay_broker_emulator::{EmulatorConfig, RunningEmulator, start};
use serde_json::json;

/// Consumer versions released to production: one more than the matrix's default row limit.
const PAST_THE_LIMIT: usize = 101;

/// Foo 1..=`released` are released to production, each with its own pact with Bar; Bar 2
/// verified them all and failed only Foo 1's, the oldest. Bar 2 is being deployed; Baz 1 (no
/// pacts) is deployed with it in the all-or-nothing case.
fn seed_released_consumers(e: &RunningEmulator, released: usize) {
    e.create_environment("production", true).expect("env");
    for n in 1..=released {
        let v = n.to_string();
        e.seed_pact("Foo", &v, "Bar", &pact_doc("Foo", "Bar", &format!("v{v}")));
        e.seed_verification("Bar", "2", "Foo", &v, n != 1)
            .expect("verify");
        e.record_release("Foo", &v, "production").expect("release");
    }
    e.create_version("Baz", "1", None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_sees_a_failing_consumer_version_beyond_the_matrix_default_limit() {
    let e = start(EmulatorConfig::default()).await.expect("starts");
    seed_released_consumers(&e, PAST_THE_LIMIT);
    let broker = client(&e);
    let per_service = broker
        .can_i_deploy("production", &[cand("Bar", "2")], GateMode::PerService)
        .await
        .expect("per-service gate");
    let together = broker
        .can_i_deploy(
            "production",
            &[cand("Bar", "2"), cand("Baz", "1")],
            GateMode::AllOrNothing,
        )
        .await
        .expect("all-or-nothing gate");
    for (mode, answer) in [
        ("per service", &per_service[0]),
        ("all-or-nothing", &together[0]),
    ] {
        println!(
            "VERDICT {PAST_THE_LIMIT} released consumer versions, {mode}: {:?} ({})",
            answer.verdict, answer.reason
        );
        assert_eq!(answer.verdict, Verdict::NotDeployable, "{mode}: {answer:?}");
        assert_eq!(
            (answer.success, answer.failed, answer.unknown),
            (100, 1, 0),
            "{mode}: every row counted"
        );
        assert_eq!(
            answer.failing_rows,
            ["Foo 1 -> Bar 2: verification failed"],
            "{mode}"
        );
    }
    // What was asked: /can-i-deploy per service, /matrix with a limit all-or-nothing.
    let asked: Vec<String> = e.requests().iter().map(|r| r.target()).collect();
    assert!(
        asked.contains(
            &"/can-i-deploy?pacticipant=Bar&version=2&environment=production".to_string()
        ),
        "{asked:?}"
    );
    assert!(
        asked
            .iter()
            .any(|t| t.starts_with("/matrix?") && t.ends_with("&limit=10000")),
        "{asked:?}"
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_cli_agrees_within_the_limit_and_reads_the_truncated_matrix_past_it() {
    let Some(bin) =
        pact_cli("the_official_cli_agrees_within_the_limit_and_reads_the_truncated_matrix_past_it")
    else {
        return;
    };
    for released in [PAST_THE_LIMIT - 1, PAST_THE_LIMIT] {
        let e = start(EmulatorConfig::default()).await.expect("starts");
        seed_released_consumers(&e, released);
        let (code, summary) = cli_verdict(&bin, &e.base_url, &[cand("Bar", "2")]).await;
        let answer = client(&e)
            .can_i_deploy("production", &[cand("Bar", "2")], GateMode::PerService)
            .await
            .expect("gate")
            .remove(0);
        println!(
            "CLI can-i-deploy, {released} released consumer versions: exit {code}, deployable {}; c2quay {:?}",
            summary["deployable"], answer.verdict
        );
        assert_eq!(answer.verdict, Verdict::NotDeployable, "{released}");
        if released < PAST_THE_LIMIT {
            assert_same(&format!("{released} released"), &answer, code, &summary);
        } else {
            // The CLI's /matrix query names no limit: it decides on the newest 100 rows, Foo 1's
            // failed one is not among them, and it says yes (exit 0), as against the broker.
            assert_eq!(code, 0, "{summary}");
            assert_eq!(summary["deployable"], json!(true), "{summary}");
            assert_eq!(
                (summary["success"].clone(), summary["failed"].clone()),
                (json!(100), json!(0)),
                "{summary}"
            );
        }
        e.shutdown().await;
    }
}
