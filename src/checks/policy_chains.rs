//! CAL030/CAL031/CAL032: policy chains missing, orphaned, or naming a policy that does not exist.

use super::{Check, Evidence, Finding, Severity, Step};
use crate::calico::names::{self, Direction};
use crate::model::Model;
use crate::model::node::ChainRole;

pub const MISSING: Check = Check {
    code: "CAL030",
    name: "policy-chain-missing",
    severity: Severity::Error,
    step: Step::ChainsProgrammed,
    doc: r#"
## What it finds
A policy that applies to an endpoint on the node (so Felix must render it there) whose
`cali-pi-`/`cali-po-` chain is not in the node's dump under any name the Calico version could
have given it (the stored name may be `default.<name>` or `<name>`; chain names are hashed
when long).

## Why it matters
Without its chain the policy's rules are not there: the endpoint chain either jumps nowhere or
was not rewritten. Felix failing to program a policy shows as iptables-restore errors in its
log.

## Example
`demo/allow-to-backend` selects `demo/backend` on node-2, but none of
`cali-pi-_KRHdavhfzMk0BqCqEjF`, `cali-pi-demo/default.allow-to-backend` is in the dump.

## How to confirm by hand
`calisnap names policy <name> --namespace <ns> --calico-version X.Y` gives the chain name;
`iptables-save | grep -- '<chain>'` on the node.

## What to do
Look at the Felix log on that node for iptables-restore failures; restart calico-node there if
Felix is stuck.
"#,
    run: run_missing,
};

pub const ORPHAN: Check = Check {
    code: "CAL031",
    name: "policy-chain-orphan",
    severity: Severity::Warning,
    step: Step::ChainsProgrammed,
    doc: r#"
## What it finds
A `cali-pi-`/`cali-po-` chain in a node's dump that no policy in the bundle explains, by its
naming comment or by any name a Calico version could compute for a current policy.

## Why it matters
A stale chain: left from a deleted or renamed policy (Felix normally removes these), or the
bundle's resources are from another time or cluster than the dump. If an endpoint chain still
jumps to it, traffic is judged by a policy that no longer exists.

## Example
`cali-pi-_3D3NG9FhsojfeqYXdsO` with comment `Policy shop/default.old-policy ingress`, and no
policy `shop/old-policy` in the bundle.

## How to confirm by hand
`iptables-save | grep -- '<chain>'` and `calicoctl get networkpolicy -A`.

## What to do
Check the bundle's resources are complete and current; if they are, restart calico-node on the
node so Felix cleans up.
"#,
    run: run_orphan,
};

pub const UNKNOWN_COMMENT: Check = Check {
    code: "CAL032",
    name: "chain-comment-unknown-policy",
    severity: Severity::Warning,
    step: Step::ChainsProgrammed,
    doc: r#"
## What it finds
A policy chain whose naming comment (`Policy <ns>/<name> ingress`, or `<Kind> <ns>/<name>
ingress` from v3.32) names a policy the bundle does not have, or a policy other than the one
its name belongs to.

## Why it matters
The comment is what Felix wrote when it programmed the chain, so the dump shows a policy the
cluster view does not: missing resources in the bundle, a deleted policy still programmed, or a
name computed for the wrong Calico version.

## Example
`cali-pi-_abc…` with comment `Policy prod/default.allow-api ingress`; no `prod/allow-api`.

## How to confirm by hand
`iptables-save | grep -- 'Policy <ns>/'` on the node; `calicoctl get networkpolicy -n <ns>`.

## What to do
Check the bundle's resources are complete; if the policy was deleted, restart calico-node so
Felix removes the chain.
"#,
    run: run_unknown_comment,
};

fn dir_word(d: Direction) -> &'static str {
    match d {
        Direction::Ingress => "ingress",
        Direction::Egress => "egress",
    }
}

fn run_missing(m: &Model<'_>, out: &mut Vec<Finding>) {
    for node in m.nodes.iter().filter(|n| n.has_calico_iptables()) {
        let path = node
            .iptables
            .map(|d| d.path().to_string())
            .unwrap_or_default();
        for pc in node.policy_chains.iter().filter(|c| !c.found) {
            let p = &m.policies[pc.policy];
            if p.pre_dnat || p.do_not_track {
                continue;
            }
            let eps: Vec<String> = m.policy_endpoints[pc.policy]
                .iter()
                .filter(|&&e| node.local_endpoints.contains(&e))
                .map(|&e| m.endpoints[e].key.clone())
                .take(3)
                .collect();
            let mut f = Finding::of(
                &MISSING,
                format!("No {} chain for {} on {}", dir_word(pc.direction), p.display, node.name),
                format!(
                    "{} applies to {} on {}, so Felix should have programmed its {} chain ({} for {}), but none of these names is in the dump: {}.",
                    p.display,
                    eps.join(", "),
                    node.name,
                    dir_word(pc.direction),
                    pc.chain,
                    m.version.text,
                    pc.candidates.join(", ")
                ),
            )
            .on_node(&node.name)
            .subject("policy", &p.display)
            .subject("chain", &pc.chain)
            .evidence(p.loc.evidence(format!("{} ({})", p.display, p.policy_ref.kind)))
            .evidence(Evidence {
                path: path.clone(),
                line: 0,
                excerpt: format!("(no chain {})", pc.chain),
            })
            .confirm(format!(
                "iptables-save | grep -c -- {}   # on {}",
                super::shell_quote(&pc.chain),
                node.name
            ))
            .fix(format!(
                "Look for iptables-restore errors in the Felix log of {}; restart calico-node there if Felix is stuck.",
                node.name
            ));
            for e in &eps {
                f = f.subject("endpoint", e);
            }
            out.push(f);
        }
    }
}

fn run_orphan(m: &Model<'_>, out: &mut Vec<Finding>) {
    if !m.has_cluster_resources() {
        return;
    }
    for node in &m.nodes {
        let Some(dump) = node.iptables else { continue };
        for t in &dump.data.tables {
            for c in &t.chains {
                let n = c.name.as_str();
                if !(n.starts_with(names::POLICY_INBOUND_PREFIX)
                    || n.starts_with(names::POLICY_OUTBOUND_PREFIX))
                {
                    continue;
                }
                if matches!(node.chains.get(n), Some(ChainRole::Policy { .. })) {
                    continue;
                }
                let comment = c
                    .rules
                    .first()
                    .and_then(|r| r.comments.iter().find(|x| !x.starts_with("cali:")))
                    .cloned();
                let referenced = t
                    .chains
                    .iter()
                    .flat_map(|ch| ch.rules.iter())
                    .find(|r| r.jump_target() == Some(n));
                let mut f = Finding::of(
                    &ORPHAN,
                    format!("Orphan policy chain {n} on {}", node.name),
                    format!(
                        "{n} ({} rules{}) is in the {} table of {} but no policy in the bundle explains it{}.",
                        c.rules.len(),
                        comment.as_ref().map(|x| format!(", comment \"{x}\"")).unwrap_or_default(),
                        t.name,
                        node.name,
                        if referenced.is_some() { "; an endpoint chain still jumps to it" } else { "" }
                    ),
                )
                .on_node(&node.name)
                .subject("chain", n)
                .evidence(Evidence {
                    path: dump.path().to_string(),
                    line: c.line,
                    excerpt: format!(":{n} - [0:0]"),
                })
                .confirm(format!("iptables-save | grep -- {}   # on {}", super::shell_quote(n), node.name))
                .fix("Check the bundle's resources are complete and current; if so, restart calico-node on the node so Felix removes stale chains.");
                if let Some(r) = referenced {
                    f = f.evidence(Evidence {
                        path: dump.path().to_string(),
                        line: r.line,
                        excerpt: r.text.to_string(),
                    });
                }
                if comment
                    .as_deref()
                    .is_some_and(|c| c.ends_with(" ingress") || c.ends_with(" egress"))
                {
                    // A naming comment: CAL032 reports it with the name it carries.
                    continue;
                }
                out.push(f);
            }
        }
    }
}

fn run_unknown_comment(m: &Model<'_>, out: &mut Vec<Finding>) {
    if !m.has_cluster_resources() {
        return;
    }
    for node in &m.nodes {
        let path = node
            .iptables
            .map(|d| d.path().to_string())
            .unwrap_or_default();
        for mm in &node.mismatches {
            let (title, msg, sev) = match (mm.comment_policy, mm.name_policy) {
                (None, _) => (
                    format!("{} names a policy the bundle does not have", mm.chain),
                    format!(
                        "The first rule of {} on {} says \"{}\", but the bundle has no such policy{}.",
                        mm.chain,
                        node.name,
                        mm.comment,
                        mm.name_policy
                            .map(|p| format!(
                                " (the chain name belongs to {})",
                                m.policies[p].display
                            ))
                            .unwrap_or_default()
                    ),
                    Severity::Warning,
                ),
                (Some(c), Some(n)) => (
                    format!("{}: comment and name disagree", mm.chain),
                    format!(
                        "{} on {} is named like {} but its comment says \"{}\" ({}).",
                        mm.chain,
                        node.name,
                        m.policies[n].display,
                        mm.comment,
                        m.policies[c].display
                    ),
                    Severity::Info,
                ),
                (Some(_), None) => continue,
            };
            out.push(
                Finding::of(&UNKNOWN_COMMENT, title, msg)
                    .severity(sev)
                    .on_node(&node.name)
                    .subject("chain", &mm.chain)
                    .evidence(Evidence {
                        path: path.clone(),
                        line: mm.line,
                        excerpt: super::line_text(m, &path, mm.line).unwrap_or_else(|| mm.comment.clone()),
                    })
                    .confirm(format!("iptables-save | grep -- {}   # on {}", super::shell_quote(&mm.chain), node.name))
                    .fix("Check the bundle's policies are complete; if the policy was deleted, restart calico-node so Felix removes its chain."),
            );
        }
    }
}
