//! Explain one flow offline. Two verdicts side by side: what the policies intend
//! ([`intent`], Felix's evaluation order over the bundle's resources) and what the captured
//! dataplane does ([`sim`], the first packet walked through each node's `iptables-save` with
//! the captured IP sets). When they disagree, [`Trace::explanation`] says why in one line and
//! names the findings that explain it. Pure functions over the model: nothing here reads files.

pub mod flow;
pub mod intent;
pub mod kernel;
pub mod sim;

use serde::Serialize;

use crate::checks::Finding;
use crate::model::Model;
use crate::model::node::{ChainRole, NodeModel};

/// One flow explained (contract §4).
#[derive(Debug, Clone, Serialize)]
pub struct Trace {
    pub flow: FlowInfo,
    /// What the captured dataplane does with the first packet.
    pub verdict: &'static str,
    pub intent: IntentInfo,
    pub dataplane: DataplaneInfo,
    pub agree: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    /// Codes (with anchors' subjects) of the findings that explain the flow.
    pub findings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FlowInfo {
    pub src: String,
    pub src_ip: String,
    pub dst: String,
    pub dst_ip: String,
    pub protocol: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dport: Option<u16>,
    /// The node(s) the packet crosses, source side first.
    pub node: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct IntentInfo {
    pub verdict: &'static str,
    pub egress: intent::DirectionResult,
    pub ingress: intent::DirectionResult,
}

#[derive(Debug, Clone, Serialize)]
pub struct DataplaneInfo {
    pub verdict: &'static str,
    pub path: Vec<PathStep>,
    /// Matches the simulation could not decide offline, and other caveats.
    pub unknowns: Vec<String>,
}

/// One rule (or chain policy) the packet met, with its place in the dump.
#[derive(Debug, Clone, Serialize)]
pub struct PathStep {
    pub node: String,
    pub table: String,
    pub chain: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_index: Option<usize>,
    pub path: String,
    pub line: usize,
    pub action: String,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Trace `from` → `to` (`ns/pod`, a pod name, or an IP; the destination may carry `:port`).
pub fn trace(
    model: &Model<'_>,
    findings: &[Finding],
    from: &str,
    to: &str,
    protocol: Option<&str>,
    node: Option<&str>,
) -> Result<Trace, String> {
    let (to_host, port) = match to.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.starts_with('[') => (h, Some(p)),
        _ => (to, None),
    };
    let f = flow::resolve_flow(model, from, to_host, protocol, port).map_err(|e| e.to_string())?;
    Ok(trace_flow(model, findings, &f, node))
}

/// Trace a resolved flow.
pub fn trace_flow(
    model: &Model<'_>,
    findings: &[Finding],
    f: &flow::Flow,
    node: Option<&str>,
) -> Trace {
    let iv = intent::evaluate(model, f);
    // The nodes the packet crosses: the source's (egress policy), then the destination's
    // (ingress policy); one when both are on the same node.
    let mut hops: Vec<(&NodeModel<'_>, Option<String>, Option<String>)> = Vec::new();
    let node_of = |n: &Option<String>| n.as_deref().and_then(|n| model.node(n));
    let src_node = node
        .and_then(|n| model.node(n))
        .or_else(|| node_of(&f.src.node));
    let dst_node = node_of(&f.dst.node);
    match (src_node, dst_node) {
        (Some(a), Some(b)) if a.name == b.name => {
            hops.push((a, f.src.iface.clone(), f.dst.iface.clone()));
        }
        (a, b) => {
            if let Some(a) = a.filter(|_| f.src.endpoint.is_some()) {
                hops.push((a, f.src.iface.clone(), a.route_dev(f.dst.ip)));
            }
            if let Some(b) = b.filter(|_| f.dst.endpoint.is_some()) {
                hops.push((b, b.route_dev(f.src.ip), f.dst.iface.clone()));
            }
        }
    }
    let mut path = Vec::new();
    let mut unknowns = Vec::new();
    let mut verdict = if hops.is_empty() {
        unknowns.push("no node of the bundle holds either end of the flow".to_string());
        sim::Verdict::Unknown
    } else {
        sim::Verdict::Allow
    };
    let mut deny_step: Option<PathStep> = None;
    for (n, in_iface, out_iface) in &hops {
        let Some(ipt) = n.iptables else {
            unknowns.push(format!(
                "node {} has no iptables-save in the bundle",
                n.name
            ));
            verdict = worst(verdict, sim::Verdict::Unknown);
            continue;
        };
        let mut pkt = sim::Packet::new(f.src.ip, f.dst.ip, f.protocol);
        pkt.dport = f.dport;
        pkt.sport = f.dport.map(|_| 40000);
        pkt.in_iface = in_iface.clone();
        pkt.out_iface = out_iface.clone();
        let sets = n.ipsets.map(|d| d.data);
        let r = sim::simulate(ipt.data, sets, &pkt, sim::Hook::Forward);
        for s in &r.path {
            path.push(path_step(model, n, ipt.path(), s));
        }
        unknowns.extend(r.unknowns.iter().map(|u| format!("{}: {u}", n.name)));
        unknowns.extend(r.notes.iter().map(|u| format!("{}: {u}", n.name)));
        if r.verdict == sim::Verdict::Deny && deny_step.is_none() {
            deny_step = r
                .deciding_step()
                .map(|s| path_step(model, n, ipt.path(), s));
        }
        verdict = worst(verdict, r.verdict);
        if r.verdict == sim::Verdict::Deny {
            break;
        }
    }
    let dp = match verdict {
        sim::Verdict::Allow => "allow",
        sim::Verdict::Deny => "deny",
        sim::Verdict::Unknown => "unknown",
    };
    let intent_verdict = iv.verdict.as_str();
    let agree = dp == intent_verdict;
    let (explanation, codes) = if agree || dp == "unknown" || intent_verdict == "unknown" {
        (None, Vec::new())
    } else {
        reconcile(findings, f, &iv, deny_step.as_ref(), &path)
    };
    let nodes: Vec<String> = hops.iter().map(|h| h.0.name.clone()).collect();
    Trace {
        flow: FlowInfo {
            src: f.src.label.clone(),
            src_ip: f.src.ip.to_string(),
            dst: f.dst.label.clone(),
            dst_ip: f.dst.ip.to_string(),
            protocol: flow::protocol_name(f.protocol),
            dport: f.dport,
            node: nodes.join(" → "),
        },
        verdict: dp,
        intent: IntentInfo {
            verdict: intent_verdict,
            egress: iv.egress.clone(),
            ingress: iv.ingress.clone(),
        },
        dataplane: DataplaneInfo {
            verdict: dp,
            path,
            unknowns,
        },
        agree,
        explanation,
        findings: codes,
    }
}

fn worst(a: sim::Verdict, b: sim::Verdict) -> sim::Verdict {
    use sim::Verdict::*;
    match (a, b) {
        (Deny, _) | (_, Deny) => Deny,
        (Unknown, _) | (_, Unknown) => Unknown,
        _ => Allow,
    }
}

fn path_step(model: &Model<'_>, n: &NodeModel<'_>, path: &str, s: &sim::Step) -> PathStep {
    let policy = match n.chains.get(&s.chain) {
        Some(ChainRole::Policy { policy, .. }) => Some(model.policies[*policy].display.clone()),
        Some(ChainRole::Profile { profile, .. }) => Some(format!("profile {profile}")),
        Some(ChainRole::Endpoint { iface, .. }) => model
            .endpoints
            .iter()
            .find(|e| e.iface.as_deref() == Some(iface.as_str()))
            .map(|e| format!("endpoint {}", e.key)),
        _ => None,
    };
    PathStep {
        node: n.name.clone(),
        table: s.table.clone(),
        chain: s.chain.clone(),
        rule_index: s.rule_index,
        path: path.to_string(),
        line: s.line,
        action: format!("{:?}", s.action).to_lowercase(),
        text: s.text.clone(),
        packets: s.counters.map(|c| c.packets),
        policy,
        note: s.note.clone(),
    }
}

/// Why intent and dataplane part, in one line, and the findings that explain it.
fn reconcile(
    findings: &[Finding],
    f: &flow::Flow,
    iv: &intent::IntentVerdict,
    deny: Option<&PathStep>,
    path: &[PathStep],
) -> (Option<String>, Vec<String>) {
    let at = |s: &PathStep| format!("{}:{}", s.path, s.line);
    if iv.verdict == intent::Verdict::Allow {
        // Which direction's allow did the dataplane not honour?
        let (dir_result, peer_ip) = if deny
            .is_some_and(|d| d.chain.starts_with("cali-fw-") || d.chain.starts_with("cali-po-"))
        {
            (&iv.egress, f.dst.ip)
        } else {
            (&iv.ingress, f.src.ip)
        };
        let Some(hit) = &dir_result.deciding else {
            return (
                deny.map(|d| format!("policy allows it, but {} at {} drops it", d.chain, at(d))),
                Vec::new(),
            );
        };
        let rule = hit.rule.map(|r| format!(" rule {r}")).unwrap_or_default();
        let ip = peer_ip.to_string();
        // A missing IP set member is the usual cause.
        let member = findings.iter().find(|x| {
            x.code == "CAL040"
                && x.subjects.iter().any(|s| s.kind == "ip" && s.name == ip)
                && x.subjects
                    .iter()
                    .any(|s| s.kind == "policy" && s.name == hit.policy)
        });
        if let Some(m) = member {
            let set = m
                .subjects
                .iter()
                .find(|s| s.kind == "ipset")
                .map(|s| s.name.clone())
                .unwrap_or_default();
            let chain = path
                .iter()
                .find(|s| s.policy.as_deref() == Some(hit.policy.as_str()))
                .map(|s| s.chain.clone())
                .unwrap_or_else(|| "its chain".to_string());
            let drop = deny
                .map(|d| format!("{} at {} drops it", describe_drop(d), at(d)))
                .unwrap_or_else(|| "the packet is dropped".to_string());
            return (
                Some(format!(
                    "policy {}{rule} allows it, but {set} lacks {ip}, so {chain} does not match and {drop}",
                    hit.policy
                )),
                vec![m.code.clone()],
            );
        }
        let related: Vec<String> = findings
            .iter()
            .filter(|x| {
                matches!(x.code.as_str(), "CAL020" | "CAL021" | "CAL030" | "CAL042")
                    && x.subjects.iter().any(|s| {
                        (s.kind == "policy" && s.name == hit.policy)
                            || (s.kind == "endpoint"
                                && (s.name == f.src.label || s.name == f.dst.label))
                    })
            })
            .map(|x| x.code.clone())
            .collect();
        let drop = deny
            .map(|d| format!("{} at {} drops it", describe_drop(d), at(d)))
            .unwrap_or_else(|| "the dataplane drops it".to_string());
        return (
            Some(format!("policy {}{rule} allows it, but {drop}", hit.policy)),
            related,
        );
    }
    // Intent denies, the dataplane lets it through.
    let why = [&iv.egress, &iv.ingress]
        .into_iter()
        .find(|d| d.verdict == intent::Verdict::Deny)
        .and_then(|d| d.deciding.as_ref())
        .map(|h| format!("{} ({})", h.policy, h.action.as_str()))
        .unwrap_or_else(|| "the policies".to_string());
    let accept = path
        .iter()
        .rev()
        .find(|s| s.action == "accept")
        .map(|s| format!(" at {}", at(s)))
        .unwrap_or_default();
    let ip = f.src.ip.to_string();
    let stale: Vec<String> = findings
        .iter()
        .filter(|x| x.code == "CAL041" && x.subjects.iter().any(|s| s.kind == "ip" && s.name == ip))
        .map(|x| x.code.clone())
        .collect();
    (
        Some(format!(
            "{why} denies it, but the dataplane accepts it{accept}{}",
            if stale.is_empty() {
                String::new()
            } else {
                format!(" ({ip} is a stale IP set member)")
            }
        )),
        stale,
    )
}

fn describe_drop(d: &PathStep) -> String {
    if d.text.contains("End of tier") || d.text.contains("Drop if no policies passed packet") {
        "the end-of-tier drop".to_string()
    } else if d.text.contains("Drop if no profiles matched") {
        "the no-profile drop".to_string()
    } else if d.text.contains("Unknown interface") {
        "the unknown-interface drop".to_string()
    } else {
        format!(
            "{} rule {}",
            d.chain,
            d.rule_index.map(|i| i.to_string()).unwrap_or_default()
        )
    }
}

/// The steps of one direction in flow-log vocabulary, one per line.
fn intent_lines(d: &intent::DirectionResult) -> Vec<String> {
    let mut out = Vec::new();
    if !d.policed {
        out.push("not a Calico endpoint: not policed by Calico".to_string());
    }
    for s in &d.steps {
        let at = match (&s.path, s.rule_line.or(s.line)) {
            (Some(p), Some(l)) => format!("  ({p}:{l})"),
            _ => String::new(),
        };
        let note = s
            .note
            .as_ref()
            .map(|n| format!("  [{n}]"))
            .unwrap_or_default();
        out.push(format!("{}{at}{note}", s.to_flow_log()));
    }
    for st in &d.staged {
        out.push(format!("staged, not enforced: {st}"));
    }
    out
}

fn dataplane_lines(t: &Trace) -> Vec<String> {
    // The filter table decides; other tables only where they do something (a mark, NAT, a
    // drop, an undecided match). Returns to the caller are implied by the next step. The JSON
    // keeps every step.
    t.dataplane
        .path
        .iter()
        .filter(|s| s.action != "skipped" && s.action != "endofchain")
        .filter(|s| {
            s.table == "filter"
                || matches!(
                    s.action.as_str(),
                    "mark" | "nat" | "drop" | "reject" | "undecided"
                )
        })
        .enumerate()
        .map(|(i, s)| {
            let rule = s
                .rule_index
                .map(|r| format!(" rule {r}"))
                .unwrap_or_default();
            let who = s
                .policy
                .as_ref()
                .map(|p| format!(" [{p}]"))
                .unwrap_or_default();
            let hits = s
                .packets
                .map(|p| format!(" ({p} pkts)"))
                .unwrap_or_default();
            let note = s
                .note
                .as_ref()
                .map(|n| format!(" — {n}"))
                .unwrap_or_default();
            format!(
                "{:>2}. {} {}/{}{rule}: {}{who}{hits}  {}:{}{note}\n      {}",
                i + 1,
                s.node,
                s.table,
                s.chain,
                s.action,
                s.path,
                s.line,
                s.text
            )
        })
        .collect()
}

/// The trace as plain text for the terminal.
pub fn render_text(t: &Trace) -> String {
    let port = t.flow.dport.map(|p| format!(":{p}")).unwrap_or_default();
    let mut s = format!(
        "Flow: {} ({}) → {} ({}){port} {}   node {}\n\n",
        t.flow.src, t.flow.src_ip, t.flow.dst, t.flow.dst_ip, t.flow.protocol, t.flow.node
    );
    s.push_str(&format!("Intent (policies): {}\n", t.intent.verdict));
    for (name, d) in [("egress", &t.intent.egress), ("ingress", &t.intent.ingress)] {
        s.push_str(&format!(
            "  {name}{}: {}\n",
            d.endpoint
                .as_ref()
                .map(|e| format!(" at {e}"))
                .unwrap_or_default(),
            d.verdict.as_str()
        ));
        for l in intent_lines(d) {
            s.push_str(&format!("    {l}\n"));
        }
    }
    s.push_str(&format!(
        "\nDataplane (captured iptables): {}\n",
        t.dataplane.verdict
    ));
    for l in dataplane_lines(t) {
        s.push_str(&format!("  {l}\n"));
    }
    for u in &t.dataplane.unknowns {
        s.push_str(&format!("  note: {u}\n"));
    }
    s.push_str(&format!(
        "\nAgree: {}\n",
        if t.agree { "yes" } else { "no" }
    ));
    if let Some(e) = &t.explanation {
        s.push_str(&format!("Why: {e}\n"));
    }
    if !t.findings.is_empty() {
        s.push_str(&format!("Findings: {}\n", t.findings.join(", ")));
    }
    s
}

/// The trace as Markdown for a ticket (bundle text escaped, the path in a code block no
/// line can close).
pub fn render_markdown(t: &Trace) -> String {
    use crate::report::{code_block, code_span, md_escape};
    let port = t.flow.dport.map(|p| format!(":{p}")).unwrap_or_default();
    let mut s = format!(
        "### Trace {} → {} ({})\n\n- **Intent:** {}\n- **Dataplane:** {}\n- **Agree:** {}\n",
        code_span(&t.flow.src),
        code_span(&format!("{}{port}", t.flow.dst)),
        t.flow.protocol,
        t.intent.verdict,
        t.dataplane.verdict,
        if t.agree { "yes" } else { "no" }
    );
    if let Some(e) = &t.explanation {
        s.push_str(&format!("- **Why:** {}\n", md_escape(e)));
    }
    let mut block = String::new();
    for (name, d) in [("egress", &t.intent.egress), ("ingress", &t.intent.ingress)] {
        block.push_str(&format!("intent {name}: {}\n", d.verdict.as_str()));
        for l in intent_lines(d) {
            block.push_str(&format!("  {l}\n"));
        }
    }
    block.push_str(&format!("dataplane: {}\n", t.dataplane.verdict));
    for l in dataplane_lines(t) {
        block.push_str(&format!("  {l}\n"));
    }
    s.push('\n');
    s.push_str(&code_block(block.trim_end()));
    s.push('\n');
    s
}
