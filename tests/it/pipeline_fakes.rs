//! The release pipeline with fakes (`FakeCompose`, `FakeBroker`, `FakeSmoke`): the outcomes of
//! issue 7 without Docker, in milliseconds. The e2e files (`pipeline_e2e*.rs`) prove the same
//! against the real binary, Docker and the broker emulator.

use std::sync::Arc;

use c2quay::broker::{FakeBroker, GateMode, Verdict};
use c2quay::docker::fake::FakeCompose;
use c2quay::events::StepName;
use c2quay::manifest::{self, Environment};
use c2quay::pipeline::{
    self, Context, DeployOptions, DeployReport, FakeBrokers, Outcome, RecordStatus, StepFailure,
};
use c2quay::smoke::fake::FakeSmoke;
use c2quay::state::{
    EnvironmentStatus, Intent, Operation, PendingRecord, Phase, StateDir, Step, SystemClock,
};

pub(crate) const V1: &str = "c2quay-test/web:1";
pub(crate) const V2: &str = "c2quay-test/web:2";

/// A temp dir with a compose file, a manifest, a state dir, and fakes running `web` at v1.
pub(crate) struct Fixture {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) compose: FakeCompose,
    pub(crate) broker: Arc<FakeBroker>,
    pub(crate) smoke: FakeSmoke,
    pub(crate) ctx: Context<FakeCompose, FakeBrokers, FakeSmoke>,
}

impl Fixture {
    pub(crate) fn new(services: &[&str]) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("project")).expect("mkdir");
        std::fs::write(dir.path().join("project/compose.yaml"), "services: {}\n").expect("write");
        let mut compose = FakeCompose::new("fakeproj");
        for service in services {
            compose = compose.with_service(service, V1);
        }
        let broker = Arc::new(FakeBroker::new());
        let smoke = FakeSmoke::new();
        let state = StateDir::open(&dir.path().join("state")).expect("state dir");
        let events = pipeline::standard_events(&state, Arc::new(SystemClock), None);
        let ctx = Context {
            compose: compose.clone(),
            brokers: FakeBrokers(broker.clone()),
            smoke: smoke.clone(),
            state,
            clock: Arc::new(SystemClock),
            metrics: None,
            events,
        };
        Fixture {
            dir,
            compose,
            broker,
            smoke,
            ctx,
        }
    }

    /// The environment lock of "fakes", as a caller of a locked flow holds it.
    pub(crate) fn lock(&self) -> c2quay::state::EnvLock {
        (self.ctx.state)
            .lock_environment("fakes", "test", std::time::Duration::from_secs(1))
            .expect("lock")
    }

    /// Loads a manifest with `services` as (name, pacticipant, version, image).
    pub(crate) fn env(
        &self,
        services: &[(&str, &str, &str, &str)],
        all_or_nothing: bool,
    ) -> Environment {
        let mut text = format!(
            "apiVersion: c2quay.dev/v1\nkind: Environment\nmetadata:\n  name: fakes\nspec:\n  \
             compose:\n    project: fakeproj\n    directory: {}\n    files: [compose.yaml]\n    \
             waitTimeout: 1s\n    pull: missing\n  broker:\n    url: http://127.0.0.1:9\n    \
             environment: test\n    allOrNothing: {all_or_nothing}\n  services:\n",
            self.dir.path().join("project").display()
        );
        for (name, pacticipant, version, image) in services {
            text.push_str(&format!(
                "    {name}:\n      pacticipant: {pacticipant}\n      version: \"{version}\"\n      image: {image}\n"
            ));
        }
        text.push_str(
            "  smoke:\n    - name: front\n      http: { url: \"http://127.0.0.1:9/\" }\n      \
             attempts: 1\n",
        );
        // No stability window: the fakes' containers never die by themselves.
        text.push_str("  policy:\n    minReady: 0s\n");
        let path = self.dir.path().join("fakes.yaml");
        std::fs::write(&path, text).expect("manifest");
        manifest::load_file(&path).unwrap_or_else(|p| panic!("manifest problems: {p:?}"))
    }

    pub(crate) fn web(&self, version: &str, image: &str) -> Environment {
        self.env(&[("web", "shop-web", version, image)], false)
    }

    pub(crate) async fn deploy(&self, env: &Environment) -> DeployReport {
        pipeline::deploy(&self.ctx, env, &DeployOptions::default())
            .await
            .expect("deploy report")
    }

    pub(crate) fn ups(&self) -> Vec<String> {
        let calls = self.compose.calls();
        calls.into_iter().filter(|c| c.starts_with("up ")).collect()
    }

    pub(crate) fn mutating_calls(&self) -> Vec<String> {
        let calls = self.compose.calls();
        calls
            .into_iter()
            .filter(|c| c.starts_with("up ") || c.starts_with("pull ") || c.contains("leftovers"))
            .collect()
    }

    pub(crate) fn status(&self) -> EnvironmentStatus {
        self.ctx
            .state
            .read_status("fakes")
            .expect("status readable")
            .expect("status written")
    }

    pub(crate) fn outbox_len(&self) -> usize {
        self.ctx.state.outbox_list("fakes").expect("outbox").0.len()
    }

    /// The journal of a deploy of web v1 -> v2 of `env` interrupted at `step`, with its record.
    fn interrupted_v1_to_v2(&self, env: &Environment, step: Step) -> Intent {
        let record = PendingRecord::new(
            "fakes",
            &env.generation,
            "test",
            "shop-web",
            "2",
            None,
            std::time::SystemTime::now(),
        );
        Intent {
            generation: env.generation.clone(),
            operation: Operation::Deploy,
            started_at: std::time::SystemTime::now(),
            pre_snapshot: self.dir.path().join("none.json"),
            target_images: [("web".to_string(), V2.to_string())].into(),
            previous_images: [("web".to_string(), V1.to_string())].into(),
            changed_services: vec!["web".into()],
            records: vec![record],
            step,
            resumes: 0,
            previous_image_ids: Default::default(),
            restore_model: None,
            model_hash: None,
            held: Default::default(),
        }
    }

    fn intent_exists(&self) -> bool {
        self.ctx.state.intent_file("fakes").exists()
    }
}

#[tokio::test]
async fn success_records_clears_intent_and_applies_the_release() {
    let f = Fixture::new(&["web"]);
    f.broker.set_verdict("shop-web", "2", Verdict::Deployable);
    let env = f.web("2", V2);
    let report = f.deploy(&env).await;
    assert_eq!(report.outcome, Outcome::Deployed, "{report:#?}");
    assert_eq!(f.compose.running_image("web").as_deref(), Some(V2));
    assert_eq!(f.ups(), vec![format!("up web pins=web={V2}")]);
    let records = f.broker.records();
    assert_eq!(records.len(), 1);
    assert_eq!(
        (
            records[0].candidate.pacticipant.as_str(),
            records[0].candidate.version.as_str()
        ),
        ("shop-web", "2")
    );
    assert!(!f.intent_exists(), "intent cleared after success");
    assert_eq!(f.outbox_len(), 0);
    let status = f.status();
    assert_eq!(
        status.applied_generation.as_deref(),
        Some(env.generation.as_str())
    );
    let release = &status.releases["web"];
    assert_eq!(
        (release.version.as_deref(), release.image.as_str()),
        (Some("2"), V2)
    );
    assert!(report.report_path.as_ref().is_some_and(|p| p.exists()));
    assert_eq!(f.smoke.runs(), vec!["front@fakes".to_string()]);
    // The same desired state again: up to date, no up, no record.
    let again = f.deploy(&env).await;
    assert_eq!(again.outcome, Outcome::UpToDate);
    assert_eq!(f.ups().len(), 1);
    assert_eq!(f.broker.records().len(), 1);
}

#[tokio::test]
async fn a_blocked_gate_touches_nothing() {
    for verdict in [Verdict::NotDeployable, Verdict::Unknown] {
        let f = Fixture::new(&["web"]);
        f.broker.set_verdict("shop-web", "2", verdict);
        let report = f.deploy(&f.web("2", V2)).await;
        assert_eq!(report.outcome, Outcome::GateBlocked, "{verdict:?}");
        assert_eq!(report.outcome.exit_code(), 3);
        assert_eq!(f.mutating_calls(), Vec::<String>::new(), "{verdict:?}");
        assert_eq!(f.compose.running_image("web").as_deref(), Some(V1));
        assert!(f.broker.records().is_empty());
        assert!(!f.intent_exists());
        assert_eq!(f.outbox_len(), 0);
        assert_eq!(report.gate_reasons().len(), 1, "{report:#?}");
        assert!(report.gate_reasons()[0].contains(&format!("{verdict:?}")));
    }
}

#[tokio::test]
async fn a_broker_error_at_the_gate_is_an_error_and_touches_nothing() {
    let f = Fixture::new(&["web"]);
    f.broker.fail_next_gates(1);
    let result = pipeline::deploy(&f.ctx, &f.web("2", V2), &DeployOptions::default()).await;
    assert!(
        matches!(result, Err(pipeline::Error::Gate { .. })),
        "{result:?}"
    );
    assert_eq!(f.mutating_calls(), Vec::<String>::new());
    assert!(!f.intent_exists());
}

#[tokio::test]
async fn readiness_failure_rolls_back_to_the_pre_snapshot_images() {
    let f = Fixture::new(&["web"]);
    f.broker.set_verdict("shop-web", "2", Verdict::Deployable);
    f.compose.make_unhealthy(V2);
    let report = f.deploy(&f.web("2", V2)).await;
    assert!(
        matches!(&report.outcome, Outcome::RolledBack { failure } if failure.step == StepName::Readiness),
        "{report:#?}"
    );
    assert_eq!(report.outcome.exit_code(), 4);
    assert_eq!(
        f.ups(),
        vec![
            format!("up web pins=web={V2}"),
            format!("up web pins=web={V1}")
        ],
        "the rollback pins the pre-snapshot image"
    );
    assert_eq!(f.compose.running_image("web").as_deref(), Some(V1));
    assert!(f.broker.records().is_empty(), "a rollback records nothing");
    assert!(!f.intent_exists());
    assert_eq!(f.outbox_len(), 0);
    assert!(report.rollback_report.as_ref().is_some_and(|p| p.exists()));
}

#[tokio::test]
async fn a_failing_smoke_check_rolls_back() {
    let f = Fixture::new(&["web"]);
    f.broker.set_verdict("shop-web", "2", Verdict::Deployable);
    f.smoke.fail("front", "body does not contain version 2");
    let report = f.deploy(&f.web("2", V2)).await;
    match &report.outcome {
        Outcome::RolledBack { failure } => {
            let cause = &failure.error;
            assert_eq!(failure.step, StepName::Smoke);
            assert!(cause.contains("body does not contain version 2"), "{cause}");
        }
        other => panic!("expected a rollback after smoke, got {other:?}"),
    }
    assert_eq!(f.compose.running_image("web").as_deref(), Some(V1));
    assert!(f.broker.records().is_empty());
}

#[tokio::test]
async fn rollback_off_and_dry_run_leave_the_new_images() {
    for mode in [manifest::RollbackMode::Off, manifest::RollbackMode::DryRun] {
        let f = Fixture::new(&["web"]);
        f.broker.set_verdict("shop-web", "2", Verdict::Deployable);
        f.compose.make_unhealthy(V2);
        let options = DeployOptions {
            rollback: Some(mode),
            ..DeployOptions::default()
        };
        let report = pipeline::deploy(&f.ctx, &f.web("2", V2), &options)
            .await
            .expect("report");
        assert_eq!(report.outcome.exit_code(), 5, "{mode:?}: {report:#?}");
        assert_eq!(f.ups().len(), 1, "{mode:?}: no rollback up");
        assert_eq!(f.compose.running_image("web").as_deref(), Some(V2));
        assert!(
            report.hints.iter().any(|h| h.contains(V1)),
            "{:#?}",
            report.hints
        );
    }
}

#[tokio::test]
async fn a_pull_failure_changes_nothing() {
    let f = Fixture::new(&["web"]);
    f.broker.set_verdict("shop-web", "9", Verdict::Deployable);
    f.compose.fail_next_pull("connection refused");
    let report = f
        .deploy(&f.web("9", "127.0.0.1:5999/c2quay-test/missing:1"))
        .await;
    assert!(
        matches!(&report.outcome, Outcome::RolledBack { failure } if failure.step == StepName::Pull),
        "{report:#?}"
    );
    assert!(f.ups().is_empty(), "no up after a failed pull");
    assert_eq!(f.compose.running_image("web").as_deref(), Some(V1));
}

#[tokio::test]
async fn a_record_failure_keeps_the_release_and_the_outbox_entry() {
    let f = Fixture::new(&["web"]);
    f.broker.set_verdict("shop-web", "2", Verdict::Deployable);
    f.broker.fail_next_records(1);
    let env = f.web("2", V2);
    let report = f.deploy(&env).await;
    assert_eq!(report.outcome, Outcome::RecordFailed, "{report:#?}");
    assert_eq!(report.outcome.exit_code(), 6);
    assert_eq!(report.records[0].status, RecordStatus::Failed);
    assert_eq!(
        f.compose.running_image("web").as_deref(),
        Some(V2),
        "no rollback"
    );
    assert_eq!(f.ups().len(), 1);
    let (pending, _) = f.ctx.state.outbox_list("fakes").expect("outbox");
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].pacticipant.as_str(), pending[0].version.as_str()),
        ("shop-web", "2")
    );
    assert_eq!(pending[0].attempts, 1);
    assert!(!f.intent_exists());
    assert_eq!(
        f.status().releases["web"].image,
        V2,
        "the release is applied"
    );
}

#[tokio::test]
async fn all_or_nothing_asks_once_per_service_asks_per_candidate() {
    for (aon, mode) in [
        (true, GateMode::AllOrNothing),
        (false, GateMode::PerService),
    ] {
        let f = Fixture::new(&["web", "api"]);
        f.broker.set_verdict("shop-web", "2", Verdict::Deployable);
        f.broker.set_verdict("shop-api", "2", Verdict::Deployable);
        let env = f.env(
            &[("web", "shop-web", "2", V2), ("api", "shop-api", "2", V2)],
            aon,
        );
        let report = f.deploy(&env).await;
        assert_eq!(report.outcome, Outcome::Deployed, "{report:#?}");
        let calls = f.broker.gate_calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0].2, mode);
        assert_eq!(calls[0].1.len(), 2);
        assert_eq!(report.gate.len(), if aon { 1 } else { 2 });
        assert_eq!(f.broker.records().len(), 2);
    }
}

#[tokio::test]
async fn a_corrupt_status_stops_the_deploy_before_any_change() {
    let f = Fixture::new(&["web"]);
    f.broker.set_verdict("shop-web", "2", Verdict::Deployable);
    f.ctx.state.ensure_env("fakes").expect("env dir");
    let status_file = f.ctx.state.status_file("fakes");
    std::fs::write(&status_file, "{ not json").expect("corrupt status");
    let result = pipeline::deploy(&f.ctx, &f.web("2", V2), &DeployOptions::default()).await;
    match result {
        Err(pipeline::Error::State { source, .. }) => {
            assert_eq!(source.path(), Some(status_file.as_path()), "{source}");
        }
        other => panic!("expected a state error, got {other:?}"),
    }
    assert_eq!(f.mutating_calls(), Vec::<String>::new());
    assert!(f.broker.gate_calls().is_empty(), "not even the gate");
    assert_eq!(
        std::fs::read_to_string(&status_file).expect("read"),
        "{ not json"
    );
}

#[tokio::test]
async fn status_after_maps_each_outcome() {
    let f = Fixture::new(&["web"]);
    f.broker.set_verdict("shop-web", "2", Verdict::Deployable);
    f.compose.make_unhealthy(V2);
    let env = f.web("2", V2);
    let report = f.deploy(&env).await;
    let mut status = EnvironmentStatus::new("fakes");
    let now = std::time::SystemTime::now();
    assert_eq!(
        pipeline::status_after(&mut status, &env, &report, now),
        None
    );
    assert_eq!(status.phase, Phase::RolledBack);
    assert_eq!(
        status.failed_generation.as_deref(),
        Some(env.generation.as_str())
    );

    let mut blocked = report.clone();
    blocked.outcome = Outcome::GateBlocked;
    let delay = pipeline::status_after(&mut status, &env, &blocked, now);
    assert!(delay.is_some());
    assert_eq!(status.phase, Phase::GateBlocked);
    assert_eq!(
        status.gate_blocked_generation.as_deref(),
        Some(env.generation.as_str())
    );

    let mut done = report.clone();
    done.outcome = Outcome::Deployed;
    assert_eq!(pipeline::status_after(&mut status, &env, &done, now), None);
    assert_eq!(status.phase, Phase::Ready);
    assert_eq!(status.failed_generation, None);
    assert_eq!(status.next_gate_check_at, None);
}

/// Recovery after a crash between `up` and smoke: the target image runs and is ready, but a
/// smoke check fails, so recovery rolls back and queues no record (it once ignored a failed
/// smoke result and finished the deploy).
#[tokio::test]
async fn recovery_rolls_back_when_the_smoke_check_fails() {
    use c2quay::pipeline::Recovery;

    let f = Fixture::new(&["web"]);
    let env = f.web("2", V2);
    // The crash left web at v2 with an open intent at step UpDone.
    f.compose.set_running("web", V2);
    let intent = f.interrupted_v1_to_v2(&env, Step::UpDone);
    f.ctx.state.write_intent("fakes", &intent).expect("intent");
    f.smoke.fail("front", "body does not contain version 2");

    let recovery = pipeline::recover(&f.ctx, &env, &f.lock())
        .await
        .expect("recovery");
    assert_eq!(recovery, Recovery::RolledBack);
    assert_eq!(f.compose.running_image("web").as_deref(), Some(V1));
    assert_eq!(f.outbox_len(), 0, "nothing may be queued for recording");
    assert!(!f.intent_exists());
    assert_eq!(
        f.status().failed_generation.as_deref(),
        Some(env.generation.as_str())
    );

    // Once smoke passes, the same situation finishes and queues exactly the journaled record.
    f.compose.set_running("web", V2);
    f.smoke.pass("front");
    let mut again = intent.clone();
    again.step = Step::UpDone;
    f.ctx.state.write_intent("fakes", &again).expect("intent");
    let recovery = pipeline::recover(&f.ctx, &env, &f.lock())
        .await
        .expect("recovery");
    assert_eq!(recovery, Recovery::Resumed);
    assert_eq!(f.outbox_len(), 1);

    // A crash after smoke passed (step SmokePassed, before the release was written): recovery
    // writes the applied release too, so the next deploy is up to date and records nothing new.
    f.ctx.state.clear_intent("fakes").expect("clear");
    c2quay::status::update(&f.ctx.state, &f.lock(), |s| {
        s.applied_generation = None;
        s.releases.clear();
    })
    .expect("status");
    let mut late = intent.clone();
    late.step = Step::SmokePassed;
    f.ctx.state.write_intent("fakes", &late).expect("intent");
    let recovery = pipeline::recover(&f.ctx, &env, &f.lock())
        .await
        .expect("recovery");
    assert_eq!(recovery, Recovery::Finished);
    assert_eq!(
        f.status().applied_generation.as_deref(),
        Some(env.generation.as_str())
    );
    let ups_before = f.ups().len();
    let report = f.deploy(&env).await;
    assert_eq!(report.outcome, Outcome::UpToDate, "{report:#?}");
    assert_eq!(f.ups().len(), ups_before, "no second up");
}

#[tokio::test]
async fn leftovers_seen_by_the_pre_snapshot_are_removed_before_up_and_only_then() {
    let f = Fixture::new(&["web"]);
    f.broker.set_verdict("shop-web", "2", Verdict::Deployable);
    f.compose.add_leftover("web");
    let report = f.deploy(&f.web("2", V2)).await;
    assert_eq!(report.outcome, Outcome::Deployed, "{report:#?}");
    assert_eq!(
        f.mutating_calls(),
        vec![
            format!("pull web policy=Missing pins=web={V2}"),
            "remove_leftovers".to_string(),
            format!("up web pins=web={V2}"),
        ]
    );

    // A clean project costs no leftover lookup at all.
    f.broker.set_verdict("shop-web", "3", Verdict::Deployable);
    let report = f.deploy(&f.web("3", "c2quay-test/web:3")).await;
    assert_eq!(report.outcome, Outcome::Deployed, "{report:#?}");
    let leftover_calls = f
        .compose
        .calls()
        .iter()
        .filter(|c| c.contains("leftovers"))
        .count();
    assert_eq!(leftover_calls, 1, "{:?}", f.compose.calls());
}

/// After a failed deploy of a new generation, `SmokePassed` no longer carries the previous
/// generation's `True`: it says the checks failed, or that they never ran.
#[tokio::test]
async fn a_failed_generation_resets_the_smoke_condition() {
    use c2quay::state::{ConditionStatus, ConditionType};

    let f = Fixture::new(&["web"]);
    let env = f.web("2", V2);
    let now = std::time::SystemTime::now();
    let mut report = pipeline::DeployReport::new("fakes", &env.generation);
    let smoke_of = |status: &EnvironmentStatus| {
        let c = status
            .condition(ConditionType::SmokePassed)
            .expect("SmokePassed");
        (c.status, c.reason.clone())
    };
    let mut status = EnvironmentStatus::new("fakes");
    report.outcome = Outcome::Deployed;
    pipeline::status_after(&mut status, &env, &report, now);
    assert_eq!(
        smoke_of(&status),
        (ConditionStatus::True, "SmokePassed".into())
    );

    for (step, expected) in [
        (
            StepName::Readiness,
            (ConditionStatus::Unknown, "NotRun".to_string()),
        ),
        (
            StepName::Smoke,
            (ConditionStatus::False, "SmokeFailed".to_string()),
        ),
        (
            StepName::Pull,
            (ConditionStatus::Unknown, "NotRun".to_string()),
        ),
    ] {
        report.outcome = Outcome::RolledBack {
            failure: StepFailure::new(step, "boom"),
        };
        pipeline::status_after(&mut status, &env, &report, now);
        assert_eq!(smoke_of(&status), expected, "after a failed {step}");
    }
    report.outcome = Outcome::RollbackFailed {
        failure: StepFailure::new(StepName::Smoke, "boom"),
        rollback: "rollback is off".into(),
    };
    pipeline::status_after(&mut status, &env, &report, now);
    assert_eq!(
        smoke_of(&status),
        (ConditionStatus::False, "SmokeFailed".into())
    );
    assert_eq!(status.phase, Phase::Degraded);
}

/// The agent (`--once`, with fakes) meets an open journal intent while the manifest is broken:
/// it leaves the journal and the containers as they are and says so in status; once the
/// manifest is valid again, the interrupted deploy is recovered and recorded.
#[tokio::test]
async fn an_open_intent_waits_for_a_valid_manifest_then_recovers() {
    use c2quay::agent::{self, Config};

    let f = Fixture::new(&["web"]);
    let env = f.web("2", V2);
    f.compose.set_running("web", V2);
    f.smoke.pass("front");
    f.broker.set_verdict("shop-web", "2", Verdict::Deployable);
    let intent = f.interrupted_v1_to_v2(&env, Step::Ready);
    f.ctx.state.write_intent("fakes", &intent).expect("intent");
    let manifest = f.dir.path().join("fakes.yaml");
    let valid = std::fs::read_to_string(&manifest).expect("manifest");
    std::fs::write(&manifest, valid.replace("version: \"2\"", "version: [2")).expect("break");

    let state = StateDir::open(&f.dir.path().join("state")).expect("state dir");
    let events = pipeline::standard_events(&state, Arc::new(SystemClock), None);
    let ctx = Arc::new(Context {
        compose: f.compose.clone(),
        brokers: FakeBrokers(f.broker.clone()),
        smoke: f.smoke.clone(),
        state,
        clock: Arc::new(SystemClock),
        metrics: None,
        events,
    });
    let mut config = Config::new(f.dir.path().to_path_buf());
    config.once = true;
    config.container_events = false;
    let summary = agent::run(config.clone(), ctx.clone(), std::future::pending())
        .await
        .expect("agent run");
    assert_eq!(summary.phases["fakes"], "Invalid");
    let status = f.status();
    assert!(
        status.message.contains("interrupted Deploy")
            && status.message.contains("left as they are"),
        "{}",
        status.message
    );
    assert!(f.intent_exists(), "the journal is kept");
    assert!(f.mutating_calls().is_empty(), "{:?}", f.compose.calls());
    assert!(f.broker.records().is_empty());

    std::fs::write(&manifest, valid).expect("fix");
    let summary = agent::run(config, ctx, std::future::pending())
        .await
        .expect("agent run");
    assert_eq!(summary.phases["fakes"], "Ready", "{summary:?}");
    assert!(!f.intent_exists());
    assert_eq!(f.broker.records().len(), 1, "recorded exactly once");
    // Resumed: one idempotent `up` with the target pins (Compose leaves a container that
    // already runs them alone), then readiness, smoke and the one record.
    assert_eq!(
        f.ups(),
        vec![format!("up web pins=web={V2}")],
        "resumed once: {:?}",
        f.compose.calls()
    );
}

/// The audit line recovery wrote (step `recover`), as `(outcome, message)`.
fn recover_line(f: &Fixture) -> Option<(String, String)> {
    let events = f.ctx.state.read_audit("fakes").expect("audit");
    (events.into_iter().rev())
        .find(|e| e.step == "recover")
        .map(|e| (e.outcome, e.message))
}

/// Issue 11: a deploy interrupted by an agent restart (here between pull and up: web still
/// runs v1) is resumed, not rolled back: up with the target pins, readiness, smoke, verify, and
/// its record in the outbox. The generation is not marked failed, and the audit log says so.
#[tokio::test]
async fn an_interrupted_deploy_is_resumed_to_the_target_not_rolled_back() {
    use c2quay::pipeline::Recovery;

    let f = Fixture::new(&["web"]);
    let env = f.web("2", V2);
    let intent = f.interrupted_v1_to_v2(&env, Step::Pulled);
    f.ctx.state.write_intent("fakes", &intent).expect("intent");

    let recovery = pipeline::recover(&f.ctx, &env, &f.lock())
        .await
        .expect("recovery");
    assert_eq!(recovery, Recovery::Resumed);
    assert_eq!(f.compose.running_image("web").as_deref(), Some(V2));
    assert_eq!(f.ups(), vec![format!("up web pins=web={V2}")]);
    assert_eq!(f.outbox_len(), 1, "the journaled record is queued once");
    assert!(!f.intent_exists());
    let status = f.status();
    assert_eq!(status.failed_generation, None);
    assert_eq!(
        status.applied_generation.as_deref(),
        Some(env.generation.as_str())
    );
    let (outcome, message) = recover_line(&f).expect("a recover audit line");
    assert_eq!(outcome, "resumed");
    assert!(
        message.contains(&format!(
            "resumed an interrupted deploy of generation {} at step up after a restart",
            env.generation
        )),
        "{message}"
    );

    // Nothing is left to do: the next deploy is up to date and records nothing new.
    let report = f.deploy(&env).await;
    assert_eq!(report.outcome, Outcome::UpToDate, "{report:#?}");
    assert_eq!(f.ups().len(), 1, "no second up");
}

/// A deploy interrupted before its pull is resumed from the pull.
#[tokio::test]
async fn a_deploy_interrupted_before_its_pull_is_resumed_from_the_pull() {
    use c2quay::pipeline::Recovery;

    let f = Fixture::new(&["web"]);
    let env = f.web("2", V2);
    let intent = f.interrupted_v1_to_v2(&env, Step::Started);
    f.ctx.state.write_intent("fakes", &intent).expect("intent");
    let recovery = pipeline::recover(&f.ctx, &env, &f.lock())
        .await
        .expect("recovery");
    assert_eq!(recovery, Recovery::Resumed);
    assert_eq!(
        f.mutating_calls(),
        vec![
            "remove_leftovers".to_string(),
            format!("pull web policy=Missing pins=web={V2}"),
            format!("up web pins=web={V2}"),
        ]
    );
}

/// An intent already resumed `MAX_RESUMES` times (the agent keeps dying during this deploy) is
/// not resumed again: it is rolled back, the generation is failed, and the audit line says why.
#[tokio::test]
async fn the_resume_bound_rolls_back_and_says_why() {
    use c2quay::pipeline::{MAX_RESUMES, Recovery};

    let f = Fixture::new(&["web"]);
    let env = f.web("2", V2);
    f.compose.set_running("web", V2);
    let mut intent = f.interrupted_v1_to_v2(&env, Step::UpDone);
    intent.resumes = MAX_RESUMES;
    f.ctx.state.write_intent("fakes", &intent).expect("intent");

    let recovery = pipeline::recover(&f.ctx, &env, &f.lock())
        .await
        .expect("recovery");
    assert_eq!(recovery, Recovery::RolledBack);
    assert_eq!(f.compose.running_image("web").as_deref(), Some(V1));
    assert_eq!(f.outbox_len(), 0);
    assert!(!f.intent_exists());
    assert_eq!(
        f.status().failed_generation.as_deref(),
        Some(env.generation.as_str())
    );
    let (outcome, message) = recover_line(&f).expect("a recover audit line");
    assert_eq!(outcome, "rolled_back");
    assert!(message.contains("interrupted 4 times"), "{message}");
}

/// Each resume is counted in the journal before it starts, so an agent killed during every
/// resume reaches the bound. Here the resumed release fails readiness and so does the rollback:
/// the intent stays open for the next start, with the resume counted.
#[tokio::test]
async fn each_resume_is_counted_in_the_journal_before_it_runs() {
    use c2quay::pipeline::Recovery;

    let f = Fixture::new(&["web"]);
    let env = f.web("2", V2);
    let intent = f.interrupted_v1_to_v2(&env, Step::Pulled);
    f.ctx.state.write_intent("fakes", &intent).expect("intent");
    f.compose.make_unhealthy(V2);
    f.compose.make_unhealthy(V1);
    let recovery = pipeline::recover(&f.ctx, &env, &f.lock())
        .await
        .expect("recovery");
    assert!(matches!(recovery, Recovery::Failed(_)), "{recovery:?}");
    let open = f.ctx.state.read_intent("fakes").expect("journal");
    assert_eq!(open.map(|i| i.resumes), Some(1));
}

/// An interrupted rollback (the agent was killed while restoring the previous images after a
/// failed release) is finished: the previous images run again and the generation stays failed.
#[tokio::test]
async fn an_interrupted_rollback_is_finished_not_resumed_as_a_deploy() {
    use c2quay::pipeline::Recovery;

    let f = Fixture::new(&["web"]);
    let env = f.web("2", V2);
    f.compose.set_running("web", V2);
    let mut intent = f.interrupted_v1_to_v2(&env, Step::UpDone);
    intent.operation = Operation::Rollback;
    f.ctx.state.write_intent("fakes", &intent).expect("intent");

    let recovery = pipeline::recover(&f.ctx, &env, &f.lock())
        .await
        .expect("recovery");
    assert_eq!(recovery, Recovery::RolledBack);
    assert_eq!(f.compose.running_image("web").as_deref(), Some(V1));
    assert_eq!(f.ups(), vec![format!("up web pins=web={V1}")], "no resume");
    assert_eq!(f.outbox_len(), 0);
    assert_eq!(
        f.status().failed_generation.as_deref(),
        Some(env.generation.as_str())
    );
    let (_, message) = recover_line(&f).expect("a recover audit line");
    assert!(
        message.contains("finished an interrupted rollback"),
        "{message}"
    );
}

/// Issue 12: an undeployment in the outbox is sent as record-undeployment, in order with the
/// deployments: a failed one holds back a younger deployment, and once sent it leaves the
/// outbox, so draining again never undeploys twice.
#[tokio::test]
async fn an_outbox_undeployment_is_sent_once_in_order_with_the_deployments() {
    use c2quay::broker::{Broker as _, Candidate, UndeployOutcome};
    use c2quay::state::RecordKind;

    let f = Fixture::new(&["web"]);
    let env = f.web("2", V2);
    let spec = env.manifest.spec.broker.clone().expect("broker section");
    let instance = spec.application_instance.as_deref();
    let shop_web = Candidate {
        pacticipant: "shop-web".into(),
        version: "2".into(),
    };
    f.broker
        .record_deployment(&spec.environment, &shop_web, instance)
        .await
        .expect("shop-web 2 live");
    let older = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    let undeployment = PendingRecord::undeployment(
        "fakes",
        &env.generation,
        &spec.environment,
        "shop-web",
        "2",
        instance,
        older,
    );
    let deployment = PendingRecord::new(
        "fakes",
        &env.generation,
        &spec.environment,
        "shop-api",
        "7",
        instance,
        older + std::time::Duration::from_secs(1),
    );
    for record in [&undeployment, &deployment] {
        f.ctx.state.outbox_put("fakes", record).expect("queued");
    }

    f.broker.fail_next_undeployments(1);
    let items = pipeline::drain_outbox(&f.ctx, &env).await.expect("drain");
    let seen: Vec<_> = items.iter().map(|i| (i.kind, i.status)).collect();
    assert_eq!(
        seen,
        [
            (RecordKind::Undeployment, RecordStatus::Failed),
            (RecordKind::Deployment, RecordStatus::Failed)
        ]
    );
    assert!(
        items[1]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("waits for the older undeployment record of shop-web 2")),
        "{items:?}"
    );
    assert_eq!(f.broker.records().len(), 1, "the deployment was held back");
    assert!(f.broker.undeployments().is_empty());

    // Due again now (the test does not wait out the retry delay).
    let (pending, _) = f.ctx.state.outbox_list("fakes").expect("outbox");
    for mut record in pending {
        record.next_attempt_at = None;
        f.ctx.state.outbox_update("fakes", &record).expect("update");
    }
    let items = pipeline::drain_outbox(&f.ctx, &env).await.expect("drain");
    let seen: Vec<_> = items.iter().map(|i| (i.kind, i.status)).collect();
    assert_eq!(
        seen,
        [
            (RecordKind::Undeployment, RecordStatus::Recorded),
            (RecordKind::Deployment, RecordStatus::Recorded)
        ]
    );
    assert_eq!(f.outbox_len(), 0);
    assert_eq!(
        f.broker
            .currently_deployed(&spec.environment, "shop-web", instance),
        None
    );
    assert_eq!(
        f.broker
            .currently_deployed(&spec.environment, "shop-api", instance)
            .as_deref(),
        Some("7")
    );
    let undeployments = f.broker.undeployments();
    assert_eq!(undeployments.len(), 1);
    assert_eq!(
        undeployments[0].outcome,
        UndeployOutcome::Undeployed {
            versions: vec!["2".into()]
        }
    );
    assert!(
        pipeline::drain_outbox(&f.ctx, &env)
            .await
            .expect("drain")
            .is_empty()
    );
    assert_eq!(f.broker.undeployments().len(), 1, "exactly once");
}
