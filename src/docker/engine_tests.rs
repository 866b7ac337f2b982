//! Tests of the pure mapping of Engine API answers into [`Container`].

use bollard::models::{
    ContainerConfig, ContainerState, ContainerStateStatusEnum, ContainerSummaryStateEnum, Health,
    HealthStatusEnum, HostConfig, RestartPolicy, RestartPolicyNameEnum,
};

use super::*;

fn summary(state: ContainerSummaryStateEnum, status: &str, image: &str) -> ContainerSummary {
    ContainerSummary {
        id: Some("a1b2".repeat(16)),
        names: Some(vec!["/shop-web-1".into()]),
        image: Some(image.into()),
        image_id: Some("sha256:1111".into()),
        labels: Some(HashMap::from([
            (PROJECT_LABEL.to_string(), "shop".to_string()),
            (SERVICE_LABEL.to_string(), "web".to_string()),
        ])),
        state: Some(state),
        status: Some(status.into()),
        ..Default::default()
    }
}

#[test]
fn a_running_container_is_described_by_the_list_answer_alone() {
    let c = container_from_summary(&summary(
        ContainerSummaryStateEnum::RUNNING,
        "Up 3 minutes (healthy)",
        "c2quay-test/web:1",
    ));
    assert_eq!(
        c,
        Container {
            id: "a1b2".repeat(16),
            name: "shop-web-1".into(),
            project: "shop".into(),
            service: "web".into(),
            image: "c2quay-test/web:1".into(),
            image_id: "sha256:1111".into(),
            state: "running".into(),
            health: "healthy".into(),
            exit_code: 0,
            restart_policy: String::new(),
            oom_killed: false,
            config_hash: String::new(),
        }
    );
    assert!(!needs_inspect(&c));
}

#[test]
fn status_text_gives_health_and_exit_code() {
    let cases = [
        ("Up 2 seconds (health: starting)", "starting", None),
        ("Up 5 minutes (unhealthy)", "unhealthy", None),
        ("Up 5 minutes", "", None),
        ("Up 5 minutes (Paused)", "", None),
        ("Exited (137) 4 seconds ago", "", Some(137)),
        ("Restarting (1) 2 seconds ago", "", Some(1)),
        ("Created", "", None),
    ];
    for (status, health, exit) in cases {
        assert_eq!(health_of_status(status).as_str(), health, "{status}");
        assert_eq!(exit_code_of_status(status), exit, "{status}");
    }
}

#[test]
fn stopped_containers_and_moved_tags_need_an_inspect() {
    let exited = container_from_summary(&summary(
        ContainerSummaryStateEnum::EXITED,
        "Exited (1) 2 seconds ago",
        "web:1",
    ));
    assert_eq!((exited.state.as_str(), exited.exit_code), ("exited", 1));
    assert!(needs_inspect(&exited));
    // The tag moved on: the list names the image id; only inspect knows the reference.
    let moved = container_from_summary(&summary(
        ContainerSummaryStateEnum::RUNNING,
        "Up 1 second",
        "sha256:1111",
    ));
    assert!(needs_inspect(&moved));
}

#[test]
fn inspect_fills_reference_policy_oom_and_health() {
    let listed = container_from_summary(&summary(
        ContainerSummaryStateEnum::EXITED,
        "Exited (137) 1 second ago",
        "sha256:1111",
    ));
    let inspected = ContainerInspectResponse {
        id: Some("a1b2".repeat(16)),
        name: Some("/shop-web-1".into()),
        image: Some("sha256:2222".into()),
        config: Some(ContainerConfig {
            image: Some("web:2".into()),
            ..Default::default()
        }),
        state: Some(ContainerState {
            status: Some(ContainerStateStatusEnum::EXITED),
            exit_code: Some(137),
            oom_killed: Some(true),
            health: Some(Health {
                status: Some(HealthStatusEnum::UNHEALTHY),
                ..Default::default()
            }),
            ..Default::default()
        }),
        host_config: Some(HostConfig {
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let c = merge_inspect(listed, &inspected);
    assert_eq!(c.image, "web:2");
    assert_eq!(c.image_id, "sha256:2222");
    assert_eq!(
        (c.state.as_str(), c.exit_code, c.oom_killed),
        ("exited", 137, true)
    );
    assert_eq!(c.restart_policy, "unless-stopped");
    assert_eq!(c.health.as_str(), "unhealthy");
}

#[test]
fn the_list_asks_for_every_state_of_one_project_without_one_offs() {
    let options = list_options(Some("shop"));
    assert!(options.all);
    assert_eq!(
        options.filters.unwrap()["label"],
        vec![
            "com.docker.compose.project=shop".to_string(),
            "com.docker.compose.oneoff=False".to_string()
        ]
    );
    assert_eq!(
        list_options(None).filters.unwrap()["label"][0],
        "com.docker.compose.project"
    );
}
