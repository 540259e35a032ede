//! Endpoints and network sets with the labels Felix matches selectors against.
//!
//! WorkloadEndpoints are taken as the bundle shows them; pods that have no WorkloadEndpoint
//! (bundles with `kubectl get pods` but no `calicoctl get wep`) become endpoints the way
//! Calico's Kubernetes conversion would make them (interface name from the namespace and pod
//! name, profiles `kns.<ns>` and `ksa.<ns>.<sa>`). Labels follow Felix's inheritance: own
//! labels first, then the namespace and service-account profiles.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;

use super::{Loc, NamespaceInfo, Resources};
use crate::calico::labels::{self, InheritedLabels, Labels, ParentLabels};
use crate::calico::names;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EndpointKind {
    Workload,
    Host,
}

/// A named port an endpoint declares (`ports` of a WEP/HEP, container ports of a pod).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPort {
    pub name: String,
    /// `tcp`, `udp`, `sctp` (lower case).
    pub protocol: String,
    pub port: u16,
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub kind: EndpointKind,
    /// `namespace/pod` for workloads, the HostEndpoint name for hosts.
    pub key: String,
    pub namespace: Option<String>,
    /// Pod name, or HostEndpoint name.
    pub name: String,
    pub node: Option<String>,
    pub iface: Option<String>,
    pub ips: Vec<IpNet>,
    pub labels: InheritedLabels,
    pub profiles: Vec<String>,
    pub service_account: Option<String>,
    pub ports: Vec<NamedPort>,
    /// Where the endpoint is defined (the WorkloadEndpoint, or the pod it was derived from).
    pub loc: Loc,
    /// `WorkloadEndpoint`, `Pod` or `HostEndpoint`.
    pub source_kind: &'static str,
}

impl Endpoint {
    /// The endpoint's IPs of one family.
    pub fn ips_of(&self, ipv6: bool) -> impl Iterator<Item = &IpNet> {
        self.ips.iter().filter(move |n| n.addr().is_ipv6() == ipv6)
    }
}

/// A NetworkSet or GlobalNetworkSet: IP set members only, never a policy target.
#[derive(Debug, Clone)]
pub struct NetSet {
    /// `namespace/name` or `name`.
    pub key: String,
    pub namespace: Option<String>,
    pub nets: Vec<IpNet>,
    pub labels: InheritedLabels,
    pub loc: Loc,
}

/// Namespaces from Namespace objects, plus those only named by `kns.` profiles.
pub fn namespaces(r: &Resources<'_>) -> BTreeMap<String, NamespaceInfo> {
    let mut out = BTreeMap::new();
    for ns in &r.namespaces {
        out.insert(
            ns.item.meta.name.clone(),
            NamespaceInfo {
                name: ns.item.meta.name.clone(),
                labels: ns.item.meta.labels.clone(),
                loc: Some(ns.loc()),
            },
        );
    }
    // Without Namespace objects, the kns.<ns> profiles carry the namespace labels.
    for p in &r.profiles {
        if let Some(ns) = p
            .item
            .meta
            .name
            .strip_prefix(labels::NAMESPACE_PROFILE_PREFIX)
            && !out.contains_key(ns)
        {
            let labels = p
                .item
                .labels_to_apply
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix(labels::NAMESPACE_LABEL_PREFIX)
                        .filter(|k| *k != "projectcalico.org/name")
                        .map(|k| (k.to_string(), v.clone()))
                })
                .collect();
            out.insert(
                ns.to_string(),
                NamespaceInfo {
                    name: ns.to_string(),
                    labels,
                    loc: Some(p.loc()),
                },
            );
        }
    }
    out
}

/// Parent profiles of an item: the labels a profile applies, from the Profile objects when
/// the bundle has them, else (for `kns.`/`ksa.`) from the Namespace / ServiceAccount.
struct Parents<'a> {
    profiles: BTreeMap<&'a str, &'a Labels>,
    namespaces: &'a BTreeMap<String, NamespaceInfo>,
    service_accounts: BTreeMap<(String, String), &'a Labels>,
}

impl<'a> Parents<'a> {
    fn new(r: &'a Resources<'_>, namespaces: &'a BTreeMap<String, NamespaceInfo>) -> Parents<'a> {
        Parents {
            profiles: r
                .profiles
                .iter()
                .map(|p| (p.item.meta.name.as_str(), &p.item.labels_to_apply))
                .collect(),
            namespaces,
            service_accounts: r
                .service_accounts
                .iter()
                .map(|sa| {
                    (
                        (
                            sa.item.meta.namespace.clone().unwrap_or_default(),
                            sa.item.meta.name.clone(),
                        ),
                        &sa.item.meta.labels,
                    )
                })
                .collect(),
        }
    }

    fn parent(&self, id: &str) -> ParentLabels {
        if let Some(l) = self.profiles.get(id) {
            return ParentLabels {
                id: id.to_string(),
                labels: (*l).clone(),
            };
        }
        if let Some(ns) = id.strip_prefix(labels::NAMESPACE_PROFILE_PREFIX) {
            return labels::namespace_parent(ns, self.namespaces.get(ns).map(|n| &n.labels));
        }
        if let Some(rest) = id.strip_prefix(labels::SERVICE_ACCOUNT_PROFILE_PREFIX)
            && let Some((ns, sa)) = rest.split_once('.')
        {
            let sa_labels = self
                .service_accounts
                .get(&(ns.to_string(), sa.to_string()))
                .copied();
            return labels::service_account_parent(ns, sa, sa_labels);
        }
        ParentLabels {
            id: id.to_string(),
            labels: Labels::new(),
        }
    }
}

fn nets(list: &[String]) -> Vec<IpNet> {
    list.iter().filter_map(|s| parse_net(s)).collect()
}

pub use crate::parse::parse_net;

/// Workload endpoints (from WEPs, else pods) and host endpoints.
pub fn endpoints(r: &Resources<'_>, namespaces: &BTreeMap<String, NamespaceInfo>) -> Vec<Endpoint> {
    let parents = Parents::new(r, namespaces);
    let mut out = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for w in &r.workload_endpoints {
        let wep = w.item;
        let ns = wep.meta.namespace.clone().unwrap_or_default();
        let pod = if wep.pod.is_empty() {
            wep.workload.clone()
        } else {
            wep.pod.clone()
        };
        let key = format!("{ns}/{pod}");
        if !seen.insert(key.clone()) {
            continue;
        }
        let sa = Some(wep.service_account_name.clone()).filter(|s| !s.is_empty());
        let own = labels::pod_endpoint_labels(&wep.meta.labels, &ns, sa.as_deref());
        let profiles = if wep.profiles.is_empty() && wep.orchestrator == "k8s" {
            names::pod_profile_ids(&ns, sa.as_deref())
        } else {
            wep.profiles.clone()
        };
        let labels = InheritedLabels {
            own,
            parents: profiles.iter().map(|p| parents.parent(p)).collect(),
        };
        out.push(Endpoint {
            kind: EndpointKind::Workload,
            key,
            namespace: Some(ns),
            name: pod,
            node: Some(wep.node.clone()).filter(|n| !n.is_empty()),
            iface: Some(wep.interface_name.clone()).filter(|n| !n.is_empty()),
            ips: nets(&wep.ip_networks),
            labels,
            profiles,
            service_account: sa,
            ports: wep
                .ports
                .iter()
                .map(|p| NamedPort {
                    name: p.name.clone(),
                    protocol: p
                        .protocol
                        .as_ref()
                        .map(|p| p.to_string().to_ascii_lowercase())
                        .unwrap_or_else(|| "tcp".to_string()),
                    port: p.port,
                })
                .collect(),
            loc: w.loc(),
            source_kind: "WorkloadEndpoint",
        });
    }
    for p in &r.pods {
        let pod = p.item;
        if pod.host_network {
            continue;
        }
        let ns = pod
            .meta
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let key = format!("{ns}/{}", pod.meta.name);
        if !seen.insert(key.clone()) {
            continue;
        }
        let sa = Some(pod.service_account_name.clone())
            .filter(|s| !s.is_empty())
            .or_else(|| Some("default".to_string()));
        let profiles = names::pod_profile_ids(&ns, sa.as_deref());
        let labels = InheritedLabels {
            own: labels::pod_endpoint_labels(&pod.meta.labels, &ns, sa.as_deref()),
            parents: profiles.iter().map(|id| parents.parent(id)).collect(),
        };
        out.push(Endpoint {
            kind: EndpointKind::Workload,
            key,
            iface: Some(names::veth_name(&ns, &pod.meta.name, None)),
            namespace: Some(ns),
            name: pod.meta.name.clone(),
            node: Some(pod.node_name.clone()).filter(|n| !n.is_empty()),
            ips: nets(&pod.pod_ips),
            labels,
            profiles,
            service_account: sa,
            ports: pod
                .containers
                .iter()
                .flat_map(|c| c.ports.iter())
                .filter(|cp| !cp.name.is_empty())
                .map(|cp| NamedPort {
                    name: cp.name.clone(),
                    protocol: cp.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                    port: cp.container_port,
                })
                .collect(),
            loc: p.loc(),
            source_kind: "Pod",
        });
    }
    for h in &r.host_endpoints {
        let hep = h.item;
        let labels = labels::host_endpoint_labels(
            &hep.meta.labels,
            hep.profiles.iter().map(|p| parents.parent(p)).collect(),
        );
        out.push(Endpoint {
            kind: EndpointKind::Host,
            key: hep.meta.name.clone(),
            namespace: None,
            name: hep.meta.name.clone(),
            node: Some(hep.node.clone()).filter(|n| !n.is_empty()),
            iface: Some(hep.interface_name.clone()).filter(|n| !n.is_empty()),
            ips: nets(&hep.expected_ips),
            labels,
            profiles: hep.profiles.clone(),
            service_account: None,
            ports: hep
                .ports
                .iter()
                .map(|p| NamedPort {
                    name: p.name.clone(),
                    protocol: p
                        .protocol
                        .as_ref()
                        .map(|p| p.to_string().to_ascii_lowercase())
                        .unwrap_or_else(|| "tcp".to_string()),
                    port: p.port,
                })
                .collect(),
            loc: h.loc(),
            source_kind: "HostEndpoint",
        });
    }
    out
}

/// NetworkSets and GlobalNetworkSets.
pub fn net_sets(r: &Resources<'_>, namespaces: &BTreeMap<String, NamespaceInfo>) -> Vec<NetSet> {
    let mut out = Vec::new();
    for s in &r.network_sets {
        let ns = s.item.meta.namespace.clone().unwrap_or_default();
        out.push(NetSet {
            key: format!("{ns}/{}", s.item.meta.name),
            labels: labels::network_set_labels(
                &s.item.meta.labels,
                &ns,
                namespaces.get(&ns).map(|n| &n.labels),
            ),
            namespace: Some(ns),
            nets: split_default_routes(nets(&s.item.nets)),
            loc: s.loc(),
        });
    }
    for s in &r.global_network_sets {
        out.push(NetSet {
            key: s.item.meta.name.clone(),
            namespace: None,
            nets: split_default_routes(nets(&s.item.nets)),
            labels: labels::global_network_set_labels(&s.item.meta.labels),
            loc: s.loc(),
        });
    }
    out
}

/// Felix programs a /0 as two /1s (ipset cannot hold a /0).
fn split_default_routes(nets: Vec<IpNet>) -> Vec<IpNet> {
    nets.into_iter()
        .flat_map(|n| {
            if n.prefix_len() == 0 {
                n.subnets(1)
                    .map(|s| s.collect::<Vec<_>>())
                    .unwrap_or_default()
            } else {
                vec![n]
            }
        })
        .collect()
}
