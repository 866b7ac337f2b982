//! Per-service gating makes progress (issue 13 item 3): the releases the broker allows go
//! ahead and are recorded, then the rest are asked again in the same deploy; all-or-nothing
//! keeps its one query. With fakes; `tests/e2e/gate_waves_e2e.rs` proves the consumer/provider
//! case against the broker emulator's real matrix.

use c2quay::broker::Verdict;
use c2quay::pipeline::Outcome;

use super::pipeline_fakes::{Fixture, V1, V2};

/// web (a new consumer) waits, api (its provider) is deployable now.
fn consumer_waits(all_or_nothing: bool) -> (Fixture, c2quay::manifest::Environment) {
    let f = Fixture::new(&["web", "api"]);
    f.broker.set_verdict("shop-api", "2", Verdict::Deployable);
    f.broker.set_verdict("shop-web", "2", Verdict::Unknown);
    let env = f.env(
        &[("api", "shop-api", "2", V2), ("web", "shop-web", "2", V2)],
        all_or_nothing,
    );
    (f, env)
}

#[tokio::test]
async fn per_service_deploys_and_records_what_the_broker_allows_then_asks_again_for_the_rest() {
    let (f, env) = consumer_waits(false);
    let report = f.deploy(&env).await;

    assert_eq!(report.outcome, Outcome::GateBlocked, "{report:#?}");
    assert_eq!(report.waiting, vec!["web".to_string()]);
    assert_eq!(f.ups(), vec![format!("up api pins=api={V2},web={V1}")]);
    assert_eq!(f.compose.running_image("api").as_deref(), Some(V2));
    assert_eq!(f.compose.running_image("web").as_deref(), Some(V1));
    let recorded: Vec<_> = (f.broker.records().into_iter())
        .map(|r| (r.candidate.pacticipant, r.candidate.version))
        .collect();
    assert_eq!(recorded, vec![("shop-api".to_string(), "2".to_string())]);
    // Wave 1 asked for both; wave 2, after api's record, for web alone.
    let asked: Vec<Vec<String>> = (f.broker.gate_calls().into_iter())
        .map(|(_, candidates, _)| candidates.into_iter().map(|c| c.pacticipant).collect())
        .collect();
    assert_eq!(asked, vec![vec!["shop-api", "shop-web"], vec!["shop-web"]]);
    assert!(
        report
            .hints
            .iter()
            .any(|h| h.starts_with("wave 1: deployed and recorded shop-api 2")),
        "{:?}",
        report.hints
    );
    // Status: api is applied at 2, web is not applied, the generation is not wholly applied.
    let status = f.status();
    assert_eq!(status.releases["api"].version.as_deref(), Some("2"));
    assert!(
        !status.releases.contains_key("web"),
        "{:?}",
        status.releases
    );
    assert_eq!(status.applied_generation, None);
    assert_eq!(f.outbox_len(), 0);
}

#[tokio::test]
async fn once_the_broker_allows_the_rest_only_the_waiting_service_is_deployed() {
    let (f, env) = consumer_waits(false);
    f.deploy(&env).await;
    f.broker.set_verdict("shop-web", "2", Verdict::Deployable);

    let report = f.deploy(&env).await;

    assert_eq!(report.outcome, Outcome::Deployed, "{report:#?}");
    assert!(report.waiting.is_empty());
    let ups = f.ups();
    assert_eq!(ups.len(), 2, "{ups:?}");
    assert_eq!(ups[1], format!("up web pins=api={V2},web={V2}"));
    assert_eq!(f.broker.records().len(), 2);
    let status = f.status();
    assert_eq!(status.releases["web"].version.as_deref(), Some("2"));
    assert_eq!(
        status.applied_generation.as_deref(),
        Some(env.generation.as_str())
    );
}

#[tokio::test]
async fn all_or_nothing_asks_once_and_deploys_nothing_when_one_waits() {
    let (f, env) = consumer_waits(true);
    let report = f.deploy(&env).await;

    assert_eq!(report.outcome, Outcome::GateBlocked, "{report:#?}");
    assert_eq!(f.broker.gate_calls().len(), 1);
    assert_eq!(f.mutating_calls(), Vec::<String>::new());
    assert!(f.broker.records().is_empty());
}

#[tokio::test]
async fn nothing_goes_ahead_when_every_release_waits() {
    let (f, env) = consumer_waits(false);
    f.broker
        .set_verdict("shop-api", "2", Verdict::NotDeployable);
    let report = f.deploy(&env).await;

    assert_eq!(report.outcome, Outcome::GateBlocked, "{report:#?}");
    assert_eq!(report.waiting, vec!["api".to_string(), "web".to_string()]);
    assert_eq!(f.broker.gate_calls().len(), 1);
    assert_eq!(f.mutating_calls(), Vec::<String>::new());
}

/// A wave interrupted by a crash (journal at `Pulled`) is resumed with the held service still
/// pinned to what it runs, and committed without it: the next deploy asks only for the rest.
#[tokio::test]
async fn an_interrupted_wave_resumes_with_the_held_service_kept_as_it_runs() {
    use c2quay::pipeline::{self, Recovery};
    use c2quay::state::{Intent, Operation, PendingRecord, Step};

    let (f, env) = consumer_waits(false);
    let now = std::time::SystemTime::now();
    let record = PendingRecord::new("fakes", &env.generation, "test", "shop-api", "2", None, now);
    let intent = Intent {
        generation: env.generation.clone(),
        operation: Operation::Deploy,
        started_at: now,
        pre_snapshot: f.dir.path().join("none.json"),
        target_images: [("api".to_string(), V2.to_string())].into(),
        previous_images: [("api".to_string(), V1.to_string())].into(),
        previous_image_ids: Default::default(),
        changed_services: vec!["api".into()],
        records: vec![record],
        step: Step::Pulled,
        resumes: 0,
        restore_model: None,
        model_hash: None,
        held: [("web".to_string(), Some(V1.to_string()))].into(),
    };
    f.ctx.state.write_intent("fakes", &intent).expect("intent");

    let recovery = pipeline::recover(&f.ctx, &env, &f.lock()).await;

    assert_eq!(recovery.expect("recovery"), Recovery::Resumed);
    assert_eq!(f.ups(), vec![format!("up api pins=api={V2},web={V1}")]);
    let status = f.status();
    assert_eq!(status.releases["api"].version.as_deref(), Some("2"));
    assert!(
        !status.releases.contains_key("web"),
        "{:?}",
        status.releases
    );
    assert_eq!(status.applied_generation, None);

    f.broker.set_verdict("shop-web", "2", Verdict::Deployable);
    let report = f.deploy(&env).await;
    assert_eq!(report.outcome, Outcome::Deployed, "{report:#?}");
    let asked = f.broker.gate_calls();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].1.len(), 1, "only web is asked: {asked:?}");
    assert_eq!(f.ups()[1], format!("up web pins=api={V2},web={V2}"));
}
