//! CAL003: an artifact was cut short (a size limit, a damaged archive, a dump without its end).

use super::{Check, Evidence, Finding, Severity, Step};
use crate::model::Model;
use crate::parse::Parsed;

pub const CHECK: Check = Check {
    code: "CAL003",
    name: "artifact-truncated",
    severity: Severity::Warning,
    step: Step::Bundle,
    doc: r#"
## What it finds
An artifact that ends early: the archive broke inside it, a read limit cut it, or an
`iptables-save` table has no closing `COMMIT`.

## Why it matters
Rules, set members or log lines after the cut are not in the analysis: a chain or member
reported missing may only be missing from the truncated copy.

## Example
`nodes/node-1/iptables-save.txt`: table `filter` has no `COMMIT` (the file ends at line 4012).

## How to confirm by hand
`tail -n 3 <file>` in the unpacked bundle; `gzip -t bundle.tar.gz` for the archive.

## What to do
Collect the bundle again, or ask for the missing file whole; check the customer's upload did not
cut the tarball.
"#,
    run,
};

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    for a in &m.bundle.artifacts {
        let mut why: Vec<(usize, String)> = a
            .notes
            .iter()
            .filter(|n| n.message.contains("were read"))
            .map(|n| (n.line, n.message.clone()))
            .collect();
        if let Parsed::Iptables(d) = &a.parsed {
            for t in d.tables.iter().filter(|t| !t.committed && !t.implicit) {
                why.push((
                    t.line,
                    format!("table {} has no COMMIT: the dump ends inside it", t.name),
                ));
            }
        }
        for (line, reason) in why {
            let mut f = Finding::of(
                &CHECK,
                format!("{} is truncated", a.path),
                format!("{}: {reason}.", a.path),
            )
            .subject("artifact", &a.path)
            .evidence(Evidence {
                path: a.path.clone(),
                line,
                excerpt: reason.clone(),
            })
            .confirm(format!("tail -n 3 {}", super::shell_quote(&a.path)))
            .fix("Collect this file again, whole.");
            if let Some(n) = &a.node {
                f = f.on_node(n);
            }
            out.push(f);
        }
    }
    for note in &m.bundle.notes {
        if note.contains("damaged or truncated") || note.contains("limit") {
            out.push(
                Finding::of(&CHECK, "The bundle archive is incomplete", note.clone())
                    .subject("artifact", &m.bundle.source)
                    .evidence(Evidence {
                        path: m.bundle.source.clone(),
                        line: 0,
                        excerpt: note.clone(),
                    })
                    .confirm("gzip -t <bundle>.tar.gz && tar tzf <bundle>.tar.gz | tail")
                    .fix("Ask for the bundle again; check the upload was not cut."),
            );
        }
    }
}
