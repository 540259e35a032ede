//! Which labels a selector sees: Felix's label inheritance and the labels Calico writes onto
//! the items it derives from Kubernetes objects.
//!
//! Felix indexes workload endpoints, host endpoints and (global) network sets, each with its
//! *own* labels and an ordered list of parent profile IDs. A label lookup returns the own value
//! if there is one, else the value of the **first parent in ProfileIDs order** that has the key
//! (`labelindex.InheritIndex`). The functions here build those own labels and parent profiles
//! exactly as the Kubernetes conversion and the syncer's update processors do: pods become
//! workload endpoints (`pcns.`/`pcsa.` keys dropped, namespace/orchestrator/serviceaccount
//! added), namespaces become `kns.<ns>` profiles carrying `pcns.*`, service accounts become
//! `ksa.<ns>.<sa>` profiles carrying `pcsa.*`, namespaced network sets inherit from `kns.<ns>`.
//!
//! This module does not read resources; the model hands it label maps.

use std::collections::BTreeMap;

use crate::calico::selector::LabelSource;

/// `projectcalico.org/namespace`, added to every namespaced workload and network set.
pub const LABEL_NAMESPACE: &str = "projectcalico.org/namespace";
/// `projectcalico.org/orchestrator`, `k8s` on every pod's workload endpoint.
pub const LABEL_ORCHESTRATOR: &str = "projectcalico.org/orchestrator";
/// `projectcalico.org/serviceaccount`, the pod's service account name.
pub const LABEL_SERVICE_ACCOUNT: &str = "projectcalico.org/serviceaccount";
/// `projectcalico.org/name`, the name label written last into namespace and SA profiles.
pub const LABEL_NAME: &str = "projectcalico.org/name";
/// Prefix of namespace labels as carried by `kns.<ns>` profiles.
pub const NAMESPACE_LABEL_PREFIX: &str = "pcns.";
/// Prefix of service-account labels as carried by `ksa.<ns>.<sa>` profiles.
pub const SERVICE_ACCOUNT_LABEL_PREFIX: &str = "pcsa.";
/// Profile name prefix for namespaces.
pub const NAMESPACE_PROFILE_PREFIX: &str = "kns.";
/// Profile name prefix for service accounts.
pub const SERVICE_ACCOUNT_PROFILE_PREFIX: &str = "ksa.";
/// Value of [`LABEL_ORCHESTRATOR`] for Kubernetes pods.
pub const ORCHESTRATOR_K8S: &str = "k8s";

/// Label map type used throughout: ordered so output is deterministic.
pub type Labels = BTreeMap<String, String>;

/// One parent profile of an item: its ID (`kns.prod`) and the labels it applies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParentLabels {
    pub id: String,
    pub labels: Labels,
}

/// An item's labels as Felix resolves them: own labels first, then parents in order.
/// Implements [`LabelSource`] without flattening; [`InheritedLabels::flatten`] gives the map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InheritedLabels {
    pub own: Labels,
    pub parents: Vec<ParentLabels>,
}

impl InheritedLabels {
    /// An item with own labels and no parents.
    pub fn new(own: Labels) -> InheritedLabels {
        InheritedLabels {
            own,
            parents: Vec::new(),
        }
    }

    /// The profile IDs in inheritance order.
    pub fn profile_ids(&self) -> Vec<&str> {
        self.parents.iter().map(|p| p.id.as_str()).collect()
    }

    /// Every label the item effectively carries: parents applied in reverse order, own labels
    /// on top, so the first parent holding a key and any own label win as in Felix.
    pub fn flatten(&self) -> Labels {
        let mut out = Labels::new();
        for p in self.parents.iter().rev() {
            out.extend(p.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        out.extend(self.own.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }

    /// Where a key's effective value comes from: `None` for own labels, or the parent's ID.
    /// Returns `None` (outer) when the key is absent.
    pub fn source_of(&self, key: &str) -> Option<Option<&str>> {
        if self.own.contains_key(key) {
            return Some(None);
        }
        self.parents
            .iter()
            .find(|p| p.labels.contains_key(key))
            .map(|p| Some(p.id.as_str()))
    }
}

impl LabelSource for InheritedLabels {
    fn get_label(&self, key: &str) -> Option<&str> {
        if let Some(v) = self.own.get(key) {
            return Some(v);
        }
        self.parents
            .iter()
            .find_map(|p| p.labels.get(key))
            .map(String::as_str)
    }
}

/// `kns.<namespace>`.
pub fn namespace_profile_id(namespace: &str) -> String {
    format!("{NAMESPACE_PROFILE_PREFIX}{namespace}")
}

/// `ksa.<namespace>.<sa>`; an empty namespace becomes `default`.
pub fn service_account_profile_id(namespace: &str, service_account: &str) -> String {
    let ns = if namespace.is_empty() {
        "default"
    } else {
        namespace
    };
    format!("{SERVICE_ACCOUNT_PROFILE_PREFIX}{ns}.{service_account}")
}

/// Labels of the `kns.<ns>` profile: `pcns.<k>` for every namespace label, then
/// `pcns.projectcalico.org/name=<ns>`, written last so it wins over a namespace label of the
/// same key.
pub fn namespace_profile_labels(namespace: &str, namespace_labels: &Labels) -> Labels {
    let mut out: Labels = namespace_labels
        .iter()
        .map(|(k, v)| (format!("{NAMESPACE_LABEL_PREFIX}{k}"), v.clone()))
        .collect();
    out.insert(
        format!("{NAMESPACE_LABEL_PREFIX}{LABEL_NAME}"),
        namespace.to_string(),
    );
    out
}

/// Labels of the `ksa.<ns>.<sa>` profile: `pcsa.<k>` for every service-account label, then
/// `pcsa.projectcalico.org/name=<sa>`.
pub fn service_account_profile_labels(service_account: &str, sa_labels: &Labels) -> Labels {
    let mut out: Labels = sa_labels
        .iter()
        .map(|(k, v)| (format!("{SERVICE_ACCOUNT_LABEL_PREFIX}{k}"), v.clone()))
        .collect();
    out.insert(
        format!("{SERVICE_ACCOUNT_LABEL_PREFIX}{LABEL_NAME}"),
        service_account.to_string(),
    );
    out
}

/// The `kns.<ns>` parent of an item, with the namespace's labels when known (a missing
/// namespace contributes no labels, as a missing profile does in Felix).
pub fn namespace_parent(namespace: &str, namespace_labels: Option<&Labels>) -> ParentLabels {
    ParentLabels {
        id: namespace_profile_id(namespace),
        labels: namespace_labels
            .map(|l| namespace_profile_labels(namespace, l))
            .unwrap_or_default(),
    }
}

/// The `ksa.<ns>.<sa>` parent of a pod.
pub fn service_account_parent(
    namespace: &str,
    service_account: &str,
    sa_labels: Option<&Labels>,
) -> ParentLabels {
    ParentLabels {
        id: service_account_profile_id(namespace, service_account),
        labels: sa_labels
            .map(|l| service_account_profile_labels(service_account, l))
            .unwrap_or_default(),
    }
}

/// Whether a key is one a workload may not carry itself (`pcns.`/`pcsa.`): the workload
/// endpoint update processor drops them so a pod cannot pretend to be in another namespace.
pub fn is_reserved_profile_key(key: &str) -> bool {
    key.starts_with(NAMESPACE_LABEL_PREFIX) || key.starts_with(SERVICE_ACCOUNT_LABEL_PREFIX)
}

/// The own labels Felix sees for a pod's workload endpoint: the pod labels minus `pcns.*` and
/// `pcsa.*`, plus `projectcalico.org/namespace`, `projectcalico.org/orchestrator=k8s` and,
/// when the pod has a service account, `projectcalico.org/serviceaccount` (whatever its length).
/// The added labels overwrite pod labels with the same key.
pub fn pod_endpoint_labels(
    pod_labels: &Labels,
    namespace: &str,
    service_account: Option<&str>,
) -> Labels {
    let mut out: Labels = pod_labels
        .iter()
        .filter(|(k, _)| !is_reserved_profile_key(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.insert(LABEL_NAMESPACE.to_string(), namespace.to_string());
    out.insert(LABEL_ORCHESTRATOR.to_string(), ORCHESTRATOR_K8S.to_string());
    if let Some(sa) = service_account.filter(|s| !s.is_empty()) {
        out.insert(LABEL_SERVICE_ACCOUNT.to_string(), sa.to_string());
    }
    out
}

/// The labels of the v3 WorkloadEndpoint the Kubernetes conversion writes (what a bundle's
/// `workloadendpoints.yaml` shows): pod labels as they are, plus namespace and orchestrator,
/// plus the service account only when its name is shorter than 63 bytes. Felix sees
/// [`pod_endpoint_labels`] instead.
pub fn pod_v3_endpoint_labels(
    pod_labels: &Labels,
    namespace: &str,
    service_account: Option<&str>,
) -> Labels {
    let mut out = pod_labels.clone();
    out.insert(LABEL_NAMESPACE.to_string(), namespace.to_string());
    out.insert(LABEL_ORCHESTRATOR.to_string(), ORCHESTRATOR_K8S.to_string());
    if let Some(sa) = service_account.filter(|s| !s.is_empty() && s.len() < 63) {
        out.insert(LABEL_SERVICE_ACCOUNT.to_string(), sa.to_string());
    }
    out
}

/// A pod's labels as Felix resolves them: [`pod_endpoint_labels`] with parents `kns.<ns>` and,
/// when there is a service account, `ksa.<ns>.<sa>`.
pub fn pod_labels(
    pod_labels: &Labels,
    namespace: &str,
    service_account: Option<&str>,
    namespace_labels: Option<&Labels>,
    sa_labels: Option<&Labels>,
) -> InheritedLabels {
    let sa = service_account.filter(|s| !s.is_empty());
    let mut parents = vec![namespace_parent(namespace, namespace_labels)];
    if let Some(sa) = sa {
        parents.push(service_account_parent(namespace, sa, sa_labels));
    }
    InheritedLabels {
        own: pod_endpoint_labels(pod_labels, namespace, sa),
        parents,
    }
}

/// A workload endpoint outside Kubernetes (etcd mode): own labels minus `pcns.*`/`pcsa.*`, plus
/// the service account label if the spec names one; parents are the spec's profiles.
pub fn workload_endpoint_labels(
    labels: &Labels,
    service_account: Option<&str>,
    profiles: Vec<ParentLabels>,
) -> InheritedLabels {
    let mut own: Labels = labels
        .iter()
        .filter(|(k, _)| !is_reserved_profile_key(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(sa) = service_account.filter(|s| !s.is_empty()) {
        own.insert(LABEL_SERVICE_ACCOUNT.to_string(), sa.to_string());
    }
    InheritedLabels {
        own,
        parents: profiles,
    }
}

/// A namespaced NetworkSet: its labels plus `projectcalico.org/namespace`, parent `kns.<ns>`.
pub fn network_set_labels(
    labels: &Labels,
    namespace: &str,
    namespace_labels: Option<&Labels>,
) -> InheritedLabels {
    let mut own = labels.clone();
    own.insert(LABEL_NAMESPACE.to_string(), namespace.to_string());
    InheritedLabels {
        own,
        parents: vec![namespace_parent(namespace, namespace_labels)],
    }
}

/// A GlobalNetworkSet: its labels, no parents.
pub fn global_network_set_labels(labels: &Labels) -> InheritedLabels {
    InheritedLabels::new(labels.clone())
}

/// A HostEndpoint: its labels, with the profiles named in `spec.profiles` as parents.
pub fn host_endpoint_labels(labels: &Labels, profiles: Vec<ParentLabels>) -> InheritedLabels {
    InheritedLabels {
        own: labels.clone(),
        parents: profiles,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn own_labels_win_then_the_first_parent_with_the_key() {
        let item = InheritedLabels {
            own: labels(&[("team", "pod")]),
            parents: vec![
                ParentLabels {
                    id: "kns.a".into(),
                    labels: labels(&[("team", "ns"), ("x", "first")]),
                },
                ParentLabels {
                    id: "ksa.a.b".into(),
                    labels: labels(&[("x", "second"), ("y", "only")]),
                },
            ],
        };
        assert_eq!(item.get_label("team"), Some("pod"));
        assert_eq!(item.get_label("x"), Some("first"));
        assert_eq!(item.get_label("y"), Some("only"));
        assert_eq!(item.get_label("z"), None);
        assert_eq!(item.source_of("x"), Some(Some("kns.a")));
        let flat = item.flatten();
        assert_eq!(flat.get("x").map(String::as_str), Some("first"));
        assert_eq!(flat.get("team").map(String::as_str), Some("pod"));
    }

    #[test]
    fn pods_cannot_carry_profile_prefixed_labels() {
        let own = pod_endpoint_labels(
            &labels(&[
                ("app", "web"),
                ("pcns.team", "fake"),
                ("pcsa.role", "fake"),
                ("projectcalico.org/namespace", "other"),
            ]),
            "prod",
            Some("web-sa"),
        );
        assert_eq!(
            own,
            labels(&[
                ("app", "web"),
                ("projectcalico.org/namespace", "prod"),
                ("projectcalico.org/orchestrator", "k8s"),
                ("projectcalico.org/serviceaccount", "web-sa"),
            ])
        );
    }

    #[test]
    fn v3_endpoint_omits_long_service_account_names() {
        let long = "s".repeat(63);
        let v3 = pod_v3_endpoint_labels(&Labels::new(), "ns", Some(&long));
        assert!(!v3.contains_key(LABEL_SERVICE_ACCOUNT));
        let felix = pod_endpoint_labels(&Labels::new(), "ns", Some(&long));
        assert_eq!(
            felix.get(LABEL_SERVICE_ACCOUNT).map(String::as_str),
            Some(long.as_str())
        );
    }

    #[test]
    fn namespace_profile_name_label_is_written_last() {
        let p = namespace_profile_labels(
            "prod",
            &labels(&[("team", "a"), ("projectcalico.org/name", "spoof")]),
        );
        assert_eq!(
            p,
            labels(&[("pcns.projectcalico.org/name", "prod"), ("pcns.team", "a")])
        );
        assert_eq!(service_account_profile_id("", "sa"), "ksa.default.sa");
    }

    #[test]
    fn network_sets_inherit_namespace_labels() {
        let ns = labels(&[("team", "a")]);
        let set = network_set_labels(&labels(&[("role", "db")]), "prod", Some(&ns));
        assert_eq!(set.get_label("pcns.team"), Some("a"));
        assert_eq!(set.get_label(LABEL_NAMESPACE), Some("prod"));
        assert_eq!(set.profile_ids(), vec!["kns.prod"]);
    }
}
