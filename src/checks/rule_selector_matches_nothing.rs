//! CAL012: a rule's source/destination selector matches no endpoint or network set.

use super::{Check, Finding, Severity, Step};
use crate::calico::selector::Selector;
use crate::model::Model;

pub const CHECK: Check = Check {
    code: "CAL012",
    name: "rule-selector-matches-nothing",
    severity: Severity::Warning,
    step: Step::SelectorsMatch,
    doc: r#"
## What it finds
A rule of an enforced policy whose source or destination selector (as Felix builds it, with the
namespace scoping of a namespaced policy) matches no endpoint and no network set in the bundle,
with near misses (case, a key one edit away, another namespace).

## Why it matters
Felix programs the rule with an empty IP set: an Allow rule then allows nothing, so the traffic
falls through to the next policy or the end-of-tier drop.

## Example
`source: {selector: role == 'front-end'}` while the pods carry `role=frontend`.

## How to confirm by hand
`ipset list <set name>` on a node shows no members; compare the pods' labels with
`kubectl get pods -n <ns> --show-labels`.

## What to do
Correct the selector or the labels; for traffic from another namespace, add a
`namespaceSelector`.
"#,
    run,
};

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    if m.endpoints.is_empty() {
        return;
    }
    let near = super::NearMisses::new(m);
    for p in m.policies.iter().filter(|p| p.enforced()) {
        for r in &p.rules {
            for (side_name, side) in [("source", &r.src), ("destination", &r.dst)] {
                let Some(sel) = &side.positive else { continue };
                // Only where the user wrote a selector (an empty side matches any address).
                if side.selector.is_none() && side.namespace_selector.is_none() {
                    continue;
                }
                if m.has_members(sel) {
                    continue;
                }
                let written = side.selector.clone().unwrap_or_default();
                let parsed = Selector::parse(&written)
                    .ok()
                    .filter(|_| !written.is_empty());
                // `has_members` found no endpoint that `sel` matches.
                let misses = near.find(p.namespace(), parsed.as_ref(), sel);
                let dir = format!("{:?}", r.direction).to_lowercase();
                let mut msg = format!(
                    "Rule {dir}[{}] of {} ({}) has {side_name} selector `{}`; Felix matches `{}`, which no endpoint or network set in the bundle satisfies, so the rule never matches.",
                    r.index,
                    p.display,
                    r.action,
                    written,
                    sel.canonical()
                );
                for nm in &misses {
                    msg.push_str(&format!(" Near miss: {}.", nm.message));
                }
                let ev = super::find_field_line(
                    m,
                    &p.loc.path,
                    r.line.max(p.loc.line),
                    "selector",
                    &written,
                )
                .map(|(l, t)| p.loc.clone().with_line(l).evidence(t))
                .unwrap_or_else(|| {
                    p.loc
                        .clone()
                        .with_line(r.line)
                        .evidence(format!("{side_name}: selector: {written}"))
                });
                let mut f = Finding::of(
                    &CHECK,
                    format!(
                        "Rule {dir}[{}] of {} matches no {side_name}",
                        r.index, p.display
                    ),
                    msg,
                )
                .subject("policy", &p.display)
                .subject("selector", sel.canonical())
                .evidence(ev)
                .confirm(format!(
                    "ipset list {}   # on a node where the policy is active: no members",
                    sel.ipset_name(false)
                ));
                for nm in misses.iter().take(2) {
                    if let Some(e) = m.endpoints.iter().find(|e| e.key == nm.endpoint) {
                        f = f
                            .subject("endpoint", &e.key)
                            .evidence(e.loc.evidence(format!("{} has {}", e.key, nm.has)));
                    }
                }
                f = f.fix(match misses.first() {
                    Some(nm) => format!(
                        "Correct the {side_name} selector of rule {dir}[{}] (Felix would then match `{}`), then {}.",
                        r.index,
                        nm.corrected,
                        super::apply_hint(p)
                    ),
                    None => "Make the rule's selector and the endpoints' labels agree, or add a namespaceSelector for peers in other namespaces.".to_string(),
                });
                out.push(f);
            }
        }
    }
}
