//! The broker operations of [`HttpBroker`]: the cached HAL index, can-i-deploy (per service
//! through the index's `pb:can-i-deploy-pacticipant-version-to-environment`, with bounded
//! fan-out; all-or-nothing through one `/matrix` query with an explicit row limit), environment
//! uuids, and record-deployment; and the [`Broker`] trait implementation (record-undeployment
//! is in `undeploy.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use reqwest::{Method, Url};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::error::{Error, Result};
use super::http::{Body, Call, HttpBroker};
use super::parse::{
    Link, check_recorded_deployment, parse_environments, parse_index, parse_matrix,
    parse_matrix_counted, record_deployment_href,
};
use super::requests::{
    BuildError, MATRIX_ROW_LIMIT, can_i_deploy_url, describe_candidates, expand_url, matrix_url,
    record_deployment_body, resolve_href, version_url_fallback,
};
use super::{Broker, Candidate, GateAnswer, GateMode, UndeployOutcome};

/// Stats relation of the index request.
pub const RELATION_INDEX: &str = "index";
/// Stats relation of `/matrix` queries (the index has no matrix relation).
pub const RELATION_MATRIX: &str = "matrix";
/// The index relation a per-service gate follows (`/can-i-deploy`, no row limit); when the
/// index lacks it, `<base>/can-i-deploy` is asked under the same name.
pub const RELATION_CAN_I_DEPLOY: &str = "pb:can-i-deploy-pacticipant-version-to-environment";
/// The environments list relation.
pub const RELATION_ENVIRONMENTS: &str = "pb:environments";
/// The version resource relation.
pub const RELATION_VERSION: &str = "pb:pacticipant-version";
/// The record-deployment relation (on a version resource).
pub const RELATION_RECORD_DEPLOYMENT: &str = "pb:record-deployment";

pub(super) fn malformed(relation: &str, url: &Url, detail: impl ToString) -> Error {
    Error::Malformed {
        relation: relation.to_string(),
        path: url.path().to_string(),
        detail: detail.to_string(),
    }
}

impl HttpBroker {
    /// The broker's HAL index (`GET <base>`), fetched once and cached; a failed fetch is not
    /// cached, so the next call tries again.
    pub async fn index(&self) -> Result<&BTreeMap<String, Link>> {
        self.inner
            .index
            .get_or_try_init(|| async {
                let url = self.inner.base.clone();
                let reply = self
                    .inner
                    .send(Call {
                        method: Method::GET,
                        relation: RELATION_INDEX,
                        url: url.clone(),
                        body: None,
                    })
                    .await?;
                let index =
                    parse_index(&reply.body).map_err(|e| malformed(RELATION_INDEX, &url, e))?;
                // The broker that got the credentials names its own origin: trusted from now
                // on (`origins.rs`).
                let advertised = index
                    .get("self")
                    .and_then(|link| resolve_href(&url, &link.href).ok());
                self.inner.origins.learn_advertised(advertised.as_ref());
                Ok(index)
            })
            .await
    }

    /// The href of a single-link index relation, resolved against the base URL.
    pub(super) async fn relation_url(&self, relation: &str) -> Result<Url> {
        let link = self
            .index()
            .await?
            .get(relation)
            .ok_or_else(|| Error::MissingRelation {
                relation: relation.to_string(),
                detail: "absent from the index (a broker before 2.80.0?)".into(),
            })?;
        resolve_href(&self.inner.base, &link.href).map_err(|e| Error::MissingRelation {
            relation: relation.to_string(),
            detail: format!("href is not usable: {e}"),
        })
    }

    /// can-i-deploy of one candidate into `environment`, through the index's
    /// `pb:can-i-deploy-pacticipant-version-to-environment` (or `<base>/can-i-deploy` when the
    /// index lacks it). Unlike `/matrix`, `/can-i-deploy` applies no row limit, so every live
    /// version of every integrated application is in the answer (issue 13).
    pub async fn can_i_deploy_one(
        &self,
        environment: &str,
        candidate: &Candidate,
    ) -> Result<GateAnswer> {
        let template = self
            .index()
            .await?
            .get(RELATION_CAN_I_DEPLOY)
            .map(|link| link.href.clone());
        let url = can_i_deploy_url(
            &self.inner.base,
            template.as_deref(),
            environment,
            candidate,
        )
        .map_err(|e| unusable(RELATION_CAN_I_DEPLOY, &e))?;
        let reply = self
            .inner
            .send(Call {
                method: Method::GET,
                relation: RELATION_CAN_I_DEPLOY,
                url: url.clone(),
                body: None,
            })
            .await
            .map_err(|error| match error {
                Error::BadRequest { messages, .. } => Error::BadRequest {
                    request: format!(
                        "can-i-deploy of {} to environment {environment} ({})",
                        describe_candidates(std::slice::from_ref(candidate)),
                        url.path()
                    ),
                    messages,
                },
                other => other,
            })?;
        parse_matrix(&reply.body).map_err(|e| malformed(RELATION_CAN_I_DEPLOY, &url, e))
    }

    /// One `/matrix` query for `candidates` into `environment`
    /// (`q[][pacticipant]=..&q[][version]=..&latestby=cvpv&environment=..&limit=10000`). An
    /// answer that fills the limit is [`Error::RowLimit`]: rows past it may be missing.
    pub async fn matrix(&self, environment: &str, candidates: &[Candidate]) -> Result<GateAnswer> {
        let url =
            matrix_url(&self.inner.base, environment, candidates).map_err(|e| Error::Config {
                detail: format!("cannot build the matrix URL: {e}"),
            })?;
        let request = format!(
            "can-i-deploy of {} to environment {environment} ({})",
            describe_candidates(candidates),
            url.path()
        );
        let reply = self
            .inner
            .send(Call {
                method: Method::GET,
                relation: RELATION_MATRIX,
                url: url.clone(),
                body: None,
            })
            .await
            .map_err(|error| match error {
                Error::BadRequest { messages, .. } => Error::BadRequest {
                    request: request.clone(),
                    messages,
                },
                other => other,
            })?;
        let (answer, rows) =
            parse_matrix_counted(&reply.body).map_err(|e| malformed(RELATION_MATRIX, &url, e))?;
        if rows >= MATRIX_ROW_LIMIT {
            return Err(Error::RowLimit {
                request,
                limit: MATRIX_ROW_LIMIT,
            });
        }
        Ok(answer)
    }

    /// One can-i-deploy query per candidate, at most `parallelism` at a time; answers in the
    /// caller's order whatever the completion order. The first error in caller order wins.
    async fn per_service(
        &self,
        environment: &str,
        candidates: &[Candidate],
    ) -> Result<Vec<GateAnswer>> {
        let permits = Arc::new(Semaphore::new(self.inner.config.parallelism.max(1)));
        let mut tasks = JoinSet::new();
        for (position, candidate) in candidates.iter().cloned().enumerate() {
            let broker = self.clone();
            let permits = Arc::clone(&permits);
            let environment = environment.to_string();
            let task = async move {
                let _permit = permits.acquire_owned().await.ok();
                let answer = broker.can_i_deploy_one(&environment, &candidate).await;
                (position, answer)
            };
            tasks.spawn(task.in_current_span());
        }
        let mut answers: Vec<Option<Result<GateAnswer>>> =
            candidates.iter().map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((position, answer)) => answers[position] = Some(answer),
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Err(error) => {
                    return Err(Error::Config {
                        detail: format!("a can-i-deploy task was cancelled: {error}"),
                    });
                }
            }
        }
        answers
            .into_iter()
            .map(|answer| {
                answer.unwrap_or_else(|| {
                    Err(Error::Config {
                        detail: "a can-i-deploy task gave no answer".into(),
                    })
                })
            })
            .collect()
    }

    /// Resolves an environment name to its uuid. Cached; a miss refreshes the whole list
    /// from `pb:environments` once, then fails with [`Error::UnknownEnvironment`].
    pub async fn environment_uuid(&self, name: &str) -> Result<String> {
        if let Some(uuid) = self.cached_environment(name) {
            return Ok(uuid);
        }
        let url = self.relation_url(RELATION_ENVIRONMENTS).await?;
        let reply = self
            .inner
            .send(Call {
                method: Method::GET,
                relation: RELATION_ENVIRONMENTS,
                url: url.clone(),
                body: None,
            })
            .await?;
        let listed = parse_environments(&reply.body)
            .map_err(|e| malformed(RELATION_ENVIRONMENTS, &url, e))?;
        let mut cache = lock(&self.inner.environments);
        cache.clear();
        cache.extend(listed);
        cache
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownEnvironment {
                environment: name.to_string(),
            })
    }

    fn cached_environment(&self, name: &str) -> Option<String> {
        lock(&self.inner.environments).get(name).cloned()
    }

    /// The URL of a version resource: the index's `pb:pacticipant-version` template, or
    /// `<base>/pacticipants/{p}/versions/{v}` when the index lacks it.
    async fn version_url(&self, candidate: &Candidate) -> Result<Url> {
        let params = [
            ("pacticipant", candidate.pacticipant.as_str()),
            ("version", candidate.version.as_str()),
        ];
        let built = match self.index().await?.get(RELATION_VERSION) {
            Some(link) => expand_url(&self.inner.base, &link.href, &params),
            None => {
                version_url_fallback(&self.inner.base, &candidate.pacticipant, &candidate.version)
            }
        };
        built.map_err(|e| unusable(RELATION_VERSION, &e))
    }

    /// The `pb:record-deployment` URL for (candidate, environment), from the version resource
    /// (its href resolved against the version's URL); cached per (pacticipant, version,
    /// environment).
    async fn record_link(&self, environment: &str, candidate: &Candidate) -> Result<Url> {
        let key = record_key(environment, candidate);
        let cached = lock(&self.inner.record_links).get(&key).cloned();
        let resolved = match cached {
            Some(resolved) => resolved,
            None => {
                let url = self.version_url(candidate).await?;
                let reply = self
                    .inner
                    .send(Call {
                        method: Method::GET,
                        relation: RELATION_VERSION,
                        url: url.clone(),
                        body: None,
                    })
                    .await
                    .map_err(|error| match error {
                        Error::NotFound { .. } => Error::UnknownVersion {
                            pacticipant: candidate.pacticipant.clone(),
                            version: candidate.version.clone(),
                        },
                        other => other,
                    })?;
                let href = record_deployment_href(&reply.body, environment)
                    .map_err(|e| malformed(RELATION_VERSION, &url, e))?
                    .ok_or_else(|| Error::UnknownEnvironment {
                        environment: environment.to_string(),
                    })?;
                let resolved = resolve_href(&url, &href)
                    .map_err(|e| unusable(RELATION_RECORD_DEPLOYMENT, &e))?;
                lock(&self.inner.record_links).insert(key, resolved.clone());
                resolved
            }
        };
        Ok(resolved)
    }

    /// Records that `candidate` now runs in `environment`: GET the version resource, pick the
    /// `pb:record-deployment` link named after the environment, POST to it. A 2xx answer whose
    /// body is not the deployed-version resource is [`Error::Malformed`]: the record counts as
    /// not made (issue 6: a truncated 200 must not lose a record).
    pub async fn record(
        &self,
        environment: &str,
        candidate: &Candidate,
        application_instance: Option<&str>,
    ) -> Result<()> {
        let url = self.record_link(environment, candidate).await?;
        let result = self
            .inner
            .send(Call {
                method: Method::POST,
                relation: RELATION_RECORD_DEPLOYMENT,
                url: url.clone(),
                body: Some(Body::Json(record_deployment_body(application_instance))),
            })
            .await;
        if let Err(Error::NotFound { .. }) = &result {
            // The environment or version vanished since the link was cached: look it up anew
            // next time.
            lock(&self.inner.record_links).remove(&record_key(environment, candidate));
        }
        check_recorded_deployment(&result?.body)
            .map_err(|e| malformed(RELATION_RECORD_DEPLOYMENT, &url, e))
    }
}

fn record_key(environment: &str, candidate: &Candidate) -> (String, String, String) {
    (
        candidate.pacticipant.clone(),
        candidate.version.clone(),
        environment.to_string(),
    )
}

/// A relation whose href cannot be used (a template without a needed placeholder, not http).
pub(super) fn unusable(relation: &str, error: &BuildError) -> Error {
    Error::MissingRelation {
        relation: relation.to_string(),
        detail: error.to_string(),
    }
}

pub(super) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Broker for HttpBroker {
    async fn can_i_deploy(
        &self,
        environment: &str,
        candidates: &[Candidate],
        mode: GateMode,
    ) -> Result<Vec<GateAnswer>> {
        match mode {
            GateMode::AllOrNothing if candidates.len() >= 2 => {
                Ok(vec![self.matrix(environment, candidates).await?])
            }
            _ => self.per_service(environment, candidates).await,
        }
    }

    async fn record_deployment(
        &self,
        environment: &str,
        candidate: &Candidate,
        application_instance: Option<&str>,
    ) -> Result<()> {
        self.record(environment, candidate, application_instance)
            .await
    }

    async fn record_undeployment(
        &self,
        environment: &str,
        pacticipant: &str,
        application_instance: Option<&str>,
    ) -> Result<UndeployOutcome> {
        self.undeploy(environment, pacticipant, application_instance)
            .await
    }
}
