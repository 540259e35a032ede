//! The only serialisation: the JSON report of `../shared` contract §3 (documented field by
//! field in docs/report-json.md), the HTML and Markdown renderings of the same data, and the
//! short summary printed on the terminal.
//!
//! Everything here is built from a [`Report`] value: the analysis that fills it lives
//! elsewhere. The renderers share one view model ([`view::ReportView`]) so the three formats
//! cannot disagree about verdicts or counts. Every string that came from the bundle (names,
//! labels, log lines, paths) is treated as hostile: HTML is autoescaped, Markdown is escaped
//! by a formatter that escapes by default, and the terminal summary strips control characters.
//!
//! This module does not read the bundle. The one file access it makes is the optional
//! `--templates DIR` override, which the user points at on purpose.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::checks::{Finding, Severity, Step};
use crate::parse::ParseError;

pub mod detail;
pub mod example;
mod html;
mod markdown;
mod term;
pub mod view;

pub use html::render_html;
pub use markdown::{MARKDOWN_BUDGET, code_block, code_span, md_escape, render_markdown};
pub use term::{terminal_summary, use_color};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: Tool,
    pub bundle: BundleInfo,
    pub artifacts: Vec<ArtifactInfo>,
    pub findings: Vec<Finding>,
    pub summary: Summary,
    /// Debugging-flow steps (or a step on one node) that could not be answered because the
    /// artifacts they need are absent. Extension of the contract.
    pub steps_not_checked: Vec<StepNotChecked>,
    /// What the analysis saw per node: endpoints and their policies, policies and their chains
    /// with counters, IP sets and their members. Extension of the contract.
    pub nodes_detail: Vec<NodeDetail>,
    /// Lines around evidence lines, one entry per distinct `(path, line)`. Kept beside the
    /// findings rather than on `checks::Evidence`: checks point at a line, the report shows
    /// its neighbourhood. Extension of the contract.
    pub evidence_context: Vec<EvidenceContext>,
    /// Flows explained (`analyze --trace`, and flows behind `[UNREPLIED]` conntrack entries).
    /// Extension of the contract; each entry is a `trace --format json` document.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub traces: Vec<crate::trace::Trace>,
    /// Packets the kernel traced (`TRACE:` lines of a node's dmesg). Extension of the contract.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kernel_traces: Vec<crate::trace::kernel::KernelTrace>,
}

impl Default for Report {
    fn default() -> Self {
        Report {
            schema_version: SCHEMA_VERSION,
            tool: Tool::default(),
            bundle: BundleInfo::default(),
            artifacts: Vec::new(),
            findings: Vec::new(),
            summary: Summary::default(),
            steps_not_checked: Vec::new(),
            nodes_detail: Vec::new(),
            evidence_context: Vec::new(),
            traces: Vec::new(),
            kernel_traces: Vec::new(),
        }
    }
}

impl Report {
    /// A report with its summary computed from the findings and artifacts.
    pub fn new(bundle: BundleInfo, artifacts: Vec<ArtifactInfo>, findings: Vec<Finding>) -> Self {
        let summary = Summary::compute(&findings, &artifacts);
        Report {
            bundle,
            artifacts,
            findings,
            summary,
            ..Report::default()
        }
    }
}

/// `radius` lines either side of every evidence line of `findings`, once per (path, line),
/// ordered by path and line. `line_of` gives line `n` of an artifact by its bundle path (None:
/// its text was not kept in memory, or it is shorter; that evidence simply gets no context).
pub fn evidence_context<'t>(
    findings: &[Finding],
    radius: usize,
    line_of: impl Fn(&str, usize) -> Option<&'t str> + Sync,
) -> Vec<EvidenceContext> {
    use rayon::prelude::*;
    let wanted: BTreeSet<(&str, usize)> = findings
        .iter()
        .flat_map(|f| f.evidence.iter())
        .filter(|e| e.line > 0)
        .map(|e| (e.path.as_str(), e.line))
        .collect();
    let wanted: Vec<(&str, usize)> = wanted.into_iter().collect();
    // Lines of big texts come out of compressed blocks: look them up in parallel.
    wanted
        .par_iter()
        .filter_map(|&(path, line)| {
            let first = line.saturating_sub(radius).max(1);
            let context: Vec<ContextLine> = (first..=line.saturating_add(radius))
                .map_while(|n| line_of(path, n).map(|l| (n, l)))
                .map(|(n, l)| ContextLine {
                    line: n,
                    text: truncate_chars(l, CONTEXT_LINE_MAX),
                })
                .collect();
            (!context.is_empty()).then(|| EvidenceContext {
                path: path.to_string(),
                line,
                context,
            })
        })
        .collect()
}

/// The lines `line - radius ..= line + radius` of `text` (1-based, clipped to the text),
/// each cut to [`CONTEXT_LINE_MAX`] characters so one huge log line cannot swell the report.
pub fn context_lines(text: &str, line: usize, radius: usize) -> Vec<ContextLine> {
    crate::parse::LineIndex::new(text).context(line, radius)
}

impl crate::parse::LineIndex<'_> {
    /// [`context_lines`] over an indexed text.
    pub fn context(&self, line: usize, radius: usize) -> Vec<ContextLine> {
        if line == 0 {
            return Vec::new();
        }
        let first = line.saturating_sub(radius).max(1);
        self.lines(first, line.saturating_add(radius))
            .map(|(n, l)| ContextLine {
                line: n,
                text: truncate_chars(l, CONTEXT_LINE_MAX),
            })
            .collect()
    }
}

/// Longest context line kept, in characters.
pub const CONTEXT_LINE_MAX: usize = 400;

/// `s` cut to at most `max` characters (on a character boundary), with `…` when cut.
pub(crate) fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((idx, _)) => {
            let mut out = s.get(..idx).unwrap_or(s).to_string();
            out.push('…');
            out
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

impl Default for Tool {
    fn default() -> Self {
        Tool {
            name: "calisnap",
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BundleInfo {
    pub source: String,
    pub layout: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collected_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calico_version: Option<String>,
    /// Why that version was assumed (which artifact told it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calico_version_source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataplane: Option<String>,
    pub nodes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArtifactInfo {
    pub path: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub records: usize,
    pub bytes: u64,
    pub errors: Vec<ParseError>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
    pub artifacts: usize,
    pub parse_errors: usize,
}

impl Summary {
    pub fn compute(findings: &[Finding], artifacts: &[ArtifactInfo]) -> Self {
        let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
        Summary {
            errors: count(Severity::Error),
            warnings: count(Severity::Warning),
            infos: count(Severity::Info),
            artifacts: artifacts.len(),
            parse_errors: artifacts.iter().map(|a| a.errors.len()).sum(),
        }
    }
}

/// A debugging-flow step that could not be answered, and why (e.g. "no iptables-save.txt
/// for node-b"). `node` is set when only that node lacks the artifacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepNotChecked {
    pub step: Step,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub reason: String,
}

/// Per-node tables of the HTML report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeDetail {
    pub node: String,
    pub endpoints: Vec<EndpointDetail>,
    pub policies: Vec<PolicyDetail>,
    pub ipsets: Vec<IpsetDetail>,
}

/// An endpoint on the node and the policies that apply to it, in the order Felix evaluates
/// them (tier order, then policy order).
#[derive(Debug, Clone, Default, Serialize)]
pub struct EndpointDetail {
    /// Subject-style name: `namespace/pod`, or the host endpoint's name.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    pub ips: Vec<String>,
    /// Policy names (`[tier/][namespace/]name`, as subjects name them), in evaluation order.
    pub ingress: Vec<String>,
    pub egress: Vec<String>,
    pub profiles: Vec<String>,
}

/// A policy and the chains Felix should have programmed for it on this node.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PolicyDetail {
    pub policy: String,
    pub chains: Vec<ChainDetail>,
}

/// One chain: whether the dump has it, its rule count and summed hit counters
/// (`iptables-save -c`; absent when the dump has no counters).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChainDetail {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    pub present: bool,
    pub rules: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Where the chain is declared in the dump.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

/// An IP set: how many members Felix should have programmed, how many the dump has, and
/// which differ. Full member lists are left out on purpose: big clusters have sets of
/// thousands of members and the differences are what a reader needs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IpsetDetail {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    pub present: bool,
    pub expected_count: usize,
    pub actual_count: usize,
    /// Expected but absent from the dump.
    pub missing: Vec<String>,
    /// In the dump but not expected.
    pub stale: Vec<String>,
}

/// Lines around one evidence line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceContext {
    pub path: String,
    pub line: usize,
    /// Includes the evidence line itself.
    pub context: Vec<ContextLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContextLine {
    pub line: usize,
    pub text: String,
}

/// Why a rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template directory {path}: {source}")]
    TemplateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("template {name}: {source:#}")]
    Template {
        name: String,
        source: minijinja::Error,
    },
}

/// The JSON report: the contract of §3 plus the extensions documented in docs/report-json.md
/// (`step` and `anchor` per finding, `steps`, `steps_not_checked`, `nodes_detail`,
/// `evidence_context`).
pub fn render_json(report: &Report) -> String {
    let mut out = Vec::new();
    // Writing into memory cannot fail; the output of serde_json is UTF-8.
    let _ = write_json(report, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// [`render_json`], written to `w` as it is serialised (a report can be tens of megabytes).
pub fn write_json(report: &Report, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    use std::io::Write;
    let anchors = view::anchors(&report.findings);
    let findings: Vec<JsonFinding> = report
        .findings
        .iter()
        .zip(&anchors)
        .map(|(finding, anchor)| JsonFinding { finding, anchor })
        .collect();
    // The three big lists are rendered in parallel, a window of items at a time, and spliced
    // into the rest, which is rendered with them empty: the bytes are those of rendering it
    // all in one go.
    let json = JsonReport {
        schema_version: report.schema_version,
        tool: &report.tool,
        bundle: &report.bundle,
        artifacts: &report.artifacts,
        findings: Vec::new(),
        summary: &report.summary,
        steps: view::step_counts(report)
            .into_iter()
            .map(|s| JsonStep {
                step: s.step,
                title: s.step.title(),
                verdict: s.verdict,
                errors: s.errors,
                warnings: s.warnings,
                infos: s.infos,
            })
            .collect(),
        steps_not_checked: &report.steps_not_checked,
        nodes_detail: &[],
        evidence_context: &[],
        traces: &report.traces,
        kernel_traces: &report.kernel_traces,
    };
    let head = serde_json::to_string_pretty(&json).map_err(std::io::Error::other)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 16, w);
    let mut rest = head.as_str();
    for key in ["findings", "nodes_detail", "evidence_context"] {
        // Top-level keys are the only lines indented by two spaces (strings hold no raw
        // newlines), and each list was rendered as `[]`.
        let marker = format!("\n  \"{key}\": []");
        let Some(at) = rest.find(&marker) else {
            return Err(std::io::Error::other(format!(
                "{key} missing from the report"
            )));
        };
        let open = at + marker.len() - 2;
        w.write_all(&rest.as_bytes()[..open])?;
        match key {
            "findings" => write_pretty_list(&mut w, &findings)?,
            "nodes_detail" => write_pretty_list(&mut w, &report.nodes_detail)?,
            _ => write_pretty_list(&mut w, &report.evidence_context)?,
        }
        rest = &rest[open + 2..];
    }
    w.write_all(rest.as_bytes())?;
    w.write_all(b"\n")?;
    w.flush()
}

/// A top-level list of the JSON report as the pretty printer writes it at that depth:
/// `[]`, or `[`, each item on a new line indented by four spaces (its inner lines too), and
/// `]` indented by two. Items are rendered on the pool a bounded window at a time, so the
/// text held at once stays small however long the list; the next window is rendered while
/// this thread writes the last one.
fn write_pretty_list<T: Serialize + Sync>(
    w: &mut impl std::io::Write,
    items: &[T],
) -> std::io::Result<()> {
    if items.is_empty() {
        return w.write_all(b"[]");
    }
    w.write_all(b"[")?;
    let mut windows = items.chunks(256);
    let mut current = render_window(windows.next().unwrap_or_default())?;
    let mut first = true;
    for next in windows {
        let mut rendered = None;
        let written = rayon::in_place_scope(|s| {
            s.spawn(|_| rendered = Some(render_window(next)));
            write_parts(w, &current, &mut first)
        });
        written?;
        current = rendered.unwrap_or_else(|| Ok(Vec::new()))?;
    }
    write_parts(w, &current, &mut first)?;
    w.write_all(b"\n  ]")
}

/// Items rendered in parallel, each as `,\n    ` and its pretty JSON indented by four.
fn render_window<T: Serialize + Sync>(window: &[T]) -> std::io::Result<Vec<String>> {
    use rayon::prelude::*;
    window
        .par_chunks(16)
        .map(|chunk| {
            let mut part = String::new();
            for item in chunk {
                let text = serde_json::to_string_pretty(item)?;
                part.push_str(",\n    ");
                for (i, line) in text.split('\n').enumerate() {
                    if i > 0 {
                        part.push_str("\n    ");
                    }
                    part.push_str(line);
                }
            }
            Ok(part)
        })
        .collect::<serde_json::Result<_>>()
        .map_err(std::io::Error::other)
}

fn write_parts(
    w: &mut impl std::io::Write,
    parts: &[String],
    first: &mut bool,
) -> std::io::Result<()> {
    for part in parts {
        // Every item was rendered after `,`: the first one is not written with it.
        let bytes = part.as_bytes();
        w.write_all(if *first { &bytes[1..] } else { bytes })?;
        *first = false;
    }
    Ok(())
}

#[derive(Serialize)]
struct JsonReport<'a> {
    schema_version: u32,
    tool: &'a Tool,
    bundle: &'a BundleInfo,
    artifacts: &'a [ArtifactInfo],
    findings: Vec<JsonFinding<'a>>,
    summary: &'a Summary,
    steps: Vec<JsonStep>,
    steps_not_checked: &'a [StepNotChecked],
    nodes_detail: &'a [NodeDetail],
    evidence_context: &'a [EvidenceContext],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    traces: &'a [crate::trace::Trace],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    kernel_traces: &'a [crate::trace::kernel::KernelTrace],
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    #[serde(flatten)]
    finding: &'a Finding,
    anchor: &'a str,
}

#[derive(Serialize)]
struct JsonStep {
    step: Step,
    title: &'static str,
    verdict: view::Verdict,
    errors: usize,
    warnings: usize,
    infos: usize,
}

/// The environment both renderers use: `name` loaded from the override directory or the
/// embedded copy, escaping fixed to `escape` whatever the file is called, and the
/// formatting filters the templates share.
pub(crate) fn environment(
    name: &'static str,
    embedded: &'static str,
    dir: Option<&Path>,
    escape: minijinja::AutoEscape,
) -> Result<minijinja::Environment<'static>, RenderError> {
    use minijinja::syntax::SyntaxConfig;
    let source = template_source(name, embedded, dir)?;
    let template_error = |source| RenderError::Template {
        name: name.to_string(),
        source,
    };
    let mut env = minijinja::Environment::new();
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .map_err(template_error)?,
    );
    env.set_auto_escape_callback(move |_| escape.clone());
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    env.add_filter("bytes", |n: u64| html::human_bytes(n));
    env.add_filter("thousands", |n: u64| html::thousands(n));
    env.add_template_owned(name, source)
        .map_err(template_error)?;
    Ok(env)
}

pub(crate) fn render(
    env: &minijinja::Environment<'static>,
    name: &str,
    ctx: minijinja::Value,
) -> Result<String, RenderError> {
    let template_error = |source| RenderError::Template {
        name: name.to_string(),
        source,
    };
    env.get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(template_error)
}

/// Loads templates: the file of that name in the override directory when there is one,
/// else the embedded copy. Shared by the HTML and Markdown renderers.
pub(crate) fn template_source(
    name: &str,
    embedded: &'static str,
    dir: Option<&Path>,
) -> Result<String, RenderError> {
    let Some(dir) = dir else {
        return Ok(embedded.to_string());
    };
    if !dir.is_dir() {
        return Err(RenderError::TemplateDir {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        });
    }
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text),
        // A directory may override one template and leave the other embedded.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(embedded.to_string()),
        Err(source) => Err(RenderError::TemplateDir { path, source }),
    }
}

/// A serialisable value as a template value. minijinja's `serde` feature is not enabled in
/// this crate, so the conversion goes through `serde_json::Value`.
pub(crate) fn to_template_value<T: Serialize>(value: &T) -> minijinja::Value {
    fn convert(v: serde_json::Value) -> minijinja::Value {
        use minijinja::Value;
        match v {
            serde_json::Value::Null => Value::from(()),
            serde_json::Value::Bool(b) => Value::from(b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::from(i)
                } else if let Some(u) = n.as_u64() {
                    Value::from(u)
                } else {
                    Value::from(n.as_f64().unwrap_or(0.0))
                }
            }
            serde_json::Value::String(s) => Value::from(s),
            serde_json::Value::Array(items) => {
                Value::from(items.into_iter().map(convert).collect::<Vec<_>>())
            }
            serde_json::Value::Object(map) => Value::from(
                map.into_iter()
                    .map(|(k, v)| (k, convert(v)))
                    .collect::<std::collections::BTreeMap<String, Value>>(),
            ),
        }
    }
    convert(serde_json::to_value(value).unwrap_or(serde_json::Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_rendered_in_windows_reads_as_rendering_the_whole_report_at_once() {
        #[derive(Serialize, Clone)]
        struct Item {
            n: usize,
            name: String,
            tags: Vec<&'static str>,
            nested: Option<Box<Item>>,
        }
        #[derive(Serialize)]
        struct Whole {
            before: u32,
            items: Vec<Item>,
            after: &'static str,
        }
        for len in [0, 1, 63, 64, 65, 4095, 4096, 4097, 9000] {
            let items: Vec<Item> = (0..len)
                .map(|n| Item {
                    n,
                    name: format!("item \"{n}\"\n<b>"),
                    tags: if n % 3 == 0 { vec![] } else { vec!["a", "b"] },
                    nested: (n % 5 == 0).then(|| {
                        Box::new(Item {
                            n,
                            name: String::new(),
                            tags: vec!["x"],
                            nested: None,
                        })
                    }),
                })
                .collect();
            let whole = Whole {
                before: 1,
                items: items.clone(),
                after: "end",
            };
            let expected = serde_json::to_string_pretty(&whole).unwrap();
            let head = serde_json::to_string_pretty(&Whole {
                before: 1,
                items: Vec::new(),
                after: "end",
            })
            .unwrap();
            let (a, b) = head.split_once("[]").unwrap();
            let mut out = a.as_bytes().to_vec();
            write_pretty_list(&mut out, &items).unwrap();
            out.extend_from_slice(b.as_bytes());
            assert_eq!(String::from_utf8(out).unwrap(), expected, "{len} items");
        }
    }

    #[test]
    fn context_lines_are_clipped_to_the_text() {
        let text = "a\nb\r\nc\nd\n";
        let got = context_lines(text, 1, 2);
        assert_eq!(
            got.iter()
                .map(|c| (c.line, c.text.as_str()))
                .collect::<Vec<_>>(),
            vec![(1, "a"), (2, "b"), (3, "c")]
        );
        let got = context_lines(text, 4, 1);
        assert_eq!(got.iter().map(|c| c.line).collect::<Vec<_>>(), vec![3, 4]);
        assert!(context_lines(text, 0, 2).is_empty());
        assert!(context_lines(text, 99, 2).is_empty());
    }

    #[test]
    fn truncation_respects_character_boundaries() {
        assert_eq!(truncate_chars("héllo", 2), "hé…");
        assert_eq!(truncate_chars("héllo", 5), "héllo");
    }

    #[test]
    fn summary_counts_findings_by_severity_and_parse_errors() {
        let report = example::sample_report();
        let s = Summary::compute(&report.findings, &report.artifacts);
        assert_eq!(s.errors, report.summary.errors);
        assert_eq!(s.warnings, report.summary.warnings);
        assert_eq!(s.infos, report.summary.infos);
        assert_eq!(s.parse_errors, 3);
    }

    #[test]
    fn attached_context_covers_each_distinct_evidence_line_once() {
        let mut report = example::sample_report();
        let text: String = (1..=300).map(|i| format!("l{i}\n")).collect();
        let index = crate::parse::LineIndex::new(&text);
        report.evidence_context = evidence_context(&report.findings, 1, |path, n| {
            path.ends_with("iptables-save.txt")
                .then(|| index.line(n))
                .flatten()
        });
        assert!(!report.evidence_context.is_empty());
        let keys: BTreeSet<_> = report
            .evidence_context
            .iter()
            .map(|c| (c.path.clone(), c.line))
            .collect();
        assert_eq!(keys.len(), report.evidence_context.len());
        for c in &report.evidence_context {
            assert!(c.path.ends_with("iptables-save.txt"));
            let lines: Vec<usize> = c.context.iter().map(|l| l.line).collect();
            assert_eq!(lines, vec![c.line - 1, c.line, c.line + 1]);
            assert_eq!(c.context[1].text, format!("l{}", c.line));
        }
    }
}
