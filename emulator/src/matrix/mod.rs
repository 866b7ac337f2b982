//! The matrix: which pacts and verifications apply to a set of selectors,
//! and whether that set is deployable (reference §2.5). Pure: it reads a
//! [`State`] and a [`MatrixQuery`] and returns data; rendering is in `hal`.
//!
//! Steps: resolve the specified selectors; when a target is given
//! (latest/tag/environment/mainBranch) infer a selector for every integrated
//! application not already specified; build rows (latest pact per consumer
//! version, LEFT JOIN verifications of the same content by the selected
//! provider versions); sort newest first and keep the first `limit` rows
//! (the broker's query does, so the limit comes before everything else);
//! collapse by `latestby`, filter by `success`, split off ignored rows; then
//! decide.

use std::collections::BTreeSet;

mod selectors;

pub use selectors::{Resolved, SelectorKind, resolve};
use selectors::{kind_of, target_kind};

use crate::model::State;
use crate::query::{LatestBy, MatrixQuery};

/// The verification joined to a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowVerification {
    /// Verification id (order).
    pub order: u64,
    /// Outcome.
    pub success: bool,
    /// Timestamp.
    pub verified_at: String,
}

/// One matrix row: a pact, optionally joined with a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Consumer name.
    pub consumer: String,
    /// Consumer version number.
    pub consumer_version: String,
    /// Provider name.
    pub provider: String,
    /// Provider version number (`None` = not verified by a selected provider version).
    pub provider_version: Option<String>,
    /// Pact content sha.
    pub sha: String,
    /// Pact publication timestamp.
    pub pact_created_at: String,
    /// The joined verification.
    pub verification: Option<RowVerification>,
    /// Matched by an ignore selector.
    pub ignored: bool,
    consumer_order: u64,
    provider_order: u64,
    consumer_desc: String,
    provider_desc: String,
}

/// A notice in the matrix response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// `success`, `warning` or `error`.
    pub kind: &'static str,
    /// The text.
    pub text: String,
}

/// The `summary` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// `true`, `false` or `null`.
    pub deployable: Option<bool>,
    /// Notice texts joined with `\n`.
    pub reason: String,
    /// Considered rows with a successful verification.
    pub success: usize,
    /// Considered rows with a failed verification.
    pub failed: usize,
    /// Unverified rows plus required integrations without rows.
    pub unknown: usize,
    /// Ignored rows, only when ignore selectors were given.
    pub ignored: Option<usize>,
}

/// The whole decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixResult {
    /// Summary.
    pub summary: Summary,
    /// Notices (warnings first).
    pub notices: Vec<Notice>,
    /// Considered rows newest first, then ignored rows.
    pub rows: Vec<Row>,
    /// All resolved selectors (specified then inferred).
    pub selectors: Vec<Resolved>,
}

/// Validates the selectors and options against the state (array-form messages), in the
/// order of the broker's `matrix/service.rb`: each selector, unknown pacticipants, no selector,
/// then the options (`validate_options`): more than one destination, `latest=true` with an
/// environment, an unknown environment, a limit below 1. The destination checks are on the
/// top-level options, as in the broker, not on selectors.
pub fn validate(state: &State, q: &MatrixQuery) -> Vec<String> {
    let mut errors = Vec::new();
    for s in &q.selectors {
        let Some(p) = &s.pacticipant else {
            errors.push("Please specify the pacticipant name".to_string());
            continue;
        };
        if s.version.is_some() && s.latest {
            errors.push(format!(
                "A version number and latest flag cannot both be specified for {p}"
            ));
        }
    }
    for p in q.selectors.iter().filter_map(|s| s.pacticipant.as_ref()) {
        if state.pacticipant(p).is_none() {
            errors.push(format!("Pacticipant {p} not found"));
        }
    }
    if q.selectors.is_empty() {
        errors.push("Please provide 1 or more version selectors.".to_string());
    }
    let destinations = [q.tag.is_some(), q.environment.is_some(), q.main_branch]
        .iter()
        .filter(|given| **given)
        .count();
    if destinations > 1 {
        errors.push("Cannot specify more than one of tag, environment and mainBranch.".to_string());
    }
    if q.latest && q.environment.is_some() {
        errors.push("Cannot specify both latest=true and an environment.".to_string());
    }
    // Selector environments are not validated by the broker; the emulator names an unknown one
    // rather than resolving it to no version (a documented deviation).
    let envs = q
        .environment
        .iter()
        .chain(q.selectors.iter().filter_map(|s| s.environment.as_ref()));
    for e in envs {
        if state.environment_named(e).is_none() {
            errors.push(format!("Environment with name '{e}' does not exist"));
        }
    }
    if q.limit.is_some_and(|limit| limit < 1) {
        errors.push("The limit must be 1 or greater.".to_string());
    }
    errors
}

/// Evaluates a matrix query; `Err` holds the array-form validation errors.
pub fn evaluate(state: &State, q: &MatrixQuery) -> Result<MatrixResult, Vec<String>> {
    let errors = validate(state, q);
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut selectors: Vec<Resolved> = q
        .selectors
        .iter()
        .map(|s| {
            resolve(
                state,
                s.pacticipant.as_deref().unwrap_or_default(),
                kind_of(s),
                true,
            )
        })
        .collect();
    let specified_names: BTreeSet<String> =
        selectors.iter().map(|s| s.pacticipant.clone()).collect();

    if let Some(target) = target_kind(q) {
        let mut integrated: Vec<String> = Vec::new();
        for s in selectors
            .iter()
            .filter(|s| s.exists() || matches!(s.kind, SelectorKind::Version(_)))
        {
            let providers = state
                .pacts
                .iter()
                .filter(|p| p.consumer == s.pacticipant && s.matches(&p.consumer_version));
            let consumers = state.pacts.iter().filter(|p| p.provider == s.pacticipant);
            for name in providers
                .map(|p| &p.provider)
                .chain(consumers.map(|p| &p.consumer))
            {
                if !specified_names.contains(name) && !integrated.contains(name) {
                    integrated.push(name.clone());
                }
            }
        }
        for name in integrated {
            selectors.push(resolve(state, &name, target.clone(), false));
        }
    }

    let mut rows = build_rows(state, &selectors);
    sort_newest_first(&mut rows);
    // As the broker's repository does: the row limit is part of the query, so it cuts the
    // newest rows before latestby, the success filter, the ignore split and the decision. A
    // failing row past the limit is not seen at all (issue 13).
    if let Some(limit) = q.limit {
        rows.truncate(usize::try_from(limit).unwrap_or(0));
    }
    collapse(&mut rows, q.latestby);
    sort_newest_first(&mut rows);
    if let Some(filter) = &q.success {
        rows.retain(|r| filter.contains(&r.verification.as_ref().map(|v| v.success)));
    }
    let ignore_hits = |p: &str, v: Option<&str>| {
        q.ignore.iter().any(|i| {
            i.pacticipant.as_deref() == Some(p)
                && (i.version.is_none() || i.version.as_deref() == v)
        })
    };
    for r in &mut rows {
        r.ignored = ignore_hits(&r.consumer, Some(&r.consumer_version))
            || ignore_hits(&r.provider, r.provider_version.as_deref());
    }
    let (considered, ignored): (Vec<Row>, Vec<Row>) = rows.into_iter().partition(|r| !r.ignored);

    // Required integrations: pacts of specified consumer versions with providers that have a selector.
    let mut missing: Vec<(String, String)> = Vec::new();
    for s in selectors.iter().filter(|s| s.specified) {
        for p in state
            .pacts
            .iter()
            .filter(|p| p.consumer == s.pacticipant && s.matches(&p.consumer_version))
        {
            let Some(ps) = selectors
                .iter()
                .find(|x| x.pacticipant == p.provider && x.pacticipant != s.pacticipant)
            else {
                continue;
            };
            let has_row = considered
                .iter()
                .any(|r| r.consumer == p.consumer && r.provider == p.provider);
            if has_row
                || ignore_hits(&p.consumer, Some(&p.consumer_version))
                || ignore_hits(&p.provider, None)
            {
                continue;
            }
            let pair = (s.describe(Some(&p.consumer_version)), ps.describe(None));
            if !missing.contains(&pair) {
                missing.push(pair);
            }
        }
    }

    let success = considered
        .iter()
        .filter(|r| r.verification.as_ref().is_some_and(|v| v.success))
        .count();
    let failed = considered
        .iter()
        .filter(|r| r.verification.as_ref().is_some_and(|v| !v.success))
        .count();
    let unverified = considered
        .iter()
        .filter(|r| r.verification.is_none())
        .count();
    let unknown = unverified + missing.len();
    let nonexistent: Vec<&Resolved> = selectors
        .iter()
        .filter(|s| s.specified && !s.exists())
        .collect();
    let deployable = if !nonexistent.is_empty() {
        Some(false)
    } else if unknown > 0 {
        None
    } else {
        Some(failed == 0)
    };

    let mut notices = warnings(state, q);
    let mut errors: Vec<String> = nonexistent
        .iter()
        .map(|s| s.does_not_exist_reason())
        .collect();
    if errors.is_empty() {
        for (c, p) in &missing {
            errors.push(format!("There is no verified pact between {c} and {p}"));
        }
        for r in considered
            .iter()
            .filter(|r| r.verification.as_ref().is_some_and(|v| !v.success))
        {
            errors.push(format!(
                "The verification for the pact between {} and {} failed",
                r.consumer_desc, r.provider_desc
            ));
        }
        for r in considered.iter().filter(|r| r.verification.is_none()) {
            errors.push(format!(
                "There is no verified pact between {} and {}",
                r.consumer_desc, r.provider_desc
            ));
        }
    }
    let mut seen = BTreeSet::new();
    errors.retain(|e| seen.insert(e.clone()));
    if errors.is_empty() {
        let text = if considered.is_empty() {
            "There are no missing dependencies"
        } else {
            "All required verification results are published and successful"
        };
        notices.push(Notice {
            kind: "success",
            text: text.to_string(),
        });
    } else {
        notices.extend(errors.into_iter().map(|text| Notice {
            kind: "error",
            text,
        }));
    }
    let reason = notices
        .iter()
        .map(|n| n.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let ignored_count = (!q.ignore.is_empty()).then_some(ignored.len());
    let summary = Summary {
        deployable,
        reason,
        success,
        failed,
        unknown,
        ignored: ignored_count,
    };
    let rows = considered.into_iter().chain(ignored).collect();
    Ok(MatrixResult {
        summary,
        notices,
        rows,
        selectors,
    })
}

fn warnings(state: &State, q: &MatrixQuery) -> Vec<Notice> {
    let mut out = Vec::new();
    for i in &q.ignore {
        let p = i.pacticipant.clone().unwrap_or_default();
        let text = match (&i.version, state.pacticipant(&p)) {
            (_, None) => Some(format!(
                "WARN: Cannot ignore any version of {p} (no such pacticipant exists)"
            )),
            (Some(v), Some(_)) if state.version(&p, v).is_none() => Some(format!(
                "WARN: Cannot ignore version {v} of {p} (no such version exists)"
            )),
            _ => None,
        };
        out.extend(text.map(|text| Notice {
            kind: "warning",
            text,
        }));
    }
    if q.selectors.len() == 1 && q.tag.is_none() && q.environment.is_none() && !q.main_branch {
        out.push(Notice {
            kind: "warning",
            text: "WARN: It is recommended to specify the environment into which you are deploying. Without the environment, this result will not be reliable.".to_string(),
        });
    }
    let without_number = q.selectors.iter().any(|s| {
        s.version.is_none()
            && (s.latest
                || s.tag.is_some()
                || s.branch.is_some()
                || s.environment.is_some()
                || s.main_branch)
    });
    if without_number {
        out.push(Notice {
            kind: "warning",
            text: "WARN: It is recommended to specify the version number (rather than the tag or branch) of the pacticipant you wish to deploy to avoid race conditions. Without a version number, this result will not be reliable.".to_string(),
        });
    }
    out
}

fn build_rows(state: &State, selectors: &[Resolved]) -> Vec<Row> {
    let single = selectors.len() == 1;
    let order_of = |p: &str, v: &str| state.version(p, v).map_or(0, |x| x.order);
    let mut rows = Vec::new();
    for pact in &state.pacts {
        let consumer_sel = selectors
            .iter()
            .find(|s| s.pacticipant == pact.consumer && s.matches(&pact.consumer_version));
        let provider_sels: Vec<&Resolved> = selectors
            .iter()
            .filter(|s| s.pacticipant == pact.provider)
            .collect();
        let (consumer_desc, any_provider, only_verified) =
            match (consumer_sel, provider_sels.is_empty()) {
                (Some(c), false) => (c.describe(Some(&pact.consumer_version)), false, false),
                (Some(c), true) if single => {
                    (c.describe(Some(&pact.consumer_version)), true, false)
                }
                (None, false) if single => (
                    format!("version {} of {}", pact.consumer_version, pact.consumer),
                    false,
                    true,
                ),
                _ => continue,
            };
        // Newest verification per provider version, for this content and provider.
        let mut best: Vec<&crate::model::Verification> = Vec::new();
        for v in state
            .verifications
            .iter()
            .filter(|v| v.sha == pact.sha && v.provider == pact.provider)
        {
            if !any_provider && !provider_sels.iter().any(|s| s.matches(&v.provider_version)) {
                continue;
            }
            match best
                .iter_mut()
                .find(|b| b.provider_version == v.provider_version)
            {
                Some(b) if b.order < v.order => *b = v,
                Some(_) => {}
                None => best.push(v),
            }
        }
        let provider_desc_for = |pv: Option<&str>| match provider_sels
            .iter()
            .find(|s| pv.is_none_or(|pv| s.matches(pv)))
        {
            Some(s) => s.describe(pv),
            None => pv.map_or_else(
                || format!("any version of {}", pact.provider),
                |pv| format!("version {pv} of {}", pact.provider),
            ),
        };
        let base = Row {
            consumer: pact.consumer.clone(),
            consumer_version: pact.consumer_version.clone(),
            provider: pact.provider.clone(),
            provider_version: None,
            sha: pact.sha.clone(),
            pact_created_at: pact.created_at.clone(),
            verification: None,
            ignored: false,
            consumer_order: order_of(&pact.consumer, &pact.consumer_version),
            provider_order: 0,
            consumer_desc,
            provider_desc: provider_desc_for(None),
        };
        if best.is_empty() {
            if !only_verified {
                rows.push(base);
            }
            continue;
        }
        for v in best {
            rows.push(Row {
                provider_version: Some(v.provider_version.clone()),
                verification: Some(RowVerification {
                    order: v.order,
                    success: v.success,
                    verified_at: v.verified_at.clone(),
                }),
                provider_order: order_of(&pact.provider, &v.provider_version),
                provider_desc: provider_desc_for(Some(&v.provider_version)),
                ..base.clone()
            });
        }
    }
    rows
}

/// Newest consumer version first (the broker orders by the last action date, the later of the
/// consumer and provider versions' creation; the emulator by consumer version, then provider).
fn sort_newest_first(rows: &mut [Row]) {
    rows.sort_by(|a, b| {
        b.consumer_order
            .cmp(&a.consumer_order)
            .then_with(|| a.provider.cmp(&b.provider))
            .then_with(|| a.verification.is_some().cmp(&b.verification.is_some()))
            .then_with(|| b.provider_order.cmp(&a.provider_order))
    });
}

fn collapse(rows: &mut Vec<Row>, latestby: Option<LatestBy>) {
    let key = |r: &Row| -> (String, String, String) {
        match latestby {
            Some(LatestBy::Cvp) => (
                r.consumer.clone(),
                r.consumer_version.clone(),
                r.provider.clone(),
            ),
            Some(LatestBy::Cp) => (r.consumer.clone(), String::new(), r.provider.clone()),
            _ => (String::new(), String::new(), String::new()),
        }
    };
    if !matches!(latestby, Some(LatestBy::Cvp) | Some(LatestBy::Cp)) {
        return;
    }
    let mut kept: Vec<Row> = Vec::new();
    for r in rows.drain(..) {
        match kept.iter_mut().find(|k| key(k) == key(&r)) {
            Some(k)
                if (r.consumer_order, r.provider_order) > (k.consumer_order, k.provider_order) =>
            {
                *k = r
            }
            Some(_) => {}
            None => kept.push(r),
        }
    }
    *rows = kept;
}
