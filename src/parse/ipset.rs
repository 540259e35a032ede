//! `ipset list` output and the `ipset save` / `ipset restore` grammar (`create`, `add`, and
//! the `del`, `flush`, `destroy`, `swap`, `rename`, `COMMIT` lines Felix writes to
//! `ipset restore`). Either form gives the same [`Dump`]: sets in order with their type,
//! header options and members, each member with its line.
//!
//! Restore commands are replayed the way `ipset restore` would on an empty host: a `swap`
//! exchanges two sets' contents (or renames the one that is known), `destroy` drops a set,
//! `flush` empties it, `del` removes a member. On `ipset save` output, which holds only
//! `create` and `add`, that is the identity.
//!
//! This is not Calico: set names (`cali40s:…`) are plain strings here.
//!
//! A dump is mostly `add <set> <address>` lines (a million at 20 nodes), so those, and
//! one-word `ipset list` member lines, take a shortcut: no split into words, the set the
//! previous line added to remembered, a plain IPv4 address or CIDR read by hand. Anything
//! else on the line (options, quotes, another form of address) goes the general way; tests
//! read odd lines both ways and require the same sets, members, lines and errors.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::Serialize;

use super::{ParseError, numbered_lines, parse_net};

/// Which form the text was in (the first one seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Format {
    /// `create …` / `add …` lines (`ipset save`, or restore input). Also for empty input.
    #[default]
    Save,
    /// `Name:` / `Type:` / `Header:` / `Members:` blocks (`ipset list`).
    List,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Dump {
    pub format: Format,
    pub sets: Vec<IpSet>,
    /// Set name → index into `sets`.
    pub index: HashMap<String, usize>,
    pub errors: Vec<ParseError>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct IpSet {
    pub name: String,
    /// The `Name:` or `create` line (for a set only ever seen in `add` lines, the first of them).
    pub line: usize,
    /// Seen with `Name:` or `create`.
    pub declared: bool,
    /// `hash:ip`, `hash:net`, `hash:ip,port`, `list:set`, …
    pub set_type: String,
    /// `inet` or `inet6` when the header says.
    pub family: Option<String>,
    /// Header / create options in order; flags such as `counters` have an empty value.
    pub options: Vec<(String, String)>,
    pub maxelem: Option<u64>,
    pub hashsize: Option<u64>,
    pub revision: Option<u32>,
    pub size_in_memory: Option<u64>,
    pub references: Option<u64>,
    /// `Number of entries:` as the kernel reported it (absent in older ipset versions).
    pub declared_entries: Option<u64>,
    /// `ipset list` lines this parser does not know (`Key: value`), kept as read.
    pub extra: Vec<(String, String)>,
    pub members: Vec<Member>,
}

/// One member of a set: its element in compact form, the line that added it and, rarely,
/// options and the text as written. One member is 40 bytes and no allocation when, as in
/// nearly every Calico dump, it has no options and is written the way `ipset` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The element, normalised the way `ipset save` prints it (see [`Elem`]).
    pub key: Elem,
    pub line: u32,
    extra: Option<Box<Extra>>,
}

/// What most members do not have.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Extra {
    /// Per-member options after the element (`timeout 0`, `packets 3 bytes 180`,
    /// `nomatch`), split on blanks, double quotes removed.
    options: Vec<String>,
    /// The element as written, when `key` prints otherwise (`10.0.0.1/32`).
    written: Option<Box<str>>,
}

impl Member {
    /// A member from its element as written and its options.
    pub fn new(value: &str, line: usize, options: Vec<String>) -> Member {
        let (key, as_written) = match parse_v4_plain(value) {
            Some(plain) => plain,
            None => {
                let key = Elem::parse_general(value);
                let same = key.prints_as(value);
                (key, same)
            }
        };
        let written = (!as_written).then(|| Box::from(value));
        let extra = (written.is_some() || !options.is_empty())
            .then(|| Box::new(Extra { options, written }));
        Member {
            key,
            line: u32::try_from(line).unwrap_or(u32::MAX),
            extra,
        }
    }

    /// The element as written: `10.0.0.1`, `10.0.0.0/24`, `10.244.0.17,tcp:53`, …
    pub fn value(&self) -> std::borrow::Cow<'_, str> {
        match self.extra.as_ref().and_then(|e| e.written.as_deref()) {
            Some(w) => std::borrow::Cow::Borrowed(w),
            None => match &self.key {
                Elem::Text(t) => std::borrow::Cow::Borrowed(t),
                k => std::borrow::Cow::Owned(k.to_string()),
            },
        }
    }

    /// Per-member options after the element (`timeout 0`, `packets 3 bytes 180`,
    /// `nomatch`), split on blanks, double quotes removed.
    pub fn options(&self) -> &[String] {
        self.extra.as_ref().map_or(&[], |e| &e.options)
    }
}

impl Serialize for Member {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Member", 3)?;
        st.serialize_field("line", &self.line)?;
        st.serialize_field("value", &self.value())?;
        st.serialize_field("options", self.options())?;
        st.end()
    }
}

/// Protocols a `hash:ip,port` element can name, by code.
const PROTOS: [&str; 6] = ["tcp", "udp", "sctp", "udplite", "icmp", "icmpv6"];

/// An address as 4 or 16 bytes, without `IpAddr`'s 16-byte alignment. Ordered as the
/// derived order would (every IPv4 address before every IPv6 one, bytes compared in turn),
/// but as integers: a derived comparison of byte arrays calls `memcmp`, and sorting and
/// merging sets of a million members is mostly comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Addr {
    V4([u8; 4]),
    V6([u8; 16]),
}

impl Ord for Addr {
    fn cmp(&self, other: &Addr) -> Ordering {
        // Big-endian integers compare as their bytes do, first byte first.
        match (self, other) {
            (Addr::V4(a), Addr::V4(b)) => u32::from_be_bytes(*a).cmp(&u32::from_be_bytes(*b)),
            (Addr::V6(a), Addr::V6(b)) => u128::from_be_bytes(*a).cmp(&u128::from_be_bytes(*b)),
            (Addr::V4(_), Addr::V6(_)) => Ordering::Less,
            (Addr::V6(_), Addr::V4(_)) => Ordering::Greater,
        }
    }
}

impl PartialOrd for Addr {
    fn partial_cmp(&self, other: &Addr) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl From<IpAddr> for Addr {
    fn from(a: IpAddr) -> Addr {
        match a {
            IpAddr::V4(a) => Addr::V4(a.octets()),
            IpAddr::V6(a) => Addr::V6(a.octets()),
        }
    }
}

impl From<Addr> for IpAddr {
    fn from(a: Addr) -> IpAddr {
        match a {
            Addr::V4(o) => IpAddr::V4(Ipv4Addr::from(o)),
            Addr::V6(o) => IpAddr::V6(Ipv6Addr::from(o)),
        }
    }
}

/// A set element in compact, comparable form. An address or CIDR is kept as integers
/// (normalised the way ipset prints it: a host network is the bare address, a CIDR has its
/// host bits cleared), a `hash:ip,port` element as address, protocol and port, and anything
/// else as its text. Each element prints exactly as `ipset save` writes it, and two elements
/// are equal exactly when those texts are equal. The order ([`Ord`]) is numeric, not textual.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Elem {
    /// An address (prefix = full length) or a network with its host bits cleared.
    Net { addr: Addr, prefix: u8 },
    /// `addr,proto:port` of a `hash:ip,port` set (protocol by code in `PROTOS`).
    Port { addr: Addr, proto: u8, port: u16 },
    /// Anything else, trimmed, as written.
    Text(Box<str>),
}

impl Elem {
    /// The element a network stands for: the bare address for a host network, the
    /// truncated network otherwise.
    pub fn from_net(net: &IpNet) -> Elem {
        let t = net.trunc();
        Elem::Net {
            addr: Addr::from(t.addr()),
            prefix: t.prefix_len(),
        }
    }

    /// `addr,proto:port` for a `hash:ip,port` set.
    pub fn port(addr: IpAddr, proto: &str, port: u16) -> Elem {
        match PROTOS.iter().position(|p| *p == proto) {
            Some(code) => Elem::Port {
                addr: Addr::from(addr),
                proto: code as u8,
                port,
            },
            None => Elem::Text(format!("{addr},{proto}:{port}").into()),
        }
    }

    /// An element as a dump writes it (surrounding blanks ignored): an address or CIDR is
    /// normalised, an `addr,proto:port` element kept when it prints back exactly as
    /// written, anything else kept as text.
    pub fn parse(s: &str) -> Elem {
        let s = s.trim();
        match parse_v4_plain(s) {
            Some((e, _)) => e,
            None => Elem::parse_general(s),
        }
    }

    /// [`Elem::parse`] without the plain-IPv4 shortcut: what decides every other text.
    fn parse_general(s: &str) -> Elem {
        let s = s.trim();
        if let Ok(a) = s.parse::<Ipv4Addr>() {
            return Elem::Net {
                addr: Addr::V4(a.octets()),
                prefix: 32,
            };
        }
        if let Some(net) = parse_net(s) {
            return Elem::from_net(&net);
        }
        if let Some(m) = parse_port(s) {
            return m;
        }
        Elem::Text(s.into())
    }

    /// The network this element is, when it is one.
    pub fn net(&self) -> Option<IpNet> {
        match self {
            Elem::Net { addr, prefix } => IpNet::new(IpAddr::from(*addr), *prefix).ok(),
            _ => None,
        }
    }

    /// Whether this element prints exactly as `s`.
    fn prints_as(&self, s: &str) -> bool {
        match self {
            Elem::Text(t) => **t == *s,
            // A plain IPv4 address reads back only from its canonical form.
            Elem::Net {
                addr: Addr::V4(_),
                prefix: 32,
            } if !s.contains(['/', ' ', '\t']) && s.parse::<Ipv4Addr>().is_ok() => true,
            _ => {
                let mut cmp = SameText {
                    rest: s,
                    same: true,
                };
                let _ = write!(cmp, "{self}");
                cmp.same && cmp.rest.is_empty()
            }
        }
    }
}

/// `addr,proto:port` when it prints back as written (so that equality stays textual).
fn parse_port(s: &str) -> Option<Elem> {
    let (a, rest) = s.split_once(',')?;
    let (proto, port) = rest.split_once(':')?;
    let code = PROTOS.iter().position(|p| *p == proto)?;
    let m = Elem::Port {
        addr: Addr::from(a.parse::<IpAddr>().ok()?),
        proto: code as u8,
        port: port.parse().ok()?,
    };
    m.prints_as(s).then_some(m)
}

/// A plain IPv4 address or CIDR as `ipset save` writes one (`10.0.0.1`, `10.0.0.0/24`: decimal
/// octets and prefix without leading zeros, nothing else): the element, and whether it
/// prints back as written (not for `/32`, nor for a CIDR with host bits set). `None` for
/// any other text, which [`Elem::parse_general`] then reads; on what this accepts it
/// gives the same element (a test compares the two). Most members of a dump are read
/// here, by hand, because the standard address parser and the formatting that checks the
/// text back were most of the parse.
fn parse_v4_plain(s: &str) -> Option<(Elem, bool)> {
    let b = s.as_bytes();
    let mut addr = 0u32;
    let mut i = 0;
    for k in 0..4 {
        if k > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let (octet, next) = plain_decimal(b, i, 3)?;
        if octet > 255 {
            return None;
        }
        addr = (addr << 8) | octet;
        i = next;
    }
    let (net, prefix) = match b.get(i) {
        None => (addr, 32),
        Some(b'/') => {
            let (prefix, end) = plain_decimal(b, i + 1, 2)?;
            if end != b.len() || prefix > 32 {
                return None;
            }
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            (addr & mask, prefix)
        }
        Some(_) => return None,
    };
    // A bare address prints as written; `/32` prints without it; a CIDR prints as written
    // when its host bits are clear.
    let as_written = match b.get(i) {
        None => true,
        Some(_) => prefix < 32 && net == addr,
    };
    let elem = Elem::Net {
        addr: Addr::V4(net.to_be_bytes()),
        prefix: prefix as u8,
    };
    Some((elem, as_written))
}

/// The decimal number of 1 to `max` digits at `b[start..]` without a leading zero (`0`
/// itself is fine), and where it ends. A longer run of digits ends at a digit, which the
/// caller then rejects.
fn plain_decimal(b: &[u8], start: usize, max: usize) -> Option<(u32, usize)> {
    let mut v = 0u32;
    let mut i = start;
    while i - start < max
        && let Some(&c) = b.get(i)
        && c.is_ascii_digit()
    {
        v = v * 10 + u32::from(c - b'0');
        i += 1;
    }
    let first = *b.get(start)?;
    if i == start || (first == b'0' && i - start > 1) {
        return None;
    }
    Some((v, i))
}

/// A `fmt::Write` that checks the written text against a string without allocating.
struct SameText<'a> {
    rest: &'a str,
    same: bool,
}

impl fmt::Write for SameText<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        match self.rest.strip_prefix(s) {
            Some(r) if self.same => self.rest = r,
            _ => self.same = false,
        }
        Ok(())
    }
}

/// `a.b.c.d` (and `/prefix` unless it is 32) as `Ipv4Addr` displays it, written without the
/// formatting machinery: reports list members by the thousand.
fn write_v4(f: &mut fmt::Formatter<'_>, octets: [u8; 4], prefix: u8) -> fmt::Result {
    /// `v` in decimal at `buf[n..]`; the length after it.
    fn decimal(buf: &mut [u8; 18], mut n: usize, v: u8) -> usize {
        if v >= 100 {
            buf[n] = b'0' + v / 100;
            n += 1;
        }
        if v >= 10 {
            buf[n] = b'0' + v / 10 % 10;
            n += 1;
        }
        buf[n] = b'0' + v % 10;
        n + 1
    }
    let mut buf = [0u8; 18];
    let mut n = 0;
    for (i, o) in octets.into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        n = decimal(&mut buf, n, o);
    }
    if prefix != 32 {
        buf[n] = b'/';
        n = decimal(&mut buf, n + 1, prefix);
    }
    f.write_str(std::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?)
}

impl fmt::Display for Elem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Elem::Net {
                addr: Addr::V4(octets),
                prefix,
            } => write_v4(f, *octets, *prefix),
            Elem::Net { addr, prefix } => {
                let full = match addr {
                    Addr::V4(_) => 32,
                    Addr::V6(_) => 128,
                };
                if *prefix == full {
                    write!(f, "{}", IpAddr::from(*addr))
                } else {
                    write!(f, "{}/{prefix}", IpAddr::from(*addr))
                }
            }
            Elem::Port { addr, proto, port } => {
                let p = PROTOS.get(usize::from(*proto)).copied().unwrap_or("?");
                write!(f, "{},{p}:{port}", IpAddr::from(*addr))
            }
            Elem::Text(t) => f.write_str(t),
        }
    }
}

impl Member {
    /// The element as a network when it is one address or CIDR (an address becomes /32 or
    /// /128), host bits as written. `None` for ranges, `ip,port` pairs, set names.
    pub fn net(&self) -> Option<IpNet> {
        match self.extra.as_ref().and_then(|e| e.written.as_deref()) {
            Some(w) => parse_net(w),
            None => self.key.net(),
        }
    }

    /// `10.244.0.17,tcp:53` → (address, `tcp`, 53), as in `hash:ip,port` sets.
    pub fn addr_port(&self) -> Option<(IpAddr, String, u16)> {
        let value = self.value();
        let (ip, rest) = value.split_once(',')?;
        let port_part = rest.split(',').next()?;
        let (proto, port) = match port_part.split_once(':') {
            Some((p, n)) => (p, n),
            // ipset lists plain ports as `tcp:N`; restore input may omit the protocol.
            None => ("tcp", port_part),
        };
        Some((ip.parse().ok()?, proto.to_string(), port.parse().ok()?))
    }
}

impl IpSet {
    /// Every member that is an address or CIDR, as a network.
    pub fn members_as_nets(&self) -> Vec<IpNet> {
        self.members.iter().filter_map(Member::net).collect()
    }

    /// Value of a header / create option (`""` for a flag).
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl Dump {
    /// Records as the report counts them: the total number of members.
    pub fn records(&self) -> usize {
        self.sets.iter().map(|s| s.members.len()).sum()
    }

    pub fn set(&self, name: &str) -> Option<&IpSet> {
        self.index.get(name).and_then(|&i| self.sets.get(i))
    }
}

/// Header options that take no value.
fn is_flag(key: &str) -> bool {
    matches!(
        key,
        "counters" | "comment" | "skbinfo" | "forceadd" | "nomatch" | "-exist" | "--exist" | "-!"
    )
}

/// Split on blanks, keeping `"…"` together (without the quotes). Borrows from the line
/// when it has no quotes (the common case: no allocation per word).
fn split_words(s: &str) -> Vec<std::borrow::Cow<'_, str>> {
    if s.contains('"') {
        words(s).into_iter().map(std::borrow::Cow::Owned).collect()
    } else {
        s.split([' ', '\t'])
            .filter(|w| !w.is_empty())
            .map(std::borrow::Cow::Borrowed)
            .collect()
    }
}

/// Split on blanks, keeping `"…"` together (without the quotes).
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_q = false;
    let mut any = false;
    for c in s.chars() {
        match c {
            '"' => {
                in_q = !in_q;
                any = true;
            }
            ' ' | '\t' if !in_q => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            _ => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

fn apply_options<S: AsRef<str>>(set: &mut IpSet, opts: &[S]) {
    let mut i = 0;
    while i < opts.len() {
        let key = opts[i].as_ref();
        if is_flag(key) {
            if !key.starts_with('-') {
                set.options.push((key.to_string(), String::new()));
            }
            i += 1;
            continue;
        }
        let val = opts
            .get(i + 1)
            .map(|v| v.as_ref().to_string())
            .unwrap_or_default();
        match key {
            "family" => set.family = Some(val.clone()),
            "maxelem" => set.maxelem = val.parse().ok(),
            "hashsize" => set.hashsize = val.parse().ok(),
            _ => {}
        }
        set.options.push((key.to_string(), val));
        i += 2;
    }
}

struct Parser {
    format: Option<Format>,
    /// `None` once destroyed; compacted at the end.
    sets: Vec<Option<IpSet>>,
    index: HashMap<String, usize, foldhash::fast::RandomState>,
    /// The set the last `add` went to, by name: `ipset save` writes a set's members
    /// together, so most `add` lines need no look-up. Cleared whenever `index` changes.
    last_add: Option<(String, usize)>,
    errors: Vec<ParseError>,
    /// The `ipset list` block being read, and whether its `Members:` line was seen.
    list_current: Option<usize>,
    in_members: bool,
    /// Read plain lines without splitting them into words, and remember the last set added
    /// to (off only to test that both ways read the same).
    fast: bool,
}

impl Parser {
    fn err(&mut self, line: usize, msg: impl Into<String>) {
        self.errors.push(ParseError::new(line, msg));
    }

    fn seen(&mut self, f: Format) {
        if self.format.is_none() {
            self.format = Some(f);
        }
    }

    fn new_set(&mut self, name: &str, line: usize, declared: bool) -> usize {
        let i = self.sets.len();
        self.sets.push(Some(IpSet {
            name: name.to_string(),
            line,
            declared,
            ..IpSet::default()
        }));
        self.index.insert(name.to_string(), i);
        self.last_add = None;
        i
    }

    /// The set an `add` goes to; restore input adds to sets that exist in the kernel but
    /// not in the text: not an error, the set is just not `declared`.
    fn add_target(&mut self, name: &str, n: usize) -> usize {
        if self.fast
            && let Some((last, i)) = &self.last_add
            && last == name
        {
            return *i;
        }
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => self.new_set(name, n, false),
        };
        match &mut self.last_add {
            Some((last, li)) => {
                last.clear();
                last.push_str(name);
                *li = i;
            }
            None => self.last_add = Some((name.to_string(), i)),
        }
        i
    }

    /// `add <set> <member>` and nothing else, the common line: read without splitting the
    /// line into words or allocating. `None` for anything else (options, quotes, another
    /// command), which the general path reads.
    fn plain_add(&mut self, n: usize, l: &str) -> Option<()> {
        let (name, value) = split_plain_add(l)?;
        self.seen(Format::Save);
        let i = self.add_target(name, n);
        if let Some(set) = self.sets.get_mut(i).and_then(Option::as_mut) {
            set.members.push(Member::new(value, n, Vec::new()));
        }
        Some(())
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut IpSet> {
        let i = *self.index.get(name)?;
        self.sets.get_mut(i).and_then(Option::as_mut)
    }

    fn line(&mut self, n: usize, raw: &str) {
        let l = raw.trim();
        if l.is_empty() {
            // A blank line ends an `ipset list` member block.
            self.in_members = false;
            return;
        }
        if let Some(rest) = l.strip_prefix("Name:") {
            self.seen(Format::List);
            let name = rest.trim();
            if name.is_empty() {
                self.err(n, "`Name:` without a name");
                self.list_current = None;
            } else {
                if self.index.contains_key(name) {
                    self.err(n, format!("set `{name}` listed twice"));
                }
                self.list_current = Some(self.new_set(name, n, true));
            }
            self.in_members = false;
            return;
        }
        if self.in_members {
            self.list_member(n, l);
            return;
        }
        if self.list_current.is_some()
            && let Some((key, value)) = l.split_once(':')
            && (!key.contains(' ') || matches!(key, "Size in memory" | "Number of entries"))
        {
            self.list_field(n, key, value.trim());
            return;
        }
        self.restore_line(n, l);
    }

    fn list_field(&mut self, n: usize, key: &str, value: &str) {
        let Some(i) = self.list_current else { return };
        let Some(set) = self.sets.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        let num = value.parse::<u64>().ok();
        let mut bad = false;
        match key {
            "Type" => set.set_type = value.to_string(),
            "Revision" => {
                set.revision = value.parse().ok();
                bad = set.revision.is_none();
            }
            "Header" => apply_options(set, &words(value)),
            "Size in memory" => {
                set.size_in_memory = num;
                bad = num.is_none();
            }
            "References" => {
                set.references = num;
                bad = num.is_none();
            }
            "Number of entries" => {
                set.declared_entries = num;
                bad = num.is_none();
            }
            "Members" => self.in_members = true,
            _ => set.extra.push((key.to_string(), value.to_string())),
        }
        if bad {
            self.err(n, format!("`{key}:` value `{value}` is not a number"));
        }
    }

    fn list_member(&mut self, n: usize, l: &str) {
        let Some(i) = self.list_current else { return };
        // Most member lines are one word: no need to split them.
        if self.fast && !l.contains([' ', '\t', '"']) {
            if let Some(set) = self.sets.get_mut(i).and_then(Option::as_mut) {
                set.members.push(Member::new(l, n, Vec::new()));
            }
            return;
        }
        let w = split_words(l);
        let Some((value, options)) = w.split_first() else {
            return;
        };
        if let Some(set) = self.sets.get_mut(i).and_then(Option::as_mut) {
            let options = options.iter().map(|o| o.to_string()).collect();
            set.members.push(Member::new(value, n, options));
        }
    }

    fn restore_line(&mut self, n: usize, l: &str) {
        if l.starts_with('#') {
            return;
        }
        if self.fast && self.plain_add(n, l).is_some() {
            return;
        }
        let w = split_words(l);
        let Some(cmd) = w.first() else { return };
        let arg = |k: usize| w.get(k).map(|x| x.as_ref());
        match cmd.as_ref() {
            "COMMIT" => {}
            "create" | "-N" | "-C" | "n" => {
                self.seen(Format::Save);
                let (Some(name), Some(ty)) = (arg(1), arg(2)) else {
                    self.err(n, "create needs a set name and a type");
                    return;
                };
                let i = match self.index.get(name) {
                    Some(&i) if self.sets[i].as_ref().is_some_and(|s| !s.declared) => i,
                    Some(_) => {
                        // `create -exist` of an existing set is a no-op for ipset too.
                        if !w
                            .iter()
                            .any(|x| matches!(x.as_ref(), "-exist" | "--exist" | "-!"))
                        {
                            self.err(n, format!("set `{name}` created twice"));
                        }
                        return;
                    }
                    None => self.new_set(name, n, true),
                };
                if let Some(set) = self.sets[i].as_mut() {
                    set.declared = true;
                    set.line = n;
                    set.set_type = ty.to_string();
                    apply_options(set, &w[3..]);
                }
            }
            "add" | "-A" | "a" => {
                self.seen(Format::Save);
                let (Some(name), Some(value)) = (arg(1), arg(2)) else {
                    self.err(n, "add needs a set name and a member");
                    return;
                };
                let i = self.add_target(name, n);
                let options = w[3..]
                    .iter()
                    .filter(|o| !matches!(o.as_ref(), "-exist" | "--exist" | "-!"))
                    .map(|o| o.to_string())
                    .collect();
                if let Some(set) = self.sets.get_mut(i).and_then(Option::as_mut) {
                    set.members.push(Member::new(value, n, options));
                }
            }
            "del" | "-D" | "d" => {
                self.seen(Format::Save);
                let (Some(name), Some(value)) = (arg(1), arg(2)) else {
                    self.err(n, "del needs a set name and a member");
                    return;
                };
                if let Some(set) = self.get_mut(name)
                    && let Some(p) = set.members.iter().position(|m| m.value() == value)
                {
                    set.members.remove(p);
                }
            }
            "flush" | "-F" | "f" => {
                self.seen(Format::Save);
                match arg(1) {
                    Some(name) => {
                        if let Some(set) = self.get_mut(name) {
                            set.members.clear();
                        }
                    }
                    None => self
                        .sets
                        .iter_mut()
                        .flatten()
                        .for_each(|s| s.members.clear()),
                }
            }
            "destroy" | "-X" | "x" => {
                self.seen(Format::Save);
                match arg(1) {
                    Some(name) => {
                        if let Some(i) = self.index.remove(name) {
                            self.sets[i] = None;
                        }
                    }
                    None => {
                        self.sets.clear();
                        self.index.clear();
                    }
                }
                self.last_add = None;
            }
            "swap" | "-W" | "w" | "rename" | "-E" | "e" => {
                self.seen(Format::Save);
                let (Some(a), Some(b)) = (arg(1), arg(2)) else {
                    self.err(n, format!("{cmd} needs two set names"));
                    return;
                };
                let rename = matches!(cmd.as_ref(), "rename" | "-E" | "e");
                self.swap_or_rename(a, b, rename);
            }
            _ => self.err(n, format!("unrecognised line: {}", ellipsis(l))),
        }
    }

    fn swap_or_rename(&mut self, a: &str, b: &str, rename: bool) {
        self.last_add = None;
        let ia = self.index.get(a).copied();
        let ib = self.index.get(b).copied();
        match (ia, ib) {
            (Some(ia), Some(ib)) if !rename => {
                // Contents change places; each slot keeps its name.
                self.sets.swap(ia, ib);
                for (i, name) in [(ia, a), (ib, b)] {
                    if let Some(s) = self.sets[i].as_mut() {
                        s.name = name.to_string();
                    }
                }
            }
            // One side unknown (it lives in the kernel, not in this text): what we know moves
            // to the other name, and the old contents of that name stay unknown.
            (Some(i), None) => self.rename_slot(i, a, b),
            (None, Some(i)) if !rename => self.rename_slot(i, b, a),
            _ => {}
        }
    }

    fn rename_slot(&mut self, i: usize, from: &str, to: &str) {
        self.last_add = None;
        self.index.remove(from);
        self.index.insert(to.to_string(), i);
        if let Some(s) = self.sets[i].as_mut() {
            s.name = to.to_string();
        }
    }

    fn finish(self) -> Dump {
        let mut sets: Vec<IpSet> = self.sets.into_iter().flatten().collect();
        // Members are most of a dump's memory: give back what growing the vectors left over.
        for s in &mut sets {
            s.members.shrink_to_fit();
        }
        let mut index = HashMap::with_capacity(sets.len());
        for (i, s) in sets.iter().enumerate() {
            index.entry(s.name.clone()).or_insert(i);
        }
        Dump {
            format: self.format.unwrap_or_default(),
            sets,
            index,
            errors: self.errors,
        }
    }
}

fn ellipsis(l: &str) -> String {
    match l.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &l[..i]),
        None => l.to_string(),
    }
}

/// `add`, blanks, a set name, blanks, a member, and nothing more (no quote anywhere): the
/// set name and the member, split exactly where the general path's word split would. The
/// line is trimmed, so it ends in the member.
fn split_plain_add(l: &str) -> Option<(&str, &str)> {
    let b = l.as_bytes();
    let blank = |c: u8| c == b' ' || c == b'\t';
    let word_end = |from: usize| {
        (from..b.len())
            .find(|&k| blank(b[k]) || b[k] == b'"')
            .unwrap_or(b.len())
    };
    let blanks_end = |from: usize| (from..b.len()).find(|&k| !blank(b[k])).unwrap_or(b.len());
    if !b.starts_with(b"add") {
        return None;
    }
    let name_start = blanks_end(3);
    let name_end = word_end(name_start);
    let value_start = blanks_end(name_end);
    let value_end = word_end(value_start);
    // At least one blank after `add` and after the name, two non-empty words, nothing after.
    let shaped = name_start > 3
        && name_end > name_start
        && value_start > name_end
        && value_end > value_start
        && value_end == b.len();
    if !shaped {
        return None;
    }
    // Cut at ASCII blanks or the ends: char boundaries, so `get` always succeeds.
    Some((l.get(name_start..name_end)?, l.get(value_start..value_end)?))
}

/// Parse `ipset list` or `ipset save` / restore text.
pub fn parse(text: &str) -> Dump {
    parse_with(text, true)
}

fn parse_with(text: &str, fast: bool) -> Dump {
    let mut p = Parser {
        format: None,
        sets: Vec::new(),
        index: HashMap::default(),
        last_add: None,
        errors: Vec::new(),
        list_current: None,
        in_members: false,
        fast,
    };
    for (n, l) in numbered_lines(text, 1) {
        p.line(n, l);
    }
    p.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_then_destroy_leaves_the_new_members_under_the_real_name() {
        let d = parse(
            "create cali40s:a hash:ip family inet maxelem 1048576\nadd cali40s:a 10.0.0.1\n\
             create cali4t0 hash:ip family inet maxelem 1048576\nadd cali4t0 10.0.0.2\n\
             swap cali4t0 cali40s:a\ndestroy cali4t0\nCOMMIT\n",
        );
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert_eq!(d.sets.len(), 1);
        let s = d.set("cali40s:a").expect("set");
        assert_eq!(s.members.len(), 1);
        assert_eq!(s.members[0].value(), "10.0.0.2");
        assert_eq!(s.members[0].line, 4);
    }

    #[test]
    fn swap_with_a_set_not_in_the_text_renames_the_known_one() {
        let d = parse(
            "create t hash:net family inet\nadd t 10.0.0.0/24\nswap t cali40s:x\ndestroy t\n",
        );
        assert_eq!(d.set("cali40s:x").map(|s| s.members.len()), Some(1));
        assert!(d.set("t").is_none());
    }

    #[test]
    fn del_and_flush_remove_members() {
        let d = parse("create s hash:ip\nadd s 1.1.1.1\nadd s 2.2.2.2\ndel s 1.1.1.1\n");
        assert_eq!(d.records(), 1);
        let d = parse("create s hash:ip\nadd s 1.1.1.1\nflush s\n");
        assert_eq!(d.records(), 0);
    }

    #[test]
    fn ip_port_members_split_into_address_protocol_and_port() {
        let m = Member::new("10.244.0.17,tcp:53", 1, vec![]);
        assert_eq!(
            m.addr_port(),
            Some(("10.244.0.17".parse().unwrap(), "tcp".to_string(), 53))
        );
        assert_eq!(m.net(), None);
    }

    #[test]
    fn member_texts_read_back_exactly_as_written() {
        for v in [
            "",
            "10.0.0.1",
            "10.0.0.1/32",
            "10.0.0.5/24",
            "10.0.0.0/24",
            "255.255.255.255/32",
            "010.0.0.1",
            "10.244.123.45,tcp:8080",
            "10.244.123.45,tcp:053",
            "10.244.123.45,tcp:65535",
            "fd00:1234:5678:9abc:def0:1234:5678:9abc,tcp:443",
            "FD00::1",
            "fd00::1",
            "cali40s:abc",
            "é,ü:1",
        ] {
            let m = Member::new(v, 7, vec![]);
            assert_eq!(m.value(), v);
            assert_eq!(m.line, 7);
            assert!(m.options().is_empty());
        }
        // Written as ipset prints it: nothing kept beside the compact element.
        assert!(Member::new("10.0.0.1", 1, vec![]).extra.is_none());
        assert!(Member::new("10.0.0.0/24", 1, vec![]).extra.is_none());
        assert!(Member::new("10.0.0.1/32", 1, vec![]).extra.is_some());
        assert_eq!(
            Member::new("10.0.0.5/24", 1, vec![]).net(),
            Some("10.0.0.5/24".parse().unwrap())
        );
        assert!(std::mem::size_of::<Member>() <= 40);
    }

    #[test]
    fn quoted_and_unquoted_members_split_alike() {
        let d = parse(
            "create s hash:ip family inet\nadd s 10.0.0.1 timeout 0\n\
             add s 10.0.0.2 comment \"pod a/b\"\nadd\ts\t10.0.0.3\n",
        );
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        let s = d.set("s").expect("set");
        let got: Vec<(String, Vec<&str>)> = s
            .members
            .iter()
            .map(|m| {
                (
                    m.value().into_owned(),
                    m.options().iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("10.0.0.1".to_string(), vec!["timeout", "0"]),
                ("10.0.0.2".to_string(), vec!["comment", "pod a/b"]),
                ("10.0.0.3".to_string(), vec![])
            ]
        );
    }

    #[test]
    fn odd_inputs_never_panic() {
        for s in [
            "",
            "Name:",
            "Name: x\nMembers:\n\n\n",
            "create",
            "add",
            "swap a",
            "Header: family",
            "é:é",
            "\"",
            "create x y \"unterminated",
        ] {
            let _ = parse(s);
        }
    }
}

/// The shortcuts (plain `add` lines, one-word `ipset list` members, plain IPv4 elements, the
/// remembered set, integer address order) against the general path they stand in for.
#[cfg(test)]
mod fast_path_tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Path;

    /// Everything a parse gives, as comparable text (the index in name order).
    fn outcome(d: &Dump) -> String {
        let mut index: Vec<_> = d.index.iter().collect();
        index.sort();
        format!("{:?}\n{:?}\n{:#?}\n{index:?}", d.format, d.errors, d.sets)
    }

    fn assert_both_paths_agree(text: &str) {
        let fast = parse_with(text, true);
        let general = parse_with(text, false);
        assert_eq!(outcome(&fast), outcome(&general), "{text:?}");
    }

    /// Odd `add` lines, each after a `create` of the set it names (or not).
    const ODD_LINES: &[&str] = &[
        "add s 10.0.0.1",
        "add s 10.0.0.0/24",
        "add s 10.0.0.5/24",
        "add s 10.0.0.1/32",
        "add s 0.0.0.0/0",
        "add s 10.0.0.0/0",
        "add s 255.255.255.255",
        "add s 010.0.0.1",
        "add s 10.0.0.01",
        "add s 10.0.0.0/08",
        "add s 10.0.0.0/33",
        "add s 10.0.0.0/",
        "add s 10.0.0.256",
        "add s 10.0.0",
        "add s 10.0.0.1.",
        "add s 10.0.0.1/24/8",
        "add s 1000.0.0.1",
        "add s 10.0.0.1-10.0.0.9",
        "add s fd00::1",
        "add s FD00::1",
        "add s fd00::1:2/64",
        "add s ::ffff:10.0.0.1",
        "add s 10.0.0.1 timeout 0",
        "add s 10.0.0.1 timeout 600",
        "add s 10.0.0.1 comment \"pod a/b\"",
        "add s 10.0.0.1 comment \"\"",
        "add s \"10.0.0.1\"",
        "add \"s\" 10.0.0.1",
        "add s 10.0.0.1\"",
        "add s 10.0.0.1 nomatch",
        "add s 10.0.0.1 packets 3 bytes 180",
        "add s 10.0.0.1 -exist",
        "add s 10.0.0.1 -!",
        "add s 10.0.0.0/16,tcp:80",
        "add s 10.244.0.17,tcp:53",
        "add s 10.244.0.17,udp:053",
        "add s 10.244.0.17,tcp:53,10.244.0.17",
        "add s 10.0.0.1   ",
        "add s 10.0.0.1\t",
        "add s 10.0.0.1\r",
        "add s 10.0.0.1\r\n",
        "add  s\t\t10.0.0.1",
        "  add s 10.0.0.1",
        "add s \u{a0}10.0.0.1",
        "add s 10.0.0.1\u{a0}",
        "add s 10.0.0.1\u{b}x",
        "add unknown 10.0.0.1",
        "add s",
        "add",
        "add ",
        "adds s 10.0.0.1",
        "addx s 10.0.0.1",
        "-A s 10.0.0.1",
        "a s 10.0.0.1",
        "add s é",
        "add é 10.0.0.1",
        "add s 1０.0.0.1",
        "# add s 10.0.0.1",
    ];

    #[test]
    fn odd_add_lines_read_the_same_with_and_without_the_shortcut() {
        for line in ODD_LINES {
            for head in [
                "",
                "create s hash:net family inet hashsize 1024 maxelem 1048576\n",
            ] {
                let text = format!("{head}{line}\nadd s 10.0.0.9\n{line}\n");
                assert_both_paths_agree(&text);
                assert_both_paths_agree(&text.replace('\n', "\r\n"));
            }
        }
    }

    #[test]
    fn the_remembered_set_follows_create_swap_rename_destroy_and_relisting() {
        for text in [
            "add a 10.0.0.1\ncreate b hash:ip\nadd b 10.0.0.2\nadd a 10.0.0.3\n",
            "create t hash:ip\nadd t 10.0.0.1\nswap t s\nadd t 10.0.0.2\nadd s 10.0.0.3\n",
            "create a hash:ip\ncreate b hash:ip\nadd a 1.1.1.1\nswap a b\nadd a 2.2.2.2\nadd b 3.3.3.3\n",
            "create t hash:ip\nadd t 10.0.0.1\nrename t s\nadd t 10.0.0.2\nadd s 10.0.0.3\n",
            "create t hash:ip\nadd t 10.0.0.1\ndestroy t\nadd t 10.0.0.2\n",
            "create t hash:ip\nadd t 10.0.0.1\ndestroy\nadd t 10.0.0.2\n",
            "create t hash:ip\nadd t 10.0.0.1\nflush t\nadd t 10.0.0.2\ndel t 10.0.0.2\nadd t 3.3.3.3\n",
            "Name: s\nType: hash:ip\nMembers:\n10.0.0.1\n\nadd s 10.0.0.2\nName: s\nType: hash:ip\n\
             Members:\n10.0.0.3\n\nadd s 10.0.0.4\n",
            "Name: s\nMembers:\n10.0.0.1\nadd s 10.0.0.2\n\nadd s 10.0.0.3\n",
        ] {
            assert_both_paths_agree(text);
        }
    }

    #[test]
    fn list_members_read_the_same_with_and_without_the_shortcut() {
        let mut text = String::from("Name: s\nType: hash:net\nHeader: family inet\nMembers:\n");
        for line in ODD_LINES {
            // Member lines are what follows the command word and set name.
            let member = line.splitn(3, ' ').nth(2).unwrap_or(line);
            text.push_str(member);
            text.push('\n');
            text.push_str(line);
            text.push('\n');
        }
        assert_both_paths_agree(&text);
        assert_both_paths_agree(&text.replace('\n', "\r\n"));
    }

    #[test]
    fn fixtures_and_corpus_read_the_same_with_and_without_the_shortcut() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut dirs = vec![
            root.join("testdata/artifacts/ipset"),
            root.join("testdata/ipset"),
        ];
        let shared = root.join("../shared/corpus/ipset");
        if shared.exists() {
            dirs.push(shared);
        } else {
            eprintln!("skipping the shared corpus: ../shared is absent");
        }
        let mut read = 0;
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let Ok(text) = std::fs::read_to_string(e.path()) else {
                    continue;
                };
                assert_both_paths_agree(&text);
                read += 1;
            }
        }
        assert!(read >= 6, "only {read} files read");
    }

    /// The element and whether it prints as written, the general way.
    fn general(s: &str) -> (Elem, bool) {
        let e = Elem::parse_general(s);
        let same = e.prints_as(s);
        (e, same)
    }

    #[test]
    fn plain_ipv4_elements_read_as_the_general_parser_reads_them() {
        for s in [
            "0.0.0.0",
            "10.0.0.1",
            "255.255.255.255",
            "10.0.0.0/24",
            "10.0.0.5/24",
            "10.0.0.1/32",
            "10.0.0.1/0",
            "0.0.0.0/0",
            "128.0.0.0/1",
            "10.0.0.1/31",
        ] {
            assert_eq!(parse_v4_plain(s), Some(general(s)), "{s}");
        }
        // Left to the general path.
        for s in [
            "",
            "010.0.0.1",
            "10.0.0.00",
            "10.0.0.0/08",
            "10.0.0.0/33",
            "10.0.0.0/",
            "1.2.3",
            "1.2.3.4.",
            "1.2.3.256",
            "1234.1.1.1",
            " 1.2.3.4",
            "1.2.3.4 ",
            "1.2.3.4,tcp:80",
            "+1.2.3.4",
            "1.2.3.4/+8",
            "fd00::1",
        ] {
            assert_eq!(parse_v4_plain(s), None, "{s}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn any_text_the_ipv4_shortcut_accepts_reads_as_the_general_parser_reads_it(
            s in "[0-9./+ a]{0,20}|(0|[1-9][0-9]{0,2}|00)(\\.(0|[0-9]{1,3})){3}(/[0-9]{1,2})?"
        ) {
            if let Some(fast) = parse_v4_plain(&s) {
                prop_assert_eq!(fast, general(&s));
            }
            prop_assert_eq!(Elem::parse(&s), Elem::parse_general(&s));
            let m = Member::new(&s, 3, Vec::new());
            prop_assert_eq!(m.value(), s.as_str());
        }

        #[test]
        fn addresses_order_as_their_bytes_do(
            a in proptest::collection::vec(any::<u8>(), 4..=4),
            b in proptest::collection::vec(any::<u8>(), 16..=16),
            c in proptest::collection::vec(any::<u8>(), 4..=4),
            d in proptest::collection::vec(any::<u8>(), 16..=16),
        ) {
            let addr = |v: &[u8]| match v.len() {
                4 => Addr::V4(v.try_into().unwrap_or_default()),
                _ => Addr::V6(v.try_into().unwrap_or_default()),
            };
            // The derived order: the variant first, then the bytes in turn.
            let old = |x: &[u8], y: &[u8]| x.len().cmp(&y.len()).then(x.cmp(y));
            for x in [&a, &b, &c, &d] {
                for y in [&a, &b, &c, &d] {
                    prop_assert_eq!(addr(x).cmp(&addr(y)), old(x, y));
                    prop_assert_eq!(addr(x).partial_cmp(&addr(y)), Some(old(x, y)));
                }
            }
        }

        #[test]
        fn generated_dumps_read_the_same_with_and_without_the_shortcut(
            lines in proptest::collection::vec(
                (0..4usize, 0..3usize, "[0-9]{1,3}\\.[0-9]{1,3}\\.0\\.[0-9]{1,2}(/[0-9]{1,2})?|[ -~]{0,12}"),
                0..40,
            )
        ) {
            let mut text = String::new();
            for (cmd, set, member) in lines {
                let cmd = ["add", "add", "del", "create"][cmd];
                let set = ["a", "b", "c"][set];
                let member = if cmd == "create" { "hash:net" } else { member.as_str() };
                text.push_str(&format!("{cmd} {set} {member}\n"));
            }
            let fast = parse_with(&text, true);
            let general = parse_with(&text, false);
            prop_assert_eq!(outcome(&fast), outcome(&general));
        }
    }
}
