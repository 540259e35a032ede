//! One node as its dumps show it, cross-referenced with the cluster: which endpoints are local,
//! which policies are active there (they select a local endpoint), which chain implements what
//! (by the naming comment where the version writes one, by recomputed name otherwise), the
//! jumps each endpoint chain should have and has, and the IP sets Felix should have programmed
//! with the members they should hold.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use rayon::prelude::*;

pub use super::member::{DumpedMembers, ExpectedMembers, Member, Source};
use super::{EndpointKind, Model};
use crate::bundle::{Artifact, ArtifactKind};
use crate::calico::names::{self, CalicoVersion, Direction};
use crate::calico::order::{self, SortablePolicy, SortableTier, TierDefaultAction};
use crate::calico::selector::Selector;
use crate::parse::{Parsed, conntrack, felix_log, ip, ipset, iptables_save, nft, sysctl};

/// A parsed artifact of one node.
#[derive(Debug)]
pub struct Dumped<'b, T> {
    pub artifact: &'b Artifact,
    pub data: &'b T,
}

impl<T> Clone for Dumped<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Dumped<'_, T> {}

impl<T> Dumped<'_, T> {
    pub fn path(&self) -> &str {
        &self.artifact.path
    }
}

/// What a chain of the dump implements.
#[derive(Debug, Clone, PartialEq)]
pub enum ChainRole {
    Policy {
        policy: usize,
        direction: Direction,
    },
    Profile {
        profile: String,
        direction: Direction,
    },
    /// `cali-tw-`, `cali-fw-`, `cali-th-` … for an interface.
    Endpoint {
        prefix: &'static str,
        iface: String,
    },
    Group {
        direction: Direction,
    },
    Dispatch,
}

/// A `cali-pi-`/`cali-po-` chain that names a policy in its comment while its name belongs to
/// another (or to none): a sign of a stale chain or of a version assumption gone wrong.
#[derive(Debug, Clone)]
pub struct ChainNameMismatch {
    pub chain: String,
    pub comment: String,
    pub comment_policy: Option<usize>,
    pub name_policy: Option<usize>,
    pub line: usize,
}

/// Where a policy's chain for one direction should be, and whether it is.
#[derive(Debug, Clone)]
pub struct PolicyChain {
    pub policy: usize,
    pub direction: Direction,
    /// The chain found, or the name expected for the assumed version.
    pub chain: String,
    pub found: bool,
    /// Every name that was looked for.
    pub candidates: Vec<String>,
    /// Line of the chain's declaration (0 when missing).
    pub line: usize,
}

/// Who a jump in an endpoint chain goes to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Owner {
    Policy(usize),
    Profile(String),
    /// A `cali-pi-`/`cali-po-`/`cali-pri-`/`cali-pro-` chain nothing in the bundle explains.
    Unknown(String),
}

/// One jump found in an endpoint chain (or in a policy-group chain it jumps to).
#[derive(Debug, Clone)]
pub struct Jump {
    pub owner: Owner,
    pub chain: String,
    pub line: usize,
    pub text: String,
}

/// An endpoint chain: what it should jump to, in order, and what it does.
#[derive(Debug, Clone)]
pub struct EndpointChain {
    pub endpoint: usize,
    pub direction: Direction,
    pub chain: String,
    pub present: bool,
    /// Line of the chain declaration when present.
    pub line: usize,
    /// The dispatch chains send the interface to this chain.
    pub dispatched: bool,
    pub expected: Vec<Owner>,
    pub actual: Vec<Jump>,
}

/// Which rule needs an IP set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SetUse {
    pub policy: usize,
    pub direction: Direction,
    pub rule: usize,
    /// `source` or `destination`.
    pub side: &'static str,
}

/// An IP set Felix should have programmed on this node.
#[derive(Debug, Clone)]
pub struct ExpectedSet {
    pub name: String,
    pub id: String,
    /// The canonical selector it stands for.
    pub selector: String,
    pub ipv6: bool,
    /// Members as ipset prints them, normalised (`10.0.0.1/32` → `10.0.0.1`), with the
    /// endpoint or network set that contributes each; shared by every node that needs the
    /// same set.
    pub members: Arc<ExpectedMembers>,
    pub used_by: Vec<SetUse>,
}

pub struct NodeModel<'b> {
    pub name: String,
    /// IPv4 `iptables-save` (the default backend's when several were captured).
    pub iptables: Option<Dumped<'b, iptables_save::Dump>>,
    pub ip6tables: Option<Dumped<'b, iptables_save::Dump>>,
    pub ipsets: Option<Dumped<'b, ipset::Dump>>,
    pub nft: Option<Dumped<'b, nft::Ruleset>>,
    pub conntrack: Vec<Dumped<'b, conntrack::Table>>,
    pub felix_logs: Vec<Dumped<'b, felix_log::Log>>,
    pub sysctl: Option<Dumped<'b, sysctl::Sysctl>>,
    /// `ip route` dumps (IPv4 and IPv6).
    pub routes: Vec<Dumped<'b, ip::Routes>>,
    pub local_endpoints: Vec<usize>,
    /// Policies that select a local endpoint (or must be everywhere), enforced ones only.
    pub active_policies: Vec<usize>,
    /// Chain name → role, for every chain whose role is known.
    pub chains: HashMap<String, ChainRole>,
    pub policy_chains: Vec<PolicyChain>,
    pub mismatches: Vec<ChainNameMismatch>,
    pub endpoint_chains: Vec<EndpointChain>,
    /// Set name → what it should hold.
    pub expected_sets: BTreeMap<String, ExpectedSet>,
    /// The members of each set of `ipsets` (same order as its `sets`), compact and sorted.
    pub dumped_sets: Vec<DumpedMembers<'b>>,
}

impl<'b> NodeModel<'b> {
    /// The filter table of the IPv4 dump.
    pub fn filter(&self) -> Option<&'b iptables_save::Table> {
        self.iptables.and_then(|d| d.data.table("filter"))
    }

    /// A chain of the IPv4 dump, in any table (filter first).
    pub fn find_chain(
        &self,
        name: &str,
    ) -> Option<(&'b iptables_save::Table, &'b iptables_save::Chain)> {
        let d = self.iptables?.data;
        let order = ["filter", "raw", "mangle", "nat"];
        order
            .iter()
            .filter_map(|t| d.table(t))
            .find_map(|t| t.chain(name).map(|c| (t, c)))
    }

    /// The device this node routes `ip` through (longest prefix of its `ip route` dumps).
    pub fn route_dev(&self, ip: std::net::IpAddr) -> Option<String> {
        let mut best: Option<(u8, String)> = None;
        for r in self.routes.iter().flat_map(|d| d.data.routes.iter()) {
            let Some(dev) = &r.dev else { continue };
            let len = match r.dst {
                Some(net) if net.contains(&ip) => net.prefix_len(),
                None if r.kind == ip::RouteKind::Unicast => 0,
                _ => continue,
            };
            if best.as_ref().is_none_or(|(l, _)| len > *l) {
                best = Some((len, dev.clone()));
            }
        }
        best.map(|b| b.1)
    }

    /// True when the node has an iptables dump with Calico chains.
    pub fn has_calico_iptables(&self) -> bool {
        self.filter()
            .is_some_and(|t| t.chains.iter().any(|c| c.name.starts_with("cali-")))
    }
}

/// Pick the artifact to trust when several of a kind exist on a node: the plain name first
/// (`iptables-save.txt`), then any.
fn pick<'b>(arts: &[&'b Artifact], preferred: &[&str]) -> Option<&'b Artifact> {
    arts.iter()
        .copied()
        .find(|a| preferred.iter().any(|p| a.path.ends_with(p)))
        .or_else(|| arts.iter().copied().max_by_key(|a| a.parsed.records()))
}

pub fn nodes<'b>(m: &Model<'b>, policy_names: &PolicyNames) -> Vec<NodeModel<'b>> {
    let mut names: BTreeSet<&str> = m.bundle.nodes.iter().map(String::as_str).collect();
    for e in &m.endpoints {
        if let Some(n) = &e.node
            && !m.bundle.nodes.is_empty()
            && m.bundle.nodes.contains(n)
        {
            names.insert(n);
        }
    }
    let names: Vec<&str> = names.into_iter().collect();
    let joins = NodeJoins::new(m);
    let built: Vec<(NodeModel<'b>, Vec<PendingSet>)> = names
        .par_iter()
        .map(|n| node(m, n, policy_names, &joins))
        .collect();
    // What each distinct selector's set holds, computed once and shared by every node.
    let mut slot: HashMap<MemberSpecKey, usize> = HashMap::new();
    let mut specs: Vec<&MemberSpec> = Vec::new();
    for (_, pending) in &built {
        for p in pending {
            slot.entry(p.key.clone()).or_insert_with(|| {
                specs.push(&p.spec);
                specs.len() - 1
            });
        }
    }
    let members: Vec<Arc<ExpectedMembers>> = specs
        .par_iter()
        .map(|spec| Arc::new(spec.members(m)))
        .collect();
    let mut out = Vec::with_capacity(built.len());
    for (mut node, pending) in built {
        for p in &pending {
            if let (Some(s), Some(mem)) = (
                node.expected_sets.get_mut(&p.set),
                slot.get(&p.key).and_then(|&i| members.get(i)),
            ) {
                s.members = Arc::clone(mem);
            }
        }
        out.push(node);
    }
    out
}

/// Cluster-wide joins computed once for all nodes, so that building a node costs what the
/// node holds rather than what the cluster holds.
struct NodeJoins<'m, 'b> {
    /// Node name → its artifacts, in bundle order.
    artifacts: HashMap<&'b str, Vec<&'b Artifact>>,
    /// Node name → its endpoints, ascending.
    endpoints: HashMap<&'m str, Vec<usize>>,
    /// Endpoint → enforced policies that select it, ascending.
    endpoint_policies: Vec<Vec<usize>>,
    /// Enforced policies that must be on every node (`AssumeNeededOnEveryNode`).
    everywhere: Vec<usize>,
}

impl<'m, 'b> NodeJoins<'m, 'b> {
    fn new(m: &'m Model<'b>) -> NodeJoins<'m, 'b> {
        let bundle: &'b crate::bundle::Bundle = m.bundle;
        let mut artifacts: HashMap<&'b str, Vec<&'b Artifact>> = HashMap::new();
        for a in &bundle.artifacts {
            if let Some(n) = a.node.as_deref() {
                artifacts.entry(n).or_default().push(a);
            }
        }
        let mut endpoints: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, e) in m.endpoints.iter().enumerate() {
            if let Some(n) = e.node.as_deref() {
                endpoints.entry(n).or_default().push(i);
            }
        }
        let endpoint_policies = m
            .endpoint_policies
            .iter()
            .map(|ps| {
                ps.iter()
                    .copied()
                    .filter(|&pi| m.policies[pi].enforced())
                    .collect()
            })
            .collect();
        let everywhere = m
            .policies
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.enforced()
                    && p.performance_hints
                        .iter()
                        .any(|h| h == "AssumeNeededOnEveryNode")
            })
            .map(|(pi, _)| pi)
            .collect();
        NodeJoins {
            artifacts,
            endpoints,
            endpoint_policies,
            everywhere,
        }
    }

    /// The enforced policies that select one of `local` (or must be everywhere), ascending.
    fn active_policies(&self, local: &[usize]) -> Vec<usize> {
        active_policies(&self.endpoint_policies, &self.everywhere, local)
    }
}

/// Policy → endpoints it selects, turned into endpoint → policies (ascending), keeping the
/// policies `keep` accepts.
pub(crate) fn invert(
    policy_endpoints: &[Vec<usize>],
    endpoints: usize,
    keep: impl Fn(usize) -> bool,
) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); endpoints];
    for (pi, eps) in policy_endpoints.iter().enumerate() {
        if !keep(pi) {
            continue;
        }
        for &e in eps {
            if let Some(v) = out.get_mut(e) {
                v.push(pi);
            }
        }
    }
    out
}

/// The policies of a node: those selecting one of its endpoints, plus those that must be on
/// every node; ascending, each once.
fn active_policies(
    endpoint_policies: &[Vec<usize>],
    everywhere: &[usize],
    local: &[usize],
) -> Vec<usize> {
    let mut out: Vec<usize> = local
        .iter()
        .filter_map(|&e| endpoint_policies.get(e))
        .flatten()
        .chain(everywhere)
        .copied()
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Every chain name and naming comment any Calico version could give each policy, computed
/// once for all nodes (hashing every candidate per node made the model quadratic).
pub struct PolicyNames {
    by_name: foldhash::HashMap<String, (usize, Direction)>,
    by_comment: foldhash::HashMap<String, (usize, Direction)>,
    /// Each policy's expected chain names per direction (ingress, egress), shared by every
    /// node where the policy is active.
    chains: Vec<[ExpectedChains; 2]>,
}

/// The chain names a policy's chain may have in one direction.
struct ExpectedChains {
    /// The assumed version's names first, then any version's, each once.
    candidates: Vec<String>,
    /// The name to report when no candidate is in the dump.
    primary: String,
}

impl ExpectedChains {
    /// `any` holds the policy's candidates for any version, both directions.
    fn new(
        p: &crate::model::Policy,
        dir: Direction,
        version: names::CalicoVersion,
        any: &[names::ChainCandidate],
    ) -> Self {
        let exact = names::policy_chain_candidates_for_direction(&p.policy_ref, dir, Some(version));
        let mut candidates: Vec<String> = exact.iter().map(|c| c.chain.clone()).collect();
        for c in any.iter().filter(|c| c.direction == dir) {
            if !candidates.contains(&c.chain) {
                candidates.push(c.chain.clone());
            }
        }
        let primary = exact
            .iter()
            .find(|c| c.primary && !c.nft)
            .or(exact.first())
            .map(|c| c.chain.clone())
            .unwrap_or_default();
        ExpectedChains {
            candidates,
            primary,
        }
    }
}

impl PolicyNames {
    /// Needs only the policies and the assumed version: built while the model's indexes are.
    pub fn new(policies: &[crate::model::Policy], version: names::CalicoVersion) -> PolicyNames {
        // Hashing every candidate is the costly part: on the pool, then merged in policy order.
        let (candidates, chains): (Vec<Vec<names::ChainCandidate>>, Vec<_>) = policies
            .par_iter()
            .map(|p| {
                let any = names::policy_chain_candidates(&p.policy_ref, None);
                let chains = Direction::BOTH.map(|dir| ExpectedChains::new(p, dir, version, &any));
                // Felix programs no chain for a staged policy: its names claim nothing.
                (if p.staged { Vec::new() } else { any }, chains)
            })
            .unzip();
        // The first policy to claim a name or comment keeps it; the two maps are independent.
        let index = |key: fn(&names::ChainCandidate) -> Option<&String>| {
            let mut map: foldhash::HashMap<String, (usize, Direction)> = Default::default();
            for (i, list) in candidates.iter().enumerate() {
                for c in list {
                    if let Some(k) = key(c) {
                        map.entry(k.clone()).or_insert((i, c.direction));
                    }
                }
            }
            map
        };
        let (by_name, by_comment) = rayon::join(
            || index(|c| Some(&c.chain)),
            || index(|c| c.comment.as_ref()),
        );
        PolicyNames {
            by_name,
            by_comment,
            chains,
        }
    }

    fn expected(&self, pi: usize, dir: Direction) -> &ExpectedChains {
        &self.chains[pi][match dir {
            Direction::Ingress => 0,
            Direction::Egress => 1,
        }]
    }
}

fn node<'b>(
    m: &Model<'b>,
    name: &str,
    policy_names: &PolicyNames,
    joins: &NodeJoins<'_, 'b>,
) -> (NodeModel<'b>, Vec<PendingSet>) {
    let mine: &[&'b Artifact] = joins.artifacts.get(name).map_or(&[], Vec::as_slice);
    let arts = |kind: ArtifactKind| -> Vec<&'b Artifact> {
        mine.iter().copied().filter(|a| a.kind == kind).collect()
    };
    let ipt = |a: &'b Artifact| match &a.parsed {
        Parsed::Iptables(d) => Some(Dumped {
            artifact: a,
            data: d,
        }),
        _ => None,
    };
    let iptables = pick(
        &arts(ArtifactKind::IptablesSave),
        &["iptables-save.txt", "ipv4_tables"],
    )
    .and_then(ipt);
    let ip6tables = pick(
        &arts(ArtifactKind::Ip6tablesSave),
        &["ip6tables-save.txt", "ipv6_tables"],
    )
    .and_then(ipt);
    let ipsets = pick(
        &[arts(ArtifactKind::IpsetSave), arts(ArtifactKind::IpsetList)].concat(),
        &["ipset-save.txt", "ipsets", "ipset-list.txt"],
    )
    .and_then(|a| match &a.parsed {
        Parsed::Ipset(d) => Some(Dumped {
            artifact: a,
            data: d,
        }),
        _ => None,
    });
    let nft =
        pick(&arts(ArtifactKind::NftRuleset), &["nft-ruleset.txt"]).and_then(|a| match &a.parsed {
            Parsed::Nft(d) => Some(Dumped {
                artifact: a,
                data: d,
            }),
            _ => None,
        });
    let conntrack = [
        arts(ArtifactKind::Conntrack),
        arts(ArtifactKind::ConntrackStats),
    ]
    .concat()
    .into_iter()
    .filter_map(|a| match &a.parsed {
        Parsed::Conntrack(d) => Some(Dumped {
            artifact: a,
            data: d,
        }),
        _ => None,
    })
    .collect();
    let felix_logs = arts(ArtifactKind::FelixLog)
        .into_iter()
        .filter_map(|a| match &a.parsed {
            Parsed::FelixLog(d) => Some(Dumped {
                artifact: a,
                data: d,
            }),
            _ => None,
        })
        .collect();
    let sysctl = arts(ArtifactKind::Sysctl)
        .into_iter()
        .find_map(|a| match &a.parsed {
            Parsed::Sysctl(d) => Some(Dumped {
                artifact: a,
                data: d,
            }),
            _ => None,
        });
    let routes = arts(ArtifactKind::IpRoute)
        .into_iter()
        .filter_map(|a| match &a.parsed {
            Parsed::IpRoute(d) => Some(Dumped {
                artifact: a,
                data: d,
            }),
            _ => None,
        })
        .collect();
    let local_endpoints: Vec<usize> = joins.endpoints.get(name).cloned().unwrap_or_default();
    let active_policies = joins.active_policies(&local_endpoints);
    let dumped_sets = ipsets
        .map(|d| {
            d.data
                .sets
                .iter()
                .map(|s| DumpedMembers::new(&s.members))
                .collect()
        })
        .unwrap_or_default();
    let mut node = NodeModel {
        name: name.to_string(),
        iptables,
        ip6tables,
        ipsets,
        nft,
        conntrack,
        felix_logs,
        sysctl,
        routes,
        local_endpoints,
        active_policies,
        chains: HashMap::new(),
        policy_chains: Vec::new(),
        mismatches: Vec::new(),
        endpoint_chains: Vec::new(),
        expected_sets: BTreeMap::new(),
        dumped_sets,
    };
    if node.iptables.is_some() {
        map_chains(m, &mut node, policy_names);
        endpoint_chains(m, &mut node);
    }
    let pending = expected_sets(m, &mut node);
    (node, pending)
}

/// Name every `cali-pi-`/`cali-po-`/profile/endpoint/group chain of the dump, and find each
/// active policy's chains.
fn map_chains(m: &Model<'_>, node: &mut NodeModel<'_>, policy_names: &PolicyNames) {
    let by_name = &policy_names.by_name;
    let by_comment = &policy_names.by_comment;
    let Some(dump) = node.iptables else { return };
    let mut roles: HashMap<String, ChainRole> = HashMap::new();
    let mut mismatches = Vec::new();
    for table in &dump.data.tables {
        for chain in &table.chains {
            let n = chain.name.as_str();
            let policy_dir = if n.starts_with(names::POLICY_INBOUND_PREFIX) {
                Some(Direction::Ingress)
            } else if n.starts_with(names::POLICY_OUTBOUND_PREFIX) {
                Some(Direction::Egress)
            } else {
                None
            };
            if let Some(dir) = policy_dir {
                let comment = chain
                    .rules
                    .first()
                    .and_then(|r| r.comments.iter().find(|c| naming_comment(c)))
                    .map(|c| c.to_string());
                let from_comment = comment.as_ref().and_then(|c| by_comment.get(c)).copied();
                let from_name = by_name.get(n).copied();
                if let Some(c) = &comment
                    && (from_comment.is_none()
                        || from_comment.map(|x| x.0) != from_name.map(|x| x.0))
                {
                    mismatches.push(ChainNameMismatch {
                        chain: n.to_string(),
                        comment: c.clone(),
                        comment_policy: from_comment.map(|x| x.0),
                        name_policy: from_name.map(|x| x.0),
                        line: chain.rules.first().map(|r| r.line).unwrap_or(chain.line),
                    });
                }
                if let Some((policy, _)) = from_comment.or(from_name) {
                    roles.insert(
                        n.to_string(),
                        ChainRole::Policy {
                            policy,
                            direction: dir,
                        },
                    );
                }
            } else if let Some(rest) = n.strip_prefix(names::PROFILE_INBOUND_PREFIX) {
                roles.insert(n.to_string(), profile_role(chain, rest, Direction::Ingress));
            } else if let Some(rest) = n.strip_prefix(names::PROFILE_OUTBOUND_PREFIX) {
                roles.insert(n.to_string(), profile_role(chain, rest, Direction::Egress));
            } else if n.starts_with(names::POLICY_GROUP_INBOUND_PREFIX) {
                roles.insert(
                    n.to_string(),
                    ChainRole::Group {
                        direction: Direction::Ingress,
                    },
                );
            } else if n.starts_with(names::POLICY_GROUP_OUTBOUND_PREFIX) {
                roles.insert(
                    n.to_string(),
                    ChainRole::Group {
                        direction: Direction::Egress,
                    },
                );
            } else if n.contains("-dispatch") || n.starts_with(names::CHAIN_SET_ENDPOINT_MARK) {
                roles.insert(n.to_string(), ChainRole::Dispatch);
            } else if let Some(prefix) = names::ENDPOINT_CHAIN_PREFIXES
                .iter()
                .copied()
                .filter(|p| n.starts_with(p))
                .max_by_key(|p| p.len())
            {
                roles.insert(
                    n.to_string(),
                    ChainRole::Endpoint {
                        prefix,
                        iface: n[prefix.len()..].to_string(),
                    },
                );
            }
        }
    }
    // Policy and direction → the chain whose role names it (the first in the dump, when a
    // damaged dump has several), instead of a scan of every role per policy.
    let mut by_policy: HashMap<(usize, Direction), &str> = HashMap::new();
    for chain in dump.data.tables.iter().flat_map(|t| &t.chains) {
        if let Some(ChainRole::Policy { policy, direction }) = roles.get(chain.name.as_str()) {
            by_policy
                .entry((*policy, *direction))
                .or_insert(chain.name.as_str());
        }
    }
    // Each active policy's chains: the assumed version's names first, then any version's.
    let mut policy_chains = Vec::new();
    for &pi in &node.active_policies {
        let p = &m.policies[pi];
        for dir in Direction::BOTH {
            if !p.types.governs(dir) {
                continue;
            }
            let expected = policy_names.expected(pi, dir);
            // A chain whose comment names this policy wins over a recomputed name.
            let by_role = by_policy.get(&(pi, dir)).map(|&n| n.to_string());
            let found = by_role.or_else(|| {
                expected
                    .candidates
                    .iter()
                    .find(|c| dump.data.tables.iter().any(|t| t.chain(c).is_some()))
                    .cloned()
            });
            let line = found
                .as_ref()
                .and_then(|c| dump.data.tables.iter().find_map(|t| t.chain(c)))
                .map(|c| c.line)
                .unwrap_or(0);
            policy_chains.push(PolicyChain {
                policy: pi,
                direction: dir,
                found: found.is_some(),
                chain: found.unwrap_or_else(|| expected.primary.clone()),
                candidates: expected.candidates.clone(),
                line,
            });
        }
    }
    node.chains = roles;
    node.policy_chains = policy_chains;
    node.mismatches = mismatches;
}

/// `Policy <v1name> ingress` (v3.22–v3.31) or `<Kind> [<ns>/]<name> egress` (v3.32+).
fn naming_comment(c: &str) -> bool {
    (c.ends_with(" ingress") || c.ends_with(" egress"))
        && (c.starts_with("Policy ") || c.contains("NetworkPolicy "))
}

fn profile_role(chain: &iptables_save::Chain, rest: &str, direction: Direction) -> ChainRole {
    // "Profile <name> ingress" names hashed profile chains too.
    let named = chain.rules.first().and_then(|r| {
        r.comments.iter().find_map(|c| {
            c.strip_prefix("Profile ")
                .and_then(|s| s.rsplit_once(' '))
                .map(|(name, _)| name.to_string())
        })
    });
    ChainRole::Profile {
        profile: named.unwrap_or_else(|| rest.to_string()),
        direction,
    }
}

impl Model<'_> {
    /// The tiers as the bundle defines them; Calico's own tiers keep their built-in order.
    pub fn sortable_tiers(&self) -> Vec<SortableTier> {
        self.resources
            .tiers
            .iter()
            .map(|t| {
                let action = match t.item.default_action.as_deref() {
                    Some(a) if a.eq_ignore_ascii_case("pass") => TierDefaultAction::Pass,
                    _ => TierDefaultAction::Deny,
                };
                let order = t
                    .item
                    .order
                    .or_else(|| order::well_known_tier(&t.item.meta.name).map(|w| w.0));
                SortableTier::new(&t.item.meta.name, order, action)
            })
            .collect()
    }
}

/// For each local endpoint and direction: the jumps Felix should have written (policies in
/// tier order, then profiles) and the ones the dump has.
fn endpoint_chains(m: &Model<'_>, node: &mut NodeModel<'_>) {
    let version = m.calico_version();
    let Some(dump) = node.iptables else { return };
    let Some(filter) = dump.data.table("filter") else {
        return;
    };
    let tiers = m.sortable_tiers();
    // Which policies apply to which local endpoint.
    let mut applying: HashMap<usize, Vec<usize>> = HashMap::new();
    for &pi in &node.active_policies {
        for &e in &m.policy_endpoints[pi] {
            applying.entry(e).or_default().push(pi);
        }
    }
    let dispatched = dispatch_targets(filter);
    let mut out = Vec::new();
    for &ei in &node.local_endpoints {
        let e = &m.endpoints[ei];
        let Some(iface) = &e.iface else { continue };
        let pols = applying.get(&ei).cloned().unwrap_or_default();
        for dir in Direction::BOTH {
            let prefix = match (e.kind, dir) {
                (EndpointKind::Workload, Direction::Ingress) => names::WORKLOAD_TO_ENDPOINT_PREFIX,
                (EndpointKind::Workload, Direction::Egress) => names::WORKLOAD_FROM_ENDPOINT_PREFIX,
                (EndpointKind::Host, Direction::Ingress) => names::HOST_FROM_ENDPOINT_PREFIX,
                (EndpointKind::Host, Direction::Egress) => names::HOST_TO_ENDPOINT_PREFIX,
            };
            let iface_name = names::host_endpoint_iface(iface);
            let chain_name = names::endpoint_chain_name(prefix, iface_name, version, false);
            let sortable: Vec<SortablePolicy> = pols
                .iter()
                .filter(|&&pi| {
                    let p = &m.policies[pi];
                    p.types.governs(dir) && !p.pre_dnat && !p.do_not_track
                })
                .map(|&pi| {
                    let p = &m.policies[pi];
                    SortablePolicy::new(p.key.clone(), p.order, p.types, &p.selector_raw)
                })
                .collect();
            let ordered = order::order_policies(&tiers, &sortable, version);
            let mut expected: Vec<Owner> = Vec::new();
            for t in &ordered {
                for sp in t.for_direction(dir) {
                    if let Some(pi) = pols
                        .iter()
                        .copied()
                        .find(|&pi| m.policies[pi].key == sp.key)
                    {
                        expected.push(Owner::Policy(pi));
                    }
                }
            }
            for prof in &e.profiles {
                expected.push(Owner::Profile(prof.clone()));
            }
            let chain = filter.chain(&chain_name);
            let mut actual = Vec::new();
            if let Some(c) = chain {
                collect_jumps(node, filter, c, &mut actual, 0);
            }
            out.push(EndpointChain {
                endpoint: ei,
                direction: dir,
                present: chain.is_some(),
                line: chain.map(|c| c.line).unwrap_or(0),
                dispatched: e.kind == EndpointKind::Host || dispatched.contains(&chain_name),
                chain: chain_name,
                expected,
                actual,
            });
        }
    }
    node.endpoint_chains = out;
}

/// The endpoint chains the workload dispatch trees send packets to.
fn dispatch_targets(filter: &iptables_save::Table) -> BTreeSet<String> {
    filter
        .chains
        .iter()
        .filter(|c| {
            c.name.starts_with(names::CHAIN_FROM_WORKLOAD_DISPATCH)
                || c.name.starts_with(names::CHAIN_TO_WORKLOAD_DISPATCH)
        })
        .flat_map(|c| c.rules.iter())
        .filter_map(|r| r.jump_target())
        .map(str::to_string)
        .collect()
}

/// Jumps to policy, profile and group chains, with groups expanded into their policies.
fn collect_jumps(
    node: &NodeModel<'_>,
    filter: &iptables_save::Table,
    chain: &iptables_save::Chain,
    out: &mut Vec<Jump>,
    depth: usize,
) {
    for r in &chain.rules {
        let Some(target) = r.jump_target() else {
            continue;
        };
        let owner = match node.chains.get(target) {
            Some(ChainRole::Policy { policy, .. }) => Owner::Policy(*policy),
            Some(ChainRole::Profile { profile, .. }) => Owner::Profile(profile.clone()),
            Some(ChainRole::Group { .. }) => {
                if depth < 4
                    && let Some(g) = filter.chain(target)
                {
                    collect_jumps(node, filter, g, out, depth + 1);
                }
                continue;
            }
            _ if [
                names::POLICY_INBOUND_PREFIX,
                names::POLICY_OUTBOUND_PREFIX,
                names::PROFILE_INBOUND_PREFIX,
                names::PROFILE_OUTBOUND_PREFIX,
            ]
            .iter()
            .any(|p| target.starts_with(p)) =>
            {
                Owner::Unknown(target.to_string())
            }
            _ => continue,
        };
        out.push(Jump {
            owner,
            chain: target.to_string(),
            line: r.line,
            text: r.text.to_string(),
        });
    }
}

/// Which members a set holds, as a key shared by every node that needs the same set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum MemberSpecKey {
    /// Selector id and family.
    Selector(String, bool),
    /// Selector id, protocol, port name.
    NamedPort(String, &'static str, String),
}

/// How to compute a set's members.
enum MemberSpec {
    Selector(Selector, bool),
    NamedPort(Selector, &'static str, String),
}

impl MemberSpec {
    fn members(&self, m: &Model<'_>) -> ExpectedMembers {
        match self {
            MemberSpec::Selector(sel, v6) => selector_members(m, sel, *v6),
            MemberSpec::NamedPort(sel, proto, port) => named_port_members(m, sel, proto, port),
        }
    }
}

/// An expected set of a node whose members are filled in once all nodes are built.
struct PendingSet {
    set: String,
    key: MemberSpecKey,
    spec: MemberSpec,
}

/// The IP sets the active policies' rules need; their members are left to compute once
/// for all nodes (returned as pending).
fn expected_sets(m: &Model<'_>, node: &mut NodeModel<'_>) -> Vec<PendingSet> {
    let version: CalicoVersion = m.calico_version();
    let want_v6 = node.ip6tables.is_some()
        || node
            .ipsets
            .is_some_and(|d| d.data.sets.iter().any(|s| s.name.starts_with("cali6")));
    let mut sets: BTreeMap<String, ExpectedSet> = BTreeMap::new();
    let mut pending = Vec::new();
    for &pi in &node.active_policies {
        let p = &m.policies[pi];
        for r in &p.rules {
            if !p.types.governs(r.direction) {
                continue;
            }
            for (side_name, side) in [("source", &r.src), ("destination", &r.dst)] {
                let use_ = SetUse {
                    policy: pi,
                    direction: r.direction,
                    rule: r.index,
                    side: side_name,
                };
                let named: Vec<&str> = side.named_ports().collect();
                let mut plain: Vec<&Selector> = Vec::new();
                if let Some(pos) = &side.positive
                    && (named.is_empty() || side.has_numeric_ports())
                {
                    plain.push(pos);
                }
                if let Some(neg) = &side.negated {
                    plain.push(neg);
                }
                for sel in plain {
                    let id = sel.unique_id();
                    for v6 in [false, true] {
                        if v6 && !want_v6 || r.ip_version == Some(if v6 { 4 } else { 6 }) {
                            continue;
                        }
                        let name = names::ipset_main_name(&id, if v6 { 6 } else { 4 });
                        sets.entry(name.clone())
                            .or_insert_with(|| {
                                pending.push(PendingSet {
                                    set: name.clone(),
                                    key: MemberSpecKey::Selector(id.clone(), v6),
                                    spec: MemberSpec::Selector(sel.clone(), v6),
                                });
                                ExpectedSet {
                                    name,
                                    id: id.clone(),
                                    selector: sel.canonical().to_string(),
                                    ipv6: v6,
                                    members: Arc::default(),
                                    used_by: Vec::new(),
                                }
                            })
                            .used_by
                            .push(use_.clone());
                    }
                }
                // Named ports: one `hash:ip,port` set per port name, filtered by the selector.
                for port in named {
                    // No positive selector: Felix filters by all().
                    let base = side
                        .positive
                        .clone()
                        .unwrap_or_else(|| Selector::from_node(crate::calico::selector::Node::All));
                    let proto = names::named_port_protocol(r.protocol.as_deref(), version);
                    let base_id = base.unique_id();
                    let id =
                        names::named_port_ipset_id(&base_id, r.protocol.as_deref(), port, version);
                    let name = names::ipset_main_name(&id, 4);
                    sets.entry(name.clone())
                        .or_insert_with(|| {
                            let selector =
                                format!("{} (named port {port}/{proto})", base.canonical());
                            pending.push(PendingSet {
                                set: name.clone(),
                                key: MemberSpecKey::NamedPort(base_id, proto, port.to_string()),
                                spec: MemberSpec::NamedPort(base, proto, port.to_string()),
                            });
                            ExpectedSet {
                                name,
                                id,
                                selector,
                                ipv6: false,
                                members: Arc::default(),
                                used_by: Vec::new(),
                            }
                        })
                        .used_by
                        .push(use_.clone());
                }
            }
        }
    }
    node.expected_sets = sets;
    pending
}

fn index_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// Members of a selector's set: every matching endpoint's and network set's addresses (the
/// first contributor of an address is the one named).
fn selector_members(m: &Model<'_>, sel: &Selector, v6: bool) -> ExpectedMembers {
    let (eps, sets) = m.members_of(sel);
    let mut out = Vec::new();
    for e in eps {
        let ep = &m.endpoints[e];
        for net in ep.ips_of(v6) {
            out.push((Member::from_net(net), Source::Endpoint(index_u32(e))));
        }
    }
    for s in sets {
        let ns = &m.net_sets[s];
        for net in ns.nets.iter().filter(|n| n.addr().is_ipv6() == v6) {
            out.push((Member::from_net(net), Source::NetSet(index_u32(s))));
        }
    }
    ExpectedMembers::new(out, true)
}

/// Members of a named-port set: `ip,proto:port` of every matching endpoint that declares the
/// named port (with `any`, every protocol it declares it for). The last contributor of a
/// member is the one named.
fn named_port_members(m: &Model<'_>, sel: &Selector, proto: &str, port: &str) -> ExpectedMembers {
    let (eps, _) = m.members_of(sel);
    let mut out = Vec::new();
    for e in eps {
        let ep = &m.endpoints[e];
        for np in ep
            .ports
            .iter()
            .filter(|p| p.name == port && (proto == "any" || p.protocol == proto))
        {
            for net in ep.ips_of(false) {
                out.push((
                    Member::port(net.addr(), &np.protocol, np.port),
                    Source::Endpoint(index_u32(e)),
                ));
            }
        }
    }
    ExpectedMembers::new(out, false)
}

/// An IP set as the dump has it.
pub struct ActualSet<'n, 'b> {
    pub set: &'b ipset::IpSet,
    /// Members normalised like `ipset save` prints them, sorted, with their lines.
    pub members: &'n DumpedMembers<'b>,
}

impl<'b> NodeModel<'b> {
    /// The dumped IP set with this name, members normalised like `ipset save` prints them.
    pub fn actual_set(&self, name: &str) -> Option<ActualSet<'_, 'b>> {
        let dump = self.ipsets?.data;
        let i = *dump.index.get(name)?;
        Some(ActualSet {
            set: dump.sets.get(i)?,
            members: self.dumped_sets.get(i)?,
        })
    }
}

impl Model<'_> {
    /// Who contributes an expected member: the endpoint's or network set's key.
    pub fn source_key(&self, source: Source) -> &str {
        match source {
            Source::Endpoint(i) => self
                .endpoints
                .get(i as usize)
                .map_or("", |e| e.key.as_str()),
            Source::NetSet(i) => self.net_sets.get(i as usize).map_or("", |n| n.key.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_policy_selecting_endpoints_on_two_nodes_is_active_on_both_and_no_third() {
        // Endpoints 0, 1 on node a; 2 on node b; 3 on node c.
        // Policy 0 selects 1 and 2; policy 1 selects 3; policy 2 (not enforced) selects 0;
        // policy 3 selects nothing but must be everywhere.
        let policy_endpoints = vec![vec![1, 2], vec![3], vec![0], vec![]];
        let by_endpoint = invert(&policy_endpoints, 4, |pi| pi != 2);
        assert_eq!(by_endpoint, [vec![], vec![0], vec![0], vec![1]]);
        let everywhere = [3];
        assert_eq!(active_policies(&by_endpoint, &everywhere, &[0, 1]), [0, 3]);
        assert_eq!(active_policies(&by_endpoint, &everywhere, &[2]), [0, 3]);
        assert_eq!(active_policies(&by_endpoint, &everywhere, &[3]), [1, 3]);
        assert_eq!(active_policies(&by_endpoint, &[], &[]), Vec::<usize>::new());
    }

    #[test]
    fn every_node_of_the_demo_bundle_has_the_policies_that_select_its_endpoints() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/bundles/calico-bundle-demo-20261125T140215Z");
        let bundle = crate::bundle::Bundle::open(&dir).expect("demo bundle");
        let m = Model::build(&bundle);
        assert!(m.nodes.len() >= 2);
        let mut seen_active = 0;
        for node in &m.nodes {
            // The definition, by a full scan.
            let local: Vec<usize> = (0..m.endpoints.len())
                .filter(|&e| m.endpoints[e].node.as_deref() == Some(node.name.as_str()))
                .collect();
            let active: Vec<usize> = (0..m.policies.len())
                .filter(|&pi| {
                    let p = &m.policies[pi];
                    p.enforced()
                        && (m.policy_endpoints[pi].iter().any(|e| local.contains(e))
                            || p.performance_hints
                                .iter()
                                .any(|h| h == "AssumeNeededOnEveryNode"))
                })
                .collect();
            assert_eq!(node.local_endpoints, local, "{}", node.name);
            assert_eq!(node.active_policies, active, "{}", node.name);
            seen_active += active.len();
        }
        assert!(seen_active > 0);
    }
}
