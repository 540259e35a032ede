//! The short summary `analyze` prints on the terminal: the bundle in one line, the verdict
//! per debugging-flow step, the worst findings, and where the full report was written.
//! Bundle text is stripped of control and bidi characters so a hostile name cannot move
//! the cursor, recolour the terminal or reorder what the engineer reads.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;

use super::Report;
use super::view::{Counts, Verdict, step_counts};
use crate::checks::Severity;

/// Findings listed by name under the step table.
const TOP_FINDINGS: usize = 5;

/// "Not checked" reasons listed per step; the rest are counted.
const NOT_CHECKED_SHOWN: usize = 3;

/// Colour only on a terminal, and never when `NO_COLOR` is set to something (no-color.org).
pub fn use_color() -> bool {
    color_wanted(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

fn color_wanted(stdout_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stdout_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

struct Paint {
    on: bool,
}

impl Paint {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\u{1b}[{code}m{text}\u{1b}[0m")
        } else {
            text.to_string()
        }
    }
    fn verdict(&self, v: Verdict) -> String {
        let (code, label) = match v {
            Verdict::Ok => ("32", "ok"),
            Verdict::NotChecked => ("2", "not checked"),
            Verdict::Warning => ("33", "warning"),
            Verdict::Error => ("1;31", "ERROR"),
        };
        self.paint(code, label)
    }
    fn severity(&self, s: Severity) -> String {
        match s {
            Severity::Error => self.paint("1;31", "error"),
            Severity::Warning => self.paint("33", "warning"),
            Severity::Info => self.paint("36", "info"),
        }
    }
}

/// The terminal summary. `report_path` is where the full report was written, if anywhere.
pub fn terminal_summary(report: &Report, report_path: Option<&Path>, color: bool) -> String {
    // Counts and a few titles, read straight from the report (the HTML view would copy every
    // finding with its evidence and docs).
    let p = Paint { on: color };
    let mut out = String::new();
    let b = &report.bundle;

    let mut facts = vec![clean(&b.layout)];
    facts.push(format!(
        "{} node{}",
        b.nodes.len(),
        if b.nodes.len() == 1 { "" } else { "s" }
    ));
    match (&b.calico_version, &b.calico_version_source) {
        (Some(v), Some(src)) => facts.push(format!("Calico {} (from {})", clean(v), clean(src))),
        (Some(v), None) => facts.push(format!("Calico {}", clean(v))),
        _ => facts.push("Calico version unknown".into()),
    }
    if let Some(d) = &b.dataplane {
        facts.push(clean(d));
    }
    let _ = writeln!(out, "{} {}", p.paint("1", "Bundle"), clean(&b.source));
    let _ = writeln!(out, "  {}", facts.join(", "));
    let _ = writeln!(out);

    let steps = step_counts(report);
    let width = steps
        .iter()
        .map(|s| s.step.title().len())
        .max()
        .unwrap_or(0);
    for (i, s) in steps.iter().enumerate() {
        let mut detail = Vec::new();
        if s.errors > 0 {
            detail.push(plural(s.errors, "error"));
        }
        if s.warnings > 0 {
            detail.push(plural(s.warnings, "warning"));
        }
        if s.infos > 0 {
            detail.push(format!("{} info", s.infos));
        }
        let not_checked: Vec<_> = report
            .steps_not_checked
            .iter()
            .filter(|n| n.step == s.step)
            .collect();
        for n in not_checked.iter().take(NOT_CHECKED_SHOWN) {
            let on = n.node.as_deref().map(|n| format!(" on {}", clean(n)));
            detail.push(format!(
                "not checked{}: {}",
                on.unwrap_or_default(),
                clean(&n.reason)
            ));
        }
        if not_checked.len() > NOT_CHECKED_SHOWN {
            detail.push(format!(
                "{} more not checked",
                not_checked.len() - NOT_CHECKED_SHOWN
            ));
        }
        let _ = writeln!(
            out,
            "  {}. {:<width$}  {}{}",
            i + 1,
            s.step.title(),
            p.verdict(s.verdict),
            if detail.is_empty() {
                String::new()
            } else {
                format!("  ({})", detail.join("; "))
            }
        );
    }
    let _ = writeln!(out);

    let c = Counts::of(report);
    let mut line = format!(
        "Findings: {}, {}, {} info",
        p.paint(
            if c.errors > 0 { "1;31" } else { "0" },
            &plural(c.errors, "error")
        ),
        p.paint(
            if c.warnings > 0 { "33" } else { "0" },
            &plural(c.warnings, "warning")
        ),
        c.infos
    );
    if c.parse_errors > 0 {
        let _ = write!(
            line,
            "; {} in {} of {} artifacts",
            plural(c.parse_errors, "parse error"),
            c.artifacts_with_errors,
            c.artifacts
        );
    } else {
        let _ = write!(line, "; {} artifacts read", c.artifacts);
    }
    let _ = writeln!(out, "{line}");

    // Worst first; then step order (`Step` orders as the flow does), then the report's order.
    let mut worst: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::Warning)
        .collect();
    worst.sort_by_key(|f| (std::cmp::Reverse(f.severity), f.step));
    for f in worst.iter().take(TOP_FINDINGS) {
        let node = f
            .node
            .as_deref()
            .map(|n| format!(" [{}]", clean(n)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} {} {}{}",
            p.severity(f.severity),
            clean(&f.code),
            clean(&f.title),
            node
        );
    }
    if worst.len() > TOP_FINDINGS {
        let _ = writeln!(out, "  … and {} more", worst.len() - TOP_FINDINGS);
    }

    if let Some(path) = report_path {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Report: {}",
            p.paint("1", &clean(&path.display().to_string()))
        );
    }
    out
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// Text safe to print: control characters (escape sequences, bells, carriage returns) and
/// Unicode bidi controls become U+FFFD, and line breaks become spaces.
pub(crate) fn clean(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            c if c.is_control() || super::markdown::is_bidi_control(c) => '\u{FFFD}',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::example::{hostile_report, sample_report};

    #[test]
    fn summary_shows_each_step_verdict_and_the_report_path() {
        let s = terminal_summary(
            &sample_report(),
            Some(Path::new("bundle.report.html")),
            false,
        );
        assert!(s.contains("Policies present"), "{s}");
        assert!(s.contains("ERROR"), "{s}");
        assert!(s.contains("not checked: no conntrack.txt or dmesg.txt in the bundle"));
        assert!(s.contains("Findings: 3 errors, 3 warnings, 3 info"), "{s}");
        assert!(s.contains("Report: bundle.report.html"));
        assert!(!s.contains('\u{1b}'));
    }

    #[test]
    fn colour_is_ansi_only_when_asked() {
        let s = terminal_summary(&sample_report(), None, true);
        assert!(s.contains("\u{1b}[1;31mERROR\u{1b}[0m"));
        assert!(!s.contains("Report:"));
    }

    #[test]
    fn hostile_text_cannot_drive_the_terminal() {
        let s = terminal_summary(&hostile_report("http://127.0.0.1:9"), None, false);
        assert!(!s.contains('\u{1b}'), "{s}");
        assert!(!s.contains('\u{7}'));
        assert!(!s.contains('\u{202e}'));
        assert!(!s.contains('\r'));
    }

    #[test]
    fn colour_needs_a_terminal_and_no_no_color() {
        use std::ffi::OsStr;
        assert!(color_wanted(true, None));
        assert!(color_wanted(true, Some(OsStr::new(""))));
        assert!(!color_wanted(true, Some(OsStr::new("1"))));
        assert!(!color_wanted(false, None));
    }

    #[test]
    fn many_nodes_not_checked_are_counted_not_listed() {
        let mut report = sample_report();
        for i in 0..50 {
            report
                .steps_not_checked
                .push(crate::report::StepNotChecked {
                    step: crate::checks::Step::Bundle,
                    node: Some(format!("n{i}")),
                    reason: "no felix.log".into(),
                });
        }
        let s = terminal_summary(&report, None, false);
        assert!(s.contains("47 more not checked"), "{s}");
        assert!(!s.contains("n3:"));
    }

    #[test]
    fn the_worst_findings_come_first_then_by_step_then_in_report_order() {
        use crate::checks::{Severity, Step};
        let mut report = sample_report();
        let template = report.findings[0].clone();
        let finding = |step, severity, title: &str| {
            let mut f = template.clone();
            f.step = step;
            f.severity = severity;
            f.title = title.to_string();
            f.node = None;
            f
        };
        report.findings = vec![
            finding(Step::PacketPath, Severity::Warning, "w-path"),
            finding(Step::ChainsProgrammed, Severity::Error, "e-chains"),
            finding(Step::ChainsProgrammed, Severity::Info, "i-chains"),
            finding(Step::ChainsProgrammed, Severity::Warning, "w-chains-1"),
            finding(Step::PacketPath, Severity::Error, "e-path"),
            finding(Step::Bundle, Severity::Warning, "w-bundle"),
            finding(Step::ChainsProgrammed, Severity::Warning, "w-chains-2"),
        ];
        let s = terminal_summary(&report, None, false);
        let order: Vec<&str> = s
            .lines()
            .filter_map(|l| l.trim().split_once(" "))
            .filter(|(sev, _)| *sev == "error" || *sev == "warning")
            .filter_map(|(_, rest)| rest.split_whitespace().nth(1))
            .collect();
        assert_eq!(
            order,
            ["e-chains", "e-path", "w-bundle", "w-chains-1", "w-chains-2"],
            "{s}"
        );
        assert!(s.contains("… and 1 more"), "{s}");
    }

    #[test]
    fn clean_replaces_controls_and_bidi() {
        assert_eq!(
            clean("a\u{1b}[31mb\u{202e}c\nd"),
            "a\u{FFFD}[31mb\u{FFFD}c d"
        );
    }
}
