//! CAL061: `[UNREPLIED]` conntrack flows of a node's own endpoints, grouped by endpoint, peer,
//! protocol and destination port, with what an unreplied entry proves about where the packets
//! went (a local policy drop leaves no entry). Flows of addresses that are no endpoint of the
//! node (the host itself, other clusters) are not this check's business.

use std::net::IpAddr;

use super::{Check, Evidence, Finding, Severity, Step, shell_quote};
use crate::calico::names;
use crate::model::flows::{
    CalicoDrop, EndpointsByIp, calico_drop, entry_text, packets, proto_name, state_word,
};
use crate::model::node::NodeModel;
use crate::model::{Endpoint, EndpointKind, Model};
use crate::parse::conntrack::Entry;

pub const CHECK: Check = Check {
    code: "CAL061",
    name: "conntrack-unreplied",
    severity: Severity::Warning,
    step: Step::PacketPath,
    doc: r#"
## What it finds
Flows marked `[UNREPLIED]` in a node's `conntrack -L` capture whose source or destination is
an endpoint of that node, grouped by (endpoint, peer, protocol, destination port), with how
many there are and the first one as evidence. For the destination, the endpoint of the bundle
that has the address (after DNAT: the reply tuple's source) and its node are named, and when
that node's dump shows the destination's ingress drop counting packets, that rule is shown too.
At most 25 groups per node are reported, the largest first.

## Why it matters
A flow dropped by a policy on the node never gets a conntrack entry: the first packet is
dropped in the filter table before the kernel confirms the entry. So an `[UNREPLIED]` entry on
the source's node means the packet passed the source's egress policy and left the node: it
died on the destination side (its ingress policy, a missing IP set member) or on the way (routes,
encapsulation, MTU), or the destination never answered. On the destination's node, an
unreplied entry means the packet passed its ingress policy and reached the pod, which did not
answer (or answered by another path).

## Example
node-1: 3 × `tcp 6 112 SYN_SENT src=10.65.0.7 dst=10.65.1.5 sport=33210 dport=8080
[UNREPLIED] …` from `demo/web` to `demo/backend` (node-2), whose `cali-tw-cali6793bd60945`
end-of-tier drop counted 45 packets.

## How to confirm by hand
`conntrack -L -p tcp -s <source ip> -d <destination> --dport <port> | grep UNREPLIED` on the
source's node, while the client retries. A single flow only a second old may just be waiting for
its answer: look at the timeout column (a new TCP SYN_SENT flow starts at 120).

## What to do
Follow the packet to the destination: on its node, watch the destination's ingress chain
(`iptables-save -c -t filter | grep -- '-A cali-tw-<iface> '`) while the client retries; a
growing end-of-tier drop means no policy allows the flow. If nothing grows there, check routes
and encapsulation between the nodes and that the destination listens on the port.
"#,
    run,
};

/// Groups reported per node, the largest first.
const PER_NODE: usize = 25;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    endpoint: usize,
    /// The local endpoint started the flow (else it is the destination).
    outbound: bool,
    /// The other side as the original direction names it (a service IP before DNAT).
    peer: IpAddr,
    proto: u8,
    dport: Option<u16>,
}

struct Group<'b> {
    count: u64,
    path: &'b str,
    first: &'b Entry,
}

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    let by_ip = m.endpoints_by_ip();
    if by_ip.is_empty() {
        return;
    }
    for node in &m.nodes {
        let mut local = vec![false; m.endpoints.len()];
        for &e in &node.local_endpoints {
            local[e] = true;
        }
        let is_local = |ip: IpAddr| by_ip.get(ip).filter(|&e| local[e]);
        let mut groups: foldhash::HashMap<Key, Group<'_>> = Default::default();
        for d in &node.conntrack {
            // `conntrack -E` prints every new flow as unreplied: only snapshots and the
            // destruction of flows that never got an answer count (`Table::unreplied`). Its
            // groups come in the order their keys first appear, so the first one met for a
            // key here holds its earliest entry.
            for g in d.data.unreplied.iter() {
                let (e, k) = (&g.first, &g.key);
                let key = if let Some(ep) = is_local(k.src) {
                    Key {
                        endpoint: ep,
                        outbound: true,
                        peer: k.dst,
                        proto: k.proto,
                        dport: k.dport,
                    }
                } else if let Some(ep) = is_local(k.reply_src).or_else(|| is_local(k.dst)) {
                    Key {
                        endpoint: ep,
                        outbound: false,
                        peer: k.src,
                        proto: k.proto,
                        dport: k.dport,
                    }
                } else {
                    continue;
                };
                groups
                    .entry(key)
                    .or_insert(Group {
                        count: 0,
                        path: d.path(),
                        first: e,
                    })
                    .count += g.count;
            }
        }
        let mut groups: Vec<(Key, Group<'_>)> = groups.into_iter().collect();
        groups.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(&b.0)));
        let total = groups.len();
        for (key, g) in groups.into_iter().take(PER_NODE) {
            let mut f = finding(m, node, &by_ip, key, &g);
            if total > PER_NODE {
                f.message.push_str(&format!(
                    " ({} has {total} groups of unreplied flows; the {PER_NODE} largest are \
                     reported.)",
                    node.name
                ));
            }
            out.push(f);
        }
    }
}

fn port_text(key: &Key) -> String {
    match key.dport {
        Some(p) => format!(":{p}/{}", proto_name(key.proto)),
        None => format!(" ({})", proto_name(key.proto)),
    }
}

fn confirm(node: &NodeModel<'_>, key: &Key, local_ip: IpAddr) -> String {
    let (s, d) = if key.outbound {
        (local_ip, key.peer)
    } else {
        (key.peer, local_ip)
    };
    let port = key
        .dport
        .map(|p| format!(" --dport {p}"))
        .unwrap_or_default();
    format!(
        "conntrack -L -p {} -s {s} -d {d}{port} | grep UNREPLIED   # on {}",
        proto_name(key.proto),
        node.name
    )
}

/// The counted drop with the most packets in an endpoint's ingress chain on its node.
struct IngressDrop<'b> {
    chain: String,
    packets: u64,
    tier: Option<String>,
    path: &'b str,
    line: usize,
    text: &'b str,
}

fn ingress_drop<'b>(m: &Model<'b>, node: &NodeModel<'b>, e: &Endpoint) -> Option<IngressDrop<'b>> {
    let iface = e.iface.as_deref()?;
    let prefix = match e.kind {
        EndpointKind::Workload => names::WORKLOAD_TO_ENDPOINT_PREFIX,
        EndpointKind::Host => names::HOST_FROM_ENDPOINT_PREFIX,
    };
    let name = names::endpoint_chain_name(
        prefix,
        names::host_endpoint_iface(iface),
        m.calico_version(),
        false,
    );
    let mut best: Option<IngressDrop<'b>> = None;
    for (dump, _) in node.ip_dumps() {
        let Some(chain) = dump.data.table("filter").and_then(|t| t.chain(&name)) else {
            continue;
        };
        for r in &chain.rules {
            let tier = match calico_drop(r) {
                Some(CalicoDrop::EndOfTier { tier }) => tier,
                Some(CalicoDrop::NoProfile) => None,
                _ => continue,
            };
            let n = packets(r);
            if n > 0 && best.as_ref().is_none_or(|b| n > b.packets) {
                best = Some(IngressDrop {
                    chain: name.clone(),
                    packets: n,
                    tier,
                    path: dump.artifact.path.as_str(),
                    line: r.line,
                    text: &r.text,
                });
            }
        }
    }
    best
}

fn finding(
    m: &Model<'_>,
    node: &NodeModel<'_>,
    by_ip: &EndpointsByIp,
    key: Key,
    g: &Group<'_>,
) -> Finding {
    let ep = &m.endpoints[key.endpoint];
    let e = g.first;
    let local_ip = if key.outbound {
        e.orig.src
    } else {
        e.reply.src
    };
    let proto = proto_name(key.proto);
    let port = port_text(&key);
    let first = super::line_text(m, g.path, e.line as usize).unwrap_or_else(|| entry_text(e));
    let state = e
        .state
        .map(|s| format!(" {}", state_word(s)))
        .unwrap_or_default();
    let mut f = if key.outbound {
        outbound(m, node, by_ip, key, g, ep, local_ip)
    } else {
        inbound(m, node, by_ip, key, g, ep, local_ip)
    };
    f.message = format!(
        "{}'s conntrack table holds {} [UNREPLIED]{state} {proto} flow(s) {}. {}",
        node.name,
        g.count,
        if key.outbound {
            format!("from {} ({local_ip}) to {}{port}", ep.key, key.peer)
        } else {
            format!("from {} to {} ({local_ip}){port}", key.peer, ep.key)
        },
        f.message
    );
    f.evidence.insert(
        0,
        Evidence {
            path: g.path.to_string(),
            line: e.line as usize,
            excerpt: first,
        },
    );
    f
}

fn outbound(
    m: &Model<'_>,
    node: &NodeModel<'_>,
    by_ip: &EndpointsByIp,
    key: Key,
    g: &Group<'_>,
    ep: &Endpoint,
    local_ip: IpAddr,
) -> Finding {
    let e = g.first;
    // After DNAT (a service), the reply comes from the real destination.
    let actual = e.reply.src;
    let port = port_text(&key);
    let dnat = if actual != key.peer {
        format!(" (translated to {actual})")
    } else {
        String::new()
    };
    let dest = by_ip.get(actual).map(|d| &m.endpoints[d]);
    let mut f = Finding::of(
        &CHECK,
        format!(
            "{} unreplied flow(s) from {} to {}{port} on {}",
            g.count, ep.key, key.peer, node.name
        ),
        String::new(),
    )
    .on_node(&node.name)
    .subject("endpoint", &ep.key)
    .subject("ip", local_ip.to_string())
    .subject("ip", key.peer.to_string());
    if actual != key.peer {
        f = f.subject("ip", actual.to_string());
    }
    let same_node = dest.is_some_and(|d| d.node.as_deref() == Some(node.name.as_str()));
    let why = if same_node {
        format!(
            "A flow dropped by a policy on {n} never gets a conntrack entry (its first packet is \
             dropped before the entry is confirmed), and the destination is on {n} too: so these \
             packets passed both {src}'s egress policy and the destination's ingress policy{dnat}.",
            n = node.name,
            src = ep.key
        )
    } else {
        format!(
            "A flow dropped by a policy on {n} never gets a conntrack entry (its first packet is \
             dropped before the entry is confirmed), so these packets passed {src}'s egress \
             policy and left {n}{dnat}: they died on the destination side or on the way, or the \
             destination did not answer.",
            n = node.name,
            src = ep.key
        )
    };
    let port_word = key
        .dport
        .map(|p| format!("port {p}"))
        .unwrap_or_else(|| "that protocol".to_string());
    let (dest_text, fix) = match dest {
        Some(d) if d.node.as_deref() == Some(node.name.as_str()) => {
            f = f.subject("endpoint", &d.key);
            (
                format!(" They reached {}, which did not answer.", d.key),
                format!(
                    "Check that {} listens on {port_word} and answers (its container ports, its \
                     logs); a pod that is not ready or a process bound to 127.0.0.1 looks like \
                     this.",
                    d.key
                ),
            )
        }
        Some(d) => {
            f = f.subject("endpoint", &d.key);
            let dn = d.node.clone().unwrap_or_default();
            let mut text = if dn.is_empty() {
                format!(" The destination is {}.", d.key)
            } else {
                format!(" The destination is {} on {dn}.", d.key)
            };
            let chain_hint = d
                .iface
                .as_deref()
                .map(|i| {
                    names::endpoint_chain_name(
                        names::WORKLOAD_TO_ENDPOINT_PREFIX,
                        i,
                        m.calico_version(),
                        false,
                    )
                })
                .unwrap_or_else(|| "cali-tw-<iface>".to_string());
            match m.node(&dn) {
                Some(dnode) => match ingress_drop(m, dnode, d) {
                    Some(drop) => {
                        let tier = drop
                            .tier
                            .as_deref()
                            .map(|t| format!("the end of tier {t}"))
                            .unwrap_or_else(|| "its end-of-policy drop".to_string());
                        text.push_str(&format!(
                            " On {dn}, its ingress chain {} has dropped {} packets at {tier} \
                             ({}:{}): its ingress policy is the likely place these packets die.",
                            drop.chain, drop.packets, drop.path, drop.line
                        ));
                        f = f.subject("chain", &drop.chain).evidence(Evidence {
                            path: drop.path.to_string(),
                            line: drop.line,
                            excerpt: drop.text.to_string(),
                        });
                    }
                    None if dnode.iptables.is_some() => text.push_str(&format!(
                        " No ingress drop of {} counted packets in {dn}'s dump: look at the way \
                         between the nodes (routes, encapsulation, MTU).",
                        d.key
                    )),
                    None => {}
                },
                None if !dn.is_empty() => text.push_str(&format!(
                    " {dn} is not in the bundle: collect it to see the destination's side."
                )),
                None => {}
            }
            (
                text,
                format!(
                    "On {}, watch `iptables-save -c -t filter | grep -- {}` while {} retries: a \
                     growing end-of-tier drop means no policy allows {} → {}{port}; fix that \
                     policy (selectors, ports, IP set members). If nothing grows, check the \
                     route from {} (`ip route get {actual}`) and that {} listens on {port_word}.",
                    if dn.is_empty() {
                        "the destination's node"
                    } else {
                        &dn
                    },
                    shell_quote(&format!("-A {chain_hint} ")),
                    ep.key,
                    ep.key,
                    d.key,
                    node.name,
                    d.key
                ),
            )
        }
        None => (
            format!(
                " {actual} is no endpoint of the bundle (an address outside the cluster, a host, \
                 or a pod the bundle does not show)."
            ),
            if actual != key.peer {
                format!(
                    "The service address {} was translated to {actual}: check that {actual} is \
                     still a ready endpoint of the service (`kubectl get endpointslices -A -o \
                     wide | grep -F {actual}`), that {} reaches it (`ip route get {actual}` \
                     there) and that it answers on {port_word}.",
                    key.peer, node.name
                )
            } else {
                format!(
                    "Check that {actual} is reachable from {} (`ip route get {actual}` there), \
                     that a firewall on the way lets the traffic through, and that it answers on \
                     {port_word}.",
                    node.name
                )
            },
        ),
    };
    f.message = format!("{why}{dest_text}");
    f.confirm(confirm(node, &key, local_ip)).fix(fix)
}

fn inbound(
    m: &Model<'_>,
    node: &NodeModel<'_>,
    by_ip: &EndpointsByIp,
    key: Key,
    g: &Group<'_>,
    ep: &Endpoint,
    local_ip: IpAddr,
) -> Finding {
    let port = port_text(&key);
    let peer = by_ip.get(key.peer).map(|p| &m.endpoints[p]);
    let peer_text = match peer {
        Some(p) => format!(
            "{} ({}{})",
            key.peer,
            p.key,
            p.node
                .as_deref()
                .map(|n| format!(" on {n}"))
                .unwrap_or_default()
        ),
        None => key.peer.to_string(),
    };
    let port_word = key
        .dport
        .map(|p| format!("port {p}"))
        .unwrap_or_else(|| "that protocol".to_string());
    let mut f = Finding::of(
        &CHECK,
        format!(
            "{} unreplied flow(s) from {} to {}{port} on {}",
            g.count, key.peer, ep.key, node.name
        ),
        format!(
            "The flows come from {peer_text}. A policy drop on {n} would have left no entry, so \
             these packets passed {dst}'s ingress policy and were sent to the pod, but no reply \
             came back through {n}: {dst} did not answer (nothing listening on {port_word}?), \
             or its reply left by another path (asymmetric routing, rp_filter, a second \
             interface).",
            n = node.name,
            dst = ep.key
        ),
    )
    .on_node(&node.name)
    .subject("endpoint", &ep.key)
    .subject("ip", local_ip.to_string())
    .subject("ip", key.peer.to_string());
    if let Some(p) = peer {
        f = f.subject("endpoint", &p.key);
    }
    f.confirm(confirm(node, &key, local_ip)).fix(format!(
        "Check that {} listens on {port_word} and answers (its container ports, readiness, \
         logs), and that its replies to {} leave through {} (`ip route get {}` on {}).",
        ep.key, key.peer, node.name, key.peer, node.name
    ))
}

#[cfg(test)]
mod tests {
    use crate::checks::Finding;
    use crate::checks::testing::has;

    fn findings(dir: &str) -> Vec<Finding> {
        crate::checks::testing::findings(dir, "CAL061")
    }

    #[test]
    fn the_demo_flow_from_web_to_backend_points_at_backends_ingress_drop_on_node_2() {
        let found = findings("testdata/bundles/calico-bundle-demo-20261125T140215Z");
        assert_eq!(found.len(), 1, "{found:#?}");
        let f = &found[0];
        assert_eq!(f.node.as_deref(), Some("node-1"));
        assert!(has(f, "endpoint", "demo/web"));
        assert!(has(f, "ip", "10.65.0.7"));
        assert!(has(f, "ip", "10.65.1.5"));
        assert!(has(f, "endpoint", "demo/backend"));
        assert!(has(f, "chain", "cali-tw-cali6793bd60945"));
        assert_eq!(f.evidence[0].path, "nodes/node-1/conntrack.txt");
        assert_eq!(f.evidence[0].line, 2);
        assert!(f.evidence[0].excerpt.contains("[UNREPLIED]"));
        assert_eq!(f.evidence[1].path, "nodes/node-2/iptables-save.txt");
        assert_eq!(f.evidence[1].line, 84);
        assert!(
            f.message.contains("demo/backend on node-2"),
            "{}",
            f.message
        );
        assert_eq!(
            f.confirm.as_deref(),
            Some(
                "conntrack -L -p tcp -s 10.65.0.7 -d 10.65.1.5 --dport 8080 | grep UNREPLIED   # on node-1"
            )
        );
    }

    #[test]
    fn unreplied_flows_are_grouped_per_endpoint_peer_and_port() {
        let found = findings("testdata/checks/CAL061-unreplied-flows");
        let node1: Vec<&Finding> = found
            .iter()
            .filter(|f| f.node.as_deref() == Some("node-1"))
            .collect();
        assert_eq!(node1.len(), 4, "{node1:#?}");
        let to_backend = node1
            .iter()
            .find(|f| has(f, "endpoint", "demo/backend"))
            .expect("web → backend");
        assert!(
            to_backend.message.contains(" 3 [UNREPLIED] SYN_SENT tcp"),
            "{}",
            to_backend.message
        );
        assert_eq!(to_backend.evidence[0].line, 2);
        // A service address: named with the pod it was translated to, which the bundle lacks.
        let dns = node1
            .iter()
            .find(|f| has(f, "ip", "10.96.0.10"))
            .expect("client → DNS service");
        assert!(has(dns, "endpoint", "demo/client"));
        assert!(has(dns, "ip", "10.65.1.20"));
        assert!(
            dns.message.contains(" 2 [UNREPLIED] udp"),
            "{}",
            dns.message
        );
        assert!(
            dns.message.contains("10.65.1.20 is no endpoint"),
            "{}",
            dns.message
        );
        assert_eq!(dns.evidence[0].line, 5);
        // The destination is local: it passed its ingress too and did not answer.
        let same_node = node1
            .iter()
            .find(|f| f.title.contains(":9090/tcp"))
            .expect("client → web:9090");
        assert!(
            same_node
                .message
                .contains("the destination is on node-1 too"),
            "{}",
            same_node.message
        );
        assert!(
            same_node
                .message
                .contains("They reached demo/web, which did not answer."),
            "{}",
            same_node.message
        );
        // The local endpoint is the destination.
        let inbound = node1
            .iter()
            .find(|f| f.title.starts_with("1 unreplied flow(s) from 10.65.1.6"))
            .expect("allowed → web:80");
        assert!(has(inbound, "endpoint", "demo/allowed"));
        assert!(
            inbound.message.contains("passed demo/web's ingress policy"),
            "{}",
            inbound.message
        );
        assert_eq!(
            inbound.confirm.as_deref(),
            Some(
                "conntrack -L -p tcp -s 10.65.1.6 -d 10.65.0.7 --dport 80 | grep UNREPLIED   # on node-1"
            )
        );
        // Host-to-host flows are no endpoint's.
        assert!(!found.iter().any(|f| has(f, "ip", "10.0.0.10")));
    }
}
