//! Tests of [`FakeCompose`](super::FakeCompose): its state, failure switches and events.
use super::*;

fn project() -> Project {
    Project {
        name: "shop".into(),
        directory: "/srv/shop".into(),
        files: vec!["/srv/shop/compose.yaml".into()],
    }
}

fn pins(service: &str, image: &str) -> ImagePins {
    ImagePins::from([(service.to_string(), image.to_string())])
}

#[tokio::test]
async fn up_runs_pins_and_readiness_follows_images() {
    let fake = FakeCompose::new("shop").with_service("web", "web:1");
    let p = project();
    let web = vec!["web".to_string()];
    let model = fake.config(&p).await.unwrap();
    fake.up(
        &p,
        &model,
        &pins("web", "web:2"),
        &web,
        &UpOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(fake.running_image("web").as_deref(), Some("web:2"));
    fake.wait_ready(
        &p,
        &model,
        &web,
        Duration::from_secs(1),
        Duration::ZERO,
        &crate::docker::no_progress,
    )
    .await
    .unwrap();
    let ps = fake.ps(&p).await.unwrap();
    assert_eq!(ps[0].image_id, fake_image_id("web:2"));

    fake.make_unhealthy("web:bad");
    fake.up(
        &p,
        &model,
        &pins("web", "web:bad"),
        &web,
        &UpOptions::default(),
    )
    .await
    .unwrap();
    let err = fake
        .wait_ready(
            &p,
            &model,
            &web,
            Duration::ZERO,
            Duration::ZERO,
            &crate::docker::no_progress,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "not_ready");
    assert!(
        err.to_string().contains("web: running (unhealthy)"),
        "{err}"
    );

    // Rollback by image id.
    let id = fake_image_id("web:2");
    fake.up(&p, &model, &pins("web", &id), &web, &UpOptions::default())
        .await
        .unwrap();
    assert_eq!(fake.ps(&p).await.unwrap()[0].image_id, id);
    fake.wait_ready(
        &p,
        &model,
        &web,
        Duration::from_secs(1),
        Duration::ZERO,
        &crate::docker::no_progress,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn injected_failures_change_nothing() {
    let fake = FakeCompose::new("shop").with_service("web", "web:1");
    let p = project();
    let web = vec!["web".to_string()];
    let model = fake.config(&p).await.unwrap();
    fake.fail_next_pull("manifest unknown");
    let err = fake
        .pull_with_policy(&p, &model, &pins("web", "web:9"), &web, PullPolicy::Missing)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("manifest unknown"));
    fake.pull_with_policy(&p, &model, &pins("web", "web:9"), &web, PullPolicy::Missing)
        .await
        .unwrap();
    let before = fake.containers();
    fake.fail_next_up("port is already allocated");
    assert!(
        fake.up(
            &p,
            &model,
            &pins("web", "web:9"),
            &web,
            &UpOptions::default()
        )
        .await
        .is_err()
    );
    assert_eq!(fake.containers(), before);
    assert_eq!(
        fake.up(&p, &model, &ImagePins::new(), &[], &UpOptions::default())
            .await
            .unwrap_err()
            .kind(),
        "invalid"
    );
    let missing = fake
        .up(
            &p,
            &model,
            &ImagePins::new(),
            &["db".to_string()],
            &UpOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), "missing_service");
    assert_eq!(fake.calls()[1], "pull web policy=Missing pins=web=web:9");
}

#[tokio::test]
async fn leftovers_are_reported_then_removed() {
    let fake = FakeCompose::new("shop").with_service("web", "web:1");
    fake.add_leftover("web");
    let p = project();
    let found = fake.leftovers(&p).await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(
        super::super::parse::is_leftover_name(&found[0].name),
        "{}",
        found[0].name
    );
    assert_eq!(fake.remove_leftovers(&p).await.unwrap().len(), 1);
    assert!(fake.leftovers(&p).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_job_exit_zero_is_done_and_crash_fails() {
    let fake = FakeCompose::new("shop");
    fake.define(
        "migrate",
        RenderedService {
            image: Some("m:1".into()),
            has_build: false,
            restart: None,
            has_healthcheck: false,
            job: true,
            ..Default::default()
        },
    );
    fake.set_running("migrate", "m:1");
    fake.set_state("migrate", "exited", 0);
    let p = project();
    let m = vec!["migrate".to_string()];
    let model = fake.config(&p).await.unwrap();
    fake.wait_ready(
        &p,
        &model,
        &m,
        Duration::from_secs(1),
        Duration::ZERO,
        &crate::docker::no_progress,
    )
    .await
    .unwrap();
    fake.make_crashing("m:2");
    fake.up(
        &p,
        &model,
        &pins("migrate", "m:2"),
        &m,
        &UpOptions::default(),
    )
    .await
    .unwrap();
    let err = fake
        .wait_ready(
            &p,
            &model,
            &m,
            Duration::from_secs(1),
            Duration::ZERO,
            &crate::docker::no_progress,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("migrate: exited (1)"), "{err}");
}

fn with_healthcheck(fake: &FakeCompose, service: &str, image: &str) {
    fake.define(
        service,
        RenderedService {
            image: Some(image.into()),
            has_build: false,
            restart: Some("unless-stopped".into()),
            has_healthcheck: true,
            ..Default::default()
        },
    );
    fake.set_running(service, image);
    fake.set_health(service, "starting");
}

fn observations(fake: &FakeCompose) -> usize {
    fake.calls().iter().filter(|c| *c == "ps").count()
}

#[tokio::test(start_paused = true)]
async fn readiness_reacts_to_the_health_event_not_to_a_poll() {
    let fake = FakeCompose::new("shop");
    with_healthcheck(&fake, "web", "web:1");
    let p = project();
    let model = fake.config(&p).await.unwrap();
    let later = fake.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        later.set_health("web", "healthy");
    });
    let start = tokio::time::Instant::now();
    let web = vec!["web".to_string()];
    let seen = fake
        .wait_ready(
            &p,
            &model,
            &web,
            Duration::from_secs(30),
            Duration::ZERO,
            &crate::docker::no_progress,
        )
        .await
        .unwrap();
    assert_eq!(seen[0].health.as_str(), "healthy");
    // Paused clock: the loop woke at the event (300 ms), before its 1 s safety poll.
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    assert_eq!(observations(&fake), 2, "{:?}", fake.calls());
}

#[tokio::test(start_paused = true)]
async fn a_never_healthy_service_fails_at_the_deadline_naming_it() {
    let fake = FakeCompose::new("shop");
    with_healthcheck(&fake, "web", "web:1");
    with_healthcheck(&fake, "api", "api:1");
    fake.set_health("api", "healthy");
    let p = project();
    let model = fake.config(&p).await.unwrap();
    let both = vec!["api".to_string(), "web".to_string()];
    let err = fake
        .wait_ready(
            &p,
            &model,
            &both,
            Duration::from_secs(5),
            Duration::ZERO,
            &crate::docker::no_progress,
        )
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("web: running (health: starting)"), "{msg}");
    assert!(!msg.contains("api:"), "{msg}");
    assert!(msg.contains("fake logs of web"), "{msg}");
    // No events: one look, then the safety poll about once a second until the deadline.
    let looks = observations(&fake);
    assert!((5..=7).contains(&looks), "{looks} observations");
}

#[tokio::test(start_paused = true)]
async fn a_crash_during_the_wait_fails_at_once() {
    let fake = FakeCompose::new("shop");
    with_healthcheck(&fake, "web", "web:1");
    let p = project();
    let model = fake.config(&p).await.unwrap();
    let later = fake.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        later.set_state("web", "exited", 3);
    });
    let start = tokio::time::Instant::now();
    let err = fake
        .wait_ready(
            &p,
            &model,
            &["web".to_string()],
            Duration::from_secs(60),
            Duration::ZERO,
            &crate::docker::no_progress,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("web: exited (3)"), "{err}");
    assert_eq!(start.elapsed(), Duration::from_millis(200));
}

#[tokio::test]
async fn events_of_other_projects_are_not_delivered() {
    let fake = FakeCompose::new("shop").with_service("web", "web:1");
    let mut mine = fake.events(Some("shop")).await.unwrap();
    let mut others = fake.events(Some("blog")).await.unwrap();
    fake.set_state("web", "exited", 1);
    let event = futures_util::StreamExt::next(&mut mine)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (event.service.as_str(), event.action.as_str()),
        ("web", "die")
    );
    use futures_util::FutureExt;
    assert!(
        futures_util::StreamExt::next(&mut others)
            .now_or_never()
            .is_none()
    );
}

#[tokio::test]
async fn a_service_without_healthcheck_that_dies_inside_min_ready_is_not_ready() {
    let fake = FakeCompose::new("shop").with_service("web", "w:1");
    let p = project();
    let web = vec!["web".to_string()];
    let model = fake.config(&p).await.unwrap();
    // Stable for the whole window: ready, after the window.
    fake.wait_ready(
        &p,
        &model,
        &web,
        Duration::from_secs(5),
        Duration::from_millis(300),
        &crate::docker::no_progress,
    )
    .await
    .unwrap();
    // Dies and is restarted (restart policy) inside the window: a `die` event, not ready.
    let flapping = fake.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        flapping.set_state("web", "exited", 1);
        flapping.set_state("web", "running", 0);
    });
    let err = fake
        .wait_ready(
            &p,
            &model,
            &web,
            Duration::from_secs(5),
            Duration::from_secs(2),
            &crate::docker::no_progress,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("web: died within policy.minReady"),
        "{err}"
    );
    // A zero window keeps the first ready verdict.
    fake.wait_ready(
        &p,
        &model,
        &web,
        Duration::from_secs(5),
        Duration::ZERO,
        &crate::docker::no_progress,
    )
    .await
    .unwrap();
}
