//! CAL052: the DROP and REJECT rules that counted the most packets on each node, whoever wrote
//! them, each mapped to the endpoint, policy or profile its chain serves when the model knows.
//! A ranking for orientation, not a diagnosis: CAL050 explains Felix's own drops.

use std::collections::BTreeSet;

use super::{Check, Evidence, Finding, Severity, Step};
use crate::model::Model;
use crate::model::flows::{
    CalicoDrop, ChainOwners, Evaluated, EvaluatedChain, calico_drop, is_drop, packets,
    profiles_before, tier_policies,
};
use crate::model::node::{ChainRole, NodeModel};
use crate::parse::iptables_save::{Chain, Table};

pub const CHECK: Check = Check {
    code: "CAL052",
    name: "top-dropping-rules",
    severity: Severity::Info,
    step: Step::PacketPath,
    doc: r#"
## What it finds
On each node, the ten `DROP`/`REJECT` rules with the highest packet counters in the
`iptables-save -c` dumps (IPv4 and IPv6, every table and chain, Calico's or not), each with
what its chain stands for: the endpoint of a `cali-tw-`/`cali-fw-` chain (and, for an
end-of-tier drop, the policies of the tier), the policy of a `cali-pi-`/`cali-po-` chain, the
profile of a `cali-pri-`/`cali-pro-` chain, or the chain alone when it is not Calico's.

## Why it matters
When the question is "where do packets die on this node", the biggest drop counters are the
first place to look, and a drop outside Calico's chains (kube-proxy, firewalld, a
distribution's own rules) is easy to miss when reading Calico's chains only.

## Example
node-1: `[72:4320] … cali-tw-cali46b6bee22de … "End of tier default. Drop if no policies passed
packet" -j DROP` (ingress of `demo/web`, after `demo/knp.default.trace-test`).

## How to confirm by hand
`iptables-save -c | grep -E -- '-j (DROP|REJECT)' | tr -d '[' | sort -t: -k1,1 -rn | head`
on the node. Counters run since each rule was written: take two dumps a few seconds apart to
see which still grow.

## What to do
For Calico's end-of-tier and profile drops see CAL050; for a policy's deny rule, check that
the policy should deny that traffic; for a chain that is not Calico's, find who owns it (its
name and comments say: `KUBE-*` is kube-proxy's) and look there.
"#,
    run,
};

/// Rules listed per node.
const TOP: usize = 10;

/// One counted drop rule with what it means.
struct Ranked<'b> {
    packets: u64,
    path: &'b str,
    line: usize,
    text: &'b str,
    chain: &'b str,
    meaning: String,
    subjects: Vec<(&'static str, String)>,
}

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    let by_iface = m.endpoints_by_iface();
    for node in &m.nodes {
        let owners = ChainOwners::new(m, node, &by_iface);
        let mut ranked: Vec<Ranked<'_>> = Vec::new();
        let mut programs: BTreeSet<&str> = BTreeSet::new();
        for (dump, program) in node.ip_dumps() {
            for table in &dump.data.tables {
                for chain in &table.chains {
                    for (idx, rule) in chain.rules.iter().enumerate() {
                        let n = packets(rule);
                        if n == 0 || !is_drop(rule) {
                            continue;
                        }
                        programs.insert(program);
                        let (meaning, subjects) = meaning(m, node, &owners, table, chain, idx);
                        ranked.push(Ranked {
                            packets: n,
                            path: dump.artifact.path.as_str(),
                            line: rule.line,
                            text: &rule.text,
                            chain: &chain.name,
                            meaning,
                            subjects,
                        });
                    }
                }
            }
        }
        if ranked.is_empty() {
            continue;
        }
        ranked.sort_by(|a, b| {
            b.packets
                .cmp(&a.packets)
                .then(a.path.cmp(b.path))
                .then(a.line.cmp(&b.line))
        });
        let total = ranked.len();
        ranked.truncate(TOP);
        let list: Vec<String> = ranked
            .iter()
            .enumerate()
            .map(|(i, r)| {
                format!(
                    "{}. {} packets in {} ({}), {}:{}",
                    i + 1,
                    r.packets,
                    r.chain,
                    r.meaning,
                    r.path,
                    r.line
                )
            })
            .collect();
        let mut f = Finding::of(
            &CHECK,
            format!(
                "Top dropping rules on {}: {} packets at most, in {}",
                node.name, ranked[0].packets, ranked[0].chain
            ),
            format!(
                "{} of {} DROP/REJECT rule(s) that counted packets on {}, most first: {}",
                ranked.len(),
                total,
                node.name,
                list.join("; ")
            ),
        )
        .on_node(&node.name)
        .subject("node", &node.name);
        let mut seen: BTreeSet<(&str, String)> = BTreeSet::new();
        for r in &ranked {
            for (k, v) in std::iter::once(("chain", r.chain.to_string())).chain(r.subjects.clone())
            {
                if seen.insert((k, v.clone())) {
                    f = f.subject(k, v);
                }
            }
        }
        for r in &ranked {
            f = f.evidence(Evidence {
                path: r.path.to_string(),
                line: r.line,
                excerpt: r.text.to_string(),
            });
        }
        let confirm = programs
            .iter()
            .map(|p| {
                format!(
                    "{p} -c | grep -E -- '-j (DROP|REJECT)' | tr -d '[' | sort -t: -k1,1 -rn | head -{TOP}"
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        out.push(f.confirm(format!("{confirm}   # on {}", node.name)).fix(
            "Start at the top of the list. For Calico's end-of-tier and profile drops see \
                 CAL050; for a policy's deny rule, check that the policy should deny that \
                 traffic; for a chain that is not Calico's, find who owns it (KUBE-* is \
                 kube-proxy's) and look there.",
        ));
    }
}

fn names_of(m: &Model<'_>, ev: &[EvaluatedChain]) -> String {
    ev.iter().map(|e| e.name(m)).collect::<Vec<_>>().join(", ")
}

/// What a drop rule stands for, and the subjects that say it.
fn meaning(
    m: &Model<'_>,
    node: &NodeModel<'_>,
    owners: &ChainOwners,
    table: &Table,
    chain: &Chain,
    idx: usize,
) -> (String, Vec<(&'static str, String)>) {
    let Some(rule) = chain.rules.get(idx) else {
        return (String::new(), Vec::new());
    };
    let mut subjects = Vec::new();
    let comment = rule
        .comments
        .iter()
        .filter(|c| !c.starts_with("cali:"))
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if let Some(owner) = owners.owner(m, &chain.name) {
        if let Some(e) = owner.endpoint {
            subjects.push(("endpoint", m.endpoints[e].key.clone()));
        }
        let who = owner.describe(m);
        let what = match calico_drop(rule) {
            Some(CalicoDrop::EndOfTier { tier }) => {
                let ev = tier_policies(node, table, chain, idx);
                for e in &ev {
                    if let Evaluated::Policy(p) = e.what {
                        subjects.push(("policy", m.policies[p].display.clone()));
                    }
                }
                let tier = tier.map(|t| format!(" {t}")).unwrap_or_default();
                if ev.is_empty() {
                    format!("end of tier{tier}")
                } else {
                    format!("end of tier{tier} after {}", names_of(m, &ev))
                }
            }
            Some(CalicoDrop::NoProfile) => {
                let ev = profiles_before(node, table, chain, idx);
                for e in &ev {
                    if let Evaluated::Profile(p) = &e.what {
                        subjects.push(("profile", p.clone()));
                    }
                }
                format!("no profile matched: {}", names_of(m, &ev))
            }
            _ if rule.matches.iter().any(|mt| {
                matches!(&mt.kind, crate::parse::iptables_save::MatchKind::ConnState(s)
                    if !mt.negated && s.iter().any(|x| x == "INVALID"))
            }) =>
            {
                "conntrack state INVALID".to_string()
            }
            _ if !comment.is_empty() => comment.clone(),
            _ => "drop".to_string(),
        };
        return (format!("{who}: {what}"), subjects);
    }
    let meaning = match node.chains.get(&chain.name) {
        Some(ChainRole::Policy { policy, .. }) => {
            let p = &m.policies[*policy];
            subjects.push(("policy", p.display.clone()));
            format!("a rule of policy {}", p.display)
        }
        Some(ChainRole::Profile { profile, .. }) => {
            subjects.push(("profile", profile.clone()));
            format!("a rule of profile {profile}")
        }
        _ if matches!(calico_drop(rule), Some(CalicoDrop::UnknownInterface)) => {
            "Unknown interface: no endpoint for the interface".to_string()
        }
        _ if chain.name.starts_with("cali-") => {
            if comment.is_empty() {
                "a Calico chain".to_string()
            } else {
                format!("Calico: {comment}")
            }
        }
        _ if comment.is_empty() => format!("table {}, not a Calico chain", table.name),
        _ => format!("table {}, not a Calico chain: {comment}", table.name),
    };
    (meaning, subjects)
}

#[cfg(test)]
mod tests {
    use crate::checks::Finding;
    use crate::checks::testing::has;

    fn findings(dir: &str) -> Vec<Finding> {
        crate::checks::testing::findings(dir, "CAL052")
    }

    #[test]
    fn the_demo_ranks_each_nodes_end_of_tier_drop_as_its_only_dropping_rule() {
        let found = findings("testdata/bundles/calico-bundle-demo-20261125T140215Z");
        assert_eq!(found.len(), 2, "{found:#?}");
        let n1 = &found[0];
        assert_eq!(n1.node.as_deref(), Some("node-1"));
        assert_eq!(n1.evidence.len(), 1);
        assert_eq!(n1.evidence[0].path, "nodes/node-1/iptables-save.txt");
        assert_eq!(n1.evidence[0].line, 92);
        assert!(has(n1, "endpoint", "demo/web"));
        assert!(has(n1, "policy", "demo/knp.default.trace-test"));
        let n2 = &found[1];
        assert_eq!(n2.node.as_deref(), Some("node-2"));
        assert_eq!(n2.evidence[0].line, 84);
        assert!(has(n2, "endpoint", "demo/backend"));
        assert!(has(n2, "policy", "demo/allow-to-backend"));
    }

    #[test]
    fn only_the_ten_biggest_drops_are_listed_most_first_whoever_owns_the_chain() {
        let found = findings("testdata/checks/CAL052-many-drops");
        let f = found
            .iter()
            .find(|f| f.node.as_deref() == Some("node-1"))
            .expect("node-1 ranking");
        assert_eq!(f.evidence.len(), 10);
        // kube-proxy's drop first: the ranking is not limited to Calico's chains.
        assert_eq!(f.evidence[0].line, 102);
        assert!(
            f.evidence[0]
                .excerpt
                .starts_with("[95:5700] -A KUBE-FIREWALL")
        );
        assert!(has(f, "chain", "KUBE-FIREWALL"));
        assert!(f.message.contains("not a Calico chain"), "{}", f.message);
        assert_eq!(f.evidence[1].line, 94);
        assert!(
            f.evidence[9].excerpt.starts_with("[4:208] "),
            "{:?}",
            f.evidence[9]
        );
        // The three smallest of the 13 counted drops are left out.
        for small in ["[3:156] ", "[2:240] ", "[1:120] "] {
            assert!(!f.evidence.iter().any(|e| e.excerpt.starts_with(small)));
        }
        assert!(
            f.message.starts_with("10 of 13 DROP/REJECT"),
            "{}",
            f.message
        );
        assert!(has(f, "endpoint", "demo/client"));
        assert!(has(f, "profile", "kns.demo"));
    }
}
