//! Policy order as Felix computes it (`felix/calc/policy_sorter.go`) and the layout of an
//! endpoint chain (`cali-tw-`/`cali-fw-`/`cali-th-`/`cali-fh-`…) that follows from it, per
//! Calico version: which tiers come first, which policies in which order, where policies are
//! grouped, and every rule Felix writes around the jumps (conntrack, mark clearing, end-of-tier
//! drops, profiles). The result is data (steps plus Felix-form rules) that the analyzer can
//! compare with a dumped chain, or hash with `render::rule_hashes`.
//!
//! Which policies apply to an endpoint (selector matching) is decided elsewhere; these
//! functions take the matching policies as given. QoS rate/connection-limit rules (v3.30+,
//! pod annotations) are not modelled.

use std::cmp::Ordering;

use serde::Serialize;

use super::names::{
    CHAIN_FAILSAFE_IN, CHAIN_FAILSAFE_OUT, CalicoVersion, DEFAULT_TIER, Direction, FelixPolicyKey,
    HOST_FROM_ENDPOINT_FORWARD_PREFIX, HOST_FROM_ENDPOINT_PREFIX, HOST_TO_ENDPOINT_FORWARD_PREFIX,
    HOST_TO_ENDPOINT_PREFIX, WORKLOAD_FROM_ENDPOINT_PREFIX, WORKLOAD_TO_ENDPOINT_PREFIX,
    endpoint_chain_name, go_hex, nflog_end_of_tier_drop, nflog_end_of_tier_pass,
    nflog_no_match_profile, policy_chain_name, policy_group_chain_name, profile_chain_name,
};
use super::render::{FelixRule, RenderConfig};

// ---------------------------------------------------------------------------------------------
// Tiers and policies
// ---------------------------------------------------------------------------------------------

/// What a tier does with packets no policy in it decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum TierDefaultAction {
    #[default]
    Deny,
    Pass,
}

/// A tier as the sorter sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SortableTier {
    pub name: String,
    pub order: Option<f64>,
    /// False when policies name a tier that does not exist: such tiers sort last.
    pub valid: bool,
    pub default_action: TierDefaultAction,
}

/// The order and default action Calico gives the tiers it creates itself.
pub fn well_known_tier(name: &str) -> Option<(f64, TierDefaultAction)> {
    match name {
        "default" => Some((1_000_000.0, TierDefaultAction::Deny)),
        "adminnetworkpolicy" | "kube-admin" => Some((1_000.0, TierDefaultAction::Pass)),
        "baselineadminnetworkpolicy" | "kube-baseline" => {
            Some((10_000_000.0, TierDefaultAction::Pass))
        }
        _ => None,
    }
}

impl SortableTier {
    /// A tier read from a Tier resource.
    pub fn new(name: &str, order: Option<f64>, default_action: TierDefaultAction) -> Self {
        SortableTier {
            name: name.to_string(),
            order,
            valid: true,
            default_action,
        }
    }

    /// A tier known only by name: Calico's own tiers get their built-in order and action;
    /// any other name is treated as a tier with no resource (invalid, sorted last).
    pub fn from_name(name: &str) -> Self {
        match well_known_tier(name) {
            Some((order, action)) => SortableTier::new(name, Some(order), action),
            None => SortableTier {
                name: name.to_string(),
                order: None,
                valid: false,
                default_action: TierDefaultAction::Deny,
            },
        }
    }
}

fn cmp_f64(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

/// `TierLess`: valid tiers first, then by order (nil last), then by name.
pub fn tier_cmp(a: &SortableTier, b: &SortableTier) -> Ordering {
    b.valid
        .cmp(&a.valid)
        .then_with(|| match (a.order, b.order) {
            (Some(x), Some(y)) => cmp_f64(x, y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .then_with(|| a.name.cmp(&b.name))
}

pub fn sort_tiers(tiers: &mut [SortableTier]) {
    tiers.sort_by(tier_cmp);
}

/// Which directions a policy governs inside Felix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PolicyTypes {
    pub ingress: bool,
    pub egress: bool,
}

impl PolicyTypes {
    /// Felix's reading of `types`: empty means both (back-compatibility).
    pub fn from_felix(types: &[String]) -> Self {
        if types.is_empty() {
            return PolicyTypes {
                ingress: true,
                egress: true,
            };
        }
        PolicyTypes {
            ingress: types.iter().any(|t| t.eq_ignore_ascii_case("ingress")),
            egress: types.iter().any(|t| t.eq_ignore_ascii_case("egress")),
        }
    }

    /// What clientv3 / the API server stores when `types` is empty: Ingress when there are no
    /// egress rules, Egress when there are egress rules but no ingress rules, else both.
    pub fn clientv3_default(
        types: &[String],
        has_ingress_rules: bool,
        has_egress_rules: bool,
    ) -> Self {
        if !types.is_empty() {
            return PolicyTypes::from_felix(types);
        }
        if !has_egress_rules {
            PolicyTypes {
                ingress: true,
                egress: false,
            }
        } else if !has_ingress_rules {
            PolicyTypes {
                ingress: false,
                egress: true,
            }
        } else {
            PolicyTypes {
                ingress: true,
                egress: true,
            }
        }
    }

    pub fn governs(&self, dir: Direction) -> bool {
        match dir {
            Direction::Ingress => self.ingress,
            Direction::Egress => self.egress,
        }
    }
}

/// A policy as the sorter sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SortablePolicy {
    pub key: FelixPolicyKey,
    pub order: Option<f64>,
    pub types: PolicyTypes,
    /// The normalised policy selector; consecutive policies with the same one form a
    /// policy group (v3.28+).
    pub selector: String,
}

impl SortablePolicy {
    pub fn new(
        key: FelixPolicyKey,
        order: Option<f64>,
        types: PolicyTypes,
        selector: &str,
    ) -> Self {
        SortablePolicy {
            key,
            order,
            types,
            selector: selector.to_string(),
        }
    }
}

/// `PolKVLess` of `version`: by order (missing last), ties by v1 name up to v3.31 and by
/// `name/namespace/kind` from v3.32.
pub fn policy_cmp(a: &SortablePolicy, b: &SortablePolicy, version: CalicoVersion) -> Ordering {
    let by_order = if version.keys_policies_by_kind() {
        // A missing order is +Inf, equal to an explicit +Inf.
        cmp_f64(
            a.order.unwrap_or(f64::INFINITY),
            b.order.unwrap_or(f64::INFINITY),
        )
    } else {
        match (a.order, b.order) {
            (Some(x), Some(y)) => cmp_f64(x, y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
    };
    by_order.then_with(|| {
        if version.keys_policies_by_kind() {
            let s = |p: &SortablePolicy| {
                format!(
                    "{}/{}/{}",
                    p.key.name,
                    p.key.namespace.as_deref().unwrap_or(""),
                    p.key.kind.as_str()
                )
            };
            s(a).cmp(&s(b))
        } else {
            a.key.v1_name.cmp(&b.key.v1_name)
        }
    })
}

pub fn sort_policies(policies: &mut [SortablePolicy], version: CalicoVersion) {
    policies.sort_by(|a, b| policy_cmp(a, b, version));
}

/// One tier's policies for an endpoint, in Felix's order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TierPolicies {
    pub tier: SortableTier,
    pub policies: Vec<SortablePolicy>,
}

impl TierPolicies {
    /// The policies of one direction, in order.
    pub fn for_direction(&self, dir: Direction) -> Vec<&SortablePolicy> {
        self.policies
            .iter()
            .filter(|p| p.types.governs(dir))
            .collect()
    }
}

/// Felix's ordering of the policies that apply to one endpoint. Up to v3.28 Felix has a
/// single tier (`default`) holding every policy; staged policies only reach Felix from v3.30.
/// `tiers` are the Tier resources known (missing ones are treated as invalid, except
/// Calico's built-in tiers, which get their defaults).
pub fn order_policies(
    tiers: &[SortableTier],
    policies: &[SortablePolicy],
    version: CalicoVersion,
) -> Vec<TierPolicies> {
    let policies: Vec<SortablePolicy> = policies
        .iter()
        .filter(|p| version.has_staged_policies() || !p.key.kind.is_staged())
        .cloned()
        .collect();
    if !version.has_dataplane_tiers() {
        if policies.is_empty() {
            return Vec::new();
        }
        let mut ps = policies;
        sort_policies(&mut ps, version);
        let tier = tiers
            .iter()
            .find(|t| t.name == DEFAULT_TIER)
            .cloned()
            .unwrap_or_else(|| SortableTier::from_name(DEFAULT_TIER));
        return vec![TierPolicies { tier, policies: ps }];
    }
    let mut out: Vec<TierPolicies> = Vec::new();
    for p in policies {
        match out.iter_mut().find(|t| t.tier.name == p.key.tier) {
            Some(t) => t.policies.push(p),
            None => {
                let tier = tiers
                    .iter()
                    .find(|t| t.name == p.key.tier)
                    .cloned()
                    .unwrap_or_else(|| SortableTier::from_name(&p.key.tier));
                out.push(TierPolicies {
                    tier,
                    policies: vec![p],
                });
            }
        }
    }
    out.sort_by(|a, b| tier_cmp(&a.tier, &b.tier));
    for t in &mut out {
        sort_policies(&mut t.policies, version);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Policy groups
// ---------------------------------------------------------------------------------------------

/// A run of consecutive policies sharing a selector (one policy each before v3.28).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyGroup {
    pub tier: String,
    pub direction: Direction,
    pub selector: String,
    pub policies: Vec<FelixPolicyKey>,
}

impl PolicyGroup {
    fn non_staged(&self) -> usize {
        self.policies.iter().filter(|p| !p.kind.is_staged()).count()
    }

    /// A group with at most one programmed policy is inlined: direct jumps.
    pub fn inlined(&self, version: CalicoVersion) -> bool {
        !version.has_policy_groups() || self.non_staged() <= 1
    }

    pub fn chain_name(&self, version: CalicoVersion) -> String {
        policy_group_chain_name(
            &self.tier,
            &self.selector,
            self.direction,
            &self.policies,
            version,
        )
    }
}

/// `groupPolicies`: consecutive policies with an identical selector form one group.
pub fn group_policies(
    tier: &str,
    dir: Direction,
    policies: &[&SortablePolicy],
    version: CalicoVersion,
) -> Vec<PolicyGroup> {
    let mut out: Vec<PolicyGroup> = Vec::new();
    for p in policies {
        let join =
            version.has_policy_groups() && out.last().is_some_and(|g| g.selector == p.selector);
        if join {
            if let Some(g) = out.last_mut() {
                g.policies.push(p.key.clone());
            }
        } else {
            out.push(PolicyGroup {
                tier: tier.to_string(),
                direction: dir,
                selector: p.selector.clone(),
                policies: vec![p.key.clone()],
            });
        }
    }
    out
}

/// The rules of a policy-group chain (`PolicyGroupToIptablesChains`): a jump per
/// programmed policy, each after the first in a run of five guarded by "no verdict yet",
/// and a "Return on verdict" before every fifth.
pub fn policy_group_chain_rules(
    group: &PolicyGroup,
    version: CalicoVersion,
    cfg: &RenderConfig,
    nft: bool,
) -> Vec<FelixRule> {
    let verdict = cfg.marks.pass | cfg.marks.accept;
    let mut out = Vec::new();
    let programmed = group.policies.iter().filter(|p| !p.kind.is_staged());
    for (count, p) in programmed.enumerate() {
        let block_start = count.is_multiple_of(5);
        if count != 0 && block_start {
            out.push(
                FelixRule::new(
                    format!("-m mark ! --mark 0/{}", go_hex(verdict)),
                    "--jump RETURN",
                )
                .with_comment("Return on verdict"),
            );
        }
        let m = if block_start {
            String::new()
        } else {
            format!("-m mark --mark 0/{}", go_hex(verdict))
        };
        out.push(FelixRule::new(
            m,
            format!(
                "--jump {}",
                policy_chain_name(group.direction, p, version, nft)
            ),
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Endpoint chains
// ---------------------------------------------------------------------------------------------

/// The kind of endpoint chain (`endpointChainType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ChainType {
    Normal,
    /// raw table, untracked policy.
    Untracked,
    /// mangle table, pre-DNAT policy.
    PreDnat,
    /// filter table, apply-on-forward host endpoint chains.
    Forward,
}

/// What the conntrack "established" rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AllowAction {
    Accept,
    /// `FilterAllowAction=RETURN` (and the mangle/preDNAT chains): mark accepted, return.
    Return,
}

/// Everything about one endpoint chain except its policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointChainSpec {
    pub chain: String,
    /// The policy direction this chain enforces.
    pub dir: Direction,
    pub chain_type: ChainType,
    pub failsafe_chain: Option<String>,
    pub admin_up: bool,
    pub allow_action: AllowAction,
    /// `Some(port)` on `cali-fw-` chains unless `AllowVXLANPacketsFromWorkloads`.
    pub drop_vxlan_port: Option<u16>,
    /// True on `cali-fw-` chains unless `AllowIPIPPacketsFromWorkloads`.
    pub drop_ipip: bool,
    /// Profile IDs, in order (normal chains only).
    pub profiles: Vec<String>,
    pub disable_conntrack_invalid: bool,
}

impl EndpointChainSpec {
    fn base(chain: String, dir: Direction, chain_type: ChainType) -> Self {
        EndpointChainSpec {
            chain,
            dir,
            chain_type,
            failsafe_chain: None,
            admin_up: true,
            allow_action: AllowAction::Accept,
            drop_vxlan_port: None,
            drop_ipip: false,
            profiles: Vec::new(),
            disable_conntrack_invalid: false,
        }
    }

    /// `cali-tw-<iface>` (ingress) or `cali-fw-<iface>` (egress, with the default VXLAN/IPIP
    /// drops).
    pub fn workload(
        iface: &str,
        dir: Direction,
        profiles: &[String],
        version: CalicoVersion,
        nft: bool,
    ) -> Self {
        let prefix = match dir {
            Direction::Ingress => WORKLOAD_TO_ENDPOINT_PREFIX,
            Direction::Egress => WORKLOAD_FROM_ENDPOINT_PREFIX,
        };
        let mut s = Self::base(
            endpoint_chain_name(prefix, iface, version, nft),
            dir,
            ChainType::Normal,
        );
        s.profiles = profiles.to_vec();
        if dir == Direction::Egress {
            s.drop_vxlan_port = Some(4789);
            s.drop_ipip = true;
        }
        s
    }

    /// Host endpoint filter chains: `cali-fh-` (ingress, failsafe-in) and `cali-th-`
    /// (egress, failsafe-out).
    pub fn host(
        iface: &str,
        dir: Direction,
        profiles: &[String],
        version: CalicoVersion,
        nft: bool,
    ) -> Self {
        let (prefix, failsafe) = match dir {
            Direction::Ingress => (HOST_FROM_ENDPOINT_PREFIX, CHAIN_FAILSAFE_IN),
            Direction::Egress => (HOST_TO_ENDPOINT_PREFIX, CHAIN_FAILSAFE_OUT),
        };
        let mut s = Self::base(
            endpoint_chain_name(prefix, iface, version, nft),
            dir,
            ChainType::Normal,
        );
        s.failsafe_chain = Some(failsafe.to_string());
        s.profiles = profiles.to_vec();
        s
    }

    /// Apply-on-forward host endpoint chains `cali-fhfw-`/`cali-thfw-` (no failsafes).
    pub fn host_forward(iface: &str, dir: Direction, version: CalicoVersion, nft: bool) -> Self {
        let prefix = match dir {
            Direction::Ingress => HOST_FROM_ENDPOINT_FORWARD_PREFIX,
            Direction::Egress => HOST_TO_ENDPOINT_FORWARD_PREFIX,
        };
        Self::base(
            endpoint_chain_name(prefix, iface, version, nft),
            dir,
            ChainType::Forward,
        )
    }

    /// raw-table (untracked) host endpoint chains: no conntrack rules, no profiles.
    pub fn host_untracked(iface: &str, dir: Direction, version: CalicoVersion, nft: bool) -> Self {
        let mut s = Self::host(iface, dir, &[], version, nft);
        s.chain_type = ChainType::Untracked;
        s
    }

    /// mangle-table pre-DNAT chain `cali-fh-<iface>` (ingress only).
    pub fn host_pre_dnat(iface: &str, version: CalicoVersion, nft: bool) -> Self {
        let mut s = Self::host(iface, Direction::Ingress, &[], version, nft);
        s.chain_type = ChainType::PreDnat;
        s.allow_action = AllowAction::Return;
        s
    }
}

/// What each rule of an endpoint chain is for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum LayoutStep {
    AdminDown,
    ConntrackMarkAccepted,
    ConntrackEstablished,
    ConntrackInvalid,
    Failsafe {
        chain: String,
    },
    ClearMarks,
    DropVxlanFromWorkload,
    DropIpipFromWorkload,
    /// ≤ v3.27.
    StartOfPolicies,
    /// v3.29+.
    StartOfTier {
        tier: String,
    },
    JumpPolicy {
        tier: String,
        policy: FelixPolicyKey,
        chain: String,
    },
    JumpPolicyGroup {
        tier: String,
        chain: String,
        policies: Vec<FelixPolicyKey>,
    },
    NoTrackIfAccepted,
    ReturnIfPolicyAccepted,
    /// Flow logs only (v3.30+): `DP?|tier` before the drop, or `PP?|tier` when every policy
    /// of the tier is staged.
    NflogEndOfTier {
        tier: String,
        prefix: String,
    },
    /// The drop after a tier's policies (the whole policy section before v3.29).
    EndOfTierDrop {
        tier: Option<String>,
    },
    AllowForwardByDefault,
    ReturnForwardAccepted,
    JumpProfile {
        profile: String,
        chain: String,
    },
    ReturnIfProfileAccepted,
    NflogNoProfileMatched {
        prefix: String,
    },
    DropIfNoProfilesMatched,
}

/// One expected rule of an endpoint chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpectedRule {
    pub step: LayoutStep,
    pub rule: FelixRule,
}

/// The rules Felix writes into one endpoint chain (`endpointIptablesChain`), given the tiers
/// and policies that apply to the endpoint (from [`order_policies`]). `nft` only changes the
/// length limit of the chain names jumped to; the rules are in iptables form.
pub fn endpoint_chain_layout(
    spec: &EndpointChainSpec,
    tiers: &[TierPolicies],
    version: CalicoVersion,
    cfg: &RenderConfig,
    nft: bool,
) -> Vec<ExpectedRule> {
    let m = &cfg.marks;
    let deny = cfg.deny_action();
    let mut out: Vec<ExpectedRule> = Vec::new();
    let mut push = |step: LayoutStep, rule: FelixRule| out.push(ExpectedRule { step, rule });
    let mark = |bit: u32| format!("-m mark --mark {}/{}", go_hex(bit), go_hex(bit));
    let clear_match = |bit: u32| format!("-m mark --mark 0/{}", go_hex(bit));
    let clear = |bit: u32| format!("--jump MARK --set-mark 0/{}", go_hex(bit));

    if !spec.admin_up {
        push(
            LayoutStep::AdminDown,
            FelixRule::new("", deny.fragment()).with_comment("Endpoint admin disabled"),
        );
        return out;
    }
    if spec.chain_type != ChainType::Untracked {
        if spec.allow_action != AllowAction::Accept {
            push(
                LayoutStep::ConntrackMarkAccepted,
                FelixRule::new(
                    "-m conntrack --ctstate RELATED,ESTABLISHED",
                    format!(
                        "--jump MARK --set-mark {}/{}",
                        go_hex(m.accept),
                        go_hex(m.accept)
                    ),
                ),
            );
        }
        let allow = match spec.allow_action {
            AllowAction::Accept => "--jump ACCEPT",
            AllowAction::Return => "--jump RETURN",
        };
        push(
            LayoutStep::ConntrackEstablished,
            FelixRule::new("-m conntrack --ctstate RELATED,ESTABLISHED", allow),
        );
        if !spec.disable_conntrack_invalid {
            push(
                LayoutStep::ConntrackInvalid,
                FelixRule::new("-m conntrack --ctstate INVALID", deny.fragment()),
            );
        }
    }
    if let Some(fs) = &spec.failsafe_chain {
        push(
            LayoutStep::Failsafe { chain: fs.clone() },
            FelixRule::new("", format!("--jump {fs}")),
        );
    }
    let clear_bits = if version.has_policy_groups() {
        m.accept | m.pass
    } else {
        m.accept
    };
    push(
        LayoutStep::ClearMarks,
        FelixRule::new("", clear(clear_bits)),
    );
    if let Some(port) = spec.drop_vxlan_port {
        push(
            LayoutStep::DropVxlanFromWorkload,
            FelixRule::new(
                format!("-p 17 -m multiport --destination-ports {port}"),
                deny.fragment(),
            )
            .with_comment(format!(
                "{} VXLAN encapped packets originating in workloads",
                deny.word()
            )),
        );
    }
    if spec.drop_ipip {
        push(
            LayoutStep::DropIpipFromWorkload,
            FelixRule::new("-p 4", deny.fragment()).with_comment(format!(
                "{} IPinIP encapped packets originating in workloads",
                deny.word()
            )),
        );
    }

    let dir = spec.dir;
    let normal_or_forward = matches!(spec.chain_type, ChainType::Normal | ChainType::Forward);
    let jumps = |group: &PolicyGroup| -> Vec<(LayoutStep, String)> {
        if group.inlined(version) {
            group
                .policies
                .iter()
                .filter(|p| !p.kind.is_staged())
                .map(|p| {
                    let chain = policy_chain_name(dir, p, version, nft);
                    (
                        LayoutStep::JumpPolicy {
                            tier: group.tier.clone(),
                            policy: p.clone(),
                            chain: chain.clone(),
                        },
                        chain,
                    )
                })
                .collect()
        } else {
            let chain = group.chain_name(version);
            vec![(
                LayoutStep::JumpPolicyGroup {
                    tier: group.tier.clone(),
                    chain: chain.clone(),
                    policies: group.policies.clone(),
                },
                chain,
            )]
        }
    };
    let push_jump = |out: &mut Vec<ExpectedRule>, step: LayoutStep, chain: &str| {
        out.push(ExpectedRule {
            step,
            rule: FelixRule::new(clear_match(m.pass), format!("--jump {chain}")),
        });
        if spec.chain_type == ChainType::Untracked {
            out.push(ExpectedRule {
                step: LayoutStep::NoTrackIfAccepted,
                rule: FelixRule::new(mark(m.accept), "--jump NOTRACK"),
            });
        }
        out.push(ExpectedRule {
            step: LayoutStep::ReturnIfPolicyAccepted,
            rule: FelixRule::new(mark(m.accept), "--jump RETURN")
                .with_comment("Return if policy accepted"),
        });
    };

    let mut any_policy_section = false;
    if version.has_dataplane_tiers() {
        for t in tiers {
            let pols = t.for_direction(dir);
            if pols.is_empty() {
                continue;
            }
            let groups = group_policies(&t.tier.name, dir, &pols, version);
            out.push(ExpectedRule {
                step: LayoutStep::StartOfTier {
                    tier: t.tier.name.clone(),
                },
                rule: FelixRule::new("", clear(m.pass))
                    .with_comment(format!("Start of tier {}", t.tier.name)),
            });
            let mut end_of_tier_drop = false;
            for g in &groups {
                // Before v3.30 no staged policy reaches Felix; from v3.30 a group of only
                // staged policies renders nothing and does not force the end-of-tier drop.
                let non_staged = g.policies.iter().any(|p| !p.kind.is_staged());
                if non_staged || !version.has_staged_policies() {
                    end_of_tier_drop = true;
                }
                for (step, chain) in jumps(g) {
                    push_jump(&mut out, step, &chain);
                }
            }
            if normal_or_forward {
                let pass = t.tier.default_action == TierDefaultAction::Pass;
                if version.has_drop_mark() {
                    if end_of_tier_drop && !pass {
                        if cfg.flow_logs {
                            let prefix = nflog_end_of_tier_drop(dir, &t.tier.name);
                            out.push(ExpectedRule {
                                step: LayoutStep::NflogEndOfTier {
                                    tier: t.tier.name.clone(),
                                    prefix: prefix.clone(),
                                },
                                rule: FelixRule::new(
                                    clear_match(m.pass),
                                    cfg.nflog_action(dir.nflog_group(), &prefix),
                                ),
                            });
                        }
                        out.push(ExpectedRule {
                            step: LayoutStep::EndOfTierDrop {
                                tier: Some(t.tier.name.clone()),
                            },
                            rule: FelixRule::new(clear_match(m.pass), deny.fragment())
                                .with_comment(format!(
                                    "End of tier {}. {} if no policies passed packet",
                                    t.tier.name,
                                    deny.word()
                                )),
                        });
                    } else if cfg.flow_logs {
                        let prefix = nflog_end_of_tier_pass(dir, &t.tier.name);
                        out.push(ExpectedRule {
                            step: LayoutStep::NflogEndOfTier {
                                tier: t.tier.name.clone(),
                                prefix: prefix.clone(),
                            },
                            rule: FelixRule::new(
                                clear_match(m.pass),
                                cfg.nflog_action(dir.nflog_group(), &prefix),
                            ),
                        });
                    }
                } else if !pass {
                    out.push(ExpectedRule {
                        step: LayoutStep::EndOfTierDrop {
                            tier: Some(t.tier.name.clone()),
                        },
                        rule: FelixRule::new(clear_match(m.pass), deny.fragment())
                            .with_comment(format!("{} if no policies passed packet", deny.word())),
                    });
                }
            }
        }
        any_policy_section = !tiers.is_empty();
    } else {
        // One implicit tier.
        let pols: Vec<&SortablePolicy> = tiers.iter().flat_map(|t| t.for_direction(dir)).collect();
        if !pols.is_empty() {
            any_policy_section = true;
            if !version.has_policy_groups() {
                out.push(ExpectedRule {
                    step: LayoutStep::StartOfPolicies,
                    rule: FelixRule::new("", clear(m.pass)).with_comment("Start of policies"),
                });
            }
            for g in group_policies(DEFAULT_TIER, dir, &pols, version) {
                for (step, chain) in jumps(&g) {
                    push_jump(&mut out, step, &chain);
                }
            }
            if normal_or_forward {
                out.push(ExpectedRule {
                    step: LayoutStep::EndOfTierDrop { tier: None },
                    rule: FelixRule::new(clear_match(m.pass), deny.fragment())
                        .with_comment(format!("{} if no policies passed packet", deny.word())),
                });
            }
        }
    }
    if !any_policy_section && spec.chain_type == ChainType::Forward {
        out.push(ExpectedRule {
            step: LayoutStep::AllowForwardByDefault,
            rule: FelixRule::new(
                "",
                format!(
                    "--jump MARK --set-mark {}/{}",
                    go_hex(m.accept),
                    go_hex(m.accept)
                ),
            )
            .with_comment("Allow forwarded traffic by default"),
        });
        out.push(ExpectedRule {
            step: LayoutStep::ReturnForwardAccepted,
            rule: FelixRule::new("", "--jump RETURN")
                .with_comment("Return for accepted forward traffic"),
        });
    }
    if spec.chain_type == ChainType::Normal {
        for p in &spec.profiles {
            let chain = profile_chain_name(dir, p, version, nft);
            out.push(ExpectedRule {
                step: LayoutStep::JumpProfile {
                    profile: p.clone(),
                    chain: chain.clone(),
                },
                rule: FelixRule::new("", format!("--jump {chain}")),
            });
            out.push(ExpectedRule {
                step: LayoutStep::ReturnIfProfileAccepted,
                rule: FelixRule::new(mark(m.accept), "--jump RETURN")
                    .with_comment("Return if profile accepted"),
            });
        }
        if cfg.flow_logs && version.has_drop_mark() {
            let prefix = nflog_no_match_profile(dir);
            out.push(ExpectedRule {
                step: LayoutStep::NflogNoProfileMatched {
                    prefix: prefix.clone(),
                },
                rule: FelixRule::new("", cfg.nflog_action(dir.nflog_group(), &prefix)),
            });
        }
        out.push(ExpectedRule {
            step: LayoutStep::DropIfNoProfilesMatched,
            rule: FelixRule::new("", deny.fragment())
                .with_comment(format!("{} if no profiles matched", deny.word())),
        });
    }
    out
}

/// The policy-group chains an endpoint chain jumps to, with their rules.
pub fn policy_group_chains(
    tiers: &[TierPolicies],
    dir: Direction,
    version: CalicoVersion,
    cfg: &RenderConfig,
    nft: bool,
) -> Vec<(String, Vec<FelixRule>)> {
    let mut out: Vec<(String, Vec<FelixRule>)> = Vec::new();
    let groups: Vec<PolicyGroup> = if version.has_dataplane_tiers() {
        tiers
            .iter()
            .flat_map(|t| group_policies(&t.tier.name, dir, &t.for_direction(dir), version))
            .collect()
    } else {
        let pols: Vec<&SortablePolicy> = tiers.iter().flat_map(|t| t.for_direction(dir)).collect();
        group_policies(DEFAULT_TIER, dir, &pols, version)
    };
    for g in groups.iter().filter(|g| !g.inlined(version)) {
        let name = g.chain_name(version);
        if !out.iter().any(|(n, _)| *n == name) {
            out.push((name, policy_group_chain_rules(g, version, cfg, nft)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calico::names::{PolicyKind, PolicyRef};
    use crate::calico::render::rule_hashes;

    fn v(s: &str) -> CalicoVersion {
        CalicoVersion::parse(s).expect("version")
    }

    fn pol(
        kind: PolicyKind,
        name: &str,
        ns: Option<&str>,
        tier: &str,
        order: Option<f64>,
        version: CalicoVersion,
    ) -> SortablePolicy {
        let key = FelixPolicyKey::from_ref(&PolicyRef::new(kind, name, ns, tier), version);
        SortablePolicy::new(key, order, PolicyTypes::from_felix(&[]), "all()")
    }

    fn names(ps: &[SortablePolicy]) -> Vec<String> {
        ps.iter().map(|p| p.key.name.clone()).collect()
    }

    #[test]
    fn tiers_sort_valid_first_then_by_order_with_nil_last_then_by_name() {
        let mut t = vec![
            SortableTier::from_name("zz-missing"),
            SortableTier::new("b", None, TierDefaultAction::Deny),
            SortableTier::from_name("default"),
            SortableTier::new("a", Some(100.0), TierDefaultAction::Deny),
            SortableTier::new("c", Some(100.0), TierDefaultAction::Deny),
            SortableTier::from_name("kube-admin"),
            SortableTier::from_name("kube-baseline"),
        ];
        sort_tiers(&mut t);
        let n: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            n,
            [
                "a",
                "c",
                "kube-admin",
                "default",
                "kube-baseline",
                "b",
                "zz-missing"
            ]
        );
    }

    #[test]
    fn well_known_tiers_have_calicos_orders_and_actions() {
        assert_eq!(
            well_known_tier("default"),
            Some((1_000_000.0, TierDefaultAction::Deny))
        );
        assert_eq!(
            well_known_tier("adminnetworkpolicy"),
            Some((1_000.0, TierDefaultAction::Pass))
        );
        assert_eq!(
            well_known_tier("baselineadminnetworkpolicy"),
            Some((10_000_000.0, TierDefaultAction::Pass))
        );
        assert_eq!(well_known_tier("security"), None);
    }

    #[test]
    fn policies_sort_by_order_with_missing_orders_last() {
        let ver = v("3.31");
        let mut ps = vec![
            pol(
                PolicyKind::GlobalNetworkPolicy,
                "none",
                None,
                "default",
                None,
                ver,
            ),
            pol(
                PolicyKind::GlobalNetworkPolicy,
                "ten",
                None,
                "default",
                Some(10.0),
                ver,
            ),
            pol(
                PolicyKind::GlobalNetworkPolicy,
                "one",
                None,
                "default",
                Some(1.0),
                ver,
            ),
        ];
        sort_policies(&mut ps, ver);
        assert_eq!(names(&ps), ["one", "ten", "none"]);
    }

    #[test]
    fn ties_break_on_v1_name_up_to_3_31_and_on_name_namespace_kind_from_3_32() {
        // NP a in namespace z vs GNP b, same order.
        let old = v("3.31");
        let mut ps = vec![
            pol(
                PolicyKind::NetworkPolicy,
                "a",
                Some("z"),
                "default",
                Some(5.0),
                old,
            ),
            pol(
                PolicyKind::GlobalNetworkPolicy,
                "b",
                None,
                "default",
                Some(5.0),
                old,
            ),
        ];
        sort_policies(&mut ps, old);
        // "default.b" < "z/default.a"
        assert_eq!(names(&ps), ["b", "a"]);
        let new = v("3.32");
        let mut ps = vec![
            pol(
                PolicyKind::GlobalNetworkPolicy,
                "b",
                None,
                "default",
                Some(5.0),
                new,
            ),
            pol(
                PolicyKind::NetworkPolicy,
                "a",
                Some("z"),
                "default",
                Some(5.0),
                new,
            ),
        ];
        sort_policies(&mut ps, new);
        // "a/z/NetworkPolicy" < "b//GlobalNetworkPolicy"
        assert_eq!(names(&ps), ["a", "b"]);
    }

    #[test]
    fn policy_types_default_like_felix_and_like_clientv3() {
        assert_eq!(
            PolicyTypes::from_felix(&[]),
            PolicyTypes {
                ingress: true,
                egress: true
            }
        );
        assert_eq!(
            PolicyTypes::from_felix(&["Egress".to_string()]),
            PolicyTypes {
                ingress: false,
                egress: true
            }
        );
        let d = |i, e| PolicyTypes::clientv3_default(&[], i, e);
        assert_eq!(
            (d(false, false).ingress, d(false, false).egress),
            (true, false)
        );
        assert_eq!(
            (d(true, false).ingress, d(true, false).egress),
            (true, false)
        );
        assert_eq!(
            (d(false, true).ingress, d(false, true).egress),
            (false, true)
        );
        assert_eq!((d(true, true).ingress, d(true, true).egress), (true, true));
    }

    #[test]
    fn up_to_3_28_every_policy_sits_in_one_default_tier() {
        let ver = v("3.28");
        let ps = vec![
            pol(
                PolicyKind::GlobalNetworkPolicy,
                "x",
                None,
                "security",
                Some(2.0),
                ver,
            ),
            pol(
                PolicyKind::GlobalNetworkPolicy,
                "y",
                None,
                "default",
                Some(1.0),
                ver,
            ),
        ];
        let o = order_policies(&[], &ps, ver);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].tier.name, "default");
        assert_eq!(names(&o[0].policies), ["y", "x"]);
    }

    #[test]
    fn from_3_29_policies_are_ordered_within_ordered_tiers() {
        let ver = v("3.30");
        let ps = vec![
            pol(
                PolicyKind::GlobalNetworkPolicy,
                "d1",
                None,
                "default",
                Some(2.0),
                ver,
            ),
            pol(
                PolicyKind::GlobalNetworkPolicy,
                "s1",
                None,
                "security",
                Some(9.0),
                ver,
            ),
            pol(
                PolicyKind::GlobalNetworkPolicy,
                "d0",
                None,
                "default",
                Some(1.0),
                ver,
            ),
        ];
        let tiers = [SortableTier::new(
            "security",
            Some(100.0),
            TierDefaultAction::Pass,
        )];
        let o = order_policies(&tiers, &ps, ver);
        let t: Vec<&str> = o.iter().map(|t| t.tier.name.as_str()).collect();
        assert_eq!(t, ["security", "default"]);
        assert_eq!(names(&o[1].policies), ["d0", "d1"]);
    }

    #[test]
    fn staged_policies_reach_felix_only_from_3_30() {
        let ps = |ver| {
            vec![
                pol(
                    PolicyKind::StagedGlobalNetworkPolicy,
                    "s",
                    None,
                    "default",
                    None,
                    ver,
                ),
                pol(
                    PolicyKind::GlobalNetworkPolicy,
                    "g",
                    None,
                    "default",
                    None,
                    ver,
                ),
            ]
        };
        assert_eq!(
            order_policies(&[], &ps(v("3.29")), v("3.29"))[0]
                .policies
                .len(),
            1
        );
        assert_eq!(
            order_policies(&[], &ps(v("3.30")), v("3.30"))[0]
                .policies
                .len(),
            2
        );
    }

    fn bodies(l: &[ExpectedRule]) -> Vec<String> {
        l.iter()
            .map(|r| {
                let mut s = r.rule.render_body();
                for c in &r.rule.comments {
                    s.push_str(&format!(" #{c}"));
                }
                s
            })
            .collect()
    }

    #[test]
    fn workload_ingress_chain_up_to_3_27_has_one_policy_section() {
        let ver = v("3.27");
        let ps = vec![pol(
            PolicyKind::NetworkPolicy,
            "allow",
            Some("ns"),
            "default",
            None,
            ver,
        )];
        let tiers = order_policies(&[], &ps, ver);
        let profiles = vec!["kns.ns".to_string(), "ksa.ns.default".to_string()];
        let spec =
            EndpointChainSpec::workload("cali12345", Direction::Ingress, &profiles, ver, false);
        assert_eq!(spec.chain, "cali-tw-cali12345");
        let l = endpoint_chain_layout(&spec, &tiers, ver, &RenderConfig::new(ver), false);
        assert_eq!(
            bodies(&l),
            [
                "-m conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
                "-m conntrack --ctstate INVALID --jump DROP",
                "--jump MARK --set-mark 0/0x10000",
                "--jump MARK --set-mark 0/0x20000 #Start of policies",
                "-m mark --mark 0/0x20000 --jump cali-pi-ns/default.allow",
                "-m mark --mark 0x10000/0x10000 --jump RETURN #Return if policy accepted",
                "-m mark --mark 0/0x20000 --jump DROP #Drop if no policies passed packet",
                "--jump cali-pri-kns.ns",
                "-m mark --mark 0x10000/0x10000 --jump RETURN #Return if profile accepted",
                "--jump cali-pri-ksa.ns.default",
                "-m mark --mark 0x10000/0x10000 --jump RETURN #Return if profile accepted",
                "--jump DROP #Drop if no profiles matched",
            ]
        );
    }

    #[test]
    fn workload_egress_chain_from_3_30_has_tiers_and_encap_drops() {
        let ver = v("3.30");
        let ps = vec![
            pol(
                PolicyKind::GlobalNetworkPolicy,
                "sec.p",
                None,
                "sec",
                Some(1.0),
                ver,
            ),
            pol(
                PolicyKind::GlobalNetworkPolicy,
                "d",
                None,
                "default",
                None,
                ver,
            ),
        ];
        let tiers = order_policies(
            &[SortableTier::new(
                "sec",
                Some(10.0),
                TierDefaultAction::Pass,
            )],
            &ps,
            ver,
        );
        let spec =
            EndpointChainSpec::workload("cali1", Direction::Egress, &["kns.a".into()], ver, false);
        let mut cfg = RenderConfig::new(ver);
        cfg.flow_logs = true;
        let l = endpoint_chain_layout(&spec, &tiers, ver, &cfg, false);
        assert_eq!(
            bodies(&l),
            [
                "-m conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
                "-m conntrack --ctstate INVALID --jump DROP",
                "--jump MARK --set-mark 0/0x30000",
                "-p 17 -m multiport --destination-ports 4789 --jump DROP #Drop VXLAN encapped packets originating in workloads",
                "-p 4 --jump DROP #Drop IPinIP encapped packets originating in workloads",
                "--jump MARK --set-mark 0/0x20000 #Start of tier sec",
                "-m mark --mark 0/0x20000 --jump cali-po-sec/sec.p",
                "-m mark --mark 0x10000/0x10000 --jump RETURN #Return if policy accepted",
                // tier "sec" passes by default: no drop, but flow logs record the pass
                "-m mark --mark 0/0x20000 --jump NFLOG --nflog-group 2 --nflog-prefix PPE|sec --nflog-size 80",
                "--jump MARK --set-mark 0/0x20000 #Start of tier default",
                "-m mark --mark 0/0x20000 --jump cali-po-default/default.d",
                "-m mark --mark 0x10000/0x10000 --jump RETURN #Return if policy accepted",
                "-m mark --mark 0/0x20000 --jump NFLOG --nflog-group 2 --nflog-prefix DPE|default --nflog-size 80",
                "-m mark --mark 0/0x20000 --jump DROP #End of tier default. Drop if no policies passed packet",
                "--jump cali-pro-kns.a",
                "-m mark --mark 0x10000/0x10000 --jump RETURN #Return if profile accepted",
                "--jump NFLOG --nflog-group 2 --nflog-prefix DRE --nflog-size 80",
                "--jump DROP #Drop if no profiles matched",
            ]
        );
    }

    #[test]
    fn a_tier_of_only_staged_policies_ends_without_a_drop() {
        let ver = v("3.30");
        let ps = vec![pol(
            PolicyKind::StagedGlobalNetworkPolicy,
            "s",
            None,
            "default",
            None,
            ver,
        )];
        let tiers = order_policies(&[], &ps, ver);
        let spec = EndpointChainSpec::workload("cali1", Direction::Ingress, &[], ver, false);
        let mut cfg = RenderConfig::new(ver);
        let steps = |cfg: &RenderConfig| -> Vec<LayoutStep> {
            endpoint_chain_layout(&spec, &tiers, ver, cfg, false)
                .into_iter()
                .map(|r| r.step)
                .collect()
        };
        let s = steps(&cfg);
        assert!(s.contains(&LayoutStep::StartOfTier {
            tier: "default".into()
        }));
        assert!(
            !s.iter()
                .any(|x| matches!(x, LayoutStep::EndOfTierDrop { .. }))
        );
        assert!(!s.iter().any(|x| matches!(x, LayoutStep::JumpPolicy { .. })));
        cfg.flow_logs = true;
        assert!(steps(&cfg).contains(&LayoutStep::NflogEndOfTier {
            tier: "default".into(),
            prefix: "PPI|default".into()
        }));
    }

    #[test]
    fn policies_with_one_selector_share_a_group_chain_from_3_28() {
        let ver = v("3.28");
        let ps: Vec<SortablePolicy> = (0..6)
            .map(|i| {
                pol(
                    PolicyKind::GlobalNetworkPolicy,
                    &format!("p{i}"),
                    None,
                    "default",
                    Some(i as f64),
                    ver,
                )
            })
            .collect();
        let tiers = order_policies(&[], &ps, ver);
        let spec = EndpointChainSpec::workload("cali1", Direction::Ingress, &[], ver, false);
        let cfg = RenderConfig::new(ver);
        let l = endpoint_chain_layout(&spec, &tiers, ver, &cfg, false);
        let group_jumps: Vec<&ExpectedRule> = l
            .iter()
            .filter(|r| matches!(r.step, LayoutStep::JumpPolicyGroup { .. }))
            .collect();
        assert_eq!(group_jumps.len(), 1);
        let groups = policy_group_chains(&tiers, Direction::Ingress, ver, &cfg, false);
        assert_eq!(groups.len(), 1);
        assert!(group_jumps[0].rule.action.ends_with(&groups[0].0));
        let b: Vec<String> = groups[0].1.iter().map(|r| r.render_body()).collect();
        assert_eq!(
            b,
            [
                "--jump cali-pi-default.p0",
                "-m mark --mark 0/0x30000 --jump cali-pi-default.p1",
                "-m mark --mark 0/0x30000 --jump cali-pi-default.p2",
                "-m mark --mark 0/0x30000 --jump cali-pi-default.p3",
                "-m mark --mark 0/0x30000 --jump cali-pi-default.p4",
                "-m mark ! --mark 0/0x30000 --jump RETURN",
                "--jump cali-pi-default.p5",
            ]
        );
        // v3.27 never groups
        let ver = v("3.27");
        let tiers = order_policies(&[], &ps, ver);
        assert!(policy_group_chains(&tiers, Direction::Ingress, ver, &cfg, false).is_empty());
    }

    #[test]
    fn forward_chains_without_policy_allow_by_default() {
        let ver = v("3.31");
        let spec = EndpointChainSpec::host_forward("eth0", Direction::Ingress, ver, false);
        let l = endpoint_chain_layout(&spec, &[], ver, &RenderConfig::new(ver), false);
        let steps: Vec<&LayoutStep> = l.iter().map(|r| &r.step).collect();
        assert_eq!(
            steps,
            [
                &LayoutStep::ConntrackEstablished,
                &LayoutStep::ConntrackInvalid,
                &LayoutStep::ClearMarks,
                &LayoutStep::AllowForwardByDefault,
                &LayoutStep::ReturnForwardAccepted
            ]
        );
    }

    #[test]
    fn host_chains_jump_to_failsafes_and_untracked_ones_notrack() {
        let ver = v("3.31");
        let ps = vec![pol(
            PolicyKind::GlobalNetworkPolicy,
            "u",
            None,
            "default",
            None,
            ver,
        )];
        let tiers = order_policies(&[], &ps, ver);
        let spec = EndpointChainSpec::host_untracked("eth0", Direction::Egress, ver, false);
        assert_eq!(spec.chain, "cali-th-eth0");
        let l = endpoint_chain_layout(&spec, &tiers, ver, &RenderConfig::new(ver), false);
        let b = bodies(&l);
        assert_eq!(b[0], "--jump cali-failsafe-out");
        assert!(b.contains(&"-m mark --mark 0x10000/0x10000 --jump NOTRACK".to_string()));
        assert!(
            !b.iter()
                .any(|s| s.contains("conntrack") || s.contains("End of tier"))
        );
    }

    #[test]
    fn layout_rules_can_be_hashed_like_felix() {
        let ver = v("3.32");
        let spec = EndpointChainSpec::workload("cali1", Direction::Ingress, &[], ver, false);
        let l = endpoint_chain_layout(&spec, &[], ver, &RenderConfig::new(ver), false);
        let rules: Vec<FelixRule> = l.into_iter().map(|r| r.rule).collect();
        let h = rule_hashes(&spec.chain, &rules);
        assert_eq!(h.len(), rules.len());
        assert!(h.iter().all(|h| h.len() == 16));
    }

    #[test]
    fn admin_down_endpoints_drop_everything() {
        let ver = v("3.26");
        let mut spec = EndpointChainSpec::workload("cali1", Direction::Ingress, &[], ver, false);
        spec.admin_up = false;
        let mut cfg = RenderConfig::new(ver);
        cfg.deny = crate::calico::render::DenyAction::Reject;
        let l = endpoint_chain_layout(&spec, &[], ver, &cfg, false);
        assert_eq!(bodies(&l), ["--jump REJECT #Endpoint admin disabled"]);
    }
}
