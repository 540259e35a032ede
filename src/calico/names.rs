//! The names Felix gives to what it programs, per Calico version: policy, profile, endpoint,
//! dispatch and policy-group chains, the comments that name a policy inside its chain, NFLOG
//! prefixes, IP set names and IDs, and the workload interface name the CNI plugin picks.
//!
//! Everything here is a pure function of names and a [`CalicoVersion`]; nothing reads a bundle.
//! The one thing that cannot be computed exactly from what `calicoctl get` shows is the name
//! Felix stored a policy under (a `default.` prefix came and went across versions), so
//! [`policy_chain_candidates`] offers every name a version could have used and the caller keeps
//! the one present in the dump. Rendering rule bodies lives in `render`, policy order and the
//! expected endpoint-chain layout in `order`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use sha3::Sha3_224;

use super::hash::{b64url, make_unique_id};
use super::render::{DenyAction, FelixRule};

// ---------------------------------------------------------------------------------------------
// Versions
// ---------------------------------------------------------------------------------------------

/// A Calico release line (`major.minor`); the patch level never changes a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CalicoVersion {
    pub major: u32,
    pub minor: u32,
}

/// The groups of releases that name things the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum VersionFamily {
    /// v3.20, v3.21 (and older): no comment naming the policy.
    UpTo321,
    /// v3.22 – v3.27: one implicit tier, `Policy <v1name> …` comments.
    V322To327,
    /// v3.28: policy groups, trailing RETURNs stripped, still one tier.
    V328,
    /// v3.29 – v3.31: tiers in the dataplane, hashed text is `tier/v1name`.
    V329To331,
    /// v3.32 and later: policies keyed by kind/namespace/name.
    From332,
}

impl VersionFamily {
    pub const ALL: [VersionFamily; 5] = [
        VersionFamily::UpTo321,
        VersionFamily::V322To327,
        VersionFamily::V328,
        VersionFamily::V329To331,
        VersionFamily::From332,
    ];

    pub fn label(self) -> &'static str {
        match self {
            VersionFamily::UpTo321 => "<=3.21",
            VersionFamily::V322To327 => "3.22-3.27",
            VersionFamily::V328 => "3.28",
            VersionFamily::V329To331 => "3.29-3.31",
            VersionFamily::From332 => ">=3.32",
        }
    }

    /// The newest release of the family: the one whose behaviour a candidate stands for.
    pub fn representative(self) -> CalicoVersion {
        match self {
            VersionFamily::UpTo321 => CalicoVersion::new(3, 21),
            VersionFamily::V322To327 => CalicoVersion::new(3, 27),
            VersionFamily::V328 => CalicoVersion::new(3, 28),
            VersionFamily::V329To331 => CalicoVersion::new(3, 31),
            VersionFamily::From332 => CalicoVersion::NEWEST,
        }
    }
}

impl CalicoVersion {
    /// The newest release whose behaviour this module reproduces.
    pub const NEWEST: CalicoVersion = CalicoVersion {
        major: 3,
        minor: 32,
    };

    pub const fn new(major: u32, minor: u32) -> Self {
        CalicoVersion { major, minor }
    }

    /// Reads `3.28`, `v3.30.2`, `V3.29.0-0.dev-123`, `release-v3.31`; `None` when no
    /// `major.minor` can be found.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let s = s.strip_prefix("release-").unwrap_or(s);
        let s = s
            .strip_prefix('v')
            .or_else(|| s.strip_prefix('V'))
            .unwrap_or(s);
        let mut parts = s.split('.');
        let major = leading_number(parts.next()?)?;
        let minor = leading_number(parts.next()?)?;
        Some(CalicoVersion { major, minor })
    }

    pub fn family(self) -> VersionFamily {
        if self < CalicoVersion::new(3, 22) {
            VersionFamily::UpTo321
        } else if self < CalicoVersion::new(3, 28) {
            VersionFamily::V322To327
        } else if self < CalicoVersion::new(3, 29) {
            VersionFamily::V328
        } else if self < CalicoVersion::new(3, 32) {
            VersionFamily::V329To331
        } else {
            VersionFamily::From332
        }
    }

    fn at_least(self, major: u32, minor: u32) -> bool {
        self >= CalicoVersion::new(major, minor)
    }

    /// v3.22+: the first rule of a policy/profile chain names the policy.
    pub fn has_chain_comment(self) -> bool {
        self.at_least(3, 22)
    }
    /// v3.26+: end-of-chain drops follow FilterDenyAction (DROP or REJECT) and their
    /// comments say "Drop"/"Reject" accordingly; before, always DROP and "Drop".
    pub fn deny_follows_config(self) -> bool {
        self.at_least(3, 26)
    }
    /// v3.28+: trailing RETURN rules of policy/profile chains are stripped.
    pub fn strips_trailing_returns(self) -> bool {
        self.at_least(3, 28)
    }
    /// v3.28+: consecutive policies with one selector share a `cali-gi-`/`cali-go-` chain.
    pub fn has_policy_groups(self) -> bool {
        self.at_least(3, 28)
    }
    /// v3.29+: the endpoint chain has one section per tier.
    pub fn has_dataplane_tiers(self) -> bool {
        self.at_least(3, 29)
    }
    /// v3.29+: the nftables dataplane exists.
    pub fn has_nftables(self) -> bool {
        self.at_least(3, 29)
    }
    /// v3.30+: nft policy/profile chains may be 256 long (v3.29 still hashed them to 28).
    pub fn nft_long_policy_chains(self) -> bool {
        self.at_least(3, 30)
    }
    /// v3.30+: nft workload dispatch uses verdict maps.
    pub fn nft_dispatch_vmap(self) -> bool {
        self.at_least(3, 30)
    }
    /// v3.30+: deny rules set a drop mark; flow-log NFLOG rules and end-of-tier texts.
    pub fn has_drop_mark(self) -> bool {
        self.at_least(3, 30)
    }
    /// v3.30+: staged policies reach Felix (and are skipped when rendering).
    pub fn has_staged_policies(self) -> bool {
        self.at_least(3, 30)
    }
    /// v3.32+: policies are keyed by kind/namespace/name.
    pub fn keys_policies_by_kind(self) -> bool {
        self.at_least(3, 32)
    }
    /// v3.32+: `GetLengthLimitedID` treats an empty suffix as `_`.
    pub fn empty_suffix_is_underscore(self) -> bool {
        self.at_least(3, 32)
    }
    /// v3.32+: `cali-set-endpoint-mark` children carry a `-wep`/`-hep` infix.
    pub fn set_mark_dispatch_infix(self) -> bool {
        self.at_least(3, 32)
    }
    /// v3.31+: a negated catch-all CIDR drops the whole rule (also v3.29.6+ and v3.30.3+,
    /// which a `major.minor` cannot tell apart).
    pub fn drops_negated_catch_all(self) -> bool {
        self.at_least(3, 31)
    }
}

fn leading_number(s: &str) -> Option<u32> {
    let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() {
        return None;
    }
    digits.parse().ok()
}

impl fmt::Display for CalicoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}", self.major, self.minor)
    }
}

impl FromStr for CalicoVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CalicoVersion::parse(s).ok_or_else(|| format!("not a Calico version: {s:?}"))
    }
}

impl Serialize for CalicoVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Length-limited IDs and fixed prefixes
// ---------------------------------------------------------------------------------------------

/// iptables chain names Felix allows (the kernel allows 29; Felix keeps one spare).
pub const IPTABLES_MAX_CHAIN_NAME: usize = 28;
/// nftables chain names (knftables' `NameLengthMax`).
pub const NFT_MAX_CHAIN_NAME: usize = 256;

pub const POLICY_INBOUND_PREFIX: &str = "cali-pi-";
pub const POLICY_OUTBOUND_PREFIX: &str = "cali-po-";
pub const PROFILE_INBOUND_PREFIX: &str = "cali-pri-";
pub const PROFILE_OUTBOUND_PREFIX: &str = "cali-pro-";
pub const POLICY_GROUP_INBOUND_PREFIX: &str = "cali-gi-";
pub const POLICY_GROUP_OUTBOUND_PREFIX: &str = "cali-go-";
pub const WORKLOAD_TO_ENDPOINT_PREFIX: &str = "cali-tw-";
pub const WORKLOAD_FROM_ENDPOINT_PREFIX: &str = "cali-fw-";
pub const HOST_TO_ENDPOINT_PREFIX: &str = "cali-th-";
pub const HOST_FROM_ENDPOINT_PREFIX: &str = "cali-fh-";
pub const HOST_TO_ENDPOINT_FORWARD_PREFIX: &str = "cali-thfw-";
pub const HOST_FROM_ENDPOINT_FORWARD_PREFIX: &str = "cali-fhfw-";
pub const SET_ENDPOINT_MARK_PREFIX: &str = "cali-sm-";

pub const CHAIN_FROM_WORKLOAD_DISPATCH: &str = "cali-from-wl-dispatch";
pub const CHAIN_TO_WORKLOAD_DISPATCH: &str = "cali-to-wl-dispatch";
pub const CHAIN_FROM_HOST_ENDPOINT: &str = "cali-from-host-endpoint";
pub const CHAIN_TO_HOST_ENDPOINT: &str = "cali-to-host-endpoint";
pub const CHAIN_FROM_HEP_FORWARD: &str = "cali-from-hep-forward";
pub const CHAIN_TO_HEP_FORWARD: &str = "cali-to-hep-forward";
pub const CHAIN_SET_ENDPOINT_MARK: &str = "cali-set-endpoint-mark";
pub const CHAIN_FROM_ENDPOINT_MARK: &str = "cali-from-endpoint-mark";
pub const CHAIN_FAILSAFE_IN: &str = "cali-failsafe-in";
pub const CHAIN_FAILSAFE_OUT: &str = "cali-failsafe-out";

/// The pseudo interface name Felix gives a wildcard (`interfaceName: "*"`) host endpoint.
pub const ALL_INTERFACES_NAME: &str = "any-interface-at-all";

/// Felix's `GetLengthLimitedID`: `prefix + suffix` when it fits, otherwise
/// `prefix + "_" + base64url(sha256(suffix))` cut to `max_len`. A name exactly `max_len`
/// long whose suffix starts with `_` is hashed too, so it cannot pose as a shortened one.
/// From v3.32 an empty suffix is first replaced by `_`.
pub fn get_length_limited_id(
    prefix: &str,
    suffix: &str,
    max_len: usize,
    version: CalicoVersion,
) -> String {
    let suffix = if suffix.is_empty() && version.empty_suffix_is_underscore() {
        "_"
    } else {
        suffix
    };
    let total = prefix.len() + suffix.len();
    if total > max_len || (total == max_len && suffix.as_bytes().first() == Some(&b'_')) {
        let hash = b64url(&Sha256::digest(suffix.as_bytes()));
        // Go would panic on a limit this small or this large; saturate instead.
        let keep = max_len.saturating_sub(prefix.len() + 1).min(hash.len());
        format!("{prefix}_{}", &hash[..keep])
    } else {
        format!("{prefix}{suffix}")
    }
}

/// The name of a chain inside nftables' single `calico` table: `<table>-<chain>`, unless the
/// chain already starts with the table name (Felix's own check, kept as is).
pub fn nft_layer_chain_name(table: &str, chain: &str) -> String {
    if chain.starts_with(table) {
        chain.to_string()
    } else {
        format!("{table}-{chain}")
    }
}

// ---------------------------------------------------------------------------------------------
// Directions and kinds
// ---------------------------------------------------------------------------------------------

/// A policy direction: ingress rules live in `cali-pi-`, egress rules in `cali-po-`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub const BOTH: [Direction; 2] = [Direction::Ingress, Direction::Egress];

    /// Reads `in`/`ingress`/`inbound`/`I` and `out`/`egress`/`outbound`/`E`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "in" | "ingress" | "inbound" | "i" => Some(Direction::Ingress),
            "out" | "egress" | "outbound" | "e" => Some(Direction::Egress),
            _ => None,
        }
    }
    pub fn word(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
    /// Felix's `PolicyDirection` text, hashed into policy-group IDs.
    pub fn bound_word(self) -> &'static str {
        match self {
            Direction::Ingress => "inbound",
            Direction::Egress => "outbound",
        }
    }
    /// The letter of NFLOG prefixes.
    pub fn letter(self) -> char {
        match self {
            Direction::Ingress => 'I',
            Direction::Egress => 'E',
        }
    }
    pub fn policy_prefix(self) -> &'static str {
        match self {
            Direction::Ingress => POLICY_INBOUND_PREFIX,
            Direction::Egress => POLICY_OUTBOUND_PREFIX,
        }
    }
    pub fn profile_prefix(self) -> &'static str {
        match self {
            Direction::Ingress => PROFILE_INBOUND_PREFIX,
            Direction::Egress => PROFILE_OUTBOUND_PREFIX,
        }
    }
    pub fn policy_group_prefix(self) -> &'static str {
        match self {
            Direction::Ingress => POLICY_GROUP_INBOUND_PREFIX,
            Direction::Egress => POLICY_GROUP_OUTBOUND_PREFIX,
        }
    }
    /// NFLOG group: 1 for ingress, 2 for egress.
    pub fn nflog_group(self) -> u16 {
        match self {
            Direction::Ingress => 1,
            Direction::Egress => 2,
        }
    }
}

/// The kinds of policy Felix knows, with the spelling of their `kind:` field.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyKind {
    NetworkPolicy,
    GlobalNetworkPolicy,
    StagedNetworkPolicy,
    StagedGlobalNetworkPolicy,
    StagedKubernetesNetworkPolicy,
    KubernetesNetworkPolicy,
    /// v3.32+: Kubernetes ClusterNetworkPolicy (tiers `kube-admin`/`kube-baseline`).
    KubernetesClusterNetworkPolicy,
    /// v3.29–v3.31: Kubernetes AdminNetworkPolicy (tier `adminnetworkpolicy`).
    AdminNetworkPolicy,
    /// v3.30–v3.31: Kubernetes BaselineAdminNetworkPolicy (tier `baselineadminnetworkpolicy`).
    BaselineAdminNetworkPolicy,
    Other(String),
}

impl PolicyKind {
    /// Reads a `kind:` value or Felix's short form (`np`, `gnp`, `knp` …).
    pub fn parse(s: &str) -> PolicyKind {
        match s.trim() {
            "NetworkPolicy" | "np" => PolicyKind::NetworkPolicy,
            "GlobalNetworkPolicy" | "gnp" => PolicyKind::GlobalNetworkPolicy,
            "StagedNetworkPolicy" | "snp" => PolicyKind::StagedNetworkPolicy,
            "StagedGlobalNetworkPolicy" | "sgnp" => PolicyKind::StagedGlobalNetworkPolicy,
            "StagedKubernetesNetworkPolicy" | "sknp" => PolicyKind::StagedKubernetesNetworkPolicy,
            "KubernetesNetworkPolicy" | "knp" => PolicyKind::KubernetesNetworkPolicy,
            "KubernetesClusterNetworkPolicy" | "kcnp" | "ClusterNetworkPolicy" => {
                PolicyKind::KubernetesClusterNetworkPolicy
            }
            "AdminNetworkPolicy" | "anp" => PolicyKind::AdminNetworkPolicy,
            "BaselineAdminNetworkPolicy" | "banp" => PolicyKind::BaselineAdminNetworkPolicy,
            other => PolicyKind::Other(other.to_string()),
        }
    }

    /// The kind as Felix writes it in v3.32+ comments.
    pub fn as_str(&self) -> &str {
        match self {
            PolicyKind::NetworkPolicy => "NetworkPolicy",
            PolicyKind::GlobalNetworkPolicy => "GlobalNetworkPolicy",
            PolicyKind::StagedNetworkPolicy => "StagedNetworkPolicy",
            PolicyKind::StagedGlobalNetworkPolicy => "StagedGlobalNetworkPolicy",
            PolicyKind::StagedKubernetesNetworkPolicy => "StagedKubernetesNetworkPolicy",
            PolicyKind::KubernetesNetworkPolicy => "KubernetesNetworkPolicy",
            PolicyKind::KubernetesClusterNetworkPolicy => "KubernetesClusterNetworkPolicy",
            PolicyKind::AdminNetworkPolicy => "AdminNetworkPolicy",
            PolicyKind::BaselineAdminNetworkPolicy => "BaselineAdminNetworkPolicy",
            PolicyKind::Other(s) => s,
        }
    }

    /// Felix's `KindShortName` (v3.32+); an unknown kind stays as it is.
    pub fn short(&self) -> &str {
        match self {
            PolicyKind::NetworkPolicy => "np",
            PolicyKind::GlobalNetworkPolicy => "gnp",
            PolicyKind::StagedNetworkPolicy => "snp",
            PolicyKind::StagedGlobalNetworkPolicy => "sgnp",
            PolicyKind::StagedKubernetesNetworkPolicy => "sknp",
            PolicyKind::KubernetesNetworkPolicy => "knp",
            PolicyKind::KubernetesClusterNetworkPolicy => "kcnp",
            other => other.as_str(),
        }
    }

    /// Staged policies are never programmed.
    pub fn is_staged(&self) -> bool {
        matches!(
            self,
            PolicyKind::StagedNetworkPolicy
                | PolicyKind::StagedGlobalNetworkPolicy
                | PolicyKind::StagedKubernetesNetworkPolicy
        )
    }

    pub fn is_namespaced(&self) -> bool {
        matches!(
            self,
            PolicyKind::NetworkPolicy
                | PolicyKind::StagedNetworkPolicy
                | PolicyKind::StagedKubernetesNetworkPolicy
                | PolicyKind::KubernetesNetworkPolicy
        )
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for PolicyKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Policies: v1 names, hashed text, chain names, comments
// ---------------------------------------------------------------------------------------------

pub const DEFAULT_TIER: &str = "default";
const K8S_NP_PREFIX: &str = "knp.default.";
const K8S_ANP_PREFIX: &str = "kanp.adminnetworkpolicy.";
const K8S_BANP_PREFIX: &str = "kbanp.baselineadminnetworkpolicy.";
const OPENSTACK_PREFIX: &str = "ossg.";

/// A policy as `calicoctl get` shows it: the name without the `default.` that older
/// versions stored, its namespace if it has one, and its tier (`""` means `default`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct PolicyRef {
    pub kind: PolicyKind,
    pub name: String,
    pub namespace: Option<String>,
    pub tier: String,
}

impl PolicyRef {
    pub fn new(kind: PolicyKind, name: &str, namespace: Option<&str>, tier: &str) -> Self {
        PolicyRef {
            kind,
            name: name.to_string(),
            namespace: namespace.filter(|n| !n.is_empty()).map(str::to_string),
            tier: tier.to_string(),
        }
    }

    /// The tier Felix files the policy under: Kubernetes kinds have fixed tiers.
    pub fn effective_tier(&self) -> String {
        match self.kind {
            PolicyKind::KubernetesNetworkPolicy | PolicyKind::StagedKubernetesNetworkPolicy => {
                DEFAULT_TIER.to_string()
            }
            PolicyKind::AdminNetworkPolicy => "adminnetworkpolicy".to_string(),
            PolicyKind::BaselineAdminNetworkPolicy => "baselineadminnetworkpolicy".to_string(),
            _ if self.tier.is_empty() => DEFAULT_TIER.to_string(),
            _ => self.tier.clone(),
        }
    }
}

/// How Felix identifies one policy: the v3.32+ key (kind, namespace, name) plus the tier and
/// the v1 name that versions up to v3.31 used.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct FelixPolicyKey {
    pub kind: PolicyKind,
    /// The v3.32+ key name (the datastore object's name).
    pub name: String,
    pub namespace: Option<String>,
    pub tier: String,
    /// `model.PolicyKey.Name` up to v3.31, e.g. `ns/default.allow`.
    pub v1_name: String,
}

impl FelixPolicyKey {
    /// The key Felix of `version` would use for a policy created through calicoctl (or the
    /// API server) as `r`.
    pub fn from_ref(r: &PolicyRef, version: CalicoVersion) -> Self {
        FelixPolicyKey {
            kind: r.kind.clone(),
            name: r.name.clone(),
            namespace: r.namespace.clone(),
            tier: r.effective_tier(),
            v1_name: v1_policy_name(&r.kind, &r.name, r.namespace.as_deref(), version),
        }
    }

    /// Felix's `PolicyID.ID()` (v3.32+): `kindShort/[ns/]name`.
    pub fn policy_id(&self) -> String {
        match &self.namespace {
            Some(ns) if !ns.is_empty() => format!("{}/{}/{}", self.kind.short(), ns, self.name),
            _ => format!("{}/{}", self.kind.short(), self.name),
        }
    }

    /// Felix's `PolicyID.String()` (v3.32+), hashed into policy-group IDs.
    pub fn policy_id_string(&self) -> String {
        format!(
            "{{Name: {}, Namespace: {}, Kind: {}}}",
            self.name,
            self.namespace.as_deref().unwrap_or(""),
            self.kind.as_str()
        )
    }
}

/// The name clientv3 stores a (Global)NetworkPolicy under, up to v3.28: `default.` + name
/// unless it starts with `knp.` or `ossg.`.
fn storage_name_up_to_328(name: &str) -> String {
    if name.starts_with("knp.") || name.starts_with(OPENSTACK_PREFIX) {
        name.to_string()
    } else {
        format!("default.{name}")
    }
}

fn name_is_formatted(name: &str) -> bool {
    [
        K8S_NP_PREFIX,
        K8S_ANP_PREFIX,
        K8S_BANP_PREFIX,
        OPENSTACK_PREFIX,
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// `names.TieredPolicyName` (v3.29–v3.31): a bare name gets `default.`, a dotted one is kept.
fn tiered_policy_name(name: &str) -> String {
    if name.is_empty() || name_is_formatted(name) || name.contains('.') {
        name.to_string()
    } else {
        format!("default.{name}")
    }
}

/// The v1 policy name (`model.PolicyKey.Name`) Felix of `version` sees for a policy created
/// as `name` through calicoctl or the API server. v3.32+ no longer uses it; the v3.31 form
/// is returned (it is what a pre-v3.32 Typha still sends).
pub fn v1_policy_name(
    kind: &PolicyKind,
    name: &str,
    namespace: Option<&str>,
    version: CalicoVersion,
) -> String {
    let stored = |n: &str| {
        if version < CalicoVersion::new(3, 29) {
            storage_name_up_to_328(n)
        } else {
            tiered_policy_name(n)
        }
    };
    let base = match kind {
        PolicyKind::KubernetesNetworkPolicy | PolicyKind::StagedKubernetesNetworkPolicy => {
            if name.starts_with(K8S_NP_PREFIX) {
                name.to_string()
            } else {
                format!("{K8S_NP_PREFIX}{name}")
            }
        }
        PolicyKind::AdminNetworkPolicy => format!("{K8S_ANP_PREFIX}{name}"),
        PolicyKind::BaselineAdminNetworkPolicy => format!("{K8S_BANP_PREFIX}{name}"),
        PolicyKind::KubernetesClusterNetworkPolicy => format!("kcnp.{name}"),
        _ => stored(name),
    };
    let base = if kind.is_staged() {
        format!("staged:{base}")
    } else {
        base
    };
    match namespace {
        Some(ns) if !ns.is_empty() && kind.is_namespaced() => format!("{ns}/{base}"),
        _ => base,
    }
}

/// The text Felix hashes into a policy chain name.
pub fn policy_hashed_input(key: &FelixPolicyKey, version: CalicoVersion) -> String {
    match version.family() {
        VersionFamily::UpTo321 | VersionFamily::V322To327 | VersionFamily::V328 => {
            key.v1_name.clone()
        }
        VersionFamily::V329To331 => format!("{}/{}", key.tier, key.v1_name),
        VersionFamily::From332 => key.policy_id(),
    }
}

fn policy_chain_max_len(version: CalicoVersion, nft: bool) -> usize {
    if nft && version.nft_long_policy_chains() {
        NFT_MAX_CHAIN_NAME
    } else {
        IPTABLES_MAX_CHAIN_NAME
    }
}

/// `cali-pi-…`/`cali-po-…` for the policy. With `nft`, the logical name inside a table
/// layer (nft dumps show it as `filter-<name>`, see [`nft_layer_chain_name`]).
pub fn policy_chain_name(
    dir: Direction,
    key: &FelixPolicyKey,
    version: CalicoVersion,
    nft: bool,
) -> String {
    get_length_limited_id(
        dir.policy_prefix(),
        &policy_hashed_input(key, version),
        policy_chain_max_len(version, nft),
        version,
    )
}

/// The comment on the first rule of the policy's chain; `None` before v3.22.
pub fn policy_chain_comment(
    dir: Direction,
    key: &FelixPolicyKey,
    version: CalicoVersion,
) -> Option<String> {
    if !version.has_chain_comment() {
        return None;
    }
    if version.keys_policies_by_kind() {
        let who = match &key.namespace {
            Some(ns) if !ns.is_empty() => format!("{ns}/{}", key.name),
            _ => key.name.clone(),
        };
        Some(format!("{} {} {}", key.kind.as_str(), who, dir.word()))
    } else {
        Some(format!("Policy {} {}", key.v1_name, dir.word()))
    }
}

/// One chain name a policy may have been programmed under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainCandidate {
    pub direction: Direction,
    pub chain: String,
    /// The text hashed (or used verbatim) after the prefix.
    pub hashed_input: String,
    pub version_family: &'static str,
    /// The first rule's comment that would name the policy (none before v3.22).
    pub comment: Option<String>,
    /// True when this is the nftables name (only listed where it differs from iptables).
    pub nft: bool,
    /// True for the name a policy created through calicoctl in that version gets.
    pub primary: bool,
}

/// The keys a policy shown by calicoctl as `r` may carry in one version family, most
/// likely first (see felix-naming §1.4 "Recommendation for the analyzer" and §7).
fn candidate_keys(r: &PolicyRef, family: VersionFamily) -> Vec<FelixPolicyKey> {
    let version = family.representative();
    let tier = r.effective_tier();
    let ns = r.namespace.clone().filter(|n| !n.is_empty());
    let with_ns = |base: &str| match &ns {
        Some(n) if r.kind.is_namespaced() => format!("{n}/{base}"),
        _ => base.to_string(),
    };
    let key = |name: &str, v1: String| FelixPolicyKey {
        kind: r.kind.clone(),
        name: name.to_string(),
        namespace: ns.clone(),
        tier: tier.clone(),
        v1_name: v1,
    };
    let mut out: Vec<FelixPolicyKey> = Vec::new();
    let mut push = |k: FelixPolicyKey| {
        if !out.iter().any(|o| o == &k) {
            out.push(k);
        }
    };
    if r.kind.is_staged() {
        return out;
    }
    let name = r.name.as_str();
    let dotted = [
        name.to_string(),
        format!("default.{name}"),
        format!("{tier}.{name}"),
    ];
    match family {
        VersionFamily::From332 => match r.kind {
            PolicyKind::AdminNetworkPolicy | PolicyKind::BaselineAdminNetworkPolicy => {}
            PolicyKind::KubernetesNetworkPolicy | PolicyKind::KubernetesClusterNetworkPolicy => {
                push(key(
                    name,
                    v1_policy_name(&r.kind, name, ns.as_deref(), version),
                ));
            }
            _ => {
                for n in &dotted {
                    push(key(n, with_ns(n)));
                }
            }
        },
        _ => match r.kind {
            PolicyKind::KubernetesClusterNetworkPolicy => {}
            PolicyKind::AdminNetworkPolicy if family != VersionFamily::V329To331 => {}
            PolicyKind::BaselineAdminNetworkPolicy if family != VersionFamily::V329To331 => {}
            PolicyKind::KubernetesNetworkPolicy
            | PolicyKind::AdminNetworkPolicy
            | PolicyKind::BaselineAdminNetworkPolicy => {
                push(key(
                    name,
                    v1_policy_name(&r.kind, name, ns.as_deref(), version),
                ));
            }
            _ => {
                // What clientv3 of this version stores first, then the other spellings.
                let primary = v1_policy_name(&r.kind, name, ns.as_deref(), version);
                push(key(name, primary));
                for n in &dotted {
                    push(key(name, with_ns(n)));
                }
            }
        },
    }
    out
}

/// Every chain name a version (or, with `None`, any version) could have given the policy,
/// both directions, most likely first within each family. Staged policies have none.
pub fn policy_chain_candidates(
    r: &PolicyRef,
    version: Option<CalicoVersion>,
) -> Vec<ChainCandidate> {
    let mut out = Vec::new();
    for dir in Direction::BOTH {
        out.extend(policy_chain_candidates_for_direction(r, dir, version));
    }
    out
}

/// [`policy_chain_candidates`] for one direction.
pub fn policy_chain_candidates_for_direction(
    r: &PolicyRef,
    dir: Direction,
    version: Option<CalicoVersion>,
) -> Vec<ChainCandidate> {
    let families: Vec<(VersionFamily, CalicoVersion)> = match version {
        Some(v) => vec![(v.family(), v)],
        None => VersionFamily::ALL
            .iter()
            .map(|f| (*f, f.representative()))
            .collect(),
    };
    let mut out: Vec<ChainCandidate> = Vec::new();
    for (family, v) in families {
        for (i, key) in candidate_keys(r, family).iter().enumerate() {
            let hashed_input = policy_hashed_input(key, v);
            let comment = policy_chain_comment(dir, key, v);
            let ipt = policy_chain_name(dir, key, v, false);
            let mut push = |chain: String, nft: bool| {
                if !out
                    .iter()
                    .any(|c| c.chain == chain && c.version_family == family.label())
                {
                    out.push(ChainCandidate {
                        direction: dir,
                        chain,
                        hashed_input: hashed_input.clone(),
                        version_family: family.label(),
                        comment: comment.clone(),
                        nft,
                        primary: i == 0,
                    });
                }
            };
            push(ipt.clone(), false);
            if v.nft_long_policy_chains() {
                let nft = policy_chain_name(dir, key, v, true);
                if nft != ipt {
                    push(nft, true);
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Profiles and endpoints
// ---------------------------------------------------------------------------------------------

/// `cali-pri-<profile>` / `cali-pro-<profile>`.
pub fn profile_chain_name(
    dir: Direction,
    profile: &str,
    version: CalicoVersion,
    nft: bool,
) -> String {
    get_length_limited_id(
        dir.profile_prefix(),
        profile,
        policy_chain_max_len(version, nft),
        version,
    )
}

/// `Profile <name> ingress|egress` on the first rule (v3.22+).
pub fn profile_chain_comment(
    dir: Direction,
    profile: &str,
    version: CalicoVersion,
) -> Option<String> {
    version
        .has_chain_comment()
        .then(|| format!("Profile {profile} {}", dir.word()))
}

/// The profiles a Kubernetes pod's endpoint carries, in order.
pub fn pod_profile_ids(namespace: &str, service_account: Option<&str>) -> Vec<String> {
    let mut v = vec![format!("kns.{namespace}")];
    if let Some(sa) = service_account.filter(|s| !s.is_empty()) {
        v.push(format!("ksa.{namespace}.{sa}"));
    }
    v
}

/// Every endpoint chain prefix, in the order `endpoint_names_json` lists them.
pub const ENDPOINT_CHAIN_PREFIXES: [&str; 7] = [
    WORKLOAD_TO_ENDPOINT_PREFIX,
    WORKLOAD_FROM_ENDPOINT_PREFIX,
    HOST_TO_ENDPOINT_PREFIX,
    HOST_FROM_ENDPOINT_PREFIX,
    HOST_TO_ENDPOINT_FORWARD_PREFIX,
    HOST_FROM_ENDPOINT_FORWARD_PREFIX,
    SET_ENDPOINT_MARK_PREFIX,
];

/// `EndpointChainName(prefix, iface)`: 28 long in iptables, 256 in nftables (v3.29+).
pub fn endpoint_chain_name(prefix: &str, iface: &str, version: CalicoVersion, nft: bool) -> String {
    let max = if nft && version.has_nftables() {
        NFT_MAX_CHAIN_NAME
    } else {
        IPTABLES_MAX_CHAIN_NAME
    };
    get_length_limited_id(prefix, iface, max, version)
}

/// The interface name Felix uses for a host endpoint: `*` becomes `any-interface-at-all`.
pub fn host_endpoint_iface(interface_name: &str) -> &str {
    if interface_name == "*" {
        ALL_INTERFACES_NAME
    } else {
        interface_name
    }
}

/// The veth name the CNI plugin gives a pod: `<prefix>` + hex(sha1(ns + "." + pod))[:11].
/// `iface_prefix` is `FELIX_INTERFACEPREFIX` (its first comma-separated entry is used),
/// `cali` when unset.
pub fn veth_name(namespace: &str, pod: &str, iface_prefix: Option<&str>) -> String {
    let prefix = iface_prefix
        .and_then(|p| p.split(',').next())
        .filter(|p| !p.is_empty())
        .unwrap_or("cali");
    let digest = Sha1::digest(format!("{namespace}.{pod}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{}", &hex[..11])
}

// ---------------------------------------------------------------------------------------------
// Dispatch chains
// ---------------------------------------------------------------------------------------------

/// What a dispatch rule matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum DispatchMatch {
    /// No match: the end rules.
    Any,
    /// `--in-interface`/`--out-interface` (a wildcard ends in `+`, or `*` in nft).
    Iface { name: String, outbound: bool },
    /// nft only: `iifname vmap @…` / `oifname vmap @…`.
    IfaceVmap { map: String, outbound: bool },
    /// `-m mark --mark <mark>/<mask>` (`cali-from-endpoint-mark`).
    Mark { mark: u32, mask: u32 },
}

/// What a dispatch rule does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum DispatchAction {
    None,
    Goto(String),
    Deny(DenyAction),
    Return,
    SetMaskedMark { mark: u32, mask: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DispatchRule {
    pub matches: DispatchMatch,
    pub action: DispatchAction,
    pub comment: Option<String>,
}

impl DispatchRule {
    fn iface(name: String, outbound: bool, target: String) -> Self {
        DispatchRule {
            matches: DispatchMatch::Iface { name, outbound },
            action: DispatchAction::Goto(target),
            comment: None,
        }
    }

    /// The interface (or wildcard) this rule dispatches on and where it goes, if it does.
    pub fn iface_and_target(&self) -> Option<(&str, &str)> {
        match (&self.matches, &self.action) {
            (DispatchMatch::Iface { name, .. }, DispatchAction::Goto(t)) => Some((name, t)),
            _ => None,
        }
    }

    /// Felix's iptables form of the rule (the nft vmap form is rendered as Felix's
    /// pre-layer text `iifname vmap @<LAYER>-…`).
    pub fn to_felix(&self) -> FelixRule {
        let m = match &self.matches {
            DispatchMatch::Any => String::new(),
            DispatchMatch::Iface { name, outbound } => {
                let flag = if *outbound {
                    "--out-interface"
                } else {
                    "--in-interface"
                };
                format!("{flag} {name}")
            }
            DispatchMatch::IfaceVmap { map, outbound } => {
                let dir = if *outbound { "oifname" } else { "iifname" };
                format!("{dir} vmap @<LAYER>-{}", map.replace(':', "-"))
            }
            DispatchMatch::Mark { mark, mask } => format!("-m mark --mark {mark:#x}/{mask:#x}"),
        };
        let a = match &self.action {
            DispatchAction::None => String::new(),
            DispatchAction::Goto(t) => format!("--goto {t}"),
            DispatchAction::Deny(d) => d.fragment().to_string(),
            DispatchAction::Return => "--jump RETURN".to_string(),
            DispatchAction::SetMaskedMark { mark, mask } => {
                format!("--jump MARK --set-mark {}/{mask:#x}", go_hex(*mark))
            }
        };
        FelixRule {
            comments: self.comment.iter().cloned().collect(),
            matches: m,
            action: a,
        }
    }
}

/// Go's `%#x`: `0x0` for zero, `0x10000` otherwise.
pub(crate) fn go_hex(v: u32) -> String {
    format!("{v:#x}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DispatchChain {
    pub name: String,
    pub rules: Vec<DispatchRule>,
}

/// What the dispatch renderer needs from Felix's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchConfig {
    pub version: CalicoVersion,
    /// nftables dataplane: wildcard `*`, 256-long names, verdict maps for workloads (v3.30+).
    pub nft: bool,
    /// `InterfacePrefix` entries (default `["cali"]`).
    pub workload_iface_prefixes: Vec<String>,
    /// `IptablesFilterDenyAction` (honoured from v3.26).
    pub deny: DenyAction,
}

impl DispatchConfig {
    pub fn new(version: CalicoVersion) -> Self {
        DispatchConfig {
            version,
            nft: false,
            workload_iface_prefixes: vec!["cali".to_string()],
            deny: DenyAction::Drop,
        }
    }
    fn wildcard(&self) -> &'static str {
        if self.nft { "*" } else { "+" }
    }
    fn deny(&self) -> DenyAction {
        if self.version.deny_follows_config() {
            self.deny
        } else {
            DenyAction::Drop
        }
    }
    fn endpoint_chain(&self, prefix: &str, iface: &str) -> String {
        endpoint_chain_name(prefix, iface, self.version, self.nft)
    }
}

/// Felix's shallow prefix tree: sorted, de-duplicated names bucketed by the common prefix
/// plus one more byte. Returns (common prefix, buckets in order).
fn prefix_tree(names: &[String]) -> (String, Vec<(String, Vec<String>)>) {
    let mut sorted: Vec<String> = names.to_vec();
    sorted.sort();
    let common = common_prefix(&sorted);
    let mut buckets: Vec<(String, Vec<String>)> = Vec::new();
    let mut last: Option<&String> = None;
    for name in &sorted {
        if name.is_empty() || last == Some(name) {
            continue;
        }
        let bytes = name.as_bytes();
        let key = if bytes.len() > common.len() {
            String::from_utf8_lossy(&bytes[..common.len() + 1]).into_owned()
        } else {
            common.clone()
        };
        match buckets.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(name.clone()),
            None => buckets.push((key, vec![name.clone()])),
        }
        last = Some(name);
    }
    (common, buckets)
}

fn common_prefix(names: &[String]) -> String {
    let Some(first) = names.first() else {
        return String::new();
    };
    let mut len = first.len();
    for n in &names[1..] {
        len = first
            .as_bytes()
            .iter()
            .zip(n.as_bytes())
            .take(len)
            .take_while(|(a, b)| a == b)
            .count();
    }
    String::from_utf8_lossy(&first.as_bytes()[..len]).into_owned()
}

/// `buildSingleDispatchChainTree`: child chains (in order), then the root chain.
#[allow(clippy::too_many_arguments)]
fn dispatch_tree(
    cfg: &DispatchConfig,
    root: &str,
    infix: &str,
    names: &[String],
    endpoint_prefix: &str,
    outbound: bool,
    end_rules: &[DispatchRule],
) -> (Vec<DispatchChain>, Vec<DispatchRule>) {
    let (common, buckets) = prefix_tree(names);
    let mut children = Vec::new();
    let mut root_rules = Vec::new();
    for (prefix, ifaces) in buckets {
        if ifaces.len() > 1 {
            let next = prefix.get(common.len()..).unwrap_or("");
            let child = format!("{root}{infix}-{next}");
            root_rules.push(DispatchRule::iface(
                format!("{prefix}{}", cfg.wildcard()),
                outbound,
                child.clone(),
            ));
            let mut rules: Vec<DispatchRule> = ifaces
                .iter()
                .map(|i| {
                    DispatchRule::iface(i.clone(), outbound, cfg.endpoint_chain(endpoint_prefix, i))
                })
                .collect();
            rules.extend(end_rules.iter().cloned());
            children.push(DispatchChain { name: child, rules });
        } else if let Some(i) = ifaces.first() {
            root_rules.push(DispatchRule::iface(
                i.clone(),
                outbound,
                cfg.endpoint_chain(endpoint_prefix, i),
            ));
        }
    }
    (children, root_rules)
}

#[allow(clippy::too_many_arguments)]
fn dispatch_chains_for(
    cfg: &DispatchConfig,
    root: &str,
    names: &[String],
    endpoint_prefix: &str,
    outbound: bool,
    end_rules: &[DispatchRule],
    vmap: bool,
) -> Vec<DispatchChain> {
    if vmap {
        let mut rules = vec![DispatchRule {
            matches: DispatchMatch::IfaceVmap {
                map: root.to_string(),
                outbound,
            },
            action: DispatchAction::None,
            comment: None,
        }];
        rules.extend(end_rules.iter().cloned());
        return vec![DispatchChain {
            name: root.to_string(),
            rules,
        }];
    }
    let (mut chains, mut root_rules) =
        dispatch_tree(cfg, root, "", names, endpoint_prefix, outbound, end_rules);
    root_rules.extend(end_rules.iter().cloned());
    chains.push(DispatchChain {
        name: root.to_string(),
        rules: root_rules,
    });
    chains
}

fn deny_rule(cfg: &DispatchConfig, comment: &str) -> DispatchRule {
    DispatchRule {
        matches: DispatchMatch::Any,
        action: DispatchAction::Deny(cfg.deny()),
        comment: Some(comment.to_string()),
    }
}

/// `cali-from-wl-dispatch` and `cali-to-wl-dispatch` (children first, as Felix lists them).
/// In nft mode from v3.30 each root is one verdict-map rule plus the end rule; see
/// [`nft_workload_dispatch_maps`] for the map members.
pub fn workload_dispatch_chains(ifaces: &[String], cfg: &DispatchConfig) -> Vec<DispatchChain> {
    let end = [deny_rule(cfg, "Unknown interface")];
    let vmap = cfg.nft && cfg.version.nft_dispatch_vmap();
    let mut out = dispatch_chains_for(
        cfg,
        CHAIN_FROM_WORKLOAD_DISPATCH,
        ifaces,
        WORKLOAD_FROM_ENDPOINT_PREFIX,
        false,
        &end,
        vmap,
    );
    out.extend(dispatch_chains_for(
        cfg,
        CHAIN_TO_WORKLOAD_DISPATCH,
        ifaces,
        WORKLOAD_TO_ENDPOINT_PREFIX,
        true,
        &end,
        vmap,
    ));
    out
}

/// The nft verdict maps of workload dispatch (v3.30+): map name (already layered as
/// `filter-…`) → (interface → `goto filter-cali-fw-<iface>`), from-map first.
pub fn nft_workload_dispatch_maps(
    ifaces: &[String],
    version: CalicoVersion,
) -> Vec<(String, BTreeMap<String, String>)> {
    let mut out = Vec::new();
    for (map, prefix) in [
        (CHAIN_FROM_WORKLOAD_DISPATCH, WORKLOAD_FROM_ENDPOINT_PREFIX),
        (CHAIN_TO_WORKLOAD_DISPATCH, WORKLOAD_TO_ENDPOINT_PREFIX),
    ] {
        let members = ifaces
            .iter()
            .map(|i| {
                let chain = endpoint_chain_name(prefix, i, version, true);
                (
                    i.clone(),
                    format!("goto {}", nft_layer_chain_name("filter", &chain)),
                )
            })
            .collect();
        out.push((nft_layer_chain_name("filter", map), members));
    }
    out
}

/// Which host dispatch chains to build (`hostDispatchChains` directions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HostDispatchKind {
    /// filter table: from- and to-host-endpoint (plus the forward pair with apply-on-forward).
    Normal { apply_on_forward: bool },
    /// mangle table, pre-DNAT policy: from-host-endpoint only.
    FromOnly,
    /// to-host-endpoint only (DNAT'd host traffic).
    ToOnly,
}

/// Host endpoint dispatch chains. `default_iface` is the wildcard HEP's chain suffix
/// (`any-interface-at-all`) when one exists.
pub fn host_dispatch_chains(
    ifaces: &[String],
    default_iface: Option<&str>,
    kind: HostDispatchKind,
    cfg: &DispatchConfig,
) -> Vec<DispatchChain> {
    let goto = |prefix: &str, iface: &str| DispatchRule {
        matches: DispatchMatch::Any,
        action: DispatchAction::Goto(cfg.endpoint_chain(prefix, iface)),
        comment: None,
    };
    let apply_on_forward = matches!(
        kind,
        HostDispatchKind::Normal {
            apply_on_forward: true
        }
    );
    let mut from_end = Vec::new();
    let mut to_end = Vec::new();
    let mut from_fwd_end = Vec::new();
    let mut to_fwd_end = Vec::new();
    if let Some(d) = default_iface.filter(|d| !d.is_empty()) {
        from_end.push(goto(HOST_FROM_ENDPOINT_PREFIX, d));
        from_fwd_end.push(goto(HOST_FROM_ENDPOINT_FORWARD_PREFIX, d));
        if !apply_on_forward {
            for p in &cfg.workload_iface_prefixes {
                to_end.push(DispatchRule {
                    matches: DispatchMatch::Iface {
                        name: format!("{p}{}", cfg.wildcard()),
                        outbound: true,
                    },
                    action: DispatchAction::Return,
                    comment: Some(
                        "Skip egress WHEP policy for traffic to local workload".to_string(),
                    ),
                });
            }
        }
        to_end.push(goto(HOST_TO_ENDPOINT_PREFIX, d));
        to_fwd_end.push(goto(HOST_TO_ENDPOINT_FORWARD_PREFIX, d));
    }
    let from = || {
        dispatch_chains_for(
            cfg,
            CHAIN_FROM_HOST_ENDPOINT,
            ifaces,
            HOST_FROM_ENDPOINT_PREFIX,
            false,
            &from_end,
            false,
        )
    };
    let to = || {
        dispatch_chains_for(
            cfg,
            CHAIN_TO_HOST_ENDPOINT,
            ifaces,
            HOST_TO_ENDPOINT_PREFIX,
            true,
            &to_end,
            false,
        )
    };
    match kind {
        HostDispatchKind::FromOnly => from(),
        HostDispatchKind::ToOnly => to(),
        HostDispatchKind::Normal { apply_on_forward } => {
            let mut out = from();
            out.extend(to());
            if apply_on_forward {
                out.extend(dispatch_chains_for(
                    cfg,
                    CHAIN_FROM_HEP_FORWARD,
                    ifaces,
                    HOST_FROM_ENDPOINT_FORWARD_PREFIX,
                    false,
                    &from_fwd_end,
                    false,
                ));
                out.extend(dispatch_chains_for(
                    cfg,
                    CHAIN_TO_HEP_FORWARD,
                    ifaces,
                    HOST_TO_ENDPOINT_FORWARD_PREFIX,
                    true,
                    &to_fwd_end,
                    false,
                ));
            }
            out
        }
    }
}

/// Endpoint marks for `cali-from-endpoint-mark` (kube-proxy IPVS mode only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointMarks {
    /// Interface → its endpoint mark.
    pub marks: BTreeMap<String, u32>,
    /// The endpoint mark mask.
    pub mask: u32,
    /// The mark for traffic from neither a workload nor a host endpoint.
    pub non_cali: u32,
}

fn mask_bits(mask: u32) -> Vec<u32> {
    (0..32)
        .map(|i| 1u32 << i)
        .filter(|b| mask & b != 0)
        .collect()
}

/// `MapNumberToMark`: spread the bits of `n` over the set bits of `mask`, lowest first.
fn number_to_mark(n: u64, mask: u32) -> Option<u32> {
    let bits = mask_bits(mask);
    if bits.len() < 64 && n >> bits.len() != 0 {
        return None;
    }
    Some(
        bits.iter()
            .enumerate()
            .filter(|(i, _)| n & (1u64 << i) != 0)
            .fold(0, |m, (_, b)| m | b),
    )
}

/// `MapMarkToNumber`: the inverse of [`number_to_mark`].
fn mark_to_number(mark: u32, mask: u32) -> u64 {
    mask_bits(mask)
        .iter()
        .enumerate()
        .filter(|(_, b)| mark & **b != 0)
        .fold(0, |n, (i, _)| n | (1u64 << i))
}

fn fnv1_32(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, b| {
        h.wrapping_mul(0x0100_0193) ^ u32::from(*b)
    })
}

/// Felix's endpoint mark mapper (kube-proxy IPVS mode): each interface gets the mark at
/// position FNV-1(name) mod 2^bits, probing upwards past 0, the non-Calico mark and taken
/// positions. Felix allocates as endpoints appear; `ifaces` is taken in the given order, so
/// only colliding names depend on it.
pub fn allocate_endpoint_marks(ifaces: &[String], mask: u32, non_cali: u32) -> EndpointMarks {
    let bits = mask_bits(mask).len();
    let max: u64 = if bits == 0 || bits >= 64 {
        0
    } else {
        1u64 << bits
    };
    let mut taken: Vec<u64> = vec![mark_to_number(non_cali, mask)];
    let mut marks = BTreeMap::new();
    for name in ifaces {
        if name.is_empty() || marks.contains_key(name) || max == 0 {
            continue;
        }
        let total = u64::from(fnv1_32(name.as_bytes()));
        let found = (0..max)
            .map(|i| (total + i) % max)
            .find(|p| *p != 0 && !taken.contains(p));
        if let Some(pos) = found
            && let Some(mark) = number_to_mark(pos, mask)
        {
            taken.push(pos);
            marks.insert(name.clone(), mark);
        }
    }
    EndpointMarks {
        marks,
        mask,
        non_cali,
    }
}

/// `cali-set-endpoint-mark` (with its children) and `cali-from-endpoint-mark`. Children are
/// `cali-set-endpoint-mark-<c>` up to v3.31, `cali-set-endpoint-mark-wep-<c>`/`-hep-<c>`
/// from v3.32.
pub fn endpoint_mark_dispatch_chains(
    workload_ifaces: &[String],
    host_ifaces: &[String],
    marks: &EndpointMarks,
    cfg: &DispatchConfig,
) -> Vec<DispatchChain> {
    let mut chains = Vec::new();
    let mut root = Vec::new();
    for (names, infix) in [(workload_ifaces, "wep"), (host_ifaces, "hep")] {
        if names.is_empty() {
            continue;
        }
        let infix = if cfg.version.set_mark_dispatch_infix() {
            format!("-{infix}")
        } else {
            String::new()
        };
        let (children, rules) = dispatch_tree(
            cfg,
            CHAIN_SET_ENDPOINT_MARK,
            &infix,
            names,
            SET_ENDPOINT_MARK_PREFIX,
            false,
            &[],
        );
        chains.extend(children);
        root.extend(rules);
    }
    for p in &cfg.workload_iface_prefixes {
        root.push(DispatchRule {
            matches: DispatchMatch::Iface {
                name: format!("{p}{}", cfg.wildcard()),
                outbound: false,
            },
            action: DispatchAction::Deny(cfg.deny()),
            comment: Some("Unknown endpoint".to_string()),
        });
    }
    root.push(DispatchRule {
        matches: DispatchMatch::Any,
        action: DispatchAction::SetMaskedMark {
            mark: marks.non_cali,
            mask: marks.mask,
        },
        comment: Some("Non-Cali endpoint mark".to_string()),
    });
    let mut from_mark = Vec::new();
    for (names, prefix) in [
        (workload_ifaces, WORKLOAD_FROM_ENDPOINT_PREFIX),
        (host_ifaces, HOST_FROM_ENDPOINT_FORWARD_PREFIX),
    ] {
        let mut sorted = names.to_vec();
        sorted.sort();
        sorted.dedup();
        for n in sorted {
            if let Some(m) = marks.marks.get(&n) {
                from_mark.push(DispatchRule {
                    matches: DispatchMatch::Mark {
                        mark: *m,
                        mask: marks.mask,
                    },
                    action: DispatchAction::Goto(cfg.endpoint_chain(prefix, &n)),
                    comment: None,
                });
            }
        }
    }
    from_mark.push(deny_rule(cfg, "Unknown interface"));
    chains.push(DispatchChain {
        name: CHAIN_SET_ENDPOINT_MARK.to_string(),
        rules: root,
    });
    chains.push(DispatchChain {
        name: CHAIN_FROM_ENDPOINT_MARK.to_string(),
        rules: from_mark,
    });
    chains
}

// ---------------------------------------------------------------------------------------------
// Policy groups
// ---------------------------------------------------------------------------------------------

/// Length of a policy-group UID: 28 − len("cali-gi-").
pub const POLICY_GROUP_UID_LEN: usize = IPTABLES_MAX_CHAIN_NAME - POLICY_GROUP_INBOUND_PREFIX.len();

/// The text Felix hashes (SHA3-224) into a policy-group UID; every line ends in `\n`.
/// v3.28–v3.31: tier, selector, direction, count, v1 names (v3.28 always uses tier
/// `default`). v3.32+: selector, direction, count, `{Name: …, Namespace: …, Kind: …}`.
pub fn policy_group_hashed_lines(
    tier: &str,
    selector: &str,
    dir: Direction,
    members: &[FelixPolicyKey],
    version: CalicoVersion,
) -> String {
    let mut lines: Vec<String> = Vec::new();
    if !version.keys_policies_by_kind() {
        let tier = if version.has_dataplane_tiers() {
            tier
        } else {
            DEFAULT_TIER
        };
        lines.push(tier.to_string());
    }
    lines.push(selector.to_string());
    lines.push(dir.bound_word().to_string());
    lines.push(members.len().to_string());
    for m in members {
        lines.push(if version.keys_policies_by_kind() {
            m.policy_id_string()
        } else {
            m.v1_name.clone()
        });
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// `cali-gi-<UID>` / `cali-go-<UID>` (v3.28+). `selector` is the normalised policy selector
/// the group shares.
pub fn policy_group_chain_name(
    tier: &str,
    selector: &str,
    dir: Direction,
    members: &[FelixPolicyKey],
    version: CalicoVersion,
) -> String {
    let text = policy_group_hashed_lines(tier, selector, dir, members, version);
    let uid = b64url(&Sha3_224::digest(text.as_bytes()));
    let uid = uid.get(..POLICY_GROUP_UID_LEN).unwrap_or(&uid);
    format!("{}{uid}", dir.policy_group_prefix())
}

// ---------------------------------------------------------------------------------------------
// NFLOG prefixes (flow logs, v3.30+)
// ---------------------------------------------------------------------------------------------

/// Felix's NFLOG prefix limit without the terminating NUL.
pub const NFLOG_PREFIX_MAX_LEN: usize = 63;

/// The rule action letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NflogAction {
    Allow,
    Deny,
    Pass,
}

impl NflogAction {
    pub fn letter(self) -> char {
        match self {
            NflogAction::Allow => 'A',
            NflogAction::Deny => 'D',
            NflogAction::Pass => 'P',
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "A" | "allow" | "Allow" => Some(NflogAction::Allow),
            "D" | "deny" | "Deny" => Some(NflogAction::Deny),
            "P" | "pass" | "Pass" | "N" | "next-tier" => Some(NflogAction::Pass),
            _ => None,
        }
    }
}

/// Whose rule it is: (P)olicy or p(R)ofile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RuleOwner {
    Policy,
    Profile,
}

impl RuleOwner {
    pub fn letter(self) -> char {
        match self {
            RuleOwner::Policy => 'P',
            RuleOwner::Profile => 'R',
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "P" | "policy" | "Policy" => Some(RuleOwner::Policy),
            "R" | "profile" | "Profile" => Some(RuleOwner::Profile),
            _ => None,
        }
    }
}

/// Shorten a prefix of 63 bytes or more to exactly 63: first 10 bytes,
/// `GetLengthLimitedID("", prefix, 42)`, `_`, last 10 bytes.
fn nflog_maybe_hash(prefix: String) -> String {
    let b = prefix.as_bytes();
    if b.len() < NFLOG_PREFIX_MAX_LEN {
        return prefix;
    }
    let hash_len = NFLOG_PREFIX_MAX_LEN - 10 - 10 - 1;
    let head = String::from_utf8_lossy(&b[..10]);
    let tail = String::from_utf8_lossy(&b[b.len() - 10..]);
    let hash = get_length_limited_id("", &prefix, hash_len, CalicoVersion::NEWEST);
    format!("{head}{hash}_{tail}")
}

/// The id an NFLOG prefix names: v3.32+ `PolicyID.ID()` (`gnp/…`, `np/ns/…`), v3.30/v3.31
/// the v1 name.
pub fn nflog_policy_id(key: &FelixPolicyKey, version: CalicoVersion) -> String {
    if version.keys_policies_by_kind() {
        key.policy_id()
    } else {
        key.v1_name.clone()
    }
}

/// `<A|D|P><P|R><I|E><ruleIndex>|<id>`, shortened when 63 bytes or longer.
pub fn nflog_prefix(
    action: NflogAction,
    owner: RuleOwner,
    dir: Direction,
    rule_index: usize,
    id: &str,
) -> String {
    nflog_maybe_hash(format!(
        "{}{}{}{rule_index}|{id}",
        action.letter(),
        owner.letter(),
        dir.letter()
    ))
}

/// End-of-tier drop: `DP<I|E>|<tier>`.
pub fn nflog_end_of_tier_drop(dir: Direction, tier: &str) -> String {
    nflog_maybe_hash(format!("DP{}|{tier}", dir.letter()))
}

/// End of a tier whose policies are all staged: `PP<I|E>|<tier>`.
pub fn nflog_end_of_tier_pass(dir: Direction, tier: &str) -> String {
    nflog_maybe_hash(format!("PP{}|{tier}", dir.letter()))
}

/// No profile matched: `DRI` / `DRE`.
pub fn nflog_no_match_profile(dir: Direction) -> String {
    format!("DR{}", dir.letter())
}

/// No rule of a policy matched: `DP<I|E>|<id>`.
pub fn nflog_no_match_policy(dir: Direction, id: &str) -> String {
    nflog_maybe_hash(format!("DP{}|{id}", dir.letter()))
}

// ---------------------------------------------------------------------------------------------
// IP sets
// ---------------------------------------------------------------------------------------------

/// ipset's name limit.
pub const MAX_IPSET_NAME_LEN: usize = 31;

/// `cali40<id>` / `cali60<id>`, cut to 31 bytes.
pub fn ipset_main_name(set_id: &str, ip_version: u8) -> String {
    let name = format!("cali{}0{set_id}", ip_family_digit(ip_version));
    truncate_bytes(&name, MAX_IPSET_NAME_LEN)
}

/// The nftables spelling of a set: `:` becomes `-`.
pub fn nft_ipset_name(set_id: &str, ip_version: u8) -> String {
    ipset_main_name(set_id, ip_version).replace(':', "-")
}

/// Temporary sets used while rewriting: `cali4t<n>` / `cali6t<n>`.
pub fn ipset_temp_name(n: u64, ip_version: u8) -> String {
    format!("cali{}t{n}", ip_family_digit(ip_version))
}

fn ip_family_digit(ip_version: u8) -> char {
    if ip_version == 6 { '6' } else { '4' }
}

fn truncate_bytes(s: &str, max: usize) -> String {
    super::render::truncate_to(s, max)
}

/// A set Felix programs with a fixed ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FixedIpSet {
    pub id: &'static str,
    pub since: CalicoVersion,
    pub what: &'static str,
}

/// Felix's fixed IP set IDs and the release that introduced each.
pub const FIXED_IPSETS: [FixedIpSet; 7] = [
    FixedIpSet {
        id: "all-ipam-pools",
        since: CalicoVersion::new(3, 0),
        what: "all IP pools",
    },
    FixedIpSet {
        id: "masq-ipam-pools",
        since: CalicoVersion::new(3, 0),
        what: "IP pools with natOutgoing",
    },
    FixedIpSet {
        id: "all-hosts-net",
        since: CalicoVersion::new(3, 0),
        what: "node IPs (IPIP/VXLAN)",
    },
    FixedIpSet {
        id: "all-vxlan-net",
        since: CalicoVersion::new(3, 0),
        what: "VXLAN source nets",
    },
    FixedIpSet {
        id: "this-host",
        since: CalicoVersion::new(3, 0),
        what: "this host's IPs",
    },
    FixedIpSet {
        id: "dscp-src-net",
        since: CalicoVersion::new(3, 31),
        what: "endpoints with a DSCP annotation",
    },
    FixedIpSet {
        id: "all-istio-weps",
        since: CalicoVersion::new(3, 32),
        what: "Istio ambient workloads",
    },
];

/// On master after v3.32 (unreleased) `all-ipam-pools` is renamed to this; dumps of
/// development builds show `cali40network-ip-pools`.
pub const NETWORK_IP_POOLS_ID: &str = "network-ip-pools";

/// The fixed IP set IDs a version programs (when their features are on).
pub fn fixed_ipset_ids(version: CalicoVersion) -> Vec<&'static str> {
    FIXED_IPSETS
        .iter()
        .filter(|s| version >= s.since)
        .map(|s| s.id)
        .collect()
}

/// `MakeUniqueID("s", canonical selector)`.
pub fn selector_ipset_id(canonical_selector: &str) -> String {
    make_unique_id("s", canonical_selector)
}

/// `MakeUniqueID("svc", "ns/name")` (with ports, `hash:ip,port`) or
/// `MakeUniqueID("svcnoport", "ns/name")` (`hash:net`, v3.21+).
pub fn service_ipset_id(namespace: &str, name: &str, include_ports: bool) -> String {
    let prefix = if include_ports { "svc" } else { "svcnoport" };
    make_unique_id(prefix, &format!("{namespace}/{name}"))
}

/// The protocol Felix files a named port under: `tcp`, `udp` or `sctp` from the rule's
/// protocol (name, any case, or number 6/17/132; anything else counts as `tcp`); a rule
/// without protocol uses `tcp` up to v3.31 and `any` from v3.32.
pub fn named_port_protocol(rule_protocol: Option<&str>, version: CalicoVersion) -> &'static str {
    let Some(p) = rule_protocol.map(str::trim).filter(|p| !p.is_empty()) else {
        return if version.keys_policies_by_kind() {
            "any"
        } else {
            "tcp"
        };
    };
    match p.to_ascii_lowercase().as_str() {
        "udp" | "17" => "udp",
        "sctp" | "132" => "sctp",
        _ => "tcp",
    }
}

/// `MakeUniqueID("n", selID + "," + proto + "," + portName)`; `selector_id` is the ID of the
/// rule side's positive selector (of `all()` when it has none).
pub fn named_port_ipset_id(
    selector_id: &str,
    rule_protocol: Option<&str>,
    port_name: &str,
    version: CalicoVersion,
) -> String {
    let proto = named_port_protocol(rule_protocol, version);
    make_unique_id("n", &format!("{selector_id},{proto},{port_name}"))
}

// ---------------------------------------------------------------------------------------------
// JSON views for `calisnap names …`
// ---------------------------------------------------------------------------------------------

/// Chain names, comments and candidates for one policy. Without a version the single-valued
/// fields are for [`CalicoVersion::NEWEST`] and the candidates cover every version.
pub fn policy_names_json(r: &PolicyRef, version: Option<CalicoVersion>) -> Value {
    let v = version.unwrap_or(CalicoVersion::NEWEST);
    let key = FelixPolicyKey::from_ref(r, v);
    let staged = r.kind.is_staged();
    let chain = |dir: Direction, nft: bool| -> Value {
        if staged || (nft && !v.has_nftables()) {
            Value::Null
        } else {
            Value::String(policy_chain_name(dir, &key, v, nft))
        }
    };
    let comment = |dir: Direction| match policy_chain_comment(dir, &key, v) {
        Some(c) if !staged => Value::String(c),
        _ => Value::Null,
    };
    json!({
        "kind": r.kind.as_str(),
        "name": r.name,
        "namespace": r.namespace,
        "tier": r.effective_tier(),
        "calico_version": v.to_string(),
        "version_family": v.family().label(),
        "v1_name": key.v1_name,
        "hashed_input": policy_hashed_input(&key, v),
        "ingress_chain": chain(Direction::Ingress, false),
        "egress_chain": chain(Direction::Egress, false),
        "nft_ingress_chain": chain(Direction::Ingress, true),
        "nft_egress_chain": chain(Direction::Egress, true),
        "nft_table_prefixes": ["filter-", "mangle-", "raw-"],
        "comment_ingress": comment(Direction::Ingress),
        "comment_egress": comment(Direction::Egress),
        "staged_never_programmed": staged,
        "candidates": policy_chain_candidates(r, version),
    })
}

/// Profile chain names and comments (the same in every version).
pub fn profile_names_json(name: &str) -> Value {
    let v = CalicoVersion::NEWEST;
    json!({
        "profile": name,
        "ingress_chain": profile_chain_name(Direction::Ingress, name, v, false),
        "egress_chain": profile_chain_name(Direction::Egress, name, v, false),
        "nft_ingress_chain": profile_chain_name(Direction::Ingress, name, v, true),
        "nft_egress_chain": profile_chain_name(Direction::Egress, name, v, true),
        "comment_ingress": profile_chain_comment(Direction::Ingress, name, v),
        "comment_egress": profile_chain_comment(Direction::Egress, name, v),
    })
}

/// Every endpoint chain name for an interface (`*` is the wildcard host endpoint).
pub fn endpoint_names_json(iface: &str) -> Value {
    let v = CalicoVersion::NEWEST;
    let iface = host_endpoint_iface(iface);
    let mut chains = serde_json::Map::new();
    let mut nft = serde_json::Map::new();
    for p in ENDPOINT_CHAIN_PREFIXES {
        chains.insert(
            p.to_string(),
            json!(endpoint_chain_name(p, iface, v, false)),
        );
        nft.insert(
            p.to_string(),
            json!(nft_layer_chain_name(
                "filter",
                &endpoint_chain_name(p, iface, v, true)
            )),
        );
    }
    json!({ "interface": iface, "chains": chains, "nft_chains": nft })
}

/// The workload interface name of a pod.
pub fn veth_name_json(namespace: &str, pod: &str) -> Value {
    json!({
        "namespace": namespace,
        "pod": pod,
        "interface": veth_name(namespace, pod, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> CalicoVersion {
        CalicoVersion::parse(s).expect("version")
    }

    fn gnp(name: &str) -> PolicyRef {
        PolicyRef::new(PolicyKind::GlobalNetworkPolicy, name, None, "default")
    }

    #[test]
    fn versions_parse_with_and_without_v_and_patch() {
        assert_eq!(v("3.28"), CalicoVersion::new(3, 28));
        assert_eq!(v("v3.30.2"), CalicoVersion::new(3, 30));
        assert_eq!(v(" V3.29.0-0.dev-12 "), CalicoVersion::new(3, 29));
        assert_eq!(v("release-v3.31"), CalicoVersion::new(3, 31));
        assert_eq!(CalicoVersion::parse("latest"), None);
        assert_eq!(CalicoVersion::parse("3"), None);
        assert_eq!(CalicoVersion::NEWEST.to_string(), "v3.32");
    }

    #[test]
    fn families_split_where_naming_changed() {
        assert_eq!(v("3.20").family(), VersionFamily::UpTo321);
        assert_eq!(v("3.21").family(), VersionFamily::UpTo321);
        assert_eq!(v("3.22").family(), VersionFamily::V322To327);
        assert_eq!(v("3.27").family(), VersionFamily::V322To327);
        assert_eq!(v("3.28").family(), VersionFamily::V328);
        assert_eq!(v("3.29").family(), VersionFamily::V329To331);
        assert_eq!(v("3.31").family(), VersionFamily::V329To331);
        assert_eq!(v("3.32").family(), VersionFamily::From332);
        assert_eq!(v("4.0").family(), VersionFamily::From332);
    }

    #[test]
    fn length_limited_id_matches_calico_vectors() {
        let old = v("3.31");
        assert_eq!(get_length_limited_id("felix", "1234", 10, old), "felix1234");
        assert_eq!(
            get_length_limited_id("felix", "123456", 11, old),
            "felix123456"
        );
        assert_eq!(
            get_length_limited_id("felix", "_2345", 10, old),
            "felix_kMQI"
        );
        assert_eq!(
            get_length_limited_id("felix", "12345678910", 13, old),
            "felix_Y2QCZIS"
        );
    }

    #[test]
    fn empty_suffix_becomes_underscore_only_from_3_32() {
        assert_eq!(get_length_limited_id("felix", "", 10, v("3.31")), "felix");
        assert_eq!(get_length_limited_id("felix", "", 10, v("3.32")), "felix_");
    }

    #[test]
    fn section_1_4_worked_examples_hold() {
        // ≤3.28 GNP xdp-filter
        let k = FelixPolicyKey::from_ref(&gnp("xdp-filter"), v("3.28"));
        assert_eq!(policy_hashed_input(&k, v("3.28")), "default.xdp-filter");
        assert_eq!(
            policy_chain_name(Direction::Ingress, &k, v("3.28"), false),
            "cali-pi-default.xdp-filter"
        );
        // ≤3.28 NP ns/allow
        let np = PolicyRef::new(PolicyKind::NetworkPolicy, "allow", Some("ns"), "default");
        let k = FelixPolicyKey::from_ref(&np, v("3.27"));
        assert_eq!(policy_hashed_input(&k, v("3.27")), "ns/default.allow");
        assert_eq!(
            policy_chain_name(Direction::Ingress, &k, v("3.27"), false),
            "cali-pi-ns/default.allow"
        );
        // ≤3.28 KNP kube-system/allow-dns: hashed
        let knp = PolicyRef::new(
            PolicyKind::KubernetesNetworkPolicy,
            "allow-dns",
            Some("kube-system"),
            "",
        );
        let k = FelixPolicyKey::from_ref(&knp, v("3.28"));
        assert_eq!(
            policy_hashed_input(&k, v("3.28")),
            "kube-system/knp.default.allow-dns"
        );
        let c = policy_chain_name(Direction::Ingress, &k, v("3.28"), false);
        assert!(c.starts_with("cali-pi-_"), "{c}");
        assert_eq!(c.len(), 28);
        // 3.29–3.31 GNP xdpf
        let k = FelixPolicyKey::from_ref(&gnp("xdpf"), v("3.30"));
        assert_eq!(policy_hashed_input(&k, v("3.30")), "default/default.xdpf");
        assert_eq!(
            policy_chain_name(Direction::Ingress, &k, v("3.30"), false),
            "cali-pi-default/default.xdpf"
        );
        // 3.29–3.31 NP tier1.web in ns a
        let np = PolicyRef::new(PolicyKind::NetworkPolicy, "tier1.web", Some("a"), "tier1");
        let k = FelixPolicyKey::from_ref(&np, v("3.29"));
        assert_eq!(
            policy_chain_name(Direction::Ingress, &k, v("3.29"), false),
            "cali-pi-tier1/a/tier1.web"
        );
        // ≥3.32 GNP xdpf and KNP ns1/allow
        let k = FelixPolicyKey::from_ref(&gnp("xdpf"), v("3.32"));
        assert_eq!(
            policy_chain_name(Direction::Ingress, &k, v("3.32"), false),
            "cali-pi-gnp/xdpf"
        );
        let knp = PolicyRef::new(
            PolicyKind::KubernetesNetworkPolicy,
            "allow",
            Some("ns1"),
            "",
        );
        let k = FelixPolicyKey::from_ref(&knp, v("3.32"));
        assert_eq!(
            policy_chain_name(Direction::Ingress, &k, v("3.32"), false),
            "cali-pi-knp/ns1/allow"
        );
        // profiles in any version
        assert_eq!(
            profile_chain_name(Direction::Ingress, "kns.default", v("3.20"), false),
            "cali-pri-kns.default"
        );
        assert_eq!(
            profile_chain_name(Direction::Ingress, "ksa.default.default", v("3.32"), false),
            "cali-pri-ksa.default.default"
        );
    }

    #[test]
    fn long_policy_name_hashes_differently_per_family() {
        let name = "long-policy-name-that-gets-hashed";
        let key = |tier: &str| FelixPolicyKey {
            kind: PolicyKind::GlobalNetworkPolicy,
            name: name.to_string(),
            namespace: None,
            tier: tier.to_string(),
            v1_name: name.to_string(),
        };
        assert_eq!(
            policy_chain_name(Direction::Ingress, &key("default"), v("3.22"), false),
            "cali-pi-_ffOMcf6pikpiZ6hgKcW"
        );
        assert_eq!(
            policy_chain_name(Direction::Ingress, &key(""), v("3.29"), false),
            "cali-pi-_FJ9yUkNpzshVDh2n7mg"
        );
        assert_eq!(
            policy_chain_name(Direction::Ingress, &key("default"), v("3.32"), false),
            "cali-pi-_PymyFHQQg3808jiz1OJ"
        );
        assert_eq!(
            profile_chain_name(Direction::Ingress, name, v("3.25"), false),
            "cali-pri-_ffOMcf6pikpiZ6hgKc"
        );
    }

    #[test]
    fn nft_policy_chains_are_hashed_at_28_in_3_29_and_kept_long_from_3_30() {
        let name = "long-policy-name-that-gets-hashed";
        let k = FelixPolicyKey::from_ref(&gnp(name), v("3.29"));
        assert!(policy_chain_name(Direction::Ingress, &k, v("3.29"), true).contains('_'));
        let k = FelixPolicyKey::from_ref(&gnp(name), v("3.30"));
        assert_eq!(
            policy_chain_name(Direction::Ingress, &k, v("3.30"), true),
            format!("cali-pi-default/default.{name}")
        );
        assert_eq!(
            nft_layer_chain_name("raw", "cali-pi-default/default.xdpf"),
            "raw-cali-pi-default/default.xdpf"
        );
    }

    #[test]
    fn chain_comments_name_the_policy_per_version() {
        let np = PolicyRef::new(PolicyKind::NetworkPolicy, "allow", Some("ns"), "default");
        let k = FelixPolicyKey::from_ref(&np, v("3.21"));
        assert_eq!(
            policy_chain_comment(Direction::Ingress, &k, v("3.21")),
            None
        );
        let k = FelixPolicyKey::from_ref(&np, v("3.22"));
        assert_eq!(
            policy_chain_comment(Direction::Ingress, &k, v("3.22")).as_deref(),
            Some("Policy ns/default.allow ingress")
        );
        let k = FelixPolicyKey::from_ref(&gnp("xdpf"), v("3.32"));
        assert_eq!(
            policy_chain_comment(Direction::Egress, &k, v("3.32")).as_deref(),
            Some("GlobalNetworkPolicy xdpf egress")
        );
        let knp = PolicyRef::new(
            PolicyKind::KubernetesNetworkPolicy,
            "allow",
            Some("ns1"),
            "",
        );
        let k = FelixPolicyKey::from_ref(&knp, v("3.32"));
        assert_eq!(
            policy_chain_comment(Direction::Ingress, &k, v("3.32")).as_deref(),
            Some("KubernetesNetworkPolicy ns1/allow ingress")
        );
        assert_eq!(
            profile_chain_comment(Direction::Egress, "kns.a", v("3.22")).as_deref(),
            Some("Profile kns.a egress")
        );
    }

    #[test]
    fn v1_names_follow_clientv3_storage_per_version() {
        let k = PolicyKind::GlobalNetworkPolicy;
        assert_eq!(
            v1_policy_name(&k, "xdp-filter", None, v("3.28")),
            "default.xdp-filter"
        );
        assert_eq!(
            v1_policy_name(&k, "tier1.web", None, v("3.28")),
            "default.tier1.web"
        );
        assert_eq!(
            v1_policy_name(&k, "tier1.web", None, v("3.30")),
            "tier1.web"
        );
        assert_eq!(v1_policy_name(&k, "web", None, v("3.30")), "default.web");
        assert_eq!(
            v1_policy_name(
                &PolicyKind::KubernetesNetworkPolicy,
                "test.policy",
                Some("default"),
                v("3.31")
            ),
            "default/knp.default.test.policy"
        );
        assert_eq!(
            v1_policy_name(&PolicyKind::StagedNetworkPolicy, "p", Some("ns"), v("3.30")),
            "ns/staged:default.p"
        );
        assert_eq!(
            v1_policy_name(&PolicyKind::AdminNetworkPolicy, "a", None, v("3.30")),
            "kanp.adminnetworkpolicy.a"
        );
    }

    fn chains(c: &[ChainCandidate]) -> Vec<&str> {
        c.iter().map(|c| c.chain.as_str()).collect()
    }

    #[test]
    fn candidates_cover_the_fv_tested_names_of_each_version() {
        let r = gnp("xdp-filter");
        let c = policy_chain_candidates(&r, Some(v("3.28")));
        assert!(chains(&c).contains(&"cali-pi-default.xdp-filter"), "{c:?}");
        assert!(c[0].primary && c[0].chain == "cali-pi-default.xdp-filter");

        let c = policy_chain_candidates(&gnp("xdpf"), Some(v("3.30")));
        assert!(
            chains(&c).contains(&"cali-pi-default/default.xdpf"),
            "{c:?}"
        );

        let c = policy_chain_candidates(&gnp("xdpf"), Some(v("3.32")));
        assert!(chains(&c).contains(&"cali-pi-gnp/xdpf"), "{c:?}");
        // objects created before the upgrade keep their stored name
        assert!(chains(&c).contains(&"cali-pi-gnp/default.xdpf"), "{c:?}");
        assert!(c.iter().all(|x| x.version_family == ">=3.32"));
    }

    #[test]
    fn candidates_without_version_span_every_family() {
        let c = policy_chain_candidates(&gnp("xdpf"), None);
        let ch = chains(&c);
        for want in [
            "cali-pi-default.xdpf",
            "cali-pi-xdpf",
            "cali-pi-default/default.xdpf",
            "cali-pi-default/xdpf",
            "cali-pi-gnp/xdpf",
            "cali-po-gnp/default.xdpf",
        ] {
            assert!(ch.contains(&want), "{want} missing from {ch:?}");
        }
        let fam: Vec<&str> = c.iter().map(|c| c.version_family).collect();
        for f in VersionFamily::ALL {
            assert!(fam.contains(&f.label()));
        }
        // pre-3.22 candidates carry no comment
        assert!(
            c.iter()
                .filter(|x| x.version_family == "<=3.21")
                .all(|x| x.comment.is_none())
        );
    }

    #[test]
    fn network_policy_candidates_follow_the_recommendation() {
        let r = PolicyRef::new(PolicyKind::NetworkPolicy, "web", Some("a"), "tier1");
        let c = policy_chain_candidates_for_direction(&r, Direction::Ingress, Some(v("3.31")));
        let ins: Vec<&str> = c.iter().map(|c| c.hashed_input.as_str()).collect();
        for want in ["tier1/a/default.web", "tier1/a/web", "tier1/a/tier1.web"] {
            assert!(ins.contains(&want), "{want} missing from {ins:?}");
        }
        let c = policy_chain_candidates_for_direction(&r, Direction::Ingress, Some(v("3.27")));
        let ins: Vec<&str> = c.iter().map(|c| c.hashed_input.as_str()).collect();
        for want in ["a/default.web", "a/web", "a/tier1.web"] {
            assert!(ins.contains(&want), "{want} missing from {ins:?}");
        }
        let c = policy_chain_candidates_for_direction(&r, Direction::Ingress, Some(v("3.32")));
        let ins: Vec<&str> = c.iter().map(|c| c.hashed_input.as_str()).collect();
        assert_eq!(ins[0], "np/a/web");
        assert!(ins.contains(&"np/a/default.web"));
    }

    #[test]
    fn kubernetes_policy_candidates_are_single_per_family() {
        let r = PolicyRef::new(PolicyKind::KubernetesNetworkPolicy, "allow", Some("ns"), "");
        let ins = |ver: &str| -> Vec<String> {
            policy_chain_candidates_for_direction(&r, Direction::Ingress, Some(v(ver)))
                .into_iter()
                .filter(|c| !c.nft)
                .map(|c| c.hashed_input)
                .collect()
        };
        assert_eq!(ins("3.28"), vec!["ns/knp.default.allow"]);
        assert_eq!(ins("3.30"), vec!["default/ns/knp.default.allow"]);
        assert_eq!(ins("3.32"), vec!["knp/ns/allow"]);
    }

    #[test]
    fn staged_policies_have_no_chain_candidates() {
        let r = PolicyRef::new(PolicyKind::StagedGlobalNetworkPolicy, "s", None, "default");
        assert!(policy_chain_candidates(&r, None).is_empty());
        let j = policy_names_json(&r, None);
        assert!(j["ingress_chain"].is_null());
    }

    #[test]
    fn long_names_get_an_nft_candidate_from_3_30() {
        let r = gnp("a-rather-long-global-policy-name");
        let c = policy_chain_candidates_for_direction(&r, Direction::Ingress, Some(v("3.30")));
        assert!(c.iter().any(
            |x| x.nft && x.chain == "cali-pi-default/default.a-rather-long-global-policy-name"
        ));
        assert!(c.iter().any(|x| !x.nft && x.chain.starts_with("cali-pi-_")));
    }

    #[test]
    fn endpoint_chains_keep_real_interfaces_and_hash_the_wildcard_forward_ones() {
        let n = v("3.32");
        assert_eq!(
            endpoint_chain_name(WORKLOAD_TO_ENDPOINT_PREFIX, "cali1234", n, false),
            "cali-tw-cali1234"
        );
        let any = host_endpoint_iface("*");
        assert_eq!(
            endpoint_chain_name(HOST_TO_ENDPOINT_PREFIX, any, n, false),
            "cali-th-any-interface-at-all"
        );
        assert_eq!(
            endpoint_chain_name(HOST_FROM_ENDPOINT_PREFIX, any, n, false),
            "cali-fh-any-interface-at-all"
        );
        let fw = endpoint_chain_name(HOST_TO_ENDPOINT_FORWARD_PREFIX, any, n, false);
        assert!(fw.starts_with("cali-thfw-_"));
        assert_eq!(fw.len(), 28);
        assert_eq!(
            endpoint_chain_name(HOST_TO_ENDPOINT_FORWARD_PREFIX, any, n, true),
            "cali-thfw-any-interface-at-all"
        );
    }

    #[test]
    fn veth_names_match_calico_vectors() {
        assert_eq!(veth_name("default", "podA", None), "cali7f94ce7c295");
        assert_eq!(veth_name("default", "podB", None), "cali92cf1f5e9f6");
        assert_eq!(
            veth_name("default", "podA", Some("tap,cali")),
            "tap7f94ce7c295"
        );
        assert_eq!(
            veth_name_json("default", "podA")["interface"],
            "cali7f94ce7c295"
        );
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn pairs(c: &DispatchChain) -> Vec<(String, String)> {
        c.rules
            .iter()
            .filter_map(|r| r.iface_and_target())
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn workload_dispatch_splits_on_the_character_after_the_common_prefix() {
        let cfg = DispatchConfig::new(v("3.32"));
        let c = workload_dispatch_chains(&names(&["cali1234", "cali2333", "cali2444"]), &cfg);
        let n: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            n,
            [
                "cali-from-wl-dispatch-2",
                "cali-from-wl-dispatch",
                "cali-to-wl-dispatch-2",
                "cali-to-wl-dispatch"
            ]
        );
        assert_eq!(
            pairs(&c[1]),
            vec![
                ("cali1234".into(), "cali-fw-cali1234".into()),
                ("cali2+".into(), "cali-from-wl-dispatch-2".into())
            ]
        );
        assert_eq!(
            pairs(&c[0]),
            vec![
                ("cali2333".into(), "cali-fw-cali2333".into()),
                ("cali2444".into(), "cali-fw-cali2444".into())
            ]
        );
        // every chain ends in the "Unknown interface" drop
        for ch in &c {
            let last = ch.rules.last().expect("rules");
            assert_eq!(last.comment.as_deref(), Some("Unknown interface"));
            assert_eq!(last.to_felix().action, "--jump DROP");
        }
    }

    #[test]
    fn workload_dispatch_with_two_leading_characters_makes_two_children() {
        let cfg = DispatchConfig::new(v("3.32"));
        let c = workload_dispatch_chains(
            &names(&["cali11", "cali12", "cali13", "cali21", "cali22"]),
            &cfg,
        );
        let n: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            n,
            [
                "cali-from-wl-dispatch-1",
                "cali-from-wl-dispatch-2",
                "cali-from-wl-dispatch",
                "cali-to-wl-dispatch-1",
                "cali-to-wl-dispatch-2",
                "cali-to-wl-dispatch"
            ]
        );
    }

    #[test]
    fn nft_workload_dispatch_is_a_verdict_map_from_3_30() {
        let mut cfg = DispatchConfig::new(v("3.30"));
        cfg.nft = true;
        let c = workload_dispatch_chains(&names(&["cali1", "cali2"]), &cfg);
        assert_eq!(c.len(), 2);
        assert_eq!(
            c[0].rules[0].to_felix().matches,
            "iifname vmap @<LAYER>-cali-from-wl-dispatch"
        );
        let maps = nft_workload_dispatch_maps(&names(&["cali1"]), v("3.30"));
        assert_eq!(maps[0].0, "filter-cali-from-wl-dispatch");
        assert_eq!(maps[0].1["cali1"], "goto filter-cali-fw-cali1");
        assert_eq!(maps[1].1["cali1"], "goto filter-cali-tw-cali1");
    }

    #[test]
    fn host_dispatch_falls_through_to_the_wildcard_endpoint() {
        let cfg = DispatchConfig::new(v("3.31"));
        let c = host_dispatch_chains(
            &names(&["eth0"]),
            Some(ALL_INTERFACES_NAME),
            HostDispatchKind::Normal {
                apply_on_forward: false,
            },
            &cfg,
        );
        let to = c
            .iter()
            .find(|c| c.name == CHAIN_TO_HOST_ENDPOINT)
            .expect("to chain");
        let f: Vec<String> = to
            .rules
            .iter()
            .map(|r| r.to_felix().render_body())
            .collect();
        assert_eq!(
            f,
            vec![
                "--out-interface eth0 --goto cali-th-eth0",
                "--out-interface cali+ --jump RETURN",
                "--goto cali-th-any-interface-at-all"
            ]
        );
        assert_eq!(
            to.rules[1].comment.as_deref(),
            Some("Skip egress WHEP policy for traffic to local workload")
        );
    }

    #[test]
    fn set_endpoint_mark_children_gain_an_infix_in_3_32() {
        // Both trees have a child for "1": before v3.32 the two children collide.
        let wl = names(&["cali11", "cali12", "cali21"]);
        let hep = names(&["eth10", "eth11", "eth20"]);
        let marks = EndpointMarks {
            marks: BTreeMap::new(),
            mask: 0xff00_0000,
            non_cali: 0x0100_0000,
        };
        let old = endpoint_mark_dispatch_chains(&wl, &hep, &marks, &DispatchConfig::new(v("3.31")));
        let new = endpoint_mark_dispatch_chains(&wl, &hep, &marks, &DispatchConfig::new(v("3.32")));
        let n = |c: &[DispatchChain]| c.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            n(&old),
            [
                "cali-set-endpoint-mark-1",
                "cali-set-endpoint-mark-1",
                "cali-set-endpoint-mark",
                "cali-from-endpoint-mark"
            ]
        );
        assert_eq!(
            n(&new),
            [
                "cali-set-endpoint-mark-wep-1",
                "cali-set-endpoint-mark-hep-1",
                "cali-set-endpoint-mark",
                "cali-from-endpoint-mark"
            ]
        );
        let root = &new[2];
        assert_eq!(
            root.rules.last().map(|r| r.to_felix().action),
            Some("--jump MARK --set-mark 0x1000000/0xff000000".to_string())
        );
    }

    #[test]
    fn endpoint_marks_follow_felix_hash_positions() {
        // dispatch_test.go@v3.32.0: mask 0xff00, non-Calico mark 0x100.
        let m =
            allocate_endpoint_marks(&names(&["cali1234", "cali2333", "cali2444"]), 0xff00, 0x100);
        assert_eq!(m.marks["cali1234"], 0xd400);
        assert_eq!(m.marks["cali2333"], 0xa700);
        assert_eq!(m.marks["cali2444"], 0x5200);
        let c = endpoint_mark_dispatch_chains(
            &names(&["cali1234"]),
            &[],
            &m,
            &DispatchConfig::new(v("3.32")),
        );
        let from = c.last().expect("from-endpoint-mark");
        assert_eq!(
            from.rules[0].to_felix().render_body(),
            "-m mark --mark 0xd400/0xff00 --goto cali-fw-cali1234"
        );
    }

    #[test]
    fn host_dispatch_with_apply_on_forward_and_a_default_interface_matches_felix() {
        // dispatch_test.go@v3.32.0 "interfaces sharing prefix" with default "eth-default".
        let cfg = DispatchConfig::new(v("3.32"));
        let c = host_dispatch_chains(
            &names(&["eth1234", "eth2333", "eth2444"]),
            Some("eth-default"),
            HostDispatchKind::Normal {
                apply_on_forward: true,
            },
            &cfg,
        );
        let n: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            n,
            [
                "cali-from-host-endpoint-2",
                "cali-from-host-endpoint",
                "cali-to-host-endpoint-2",
                "cali-to-host-endpoint",
                "cali-from-hep-forward-2",
                "cali-from-hep-forward",
                "cali-to-hep-forward-2",
                "cali-to-hep-forward"
            ]
        );
        let body = |i: usize| -> Vec<String> {
            c[i].rules
                .iter()
                .map(|r| r.to_felix().render_body())
                .collect()
        };
        assert_eq!(
            body(0),
            [
                "--in-interface eth2333 --goto cali-fh-eth2333",
                "--in-interface eth2444 --goto cali-fh-eth2444",
                "--goto cali-fh-eth-default"
            ]
        );
        assert_eq!(
            body(7),
            [
                "--out-interface eth1234 --goto cali-thfw-eth1234",
                "--out-interface eth2+ --goto cali-to-hep-forward-2",
                "--goto cali-thfw-eth-default"
            ]
        );
        // No wildcard endpoint and no interfaces: empty root chains still exist.
        let c = host_dispatch_chains(
            &[],
            None,
            HostDispatchKind::Normal {
                apply_on_forward: false,
            },
            &cfg,
        );
        assert_eq!(c.len(), 2);
        assert!(c.iter().all(|c| c.rules.is_empty()));
    }

    #[test]
    fn policy_group_names_fit_28_and_depend_on_the_version_line_format() {
        let pols: Vec<FelixPolicyKey> = ["a", "b"]
            .iter()
            .map(|n| FelixPolicyKey::from_ref(&gnp(n), v("3.31")))
            .collect();
        let lines =
            policy_group_hashed_lines("default", "all()", Direction::Ingress, &pols, v("3.31"));
        assert_eq!(lines, "default\nall()\ninbound\n2\ndefault.a\ndefault.b\n");
        let lines =
            policy_group_hashed_lines("default", "all()", Direction::Egress, &pols, v("3.32"));
        assert_eq!(
            lines,
            "all()\noutbound\n2\n{Name: a, Namespace: , Kind: GlobalNetworkPolicy}\n{Name: b, Namespace: , Kind: GlobalNetworkPolicy}\n"
        );
        // v3.28 has a single tier whatever the policy says
        let l328 =
            policy_group_hashed_lines("tier1", "all()", Direction::Ingress, &pols, v("3.28"));
        assert!(l328.starts_with("default\n"));
        let name =
            policy_group_chain_name("default", "all()", Direction::Ingress, &pols, v("3.31"));
        assert!(name.starts_with("cali-gi-"));
        assert_eq!(
            name.len(),
            28,
            "the UID is 28 - len(\"cali-gi-\") = 20 characters"
        );
        let expect = format!(
            "cali-gi-{}",
            &b64url(&Sha3_224::digest(
                b"default\nall()\ninbound\n2\ndefault.a\ndefault.b\n"
            ))[..20]
        );
        assert_eq!(name, expect);
    }

    #[test]
    fn nflog_prefixes_match_calico_vectors() {
        let d = Direction::Ingress;
        assert_eq!(
            nflog_prefix(
                NflogAction::Allow,
                RuleOwner::Policy,
                d,
                0,
                "np/namespace1/default.policy"
            ),
            "API0|np/namespace1/default.policy"
        );
        assert_eq!(
            nflog_prefix(
                NflogAction::Pass,
                RuleOwner::Profile,
                Direction::Egress,
                999,
                "short.profile.name"
            ),
            "PRE999|short.profile.name"
        );
        let c62 = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let p = nflog_prefix(
            NflogAction::Deny,
            RuleOwner::Policy,
            Direction::Egress,
            88,
            &format!("gnp/{c62}"),
        );
        assert_eq!(p, format!("DPE88|gnp/{c62}"));
        assert_eq!(p.len(), 62);
        let p = nflog_prefix(
            NflogAction::Deny,
            RuleOwner::Policy,
            d,
            88,
            &format!("gnp/{c62}0"),
        );
        assert_eq!(
            p,
            "DPI88|gnp/_12IXaBPahNM7a7dZhI8zg6PStmHsgneYaax8LVSIq_RSTUVWXYZ0"
        );
        assert_eq!(p.len(), 63);
        assert_eq!(
            nflog_prefix(
                NflogAction::Deny,
                RuleOwner::Policy,
                Direction::Egress,
                2,
                "gnp/this-is-still-quite-a-long-tier-name-even-though-its-not-required.quite-a-long-policy-name2"
            ),
            "DPE2|gnp/t_G4MaamO0BQNQg8Ibyy-r9qg2HIK8-7EaPOVzsy5Nv_licy-name2"
        );
        assert_eq!(
            nflog_end_of_tier_drop(Direction::Egress, "tier-1"),
            "DPE|tier-1"
        );
        assert_eq!(
            nflog_end_of_tier_drop(
                d,
                "tier-01234567890123456789012345678901234567890123456789012"
            ),
            "DPI|tier-01234567890123456789012345678901234567890123456789012"
        );
        assert_eq!(nflog_no_match_profile(d), "DRI");
        assert_eq!(nflog_no_match_profile(Direction::Egress), "DRE");
        assert_eq!(nflog_end_of_tier_pass(d, "t"), "PPI|t");
    }

    #[test]
    fn nflog_ids_are_v1_names_before_3_32() {
        let k = FelixPolicyKey::from_ref(&gnp("foo"), v("3.30"));
        assert_eq!(nflog_policy_id(&k, v("3.30")), "default.foo");
        let k = FelixPolicyKey::from_ref(&gnp("foo"), v("3.32"));
        assert_eq!(nflog_policy_id(&k, v("3.32")), "gnp/foo");
    }

    #[test]
    fn ipset_names_truncate_to_31_and_nft_legalises_colons() {
        assert_eq!(
            ipset_main_name("s:qMt7iLlGDhvLnCjM0l9nzxbabcd", 4),
            "cali40s:qMt7iLlGDhvLnCjM0l9nzxb"
        );
        assert_eq!(ipset_main_name("ipsetid1", 4), "cali40ipsetid1");
        assert_eq!(ipset_main_name("ipsetid1", 6), "cali60ipsetid1");
        assert_eq!(
            nft_ipset_name("s:qMt7iLlGDhvLnCjM0l9nzxbabcd", 4),
            "cali40s-qMt7iLlGDhvLnCjM0l9nzxb"
        );
        assert_eq!(ipset_temp_name(0, 4), "cali4t0");
        assert_eq!(ipset_temp_name(3, 6), "cali6t3");
        assert_eq!(ipset_main_name("all-ipam-pools", 4), "cali40all-ipam-pools");
    }

    #[test]
    fn fixed_ipsets_appear_in_their_release() {
        assert!(!fixed_ipset_ids(v("3.30")).contains(&"dscp-src-net"));
        assert!(fixed_ipset_ids(v("3.31")).contains(&"dscp-src-net"));
        assert!(!fixed_ipset_ids(v("3.31")).contains(&"all-istio-weps"));
        assert!(fixed_ipset_ids(v("3.32")).contains(&"all-istio-weps"));
        assert!(fixed_ipset_ids(v("3.20")).contains(&"masq-ipam-pools"));
    }

    #[test]
    fn service_and_named_port_ids_follow_make_unique_id() {
        assert_eq!(
            service_ipset_id("default", "svc", true),
            "svc:Jhwii46PCMT5NlhWsUqZmv7al8TeHFbNQMhoVg"
        );
        assert_eq!(
            service_ipset_id("default", "svc", false),
            "svcnoport:T03S_6hogdrGKrNFBcbKTFsH_uKwDHEo8JddOg"
        );
        let all = selector_ipset_id("all()");
        assert_eq!(all, "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug");
        assert_eq!(
            named_port_ipset_id(&all, None, "http", v("3.31")),
            make_unique_id("n", &format!("{all},tcp,http"))
        );
        assert_eq!(
            named_port_ipset_id(&all, None, "http", v("3.32")),
            make_unique_id("n", &format!("{all},any,http"))
        );
        assert_eq!(named_port_protocol(Some("UDP"), v("3.32")), "udp");
        assert_eq!(named_port_protocol(Some("132"), v("3.20")), "sctp");
        assert_eq!(named_port_protocol(Some("icmp"), v("3.32")), "tcp");
    }

    #[test]
    fn policy_json_defaults_to_the_newest_version() {
        let j = policy_names_json(&gnp("xdpf"), None);
        assert_eq!(j["calico_version"], "v3.32");
        assert_eq!(j["ingress_chain"], "cali-pi-gnp/xdpf");
        assert_eq!(j["egress_chain"], "cali-po-gnp/xdpf");
        assert_eq!(j["comment_ingress"], "GlobalNetworkPolicy xdpf ingress");
        assert_eq!(j["hashed_input"], "gnp/xdpf");
        assert!(j["candidates"].as_array().is_some_and(|a| a.len() > 5));
        let j = policy_names_json(&gnp("xdpf"), Some(v("3.27")));
        assert!(j["nft_ingress_chain"].is_null());
        assert_eq!(j["ingress_chain"], "cali-pi-default.xdpf");
    }

    #[test]
    fn endpoint_and_profile_json_list_every_prefix() {
        let j = endpoint_names_json("eth0");
        assert_eq!(j["chains"]["cali-fhfw-"], "cali-fhfw-eth0");
        assert_eq!(j["chains"]["cali-sm-"], "cali-sm-eth0");
        assert_eq!(j["nft_chains"]["cali-tw-"], "filter-cali-tw-eth0");
        let j = profile_names_json("kns.default");
        assert_eq!(j["egress_chain"], "cali-pro-kns.default");
        assert_eq!(j["comment_ingress"], "Profile kns.default ingress");
    }
}
