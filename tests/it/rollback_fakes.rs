//! `c2quay rollback` with fakes (issue 13 item 4): the restored release is applied and held,
//! its version recorded; a failing smoke check after the restore holds it too, records nothing.
//! `tests/e2e/rollback_cli_e2e.rs` drives the real binary.

use c2quay::broker::Verdict;
use c2quay::pipeline;
use c2quay::state::Phase;

use super::pipeline_fakes::{Fixture, V1, V2};

/// web deployed at 1 then 2 (both recorded).
async fn web_at_2() -> (Fixture, c2quay::manifest::Environment) {
    let f = Fixture::new(&["web"]);
    f.broker.set_verdict("shop-web", "1", Verdict::Deployable);
    f.broker.set_verdict("shop-web", "2", Verdict::Deployable);
    f.deploy(&f.web("1", V1)).await;
    let env = f.web("2", V2);
    f.deploy(&env).await;
    assert_eq!(f.compose.running_image("web").as_deref(), Some(V2));
    (f, env)
}

#[tokio::test]
async fn a_manual_rollback_applies_holds_and_records_the_restored_release() {
    let (f, env) = web_at_2().await;

    let done = pipeline::rollback_to_snapshot(&f.ctx, &env, None, std::time::Duration::ZERO)
        .await
        .expect("rollback");

    assert_eq!(done.restored.get("web").map(String::as_str), Some(V1));
    assert_eq!(f.compose.running_image("web").as_deref(), Some(V1));
    let recorded: Vec<String> = (f.broker.records().into_iter())
        .map(|r| r.candidate.version)
        .collect();
    assert_eq!(recorded, vec!["1", "2", "1"]);
    let status = f.status();
    assert_eq!(status.phase, Phase::RolledBack, "{}", status.message);
    assert_eq!(status.releases["web"].version.as_deref(), Some("1"));
    assert_eq!(
        status.failed_generation.as_deref(),
        Some(env.generation.as_str())
    );
    assert_eq!(f.outbox_len(), 0);
}

#[tokio::test]
async fn a_smoke_failure_after_a_manual_rollback_holds_and_records_nothing() {
    let (f, env) = web_at_2().await;
    f.smoke.fail("front", "connection refused");

    let error = pipeline::rollback_to_snapshot(&f.ctx, &env, None, std::time::Duration::ZERO)
        .await
        .expect_err("smoke failed");

    assert!(error.to_string().contains("smoke") || format!("{error:?}").contains("smoke"));
    assert_eq!(f.broker.records().len(), 2, "nothing new recorded");
    let status = f.status();
    assert_eq!(status.phase, Phase::Degraded, "{}", status.message);
    assert!(
        status.message.contains("connection refused"),
        "{}",
        status.message
    );
    assert_eq!(status.releases["web"].version.as_deref(), Some("1"));
}
