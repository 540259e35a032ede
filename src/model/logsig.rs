//! Felix log records as the log checks compare them: a *signature* (the message with the parts
//! that vary between repeats normalised away, so repeats group together), the Calico objects a
//! record names (chains, IP sets, interfaces, workloads), which dataplane update a failure is
//! about and the restore input line Felix quotes, and Felix's lifecycle lines (start, in sync,
//! resync, death).
//!
//! The message texts are Felix's own (`felix/ipsets/ipsets.go`, `felix/iptables/table.go`,
//! `felix/nftables/*.go`, `felix/dataplane/linux/bpf_ep_mgr.go`, `felix/daemon/daemon.go`,
//! `felix/calc/async_calc_graph.go`). This module classifies records; it does not decide what
//! is a finding, and it reads no files (evidence text comes from what the bundle kept).

use std::collections::{BTreeSet, HashMap};

use super::Model;
use crate::bundle::{Artifact, ArtifactKind};
use crate::parse::Parsed;
use crate::parse::felix_log::{Level, Log, Record};

/// Longest evidence excerpt taken from a log line (restore inputs make lines of kilobytes).
pub const MAX_EXCERPT: usize = 400;

/// One Felix / calico-node log of the bundle.
#[derive(Debug, Clone, Copy)]
pub struct FelixLog<'b> {
    pub node: Option<&'b str>,
    pub artifact: &'b Artifact,
    pub log: &'b Log,
}

impl<'b> FelixLog<'b> {
    pub fn path(&self) -> &'b str {
        &self.artifact.path
    }
}

/// Every parsed Felix log, in bundle order (sorted by path), with or without a node.
pub fn felix_logs<'b>(m: &Model<'b>) -> Vec<FelixLog<'b>> {
    m.bundle
        .of_kind(ArtifactKind::FelixLog)
        .filter_map(|a| match &a.parsed {
            Parsed::FelixLog(log) => Some(FelixLog {
                node: a.node.as_deref(),
                artifact: a,
                log,
            }),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Signatures

/// A message with its variable parts replaced by placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// `Bad return code from '…'.`, `Failed to execute ip(6)tables-restore command` …
    pub text: String,
    /// The message's text before its first variable part: a fixed string that `grep -F`
    /// finds in every record of the group.
    pub literal: String,
}

/// The signature of a record's message (its first line; continuation lines are detail).
/// Quoted values, IP addresses and CIDRs, numbers, hex and UUIDs, `cali-…` chain names,
/// `cali4…`/`cali6…` IP set names and `cali…` interface names become `'…'`, `<ip>`, `<n>`,
/// `<hex>`, `<uuid>`, `<chain>`, `<ipset>` and `<iface>`.
pub fn signature(message: &str) -> Signature {
    let first = first_line(message);
    let (text, literal_end) = signature_text(first);
    Signature {
        text,
        literal: literal(first, literal_end),
    }
}

fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or("").trim()
}

/// The signature text of a message's (trimmed) first line, and the byte offset where its
/// first variable part starts. Checks group thousands of records per log, so ASCII lines (all
/// of Felix's) are scanned as bytes; other lines go through the same steps char by char.
fn signature_text(first: &str) -> (String, Option<usize>) {
    let mut raw = String::with_capacity(first.len() + 8);
    let literal_end = if first.is_ascii() {
        scan_ascii(first, &mut raw)
    } else {
        scan_chars(first, &mut raw)
    };
    let mut text = String::with_capacity(raw.len());
    for word in raw.split_whitespace() {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(word);
    }
    if text.is_empty() {
        text.push_str("(empty message)");
    }
    (text, literal_end)
}

/// The fixed text before a message's first variable part (`grep -F` finds it in every
/// record of the group).
fn literal(first: &str, literal_end: Option<usize>) -> String {
    let literal = match literal_end {
        Some(end) => first.get(..end).unwrap_or(first),
        None => first,
    };
    let literal = literal
        .trim_end()
        .trim_end_matches(['\'', '"', '`', '(', '[', '=', ':', ' '])
        .trim_end();
    let literal = if literal.chars().count() < 8 {
        // Too short to find anything by: the whole first line (up to its first quote, which
        // shells and greps handle badly) is the better needle.
        first.split(['"', '`']).next().unwrap_or(first).trim_end()
    } else {
        literal
    };
    cut(literal, 80).to_string()
}

/// A token: one word of the message, with its sentence punctuation (`tail`) kept apart.
/// `in_word_parens` is the `6` of `ip(6)tables`, part of a name. Returns whether the token
/// was replaced by a placeholder.
fn push_token(out: &mut String, tok: &str, in_word_parens: bool) -> bool {
    let core = tok.trim_end_matches(['.', ',', ':', ';']);
    let tail = &tok[core.len()..];
    let changed = if in_word_parens {
        out.push_str(core);
        false
    } else {
        let before = out.len();
        normalise_token(core, out);
        out[before..] != *core
    };
    out.push_str(tail);
    changed
}

/// Whether `b` opens a quoted value, given the character before it.
fn opens_quote(c: char, prev: Option<char>) -> bool {
    matches!(c, '"' | '\'' | '`') && !prev.is_some_and(|p| p.is_alphanumeric())
}

/// A quote closes at the first matching quote (a backtick also at an apostrophe) that is not
/// followed by a letter or digit.
fn closes_quote(open: char, c: char, next: Option<char>) -> bool {
    (c == open || (open == '`' && c == '\'')) && !next.is_some_and(|n| n.is_alphanumeric())
}

fn scan_ascii(first: &str, out: &mut String) -> Option<usize> {
    let b = first.as_bytes();
    let n = b.len();
    let at = |j: usize| b.get(j).map(|&c| c as char);
    let mut literal_end = None;
    let mut i = 0;
    while i < n {
        let c = b[i] as char;
        let prev = i.checked_sub(1).and_then(at);
        if opens_quote(c, prev)
            && let Some(j) = (i + 1..n).find(|&j| closes_quote(c, b[j] as char, at(j + 1)))
        {
            literal_end.get_or_insert(i);
            out.push(c);
            out.push('…');
            out.push(b[j] as char);
            i = j + 1;
            continue;
        }
        if is_token_char(c) {
            let start = i;
            while i < n && is_token_char(b[i] as char) {
                i += 1;
            }
            let in_word_parens = prev == Some('(')
                && start >= 2
                && b[start - 2].is_ascii_alphabetic()
                && at(i) == Some(')');
            if push_token(out, &first[start..i], in_word_parens) {
                literal_end.get_or_insert(start);
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    literal_end
}

fn scan_chars(first: &str, out: &mut String) -> Option<usize> {
    let chars: Vec<(usize, char)> = first.char_indices().collect();
    let at = |j: usize| chars.get(j).map(|&(_, c)| c);
    let mut literal_end = None;
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        let prev = i.checked_sub(1).and_then(at);
        if opens_quote(c, prev)
            && let Some(j) = (i + 1..chars.len()).find(|&j| closes_quote(c, chars[j].1, at(j + 1)))
        {
            literal_end.get_or_insert(pos);
            out.push(c);
            out.push('…');
            out.push(chars[j].1);
            i = j + 1;
            continue;
        }
        if is_token_char(c) {
            let start = i;
            while i < chars.len() && is_token_char(chars[i].1) {
                i += 1;
            }
            let end = chars.get(i).map_or(first.len(), |(p, _)| *p);
            let in_word_parens = prev == Some('(')
                && start >= 2
                && chars[start - 2].1.is_alphabetic()
                && at(i) == Some(')');
            if push_token(out, &first[pos..end], in_word_parens) {
                literal_end.get_or_insert(pos);
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    literal_end
}

/// Records sharing one signature, in file order.
#[derive(Debug, Clone)]
pub struct Group<'a> {
    pub signature: Signature,
    pub records: Vec<&'a Record>,
}

impl<'a> Group<'a> {
    pub fn first(&self) -> &'a Record {
        self.records[0]
    }

    pub fn last(&self) -> &'a Record {
        self.records[self.records.len() - 1]
    }

    pub fn max_level(&self) -> Level {
        self.records
            .iter()
            .map(|r| r.level)
            .max()
            .unwrap_or(Level::Unknown)
    }

    /// What the group's records name (the first and last few records are read: repeats
    /// name the same things).
    pub fn mentions(&self) -> Mentions {
        let mut m = Mentions::default();
        let n = self.records.len();
        for (i, r) in self.records.iter().enumerate() {
            if i < 10 || i + 10 >= n {
                let one = mentions(r);
                m.chains.extend(one.chains);
                m.ipsets.extend(one.ipsets);
                m.workloads.extend(one.workloads);
                m.words.extend(one.words);
            }
        }
        m
    }
}

/// Records grouped by signature, groups in the order their first record appears.
pub fn group<'a>(records: impl IntoIterator<Item = &'a Record>) -> Vec<Group<'a>> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Group<'a>> = Vec::new();
    for r in records {
        let first = first_line(&r.message);
        let (text, literal_end) = signature_text(first);
        match index.get(&text) {
            Some(&i) => out[i].records.push(r),
            None => {
                index.insert(text.clone(), out.len());
                out.push(Group {
                    signature: Signature {
                        text,
                        literal: literal(first, literal_end),
                    },
                    records: vec![r],
                });
            }
        }
    }
    out
}

fn is_token_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '-' | '+')
}

/// Append `tok` to `out`, or the placeholder that replaces it.
fn normalise_token(tok: &str, out: &mut String) {
    if tok.is_empty() {
        return;
    }
    let placeholder = if is_ip_like(tok) {
        Some("<ip>")
    } else if is_chain_name(tok) {
        Some("<chain>")
    } else if is_cali_iface(tok) {
        Some("<iface>")
    } else if is_ipset_name(tok) {
        Some("<ipset>")
    } else if is_uuid(tok) {
        Some("<uuid>")
    } else if is_hex(tok) {
        Some("<hex>")
    } else {
        None
    };
    if let Some(p) = placeholder {
        out.push_str(p);
        return;
    }
    // `IPv4`, `tunl0`, `v1`: a word with one trailing digit is a name, not a count.
    let b = tok.as_bytes();
    if b.len() >= 2
        && b[b.len() - 1].is_ascii_digit()
        && b[..b.len() - 1].iter().all(u8::is_ascii_alphabetic)
    {
        out.push_str(tok);
        return;
    }
    // Numbers, also dotted (`1.5s`, `v3.30.2`), become one placeholder each. Digits and dots
    // are ASCII, so byte positions next to them are char boundaries.
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            out.push_str(&tok[copied..i]);
            while i < b.len()
                && (b[i].is_ascii_digit()
                    || (b[i] == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)))
            {
                i += 1;
            }
            out.push_str("<n>");
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&tok[copied..]);
}

/// `0x1f`, or a run of at least eight hex digits mixing digits and letters.
fn is_hex(tok: &str) -> bool {
    if let Some(h) = tok.strip_prefix("0x").or_else(|| tok.strip_prefix("0X"))
        && !h.is_empty()
        && h.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return true;
    }
    tok.len() >= 8
        && tok.bytes().all(|b| b.is_ascii_hexdigit())
        && tok.bytes().any(|b| b.is_ascii_digit())
        && tok.bytes().any(|b| b.is_ascii_alphabetic())
}

/// An address, a network, or `addr:port` / `[v6]:port`.
fn is_ip_like(tok: &str) -> bool {
    if !tok.contains(['.', ':']) {
        return false;
    }
    let t = tok.trim_start_matches('[');
    let bare = t.split_once(']').map_or(t, |(a, _)| a);
    if super::endpoints::parse_net(bare).is_some() {
        // `1`, `22` and the like parse as nothing; only real addresses get here, but a
        // lone IPv6-looking word such as `::` is rare enough to accept.
        return bare.contains('.') || bare.contains(':');
    }
    if let Some((a, p)) = bare.rsplit_once(':') {
        return p.bytes().all(|b| b.is_ascii_digit())
            && !p.is_empty()
            && a.parse::<std::net::Ipv4Addr>().is_ok();
    }
    false
}

fn is_uuid(tok: &str) -> bool {
    let parts: Vec<&str> = tok.split('-').collect();
    parts.len() == 5
        && [8, 4, 4, 4, 12]
            .iter()
            .zip(&parts)
            .all(|(n, p)| p.len() == *n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `cali-tw-cali1234…`, `cali-pi-_Hash`, `cali-FORWARD`: a Calico chain name.
pub fn is_chain_name(tok: &str) -> bool {
    tok.strip_prefix("cali-")
        .is_some_and(|r| !r.is_empty() && !r.ends_with('-') && tok.len() <= 256)
}

/// A workload interface as Calico's CNI names it: `cali` + 11 hex digits.
pub fn is_cali_iface(tok: &str) -> bool {
    tok.len() == 15
        && tok.starts_with("cali")
        && tok[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `cali40s:…`, `cali60all-ipam-pools`, nft's `cali40s-…`: a Felix main IP set.
pub fn is_ipset_name(tok: &str) -> bool {
    (tok.starts_with("cali40") || tok.starts_with("cali60"))
        && tok.len() > 6
        && tok.len() <= 31
        && !is_cali_iface(tok)
}

// ---------------------------------------------------------------------------------------
// What a record names

/// Field values that hold whole restore inputs, transactions or dataplane dumps: scanning them
/// would name every chain of the table, not the one the record is about.
const BULK_FIELDS: &[&str] = &[
    "input",
    "tx",
    "output",
    "iptablesState",
    "tableState",
    "config",
];

/// The text a record is about: its message and its field values, bulk fields left out.
pub fn record_text(rec: &Record) -> String {
    let mut s = rec.message.clone();
    for (k, v) in &rec.fields {
        if BULK_FIELDS.contains(&k.as_str()) {
            continue;
        }
        s.push(' ');
        s.push_str(k);
        s.push('=');
        s.push_str(v);
    }
    s
}

/// Chains, IP sets and words a text names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mentions {
    pub chains: BTreeSet<String>,
    pub ipsets: BTreeSet<String>,
    /// Workload IDs (`namespace/pod`) from `WorkloadId:"…"` in Go-printed structs.
    pub workloads: BTreeSet<String>,
    /// Every other token, for matching interface names and endpoint keys.
    pub words: BTreeSet<String>,
}

impl Mentions {
    pub fn add_text(&mut self, text: &str) {
        for tok in text.split(|c: char| !is_token_char(c)) {
            let tok = tok.trim_matches(['.', ',', ':', '-']);
            if tok.is_empty() || tok.len() > 256 {
                continue;
            }
            // nft mode namespaces chains per table: `filter-cali-tw-…`.
            let chain = ["filter-", "raw-", "mangle-", "nat-"]
                .iter()
                .find_map(|p| tok.strip_prefix(p))
                .filter(|r| is_chain_name(r))
                .unwrap_or(tok);
            if is_chain_name(chain) {
                self.chains.insert(chain.to_string());
            } else if is_ipset_name(tok) {
                self.ipsets.insert(tok.to_string());
            } else if self.words.len() < 4096 {
                self.words.insert(tok.to_string());
            }
        }
        for key in ["WorkloadId:\"", "workload_id:\""] {
            let mut rest = text;
            while let Some(at) = rest.find(key) {
                rest = &rest[at + key.len()..];
                if let Some(end) = rest.find('"') {
                    let id = &rest[..end];
                    if !id.is_empty() {
                        self.workloads.insert(id.to_string());
                    }
                    rest = &rest[end..];
                }
            }
        }
    }

    /// The endpoints (by model index) named: by interface or workload ID, on `node` when
    /// it is known (Felix only handles its own node's endpoints).
    pub fn endpoints(&self, m: &Model<'_>, node: Option<&str>) -> Vec<usize> {
        let mut by_iface: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut by_key: HashMap<&str, usize> = HashMap::new();
        for (i, e) in m.endpoints.iter().enumerate() {
            if node.is_some() && e.node.as_deref() != node {
                continue;
            }
            if let Some(iface) = &e.iface {
                by_iface.entry(iface.as_str()).or_default().push(i);
            }
            by_key.insert(e.key.as_str(), i);
        }
        let mut out = BTreeSet::new();
        // Endpoint chains carry the interface: `cali-tw-<iface>`, `cali-fh-<iface>` …
        for c in &self.chains {
            let iface = crate::calico::names::ENDPOINT_CHAIN_PREFIXES
                .iter()
                .filter(|p| c.starts_with(*p))
                .max_by_key(|p| p.len())
                .map(|p| &c[p.len()..]);
            if let Some(v) = iface.and_then(|i| by_iface.get(i)) {
                out.extend(v.iter().copied());
            }
        }
        for w in self.words.iter().chain(&self.workloads) {
            if let Some(v) = by_iface.get(w.as_str()) {
                out.extend(v.iter().copied());
            }
            if let Some(&i) = by_key.get(w.as_str()) {
                out.insert(i);
            }
        }
        out.into_iter().collect()
    }
}

/// What a record names, from its message, its non-bulk fields, and the restore input line
/// its error points at.
pub fn mentions(rec: &Record) -> Mentions {
    let mut m = Mentions::default();
    m.add_text(&record_text(rec));
    if let Some(r) = restore_error(rec)
        && let Some(t) = &r.input_line
    {
        m.add_text(t);
    }
    m
}

// ---------------------------------------------------------------------------------------
// Dataplane update failures

/// Which part of the dataplane Felix failed to update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UpdateKind {
    Iptables,
    Ip6tables,
    Ipset,
    Nftables,
    /// eBPF programs attached to an interface.
    Bpf,
}

impl UpdateKind {
    /// What failed, as a title says it.
    pub fn title(self) -> &'static str {
        match self {
            UpdateKind::Iptables => "iptables-restore",
            UpdateKind::Ip6tables => "ip6tables-restore",
            UpdateKind::Ipset => "ipset restore",
            UpdateKind::Nftables => "nft",
            UpdateKind::Bpf => "eBPF program attach",
        }
    }

    /// What Felix could not bring up to date.
    pub fn what(self) -> &'static str {
        match self {
            UpdateKind::Iptables => "the IPv4 iptables chains",
            UpdateKind::Ip6tables => "the IPv6 ip6tables chains",
            UpdateKind::Ipset => "the IP sets",
            UpdateKind::Nftables => "the nftables chains and sets",
            UpdateKind::Bpf => "the eBPF programs of endpoints",
        }
    }
}

/// The dataplane update a WARNING-or-worse record reports as failed, by Felix's messages:
/// `Failed to execute ip(6)tables-restore command`, `Failed to program iptables, …`,
/// `Failed to complete ipset restore, …`, `Failed to write to ipset restore`,
/// `Bad return code from 'ipset …'.`, `Failed to resync with dataplane`,
/// `Failed to update IP sets…`, `Failed to run nft transaction`, `Failed to program
/// nftables, …`, `Failed to apply policy to endpoint, …`.
pub fn update_failure(rec: &Record) -> Option<UpdateKind> {
    if rec.level < Level::Warning {
        return None;
    }
    let msg = rec.message.lines().next().unwrap_or("");
    // Most warnings are not failures: decide that before lowering the text.
    let failed = contains_ignore_case(msg, "fail") || contains_ignore_case(msg, "bad return code");
    if !failed {
        return None;
    }
    let lower = msg.to_ascii_lowercase();
    if lower.contains("ipset restore")
        || lower.contains("'ipset ")
        || lower.contains("ip sets")
        || lower.contains("ip set")
        || msg.starts_with("Failed to resync with dataplane")
    {
        return Some(UpdateKind::Ipset);
    }
    if lower.contains("tables-restore")
        || lower.starts_with("failed to program iptables")
        || lower.starts_with("failed to program ip6tables")
    {
        let v6 = lower.contains("ip6tables-restore")
            || matches!(rec.field("ipVersion"), Some("0x6" | "6"));
        return Some(if v6 {
            UpdateKind::Ip6tables
        } else {
            UpdateKind::Iptables
        });
    }
    if lower.contains("nft transaction")
        || lower.starts_with("failed to program nftables")
        || lower.starts_with("nftables command failed")
    {
        return Some(UpdateKind::Nftables);
    }
    if lower.starts_with("failed to apply policy to endpoint")
        || lower.starts_with("failed to apply policy to interface")
    {
        return Some(UpdateKind::Bpf);
    }
    None
}

/// The restore error a record quotes: the line of the restore input the tool rejected, that
/// input line when Felix logged the input, and the tool's first line of error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreError {
    pub line: Option<usize>,
    pub input_line: Option<String>,
    pub error: String,
}

/// `ipset v7.11: Error in line 3: …` (stderr), `Error occurred at line: 4` (iptables-restore
/// legacy) or `iptables-restore: line 4 failed` (iptables-nft) in the error output fields.
pub fn restore_error(rec: &Record) -> Option<RestoreError> {
    let text = ["errorOutput", "stderr"]
        .iter()
        .find_map(|k| rec.field(k).filter(|v| !v.trim().is_empty()))?;
    let line = restore_line_number(text);
    let error = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string();
    let input_line = line.and_then(|n| {
        rec.field("input")
            .and_then(|inp| inp.lines().nth(n.checked_sub(1)?))
            .map(|l| l.trim_end().to_string())
    });
    Some(RestoreError {
        line,
        input_line,
        error,
    })
}

fn restore_line_number(text: &str) -> Option<usize> {
    let after = |needle: &str| -> Option<usize> {
        let at = text.find(needle)? + needle.len();
        let digits: String = text[at..]
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    after("Error in line")
        .or_else(|| after("Error occurred at line:"))
        .or_else(|| {
            // iptables-nft: `line 5: RULE_APPEND failed (…)`
            text.lines().find_map(|l| {
                let (n, _) = l.trim_start().strip_prefix("line ")?.split_once(':')?;
                n.parse().ok()
            })
        })
        .or_else(|| {
            // `iptables-restore: line 4 failed`
            text.lines().find_map(|l| {
                let (_, r) = l.split_once("restore: line ")?;
                let (n, rest) = r.split_once(' ')?;
                rest.starts_with("failed").then(|| n.parse().ok())?
            })
        })
}

// ---------------------------------------------------------------------------------------
// Lifecycle

/// `Felix starting up` (daemon.go, first line of every Felix process) or `Successfully loaded
/// configuration.` (the first line some captures begin with).
pub fn is_start_line(rec: &Record) -> bool {
    rec.level == Level::Info
        && (rec.message.starts_with("Felix starting up")
            || rec.message.starts_with("Successfully loaded configuration"))
}

/// The records that start a Felix process: each `Felix starting up`, and a `Successfully
/// loaded configuration.` whose process (pid) had no start line before it.
pub fn starts(log: &Log) -> Vec<&Record> {
    let mut out: Vec<&Record> = Vec::new();
    for r in log.records.iter().filter(|r| is_start_line(r)) {
        let same_process = out.last().is_some_and(|prev| {
            prev.pid.is_some()
                && prev.pid == r.pid
                && prev.message.starts_with("Felix starting up")
                && r.message.starts_with("Successfully loaded configuration")
        });
        if !same_process {
            out.push(r);
        }
    }
    out
}

/// Felix saying its datastore (and so the dataplane it is about to write) is in sync:
/// `Datastore now in sync.` (daemon.go), `Datastore in sync, flushing the dataplane for the
/// first time...` (int_dataplane.go), `First time we've been in sync` (calc graph).
pub fn is_in_sync(rec: &Record) -> bool {
    let m = rec.message.as_str();
    m.starts_with("Datastore now in sync")
        || m.starts_with("Datastore in sync")
        || m.starts_with("First time we've been in sync")
}

/// A record that marks the dataplane for a resync or a retry after a failure: `Detected
/// out-of-sync Calico chain, marking for resync`, `Failed to resync with dataplane`, `Failed
/// to update IP sets. Marking dataplane for resync.`, `Retrying after an ipsets update
/// failure...`, `Failed to program iptables, will retry` … (not the periodic `Summarising …
/// (resync-ipsets-v4)` lines).
pub fn is_resync(rec: &Record) -> bool {
    let m = rec.message.as_str();
    // Every phrase below holds `resync`, starts with `retrying after` or holds `will retry`.
    if !(contains_ignore_case(m, "resync")
        || contains_ignore_case(m, "will retry")
        || m.get(..14)
            .is_some_and(|h| h.eq_ignore_ascii_case("retrying after")))
    {
        return false;
    }
    let lower = m.to_ascii_lowercase();
    [
        "marking for resync",
        "resync with dataplane",
        "marking dataplane for resync",
        "will do partial resync",
        "will do full resync",
    ]
    .iter()
    .any(|n| lower.contains(n))
        || lower.starts_with("retrying after")
        || (lower.contains("will retry") && lower.contains("fail"))
}

/// Whether `hay` holds `needle` (lower-case ASCII) in any ASCII case, as
/// `hay.to_ascii_lowercase().contains(needle)` would say, without the copy.
fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    let Some(&first) = n.first() else {
        return true;
    };
    let mut from = 0;
    while let Some(i) = memchr::memchr2(first, first.to_ascii_uppercase(), &h[from..]) {
        let at = from + i;
        if h.get(at..at + n.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(n))
        {
            return true;
        }
        from = at + 1;
    }
    false
}

/// Why the Felix process ended, when the record says it did: a PANIC or FATAL record, or a
/// Go runtime panic in its text.
pub fn death(rec: &Record) -> Option<String> {
    let first = rec.message.lines().next().unwrap_or("").trim();
    let with_reason = |what: &str| match rec.field("reason").or(rec.field("error")) {
        Some(r) if !r.is_empty() => format!("{what} ({r})"),
        _ => what.to_string(),
    };
    match rec.level {
        Level::Panic => return Some(with_reason(&format!("PANIC: {first}"))),
        Level::Fatal => return Some(with_reason(&format!("FATAL: {first}"))),
        _ => {}
    }
    rec.message
        .lines()
        .find(|l| l.starts_with("panic: ") || l.starts_with("fatal error: "))
        .map(|l| l.trim().to_string())
}

// ---------------------------------------------------------------------------------------
// Showing records

/// The log line of a record as the bundle has it (cut to [`MAX_EXCERPT`]), or rebuilt from
/// the record when the text was not kept.
pub fn excerpt(m: &Model<'_>, path: &str, rec: &Record) -> String {
    let line = crate::checks::line_text(m, path, rec.line).unwrap_or_else(|| {
        let ts = rec
            .ts
            .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f ").to_string())
            .unwrap_or_default();
        let level = level_name(rec.level);
        let file = match (&rec.component, &rec.file, rec.src_line) {
            (Some(c), Some(f), Some(n)) => format!(" {c}/{f} {n}:"),
            (None, Some(f), Some(n)) => format!(" {f} {n}:"),
            _ => String::new(),
        };
        format!(
            "{ts}[{level}]{file} {}",
            rec.message.lines().next().unwrap_or("")
        )
    });
    let cut_line = cut(&line, MAX_EXCERPT);
    if cut_line.len() < line.len() {
        format!("{cut_line}…")
    } else {
        line
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A level as Calico's log header spells it.
pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::Unknown => "(no header)",
        Level::Trace => "TRACE",
        Level::Debug => "DEBUG",
        Level::Info => "INFO",
        Level::Warning => "WARNING",
        Level::Error => "ERROR",
        Level::Fatal => "FATAL",
        Level::Panic => "PANIC",
    }
}

/// A record's time as logs print it and its line, or only the line when it has no time.
pub fn when(rec: &Record) -> String {
    match rec.ts {
        Some(t) => format!("{}, line {}", t.format("%Y-%m-%d %H:%M:%S%.3f"), rec.line),
        None => format!("line {}", rec.line),
    }
}

/// The namespace calico-node runs in: `calico-system` under the operator, else `kube-system`.
pub fn calico_namespace(m: &Model<'_>) -> &'static str {
    let manifest_install = m.resources.cluster_informations.iter().any(|c| {
        !c.item.cluster_type.is_empty() && !c.item.cluster_type.split(',').any(|t| t == "operator")
    });
    if manifest_install {
        "kube-system"
    } else {
        "calico-system"
    }
}

/// `kubectl logs` of calico-node on `node` (the pod found by node name).
pub fn logs_source(m: &Model<'_>, node: Option<&str>) -> String {
    let ns = calico_namespace(m);
    let pod = match node {
        Some(n) => format!(
            "$(kubectl get pods -n {ns} -l k8s-app=calico-node --field-selector spec.nodeName={} -o name)",
            crate::checks::shell_quote(n)
        ),
        None => "<calico-node pod>".to_string(),
    };
    format!("kubectl logs -n {ns} {pod} -c calico-node")
}

/// The command that shows the lines of calico-node's log on `node` containing `needle`.
pub fn logs_command(m: &Model<'_>, node: Option<&str>, needle: &str) -> String {
    format!(
        "{} | grep -F {}",
        logs_source(m, node),
        crate::checks::shell_quote(needle)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::felix_log;

    /// What every signature must satisfy, whatever the message: its literal part is text of
    /// the message, and the signature has no line break.
    fn well_formed(message: &str) {
        let s = signature(message);
        assert!(
            message.contains(&s.literal),
            "{message:?} -> {:?}",
            s.literal
        );
        assert!(!s.text.contains('\n'), "{message:?} -> {:?}", s.text);
    }

    #[test]
    fn tricky_messages_give_well_formed_signatures() {
        for m in [
            "",
            "   ",
            "Failed to execute ip(6)tables-restore command",
            "Bad return code from 'ipset restore'. err=exit status 1",
            "Can't 'do' it, `quoted' and `back` done",
            "it's \"x\"y \"z\" 10.0.0.1:8080 [fd00::1]:53 10.0.0.0/8. cali-fw-cali1234abcd567",
            "cali40s:abcDEF_123 cali60all-ipam-pools cali0123456789a 0x1F 0X1f deadbeef01",
            "v3.30.2 1.5s tunl0 IPv4 x1y2 123e4567-e89b-12d3-a456-426614174000 a-b-c-d-e",
            "élan 'ünï' café:1 10.0.0.1; (6) a(6) a(6)b ('x') end.",
            "trailing quote ' and \" and ` unclosed",
            "tab\there\x0bvt\x0cff  and  spaces\r",
            "line one\nline two 10.0.0.1",
            "::1 :: 1:2 [1.2.3.4] 1.2.3.4:x 300.1.1.1 1.2.3",
        ] {
            well_formed(m);
        }
    }

    #[test]
    fn corpus_log_lines_give_well_formed_signatures() {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
        if !corpus.exists() {
            eprintln!("skipped: shared corpus not present");
            return;
        }
        let mut seen = 0;
        for e in walkdir::WalkDir::new(&corpus).into_iter().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !e.file_type().is_file() || !(name.contains("felix") || name.contains("calico-node"))
            {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            for line in text.lines() {
                well_formed(line);
                seen += 1;
            }
        }
        assert!(seen > 100, "only {seen} corpus log lines found");
    }

    #[test]
    fn case_blind_search_agrees_with_lowering_the_text() {
        for (hay, needle) in [
            ("Failed to X", "fail"),
            ("FAIL", "fail"),
            ("fai", "fail"),
            ("xxFaIlxx", "fail"),
            ("ffail", "fail"),
            ("", "fail"),
            ("abc", ""),
            ("Marking for RESYNC", "resync"),
            ("é Will Retry", "will retry"),
        ] {
            assert_eq!(
                contains_ignore_case(hay, needle),
                hay.to_ascii_lowercase().contains(needle),
                "{hay:?} {needle:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_gives_a_well_formed_signature(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "a", "Z", "7", "0", " ", "\t", "'", "\"", "`", "(", ")", "[", "]", ".", ",",
                ":", ";", "/", "-", "+", "_", "x", "0x", "cali-", "cali40s:", "cali1234567890a",
                "10.0.0.1", "fd00::", "é", "…", "\n", "ip(6)t", "1.5", "v3", "ab12cd34ef",
            ]), 0..24)
        ) {
            well_formed(&parts.concat());
        }
    }

    fn rec(line: &str) -> Record {
        let log = felix_log::parse(line);
        log.records.into_iter().next().expect("a notable record")
    }

    #[test]
    fn signatures_drop_numbers_addresses_quotes_and_calico_names() {
        let a = signature(
            "Failed to add 10.65.0.7/32 to cali40s:8NS3fTg751-Dej4GL4An75l after 3 tries",
        );
        let b = signature(
            "Failed to add 10.65.1.5/32 to cali40s:R2jIwhKxKcpepdexTl9ke3D after 12 tries",
        );
        assert_eq!(a.text, "Failed to add <ip> to <ipset> after <n> tries");
        assert_eq!(a, b);
        assert_eq!(a.literal, "Failed to add");
        let ip6 = signature("Failed to execute ip(6)tables-restore command");
        assert_eq!(ip6.text, "Failed to execute ip(6)tables-restore command");
        assert_eq!(ip6.literal, ip6.text);
        let q = signature("Bad return code from 'ipset restore'.");
        assert_eq!(q.text, "Bad return code from '…'.");
        assert_eq!(q.literal, "Bad return code from");
        assert_eq!(
            signature("Detected out-of-sync Calico chain, marking for resync").text,
            "Detected out-of-sync Calico chain, marking for resync"
        );
        assert_eq!(
            signature("Interface cali6793bd60945 down; chain cali-tw-cali6793bd60945 stale").text,
            "Interface <iface> down; chain <chain> stale"
        );
        assert_eq!(
            signature(
                "container 5f2b0c9d8e7a uid 00000000-0000-4000-8000-000000000001 mark 0x10000"
            )
            .text,
            "container <hex> uid <uuid> mark <hex>"
        );
    }

    #[test]
    fn apostrophes_are_not_quotes_and_version_words_keep_their_digit() {
        let s = signature("Couldn't set IPv4 forwarding, it's read-only");
        assert_eq!(s.text, "Couldn't set IPv4 forwarding, it's read-only");
        assert_eq!(s.literal, "Couldn't set IPv4 forwarding, it's read-only");
    }

    #[test]
    fn the_literal_is_a_substring_of_the_message() {
        for msg in [
            "iptables-legacy-save command failed",
            "Bad return code from 'ipset list'.",
            "Failed to execute ip(6)tables-restore command",
            "Summarising 12 dataplane reconciliation loops over 1m2.1s",
            "x 1",
        ] {
            let s = signature(msg);
            assert!(msg.contains(&s.literal), "{msg:?} -> {:?}", s.literal);
            assert!(!s.literal.is_empty(), "{msg:?}");
        }
    }

    #[test]
    fn an_iptables_restore_failure_quotes_its_input_line() {
        let r = rec(
            "2023-06-02 10:15:31.612 [WARNING][70] felix/table.go 1543: Failed to execute ip(6)tables-restore command error=exit status 1 errorOutput=\"iptables-restore v1.8.4 (legacy): Couldn't load target `cali-pro-_Kd2Zr3dq3V4sO2tkFWX':No such file or directory\\n\\nError occurred at line: 3\\n\" input=\"*filter\\n:cali-fw-cali1b2c3d4e5f6 - -\\n-A cali-fw-cali1b2c3d4e5f6 -m comment --comment \\\"cali:xyz123\\\" --jump cali-pro-_Kd2Zr3dq3V4sO2tkFWX\\nCOMMIT\\n\" ipVersion=0x4 output=\"\" table=\"filter\"\n",
        );
        assert_eq!(update_failure(&r), Some(UpdateKind::Iptables));
        let e = restore_error(&r).expect("restore error");
        assert_eq!(e.line, Some(3));
        assert_eq!(
            e.input_line.as_deref(),
            Some(
                "-A cali-fw-cali1b2c3d4e5f6 -m comment --comment \"cali:xyz123\" --jump cali-pro-_Kd2Zr3dq3V4sO2tkFWX"
            )
        );
        assert!(e.error.contains("Couldn't load target"), "{}", e.error);
        let m = mentions(&r);
        assert!(m.chains.contains("cali-pro-_Kd2Zr3dq3V4sO2tkFWX"), "{m:?}");
        assert!(m.chains.contains("cali-fw-cali1b2c3d4e5f6"), "{m:?}");
    }

    #[test]
    fn ipset_failures_are_classified_and_their_line_found_in_stderr() {
        let r = rec(
            "2026-11-25 14:00:12.345 [WARNING][59] felix/ipsets.go 795: Failed to complete ipset restore, IP sets may be out-of-sync. closeErr=<nil> commitErr=<nil> flushErr=<nil> input=\"create cali40s:abc hash:net family inet maxelem 1048576\\nadd cali40s:abc 10.65.0.7\\nadd cali40s:abc 10.65.0.7\\nCOMMIT\\n\" processErr=exit status 1 stderr=\"ipset v7.11: Error in line 3: Element cannot be added to the set: it's already added\\n\" stdout=\"\" writeErr=<nil>\n",
        );
        assert_eq!(update_failure(&r), Some(UpdateKind::Ipset));
        let e = restore_error(&r).expect("restore error");
        assert_eq!(e.line, Some(3));
        assert_eq!(e.input_line.as_deref(), Some("add cali40s:abc 10.65.0.7"));
        assert!(mentions(&r).ipsets.contains("cali40s:abc"));
        let nft = rec(
            "2025-01-01 00:00:00.000 [ERROR][1] felix/table.go 1080: Failed to run nft transaction error=boom\n",
        );
        assert_eq!(update_failure(&nft), Some(UpdateKind::Nftables));
        let v6 = rec(
            "2025-01-01 00:00:00.000 [WARNING][1] felix/table.go 1466: Failed to execute ip(6)tables-restore command error=exit status 2 ipVersion=0x6\n",
        );
        assert_eq!(update_failure(&v6), Some(UpdateKind::Ip6tables));
        let save = rec(
            "2026-11-25 14:01:40.507 [WARNING][61] felix/table.go 1340: iptables-legacy-save command failed error=exit status 1 table=\"filter\"\n",
        );
        assert_eq!(update_failure(&save), None);
    }

    #[test]
    fn workload_ids_in_go_structs_are_found() {
        let mut m = Mentions::default();
        m.add_text(
            "name=\"enif327a56b833\" wepID=&types.WorkloadEndpointID{OrchestratorId:\"k8s\", WorkloadId:\"calico-system/csi-node-driver-tggmr\", EndpointId:\"eth0\"}",
        );
        assert!(m.workloads.contains("calico-system/csi-node-driver-tggmr"));
        assert!(m.words.contains("enif327a56b833"));
    }

    #[test]
    fn a_second_felix_process_is_a_second_start_but_its_config_line_is_not() {
        let log = felix_log::parse(
            "2023-06-02 10:15:30.201 [INFO][70] felix/daemon.go 133: Felix starting up version=\"v3.26.1\"\n\
             2023-06-02 10:15:30.215 [INFO][70] felix/daemon.go 363: Successfully loaded configuration. version=\"v3.26.1\"\n\
             2023-06-02 10:15:34.001 [PANIC][70] felix/int_dataplane.go 1601: Failed to set up dataplane error=<nil>\n\
             2023-06-02 10:15:35.500 [INFO][82] felix/daemon.go 133: Felix starting up version=\"v3.26.1\"\n\
             2023-06-02 10:15:35.600 [INFO][82] felix/daemon.go 363: Successfully loaded configuration. version=\"v3.26.1\"\n",
        );
        let s = starts(&log);
        assert_eq!(s.iter().map(|r| r.line).collect::<Vec<_>>(), vec![1, 4]);
        assert!(
            death(&log.records[2])
                .is_some_and(|d| d.starts_with("PANIC: Failed to set up dataplane"))
        );
    }
}
