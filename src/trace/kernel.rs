//! Packets the kernel already traced: `TRACE:` lines in a node's dmesg (from a customer who
//! ran the usual `iptables -t raw -A PREROUTING … -j TRACE` recipe), grouped per packet and
//! rendered as a path with each chain mapped to the policy, profile or endpoint it implements.

use serde::Serialize;

use crate::model::Model;
use crate::model::node::ChainRole;
use crate::parse::Parsed;
use crate::parse::dmesg::{TraceEntry, TraceKind};

/// One traced packet.
#[derive(Debug, Clone, Serialize)]
pub struct KernelTrace {
    pub node: Option<String>,
    pub path: String,
    /// `10.65.0.8:51234 → 10.65.0.7:80 TCP in cali0e8ee4fc632 out cali46b6bee22de`.
    pub packet: String,
    pub steps: Vec<KernelStep>,
    /// What the last step says happened (`policy DROP`, `rule DROP`, …) when it tells.
    pub outcome: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KernelStep {
    /// Line of the TRACE entry in the kernel log.
    pub line: usize,
    pub table: String,
    pub chain: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rulenum: Option<u32>,
    /// The policy, profile or endpoint the chain implements.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The rule of the node's iptables-save this step names, with its line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_line: Option<usize>,
}

/// Packets traced at most, per report (a TRACE session can log thousands).
pub const MAX_TRACES: usize = 50;

/// Every traced packet in the bundle's kernel logs.
pub fn kernel_traces(m: &Model<'_>) -> Vec<KernelTrace> {
    let mut out = Vec::new();
    for a in &m.bundle.artifacts {
        let Parsed::Dmesg(d) = &a.parsed else {
            continue;
        };
        let node = a.node.as_deref().and_then(|n| m.node(n));
        let mut current: Vec<&TraceEntry> = Vec::new();
        let flush = |entries: &mut Vec<&TraceEntry>, out: &mut Vec<KernelTrace>| {
            if entries.is_empty() || out.len() >= MAX_TRACES {
                entries.clear();
                return;
            }
            let first = entries[0];
            let p = &first.packet;
            let ep = |ip: &Option<std::net::IpAddr>, port: Option<u16>| {
                let ip = ip.map(|i| i.to_string()).unwrap_or_else(|| "?".into());
                match port {
                    Some(pt) => format!("{ip}:{pt}"),
                    None => ip,
                }
            };
            let mut packet = format!(
                "{} → {} {}",
                ep(&p.src, p.sport),
                ep(&p.dst, p.dport),
                p.proto.clone().unwrap_or_default()
            );
            if let Some(i) = &p.in_iface {
                packet.push_str(&format!(" in {i}"));
            }
            if let Some(o) = &p.out_iface {
                packet.push_str(&format!(" out {o}"));
            }
            let steps: Vec<KernelStep> = entries
                .iter()
                .map(|e| {
                    let owner = node.and_then(|n| match n.chains.get(&e.chain) {
                        Some(ChainRole::Policy { policy, .. }) => {
                            Some(format!("policy {}", m.policies[*policy].display))
                        }
                        Some(ChainRole::Profile { profile, .. }) => {
                            Some(format!("profile {profile}"))
                        }
                        Some(ChainRole::Endpoint { iface, .. }) => m
                            .endpoints
                            .iter()
                            .find(|x| x.iface.as_deref() == Some(iface.as_str()))
                            .map(|x| format!("endpoint {}", x.key)),
                        _ => None,
                    });
                    let rule = node.and_then(|n| {
                        let d = n.iptables?.data;
                        let chain = d.table(&e.table)?.chain(&e.chain)?;
                        let idx = e.rulenum.filter(|_| kind_str(e) == "rule")? as usize;
                        chain.rules.get(idx.checked_sub(1)?)
                    });
                    KernelStep {
                        line: e.line,
                        table: e.table.clone(),
                        chain: e.chain.clone(),
                        kind: kind_str(e).to_string(),
                        rulenum: e.rulenum,
                        owner,
                        rule: rule.map(|r| r.text.to_string()),
                        rule_line: rule.map(|r| r.line),
                    }
                })
                .collect();
            let outcome = entries.last().and_then(|e| {
                e.verdict
                    .clone()
                    .map(|v| format!("{} {v}", kind_str(e)))
                    .or_else(|| {
                        steps
                            .last()
                            .and_then(|s| s.rule.as_ref())
                            .and_then(|r| r.split(" -j ").nth(1))
                            .map(|t| format!("rule {}", t.split_whitespace().next().unwrap_or(t)))
                    })
            });
            out.push(KernelTrace {
                node: a.node.clone(),
                path: a.path.clone(),
                packet,
                steps,
                outcome,
            });
            entries.clear();
        };
        for e in &d.traces {
            let starts_packet =
                current
                    .last()
                    .is_some_and(|prev| match (prev.trace_id, e.trace_id) {
                        (Some(a), Some(b)) => a != b,
                        _ => {
                            prev.packet.src != e.packet.src
                                || prev.packet.dst != e.packet.dst
                                || prev.packet.sport != e.packet.sport
                                || prev.packet.dport != e.packet.dport
                                || (e.table == "raw"
                                    && e.chain == "PREROUTING"
                                    && e.rulenum == Some(1))
                        }
                    });
            if starts_packet {
                flush(&mut current, &mut out);
            }
            current.push(e);
        }
        flush(&mut current, &mut out);
    }
    out
}

fn kind_str(e: &TraceEntry) -> &'static str {
    match e.kind {
        TraceKind::Rule => "rule",
        TraceKind::Return => "return",
        TraceKind::Policy => "policy",
    }
}

/// One traced packet as text: each TRACE step with the rule it names and its owner.
pub fn render_text(k: &KernelTrace) -> String {
    let mut s = format!("{}  ({})\n", k.packet, k.path);
    for (i, st) in k.steps.iter().enumerate() {
        s.push_str(&format!(
            "{:>2}. {}:{}:{}{}  line {}{}\n",
            i + 1,
            st.table,
            st.chain,
            st.kind,
            st.rulenum.map(|r| format!(":{r}")).unwrap_or_default(),
            st.line,
            st.owner
                .as_ref()
                .map(|o| format!("  [{o}]"))
                .unwrap_or_default()
        ));
        if let (Some(rule), Some(line)) = (&st.rule, st.rule_line) {
            s.push_str(&format!("      {rule}   (iptables-save line {line})\n"));
        }
    }
    if let Some(o) = &k.outcome {
        s.push_str(&format!("outcome: {o}\n"));
    }
    s
}
