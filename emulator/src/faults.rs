//! Fault injection and the request log, for tests and demos.
//!
//! A [`FaultSpec`] makes the next `count` requests (optionally only those whose
//! path contains a substring) answer 503, hang, drop the connection or return
//! malformed JSON. The [`RequestRecord`] log captures what clients sent
//! (never the credentials themselves, only whether and which scheme).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultKind {
    /// Answer `503 Service Unavailable`.
    Unavailable,
    /// Sleep for the given time (past the client's timeout), then answer normally.
    Hang {
        /// How long to sleep, in milliseconds.
        millis: u64,
    },
    /// Close the connection without writing a response.
    Drop,
    /// Answer 200 with a truncated, unparsable JSON body.
    MalformedJson,
}

impl FaultKind {
    /// A short label for logs.
    pub fn label(&self) -> &'static str {
        match self {
            FaultKind::Unavailable => "unavailable",
            FaultKind::Hang { .. } => "hang",
            FaultKind::Drop => "drop",
            FaultKind::MalformedJson => "malformed_json",
        }
    }

    /// The hang duration, if this is a hang.
    pub fn hang(&self) -> Option<Duration> {
        match self {
            FaultKind::Hang { millis } => Some(Duration::from_millis(*millis)),
            _ => None,
        }
    }
}

/// "The next `count` requests [whose path contains `path_contains`] get `kind`."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultSpec {
    /// The fault.
    pub kind: FaultKind,
    /// How many matching requests it applies to.
    #[serde(default = "one")]
    pub count: u32,
    /// Only requests whose path (after any prefix) contains this substring.
    #[serde(default)]
    pub path_contains: Option<String>,
}

fn one() -> u32 {
    1
}

impl FaultSpec {
    /// A fault for the next `count` requests.
    pub fn new(kind: FaultKind, count: u32) -> Self {
        Self {
            kind,
            count,
            path_contains: None,
        }
    }

    /// Restricts the fault to paths containing `s`.
    pub fn on_path(mut self, s: impl Into<String>) -> Self {
        self.path_contains = Some(s.into());
        self
    }
}

/// Pending faults, consumed in insertion order.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    pending: Vec<FaultSpec>,
}

impl Faults {
    /// Queues a fault.
    pub fn push(&mut self, spec: FaultSpec) {
        if spec.count > 0 {
            self.pending.push(spec);
        }
    }

    /// Removes all pending faults.
    pub fn clear(&mut self) {
        self.pending.clear();
    }

    /// Pending faults.
    pub fn pending(&self) -> &[FaultSpec] {
        &self.pending
    }

    /// Takes one fault for a request to `path`, if any applies.
    pub fn take(&mut self, path: &str) -> Option<FaultKind> {
        let idx = self
            .pending
            .iter()
            .position(|f| f.path_contains.as_deref().is_none_or(|s| path.contains(s)))?;
        let spec = &mut self.pending[idx];
        let kind = spec.kind;
        spec.count -= 1;
        if spec.count == 0 {
            self.pending.remove(idx);
        }
        Some(kind)
    }
}

/// One logged request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// 1-based sequence number.
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Path as sent (percent-encoding kept, prefix included).
    pub path: String,
    /// Raw query string as sent, if any.
    pub query: Option<String>,
    /// Selected headers: accept, content-type, user-agent (lower-case names).
    pub headers: BTreeMap<String, String>,
    /// Whether an `Authorization` header was present.
    pub authorization: bool,
    /// Its scheme (`Basic`, `Bearer`), never the credential.
    pub auth_scheme: Option<String>,
    /// Request body (lossy UTF-8).
    pub body: String,
    /// Response status; `None` when the connection was dropped (or is still hanging).
    pub status: Option<u16>,
    /// Injected fault label, if one applied.
    pub fault: Option<String>,
}

impl RequestRecord {
    /// `path?query`, as a client would have written it.
    pub fn target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_consumed_in_order_and_by_path() {
        let mut f = Faults::default();
        f.push(FaultSpec::new(FaultKind::Unavailable, 2).on_path("/matrix"));
        f.push(FaultSpec::new(FaultKind::Drop, 1));
        assert_eq!(f.take("/environments"), Some(FaultKind::Drop));
        assert_eq!(f.take("/environments"), None);
        assert_eq!(f.take("/matrix"), Some(FaultKind::Unavailable));
        assert_eq!(f.take("/matrix"), Some(FaultKind::Unavailable));
        assert_eq!(f.take("/matrix"), None);
        let parsed: FaultSpec =
            serde_json::from_str(r#"{"kind":{"hang":{"millis":50}},"count":3}"#).expect("parses");
        assert_eq!(parsed.kind.hang(), Some(Duration::from_millis(50)));
        let parsed: FaultSpec =
            serde_json::from_str(r#"{"kind":"unavailable","pathContains":"/x"}"#).expect("parses");
        assert_eq!(
            (parsed.count, parsed.path_contains.as_deref()),
            (1, Some("/x"))
        );
    }
}
