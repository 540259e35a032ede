//! CAL015: staged policies that select endpoints: a reminder that staged policies are never
//! enforced.

use super::{Check, Finding, Severity, Step};
use crate::calico::names::PolicyKind;
use crate::model::{Model, Policy};

pub const CHECK: Check = Check {
    code: "CAL015",
    name: "staged-policy-not-enforced",
    severity: Severity::Info,
    step: Step::PoliciesPresent,
    doc: r#"
## What it finds
StagedNetworkPolicies, StagedGlobalNetworkPolicies and StagedKubernetesNetworkPolicies whose
selector matches endpoints in the bundle, with their `stagedAction` and the enforced policy of
the same name when there is one.

## Why it matters
Staged policies preview a change: Felix computes what they would do for flow logs but never
programs them (from v3.30 it renders no chains for them at all). A staged policy that looks
right in the YAML still allows and denies nothing; a `stagedAction: Delete` previews removing
a policy that is still enforced.

## Example
`StagedNetworkPolicy demo/deny-all` selects `demo/web` and `demo/client`, but traffic to them
is still handled by the enforced policies (or their profiles).

## How to confirm by hand
`kubectl get stagednetworkpolicies.projectcalico.org -n <ns> <name> -o yaml`; the node's
`iptables-save` has no chain for it.

## What to do
When the preview looks right, enforce it: apply the same spec as a NetworkPolicy /
GlobalNetworkPolicy / Kubernetes NetworkPolicy (change `kind`, drop `stagedAction`), or use
"Enforce" in the Calico UI; delete staged policies that are no longer wanted.
"#,
    run,
};

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    for p in m
        .policies
        .iter()
        .filter(|p| p.staged && p.invalid.is_empty())
    {
        let Ok(sel) = &p.selector else { continue };
        let selected = m.endpoint_index.matching(sel, |i| &m.endpoints[i].labels);
        if selected.is_empty() {
            continue;
        }
        out.push(finding(m, p, &selected));
    }
}

/// `stagedAction` as written (Calico's default is `Set`).
fn staged_action(m: &Model<'_>, p: &Policy) -> Option<String> {
    let same = |path: &str, line: usize| path == p.loc.path && line == p.loc.line;
    let r = &m.resources;
    r.staged_network_policies
        .iter()
        .chain(&r.staged_global_network_policies)
        .find(|s| same(s.path, s.item.meta.line))
        .and_then(|s| s.item.spec.staged_action.clone())
        .or_else(|| {
            r.staged_kubernetes_network_policies
                .iter()
                .find(|s| same(s.path, s.item.meta.line))
                .and_then(|s| s.item.spec.staged_action.clone())
        })
}

/// The enforced kind a staged kind previews.
fn enforced_kind(k: &PolicyKind) -> PolicyKind {
    match k {
        PolicyKind::StagedNetworkPolicy => PolicyKind::NetworkPolicy,
        PolicyKind::StagedGlobalNetworkPolicy => PolicyKind::GlobalNetworkPolicy,
        PolicyKind::StagedKubernetesNetworkPolicy => PolicyKind::KubernetesNetworkPolicy,
        other => other.clone(),
    }
}

fn resource_name(k: &PolicyKind) -> &'static str {
    match k {
        PolicyKind::StagedGlobalNetworkPolicy => "stagedglobalnetworkpolicies.projectcalico.org",
        PolicyKind::StagedKubernetesNetworkPolicy => {
            "stagedkubernetesnetworkpolicies.projectcalico.org"
        }
        _ => "stagednetworkpolicies.projectcalico.org",
    }
}

fn finding(m: &Model<'_>, p: &Policy, selected: &[usize]) -> Finding {
    let kind = p.kind();
    let target = enforced_kind(kind);
    let twin = m.policies.iter().find(|q| {
        !q.staged
            && *q.kind() == target
            && q.policy_ref.name == p.policy_ref.name
            && q.namespace() == p.namespace()
    });
    let action = staged_action(m, p).unwrap_or_else(|| "Set".to_string());
    let mut keys: Vec<&str> = selected
        .iter()
        .map(|&i| m.endpoints[i].key.as_str())
        .collect();
    keys.sort_unstable();
    let more = keys.len().saturating_sub(10);
    let mut message = format!(
        "{} {} selects {} endpoint{} ({}{}), but staged policies are never enforced: Felix does not program them, so none of its rules allow or deny anything.",
        kind.as_str(),
        p.display,
        keys.len(),
        if keys.len() == 1 { "" } else { "s" },
        keys.iter().take(10).copied().collect::<Vec<_>>().join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    );
    match (action.as_str(), twin) {
        ("Delete", Some(t)) => message.push_str(&format!(
            " Its stagedAction is Delete: it previews removing {} {}, which is still enforced.",
            t.kind().as_str(),
            t.display
        )),
        ("Delete", None) => message.push_str(
            " Its stagedAction is Delete, but no enforced policy of that name is in the bundle.",
        ),
        (_, Some(t)) => message.push_str(&format!(
            " The enforced {} {} of the same name is what applies to them.",
            t.kind().as_str(),
            t.display
        )),
        _ => {}
    }
    let mut f = Finding::of(
        &CHECK,
        format!(
            "Staged policy {} selects {} endpoint{} but is not enforced",
            p.display,
            keys.len(),
            if keys.len() == 1 { "" } else { "s" }
        ),
        message,
    )
    .subject("policy", p.display.as_str());
    for k in keys.iter().take(10) {
        f = f.subject("endpoint", *k);
    }
    let field = if p.from_k8s {
        "podSelector"
    } else {
        "selector"
    };
    let value = if p.from_k8s {
        ""
    } else {
        p.selector_v3.as_str()
    };
    f = match super::find_field_line(m, &p.loc.path, p.loc.line, field, value) {
        Some((l, t)) => f.evidence(p.loc.clone().with_line(l).evidence(t)),
        None => f.evidence(p.loc.evidence(format!("{} {}", kind.as_str(), p.display))),
    };
    if let Some(&i) = selected.first() {
        let e = &m.endpoints[i];
        f = f.evidence(super::endpoint_without_policy::endpoint_evidence(m, e));
    }
    let ns = p
        .namespace()
        .map(|n| format!(" -n {}", super::shell_quote(n)))
        .unwrap_or_default();
    let enforce_kind = if p.from_k8s {
        "a Kubernetes NetworkPolicy (apiVersion networking.k8s.io/v1)".to_string()
    } else {
        format!("a {}", target.as_str())
    };
    f.confirm(format!(
        "kubectl get {}{ns} {} -o yaml",
        resource_name(kind),
        super::shell_quote(&p.policy_ref.name)
    ))
    .fix(format!(
        "If the preview is what you want, enforce it: apply the same spec as {enforce_kind} (change kind, drop stagedAction), or use Enforce in the Calico UI; otherwise delete the staged policy."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    // CAL015-staged-policies: the demo bundle plus cluster/calico/stagednetworkpolicies.yaml
    // (deny-web: Set, allow-to-backend: Delete, selects-nothing: matches no pod).

    fn findings(case: &str) -> Vec<Finding> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/checks")
            .join(case);
        crate::analyze(&dir)
            .expect("fixture opens")
            .findings
            .into_iter()
            .filter(|f| f.code == CHECK.code)
            .collect()
    }

    #[test]
    fn staged_policies_that_select_endpoints_are_reported_and_the_others_not() {
        let found = findings("CAL015-staged-policies");
        let names: Vec<&str> = found.iter().map(|f| f.subjects[0].name.as_str()).collect();
        assert_eq!(names, vec!["demo/allow-to-backend", "demo/deny-web"]);
        let web = &found[1];
        assert_eq!(web.node, None);
        assert_eq!(web.subjects[0].kind, "policy");
        assert!(
            web.subjects
                .iter()
                .any(|s| s.kind == "endpoint" && s.name == "demo/web")
        );
        assert_eq!(
            web.evidence[0].path,
            "cluster/calico/stagednetworkpolicies.yaml"
        );
        assert_eq!(web.evidence[0].line, 15);
        assert_eq!(web.evidence[0].excerpt.trim(), "selector: app == 'web'");
        assert_eq!(
            web.evidence[1].path,
            "cluster/calico/workloadendpoints.yaml"
        );
        assert_eq!(web.evidence[1].line, 18);
        assert_eq!(
            web.confirm.as_deref(),
            Some("kubectl get stagednetworkpolicies.projectcalico.org -n demo deny-web -o yaml")
        );
    }

    #[test]
    fn a_staged_delete_names_the_enforced_policy_it_would_remove() {
        let found = findings("CAL015-staged-policies");
        let del = &found[0];
        assert!(
            del.message.contains(
                "previews removing NetworkPolicy demo/allow-to-backend, which is still enforced"
            ),
            "{}",
            del.message
        );
        assert_eq!(del.evidence[0].line, 27);
    }
}
