//! The record outbox: deployments and undeployments that must still be recorded in the broker,
//! one file each.
//!
//! A record is put here (idempotently, keyed by a deterministic id) once smoke passed, and
//! removed only after the broker accepted it, so a broker outage or a crash never loses one and
//! a retry never records twice. A corrupt outbox file is reported, never deleted.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::StateDir;
use super::atomic::{create_dir_private, remove_durable};
use super::error::{Error, Result};
use super::schema::{read_versioned, write_versioned};

/// What a pending record tells the broker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RecordKind {
    /// record-deployment: the version now runs in the environment. The default, so outbox and
    /// journal files written before undeployments existed still load as what they were.
    #[default]
    Deployment,
    /// record-undeployment: the service was removed from the environment for good.
    Undeployment,
}

impl RecordKind {
    /// `deployment` or `undeployment`, for logs, metric labels and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Deployment => "deployment",
            RecordKind::Undeployment => "undeployment",
        }
    }
}

/// One `record-deployment` or `record-undeployment` still to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingRecord {
    /// Deterministic id: see [`record_id`] and [`record_id_of`].
    pub id: String,
    /// Deployment or undeployment (absent in files from before undeployments: deployment).
    #[serde(default)]
    pub kind: RecordKind,
    /// The c2quay environment (state directory name).
    pub environment: String,
    /// The generation whose deploy produced this record.
    pub generation: String,
    /// The broker's environment name.
    pub broker_environment: String,
    /// The pacticipant (application) name.
    pub pacticipant: String,
    /// The pacticipant version that now runs (a deployment), or that ran until the service was
    /// removed (an undeployment: for logs and reports; the broker undeploys whatever version of
    /// the pacticipant is current).
    pub version: String,
    /// The broker's `applicationInstance`, when the manifest sets one.
    pub application_instance: Option<String>,
    /// When the record was queued.
    #[serde(with = "super::clock::rfc3339")]
    pub created_at: SystemTime,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The last failure, for status and logs.
    pub last_error: Option<String>,
    /// Do not retry before this time (`None`: now).
    #[serde(with = "super::clock::rfc3339_opt")]
    pub next_attempt_at: Option<SystemTime>,
}

/// The id of a deployment record: the first 16 hex digits of the SHA-256 of its identifying
/// fields. Unchanged since before undeployments, so queued records keep their ids.
pub fn record_id(
    environment: &str,
    generation: &str,
    pacticipant: &str,
    version: &str,
    instance: Option<&str>,
) -> String {
    record_id_of(
        RecordKind::Deployment,
        environment,
        generation,
        pacticipant,
        version,
        instance,
    )
}

/// The id of a record of `kind`: a deployment's is [`record_id`]; an undeployment's hashes one
/// more field, its kind, so it never collides with the deployment of the same pacticipant,
/// version and generation.
pub fn record_id_of(
    kind: RecordKind,
    environment: &str,
    generation: &str,
    pacticipant: &str,
    version: &str,
    instance: Option<&str>,
) -> String {
    let mut h = Sha256::new();
    let parts = [
        environment,
        generation,
        pacticipant,
        version,
        instance.unwrap_or(""),
    ];
    let kind_part = match kind {
        RecordKind::Deployment => None,
        RecordKind::Undeployment => Some(kind.as_str()),
    };
    for part in parts.into_iter().chain(kind_part) {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..8])
}

impl PendingRecord {
    /// A new deployment record with no attempts; its id is derived from the identifying fields.
    pub fn new(
        environment: &str,
        generation: &str,
        broker_environment: &str,
        pacticipant: &str,
        version: &str,
        application_instance: Option<&str>,
        created_at: SystemTime,
    ) -> Self {
        PendingRecord {
            id: record_id(
                environment,
                generation,
                pacticipant,
                version,
                application_instance,
            ),
            kind: RecordKind::Deployment,
            environment: environment.to_string(),
            generation: generation.to_string(),
            broker_environment: broker_environment.to_string(),
            pacticipant: pacticipant.to_string(),
            version: version.to_string(),
            application_instance: application_instance.map(str::to_string),
            created_at,
            attempts: 0,
            last_error: None,
            next_attempt_at: None,
        }
    }

    /// A new undeployment record with no attempts: `pacticipant` (last at `version`) was
    /// removed from the environment by the deploy of `generation`.
    pub fn undeployment(
        environment: &str,
        generation: &str,
        broker_environment: &str,
        pacticipant: &str,
        version: &str,
        application_instance: Option<&str>,
        created_at: SystemTime,
    ) -> Self {
        let kind = RecordKind::Undeployment;
        PendingRecord {
            id: record_id_of(
                kind,
                environment,
                generation,
                pacticipant,
                version,
                application_instance,
            ),
            kind,
            ..PendingRecord::new(
                environment,
                generation,
                broker_environment,
                pacticipant,
                version,
                application_instance,
                created_at,
            )
        }
    }

    /// Notes a failed attempt at `now`: counts it, keeps the error, waits `retry_after`.
    pub fn record_failure(&mut self, error: &str, now: SystemTime, retry_after: Duration) {
        self.attempts = self.attempts.saturating_add(1);
        self.last_error = Some(error.to_string());
        self.next_attempt_at = Some(now + retry_after);
    }

    /// Whether the record may be tried at `now`.
    pub fn is_due(&self, now: SystemTime) -> bool {
        self.next_attempt_at.is_none_or(|t| t <= now)
    }
}

impl StateDir {
    /// Queues `record` unless a record with its id is already queued (then the queued one, with
    /// its attempt count, is kept). Returns whether it was added.
    ///
    /// A queued file with this id that does not parse (truncated by a crash of another tool, a
    /// disk error) is moved aside to `<id>.json.corrupt-<ts>` and replaced by `record`: the
    /// record is not lost behind an unreadable file, and the bad bytes are kept for inspection.
    pub fn outbox_put(&self, env: &str, record: &PendingRecord) -> Result<bool> {
        let path = self.outbox_path(env, &record.id)?;
        match read_versioned::<PendingRecord>(&path) {
            Ok(_) => return Ok(false),
            Err(error) if error.is_not_found() => {}
            Err(error) if error.kind() == "corrupt" => {
                let moved = self.quarantine(&path)?;
                tracing::warn!(
                    environment = env,
                    file = %path.display(),
                    moved_to = %moved.display(),
                    "corrupt outbox entry moved aside and rewritten from the journal"
                );
            }
            Err(error) => return Err(error),
        }
        write_versioned(&path, record)?;
        Ok(true)
    }

    /// Replaces a queued record (after a failed attempt).
    pub fn outbox_update(&self, env: &str, record: &PendingRecord) -> Result<()> {
        let path = self.outbox_path(env, &record.id)?;
        write_versioned(&path, record)
    }

    /// Removes a record once the broker accepted it (idempotent).
    pub fn outbox_remove(&self, env: &str, id: &str) -> Result<()> {
        let path = self.outbox_path(env, id)?;
        remove_durable(&path)
    }

    /// The queued records of `env`, oldest first, and the files that could not be read (left in
    /// place for an operator).
    pub fn outbox_list(&self, env: &str) -> Result<(Vec<PendingRecord>, Vec<Error>)> {
        self.validate_env_name(env)?;
        let dir = self.outbox_dir(env);
        let mut records = Vec::new();
        let mut problems = Vec::new();
        for path in json_files(&dir)? {
            match read_versioned::<PendingRecord>(&path) {
                Ok(r) => records.push(r),
                Err(e) => problems.push(e),
            }
        }
        records.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok((records, problems))
    }

    fn outbox_path(&self, env: &str, id: &str) -> Result<PathBuf> {
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::InvalidName {
                what: "record id",
                value: id.to_string(),
                rule: "1-64 hex digits",
            });
        }
        self.ensure_env(env)?;
        let dir = self.outbox_dir(env);
        create_dir_private(&dir)?;
        Ok(dir.join(format!("{id}.json")))
    }
}

/// The `*.json` files of `dir`, sorted by name; a missing dir has none.
pub(crate) fn json_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".json") && !name.starts_with('.') {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn state() -> (tempfile::TempDir, StateDir) {
        crate::state::test_state_dir(0)
    }

    fn rec(version: &str, secs: u64) -> PendingRecord {
        PendingRecord::new(
            "shop",
            "g1",
            "production",
            "web",
            version,
            Some("blue"),
            UNIX_EPOCH + Duration::from_secs(secs),
        )
    }

    #[test]
    fn id_is_deterministic_and_depends_on_every_identifying_field() {
        let a = record_id("shop", "g1", "web", "2", None);
        assert_eq!(a.len(), 16);
        assert_eq!(a, record_id("shop", "g1", "web", "2", None));
        assert_ne!(a, record_id("shop", "g2", "web", "2", None));
        assert_ne!(a, record_id("shop", "g1", "web", "2", Some("blue")));
        assert_ne!(
            record_id("ab", "c", "w", "1", None),
            record_id("a", "bc", "w", "1", None),
            "fields are separated"
        );
    }

    #[test]
    fn an_undeployment_has_its_own_id_and_a_deployment_keeps_the_old_one() {
        let at = UNIX_EPOCH + Duration::from_secs(10);
        let deployment = PendingRecord::new("shop", "g1", "production", "web", "2", None, at);
        let undeployment =
            PendingRecord::undeployment("shop", "g1", "production", "web", "2", None, at);
        assert_eq!(deployment.kind, RecordKind::Deployment);
        assert_eq!(undeployment.kind, RecordKind::Undeployment);
        assert_eq!(deployment.id, record_id("shop", "g1", "web", "2", None));
        // The id a deployment record had before undeployments existed.
        assert_eq!(deployment.id, "a3180cea8db772f6");
        assert_ne!(undeployment.id, deployment.id);
        assert_eq!(
            (undeployment.pacticipant.as_str(), undeployment.attempts),
            ("web", 0)
        );
        let (_d, s) = state();
        assert!(s.outbox_put("shop", &deployment).unwrap());
        assert!(
            s.outbox_put("shop", &undeployment).unwrap(),
            "both are queued"
        );
        assert_eq!(s.outbox_list("shop").unwrap().0.len(), 2);
    }

    #[test]
    fn an_outbox_file_without_a_kind_loads_as_a_deployment() {
        let (_d, s) = state();
        let r = rec("2", 10);
        let mut old = serde_json::to_value(&r).unwrap();
        old.as_object_mut().unwrap().remove("kind");
        let path = s.outbox_dir("shop").join(format!("{}.json", r.id));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, old.to_string()).unwrap();
        let (list, problems) = s.outbox_list("shop").unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(list, vec![r]);
        assert_eq!(list[0].kind, RecordKind::Deployment);
    }

    #[test]
    fn put_is_idempotent_and_keeps_attempts() {
        let (_d, s) = state();
        let mut r = rec("2", 10);
        assert!(s.outbox_put("shop", &r).unwrap());
        r.record_failure(
            "broker returned 503",
            UNIX_EPOCH + Duration::from_secs(20),
            Duration::from_secs(30),
        );
        s.outbox_update("shop", &r).unwrap();
        assert!(
            !s.outbox_put("shop", &rec("2", 10)).unwrap(),
            "same id: not added again"
        );
        let (list, problems) = s.outbox_list("shop").unwrap();
        assert!(problems.is_empty());
        assert_eq!(list, vec![r.clone()]);
        assert_eq!(list[0].attempts, 1);
        assert!(!list[0].is_due(UNIX_EPOCH + Duration::from_secs(49)));
        assert!(list[0].is_due(UNIX_EPOCH + Duration::from_secs(50)));
        let mode = std::fs::metadata(s.outbox_dir("shop").join(format!("{}.json", r.id)))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }

    #[test]
    fn list_is_oldest_first_and_remove_is_idempotent() {
        let (_d, s) = state();
        let (new, old) = (rec("3", 50), rec("2", 10));
        s.outbox_put("shop", &new).unwrap();
        s.outbox_put("shop", &old).unwrap();
        assert_eq!(
            s.outbox_list("shop").unwrap().0,
            vec![old.clone(), new.clone()]
        );
        s.outbox_remove("shop", &old.id).unwrap();
        s.outbox_remove("shop", &old.id).unwrap();
        assert_eq!(s.outbox_list("shop").unwrap().0, vec![new]);
        assert_eq!(s.outbox_list("empty").unwrap().0, vec![]);
    }

    #[test]
    fn corrupt_outbox_file_is_reported_and_never_deleted() {
        let (_d, s) = state();
        s.outbox_put("shop", &rec("2", 10)).unwrap();
        let bad = s.outbox_dir("shop").join("00000000deadbeef.json");
        std::fs::write(&bad, b"{\"id\":").unwrap();
        let (list, problems) = s.outbox_list("shop").unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].to_string().contains("00000000deadbeef.json"),
            "{}",
            problems[0]
        );
        assert!(bad.exists());
    }

    #[test]
    fn put_over_a_corrupt_entry_moves_it_aside_and_writes_the_record() {
        let (_d, s) = state();
        let r = rec("2", 10);
        let path = s.outbox_dir("shop").join(format!("{}.json", r.id));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"{\"id\": \"tru").unwrap();
        assert!(
            s.outbox_put("shop", &r).unwrap(),
            "written over the corrupt file"
        );
        let (list, problems) = s.outbox_list("shop").unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(list, vec![r.clone()]);
        let moved = path.with_file_name(format!("{}.json.corrupt-0", r.id));
        assert_eq!(
            std::fs::read(&moved).unwrap(),
            b"{\"id\": \"tru",
            "bad bytes kept"
        );
    }

    #[test]
    fn ids_that_are_not_hex_are_refused() {
        let (_d, s) = state();
        assert_eq!(
            s.outbox_remove("shop", "../status").unwrap_err().kind(),
            "invalid"
        );
    }
}
