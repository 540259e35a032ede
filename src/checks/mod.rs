//! Checks: one file per problem, each a pure function of the model that adds findings.
//! Codes are stable and never reused: regressions over archived bundles compare them.

use serde::Serialize;

use crate::model::Model;

/// The steps of the debugging flow a support engineer follows; every check belongs to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Is the bundle complete enough to answer the rest?
    Bundle,
    /// Is there a policy for the traffic?
    PoliciesPresent,
    /// Does the policy's selector match the pod?
    SelectorsMatch,
    /// Did Felix program the chains and jumps?
    ChainsProgrammed,
    /// Are the IP set members right?
    IpsetMembers,
    /// Where does the packet die (counters, conntrack, logs)?
    PacketPath,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::Bundle,
        Step::PoliciesPresent,
        Step::SelectorsMatch,
        Step::ChainsProgrammed,
        Step::IpsetMembers,
        Step::PacketPath,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Step::Bundle => "Bundle complete",
            Step::PoliciesPresent => "Policies present",
            Step::SelectorsMatch => "Selectors match",
            Step::ChainsProgrammed => "Chains programmed",
            Step::IpsetMembers => "IP set members right",
            Step::PacketPath => "Packet path",
        }
    }
}

/// A check: one problem, a stable code, and the doc that feeds docs/checks.md and the
/// report's "why" text. The doc has the sections What it finds / Why it matters / Example /
/// How to confirm by hand / What to do, as `## ` headings.
pub struct Check {
    pub code: &'static str,
    pub name: &'static str,
    pub severity: Severity,
    pub step: Step,
    pub doc: &'static str,
    pub run: fn(&Model, &mut Vec<Finding>),
}

/// Every check, in report order. Adding a check is one line here.
pub const CHECKS: &[&Check] = &[];

/// The check with this code.
pub fn by_code(code: &str) -> Option<&'static Check> {
    CHECKS.iter().copied().find(|c| c.code == code)
}

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
    /// The debugging-flow step this finding answers (an extension of the contract).
    pub step: Step,
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

/// Run every check over the model; findings come out in a fixed order (registry order, then
/// node, then subjects), whatever order the parsers finished in.
pub fn run_all(model: &Model) -> Vec<Finding> {
    let mut all = Vec::new();
    for check in CHECKS {
        let mut found = Vec::new();
        (check.run)(model, &mut found);
        found.sort_by(|a, b| {
            (&a.node, &a.subjects, &a.message).cmp(&(&b.node, &b.subjects, &b.message))
        });
        all.extend(found);
    }
    all
}

/// docs/checks.md, generated from the registry: one section per check with its doc.
pub fn render_docs() -> String {
    let mut s = String::from(
        "# Checks\n\nGenerated from the check registry (`src/checks/`) by `calisnap checks --markdown`; \
         a test fails when this file is stale. Codes are stable and never reused.\n\n\
         | code | name | severity | step |\n|---|---|---|---|\n",
    );
    for c in CHECKS {
        s.push_str(&format!(
            "| [{code}](#{anchor}) | {name} | {sev} | {step} |\n",
            code = c.code,
            anchor = c.code.to_lowercase(),
            name = c.name,
            sev = c.severity.as_str(),
            step = c.step.title()
        ));
    }
    for c in CHECKS {
        s.push_str(&format!(
            "\n## {}\n\n`{}` · {} · {}\n\n",
            c.code,
            c.name,
            c.severity.as_str(),
            c.step.title()
        ));
        s.push_str(&demote_headings(c.doc.trim()));
        s.push('\n');
    }
    s
}

/// A check's doc uses `## ` section headings; under the check's own `## ` they become `### `.
fn demote_headings(doc: &str) -> String {
    doc.lines()
        .map(|l| {
            if l.starts_with('#') {
                format!("#{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
