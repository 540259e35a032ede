//! Checks: one file per problem, each a pure function of the model that adds findings.
//! Codes are stable and never reused: regressions over archived bundles compare them.

use serde::Serialize;

/// How bad a finding is. Ordered: `Info < Warning < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// What a finding is about, e.g. `{"kind": "policy", "name": "prod/allow-web"}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Subject {
    pub kind: String,
    pub name: String,
}

impl Subject {
    pub fn new(kind: &str, name: impl Into<String>) -> Self {
        Subject {
            kind: kind.to_string(),
            name: name.into(),
        }
    }
}

/// One line of a dump that shows the problem.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Evidence {
    /// Artifact path inside the bundle.
    pub path: String,
    /// 1-based line number (0 when the evidence is the artifact as a whole).
    pub line: usize,
    pub excerpt: String,
}

/// A finding as the JSON report carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: String,
    pub check: String,
    pub severity: Severity,
    pub title: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub subjects: Vec<Subject>,
    pub evidence: Vec<Evidence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}
