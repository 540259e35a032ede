//! Calico and Kubernetes resources from YAML and JSON, as typed structs.
//!
//! Input is whatever `calicoctl get … -o yaml|json` or `kubectl get … -o yaml|json` printed
//! (or someone pasted): [`super::yaml`] splits it into objects with their lines, and this
//! module reads each object by `apiVersion` and `kind` into the fields the analysis uses.
//! Kinds it does not type (BGPPeer, IPAMBlock, ConfigMap …) are kept as [`OtherObject`]s.
//!
//! It reads the API's shape, not its meaning: names stay as written (the
//! `crd.projectcalico.org/v1` view's `default.` tier prefix is not stripped), protocol and
//! action strings keep their case, selectors are not parsed, and no Calico default is filled
//! in. That is `calico/` and `model/`'s job; [`Meta::api_version`] tells them which view an
//! object came from.
//!
//! Reading is tolerant: a field of the wrong type becomes a [`ParseError`] on the object's
//! line (or the rule's) and the object is kept with what could be read. Where the Go type is
//! a plain `string`/`bool`, the field is a `String`/`bool` (empty/false when absent); where it
//! is a pointer, or absence means something different from empty (selectors, label selectors,
//! `order`), it is an `Option`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::ParseError;
use super::yaml::{self, PathSeg, SourceObject, type_name};

// ---------------------------------------------------------------------------------------
// Common parts.

/// Object metadata, and where the object is.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Meta {
    pub name: String,
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// 1-based line of the object's `kind` (or of its start when it has none).
    pub line: usize,
    /// As written: `projectcalico.org/v3`, `crd.projectcalico.org/v1`, `v1`,
    /// `networking.k8s.io/v1` …
    pub api_version: String,
    pub kind: String,
    pub uid: Option<String>,
    pub creation_timestamp: Option<String>,
    /// Which artifact the object came from, once the caller says so
    /// ([`ResourceSet::set_artifact`]); merged sets mix files.
    pub artifact: Option<String>,
}

impl Meta {
    /// The API group part of `api_version` (`""` for the core `v1` group).
    pub fn group(&self) -> &str {
        self.api_version.split_once('/').map_or("", |(g, _)| g)
    }

    /// Read through the `crd.projectcalico.org/v1` CRDs (kubectl's view) rather than the
    /// `projectcalico.org/v3` API: tiered policy names carry a tier prefix there.
    pub fn is_crd_view(&self) -> bool {
        self.group() == "crd.projectcalico.org"
    }

    /// A Calico (or Tigera operator) resource, including pre-v3 `apiVersion: v1` ones.
    pub fn is_calico(&self) -> bool {
        let g = self.group();
        g.ends_with("projectcalico.org")
            || g.ends_with("tigera.io")
            || is_pre_v3(&self.api_version, &self.kind)
            || (self.api_version.is_empty() && CALICO_ONLY_KINDS.contains(&self.kind.as_str()))
    }

    /// `namespace/name`, or `name` for cluster-scoped objects.
    pub fn qualified_name(&self) -> String {
        match &self.namespace {
            Some(ns) if !ns.is_empty() => format!("{ns}/{}", self.name),
            _ => self.name.clone(),
        }
    }
}

/// Calico's `numorstring.Port`: a number, a `min:max` range, or a named port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Port {
    Number(u16),
    /// `min:max` with min < max (`80:80` is the same port as `80` in Calico and reads as
    /// [`Port::Number`]).
    Range(u16, u16),
    Named(String),
}

impl Port {
    /// Read a Calico port string as `numorstring.PortFromString` does: all digits is a port,
    /// `digits:digits` a range, anything else a port name (`[a-zA-Z0-9_.-]{1,128}`).
    pub fn from_calico_str(s: &str) -> Result<Port, String> {
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if digits(s) {
            return s
                .parse::<u16>()
                .map(Port::Number)
                .map_err(|_| format!("invalid port format ({s})"));
        }
        if let Some((a, b)) = s.split_once(':').filter(|(a, b)| digits(a) && digits(b)) {
            let lo = a
                .parse::<u16>()
                .map_err(|_| format!("invalid minimum port number in range ({s})"))?;
            let hi = b
                .parse::<u16>()
                .map_err(|_| format!("invalid maximum port number in range ({s})"))?;
            return match lo.cmp(&hi) {
                std::cmp::Ordering::Less => Ok(Port::Range(lo, hi)),
                std::cmp::Ordering::Equal => Ok(Port::Number(lo)),
                std::cmp::Ordering::Greater => Err(format!(
                    "minimum port number ({lo}) is greater than maximum port number ({hi}) in port range"
                )),
            };
        }
        let valid_name = (1..=128).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if valid_name {
            Ok(Port::Named(s.to_string()))
        } else {
            Err(format!("invalid name for named port ({s})"))
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Port::Number(n) => write!(f, "{n}"),
            Port::Range(a, b) => write!(f, "{a}:{b}"),
            Port::Named(n) => f.write_str(n),
        }
    }
}

impl Serialize for Port {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Port::Number(n) => s.serialize_u16(*n),
            other => s.collect_str(other),
        }
    }
}

/// Calico's `numorstring.Protocol`: a name as written (`TCP`, `tcp`, `ICMPv6` …) or a number.
/// A string of digits is a number, as Calico reads it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Protocol {
    Name(String),
    Number(u8),
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Name(n) => f.write_str(n),
            Protocol::Number(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Protocol::Number(n) => s.serialize_u8(*n),
            Protocol::Name(n) => s.serialize_str(n),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Calico policy.

/// Calico NetworkPolicy, GlobalNetworkPolicy and their staged variants.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CalicoPolicy {
    pub meta: Meta,
    pub spec: PolicySpec,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PolicySpec {
    pub tier: Option<String>,
    pub order: Option<f64>,
    pub selector: Option<String>,
    /// GlobalNetworkPolicy only.
    pub namespace_selector: Option<String>,
    pub service_account_selector: Option<String>,
    /// As written (`Ingress`, `Egress`); empty when absent.
    pub types: Vec<String>,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
    pub do_not_track: bool,
    pub pre_dnat: bool,
    pub apply_on_forward: bool,
    pub performance_hints: Vec<String>,
    /// Staged policies only: `Set`, `Delete`, `Learn`, `Ignore`.
    pub staged_action: Option<String>,
}

/// One Calico policy or profile rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rule {
    /// As written (`Allow`, `Deny`, `Log`, `Pass`; hand-written CRDs may say `allow`).
    pub action: String,
    pub ip_version: Option<u8>,
    pub protocol: Option<Protocol>,
    pub not_protocol: Option<Protocol>,
    pub icmp: Option<Icmp>,
    pub not_icmp: Option<Icmp>,
    pub source: EntityRule,
    pub destination: EntityRule,
    /// `http` match (application layer policy), kept as written.
    pub http: Option<Value>,
    pub metadata_annotations: BTreeMap<String, String>,
    /// 1-based line where the rule starts (best effort: the object's line when unknown).
    pub line: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Icmp {
    pub icmp_type: Option<u8>,
    pub code: Option<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EntityRule {
    pub nets: Vec<String>,
    pub not_nets: Vec<String>,
    pub selector: Option<String>,
    pub not_selector: Option<String>,
    pub namespace_selector: Option<String>,
    pub ports: Vec<Port>,
    pub not_ports: Vec<Port>,
    pub service_accounts: Option<ServiceAccountMatch>,
    pub services: Option<ServiceMatch>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceAccountMatch {
    pub names: Vec<String>,
    pub selector: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceMatch {
    pub name: String,
    pub namespace: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tier {
    pub meta: Meta,
    pub order: Option<f64>,
    /// `Deny` or `Pass`.
    pub default_action: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Calico endpoints, profiles, sets.

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WorkloadEndpoint {
    pub meta: Meta,
    pub node: String,
    pub orchestrator: String,
    pub workload: String,
    pub pod: String,
    pub endpoint: String,
    pub container_id: String,
    pub interface_name: String,
    pub mac: String,
    pub ip_networks: Vec<String>,
    pub ip_nats: Vec<IpNat>,
    pub ipv4_gateway: String,
    pub ipv6_gateway: String,
    pub profiles: Vec<String>,
    pub service_account_name: String,
    pub ports: Vec<EndpointPort>,
    pub allow_spoofed_source_prefixes: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IpNat {
    pub internal_ip: String,
    pub external_ip: String,
}

/// A named (or host) port of a workload or host endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EndpointPort {
    pub name: String,
    pub protocol: Option<Protocol>,
    pub port: u16,
    /// Workload endpoints only.
    pub host_port: u16,
    pub host_ip: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HostEndpoint {
    pub meta: Meta,
    pub node: String,
    pub interface_name: String,
    pub expected_ips: Vec<String>,
    pub profiles: Vec<String>,
    pub ports: Vec<EndpointPort>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Profile {
    pub meta: Meta,
    pub labels_to_apply: BTreeMap<String, String>,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
}

/// NetworkSet (namespaced) or GlobalNetworkSet.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NetworkSet {
    pub meta: Meta,
    pub nets: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// Calico configuration.

/// FelixConfiguration: the spec kept whole (it has ~200 fields), with getters for the ones
/// the analysis reads. Getters return `None` when the field is absent or of the wrong type.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FelixConfiguration {
    pub meta: Meta,
    pub spec: Value,
}

impl FelixConfiguration {
    /// A spec field by its API name (`bpfEnabled`), `None` when absent or null.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.spec.get(key).filter(|v| !v.is_null())
    }

    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// A boolean field; `"true"`/`"false"` strings (hand-written CRDs) are read too.
    pub fn bool_field(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
    }

    /// A 32-bit mask given as a number or as a `0x…`/decimal string.
    pub fn mask_field(&self, key: &str) -> Option<u32> {
        match self.get(key)? {
            Value::Number(n) => n.as_u64().and_then(|v| u32::try_from(v).ok()),
            Value::String(s) => {
                let s = s.trim();
                match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => s.parse().ok(),
                }
            }
            _ => None,
        }
    }

    pub fn bpf_enabled(&self) -> Option<bool> {
        self.bool_field("bpfEnabled")
    }
    /// `Legacy`, `NFT` or `Auto`.
    pub fn iptables_backend(&self) -> Option<&str> {
        self.str_field("iptablesBackend")
    }
    /// `Enabled`, `Disabled` or `Auto`.
    pub fn nftables_mode(&self) -> Option<&str> {
        self.str_field("nftablesMode")
    }
    pub fn interface_prefix(&self) -> Option<&str> {
        self.str_field("interfacePrefix")
    }
    pub fn iptables_mark_mask(&self) -> Option<u32> {
        self.mask_field("iptablesMarkMask")
    }
    pub fn nftables_mark_mask(&self) -> Option<u32> {
        self.mask_field("nftablesMarkMask")
    }
    pub fn default_endpoint_to_host_action(&self) -> Option<&str> {
        self.str_field("defaultEndpointToHostAction")
    }
    pub fn chain_insert_mode(&self) -> Option<&str> {
        self.str_field("chainInsertMode")
    }
    pub fn log_prefix(&self) -> Option<&str> {
        self.str_field("logPrefix")
    }
    pub fn ipip_enabled(&self) -> Option<bool> {
        self.bool_field("ipipEnabled")
    }
    pub fn vxlan_enabled(&self) -> Option<bool> {
        self.bool_field("vxlanEnabled")
    }
    pub fn wireguard_enabled(&self) -> Option<bool> {
        self.bool_field("wireguardEnabled")
    }
    pub fn ipv6_support(&self) -> Option<bool> {
        self.bool_field("ipv6Support")
    }
    /// Calico OSS flow logs go to Goldmane when this is set.
    pub fn flow_logs_goldmane_server(&self) -> Option<&str> {
        self.str_field("flowLogsGoldmaneServer")
    }
    /// Calico Enterprise's file flow logs switch.
    pub fn flow_logs_file_enabled(&self) -> Option<bool> {
        self.bool_field("flowLogsFileEnabled")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IpPool {
    pub meta: Meta,
    pub cidr: String,
    /// `Never`, `Always`, `CrossSubnet` as written; empty when absent.
    pub ipip_mode: String,
    pub vxlan_mode: String,
    pub nat_outgoing: bool,
    pub disabled: bool,
    pub disable_bgp_export: bool,
    pub block_size: Option<u32>,
    pub node_selector: Option<String>,
    pub namespace_selector: Option<String>,
    pub allowed_uses: Vec<String>,
    pub assignment_mode: Option<String>,
}

/// Calico's own Node resource (`projectcalico.org/v3`), not the Kubernetes Node.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CalicoNode {
    pub meta: Meta,
    pub bgp: Option<NodeBgp>,
    pub ipv4_vxlan_tunnel_addr: String,
    pub ipv6_vxlan_tunnel_addr: String,
    pub vxlan_tunnel_mac_addr: String,
    pub vxlan_tunnel_mac_addr_v6: String,
    pub orch_refs: Vec<OrchRef>,
    pub addresses: Vec<NodeAddress>,
    pub wireguard_interface_ipv4_address: String,
    pub wireguard_interface_ipv6_address: String,
    pub wireguard_public_key: String,
    pub wireguard_public_key_v6: String,
    pub pod_cidrs: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NodeBgp {
    /// As written (a number or the `1.10` dotted form).
    pub as_number: Option<String>,
    /// CIDR notation (`10.0.0.1/24`).
    pub ipv4_address: String,
    pub ipv6_address: String,
    pub ipv4_ipip_tunnel_addr: String,
    pub route_reflector_cluster_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OrchRef {
    pub node_name: String,
    pub orchestrator: String,
}

/// An address of a Calico Node (`address`, `type`) or of a Kubernetes Node (`type`,
/// `address`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NodeAddress {
    pub address: String,
    pub address_type: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClusterInformation {
    pub meta: Meta,
    pub cluster_guid: String,
    /// e.g. `k8s,bgp,kubeadm,kdd` (the datastore shows here as `kdd`).
    pub cluster_type: String,
    pub calico_version: String,
    pub datastore_ready: Option<bool>,
    pub variant: String,
}

// ---------------------------------------------------------------------------------------
// Kubernetes.

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Pod {
    pub meta: Meta,
    pub node_name: String,
    /// `spec.serviceAccountName`, else the deprecated `spec.serviceAccount`.
    pub service_account_name: String,
    pub host_network: bool,
    /// `status.podIPs`, else `status.podIP`.
    pub pod_ips: Vec<String>,
    pub host_ip: String,
    pub phase: String,
    pub containers: Vec<Container>,
    pub init_containers: Vec<Container>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Container {
    pub name: String,
    pub ports: Vec<ContainerPort>,
    /// Init containers only: `Always` makes a sidecar.
    pub restart_policy: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContainerPort {
    pub name: String,
    pub container_port: u16,
    /// As written; Kubernetes defaults an absent protocol to TCP.
    pub protocol: Option<String>,
    pub host_port: u16,
    pub host_ip: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Namespace {
    pub meta: Meta,
    pub phase: String,
}

/// A Kubernetes label selector. `None` where a field holds one means "not given", which
/// Kubernetes treats differently from `{}` (everything).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LabelSelectorRequirement {
    pub key: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`.
    pub operator: String,
    pub values: Vec<String>,
}

/// networking.k8s.io/v1 NetworkPolicy, and Calico's StagedKubernetesNetworkPolicy.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct K8sNetworkPolicy {
    pub meta: Meta,
    pub spec: K8sNetworkPolicySpec,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct K8sNetworkPolicySpec {
    /// Required by the API; absent reads as `{}` (all pods), as Kubernetes decodes it.
    pub pod_selector: LabelSelector,
    pub policy_types: Vec<String>,
    pub ingress: Vec<K8sIngressRule>,
    pub egress: Vec<K8sEgressRule>,
    /// StagedKubernetesNetworkPolicy only.
    pub staged_action: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct K8sIngressRule {
    /// Empty: from everywhere.
    pub from: Vec<K8sPeer>,
    /// Empty: all ports.
    pub ports: Vec<K8sPolicyPort>,
    pub line: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct K8sEgressRule {
    pub to: Vec<K8sPeer>,
    pub ports: Vec<K8sPolicyPort>,
    pub line: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct K8sPeer {
    pub pod_selector: Option<LabelSelector>,
    pub namespace_selector: Option<LabelSelector>,
    pub ip_block: Option<IpBlock>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IpBlock {
    pub cidr: String,
    pub except: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct K8sPolicyPort {
    /// As written; Kubernetes defaults an absent protocol to TCP.
    pub protocol: Option<String>,
    /// IntOrString: a number, or a named port. A string is always a name here, even
    /// `"80"` (Kubernetes does not read digits in the string form).
    pub port: Option<Port>,
    pub end_port: Option<u16>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Service {
    pub meta: Meta,
    /// `None`: no selector (endpoints managed by hand), unlike `{}`.
    pub selector: Option<BTreeMap<String, String>>,
    pub ports: Vec<ServicePort>,
    pub cluster_ip: String,
    pub cluster_ips: Vec<String>,
    /// `ClusterIP`, `NodePort`, `LoadBalancer`, `ExternalName`; empty when absent.
    pub service_type: String,
    pub external_ips: Vec<String>,
    pub external_traffic_policy: String,
    pub load_balancer_ips: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServicePort {
    pub name: String,
    pub protocol: Option<String>,
    pub port: u16,
    /// IntOrString, as for [`K8sPolicyPort::port`].
    pub target_port: Option<Port>,
    pub node_port: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct K8sNode {
    pub meta: Meta,
    pub addresses: Vec<NodeAddress>,
    pub pod_cidr: String,
    pub pod_cidrs: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceAccount {
    pub meta: Meta,
}

/// Any other object, kept whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OtherObject {
    pub meta: Meta,
    /// Why it was not typed, when that is worth saying (a pre-v3 Calico resource, a kind this
    /// module does not know in a Calico group).
    pub note: Option<String>,
    pub value: Value,
}

// ---------------------------------------------------------------------------------------
// The set.

/// Everything read from one or more resource artifacts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ResourceSet {
    pub network_policies: Vec<CalicoPolicy>,
    pub global_network_policies: Vec<CalicoPolicy>,
    pub staged_network_policies: Vec<CalicoPolicy>,
    pub staged_global_network_policies: Vec<CalicoPolicy>,
    pub staged_kubernetes_network_policies: Vec<K8sNetworkPolicy>,
    pub tiers: Vec<Tier>,
    pub workload_endpoints: Vec<WorkloadEndpoint>,
    pub host_endpoints: Vec<HostEndpoint>,
    pub profiles: Vec<Profile>,
    pub network_sets: Vec<NetworkSet>,
    pub global_network_sets: Vec<NetworkSet>,
    pub felix_configurations: Vec<FelixConfiguration>,
    pub ip_pools: Vec<IpPool>,
    pub nodes: Vec<CalicoNode>,
    pub cluster_informations: Vec<ClusterInformation>,
    pub pods: Vec<Pod>,
    pub namespaces: Vec<Namespace>,
    pub k8s_network_policies: Vec<K8sNetworkPolicy>,
    pub k8s_nodes: Vec<K8sNode>,
    pub services: Vec<Service>,
    pub service_accounts: Vec<ServiceAccount>,
    pub other: Vec<OtherObject>,
    pub errors: Vec<ParseError>,
}

/// Apply `$body` to every object vector of a [`ResourceSet`] (`$v` binds each).
macro_rules! each_vec {
    ($set:expr, $v:ident => $body:expr) => {{
        {
            let $v = &$set.network_policies;
            $body
        }
        {
            let $v = &$set.global_network_policies;
            $body
        }
        {
            let $v = &$set.staged_network_policies;
            $body
        }
        {
            let $v = &$set.staged_global_network_policies;
            $body
        }
        {
            let $v = &$set.staged_kubernetes_network_policies;
            $body
        }
        {
            let $v = &$set.tiers;
            $body
        }
        {
            let $v = &$set.workload_endpoints;
            $body
        }
        {
            let $v = &$set.host_endpoints;
            $body
        }
        {
            let $v = &$set.profiles;
            $body
        }
        {
            let $v = &$set.network_sets;
            $body
        }
        {
            let $v = &$set.global_network_sets;
            $body
        }
        {
            let $v = &$set.felix_configurations;
            $body
        }
        {
            let $v = &$set.ip_pools;
            $body
        }
        {
            let $v = &$set.nodes;
            $body
        }
        {
            let $v = &$set.cluster_informations;
            $body
        }
        {
            let $v = &$set.pods;
            $body
        }
        {
            let $v = &$set.namespaces;
            $body
        }
        {
            let $v = &$set.k8s_network_policies;
            $body
        }
        {
            let $v = &$set.k8s_nodes;
            $body
        }
        {
            let $v = &$set.services;
            $body
        }
        {
            let $v = &$set.service_accounts;
            $body
        }
        {
            let $v = &$set.other;
            $body
        }
    }};
}

/// Anything with a [`Meta`].
pub trait HasMeta {
    fn meta(&self) -> &Meta;
    fn meta_mut(&mut self) -> &mut Meta;
}

macro_rules! has_meta {
    ($($t:ty),*) => {$(
        impl HasMeta for $t {
            fn meta(&self) -> &Meta { &self.meta }
            fn meta_mut(&mut self) -> &mut Meta { &mut self.meta }
        }
    )*};
}

has_meta!(
    CalicoPolicy,
    K8sNetworkPolicy,
    Tier,
    WorkloadEndpoint,
    HostEndpoint,
    Profile,
    NetworkSet,
    FelixConfiguration,
    IpPool,
    CalicoNode,
    ClusterInformation,
    Pod,
    Namespace,
    K8sNode,
    Service,
    ServiceAccount,
    OtherObject
);

impl ResourceSet {
    /// Records as the report counts them: objects.
    pub fn records(&self) -> usize {
        let mut n = 0;
        each_vec!(self, v => n += v.len());
        n
    }

    /// Every object's metadata, in the field order of this struct.
    pub fn metas(&self) -> Vec<&Meta> {
        let mut out = Vec::with_capacity(self.records());
        each_vec!(self, v => out.extend(v.iter().map(HasMeta::meta)));
        out
    }

    /// Objects of Calico's API groups (and pre-v3 Calico objects).
    pub fn calico_records(&self) -> usize {
        self.metas().into_iter().filter(|m| m.is_calico()).count()
    }

    /// Objects of any other API group (core, networking.k8s.io, apps …).
    pub fn k8s_records(&self) -> usize {
        self.records() - self.calico_records()
    }

    /// Mostly Calico objects: the artifact is `calico-resources`.
    pub fn is_calico(&self) -> bool {
        let c = self.calico_records();
        c > 0 && c >= self.records() - c
    }

    /// Mostly Kubernetes objects: the artifact is `k8s-resources`.
    pub fn is_k8s(&self) -> bool {
        let c = self.calico_records();
        self.records() - c > c
    }

    /// Record on every object which artifact it came from.
    pub fn set_artifact(&mut self, artifact: &str) {
        macro_rules! tag {
            ($($f:ident),*) => {$(
                for o in &mut self.$f {
                    o.meta_mut().artifact = Some(artifact.to_string());
                }
            )*};
        }
        tag!(
            network_policies,
            global_network_policies,
            staged_network_policies,
            staged_global_network_policies,
            staged_kubernetes_network_policies,
            tiers,
            workload_endpoints,
            host_endpoints,
            profiles,
            network_sets,
            global_network_sets,
            felix_configurations,
            ip_pools,
            nodes,
            cluster_informations,
            pods,
            namespaces,
            k8s_network_policies,
            k8s_nodes,
            services,
            service_accounts,
            other
        );
    }

    /// Append another set (another artifact) to this one.
    pub fn merge(&mut self, other: ResourceSet) {
        macro_rules! append {
            ($($f:ident),*) => {$( self.$f.extend(other.$f); )*};
        }
        append!(
            network_policies,
            global_network_policies,
            staged_network_policies,
            staged_global_network_policies,
            staged_kubernetes_network_policies,
            tiers,
            workload_endpoints,
            host_endpoints,
            profiles,
            network_sets,
            global_network_sets,
            felix_configurations,
            ip_pools,
            nodes,
            cluster_informations,
            pods,
            namespaces,
            k8s_network_policies,
            k8s_nodes,
            services,
            service_accounts,
            other,
            errors
        );
    }

    /// Read one decoded object into the set.
    pub fn add(&mut self, obj: SourceObject) {
        let mut errors = Vec::new();
        let other = self.add_typed(&obj, &mut errors);
        self.errors.extend(errors);
        if let Some((meta, note)) = other {
            self.other.push(OtherObject {
                meta,
                note,
                value: obj.value,
            });
        }
    }

    /// Type the object into its vector; an object of no typed kind comes back with its
    /// metadata, for [`OtherObject`].
    fn add_typed(
        &mut self,
        obj: &SourceObject,
        errors: &mut Vec<ParseError>,
    ) -> Option<(Meta, Option<String>)> {
        let v = &obj.value;
        if !v.is_object() {
            return None;
        }
        if present(v, "kind").is_none() {
            let msg = "object has no kind; not read as a resource";
            errors.push(ParseError::new(obj.line, msg));
            return None;
        }
        let mut r = Reader {
            errors,
            who: String::new(),
            obj,
        };
        let meta = r.meta();
        let route = route(&meta.api_version, &meta.kind);
        if meta.api_version.is_empty() {
            let msg = format!("{}: no apiVersion", r.who);
            r.errors.push(ParseError::new(obj.line, msg));
        }
        // Other kinds' specs are kept as they are; FelixConfiguration reads its own.
        let spec = match route {
            Route::Other(_) | Route::FelixConfiguration => &EMPTY,
            _ => r.spec(),
        };
        match route {
            Route::CalicoPolicy(which) => {
                let spec = r.policy_spec(spec);
                let p = CalicoPolicy { meta, spec };
                match which {
                    PolicyKind::Namespaced => self.network_policies.push(p),
                    PolicyKind::Global => self.global_network_policies.push(p),
                    PolicyKind::StagedNamespaced => self.staged_network_policies.push(p),
                    PolicyKind::StagedGlobal => self.staged_global_network_policies.push(p),
                }
            }
            Route::StagedK8sPolicy => {
                let spec = r.k8s_policy_spec(spec);
                let p = K8sNetworkPolicy { meta, spec };
                self.staged_kubernetes_network_policies.push(p);
            }
            Route::K8sPolicy => {
                let spec = r.k8s_policy_spec(spec);
                self.k8s_network_policies
                    .push(K8sNetworkPolicy { meta, spec });
            }
            Route::Tier => {
                let t = Tier {
                    order: r.opt_f64(spec, "order", "spec", obj.line),
                    default_action: r.opt_str(spec, "defaultAction", "spec", obj.line),
                    meta,
                };
                self.tiers.push(t);
            }
            Route::WorkloadEndpoint => {
                let w = r.workload_endpoint(meta, spec);
                self.workload_endpoints.push(w);
            }
            Route::HostEndpoint => {
                let at = obj.line;
                let h = HostEndpoint {
                    node: r.string(spec, "node", "spec", at),
                    interface_name: r.string(spec, "interfaceName", "spec", at),
                    expected_ips: r.str_list(spec, "expectedIPs", "spec", at),
                    profiles: r.str_list(spec, "profiles", "spec", at),
                    ports: r.endpoint_ports(spec),
                    meta,
                };
                self.host_endpoints.push(h);
            }
            Route::Profile => {
                let p = Profile {
                    labels_to_apply: r.str_map(spec, "labelsToApply", "spec", obj.line),
                    ingress: r.rules(spec, "ingress"),
                    egress: r.rules(spec, "egress"),
                    meta,
                };
                self.profiles.push(p);
            }
            Route::NetworkSet { global } => {
                let s = NetworkSet {
                    nets: r.str_list(spec, "nets", "spec", obj.line),
                    meta,
                };
                if global {
                    self.global_network_sets.push(s);
                } else {
                    self.network_sets.push(s);
                }
            }
            Route::FelixConfiguration => {
                let spec = v.get("spec").cloned().unwrap_or(Value::Null);
                let spec = match spec {
                    Value::Object(_) => spec,
                    Value::Null => Value::Object(Map::new()),
                    other => {
                        let msg = format!(
                            "{}: spec: expected a mapping, found {}",
                            r.who,
                            type_name(&other)
                        );
                        r.errors.push(ParseError::new(obj.line, msg));
                        Value::Object(Map::new())
                    }
                };
                self.felix_configurations
                    .push(FelixConfiguration { meta, spec });
            }
            Route::IpPool => {
                let p = r.ip_pool(meta, spec);
                self.ip_pools.push(p);
            }
            Route::CalicoNode => {
                let n = r.calico_node(meta, v, spec);
                self.nodes.push(n);
            }
            Route::ClusterInformation => {
                let at = obj.line;
                let c = ClusterInformation {
                    cluster_guid: r.string(spec, "clusterGUID", "spec", at),
                    cluster_type: r.string(spec, "clusterType", "spec", at),
                    calico_version: r.string(spec, "calicoVersion", "spec", at),
                    datastore_ready: r.opt_bool(spec, "datastoreReady", "spec", at),
                    variant: r.string(spec, "variant", "spec", at),
                    meta,
                };
                self.cluster_informations.push(c);
            }
            Route::Pod => {
                let p = r.pod(meta, v, spec);
                self.pods.push(p);
            }
            Route::Namespace => {
                let status = r.object(v, "status", "", obj.line);
                let phase = r.string(status, "phase", "status", obj.line);
                self.namespaces.push(Namespace { meta, phase });
            }
            Route::K8sNode => {
                let n = r.k8s_node(meta, v, spec);
                self.k8s_nodes.push(n);
            }
            Route::Service => {
                let s = r.service(meta, spec);
                self.services.push(s);
            }
            Route::ServiceAccount => self.service_accounts.push(ServiceAccount { meta }),
            Route::Other(note) => return Some((meta, note)),
        }
        None
    }
}

/// Read every resource in `text` (YAML or JSON, any of the shapes [`yaml::objects`] takes).
pub fn parse(text: &str) -> ResourceSet {
    let mut set = ResourceSet::default();
    let mut errors = Vec::new();
    // One object at a time: each decoded value is dropped once it is typed.
    yaml::for_each_object(text, &mut errors, |obj| set.add(obj));
    set.errors.extend(errors);
    set.errors.sort_by_key(|e| e.line);
    set
}

/// Cheap content sniff: Kubernetes-style resources (apiVersion and kind near the start).
pub fn looks_like_resources(head: &str) -> bool {
    yaml::looks_like_resources(head)
}

// ---------------------------------------------------------------------------------------
// Routing by apiVersion and kind.

/// Kinds only Calico has, so an object missing its apiVersion can still be placed.
const CALICO_ONLY_KINDS: &[&str] = &[
    "GlobalNetworkPolicy",
    "StagedNetworkPolicy",
    "StagedGlobalNetworkPolicy",
    "StagedKubernetesNetworkPolicy",
    "Tier",
    "WorkloadEndpoint",
    "HostEndpoint",
    "Profile",
    "NetworkSet",
    "GlobalNetworkSet",
    "FelixConfiguration",
    "IPPool",
    "ClusterInformation",
];

/// calicoctl v1.x resources: `apiVersion: v1` with lowercase kinds (`policy`, `profile`,
/// `workloadEndpoint` …). Kubernetes core kinds are capitalised, so the case tells them apart.
fn is_pre_v3(api_version: &str, kind: &str) -> bool {
    api_version == "v1" && kind.starts_with(|c: char| c.is_ascii_lowercase())
}

enum PolicyKind {
    Namespaced,
    Global,
    StagedNamespaced,
    StagedGlobal,
}

enum Route {
    CalicoPolicy(PolicyKind),
    StagedK8sPolicy,
    K8sPolicy,
    Tier,
    WorkloadEndpoint,
    HostEndpoint,
    Profile,
    NetworkSet { global: bool },
    FelixConfiguration,
    IpPool,
    CalicoNode,
    ClusterInformation,
    Pod,
    Namespace,
    K8sNode,
    Service,
    ServiceAccount,
    Other(Option<String>),
}

fn route(api_version: &str, kind: &str) -> Route {
    if is_pre_v3(api_version, kind) {
        return Route::Other(Some(format!(
            "pre-v3 Calico resource (apiVersion v1, kind {kind}); not analysed"
        )));
    }
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    let calico = matches!(group, "projectcalico.org" | "crd.projectcalico.org")
        || (api_version.is_empty() && CALICO_ONLY_KINDS.contains(&kind));
    if calico {
        return match kind {
            "NetworkPolicy" => Route::CalicoPolicy(PolicyKind::Namespaced),
            "GlobalNetworkPolicy" => Route::CalicoPolicy(PolicyKind::Global),
            "StagedNetworkPolicy" => Route::CalicoPolicy(PolicyKind::StagedNamespaced),
            "StagedGlobalNetworkPolicy" => Route::CalicoPolicy(PolicyKind::StagedGlobal),
            "StagedKubernetesNetworkPolicy" => Route::StagedK8sPolicy,
            "Tier" => Route::Tier,
            "WorkloadEndpoint" => Route::WorkloadEndpoint,
            "HostEndpoint" => Route::HostEndpoint,
            "Profile" => Route::Profile,
            "NetworkSet" => Route::NetworkSet { global: false },
            "GlobalNetworkSet" => Route::NetworkSet { global: true },
            "FelixConfiguration" => Route::FelixConfiguration,
            "IPPool" => Route::IpPool,
            "Node" => Route::CalicoNode,
            "ClusterInformation" => Route::ClusterInformation,
            _ if kind.starts_with(|c: char| c.is_ascii_lowercase()) => Route::Other(Some(format!(
                "kind {kind:?} is not a Calico kind (kinds are capitalised)"
            ))),
            _ => Route::Other(None),
        };
    }
    match (api_version, group, kind) {
        ("v1" | "", _, "Pod") => Route::Pod,
        ("v1" | "", _, "Namespace") => Route::Namespace,
        ("v1" | "", _, "Service") => Route::Service,
        ("v1" | "", _, "ServiceAccount") => Route::ServiceAccount,
        ("v1", _, "Node") => Route::K8sNode,
        (_, "networking.k8s.io" | "extensions", "NetworkPolicy") => Route::K8sPolicy,
        ("", _, "NetworkPolicy" | "Node") => Route::Other(Some(format!(
            "kind {kind} without apiVersion: Calico or Kubernetes cannot be told"
        ))),
        _ => Route::Other(None),
    }
}

// ---------------------------------------------------------------------------------------
// Tolerant field reading.

static EMPTY: Value = Value::Null;

/// Reads fields of one object, turning type mismatches into errors that name the object.
struct Reader<'a> {
    errors: &'a mut Vec<ParseError>,
    /// `Kind namespace/name`, for messages.
    who: String,
    obj: &'a SourceObject,
}

fn field_name(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn present<'v>(obj: &'v Value, key: &str) -> Option<&'v Value> {
    obj.get(key).filter(|v| !v.is_null())
}

impl<'a> Reader<'a> {
    fn bad(&mut self, line: usize, prefix: &str, key: &str, msg: impl fmt::Display) {
        let msg = format!("{}: {}: {msg}", self.who, field_name(prefix, key));
        self.errors.push(ParseError::new(line, msg));
    }

    fn opt_str(&mut self, obj: &Value, key: &str, prefix: &str, line: usize) -> Option<String> {
        let v = present(obj, key)?;
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(_) | Value::Bool(_) => {
                let s = scalar_text(v).unwrap_or_default();
                let msg = format!("expected a string, found {} (read as {s:?})", type_name(v));
                self.bad(line, prefix, key, msg);
                Some(s)
            }
            _ => {
                let msg = format!("expected a string, found {}", type_name(v));
                self.bad(line, prefix, key, msg);
                None
            }
        }
    }

    fn string(&mut self, obj: &Value, key: &str, prefix: &str, line: usize) -> String {
        self.opt_str(obj, key, prefix, line).unwrap_or_default()
    }

    fn opt_bool(&mut self, obj: &Value, key: &str, prefix: &str, line: usize) -> Option<bool> {
        let v = present(obj, key)?;
        match v {
            Value::Bool(b) => Some(*b),
            Value::String(s)
                if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") =>
            {
                self.bad(
                    line,
                    prefix,
                    key,
                    "expected a boolean, found a string (read anyway)",
                );
                Some(s.eq_ignore_ascii_case("true"))
            }
            _ => {
                let msg = format!("expected a boolean, found {}", type_name(v));
                self.bad(line, prefix, key, msg);
                None
            }
        }
    }

    fn bool(&mut self, obj: &Value, key: &str, prefix: &str, line: usize) -> bool {
        self.opt_bool(obj, key, prefix, line).unwrap_or(false)
    }

    fn opt_f64(&mut self, obj: &Value, key: &str, prefix: &str, line: usize) -> Option<f64> {
        let v = present(obj, key)?;
        match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) if s.trim().parse::<f64>().is_ok_and(f64::is_finite) => {
                self.bad(
                    line,
                    prefix,
                    key,
                    "expected a number, found a string (read anyway)",
                );
                s.trim().parse().ok()
            }
            _ => {
                let msg = format!("expected a number, found {}", type_name(v));
                self.bad(line, prefix, key, msg);
                None
            }
        }
    }

    /// An integer from 0 to `max`; digits in a string are read too, with an error.
    fn opt_int(
        &mut self,
        obj: &Value,
        key: &str,
        prefix: &str,
        line: usize,
        max: u64,
    ) -> Option<u64> {
        let v = present(obj, key)?;
        let n = match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) if s.trim().parse::<u64>().is_ok() => {
                self.bad(
                    line,
                    prefix,
                    key,
                    "expected a number, found a string (read anyway)",
                );
                s.trim().parse().ok()
            }
            _ => None,
        };
        match n {
            Some(n) if n <= max => Some(n),
            _ => {
                let shown = scalar_text(v).unwrap_or_else(|| type_name(v).to_string());
                let msg = format!("expected an integer from 0 to {max}, found {shown}");
                self.bad(line, prefix, key, msg);
                None
            }
        }
    }

    fn opt_u8(&mut self, obj: &Value, key: &str, prefix: &str, line: usize) -> Option<u8> {
        self.opt_int(obj, key, prefix, line, u8::MAX.into())
            .and_then(|n| u8::try_from(n).ok())
    }

    fn u16(&mut self, obj: &Value, key: &str, prefix: &str, line: usize) -> u16 {
        self.opt_int(obj, key, prefix, line, u16::MAX.into())
            .and_then(|n| u16::try_from(n).ok())
            .unwrap_or(0)
    }

    fn str_list(&mut self, obj: &Value, key: &str, prefix: &str, line: usize) -> Vec<String> {
        match present(obj, key) {
            None => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        Value::Number(_) | Value::Bool(_) => {
                            let s = scalar_text(item).unwrap_or_default();
                            let msg = format!("expected a string, found {}", type_name(item));
                            self.bad(line, prefix, &format!("{key}[{i}]"), msg);
                            out.push(s);
                        }
                        Value::Null => {}
                        _ => {
                            let msg = format!("expected a string, found {}", type_name(item));
                            self.bad(line, prefix, &format!("{key}[{i}]"), msg);
                        }
                    }
                }
                out
            }
            Some(Value::String(s)) => {
                self.bad(
                    line,
                    prefix,
                    key,
                    "expected a list, found a string (read as one item)",
                );
                vec![s.clone()]
            }
            Some(v) => {
                let msg = format!("expected a list, found {}", type_name(v));
                self.bad(line, prefix, key, msg);
                Vec::new()
            }
        }
    }

    fn opt_str_map(
        &mut self,
        obj: &Value,
        key: &str,
        prefix: &str,
        line: usize,
    ) -> Option<BTreeMap<String, String>> {
        match present(obj, key)? {
            Value::Object(m) => {
                let mut out = BTreeMap::new();
                for (k, v) in m {
                    match v {
                        Value::String(s) => {
                            out.insert(k.clone(), s.clone());
                        }
                        Value::Null => {
                            out.insert(k.clone(), String::new());
                        }
                        Value::Number(_) | Value::Bool(_) => {
                            let s = scalar_text(v).unwrap_or_default();
                            let msg = format!(
                                "expected a string, found {} (read as {s:?})",
                                type_name(v)
                            );
                            self.bad(line, prefix, &format!("{key}.{k}"), msg);
                            out.insert(k.clone(), s);
                        }
                        _ => {
                            let msg = format!("expected a string, found {}", type_name(v));
                            self.bad(line, prefix, &format!("{key}.{k}"), msg);
                        }
                    }
                }
                Some(out)
            }
            v => {
                let msg = format!("expected a mapping, found {}", type_name(v));
                self.bad(line, prefix, key, msg);
                None
            }
        }
    }

    fn str_map(
        &mut self,
        obj: &Value,
        key: &str,
        prefix: &str,
        line: usize,
    ) -> BTreeMap<String, String> {
        self.opt_str_map(obj, key, prefix, line).unwrap_or_default()
    }

    /// A nested mapping; absent, null or of the wrong type reads as an empty one.
    fn object<'v>(&mut self, obj: &'v Value, key: &str, prefix: &str, line: usize) -> &'v Value {
        match present(obj, key) {
            None => &EMPTY,
            Some(v @ Value::Object(_)) => v,
            Some(v) => {
                let msg = format!("expected a mapping, found {}", type_name(v));
                self.bad(line, prefix, key, msg);
                &EMPTY
            }
        }
    }

    /// A nested mapping that may be absent (`None`), as opposed to given and empty.
    fn opt_object<'v>(
        &mut self,
        obj: &'v Value,
        key: &str,
        prefix: &str,
        line: usize,
    ) -> Option<&'v Value> {
        match present(obj, key)? {
            v @ Value::Object(_) => Some(v),
            v => {
                let msg = format!("expected a mapping, found {}", type_name(v));
                self.bad(line, prefix, key, msg);
                None
            }
        }
    }

    fn list<'v>(&mut self, obj: &'v Value, key: &str, prefix: &str, line: usize) -> &'v [Value] {
        match present(obj, key) {
            None => &[],
            Some(Value::Array(items)) => items,
            Some(v) => {
                let msg = format!("expected a list, found {}", type_name(v));
                self.bad(line, prefix, key, msg);
                &[]
            }
        }
    }

    // -- metadata ----------------------------------------------------------------------

    fn meta(&mut self) -> Meta {
        let line = self.obj.line;
        let root = &self.obj.value;
        let api_version = self.string(root, "apiVersion", "", line);
        let kind = self.string(root, "kind", "", line);
        self.who = kind.clone();
        let md = self.object(root, "metadata", "", line);
        let name = self.string(md, "name", "metadata", line);
        let namespace = self.opt_str(md, "namespace", "metadata", line);
        let mut meta = Meta {
            name,
            namespace,
            line,
            api_version,
            kind,
            ..Meta::default()
        };
        self.who = format!("{} {}", meta.kind, meta.qualified_name());
        meta.labels = self.str_map(md, "labels", "metadata", line);
        meta.annotations = self.str_map(md, "annotations", "metadata", line);
        meta.uid = self.opt_str(md, "uid", "metadata", line);
        meta.creation_timestamp = self.opt_str(md, "creationTimestamp", "metadata", line);
        if meta.name.is_empty() && present(md, "generateName").is_none() {
            let msg = format!("{}: no metadata.name", self.who);
            self.errors.push(ParseError::new(line, msg));
        }
        meta
    }

    fn spec(&mut self) -> &'a Value {
        let root: &'a Value = &self.obj.value;
        self.object(root, "spec", "", self.obj.line)
    }

    /// Line of `spec.<dir>[i]`, else the object's.
    fn rule_line(&self, dir: &str, i: usize) -> usize {
        self.obj
            .line_of(&[
                PathSeg::Key("spec".into()),
                PathSeg::Key(dir.into()),
                PathSeg::Index(i),
            ])
            .unwrap_or(self.obj.line)
    }

    // -- Calico policy -----------------------------------------------------------------

    fn policy_spec(&mut self, spec: &Value) -> PolicySpec {
        let at = self.obj.line;
        let p = "spec";
        PolicySpec {
            tier: self.opt_str(spec, "tier", p, at),
            order: self.opt_f64(spec, "order", p, at),
            selector: self.opt_str(spec, "selector", p, at),
            namespace_selector: self.opt_str(spec, "namespaceSelector", p, at),
            service_account_selector: self.opt_str(spec, "serviceAccountSelector", p, at),
            types: self.str_list(spec, "types", p, at),
            ingress: self.rules(spec, "ingress"),
            egress: self.rules(spec, "egress"),
            do_not_track: self.bool(spec, "doNotTrack", p, at),
            pre_dnat: self.bool(spec, "preDNAT", p, at),
            apply_on_forward: self.bool(spec, "applyOnForward", p, at),
            performance_hints: self.str_list(spec, "performanceHints", p, at),
            staged_action: self.opt_str(spec, "stagedAction", p, at),
        }
    }

    fn rules(&mut self, spec: &Value, dir: &str) -> Vec<Rule> {
        let items = self.list(spec, dir, "spec", self.obj.line);
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let line = self.rule_line(dir, i);
            let prefix = format!("spec.{dir}[{i}]");
            if !item.is_object() {
                let msg = format!("expected a rule mapping, found {}", type_name(item));
                self.bad(line, "", &prefix, msg);
                continue;
            }
            out.push(self.rule(item, &prefix, line));
        }
        out
    }

    fn rule(&mut self, v: &Value, p: &str, line: usize) -> Rule {
        let action = match self.opt_str(v, "action", p, line) {
            Some(a) => a,
            None => {
                self.bad(line, p, "action", "missing");
                String::new()
            }
        };
        let meta = self.object(v, "metadata", p, line);
        let mp = field_name(p, "metadata");
        Rule {
            action,
            ip_version: self.opt_u8(v, "ipVersion", p, line),
            protocol: self.protocol(v, "protocol", p, line),
            not_protocol: self.protocol(v, "notProtocol", p, line),
            icmp: self.icmp(v, "icmp", p, line),
            not_icmp: self.icmp(v, "notICMP", p, line),
            source: self.entity(v, "source", p, line),
            destination: self.entity(v, "destination", p, line),
            http: present(v, "http").cloned(),
            metadata_annotations: self.str_map(meta, "annotations", &mp, line),
            line,
        }
    }

    fn protocol(&mut self, obj: &Value, key: &str, p: &str, line: usize) -> Option<Protocol> {
        let v = present(obj, key)?;
        match v {
            Value::Number(n) => match n.as_u64().and_then(|n| u8::try_from(n).ok()) {
                Some(n) => Some(Protocol::Number(n)),
                None => {
                    self.bad(line, p, key, format!("protocol number {n} is out of range"));
                    None
                }
            },
            Value::String(s) => Some(match s.parse::<u8>() {
                Ok(n) => Protocol::Number(n),
                Err(_) => Protocol::Name(s.clone()),
            }),
            _ => {
                let msg = format!("expected a protocol, found {}", type_name(v));
                self.bad(line, p, key, msg);
                None
            }
        }
    }

    fn icmp(&mut self, obj: &Value, key: &str, p: &str, line: usize) -> Option<Icmp> {
        let v = self.opt_object(obj, key, p, line)?;
        let ip = field_name(p, key);
        Some(Icmp {
            icmp_type: self.opt_u8(v, "type", &ip, line),
            code: self.opt_u8(v, "code", &ip, line),
        })
    }

    fn entity(&mut self, obj: &Value, key: &str, p: &str, line: usize) -> EntityRule {
        let v = self.object(obj, key, p, line);
        let ep = field_name(p, key);
        let ep = ep.as_str();
        let service_accounts = self.opt_object(v, "serviceAccounts", ep, line).map(|sa| {
            let sp = field_name(ep, "serviceAccounts");
            ServiceAccountMatch {
                names: self.str_list(sa, "names", &sp, line),
                selector: self.opt_str(sa, "selector", &sp, line),
            }
        });
        let services = self.opt_object(v, "services", ep, line).map(|s| {
            let sp = field_name(ep, "services");
            ServiceMatch {
                name: self.string(s, "name", &sp, line),
                namespace: self.string(s, "namespace", &sp, line),
            }
        });
        EntityRule {
            nets: self.str_list(v, "nets", ep, line),
            not_nets: self.str_list(v, "notNets", ep, line),
            selector: self.opt_str(v, "selector", ep, line),
            not_selector: self.opt_str(v, "notSelector", ep, line),
            namespace_selector: self.opt_str(v, "namespaceSelector", ep, line),
            ports: self.calico_ports(v, "ports", ep, line),
            not_ports: self.calico_ports(v, "notPorts", ep, line),
            service_accounts,
            services,
        }
    }

    fn calico_ports(&mut self, obj: &Value, key: &str, p: &str, line: usize) -> Vec<Port> {
        let items = self.list(obj, key, p, line);
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let k = format!("{key}[{i}]");
            let port = match item {
                Value::Number(n) => n
                    .as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .map(Port::Number)
                    .ok_or_else(|| format!("invalid port number ({n})")),
                Value::String(s) => Port::from_calico_str(s),
                other => Err(format!("expected a port, found {}", type_name(other))),
            };
            match port {
                Ok(port) => out.push(port),
                Err(msg) => self.bad(line, p, &k, msg),
            }
        }
        out
    }

    // -- Calico endpoints ----------------------------------------------------------------

    fn endpoint_ports(&mut self, spec: &Value) -> Vec<EndpointPort> {
        let line = self.obj.line;
        let items = self.list(spec, "ports", "spec", line);
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let p = format!("spec.ports[{i}]");
            if !item.is_object() {
                let msg = format!("expected a port mapping, found {}", type_name(item));
                self.bad(line, "", &p, msg);
                continue;
            }
            out.push(EndpointPort {
                name: self.string(item, "name", &p, line),
                protocol: self.protocol(item, "protocol", &p, line),
                port: self.u16(item, "port", &p, line),
                host_port: self.u16(item, "hostPort", &p, line),
                host_ip: self.string(item, "hostIP", &p, line),
            });
        }
        out
    }

    fn workload_endpoint(&mut self, meta: Meta, spec: &Value) -> WorkloadEndpoint {
        let at = self.obj.line;
        let p = "spec";
        let nats = self.list(spec, "ipNATs", p, at);
        let ip_nats = nats
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let np = format!("spec.ipNATs[{i}]");
                IpNat {
                    internal_ip: self.string(n, "internalIP", &np, at),
                    external_ip: self.string(n, "externalIP", &np, at),
                }
            })
            .collect();
        WorkloadEndpoint {
            node: self.string(spec, "node", p, at),
            orchestrator: self.string(spec, "orchestrator", p, at),
            workload: self.string(spec, "workload", p, at),
            pod: self.string(spec, "pod", p, at),
            endpoint: self.string(spec, "endpoint", p, at),
            container_id: self.string(spec, "containerID", p, at),
            interface_name: self.string(spec, "interfaceName", p, at),
            mac: self.string(spec, "mac", p, at),
            ip_networks: self.str_list(spec, "ipNetworks", p, at),
            ip_nats,
            ipv4_gateway: self.string(spec, "ipv4Gateway", p, at),
            ipv6_gateway: self.string(spec, "ipv6Gateway", p, at),
            profiles: self.str_list(spec, "profiles", p, at),
            service_account_name: self.string(spec, "serviceAccountName", p, at),
            ports: self.endpoint_ports(spec),
            allow_spoofed_source_prefixes: self.str_list(spec, "allowSpoofedSourcePrefixes", p, at),
            meta,
        }
    }

    fn ip_pool(&mut self, meta: Meta, spec: &Value) -> IpPool {
        let at = self.obj.line;
        let p = "spec";
        IpPool {
            cidr: self.string(spec, "cidr", p, at),
            ipip_mode: self.string(spec, "ipipMode", p, at),
            vxlan_mode: self.string(spec, "vxlanMode", p, at),
            nat_outgoing: self.bool(spec, "natOutgoing", p, at),
            disabled: self.bool(spec, "disabled", p, at),
            disable_bgp_export: self.bool(spec, "disableBGPExport", p, at),
            block_size: self
                .opt_int(spec, "blockSize", p, at, 128)
                .and_then(|n| u32::try_from(n).ok()),
            node_selector: self.opt_str(spec, "nodeSelector", p, at),
            namespace_selector: self.opt_str(spec, "namespaceSelector", p, at),
            allowed_uses: self.str_list(spec, "allowedUses", p, at),
            assignment_mode: self.opt_str(spec, "assignmentMode", p, at),
            meta,
        }
    }

    fn calico_node(&mut self, meta: Meta, root: &Value, spec: &Value) -> CalicoNode {
        let at = self.obj.line;
        let p = "spec";
        let bgp = self.opt_object(spec, "bgp", p, at).map(|b| {
            let bp = "spec.bgp";
            NodeBgp {
                as_number: present(b, "asNumber").and_then(scalar_text),
                ipv4_address: self.string(b, "ipv4Address", bp, at),
                ipv6_address: self.string(b, "ipv6Address", bp, at),
                ipv4_ipip_tunnel_addr: self.string(b, "ipv4IPIPTunnelAddr", bp, at),
                route_reflector_cluster_id: self.string(b, "routeReflectorClusterID", bp, at),
            }
        });
        let refs = self.list(spec, "orchRefs", p, at);
        let orch_refs = refs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let rp = format!("spec.orchRefs[{i}]");
                OrchRef {
                    node_name: self.string(r, "nodeName", &rp, at),
                    orchestrator: self.string(r, "orchestrator", &rp, at),
                }
            })
            .collect();
        let addrs = self.list(spec, "addresses", p, at);
        let addresses = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let ap = format!("spec.addresses[{i}]");
                NodeAddress {
                    address: self.string(a, "address", &ap, at),
                    address_type: self.string(a, "type", &ap, at),
                }
            })
            .collect();
        let wg = self.object(spec, "wireguard", p, at);
        let status = self.object(root, "status", "", at);
        CalicoNode {
            bgp,
            ipv4_vxlan_tunnel_addr: self.string(spec, "ipv4VXLANTunnelAddr", p, at),
            ipv6_vxlan_tunnel_addr: self.string(spec, "ipv6VXLANTunnelAddr", p, at),
            vxlan_tunnel_mac_addr: self.string(spec, "vxlanTunnelMACAddr", p, at),
            vxlan_tunnel_mac_addr_v6: self.string(spec, "vxlanTunnelMACAddrV6", p, at),
            orch_refs,
            addresses,
            wireguard_interface_ipv4_address: self.string(
                wg,
                "interfaceIPv4Address",
                "spec.wireguard",
                at,
            ),
            wireguard_interface_ipv6_address: self.string(
                wg,
                "interfaceIPv6Address",
                "spec.wireguard",
                at,
            ),
            wireguard_public_key: self.string(status, "wireguardPublicKey", "status", at),
            wireguard_public_key_v6: self.string(status, "wireguardPublicKeyV6", "status", at),
            pod_cidrs: self.str_list(status, "podCIDRs", "status", at),
            meta,
        }
    }

    // -- Kubernetes ----------------------------------------------------------------------

    fn label_selector(&mut self, v: &Value, p: &str, line: usize) -> LabelSelector {
        let exprs = self.list(v, "matchExpressions", p, line);
        let match_expressions = exprs
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let ep = format!("{p}.matchExpressions[{i}]");
                LabelSelectorRequirement {
                    key: self.string(e, "key", &ep, line),
                    operator: self.string(e, "operator", &ep, line),
                    values: self.str_list(e, "values", &ep, line),
                }
            })
            .collect();
        LabelSelector {
            match_labels: self.str_map(v, "matchLabels", p, line),
            match_expressions,
        }
    }

    fn opt_label_selector(
        &mut self,
        obj: &Value,
        key: &str,
        p: &str,
        line: usize,
    ) -> Option<LabelSelector> {
        let v = self.opt_object(obj, key, p, line)?;
        Some(self.label_selector(v, &field_name(p, key), line))
    }

    fn k8s_policy_spec(&mut self, spec: &Value) -> K8sNetworkPolicySpec {
        let at = self.obj.line;
        let pod_selector = match self.opt_object(spec, "podSelector", "spec", at) {
            Some(v) => self.label_selector(v, "spec.podSelector", at),
            None => LabelSelector::default(),
        };
        let mut out = K8sNetworkPolicySpec {
            pod_selector,
            policy_types: self.str_list(spec, "policyTypes", "spec", at),
            staged_action: self.opt_str(spec, "stagedAction", "spec", at),
            ..K8sNetworkPolicySpec::default()
        };
        for dir in ["ingress", "egress"] {
            let peers_key = if dir == "ingress" { "from" } else { "to" };
            let items = self.list(spec, dir, "spec", at);
            for (i, item) in items.iter().enumerate() {
                let line = self.rule_line(dir, i);
                let p = format!("spec.{dir}[{i}]");
                if !item.is_object() {
                    let msg = format!("expected a rule mapping, found {}", type_name(item));
                    self.bad(line, "", &p, msg);
                    continue;
                }
                let peers = self.k8s_peers(item, peers_key, &p, line);
                let ports = self.k8s_policy_ports(item, &p, line);
                if dir == "ingress" {
                    out.ingress.push(K8sIngressRule {
                        from: peers,
                        ports,
                        line,
                    });
                } else {
                    out.egress.push(K8sEgressRule {
                        to: peers,
                        ports,
                        line,
                    });
                }
            }
        }
        out
    }

    fn k8s_peers(&mut self, rule: &Value, key: &str, p: &str, line: usize) -> Vec<K8sPeer> {
        let items = self.list(rule, key, p, line);
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let pp = format!("{p}.{key}[{i}]");
            let ip_block = self.opt_object(item, "ipBlock", &pp, line).map(|b| {
                let bp = format!("{pp}.ipBlock");
                IpBlock {
                    cidr: self.string(b, "cidr", &bp, line),
                    except: self.str_list(b, "except", &bp, line),
                }
            });
            out.push(K8sPeer {
                pod_selector: self.opt_label_selector(item, "podSelector", &pp, line),
                namespace_selector: self.opt_label_selector(item, "namespaceSelector", &pp, line),
                ip_block,
            });
        }
        out
    }

    /// Kubernetes IntOrString: a number is a port, a string a port name.
    fn int_or_string(&mut self, obj: &Value, key: &str, p: &str, line: usize) -> Option<Port> {
        match present(obj, key)? {
            Value::Number(n) => match n.as_u64().and_then(|n| u16::try_from(n).ok()) {
                Some(n) => Some(Port::Number(n)),
                None => {
                    self.bad(line, p, key, format!("invalid port number ({n})"));
                    None
                }
            },
            Value::String(s) => Some(Port::Named(s.clone())),
            v => {
                let msg = format!("expected a port, found {}", type_name(v));
                self.bad(line, p, key, msg);
                None
            }
        }
    }

    fn k8s_policy_ports(&mut self, rule: &Value, p: &str, line: usize) -> Vec<K8sPolicyPort> {
        let items = self.list(rule, "ports", p, line);
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let pp = format!("{p}.ports[{i}]");
            out.push(K8sPolicyPort {
                protocol: self.opt_str(item, "protocol", &pp, line),
                port: self.int_or_string(item, "port", &pp, line),
                end_port: self
                    .opt_int(item, "endPort", &pp, line, u16::MAX.into())
                    .and_then(|n| u16::try_from(n).ok()),
            });
        }
        out
    }

    fn containers(&mut self, spec: &Value, key: &str) -> Vec<Container> {
        let line = self.obj.line;
        let items = self.list(spec, key, "spec", line);
        let mut out = Vec::with_capacity(items.len());
        for (i, c) in items.iter().enumerate() {
            let cp = format!("spec.{key}[{i}]");
            let ports = self.list(c, "ports", &cp, line);
            let ports = ports
                .iter()
                .enumerate()
                .map(|(j, port)| {
                    let pp = format!("{cp}.ports[{j}]");
                    ContainerPort {
                        name: self.string(port, "name", &pp, line),
                        container_port: self.u16(port, "containerPort", &pp, line),
                        protocol: self.opt_str(port, "protocol", &pp, line),
                        host_port: self.u16(port, "hostPort", &pp, line),
                        host_ip: self.string(port, "hostIP", &pp, line),
                    }
                })
                .collect();
            out.push(Container {
                name: self.string(c, "name", &cp, line),
                ports,
                restart_policy: self.opt_str(c, "restartPolicy", &cp, line),
            });
        }
        out
    }

    fn pod(&mut self, meta: Meta, root: &Value, spec: &Value) -> Pod {
        let at = self.obj.line;
        let status = self.object(root, "status", "", at);
        let mut pod_ips: Vec<String> = self
            .list(status, "podIPs", "status", at)
            .iter()
            .filter_map(|e| present(e, "ip").and_then(Value::as_str).map(str::to_string))
            .collect();
        if pod_ips.is_empty() {
            pod_ips.extend(self.opt_str(status, "podIP", "status", at));
        }
        let service_account_name = match self.opt_str(spec, "serviceAccountName", "spec", at) {
            Some(sa) => sa,
            None => self.string(spec, "serviceAccount", "spec", at),
        };
        Pod {
            node_name: self.string(spec, "nodeName", "spec", at),
            service_account_name,
            host_network: self.bool(spec, "hostNetwork", "spec", at),
            pod_ips,
            host_ip: self.string(status, "hostIP", "status", at),
            phase: self.string(status, "phase", "status", at),
            containers: self.containers(spec, "containers"),
            init_containers: self.containers(spec, "initContainers"),
            meta,
        }
    }

    fn k8s_node(&mut self, meta: Meta, root: &Value, spec: &Value) -> K8sNode {
        let at = self.obj.line;
        let status = self.object(root, "status", "", at);
        let addrs = self.list(status, "addresses", "status", at);
        let addresses = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let ap = format!("status.addresses[{i}]");
                NodeAddress {
                    address: self.string(a, "address", &ap, at),
                    address_type: self.string(a, "type", &ap, at),
                }
            })
            .collect();
        K8sNode {
            addresses,
            pod_cidr: self.string(spec, "podCIDR", "spec", at),
            pod_cidrs: self.str_list(spec, "podCIDRs", "spec", at),
            meta,
        }
    }

    fn service(&mut self, meta: Meta, spec: &Value) -> Service {
        let at = self.obj.line;
        let p = "spec";
        let items = self.list(spec, "ports", p, at);
        let ports = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let pp = format!("spec.ports[{i}]");
                ServicePort {
                    name: self.string(item, "name", &pp, at),
                    protocol: self.opt_str(item, "protocol", &pp, at),
                    port: self.u16(item, "port", &pp, at),
                    target_port: self.int_or_string(item, "targetPort", &pp, at),
                    node_port: self.u16(item, "nodePort", &pp, at),
                }
            })
            .collect();
        let root = &self.obj.value;
        let status = self.object(root, "status", "", at);
        let lb = self.object(status, "loadBalancer", "status", at);
        let load_balancer_ips = self
            .list(lb, "ingress", "status.loadBalancer", at)
            .iter()
            .filter_map(|e| present(e, "ip").and_then(Value::as_str).map(str::to_string))
            .collect();
        Service {
            selector: self.opt_str_map(spec, "selector", p, at),
            ports,
            cluster_ip: self.string(spec, "clusterIP", p, at),
            cluster_ips: self.str_list(spec, "clusterIPs", p, at),
            service_type: self.string(spec, "type", p, at),
            external_ips: self.str_list(spec, "externalIPs", p, at),
            external_traffic_policy: self.string(spec, "externalTrafficPolicy", p, at),
            load_balancer_ips,
            meta,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calico_port_strings_read_as_calico_reads_them() {
        assert_eq!(Port::from_calico_str("80"), Ok(Port::Number(80)));
        assert_eq!(Port::from_calico_str("80:90"), Ok(Port::Range(80, 90)));
        assert_eq!(Port::from_calico_str("80:80"), Ok(Port::Number(80)));
        assert_eq!(
            Port::from_calico_str("http-alt"),
            Ok(Port::Named("http-alt".into()))
        );
        assert!(Port::from_calico_str("90:80").is_err());
        assert!(Port::from_calico_str("65536").is_err());
        assert!(Port::from_calico_str("has space").is_err());
        assert!(Port::from_calico_str("").is_err());
    }

    #[test]
    fn ports_and_protocols_serialise_as_calico_writes_them() {
        let v = serde_json::to_value((
            Port::Number(53),
            Port::Range(1, 2),
            Protocol::Number(112),
            Protocol::Name("TCP".into()),
        ))
        .unwrap_or_default();
        assert_eq!(v, serde_json::json!([53, "1:2", 112, "TCP"]));
    }

    #[test]
    fn a_wrong_typed_field_is_an_error_and_the_object_is_kept() {
        let text = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: x\nspec:\n  order: [1]\n  selector: all()\n";
        let set = parse(text);
        assert_eq!(set.global_network_policies.len(), 1);
        let p = &set.global_network_policies[0];
        assert_eq!(p.spec.order, None);
        assert_eq!(p.spec.selector.as_deref(), Some("all()"));
        assert_eq!(set.errors.len(), 1);
        assert_eq!(set.errors[0].line, 2);
        assert!(
            set.errors[0].message.contains("spec.order"),
            "{:?}",
            set.errors
        );
    }

    #[test]
    fn calico_and_kubernetes_node_and_network_policy_are_told_apart() {
        let text = "kind: Node\napiVersion: v1\nmetadata: {name: a}\n---\nkind: Node\napiVersion: projectcalico.org/v3\nmetadata: {name: a}\n---\nkind: NetworkPolicy\napiVersion: networking.k8s.io/v1\nmetadata: {name: a}\n---\nkind: NetworkPolicy\napiVersion: crd.projectcalico.org/v1\nmetadata: {name: default.a}\n";
        let set = parse(text);
        assert_eq!(set.k8s_nodes.len(), 1);
        assert_eq!(set.nodes.len(), 1);
        assert_eq!(set.k8s_network_policies.len(), 1);
        assert_eq!(set.network_policies.len(), 1);
        assert!(set.network_policies[0].meta.is_crd_view());
        assert_eq!(set.network_policies[0].meta.name, "default.a");
        assert!(set.errors.is_empty(), "{:?}", set.errors);
    }

    #[test]
    fn pre_v3_lowercase_kinds_are_kept_as_other_with_a_note() {
        let text =
            "apiVersion: v1\nkind: policy\nmetadata:\n  name: p\nspec:\n  selector: role == 'db'\n";
        let set = parse(text);
        assert_eq!(set.other.len(), 1);
        assert!(
            set.other[0]
                .note
                .as_deref()
                .unwrap_or("")
                .contains("pre-v3")
        );
        assert!(set.errors.is_empty());
        assert!(set.is_calico());
    }

    #[test]
    fn string_digits_are_a_protocol_number_as_in_calico() {
        let text = "apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: p}\nspec:\n  ingress:\n  - action: Allow\n    protocol: \"17\"\n  - action: Allow\n    protocol: udp\n";
        let set = parse(text);
        let r = &set.profiles[0].ingress;
        assert_eq!(r[0].protocol, Some(Protocol::Number(17)));
        assert_eq!(r[1].protocol, Some(Protocol::Name("udp".into())));
        assert_eq!((r[0].line, r[1].line), (6, 8));
    }

    #[test]
    fn merge_and_artifact_tagging_keep_every_object() {
        let mut a = parse("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n");
        let b = parse("apiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: a}\n");
        a.set_artifact("cluster/k8s/namespaces.yaml");
        a.merge(b);
        assert_eq!(a.records(), 2);
        assert!(a.is_k8s() && !a.is_calico());
        assert_eq!(
            a.namespaces[0].meta.artifact.as_deref(),
            Some("cluster/k8s/namespaces.yaml")
        );
        assert_eq!(a.pods[0].meta.artifact, None);
    }
}
