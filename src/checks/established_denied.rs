//! CAL063: established connections between endpoints that the current policies would deny.

use super::{Check, Evidence, Finding, Severity, Step};
use crate::calico::names::Direction;
use crate::model::Model;
use crate::model::flows::entry_text;
use crate::parse::conntrack::Entry;
use crate::trace::intent;

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

Flows to the same destination port that the same policy rule denies are one finding, naming
up to 10 source endpoints and quoting the first conntrack lines. At most 500 distinct flows
(source, destination, protocol, port) are evaluated per node, the first in the table, and
10,000 in all (with more than 20 nodes each gets an equal share, at least 50); the findings of
a node with more flows say so.

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

/// Distinct flows evaluated per node, at most (a conntrack table can hold a million entries,
/// and each flow is a full policy evaluation). Findings of a node past it say so.
const MAX_FLOWS: usize = 500;

/// Distinct flows evaluated in all: with many nodes each gets an equal share (at least
/// [`MIN_FLOWS`]), so the work stays proportional to the bundle.
const MAX_FLOWS_TOTAL: usize = 10_000;
const MIN_FLOWS: usize = 50;

/// Sources named in one finding; the rest are counted.
const MAX_SOURCES_SHOWN: usize = 10;

/// Conntrack evidence lines kept per finding.
const MAX_EVIDENCE: usize = 3;

/// One established flow the policies deny now.
struct Denied<'a> {
    src: usize,
    path: &'a str,
    /// The flow's first conntrack entry: its line is the evidence.
    entry: Entry,
}

/// Destination endpoint, protocol, port, and the deciding policy with its rule's line.
type GroupKey<'a> = (usize, u8, Option<u16>, Option<(&'a str, Option<usize>)>);

/// Denied flows to one destination port, decided by the same policy rule: one finding.
struct Group<'a> {
    dst: usize,
    dport: Option<u16>,
    /// The denying direction of the first flow: its deciding step is explained.
    decision: intent::Decision,
    flows: Vec<Denied<'a>>,
}

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    if !m.has_cluster_resources() {
        return;
    }
    use rayon::prelude::*;
    let by_ip = m.endpoints_by_ip();
    let with_conntrack = m.nodes.iter().filter(|n| !n.conntrack.is_empty()).count();
    let per_node_cap = (MAX_FLOWS_TOTAL / with_conntrack.max(1)).clamp(MIN_FLOWS, MAX_FLOWS);
    // Plans and compiled rules are the same for every node: shared, built on first use.
    let plans = intent::PlanCache::default();
    // Nodes are independent: evaluate them on the pool, keep node order.
    let per_node: Vec<Vec<Finding>> = m
        .nodes
        .par_iter()
        .map(|node| node_findings(m, &by_ip, &plans, node, per_node_cap))
        .collect();
    out.extend(per_node.into_iter().flatten());
}

fn node_findings<'b>(
    m: &Model<'b>,
    by_ip: &crate::model::flows::EndpointsByIp,
    plans: &intent::PlanCache<'b>,
    node: &crate::model::NodeModel<'_>,
    max_flows: usize,
) -> Vec<Finding> {
    let mut seen = foldhash::HashSet::default();
    // Keyed by destination, port and deciding rule, in the order first met.
    let mut groups: Vec<Group> = Vec::new();
    let mut group_of: foldhash::HashMap<GroupKey, usize> = Default::default();
    // Network sets holding each end's address, reused from flow to flow.
    let (mut src_sets, mut dst_sets) = (Vec::new(), Vec::new());
    for ct in &node.conntrack {
        // Established flows by (source, destination, protocol, port), in the order each
        // first appears: the first entry of a flow is its evidence.
        for g in ct.data.established.iter() {
            // Past the cap nothing more is evaluated (`capped` below says so).
            if seen.len() >= max_flows {
                break;
            }
            let e = &g.first;
            let (Some(s), Some(d)) = (by_ip.get(g.key.src), by_ip.get(g.key.dst)) else {
                continue;
            };
            let dport = g.key.dport;
            if !seen.insert((s, d, g.key.proto, dport)) {
                continue;
            }
            m.net_set_index.containing_into(e.orig.src, &mut src_sets);
            m.net_set_index.containing_into(e.orig.dst, &mut dst_sets);
            let f = intent::QuickFlow {
                src: intent::QuickEnd {
                    endpoint: Some(s),
                    ip: e.orig.src,
                    net_sets: &src_sets,
                },
                dst: intent::QuickEnd {
                    endpoint: Some(d),
                    ip: e.orig.dst,
                    net_sets: &dst_sets,
                },
                protocol: e.proto,
                dport,
            };
            // The verdict is Deny when either direction denies; ingress names the deciding
            // rule when both do. Only the verdict is computed here: the few flows a finding
            // shows are explained when it is written.
            let ingress = intent::decide_direction(m, &f, Direction::Ingress, plans);
            let decision = if ingress.verdict == intent::Verdict::Deny {
                ingress
            } else {
                let egress = intent::decide_direction(m, &f, Direction::Egress, plans);
                if egress.verdict != intent::Verdict::Deny {
                    continue;
                }
                egress
            };
            let key = (d, e.proto, dport, plans.deciding_key(m, &decision));
            let gi = *group_of.entry(key).or_insert_with(|| {
                groups.push(Group {
                    dst: d,
                    dport,
                    decision,
                    flows: Vec::new(),
                });
                groups.len() - 1
            });
            groups[gi].flows.push(Denied {
                src: s,
                path: ct.path(),
                entry: *e,
            });
        }
    }
    let capped = seen.len() >= max_flows;
    groups
        .into_iter()
        .map(|g| {
            let mut f = finding(m, plans, &node.name, g);
            if capped {
                f.message.push_str(&format!(
                    " Only the first {max_flows} distinct established flows between endpoints in {}'s table were evaluated.",
                    node.name
                ));
            }
            f
        })
        .collect()
}

fn finding<'b>(m: &Model<'b>, plans: &intent::PlanCache<'b>, node: &str, g: Group) -> Finding {
    let first = &g.flows[0];
    // The deciding step of the group's first flow, as `calisnap trace` explains it (a deny
    // needs no word about the flow itself).
    let deciding = plans.deciding_hit(m, None, &g.decision);
    let dst = &m.endpoints[g.dst].key;
    let port = g.dport.map(|p| format!(":{p}")).unwrap_or_default();
    let why = deciding
        .as_ref()
        .map(|h| format!(" ({} in {})", h.action.as_str(), h.policy))
        .unwrap_or_default();
    let mut sources: Vec<&str> = Vec::new();
    for f in &g.flows {
        let key = m.endpoints[f.src].key.as_str();
        if !sources.contains(&key) {
            sources.push(key);
        }
    }
    let (title, message) = if g.flows.len() == 1 {
        let src = sources[0];
        (
            format!("Established {src} → {dst}{port} would be denied now"),
            format!(
                "{src} → {dst}{port} is established in {node}'s conntrack table, but the current policies deny it{why}: it works only because Felix accepts established connections before policy."
            ),
        )
    } else {
        let shown = sources
            .iter()
            .take(MAX_SOURCES_SHOWN)
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        let more = sources.len().saturating_sub(MAX_SOURCES_SHOWN);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        (
            format!(
                "Established flows from {} endpoints → {dst}{port} would be denied now",
                sources.len()
            ),
            format!(
                "{} flows to {dst}{port} are established in {node}'s conntrack table (from {shown}{more}), but the current policies deny them{why}: they work only because Felix accepts established connections before policy.",
                g.flows.len()
            ),
        )
    };
    let mut finding = Finding::of(&CHECK, title, message).on_node(node);
    for src in sources.iter().take(MAX_SOURCES_SHOWN) {
        finding = finding.subject("endpoint", *src);
    }
    finding = finding.subject("endpoint", dst);
    for f in g.flows.iter().take(MAX_EVIDENCE) {
        let line = f.entry.line as usize;
        finding = finding.evidence(Evidence {
            path: f.path.to_string(),
            line,
            excerpt: super::line_text(m, f.path, line).unwrap_or_else(|| entry_text(&f.entry)),
        });
    }
    finding = finding
        .confirm(format!(
            "conntrack -L -s {} -d {}   # on {node}",
            first.entry.orig.src, first.entry.orig.dst
        ))
        .fix(format!(
            "If the policy is right, end the old connections (conntrack -D -s {} -d {}, for each source); otherwise allow the flow in the policy.",
            first.entry.orig.src, first.entry.orig.dst
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
    finding
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
    fn denied_flows_to_one_port_from_several_sources_are_one_finding() {
        // As above, plus backend → web:80 (denied by the same end of tier) and a second
        // client → web:80 connection (the same flow, counted once).
        let a = analyze("testdata/checks/CAL063-established-denied-grouped");
        let f: Vec<_> = a.findings.iter().filter(|f| f.code == "CAL063").collect();
        assert_eq!(f.len(), 1, "{f:#?}");
        let f = f[0];
        assert_eq!(
            f.title,
            "Established flows from 2 endpoints → demo/web:80 would be denied now"
        );
        assert!(
            f.message.starts_with("2 flows to demo/web:80"),
            "{}",
            f.message
        );
        let has = |k: &str, n: &str| f.subjects.iter().any(|s| s.kind == k && s.name == n);
        assert!(has("endpoint", "demo/client") && has("endpoint", "demo/backend"));
        assert!(has("endpoint", "demo/web") && has("policy", "demo/knp.default.trace-test"));
        let lines: Vec<usize> = f
            .evidence
            .iter()
            .filter(|e| e.path == "nodes/node-1/conntrack.txt")
            .map(|e| e.line)
            .collect();
        assert_eq!(lines, vec![5, 7]);
    }

    #[test]
    fn established_connections_the_policies_allow_are_not_reported() {
        // The demo's established allowed → web:80 is admitted by trace-test.
        let a = analyze("testdata/bundles/calico-bundle-demo-20261125T140215Z");
        assert!(!a.findings.iter().any(|f| f.code == "CAL063"));
    }
}
