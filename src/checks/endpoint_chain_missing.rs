//! CAL020: a local endpoint has no endpoint chain, or the dispatch chains do not reach it.

use super::{Check, Finding, Severity, Step};
use crate::calico::names::Direction;
use crate::model::{EndpointKind, Model};

pub const CHECK: Check = Check {
    code: "CAL020",
    name: "endpoint-chain-missing",
    severity: Severity::Error,
    step: Step::ChainsProgrammed,
    doc: r#"
## What it finds
A workload endpoint on a node whose `cali-tw-<iface>` / `cali-fw-<iface>` chain is absent
from that node's `iptables-save`, or present but not reached from `cali-to-wl-dispatch` /
`cali-from-wl-dispatch`.

## Why it matters
Felix has not programmed the pod: its traffic hits the dispatch chain's "Unknown interface" drop
(or, without any chain, no policy at all). Felix failing to apply an endpoint usually shows in
its log too ("Failed to apply policy to endpoint").

## Example
`demo/web` on node-1 (interface `cali46b6bee22de`) but no `cali-tw-cali46b6bee22de` chain.

## How to confirm by hand
`iptables-save -t filter | grep -e 'cali-tw-<iface>' -e 'cali-fw-<iface>'` on the node.

## What to do
Check the Felix log on that node for errors about the endpoint; restart calico-node on the node
if Felix is stuck; make sure the WorkloadEndpoint's interface name matches the host-side veth
(`ip link show <iface>`).
"#,
    run,
};

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    for node in m.nodes.iter().filter(|n| n.has_calico_iptables()) {
        let path = node
            .iptables
            .map(|d| d.path().to_string())
            .unwrap_or_default();
        for ec in &node.endpoint_chains {
            let e = &m.endpoints[ec.endpoint];
            if e.kind != EndpointKind::Workload || (ec.present && ec.dispatched) {
                continue;
            }
            let iface = e.iface.clone().unwrap_or_default();
            let dir = match ec.direction {
                Direction::Ingress => "ingress (to the pod)",
                Direction::Egress => "egress (from the pod)",
            };
            let (title, msg) = if !ec.present {
                (
                    format!("No {} chain for {} on {}", ec.chain, e.key, node.name),
                    format!(
                        "Endpoint {} (interface {iface}) is on node {}, but its {dir} chain {} is not in the dump: Felix has not programmed this endpoint.",
                        e.key, node.name, ec.chain
                    ),
                )
            } else {
                (
                    format!(
                        "{} is not reached from the dispatch chains on {}",
                        ec.chain, node.name
                    ),
                    format!(
                        "{} exists for {} but no rule of the workload dispatch chains jumps to it, so its packets hit \"Unknown interface\".",
                        ec.chain, e.key
                    ),
                )
            };
            out.push(
                Finding::of(&CHECK, title, msg)
                    .on_node(&node.name)
                    .subject("endpoint", &e.key)
                    .subject("chain", &ec.chain)
                    .evidence(
                        super::find_field_line(m, &e.loc.path, e.loc.line, "interfaceName", &iface)
                            .map(|(l, t)| e.loc.clone().with_line(l).evidence(t))
                            .unwrap_or_else(|| e.loc.evidence(format!("interfaceName: {iface}"))),
                    )
                    .evidence(crate::checks::Evidence {
                        path: path.clone(),
                        line: ec.line,
                        excerpt: if ec.present {
                            format!(":{} - [0:0]", ec.chain)
                        } else {
                            format!("(no chain {})", ec.chain)
                        },
                    })
                    .confirm(format!("iptables-save -t filter | grep -e {}   # on {}", super::shell_quote(&ec.chain), node.name))
                    .fix(format!(
                        "Look for errors about {} in the Felix log of {}; check `ip link show {iface}` exists; restart calico-node on {} if Felix is stuck.",
                        e.key, node.name, node.name
                    )),
            );
        }
    }
}
