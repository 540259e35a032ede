//! `iptables-save` / `ip6tables-save` output, with or without `-c`, from either backend
//! (legacy or nf_tables), and the same grammar when it is `iptables-restore` input (Felix logs
//! the input it fed to `iptables-restore`, in its own long-flag spelling). Also a best-effort
//! reader for `iptables -L -v -n [-x]` listings ([`parse_list`]), which produce the same data
//! shape.
//!
//! Every rule keeps its line, its text and its matches in structure: addresses, interfaces,
//! IP set references, marks, ports, conntrack states, comments, and a parsed target. Matches
//! this parser does not model are kept verbatim (module and arguments), never dropped.
//!
//! This is not an iptables evaluator and knows nothing of Calico: chain names, comments and
//! set names are plain strings here. It is a single pass over the lines with a small
//! quote-aware tokenizer and no regular expressions, because real dumps reach 700k rules.

use std::borrow::{Borrow, Cow};
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;

use ipnet::IpNet;
use serde::{Serialize, Serializer};

use super::{ParseError, numbered_lines};

// ---------------------------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------------------------

/// A piece of a dump's text: a range of one shared copy of the whole dump, so that a rule's
/// text, comments and names cost no allocation each and the dump is held in memory once.
/// Text that is not a verbatim range (an unescaped `\"`, a listing's rewritten words) gets
/// its own small shared string. Compares, hashes and prints as the `str` it holds.
///
/// Sixteen bytes: the shared text is reached through one thin pointer (an `Arc` of the
/// caller's `Arc<str>`, so that [`parse_shared`] copies nothing), and the range is two `u32`.
/// A dump holds millions of these; a fat pointer each would cost a third more.
#[derive(Clone)]
pub struct Str {
    base: Shared,
    start: u32,
    len: u32,
}

/// The shared text [`Str`]s are ranges of.
type Shared = Arc<Arc<str>>;

impl Str {
    /// The text, borrowed.
    pub fn as_str(&self) -> &str {
        let start = self.start as usize;
        // Ranges are made from token boundaries (ASCII delimiters) of `base`; `get` keeps an
        // impossible range from panicking.
        self.base
            .get(start..start + self.len as usize)
            .unwrap_or("")
    }

    /// `s` as a range of `base` when it lies inside it, else a copy of its own.
    fn within(base: &Shared, s: &str) -> Str {
        let off = (s.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
        match (u32::try_from(off), u32::try_from(s.len())) {
            (Ok(start), Ok(len)) if off.checked_add(s.len()).is_some_and(|e| e <= base.len()) => {
                Str {
                    base: Arc::clone(base),
                    start,
                    len,
                }
            }
            _ => Str::from(s),
        }
    }
}

impl Default for Str {
    fn default() -> Self {
        Str::from("")
    }
}

impl From<&str> for Str {
    fn from(s: &str) -> Self {
        let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
        Str {
            base: Arc::new(Arc::from(s)),
            start: 0,
            len,
        }
    }
}

impl From<String> for Str {
    fn from(s: String) -> Self {
        Str::from(s.as_str())
    }
}

impl Deref for Str {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Str {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Str {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Str {
    fn eq(&self, other: &Str) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Str {}

impl PartialOrd for Str {
    fn partial_cmp(&self, other: &Str) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Str {
    fn cmp(&self, other: &Str) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Str {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.as_str().hash(h)
    }
}

impl PartialEq<str> for Str {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Str {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Str {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<Str> for str {
    fn eq(&self, other: &Str) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Str> for &str {
    fn eq(&self, other: &Str) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Str> for String {
    fn eq(&self, other: &Str) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl Serialize for Str {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A short list held inline: most rules have one match, none has many, and a vector per rule
/// would be an allocation per rule. Reads as a slice.
#[derive(Clone, Default)]
pub enum Few<T> {
    #[default]
    Zero,
    One(T),
    Many(Vec<T>),
}

impl<T> Few<T> {
    pub fn push(&mut self, x: T) {
        match std::mem::take(self) {
            Few::Zero => *self = Few::One(x),
            Few::One(a) => *self = Few::Many(vec![a, x]),
            Few::Many(mut v) => {
                v.push(x);
                *self = Few::Many(v);
            }
        }
    }

    /// The items of `buf`, which is left empty with its capacity; a vector (of exactly
    /// their number) only when there are several.
    fn drain_from(buf: &mut Vec<T>) -> Few<T> {
        match buf.len() {
            0 => Few::Zero,
            1 => buf.pop().map_or(Few::Zero, Few::One),
            _ => Few::Many(exact(buf)),
        }
    }

    pub fn as_slice(&self) -> &[T] {
        match self {
            Few::Zero => &[],
            Few::One(x) => std::slice::from_ref(x),
            Few::Many(v) => v,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [T] {
        match self {
            Few::Zero => &mut [],
            Few::One(x) => std::slice::from_mut(x),
            Few::Many(v) => v,
        }
    }
}

impl<T> Deref for Few<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T> std::ops::DerefMut for Few<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<'a, T> IntoIterator for &'a Few<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl<T: PartialEq> PartialEq for Few<T> {
    fn eq(&self, other: &Few<T>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Eq> Eq for Few<T> {}

impl<T: PartialEq> PartialEq<Vec<T>> for Few<T> {
    fn eq(&self, other: &Vec<T>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: fmt::Debug> fmt::Debug for Few<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_slice(), f)
    }
}

impl<T: Serialize> Serialize for Few<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(s)
    }
}

/// A rule's comments, held inline up to two (Calico writes one or two per rule). Reads as a
/// slice of [`Str`].
#[derive(Clone, Default)]
pub struct Comments(CommentsRepr);

#[derive(Clone, Default)]
enum CommentsRepr {
    #[default]
    Zero,
    One(Str),
    Two([Str; 2]),
    Many(Vec<Str>),
}

impl Comments {
    pub fn push(&mut self, c: Str) {
        self.0 = match std::mem::take(&mut self.0) {
            CommentsRepr::Zero => CommentsRepr::One(c),
            CommentsRepr::One(a) => CommentsRepr::Two([a, c]),
            CommentsRepr::Two([a, b]) => CommentsRepr::Many(vec![a, b, c]),
            CommentsRepr::Many(mut v) => {
                v.push(c);
                CommentsRepr::Many(v)
            }
        }
    }

    /// The items of `buf`, which is left empty with its capacity.
    fn drain_from(buf: &mut Vec<Str>) -> Comments {
        Comments(match buf.len() {
            0 => CommentsRepr::Zero,
            1 => buf.pop().map_or(CommentsRepr::Zero, CommentsRepr::One),
            2 => match (buf.pop(), buf.pop()) {
                (Some(b), Some(a)) => CommentsRepr::Two([a, b]),
                _ => CommentsRepr::Zero,
            },
            _ => CommentsRepr::Many(exact(buf)),
        })
    }

    pub fn as_slice(&self) -> &[Str] {
        match &self.0 {
            CommentsRepr::Zero => &[],
            CommentsRepr::One(x) => std::slice::from_ref(x),
            CommentsRepr::Two(a) => a,
            CommentsRepr::Many(v) => v,
        }
    }
}

impl Deref for Comments {
    type Target = [Str];
    fn deref(&self) -> &[Str] {
        self.as_slice()
    }
}

impl<'a> IntoIterator for &'a Comments {
    type Item = &'a Str;
    type IntoIter = std::slice::Iter<'a, Str>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl PartialEq for Comments {
    fn eq(&self, other: &Comments) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Comments {}

impl<const N: usize> PartialEq<[&str; N]> for Comments {
    fn eq(&self, other: &[&str; N]) -> bool {
        self.len() == N && self.iter().zip(other).all(|(a, b)| a == b)
    }
}

impl fmt::Debug for Comments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_slice(), f)
    }
}

impl Serialize for Comments {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(s)
    }
}

// ---------------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------------

/// Which textual form the dump was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Form {
    /// `iptables-save` output or `iptables-restore` input (also `iptables -S`).
    #[default]
    Save,
    /// `iptables -L -v -n` column listing.
    List,
}

/// The iptables backend a `# Generated by` header names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Backend {
    Legacy,
    NfTables,
}

/// The first `# Generated by iptables-save v1.8.7 (nf_tables) on …` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Header {
    pub line: usize,
    /// `iptables-save`, `ip6tables-save`, `iptables-nft-save`, …
    pub program: String,
    /// `1.8.7` (without the leading `v`).
    pub version: Option<String>,
    /// From `(nf_tables)` / `(legacy)`, or from the program name (`iptables-nft-save`).
    pub backend: Option<Backend>,
    pub text: String,
}

impl Header {
    /// True when the program that wrote the dump is the IPv6 one.
    pub fn is_ipv6(&self) -> bool {
        self.program.starts_with("ip6tables")
    }
}

/// Packet and byte counters (`[pkts:bytes]`, `-c pkts bytes`, or a listing's columns).
/// Listing counters with a `K`/`M`/`G` suffix are rounded by iptables and read back as
/// multiples of 1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
}

/// A whole dump: one entry per `*table` section, in file order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Dump {
    pub form: Form,
    pub header: Option<Header>,
    /// One per `*table` section. A file holding two dumps (say legacy and nft) has two
    /// `filter` tables; [`Dump::table`] returns the first.
    pub tables: Vec<Table>,
    /// `#` lines other than the `Generated by` / `Completed on` ones (iptables-nft writes
    /// `# Warning: iptables-legacy tables present, …` there), with their line.
    pub comments: Vec<(usize, String)>,
    pub errors: Vec<ParseError>,
}

/// One `*table` … `COMMIT` section.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Table {
    pub name: String,
    pub line: usize,
    /// The rules came without a `*table` line (an excerpt, or `iptables -S` output); the
    /// name is iptables' default, `filter`, unless a listing named another.
    pub implicit: bool,
    /// A `COMMIT` closed the section.
    pub committed: bool,
    /// In declaration order (then in order of first use for undeclared chains).
    pub chains: Vec<Chain>,
    /// Chain name → index into `chains` (a fast hash: dumps have thousands of chains, looked
    /// up at every change of chain).
    pub index: HashMap<String, usize, foldhash::fast::RandomState>,
    /// Restore commands that are not rules: `-X`/`--delete-chain`, `-F`, `-Z`, `-E`.
    pub commands: Vec<Command>,
}

/// A chain and its rules in order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Chain {
    pub name: String,
    /// Line of the `:NAME …` declaration, or of the first rule that used the chain.
    pub line: usize,
    /// Declared with `:NAME`, `-N NAME`, `-P NAME` or a listing's `Chain NAME` header.
    pub declared: bool,
    /// `ACCEPT`/`DROP` for built-in chains; `None` for user chains (`-`).
    pub policy: Option<String>,
    pub counters: Option<Counters>,
    /// From a listing's `Chain X (N references)`.
    pub references: Option<u32>,
    pub rules: Vec<Rule>,
}

/// What a rule line asked for. iptables-save only ever writes `Append`; restore input may
/// carry the others. Nothing is replayed: every rule line is kept where it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum RuleOp {
    #[default]
    Append,
    /// `-I CHAIN [N]`.
    Insert(Option<u32>),
    /// `-R CHAIN N`.
    Replace(u32),
    /// `-D CHAIN N` or `-D CHAIN <rule>`.
    Delete(Option<u32>),
}

/// A restore command that is not a rule (`-X cali-foo`, `--flush`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Command {
    pub line: usize,
    /// The option as written: `-X`, `--delete-chain`, `-F`, …
    pub op: String,
    pub args: Vec<String>,
}

/// One rule.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rule {
    pub line: usize,
    pub op: RuleOp,
    pub counters: Option<Counters>,
    /// Criteria in the order written. Comments are in `comments`, not here.
    pub matches: Few<Match>,
    pub target: Option<Target>,
    /// Every `-m comment --comment` text, unquoted and unescaped, in order.
    pub comments: Comments,
    /// The line as dumped (without a pasted prefix or trailing blanks), for evidence.
    pub text: Str,
}

/// The name of a `-m` module. One byte for the modules this parser knows (most matches),
/// the name as written otherwise. Reads, compares and prints as its name.
#[derive(Clone, PartialEq, Eq)]
pub struct Module(ModuleRepr);

// Equal names have equal representations: `Other` never holds a known name.
#[derive(Clone, PartialEq, Eq)]
enum ModuleRepr {
    Known(Known),
    /// Boxed twice: a thin pointer keeps a module at sixteen bytes (a `String` or `Box<str>`
    /// would make every match eight bytes larger), and unknown modules are rare.
    #[allow(clippy::box_collection)]
    Other(Box<String>),
}

impl Module {
    fn known(k: Known) -> Module {
        Module(ModuleRepr::Known(k))
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            ModuleRepr::Known(k) => k.name(),
            ModuleRepr::Other(s) => s,
        }
    }
}

impl From<&str> for Module {
    fn from(s: &str) -> Module {
        match Known::from_name(s) {
            Some(k) => Module::known(k),
            None => Module(ModuleRepr::Other(Box::new(s.to_string()))),
        }
    }
}

impl Deref for Module {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Module {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for Module {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Module {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Module {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The modules whose options this parser understands; the options of any other module are
/// kept verbatim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Comment,
    Set,
    Mark,
    Multiport,
    Tcp,
    Udp,
    Sctp,
    Udplite,
    Dccp,
    Conntrack,
    State,
    Addrtype,
    Rpfilter,
    Icmp,
    Icmp6,
    Icmpv6,
    Physdev,
}

impl Known {
    #[inline]
    fn from_name(m: &str) -> Option<Known> {
        Some(match m {
            "comment" => Known::Comment,
            "set" => Known::Set,
            "mark" => Known::Mark,
            "multiport" => Known::Multiport,
            "tcp" => Known::Tcp,
            "udp" => Known::Udp,
            "sctp" => Known::Sctp,
            "udplite" => Known::Udplite,
            "dccp" => Known::Dccp,
            "conntrack" => Known::Conntrack,
            "state" => Known::State,
            "addrtype" => Known::Addrtype,
            "rpfilter" => Known::Rpfilter,
            "icmp" => Known::Icmp,
            "icmp6" => Known::Icmp6,
            "icmpv6" => Known::Icmpv6,
            "physdev" => Known::Physdev,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Known::Comment => "comment",
            Known::Set => "set",
            Known::Mark => "mark",
            Known::Multiport => "multiport",
            Known::Tcp => "tcp",
            Known::Udp => "udp",
            Known::Sctp => "sctp",
            Known::Udplite => "udplite",
            Known::Dccp => "dccp",
            Known::Conntrack => "conntrack",
            Known::State => "state",
            Known::Addrtype => "addrtype",
            Known::Rpfilter => "rpfilter",
            Known::Icmp => "icmp",
            Known::Icmp6 => "icmp6",
            Known::Icmpv6 => "icmpv6",
            Known::Physdev => "physdev",
        }
    }
}

/// One criterion. `module` is the `-m` module it was given under (`None` for the built-in
/// `-p -s -d -i -o -f`, and for options given without `-m`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Match {
    pub module: Option<Module>,
    /// Preceded by `!`. For `AddrType`/`RpFilter` negation lives inside the kind.
    pub negated: bool,
    pub kind: MatchKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum MatchKind {
    Protocol(Protocol),
    Source(Address),
    Destination(Address),
    /// Interface name as written; a trailing `+` is a prefix wildcard ([`iface_matches`]).
    InInterface(Str),
    OutInterface(Str),
    /// `-f`.
    Fragment,
    /// `-m set --match-set NAME src,dst`.
    Set(SetMatch),
    /// `-m mark --mark V[/M]`.
    Mark {
        value: u32,
        mask: Option<u32>,
    },
    /// `--dport`/`--sport` (module `tcp`, `udp`, …) or `-m multiport --dports/--sports/--ports`.
    Ports {
        dir: PortDir,
        ports: Vec<PortRange>,
    },
    /// `-m conntrack --ctstate` or `-m state --state`.
    ConnState(Vec<Str>),
    /// One `-m addrtype` instance (boxed: large and rare).
    AddrType(Box<AddrType>),
    /// One `-m rpfilter` instance.
    RpFilter(RpFilter),
    /// `--icmp-type` / `--icmpv6-type`, as written (`8`, `3/4`, `echo-request`).
    IcmpType(Str),
    /// `--physdev-in` / `--physdev-out`.
    Physdev {
        out: bool,
        name: Str,
    },
    /// An option of a module this parser knows, not modelled further (`--tcp-flags A B`).
    Option {
        name: Str,
        args: Vec<Str>,
    },
    /// Everything given to a module this parser does not know, verbatim (including `!`).
    /// In a listing: the text after the addresses that was not understood.
    Unknown {
        args: Vec<Str>,
    },
}

/// `-p` value: the name as written and its number when known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Protocol {
    pub name: Str,
    pub number: Option<u8>,
}

/// `-s`/`-d` value: the text as written and, when it is an address or network, the network
/// (a bare address becomes /32 or /128; a dotted netmask is converted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    pub text: Str,
    pub net: Option<IpNet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SetDir {
    Src,
    Dst,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetMatch {
    pub name: Str,
    /// One entry per dimension of the set: `src`, `dst`, `src,dst`, …
    pub dirs: SetDirs,
}

/// The `src,dst` flags of a set match, held inline: a set has at most six dimensions
/// (`IPSET_DIM_MAX`), and a vector per set match would be an allocation per rule.
#[derive(Clone, Copy)]
pub struct SetDirs {
    len: u8,
    /// Slots past `len` are unused.
    dirs: [SetDir; SetDirs::MAX],
}

impl SetDirs {
    /// `IPSET_DIM_MAX`: iptables refuses more flags.
    pub const MAX: usize = 6;

    /// Adds a flag; false (and nothing added) when there are already [`SetDirs::MAX`].
    pub fn push(&mut self, d: SetDir) -> bool {
        match self.dirs.get_mut(self.len as usize) {
            Some(slot) => {
                *slot = d;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    pub fn as_slice(&self) -> &[SetDir] {
        self.dirs.get(..self.len as usize).unwrap_or(&[])
    }
}

impl Default for SetDirs {
    fn default() -> Self {
        SetDirs {
            len: 0,
            dirs: [SetDir::Src; SetDirs::MAX],
        }
    }
}

impl FromIterator<SetDir> for SetDirs {
    /// Keeps the first [`SetDirs::MAX`] flags.
    fn from_iter<I: IntoIterator<Item = SetDir>>(it: I) -> Self {
        let mut d = SetDirs::default();
        for x in it {
            if !d.push(x) {
                break;
            }
        }
        d
    }
}

impl Deref for SetDirs {
    type Target = [SetDir];
    fn deref(&self) -> &[SetDir] {
        self.as_slice()
    }
}

impl PartialEq for SetDirs {
    fn eq(&self, other: &SetDirs) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for SetDirs {}

impl<const N: usize> PartialEq<[SetDir; N]> for SetDirs {
    fn eq(&self, other: &[SetDir; N]) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl PartialEq<Vec<SetDir>> for SetDirs {
    fn eq(&self, other: &Vec<SetDir>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl fmt::Debug for SetDirs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_slice(), f)
    }
}

impl Serialize for SetDirs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PortDir {
    Src,
    Dst,
    /// multiport `--ports`: source or destination.
    Either,
}

/// An inclusive port range; a single port has `start == end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    pub fn contains(&self, port: u16) -> bool {
        self.start <= port && port <= self.end
    }
}

/// One side of `-m addrtype`: `[!] --src-type LOCAL[,UNICAST]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddrTypeSel {
    pub negated: bool,
    pub types: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AddrType {
    pub src_type: Option<AddrTypeSel>,
    pub dst_type: Option<AddrTypeSel>,
    pub limit_iface_in: bool,
    pub limit_iface_out: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RpFilter {
    pub invert: bool,
    pub validmark: bool,
    pub accept_local: bool,
    pub loose: bool,
}

/// `-j NAME …` or `-g NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub name: Str,
    /// `-g`/`--goto` rather than `-j`/`--jump`.
    pub goto: bool,
    /// The arguments after the name, unquoted, as written.
    pub args: Box<[Str]>,
    pub kind: TargetKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum TargetKind {
    Accept,
    Drop,
    Return,
    Queue,
    /// A user chain: a name that is no known target extension and has no arguments.
    Chain,
    Mark(MarkTarget),
    /// Boxed, as `Nflog`: rare, and inline they would double the size of every rule.
    Log(Box<LogTarget>),
    Nflog(Box<NflogTarget>),
    Masquerade {
        random: bool,
        random_fully: bool,
        to_ports: Option<Str>,
    },
    Dnat {
        to: Option<Str>,
    },
    Snat {
        to: Option<Str>,
    },
    Reject {
        with: Option<Str>,
    },
    /// The `CT` target; its options are in `Target::args`.
    Ct {
        notrack: bool,
    },
    Notrack,
    /// A known or unknown extension target not modelled here (args in `Target::args`).
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogTarget {
    pub prefix: Option<Str>,
    pub level: Option<Str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NflogTarget {
    pub group: Option<u32>,
    pub prefix: Option<Str>,
    pub range: Option<u32>,
    pub size: Option<u32>,
    pub threshold: Option<u32>,
}

/// How a `MARK` target was spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MarkOp {
    SetXmark,
    SetMark,
    OrMark,
    AndMark,
    XorMark,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MarkTarget {
    pub op: MarkOp,
    pub value: u32,
    pub mask: Option<u32>,
}

impl MarkTarget {
    /// The `(value, mask)` pair the kernel stores (`mark = (mark & !mask) ^ value`), which is
    /// what `iptables-save` prints as `--set-xmark value/mask`. Felix writes
    /// `--set-mark 0x10000/0x10000`; this makes both spellings compare equal.
    pub fn xmark(&self) -> (u32, u32) {
        match self.op {
            MarkOp::SetXmark => (self.value, self.mask.unwrap_or(u32::MAX)),
            MarkOp::SetMark => match self.mask {
                Some(m) => (self.value, self.value | m),
                None => (self.value, u32::MAX),
            },
            MarkOp::OrMark => (self.value, self.value),
            MarkOp::AndMark => (0, !self.value),
            MarkOp::XorMark => (self.value, 0),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lookups
// ---------------------------------------------------------------------------------------------

impl Dump {
    /// Records as the report counts them: the number of rules.
    pub fn records(&self) -> usize {
        self.tables
            .iter()
            .flat_map(|t| t.chains.iter())
            .map(|c| c.rules.len())
            .sum()
    }

    /// The first table section with this name.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// Every rule with its table and chain, in file order per chain.
    pub fn rules(&self) -> impl Iterator<Item = (&Table, &Chain, &Rule)> {
        self.tables.iter().flat_map(|t| {
            t.chains
                .iter()
                .flat_map(move |c| c.rules.iter().map(move |r| (t, c, r)))
        })
    }

    /// True when the header names ip6tables, or else when the first address seen is IPv6.
    /// `None` when nothing tells.
    pub fn is_ipv6(&self) -> Option<bool> {
        if let Some(h) = &self.header {
            return Some(h.is_ipv6());
        }
        self.rules()
            .flat_map(|(_, _, r)| r.matches.iter())
            .find_map(|m| match &m.kind {
                MatchKind::Source(a) | MatchKind::Destination(a) => {
                    a.net.map(|n| n.addr().is_ipv6())
                }
                _ => None,
            })
    }
}

impl Table {
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.index.get(name).and_then(|&i| self.chains.get(i))
    }

    fn chain_index_or_insert(&mut self, name: &str, line: usize) -> (usize, bool) {
        if let Some(&i) = self.index.get(name) {
            return (i, false);
        }
        let i = self.chains.len();
        self.chains.push(Chain {
            name: name.to_string(),
            line,
            ..Chain::default()
        });
        self.index.insert(name.to_string(), i);
        (i, true)
    }
}

impl Rule {
    /// The chain this rule jumps or goes to, when the target is a user chain.
    pub fn jump_target(&self) -> Option<&str> {
        match &self.target {
            Some(t) if t.kind == TargetKind::Chain => Some(&t.name),
            _ => None,
        }
    }

    /// Every `-m set --match-set` with whether it is negated.
    pub fn match_sets(&self) -> impl Iterator<Item = (&SetMatch, bool)> {
        self.matches.iter().filter_map(|m| match &m.kind {
            MatchKind::Set(s) => Some((s, m.negated)),
            _ => None,
        })
    }

    /// Every `-m mark --mark` as `(value, mask, negated)`; no mask means all bits.
    pub fn mark_matches(&self) -> impl Iterator<Item = (u32, u32, bool)> + '_ {
        self.matches.iter().filter_map(|m| match m.kind {
            MatchKind::Mark { value, mask } => Some((value, mask.unwrap_or(u32::MAX), m.negated)),
            _ => None,
        })
    }
}

/// iptables' interface matching: `cali+` matches every name starting with `cali`, `+` alone
/// matches all, anything else must be equal.
pub fn iface_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('+') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

// ---------------------------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------------------------

/// One argument of a rule line. `quoted` tokens are never options, whatever they contain.
/// Plain data (a line's tokens are dropped at once): a token whose text is not a range of its
/// line is held in an [`Unquoted`] list and filled in from it.
#[derive(Debug, Clone, Copy)]
struct Tok<'a> {
    s: &'a str,
    quoted: bool,
}

/// Texts of the tokens that are no range of their line (quotes inside a word, escapes), by
/// their token's index; rare.
type Unquoted = Vec<(usize, String)>;

/// Point the tokens that [`tokenize`] left empty at their texts in `owned`.
fn fill<'a>(toks: &mut [Tok<'a>], owned: &'a Unquoted) {
    for (i, text) in owned {
        if let Some(t) = toks.get_mut(*i) {
            t.s = text;
        }
    }
}

/// An empty token list on the allocation of `v`, for tokens of another lifetime: the list
/// is kept from line to line, while each line's tokens borrow that line's [`Unquoted`].
fn recycle<'b>(mut v: Vec<Tok<'_>>) -> Vec<Tok<'b>> {
    v.clear();
    // Collected in place: no element to map, and the allocation is reused.
    v.into_iter()
        .map(|t| Tok {
            s: "",
            quoted: t.quoted,
        })
        .collect()
}

impl Tok<'_> {
    fn is(&self, word: &str) -> bool {
        !self.quoted && self.s == word
    }

    /// An option-looking token (`-j`, `--dport`), or `!`; not a negative number.
    fn is_option_like(&self) -> bool {
        if self.quoted {
            return false;
        }
        let b = self.s.as_bytes();
        (b.len() > 1 && b[0] == b'-' && !b[1].is_ascii_digit()) || self.s == "!"
    }
}

/// Split like `iptables-restore` does: blanks separate, `"…"` groups, and inside quotes a
/// backslash takes the next character literally (iptables-save writes `\"` and `\\`).
/// Returns false when a quote is left open (a truncated line); the rest becomes the token.
///
/// Nearly every token is a bare word or one whole `"…"` without escapes: those are borrowed
/// from the line by a fast scan, which looks at eight bytes at a time and visits only the
/// blanks and quotes among them (this scan is most of the work of reading a dump). A token
/// mixing quotes and bare text, or holding an escape, takes the general path
/// ([`token_general`]), which gives the same result for the simple shapes too (the unit
/// tests compare both, at every alignment).
fn tokenize<'a>(s: &'a str, out: &mut Vec<Tok<'a>>, owned: &mut Unquoted) -> bool {
    owned.clear();
    out.clear();
    let b = s.as_bytes();
    let n = b.len();
    let mut closed = true;
    // Start of the current token (one past the last delimiter), and of the next chunk.
    let mut start = 0;
    let mut i = 0;
    'chunks: while i < n {
        // Eight bytes at a time (the tail padded with bytes that are never flagged); each
        // flagged byte is a blank, a quote, or (rarely) `!` or a control character.
        let (w, step) = match b.get(i..i + 8).and_then(|c| <[u8; 8]>::try_from(c).ok()) {
            Some(c) => (u64::from_le_bytes(c), 8),
            None => {
                let mut pad = [0xFF; 8];
                let tail = b.get(i..).unwrap_or_default();
                for (p, &c) in pad.iter_mut().zip(tail) {
                    *p = c;
                }
                (u64::from_le_bytes(pad), tail.len())
            }
        };
        let mut flags = below_hash(w);
        while flags != 0 {
            let k = i + (flags.trailing_zeros() / 8) as usize;
            flags &= flags - 1;
            match b.get(k) {
                Some(b' ' | b'\t') => {
                    if k > start {
                        // Blank and quote are ASCII: both ends are char boundaries.
                        out.push(Tok {
                            s: s.get(start..k).unwrap_or(""),
                            quoted: false,
                        });
                    }
                    start = k + 1;
                }
                Some(b'"') => {
                    // The usual shape: the quote opens the token, and the token is one `"…"`
                    // without escapes, followed by a blank or the end.
                    if k == start
                        && let Some(q) = b
                            .get(k + 1..)
                            .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
                    {
                        let end = k + 1 + q;
                        if b[end] == b'"' && matches!(b.get(end + 1), None | Some(b' ' | b'\t')) {
                            out.push(Tok {
                                s: s.get(k + 1..end).unwrap_or(""),
                                quoted: true,
                            });
                            start = end + 1;
                            i = start;
                            continue 'chunks;
                        }
                    }
                    let (text, quoted, next, ok) = token_general(s, start);
                    let text = match text {
                        Cow::Borrowed(t) => t,
                        Cow::Owned(o) => {
                            owned.push((out.len(), o));
                            ""
                        }
                    };
                    out.push(Tok { s: text, quoted });
                    closed &= ok;
                    start = next;
                    i = next;
                    continue 'chunks;
                }
                _ => {}
            }
        }
        i += step;
    }
    if start < n {
        out.push(Tok {
            s: s.get(start..).unwrap_or(""),
            quoted: false,
        });
    }
    closed
}

/// The high bit of every byte of `w` that is below `#`: blank, tab and quote, and otherwise
/// only `!` and control characters. Exact per byte: setting each byte's high bit first keeps
/// the subtraction from borrowing across bytes; bytes with their own high bit set (UTF-8) are
/// never flagged.
#[inline]
fn below_hash(w: u64) -> u64 {
    const LO: u64 = u64::from_ne_bytes([0x01; 8]);
    const HI: u64 = u64::from_ne_bytes([0x80; 8]);
    !((w | HI).wrapping_sub(LO * u64::from(b'#'))) & !w & HI
}

/// One token starting at `start` (not a blank), by the full rules: quotes may open and close
/// anywhere in the token, and inside them a backslash escapes the next character. Returns the
/// token, the index after it, and false when a quote was left open.
fn token_general(s: &str, start: usize) -> (Cow<'_, str>, bool, usize, bool) {
    let b = s.as_bytes();
    let n = b.len();
    let mut i = start;
    let mut seg = i;
    // Pieces of the token between quotes and escapes. A token of one piece is borrowed;
    // only several pieces allocate.
    let mut pieces = Pieces::default();
    let mut quoted = false;
    let mut in_q = false;
    while i < n {
        let c = b[i];
        if in_q {
            if c == b'\\' && i + 1 < n {
                pieces.push(s, seg, i);
                seg = i + 1;
                i += 2;
            } else if c == b'"' {
                pieces.push(s, seg, i);
                in_q = false;
                i += 1;
                seg = i;
            } else {
                i += 1;
            }
        } else if c == b' ' || c == b'\t' {
            break;
        } else if c == b'"' {
            pieces.push(s, seg, i);
            in_q = true;
            quoted = true;
            i += 1;
            seg = i;
        } else {
            i += 1;
        }
    }
    // An escape can step `i` past the end or into a multi-byte char; `get` guards it.
    pieces.push(s, seg, i.min(n));
    (pieces.finish(s), quoted, i, !in_q)
}

#[derive(Default)]
struct Pieces {
    first: Option<(usize, usize)>,
    owned: Option<String>,
}

impl Pieces {
    fn push(&mut self, s: &str, a: usize, b: usize) {
        if a >= b {
            return;
        }
        let piece = s.get(a..b).unwrap_or("");
        if let Some(o) = &mut self.owned {
            o.push_str(piece);
        } else if let Some((fa, fb)) = self.first {
            let mut o = String::with_capacity(fb - fa + piece.len() + 8);
            o.push_str(s.get(fa..fb).unwrap_or(""));
            o.push_str(piece);
            self.owned = Some(o);
        } else {
            self.first = Some((a, b));
        }
    }

    fn finish(self, s: &str) -> Cow<'_, str> {
        match (self.owned, self.first) {
            (Some(o), _) => Cow::Owned(o),
            (None, Some((a, b))) => Cow::Borrowed(s.get(a..b).unwrap_or("")),
            (None, None) => Cow::Borrowed(""),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small value parsers
// ---------------------------------------------------------------------------------------------

fn parse_u32_auto(s: &str) -> Option<u32> {
    match s.as_bytes() {
        [b'0', b'x' | b'X', h @ ..] => parse_radix(h, 16),
        d => parse_radix(d, 10),
    }
}

/// The value of each byte as a hex digit (either case); 255 for a byte that is none.
const DIGIT: [u8; 256] = {
    let mut t = [255u8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// `u32::from_str_radix` over bytes (radix 10 or 16), with the same answers: one optional
/// leading `+` (not alone), at least one digit, no overflow. Marks are read twice per rule in
/// Calico's dumps, and the standard parser's generality is a visible part of that.
fn parse_radix(b: &[u8], radix: u32) -> Option<u32> {
    let digits = match b {
        [b'+'] => return None,
        [b'+', rest @ ..] => rest,
        _ => b,
    };
    if digits.is_empty() {
        return None;
    }
    // Up to eight hex or nine decimal digits cannot overflow.
    let short = digits.len() <= if radix == 16 { 8 } else { 9 };
    let mut v: u32 = 0;
    for &c in digits {
        let d = u32::from(DIGIT[usize::from(c)]);
        if d >= radix {
            return None;
        }
        v = if short {
            v * radix + d
        } else {
            v.checked_mul(radix)?.checked_add(d)?
        };
    }
    Some(v)
}

/// `V` or `V/M`, hex or decimal.
fn parse_mark(s: &str) -> Option<(u32, Option<u32>)> {
    // `/` is ASCII, so both sides of it are char boundaries.
    match memchr::memchr(b'/', s.as_bytes()) {
        Some(k) => Some((
            parse_u32_auto(s.get(..k)?)?,
            Some(parse_u32_auto(s.get(k + 1..)?)?),
        )),
        None => Some((parse_u32_auto(s)?, None)),
    }
}

/// `[pkts:bytes]`.
fn parse_bracket_counters(s: &str) -> Option<Counters> {
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    let (p, b) = inner.split_once(':')?;
    // `iptables-save -c` puts these before every rule: plain digits are read directly.
    if let (Some(packets), Some(bytes)) = (plain_u64(p), plain_u64(b)) {
        return Some(Counters { packets, bytes });
    }
    Some(Counters {
        packets: p.trim().parse().ok()?,
        bytes: b.trim().parse().ok()?,
    })
}

/// One to nineteen ASCII digits (which cannot overflow a `u64`) as a number; `None` for
/// anything else, which the standard parser then reads.
fn plain_u64(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 19 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0, |v, &c| v * 10 + u64::from(c - b'0')))
}

/// `80`, `80,443`, `1024:65535`, `8080:8081,8082`.
fn parse_ports(s: &str) -> Option<Vec<PortRange>> {
    let mut out = Vec::with_capacity(1 + s.len() / 4);
    for part in s.split(',') {
        let (a, b) = match part.split_once(':') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        // iptables accepts open ranges (`:1024`, `1024:`).
        let start = if a.is_empty() { 0 } else { a.parse().ok()? };
        let end = if b.is_empty() {
            u16::MAX
        } else {
            b.parse().ok()?
        };
        out.push(PortRange { start, end });
    }
    Some(out)
}

/// `10.0.0.0/8`, `10.0.0.1`, `fd00::/64`, `10.0.0.0/255.0.0.0`; anything else keeps only the
/// text (a host name in an unnumeric listing, `anywhere`).
pub fn parse_address(s: &str) -> Address {
    Address {
        net: parse_net(s),
        text: Str::from(s),
    }
}

/// [`super::parse_net`], plus the dotted-mask form (`10.0.0.0/255.255.255.0`) and a listing's
/// `anywhere`.
fn parse_net(s: &str) -> Option<IpNet> {
    if s == "anywhere" {
        None
    } else if let Some(n) = super::parse_net(s) {
        Some(n)
    } else if let Some((a, m)) = s.split_once('/') {
        match (a.parse::<IpAddr>(), m.parse::<IpAddr>()) {
            (Ok(a), Ok(m)) => IpNet::with_netmask(a, m).ok(),
            _ => None,
        }
    } else {
        None
    }
}

fn protocol_number(name: &str) -> Option<u8> {
    if let Ok(n) = name.parse::<u8>() {
        return Some(n);
    }
    // The names iptables-save prints (from /etc/protocols) that matter here, in any case:
    // lowered in a stack buffer (no name that matters is longer than it).
    let mut buf = [0u8; 12];
    let lower = match buf.get_mut(..name.len()) {
        Some(b) => {
            b.copy_from_slice(name.as_bytes());
            b.make_ascii_lowercase();
            &b[..]
        }
        None => return None,
    };
    let n = match lower {
        b"all" => 0,
        b"icmp" => 1,
        b"igmp" => 2,
        b"ipip" | b"ipencap" | b"ipv4" => 4,
        b"tcp" => 6,
        b"udp" => 17,
        b"ipv6" => 41,
        b"gre" => 47,
        b"esp" => 50,
        b"ah" => 51,
        b"icmpv6" | b"ipv6-icmp" => 58,
        b"vrrp" => 112,
        b"sctp" => 132,
        b"udplite" => 136,
        _ => return None,
    };
    Some(n)
}

/// The tokens as texts: ranges of `base` where they were read verbatim.
fn to_strs(base: &Shared, toks: &[Tok<'_>]) -> Vec<Str> {
    toks.iter().map(|t| Str::within(base, t.s)).collect()
}

// ---------------------------------------------------------------------------------------------
// Rule specification (everything after `-A CHAIN`)
// ---------------------------------------------------------------------------------------------

/// The options of iptables itself (not of a module); they also end an unknown module's
/// arguments and a target's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Core {
    Protocol,
    Source,
    Destination,
    InInterface,
    OutInterface,
    Fragment,
    Match,
    Jump,
    Goto,
    Counters,
}

/// `s` as a core option. Every token of a rule is asked this, so the short spellings are told
/// apart by their one letter before any string comparison.
#[inline(always)]
fn core_option(s: &str) -> Option<Core> {
    let b = s.as_bytes();
    match b {
        [b'-', c] => Some(match c {
            b'p' => Core::Protocol,
            b's' => Core::Source,
            b'd' => Core::Destination,
            b'i' => Core::InInterface,
            b'o' => Core::OutInterface,
            b'f' => Core::Fragment,
            b'm' => Core::Match,
            b'j' => Core::Jump,
            b'g' => Core::Goto,
            b'c' => Core::Counters,
            _ => return None,
        }),
        [b'-', b'-', ..] => Some(match s {
            "--protocol" => Core::Protocol,
            "--source" | "--src" => Core::Source,
            "--destination" | "--dst" => Core::Destination,
            "--in-interface" => Core::InInterface,
            "--out-interface" => Core::OutInterface,
            "--fragment" => Core::Fragment,
            "--match" => Core::Match,
            "--jump" => Core::Jump,
            "--goto" => Core::Goto,
            "--set-counters" => Core::Counters,
            _ => return None,
        }),
        _ => None,
    }
}

fn is_core_tok(t: &Tok<'_>) -> bool {
    !t.quoted && core_option(t.s).is_some()
}

/// Options that take no argument, per module.
fn is_flag_option(module: &str, opt: &str) -> bool {
    matches!(
        (module, opt),
        ("tcp", "--syn")
            | ("set", "--return-nomatch")
            | ("set", "--update-counters")
            | ("set", "--update-subcounters")
            | ("physdev", "--physdev-is-in")
            | ("physdev", "--physdev-is-out")
            | ("physdev", "--physdev-is-bridged")
    )
}

struct SpecParser<'r, 'e> {
    line: usize,
    /// The dump's text, which the rule's texts are ranges of.
    base: &'e Shared,
    /// Scratch lists for the rule's matches and comments.
    matches: &'r mut Vec<Match>,
    comments: &'r mut Vec<Str>,
    target: Option<Target>,
    counters: Option<Counters>,
    errors: &'e mut Vec<ParseError>,
}

impl SpecParser<'_, '_> {
    fn err(&mut self, msg: impl Into<String>) {
        self.errors.push(ParseError::new(self.line, msg));
    }

    fn text(&self, s: &str) -> Str {
        Str::within(self.base, s)
    }

    fn push(&mut self, module: Option<Known>, negated: bool, kind: MatchKind) {
        self.matches.push(Match {
            module: module.map(Module::known),
            negated,
            kind,
        });
    }

    /// The argument of option `toks[i]`. Old iptables wrote `--dport ! 80`; a `!` in the
    /// argument position flips `neg`. Returns the argument's index.
    #[inline]
    fn arg(&mut self, toks: &[Tok<'_>], i: usize, neg: &mut bool) -> Option<usize> {
        let mut j = i + 1;
        if toks.get(j).is_some_and(|t| t.is("!")) && j + 1 < toks.len() {
            *neg = !*neg;
            j += 1;
        }
        if j < toks.len() {
            Some(j)
        } else {
            let opt = toks.get(i).map(|t| t.s.to_string()).unwrap_or_default();
            self.err(format!("option {opt} needs an argument"));
            None
        }
    }

    fn run(&mut self, toks: &[Tok<'_>]) {
        let mut i = 0;
        let mut neg = false;
        let mut module: Option<Known> = None;
        // Index in rule.matches of the current addrtype / rpfilter instance.
        let mut instance: Option<usize> = None;
        while i < toks.len() {
            let t = &toks[i];
            if t.is("!") {
                neg = !neg;
                i += 1;
                continue;
            }
            if !t.is_option_like() {
                self.err(format!("unexpected argument `{}`", t.s));
                self.push(
                    module,
                    neg,
                    MatchKind::Unknown {
                        args: vec![self.text(t.s)],
                    },
                );
                neg = false;
                i += 1;
                continue;
            }
            let opt: &str = t.s;
            match core_option(opt) {
                Some(Core::Protocol) => {
                    if let Some(j) = self.arg(toks, i, &mut neg) {
                        let name = self.text(toks[j].s);
                        let number = protocol_number(&name);
                        self.push(None, neg, MatchKind::Protocol(Protocol { name, number }));
                        i = j + 1;
                    } else {
                        i = toks.len();
                    }
                }
                Some(side @ (Core::Source | Core::Destination)) => {
                    if let Some(j) = self.arg(toks, i, &mut neg) {
                        let a = Address {
                            net: parse_net(toks[j].s),
                            text: self.text(toks[j].s),
                        };
                        let kind = if side == Core::Source {
                            MatchKind::Source(a)
                        } else {
                            MatchKind::Destination(a)
                        };
                        self.push(None, neg, kind);
                        i = j + 1;
                    } else {
                        i = toks.len();
                    }
                }
                Some(side @ (Core::InInterface | Core::OutInterface)) => {
                    if let Some(j) = self.arg(toks, i, &mut neg) {
                        let name = self.text(toks[j].s);
                        let kind = if side == Core::InInterface {
                            MatchKind::InInterface(name)
                        } else {
                            MatchKind::OutInterface(name)
                        };
                        self.push(None, neg, kind);
                        i = j + 1;
                    } else {
                        i = toks.len();
                    }
                }
                Some(Core::Fragment) => {
                    self.push(None, neg, MatchKind::Fragment);
                    i += 1;
                }
                Some(Core::Counters) => {
                    let p = toks.get(i + 1).and_then(|t| t.s.parse().ok());
                    let b = toks.get(i + 2).and_then(|t| t.s.parse().ok());
                    match (p, b) {
                        (Some(packets), Some(bytes)) => {
                            self.counters = Some(Counters { packets, bytes })
                        }
                        _ => self.err(format!("{opt} needs two numbers")),
                    }
                    i += 3;
                }
                Some(Core::Match) => {
                    let Some(name_tok) = toks.get(i + 1) else {
                        self.err(format!("{opt} needs a module name"));
                        break;
                    };
                    let name: &str = name_tok.s;
                    i += 2;
                    instance = None;
                    if let Some(k) = Known::from_name(name) {
                        module = Some(k);
                        if k == Known::Addrtype {
                            instance = Some(self.matches.len());
                            self.push(Some(k), false, MatchKind::AddrType(Box::default()));
                        } else if k == Known::Rpfilter {
                            instance = Some(self.matches.len());
                            self.push(Some(k), false, MatchKind::RpFilter(RpFilter::default()));
                        }
                    } else {
                        // Unknown module: keep everything up to the next core option.
                        let start = i;
                        while i < toks.len() {
                            let at_core = is_core_tok(&toks[i])
                                || (toks[i].is("!") && toks.get(i + 1).is_some_and(is_core_tok));
                            if at_core {
                                break;
                            }
                            i += 1;
                        }
                        module = None;
                        let args = to_strs(self.base, &toks[start..i]);
                        self.matches.push(Match {
                            module: Some(Module(ModuleRepr::Other(Box::new(name.to_string())))),
                            negated: false,
                            kind: MatchKind::Unknown { args },
                        });
                    }
                }
                Some(jump @ (Core::Jump | Core::Goto)) => {
                    let Some(name_tok) = toks.get(i + 1) else {
                        self.err(format!("{opt} needs a target"));
                        break;
                    };
                    let goto = jump == Core::Goto;
                    let start = i + 2;
                    let mut end = start;
                    while end < toks.len() && !is_core_tok(&toks[end]) {
                        end += 1;
                    }
                    let target = parse_target(name_tok.s, goto, &toks[start..end], self);
                    if self.target.is_some() {
                        self.err("more than one target in one rule");
                    }
                    self.target = Some(target);
                    i = end;
                }
                _ => {
                    i = self.module_option(toks, i, module, instance, neg);
                }
            }
            neg = false;
        }
    }

    /// A module option at `toks[i]`; returns the index after its arguments.
    fn module_option(
        &mut self,
        toks: &[Tok<'_>],
        i: usize,
        module: Option<Known>,
        instance: Option<usize>,
        mut neg: bool,
    ) -> usize {
        let opt: &str = toks[i].s;
        // The options of nearly every rule Calico writes, straight to their reading (the same
        // as through the general path below).
        match (module, opt) {
            (Some(Known::Comment), "--comment") => {
                let Some(j) = self.arg(toks, i, &mut neg) else {
                    return toks.len();
                };
                let c = self.text(toks[j].s);
                self.comments.push(c);
                return j + 1;
            }
            (Some(Known::Mark), "--mark") => {
                let Some(j) = self.arg(toks, i, &mut neg) else {
                    return toks.len();
                };
                let v: &str = toks[j].s;
                match parse_mark(v) {
                    Some((value, mask)) => self.push(module, neg, MatchKind::Mark { value, mask }),
                    None => {
                        self.err(format!("bad mark `{v}`"));
                        self.option(module, neg, opt, v);
                    }
                }
                return j + 1;
            }
            _ => {}
        }
        let m = module.map_or("", Known::name);
        // Options taking no argument.
        match (m, opt) {
            ("addrtype", "--limit-iface-in" | "--limit-iface-out") => {
                if let Some(MatchKind::AddrType(a)) = self.instance_kind(instance) {
                    if opt == "--limit-iface-in" {
                        a.limit_iface_in = true;
                    } else {
                        a.limit_iface_out = true;
                    }
                }
                return i + 1;
            }
            ("rpfilter", "--loose" | "--validmark" | "--accept-local" | "--invert") => {
                if let Some(MatchKind::RpFilter(r)) = self.instance_kind(instance) {
                    match opt {
                        "--loose" => r.loose = true,
                        "--validmark" => r.validmark = true,
                        "--accept-local" => r.accept_local = true,
                        _ => r.invert = true,
                    }
                }
                return i + 1;
            }
            _ if is_flag_option(m, opt) => {
                self.push(
                    module,
                    neg,
                    MatchKind::Option {
                        name: self.text(opt),
                        args: Vec::new(),
                    },
                );
                return i + 1;
            }
            _ => {}
        }
        let known = matches!(
            (m, opt),
            ("comment", "--comment")
                | ("set", "--match-set")
                | ("mark", "--mark")
                | (
                    "multiport",
                    "--dports" | "--destination-ports" | "--sports" | "--source-ports" | "--ports"
                )
                | (
                    "tcp" | "udp" | "sctp" | "udplite" | "dccp" | "",
                    "--dport" | "--destination-port" | "--sport" | "--source-port"
                )
                | ("conntrack", "--ctstate")
                | ("state", "--state")
                | ("addrtype", "--src-type" | "--dst-type")
                | ("icmp" | "", "--icmp-type")
                | ("icmp6" | "icmpv6" | "", "--icmpv6-type")
                | ("physdev", "--physdev-in" | "--physdev-out")
        );
        if !known {
            // Generic option: arguments run to the next option-looking token.
            let mut j = i + 1;
            while j < toks.len() && !toks[j].is_option_like() {
                j += 1;
            }
            let args = to_strs(self.base, &toks[i + 1..j]);
            self.push(
                module,
                neg,
                MatchKind::Option {
                    name: self.text(opt),
                    args,
                },
            );
            return j;
        }
        let Some(j) = self.arg(toks, i, &mut neg) else {
            return toks.len();
        };
        let v: &str = toks[j].s;
        let mut next = j + 1;
        match opt {
            "--comment" => {
                let c = self.text(v);
                self.comments.push(c);
            }
            "--match-set" => {
                let Some(flags) = toks.get(j + 1) else {
                    self.err("--match-set needs a set name and src/dst flags");
                    return toks.len();
                };
                next = j + 2;
                let mut dirs = SetDirs::default();
                for f in flags.s.split(',') {
                    let d = match f {
                        "src" => SetDir::Src,
                        "dst" => SetDir::Dst,
                        other => {
                            self.err(format!("--match-set flag `{other}` is not src or dst"));
                            continue;
                        }
                    };
                    if !dirs.push(d) {
                        self.err(format!(
                            "--match-set with more than {} src/dst flags",
                            SetDirs::MAX
                        ));
                        break;
                    }
                }
                let kind = MatchKind::Set(SetMatch {
                    name: self.text(v),
                    dirs,
                });
                self.push(module, neg, kind);
            }
            "--mark" => match parse_mark(v) {
                Some((value, mask)) => self.push(module, neg, MatchKind::Mark { value, mask }),
                None => {
                    self.err(format!("bad mark `{v}`"));
                    self.option(module, neg, opt, v);
                }
            },
            "--dports"
            | "--destination-ports"
            | "--sports"
            | "--source-ports"
            | "--ports"
            | "--dport"
            | "--destination-port"
            | "--sport"
            | "--source-port" => {
                let dir = if opt == "--ports" {
                    PortDir::Either
                } else if opt.starts_with("--d") {
                    PortDir::Dst
                } else {
                    PortDir::Src
                };
                match parse_ports(v) {
                    Some(ports) => self.push(module, neg, MatchKind::Ports { dir, ports }),
                    // Service names are legal in restore input; keep them as written.
                    None => self.option(module, neg, opt, v),
                }
            }
            "--ctstate" | "--state" => {
                let states = v.split(',').map(|x| self.text(x)).collect();
                self.push(module, neg, MatchKind::ConnState(states));
            }
            "--src-type" | "--dst-type" => {
                let sel = AddrTypeSel {
                    negated: neg,
                    types: v.split(',').map(str::to_string).collect(),
                };
                if let Some(MatchKind::AddrType(a)) = self.instance_kind(instance) {
                    if opt == "--src-type" {
                        a.src_type = Some(sel);
                    } else {
                        a.dst_type = Some(sel);
                    }
                }
            }
            "--icmp-type" | "--icmpv6-type" => {
                let t = self.text(v);
                self.push(module, neg, MatchKind::IcmpType(t))
            }
            "--physdev-in" | "--physdev-out" => {
                let kind = MatchKind::Physdev {
                    out: opt == "--physdev-out",
                    name: self.text(v),
                };
                self.push(module, neg, kind);
            }
            _ => self.option(module, neg, opt, v),
        }
        next
    }

    fn option(&mut self, module: Option<Known>, neg: bool, name: &str, arg: &str) {
        let kind = MatchKind::Option {
            name: self.text(name),
            args: vec![self.text(arg)],
        };
        self.push(module, neg, kind);
    }

    fn instance_kind(&mut self, instance: Option<usize>) -> Option<&mut MatchKind> {
        instance
            .and_then(|i| self.matches.get_mut(i))
            .map(|m| &mut m.kind)
    }
}

/// Target extensions (and standard verdicts) known to iptables; a `-j NAME` with any other
/// name and no arguments is a jump to a user chain.
fn is_known_target(name: &str) -> bool {
    known_target(name).is_some()
}

/// A known target's name as a `'static` string (no allocation per rule for `ACCEPT`, …).
fn known_target(name: &str) -> Option<&'static str> {
    let n = match name {
        "ACCEPT" => "ACCEPT",
        "DROP" => "DROP",
        "RETURN" => "RETURN",
        "QUEUE" => "QUEUE",
        "NFQUEUE" => "NFQUEUE",
        "MARK" => "MARK",
        "CONNMARK" => "CONNMARK",
        "LOG" => "LOG",
        "NFLOG" => "NFLOG",
        "ULOG" => "ULOG",
        "MASQUERADE" => "MASQUERADE",
        "DNAT" => "DNAT",
        "SNAT" => "SNAT",
        "REDIRECT" => "REDIRECT",
        "NETMAP" => "NETMAP",
        "REJECT" => "REJECT",
        "CT" => "CT",
        "NOTRACK" => "NOTRACK",
        "TRACE" => "TRACE",
        "TCPMSS" => "TCPMSS",
        "TCPOPTSTRIP" => "TCPOPTSTRIP",
        "CLASSIFY" => "CLASSIFY",
        "DSCP" => "DSCP",
        "TOS" => "TOS",
        "TTL" => "TTL",
        "HL" => "HL",
        "SET" => "SET",
        "CHECKSUM" => "CHECKSUM",
        "AUDIT" => "AUDIT",
        "TEE" => "TEE",
        "TPROXY" => "TPROXY",
        "SECMARK" => "SECMARK",
        "CONNSECMARK" => "CONNSECMARK",
        "IDLETIMER" => "IDLETIMER",
        "LED" => "LED",
        "RATEEST" => "RATEEST",
        "HMARK" => "HMARK",
        "SYNPROXY" => "SYNPROXY",
        "CLUSTERIP" => "CLUSTERIP",
        _ => return None,
    };
    Some(n)
}

fn parse_target(name: &str, goto: bool, args: &[Tok<'_>], sp: &mut SpecParser<'_, '_>) -> Target {
    let base = sp.base;
    // Value of option `o` among the args.
    let arg = |o: &str| -> Option<&str> {
        args.iter()
            .position(|t| t.is(o))
            .and_then(|p| args.get(p + 1))
            .map(|t| t.s)
    };
    let val = |o: &str| arg(o).map(|v| Str::within(base, v));
    let has = |o: &str| args.iter().any(|t| t.is(o));
    let num = |o: &str| arg(o).and_then(|v| v.parse::<u32>().ok());
    let kind = match name {
        "ACCEPT" => TargetKind::Accept,
        "DROP" => TargetKind::Drop,
        "RETURN" => TargetKind::Return,
        "QUEUE" => TargetKind::Queue,
        "MARK" => {
            let ops = [
                ("--set-xmark", MarkOp::SetXmark),
                ("--set-mark", MarkOp::SetMark),
                ("--or-mark", MarkOp::OrMark),
                ("--and-mark", MarkOp::AndMark),
                ("--xor-mark", MarkOp::XorMark),
            ];
            let found = ops.iter().find_map(|(o, op)| arg(o).map(|v| (*op, v)));
            match found
                .as_ref()
                .and_then(|(op, v)| parse_mark(v).map(|(value, mask)| (*op, value, mask)))
            {
                Some((op, value, mask)) => TargetKind::Mark(MarkTarget { op, value, mask }),
                None => {
                    sp.err("MARK target without a readable mark option");
                    TargetKind::Other
                }
            }
        }
        "LOG" => TargetKind::Log(Box::new(LogTarget {
            prefix: val("--log-prefix"),
            level: val("--log-level"),
        })),
        "NFLOG" => TargetKind::Nflog(Box::new(NflogTarget {
            group: num("--nflog-group"),
            prefix: val("--nflog-prefix"),
            range: num("--nflog-range"),
            size: num("--nflog-size"),
            threshold: num("--nflog-threshold"),
        })),
        "MASQUERADE" => TargetKind::Masquerade {
            random: has("--random"),
            random_fully: has("--random-fully"),
            to_ports: val("--to-ports"),
        },
        "DNAT" => TargetKind::Dnat {
            to: val("--to-destination").or_else(|| val("--to")),
        },
        "SNAT" => TargetKind::Snat {
            to: val("--to-source").or_else(|| val("--to")),
        },
        "REJECT" => TargetKind::Reject {
            with: val("--reject-with"),
        },
        "CT" => TargetKind::Ct {
            notrack: has("--notrack"),
        },
        "NOTRACK" => TargetKind::Notrack,
        _ if !is_known_target(name) && args.is_empty() => TargetKind::Chain,
        _ => TargetKind::Other,
    };
    Target {
        name: Str::within(base, name),
        goto,
        args: to_strs(base, args).into(),
        kind,
    }
}

// ---------------------------------------------------------------------------------------------
// iptables-save / restore lines
// ---------------------------------------------------------------------------------------------

/// Parse `iptables-save` output (or restore input, or `iptables -S` output). A text whose
/// first line is a listing's `Chain X (…)` header is handed to [`parse_list`].
///
/// The dump keeps one copy of `text`, which its rules' texts are ranges of; a caller that
/// holds the text in an `Arc` already can share it with [`parse_shared`].
pub fn parse(text: &str) -> Dump {
    if looks_like_listing(text) {
        return parse_list(text);
    }
    parse_shared(&Arc::from(text))
}

/// [`parse`] of a shared text: the rules' texts are ranges of `text` itself, not of a copy.
pub fn parse_shared(text: &Arc<str>) -> Dump {
    if looks_like_listing(text) {
        return parse_list(text);
    }
    let mut p = SaveParser {
        shared: Arc::new(Arc::clone(text)),
        dump: Dump::default(),
        prefix_mode: detect_paste_prefix(text),
        current: None,
        s_style: false,
        toks: Vec::with_capacity(64),
        last_chain: None,
        pending: Vec::new(),
        match_buf: Vec::with_capacity(16),
        comment_buf: Vec::with_capacity(4),
    };
    for (n, raw) in numbered_lines(text, 1) {
        p.line(n, raw);
    }
    p.finish()
}

/// The first line that is not blank and not a shell prompt (`$ iptables-save`).
fn first_content_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('$'))
}

fn looks_like_listing(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('$'))
        .take(1)
        .any(|l| l.starts_with("Chain ") && l.ends_with(')'))
}

/// A dump pasted with `# ` before every line: the first line is then `# # Generated…`,
/// `# *filter`, `# :CHAIN`, `# -A …`. Only then are `#` prefixes stripped, so commented-out
/// rules in an ordinary rules file stay comments.
fn detect_paste_prefix(text: &str) -> bool {
    let Some(first) = first_content_line(text) else {
        return false;
    };
    let Some(rest) = first.strip_prefix('#') else {
        return false;
    };
    let rest = rest.trim_start();
    rest.starts_with('#')
        || rest.starts_with('*')
        || rest.starts_with(':')
        || rest.starts_with("-A ")
        || rest.starts_with('[')
        || rest == "COMMIT"
}

struct SaveParser {
    /// The whole text, which the rules' texts are ranges of.
    shared: Shared,
    dump: Dump,
    prefix_mode: bool,
    /// Index of the open table section.
    current: Option<usize>,
    /// Saw `-P`/`-N` outside a table: `iptables -S` output, where a missing `*table` is normal.
    s_style: bool,
    /// Kept for its allocation (see [`recycle`]).
    toks: Vec<Tok<'static>>,
    /// (table, chain) of the last rule, to skip the hash lookup for consecutive rules.
    last_chain: Option<(usize, usize)>,
    /// Rules of `last_chain` not yet moved into it. Collecting a run of rules here and moving
    /// it once gives the chain's vector its exact size, instead of growing it rule by rule.
    pending: Vec<Rule>,
    /// Scratch for one rule's matches and comments, copied out at their exact length.
    match_buf: Vec<Match>,
    comment_buf: Vec<Str>,
}

impl SaveParser {
    fn err(&mut self, line: usize, msg: impl Into<String>) {
        self.dump.errors.push(ParseError::new(line, msg));
    }

    fn line(&mut self, n: usize, raw: &str) {
        // Most lines have nothing to trim; `trim` (Unicode blanks) only for those that may.
        let b = raw.as_bytes();
        let plain = |c: Option<&u8>| c.is_some_and(|&c| c.is_ascii_graphic());
        let mut l = if plain(b.first()) && plain(b.last()) {
            raw
        } else {
            raw.trim()
        };
        if self.prefix_mode
            && let Some(r) = l.strip_prefix('#')
        {
            l = r.trim_start();
        }
        let Some(&b0) = l.as_bytes().first() else {
            return;
        };
        match b0 {
            b'#' => self.comment(n, l),
            b'*' => self.table_line(n, l),
            b':' => self.chain_decl(n, l),
            b'[' => match l.find(']') {
                Some(close) => {
                    let counters = parse_bracket_counters(&l[..=close]);
                    if counters.is_none() {
                        self.err(n, format!("bad counters `{}`", &l[..=close]));
                    }
                    self.command(n, l, l[close + 1..].trim_start(), counters);
                }
                None => self.err(n, "unterminated `[` counters"),
            },
            b'-' => self.command(n, l, l, None),
            _ if l == "COMMIT" => match self.current.take() {
                Some(t) => {
                    if let Some(t) = self.dump.tables.get_mut(t) {
                        t.committed = true;
                    }
                }
                None => self.err(n, "COMMIT outside a table"),
            },
            _ => self.err(n, format!("unrecognised line: {}", ellipsis(l))),
        }
    }

    fn comment(&mut self, n: usize, l: &str) {
        let body = l.trim_start_matches('#').trim();
        if let Some(rest) = body.strip_prefix("Generated by ") {
            if self.dump.header.is_none() {
                self.dump.header = Some(parse_header(n, rest, l));
            }
        } else if !body.starts_with("Completed on") {
            self.dump.comments.push((n, body.to_string()));
        }
    }

    fn table_line(&mut self, n: usize, l: &str) {
        let name = l[1..].trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            self.err(n, format!("bad table line `{l}`"));
            return;
        }
        if let Some(open) = self.current
            && let Some(t) = self.dump.tables.get(open)
        {
            let msg = format!("table `{}` has no COMMIT before `*{name}`", t.name);
            self.err(n, msg);
        }
        self.current = Some(self.dump.tables.len());
        self.dump.tables.push(Table {
            name: name.to_string(),
            line: n,
            ..Table::default()
        });
    }

    /// The open table, or an implicit `filter` table for rules outside any section.
    fn table_for(&mut self, n: usize) -> usize {
        if let Some(t) = self.current {
            return t;
        }
        if !self.s_style {
            self.err(n, "rule outside a `*table` section; assuming `filter`");
        }
        let existing = self.dump.tables.iter().position(|t| t.implicit);
        let t = existing.unwrap_or_else(|| {
            self.dump.tables.push(Table {
                name: "filter".to_string(),
                line: n,
                implicit: true,
                ..Table::default()
            });
            self.dump.tables.len() - 1
        });
        // Later lines of this excerpt go to the same table without repeating the error.
        self.current = Some(t);
        t
    }

    fn chain_decl(&mut self, n: usize, l: &str) {
        let mut parts = l[1..].split_ascii_whitespace();
        let Some(name) = parts.next() else {
            self.err(n, "chain declaration without a name");
            return;
        };
        let policy = parts.next();
        let counters = parts.next();
        if parts.next().is_some() {
            self.err(
                n,
                format!("unexpected text after chain declaration `{name}`"),
            );
        }
        if policy.is_none() {
            self.err(n, format!("chain declaration `{name}` without a policy"));
        }
        let counters = match counters {
            None | Some("-") => None,
            Some(c) => {
                let parsed = parse_bracket_counters(c);
                if parsed.is_none() {
                    self.err(n, format!("bad chain counters `{c}`"));
                }
                parsed
            }
        };
        let t = self.table_for(n);
        let table = &mut self.dump.tables[t];
        let (ci, fresh) = table.chain_index_or_insert(name, n);
        let chain = &mut table.chains[ci];
        let redeclared = !fresh && chain.declared;
        chain.declared = true;
        if fresh || !redeclared {
            chain.line = n;
            chain.policy = policy.filter(|p| *p != "-").map(str::to_string);
            chain.counters = counters;
        }
        if !fresh && !redeclared {
            // Declared after rules used it: keep the rules, note the order problem.
            self.err(n, format!("chain `{name}` declared after rules used it"));
        }
        if redeclared {
            self.err(n, format!("chain `{name}` declared twice"));
        }
    }

    /// A `-X …` line, `l` being the whole line for evidence and `cmd` the part from the
    /// option on (after `[p:b]`).
    fn command(&mut self, n: usize, l: &str, cmd: &str, counters: Option<Counters>) {
        let mut owned = Unquoted::new();
        let mut toks = recycle(std::mem::take(&mut self.toks));
        let closed = tokenize(cmd, &mut toks, &mut owned);
        fill(&mut toks, &owned);
        if !closed {
            self.err(n, "unterminated quote (truncated line?)");
        }
        let op = toks.first().map_or("", |t| t.s);
        match op {
            "-A" | "--append" | "-I" | "--insert" | "-R" | "--replace" | "-D" | "--delete" => {
                self.rule_line(n, l, &toks, counters);
            }
            "-N" | "--new-chain" | "-P" | "--policy" => {
                let Some(name) = toks.get(1) else {
                    self.err(n, format!("{op} needs a chain name"));
                    self.toks = recycle(toks);
                    return;
                };
                if self.current.is_none() {
                    self.s_style = true;
                }
                let t = self.table_for(n);
                let table = &mut self.dump.tables[t];
                let (ci, _) = table.chain_index_or_insert(name.s, n);
                let chain = &mut table.chains[ci];
                chain.declared = true;
                if op == "-P" || op == "--policy" {
                    chain.policy = toks.get(2).map(|p| p.s.to_string());
                }
                if let Some(c) = counters.or_else(|| counters_after_c(&toks)) {
                    chain.counters = Some(c);
                }
            }
            "-X" | "--delete-chain" | "-F" | "--flush" | "-Z" | "--zero" | "-E"
            | "--rename-chain" => {
                let t = self.table_for(n);
                let args = toks.get(1..).unwrap_or(&[]);
                let args = args.iter().map(|t| t.s.to_string()).collect();
                self.dump.tables[t].commands.push(Command {
                    line: n,
                    op: op.to_string(),
                    args,
                });
            }
            _ => self.err(n, format!("unrecognised line: {}", ellipsis(l))),
        }
        self.toks = recycle(toks);
    }

    fn rule_line(&mut self, n: usize, l: &str, toks: &[Tok<'_>], counters: Option<Counters>) {
        let op = toks[0].s;
        let Some(chain_tok) = toks.get(1) else {
            self.err(n, format!("{op} needs a chain name"));
            return;
        };
        let chain_name: &str = chain_tok.s;
        let position = toks.get(2).and_then(|t| {
            if t.quoted {
                None
            } else {
                t.s.parse::<u32>().ok()
            }
        });
        let (rule_op, spec_start) = match op {
            "-A" | "--append" => (RuleOp::Append, 2),
            "-I" | "--insert" => (RuleOp::Insert(position), 2 + position.is_some() as usize),
            "-R" | "--replace" => match position {
                Some(p) => (RuleOp::Replace(p), 3),
                None => {
                    self.err(n, format!("{op} needs a rule number"));
                    (RuleOp::Replace(0), 2)
                }
            },
            _ => (RuleOp::Delete(position), 2 + position.is_some() as usize),
        };
        let t = self.table_for(n);
        let ci = match self.last_chain {
            Some((lt, lc))
                if lt == t
                    && self.dump.tables[t]
                        .chains
                        .get(lc)
                        .is_some_and(|c| c.name == chain_name) =>
            {
                lc
            }
            _ => {
                self.flush_pending();
                let (ci, _) = self.dump.tables[t].chain_index_or_insert(chain_name, n);
                if !self.dump.tables[t].chains[ci].declared && !self.s_style {
                    // Only once per chain: mark it as seen-undeclared by its first rule.
                    if self.dump.tables[t].chains[ci].rules.is_empty() {
                        self.err(
                            n,
                            format!("rule for chain `{chain_name}` that was not declared"),
                        );
                    }
                }
                ci
            }
        };
        self.last_chain = Some((t, ci));

        let spec = toks.get(spec_start..).unwrap_or(&[]);
        self.match_buf.clear();
        self.comment_buf.clear();
        let mut sp = SpecParser {
            line: n,
            base: &self.shared,
            matches: &mut self.match_buf,
            comments: &mut self.comment_buf,
            target: None,
            counters,
            errors: &mut self.dump.errors,
        };
        sp.run(spec);
        let (target, counters) = (sp.target, sp.counters);
        // The scratch vectors keep their capacity; the rule gets its own lists.
        self.pending.push(Rule {
            line: n,
            op: rule_op,
            counters,
            matches: Few::drain_from(&mut self.match_buf),
            target,
            comments: Comments::drain_from(&mut self.comment_buf),
            text: Str::within(&self.shared, l),
        });
    }

    /// Move the pending rules into their chain (before the chain changes, and at the end).
    fn flush_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let chain = self
            .last_chain
            .and_then(|(t, ci)| self.dump.tables.get_mut(t)?.chains.get_mut(ci));
        if let Some(chain) = chain {
            chain.rules.reserve_exact(self.pending.len());
            chain.rules.append(&mut self.pending);
        }
        self.pending.clear();
    }

    fn finish(mut self) -> Dump {
        self.flush_pending();
        if let Some(open) = self.current
            && let Some(t) = self.dump.tables.get(open)
            && !t.implicit
        {
            let last = t
                .chains
                .iter()
                .flat_map(|c| {
                    c.rules
                        .last()
                        .map(|r| r.line)
                        .into_iter()
                        .chain(std::iter::once(c.line))
                })
                .max()
                .unwrap_or(t.line);
            let msg = format!("table `{}` has no COMMIT (truncated dump?)", t.name);
            self.err(last, msg);
        }
        self.dump
    }
}

/// The items of `buf`, moved out into a vector of exactly their number; `buf` is left empty
/// with its capacity.
fn exact<T>(buf: &mut Vec<T>) -> Vec<T> {
    let mut v = Vec::with_capacity(buf.len());
    v.append(buf);
    v
}

/// `-c P B` among command tokens (`iptables -S -v`).
fn counters_after_c(toks: &[Tok<'_>]) -> Option<Counters> {
    let p = toks
        .iter()
        .position(|t| t.is("-c") || t.is("--set-counters"))?;
    Some(Counters {
        packets: toks.get(p + 1)?.s.parse().ok()?,
        bytes: toks.get(p + 2)?.s.parse().ok()?,
    })
}

/// `iptables-save v1.8.7 (nf_tables) on Mon …` (the part after `Generated by `).
fn parse_header(n: usize, rest: &str, whole: &str) -> Header {
    let mut words = rest.split_ascii_whitespace();
    let program = words.next().unwrap_or("").to_string();
    let mut version = None;
    let mut backend = None;
    for w in words.take(3) {
        if w == "on" {
            break;
        }
        if let Some(v) = w.strip_prefix('v')
            && v.starts_with(|c: char| c.is_ascii_digit())
        {
            version = Some(v.to_string());
        } else if w == "(nf_tables)" {
            backend = Some(Backend::NfTables);
        } else if w == "(legacy)" {
            backend = Some(Backend::Legacy);
        }
    }
    if backend.is_none() {
        if program.contains("-nft-") {
            backend = Some(Backend::NfTables);
        } else if program.contains("-legacy-") {
            backend = Some(Backend::Legacy);
        }
    }
    Header {
        line: n,
        program,
        version,
        backend,
        text: whole.to_string(),
    }
}

/// At most 80 characters of a line, for error messages.
fn ellipsis(l: &str) -> String {
    match l.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &l[..i]),
        None => l.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// iptables -L -v -n listings
// ---------------------------------------------------------------------------------------------

/// Parse an `iptables -L [-v] [-n] [-x] [--line-numbers]` listing. A listing does not name its
/// table: the rules go to `filter` (iptables' default) unless a command line in the capture
/// (`$ iptables -t nat -L -n -v`, or the same after `#`) names another; each such line starts
/// a new table section. Counters with `K`/`M`/`G` suffixes are read as multiples of 1000.
/// Matches are read from the listing's free text on a best-effort basis; what is not
/// understood is kept as one [`MatchKind::Unknown`].
pub fn parse_list(text: &str) -> Dump {
    let mut dump = Dump {
        form: Form::List,
        ..Dump::default()
    };
    let mut current: Option<(usize, usize)> = None; // (table, chain)
    let mut layout = Layout::default();
    for (n, raw) in numbered_lines(text, 1) {
        let l = raw.trim();
        if l.is_empty() {
            continue;
        }
        if l.starts_with('$') || l.starts_with('#') {
            let body = l.trim_start_matches(['$', '#']).trim();
            if let Some(name) = listing_command_table(body) {
                dump.tables.push(Table {
                    name: name.to_string(),
                    line: n,
                    ..Table::default()
                });
                current = None;
            } else {
                dump.comments.push((n, body.to_string()));
            }
            continue;
        }
        if let Some(rest) = l.strip_prefix("Chain ") {
            let t = match dump.tables.len() {
                0 => {
                    dump.tables.push(Table {
                        name: "filter".to_string(),
                        line: n,
                        implicit: true,
                        ..Table::default()
                    });
                    0
                }
                len => len - 1,
            };
            let (name, paren) = match rest.split_once(' ') {
                Some((a, b)) => (a, b.trim()),
                None => (rest, ""),
            };
            let table = &mut dump.tables[t];
            let (ci, fresh) = table.chain_index_or_insert(name, n);
            if !fresh {
                dump.errors
                    .push(ParseError::new(n, format!("chain `{name}` listed twice")));
            }
            let chain = &mut table.chains[ci];
            chain.declared = true;
            chain.line = n;
            let inner = paren.trim_start_matches('(').trim_end_matches(')');
            if let Some(p) = inner.strip_prefix("policy ") {
                // `ACCEPT 12 packets, 3456 bytes` or just `ACCEPT`.
                let mut w = p.split_ascii_whitespace();
                chain.policy = w.next().map(str::to_string);
                let pk = w.next().and_then(parse_suffixed);
                let _ = w.next();
                let by = w.next().and_then(parse_suffixed);
                if let (Some(packets), Some(bytes)) = (pk, by) {
                    chain.counters = Some(Counters { packets, bytes });
                }
            } else if let Some(r) = inner
                .strip_suffix("references")
                .or_else(|| inner.strip_suffix("reference"))
            {
                chain.references = r.trim().parse().ok();
            } else {
                dump.errors.push(ParseError::new(
                    n,
                    format!("unrecognised chain header `{l}`"),
                ));
            }
            current = Some((t, ci));
            continue;
        }
        let first = l.split_ascii_whitespace().next().unwrap_or("");
        if matches!(first, "pkts" | "num" | "target") {
            layout = Layout::from_header(l);
            continue;
        }
        let Some((t, ci)) = current else {
            dump.errors.push(ParseError::new(
                n,
                format!("line outside a chain: {}", ellipsis(l)),
            ));
            continue;
        };
        match list_rule(n, l, &layout) {
            Ok(rule) => dump.tables[t].chains[ci].rules.push(rule),
            Err(msg) => {
                dump.errors.push(ParseError::new(n, msg));
                // Keep the line as a rule all the same: it is evidence.
                dump.tables[t].chains[ci].rules.push(Rule {
                    line: n,
                    text: l.into(),
                    ..Rule::default()
                });
            }
        }
    }
    dump
}

/// A captured listing command (`iptables -t nat -L -n -v`, `ip6tables -nvL`) → its table
/// (`filter` when no `-t`).
fn listing_command_table(body: &str) -> Option<&str> {
    let mut w = body.split_ascii_whitespace();
    let prog = w.next()?;
    let prog = if prog == "sudo" { w.next()? } else { prog };
    if !prog.contains("tables") {
        return None;
    }
    let words: Vec<&str> = w.collect();
    let lists = words
        .iter()
        .any(|x| *x == "--list" || (x.starts_with('-') && !x.starts_with("--") && x.contains('L')));
    if !lists {
        return None;
    }
    match words.iter().position(|x| *x == "-t" || *x == "--table") {
        Some(p) => words.get(p + 1).copied(),
        None => Some("filter"),
    }
}

#[derive(Debug, Clone, Copy)]
struct Layout {
    num: bool,
    counters: bool,
    ifaces: bool,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            num: false,
            counters: true,
            ifaces: true,
        }
    }
}

impl Layout {
    fn from_header(l: &str) -> Layout {
        let has = |w: &str| l.split_ascii_whitespace().any(|x| x == w);
        Layout {
            num: has("num"),
            counters: has("pkts"),
            ifaces: has("in"),
        }
    }
}

/// `123`, `45K`, `6M`, `7G` (iptables rounds to thousands above 99999).
fn parse_suffixed(s: &str) -> Option<u64> {
    let (digits, mult) = match s.as_bytes().last()? {
        b'K' => (&s[..s.len() - 1], 1_000u64),
        b'M' => (&s[..s.len() - 1], 1_000_000),
        b'G' => (&s[..s.len() - 1], 1_000_000_000),
        b'T' => (&s[..s.len() - 1], 1_000_000_000_000),
        b'P' => (&s[..s.len() - 1], 1_000_000_000_000_000),
        _ => (s, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

fn is_opt_column(s: &str) -> bool {
    matches!(s, "--" | "-f" | "!f")
}

fn is_addr_column(s: &str) -> bool {
    let s = s.strip_prefix('!').unwrap_or(s);
    s == "anywhere" || parse_address(s).net.is_some()
}

fn list_rule(n: usize, l: &str, layout: &Layout) -> Result<Rule, String> {
    let words: Vec<&str> = l.split_ascii_whitespace().collect();
    let mut i = 0;
    if layout.num {
        i += 1;
    }
    let mut rule = Rule {
        line: n,
        text: l.into(),
        ..Rule::default()
    };
    if layout.counters {
        let pk = words.get(i).and_then(|w| parse_suffixed(w));
        let by = words.get(i + 1).and_then(|w| parse_suffixed(w));
        match (pk, by) {
            (Some(packets), Some(bytes)) => rule.counters = Some(Counters { packets, bytes }),
            _ => return Err(format!("listing rule without counters: {}", ellipsis(l))),
        }
        i += 2;
    }
    let cols = &words[i.min(words.len())..];
    let ifaces = if layout.ifaces { 2 } else { 0 };
    // The target column is blank for rules without one, and ip6tables leaves `opt` blank:
    // try each layout and keep the first whose source/destination columns are addresses.
    let mut found = None;
    for (has_target, has_opt) in [(true, true), (false, true), (true, false), (false, false)] {
        let prot = has_target as usize;
        if has_opt && !cols.get(prot + 1).is_some_and(|w| is_opt_column(w)) {
            continue;
        }
        let src = prot + 1 + has_opt as usize + ifaces;
        if cols.get(src).is_some_and(|w| is_addr_column(w))
            && cols.get(src + 1).is_some_and(|w| is_addr_column(w))
        {
            found = Some((has_target, has_opt, src));
            break;
        }
    }
    let Some((has_target, has_opt, src)) = found else {
        return Err(format!("cannot split listing columns: {}", ellipsis(l)));
    };
    let target_name = if has_target {
        cols.first().copied()
    } else {
        None
    };
    let prot_i = has_target as usize;
    if let Some(p) = cols.get(prot_i) {
        let (neg, p) = strip_bang(p);
        if p != "all" && p != "0" {
            rule.matches.push(Match {
                module: None,
                negated: neg,
                kind: MatchKind::Protocol(Protocol {
                    name: p.into(),
                    number: protocol_number(p),
                }),
            });
        }
    }
    if has_opt
        && cols
            .get(prot_i + 1)
            .is_some_and(|o| o.ends_with('f') && *o != "--")
    {
        let neg = cols.get(prot_i + 1).is_some_and(|o| o.starts_with('!'));
        rule.matches.push(Match {
            module: None,
            negated: neg,
            kind: MatchKind::Fragment,
        });
    }
    if layout.ifaces {
        for (k, out) in [(src - 2, false), (src - 1, true)] {
            if let Some(w) = cols.get(k) {
                let (neg, w) = strip_bang(w);
                if w != "*" && w != "any" {
                    let kind = if out {
                        MatchKind::OutInterface(w.into())
                    } else {
                        MatchKind::InInterface(w.into())
                    };
                    rule.matches.push(Match {
                        module: None,
                        negated: neg,
                        kind,
                    });
                }
            }
        }
    }
    for (k, dst) in [(src, false), (src + 1, true)] {
        if let Some(w) = cols.get(k) {
            let (neg, w) = strip_bang(w);
            let a = parse_address(w);
            let any = w == "anywhere" || a.net.is_some_and(|n| n.prefix_len() == 0);
            if !any {
                let kind = if dst {
                    MatchKind::Destination(a)
                } else {
                    MatchKind::Source(a)
                };
                rule.matches.push(Match {
                    module: None,
                    negated: neg,
                    kind,
                });
            }
        }
    }
    // The free text after the destination column, located by its byte offset in the line.
    let rest = cols
        .get(src + 2)
        .map(|w| {
            let off = w.as_ptr() as usize - l.as_ptr() as usize;
            l.get(off..).unwrap_or("")
        })
        .unwrap_or("");
    list_rest(rest, &mut rule, target_name);
    Ok(rule)
}

fn strip_bang(s: &str) -> (bool, &str) {
    match s.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, s),
    }
}

/// The free-text part of a listing rule: `/* comment */`, `match-set X src`, `mark match …`,
/// `tcp dpt:80`, `ctstate …`, `[goto]`, target details.
fn list_rest(rest: &str, rule: &mut Rule, target_name: Option<&str>) {
    // Comments first: they may contain anything.
    let mut plain = String::new();
    let mut s = rest;
    while let Some(open) = s.find("/*") {
        let Some(close_rel) = s[open + 2..].find("*/") else {
            break;
        };
        plain.push_str(&s[..open]);
        plain.push(' ');
        rule.comments
            .push(s[open + 2..open + 2 + close_rel].trim().into());
        s = &s[open + 2 + close_rel + 2..];
    }
    plain.push_str(s);
    let mut local: Vec<Tok<'_>> = Vec::new();
    let mut owned = Unquoted::new();
    let _ = tokenize(&plain, &mut local, &mut owned);
    fill(&mut local, &owned);

    let mut goto = false;
    let mut unknown: Vec<Str> = Vec::new();
    let mut target_kind: Option<TargetKind> = None;
    let mut target_args: Vec<Str> = Vec::new();
    let mut i = 0;
    let mut neg = false;
    let mut proto_module: Option<Known> = None;
    let w = |k: usize| local.get(k).map(|t| t.s);
    while i < local.len() {
        let t = local[i].s;
        match t {
            "!" => {
                neg = true;
                i += 1;
                continue;
            }
            "[goto]" => goto = true,
            "match-set" => {
                if let (Some(name), Some(flags)) = (w(i + 1), w(i + 2)) {
                    let dirs = flags
                        .split(',')
                        .filter_map(|f| match f {
                            "src" => Some(SetDir::Src),
                            "dst" => Some(SetDir::Dst),
                            _ => None,
                        })
                        .collect();
                    rule.matches.push(Match {
                        module: Some("set".into()),
                        negated: neg,
                        kind: MatchKind::Set(SetMatch {
                            name: name.into(),
                            dirs,
                        }),
                    });
                    i += 3;
                    neg = false;
                    continue;
                }
                unknown.push(t.into());
            }
            "mark" if w(i + 1) == Some("match") => {
                let mut k = i + 2;
                let mut mneg = neg;
                if w(k) == Some("!") {
                    mneg = true;
                    k += 1;
                }
                let v = w(k).unwrap_or("");
                let (bang, v) = strip_bang(v);
                if let Some((value, mask)) = parse_mark(v) {
                    rule.matches.push(Match {
                        module: Some("mark".into()),
                        negated: mneg || bang,
                        kind: MatchKind::Mark { value, mask },
                    });
                    i = k + 1;
                    neg = false;
                    continue;
                }
                unknown.push(t.into());
            }
            "multiport" if matches!(w(i + 1), Some("dports" | "sports" | "ports")) => {
                let dir = match w(i + 1) {
                    Some("dports") => PortDir::Dst,
                    Some("sports") => PortDir::Src,
                    _ => PortDir::Either,
                };
                let mut k = i + 2;
                let mut pneg = neg;
                if w(k) == Some("!") {
                    pneg = true;
                    k += 1;
                }
                let (bang, v) = strip_bang(w(k).unwrap_or(""));
                if let Some(ports) = parse_ports(v) {
                    rule.matches.push(Match {
                        module: Some("multiport".into()),
                        negated: pneg || bang,
                        kind: MatchKind::Ports { dir, ports },
                    });
                    i = k + 1;
                    neg = false;
                    continue;
                }
                unknown.push(t.into());
            }
            "tcp" | "udp" | "sctp" | "udplite" | "dccp" => proto_module = Known::from_name(t),
            "ctstate" | "state" if w(i + 1).is_some() => {
                let states = w(i + 1).unwrap_or("").split(',').map(Str::from).collect();
                let module = if t == "ctstate" { "conntrack" } else { "state" };
                rule.matches.push(Match {
                    module: Some(module.into()),
                    negated: neg,
                    kind: MatchKind::ConnState(states),
                });
                i += 2;
                neg = false;
                continue;
            }
            _ if proto_module.is_some() && (t.starts_with("dpt") || t.starts_with("spt")) => {
                // `dpt:80`, `dpts:1024:65535`, `spt:!53`.
                let dir = if t.starts_with('d') {
                    PortDir::Dst
                } else {
                    PortDir::Src
                };
                let v = t.split_once(':').map(|(_, v)| v).unwrap_or("");
                let (bang, v) = strip_bang(v);
                match parse_ports(v) {
                    Some(ports) => rule.matches.push(Match {
                        module: proto_module.map(Module::known),
                        negated: neg || bang,
                        kind: MatchKind::Ports { dir, ports },
                    }),
                    None => unknown.push(t.into()),
                }
            }
            "MARK" if target_name == Some("MARK") => {
                let op = w(i + 1).unwrap_or("");
                let v = w(i + 2).unwrap_or("");
                let parsed = parse_mark(v).map(|(value, mask)| match op {
                    "and" => MarkTarget {
                        op: MarkOp::AndMark,
                        value,
                        mask: None,
                    },
                    "or" => MarkTarget {
                        op: MarkOp::OrMark,
                        value,
                        mask: None,
                    },
                    "xor" => MarkTarget {
                        op: MarkOp::XorMark,
                        value,
                        mask: None,
                    },
                    "set" => MarkTarget {
                        op: MarkOp::SetXmark,
                        value,
                        mask: Some(u32::MAX),
                    },
                    _ => MarkTarget {
                        op: MarkOp::SetXmark,
                        value,
                        mask,
                    },
                });
                if let Some(m) = parsed {
                    target_kind = Some(TargetKind::Mark(m));
                    target_args = vec![op.into(), v.into()];
                    i += 3;
                    continue;
                }
                unknown.push(t.into());
            }
            "reject-with" if w(i + 1).is_some() => {
                target_kind = Some(TargetKind::Reject {
                    with: w(i + 1).map(Str::from),
                });
                i += 2;
                continue;
            }
            _ if t.starts_with("to:") && matches!(target_name, Some("DNAT" | "SNAT")) => {
                let to = Some(Str::from(&t[3..]));
                target_kind = Some(if target_name == Some("DNAT") {
                    TargetKind::Dnat { to }
                } else {
                    TargetKind::Snat { to }
                });
            }
            "random-fully" | "random" | "masq" | "ports:" if target_name == Some("MASQUERADE") => {
                target_args.push(t.into());
            }
            _ => unknown.push(t.into()),
        }
        neg = false;
        i += 1;
    }
    if !unknown.is_empty() {
        rule.matches.push(Match {
            module: None,
            negated: false,
            kind: MatchKind::Unknown { args: unknown },
        });
    }
    if let Some(name) = target_name {
        let kind = match target_kind {
            Some(k) => k,
            None if name == "MASQUERADE" => TargetKind::Masquerade {
                random: target_args.iter().any(|a| a == "random"),
                random_fully: target_args.iter().any(|a| a == "random-fully"),
                to_ports: target_args
                    .iter()
                    .position(|a| a == "ports:")
                    .and_then(|p| target_args.get(p + 1).cloned()),
            },
            None => match name {
                "ACCEPT" => TargetKind::Accept,
                "DROP" => TargetKind::Drop,
                "RETURN" => TargetKind::Return,
                "QUEUE" => TargetKind::Queue,
                "NOTRACK" => TargetKind::Notrack,
                "LOG" => TargetKind::Log(Box::new(LogTarget {
                    prefix: None,
                    level: None,
                })),
                "REJECT" => TargetKind::Reject { with: None },
                _ if !is_known_target(name) => TargetKind::Chain,
                _ => TargetKind::Other,
            },
        };
        rule.target = Some(Target {
            name: name.into(),
            goto,
            args: target_args.into(),
            kind,
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Unit tests (integration tests with fixtures are in tests/parse_iptables.rs)
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        toks_fast(s).0.into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn tokenizer_unquotes_and_unescapes_like_iptables_restore() {
        assert_eq!(
            toks(r#"-m comment --comment "a \"b\" c\\d""#),
            vec!["-m", "comment", "--comment", r#"a "b" c\d"#]
        );
        assert_eq!(toks("  -j   ACCEPT\t"), vec!["-j", "ACCEPT"]);
        assert_eq!(toks(r#"--comment """#), vec!["--comment", ""]);
    }

    #[test]
    fn tokenizer_reports_an_unterminated_quote_and_keeps_the_rest() {
        let (v, closed) = toks_fast(r#"--comment "cali:abc def"#);
        assert!(!closed);
        assert_eq!(v[1].0, "cali:abc def");
    }

    #[test]
    fn tokenizer_survives_an_escape_before_a_multibyte_char() {
        assert_eq!(toks("\"a\\é b\"").len(), 1);
    }

    /// Every token by the general path only, as the tokenizer did before its fast path.
    fn toks_general(s: &str) -> (Vec<(String, bool)>, bool) {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut closed = true;
        let mut i = 0;
        loop {
            while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
                i += 1;
            }
            if i >= b.len() {
                break;
            }
            let (t, quoted, next, ok) = token_general(s, i);
            out.push((t.into_owned(), quoted));
            closed &= ok;
            i = next;
        }
        (out, closed)
    }

    fn toks_fast(s: &str) -> (Vec<(String, bool)>, bool) {
        let mut v = Vec::new();
        let mut owned = Unquoted::new();
        let closed = tokenize(s, &mut v, &mut owned);
        fill(&mut v, &owned);
        let out = v.iter().map(|t| (t.s.to_string(), t.quoted)).collect();
        (out, closed)
    }

    #[test]
    fn the_fast_tokenizer_path_agrees_with_the_general_one() {
        for line in [
            r#"-A cali-fw-x -m comment --comment "cali:abc" -j DROP"#,
            r#"-A X -m comment --comment "Quote \"inside\" and back\\slash" -j ACCEPT"#,
            r#"-A X ! -s 10.0.0.0/8 -m set ! --match-set s src -j RETURN"#,
            "  -A\tX   -j  ACCEPT \t ",
            r#"-A X -m comment --comment "" -j ACCEPT"#,
            r#"-A X -m comment --comment ""x -j ACCEPT"#,
            r#"-A X -m comment --comment a"b c"d -j ACCEPT"#,
            r#"-A X -m comment --comment "a"b -j ACCEPT"#,
            r#"-A X -m comment --comment "a""b" -j ACCEPT"#,
            r#"-A X -m comment --comment "unterminated"#,
            r#"-A X -m comment --comment "ends in a backslash\"#,
            r#"-A X -m comment --comment "tab	inside" -j ACCEPT"#,
            "-A X -m comment --comment \"Politique réseau « défaut »\" -j ACCEPT",
            "-A X -m comment --comment Größe -j ACCEPT",
            "-A X -m comment --comment \"a\\é b\"",
            "\"",
            "\"\"",
            "x\"",
            "",
            "   ",
        ] {
            assert_eq!(toks_fast(line), toks_general(line), "{line}");
        }
    }

    #[test]
    fn the_chunked_tokenizer_agrees_with_the_general_one_at_every_alignment() {
        // Every string of up to five characters over blanks, quotes, escapes, `!`, a
        // multi-byte char and a word char, behind 0 to 8 bytes of word so that each character
        // falls at every position of an eight-byte chunk, and at a chunk's tail.
        let alphabet = [" ", "\t", "\"", "\\", "!", "é", "a"];
        let mut words = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..5 {
            last = last
                .iter()
                .flat_map(|w| alphabet.iter().map(move |c| format!("{w}{c}")))
                .collect();
            words.extend(last.iter().cloned());
        }
        for w in &words {
            for pad in 0..=8 {
                let line = format!("{}{w}", "x".repeat(pad));
                assert_eq!(toks_fast(&line), toks_general(&line), "{line:?}");
                let line = format!("{w}{} -j ACCEPT", "y".repeat(pad));
                assert_eq!(toks_fast(&line), toks_general(&line), "{line:?}");
            }
        }
    }

    #[test]
    fn numbers_read_like_the_standard_parsers() {
        let digits = ["0", "1", "9", "a", "f", "F", "g", "+", "-", "x", " "];
        let mut all = vec![String::new()];
        let mut frontier = vec![String::new()];
        for _ in 0..4 {
            frontier = frontier
                .iter()
                .flat_map(|w| digits.iter().map(move |d| format!("{w}{d}")))
                .collect();
            all.extend(frontier.iter().cloned());
        }
        all.extend(
            [
                "4294967295",
                "4294967296",
                "04294967295",
                "99999999999",
                "0xffffffff",
                "0x100000000",
                "0x0ffffffff",
                "0XFFFF",
                "0x",
                "0x+1",
                "+4294967295",
                "0xfffffffff",
                "123456789",
                "1234567890",
            ]
            .map(String::from),
        );
        for s in &all {
            let std = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                Some(h) => u32::from_str_radix(h, 16).ok(),
                None => s.parse::<u32>().ok(),
            };
            assert_eq!(parse_u32_auto(s), std, "{s:?}");
        }
    }

    #[test]
    fn core_options_are_told_apart_exactly() {
        let all = [
            ("-p", Core::Protocol),
            ("--protocol", Core::Protocol),
            ("-s", Core::Source),
            ("--source", Core::Source),
            ("--src", Core::Source),
            ("-d", Core::Destination),
            ("--destination", Core::Destination),
            ("--dst", Core::Destination),
            ("-i", Core::InInterface),
            ("--in-interface", Core::InInterface),
            ("-o", Core::OutInterface),
            ("--out-interface", Core::OutInterface),
            ("-f", Core::Fragment),
            ("--fragment", Core::Fragment),
            ("-m", Core::Match),
            ("--match", Core::Match),
            ("-j", Core::Jump),
            ("--jump", Core::Jump),
            ("-g", Core::Goto),
            ("--goto", Core::Goto),
            ("-c", Core::Counters),
            ("--set-counters", Core::Counters),
        ];
        for (s, c) in all {
            assert_eq!(core_option(s), Some(c), "{s}");
        }
        for s in [
            "",
            "-",
            "--",
            "p",
            "-P",
            "-x",
            "--p",
            "-pp",
            "--Protocol",
            "--sport",
            "--dport",
            "--comment",
            "--mark",
            "-A",
            "!",
            "--in-interface=eth0",
            "—p",
        ] {
            assert_eq!(core_option(s), None, "{s}");
        }
    }

    #[test]
    fn known_modules_round_trip_through_their_names() {
        for name in [
            "comment",
            "set",
            "mark",
            "multiport",
            "tcp",
            "udp",
            "sctp",
            "udplite",
            "dccp",
            "conntrack",
            "state",
            "addrtype",
            "rpfilter",
            "icmp",
            "icmp6",
            "icmpv6",
            "physdev",
        ] {
            let k = Known::from_name(name).expect(name);
            assert_eq!(k.name(), name);
            assert_eq!(Module::from(name), Module::known(k));
            assert_eq!(Module::from(name).as_str(), name);
        }
        let other = Module::from("iprange");
        assert_eq!(other.as_str(), "iprange");
        assert!(Known::from_name("Comment").is_none());
        assert_ne!(Module::from("Comment"), Module::from("comment"));
    }

    /// The parts of a rule that do not depend on how its line was spelled.
    fn parts(line: &str) -> (Few<Match>, Option<Target>, Comments) {
        let d = parse(&format!("*filter\n:X - [0:0]\n{line}\nCOMMIT\n"));
        assert!(d.errors.is_empty(), "{line}: {:?}", d.errors);
        let r = d
            .rules()
            .next()
            .map(|(_, _, r)| r.clone())
            .expect("one rule");
        (r.matches, r.target, r.comments)
    }

    #[test]
    fn a_rule_reads_the_same_whichever_tokenizer_path_its_words_take() {
        // Bare and whole-quoted words take the fast path; quotes inside a word, escapes and
        // odd blanks take the general one.
        let fast = parts(
            r#"-A X ! -s 10.0.0.0/8 -m comment --comment "cali:abc" -m comment --comment "Politique « défaut »" -m set ! --match-set cali40s:x src -j MARK --set-xmark 0x10000/0x10000"#,
        );
        let general = parts(
            "-A X  ! \t-s \"10.0.0.0/8\" -m comment --comment cali:\"abc\" -m comment --comment \"Politique\"\" « défaut »\" -m set ! --match-set \"cali40s:\"x src -j MARK --set-xmark 0x10000/0x10000  ",
        );
        assert_eq!(fast, general);
        assert_eq!(fast.2, ["cali:abc", "Politique « défaut »"]);
        assert!(fast.0.iter().all(|m| m.negated));
        let escaped = parts(r#"-A X -m comment --comment "say \"hi\" \\o/" -j ACCEPT"#);
        assert_eq!(escaped.2, [r#"say "hi" \o/"#]);
        assert_eq!(escaped.1.map(|t| t.name), Some("ACCEPT".into()));
    }

    #[test]
    fn set_mark_and_set_xmark_compare_equal_through_xmark() {
        let felix = MarkTarget {
            op: MarkOp::SetMark,
            value: 0x10000,
            mask: Some(0x10000),
        };
        let saved = MarkTarget {
            op: MarkOp::SetXmark,
            value: 0x10000,
            mask: Some(0x10000),
        };
        assert_eq!(felix.xmark(), saved.xmark());
        let clear = MarkTarget {
            op: MarkOp::SetMark,
            value: 0,
            mask: Some(0x30000),
        };
        assert_eq!(clear.xmark(), (0, 0x30000));
        let or = MarkTarget {
            op: MarkOp::OrMark,
            value: 0x2000,
            mask: None,
        };
        assert_eq!(or.xmark(), (0x2000, 0x2000));
    }

    #[test]
    fn suffixed_counters_are_thousands() {
        assert_eq!(parse_suffixed("567K"), Some(567_000));
        assert_eq!(parse_suffixed("12M"), Some(12_000_000));
        assert_eq!(parse_suffixed("42"), Some(42));
        assert_eq!(parse_suffixed("x"), None);
        assert_eq!(parse_suffixed(""), None);
    }

    #[test]
    fn addresses_accept_cidr_bare_and_dotted_masks() {
        assert_eq!(parse_address("10.0.0.0/8").net, "10.0.0.0/8".parse().ok());
        assert_eq!(
            parse_address("192.168.0.1").net,
            "192.168.0.1/32".parse().ok()
        );
        assert_eq!(
            parse_address("10.0.0.0/255.255.0.0").net,
            "10.0.0.0/16".parse().ok()
        );
        assert_eq!(parse_address("fd00::1").net, "fd00::1/128".parse().ok());
        assert_eq!(parse_address("example.com").net, None);
    }

    #[test]
    fn interface_wildcards_match_prefixes() {
        assert!(iface_matches("cali+", "cali1234"));
        assert!(iface_matches("+", "eth0"));
        assert!(!iface_matches("cali+", "eth0"));
        assert!(iface_matches("eth0", "eth0"));
        assert!(!iface_matches("eth0", "eth01"));
    }

    #[test]
    fn iptables_s_output_needs_no_table_line() {
        let d =
            parse("-P INPUT ACCEPT\n-N cali-x\n-A INPUT -j cali-x\n-A cali-x -j ACCEPT -c 5 300\n");
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        let t = d.table("filter").expect("implicit filter table");
        assert!(t.implicit);
        assert_eq!(
            t.chain("INPUT").and_then(|c| c.policy.as_deref()),
            Some("ACCEPT")
        );
        let r = &t.chain("cali-x").expect("chain").rules[0];
        assert_eq!(
            r.counters,
            Some(Counters {
                packets: 5,
                bytes: 300
            })
        );
        assert_eq!(
            r.target.as_ref().map(|t| &t.kind),
            Some(&TargetKind::Accept)
        );
    }

    #[test]
    fn garbage_lines_are_errors_and_parsing_goes_on() {
        let d = parse("*filter\n:A - [0:0]\n$ iptables-save\n-A A -j DROP\nCOMMIT\n");
        assert_eq!(d.records(), 1);
        assert_eq!(d.errors.len(), 1);
        assert_eq!(d.errors[0].line, 3);
    }

    #[test]
    fn odd_inputs_never_panic() {
        for s in [
            "",
            "\n",
            "[",
            "[]",
            "[1:2]",
            "-A",
            "-A X -j",
            "-A X -m",
            "-A X -p",
            ":",
            "*",
            "-A X ! ! !",
            "-A X -m set --match-set",
            "-A X -m set --match-set a",
            "-A X -c 1",
            "\"",
            "-A X \"",
            "-A X -m mark --mark 0xzz -j MARK --set-xmark zz",
            "-R X",
            "-I X 3",
            "-D X 2",
            "Chain X (",
            "Chain X (policy",
            "Chain X (1 references)\n 1 2 3",
            "#",
            "# #",
            "-A X -m tcp --dport ! ",
            "-A X -s 1.2.3.4/99 -j ACCEPT",
            "é",
            "-A é -é é",
        ] {
            let _ = parse(s);
            let _ = parse_list(s);
        }
    }
}
