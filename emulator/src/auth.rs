//! Authentication as the broker does it: none, HTTP Basic with a read/write
//! and a read-only user (reference §5.1), and PactFlow-style Bearer tokens.
//!
//! [`check`] is pure: it takes the method and the `Authorization` header and
//! returns the decision the routes turn into a response.

use base64::Engine;

/// A password or token; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(String);

impl Credential {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// A Basic-auth user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicUser {
    /// User name.
    pub username: String,
    /// Password.
    pub password: Credential,
}

impl BasicUser {
    /// Parses `user:pass`.
    pub fn parse(spec: &str) -> Option<Self> {
        let (u, p) = spec.split_once(':')?;
        Some(Self {
            username: u.to_string(),
            password: Credential::new(p),
        })
    }
}

/// Which credentials the emulator accepts. All empty = no authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// Read/write Basic user.
    pub basic: Option<BasicUser>,
    /// Read-only Basic user (GET/HEAD/OPTIONS only).
    pub basic_read_only: Option<BasicUser>,
    /// Accepted Bearer tokens (read/write).
    pub bearer_tokens: Vec<Credential>,
}

/// The outcome of an authentication check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// 401 with `WWW-Authenticate` (missing or wrong credentials, or a
    /// read-only user attempting a write).
    Unauthorized,
    /// 400 with an empty body: a non-Basic scheme when only Basic is configured.
    BadScheme,
}

impl AuthConfig {
    /// Whether any authentication is configured.
    pub fn enabled(&self) -> bool {
        self.basic.is_some() || self.basic_read_only.is_some() || !self.bearer_tokens.is_empty()
    }

    /// The `WWW-Authenticate` header value for a 401.
    pub fn challenge(&self) -> &'static str {
        if self.basic.is_none() && self.basic_read_only.is_none() {
            "Bearer realm=\"Restricted area\""
        } else {
            "Basic realm=\"Restricted area\""
        }
    }
}

fn basic_matches(user: Option<&BasicUser>, u: &str, p: &str) -> bool {
    user.is_some_and(|b| b.username == u && b.password.expose() == p)
}

/// Decides whether a request with this method and `Authorization` header may proceed.
pub fn check(config: &AuthConfig, method: &str, authorization: Option<&str>) -> Decision {
    if !config.enabled() {
        return Decision::Allow;
    }
    let Some(header) = authorization else {
        return Decision::Unauthorized;
    };
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let read = matches!(method, "GET" | "HEAD" | "OPTIONS");
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok();
        let text = decoded
            .and_then(|d| String::from_utf8(d).ok())
            .unwrap_or_default();
        let (u, p) = text.split_once(':').unwrap_or((text.as_str(), ""));
        if basic_matches(config.basic.as_ref(), u, p)
            || (read && basic_matches(config.basic_read_only.as_ref(), u, p))
        {
            return Decision::Allow;
        }
        return Decision::Unauthorized;
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        if config.bearer_tokens.is_empty() {
            return Decision::BadScheme;
        }
        if config
            .bearer_tokens
            .iter()
            .any(|t| t.expose() == rest.trim())
        {
            return Decision::Allow;
        }
        return Decision::Unauthorized;
    }
    if config.bearer_tokens.is_empty() {
        Decision::BadScheme
    } else {
        Decision::Unauthorized
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(u: &str, p: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    }

    #[test]
    fn basic_rw_ro_and_bearer() {
        let cfg = AuthConfig {
            basic: BasicUser::parse("alice:s3cret"),
            basic_read_only: BasicUser::parse("ro:pw"),
            bearer_tokens: vec![Credential::new("tok123")],
        };
        assert_eq!(
            check(&cfg, "POST", Some(&basic("alice", "s3cret"))),
            Decision::Allow
        );
        assert_eq!(
            check(&cfg, "GET", Some(&basic("ro", "pw"))),
            Decision::Allow
        );
        assert_eq!(
            check(&cfg, "POST", Some(&basic("ro", "pw"))),
            Decision::Unauthorized
        );
        assert_eq!(
            check(&cfg, "GET", Some(&basic("alice", "nope"))),
            Decision::Unauthorized
        );
        assert_eq!(check(&cfg, "GET", None), Decision::Unauthorized);
        assert_eq!(check(&cfg, "PUT", Some("Bearer tok123")), Decision::Allow);
        assert_eq!(
            check(&cfg, "PUT", Some("Bearer wrong")),
            Decision::Unauthorized
        );
        assert_eq!(
            format!("{:?}", cfg.basic),
            "Some(BasicUser { username: \"alice\", password: *** })"
        );
    }

    #[test]
    fn bearer_against_basic_only_is_a_bad_request_and_open_allows_all() {
        let cfg = AuthConfig {
            basic: BasicUser::parse("a:b"),
            ..AuthConfig::default()
        };
        assert_eq!(check(&cfg, "GET", Some("Bearer x")), Decision::BadScheme);
        assert_eq!(
            check(&AuthConfig::default(), "DELETE", None),
            Decision::Allow
        );
    }
}
