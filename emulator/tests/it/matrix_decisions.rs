//! Decision-rule scenarios for `/matrix` and `/can-i-deploy` (reference §2.5),
//! run against the pure `matrix::evaluate` without HTTP. Our own fixtures,
//! modelled on the broker's service-level decision table.

use c2quay_broker_emulator::matrix::{self, MatrixResult};
use c2quay_broker_emulator::model::State;
use c2quay_broker_emulator::query::{parse_can_i_deploy, parse_matrix};
use serde_json::json;

/// A small world builder: pacts, verifications, environments and deployments.
struct World(State);

impl World {
    fn new() -> Self {
        let mut s = State::default();
        for (name, production) in [("test", false), ("production", true)] {
            s.upsert_environment(&json!({"name": name, "production": production}), None)
                .expect("env");
        }
        World(s)
    }
    /// `consumer@cv` publishes a pact with `provider`; `content` distinguishes pact contents.
    fn pact(&mut self, consumer: &str, cv: &str, provider: &str, content: &str) -> &mut Self {
        self.0.publish_pact(
            consumer,
            cv,
            provider,
            &json!({"consumer": {"name": consumer}, "provider": {"name": provider}, "c": content}),
        );
        self
    }
    fn verify(
        &mut self,
        provider: &str,
        pv: &str,
        consumer: &str,
        cv: &str,
        success: bool,
    ) -> &mut Self {
        let sha = self
            .0
            .pact(provider, consumer, cv)
            .expect("pact exists")
            .sha
            .clone();
        self.0.verify(provider, consumer, &sha, pv, success);
        self
    }
    fn version(&mut self, p: &str, v: &str) -> &mut Self {
        self.0.ensure_version(p, v);
        self
    }
    fn deploy(&mut self, p: &str, v: &str, env: &str, instance: Option<&str>) -> &mut Self {
        self.0.ensure_version(p, v);
        let e = self.0.environment_named(env).expect("env").clone();
        self.0.record_deployment(p, v, &e, instance);
        self
    }
    fn tag(&mut self, p: &str, v: &str, t: &str) -> &mut Self {
        self.0.add_tag(p, v, t);
        self
    }
    fn matrix(&self, query: &str) -> MatrixResult {
        let q = parse_matrix(query).expect("query parses");
        matrix::evaluate(&self.0, &q).expect("valid query")
    }
    fn cid(&self, query: &str) -> MatrixResult {
        let q = parse_can_i_deploy(query).expect("query parses");
        matrix::evaluate(&self.0, &q).expect("valid query")
    }
}

fn counts(r: &MatrixResult) -> (Option<bool>, usize, usize, usize) {
    (
        r.summary.deployable,
        r.summary.success,
        r.summary.failed,
        r.summary.unknown,
    )
}

const PROD: &str = "latestby=cvpv&environment=production";

#[test]
fn consumer_verified_by_the_provider_in_the_environment_is_deployable() {
    let mut w = World::new();
    w.pact("Foo", "1", "Bar", "a")
        .verify("Bar", "10", "Foo", "1", true)
        .deploy("Bar", "10", "production", None);
    let r = w.matrix(&format!("q[][pacticipant]=Foo&q[][version]=1&{PROD}"));
    assert_eq!(counts(&r), (Some(true), 1, 0, 0));
    assert_eq!(
        r.summary.reason,
        "All required verification results are published and successful"
    );
    assert_eq!(r.notices[0].kind, "success");
}

#[test]
fn failed_verification_gives_false_with_the_failure_reason() {
    let mut w = World::new();
    w.pact("Foo", "1", "Bar", "a")
        .verify("Bar", "10", "Foo", "1", false)
        .deploy("Bar", "10", "production", None);
    let r = w.matrix(&format!("q[][pacticipant]=Foo&q[][version]=1&{PROD}"));
    assert_eq!(counts(&r), (Some(false), 0, 1, 0));
    assert_eq!(
        r.summary.reason,
        "The verification for the pact between version 1 of Foo and the version of Bar currently in production (10) failed"
    );
}

#[test]
fn provider_not_deployed_in_target_gives_null_with_the_broker_reason() {
    let mut w = World::new();
    w.pact("Foo", "1", "Bar", "a")
        .verify("Bar", "10", "Foo", "1", true);
    let r = w.matrix(&format!("q[][pacticipant]=Foo&q[][version]=1&{PROD}"));
    assert_eq!(counts(&r), (None, 0, 0, 1));
    assert_eq!(
        r.summary.reason,
        "There is no verified pact between version 1 of Foo and a version of Bar currently in production (no version is currently recorded as deployed/released in this environment)"
    );
    assert_eq!(r.rows.len(), 1);
    assert_eq!(r.rows[0].provider_version, None);
}

#[test]
fn verified_but_not_by_the_provider_version_in_the_environment_is_unknown() {
    let mut w = World::new();
    w.pact("Foo", "1", "Bar", "a")
        .verify("Bar", "10", "Foo", "1", true)
        .deploy("Bar", "11", "production", None);
    let r = w.matrix(&format!("q[][pacticipant]=Foo&q[][version]=1&{PROD}"));
    assert_eq!(counts(&r), (None, 0, 0, 1));
    assert!(
        r.summary
            .reason
            .contains("the version of Bar currently in production (11)"),
        "{}",
        r.summary.reason
    );
}

#[test]
fn provider_side_integrations_are_not_required() {
    // Consumer not in the target environment: nothing to check.
    let mut w = World::new();
    w.pact("Foo", "1", "Bar", "a").version("Bar", "11");
    let r = w.matrix(&format!("q[][pacticipant]=Bar&q[][version]=11&{PROD}"));
    assert_eq!(counts(&r), (Some(true), 0, 0, 0));
    assert_eq!(r.summary.reason, "There are no missing dependencies");
    // Consumer in the environment, verified by the new provider version: deployable.
    w.deploy("Foo", "1", "production", None)
        .verify("Bar", "11", "Foo", "1", true);
    assert_eq!(
        counts(&w.matrix(&format!("q[][pacticipant]=Bar&q[][version]=11&{PROD}"))),
        (Some(true), 1, 0, 0)
    );
}

#[test]
fn provider_without_verification_of_the_deployed_consumer_is_unknown() {
    let mut w = World::new();
    w.pact("Foo", "1", "Bar", "a")
        .verify("Bar", "10", "Foo", "1", true)
        .deploy("Foo", "1", "production", None)
        .version("Bar", "11");
    let r = w.matrix(&format!("q[][pacticipant]=Bar&q[][version]=11&{PROD}"));
    assert_eq!(counts(&r), (None, 0, 0, 1));
}

#[test]
fn deployed_consumer_version_without_a_pact_does_not_block_the_provider() {
    let mut w = World::new();
    w.version("Foo", "1")
        .deploy("Foo", "1", "production", None)
        .pact("Foo", "2", "Bar", "a")
        .version("Bar", "11");
    let r = w.matrix(&format!("q[][pacticipant]=Bar&q[][version]=11&{PROD}"));
    assert_eq!(
        (r.summary.deployable, r.summary.reason.as_str()),
        (Some(true), "There are no missing dependencies")
    );
}

#[test]
fn non_existent_specified_version_is_false_not_an_error() {
    let mut w = World::new();
    w.pact("Foo", "1", "Bar", "a");
    let r = w.matrix("q[][pacticipant]=Foo&q[][version]=9&latestby=cvp&latest=true");
    assert_eq!(r.summary.deployable, Some(false));
    let texts: Vec<(&str, &str)> = r
        .notices
        .iter()
        .map(|n| (n.kind, n.text.as_str()))
        .collect();
    assert_eq!(
        texts,
        vec![
            (
                "warning",
                "WARN: It is recommended to specify the environment into which you are deploying. Without the environment, this result will not be reliable."
            ),
            (
                "error",
                "No pacts or verifications have been published for version 9 of Foo"
            ),
        ]
    );
}

#[test]
fn version_without_pacts_or_consumers_is_deployable() {
    let mut w = World::new();
    w.version("Lonely", "1");
    let r = w.matrix(&format!("q[][pacticipant]=Lonely&q[][version]=1&{PROD}"));
    assert_eq!(
        (r.summary.deployable, r.summary.reason.as_str()),
        (Some(true), "There are no missing dependencies")
    );
}

#[test]
fn null_takes_precedence_over_false() {
    let mut w = World::new();
    w.pact("Foo", "1", "Bar", "a").pact("Foo", "1", "Baz", "b");
    w.verify("Bar", "10", "Foo", "1", false)
        .deploy("Bar", "10", "production", None)
        .deploy("Baz", "5", "production", None);
    let r = w.matrix(&format!("q[][pacticipant]=Foo&q[][version]=1&{PROD}"));
    assert_eq!(counts(&r), (None, 0, 1, 1));
}

#[test]
fn verification_is_keyed_by_pact_content_and_covers_identical_consumer_versions() {
    let mut w = World::new();
    w.pact("Foo", "1", "Bar", "same")
        .verify("Bar", "10", "Foo", "1", true)
        .deploy("Bar", "10", "production", None);
    w.pact("Foo", "2", "Bar", "same")
        .pact("Foo", "3", "Bar", "changed");
    assert_eq!(
        counts(&w.matrix(&format!("q[][pacticipant]=Foo&q[][version]=2&{PROD}"))),
        (Some(true), 1, 0, 0)
    );
    assert_eq!(
        counts(&w.matrix(&format!("q[][pacticipant]=Foo&q[][version]=3&{PROD}"))),
        (None, 0, 0, 1)
    );
}

#[test]
fn cvpv_checks_every_live_provider_version_but_cvp_only_the_newest() {
    let mut w = World::new();
    w.pact("Foo", "1", "Bar", "a");
    w.verify("Bar", "10", "Foo", "1", false)
        .verify("Bar", "11", "Foo", "1", true);
    w.deploy("Bar", "10", "production", Some("blue")).deploy(
        "Bar",
        "11",
        "production",
        Some("green"),
    );
    let cvpv = w.matrix("q[][pacticipant]=Foo&q[][version]=1&latestby=cvpv&environment=production");
    assert_eq!(counts(&cvpv), (Some(false), 1, 1, 0));
    assert!(
        cvpv.summary
            .reason
            .contains("one of the versions of Bar currently in production (10)"),
        "{}",
        cvpv.summary.reason
    );
    let cvp = w.matrix("q[][pacticipant]=Foo&q[][version]=1&latestby=cvp&environment=production");
    assert_eq!(counts(&cvp), (Some(true), 1, 0, 0));
    assert_eq!(cvp.rows[0].provider_version.as_deref(), Some("11"));
}

#[test]
fn redeployment_to_the_same_instance_replaces_the_live_version() {
    let mut w = World::new();
    w.pact("Foo", "1", "Bar", "a")
        .verify("Bar", "10", "Foo", "1", true);
    w.deploy("Bar", "10", "production", None)
        .deploy("Bar", "11", "production", None);
    assert_eq!(
        counts(&w.matrix(&format!("q[][pacticipant]=Foo&q[][version]=1&{PROD}"))),
        (None, 0, 0, 1)
    );
}

#[test]
fn two_selectors_are_checked_against_each_other_at_the_specified_versions() {
    let mut w = World::new();
    w.pact("Foo", "2", "Bar", "a")
        .verify("Bar", "11", "Foo", "2", true)
        .deploy("Bar", "10", "production", None);
    let q =
        format!("q[][pacticipant]=Foo&q[][version]=2&q[][pacticipant]=Bar&q[][version]=11&{PROD}");
    let r = w.matrix(&q);
    assert_eq!(counts(&r), (Some(true), 1, 0, 0));
    assert_eq!(
        (
            r.rows[0].consumer_version.as_str(),
            r.rows[0].provider_version.as_deref()
        ),
        ("2", Some("11"))
    );
    // Verified only by the production Bar, not by the Bar deployed with it: unknown.
    let mut w = World::new();
    w.pact("Foo", "2", "Bar", "a")
        .verify("Bar", "10", "Foo", "2", true)
        .deploy("Bar", "10", "production", None)
        .version("Bar", "11");
    assert_eq!(counts(&w.matrix(&q)), (None, 0, 0, 1));
}

#[test]
fn two_selectors_are_also_checked_against_other_apps_in_the_environment() {
    let mut w = World::new();
    w.pact("Foo", "2", "Bar", "a")
        .verify("Bar", "11", "Foo", "2", true);
    w.pact("Bar", "11", "Db", "d")
        .deploy("Db", "3", "production", None);
    let r = w.matrix(&format!(
        "q[][pacticipant]=Foo&q[][version]=2&q[][pacticipant]=Bar&q[][version]=11&{PROD}"
    ));
    assert_eq!(counts(&r), (None, 1, 0, 1));
    assert!(
        r.summary
            .reason
            .contains("version 11 of Bar and the version of Db currently in production (3)"),
        "{}",
        r.summary.reason
    );
}

#[test]
fn ignore_selectors_drop_rows_and_report_ignored_only_when_given() {
    let mut w = World::new();
    w.pact("Foo", "1", "Bar", "a")
        .pact("Foo", "1", "Baz", "b")
        .verify("Bar", "10", "Foo", "1", true);
    w.deploy("Bar", "10", "production", None);
    let base = "pacticipant=Foo&version=1&environment=production";
    let r = w.cid(base);
    assert_eq!((counts(&r), r.summary.ignored), ((None, 1, 0, 1), None));
    let r = w.cid(&format!("{base}&ignore[]=Baz"));
    assert_eq!(
        (counts(&r), r.summary.ignored),
        ((Some(true), 1, 0, 0), Some(1))
    );
    assert_eq!(
        r.summary.reason,
        "All required verification results are published and successful"
    );
    assert!(
        r.rows
            .last()
            .is_some_and(|row| row.ignored && row.provider == "Baz")
    );
    let r = w.matrix(&format!("q[][pacticipant]=Foo&q[][version]=1&ignore[][pacticipant]=Baz&ignore[][pacticipant]=Nope&{PROD}"));
    assert_eq!(r.summary.deployable, Some(true));
    assert_eq!(r.notices[0].kind, "warning");
    assert!(
        r.notices[0].text.starts_with("WARN: Cannot ignore"),
        "{}",
        r.notices[0].text
    );
}

#[test]
fn required_integrations_come_from_the_specified_consumer_version_only() {
    let mut w = World::new();
    w.pact("Foo", "1", "Bar", "a")
        .verify("Bar", "10", "Foo", "1", true)
        .deploy("Bar", "10", "production", None);
    w.pact("Foo", "2", "Bar", "a")
        .pact("Foo", "2", "NewApi", "n");
    assert_eq!(
        w.matrix(&format!("q[][pacticipant]=Foo&q[][version]=1&{PROD}"))
            .summary
            .deployable,
        Some(true)
    );
    assert_eq!(
        w.matrix(&format!("q[][pacticipant]=Foo&q[][version]=2&{PROD}"))
            .summary
            .deployable,
        None
    );
}

#[test]
fn browse_two_pacticipants_lists_rows_newest_first_with_null_over_false() {
    let mut w = World::new();
    w.pact("Foo", "1", "Bar", "one")
        .verify("Bar", "10", "Foo", "1", true);
    w.pact("Foo", "2", "Bar", "two")
        .verify("Bar", "20", "Foo", "2", false);
    w.pact("Foo", "3", "Bar", "three");
    let r = w.matrix("q[][pacticipant]=Foo&q[][pacticipant]=Bar&latestby=cvpv");
    assert_eq!(counts(&r), (None, 1, 1, 1));
    let order: Vec<(&str, Option<&str>)> = r
        .rows
        .iter()
        .map(|x| (x.consumer_version.as_str(), x.provider_version.as_deref()))
        .collect();
    assert_eq!(
        order,
        vec![("3", None), ("2", Some("20")), ("1", Some("10"))]
    );
    assert_eq!(
        r.summary.reason,
        "The verification for the pact between any version of Foo and any version of Bar failed\nThere is no verified pact between any version of Foo and any version of Bar"
    );
}

#[test]
fn latest_and_tag_targets_infer_the_latest_versions() {
    let mut w = World::new();
    w.pact("Foo", "1", "Bar", "a")
        .verify("Bar", "10", "Foo", "1", true)
        .version("Bar", "20");
    let r = w.matrix("q[][pacticipant]=Foo&q[][version]=1&latestby=cvp&latest=true");
    assert_eq!(
        r.summary.reason,
        "WARN: It is recommended to specify the environment into which you are deploying. Without the environment, this result will not be reliable.\nThere is no verified pact between version 1 of Foo and the latest version of Bar (20)"
    );
    w.tag("Bar", "10", "prod");
    let r = w.matrix("q[][pacticipant]=Foo&q[][version]=1&tag=prod&latestby=cvp&latest=true");
    assert_eq!(counts(&r), (Some(true), 1, 0, 0));
    let r = w.cid("pacticipant=Foo&version=1&to=prod");
    assert_eq!(r.summary.deployable, Some(true));
}

#[test]
fn selector_without_version_number_warns() {
    let mut w = World::new();
    w.pact("Foo", "1", "Bar", "a")
        .tag("Foo", "1", "dev")
        .verify("Bar", "10", "Foo", "1", true)
        .tag("Bar", "10", "prod");
    let r = w.matrix(
        "q[][pacticipant]=Foo&q[][tag]=dev&q[][latest]=true&latestby=cvp&tag=prod&latest=true",
    );
    assert_eq!(r.summary.deployable, Some(true));
    assert!(
        r.summary
            .reason
            .starts_with("WARN: It is recommended to specify the version number"),
        "{}",
        r.summary.reason
    );
}

#[test]
fn validation_errors_use_the_array_form() {
    let w = World::new();
    let errs =
        |q: &str| matrix::evaluate(&w.0, &parse_matrix(q).expect("parses")).expect_err("invalid");
    assert_eq!(
        errs("latestby=cvpv"),
        vec!["Please provide 1 or more version selectors.".to_string()]
    );
    assert_eq!(
        errs("q[][pacticipant]=Nope&q[][version]=1"),
        vec!["Pacticipant Nope not found".to_string()]
    );
    let mut w2 = World::new();
    w2.version("Foo", "1");
    let errs2 =
        |q: &str| matrix::evaluate(&w2.0, &parse_matrix(q).expect("parses")).expect_err("invalid");
    assert_eq!(
        errs2("q[][pacticipant]=Foo&environment=mars"),
        vec!["Environment with name 'mars' does not exist".to_string()]
    );
    assert_eq!(
        errs2("q[][pacticipant]=Foo&q[][version]=1&q[][latest]=true"),
        vec!["A version number and latest flag cannot both be specified for Foo".to_string()]
    );
    assert_eq!(
        errs2("q[][version]=1"),
        vec!["Please specify the pacticipant name".to_string()]
    );
}

#[test]
fn success_filter_and_limit_apply_to_rows() {
    let mut w = World::new();
    w.pact("Foo", "1", "Bar", "one")
        .verify("Bar", "10", "Foo", "1", true);
    w.pact("Foo", "2", "Bar", "two")
        .verify("Bar", "20", "Foo", "2", false);
    let r = w.matrix("q[][pacticipant]=Foo&q[][pacticipant]=Bar&latestby=cvpv&success[]=true");
    assert_eq!(counts(&r), (Some(true), 1, 0, 0));
    let r = w.matrix("q[][pacticipant]=Foo&q[][pacticipant]=Bar&latestby=cvpv&limit=1");
    assert_eq!(r.rows.len(), 1);
    assert_eq!(r.rows[0].consumer_version, "2");
}
