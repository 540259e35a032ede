//! CAL005: lines of an artifact that could not be read.

use super::{Check, Evidence, Finding, Severity, Step};
use crate::model::Model;

pub const CHECK: Check = Check {
    code: "CAL005",
    name: "artifact-parse-errors",
    severity: Severity::Info,
    step: Step::Bundle,
    doc: r#"
## What it finds
Lines of an artifact the parser could not read (a pasted prompt, a truncated line, an invalid
YAML document), with the first few as evidence. The rest of the artifact was still analysed.

## Why it matters
What was on those lines is not in the analysis. Usually harmless (a prompt line pasted into a
dump); sometimes a whole YAML document with policies was skipped.

## Example
`cluster/calico/networkpolicies.yaml:41: did not find expected key`.

## How to confirm by hand
Open the artifact at the line given.

## What to do
If the line held data (a policy, rules), fix the file or collect it again.
"#,
    run,
};

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    for a in &m.bundle.artifacts {
        // A missing COMMIT is truncation (CAL003), not an unreadable line.
        let errors: Vec<_> = a
            .parsed
            .errors()
            .iter()
            .filter(|e| !e.message.contains("no COMMIT"))
            .cloned()
            .collect();
        if errors.is_empty() {
            continue;
        }
        let mut f = Finding::of(
            &CHECK,
            format!("{} line(s) of {} could not be read", errors.len(), a.path),
            format!(
                "{}: {} line(s) not understood; the rest was analysed. First: line {}: {}",
                a.path,
                errors.len(),
                errors[0].line,
                errors[0].message
            ),
        )
        .subject("artifact", &a.path)
        .confirm(format!(
            "sed -n '{}p' {}",
            errors[0].line.max(1),
            super::shell_quote(&a.path)
        ));
        for e in errors.iter().take(5) {
            f = f.evidence(Evidence {
                path: a.path.clone(),
                line: e.line,
                excerpt: e.message.clone(),
            });
        }
        if let Some(n) = &a.node {
            f = f.on_node(n);
        }
        out.push(f);
    }
}
