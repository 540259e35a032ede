//! CAL001: a node lacks an artifact its dataplane mode needs, or has it empty.

use super::{Check, Finding, Severity, Step};
use crate::bundle::ArtifactKind;
use crate::model::{Dataplane, Model};

pub const CHECK: Check = Check {
    code: "CAL001",
    name: "artifact-missing",
    severity: Severity::Warning,
    step: Step::Bundle,
    doc: r#"
## What it finds
A node in the bundle without a dump the analysis needs for its dataplane mode, or with that
dump empty: `iptables-save` and `ipset` for the iptables dataplane, `nft list ruleset` for
nftables, the eBPF dumps for eBPF; and, in every mode, `conntrack -L` and the Felix log.

## Why it matters
Without the dump, the checks that read it cannot run for that node: a missing chain or IP set
member there stays invisible, and the report's verdict for that step is "not checked", not
"fine".

## Example
`nodes/worker-2/` holds `felix.log` and `conntrack.txt` but no `iptables-save.txt`.

## How to confirm by hand
On the node: `iptables-save -c | head`, `ipset list -n | head`, `conntrack -C`.

## What to do
Collect the bundle again with `collector/calico-collect.sh node` on that node (as root), or
add the missing command's output to the bundle by hand.
"#,
    run,
};

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    let dataplane = m.dataplane.unwrap_or(Dataplane::Iptables);
    for node in &m.nodes {
        let mut needed: Vec<(&[ArtifactKind], &str, &str)> = match dataplane {
            Dataplane::Iptables => vec![
                (
                    &[ArtifactKind::IptablesSave],
                    "iptables-save",
                    "iptables-save -c",
                ),
                (
                    &[ArtifactKind::IpsetSave, ArtifactKind::IpsetList],
                    "ipset",
                    "ipset save",
                ),
            ],
            Dataplane::Nftables => {
                vec![(
                    &[ArtifactKind::NftRuleset],
                    "nft ruleset",
                    "nft list ruleset",
                )]
            }
            Dataplane::Bpf => vec![(
                &[ArtifactKind::CalicoBpfDump, ArtifactKind::BpfJson],
                "eBPF dumps",
                "calico-node -bpf policy dump <iface> all",
            )],
        };
        needed.push((
            &[ArtifactKind::Conntrack],
            "conntrack table",
            "conntrack -L",
        ));
        needed.push((
            &[ArtifactKind::FelixLog],
            "Felix log",
            "kubectl logs -n calico-system <calico-node pod>",
        ));
        for (kinds, what, cmd) in needed {
            let arts: Vec<_> = m
                .bundle
                .artifacts
                .iter()
                .filter(|a| {
                    kinds.contains(&a.kind) && a.node.as_deref() == Some(node.name.as_str())
                })
                .collect();
            let severity = if matches!(what, "conntrack table" | "Felix log") {
                Severity::Info
            } else {
                Severity::Warning
            };
            if arts.is_empty() {
                out.push(
                    Finding::of(
                        &CHECK,
                        format!("No {what} for node {}", node.name),
                        format!(
                            "The bundle has no {what} for node {}; the checks that read it did not run for this node.",
                            node.name
                        ),
                    )
                    .severity(severity)
                    .on_node(&node.name)
                    .subject("node", &node.name)
                    .subject("artifact", what)
                    .evidence(crate::checks::Evidence {
                        path: node_dir(m, &node.name),
                        line: 0,
                        excerpt: format!("(no {what} among the node's files)"),
                    })
                    .confirm(format!("{cmd}   # on node {}", node.name))
                    .fix(format!("Collect it on node {}: collector/calico-collect.sh node", node.name)),
                );
            } else if let Some(a) = arts.iter().find(|a| a.bytes == 0) {
                out.push(
                    Finding::of(
                        &CHECK,
                        format!("Empty {what} for node {}", node.name),
                        format!("{} is empty.", a.path),
                    )
                    .severity(severity)
                    .on_node(&node.name)
                    .subject("artifact", &a.path)
                    .evidence(crate::checks::Evidence {
                        path: a.path.clone(),
                        line: 0,
                        excerpt: String::new(),
                    })
                    .confirm(format!("{cmd}   # on node {}", node.name)),
                );
            }
        }
    }
}

/// Where the node's files are in the bundle (`nodes/<node>/` in our layout).
fn node_dir(m: &Model<'_>, node: &str) -> String {
    m.bundle
        .artifacts
        .iter()
        .find(|a| a.node.as_deref() == Some(node))
        .and_then(|a| a.path.rsplit_once('/').map(|(d, _)| format!("{d}/")))
        .unwrap_or_else(|| format!("nodes/{node}/"))
}
