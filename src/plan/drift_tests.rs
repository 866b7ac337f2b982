//! The planner's drift judge over every container state x service kind (job / long-running,
//! healthcheck / none, replicas): which ones are drift, and how it is named.

use super::tests::{applied, env};
use super::*;
use crate::docker::RenderedService;

fn model(service: RenderedService) -> RenderedModel {
    [("redis".to_string(), service)].into_iter().collect()
}

fn web_and(redis: Vec<Container>) -> Vec<Container> {
    let mut all = vec![super::tests::healthy("c2quay-test/web:2")[0].clone()];
    all.extend(redis);
    all
}

fn redis(state: &str, health: &str, exit: i64, n: usize) -> Container {
    let mut c = super::tests::healthy("c2quay-test/web:2")[1].clone();
    c.state = state.into();
    c.health = health.into();
    c.exit_code = exit;
    c.id = format!("id-redis-{n}");
    c.name = format!("shop-redis-{n}");
    c
}

#[test]
fn every_state_and_kind() {
    let env = env(false);
    let state = applied(&env, "2");
    let job = RenderedService {
        job: true,
        ..Default::default()
    };
    let server = RenderedService::default();
    let checked = RenderedService {
        has_healthcheck: true,
        ..Default::default()
    };
    let two = RenderedService {
        replicas: Some(2),
        ..Default::default()
    };
    // (kind, containers of redis, expected drift of redis or None)
    let cases: Vec<(&str, &RenderedService, Vec<Container>, Option<&str>)> = vec![
        ("job", &job, vec![redis("exited", "", 0, 1)], None),
        (
            "job",
            &job,
            vec![redis("exited", "", 3, 1)],
            Some("container exited (3)"),
        ),
        ("job", &job, vec![redis("running", "", 0, 1)], None),
        ("job", &job, vec![], Some("container missing")),
        ("server", &server, vec![redis("running", "", 0, 1)], None),
        (
            "server",
            &server,
            vec![redis("exited", "", 0, 1)],
            Some("container exited (0)"),
        ),
        (
            "server",
            &server,
            vec![redis("exited", "", 137, 1)],
            Some("container exited (137)"),
        ),
        (
            "server",
            &server,
            vec![redis("restarting", "", 1, 1)],
            Some("container restarting (1)"),
        ),
        (
            "server",
            &server,
            vec![redis("created", "", 0, 1)],
            Some("container created"),
        ),
        ("server", &server, vec![], Some("container missing")),
        (
            "checked",
            &checked,
            vec![redis("running", "healthy", 0, 1)],
            None,
        ),
        (
            "checked",
            &checked,
            vec![redis("running", "unhealthy", 0, 1)],
            Some("container unhealthy"),
        ),
        (
            "checked",
            &checked,
            vec![redis("exited", "", 0, 1)],
            Some("container exited (0)"),
        ),
        (
            "replicas",
            &two,
            vec![redis("running", "", 0, 1), redis("running", "", 0, 2)],
            None,
        ),
        (
            "replicas",
            &two,
            vec![redis("running", "", 0, 1)],
            Some("1 of 2 replicas running"),
        ),
        (
            "replicas",
            &two,
            vec![redis("running", "", 0, 1), redis("exited", "", 137, 2)],
            Some("1 of 2 replicas running"),
        ),
    ];
    for (kind, service, containers, want) in cases {
        let observed = web_and(containers.clone());
        let rendered = model(service.clone());
        let drift = drifted_services(&env, Some(&rendered), &state, &observed);
        let got = drift
            .iter()
            .find(|(s, _)| s == "redis")
            .map(|(_, d)| d.to_string());
        let states: Vec<String> = containers
            .iter()
            .map(|c| format!("{} {} {}", c.state, c.health, c.exit_code))
            .collect();
        assert_eq!(got.as_deref(), want, "{kind}: {states:?}");
    }
}
