//! Every released shape of the state files (`tests/fixtures/state/`) loads through the real
//! readers, and this code writes exactly the newest fixture.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::pipeline::Snapshot;
use crate::state::{Intent, PendingRecord, RecordKind, StateDir, Step};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state")
}

/// The fixtures of `file` (`status`, `intent`, ...), oldest first, the current one last.
fn shapes(file: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(&format!("{file}.v")) && name.ends_with(".json")
        })
        .collect();
    found.sort_by_key(|p| std::fs::read_to_string(p).unwrap().len());
    let current = fixtures().join(format!("{file}.v{}.json", super::SCHEMA_VERSION));
    found.retain(|p| *p != current);
    found.push(current);
    found
}

fn state() -> (tempfile::TempDir, StateDir) {
    crate::state::test_state_dir(0)
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Writes `value` as this code does and compares it with the current fixture.
fn assert_written_as_current<T: serde::Serialize>(file: &str, value: &T) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    super::write_versioned(&out, value).unwrap();
    let current = fixtures().join(format!("{file}.v{}.json", super::SCHEMA_VERSION));
    assert_eq!(
        json(&out),
        json(&current),
        "this code writes another {file} shape than {}: add a fixture of the new shape",
        current.display()
    );
}

#[test]
fn every_released_status_shape_loads_and_keeps_its_failed_generation() {
    let shapes = shapes("status");
    assert!(shapes.len() >= 3, "{shapes:?}");
    let (_d, s) = state();
    let mut last = None;
    for shape in &shapes {
        s.ensure_env("shop").unwrap();
        std::fs::copy(shape, s.status_file("shop")).unwrap();
        let status = s
            .read_status("shop")
            .unwrap_or_else(|e| panic!("{}: {e}", shape.display()))
            .unwrap();
        assert_eq!(status.phase, crate::state::Phase::RolledBack, "{shape:?}");
        assert_eq!(
            status.failed_generation.as_deref(),
            Some("9f2c1e0a7b3d4c55"),
            "{shape:?}"
        );
        assert_eq!(status.releases["web"].version.as_deref(), Some("1"));
        assert_eq!(status.history.len(), 1);
        last = Some(status);
    }
    let last = last.unwrap();
    // The current shape carries the git revisions (issue 15); the older ones have none.
    assert_eq!(
        last.applied_revision.as_deref(),
        Some("main@sha1:1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d")
    );
    assert!(last.history[0].revision.is_some());
    assert_written_as_current("status", &last);
}

#[test]
fn every_released_intent_shape_loads() {
    let shapes = shapes("intent");
    assert!(shapes.len() >= 6, "{shapes:?}");
    let (_d, s) = state();
    let mut last: Option<Intent> = None;
    for shape in &shapes {
        s.ensure_env("shop").unwrap();
        std::fs::copy(shape, s.intent_file("shop")).unwrap();
        let intent = s
            .read_intent("shop")
            .unwrap_or_else(|e| panic!("{}: {e}", shape.display()))
            .unwrap();
        assert_eq!(intent.step, Step::UpDone, "{shape:?}");
        assert_eq!(intent.records.len(), 1);
        assert_eq!(intent.records[0].kind, RecordKind::Deployment);
        last = Some(intent);
    }
    let last = last.unwrap();
    assert_eq!(last.resumes, 1);
    assert_eq!(last.held.len(), 1);
    assert_written_as_current("intent", &last);
}

#[test]
fn every_released_outbox_shape_loads() {
    let shapes = shapes("outbox");
    assert!(shapes.len() >= 3, "{shapes:?}");
    let mut last: Option<PendingRecord> = None;
    for shape in &shapes {
        let (_d, s) = state();
        let path = s.outbox_dir("shop").join("a3180cea8db772f6.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::copy(shape, &path).unwrap();
        let (mut records, problems) = s.outbox_list("shop").unwrap();
        assert!(problems.is_empty(), "{shape:?}: {problems:?}");
        let record = records.pop().unwrap();
        assert_eq!((record.kind, record.attempts), (RecordKind::Deployment, 1));
        last = Some(record);
    }
    assert_written_as_current("outbox", &last.unwrap());
}

#[test]
fn every_released_snapshot_shape_loads() {
    let shapes = shapes("snapshot");
    assert!(shapes.len() >= 5, "{shapes:?}");
    let (_d, s) = state();
    let mut last: Option<Snapshot> = None;
    for shape in &shapes {
        let snapshot: Snapshot = s
            .read_snapshot(shape)
            .unwrap_or_else(|e| panic!("{}: {e}", shape.display()));
        assert_eq!(
            snapshot.running_images()["web"],
            "registry.example/shop/web:1"
        );
        last = Some(snapshot);
    }
    assert_eq!(last.as_ref().unwrap().versions["web"], "1");
    assert_written_as_current("snapshot", &last.unwrap());
}

#[test]
fn a_status_from_a_newer_c2quay_is_refused_and_left_as_it_is() {
    let (_d, s) = state();
    s.ensure_env("shop").unwrap();
    let mut newer = json(&fixtures().join(format!("status.v{}.json", super::SCHEMA_VERSION)));
    let future = super::SCHEMA_VERSION + 1;
    newer["schemaVersion"] = future.into();
    newer["fieldOfTheFuture"] = "x".into();
    let text = serde_json::to_string_pretty(&newer).unwrap();
    std::fs::write(s.status_file("shop"), &text).unwrap();
    let err = s.read_status("shop").unwrap_err();
    assert_eq!(err.kind(), "newer_schema");
    let message = err.to_string();
    assert!(
        message.contains("envs/shop/status.json")
            && message.contains(&format!("schemaVersion {future}")),
        "{message}"
    );
    let (listed, errors) = s.list_statuses();
    assert!(listed.is_empty());
    assert_eq!(errors[0].kind(), "newer_schema");
    assert_eq!(
        std::fs::read_to_string(s.status_file("shop")).unwrap(),
        text
    );
}
