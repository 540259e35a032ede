//! Kernel log (`dmesg`, `dmesg -T`, `dmesg -x`, `journalctl -k`, syslog `kernel:` lines)
//! with the packet lines netfilter writes into it:
//!
//! - iptables-legacy `-j TRACE` (`TRACE: raw:PREROUTING:policy:2 IN=cali… OUT= MAC=… SRC=…
//!   DST=… LEN=… PROTO=TCP SPT=… DPT=… … MARK=0x…`, the kernel's `nf_log` layout), read into
//!   [`TraceEntry`];
//! - iptables-nft `-j TRACE` as `xtables-monitor --trace` prints it (` TRACE: 2 fa5a6e3e
//!   filter:cali-fw-x:rule:0x1a:JUMP:cali-pi-y  -4 -t filter -A …` followed by `PACKET: 2
//!   fa5a6e3e IN=… SRC=… SPORT=… DPORT=…`): the packet of a trace is the first `PACKET:` line
//!   with the same trace id;
//! - `-j LOG` lines (Calico's `calico-packet: IN=…`), read into [`LoggedPacket`];
//! - a few kernel messages worth showing (conntrack table full, OOM, martians, …) kept as
//!   [`Dmesg::notable`]; every other line is only counted.
//!
//! Not read: `nft monitor trace` (native nftables trace text). Large files are parsed in
//! chunks ([`parse_chunk`]) and merged in file order ([`Dmesg::merge`]).

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Serialize;

use super::{ParseError, numbered_lines};

/// Notable kernel lines kept.
pub const MAX_NOTABLE: usize = 10_000;
/// Parse errors kept.
pub const MAX_ERRORS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum TraceKind {
    Rule,
    Return,
    Policy,
}

/// Which iptables backend produced the trace line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum TraceSource {
    /// iptables-legacy: the kernel's `TRACE:` log line.
    Kernel,
    /// iptables-nft: `xtables-monitor --trace`.
    XtablesMonitor,
}

/// The packet fields of a netfilter log line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Packet {
    pub in_iface: Option<String>,
    pub out_iface: Option<String>,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    /// `TCP`, `UDP`, `ICMP`, `ICMPv6`, or a number.
    pub proto: Option<String>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub mark: Option<u32>,
    /// IP total length (`LEN=`, first occurrence).
    pub len: Option<u32>,
    /// `TYPE=` / `CODE=` of ICMP.
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    /// Bare words: `DF`, `SYN`, `ACK`, …
    pub flags: Vec<String>,
}

/// One `TRACE:` step: the packet met a rule, returned from a chain, or hit a chain policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceEntry {
    pub line: usize,
    pub source: TraceSource,
    /// Kernel seconds since boot (`[  123.456789]`), when the line has them.
    pub uptime: Option<String>,
    pub table: String,
    pub chain: String,
    pub kind: TraceKind,
    /// Legacy: rule position in the chain (for `policy`, the position after the last rule).
    pub rulenum: Option<u32>,
    /// nft: the rule handle.
    pub handle: Option<u64>,
    /// nft: `ACCEPT`, `DROP`, `CONTINUE`, `JUMP:chain`, `GOTO:chain`, …
    pub verdict: Option<String>,
    /// nft: the trace id that ties TRACE and PACKET lines together.
    pub trace_id: Option<u32>,
    /// nft: address family number (2 ipv4, 10 ipv6).
    pub family: Option<u8>,
    /// nft: the rule as `xtables-monitor` printed it (`-4 -t filter -A chain …`).
    pub rule: Option<String>,
    pub packet: Packet,
    /// nft: line of the `PACKET:` line the packet fields came from.
    pub packet_line: Option<usize>,
}

/// A `-j LOG` line: prefix plus packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedPacket {
    pub line: usize,
    pub prefix: String,
    pub packet: Packet,
}

/// A kernel message worth showing in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelLine {
    pub line: usize,
    pub text: String,
}

/// Parsed kernel log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Dmesg {
    /// Non-blank lines.
    pub lines: usize,
    pub traces: Vec<TraceEntry>,
    pub logged: Vec<LoggedPacket>,
    pub notable: Vec<KernelLine>,
    /// Notable lines past [`MAX_NOTABLE`].
    pub notable_dropped: usize,
    /// Lines that are none of the above.
    pub other: usize,
    pub errors: Vec<ParseError>,
    /// First `PACKET:` line per nft trace id.
    #[serde(skip)]
    nft_packets: HashMap<u32, (usize, Packet)>,
}

impl Dmesg {
    /// Records as the report counts them: non-blank lines.
    pub fn records(&self) -> usize {
        self.lines
    }

    /// Append the next chunk of the same file (chunks merged in file order).
    pub fn merge(&mut self, mut later: Dmesg) {
        // A trace takes the first PACKET line of its id in the whole file.
        for t in later.traces.iter_mut() {
            if let Some(id) = t.trace_id
                && let Some((line, p)) = self.nft_packets.get(&id)
            {
                t.packet = p.clone();
                t.packet_line = Some(*line);
            }
        }
        for t in self.traces.iter_mut() {
            if t.packet_line.is_none()
                && let Some(id) = t.trace_id
                && let Some((line, p)) = later.nft_packets.get(&id)
            {
                t.packet = p.clone();
                t.packet_line = Some(*line);
            }
        }
        for (id, v) in later.nft_packets {
            self.nft_packets.entry(id).or_insert(v);
        }
        self.lines += later.lines;
        self.traces.extend(later.traces);
        self.logged.extend(later.logged);
        let room = MAX_NOTABLE.saturating_sub(self.notable.len());
        let n = later.notable.len();
        self.notable.extend(later.notable.into_iter().take(room));
        self.notable_dropped += later.notable_dropped + n.saturating_sub(room);
        self.other += later.other;
        let room = MAX_ERRORS.saturating_sub(self.errors.len());
        self.errors.extend(later.errors.into_iter().take(room));
    }
}

/// Parse a whole kernel log.
pub fn parse(text: &str) -> Dmesg {
    parse_chunk(text, 1)
}

/// Parse one chunk whose first line is line `first_line` of the file.
pub fn parse_chunk(text: &str, first_line: usize) -> Dmesg {
    let mut d = Dmesg::default();
    for (no, raw) in numbered_lines(text, first_line) {
        if raw.trim().is_empty() {
            continue;
        }
        d.lines += 1;
        let (uptime, msg) = strip_prefixes(raw);
        let msg = msg.trim();
        if let Some(rest) = msg.strip_prefix("TRACE:") {
            match parse_trace(no, uptime, rest.trim_start()) {
                Ok(t) => d.traces.push(t),
                Err(e) => {
                    if d.errors.len() < MAX_ERRORS {
                        d.errors.push(ParseError::new(no, e));
                    }
                }
            }
        } else if let Some(rest) = msg.strip_prefix("PACKET:") {
            match parse_nft_packet(rest.trim_start()) {
                Some((id, p)) => {
                    d.nft_packets.entry(id).or_insert((no, p));
                }
                None => {
                    if d.errors.len() < MAX_ERRORS {
                        d.errors
                            .push(ParseError::new(no, "unreadable PACKET: line"));
                    }
                }
            }
        } else if let Some((prefix, fields)) = split_log_line(msg) {
            d.logged.push(LoggedPacket {
                line: no,
                prefix: prefix.to_string(),
                packet: parse_packet(fields),
            });
        } else if is_notable(msg) {
            if d.notable.len() < MAX_NOTABLE {
                d.notable.push(KernelLine {
                    line: no,
                    text: msg.to_string(),
                });
            } else {
                d.notable_dropped += 1;
            }
        } else {
            d.other += 1;
        }
    }
    for t in d.traces.iter_mut() {
        if let Some(id) = t.trace_id
            && let Some((line, p)) = d.nft_packets.get(&id)
        {
            t.packet = p.clone();
            t.packet_line = Some(*line);
        }
    }
    d
}

/// Remove `kern  :warn  : ` (dmesg -x), `Mar  1 08:22:21 host kernel: ` (syslog, journal),
/// and the `[  123.456789]` / `[Mon Mar  1 08:22:21 2021]` stamp. Returns the uptime seconds
/// when the stamp is numeric.
fn strip_prefixes(line: &str) -> (Option<String>, &str) {
    let mut s = line.trim_start();
    // dmesg -x: facility and level, each padded and followed by ':'.
    if let Some((fac, rest)) = s.split_once(':')
        && !fac.is_empty()
        && fac.trim_end().bytes().all(|c| c.is_ascii_lowercase())
        && fac.trim_end().len() <= 6
        && let Some((lvl, rest2)) = rest.split_once(':')
        && matches!(
            lvl.trim(),
            "emerg" | "alert" | "crit" | "err" | "warn" | "notice" | "info" | "debug"
        )
    {
        s = rest2.trim_start();
    }
    if let Some(i) = s.get(..80.min(s.len())).and_then(|h| h.find(" kernel: ")) {
        s = &s[i + " kernel: ".len()..];
    }
    let mut uptime = None;
    if let Some(inner_rest) = s.strip_prefix('[')
        && let Some((inner, rest)) = inner_rest.split_once(']')
    {
        let t = inner.trim();
        if !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
            uptime = Some(t.to_string());
            s = rest;
        } else if t.len() >= 20 && t.bytes().any(|c| c.is_ascii_alphabetic()) && t.contains(':') {
            // dmesg -T: `Mon Mar  1 08:22:21 2021`
            s = rest;
        }
    }
    (uptime, s.trim_start())
}

/// `raw:PREROUTING:policy:2 IN=…` (legacy) or `2 fa5a6e3e filter:x:rule:0x3:ACCEPT  -4 …`.
fn parse_trace(no: usize, uptime: Option<String>, rest: &str) -> Result<TraceEntry, String> {
    let mut toks = rest.splitn(3, ' ');
    let first = toks.next().unwrap_or_default();
    let mut entry = TraceEntry {
        line: no,
        source: TraceSource::Kernel,
        uptime,
        table: String::new(),
        chain: String::new(),
        kind: TraceKind::Rule,
        rulenum: None,
        handle: None,
        verdict: None,
        trace_id: None,
        family: None,
        rule: None,
        packet: Packet::default(),
        packet_line: None,
    };
    let nft = first.bytes().all(|c| c.is_ascii_digit()) && !first.is_empty();
    if nft {
        let id = toks.next().unwrap_or_default();
        let after = toks.next().unwrap_or_default();
        entry.source = TraceSource::XtablesMonitor;
        entry.family = first.parse().ok();
        entry.trace_id =
            Some(u32::from_str_radix(id, 16).map_err(|_| format!("bad trace id {id:?}"))?);
        let (spec, rule) = after.split_once(' ').unwrap_or((after, ""));
        let mut parts = spec.splitn(4, ':');
        entry.table = parts.next().unwrap_or_default().to_string();
        entry.chain = parts.next().unwrap_or_default().to_string();
        let kind = parts.next().unwrap_or_default();
        let tail = parts.next().unwrap_or_default();
        entry.kind = trace_kind(kind)?;
        match entry.kind {
            TraceKind::Rule => {
                let (handle, verdict) = tail.split_once(':').unwrap_or((tail, ""));
                entry.handle = Some(
                    handle
                        .strip_prefix("0x")
                        .and_then(|h| u64::from_str_radix(h, 16).ok())
                        .ok_or_else(|| format!("bad rule handle {handle:?}"))?,
                );
                entry.verdict = non_empty(verdict);
            }
            TraceKind::Policy | TraceKind::Return => entry.verdict = non_empty(tail),
        }
        entry.rule = non_empty(rule.trim());
    } else {
        let (spec, fields) = rest.split_once(' ').unwrap_or((rest, ""));
        let mut parts = spec.splitn(4, ':');
        entry.table = parts.next().unwrap_or_default().to_string();
        entry.chain = parts.next().unwrap_or_default().to_string();
        entry.kind = trace_kind(parts.next().unwrap_or_default())?;
        let num = parts.next().unwrap_or_default();
        entry.rulenum = Some(
            num.parse()
                .map_err(|_| format!("bad rule number {num:?}"))?,
        );
        entry.packet = parse_packet(fields);
    }
    if entry.table.is_empty() || entry.chain.is_empty() {
        return Err("TRACE line without table:chain".into());
    }
    Ok(entry)
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn trace_kind(s: &str) -> Result<TraceKind, String> {
    match s {
        "rule" => Ok(TraceKind::Rule),
        "return" => Ok(TraceKind::Return),
        "policy" => Ok(TraceKind::Policy),
        other => Err(format!("unknown TRACE kind {other:?}")),
    }
}

/// `2 fa5a6e3e IN=eth0 MACSRC=… SRC=… DST=… … SPORT=… DPORT=… SYN MARK=0x…`
fn parse_nft_packet(rest: &str) -> Option<(u32, Packet)> {
    let mut it = rest.splitn(3, ' ');
    let _family = it.next()?;
    let id = u32::from_str_radix(it.next()?, 16).ok()?;
    let mut p = parse_packet(it.next().unwrap_or_default());
    if p.proto.is_none()
        && p.flags
            .iter()
            .any(|f| matches!(f.as_str(), "SYN" | "ACK" | "FIN" | "RST" | "PSH" | "URG"))
    {
        p.proto = Some("TCP".into());
    }
    Some((id, p))
}

/// A `-j LOG` line: `<prefix>IN=… OUT=… …`. Returns the prefix and the fields.
fn split_log_line(msg: &str) -> Option<(&str, &str)> {
    let i = if msg.starts_with("IN=") {
        0
    } else {
        msg.find(" IN=")
            .map(|i| i + 1)
            .or_else(|| msg.find("IN="))?
    };
    let fields = &msg[i..];
    if !fields.contains(" OUT=") {
        return None;
    }
    Some((msg[..i].trim_end(), fields))
}

/// Read `KEY=value` and bare flag words of an `nf_log` packet dump.
fn parse_packet(fields: &str) -> Packet {
    let mut p = Packet::default();
    let mut in_opt = false;
    for tok in fields.split_ascii_whitespace() {
        // `OPT (…)` hex dumps may contain spaces.
        if in_opt {
            in_opt = !tok.ends_with(')');
            continue;
        }
        let Some((k, v)) = tok.split_once('=') else {
            if tok == "OPT" || tok.starts_with("OPT(") || tok.starts_with('(') {
                in_opt = !tok.ends_with(')');
            } else if tok
                .bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            {
                p.flags.push(tok.to_string());
            }
            continue;
        };
        let iface = |v: &str| (!v.is_empty()).then(|| v.to_string());
        match k {
            "IN" => p.in_iface = iface(v),
            "OUT" => p.out_iface = iface(v),
            "SRC" if p.src.is_none() => p.src = v.parse().ok(),
            "DST" if p.dst.is_none() => p.dst = v.parse().ok(),
            "PROTO" if p.proto.is_none() => p.proto = Some(v.to_string()),
            "SPT" | "SPORT" if p.sport.is_none() => p.sport = v.parse().ok(),
            "DPT" | "DPORT" if p.dport.is_none() => p.dport = v.parse().ok(),
            "LEN" if p.len.is_none() => p.len = v.parse().ok(),
            "TYPE" if p.icmp_type.is_none() => p.icmp_type = v.parse().ok(),
            "CODE" if p.icmp_code.is_none() => p.icmp_code = v.parse().ok(),
            "MARK" => {
                p.mark = match v.strip_prefix("0x") {
                    Some(h) => u32::from_str_radix(h, 16).ok(),
                    None => v.parse().ok(),
                }
            }
            _ => {}
        }
    }
    p
}

/// Kernel messages that bear on Calico problems.
const NOTABLE: &[&str] = &[
    "nf_conntrack: table full",
    "table full, dropping packet",
    "nf_conntrack: expectation table full",
    "martian source",
    "martian destination",
    "neighbour table overflow",
    "neighbor table overflow",
    "out of memory",
    "oom-kill",
    "killed process",
    "segfault",
    "general protection fault",
    "bug:",
    "call trace",
    "hung_task",
    "xt_",
    "ip_tables:",
    "nf_tables",
    "bpf",
    "vxlan",
    "ipip",
    "wireguard",
    "entered disabled state",
    "link is not ready",
    "dropped",
];

fn is_notable(msg: &str) -> bool {
    let lower = msg.to_ascii_lowercase();
    NOTABLE.iter().any(|n| lower.contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_of_every_dmesg_flavour_are_removed() {
        for l in [
            "[  123.456789] TRACE: x",
            "kern  :warn  : [  123.456789] TRACE: x",
            "[Mon Mar  1 08:22:21 2021] TRACE: x",
            "Mar  1 08:22:21 node-1 kernel: [  123.456789] TRACE: x",
            "Mar 01 08:22:21 node-1 kernel: TRACE: x",
        ] {
            assert_eq!(strip_prefixes(l).1, "TRACE: x", "{l}");
        }
        assert_eq!(
            strip_prefixes("[  123.456789] x").0.as_deref(),
            Some("123.456789")
        );
    }
}
