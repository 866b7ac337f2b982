//! Issue 13: the row limit and the option checks of `/matrix` and `/can-i-deploy`, over HTTP,
//! as the broker (2.120.0, `matrix/parse_query.rb`, `repository.rb`, `service.rb`) applies them:
//! `/matrix` keeps its newest 100 rows unless `limit` says otherwise, BEFORE it decides, so a
//! failing row past the limit is never seen; `/can-i-deploy` applies no limit at all. And the
//! official `pact broker can-i-deploy`, which asks `/matrix` without a limit, reads the same
//! truncated answer.

use crate::common;

use common::{broker, pact_cli, pact_doc};

use c2quay_broker_emulator::{EmulatorConfig, RunningEmulator, start};
use serde_json::{Value, json};

/// Foo 1..=`released` are released to production, each with its own pact with Bar; Bar 2
/// verified them all and failed only Foo 1's, the oldest. Bar 2 is the version being gated.
fn seed_released_consumers(e: &RunningEmulator, released: usize) {
    e.create_environment("production", true).expect("env");
    for n in 1..=released {
        let v = n.to_string();
        e.seed_pact("Foo", &v, "Bar", &pact_doc("Foo", "Bar", &format!("v{v}")));
        e.seed_verification("Bar", "2", "Foo", &v, n != 1)
            .expect("verify");
        e.record_release("Foo", &v, "production").expect("release");
    }
}

async fn get(e: &RunningEmulator, target: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{}{target}", e.base_url))
        .await
        .expect("get");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// (deployable, failed, rows, whether Foo 1's row is among them).
fn verdict(v: &Value) -> (Value, Value, usize, bool) {
    let rows = v["matrix"].as_array().expect("matrix rows");
    let oldest = rows
        .iter()
        .any(|r| r["consumer"]["version"]["number"] == "1");
    (
        v["summary"]["deployable"].clone(),
        v["summary"]["failed"].clone(),
        rows.len(),
        oldest,
    )
}

const MATRIX: &str =
    "/matrix?q[][pacticipant]=Bar&q[][version]=2&latestby=cvpv&environment=production";
const CAN_I_DEPLOY: &str = "/can-i-deploy?pacticipant=Bar&version=2&environment=production";

#[tokio::test]
async fn matrix_decides_on_its_newest_100_rows_and_can_i_deploy_on_all_of_them() {
    let e = start(EmulatorConfig::default()).await.expect("starts");
    seed_released_consumers(&e, 101);

    let (status, v) = get(&e, MATRIX).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        verdict(&v),
        (json!(true), json!(0), 100, false),
        "the default limit hides Foo 1's failed row: {}",
        v["summary"]
    );
    assert_eq!(
        v["summary"]["reason"],
        "All required verification results are published and successful"
    );
    // An empty limit is the default too.
    let (_, v) = get(&e, &format!("{MATRIX}&limit=")).await;
    assert_eq!(verdict(&v).2, 100);

    let (status, v) = get(&e, &format!("{MATRIX}&limit=101")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(verdict(&v), (json!(false), json!(1), 101, true));

    let (status, v) = get(&e, CAN_I_DEPLOY).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        verdict(&v),
        (json!(false), json!(1), 101, true),
        "/can-i-deploy has no row limit: {}",
        v["summary"]
    );
    assert!(
        v["summary"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("between one of the versions of Foo currently in production (1) and version 2 of Bar failed"),
        "{}",
        v["summary"]
    );
    // A limit on /can-i-deploy is not one of its parameters: still every row.
    let (_, v) = get(&e, &format!("{CAN_I_DEPLOY}&limit=5")).await;
    assert_eq!(verdict(&v).2, 101);
    e.shutdown().await;
}

#[tokio::test]
async fn within_the_limit_matrix_and_can_i_deploy_agree() {
    let e = start(EmulatorConfig::default()).await.expect("starts");
    seed_released_consumers(&e, 100);
    let (_, matrix) = get(&e, MATRIX).await;
    let (_, can_i_deploy) = get(&e, CAN_I_DEPLOY).await;
    assert_eq!(verdict(&matrix), (json!(false), json!(1), 100, true));
    assert_eq!(verdict(&can_i_deploy), verdict(&matrix));
    e.shutdown().await;
}

#[tokio::test]
async fn option_combinations_the_broker_rejects_are_400_in_its_order() {
    let e = start(EmulatorConfig::default()).await.expect("starts");
    seed_released_consumers(&e, 1);
    let selector = "q[][pacticipant]=Bar&q[][version]=2";
    for (options, errors) in [
        (
            "latest=true&environment=production",
            vec!["Cannot specify both latest=true and an environment."],
        ),
        (
            "tag=prod&environment=production",
            vec!["Cannot specify more than one of tag, environment and mainBranch."],
        ),
        (
            "mainBranch=true&tag=prod&latest=true",
            vec!["Cannot specify more than one of tag, environment and mainBranch."],
        ),
        ("limit=0", vec!["The limit must be 1 or greater."]),
        ("limit=abc", vec!["The limit must be 1 or greater."]),
        (
            "latest=true&environment=nowhere&limit=-1",
            vec![
                "Cannot specify both latest=true and an environment.",
                "Environment with name 'nowhere' does not exist",
                "The limit must be 1 or greater.",
            ],
        ),
    ] {
        let (status, v) = get(&e, &format!("/matrix?{selector}&{options}")).await;
        assert_eq!(
            (status, &v),
            (400, &json!({ "errors": errors })),
            "{options}"
        );
    }
    // Selector errors come before option errors, as in `matrix/service.rb`.
    let (status, v) = get(
        &e,
        "/matrix?q[][pacticipant]=Nope&latest=true&environment=production",
    )
    .await;
    assert_eq!(
        (status, v),
        (
            400,
            json!({"errors": ["Pacticipant Nope not found", "Cannot specify both latest=true and an environment."]})
        )
    );
    // On a selector, latest and environment are not destinations: the broker takes them.
    let (status, v) = get(
        &e,
        "/matrix?q[][pacticipant]=Bar&q[][latest]=true&latestby=cvpv&environment=production",
    )
    .await;
    assert_eq!(status, 200, "{v}");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_cli_reads_the_same_truncated_matrix() {
    let Some(cli) = pact_cli("the_official_cli_reads_the_same_truncated_matrix") else {
        return;
    };
    for (released, code, deployable, rows) in
        [(101, 0, json!(true), 100), (100, 1, json!(false), 100)]
    {
        let e = start(EmulatorConfig::default()).await.expect("starts");
        seed_released_consumers(&e, released);
        let args = [
            "can-i-deploy",
            "--pacticipant",
            "Bar",
            "--version",
            "2",
            "--to-environment",
            "production",
        ];
        let table = broker(&cli, &e.base_url, &args).await;
        let json = broker(&cli, &e.base_url, &[&args[..], &["-o", "json"]].concat()).await;
        let answer = json.json();
        println!(
            "CLI can-i-deploy with {released} released consumer versions: exit {}, deployable {}, {} rows",
            table.code,
            answer["summary"]["deployable"],
            answer["matrix"].as_array().map_or(0, Vec::len)
        );
        assert_eq!(
            table.code, code,
            "{released}: {}{}",
            table.stdout, table.stderr
        );
        assert_eq!(
            verdict(&answer).0,
            deployable,
            "{released}: {}",
            answer["summary"]
        );
        assert_eq!(verdict(&answer).2, rows);
        // The CLI asks /matrix with no limit: what it reads is the emulator's default answer.
        let (_, direct) = get(&e, MATRIX).await;
        assert_eq!(answer["summary"], direct["summary"], "{released}");
        let asked: Vec<String> = e.requests().iter().map(|r| r.target()).collect();
        assert!(
            asked
                .iter()
                .all(|t| t.starts_with("/matrix?") && !t.contains("limit")),
            "{asked:?}"
        );
        e.shutdown().await;
    }
    // `--latest` is a selector's `latest`, not the option the broker refuses with an environment:
    // the CLI's `q[][latest]=true&...&environment=` query is answered, not rejected.
    let e = start(EmulatorConfig::default()).await.expect("starts");
    seed_released_consumers(&e, 1);
    let args = [
        "can-i-deploy",
        "--pacticipant",
        "Bar",
        "--latest",
        "--to-environment",
        "production",
        "-o",
        "json",
    ];
    let out = broker(&cli, &e.base_url, &args).await;
    let target = e.requests().last().map(|r| r.target()).unwrap_or_default();
    assert!(
        target.contains("q[][latest]=true") && target.contains("environment=production"),
        "{target}"
    );
    assert_eq!(
        out.json()["summary"]["deployable"],
        json!(false),
        "{}{}",
        out.stdout,
        out.stderr
    );
    e.shutdown().await;
}

#[tokio::test]
async fn the_index_advertises_can_i_deploy_to_an_environment_as_the_broker_does() {
    let e = start(EmulatorConfig::default()).await.expect("starts");
    seed_released_consumers(&e, 101);
    let (status, index) = get(&e, "/").await;
    assert_eq!(status, 200);
    // As in broker-samples/index.derived.json (base http://example.org there).
    let link = &index["_links"]["pb:can-i-deploy-pacticipant-version-to-environment"];
    let template = format!(
        "{}/can-i-deploy?pacticipant={{pacticipant}}&version={{version}}&environment={{environment}}",
        e.base_url
    );
    assert_eq!(
        link,
        &json!({
            "href": template,
            "title": "Determine if an application version can be safely deployed to an environment",
            "templated": true
        })
    );
    // Following it is /can-i-deploy: every row.
    let followed = template
        .replace("{pacticipant}", "Bar")
        .replace("{version}", "2")
        .replace("{environment}", "production");
    let followed = followed.strip_prefix(&e.base_url).expect("on the base URL");
    let (_, v) = get(&e, followed).await;
    assert_eq!(verdict(&v), (json!(false), json!(1), 101, true));
    e.shutdown().await;
}
