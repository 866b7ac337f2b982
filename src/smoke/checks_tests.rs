//! Tests of the real checks against a local axum server on 127.0.0.1:0 and real processes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

use super::*;
use crate::manifest::DurationSpec;

fn base(name: &str) -> SmokeCheck {
    SmokeCheck {
        name: name.into(),
        http: None,
        tcp: None,
        exec: None,
        timeout: Some(DurationSpec(Duration::from_secs(2))),
        attempts: None,
        interval: Some(DurationSpec(Duration::from_millis(50))),
    }
}

fn http(url: String, status: Option<u16>, body: Option<&str>) -> SmokeCheck {
    SmokeCheck {
        http: Some(HttpCheck {
            url,
            status,
            body_contains: body.map(str::to_string),
        }),
        ..base("http")
    }
}

fn exec(cmd: &[&str], env: &[(&str, &str)]) -> SmokeCheck {
    SmokeCheck {
        exec: Some(ExecCheck {
            command: cmd.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }),
        ..base("exec")
    }
}

fn ctx() -> SmokeContext {
    SmokeContext {
        environment: "shop-staging".into(),
        env_vars: BTreeMap::new(),
    }
}

/// Serves `/` ("version 2"), `/flaky` (503 twice, then 200), `/slow` (3s), `/moved` (302 elsewhere).
async fn server() -> String {
    let hits = Arc::new(AtomicU32::new(0));
    let app = Router::new()
        .route("/", get(|| async { "hello from version 2" }))
        .route(
            "/flaky",
            get(move || {
                let hits = hits.clone();
                async move {
                    if hits.fetch_add(1, Ordering::SeqCst) < 2 {
                        (StatusCode::SERVICE_UNAVAILABLE, "busy")
                    } else {
                        (StatusCode::OK, "ok")
                    }
                }
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route(
            "/moved",
            get(|| async { (StatusCode::FOUND, [("location", "http://192.0.2.1/")], "") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn http_status_and_body() {
    let url = server().await;
    let checks = Checks::new().unwrap();
    let ok = checks
        .run(&http(format!("{url}/"), None, Some("version 2")), &ctx())
        .await
        .unwrap();
    assert!(ok.passed, "{ok:?}");
    assert_eq!(ok.attempts, 1);

    let bad = checks
        .run(&http(format!("{url}/"), None, Some("version 3")), &ctx())
        .await
        .unwrap();
    assert!(!bad.passed);
    assert_eq!(
        bad.last_failure.unwrap(),
        format!("GET {url}/ -> 200 but body does not contain \"version 3\"")
    );

    let status = checks
        .run(&http(format!("{url}/nope"), None, None), &ctx())
        .await
        .unwrap();
    assert_eq!(
        status.last_failure.unwrap(),
        format!("GET {url}/nope -> 404, expected 200")
    );
    assert!(
        checks
            .run(&http(format!("{url}/nope"), Some(404), None), &ctx())
            .await
            .unwrap()
            .passed
    );
}

#[tokio::test]
async fn http_redirects_are_not_followed() {
    let url = server().await;
    let r = Checks::new()
        .unwrap()
        .run(&http(format!("{url}/moved"), None, None), &ctx())
        .await
        .unwrap();
    assert_eq!(
        r.last_failure.unwrap(),
        format!("GET {url}/moved -> 302, expected 200")
    );
}

#[tokio::test]
async fn attempts_retry_until_pass_and_count() {
    let url = server().await;
    let mut check = http(format!("{url}/flaky"), None, None);
    check.attempts = Some(5);
    let r = Checks::new().unwrap().run(&check, &ctx()).await.unwrap();
    assert!(r.passed, "{r:?}");
    assert_eq!(r.attempts, 3);
    assert_eq!(
        r.last_failure.unwrap(),
        format!("GET {url}/flaky -> 503, expected 200"),
        "the failure before the pass is kept"
    );
}

#[tokio::test]
async fn per_attempt_timeout() {
    let url = server().await;
    let mut check = http(format!("{url}/slow"), None, None);
    check.timeout = Some(DurationSpec(Duration::from_millis(200)));
    check.attempts = Some(2);
    let started = Instant::now();
    let r = Checks::new().unwrap().run(&check, &ctx()).await.unwrap();
    assert!(!r.passed);
    assert_eq!(r.attempts, 2);
    assert!(r.last_failure.unwrap().contains("timed out after 200ms"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn tcp_connects_or_names_the_refusal() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = listener.local_addr().unwrap().to_string();
    let checks = Checks::new().unwrap();
    let tcp = |address: String| SmokeCheck {
        tcp: Some(TcpCheck { address }),
        ..base("tcp")
    };
    assert!(checks.run(&tcp(open), &ctx()).await.unwrap().passed);
    // A port that was just free: bind, read it, close.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let r = checks.run(&tcp(closed.clone()), &ctx()).await.unwrap();
    assert!(!r.passed);
    let reason = r.last_failure.unwrap();
    assert!(
        reason.starts_with(&format!("connect {closed}: ")) && reason.contains("refused"),
        "{reason}"
    );
}

#[tokio::test]
async fn exec_exit_codes() {
    let checks = Checks::new().unwrap();
    assert!(
        checks
            .run(&exec(&["true"], &[]), &ctx())
            .await
            .unwrap()
            .passed
    );
    let r = checks
        .run(&exec(&["sh", "-c", "echo nope >&2; exit 4"], &[]), &ctx())
        .await
        .unwrap();
    assert!(!r.passed);
    assert_eq!(
        r.last_failure.unwrap(),
        "`sh -c echo nope >&2; exit 4` exited with exit code 4: nope"
    );
    let missing = checks
        .run(&exec(&["/nonexistent/check"], &[]), &ctx())
        .await
        .unwrap();
    assert!(missing.last_failure.unwrap().contains("could not start"));
}

#[tokio::test]
async fn exec_gets_a_clean_environment() {
    // SAFETY: set before any exec in this test; other tests never read this variable.
    unsafe { std::env::set_var("C2QUAY_TEST_BROKER_TOKEN_SECRET", "s3cr3t-token") };
    let checks = Checks::new().unwrap();
    let mut context = ctx();
    context.env_vars.insert("FROM_CTX".into(), "ctx".into());
    let script = r#"test -z "$C2QUAY_TEST_BROKER_TOKEN_SECRET" && test "$C2QUAY_ENVIRONMENT" = shop-staging && test "$OWN" = mine && test "$FROM_CTX" = ctx && test -n "$PATH" && test -z "$HOME""#;
    let r = checks
        .run(&exec(&["sh", "-c", script], &[("OWN", "mine")]), &context)
        .await
        .unwrap();
    assert!(r.passed, "{r:?}");
    // And the complete environment is exactly what we gave.
    let dump = exec(
        &[
            "sh",
            "-c",
            "env | cut -d= -f1 | grep -v '^PWD$' | grep -v '^SHLVL$' | grep -v '^_$' | sort | tr '\\n' ' '; exit 1",
        ],
        &[("OWN", "mine")],
    );
    let r = checks.run(&dump, &context).await.unwrap();
    assert_eq!(
        r.last_failure.unwrap(),
        format!(
            "`{}` exited with exit code 1: C2QUAY_ENVIRONMENT FROM_CTX OWN PATH",
            dump.exec.as_ref().unwrap().command.join(" ")
        )
    );
}

#[tokio::test]
async fn exec_timeout_kills() {
    let mut check = exec(&["sleep", "30"], &[]);
    check.timeout = Some(DurationSpec(Duration::from_millis(200)));
    let started = Instant::now();
    let r = Checks::new().unwrap().run(&check, &ctx()).await.unwrap();
    assert!(!r.passed);
    assert_eq!(
        r.last_failure.unwrap(),
        "`sleep 30` did not finish within 200ms; killed it"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn malformed_checks_are_errors() {
    let checks = Checks::new().unwrap();
    let err = checks.run(&base("none"), &ctx()).await.unwrap_err();
    assert!(
        err.to_string().contains("needs one of http, tcp, exec"),
        "{err}"
    );
    let err = checks.run(&exec(&[], &[]), &ctx()).await.unwrap_err();
    assert_eq!(err.kind(), "invalid");
    let err = checks
        .run(&http("not a url".into(), None, None), &ctx())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("url \"not a url\""), "{err}");
}
