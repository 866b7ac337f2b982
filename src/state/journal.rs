//! The intent journal: what a deploy, rollback or heal is about to do, written before the first
//! side effect and cleared at the end.
//!
//! After a crash, an open intent tells the next start what was in flight and how far it got, so
//! recovery can finish it (smoke, record) or roll back to its pre-snapshot. One intent per
//! environment at most: `envs/<name>/intent.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::StateDir;
use super::atomic::remove_durable;
use super::error::{Error, Result};
use super::outbox::PendingRecord;
use super::schema::{read_versioned_opt, write_versioned};

/// What kind of operation an intent describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    /// Apply a new generation (gate passed).
    Deploy,
    /// Restore the images of a pre-snapshot.
    Rollback,
    /// Re-apply the applied release after drift (no gate, no record).
    Heal,
}

/// How far an operation got; ordered, so `step >= Step::UpDone` reads naturally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    /// The intent is written; nothing on the host changed yet.
    Started,
    /// Images are pulled; containers unchanged.
    Pulled,
    /// `docker compose up` returned; containers may be recreated.
    UpDone,
    /// Every service passed readiness.
    Ready,
    /// Smoke checks passed; the outbox holds the records to make.
    SmokePassed,
    /// Every record was made (or parked in the outbox); only clean-up is left.
    Recorded,
}

/// One in-flight operation on one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Intent {
    /// Generation (manifest hash) being applied.
    pub generation: String,
    /// Deploy, rollback or heal.
    pub operation: Operation,
    /// When the operation started.
    #[serde(with = "super::clock::rfc3339")]
    pub started_at: SystemTime,
    /// The snapshot taken before anything changed: what a rollback restores.
    pub pre_snapshot: PathBuf,
    /// Service -> image reference being applied.
    pub target_images: BTreeMap<String, String>,
    /// Service -> image id (or reference) that ran before, to restore on rollback.
    pub previous_images: BTreeMap<String, String>,
    /// Service -> the image id those containers ran: a rollback pins the id when the
    /// reference's tag has moved since.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub previous_image_ids: BTreeMap<String, String>,
    /// Services whose containers this operation changes.
    pub changed_services: Vec<String>,
    /// What must be recorded in the broker if the operation completes.
    pub records: Vec<PendingRecord>,
    /// How far it got.
    pub step: Step,
    /// How many times recovery resumed this intent after a restart (0 for a journal written
    /// before resumes were counted): a crash loop on one intent is bounded by it.
    #[serde(default)]
    pub resumes: u32,
    /// The rendered model a rollback re-applies, when the operation changes configuration (the
    /// last applied model, [`StateDir::applied_model_file`]); `None`: the Compose files as
    /// they are, with the previous images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_model: Option<PathBuf>,
    /// The hash of the rendered model being applied (`crate::plan::model_hash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_hash: Option<String>,
    /// Services whose new release the gate held back in this wave of a per-service deploy,
    /// with the image each keeps pinned (`None`: none ran, no pin): neither applied nor
    /// committed by this operation.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub held: BTreeMap<String, Option<String>>,
}

impl StateDir {
    /// Writes (replacing any previous) the intent of `env`, atomically. Call before the first
    /// side effect of a deploy, rollback or heal.
    pub fn write_intent(&self, env: &str, intent: &Intent) -> Result<()> {
        self.ensure_env(env)?;
        write_versioned(&self.intent_file(env), intent)
    }

    /// Advances the open intent of `env` to `step` and returns it. Fails with
    /// [`Error::NoIntent`] when none is open.
    pub fn update_intent_step(&self, env: &str, step: Step) -> Result<Intent> {
        let mut intent = self.read_intent(env)?.ok_or_else(|| Error::NoIntent {
            path: self.intent_file(env),
        })?;
        intent.step = step;
        self.write_intent(env, &intent)?;
        Ok(intent)
    }

    /// The open intent of `env`, if any. A corrupt intent file is an error, never ignored:
    /// recovery must not guess.
    pub fn read_intent(&self, env: &str) -> Result<Option<Intent>> {
        self.validate_env_name(env)?;
        read_versioned_opt(&self.intent_file(env))
    }

    /// Removes the intent of `env` (idempotent). Call when the operation is fully done.
    pub fn clear_intent(&self, env: &str) -> Result<()> {
        self.validate_env_name(env)?;
        remove_durable(&self.intent_file(env))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    /// A deploy intent referencing `pre_snapshot`, for tests of this and other state modules.
    pub(crate) fn intent(pre_snapshot: PathBuf) -> Intent {
        let now = UNIX_EPOCH + Duration::from_secs(1_767_323_045);
        Intent {
            generation: "g2".into(),
            operation: Operation::Deploy,
            started_at: now,
            pre_snapshot,
            target_images: BTreeMap::from([("web".into(), "c2quay-test/web:2".into())]),
            previous_images: BTreeMap::from([("web".into(), "sha256:111".into())]),
            changed_services: vec!["web".into()],
            records: vec![PendingRecord::new(
                "shop",
                "g2",
                "production",
                "web",
                "2",
                None,
                now,
            )],
            step: Step::Started,
            resumes: 0,
            previous_image_ids: Default::default(),
            restore_model: None,
            model_hash: None,
            held: Default::default(),
        }
    }

    fn state() -> (tempfile::TempDir, StateDir) {
        crate::state::test_state_dir(0)
    }

    #[test]
    fn intent_lifecycle() {
        let (_d, s) = state();
        assert_eq!(s.read_intent("shop").unwrap(), None);
        let i = intent("/x/pre.json".into());
        s.write_intent("shop", &i).unwrap();
        assert_eq!(s.read_intent("shop").unwrap(), Some(i.clone()));
        let updated = s.update_intent_step("shop", Step::UpDone).unwrap();
        assert_eq!(updated.step, Step::UpDone);
        assert_eq!(s.read_intent("shop").unwrap().unwrap().step, Step::UpDone);
        s.clear_intent("shop").unwrap();
        s.clear_intent("shop").unwrap();
        assert_eq!(s.read_intent("shop").unwrap(), None);
    }

    #[test]
    fn update_without_intent_names_the_file() {
        let (_d, s) = state();
        let err = s.update_intent_step("shop", Step::Ready).unwrap_err();
        assert!(matches!(err, Error::NoIntent { .. }));
        assert!(err.to_string().contains("envs/shop/intent.json"), "{err}");
    }

    #[test]
    fn corrupt_intent_is_an_error_and_stays() {
        let (_d, s) = state();
        s.ensure_env("shop").unwrap();
        std::fs::write(s.intent_file("shop"), b"{\"generation\":").unwrap();
        let err = s.read_intent("shop").unwrap_err();
        assert_eq!(err.kind(), "corrupt");
        assert!(err.to_string().contains("intent.json"), "{err}");
        assert!(s.intent_file("shop").exists());
    }

    #[test]
    fn a_journal_without_a_resume_count_parses_as_never_resumed() {
        let mut json = serde_json::to_value(intent("/p".into())).unwrap();
        json.as_object_mut().unwrap().remove("resumes");
        let parsed: Intent = serde_json::from_value(json).unwrap();
        assert_eq!(parsed.resumes, 0);
    }

    #[test]
    fn steps_are_ordered_and_serialized_camel_case() {
        assert!(
            Step::Started < Step::Pulled
                && Step::UpDone < Step::SmokePassed
                && Step::SmokePassed < Step::Recorded
        );
        let json = serde_json::to_value(intent("/p".into())).unwrap();
        assert_eq!(json["step"], "started");
        assert_eq!(json["operation"], "deploy");
        assert_eq!(json["startedAt"], "2026-01-02T03:04:05.000Z");
        assert_eq!(json["targetImages"]["web"], "c2quay-test/web:2");
    }
}
