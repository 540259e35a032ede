//! CAL051: a policy chain that packets entered (its jumps counted them) but whose rules never
//! matched one, in an `iptables-save -c` dump. Without counters there is nothing to say, and a
//! chain nothing jumps to is CAL031's business, not this one's.

use std::collections::HashMap;

use super::{Check, Evidence, Finding, Severity, Step, shell_quote};
use crate::calico::names::{self, Direction};
use crate::model::Model;
use crate::model::flows::{ChainOwners, has_counters, packets};
use crate::model::node::{ChainRole, NodeModel};
use crate::parse::iptables_save::{Chain, Rule, Table};

pub const CHECK: Check = Check {
    code: "CAL051",
    name: "policy-never-hit",
    severity: Severity::Info,
    step: Step::PacketPath,
    doc: r#"
## What it finds
A policy chain (`cali-pi-…`, `cali-po-…`) on a node whose rules all have zero packet counters
although the jumps to it counted packets: traffic reached the policy and none of its rules
matched any of it. Only dumps taken with counters (`iptables-save -c`) are checked.

## Why it matters
A policy that is evaluated but never matches usually does not say what its author meant: a
rule selector that misses the peers, an IP set without their addresses (CAL040), a port or
protocol that differs. The packets it should have allowed go on to the next policy or to the
end-of-tier drop (CAL050).

## Example
`cali-pi-_KRHdavhfzMk0BqCqEjF` (`demo/allow-to-backend`, ingress) on node-2: the jump from
`cali-tw-cali6793bd60945` counted 48 packets, its only rule `[0:0]`.

## How to confirm by hand
`iptables-save -c -t filter | grep -F -- <chain>` on the node shows the jumps to the chain and
its rules with their counters. Felix rewrites a policy's chain when the policy changes, which
resets its counters: "never" means "since the chain was last written".

## What to do
Compare the policy's rules with the flows that reach the endpoints it applies to: selectors
against the peers' real labels, ports, protocol, and the members of the IP sets its rules use.
If the policy is meant for other traffic, nothing is wrong.
"#,
    run,
};

fn is_policy_chain(name: &str) -> bool {
    name.starts_with(names::POLICY_INBOUND_PREFIX)
        || name.starts_with(names::POLICY_OUTBOUND_PREFIX)
}

/// The jumps into each chain of a table.
fn jumps_into(table: &Table) -> HashMap<&str, Vec<(&Chain, &Rule)>> {
    let mut into: HashMap<&str, Vec<(&Chain, &Rule)>> = HashMap::new();
    for c in &table.chains {
        for r in &c.rules {
            if let Some(t) = r.jump_target() {
                into.entry(t).or_default().push((c, r));
            }
        }
    }
    into
}

/// The endpoints whose chains reach `chain`, directly or through a policy-group chain.
fn endpoints_reaching(
    m: &Model<'_>,
    owners: &ChainOwners,
    into: &HashMap<&str, Vec<(&Chain, &Rule)>>,
    chain: &str,
    depth: usize,
    out: &mut Vec<String>,
) {
    for (from, _) in into.get(chain).map(Vec::as_slice).unwrap_or_default() {
        if let Some(e) = owners.owner(m, &from.name).and_then(|o| o.endpoint) {
            let key = &m.endpoints[e].key;
            if !out.contains(key) {
                out.push(key.clone());
            }
        } else if depth < 2
            && (from.name.starts_with(names::POLICY_GROUP_INBOUND_PREFIX)
                || from.name.starts_with(names::POLICY_GROUP_OUTBOUND_PREFIX))
        {
            endpoints_reaching(m, owners, into, &from.name, depth + 1, out);
        }
    }
}

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    let by_iface = m.endpoints_by_iface();
    for node in &m.nodes {
        let owners = ChainOwners::new(m, node, &by_iface);
        for (dump, program) in node.ip_dumps() {
            if !has_counters(dump.data) {
                continue;
            }
            for table in &dump.data.tables {
                let into = jumps_into(table);
                for chain in table.chains.iter().filter(|c| is_policy_chain(&c.name)) {
                    let jumps = into
                        .get(chain.name.as_str())
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    let entered: u64 = jumps.iter().map(|(_, r)| packets(r)).sum();
                    if entered == 0
                        || chain.rules.is_empty()
                        || chain
                            .rules
                            .iter()
                            .any(|r| r.counters.is_none() || packets(r) > 0)
                    {
                        continue;
                    }
                    out.push(finding(
                        m,
                        node,
                        &owners,
                        &into,
                        Place {
                            path: dump.path(),
                            program,
                            table: &table.name,
                        },
                        chain,
                        jumps,
                        entered,
                    ));
                }
            }
        }
    }
}

struct Place<'a> {
    path: &'a str,
    program: &'static str,
    table: &'a str,
}

#[allow(clippy::too_many_arguments)]
fn finding(
    m: &Model<'_>,
    node: &NodeModel<'_>,
    owners: &ChainOwners,
    into: &HashMap<&str, Vec<(&Chain, &Rule)>>,
    at: Place<'_>,
    chain: &Chain,
    jumps: &[(&Chain, &Rule)],
    entered: u64,
) -> Finding {
    let (policy, direction) = match node.chains.get(&chain.name) {
        Some(ChainRole::Policy { policy, direction }) => (Some(*policy), Some(*direction)),
        _ => (None, None),
    };
    let name = policy
        .map(|p| m.policies[p].display.clone())
        .unwrap_or_else(|| chain.name.clone());
    let dir = match direction {
        Some(Direction::Ingress) => "ingress",
        Some(Direction::Egress) => "egress",
        None if chain.name.starts_with(names::POLICY_INBOUND_PREFIX) => "ingress",
        None => "egress",
    };
    let mut endpoints = Vec::new();
    endpoints_reaching(m, owners, into, &chain.name, 0, &mut endpoints);
    let reaching = if endpoints.is_empty() {
        String::new()
    } else {
        format!(" from the chains of {}", endpoints.join(", "))
    };
    let what = if policy.is_some() {
        format!("{} ({name}, {dir})", chain.name)
    } else {
        format!(
            "{} ({dir}; no policy in the bundle explains it)",
            chain.name
        )
    };
    let mut f = Finding::of(
        &CHECK,
        format!(
            "{name} matched none of {entered} packets on {} ({dir})",
            node.name
        ),
        format!(
            "{what} on {} was entered by {entered} packets{reaching}, but none of its {} rule(s) \
             matched any of them: they all went on to the next policy or to the end-of-tier \
             drop. Counters restart when Felix rewrites the chain (a policy change), so this \
             covers the time since then.",
            node.name,
            chain.rules.len()
        ),
    )
    .on_node(&node.name);
    if policy.is_some() {
        f = f.subject("policy", &name);
    }
    f = f.subject("chain", &chain.name);
    for e in &endpoints {
        f = f.subject("endpoint", e);
    }
    let ev = |r: &Rule| Evidence {
        path: at.path.to_string(),
        line: r.line,
        excerpt: r.text.to_string(),
    };
    for r in chain.rules.iter().take(5) {
        f = f.evidence(ev(r));
    }
    for (_, r) in jumps.iter().filter(|(_, r)| packets(r) > 0).take(3) {
        f = f.evidence(ev(r));
    }
    if let Some(p) = policy {
        f = f.evidence(m.policies[p].loc.evidence(format!("policy {name}")));
    }
    let target = if endpoints.is_empty() {
        "the endpoints it applies to".to_string()
    } else {
        endpoints.join(", ")
    };
    f.confirm(format!(
        "{} -c -t {} | grep -F -- {}   # on {}",
        at.program,
        at.table,
        shell_quote(&chain.name),
        node.name
    ))
    .fix(format!(
        "Compare the rules of {name} with the flows that reach {target}: selectors against the \
         peers' real labels, ports and protocol, and the members of the IP sets the rules use \
         (`ipset list <set>` on {}). If the policy is meant for other traffic, nothing is wrong.",
        node.name
    ))
}

#[cfg(test)]
mod tests {
    use crate::checks::Finding;
    use crate::checks::testing::has;

    fn findings(dir: &str) -> Vec<Finding> {
        crate::checks::testing::findings(dir, "CAL051")
    }

    #[test]
    fn the_demo_policy_whose_ip_set_lacks_the_client_is_reported_on_node_2_only() {
        let found = findings("testdata/bundles/calico-bundle-demo-20261125T140215Z");
        assert_eq!(found.len(), 1, "{found:#?}");
        let f = &found[0];
        assert_eq!(f.node.as_deref(), Some("node-2"));
        assert!(has(f, "policy", "demo/allow-to-backend"));
        assert!(has(f, "chain", "cali-pi-_KRHdavhfzMk0BqCqEjF"));
        assert!(has(f, "endpoint", "demo/backend"));
        assert_eq!(f.evidence[0].path, "nodes/node-2/iptables-save.txt");
        assert_eq!(f.evidence[0].line, 70);
        assert!(
            f.evidence[0]
                .excerpt
                .starts_with("[0:0] -A cali-pi-_KRHdavhfzMk0BqCqEjF")
        );
        // The jump that shows the chain was reached.
        assert_eq!(f.evidence[1].line, 82);
        assert!(f.title.contains("none of 48 packets"), "{}", f.title);
    }

    #[test]
    fn a_reached_policy_whose_rule_counted_nothing_is_reported() {
        let found = findings("testdata/checks/CAL051-unhit-on-node-1");
        let f = found
            .iter()
            .find(|f| f.node.as_deref() == Some("node-1"))
            .expect("node-1 finding");
        assert!(has(f, "policy", "demo/knp.default.trace-test"));
        assert!(has(f, "chain", "cali-pi-_rV88Xej8277qXnICUmJ"));
        assert!(has(f, "endpoint", "demo/web"));
        assert_eq!(f.evidence[0].path, "nodes/node-1/iptables-save.txt");
        assert_eq!(f.evidence[0].line, 70);
        assert_eq!(
            f.confirm.as_deref(),
            Some(
                "iptables-save -c -t filter | grep -F -- cali-pi-_rV88Xej8277qXnICUmJ   # on node-1"
            )
        );
    }
}
