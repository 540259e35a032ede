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

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::{ParseError, numbered_lines};

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub line: usize,
    /// The element as written: `10.0.0.1`, `10.0.0.0/24`, `10.244.0.17,tcp:53`, …
    pub value: Text,
    /// Per-member options after the element (`timeout 0`, `packets 3 bytes 180`, `nomatch`),
    /// split on blanks, double quotes removed.
    pub options: Vec<String>,
}

/// How many bytes of text a [`Text`] holds without allocating: every IPv4 address and CIDR,
/// and most `addr,proto:port` elements.
const INLINE: usize = 22;

/// A member's text as written. Short texts (nearly every member of a Calico dump) are held
/// inline, so that a million members are not a million allocations; longer ones (most IPv6
/// elements) on the heap. Reads as a `&str` (`Deref`), compares with strings, serialises as
/// a string.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Text(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    /// `len` bytes of `buf` (the rest zero). Only texts of at most `INLINE` bytes, so that
    /// each text has one representation and derived equality is string equality.
    Inline {
        len: u8,
        buf: [u8; INLINE],
    },
    Heap(Box<str>),
}

impl Text {
    pub fn new(s: &str) -> Text {
        if s.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..s.len()].copy_from_slice(s.as_bytes());
            Text(Repr::Inline {
                len: s.len() as u8,
                buf,
            })
        } else {
            Text(Repr::Heap(s.into()))
        }
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, buf } => buf
                .get(..usize::from(*len))
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or_default(),
            Repr::Heap(s) => s,
        }
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text::new(s)
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        if s.len() <= INLINE {
            Text::new(&s)
        } else {
            Text(Repr::Heap(s.into_boxed_str()))
        }
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Member {
    /// The element as a network when it is one address or CIDR (an address becomes /32 or
    /// /128). `None` for ranges, `ip,port` pairs, set names.
    pub fn net(&self) -> Option<IpNet> {
        parse_net(&self.value)
    }

    /// `10.244.0.17,tcp:53` → (address, `tcp`, 53), as in `hash:ip,port` sets.
    pub fn addr_port(&self) -> Option<(IpAddr, &str, u16)> {
        let (ip, rest) = self.value.split_once(',')?;
        let port_part = rest.split(',').next()?;
        let (proto, port) = match port_part.split_once(':') {
            Some((p, n)) => (p, n),
            // ipset lists plain ports as `tcp:N`; restore input may omit the protocol.
            None => ("tcp", port_part),
        };
        Some((ip.parse().ok()?, proto, port.parse().ok()?))
    }
}

fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
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
    index: HashMap<String, usize>,
    errors: Vec<ParseError>,
    /// The `ipset list` block being read, and whether its `Members:` line was seen.
    list_current: Option<usize>,
    in_members: bool,
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
        i
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
        let w = split_words(l);
        let Some((value, options)) = w.split_first() else {
            return;
        };
        if let Some(set) = self.sets.get_mut(i).and_then(Option::as_mut) {
            set.members.push(Member {
                line: n,
                value: Text::new(value),
                options: options.iter().map(|o| o.to_string()).collect(),
            });
        }
    }

    fn restore_line(&mut self, n: usize, l: &str) {
        if l.starts_with('#') {
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
                // Restore input adds to sets that exist in the kernel but not in the text:
                // not an error, the set is just not `declared`.
                let i = match self.index.get(name) {
                    Some(&i) => i,
                    None => self.new_set(name, n, false),
                };
                let options = w[3..]
                    .iter()
                    .filter(|o| !matches!(o.as_ref(), "-exist" | "--exist" | "-!"))
                    .map(|o| o.to_string())
                    .collect();
                if let Some(set) = self.sets.get_mut(i).and_then(Option::as_mut) {
                    set.members.push(Member {
                        line: n,
                        value: Text::new(value),
                        options,
                    });
                }
            }
            "del" | "-D" | "d" => {
                self.seen(Format::Save);
                let (Some(name), Some(value)) = (arg(1), arg(2)) else {
                    self.err(n, "del needs a set name and a member");
                    return;
                };
                if let Some(set) = self.get_mut(name)
                    && let Some(p) = set.members.iter().position(|m| m.value == value)
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
        self.index.remove(from);
        self.index.insert(to.to_string(), i);
        if let Some(s) = self.sets[i].as_mut() {
            s.name = to.to_string();
        }
    }

    fn finish(self) -> Dump {
        let sets: Vec<IpSet> = self.sets.into_iter().flatten().collect();
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

/// Parse `ipset list` or `ipset save` / restore text.
pub fn parse(text: &str) -> Dump {
    let mut p = Parser {
        format: None,
        sets: Vec::new(),
        index: HashMap::new(),
        errors: Vec::new(),
        list_current: None,
        in_members: false,
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
        assert_eq!(s.members[0].value, "10.0.0.2");
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
        let m = Member {
            line: 1,
            value: "10.244.0.17,tcp:53".into(),
            options: vec![],
        };
        assert_eq!(
            m.addr_port(),
            Some(("10.244.0.17".parse().unwrap(), "tcp", 53))
        );
        assert_eq!(m.net(), None);
    }

    #[test]
    fn member_texts_read_back_exactly_whether_short_or_long() {
        for v in [
            "",
            "10.0.0.1",
            "255.255.255.255/32",
            "10.244.123.45,tcp:8080",
            "10.244.123.45,tcp:65535",
            "fd00:1234:5678:9abc:def0:1234:5678:9abc,tcp:443",
            "é,ü:1",
        ] {
            let t = Text::new(v);
            assert_eq!(t.as_str(), v);
            assert_eq!(Text::from(v.to_string()), t);
            assert_eq!(t, v);
            assert_eq!(t.to_string(), v);
            assert_eq!(format!("{t:?}"), format!("{v:?}"));
        }
        assert_ne!(Text::new("10.0.0.1"), Text::new("10.0.0.10"));
        assert!(std::mem::size_of::<Text>() <= 24);
    }

    #[test]
    fn quoted_and_unquoted_members_split_alike() {
        let d = parse(
            "create s hash:ip family inet\nadd s 10.0.0.1 timeout 0\n\
             add s 10.0.0.2 comment \"pod a/b\"\nadd\ts\t10.0.0.3\n",
        );
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        let s = d.set("s").expect("set");
        let got: Vec<(&str, Vec<&str>)> = s
            .members
            .iter()
            .map(|m| {
                (
                    m.value.as_str(),
                    m.options.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("10.0.0.1", vec!["timeout", "0"]),
                ("10.0.0.2", vec!["comment", "pod a/b"]),
                ("10.0.0.3", vec![])
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
