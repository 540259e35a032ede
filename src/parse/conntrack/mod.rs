//! conntrack-tools output: `conntrack -L` flow lines (plain, `-o extended` with the
//! `ipv4     2 ` prefix, `-E` events with `[NEW]`/`[UPDATE]`/`[DESTROY]` and optional
//! `[<secs>.<usecs>]` stamps), the stderr summary `conntrack vX (conntrack-tools): N flow
//! entries have been shown.`, and the statistics of `conntrack -S` (per-CPU `cpu=N key=value
//! …`) and `conntrack -C` (one number). Files that mix them (stderr merged, `-L -S -C` in one
//! capture) are read line by line, each line by its shape.
//!
//! Tables can hold millions of flows, so a [`Table`] does not keep them: every line is parsed
//! into a compact [`Entry`] on the stack and folded into bounded aggregates: [`Counts`] by
//! protocol, TCP state and event; the first [`SAMPLE`] entries; and [`Groups`] of the flows
//! that become evidence (`[UNREPLIED]` flows, established connections), one per flow key with
//! its count and its earliest entry, at most a fixed number of keys each (the first keys in
//! file order; later new keys only count as `dropped`). Large files are parsed in chunks
//! ([`parse_chunk`]) and merged in file order ([`Table::merge`]); flows never span lines.
//!
//! Two line readers: flow lines as `conntrack -L` prints them go through a fast one (`fast`:
//! one pass, the usual values read in place); every other line, and any flow line it does not
//! expect, through the general tokenizer below. Both feed the same per-token builder, and
//! tests hold them to the same tables ([`parse_chunk_with`]).
//!
//! Not handled: `-o xml` (reported as one error), per-flow helper/label/secctx details (skipped).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

use super::{ParseError, numbered_lines};

mod fast;

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
    /// Number of states (the length of [`Counts::by_state`]).
    pub const COUNT: usize = 11;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

impl Entry {
    /// A connection conntrack has seen both ways: TCP `ESTABLISHED`, or UDP with a reply.
    pub fn is_established(&self) -> bool {
        match self.state {
            Some(s) => s == TcpState::Established,
            None => self.proto == 17 && !self.unreplied,
        }
    }
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

/// Entries kept whole in [`Table::sample`], the first of the file.
pub const SAMPLE: usize = 32;
/// Flow keys kept in [`Table::unreplied`] (and in [`Table::unreplied_events`]).
pub const UNREPLIED_GROUPS: usize = 4096;
/// Flow keys kept in [`Table::established`].
pub const ESTABLISHED_GROUPS: usize = 8192;

/// How many entries of each kind a table holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Flow lines (and event lines) read: what the report counts as records.
    pub flows: u64,
    /// `conntrack -E` events: `[NEW]`, `[UPDATE]`, `[DESTROY]`, in that order.
    pub by_event: [u64; 3],
    /// TCP flows by state, indexed by `TcpState as usize`.
    pub by_state: [u64; TcpState::COUNT],
    /// `(protocol number, flows)` in first-seen order.
    pub by_proto: Vec<(u8, u64)>,
    pub unreplied: u64,
    pub assured: u64,
}

impl Counts {
    /// Event lines (`conntrack -E`) among the flows.
    pub fn events(&self) -> u64 {
        self.by_event.iter().sum()
    }

    pub fn event(&self, e: Event) -> u64 {
        self.by_event[e as usize]
    }

    pub fn state(&self, s: TcpState) -> u64 {
        self.by_state[s as usize]
    }

    pub fn proto(&self, proto: u8) -> u64 {
        self.by_proto
            .iter()
            .find(|(p, _)| *p == proto)
            .map_or(0, |(_, n)| *n)
    }

    fn add(&mut self, e: &Entry) {
        self.flows += 1;
        if let Some(ev) = e.event {
            self.by_event[ev as usize] += 1;
        }
        if let Some(s) = e.state {
            self.by_state[s as usize] += 1;
        }
        self.add_proto(e.proto, 1);
        self.unreplied += u64::from(e.unreplied);
        self.assured += u64::from(e.assured);
    }

    fn add_proto(&mut self, proto: u8, n: u64) {
        // A handful of protocols: a scan beats a map.
        match self.by_proto.iter_mut().find(|(p, _)| *p == proto) {
            Some((_, c)) => *c += n,
            None => self.by_proto.push((proto, n)),
        }
    }

    fn merge(&mut self, later: &Counts) {
        self.flows += later.flows;
        for (a, b) in self.by_event.iter_mut().zip(later.by_event) {
            *a += b;
        }
        for (a, b) in self.by_state.iter_mut().zip(later.by_state) {
            *a += b;
        }
        for &(p, n) in &later.by_proto {
            self.add_proto(p, n);
        }
        self.unreplied += later.unreplied;
        self.assured += later.assured;
    }
}

/// The entries of one flow key: how many, and the earliest (its line is the evidence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowGroup<K> {
    pub key: K,
    pub count: u64,
    pub first: Entry,
}

/// `[UNREPLIED]` flows by original tuple (without the source port, which changes with every
/// retry) and the reply's source (the real destination after DNAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct UnrepliedKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub reply_src: IpAddr,
    pub proto: u8,
    pub dport: Option<u16>,
}

/// Flows by original source, destination, protocol and destination port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct FlowKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub dport: Option<u16>,
}

// The derived `Hash` feeds the hasher field by field (a dozen small writes per key, a
// measurable share of parsing a big table); one write of the packed key hashes the same
// equality.
fn pack_ip(ip: IpAddr) -> u128 {
    match ip {
        // An IPv4 address is never equal to an IPv6 one: keep them apart (bit 127 marks v4).
        IpAddr::V4(a) => (1 << 127) | u128::from(a.to_bits()),
        IpAddr::V6(a) => a.to_bits(),
    }
}

fn pack_l4(proto: u8, dport: Option<u16>) -> u32 {
    u32::from(proto) << 24 | dport.map_or(0, |p| (1 << 16) | u32::from(p))
}

impl Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut b = [0u8; 36];
        b[..16].copy_from_slice(&pack_ip(self.src).to_le_bytes());
        b[16..32].copy_from_slice(&pack_ip(self.dst).to_le_bytes());
        b[32..].copy_from_slice(&pack_l4(self.proto, self.dport).to_le_bytes());
        state.write(&b);
    }
}

impl Hash for UnrepliedKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut b = [0u8; 52];
        b[..16].copy_from_slice(&pack_ip(self.src).to_le_bytes());
        b[16..32].copy_from_slice(&pack_ip(self.dst).to_le_bytes());
        b[32..48].copy_from_slice(&pack_ip(self.reply_src).to_le_bytes());
        b[48..].copy_from_slice(&pack_l4(self.proto, self.dport).to_le_bytes());
        state.write(&b);
    }
}

/// Entries grouped by key, in the order each key first appears, with at most `cap` keys:
/// once full, entries of keys not yet kept are only counted in `dropped`. Keys kept are the
/// first of the file, so a group's `first` is its earliest entry and its `count` is exact.
#[derive(Clone, Serialize)]
pub struct Groups<K> {
    groups: Vec<FlowGroup<K>>,
    /// Keyed by addresses from the dump: a fast hash, seeded per process (no fixed seed a
    /// crafted table could collide on).
    #[serde(skip)]
    index: HashMap<K, u32, foldhash::fast::RandomState>,
    cap: usize,
    /// Entries of keys that were not kept because the cap was reached.
    pub dropped: u64,
}

impl<K: Copy + Eq + Hash> Groups<K> {
    pub fn new(cap: usize) -> Self {
        Groups {
            groups: Vec::new(),
            index: HashMap::default(),
            cap,
            dropped: 0,
        }
    }

    /// Groups in the order their keys first appear in the file (their `first.line` ascends).
    pub fn iter(&self) -> std::slice::Iter<'_, FlowGroup<K>> {
        self.groups.iter()
    }

    pub fn get(&self, key: &K) -> Option<&FlowGroup<K>> {
        self.index.get(key).map(|&i| &self.groups[i as usize])
    }

    /// Keys kept.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Keys kept at most.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Entries counted, kept or dropped.
    pub fn entries(&self) -> u64 {
        self.groups.iter().map(|g| g.count).sum::<u64>() + self.dropped
    }

    fn add(&mut self, key: K, e: &Entry) {
        if let Some(&i) = self.index.get(&key) {
            self.groups[i as usize].count += 1;
        } else {
            self.insert(FlowGroup {
                key,
                count: 1,
                first: *e,
            });
        }
    }

    /// A key not kept yet: kept if there is room, else counted as dropped.
    fn insert(&mut self, g: FlowGroup<K>) {
        if self.groups.len() < self.cap {
            self.index.insert(g.key, self.groups.len() as u32);
            self.groups.push(g);
        } else {
            self.dropped += g.count;
        }
    }

    /// Append the groups of the next chunk. Exact when that chunk kept every key it met
    /// (fewer than `cap`); otherwise entries of its keys it had no room for stay `dropped`,
    /// even when an earlier chunk kept their key.
    fn merge(&mut self, later: Groups<K>) {
        for g in later.groups {
            match self.index.get(&g.key) {
                Some(&i) => self.groups[i as usize].count += g.count,
                None => self.insert(g),
            }
        }
        self.dropped += later.dropped;
    }
}

// Without the index: its order is random, and it says nothing `groups` does not.
impl<K: std::fmt::Debug> std::fmt::Debug for Groups<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Groups")
            .field("groups", &self.groups)
            .field("cap", &self.cap)
            .field("dropped", &self.dropped)
            .finish()
    }
}

impl<K: PartialEq> PartialEq for Groups<K> {
    fn eq(&self, other: &Self) -> bool {
        self.groups == other.groups && self.cap == other.cap && self.dropped == other.dropped
    }
}

impl<K: Eq> Eq for Groups<K> {}

/// Parsed `conntrack` output: counts and bounded groups, not every flow.
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub counts: Counts,
    /// The first [`SAMPLE`] entries, in file order.
    pub sample: Vec<Entry>,
    /// Line of the last flow entry.
    pub last_line: Option<u32>,
    /// `[UNREPLIED]` flows of a listing, and `[DESTROY]` events of flows that never got an
    /// answer ([`UNREPLIED_GROUPS`] keys at most).
    pub unreplied: Groups<UnrepliedKey>,
    /// `[NEW]` and `[UPDATE]` events still unreplied: `conntrack -E` prints every new flow so.
    pub unreplied_events: Groups<UnrepliedKey>,
    /// Established connections ([`Entry::is_established`]), any event or none
    /// ([`ESTABLISHED_GROUPS`] keys at most).
    pub established: Groups<FlowKey>,
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

impl Default for Table {
    fn default() -> Self {
        Table {
            counts: Counts::default(),
            sample: Vec::new(),
            last_line: None,
            unreplied: Groups::new(UNREPLIED_GROUPS),
            unreplied_events: Groups::new(UNREPLIED_GROUPS),
            established: Groups::new(ESTABLISHED_GROUPS),
            summary: None,
            messages: Vec::new(),
            stats: Stats::default(),
            lines: 0,
            errors: Vec::new(),
        }
    }
}

impl Table {
    /// Records as the report counts them: flow entries.
    pub fn records(&self) -> usize {
        usize::try_from(self.counts.flows).unwrap_or(usize::MAX)
    }

    /// Every unreplied group, listing and events together, by the line each key first
    /// appears at.
    pub fn unreplied_all(&self) -> impl Iterator<Item = &FlowGroup<UnrepliedKey>> {
        let mut a = self.unreplied.iter().peekable();
        let mut b = self.unreplied_events.iter().peekable();
        std::iter::from_fn(move || match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if y.first.line < x.first.line => b.next(),
            (Some(_), _) => a.next(),
            (None, _) => b.next(),
        })
    }

    /// Fold one parsed entry into the counts and groups.
    fn add(&mut self, e: &Entry) {
        self.counts.add(e);
        self.last_line = Some(e.line);
        if self.sample.len() < SAMPLE {
            self.sample.push(*e);
        }
        if e.unreplied {
            let key = UnrepliedKey {
                src: e.orig.src,
                dst: e.orig.dst,
                reply_src: e.reply.src,
                proto: e.proto,
                dport: e.orig.dport(),
            };
            match e.event {
                None | Some(Event::Destroy) => self.unreplied.add(key, e),
                Some(_) => self.unreplied_events.add(key, e),
            }
        }
        if e.is_established() {
            let key = FlowKey {
                src: e.orig.src,
                dst: e.orig.dst,
                proto: e.proto,
                dport: e.orig.dport(),
            };
            self.established.add(key, e);
        }
    }

    /// Append the next chunk of the same file (chunks merged in file order).
    pub fn merge(&mut self, later: Table) {
        self.counts.merge(&later.counts);
        if later.last_line.is_some() {
            self.last_line = later.last_line;
        }
        let room = SAMPLE.saturating_sub(self.sample.len());
        self.sample.extend(later.sample.into_iter().take(room));
        self.unreplied.merge(later.unreplied);
        self.unreplied_events.merge(later.unreplied_events);
        self.established.merge(later.established);
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
    parse_chunk_with(text, first_line, Reader::Fast)
}

/// The line readers of [`parse_chunk_with`].
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// Flow lines in the layout `conntrack` prints are read by [`fast`] first; whatever it
    /// does not take goes to the general reader.
    Fast,
    /// Every line through the general reader only.
    General,
}

/// [`parse_chunk`] with a choice of line reader: both give the same table (tests hold them
/// to it), the fast one in a fraction of the time.
#[doc(hidden)]
pub fn parse_chunk_with(text: &str, first_line: usize, reader: Reader) -> Table {
    let mut t = Table::default();
    let mut xml_reported = false;
    for (no, line) in numbered_lines(text, first_line) {
        t.lines += 1;
        if reader == Reader::Fast
            && let Some(e) = fast::entry(no, line)
        {
            t.add(&e);
            continue;
        }
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
            Ok(e) => t.add(&e),
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

const OTHER: u8 = 0;
const SPACE: u8 = 1;
const EQUALS: u8 = 2;

/// Byte classes of the tokenizer: ASCII whitespace as `u8::is_ascii_whitespace` has it, `=`,
/// and the rest.
static CLASS: [u8; 256] = {
    let mut t = [OTHER; 256];
    t[b' ' as usize] = SPACE;
    t[b'\t' as usize] = SPACE;
    t[b'\n' as usize] = SPACE;
    t[0x0c] = SPACE;
    t[b'\r' as usize] = SPACE;
    t[b'=' as usize] = EQUALS;
    t
};

/// The tokens of a line as `split_ascii_whitespace` cuts them, each with the offset of its
/// first `=` (found in the same pass over the bytes).
struct Tokens<'a> {
    line: &'a str,
    pos: usize,
    /// The only whitespace in the line is `' '` (as `conntrack` prints it): tokens are then
    /// cut eight bytes at a time.
    spaces_only: bool,
}

impl<'a> Tokens<'a> {
    fn new(line: &'a str) -> Self {
        let b = line.as_bytes();
        let spaces_only =
            memchr::memchr3(b'\t', b'\r', 0x0c, b).is_none() && memchr::memchr(b'\n', b).is_none();
        Tokens {
            line,
            pos: 0,
            spaces_only,
        }
    }

    fn next_kv(&mut self) -> Option<(&'a str, Option<usize>)> {
        if self.spaces_only {
            return self.next_kv_spaces();
        }
        let b = self.line.as_bytes();
        let mut i = self.pos;
        while b.get(i).is_some_and(|&c| CLASS[c as usize] == SPACE) {
            i += 1;
        }
        if i >= b.len() {
            self.pos = i;
            return None;
        }
        let start = i;
        let mut eq = None;
        // One table lookup per byte; the `=` is searched for only up to the first one.
        while let Some(&c) = b.get(i) {
            match CLASS[c as usize] {
                OTHER => i += 1,
                EQUALS => {
                    eq = Some(i - start);
                    i += 1;
                    while b.get(i).is_some_and(|&c| CLASS[c as usize] != SPACE) {
                        i += 1;
                    }
                    break;
                }
                _ => break,
            }
        }
        self.pos = i;
        // Cut at ASCII bytes: always on a char boundary.
        Some((self.line.get(start..i)?, eq))
    }
}

impl<'a> Tokens<'a> {
    /// [`Tokens::next_kv`] for a line whose only whitespace is `' '`.
    fn next_kv_spaces(&mut self) -> Option<(&'a str, Option<usize>)> {
        let b = self.line.as_bytes();
        let mut i = self.pos;
        while b.get(i) == Some(&b' ') {
            i += 1;
        }
        if i >= b.len() {
            self.pos = i;
            return None;
        }
        let start = i;
        let mut end = super::find_any(b, i, [b' ', b'=']);
        let mut eq = None;
        if b.get(end) == Some(&b'=') {
            eq = Some(end - start);
            end = super::find_any(b, end + 1, [b' ']);
        }
        self.pos = end;
        // Cut at ASCII bytes: always on a char boundary.
        Some((self.line.get(start..end)?, eq))
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        self.next_kv().map(|(t, _)| t)
    }
}

/// One flow line read by the fast reader alone: `None` where it leaves the line to the
/// general one (which then reads it, or reports it).
#[doc(hidden)]
pub fn entry_fast(no: usize, line: &str) -> Option<Entry> {
    fast::entry(no, line)
}

/// One flow line (already trimmed) read by the general reader alone.
#[doc(hidden)]
pub fn entry_general(no: usize, line: &str) -> Result<Entry, String> {
    parse_entry(no, line)
}

fn parse_entry(no: usize, line: &str) -> Result<Entry, String> {
    let mut toks = Tokens::new(line);
    let mut next = toks.next();
    // `-E -o timestamp`: `[1591967432.123456]` before the event.
    if next
        .is_some_and(|t| t.starts_with('[') && t.as_bytes().get(1).is_some_and(u8::is_ascii_digit))
    {
        next = toks.next();
    }
    let event = match next {
        Some("[NEW]") => Some(Event::New),
        Some("[UPDATE]") => Some(Event::Update),
        Some("[DESTROY]") => Some(Event::Destroy),
        _ => None,
    };
    if event.is_some() {
        next = toks.next();
    }
    let mut family = None;
    let mut tok = next.ok_or("empty line")?;
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
    let proto: u8 = match dec(proto_tok) {
        Some(p) => p,
        None => {
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
    let mut b = EntryBuilder::default();
    while let Some((tok, eq)) = toks.next_kv() {
        b.token(tok, eq)?;
    }
    b.finish(no, family, proto, event)
}

/// The fields of one entry as its tokens are read, in the order they come. Both line readers
/// (this module's tokenizer and [`fast`]) feed it, so a token means the same to both.
struct EntryBuilder {
    timeout: u32,
    state: Option<TcpState>,
    tuples: [TupleBuilder; 2],
    dir: usize,
    unreplied: bool,
    assured: bool,
    mark: u32,
    zone: Option<u16>,
    use_count: u32,
    /// No token read yet after the protocol number (where the timeout is).
    first: bool,
}

impl Default for EntryBuilder {
    fn default() -> Self {
        EntryBuilder {
            timeout: 0,
            state: None,
            tuples: [TupleBuilder::default(), TupleBuilder::default()],
            dir: 0,
            unreplied: false,
            assured: false,
            mark: 0,
            zone: None,
            use_count: 0,
            first: true,
        }
    }
}

impl EntryBuilder {
    /// One token after the protocol number, with the offset of its first `=`.
    fn token(&mut self, tok: &str, eq: Option<usize>) -> Result<(), String> {
        if self.first {
            self.first = false;
            if let Some(n) = dec::<u32>(tok) {
                self.timeout = n;
                return Ok(());
            }
        }
        if let Some((k, v)) = eq.and_then(|i| Some((tok.get(..i)?, tok.get(i + 1..)?))) {
            return self.kv(tok, k, v);
        }
        self.word(tok);
        Ok(())
    }

    fn kv(&mut self, tok: &str, k: &str, v: &str) -> Result<(), String> {
        let bad = || format!("bad value in {tok:?}");
        let d = self.dir;
        match k {
            "src" | "dst" => {
                self.turn(k == "src")?;
                let ip = parse_ip(v).ok_or_else(bad)?;
                self.set_ip(k == "src", ip);
            }
            "sport" => self.tuples[d].sport = Some(dec(v).ok_or_else(bad)?),
            "dport" => self.tuples[d].dport = Some(dec(v).ok_or_else(bad)?),
            "type" => self.tuples[d].kind = Some(dec(v).ok_or_else(bad)?),
            "code" => self.tuples[d].code = Some(dec(v).ok_or_else(bad)?),
            "id" if self.takes_id() => self.tuples[d].id = Some(dec(v).ok_or_else(bad)?),
            "mark" => self.mark = parse_u32(v).ok_or_else(bad)?,
            "zone" => self.zone = Some(dec(v).ok_or_else(bad)?),
            "use" => self.use_count = dec(v).ok_or_else(bad)?,
            // packets=, bytes=, secctx=, labels=, id=, delta-time=, zone-orig=, …
            _ => {}
        }
        Ok(())
    }

    /// Before a `src=`/`dst=`: a second `src=` starts the reply tuple.
    fn turn(&mut self, src: bool) -> Result<(), &'static str> {
        if src && self.tuples[self.dir].src.is_some() {
            self.dir = 1;
            if self.tuples[1].src.is_some() {
                return Err("more than two tuples");
            }
        }
        Ok(())
    }

    fn set_ip(&mut self, src: bool, ip: IpAddr) {
        let t = &mut self.tuples[self.dir];
        if src {
            t.src = Some(ip);
        } else {
            t.dst = Some(ip);
        }
    }

    /// `id=` is the ICMP id only after a `type=`, once per tuple.
    fn takes_id(&self) -> bool {
        let t = &self.tuples[self.dir];
        t.kind.is_some() && t.id.is_none()
    }

    /// A token without `=`.
    fn word(&mut self, tok: &str) {
        match tok {
            "[UNREPLIED]" => self.unreplied = true,
            "[ASSURED]" => self.assured = true,
            _ if self.state.is_none() && self.tuples[0].src.is_none() => {
                self.state = TcpState::from_word(tok);
            }
            // [OFFLOAD], [HW_OFFLOAD], [SEEN_REPLY], …
            _ => {}
        }
    }

    fn finish(
        self,
        no: usize,
        family: Option<Family>,
        proto: u8,
        event: Option<Event>,
    ) -> Result<Entry, String> {
        let orig = self.tuples[0]
            .build()
            .ok_or("no original tuple (src=/dst=)")?;
        let reply = self.tuples[1].build().ok_or("no reply tuple")?;
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
            timeout: self.timeout,
            state: if proto == 6 { self.state } else { None },
            orig,
            reply,
            unreplied: self.unreplied,
            assured: self.assured,
            mark: self.mark,
            zone: self.zone,
            use_count: self.use_count,
            event,
        })
    }
}

/// A decimal number as `str::parse` reads it. Plain digits (nearly every value of a table)
/// are read here; anything else (`+1`, empty, too long) goes to `str::parse`, so both accept
/// exactly the same texts.
fn dec<T: TryFrom<u64> + std::str::FromStr>(v: &str) -> Option<T> {
    let b = v.as_bytes();
    if b.is_empty() || b.len() > 19 || !b.iter().all(u8::is_ascii_digit) {
        return v.parse().ok();
    }
    let n = b.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    T::try_from(n).ok()
}

/// An address as `IpAddr::from_str` reads it; plain dotted quads are read here.
fn parse_ip(v: &str) -> Option<IpAddr> {
    match dotted_quad(v.as_bytes()) {
        Some(a) => Some(IpAddr::V4(a)),
        None => v.parse().ok(),
    }
}

/// `a.b.c.d`, each 0–255 without leading zeros: a subset of what `Ipv4Addr::from_str`
/// accepts (it also rejects leading zeros), read the same.
fn dotted_quad(b: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (k, o) in octets.iter_mut().enumerate() {
        if k > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut n = 0u32;
        while let Some(&d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            if i - start == 3 {
                return None;
            }
            n = n * 10 + u32::from(d - b'0');
            i += 1;
        }
        let len = i - start;
        if len == 0 || (len > 1 && b.get(start) == Some(&b'0')) || n > 255 {
            return None;
        }
        *o = n as u8;
    }
    (i == b.len()).then_some(Ipv4Addr::from(octets))
}

fn parse_u32(v: &str) -> Option<u32> {
    match v.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => dec(v),
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
