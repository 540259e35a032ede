//! conntrack-tools output: `conntrack -L` flow lines (plain, `-o extended` with the
//! `ipv4     2 ` prefix, `-E` events with `[NEW]`/`[UPDATE]`/`[DESTROY]` and optional
//! `[<secs>.<usecs>]` stamps), the stderr summary `conntrack vX (conntrack-tools): N flow
//! entries have been shown.`, and the statistics of `conntrack -S` (per-CPU `cpu=N key=value
//! …`) and `conntrack -C` (one number). Files that mix them (stderr merged, `-L -S -C` in one
//! capture) are read line by line, each line by its shape.
//!
//! Tables can hold a million flows, so an [`Entry`] is compact: numeric addresses and ports,
//! small enums, no strings. Large files are parsed in chunks ([`parse_chunk`]) and merged in
//! file order ([`Table::merge`]); flows never span lines, so merging is concatenation.
//!
//! Not handled: `-o xml` (reported as one error), per-flow helper/label/secctx details (skipped).

use std::net::IpAddr;

use serde::Serialize;

use super::{ParseError, numbered_lines};

/// Parse errors kept (a file of garbage would otherwise yield one per line).
pub const MAX_ERRORS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Family {
    Ipv4,
    Ipv6,
}

/// TCP conntrack states as the kernel names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum TcpState {
    None,
    SynSent,
    SynRecv,
    Established,
    FinWait,
    CloseWait,
    LastAck,
    TimeWait,
    Close,
    /// `LISTEN` (printed for SYN_SENT2 by old kernels) and `SYN_SENT2`.
    SynSent2,
    Ignore,
}

impl TcpState {
    pub fn from_word(w: &str) -> Option<TcpState> {
        Some(match w {
            "NONE" => TcpState::None,
            "SYN_SENT" => TcpState::SynSent,
            "SYN_RECV" => TcpState::SynRecv,
            "ESTABLISHED" => TcpState::Established,
            "FIN_WAIT" => TcpState::FinWait,
            "CLOSE_WAIT" => TcpState::CloseWait,
            "LAST_ACK" => TcpState::LastAck,
            "TIME_WAIT" => TcpState::TimeWait,
            "CLOSE" => TcpState::Close,
            "LISTEN" | "SYN_SENT2" => TcpState::SynSent2,
            "IGNORE" => TcpState::Ignore,
            _ => return None,
        })
    }
}

/// `conntrack -E` event kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Event {
    New,
    Update,
    Destroy,
}

/// Layer-4 part of a tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum L4 {
    None,
    Ports { sport: u16, dport: u16 },
    Icmp { kind: u8, code: u8, id: u16 },
}

/// One direction of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Tuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub l4: L4,
}

impl Tuple {
    pub fn sport(&self) -> Option<u16> {
        match self.l4 {
            L4::Ports { sport, .. } => Some(sport),
            _ => None,
        }
    }
    pub fn dport(&self) -> Option<u16> {
        match self.l4 {
            L4::Ports { dport, .. } => Some(dport),
            _ => None,
        }
    }
}

/// One flow (or one event) of `conntrack -L` / `-E`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// 1-based line.
    pub line: u32,
    pub family: Family,
    /// IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6, …).
    pub proto: u8,
    /// Seconds left (0 when the line has none, as in `[DESTROY]` events).
    pub timeout: u32,
    pub state: Option<TcpState>,
    pub orig: Tuple,
    pub reply: Tuple,
    pub unreplied: bool,
    pub assured: bool,
    pub mark: u32,
    pub zone: Option<u16>,
    pub use_count: u32,
    pub event: Option<Event>,
}

/// `conntrack -S` per-CPU counters and totals, and the `conntrack -C` count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// `(line, cpu, [(key, value)])` in file order.
    pub cpus: Vec<CpuStats>,
    /// Sum over CPUs, per key, in first-seen key order.
    pub totals: Vec<(String, u64)>,
    /// `conntrack -C`: the number alone on its line.
    pub count: Option<Count>,
    pub errors: Vec<ParseError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CpuStats {
    pub line: usize,
    pub cpu: u32,
    pub counters: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Count {
    pub line: usize,
    pub value: u64,
}

impl Stats {
    /// Per-CPU lines (plus one for the `-C` count).
    pub fn records(&self) -> usize {
        self.cpus.len() + usize::from(self.count.is_some())
    }

    /// Total of one counter over all CPUs (`drop`, `insert_failed`, `early_drop`, …).
    pub fn total(&self, key: &str) -> Option<u64> {
        self.totals.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    fn add_cpu(&mut self, cpu: CpuStats) {
        for (k, v) in &cpu.counters {
            match self.totals.iter_mut().find(|(tk, _)| tk == k) {
                Some((_, t)) => *t = t.saturating_add(*v),
                None => self.totals.push((k.clone(), *v)),
            }
        }
        self.cpus.push(cpu);
    }

    fn merge(&mut self, later: Stats) {
        for cpu in later.cpus {
            self.add_cpu(cpu);
        }
        if later.count.is_some() {
            self.count = later.count;
        }
        push_errors(&mut self.errors, later.errors);
    }
}

/// The stderr summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub line: usize,
    /// `N` of `N flow entries have been shown.`
    pub shown: u64,
}

/// Parsed `conntrack` output.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Table {
    pub entries: Vec<Entry>,
    /// The last `… N flow entries have been shown.` line.
    pub summary: Option<Summary>,
    /// Other `conntrack vX (conntrack-tools): …` messages (errors such as
    /// `Operation failed: …`), with their line.
    pub messages: Vec<(usize, String)>,
    /// `-S` / `-C` output found in the same file.
    pub stats: Stats,
    pub lines: usize,
    pub errors: Vec<ParseError>,
}

impl Table {
    /// Records as the report counts them: flow entries.
    pub fn records(&self) -> usize {
        self.entries.len()
    }

    /// Append the next chunk of the same file (chunks merged in file order).
    pub fn merge(&mut self, later: Table) {
        self.entries.extend(later.entries);
        if later.summary.is_some() {
            self.summary = later.summary;
        }
        self.messages.extend(later.messages);
        self.stats.merge(later.stats);
        self.lines += later.lines;
        push_errors(&mut self.errors, later.errors);
    }
}

fn push_errors(into: &mut Vec<ParseError>, more: Vec<ParseError>) {
    let room = MAX_ERRORS.saturating_sub(into.len());
    into.extend(more.into_iter().take(room));
}

fn push_error(into: &mut Vec<ParseError>, line: usize, msg: impl Into<String>) {
    if into.len() < MAX_ERRORS {
        into.push(ParseError::new(line, msg));
    }
}

/// Parse a whole `conntrack -L` (or `-E`, `-S`, `-C`) capture.
pub fn parse(text: &str) -> Table {
    parse_chunk(text, 1)
}

/// Parse one chunk whose first line is line `first_line` of the file.
pub fn parse_chunk(text: &str, first_line: usize) -> Table {
    let mut t = Table::default();
    let mut xml_reported = false;
    for (no, line) in numbered_lines(text, first_line) {
        t.lines += 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = tool_message(line) {
            match shown_count(rest) {
                Some(n) => t.summary = Some(Summary { line: no, shown: n }),
                None => t.messages.push((no, rest.to_string())),
            }
            continue;
        }
        if line.starts_with('<') {
            if !xml_reported {
                push_error(&mut t.errors, no, "conntrack -o xml output is not read");
                xml_reported = true;
            }
            continue;
        }
        if line.starts_with("cpu=") {
            match parse_cpu_line(no, line) {
                Some(cpu) => t.stats.add_cpu(cpu),
                None => push_error(&mut t.errors, no, "unreadable conntrack -S line"),
            }
            continue;
        }
        if let Ok(n) = line.parse::<u64>() {
            t.stats.count = Some(Count { line: no, value: n });
            continue;
        }
        match parse_entry(no, line) {
            Ok(e) => t.entries.push(e),
            Err(msg) => push_error(&mut t.errors, no, msg),
        }
    }
    t
}

/// Parse `conntrack -S` (and a `conntrack -C` count) output.
pub fn parse_stats(text: &str) -> Stats {
    let mut s = Stats::default();
    for (no, line) in numbered_lines(text, 1) {
        let line = line.trim();
        if line.is_empty() || tool_message(line).is_some() {
            continue;
        }
        if line.starts_with("cpu=") {
            match parse_cpu_line(no, line) {
                Some(cpu) => s.add_cpu(cpu),
                None => push_error(&mut s.errors, no, "unreadable conntrack -S line"),
            }
        } else if let Ok(n) = line.parse::<u64>() {
            s.count = Some(Count { line: no, value: n });
        } else {
            push_error(&mut s.errors, no, "not a conntrack -S or -C line");
        }
    }
    s
}

/// `conntrack v1.4.6 (conntrack-tools): <rest>`
fn tool_message(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("conntrack v")?;
    let (_, msg) = rest.split_once("(conntrack-tools):")?;
    Some(msg.trim())
}

fn shown_count(msg: &str) -> Option<u64> {
    let (n, rest) = msg.split_once(' ')?;
    if rest.starts_with("flow entries have been shown") {
        n.parse().ok()
    } else {
        None
    }
}

/// `cpu=0 found=0 invalid=12 ignore=0 insert=0 …`; the cpu number may be padded.
fn parse_cpu_line(no: usize, line: &str) -> Option<CpuStats> {
    let mut cpu = None;
    let mut counters = Vec::new();
    for tok in line.split_ascii_whitespace() {
        let (k, v) = tok.split_once('=')?;
        let v: u64 = v.parse().ok()?;
        if k == "cpu" {
            cpu = Some(u32::try_from(v).ok()?);
        } else {
            counters.push((k.to_string(), v));
        }
    }
    Some(CpuStats {
        line: no,
        cpu: cpu?,
        counters,
    })
}

/// Proto names conntrack prints, with their numbers.
fn proto_number(name: &str) -> Option<u8> {
    Some(match name {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "icmpv6" => 58,
        "sctp" => 132,
        "dccp" => 33,
        "udplite" => 136,
        "gre" => 47,
        _ => return None,
    })
}

#[derive(Default)]
struct TupleBuilder {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    sport: Option<u16>,
    dport: Option<u16>,
    kind: Option<u8>,
    code: Option<u8>,
    id: Option<u16>,
}

impl TupleBuilder {
    fn build(&self) -> Option<Tuple> {
        let l4 = match (self.sport, self.dport, self.kind, self.code) {
            (Some(sport), Some(dport), _, _) => L4::Ports { sport, dport },
            (_, _, Some(kind), Some(code)) => L4::Icmp {
                kind,
                code,
                id: self.id.unwrap_or(0),
            },
            _ => L4::None,
        };
        Some(Tuple {
            src: self.src?,
            dst: self.dst?,
            l4,
        })
    }
}

fn parse_entry(no: usize, line: &str) -> Result<Entry, String> {
    let mut toks = line.split_ascii_whitespace().peekable();
    let mut event = None;
    // `-E -o timestamp`: `[1591967432.123456]` before the event.
    if toks
        .peek()
        .is_some_and(|t| t.starts_with('[') && t[1..].starts_with(|c: char| c.is_ascii_digit()))
    {
        toks.next();
    }
    if let Some(t) = toks.peek() {
        event = match *t {
            "[NEW]" => Some(Event::New),
            "[UPDATE]" => Some(Event::Update),
            "[DESTROY]" => Some(Event::Destroy),
            _ => None,
        };
        if event.is_some() {
            toks.next();
        }
    }
    let mut family = None;
    let mut tok = toks.next().ok_or("empty line")?;
    match tok {
        "ipv4" | "ipv6" => {
            family = Some(if tok == "ipv4" {
                Family::Ipv4
            } else {
                Family::Ipv6
            });
            toks.next(); // the family number (2 / 10)
            tok = toks.next().ok_or("line ends after the family")?;
        }
        _ => {}
    }
    let name_proto = proto_number(tok);
    let proto_tok = toks.next().ok_or("line ends after the protocol")?;
    let proto: u8 = match proto_tok.parse() {
        Ok(p) => p,
        Err(_) => {
            return Err(format!(
                "not a conntrack entry (protocol {tok:?} {proto_tok:?})"
            ));
        }
    };
    if name_proto.is_some_and(|p| p != proto) {
        return Err(format!("protocol {tok} has number {proto}"));
    }
    if name_proto.is_none() && tok != "unknown" && !tok.bytes().all(|c| c.is_ascii_lowercase()) {
        return Err(format!("not a conntrack entry (protocol {tok:?})"));
    }
    let mut timeout = 0;
    let mut state = None;
    let mut tuples = [TupleBuilder::default(), TupleBuilder::default()];
    let mut dir = 0usize;
    let mut unreplied = false;
    let mut assured = false;
    let mut mark = 0;
    let mut zone = None;
    let mut use_count = 0;
    let mut first = true;
    for tok in toks {
        if first {
            first = false;
            if let Ok(n) = tok.parse::<u32>() {
                timeout = n;
                continue;
            }
        }
        if let Some((k, v)) = tok.split_once('=') {
            let bad = || format!("bad value in {tok:?}");
            match k {
                "src" | "dst" => {
                    // A second `src=` starts the reply tuple.
                    if k == "src" && tuples[dir].src.is_some() {
                        dir = 1;
                        if tuples[1].src.is_some() {
                            return Err("more than two tuples".into());
                        }
                    }
                    let ip: IpAddr = v.parse().map_err(|_| bad())?;
                    if k == "src" {
                        tuples[dir].src = Some(ip);
                    } else {
                        tuples[dir].dst = Some(ip);
                    }
                }
                "sport" => tuples[dir].sport = Some(v.parse().map_err(|_| bad())?),
                "dport" => tuples[dir].dport = Some(v.parse().map_err(|_| bad())?),
                "type" => tuples[dir].kind = Some(v.parse().map_err(|_| bad())?),
                "code" => tuples[dir].code = Some(v.parse().map_err(|_| bad())?),
                "id" if tuples[dir].kind.is_some() && tuples[dir].id.is_none() => {
                    tuples[dir].id = Some(v.parse().map_err(|_| bad())?)
                }
                "mark" => mark = parse_u32(v).ok_or_else(bad)?,
                "zone" => zone = Some(v.parse().map_err(|_| bad())?),
                "use" => use_count = v.parse().map_err(|_| bad())?,
                // packets=, bytes=, secctx=, labels=, id=, delta-time=, zone-orig=, …
                _ => {}
            }
            continue;
        }
        match tok {
            "[UNREPLIED]" => unreplied = true,
            "[ASSURED]" => assured = true,
            _ if state.is_none() && tuples[0].src.is_none() => {
                state = TcpState::from_word(tok);
            }
            // [OFFLOAD], [HW_OFFLOAD], [SEEN_REPLY], …
            _ => {}
        }
    }
    let orig = tuples[0].build().ok_or("no original tuple (src=/dst=)")?;
    let reply = tuples[1].build().ok_or("no reply tuple")?;
    let family = family.unwrap_or(if orig.src.is_ipv6() {
        Family::Ipv6
    } else {
        Family::Ipv4
    });
    let line = u32::try_from(no).map_err(|_| "line number too large".to_string())?;
    Ok(Entry {
        line,
        family,
        proto,
        timeout,
        state: if proto == 6 { state } else { None },
        orig,
        reply,
        unreplied,
        assured,
        mark,
        zone,
        use_count,
        event,
    })
}

fn parse_u32(v: &str) -> Option<u32> {
    match v.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_small() {
        // A million of these must fit comfortably in memory.
        assert!(
            std::mem::size_of::<Entry>() <= 112,
            "{}",
            std::mem::size_of::<Entry>()
        );
    }

    #[test]
    fn tcp_line_reads_both_tuples_and_flags() {
        let e = parse_entry(
            3,
            "tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 [ASSURED] mark=0x10000 zone=3 use=2",
        )
        .expect("entry");
        assert_eq!(e.state, Some(TcpState::Established));
        assert_eq!(e.timeout, 431999);
        assert_eq!(e.orig.dport(), Some(80));
        assert_eq!(e.reply.sport(), Some(80));
        assert!(e.assured && !e.unreplied);
        assert_eq!((e.mark, e.zone, e.use_count), (0x10000, Some(3), 2));
    }
}
