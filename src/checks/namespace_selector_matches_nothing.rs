//! CAL013: a namespaceSelector matches no namespace.

use std::collections::BTreeMap;

use super::{Check, Finding, Severity, Step};
use crate::calico::selector::Selector;
use crate::model::Model;

pub const CHECK: Check = Check {
    code: "CAL013",
    name: "namespace-selector-matches-nothing",
    severity: Severity::Warning,
    step: Step::SelectorsMatch,
    doc: r#"
## What it finds
A `namespaceSelector` (of a rule, or of a GlobalNetworkPolicy) that matches none of the
bundle's namespaces, evaluated against the namespace labels Calico copies into the `kns.<ns>`
profile (plus `projectcalico.org/name`).

## Why it matters
Calico prefixes namespace labels with `pcns.` and matches them through the namespace profile;
a selector on a label the namespace does not carry (a common case: `name=monitoring` where only
`kubernetes.io/metadata.name=monitoring` exists) selects no peer, so cross-namespace traffic
is dropped.

## Example
`namespaceSelector: name == 'monitoring'` while namespace `monitoring` only has
`kubernetes.io/metadata.name=monitoring`.

## How to confirm by hand
`kubectl get namespaces --show-labels`; `calicoctl get profile kns.<ns> -o yaml`.

## What to do
Select on a label the namespace has (`kubernetes.io/metadata.name == 'monitoring'` works on
Kubernetes ≥ 1.21), or label the namespace: `kubectl label namespace monitoring name=monitoring`.
"#,
    run,
};

fn ns_labels(name: &str, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut l = labels.clone();
    l.insert("projectcalico.org/name".to_string(), name.to_string());
    l
}

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    if m.namespaces.is_empty() {
        return;
    }
    let all: Vec<(String, BTreeMap<String, String>)> = m
        .namespaces
        .values()
        .map(|n| (n.name.clone(), ns_labels(&n.name, &n.labels)))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for p in m.policies.iter().filter(|p| p.enforced()) {
        let mut fields: Vec<(String, String, usize)> = Vec::new();
        if !p.policy_ref.kind.is_namespaced()
            && let Some(ns_sel) = m
                .resources
                .global_network_policies
                .iter()
                .find(|g| {
                    g.item.meta.name == p.policy_ref.name
                        || g.item
                            .meta
                            .name
                            .ends_with(&format!(".{}", p.policy_ref.name))
                })
                .and_then(|g| g.item.spec.namespace_selector.clone())
        {
            fields.push(("spec.namespaceSelector".into(), ns_sel, p.loc.line));
        }
        for r in &p.rules {
            for (side_name, side) in [("source", &r.src), ("destination", &r.dst)] {
                if let Some(ns_sel) = &side.namespace_selector {
                    let dir = format!("{:?}", r.direction).to_lowercase();
                    fields.push((
                        format!("{dir}[{}].{side_name}.namespaceSelector", r.index),
                        ns_sel.clone(),
                        r.line,
                    ));
                }
            }
        }
        for (field, raw, line) in fields {
            let t = raw.trim();
            if t.is_empty() || t == "all()" || t == "global()" {
                continue;
            }
            let Ok(sel) = Selector::parse(&raw) else {
                continue;
            };
            if all.iter().any(|(_, l)| sel.evaluate(l)) {
                continue;
            }
            if !seen.insert((p.display.clone(), field.clone())) {
                continue;
            }
            let hint = {
                let shown: Vec<String> = m
                    .namespaces
                    .values()
                    .take(3)
                    .map(|n| {
                        let labels: Vec<String> =
                            n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        format!(
                            "{} has {}",
                            n.name,
                            if labels.is_empty() {
                                "no labels".to_string()
                            } else {
                                labels.join(", ")
                            }
                        )
                    })
                    .collect();
                format!(" ({}.)", shown.join("; "))
            };
            let ev = super::find_field_line(
                m,
                &p.loc.path,
                line.max(p.loc.line),
                "namespaceSelector",
                &raw,
            )
            .map(|(l, text)| p.loc.clone().with_line(l).evidence(text))
            .unwrap_or_else(|| {
                p.loc
                    .clone()
                    .with_line(line)
                    .evidence(format!("namespaceSelector: {raw}"))
            });
            out.push(
                Finding::of(
                    &CHECK,
                    format!("namespaceSelector of {} matches no namespace", p.display),
                    format!(
                        "{field} of {} is `{raw}`, which none of the {} namespaces in the bundle satisfies.{hint}",
                        p.display,
                        m.namespaces.len()
                    ),
                )
                .subject("policy", &p.display)
                .subject("selector", raw.clone())
                .evidence(ev)
                .confirm("kubectl get namespaces --show-labels")
                .fix("Select on a label the namespace has (e.g. kubernetes.io/metadata.name == '<ns>'), or add the label to the namespace with kubectl label namespace."),
            );
        }
    }
}
