//! CAL040/CAL041/CAL042/CAL043: IP sets whose members differ from what the selectors say,
//! sets that rules need but the node lacks, and sets close to their size limit.

use super::{Check, Evidence, Finding, Severity, Step};
use crate::calico::names::Direction;
use crate::model::Model;
use crate::model::member;
use crate::model::node::{ExpectedSet, NodeModel};

pub const MISSING_MEMBER: Check = Check {
    code: "CAL040",
    name: "ipset-member-missing",
    severity: Severity::Error,
    step: Step::IpsetMembers,
    doc: r#"
## What it finds
An IP set that a rule on the node uses, which lacks the address of an endpoint (or a network
set's CIDR) that its selector matches. Membership is cluster-wide: every matching endpoint in
the bundle, wherever it runs.

## Why it matters
The rule does not match packets from (or to) that address: an allow from that pod is not
allowed, so its traffic falls to the end-of-tier drop while the policy YAML says it should
pass. This is the "policy is right, traffic still dropped" case.

## Example
`cali40s:8NS3fTg751-Dej4GL4An75l` (`role == "frontend"` in `demo`) lacks `10.65.0.7`
(`demo/web`), needed by rule ingress[0] of `demo/allow-to-backend`.

## How to confirm by hand
`ipset list <set> | grep <ip>` on the node.

## What to do
Check the Felix log for ipset-restore errors and for the endpoint; check the pod's labels are as
the bundle shows; restart calico-node on the node to make Felix resync its IP sets.
"#,
    run: run_missing,
};

pub const STALE_MEMBER: Check = Check {
    code: "CAL041",
    name: "ipset-member-stale",
    severity: Severity::Warning,
    step: Step::IpsetMembers,
    doc: r#"
## What it finds
A member of an IP set that no endpoint or network set matching its selector accounts for: an
address of a deleted pod, or of a pod whose labels no longer match.

## Why it matters
The rule still matches that address: a pod that reused the IP gets the old pod's access.

## Example
`cali40s:8NS3fTg751-Dej4GL4An75l` holds `10.65.0.99`, which no endpoint with
`role=frontend` has.

## How to confirm by hand
`ipset list <set>` on the node; `kubectl get pods -A -o wide | grep <ip>`.

## What to do
If no pod has the address, Felix missed a removal: look for ipset errors in its log and restart
calico-node on the node.
"#,
    run: run_stale,
};

pub const SET_MISSING: Check = Check {
    code: "CAL042",
    name: "ipset-missing",
    severity: Severity::Error,
    step: Step::IpsetMembers,
    doc: r#"
## What it finds
An IP set that a rule of an active policy needs (by recomputing the set name from the rule's
selector) but that the node's ipset dump does not have, or that a rule in the iptables dump
references but the ipset dump lacks.

## Why it matters
`iptables-restore` refuses rules that reference a missing set, so Felix cannot program the
policy; or the set was deleted under the rule and nothing matches.

## Example
`-m set --match-set cali40s:R2jIwhKxKcpepdexTl9ke3D src` with no such set in `ipset save`.

## How to confirm by hand
`ipset list -n | grep <set>` on the node.

## What to do
Check the Felix log for ipset-restore errors; restart calico-node on the node.
"#,
    run: run_set_missing,
};

pub const NEAR_MAXELEM: Check = Check {
    code: "CAL043",
    name: "ipset-near-maxelem",
    severity: Severity::Warning,
    step: Step::IpsetMembers,
    doc: r#"
## What it finds
A Calico IP set holding 90% or more of its `maxelem` (default 1048576), or more than it.

## Why it matters
At `maxelem` the kernel refuses new members: `ipset restore` fails, Felix retries in a loop and
new pods are missing from the set (see calico#4069).

## Example
`cali40s:…` with 1,048,579 members, maxelem 1048576.

## How to confirm by hand
`ipset list <set> | head -8` shows `maxelem` and `Number of entries`.

## What to do
Raise `maxIpsetSize` in the FelixConfiguration, or narrow the selector (per-namespace sets
instead of one cluster-wide set).
"#,
    run: run_maxelem,
};

fn uses(m: &Model<'_>, s: &ExpectedSet) -> String {
    s.used_by
        .iter()
        .take(3)
        .map(|u| {
            format!(
                "rule {}[{}] {} of {}",
                match u.direction {
                    Direction::Ingress => "ingress",
                    Direction::Egress => "egress",
                },
                u.rule,
                u.side,
                m.policies[u.policy].display
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn checked<'a, 'b>(m: &'a Model<'b>) -> impl Iterator<Item = &'a NodeModel<'b>> {
    m.nodes
        .iter()
        .filter(|n| n.ipsets.is_some() && n.has_calico_iptables())
}

/// How many addresses one finding lists before it only counts.
const LISTED: usize = 20;

fn run_missing(m: &Model<'_>, out: &mut Vec<Finding>) {
    for node in checked(m) {
        let path = node
            .ipsets
            .map(|d| d.path().to_string())
            .unwrap_or_default();
        for s in node.expected_sets.values() {
            let Some(actual) = node.actual_set(&s.name) else {
                continue;
            };
            let lacking = member::diff(&s.members, actual.members).missing;
            if lacking.is_empty() {
                continue;
            }
            let mut missing: Vec<(String, &str)> = lacking
                .iter()
                .map(|(k, who)| (k.to_string(), m.source_key(*who)))
                .collect();
            missing.sort_unstable();
            let listed: Vec<String> = missing
                .iter()
                .take(LISTED)
                .map(|(ip, who)| format!("{ip} ({who})"))
                .collect();
            let more = missing.len().saturating_sub(LISTED);
            let mut f = Finding::of(
                &MISSING_MEMBER,
                format!("{} lacks {} member(s) on {}", s.name, missing.len(), node.name),
                format!(
                    "IP set {} (selector `{}`) on {} lacks {}{}; it is used by {}, so those addresses do not match there.",
                    s.name,
                    s.selector,
                    node.name,
                    listed.join(", "),
                    if more > 0 { format!(" and {more} more") } else { String::new() },
                    uses(m, s)
                ),
            )
            .on_node(&node.name)
            .subject("ipset", &s.name)
            .evidence(Evidence {
                path: path.clone(),
                line: actual.set.line,
                excerpt: super::line_text(m, &path, actual.set.line).unwrap_or_else(|| s.name.clone()),
            });
            for (ip, who) in missing.iter().take(5) {
                f = f.subject("ip", ip.as_str()).subject("endpoint", *who);
                if let Some(e) = m.endpoints.iter().find(|e| e.key == *who) {
                    f = f.evidence(e.loc.evidence(format!("{who}: {ip}")));
                }
            }
            if let Some(u) = s.used_by.first() {
                let p = &m.policies[u.policy];
                f = f.subject("policy", &p.display);
            }
            out.push(
                f.confirm(format!(
                    "ipset list {} | grep -F {}   # on {}",
                    super::shell_quote(&s.name),
                    super::shell_quote(&missing[0].0),
                    node.name
                ))
                .fix(format!(
                    "Check the Felix log on {} for ipset-restore errors; confirm the pods' labels; restart calico-node on {} to resync IP sets.",
                    node.name, node.name
                )),
            );
        }
    }
}

fn run_stale(m: &Model<'_>, out: &mut Vec<Finding>) {
    for node in checked(m) {
        let path = node
            .ipsets
            .map(|d| d.path().to_string())
            .unwrap_or_default();
        for s in node.expected_sets.values() {
            let Some(actual) = node.actual_set(&s.name) else {
                continue;
            };
            let extra = member::diff(&s.members, actual.members).stale;
            if extra.is_empty() {
                continue;
            }
            let mut stale: Vec<(String, usize)> = extra
                .iter()
                .map(|(k, line)| (k.to_string(), *line))
                .collect();
            stale.sort_unstable();
            let listed: Vec<String> = stale
                .iter()
                .take(LISTED)
                .map(|(ip, _)| ip.to_string())
                .collect();
            let more = stale.len().saturating_sub(LISTED);
            let mut f = Finding::of(
                &STALE_MEMBER,
                format!("{} has {} stale member(s) on {}", s.name, stale.len(), node.name),
                format!(
                    "IP set {} (selector `{}`) on {} holds {}{}, which no matching endpoint or network set in the bundle has; {} still match those addresses.",
                    s.name,
                    s.selector,
                    node.name,
                    listed.join(", "),
                    if more > 0 { format!(" and {more} more") } else { String::new() },
                    uses(m, s)
                ),
            )
            .on_node(&node.name)
            .subject("ipset", &s.name);
            for (ip, line) in stale.iter().take(5) {
                f = f.subject("ip", ip.as_str()).evidence(Evidence {
                    path: path.clone(),
                    line: *line,
                    excerpt: super::line_text(m, &path, *line).unwrap_or_else(|| ip.to_string()),
                });
            }
            out.push(
                f.confirm(format!(
                    "ipset list {}   # on {}; kubectl get pods -A -o wide | grep -F {}",
                    super::shell_quote(&s.name),
                    node.name,
                    super::shell_quote(&stale[0].0)
                ))
                .fix(format!(
                    "If no pod has these addresses, Felix missed a removal: check its log on {} and restart calico-node there.",
                    node.name
                )),
            );
        }
    }
}

fn run_set_missing(m: &Model<'_>, out: &mut Vec<Finding>) {
    for node in checked(m) {
        let Some(sets) = node.ipsets else { continue };
        let mut reported = std::collections::BTreeSet::new();
        for s in node.expected_sets.values() {
            if sets.data.set(&s.name).is_some() {
                continue;
            }
            // Felix only programs sets referenced by programmed rules: if the rule's chain is
            // missing too, CAL030 says so.
            let referencing = node.iptables.and_then(|d| {
                d.data
                    .rules()
                    .find(|(_, _, r)| r.match_sets().any(|(sm, _)| sm.name == s.name))
                    .map(|(_, _, r)| (d.path().to_string(), r))
            });
            let referenced = referencing.is_some();
            if !referenced && s.ipv6 {
                continue;
            }
            reported.insert(s.name.clone());
            let mut f = Finding::of(
                &SET_MISSING,
                format!("IP set {} is missing on {}", s.name, node.name),
                format!(
                    "{} needs IP set {} (selector `{}`), which {}'s ipset dump does not have.",
                    uses(m, s),
                    s.name,
                    s.selector,
                    node.name
                ),
            )
            .on_node(&node.name)
            .subject("ipset", &s.name)
            .evidence(Evidence {
                path: sets.path().to_string(),
                line: 0,
                excerpt: format!("(no set {})", s.name),
            })
            .confirm(format!(
                "ipset list -n | grep -F {}   # on {}",
                super::shell_quote(&s.name),
                node.name
            ))
            .fix(format!(
                "Check the Felix log on {} for ipset errors; restart calico-node there.",
                node.name
            ));
            if let Some((path, r)) = referencing {
                f = f.evidence(Evidence {
                    path,
                    line: r.line,
                    excerpt: r.text.to_string(),
                });
            }
            out.push(f);
        }
        // Sets the iptables rules reference that the ipset dump lacks.
        if let Some(ipt) = node.iptables {
            for (_, _, r) in ipt.data.rules() {
                for (sm, _) in r.match_sets() {
                    if !sm.name.starts_with("cali4")
                        || sets.data.set(&sm.name).is_some()
                        || !reported.insert(sm.name.to_string())
                    {
                        continue;
                    }
                    out.push(
                        Finding::of(
                            &SET_MISSING,
                            format!("Rule references missing IP set {} on {}", sm.name, node.name),
                            format!("A rule in {} matches on IP set {}, which the ipset dump of {} does not have.", ipt.path(), sm.name, node.name),
                        )
                        .on_node(&node.name)
                        .subject("ipset", sm.name.as_str())
                        .evidence(Evidence {
                            path: ipt.path().to_string(),
                            line: r.line,
                            excerpt: r.text.to_string(),
                        })
                        .confirm(format!("ipset list -n | grep -F {}   # on {}", super::shell_quote(&sm.name), node.name))
                        .fix(format!("Check the Felix log on {} for ipset errors; restart calico-node there.", node.name)),
                    );
                }
            }
        }
    }
}

fn run_maxelem(m: &Model<'_>, out: &mut Vec<Finding>) {
    for node in &m.nodes {
        let Some(sets) = node.ipsets else { continue };
        for s in sets.data.sets.iter().filter(|s| s.name.starts_with("cali")) {
            let max = s.maxelem.unwrap_or(1_048_576);
            let n = s
                .members
                .len()
                .max(s.declared_entries.unwrap_or(0) as usize) as u64;
            if max == 0 || n * 10 < max * 9 {
                continue;
            }
            out.push(
                Finding::of(
                    &NEAR_MAXELEM,
                    format!("{} is at {n} of {max} members on {}", s.name, node.name),
                    format!(
                        "IP set {} on {} holds {n} members with maxelem {max}; at the limit the kernel refuses additions and Felix's ipset updates fail.",
                        s.name, node.name
                    ),
                )
                .severity(if n >= max { Severity::Error } else { Severity::Warning })
                .on_node(&node.name)
                .subject("ipset", &s.name)
                .evidence(Evidence {
                    path: sets.path().to_string(),
                    line: s.line,
                    excerpt: super::line_text(m, sets.path(), s.line).unwrap_or_else(|| s.name.clone()),
                })
                .confirm(format!("ipset list {} | head -8   # on {}", super::shell_quote(&s.name), node.name))
                .fix("Raise maxIpsetSize in the FelixConfiguration, or narrow the selector."),
            );
        }
    }
}
