//! CAL010: a policy has a selector Calico rejects, so Felix drops the whole policy.

use super::{Check, Finding, Severity, Step};
use crate::calico::lint;
use crate::model::Model;

pub const CHECK: Check = Check {
    code: "CAL010",
    name: "selector-invalid",
    severity: Severity::Error,
    step: Step::SelectorsMatch,
    doc: r#"
## What it finds
A policy whose selector, rule selector, notSelector, namespaceSelector or serviceAccounts
selector does not parse under Calico's selector grammar, with Calico's own error text and a
suggested correction for the usual mistakes (`=` for `==`, `and` for `&&`, `[…]` for `{…}`,
unquoted values, a trailing newline from a YAML block scalar).

## Why it matters
calicoctl and the API server refuse such a policy, but one written straight into the CRDs
reaches Felix, which logs `Validation failed; treating as missing` and enforces none of it:
not the broken rule, the whole policy.

## Example
`selector: app = 'web'` → Calico: `expected ==`; hint: `app == "web"`.

## How to confirm by hand
`calicoctl get networkpolicy <name> -n <ns> -o yaml`, then
`calisnap selector "<selector>"`; Felix logs `Validation failed` for the policy.

## What to do
Correct the selector (the hint gives a version Calico accepts) and apply the policy again with
calicoctl or kubectl.
"#,
    run,
};

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    for p in &m.policies {
        for bad in &p.invalid {
            let hints = lint::lint(&bad.raw);
            let suggestion = hints.iter().find_map(|h| h.suggestion.clone());
            let hint_text = hints
                .iter()
                .find(|h| h.suggestion.is_some())
                .or(hints.first())
                .map(|h| h.message.clone());
            let key = bad.field.rsplit('.').next().unwrap_or("selector");
            let (line, excerpt) =
                super::find_field_line(m, &p.loc.path, bad.line.max(p.loc.line), key, &bad.raw)
                    .unwrap_or_else(|| (bad.line, format!("{}: {}", bad.field, bad.raw)));
            let mut message = format!(
                "{} of policy {} is `{}`; Calico says: {}. Felix drops the whole policy, so none of its rules is enforced.",
                bad.field,
                p.display,
                bad.raw.escape_debug(),
                bad.error.message
            );
            if let Some(h) = &hint_text {
                message.push_str(&format!(" Hint: {h}"));
            }
            let mut f = Finding::of(
                &CHECK,
                format!("Invalid selector in {}", p.display),
                message,
            )
            .subject("policy", &p.display)
            .subject("selector", &bad.raw)
            .evidence(p.loc.clone().with_line(line).evidence(excerpt))
            .confirm(format!(
                "calisnap selector {}",
                super::shell_quote(&bad.raw)
            ));
            f = match &suggestion {
                Some(s) => f.fix(format!(
                    "Set {} to `{s}` and apply the policy again ({}).",
                    bad.field,
                    super::apply_hint(p)
                )),
                None => f.fix(format!(
                    "Rewrite {} in Calico's selector syntax and apply the policy again.",
                    bad.field
                )),
            };
            out.push(f);
        }
    }
}
