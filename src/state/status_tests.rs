//! Tests of `status.rs`.

use std::time::{Duration, UNIX_EPOCH};

use super::*;

fn state() -> (tempfile::TempDir, StateDir) {
    crate::state::test_state_dir(0)
}

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn entry(i: u64) -> HistoryEntry {
    HistoryEntry {
        at: t(i),
        generation: Some(format!("g{i}")),
        revision: None,
        action: "deploy".into(),
        reason: "web 1 -> 2".into(),
        result: "succeeded".into(),
        duration_ms: i,
    }
}

#[test]
fn phase_names_are_unique_and_round_trip() {
    let names: std::collections::BTreeSet<_> = Phase::ALL.iter().map(|p| p.as_str()).collect();
    assert_eq!(names.len(), Phase::ALL.len());
    for p in Phase::ALL {
        assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        assert_eq!(p.to_string(), p.as_str());
    }
}

#[test]
fn set_condition_moves_transition_time_only_on_status_change() {
    let mut s = EnvironmentStatus::new("shop");
    s.set_condition(
        ConditionType::Gated,
        ConditionStatus::Unknown,
        "VerificationUnknown",
        "no result",
        t(1),
    );
    s.set_condition(
        ConditionType::Gated,
        ConditionStatus::Unknown,
        "VerificationUnknown",
        "still none",
        t(2),
    );
    let c = s.condition(ConditionType::Gated).unwrap();
    assert_eq!(c.last_transition_time, t(1));
    assert_eq!(c.message, "still none");
    s.set_condition(
        ConditionType::Gated,
        ConditionStatus::True,
        "Deployable",
        "ok",
        t(3),
    );
    assert_eq!(
        s.condition(ConditionType::Gated)
            .unwrap()
            .last_transition_time,
        t(3)
    );
    s.set_condition(
        ConditionType::Recorded,
        ConditionStatus::False,
        "BrokerUnavailable",
        "503",
        t(4),
    );
    assert_eq!(s.conditions.len(), 2);
    assert_eq!(s.condition(ConditionType::Applied), None);
}

#[test]
fn history_is_bounded_to_the_last_ten() {
    let mut s = EnvironmentStatus::new("shop");
    for i in 0..25 {
        s.push_history(entry(i));
    }
    assert_eq!(s.history.len(), HISTORY_LIMIT);
    assert_eq!(s.history.front().unwrap().duration_ms, 15);
    assert_eq!(s.history.back().unwrap().duration_ms, 24);
}

#[test]
fn status_json_is_camel_case_with_rfc3339_times() {
    let mut s = EnvironmentStatus::new("shop");
    s.set_condition(
        ConditionType::SmokePassed,
        ConditionStatus::True,
        "ChecksPassed",
        "2 checks",
        t(1_767_323_045),
    );
    s.releases.insert(
        "web".into(),
        Release {
            version: Some("2".into()),
            image: "c2quay-test/web:2".into(),
            image_id: None,
            pacticipant: None,
        },
    );
    s.heals.push(t(0));
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["phase"], "Pending");
    assert_eq!(v["conditions"][0]["type"], "SmokePassed");
    assert_eq!(v["conditions"][0]["status"], "True");
    assert_eq!(
        v["conditions"][0]["lastTransitionTime"],
        "2026-01-02T03:04:05.000Z"
    );
    assert_eq!(v["releases"]["web"]["imageId"], serde_json::Value::Null);
    assert_eq!(v["heals"][0], "1970-01-01T00:00:00.000Z");
    assert!(v.get("pendingRecords").is_some() && v.get("nextGateCheckAt").is_some());
}

#[test]
fn write_read_and_list() {
    let (_d, st) = state();
    assert_eq!(st.read_status("shop").unwrap(), None);
    let mut s = EnvironmentStatus::new("shop");
    s.phase = Phase::Ready;
    s.push_history(entry(1));
    st.write_status("shop", &s).unwrap();
    assert_eq!(st.read_status("shop").unwrap(), Some(s.clone()));
    st.write_status("blog", &EnvironmentStatus::new("blog"))
        .unwrap();
    st.ensure_env("empty").unwrap();
    let (list, errors) = st.list_statuses();
    assert!(errors.is_empty());
    assert_eq!(
        list.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["blog", "shop"]
    );
}

#[test]
fn corrupt_status_is_listed_as_an_error_naming_the_file() {
    let (_d, st) = state();
    st.write_status("shop", &EnvironmentStatus::new("shop"))
        .unwrap();
    st.ensure_env("blog").unwrap();
    std::fs::write(st.status_file("blog"), b"{\"name\":\"blog\",\"pha").unwrap();
    let (list, errors) = st.list_statuses();
    assert_eq!(list.len(), 1);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind(), "corrupt");
    assert!(
        errors[0].to_string().contains("envs/blog/status.json"),
        "{}",
        errors[0]
    );
}
