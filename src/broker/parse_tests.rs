//! Fixture tests of the broker JSON parsers (fixtures in `fixtures/`, written for c2quay).

use super::*;

const MIXED: &str = include_str!("fixtures/matrix-mixed-unknown.json");
const DEPLOYABLE: &str = include_str!("fixtures/matrix-deployable.json");
const VERSION_MISSING: &str = include_str!("fixtures/matrix-version-missing.json");
const FAILED_WITH_IGNORED: &str = include_str!("fixtures/matrix-failed-with-ignored.json");

#[test]
fn unknown_keeps_counts_reason_and_failing_rows() {
    let answer = parse_matrix(MIXED).unwrap();
    assert_eq!(answer.verdict, Verdict::Unknown);
    assert_eq!((answer.success, answer.failed, answer.unknown), (1, 1, 1));
    assert!(
        answer
            .reason
            .starts_with("The verification for the pact between version 7")
    );
    assert_eq!(
        answer.failing_rows,
        [
            "shop-web 7 -> basket-api (no version): not verified",
            "shop-web 7 -> catalog-api 41: verification failed",
        ]
    );
}

#[test]
fn deployable_has_no_failing_rows() {
    let answer = parse_matrix(DEPLOYABLE).unwrap();
    assert_eq!(answer.verdict, Verdict::Deployable);
    assert_eq!(answer.success, 1);
    assert!(answer.failing_rows.is_empty());
}

#[test]
fn unknown_version_is_not_deployable_with_the_brokers_reason() {
    let answer = parse_matrix(VERSION_MISSING).unwrap();
    assert_eq!(answer.verdict, Verdict::NotDeployable);
    assert_eq!(
        answer.reason,
        "No pacts or verifications have been published for version 9 of shop-web"
    );
    assert!(answer.failing_rows.is_empty());
}

#[test]
fn ignored_rows_are_not_failing_rows() {
    let answer = parse_matrix(FAILED_WITH_IGNORED).unwrap();
    assert_eq!(answer.verdict, Verdict::NotDeployable);
    assert_eq!(
        answer.failing_rows,
        ["checkout 5 -> payments 2: verification failed"]
    );
}

#[test]
fn garbage_and_wrong_shapes_are_errors_not_panics() {
    for body in [
        "",
        "<html>502 Bad Gateway</html>",
        "{\"summary\":",
        "[]",
        "null",
        "{}",
        "{\"summary\": 3}",
        "{\"summary\": {}}",
        "{\"summary\": {\"deployable\": \"yes\"}}",
        "{\"summary\": {\"deployable\": true, \"success\": -1}}",
        "{\"summary\": {\"deployable\": true, \"reason\": 5}}",
        "{\"summary\": {\"deployable\": true}, \"matrix\": {}}",
    ] {
        assert!(parse_matrix(body).is_err(), "accepted {body:?}");
    }
    // Strange rows are described, not rejected.
    let odd =
        r#"{"summary":{"deployable":null},"matrix":[{"verificationResult":{"success":"?"}}, 7]}"#;
    assert_eq!(
        parse_matrix(odd).unwrap().failing_rows,
        [
            "(unnamed) (no version) -> (unnamed) (no version): verification result unreadable",
            "(unnamed) (no version) -> (unnamed) (no version): not verified",
        ]
    );
}

#[test]
fn index_links_by_relation() {
    let body = r#"{"_links":{
        "self":{"href":"http://b.test/broker","title":"Index"},
        "pb:pacticipant-version":{"href":"http://b.test/broker/pacticipants/{pacticipant}/versions/{version}","templated":true},
        "pb:environments":{"href":"http://b.test/broker/environments"},
        "curies":[{"name":"pb","href":"http://b.test/doc/{rel}","templated":true}]
    }}"#;
    let index = parse_index(body).unwrap();
    assert_eq!(
        index["pb:environments"].href,
        "http://b.test/broker/environments"
    );
    assert!(
        index["pb:pacticipant-version"]
            .href
            .ends_with("/versions/{version}")
    );
    assert!(!index.contains_key("curies"));
    assert!(parse_index("{\"x\":1}").is_err());
    assert!(parse_index("not json").is_err());
}

#[test]
fn record_deployment_link_is_found_by_environment_name() {
    let body = r#"{"number":"1","_links":{
        "pb:record-deployment":[
            {"title":"Record deployment to Production","name":"production","href":"http://b.test/pacticipants/Foo/versions/1/deployed-versions/environment/aaa"},
            {"title":"Record deployment to Test","name":"test","href":"http://b.test/pacticipants/Foo/versions/1/deployed-versions/environment/bbb"}
        ]}}"#;
    assert_eq!(
        record_deployment_href(body, "test").unwrap().as_deref(),
        Some("http://b.test/pacticipants/Foo/versions/1/deployed-versions/environment/bbb")
    );
    assert_eq!(record_deployment_href(body, "Production").unwrap(), None);
    let empty = r#"{"_links":{"pb:record-deployment":[]}}"#;
    assert_eq!(record_deployment_href(empty, "test").unwrap(), None);
    assert!(record_deployment_href(r#"{"_links":{}}"#, "test").is_err());
}

#[test]
fn a_record_deployment_answer_must_be_a_json_object() {
    let answer = r#"{"uuid":"d-1","currentlyDeployed":true,"_links":{"self":{"href":"http://b.test/deployed-versions/d-1"}}}"#;
    assert_eq!(check_recorded_deployment(answer), Ok(()));
    for garbage in [
        "",
        "{\"_links\": {\"self\": ",
        "<html>502</html>",
        "[]",
        "null",
    ] {
        assert!(
            check_recorded_deployment(garbage).is_err(),
            "{garbage:?} accepted as a record"
        );
    }
}

#[test]
fn environments_list_gives_name_and_uuid() {
    let body = r#"{"_embedded":{"environments":[
        {"uuid":"u-1","name":"production","displayName":"Production","production":true},
        {"uuid":"u-2","name":"test","displayName":"Test","production":false}]},
        "_links":{"self":{"href":"http://b.test/environments"}}}"#;
    assert_eq!(
        parse_environments(body).unwrap(),
        [
            ("production".to_string(), "u-1".to_string()),
            ("test".to_string(), "u-2".to_string())
        ]
    );
    assert!(parse_environments(r#"{"_embedded":{"environments":[{"name":"x"}]}}"#).is_err());
    let error = parse_environments("{}").unwrap_err();
    assert!(
        error.0.contains("`_embedded.environments`")
            && error.0.contains("`_links.pb:environments`"),
        "{error}"
    );
    // An empty list is a list: no environment exists.
    assert!(
        parse_environments(r#"{"_embedded":{"environments":[]}}"#)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn environments_are_read_from_the_links_too() {
    // The Ruby client's form: only `_links.pb:environments[]`, the uuid at the end of the href.
    let body = r#"{"_links":{"self":{"href":"http://b.test/environments"},
        "pb:environments":[
            {"title":"Environment","name":"production","href":"http://b.test/environments/u-1"},
            {"title":"Environment","name":"test env","href":"/broker/environments/u%2D2/"}]}}"#;
    assert_eq!(
        parse_environments(body).unwrap(),
        [
            ("production".to_string(), "u-1".to_string()),
            ("test env".to_string(), "u-2".to_string())
        ]
    );
    // Both forms: embedded first, links add only what is missing; one link object works too.
    let both = r#"{"_embedded":{"environments":[{"name":"production","uuid":"u-1"}]},
        "_links":{"pb:environments":{"name":"qa","href":"http://b.test/environments/u-3"}}}"#;
    assert_eq!(
        parse_environments(both).unwrap(),
        [
            ("production".to_string(), "u-1".to_string()),
            ("qa".to_string(), "u-3".to_string())
        ]
    );
    for bad in [
        r#"{"_links":{"pb:environments":[{"href":"http://b.test/environments/u-1"}]}}"#,
        r#"{"_links":{"pb:environments":[{"name":"x","href":"http://b.test/"}]}}"#,
    ] {
        assert!(parse_environments(bad).is_err(), "{bad}");
    }
}

#[test]
fn error_bodies_in_every_form() {
    assert_eq!(
        error_messages(
            r#"{"errors":["Pacticipant Nope not found","Environment with name 'x' does not exist"]}"#
        ),
        [
            "Pacticipant Nope not found",
            "Environment with name 'x' does not exist"
        ]
    );
    assert_eq!(
        error_messages(
            r#"{"errors":{"environment":["with name 'x' does not exist"],"":["Must specify either an environment or a 'to' tag."]}}"#
        ),
        [
            "Must specify either an environment or a 'to' tag.",
            "environment with name 'x' does not exist"
        ]
    );
    assert_eq!(
        error_messages(r#"{"error":{"message":"An error has occurred","reference":"r1"}}"#),
        ["An error has occurred"]
    );
    assert_eq!(error_messages("plain text"), ["plain text"]);
    assert!(error_messages("").is_empty());
}

#[test]
fn excerpt_cuts_on_char_boundaries() {
    assert_eq!(excerpt("  héllo  ", 3), "hél...");
    assert_eq!(excerpt("ok", 10), "ok");
}

const CURRENTLY_DEPLOYED: &str = include_str!("fixtures/currently-deployed-mixed.json");

fn undeploy_hrefs(pacticipant: &str, instance: Option<&str>) -> Vec<String> {
    deployed_versions_to_undeploy(CURRENTLY_DEPLOYED, pacticipant, instance)
        .unwrap()
        .into_iter()
        .map(|d| d.href)
        .collect()
}

#[test]
fn without_an_instance_only_the_instance_less_record_is_undeployed() {
    assert_eq!(
        deployed_versions_to_undeploy(CURRENTLY_DEPLOYED, "shop-web", None).unwrap(),
        [DeployedVersionLink {
            href: "http://b.test/deployed-versions/dv-plain".into(),
            version: Some("7".into()),
        }]
    );
}

#[test]
fn an_instance_matches_application_instance_or_the_older_target() {
    assert_eq!(
        undeploy_hrefs("shop-web", Some("blue")),
        ["http://b.test/deployed-versions/dv-blue"]
    );
    assert_eq!(
        undeploy_hrefs("shop-web", Some("green")),
        ["http://b.test/deployed-versions/dv-green-old-target"]
    );
    assert!(undeploy_hrefs("shop-web", Some("red")).is_empty());
}

#[test]
fn other_pacticipants_are_never_undeployed_even_if_the_broker_lists_them() {
    assert_eq!(
        undeploy_hrefs("shop-web-admin", None),
        ["http://b.test/deployed-versions/dv-other"]
    );
    assert!(undeploy_hrefs("shop", None).is_empty());
}

#[test]
fn an_empty_listing_is_nothing_to_undeploy_and_garbage_is_an_error() {
    let empty = r#"{"_embedded":{"deployedVersions":[]},"_links":{}}"#;
    assert!(
        deployed_versions_to_undeploy(empty, "shop-web", None)
            .unwrap()
            .is_empty()
    );
    let already = r#"{"_embedded":{"deployedVersions":[{"currentlyDeployed":false,
        "_embedded":{"pacticipant":{"name":"shop-web"}},"_links":{"self":{"href":"http://b.test/d/1"}}}]}}"#;
    assert!(
        deployed_versions_to_undeploy(already, "shop-web", None)
            .unwrap()
            .is_empty()
    );
    let no_self =
        r#"{"_embedded":{"deployedVersions":[{"_embedded":{"pacticipant":{"name":"shop-web"}}}]}}"#;
    let no_name =
        r#"{"_embedded":{"deployedVersions":[{"_links":{"self":{"href":"http://b.test/d/1"}}}]}}"#;
    for body in ["", "{}", "<html>502</html>", no_self, no_name] {
        assert!(
            deployed_versions_to_undeploy(body, "shop-web", None).is_err(),
            "accepted {body:?}"
        );
    }
}

#[test]
fn the_currently_deployed_link_falls_back_to_the_older_relation() {
    let current = r#"{"name":"production","_links":{
        "pb:currently-deployed-deployed-versions":{"href":"http://b.test/environments/u-1/deployed-versions/currently-deployed"},
        "pb:currently-deployed-versions":{"href":"http://b.test/old"}}}"#;
    assert_eq!(
        currently_deployed_href(current).unwrap(),
        "http://b.test/environments/u-1/deployed-versions/currently-deployed"
    );
    let older = r#"{"_links":{"pb:currently-deployed-versions":{"href":"http://b.test/old"}}}"#;
    assert_eq!(currently_deployed_href(older).unwrap(), "http://b.test/old");
    assert!(currently_deployed_href(r#"{"_links":{}}"#).is_err());
    assert!(currently_deployed_href("[]").is_err());
}

#[test]
fn an_undeploy_answer_must_be_an_object_that_is_no_longer_deployed() {
    let answer = r#"{"uuid":"dv-plain","currentlyDeployed":false,"undeployedAt":"2026-12-01T10:00:00+00:00"}"#;
    assert_eq!(check_undeployed(answer), Ok(()));
    assert_eq!(check_undeployed("{}"), Ok(()));
    for garbage in [
        "",
        "<html>502</html>",
        "[]",
        r#"{"currentlyDeployed":true}"#,
    ] {
        assert!(check_undeployed(garbage).is_err(), "{garbage:?} accepted");
    }
}
