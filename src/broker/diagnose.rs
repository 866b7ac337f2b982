//! `c2quay doctor`'s questions about one broker, answered by the client that knows HAL: does the
//! index answer, does it have the relations c2quay follows, do their links stay on origins the
//! credentials may go to (`origins.rs`), does the environment exist, and is its resource usable.
//! Each answer is a [`Finding`]: what was seen and, for a failure, how to fix it.

use reqwest::Url;

use super::client::{RELATION_CAN_I_DEPLOY, RELATION_ENVIRONMENTS, RELATION_VERSION};
use super::error::Error;
use super::http::{Auth, HttpBroker};
use super::origins::{Origins, Refusal};
use super::requests::resolve_href;
use super::undeploy::{RELATION_CURRENTLY_DEPLOYED, RELATION_ENVIRONMENT};

/// One line of `c2quay doctor` about a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What passed, or what failed and why.
    pub detail: String,
    /// How to fix it; `None` when the check passed.
    pub fix: Option<String>,
}

impl Finding {
    fn ok(detail: impl Into<String>) -> Self {
        Finding {
            detail: detail.into(),
            fix: None,
        }
    }

    fn fail(detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding {
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// Whether the check passed.
    pub fn passed(&self) -> bool {
        self.fix.is_none()
    }
}

/// The relations a broker must have for c2quay (record-deployment and -undeployment).
const REQUIRED: [&str; 2] = [RELATION_ENVIRONMENTS, RELATION_VERSION];

/// The index relations c2quay follows, whose links must stay on trusted origins.
const FOLLOWED: [&str; 4] = [
    RELATION_CAN_I_DEPLOY,
    RELATION_VERSION,
    RELATION_ENVIRONMENTS,
    RELATION_ENVIRONMENT,
];

impl HttpBroker {
    /// Checks what c2quay needs from this broker to gate and record into `environment`, in
    /// order, stopping where the next checks would only repeat a failure: the index answers;
    /// it has the relations c2quay needs; with credentials, the links c2quay follows stay on
    /// origins they may go to; the environment exists; its resource has the link that
    /// record-undeployment follows.
    pub async fn diagnose(&self, environment: &str) -> Vec<Finding> {
        let base = self.inner.base.clone();
        let mut findings = Vec::new();
        let index = match self.index().await {
            Ok(index) => index,
            Err(error) => {
                findings.push(Finding::fail(
                    format!("{base}: {error}"),
                    fix_for(&error, environment),
                ));
                return findings;
            }
        };
        let missing: Vec<&str> = REQUIRED
            .into_iter()
            .filter(|relation| !index.contains_key(*relation))
            .collect();
        if !missing.is_empty() {
            findings.push(Finding::fail(
                format!("{base}: the index lacks {}", missing.join(", ")),
                "upgrade the Pact Broker to 2.80 or later",
            ));
            return findings;
        }
        let gate = if index.contains_key(RELATION_CAN_I_DEPLOY) {
            String::new()
        } else {
            format!(" (without {RELATION_CAN_I_DEPLOY}: gates ask {base}can-i-deploy)")
        };
        findings.push(Finding::ok(format!(
            "{base} answers with the relations c2quay needs{gate}"
        )));

        let credentials = !matches!(self.inner.config.auth, Auth::None);
        if credentials {
            let links = FOLLOWED.iter().filter_map(|relation| {
                let link = index.get(*relation)?;
                Some((*relation, resolve_href(&base, &link.href).ok()?))
            });
            let refused = self.refused_origins(links);
            let trusted = refused.is_empty();
            findings.extend(refused);
            if !trusted {
                return findings;
            }
            if let Some(advertised) = self.inner.origins.advertised()
                && advertised != self.inner.origins.broker()
            {
                findings.push(Finding::ok(format!(
                    "the broker's links use {advertised}, the origin its index advertises (not spec.broker.url's {}): the credentials go there too",
                    self.inner.origins.broker()
                )));
            }
        }

        match self.environment_uuid(environment).await {
            Ok(uuid) => findings.push(Finding::ok(format!(
                "environment {environment} exists ({uuid})"
            ))),
            Err(error) => {
                findings.push(Finding::fail(
                    error.to_string(),
                    fix_for(&error, environment),
                ));
                return findings;
            }
        }
        match self.currently_deployed_link(environment).await {
            Ok(url) => {
                if credentials {
                    findings.extend(self.refused_origins([(RELATION_CURRENTLY_DEPLOYED, url)]));
                }
            }
            Err(error) => findings.push(Finding::fail(
                error.to_string(),
                fix_for(&error, environment),
            )),
        }
        findings
    }

    /// One failed [`Finding`] per origin among `links` the credentials may not go to, naming
    /// the relations that point there.
    fn refused_origins(
        &self,
        links: impl IntoIterator<Item = (&'static str, Url)>,
    ) -> Vec<Finding> {
        let mut refused: Vec<(String, Refusal, Vec<&str>, String)> = Vec::new();
        for (relation, url) in links {
            let Err(refusal) = self.inner.origins.check(&url) else {
                continue;
            };
            let origin = Origins::of(&url);
            match refused.iter_mut().find(|(known, ..)| *known == origin) {
                Some((_, _, relations, _)) => relations.push(relation),
                None => {
                    // A template's placeholders read as `{version}`, not `%7Bversion%7D`.
                    let path = urlencoding::decode(url.path())
                        .map_or_else(|_| url.path().to_string(), |p| p.into_owned());
                    refused.push((origin, refusal, vec![relation], path));
                }
            }
        }
        refused
            .into_iter()
            .map(|(origin, refusal, relations, path)| {
                let error = Error::untrusted_origin(
                    &relations.join(", "),
                    &path,
                    &origin,
                    self.inner.origins.broker(),
                    self.inner.origins.advertised(),
                    refusal == Refusal::PlainHttpAdvertised,
                );
                Finding::fail(error.to_string(), fix_for(&error, ""))
            })
            .collect()
    }
}

/// How to fix what `error` says, for `environment`: the fix names the manifest field or the
/// broker setting to change.
fn fix_for(error: &Error, environment: &str) -> String {
    match error {
        Error::UnknownEnvironment { .. } => format!(
            "create it: pact broker create-environment --name {environment} --production|--no-production (or fix spec.broker.environment)"
        ),
        Error::Unauthorized { .. } => "check the credentials spec.broker names (tokenFile/tokenEnv or usernameFile/passwordFile) and that the broker accepts them".into(),
        Error::Connect { .. } | Error::Timeout { .. } | Error::Transport { .. } => {
            "check spec.broker.url and the network: is the broker running and reachable from this host?".into()
        }
        Error::NotFound { .. } => "check spec.broker.url: it must be the broker's base URL (with its path prefix, if any)".into(),
        Error::Malformed { .. } => "the answer is not the broker's HAL JSON: check that spec.broker.url is the broker's API base URL (not its UI, not a proxy's error page) and that the broker is 2.80 or later".into(),
        Error::UntrustedOrigin { origin, .. } => format!(
            "if {origin} is this broker, add \"{origin}\" to spec.broker.trustedOrigins; otherwise set the broker's PACT_BROKER_BASE_URL (or the proxy's forwarded headers) to match spec.broker.url"
        ),
        Error::Config { .. } => "fix the spec.broker section (run c2quay validate)".into(),
        _ => "check spec.broker.url, the network and the credentials".into(),
    }
}
