//! c2quay's own readiness decision (not `up --wait` alone, see docker/compose#10596): pure,
//! table-tested. The adapter polls `ps` and calls [`evaluate`] until it is ready, failed, or
//! the deadline turns "still waiting" into a failure.

use super::parse::is_leftover_name;
use super::{Container, ContainerState, Health, RenderedModel};

/// The readiness of a set of services at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadinessVerdict {
    /// Every service is running (and healthy when it has a healthcheck) or a finished one-shot.
    Ready,
    /// Some services are not ready yet: (service, state) in service order.
    Waiting(Vec<(String, String)>),
    /// Some services failed for good: (service, state) in service order. Takes precedence over waiting.
    Failed(Vec<(String, String)>),
}

/// One container's contribution.
enum One {
    Ok,
    Wait(String),
    Fail(String),
}

/// Whether Docker starts a container of this restart policy again after it exited 0.
fn restarts_after_exit_0(restart: Option<&str>) -> bool {
    matches!(restart, Some("always" | "unless-stopped"))
}

fn judge(c: &Container, job: bool, restarts: bool) -> One {
    use ContainerState as S;
    match c.state {
        S::Running if job => One::Wait("running (a job: waiting for it to finish)".into()),
        S::Running => match c.health {
            Health::None | Health::Healthy => One::Ok,
            Health::Starting => One::Wait("running (health: starting)".into()),
            Health::Unhealthy => One::Wait("running (unhealthy)".into()),
        },
        S::Exited if c.exit_code == 0 && job => One::Ok,
        S::Exited if c.exit_code == 0 && restarts => {
            One::Wait("exited (0) but its restart policy keeps it running".into())
        }
        // Not a job: a server that exits 0 at start ("nothing to do", a bad flag) serves nothing.
        S::Exited if c.exit_code == 0 => One::Fail(
            "exited (0): not a job (declare one with `job: true` or a `service_completed_successfully` dependency), so nothing serves"
                .into(),
        ),
        S::Exited => One::Fail(format!("exited ({})", c.exit_code)),
        S::Restarting => One::Fail(format!("restarting (last exit code {})", c.exit_code)),
        S::Dead => One::Fail("dead".into()),
        S::Paused => One::Fail("paused".into()),
        S::Unknown => One::Wait("unknown state".into()),
        other => One::Wait(other.to_string()),
    }
}

/// Decides the readiness of `services` from `containers` (any project's; filtered by service
/// name, leftovers of interrupted recreates ignored) and the rendered `model` (restart policy).
pub fn evaluate(
    services: &[String],
    containers: &[Container],
    model: &RenderedModel,
) -> ReadinessVerdict {
    let mut waiting = Vec::new();
    let mut failed = Vec::new();
    for service in services {
        let rendered = model.get(service);
        let job = rendered.is_some_and(|m| m.job);
        let wanted = rendered.map_or(1, |m| m.wanted_replicas());
        let restarts = restarts_after_exit_0(rendered.and_then(|m| m.restart.as_deref()));
        let mine: Vec<&Container> = containers
            .iter()
            .filter(|c| &c.service == service && !is_leftover_name(&c.name))
            .collect();
        if wanted == 0 {
            // Scaled to zero: nothing has to run.
            continue;
        }
        if mine.is_empty() {
            waiting.push((service.clone(), "no container".to_string()));
            continue;
        }
        let running = mine.iter().filter(|c| c.state.is_running()).count();
        let mut wait: Option<String> = None;
        let mut fail: Option<String> = None;
        for c in mine {
            match judge(c, job, restarts) {
                One::Ok => {}
                One::Wait(s) => wait = wait.or(Some(s)),
                One::Fail(s) => fail = fail.or(Some(s)),
            }
        }
        if let Some(s) = fail {
            failed.push((service.clone(), s));
        } else if let Some(s) = wait {
            waiting.push((service.clone(), s));
        } else if !job && running < wanted as usize {
            waiting.push((
                service.clone(),
                format!("{running} of {wanted} replicas running"),
            ));
        }
    }
    if !failed.is_empty() {
        ReadinessVerdict::Failed(failed)
    } else if !waiting.is_empty() {
        ReadinessVerdict::Waiting(waiting)
    } else {
        ReadinessVerdict::Ready
    }
}

#[cfg(test)]
mod tests {
    use super::super::RenderedService;
    use super::*;

    fn c(service: &str, state: &str, health: &str, exit: i64) -> Container {
        Container {
            id: format!("id-{service}"),
            name: format!("shop-{service}-1"),
            project: "shop".into(),
            service: service.into(),
            image: "img".into(),
            image_id: "sha256:1".into(),
            state: state.into(),
            health: health.into(),
            exit_code: exit,
            restart_policy: String::new(),
            oom_killed: false,
            config_hash: String::new(),
        }
    }

    fn model_of(restart: Option<&str>, job: bool) -> RenderedModel {
        let mut m = RenderedModel::new();
        m.insert(
            "s".into(),
            RenderedService {
                restart: restart.map(str::to_string),
                job,
                ..Default::default()
            },
        );
        m
    }

    fn model(restart: Option<&str>) -> RenderedModel {
        model_of(restart, false)
    }

    fn v(
        state: &str,
        health: &str,
        exit: i64,
        restart: Option<&str>,
        job: bool,
    ) -> ReadinessVerdict {
        evaluate(
            &["s".to_string()],
            &[c("s", state, health, exit)],
            &model_of(restart, job),
        )
    }

    fn wait(s: &str) -> ReadinessVerdict {
        ReadinessVerdict::Waiting(vec![("s".into(), s.into())])
    }

    fn fail(s: &str) -> ReadinessVerdict {
        ReadinessVerdict::Failed(vec![("s".into(), s.into())])
    }

    const NOT_A_JOB: &str = "exited (0): not a job (declare one with `job: true` or a `service_completed_successfully` dependency), so nothing serves";

    /// state, health, exit code, restart policy, job, verdict.
    type Case = (
        &'static str,
        &'static str,
        i64,
        Option<&'static str>,
        bool,
        ReadinessVerdict,
    );

    /// Every container state x service kind (job / long-running, restart policy).
    #[test]
    fn table() {
        let always = Some("always");
        let cases: Vec<Case> = vec![
            ("running", "", 0, always, false, ReadinessVerdict::Ready),
            ("running", "", 0, None, false, ReadinessVerdict::Ready),
            (
                "running",
                "healthy",
                0,
                always,
                false,
                ReadinessVerdict::Ready,
            ),
            (
                "running",
                "starting",
                0,
                always,
                false,
                wait("running (health: starting)"),
            ),
            (
                "running",
                "unhealthy",
                0,
                always,
                false,
                wait("running (unhealthy)"),
            ),
            (
                "running",
                "",
                0,
                None,
                true,
                wait("running (a job: waiting for it to finish)"),
            ),
            ("exited", "", 0, Some("no"), true, ReadinessVerdict::Ready),
            ("exited", "", 0, None, true, ReadinessVerdict::Ready),
            (
                "exited",
                "",
                0,
                Some("on-failure:3"),
                true,
                ReadinessVerdict::Ready,
            ),
            // A server without a restart line that exits 0 at start is not "done".
            ("exited", "", 0, None, false, fail(NOT_A_JOB)),
            ("exited", "", 0, Some("no"), false, fail(NOT_A_JOB)),
            (
                "exited",
                "",
                0,
                Some("on-failure:3"),
                false,
                fail(NOT_A_JOB),
            ),
            (
                "exited",
                "",
                0,
                Some("unless-stopped"),
                false,
                wait("exited (0) but its restart policy keeps it running"),
            ),
            ("exited", "", 2, Some("no"), true, fail("exited (2)")),
            ("exited", "", 2, Some("no"), false, fail("exited (2)")),
            ("exited", "", 137, always, false, fail("exited (137)")),
            (
                "restarting",
                "",
                1,
                always,
                false,
                fail("restarting (last exit code 1)"),
            ),
            ("dead", "", 0, always, false, fail("dead")),
            ("paused", "", 0, always, false, fail("paused")),
            ("created", "", 0, always, false, wait("created")),
            ("created", "", 0, None, true, wait("created")),
        ];
        for (state, health, exit, restart, job, want) in cases {
            assert_eq!(
                v(state, health, exit, restart, job),
                want,
                "{state} {health} {exit} {restart:?} job={job}"
            );
        }
    }

    #[test]
    fn missing_container_waits_and_leftovers_do_not_count() {
        let mut leftover = c("s", "running", "", 0);
        leftover.name = "0123456789ab_shop-s-1".into();
        assert_eq!(
            evaluate(&["s".to_string()], &[leftover], &model(None)),
            wait("no container")
        );
        assert_eq!(
            evaluate(&["s".to_string()], &[], &model(None)),
            wait("no container")
        );
    }

    #[test]
    fn failure_wins_over_waiting_and_order_follows_services() {
        let services = vec!["a".to_string(), "b".to_string(), "s".to_string()];
        let cs = vec![
            c("s", "exited", "", 1),
            c("a", "running", "starting", 0),
            c("b", "dead", "", 0),
        ];
        assert_eq!(
            evaluate(&services, &cs, &model(Some("always"))),
            ReadinessVerdict::Failed(vec![
                ("b".into(), "dead".into()),
                ("s".into(), "exited (1)".into())
            ])
        );
    }

    #[test]
    fn every_replica_must_be_ready() {
        let cs = vec![
            c("s", "running", "healthy", 0),
            c("s", "running", "starting", 0),
        ];
        assert_eq!(
            evaluate(&["s".to_string()], &cs, &model(Some("always"))),
            wait("running (health: starting)")
        );
    }
}
