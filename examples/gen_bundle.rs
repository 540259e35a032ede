//! Generates a large, realistic Calico support bundle for benchmarks: our collector's layout
//! (`calico-bundle-gen-<ts>/manifest.json` first, `cluster/…`, `nodes/<node>/…`) as a
//! `.tar.gz` (gzip level 6) or, with `--dir`, as a folder.
//!
//! The cluster is invented but coherent, and the bundle says what Calico v3.30 would have
//! programmed for it: chain, IP set and interface names come from the library's own Felix
//! naming (`calisnap::calico::{names, render, order, rules, selector, labels}`), so policies
//! select endpoints, endpoint chains jump to the policy chains of the policies that select
//! them, and selector IP sets hold the pod IPs and network-set CIDRs their selectors match.
//! A few faults are injected on purpose (a missing IP set member, a stale member, a missing
//! policy chain, an orphan chain) and listed in `<bundle>.faults.json` beside the bundle, not
//! inside it.
//!
//! Output is a pure function of the arguments: one small PRNG (splitmix64) seeded per file,
//! fixed timestamps, fixed tar headers. Nothing is held whole in memory: file sizes are
//! measured in a first pass (the Felix logs are generated to an exact size), then every file
//! streams through a channel into the gzip encoder on another thread.
//!
//! This is a benchmark input, not a fixture: tests must not use its output as evidence of
//! what Calico does (it is made with our own naming code).
//!
//! ```text
//! cargo run --release --example gen_bundle -- --scale 1 --out DIR [--seed N] [--nodes N]
//!     [--endpoints N] [--policies N] [--rules-per-policy N] [--ipset-members N]
//!     [--conntrack N] [--log-bytes N] [--dir]
//! ```

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

use clap::Parser;
use flate2::Compression;
use flate2::write::GzEncoder;
use rayon::prelude::*;
use serde_json::json;

use calisnap::calico::labels::{Labels, global_network_set_labels, network_set_labels, pod_labels};
use calisnap::calico::names::{
    CalicoVersion, Direction, DispatchConfig, FelixPolicyKey, PolicyKind, PolicyRef,
    pod_profile_ids, policy_chain_name, profile_chain_name, veth_name, workload_dispatch_chains,
};
use calisnap::calico::order::{
    EndpointChainSpec, PolicyTypes, SortablePolicy, SortableTier, TierDefaultAction,
    endpoint_chain_layout, order_policies, policy_group_chains,
};
use calisnap::calico::render::{
    FelixRule, PortRange, ProtoRule, Protocol, RenderConfig, appended_rule_hashes,
    felix_to_iptables_save, policy_chain_rules, profile_chain_rules, rule_hashes,
};
use calisnap::calico::rules::{
    EntityRuleSelectors, K8sLabelSelector, entity_rule_selector, global_network_policy_selector,
    k8s_optional_selector_to_calico, k8s_selector_to_calico, network_policy_selector,
};
use calisnap::calico::selector::{LabelSource, Selector};

/// The Calico release the bundle pretends to come from.
const VERSION: CalicoVersion = CalicoVersion::new(3, 30);
const VERSION_TEXT: &str = "v3.30.2";
/// When the bundle was "collected": fixed, so output depends on the arguments only.
const COLLECTED: (i64, u32, u32, u32, u32, u32) = (2026, 11, 25, 14, 2, 15);
const BUNDLE_TS: &str = "20261125T140215Z";
const COLLECTED_AT: &str = "2026-11-25T14:02:15Z";
/// How much history the Felix logs cover.
const LOG_SPAN_MS: i64 = 24 * 3600 * 1000;

// ---------------------------------------------------------------------------------------------
// Arguments and sizes
// ---------------------------------------------------------------------------------------------

#[derive(Parser, Debug)]
#[command(about = "Generate a large, realistic Calico support bundle (deterministic per seed)")]
struct Args {
    /// Multiplies every count of the 1x bundle (about 1.3 GB uncompressed, 130 MB gzipped).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Folder to write into (created if missing).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    nodes: Option<usize>,
    /// Pods (each one a WorkloadEndpoint).
    #[arg(long)]
    endpoints: Option<usize>,
    /// NetworkPolicies, Kubernetes NetworkPolicies and GlobalNetworkPolicies in all.
    #[arg(long)]
    policies: Option<usize>,
    /// Average rules per policy.
    #[arg(long)]
    rules_per_policy: Option<usize>,
    /// IP set members in all nodes' ipset-save dumps (approximate).
    #[arg(long)]
    ipset_members: Option<u64>,
    /// Conntrack entries in all nodes' tables.
    #[arg(long)]
    conntrack: Option<u64>,
    /// Bytes of Felix log in all nodes (exact).
    #[arg(long)]
    log_bytes: Option<u64>,
    /// Write a folder instead of a .tar.gz.
    #[arg(long)]
    dir: bool,
}

/// Every count of the bundle.
#[derive(Debug, Clone)]
struct Sizes {
    nodes: usize,
    endpoints: usize,
    policies: usize,
    rules_per_policy: usize,
    ipset_members: u64,
    conntrack: u64,
    log_bytes: u64,
}

impl Sizes {
    fn from_args(a: &Args) -> Sizes {
        let s = a.scale.max(0.0001);
        let sc = |base: f64| (base * s).round().max(1.0);
        let nodes = a.nodes.unwrap_or(sc(20.0) as usize).max(2);
        let endpoints = a
            .endpoints
            .unwrap_or(sc(1600.0) as usize)
            .max(nodes * 2)
            .max(12);
        Sizes {
            nodes,
            endpoints,
            policies: a.policies.unwrap_or(sc(2000.0) as usize).max(12),
            rules_per_policy: a.rules_per_policy.unwrap_or(3).max(1),
            ipset_members: a.ipset_members.unwrap_or(sc(1_000_000.0) as u64),
            conntrack: a.conntrack.unwrap_or(sc(1_000_000.0) as u64),
            log_bytes: a.log_bytes.unwrap_or(sc(1_073_741_824.0) as u64),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic randomness
// ---------------------------------------------------------------------------------------------

/// splitmix64: tiny, fast, and good enough for invented data.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    /// A generator of its own for one purpose (`tag`), so files do not depend on each other.
    fn for_tag(seed: u64, tag: &str) -> Rng {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in tag.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ h);
        r.next();
        r
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (0 when n is 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
    fn idx(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.idx(xs.len())]
    }
    fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.idx(i + 1);
            xs.swap(i, j);
        }
    }
    /// `n` characters of `alphabet`.
    fn word(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n).map(|_| *self.pick(alphabet) as char).collect()
    }
    fn hex(&mut self, n: usize) -> String {
        self.word(b"0123456789abcdef", n)
    }
    fn uuid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-4{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

/// Kubernetes' pod-name suffix alphabet (no vowels, no look-alikes).
const K8S_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Milliseconds since the epoch at which the bundle was collected.
fn collected_ms() -> i64 {
    let (y, mo, d, h, mi, s) = COLLECTED;
    (days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s)) * 1000
}

/// `2026-11-25 13:58:02.114` (Felix's log stamp).
fn felix_ts(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(86_400_000));
    let r = ms.rem_euclid(86_400_000);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        r / 3_600_000,
        r / 60_000 % 60,
        r / 1000 % 60,
        r % 1000
    )
}

/// `2026-11-25T13:58:02Z` (Kubernetes timestamps).
fn rfc3339(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(86_400_000));
    let r = ms.rem_euclid(86_400_000);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        r / 3_600_000,
        r / 60_000 % 60,
        r / 1000 % 60
    )
}

/// `Wed Nov 25 14:02:11 2026` (iptables-save header).
fn ctime(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = ms.div_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let r = ms.rem_euclid(86_400_000) / 1000;
    format!(
        "{} {} {d:2} {:02}:{:02}:{:02} {y}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        r / 3600,
        r / 60 % 60,
        r % 60
    )
}

// ---------------------------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------------------------

fn ip4(a: u32) -> String {
    format!(
        "{}.{}.{}.{}",
        a >> 24,
        (a >> 16) & 255,
        (a >> 8) & 255,
        a & 255
    )
}

const fn ipv4(a: u32, b: u32, c: u32, d: u32) -> u32 {
    (a << 24) | (b << 16) | (c << 8) | d
}

/// The Calico IP pool: 10.128.0.0/12, carved into /26 blocks, blocks handed to nodes in turn.
const POOL: u32 = ipv4(10, 128, 0, 0);
const POOL_CIDR: &str = "10.128.0.0/12";
const BLOCK: u32 = 64;
const SERVICE_NET: u32 = ipv4(10, 96, 0, 0);
const KUBE_DNS_IP: u32 = ipv4(10, 96, 0, 10);

/// A public-looking address for external peers and threat feeds (no private or special
/// ranges).
fn public_addr(rng: &mut Rng) -> u32 {
    loop {
        let a = rng.range(11, 223) as u32;
        if matches!(a, 100 | 127 | 169 | 172 | 192 | 198) {
            continue;
        }
        return (a << 24) | (rng.next() as u32 & 0x00ff_ffff);
    }
}

// ---------------------------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------------------------

struct Namespace {
    name: String,
    team: String,
    /// The namespace's own labels (as `kubectl get ns` shows them).
    labels: Labels,
    created_ms: i64,
    uid: String,
}

struct App {
    ns: usize,
    name: String,
    role: &'static str,
    port: u16,
    sa: String,
    /// ReplicaSet pod-template hash.
    hash: String,
    service_ip: u32,
    version: &'static str,
    image: String,
}

struct Pod {
    app: usize,
    ns: usize,
    name: String,
    node: usize,
    ip: u32,
    iface: String,
    labels: Labels,
    /// Labels as Felix resolves them (own + namespace and service-account profiles).
    felix: calisnap::calico::labels::InheritedLabels,
    uid: String,
    container_id: String,
    created_ms: i64,
}

struct Node {
    name: String,
    ip: u32,
    blocks: Vec<u32>,
    /// Addresses handed out so far (the VXLAN tunnel address is the first of the first block).
    used: u32,
    cpus: u32,
    pid: u32,
}

impl Node {
    fn alloc(&mut self, next_block: &mut u32) -> u32 {
        let slot = self.used;
        self.used += 1;
        let b = (slot / BLOCK) as usize;
        while self.blocks.len() <= b {
            self.blocks.push(POOL + *next_block * BLOCK);
            *next_block += 1;
        }
        self.blocks[b] + slot % BLOCK
    }
}

struct NetSet {
    ns: Option<usize>,
    name: String,
    labels: Labels,
    nets: Vec<String>,
    felix: calisnap::calico::labels::InheritedLabels,
}

/// One side of a rule as written in the resource.
#[derive(Clone)]
enum Peer {
    Any,
    /// Calico `selector` / `namespaceSelector`.
    Sel {
        sel: String,
        ns_sel: String,
    },
    Nets {
        nets: Vec<String>,
        not_nets: Vec<String>,
    },
    /// Kubernetes `podSelector.matchLabels` (same namespace).
    K8sPod(BTreeMap<String, String>),
    /// Kubernetes `namespaceSelector.matchLabels` (any pod in those namespaces).
    K8sNs(BTreeMap<String, String>),
}

#[derive(Clone)]
struct RuleSpec {
    action: &'static str,
    protocol: Option<&'static str>,
    ports: Vec<u16>,
    peer: Peer,
}

/// Where the members of a selector IP set can come from (a sound pre-filter: the selector
/// is still evaluated on every candidate).
#[derive(Clone, Debug)]
enum Scope {
    Ns(usize),
    Namespaces(Vec<usize>),
    Global,
    GlobalSets,
}

struct IpSet {
    name: String,
    id: String,
    selector: Selector,
    scope: Scope,
    /// Members as `ipset save` prints them (bare address for a /32).
    members: Vec<String>,
    /// Pod IPs among the members (fault injection needs them).
    pod_members: Vec<u32>,
    feed: bool,
}

struct Policy {
    kind: PolicyKind,
    /// The name `calicoctl get` / `kubectl get` shows.
    name: String,
    ns: Option<usize>,
    tier: String,
    order: Option<f64>,
    /// The resource's selector (Calico) or podSelector labels (Kubernetes).
    selector: String,
    k8s_pod_selector: BTreeMap<String, String>,
    ns_selector: String,
    types: PolicyTypes,
    ingress: Vec<RuleSpec>,
    egress: Vec<RuleSpec>,
    key: FelixPolicyKey,
    v1_selector: Selector,
    sortable: SortablePolicy,
    proto_in: Vec<ProtoRule>,
    proto_out: Vec<ProtoRule>,
    sets: Vec<usize>,
    created_ms: i64,
    uid: String,
    /// `Received *proto.ActivePolicyUpdate` text for the log.
    log_msg: String,
}

/// A chain's name and its `-A …` lines without counters.
type ChainLines = (String, Vec<String>);

/// A table of Felix's fixed chains: name, built-in chains with their policy, chains.
type FixedTable = (
    &'static str,
    Vec<(&'static str, &'static str)>,
    Vec<ChainLines>,
);

/// A GlobalNetworkPolicy to create: tier, name, order, selector, namespaceSelector, ingress
/// rules, egress rules.
type GnpSpec = (
    String,
    String,
    f64,
    String,
    String,
    Vec<RuleSpec>,
    Vec<RuleSpec>,
);

/// What one node has programmed.
#[derive(Default)]
struct NodePlan {
    pods: Vec<usize>,
    /// Per local pod (same order as `pods`): the policies that select it.
    pod_policies: Vec<Vec<usize>>,
    policies: BTreeSet<usize>,
    sets: BTreeSet<usize>,
    /// Fault: the member Felix failed to add, per set.
    missing_member: Option<(usize, String)>,
    /// Fault: a member left behind after its pod went away.
    stale_member: Option<(usize, String)>,
    /// Fault: a chain for a policy that no longer exists (name, lines).
    orphan_chain: Option<ChainLines>,
}

struct World {
    seed: u64,
    sizes: Sizes,
    namespaces: Vec<Namespace>,
    apps: Vec<App>,
    pods: Vec<Pod>,
    nodes: Vec<Node>,
    netsets: Vec<NetSet>,
    policies: Vec<Policy>,
    sets: Vec<IpSet>,
    tiers: Vec<SortableTier>,
    plans: Vec<NodePlan>,
    /// Rendered `-A …` lines (no counters) of each policy's chain, per direction.
    policy_lines: Vec<[Option<ChainLines>; 2]>,
    render: RenderConfig,
    faults: Vec<serde_json::Value>,
    /// Per node: log bytes and conntrack entries.
    log_bytes: Vec<u64>,
    conntrack: Vec<u64>,
}

const NS_WORDS: &[&str] = &[
    "payments",
    "checkout",
    "catalog",
    "inventory",
    "shipping",
    "billing",
    "accounts",
    "identity",
    "orders",
    "reviews",
    "recommendations",
    "analytics",
    "marketing",
    "support",
    "logistics",
    "warehouse",
    "fraud",
    "loyalty",
    "notifications",
    "partners",
    "search",
    "media",
    "pricing",
    "tax",
    "returns",
    "subscriptions",
    "onboarding",
    "compliance",
    "ledger",
    "storefront",
];
const ENVS: &[&str] = &["prod", "staging", "dev"];

/// App name, role, port.
const APPS: &[(&str, &str, u16)] = &[
    ("web", "frontend", 8080),
    ("api", "backend", 8443),
    ("frontend", "frontend", 8080),
    ("backend", "backend", 9000),
    ("worker", "worker", 9090),
    ("db", "db", 5432),
    ("cache", "cache", 6379),
    ("gateway", "frontend", 8080),
    ("auth", "backend", 8443),
    ("search", "backend", 9200),
    ("queue", "worker", 5672),
    ("scheduler", "worker", 9090),
    ("reporting", "worker", 9090),
    ("notifier", "worker", 9090),
    ("ledger", "backend", 9000),
    ("pricing", "backend", 9000),
    ("cart", "backend", 9000),
    ("media", "backend", 8080),
    ("indexer", "worker", 9090),
    ("exporter", "worker", 9100),
];

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `namespace labels + projectcalico.org/name`: what a namespaceSelector is evaluated on.
struct NsLabels<'a>(&'a Namespace);

impl LabelSource for NsLabels<'_> {
    fn get_label(&self, key: &str) -> Option<&str> {
        if key == "projectcalico.org/name" {
            return Some(&self.0.name);
        }
        self.0.labels.get(key).map(String::as_str)
    }
}

fn k8s_sel(m: &BTreeMap<String, String>) -> K8sLabelSelector {
    K8sLabelSelector {
        match_labels: m.clone(),
        match_expressions: Vec::new(),
    }
}

fn proto(p: Option<&str>) -> Option<Protocol> {
    p.map(|p| Protocol::Name(p.to_ascii_lowercase()))
}

impl World {
    fn build(sizes: Sizes, seed: u64) -> World {
        let mut rng = Rng::for_tag(seed, "cluster");
        let now = collected_ms();
        let mut w = World {
            seed,
            sizes: sizes.clone(),
            namespaces: Vec::new(),
            apps: Vec::new(),
            pods: Vec::new(),
            nodes: Vec::new(),
            netsets: Vec::new(),
            policies: Vec::new(),
            sets: Vec::new(),
            tiers: vec![
                SortableTier::new("security", Some(100.0), TierDefaultAction::Pass),
                SortableTier::new("platform", Some(200.0), TierDefaultAction::Pass),
                SortableTier::new("default", Some(1_000_000.0), TierDefaultAction::Deny),
            ],
            plans: Vec::new(),
            policy_lines: Vec::new(),
            render: RenderConfig::new(VERSION),
            faults: Vec::new(),
            log_bytes: Vec::new(),
            conntrack: Vec::new(),
        };

        // Nodes.
        for i in 0..sizes.nodes {
            w.nodes.push(Node {
                name: format!("worker-{:03}", i + 1),
                ip: ipv4(10, 0, (i / 200) as u32, (i % 200) as u32 + 10),
                blocks: Vec::new(),
                used: 1,
                cpus: *rng.pick(&[4, 8, 8, 16]),
                pid: rng.range(40, 90) as u32,
            });
        }
        let mut next_block = 0u32;

        // Namespaces: two system ones, then the applications'.
        let user_ns = (sizes.endpoints / 40).max(2);
        let teams = (user_ns / 5).max(2);
        let mut push_ns = |w: &mut World, name: String, team: String, env: &'static str| {
            let mut l = labels(&[("kubernetes.io/metadata.name", name.as_str())]);
            if !team.is_empty() {
                l.insert("team".into(), team.clone());
                l.insert("env".into(), env.into());
            }
            let created_ms = now - rng.range(20, 400) as i64 * 86_400_000;
            let uid = rng.uuid();
            w.namespaces.push(Namespace {
                name,
                team,
                labels: l,
                created_ms,
                uid,
            });
        };
        push_ns(&mut w, "kube-system".into(), String::new(), "");
        push_ns(&mut w, "monitoring".into(), String::new(), "");
        for i in 0..user_ns {
            // Every environment at every scale: payments-prod, payments-staging, payments-dev, …
            let word = NS_WORDS[(i / ENVS.len()) % NS_WORDS.len()];
            let env = ENVS[i % ENVS.len()];
            let round = i / (NS_WORDS.len() * ENVS.len());
            let name = if round == 0 {
                format!("{word}-{env}")
            } else {
                format!("{word}-{env}-{}", round + 1)
            };
            let team = format!("team-{}", i % teams + 1);
            push_ns(&mut w, name, team, env);
        }

        // Apps: system ones, then about eight per namespace.
        let add_app =
            |w: &mut World, rng: &mut Rng, ns: usize, name: &str, role: &'static str, port| {
                let n = w.apps.len() as u32;
                let nsname = w.namespaces[ns].name.clone();
                w.apps.push(App {
                    ns,
                    name: name.to_string(),
                    role,
                    port,
                    sa: if rng.chance(0.7) {
                        name.to_string()
                    } else {
                        "default".to_string()
                    },
                    hash: rng.word(K8S_ALPHABET, 10),
                    service_ip: if name == "coredns" {
                        KUBE_DNS_IP
                    } else {
                        SERVICE_NET + 16 + n
                    },
                    version: if rng.chance(0.7) { "v2" } else { "v1" },
                    image: format!(
                        "registry.example/{nsname}/{name}:1.{}.{}",
                        rng.below(12),
                        rng.below(20)
                    ),
                });
            };
        add_app(&mut w, &mut rng, 0, "coredns", "dns", 53);
        add_app(&mut w, &mut rng, 0, "metrics-server", "monitoring", 10250);
        add_app(&mut w, &mut rng, 1, "prometheus", "monitoring", 9090);
        add_app(&mut w, &mut rng, 1, "grafana", "monitoring", 3000);
        let apps_per_ns = 12.min(((sizes.endpoints - 5) / user_ns).max(1));
        for ns in 2..w.namespaces.len() {
            let mut pool: Vec<usize> = (0..APPS.len()).collect();
            rng.shuffle(&mut pool);
            for &a in pool.iter().take(apps_per_ns) {
                let (name, role, port) = APPS[a];
                add_app(&mut w, &mut rng, ns, name, role, port);
            }
        }

        // Pods: coredns x2 and one of each other system app, then replicas spread evenly.
        let mut replicas = vec![1usize; w.apps.len()];
        replicas[0] = 2;
        let mut left = sizes.endpoints.saturating_sub(replicas.iter().sum());
        let user_apps: Vec<usize> = (4..w.apps.len()).collect();
        while left > 0 {
            for &a in &user_apps {
                if left == 0 {
                    break;
                }
                replicas[a] += 1;
                left -= 1;
            }
        }
        // Nodes in a shuffled round robin, so every node hosts a mix of namespaces.
        let mut order: Vec<usize> = (0..sizes.nodes).collect();
        let mut slot = 0usize;
        for (a, &count) in replicas.iter().enumerate() {
            for _ in 0..count {
                if slot.is_multiple_of(sizes.nodes) {
                    rng.shuffle(&mut order);
                }
                let node = order[slot % sizes.nodes];
                slot += 1;
                let app = &w.apps[a];
                let ns = &w.namespaces[app.ns];
                let name = format!("{}-{}-{}", app.name, app.hash, rng.word(K8S_ALPHABET, 5));
                let ip = w.nodes[node].alloc(&mut next_block);
                let mut l = labels(&[
                    ("app", app.name.as_str()),
                    ("pod-template-hash", app.hash.as_str()),
                ]);
                if app.ns == 0 && app.name == "coredns" {
                    l.insert("k8s-app".into(), "kube-dns".into());
                } else {
                    l.insert("role".into(), app.role.into());
                    l.insert("version".into(), app.version.into());
                }
                let felix = pod_labels(&l, &ns.name, Some(&app.sa), Some(&ns.labels), None);
                w.pods.push(Pod {
                    app: a,
                    ns: app.ns,
                    iface: veth_name(&ns.name, &name, None),
                    name,
                    node,
                    ip,
                    labels: l,
                    felix,
                    uid: rng.uuid(),
                    container_id: rng.hex(64),
                    created_ms: now - rng.range(600, 30 * 86_400) as i64 * 1000,
                });
            }
        }

        // Network sets: partner APIs in some namespaces, corporate networks, threat feeds
        // (sized later, once the rest of the IP set members are counted).
        for ns in 2..w.namespaces.len() {
            if !rng.chance(0.4) {
                continue;
            }
            let n = rng.range(3, 12);
            let nets = (0..n)
                .map(|_| {
                    let a = public_addr(&mut rng) & 0xffff_ff00;
                    format!("{}/{}", ip4(a), *rng.pick(&[24u32, 28, 32]))
                })
                .map(|s| s.replace("/32", ""))
                .map(|s| {
                    if s.contains('/') {
                        s
                    } else {
                        format!("{s}/32")
                    }
                })
                .collect();
            let l = labels(&[("networkset", "partner-apis")]);
            let felix =
                network_set_labels(&l, &w.namespaces[ns].name, Some(&w.namespaces[ns].labels));
            w.netsets.push(NetSet {
                ns: Some(ns),
                name: "partner-apis".into(),
                labels: l,
                nets,
                felix,
            });
        }
        let corp: Vec<String> = (0..8)
            .map(|i| {
                if i < 5 {
                    format!("10.{}.0.0/16", 20 + i)
                } else {
                    format!("192.168.{}.0/24", 10 * i)
                }
            })
            .collect();
        let l = labels(&[("networkset", "corp-networks")]);
        w.netsets.push(NetSet {
            ns: None,
            name: "corp-networks".into(),
            felix: global_network_set_labels(&l),
            labels: l,
            nets: corp,
        });
        for feed in ["feodo", "spamhaus-drop", "tor-exits"] {
            let l = labels(&[("threat-feed", feed)]);
            w.netsets.push(NetSet {
                ns: None,
                name: format!("threatfeed.{feed}"),
                felix: global_network_set_labels(&l),
                labels: l,
                nets: Vec::new(),
            });
        }

        w.make_policies(&mut rng);
        w.render_policy_chains();
        w.plan_nodes();
        w.inject_faults();
        w.fill_sets();
        w.size_feeds();
        w.inject_member_faults();
        w.spread_volumes();
        w
    }

    // -----------------------------------------------------------------------------------------
    // Policies
    // -----------------------------------------------------------------------------------------

    fn make_policies(&mut self, rng: &mut Rng) {
        let now = collected_ms();
        let total = self.sizes.policies;
        let n_gnp = (total / 100).max(7);
        let n_knp = total / 10;
        let n_np = total.saturating_sub(n_gnp + n_knp);
        let k8s = "projectcalico.org/orchestrator == 'k8s'";
        let r = |action, protocol, ports: &[u16], peer| RuleSpec {
            action,
            protocol,
            ports: ports.to_vec(),
            peer,
        };
        let sel = |s: &str, ns: &str| Peer::Sel {
            sel: s.to_string(),
            ns_sel: ns.to_string(),
        };

        // Global policies: threat feeds and DNS in `security`, platform rules in `platform`.
        let mut gnps: Vec<GnpSpec> = Vec::new();
        for (i, feed) in ["feodo", "spamhaus-drop", "tor-exits"].iter().enumerate() {
            let s = format!("threat-feed == '{feed}'");
            let egress = if i < 2 {
                vec![r("Deny", None, &[], sel(&s, ""))]
            } else {
                Vec::new()
            };
            gnps.push((
                "security".into(),
                format!("security.block-{feed}"),
                10.0 * (i + 1) as f64,
                k8s.into(),
                String::new(),
                vec![r("Deny", None, &[], sel(&s, ""))],
                egress,
            ));
        }
        gnps.push((
            "security".into(),
            "security.allow-kube-dns".into(),
            100.0,
            k8s.into(),
            String::new(),
            Vec::new(),
            vec![
                r(
                    "Allow",
                    Some("UDP"),
                    &[53],
                    sel(
                        "k8s-app == 'kube-dns'",
                        "projectcalico.org/name == 'kube-system'",
                    ),
                ),
                r(
                    "Allow",
                    Some("TCP"),
                    &[53],
                    sel(
                        "k8s-app == 'kube-dns'",
                        "projectcalico.org/name == 'kube-system'",
                    ),
                ),
            ],
        ));
        gnps.push((
            "platform".into(),
            "platform.allow-prometheus-scrape".into(),
            100.0,
            "has(app)".into(),
            String::new(),
            vec![r(
                "Allow",
                Some("TCP"),
                &[9090, 9100, 8080],
                sel(
                    "app == 'prometheus'",
                    "projectcalico.org/name == 'monitoring'",
                ),
            )],
            Vec::new(),
        ));
        gnps.push((
            "platform".into(),
            "platform.deny-dev-to-prod".into(),
            200.0,
            k8s.into(),
            "env == 'prod'".into(),
            vec![r("Deny", None, &[], sel("", "env == 'dev'"))],
            Vec::new(),
        ));
        gnps.push((
            "default".into(),
            "default-deny".into(),
            2000.0,
            "projectcalico.org/namespace not in {'kube-system', 'monitoring'}".into(),
            String::new(),
            Vec::new(),
            Vec::new(),
        ));
        let teams: BTreeSet<String> = self
            .namespaces
            .iter()
            .filter(|n| !n.team.is_empty())
            .map(|n| n.team.clone())
            .collect();
        let teams: Vec<String> = teams.into_iter().collect();
        let mut k = 0;
        while gnps.len() < n_gnp {
            let team = &teams[k % teams.len()];
            let suffix = if k >= teams.len() {
                format!("-{}", k / teams.len() + 1)
            } else {
                String::new()
            };
            gnps.push((
                "platform".into(),
                format!("platform.allow-corp-to-{team}{suffix}"),
                300.0 + k as f64,
                k8s.into(),
                format!("team == '{team}'"),
                vec![r(
                    "Allow",
                    Some("TCP"),
                    &[443, 8443],
                    sel("networkset == 'corp-networks'", ""),
                )],
                Vec::new(),
            ));
            k += 1;
        }
        for (tier, name, order, selector, ns_selector, ingress, egress) in gnps {
            let types = PolicyTypes {
                ingress: !ingress.is_empty() || egress.is_empty(),
                egress: !egress.is_empty() || ingress.is_empty(),
            };
            let v1 = global_network_policy_selector(&selector, &ns_selector, "");
            self.add_policy(
                rng,
                PolicyKind::GlobalNetworkPolicy,
                name,
                None,
                tier,
                Some(order),
                (selector, ns_selector, BTreeMap::new()),
                v1,
                types,
                (ingress, egress),
                now,
            );
        }

        // Namespaced policies, round robin over the applications of the user namespaces.
        let user_apps: Vec<usize> = (0..self.apps.len())
            .filter(|&a| self.apps[a].ns >= 2)
            .collect();
        let mut used: HashSet<(usize, String)> = HashSet::new();
        let rpp = self.sizes.rules_per_policy as u64;
        for i in 0..(n_np + n_knp) {
            let a = user_apps[i % user_apps.len()];
            let knp = i % 10 == 9 && n_knp > 0;
            let (ns, app_name, app_port, app_version) = {
                let app = &self.apps[a];
                (app.ns, app.name.clone(), app.port, app.version)
            };
            let ns_apps: Vec<usize> = (0..self.apps.len())
                .filter(|&b| self.apps[b].ns == ns && b != a)
                .collect();
            let other = if ns_apps.is_empty() {
                a
            } else {
                *rng.pick(&ns_apps)
            };
            let other_name = self.apps[other].name.clone();
            let other_port = self.apps[other].port;
            let team = self.namespaces[ns].team.clone();
            let has_netset = self.netsets.iter().any(|s| s.ns == Some(ns));
            let roll = rng.below(100);
            let types = if roll < 65 {
                PolicyTypes {
                    ingress: true,
                    egress: false,
                }
            } else if roll < 80 {
                PolicyTypes {
                    ingress: false,
                    egress: true,
                }
            } else {
                PolicyTypes {
                    ingress: true,
                    egress: true,
                }
            };
            let total_rules = rng.range(1, 2 * rpp - 1);
            let (n_in, n_out) = match (types.ingress, types.egress) {
                (true, true) => {
                    let n_in = total_rules.div_ceil(2).max(1);
                    (n_in, total_rules.saturating_sub(n_in).max(1))
                }
                (true, false) => (total_rules, 0),
                _ => (0, total_rules),
            };
            let mut ingress = Vec::new();
            let mut egress = Vec::new();
            let mut base_name = String::new();
            if knp {
                for j in 0..n_in {
                    let peer = if rng.chance(0.75) {
                        Peer::K8sPod(BTreeMap::from([("app".to_string(), other_name.clone())]))
                    } else {
                        Peer::K8sNs(BTreeMap::from([("team".to_string(), team.clone())]))
                    };
                    ingress.push(r("Allow", Some("TCP"), &[app_port + j as u16], peer));
                }
                for _ in 0..n_out {
                    egress.push(r(
                        "Allow",
                        Some("TCP"),
                        &[other_port],
                        Peer::K8sPod(BTreeMap::from([("app".to_string(), other_name.clone())])),
                    ));
                }
                base_name = if n_in > 0 {
                    format!("allow-{other_name}-to-{app_name}")
                } else {
                    format!("{app_name}-egress-{other_name}")
                };
            } else {
                for _ in 0..n_in {
                    let roll = rng.below(100);
                    let rule = if roll < 35 {
                        if base_name.is_empty() {
                            base_name = format!("allow-{other_name}-to-{app_name}");
                        }
                        r(
                            "Allow",
                            Some("TCP"),
                            &[app_port],
                            sel(&format!("app == '{other_name}'"), ""),
                        )
                    } else if roll < 50 {
                        r(
                            "Allow",
                            Some("TCP"),
                            &[app_port],
                            sel("role == 'frontend'", ""),
                        )
                    } else if roll < 65 {
                        r(
                            "Allow",
                            Some("TCP"),
                            &[app_port],
                            sel("role == 'frontend'", &format!("team == '{team}'")),
                        )
                    } else if roll < 73 {
                        r(
                            "Allow",
                            Some("TCP"),
                            &[9090],
                            sel(
                                "app == 'prometheus'",
                                "projectcalico.org/name == 'monitoring'",
                            ),
                        )
                    } else if roll < 83 {
                        let net = format!("10.{}.{}.0/24", rng.range(20, 24), rng.below(256));
                        r(
                            "Allow",
                            Some("TCP"),
                            &[app_port],
                            Peer::Nets {
                                nets: vec![net],
                                not_nets: Vec::new(),
                            },
                        )
                    } else if roll < 90 {
                        r("Deny", None, &[], sel("version == 'v1'", "env == 'dev'"))
                    } else {
                        r("Allow", Some("TCP"), &[app_port, app_port + 1], Peer::Any)
                    };
                    ingress.push(rule);
                }
                for _ in 0..n_out {
                    let roll = rng.below(100);
                    let rule = if roll < 35 {
                        r(
                            "Allow",
                            Some("TCP"),
                            &[other_port],
                            sel(&format!("app == '{other_name}'"), ""),
                        )
                    } else if roll < 55 {
                        r(
                            "Allow",
                            Some("UDP"),
                            &[53],
                            sel(
                                "k8s-app == 'kube-dns'",
                                "projectcalico.org/name == 'kube-system'",
                            ),
                        )
                    } else if roll < 70 && has_netset {
                        r(
                            "Allow",
                            Some("TCP"),
                            &[443],
                            sel("networkset == 'partner-apis'", ""),
                        )
                    } else if roll < 85 {
                        r(
                            "Allow",
                            Some("TCP"),
                            &[443],
                            Peer::Nets {
                                nets: vec!["0.0.0.0/0".into()],
                                not_nets: vec!["10.0.0.0/8".into()],
                            },
                        )
                    } else {
                        r(
                            "Allow",
                            Some("TCP"),
                            &[443, 8443],
                            sel("networkset == 'corp-networks'", "global()"),
                        )
                    };
                    egress.push(rule);
                }
                if base_name.is_empty() {
                    base_name = if types.ingress {
                        format!("{app_name}-ingress")
                    } else {
                        format!("{app_name}-egress")
                    };
                }
            }
            // Unique per namespace.
            let mut name = base_name.clone();
            let mut n = 2;
            while used.contains(&(ns, name.clone())) {
                name = format!("{base_name}-{n}");
                n += 1;
            }
            used.insert((ns, name.clone()));
            let nsname = self.namespaces[ns].name.clone();
            if knp {
                let pod_sel = BTreeMap::from([("app".to_string(), app_name.clone())]);
                let v1 = network_policy_selector(
                    &k8s_selector_to_calico(&k8s_sel(&pod_sel), true),
                    &nsname,
                    "",
                );
                self.add_policy(
                    rng,
                    PolicyKind::KubernetesNetworkPolicy,
                    name,
                    Some(ns),
                    "default".into(),
                    Some(1000.0),
                    (String::new(), String::new(), pod_sel),
                    v1,
                    types,
                    (ingress, egress),
                    now,
                );
            } else {
                let platform = rng.chance(0.15);
                let (tier, name) = if platform {
                    ("platform".to_string(), format!("platform.{name}"))
                } else {
                    ("default".to_string(), name)
                };
                let selector = if rng.chance(0.85) {
                    format!("app == '{app_name}'")
                } else {
                    format!("app == '{app_name}' && version == '{app_version}'")
                };
                let v1 = network_policy_selector(&selector, &nsname, "");
                let order = *rng.pick(&[Some(100.0), Some(200.0), Some(500.0), Some(1000.0), None]);
                self.add_policy(
                    rng,
                    PolicyKind::NetworkPolicy,
                    name,
                    Some(ns),
                    tier,
                    order,
                    (selector, String::new(), BTreeMap::new()),
                    v1,
                    types,
                    (ingress, egress),
                    now,
                );
            }
        }
    }

    /// The set for a v1 selector string, created on first use.
    fn set_for(&mut self, v1: &str, scope: Scope) -> usize {
        let selector = match Selector::parse(v1) {
            Ok(s) => s,
            Err(e) => panic!("generated selector {v1:?} does not parse: {e:?}"),
        };
        let id = selector.unique_id();
        if let Some(i) = self.sets.iter().position(|s| s.id == id) {
            return i;
        }
        let feed = v1.contains("threat-feed");
        self.sets.push(IpSet {
            name: selector.ipset_name(false),
            id,
            selector,
            scope,
            members: Vec::new(),
            pod_members: Vec::new(),
            feed,
        });
        self.sets.len() - 1
    }

    /// Namespaces whose labels a namespaceSelector matches.
    fn namespaces_matching(&self, ns_sel: &str) -> Vec<usize> {
        if ns_sel == "global()" {
            return Vec::new();
        }
        let s = Selector::parse(ns_sel).unwrap_or_else(|e| panic!("{ns_sel:?}: {e:?}"));
        (0..self.namespaces.len())
            .filter(|&i| s.evaluate(&NsLabels(&self.namespaces[i])))
            .collect()
    }

    /// One rule side in Felix's terms: the v1 selector's set, with its scope.
    fn peer_set(&mut self, peer: &Peer, ns: Option<usize>) -> Option<usize> {
        let nsname = ns
            .map(|n| self.namespaces[n].name.clone())
            .unwrap_or_default();
        let (selector, ns_sel) = match peer {
            Peer::Any | Peer::Nets { .. } => return None,
            Peer::Sel { sel, ns_sel } => (sel.clone(), ns_sel.clone()),
            Peer::K8sPod(m) => (k8s_selector_to_calico(&k8s_sel(m), true), String::new()),
            Peer::K8sNs(m) => (
                k8s_optional_selector_to_calico(None, true),
                k8s_selector_to_calico(&k8s_sel(m), false),
            ),
        };
        let er = EntityRuleSelectors {
            selector,
            namespace_selector: ns_sel.clone(),
            ..Default::default()
        };
        let v1 = entity_rule_selector(&er, &nsname);
        let scope = if ns_sel == "global()" {
            Scope::GlobalSets
        } else if !ns_sel.is_empty() {
            Scope::Namespaces(self.namespaces_matching(&ns_sel))
        } else if let Some(n) = ns {
            Scope::Ns(n)
        } else {
            Scope::Global
        };
        Some(self.set_for(&v1, scope))
    }

    fn proto_rules(
        &mut self,
        specs: &[RuleSpec],
        ns: Option<usize>,
        ingress: bool,
        sets: &mut Vec<usize>,
    ) -> Vec<ProtoRule> {
        let mut out = Vec::new();
        for spec in specs {
            let mut pr = ProtoRule {
                action: spec.action.to_ascii_lowercase(),
                protocol: proto(spec.protocol),
                dst_ports: spec
                    .ports
                    .iter()
                    .map(|&p| PortRange { first: p, last: p })
                    .collect(),
                ..Default::default()
            };
            if let Peer::Nets { nets, not_nets } = &spec.peer {
                if ingress {
                    pr.src_net = nets.clone();
                    pr.not_src_net = not_nets.clone();
                } else {
                    pr.dst_net = nets.clone();
                    pr.not_dst_net = not_nets.clone();
                }
            }
            if let Some(set) = self.peer_set(&spec.peer, ns) {
                let id = self.sets[set].id.clone();
                if ingress {
                    pr.src_ip_set_ids.push(id);
                } else {
                    pr.dst_ip_set_ids.push(id);
                }
                if !sets.contains(&set) {
                    sets.push(set);
                }
            }
            out.push(pr);
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn add_policy(
        &mut self,
        rng: &mut Rng,
        kind: PolicyKind,
        name: String,
        ns: Option<usize>,
        tier: String,
        order: Option<f64>,
        selectors: (String, String, BTreeMap<String, String>),
        v1: String,
        types: PolicyTypes,
        rules: (Vec<RuleSpec>, Vec<RuleSpec>),
        now: i64,
    ) {
        let (selector, ns_selector, k8s_pod_selector) = selectors;
        let (ingress, egress) = rules;
        let nsname = ns.map(|n| self.namespaces[n].name.clone());
        let key = FelixPolicyKey::from_ref(
            &PolicyRef::new(kind.clone(), &name, nsname.as_deref(), &tier),
            VERSION,
        );
        let v1_selector = Selector::parse(&v1).unwrap_or_else(|e| panic!("{v1:?}: {e:?}"));
        let sortable = SortablePolicy::new(key.clone(), order, types, v1_selector.canonical());
        let mut sets = Vec::new();
        let proto_in = if types.ingress {
            self.proto_rules(&ingress, ns, true, &mut sets)
        } else {
            Vec::new()
        };
        let proto_out = if types.egress {
            self.proto_rules(&egress, ns, false, &mut sets)
        } else {
            Vec::new()
        };
        let log_msg = active_policy_msg(&key, nsname.as_deref(), &proto_in, &proto_out, rng);
        self.policies.push(Policy {
            kind,
            name,
            ns,
            tier,
            order,
            selector,
            k8s_pod_selector,
            ns_selector,
            types,
            ingress,
            egress,
            key,
            v1_selector,
            sortable,
            proto_in,
            proto_out,
            sets,
            created_ms: now - rng.range(3600, 90 * 86_400) as i64 * 1000,
            uid: rng.uuid(),
            log_msg,
        });
    }

    /// Every policy chain, rendered once (the same on every node that programs it).
    fn render_policy_chains(&mut self) {
        let lines: Vec<[Option<ChainLines>; 2]> = self
            .policies
            .par_iter()
            .map(|p| {
                let mut out: [Option<ChainLines>; 2] = [None, None];
                for (i, dir) in Direction::BOTH.iter().enumerate() {
                    if !p.types.governs(*dir) {
                        continue;
                    }
                    let rules = if *dir == Direction::Ingress {
                        &p.proto_in
                    } else {
                        &p.proto_out
                    };
                    let chain = policy_chain_name(*dir, &p.key, VERSION, false);
                    let felix = policy_chain_rules(&p.key, *dir, rules, 4, false, &self.render);
                    out[i] = Some((chain.clone(), save_lines(&chain, &felix)));
                }
                out
            })
            .collect();
        self.policy_lines = lines;
    }

    // -----------------------------------------------------------------------------------------
    // Nodes
    // -----------------------------------------------------------------------------------------

    fn plan_nodes(&mut self) {
        let mut by_ns: Vec<Vec<usize>> = vec![Vec::new(); self.namespaces.len()];
        let mut global = Vec::new();
        for (i, p) in self.policies.iter().enumerate() {
            match p.ns {
                Some(n) => by_ns[n].push(i),
                None => global.push(i),
            }
        }
        let mut plans: Vec<NodePlan> = (0..self.nodes.len()).map(|_| NodePlan::default()).collect();
        for (pi, pod) in self.pods.iter().enumerate() {
            let matched: Vec<usize> = by_ns[pod.ns]
                .iter()
                .chain(global.iter())
                .copied()
                .filter(|&i| self.policies[i].v1_selector.evaluate(&pod.felix))
                .collect();
            let plan = &mut plans[pod.node];
            plan.pods.push(pi);
            plan.pod_policies.push(matched);
        }
        self.plans = plans;
    }

    /// Recompute what a node programs from its pods' policies.
    fn settle_node(&mut self, n: usize) {
        let plan = &mut self.plans[n];
        plan.policies = plan.pod_policies.iter().flatten().copied().collect();
        plan.sets = plan
            .policies
            .iter()
            .flat_map(|&p| self.policies[p].sets.iter().copied())
            .collect();
    }

    /// Chain-level faults: a policy Felix never programmed on one node, a chain left behind.
    fn inject_faults(&mut self) {
        let mut rng = Rng::for_tag(self.seed, "faults");
        let n = self.nodes.len();
        let start = rng.idx(n);
        let node_at = |k: usize| (start + k) % n;

        // Missing policy chain: a default-tier NetworkPolicy with ingress rules that selects a
        // pod on this node; this node's Felix never got it.
        let f1 = node_at(0);
        let candidates: Vec<usize> = self.plans[f1]
            .pod_policies
            .iter()
            .flatten()
            .copied()
            .filter(|&p| {
                let pol = &self.policies[p];
                pol.kind == PolicyKind::NetworkPolicy
                    && pol.tier == "default"
                    && pol.types.ingress
                    && !pol.proto_in.is_empty()
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !candidates.is_empty() {
            let p = *rng.pick(&candidates);
            let mut pods = Vec::new();
            for (k, list) in self.plans[f1].pod_policies.iter_mut().enumerate() {
                if list.contains(&p) {
                    list.retain(|&x| x != p);
                    pods.push(k);
                }
            }
            let pol = &self.policies[p];
            let chain = self.policy_lines[p][0]
                .as_ref()
                .map(|(c, _)| c.clone())
                .unwrap_or_default();
            self.faults.push(json!({
                "kind": "missing-policy-chain",
                "node": self.nodes[f1].name,
                "policy": format!("{}/{}", self.namespaces[pol.ns.unwrap_or(0)].name, pol.name),
                "chain": chain,
                "selects": pods.iter().map(|&k| {
                    let pod = &self.pods[self.plans[f1].pods[k]];
                    format!("{}/{}", self.namespaces[pod.ns].name, pod.name)
                }).collect::<Vec<_>>(),
            }));
        }

        // Orphan chain: a policy deleted from the datastore whose chain is still there.
        let f2 = node_at(1);
        if let Some(&pod) = self.plans[f2].pods.first() {
            let ns = self.pods[pod].ns;
            let nsname = self.namespaces[ns].name.clone();
            let name = format!(
                "legacy-allow-{}",
                rng.word(b"abcdefghijklmnopqrstuvwxyz", 6)
            );
            let key = FelixPolicyKey::from_ref(
                &PolicyRef::new(PolicyKind::NetworkPolicy, &name, Some(&nsname), "default"),
                VERSION,
            );
            let rule = ProtoRule {
                action: "allow".into(),
                protocol: Some(Protocol::Name("tcp".into())),
                src_net: vec!["10.30.0.0/16".into()],
                dst_ports: vec![PortRange {
                    first: 8080,
                    last: 8080,
                }],
                ..Default::default()
            };
            let chain = policy_chain_name(Direction::Ingress, &key, VERSION, false);
            let felix =
                policy_chain_rules(&key, Direction::Ingress, &[rule], 4, false, &self.render);
            self.faults.push(json!({
                "kind": "orphan-policy-chain",
                "node": self.nodes[f2].name,
                "chain": chain,
                "policy": format!("{nsname}/{name}"),
            }));
            self.plans[f2].orphan_chain = Some((chain.clone(), save_lines(&chain, &felix)));
        }
        for k in 0..n {
            self.settle_node(k);
        }
    }

    /// Members of every set some node programs (cluster-wide: any matching endpoint or set).
    fn fill_sets(&mut self) {
        let used: BTreeSet<usize> = self
            .plans
            .iter()
            .flat_map(|p| p.sets.iter().copied())
            .collect();
        let mut pods_by_ns: Vec<Vec<usize>> = vec![Vec::new(); self.namespaces.len()];
        for (i, p) in self.pods.iter().enumerate() {
            pods_by_ns[p.ns].push(i);
        }
        let filled: Vec<(usize, Vec<String>, Vec<u32>)> = used
            .into_par_iter()
            .filter(|&s| !self.sets[s].feed)
            .map(|s| {
                let set = &self.sets[s];
                let mut pod_ips = Vec::new();
                let mut nets = Vec::new();
                let mut consider_ns = |ns: Option<usize>| {
                    let pods: Box<dyn Iterator<Item = &usize>> = match ns {
                        Some(n) => Box::new(pods_by_ns[n].iter()),
                        None => Box::new(std::iter::empty()),
                    };
                    for &p in pods {
                        if set.selector.evaluate(&self.pods[p].felix) {
                            pod_ips.push(self.pods[p].ip);
                        }
                    }
                    for ns_set in self.netsets.iter().filter(|x| x.ns == ns && ns.is_some()) {
                        if set.selector.evaluate(&ns_set.felix) {
                            nets.extend(ns_set.nets.iter().cloned());
                        }
                    }
                };
                match &set.scope {
                    Scope::Ns(n) => consider_ns(Some(*n)),
                    Scope::Namespaces(list) => {
                        for &n in list {
                            consider_ns(Some(n));
                        }
                    }
                    Scope::Global => {
                        for n in 0..self.namespaces.len() {
                            consider_ns(Some(n));
                        }
                    }
                    Scope::GlobalSets => {}
                }
                if matches!(set.scope, Scope::Global | Scope::GlobalSets) {
                    for g in self.netsets.iter().filter(|x| x.ns.is_none()) {
                        if set.selector.evaluate(&g.felix) {
                            nets.extend(g.nets.iter().cloned());
                        }
                    }
                }
                pod_ips.sort_unstable();
                nets.sort();
                nets.dedup();
                let mut members: Vec<String> = pod_ips.iter().map(|&ip| ip4(ip)).collect();
                members.extend(nets.iter().map(|n| ipset_member(n)));
                (s, members, pod_ips)
            })
            .collect();
        for (s, members, pod_ips) in filled {
            self.sets[s].members = members;
            self.sets[s].pod_members = pod_ips;
        }
    }

    /// The threat feeds make up what the other sets leave of the requested member count.
    fn size_feeds(&mut self) {
        let mut natural = 0u64;
        let mut feed_nodes = 0u64;
        for plan in &self.plans {
            let mut has_feed = false;
            for &s in &plan.sets {
                if self.sets[s].feed {
                    has_feed = true;
                } else {
                    natural += self.sets[s].members.len() as u64;
                }
            }
            natural += (self.nodes.len() as u64).saturating_sub(1) + 2;
            feed_nodes += u64::from(has_feed);
        }
        let per_node = self
            .sizes
            .ipset_members
            .saturating_sub(natural)
            .checked_div(feed_nodes.max(1))
            .unwrap_or(0);
        let shares = [0.5, 0.3, 0.2];
        let mut rng = Rng::for_tag(self.seed, "feeds");
        let mut seen: HashSet<u64> = HashSet::new();
        for (k, feed) in ["feodo", "spamhaus-drop", "tor-exits"].iter().enumerate() {
            let want = ((per_node as f64 * shares[k]) as usize).max(10);
            let mut nets = Vec::with_capacity(want);
            while nets.len() < want {
                let a = public_addr(&mut rng);
                let len = match rng.below(10) {
                    0..=5 => 32,
                    6..=8 => 24,
                    _ => rng.range(16, 23) as u32,
                };
                let a = a & (u32::MAX << (32 - len));
                if seen.insert((u64::from(a) << 8) | u64::from(len)) {
                    nets.push(format!("{}/{len}", ip4(a)));
                }
            }
            if let Some(g) = self
                .netsets
                .iter_mut()
                .find(|g| g.name == format!("threatfeed.{feed}"))
            {
                g.nets = nets.clone();
            }
            for set in self.sets.iter_mut().filter(|s| s.feed) {
                if set.selector.canonical().contains(&format!("\"{feed}\"")) {
                    set.members = nets.iter().map(|n| ipset_member(n)).collect();
                }
            }
        }
    }

    /// Member-level faults: one member missing on a node, one stale member on another.
    fn inject_member_faults(&mut self) {
        let mut rng = Rng::for_tag(self.seed, "member-faults");
        let n = self.nodes.len();
        let start = Rng::for_tag(self.seed, "faults").idx(n);
        let f3 = (start + 2) % n;
        let f4 = (start + 3) % n;
        let pick_set = |w: &World, node: usize, min: usize| -> Option<usize> {
            let c: Vec<usize> = w.plans[node]
                .sets
                .iter()
                .copied()
                .filter(|&s| !w.sets[s].feed && w.sets[s].pod_members.len() >= min)
                .collect();
            (!c.is_empty()).then(|| c[c.len() / 2])
        };
        if let Some(s) = pick_set(self, f3, 2) {
            let ip = self.sets[s].pod_members[rng.idx(self.sets[s].pod_members.len())];
            let pod = self.pods.iter().find(|p| p.ip == ip);
            self.faults.push(json!({
                "kind": "missing-ipset-member",
                "node": self.nodes[f3].name,
                "ipset": self.sets[s].name,
                "selector": self.sets[s].selector.canonical(),
                "member": ip4(ip),
                "pod": pod.map(|p| format!("{}/{}", self.namespaces[p.ns].name, p.name)),
            }));
            self.plans[f3].missing_member = Some((s, ip4(ip)));
        }
        if let Some(s) = pick_set(self, f4, 1) {
            // An address of the pool no pod holds: the last of a node's last block.
            let node = &self.nodes[rng.idx(n)];
            let last = node.blocks.last().copied().unwrap_or(POOL) + BLOCK - 1;
            let stale = if node.used.is_multiple_of(BLOCK) {
                last + BLOCK
            } else {
                last
            };
            self.faults.push(json!({
                "kind": "stale-ipset-member",
                "node": self.nodes[f4].name,
                "ipset": self.sets[s].name,
                "selector": self.sets[s].selector.canonical(),
                "member": ip4(stale),
            }));
            self.plans[f4].stale_member = Some((s, ip4(stale)));
        }
    }

    /// Log bytes and conntrack entries per node (remainders to the first nodes).
    fn spread_volumes(&mut self) {
        let n = self.nodes.len() as u64;
        self.log_bytes = (0..n)
            .map(|i| self.sizes.log_bytes / n + u64::from(i < self.sizes.log_bytes % n))
            .collect();
        self.conntrack = (0..n)
            .map(|i| self.sizes.conntrack / n + u64::from(i < self.sizes.conntrack % n))
            .collect();
    }

    fn ns_name(&self, ns: Option<usize>) -> &str {
        ns.map(|n| self.namespaces[n].name.as_str()).unwrap_or("")
    }
}

/// How `ipset save` prints a hash:net member: a /32 as the bare address.
fn ipset_member(net: &str) -> String {
    net.strip_suffix("/32").unwrap_or(net).to_string()
}

/// A chain's rules as `iptables-save` prints them, without counters.
fn save_lines(chain: &str, rules: &[FelixRule]) -> Vec<String> {
    let hashes = rule_hashes(chain, rules);
    rules
        .iter()
        .zip(hashes)
        .map(|(r, h)| {
            format!(
                "-A {chain} {}",
                felix_to_iptables_save(&r.render_append(chain, &h), 4)
            )
        })
        .collect()
}

/// Felix's debug rendering of an `ActivePolicyUpdate` (protobuf text form).
fn active_policy_msg(
    key: &FelixPolicyKey,
    ns: Option<&str>,
    ins: &[ProtoRule],
    outs: &[ProtoRule],
    rng: &mut Rng,
) -> String {
    let mut s = format!(
        "id:<tier:\"{}\" name:\"{}\" > policy:<",
        key.tier, key.v1_name
    );
    if let Some(ns) = ns {
        s.push_str(&format!("namespace:\"{ns}\" "));
    }
    for (word, rules) in [("inbound_rules", ins), ("outbound_rules", outs)] {
        for r in rules {
            s.push_str(&format!("{word}:<action:\"{}\" ", r.action));
            if let Some(Protocol::Name(p)) = &r.protocol {
                s.push_str(&format!("protocol:<name:\"{p}\" > "));
            }
            for n in &r.src_net {
                s.push_str(&format!("src_net:\"{n}\" "));
            }
            for id in &r.src_ip_set_ids {
                s.push_str(&format!("src_ip_set_ids:\"{id}\" "));
            }
            for n in &r.dst_net {
                s.push_str(&format!("dst_net:\"{n}\" "));
            }
            for id in &r.dst_ip_set_ids {
                s.push_str(&format!("dst_ip_set_ids:\"{id}\" "));
            }
            for p in &r.dst_ports {
                s.push_str(&format!("dst_ports:<first:{} last:{} > ", p.first, p.last));
            }
            for n in &r.not_dst_net {
                s.push_str(&format!("not_dst_net:\"{n}\" "));
            }
            s.push_str(&format!(
                "rule_id:\"{}\" > ",
                rng.word(
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                    16
                )
            ));
        }
    }
    s.push('>');
    s
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cluster {
    CalicoNetworkPolicies,
    CalicoGlobalNetworkPolicies,
    CalicoTiers,
    CalicoWorkloadEndpoints,
    CalicoHostEndpoints,
    CalicoProfiles,
    CalicoNetworkSets,
    CalicoGlobalNetworkSets,
    CalicoFelixConfigurations,
    CalicoIpPools,
    CalicoNodes,
    CalicoClusterInformations,
    K8sPods,
    K8sNamespaces,
    K8sNetworkPolicies,
    K8sNodes,
    K8sServices,
}

impl Cluster {
    const ALL: [Cluster; 17] = [
        Cluster::CalicoNetworkPolicies,
        Cluster::CalicoGlobalNetworkPolicies,
        Cluster::CalicoTiers,
        Cluster::CalicoWorkloadEndpoints,
        Cluster::CalicoHostEndpoints,
        Cluster::CalicoProfiles,
        Cluster::CalicoNetworkSets,
        Cluster::CalicoGlobalNetworkSets,
        Cluster::CalicoFelixConfigurations,
        Cluster::CalicoIpPools,
        Cluster::CalicoNodes,
        Cluster::CalicoClusterInformations,
        Cluster::K8sPods,
        Cluster::K8sNamespaces,
        Cluster::K8sNetworkPolicies,
        Cluster::K8sNodes,
        Cluster::K8sServices,
    ];

    /// (calico?, plural)
    fn plural(self) -> (bool, &'static str) {
        match self {
            Cluster::CalicoNetworkPolicies => (true, "networkpolicies"),
            Cluster::CalicoGlobalNetworkPolicies => (true, "globalnetworkpolicies"),
            Cluster::CalicoTiers => (true, "tiers"),
            Cluster::CalicoWorkloadEndpoints => (true, "workloadendpoints"),
            Cluster::CalicoHostEndpoints => (true, "hostendpoints"),
            Cluster::CalicoProfiles => (true, "profiles"),
            Cluster::CalicoNetworkSets => (true, "networksets"),
            Cluster::CalicoGlobalNetworkSets => (true, "globalnetworksets"),
            Cluster::CalicoFelixConfigurations => (true, "felixconfigurations"),
            Cluster::CalicoIpPools => (true, "ippools"),
            Cluster::CalicoNodes => (true, "nodes"),
            Cluster::CalicoClusterInformations => (true, "clusterinformations"),
            Cluster::K8sPods => (false, "pods"),
            Cluster::K8sNamespaces => (false, "namespaces"),
            Cluster::K8sNetworkPolicies => (false, "networkpolicies"),
            Cluster::K8sNodes => (false, "nodes"),
            Cluster::K8sServices => (false, "services"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeFile {
    IptablesSave,
    IpsetSave,
    Conntrack,
    ConntrackStats,
    Sysctl,
    FelixLog,
    Hostname,
}

impl NodeFile {
    const ALL: [NodeFile; 7] = [
        NodeFile::IptablesSave,
        NodeFile::IpsetSave,
        NodeFile::Conntrack,
        NodeFile::ConntrackStats,
        NodeFile::Sysctl,
        NodeFile::FelixLog,
        NodeFile::Hostname,
    ];
    fn file_name(self) -> &'static str {
        match self {
            NodeFile::IptablesSave => "iptables-save.txt",
            NodeFile::IpsetSave => "ipset-save.txt",
            NodeFile::Conntrack => "conntrack.txt",
            NodeFile::ConntrackStats => "conntrack-stats.txt",
            NodeFile::Sysctl => "sysctl.txt",
            NodeFile::FelixLog => "felix.log",
            NodeFile::Hostname => "hostname",
        }
    }
    /// (command name, kind, argv)
    fn command(self) -> (&'static str, &'static str, Vec<&'static str>) {
        match self {
            NodeFile::IptablesSave => (
                "iptables-save",
                "iptables-save",
                vec!["iptables-save", "-c"],
            ),
            NodeFile::IpsetSave => ("ipset-save", "ipset-save", vec!["ipset", "save"]),
            NodeFile::Conntrack => ("conntrack", "conntrack", vec!["conntrack", "-L"]),
            NodeFile::ConntrackStats => (
                "conntrack-stats",
                "conntrack-stats",
                vec!["conntrack", "-S"],
            ),
            NodeFile::Sysctl => (
                "sysctl",
                "sysctl",
                vec![
                    "sysctl",
                    "net.ipv4.ip_forward",
                    "net.ipv4.conf.all.rp_filter",
                    "net.netfilter.nf_conntrack_count",
                    "net.netfilter.nf_conntrack_max",
                ],
            ),
            NodeFile::FelixLog => (
                "felix-log",
                "felix-log",
                vec![
                    "kubectl",
                    "logs",
                    "-n",
                    "calico-system",
                    "calico-node",
                    "-c",
                    "calico-node",
                ],
            ),
            NodeFile::Hostname => ("hostname", "hostname", vec!["hostname"]),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Job {
    Manifest,
    Cluster(Cluster),
    Node(usize, NodeFile),
}

/// What writing one file produced, for the summary.
#[derive(Default, Clone, Copy)]
struct Counts {
    iptables_rules: u64,
    ipset_members: u64,
    conntrack: u64,
    log_records: u64,
}

impl World {
    fn bundle_name(&self) -> String {
        format!("calico-bundle-gen-{BUNDLE_TS}")
    }

    fn jobs(&self) -> Vec<(String, Job)> {
        let mut out = vec![("manifest.json".to_string(), Job::Manifest)];
        for c in Cluster::ALL {
            let (calico, plural) = c.plural();
            let dir = if calico { "calico" } else { "k8s" };
            out.push((format!("cluster/{dir}/{plural}.yaml"), Job::Cluster(c)));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            for f in NodeFile::ALL {
                out.push((
                    format!("nodes/{}/{}", n.name, f.file_name()),
                    Job::Node(i, f),
                ));
            }
        }
        out
    }

    /// The exact size of a file, when known without generating it.
    fn known_size(&self, job: Job) -> Option<u64> {
        match job {
            Job::Node(n, NodeFile::FelixLog) => Some(self.log_bytes[n]),
            _ => None,
        }
    }

    fn write_job(&self, job: Job, out: &mut dyn Write) -> io::Result<Counts> {
        let mut w = BufWriter::with_capacity(256 << 10, out);
        let mut c = Counts::default();
        match job {
            Job::Manifest => unreachable!("the manifest is written from the sizes"),
            Job::Cluster(k) => self.write_cluster(k, &mut w)?,
            Job::Node(n, f) => match f {
                NodeFile::IptablesSave => c.iptables_rules = self.write_iptables(n, &mut w)?,
                NodeFile::IpsetSave => c.ipset_members = self.write_ipsets(n, &mut w)?,
                NodeFile::Conntrack => c.conntrack = self.write_conntrack(n, &mut w)?,
                NodeFile::ConntrackStats => self.write_conntrack_stats(n, &mut w)?,
                NodeFile::Sysctl => self.write_sysctl(n, &mut w)?,
                NodeFile::FelixLog => c.log_records = self.write_felix_log(n, &mut w)?,
                NodeFile::Hostname => writeln!(w, "{}", self.nodes[n].name)?,
            },
        }
        w.flush()?;
        Ok(c)
    }

    fn manifest(&self, sizes: &BTreeMap<String, u64>) -> Vec<u8> {
        let mut commands = Vec::new();
        for (path, job) in self.jobs() {
            let bytes = sizes.get(&path).copied().unwrap_or(0);
            let duration = 30 + bytes / 2_000_000;
            match job {
                Job::Manifest => {}
                Job::Cluster(c) => {
                    let (calico, plural) = c.plural();
                    let (name, kind, argv) = if calico {
                        (
                            format!("calico-{plural}"),
                            "calico-resources",
                            vec!["calicoctl", "get", plural, "-A", "-o", "yaml"],
                        )
                    } else {
                        (
                            format!("k8s-{plural}"),
                            "k8s-resources",
                            vec!["kubectl", "get", plural, "-A", "-o", "yaml"],
                        )
                    };
                    commands.push(json!({
                        "node": null, "name": name, "kind": kind, "argv": argv, "path": path,
                        "exit_code": 0, "duration_ms": duration, "bytes": bytes,
                    }));
                }
                Job::Node(n, f) => {
                    let (name, kind, argv) = f.command();
                    commands.push(json!({
                        "node": self.nodes[n].name, "name": name, "kind": kind, "argv": argv,
                        "path": path, "exit_code": 0, "duration_ms": duration, "bytes": bytes,
                    }));
                }
            }
        }
        let m = json!({
            "format": "calico-bundle/1",
            "collected_at": COLLECTED_AT,
            "collector_version": "0.1.0",
            "nodes": self.nodes.iter().map(|n| n.name.clone()).collect::<Vec<_>>(),
            "commands": commands,
        });
        let mut v = serde_json::to_vec_pretty(&m).unwrap_or_default();
        v.push(b'\n');
        v
    }

    // -----------------------------------------------------------------------------------------
    // iptables-save -c
    // -----------------------------------------------------------------------------------------

    fn write_iptables(&self, n: usize, w: &mut dyn Write) -> io::Result<u64> {
        let node = &self.nodes[n];
        let plan = &self.plans[n];
        let mut rng = Rng::for_tag(self.seed, &format!("iptables/{}", node.name));
        let stamp = ctime(collected_ms() - 4000);
        let mut rules = 0u64;
        let f = |m: &str, a: &str| FelixRule::new(m, a);
        let fc = |m: &str, a: &str, c: &str| FelixRule::new(m, a).with_comment(c);
        let clear = "--jump MARK --set-mark 0/0x1e0000";
        let accept_mark = "-m mark --mark 0x10000/0x10000";

        // raw, mangle, nat: Felix's fixed chains.
        let tables: Vec<FixedTable> = vec![
            (
                "raw",
                vec![("PREROUTING", "ACCEPT"), ("OUTPUT", "ACCEPT")],
                vec![
                    (
                        "PREROUTING".into(),
                        save_lines("PREROUTING", &[f("", "--jump cali-PREROUTING")]),
                    ),
                    (
                        "OUTPUT".into(),
                        save_lines("OUTPUT", &[f("", "--jump cali-OUTPUT")]),
                    ),
                    (
                        "cali-OUTPUT".into(),
                        save_lines(
                            "cali-OUTPUT",
                            &[
                                f("", clear),
                                f("", "--jump cali-to-host-endpoint"),
                                f(accept_mark, "--jump ACCEPT"),
                            ],
                        ),
                    ),
                    (
                        "cali-PREROUTING".into(),
                        save_lines(
                            "cali-PREROUTING",
                            &[
                                f("", clear),
                                f(
                                    "--in-interface cali+",
                                    "--jump MARK --set-mark 0x40000/0x40000",
                                ),
                                f("-m mark --mark 0x40000/0x40000", "--jump cali-rpf-skip"),
                                f(
                                    "-m mark --mark 0x40000/0x40000 -m rpfilter --validmark --invert",
                                    "--jump DROP",
                                ),
                                f(
                                    "-m mark --mark 0x0/0x40000",
                                    "--jump cali-from-host-endpoint",
                                ),
                                f(accept_mark, "--jump ACCEPT"),
                            ],
                        ),
                    ),
                    ("cali-from-host-endpoint".into(), Vec::new()),
                    ("cali-rpf-skip".into(), Vec::new()),
                    ("cali-to-host-endpoint".into(), Vec::new()),
                ],
            ),
            (
                "mangle",
                vec![
                    ("PREROUTING", "ACCEPT"),
                    ("INPUT", "ACCEPT"),
                    ("FORWARD", "ACCEPT"),
                    ("OUTPUT", "ACCEPT"),
                    ("POSTROUTING", "ACCEPT"),
                ],
                vec![
                    (
                        "PREROUTING".into(),
                        save_lines("PREROUTING", &[f("", "--jump cali-PREROUTING")]),
                    ),
                    (
                        "POSTROUTING".into(),
                        save_lines("POSTROUTING", &[f("", "--jump cali-POSTROUTING")]),
                    ),
                    (
                        "cali-POSTROUTING".into(),
                        save_lines(
                            "cali-POSTROUTING",
                            &[
                                f(accept_mark, "--jump RETURN"),
                                f("", clear),
                                f(
                                    "-m conntrack --ctstate DNAT",
                                    "--jump cali-to-host-endpoint",
                                ),
                                fc(
                                    accept_mark,
                                    "--jump RETURN",
                                    "Host endpoint policy accepted packet.",
                                ),
                            ],
                        ),
                    ),
                    (
                        "cali-PREROUTING".into(),
                        save_lines(
                            "cali-PREROUTING",
                            &[
                                f(
                                    "-m conntrack --ctstate RELATED,ESTABLISHED",
                                    "--jump ACCEPT",
                                ),
                                f(accept_mark, "--jump ACCEPT"),
                                f("", "--jump cali-from-host-endpoint"),
                                fc(
                                    accept_mark,
                                    "--jump ACCEPT",
                                    "Host endpoint policy accepted packet.",
                                ),
                            ],
                        ),
                    ),
                    ("cali-from-host-endpoint".into(), Vec::new()),
                    ("cali-to-host-endpoint".into(), Vec::new()),
                ],
            ),
            (
                "nat",
                vec![
                    ("PREROUTING", "ACCEPT"),
                    ("INPUT", "ACCEPT"),
                    ("OUTPUT", "ACCEPT"),
                    ("POSTROUTING", "ACCEPT"),
                ],
                vec![
                    (
                        "PREROUTING".into(),
                        save_lines("PREROUTING", &[f("", "--jump cali-PREROUTING")]),
                    ),
                    (
                        "OUTPUT".into(),
                        save_lines("OUTPUT", &[f("", "--jump cali-OUTPUT")]),
                    ),
                    (
                        "POSTROUTING".into(),
                        save_lines("POSTROUTING", &[f("", "--jump cali-POSTROUTING")]),
                    ),
                    (
                        "cali-OUTPUT".into(),
                        save_lines("cali-OUTPUT", &[f("", "--jump cali-fip-dnat")]),
                    ),
                    (
                        "cali-POSTROUTING".into(),
                        save_lines(
                            "cali-POSTROUTING",
                            &[
                                f("", "--jump cali-fip-snat"),
                                f("", "--jump cali-nat-outgoing"),
                            ],
                        ),
                    ),
                    (
                        "cali-PREROUTING".into(),
                        save_lines("cali-PREROUTING", &[f("", "--jump cali-fip-dnat")]),
                    ),
                    ("cali-fip-dnat".into(), Vec::new()),
                    ("cali-fip-snat".into(), Vec::new()),
                    (
                        "cali-nat-outgoing".into(),
                        save_lines(
                            "cali-nat-outgoing",
                            &[f(
                                "-m set --match-set cali40masq-ipam-pools src -m set ! --match-set cali40all-ipam-pools dst",
                                "--jump MASQUERADE --random-fully",
                            )],
                        ),
                    ),
                ],
            ),
        ];
        for (table, builtins, chains) in &tables {
            rules += write_table(w, &mut rng, &stamp, table, builtins, chains.clone())?;
        }

        // filter: fixed chains, dispatch, endpoint, policy-group, policy and profile chains.
        let mut chains: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut builtin: Vec<(String, Vec<String>)> = Vec::new();
        let mut fwd = save_lines("FORWARD", &[f("", "--jump cali-FORWARD")]);
        let appended = [
            fc(
                accept_mark,
                "--jump ACCEPT",
                "Policy explicitly accepted packet.",
            ),
            f("", "--jump MARK --set-mark 0x10000/0x10000"),
        ];
        let hashes = appended_rule_hashes("FORWARD", &appended);
        for (r, h) in appended.iter().zip(hashes) {
            fwd.push(format!(
                "-A FORWARD {}",
                felix_to_iptables_save(&r.render_append("FORWARD", &h), 4)
            ));
        }
        builtin.push((
            "INPUT".into(),
            save_lines("INPUT", &[f("", "--jump cali-INPUT")]),
        ));
        builtin.push(("FORWARD".into(), fwd));
        builtin.push((
            "OUTPUT".into(),
            save_lines("OUTPUT", &[f("", "--jump cali-OUTPUT")]),
        ));
        let mut fixed = |name: &str, rules: &[FelixRule]| {
            chains.insert(name.to_string(), save_lines(name, rules));
        };
        fixed(
            "cali-FORWARD",
            &[
                f("", clear),
                f("-m mark --mark 0/0x10000", "--jump cali-from-hep-forward"),
                f("--in-interface cali+", "--jump cali-from-wl-dispatch"),
                f("--out-interface cali+", "--jump cali-to-wl-dispatch"),
                f("", "--jump cali-to-hep-forward"),
                f("", "--jump cali-cidr-block"),
            ],
        );
        fixed(
            "cali-INPUT",
            &[
                f("--in-interface cali+", "--goto cali-wl-to-host"),
                f(accept_mark, "--jump ACCEPT"),
                f("", clear),
                f("", "--jump cali-from-host-endpoint"),
                fc(
                    accept_mark,
                    "--jump ACCEPT",
                    "Host endpoint policy accepted packet.",
                ),
            ],
        );
        fixed(
            "cali-OUTPUT",
            &[
                f(accept_mark, "--jump ACCEPT"),
                f("--out-interface cali+", "--jump RETURN"),
                f("", clear),
                f(
                    "-m conntrack ! --ctstate DNAT",
                    "--jump cali-to-host-endpoint",
                ),
                fc(
                    accept_mark,
                    "--jump ACCEPT",
                    "Host endpoint policy accepted packet.",
                ),
            ],
        );
        fixed(
            "cali-wl-to-host",
            &[
                f("", "--jump cali-from-wl-dispatch"),
                fc(
                    "",
                    "--jump ACCEPT",
                    "Configured DefaultEndpointToHostAction",
                ),
            ],
        );
        for empty in [
            "cali-cidr-block",
            "cali-from-hep-forward",
            "cali-from-host-endpoint",
            "cali-to-hep-forward",
            "cali-to-host-endpoint",
        ] {
            chains.insert(empty.to_string(), Vec::new());
        }

        let ifaces: Vec<String> = plan
            .pods
            .iter()
            .map(|&p| self.pods[p].iface.clone())
            .collect();
        for d in workload_dispatch_chains(&ifaces, &DispatchConfig::new(VERSION)) {
            let felix: Vec<FelixRule> = d.rules.iter().map(|r| r.to_felix()).collect();
            chains.insert(d.name.clone(), save_lines(&d.name, &felix));
        }

        let mut profiles: BTreeSet<String> = BTreeSet::new();
        let mut policy_chains: BTreeSet<(usize, usize)> = BTreeSet::new();
        for (k, &p) in plan.pods.iter().enumerate() {
            let pod = &self.pods[p];
            let app = &self.apps[pod.app];
            let pids = pod_profile_ids(&self.namespaces[pod.ns].name, Some(&app.sa));
            profiles.extend(pids.iter().cloned());
            let sortables: Vec<SortablePolicy> = plan.pod_policies[k]
                .iter()
                .map(|&i| self.policies[i].sortable.clone())
                .collect();
            let tiers = order_policies(&self.tiers, &sortables, VERSION);
            for (di, dir) in Direction::BOTH.iter().enumerate() {
                let spec = EndpointChainSpec::workload(&pod.iface, *dir, &pids, VERSION, false);
                let layout = endpoint_chain_layout(&spec, &tiers, VERSION, &self.render, false);
                let felix: Vec<FelixRule> = layout.into_iter().map(|e| e.rule).collect();
                chains.insert(spec.chain.clone(), save_lines(&spec.chain, &felix));
                for (name, rules) in policy_group_chains(&tiers, *dir, VERSION, &self.render, false)
                {
                    chains
                        .entry(name.clone())
                        .or_insert_with(|| save_lines(&name, &rules));
                }
                for &i in &plan.pod_policies[k] {
                    if self.policies[i].types.governs(*dir) {
                        policy_chains.insert((i, di));
                    }
                }
            }
        }
        for (i, di) in policy_chains {
            if let Some((name, lines)) = &self.policy_lines[i][di] {
                chains.insert(name.clone(), lines.clone());
            }
        }
        let kns_allow = [ProtoRule {
            action: "allow".into(),
            ..Default::default()
        }];
        for prof in &profiles {
            let rules: &[ProtoRule] = if prof.starts_with("kns.") {
                &kns_allow
            } else {
                &[]
            };
            for dir in Direction::BOTH {
                let name = profile_chain_name(dir, prof, VERSION, false);
                let felix = profile_chain_rules(prof, dir, rules, 4, &self.render);
                chains.insert(name.clone(), save_lines(&name, &felix));
            }
        }
        if let Some((name, lines)) = &plan.orphan_chain {
            chains.insert(name.clone(), lines.clone());
        }
        let mut all = builtin;
        all.extend(chains);
        rules += write_table(
            w,
            &mut rng,
            &stamp,
            "filter",
            &[
                ("INPUT", "ACCEPT"),
                ("FORWARD", "ACCEPT"),
                ("OUTPUT", "ACCEPT"),
            ],
            all,
        )?;
        Ok(rules)
    }

    // -----------------------------------------------------------------------------------------
    // ipset save
    // -----------------------------------------------------------------------------------------

    fn write_ipsets(&self, n: usize, w: &mut dyn Write) -> io::Result<u64> {
        let plan = &self.plans[n];
        let mut rng = Rng::for_tag(self.seed, &format!("ipset/{}", self.nodes[n].name));
        let mut count = 0u64;
        let mut write_set = |w: &mut dyn Write, rng: &mut Rng, name: &str, members: &[String]| {
            let hashsize = (members.len().next_power_of_two() / 2).max(1024);
            writeln!(
                w,
                "create {name} hash:net family inet hashsize {hashsize} maxelem 1048576 bucketsize 12 initval 0x{}",
                rng.hex(8)
            )?;
            // The kernel lists members in hash order, not in the order they were added.
            let mut order: Vec<usize> = (0..members.len()).collect();
            rng.shuffle(&mut order);
            for i in order {
                writeln!(w, "add {name} {}", members[i])?;
            }
            count += members.len() as u64;
            io::Result::Ok(())
        };
        write_set(
            w,
            &mut rng,
            "cali40masq-ipam-pools",
            &[POOL_CIDR.to_string()],
        )?;
        write_set(
            w,
            &mut rng,
            "cali40all-ipam-pools",
            &[POOL_CIDR.to_string()],
        )?;
        let others: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != n)
            .map(|(_, o)| ip4(o.ip))
            .collect();
        write_set(w, &mut rng, "cali40all-vxlan-net", &others)?;
        let mut sets: Vec<usize> = plan.sets.iter().copied().collect();
        rng.shuffle(&mut sets);
        for s in sets {
            let set = &self.sets[s];
            let mut members: Vec<String> = set.members.clone();
            if let Some((fs, m)) = &plan.missing_member
                && *fs == s
            {
                members.retain(|x| x != m);
            }
            if let Some((fs, m)) = &plan.stale_member
                && *fs == s
            {
                members.push(m.clone());
            }
            write_set(w, &mut rng, &set.name, &members)?;
        }
        Ok(count)
    }

    // -----------------------------------------------------------------------------------------
    // conntrack -L, conntrack -S, sysctl
    // -----------------------------------------------------------------------------------------

    fn write_conntrack(&self, n: usize, w: &mut dyn Write) -> io::Result<u64> {
        let plan = &self.plans[n];
        let node = &self.nodes[n];
        let mut rng = Rng::for_tag(self.seed, &format!("conntrack/{}", node.name));
        let local: Vec<usize> = plan.pods.clone();
        let total = self.conntrack[n];
        if local.is_empty() {
            return Ok(0);
        }
        let dns: Vec<u32> = self
            .pods
            .iter()
            .filter(|p| p.ns == 0 && p.app == 0)
            .map(|p| p.ip)
            .collect();
        for _ in 0..total {
            let src = &self.pods[*rng.pick(&local)];
            let sport = rng.range(32768, 60999);
            let roll = rng.below(1000);
            if roll < 600 {
                // Pod to pod, TCP.
                let dst = &self.pods[rng.idx(self.pods.len())];
                let dport = self.apps[dst.app].port;
                let (state, timeout, flags) = tcp_state(&mut rng);
                let (s, d) = (ip4(src.ip), ip4(dst.ip));
                if state == "SYN_SENT" {
                    writeln!(
                        w,
                        "tcp      6 {timeout} SYN_SENT src={s} dst={d} sport={sport} dport={dport} [UNREPLIED] src={d} dst={s} sport={dport} dport={sport} mark=0 use=1"
                    )?;
                } else {
                    writeln!(
                        w,
                        "tcp      6 {timeout} {state} src={s} dst={d} sport={sport} dport={dport} src={d} dst={s} sport={dport} dport={sport} {flags}mark=0 use=1"
                    )?;
                }
            } else if roll < 750 {
                // DNS through the kube-dns service.
                let s = ip4(src.ip);
                let backend = ip4(*rng.pick(&dns));
                let t = rng.range(1, 30);
                if rng.chance(0.03) {
                    writeln!(
                        w,
                        "udp      17 {t} src={s} dst=10.96.0.10 sport={sport} dport=53 [UNREPLIED] src={backend} dst={s} sport=53 dport={sport} mark=0 use=1"
                    )?;
                } else {
                    writeln!(
                        w,
                        "udp      17 {t} src={s} dst=10.96.0.10 sport={sport} dport=53 src={backend} dst={s} sport=53 dport={sport} mark=0 use=1"
                    )?;
                }
            } else if roll < 850 {
                // A ClusterIP service, DNATed to a backend pod.
                let app = &self.apps[rng.idx(self.apps.len())];
                let backend = self
                    .pods
                    .iter()
                    .skip(rng.idx(self.pods.len()))
                    .find(|p| p.app == src.app)
                    .map(|p| p.ip)
                    .unwrap_or(src.ip);
                let (state, timeout, flags) = tcp_state(&mut rng);
                let (s, v, b) = (ip4(src.ip), ip4(app.service_ip), ip4(backend));
                let port = app.port;
                writeln!(
                    w,
                    "tcp      6 {timeout} {state} src={s} dst={v} sport={sport} dport={port} src={b} dst={s} sport={port} dport={sport} {flags}mark=0 use=1"
                )?;
            } else if roll < 930 {
                // Egress to the internet, SNATed to the node.
                let s = ip4(src.ip);
                let d = ip4(public_addr(&mut rng));
                let (state, timeout, flags) = tcp_state(&mut rng);
                let h = ip4(node.ip);
                writeln!(
                    w,
                    "tcp      6 {timeout} {state} src={s} dst={d} sport={sport} dport=443 src={d} dst={h} sport=443 dport={sport} {flags}mark=0 use=1"
                )?;
            } else if roll < 980 {
                // Kubelet probes from the node.
                let s = ip4(node.ip);
                let d = ip4(src.ip);
                let port = self.apps[src.app].port;
                writeln!(
                    w,
                    "tcp      6 {} TIME_WAIT src={s} dst={d} sport={sport} dport={port} src={d} dst={s} sport={port} dport={sport} [ASSURED] mark=0 use=1",
                    rng.range(1, 120)
                )?;
            } else {
                let s = ip4(src.ip);
                let d = ip4(self.pods[rng.idx(self.pods.len())].ip);
                let id = rng.range(1, 65535);
                writeln!(
                    w,
                    "icmp     1 {} src={s} dst={d} type=8 code=0 id={id} src={d} dst={s} type=0 code=0 id={id} mark=0 use=1",
                    rng.range(1, 30)
                )?;
            }
        }
        Ok(total)
    }

    fn write_conntrack_stats(&self, n: usize, w: &mut dyn Write) -> io::Result<()> {
        let node = &self.nodes[n];
        let mut rng = Rng::for_tag(self.seed, &format!("ctstats/{}", node.name));
        for cpu in 0..node.cpus {
            writeln!(
                w,
                "cpu={cpu:<4}\tfound={} invalid={} insert=0 insert_failed={} drop={} early_drop=0 error=0 search_restart={} clash_resolve={} chaintoolong=0",
                rng.below(40),
                rng.below(900),
                rng.below(3),
                rng.below(3),
                rng.below(5000),
                rng.below(20)
            )?;
        }
        Ok(())
    }

    fn write_sysctl(&self, n: usize, w: &mut dyn Write) -> io::Result<()> {
        writeln!(w, "net.ipv4.ip_forward = 1")?;
        writeln!(w, "net.ipv4.conf.all.rp_filter = 1")?;
        writeln!(
            w,
            "net.netfilter.nf_conntrack_count = {}",
            self.conntrack[n]
        )?;
        writeln!(
            w,
            "net.netfilter.nf_conntrack_max = {}",
            (self.conntrack[n] * 4).next_power_of_two().max(262_144)
        )
    }
}

/// A TCP state with a timeout in its range and the `[ASSURED]` flag where it belongs.
fn tcp_state(rng: &mut Rng) -> (&'static str, u64, &'static str) {
    match rng.below(100) {
        0..=74 => ("ESTABLISHED", rng.range(400_000, 431_999), "[ASSURED] "),
        75..=89 => ("TIME_WAIT", rng.range(1, 120), "[ASSURED] "),
        90..=93 => ("SYN_SENT", rng.range(1, 120), ""),
        94..=95 => ("CLOSE_WAIT", rng.range(1, 60), "[ASSURED] "),
        96 => ("FIN_WAIT", rng.range(1, 120), "[ASSURED] "),
        97 => ("SYN_RECV", rng.range(1, 60), ""),
        98 => ("LAST_ACK", rng.range(1, 30), "[ASSURED] "),
        _ => ("CLOSE", rng.range(1, 10), ""),
    }
}

/// One table of `iptables-save -c`: header, chain declarations, rules with counters.
fn write_table(
    w: &mut dyn Write,
    rng: &mut Rng,
    stamp: &str,
    table: &str,
    builtins: &[(&str, &str)],
    chains: Vec<(String, Vec<String>)>,
) -> io::Result<u64> {
    writeln!(
        w,
        "# Generated by iptables-save v1.8.9 (nf_tables) on {stamp}"
    )?;
    writeln!(w, "*{table}")?;
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut builtin_rules: Vec<(String, Vec<String>)> = Vec::new();
    for (name, lines) in chains {
        if builtins.iter().any(|(b, _)| *b == name) {
            builtin_rules.push((name, lines));
        } else {
            by_name.insert(name, lines);
        }
    }
    for (b, policy) in builtins {
        let pk = rng.range(1000, 5_000_000);
        writeln!(w, ":{b} {policy} [{pk}:{}]", pk * rng.range(60, 900))?;
    }
    for name in by_name.keys() {
        writeln!(w, ":{name} - [0:0]")?;
    }
    let mut count = 0u64;
    for (b, _) in builtins {
        if let Some((_, lines)) = builtin_rules.iter().find(|(n, _)| n == b) {
            count += write_rules(w, rng, lines)?;
        }
    }
    for lines in by_name.values() {
        count += write_rules(w, rng, lines)?;
    }
    writeln!(w, "COMMIT")?;
    writeln!(w, "# Completed on {stamp}")?;
    Ok(count)
}

/// Rules with `[packets:bytes]`: busy for the conntrack shortcut, mostly idle elsewhere.
fn write_rules(w: &mut dyn Write, rng: &mut Rng, lines: &[String]) -> io::Result<u64> {
    for (i, l) in lines.iter().enumerate() {
        let pk = if i == 0 && l.contains("RELATED,ESTABLISHED") {
            rng.range(10_000, 90_000_000)
        } else if rng.chance(0.6) {
            0
        } else {
            let bits = rng.range(1, 20);
            rng.below(1 << bits)
        };
        let by = if pk == 0 { 0 } else { pk * rng.range(52, 1400) };
        writeln!(w, "[{pk}:{by}] {l}")?;
    }
    Ok(lines.len() as u64)
}

// ---------------------------------------------------------------------------------------------
// Cluster resources (kubectl / calicoctl `-o yaml` lists)
// ---------------------------------------------------------------------------------------------

/// A YAML scalar: plain when that reads back as the same string, else double-quoted.
fn yq(s: &str) -> String {
    let special_start = s
        .chars()
        .next()
        .is_none_or(|c| "-?:,[]{}#&*!|>'\"%@` ".contains(c));
    let reserved = matches!(
        s.to_ascii_lowercase().as_str(),
        "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~"
    ) || s.parse::<f64>().is_ok();
    if special_start
        || reserved
        || s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
        || s.ends_with(' ')
        || s.contains('\n')
    {
        serde_json::to_string(s).unwrap_or_default()
    } else {
        s.to_string()
    }
}

fn write_labels(w: &mut dyn Write, indent: &str, l: &Labels) -> io::Result<()> {
    if l.is_empty() {
        return Ok(());
    }
    writeln!(w, "{indent}labels:")?;
    for (k, v) in l {
        writeln!(w, "{indent}  {}: {}", yq(k), yq(v))?;
    }
    Ok(())
}

/// A v3 rule as `calicoctl get -o yaml` prints it (keys sorted, as calicoctl's YAML is).
fn write_calico_rule(w: &mut dyn Write, r: &RuleSpec, ingress: bool) -> io::Result<()> {
    writeln!(w, "    - action: {}", r.action)?;
    let mut peer: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    match &r.peer {
        Peer::Any | Peer::K8sPod(_) | Peer::K8sNs(_) => {}
        Peer::Sel { sel, ns_sel } => {
            if !ns_sel.is_empty() {
                peer.insert("namespaceSelector", vec![format!(" {}", yq(ns_sel))]);
            }
            if !sel.is_empty() {
                peer.insert("selector", vec![format!(" {}", yq(sel))]);
            }
        }
        Peer::Nets { nets, not_nets } => {
            peer.insert("nets", nets.iter().map(|n| format!("- {n}")).collect());
            if !not_nets.is_empty() {
                peer.insert(
                    "notNets",
                    not_nets.iter().map(|n| format!("- {n}")).collect(),
                );
            }
        }
    }
    let mut dst: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    if !r.ports.is_empty() {
        dst.insert("ports", r.ports.iter().map(|p| format!("- {p}")).collect());
    }
    let src = if ingress {
        peer
    } else {
        dst.extend(peer);
        BTreeMap::new()
    };
    let side = |w: &mut dyn Write, name: &str, m: &BTreeMap<&str, Vec<String>>| {
        if m.is_empty() {
            return writeln!(w, "      {name}: {{}}");
        }
        writeln!(w, "      {name}:")?;
        for (k, lines) in m {
            match lines.as_slice() {
                [one] if one.starts_with(' ') => writeln!(w, "        {k}:{one}")?,
                _ => {
                    writeln!(w, "        {k}:")?;
                    for l in lines {
                        writeln!(w, "        {l}")?;
                    }
                }
            }
        }
        Ok(())
    };
    side(w, "destination", &dst)?;
    if let Some(p) = r.protocol {
        writeln!(w, "      protocol: {p}")?;
    }
    side(w, "source", &src)
}

fn write_k8s_peer_rule(w: &mut dyn Write, r: &RuleSpec, ingress: bool) -> io::Result<()> {
    let (key, first) = if ingress {
        ("from", "    - ")
    } else {
        ("to", "    - ")
    };
    let mut lines = Vec::new();
    match &r.peer {
        Peer::K8sPod(m) => {
            lines.push(format!("{key}:"));
            lines.push("- podSelector:".into());
            lines.push("    matchLabels:".into());
            for (k, v) in m {
                lines.push(format!("      {}: {}", yq(k), yq(v)));
            }
        }
        Peer::K8sNs(m) => {
            lines.push(format!("{key}:"));
            lines.push("- namespaceSelector:".into());
            lines.push("    matchLabels:".into());
            for (k, v) in m {
                lines.push(format!("      {}: {}", yq(k), yq(v)));
            }
        }
        _ => {}
    }
    if !r.ports.is_empty() {
        lines.push("ports:".into());
        for p in &r.ports {
            lines.push(format!("- port: {p}"));
            lines.push(format!("  protocol: {}", r.protocol.unwrap_or("TCP")));
        }
    }
    for (i, l) in lines.iter().enumerate() {
        if i == 0 {
            writeln!(w, "{first}{l}")?;
        } else {
            writeln!(w, "      {l}")?;
        }
    }
    Ok(())
}

impl World {
    fn write_cluster(&self, c: Cluster, w: &mut dyn Write) -> io::Result<()> {
        let (calico, _) = c.plural();
        if calico {
            writeln!(w, "apiVersion: projectcalico.org/v3")?;
        } else {
            writeln!(w, "apiVersion: v1")?;
        }
        let mut rng = Rng::for_tag(self.seed, &format!("cluster/{c:?}"));
        let rv = |rng: &mut Rng| rng.range(1000, 9_000_000);
        let list_kind = match c {
            Cluster::CalicoNetworkPolicies => {
                let items: Vec<&Policy> = self
                    .policies
                    .iter()
                    .filter(|p| p.kind == PolicyKind::NetworkPolicy)
                    .collect();
                self.write_policies(w, &items, &mut rng, "NetworkPolicy")?;
                "NetworkPolicyList"
            }
            Cluster::CalicoGlobalNetworkPolicies => {
                let items: Vec<&Policy> = self
                    .policies
                    .iter()
                    .filter(|p| p.kind == PolicyKind::GlobalNetworkPolicy)
                    .collect();
                self.write_policies(w, &items, &mut rng, "GlobalNetworkPolicy")?;
                "GlobalNetworkPolicyList"
            }
            Cluster::CalicoTiers => {
                writeln!(w, "items:")?;
                for t in &self.tiers {
                    writeln!(w, "- apiVersion: projectcalico.org/v3")?;
                    writeln!(w, "  kind: Tier")?;
                    writeln!(w, "  metadata:")?;
                    writeln!(
                        w,
                        "    creationTimestamp: \"{}\"",
                        rfc3339(collected_ms() - 300 * 86_400_000)
                    )?;
                    writeln!(w, "    name: {}", t.name)?;
                    writeln!(w, "    resourceVersion: \"{}\"", rv(&mut rng))?;
                    writeln!(w, "    uid: {}", rng.uuid())?;
                    writeln!(w, "  spec:")?;
                    let action = match t.default_action {
                        TierDefaultAction::Deny => "Deny",
                        TierDefaultAction::Pass => "Pass",
                    };
                    writeln!(w, "    defaultAction: {action}")?;
                    writeln!(w, "    order: {}", t.order.unwrap_or(0.0))?;
                }
                "TierList"
            }
            Cluster::CalicoWorkloadEndpoints => {
                writeln!(w, "items:")?;
                for p in &self.pods {
                    let ns = &self.namespaces[p.ns];
                    let app = &self.apps[p.app];
                    let node = &self.nodes[p.node].name;
                    let mut l = p.labels.clone();
                    l.insert("projectcalico.org/namespace".into(), ns.name.clone());
                    l.insert("projectcalico.org/orchestrator".into(), "k8s".into());
                    l.insert("projectcalico.org/serviceaccount".into(), app.sa.clone());
                    writeln!(w, "- apiVersion: projectcalico.org/v3")?;
                    writeln!(w, "  kind: WorkloadEndpoint")?;
                    writeln!(w, "  metadata:")?;
                    writeln!(w, "    creationTimestamp: \"{}\"", rfc3339(p.created_ms))?;
                    write_labels(w, "    ", &l)?;
                    writeln!(
                        w,
                        "    name: {}-k8s-{}-eth0",
                        node.replace('-', "--"),
                        p.name.replace('-', "--")
                    )?;
                    writeln!(w, "    namespace: {}", ns.name)?;
                    writeln!(w, "    resourceVersion: \"{}\"", rv(&mut rng))?;
                    writeln!(w, "    uid: {}", p.uid)?;
                    writeln!(w, "  spec:")?;
                    writeln!(w, "    containerID: {}", p.container_id)?;
                    writeln!(w, "    endpoint: eth0")?;
                    writeln!(w, "    interfaceName: {}", p.iface)?;
                    writeln!(w, "    ipNetworks:")?;
                    writeln!(w, "    - {}/32", ip4(p.ip))?;
                    writeln!(w, "    node: {node}")?;
                    writeln!(w, "    orchestrator: k8s")?;
                    writeln!(w, "    pod: {}", p.name)?;
                    writeln!(w, "    ports:")?;
                    writeln!(
                        w,
                        "    - name: {}",
                        if app.port == 53 { "dns" } else { "http" }
                    )?;
                    writeln!(w, "      port: {}", app.port)?;
                    writeln!(
                        w,
                        "      protocol: {}",
                        if app.port == 53 { "UDP" } else { "TCP" }
                    )?;
                    writeln!(w, "    profiles:")?;
                    for prof in pod_profile_ids(&ns.name, Some(&app.sa)) {
                        writeln!(w, "    - {prof}")?;
                    }
                    writeln!(w, "    serviceAccountName: {}", app.sa)?;
                }
                "WorkloadEndpointList"
            }
            Cluster::CalicoHostEndpoints => {
                writeln!(w, "items: []")?;
                "HostEndpointList"
            }
            Cluster::CalicoProfiles => {
                writeln!(w, "items:")?;
                for ns in &self.namespaces {
                    writeln!(w, "- apiVersion: projectcalico.org/v3")?;
                    writeln!(w, "  kind: Profile")?;
                    writeln!(w, "  metadata:")?;
                    writeln!(w, "    creationTimestamp: \"{}\"", rfc3339(ns.created_ms))?;
                    writeln!(w, "    name: kns.{}", ns.name)?;
                    writeln!(w, "    resourceVersion: \"{}\"", rv(&mut rng))?;
                    writeln!(w, "    uid: {}", rng.uuid())?;
                    writeln!(w, "  spec:")?;
                    writeln!(w, "    egress:")?;
                    writeln!(w, "    - action: Allow")?;
                    writeln!(w, "      destination: {{}}")?;
                    writeln!(w, "      source: {{}}")?;
                    writeln!(w, "    ingress:")?;
                    writeln!(w, "    - action: Allow")?;
                    writeln!(w, "      destination: {{}}")?;
                    writeln!(w, "      source: {{}}")?;
                    writeln!(w, "    labelsToApply:")?;
                    for (k, v) in &ns.labels {
                        writeln!(w, "      pcns.{k}: {}", yq(v))?;
                    }
                    writeln!(w, "      pcns.projectcalico.org/name: {}", ns.name)?;
                }
                let sas: BTreeSet<(usize, &str)> =
                    self.apps.iter().map(|a| (a.ns, a.sa.as_str())).collect();
                for (ns, sa) in sas {
                    writeln!(w, "- apiVersion: projectcalico.org/v3")?;
                    writeln!(w, "  kind: Profile")?;
                    writeln!(w, "  metadata:")?;
                    writeln!(
                        w,
                        "    creationTimestamp: \"{}\"",
                        rfc3339(self.namespaces[ns].created_ms)
                    )?;
                    writeln!(w, "    name: ksa.{}.{sa}", self.namespaces[ns].name)?;
                    writeln!(w, "    resourceVersion: \"{}\"", rv(&mut rng))?;
                    writeln!(w, "    uid: {}", rng.uuid())?;
                    writeln!(w, "  spec:")?;
                    writeln!(w, "    labelsToApply:")?;
                    writeln!(w, "      pcsa.projectcalico.org/name: {sa}")?;
                }
                "ProfileList"
            }
            Cluster::CalicoNetworkSets | Cluster::CalicoGlobalNetworkSets => {
                let global = c == Cluster::CalicoGlobalNetworkSets;
                let items: Vec<&NetSet> = self
                    .netsets
                    .iter()
                    .filter(|s| s.ns.is_none() == global)
                    .collect();
                if items.is_empty() {
                    writeln!(w, "items: []")?;
                } else {
                    writeln!(w, "items:")?;
                }
                for s in items {
                    writeln!(w, "- apiVersion: projectcalico.org/v3")?;
                    writeln!(
                        w,
                        "  kind: {}",
                        if global {
                            "GlobalNetworkSet"
                        } else {
                            "NetworkSet"
                        }
                    )?;
                    writeln!(w, "  metadata:")?;
                    writeln!(
                        w,
                        "    creationTimestamp: \"{}\"",
                        rfc3339(collected_ms() - rng.range(1, 200) as i64 * 86_400_000)
                    )?;
                    write_labels(w, "    ", &s.labels)?;
                    writeln!(w, "    name: {}", s.name)?;
                    if let Some(ns) = s.ns {
                        writeln!(w, "    namespace: {}", self.namespaces[ns].name)?;
                    }
                    writeln!(w, "    resourceVersion: \"{}\"", rv(&mut rng))?;
                    writeln!(w, "    uid: {}", rng.uuid())?;
                    writeln!(w, "  spec:")?;
                    writeln!(w, "    nets:")?;
                    for n in &s.nets {
                        writeln!(w, "    - {n}")?;
                    }
                }
                if global {
                    "GlobalNetworkSetList"
                } else {
                    "NetworkSetList"
                }
            }
            Cluster::CalicoFelixConfigurations => {
                writeln!(w, "items:")?;
                writeln!(w, "- apiVersion: projectcalico.org/v3")?;
                writeln!(w, "  kind: FelixConfiguration")?;
                writeln!(w, "  metadata:")?;
                writeln!(w, "    name: default")?;
                writeln!(w, "  spec:")?;
                writeln!(w, "    bpfEnabled: false")?;
                writeln!(w, "    floatingIPs: Disabled")?;
                writeln!(w, "    logSeverityScreen: Debug")?;
                writeln!(w, "    reportingInterval: 0s")?;
                writeln!(w, "    vxlanVNI: 4096")?;
                "FelixConfigurationList"
            }
            Cluster::CalicoIpPools => {
                writeln!(w, "items:")?;
                writeln!(w, "- apiVersion: projectcalico.org/v3")?;
                writeln!(w, "  kind: IPPool")?;
                writeln!(w, "  metadata:")?;
                writeln!(w, "    name: default-ipv4-ippool")?;
                writeln!(w, "  spec:")?;
                writeln!(w, "    allowedUses:")?;
                writeln!(w, "    - Workload")?;
                writeln!(w, "    - Tunnel")?;
                writeln!(w, "    blockSize: 26")?;
                writeln!(w, "    cidr: {POOL_CIDR}")?;
                writeln!(w, "    ipipMode: Never")?;
                writeln!(w, "    natOutgoing: true")?;
                writeln!(w, "    nodeSelector: all()")?;
                writeln!(w, "    vxlanMode: CrossSubnet")?;
                "IPPoolList"
            }
            Cluster::CalicoNodes => {
                writeln!(w, "items:")?;
                for n in &self.nodes {
                    writeln!(w, "- apiVersion: projectcalico.org/v3")?;
                    writeln!(w, "  kind: Node")?;
                    writeln!(w, "  metadata:")?;
                    writeln!(w, "    name: {}", n.name)?;
                    writeln!(w, "  spec:")?;
                    writeln!(w, "    addresses:")?;
                    writeln!(w, "    - address: {}/16", ip4(n.ip))?;
                    writeln!(w, "      type: CalicoNodeIP")?;
                    writeln!(w, "    bgp:")?;
                    writeln!(w, "      ipv4Address: {}/16", ip4(n.ip))?;
                    writeln!(
                        w,
                        "    ipv4VXLANTunnelAddr: {}",
                        ip4(n.blocks.first().copied().unwrap_or(POOL))
                    )?;
                    writeln!(w, "    orchRefs:")?;
                    writeln!(w, "    - nodeName: {}", n.name)?;
                    writeln!(w, "      orchestrator: k8s")?;
                }
                "NodeList"
            }
            Cluster::CalicoClusterInformations => {
                writeln!(w, "items:")?;
                writeln!(w, "- apiVersion: projectcalico.org/v3")?;
                writeln!(w, "  kind: ClusterInformation")?;
                writeln!(w, "  metadata:")?;
                writeln!(w, "    name: default")?;
                writeln!(w, "  spec:")?;
                writeln!(w, "    calicoVersion: {VERSION_TEXT}")?;
                writeln!(w, "    clusterGUID: {}", rng.hex(32))?;
                writeln!(w, "    clusterType: typha,kdd,k8s,operator,bgp,kubeadm")?;
                writeln!(w, "    datastoreReady: true")?;
                "ClusterInformationList"
            }
            Cluster::K8sPods => {
                writeln!(w, "items:")?;
                for p in &self.pods {
                    self.write_pod(w, p, &mut rng)?;
                }
                "List"
            }
            Cluster::K8sNamespaces => {
                writeln!(w, "items:")?;
                for ns in &self.namespaces {
                    writeln!(w, "- apiVersion: v1")?;
                    writeln!(w, "  kind: Namespace")?;
                    writeln!(w, "  metadata:")?;
                    writeln!(w, "    creationTimestamp: \"{}\"", rfc3339(ns.created_ms))?;
                    write_labels(w, "    ", &ns.labels)?;
                    writeln!(w, "    name: {}", ns.name)?;
                    writeln!(w, "    resourceVersion: \"{}\"", rv(&mut rng))?;
                    writeln!(w, "    uid: {}", ns.uid)?;
                    writeln!(w, "  spec:")?;
                    writeln!(w, "    finalizers:")?;
                    writeln!(w, "    - kubernetes")?;
                    writeln!(w, "  status:")?;
                    writeln!(w, "    phase: Active")?;
                }
                "List"
            }
            Cluster::K8sNetworkPolicies => {
                writeln!(w, "items:")?;
                for p in self
                    .policies
                    .iter()
                    .filter(|p| p.kind == PolicyKind::KubernetesNetworkPolicy)
                {
                    writeln!(w, "- apiVersion: networking.k8s.io/v1")?;
                    writeln!(w, "  kind: NetworkPolicy")?;
                    writeln!(w, "  metadata:")?;
                    writeln!(w, "    creationTimestamp: \"{}\"", rfc3339(p.created_ms))?;
                    writeln!(w, "    generation: 1")?;
                    writeln!(w, "    name: {}", p.name)?;
                    writeln!(w, "    namespace: {}", self.ns_name(p.ns))?;
                    writeln!(w, "    resourceVersion: \"{}\"", rv(&mut rng))?;
                    writeln!(w, "    uid: {}", p.uid)?;
                    writeln!(w, "  spec:")?;
                    if p.types.egress {
                        writeln!(w, "    egress:")?;
                        for r in &p.egress {
                            write_k8s_peer_rule(w, r, false)?;
                        }
                    }
                    if p.types.ingress {
                        writeln!(w, "    ingress:")?;
                        for r in &p.ingress {
                            write_k8s_peer_rule(w, r, true)?;
                        }
                    }
                    writeln!(w, "    podSelector:")?;
                    writeln!(w, "      matchLabels:")?;
                    for (k, v) in &p.k8s_pod_selector {
                        writeln!(w, "        {}: {}", yq(k), yq(v))?;
                    }
                    writeln!(w, "    policyTypes:")?;
                    if p.types.ingress {
                        writeln!(w, "    - Ingress")?;
                    }
                    if p.types.egress {
                        writeln!(w, "    - Egress")?;
                    }
                }
                "List"
            }
            Cluster::K8sNodes => {
                writeln!(w, "items:")?;
                for n in &self.nodes {
                    writeln!(w, "- apiVersion: v1")?;
                    writeln!(w, "  kind: Node")?;
                    writeln!(w, "  metadata:")?;
                    writeln!(w, "    annotations:")?;
                    writeln!(w, "      projectcalico.org/IPv4Address: {}/16", ip4(n.ip))?;
                    writeln!(
                        w,
                        "      projectcalico.org/IPv4VXLANTunnelAddr: {}",
                        ip4(n.blocks.first().copied().unwrap_or(POOL))
                    )?;
                    writeln!(
                        w,
                        "    creationTimestamp: \"{}\"",
                        rfc3339(collected_ms() - 200 * 86_400_000)
                    )?;
                    writeln!(w, "    labels:")?;
                    writeln!(w, "      kubernetes.io/arch: amd64")?;
                    writeln!(w, "      kubernetes.io/hostname: {}", n.name)?;
                    writeln!(w, "      kubernetes.io/os: linux")?;
                    writeln!(w, "      node-role.kubernetes.io/worker: \"\"")?;
                    writeln!(w, "    name: {}", n.name)?;
                    writeln!(w, "    resourceVersion: \"{}\"", rv(&mut rng))?;
                    writeln!(w, "    uid: {}", rng.uuid())?;
                    writeln!(w, "  spec:")?;
                    writeln!(
                        w,
                        "    podCIDR: 10.244.{}.0/24",
                        self.nodes
                            .iter()
                            .position(|x| x.name == n.name)
                            .unwrap_or(0)
                            % 256
                    )?;
                    writeln!(w, "  status:")?;
                    writeln!(w, "    addresses:")?;
                    writeln!(w, "    - address: {}", ip4(n.ip))?;
                    writeln!(w, "      type: InternalIP")?;
                    writeln!(w, "    - address: {}", n.name)?;
                    writeln!(w, "      type: Hostname")?;
                    writeln!(w, "    capacity:")?;
                    writeln!(w, "      cpu: \"{}\"", n.cpus)?;
                    writeln!(w, "      pods: \"110\"")?;
                    writeln!(w, "    nodeInfo:")?;
                    writeln!(w, "      containerRuntimeVersion: containerd://1.7.22")?;
                    writeln!(w, "      kernelVersion: 6.8.0-1017-aws")?;
                    writeln!(w, "      kubeletVersion: v1.33.4")?;
                    writeln!(w, "      osImage: Ubuntu 24.04.1 LTS")?;
                }
                "List"
            }
            Cluster::K8sServices => {
                writeln!(w, "items:")?;
                for a in &self.apps {
                    let ns = &self.namespaces[a.ns].name;
                    let name = if a.name == "coredns" {
                        "kube-dns"
                    } else {
                        a.name.as_str()
                    };
                    writeln!(w, "- apiVersion: v1")?;
                    writeln!(w, "  kind: Service")?;
                    writeln!(w, "  metadata:")?;
                    writeln!(
                        w,
                        "    creationTimestamp: \"{}\"",
                        rfc3339(collected_ms() - rng.range(1, 100) as i64 * 86_400_000)
                    )?;
                    writeln!(w, "    name: {name}")?;
                    writeln!(w, "    namespace: {ns}")?;
                    writeln!(w, "    resourceVersion: \"{}\"", rv(&mut rng))?;
                    writeln!(w, "    uid: {}", rng.uuid())?;
                    writeln!(w, "  spec:")?;
                    writeln!(w, "    clusterIP: {}", ip4(a.service_ip))?;
                    writeln!(w, "    clusterIPs:")?;
                    writeln!(w, "    - {}", ip4(a.service_ip))?;
                    writeln!(w, "    ports:")?;
                    writeln!(
                        w,
                        "    - name: {}",
                        if a.port == 53 { "dns" } else { "http" }
                    )?;
                    writeln!(w, "      port: {}", a.port)?;
                    writeln!(
                        w,
                        "      protocol: {}",
                        if a.port == 53 { "UDP" } else { "TCP" }
                    )?;
                    writeln!(w, "      targetPort: {}", a.port)?;
                    writeln!(w, "    selector:")?;
                    if a.name == "coredns" {
                        writeln!(w, "      k8s-app: kube-dns")?;
                    } else {
                        writeln!(w, "      app: {}", a.name)?;
                    }
                    writeln!(w, "    type: ClusterIP")?;
                }
                "List"
            }
        };
        writeln!(w, "kind: {list_kind}")?;
        writeln!(w, "metadata:")?;
        if calico {
            writeln!(w, "  resourceVersion: \"{}\"", rv(&mut rng))?;
        } else {
            writeln!(w, "  resourceVersion: \"\"")?;
        }
        Ok(())
    }

    fn write_policies(
        &self,
        w: &mut dyn Write,
        items: &[&Policy],
        rng: &mut Rng,
        kind: &str,
    ) -> io::Result<()> {
        if items.is_empty() {
            writeln!(w, "items: []")?;
            return Ok(());
        }
        writeln!(w, "items:")?;
        for p in items {
            writeln!(w, "- apiVersion: projectcalico.org/v3")?;
            writeln!(w, "  kind: {kind}")?;
            writeln!(w, "  metadata:")?;
            writeln!(w, "    creationTimestamp: \"{}\"", rfc3339(p.created_ms))?;
            writeln!(w, "    name: {}", p.name)?;
            if p.ns.is_some() {
                writeln!(w, "    namespace: {}", self.ns_name(p.ns))?;
            }
            writeln!(w, "    resourceVersion: \"{}\"", rng.range(1000, 9_000_000))?;
            writeln!(w, "    uid: {}", p.uid)?;
            writeln!(w, "  spec:")?;
            if p.types.egress && !p.egress.is_empty() {
                writeln!(w, "    egress:")?;
                for r in &p.egress {
                    write_calico_rule(w, r, false)?;
                }
            }
            if p.types.ingress && !p.ingress.is_empty() {
                writeln!(w, "    ingress:")?;
                for r in &p.ingress {
                    write_calico_rule(w, r, true)?;
                }
            }
            if !p.ns_selector.is_empty() {
                writeln!(w, "    namespaceSelector: {}", yq(&p.ns_selector))?;
            }
            if let Some(o) = p.order {
                writeln!(w, "    order: {o}")?;
            }
            writeln!(w, "    selector: {}", yq(&p.selector))?;
            writeln!(w, "    tier: {}", p.tier)?;
            writeln!(w, "    types:")?;
            if p.types.ingress {
                writeln!(w, "    - Ingress")?;
            }
            if p.types.egress {
                writeln!(w, "    - Egress")?;
            }
        }
        Ok(())
    }

    fn write_pod(&self, w: &mut dyn Write, p: &Pod, rng: &mut Rng) -> io::Result<()> {
        let ns = &self.namespaces[p.ns];
        let app = &self.apps[p.app];
        let node = &self.nodes[p.node];
        let ip = ip4(p.ip);
        writeln!(w, "- apiVersion: v1")?;
        writeln!(w, "  kind: Pod")?;
        writeln!(w, "  metadata:")?;
        writeln!(w, "    annotations:")?;
        writeln!(
            w,
            "      cni.projectcalico.org/containerID: {}",
            p.container_id
        )?;
        writeln!(w, "      cni.projectcalico.org/podIP: {ip}/32")?;
        writeln!(w, "      cni.projectcalico.org/podIPs: {ip}/32")?;
        writeln!(w, "    creationTimestamp: \"{}\"", rfc3339(p.created_ms))?;
        writeln!(w, "    generateName: {}-{}-", app.name, app.hash)?;
        write_labels(w, "    ", &p.labels)?;
        writeln!(w, "    name: {}", p.name)?;
        writeln!(w, "    namespace: {}", ns.name)?;
        writeln!(w, "    ownerReferences:")?;
        writeln!(w, "    - apiVersion: apps/v1")?;
        writeln!(w, "      blockOwnerDeletion: true")?;
        writeln!(w, "      controller: true")?;
        writeln!(w, "      kind: ReplicaSet")?;
        writeln!(w, "      name: {}-{}", app.name, app.hash)?;
        writeln!(w, "      uid: {}", rng.uuid())?;
        writeln!(w, "    resourceVersion: \"{}\"", rng.range(1000, 9_000_000))?;
        writeln!(w, "    uid: {}", p.uid)?;
        writeln!(w, "  spec:")?;
        writeln!(w, "    containers:")?;
        writeln!(w, "    - image: {}", app.image)?;
        writeln!(w, "      imagePullPolicy: IfNotPresent")?;
        writeln!(w, "      name: {}", app.name)?;
        writeln!(w, "      ports:")?;
        writeln!(w, "      - containerPort: {}", app.port)?;
        writeln!(
            w,
            "        name: {}",
            if app.port == 53 { "dns" } else { "http" }
        )?;
        writeln!(
            w,
            "        protocol: {}",
            if app.port == 53 { "UDP" } else { "TCP" }
        )?;
        writeln!(w, "      resources:")?;
        writeln!(w, "        requests:")?;
        writeln!(w, "          cpu: 100m")?;
        writeln!(w, "          memory: 256Mi")?;
        writeln!(w, "    dnsPolicy: ClusterFirst")?;
        writeln!(w, "    nodeName: {}", node.name)?;
        writeln!(w, "    restartPolicy: Always")?;
        writeln!(w, "    serviceAccountName: {}", app.sa)?;
        writeln!(w, "  status:")?;
        writeln!(w, "    hostIP: {}", ip4(node.ip))?;
        writeln!(w, "    phase: Running")?;
        writeln!(w, "    podIP: {ip}")?;
        writeln!(w, "    podIPs:")?;
        writeln!(w, "    - ip: {ip}")?;
        writeln!(w, "    startTime: \"{}\"", rfc3339(p.created_ms + 2000))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Felix log
// ---------------------------------------------------------------------------------------------

const TABLES: &[&str] = &["filter", "nat", "mangle", "raw"];
/// Share of log events that are a whole apply cycle (a burst of lines) rather than one line.
const BURST_SHARE: f64 = 0.06;

/// `2026-11-25 13:58:02.114 [INFO][61] felix/int_dataplane.go 1895: `
fn head(rec: &mut Vec<u8>, ms: i64, level: &str, pid: u32, file: &str, line: u32) {
    let _ = write!(
        rec,
        "{} [{level}][{pid}] felix/{file} {line}: ",
        felix_ts(ms)
    );
}

impl World {
    fn write_felix_log(&self, n: usize, w: &mut dyn Write) -> io::Result<u64> {
        let target = self.log_bytes[n];
        let node = &self.nodes[n];
        let mut rng = Rng::for_tag(self.seed, &format!("felix/{}", node.name));
        let end = collected_ms() - 1500;
        let start = end - LOG_SPAN_MS;
        let mut pid = node.pid;
        let restart_at = rng.chance(0.3).then(|| target / 100 * rng.range(40, 80));
        let mut restarted = false;
        let mut written = 0u64;
        let mut records = 0u64;
        let mut rec: Vec<u8> = Vec::with_capacity(16 << 10);
        let mut first = true;
        loop {
            let ms = start
                + (i128::from(written) * i128::from(LOG_SPAN_MS) / i128::from(target.max(1)))
                    as i64;
            rec.clear();
            let count = if first {
                first = false;
                self.log_startup(&mut rec, ms, pid, n, &mut rng)
            } else if restart_at.is_some_and(|r| !restarted && written >= r) {
                restarted = true;
                head(&mut rec, ms, "WARNING", pid, "daemon.go", 851);
                rec.extend_from_slice(b"Felix is shutting down reason=\"config changed\"\n");
                pid += rng.range(3, 40) as u32;
                1 + self.log_startup(&mut rec, ms + 2300, pid, n, &mut rng)
            } else {
                self.log_record(&mut rec, ms, pid, n, &mut rng)
            };
            if written + rec.len() as u64 + 1024 > target {
                break;
            }
            w.write_all(&rec)?;
            written += rec.len() as u64;
            records += count;
        }
        // Fill to the exact size with summary lines, so the size is known before writing.
        let mut remaining = target - written;
        while remaining > 0 {
            let len = if remaining <= 400 { remaining } else { 300 };
            rec.clear();
            head(&mut rec, end, "INFO", pid, "summary.go", 100);
            rec.extend_from_slice(b"Summarising dataplane reconciliation loops:");
            let mut i = 0;
            while rec.len() + 1 < len as usize {
                let _ = write!(rec, " {}", TABLES[i % TABLES.len()]);
                i += 1;
            }
            rec.truncate(len as usize - 1);
            rec.push(b'\n');
            w.write_all(&rec)?;
            remaining -= len;
            records += 1;
        }
        Ok(records)
    }

    fn log_startup(&self, rec: &mut Vec<u8>, ms: i64, pid: u32, n: usize, rng: &mut Rng) -> u64 {
        let cpus = self.nodes[n].cpus;
        let build = "builddate=\"2025-06-12T16:40:11+0000\" gitcommit=\"f9d5b8b3c\"";
        head(rec, ms, "INFO", pid, "daemon.go", 367);
        let _ = writeln!(
            rec,
            "Felix starting up GOMAXPROCS={cpus} {build} version=\"{VERSION_TEXT}\""
        );
        head(rec, ms + 3, "INFO", pid, "daemon.go", 389);
        rec.extend_from_slice(b"Loading configuration...\n");
        head(rec, ms + 9, "INFO", pid, "config_params.go", 713);
        rec.extend_from_slice(b"Merging in config from environment variable: map[defaultendpointtohostaction:ACCEPT healthenabled:true ipinipmtu:1440 ipv6support:false logseverityscreen:debug typhak8snamespace:calico-system typhak8sservicename:calico-typha vxlanmtu:1410]\n");
        head(rec, ms + 41, "INFO", pid, "daemon.go", 377);
        let _ = writeln!(
            rec,
            "Successfully loaded configuration. GOMAXPROCS={cpus} {build} config=&config.Config{{UseInternalDataplaneDriver:true, DataplaneDriver:\"calico-iptables-plugin\", DatastoreType:\"kubernetes\", FelixHostname:\"{}\", IptablesBackend:\"auto\", IptablesMarkMask:0xffff0000, LogSeverityScreen:\"DEBUG\", VXLANEnabled:true}} version=\"{VERSION_TEXT}\"",
            self.nodes[n].name
        );
        head(rec, ms + 1200, "INFO", pid, "int_dataplane.go", 2170);
        rec.extend_from_slice(b"Started internal iptables dataplane driver loop\n");
        head(rec, ms + 2100, "INFO", pid, "daemon.go", 1217);
        rec.extend_from_slice(b"Datastore now in sync.\n");
        head(rec, ms + 3220, "INFO", pid, "int_dataplane.go", 1895);
        let _ = writeln!(
            rec,
            "Completed first update to dataplane. secsSinceStart={}.{:02}",
            rng.range(2, 9),
            rng.below(100)
        );
        7
    }

    fn log_record(&self, rec: &mut Vec<u8>, ms: i64, pid: u32, n: usize, rng: &mut Rng) -> u64 {
        let plan = &self.plans[n];
        let node = &self.nodes[n];
        let pod = plan
            .pods
            .get(rng.idx(plan.pods.len().max(1)))
            .map(|&p| &self.pods[p]);
        let table = *rng.pick(TABLES);
        if rng.chance(BURST_SHARE) {
            return self.log_apply_cycle(rec, ms, pid, rng);
        }
        let roll = rng.below(1000);
        match (roll, pod) {
            (0..=169, _) => {
                head(rec, ms, "DEBUG", pid, "table.go", 1070);
                let _ = writeln!(
                    rec,
                    "Loading current iptables state and checking it is correct. ipVersion=0x4 table=\"{table}\""
                );
            }
            (170..=299, _) => {
                head(rec, ms, "DEBUG", pid, "table.go", 1304);
                let _ = writeln!(
                    rec,
                    "Update ended up being no-op, skipping call to ip(6)tables-restore. ipVersion=0x4 table=\"{table}\""
                );
            }
            (300..=399, _) => {
                head(rec, ms, "INFO", pid, "int_dataplane.go", 1977);
                rec.extend_from_slice(b"Applying dataplane updates\n");
            }
            (400..=489, _) => {
                head(rec, ms, "INFO", pid, "int_dataplane.go", 2004);
                let _ = writeln!(
                    rec,
                    "Finished applying updates to dataplane. msecToApply={}.{:03}",
                    rng.below(40),
                    rng.below(1000)
                );
            }
            (490..=559, _) => {
                head(rec, ms, "DEBUG", pid, "ipsets.go", 588);
                rec.extend_from_slice(
                    b"Asked to resync with the dataplane on next update. family=\"inet\"\n",
                );
            }
            (560..=579, Some(p)) => {
                let ns = &self.namespaces[p.ns].name;
                let sa = &self.apps[p.app].sa;
                head(rec, ms, "INFO", pid, "int_dataplane.go", 1936);
                let _ = write!(
                    rec,
                    "Received *proto.WorkloadEndpointUpdate update from calculation graph msg=id:<orchestrator_id:\"k8s\" workload_id:\"{ns}/{}\" endpoint_id:\"eth0\" > endpoint:<state:\"active\" name:\"{}\" profile_ids:\"kns.{ns}\" profile_ids:\"ksa.{ns}.{sa}\" ipv4_nets:\"{}/32\" ",
                    p.name,
                    p.iface,
                    ip4(p.ip)
                );
                if let Some(k) = plan
                    .pods
                    .iter()
                    .position(|&x| std::ptr::eq(&self.pods[x], p))
                {
                    let mut by_tier: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
                    for &i in &plan.pod_policies[k] {
                        let pol = &self.policies[i];
                        by_tier
                            .entry(pol.key.tier.as_str())
                            .or_default()
                            .push(pol.key.v1_name.as_str());
                    }
                    for (tier, names) in by_tier {
                        let _ = write!(rec, "tiers:<name:\"{tier}\" ");
                        for name in names {
                            let _ = write!(rec, "ingress_policies:\"{name}\" ");
                        }
                        rec.extend_from_slice(b"> ");
                    }
                }
                rec.extend_from_slice(b">\n");
            }
            (580..=609, Some(p)) => {
                head(rec, ms, "INFO", pid, "endpoint_mgr.go", 602);
                let _ = writeln!(
                    rec,
                    "Updating per-endpoint chains. id=proto.WorkloadEndpointID{{OrchestratorId:\"k8s\", WorkloadId:\"{}/{}\", EndpointId:\"eth0\"}}",
                    self.namespaces[p.ns].name, p.name
                );
            }
            (610..=629, Some(p)) => {
                head(rec, ms, "INFO", pid, "endpoint_mgr.go", 637);
                let _ = writeln!(
                    rec,
                    "Updating endpoint routes. id=proto.WorkloadEndpointID{{OrchestratorId:\"k8s\", WorkloadId:\"{}/{}\", EndpointId:\"eth0\"}}",
                    self.namespaces[p.ns].name, p.name
                );
            }
            (630..=644, _) if !plan.policies.is_empty() => {
                let i = *plan
                    .policies
                    .iter()
                    .nth(rng.idx(plan.policies.len()))
                    .unwrap_or(&0);
                head(rec, ms, "INFO", pid, "int_dataplane.go", 1936);
                rec.extend_from_slice(
                    b"Received *proto.ActivePolicyUpdate update from calculation graph msg=",
                );
                rec.extend_from_slice(self.policies[i].log_msg.as_bytes());
                rec.push(b'\n');
            }
            (645..=694, Some(p)) if !plan.sets.is_empty() => {
                let s = *plan.sets.iter().nth(rng.idx(plan.sets.len())).unwrap_or(&0);
                head(rec, ms, "INFO", pid, "int_dataplane.go", 1936);
                let _ = writeln!(
                    rec,
                    "Received *proto.IPSetDeltaUpdate update from calculation graph msg=id:\"{}\" added_members:\"{}/32\" ",
                    self.sets[s].id,
                    ip4(p.ip)
                );
            }
            (695..=724, _) => {
                head(rec, ms, "INFO", pid, "summary.go", 100);
                let loops = rng.range(5, 40);
                let _ = writeln!(
                    rec,
                    "Summarising {loops} dataplane reconciliation loops over 1m{}.{}s: avg={}ms longest={}ms (resync-filter-v4,resync-ipsets-v4,update-filter-v4,update-ipsets-4)",
                    rng.below(10),
                    rng.below(10),
                    rng.range(2, 30),
                    rng.range(30, 400)
                );
            }
            (725..=764, Some(p)) => {
                head(rec, ms, "DEBUG", pid, "route_table.go", 842);
                let _ = writeln!(
                    rec,
                    "Syncing routes: found unexpected route; ignoring due to grace period. dest={}/32 ifaceName=\"{}\" ifaceRegex=\"^cali.*\" ipVersion=0x4 tableIndex=254",
                    ip4(p.ip),
                    p.iface
                );
            }
            (765..=799, _) => {
                head(rec, ms, "INFO", pid, "ipsets.go", 306);
                let _ = writeln!(
                    rec,
                    "Finished IPSets resync family=\"inet\" numInconsistenciesFound=0 resyncDuration={}.{}ms",
                    rng.range(1, 90),
                    rng.below(10)
                );
            }
            (800..=824, Some(p)) => {
                head(rec, ms, "INFO", pid, "status_combiner.go", 81);
                let _ = writeln!(
                    rec,
                    "Endpoint up for at least one IP version id=WorkloadEndpoint(node={}, orchestrator=k8s, workload={}/{}, name=eth0) ipVersion=0x4 status=\"up\"",
                    node.name, self.namespaces[p.ns].name, p.name
                );
            }
            (825..=899, _) => {
                head(rec, ms, "DEBUG", pid, "ipsets.go", 1193);
                rec.extend_from_slice(b"Resyncing ipsets with dataplane. family=\"inet\"\n");
            }
            (930..=979, _) => {
                head(rec, ms, "INFO", pid, "table.go", 1262);
                let _ = writeln!(
                    rec,
                    "Invalidating dataplane cache ipVersion=0x4 reason=\"refresh timer\" table=\"{table}\""
                );
            }
            (980..=994, _) => return self.log_warning(rec, ms, pid, n, rng),
            (995..=999, _) => return self.log_error(rec, ms, pid, n, rng),
            _ => {
                head(rec, ms, "DEBUG", pid, "int_dataplane.go", 1754);
                rec.extend_from_slice(b"Reschedule kick received\n");
            }
        }
        1
    }

    /// One dataplane apply cycle: the same burst of per-table lines within a few ms.
    fn log_apply_cycle(&self, rec: &mut Vec<u8>, ms: i64, pid: u32, rng: &mut Rng) -> u64 {
        let mut t = ms;
        head(rec, t, "DEBUG", pid, "int_dataplane.go", 1754);
        rec.extend_from_slice(b"Reschedule kick received\n");
        head(rec, t, "INFO", pid, "int_dataplane.go", 1977);
        rec.extend_from_slice(b"Applying dataplane updates\n");
        let mut n = 3;
        for table in ["raw", "mangle", "nat", "filter"] {
            t += rng.below(2) as i64;
            head(rec, t, "DEBUG", pid, "table.go", 1070);
            let _ = writeln!(
                rec,
                "Loading current iptables state and checking it is correct. ipVersion=0x4 table=\"{table}\""
            );
            head(rec, t, "DEBUG", pid, "table.go", 1304);
            let _ = writeln!(
                rec,
                "Update ended up being no-op, skipping call to ip(6)tables-restore. ipVersion=0x4 table=\"{table}\""
            );
            n += 2;
        }
        head(rec, t, "DEBUG", pid, "ipsets.go", 1193);
        rec.extend_from_slice(b"Resyncing ipsets with dataplane. family=\"inet\"\n");
        t += rng.below(3) as i64;
        head(rec, t, "INFO", pid, "int_dataplane.go", 2004);
        let _ = writeln!(
            rec,
            "Finished applying updates to dataplane. msecToApply={}.{}",
            rng.below(8),
            rng.below(10)
        );
        n
    }

    fn log_warning(&self, rec: &mut Vec<u8>, ms: i64, pid: u32, n: usize, rng: &mut Rng) -> u64 {
        let plan = &self.plans[n];
        let iface = plan
            .pods
            .get(rng.idx(plan.pods.len().max(1)))
            .map(|&p| self.pods[p].iface.as_str())
            .unwrap_or("cali0");
        match rng.below(5) {
            0 => {
                head(rec, ms, "WARNING", pid, "table.go", 1340);
                rec.extend_from_slice(
                    b"iptables-legacy-save command failed error=exit status 1 table=\"filter\"\n",
                );
            }
            1 => {
                head(rec, ms, "WARNING", pid, "health.go", 202);
                rec.extend_from_slice(b"Reporter is not ready. name=\"int_dataplane\"\n");
            }
            2 => {
                head(rec, ms, "WARNING", pid, "route_table.go", 1146);
                let _ = writeln!(
                    rec,
                    "Failed to add route error=file exists ifaceName=\"{iface}\" ipVersion=0x4 tableIndex=254"
                );
            }
            3 => {
                // The error text spills onto the next line (no header of its own).
                head(rec, ms, "WARNING", pid, "int_dataplane.go", 1446);
                let _ = writeln!(
                    rec,
                    "Failed to apply dataplane update, will retry error=failed to sync interface {iface}: link not found"
                );
                let _ = writeln!(
                    rec,
                    "sync interface {iface}: link not found ifaceName=\"{iface}\""
                );
                return 1;
            }
            _ => {
                head(rec, ms, "WARNING", pid, "conntrack.go", 112);
                let _ = writeln!(
                    rec,
                    "Failed to remove conntrack flows error=exit status 1 ipVersion=0x4"
                );
            }
        }
        1
    }

    fn log_error(&self, rec: &mut Vec<u8>, ms: i64, pid: u32, n: usize, rng: &mut Rng) -> u64 {
        let plan = &self.plans[n];
        let chain = plan
            .pods
            .get(rng.idx(plan.pods.len().max(1)))
            .map(|&p| format!("cali-tw-{}", self.pods[p].iface))
            .unwrap_or_else(|| "cali-FORWARD".into());
        match rng.below(4) {
            0 => {
                head(rec, ms, "ERROR", pid, "table.go", 1416);
                let _ = writeln!(
                    rec,
                    "Failed to execute ip(6)tables-restore command error=exit status 4 errorOutput=\"iptables-restore v1.8.9 (nf_tables): line {}: RULE_APPEND failed (No such file or directory): rule in chain {chain}\\n\" input=\"\" ipVersion=0x4 output=\"\" table=\"filter\"",
                    rng.range(10, 9000)
                );
            }
            1 => {
                head(rec, ms, "ERROR", pid, "ipsets.go", 752);
                let _ = writeln!(
                    rec,
                    "Failed to execute ipset restore command error=exit status 1 errOutput=\"ipset v7.17: Error in line {}: Element cannot be added to the set: it's already added\\n\" family=\"inet\"",
                    rng.range(3, 400)
                );
            }
            2 => {
                // A multi-line record: iptables-restore's output copied verbatim.
                head(rec, ms, "ERROR", pid, "table.go", 1427);
                rec.extend_from_slice(b"iptables-restore failed, dumping its input and output\n");
                let _ = writeln!(
                    rec,
                    "iptables-restore v1.8.9 (nf_tables): line {}: RULE_APPEND failed (No such file or directory): rule in chain {chain}",
                    rng.range(10, 9000)
                );
                rec.extend_from_slice(b"Error occurred at line: 1\nTry `iptables-restore -h' or 'iptables-restore --help' for more information.\n");
            }
            _ => {
                // A goroutine trace after a recovered panic.
                head(rec, ms, "ERROR", pid, "int_dataplane.go", 1288);
                rec.extend_from_slice(b"Recovered from panic in dataplane loop error=runtime error: index out of range [3] with length 3\n");
                let g = rng.range(100, 9000);
                let _ = writeln!(rec, "goroutine {g} [running]:");
                rec.extend_from_slice(b"github.com/projectcalico/calico/felix/dataplane/linux.(*endpointManager).resolveWorkloadEndpoints(0xc000a1c000)\n");
                rec.extend_from_slice(b"\t/go/src/github.com/projectcalico/calico/felix/dataplane/linux/endpoint_mgr.go:745 +0x1d4\n");
                rec.extend_from_slice(b"github.com/projectcalico/calico/felix/dataplane/linux.(*InternalDataplane).apply(0xc0002b4000)\n");
                rec.extend_from_slice(b"\t/go/src/github.com/projectcalico/calico/felix/dataplane/linux/int_dataplane.go:2187 +0x2f8\n");
            }
        }
        1
    }
}

// ---------------------------------------------------------------------------------------------
// Output: sizes first, then one stream (tar in gzip on another thread) or a folder
// ---------------------------------------------------------------------------------------------

/// Counts what is written and keeps nothing.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Counts what passes through to `inner`.
struct Tee<'a> {
    inner: &'a mut dyn Write,
    n: u64,
}

impl Write for Tee<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let k = self.inner.write(b)?;
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hands 1 MiB chunks to the compressor thread, so generating and compressing overlap.
struct ChanWriter {
    buf: Vec<u8>,
    tx: SyncSender<Vec<u8>>,
}

const CHUNK: usize = 1 << 20;

impl ChanWriter {
    fn send(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .send(chunk)
            .map_err(|_| io::Error::other("the compressor thread stopped"))
    }
}

impl Write for ChanWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn compressor(rx: Receiver<Vec<u8>>, path: &Path) -> io::Result<u64> {
    let file = File::create(path)?;
    let mut enc = GzEncoder::new(BufWriter::with_capacity(CHUNK, file), Compression::new(6));
    for chunk in rx {
        enc.write_all(&chunk)?;
    }
    enc.finish()?.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

fn tar_header(path: &str, size: u64, mtime: u64) -> io::Result<[u8; 512]> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h.set_username("root")?;
    h.set_groupname("root")?;
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(*h.as_bytes())
}

impl Counts {
    fn add(&mut self, o: Counts) {
        self.iptables_rules += o.iptables_rules;
        self.ipset_members += o.ipset_members;
        self.conntrack += o.conntrack;
        self.log_records += o.log_records;
    }
}

/// What was written: the bundle's path, bytes before and after compression, record counts.
struct Written {
    path: PathBuf,
    bytes: u64,
    compressed: Option<u64>,
    counts: Counts,
}

fn write_tar_gz(world: &World, out: &Path) -> anyhow::Result<Written> {
    let name = world.bundle_name();
    let jobs = world.jobs();
    // Pass 1: every file's size (the manifest comes first in the tar and lists them).
    let sizes: BTreeMap<String, u64> = jobs
        .par_iter()
        .filter(|(_, j)| *j != Job::Manifest)
        .map(|(p, j)| {
            let size = match world.known_size(*j) {
                Some(s) => s,
                None => {
                    let mut c = Counter(0);
                    world.write_job(*j, &mut c)?;
                    c.0
                }
            };
            Ok((p.clone(), size))
        })
        .collect::<io::Result<_>>()?;
    let manifest = world.manifest(&sizes);

    // Pass 2: stream.
    // Written under a temporary name and renamed at the end: a killed run leaves no bundle
    // that looks complete.
    let path = out.join(format!("{name}.tar.gz"));
    let partial = out.join(format!("{name}.tar.gz.partial"));
    let (tx, rx) = sync_channel::<Vec<u8>>(8);
    let zpath = partial.clone();
    let zip = std::thread::spawn(move || compressor(rx, &zpath));
    let mut cw = ChanWriter {
        buf: Vec::with_capacity(CHUNK),
        tx,
    };
    let mtime = (collected_ms() / 1000) as u64;
    let mut counts = Counts::default();
    let mut total = 0u64;
    let result: anyhow::Result<()> = (|| {
        for (rel, job) in &jobs {
            let size = if *job == Job::Manifest {
                manifest.len() as u64
            } else {
                sizes[rel]
            };
            cw.write_all(&tar_header(&format!("{name}/{rel}"), size, mtime)?)?;
            let written = if *job == Job::Manifest {
                cw.write_all(&manifest)?;
                size
            } else {
                let mut tee = Tee {
                    inner: &mut cw,
                    n: 0,
                };
                counts.add(world.write_job(*job, &mut tee)?);
                tee.n
            };
            anyhow::ensure!(
                written == size,
                "{rel}: wrote {written} bytes, the size pass said {size}"
            );
            total += size;
            let pad = (512 - size % 512) % 512;
            cw.write_all(&vec![0u8; pad as usize])?;
        }
        cw.write_all(&[0u8; 1024])?;
        cw.send()?;
        Ok(())
    })();
    drop(cw);
    let compressed = zip
        .join()
        .map_err(|_| anyhow::anyhow!("the compressor thread panicked"))??;
    result?;
    std::fs::rename(&partial, &path)?;
    Ok(Written {
        path,
        bytes: total,
        compressed: Some(compressed),
        counts,
    })
}

fn write_dir(world: &World, out: &Path) -> anyhow::Result<Written> {
    let root = out.join(world.bundle_name());
    let mut sizes = BTreeMap::new();
    let mut counts = Counts::default();
    let mut total = 0u64;
    for (rel, job) in world.jobs() {
        if job == Job::Manifest {
            continue;
        }
        let path = root.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut f = BufWriter::with_capacity(CHUNK, File::create(&path)?);
        let mut tee = Tee {
            inner: &mut f,
            n: 0,
        };
        counts.add(world.write_job(job, &mut tee)?);
        let n = tee.n;
        f.flush()?;
        sizes.insert(rel, n);
        total += n;
    }
    let manifest = world.manifest(&sizes);
    total += manifest.len() as u64;
    std::fs::write(root.join("manifest.json"), &manifest)?;
    Ok(Written {
        path: root,
        bytes: total,
        compressed: None,
        counts,
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let t0 = Instant::now();
    let sizes = Sizes::from_args(&args);
    std::fs::create_dir_all(&args.out)?;
    let world = World::build(sizes.clone(), args.seed);
    let t_model = t0.elapsed().as_secs_f64();
    let faults_path = args
        .out
        .join(format!("{}.faults.json", world.bundle_name()));
    let faults = json!({
        "bundle": world.bundle_name(),
        "seed": args.seed,
        "sizes": format!("{sizes:?}"),
        "faults": world.faults,
    });
    std::fs::write(&faults_path, serde_json::to_vec_pretty(&faults)?)?;
    let written = if args.dir {
        write_dir(&world, &args.out)?
    } else {
        write_tar_gz(&world, &args.out)?
    };
    let secs = t0.elapsed().as_secs_f64();
    let kinds = |k: PolicyKind| world.policies.iter().filter(|p| p.kind == k).count();
    let c = written.counts;
    eprintln!(
        "gen_bundle: scale {} seed {}: {} nodes, {} endpoints, {} namespaces, {} policies ({} np, {} knp, {} gnp), {} ip sets",
        args.scale,
        args.seed,
        world.nodes.len(),
        world.pods.len(),
        world.namespaces.len(),
        world.policies.len(),
        kinds(PolicyKind::NetworkPolicy),
        kinds(PolicyKind::KubernetesNetworkPolicy),
        kinds(PolicyKind::GlobalNetworkPolicy),
        world.sets.len()
    );
    eprintln!(
        "gen_bundle: {} iptables rules, {} ipset members, {} conntrack entries, {} felix log records",
        c.iptables_rules, c.ipset_members, c.conntrack, c.log_records
    );
    match written.compressed {
        Some(z) => eprintln!(
            "gen_bundle: {:.1} MB uncompressed, {:.1} MB gzip-6 ({:.1}x), {secs:.1} s (model {t_model:.1} s)",
            written.bytes as f64 / 1e6,
            z as f64 / 1e6,
            written.bytes as f64 / z.max(1) as f64
        ),
        None => eprintln!(
            "gen_bundle: {:.1} MB in a folder, {secs:.1} s (model {t_model:.1} s)",
            written.bytes as f64 / 1e6
        ),
    }
    eprintln!(
        "gen_bundle: injected faults listed in {}",
        faults_path.display()
    );
    println!("{}", written.path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> World {
        World::build(
            Sizes {
                nodes: 4,
                endpoints: 120,
                policies: 60,
                rules_per_policy: 3,
                ipset_members: 5000,
                conntrack: 400,
                log_bytes: 200_000,
            },
            7,
        )
    }

    fn text(w: &World, job: Job) -> String {
        let mut v = Vec::new();
        w.write_job(job, &mut v).expect("write");
        String::from_utf8(v).expect("utf8")
    }

    #[test]
    fn the_same_seed_gives_the_same_files_and_another_seed_does_not() {
        let (a, b) = (tiny(), tiny());
        for (_, job) in a.jobs().into_iter().filter(|(_, j)| *j != Job::Manifest) {
            assert_eq!(text(&a, job), text(&b, job), "{job:?}");
        }
        let mut s = a.sizes.clone();
        s.nodes = 4;
        let c = World::build(s, 8);
        assert_ne!(
            text(&a, Job::Node(0, NodeFile::IptablesSave)),
            text(&c, Job::Node(0, NodeFile::IptablesSave))
        );
    }

    #[test]
    fn felix_logs_have_exactly_the_announced_size_in_felix_format() {
        let w = tiny();
        for n in 0..w.nodes.len() {
            let t = text(&w, Job::Node(n, NodeFile::FelixLog));
            assert_eq!(t.len() as u64, w.log_bytes[n]);
            let first = t.lines().next().expect("a line");
            assert!(first.starts_with("2026-11-24 "), "{first}");
            assert!(first.contains(" [INFO]["), "{first}");
            assert!(t.ends_with('\n'));
        }
    }

    #[test]
    fn every_jump_target_is_declared_and_every_matched_set_is_created() {
        let w = tiny();
        for n in 0..w.nodes.len() {
            let ipt = text(&w, Job::Node(n, NodeFile::IptablesSave));
            let sets = text(&w, Job::Node(n, NodeFile::IpsetSave));
            let declared: HashSet<&str> = ipt
                .lines()
                .filter_map(|l| l.strip_prefix(':'))
                .filter_map(|l| l.split_whitespace().next())
                .collect();
            let created: HashSet<&str> = sets
                .lines()
                .filter_map(|l| l.strip_prefix("create "))
                .filter_map(|l| l.split_whitespace().next())
                .collect();
            for l in ipt.lines().filter(|l| l.starts_with('[')) {
                let words: Vec<&str> = l.split_whitespace().collect();
                for pair in words.windows(2) {
                    if matches!(pair[0], "-j" | "-g") && pair[1].starts_with("cali-") {
                        assert!(declared.contains(pair[1]), "{l}");
                    }
                    if pair[0] == "--match-set" {
                        assert!(created.contains(pair[1]), "{l}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_demo_bundles_kubernetes_policy_renders_as_in_its_dump() {
        // testdata/bundles/calico-bundle-demo-…: KNP demo/trace-test allows app=allowed on
        // TCP 80 to app=web; its node-1 dump holds the chain below.
        let mut w = tiny();
        let demo = w.namespaces.len();
        w.namespaces.push(Namespace {
            name: "demo".into(),
            team: String::new(),
            labels: labels(&[("kubernetes.io/metadata.name", "demo")]),
            created_ms: 0,
            uid: String::new(),
        });
        let mut rng = Rng::for_tag(1, "t");
        let pod_sel = BTreeMap::from([("app".to_string(), "web".to_string())]);
        let v1 = network_policy_selector(
            &k8s_selector_to_calico(&k8s_sel(&pod_sel), true),
            "demo",
            "",
        );
        let rule = RuleSpec {
            action: "Allow",
            protocol: Some("TCP"),
            ports: vec![80],
            peer: Peer::K8sPod(BTreeMap::from([("app".to_string(), "allowed".to_string())])),
        };
        w.add_policy(
            &mut rng,
            PolicyKind::KubernetesNetworkPolicy,
            "trace-test".into(),
            Some(demo),
            "default".into(),
            Some(1000.0),
            (String::new(), String::new(), pod_sel),
            v1,
            PolicyTypes {
                ingress: true,
                egress: false,
            },
            (vec![rule], Vec::new()),
            0,
        );
        let p = w.policies.last().expect("policy");
        let chain = policy_chain_name(Direction::Ingress, &p.key, VERSION, false);
        assert_eq!(chain, "cali-pi-_rV88Xej8277qXnICUmJ");
        assert_eq!(w.sets[p.sets[0]].name, "cali40s:NspJUqIXPi0uTPBoR_x-xZ-");
        let felix =
            policy_chain_rules(&p.key, Direction::Ingress, &p.proto_in, 4, false, &w.render);
        let lines = save_lines(&chain, &felix);
        let dump = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "testdata/bundles/calico-bundle-demo-20261125T140215Z/nodes/node-1/iptables-save.txt",
        ))
        .expect("demo dump");
        assert!(dump.contains(&format!("] {}", lines[0])), "{}", lines[0]);
    }

    #[test]
    fn yaml_scalars_are_quoted_only_where_yaml_would_misread_them() {
        assert_eq!(yq("app == 'web'"), "app == 'web'");
        assert_eq!(yq("!has(app)"), "\"!has(app)\"");
        assert_eq!(yq("true"), "\"true\"");
        assert_eq!(yq("1000"), "\"1000\"");
        assert_eq!(yq("a: b"), "\"a: b\"");
    }

    #[test]
    fn timestamps_read_as_calendar_dates() {
        assert_eq!(felix_ts(collected_ms()), "2026-11-25 14:02:15.000");
        assert_eq!(rfc3339(collected_ms()), COLLECTED_AT);
        assert_eq!(ctime(collected_ms()), "Wed Nov 25 14:02:15 2026");
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }

    #[test]
    fn faults_are_injected_once_each() {
        let w = tiny();
        let kinds: Vec<&str> = w.faults.iter().filter_map(|f| f["kind"].as_str()).collect();
        assert_eq!(
            kinds,
            [
                "missing-policy-chain",
                "orphan-policy-chain",
                "missing-ipset-member",
                "stale-ipset-member"
            ]
        );
    }
}
