//! CAL014: workload endpoints that no enforced policy selects in a direction, so their
//! profiles decide that direction's traffic; grouped per namespace.

use std::collections::BTreeMap;

use super::{Check, Evidence, Finding, Severity, Step};
use crate::calico::labels::NAMESPACE_PROFILE_PREFIX;
use crate::calico::names::Direction;
use crate::model::node::Owner;
use crate::model::{EndpointKind, Model};
use crate::parse::resources::{self, Profile};

pub const CHECK: Check = Check {
    code: "CAL014",
    name: "endpoint-without-policy",
    severity: Severity::Info,
    step: Step::PoliciesPresent,
    doc: r#"
## What it finds
Workload endpoints that no enforced policy (NetworkPolicy, GlobalNetworkPolicy or Kubernetes
NetworkPolicy whose selector matches them and whose `types` cover the direction) selects, for
ingress or for egress, grouped per namespace, with what their profiles then do.

## Why it matters
An endpoint without policy in a direction has no "Start of tier" rules in its `cali-tw-`
(ingress) or `cali-fw-` (egress) chain: its traffic goes straight to its profiles, and the
`kns.<namespace>` profile Calico creates for every Kubernetes namespace allows everything.
This is the usual answer to "traffic I expected to be denied is allowed": the deny was written
for other pods, or only for the other direction.

## Example
Namespace `demo`: `demo/allowed` and `demo/client` have no ingress policy, and no pod has an
egress policy; `kns.demo` allows all, so that traffic is allowed.

## How to confirm by hand
`iptables-save -t filter | grep -F -- '-A cali-tw-<iface> '` on the pod's node shows only the
jumps to `cali-pri-kns.<ns>` and `cali-pri-ksa.<ns>.<sa>`; `calicoctl get networkpolicy -n <ns>
-o wide` and `calicoctl get globalnetworkpolicy -o wide` list the selectors.

## What to do
Nothing, if that traffic is meant to be open. Otherwise add a default-deny policy for the
namespace (a Kubernetes NetworkPolicy with `podSelector: {}` and both `policyTypes`, or a
Calico GlobalNetworkPolicy) and allow what is needed on top.
"#,
    run,
};

/// Endpoints named per direction in the message.
const LISTED: usize = 10;

fn dir_name(d: Direction) -> &'static str {
    match d {
        Direction::Ingress => "ingress",
        Direction::Egress => "egress",
    }
}

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    let mut covered = vec![[false; 2]; m.endpoints.len()];
    for (pi, p) in m.policies.iter().enumerate() {
        // preDNAT and untracked policies only ever apply to host endpoints.
        if !p.enforced() || p.pre_dnat || p.do_not_track {
            continue;
        }
        for &e in &m.policy_endpoints[pi] {
            for (d, dir) in Direction::BOTH.iter().enumerate() {
                if p.types.governs(*dir) {
                    covered[e][d] = true;
                }
            }
        }
    }
    // Namespace → (workload endpoints, those without policy per direction).
    let mut by_ns: BTreeMap<&str, (usize, [Vec<usize>; 2])> = BTreeMap::new();
    for (i, e) in m.endpoints.iter().enumerate() {
        if e.kind != EndpointKind::Workload {
            continue;
        }
        let entry = by_ns
            .entry(e.namespace.as_deref().unwrap_or(""))
            .or_default();
        entry.0 += 1;
        for (list, is_covered) in entry.1.iter_mut().zip(covered[i]) {
            if !is_covered {
                list.push(i);
            }
        }
    }
    for (ns, (total, bare)) in by_ns {
        if bare.iter().all(Vec::is_empty) {
            continue;
        }
        out.push(finding(m, ns, total, &bare));
    }
}

/// The line that names an endpoint in its resource: `interfaceName:` (WorkloadEndpoint,
/// HostEndpoint), else `pod:` or `name:`, else the object's first line.
pub(crate) fn endpoint_evidence(m: &Model<'_>, e: &crate::model::Endpoint) -> Evidence {
    let path = &e.loc.path;
    let from = e.loc.line;
    e.iface
        .as_deref()
        .filter(|_| e.source_kind != "Pod")
        .and_then(|i| super::find_field_line(m, path, from, "interfaceName", i))
        .or_else(|| super::find_field_line(m, path, from, "pod", &e.name))
        .or_else(|| super::find_field_line(m, path, from, "name", &e.name))
        .map(|(l, t)| e.loc.clone().with_line(l).evidence(t))
        .unwrap_or_else(|| {
            e.loc.evidence(
                super::line_text(m, path, from)
                    .unwrap_or_else(|| format!("{} {}", e.source_kind, e.key)),
            )
        })
}

/// What a direction's profiles do for traffic no policy handled.
fn profile_effect(m: &Model<'_>, profiles: &[String], dir: Direction) -> String {
    let mut parts = Vec::new();
    for id in profiles {
        let effect = match find_profile(m, id) {
            Some(p) => rules_effect(match dir {
                Direction::Ingress => &p.item.ingress,
                Direction::Egress => &p.item.egress,
            }),
            // Calico's namespace profiles allow everything; service-account ones have no rules.
            None if id.starts_with(NAMESPACE_PROFILE_PREFIX) => "allows all".to_string(),
            None => "has no rules".to_string(),
        };
        parts.push(format!("{id} {effect}"));
    }
    if parts.is_empty() {
        "the endpoint has no profiles, so its chain drops it (\"Drop if no profiles matched\")"
            .to_string()
    } else {
        parts.join(", ")
    }
}

fn find_profile<'a, 'b>(
    m: &'a Model<'b>,
    id: &str,
) -> Option<&'a crate::model::Sourced<'b, Profile>> {
    m.resources.profiles.iter().find(|p| p.item.meta.name == id)
}

fn is_match_all(r: &resources::Rule) -> bool {
    r.protocol.is_none()
        && r.not_protocol.is_none()
        && r.icmp.is_none()
        && r.not_icmp.is_none()
        && r.ip_version.is_none()
        && r.http.is_none()
        && r.source == resources::EntityRule::default()
        && r.destination == resources::EntityRule::default()
}

fn rules_effect(rules: &[resources::Rule]) -> String {
    match rules.first() {
        None => "has no rules".to_string(),
        Some(r) if is_match_all(r) && r.action.eq_ignore_ascii_case("allow") => {
            "allows all".to_string()
        }
        Some(r) if is_match_all(r) && r.action.eq_ignore_ascii_case("deny") => {
            "denies all".to_string()
        }
        Some(_) => format!("decides by its {} rule(s)", rules.len()),
    }
}

fn finding(m: &Model<'_>, ns: &str, total: usize, bare: &[Vec<usize>; 2]) -> Finding {
    let mut parts = Vec::new();
    let mut effects = Vec::new();
    for (d, dir) in Direction::BOTH.iter().enumerate() {
        let list = &bare[d];
        if list.is_empty() {
            continue;
        }
        let mut keys: Vec<&str> = list.iter().map(|&i| m.endpoints[i].key.as_str()).collect();
        keys.sort_unstable();
        let more = keys.len().saturating_sub(LISTED);
        parts.push(format!(
            "{} of its {total} workload endpoints for {} ({}{})",
            list.len(),
            dir_name(*dir),
            keys.iter()
                .take(LISTED)
                .copied()
                .collect::<Vec<_>>()
                .join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
        let profiles = &m.endpoints[list[0]].profiles;
        effects.push(format!(
            "{}: {}",
            dir_name(*dir),
            profile_effect(m, profiles, *dir)
        ));
    }
    let shown_ns = if ns.is_empty() { "(none)" } else { ns };
    let pieces: Vec<String> = Direction::BOTH
        .iter()
        .enumerate()
        .filter(|(d, _)| !bare[*d].is_empty())
        .map(|(d, dir)| {
            format!(
                "{} of {total} endpoints without {} policy",
                bare[d].len(),
                dir_name(*dir)
            )
        })
        .collect();
    let title = format!("{shown_ns}: {}", pieces.join(", "));
    let message = format!(
        "In namespace {shown_ns}, no enforced policy selects {}. That traffic is decided by the endpoints' profiles ({}): it is not restricted by any NetworkPolicy.",
        parts.join(" and "),
        effects.join("; ")
    );
    let mut f = Finding::of(&CHECK, title, message).subject("namespace", shown_ns);
    let profile_id = format!("{NAMESPACE_PROFILE_PREFIX}{ns}");
    let any: Vec<usize> = {
        let mut v: Vec<usize> = bare.iter().flatten().copied().collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    if m.endpoints[any[0]].profiles.contains(&profile_id) {
        f = f.subject("profile", profile_id.as_str());
    }
    for &i in any.iter().take(LISTED) {
        f = f.subject("endpoint", m.endpoints[i].key.as_str());
    }
    // The profile rule that lets the traffic through, when the profile is in the bundle.
    if let Some(p) = find_profile(m, &profile_id) {
        let loc = p.loc();
        let ev = super::find_field_line(m, &loc.path, loc.line, "action", "Allow")
            .map(|(l, t)| loc.clone().with_line(l).evidence(t))
            .unwrap_or_else(|| loc.evidence(format!("Profile {profile_id}")));
        f = f.evidence(ev);
    }
    for &i in any.iter().take(3) {
        f = f.evidence(endpoint_evidence(m, &m.endpoints[i]));
    }
    // The endpoint chain going straight to the profiles, from the first node that has it.
    let mut confirm = Vec::new();
    for (d, dir) in Direction::BOTH.iter().enumerate() {
        let jump = bare[d].iter().find_map(|&i| {
            m.nodes.iter().find_map(|n| {
                let ec = n
                    .endpoint_chains
                    .iter()
                    .find(|ec| ec.endpoint == i && ec.direction == *dir && ec.present)?;
                let j = ec
                    .actual
                    .iter()
                    .find(|j| matches!(j.owner, Owner::Profile(_)))?;
                Some((n, ec, j))
            })
        });
        if let Some((n, ec, j)) = jump {
            let path = n.iptables.map(|d| d.path().to_string()).unwrap_or_default();
            f = f.evidence(Evidence {
                path,
                line: j.line,
                excerpt: j.text.clone(),
            });
            confirm.push(format!(
                "iptables-save -t filter | grep -F -- {}   # on {}: no cali-pi-/cali-po- jumps, only profiles",
                super::shell_quote(&format!("-A {} ", ec.chain)),
                n.name
            ));
        }
    }
    confirm.push(format!(
        "calicoctl get networkpolicy -n {} -o wide; calicoctl get globalnetworkpolicy -o wide",
        super::shell_quote(shown_ns)
    ));
    f.confirm(confirm.join("; ")).fix(format!(
        "Nothing to do if this traffic is meant to be open. Otherwise add a default deny for namespace {shown_ns} (a Kubernetes NetworkPolicy with `podSelector: {{}}` and policyTypes [Ingress, Egress]) and allow what is needed on top."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    // CAL014-egress-open: the demo bundle plus a Kubernetes default-deny-ingress policy for
    // namespace demo (cluster/k8s/networkpolicies.yaml), so only egress is left to kns.demo.

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
    fn a_namespace_with_an_ingress_default_deny_is_reported_for_egress_only() {
        let found = findings("CAL014-egress-open");
        assert_eq!(found.len(), 1, "{found:#?}");
        let f = &found[0];
        assert_eq!(f.node, None);
        assert_eq!(f.title, "demo: 4 of 4 endpoints without egress policy");
        assert!(!f.message.contains("ingress"), "{}", f.message);
        assert!(f.message.contains("kns.demo allows all"), "{}", f.message);
        let has =
            |kind: &str, name: &str| f.subjects.iter().any(|s| s.kind == kind && s.name == name);
        assert!(has("namespace", "demo"));
        assert!(has("profile", "kns.demo"));
        for e in ["demo/web", "demo/client", "demo/backend", "demo/allowed"] {
            assert!(has("endpoint", e), "{e} in {:?}", f.subjects);
        }
        assert_eq!(f.evidence[0].path, "cluster/calico/profiles.yaml");
        assert_eq!(f.evidence[0].line, 9);
        assert_eq!(f.evidence[0].excerpt.trim(), "- action: Allow");
        // demo/web's egress chain goes straight to the namespace profile.
        let ipt = f
            .evidence
            .iter()
            .find(|e| e.path == "nodes/node-1/iptables-save.txt")
            .expect("iptables evidence");
        assert_eq!(ipt.line, 65);
        assert!(ipt.excerpt.contains("-A cali-fw-cali46b6bee22de"));
        assert!(ipt.excerpt.ends_with("-j cali-pro-kns.demo"));
        assert!(
            f.confirm
                .as_deref()
                .is_some_and(|c| c.contains("'-A cali-fw-cali46b6bee22de '")),
            "{:?}",
            f.confirm
        );
    }

    #[test]
    fn endpoints_every_direction_of_which_a_policy_covers_are_not_reported() {
        let found = findings("CAL014-egress-open");
        assert!(
            !found[0].message.contains("for ingress"),
            "{}",
            found[0].message
        );
    }
}
