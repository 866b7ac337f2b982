//! Unit tests of the state rules.
use super::*;

fn env(state: &mut State, name: &str) -> Environment {
    state
        .upsert_environment(
            &serde_json::json!({"name": name, "production": false}),
            None,
        )
        .expect("valid env")
}

#[test]
fn redeploy_replaces_same_instance_only_and_same_version_is_idempotent() {
    let mut s = State::default();
    let test = env(&mut s, "test");
    s.ensure_version("Foo", "1");
    s.ensure_version("Foo", "2");
    let a = s.record_deployment("Foo", "1", &test, None);
    let blue = s.record_deployment("Foo", "1", &test, Some("blue"));
    let again = s.record_deployment("Foo", "1", &test, None);
    assert_eq!(a.uuid, again.uuid);
    let b = s.record_deployment("Foo", "2", &test, None);
    let current: Vec<_> = s
        .deployed
        .iter()
        .filter(|d| d.currently_deployed)
        .map(|d| d.uuid.clone())
        .collect();
    assert_eq!(current, vec![blue.uuid.clone(), b.uuid.clone()]);
    assert_eq!(
        s.versions_in_environment("Foo", &test.uuid),
        vec!["1".to_string(), "2".to_string()]
    );
}

#[test]
fn environment_validation_rules() {
    let mut s = State::default();
    env(&mut s, "test");
    let errs = s.validate_environment(&serde_json::json!({"name": "test"}), None);
    assert_eq!(
        errs["name"],
        vec!["name 'test' is already used by an existing environment.".to_string()]
    );
    assert_eq!(errs["production"], vec!["is missing".to_string()]);
    let errs = s.validate_environment(
        &serde_json::json!({"name": "a b", "production": true}),
        None,
    );
    assert_eq!(errs["name"], vec!["cannot contain spaces".to_string()]);
    assert_eq!(display_name_for("pre-prod"), "Pre prod");
}

#[test]
fn republishing_identical_content_keeps_sha() {
    let mut s = State::default();
    let c = serde_json::json!({"consumer": {"name": "Foo"}});
    let first = s.publish_pact("Foo", "1", "Bar", &c);
    let second = s.publish_pact("Foo", "2", "Bar", &c);
    assert_eq!(first.sha, second.sha);
    assert!(!s.publish_pact("Foo", "1", "Bar", &c).content_changed);
    assert!(
        s.publish_pact("Foo", "1", "Bar", &serde_json::json!({}))
            .content_changed
    );
}
