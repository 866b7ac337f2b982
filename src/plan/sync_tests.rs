//! The planner under `policy.sync: manual` (issue 21 item 1), and [`plan_requested`].

use std::time::Duration;

use super::tests::{applied, container, env, healthy, manual_env, now};
use super::*;

fn planned(env: &Environment, state: &AppliedState, observed: &[Container]) -> Plan {
    plan(Desired::Valid(env), None, state, observed, now())
}

fn requested(env: &Environment, state: &AppliedState, observed: &[Container]) -> Plan {
    plan_requested(Desired::Valid(env), None, state, observed, now())
}

#[test]
fn a_manual_environment_holds_a_new_release_out_of_sync_and_asks_the_gate() {
    let env = manual_env(false, true);
    let plan = planned(&env, &applied(&env, "1"), &healthy("c2quay-test/web:1"));
    assert_eq!(
        plan.action,
        Action::OutOfSync {
            changed: vec!["web".into()],
            removed: vec![],
            gate: GateQuestion::Ask,
        }
    );
    assert!(
        plan.reason.contains("policy.sync is manual"),
        "{}",
        plan.reason
    );
    assert!(plan.reason.contains("web 1 -> 2"), "{}", plan.reason);
    assert!(
        plan.reason.contains("c2quay deploy shop"),
        "{}",
        plan.reason
    );
}

#[test]
fn a_requested_reconcile_deploys_what_a_manual_environment_holds() {
    let env = manual_env(false, true);
    let plan = requested(&env, &applied(&env, "1"), &healthy("c2quay-test/web:1"));
    assert_eq!(
        plan.action,
        Action::Deploy {
            changed: vec!["web".into()],
            removed: vec![]
        }
    );
}

#[test]
fn the_read_only_gate_check_of_a_manual_environment_keeps_the_gate_backoff() {
    let env = manual_env(false, true);
    let mut state = applied(&env, "1");
    let next = now() + Duration::from_secs(30);
    state.gate_blocked = Some(GateBlock {
        generation: env.generation.clone(),
        next_check_at: next,
    });
    let running = healthy("c2quay-test/web:1");
    // Not GateBlocked: held by the policy, the broker's last answer standing until `next`.
    let waiting = planned(&env, &state, &running);
    assert!(
        matches!(
            waiting.action,
            Action::OutOfSync {
                gate: GateQuestion::Wait { next_check_at },
                ..
            } if next_check_at == next
        ),
        "{waiting:?}"
    );
    let later = plan(
        Desired::Valid(&env),
        None,
        &state,
        &running,
        next + Duration::from_secs(1),
    );
    assert!(
        matches!(
            later.action,
            Action::OutOfSync {
                gate: GateQuestion::Ask,
                ..
            }
        ),
        "{later:?}"
    );
    // A block of another generation is not this one's backoff.
    state.gate_blocked.as_mut().unwrap().generation = "another".into();
    assert!(matches!(
        planned(&env, &state, &running).action,
        Action::OutOfSync {
            gate: GateQuestion::Ask,
            ..
        }
    ));
}

#[test]
fn without_a_broker_a_manual_environment_has_nothing_to_ask() {
    let env = manual_env(false, false);
    let plan = planned(&env, &applied(&env, "1"), &healthy("c2quay-test/web:1"));
    assert!(
        matches!(
            plan.action,
            Action::OutOfSync {
                gate: GateQuestion::NotNeeded,
                ..
            }
        ),
        "{plan:?}"
    );
}

#[test]
fn a_requested_reconcile_does_not_wait_out_the_gate_backoff() {
    let env = env(false);
    let mut state = applied(&env, "1");
    state.gate_blocked = Some(GateBlock {
        generation: env.generation.clone(),
        next_check_at: now() + Duration::from_secs(30),
    });
    let running = healthy("c2quay-test/web:1");
    assert!(matches!(
        planned(&env, &state, &running).action,
        Action::WaitForGate { .. }
    ));
    assert!(matches!(
        requested(&env, &state, &running).action,
        Action::Deploy { .. }
    ));
}

#[test]
fn a_requested_reconcile_still_waits_for_a_new_commit_after_a_failure_and_for_resume() {
    let env = manual_env(false, true);
    let running = healthy("c2quay-test/web:1");
    let mut state = applied(&env, "1");
    state.failed_generation = Some(env.generation.clone());
    assert_eq!(
        requested(&env, &state, &running).action,
        Action::AwaitChange
    );
    let mut state = applied(&env, "1");
    state.suspended_generation = Some(env.generation.clone());
    assert_eq!(requested(&env, &state, &running).action, Action::Suspended);
}

#[test]
fn drift_of_the_applied_release_is_healed_while_a_change_is_held() {
    let env = manual_env(true, true);
    let state = applied(&env, "1");
    let mut running = healthy("c2quay-test/web:1");
    running[0] = container("web", "c2quay-test/web:1", "exited", "");
    running[0].exit_code = 137;
    let plan = planned(&env, &state, &running);
    assert_eq!(
        plan.action,
        Action::Heal {
            services: vec!["web".into()]
        },
        "{plan:?}"
    );
    assert!(
        plan.reason.contains("waits to be applied"),
        "{}",
        plan.reason
    );
    // Without selfHeal: reported, still not deployed.
    let env = manual_env(false, true);
    let state = applied(&env, "1");
    assert!(matches!(
        planned(&env, &state, &running).action,
        Action::ReportDrift { .. }
    ));
}

#[test]
fn a_manual_environment_never_applied_is_out_of_sync_not_healed() {
    // Nothing applied and nothing running: the first release waits for a person too.
    let env = manual_env(true, true);
    let plan = planned(&env, &AppliedState::default(), &[]);
    assert!(matches!(plan.action, Action::OutOfSync { .. }), "{plan:?}");
}

#[test]
fn a_manual_environment_that_runs_what_is_desired_is_a_noop() {
    let env = manual_env(false, true);
    let plan = planned(&env, &applied(&env, "2"), &healthy("c2quay-test/web:2"));
    assert_eq!(plan.action, Action::Noop, "{plan:?}");
}

#[test]
fn an_apply_someone_asked_for_that_the_host_refused_is_retried_not_held() {
    let env = manual_env(false, true);
    let mut state = applied(&env, "1");
    state.host_blocked = Some(HostBlocked {
        generation: env.generation.clone(),
        model: None,
        cause: crate::docker::HostCause::AddressPools,
        next_attempt_at: now() + Duration::from_secs(15),
    });
    let running = healthy("c2quay-test/web:1");
    assert!(matches!(
        planned(&env, &state, &running).action,
        Action::WaitForHost { .. }
    ));
    let later = plan(
        Desired::Valid(&env),
        None,
        &state,
        &running,
        now() + Duration::from_secs(16),
    );
    assert!(matches!(later.action, Action::Deploy { .. }), "{later:?}");
}

#[test]
fn the_sync_policy_is_in_the_schema_and_auto_keeps_every_older_generation() {
    // `sync: auto` is not written out, so adding the field changed no generation.
    let auto = env(false);
    let json = serde_json::to_value(&auto.manifest).unwrap();
    assert!(json["spec"]["policy"].get("sync").is_none(), "{json}");
    let manual = manual_env(false, true);
    assert_ne!(auto.generation, manual.generation);
    let schema = crate::manifest::json_schema().to_string();
    assert!(schema.contains("\"manual\""), "{schema}");
}
