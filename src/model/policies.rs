//! Policies as Felix receives them: Calico (Global)NetworkPolicies, staged policies and
//! Kubernetes NetworkPolicies converted the way Calico converts them, each with the v1
//! selector strings Felix parses (policy selector, and per rule side the selector whose IP set
//! Felix builds).
//!
//! A policy with any invalid selector is dropped whole by Felix ("Validation failed; treating
//! as missing"), so such a policy selects nothing here and its problems are listed in
//! [`Policy::invalid`].

use std::collections::BTreeMap;

use super::{Loc, Resources, Sourced};
use crate::calico::names::{CalicoVersion, Direction, FelixPolicyKey, PolicyKind, PolicyRef};
use crate::calico::order::PolicyTypes;
use crate::calico::rules::{self, EntityRuleSelectors, K8sLabelExpr, K8sLabelSelector};
use crate::calico::selector::{Selector, SelectorError};
use crate::parse::resources::{self, CalicoPolicy, K8sNetworkPolicy, LabelSelector, Port};

/// A selector field that Calico rejects.
#[derive(Debug, Clone)]
pub struct InvalidSelector {
    /// Where in the policy: `spec.selector`, `spec.ingress[0].source.selector` …
    pub field: String,
    pub raw: String,
    pub error: SelectorError,
    pub line: usize,
}

/// One side (source or destination) of a rule, as Felix matches it.
#[derive(Debug, Clone, Default)]
pub struct RuleSide {
    /// v3 fields as written.
    pub selector: Option<String>,
    pub not_selector: Option<String>,
    pub namespace_selector: Option<String>,
    /// The v1 positive selector after Felix combined it with the not-selector
    /// (`(pos) && (!(neg))`); `None` when the side has no positive selector.
    pub positive_raw: Option<String>,
    pub positive: Option<Selector>,
    /// A not-selector without a positive one: its own (negated) IP set.
    pub negated_raw: Option<String>,
    pub negated: Option<Selector>,
    pub nets: Vec<String>,
    pub not_nets: Vec<String>,
    pub ports: Vec<Port>,
    pub not_ports: Vec<Port>,
    /// A `services` match (set named after the service).
    pub service: Option<(String, String)>,
}

impl RuleSide {
    /// Named ports among `ports`.
    pub fn named_ports(&self) -> impl Iterator<Item = &str> {
        self.ports.iter().filter_map(|p| match p {
            Port::Named(n) => Some(n.as_str()),
            _ => None,
        })
    }

    /// True when the side has numeric ports or ranges.
    pub fn has_numeric_ports(&self) -> bool {
        self.ports.iter().any(|p| !matches!(p, Port::Named(_)))
    }
}

#[derive(Debug, Clone)]
pub struct PolicyRule {
    pub direction: Direction,
    /// Index within its direction, as flow logs and Felix count rules.
    pub index: usize,
    pub action: String,
    /// Protocol name or number as written (`TCP`, `6`).
    pub protocol: Option<String>,
    pub ip_version: Option<u8>,
    pub src: RuleSide,
    pub dst: RuleSide,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub policy_ref: PolicyRef,
    /// The key Felix of the assumed version uses (v1 name, tier, kind).
    pub key: FelixPolicyKey,
    /// `[namespace/]name` as support engineers and `calicoctl` name it.
    pub display: String,
    pub tier: String,
    pub order: Option<f64>,
    pub types: PolicyTypes,
    /// `spec.selector` as written (K8s: the converted pod selector).
    pub selector_v3: String,
    /// The v1 policy selector Felix evaluates.
    pub selector_raw: String,
    pub selector: Result<Selector, SelectorError>,
    pub rules: Vec<PolicyRule>,
    pub staged: bool,
    pub do_not_track: bool,
    pub pre_dnat: bool,
    pub apply_on_forward: bool,
    pub performance_hints: Vec<String>,
    /// Converted from a Kubernetes NetworkPolicy.
    pub from_k8s: bool,
    pub loc: Loc,
    pub invalid: Vec<InvalidSelector>,
}

impl Policy {
    pub fn kind(&self) -> &PolicyKind {
        &self.policy_ref.kind
    }

    pub fn namespace(&self) -> Option<&str> {
        self.policy_ref.namespace.as_deref()
    }

    pub fn rules_in(&self, dir: Direction) -> impl Iterator<Item = &PolicyRule> {
        self.rules.iter().filter(move |r| r.direction == dir)
    }

    /// Felix enforces it: not staged and every selector valid.
    pub fn enforced(&self) -> bool {
        !self.staged && self.invalid.is_empty()
    }
}

/// Every policy of the bundle, in resource order (converted on the pool).
pub fn policies(r: &Resources<'_>, version: CalicoVersion) -> Vec<Policy> {
    use rayon::prelude::*;
    // A `Policy` is large and there are thousands: sized once, not grown by doubling.
    let mut out = Vec::with_capacity(
        r.network_policies.len()
            + r.global_network_policies.len()
            + r.staged_network_policies.len()
            + r.staged_global_network_policies.len()
            + r.k8s_network_policies.len()
            + r.staged_kubernetes_network_policies.len(),
    );
    for (list, kind) in [
        (&r.network_policies, PolicyKind::NetworkPolicy),
        (&r.global_network_policies, PolicyKind::GlobalNetworkPolicy),
        (&r.staged_network_policies, PolicyKind::StagedNetworkPolicy),
        (
            &r.staged_global_network_policies,
            PolicyKind::StagedGlobalNetworkPolicy,
        ),
    ] {
        out.par_extend(
            list.par_iter()
                .map(|p| calico_policy(p, kind.clone(), version)),
        );
    }
    out.par_extend(
        r.k8s_network_policies
            .par_iter()
            .map(|p| k8s_policy(p, PolicyKind::KubernetesNetworkPolicy, version)),
    );
    out.par_extend(
        r.staged_kubernetes_network_policies
            .par_iter()
            .map(|p| k8s_policy(p, PolicyKind::StagedKubernetesNetworkPolicy, version)),
    );
    out
}

/// The name `calicoctl` shows: the CRD view (`crd.projectcalico.org/v1`) stores tiered names
/// with a `<tier>.` prefix; the v3 API shows the name as created.
fn shown_name(p: &CalicoPolicy, tier: &str) -> String {
    let name = &p.meta.name;
    if p.meta.is_crd_view()
        && let Some(rest) = name.strip_prefix(&format!("{tier}."))
        && tier == crate::calico::names::DEFAULT_TIER
    {
        return rest.to_string();
    }
    name.clone()
}

fn display(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

fn calico_policy(
    p: &Sourced<'_, CalicoPolicy>,
    kind: PolicyKind,
    version: CalicoVersion,
) -> Policy {
    let spec = &p.item.spec;
    let tier = spec
        .tier
        .clone()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| crate::calico::names::DEFAULT_TIER.to_string());
    let name = shown_name(p.item, &tier);
    let namespace = if kind.is_namespaced() {
        p.item.meta.namespace.clone()
    } else {
        None
    };
    let ns = namespace.clone().unwrap_or_default();
    let mut invalid = Vec::new();
    let line = p.item.meta.line;
    let mut check = |field: String, raw: &Option<String>, line: usize| {
        if let Some(s) = raw
            && let Err(error) = crate::calico::selector::validate(s)
        {
            invalid.push(InvalidSelector {
                field,
                raw: s.clone(),
                error,
                line,
            });
        }
    };
    check("spec.selector".into(), &spec.selector, line);
    check(
        "spec.namespaceSelector".into(),
        &spec.namespace_selector,
        line,
    );
    check(
        "spec.serviceAccountSelector".into(),
        &spec.service_account_selector,
        line,
    );
    for (dir, rules) in [("ingress", &spec.ingress), ("egress", &spec.egress)] {
        for (i, rule) in rules.iter().enumerate() {
            for (side, er) in [("source", &rule.source), ("destination", &rule.destination)] {
                let f = |x: &str| format!("spec.{dir}[{i}].{side}.{x}");
                check(f("selector"), &er.selector, rule.line);
                check(f("notSelector"), &er.not_selector, rule.line);
                check(f("namespaceSelector"), &er.namespace_selector, rule.line);
                if let Some(sa) = &er.service_accounts {
                    check(f("serviceAccounts.selector"), &sa.selector, rule.line);
                }
            }
        }
    }
    let sel_v3 = spec.selector.clone().unwrap_or_default();
    let selector_raw = if kind.is_namespaced() {
        rules::network_policy_selector(
            &sel_v3,
            &ns,
            spec.service_account_selector.as_deref().unwrap_or(""),
        )
    } else {
        rules::global_network_policy_selector(
            &sel_v3,
            spec.namespace_selector.as_deref().unwrap_or(""),
            spec.service_account_selector.as_deref().unwrap_or(""),
        )
    };
    let selector = Selector::parse(&selector_raw);
    let mut out_rules = Vec::new();
    for (dir, rules_) in [
        (Direction::Ingress, &spec.ingress),
        (Direction::Egress, &spec.egress),
    ] {
        for (i, rule) in rules_.iter().enumerate() {
            out_rules.push(PolicyRule {
                direction: dir,
                index: i,
                action: rule.action.clone(),
                protocol: rule.protocol.as_ref().map(|p| p.to_string()),
                ip_version: rule.ip_version,
                src: side(&rule.source, &ns),
                dst: side(&rule.destination, &ns),
                line: rule.line,
            });
        }
    }
    let types = PolicyTypes::clientv3_default(
        &spec.types,
        !spec.ingress.is_empty(),
        !spec.egress.is_empty(),
    );
    let policy_ref = PolicyRef::new(kind.clone(), &name, namespace.as_deref(), &tier);
    let key = FelixPolicyKey::from_ref(&policy_ref, version);
    Policy {
        display: display(namespace.as_deref(), &name),
        key,
        policy_ref,
        tier,
        order: spec.order,
        types,
        selector_v3: sel_v3,
        selector_raw,
        selector,
        rules: out_rules,
        staged: kind.is_staged(),
        do_not_track: spec.do_not_track,
        pre_dnat: spec.pre_dnat,
        apply_on_forward: spec.apply_on_forward,
        performance_hints: spec.performance_hints.clone(),
        from_k8s: false,
        loc: p.loc(),
        invalid,
    }
}

/// Felix's view of one rule side: the v1 selector, combined with the not-selector when both
/// are present (`combineMatchesIfPossible`). `ns` is the namespace that scopes the selector
/// (empty for global policies and profiles: no namespace clause).
pub(crate) fn side(er: &resources::EntityRule, ns: &str) -> RuleSide {
    let (sa_names, sa_selector) = match &er.service_accounts {
        Some(sa) => (sa.names.clone(), sa.selector.clone().unwrap_or_default()),
        None => (Vec::new(), String::new()),
    };
    let ers = EntityRuleSelectors {
        selector: er.selector.clone().unwrap_or_default(),
        not_selector: er.not_selector.clone().unwrap_or_default(),
        namespace_selector: er.namespace_selector.clone().unwrap_or_default(),
        sa_names,
        sa_selector,
    };
    let v1 = rules::entity_rule_selector(&ers, ns);
    let (pos, neg) = rules::combine_not_selector(&v1, &ers.not_selector);
    let positive_raw = Some(pos).filter(|s| !s.is_empty());
    let negated_raw = Some(neg).filter(|s| !s.is_empty());
    RuleSide {
        selector: er.selector.clone(),
        not_selector: er.not_selector.clone(),
        namespace_selector: er.namespace_selector.clone(),
        positive: positive_raw
            .as_deref()
            .and_then(|s| Selector::parse(s).ok()),
        positive_raw,
        negated: negated_raw.as_deref().and_then(|s| Selector::parse(s).ok()),
        negated_raw,
        nets: er.nets.clone(),
        not_nets: er.not_nets.clone(),
        ports: er.ports.clone(),
        not_ports: er.not_ports.clone(),
        service: er
            .services
            .as_ref()
            .map(|s| (s.namespace.clone(), s.name.clone())),
    }
}

fn k8s_selector(s: &LabelSelector) -> K8sLabelSelector {
    K8sLabelSelector {
        match_labels: s.match_labels.clone(),
        match_expressions: s
            .match_expressions
            .iter()
            .map(|e| K8sLabelExpr {
                key: e.key.clone(),
                operator: e.operator.clone(),
                values: e.values.clone(),
            })
            .collect(),
    }
}

/// A Kubernetes NetworkPolicy as Calico converts it (`knp.default.<name>`, order 1000, tier
/// default): one Allow rule per peer and protocol.
fn k8s_policy(
    p: &Sourced<'_, K8sNetworkPolicy>,
    kind: PolicyKind,
    version: CalicoVersion,
) -> Policy {
    let np = p.item;
    let ns = np
        .meta
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let sel_v3 = rules::k8s_selector_to_calico(&k8s_selector(&np.spec.pod_selector), true);
    let selector_raw = rules::network_policy_selector(&sel_v3, &ns, "");
    let selector = Selector::parse(&selector_raw);
    let mut out_rules = Vec::new();
    let ingress = np
        .spec
        .ingress
        .iter()
        .map(|r| (Direction::Ingress, &r.from, &r.ports, r.line));
    let egress = np
        .spec
        .egress
        .iter()
        .map(|r| (Direction::Egress, &r.to, &r.ports, r.line));
    let mut counters: BTreeMap<Direction, usize> = BTreeMap::new();
    for (dir, peers, ports, line) in ingress.chain(egress) {
        // Ports grouped by protocol (TCP when unset), protocols sorted.
        let mut by_proto: BTreeMap<String, Vec<Port>> = BTreeMap::new();
        for port in ports {
            let proto = port.protocol.clone().unwrap_or_else(|| "TCP".to_string());
            let entry = by_proto.entry(proto).or_default();
            match (&port.port, port.end_port) {
                (Some(Port::Number(a)), Some(b)) if b > *a => entry.push(Port::Range(*a, b)),
                (Some(pt), _) => entry.push(pt.clone()),
                (None, _) => {}
            }
        }
        let protos: Vec<(Option<String>, Vec<Port>)> = if by_proto.is_empty() {
            vec![(None, Vec::new())]
        } else {
            by_proto.into_iter().map(|(k, v)| (Some(k), v)).collect()
        };
        let peer_sides: Vec<resources::EntityRule> = if peers.is_empty() {
            vec![resources::EntityRule::default()]
        } else {
            peers
                .iter()
                .map(|peer| {
                    let mut er = resources::EntityRule::default();
                    if let Some(block) = &peer.ip_block {
                        er.nets = vec![block.cidr.clone()];
                        er.not_nets = block.except.clone();
                    } else {
                        er.selector = Some(rules::k8s_optional_selector_to_calico(
                            peer.pod_selector.as_ref().map(k8s_selector).as_ref(),
                            true,
                        ));
                        let ns_sel = rules::k8s_optional_selector_to_calico(
                            peer.namespace_selector.as_ref().map(k8s_selector).as_ref(),
                            false,
                        );
                        er.namespace_selector = Some(ns_sel).filter(|s| !s.is_empty());
                    }
                    er
                })
                .collect()
        };
        for peer in &peer_sides {
            for (proto, ports) in &protos {
                let idx = counters.entry(dir).or_default();
                let mut ports_side = resources::EntityRule {
                    ports: ports.clone(),
                    ..Default::default()
                };
                let (src, dst) = match dir {
                    Direction::Ingress => (peer.clone(), std::mem::take(&mut ports_side)),
                    Direction::Egress => {
                        let mut d = peer.clone();
                        d.ports = ports.clone();
                        (resources::EntityRule::default(), d)
                    }
                };
                out_rules.push(PolicyRule {
                    direction: dir,
                    index: *idx,
                    action: "Allow".to_string(),
                    protocol: proto.clone(),
                    ip_version: None,
                    src: side(&src, &ns),
                    dst: side(&dst, &ns),
                    line,
                });
                *idx += 1;
            }
        }
    }
    let mut types: Vec<String> = np.spec.policy_types.clone();
    if types.is_empty() {
        types.push("Ingress".to_string());
        if !np.spec.egress.is_empty() {
            types.push("Egress".to_string());
        }
    }
    let policy_ref = PolicyRef::new(
        kind.clone(),
        &np.meta.name,
        Some(&ns),
        crate::calico::names::DEFAULT_TIER,
    );
    let key = FelixPolicyKey::from_ref(&policy_ref, version);
    let display_name = if version.keys_policies_by_kind() {
        np.meta.name.clone()
    } else {
        format!("knp.default.{}", np.meta.name)
    };
    Policy {
        display: display(Some(&ns), &display_name),
        key,
        policy_ref,
        tier: crate::calico::names::DEFAULT_TIER.to_string(),
        order: Some(1000.0),
        types: PolicyTypes::from_felix(&types),
        selector_v3: sel_v3,
        selector_raw,
        selector,
        rules: out_rules,
        staged: kind.is_staged(),
        do_not_track: false,
        pre_dnat: false,
        apply_on_forward: false,
        performance_hints: Vec::new(),
        from_k8s: true,
        loc: p.loc(),
        invalid: Vec::new(),
    }
}
