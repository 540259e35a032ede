//! Checks: one file per problem, each a pure function of the model that adds findings.
//! Codes are stable and never reused: regressions over archived bundles compare them.

use serde::Serialize;

use crate::model::Model;

mod artifact_missing;
mod artifact_truncated;
mod command_failed;
mod conntrack_invalid;
mod conntrack_table_full;
mod conntrack_unreplied;
mod drops_counted;
mod endpoint_chain_missing;
mod endpoint_without_policy;
mod established_denied;
mod felix_dataplane_update_failed;
mod felix_log_errors;
mod felix_not_in_sync;
mod ipset_members;
mod namespace_labels_missing;
mod namespace_selector_matches_nothing;
mod nat_outgoing_missing;
mod no_cluster_resources;
mod nodeport_needs_prednat;
mod parse_errors;
mod policy_chains;
mod policy_jumps;
mod policy_never_hit;
mod policy_selects_nothing;
mod rule_selector_matches_nothing;
mod selector_invalid;
mod staged_policy_not_enforced;
mod top_dropping_rules;
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
    pub run: fn(&Model<'_>, &mut Vec<Finding>),
}

/// Near misses a selector finding names in its message (CAL011, CAL012); the first ones also
/// become subjects with evidence.
const NEAR_MISSES_SHOWN: usize = 3;

/// Where CAL011 and CAL012 look for near misses: every endpoint's name and labels, built when
/// a check first needs them.
struct NearMisses<'m, 'b> {
    m: &'m Model<'b>,
    flat: std::cell::OnceCell<Vec<(String, std::collections::BTreeMap<String, String>)>>,
}

impl<'m, 'b> NearMisses<'m, 'b> {
    fn new(m: &'m Model<'b>) -> Self {
        NearMisses {
            m,
            flat: std::cell::OnceCell::new(),
        }
    }

    /// The first near misses of a selector that matches nothing: of `written` (as the user
    /// wrote it) among the endpoints of `namespace` (all for a global policy), else of
    /// `unmatched` (as Felix builds it, known to match no endpoint) among all endpoints.
    fn find(
        &self,
        namespace: Option<&str>,
        written: Option<&crate::calico::selector::Selector>,
        unmatched: &crate::calico::selector::Selector,
    ) -> Vec<crate::calico::lint::NearMiss> {
        use crate::calico::lint;
        let flat = self.flat.get_or_init(|| {
            self.m
                .endpoints
                .iter()
                .map(|e| (e.key.clone(), e.labels.flatten()))
                .collect()
        });
        let among = |keep: &dyn Fn(&str) -> bool| -> Vec<_> {
            flat.iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, l)| (k.as_str(), l))
                .collect()
        };
        if let Some(w) = written {
            let in_namespace = |k: &str| {
                namespace.is_none_or(|ns| k.strip_prefix(ns).is_some_and(|r| r.starts_with('/')))
            };
            let misses = lint::near_misses(w, &among(&in_namespace), NEAR_MISSES_SHOWN);
            if !misses.is_empty() {
                return misses;
            }
        }
        lint::near_misses_of_unmatched(unmatched, &among(&|_| true), NEAR_MISSES_SHOWN)
    }
}

/// Every check, in report order. Adding a check is one line here.
pub const CHECKS: &[&Check] = &[
    &artifact_missing::CHECK,
    &command_failed::CHECK,
    &artifact_truncated::CHECK,
    &no_cluster_resources::CHECK,
    &parse_errors::CHECK,
    &selector_invalid::CHECK,
    &policy_selects_nothing::CHECK,
    &rule_selector_matches_nothing::CHECK,
    &namespace_selector_matches_nothing::CHECK,
    &endpoint_without_policy::CHECK,
    &staged_policy_not_enforced::CHECK,
    &endpoint_chain_missing::CHECK,
    &policy_jumps::MISSING,
    &policy_jumps::UNEXPECTED,
    &policy_jumps::ORDER,
    &policy_chains::MISSING,
    &policy_chains::ORPHAN,
    &policy_chains::UNKNOWN_COMMENT,
    &ipset_members::MISSING_MEMBER,
    &ipset_members::STALE_MEMBER,
    &ipset_members::SET_MISSING,
    &ipset_members::NEAR_MAXELEM,
    &drops_counted::CHECK,
    &policy_never_hit::CHECK,
    &top_dropping_rules::CHECK,
    &conntrack_table_full::CHECK,
    &conntrack_unreplied::CHECK,
    &conntrack_invalid::CHECK,
    &established_denied::CHECK,
    &felix_log_errors::CHECK,
    &felix_dataplane_update_failed::CHECK,
    &felix_not_in_sync::CHECK,
    &nat_outgoing_missing::CHECK,
    &namespace_labels_missing::CHECK,
    &nodeport_needs_prednat::CHECK,
];

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

impl Finding {
    /// Drop the spare capacity of every text and list.
    fn shrink_to_fit(&mut self) {
        for s in [&mut self.title, &mut self.message] {
            s.shrink_to_fit();
        }
        for s in [&mut self.node, &mut self.confirm, &mut self.fix]
            .into_iter()
            .flatten()
        {
            s.shrink_to_fit();
        }
        for sub in &mut self.subjects {
            sub.name.shrink_to_fit();
        }
        self.subjects.shrink_to_fit();
        for e in &mut self.evidence {
            e.path.shrink_to_fit();
            e.excerpt.shrink_to_fit();
        }
        self.evidence.shrink_to_fit();
    }
}

/// Run every check over the model; findings come out in a fixed order (registry order, then
/// node, then subjects), whatever order the parsers finished in.
pub fn run_all(model: &Model<'_>) -> Vec<Finding> {
    use rayon::prelude::*;
    // Checks are independent readers of the model: run them on the pool, keep registry order.
    CHECKS
        .par_iter()
        .map(|check| {
            let mut found = Vec::new();
            crate::timing::phase(check.code, || (check.run)(model, &mut found));
            found.sort_by(|a, b| {
                (&a.node, &a.subjects, &a.message).cmp(&(&b.node, &b.subjects, &b.message))
            });
            // Findings live until the report is written: give back the room their texts were
            // built with (tens of MiB over thousands of findings).
            found.iter_mut().for_each(Finding::shrink_to_fit);
            found.shrink_to_fit();
            found
        })
        .collect::<Vec<_>>()
        .into_iter()
        .flatten()
        .collect()
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

impl Finding {
    /// A finding of `check` with its code, name, severity and step filled in.
    pub fn of(check: &Check, title: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding {
            code: check.code.to_string(),
            check: check.name.to_string(),
            severity: check.severity,
            step: check.step,
            title: title.into(),
            message: message.into(),
            node: None,
            subjects: Vec::new(),
            evidence: Vec::new(),
            confirm: None,
            fix: None,
        }
    }

    pub fn severity(mut self, s: Severity) -> Finding {
        self.severity = s;
        self
    }

    pub fn on_node(mut self, node: &str) -> Finding {
        self.node = Some(node.to_string());
        self
    }

    pub fn subject(mut self, kind: &str, name: impl Into<String>) -> Finding {
        self.subjects.push(Subject::new(kind, name));
        self
    }

    pub fn evidence(mut self, e: Evidence) -> Finding {
        self.evidence.push(e);
        self
    }

    pub fn confirm(mut self, cmd: impl Into<String>) -> Finding {
        self.confirm = Some(cmd.into());
        self
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }
}

/// Quote a value for a POSIX shell command line shown to the user.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The text of line `line` of an artifact, when its text was kept.
pub fn line_text(m: &crate::model::Model<'_>, path: &str, line: usize) -> Option<String> {
    m.bundle.line(path, line).map(str::to_string)
}

/// The first line at or after `from` containing `needle`, with its text.
pub fn find_line(
    m: &crate::model::Model<'_>,
    path: &str,
    from: usize,
    needle: &str,
) -> Option<(usize, String)> {
    m.bundle
        .artifact(path)?
        .lines(from.max(1), usize::MAX)
        .find(|(_, l)| l.contains(needle))
        .map(|(n, l)| (n, l.to_string()))
}

/// How the user re-applies a policy: calicoctl for Calico kinds, kubectl for Kubernetes ones.
pub fn apply_hint(p: &crate::model::Policy) -> String {
    if p.from_k8s {
        format!(
            "kubectl edit networkpolicy {} -n {}",
            shell_quote(&p.policy_ref.name),
            shell_quote(p.namespace().unwrap_or("default"))
        )
    } else {
        let kind = if p.policy_ref.kind.is_namespaced() {
            "networkpolicy"
        } else {
            "globalnetworkpolicy"
        };
        let ns = p
            .namespace()
            .map(|n| format!(" -n {}", shell_quote(n)))
            .unwrap_or_default();
        format!("calicoctl apply -f <fixed {kind}.yaml>{ns}")
    }
}

/// The command that sets a policy's selector to `corrected`.
pub fn selector_patch(p: &crate::model::Policy, corrected: &str) -> String {
    if p.from_k8s {
        return format!(
            "The policy is a Kubernetes NetworkPolicy: change spec.podSelector to match `{corrected}` ({}).",
            apply_hint(p)
        );
    }
    let kind = if p.policy_ref.kind.is_namespaced() {
        "networkpolicy"
    } else {
        "globalnetworkpolicy"
    };
    let ns = p
        .namespace()
        .map(|n| format!(" -n {}", shell_quote(n)))
        .unwrap_or_default();
    let patch = serde_json::json!({"spec": {"selector": corrected}}).to_string();
    format!(
        "calicoctl patch {kind} {}{ns} --patch {}",
        shell_quote(&p.policy_ref.name),
        shell_quote(&patch)
    )
}

/// The line of a YAML field `key: value` at or after `from` (within 400 lines), allowing for
/// quoting of the value and a leading `- `.
pub fn find_field_line(
    m: &crate::model::Model<'_>,
    path: &str,
    from: usize,
    key: &str,
    value: &str,
) -> Option<(usize, String)> {
    let value = value.trim();
    let from = from.max(1);
    m.bundle
        .artifact(path)?
        .lines(from, from + 399)
        .find(|(_, l)| {
            let t = l.trim_start().trim_start_matches("- ");
            t.strip_prefix(key)
                .and_then(|r| r.strip_prefix(':'))
                .is_some_and(|r| {
                    let v = r.trim().trim_matches(|c| c == '"' || c == '\'');
                    v == value || (!value.is_empty() && r.contains(value))
                })
        })
        .map(|(n, l)| (n, l.to_string()))
}

/// Helpers for the checks' own tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::Finding;

    /// The findings of one check on a fixture bundle (path relative to the crate root).
    pub fn findings(dir: &str, code: &str) -> Vec<Finding> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        crate::analyze(&path)
            .expect("fixture opens")
            .findings
            .into_iter()
            .filter(|f| f.code == code)
            .collect()
    }

    /// Whether a finding names this subject.
    pub fn has(f: &Finding, kind: &str, name: &str) -> bool {
        f.subjects.iter().any(|s| s.kind == kind && s.name == name)
    }
}
