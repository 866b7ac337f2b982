//! Planner tests of the rendered Compose model as desired state: configuration changes, added
//! and removed services, state from before config tracking, hand re-created containers.

use serde_json::json;

use super::tests::{applied, env, healthy, now};
use super::*;
use crate::docker::{RenderedService, ServiceConfig};

/// A model of `web` and `redis` with `web`'s environment `GREETING: greeting`.
fn model(greeting: &str) -> RenderedModel {
    let service = |config: serde_json::Value| RenderedService {
        config: ServiceConfig::of(&config),
        ..RenderedService::default()
    };
    [
        (
            "web".to_string(),
            service(json!({"environment": {"GREETING": greeting}, "ports": [{"target": 8080}]})),
        ),
        (
            "redis".to_string(),
            service(json!({"command": ["redis-server"]})),
        ),
    ]
    .into_iter()
    .collect()
}

/// The applied state of version 2 with `model`'s configuration, as record_applied leaves it.
fn applied_with(env: &Environment, model: &RenderedModel) -> AppliedState {
    let mut state = applied(env, "2");
    state.configs = model
        .iter()
        .map(|(service, rendered)| {
            let config = AppliedConfig {
                hash: rendered.config.hash.clone(),
                fields: rendered.config.fields.clone(),
                compose_hash: Some(format!("compose-{service}")),
            };
            (service.clone(), config)
        })
        .collect();
    state
}

fn labelled(mut containers: Vec<Container>) -> Vec<Container> {
    for c in &mut containers {
        c.config_hash = format!("compose-{}", c.service);
    }
    containers
}

#[test]
fn an_environment_variable_change_deploys_that_service_naming_the_field() {
    let env = env(false);
    let applied = applied_with(&env, &model("one"));
    let running = labelled(healthy("c2quay-test/web:2"));
    let plan = plan(
        Desired::Valid(&env),
        Some(&model("two")),
        &applied,
        &running,
        now(),
    );
    assert_eq!(
        plan.action,
        Action::Deploy {
            changed: vec!["web".into()],
            removed: vec![]
        }
    );
    assert!(plan.reason.contains("web: environment"), "{}", plan.reason);
    let changes = changes(&env, Some(&model("two")), &applied, &running);
    assert!(
        changes.configs.contains_key("web"),
        "a configuration change of web"
    );
    assert!(
        changes.releases.is_empty(),
        "no version changed: no gate, no record"
    );
}

#[test]
fn the_same_model_is_noop_and_no_model_compares_releases_only() {
    let env = env(false);
    let applied = applied_with(&env, &model("one"));
    let running = labelled(healthy("c2quay-test/web:2"));
    let same = plan(
        Desired::Valid(&env),
        Some(&model("one")),
        &applied,
        &running,
        now(),
    );
    assert_eq!(same.action, Action::Noop, "{}", same.reason);
    let unrendered = plan(Desired::Valid(&env), None, &applied, &running, now());
    assert_eq!(unrendered.action, Action::Noop);
}

#[test]
fn added_and_removed_services_are_changes() {
    let env = env(false);
    let applied = applied_with(&env, &model("one"));
    let running = labelled(healthy("c2quay-test/web:2"));
    let mut grown = model("one");
    grown.insert(
        "worker".into(),
        RenderedService {
            config: ServiceConfig::of(&json!({"command": ["work"]})),
            ..RenderedService::default()
        },
    );
    let added = plan(
        Desired::Valid(&env),
        Some(&grown),
        &applied,
        &running,
        now(),
    );
    assert_eq!(
        added.action,
        Action::Deploy {
            changed: vec!["worker".into()],
            removed: vec![]
        }
    );
    assert!(
        added.reason.contains("worker: new service"),
        "{}",
        added.reason
    );

    let mut applied_worker = applied_with(&env, &grown);
    applied_worker.releases.insert(
        "worker".into(),
        AppliedRelease {
            version: Some("7".into()),
            image: "c2quay-test/web:1".into(),
            pacticipant: Some("worker-service".into()),
            image_id: None,
        },
    );
    let removed = plan(
        Desired::Valid(&env),
        Some(&model("one")),
        &applied_worker,
        &running,
        now(),
    );
    assert_eq!(
        removed.action,
        Action::Deploy {
            changed: vec![],
            removed: vec!["worker".into()]
        }
    );
    assert!(
        removed.reason.contains("worker: removed"),
        "{}",
        removed.reason
    );
}

#[test]
fn state_from_before_config_tracking_adopts_what_runs() {
    let env = env(false);
    // A release applied, no configuration recorded: an upgrade of c2quay, not a change.
    let legacy = applied(&env, "2");
    let running = healthy("c2quay-test/web:2");
    let plan = plan(
        Desired::Valid(&env),
        Some(&model("two")),
        &legacy,
        &running,
        now(),
    );
    assert_eq!(plan.action, Action::Noop, "{}", plan.reason);
    // Nothing applied at all: every service of the model is applied on the first deploy.
    let first = changes(
        &env,
        Some(&model("two")),
        &AppliedState::default(),
        &running,
    );
    assert_eq!(first.configs.len(), 2);
}

#[test]
fn a_container_recreated_by_hand_with_another_configuration_is_drift() {
    let env = env(true);
    let applied = applied_with(&env, &model("one"));
    let mut running = labelled(healthy("c2quay-test/web:2"));
    running[0].config_hash = "someone-ran-compose-up".into();
    let plan = plan(
        Desired::Valid(&env),
        Some(&model("one")),
        &applied,
        &running,
        now(),
    );
    assert_eq!(
        plan.action,
        Action::Heal {
            services: vec!["web".into()]
        }
    );
    assert!(
        plan.reason.contains("another configuration"),
        "{}",
        plan.reason
    );
    // No label recorded (older state) or none on the container: not judged.
    let mut unlabelled = running.clone();
    unlabelled[0].config_hash.clear();
    assert_eq!(
        super::plan(
            Desired::Valid(&env),
            Some(&model("one")),
            &applied,
            &unlabelled,
            now()
        )
        .action,
        Action::Noop
    );
}

#[test]
fn a_failed_config_change_waits_but_a_new_model_is_tried() {
    let env = env(false);
    let mut state = applied_with(&env, &model("one"));
    state.failed_generation = Some(env.generation.clone());
    state.failed_model = Some(model_hash(&model("two")));
    let running = labelled(healthy("c2quay-test/web:2"));
    let waiting = plan(
        Desired::Valid(&env),
        Some(&model("two")),
        &state,
        &running,
        now(),
    );
    assert_eq!(waiting.action, Action::AwaitChange, "{}", waiting.reason);
    let fixed = plan(
        Desired::Valid(&env),
        Some(&model("three")),
        &state,
        &running,
        now(),
    );
    assert!(
        matches!(fixed.action, Action::Deploy { .. }),
        "a fix of the Compose file alone is a new release: {}",
        fixed.reason
    );
}
