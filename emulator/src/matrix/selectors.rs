//! Selectors: how a `q[]` entry or an inferred target picks versions, how it
//! is resolved against the state, and the broker's description texts
//! (`resolved_selector.rb#description`) used in reasons.

use crate::model::State;
use crate::query::{MatrixQuery, Selector};

/// How a selector picks versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectorKind {
    /// An explicit version number.
    Version(String),
    /// The latest version.
    Latest,
    /// The latest version with a tag.
    LatestTag(String),
    /// Every version with a tag.
    Tag(String),
    /// The head of a branch.
    LatestBranch(String),
    /// Every version on a branch.
    Branch(String),
    /// Versions currently deployed or released in an environment.
    Environment(String),
    /// Versions on the pacticipant's main branch.
    MainBranch,
    /// Any version (only the pacticipant name was given).
    Any,
}

/// A selector resolved against the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Pacticipant name.
    pub pacticipant: String,
    /// How versions were picked.
    pub kind: SelectorKind,
    /// Matching version numbers; `None` = any version.
    pub versions: Option<Vec<String>>,
    /// Specified by the caller (true) or inferred from the target (false).
    pub specified: bool,
}

impl Resolved {
    /// Whether the selector found at least one version (or matches any).
    pub fn exists(&self) -> bool {
        self.versions.as_ref().is_none_or(|v| !v.is_empty())
    }

    pub(crate) fn matches(&self, version: &str) -> bool {
        self.versions
            .as_ref()
            .is_none_or(|vs| vs.iter().any(|v| v == version))
    }

    /// The broker's description of this selector (`resolved_selector.rb#description`),
    /// for the matched `version` when one is known.
    pub fn describe(&self, version: Option<&str>) -> String {
        let p = &self.pacticipant;
        let many = self.versions.as_ref().is_some_and(|v| v.len() > 1);
        let found = version
            .map(str::to_string)
            .or_else(|| self.versions.as_ref().and_then(|v| v.last().cloned()));
        let the = if many {
            "one of the versions"
        } else {
            "the version"
        };
        match (&self.kind, found) {
            (SelectorKind::Version(v), _) if !self.exists() => {
                format!("version {v} of {p} (no such version exists)")
            }
            (SelectorKind::Version(v), _) => format!("version {v} of {p}"),
            (SelectorKind::Latest, Some(n)) => format!("the latest version of {p} ({n})"),
            (SelectorKind::Latest, None) => {
                format!("the latest version of {p} (no such version exists)")
            }
            (SelectorKind::LatestTag(t), Some(n)) => {
                format!("the latest version of {p} with tag {t} ({n})")
            }
            (SelectorKind::LatestTag(t), None) => {
                format!("the latest version of {p} with tag {t} (no such version exists)")
            }
            (SelectorKind::Tag(t), Some(n)) => format!("a version of {p} with tag {t} ({n})"),
            (SelectorKind::Tag(t), None) => {
                format!("a version of {p} with tag {t} (no such version exists)")
            }
            (SelectorKind::LatestBranch(b), Some(n)) => {
                format!("the latest version of {p} from branch {b} ({n})")
            }
            (SelectorKind::LatestBranch(b), None) => {
                format!("the latest version of {p} from branch {b} (no such version exists)")
            }
            (SelectorKind::Branch(b), Some(n)) => format!("{the} of {p} from branch {b} ({n})"),
            (SelectorKind::Branch(b), None) => {
                format!("a version of {p} from branch {b} (no such version exists)")
            }
            (SelectorKind::Environment(e), Some(n)) => {
                format!("{the} of {p} currently in {e} ({n})")
            }
            (SelectorKind::Environment(e), None) => format!(
                "a version of {p} currently in {e} (no version is currently recorded as deployed/released in this environment)"
            ),
            (SelectorKind::MainBranch, Some(n)) => {
                format!("{the} of {p} from the main branch ({n})")
            }
            (SelectorKind::MainBranch, None) => format!(
                "any version of {p} from the main branch (no versions exist for this branch)"
            ),
            (SelectorKind::Any, _) => format!("any version of {p}"),
        }
    }

    /// The reason text when a specified selector found no version.
    pub fn does_not_exist_reason(&self) -> String {
        let p = &self.pacticipant;
        match &self.kind {
            SelectorKind::Tag(t) | SelectorKind::LatestTag(t) => {
                format!("No version with tag {t} exists for {p}")
            }
            SelectorKind::Branch(b) | SelectorKind::LatestBranch(b) => {
                format!("No version of {p} from branch {b} exists")
            }
            SelectorKind::MainBranch => format!("No version of {p} from the main branch exists"),
            SelectorKind::Environment(e) => {
                format!(
                    "No version of {p} is currently recorded as deployed or released in environment {e}"
                )
            }
            SelectorKind::Version(v) => {
                format!("No pacts or verifications have been published for version {v} of {p}")
            }
            SelectorKind::Latest | SelectorKind::Any => {
                format!("No pacts or verifications have been published for {p}")
            }
        }
    }
}

pub(crate) fn kind_of(s: &Selector) -> SelectorKind {
    match s {
        Selector {
            version: Some(v), ..
        } => SelectorKind::Version(v.clone()),
        Selector {
            latest: true,
            tag: Some(t),
            ..
        } => SelectorKind::LatestTag(t.clone()),
        Selector {
            latest: true,
            branch: Some(b),
            ..
        } => SelectorKind::LatestBranch(b.clone()),
        Selector { tag: Some(t), .. } => SelectorKind::Tag(t.clone()),
        Selector {
            branch: Some(b), ..
        } => SelectorKind::Branch(b.clone()),
        Selector {
            environment: Some(e),
            ..
        } => SelectorKind::Environment(e.clone()),
        Selector {
            main_branch: true, ..
        } => SelectorKind::MainBranch,
        Selector { latest: true, .. } => SelectorKind::Latest,
        _ => SelectorKind::Any,
    }
}

/// Resolves a selector kind for a pacticipant.
pub fn resolve(state: &State, pacticipant: &str, kind: SelectorKind, specified: bool) -> Resolved {
    let all = || state.versions_of(pacticipant);
    let numbers = |it: &mut dyn Iterator<Item = &crate::model::Version>| {
        it.map(|v| v.number.clone()).collect::<Vec<_>>()
    };
    let latest_of = |it: &mut dyn Iterator<Item = &crate::model::Version>| {
        it.max_by_key(|v| v.order)
            .map(|v| v.number.clone())
            .into_iter()
            .collect::<Vec<_>>()
    };
    let versions = match &kind {
        SelectorKind::Version(v) => Some(
            state
                .version(pacticipant, v)
                .map(|v| v.number.clone())
                .into_iter()
                .collect(),
        ),
        SelectorKind::Latest => Some(latest_of(&mut all())),
        SelectorKind::LatestTag(t) => Some(latest_of(&mut all().filter(|v| v.tags.contains(t)))),
        SelectorKind::Tag(t) => Some(numbers(&mut all().filter(|v| v.tags.contains(t)))),
        SelectorKind::LatestBranch(b) => {
            Some(latest_of(&mut all().filter(|v| v.branches.contains(b))))
        }
        SelectorKind::Branch(b) => Some(numbers(&mut all().filter(|v| v.branches.contains(b)))),
        SelectorKind::Environment(e) => Some(
            state
                .environment_named(e)
                .map(|env| state.versions_in_environment(pacticipant, &env.uuid))
                .unwrap_or_default(),
        ),
        SelectorKind::MainBranch => {
            let main = state
                .pacticipant(pacticipant)
                .and_then(|p| p.main_branch.clone());
            Some(numbers(&mut all().filter(|v| {
                main.as_ref().is_some_and(|m| v.branches.contains(m))
            })))
        }
        SelectorKind::Any => None,
    };
    Resolved {
        pacticipant: pacticipant.to_string(),
        kind,
        versions,
        specified,
    }
}

pub(crate) fn target_kind(q: &MatrixQuery) -> Option<SelectorKind> {
    if let Some(e) = &q.environment {
        Some(SelectorKind::Environment(e.clone()))
    } else if let Some(t) = &q.tag {
        Some(if q.latest {
            SelectorKind::LatestTag(t.clone())
        } else {
            SelectorKind::Tag(t.clone())
        })
    } else if q.main_branch {
        Some(SelectorKind::MainBranch)
    } else if q.latest {
        Some(SelectorKind::Latest)
    } else {
        None
    }
}
