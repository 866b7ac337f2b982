//! Unit tests of the metrics module: rendering, types, the one-hot phase, forgetting.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

/// One sample of the text exposition: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the samples of a text exposition (our label values never contain `,` or `"`).
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').expect("key=value");
                    (key.to_owned(), value.trim_matches('"').to_owned())
                })
                .collect();
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().expect("a number"),
            }
        })
        .collect()
}

/// The value of the one series with exactly these labels (ignoring other labels' absence).
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = samples(text)
        .into_iter()
        .filter(|sample| {
            sample.name == name
                && labels.len() == sample.labels.len()
                && labels
                    .iter()
                    .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(value))
        })
        .map(|sample| sample.value)
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} appears twice");
    found.first().copied()
}

/// Uses every helper once for environment `env`.
fn touch_everything(metrics: &Metrics, env: &str) {
    metrics.set_phase(env, "Progressing");
    metrics.observe_step(env, Step::Up, Duration::from_millis(1500));
    drop(metrics.step_timer(env, Step::Smoke));
    metrics.observe_gate_check(env, GateResult::Deployable);
    metrics.set_gate_blocked(env, false);
    metrics.observe_rollback(env, Outcome::Succeeded);
    metrics.set_drift_detected(env, true);
    metrics.observe_heal(env);
    metrics.set_pending_records(env, 2);
    metrics.observe_record(env, Outcome::Failed);
    metrics.observe_broker_request("POST", Some(201), Duration::from_millis(20));
    metrics.observe_reconcile(env, ReconcileResult::Deployed, Duration::from_secs(12));
    metrics.set_manifest_errors(env, 0);
    metrics.set_phase(env, "Ready");
    metrics.init_git_sync();
    metrics.observe_git_sync(crate::git::sync::SyncResult::Failed, SystemTime::now());
    metrics.set_desired_revision_time(SystemTime::now());
}

#[test]
fn every_documented_metric_is_rendered_with_its_type_and_help() {
    let metrics = Metrics::new().expect("metrics");
    touch_everything(&metrics, "shop-production");
    let text = metrics.render();
    for (name, kind) in DOCUMENTED_METRICS {
        if name.starts_with("process_") && !cfg!(target_os = "linux") {
            continue;
        }
        assert!(
            text.contains(&format!("\n# TYPE {name} {kind}\n"))
                || text.starts_with(&format!("# TYPE {name} {kind}\n")),
            "`# TYPE {name} {kind}` missing from:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no help for {name}"
        );
    }
    // Nothing is exported that the documentation does not list.
    for line in text.lines().filter(|line| line.starts_with("# TYPE ")) {
        let name = line.split(' ').nth(2).expect("a name");
        assert!(
            DOCUMENTED_METRICS
                .iter()
                .any(|(documented, _)| *documented == name),
            "{name} is exported but not in DOCUMENTED_METRICS"
        );
    }
}

#[test]
fn helpers_set_the_values_they_name() {
    let metrics = Metrics::new().expect("metrics");
    touch_everything(&metrics, "shop");
    let text = metrics.render();
    let env = ("environment", "shop");
    assert_eq!(
        value(
            &text,
            "c2quay_reconcile_total",
            &[env, ("result", "deployed")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "c2quay_reconcile_total",
            &[env, ("result", "failed")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(&text, "c2quay_reconcile_duration_seconds_sum", &[env]),
        Some(12.0)
    );
    assert_eq!(
        value(
            &text,
            "c2quay_step_duration_seconds_count",
            &[env, ("step", "up")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "c2quay_step_duration_seconds_count",
            &[env, ("step", "smoke")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "c2quay_rollbacks_total",
            &[env, ("result", "succeeded")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "c2quay_records_total", &[env, ("result", "failed")]),
        Some(1.0)
    );
    assert_eq!(value(&text, "c2quay_pending_records", &[env]), Some(2.0));
    assert_eq!(value(&text, "c2quay_drift_detected", &[env]), Some(1.0));
    assert_eq!(value(&text, "c2quay_heals_total", &[env]), Some(1.0));
    assert_eq!(
        value(
            &text,
            "c2quay_broker_requests_total",
            &[("method", "POST"), ("status", "201")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "c2quay_build_info",
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("commit", env!("C2QUAY_GIT_COMMIT")),
                ("build_date", env!("C2QUAY_BUILD_DATE")),
            ]
        ),
        Some(1.0)
    );
    let last_success = value(&text, "c2quay_last_success_timestamp_seconds", &[env]).expect("set");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    assert!(
        (now - last_success).abs() < 60.0,
        "last success {last_success} is not now {now}"
    );
}

#[test]
fn phase_is_one_hot_and_drives_ready() {
    let metrics = Metrics::new().expect("metrics");
    metrics.set_phase("shop", "Progressing");
    metrics.set_phase("shop", "RolledBack");
    metrics.set_phase("shop", "Orphaned-typo");
    let text = metrics.render();
    let ones: Vec<String> = samples(&text)
        .into_iter()
        .filter(|sample| sample.name == "c2quay_environment_phase" && sample.value == 1.0)
        .map(|sample| sample.labels["phase"].clone())
        .collect();
    assert_eq!(ones, ["RolledBack"]);
    let phases = samples(&text)
        .into_iter()
        .filter(|sample| sample.name == "c2quay_environment_phase")
        .count();
    assert_eq!(
        phases,
        PHASES.len(),
        "every phase is exported, the unknown one is not"
    );
    assert_eq!(
        value(
            &text,
            "c2quay_environment_ready",
            &[("environment", "shop")]
        ),
        Some(0.0)
    );

    metrics.set_phase("shop", "Ready");
    let text = metrics.render();
    assert_eq!(
        value(
            &text,
            "c2quay_environment_ready",
            &[("environment", "shop")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "c2quay_environment_phase",
            &[("environment", "shop"), ("phase", "RolledBack")]
        ),
        Some(0.0)
    );
}

#[test]
fn a_new_environment_starts_pending_with_zeroed_counters() {
    let metrics = Metrics::new().expect("metrics");
    metrics.init_environment("shop");
    let text = metrics.render();
    let env = ("environment", "shop");
    assert_eq!(
        value(
            &text,
            "c2quay_environment_phase",
            &[env, ("phase", "Pending")]
        ),
        Some(1.0)
    );
    for outcome in Outcome::ALL {
        assert_eq!(
            value(
                &text,
                "c2quay_rollbacks_total",
                &[env, ("result", outcome.as_str())]
            ),
            Some(0.0),
            "a 0 sample lets increase() see the first rollback"
        );
    }
    assert_eq!(value(&text, "c2quay_gate_blocked", &[env]), Some(0.0));
    assert_eq!(
        value(&text, "c2quay_last_success_timestamp_seconds", &[env]),
        None
    );
    // Initialising again does not reset the phase.
    metrics.set_phase("shop", "Ready");
    metrics.init_environment("shop");
    let text = metrics.render();
    assert_eq!(
        value(
            &text,
            "c2quay_environment_phase",
            &[env, ("phase", "Ready")]
        ),
        Some(1.0)
    );
}

#[test]
fn forget_environment_removes_every_series_of_that_environment_only() {
    let metrics = Metrics::new().expect("metrics");
    touch_everything(&metrics, "gone");
    touch_everything(&metrics, "kept");
    metrics.forget_environment("gone");
    let text = metrics.render();
    let left: Vec<String> = samples(&text)
        .into_iter()
        .filter(|sample| sample.labels.get("environment").map(String::as_str) == Some("gone"))
        .map(|sample| sample.name)
        .collect();
    assert!(
        left.is_empty(),
        "series left for a forgotten environment: {left:?}"
    );
    assert_eq!(
        value(
            &text,
            "c2quay_environment_ready",
            &[("environment", "kept")]
        ),
        Some(1.0)
    );
    // It comes back cleanly when its manifest reappears.
    metrics.set_phase("gone", "Pending");
    let text = metrics.render();
    assert_eq!(
        value(
            &text,
            "c2quay_rollbacks_total",
            &[("environment", "gone"), ("result", "succeeded")]
        ),
        Some(0.0)
    );
}

#[test]
fn gate_blocked_exports_since_when() {
    let metrics = Metrics::new().expect("metrics");
    let since = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    metrics.set_gate_blocked_since("shop", Some(since));
    let text = metrics.render();
    let env = ("environment", "shop");
    assert_eq!(value(&text, "c2quay_gate_blocked", &[env]), Some(1.0));
    assert_eq!(
        value(&text, "c2quay_gate_blocked_since_timestamp_seconds", &[env]),
        Some(1_700_000_000.0)
    );
    // A blocked gate reported again keeps the time it closed.
    metrics.set_gate_blocked("shop", true);
    let text = metrics.render();
    assert_eq!(
        value(&text, "c2quay_gate_blocked_since_timestamp_seconds", &[env]),
        Some(1_700_000_000.0)
    );
    metrics.set_gate_blocked("shop", false);
    let text = metrics.render();
    assert_eq!(value(&text, "c2quay_gate_blocked", &[env]), Some(0.0));
    assert_eq!(
        value(&text, "c2quay_gate_blocked_since_timestamp_seconds", &[env]),
        Some(0.0)
    );
    // Closing again without a known time stamps it with now.
    metrics.set_gate_blocked("shop", true);
    let text = metrics.render();
    let since = value(&text, "c2quay_gate_blocked_since_timestamp_seconds", &[env]).expect("set");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    assert!(
        (now - since).abs() < 60.0,
        "blocked since {since}, now {now}"
    );
}

#[test]
fn broker_labels_stay_in_closed_sets() {
    let metrics = Metrics::new().expect("metrics");
    metrics.observe_broker_request("get", Some(503), Duration::from_millis(5));
    metrics.observe_broker_request("BREW /coffee", Some(200), Duration::from_millis(5));
    metrics.observe_broker_request("GET", None, Duration::from_secs(10));
    metrics.observe_broker_request("GET", Some(1234), Duration::from_millis(5));
    let text = metrics.render();
    let labels: Vec<(String, String)> = samples(&text)
        .into_iter()
        .filter(|sample| sample.name == "c2quay_broker_requests_total")
        .map(|sample| {
            (
                sample.labels["method"].clone(),
                sample.labels["status"].clone(),
            )
        })
        .collect();
    for expected in [
        ("GET", "503"),
        ("other", "200"),
        ("GET", "error"),
        ("GET", "invalid"),
    ] {
        assert!(
            labels.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} not in {labels:?}"
        );
    }
    assert_eq!(labels.len(), 4);
    assert_eq!(
        value(
            &text,
            "c2quay_broker_request_duration_seconds_count",
            &[("method", "GET")]
        ),
        Some(3.0)
    );
}

#[test]
fn two_instances_do_not_share_state() {
    let first = Metrics::new().expect("metrics");
    let second = Metrics::new().expect("a second registry does not collide");
    first.observe_heal("shop");
    let text = second.render();
    assert_eq!(
        value(&text, "c2quay_heals_total", &[("environment", "shop")]),
        None
    );
    assert!(
        first
            .render()
            .contains("c2quay_heals_total{environment=\"shop\"} 1")
    );
}

#[test]
fn label_sets_are_closed_and_distinct() {
    let steps: Vec<&str> = Step::ALL.iter().map(|step| step.as_str()).collect();
    assert_eq!(
        steps,
        [
            "snapshot",
            "plan",
            "gate",
            "pull",
            "up",
            "readiness",
            "smoke",
            "verify",
            "record",
            "rollback",
            "heal"
        ]
    );
    let results: BTreeSet<&str> = ReconcileResult::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(results.len(), ReconcileResult::ALL.len());
    let gate: Vec<&str> = GateResult::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(gate, ["deployable", "not_deployable", "unknown", "error"]);
    assert_eq!(
        Error::Register {
            metric: "x",
            source: prometheus::Error::AlreadyReg
        }
        .kind(),
        "register"
    );
}

#[test]
fn a_recovery_event_counts_by_result_from_zero() {
    use crate::events::{EventSink, PipelineEvent, RecoveryResult, Scope, StepName};

    let metrics = Metrics::new().expect("metrics");
    metrics.init_environment("shop");
    let env = ("environment", "shop");
    for result in RecoveryResult::ALL {
        let text = metrics.render();
        assert_eq!(
            value(
                &text,
                "c2quay_recoveries_total",
                &[env, ("result", result.as_str())]
            ),
            Some(0.0)
        );
    }
    let scope = Scope {
        environment: "shop".into(),
        generation: "g2".into(),
        revision: None,
    };
    metrics.emit(
        &scope,
        &PipelineEvent::Recovered {
            result: RecoveryResult::Resumed,
            generation: "g2".into(),
            step: StepName::Up,
            message: "resumed".into(),
        },
    );
    let text = metrics.render();
    assert_eq!(
        value(
            &text,
            "c2quay_recoveries_total",
            &[env, ("result", "resumed")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "c2quay_recoveries_total",
            &[env, ("result", "rolled_back")]
        ),
        Some(0.0)
    );
}

#[test]
fn a_state_error_is_never_ready_and_clears_when_the_state_is_written_again() {
    let metrics = Metrics::new().unwrap();
    let env = [("environment", "shop")];
    metrics.set_phase("shop", "Ready");
    metrics.set_state_error("shop", true);
    let text = metrics.render();
    assert_eq!(value(&text, "c2quay_state_error", &env), Some(1.0));
    assert_eq!(value(&text, "c2quay_environment_ready", &env), Some(0.0));

    metrics.set_phase("shop", "Ready");
    metrics.set_state_error("shop", false);
    let text = metrics.render();
    assert_eq!(value(&text, "c2quay_state_error", &env), Some(0.0));
    assert_eq!(value(&text, "c2quay_environment_ready", &env), Some(1.0));

    metrics.observe_docker(false, Duration::from_millis(1500));
    let text = metrics.render();
    assert_eq!(value(&text, "c2quay_docker_up", &[]), Some(0.0));
    assert_eq!(
        value(&text, "c2quay_docker_list_duration_seconds", &[]),
        Some(1.5)
    );
}

#[test]
fn the_sync_series_exist_only_once_the_agent_syncs() {
    let metrics = Metrics::new().expect("metrics");
    let text = metrics.render();
    assert!(
        !text.contains("c2quay_git_sync_last_success_timestamp_seconds "),
        "{text}"
    );
    assert!(!text.contains("c2quay_git_sync_total{"), "{text}");
    metrics.init_git_sync();
    let text = metrics.render();
    assert!(
        text.contains("c2quay_git_sync_last_success_timestamp_seconds 0\n"),
        "{text}"
    );
    assert!(
        text.contains("c2quay_git_sync_total{result=\"failed\"} 0\n"),
        "{text}"
    );
    metrics.observe_git_sync(crate::git::sync::SyncResult::Diverged, UNIX_EPOCH);
    metrics.observe_git_sync(
        crate::git::sync::SyncResult::UpToDate,
        UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    );
    let text = metrics.render();
    assert!(
        text.contains("c2quay_git_sync_total{result=\"diverged\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("c2quay_git_sync_last_success_timestamp_seconds 1700000000\n"),
        "{text}"
    );
}
