//! The bundle understood. From the parsed artifacts, one model of the cluster (endpoints with
//! the labels Felix sees, policies with the v1 selectors Felix evaluates, namespaces, network
//! sets) and of each node (its dumps, its local endpoints, which policies are active there,
//! which chain implements what, which IP set stands for which selector and what it should
//! hold). Built once, then read-only; checks and traces read it, nothing writes it.
//!
//! Selector matching goes through a label index ([`index::LabelIndex`]) so that thousands of
//! endpoints against thousands of selectors stay fast: a selector that requires `k == v` (most
//! do, through the namespace clause) is only evaluated on the endpoints that carry `k=v`.

pub mod endpoints;
pub mod flows;
pub mod index;
pub mod logsig;
pub mod member;
pub mod netindex;
pub mod node;
pub mod policies;
pub mod version;

use std::collections::BTreeMap;

use crate::bundle::{Artifact, ArtifactKind, Bundle};
use crate::calico::names::CalicoVersion;
use crate::checks::Evidence;
use crate::parse::Parsed;
use crate::parse::resources::{self, HasMeta};

pub use endpoints::{Endpoint, EndpointKind, NetSet};
pub use index::LabelIndex;
pub use node::NodeModel;
pub use policies::{Policy, PolicyRule, RuleSide};
pub use version::{Dataplane, VersionInfo};

/// Where something is in the bundle: an artifact path and a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Loc {
    pub path: String,
    pub line: usize,
}

impl Loc {
    pub fn new(path: &str, line: usize) -> Loc {
        Loc {
            path: path.to_string(),
            line,
        }
    }

    /// The same artifact, another line.
    pub fn with_line(mut self, line: usize) -> Loc {
        self.line = line;
        self
    }

    /// Evidence at this place with the given excerpt.
    pub fn evidence(&self, excerpt: impl Into<String>) -> Evidence {
        Evidence {
            path: self.path.clone(),
            line: self.line,
            excerpt: excerpt.into(),
        }
    }
}

/// A namespace and the labels its `kns.<ns>` profile gives (`pcns.*`).
#[derive(Debug, Clone, Default)]
pub struct NamespaceInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub loc: Option<Loc>,
}

/// A resource object together with the artifact it was read from.
#[derive(Debug, Clone, Copy)]
pub struct Sourced<'b, T> {
    pub path: &'b str,
    pub item: &'b T,
}

impl<T: HasMeta> Sourced<'_, T> {
    pub fn loc(&self) -> Loc {
        Loc::new(self.path, self.item.meta().line)
    }
}

/// Every resource in the bundle, across artifacts, with its source.
#[derive(Debug, Default)]
pub struct Resources<'b> {
    pub network_policies: Vec<Sourced<'b, resources::CalicoPolicy>>,
    pub global_network_policies: Vec<Sourced<'b, resources::CalicoPolicy>>,
    pub staged_network_policies: Vec<Sourced<'b, resources::CalicoPolicy>>,
    pub staged_global_network_policies: Vec<Sourced<'b, resources::CalicoPolicy>>,
    pub staged_kubernetes_network_policies: Vec<Sourced<'b, resources::K8sNetworkPolicy>>,
    pub k8s_network_policies: Vec<Sourced<'b, resources::K8sNetworkPolicy>>,
    pub tiers: Vec<Sourced<'b, resources::Tier>>,
    pub workload_endpoints: Vec<Sourced<'b, resources::WorkloadEndpoint>>,
    pub host_endpoints: Vec<Sourced<'b, resources::HostEndpoint>>,
    pub profiles: Vec<Sourced<'b, resources::Profile>>,
    pub network_sets: Vec<Sourced<'b, resources::NetworkSet>>,
    pub global_network_sets: Vec<Sourced<'b, resources::NetworkSet>>,
    pub felix_configurations: Vec<Sourced<'b, resources::FelixConfiguration>>,
    pub ip_pools: Vec<Sourced<'b, resources::IpPool>>,
    pub calico_nodes: Vec<Sourced<'b, resources::CalicoNode>>,
    pub cluster_informations: Vec<Sourced<'b, resources::ClusterInformation>>,
    pub pods: Vec<Sourced<'b, resources::Pod>>,
    pub namespaces: Vec<Sourced<'b, resources::Namespace>>,
    pub services: Vec<Sourced<'b, resources::Service>>,
    pub service_accounts: Vec<Sourced<'b, resources::ServiceAccount>>,
    pub k8s_nodes: Vec<Sourced<'b, resources::K8sNode>>,
}

impl<'b> Resources<'b> {
    fn collect(bundle: &'b Bundle) -> Resources<'b> {
        let mut r = Resources::default();
        for a in &bundle.artifacts {
            let Parsed::Resources(set) = &a.parsed else {
                continue;
            };
            let p = a.path.as_str();
            macro_rules! take {
                ($field:ident, $src:ident) => {
                    r.$field
                        .extend(set.$src.iter().map(|item| Sourced { path: p, item }));
                };
            }
            take!(network_policies, network_policies);
            take!(global_network_policies, global_network_policies);
            take!(staged_network_policies, staged_network_policies);
            take!(
                staged_global_network_policies,
                staged_global_network_policies
            );
            take!(
                staged_kubernetes_network_policies,
                staged_kubernetes_network_policies
            );
            take!(k8s_network_policies, k8s_network_policies);
            take!(tiers, tiers);
            take!(workload_endpoints, workload_endpoints);
            take!(host_endpoints, host_endpoints);
            take!(profiles, profiles);
            take!(network_sets, network_sets);
            take!(global_network_sets, global_network_sets);
            take!(felix_configurations, felix_configurations);
            take!(ip_pools, ip_pools);
            take!(calico_nodes, nodes);
            take!(cluster_informations, cluster_informations);
            take!(pods, pods);
            take!(namespaces, namespaces);
            take!(services, services);
            take!(service_accounts, service_accounts);
            take!(k8s_nodes, k8s_nodes);
        }
        r
    }

    /// Any Calico resource (policies, endpoints, config) at all.
    pub fn has_calico(&self) -> bool {
        !(self.network_policies.is_empty()
            && self.global_network_policies.is_empty()
            && self.workload_endpoints.is_empty()
            && self.host_endpoints.is_empty()
            && self.tiers.is_empty()
            && self.profiles.is_empty()
            && self.felix_configurations.is_empty()
            && self.ip_pools.is_empty()
            && self.cluster_informations.is_empty())
    }

    /// Any Kubernetes resource at all.
    pub fn has_k8s(&self) -> bool {
        !(self.pods.is_empty()
            && self.namespaces.is_empty()
            && self.k8s_network_policies.is_empty())
    }

    /// The FelixConfiguration named `default`, or the first one.
    pub fn felix_default(&self) -> Option<&Sourced<'b, resources::FelixConfiguration>> {
        self.felix_configurations
            .iter()
            .find(|f| f.item.meta.name == "default")
            .or_else(|| self.felix_configurations.first())
    }
}

/// The cluster and its nodes as the bundle shows them.
pub struct Model<'b> {
    pub bundle: &'b Bundle,
    pub resources: Resources<'b>,
    /// The Calico version naming follows, and why it was assumed.
    pub version: VersionInfo,
    pub dataplane: Option<Dataplane>,
    pub namespaces: BTreeMap<String, NamespaceInfo>,
    pub endpoints: Vec<Endpoint>,
    pub net_sets: Vec<NetSet>,
    pub policies: Vec<Policy>,
    /// Endpoints (`Endpoint` index) each policy applies to, by policy index.
    pub policy_endpoints: Vec<Vec<usize>>,
    /// The same, inverted: policies (ascending) that apply to each endpoint, by endpoint index.
    pub endpoint_policies: Vec<Vec<usize>>,
    /// Label index over endpoints and network sets (IP set membership).
    pub member_index: LabelIndex,
    /// Label index over endpoints only (policy selection).
    pub endpoint_index: LabelIndex,
    /// Network sets by the nets they hold (which sets contain an address).
    pub net_set_index: netindex::NetIndex,
    pub nodes: Vec<NodeModel<'b>>,
}

impl<'b> Model<'b> {
    pub fn build(bundle: &'b Bundle) -> Model<'b> {
        use crate::timing::phase;
        let resources = phase("model: resources", || Resources::collect(bundle));
        let version = phase("model: version", || version::detect(bundle, &resources));
        let dataplane = version::dataplane(bundle, &resources);
        let namespaces = endpoints::namespaces(&resources);
        let endpoints = phase("model: endpoints", || {
            endpoints::endpoints(&resources, &namespaces)
        });
        let net_sets = endpoints::net_sets(&resources, &namespaces);
        let policies = phase("model: policies", || {
            policies::policies(&resources, version.version)
        });
        // The chain names of every policy need only the policies: hashed on the pool while
        // the indexes are built.
        let (policy_names, (endpoint_index, member_index, policy_endpoints)) = rayon::join(
            || {
                phase("model: chain names", || {
                    node::PolicyNames::new(&policies, version.version)
                })
            },
            || {
                let endpoint_index = LabelIndex::new(endpoints.iter().map(|e| &e.labels));
                let member_index = LabelIndex::new(
                    endpoints
                        .iter()
                        .map(|e| &e.labels)
                        .chain(net_sets.iter().map(|n| &n.labels)),
                );
                let policy_endpoints = phase("model: policy selection", || {
                    policies
                        .iter()
                        .map(|p| match &p.selector {
                            Ok(sel) if !p.staged => {
                                endpoint_index.matching(sel, |i| &endpoints[i].labels)
                            }
                            _ => Vec::new(),
                        })
                        .collect::<Vec<Vec<usize>>>()
                });
                (endpoint_index, member_index, policy_endpoints)
            },
        );
        let endpoint_policies = node::invert(&policy_endpoints, endpoints.len(), |_| true);
        let net_set_index = netindex::NetIndex::new(net_sets.len(), |i| net_sets[i].nets.iter());
        let mut model = Model {
            bundle,
            resources,
            version,
            dataplane,
            namespaces,
            endpoints,
            net_sets,
            policies,
            policy_endpoints,
            endpoint_policies,
            member_index,
            endpoint_index,
            net_set_index,
            nodes: Vec::new(),
        };
        model.nodes = phase("model: nodes", || node::nodes(&model, &policy_names));
        model
    }

    /// Endpoints and network sets matching a selector: `(endpoints, net sets)` by index.
    pub fn members_of(&self, sel: &crate::calico::selector::Selector) -> (Vec<usize>, Vec<usize>) {
        let n = self.endpoints.len();
        let all = self.member_index.matching(sel, |i| {
            if i < n {
                &self.endpoints[i].labels
            } else {
                &self.net_sets[i - n].labels
            }
        });
        let (eps, sets): (Vec<usize>, Vec<usize>) = all.into_iter().partition(|&i| i < n);
        (eps, sets.into_iter().map(|i| i - n).collect())
    }

    /// Whether a selector matches any endpoint or network set ([`Model::members_of`] is not
    /// empty), found without listing them all.
    pub fn has_members(&self, sel: &crate::calico::selector::Selector) -> bool {
        let n = self.endpoints.len();
        self.member_index.any_matching(sel, |i| {
            if i < n {
                &self.endpoints[i].labels
            } else {
                &self.net_sets[i - n].labels
            }
        })
    }

    /// The artifacts of one kind on one node.
    pub fn node_artifacts(
        &self,
        node: &str,
        kind: ArtifactKind,
    ) -> impl Iterator<Item = &'b Artifact> {
        let node = node.to_string();
        self.bundle
            .artifacts
            .iter()
            .filter(move |a| a.kind == kind && a.node.as_deref() == Some(node.as_str()))
    }

    pub fn node(&self, name: &str) -> Option<&NodeModel<'b>> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Calico version for naming.
    pub fn calico_version(&self) -> CalicoVersion {
        self.version.version
    }

    /// True when the bundle holds cluster resources (policies or endpoints) to check against.
    pub fn has_cluster_resources(&self) -> bool {
        self.resources.has_calico() || self.resources.has_k8s()
    }
}
