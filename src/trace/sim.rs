//! Offline simulation of one packet through a node's captured iptables ruleset: the first
//! packet of one connection, taken through the tables and chains its hook crosses (raw, mangle,
//! nat, filter, security in the kernel's priority order), rule by rule, exactly as netfilter
//! would evaluate them: `-j` pushes a return point and `-g` does not, `RETURN` or the end of a
//! user chain goes back to the last return point (or to the built-in chain's policy when there
//! is none), `ACCEPT` ends one table, `DROP`/`REJECT` end the packet, `MARK` changes the mark
//! later rules test. IP set matches look the packet up in the captured `ipset save`.
//!
//! What the bundle cannot tell is said, not guessed. A criterion that cannot be decided
//! offline (`-m rpfilter`, `-m addrtype` without the node's addresses, a set missing from the
//! ipset dump, `-m physdev`, a module this simulator does not know, …) is *undecided*.
//! **The rule for the verdict:** the simulation explores both answers of every undecided
//! criterion (one consistent answer per criterion within one branch, so that the same set
//! lookup is not both true and false), and the verdict is `Allow` or `Deny` only when every
//! branch reaches that same verdict; otherwise it is `Unknown`. The path returned is the
//! branch where every undecided criterion is assumed *not* to match; each such rule appears
//! in it as an [`Action::Undecided`] step whose note says what the other branch would have
//! done. Branches, steps and call depth are bounded ([`SimOptions`]); hitting a bound makes
//! that branch `Unknown`, with a note.
//!
//! Deliberately not simulated: address rewriting. DNAT/SNAT/MASQUERADE/REDIRECT are recorded
//! (they end the nat table, as in the kernel) but the packet keeps its addresses; after a
//! DNAT, criteria on the destination are undecided. Routing is not recomputed: the caller
//! says which interfaces the packet crosses. Only the first packet of a connection (conntrack
//! state `NEW` unless the caller says otherwise) is modelled; the nat table is consulted only
//! for it, as in the kernel. Where the kernel passes no device (no output interface before
//! routing, no input interface for locally sent packets) `-i`/`-o` compare with an empty name
//! as iptables does (a named interface never matches, `+` always does); where it passes one
//! but the caller did not say which, the criterion is undecided. In raw, which runs before
//! conntrack, `--ctstate` sees INVALID, as in the kernel.
//!
//! This module knows netfilter, not Calico: it works on [`iptables_save::Dump`] and
//! [`ipset::Dump`] records and never looks at chain names except to follow jumps.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::parse::ipset::{self, IpSet};
use crate::parse::iptables_save::{
    self, Chain, Counters, Form, Match, MatchKind, PortDir, PortRange, Rule, RuleOp, SetDir,
    SetMatch, Str, Table, TargetKind, iface_matches,
};

// ---------------------------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------------------------

/// The conntrack state the packet is assumed to be in once conntrack has seen it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CtState {
    /// The first packet of a connection (the default, and what a trace is about).
    #[default]
    New,
    Established,
    Related,
    Invalid,
    /// Not tracked (as after a `NOTRACK` in raw): the nat table is not consulted.
    Untracked,
}

/// One packet. Ports are `None` when unknown (a rule on that port is then undecided) or
/// when the protocol has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number: 6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, 132 SCTP, …
    pub proto: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    /// The interface the packet came in on (FORWARD and INPUT paths).
    pub in_iface: Option<String>,
    /// The interface routing sends it out of (FORWARD and OUTPUT paths).
    pub out_iface: Option<String>,
    /// The packet mark when it enters the first table.
    pub mark: u32,
    pub ct_state: CtState,
}

impl Packet {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;

    /// A packet with no ports, interfaces or mark, in state `NEW`.
    pub fn new(src: IpAddr, dst: IpAddr, proto: u8) -> Packet {
        Packet {
            src,
            dst,
            proto,
            sport: None,
            dport: None,
            icmp_type: None,
            icmp_code: None,
            in_iface: None,
            out_iface: None,
            mark: 0,
            ct_state: CtState::New,
        }
    }

    /// A TCP SYN to `dport` (source port unknown).
    pub fn tcp(src: IpAddr, dst: IpAddr, dport: u16) -> Packet {
        Packet {
            dport: Some(dport),
            ..Packet::new(src, dst, Packet::TCP)
        }
    }

    /// A UDP datagram to `dport` (source port unknown).
    pub fn udp(src: IpAddr, dst: IpAddr, dport: u16) -> Packet {
        Packet {
            dport: Some(dport),
            ..Packet::new(src, dst, Packet::UDP)
        }
    }

    pub fn with_sport(mut self, sport: u16) -> Packet {
        self.sport = Some(sport);
        self
    }

    pub fn with_in_iface(mut self, iface: &str) -> Packet {
        self.in_iface = Some(iface.to_string());
        self
    }

    pub fn with_out_iface(mut self, iface: &str) -> Packet {
        self.out_iface = Some(iface.to_string());
        self
    }

    pub fn with_mark(mut self, mark: u32) -> Packet {
        self.mark = mark;
        self
    }

    pub fn with_ct_state(mut self, state: CtState) -> Packet {
        self.ct_state = state;
        self
    }
}

/// Which way the packet goes through the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    /// Routed through the node (pod to pod): PREROUTING, FORWARD, POSTROUTING.
    Forward,
    /// Delivered to the node itself: PREROUTING, INPUT.
    Input,
    /// Sent by the node itself: OUTPUT, POSTROUTING.
    Output,
}

/// Knobs of one simulation.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Every address of the node (`ip addr`), which decides `-m addrtype --*-type LOCAL`.
    /// `None`: not known, and such criteria are undecided (loopback addresses excepted).
    pub local_addrs: Option<Vec<IpAddr>>,
    /// Rule evaluations in one branch before it gives up as `Unknown`.
    pub max_steps: usize,
    /// Branches explored for undecided criteria, in all.
    pub max_branches: usize,
    /// Nested `-j` calls (the kernel refuses loops at load time; a dump can still have one).
    pub max_depth: usize,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            local_addrs: None,
            max_steps: 2_000_000,
            max_branches: 256,
            max_depth: 64,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
    Unknown,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Unknown => "unknown",
        })
    }
}

/// What happened at one step of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// `-j CHAIN`: a return point is pushed.
    Jump,
    /// `-g CHAIN`: no return point.
    Goto,
    /// `RETURN`.
    Return,
    /// Fell off the end of a user chain: back to the last return point.
    EndOfChain,
    /// `ACCEPT`: this table is done; the next table of the path follows.
    Accept,
    Drop,
    Reject,
    /// `MARK` (or `CONNMARK --restore-mark`) changed the packet mark.
    Mark,
    /// A non-terminating target (`LOG`, `NFLOG`, `NOTRACK`, `CT`, a rule without target…).
    Continue,
    /// `DNAT`/`SNAT`/`MASQUERADE`/`REDIRECT`/`NETMAP`: the nat table is done. Addresses are
    /// not rewritten by the simulation.
    Nat,
    /// The built-in chain's policy applied.
    Policy,
    /// A rule whose criteria could not be decided; assumed not to match.
    Undecided,
    /// The simulation cannot go on (a target it cannot follow, a limit).
    Stop,
    /// A table or built-in chain of the path that the dump does not have, or that the packet
    /// does not traverse (nat for a packet that is not the first of a connection).
    Skipped,
}

/// One step of the path, with the evidence for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub table: String,
    pub chain: String,
    /// Index into [`Chain::rules`] (0-based; iptables' rule number is this + 1). `None` for
    /// the chain policy, the end of a chain, and skipped tables.
    pub rule_index: Option<usize>,
    /// 1-based line in the dump: of the rule, or of the chain's declaration. 0 for a table
    /// the dump does not have.
    pub line: usize,
    pub action: Action,
    /// The rule as dumped, or `:CHAIN POLICY` for a policy.
    pub text: String,
    pub counters: Option<Counters>,
    /// The packet mark after this step.
    pub mark: u32,
    pub note: Option<String>,
}

/// The outcome of [`simulate`].
#[derive(Debug, Clone, Serialize)]
pub struct SimResult {
    pub verdict: Verdict,
    /// The branch where every undecided criterion is assumed not to match.
    pub path: Vec<Step>,
    /// The mark at the end of that path.
    pub final_mark: u32,
    /// Criteria that could not be decided offline, `table chain line N: what` (those of the
    /// path first, then those met only in the branches explored for them).
    pub unknowns: Vec<String>,
    /// What else a reader must know: skipped tables, NAT not applied, limits hit.
    pub notes: Vec<String>,
}

impl SimResult {
    /// The step that decided the verdict on the path: the last step for a drop or an unknown
    /// end; for an allow, the last `ACCEPT` or policy of the filter table (or the last step).
    pub fn deciding_step(&self) -> Option<&Step> {
        deciding(&self.path, self.verdict)
    }
}

fn deciding(path: &[Step], verdict: Verdict) -> Option<&Step> {
    if verdict == Verdict::Allow {
        let filter = path
            .iter()
            .rev()
            .find(|s| s.table == "filter" && matches!(s.action, Action::Accept | Action::Policy));
        if filter.is_some() {
            return filter;
        }
    }
    path.iter()
        .rev()
        .find(|s| s.action != Action::Skipped)
        .or(path.last())
}

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

/// Simulate `pkt` through `ipt` along `hook`, with the set contents of `sets` (if captured)
/// and default [`SimOptions`].
pub fn simulate(
    ipt: &iptables_save::Dump,
    sets: Option<&ipset::Dump>,
    pkt: &Packet,
    hook: Hook,
) -> SimResult {
    simulate_with(ipt, sets, pkt, hook, &SimOptions::default())
}

pub fn simulate_with(
    ipt: &iptables_save::Dump,
    sets: Option<&ipset::Dump>,
    pkt: &Packet,
    hook: Hook,
    opts: &SimOptions,
) -> SimResult {
    let mut notes = Vec::new();
    let refuse = |why: String| SimResult {
        verdict: Verdict::Unknown,
        path: Vec::new(),
        final_mark: pkt.mark,
        unknowns: Vec::new(),
        notes: vec![why],
    };
    if pkt.src.is_ipv4() != pkt.dst.is_ipv4() {
        return refuse("source and destination are of different IP families".to_string());
    }
    if let Some(v6) = ipt.is_ipv6()
        && v6 != pkt.src.is_ipv6()
    {
        let (dump, packet) = if v6 {
            ("an ip6tables", "IPv4")
        } else {
            ("an iptables (IPv4)", "IPv6")
        };
        return refuse(format!(
            "{dump} dump never sees an {packet} packet: simulate with the other family's dump"
        ));
    }
    let hops = hops(hook);
    if ipt.form == Form::List {
        notes.push(
            "the ruleset is an `iptables -L` listing: criteria were read best-effort from it"
                .to_string(),
        );
    }
    if let Some(first) = ipt.errors.first() {
        notes.push(format!(
            "the dump had {} line(s) it could not read (first at line {}): rules there are \
             missing from the simulation",
            ipt.errors.len(),
            first.line
        ));
    }
    for t in &ipt.tables {
        if !t.committed && !t.implicit && hops.iter().any(|h| h.table == t.name) {
            notes.push(format!(
                "table {} has no COMMIT: the dump may be cut short",
                t.name
            ));
        }
    }
    let mut dup_tables = Vec::new();
    for hop in hops {
        let n = ipt.tables.iter().filter(|t| t.name == hop.table).count();
        if n > 1 && !dup_tables.contains(&hop.table) {
            dup_tables.push(hop.table);
        }
        if let Some(t) = ipt.table(hop.table)
            && t.chains
                .iter()
                .flat_map(|c| c.rules.iter())
                .any(|r| r.op != RuleOp::Append)
        {
            let msg = format!(
                "table {} holds -I/-R/-D lines (restore input): rules are taken in file order, \
                 which is not the order the kernel would have",
                hop.table
            );
            if !notes.contains(&msg) {
                notes.push(msg);
            }
        }
    }
    for t in &dup_tables {
        notes.push(format!(
            "the dump holds more than one `{t}` table (legacy and nf_tables both in use?): only \
             the first is simulated, so an allow cannot be trusted"
        ));
    }

    let cx = Cx {
        ipt,
        sets,
        pkt,
        hook,
        hops,
        opts,
        branches: Cell::new(0),
    };
    let explored = explore(&cx, Machine::new(pkt));
    let mut verdict = explored.verdict;
    if verdict == Verdict::Allow && !dup_tables.is_empty() {
        verdict = Verdict::Unknown;
    }
    let m = explored.machine;
    for n in m.notes.into_iter().chain(explored.branch_notes) {
        if !notes.contains(&n) {
            notes.push(n);
        }
    }
    if m.mark_unknown != 0 {
        notes.push(format!(
            "mark bits {:#x} of the final mark are not known",
            m.mark_unknown
        ));
    }
    SimResult {
        verdict,
        path: m.path,
        final_mark: m.mark,
        unknowns: explored.unknowns,
        notes,
    }
}

// ---------------------------------------------------------------------------------------------
// Hooks and stages
// ---------------------------------------------------------------------------------------------

/// Where the packet is, which decides which devices it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
}

struct Hop {
    table: &'static str,
    chain: &'static str,
    stage: Stage,
}

const fn hop(table: &'static str, chain: &'static str, stage: Stage) -> Hop {
    Hop {
        table,
        chain,
        stage,
    }
}

// In netfilter's priority order: raw -300, (conntrack -200), mangle -150, nat DNAT -100,
// filter 0, security 50, nat SNAT 100.
const FORWARD_HOPS: &[Hop] = &[
    hop("raw", "PREROUTING", Stage::Prerouting),
    hop("mangle", "PREROUTING", Stage::Prerouting),
    hop("nat", "PREROUTING", Stage::Prerouting),
    hop("mangle", "FORWARD", Stage::Forward),
    hop("filter", "FORWARD", Stage::Forward),
    hop("security", "FORWARD", Stage::Forward),
    hop("mangle", "POSTROUTING", Stage::Postrouting),
    hop("nat", "POSTROUTING", Stage::Postrouting),
];

const INPUT_HOPS: &[Hop] = &[
    hop("raw", "PREROUTING", Stage::Prerouting),
    hop("mangle", "PREROUTING", Stage::Prerouting),
    hop("nat", "PREROUTING", Stage::Prerouting),
    hop("mangle", "INPUT", Stage::Input),
    hop("filter", "INPUT", Stage::Input),
    hop("security", "INPUT", Stage::Input),
    hop("nat", "INPUT", Stage::Input),
];

const OUTPUT_HOPS: &[Hop] = &[
    hop("raw", "OUTPUT", Stage::Output),
    hop("mangle", "OUTPUT", Stage::Output),
    hop("nat", "OUTPUT", Stage::Output),
    hop("filter", "OUTPUT", Stage::Output),
    hop("security", "OUTPUT", Stage::Output),
    hop("mangle", "POSTROUTING", Stage::Postrouting),
    hop("nat", "POSTROUTING", Stage::Postrouting),
];

fn hops(hook: Hook) -> &'static [Hop] {
    match hook {
        Hook::Forward => FORWARD_HOPS,
        Hook::Input => INPUT_HOPS,
        Hook::Output => OUTPUT_HOPS,
    }
}

impl Stage {
    /// The kernel passes an input device here. In POSTROUTING a forwarded packet still carries
    /// the device it came in on (`ip_output` passes `skb->dev`); a local one has none.
    fn has_in(self, hook: Hook) -> bool {
        match self {
            Stage::Prerouting | Stage::Input | Stage::Forward => true,
            Stage::Postrouting => hook == Hook::Forward,
            Stage::Output => false,
        }
    }

    /// Routing has chosen an output device.
    fn has_out(self) -> bool {
        matches!(self, Stage::Forward | Stage::Output | Stage::Postrouting)
    }

    fn name(self) -> &'static str {
        match self {
            Stage::Prerouting => "PREROUTING",
            Stage::Input => "INPUT",
            Stage::Forward => "FORWARD",
            Stage::Output => "OUTPUT",
            Stage::Postrouting => "POSTROUTING",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Three-valued criteria
// ---------------------------------------------------------------------------------------------

/// The value of one criterion (before a `!`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tri {
    Yes,
    No,
    /// Undecided. `key` names the condition, so that one branch answers it once for every
    /// rule that asks it; `desc` says why it is undecided.
    Maybe {
        key: String,
        desc: String,
    },
}

fn tri(b: bool) -> Tri {
    if b { Tri::Yes } else { Tri::No }
}

fn maybe(key: impl Into<String>, desc: impl Into<String>) -> Tri {
    Tri::Maybe {
        key: key.into(),
        desc: desc.into(),
    }
}

impl Tri {
    fn or(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::Yes, _) | (_, Tri::Yes) => Tri::Yes,
            (Tri::No, x) | (x, Tri::No) => x,
            (Tri::Maybe { key: k1, desc: d1 }, Tri::Maybe { key: k2, desc: d2 }) => Tri::Maybe {
                key: format!("({k1}) or ({k2})"),
                desc: format!("{d1}; {d2}"),
            },
        }
    }

    fn and(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::No, _) | (_, Tri::No) => Tri::No,
            (Tri::Yes, x) | (x, Tri::Yes) => x,
            (Tri::Maybe { key: k1, desc: d1 }, Tri::Maybe { key: k2, desc: d2 }) => Tri::Maybe {
                key: format!("({k1}) and ({k2})"),
                desc: format!("{d1}; {d2}"),
            },
        }
    }

    fn not(self) -> Tri {
        match self {
            Tri::Yes => Tri::No,
            Tri::No => Tri::Yes,
            m => m,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The machine
// ---------------------------------------------------------------------------------------------

struct Cx<'a> {
    ipt: &'a iptables_save::Dump,
    sets: Option<&'a ipset::Dump>,
    pkt: &'a Packet,
    hook: Hook,
    hops: &'static [Hop],
    opts: &'a SimOptions,
    branches: Cell<usize>,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    chain: usize,
    rule: usize,
}

/// Position inside the table being traversed.
#[derive(Debug, Clone)]
struct Cur<'a> {
    table: &'a Table,
    stage: Stage,
    /// The built-in chain the table was entered at (its policy ends the table).
    base: usize,
    chain: usize,
    rule: usize,
    stack: Vec<Frame>,
}

/// Everything one branch of the simulation carries; cloned at a fork.
#[derive(Debug, Clone)]
struct Machine<'a> {
    /// Index of the next hop to enter once `cur` is done.
    hop: usize,
    cur: Option<Cur<'a>>,
    mark: u32,
    /// Bits of `mark` that are not known (set by a target this simulation cannot compute).
    mark_unknown: u32,
    ctmark: u32,
    ctmark_unknown: u32,
    untracked: bool,
    /// Line of the DNAT-like / SNAT-like rule that fired.
    dnat: Option<usize>,
    snat: Option<usize>,
    /// Answers given to undecided criteria in this branch.
    assumed: BTreeMap<String, bool>,
    /// The current rule is being evaluated again after a fork (keeps `visit`).
    reeval: bool,
    visit: usize,
    steps: usize,
    path: Vec<Step>,
    unknowns: Vec<String>,
    notes: Vec<String>,
}

enum Event {
    Go,
    Fork(Fork),
    End(Verdict),
}

struct Fork {
    key: String,
    /// The answer to `key` under which the criterion (with its `!`) matches.
    when_matches: bool,
    desc: String,
}

enum RuleEval {
    Yes,
    No,
    Maybe(Fork),
}

struct Explored<'a> {
    verdict: Verdict,
    machine: Machine<'a>,
    unknowns: Vec<String>,
    /// Notes of the branches explored from this one (the machine holds its own).
    branch_notes: Vec<String>,
}

/// How a note from a branch other than the path returned starts.
const BRANCH_NOTE: &str = "in a branch where an undecided criterion matched: ";

fn combine(a: Verdict, b: Verdict) -> Verdict {
    if a == b { a } else { Verdict::Unknown }
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

/// Run one branch to its end; at every undecided rule, run the other answer as a branch of
/// its own and combine the verdicts.
fn explore<'a>(cx: &Cx<'a>, mut m: Machine<'a>) -> Explored<'a> {
    let mut others: Option<Verdict> = None;
    let mut unknowns: Vec<String> = Vec::new();
    let mut branch_notes: Vec<String> = Vec::new();
    loop {
        match m.step(cx) {
            Event::Go => {}
            Event::End(v) => {
                let verdict = match others {
                    Some(o) => combine(v, o),
                    None => v,
                };
                let mut all = m.unknowns.clone();
                for u in unknowns {
                    push_unique(&mut all, u);
                }
                return Explored {
                    verdict,
                    machine: m,
                    unknowns: all,
                    branch_notes,
                };
            }
            Event::Fork(f) => {
                let Some(cur) = m.cur.as_ref() else {
                    return Explored {
                        verdict: Verdict::Unknown,
                        machine: m,
                        unknowns,
                        branch_notes,
                    };
                };
                let (table, ci, ri) = (cur.table, cur.chain, cur.rule);
                let chain = table.chains.get(ci);
                let rule = chain.and_then(|c| c.rules.get(ri));
                let where_ = format!(
                    "{} {} line {}",
                    table.name,
                    chain.map(|c| c.name.as_str()).unwrap_or("?"),
                    rule.map(|r| r.line).unwrap_or(0)
                );
                push_unique(&mut m.unknowns, format!("{where_}: {}", f.desc));
                let mut alt = m.clone();
                alt.assumed.insert(f.key.clone(), f.when_matches);
                alt.reeval = true;
                m.assumed.insert(f.key, !f.when_matches);
                m.reeval = true;
                let step_index = m.path.len();
                if let (Some(chain), Some(rule)) = (chain, rule) {
                    m.push_rule_step(table, chain, ri, rule, Action::Undecided, None);
                }
                let n = cx.branches.get();
                let note = if n < cx.opts.max_branches {
                    cx.branches.set(n + 1);
                    let sub = explore(cx, alt);
                    others = Some(match others {
                        Some(o) => combine(o, sub.verdict),
                        None => sub.verdict,
                    });
                    for u in sub.unknowns {
                        push_unique(&mut unknowns, u);
                    }
                    for n in sub.machine.notes.iter().chain(&sub.branch_notes) {
                        let n = match n.strip_prefix(BRANCH_NOTE) {
                            Some(_) => n.clone(),
                            None => format!("{BRANCH_NOTE}{n}"),
                        };
                        if !m.notes.iter().any(|own| n.ends_with(own.as_str())) {
                            push_unique(&mut branch_notes, n);
                        }
                    }
                    let end = deciding(&sub.machine.path, sub.verdict)
                        .map(|s| format!(" ({} {} line {})", s.table, s.chain, s.line))
                        .unwrap_or_default();
                    format!(
                        "{}; assumed not to match. Had it matched: {}{end}",
                        f.desc, sub.verdict
                    )
                } else {
                    others = Some(Verdict::Unknown);
                    push_unique(
                        &mut m.notes,
                        format!(
                            "more than {} undecided branches: the rest were not explored",
                            cx.opts.max_branches
                        ),
                    );
                    format!(
                        "{}; assumed not to match. The other branch was not explored (limit)",
                        f.desc
                    )
                };
                if let Some(s) = m.path.get_mut(step_index) {
                    s.note = Some(note);
                }
            }
        }
    }
}

/// Which interface a criterion sees.
enum Dev<'p> {
    /// The kernel passes no device at this point: iptables compares with an empty name.
    Absent,
    Known(&'p str),
    /// There is one, but the caller did not say which.
    NotGiven,
}

impl<'a> Machine<'a> {
    fn new(pkt: &Packet) -> Machine<'a> {
        let new = pkt.ct_state == CtState::New;
        Machine {
            hop: 0,
            cur: None,
            mark: pkt.mark,
            mark_unknown: 0,
            ctmark: 0,
            // A new connection's conntrack mark starts at 0; an older one's is not captured.
            ctmark_unknown: if new { 0 } else { u32::MAX },
            untracked: pkt.ct_state == CtState::Untracked,
            dnat: None,
            snat: None,
            assumed: BTreeMap::new(),
            reeval: false,
            visit: 0,
            steps: 0,
            path: Vec::new(),
            unknowns: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn note(&mut self, s: String) {
        push_unique(&mut self.notes, s);
    }

    fn push_rule_step(
        &mut self,
        table: &Table,
        chain: &Chain,
        index: usize,
        rule: &Rule,
        action: Action,
        note: Option<String>,
    ) {
        self.path.push(Step {
            table: table.name.clone(),
            chain: chain.name.clone(),
            rule_index: Some(index),
            line: rule.line,
            action,
            text: rule.text.to_string(),
            counters: rule.counters,
            mark: self.mark,
            note,
        });
    }

    /// A step that is not a rule: the end of a chain, a skipped table, a stop.
    fn push_chain_step(
        &mut self,
        table: &str,
        chain: &str,
        line: usize,
        action: Action,
        note: Option<String>,
    ) {
        self.path.push(Step {
            table: table.to_string(),
            chain: chain.to_string(),
            rule_index: None,
            line,
            action,
            text: String::new(),
            counters: None,
            mark: self.mark,
            note,
        });
    }

    /// The conntrack view at this point: raw runs before conntrack has attached an entry.
    fn ct_now(&self, cx: &Cx<'_>, table: &str) -> Option<CtState> {
        if self.untracked {
            Some(CtState::Untracked)
        } else if table == "raw" {
            // No entry yet: xt_conntrack and xt_state report INVALID.
            None
        } else {
            Some(cx.pkt.ct_state)
        }
    }

    fn step(&mut self, cx: &Cx<'a>) -> Event {
        let Some(cur) = self.cur.as_ref() else {
            return self.enter_next(cx);
        };
        let (table, ci, ri, stage) = (cur.table, cur.chain, cur.rule, cur.stage);
        self.steps += 1;
        if self.reeval {
            self.reeval = false;
        } else {
            self.visit = self.steps;
        }
        if self.steps > cx.opts.max_steps {
            self.note(format!(
                "gave up after {} rule evaluations (a loop in the dump?)",
                cx.opts.max_steps
            ));
            return self.stop(table, ci, "step limit reached");
        }
        let Some(chain) = table.chains.get(ci) else {
            return Event::End(Verdict::Unknown);
        };
        let Some(rule) = chain.rules.get(ri) else {
            return self.fall_off(table, ci);
        };
        match self.eval_rule(cx, table, chain, stage, rule) {
            RuleEval::No => {
                self.advance();
                Event::Go
            }
            RuleEval::Maybe(f) => Event::Fork(f),
            RuleEval::Yes => self.apply(cx, table, chain, ri, rule, stage),
        }
    }

    fn advance(&mut self) {
        if let Some(c) = self.cur.as_mut() {
            c.rule += 1;
        }
    }

    fn stop(&mut self, table: &Table, ci: usize, why: &str) -> Event {
        let (name, line) = table
            .chains
            .get(ci)
            .map(|c| (c.name.clone(), c.line))
            .unwrap_or_default();
        self.push_chain_step(
            &table.name,
            &name,
            line,
            Action::Stop,
            Some(why.to_string()),
        );
        Event::End(Verdict::Unknown)
    }

    fn enter_next(&mut self, cx: &Cx<'a>) -> Event {
        let Some(hop) = cx.hops.get(self.hop) else {
            return Event::End(Verdict::Allow);
        };
        self.hop += 1;
        if hop.table == "nat" {
            let skip = if self.untracked {
                Some("untracked packets bypass NAT".to_string())
            } else {
                match cx.pkt.ct_state {
                    CtState::New => None,
                    CtState::Related => Some(
                        "the nat table is consulted for the first packet of a connection; for a \
                         RELATED one the kernel may consult it too, which is not simulated"
                            .to_string(),
                    ),
                    s => Some(format!(
                        "the nat table sees only the first packet of a connection, not a {s:?} one"
                    )),
                }
            };
            if let Some(why) = skip {
                self.push_chain_step(hop.table, hop.chain, 0, Action::Skipped, Some(why));
                return Event::Go;
            }
        }
        let Some(table) = cx.ipt.table(hop.table) else {
            self.push_chain_step(
                hop.table,
                hop.chain,
                0,
                Action::Skipped,
                Some(format!(
                    "the dump has no `*{}` table: nothing to traverse",
                    hop.table
                )),
            );
            return Event::Go;
        };
        let Some(&ci) = table.index.get(hop.chain) else {
            self.push_chain_step(
                hop.table,
                hop.chain,
                table.line,
                Action::Skipped,
                Some(format!(
                    "table {} has no {} chain: nothing to traverse",
                    hop.table, hop.chain
                )),
            );
            return Event::Go;
        };
        self.cur = Some(Cur {
            table,
            stage: hop.stage,
            base: ci,
            chain: ci,
            rule: 0,
            stack: Vec::new(),
        });
        Event::Go
    }

    /// The end of a chain's rules.
    fn fall_off(&mut self, table: &'a Table, ci: usize) -> Event {
        let Some(cur) = self.cur.as_ref() else {
            return Event::End(Verdict::Unknown);
        };
        if ci == cur.base {
            return self.policy(table);
        }
        let (name, line) = table
            .chains
            .get(ci)
            .map(|c| (c.name.clone(), c.line))
            .unwrap_or_default();
        let back = cur
            .stack
            .last()
            .and_then(|f| table.chains.get(f.chain))
            .map(|c| format!("end of chain: back to {}", c.name))
            .unwrap_or_else(|| "end of chain with no return point: the policy applies".into());
        self.push_chain_step(&table.name, &name, line, Action::EndOfChain, Some(back));
        self.ret(table)
    }

    /// Back to the last return point, or the built-in chain's policy when there is none.
    fn ret(&mut self, table: &'a Table) -> Event {
        let Some(cur) = self.cur.as_mut() else {
            return Event::End(Verdict::Unknown);
        };
        match cur.stack.pop() {
            Some(f) => {
                cur.chain = f.chain;
                cur.rule = f.rule;
                Event::Go
            }
            None => self.policy(table),
        }
    }

    fn policy(&mut self, table: &'a Table) -> Event {
        let Some(cur) = self.cur.as_ref() else {
            return Event::End(Verdict::Unknown);
        };
        let Some(chain) = table.chains.get(cur.base) else {
            return Event::End(Verdict::Unknown);
        };
        let policy = chain.policy.clone().unwrap_or_default();
        let text = format!(":{} {}", chain.name, chain.policy.as_deref().unwrap_or("-"));
        let (ev, note) = match policy.as_str() {
            "ACCEPT" => {
                self.cur = None;
                (Event::Go, None)
            }
            "DROP" => (Event::End(Verdict::Deny), None),
            _ => (
                Event::End(Verdict::Unknown),
                Some("the dump does not give this built-in chain's policy".to_string()),
            ),
        };
        self.path.push(Step {
            table: table.name.clone(),
            chain: chain.name.clone(),
            rule_index: None,
            line: chain.line,
            action: Action::Policy,
            text,
            counters: chain.counters,
            mark: self.mark,
            note,
        });
        ev
    }

    fn apply(
        &mut self,
        cx: &Cx<'a>,
        table: &'a Table,
        chain: &'a Chain,
        ri: usize,
        rule: &'a Rule,
        stage: Stage,
    ) -> Event {
        let Some(t) = &rule.target else {
            self.push_rule_step(
                table,
                chain,
                ri,
                rule,
                Action::Continue,
                Some("no target: the rule only counts".into()),
            );
            self.advance();
            return Event::Go;
        };
        match &t.kind {
            TargetKind::Accept => {
                self.push_rule_step(table, chain, ri, rule, Action::Accept, None);
                self.cur = None;
                Event::Go
            }
            TargetKind::Drop => {
                self.push_rule_step(table, chain, ri, rule, Action::Drop, None);
                Event::End(Verdict::Deny)
            }
            TargetKind::Reject { .. } => {
                self.push_rule_step(table, chain, ri, rule, Action::Reject, None);
                Event::End(Verdict::Deny)
            }
            TargetKind::Return => {
                self.push_rule_step(table, chain, ri, rule, Action::Return, None);
                self.ret(table)
            }
            TargetKind::Queue => {
                self.push_rule_step(
                    table,
                    chain,
                    ri,
                    rule,
                    Action::Stop,
                    Some("QUEUE: a userspace program decides".into()),
                );
                Event::End(Verdict::Unknown)
            }
            TargetKind::Chain => {
                let Some(&target) = table.index.get(&*t.name) else {
                    self.push_rule_step(
                        table,
                        chain,
                        ri,
                        rule,
                        Action::Stop,
                        Some(format!(
                            "`{}` is neither a chain of this table in the dump nor a known target",
                            t.name
                        )),
                    );
                    return Event::End(Verdict::Unknown);
                };
                if t.goto {
                    self.push_rule_step(table, chain, ri, rule, Action::Goto, None);
                } else {
                    let depth = self.cur.as_ref().map(|c| c.stack.len()).unwrap_or(0);
                    if depth >= cx.opts.max_depth {
                        self.push_rule_step(
                            table,
                            chain,
                            ri,
                            rule,
                            Action::Stop,
                            Some(format!("more than {} nested jumps", cx.opts.max_depth)),
                        );
                        return Event::End(Verdict::Unknown);
                    }
                    self.push_rule_step(table, chain, ri, rule, Action::Jump, None);
                }
                if let Some(cur) = self.cur.as_mut() {
                    if !t.goto {
                        cur.stack.push(Frame {
                            chain: cur.chain,
                            rule: ri + 1,
                        });
                    }
                    cur.chain = target;
                    cur.rule = 0;
                }
                Event::Go
            }
            TargetKind::Mark(mt) => {
                let (value, mask) = mt.xmark();
                self.mark = (self.mark & !mask) ^ value;
                self.mark_unknown &= !mask;
                self.push_rule_step(table, chain, ri, rule, Action::Mark, None);
                self.advance();
                Event::Go
            }
            TargetKind::Log(_) | TargetKind::Nflog(_) => {
                self.push_rule_step(table, chain, ri, rule, Action::Continue, None);
                self.advance();
                Event::Go
            }
            TargetKind::Masquerade { .. } | TargetKind::Snat { .. } => {
                self.snat = Some(rule.line);
                let note = "source NAT: the nat table is done; the source is not rewritten here";
                self.push_rule_step(table, chain, ri, rule, Action::Nat, Some(note.into()));
                self.cur = None;
                Event::Go
            }
            TargetKind::Dnat { to } => {
                let to = to.clone().unwrap_or_else(|| "?".into());
                self.dnat_fired(table, chain, ri, rule, &to)
            }
            TargetKind::Ct { notrack } => {
                let note = if *notrack {
                    self.untracked = true;
                    Some("not tracked from here on: the nat table will be skipped".to_string())
                } else {
                    None
                };
                self.push_rule_step(table, chain, ri, rule, Action::Continue, note);
                self.advance();
                Event::Go
            }
            TargetKind::Notrack => {
                self.untracked = true;
                self.push_rule_step(
                    table,
                    chain,
                    ri,
                    rule,
                    Action::Continue,
                    Some("not tracked from here on: the nat table will be skipped".into()),
                );
                self.advance();
                Event::Go
            }
            TargetKind::Other => self.other_target(table, chain, ri, rule, stage),
        }
    }

    fn dnat_fired(
        &mut self,
        table: &'a Table,
        chain: &'a Chain,
        ri: usize,
        rule: &'a Rule,
        to: &str,
    ) -> Event {
        self.dnat = Some(rule.line);
        let note = format!(
            "destination NAT to {to}: the nat table is done. The destination is not rewritten \
             here, so later criteria on it are undecided"
        );
        self.note(format!(
            "{} {} line {} rewrites the destination ({to}); the simulation keeps the original",
            table.name, chain.name, rule.line
        ));
        self.push_rule_step(table, chain, ri, rule, Action::Nat, Some(note));
        self.cur = None;
        Event::Go
    }

    fn other_target(
        &mut self,
        table: &'a Table,
        chain: &'a Chain,
        ri: usize,
        rule: &'a Rule,
        stage: Stage,
    ) -> Event {
        let Some(t) = &rule.target else {
            return Event::End(Verdict::Unknown);
        };
        let name: &str = &t.name;
        match name {
            "REDIRECT" => self.dnat_fired(table, chain, ri, rule, "a local port"),
            "NETMAP" => {
                let to = arg_after(&t.args, "--to").unwrap_or("?").to_string();
                if matches!(stage, Stage::Prerouting | Stage::Output) {
                    self.dnat_fired(table, chain, ri, rule, &to)
                } else {
                    self.snat = Some(rule.line);
                    self.push_rule_step(
                        table,
                        chain,
                        ri,
                        rule,
                        Action::Nat,
                        Some(format!("source NAT to {to}: the nat table is done")),
                    );
                    self.cur = None;
                    Event::Go
                }
            }
            "CONNMARK" => {
                let action = self.connmark_target(&t.args);
                let (action, note) = match action {
                    Ok(changed_mark) => (
                        if changed_mark {
                            Action::Mark
                        } else {
                            Action::Continue
                        },
                        None,
                    ),
                    Err(why) => (Action::Continue, Some(why)),
                };
                self.push_rule_step(table, chain, ri, rule, action, note);
                self.advance();
                Event::Go
            }
            "HMARK" => {
                self.mark_unknown = u32::MAX;
                self.push_rule_step(
                    table,
                    chain,
                    ri,
                    rule,
                    Action::Mark,
                    Some("HMARK sets the mark from a hash of the packet: not computed".into()),
                );
                self.advance();
                Event::Go
            }
            "SET" => {
                self.push_rule_step(
                    table,
                    chain,
                    ri,
                    rule,
                    Action::Continue,
                    Some("changes an IP set; later set criteria use the captured contents".into()),
                );
                self.advance();
                Event::Go
            }
            "TCPMSS" | "TCPOPTSTRIP" | "CLASSIFY" | "DSCP" | "TOS" | "TTL" | "HL" | "CHECKSUM"
            | "AUDIT" | "TEE" | "SECMARK" | "CONNSECMARK" | "IDLETIMER" | "LED" | "RATEEST"
            | "TRACE" | "ULOG" => {
                self.push_rule_step(table, chain, ri, rule, Action::Continue, None);
                self.advance();
                Event::Go
            }
            _ => {
                let why = match name {
                    "NFQUEUE" => "NFQUEUE: a userspace program decides".to_string(),
                    "TPROXY" => "TPROXY diverts the packet to a local socket".to_string(),
                    "SYNPROXY" => "SYNPROXY answers the SYN itself".to_string(),
                    _ => format!("target {name} is not simulated"),
                };
                self.push_rule_step(table, chain, ri, rule, Action::Stop, Some(why));
                Event::End(Verdict::Unknown)
            }
        }
    }

    /// `CONNMARK` (xt_CONNMARK revision 1): `Ok(true)` when the packet mark changed.
    fn connmark_target(&mut self, args: &[Str]) -> Result<bool, String> {
        let has_ct = !self.untracked && self.cur.as_ref().is_some_and(|c| c.table.name != "raw");
        if !has_ct {
            return Ok(false);
        }
        let mask_of = |o: &str| arg_after(args, o).and_then(parse_u32);
        let both = mask_of("--mask");
        let nfmask = mask_of("--nfmask").or(both).unwrap_or(u32::MAX);
        let ctmask = mask_of("--ctmask").or(both).unwrap_or(u32::MAX);
        let mark_arg = |o: &str| arg_after(args, o).and_then(parse_mark);
        if let Some((v, m)) = mark_arg("--set-xmark") {
            let m = m.unwrap_or(u32::MAX);
            self.ctmark = (self.ctmark & !m) ^ v;
            self.ctmark_unknown &= !m;
        } else if let Some((v, m)) = mark_arg("--set-mark") {
            let m = m.map(|m| m | v).unwrap_or(u32::MAX);
            self.ctmark = (self.ctmark & !m) ^ v;
            self.ctmark_unknown &= !m;
        } else if let Some((v, _)) = mark_arg("--and-mark") {
            self.ctmark &= v;
            self.ctmark_unknown &= v;
        } else if let Some((v, _)) = mark_arg("--or-mark") {
            self.ctmark |= v;
            self.ctmark_unknown &= !v;
        } else if let Some((v, _)) = mark_arg("--xor-mark") {
            self.ctmark ^= v;
        } else if args.iter().any(|a| a == "--save-mark") {
            self.ctmark = (self.ctmark & !ctmask) ^ (self.mark & nfmask);
            self.ctmark_unknown = (self.ctmark_unknown & !ctmask) | (self.mark_unknown & nfmask);
        } else if args.iter().any(|a| a == "--restore-mark") {
            self.mark = (self.mark & !nfmask) ^ (self.ctmark & ctmask);
            self.mark_unknown = (self.mark_unknown & !nfmask) | (self.ctmark_unknown & ctmask);
            return Ok(true);
        } else {
            return Err("CONNMARK options not understood: ignored".into());
        }
        Ok(false)
    }

    // -----------------------------------------------------------------------------------------
    // Criteria
    // -----------------------------------------------------------------------------------------

    fn eval_rule(
        &mut self,
        cx: &Cx<'a>,
        table: &Table,
        chain: &Chain,
        stage: Stage,
        rule: &Rule,
    ) -> RuleEval {
        let mut pending: Option<Fork> = None;
        for (i, m) in rule.matches.iter().enumerate() {
            let at = At {
                table: &table.name,
                chain: &chain.name,
                line: rule.line,
                index: i,
                stage,
            };
            let (atom, negatable) = self.eval_atom(cx, &at, rule, m);
            let neg = m.negated && negatable;
            let value = match atom {
                Tri::Yes => Some(true),
                Tri::No => Some(false),
                Tri::Maybe { key, desc } => match self.assumed.get(&key) {
                    Some(&b) => Some(b),
                    None => {
                        if pending.is_none() {
                            pending = Some(Fork {
                                key,
                                when_matches: !neg,
                                desc: format!("{}: {desc}", describe(m)),
                            });
                        }
                        None
                    }
                },
            };
            // The criterion holds when value XOR `!`; one that fails decides the rule.
            if value == Some(neg) {
                return RuleEval::No;
            }
        }
        match pending {
            Some(f) => RuleEval::Maybe(f),
            None => RuleEval::Yes,
        }
    }

    /// A key for a criterion that is not worth remembering across rules.
    fn local_key(&self, at: &At<'_>) -> String {
        format!(
            "#{}/{}/{}/{}@{}",
            at.table, at.chain, at.line, at.index, self.visit
        )
    }

    fn dev(&mut self, cx: &Cx<'a>, stage: Stage, out: bool) -> Dev<'a> {
        let present = if out {
            stage.has_out()
        } else {
            stage.has_in(cx.hook)
        };
        if !present {
            return Dev::Absent;
        }
        let given = if out {
            cx.pkt.out_iface.as_deref()
        } else {
            cx.pkt.in_iface.as_deref()
        };
        match given {
            Some(name) => Dev::Known(name),
            None => Dev::NotGiven,
        }
    }

    /// The value of one criterion, and whether its `!` applies (addrtype, rpfilter and
    /// verbatim modules carry their negation inside).
    fn eval_atom(&mut self, cx: &Cx<'a>, at: &At<'_>, rule: &Rule, m: &Match) -> (Tri, bool) {
        let pkt = cx.pkt;
        let v = match &m.kind {
            MatchKind::Protocol(p) => match p.number {
                Some(0) => Tri::Yes,
                Some(n) => tri(n == pkt.proto),
                None => maybe(
                    self.local_key(at),
                    format!("protocol name `{}` not known", p.name),
                ),
            },
            MatchKind::Source(a) => match a.net {
                Some(net) => tri(net.contains(&pkt.src)),
                None => maybe(format!("src is {}", a.text), "not an address"),
            },
            MatchKind::Destination(a) => match (a.net, self.dnat) {
                (_, Some(line)) => maybe(
                    format!("dst after DNAT is {}", a.text),
                    format!("the destination was rewritten by the DNAT at line {line}"),
                ),
                (Some(net), None) => tri(net.contains(&pkt.dst)),
                (None, None) => maybe(format!("dst is {}", a.text), "not an address"),
            },
            MatchKind::InInterface(p) | MatchKind::OutInterface(p) => {
                let out = matches!(m.kind, MatchKind::OutInterface(_));
                let flag = if out { "-o" } else { "-i" };
                match self.dev(cx, at.stage, out) {
                    Dev::Known(name) => tri(iface_matches(p, name)),
                    Dev::Absent => {
                        self.note(format!(
                            "no {} interface in {}: `{flag} {p}` is compared with an empty name, \
                             as the kernel does",
                            if out { "output" } else { "input" },
                            at.stage.name()
                        ));
                        tri(iface_matches(p, ""))
                    }
                    Dev::NotGiven => maybe(
                        format!("{flag} {p}"),
                        format!(
                            "the packet's {} interface was not given",
                            if out { "output" } else { "input" }
                        ),
                    ),
                }
            }
            // A first packet is never a non-first fragment.
            MatchKind::Fragment => Tri::No,
            MatchKind::Set(sm) => self.eval_set(cx, at, rule, sm),
            MatchKind::Mark { value, mask } => {
                let mask = mask.unwrap_or(u32::MAX);
                if self.mark_unknown & mask != 0 {
                    maybe(self.local_key(at), "those mark bits are not known")
                } else {
                    tri(self.mark & mask == *value)
                }
            }
            MatchKind::Ports { dir, ports } => {
                self.eval_ports(cx, m.module.as_deref(), *dir, ports)
            }
            MatchKind::ConnState(states) => self.eval_ctstate(cx, at, states),
            MatchKind::AddrType(a) => return (self.eval_addrtype(cx, a), false),
            MatchKind::RpFilter(r) => return (self.eval_rpfilter(cx, at, r), false),
            MatchKind::IcmpType(s) => self.eval_icmp(cx, at, m.module.as_deref(), s),
            MatchKind::Physdev { out, name } => maybe(
                format!("physdev-{} {name}", if *out { "out" } else { "in" }),
                "bridge ports are not known offline",
            ),
            MatchKind::Option { name, args } => {
                return self.eval_option(cx, at, m.module.as_deref(), name, args);
            }
            MatchKind::Unknown { args } => {
                let module = m.module.as_deref().unwrap_or("");
                if module == "connmark" {
                    return (self.eval_connmark(cx, at, args), false);
                }
                maybe(
                    self.local_key(at),
                    format!("module `{module}` is not simulated"),
                )
            }
        };
        (v, true)
    }

    fn eval_ports(
        &self,
        cx: &Cx<'_>,
        module: Option<&str>,
        dir: PortDir,
        ports: &[PortRange],
    ) -> Tri {
        let pkt = cx.pkt;
        if let Some(p) = module.and_then(protocol_number)
            && p != pkt.proto
        {
            return Tri::No;
        }
        if !has_ports(pkt.proto) {
            return Tri::No;
        }
        let list = ports
            .iter()
            .map(|r| {
                if r.start == r.end {
                    r.start.to_string()
                } else {
                    format!("{}:{}", r.start, r.end)
                }
            })
            .collect::<Vec<_>>()
            .join(",");
        let inlist = |p: u16| ports.iter().any(|r| r.contains(p));
        let src = || match pkt.sport {
            Some(p) => tri(inlist(p)),
            None => maybe(
                format!("sport in {list}"),
                "the packet's source port was not given",
            ),
        };
        let dst = || match (pkt.dport, self.dnat) {
            (_, Some(line)) => maybe(
                format!("dport after DNAT in {list}"),
                format!("the destination was rewritten by the DNAT at line {line}"),
            ),
            (Some(p), None) => tri(inlist(p)),
            (None, None) => maybe(
                format!("dport in {list}"),
                "the packet's destination port was not given",
            ),
        };
        match dir {
            PortDir::Src => src(),
            PortDir::Dst => dst(),
            PortDir::Either => src().or(dst()),
        }
    }

    fn eval_ctstate(&mut self, cx: &Cx<'_>, at: &At<'_>, states: &[Str]) -> Tri {
        let now = self.ct_now(cx, at.table);
        let mut acc = Tri::No;
        for s in states {
            let v = match (s.to_ascii_uppercase().as_str(), now) {
                // No conntrack entry (raw, before conntrack): only INVALID holds.
                ("INVALID", None) => Tri::Yes,
                (_, None) => Tri::No,
                ("NEW", Some(st)) => tri(st == CtState::New),
                ("ESTABLISHED", Some(st)) => tri(st == CtState::Established),
                ("RELATED", Some(st)) => tri(st == CtState::Related),
                ("INVALID", Some(st)) => tri(st == CtState::Invalid),
                ("UNTRACKED", Some(st)) => tri(st == CtState::Untracked),
                ("DNAT" | "SNAT", Some(CtState::Untracked | CtState::Invalid)) => Tri::No,
                ("DNAT", Some(CtState::New)) => tri(self.dnat.is_some()),
                ("SNAT", Some(CtState::New)) => tri(self.snat.is_some()),
                ("DNAT" | "SNAT", Some(_)) => maybe(
                    format!("connection has {s}"),
                    "whether an older connection was NATed is not in the packet",
                ),
                (other, _) => maybe(
                    self.local_key(at),
                    format!("conntrack state `{other}` not known"),
                ),
            };
            acc = acc.or(v);
        }
        if now.is_none() && !self.untracked {
            self.note(format!(
                "{} runs before conntrack: `--ctstate` there sees no entry (INVALID), as in the \
                 kernel",
                at.table
            ));
        }
        acc
    }

    fn is_local(&self, cx: &Cx<'_>, addr: IpAddr) -> Tri {
        if addr.is_loopback() {
            return Tri::Yes;
        }
        match &cx.opts.local_addrs {
            Some(list) => tri(list.contains(&addr)),
            None => maybe(
                format!("{addr} is local"),
                "the node's own addresses were not given",
            ),
        }
    }

    fn eval_addrtype(&self, cx: &Cx<'_>, a: &iptables_save::AddrType) -> Tri {
        let pkt = cx.pkt;
        let mut acc = Tri::Yes;
        let limited = a.limit_iface_in || a.limit_iface_out;
        for (sel, addr, side) in [(&a.src_type, pkt.src, "src"), (&a.dst_type, pkt.dst, "dst")] {
            let Some(sel) = sel else { continue };
            let mut any = Tri::No;
            for ty in &sel.types {
                let v = if side == "dst" && self.dnat.is_some() {
                    maybe(
                        format!("dst after DNAT is {ty}"),
                        "the destination was rewritten by DNAT",
                    )
                } else {
                    self.addr_type(cx, addr, ty, limited)
                };
                any = any.or(v);
            }
            if sel.negated {
                any = any.not();
            }
            acc = acc.and(any);
        }
        acc
    }

    /// One `--src-type`/`--dst-type` word for one address. Only what needs no routing table
    /// is decided: multicast and limited broadcast by the address itself, LOCAL by the node's
    /// addresses when given.
    fn addr_type(&self, cx: &Cx<'_>, addr: IpAddr, ty: &str, limited: bool) -> Tri {
        let multicast = addr.is_multicast();
        let lbcast = matches!(addr, IpAddr::V4(v4) if v4.is_broadcast());
        let special = multicast || lbcast;
        let undecided = || {
            maybe(
                format!("{addr} is {ty}"),
                "the route type of this address needs the node's routing table",
            )
        };
        match ty.to_ascii_uppercase().as_str() {
            "MULTICAST" => tri(multicast),
            "BROADCAST" if lbcast => Tri::Yes,
            "BROADCAST" if multicast || addr.is_ipv6() => Tri::No,
            "LOCAL" if special => Tri::No,
            "LOCAL" => match self.is_local(cx, addr) {
                // Local on which interface is not known.
                Tri::Yes if limited => undecided(),
                v => v,
            },
            _ if special => Tri::No,
            // Any other type: false for a local address (its route type is LOCAL).
            _ => match self.is_local(cx, addr) {
                Tri::Yes => Tri::No,
                _ => undecided(),
            },
        }
    }

    fn eval_rpfilter(&self, cx: &Cx<'_>, at: &At<'_>, r: &iptables_save::RpFilter) -> Tri {
        let pkt = cx.pkt;
        // A local source is decided without routes: it passes only with --accept-local.
        let v = match self.is_local(cx, pkt.src) {
            Tri::Yes => tri(r.accept_local),
            _ => {
                let mut flags = String::new();
                for (on, f) in [
                    (r.loose, " --loose"),
                    (r.validmark, " --validmark"),
                    (r.accept_local, " --accept-local"),
                ] {
                    if on {
                        flags.push_str(f);
                    }
                }
                let mark = if r.validmark {
                    format!(" mark {:#x}", self.mark)
                } else {
                    String::new()
                };
                maybe(
                    format!(
                        "rpfilter{flags} src {} in {:?}{mark} ({})",
                        pkt.src,
                        pkt.in_iface,
                        at.stage.name()
                    ),
                    "the reverse-path check needs the node's routing table",
                )
            }
        };
        if r.invert { v.not() } else { v }
    }

    fn eval_icmp(&self, cx: &Cx<'_>, at: &At<'_>, module: Option<&str>, spec: &str) -> Tri {
        let pkt = cx.pkt;
        let v6 = matches!(module, Some("icmp6" | "icmpv6")) || pkt.src.is_ipv6();
        let want = if v6 { Packet::ICMPV6 } else { Packet::ICMP };
        if pkt.proto != want {
            return Tri::No;
        }
        if spec == "any" {
            return Tri::Yes;
        }
        let Some((ty, code)) = parse_icmp(spec, v6) else {
            return maybe(self.local_key(at), format!("ICMP type `{spec}` not known"));
        };
        let Some(pty) = pkt.icmp_type else {
            return maybe(
                format!("icmp type {spec}"),
                "the packet's ICMP type was not given",
            );
        };
        if pty != ty {
            return Tri::No;
        }
        match (code, pkt.icmp_code) {
            (None, _) => Tri::Yes,
            (Some(c), Some(pc)) => tri(c == pc),
            (Some(_), None) => maybe(
                format!("icmp code {spec}"),
                "the packet's ICMP code was not given",
            ),
        }
    }

    fn eval_option(
        &self,
        cx: &Cx<'_>,
        at: &At<'_>,
        module: Option<&str>,
        name: &str,
        args: &[Str],
    ) -> (Tri, bool) {
        let pkt = cx.pkt;
        let first_syn = pkt.proto == Packet::TCP && pkt.ct_state == CtState::New;
        let v = match (module.unwrap_or(""), name) {
            // Flags of the set match that change no answer (`!` there means "do not update").
            ("set", "--return-nomatch" | "--update-counters" | "--update-subcounters") => {
                return (Tri::Yes, false);
            }
            ("tcp" | "", "--syn") => {
                if pkt.proto != Packet::TCP {
                    Tri::No
                } else if first_syn {
                    Tri::Yes
                } else {
                    maybe(
                        "tcp flags",
                        "TCP flags of a packet that is not the first one",
                    )
                }
            }
            ("tcp" | "", "--tcp-flags") => {
                let parsed = match (args.first(), args.get(1)) {
                    (Some(mask), Some(comp)) => tcp_flags(mask).zip(tcp_flags(comp)),
                    _ => None,
                };
                match parsed {
                    _ if pkt.proto != Packet::TCP => Tri::No,
                    // A first packet is a SYN; whether it carries ECE/CWR (ECN) is not known.
                    Some((mask, comp)) if first_syn && mask & 0xc0 == 0 => tri(0x02 & mask == comp),
                    _ => maybe(
                        format!("tcp-flags {}", args.join(" ")),
                        "these TCP flags of the packet are not known",
                    ),
                }
            }
            ("conntrack", "--ctstatus") => {
                let new = self.ct_now(cx, at.table) == Some(CtState::New);
                let mut acc = Tri::No;
                for s in args.iter().flat_map(|a| a.split(',')) {
                    let v = match s {
                        // A first packet: nothing confirmed, seen, assured or expected yet.
                        "NONE" if new => Tri::Yes,
                        "EXPECTED" | "SEEN_REPLY" | "ASSURED" | "CONFIRMED" if new => Tri::No,
                        _ => maybe(
                            self.local_key(at),
                            format!("conntrack status {s} of an older connection"),
                        ),
                    };
                    acc = acc.or(v);
                }
                acc
            }
            ("conntrack", "--ctproto") => match args.first().and_then(|a| protocol_number(a)) {
                Some(0) => Tri::Yes,
                Some(p) => tri(p == pkt.proto),
                None => maybe(self.local_key(at), "protocol name not known"),
            },
            _ => maybe(
                self.local_key(at),
                format!(
                    "option {name}{} is not simulated",
                    if args.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", args.join(" "))
                    }
                ),
            ),
        };
        (v, true)
    }

    /// `-m connmark [!] --mark V[/M]`, kept verbatim by the parser.
    fn eval_connmark(&self, cx: &Cx<'_>, at: &At<'_>, args: &[Str]) -> Tri {
        let mut invert = false;
        let mut spec = None;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "!" => invert = !invert,
                "--mark" => spec = it.next().and_then(|s| parse_mark(s)),
                _ => {}
            }
        }
        let Some((value, mask)) = spec else {
            return maybe(self.local_key(at), "connmark options not understood");
        };
        // Without a conntrack entry the match fails whatever its `!`.
        if self.ct_now(cx, at.table).is_none() || self.untracked {
            return Tri::No;
        }
        let mask = mask.unwrap_or(u32::MAX);
        if self.ctmark_unknown & mask != 0 {
            return maybe(
                self.local_key(at),
                "the connection's mark is not known (not a new connection)",
            );
        }
        let v = tri(self.ctmark & mask == value);
        if invert { v.not() } else { v }
    }

    // -----------------------------------------------------------------------------------------
    // IP sets
    // -----------------------------------------------------------------------------------------

    fn eval_set(&mut self, cx: &Cx<'a>, at: &At<'_>, rule: &Rule, sm: &SetMatch) -> Tri {
        let dirs = sm
            .dirs
            .iter()
            .map(|d| match d {
                SetDir::Src => "src",
                SetDir::Dst => "dst",
            })
            .collect::<Vec<_>>()
            .join(",");
        let key = format!("set {} {dirs}", sm.name);
        let Some(sets) = cx.sets else {
            return maybe(key, "no ipset dump to look the set up in");
        };
        let Some(set) = sets.set(&sm.name) else {
            return maybe(key, format!("set {} is not in the ipset dump", sm.name));
        };
        let return_nomatch = rule.matches.iter().any(
            |m| matches!(&m.kind, MatchKind::Option { name, .. } if name == "--return-nomatch"),
        );
        let v = self.set_test(cx, at, sets, set, &sm.dirs, 0);
        match v {
            SetHit::Hit => Tri::Yes,
            SetHit::Miss => Tri::No,
            SetHit::NoMatchEntry if return_nomatch => maybe(
                key,
                "the element hit a `nomatch` entry and --return-nomatch is set",
            ),
            SetHit::NoMatchEntry => Tri::No,
            SetHit::Undecided(why) => maybe(key, why),
        }
    }

    fn set_test(
        &mut self,
        cx: &Cx<'a>,
        at: &At<'_>,
        sets: &ipset::Dump,
        set: &IpSet,
        dirs: &[SetDir],
        depth: usize,
    ) -> SetHit {
        let pkt = cx.pkt;
        let ty = set.set_type.as_str();
        if ty == "list:set" {
            if depth > 0 {
                return SetHit::Undecided("a list:set inside a list:set".into());
            }
            let mut undecided = None;
            for m in &set.members {
                match sets.set(&m.value()) {
                    Some(s) => match self.set_test(cx, at, sets, s, dirs, depth + 1) {
                        SetHit::Hit => return SetHit::Hit,
                        SetHit::Undecided(w) => undecided = undecided.or(Some(w)),
                        SetHit::Miss | SetHit::NoMatchEntry => {}
                    },
                    None => {
                        undecided = undecided.or(Some(format!(
                            "member set {} of list:set {} is not in the dump",
                            m.value(),
                            set.name
                        )))
                    }
                }
            }
            return match undecided {
                Some(w) => SetHit::Undecided(w),
                None => SetHit::Miss,
            };
        }
        let Some(dims) = set_dims(ty) else {
            return SetHit::Undecided(format!("set type `{ty}` is not simulated"));
        };
        // The kernel never matches with fewer direction flags than the set has dimensions.
        if dirs.len() < dims.len() {
            return SetHit::Miss;
        }
        if let Some(f) = set.family.as_deref() {
            let set_v6 = f == "inet6";
            if set_v6 != pkt.src.is_ipv6() {
                return SetHit::Miss;
            }
        }
        let mut elem = Vec::with_capacity(dims.len());
        for (d, dir) in dims.iter().zip(dirs) {
            match self.elem_value(cx, at.stage, *d, *dir) {
                Ok(v) => elem.push(v),
                Err(why) => return SetHit::Undecided(why),
            }
        }
        let netmask = set
            .option("netmask")
            .and_then(|v| v.parse::<u8>().ok())
            .filter(|_| ty.starts_with("hash:ip"));
        let markmask = set
            .option("markmask")
            .and_then(parse_u32)
            .unwrap_or(u32::MAX);
        let mut best: Option<(u32, bool)> = None;
        let mut unreadable = 0usize;
        for m in &set.members {
            match member_matches(&dims, &elem, m, netmask, markmask) {
                Some(Some(spec)) => {
                    let nomatch = m.options().iter().any(|o| o == "nomatch");
                    if best.is_none_or(|(s, _)| spec > s) {
                        best = Some((spec, nomatch));
                    }
                }
                Some(None) => {}
                None => unreadable += 1,
            }
        }
        match best {
            Some((_, false)) => SetHit::Hit,
            Some((_, true)) => SetHit::NoMatchEntry,
            None if unreadable > 0 => SetHit::Undecided(format!(
                "{unreadable} member(s) of set {} could not be read",
                set.name
            )),
            None => SetHit::Miss,
        }
    }

    fn elem_value(
        &mut self,
        cx: &Cx<'a>,
        stage: Stage,
        dim: Dim,
        dir: SetDir,
    ) -> Result<Val, String> {
        let pkt = cx.pkt;
        let src = dir == SetDir::Src;
        match dim {
            Dim::Ip | Dim::Net => {
                if !src && let Some(line) = self.dnat {
                    return Err(format!(
                        "the destination was rewritten by the DNAT at line {line}"
                    ));
                }
                Ok(Val::Addr(if src { pkt.src } else { pkt.dst }))
            }
            Dim::Port => {
                if !src && let Some(line) = self.dnat {
                    return Err(format!(
                        "the destination was rewritten by the DNAT at line {line}"
                    ));
                }
                match pkt.proto {
                    Packet::ICMP | Packet::ICMPV6 => match (pkt.icmp_type, pkt.icmp_code) {
                        (Some(t), Some(c)) => {
                            Ok(Val::Port(pkt.proto, (u16::from(t) << 8) | u16::from(c)))
                        }
                        _ => Err("the packet's ICMP type and code were not given".into()),
                    },
                    p if has_ports(p) => match if src { pkt.sport } else { pkt.dport } {
                        Some(port) => Ok(Val::Port(p, port)),
                        None => Err(format!(
                            "the packet's {} port was not given",
                            if src { "source" } else { "destination" }
                        )),
                    },
                    p => Ok(Val::Port(p, 0)),
                }
            }
            Dim::Iface => match self.dev(cx, stage, !src) {
                Dev::Known(n) => Ok(Val::Iface(n.to_string())),
                Dev::Absent => Ok(Val::Iface(String::new())),
                Dev::NotGiven => Err("the packet's interface was not given".into()),
            },
            Dim::Mark => {
                if self.mark_unknown != 0 {
                    Err("the packet mark is not fully known".into())
                } else {
                    Ok(Val::Mark(self.mark))
                }
            }
            Dim::Mac => Err("MAC addresses are not known offline".into()),
        }
    }
}

/// Where a criterion is, for keys and messages.
struct At<'s> {
    table: &'s str,
    chain: &'s str,
    line: usize,
    index: usize,
    stage: Stage,
}

enum SetHit {
    Hit,
    Miss,
    /// The most specific entry that covers the element is a `nomatch` one.
    NoMatchEntry,
    Undecided(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dim {
    Ip,
    Net,
    Port,
    Iface,
    Mark,
    Mac,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Val {
    Addr(IpAddr),
    /// Protocol and port (for ICMP: type << 8 | code).
    Port(u8, u16),
    Iface(String),
    Mark(u32),
}

/// `hash:ip,port` → [Ip, Port]; `None` for types with dimensions this module cannot read.
fn set_dims(ty: &str) -> Option<Vec<Dim>> {
    let (_, dims) = ty.split_once(':')?;
    dims.split(',')
        .map(|d| match d {
            "ip" => Some(Dim::Ip),
            "net" => Some(Dim::Net),
            "port" => Some(Dim::Port),
            "iface" => Some(Dim::Iface),
            "mark" => Some(Dim::Mark),
            "mac" => Some(Dim::Mac),
            _ => None,
        })
        .collect()
}

/// Does member `m` cover `elem`? `Some(Some(specificity))` yes, `Some(None)` no, `None` when
/// the member cannot be read.
fn member_matches(
    dims: &[Dim],
    elem: &[Val],
    m: &ipset::Member,
    netmask: Option<u8>,
    markmask: u32,
) -> Option<Option<u32>> {
    let value = m.value();
    let parts: Vec<&str> = value.split(',').collect();
    if parts.len() != dims.len() {
        return None;
    }
    let wildcard = m.options().iter().any(|o| o == "wildcard");
    let mut spec = 0u32;
    let mut all = true;
    for ((dim, val), part) in dims.iter().zip(elem).zip(&parts) {
        let hit = match (dim, val) {
            (Dim::Ip | Dim::Net, Val::Addr(a)) => {
                let (hit, len) = addr_in(part, *a, if *dim == Dim::Ip { netmask } else { None })?;
                spec += u32::from(len);
                hit
            }
            (Dim::Port, Val::Port(p, v)) => {
                let (mp, lo, hi) = parse_set_port(part)?;
                mp == *p && lo <= *v && *v <= hi
            }
            (Dim::Iface, Val::Iface(name)) => {
                if part.starts_with("physdev:") {
                    return None;
                }
                if wildcard {
                    name.starts_with(part)
                } else {
                    name == part
                }
            }
            (Dim::Mark, Val::Mark(mark)) => mark & markmask == parse_u32(part)?,
            _ => return None,
        };
        all &= hit;
    }
    Some(all.then_some(spec))
}

/// Is `a` covered by a set element (`10.0.0.1`, `10.0.0.0/24`, `10.0.0.1-10.0.0.9`)?
/// Returns the element's prefix length for most-specific-entry selection.
fn addr_in(part: &str, a: IpAddr, netmask: Option<u8>) -> Option<(bool, u8)> {
    if let Some((lo, hi)) = part.split_once('-') {
        let lo: IpAddr = lo.parse().ok()?;
        let hi: IpAddr = hi.parse().ok()?;
        let inside = match (lo, hi, a) {
            (IpAddr::V4(l), IpAddr::V4(h), IpAddr::V4(x)) => l <= x && x <= h,
            (IpAddr::V6(l), IpAddr::V6(h), IpAddr::V6(x)) => l <= x && x <= h,
            _ => false,
        };
        return Some((inside, if a.is_ipv4() { 32 } else { 128 }));
    }
    let net: IpNet = match part.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => {
            let addr: IpAddr = part.parse().ok()?;
            let len = netmask.unwrap_or(if addr.is_ipv4() { 32 } else { 128 });
            IpNet::new(addr, len).ok()?.trunc()
        }
    };
    Some((net.contains(&a), net.prefix_len()))
}

/// `tcp:80`, `80` (TCP), `udp:53-54`, `icmp:8/0`, `icmp:echo-request`, `gre:0`.
fn parse_set_port(part: &str) -> Option<(u8, u16, u16)> {
    let (proto, rest) = match part.split_once(':') {
        Some((p, r)) => (protocol_number(p)?, r),
        None => (Packet::TCP, part),
    };
    if proto == Packet::ICMP || proto == Packet::ICMPV6 {
        let (t, c) = parse_icmp(rest, proto == Packet::ICMPV6)?;
        let v = (u16::from(t) << 8) | u16::from(c.unwrap_or(0));
        return Some((proto, v, v));
    }
    let (lo, hi) = match rest.split_once('-') {
        Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
        None => {
            let p = rest.parse().ok()?;
            (p, p)
        }
    };
    Some((proto, lo, hi))
}

// ---------------------------------------------------------------------------------------------
// Small parsers and lookups
// ---------------------------------------------------------------------------------------------

fn has_ports(proto: u8) -> bool {
    // TCP, UDP, DCCP, SCTP, UDP-Lite.
    matches!(proto, 6 | 17 | 33 | 132 | 136)
}

fn arg_after<'s>(args: &'s [Str], opt: &str) -> Option<&'s str> {
    let i = args.iter().position(|a| a == opt)?;
    args.get(i + 1).map(Str::as_str)
}

fn parse_u32(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn parse_mark(s: &str) -> Option<(u32, Option<u32>)> {
    match s.split_once('/') {
        Some((v, m)) => Some((parse_u32(v)?, Some(parse_u32(m)?))),
        None => Some((parse_u32(s)?, None)),
    }
}

/// Protocol names as iptables and ipset print them.
fn protocol_number(name: &str) -> Option<u8> {
    if let Ok(n) = name.parse::<u8>() {
        return Some(n);
    }
    Some(match name.to_ascii_lowercase().as_str() {
        "all" => 0,
        "icmp" => 1,
        "igmp" => 2,
        "ipip" | "ipencap" | "ipv4" => 4,
        "tcp" => 6,
        "udp" => 17,
        "dccp" => 33,
        "ipv6" => 41,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "icmpv6" | "ipv6-icmp" | "icmp6" => 58,
        "vrrp" => 112,
        "sctp" => 132,
        "udplite" => 136,
        _ => return None,
    })
}

/// `--tcp-flags` lists: `SYN,RST`, `ALL`, `NONE`.
fn tcp_flags(s: &str) -> Option<u8> {
    let mut v = 0u8;
    for f in s.split(',') {
        v |= match f.to_ascii_uppercase().as_str() {
            "FIN" => 0x01,
            "SYN" => 0x02,
            "RST" => 0x04,
            "PSH" => 0x08,
            "ACK" => 0x10,
            "URG" => 0x20,
            "ECE" => 0x40,
            "CWR" => 0x80,
            "ALL" => 0xff,
            "NONE" => 0,
            _ => return None,
        };
    }
    Some(v)
}

/// `8`, `3/4`, `echo-request`: (type, code if given).
fn parse_icmp(spec: &str, v6: bool) -> Option<(u8, Option<u8>)> {
    if let Some((t, c)) = spec.split_once('/') {
        return Some((t.parse().ok()?, Some(c.parse().ok()?)));
    }
    if let Ok(t) = spec.parse() {
        return Some((t, None));
    }
    let name = spec.to_ascii_lowercase();
    let v = if v6 {
        match name.as_str() {
            "destination-unreachable" => (1, None),
            "no-route" => (1, Some(0)),
            "communication-prohibited" => (1, Some(1)),
            "address-unreachable" => (1, Some(3)),
            "port-unreachable" => (1, Some(4)),
            "packet-too-big" => (2, None),
            "time-exceeded" | "ttl-exceeded" => (3, None),
            "parameter-problem" => (4, None),
            "echo-request" | "ping" => (128, None),
            "echo-reply" | "pong" => (129, None),
            "router-solicitation" => (133, None),
            "router-advertisement" => (134, None),
            "neighbour-solicitation" | "neighbor-solicitation" => (135, None),
            "neighbour-advertisement" | "neighbor-advertisement" => (136, None),
            "redirect" => (137, None),
            _ => return None,
        }
    } else {
        match name.as_str() {
            "echo-reply" | "pong" => (0, None),
            "destination-unreachable" => (3, None),
            "network-unreachable" => (3, Some(0)),
            "host-unreachable" => (3, Some(1)),
            "protocol-unreachable" => (3, Some(2)),
            "port-unreachable" => (3, Some(3)),
            "fragmentation-needed" => (3, Some(4)),
            "source-route-failed" => (3, Some(5)),
            "network-unknown" => (3, Some(6)),
            "host-unknown" => (3, Some(7)),
            "network-prohibited" => (3, Some(9)),
            "host-prohibited" => (3, Some(10)),
            "communication-prohibited" => (3, Some(13)),
            "source-quench" => (4, None),
            "redirect" => (5, None),
            "echo-request" | "ping" => (8, None),
            "router-advertisement" => (9, None),
            "router-solicitation" => (10, None),
            "time-exceeded" | "ttl-exceeded" => (11, None),
            "ttl-zero-during-transit" => (11, Some(0)),
            "ttl-zero-during-reassembly" => (11, Some(1)),
            "parameter-problem" => (12, None),
            "timestamp-request" => (13, None),
            "timestamp-reply" => (14, None),
            "address-mask-request" => (17, None),
            "address-mask-reply" => (18, None),
            _ => return None,
        }
    };
    Some(v)
}

/// A criterion in iptables' words, for messages.
fn describe(m: &Match) -> String {
    let bang = if m.negated { "! " } else { "" };
    let module = m
        .module
        .as_deref()
        .map(|n| format!("-m {n} "))
        .unwrap_or_default();
    let body = match &m.kind {
        MatchKind::Protocol(p) => format!("{bang}-p {}", p.name),
        MatchKind::Source(a) => format!("{bang}-s {}", a.text),
        MatchKind::Destination(a) => format!("{bang}-d {}", a.text),
        MatchKind::InInterface(i) => format!("{bang}-i {i}"),
        MatchKind::OutInterface(i) => format!("{bang}-o {i}"),
        MatchKind::Fragment => format!("{bang}-f"),
        MatchKind::Set(s) => {
            let dirs = s
                .dirs
                .iter()
                .map(|d| if *d == SetDir::Src { "src" } else { "dst" })
                .collect::<Vec<_>>()
                .join(",");
            format!("{module}{bang}--match-set {} {dirs}", s.name)
        }
        MatchKind::Mark { value, mask } => match mask {
            Some(mask) => format!("{module}{bang}--mark {value:#x}/{mask:#x}"),
            None => format!("{module}{bang}--mark {value:#x}"),
        },
        MatchKind::Ports { dir, ports } => {
            let list = ports
                .iter()
                .map(|r| {
                    if r.start == r.end {
                        r.start.to_string()
                    } else {
                        format!("{}:{}", r.start, r.end)
                    }
                })
                .collect::<Vec<_>>()
                .join(",");
            let opt = match dir {
                PortDir::Src => "--sports",
                PortDir::Dst => "--dports",
                PortDir::Either => "--ports",
            };
            format!("{module}{bang}{opt} {list}")
        }
        MatchKind::ConnState(s) => format!("{module}{bang}--ctstate {}", s.join(",")),
        MatchKind::AddrType(a) => {
            let mut s = module.clone();
            for (sel, opt) in [(&a.src_type, "--src-type"), (&a.dst_type, "--dst-type")] {
                if let Some(sel) = sel {
                    let b = if sel.negated { "! " } else { "" };
                    s.push_str(&format!("{b}{opt} {} ", sel.types.join(",")));
                }
            }
            s.trim_end().to_string()
        }
        MatchKind::RpFilter(r) => {
            let mut s = module.trim_end().to_string();
            for (on, f) in [
                (r.loose, " --loose"),
                (r.validmark, " --validmark"),
                (r.accept_local, " --accept-local"),
                (r.invert, " --invert"),
            ] {
                if on {
                    s.push_str(f);
                }
            }
            s
        }
        MatchKind::IcmpType(t) => format!("{module}{bang}--icmp-type {t}"),
        MatchKind::Physdev { out, name } => format!(
            "{module}{bang}--physdev-{} {name}",
            if *out { "out" } else { "in" }
        ),
        MatchKind::Option { name, args } => format!("{module}{bang}{name} {}", args.join(" ")),
        MatchKind::Unknown { args } => format!("{module}{}", args.join(" ")),
    };
    body.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{ipset as ipset_parse, iptables_save as ipt_parse};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn run(dump: &str, sets: &str, pkt: &Packet) -> SimResult {
        let d = ipt_parse::parse(dump);
        let s = ipset_parse::parse(sets);
        simulate(&d, Some(&s), pkt, Hook::Forward)
    }

    #[test]
    fn an_empty_dump_lets_everything_through_and_says_every_table_was_skipped() {
        let r = run("", "", &Packet::tcp(ip("10.0.0.1"), ip("10.0.0.2"), 80));
        assert_eq!(r.verdict, Verdict::Allow);
        assert!(r.path.iter().all(|s| s.action == Action::Skipped));
        assert_eq!(r.path.len(), FORWARD_HOPS.len());
    }

    #[test]
    fn set_port_elements_read_protocols_ranges_and_icmp() {
        assert_eq!(parse_set_port("tcp:80"), Some((6, 80, 80)));
        assert_eq!(parse_set_port("8080"), Some((6, 8080, 8080)));
        assert_eq!(parse_set_port("udp:53-54"), Some((17, 53, 54)));
        assert_eq!(parse_set_port("icmp:8/0"), Some((1, 0x800, 0x800)));
        assert_eq!(parse_set_port("icmp:echo-request"), Some((1, 0x800, 0x800)));
        assert_eq!(parse_set_port("nonsense:x"), None);
    }

    #[test]
    fn addresses_in_set_elements_are_hosts_networks_or_ranges() {
        assert_eq!(addr_in("10.0.0.1", ip("10.0.0.1"), None), Some((true, 32)));
        assert_eq!(
            addr_in("10.0.0.0/24", ip("10.0.0.9"), None),
            Some((true, 24))
        );
        assert_eq!(
            addr_in("10.0.0.0/24", ip("10.0.1.9"), None),
            Some((false, 24))
        );
        assert_eq!(
            addr_in("10.0.0.1-10.0.0.5", ip("10.0.0.4"), None),
            Some((true, 32))
        );
        assert_eq!(
            addr_in("10.0.0.0", ip("10.0.0.77"), Some(24)),
            Some((true, 24))
        );
        assert_eq!(addr_in("garbage", ip("10.0.0.1"), None), None);
    }

    #[test]
    fn connmark_saves_and_restores_the_mark_of_a_new_connection() {
        let dump = "*mangle\n:PREROUTING ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n\
                    -A PREROUTING -m connmark --mark 0x0/0xff -j MARK --set-xmark 0x7/0xff\n\
                    -A PREROUTING -j CONNMARK --save-mark --nfmask 0xff --ctmask 0xff\n\
                    -A PREROUTING -j MARK --set-xmark 0x0/0xff\n\
                    -A PREROUTING -j CONNMARK --restore-mark --nfmask 0xf0 --ctmask 0xf0\n\
                    -A FORWARD -m connmark ! --mark 0x7/0xff -j DROP\nCOMMIT\n";
        let pkt = Packet::tcp(ip("10.0.0.1"), ip("10.0.0.2"), 80);
        let r = run(dump, "", &pkt);
        assert_eq!(r.verdict, Verdict::Allow, "{r:#?}");
        // The restore copies only the 0xf0 bits of the conntrack mark 0x7, which are 0.
        assert_eq!(r.final_mark, 0);
        // An older connection's conntrack mark is not known.
        let r = run(dump, "", &pkt.with_ct_state(CtState::Established));
        assert_eq!(r.verdict, Verdict::Unknown, "{r:#?}");
    }

    #[test]
    fn odd_rules_and_targets_never_panic() {
        let dump = "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j\n-A FORWARD -m\n\
                    -A FORWARD -p 999 -j ACCEPT\n-A FORWARD -g nowhere\n-A FORWARD -j MARK\n\
                    -A FORWARD -m set --match-set\n-A FORWARD -j CONNMARK --restore-mark\nCOMMIT\n";
        for proto in [0u8, 1, 6, 17, 58, 132, 255] {
            let pkt = Packet::new(ip("10.0.0.1"), ip("10.0.0.2"), proto);
            let _ = run(dump, "create\nadd x\n", &pkt);
        }
    }
}
