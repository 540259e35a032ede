//! Which flow the user means: `--from`/`--to` arguments (`ns/pod`, a pod name unique across
//! namespaces, a host endpoint name, an IP, and for the destination `…:port`, `[v6]:port` or
//! `…:<named port>`) resolved against the model's endpoints, network sets and nodes, plus the
//! protocol and destination port.
//!
//! This module only names the two ends of a flow; it says nothing about policy (that is
//! [`super::intent`]) or about the dataplane. An IP that no endpoint, network set or node of
//! the bundle holds is *external*: Calico does not police it and no selector matches it.

use std::net::IpAddr;

use serde::Serialize;

use crate::model::Model;
use crate::model::endpoints::parse_net;

/// IANA protocol numbers Calico names.
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;
pub const PROTO_SCTP: u8 = 132;
pub const PROTO_UDPLITE: u8 = 136;

/// One end of a flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowEnd {
    /// Index into `Model::endpoints` when the IP belongs to a Calico endpoint.
    pub endpoint: Option<usize>,
    pub ip: IpAddr,
    /// The endpoint's node, or the node whose address this is.
    pub node: Option<String>,
    /// The endpoint's interface (`cali…` or the host interface).
    pub iface: Option<String>,
    /// How a person names this end: `demo/web`, `203.0.113.9 (external)` …
    pub label: String,
    /// Indexes into `Model::net_sets` of the (Global)NetworkSets whose nets hold the IP: a
    /// selector matches the IP when it matches the endpoint or any of these, as Felix's IP sets
    /// hold both.
    pub net_sets: Vec<usize>,
}

impl FlowEnd {
    /// Neither an endpoint, a network set nor a node of the bundle holds the IP.
    pub fn is_external(&self) -> bool {
        self.endpoint.is_none() && self.net_sets.is_empty() && self.node.is_none()
    }
}

/// The flow to explain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flow {
    pub src: FlowEnd,
    pub dst: FlowEnd,
    /// IANA protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, 132 SCTP).
    pub protocol: u8,
    pub dport: Option<u16>,
}

impl Flow {
    /// `demo/client → demo/web:80 (tcp)`.
    pub fn describe(&self) -> String {
        let port = self.dport.map(|p| format!(":{p}")).unwrap_or_default();
        format!(
            "{} → {}{port} ({})",
            self.src.label,
            self.dst.label,
            protocol_name(self.protocol)
        )
    }

    pub fn is_ipv6(&self) -> bool {
        self.src.ip.is_ipv6()
    }
}

/// Why a flow could not be resolved. The messages are meant for the terminal as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("no pod or endpoint named {query:?} in the bundle{}", near_list(near))]
    UnknownEndpoint { query: String, near: Vec<String> },
    #[error("{query:?} is ambiguous: {}; name it as namespace/pod", candidates.join(", "))]
    Ambiguous {
        query: String,
        candidates: Vec<String>,
    },
    #[error("{endpoint} has no IP address in the bundle ({source_kind} without ipNetworks/podIPs)")]
    NoIp {
        endpoint: String,
        source_kind: String,
    },
    #[error("{endpoint} has no IPv{family} address, and the other end is IPv{family}")]
    NoIpOfFamily { endpoint: String, family: u8 },
    #[error("the two ends have no IP family in common (one is IPv4 only, the other IPv6 only)")]
    FamilyMismatch,
    #[error("unknown protocol {0:?}: expected tcp, udp, icmp, sctp or a protocol number")]
    BadProtocol(String),
    #[error("bad port {0:?}: expected a number from 1 to 65535 or a named port")]
    BadPort(String),
    #[error(
        "{endpoint} declares no {protocol} port named {name:?}{}",
        if available.is_empty() { String::new() } else { format!(" (it has: {})", available.join(", ")) }
    )]
    UnknownNamedPort {
        endpoint: String,
        name: String,
        protocol: String,
        available: Vec<String>,
    },
    #[error("a named port ({0:?}) needs a destination endpoint that declares it")]
    NamedPortWithoutEndpoint(String),
    #[error("a port belongs to the destination (--to), not to the source ({0:?})")]
    PortOnSource(String),
    #[error("the destination port is given twice, differently: {0} and {1}")]
    PortConflict(String, String),
    #[error("{0} carries no port: give no destination port for it")]
    PortWithoutPorts(String),
}

fn near_list(near: &[String]) -> String {
    if near.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", near.join(", "))
    }
}

/// `tcp`, `udp`, `icmp`, `icmpv6`, `sctp`, `udplite` or a number 0–255 (case-insensitive).
pub fn parse_protocol(s: &str) -> Result<u8, FlowError> {
    let t = s.trim();
    if let Some(n) = protocol_number(t) {
        return Ok(n);
    }
    Err(FlowError::BadProtocol(s.to_string()))
}

/// A protocol as Calico writes it in a rule (`TCP`, `udp`, `ICMPv6`, `6`), as a number.
pub fn protocol_number(s: &str) -> Option<u8> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Some(PROTO_TCP),
        "udp" => Some(PROTO_UDP),
        "icmp" => Some(PROTO_ICMP),
        "icmpv6" => Some(PROTO_ICMPV6),
        "sctp" => Some(PROTO_SCTP),
        "udplite" => Some(PROTO_UDPLITE),
        other if !other.is_empty() && other.bytes().all(|b| b.is_ascii_digit()) => {
            other.parse::<u8>().ok()
        }
        _ => None,
    }
}

/// `tcp`, `udp` … for the protocols Calico names, else the number.
pub fn protocol_name(p: u8) -> String {
    match p {
        PROTO_TCP => "tcp".into(),
        PROTO_UDP => "udp".into(),
        PROTO_ICMP => "icmp".into(),
        PROTO_ICMPV6 => "icmpv6".into(),
        PROTO_SCTP => "sctp".into(),
        PROTO_UDPLITE => "udplite".into(),
        n => n.to_string(),
    }
}

/// Protocols with ports (the only ones a `ports` match can apply to).
pub fn has_ports(p: u8) -> bool {
    matches!(p, PROTO_TCP | PROTO_UDP | PROTO_SCTP | PROTO_UDPLITE)
}

/// What an argument names before an IP family is chosen.
#[derive(Debug, Clone)]
enum Target {
    Ip(IpAddr),
    Endpoint(usize),
}

/// Split `host[:port]`, `[v6]:port`, or a bare IPv6 address.
fn split_port(arg: &str) -> Result<(&str, Option<&str>), FlowError> {
    let arg = arg.trim();
    if let Some(rest) = arg.strip_prefix('[') {
        let Some((host, tail)) = rest.split_once(']') else {
            return Err(FlowError::BadPort(arg.to_string()));
        };
        return match tail.strip_prefix(':') {
            Some(p) => Ok((host, Some(p))),
            None if tail.is_empty() => Ok((host, None)),
            None => Err(FlowError::BadPort(arg.to_string())),
        };
    }
    if arg.parse::<IpAddr>().is_ok() {
        return Ok((arg, None));
    }
    match arg.rsplit_once(':') {
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((arg, None)),
    }
}

fn resolve_target(model: &Model<'_>, host: &str) -> Result<Target, FlowError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        let owners: Vec<usize> = model
            .endpoints
            .iter()
            .enumerate()
            .filter(|(_, e)| e.ips.iter().any(|n| n.contains(&ip)))
            .map(|(i, _)| i)
            .collect();
        return match owners.as_slice() {
            [] => Ok(Target::Ip(ip)),
            [one] => Ok(Target::Endpoint(*one)),
            many => Err(FlowError::Ambiguous {
                query: host.to_string(),
                candidates: many
                    .iter()
                    .map(|&i| model.endpoints[i].key.clone())
                    .collect(),
            }),
        };
    }
    // `ns/pod` (or a host endpoint's name) exactly, else a name unique across namespaces.
    if let Some(i) = model.endpoints.iter().position(|e| e.key == host) {
        return Ok(Target::Endpoint(i));
    }
    let by_name: Vec<usize> = model
        .endpoints
        .iter()
        .enumerate()
        .filter(|(_, e)| e.name == host)
        .map(|(i, _)| i)
        .collect();
    match by_name.as_slice() {
        [one] => Ok(Target::Endpoint(*one)),
        [] => Err(FlowError::UnknownEndpoint {
            query: host.to_string(),
            near: near_names(model, host),
        }),
        many => Err(FlowError::Ambiguous {
            query: host.to_string(),
            candidates: many
                .iter()
                .map(|&i| model.endpoints[i].key.clone())
                .collect(),
        }),
    }
}

/// Up to five endpoint keys close to what was typed.
fn near_names(model: &Model<'_>, query: &str) -> Vec<String> {
    let q = query.to_ascii_lowercase();
    let limit = (q.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = model
        .endpoints
        .iter()
        .filter_map(|e| {
            let key = e.key.to_ascii_lowercase();
            let name = e.name.to_ascii_lowercase();
            let d = levenshtein(&q, &key).min(levenshtein(&q, &name));
            let contains =
                !q.is_empty() && (key.contains(&q) || (!name.is_empty() && q.contains(&name)));
            (d <= limit || contains).then_some((if contains { 0 } else { d }, e.key.as_str()))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(5)
        .map(|(_, k)| k.to_string())
        .collect()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The node whose Calico or Kubernetes Node resource lists this address.
fn node_of_ip(model: &Model<'_>, ip: IpAddr) -> Option<String> {
    let holds = |s: &str| parse_net(s).is_some_and(|n| n.addr() == ip);
    for n in &model.resources.calico_nodes {
        let node = n.item;
        let bgp = node
            .bgp
            .iter()
            .flat_map(|b| [b.ipv4_address.as_str(), b.ipv6_address.as_str()]);
        if node.addresses.iter().any(|a| holds(&a.address)) || bgp.into_iter().any(holds) {
            return Some(node.meta.name.clone());
        }
    }
    for n in &model.resources.k8s_nodes {
        if n.item.addresses.iter().any(|a| holds(&a.address)) {
            return Some(n.item.meta.name.clone());
        }
    }
    None
}

/// The flow end for endpoint `i` at address `ip` (as a conntrack entry names it), with the
/// network sets that hold the address, as [`resolve_flow`] builds it.
pub fn endpoint_end(model: &Model<'_>, i: usize, ip: IpAddr) -> FlowEnd {
    end_for(model, &Target::Endpoint(i), ip)
}

fn end_for(model: &Model<'_>, target: &Target, ip: IpAddr) -> FlowEnd {
    let net_sets = model.net_set_index.containing(ip);
    match target {
        Target::Endpoint(i) => {
            let e = &model.endpoints[*i];
            FlowEnd {
                endpoint: Some(*i),
                ip,
                node: e.node.clone(),
                iface: e.iface.clone(),
                label: e.key.clone(),
                net_sets,
            }
        }
        Target::Ip(_) => {
            let node = node_of_ip(model, ip);
            let label = if let Some(n) = &node {
                format!("{ip} (node {n})")
            } else if let Some(&s) = net_sets.first() {
                format!("{ip} (network set {})", model.net_sets[s].key)
            } else {
                format!("{ip} (external)")
            };
            FlowEnd {
                endpoint: None,
                ip,
                node,
                iface: None,
                label,
                net_sets,
            }
        }
    }
}

fn ips_of(model: &Model<'_>, t: &Target) -> Vec<IpAddr> {
    match t {
        Target::Ip(ip) => vec![*ip],
        Target::Endpoint(i) => model.endpoints[*i].ips.iter().map(|n| n.addr()).collect(),
    }
}

/// The IP family both ends can use: fixed by an IP argument, else IPv4 when both have one.
fn pick_family(model: &Model<'_>, a: &Target, b: &Target) -> Result<bool, FlowError> {
    for t in [a, b] {
        if let Target::Endpoint(i) = t
            && model.endpoints[*i].ips.is_empty()
        {
            let e = &model.endpoints[*i];
            return Err(FlowError::NoIp {
                endpoint: e.key.clone(),
                source_kind: e.source_kind.to_string(),
            });
        }
    }
    let fixed = [a, b].into_iter().find_map(|t| match t {
        Target::Ip(ip) => Some(ip.is_ipv6()),
        Target::Endpoint(_) => None,
    });
    let has = |t: &Target, v6: bool| ips_of(model, t).iter().any(|ip| ip.is_ipv6() == v6);
    if let Some(v6) = fixed {
        for t in [a, b] {
            if let Target::Endpoint(i) = t
                && !has(t, v6)
            {
                return Err(FlowError::NoIpOfFamily {
                    endpoint: model.endpoints[*i].key.clone(),
                    family: if v6 { 6 } else { 4 },
                });
            }
        }
        if let (Target::Ip(x), Target::Ip(y)) = (a, b)
            && x.is_ipv6() != y.is_ipv6()
        {
            return Err(FlowError::FamilyMismatch);
        }
        return Ok(v6);
    }
    if has(a, false) && has(b, false) {
        Ok(false)
    } else if has(a, true) && has(b, true) {
        Ok(true)
    } else {
        Err(FlowError::FamilyMismatch)
    }
}

fn ip_of_family(model: &Model<'_>, t: &Target, v6: bool) -> Option<IpAddr> {
    ips_of(model, t).into_iter().find(|ip| ip.is_ipv6() == v6)
}

/// A port as typed: a number, or a named port of the destination endpoint.
fn resolve_port(
    model: &Model<'_>,
    dst: &Target,
    port: &str,
    protocol: u8,
) -> Result<u16, FlowError> {
    let p = port.trim();
    if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
        return match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(FlowError::BadPort(port.to_string())),
        };
    }
    if p.is_empty() {
        return Err(FlowError::BadPort(port.to_string()));
    }
    let Target::Endpoint(i) = dst else {
        return Err(FlowError::NamedPortWithoutEndpoint(p.to_string()));
    };
    let e = &model.endpoints[*i];
    let proto = protocol_name(protocol);
    e.ports
        .iter()
        .find(|np| np.name == p && np.protocol == proto)
        .map(|np| np.port)
        .ok_or_else(|| FlowError::UnknownNamedPort {
            endpoint: e.key.clone(),
            name: p.to_string(),
            protocol: proto,
            available: e
                .ports
                .iter()
                .map(|np| format!("{} ({}/{})", np.name, np.protocol, np.port))
                .collect(),
        })
}

/// Resolve `--from`, `--to`, `--protocol` (default tcp) and an optional `--port` (which must
/// agree with a port written in `--to`).
pub fn resolve_flow(
    model: &Model<'_>,
    from: &str,
    to: &str,
    protocol: Option<&str>,
    port: Option<&str>,
) -> Result<Flow, FlowError> {
    let protocol = match protocol {
        Some(p) => parse_protocol(p)?,
        None => PROTO_TCP,
    };
    let (src_host, src_port) = split_port(from)?;
    if let Some(p) = src_port {
        return Err(FlowError::PortOnSource(p.to_string()));
    }
    let (dst_host, dst_port) = split_port(to)?;
    let src_t = resolve_target(model, src_host)?;
    let dst_t = resolve_target(model, dst_host)?;
    let v6 = pick_family(model, &src_t, &dst_t)?;
    // "icmp" on an IPv6 flow is ICMPv6, as people write it.
    let protocol = if v6 && protocol == PROTO_ICMP {
        PROTO_ICMPV6
    } else {
        protocol
    };
    let port_text = match (dst_port, port) {
        (Some(a), Some(b)) if a.trim() != b.trim() => {
            return Err(FlowError::PortConflict(a.to_string(), b.to_string()));
        }
        (Some(a), _) => Some(a),
        (None, b) => b,
    };
    let dport = match port_text {
        Some(_) if !has_ports(protocol) => {
            return Err(FlowError::PortWithoutPorts(protocol_name(protocol)));
        }
        Some(p) => Some(resolve_port(model, &dst_t, p, protocol)?),
        None => None,
    };
    let pick = |t: &Target| -> Result<IpAddr, FlowError> {
        ip_of_family(model, t, v6).ok_or(FlowError::FamilyMismatch)
    };
    let src_ip = pick(&src_t)?;
    let dst_ip = pick(&dst_t)?;
    Ok(Flow {
        src: end_for(model, &src_t, src_ip),
        dst: end_for(model, &dst_t, dst_ip),
        protocol,
        dport,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_parse_by_name_and_number() {
        assert_eq!(parse_protocol("TCP"), Ok(6));
        assert_eq!(parse_protocol("udp"), Ok(17));
        assert_eq!(parse_protocol("icmp"), Ok(1));
        assert_eq!(parse_protocol("sctp"), Ok(132));
        assert_eq!(parse_protocol("47"), Ok(47));
        assert!(matches!(
            parse_protocol("tpc"),
            Err(FlowError::BadProtocol(_))
        ));
        assert!(parse_protocol("300").is_err());
    }

    #[test]
    fn ports_split_off_hosts_pods_and_bracketed_v6() {
        assert_eq!(split_port("demo/web:80").unwrap(), ("demo/web", Some("80")));
        assert_eq!(
            split_port("10.0.0.1:443").unwrap(),
            ("10.0.0.1", Some("443"))
        );
        assert_eq!(split_port("fd00::1").unwrap(), ("fd00::1", None));
        assert_eq!(split_port("[fd00::1]:53").unwrap(), ("fd00::1", Some("53")));
        assert_eq!(split_port("web").unwrap(), ("web", None));
        assert!(split_port("[fd00::1").is_err());
    }

    #[test]
    fn edit_distance_counts_single_changes() {
        assert_eq!(levenshtein("web", "web"), 0);
        assert_eq!(levenshtein("wbe", "web"), 2);
        assert_eq!(levenshtein("clinet", "client"), 2);
        assert_eq!(levenshtein("", "ab"), 2);
    }
}
