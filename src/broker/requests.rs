//! Pure request and URL builders: base URL normalisation, HAL template expansion and href
//! resolution, the `/matrix` query (with its row limit) and the `/can-i-deploy` URL, the
//! record-deployment and undeploy bodies and the currently-deployed query. The origins the
//! credentials may go to are `origins.rs`.
//!
//! Nothing here does IO; the HTTP adapter (`http.rs`) only sends what these functions build.

use reqwest::Url;

use super::Candidate;

/// Why a URL or template could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The base URL does not parse or is not usable.
    #[error("base URL {url:?} {problem}")]
    BaseUrl {
        /// The URL as configured (credentials, if any, are not echoed: see the problem).
        url: String,
        /// What is wrong.
        problem: String,
    },
    /// A template kept a `{placeholder}` no value was given for.
    #[error("template {template:?} has no value for {{{placeholder}}}")]
    MissingParameter {
        /// The template.
        template: String,
        /// The placeholder name.
        placeholder: String,
    },
    /// The expanded template is not a valid URL.
    #[error("{url:?} is not a valid URL: {problem}")]
    InvalidUrl {
        /// The expanded URL.
        url: String,
        /// The parser's message.
        problem: String,
    },
}

/// Parses and normalises a broker base URL: http or https, no credentials, no query or
/// fragment, and a path ending in `/` so that relative joins keep a path prefix
/// (`https://host/broker` -> `https://host/broker/`).
pub fn normalize_base_url(raw: &str) -> Result<Url, BuildError> {
    let problem = |problem: &str| BuildError::BaseUrl {
        url: if raw.contains('@') {
            "<redacted: contains userinfo>".to_string()
        } else {
            raw.to_string()
        },
        problem: problem.to_string(),
    };
    let mut url = Url::parse(raw.trim()).map_err(|e| problem(&format!("does not parse: {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(problem("must use http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(problem(
            "must not contain credentials (use a token or username/password file)",
        ));
    }
    if url.host_str().is_none() {
        return Err(problem("has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(problem("must not have a query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Percent-encodes a value the way the broker and both official clients do: everything
/// except `A-Z a-z 0-9 - . _ ~` (space -> `%20`, `/` -> `%2F`, `+` -> `%2B`).
pub fn encode(value: &str) -> String {
    urlencoding::encode(value).into_owned()
}

/// Expands a HAL template: each `{key}` becomes the percent-encoded value. A placeholder left
/// without a value is an error; a template without placeholders is returned unchanged.
pub fn expand_template(template: &str, params: &[(&str, &str)]) -> Result<String, BuildError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else {
            break;
        };
        let name = &rest[open + 1..close];
        out.push_str(&rest[..open]);
        match params.iter().find(|(key, _)| *key == name) {
            Some((_, value)) => out.push_str(&encode(value)),
            None => {
                return Err(BuildError::MissingParameter {
                    template: template.to_string(),
                    placeholder: name.to_string(),
                });
            }
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands a template and resolves the result against `document`, the URL of the resource the
/// link came from (RFC 3986 reference resolution): an absolute href is used as it is, a relative
/// one (`/pacticipants/{pacticipant}/versions/{version}`, `environments/{uuid}`) lands on the
/// broker that sent it.
pub fn expand_url(
    document: &Url,
    template: &str,
    params: &[(&str, &str)],
) -> Result<Url, BuildError> {
    resolve_href(document, &expand_template(template, params)?)
}

/// Resolves an href (absolute or relative) against `document`, the URL it was read from.
pub fn resolve_href(document: &Url, href: &str) -> Result<Url, BuildError> {
    let url = document.join(href).map_err(|e| BuildError::InvalidUrl {
        url: href.to_string(),
        problem: e.to_string(),
    })?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(BuildError::InvalidUrl {
            url: href.to_string(),
            problem: format!("{other}: is not http or https"),
        }),
    }
}

/// Resolves a path relative to the base URL, keeping its path prefix
/// (`https://host/broker/` + `matrix` -> `https://host/broker/matrix`).
pub fn join(base: &Url, relative: &str) -> Result<Url, BuildError> {
    base.join(relative.trim_start_matches('/'))
        .map_err(|e| BuildError::InvalidUrl {
            url: relative.to_string(),
            problem: e.to_string(),
        })
}

/// The `limit` an all-or-nothing `/matrix` query sends.
///
/// `/matrix` keeps only its newest 100 rows when the query names no `limit` (`parse_query.rb`;
/// an empty `limit=` is the same), and it cuts them before it decides: with 101 versions of a
/// consumer live in the environment and the oldest failing verification, an unlimited-looking
/// query says `deployable: true` (issue 13). There is no "no limit" value, so the query names one
/// no gate of a Compose host reaches: a row is one pact of a candidate's live counterpart version
/// with one provider version, so tens of services with a few live versions each make hundreds of
/// rows, and 10 000 leaves two orders of magnitude while bounding the answer (about 2 KB a row in
/// the broker's rendering, 20 MB at most). An answer that still fills the limit is not trusted
/// ([`crate::broker::Error::RowLimit`]). Per-service gates ask `/can-i-deploy`, which has no limit.
pub const MATRIX_ROW_LIMIT: usize = 10_000;

/// The `/matrix` query string for can-i-deploy of `candidates` into `environment`, as the
/// official CLI sends it (selectors grouped pacticipant-first by the Rack grouping rule, then
/// `latestby=cvpv` and `environment`), plus `limit=`[`MATRIX_ROW_LIMIT`], which the CLI does not
/// send.
///
/// `q[][pacticipant]=Foo&q[][version]=1&latestby=cvpv&environment=test&limit=10000`
pub fn matrix_query(environment: &str, candidates: &[Candidate]) -> String {
    let mut query = String::new();
    for candidate in candidates {
        query.push_str("q[][pacticipant]=");
        query.push_str(&encode(&candidate.pacticipant));
        query.push_str("&q[][version]=");
        query.push_str(&encode(&candidate.version));
        query.push('&');
    }
    query.push_str("latestby=cvpv&environment=");
    query.push_str(&encode(environment));
    query.push_str(&format!("&limit={MATRIX_ROW_LIMIT}"));
    query
}

/// The can-i-deploy URL of one candidate into `environment`: the index's
/// `pb:can-i-deploy-pacticipant-version-to-environment` template
/// (`<base>/can-i-deploy?pacticipant={pacticipant}&version={version}&environment={environment}`,
/// resolved against the base URL, the index's own URL), or that same URL built by hand when the
/// index lacks the relation. `/can-i-deploy` applies no row limit and evaluates every live
/// version of the integrated applications (`latestby=cvpv`).
pub fn can_i_deploy_url(
    base: &Url,
    template: Option<&str>,
    environment: &str,
    candidate: &Candidate,
) -> Result<Url, BuildError> {
    let params = [
        ("pacticipant", candidate.pacticipant.as_str()),
        ("version", candidate.version.as_str()),
        ("environment", environment),
    ];
    match template {
        Some(template) => expand_url(base, template, &params),
        None => {
            let mut url = join(base, "can-i-deploy")?;
            let query = params
                .iter()
                .map(|(key, value)| format!("{key}={}", encode(value)))
                .collect::<Vec<_>>()
                .join("&");
            url.set_query(Some(&query));
            Ok(url)
        }
    }
}

/// The full `/matrix` URL under the base URL (the index has no matrix relation).
pub fn matrix_url(
    base: &Url,
    environment: &str,
    candidates: &[Candidate],
) -> Result<Url, BuildError> {
    let mut url = join(base, "matrix")?;
    url.set_query(Some(&matrix_query(environment, candidates)));
    Ok(url)
}

/// The version resource URL built by hand, for brokers whose index lacks
/// `pb:pacticipant-version`: `<base>/pacticipants/{p}/versions/{v}`.
pub fn version_url_fallback(
    base: &Url,
    pacticipant: &str,
    version: &str,
) -> Result<Url, BuildError> {
    join(
        base,
        &format!(
            "pacticipants/{}/versions/{}",
            encode(pacticipant),
            encode(version)
        ),
    )
}

/// The JSON body of a record-deployment POST: `{}` or
/// `{"applicationInstance":X,"target":X}` (both CLIs send `target` too, for older brokers).
pub fn record_deployment_body(application_instance: Option<&str>) -> serde_json::Value {
    match application_instance {
        Some(instance) => {
            serde_json::json!({ "applicationInstance": instance, "target": instance })
        }
        None => serde_json::json!({}),
    }
}

/// The media type of a `PATCH` body: the broker answers 415 to anything else.
pub const MERGE_PATCH_JSON: &str = "application/merge-patch+json";

/// The merge-patch body that marks a deployed version as no longer deployed.
pub fn undeploy_body() -> serde_json::Value {
    serde_json::json!({ "currentlyDeployed": false })
}

/// The environment resource URL built by hand, for brokers whose index lacks `pb:environment`:
/// `<base>/environments/{uuid}`.
pub fn environment_url_fallback(base: &Url, uuid: &str) -> Result<Url, BuildError> {
    join(base, &format!("environments/{}", encode(uuid)))
}

/// The currently-deployed listing `href` filtered to `pacticipant`, and to `instance` when
/// given: `?pacticipant=Foo[&applicationInstance=blue]`.
///
/// Without an instance the parameter is left out, which the broker reads as "any instance"
/// (an empty `applicationInstance=` would mean "no instance", but brokers before that rule
/// read it as a blank name); the caller keeps the instance-less entries itself, as both
/// official CLIs do.
pub fn currently_deployed_url(href: &Url, pacticipant: &str, instance: Option<&str>) -> Url {
    let mut query = href.query().map(str::to_string).unwrap_or_default();
    let mut push = |key: &str, value: &str| {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(key);
        query.push('=');
        query.push_str(&encode(value));
    };
    push("pacticipant", pacticipant);
    if let Some(instance) = instance {
        push("applicationInstance", instance);
    }
    let mut url = href.clone();
    url.set_query(Some(&query));
    url
}

/// A short human description of a candidate set: "Foo 1, Bar 2".
pub fn describe_candidates(candidates: &[Candidate]) -> String {
    candidates
        .iter()
        .map(|c| format!("{} {}", c.pacticipant, c.version))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(p: &str, v: &str) -> Candidate {
        Candidate {
            pacticipant: p.into(),
            version: v.into(),
        }
    }

    #[test]
    fn single_selector_query_is_the_official_one() {
        assert_eq!(
            matrix_query("test", &[candidate("Foo", "1")]),
            "q[][pacticipant]=Foo&q[][version]=1&latestby=cvpv&environment=test&limit=10000"
        );
    }

    #[test]
    fn multi_selector_query_groups_pacticipant_first() {
        assert_eq!(
            matrix_query("test", &[candidate("Foo", "1"), candidate("Bar", "10")]),
            "q[][pacticipant]=Foo&q[][version]=1&q[][pacticipant]=Bar&q[][version]=10&latestby=cvpv&environment=test&limit=10000"
        );
    }

    #[test]
    fn values_are_percent_encoded_like_the_broker() {
        assert_eq!(
            matrix_query("test env", &[candidate("Foo Thing", "1.0+build/7")]),
            "q[][pacticipant]=Foo%20Thing&q[][version]=1.0%2Bbuild%2F7&latestby=cvpv&environment=test%20env&limit=10000"
        );
        assert_eq!(encode("a-Z.0_~"), "a-Z.0_~");
    }

    #[test]
    fn matrix_url_keeps_the_path_prefix_and_raw_brackets() {
        let base = normalize_base_url("https://host.example/broker").unwrap();
        assert_eq!(base.as_str(), "https://host.example/broker/");
        let url = matrix_url(&base, "prod", &[candidate("Foo", "1")]).unwrap();
        assert_eq!(
            url.as_str(),
            "https://host.example/broker/matrix?q[][pacticipant]=Foo&q[][version]=1&latestby=cvpv&environment=prod&limit=10000"
        );
        let root = normalize_base_url("http://127.0.0.1:9292").unwrap();
        assert_eq!(
            join(&root, "/matrix").unwrap().as_str(),
            "http://127.0.0.1:9292/matrix"
        );
    }

    #[test]
    fn base_url_rejects_credentials_queries_and_other_schemes() {
        let err = normalize_base_url("https://alice:s3cret@host/").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert!(normalize_base_url("ftp://host/").is_err());
        assert!(normalize_base_url("https://host/?x=1").is_err());
        assert!(normalize_base_url("not a url").is_err());
    }

    #[test]
    fn templates_expand_with_encoding_and_report_missing_values() {
        let template = "http://b.example/pacticipants/{pacticipant}/versions/{version}";
        assert_eq!(
            expand_template(
                template,
                &[("pacticipant", "Foo Thing"), ("version", "1.0+b/7")]
            )
            .unwrap(),
            "http://b.example/pacticipants/Foo%20Thing/versions/1.0%2Bb%2F7"
        );
        assert_eq!(
            expand_template(template, &[("pacticipant", "Foo")]),
            Err(BuildError::MissingParameter {
                template: template.into(),
                placeholder: "version".into()
            })
        );
        assert_eq!(
            expand_template("http://x/plain", &[]).unwrap(),
            "http://x/plain"
        );
        let query_template = "http://x/can-i-deploy?pacticipant={pacticipant}&version={version}";
        let base = normalize_base_url("http://h/broker/").unwrap();
        assert_eq!(
            expand_url(
                &base,
                query_template,
                &[("pacticipant", "A"), ("version", "2")]
            )
            .unwrap()
            .as_str(),
            "http://x/can-i-deploy?pacticipant=A&version=2"
        );
    }

    #[test]
    fn relative_hrefs_resolve_against_the_document_they_came_from() {
        let base = normalize_base_url("http://h/broker/").unwrap();
        let params = [("pacticipant", "Foo Thing"), ("version", "1.0+b/7")];
        assert_eq!(
            expand_url(
                &base,
                "pacticipants/{pacticipant}/versions/{version}",
                &params
            )
            .unwrap()
            .as_str(),
            "http://h/broker/pacticipants/Foo%20Thing/versions/1.0%2Bb%2F7"
        );
        assert_eq!(
            expand_url(
                &base,
                "/broker/pacticipants/{pacticipant}/versions/{version}",
                &params
            )
            .unwrap()
            .as_str(),
            "http://h/broker/pacticipants/Foo%20Thing/versions/1.0%2Bb%2F7"
        );
        assert_eq!(
            resolve_href(&base, "//other.example/x").unwrap().as_str(),
            "http://other.example/x"
        );
        let error = resolve_href(&base, "mailto:ops@example.com").unwrap_err();
        assert!(error.to_string().contains("not http or https"), "{error}");
    }

    #[test]
    fn can_i_deploy_urls_come_from_the_index_template_or_are_built_alike() {
        let base = normalize_base_url("http://h/broker").unwrap();
        let foo = Candidate {
            pacticipant: "Foo Thing".into(),
            version: "1.0+build/7".into(),
        };
        let expected = "http://h/broker/can-i-deploy?pacticipant=Foo%20Thing&version=1.0%2Bbuild%2F7&environment=test%20env";
        let absolute = "http://h/broker/can-i-deploy?pacticipant={pacticipant}&version={version}&environment={environment}";
        let relative =
            "can-i-deploy?pacticipant={pacticipant}&version={version}&environment={environment}";
        for template in [Some(absolute), Some(relative), None] {
            assert_eq!(
                can_i_deploy_url(&base, template, "test env", &foo)
                    .unwrap()
                    .as_str(),
                expected,
                "{template:?}"
            );
        }
        // The public base URL a broker advertises is followed as it is.
        let public = "https://public.example/can-i-deploy?pacticipant={pacticipant}&version={version}&environment={environment}";
        assert_eq!(
            can_i_deploy_url(&base, Some(public), "prod", &foo)
                .unwrap()
                .as_str(),
            "https://public.example/can-i-deploy?pacticipant=Foo%20Thing&version=1.0%2Bbuild%2F7&environment=prod"
        );
        assert!(matches!(
            can_i_deploy_url(
                &base,
                Some("http://h/can-i-deploy?pacticipant={pacticipant}&to={tag}"),
                "prod",
                &foo
            ),
            Err(BuildError::MissingParameter { .. })
        ));
    }

    #[test]
    fn fallback_version_url_is_encoded_under_the_prefix() {
        let base = normalize_base_url("http://h/broker/").unwrap();
        assert_eq!(
            version_url_fallback(&base, "Foo Thing", "1.0+build/7")
                .unwrap()
                .as_str(),
            "http://h/broker/pacticipants/Foo%20Thing/versions/1.0%2Bbuild%2F7"
        );
    }

    #[test]
    fn record_body_carries_instance_and_target() {
        assert_eq!(record_deployment_body(None).to_string(), "{}");
        assert_eq!(
            record_deployment_body(Some("blue")),
            serde_json::json!({"applicationInstance": "blue", "target": "blue"})
        );
    }

    #[test]
    fn currently_deployed_query_names_the_pacticipant_and_the_instance_when_given() {
        let href =
            Url::parse("http://h/broker/environments/u-1/deployed-versions/currently-deployed")
                .unwrap();
        assert_eq!(
            currently_deployed_url(&href, "Foo Thing", None).as_str(),
            "http://h/broker/environments/u-1/deployed-versions/currently-deployed?pacticipant=Foo%20Thing"
        );
        assert_eq!(
            currently_deployed_url(&href, "Foo", Some("blue/1")).query(),
            Some("pacticipant=Foo&applicationInstance=blue%2F1")
        );
        let with_query = Url::parse("http://h/cd?x=1").unwrap();
        assert_eq!(
            currently_deployed_url(&with_query, "Foo", None).query(),
            Some("x=1&pacticipant=Foo")
        );
    }

    #[test]
    fn undeploy_is_a_merge_patch_of_currently_deployed_false() {
        assert_eq!(
            undeploy_body().to_string(),
            r#"{"currentlyDeployed":false}"#
        );
        assert_eq!(MERGE_PATCH_JSON, "application/merge-patch+json");
        let base = normalize_base_url("http://h/broker").unwrap();
        assert_eq!(
            environment_url_fallback(&base, "u-1").unwrap().as_str(),
            "http://h/broker/environments/u-1"
        );
    }
}
