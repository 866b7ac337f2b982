//! Table and property tests of the planner.

use std::path::Path;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::*;

const BASE: &str = "\
apiVersion: c2quay.dev/v1
kind: Environment
metadata:
  name: shop
spec:
  compose:
    directory: /srv/shop
  broker:
    url: http://127.0.0.1:9292
    environment: staging
  services:
    web:
      version: \"2\"
      image: c2quay-test/web:{version}
    redis: {}
  policy:
    selfHeal: SELF_HEAL
";

pub(super) fn env(self_heal: bool) -> Environment {
    let text = BASE.replace("SELF_HEAL", if self_heal { "true" } else { "false" });
    parse_str(&text, Path::new("/desired/shop.yaml")).expect("test manifest is valid")
}

/// [`env`] with `policy.sync: manual`, and without `spec.broker` when `broker` is false.
pub(super) fn manual_env(self_heal: bool, broker: bool) -> Environment {
    let mut text = BASE.replace("SELF_HEAL", if self_heal { "true" } else { "false" });
    text = text.replace("  policy:\n", "  policy:\n    sync: manual\n");
    if !broker {
        text = text.replace(
            "  broker:\n    url: http://127.0.0.1:9292\n    environment: staging\n",
            "",
        );
    }
    parse_str(&text, Path::new("/desired/shop.yaml")).expect("test manifest is valid")
}

fn parse_str(text: &str, path: &Path) -> Result<Environment, Vec<crate::manifest::Problem>> {
    crate::manifest::parse_str(text, path)
}

pub(super) fn container(service: &str, image: &str, state: &str, health: &str) -> Container {
    Container {
        id: format!("id-{service}"),
        name: format!("shop-{service}-1"),
        project: "shop".into(),
        service: service.into(),
        image: image.into(),
        image_id: format!("sha256:{image}"),
        state: state.into(),
        health: health.into(),
        exit_code: 0,
        restart_policy: String::new(),
        oom_killed: false,
        config_hash: String::new(),
    }
}

pub(super) fn applied(env: &Environment, version: &str) -> AppliedState {
    let mut state = AppliedState {
        generation: Some(env.generation.clone()),
        ..AppliedState::default()
    };
    state.releases.insert(
        "web".into(),
        AppliedRelease {
            version: Some(version.into()),
            image: format!("c2quay-test/web:{version}"),
            pacticipant: None,
            image_id: None,
        },
    );
    state.releases.insert(
        "redis".into(),
        AppliedRelease {
            version: None,
            image: "redis:7".into(),
            pacticipant: None,
            image_id: None,
        },
    );
    state
}

pub(super) fn healthy(web_image: &str) -> Vec<Container> {
    vec![
        container("web", web_image, "running", "healthy"),
        container("redis", "redis:7", "running", ""),
    ]
}

pub(super) fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

#[test]
fn version_bump_deploys_only_the_changed_service_and_says_why() {
    let env = env(false);
    let plan = plan(
        Desired::Valid(&env),
        None,
        &applied(&env, "1"),
        &healthy("c2quay-test/web:1"),
        now(),
    );
    assert_eq!(
        plan.action,
        Action::Deploy {
            changed: vec!["web".into()],
            removed: vec![]
        }
    );
    assert!(plan.reason.contains("web 1 -> 2"), "{}", plan.reason);
    assert!(
        plan.reason
            .contains("c2quay-test/web:1 -> c2quay-test/web:2"),
        "{}",
        plan.reason
    );
}

#[test]
fn a_local_suspension_holds_its_generation_only() {
    let env = env(false);
    let mut applied = applied(&env, "1");
    applied.suspended_generation = Some(env.generation.clone());
    let observed = healthy("c2quay-test/web:1");
    let held = plan(Desired::Valid(&env), None, &applied, &observed, now());
    assert_eq!(held.action, Action::Suspended, "{}", held.reason);
    assert!(held.reason.contains("c2quay resume"), "{}", held.reason);
    // A commit of another generation ends it: the bump is deployed.
    applied.suspended_generation = Some("an-older-generation".into());
    let bumped = plan(Desired::Valid(&env), None, &applied, &observed, now());
    assert!(matches!(bumped.action, Action::Deploy { .. }), "{bumped:?}");
}

#[test]
fn converged_environment_is_noop() {
    let env = env(false);
    let plan = plan(
        Desired::Valid(&env),
        None,
        &applied(&env, "2"),
        &healthy("c2quay-test/web:2"),
        now(),
    );
    assert_eq!(plan.action, Action::Noop);
}

#[test]
fn first_adoption_of_a_running_release_records_it() {
    let env = env(false);
    let plan = plan(
        Desired::Valid(&env),
        None,
        &AppliedState::default(),
        &healthy("c2quay-test/web:2"),
        now(),
    );
    assert_eq!(
        plan.action,
        Action::Deploy {
            changed: vec!["web".into()],
            removed: vec![]
        }
    );
}

#[test]
fn drift_is_reported_without_self_heal_and_healed_with_it() {
    let observed = vec![container("redis", "redis:7", "running", "")];
    let env_off = env(false);
    let off = plan(
        Desired::Valid(&env_off),
        None,
        &applied(&env_off, "2"),
        &observed,
        now(),
    );
    assert_eq!(
        off.action,
        Action::ReportDrift {
            services: vec!["web".into()]
        }
    );
    assert!(
        off.reason.contains("web: container missing"),
        "{}",
        off.reason
    );

    let env_on = env(true);
    let on = plan(
        Desired::Valid(&env_on),
        None,
        &applied(&env_on, "2"),
        &observed,
        now(),
    );
    assert_eq!(
        on.action,
        Action::Heal {
            services: vec!["web".into()]
        }
    );
}

#[test]
fn unhealthy_and_stopped_containers_are_drift_but_a_finished_job_is_not() {
    let env = env(true);
    let state = applied(&env, "2");
    let unhealthy = vec![
        container("web", "c2quay-test/web:2", "running", "unhealthy"),
        container("redis", "redis:7", "running", ""),
    ];
    assert_eq!(
        plan(Desired::Valid(&env), None, &state, &unhealthy, now()).action,
        Action::Heal {
            services: vec!["web".into()]
        }
    );
    let mut stopped = healthy("c2quay-test/web:2");
    stopped[1].state = "exited".into();
    stopped[1].exit_code = 137;
    let heal_redis = Action::Heal {
        services: vec!["redis".into()],
    };
    assert_eq!(
        plan(Desired::Valid(&env), None, &state, &stopped, now()).action,
        heal_redis
    );
    // Exit 0 of a service that is not a job, whatever its restart policy (`docker stop` of a
    // server that exits 0 on SIGTERM, a server that found "nothing to do"): nothing serves.
    stopped[1].exit_code = 0;
    for policy in ["", "no", "always", "unless-stopped"] {
        stopped[1].restart_policy = policy.into();
        assert_eq!(
            plan(Desired::Valid(&env), None, &state, &stopped, now()).action,
            heal_redis,
            "restart {policy:?}"
        );
    }
    // A job that finished is not drift: declared by Compose (the model) or by the manifest.
    let job_model: RenderedModel = [(
        "redis".to_string(),
        crate::docker::RenderedService {
            job: true,
            ..Default::default()
        },
    )]
    .into_iter()
    .collect();
    assert!(drifted_services(&env, Some(&job_model), &state, &stopped).is_empty());
    let declared = parse_str(
        &BASE
            .replace("SELF_HEAL", "true")
            .replace("    redis: {}", "    redis: { job: true }"),
        Path::new("/desired/shop.yaml"),
    )
    .unwrap();
    assert!(drifted_services(&declared, None, &state, &stopped).is_empty());
    // ... but one with a published port or a healthcheck never is one.
    let mut served = job_model.clone();
    served.get_mut("redis").unwrap().job = false;
    served.get_mut("redis").unwrap().has_ports = true;
    assert_eq!(
        drifted_services(&declared, Some(&served), &state, &stopped).len(),
        1
    );
    stopped[1].exit_code = 137;
    stopped[1].oom_killed = true;
    let drift = drifted_services(&env, None, &state, &stopped);
    assert_eq!(drift[0].1.to_string(), "container exited (137, OOM-killed)");
}

#[test]
fn missing_replicas_are_drift_and_scale_zero_needs_nothing() {
    let env = env(true);
    let state = applied(&env, "2");
    let model = |replicas: u32| -> RenderedModel {
        [(
            "web".to_string(),
            crate::docker::RenderedService {
                replicas: Some(replicas),
                ..Default::default()
            },
        )]
        .into_iter()
        .collect()
    };
    let one_of_two = healthy("c2quay-test/web:2");
    let drift = drifted_services(&env, Some(&model(2)), &state, &one_of_two);
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].1.to_string(), "1 of 2 replicas running");
    let mut two = one_of_two.clone();
    let mut second = two[0].clone();
    second.id = "id-web-2".into();
    second.name = "shop-web-2".into();
    two.push(second);
    assert!(drifted_services(&env, Some(&model(2)), &state, &two).is_empty());
    let none = vec![container("redis", "redis:7", "running", "")];
    assert!(drifted_services(&env, Some(&model(0)), &state, &none).is_empty());
}

#[test]
fn heal_cap_turns_into_degraded() {
    let env = env(true);
    let mut state = applied(&env, "2");
    state.heals = (1..=MAX_HEALS_PER_WINDOW as u64)
        .map(|minutes| now() - Duration::from_secs(minutes * 60))
        .collect();
    let observed = vec![container("redis", "redis:7", "running", "")];
    let plan = plan(Desired::Valid(&env), None, &state, &observed, now());
    assert_eq!(
        plan.action,
        Action::HealCapReached {
            services: vec!["web".into()]
        }
    );
    // Old heals fall out of the window.
    let mut old = applied(&env, "2");
    old.heals = vec![now() - HEAL_WINDOW - Duration::from_secs(1); MAX_HEALS_PER_WINDOW];
    assert!(matches!(
        super::plan(Desired::Valid(&env), None, &old, &observed, now()).action,
        Action::Heal { .. }
    ));
}

#[test]
fn failed_generation_awaits_change_and_a_new_generation_deploys() {
    let env = env(false);
    let mut state = applied(&env, "1");
    state.generation = Some("old".into());
    state.failed_generation = Some(env.generation.clone());
    let plan1 = plan(
        Desired::Valid(&env),
        None,
        &state,
        &healthy("c2quay-test/web:1"),
        now(),
    );
    assert_eq!(plan1.action, Action::AwaitChange);
    assert!(
        plan1.reason.contains("c2quay retry shop"),
        "{}",
        plan1.reason
    );
    state.failed_generation = Some("another".into());
    assert!(matches!(
        plan(
            Desired::Valid(&env),
            None,
            &state,
            &healthy("c2quay-test/web:1"),
            now()
        )
        .action,
        Action::Deploy { .. }
    ));
}

#[test]
fn a_failed_generation_whose_applied_release_does_not_run_is_drift() {
    // The rollback did not complete: `up` left the previous image's container created, not
    // started (a host port taken), or the daemon restart stopped it.
    let mut stopped = healthy("c2quay-test/web:1");
    stopped[0].state = "created".into();
    for (self_heal, want) in [
        (
            true,
            Action::Heal {
                services: vec!["web".into()],
            },
        ),
        (
            false,
            Action::ReportDrift {
                services: vec!["web".into()],
            },
        ),
    ] {
        let env = env(self_heal);
        let mut state = applied(&env, "1");
        state.generation = Some("old".into());
        state.failed_generation = Some(env.generation.clone());
        let plan = plan(Desired::Valid(&env), None, &state, &stopped, now());
        assert_eq!(plan.action, want);
        assert!(
            plan.reason
                .contains("failed and the applied release does not run")
                && plan.reason.contains("web: container created"),
            "{}",
            plan.reason
        );
        // The failed generation's image running instead of the applied one: a rollback that
        // did not happen is drift too.
        let mut new_image = healthy("c2quay-test/web:2");
        new_image[0].state = "running".into();
        assert_eq!(
            super::plan(Desired::Valid(&env), None, &state, &new_image, now()).action,
            plan.action
        );
    }
}

#[test]
fn a_failed_generation_left_in_place_by_rollback_off_is_reported_not_healed() {
    let text = BASE
        .replace("SELF_HEAL", "true")
        .replace("  policy:\n", "  policy:\n    rollback: \"off\"\n");
    let env = parse_str(&text, Path::new("/desired/shop.yaml")).expect("valid");
    let mut state = applied(&env, "1");
    state.generation = Some("old".into());
    state.failed_generation = Some(env.generation.clone());
    let plan = plan(
        Desired::Valid(&env),
        None,
        &state,
        &healthy("c2quay-test/web:2"),
        now(),
    );
    assert_eq!(
        plan.action,
        Action::ReportDrift {
            services: vec!["web".into()]
        },
        "{}",
        plan.reason
    );
    assert!(
        plan.reason.contains("policy.rollback is not on"),
        "{}",
        plan.reason
    );
}

#[test]
fn a_stopped_container_says_how_it_exited() {
    let env = env(false);
    let state = applied(&env, "2");
    let mut observed = healthy("c2quay-test/web:2");
    observed[0].state = "exited".into();
    observed[0].exit_code = 137;
    let plan = plan(Desired::Valid(&env), None, &state, &observed, now());
    assert!(
        plan.reason.contains("web: container exited (137)"),
        "{}",
        plan.reason
    );
}

#[test]
fn invalid_and_suspended_change_nothing() {
    let invalid = plan(
        Desired::Invalid("shop.yaml:3:1: bad"),
        None,
        &AppliedState::default(),
        &[],
        now(),
    );
    assert_eq!(invalid.action, Action::Invalid);
    assert!(invalid.reason.contains("shop.yaml:3:1"));
    let text = BASE
        .replace("SELF_HEAL", "true")
        .replace("  compose:", "  suspend: true\n  compose:");
    let suspended = parse_str(&text, Path::new("/d/shop.yaml")).unwrap();
    assert_eq!(
        plan(
            Desired::Valid(&suspended),
            None,
            &AppliedState::default(),
            &[],
            now()
        )
        .action,
        Action::Suspended
    );
}

#[test]
fn gate_retry_delay_doubles_and_caps() {
    let initial = Duration::from_secs(15);
    let max = Duration::from_secs(600);
    let delays: Vec<u64> = (1..=8)
        .map(|n| gate_retry_delay(initial, max, n).as_secs())
        .collect();
    assert_eq!(delays, vec![15, 30, 60, 120, 240, 480, 600, 600]);
    assert_eq!(gate_retry_delay(initial, max, 200), max);
}

fn arb_container() -> impl Strategy<Value = Container> {
    (
        prop::sample::select(vec!["web", "redis", "other"]),
        prop::sample::select(vec!["c2quay-test/web:1", "c2quay-test/web:2", "redis:7"]),
        prop::sample::select(vec!["running", "exited", "restarting", "dead"]),
        prop::sample::select(vec!["", "healthy", "unhealthy", "starting"]),
        0i64..2,
    )
        .prop_map(|(service, image, state, health, exit_code)| {
            let mut c = container(service, image, state, health);
            c.exit_code = exit_code;
            c
        })
}

proptest! {
    /// The planner is deterministic and total: any observation gives a plan with a reason.
    #[test]
    fn plan_is_deterministic_and_always_explains(
        observed in prop::collection::vec(arb_container(), 0..5),
        applied_version in prop::sample::select(vec!["1", "2"]),
        self_heal in any::<bool>(),
        heals in 0usize..8,
    ) {
        let env = env(self_heal);
        let mut state = applied(&env, applied_version);
        state.heals = vec![now() - Duration::from_secs(5); heals];
        let first = plan(Desired::Valid(&env), None, &state, &observed, now());
        let second = plan(Desired::Valid(&env), None, &state, &observed, now());
        prop_assert_eq!(&first, &second);
        prop_assert!(!first.reason.is_empty());
        // Never heal when self-heal is off, never past the cap.
        if let Action::Heal { .. } = first.action {
            prop_assert!(self_heal && heals < MAX_HEALS_PER_WINDOW);
        }
        // A deploy always names at least one changed service, and only declared ones.
        if let Action::Deploy { changed, .. } = &first.action {
            prop_assert!(!changed.is_empty());
            prop_assert!(changed.iter().all(|s| env.manifest.spec.services.contains_key(s)));
        }
    }

    /// When the desired image runs healthy for every service and it was applied, nothing happens.
    #[test]
    fn converged_is_always_noop(self_heal in any::<bool>(), heals in 0usize..8) {
        let env = env(self_heal);
        let mut state = applied(&env, "2");
        state.heals = vec![now(); heals];
        let plan = plan(Desired::Valid(&env), None, &state, &healthy("c2quay-test/web:2"), now());
        prop_assert_eq!(plan.action, Action::Noop);
    }
}

#[test]
fn a_hotfix_image_run_by_hand_is_drift_not_a_new_release() {
    // Version 2 applied; someone runs another image by hand (`docker compose up` with an extra -f).
    let hotfix = vec![
        container("web", "c2quay-test/web:hotfix", "running", "healthy"),
        container("redis", "redis:7", "running", ""),
    ];
    let reported = plan(
        Desired::Valid(&env(false)),
        None,
        &applied(&env(false), "2"),
        &hotfix,
        now(),
    );
    assert_eq!(
        reported.action,
        Action::ReportDrift {
            services: vec!["web".into()]
        },
        "{}",
        reported.reason
    );
    assert!(
        reported
            .reason
            .contains("runs c2quay-test/web:hotfix instead of c2quay-test/web:2"),
        "{}",
        reported.reason
    );
    let healed = plan(
        Desired::Valid(&env(true)),
        None,
        &applied(&env(true), "2"),
        &hotfix,
        now(),
    );
    assert_eq!(
        healed.action,
        Action::Heal {
            services: vec!["web".into()]
        }
    );
}
