//! CAL082: NodePort / LoadBalancer services behind host endpoints whose policies drop
//! node-port traffic, with no `preDNAT: true` policy allowing the node port (Calico's
//! documented way to police node ports); and host endpoints without their `cali-fh-` /
//! `cali-th-` chains on their node.

use std::collections::BTreeSet;

use super::{Check, Evidence, Finding, Severity, Step};
use crate::calico::names::Direction;
use crate::model::{EndpointKind, Model, Policy, PolicyRule, Sourced};
use crate::parse::resources::{Port, Service, ServicePort};

pub const CHECK: Check = Check {
    code: "CAL082",
    name: "nodeport-needs-prednat",
    severity: Severity::Warning,
    step: Step::PoliciesPresent,
    doc: r#"
## What it finds
- A Service of type NodePort or LoadBalancer while host endpoints exist that an enforced
  GlobalNetworkPolicy would make drop node-port traffic — a `preDNAT: true` policy with a Deny
  rule covering the node port, or an `applyOnForward: true` ingress policy (which sees the
  traffic after kube-proxy's DNAT and ends in the tier's drop) — and no `preDNAT: true`
  policy selecting those host endpoints has an Allow rule for the node port and protocol.
- A host endpoint whose `cali-fh-<iface>` / `cali-th-<iface>` chain is missing from its node's
  `iptables-save`.

## Why it matters
kube-proxy rewrites node-port traffic to a pod address before the filter table sees it, so
normal and forward host-endpoint policy can no longer tell which node port was used: Calico's
documented recipe is a `preDNAT: true, applyOnForward: true` GlobalNetworkPolicy that allows
the node ports in front of the deny. Without it, clients outside the cluster time out on the
node port. A host endpoint without chains is not policed at all on that node (usually its
interface name does not exist there).

## Example
Service `shop/web` (NodePort 31080/TCP); GlobalNetworkPolicy `deny-external` (preDNAT, Deny)
selects host endpoint `node-1-eth0`; no preDNAT policy allows 31080.

## How to confirm by hand
`kubectl get svc -A -o wide | grep -E 'NodePort|LoadBalancer'`; `calicoctl get
globalnetworkpolicy -o yaml` (look for `preDNAT: true`); `iptables-save -t mangle | grep
cali-fh-` on the node; for chains, `iptables-save -t filter | grep -e cali-fh- -e cali-th-`.

## What to do
Add a GlobalNetworkPolicy with `preDNAT: true`, `applyOnForward: true`, the host endpoints'
selector and an ingress Allow for the node ports (ordered before the deny), as in Calico's
"Apply policy to Kubernetes node ports" guide. For a missing chain, make the HostEndpoint's
`interfaceName` match the node's interface (or use `expectedIPs`) and check the Felix log.
"#,
    run,
};

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    node_ports(m, out);
    missing_chains(m, out);
}

// ---------------------------------------------------------------------------------------
// Node ports

fn hosts_of<'a>(m: &'a Model<'_>, pi: usize) -> impl Iterator<Item = usize> + 'a {
    m.policy_endpoints[pi]
        .iter()
        .copied()
        .filter(|&e| m.endpoints[e].kind == EndpointKind::Host)
}

fn protocol_matches(rule: &PolicyRule, proto: &str) -> bool {
    rule.protocol.as_deref().is_none_or(|p| {
        p.eq_ignore_ascii_case(proto)
            || (proto == "TCP" && p == "6")
            || (proto == "UDP" && p == "17")
            || (proto == "SCTP" && p == "132")
    })
}

fn port_in(ports: &[Port], port: u16) -> bool {
    ports.iter().any(|p| match p {
        Port::Number(n) => *n == port,
        Port::Range(a, b) => (*a..=*b).contains(&port),
        Port::Named(_) => false,
    })
}

/// The rule matches traffic to `port`/`proto` (no port list, or one holding the port).
fn covers(rule: &PolicyRule, port: u16, proto: &str) -> bool {
    rule.direction == Direction::Ingress
        && protocol_matches(rule, proto)
        && (rule.dst.ports.is_empty() || port_in(&rule.dst.ports, port))
        && !port_in(&rule.dst.not_ports, port)
}

/// The rule matches every source (no selector, no nets).
fn any_source(rule: &PolicyRule) -> bool {
    let s = &rule.src;
    s.positive_raw.is_none()
        && s.negated_raw.is_none()
        && s.nets.is_empty()
        && s.not_nets.is_empty()
        && s.service.is_none()
}

/// How an enforced policy selecting host endpoints drops traffic from any client to the node
/// port, if it does: a catch-all Deny in a preDNAT policy, or an applyOnForward policy.
fn drops(p: &Policy, port: u16, proto: &str) -> Option<(String, usize)> {
    if !p.types.governs(Direction::Ingress) {
        return None;
    }
    if p.pre_dnat {
        return p
            .rules_in(Direction::Ingress)
            .find(|r| {
                r.action.eq_ignore_ascii_case("deny") && covers(r, port, proto) && any_source(r)
            })
            .map(|r| {
                (
                    format!("preDNAT rule ingress[{}] denies it", r.index),
                    r.line,
                )
            });
    }
    if p.apply_on_forward && !p.do_not_track {
        let allows_all = p.rules_in(Direction::Ingress).any(|r| {
            r.action.eq_ignore_ascii_case("allow")
                && r.protocol.is_none()
                && any_source(r)
                && r.dst.ports.is_empty()
                && r.dst.nets.is_empty()
                && r.dst.positive_raw.is_none()
        });
        if !allows_all {
            return Some((
                "applyOnForward ingress policy sees the traffic only after DNAT, and its tier ends in a drop".to_string(),
                p.loc.line,
            ));
        }
    }
    None
}

/// A preDNAT policy's Allow rule for the node port: one that names the port, or one that
/// allows every source to every port.
fn allows(p: &Policy, port: u16, proto: &str) -> bool {
    p.pre_dnat
        && p.types.governs(Direction::Ingress)
        && p.rules_in(Direction::Ingress).any(|r| {
            r.action.eq_ignore_ascii_case("allow")
                && covers(r, port, proto)
                && (!r.dst.ports.is_empty() || any_source(r))
        })
}

struct Blocked<'a> {
    port: &'a ServicePort,
    proto: String,
    /// (policy index, how, line)
    by: Vec<(usize, String, usize)>,
    hosts: BTreeSet<usize>,
}

fn node_ports(m: &Model<'_>, out: &mut Vec<Finding>) {
    if !m.endpoints.iter().any(|e| e.kind == EndpointKind::Host) {
        return;
    }
    let enforced: Vec<usize> = (0..m.policies.len())
        .filter(|&i| {
            let p = &m.policies[i];
            p.enforced() && !p.policy_ref.kind.is_namespaced() && hosts_of(m, i).next().is_some()
        })
        .collect();
    if enforced.is_empty() {
        return;
    }
    for svc in &m.resources.services {
        let t = svc.item.service_type.as_str();
        if t != "NodePort" && t != "LoadBalancer" {
            continue;
        }
        let mut blocked: Vec<Blocked<'_>> = Vec::new();
        for sp in svc.item.ports.iter().filter(|p| p.node_port > 0) {
            let proto = sp
                .protocol
                .clone()
                .unwrap_or_else(|| "TCP".to_string())
                .to_ascii_uppercase();
            let mut b = Blocked {
                port: sp,
                proto: proto.clone(),
                by: Vec::new(),
                hosts: BTreeSet::new(),
            };
            for &pi in &enforced {
                let p = &m.policies[pi];
                let Some((how, line)) = drops(p, sp.node_port, &proto) else {
                    continue;
                };
                // Host endpoints this policy drops for, that no preDNAT allow covers.
                let open: Vec<usize> = hosts_of(m, pi)
                    .filter(|&h| {
                        !enforced.iter().any(|&qi| {
                            m.policy_endpoints[qi].contains(&h)
                                && allows(&m.policies[qi], sp.node_port, &proto)
                        })
                    })
                    .collect();
                if !open.is_empty() {
                    b.by.push((pi, how, line));
                    b.hosts.extend(open);
                }
            }
            if !b.by.is_empty() {
                blocked.push(b);
            }
        }
        if !blocked.is_empty() {
            out.push(node_port_finding(m, svc, &blocked));
        }
    }
}

fn node_port_finding(
    m: &Model<'_>,
    svc: &Sourced<'_, Service>,
    blocked: &[Blocked<'_>],
) -> Finding {
    let s = svc.item;
    let ns = s
        .meta
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let key = format!("{ns}/{}", s.meta.name);
    let ports: Vec<String> = blocked
        .iter()
        .map(|b| format!("{}/{}", b.port.node_port, b.proto))
        .collect();
    let mut policies: Vec<usize> = blocked
        .iter()
        .flat_map(|b| b.by.iter().map(|x| x.0))
        .collect();
    policies.sort_unstable();
    policies.dedup();
    let hosts: BTreeSet<usize> = blocked
        .iter()
        .flat_map(|b| b.hosts.iter().copied())
        .collect();
    let host_names: Vec<&str> = hosts
        .iter()
        .take(5)
        .map(|&h| m.endpoints[h].key.as_str())
        .collect();
    let hows: Vec<String> = blocked
        .iter()
        .flat_map(|b| b.by.iter())
        .map(|(pi, how, _)| format!("{} ({how})", m.policies[*pi].display))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let message = format!(
        "Service {key} ({}) exposes node port{} {} on every node. Host endpoint{} {}{} {} selected by {}; no preDNAT policy selecting them allows {}, so node-port traffic from outside the cluster is dropped.",
        s.service_type,
        if ports.len() == 1 { "" } else { "s" },
        ports.join(", "),
        if hosts.len() == 1 { "" } else { "s" },
        host_names.join(", "),
        if hosts.len() > 5 {
            format!(" and {} more", hosts.len() - 5)
        } else {
            String::new()
        },
        if hosts.len() == 1 { "is" } else { "are" },
        hows.join("; "),
        if ports.len() == 1 { "it" } else { "them" }
    );
    let mut f = Finding::of(
        &CHECK,
        format!(
            "Node port{} {} of {key} blocked by host endpoint policy",
            if ports.len() == 1 { "" } else { "s" },
            ports.join(", ")
        ),
        message,
    )
    .subject("service", key.as_str());
    for &pi in policies.iter().take(5) {
        f = f.subject("policy", m.policies[pi].display.as_str());
    }
    for h in &host_names {
        f = f.subject("endpoint", *h);
    }
    let loc = svc.loc();
    for b in blocked.iter().take(3) {
        let np = b.port.node_port.to_string();
        f = f.evidence(
            super::find_field_line(m, &loc.path, loc.line, "nodePort", &np)
                .map(|(l, t)| loc.clone().with_line(l).evidence(t))
                .unwrap_or_else(|| loc.evidence(format!("nodePort: {np}"))),
        );
    }
    for (pi, _, line) in blocked.iter().flat_map(|b| b.by.iter()).take(3) {
        let p = &m.policies[*pi];
        f = f.evidence(Evidence {
            path: p.loc.path.clone(),
            line: *line,
            excerpt: super::line_text(m, &p.loc.path, *line)
                .unwrap_or_else(|| format!("GlobalNetworkPolicy {}", p.display)),
        });
    }
    if let Some(&h) = hosts.iter().next() {
        let e = &m.endpoints[h];
        f = f.evidence(super::endpoint_without_policy::endpoint_evidence(m, e));
    }
    let selector = policies
        .first()
        .map(|&pi| m.policies[pi].selector_v3.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "has(kubernetes-host)".to_string());
    let rules: Vec<String> = blocked
        .iter()
        .map(|b| {
            format!(
                "{{action: Allow, protocol: {}, destination: {{ports: [{}]}}}}",
                b.proto, b.port.node_port
            )
        })
        .collect();
    f.confirm(format!(
        "kubectl get svc -n {} {} -o wide; calicoctl get globalnetworkpolicy -o yaml | grep -E 'name:|preDNAT|applyOnForward|selector'",
        super::shell_quote(&ns),
        super::shell_quote(&s.meta.name)
    ))
    .fix(format!(
        "Allow the node port before DNAT, as Calico's node-port guide does: calicoctl apply a GlobalNetworkPolicy {{metadata: {{name: allow-nodeport-{}}}, spec: {{preDNAT: true, applyOnForward: true, order: 10, selector: \"{}\", ingress: [{}]}}}} (order it before the policy that denies).",
        s.meta.name,
        selector.replace('"', "'"),
        rules.join(", ")
    ))
}

// ---------------------------------------------------------------------------------------
// Host endpoint chains

fn missing_chains(m: &Model<'_>, out: &mut Vec<Finding>) {
    for node in m.nodes.iter().filter(|n| n.has_calico_iptables()) {
        let path = node
            .iptables
            .map(|d| d.path().to_string())
            .unwrap_or_default();
        for &ei in &node.local_endpoints {
            let e = &m.endpoints[ei];
            if e.kind != EndpointKind::Host {
                continue;
            }
            let missing: Vec<&str> = node
                .endpoint_chains
                .iter()
                .filter(|ec| ec.endpoint == ei && !ec.present)
                .map(|ec| ec.chain.as_str())
                .collect();
            if missing.is_empty() {
                continue;
            }
            let iface = e.iface.clone().unwrap_or_default();
            let mut f = Finding::of(
                &CHECK,
                format!("Host endpoint {} has no {} on {}", e.key, missing.join(" / "), node.name),
                format!(
                    "HostEndpoint {} (interface {iface}) is on node {}, but {} {} not in its iptables-save: Felix has not programmed the host endpoint, so traffic through {iface} is not policed (usually the interface does not exist on the node, or Felix failed to apply it).",
                    e.key,
                    node.name,
                    missing.join(" and "),
                    if missing.len() == 1 { "is" } else { "are" }
                ),
            )
            .on_node(&node.name)
            .subject("endpoint", e.key.as_str());
            for c in &missing {
                f = f.subject("chain", *c);
            }
            f = f
                .evidence(super::endpoint_without_policy::endpoint_evidence(m, e))
                .evidence(Evidence {
                    path: path.clone(),
                    line: 0,
                    excerpt: format!("(no chain {} in *filter)", missing.join(", ")),
                });
            let greps: Vec<String> = missing
                .iter()
                .map(|c| format!("-e {}", super::shell_quote(c)))
                .collect();
            out.push(
                f.confirm(format!(
                    "iptables-save -t filter | grep -F {}   # on {}; ip link show {}",
                    greps.join(" "),
                    node.name,
                    super::shell_quote(&iface)
                ))
                .fix(format!(
                    "Make the HostEndpoint's interfaceName match an interface of {} exactly (or use expectedIPs), then look in its Felix log for errors about the host endpoint.",
                    node.name
                )),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    // CAL082-nodeport-without-prednat: the demo bundle plus two NodePort services and a
    // ClusterIP one, two HostEndpoints (eth0 on each node), the preDNAT policies of Calico's
    // node-port guide with the allow for only one port, and cali-fh-/cali-th-eth0 on node-1.

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
    fn a_node_port_denied_before_dnat_without_a_prednat_allow_is_reported() {
        let found = findings("CAL082-nodeport-without-prednat");
        let ports: Vec<&Finding> = found
            .iter()
            .filter(|f| f.subjects[0].kind == "service")
            .collect();
        // demo/backend's 31081 has its preDNAT allow; demo/client is ClusterIP.
        assert_eq!(ports.len(), 1, "{found:#?}");
        let f = ports[0];
        assert_eq!(f.subjects[0].name, "demo/web");
        assert_eq!(
            f.title,
            "Node port 31080/TCP of demo/web blocked by host endpoint policy"
        );
        let has =
            |kind: &str, name: &str| f.subjects.iter().any(|s| s.kind == kind && s.name == name);
        assert!(has("policy", "allow-cluster-internal-ingress-only"));
        assert!(has("endpoint", "node-1-eth0"));
        assert!(has("endpoint", "node-2-eth0"));
        let ev: Vec<(&str, usize)> = f
            .evidence
            .iter()
            .map(|e| (e.path.as_str(), e.line))
            .collect();
        assert_eq!(
            ev,
            vec![
                ("cluster/k8s/services.yaml", 16),
                ("cluster/calico/globalnetworkpolicies.yaml", 15),
                ("cluster/calico/hostendpoints.yaml", 12),
            ]
        );
        assert_eq!(f.evidence[1].excerpt.trim(), "- action: Deny");
        let fix = f.fix.as_deref().unwrap_or("");
        assert!(fix.contains("preDNAT: true, applyOnForward: true"), "{fix}");
        assert!(fix.contains("destination: {ports: [31080]}"), "{fix}");
    }

    #[test]
    fn a_host_endpoint_without_chains_on_its_node_is_reported() {
        let found = findings("CAL082-nodeport-without-prednat");
        let chains: Vec<&Finding> = found
            .iter()
            .filter(|f| f.subjects[0].kind == "endpoint")
            .collect();
        // node-1 has cali-fh-eth0 and cali-th-eth0; node-2 has neither.
        assert_eq!(chains.len(), 1, "{found:#?}");
        let f = chains[0];
        assert_eq!(f.node.as_deref(), Some("node-2"));
        assert_eq!(f.subjects[0].name, "node-2-eth0");
        assert!(
            f.subjects
                .iter()
                .any(|s| s.kind == "chain" && s.name == "cali-fh-eth0")
        );
        assert!(
            f.subjects
                .iter()
                .any(|s| s.kind == "chain" && s.name == "cali-th-eth0")
        );
        assert_eq!(f.evidence[0].path, "cluster/calico/hostendpoints.yaml");
        assert_eq!(f.evidence[0].line, 23);
        assert_eq!(f.evidence[1].path, "nodes/node-2/iptables-save.txt");
    }

    #[test]
    fn without_host_endpoints_node_ports_are_not_policed_and_nothing_is_reported() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/bundles/calico-bundle-demo-20261125T140215Z");
        let a = crate::analyze(&dir).expect("demo opens");
        assert!(a.findings.iter().all(|f| f.code != CHECK.code));
    }
}
