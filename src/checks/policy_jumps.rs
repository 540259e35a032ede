//! CAL021/CAL022/CAL023: an endpoint chain's jumps to policies and profiles differ from what
//! Felix should have written (missing, unexpected, out of order).

use super::{Check, Evidence, Finding, Severity, Step};
use crate::calico::names::Direction;
use crate::model::Model;
use crate::model::node::{EndpointChain, NodeModel, Owner};

pub const MISSING: Check = Check {
    code: "CAL021",
    name: "policy-jump-missing",
    severity: Severity::Error,
    step: Step::ChainsProgrammed,
    doc: r#"
## What it finds
A policy (or profile) that applies to a local endpoint, by its selector and types, but whose
chain the endpoint's `cali-tw-`/`cali-fw-` chain does not jump to.

## Why it matters
The policy is not enforced for that pod even though its selector matches: an allow it grants
never happens (the end-of-tier drop takes the packet), a deny it makes never happens.

## Example
`demo/allow-web` selects `demo/web`, but `cali-tw-cali46b6bee22de` has no jump to its
`cali-pi-` chain.

## How to confirm by hand
`iptables-save -t filter | grep -- '-A cali-tw-<iface> '` on the node lists the jumps in order.

## What to do
Look in the Felix log for errors applying the policy or the endpoint; if Felix is behind,
restarting calico-node on that node reprograms everything.
"#,
    run: run_missing,
};

pub const UNEXPECTED: Check = Check {
    code: "CAL022",
    name: "policy-jump-unexpected",
    severity: Severity::Warning,
    step: Step::ChainsProgrammed,
    doc: r#"
## What it finds
A jump in an endpoint chain to a policy or profile chain that should not be there: the policy's
selector does not match the endpoint (by the bundle's labels), or no policy in the bundle
explains the chain.

## Why it matters
The dataplane enforces something the current configuration does not ask for: stale state after
a label or policy change that Felix has not caught up with, or a bundle whose resources were
collected at another time than the node dumps.

## Example
`cali-tw-cali46b6bee22de` jumps to `cali-pi-_3D3NG9FhsojfeqYXdsO`, which no current policy
explains.

## How to confirm by hand
`iptables-save -t filter | grep -- '-A cali-tw-<iface> '` and
`calicoctl get networkpolicy -A -o wide`.

## What to do
Compare collection times; if the resources are current, restart calico-node on the node so
Felix reprograms the endpoint.
"#,
    run: run_unexpected,
};

pub const ORDER: Check = Check {
    code: "CAL023",
    name: "policy-order-wrong",
    severity: Severity::Warning,
    step: Step::ChainsProgrammed,
    doc: r#"
## What it finds
The policies an endpoint chain jumps to, in an order different from Felix's: tiers by order,
policies within a tier by `order` then name (the tie-break of the Calico version in use).

## Why it matters
The first policy to allow or deny wins: a different order means a different verdict for
traffic that two policies both match.

## Example
`allow-all` (order 500) evaluated before `deny-db` (order 100) in tier `security`.

## How to confirm by hand
`iptables-save -t filter | grep -- '-A cali-tw-<iface> '` and the policies' `order` in
`calicoctl get networkpolicy -A -o yaml`.

## What to do
Check the policies' `order` and tiers' `order` fields; restart calico-node if the dump is
stale.
"#,
    run: run_order,
};

fn owner_name(m: &Model<'_>, o: &Owner) -> String {
    match o {
        Owner::Policy(p) => m.policies[*p].display.clone(),
        Owner::Profile(p) => format!("profile {p}"),
        Owner::Unknown(c) => c.clone(),
    }
}

fn subject(m: &Model<'_>, o: &Owner) -> (&'static str, String) {
    match o {
        Owner::Policy(p) => ("policy", m.policies[*p].display.clone()),
        Owner::Profile(p) => ("profile", p.clone()),
        Owner::Unknown(c) => ("chain", c.clone()),
    }
}

fn dir_word(d: Direction) -> &'static str {
    match d {
        Direction::Ingress => "ingress",
        Direction::Egress => "egress",
    }
}

fn chain_evidence(node: &NodeModel<'_>, ec: &EndpointChain) -> Evidence {
    Evidence {
        path: node
            .iptables
            .map(|d| d.path().to_string())
            .unwrap_or_default(),
        line: ec.line,
        excerpt: format!(":{} - [0:0]", ec.chain),
    }
}

fn confirm(node: &NodeModel<'_>, ec: &EndpointChain) -> String {
    format!(
        "iptables-save -t filter | grep -- {}   # on {}",
        super::shell_quote(&format!("-A {} ", ec.chain)),
        node.name
    )
}

fn checked(node: &NodeModel<'_>) -> bool {
    node.has_calico_iptables()
}

fn run_missing(m: &Model<'_>, out: &mut Vec<Finding>) {
    for node in m.nodes.iter().filter(|n| checked(n)) {
        for ec in node.endpoint_chains.iter().filter(|c| c.present) {
            let e = &m.endpoints[ec.endpoint];
            for o in &ec.expected {
                if ec.actual.iter().any(|j| &j.owner == o) {
                    continue;
                }
                let (kind, name) = subject(m, o);
                let mut f = Finding::of(
                    &MISSING,
                    format!(
                        "{} is not applied to {} ({})",
                        owner_name(m, o),
                        e.key,
                        dir_word(ec.direction)
                    ),
                    format!(
                        "{} applies to {} for {} traffic, but {} on {} has no jump to its chain.",
                        owner_name(m, o),
                        e.key,
                        dir_word(ec.direction),
                        ec.chain,
                        node.name
                    ),
                )
                .on_node(&node.name)
                .subject(kind, name)
                .subject("endpoint", &e.key)
                .subject("chain", &ec.chain)
                .evidence(chain_evidence(node, ec))
                .confirm(confirm(node, ec));
                if let Owner::Policy(p) = o {
                    let pol = &m.policies[*p];
                    f = f.evidence(
                        pol.loc
                            .evidence(format!("{} selects {}", pol.display, e.key)),
                    );
                    if let Some(pc) = node
                        .policy_chains
                        .iter()
                        .find(|c| c.policy == *p && c.direction == ec.direction)
                    {
                        f = f.subject("chain", &pc.chain);
                    }
                }
                out.push(f.fix(format!(
                    "Check the Felix log on {} for errors about {} or {}; restart calico-node on {} if Felix is behind.",
                    node.name,
                    e.key,
                    owner_name(m, o),
                    node.name
                )));
            }
        }
    }
}

fn run_unexpected(m: &Model<'_>, out: &mut Vec<Finding>) {
    if !m.has_cluster_resources() {
        return;
    }
    for node in m.nodes.iter().filter(|n| checked(n)) {
        for ec in node.endpoint_chains.iter().filter(|c| c.present) {
            let e = &m.endpoints[ec.endpoint];
            for j in &ec.actual {
                if ec.expected.contains(&j.owner) {
                    continue;
                }
                let why = match &j.owner {
                    Owner::Policy(p) if m.policies[*p].staged => {
                        "it is a staged policy, which Felix never enforces".to_string()
                    }
                    Owner::Policy(_) => format!(
                        "its selector does not match {} by the bundle's labels",
                        e.key
                    ),
                    Owner::Profile(_) => format!("{} does not list this profile", e.key),
                    Owner::Unknown(_) => {
                        "no policy or profile in the bundle explains this chain".to_string()
                    }
                };
                let (kind, name) = subject(m, &j.owner);
                out.push(
                    Finding::of(
                        &UNEXPECTED,
                        format!("{} jumps to {} unexpectedly", ec.chain, owner_name(m, &j.owner)),
                        format!(
                            "{} ({} of {}) on {} jumps to {}, but {why}.",
                            ec.chain,
                            dir_word(ec.direction),
                            e.key,
                            node.name,
                            j.chain
                        ),
                    )
                    .on_node(&node.name)
                    .subject(kind, name)
                    .subject("endpoint", &e.key)
                    .subject("chain", &j.chain)
                    .evidence(Evidence {
                        path: node.iptables.map(|d| d.path().to_string()).unwrap_or_default(),
                        line: j.line,
                        excerpt: j.text.clone(),
                    })
                    .confirm(confirm(node, ec))
                    .fix(format!(
                        "Check the bundle's resources are current; restart calico-node on {} so Felix reprograms {}.",
                        node.name, e.key
                    )),
                );
            }
        }
    }
}

fn run_order(m: &Model<'_>, out: &mut Vec<Finding>) {
    for node in m.nodes.iter().filter(|n| checked(n)) {
        for ec in node.endpoint_chains.iter().filter(|c| c.present) {
            let expected: Vec<&Owner> = ec
                .expected
                .iter()
                .filter(|o| ec.actual.iter().any(|j| &j.owner == *o))
                .collect();
            let mut actual: Vec<&Owner> = Vec::new();
            for j in &ec.actual {
                if expected.contains(&&j.owner) && !actual.contains(&&j.owner) {
                    actual.push(&j.owner);
                }
            }
            if expected == actual {
                continue;
            }
            let Some(pos) = expected.iter().zip(&actual).position(|(a, b)| a != b) else {
                continue;
            };
            let e = &m.endpoints[ec.endpoint];
            let want = owner_name(m, expected[pos]);
            let got = owner_name(m, actual[pos]);
            let jump = ec.actual.iter().find(|j| &j.owner == actual[pos]);
            let mut f = Finding::of(
                &ORDER,
                format!("{} evaluates {} before {}", ec.chain, got, want),
                format!(
                    "In {} ({} of {}) on {}, Felix's order puts {want} at position {} but the dump has {got}. Expected order: {}.",
                    ec.chain,
                    dir_word(ec.direction),
                    e.key,
                    node.name,
                    pos + 1,
                    expected.iter().map(|o| owner_name(m, o)).collect::<Vec<_>>().join(" → ")
                ),
            )
            .on_node(&node.name)
            .subject(subject(m, expected[pos]).0, subject(m, expected[pos]).1)
            .subject(subject(m, actual[pos]).0, subject(m, actual[pos]).1)
            .subject("endpoint", &e.key)
            .subject("chain", &ec.chain)
            .confirm(confirm(node, ec))
            .fix("Check the policies' and tiers' order fields; restart calico-node if the dump is stale.");
            if let Some(j) = jump {
                f = f.evidence(Evidence {
                    path: node
                        .iptables
                        .map(|d| d.path().to_string())
                        .unwrap_or_default(),
                    line: j.line,
                    excerpt: j.text.clone(),
                });
            }
            out.push(f);
        }
    }
}
