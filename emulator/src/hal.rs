//! HAL+JSON rendering of the broker's resources, with absolute hrefs built
//! on the base URL of the request (scheme, Host and any path prefix).
//!
//! Pure functions from model values to `serde_json::Value`; the shapes follow
//! the broker's decorators (reference §1-§4 and the derived samples).

use serde_json::{Map, Value, json};

use crate::matrix::{MatrixResult, Row};
use crate::model::{
    DeployedVersion, Environment, Pact, ReleasedVersion, State, Verification, Version,
};

/// Percent-encodes a path segment like the broker (everything but `A-Za-z0-9-._~`).
pub fn enc(s: &str) -> String {
    urlencoding::encode(s).into_owned()
}

/// `<base>/pacticipants/{p}`.
pub fn pacticipant_url(base: &str, p: &str) -> String {
    format!("{base}/pacticipants/{}", enc(p))
}

/// `<base>/pacticipants/{p}/versions/{v}`.
pub fn version_url(base: &str, p: &str, v: &str) -> String {
    format!("{}/versions/{}", pacticipant_url(base, p), enc(v))
}

/// `<base>/environments/{uuid}`.
pub fn environment_url(base: &str, uuid: &str) -> String {
    format!("{base}/environments/{uuid}")
}

/// `<base>/pacts/provider/{p}/consumer/{c}/version/{v}`.
pub fn pact_url(base: &str, provider: &str, consumer: &str, consumer_version: &str) -> String {
    format!(
        "{base}/pacts/provider/{}/consumer/{}/version/{}",
        enc(provider),
        enc(consumer),
        enc(consumer_version)
    )
}

/// `<base>/pacts/provider/{p}/consumer/{c}/pact-version/{sha}`.
pub fn pact_version_url(base: &str, provider: &str, consumer: &str, sha: &str) -> String {
    format!(
        "{base}/pacts/provider/{}/consumer/{}/pact-version/{sha}",
        enc(provider),
        enc(consumer)
    )
}

fn link(href: String, title: &str) -> Value {
    json!({"title": title, "href": href})
}

fn tl(base: &str, path: &str, title: &str) -> Value {
    json!({"href": format!("{base}{path}"), "title": title, "templated": path.contains('{')})
}

/// `GET /`.
pub fn index(base: &str) -> Value {
    let rels: [(&str, &str, &str); 24] = [
        (
            "pb:publish-pact",
            "/pacts/provider/{provider}/consumer/{consumer}/version/{consumerApplicationVersion}",
            "Publish a pact",
        ),
        (
            "pb:publish-contracts",
            "/contracts/publish",
            "Publish contracts",
        ),
        (
            "pb:latest-pact-versions",
            "/pacts/latest",
            "Latest pact versions",
        ),
        ("pb:pacticipants", "/pacticipants", "Pacticipants"),
        (
            "pb:pacticipant",
            "/pacticipants/{pacticipant}",
            "Fetch pacticipant by name",
        ),
        (
            "pb:latest-provider-pacts",
            "/pacts/provider/{provider}/latest",
            "Latest pacts by provider",
        ),
        (
            "pb:latest-provider-pacts-with-tag",
            "/pacts/provider/{provider}/latest/{tag}",
            "Latest pacts for provider with the specified tag",
        ),
        (
            "pb:provider-pacts-with-tag",
            "/pacts/provider/{provider}/tag/{tag}",
            "All pact versions for the provider with the specified consumer version tag",
        ),
        (
            "pb:provider-pacts",
            "/pacts/provider/{provider}",
            "All pact versions for the specified provider",
        ),
        (
            "pb:latest-version",
            "/pacticipants/{pacticipant}/latest-version",
            "Latest pacticipant version",
        ),
        (
            "pb:latest-tagged-version",
            "/pacticipants/{pacticipant}/latest-version/{tag}",
            "Latest pacticipant version with the specified tag",
        ),
        ("pb:webhooks", "/webhooks", "Webhooks"),
        ("pb:webhook", "/webhooks/{uuid}", "Webhook"),
        ("pb:integrations", "/integrations", "Integrations"),
        (
            "pb:pacticipant-version-tag",
            "/pacticipants/{pacticipant}/versions/{version}/tags/{tag}",
            "Get, create or delete a tag for a pacticipant version",
        ),
        (
            "pb:pacticipant-branch",
            "/pacticipants/{pacticipant}/branches/{branch}",
            "Get or delete a pacticipant branch",
        ),
        (
            "pb:pacticipant-branch-version",
            "/pacticipants/{pacticipant}/branches/{branch}/versions/{version}",
            "Get or add/create a pacticipant version for a branch",
        ),
        (
            "pb:pacticipant-version",
            "/pacticipants/{pacticipant}/versions/{version}",
            "Get, create or delete a pacticipant version",
        ),
        (
            "pb:can-i-deploy-pacticipant-version-to-tag",
            "/can-i-deploy?pacticipant={pacticipant}&version={version}&to={tag}",
            "Determine if an application version can be safely deployed to an environment identified by the given tag",
        ),
        (
            "pb:can-i-deploy-pacticipant-version-to-environment",
            "/can-i-deploy?pacticipant={pacticipant}&version={version}&environment={environment}",
            "Determine if an application version can be safely deployed to an environment",
        ),
        (
            "pb:provider-pacts-for-verification",
            "/pacts/provider/{provider}/for-verification",
            "Pact versions to be verified for the specified provider",
        ),
        ("pb:environments", "/environments", "Environments"),
        ("pb:environment", "/environments/{uuid}", "Environment"),
        ("pb:metrics", "/metrics", "Get Pact Broker metrics"),
    ];
    let mut links = Map::new();
    links.insert(
        "self".into(),
        json!({"href": base, "title": "Index", "templated": false}),
    );
    for (rel, path, title) in rels {
        links.insert(rel.into(), tl(base, path, title));
    }
    links.insert(
        "pb:tagged-pact-versions".into(),
        json!({"href": format!("{base}/pacts/provider/{{provider}}/consumer/{{consumer}}/tag/{{tag}}"),
               "title": "All versions of a pact for a given consumer, provider and consumer version tag", "templated": false}),
    );
    links.insert(
        "curies".into(),
        json!([{"name": "pb", "href": format!("{base}/doc/{{rel}}?context=index"), "templated": true},
               {"name": "beta", "href": format!("{base}/doc/{{rel}}?context=index"), "templated": true}]),
    );
    json!({ "_links": links })
}

/// An environment object.
pub fn environment(base: &str, e: &Environment) -> Value {
    let url = environment_url(base, &e.uuid);
    let mut v = json!({
        "uuid": e.uuid, "name": e.name, "displayName": e.display_name, "production": e.production,
        "createdAt": e.created_at,
        "_links": {
            "self": {"title": "Environment", "name": e.name, "href": url},
            "pb:currently-deployed-deployed-versions": link(format!("{url}/deployed-versions/currently-deployed"),
                &format!("Versions currently deployed to {} environment", e.display_name)),
            "pb:currently-supported-released-versions": link(format!("{url}/released-versions/currently-supported"),
                &format!("Versions released and supported in {} environment", e.display_name)),
            "pb:environments": link(format!("{base}/environments"), "Environments"),
        }
    });
    if let Some(c) = &e.contacts {
        v["contacts"] = c.clone();
    }
    if let Some(u) = &e.updated_at {
        v["updatedAt"] = json!(u);
    }
    v
}

/// `GET /environments` (sorted by lower-cased display name).
pub fn environments(base: &str, envs: &[&Environment], self_href: &str) -> Value {
    let mut sorted: Vec<&Environment> = envs.to_vec();
    sorted.sort_by_key(|e| e.display_name.to_lowercase());
    let links: Vec<Value> = sorted
        .iter()
        .map(|e| json!({"title": "Environment", "name": e.name, "href": environment_url(base, &e.uuid)}))
        .collect();
    json!({
        "_embedded": {"environments": sorted.iter().map(|e| environment(base, e)).collect::<Vec<_>>()},
        "_links": {"self": link(self_href.to_string(), "Environments"), "pb:environments": links}
    })
}

fn version_self(base: &str, p: &str, n: &str) -> Value {
    json!({"title": "Version", "name": n, "href": version_url(base, p, n)})
}

/// A pacticipant version (with the record-deployment/record-release arrays).
pub fn version(base: &str, state: &State, v: &Version) -> Value {
    let url = version_url(base, &v.pacticipant, &v.number);
    let mut envs: Vec<&Environment> = state.environments.iter().collect();
    envs.sort_by_key(|e| e.display_name.to_lowercase());
    let record = |kind: &str, verb: &str| -> Vec<Value> {
        envs.iter()
            .map(|e| {
                json!({"title": format!("Record {verb} to {}", e.display_name), "name": e.name,
                            "href": format!("{url}/{kind}/environment/{}", e.uuid)})
            })
            .collect()
    };
    let deployed: Vec<Value> = state
        .deployed
        .iter()
        .filter(|d| d.pacticipant == v.pacticipant && d.version == v.number)
        .filter_map(|d| {
            let e = state.environment(&d.environment_uuid)?;
            let mut l = json!({"title": format!("Version deployed to {}", e.display_name), "name": e.display_name,
                               "href": format!("{base}/deployed-versions/{}", d.uuid), "currently_deployed": d.currently_deployed});
            if let Some(i) = &d.application_instance {
                l["application_instance"] = json!(i);
            }
            Some(l)
        })
        .collect();
    let released: Vec<Value> = state
        .released
        .iter()
        .filter(|r| r.pacticipant == v.pacticipant && r.version == v.number)
        .filter_map(|r| {
            let e = state.environment(&r.environment_uuid)?;
            Some(json!({"title": format!("Version released to {}", e.display_name), "name": e.display_name,
                        "href": format!("{base}/released-versions/{}", r.uuid), "currently_supported": r.currently_supported}))
        })
        .collect();
    let pact_versions: Vec<Value> = state
        .pacts
        .iter()
        .filter(|p| p.consumer == v.pacticipant && p.consumer_version == v.number)
        .map(|p| json!({"title": "Pact", "name": format!("Pact between {} ({}) and {}", p.consumer, p.consumer_version, p.provider),
                        "href": pact_url(base, &p.provider, &p.consumer, &p.consumer_version)}))
        .collect();
    let mut out = json!({
        "number": v.number,
        "createdAt": v.created_at,
        "_embedded": {
            "branches": v.branches.iter().map(|b| json!({"name": b, "_links": {"self": {"href": format!("{}/branches/{}", pacticipant_url(base, &v.pacticipant), enc(b))}}})).collect::<Vec<_>>(),
            "branchVersions": branch_versions(base, state, v),
            "tags": v.tags.iter().map(|t| json!({"name": t, "_links": {"self": {"title": "Tag", "name": t, "href": format!("{url}/tags/{}", enc(t))}}})).collect::<Vec<_>>(),
        },
        "_links": {
            "self": version_self(base, &v.pacticipant, &v.number),
            "pb:pacticipant": {"title": "Pacticipant", "name": v.pacticipant, "href": pacticipant_url(base, &v.pacticipant)},
            "pb:tag": {"href": format!("{url}/tags/{{tag}}"), "title": "Get, create or delete a tag for this pacticipant version", "templated": true},
            "pb:latest-verification-results-where-pacticipant-is-consumer": link(
                format!("{base}/verification-results/consumer/{}/version/{}/latest", enc(&v.pacticipant), enc(&v.number)),
                "Latest verification results for consumer version"),
            "pb:pact-versions": pact_versions,
            "pb:deployed-environments": deployed,
            "pb:released-environments": released,
            "pb:record-deployment": record("deployed-versions", "deployment"),
            "pb:record-release": record("released-versions", "release"),
            "curies": [{"name": "pb", "href": format!("{base}/doc/{{rel}}?context=version"), "templated": true}],
        }
    });
    if let Some(b) = &v.build_url {
        out["buildUrl"] = json!(b);
    }
    out
}

fn branch_versions(base: &str, state: &State, v: &Version) -> Vec<Value> {
    v.branches
        .iter()
        .map(|b| {
            let latest = state
                .versions_of(&v.pacticipant)
                .filter(|x| x.branches.contains(b))
                .max_by_key(|x| x.order);
            let href = format!(
                "{}/branches/{}/versions/{}",
                pacticipant_url(base, &v.pacticipant),
                enc(b),
                enc(&v.number)
            );
            json!({"name": b, "latest": latest.is_some_and(|l| l.number == v.number),
                   "_links": {"self": {"title": "Branch version", "name": b, "href": href}}})
        })
        .collect()
}

/// A pacticipant.
pub fn pacticipant(base: &str, state: &State, name: &str) -> Value {
    let url = pacticipant_url(base, name);
    let mut out = json!({
        "name": name,
        "displayName": crate::model::display_name_for(name),
        "_embedded": {"labels": []},
        "_links": {
            "self": {"href": url},
            "pb:versions": {"href": format!("{url}/versions")},
            "pb:version": {"title": "Get, create or delete a pacticipant version", "href": format!("{url}/versions/{{version}}"), "templated": true},
            "pb:branch-version": {"title": format!("Get or add/create a version for a branch of {name}"),
                                  "href": format!("{url}/branches/{{branch}}/versions/{{version}}"), "templated": true},
        }
    });
    if let Some(p) = state.pacticipant(name) {
        out["createdAt"] = json!(p.created_at);
        if let Some(m) = &p.main_branch {
            out["mainBranch"] = json!(m);
        }
    }
    if let Some(l) = state.latest_version(name) {
        out["_embedded"]["latestVersion"] =
            json!({"number": l.number, "_links": {"self": version_self(base, name, &l.number)}});
    }
    out
}

fn embedded_pacticipant(base: &str, name: &str) -> Value {
    json!({"name": name, "_links": {"self": {"href": pacticipant_url(base, name)}}})
}

/// A deployed-version record; `with_env` embeds the environment (not done by the currently-deployed list).
pub fn deployed_version(base: &str, state: &State, d: &DeployedVersion, with_env: bool) -> Value {
    let mut out = json!({"uuid": d.uuid, "currentlyDeployed": d.currently_deployed});
    if let Some(i) = &d.application_instance {
        out["target"] = json!(i);
        out["applicationInstance"] = json!(i);
    }
    if let Some(u) = &d.undeployed_at {
        out["undeployedAt"] = json!(u);
        out["updatedAt"] = json!(u);
    }
    out["createdAt"] = json!(d.created_at);
    let mut embedded = json!({
        "pacticipant": embedded_pacticipant(base, &d.pacticipant),
        "version": {"number": d.version, "_links": {"self": version_self(base, &d.pacticipant, &d.version)}},
    });
    if with_env {
        if let Some(e) = state.environment(&d.environment_uuid) {
            embedded["environment"] = environment(base, e);
        }
    }
    out["_embedded"] = embedded;
    out["_links"] = json!({"self": {"href": format!("{base}/deployed-versions/{}", d.uuid)}});
    out
}

/// A released-version record.
pub fn released_version(base: &str, state: &State, r: &ReleasedVersion, with_env: bool) -> Value {
    let mut out = json!({"uuid": r.uuid, "currentlySupported": r.currently_supported, "createdAt": r.created_at});
    if let Some(s) = &r.support_ended_at {
        out["supportEndedAt"] = json!(s);
    }
    let mut embedded = json!({
        "pacticipant": embedded_pacticipant(base, &r.pacticipant),
        "version": {"number": r.version, "_links": {"self": version_self(base, &r.pacticipant, &r.version)}},
    });
    if with_env {
        if let Some(e) = state.environment(&r.environment_uuid) {
            embedded["environment"] = environment(base, e);
        }
    }
    out["_embedded"] = embedded;
    out["_links"] = json!({"self": {"href": format!("{base}/released-versions/{}", r.uuid)}});
    out
}

/// A pact resource: the pact content plus `_links` (incl. `pb:publish-verification-results`).
pub fn pact(base: &str, state: &State, p: &Pact) -> Value {
    let mut out: Value = state
        .contents
        .get(&p.sha)
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_else(|| json!({}));
    if !out.is_object() {
        out = json!({});
    }
    let pv = pact_version_url(base, &p.provider, &p.consumer, &p.sha);
    out["createdAt"] = json!(p.created_at);
    out["_links"] = json!({
        "self": {"title": "Pact", "name": format!("Pact between {} ({}) and {}", p.consumer, p.consumer_version, p.provider),
                 "href": pact_url(base, &p.provider, &p.consumer, &p.consumer_version)},
        "pb:consumer": {"title": "Consumer", "name": p.consumer, "href": pacticipant_url(base, &p.consumer)},
        "pb:consumer-version": {"title": "Consumer version", "name": p.consumer_version, "href": version_url(base, &p.consumer, &p.consumer_version)},
        "pb:provider": {"title": "Provider", "name": p.provider, "href": pacticipant_url(base, &p.provider)},
        "pb:pact-version": {"title": "Pact content version permalink", "name": p.sha, "href": pv},
        "pb:publish-verification-results": {"title": "Publish verification results", "href": format!("{pv}/verification-results")},
    });
    out
}

/// A verification result.
pub fn verification(base: &str, v: &Verification) -> Value {
    let pv = pact_version_url(base, &v.provider, &v.consumer, &v.sha);
    json!({
        "providerName": v.provider, "providerApplicationVersion": v.provider_version, "success": v.success,
        "verificationDate": v.verified_at,
        "_links": {
            "self": {"title": "Verification result", "href": format!("{pv}/verification-results/{}", v.order)},
            "pb:pact-version": {"title": "Pact", "href": pv},
        }
    })
}

fn matrix_version(base: &str, state: &State, p: &str, n: &str) -> Value {
    let Some(v) = state.version(p, n) else {
        return json!({"number": n, "_links": {"self": {"href": version_url(base, p, n)}}});
    };
    let branches = branch_versions(base, state, v);
    json!({
        "number": n,
        "branch": v.branches.last(),
        "branches": branches,
        "branchVersions": branches,
        "environments": state.environments_of_version(p, n).into_iter().map(|e| environment(base, e)).collect::<Vec<_>>(),
        "_links": {"self": {"href": version_url(base, p, n)}},
        "tags": v.tags.iter().map(|t| json!({"name": t, "latest": false,
            "_links": {"self": {"href": format!("{}/tags/{}", version_url(base, p, n), enc(t))}}})).collect::<Vec<_>>(),
    })
}

fn matrix_row(base: &str, state: &State, r: &Row) -> Value {
    let mut out = json!({
        "consumer": {"name": r.consumer, "version": matrix_version(base, state, &r.consumer, &r.consumer_version),
                     "_links": {"self": {"href": pacticipant_url(base, &r.consumer)}}},
        "provider": {"name": r.provider,
                     "version": r.provider_version.as_ref().map(|pv| matrix_version(base, state, &r.provider, pv)),
                     "_links": {"self": {"href": pacticipant_url(base, &r.provider)}}},
        "pact": {"createdAt": r.pact_created_at,
                 "_links": {"self": {"href": pact_url(base, &r.provider, &r.consumer, &r.consumer_version)}}},
        "verificationResult": r.verification.as_ref().map(|v| json!({
            "success": v.success, "verifiedAt": v.verified_at,
            "_links": {"self": {"href": format!("{}/verification-results/{}", pact_version_url(base, &r.provider, &r.consumer, &r.sha), v.order)}}
        })),
    });
    if r.ignored {
        out["ignored"] = json!(true);
    }
    out
}

/// The `/matrix` and `/can-i-deploy` body.
pub fn matrix(base: &str, state: &State, m: &MatrixResult) -> Value {
    let s = &m.summary;
    let mut summary = json!({"deployable": s.deployable, "reason": s.reason, "success": s.success,
                             "failed": s.failed, "unknown": s.unknown});
    if let Some(i) = s.ignored {
        summary["ignored"] = json!(i);
    }
    json!({
        "summary": summary,
        "notices": m.notices.iter().map(|n| json!({"type": n.kind, "text": n.text})).collect::<Vec<_>>(),
        "matrix": m.rows.iter().map(|r| matrix_row(base, state, r)).collect::<Vec<_>>(),
    })
}
