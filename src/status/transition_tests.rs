//! Tests of [`super::transition`].

use super::*;
use crate::pipeline::DeployReport;

#[test]
fn a_noop_plan_is_ready_with_its_reason() {
    let mut status = EnvironmentStatus::new("shop");
    let delay = transition(
        &mut status,
        Cause::Planned {
            action: &Action::Noop,
            reason: "runs as applied",
        },
        SystemTime::UNIX_EPOCH,
    );
    assert_eq!(status.phase, Phase::Ready);
    assert_eq!(status.message, "runs as applied");
    assert_eq!(delay, None);
}

#[test]
fn a_transient_error_keeps_the_phase_and_requeues() {
    let mut status = EnvironmentStatus::new("shop");
    status.phase = Phase::Ready;
    let delay = transition(
        &mut status,
        Cause::TransientError {
            step: "observe",
            message: "docker is down",
        },
        SystemTime::UNIX_EPOCH,
    );
    assert_eq!(status.phase, Phase::Ready);
    assert_eq!(status.message, "observe: docker is down");
    assert_eq!(delay, Some(TRANSIENT_RETRY));
}

#[test]
fn an_unanswered_observation_is_unknown_never_ready_and_requeues() {
    let mut status = EnvironmentStatus::new("shop");
    status.phase = Phase::Ready;
    let delay = transition(
        &mut status,
        Cause::DockerUnreachable {
            message: "connection refused",
        },
        SystemTime::UNIX_EPOCH,
    );
    assert_eq!(status.phase, Phase::Unknown);
    assert!(
        status.message.contains("connection refused"),
        "{}",
        status.message
    );
    let docker = status.condition(ConditionType::DockerReachable).unwrap();
    assert_eq!(docker.status, ConditionStatus::False);
    assert_eq!(docker.reason, "DockerUnreachable");
    assert_eq!(delay, Some(TRANSIENT_RETRY));
    crate::status::refresh_conditions(&mut status, SystemTime::UNIX_EPOCH);
    let ready = status.condition(ConditionType::Ready).unwrap();
    assert_eq!(
        (ready.status, ready.reason.as_str()),
        (ConditionStatus::False, "Unknown")
    );
}

#[test]
fn a_ready_environment_has_no_condition_left_from_an_earlier_failure() {
    let mut status = EnvironmentStatus::new("shop");
    let failed_at = SystemTime::UNIX_EPOCH;
    let ready_at = failed_at + Duration::from_secs(60);
    status.applied_generation = Some("g1".into());
    status.set_condition(
        ConditionType::Gated,
        ConditionStatus::True,
        "Deployable",
        "",
        failed_at,
    );
    status.set_condition(
        ConditionType::Applied,
        ConditionStatus::False,
        "RolledBack",
        "smoke failed",
        failed_at,
    );
    status.set_condition(
        ConditionType::SmokePassed,
        ConditionStatus::False,
        "SmokeFailed",
        "smoke failed",
        failed_at,
    );
    // A revert to the release that runs: the plan is a no-op, no deploy sets conditions.
    transition(
        &mut status,
        Cause::Planned {
            action: &Action::Noop,
            reason: "generation g1 is applied and every service runs",
        },
        ready_at,
    );
    crate::status::refresh_conditions(&mut status, ready_at);
    for type_ in [
        ConditionType::Ready,
        ConditionType::Applied,
        ConditionType::SmokePassed,
    ] {
        let condition = status.condition(type_).unwrap();
        assert_eq!(condition.status, ConditionStatus::True, "{type_:?}");
        assert_eq!(condition.last_transition_time, ready_at, "{type_:?}");
    }
    let gated = status.condition(ConditionType::Gated).unwrap();
    assert_eq!(
        (gated.reason.as_str(), gated.last_transition_time),
        ("Deployable", failed_at)
    );
    assert!(
        status
            .condition(ConditionType::Applied)
            .unwrap()
            .message
            .contains("g1")
    );
}

fn shop() -> Environment {
    let text = "apiVersion: c2quay.dev/v1\nkind: Environment\nmetadata:\n  name: shop\nspec:\n  compose:\n    directory: /srv/shop\n  services:\n    web:\n      version: \"2\"\n      image: c2quay-test/web:{version}\n";
    crate::manifest::parse_str(text, std::path::Path::new("/desired/shop.yaml")).unwrap()
}

fn refused(cause: Option<crate::docker::HostCause>) -> DeployReport {
    let env = shop();
    let mut report = DeployReport::new(env.name(), &env.generation);
    report.outcome = Outcome::RolledBack {
        failure: pipeline::StepFailure::new(
            crate::events::StepName::Up,
            "failed to create network shop_default: could not find an available, non-overlapping IPv4 address pool",
        )
        .with_host(cause),
    };
    report
}

#[test]
fn an_apply_the_host_refused_is_host_blocked_with_backoff_never_a_failed_generation() {
    let env = shop();
    let mut status = EnvironmentStatus::new("shop");
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    let report = refused(Some(crate::docker::HostCause::AddressPools));
    let first = transition(
        &mut status,
        Cause::DeployEnded {
            env: &env,
            report: &report,
        },
        now,
    );
    assert_eq!(status.phase, Phase::HostBlocked);
    assert_eq!(status.failed_generation, None, "not a failed release");
    assert_eq!(first, Some(crate::status::HOST_RETRY_FIRST));
    for part in [
        "address_pools",
        "non-overlapping",
        "default-address-pools",
        "not a failed release",
    ] {
        assert!(
            status.message.contains(part),
            "{part} in {}",
            status.message
        );
    }
    let applied = status.condition(ConditionType::Applied).unwrap();
    assert_eq!(
        (applied.status, applied.reason.as_str()),
        (ConditionStatus::False, "HostRefused")
    );
    // Each refusal of the same generation doubles the wait, up to the cap.
    let second = transition(
        &mut status,
        Cause::DeployEnded {
            env: &env,
            report: &report,
        },
        now,
    );
    assert_eq!(second, Some(crate::status::HOST_RETRY_FIRST * 2));
    assert_eq!(status.host_block.as_ref().unwrap().attempts, 2);
    assert_eq!(
        crate::status::host_retry_delay(40),
        crate::status::HOST_RETRY_MAX
    );
    assert_eq!(report.outcome.name(), "host_blocked");
    // The same failure without a host cause is the release's: rolled back and held.
    let mut other = EnvironmentStatus::new("shop");
    transition(
        &mut other,
        Cause::DeployEnded {
            env: &env,
            report: &refused(None),
        },
        now,
    );
    assert_eq!(other.phase, Phase::RolledBack);
    assert_eq!(
        other.failed_generation.as_deref(),
        Some(env.generation.as_str())
    );
}

#[test]
fn waiting_for_the_gate_requeues_at_the_next_check() {
    let mut status = EnvironmentStatus::new("shop");
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
    let delay = transition(
        &mut status,
        Cause::Planned {
            action: &Action::WaitForGate {
                next_check_at: now + Duration::from_secs(30),
            },
            reason: "gate",
        },
        now,
    );
    assert_eq!(status.phase, Phase::GateBlocked);
    assert_eq!(delay, Some(Duration::from_secs(30)));
}

#[test]
fn a_removed_manifest_is_orphaned() {
    let mut status = EnvironmentStatus::new("shop");
    transition(
        &mut status,
        Cause::Orphaned {
            environment: "shop",
            project: Some("shop-prod"),
        },
        SystemTime::UNIX_EPOCH,
    );
    assert_eq!(status.phase, Phase::Orphaned);
    assert!(status.message.contains("shop was removed"));
    assert!(
        status.message.contains("docker compose -p shop-prod down"),
        "{}",
        status.message
    );
}

fn answered(verdict: crate::broker::Verdict, reason: &str) -> DeployReport {
    let env = shop();
    let mut report = DeployReport::new(env.name(), &env.generation);
    report.gate = vec![pipeline::GateEntry {
        candidates: vec![crate::broker::Candidate {
            pacticipant: "web".into(),
            version: "2".into(),
        }],
        answer: crate::broker::GateAnswer {
            verdict,
            reason: reason.into(),
            success: 0,
            failed: 0,
            unknown: 1,
            failing_rows: Vec::new(),
        },
    }];
    report
}

#[test]
fn a_held_change_is_out_of_sync_with_the_plan_and_the_brokers_answer_and_backs_off() {
    use crate::broker::Verdict;
    let env = shop();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    let reason = "policy.sync is manual: generation g (web 1 -> 2) is not applied";
    let mut status = EnvironmentStatus::new("shop");
    let no = answered(Verdict::Unknown, "no verification of web 2");
    let out_of_sync = |gate| Cause::OutOfSync {
        env: &env,
        reason,
        gate,
    };
    let delay = transition(&mut status, out_of_sync(GateCheck::Answered(&no)), now);
    assert_eq!(status.phase, Phase::OutOfSync);
    assert_eq!(delay, Some(Duration::from_secs(15)), "gateRetry.initial");
    for said in ["web 1 -> 2", "not deployable", "no verification of web 2"] {
        assert!(status.message.contains(said), "{said}: {}", status.message);
    }
    let gated = status.condition(ConditionType::Gated).unwrap();
    assert_eq!(
        (gated.status, gated.reason.as_str()),
        (ConditionStatus::False, "GateBlocked")
    );
    assert_eq!(status.gate_blocked_generation, Some(env.generation.clone()));

    // Within the backoff: not asked, the last answer stands, the rest of the wait remains.
    let later = now + Duration::from_secs(5);
    let delay = transition(&mut status, out_of_sync(GateCheck::Kept), later);
    assert_eq!(status.phase, Phase::OutOfSync);
    assert_eq!(delay, Some(Duration::from_secs(10)));
    assert!(
        status.message.contains("no verification of web 2"),
        "{}",
        status.message
    );

    // A second "no" doubles the wait.
    let again = now + Duration::from_secs(16);
    let delay = transition(&mut status, out_of_sync(GateCheck::Answered(&no)), again);
    assert_eq!(delay, Some(Duration::from_secs(30)));

    // "Yes": still out of sync (a person applies it), the backoff is cleared, and the answer
    // is refreshed after gateRetry.max.
    let yes = answered(Verdict::Deployable, "all verified");
    let delay = transition(&mut status, out_of_sync(GateCheck::Answered(&yes)), again);
    assert_eq!(status.phase, Phase::OutOfSync);
    assert_eq!(delay, Some(Duration::from_secs(600)));
    assert!(status.message.contains("deployable"), "{}", status.message);
    assert_eq!(status.gate_blocked_generation, None);
    assert_eq!(status.next_gate_check_at, None);
    let gated = status.condition(ConditionType::Gated).unwrap();
    assert_eq!(gated.status, ConditionStatus::True);
}

#[test]
fn a_held_configuration_change_has_nothing_to_ask() {
    let env = shop();
    let mut status = EnvironmentStatus::new("shop");
    let reason = "policy.sync is manual: generation g (web: environment) is not applied";
    let delay = transition(
        &mut status,
        Cause::OutOfSync {
            env: &env,
            reason,
            gate: GateCheck::NotNeeded,
        },
        SystemTime::UNIX_EPOCH,
    );
    assert_eq!(
        (status.phase, status.message.as_str()),
        (Phase::OutOfSync, reason)
    );
    assert_eq!(delay, None);
}
