//! The view model the HTML, Markdown and terminal renderings share: the findings arranged
//! along the debugging flow, a verdict per step, counts, stable anchors, and the check's
//! "why" text from the registry. Built once from a [`Report`]; holds no rendering details
//! (no markup, no escaping).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{BundleInfo, ContextLine, NodeDetail, Report, Tool};
use crate::checks::{Finding, Severity, Step, Subject};

/// The answer to one debugging-flow step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Ok,
    NotChecked,
    Warning,
    Error,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::NotChecked => "not-checked",
            Verdict::Warning => "warning",
            Verdict::Error => "error",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::NotChecked => "Not checked",
            Verdict::Warning => "Warning",
            Verdict::Error => "Error",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportView {
    pub tool: Tool,
    pub bundle: BundleInfo,
    /// The last path component of the bundle source, for titles.
    pub bundle_name: String,
    pub counts: Counts,
    pub steps: Vec<StepView>,
    /// Every node named by the bundle, a finding or a node table, sorted.
    pub nodes: Vec<String>,
    pub nodes_detail: Vec<NodeDetail>,
    pub artifacts: Vec<ArtifactView>,
    /// Traced flows and kernel-traced packets, as text blocks.
    pub traces: Vec<TraceView>,
    pub kernel_traces: Vec<TraceView>,
}

/// One traced flow (or kernel-traced packet) for the templates.
#[derive(Debug, Clone, Serialize)]
pub struct TraceView {
    pub title: String,
    /// `allow`, `deny`, `unknown` (dataplane), or the kernel trace's outcome.
    pub verdict: String,
    pub intent: Option<String>,
    pub agree: Option<bool>,
    pub explanation: Option<String>,
    pub findings: Vec<String>,
    pub text: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
    pub findings: usize,
    pub artifacts: usize,
    pub parse_errors: usize,
    pub artifacts_with_errors: usize,
    pub steps_not_checked: usize,
}

impl Counts {
    pub fn of(report: &Report) -> Counts {
        let count = |s: Severity| report.findings.iter().filter(|f| f.severity == s).count();
        Counts {
            errors: count(Severity::Error),
            warnings: count(Severity::Warning),
            infos: count(Severity::Info),
            findings: report.findings.len(),
            artifacts: report.artifacts.len(),
            parse_errors: report.artifacts.iter().map(|a| a.errors.len()).sum(),
            artifacts_with_errors: report
                .artifacts
                .iter()
                .filter(|a| !a.errors.is_empty())
                .count(),
            steps_not_checked: report.steps_not_checked.len(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    pub step: Step,
    /// 1-based position in the flow.
    pub number: usize,
    /// `step` as text (`policies-present`), for anchors and CSS classes.
    pub key: &'static str,
    pub title: &'static str,
    pub question: &'static str,
    pub verdict: Verdict,
    pub verdict_label: &'static str,
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
    /// "1 error, 2 warnings, 1 info", or "none".
    pub counts_text: String,
    pub not_checked: Vec<NotCheckedView>,
    /// Not checked on some nodes only (every entry names a node).
    pub partly_checked: bool,
    /// Errors first, then warnings, then infos; the report's order within a severity.
    pub findings: Vec<FindingView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotCheckedView {
    pub node: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FindingView {
    /// Stable HTML anchor: `CODE-<8 hex of a hash of code, node and subjects>`, with `-2`,
    /// `-3` … for findings that would otherwise share one.
    pub anchor: String,
    pub code: String,
    pub check: String,
    pub severity: Severity,
    pub step: Step,
    pub title: String,
    pub message: String,
    pub node: Option<String>,
    pub subjects: Vec<Subject>,
    pub evidence: Vec<EvidenceView>,
    pub confirm: Option<String>,
    pub fix: Option<String>,
    /// The "Why it matters" section of the check's doc, when the check is registered.
    pub why: Option<String>,
    /// The check's whole doc.
    pub doc: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvidenceView {
    pub path: String,
    pub line: usize,
    /// `path:line`, or `path` when the evidence is the artifact as a whole.
    pub location: String,
    pub excerpt: String,
    /// Lines around the evidence line (including it); empty when the report has none.
    pub context: Vec<ContextLine>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArtifactView {
    pub path: String,
    pub kind: String,
    pub node: Option<String>,
    pub records: usize,
    pub bytes: u64,
    pub errors: Vec<crate::parse::ParseError>,
    /// How many parse errors the artifact has in all (`errors` may be cut short).
    pub errors_total: usize,
    pub errors_omitted: usize,
}

/// Parse errors listed per artifact in the HTML report; the JSON report has all of them.
pub const PARSE_ERRORS_SHOWN: usize = 100;

impl ReportView {
    pub fn build(report: &Report) -> Self {
        let anchors = anchors(&report.findings);
        let context: HashMap<(&str, usize), &[ContextLine]> = report
            .evidence_context
            .iter()
            .map(|c| ((c.path.as_str(), c.line), c.context.as_slice()))
            .collect();

        let mut by_step: BTreeMap<Step, Vec<FindingView>> = BTreeMap::new();
        for (finding, anchor) in report.findings.iter().zip(&anchors) {
            by_step
                .entry(finding.step)
                .or_default()
                .push(finding_view(finding, anchor, &context));
        }

        // Counts and verdicts as the JSON report gives them (one Step::ALL order for both).
        let counts = step_counts(report);
        let steps = Step::ALL
            .iter()
            .enumerate()
            .map(|(i, &step)| {
                let mut findings = by_step.remove(&step).unwrap_or_default();
                // Stable: the report's order is kept within one severity.
                findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
                let not_checked: Vec<NotCheckedView> = report
                    .steps_not_checked
                    .iter()
                    .filter(|n| n.step == step)
                    .map(|n| NotCheckedView {
                        node: n.node.clone(),
                        reason: n.reason.clone(),
                    })
                    .collect();
                let StepCounts {
                    errors,
                    warnings,
                    infos,
                    verdict,
                    ..
                } = counts[i];
                let partly_checked =
                    !not_checked.is_empty() && not_checked.iter().all(|n| n.node.is_some());
                StepView {
                    step,
                    number: i + 1,
                    key: step_key(step),
                    title: step.title(),
                    question: step_question(step),
                    verdict,
                    verdict_label: verdict.label(),
                    errors,
                    warnings,
                    infos,
                    counts_text: counts_text(errors, warnings, infos),
                    not_checked,
                    partly_checked,
                    findings,
                }
            })
            .collect();

        let mut nodes: BTreeSet<String> = report.bundle.nodes.iter().cloned().collect();
        nodes.extend(report.findings.iter().filter_map(|f| f.node.clone()));
        nodes.extend(report.nodes_detail.iter().map(|n| n.node.clone()));
        nodes.extend(report.artifacts.iter().filter_map(|a| a.node.clone()));

        let artifacts: Vec<ArtifactView> = report
            .artifacts
            .iter()
            .map(|a| ArtifactView {
                path: a.path.clone(),
                kind: a.kind.clone(),
                node: a.node.clone(),
                records: a.records,
                bytes: a.bytes,
                errors: a.errors.iter().take(PARSE_ERRORS_SHOWN).cloned().collect(),
                errors_total: a.errors.len(),
                errors_omitted: a.errors.len().saturating_sub(PARSE_ERRORS_SHOWN),
            })
            .collect();

        let counts = Counts::of(report);

        ReportView {
            tool: report.tool.clone(),
            bundle: report.bundle.clone(),
            bundle_name: bundle_name(&report.bundle.source),
            counts,
            steps,
            nodes: nodes.into_iter().collect(),
            nodes_detail: report.nodes_detail.clone(),
            traces: report
                .traces
                .iter()
                .map(|t| TraceView {
                    title: format!(
                        "{} → {}{} ({})",
                        t.flow.src,
                        t.flow.dst,
                        t.flow.dport.map(|p| format!(":{p}")).unwrap_or_default(),
                        t.flow.protocol
                    ),
                    verdict: t.verdict.to_string(),
                    intent: Some(t.intent.verdict.to_string()),
                    agree: Some(t.agree),
                    explanation: t.explanation.clone(),
                    findings: t.findings.clone(),
                    text: crate::trace::render_text(t),
                })
                .collect(),
            kernel_traces: report
                .kernel_traces
                .iter()
                .map(|k| TraceView {
                    title: format!(
                        "{}{}",
                        k.packet,
                        k.node
                            .as_ref()
                            .map(|n| format!(" on {n}"))
                            .unwrap_or_default()
                    ),
                    verdict: k.outcome.clone().unwrap_or_default(),
                    intent: None,
                    agree: None,
                    explanation: None,
                    findings: Vec::new(),
                    text: crate::trace::kernel::render_text(k),
                })
                .collect(),
            artifacts,
        }
    }
}

/// Worst severity of the step's findings; a step with no error or warning that could not be
/// checked (everywhere, or on some node) is "not checked" rather than "ok", because nothing
/// proves it fine.
fn verdict(errors: usize, warnings: usize, not_checked: bool) -> Verdict {
    if errors > 0 {
        Verdict::Error
    } else if warnings > 0 {
        Verdict::Warning
    } else if not_checked {
        Verdict::NotChecked
    } else {
        Verdict::Ok
    }
}

fn counts_text(errors: usize, warnings: usize, infos: usize) -> String {
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    let mut parts = Vec::new();
    if errors > 0 {
        parts.push(plural(errors, "error"));
    }
    if warnings > 0 {
        parts.push(plural(warnings, "warning"));
    }
    if infos > 0 {
        parts.push(format!("{infos} info"));
    }
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    }
}

pub fn step_key(step: Step) -> &'static str {
    match step {
        Step::Bundle => "bundle",
        Step::PoliciesPresent => "policies-present",
        Step::SelectorsMatch => "selectors-match",
        Step::ChainsProgrammed => "chains-programmed",
        Step::IpsetMembers => "ipset-members",
        Step::PacketPath => "packet-path",
    }
}

/// The question the engineer asks at that step.
pub fn step_question(step: Step) -> &'static str {
    match step {
        Step::Bundle => "Is the bundle complete enough to answer the rest?",
        Step::PoliciesPresent => "Is there a policy for the traffic?",
        Step::SelectorsMatch => "Does the policy's selector match the pod?",
        Step::ChainsProgrammed => "Did Felix program the chains and jumps?",
        Step::IpsetMembers => "Are the IP set members right?",
        Step::PacketPath => "Where does the packet die (counters, conntrack, logs)?",
    }
}

fn finding_view(
    f: &Finding,
    anchor: &str,
    context: &HashMap<(&str, usize), &[ContextLine]>,
) -> FindingView {
    let check = crate::checks::by_code(&f.code);
    FindingView {
        anchor: anchor.to_string(),
        code: f.code.clone(),
        check: f.check.clone(),
        severity: f.severity,
        step: f.step,
        title: f.title.clone(),
        message: f.message.clone(),
        node: f.node.clone(),
        subjects: f.subjects.clone(),
        evidence: f
            .evidence
            .iter()
            .map(|e| EvidenceView {
                path: e.path.clone(),
                line: e.line,
                location: if e.line > 0 {
                    format!("{}:{}", e.path, e.line)
                } else {
                    e.path.clone()
                },
                excerpt: e.excerpt.clone(),
                context: context
                    .get(&(e.path.as_str(), e.line))
                    .map(|c| c.to_vec())
                    .unwrap_or_default(),
            })
            .collect(),
        confirm: f.confirm.clone(),
        fix: f.fix.clone(),
        why: check.and_then(|c| doc_section(c.doc, "Why it matters")),
        doc: check.map(|c| c.doc.trim().to_string()),
    }
}

/// The body of the `## <heading>` section of a check doc.
pub fn doc_section(doc: &str, heading: &str) -> Option<String> {
    let mut lines = doc.lines();
    lines.find(|l| {
        l.trim()
            .strip_prefix("## ")
            .is_some_and(|h| h.trim().eq_ignore_ascii_case(heading))
    })?;
    let body: Vec<&str> = lines.take_while(|l| !l.trim().starts_with("## ")).collect();
    let body = body.join("\n").trim().to_string();
    (!body.is_empty()).then_some(body)
}

/// Anchors that survive re-running the analysis on the same bundle: they hash what the
/// finding is about (code, node, subjects), not where the evidence happens to sit.
/// Each step's finding counts and verdict, without building the views of the findings: the
/// one count the JSON report, the HTML view and the terminal summary all show.
pub(crate) fn step_counts(report: &Report) -> Vec<StepCounts> {
    Step::ALL
        .iter()
        .map(|&step| {
            let count = |s: Severity| {
                report
                    .findings
                    .iter()
                    .filter(|f| f.step == step && f.severity == s)
                    .count()
            };
            let (errors, warnings, infos) = (
                count(Severity::Error),
                count(Severity::Warning),
                count(Severity::Info),
            );
            let not_checked = report.steps_not_checked.iter().any(|n| n.step == step);
            StepCounts {
                step,
                verdict: verdict(errors, warnings, not_checked),
                errors,
                warnings,
                infos,
            }
        })
        .collect()
}

/// One step's counts and verdict ([`step_counts`]).
pub(crate) struct StepCounts {
    pub step: Step,
    pub verdict: Verdict,
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
}

/// The anchor of every finding (`CAL021-1a2b3c4d`, a `-2` suffix on repeats), in report order.
pub fn anchors(findings: &[Finding]) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    findings
        .iter()
        .map(|f| {
            let mut h = Sha256::new();
            h.update(f.code.as_bytes());
            h.update([0]);
            h.update(f.node.as_deref().unwrap_or("").as_bytes());
            for s in &f.subjects {
                h.update([0]);
                h.update(s.kind.as_bytes());
                h.update([1]);
                h.update(s.name.as_bytes());
            }
            let digest = h.finalize();
            let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
            let base = format!("{}-{hex}", anchor_safe(&f.code));
            let n = seen.entry(base.clone()).or_insert(0);
            *n += 1;
            if *n == 1 { base } else { format!("{base}-{n}") }
        })
        .collect()
}

/// Codes are ours, but an anchor must stay a bare token in `id="…"` and URLs whatever a
/// finding carries.
fn anchor_safe(code: &str) -> String {
    let s: String = code
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "finding".into() } else { s }
}

fn bundle_name(source: &str) -> String {
    let trimmed = source.trim_end_matches(['/', '\\']);
    let name = trimmed.rsplit(['/', '\\']).next().unwrap_or(trimmed);
    if name.is_empty() {
        source.to_string()
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{StepNotChecked, example::sample_report};

    #[test]
    fn step_verdict_is_the_worst_severity_of_its_findings() {
        let view = ReportView::build(&sample_report());
        let v: Vec<(Step, Verdict)> = view.steps.iter().map(|s| (s.step, s.verdict)).collect();
        assert_eq!(
            v,
            vec![
                (Step::Bundle, Verdict::Warning),
                (Step::PoliciesPresent, Verdict::Error),
                (Step::SelectorsMatch, Verdict::Warning),
                (Step::ChainsProgrammed, Verdict::Error),
                (Step::IpsetMembers, Verdict::Error),
                (Step::PacketPath, Verdict::NotChecked),
            ]
        );
    }

    #[test]
    fn a_step_with_only_info_findings_is_ok() {
        let mut report = sample_report();
        report.findings.retain(|f| f.severity == Severity::Info);
        report.steps_not_checked.clear();
        let view = ReportView::build(&report);
        assert!(view.steps.iter().all(|s| s.verdict == Verdict::Ok));
        assert!(view.steps.iter().any(|s| s.infos > 0));
    }

    #[test]
    fn errors_outrank_not_checked_on_some_node() {
        let mut report = sample_report();
        report.steps_not_checked.push(StepNotChecked {
            step: Step::IpsetMembers,
            node: Some("node-b".into()),
            reason: "no ipset-save".into(),
        });
        let view = ReportView::build(&report);
        let step = &view.steps[4];
        assert_eq!(step.step, Step::IpsetMembers);
        assert_eq!(step.verdict, Verdict::Error);
        assert_eq!(step.not_checked.len(), 1);
        assert!(step.partly_checked);
        assert_eq!(step.counts_text, "1 error, 1 warning");
    }

    #[test]
    fn findings_are_grouped_under_their_step_errors_first() {
        let report = sample_report();
        let view = ReportView::build(&report);
        let total: usize = view.steps.iter().map(|s| s.findings.len()).sum();
        assert_eq!(total, report.findings.len());
        for s in &view.steps {
            assert!(s.findings.iter().all(|f| f.step == s.step));
            assert!(
                s.findings
                    .windows(2)
                    .all(|w| w[0].severity >= w[1].severity)
            );
        }
    }

    #[test]
    fn anchors_are_stable_unique_and_url_safe() {
        let report = sample_report();
        let a = anchors(&report.findings).join(",");
        let b = anchors(&sample_report().findings).join(",");
        assert_eq!(a, b);
        let list: Vec<&str> = a.split(',').collect();
        let set: BTreeSet<&str> = list.iter().copied().collect();
        assert_eq!(set.len(), list.len());
        for (anchor, f) in list.iter().zip(&report.findings) {
            assert!(anchor.starts_with(&format!("{}-", f.code)));
            assert!(
                anchor
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            );
        }
    }

    #[test]
    fn findings_about_the_same_subjects_get_numbered_anchors() {
        let mut report = sample_report();
        let first = report.findings[0].clone();
        report.findings.push(first);
        let anchors = anchors(&report.findings);
        assert_eq!(anchors.last(), Some(&format!("{}-2", anchors[0])));
    }

    #[test]
    fn hostile_codes_become_harmless_anchor_text() {
        assert_eq!(anchor_safe("CAL0\"><x"), "CAL0___x");
        assert_eq!(anchor_safe(""), "finding");
    }

    #[test]
    fn doc_sections_are_found_by_heading() {
        let doc = "## What it finds\nA.\n\n## Why it matters\nBecause\nreasons.\n## What to do\nX";
        assert_eq!(
            doc_section(doc, "why it matters").as_deref(),
            Some("Because\nreasons.")
        );
        assert_eq!(doc_section(doc, "Example"), None);
    }

    #[test]
    fn unregistered_codes_have_no_why_text() {
        let mut report = sample_report();
        for f in &mut report.findings {
            f.code = "CAL999".to_string();
        }
        let view = ReportView::build(&report);
        let f = &view.steps[1].findings[0];
        assert!(crate::checks::by_code(&f.code).is_none());
        assert_eq!(f.why, None);
    }

    #[test]
    fn registered_codes_carry_their_why_text() {
        let view = ReportView::build(&sample_report());
        let f = view
            .steps
            .iter()
            .flat_map(|s| s.findings.iter())
            .find(|f| f.code == "CAL040")
            .expect("sample has a CAL040");
        assert!(f.why.as_deref().is_some_and(|w| !w.is_empty()));
    }

    #[test]
    fn evidence_gets_the_context_the_report_carries() {
        let view = ReportView::build(&sample_report());
        let with_context = view
            .steps
            .iter()
            .flat_map(|s| &s.findings)
            .flat_map(|f| &f.evidence)
            .filter(|e| !e.context.is_empty())
            .count();
        assert!(with_context > 0);
    }

    #[test]
    fn bundle_name_is_the_last_path_component() {
        assert_eq!(
            bundle_name("a/b/calico-bundle-x.tar.gz"),
            "calico-bundle-x.tar.gz"
        );
        assert_eq!(bundle_name("dir/"), "dir");
        assert_eq!(bundle_name("x"), "x");
    }
}
