//! The broker's HTTP shapes as the emulator serves them: hrefs, content
//! types, error bodies, status codes, record-deployment semantics, auth.

use c2quay_broker_emulator::{AuthConfig, BasicUser, EmulatorConfig, RunningEmulator, start};
use reqwest::{Client, Response};
use serde_json::{Value, json};

async fn body(r: Response) -> (u16, String, Value) {
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = r.text().await.expect("body");
    (
        status,
        ct,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

async fn get(e: &RunningEmulator, path: &str) -> (u16, String, Value) {
    body(
        Client::new()
            .get(format!("{}{path}", e.base_url))
            .send()
            .await
            .expect("get"),
    )
    .await
}

async fn send(
    e: &RunningEmulator,
    method: &str,
    path: &str,
    ct: &str,
    payload: &Value,
) -> (u16, String, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let r = Client::new()
        .request(m, format!("{}{path}", e.base_url))
        .header("content-type", ct)
        .body(payload.to_string());
    body(r.send().await.expect("send")).await
}

#[tokio::test]
async fn index_uses_the_request_host_and_path_prefix() {
    let e = start(EmulatorConfig {
        path_prefix: "/broker".into(),
        ..EmulatorConfig::default()
    })
    .await
    .expect("starts");
    let r = Client::new()
        .get(format!("{}/", e.base_url))
        .header("host", "broker.example:8080")
        .send()
        .await
        .expect("get");
    let (status, ct, v) = body(r).await;
    assert_eq!(
        (status, ct.as_str()),
        (200, "application/hal+json;charset=utf-8")
    );
    assert_eq!(
        v["_links"]["pb:environments"]["href"],
        "http://broker.example:8080/broker/environments"
    );
    assert_eq!(
        v["_links"]["pb:pacticipant-version"]["href"],
        "http://broker.example:8080/broker/pacticipants/{pacticipant}/versions/{version}"
    );
    assert_eq!(v["_links"]["pb:pacticipant-version"]["templated"], true);
    for rel in [
        "pb:environment",
        "pb:pacticipant",
        "pb:latest-version",
        "pb:publish-contracts",
        "pb:can-i-deploy-pacticipant-version-to-environment",
    ] {
        assert!(v["_links"][rel]["href"].is_string(), "{rel}");
    }
    // Outside the prefix: the generic 404.
    let r = Client::new()
        .get(format!("http://{}/environments", e.addr))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn not_found_and_unsupported_media_type() {
    let e = start(EmulatorConfig::default()).await.expect("starts");
    let (status, ct, v) = get(&e, "/pacticipants/Foo/versions/1").await;
    assert_eq!(
        (status, ct.as_str()),
        (404, "application/json;charset=utf-8")
    );
    assert_eq!(
        v,
        json!({"error": "The requested document was not found on this server."})
    );
    assert_eq!(get(&e, "/no/such/route").await.0, 404);
    let (status, _, _) = send(
        &e,
        "PATCH",
        "/pacticipants/Foo/versions/1",
        "application/json",
        &json!({}),
    )
    .await;
    assert_eq!(status, 415);
    let (status, _, _) = send(
        &e,
        "PUT",
        "/pacticipants/Foo/versions/1",
        "application/merge-patch+json",
        &json!({}),
    )
    .await;
    assert_eq!(status, 415);
    let r = Client::new()
        .post(format!("{}/environments", e.base_url))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn versions_always_carry_record_links_and_put_creates() {
    let e = start(EmulatorConfig::default()).await.expect("starts");
    let (status, _, v) = send(
        &e,
        "PUT",
        "/pacticipants/Foo/versions/1",
        "application/json",
        &json!({"branch": "main", "tags": [{"name": "a"}]}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(v["_links"]["pb:record-deployment"], json!([]));
    assert_eq!(v["_links"]["pb:record-release"], json!([]));
    assert_eq!(v["_embedded"]["tags"][0]["name"], "a");
    assert_eq!(
        send(
            &e,
            "PUT",
            "/pacticipants/Foo/versions/1",
            "application/json",
            &json!({})
        )
        .await
        .0,
        200
    );
    let prod = e.create_environment("production", true).expect("env");
    e.create_environment("test", false).expect("env");
    let (_, _, v) = get(&e, "/pacticipants/Foo/versions/1").await;
    let names: Vec<&str> = v["_links"]["pb:record-deployment"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    assert_eq!(names, vec!["production", "test"]);
    assert_eq!(
        v["_links"]["pb:record-deployment"][0]["href"],
        format!(
            "{}/pacticipants/Foo/versions/1/deployed-versions/environment/{prod}",
            e.base_url
        )
    );
    assert_eq!(
        v["_links"]["pb:record-release"][0]["title"],
        "Record release to Production"
    );
    let (_, _, latest) = get(&e, "/pacticipants/Foo/latest-version").await;
    assert_eq!(latest["number"], "1");
}

#[tokio::test]
async fn environments_crud_and_validation() {
    let e = start(EmulatorConfig::default()).await.expect("starts");
    let (status, _, v) = send(
        &e,
        "POST",
        "/environments",
        "application/json",
        &json!({"name": "pre-prod", "production": false}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(v["displayName"], "Pre prod");
    let uuid = v["uuid"].as_str().expect("uuid").to_string();
    let (status, _, v) = send(
        &e,
        "POST",
        "/environments",
        "application/json",
        &json!({"name": "pre-prod"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        v["errors"]["name"][0],
        "name 'pre-prod' is already used by an existing environment."
    );
    assert_eq!(v["errors"]["production"][0], "is missing");
    let (_, _, list) = get(&e, "/environments?name=pre-prod").await;
    assert_eq!(
        list["_embedded"]["environments"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(list["_links"]["pb:environments"][0]["name"], "pre-prod");
    let (_, _, none) = get(&e, "/environments?name=nope").await;
    assert_eq!(none["_embedded"]["environments"], json!([]));
    let (status, _, v) = send(
        &e,
        "PUT",
        &format!("/environments/{uuid}"),
        "application/json",
        &json!({"name": "preprod", "displayName": "Pre", "production": true}),
    )
    .await;
    assert_eq!(
        (status, v["name"].clone(), v["production"].clone()),
        (200, json!("preprod"), json!(true))
    );
    let r = Client::new()
        .delete(format!("{}/environments/{uuid}", e.base_url))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    assert_eq!(get(&e, &format!("/environments/{uuid}")).await.0, 404);
}

#[tokio::test]
async fn record_deployment_location_idempotency_listing_and_undeploy() {
    let e = start(EmulatorConfig::default()).await.expect("starts");
    let env = e.create_environment("test", false).expect("env");
    e.create_version("Foo", "1", None);
    let url = format!("/pacticipants/Foo/versions/1/deployed-versions/environment/{env}");
    let r = Client::new()
        .post(format!("{}{url}", e.base_url))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("post");
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (status, _, first) = body(r).await;
    assert_eq!(status, 201);
    assert_eq!(
        location,
        format!(
            "{}/deployed-versions/{}",
            e.base_url,
            first["uuid"].as_str().expect("uuid")
        )
    );
    assert!(first.get("applicationInstance").is_none());
    assert_eq!(first["_embedded"]["environment"]["name"], "test");
    let (status, _, again) = send(&e, "POST", &url, "application/json", &json!({})).await;
    assert_eq!(
        (status, again["uuid"].clone()),
        (201, first["uuid"].clone())
    );
    let (_, _, blue) = send(
        &e,
        "POST",
        &url,
        "application/json",
        &json!({"applicationInstance": "blue", "target": "blue"}),
    )
    .await;
    assert_eq!(blue["applicationInstance"], "blue");
    let listing = format!("/environments/{env}/deployed-versions/currently-deployed");
    let count = |v: &Value| {
        v["_embedded"]["deployedVersions"]
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(count(&get(&e, &listing).await.2), 2);
    assert_eq!(
        count(
            &get(
                &e,
                &format!("{listing}?pacticipant=Foo&applicationInstance=")
            )
            .await
            .2
        ),
        1
    );
    let (_, _, only_blue) = get(&e, &format!("{listing}?applicationInstance=blue")).await;
    assert_eq!(
        only_blue["_embedded"]["deployedVersions"][0]["uuid"],
        blue["uuid"]
    );
    assert!(
        only_blue["_embedded"]["deployedVersions"][0]["_embedded"]
            .get("environment")
            .is_none()
    );
    let rec = format!(
        "/deployed-versions/{}",
        first["uuid"].as_str().expect("uuid")
    );
    let (status, _, v) = send(
        &e,
        "PATCH",
        &rec,
        "application/merge-patch+json",
        &json!({"currentlyDeployed": false}),
    )
    .await;
    assert_eq!(
        (status, v["currentlyDeployed"].clone()),
        (200, json!(false))
    );
    assert!(v["undeployedAt"].is_string());
    let (status, _, v) = send(
        &e,
        "PATCH",
        &rec,
        "application/merge-patch+json",
        &json!({"currentlyDeployed": true}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        v["errors"]["currentlyDeployed"][0],
        "The currentlyDeployed property cannot be set back to true. Please record a new deployment."
    );
    assert_eq!(
        send(
            &e,
            "POST",
            &format!("/pacticipants/Foo/versions/9/deployed-versions/environment/{env}"),
            "application/json",
            &json!({})
        )
        .await
        .0,
        404
    );
    let state: Value = Client::new()
        .get(format!("{}/_emulator/state", e.base_url))
        .send()
        .await
        .expect("state")
        .json()
        .await
        .expect("json");
    assert_eq!(state["deployments"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn matrix_and_can_i_deploy_validation_forms_and_legacy_publish() {
    let e = start(EmulatorConfig::default()).await.expect("starts");
    let (status, _, v) = get(&e, "/matrix?q[][pacticipant]=Nope&q[][version]=1").await;
    assert_eq!(
        (status, v),
        (400, json!({"errors": ["Pacticipant Nope not found"]}))
    );
    let (status, _, v) = get(&e, "/can-i-deploy?pacticipant=Nope&version=1&environment=x").await;
    assert_eq!(status, 400);
    assert_eq!(
        v["errors"]["pacticipant"][0],
        "does not match an existing pacticipant"
    );
    assert_eq!(
        v["errors"]["environment"][0],
        "with name 'x' does not exist"
    );
    let pact =
        json!({"consumer": {"name": "Foo"}, "provider": {"name": "Bar"}, "interactions": []});
    assert_eq!(
        send(
            &e,
            "PUT",
            "/pacts/provider/Bar/consumer/Foo/version/1",
            "application/json",
            &pact
        )
        .await
        .0,
        201
    );
    let (_, _, p) = get(&e, "/pacts/provider/Bar/consumer/Foo/version/1").await;
    let href = p["_links"]["pb:publish-verification-results"]["href"]
        .as_str()
        .expect("link")
        .to_string();
    let r = Client::new()
        .post(&href)
        .json(&json!({"providerApplicationVersion": "10"}))
        .send()
        .await
        .expect("post");
    assert_eq!(body(r).await.2["errors"]["success"][0], "is missing");
    let r = Client::new()
        .post(&href)
        .json(&json!({"success": true, "providerApplicationVersion": "10"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 201);
    e.create_environment("production", true).expect("env");
    e.record_deployment("Bar", "10", "production", None)
        .expect("deploy");
    let (status, _, v) = get(
        &e,
        "/can-i-deploy?pacticipant=Foo&version=1&environment=production",
    )
    .await;
    assert_eq!(
        (status, v["summary"]["deployable"].clone()),
        (200, json!(true))
    );
    assert_eq!(v["matrix"][0]["provider"]["version"]["number"], "10");
    assert!(v["summary"].get("ignored").is_none());
}

#[tokio::test]
async fn basic_auth_challenges_and_admin_is_open() {
    let auth = AuthConfig {
        basic: BasicUser::parse("alice:s3cret"),
        ..AuthConfig::default()
    };
    let e = start(EmulatorConfig {
        auth,
        ..EmulatorConfig::default()
    })
    .await
    .expect("starts");
    let r = Client::new()
        .get(format!("{}/", e.base_url))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Basic realm=\"Restricted area\"")
    );
    let r = Client::new()
        .get(format!("{}/", e.base_url))
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let r = Client::new()
        .get(format!("{}/", e.base_url))
        .bearer_auth("tok")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 400);
    let r = Client::new()
        .get(format!("{}/_emulator/requests", e.base_url))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let log = e.requests();
    assert_eq!(
        log.iter()
            .map(|r| (r.authorization, r.status))
            .collect::<Vec<_>>(),
        vec![(false, Some(401)), (true, Some(200)), (true, Some(400))]
    );
    assert!(log.iter().all(|r| !r.body.contains("s3cret")));
}

#[tokio::test]
async fn undeploy_patch_follows_the_brokers_rules() {
    let e = start(EmulatorConfig::default()).await.expect("starts");
    let uuid = e.create_environment("test", false).expect("env");
    e.create_version("Foo", "1", None);
    let record = e
        .record_deployment("Foo", "1", "test", None)
        .expect("deployed");
    let path = format!("/deployed-versions/{}", record.uuid);
    let patch = |payload: Value| {
        let e = &e;
        let path = path.clone();
        async move { send(e, "PATCH", &path, "application/merge-patch+json", &payload).await }
    };
    // `true` is refused even while the record is current, and changes nothing.
    let (status, _, v) = patch(json!({"currentlyDeployed": true})).await;
    assert_eq!(status, 422);
    assert_eq!(
        v["errors"]["currentlyDeployed"][0],
        "The currentlyDeployed property cannot be set back to true. Please record a new deployment."
    );
    assert_eq!(e.currently_deployed("test").len(), 1);
    // A PATCH sent as plain JSON is not a merge patch.
    let (status, _, _) = send(
        &e,
        "PATCH",
        &path,
        "application/json",
        &json!({"currentlyDeployed": false}),
    )
    .await;
    assert_eq!(status, 415);
    assert_eq!(e.currently_deployed("test").len(), 1);
    // `{}` leaves it as it is.
    let (status, _, v) = patch(json!({})).await;
    assert_eq!((status, v["currentlyDeployed"].clone()), (200, json!(true)));
    // Undeployed once; again is 200 and unchanged (same undeployedAt).
    let (status, _, first) = patch(json!({"currentlyDeployed": false})).await;
    assert_eq!(
        (status, first["currentlyDeployed"].clone()),
        (200, json!(false))
    );
    let (status, _, again) = patch(json!({"currentlyDeployed": false})).await;
    assert_eq!(status, 200);
    assert_eq!(again["undeployedAt"], first["undeployedAt"]);
    assert!(e.currently_deployed("test").is_empty());
    let (status, _, _) = send(
        &e,
        "PATCH",
        "/deployed-versions/no-such-uuid",
        "application/merge-patch+json",
        &json!({"currentlyDeployed": false}),
    )
    .await;
    assert_eq!(status, 404);
    // The currently-deployed listing no longer shows it.
    let listing = get(
        &e,
        &format!("/environments/{uuid}/deployed-versions/currently-deployed?pacticipant=Foo"),
    )
    .await;
    assert_eq!(listing.0, 200);
    assert_eq!(listing.2["_embedded"]["deployedVersions"], json!([]));
    e.shutdown().await;
}
