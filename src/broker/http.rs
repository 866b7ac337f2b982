//! The HTTP adapter: [`Config`], [`Auth`], and [`HttpBroker`]'s single place that sends a
//! request, with timeouts, bounded retries, the trusted-origin rule for credentials
//! (`origins.rs`) and counting.
//!
//! The broker operations themselves (matrix, environments, record-deployment) live in
//! `client.rs`, record-undeployment in `undeploy.rs`; URL building and JSON parsing are pure (`requests.rs`, `parse.rs`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use reqwest::{Method, Url};
use tokio::sync::OnceCell;

use super::backoff::{Backoff, MAX_BACKOFF_DELAY, parse_retry_after};
use super::error::{Error, Result};
use super::origins::{Origins, Refusal, parse_origin};
use super::parse::{Link, error_messages, excerpt};
use super::requests::{MERGE_PATCH_JSON, normalize_base_url};
use super::stats::{RequestObserver, RequestStats, StatsSnapshot};
use crate::secret::Secret;

/// Default TCP/TLS connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default timeout of one whole request (connect, send, read the body).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Default number of attempts per request (1 = no retry).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;
/// Default bound on concurrent per-service can-i-deploy queries.
pub const DEFAULT_PARALLELISM: usize = 4;
/// Default first retry delay (doubled per retry, with jitter).
pub const DEFAULT_RETRY_BASE_DELAY: Duration = Duration::from_millis(250);

/// How the client authenticates to the broker.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// No `Authorization` header.
    #[default]
    None,
    /// HTTP Basic (the open-source broker).
    Basic {
        /// The username.
        username: String,
        /// The password; never printed.
        password: Secret,
    },
    /// `Authorization: Bearer <token>` (PactFlow-style).
    Bearer(Secret),
}

impl Auth {
    /// The `Authorization` header value, if any. Never log the result.
    fn header_value(&self) -> Option<String> {
        use base64::Engine as _;
        match self {
            Auth::None => None,
            Auth::Basic { username, password } => {
                let raw = format!("{username}:{}", password.expose());
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                ))
            }
            Auth::Bearer(token) => Some(format!("Bearer {}", token.expose())),
        }
    }

    /// "none", "basic" or "bearer", for `Debug` and `doctor`.
    pub fn scheme(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Basic { .. } => "basic",
            Auth::Bearer(_) => "bearer",
        }
    }
}

/// Everything needed to build an [`HttpBroker`]. Its `Debug` never shows a credential
/// (they are [`Secret`]s).
#[derive(Debug, Clone)]
pub struct Config {
    /// The broker's base URL, possibly with a path prefix (`https://host/broker/`).
    pub base_url: String,
    /// Credentials.
    pub auth: Auth,
    /// A PEM bundle of extra trusted CA certificates, for private brokers.
    pub ca_file: Option<PathBuf>,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of one whole request (per attempt).
    pub request_timeout: Duration,
    /// Attempts per request, retries included (at least 1).
    pub max_attempts: u32,
    /// Bound on concurrent per-service matrix queries (at least 1).
    pub parallelism: usize,
    /// First retry delay; doubled per retry up to 10 s, with jitter.
    pub retry_base_delay: Duration,
    /// Origins (`scheme://host[:port]`) besides the base URL's and the one the broker's index
    /// advertises that may receive the credentials (`spec.broker.trustedOrigins`).
    pub trusted_origins: Vec<String>,
}

impl Config {
    /// A configuration with the defaults and no credentials.
    pub fn new(base_url: impl Into<String>) -> Self {
        Config {
            base_url: base_url.into(),
            auth: Auth::None,
            ca_file: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            parallelism: DEFAULT_PARALLELISM,
            retry_base_delay: DEFAULT_RETRY_BASE_DELAY,
            trusted_origins: Vec::new(),
        }
    }
}

/// The real Pact Broker client. Cheap to clone (shared state behind an `Arc`): the index,
/// the environment uuids and the record-deployment links are cached across clones.
#[derive(Clone)]
pub struct HttpBroker {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) base: Url,
    pub(super) config: Config,
    pub(super) origins: Origins,
    client: reqwest::Client,
    pub(super) index: OnceCell<BTreeMap<String, Link>>,
    pub(super) environments: Mutex<HashMap<String, String>>,
    pub(super) record_links: Mutex<HashMap<(String, String, String), Url>>,
    stats: RequestStats,
    observer: RwLock<Option<Arc<dyn RequestObserver>>>,
}

impl fmt::Debug for HttpBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpBroker")
            .field("base_url", &self.inner.base.as_str())
            .field("auth", &self.inner.config.auth.scheme())
            .field("max_attempts", &self.inner.config.max_attempts)
            .field("parallelism", &self.inner.config.parallelism)
            .finish_non_exhaustive()
    }
}

/// One request to send: the relation names it in stats, logs and errors.
pub(super) struct Call<'a> {
    pub(super) method: Method,
    pub(super) relation: &'a str,
    pub(super) url: Url,
    pub(super) body: Option<Body>,
}

/// A request body and the media type it is sent as.
pub(super) enum Body {
    /// `application/json` (POST and PUT).
    Json(serde_json::Value),
    /// `application/merge-patch+json` (PATCH; the broker answers 415 to anything else).
    MergePatch(serde_json::Value),
}

/// A successful (2xx) response.
pub(super) struct Reply {
    pub(super) body: String,
}

struct Exchange {
    status: u16,
    retry_after: Option<Duration>,
    body: String,
}

impl HttpBroker {
    /// Builds the client: validates the base URL, loads the CA bundle, sets the timeouts.
    pub fn new(config: Config) -> Result<Self> {
        let base = normalize_base_url(&config.base_url).map_err(|e| Error::Config {
            detail: e.to_string(),
        })?;
        let listed = config
            .trusted_origins
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                parse_origin(entry).map_err(|e| Error::Config {
                    detail: format!("spec.broker.trustedOrigins[{i}]: {e}"),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let origins = Origins::new(&base, listed);
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout);
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|e| Error::Config {
                detail: format!("cannot read CA file {}: {e}", path.display()),
            })?;
            let certificates =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| Error::Config {
                    detail: format!(
                        "CA file {} is not a PEM bundle: {}",
                        path.display(),
                        chain(&e)
                    ),
                })?;
            if certificates.is_empty() {
                return Err(Error::Config {
                    detail: format!("CA file {} holds no certificate", path.display()),
                });
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder.build().map_err(|e| Error::Config {
            detail: format!("cannot build the HTTP client: {}", chain(&e)),
        })?;
        Ok(HttpBroker {
            inner: Arc::new(Inner {
                base,
                config,
                origins,
                client,
                index: OnceCell::new(),
                environments: Mutex::new(HashMap::new()),
                record_links: Mutex::new(HashMap::new()),
                stats: RequestStats::default(),
                observer: RwLock::new(None),
            }),
        })
    }

    /// Adds an observer told about every request (the metrics module implements it).
    pub fn with_observer(self, observer: Arc<dyn RequestObserver>) -> Self {
        *self
            .inner
            .observer
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(observer);
        self
    }

    /// The normalised base URL (ends with `/`).
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// The origins the credentials may go to: `spec.broker.url`'s, and the one the index
    /// advertises once the index was read.
    pub fn origins(&self) -> &Origins {
        &self.inner.origins
    }

    /// A copy of the request counts by relation and outcome.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }
}

impl Inner {
    /// Sends `call`, retrying transient failures with backoff; returns the 2xx body.
    pub(super) async fn send(&self, call: Call<'_>) -> Result<Reply> {
        let max_attempts = self.config.max_attempts.max(1);
        let mut backoff = Backoff::new(self.config.retry_base_delay, MAX_BACKOFF_DELAY);
        let path = call.url.path().to_string();
        // Credentials go only to trusted origins; a link elsewhere is refused before anything
        // is sent, naming the origin (issue 13: a silent 401 blamed the credentials).
        let authorization = self.config.auth.header_value();
        if authorization.is_some()
            && let Err(refusal) = self.origins.check(&call.url)
        {
            return Err(Error::untrusted_origin(
                call.relation,
                &path,
                &Origins::of(&call.url),
                self.origins.broker(),
                self.origins.advertised(),
                refusal == Refusal::PlainHttpAdvertised,
            ));
        }
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            let outcome = self.exchange(&call, &path, authorization.as_deref()).await;
            let status = outcome.as_ref().ok().map(|e| e.status);
            self.count(&call, status, started.elapsed());
            let (error, retry_after) = match outcome {
                Ok(exchange) if (200..300).contains(&exchange.status) => {
                    return Ok(Reply {
                        body: exchange.body,
                    });
                }
                Ok(exchange) => (status_error(&call, &path, &exchange), exchange.retry_after),
                Err(error) => (error, None),
            };
            if !error.is_transient() || attempt >= max_attempts {
                return Err(error);
            }
            let delay = retry_after.unwrap_or_else(|| backoff.next().unwrap_or(MAX_BACKOFF_DELAY));
            tracing::debug!(
                attempt,
                max_attempts,
                relation = call.relation,
                path = %path,
                error = %error,
                delay_ms = delay.as_millis() as u64,
                "retrying broker request"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn exchange(
        &self,
        call: &Call<'_>,
        path: &str,
        authorization: Option<&str>,
    ) -> Result<Exchange> {
        let mut request = self
            .client
            .request(call.method.clone(), call.url.clone())
            .header(ACCEPT, "application/hal+json, application/json")
            .header(USER_AGENT, concat!("c2quay/", env!("CARGO_PKG_VERSION")));
        // `send` checked the origin: credentials are only ever present for a trusted one.
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        match &call.body {
            None => {}
            Some(Body::Json(body)) => request = request.json(body),
            Some(Body::MergePatch(body)) => {
                request = request
                    .header(CONTENT_TYPE, MERGE_PATCH_JSON)
                    .body(body.to_string());
            }
        }
        let transport = |e: reqwest::Error| transport_error(call.relation, path, e);
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = response.text().await.map_err(transport)?;
        Ok(Exchange {
            status,
            retry_after,
            body,
        })
    }

    fn count(&self, call: &Call<'_>, status: Option<u16>, elapsed: Duration) {
        self.stats.record(call.relation, status, elapsed);
        let observer = self
            .observer
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if let Some(observer) = observer {
            observer.observe(call.method.as_str(), call.relation, status, elapsed);
        }
    }
}

fn status_error(call: &Call<'_>, path: &str, exchange: &Exchange) -> Error {
    let relation = call.relation.to_string();
    let path = path.to_string();
    match exchange.status {
        400 => {
            let mut messages = error_messages(&exchange.body);
            if messages.is_empty() {
                messages.push("(no error details in the response)".to_string());
            }
            Error::BadRequest {
                request: format!("{} {relation} ({path})", call.method),
                messages,
            }
        }
        status @ (401 | 403) => Error::Unauthorized {
            relation,
            path,
            status,
        },
        404 => Error::NotFound { relation, path },
        status => Error::Status {
            relation,
            path,
            status,
            body: excerpt(&exchange.body, 200),
        },
    }
}

/// Classifies a reqwest error and spells out its cause chain (reqwest's own `Display` only
/// says "error sending request", and it names the URL, query included).
fn transport_error(relation: &str, path: &str, error: reqwest::Error) -> Error {
    let detail = chain(&error);
    let relation = relation.to_string();
    let path = path.to_string();
    if error.is_timeout() {
        Error::Timeout {
            relation,
            path,
            detail,
        }
    } else if error.is_connect() {
        Error::Connect {
            relation,
            path,
            detail,
        }
    } else if error.is_decode() {
        Error::Malformed {
            relation,
            path,
            detail,
        }
    } else {
        Error::Transport {
            relation,
            path,
            detail,
        }
    }
}

/// The causes below a reqwest error, joined with ": " (the top layer, which names the URL,
/// is left out).
fn chain(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p == &text) {
            parts.push(text);
        }
        source = cause.source();
    }
    if parts.is_empty() {
        // No cause below: print the top layer with the URL reduced to its path.
        let mut text = error.to_string();
        if let Some(url) = error.url() {
            text = text.replace(url.as_str(), url.path());
        }
        text
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_headers_are_built_and_never_debug_printed() {
        let basic = Auth::Basic {
            username: "alice".into(),
            password: Secret::new("s3cret"),
        };
        assert_eq!(
            basic.header_value().as_deref(),
            Some("Basic YWxpY2U6czNjcmV0")
        );
        let bearer = Auth::Bearer(Secret::new("tok123"));
        assert_eq!(bearer.header_value().as_deref(), Some("Bearer tok123"));
        assert_eq!(Auth::None.header_value(), None);
        let mut config = Config::new("http://127.0.0.1:1/");
        config.auth = basic;
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        let broker = HttpBroker::new(config).unwrap();
        let debug = format!("{broker:?}");
        assert!(
            !debug.contains("s3cret") && debug.contains("basic"),
            "{debug}"
        );
    }

    #[test]
    fn bad_base_url_and_ca_file_are_config_errors() {
        let error = HttpBroker::new(Config::new("ftp://x/")).unwrap_err();
        assert_eq!(error.kind(), "config");
        let mut config = Config::new("https://broker.test/");
        config.ca_file = Some(PathBuf::from("/nonexistent/ca.pem"));
        let error = HttpBroker::new(config).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let mut config = Config::new("https://broker.test/");
        config.ca_file = Some(path);
        assert_eq!(HttpBroker::new(config).unwrap_err().kind(), "config");
    }
}
