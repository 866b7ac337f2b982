//! The broker client's error type.
//!
//! Every variant names the broker relation and the URL *path* it concerns (never the query,
//! never a credential), so an operator knows which call failed. [`Error::kind`] is a bounded
//! metric label; [`Error::is_transient`] tells the caller's error policy whether to retry later.

/// Errors from talking to the Pact Broker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client configuration is unusable (bad base URL, unreadable CA bundle, ...).
    #[error("broker client configuration: {detail}")]
    Config {
        /// What is wrong, naming the field.
        detail: String,
    },
    /// The TCP/TLS connection could not be established (refused, DNS, TLS handshake).
    #[error("cannot connect to the broker for {relation} ({path}): {detail}")]
    Connect {
        /// The HAL relation (or pseudo-relation such as `matrix`).
        relation: String,
        /// The URL path.
        path: String,
        /// The innermost cause, e.g. "Connection refused (os error 111)".
        detail: String,
    },
    /// The request did not complete within the connect or request timeout.
    #[error("broker request for {relation} ({path}) timed out: {detail}")]
    Timeout {
        /// The HAL relation.
        relation: String,
        /// The URL path.
        path: String,
        /// The innermost cause.
        detail: String,
    },
    /// The connection broke while the request or response was in flight.
    #[error("broker request for {relation} ({path}) failed in transit: {detail}")]
    Transport {
        /// The HAL relation.
        relation: String,
        /// The URL path.
        path: String,
        /// The innermost cause, e.g. "connection closed before message completed".
        detail: String,
    },
    /// The broker answered 401 or 403.
    #[error(
        "the broker refused the credentials for {relation} ({path}): HTTP {status} (check the broker token or username/password)"
    )]
    Unauthorized {
        /// The HAL relation.
        relation: String,
        /// The URL path.
        path: String,
        /// 401 or 403.
        status: u16,
    },
    /// The broker answered 404 for a resource that should exist.
    #[error("the broker has no resource for {relation} ({path}): HTTP 404")]
    NotFound {
        /// The HAL relation.
        relation: String,
        /// The URL path.
        path: String,
    },
    /// The broker rejected the request as invalid (HTTP 400): a configuration error such as an
    /// unknown pacticipant or environment.
    #[error("the broker rejected {request} as invalid (HTTP 400): {}", messages.join("; "))]
    BadRequest {
        /// What was asked, e.g. "can-i-deploy of web 1.4.3 to environment production (/matrix)".
        request: String,
        /// The broker's validation messages (`errors`), or the body excerpt.
        messages: Vec<String>,
    },
    /// Any other unexpected HTTP status (5xx, 408, 429 after the retries; other 4xx at once).
    #[error(
        "broker request for {relation} ({path}) failed: HTTP {status}{}",
        body_suffix(body)
    )]
    Status {
        /// The HAL relation.
        relation: String,
        /// The URL path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// A short excerpt of the response body (may be empty).
        body: String,
    },
    /// The response body is not the JSON shape the client expects.
    #[error("malformed broker response for {relation} ({path}): {detail}")]
    Malformed {
        /// The HAL relation.
        relation: String,
        /// The URL path.
        path: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The broker's index lacks a relation the client needs.
    #[error("the broker index has no usable `{relation}` relation: {detail}")]
    MissingRelation {
        /// The relation name.
        relation: String,
        /// Why it is unusable.
        detail: String,
    },
    /// record-deployment: the version resource does not exist in the broker.
    #[error(
        "version {version} of {pacticipant} is not known to the broker (was its pact or verification ever published?)"
    )]
    UnknownVersion {
        /// The pacticipant.
        pacticipant: String,
        /// The version number.
        version: String,
    },
    /// The environment does not exist in the broker.
    #[error("environment {environment} does not exist in the broker")]
    UnknownEnvironment {
        /// The environment name.
        environment: String,
    },
    /// A broker link points at an origin the credentials may not go to (see `origins.rs`);
    /// the request was not sent. Permanent until the manifest or the broker changes. Built by
    /// [`Error::untrusted_origin`].
    #[error("refused to send the broker credentials to {origin} for {relation} ({path}): {hint}")]
    UntrustedOrigin {
        /// The relation whose href points there.
        relation: String,
        /// The URL path.
        path: String,
        /// The refused origin, `scheme://host[:port]`.
        origin: String,
        /// Why it is not trusted and how to fix it (names the trusted origins).
        hint: String,
    },
    /// An all-or-nothing matrix answer holds as many rows as the query's `limit`: rows past it
    /// may have been left out (a failing one among them), so the answer is not trusted.
    #[error(
        "the broker's answer to {request} holds {limit} rows, the most c2quay asks for: rows past the limit may be missing, so the answer is not trusted; gate these services one by one (spec.broker.allOrNothing: false), whose /can-i-deploy has no row limit"
    )]
    RowLimit {
        /// What was asked, e.g. "can-i-deploy of web 1, api 2 to environment production (/matrix)".
        request: String,
        /// The limit sent.
        limit: usize,
    },
}

impl Error {
    /// [`Error::UntrustedOrigin`] for `origin`, given the origin of `spec.broker.url`, the one
    /// the index advertises (if read) and whether the refusal is the advertised origin in plain
    /// HTTP behind an HTTPS broker URL.
    pub fn untrusted_origin(
        relation: &str,
        path: &str,
        origin: &str,
        broker: &str,
        advertised: Option<&str>,
        plain_http: bool,
    ) -> Self {
        Error::UntrustedOrigin {
            relation: relation.to_string(),
            path: path.to_string(),
            origin: origin.to_string(),
            hint: untrusted_hint(origin, broker, advertised, plain_http),
        }
    }
}

/// The second half of [`Error::UntrustedOrigin`]'s message: why, and how to fix it.
fn untrusted_hint(
    origin: &str,
    broker: &str,
    advertised: Option<&str>,
    plain_http: bool,
) -> String {
    if plain_http {
        return format!(
            "the broker's index advertises {origin}, plain HTTP, while spec.broker.url ({broker}) uses HTTPS (a TLS proxy that does not forward X-Forwarded-Proto and X-Forwarded-Host, or PACT_BROKER_BASE_URL set to http), and credentials are not sent in clear; fix the proxy's forwarded headers or the broker's PACT_BROKER_BASE_URL, or, if plain HTTP to it is intended, add \"{origin}\" to spec.broker.trustedOrigins"
        );
    }
    let advertised = match advertised {
        Some(advertised) => format!("the origin the broker's index advertises ({advertised})"),
        None => "the origin the broker's index advertises (none was read)".to_string(),
    };
    format!(
        "it is neither the origin of spec.broker.url ({broker}), nor {advertised}, nor listed in spec.broker.trustedOrigins; if {origin} is this broker (its public base URL, a proxy in front of it), add \"{origin}\" to spec.broker.trustedOrigins, otherwise set the broker's PACT_BROKER_BASE_URL to spec.broker.url"
    )
}

fn body_suffix(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

impl Error {
    /// A bounded label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config { .. } => "config",
            Error::Connect { .. } => "connect",
            Error::Timeout { .. } => "timeout",
            Error::Transport { .. } => "transport",
            Error::Unauthorized { .. } => "unauthorized",
            Error::NotFound { .. } => "not_found",
            Error::BadRequest { .. } => "bad_request",
            Error::Status { status, .. } if *status >= 500 => "status_5xx",
            Error::Status {
                status: 408 | 429, ..
            } => "throttled",
            Error::Status { .. } => "status_4xx",
            Error::Malformed { .. } => "malformed",
            Error::MissingRelation { .. } => "missing_relation",
            Error::UnknownVersion { .. } => "unknown_version",
            Error::UnknownEnvironment { .. } => "unknown_environment",
            Error::UntrustedOrigin { .. } => "untrusted_origin",
            Error::RowLimit { .. } => "row_limit",
        }
    }

    /// Whether trying again later may succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Timeout { .. } | Error::Transport { .. } => true,
            Error::Status { status, .. } => is_retryable_status(*status),
            _ => false,
        }
    }
}

/// Whether an HTTP status is worth retrying: 5xx, 408 and 429; never other 4xx.
pub fn is_retryable_status(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

/// Result alias of the broker module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Error {
        Error::Status {
            relation: "matrix".into(),
            path: "/matrix".into(),
            status: code,
            body: String::new(),
        }
    }

    #[test]
    fn statuses_map_to_bounded_kinds_and_transience() {
        assert_eq!(status(503).kind(), "status_5xx");
        assert!(status(503).is_transient());
        assert_eq!(status(429).kind(), "throttled");
        assert!(status(408).is_transient());
        assert_eq!(status(409).kind(), "status_4xx");
        assert!(!status(409).is_transient());
        let unknown = Error::UnknownVersion {
            pacticipant: "Foo".into(),
            version: "1".into(),
        };
        assert!(!unknown.is_transient());
        assert_eq!(
            unknown.to_string(),
            "version 1 of Foo is not known to the broker (was its pact or verification ever published?)"
        );
    }

    #[test]
    fn bad_request_lists_the_broker_messages() {
        let error = Error::BadRequest {
            request: "can-i-deploy of Foo 1 to environment test (/matrix)".into(),
            messages: vec!["Pacticipant Foo not found".into(), "x".into()],
        };
        assert_eq!(
            error.to_string(),
            "the broker rejected can-i-deploy of Foo 1 to environment test (/matrix) as invalid (HTTP 400): Pacticipant Foo not found; x"
        );
        assert_eq!(error.kind(), "bad_request");
    }

    #[test]
    fn an_untrusted_origin_is_named_with_its_fix() {
        let refused = |advertised: Option<&str>, plain_http: bool| {
            Error::untrusted_origin(
                "pb:record-deployment",
                "/pacticipants/web/versions/1/deployed-versions/environment/u-1",
                "http://broker.example",
                "https://broker.example",
                advertised,
                plain_http,
            )
        };
        let error = refused(Some("https://public.example"), false);
        assert_eq!(error.kind(), "untrusted_origin");
        assert!(!error.is_transient());
        let message = error.to_string();
        for needle in [
            "refused to send the broker credentials to http://broker.example for pb:record-deployment",
            "spec.broker.url (https://broker.example)",
            "advertises (https://public.example)",
            "add \"http://broker.example\" to spec.broker.trustedOrigins",
        ] {
            assert!(message.contains(needle), "{needle:?} missing in {message}");
        }
        let message = refused(Some("http://broker.example"), true).to_string();
        for needle in [
            "plain HTTP",
            "X-Forwarded-Proto",
            "spec.broker.trustedOrigins",
        ] {
            assert!(message.contains(needle), "{needle:?} missing in {message}");
        }
        assert!(refused(None, false).to_string().contains("none was read"));
        // Small enough to travel inside the pipeline's error by value.
        assert!(std::mem::size_of::<Error>() <= 128);
    }
}
