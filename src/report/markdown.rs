//! The Markdown report: ticket-sized, for GitHub, GitLab and Jira with Markdown. A verdict
//! per step, then the errors and warnings with evidence and fix, details folded in
//! `<details>`. It stays under [`MARKDOWN_BUDGET`] by showing fewer findings in full and
//! counting the rest per check ("37 more warnings of CAL041 not shown"), never by dropping
//! them silently.
//!
//! Escaping is the default: the template is rendered with a formatter that escapes every
//! value for Markdown (and HTML, which Markdown passes through) unless a filter below built
//! it as a safe code span or code block.

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::value::Value;
use minijinja::{AutoEscape, Error, State};
use serde::Serialize;

use super::view::{FindingView, ReportView, StepView};
use super::{RenderError, Report, environment, to_template_value, truncate_chars};
use crate::checks::{Severity, Subject};

const TEMPLATE: &str = "report.md.j2";
const EMBEDDED: &str = include_str!("../../templates/report.md.j2");
const MARKDOWN: &str = "markdown";

/// The Markdown report never exceeds this many bytes.
pub const MARKDOWN_BUDGET: usize = 64 * 1024;

/// The Markdown report. `templates` is a directory whose `report.md.j2`, when present,
/// replaces the embedded template.
pub fn render_markdown(report: &Report, templates: Option<&Path>) -> Result<String, RenderError> {
    let view = ReportView::build(report);
    let mut env = environment(
        TEMPLATE,
        EMBEDDED,
        templates,
        AutoEscape::Custom(MARKDOWN.into()),
    )?;
    env.set_formatter(markdown_formatter);
    env.add_filter("code", |s: String| Value::from_safe_string(code_span(&s)));
    env.add_filter("block", |s: String| Value::from_safe_string(code_block(&s)));

    let mut last = String::new();
    for level in LEVELS {
        let md = MdView::build(&view, level);
        let ctx = minijinja::context! {
            r => to_template_value(&view),
            md => to_template_value(&md),
        };
        last = super::render(&env, TEMPLATE, ctx)?;
        if last.len() <= MARKDOWN_BUDGET {
            return Ok(last);
        }
    }
    // Even the counts alone are too long (thousands of checks or nodes): cut, and say so.
    let note = "\n\n**This report was cut at 64 KB; see the HTML/JSON report for the rest.**\n";
    let mut cut = MARKDOWN_BUDGET - note.len();
    while !last.is_char_boundary(cut) {
        cut -= 1;
    }
    last.truncate(cut);
    last.push_str(note);
    Ok(last)
}

/// How much of each group of findings (one check, one severity, one step) is shown.
#[derive(Debug, Clone, Copy)]
struct Level {
    /// Findings per group shown with evidence and fix.
    full: usize,
    /// Further findings per group shown as one line.
    brief: usize,
    evidence: usize,
    context: bool,
    details: bool,
    /// Info findings listed (as one line each) in all.
    infos: usize,
}

const LEVELS: [Level; 6] = [
    Level {
        full: 5,
        brief: 25,
        evidence: 3,
        context: true,
        details: true,
        infos: 40,
    },
    Level {
        full: 3,
        brief: 10,
        evidence: 2,
        context: true,
        details: true,
        infos: 15,
    },
    Level {
        full: 2,
        brief: 5,
        evidence: 1,
        context: false,
        details: true,
        infos: 10,
    },
    Level {
        full: 1,
        brief: 3,
        evidence: 1,
        context: false,
        details: false,
        infos: 5,
    },
    Level {
        full: 1,
        brief: 0,
        evidence: 1,
        context: false,
        details: false,
        infos: 0,
    },
    Level {
        full: 0,
        brief: 0,
        evidence: 0,
        context: false,
        details: false,
        infos: 0,
    },
];

// Bundle text can be arbitrarily long; a ticket does not need all of one log line.
const MESSAGE_MAX: usize = 800;
const TEXT_MAX: usize = 300;
const NAME_MAX: usize = 160;
const EXCERPT_MAX: usize = 300;
const CONTEXT_MAX: usize = 200;
const WHY_MAX: usize = 1200;
const NODES_SHOWN: usize = 20;
const PARSE_ERROR_ARTIFACTS_SHOWN: usize = 20;

#[derive(Serialize)]
struct MdView {
    /// Steps that have errors or warnings, in flow order.
    steps: Vec<MdStep>,
    infos: Vec<MdGroup>,
    info_total: usize,
    summarised: bool,
    total: usize,
    shown_full: usize,
    shown_brief: usize,
    counted_only: usize,
    nodes_shown: Vec<String>,
    nodes_more: usize,
    parse_error_artifacts: Vec<MdParseErrors>,
    parse_error_artifacts_more: usize,
}

#[derive(Serialize)]
struct MdStep {
    number: usize,
    title: &'static str,
    groups: Vec<MdGroup>,
}

#[derive(Serialize)]
struct MdGroup {
    code: String,
    severity: Severity,
    full: Vec<MdFinding>,
    brief: Vec<MdBrief>,
    omitted: usize,
}

#[derive(Serialize)]
struct MdFinding {
    anchor: String,
    code: String,
    severity: Severity,
    title: String,
    message: String,
    node: Option<String>,
    subjects: Vec<Subject>,
    evidence: Vec<MdEvidence>,
    more_evidence: usize,
    confirm: Option<String>,
    fix: Option<String>,
    why: Option<String>,
    has_context: bool,
    details: bool,
}

#[derive(Serialize)]
struct MdEvidence {
    location: String,
    excerpt: String,
    /// Numbered lines around the evidence, the evidence line marked with `>`.
    context: Option<String>,
}

#[derive(Serialize)]
struct MdBrief {
    code: String,
    title: String,
    node: Option<String>,
    subjects: String,
    location: Option<String>,
}

#[derive(Serialize)]
struct MdParseErrors {
    path: String,
    kind: String,
    node: Option<String>,
    count: usize,
    first: String,
}

impl MdView {
    fn build(view: &ReportView, level: Level) -> Self {
        let mut steps = Vec::new();
        let (mut shown_full, mut shown_brief, mut counted_only) = (0, 0, 0);
        // Errors and warnings in one line: the reader is not seeing all of them in full.
        let mut shortened = 0;
        for step in &view.steps {
            let groups = groups(step, &[Severity::Error, Severity::Warning], |findings| {
                split(findings, level.full, level.brief, level)
            });
            for g in &groups {
                shown_full += g.full.len();
                shown_brief += g.brief.len();
                shortened += g.brief.len();
                counted_only += g.omitted;
            }
            if !groups.is_empty() {
                steps.push(MdStep {
                    number: step.number,
                    title: step.title,
                    groups,
                });
            }
        }

        // Infos are listed one line each, up to `level.infos` across all steps.
        let mut infos = Vec::new();
        let mut info_budget = level.infos;
        for step in &view.steps {
            for g in groups(step, &[Severity::Info], |findings| {
                let take = info_budget.min(findings.len());
                info_budget -= take;
                split(findings, 0, take, level)
            }) {
                shown_brief += g.brief.len();
                counted_only += g.omitted;
                infos.push(g);
            }
        }

        let parse_errors: Vec<MdParseErrors> = view
            .artifacts
            .iter()
            .filter(|a| a.errors_total > 0)
            .map(|a| MdParseErrors {
                path: truncate_chars(&a.path, NAME_MAX),
                kind: a.kind.clone(),
                node: a.node.clone(),
                count: a.errors_total,
                first: a
                    .errors
                    .first()
                    .map(|e| format!("line {}: {}", e.line, truncate_chars(&e.message, 120)))
                    .unwrap_or_default(),
            })
            .collect();

        let total = view.counts.findings;
        MdView {
            steps,
            infos,
            info_total: view.counts.infos,
            summarised: shortened > 0 || counted_only > 0,
            total,
            shown_full,
            shown_brief,
            counted_only,
            nodes_shown: view
                .bundle
                .nodes
                .iter()
                .take(NODES_SHOWN)
                .map(|n| truncate_chars(n, NAME_MAX))
                .collect(),
            nodes_more: view.bundle.nodes.len().saturating_sub(NODES_SHOWN),
            parse_error_artifacts_more: parse_errors
                .len()
                .saturating_sub(PARSE_ERROR_ARTIFACTS_SHOWN),
            parse_error_artifacts: parse_errors
                .into_iter()
                .take(PARSE_ERROR_ARTIFACTS_SHOWN)
                .collect(),
        }
    }
}

/// The step's findings of these severities, grouped by (severity, code) in order of first
/// appearance; `shape` decides how many of each group are shown and how.
fn groups(
    step: &StepView,
    severities: &[Severity],
    mut shape: impl FnMut(&[&FindingView]) -> (Vec<MdFinding>, Vec<MdBrief>, usize),
) -> Vec<MdGroup> {
    let mut order: Vec<(Severity, &str)> = Vec::new();
    let mut members: BTreeMap<(Severity, &str), Vec<&FindingView>> = BTreeMap::new();
    for f in step
        .findings
        .iter()
        .filter(|f| severities.contains(&f.severity))
    {
        let key = (f.severity, f.code.as_str());
        if !members.contains_key(&key) {
            order.push(key);
        }
        members.entry(key).or_default().push(f);
    }
    order
        .into_iter()
        .map(|key| {
            let list = members.remove(&key).unwrap_or_default();
            let (full, brief, omitted) = shape(&list);
            MdGroup {
                code: key.1.to_string(),
                severity: key.0,
                full,
                brief,
                omitted,
            }
        })
        .collect()
}

fn split(
    findings: &[&FindingView],
    full: usize,
    brief: usize,
    level: Level,
) -> (Vec<MdFinding>, Vec<MdBrief>, usize) {
    let full_list: Vec<MdFinding> = findings
        .iter()
        .take(full)
        .map(|f| md_finding(f, level))
        .collect();
    let brief_list: Vec<MdBrief> = findings
        .iter()
        .skip(full_list.len())
        .take(brief)
        .map(|f| md_brief(f))
        .collect();
    let omitted = findings.len() - full_list.len() - brief_list.len();
    (full_list, brief_list, omitted)
}

fn md_finding(f: &FindingView, level: Level) -> MdFinding {
    let evidence: Vec<MdEvidence> = f
        .evidence
        .iter()
        .take(level.evidence)
        .map(|e| MdEvidence {
            location: truncate_chars(&e.location, NAME_MAX),
            excerpt: truncate_chars(&e.excerpt, EXCERPT_MAX),
            context: (level.context && !e.context.is_empty()).then(|| {
                let width = e
                    .context
                    .iter()
                    .map(|c| c.line)
                    .max()
                    .unwrap_or(0)
                    .to_string()
                    .len();
                e.context
                    .iter()
                    .map(|c| {
                        let mark = if c.line == e.line { '>' } else { ' ' };
                        format!(
                            "{mark}{:>width$}  {}",
                            c.line,
                            truncate_chars(&c.text, CONTEXT_MAX)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            }),
        })
        .collect();
    let why = level
        .details
        .then(|| f.why.as_deref().map(|w| truncate_chars(w, WHY_MAX)))
        .flatten();
    let has_context = evidence.iter().any(|e| e.context.is_some());
    let details = level.details && (why.is_some() || has_context);
    MdFinding {
        anchor: f.anchor.clone(),
        code: f.code.clone(),
        severity: f.severity,
        title: truncate_chars(&f.title, TEXT_MAX),
        message: truncate_chars(&f.message, MESSAGE_MAX),
        node: f.node.as_deref().map(|n| truncate_chars(n, NAME_MAX)),
        subjects: f
            .subjects
            .iter()
            .map(|s| {
                Subject::new(
                    &truncate_chars(&s.kind, 40),
                    truncate_chars(&s.name, NAME_MAX),
                )
            })
            .collect(),
        more_evidence: f.evidence.len() - evidence.len(),
        evidence,
        confirm: f.confirm.as_deref().map(|c| truncate_chars(c, TEXT_MAX)),
        fix: f.fix.as_deref().map(|c| truncate_chars(c, MESSAGE_MAX)),
        why,
        has_context,
        details,
    }
}

fn md_brief(f: &FindingView) -> MdBrief {
    let subjects = f
        .subjects
        .iter()
        .map(|s| format!("{} {}", s.kind, s.name))
        .collect::<Vec<_>>()
        .join(", ");
    MdBrief {
        code: f.code.clone(),
        title: truncate_chars(&f.title, 120),
        node: f.node.as_deref().map(|n| truncate_chars(n, 80)),
        subjects: truncate_chars(&subjects, NAME_MAX),
        location: f
            .evidence
            .first()
            .map(|e| truncate_chars(&e.location, NAME_MAX)),
    }
}

fn markdown_formatter(
    out: &mut minijinja::Output,
    state: &mut State,
    value: &Value,
) -> Result<(), Error> {
    if value.is_undefined() || value.is_none() {
        return Ok(());
    }
    let escape = matches!(state.auto_escape(), AutoEscape::Custom(name) if name == MARKDOWN);
    if value.is_safe() || !escape {
        return write!(out, "{value}").map_err(Error::from);
    }
    out.write_str(&md_escape(&value.to_string()))
        .map_err(Error::from)
}

/// Text made inert for Markdown and for the HTML Markdown lets through: newlines become
/// spaces (no new block can start), HTML-special characters become entities, and every
/// character that could start emphasis, a link, a code span, a table cell, a heading, a
/// strikethrough or math is backslash-escaped.
pub fn md_escape(s: &str) -> String {
    let chars: Vec<char> = s
        .chars()
        .map(|c| {
            if matches!(c, '\n' | '\r' | '\t') {
                ' '
            } else {
                c
            }
        })
        .collect();
    let mut out = String::with_capacity(s.len() + 8);
    // Where the value's first non-blank character is, a list item or setext underline
    // could begin if the value starts a line.
    let first = chars.iter().position(|c| *c != ' ').unwrap_or(chars.len());
    let digits = chars
        .iter()
        .skip(first)
        .take_while(|c| c.is_ascii_digit())
        .count();
    let list_marker = match chars.get(first) {
        Some('-' | '+' | '=') => Some(first),
        Some(c) if c.is_ascii_digit() => {
            let p = first + digits;
            let ends_marker = matches!(chars.get(p + 1), None | Some(' '));
            (matches!(chars.get(p), Some('.' | ')')) && ends_marker).then_some(p)
        }
        _ => None,
    };
    for (i, &c) in chars.iter().enumerate() {
        if Some(i) == list_marker {
            out.push('\\');
            out.push(c);
            continue;
        }
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() || is_bidi_control(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Unicode bidi embedding, override and isolate controls: they reorder the text around
/// them, so a name could display as something else.
pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// An inline code span that holds any text: the fence is longer than any run of backticks
/// inside, and padding keeps a leading or trailing backtick from joining the fence.
pub fn code_span(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            c if c.is_control() || is_bidi_control(c) => '\u{FFFD}',
            c => c,
        })
        .collect();
    if s.is_empty() {
        return String::new();
    }
    let fence = "`".repeat(longest_backtick_run(&s) + 1);
    let pad = s.starts_with('`')
        || s.ends_with('`')
        || (s.starts_with(' ') && s.ends_with(' ') && !s.trim().is_empty());
    if pad {
        format!("{fence} {s} {fence}")
    } else {
        format!("{fence}{s}{fence}")
    }
}

/// A fenced code block (no info string) that no line of the text can close early.
pub fn code_block(s: &str) -> String {
    let body: String = s
        .lines()
        .map(|l| {
            l.chars()
                .map(|c| {
                    if (c.is_control() && c != '\t') || is_bidi_control(c) {
                        '\u{FFFD}'
                    } else {
                        c
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n");
    let fence = "`".repeat((longest_backtick_run(&body) + 1).max(3));
    format!("{fence}\n{body}\n{fence}")
}

fn longest_backtick_run(s: &str) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in s.chars() {
        if c == '`' {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_neutralises_markdown_and_html() {
        assert_eq!(
            md_escape("| ** _ [x](javascript:alert(1)) `"),
            r"\| \*\* \_ \[x\](javascript:alert(1)) \`"
        );
        assert_eq!(md_escape("<b>&"), "&lt;b&gt;&amp;");
        assert_eq!(md_escape("# h"), r"\# h");
        assert_eq!(md_escape("a\n# h\n- x"), r"a \# h - x");
        assert_eq!(md_escape("- item"), r"\- item");
        assert_eq!(md_escape("12. item"), r"12\. item");
        assert_eq!(md_escape("3.27.0"), "3.27.0");
        assert_eq!(md_escape("7)"), r"7\)");
        assert_eq!(md_escape("$x$ ~~s~~"), r"\$x\$ \~\~s\~\~");
        assert_eq!(md_escape("a\u{1b}[31m"), "a\u{FFFD}\\[31m");
        assert_eq!(md_escape("plain text, 10.0.0.1"), "plain text, 10.0.0.1");
    }

    #[test]
    fn code_spans_hold_backticks_and_newlines() {
        assert_eq!(code_span("abc"), "`abc`");
        assert_eq!(code_span("a`b"), "``a`b``");
        assert_eq!(code_span("`x``"), "``` `x`` ```");
        assert_eq!(code_span("a\nb"), "`a b`");
        assert_eq!(code_span(""), "");
        assert_eq!(code_span(" x "), "`  x  `");
    }

    #[test]
    fn code_blocks_cannot_be_closed_by_their_content() {
        assert_eq!(code_block("x"), "```\nx\n```");
        assert_eq!(code_block("```\nend"), "````\n```\nend\n````");
        assert_eq!(code_block("a\r\nb"), "```\na\nb\n```");
    }
}
