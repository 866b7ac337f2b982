//! Fault injection, via `RunningEmulator` methods and via the admin HTTP
//! endpoint, observed with reqwest.

use std::time::{Duration, Instant};

use c2quay_broker_emulator::{EmulatorConfig, FaultKind, FaultSpec, start};
use serde_json::{Value, json};

#[tokio::test]
async fn unavailable_then_ok_only_on_matching_paths() {
    let e = start(EmulatorConfig::default()).await.expect("starts");
    e.inject_fault(FaultSpec::new(FaultKind::Unavailable, 2).on_path("/environments"));
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("{}/", e.base_url))
            .send()
            .await
            .expect("index")
            .status(),
        200
    );
    for _ in 0..2 {
        assert_eq!(
            http.get(format!("{}/environments", e.base_url))
                .send()
                .await
                .expect("503")
                .status(),
            503
        );
    }
    assert_eq!(
        http.get(format!("{}/environments", e.base_url))
            .send()
            .await
            .expect("ok")
            .status(),
        200
    );
    let faults: Vec<Option<String>> = e.requests().into_iter().map(|r| r.fault).collect();
    assert_eq!(
        faults,
        vec![
            None,
            Some("unavailable".into()),
            Some("unavailable".into()),
            None
        ]
    );
}

#[tokio::test]
async fn hang_outlasts_the_client_timeout() {
    let e = start(EmulatorConfig::default()).await.expect("starts");
    e.inject_fault(FaultSpec::new(FaultKind::Hang { millis: 3_000 }, 1));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let started = Instant::now();
    let err = http
        .get(format!("{}/environments", e.base_url))
        .send()
        .await
        .expect_err("times out");
    assert!(err.is_timeout(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(e.requests()[0].fault.as_deref(), Some("hang"));
    // The next request is served normally.
    assert_eq!(
        http.get(format!("{}/environments", e.base_url))
            .send()
            .await
            .expect("ok")
            .status(),
        200
    );
}

#[tokio::test]
async fn drop_closes_the_connection_without_a_response() {
    let e = start(EmulatorConfig::default()).await.expect("starts");
    e.inject_fault(FaultSpec::new(FaultKind::Drop, 1));
    let http = reqwest::Client::new();
    let err = http
        .get(format!("{}/", e.base_url))
        .send()
        .await
        .expect_err("connection dropped");
    assert!(!err.is_timeout() && err.status().is_none(), "{err:?}");
    let log = e.requests();
    assert_eq!(
        (log[0].status, log[0].fault.as_deref()),
        (None, Some("drop"))
    );
    assert_eq!(
        http.get(format!("{}/", e.base_url))
            .send()
            .await
            .expect("server still up")
            .status(),
        200
    );
}

#[tokio::test]
async fn malformed_json_is_a_200_that_does_not_parse() {
    let e = start(EmulatorConfig::default()).await.expect("starts");
    e.inject_fault(FaultSpec::new(FaultKind::MalformedJson, 1).on_path("/matrix"));
    let resp = reqwest::get(format!("{}/matrix?q[][pacticipant]=Foo", e.base_url))
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    assert!(resp.json::<Value>().await.is_err());
}

#[tokio::test]
async fn admin_endpoint_injects_lists_and_clears_faults_and_is_not_logged() {
    let e = start(EmulatorConfig::default()).await.expect("starts");
    let http = reqwest::Client::new();
    let admin = format!("{}/_emulator/faults", e.base_url);
    let r = http
        .post(&admin)
        .json(&json!({"kind": "unavailable", "count": 3, "pathContains": "/matrix"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 201);
    let bad = http
        .post(&admin)
        .json(&json!({"kind": "explode"}))
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status(), 400);
    let pending: Value = http
        .get(&admin)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(pending[0]["count"], 3);
    assert_eq!(
        http.get(format!("{}/matrix", e.base_url))
            .send()
            .await
            .expect("503")
            .status(),
        503
    );
    assert_eq!(
        http.delete(&admin).send().await.expect("delete").status(),
        204
    );
    assert_eq!(
        http.get(format!("{}/matrix?q[][pacticipant]=X", e.base_url))
            .send()
            .await
            .expect("400")
            .status(),
        400
    );
    let log: Value = http
        .get(format!("{}/_emulator/requests", e.base_url))
        .send()
        .await
        .expect("log")
        .json()
        .await
        .expect("json");
    let paths: Vec<&str> = log
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["path"].as_str())
        .collect();
    assert_eq!(paths, vec!["/matrix", "/matrix"]);
    assert_eq!(log[0]["status"], 503);
    assert_eq!(log[1]["query"], "q[][pacticipant]=X");
}
