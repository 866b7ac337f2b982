//! Test support: [`FakeBroker`], a stateful in-memory [`Broker`] for pipeline and agent tests.
//!
//! Not a broker: it holds the verdict a test sets per (pacticipant, version), the deployments
//! recorded and what they make currently deployed, the undeployments asked for, and failure
//! switches. Compiled for tests and the `test-support` feature.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use super::error::{Error, Result};
use super::{Broker, Candidate, GateAnswer, GateMode, UndeployOutcome, Verdict};

/// One successful record-deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The environment name.
    pub environment: String,
    /// The pacticipant version.
    pub candidate: Candidate,
    /// The application instance, if any.
    pub application_instance: Option<String>,
}

/// One successful record-undeployment call (one that found nothing included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undeployed {
    /// The environment name.
    pub environment: String,
    /// The pacticipant.
    pub pacticipant: String,
    /// The application instance, if any.
    pub application_instance: Option<String>,
    /// What the call found and did.
    pub outcome: UndeployOutcome,
}

/// A stateful fake broker. Candidates without a set verdict are `NotDeployable`, as the real
/// broker answers for a version it has never seen.
#[derive(Debug, Default)]
pub struct FakeBroker {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    answers: HashMap<(String, String), GateAnswer>,
    environments: Option<BTreeSet<String>>,
    fail_next_gates: u32,
    fail_next_records: u32,
    fail_next_undeployments: u32,
    records: Vec<Recorded>,
    /// (environment, pacticipant, instance) -> the version currently deployed there.
    current: HashMap<(String, String, Option<String>), String>,
    undeployments: Vec<Undeployed>,
    requests: u64,
    gate_calls: Vec<(String, Vec<Candidate>, GateMode)>,
}

/// A plain answer for a verdict, with a reason like the broker's.
pub fn answer(verdict: Verdict) -> GateAnswer {
    let (reason, success, failed, unknown) = match verdict {
        Verdict::Deployable => (
            "All required verification results are published and successful",
            1,
            0,
            0,
        ),
        Verdict::NotDeployable => ("a verification failed (fake)", 0, 1, 0),
        Verdict::Unknown => ("a verification is missing (fake)", 0, 0, 1),
    };
    GateAnswer {
        verdict,
        reason: reason.to_string(),
        success,
        failed,
        unknown,
        failing_rows: Vec::new(),
    }
}

fn unavailable(what: &str) -> Error {
    Error::Status {
        relation: what.to_string(),
        path: "(fake)".to_string(),
        status: 503,
        body: "injected failure".to_string(),
    }
}

impl FakeBroker {
    /// An empty fake: no verdicts, every environment accepted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the verdict for one pacticipant version (with a generic reason).
    pub fn set_verdict(&self, pacticipant: &str, version: &str, verdict: Verdict) {
        self.set_answer(pacticipant, version, answer(verdict));
    }

    /// Sets the full answer for one pacticipant version.
    pub fn set_answer(&self, pacticipant: &str, version: &str, answer: GateAnswer) {
        self.lock()
            .answers
            .insert((pacticipant.to_string(), version.to_string()), answer);
    }

    /// Restricts record-deployment to these environments; others fail with
    /// [`Error::UnknownEnvironment`].
    pub fn set_environments<I: IntoIterator<Item = S>, S: Into<String>>(&self, names: I) {
        self.lock().environments = Some(names.into_iter().map(Into::into).collect());
    }

    /// The next `n` can-i-deploy calls fail with a transient 503 error.
    pub fn fail_next_gates(&self, n: u32) {
        self.lock().fail_next_gates = n;
    }

    /// The next `n` record-deployment calls fail with a transient 503 error.
    pub fn fail_next_records(&self, n: u32) {
        self.lock().fail_next_records = n;
    }

    /// The next `n` record-undeployment calls fail with a transient 503 error.
    pub fn fail_next_undeployments(&self, n: u32) {
        self.lock().fail_next_undeployments = n;
    }

    /// Every successful record-undeployment call, in call order (those that found nothing
    /// included), so a test can assert that an undeployment was asked for exactly once.
    pub fn undeployments(&self) -> Vec<Undeployed> {
        self.lock().undeployments.clone()
    }

    /// The version of `pacticipant` currently deployed in `environment` and instance, as the
    /// records and undeployments so far leave it.
    pub fn currently_deployed(
        &self,
        environment: &str,
        pacticipant: &str,
        application_instance: Option<&str>,
    ) -> Option<String> {
        self.lock()
            .current
            .get(&current_key(environment, pacticipant, application_instance))
            .cloned()
    }

    /// Every successful record-deployment, in call order (re-records included).
    pub fn records(&self) -> Vec<Recorded> {
        self.lock().records.clone()
    }

    /// Every can-i-deploy call: (environment, candidates, mode).
    pub fn gate_calls(&self) -> Vec<(String, Vec<Candidate>, GateMode)> {
        self.lock().gate_calls.clone()
    }

    /// Number of calls made to the fake (gates, records and undeployments, failed ones
    /// included).
    pub fn request_count(&self) -> u64 {
        self.lock().requests
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn answer_for(state: &State, candidate: &Candidate) -> GateAnswer {
        state
            .answers
            .get(&(candidate.pacticipant.clone(), candidate.version.clone()))
            .cloned()
            .unwrap_or_else(|| GateAnswer {
                verdict: Verdict::NotDeployable,
                reason: format!(
                    "No pacts or verifications have been published for version {} of {}",
                    candidate.version, candidate.pacticipant
                ),
                success: 0,
                failed: 0,
                unknown: 0,
                failing_rows: Vec::new(),
            })
    }
}

fn current_key(
    environment: &str,
    pacticipant: &str,
    application_instance: Option<&str>,
) -> (String, String, Option<String>) {
    (
        environment.to_string(),
        pacticipant.to_string(),
        application_instance.map(str::to_string),
    )
}

/// Combines per-candidate answers like the broker's one matrix query: unknown wins over not
/// deployable, which wins over deployable.
fn combine(answers: Vec<GateAnswer>) -> GateAnswer {
    let verdict = if answers.iter().any(|a| a.verdict == Verdict::Unknown) {
        Verdict::Unknown
    } else if answers.iter().any(|a| a.verdict == Verdict::NotDeployable) {
        Verdict::NotDeployable
    } else {
        Verdict::Deployable
    };
    GateAnswer {
        verdict,
        reason: answers
            .iter()
            .map(|a| a.reason.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        success: answers.iter().map(|a| a.success).sum(),
        failed: answers.iter().map(|a| a.failed).sum(),
        unknown: answers.iter().map(|a| a.unknown).sum(),
        failing_rows: answers.into_iter().flat_map(|a| a.failing_rows).collect(),
    }
}

impl Broker for FakeBroker {
    async fn can_i_deploy(
        &self,
        environment: &str,
        candidates: &[Candidate],
        mode: GateMode,
    ) -> Result<Vec<GateAnswer>> {
        let mut state = self.lock();
        state.requests += 1;
        state
            .gate_calls
            .push((environment.to_string(), candidates.to_vec(), mode));
        if state.fail_next_gates > 0 {
            state.fail_next_gates -= 1;
            return Err(unavailable("matrix"));
        }
        let answers: Vec<GateAnswer> = candidates
            .iter()
            .map(|c| Self::answer_for(&state, c))
            .collect();
        Ok(match mode {
            GateMode::AllOrNothing if candidates.len() >= 2 => vec![combine(answers)],
            _ => answers,
        })
    }

    async fn record_deployment(
        &self,
        environment: &str,
        candidate: &Candidate,
        application_instance: Option<&str>,
    ) -> Result<()> {
        let mut state = self.lock();
        state.requests += 1;
        if state.fail_next_records > 0 {
            state.fail_next_records -= 1;
            return Err(unavailable("pb:record-deployment"));
        }
        if let Some(known) = &state.environments
            && !known.contains(environment)
        {
            return Err(Error::UnknownEnvironment {
                environment: environment.to_string(),
            });
        }
        state.records.push(Recorded {
            environment: environment.to_string(),
            candidate: candidate.clone(),
            application_instance: application_instance.map(str::to_string),
        });
        state.current.insert(
            current_key(environment, &candidate.pacticipant, application_instance),
            candidate.version.clone(),
        );
        Ok(())
    }

    async fn record_undeployment(
        &self,
        environment: &str,
        pacticipant: &str,
        application_instance: Option<&str>,
    ) -> Result<UndeployOutcome> {
        let mut state = self.lock();
        state.requests += 1;
        if state.fail_next_undeployments > 0 {
            state.fail_next_undeployments -= 1;
            return Err(unavailable("pb:currently-deployed-deployed-versions"));
        }
        if let Some(known) = &state.environments
            && !known.contains(environment)
        {
            return Err(Error::UnknownEnvironment {
                environment: environment.to_string(),
            });
        }
        let outcome =
            match state
                .current
                .remove(&current_key(environment, pacticipant, application_instance))
            {
                Some(version) => UndeployOutcome::Undeployed {
                    versions: vec![version],
                },
                None => UndeployOutcome::NothingDeployed,
            };
        state.undeployments.push(Undeployed {
            environment: environment.to_string(),
            pacticipant: pacticipant.to_string(),
            application_instance: application_instance.map(str::to_string),
            outcome: outcome.clone(),
        });
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(p: &str, v: &str) -> Candidate {
        Candidate {
            pacticipant: p.into(),
            version: v.into(),
        }
    }

    #[tokio::test]
    async fn verdicts_per_service_and_combined() {
        let fake = FakeBroker::new();
        fake.set_verdict("web", "2", Verdict::Deployable);
        fake.set_verdict("api", "5", Verdict::Unknown);
        let set = [c("web", "2"), c("api", "5"), c("db", "1")];
        let per = fake
            .can_i_deploy("prod", &set, GateMode::PerService)
            .await
            .unwrap();
        let verdicts: Vec<Verdict> = per.iter().map(|a| a.verdict).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Deployable,
                Verdict::Unknown,
                Verdict::NotDeployable
            ]
        );
        let all = fake
            .can_i_deploy("prod", &set, GateMode::AllOrNothing)
            .await
            .unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].verdict, Verdict::Unknown);
        let single = fake
            .can_i_deploy("prod", &set[..1], GateMode::AllOrNothing)
            .await
            .unwrap();
        assert_eq!(single[0].verdict, Verdict::Deployable);
        assert_eq!(fake.gate_calls().len(), 3);
    }

    #[tokio::test]
    async fn injected_failures_then_records() {
        let fake = FakeBroker::new();
        fake.set_environments(["prod"]);
        fake.fail_next_records(1);
        let error = fake
            .record_deployment("prod", &c("web", "2"), None)
            .await
            .unwrap_err();
        assert!(error.is_transient());
        fake.record_deployment("prod", &c("web", "2"), Some("blue"))
            .await
            .unwrap();
        let error = fake
            .record_deployment("qa", &c("web", "2"), None)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), "unknown_environment");
        assert_eq!(fake.records().len(), 1);
        assert_eq!(
            fake.records()[0].application_instance.as_deref(),
            Some("blue")
        );
        assert_eq!(fake.request_count(), 3);
        fake.fail_next_gates(1);
        assert!(
            fake.can_i_deploy("prod", &[c("web", "2")], GateMode::PerService)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn undeployment_follows_the_records_and_a_second_one_finds_nothing() {
        let fake = FakeBroker::new();
        fake.record_deployment("prod", &c("web", "1"), None)
            .await
            .unwrap();
        fake.record_deployment("prod", &c("web", "2"), None)
            .await
            .unwrap();
        fake.record_deployment("prod", &c("web", "2"), Some("blue"))
            .await
            .unwrap();
        fake.fail_next_undeployments(1);
        assert!(
            fake.record_undeployment("prod", "web", None)
                .await
                .unwrap_err()
                .is_transient()
        );
        assert_eq!(
            fake.record_undeployment("prod", "web", None).await.unwrap(),
            UndeployOutcome::Undeployed {
                versions: vec!["2".into()]
            }
        );
        assert_eq!(
            fake.record_undeployment("prod", "web", None).await.unwrap(),
            UndeployOutcome::NothingDeployed
        );
        assert_eq!(fake.currently_deployed("prod", "web", None), None);
        assert_eq!(
            fake.currently_deployed("prod", "web", Some("blue"))
                .as_deref(),
            Some("2"),
            "another instance stays deployed"
        );
        let log = fake.undeployments();
        assert_eq!(log.len(), 2, "failed calls are not logged");
        assert_eq!(log[0].pacticipant, "web");
        assert_eq!(log[1].outcome, UndeployOutcome::NothingDeployed);
    }
}
