//! CAL062: packets conntrack could not place in any flow (`invalid=` of `conntrack -S`, summed
//! over CPUs), per node, with the endpoint chains whose `--ctstate INVALID -j DROP` rule counted
//! some of them. Why a given packet was invalid is not in the bundle and not guessed at.

use super::{Check, Evidence, Finding, Severity, Step};
use crate::model::Model;
use crate::model::flows::{ChainOwners, EndpointsByIface, is_drop, packets};
use crate::model::node::NodeModel;
use crate::parse::iptables_save::{MatchKind, Rule};

pub const CHECK: Check = Check {
    code: "CAL062",
    name: "conntrack-invalid",
    severity: Severity::Info,
    step: Step::PacketPath,
    doc: r#"
## What it finds
The `invalid=` counters of `conntrack -S`, summed over CPUs, when they reach 1,000 on a node
(info), or 100,000 (warning). The endpoint chains whose `-m conntrack --ctstate INVALID -j DROP`
rule counted packets are listed with them: those are the pods whose packets Calico dropped as
invalid.

## Why it matters
A packet is invalid when conntrack cannot place it in a flow: a TCP segment outside the window,
a reply to a flow this node never saw (asymmetric routing: the request went through another
node or interface), a packet of a flow already removed, a bad checksum. Calico drops invalid
packets in every workload chain, so a pod on the wrong end of asymmetric routing sees its
connections hang or reset.

## Example
node-1: `cpu=0 found=0 invalid=81234 …` and `cpu=1 … invalid=40112 …` (121,346 in total);
`cali-tw-cali46b6bee22de` (ingress of `demo/web`) `[5120:307200] … --ctstate INVALID -j DROP`.

## How to confirm by hand
`conntrack -S` twice a minute apart on the node: the counters run since boot, so only their
growth tells a current problem. `iptables-save -c -t filter | grep -- '--ctstate INVALID'`
shows which endpoint chains drop them; `sysctl -w net.netfilter.nf_conntrack_log_invalid=255`
logs them to the kernel log for a while.

## What to do
Look for asymmetric routing (several interfaces or ECMP routes, replies leaving by another
node, `rp_filter`), MTU problems and middleboxes that rewrite TCP. For TCP window trouble
`net.netfilter.nf_conntrack_tcp_be_liberal=1` is the usual workaround (kube-proxy can set it).
"#,
    run,
};

/// `invalid=` totals at which the check reports (info), and at which it warns.
const INFO_AT: u64 = 1_000;
const WARN_AT: u64 = 100_000;

fn invalid_drop(r: &Rule) -> bool {
    is_drop(r)
        && r.matches.iter().any(|m| {
            !m.negated
                && matches!(&m.kind, MatchKind::ConnState(s) if s.iter().any(|x| x == "INVALID"))
        })
}

/// Endpoint chains' INVALID drops that counted packets, most first.
fn invalid_drops<'b>(
    m: &Model<'b>,
    node: &NodeModel<'b>,
    by_iface: &EndpointsByIface,
) -> Vec<(u64, String, Option<String>, Evidence)> {
    let owners = ChainOwners::new(m, node, by_iface);
    let mut out = Vec::new();
    for (dump, _) in node.ip_dumps() {
        for table in &dump.data.tables {
            for chain in &table.chains {
                for r in chain
                    .rules
                    .iter()
                    .filter(|r| invalid_drop(r) && packets(r) > 0)
                {
                    let Some(owner) = owners.owner(m, &chain.name) else {
                        continue;
                    };
                    out.push((
                        packets(r),
                        owner.describe(m),
                        owner.endpoint.map(|e| m.endpoints[e].key.clone()),
                        Evidence {
                            path: dump.path().to_string(),
                            line: r.line,
                            excerpt: r.text.to_string(),
                        },
                    ));
                }
            }
        }
    }
    out.sort_by(|a, b| b.0.cmp(&a.0).then(a.3.cmp(&b.3)));
    out
}

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    let by_iface = m.endpoints_by_iface();
    for node in &m.nodes {
        // One `-S` capture per node; a second one (a mixed file) would count the same packets.
        let Some(d) = node
            .conntrack
            .iter()
            .find(|d| !d.data.stats.cpus.is_empty())
        else {
            continue;
        };
        let stats = &d.data.stats;
        let Some(total) = stats.total("invalid") else {
            continue;
        };
        if total < INFO_AT {
            continue;
        }
        let of = |c: &crate::parse::conntrack::CpuStats| {
            c.counters
                .iter()
                .find(|(k, _)| k == "invalid")
                .map(|(_, v)| *v)
                .unwrap_or(0)
        };
        let mut cpus: Vec<_> = stats.cpus.iter().filter(|c| of(c) > 0).collect();
        cpus.sort_by(|a, b| of(b).cmp(&of(a)).then(a.line.cmp(&b.line)));
        let drops = invalid_drops(m, node, &by_iface);
        let dropped: Vec<String> = drops
            .iter()
            .take(5)
            .map(|(n, who, _, e)| format!("{who} ({n} packets, {}:{})", e.path, e.line))
            .collect();
        let calico = if dropped.is_empty() {
            " No endpoint chain's INVALID drop counted packets in the dump, so Calico's workload \
             chains did not drop them (or the dump has no counters)."
                .to_string()
        } else {
            format!(
                " Calico dropped invalid packets in the chains of: {}.",
                dropped.join("; ")
            )
        };
        let mut f = Finding::of(
            &CHECK,
            format!(
                "conntrack counted {total} invalid packets on {} ({} CPUs)",
                node.name,
                stats.cpus.len()
            ),
            format!(
                "`conntrack -S` on {} counts invalid={total} summed over {} CPUs: packets \
                 conntrack could not place in any flow since boot (out-of-window TCP, replies to \
                 flows the node never saw, packets of removed flows).{calico}",
                node.name,
                stats.cpus.len()
            ),
        )
        .severity(if total >= WARN_AT {
            Severity::Warning
        } else {
            Severity::Info
        })
        .on_node(&node.name)
        .subject("node", &node.name);
        for (_, _, ep, _) in drops.iter().take(5) {
            if let Some(ep) = ep {
                f = f.subject("endpoint", ep);
            }
        }
        for c in cpus.iter().take(3) {
            f = f.evidence(Evidence {
                path: d.path().to_string(),
                line: c.line,
                excerpt: super::line_text(m, d.path(), c.line)
                    .unwrap_or_else(|| format!("cpu={} invalid={}", c.cpu, of(c))),
            });
        }
        for (_, _, _, e) in drops.into_iter().take(5) {
            f = f.evidence(e);
        }
        out.push(
            f.confirm(format!(
                "conntrack -S; sleep 60; conntrack -S   # on {}: does invalid= grow?",
                node.name
            ))
            .fix(
                "Look for asymmetric routing (several interfaces or ECMP routes, replies leaving \
                 by another node, rp_filter), MTU problems and middleboxes that rewrite TCP; \
                 `sysctl -w net.netfilter.nf_conntrack_log_invalid=255` logs the packets for a \
                 while. For TCP window trouble, net.netfilter.nf_conntrack_tcp_be_liberal=1 is \
                 the usual workaround.",
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::checks::{Finding, Severity};

    fn findings(dir: &str) -> Vec<Finding> {
        crate::checks::testing::findings(dir, "CAL062")
    }

    #[test]
    fn the_demos_four_invalid_packets_per_node_are_not_worth_a_finding() {
        let found = findings("testdata/bundles/calico-bundle-demo-20261125T140215Z");
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn many_invalid_packets_warn_and_name_the_chains_that_dropped_them() {
        let found = findings("testdata/checks/CAL062-invalid-counted");
        let n1 = found
            .iter()
            .find(|f| f.node.as_deref() == Some("node-1"))
            .expect("node-1");
        assert_eq!(n1.severity, Severity::Warning);
        assert!(n1.message.contains("invalid=121346"), "{}", n1.message);
        assert!(
            n1.subjects
                .iter()
                .any(|s| s.kind == "endpoint" && s.name == "demo/web")
        );
        assert_eq!(n1.evidence[0].path, "nodes/node-1/conntrack-stats.txt");
        assert_eq!(n1.evidence[0].line, 1);
        assert!(n1.evidence[0].excerpt.contains("invalid=81234"));
        assert_eq!(n1.evidence[1].line, 2);
        assert_eq!(n1.evidence[2].path, "nodes/node-1/iptables-save.txt");
        assert_eq!(n1.evidence[2].line, 87);
        let n2 = found
            .iter()
            .find(|f| f.node.as_deref() == Some("node-2"))
            .expect("node-2");
        assert_eq!(n2.severity, Severity::Info);
        assert!(n2.message.contains("invalid=4200"), "{}", n2.message);
        assert!(
            n2.message.contains("No endpoint chain's INVALID drop"),
            "{}",
            n2.message
        );
    }
}
