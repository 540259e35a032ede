//! CAL063: established connections between endpoints that the current policies would deny.

use std::collections::BTreeSet;

use super::{Check, Evidence, Finding, Severity, Step};
use crate::model::Model;
use crate::model::flows::entry_text;
use crate::trace::{flow, intent};

pub const CHECK: Check = Check {
    code: "CAL063",
    name: "established-flow-denied-by-policy",
    severity: Severity::Warning,
    step: Step::PacketPath,
    doc: r#"
## What it finds
A connection in a node's conntrack table, established (TCP `ESTABLISHED`, or replied UDP)
between two endpoints of the bundle, that the current policies would deny if it started now:
the policy verdict is computed offline exactly as for `calisnap trace` (tiers and policies in
Felix's order).

## Why it matters
Felix's endpoint chains accept `RELATED,ESTABLISHED` packets before any policy, so a
connection opened before a policy change keeps working until it closes, while new connections
between the same pods are dropped. "It works from one client but not from another" often is
exactly this.

## Example
`demo/client → demo/web:80` is established on node-1, but the only policy selecting `web`
admits `app=allowed` only.

## How to confirm by hand
`conntrack -L -s <src ip> -d <dst ip>` on the node; `calisnap trace <bundle> --from <src> --to <dst>:<port>`.

## What to do
If the policy is right, the old connections will keep working until they end: restart the
client, or flush them with `conntrack -D -s <src ip> -d <dst ip>`. If the connection should be
allowed, fix the policy.
"#,
    run,
};

/// Distinct flows evaluated per node, at most (a conntrack table can hold a million entries).
const MAX_FLOWS: usize = 2_000;

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    if !m.has_cluster_resources() {
        return;
    }
    let by_ip = m.endpoints_by_ip();
    for node in &m.nodes {
        let mut seen = BTreeSet::new();
        for ct in &node.conntrack {
            // Established flows by (source, destination, protocol, port), in the order each
            // first appears: the first entry of a flow is its evidence.
            for g in ct.data.established.iter() {
                let e = &g.first;
                let (Some(s), Some(d)) = (by_ip.get(g.key.src), by_ip.get(g.key.dst)) else {
                    continue;
                };
                let dport = g.key.dport;
                if seen.len() >= MAX_FLOWS || !seen.insert((s, d, g.key.proto, dport)) {
                    continue;
                }
                let f = flow::Flow {
                    src: flow::endpoint_end(m, s, e.orig.src),
                    dst: flow::endpoint_end(m, d, e.orig.dst),
                    protocol: e.proto,
                    dport,
                };
                let iv = intent::evaluate(m, &f);
                if iv.verdict != intent::Verdict::Deny {
                    continue;
                }
                let deciding = [&iv.ingress, &iv.egress]
                    .into_iter()
                    .filter(|d| d.verdict == intent::Verdict::Deny)
                    .find_map(|d| d.deciding.clone());
                let port = dport.map(|p| format!(":{p}")).unwrap_or_default();
                let mut finding = Finding::of(
                    &CHECK,
                    format!(
                        "Established {} → {}{port} would be denied now",
                        f.src.label, f.dst.label
                    ),
                    format!(
                        "{} → {}{port} is established in {}'s conntrack table, but the current policies deny it{}: it works only because Felix accepts established connections before policy.",
                        f.src.label,
                        f.dst.label,
                        node.name,
                        deciding
                            .as_ref()
                            .map(|h| format!(" ({} in {})", h.action.as_str(), h.policy))
                            .unwrap_or_default()
                    ),
                )
                .on_node(&node.name)
                .subject("endpoint", &f.src.label)
                .subject("endpoint", &f.dst.label)
                .evidence(Evidence {
                    path: ct.path().to_string(),
                    line: e.line as usize,
                    excerpt: super::line_text(m, ct.path(), e.line as usize)
                        .unwrap_or_else(|| entry_text(e)),
                })
                .confirm(format!(
                    "conntrack -L -s {} -d {}   # on {}",
                    e.orig.src, e.orig.dst, node.name
                ))
                .fix(format!(
                    "If the policy is right, end the old connections (conntrack -D -s {} -d {}); otherwise allow the flow in the policy.",
                    e.orig.src, e.orig.dst
                ));
                if let Some(h) = &deciding {
                    finding = finding.subject("policy", &h.policy);
                    if let (Some(p), Some(l)) = (&h.path, h.rule_line.or(h.line)) {
                        finding = finding.evidence(Evidence {
                            path: p.clone(),
                            line: l,
                            excerpt: super::line_text(m, p, l).unwrap_or_default(),
                        });
                    }
                }
                out.push(finding);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn analyze(rel: &str) -> crate::Analysis {
        crate::analyze(&Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
    }

    #[test]
    fn an_established_connection_the_policy_now_denies_is_reported_at_its_conntrack_line() {
        let a = analyze("testdata/checks/CAL063-established-denied");
        let f: Vec<_> = a.findings.iter().filter(|f| f.code == "CAL063").collect();
        assert_eq!(f.len(), 1, "{f:#?}");
        let f = f[0];
        assert_eq!(f.node.as_deref(), Some("node-1"));
        let has = |k: &str, n: &str| f.subjects.iter().any(|s| s.kind == k && s.name == n);
        assert!(has("endpoint", "demo/client") && has("endpoint", "demo/web"));
        assert!(
            has("policy", "demo/knp.default.trace-test"),
            "{:?}",
            f.subjects
        );
        assert_eq!(f.evidence[0].path, "nodes/node-1/conntrack.txt");
        assert_eq!(f.evidence[0].line, 5);
        assert!(
            f.evidence[0]
                .excerpt
                .contains("src=10.65.0.8 dst=10.65.0.7")
        );
    }

    #[test]
    fn established_connections_the_policies_allow_are_not_reported() {
        // The demo's established allowed → web:80 is admitted by trace-test.
        let a = analyze("testdata/bundles/calico-bundle-demo-20261125T140215Z");
        assert!(!a.findings.iter().any(|f| f.code == "CAL063"));
    }
}
