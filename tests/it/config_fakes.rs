//! The rendered Compose model as desired state, with fakes (issue 12): a configuration change
//! is deployed without gate or record, a removed gated service is stopped and its
//! undeployment recorded exactly once. The e2e tests (`config_e2e.rs`) prove the same against
//! a real engine and Compose.

use c2quay::broker::Verdict;
use c2quay::pipeline::Outcome;
use serde_json::json;

use super::pipeline_fakes::{Fixture, V2};

#[tokio::test]
async fn a_config_only_change_is_applied_without_gate_or_record() {
    let f = Fixture::new(&["web"]);
    f.broker.set_verdict("shop-web", "2", Verdict::Deployable);
    let env = f.web("2", V2);
    assert_eq!(f.deploy(&env).await.outcome, Outcome::Deployed);
    let (gates, records) = (f.broker.gate_calls().len(), f.broker.records().len());
    let applied_hash = f.status().configs["web"].hash.clone();

    f.compose
        .configure("web", json!({"environment": {"GREETING": "two"}}));
    let report = f.deploy(&env).await;
    assert_eq!(report.outcome, Outcome::Deployed, "{report:#?}");
    assert!(
        report.plan.contains("web config (environment)"),
        "{}",
        report.plan
    );
    assert_eq!(f.ups().len(), 2, "the service is re-created: {:?}", f.ups());
    assert_eq!(f.broker.gate_calls().len(), gates, "no new gate");
    assert_eq!(f.broker.records().len(), records, "no new record");
    assert_eq!(f.outbox_len(), 0);
    let status = f.status();
    assert_ne!(status.configs["web"].hash, applied_hash);
    assert!(
        status.configs["web"].compose_hash.is_some(),
        "the container's Compose hash is kept for drift"
    );
    assert_eq!(f.deploy(&env).await.outcome, Outcome::UpToDate);
}

#[tokio::test]
async fn a_removed_gated_service_is_stopped_and_undeployed_once() {
    let f = Fixture::new(&["web", "worker"]);
    f.broker.set_verdict("shop-web", "2", Verdict::Deployable);
    f.broker
        .set_verdict("shop-worker", "2", Verdict::Deployable);
    let both = f.env(
        &[
            ("web", "shop-web", "2", V2),
            ("worker", "shop-worker", "2", V2),
        ],
        false,
    );
    assert_eq!(f.deploy(&both).await.outcome, Outcome::Deployed);
    assert_eq!(f.broker.records().len(), 2);

    // The commit drops `worker` from the manifest and from compose.yaml.
    f.compose.remove_service("worker");
    let web_only = f.web("2", V2);
    let report = f.deploy(&web_only).await;
    assert_eq!(report.outcome, Outcome::Deployed, "{report:#?}");
    assert!(report.plan.contains("remove worker"), "{}", report.plan);
    assert!(
        f.compose.containers().iter().all(|c| c.service != "worker"),
        "the orphan is removed"
    );
    let undeployed = f.broker.undeployments();
    assert_eq!(undeployed.len(), 1, "{undeployed:?}");
    assert_eq!(undeployed[0].pacticipant, "shop-worker");
    assert_eq!(f.broker.records().len(), 2, "no new deployment record");
    let status = f.status();
    assert!(!status.releases.contains_key("worker"));
    assert!(!status.configs.contains_key("worker"));

    assert_eq!(f.deploy(&web_only).await.outcome, Outcome::UpToDate);
    assert_eq!(f.broker.undeployments().len(), 1, "exactly once");
}

/// Issue 20: a deploy given the caller's fresh rendered model (the agent's cache) runs no
/// `docker compose config` of its own, and applies and records exactly what one that renders
/// does.
#[tokio::test]
async fn a_deploy_with_the_callers_rendered_model_renders_nothing_itself() {
    use c2quay::docker::Applier;
    let f = Fixture::new(&["web"]);
    f.broker.set_verdict("shop-web", "2", Verdict::Deployable);
    let env = f.web("2", V2);
    let project = c2quay::pipeline::project_of(&env);
    let model = f.compose.config(&project).await.expect("the fake renders");
    let renders = || f.compose.calls().iter().filter(|c| *c == "config").count();
    let before = renders();
    let options = c2quay::pipeline::DeployOptions {
        model: Some(std::sync::Arc::new(model)),
        ..Default::default()
    };
    let report = c2quay::pipeline::deploy(&f.ctx, &env, &options)
        .await
        .expect("deploy report");
    assert_eq!(report.outcome, Outcome::Deployed, "{report:#?}");
    assert_eq!(renders(), before, "no render: {:?}", f.compose.calls());
    assert_eq!(f.ups(), vec![format!("up web pins=web={V2}")]);
    assert_eq!(f.broker.records().len(), 1);
    assert!(
        f.status().configs.contains_key("web"),
        "the applied config is kept"
    );
}
