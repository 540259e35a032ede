//! CAL002: a command of the collector failed (per the bundle's manifest).

use super::{Check, Evidence, Finding, Severity, Step};
use crate::model::Model;

pub const CHECK: Check = Check {
    code: "CAL002",
    name: "collector-command-failed",
    severity: Severity::Warning,
    step: Step::Bundle,
    doc: r#"
## What it finds
A command the collector ran that exited non-zero (or was not found), as `manifest.json`
records it, with its stderr.

## Why it matters
Its output is missing or partial, so whatever the analysis would have read from it is not
checked. Today's `calicoctl node diags` drops such failures silently; our collector records
them so the gap is visible.

## Example
`ip6tables-save -c` on `node-1` exited 127: `ip6tables-save: command not found`.

## How to confirm by hand
Run the command from the manifest's `argv` on the node, as root.

## What to do
Install the missing tool or fix the permission problem the stderr shows, then collect again.
"#,
    run,
};

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    let Some(manifest) = &m.bundle.manifest else {
        return;
    };
    for (i, c) in manifest.commands.iter().enumerate() {
        let Some(code) = c.exit_code.filter(|&c| c != 0) else {
            continue;
        };
        let stderr = c
            .stderr_path
            .as_deref()
            .and_then(|p| m.bundle.text_of(p))
            .map(|t| t.lines().take(3).collect::<Vec<_>>().join(" / "))
            .unwrap_or_default();
        let cmd = c.argv.join(" ");
        let who = c
            .node
            .as_deref()
            .map(|n| format!(" on node {n}"))
            .unwrap_or_default();
        let mut f = Finding::of(
            &CHECK,
            format!(
                "`{}` failed{who}",
                if cmd.is_empty() { &c.name } else { &cmd }
            ),
            format!(
                "The collector's `{}` exited {code}{}{}; {} is missing or partial.",
                c.name,
                who,
                if stderr.is_empty() {
                    String::new()
                } else {
                    format!(" ({stderr})")
                },
                if c.path.is_empty() {
                    "its output"
                } else {
                    c.path.as_str()
                }
            ),
        )
        .subject(
            "artifact",
            if c.path.is_empty() {
                c.name.clone()
            } else {
                c.path.clone()
            },
        )
        .evidence(manifest_evidence(m, i, &c.path, &c.name, code))
        .confirm(if cmd.is_empty() { c.name.clone() } else { cmd })
        .fix("Install the tool or fix what its stderr says, then collect the bundle again.");
        if let Some(n) = &c.node {
            f = f.on_node(n).subject("node", n);
        }
        if let Some(p) = &c.stderr_path {
            f = f.evidence(Evidence {
                path: p.clone(),
                line: 1,
                excerpt: stderr.clone(),
            });
        }
        out.push(f);
    }
}

/// The `"exit_code"` line of command `i` in manifest.json (found near its `"path"` line).
fn manifest_evidence(m: &Model<'_>, i: usize, path: &str, name: &str, code: i64) -> Evidence {
    let manifest = m
        .bundle
        .artifacts
        .iter()
        .find(|a| a.kind == crate::bundle::ArtifactKind::Manifest)
        .map(|a| a.path.clone())
        .unwrap_or_else(|| "manifest.json".to_string());
    let at = if path.is_empty() {
        super::find_line(m, &manifest, 1, &format!("\"name\": \"{name}\""))
    } else {
        super::find_line(m, &manifest, 1, &format!("\"path\": \"{path}\""))
    };
    let exit = at.and_then(|(l, _)| {
        let from = l.saturating_sub(12).max(1);
        (from..l + 12)
            .filter_map(|n| super::line_text(m, &manifest, n).map(|t| (n, t)))
            .filter(|(_, t)| t.contains("\"exit_code\""))
            .min_by_key(|(n, _)| n.abs_diff(l))
    });
    match exit {
        Some((line, text)) => Evidence {
            path: manifest,
            line,
            excerpt: text.trim().to_string(),
        },
        None => Evidence {
            path: manifest,
            line: 0,
            excerpt: format!("commands[{i}]: {name} exit_code={code}"),
        },
    }
}
