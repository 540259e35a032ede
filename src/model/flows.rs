//! Read-only lookups for the packet-path checks (rule counters and conntrack): which endpoint
//! owns an address, which endpoint an endpoint chain of a dump serves, which of Felix's own drop
//! rules a rule is (by the comments Felix writes on them), and which policies or profiles an
//! endpoint chain evaluated before one of those drops. Address lookups are hash maps built once
//! per check: a conntrack table can hold a million flows.
//!
//! This is not a packet evaluator: nothing here follows a packet through the rules.

use std::collections::HashMap;
use std::net::IpAddr;

use super::Model;
use super::node::{ChainRole, Dumped, NodeModel};
use crate::calico::names::{self, Direction};
use crate::parse::conntrack::{Entry, L4, TcpState};
use crate::parse::iptables_save::{Chain, Dump, Rule, Table, TargetKind};

/// Endpoints by address (host addresses of their `ipNetworks`).
#[derive(Debug, Default)]
pub struct EndpointsByIp {
    map: HashMap<IpAddr, usize>,
}

impl EndpointsByIp {
    /// The endpoint (index into `Model::endpoints`) that has this address.
    pub fn get(&self, ip: IpAddr) -> Option<usize> {
        self.map.get(&ip).copied()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl Model<'_> {
    /// Every endpoint's host addresses. When two endpoints claim one address (a stale
    /// WorkloadEndpoint and the pod that reused its IP) the first in model order keeps it.
    pub fn endpoints_by_ip(&self) -> EndpointsByIp {
        let mut map = HashMap::new();
        for (i, e) in self.endpoints.iter().enumerate() {
            for net in &e.ips {
                // Workload IPs are host networks; a wider network is no single endpoint.
                if net.prefix_len() == net.max_prefix_len() {
                    map.entry(net.addr()).or_insert(i);
                }
            }
        }
        EndpointsByIp { map }
    }
}

impl<'b> NodeModel<'b> {
    /// The IPv4 and IPv6 `iptables-save` dumps of the node, each with the command that makes it.
    pub fn ip_dumps(&self) -> impl Iterator<Item = (Dumped<'b, Dump>, &'static str)> {
        self.iptables
            .map(|d| (d, "iptables-save"))
            .into_iter()
            .chain(self.ip6tables.map(|d| (d, "ip6tables-save")))
    }
}

/// True when the dump carries packet counters (`iptables-save -c`).
pub fn has_counters(dump: &Dump) -> bool {
    dump.rules().any(|(_, _, r)| r.counters.is_some())
}

/// Packets a rule counted (0 without counters).
pub fn packets(rule: &Rule) -> u64 {
    rule.counters.map(|c| c.packets).unwrap_or(0)
}

/// Bytes a rule counted (0 without counters).
pub fn bytes(rule: &Rule) -> u64 {
    rule.counters.map(|c| c.bytes).unwrap_or(0)
}

/// A rule whose verdict discards the packet: `DROP`, or `REJECT` (Felix's
/// `iptablesFilterDenyAction: Reject` writes REJECT where it would write DROP).
pub fn is_drop(rule: &Rule) -> bool {
    matches!(
        rule.target.as_ref().map(|t| &t.kind),
        Some(TargetKind::Drop) | Some(TargetKind::Reject { .. })
    )
}

/// One of the drop rules Felix writes in its endpoint and dispatch chains, known by its comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalicoDrop {
    /// `End of tier <t>. Drop if no policies passed packet` (v3.30+), `Drop if no policies passed
    /// packet` (earlier; `Reject …` with the Reject deny action). `tier` when the comment names it.
    EndOfTier { tier: Option<String> },
    /// `Drop if no profiles matched` (or `Reject …`).
    NoProfile,
    /// `Unknown interface`: the end of a dispatch chain.
    UnknownInterface,
}

/// Which of Felix's drop rules `rule` is, if any.
pub fn calico_drop(rule: &Rule) -> Option<CalicoDrop> {
    if !is_drop(rule) {
        return None;
    }
    rule.comments.iter().find_map(|c| {
        if c.ends_with("if no policies passed packet") {
            let tier = c
                .strip_prefix("End of tier ")
                .and_then(|rest| rest.rsplit_once(". "))
                .map(|(t, _)| t.to_string());
            Some(CalicoDrop::EndOfTier { tier })
        } else if c.ends_with("if no profiles matched") {
            Some(CalicoDrop::NoProfile)
        } else if c == "Unknown interface" {
            Some(CalicoDrop::UnknownInterface)
        } else {
            None
        }
    })
}

/// The endpoint an endpoint chain (`cali-tw-`, `cali-fw-`, `cali-th-` …) serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainEndpoint {
    /// Index into `Model::endpoints`; `None` when no endpoint of the bundle has the interface.
    pub endpoint: Option<usize>,
    pub prefix: &'static str,
    /// The interface as the chain name spells it (Felix's name for a host endpoint's `*`).
    pub iface: String,
}

impl ChainEndpoint {
    /// The policy direction the chain enforces for its endpoint.
    pub fn direction(&self) -> Direction {
        match self.prefix {
            names::WORKLOAD_TO_ENDPOINT_PREFIX
            | names::HOST_FROM_ENDPOINT_PREFIX
            | names::HOST_FROM_ENDPOINT_FORWARD_PREFIX => Direction::Ingress,
            _ => Direction::Egress,
        }
    }

    /// `ingress of demo/web`, `forwarded egress of host endpoint node-1-eth0`,
    /// `ingress of interface cali12345678901, which no endpoint of the bundle has`.
    pub fn describe(&self, m: &Model<'_>) -> String {
        let dir = match self.direction() {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        };
        let fwd = if self.prefix == names::HOST_TO_ENDPOINT_FORWARD_PREFIX
            || self.prefix == names::HOST_FROM_ENDPOINT_FORWARD_PREFIX
        {
            "forwarded "
        } else {
            ""
        };
        match self.endpoint.map(|e| &m.endpoints[e]) {
            Some(e) if e.kind == super::EndpointKind::Host => {
                format!("{fwd}{dir} of host endpoint {}", e.key)
            }
            Some(e) => format!("{fwd}{dir} of {}", e.key),
            None => format!(
                "{fwd}{dir} of interface {}, which no endpoint of the bundle has",
                self.iface
            ),
        }
    }
}

/// Endpoints by interface name (Felix's spelling: a host endpoint's `*` is
/// `any-interface-at-all`). Built once for the whole model, shared by every node.
#[derive(Debug, Default)]
pub struct EndpointsByIface {
    map: HashMap<String, usize>,
}

impl EndpointsByIface {
    pub fn get(&self, iface: &str) -> Option<usize> {
        self.map.get(iface).copied()
    }
}

impl Model<'_> {
    /// Every endpoint by its interface; the first in model order keeps a shared name.
    pub fn endpoints_by_iface(&self) -> EndpointsByIface {
        let mut map = HashMap::new();
        for (i, e) in self.endpoints.iter().enumerate() {
            if let Some(iface) = &e.iface {
                map.entry(names::host_endpoint_iface(iface).to_string())
                    .or_insert(i);
            }
        }
        EndpointsByIface { map }
    }
}

/// Endpoint chain name → endpoint, for one node: the names Felix gives its local endpoints'
/// chains (recomputed, so long host-endpoint names that Felix hashes are found too), then any
/// endpoint of the bundle with the interface the chain name spells.
#[derive(Debug)]
pub struct ChainOwners<'a> {
    by_chain: HashMap<String, (usize, &'static str)>,
    by_iface: &'a EndpointsByIface,
}

impl<'a> ChainOwners<'a> {
    pub fn new(
        m: &Model<'_>,
        node: &NodeModel<'_>,
        by_iface: &'a EndpointsByIface,
    ) -> ChainOwners<'a> {
        let version = m.calico_version();
        let mut by_chain = HashMap::new();
        for &ei in &node.local_endpoints {
            let Some(iface) = &m.endpoints[ei].iface else {
                continue;
            };
            let iface = names::host_endpoint_iface(iface);
            for prefix in names::ENDPOINT_CHAIN_PREFIXES {
                by_chain
                    .entry(names::endpoint_chain_name(prefix, iface, version, false))
                    .or_insert((ei, prefix));
            }
        }
        ChainOwners { by_chain, by_iface }
    }

    /// The endpoint `chain` serves, when it is an endpoint chain.
    pub fn owner(&self, m: &Model<'_>, chain: &str) -> Option<ChainEndpoint> {
        if let Some(&(ei, prefix)) = self.by_chain.get(chain) {
            let iface = m.endpoints[ei].iface.clone().unwrap_or_default();
            return Some(ChainEndpoint {
                endpoint: Some(ei),
                prefix,
                iface: names::host_endpoint_iface(&iface).to_string(),
            });
        }
        let prefix = names::ENDPOINT_CHAIN_PREFIXES
            .iter()
            .copied()
            .filter(|p| chain.starts_with(p))
            .max_by_key(|p| p.len())?;
        let iface = chain.get(prefix.len()..)?.to_string();
        Some(ChainEndpoint {
            endpoint: self.by_iface.get(&iface),
            prefix,
            iface,
        })
    }
}

/// Who a jump from an endpoint chain evaluates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evaluated {
    Policy(usize),
    Profile(String),
    /// A policy or profile chain nothing in the bundle explains.
    Unknown,
}

/// One policy or profile chain an endpoint chain jumped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluatedChain {
    pub chain: String,
    pub what: Evaluated,
    /// Line of the jump (in the endpoint chain, or in the policy-group chain it went through).
    pub line: usize,
    /// The jump rule as dumped.
    pub text: String,
}

impl EvaluatedChain {
    /// The policy's display name, `profile <name>`, or the chain name.
    pub fn name(&self, m: &Model<'_>) -> String {
        match &self.what {
            Evaluated::Policy(p) => m.policies[*p].display.clone(),
            Evaluated::Profile(p) => format!("profile {p}"),
            Evaluated::Unknown => self.chain.clone(),
        }
    }
}

/// A tier's start as Felix marks it: `Start of tier <t>` (v3.29+), `Start of policies` (older).
fn starts_tier(rule: &Rule) -> bool {
    rule.comments
        .iter()
        .any(|c| c.starts_with("Start of tier") || c == "Start of policies")
}

fn is_policy_chain(name: &str) -> bool {
    name.starts_with(names::POLICY_INBOUND_PREFIX)
        || name.starts_with(names::POLICY_OUTBOUND_PREFIX)
}

fn is_profile_chain(name: &str) -> bool {
    name.starts_with(names::PROFILE_INBOUND_PREFIX)
        || name.starts_with(names::PROFILE_OUTBOUND_PREFIX)
}

/// What one jump target evaluates, with policy groups expanded into their policies.
fn evaluated_by(node: &NodeModel<'_>, table: &Table, jump: &Rule, out: &mut Vec<EvaluatedChain>) {
    let Some(target) = jump.jump_target() else {
        return;
    };
    let what = match node.chains.get(target) {
        Some(ChainRole::Policy { policy, .. }) => Evaluated::Policy(*policy),
        Some(ChainRole::Profile { profile, .. }) => Evaluated::Profile(profile.clone()),
        Some(ChainRole::Group { .. }) => {
            if let Some(g) = table.chain(target) {
                for r in &g.rules {
                    if r.jump_target().is_some_and(is_policy_chain) {
                        evaluated_by(node, table, r, out);
                    }
                }
            }
            return;
        }
        _ if is_policy_chain(target) || is_profile_chain(target) => Evaluated::Unknown,
        _ => return,
    };
    out.push(EvaluatedChain {
        chain: target.to_string(),
        what,
        line: jump.line,
        text: jump.text.to_string(),
    });
}

/// The policies an end-of-tier drop at `chain.rules[idx]` closes: the policy jumps since the
/// tier's start (or since the previous tier's drop), in order, groups expanded.
pub fn tier_policies(
    node: &NodeModel<'_>,
    table: &Table,
    chain: &Chain,
    idx: usize,
) -> Vec<EvaluatedChain> {
    let mut jumps: Vec<&Rule> = Vec::new();
    for r in chain.rules.iter().take(idx).rev() {
        if starts_tier(r) || matches!(calico_drop(r), Some(CalicoDrop::EndOfTier { .. })) {
            break;
        }
        if r.jump_target().is_some_and(|t| !is_profile_chain(t)) {
            jumps.push(r);
        }
    }
    let mut out = Vec::new();
    for r in jumps.into_iter().rev() {
        evaluated_by(node, table, r, &mut out);
    }
    out
}

/// The profiles a `Drop if no profiles matched` at `chain.rules[idx]` closes, in order.
pub fn profiles_before(
    node: &NodeModel<'_>,
    table: &Table,
    chain: &Chain,
    idx: usize,
) -> Vec<EvaluatedChain> {
    let mut out = Vec::new();
    for r in chain.rules.iter().take(idx) {
        if r.jump_target().is_some_and(is_profile_chain) {
            evaluated_by(node, table, r, &mut out);
        }
    }
    out
}

/// `tcp`, `udp`, `icmp` … as `conntrack -p` takes them; other protocols by number.
pub fn proto_name(proto: u8) -> String {
    match proto {
        1 => "icmp".to_string(),
        6 => "tcp".to_string(),
        17 => "udp".to_string(),
        33 => "dccp".to_string(),
        47 => "gre".to_string(),
        58 => "icmpv6".to_string(),
        132 => "sctp".to_string(),
        136 => "udplite".to_string(),
        n => n.to_string(),
    }
}

/// A TCP state as conntrack prints it.
pub fn state_word(s: TcpState) -> &'static str {
    match s {
        TcpState::None => "NONE",
        TcpState::SynSent => "SYN_SENT",
        TcpState::SynRecv => "SYN_RECV",
        TcpState::Established => "ESTABLISHED",
        TcpState::FinWait => "FIN_WAIT",
        TcpState::CloseWait => "CLOSE_WAIT",
        TcpState::LastAck => "LAST_ACK",
        TcpState::TimeWait => "TIME_WAIT",
        TcpState::Close => "CLOSE",
        TcpState::SynSent2 => "SYN_SENT2",
        TcpState::Ignore => "IGNORE",
    }
}

/// A conntrack flow in the `conntrack -L` layout, for evidence when the table was too large
/// for its text to be kept. Fields the parser does not keep (zone details, labels) are absent.
pub fn entry_text(e: &Entry) -> String {
    use std::fmt::Write;
    // One buffer written in place: findings quote thousands of these.
    fn tuple(s: &mut String, t: &crate::parse::conntrack::Tuple) {
        let _ = write!(s, "src={} dst={}", t.src, t.dst);
        let _ = match t.l4 {
            L4::None => Ok(()),
            L4::Ports { sport, dport } => write!(s, " sport={sport} dport={dport}"),
            L4::Icmp { kind, code, id } => write!(s, " type={kind} code={code} id={id}"),
        };
    }
    let mut s = String::with_capacity(192);
    let _ = write!(s, "{:<8} {} {}", proto_name(e.proto), e.proto, e.timeout);
    if let Some(st) = e.state {
        s.push(' ');
        s.push_str(state_word(st));
    }
    s.push(' ');
    tuple(&mut s, &e.orig);
    if e.unreplied {
        s.push_str(" [UNREPLIED]");
    }
    s.push(' ');
    tuple(&mut s, &e.reply);
    if e.assured {
        s.push_str(" [ASSURED]");
    }
    let _ = write!(s, " mark={}", e.mark);
    if let Some(z) = e.zone {
        let _ = write!(s, " zone={z}");
    }
    let _ = write!(s, " use={}", e.use_count);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::iptables_save;

    fn rule(line: &str) -> Rule {
        let d = iptables_save::parse(&format!("*filter\n:x - [0:0]\n{line}\nCOMMIT\n"));
        d.rules().next().map(|(_, _, r)| r.clone()).unwrap()
    }

    #[test]
    fn felix_drop_comments_of_every_version_are_recognised() {
        let r = rule(
            r#"[5:300] -A cali-tw-x -m comment --comment "cali:c0fHS3-m2SVeQVkI" -m comment --comment "End of tier security. Drop if no policies passed packet" -m mark --mark 0x0/0x20000 -j DROP"#,
        );
        assert_eq!(
            calico_drop(&r),
            Some(CalicoDrop::EndOfTier {
                tier: Some("security".into())
            })
        );
        let r = rule(
            r#"-A cali-tw-x -m comment --comment "cali:q" -m comment --comment "Drop if no policies passed packet" -m mark --mark 0x0/0x20000 -j DROP"#,
        );
        assert_eq!(calico_drop(&r), Some(CalicoDrop::EndOfTier { tier: None }));
        let r = rule(
            r#"-A cali-fw-x -m comment --comment "cali:q" -m comment --comment "Reject if no profiles matched" -j REJECT --reject-with icmp-port-unreachable"#,
        );
        assert_eq!(calico_drop(&r), Some(CalicoDrop::NoProfile));
        let r = rule(
            r#"-A cali-from-wl-dispatch -m comment --comment "cali:z" -m comment --comment "Unknown interface" -j DROP"#,
        );
        assert_eq!(calico_drop(&r), Some(CalicoDrop::UnknownInterface));
    }

    #[test]
    fn an_nflog_rule_before_a_drop_is_not_itself_a_drop() {
        let r = rule(
            r#"-A cali-tw-x -m mark --mark 0x0/0x20000 -j NFLOG --nflog-group 1 --nflog-prefix "DPI|default" --nflog-range 80"#,
        );
        assert!(!is_drop(&r));
        assert_eq!(calico_drop(&r), None);
    }

    #[test]
    fn entry_text_uses_the_conntrack_layout() {
        let t = crate::parse::conntrack::parse(
            "tcp      6 112 SYN_SENT src=10.65.0.7 dst=10.65.1.5 sport=33210 dport=8080 [UNREPLIED] src=10.65.1.5 dst=10.65.0.7 sport=8080 dport=33210 mark=0 use=1\n",
        );
        assert_eq!(
            entry_text(&t.sample[0]),
            "tcp      6 112 SYN_SENT src=10.65.0.7 dst=10.65.1.5 sport=33210 dport=8080 [UNREPLIED] src=10.65.1.5 dst=10.65.0.7 sport=8080 dport=33210 mark=0 use=1"
        );
    }
}
