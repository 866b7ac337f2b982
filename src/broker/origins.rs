//! Where the broker credentials may go: the origin (scheme, host, port) of `spec.broker.url`,
//! the origin the broker's own index advertises in its `self` link, and the origins listed in
//! `spec.broker.trustedOrigins`. Nothing else ever sees an `Authorization` header.
//!
//! Why the `self` link: a broker builds every href on its configured public base URL
//! (`PACT_BROKER_BASE_URL`) or on the request's forwarded headers, which need not be the URL
//! c2quay was given (an internal name, a TLS proxy). The index is fetched from
//! `spec.broker.url` itself, with the credentials, so the broker that received them names its
//! own origin. One exception: an `http` origin advertised behind an `https` URL (a TLS proxy
//! that does not forward `X-Forwarded-Proto`) is not trusted from the link alone, because
//! following it would send the credentials in clear; listing it in `trustedOrigins` is the
//! operator saying that is intended.
//!
//! Pure apart from the advertised origin, which is learnt once with the index.

use std::sync::OnceLock;

use reqwest::Url;

/// Parses one `trustedOrigins` entry, `scheme://host[:port]` (http or https; a trailing `/` is
/// allowed; no path, query, fragment or credentials), into its ASCII serialisation
/// (`https://broker.example`, the default port left out). The error says what is wrong with the
/// entry, without echoing one that carries credentials.
pub fn parse_origin(text: &str) -> Result<String, String> {
    let shown = if text.contains('@') {
        "the entry".to_string()
    } else {
        format!("{text:?}")
    };
    let url = Url::parse(text.trim())
        .map_err(|e| format!("{shown} is not an origin `scheme://host[:port]` ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{shown} carries credentials; an origin is only `scheme://host[:port]`"
        ));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{shown} must use http or https, not {}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{shown} has no host"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{shown} has a path, query or fragment; an origin is only `scheme://host[:port]` (e.g. {})",
            url.origin().ascii_serialization()
        ));
    }
    Ok(url.origin().ascii_serialization())
}

/// Why a URL's origin is not trusted with the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Neither `spec.broker.url`'s origin, nor the advertised one, nor listed.
    Unknown,
    /// The origin the index advertises, but plain `http` behind an `https` `spec.broker.url`.
    PlainHttpAdvertised,
}

/// The origins the credentials may be sent to.
#[derive(Debug)]
pub struct Origins {
    broker: String,
    broker_is_https: bool,
    listed: Vec<String>,
    advertised: OnceLock<Option<String>>,
}

impl Origins {
    /// The origins of `base` (the normalised `spec.broker.url`) and of `listed` (already
    /// parsed with [`parse_origin`]). The advertised origin is learnt later
    /// ([`Origins::learn_advertised`]).
    pub fn new(base: &Url, listed: Vec<String>) -> Self {
        Origins {
            broker: base.origin().ascii_serialization(),
            broker_is_https: base.scheme() == "https",
            listed,
            advertised: OnceLock::new(),
        }
    }

    /// Records the origin of the index's `self` href (resolved against the base URL). Only the
    /// first call counts: the index is fetched once.
    pub fn learn_advertised(&self, self_href: Option<&Url>) {
        let _ = self
            .advertised
            .set(self_href.map(|url| url.origin().ascii_serialization()));
    }

    /// The origin of `spec.broker.url`.
    pub fn broker(&self) -> &str {
        &self.broker
    }

    /// The origin the index advertises, once the index was read (None before, or without a
    /// `self` link).
    pub fn advertised(&self) -> Option<&str> {
        self.advertised.get().and_then(Option::as_deref)
    }

    /// Whether the credentials may be sent to `url`, and why not.
    pub fn check(&self, url: &Url) -> Result<(), Refusal> {
        let origin = url.origin().ascii_serialization();
        if origin == self.broker || self.listed.contains(&origin) {
            return Ok(());
        }
        if self.advertised() == Some(origin.as_str()) {
            return if self.broker_is_https && url.scheme() == "http" {
                Err(Refusal::PlainHttpAdvertised)
            } else {
                Ok(())
            };
        }
        Err(Refusal::Unknown)
    }

    /// The origin of `url` in the form errors and `trustedOrigins` use.
    pub fn of(url: &Url) -> String {
        url.origin().ascii_serialization()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn origins_parse_to_their_serialisation_and_bad_entries_say_why() {
        for (entry, origin) in [
            ("https://broker.example", "https://broker.example"),
            ("https://broker.example/", "https://broker.example"),
            ("https://broker.example:443", "https://broker.example"),
            ("http://10.0.0.7:9292", "http://10.0.0.7:9292"),
            (
                " HTTPS://Broker.Example:8443 ",
                "https://broker.example:8443",
            ),
        ] {
            assert_eq!(parse_origin(entry).as_deref(), Ok(origin), "{entry}");
        }
        for (entry, says) in [
            ("broker.example", "is not an origin"),
            ("ftp://broker.example", "must use http or https, not ftp"),
            (
                "https://broker.example/broker",
                "has a path, query or fragment",
            ),
            (
                "https://broker.example/?x=1",
                "has a path, query or fragment",
            ),
            (
                "https://broker.example/#top",
                "has a path, query or fragment",
            ),
        ] {
            let error = parse_origin(entry).unwrap_err();
            assert!(
                error.contains(says) && error.contains(entry.trim()),
                "{entry}: {error}"
            );
        }
        let error = parse_origin("https://alice:s3cret@broker.example").unwrap_err();
        assert!(
            error.contains("credentials") && !error.contains("s3cret"),
            "{error}"
        );
    }

    #[test]
    fn the_broker_the_listed_and_the_advertised_origins_are_trusted() {
        let base = url("https://broker.example/broker/");
        let origins = Origins::new(&base, vec!["https://mirror.example:8443".into()]);
        assert_eq!(origins.check(&url("https://broker.example/x")), Ok(()));
        assert_eq!(origins.check(&url("https://mirror.example:8443/x")), Ok(()));
        assert_eq!(
            origins.check(&url("https://public.example/x")),
            Err(Refusal::Unknown),
            "not advertised yet"
        );
        origins.learn_advertised(Some(&url("https://public.example/")));
        origins.learn_advertised(Some(&url("https://other.example/")));
        assert_eq!(origins.advertised(), Some("https://public.example"));
        assert_eq!(origins.check(&url("https://public.example/x")), Ok(()));
        assert_eq!(
            origins.check(&url("https://public.example:8443/x")),
            Err(Refusal::Unknown),
            "another port is another origin"
        );
        assert_eq!(
            origins.check(&url("http://broker.example/x")),
            Err(Refusal::Unknown),
            "another scheme is another origin"
        );
    }

    #[test]
    fn a_plain_http_origin_advertised_behind_https_needs_listing() {
        let base = url("https://broker.example/");
        let origins = Origins::new(&base, Vec::new());
        origins.learn_advertised(Some(&url("http://broker.example/")));
        assert_eq!(
            origins.check(&url("http://broker.example/x")),
            Err(Refusal::PlainHttpAdvertised)
        );
        let listed = Origins::new(&base, vec!["http://broker.example".into()]);
        listed.learn_advertised(Some(&url("http://broker.example/")));
        assert_eq!(listed.check(&url("http://broker.example/x")), Ok(()));
        // Behind an http base URL an http advertised origin is no downgrade.
        let plain = Origins::new(&url("http://10.0.0.7:9292/"), Vec::new());
        plain.learn_advertised(Some(&url("http://broker.internal/")));
        assert_eq!(plain.check(&url("http://broker.internal/x")), Ok(()));
    }
}
