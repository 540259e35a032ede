//! Felix's own text for the rules it programs, so an expected rule can be compared with a
//! dumped one: the match of one policy rule (`CalculateRuleMatch`), the whole expansion of a
//! rule into iptables rules (match blocks, mark/return/drop actions, NFLOG, per version),
//! the `cali:<hash>` comment chain, comment escaping (iptables and nftables), and the
//! mapping from Felix's long-flag form to what `iptables-save` prints.
//!
//! This renders the iptables form only; nftables rule bodies are not rendered here (only
//! their comments and hashes from a given body). Names come from `names`; nothing here reads
//! a bundle.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha224};

use super::hash::b64url;
use super::names::{
    CalicoVersion, Direction, FelixPolicyKey, NflogAction, RuleOwner, go_hex, ipset_main_name,
    nflog_policy_id, nflog_prefix, policy_chain_comment, profile_chain_comment,
};

// ---------------------------------------------------------------------------------------------
// Felix-form rules, comments and hashes
// ---------------------------------------------------------------------------------------------

/// What Felix does with denied packets (`FilterDenyAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum DenyAction {
    #[default]
    Drop,
    Reject,
}

impl DenyAction {
    /// The Felix action fragment.
    pub fn fragment(self) -> &'static str {
        match self {
            DenyAction::Drop => "--jump DROP",
            DenyAction::Reject => "--jump REJECT",
        }
    }
    /// The word Felix puts in comments ("Drop if no profiles matched").
    pub fn word(self) -> &'static str {
        match self {
            DenyAction::Drop => "Drop",
            DenyAction::Reject => "Reject",
        }
    }
}

/// One rule as Felix holds it before writing: comments, match text, action text (each may be
/// empty). `matches` and `action` are in Felix's long-flag form (`--jump X`, `--source …`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct FelixRule {
    pub comments: Vec<String>,
    pub matches: String,
    pub action: String,
}

impl FelixRule {
    pub fn new(matches: impl Into<String>, action: impl Into<String>) -> Self {
        FelixRule {
            comments: Vec::new(),
            matches: matches.into(),
            action: action.into(),
        }
    }

    pub fn with_comment(mut self, c: impl Into<String>) -> Self {
        self.comments.push(c.into());
        self
    }

    /// Match and action, without comments.
    pub fn render_body(&self) -> String {
        join_nonempty(&[&self.matches, &self.action])
    }

    fn render_inner(&self, head: &str) -> String {
        let mut parts: Vec<String> = vec![head.to_string()];
        for c in &self.comments {
            parts.push(format!("-m comment --comment \"{}\"", iptables_comment(c)));
        }
        if !self.matches.is_empty() {
            parts.push(self.matches.clone());
        }
        if !self.action.is_empty() {
            parts.push(self.action.clone());
        }
        parts.join(" ")
    }

    /// The string Felix hashes for this rule: `-A <chain> HASH [comments] [match] [action]`.
    pub fn render_for_hash(&self, chain: &str) -> String {
        self.render_inner(&format!("-A {chain} HASH"))
    }

    /// The line Felix feeds iptables-restore: `-A <chain> -m comment --comment "cali:<hash>" …`.
    pub fn render_append(&self, chain: &str, hash: &str) -> String {
        self.render_inner(&format!("-A {chain} -m comment --comment \"cali:{hash}\""))
    }
}

fn join_nonempty(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The length of a rule hash.
pub const RULE_HASH_LEN: usize = 16;

/// Felix's chained rule hashes: seed with SHA-224(chain name), then for each rule
/// `h = SHA-224(h || rendered)` and take 16 characters of base64url(h).
pub fn hash_chain(chain: &str, rendered: &[String]) -> Vec<String> {
    let mut h = Sha224::digest(chain.as_bytes()).to_vec();
    rendered
        .iter()
        .map(|s| {
            let mut d = Sha224::new();
            d.update(&h);
            d.update(s.as_bytes());
            h = d.finalize().to_vec();
            let enc = b64url(&h);
            enc[..RULE_HASH_LEN].to_string()
        })
        .collect()
}

/// The `cali:` hashes of a Felix-owned chain (or of rules inserted into a kernel chain).
pub fn rule_hashes(chain: &str, rules: &[FelixRule]) -> Vec<String> {
    let rendered: Vec<String> = rules.iter().map(|r| r.render_for_hash(chain)).collect();
    hash_chain(chain, &rendered)
}

/// Hashes of rules given as Felix `match action` fragments without comments.
pub fn rule_hashes_from_fragments(chain: &str, fragments: &[&str]) -> Vec<String> {
    let rules: Vec<FelixRule> = fragments
        .iter()
        .map(|f| FelixRule::new(String::new(), f.to_string()))
        .collect();
    rule_hashes(chain, &rules)
}

/// Hashes of rules Felix appends to a kernel chain: the chain is named `<chain>*appends*` in
/// both the seed and the hashed strings.
pub fn appended_rule_hashes(chain: &str, rules: &[FelixRule]) -> Vec<String> {
    rule_hashes(&format!("{chain}*appends*"), rules)
}

/// nftables hashes: the same chain of SHA-224 over the nft rule bodies (match, `counter`,
/// action; `counter` alone for an empty rule). `chain` is the layered name
/// (`filter-cali-…`).
pub fn nft_rule_hashes(chain: &str, bodies: &[&str]) -> Vec<String> {
    let rendered: Vec<String> = bodies.iter().map(|b| b.to_string()).collect();
    hash_chain(chain, &rendered)
}

/// `s` cut to at most `max` bytes, backing off to a character boundary (Felix cuts bytes;
/// the text it cuts is escaped to ASCII first, so the two agree on everything it writes).
pub fn truncate_to(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// iptables comment escaping: every character outside `[A-Za-z0-9_ @%+=:,./-]` becomes `_`.
pub fn escape_comment(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " _@%+=:,./-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// An iptables comment as Felix writes it: escaped and cut to 256 bytes.
pub fn iptables_comment(s: &str) -> String {
    truncate_to(&escape_comment(s), 256)
}

const NFT_MAX_COMMENT: usize = 128;

/// The nftables rule comment: `cali:<hash>;` then each comment (escaped, cut to an equal
/// share of 128), the whole cut to 128.
pub fn nft_rule_comment(hash: &str, comments: &[String]) -> String {
    let mut frags: Vec<String> = Vec::new();
    if !hash.is_empty() {
        frags.push(format!("cali:{hash};"));
    }
    if !comments.is_empty() {
        let used = frags.join(" ").len();
        let per = NFT_MAX_COMMENT.saturating_sub(used) / comments.len();
        for c in comments {
            frags.push(truncate_to(&escape_comment(c), per));
        }
    }
    let all = frags.join(" ");
    all.get(..NFT_MAX_COMMENT)
        .map(str::to_string)
        .unwrap_or(all)
}

// ---------------------------------------------------------------------------------------------
// Proto rules
// ---------------------------------------------------------------------------------------------

/// A protocol given by number or by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Value")]
pub enum Protocol {
    Number(u8),
    Name(String),
}

impl TryFrom<Value> for Protocol {
    type Error = String;
    fn try_from(v: Value) -> Result<Self, String> {
        match v {
            Value::Number(n) => n
                .as_u64()
                .map(|n| Protocol::Number(n as u8))
                .ok_or_else(|| format!("bad protocol number {n}")),
            Value::String(s) => Ok(match s.parse::<u8>() {
                Ok(n) => Protocol::Number(n),
                Err(_) => Protocol::Name(s),
            }),
            Value::Object(m) => {
                if let Some(n) = m.get("Number").or_else(|| m.get("number")) {
                    Protocol::try_from(n.clone())
                } else if let Some(n) = m.get("Name").or_else(|| m.get("name")) {
                    Protocol::try_from(n.clone())
                } else {
                    Err("protocol object without Number or Name".to_string())
                }
            }
            other => Err(format!("bad protocol {other}")),
        }
    }
}

impl Protocol {
    /// The name or number as Felix writes it after `-p`.
    pub fn felix_text(&self) -> String {
        match self {
            Protocol::Number(n) => n.to_string(),
            Protocol::Name(s) => s.clone(),
        }
    }
}

/// A port range; a single port has `first == last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Value")]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

fn json_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl TryFrom<Value> for PortRange {
    type Error = String;
    fn try_from(v: Value) -> Result<Self, String> {
        let p = |x: Option<&Value>| -> Result<u16, String> {
            x.and_then(json_u64)
                .map(|n| n as u16)
                .ok_or_else(|| format!("bad port in {v}"))
        };
        match &v {
            Value::Array(a) => {
                let first = p(a.first())?;
                let last = if a.len() > 1 { p(a.get(1))? } else { first };
                Ok(PortRange { first, last })
            }
            Value::Object(m) => {
                let first = p(m.get("First").or_else(|| m.get("first")))?;
                let last = match m.get("Last").or_else(|| m.get("last")) {
                    Some(l) => p(Some(l))?,
                    None => first,
                };
                Ok(PortRange { first, last })
            }
            Value::String(s) if s.contains(':') => {
                let (a, b) = s.split_once(':').unwrap_or((s, s));
                let first = a.trim().parse().map_err(|_| format!("bad port {s}"))?;
                let last = b.trim().parse().map_err(|_| format!("bad port {s}"))?;
                Ok(PortRange { first, last })
            }
            _ => {
                let n = p(Some(&v))?;
                Ok(PortRange { first: n, last: n })
            }
        }
    }
}

/// An ICMP match: a type, optionally with a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Value")]
pub struct IcmpMatch {
    pub icmp_type: u8,
    pub code: Option<u8>,
}

impl TryFrom<Value> for IcmpMatch {
    type Error = String;
    fn try_from(v: Value) -> Result<Self, String> {
        let n = |x: Option<&Value>| x.and_then(json_u64).map(|n| n as u8);
        match &v {
            Value::Array(a) => Ok(IcmpMatch {
                icmp_type: n(a.first()).ok_or_else(|| format!("bad icmp {v}"))?,
                code: n(a.get(1)),
            }),
            Value::Object(m) => {
                for k in ["IcmpTypeCode", "NotIcmpTypeCode", "IcmpType", "NotIcmpType"] {
                    if let Some(inner) = m.get(k) {
                        return IcmpMatch::try_from(inner.clone());
                    }
                }
                Ok(IcmpMatch {
                    icmp_type: n(m.get("Type").or_else(|| m.get("type")))
                        .ok_or_else(|| format!("bad icmp {v}"))?,
                    code: n(m.get("Code").or_else(|| m.get("code"))),
                })
            }
            _ => Ok(IcmpMatch {
                icmp_type: n(Some(&v)).ok_or_else(|| format!("bad icmp {v}"))?,
                code: None,
            }),
        }
    }
}

/// `Rule.Metadata` of Felix's protobuf rule.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RuleMetadata {
    pub annotations: BTreeMap<String, String>,
}

/// One rule as Felix receives it (`proto.Rule`), with Felix's field names. Only what the
/// iptables renderer reads is kept.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ProtoRule {
    /// `""`/`allow`, `deny`, `pass`/`next-tier`, `log`.
    pub action: String,
    #[serde(deserialize_with = "ip_version_field")]
    pub ip_version: Option<u8>,
    pub protocol: Option<Protocol>,
    pub src_net: Vec<String>,
    pub src_ports: Vec<PortRange>,
    pub src_named_port_ip_set_ids: Vec<String>,
    pub src_ip_set_ids: Vec<String>,
    pub dst_net: Vec<String>,
    pub dst_ports: Vec<PortRange>,
    pub dst_named_port_ip_set_ids: Vec<String>,
    pub dst_ip_set_ids: Vec<String>,
    pub dst_ip_port_set_ids: Vec<String>,
    pub icmp: Option<IcmpMatch>,
    pub not_protocol: Option<Protocol>,
    pub not_src_net: Vec<String>,
    pub not_src_ports: Vec<PortRange>,
    pub not_src_named_port_ip_set_ids: Vec<String>,
    pub not_src_ip_set_ids: Vec<String>,
    pub not_dst_net: Vec<String>,
    pub not_dst_ports: Vec<PortRange>,
    pub not_dst_named_port_ip_set_ids: Vec<String>,
    pub not_dst_ip_set_ids: Vec<String>,
    pub not_icmp: Option<IcmpMatch>,
    pub metadata: Option<RuleMetadata>,
}

fn ip_version_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(match v {
        Value::Number(n) => n.as_u64().map(|n| n as u8).filter(|n| *n != 0),
        Value::String(s) => {
            let digits: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
            digits.parse().ok().filter(|n: &u8| *n != 0)
        }
        _ => None,
    })
}

// ---------------------------------------------------------------------------------------------
// The match of one rule
// ---------------------------------------------------------------------------------------------

fn ports_text(ports: &[PortRange]) -> String {
    ports
        .iter()
        .map(|p| {
            if p.first == p.last {
                p.first.to_string()
            } else {
                format!("{}:{}", p.first, p.last)
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `SplitPortList`: groups of at most 15 multiport slots (a range takes two).
pub fn split_port_list(ports: &[PortRange]) -> Vec<Vec<PortRange>> {
    let mut splits = Vec::new();
    let mut cur: Vec<PortRange> = Vec::new();
    let mut left = 15usize;
    for p in ports {
        let need = if p.first == p.last { 1 } else { 2 };
        if left < need {
            splits.push(std::mem::take(&mut cur));
            left = 15;
        }
        cur.push(*p);
        left -= need;
    }
    if !cur.is_empty() {
        splits.push(cur);
    }
    splits
}

fn icmp_text(ipv: u8, m: &IcmpMatch, negated: bool) -> String {
    let neg = if negated { "! " } else { "" };
    let tc = match m.code {
        Some(c) => format!("{}/{c}", m.icmp_type),
        None => m.icmp_type.to_string(),
    };
    if ipv == 6 {
        format!("-m icmp6 {neg}--icmpv6-type {tc}")
    } else {
        format!("-m icmp {neg}--icmp-type {tc}")
    }
}

/// Felix's `CalculateRuleMatch`: the match of one rule once match blocks have taken what
/// does not fit (a single CIDR per side, at most one named port per side). More than one
/// positive or negated CIDR on a side is a match-block case that Felix never passes here
/// (it would panic); such lists are left out of this text.
pub fn calculate_rule_match(rule: &ProtoRule, ip_version: u8) -> String {
    let set = |id: &str| ipset_main_name(id, ip_version);
    let mut m: Vec<String> = Vec::new();
    if let Some(p) = &rule.protocol {
        m.push(format!("-p {}", p.felix_text()));
    }
    if let [net] = rule.src_net.as_slice() {
        m.push(format!("--source {net}"));
    }
    for id in &rule.src_ip_set_ids {
        m.push(format!("-m set --match-set {} src", set(id)));
    }
    if !rule.src_ports.is_empty() {
        m.push(format!(
            "-m multiport --source-ports {}",
            ports_text(&rule.src_ports)
        ));
    }
    for id in &rule.src_named_port_ip_set_ids {
        m.push(format!("-m set --match-set {} src,src", set(id)));
    }
    if let [net] = rule.dst_net.as_slice() {
        m.push(format!("--destination {net}"));
    }
    for id in &rule.dst_ip_set_ids {
        m.push(format!("-m set --match-set {} dst", set(id)));
    }
    for id in &rule.dst_ip_port_set_ids {
        m.push(format!("-m set --match-set {} dst,dst", set(id)));
    }
    if !rule.dst_ports.is_empty() {
        m.push(format!(
            "-m multiport --destination-ports {}",
            ports_text(&rule.dst_ports)
        ));
    }
    for id in &rule.dst_named_port_ip_set_ids {
        m.push(format!("-m set --match-set {} dst,dst", set(id)));
    }
    if let Some(i) = &rule.icmp {
        m.push(icmp_text(ip_version, i, false));
    }
    if let Some(p) = &rule.not_protocol {
        m.push(format!("! -p {}", p.felix_text()));
    }
    if let [net] = rule.not_src_net.as_slice() {
        m.push(format!("! --source {net}"));
    }
    for id in &rule.not_src_ip_set_ids {
        m.push(format!("-m set ! --match-set {} src", set(id)));
    }
    for split in split_port_list(&rule.not_src_ports) {
        m.push(format!(
            "-m multiport ! --source-ports {}",
            ports_text(&split)
        ));
    }
    for id in &rule.not_src_named_port_ip_set_ids {
        m.push(format!("-m set ! --match-set {} src,src", set(id)));
    }
    if let [net] = rule.not_dst_net.as_slice() {
        m.push(format!("! --destination {net}"));
    }
    for id in &rule.not_dst_ip_set_ids {
        m.push(format!("-m set ! --match-set {} dst", set(id)));
    }
    for split in split_port_list(&rule.not_dst_ports) {
        m.push(format!(
            "-m multiport ! --destination-ports {}",
            ports_text(&split)
        ));
    }
    for id in &rule.not_dst_named_port_ip_set_ids {
        m.push(format!("-m set ! --match-set {} dst,dst", set(id)));
    }
    if let Some(i) = &rule.not_icmp {
        m.push(icmp_text(ip_version, i, true));
    }
    m.join(" ")
}

// ---------------------------------------------------------------------------------------------
// Whole rules: match blocks and actions
// ---------------------------------------------------------------------------------------------

/// The mark bits Felix allocates from its mark mask, lowest bit first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MarkBits {
    pub accept: u32,
    pub pass: u32,
    /// v3.30+ only; 0 before.
    pub drop: u32,
    pub scratch0: u32,
    pub scratch1: u32,
}

impl MarkBits {
    /// Felix's default mask.
    pub const DEFAULT_MASK: u32 = 0xffff_0000;

    /// Allocate from `mask` (`IptablesMarkMask`/`NftablesMarkMask`) as `version` does:
    /// accept, pass, (drop from v3.30), scratch0, scratch1.
    pub fn allocate(mask: u32, version: CalicoVersion) -> Self {
        let mut bits = (0..32).map(|i| 1u32 << i).filter(|b| mask & b != 0);
        let mut next = || bits.next().unwrap_or(0);
        let accept = next();
        let pass = next();
        let drop = if version.has_drop_mark() { next() } else { 0 };
        let scratch0 = next();
        let scratch1 = next();
        MarkBits {
            accept,
            pass,
            drop,
            scratch0,
            scratch1,
        }
    }

    pub fn defaults(version: CalicoVersion) -> Self {
        MarkBits::allocate(MarkBits::DEFAULT_MASK, version)
    }
}

/// Felix settings that change how policy rules render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderConfig {
    pub version: CalicoVersion,
    pub marks: MarkBits,
    /// `FilterDenyAction` (honoured from v3.26).
    pub deny: DenyAction,
    /// `LogPrefix` (default `calico-packet`).
    pub log_prefix: String,
    /// Flow logs (v3.30+): NFLOG rules after allow/deny/pass and at tier ends.
    pub flow_logs: bool,
    /// Kernel ≥ 4.8: NFLOG renders `--nflog-size` instead of `--nflog-range`.
    pub nflog_size: bool,
    /// `LogActionRateLimit` and `LogActionRateLimitBurst` (v3.30.6+, v3.31.4+, v3.32):
    /// `-m limit --limit <rate> [--limit-burst <n>]` in front of log rules.
    pub log_rate_limit: Option<(String, u16)>,
}

impl RenderConfig {
    pub fn new(version: CalicoVersion) -> Self {
        RenderConfig {
            version,
            marks: MarkBits::defaults(version),
            deny: DenyAction::Drop,
            log_prefix: "calico-packet".to_string(),
            flow_logs: false,
            nflog_size: true,
            log_rate_limit: None,
        }
    }

    /// The deny action this version actually uses.
    pub fn deny_action(&self) -> DenyAction {
        if self.version.deny_follows_config() {
            self.deny
        } else {
            DenyAction::Drop
        }
    }

    /// `--jump NFLOG …` with Felix's default size of 80.
    pub fn nflog_action(&self, group: u16, prefix: &str) -> String {
        let size = if self.nflog_size {
            "--nflog-size"
        } else {
            "--nflog-range"
        };
        format!("--jump NFLOG --nflog-group {group} --nflog-prefix {prefix} {size} 80")
    }
}

/// Who owns a rule and where it sits: what NFLOG prefixes and log prefixes are made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleContext {
    pub owner: RuleOwner,
    pub dir: Direction,
    /// The rule's index in its policy/profile direction.
    pub index: usize,
    /// The NFLOG id: see `names::nflog_policy_id` (the profile name for profiles).
    pub nflog_id: String,
    pub tier: String,
    /// Untracked policies get no NFLOG rules.
    pub untracked: bool,
    /// For `%k %n %p` in the log prefix: kind short name (`pro` for profiles), name,
    /// namespace.
    pub log_identity: (String, String, Option<String>),
}

fn mark_match(mark: u32) -> String {
    format!("-m mark --mark {}/{}", go_hex(mark), go_hex(mark))
}

fn set_mark(mark: u32) -> String {
    format!("--jump MARK --set-mark {}/{}", go_hex(mark), go_hex(mark))
}

fn clear_mark(mark: u32) -> String {
    format!("--jump MARK --set-mark 0/{}", go_hex(mark))
}

fn mark_clear_match(mark: u32) -> String {
    format!("-m mark --mark 0/{}", go_hex(mark))
}

struct MatchBlocks {
    using: bool,
    done_first_positive: bool,
    all: u32,
    this: u32,
    rules: Vec<FelixRule>,
}

impl MatchBlocks {
    fn initial(&mut self, set_bits: u32) {
        if self.using {
            return;
        }
        self.rules.push(FelixRule::new(
            "",
            format!(
                "--jump MARK --set-mark {}/{}",
                go_hex(set_bits),
                go_hex(self.all | self.this)
            ),
        ));
        self.using = true;
    }
    fn positive_mark(&self) -> u32 {
        if self.done_first_positive {
            self.this
        } else {
            self.all
        }
    }
    fn finish_positive(&mut self) {
        if !self.done_first_positive {
            self.done_first_positive = true;
            return;
        }
        self.rules.push(FelixRule::new(
            mark_clear_match(self.this),
            clear_mark(self.all),
        ));
    }
    fn ports(
        &mut self,
        proto: Option<&Protocol>,
        splits: &[Vec<PortRange>],
        named: &[String],
        src: bool,
        ipv: u8,
    ) {
        self.initial(0);
        let mark = self.positive_mark();
        for split in splits {
            let mut m = Vec::new();
            if let Some(p) = proto {
                m.push(format!("-p {}", p.felix_text()));
            }
            let flag = if src {
                "--source-ports"
            } else {
                "--destination-ports"
            };
            m.push(format!("-m multiport {flag} {}", ports_text(split)));
            self.rules.push(FelixRule::new(m.join(" "), set_mark(mark)));
        }
        for id in named {
            let dir = if src { "src,src" } else { "dst,dst" };
            self.rules.push(FelixRule::new(
                format!("-m set --match-set {} {dir}", ipset_main_name(id, ipv)),
                set_mark(mark),
            ));
        }
        self.finish_positive();
    }
    fn cidrs(&mut self, nets: &[String], src: bool) {
        self.initial(0);
        let mark = self.positive_mark();
        let flag = if src { "--source" } else { "--destination" };
        for n in nets {
            self.rules
                .push(FelixRule::new(format!("{flag} {n}"), set_mark(mark)));
        }
        self.finish_positive();
    }
    fn negated_cidrs(&mut self, nets: &[String], src: bool) {
        self.initial(self.all);
        let flag = if src { "--source" } else { "--destination" };
        for n in nets {
            self.rules
                .push(FelixRule::new(format!("{flag} {n}"), clear_mark(self.all)));
        }
    }
}

fn is_catch_all(net: &str, ipv: u8) -> bool {
    (ipv == 4 && net == "0.0.0.0/0") || (ipv == 6 && net == "::/0")
}

/// `FilterRuleToIPVersion`: `None` when the rule does not apply to `ip_version` (pinned to the
/// other version, or a CIDR list emptied by the filtering, or — v3.31+ — a negated
/// catch-all CIDR).
pub fn filter_rule_to_ip_version(
    rule: &ProtoRule,
    ip_version: u8,
    version: CalicoVersion,
) -> Option<ProtoRule> {
    if let Some(v) = rule.ip_version
        && v != ip_version
    {
        return None;
    }
    let filter = |nets: &[String], negated: bool| -> Option<Vec<String>> {
        if nets.is_empty() {
            return Some(Vec::new());
        }
        let mut out = Vec::new();
        for n in nets {
            if n.contains(':') != (ip_version == 6) {
                continue;
            }
            if negated && version.drops_negated_catch_all() && is_catch_all(n, ip_version) {
                return None;
            }
            out.push(n.clone());
        }
        (!out.is_empty()).then_some(out)
    };
    let mut r = rule.clone();
    r.src_net = filter(&rule.src_net, false)?;
    r.not_src_net = filter(&rule.not_src_net, true)?;
    r.dst_net = filter(&rule.dst_net, false)?;
    r.not_dst_net = filter(&rule.not_dst_net, true)?;
    Some(r)
}

fn log_prefix(cfg: &RenderConfig, ctx: &RuleContext) -> String {
    let p = if cfg.log_prefix.is_empty() {
        "calico-packet"
    } else {
        cfg.log_prefix.as_str()
    };
    if !p.contains('%') {
        return p.to_string();
    }
    let (kind, name, ns) = &ctx.log_identity;
    let mut out = String::new();
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '%' {
            let rep = match chars.peek() {
                Some('t') => Some(ctx.tier.clone()),
                Some('k') => Some(kind.clone()),
                Some('n') => Some(name.clone()),
                Some('p') => Some(match ns {
                    Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
                    _ => name.clone(),
                }),
                _ => None,
            };
            if let Some(r) = rep {
                chars.next();
                out.push_str(&r);
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// Felix's `ProtoRuleToIptablesRules` for one rule: match blocks, then the action rules.
/// Annotations become `k=v` comments on every rule (in key order; Felix iterates a Go map,
/// so with several annotations its order — and the hashes — can differ).
pub fn proto_rule_to_iptables_rules(
    rule: &ProtoRule,
    ip_version: u8,
    cfg: &RenderConfig,
    ctx: &RuleContext,
) -> Vec<FelixRule> {
    let Some(mut r) = filter_rule_to_ip_version(rule, ip_version, cfg.version) else {
        return Vec::new();
    };
    let mut blocks = MatchBlocks {
        using: false,
        done_first_positive: false,
        all: cfg.marks.scratch0,
        this: cfg.marks.scratch1,
        rules: Vec::new(),
    };
    let src_splits = split_port_list(&r.src_ports);
    if src_splits.len() + r.src_named_port_ip_set_ids.len() > 1 {
        blocks.ports(
            r.protocol.as_ref(),
            &src_splits,
            &r.src_named_port_ip_set_ids,
            true,
            ip_version,
        );
        r.src_ports.clear();
        r.src_named_port_ip_set_ids.clear();
    }
    let dst_splits = split_port_list(&r.dst_ports);
    if dst_splits.len() + r.dst_named_port_ip_set_ids.len() > 1 {
        blocks.ports(
            r.protocol.as_ref(),
            &dst_splits,
            &r.dst_named_port_ip_set_ids,
            false,
            ip_version,
        );
        r.dst_ports.clear();
        r.dst_named_port_ip_set_ids.clear();
    }
    if r.src_net.len() > 1 {
        blocks.cidrs(&r.src_net, true);
        r.src_net.clear();
    }
    if r.dst_net.len() > 1 {
        blocks.cidrs(&r.dst_net, false);
        r.dst_net.clear();
    }
    if r.src_net.len() + r.not_src_net.len() > 1 {
        let nets = std::mem::take(&mut r.not_src_net);
        blocks.negated_cidrs(&nets, true);
    }
    if r.dst_net.len() + r.not_dst_net.len() > 1 {
        let nets = std::mem::take(&mut r.not_dst_net);
        blocks.negated_cidrs(&nets, false);
    }
    let mut m = calculate_rule_match(&r, ip_version);
    if blocks.using {
        m = join_nonempty(&[&m, &mark_match(cfg.marks.scratch0)]);
    }
    let mut out = blocks.rules;
    out.extend(rule_actions(&r, &m, cfg, ctx));
    if let Some(md) = &rule.metadata {
        for fr in &mut out {
            for (k, v) in &md.annotations {
                fr.comments.push(format!("{k}={v}"));
            }
        }
    }
    out
}

fn rule_actions(r: &ProtoRule, m: &str, cfg: &RenderConfig, ctx: &RuleContext) -> Vec<FelixRule> {
    let marks = &cfg.marks;
    let deny = cfg.deny_action().fragment();
    let action = r.action.as_str();
    if !cfg.version.has_drop_mark() {
        // ≤ v3.29: CalculateActions.
        let (mark, acts): (u32, Vec<String>) = match action {
            "" | "allow" => (marks.accept, vec!["--jump RETURN".to_string()]),
            "next-tier" | "pass" => (marks.pass, vec!["--jump RETURN".to_string()]),
            "deny" => (0, vec![deny.to_string()]),
            "log" => (0, vec![log_action(cfg, ctx)]),
            _ => (0, Vec::new()),
        };
        let mut out = Vec::new();
        let mut cur = m.to_string();
        if mark != 0 {
            out.push(FelixRule::new(cur, set_mark(mark)));
            cur = mark_match(mark);
        }
        for a in acts {
            out.push(FelixRule::new(cur.clone(), a));
        }
        return out;
    }
    // v3.30+: CombineMatchAndActionsForProtoRule.
    let nflog = |a: NflogAction| -> Option<FelixRule> {
        (!ctx.untracked && cfg.flow_logs).then(|| {
            FelixRule::new(
                "",
                cfg.nflog_action(
                    ctx.dir.nflog_group(),
                    &nflog_prefix(a, ctx.owner, ctx.dir, ctx.index, &ctx.nflog_id),
                ),
            )
        })
    };
    let mut rules: Vec<FelixRule> = Vec::new();
    if action == "log" {
        let limit = match &cfg.log_rate_limit {
            Some((rate, 0)) => format!("-m limit --limit {rate}"),
            Some((rate, burst)) => format!("-m limit --limit {rate} --limit-burst {burst}"),
            None => String::new(),
        };
        rules.push(FelixRule::new(limit, log_action(cfg, ctx)));
    }
    let mark = match action {
        "" | "allow" => {
            rules.extend(nflog(NflogAction::Allow));
            rules.push(FelixRule::new("", "--jump RETURN"));
            marks.accept
        }
        "next-tier" | "pass" => {
            rules.extend(nflog(NflogAction::Pass));
            rules.push(FelixRule::new("", "--jump RETURN"));
            marks.pass
        }
        "deny" => {
            rules.extend(nflog(NflogAction::Deny));
            rules.push(FelixRule::new("", deny));
            marks.drop
        }
        _ => 0,
    };
    let mut out = Vec::new();
    let mut cur = m.to_string();
    if mark != 0 {
        out.push(FelixRule::new(cur, set_mark(mark)));
        cur = mark_match(mark);
    }
    for mut fr in rules {
        fr.matches = join_nonempty(&[&fr.matches, &cur]);
        out.push(fr);
    }
    out
}

fn log_action(cfg: &RenderConfig, ctx: &RuleContext) -> String {
    format!(
        "--jump LOG --log-prefix \"{}: \" --log-level 5",
        log_prefix(cfg, ctx)
    )
}

/// `ProtoRulesToIptablesRules`: every rule, trailing RETURNs stripped (v3.28+), the chain
/// comment appended to the first rule's comments (a lone comment rule for an empty chain).
pub fn proto_rules_to_chain_rules(
    rules: &[ProtoRule],
    ip_version: u8,
    cfg: &RenderConfig,
    base: &RuleContext,
    chain_comment: Option<&str>,
) -> Vec<FelixRule> {
    let mut out: Vec<FelixRule> = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let ctx = RuleContext {
            index: i,
            ..base.clone()
        };
        out.extend(proto_rule_to_iptables_rules(r, ip_version, cfg, &ctx));
    }
    if cfg.version.strips_trailing_returns() {
        while out.last().is_some_and(|r| r.action == "--jump RETURN") {
            out.pop();
        }
    }
    if let Some(c) = chain_comment {
        if out.is_empty() {
            out.push(FelixRule::default());
        }
        if let Some(first) = out.first_mut() {
            first.comments.push(c.to_string());
        }
    }
    out
}

/// The rules of a policy's chain for one direction (staged policies have no chain: empty).
pub fn policy_chain_rules(
    key: &FelixPolicyKey,
    dir: Direction,
    rules: &[ProtoRule],
    ip_version: u8,
    untracked: bool,
    cfg: &RenderConfig,
) -> Vec<FelixRule> {
    if key.kind.is_staged() {
        return Vec::new();
    }
    let ctx = RuleContext {
        owner: RuleOwner::Policy,
        dir,
        index: 0,
        nflog_id: nflog_policy_id(key, cfg.version),
        tier: key.tier.clone(),
        untracked,
        log_identity: (
            key.kind.short().to_string(),
            key.name.clone(),
            key.namespace.clone(),
        ),
    };
    let comment = policy_chain_comment(dir, key, cfg.version);
    proto_rules_to_chain_rules(rules, ip_version, cfg, &ctx, comment.as_deref())
}

/// The rules of a profile's chain for one direction.
pub fn profile_chain_rules(
    profile: &str,
    dir: Direction,
    rules: &[ProtoRule],
    ip_version: u8,
    cfg: &RenderConfig,
) -> Vec<FelixRule> {
    let ctx = RuleContext {
        owner: RuleOwner::Profile,
        dir,
        index: 0,
        nflog_id: profile.to_string(),
        tier: String::new(),
        untracked: false,
        log_identity: ("pro".to_string(), profile.to_string(), None),
    };
    let comment = profile_chain_comment(dir, profile, cfg.version);
    proto_rules_to_chain_rules(rules, ip_version, cfg, &ctx, comment.as_deref())
}

// ---------------------------------------------------------------------------------------------
// Felix form ↔ iptables-save form
// ---------------------------------------------------------------------------------------------

/// Split a rule into words, honouring double quotes (with `\"` and `\\` escapes); quotes are
/// removed.
pub fn split_rule_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
                '"' => quoted = false,
                _ => cur.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                quoted = true;
                in_word = true;
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            _ => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// Felix's long flags and the short ones `iptables-save` prints for them.
pub const FELIX_TO_SAVE_FLAGS: [(&str, &str); 11] = [
    ("--jump", "-j"),
    ("--goto", "-g"),
    ("--source", "-s"),
    ("--destination", "-d"),
    ("--in-interface", "-i"),
    ("--out-interface", "-o"),
    ("--protocol", "-p"),
    ("--source-ports", "--sports"),
    ("--destination-ports", "--dports"),
    ("--set-mark", "--set-xmark"),
    ("--match", "-m"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Clauses {
    /// (flag letter s/d/i/o/p, negated, value)
    basic: Vec<(char, bool, String)>,
    modules: Vec<(String, Vec<String>)>,
    target: Option<(bool, String, Vec<String>)>, // (is_goto, name, options)
}

fn basic_flag(w: &str) -> Option<char> {
    match w {
        "-p" | "--protocol" => Some('p'),
        "-s" | "--source" | "--src" => Some('s'),
        "-d" | "--destination" | "--dst" => Some('d'),
        "-i" | "--in-interface" => Some('i'),
        "-o" | "--out-interface" => Some('o'),
        _ => None,
    }
}

fn parse_clauses(words: &[String]) -> Clauses {
    let mut c = Clauses {
        basic: Vec::new(),
        modules: Vec::new(),
        target: None,
    };
    let mut i = 0;
    // Skip counters and `-A <chain>`.
    if words
        .first()
        .is_some_and(|w| w.starts_with('[') && w.ends_with(']'))
    {
        i += 1;
    }
    if words
        .get(i)
        .is_some_and(|w| w == "-A" || w == "--append" || w == "-I" || w == "--insert")
    {
        i += 2;
    }
    let mut negate = false;
    while i < words.len() {
        let w = words[i].as_str();
        if w == "!" {
            // A `!` before a basic flag negates it; otherwise it belongs to the module.
            if words.get(i + 1).is_some_and(|n| basic_flag(n).is_some()) {
                negate = true;
            } else if let Some((_, opts)) = c.modules.last_mut() {
                opts.push("!".to_string());
            }
            i += 1;
            continue;
        }
        if let Some(f) = basic_flag(w) {
            let val = words.get(i + 1).cloned().unwrap_or_default();
            c.basic.push((f, negate, val));
            negate = false;
            i += 2;
            continue;
        }
        if w == "-m" || w == "--match" {
            let name = words.get(i + 1).cloned().unwrap_or_default();
            c.modules.push((name, Vec::new()));
            i += 2;
            continue;
        }
        if matches!(w, "-j" | "--jump" | "-g" | "--goto") {
            let goto = matches!(w, "-g" | "--goto");
            let name = words.get(i + 1).cloned().unwrap_or_default();
            let opts = words
                .get(i + 2..)
                .map(<[String]>::to_vec)
                .unwrap_or_default();
            c.target = Some((goto, name, opts));
            break;
        }
        if let Some((_, opts)) = c.modules.last_mut() {
            opts.push(w.to_string());
        }
        i += 1;
    }
    c
}

fn parse_u32(s: &str) -> Option<u32> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()
    } else {
        s.parse().ok()
    }
}

/// `value[/mask]` in iptables-save's hex spelling (`0x0/0x20000`).
fn hex_pair(s: &str, default_mask: Option<u32>) -> String {
    let (v, m) = match s.split_once('/') {
        Some((v, m)) => (parse_u32(v), parse_u32(m)),
        None => (parse_u32(s), default_mask),
    };
    match (v, m) {
        (Some(v), Some(m)) => format!("{}/{}", go_hex(v), go_hex(m)),
        (Some(v), None) => go_hex(v),
        _ => s.to_string(),
    }
}

const PROTOCOLS: [(&str, u8); 12] = [
    ("tcp", 6),
    ("udp", 17),
    ("icmp", 1),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
    ("sctp", 132),
    ("udplite", 136),
    ("esp", 50),
    ("ah", 51),
    ("ipencap", 4),
    ("ipv4", 4),
    ("gre", 47),
];

fn protocol_number(s: &str) -> Option<u8> {
    let l = s.to_ascii_lowercase();
    l.parse()
        .ok()
        .or_else(|| PROTOCOLS.iter().find(|(n, _)| *n == l).map(|(_, n)| *n))
}

/// How iptables-save names a protocol: the names its built-in table knows, else the number
/// (numbers that iptables resolves through /etc/protocols vary by distribution).
fn save_protocol(s: &str) -> String {
    match protocol_number(s) {
        Some(6) => "tcp".into(),
        Some(17) => "udp".into(),
        Some(1) => "icmp".into(),
        Some(58) => "ipv6-icmp".into(),
        Some(132) => "sctp".into(),
        Some(136) => "udplite".into(),
        Some(50) => "esp".into(),
        Some(51) => "ah".into(),
        Some(n) => n.to_string(),
        None => s.to_string(),
    }
}

/// iptables prints addresses as networks: `10.0.0.1` → `10.0.0.1/32`, host bits cleared.
fn save_net(s: &str) -> String {
    if let Ok(n) = s.parse::<IpNet>() {
        return n.trunc().to_string();
    }
    if let Ok(a) = s.parse::<IpAddr>() {
        return IpNet::from(a).to_string();
    }
    s.to_string()
}

/// `xtables_save_string`: quoted unless made only of `[A-Za-z0-9_-]`.
fn save_string(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        s.to_string()
    } else {
        let esc: String = s
            .chars()
            .flat_map(|c| {
                if matches!(c, '"' | '\\' | '\'') {
                    vec!['\\', c]
                } else {
                    vec![c]
                }
            })
            .collect();
        format!("\"{esc}\"")
    }
}

fn transform_module(name: &str, opts: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    match name {
        "rpfilter" => {
            // iptables-save prints --loose, --validmark, --accept-local, --invert.
            let order = ["--loose", "--validmark", "--accept-local", "--invert"];
            let mut flags: Vec<&String> = opts.iter().collect();
            flags.sort_by_key(|f| order.iter().position(|o| o == f).unwrap_or(order.len()));
            return flags.into_iter().cloned().collect();
        }
        "mark" => {
            while i < opts.len() {
                let w = &opts[i];
                out.push(w.clone());
                if w == "--mark"
                    && let Some(v) = opts.get(i + 1)
                {
                    out.push(hex_pair(v, None));
                    i += 1;
                }
                i += 1;
            }
            return out;
        }
        _ => {}
    }
    for w in opts {
        out.push(match (name, w.as_str()) {
            ("multiport", "--source-ports") => "--sports".to_string(),
            ("multiport", "--destination-ports") => "--dports".to_string(),
            _ => w.clone(),
        });
    }
    out
}

fn transform_target(name: &str, opts: &[String], ip_version: u8) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    match name {
        "MARK" => {
            let mut i = 0;
            while i < opts.len() {
                let w = opts[i].as_str();
                let v = opts.get(i + 1).map(String::as_str).unwrap_or("");
                let (value, mask) = match v.split_once('/') {
                    Some((a, b)) => (parse_u32(a), parse_u32(b)),
                    None => (parse_u32(v), None),
                };
                let pair = match (w, value) {
                    ("--set-mark", Some(val)) => Some((val, mask.unwrap_or(u32::MAX) | val)),
                    ("--set-xmark", Some(val)) => Some((val, mask.unwrap_or(u32::MAX))),
                    ("--or-mark", Some(val)) => Some((val, val)),
                    ("--and-mark", Some(val)) => Some((0, !val)),
                    ("--xor-mark", Some(val)) => Some((val, 0)),
                    _ => None,
                };
                match pair {
                    Some((val, m)) => {
                        out.push("--set-xmark".to_string());
                        out.push(format!("{}/{}", go_hex(val), go_hex(m)));
                        i += 2;
                    }
                    None => {
                        out.push(w.to_string());
                        i += 1;
                    }
                }
            }
            out
        }
        "REJECT" => {
            out.extend(opts.iter().cloned());
            if !opts.iter().any(|o| o == "--reject-with") {
                out.push("--reject-with".to_string());
                out.push(if ip_version == 6 {
                    "icmp6-port-unreachable".to_string()
                } else {
                    "icmp-port-unreachable".to_string()
                });
            }
            out
        }
        "NFLOG" => {
            // iptables-save order: prefix, group, size/range, threshold.
            let order = [
                "--nflog-prefix",
                "--nflog-group",
                "--nflog-size",
                "--nflog-range",
                "--nflog-threshold",
            ];
            let mut pairs: Vec<(String, Option<String>)> = Vec::new();
            let mut i = 0;
            while i < opts.len() {
                let k = opts[i].clone();
                let v = opts.get(i + 1).cloned();
                i += if v.is_some() { 2 } else { 1 };
                pairs.push((k, v));
            }
            pairs.sort_by_key(|(k, _)| order.iter().position(|o| o == k).unwrap_or(order.len()));
            for (k, v) in pairs {
                out.push(k);
                out.extend(v);
            }
            out
        }
        _ => opts.to_vec(),
    }
}

fn render_clauses(c: &Clauses, ip_version: u8, canonical: bool) -> String {
    let mut out: Vec<String> = Vec::new();
    for letter in ['s', 'd', 'i', 'o', 'p'] {
        for (f, neg, v) in c.basic.iter().filter(|(f, _, _)| *f == letter) {
            if *neg {
                out.push("!".into());
            }
            out.push(format!("-{f}"));
            out.push(match f {
                's' | 'd' => save_net(v),
                'p' if canonical => protocol_number(v)
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| v.clone()),
                'p' => save_protocol(v),
                _ => v.clone(),
            });
        }
    }
    let quote = |key: &str, v: &str| -> String {
        if canonical {
            v.to_string()
        } else if matches!(key, "--comment" | "--log-prefix" | "--nflog-prefix") {
            save_string(v)
        } else {
            v.to_string()
        }
    };
    let push_opts = |out: &mut Vec<String>, opts: Vec<String>| {
        let mut prev = String::new();
        for o in opts {
            let q = quote(&prev, &o);
            prev = o;
            out.push(q);
        }
    };
    for (name, opts) in &c.modules {
        out.push("-m".into());
        out.push(name.clone());
        push_opts(&mut out, transform_module(name, opts));
    }
    if let Some((goto, name, opts)) = &c.target {
        out.push(if *goto { "-g" } else { "-j" }.into());
        out.push(name.clone());
        push_opts(&mut out, transform_target(name, opts, ip_version));
    }
    out.join(" ")
}

/// A Felix-form rule body as `iptables-save` prints it: `-s/-d/-i/-o/-p` first (networks as
/// CIDRs), short flags (`-j`, `-g`), `--sports`/`--dports`, `--set-xmark V/(V|M)`, hex
/// marks, REJECT's default `--reject-with`, NFLOG options in save order, quoted strings.
/// Protocol numbers outside iptables' built-in table stay numeric (the name iptables prints
/// depends on the host's /etc/protocols).
pub fn felix_to_iptables_save(rule: &str, ip_version: u8) -> String {
    render_clauses(&parse_clauses(&split_rule_words(rule)), ip_version, false)
}

/// A canonical spelling of a rule in either form (Felix's or iptables-save's, with or
/// without `-A <chain>` and counters): compare two rules by comparing these.
pub fn normalise_iptables_rule(rule: &str, ip_version: u8) -> String {
    render_clauses(&parse_clauses(&split_rule_words(rule)), ip_version, true)
}

/// True when a Felix-form rule and a dumped rule mean the same text.
pub fn rules_equivalent(felix: &str, dumped: &str, ip_version: u8) -> bool {
    normalise_iptables_rule(felix, ip_version) == normalise_iptables_rule(dumped, ip_version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calico::names::{PolicyKind, PolicyRef};

    fn v(s: &str) -> CalicoVersion {
        CalicoVersion::parse(s).expect("version")
    }

    fn rule(json: &str) -> ProtoRule {
        serde_json::from_str(json).expect("rule")
    }

    #[test]
    fn rule_hashes_match_felix_table_vectors() {
        assert_eq!(
            rule_hashes_from_fragments(
                "FORWARD",
                &[
                    "--jump DROP",
                    "--jump ACCEPT",
                    "--jump DROP",
                    "--jump ACCEPT"
                ]
            ),
            [
                "hecdSCslEjdBPBPo",
                "plvr29-ZiKUwbzDV",
                "BMJ7gfua-eMLZ8Gu",
                "rmnR1gc8haxMy_0W"
            ]
        );
        assert_eq!(
            rule_hashes_from_fragments("cali-FORWARD", &["--jump cali-foobar"]),
            ["WiiHgeRwfPX6Ol7d"]
        );
        assert_eq!(
            rule_hashes_from_fragments("cali-foobar", &["--jump ACCEPT"]),
            ["42h7Q64_2XDzpwKe"]
        );
        assert_eq!(
            rule_hashes_from_fragments("cali-bazzbiff", &["--jump ACCEPT"]),
            ["wQBCfaMfDn3BVJmT"]
        );
    }

    #[test]
    fn rule_hashes_with_comments_match_a_real_iptables_dump() {
        // From Calico's FV fixture felix/fv/cali-iptables-dump.txt:
        // -A cali-from-wl-dispatch -m comment --comment "cali:zTj6P0TIgYvgz-md"
        //    -m comment --comment "Unknown interface" -j DROP
        let r = FelixRule::new("", "--jump DROP").with_comment("Unknown interface");
        assert_eq!(
            rule_hashes("cali-from-wl-dispatch", std::slice::from_ref(&r)),
            ["zTj6P0TIgYvgz-md"]
        );
        assert_eq!(
            rule_hashes("cali-to-wl-dispatch", &[r]),
            ["7KNphB1nNHw80nIO"]
        );
    }

    #[test]
    fn nft_hashes_use_the_layered_chain_name_and_the_nft_body() {
        // From Calico's FV fixture felix/fv/cali-nftables-dump.txt, chain
        // filter-cali-from-wl-dispatch.
        let h = nft_rule_hashes(
            "filter-cali-from-wl-dispatch",
            &["iifname vmap @filter-cali-from-wl-dispatch", "counter drop"],
        );
        assert_eq!(h, ["Lui9n9_J-BlSLUtk", "KMISEjprqaGFiicp"]);
    }

    #[test]
    fn appended_rules_hash_under_the_appends_name() {
        let r = [FelixRule::new("", "--jump ACCEPT")];
        assert_eq!(
            appended_rule_hashes("FORWARD", &r),
            rule_hashes("FORWARD*appends*", &r)
        );
        assert_ne!(
            appended_rule_hashes("FORWARD", &r),
            rule_hashes("FORWARD", &r)
        );
    }

    #[test]
    fn render_append_puts_the_hash_comment_first() {
        let r = FelixRule::new("-m mark --mark 0x10000/0x10000", "--jump RETURN")
            .with_comment("Return if policy accepted");
        assert_eq!(
            r.render_append("cali-tw-x", "abc"),
            "-A cali-tw-x -m comment --comment \"cali:abc\" -m comment --comment \"Return if policy accepted\" -m mark --mark 0x10000/0x10000 --jump RETURN"
        );
        assert_eq!(
            r.render_for_hash("cali-tw-x"),
            "-A cali-tw-x HASH -m comment --comment \"Return if policy accepted\" -m mark --mark 0x10000/0x10000 --jump RETURN"
        );
    }

    #[test]
    fn comments_are_escaped_and_truncated() {
        assert_eq!(escape_comment("a\"b;c d/é"), "a_b_c d/_");
        assert_eq!(iptables_comment(&"x".repeat(300)).len(), 256);
        assert_eq!(
            nft_rule_comment("TEST", &["boz".into(), "fizz".into()]),
            "cali:TEST; boz fizz"
        );
        let long = nft_rule_comment("TEST", &["a".repeat(129)]);
        assert_eq!(long.len(), 128);
        assert_eq!(nft_rule_comment("", &[]), "");
    }

    #[test]
    fn rule_matches_render_in_felix_order() {
        assert_eq!(calculate_rule_match(&rule("{}"), 4), "");
        assert_eq!(
            calculate_rule_match(&rule(r#"{"Protocol": "tcp"}"#), 4),
            "-p tcp"
        );
        assert_eq!(calculate_rule_match(&rule(r#"{"Protocol": 8}"#), 4), "-p 8");
        assert_eq!(
            calculate_rule_match(&rule(r#"{"SrcNet": ["10.0.0.0/16"]}"#), 4),
            "--source 10.0.0.0/16"
        );
        assert_eq!(
            calculate_rule_match(&rule(r#"{"Icmp": [10, 12]}"#), 6),
            "-m icmp6 --icmpv6-type 10/12"
        );
        assert_eq!(
            calculate_rule_match(&rule(r#"{"NotIcmp": {"Type": 10, "Code": 12}}"#), 4),
            "-m icmp ! --icmp-type 10/12"
        );
        assert_eq!(
            calculate_rule_match(
                &rule(
                    r#"{"NotSrcPorts": [[1,2],[3,4],[5,6],[7,8],[9,10],[11,12],[13,14],[15,16]]}"#
                ),
                4
            ),
            "-m multiport ! --source-ports 1:2,3:4,5:6,7:8,9:10,11:12,13:14 -m multiport ! --source-ports 15:16"
        );
        let all = rule(
            r#"{"Protocol":"tcp","SrcNet":["10.0.0.0/8"],"SrcIpSetIds":["a"],"SrcPorts":[80],
                "DstNet":["11.0.0.0/8"],"DstIpSetIds":["b"],"DstIpPortSetIds":["svc"],
                "DstPorts":[{"First":1,"Last":2}],"DstNamedPortIpSetIds":["np"],
                "NotProtocol":"udp","NotSrcNet":["12.0.0.0/8"]}"#,
        );
        assert_eq!(
            calculate_rule_match(&all, 4),
            "-p tcp --source 10.0.0.0/8 -m set --match-set cali40a src -m multiport --source-ports 80 \
--destination 11.0.0.0/8 -m set --match-set cali40b dst -m set --match-set cali40svc dst,dst \
-m multiport --destination-ports 1:2 -m set --match-set cali40np dst,dst ! -p udp ! --source 12.0.0.0/8"
        );
    }

    fn ctx() -> RuleContext {
        RuleContext {
            owner: RuleOwner::Policy,
            dir: Direction::Ingress,
            index: 0,
            nflog_id: "gnp/p".into(),
            tier: "default".into(),
            untracked: false,
            log_identity: ("gnp".into(), "p".into(), None),
        }
    }

    /// policy_test.go's rrConfigNormal marks.
    fn test_cfg(version: &str) -> RenderConfig {
        let mut c = RenderConfig::new(v(version));
        c.marks = MarkBits {
            accept: 0x80,
            pass: 0x100,
            drop: 0,
            scratch0: 0x200,
            scratch1: 0x400,
        };
        c
    }

    fn rendered(rules: &[FelixRule]) -> Vec<String> {
        rules
            .iter()
            .map(|r| {
                format!("-A test {}", r.render_body())
                    .trim_end()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn cidr_overflow_renders_match_blocks_like_felix() {
        let cfg = test_cfg("3.29");
        let r = rule(r#"{"SrcNet":["10.0.0.0/24","10.0.1.0/24"],"Action":"allow"}"#);
        assert_eq!(
            rendered(&proto_rule_to_iptables_rules(&r, 4, &cfg, &ctx())),
            [
                "-A test --jump MARK --set-mark 0x0/0x600",
                "-A test --source 10.0.0.0/24 --jump MARK --set-mark 0x200/0x200",
                "-A test --source 10.0.1.0/24 --jump MARK --set-mark 0x200/0x200",
                "-A test -m mark --mark 0x200/0x200 --jump MARK --set-mark 0x80/0x80",
                "-A test -m mark --mark 0x80/0x80 --jump RETURN",
            ]
        );
        let r = rule(
            r#"{"SrcNet":["10.0.0.0/24"],"NotSrcNet":["11.0.0.0/24"],"DstNet":["12.0.0.0/24"],"NotDstNet":["13.0.0.0/24"]}"#,
        );
        assert_eq!(
            rendered(&proto_rule_to_iptables_rules(&r, 4, &cfg, &ctx())),
            [
                "-A test --jump MARK --set-mark 0x200/0x600",
                "-A test --source 11.0.0.0/24 --jump MARK --set-mark 0/0x200",
                "-A test --destination 13.0.0.0/24 --jump MARK --set-mark 0/0x200",
                "-A test --source 10.0.0.0/24 --destination 12.0.0.0/24 -m mark --mark 0x200/0x200 --jump MARK --set-mark 0x80/0x80",
                "-A test -m mark --mark 0x80/0x80 --jump RETURN",
            ]
        );
    }

    #[test]
    fn every_cidr_overflowing_renders_all_blocks_with_flow_logs_from_3_30() {
        // policy_test.go@v3.30.0 "2 src, 2 !src, 2 dst, 2 !dst".
        let mut cfg = test_cfg("3.30");
        cfg.marks.drop = 0x800;
        cfg.flow_logs = true;
        cfg.nflog_size = false;
        let mut c = ctx();
        c.nflog_id = "default.foo".into();
        let r = rule(
            r#"{"SrcNet":["10.0.0.0/24","10.0.1.0/24"],"NotSrcNet":["11.0.0.0/24","11.0.1.0/24"],
                "DstNet":["12.0.0.0/24","12.0.1.0/24"],"NotDstNet":["13.0.0.0/24","13.0.1.0/24"],
                "Action":"allow"}"#,
        );
        assert_eq!(
            rendered(&proto_rule_to_iptables_rules(&r, 4, &cfg, &c)),
            [
                "-A test --jump MARK --set-mark 0x0/0x600",
                "-A test --source 10.0.0.0/24 --jump MARK --set-mark 0x200/0x200",
                "-A test --source 10.0.1.0/24 --jump MARK --set-mark 0x200/0x200",
                "-A test --destination 12.0.0.0/24 --jump MARK --set-mark 0x400/0x400",
                "-A test --destination 12.0.1.0/24 --jump MARK --set-mark 0x400/0x400",
                "-A test -m mark --mark 0/0x400 --jump MARK --set-mark 0/0x200",
                "-A test --source 11.0.0.0/24 --jump MARK --set-mark 0/0x200",
                "-A test --source 11.0.1.0/24 --jump MARK --set-mark 0/0x200",
                "-A test --destination 13.0.0.0/24 --jump MARK --set-mark 0/0x200",
                "-A test --destination 13.0.1.0/24 --jump MARK --set-mark 0/0x200",
                "-A test -m mark --mark 0x200/0x200 --jump MARK --set-mark 0x80/0x80",
                "-A test -m mark --mark 0x80/0x80 --jump NFLOG --nflog-group 1 --nflog-prefix API0|default.foo --nflog-range 80",
                "-A test -m mark --mark 0x80/0x80 --jump RETURN",
            ]
        );
    }

    #[test]
    fn two_named_ports_need_a_block() {
        // policy_test.go "Two named ports need a block".
        let cfg = test_cfg("3.29");
        let r = rule(r#"{"Protocol":"udp","SrcNamedPortIpSetIds":["ipset-1","ipset-2"]}"#);
        assert_eq!(
            rendered(&proto_rule_to_iptables_rules(&r, 4, &cfg, &ctx())),
            [
                "-A test --jump MARK --set-mark 0x0/0x600",
                "-A test -m set --match-set cali40ipset-1 src,src --jump MARK --set-mark 0x200/0x200",
                "-A test -m set --match-set cali40ipset-2 src,src --jump MARK --set-mark 0x200/0x200",
                "-A test -p udp -m mark --mark 0x200/0x200 --jump MARK --set-mark 0x80/0x80",
                "-A test -m mark --mark 0x80/0x80 --jump RETURN",
            ]
        );
        let one = rule(r#"{"Protocol":"tcp","SrcNamedPortIpSetIds":["ipset-1"]}"#);
        assert_eq!(
            rendered(&proto_rule_to_iptables_rules(&one, 4, &cfg, &ctx()))[0],
            "-A test -p tcp -m set --match-set cali40ipset-1 src,src --jump MARK --set-mark 0x80/0x80"
        );
    }

    #[test]
    fn log_prefixes_substitute_policy_fields_and_rate_limits_come_first() {
        // policy_test.go@v3.32.0: "calico-packet %k:%p:%t:%n" for NP app/foo in tier admin.
        let mut cfg = RenderConfig::new(v("3.32"));
        cfg.log_prefix = "calico-packet %k:%p:%t:%n".into();
        let mut c = ctx();
        c.tier = "admin".into();
        c.log_identity = ("np".into(), "foo".into(), Some("app".into()));
        let log = rule(r#"{"Action":"log","Protocol":"tcp"}"#);
        assert_eq!(
            rendered(&proto_rule_to_iptables_rules(&log, 4, &cfg, &c)),
            [
                "-A test -p tcp --jump LOG --log-prefix \"calico-packet np:app/foo:admin:foo: \" --log-level 5"
            ]
        );
        cfg.log_prefix = "calico-packet %p:%k:%%y%t%%n".into();
        c.tier = String::new();
        c.log_identity = ("pro".into(), "profile1".into(), None);
        cfg.log_rate_limit = Some(("50/minute".into(), 90));
        assert_eq!(
            rendered(&proto_rule_to_iptables_rules(&log, 4, &cfg, &c)),
            [
                "-A test -m limit --limit 50/minute --limit-burst 90 -p tcp --jump LOG --log-prefix \"calico-packet profile1:pro:%%y%profile1: \" --log-level 5"
            ]
        );
    }

    #[test]
    fn second_positive_block_uses_the_scratch_bit() {
        let cfg = test_cfg("3.29");
        let r = rule(
            r#"{"SrcNet":["10.0.0.0/24","10.0.1.0/24"],"DstNet":["12.0.0.0/24","12.0.1.0/24"]}"#,
        );
        let out = rendered(&proto_rule_to_iptables_rules(&r, 4, &cfg, &ctx()));
        assert_eq!(
            out[3],
            "-A test --destination 12.0.0.0/24 --jump MARK --set-mark 0x400/0x400"
        );
        assert_eq!(
            out[5],
            "-A test -m mark --mark 0/0x400 --jump MARK --set-mark 0/0x200"
        );
    }

    #[test]
    fn actions_render_per_version() {
        let old = test_cfg("3.29");
        let deny = rule(r#"{"Action":"deny","Protocol":"tcp"}"#);
        assert_eq!(
            rendered(&proto_rule_to_iptables_rules(&deny, 4, &old, &ctx())),
            ["-A test -p tcp --jump DROP"]
        );
        let log = rule(r#"{"Action":"log"}"#);
        assert_eq!(
            rendered(&proto_rule_to_iptables_rules(&log, 4, &old, &ctx())),
            ["-A test --jump LOG --log-prefix \"calico-packet: \" --log-level 5"]
        );
        let mut new = RenderConfig::new(v("3.30"));
        new.flow_logs = true;
        assert_eq!(
            rendered(&proto_rule_to_iptables_rules(&deny, 4, &new, &ctx())),
            [
                "-A test -p tcp --jump MARK --set-mark 0x40000/0x40000",
                "-A test -m mark --mark 0x40000/0x40000 --jump NFLOG --nflog-group 1 --nflog-prefix DPI0|gnp/p --nflog-size 80",
                "-A test -m mark --mark 0x40000/0x40000 --jump DROP",
            ]
        );
        let mut reject = RenderConfig::new(v("3.25"));
        reject.deny = DenyAction::Reject;
        assert_eq!(
            rendered(&proto_rule_to_iptables_rules(&deny, 4, &reject, &ctx())),
            ["-A test -p tcp --jump DROP"],
            "REJECT is honoured from v3.26 only"
        );
    }

    #[test]
    fn mark_bits_follow_the_allocation_order() {
        let m = MarkBits::defaults(v("3.29"));
        assert_eq!(
            (m.accept, m.pass, m.drop, m.scratch0, m.scratch1),
            (0x10000, 0x20000, 0, 0x40000, 0x80000)
        );
        let m = MarkBits::defaults(v("3.30"));
        assert_eq!(
            (m.accept, m.pass, m.drop, m.scratch0, m.scratch1),
            (0x10000, 0x20000, 0x40000, 0x80000, 0x100000)
        );
    }

    #[test]
    fn ip_version_filtering_drops_foreign_and_negated_catch_all_rules() {
        let r = rule(r#"{"SrcNet":["10.0.0.0/8","fd00::/8"]}"#);
        assert_eq!(
            filter_rule_to_ip_version(&r, 6, v("3.30")).map(|r| r.src_net),
            Some(vec!["fd00::/8".to_string()])
        );
        let r = rule(r#"{"IpVersion":6}"#);
        assert!(filter_rule_to_ip_version(&r, 4, v("3.30")).is_none());
        let r = rule(r#"{"DstNet":["fd00::/8"]}"#);
        assert!(filter_rule_to_ip_version(&r, 4, v("3.30")).is_none());
        let r = rule(r#"{"NotSrcNet":["0.0.0.0/0"]}"#);
        assert!(filter_rule_to_ip_version(&r, 4, v("3.30")).is_some());
        assert!(filter_rule_to_ip_version(&r, 4, v("3.31")).is_none());
    }

    #[test]
    fn policy_chains_strip_trailing_returns_from_3_28_and_carry_the_comment() {
        let key = crate::calico::names::FelixPolicyKey::from_ref(
            &PolicyRef::new(PolicyKind::GlobalNetworkPolicy, "p", None, "default"),
            v("3.27"),
        );
        let allow = [rule(r#"{"Action":"allow"}"#)];
        let r27 = policy_chain_rules(
            &key,
            Direction::Ingress,
            &allow,
            4,
            false,
            &RenderConfig::new(v("3.27")),
        );
        assert_eq!(r27.len(), 2);
        assert_eq!(r27[0].comments, ["Policy default.p ingress"]);
        let r28 = policy_chain_rules(
            &key,
            Direction::Ingress,
            &allow,
            4,
            false,
            &RenderConfig::new(v("3.28")),
        );
        assert_eq!(r28.len(), 1);
        let empty = policy_chain_rules(
            &key,
            Direction::Egress,
            &[],
            4,
            false,
            &RenderConfig::new(v("3.28")),
        );
        assert_eq!(
            empty,
            [FelixRule::default().with_comment("Policy default.p egress")]
        );
        let none = policy_chain_rules(
            &key,
            Direction::Egress,
            &[],
            4,
            false,
            &RenderConfig::new(v("3.21")),
        );
        assert!(none.is_empty());
    }

    #[test]
    fn namespace_profiles_allow_everything() {
        let allow = [rule(r#"{"Action":"allow"}"#)];
        let r = profile_chain_rules(
            "kns.default",
            Direction::Ingress,
            &allow,
            4,
            &RenderConfig::new(v("3.27")),
        );
        assert_eq!(
            r.iter().map(|r| r.render_body()).collect::<Vec<_>>(),
            [
                "--jump MARK --set-mark 0x10000/0x10000",
                "-m mark --mark 0x10000/0x10000 --jump RETURN"
            ]
        );
        assert_eq!(r[0].comments, ["Profile kns.default ingress"]);
    }

    #[test]
    fn felix_form_maps_to_iptables_save_form() {
        assert_eq!(
            felix_to_iptables_save(
                "-m comment --comment \"cali:x\" -p 17 -m multiport --destination-ports 4789 --jump DROP",
                4
            ),
            "-p udp -m comment --comment \"cali:x\" -m multiport --dports 4789 -j DROP"
        );
        assert_eq!(
            felix_to_iptables_save("--jump MARK --set-mark 0/0x1b0000", 4),
            "-j MARK --set-xmark 0x0/0x1b0000"
        );
        assert_eq!(
            felix_to_iptables_save(
                "-m mark --mark 0/0x80000 --in-interface cali+ --goto cali-from-host-endpoint",
                4
            ),
            "-i cali+ -m mark --mark 0x0/0x80000 -g cali-from-host-endpoint"
        );
        assert_eq!(
            felix_to_iptables_save(
                "-m mark --mark 0x80000/0x80000 -m rpfilter --invert --validmark --jump DROP",
                4
            ),
            "-m mark --mark 0x80000/0x80000 -m rpfilter --validmark --invert -j DROP"
        );
        assert_eq!(
            felix_to_iptables_save(
                "! --source 10.0.0.1 --destination 10.96.0.1/16 --jump REJECT",
                4
            ),
            "! -s 10.0.0.1/32 -d 10.96.0.0/16 -j REJECT --reject-with icmp-port-unreachable"
        );
        assert_eq!(
            felix_to_iptables_save(
                "--jump NFLOG --nflog-group 1 --nflog-prefix API0|gnp/x --nflog-range 80",
                4
            ),
            "-j NFLOG --nflog-prefix \"API0|gnp/x\" --nflog-group 1 --nflog-range 80"
        );
    }

    #[test]
    fn dumped_rules_compare_equal_to_felix_rules() {
        // Lines from Calico's FV fixture felix/fv/cali-iptables-dump.txt.
        let dumped = "-A cali-INPUT -p udp -m comment --comment \"cali:EDCNTTxYfggApx8C\" -m comment --comment \"Drop IPv4 VXLAN packets from non-allowed hosts\" -m multiport --dports 4789 -m addrtype --dst-type LOCAL -j DROP";
        let felix = "-m comment --comment \"cali:EDCNTTxYfggApx8C\" -m comment --comment \"Drop IPv4 VXLAN packets from non-allowed hosts\" -p 17 -m multiport --destination-ports 4789 -m addrtype --dst-type LOCAL --jump DROP";
        assert!(rules_equivalent(felix, dumped, 4));
        let dumped = "-A cali-PREROUTING -i cali+ -m comment --comment \"cali:W0qKAga6QivxLxL1\" -j MARK --set-xmark 0x80000/0x80000";
        let felix = "-m comment --comment \"cali:W0qKAga6QivxLxL1\" --in-interface cali+ --jump MARK --set-mark 0x80000/0x80000";
        assert!(rules_equivalent(felix, dumped, 4));
        assert!(!rules_equivalent("--jump ACCEPT", dumped, 4));
    }

    #[test]
    fn truncation_never_splits_a_character() {
        assert_eq!(truncate_to("ééé", 3), "é");
        assert_eq!(truncate_to("abc", 3), "abc");
        assert_eq!(truncate_to("abcd", 0), "");
    }

    proptest::proptest! {
        #[test]
        fn rule_normalisation_never_panics(s in "\\PC{0,80}") {
            let _ = normalise_iptables_rule(&s, 4);
            let _ = felix_to_iptables_save(&s, 6);
        }

        #[test]
        fn iptables_policy_chain_names_never_exceed_28_bytes(name in "\\PC{0,80}", ns in "[a-z0-9-]{0,20}") {
            let r = PolicyRef::new(PolicyKind::NetworkPolicy, &name, Some(&ns), "default");
            for c in crate::calico::names::policy_chain_candidates(&r, None) {
                proptest::prop_assert!(c.nft || c.chain.len() <= 28, "{}", c.chain);
            }
        }
    }

    #[test]
    fn rule_words_keep_quoted_spaces_and_escapes() {
        assert_eq!(
            split_rule_words(r#"-m comment --comment "a b \"c\"" -j X"#),
            ["-m", "comment", "--comment", "a b \"c\"", "-j", "X"]
        );
    }
}
