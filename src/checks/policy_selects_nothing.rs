//! CAL011: a policy's selector matches no endpoint, so it applies to nothing.

use super::{Check, Finding, Severity, Step};
use crate::calico::selector::Selector;
use crate::model::Model;

pub const CHECK: Check = Check {
    code: "CAL011",
    name: "policy-selects-nothing",
    severity: Severity::Warning,
    step: Step::SelectorsMatch,
    doc: r#"
## What it finds
An enforced policy whose selector (with the namespace clause Calico adds to a namespaced
policy) matches none of the bundle's endpoints, with near misses: an endpoint whose label value
differs only in case, a label key one edit away, or the right labels in another namespace.

## Why it matters
The policy is programmed on no node: traffic the author meant to allow is handled by the
other policies (often the end-of-tier drop), traffic meant to be denied is not.

## Example
`selector: app == 'Web'` while the pods carry `app=web`: no endpoint matches; near miss
`demo/web` has `app=web`; corrected `app == "web"`.

## How to confirm by hand
`calicoctl get workloadendpoints -n <ns> -o wide` and compare the labels, or
`calisnap selector "<selector>" --bundle <bundle>`.

## What to do
Correct the selector (or the pod labels) so they agree; the fix shows a `calicoctl patch` with
the corrected selector.
"#,
    run,
};

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    if m.endpoints.is_empty() {
        return;
    }
    let near = super::NearMisses::new(m);
    for (i, p) in m.policies.iter().enumerate() {
        if !p.enforced() || !m.policy_endpoints[i].is_empty() {
            continue;
        }
        let Ok(v1) = &p.selector else { continue };
        // The policy selects no endpoint: `v1` matches none of them.
        let misses = near.find(
            p.namespace(),
            Selector::parse(&p.selector_v3).ok().as_ref(),
            v1,
        );
        let excerpt_line =
            super::find_field_line(m, &p.loc.path, p.loc.line, "selector", &p.selector_v3);
        let mut message = format!(
            "Policy {} selects `{}`, which matches none of the {} endpoints in the bundle, so Felix programs it nowhere.",
            p.display,
            if p.selector_v3.is_empty() {
                "all()"
            } else {
                &p.selector_v3
            },
            m.endpoints.len()
        );
        for nm in &misses {
            message.push_str(&format!(" Near miss: {}.", nm.message));
        }
        let mut f = Finding::of(
            &CHECK,
            format!("{} selects no endpoint", p.display),
            message,
        )
        .subject("policy", &p.display)
        .subject("selector", &p.selector_v3);
        f = match excerpt_line {
            Some((line, text)) => f.evidence(p.loc.clone().with_line(line).evidence(text)),
            None => f.evidence(p.loc.evidence(format!("selector: {}", p.selector_v3))),
        };
        for nm in &misses {
            if let Some(e) = m.endpoints.iter().find(|e| e.key == nm.endpoint) {
                f = f
                    .subject("endpoint", &e.key)
                    .evidence(e.loc.evidence(format!("{} has {}", e.key, nm.has)));
            }
        }
        f = f.confirm(format!(
            "calicoctl get workloadendpoints{} -o wide",
            p.namespace()
                .map(|n| format!(" -n {n}"))
                .unwrap_or_else(|| " -A".into())
        ));
        if let Some(nm) = misses.first().filter(|nm| !nm.corrected.is_empty()) {
            f = f.fix(super::selector_patch(p, &nm.corrected));
        } else {
            f = f.fix("Make the selector and the endpoints' labels agree.");
        }
        out.push(f);
    }
}
