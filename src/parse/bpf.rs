//! eBPF dataplane dumps: `bpftool … -j` JSON (programs, maps, map entries, net attachments;
//! read generically: the element count plus id/name/type of each element), and the text
//! dumps of `calico-node -bpf …`: `policy dump` (both the `// Start of tier …` comment stream
//! and the newer indented `Tier:`/`Policy:`/`Rule:`/`Hit count:` form), `ipsets dump`,
//! `conntrack dump` (the pretty `A -> B [-> C]  Active ago …` form of v3.28+; raw
//! `ConntrackKey{…}` lines are only counted), `nat dump` (frontends and TAB-indented
//! backends), `routes dump`, and the ASCII tables of `counters dump` and `profiling`
//! (wrapped cells joined, a missing first `+` tolerated).
//!
//! [`detect`] tells the variant from the content, so a bundle can recognise a dump whatever
//! its file name. A leading command line (`kubectl exec …`) is kept apart, and text from
//! `<---` to the end of a line (annotations added in documentation) is set aside as an
//! annotation. What a dump means for a flow is decided elsewhere.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::{ParseError, numbered_lines};

/// What kind of dump a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum BpfVariant {
    /// `bpftool … -j` (or any JSON document).
    Json,
    PolicyDump,
    IpsetsDump,
    ConntrackDump,
    NatDump,
    RoutesDump,
    /// `calico-node -bpf counters dump`.
    CountersTable,
    /// `calico-node -bpf profiling …`.
    ProfilingTable,
    /// Another ASCII table.
    Table,
}

/// What the elements of a JSON document are, judged from the first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum JsonKind {
    /// `bpftool prog list -j` (elements have `tag` / `bytes_xlated`).
    Programs,
    /// `bpftool map list -j` (elements have `max_entries`).
    Maps,
    /// `bpftool map dump -j` (elements have `key` and `value`).
    MapEntries,
    /// `bpftool net list -j` (elements have `tc` / `xdp`).
    NetAttachments,
    Other,
}

/// One element of a JSON document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JsonItem {
    /// Line where its document starts.
    pub line: usize,
    pub id: Option<u64>,
    pub name: Option<String>,
    /// bpftool's `type` (`sched_cls`, `hash`, `lpm_trie`, …).
    pub kind: Option<String>,
}

/// An endpoint `addr:port` (IPv6 printed without brackets, so split at the last colon).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Endpoint {
    pub addr: IpAddr,
    pub port: u16,
}

impl Endpoint {
    fn parse(s: &str) -> Option<Endpoint> {
        let s = s.trim().trim_start_matches('[');
        let (a, p) = s.rsplit_once(':')?;
        Some(Endpoint {
            addr: a.trim_end_matches(']').parse().ok()?,
            port: p.parse().ok()?,
        })
    }
}

/// `calico-node -bpf policy dump <iface> <hook>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicyDump {
    pub iface: Option<String>,
    pub hook: Option<String>,
    /// The `Error:` header (empty when there was none).
    pub error: Option<String>,
    pub rules: Vec<PolicyRule>,
    /// `End of tier <name>: <action>` lines: the tier's default action.
    pub tier_ends: Vec<TierEnd>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicyRule {
    pub line: usize,
    pub tier: Option<String>,
    pub policy: Option<String>,
    pub rule_id: Option<String>,
    pub action: Option<String>,
    /// The rule as printed (protobuf text, or the name in the newer form).
    pub text: String,
    /// IP set ids of the `// IPSets …` line or the `Match:` line.
    pub ipset_ids: Vec<u64>,
    pub match_text: Option<String>,
    /// Packets that hit the rule (`count = N` / `Hit count: N`).
    pub count: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierEnd {
    pub line: usize,
    pub tier: String,
    pub action: String,
}

/// `IP set 0x…` with its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpSet {
    pub line: usize,
    pub id: u64,
    /// `(line, member)`: a CIDR, or `addr:port (proto N)`.
    pub members: Vec<(usize, String)>,
}

/// A pretty conntrack dump line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CtEntry {
    pub line: usize,
    /// `TCP`, `UDP`, `ICMP`, `ICMP6`, `Proto-N`.
    pub proto: String,
    pub src: Endpoint,
    /// The destination as the client sent it (the service for NATed flows).
    pub dst: Endpoint,
    /// The backend for NATed flows (`A -> service -> backend`).
    pub backend: Option<Endpoint>,
    /// Go duration since last seen (`1m15.987585857s`).
    pub active_ago: String,
    /// `ESTABLISHED`, `CLOSED`, `RESET`, `SYN-SENT` (TCP only).
    pub state: Option<String>,
    /// `external client, service forwarded to/from …`, `source port changed from …`.
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NatFrontend {
    pub line: usize,
    pub addr: IpAddr,
    pub port: u16,
    pub proto: u8,
    /// Service id; backends with the same id belong to it.
    pub id: u32,
    /// Backend count; -1 for a blackhole (no endpoints).
    pub count: i64,
    pub local: u32,
    pub flags: Option<String>,
    /// `src <cidr>` (load balancer source ranges).
    pub src: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NatBackend {
    pub line: usize,
    pub id: u32,
    pub ordinal: u32,
    /// `None` when printed as `is missing`.
    pub endpoint: Option<Endpoint>,
}

/// `calico-node -bpf routes dump`: `   10.65.0.0/16: remote in-pool nh 10.128.0.4`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BpfRoute {
    pub line: usize,
    pub cidr: IpNet,
    pub flags: String,
}

/// An ASCII table; wrapped cells are joined into the row above.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AsciiTable {
    pub header: Vec<String>,
    pub rows: Vec<TableRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableRow {
    pub line: usize,
    pub end_line: usize,
    pub cells: Vec<String>,
}

impl AsciiTable {
    /// Index of the column whose header is `name` (case-insensitive).
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
    }
}

/// A parsed eBPF dump.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BpfDump {
    pub variant: Option<BpfVariant>,
    /// A command line before the output (`kubectl exec … -- calico-node -bpf nat dump`).
    pub command: Option<(usize, String)>,
    pub json_kind: Option<JsonKind>,
    pub json: Vec<JsonItem>,
    pub policy: Option<PolicyDump>,
    pub ipsets: Vec<IpSet>,
    pub conntrack: Vec<CtEntry>,
    /// Raw `ConntrackKey{…}` lines (pre-v3.28 form or `--raw`), counted only.
    pub conntrack_raw: usize,
    pub nat_frontends: Vec<NatFrontend>,
    pub nat_backends: Vec<NatBackend>,
    pub routes: Vec<BpfRoute>,
    pub table: Option<AsciiTable>,
    /// `Key: value` summary lines (`Total connections: 7`).
    pub summary: Vec<(usize, String, String)>,
    /// `<--- …` annotations, with their line.
    pub annotations: Vec<(usize, String)>,
    pub errors: Vec<ParseError>,
}

impl BpfDump {
    /// Records as the report counts them: JSON elements, policy rules, IP sets, conntrack
    /// entries, NAT frontends, routes or table rows, by variant.
    pub fn records(&self) -> usize {
        match self.variant {
            Some(BpfVariant::Json) => self.json.len(),
            Some(BpfVariant::PolicyDump) => self.policy.as_ref().map_or(0, |p| p.rules.len()),
            Some(BpfVariant::IpsetsDump) => self.ipsets.len(),
            Some(BpfVariant::ConntrackDump) => self.conntrack.len() + self.conntrack_raw,
            Some(BpfVariant::NatDump) => self.nat_frontends.len(),
            Some(BpfVariant::RoutesDump) => self.routes.len(),
            Some(BpfVariant::CountersTable)
            | Some(BpfVariant::ProfilingTable)
            | Some(BpfVariant::Table) => self.table.as_ref().map_or(0, |t| t.rows.len()),
            None => 0,
        }
    }

    /// Backends of the service with NAT id `id`, in ordinal order of the dump.
    pub fn backends_of(&self, id: u32) -> impl Iterator<Item = &NatBackend> {
        self.nat_backends.iter().filter(move |b| b.id == id)
    }
}

/// A line after the command/annotation split.
struct Line<'a> {
    no: usize,
    text: &'a str,
}

/// Split off `<--- …` annotations.
fn strip_annotation(line: &str) -> (&str, Option<&str>) {
    match line.find("<---") {
        Some(i) => (line[..i].trim_end(), Some(line[i..].trim())),
        None => (line, None),
    }
}

fn is_command(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("kubectl ")
        || t.starts_with("$ ")
        || t.starts_with("# ")
        || t.starts_with("calico-node -bpf")
        || t.starts_with("calico-node ")
        || t.starts_with("bpftool ")
        || t.starts_with("sudo ")
}

/// Content lines, the leading command line, and the annotations.
type Split<'a> = (Vec<Line<'a>>, Option<(usize, String)>, Vec<(usize, String)>);

/// Lines of content: annotations split off, a leading command line set aside.
fn content_lines(text: &str) -> Split<'_> {
    let mut lines = Vec::new();
    let mut command = None;
    let mut notes = Vec::new();
    let mut seen_content = false;
    for (no, raw) in numbered_lines(text, 1) {
        let (t, note) = strip_annotation(raw);
        if let Some(n) = note {
            notes.push((no, n.to_string()));
        }
        if !seen_content && t.trim().is_empty() {
            continue;
        }
        if !seen_content && command.is_none() && is_command(t) {
            command = Some((no, t.trim().to_string()));
            continue;
        }
        seen_content = true;
        lines.push(Line { no, text: t });
    }
    (lines, command, notes)
}

/// Tell what dump `text` is, from its content.
pub fn detect(text: &str) -> Option<BpfVariant> {
    let (lines, _, _) = content_lines(text);
    detect_lines(&lines)
}

fn detect_lines(lines: &[Line<'_>]) -> Option<BpfVariant> {
    for l in lines.iter().take(64) {
        let t = l.text.trim();
        if t.is_empty() {
            continue;
        }
        if t.starts_with('[') || t.starts_with('{') {
            return Some(BpfVariant::Json);
        }
        if t.starts_with("IfaceName:") {
            return Some(BpfVariant::PolicyDump);
        }
        if t.starts_with("IP set 0x") || t == "No IP sets found." {
            return Some(BpfVariant::IpsetsDump);
        }
        if parse_frontend(l.no, t).is_some() {
            return Some(BpfVariant::NatDump);
        }
        if t.starts_with("ConntrackKey{") || parse_ct(l.no, t).is_some() {
            return Some(BpfVariant::ConntrackDump);
        }
        if parse_route(l.no, t).is_some() {
            return Some(BpfVariant::RoutesDump);
        }
        if is_border(t) || t.starts_with('|') {
            let header = lines
                .iter()
                .map(|l| l.text)
                .find(|x| x.trim_start().starts_with('|'))
                .unwrap_or("")
                .to_ascii_uppercase();
            return Some(if header.contains("CATEGORY") {
                BpfVariant::CountersTable
            } else if header.contains("IFACE") && header.contains("NEW") {
                BpfVariant::ProfilingTable
            } else {
                BpfVariant::Table
            });
        }
        if t.starts_with("// Start of") || t.starts_with("Tier: ") {
            return Some(BpfVariant::PolicyDump);
        }
    }
    None
}

pub fn parse(text: &str) -> BpfDump {
    let (lines, command, annotations) = content_lines(text);
    let mut d = BpfDump {
        variant: detect_lines(&lines),
        command,
        annotations,
        ..BpfDump::default()
    };
    match d.variant {
        Some(BpfVariant::Json) => {
            let start = lines.first().map_or(1, |l| l.no);
            parse_json(&mut d, text, start);
        }
        Some(BpfVariant::PolicyDump) => parse_policy(&mut d, &lines),
        Some(BpfVariant::IpsetsDump) => parse_ipsets(&mut d, &lines),
        Some(BpfVariant::ConntrackDump) => parse_conntrack(&mut d, &lines),
        Some(BpfVariant::NatDump) => parse_nat(&mut d, &lines),
        Some(BpfVariant::RoutesDump) => parse_routes(&mut d, &lines),
        Some(BpfVariant::CountersTable)
        | Some(BpfVariant::ProfilingTable)
        | Some(BpfVariant::Table) => parse_table(&mut d, &lines),
        None => {
            if let Some(l) = lines.iter().find(|l| !l.text.trim().is_empty()) {
                d.errors
                    .push(ParseError::new(l.no, "not a recognised eBPF dump"));
            }
        }
    }
    d
}

/// `Key: value` lines (`Total connections: 7`), anywhere in a dump.
fn summary_line(t: &str) -> Option<(String, String)> {
    let (k, v) = t.split_once(": ")?;
    let k = k.trim();
    if k.is_empty() || k.len() > 40 || !k.chars().all(|c| c.is_alphanumeric() || c == ' ') {
        return None;
    }
    let v = v.trim();
    v.parse::<i64>().ok()?;
    Some((k.to_string(), v.to_string()))
}

// ---------------------------------------------------------------------------------------
// JSON

#[derive(Default)]
struct Light {
    id: Option<u64>,
    name: Option<String>,
    kind: Option<String>,
    shape: Option<JsonKind>,
    has_key: bool,
    has_value: bool,
}

/// Any JSON scalar we keep (numbers, strings); everything else is skipped.
enum Scalar {
    Num(u64),
    Str(String),
    Other,
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Num(v))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_unit<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Scalar, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Scalar, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Light {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Light;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Light, A::Error> {
                let mut l = Light::default();
                while let Some(k) = a.next_key::<String>()? {
                    match k.as_str() {
                        "id" | "name" | "type" => {
                            let v: Scalar = a.next_value()?;
                            match (k.as_str(), v) {
                                ("id", Scalar::Num(n)) => l.id = Some(n),
                                ("name", Scalar::Str(s)) => l.name = Some(s),
                                ("type", Scalar::Str(s)) => l.kind = Some(s),
                                _ => {}
                            }
                            continue;
                        }
                        "tag" | "bytes_xlated" | "jited" => l.shape = Some(JsonKind::Programs),
                        "max_entries" => l.shape = Some(JsonKind::Maps),
                        "tc" | "xdp" | "flow_dissector" => l.shape = Some(JsonKind::NetAttachments),
                        "key" => l.has_key = true,
                        "value" | "values" => l.has_value = true,
                        _ => {}
                    }
                    a.next_value::<IgnoredAny>()?;
                }
                Ok(l)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Light, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Light::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Light, E> {
                Ok(Light::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Light, E> {
                Ok(Light::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Light, E> {
                Ok(Light::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Light, E> {
                Ok(Light::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Light, E> {
                Ok(Light::default())
            }
            fn visit_unit<E>(self) -> Result<Light, E> {
                Ok(Light::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// A JSON document: an array of elements or one element.
struct Doc(Vec<Light>);

impl<'de> Deserialize<'de> for Doc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Doc;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON array or object")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Doc, A::Error> {
                let mut v = Vec::new();
                while let Some(l) = a.next_element::<Light>()? {
                    v.push(l);
                }
                Ok(Doc(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Doc, A::Error> {
                let l = Light::deserialize(de::value::MapAccessDeserializer::new(a))?;
                Ok(Doc(vec![l]))
            }
        }
        d.deserialize_any(V)
    }
}

fn parse_json(d: &mut BpfDump, text: &str, start_line: usize) {
    // The text from the first content line on.
    let mut off = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 >= start_line {
            break;
        }
        off += l.len();
    }
    let body = &text[off..];
    let mut stream = serde_json::Deserializer::from_str(body).into_iter::<Doc>();
    let mut doc_start = 0;
    loop {
        // Line where the next document starts.
        let rest = &body[doc_start..];
        let skip = rest.len() - rest.trim_start().len();
        let line = start_line + body[..doc_start + skip].matches('\n').count();
        match stream.next() {
            None => break,
            Some(Ok(Doc(items))) => {
                for l in items {
                    if d.json_kind.is_none() {
                        d.json_kind = Some(match l.shape {
                            Some(k) => k,
                            None if l.has_key && l.has_value => JsonKind::MapEntries,
                            None => JsonKind::Other,
                        });
                    }
                    d.json.push(JsonItem {
                        line,
                        id: l.id,
                        name: l.name,
                        kind: l.kind,
                    });
                }
            }
            Some(Err(e)) => {
                d.errors.push(ParseError::new(
                    start_line + e.line().saturating_sub(1),
                    format!("bad JSON: {e}"),
                ));
                break;
            }
        }
        doc_start = stream.byte_offset();
    }
}

// ---------------------------------------------------------------------------------------
// policy dump

fn ipset_ids(s: &str) -> Vec<u64> {
    s.match_indices("0x")
        .filter_map(|(i, _)| {
            let hex: String = s[i + 2..]
                .chars()
                .take_while(|c| c.is_ascii_hexdigit())
                .collect();
            u64::from_str_radix(&hex, 16).ok()
        })
        .collect()
}

/// `action:"allow"` → `allow`.
fn proto_field(s: &str, field: &str) -> Option<String> {
    let pat = format!("{field}:\"");
    let i = s.find(&pat)? + pat.len();
    let end = s[i..].find('"')?;
    Some(s[i..i + end].to_string())
}

fn parse_policy(d: &mut BpfDump, lines: &[Line<'_>]) {
    let mut p = PolicyDump::default();
    let mut tier: Option<String> = None;
    let mut policy: Option<String> = None;
    for l in lines {
        let t = l.text.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(v) = t.strip_prefix("IfaceName:") {
            p.iface = Some(v.trim().to_string());
            continue;
        }
        if let Some(v) = t.strip_prefix("Hook:") {
            p.hook = Some(v.trim().to_string());
            continue;
        }
        if let Some(v) = t.strip_prefix("Error:") {
            p.error = Some(v.trim().to_string());
            continue;
        }
        if t == "Policy Info:" {
            continue;
        }
        let c = t.strip_prefix("//").map(str::trim).unwrap_or(t);
        if let Some(v) = c.strip_prefix("Start of tier ") {
            tier = Some(v.to_string());
        } else if let Some(v) = c.strip_prefix("Tier: ") {
            tier = Some(v.to_string());
        } else if let Some(v) = c.strip_prefix("End of tier ") {
            let (name, action) = v.split_once(": ").unwrap_or((v, ""));
            p.tier_ends.push(TierEnd {
                line: l.no,
                tier: name.to_string(),
                action: action.to_string(),
            });
            tier = None;
            policy = None;
        } else if let Some(v) = c.strip_prefix("End Tier: ") {
            // `End Tier: default  (action: deny)`
            let (name, action) = match v.split_once("(action:") {
                Some((n, a)) => (n.trim(), a.trim().trim_end_matches(')').trim()),
                None => (v.trim(), ""),
            };
            p.tier_ends.push(TierEnd {
                line: l.no,
                tier: name.to_string(),
                action: action.to_string(),
            });
            tier = None;
            policy = None;
        } else if let Some(v) = c.strip_prefix("Start of rule ") {
            let first = v.split_whitespace().next().unwrap_or("");
            let rule_id = proto_field(v, "rule_id")
                .or_else(|| (!first.contains(':')).then(|| first.to_string()));
            p.rules.push(PolicyRule {
                line: l.no,
                tier: tier.clone(),
                policy: policy.clone(),
                rule_id,
                action: proto_field(v, "action"),
                text: v.to_string(),
                ..PolicyRule::default()
            });
        } else if let Some(v) = c.strip_prefix("Rule: ") {
            let (name, action) = match v.split_once("  Action: ") {
                Some((n, a)) => (n.trim(), Some(a.trim().to_string())),
                None => (v.trim(), None),
            };
            p.rules.push(PolicyRule {
                line: l.no,
                tier: tier.clone(),
                policy: policy.clone(),
                rule_id: Some(name.to_string()),
                action,
                text: v.to_string(),
                ..PolicyRule::default()
            });
        } else if c.starts_with("End of rule ") {
        } else if let Some(v) = c.strip_prefix("End of policy ") {
            let _ = v;
            policy = None;
        } else if c.starts_with("End Policy: ") {
            policy = None;
        } else if let Some(v) = c
            .strip_prefix("Start of policy ")
            .or_else(|| c.strip_prefix("Policy: "))
        {
            policy = Some(v.to_string());
        } else if let Some(v) = c.strip_prefix("Start of ") {
            // `Start of GlobalNetworkPolicy x` (raw comment of newer builds)
            policy = Some(v.to_string());
        } else if let Some(v) = c.strip_prefix("End of ") {
            let _ = v;
            policy = None;
        } else if let Some(v) = c.strip_prefix("IPSets ") {
            if let Some(r) = p.rules.last_mut() {
                r.ipset_ids.extend(ipset_ids(v));
            }
        } else if let Some(v) = c.strip_prefix("Match: ") {
            if let Some(r) = p.rules.last_mut() {
                r.ipset_ids.extend(ipset_ids(v));
                r.match_text = Some(v.to_string());
            }
        } else if let Some(v) = c
            .strip_prefix("count = ")
            .or_else(|| c.strip_prefix("Hit count: "))
        {
            match (v.trim().parse::<u64>(), p.rules.last_mut()) {
                (Ok(n), Some(r)) => r.count = Some(n),
                (Err(_), _) => d.errors.push(ParseError::new(l.no, "bad rule count")),
                (Ok(_), None) => d
                    .errors
                    .push(ParseError::new(l.no, "rule count before any rule")),
            }
        }
        // Anything else: instructions of `-a` dumps, other comments.
    }
    d.policy = Some(p);
}

// ---------------------------------------------------------------------------------------
// ipsets, conntrack, nat, routes

fn parse_ipsets(d: &mut BpfDump, lines: &[Line<'_>]) {
    for l in lines {
        let t = l.text.trim();
        if t.is_empty() || t == "No IP sets found." {
            continue;
        }
        if let Some(hex) = t.strip_prefix("IP set 0x") {
            match u64::from_str_radix(hex.trim(), 16) {
                Ok(id) => d.ipsets.push(IpSet {
                    line: l.no,
                    id,
                    members: Vec::new(),
                }),
                Err(_) => d.errors.push(ParseError::new(l.no, "bad IP set id")),
            }
        } else if l.text.starts_with(char::is_whitespace)
            && let Some(set) = d.ipsets.last_mut()
        {
            set.members.push((l.no, t.to_string()));
        } else {
            d.errors
                .push(ParseError::new(l.no, "unexpected line in ipsets dump"));
        }
    }
}

/// `TCP 1.2.3.4:5 -> 6.7.8.9:80 [-> 10.0.0.1:80] [note ] Active ago 1m2s [STATE]`
fn parse_ct(no: usize, t: &str) -> Option<CtEntry> {
    let (proto, rest) = t.split_once(' ')?;
    if !matches!(proto, "TCP" | "UDP" | "ICMP" | "ICMP6") && !proto.starts_with("Proto-") {
        return None;
    }
    let (flow, tail) = rest.split_once(" Active ago ")?;
    let mut parts = flow.trim().split(" -> ");
    let src = Endpoint::parse(parts.next()?)?;
    let second = parts.next()?;
    let third = parts.next();
    // The last endpoint may be followed by a note.
    let (last, note) = match third.unwrap_or(second).trim().split_once(' ') {
        Some((e, n)) => (e, Some(n.trim().to_string())),
        None => (third.unwrap_or(second).trim(), None),
    };
    let (dst, backend) = match third {
        Some(_) => (Endpoint::parse(second)?, Some(Endpoint::parse(last)?)),
        None => (Endpoint::parse(last)?, None),
    };
    let mut tail = tail.split_whitespace();
    let active_ago = tail.next()?.to_string();
    let state = tail.next().map(str::to_string);
    Some(CtEntry {
        line: no,
        proto: proto.to_string(),
        src,
        dst,
        backend,
        active_ago,
        state,
        note: note.filter(|n| !n.is_empty()),
    })
}

fn parse_conntrack(d: &mut BpfDump, lines: &[Line<'_>]) {
    for l in lines {
        let t = l.text.trim();
        if t.is_empty() {
            continue;
        }
        if t.starts_with("ConntrackKey{") {
            d.conntrack_raw += 1;
        } else if let Some(e) = parse_ct(l.no, t) {
            d.conntrack.push(e);
        } else if let Some((k, v)) = summary_line(t) {
            d.summary.push((l.no, k, v));
        } else {
            d.errors
                .push(ParseError::new(l.no, "unreadable conntrack dump line"));
        }
    }
}

/// `10.96.0.10 port 53 proto 6 id 4 count 2 local 0[ flags X][ src CIDR]`
fn parse_frontend(no: usize, t: &str) -> Option<NatFrontend> {
    let toks: Vec<&str> = t.split_whitespace().collect();
    if toks.len() < 11
        || toks[1] != "port"
        || toks[3] != "proto"
        || toks[5] != "id"
        || toks[7] != "count"
        || toks[9] != "local"
    {
        return None;
    }
    let mut f = NatFrontend {
        line: no,
        addr: toks[0].parse().ok()?,
        port: toks[2].parse().ok()?,
        proto: toks[4].parse().ok()?,
        id: toks[6].parse().ok()?,
        count: toks[8].parse().ok()?,
        local: toks[10].parse().ok()?,
        flags: None,
        src: None,
    };
    let mut i = 11;
    while i + 1 < toks.len() {
        match toks[i] {
            "flags" => f.flags = Some(toks[i + 1].to_string()),
            "src" => f.src = Some(toks[i + 1].to_string()),
            _ => {}
        }
        i += 2;
    }
    Some(f)
}

/// `\t4:0\t 192.168.129.66:53` or `\t4:1\t is missing`
fn parse_backend(no: usize, t: &str) -> Option<NatBackend> {
    let mut toks = t.split_whitespace();
    let (id, ord) = toks.next()?.split_once(':')?;
    let rest: Vec<&str> = toks.collect();
    let endpoint = match rest.as_slice() {
        ["is", "missing"] => None,
        [ep] => Some(Endpoint::parse(ep)?),
        _ => return None,
    };
    Some(NatBackend {
        line: no,
        id: id.parse().ok()?,
        ordinal: ord.parse().ok()?,
        endpoint,
    })
}

fn parse_nat(d: &mut BpfDump, lines: &[Line<'_>]) {
    for l in lines {
        let t = l.text.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(f) = parse_frontend(l.no, t) {
            d.nat_frontends.push(f);
        } else if let Some(b) = parse_backend(l.no, t) {
            d.nat_backends.push(b);
        } else if t.starts_with("client ") || t.starts_with("svc ") {
            // affinity / maglev dumps mixed in: not read
        } else {
            d.errors
                .push(ParseError::new(l.no, "unreadable nat dump line"));
        }
    }
}

/// `   10.65.0.0/16: remote in-pool nh 10.128.0.4`
fn parse_route(no: usize, t: &str) -> Option<BpfRoute> {
    let (cidr, flags) = t.trim().split_once(": ")?;
    Some(BpfRoute {
        line: no,
        cidr: cidr.trim().parse().ok()?,
        flags: flags.trim().to_string(),
    })
}

fn parse_routes(d: &mut BpfDump, lines: &[Line<'_>]) {
    for l in lines {
        let t = l.text.trim();
        if t.is_empty() {
            continue;
        }
        match parse_route(l.no, t) {
            Some(r) => d.routes.push(r),
            None => d
                .errors
                .push(ParseError::new(l.no, "unreadable routes dump line")),
        }
    }
}

// ---------------------------------------------------------------------------------------
// ASCII tables

/// `+----+---+`, also without the first `+`.
fn is_border(t: &str) -> bool {
    t.len() >= 3
        && t.contains('-')
        && t.contains('+')
        && t.bytes().all(|c| matches!(c, b'+' | b'-' | b'='))
}

fn cells(t: &str) -> Vec<String> {
    let t = t.trim();
    let t = t.strip_prefix('|').unwrap_or(t);
    let t = t.strip_suffix('|').unwrap_or(t);
    t.split('|').map(|c| c.trim().to_string()).collect()
}

fn parse_table(d: &mut BpfDump, lines: &[Line<'_>]) {
    let mut table = AsciiTable::default();
    let mut borders = 0;
    let mut header_done = false;
    for l in lines {
        let t = l.text.trim();
        if t.is_empty() {
            continue;
        }
        if is_border(t) {
            borders += 1;
            if borders >= 2 && !table.header.is_empty() {
                header_done = true;
            }
            continue;
        }
        if !t.starts_with('|') {
            // `dumped eth0 counters.` and similar trailers.
            continue;
        }
        let row = cells(t);
        if !header_done {
            if table.header.is_empty() {
                table.header = row;
            } else {
                // A wrapped header cell.
                for (h, c) in table.header.iter_mut().zip(row) {
                    if !c.is_empty() {
                        h.push(' ');
                        h.push_str(&c);
                    }
                }
            }
            continue;
        }
        if row.len() != table.header.len() {
            d.errors.push(ParseError::new(
                l.no,
                format!(
                    "table row has {} cells, header has {}",
                    row.len(),
                    table.header.len()
                ),
            ));
        }
        // A wrapped row: no first cell and no last cell, under a row that had a last cell.
        let wrapped = row.first().is_some_and(String::is_empty)
            && row.last().is_some_and(String::is_empty)
            && table
                .rows
                .last()
                .is_some_and(|p| p.cells.last().is_some_and(|c| !c.is_empty()));
        if wrapped && let Some(prev) = table.rows.last_mut() {
            for (p, c) in prev.cells.iter_mut().zip(row) {
                if !c.is_empty() {
                    if !p.is_empty() {
                        p.push(' ');
                    }
                    p.push_str(&c);
                }
            }
            prev.end_line = l.no;
            continue;
        }
        table.rows.push(TableRow {
            line: l.no,
            end_line: l.no,
            cells: row,
        });
    }
    if !header_done && !table.header.is_empty() && table.rows.is_empty() {
        d.errors.push(ParseError::new(
            lines.first().map_or(1, |l| l.no),
            "table without rows",
        ));
    }
    d.table = Some(table);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_endpoints_split_at_the_last_colon() {
        let e = Endpoint::parse("fd00:10:244::5:8080").expect("endpoint");
        assert_eq!(e.port, 8080);
        assert_eq!(e.addr, "fd00:10:244::5".parse::<IpAddr>().expect("ip"));
        assert!(Endpoint::parse("nope").is_none());
    }

    #[test]
    fn a_border_without_its_first_plus_is_still_a_border() {
        assert!(is_border("----------------+-------+"));
        assert!(is_border("+---+"));
        assert!(!is_border("---"));
        assert!(!is_border("| a |"));
    }
}
