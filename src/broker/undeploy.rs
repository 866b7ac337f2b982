//! record-undeployment for [`HttpBroker`]: the environment by name, its currently deployed
//! versions of one pacticipant (and application instance), and a merge-patch
//! `{"currentlyDeployed":false}` on each, as both official CLIs do it.
//!
//! Idempotent: a version that is no longer currently deployed is not listed, so a retry after a
//! lost answer finds nothing and answers [`UndeployOutcome::NothingDeployed`].

use reqwest::{Method, Url};

use super::UndeployOutcome;
use super::client::{lock, malformed, unusable};
use super::error::{Error, Result};
use super::http::{Body, Call, HttpBroker};
use super::parse::{check_undeployed, currently_deployed_href, deployed_versions_to_undeploy};
use super::requests::{
    currently_deployed_url, environment_url_fallback, expand_url, resolve_href, undeploy_body,
};

/// The environment resource relation (templated by `uuid` in the index).
pub const RELATION_ENVIRONMENT: &str = "pb:environment";
/// The currently deployed versions of an environment (on the environment resource).
pub const RELATION_CURRENTLY_DEPLOYED: &str = "pb:currently-deployed-deployed-versions";
/// Stats relation of the undeploy `PATCH` of one deployed version (its `self` link).
pub const RELATION_DEPLOYED_VERSION: &str = "pb:deployed-version";

impl HttpBroker {
    /// Records that `pacticipant` (in `application_instance`, or the instance-less record when
    /// `None`) no longer runs in `environment`: GET the environment, follow its
    /// currently-deployed link with `?pacticipant=`, PATCH every matching entry. Nothing
    /// currently deployed is [`UndeployOutcome::NothingDeployed`], not an error.
    pub async fn undeploy(
        &self,
        environment: &str,
        pacticipant: &str,
        application_instance: Option<&str>,
    ) -> Result<UndeployOutcome> {
        let listing = self.currently_deployed_link(environment).await?;
        let url = currently_deployed_url(&listing, pacticipant, application_instance);
        let reply = self
            .inner
            .send(Call {
                method: Method::GET,
                relation: RELATION_CURRENTLY_DEPLOYED,
                url: url.clone(),
                body: None,
            })
            .await?;
        let targets = deployed_versions_to_undeploy(&reply.body, pacticipant, application_instance)
            .map_err(|e| malformed(RELATION_CURRENTLY_DEPLOYED, &url, e))?;
        if targets.is_empty() {
            return Ok(UndeployOutcome::NothingDeployed);
        }
        let mut versions = Vec::with_capacity(targets.len());
        for target in targets {
            let url = resolve_href(&url, &target.href)
                .map_err(|e| unusable(RELATION_DEPLOYED_VERSION, &e))?;
            let reply = self
                .inner
                .send(Call {
                    method: Method::PATCH,
                    relation: RELATION_DEPLOYED_VERSION,
                    url: url.clone(),
                    body: Some(Body::MergePatch(undeploy_body())),
                })
                .await?;
            check_undeployed(&reply.body)
                .map_err(|e| malformed(RELATION_DEPLOYED_VERSION, &url, e))?;
            versions.push(target.version.unwrap_or_else(|| "(unnamed)".to_string()));
        }
        Ok(UndeployOutcome::Undeployed { versions })
    }

    /// The environment's currently-deployed link, from its resource. An environment that is
    /// gone (404) is dropped from the uuid cache and reported as unknown.
    pub(super) async fn currently_deployed_link(&self, environment: &str) -> Result<Url> {
        let uuid = self.environment_uuid(environment).await?;
        let url = self.environment_url(&uuid).await?;
        let reply = self
            .inner
            .send(Call {
                method: Method::GET,
                relation: RELATION_ENVIRONMENT,
                url: url.clone(),
                body: None,
            })
            .await
            .map_err(|error| match error {
                Error::NotFound { .. } => {
                    lock(&self.inner.environments).remove(environment);
                    Error::UnknownEnvironment {
                        environment: environment.to_string(),
                    }
                }
                other => other,
            })?;
        let href = currently_deployed_href(&reply.body)
            .map_err(|e| malformed(RELATION_ENVIRONMENT, &url, e))?;
        resolve_href(&url, &href).map_err(|e| unusable(RELATION_CURRENTLY_DEPLOYED, &e))
    }

    /// The URL of an environment resource: the index's `pb:environment` template, or
    /// `<base>/environments/{uuid}` when the index lacks it.
    async fn environment_url(&self, uuid: &str) -> Result<Url> {
        let built = match self.index().await?.get(RELATION_ENVIRONMENT) {
            Some(link) => expand_url(&self.inner.base, &link.href, &[("uuid", uuid)]),
            None => environment_url_fallback(&self.inner.base, uuid),
        };
        built.map_err(|e| unusable(RELATION_ENVIRONMENT, &e))
    }
}
