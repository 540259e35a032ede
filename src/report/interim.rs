//! Plain renderings used until the templated reports land.

use std::path::Path;

use super::Report;

pub fn render_json(report: &Report) -> String {
    let mut s =
        serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

pub fn render_markdown(report: &Report) -> String {
    let mut s = format!(
        "# calisnap report\n\nBundle `{}` ({}), nodes: {}\n\n| artifact | kind | node | records | errors |\n|---|---|---|---|---|\n",
        report.bundle.source,
        report.bundle.layout,
        report.bundle.nodes.join(", ")
    );
    for a in &report.artifacts {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            a.path,
            a.kind,
            a.node.as_deref().unwrap_or(""),
            a.records,
            a.errors.len()
        ));
    }
    s
}

pub fn render_html(report: &Report) -> String {
    let md = render_markdown(report)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!("<!doctype html><meta charset=utf-8><title>calisnap report</title><pre>{md}</pre>\n")
}

pub fn terminal_summary(report: &Report, path: Option<&Path>) -> String {
    let mut s = format!(
        "calisnap: {} artifacts, {} nodes; {} errors, {} warnings, {} infos\n",
        report.summary.artifacts,
        report.bundle.nodes.len(),
        report.summary.errors,
        report.summary.warnings,
        report.summary.infos
    );
    if let Some(p) = path {
        s.push_str(&format!("report written to {}\n", p.display()));
    }
    s
}
