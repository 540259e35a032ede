//! `nft list ruleset` output (also with `-a`, which adds `# handle N`, and `-n`), and the
//! command form that `nft -f` reads (`add table …`, `add chain …`, `add rule ip filter C …`,
//! `add element …`). Both give the same [`Ruleset`]; [`Ruleset::form`] says which was seen.
//!
//! Tables hold chains (with their hook, priority and policy when they are base chains),
//! rules, and sets/maps with their elements (`elements = { … }` may wrap over several
//! lines). Each rule keeps its text and line, and the parts an analysis needs are pulled
//! out: comment, counter, verdict (`accept`, `jump X`, `goto X`, `vmap @m`, NAT), `@set`
//! references, `iifname`/`oifname`, `meta mark` matches and `meta mark set` statements, and
//! the `# xt_NAME` / `xt match "NAME"` placeholders nft prints for iptables-nft matches it
//! cannot translate (those lines start with `#` but are rules).
//!
//! This is not an nft evaluator and knows nothing of Calico's naming.

use std::collections::HashMap;

use serde::Serialize;

use super::{ParseError, numbered_lines};

/// Which grammar the text used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Form {
    /// `table ip calico { … }` blocks (`nft list ruleset`). Also for empty input.
    #[default]
    Listing,
    /// `add rule ip filter CHAIN …` lines (`nft -f` input).
    Commands,
    /// Both.
    Mixed,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Ruleset {
    pub form: Form,
    pub tables: Vec<Table>,
    /// `"<family> <name>"` → index into `tables`.
    pub index: HashMap<String, usize>,
    /// Top-level `#` lines (`# Warning: table ip nat is managed by iptables-nft, …`).
    pub comments: Vec<(usize, String)>,
    /// Commands that do not build objects (`flush ruleset`, `delete …`, `define …`).
    pub commands: Vec<(usize, String)>,
    pub errors: Vec<ParseError>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Table {
    /// `ip`, `ip6`, `inet`, `arp`, `bridge`, `netdev`.
    pub family: String,
    pub name: String,
    pub line: usize,
    pub handle: Option<u64>,
    pub chains: Vec<Chain>,
    pub chain_index: HashMap<String, usize>,
    /// Sets and maps.
    pub sets: Vec<Set>,
    pub set_index: HashMap<String, usize>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Chain {
    pub name: String,
    pub line: usize,
    pub handle: Option<u64>,
    /// `type filter hook forward priority filter; policy accept;` for base chains.
    pub base: Option<BaseChain>,
    /// A chain-level `comment "…"` line that comes before any rule.
    pub comment: Option<String>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BaseChain {
    pub chain_type: String,
    pub hook: String,
    pub device: Option<String>,
    /// As written: `filter`, `-100`, `srcnat + 10`.
    pub priority: String,
    pub policy: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Set {
    pub name: String,
    pub line: usize,
    pub handle: Option<u64>,
    pub is_map: bool,
    /// The `type` (or `typeof`) text: `ipv4_addr`, `ifname : verdict`.
    pub key_type: Option<String>,
    pub flags: Vec<String>,
    /// Other set properties (`timeout`, `size`, `policy`, `auto-merge`, …).
    pub options: Vec<(String, String)>,
    pub elements: Vec<Element>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Element {
    pub line: usize,
    /// The key as written, quotes removed (`10.0.0.0/16`, `cali1234`).
    pub value: String,
    /// For maps, what follows ` : ` (`jump filter-cali-tw-cali1234`).
    pub data: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Verdict {
    Accept,
    Drop,
    /// `reject [with …]`.
    Reject(Option<String>),
    Return,
    Continue,
    Queue,
    Jump(String),
    Goto(String),
    /// `… vmap @name` (map name without `@`) or an anonymous `vmap { … }` (as `{…}`).
    Vmap(String),
    Masquerade,
    Snat(String),
    Dnat(String),
    Redirect,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IfaceMatch {
    /// `oifname` rather than `iifname`.
    pub out: bool,
    pub negated: bool,
    /// Quotes removed; `cali*` is a prefix wildcard; `{ a, b }` lists are joined with `,`;
    /// a set reference keeps its `@`.
    pub value: String,
}

/// `meta mark & MASK == VALUE`, `meta mark VALUE`, old `mark and MASK == VALUE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MarkMatch {
    pub value: u32,
    pub mask: Option<u32>,
    pub negated: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Rule {
    pub line: usize,
    /// The rule as written (without `# handle N`); command-form rules keep the whole line.
    pub text: String,
    pub handle: Option<u64>,
    pub comment: Option<String>,
    pub counters: Option<Counters>,
    pub verdict: Option<Verdict>,
    /// `@name` references, without the `@`.
    pub set_refs: Vec<String>,
    pub ifaces: Vec<IfaceMatch>,
    pub marks: Vec<MarkMatch>,
    /// The expression of each `meta mark set …` (`meta mark | 0x00010000`).
    pub mark_sets: Vec<String>,
    /// Names of untranslated iptables matches/targets (`xt_conntrack`, `xt match "set"`).
    pub xt: Vec<String>,
}

impl Ruleset {
    /// Records as the report counts them: the number of rules.
    pub fn records(&self) -> usize {
        self.tables
            .iter()
            .flat_map(|t| &t.chains)
            .map(|c| c.rules.len())
            .sum()
    }

    pub fn table(&self, family: &str, name: &str) -> Option<&Table> {
        self.index
            .get(&format!("{family} {name}"))
            .and_then(|&i| self.tables.get(i))
    }

    /// Every rule with its table and chain.
    pub fn rules(&self) -> impl Iterator<Item = (&Table, &Chain, &Rule)> {
        self.tables.iter().flat_map(|t| {
            t.chains
                .iter()
                .flat_map(move |c| c.rules.iter().map(move |r| (t, c, r)))
        })
    }
}

impl Table {
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chain_index.get(name).and_then(|&i| self.chains.get(i))
    }

    pub fn set(&self, name: &str) -> Option<&Set> {
        self.set_index.get(name).and_then(|&i| self.sets.get(i))
    }

    fn chain_idx(&mut self, name: &str, line: usize) -> usize {
        if let Some(&i) = self.chain_index.get(name) {
            return i;
        }
        self.chains.push(Chain {
            name: name.to_string(),
            line,
            ..Chain::default()
        });
        self.chain_index
            .insert(name.to_string(), self.chains.len() - 1);
        self.chains.len() - 1
    }

    fn set_idx(&mut self, name: &str, line: usize, is_map: bool) -> usize {
        if let Some(&i) = self.set_index.get(name) {
            return i;
        }
        self.sets.push(Set {
            name: name.to_string(),
            line,
            is_map,
            ..Set::default()
        });
        self.set_index.insert(name.to_string(), self.sets.len() - 1);
        self.sets.len() - 1
    }
}

impl Rule {
    /// The chain a `jump`/`goto` verdict names.
    pub fn jump_target(&self) -> Option<&str> {
        match &self.verdict {
            Some(Verdict::Jump(c) | Verdict::Goto(c)) => Some(c),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Tok<'a> {
    s: &'a str,
    quoted: bool,
}

impl Tok<'_> {
    fn is(&self, w: &str) -> bool {
        !self.quoted && self.s == w
    }
}

/// Blank-separated words; `"…"` is one token (without quotes; nft strings have no escapes);
/// `{ } , ;` are tokens of their own even when glued to a word.
fn tokenize(s: &str) -> Vec<Tok<'_>> {
    let b = s.as_bytes();
    let n = b.len();
    let mut out = Vec::with_capacity(16);
    let mut i = 0;
    while i < n {
        let c = b[i];
        if c == b' ' || c == b'\t' {
            i += 1;
        } else if c == b'"' {
            let start = i + 1;
            let end = s[start..].find('"').map(|p| start + p).unwrap_or(n);
            out.push(Tok {
                s: &s[start..end],
                quoted: true,
            });
            i = end + 1;
        } else if matches!(c, b'{' | b'}' | b',' | b';') {
            out.push(Tok {
                s: &s[i..i + 1],
                quoted: false,
            });
            i += 1;
        } else {
            let start = i;
            while i < n && !matches!(b[i], b' ' | b'\t' | b'"' | b'{' | b'}' | b',' | b';') {
                i += 1;
            }
            out.push(Tok {
                s: &s[start..i],
                quoted: false,
            });
        }
    }
    out
}

fn brace_balance(toks: &[Tok<'_>]) -> i64 {
    toks.iter()
        .map(|t| {
            if t.is("{") {
                1
            } else if t.is("}") {
                -1
            } else {
                0
            }
        })
        .sum()
}

/// Split off a trailing `# handle N` (nft -a).
fn split_handle(l: &str) -> (&str, Option<u64>) {
    if let Some(p) = l.rfind("# handle ") {
        let num = l[p + 9..].trim();
        if !num.is_empty() && num.bytes().all(|c| c.is_ascii_digit()) {
            return (l[..p].trim_end(), num.parse().ok());
        }
    }
    (l, None)
}

fn parse_num(s: &str) -> Option<u32> {
    if let Some(h) = s.strip_prefix("0x") {
        u32::from_str_radix(h, 16).ok()
    } else {
        s.parse().ok()
    }
}

const FAMILIES: [&str; 6] = ["ip", "ip6", "inet", "arp", "bridge", "netdev"];

// ---------------------------------------------------------------------------------------------
// Rule statements
// ---------------------------------------------------------------------------------------------

/// Tokens that can make up the expression of a `… set <expr>` statement.
fn is_expr_tok(t: &Tok<'_>) -> bool {
    !t.quoted
        && (matches!(
            t.s,
            "meta" | "ct" | "mark" | "&" | "|" | "^" | "and" | "or" | "xor" | "<<" | ">>"
        ) || parse_num(t.s).is_some())
}

fn analyse_rule(toks: &[Tok<'_>], rule: &mut Rule) {
    let n = toks.len();
    let mut i = 0;
    let mut depth = 0i32;
    let at = |k: usize| {
        toks.get(k)
            .map(|t| if t.quoted { "" } else { t.s })
            .unwrap_or("")
    };
    while i < n {
        let t = toks[i];
        if t.quoted {
            i += 1;
            continue;
        }
        match t.s {
            "{" => depth += 1,
            "}" => depth = (depth - 1).max(0),
            _ => {}
        }
        if depth > 0 {
            i += 1;
            continue;
        }
        match t.s {
            "comment" if toks.get(i + 1).is_some() => {
                rule.comment = toks.get(i + 1).map(|c| c.s.to_string());
                i += 2;
                continue;
            }
            "counter" if at(i + 1) == "packets" && at(i + 3) == "bytes" => {
                if let (Ok(packets), Ok(bytes)) = (at(i + 2).parse(), at(i + 4).parse()) {
                    rule.counters = Some(Counters { packets, bytes });
                    i += 5;
                    continue;
                }
            }
            "accept" => rule.verdict = Some(Verdict::Accept),
            "drop" => rule.verdict = Some(Verdict::Drop),
            "return" => rule.verdict = Some(Verdict::Return),
            "continue" => rule.verdict = Some(Verdict::Continue),
            "queue" => rule.verdict = Some(Verdict::Queue),
            "masquerade" => rule.verdict = Some(Verdict::Masquerade),
            "redirect" => rule.verdict = Some(Verdict::Redirect),
            "reject" => {
                let mut with = None;
                if at(i + 1) == "with" {
                    let mut k = i + 2;
                    let mut parts = Vec::new();
                    while k < n && !matches!(at(k), "comment" | "" | "counter") && parts.len() < 4 {
                        parts.push(at(k));
                        k += 1;
                    }
                    with = Some(parts.join(" "));
                    i = k;
                } else {
                    i += 1;
                }
                rule.verdict = Some(Verdict::Reject(with));
                continue;
            }
            "jump" | "goto" if toks.get(i + 1).is_some() => {
                let target = toks[i + 1].s.to_string();
                rule.verdict = Some(if t.s == "jump" {
                    Verdict::Jump(target)
                } else {
                    Verdict::Goto(target)
                });
                i += 2;
                continue;
            }
            // `dnat to 10.0.0.1:80`, `snat ip to 1.2.3.4` (inet tables). Without `to` the
            // word is a value, as in `ct status dnat`.
            "snat" | "dnat"
                if at(i + 1) == "to" || (FAMILIES.contains(&at(i + 1)) && at(i + 2) == "to") =>
            {
                let mut k = i + 1;
                if at(k) != "to" {
                    k += 1;
                }
                k += 1;
                let to = at(k).to_string();
                rule.verdict = Some(if t.s == "snat" {
                    Verdict::Snat(to)
                } else {
                    Verdict::Dnat(to)
                });
                i = k + 1;
                continue;
            }
            "vmap" => {
                let v = at(i + 1);
                if let Some(name) = v.strip_prefix('@') {
                    rule.set_refs.push(name.to_string());
                    rule.verdict = Some(Verdict::Vmap(name.to_string()));
                    i += 2;
                } else {
                    rule.verdict = Some(Verdict::Vmap("{…}".to_string()));
                    i += 1;
                }
                continue;
            }
            // `iifname vmap @m` is a verdict map keyed by the name, not a name match.
            "iifname" | "oifname" if at(i + 1) != "vmap" => {
                let mut k = i + 1;
                let mut negated = false;
                match at(k) {
                    "!=" => {
                        negated = true;
                        k += 1;
                    }
                    "==" => k += 1,
                    _ => {}
                }
                let value = if toks.get(k).is_some_and(|t| t.is("{")) {
                    let mut vals = Vec::new();
                    k += 1;
                    while k < n && !toks[k].is("}") {
                        if !toks[k].is(",") {
                            vals.push(toks[k].s);
                        }
                        k += 1;
                    }
                    vals.join(",")
                } else {
                    toks.get(k).map(|t| t.s.to_string()).unwrap_or_default()
                };
                if let Some(name) = value.strip_prefix('@') {
                    rule.set_refs.push(name.to_string());
                }
                rule.ifaces.push(IfaceMatch {
                    out: t.s == "oifname",
                    negated,
                    value,
                });
                i = k + 1;
                continue;
            }
            "meta" if at(i + 1) == "mark" => {
                i = mark_at(toks, i + 2, rule);
                continue;
            }
            "mark" => {
                // Old listings print `mark and 0x10000 == 0x10000` without `meta`.
                i = mark_at(toks, i + 1, rule);
                continue;
            }
            "ct" if at(i + 1) == "mark" => {
                // Conntrack mark: not the packet mark. Skip a `ct mark set <expr>`.
                let mut k = i + 2;
                if at(k) == "set" {
                    k += 1;
                    while k < n && is_expr_tok(&toks[k]) {
                        k += 1;
                    }
                }
                i = k;
                continue;
            }
            "#" if at(i + 1).starts_with("xt_") => {
                rule.xt.push(at(i + 1).to_string());
                i += 2;
                continue;
            }
            "xt" if matches!(at(i + 1), "match" | "target") => {
                if let Some(name) = toks.get(i + 2) {
                    rule.xt.push(name.s.to_string());
                }
                i += 3;
                continue;
            }
            s if s.starts_with('@') => {
                let name = s.trim_start_matches('@');
                if !name.is_empty() {
                    rule.set_refs.push(name.to_string());
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// After `meta mark` / `mark` at index `k`: a `set <expr>` statement or a match. Returns the
/// index after what was consumed.
fn mark_at(toks: &[Tok<'_>], mut k: usize, rule: &mut Rule) -> usize {
    let at = |k: usize| {
        toks.get(k)
            .map(|t| if t.quoted { "" } else { t.s })
            .unwrap_or("")
    };
    if at(k) == "set" {
        let start = k + 1;
        let mut end = start;
        while end < toks.len() && is_expr_tok(&toks[end]) {
            end += 1;
        }
        let expr: Vec<&str> = toks[start..end].iter().map(|t| t.s).collect();
        rule.mark_sets.push(expr.join(" "));
        return end;
    }
    let mut mask = None;
    if matches!(at(k), "&" | "and") {
        mask = parse_num(at(k + 1));
        k += 2;
    }
    let mut negated = false;
    match at(k) {
        "!=" => {
            negated = true;
            k += 1;
        }
        "==" => k += 1,
        _ => {}
    }
    if let Some(value) = parse_num(at(k)) {
        rule.marks.push(MarkMatch {
            value,
            mask,
            negated,
        });
        return k + 1;
    }
    k
}

// ---------------------------------------------------------------------------------------------
// Structure
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Ctx {
    Table(usize),
    Chain(usize, usize),
    Set(usize, usize),
    /// A table-level object this parser does not model (flowtable, named counter, …).
    Skip,
}

/// A statement that continues over several lines (unbalanced `{`).
struct Pending {
    line: usize,
    text: String,
    balance: i64,
    handle: Option<u64>,
}

struct Parser {
    rs: Ruleset,
    stack: Vec<Ctx>,
    pending: Option<Pending>,
    /// Set whose `elements = {` is open: (table, set, brace depth).
    elements: Option<(usize, usize, i64)>,
    seen_listing: bool,
    seen_commands: bool,
}

impl Parser {
    fn err(&mut self, line: usize, msg: impl Into<String>) {
        self.rs.errors.push(ParseError::new(line, msg));
    }

    fn table_idx(&mut self, family: &str, name: &str, line: usize) -> usize {
        let key = format!("{family} {name}");
        if let Some(&i) = self.rs.index.get(&key) {
            return i;
        }
        self.rs.tables.push(Table {
            family: family.to_string(),
            name: name.to_string(),
            line,
            ..Table::default()
        });
        let i = self.rs.tables.len() - 1;
        self.rs.index.insert(key, i);
        i
    }

    fn line(&mut self, n: usize, raw: &str) {
        let l = raw.trim();
        if l.is_empty() {
            return;
        }
        if let Some((t, s, _)) = self.elements {
            self.element_line(n, l, t, s);
            return;
        }
        if let Some(mut p) = self.pending.take() {
            let (body, handle) = split_handle(l);
            p.text.push(' ');
            p.text.push_str(body);
            p.balance += brace_balance(&tokenize(body));
            p.handle = handle.or(p.handle);
            if p.balance > 0 {
                self.pending = Some(p);
            } else {
                self.statement(p.line, &p.text, p.handle, true);
            }
            return;
        }
        let (body, handle) = split_handle(l);
        self.statement(n, body, handle, false);
    }

    /// One logical line. `joined`: already completed over several lines.
    fn statement(&mut self, n: usize, l: &str, handle: Option<u64>, joined: bool) {
        let ctx = self.stack.last().copied();
        let toks = tokenize(l);
        let Some(first) = toks.first().copied() else {
            return;
        };
        match ctx {
            None => self.top_level(n, l, &toks, handle, joined),
            Some(Ctx::Skip) => {
                let b = brace_balance(&toks);
                if b < 0 {
                    for _ in 0..(-b) {
                        self.stack.pop();
                    }
                } else {
                    for _ in 0..b {
                        self.stack.push(Ctx::Skip);
                    }
                }
            }
            Some(Ctx::Table(t)) => self.table_level(n, &toks, handle, t),
            Some(Ctx::Chain(t, c)) => {
                if first.is("}") {
                    self.stack.pop();
                    return;
                }
                if first.is("type") && toks.iter().any(|x| x.is("hook")) {
                    self.rs.tables[t].chains[c].base = Some(chain_spec(&toks));
                    return;
                }
                if first.is("comment")
                    && toks.len() == 2
                    && self.rs.tables[t].chains[c].rules.is_empty()
                {
                    self.rs.tables[t].chains[c].comment = Some(toks[1].s.to_string());
                    return;
                }
                if first.is("#") && !toks.get(1).is_some_and(|x| x.s.starts_with("xt_")) {
                    // A comment inside a chain (not a `# xt_…` untranslated rule).
                    self.rs
                        .comments
                        .push((n, l.trim_start_matches('#').trim().to_string()));
                    return;
                }
                if !joined && brace_balance(&toks) > 0 {
                    self.pending = Some(Pending {
                        line: n,
                        text: l.to_string(),
                        balance: brace_balance(&toks),
                        handle,
                    });
                    return;
                }
                let mut rule = Rule {
                    line: n,
                    text: l.to_string(),
                    handle,
                    ..Rule::default()
                };
                analyse_rule(&toks, &mut rule);
                self.rs.tables[t].chains[c].rules.push(rule);
            }
            Some(Ctx::Set(t, s)) => {
                if first.is("}") {
                    self.stack.pop();
                    return;
                }
                self.set_property(n, &toks, t, s);
            }
        }
    }

    fn top_level(
        &mut self,
        n: usize,
        l: &str,
        toks: &[Tok<'_>],
        handle: Option<u64>,
        joined: bool,
    ) {
        let first = toks[0];
        if first.s.starts_with('#') && !first.quoted {
            self.rs
                .comments
                .push((n, l.trim_start_matches('#').trim().to_string()));
            return;
        }
        if first.is("table") {
            self.seen_listing = true;
            let (family, name) = family_and_name(&toks[1..]);
            let Some(name) = name else {
                self.err(n, "table without a name");
                return;
            };
            let t = self.table_idx(family, name, n);
            self.rs.tables[t].handle = handle.or(self.rs.tables[t].handle);
            if brace_balance(toks) > 0 {
                self.stack.push(Ctx::Table(t));
            }
            return;
        }
        if matches!(first.s, "add" | "create" | "insert" | "replace") && !first.quoted {
            self.seen_commands = true;
            if !joined && brace_balance(toks) > 0 {
                self.pending = Some(Pending {
                    line: n,
                    text: l.to_string(),
                    balance: brace_balance(toks),
                    handle,
                });
                return;
            }
            self.command(n, l, toks, handle);
            return;
        }
        if matches!(
            first.s,
            "flush"
                | "delete"
                | "destroy"
                | "list"
                | "reset"
                | "rename"
                | "define"
                | "include"
                | "redefine"
                | "undefine"
        ) {
            self.seen_commands = true;
            self.rs.commands.push((n, l.to_string()));
            return;
        }
        if first.is("}") {
            self.err(n, "`}` without an open block");
            return;
        }
        self.err(n, format!("unrecognised line: {}", ellipsis(l)));
    }

    fn table_level(&mut self, n: usize, toks: &[Tok<'_>], handle: Option<u64>, t: usize) {
        let first = toks[0];
        let opens = brace_balance(toks) > 0;
        match first.s {
            "}" if !first.quoted => {
                self.stack.pop();
            }
            "chain" => {
                let Some(name) = toks.get(1).filter(|x| !x.is("{")) else {
                    self.err(n, "chain without a name");
                    return;
                };
                let c = self.rs.tables[t].chain_idx(name.s, n);
                let chain = &mut self.rs.tables[t].chains[c];
                chain.line = n;
                chain.handle = handle;
                if opens {
                    self.stack.push(Ctx::Chain(t, c));
                } else if let Some(open) = toks.iter().position(|x| x.is("{")) {
                    // `chain x { type filter hook input priority 0; }` on one line.
                    let inner = &toks[open + 1..toks.len().saturating_sub(1)];
                    if inner.iter().any(|x| x.is("hook")) {
                        chain.base = Some(chain_spec(inner));
                    }
                }
            }
            "set" | "map" => {
                let Some(name) = toks.get(1).filter(|x| !x.is("{")) else {
                    self.err(n, "set without a name");
                    return;
                };
                let s = self.rs.tables[t].set_idx(name.s, n, first.s == "map");
                let set = &mut self.rs.tables[t].sets[s];
                set.line = n;
                set.handle = handle;
                if opens {
                    self.stack.push(Ctx::Set(t, s));
                }
            }
            "flags" | "comment" => {}
            _ if opens => self.stack.push(Ctx::Skip),
            _ => self.err(n, format!("unrecognised table entry `{}`", first.s)),
        }
    }

    fn set_property(&mut self, n: usize, toks: &[Tok<'_>], t: usize, s: usize) {
        let first = toks[0].s;
        let rest: Vec<&str> = toks[1..]
            .iter()
            .filter(|x| !x.is(";"))
            .map(|x| x.s)
            .collect();
        match first {
            "type" | "typeof" => self.rs.tables[t].sets[s].key_type = Some(rest.join(" ")),
            "flags" => {
                let flags = rest.iter().filter(|f| **f != ",").map(|f| f.to_string());
                self.rs.tables[t].sets[s].flags.extend(flags);
            }
            "elements" => {
                let open = toks.iter().position(|x| x.is("{"));
                match open {
                    Some(p) => {
                        let depth = brace_balance(toks);
                        self.add_elements(n, &toks[p + 1..], t, s);
                        if depth > 0 {
                            self.elements = Some((t, s, depth));
                        }
                    }
                    None => self.err(n, "elements without `{`"),
                }
            }
            _ => {
                let set = &mut self.rs.tables[t].sets[s];
                set.options.push((first.to_string(), rest.join(" ")));
            }
        }
    }

    fn element_line(&mut self, n: usize, l: &str, t: usize, s: usize) {
        let toks = tokenize(l);
        let b = brace_balance(&toks);
        self.add_elements(n, &toks, t, s);
        let depth = self.elements.map(|e| e.2).unwrap_or(0) + b;
        self.elements = if depth > 0 { Some((t, s, depth)) } else { None };
    }

    /// Elements separated by `,` until the closing `}` (nested braces are kept in the text).
    fn add_elements(&mut self, n: usize, toks: &[Tok<'_>], t: usize, s: usize) {
        let mut cur: Vec<Tok<'_>> = Vec::new();
        let mut depth = 0i32;
        let flush = |cur: &mut Vec<Tok<'_>>, set: &mut Set| {
            if cur.is_empty() {
                return;
            }
            let colon = cur.iter().position(|x| x.is(":"));
            let join = |ts: &[Tok<'_>]| ts.iter().map(|x| x.s).collect::<Vec<_>>().join(" ");
            let (value, data) = match colon {
                Some(p) => (join(&cur[..p]), Some(join(&cur[p + 1..]))),
                None => (join(cur), None),
            };
            set.elements.push(Element {
                line: n,
                value,
                data,
            });
            cur.clear();
        };
        let set = &mut self.rs.tables[t].sets[s];
        for tok in toks {
            if tok.is("{") {
                depth += 1;
                cur.push(*tok);
            } else if tok.is("}") {
                if depth == 0 {
                    break;
                }
                depth -= 1;
                cur.push(*tok);
            } else if tok.is(",") && depth == 0 {
                flush(&mut cur, set);
            } else {
                cur.push(*tok);
            }
        }
        flush(&mut cur, set);
    }

    fn command(&mut self, n: usize, l: &str, toks: &[Tok<'_>], handle: Option<u64>) {
        let obj = toks.get(1).map(|t| t.s).unwrap_or("");
        let (family, rest) = match toks.get(2) {
            Some(f) if !f.quoted && FAMILIES.contains(&f.s) => (f.s, &toks[3..]),
            _ => ("ip", toks.get(2..).unwrap_or(&[])),
        };
        let word = |k: usize| rest.get(k).map(|t| t.s);
        let Some(table) = word(0) else {
            self.err(n, format!("`{}` without a table", ellipsis(l)));
            return;
        };
        let t = self.table_idx(family, table, n);
        match obj {
            "table" => {}
            "chain" => {
                let Some(name) = word(1) else {
                    self.err(n, "add chain without a name");
                    return;
                };
                let c = self.rs.tables[t].chain_idx(name, n);
                if rest.iter().any(|x| x.is("hook")) {
                    self.rs.tables[t].chains[c].base = Some(chain_spec(&rest[2..]));
                }
            }
            "rule" => {
                let Some(chain) = word(1) else {
                    self.err(n, "add rule without a chain");
                    return;
                };
                let mut k = 2;
                while matches!(word(k), Some("position" | "handle" | "index")) {
                    k += 2;
                }
                let c = self.rs.tables[t].chain_idx(chain, n);
                let mut rule = Rule {
                    line: n,
                    text: l.to_string(),
                    handle,
                    ..Rule::default()
                };
                analyse_rule(rest.get(k..).unwrap_or(&[]), &mut rule);
                self.rs.tables[t].chains[c].rules.push(rule);
            }
            "set" | "map" | "element" => {
                let Some(name) = word(1) else {
                    self.err(n, format!("add {obj} without a name"));
                    return;
                };
                let s = self.rs.tables[t].set_idx(name, n, obj == "map");
                let Some(open) = rest.iter().position(|x| x.is("{")) else {
                    return;
                };
                let inner = &rest[open + 1..];
                if obj == "element" {
                    self.add_elements(n, inner, t, s);
                } else {
                    // `{ type ipv4_addr; flags interval; elements = { … } }`
                    for part in split_top_level(inner) {
                        if !part.is_empty() && !part[0].is("}") {
                            self.set_property(n, part, t, s);
                        }
                    }
                }
            }
            _ => self.rs.commands.push((n, l.to_string())),
        }
    }

    fn finish(mut self) -> Ruleset {
        if let Some(p) = self.pending.take() {
            self.err(p.line, "statement not closed (unbalanced `{`)");
        }
        if self.elements.is_some() || !self.stack.is_empty() {
            let last = self.rs.tables.last().map(|t| t.line).unwrap_or(1);
            self.err(last, "block not closed at end of text (truncated?)");
        }
        self.rs.form = match (self.seen_listing, self.seen_commands) {
            (_, false) => Form::Listing,
            (false, true) => Form::Commands,
            (true, true) => Form::Mixed,
        };
        self.rs
    }
}

/// Split tokens on `;` at brace depth 0.
fn split_top_level<'t, 'a>(toks: &'t [Tok<'a>]) -> Vec<&'t [Tok<'a>]> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, t) in toks.iter().enumerate() {
        if t.is("{") {
            depth += 1;
        } else if t.is("}") {
            depth -= 1;
        } else if t.is(";") && depth == 0 {
            out.push(&toks[start..i]);
            start = i + 1;
        }
    }
    out.push(&toks[start..]);
    out
}

/// `[family] name` after `table`.
fn family_and_name<'a>(toks: &[Tok<'a>]) -> (&'a str, Option<&'a str>) {
    match toks {
        [f, name, ..] if FAMILIES.contains(&f.s) && !name.is("{") => (f.s, Some(name.s)),
        [name, ..] if !name.is("{") => ("ip", Some(name.s)),
        _ => ("ip", None),
    }
}

/// `type filter hook forward [device "eth0"] priority srcnat + 10; policy accept;`
fn chain_spec(toks: &[Tok<'_>]) -> BaseChain {
    let mut b = BaseChain::default();
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i];
        let next = toks.get(i + 1).map(|x| x.s.to_string()).unwrap_or_default();
        match t.s {
            "type" if !t.quoted => {
                b.chain_type = next;
                i += 2;
            }
            "hook" if !t.quoted => {
                b.hook = next;
                i += 2;
            }
            "device" if !t.quoted => {
                b.device = Some(next);
                i += 2;
            }
            "policy" if !t.quoted => {
                b.policy = Some(next);
                i += 2;
            }
            "priority" if !t.quoted => {
                let mut k = i + 1;
                let mut parts = Vec::new();
                while k < toks.len() && !toks[k].is(";") && !toks[k].is("}") {
                    parts.push(toks[k].s);
                    k += 1;
                }
                b.priority = parts.join(" ");
                i = k;
            }
            _ => i += 1,
        }
    }
    b
}

fn ellipsis(l: &str) -> String {
    match l.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &l[..i]),
        None => l.to_string(),
    }
}

/// Parse `nft list ruleset` output or `nft -f` command text.
pub fn parse(text: &str) -> Ruleset {
    let mut p = Parser {
        rs: Ruleset::default(),
        stack: Vec::new(),
        pending: None,
        elements: None,
        seen_listing: false,
        seen_commands: false,
    };
    for (n, l) in numbered_lines(text, 1) {
        p.line(n, l);
    }
    p.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> Rule {
        let mut r = Rule::default();
        analyse_rule(&tokenize(text), &mut r);
        r
    }

    #[test]
    fn mark_matches_in_new_and_old_spelling() {
        let r = rule("meta mark & 0x00010000 == 0x00010000 counter packets 0 bytes 0 accept");
        assert_eq!(
            r.marks,
            vec![MarkMatch {
                value: 0x10000,
                mask: Some(0x10000),
                negated: false
            }]
        );
        let r = rule("mark and 0x10000 != 0x10000 drop");
        assert_eq!(
            r.marks,
            vec![MarkMatch {
                value: 0x10000,
                mask: Some(0x10000),
                negated: true
            }]
        );
        assert_eq!(r.verdict, Some(Verdict::Drop));
    }

    #[test]
    fn mark_set_statements_are_not_matches() {
        let r = rule(
            "counter packets 0 bytes 0 meta mark set meta mark | 0x00010000 comment \"cali:x;\"",
        );
        assert!(r.marks.is_empty());
        assert_eq!(r.mark_sets, vec!["meta mark | 0x00010000"]);
        assert_eq!(r.comment.as_deref(), Some("cali:x;"));
        let r = rule(
            "ct state new meta mark & 0x0000ff00 != 0x00000000 ct mark set meta mark & 0x0000ff00",
        );
        assert_eq!(r.marks.len(), 1);
        assert!(r.marks[0].negated);
    }

    #[test]
    fn anonymous_sets_do_not_produce_verdicts() {
        let r = rule("tcp dport { 25, 587 } counter jump CNI-DN-x");
        assert_eq!(r.jump_target(), Some("CNI-DN-x"));
    }

    #[test]
    fn xt_placeholders_are_recorded() {
        let r = rule("# xt_conntrack counter packets 0 bytes 0 drop");
        assert_eq!(r.xt, vec!["xt_conntrack"]);
        assert_eq!(
            r.counters,
            Some(Counters {
                packets: 0,
                bytes: 0
            })
        );
        let r = rule("meta l4proto tcp xt match \"set\" counter packets 1 bytes 2 accept");
        assert_eq!(r.xt, vec!["set"]);
    }

    #[test]
    fn handles_are_split_off() {
        assert_eq!(
            split_handle("counter packets 0 bytes 0 accept # handle 12"),
            ("counter packets 0 bytes 0 accept", Some(12))
        );
        assert_eq!(
            split_handle("accept comment \"# handle x\""),
            ("accept comment \"# handle x\"", None)
        );
    }

    #[test]
    fn odd_inputs_never_panic() {
        for s in [
            "",
            "}",
            "{",
            "table",
            "table ip",
            "table ip t {",
            "table ip t {\nchain",
            "table ip t {\nchain c {\n",
            "table ip t {\nset s {\nelements = {",
            "add",
            "add rule",
            "add rule ip",
            "add rule ip t",
            "add element ip t s {",
            "\"",
            "table ip t { chain c { type filter hook input priority 0; } }",
            "meta mark",
            "é",
            "# handle ",
        ] {
            let _ = parse(s);
        }
    }
}
