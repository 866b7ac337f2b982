//! The planner's waits: a blocked gate and an apply the host refused.

use std::time::Duration;

use super::tests::{applied, env, healthy, now};
use super::*;

#[test]
fn blocked_gate_waits_until_the_next_check_then_deploys() {
    let env = env(false);
    let mut state = applied(&env, "1");
    state.gate_blocked = Some(GateBlock {
        generation: env.generation.clone(),
        next_check_at: now() + Duration::from_secs(30),
    });
    let waiting = plan(
        Desired::Valid(&env),
        None,
        &state,
        &healthy("c2quay-test/web:1"),
        now(),
    );
    assert!(matches!(waiting.action, Action::WaitForGate { .. }));
    let later = now() + Duration::from_secs(31);
    assert!(matches!(
        plan(
            Desired::Valid(&env),
            None,
            &state,
            &healthy("c2quay-test/web:1"),
            later
        )
        .action,
        Action::Deploy { .. }
    ));
}

#[test]
fn a_generation_the_host_refused_waits_for_its_next_attempt_then_deploys_again() {
    // The applied release (web 1) runs; the desired one (web 2) was refused by the host.
    let env = env(false);
    let mut state = applied(&env, "1");
    state.host_blocked = Some(HostBlocked {
        generation: env.generation.clone(),
        model: None,
        cause: crate::docker::HostCause::AddressPools,
        next_attempt_at: now() + Duration::from_secs(15),
    });
    let running = healthy("c2quay-test/web:1");
    let waiting = plan(Desired::Valid(&env), None, &state, &running, now());
    assert!(
        matches!(waiting.action, Action::WaitForHost { .. }),
        "{waiting:?}"
    );
    assert!(
        waiting.reason.contains("address_pools"),
        "{}",
        waiting.reason
    );
    let later = now() + Duration::from_secs(16);
    let retry = plan(Desired::Valid(&env), None, &state, &running, later);
    assert!(matches!(retry.action, Action::Deploy { .. }), "{retry:?}");
    // A refusal of another generation does not hold this one.
    state.host_blocked.as_mut().unwrap().generation = "another".into();
    let other = plan(Desired::Valid(&env), None, &state, &running, now());
    assert!(matches!(other.action, Action::Deploy { .. }), "{other:?}");
}
