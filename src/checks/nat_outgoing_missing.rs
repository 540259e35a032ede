//! CAL080: an IP pool with `natOutgoing: true` whose traffic the node does not masquerade
//! (no MASQUERADE rule in `cali-nat-outgoing`, or the pool missing from the
//! `cali40masq-ipam-pools` set), and the reverse: the masq set holding a pool that does not ask
//! for NAT (or that no longer exists).

use ipnet::IpNet;

use super::{Check, Evidence, Finding, Severity, Step};
use crate::model::endpoints::parse_net;
use crate::model::node::{Member, NodeModel};
use crate::model::{Dataplane, Model, Sourced};
use crate::parse::iptables_save::{Dump, SetDir, TargetKind};
use crate::parse::resources::IpPool;

pub const CHECK: Check = Check {
    code: "CAL080",
    name: "nat-outgoing-missing",
    severity: Severity::Warning,
    step: Step::PacketPath,
    doc: r#"
## What it finds
On each node with an iptables dump, for the IP pools of that family:
- a pool with `natOutgoing: true` while the nat table lacks Calico's rule
  `-A cali-nat-outgoing -m set --match-set cali40masq-ipam-pools src -m set ! --match-set
  cali40all-ipam-pools dst -j MASQUERADE` (or `-j SNAT` with `natOutgoingAddress`);
- a pool with `natOutgoing: true` whose CIDR the `cali40masq-ipam-pools` set lacks;
- the reverse: a CIDR in `cali40masq-ipam-pools` that belongs to a pool without `natOutgoing`,
  or to no pool in the bundle.
Felix puts every pool (of every node selector, enabled or not) in `cali40all-ipam-pools` and
those with `natOutgoing` in `cali40masq-ipam-pools`; IPv6 uses `cali60…` and ip6tables. The
eBPF and nftables dataplanes are not checked here.

## Why it matters
Without the masquerade, pods' traffic to addresses outside the pools leaves the node with the
pod IP as source: replies from the Internet or from the node network never come back ("pods
cannot reach anything outside the cluster" on that node only). The reverse masquerades traffic
the pool's owner wanted to keep its pod source addresses.

## Example
Pool `default-ipv4-ippool` (10.65.0.0/16) has `natOutgoing: true`, but node-2's
`cali-nat-outgoing` chain is empty.

## How to confirm by hand
`iptables-save -t nat | grep cali-nat-outgoing` and `ipset list cali40masq-ipam-pools` on the
node; `calicoctl get ippool -o wide`.

## What to do
Look in the node's Felix log for iptables or ipset failures (CAL071) and restart calico-node
on the node so that Felix reprograms the nat table and the pool sets; if the pool itself is
wrong, `calicoctl patch ippool <name> --patch '{"spec":{"natOutgoing":true}}'`.
"#,
    run,
};

const CHAIN: &str = "cali-nat-outgoing";

struct Pool<'b> {
    src: Sourced<'b, IpPool>,
    net: IpNet,
}

impl Pool<'_> {
    fn name(&self) -> &str {
        &self.src.item.meta.name
    }

    /// The pool's `natOutgoing:` line, or its `cidr:` line, or the object.
    fn evidence(&self, m: &Model<'_>) -> Evidence {
        let loc = self.src.loc();
        let nat = if self.src.item.nat_outgoing {
            "true"
        } else {
            "false"
        };
        super::find_field_line(m, &loc.path, loc.line, "natOutgoing", nat)
            .or_else(|| super::find_field_line(m, &loc.path, loc.line, "cidr", &self.src.item.cidr))
            .map(|(l, t)| loc.clone().with_line(l).evidence(t))
            .unwrap_or_else(|| {
                loc.evidence(format!(
                    "IPPool {} cidr {} natOutgoing {nat}",
                    self.name(),
                    self.src.item.cidr
                ))
            })
    }
}

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    if m.dataplane == Some(Dataplane::Bpf) {
        return;
    }
    let pools: Vec<Pool<'_>> = m
        .resources
        .ip_pools
        .iter()
        .filter_map(|p| {
            parse_net(&p.item.cidr).map(|net| Pool {
                src: Sourced {
                    path: p.path,
                    item: p.item,
                },
                net: net.trunc(),
            })
        })
        .collect();
    if pools.is_empty() {
        return;
    }
    for node in m.nodes.iter().filter(|n| n.has_calico_iptables()) {
        for v6 in [false, true] {
            let dump = if v6 { node.ip6tables } else { node.iptables };
            let Some(dump) = dump else { continue };
            let fam: Vec<&Pool<'_>> = pools
                .iter()
                .filter(|p| p.net.addr().is_ipv6() == v6)
                .collect();
            if fam.is_empty() {
                continue;
            }
            let prefix = if v6 { "cali60" } else { "cali40" };
            let masq_set = format!("{prefix}masq-ipam-pools");
            let all_sets = [
                format!("{prefix}all-ipam-pools"),
                format!("{prefix}network-ip-pools"),
            ];
            let masq: Vec<&Pool<'_>> = fam
                .iter()
                .copied()
                .filter(|p| p.src.item.nat_outgoing)
                .collect();
            if !masq.is_empty() {
                rule_missing(
                    m,
                    node,
                    dump.path(),
                    dump.data,
                    v6,
                    &masq,
                    &masq_set,
                    &all_sets,
                    out,
                );
            }
            set_members(m, node, &fam, &masq, &masq_set, out);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn rule_missing(
    m: &Model<'_>,
    node: &NodeModel<'_>,
    path: &str,
    dump: &Dump,
    v6: bool,
    masq: &[&Pool<'_>],
    masq_set: &str,
    all_sets: &[String; 2],
    out: &mut Vec<Finding>,
) {
    let nat = dump.table("nat");
    let chain = nat.and_then(|t| t.chain(CHAIN));
    let ok = chain.is_some_and(|c| {
        c.rules.iter().any(|r| {
            let src = r
                .match_sets()
                .any(|(s, neg)| !neg && s.name == masq_set && s.dirs.first() == Some(&SetDir::Src));
            let not_dst = r.match_sets().any(|(s, neg)| {
                neg && all_sets.iter().any(|a| *a == s.name) && s.dirs.first() == Some(&SetDir::Dst)
            });
            let action = r.target.as_ref().is_some_and(|t| {
                matches!(
                    t.kind,
                    TargetKind::Masquerade { .. } | TargetKind::Snat { .. }
                )
            });
            src && not_dst && action
        })
    });
    if ok {
        return;
    }
    let save = if v6 {
        "ip6tables-save"
    } else {
        "iptables-save"
    };
    let (what, ev) = match (nat, chain) {
        (None, _) => (
            "has no nat table at all".to_string(),
            Evidence {
                path: path.to_string(),
                line: 0,
                excerpt: "(no *nat table)".to_string(),
            },
        ),
        (Some(t), None) => {
            // The jump from cali-POSTROUTING, if it survived the chain.
            let jump = t
                .chains
                .iter()
                .flat_map(|c| c.rules.iter())
                .find(|r| r.jump_target() == Some(CHAIN));
            (
                format!("has no {CHAIN} chain"),
                match jump {
                    Some(r) => Evidence {
                        path: path.to_string(),
                        line: r.line,
                        excerpt: r.text.to_string(),
                    },
                    None => Evidence {
                        path: path.to_string(),
                        line: t.line,
                        excerpt: super::line_text(m, path, t.line)
                            .unwrap_or_else(|| "*nat".to_string()),
                    },
                },
            )
        }
        (Some(_), Some(c)) => {
            let first = c.rules.first();
            (
                if c.rules.is_empty() {
                    format!("has an empty {CHAIN} chain")
                } else {
                    format!(
                        "has {CHAIN}, but none of its {} rule(s) masquerades `--match-set {masq_set} src` to `! --match-set {} dst`",
                        c.rules.len(),
                        all_sets[0]
                    )
                },
                match first {
                    Some(r) => Evidence {
                        path: path.to_string(),
                        line: r.line,
                        excerpt: r.text.to_string(),
                    },
                    None => Evidence {
                        path: path.to_string(),
                        line: c.line,
                        excerpt: super::line_text(m, path, c.line)
                            .unwrap_or_else(|| format!(":{CHAIN} - [0:0]")),
                    },
                },
            )
        }
    };
    let names: Vec<String> = masq
        .iter()
        .map(|p| format!("{} ({})", p.name(), p.net))
        .collect();
    let mut f = Finding::of(
        &CHECK,
        format!("No NAT-outgoing MASQUERADE rule on {}", node.name),
        format!(
            "IP pool{} {} ha{} natOutgoing: true, but {}'s {save} {what}: traffic from those pods to addresses outside the IP pools leaves {} without being masqueraded.",
            if masq.len() == 1 { "" } else { "s" },
            names.join(", "),
            if masq.len() == 1 { "s" } else { "ve" },
            node.name,
            node.name
        ),
    )
    .on_node(&node.name)
    .subject("chain", CHAIN)
    .subject("ipset", masq_set)
    .evidence(ev);
    for p in masq.iter().take(5) {
        f = f.subject("ippool", p.name()).evidence(p.evidence(m));
    }
    out.push(
        f.confirm(format!(
            "{save} -t nat | grep -F {CHAIN}   # on {}; calicoctl get ippool -o wide",
            node.name
        ))
        .fix(format!(
            "Look for iptables failures in the Felix log of {} (CAL071), then restart calico-node there so that Felix reprograms {CHAIN}.",
            node.name
        )),
    );
}

fn set_members(
    m: &Model<'_>,
    node: &NodeModel<'_>,
    fam: &[&Pool<'_>],
    masq: &[&Pool<'_>],
    masq_set: &str,
    out: &mut Vec<Finding>,
) {
    let Some(sets) = node.ipsets else { return };
    let path = sets.path().to_string();
    let Some(actual) = node.actual_set(masq_set) else {
        if !masq.is_empty() {
            let names: Vec<String> = masq
                .iter()
                .map(|p| format!("{} ({})", p.name(), p.net))
                .collect();
            let mut f = Finding::of(
                &CHECK,
                format!("IP set {masq_set} is missing on {}", node.name),
                format!(
                    "{} has no IP set {masq_set}, which Felix fills with the CIDRs of the natOutgoing pools ({}): the MASQUERADE rule cannot match their traffic.",
                    node.name,
                    names.join(", ")
                ),
            )
            .on_node(&node.name)
            .subject("ipset", masq_set)
            .evidence(Evidence {
                path: path.clone(),
                line: 0,
                excerpt: format!("(no set {masq_set})"),
            });
            for p in masq.iter().take(5) {
                f = f.subject("ippool", p.name()).evidence(p.evidence(m));
            }
            out.push(
                f.confirm(format!("ipset list {masq_set}   # on {}", node.name))
                    .fix(format!(
                        "Look for ipset failures in the Felix log of {} (CAL071), then restart calico-node there.",
                        node.name
                    )),
            );
        }
        return;
    };
    let set_line = actual.set.line;
    // Pools asking for NAT that the set lacks.
    let lacking: Vec<&&Pool<'_>> = masq
        .iter()
        .filter(|p| !actual.members.contains(&Member::from_net(&p.net)))
        .collect();
    if !lacking.is_empty() {
        let names: Vec<String> = lacking
            .iter()
            .map(|p| format!("{} ({})", p.name(), p.net))
            .collect();
        let mut f = Finding::of(
            &CHECK,
            format!("{masq_set} lacks {} natOutgoing pool(s) on {}", lacking.len(), node.name),
            format!(
                "IP pool{} {} ha{} natOutgoing: true, but {}'s {masq_set} does not hold {}: the MASQUERADE rule does not match traffic from those pods.",
                if lacking.len() == 1 { "" } else { "s" },
                names.join(", "),
                if lacking.len() == 1 { "s" } else { "ve" },
                node.name,
                if lacking.len() == 1 { "its CIDR" } else { "their CIDRs" }
            ),
        )
        .on_node(&node.name)
        .subject("ipset", masq_set)
        .evidence(Evidence {
            path: path.clone(),
            line: set_line,
            excerpt: super::line_text(m, &path, set_line).unwrap_or_else(|| masq_set.to_string()),
        });
        for p in lacking.iter().take(5) {
            f = f.subject("ippool", p.name()).evidence(p.evidence(m));
        }
        out.push(
            f.confirm(format!(
                "ipset list {masq_set}   # on {}; calicoctl get ippool -o wide",
                node.name
            ))
            .fix(format!(
                "Felix has not applied the pool to {}: look for ipset failures in its Felix log (CAL071) and restart calico-node there.",
                node.name
            )),
        );
    }
    // Members that no natOutgoing pool accounts for.
    let mut extra: Vec<(String, usize, Option<&Pool<'_>>)> = Vec::new();
    let masq_members: Vec<Member> = masq.iter().map(|p| Member::from_net(&p.net)).collect();
    for (member, line) in actual.members.iter() {
        let Some(net) = member.net() else {
            continue;
        };
        if masq_members.contains(member) {
            continue;
        }
        let owner = fam.iter().copied().find(|p| p.net.trunc() == net.trunc());
        extra.push((member.to_string(), line, owner));
    }
    if extra.is_empty() {
        return;
    }
    // Listed in the members' text order.
    extra.sort_by(|a, b| a.0.cmp(&b.0));
    let described: Vec<String> = extra
        .iter()
        .map(|(cidr, _, owner)| match owner {
            Some(p) => format!("{cidr} (pool {}, natOutgoing: false)", p.name()),
            None => format!("{cidr} (no IP pool in the bundle)"),
        })
        .collect();
    let mut f = Finding::of(
        &CHECK,
        format!(
            "{masq_set} masquerades {} CIDR(s) without natOutgoing on {}",
            extra.len(),
            node.name
        ),
        format!(
            "{}'s {masq_set} holds {}: traffic from those addresses to outside the pools is masqueraded although no pool asks for it (a pool changed or deleted that Felix has not caught up with).",
            node.name,
            described.join(", ")
        ),
    )
    .on_node(&node.name)
    .subject("ipset", masq_set);
    for (cidr, line, owner) in extra.iter().take(5) {
        f = f.subject("ip", cidr.as_str()).evidence(Evidence {
            path: path.clone(),
            line: *line,
            excerpt: super::line_text(m, &path, *line).unwrap_or_else(|| cidr.clone()),
        });
        if let Some(p) = owner {
            f = f.subject("ippool", p.name()).evidence(p.evidence(m));
        }
    }
    let patch = extra
        .iter()
        .find_map(|(_, _, o)| *o)
        .map(|p| {
            format!(
                " If the pool should masquerade, `calicoctl patch ippool {} --patch '{{\"spec\":{{\"natOutgoing\":true}}}}'`.",
                super::shell_quote(p.name())
            )
        })
        .unwrap_or_default();
    out.push(
        f.confirm(format!(
            "ipset list {masq_set}   # on {}; calicoctl get ippool -o wide",
            node.name
        ))
        .fix(format!(
            "Restart calico-node on {} so that Felix rewrites {masq_set} from the current pools.{patch}",
            node.name
        )),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    // CAL080-masq-rule-missing: node-2's MASQUERADE rule and its masq-set member removed.
    // CAL080-pool-without-nat-masqueraded: a natOutgoing: false pool (legacy-pool) and an
    // unknown CIDR added to node-1's cali40masq-ipam-pools.

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
    fn an_empty_nat_outgoing_chain_and_a_masq_set_without_the_pool_are_reported() {
        let found = findings("CAL080-masq-rule-missing");
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found.iter().all(|f| f.node.as_deref() == Some("node-2")));
        let rule = &found[0];
        assert_eq!(rule.title, "No NAT-outgoing MASQUERADE rule on node-2");
        assert_eq!(rule.subjects[0].kind, "chain");
        assert_eq!(rule.subjects[0].name, "cali-nat-outgoing");
        assert!(
            rule.subjects
                .iter()
                .any(|s| s.kind == "ippool" && s.name == "default-ipv4-ippool")
        );
        assert_eq!(rule.evidence[0].path, "nodes/node-2/iptables-save.txt");
        assert_eq!(rule.evidence[0].line, 113);
        assert_eq!(rule.evidence[0].excerpt, ":cali-nat-outgoing - [0:0]");
        assert_eq!(rule.evidence[1].path, "cluster/calico/ippools.yaml");
        assert_eq!(rule.evidence[1].line, 14);
        assert!(
            rule.confirm
                .as_deref()
                .is_some_and(|c| c.starts_with("iptables-save -t nat | grep -F cali-nat-outgoing"))
        );
        let set = &found[1];
        assert_eq!(set.subjects[0].name, "cali40masq-ipam-pools");
        assert_eq!(set.evidence[0].path, "nodes/node-2/ipset-save.txt");
        assert_eq!(set.evidence[0].line, 1);
        assert!(set.message.contains("10.65.0.0/16"), "{}", set.message);
    }

    #[test]
    fn a_masq_set_holding_a_pool_without_nat_outgoing_is_reported() {
        let found = findings("CAL080-pool-without-nat-masqueraded");
        assert_eq!(found.len(), 1, "{found:#?}");
        let f = &found[0];
        assert_eq!(f.node.as_deref(), Some("node-1"));
        let has =
            |kind: &str, name: &str| f.subjects.iter().any(|s| s.kind == kind && s.name == name);
        assert!(has("ipset", "cali40masq-ipam-pools"));
        assert!(has("ip", "10.66.0.0/16"));
        assert!(has("ippool", "legacy-pool"));
        assert!(has("ip", "10.99.0.0/16"));
        assert!(
            f.message
                .contains("10.99.0.0/16 (no IP pool in the bundle)")
        );
        let lines: Vec<(&str, usize)> = f
            .evidence
            .iter()
            .map(|e| (e.path.as_str(), e.line))
            .collect();
        assert_eq!(
            lines,
            vec![
                ("nodes/node-1/ipset-save.txt", 3),
                ("cluster/calico/ippools.yaml", 27),
                ("nodes/node-1/ipset-save.txt", 4),
            ]
        );
        assert!(
            f.fix
                .as_deref()
                .is_some_and(|x| x.contains("calicoctl patch ippool legacy-pool"))
        );
    }

    #[test]
    fn the_demo_nodes_masquerade_their_pool() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/bundles/calico-bundle-demo-20261125T140215Z");
        let a = crate::analyze(&dir).expect("demo opens");
        assert!(a.findings.iter().all(|f| f.code != CHECK.code));
    }
}
