//! Issue 13: how the gate asks. Per service through the index's
//! `pb:can-i-deploy-pacticipant-version-to-environment` (absolute or relative href, or
//! `<base>/can-i-deploy` without it); all-or-nothing through `/matrix` with an explicit limit,
//! whose answer is not trusted when it fills the limit; relative hrefs resolve.

use super::{Reply, candidate, config, gates, matrix_body, path_prefix, serve};

use c2quay::broker::{Broker, GateMode, HttpBroker, Verdict};

/// An index with the can-i-deploy relation as `href` (a template) and relative version links.
fn index_with(href: &str) -> String {
    format!(
        r#"{{"_links":{{"self":{{"href":"/broker/"}},
        "pb:can-i-deploy-pacticipant-version-to-environment":{{"href":"{href}","templated":true}},
        "pb:pacticipant-version":{{"href":"/broker/pacticipants/{{pacticipant}}/versions/{{version}}","templated":true}},
        "pb:environments":{{"href":"environments"}}}}}}"#
    )
}

#[tokio::test]
async fn per_service_gates_follow_the_index_relation_whatever_its_href() {
    let template =
        "can-i-deploy?pacticipant={pacticipant}&version={version}&environment={environment}";
    for href in [
        format!("BASE{template}"),
        format!("/broker/{template}"),
        template.to_string(),
    ] {
        let server = serve("/broker/", move |seen, _, base| {
            let relative = seen.path.strip_prefix(path_prefix(base)).unwrap_or("");
            match relative {
                "" => Reply::json(200, index_with(&href.replace("BASE", base))),
                "can-i-deploy" => Reply::json(200, matrix_body("false")),
                _ => Reply::json(404, "{}"),
            }
        })
        .await;
        let broker = HttpBroker::new(config(&server)).unwrap();
        let answers = broker
            .can_i_deploy(
                "test env",
                &[candidate("Foo Thing", "1.0+b/7"), candidate("Bar", "2")],
                GateMode::PerService,
            )
            .await
            .unwrap();
        assert_eq!(
            answers.iter().map(|a| a.verdict).collect::<Vec<_>>(),
            [Verdict::NotDeployable, Verdict::NotDeployable]
        );
        let mut queries: Vec<String> = gates(&server)
            .into_iter()
            .map(|s| format!("{}?{}", s.path, s.query.unwrap_or_default()))
            .collect();
        queries.sort();
        assert_eq!(
            queries,
            [
                "/broker/can-i-deploy?pacticipant=Bar&version=2&environment=test%20env",
                "/broker/can-i-deploy?pacticipant=Foo%20Thing&version=1.0%2Bb%2F7&environment=test%20env",
            ]
        );
        assert_eq!(server.count("/broker/matrix"), 0, "no /matrix per service");
        assert_eq!(server.count("/broker/"), 1, "the index once");
    }
}

#[tokio::test]
async fn relative_version_and_record_hrefs_resolve() {
    let server = serve("/broker/", |seen, _, base| {
        let relative = seen.path.strip_prefix(path_prefix(base)).unwrap_or("");
        match (seen.method.as_str(), relative) {
            ("GET", "") => Reply::json(200, index_with("can-i-deploy")),
            ("GET", "pacticipants/Foo/versions/1") => Reply::json(
                200,
                r#"{"_links":{"pb:record-deployment":[{"name":"production","href":"1/deployed-versions/environment/uuid-prod"}]}}"#,
            ),
            ("POST", "pacticipants/Foo/versions/1/deployed-versions/environment/uuid-prod") => {
                Reply::json(201, r#"{"uuid":"d-1","currentlyDeployed":true}"#)
            }
            _ => Reply::json(404, "{}"),
        }
    })
    .await;
    let broker = HttpBroker::new(config(&server)).unwrap();
    broker
        .record_deployment("production", &candidate("Foo", "1"), None)
        .await
        .unwrap_or_else(|e| panic!("relative hrefs: {e}"));
    let posts: Vec<String> = server
        .log()
        .into_iter()
        .filter(|s| s.method == "POST")
        .map(|s| s.path)
        .collect();
    assert_eq!(
        posts,
        ["/broker/pacticipants/Foo/versions/1/deployed-versions/environment/uuid-prod"]
    );
}

/// A matrix body with `rows` successful rows.
fn matrix_with_rows(rows: usize) -> String {
    let row = r#"{"consumer":{"name":"Foo","version":{"number":"1"}},"provider":{"name":"Bar","version":{"number":"2"}},"verificationResult":{"success":true}}"#;
    format!(
        r#"{{"summary":{{"deployable":true,"reason":"ok","success":{rows},"failed":0,"unknown":0}},"matrix":[{}]}}"#,
        vec![row; rows].join(",")
    )
}

#[tokio::test]
async fn an_all_or_nothing_answer_that_fills_the_row_limit_is_not_trusted() {
    let limit = c2quay::broker::requests::MATRIX_ROW_LIMIT;
    let full = matrix_with_rows(limit);
    let short = matrix_with_rows(limit - 1);
    let server = serve("/", move |seen, _, _| {
        let query = seen.query.clone().unwrap_or_default();
        assert!(query.ends_with("&limit=10000"), "{query}");
        if query.contains("=Full") {
            Reply::json(200, full.clone())
        } else {
            Reply::json(200, short.clone())
        }
    })
    .await;
    let broker = HttpBroker::new(config(&server)).unwrap();
    let error = broker
        .can_i_deploy(
            "production",
            &[candidate("Full", "1"), candidate("Bar", "2")],
            GateMode::AllOrNothing,
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "row_limit");
    assert!(!error.is_transient());
    let message = error.to_string();
    for needle in [
        "can-i-deploy of Full 1, Bar 2 to environment production (/matrix)",
        "holds 10000 rows",
        "spec.broker.allOrNothing: false",
    ] {
        assert!(message.contains(needle), "{needle:?} missing in {message}");
    }
    let answers = broker
        .can_i_deploy(
            "production",
            &[candidate("Short", "1"), candidate("Bar", "2")],
            GateMode::AllOrNothing,
        )
        .await
        .unwrap();
    assert_eq!(answers[0].verdict, Verdict::Deployable);
}
