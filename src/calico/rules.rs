//! How v3 policy fields become the selector strings Felix parses, and the IDs of the IP sets
//! Felix builds from them.
//!
//! Felix never evaluates v3 fields. The syncer's update processors
//! (`libcalico-go/lib/backend/syncersv1/updateprocessors`) build raw v1 strings with
//! `fmt.Sprintf` and plain string replacement, and Felix parses those; the canonical form of the
//! *raw* string decides the IP set ID. So the functions here reproduce the strings byte for byte
//! (mixed `'…'`/`"…"` quoting, redundant parentheses, the textual `all()`/`global()` rewrite,
//! the endpoint selector passed through unparsed), and only parse where Calico parses.
//! The Kubernetes NetworkPolicy → v3 selector helper (`k8sSelectorToCalico`) lives here too.
//!
//! Not here: evaluating selectors ([`crate::calico::selector`]), endpoint labels
//! ([`crate::calico::labels`]), chain names and rule rendering.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::calico::hash::make_unique_id;
use crate::calico::labels::{
    LABEL_NAMESPACE, LABEL_ORCHESTRATOR, LABEL_SERVICE_ACCOUNT, NAMESPACE_LABEL_PREFIX,
    SERVICE_ACCOUNT_LABEL_PREFIX,
};
use crate::calico::selector::{Selector, SelectorError};

/// What `all()` in a namespaceSelector becomes: "any namespaced item".
pub const ALL_NAMESPACES: &str = "has(projectcalico.org/namespace)";
/// What `global()` in a rule namespaceSelector becomes: "any non-namespaced item".
pub const NO_NAMESPACE: &str = "!has(projectcalico.org/namespace)";
/// What `all()` in a GNP serviceAccountSelector becomes.
pub const ANY_SERVICE_ACCOUNT: &str = "has(projectcalico.org/serviceaccount)";

/// `parseSelectorAttachPrefix`: parse, prefix every label, print canonically. An unparsable
/// selector gives `""` (Calico logs `Failed to parse selector` and carries on without it).
pub fn prefix_selector(selector: &str, prefix: &str) -> String {
    match Selector::parse(selector) {
        Ok(sel) => sel.prefixed(prefix).canonical().to_string(),
        Err(_) => String::new(),
    }
}

/// `prefixAndAppendSelector`: `"(" + current + ") && " + prefixed`, or just `prefixed` when
/// `current` is empty; `current` unchanged when `new` is empty or does not parse.
pub fn prefix_and_append(current: &str, new: &str, prefix: &str) -> String {
    if new.is_empty() {
        return current.to_string();
    }
    let prefixed = prefix_selector(new, prefix);
    if prefixed.is_empty() {
        current.to_string()
    } else if current.is_empty() {
        prefixed
    } else {
        format!("({current}) && {prefixed}")
    }
}

/// `parseServiceAccounts`: the service-account part of an entity rule.
///
/// The selector is prefixed with `pcsa.`; the names become
/// `String(Parse("projectcalico.org/serviceaccount in { 'a', 'b' }"))`; both are joined as
/// `"(" + sel + ") && (" + names + ")"`. If the names do not parse (a name with a quote), the
/// whole part is `""`.
pub fn service_account_selector(names: &[String], selector: &str) -> String {
    let updated = if selector.is_empty() {
        String::new()
    } else {
        prefix_selector(selector, SERVICE_ACCOUNT_LABEL_PREFIX)
    };
    if names.is_empty() {
        return updated;
    }
    let raw = format!("{LABEL_SERVICE_ACCOUNT} in {{ '{}' }}", names.join("', '"));
    let Ok(parsed) = Selector::parse(&raw) else {
        return String::new();
    };
    let names_sel = parsed.canonical().to_string();
    if updated.is_empty() {
        names_sel
    } else {
        format!("({updated}) && ({names_sel})")
    }
}

/// The selector fields of one side (source or destination) of a v3 rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntityRuleSelectors {
    /// `selector`: passed through unparsed.
    pub selector: String,
    /// `notSelector`: becomes `NotSrcSelector`/`NotDstSelector` verbatim, but its presence
    /// alone triggers namespace scoping of the positive selector.
    pub not_selector: String,
    /// `namespaceSelector`.
    pub namespace_selector: String,
    /// `serviceAccounts.names`.
    pub sa_names: Vec<String>,
    /// `serviceAccounts.selector`.
    pub sa_selector: String,
}

/// `GetEntityRuleSelector`: the v1 `SrcSelector`/`DstSelector` string of one rule side.
/// `policy_namespace` is `""` for global policies.
pub fn entity_rule_selector(er: &EntityRuleSelectors, policy_namespace: &str) -> String {
    let sa = service_account_selector(&er.sa_names, &er.sa_selector);
    endpoint_selector(
        &er.namespace_selector,
        &er.selector,
        &sa,
        &er.not_selector,
        policy_namespace,
    )
}

/// `getEndpointSelector`.
fn endpoint_selector(
    namespace_selector: &str,
    endpoint_selector: &str,
    sa_selector: &str,
    not_selector: &str,
    ns: &str,
) -> String {
    let ns_sel = if !namespace_selector.is_empty() {
        // Plain string replacement on the canonical form: a label *value* containing
        // "all()" is rewritten too, exactly as Calico does.
        prefix_selector(namespace_selector, NAMESPACE_LABEL_PREFIX)
            .replace("all()", ALL_NAMESPACES)
            .replace("global()", NO_NAMESPACE)
    } else if !ns.is_empty() {
        format!("{LABEL_NAMESPACE} == '{ns}'")
    } else {
        String::new()
    };

    let parts: Vec<&str> = [sa_selector, endpoint_selector]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    let selector = match parts.as_slice() {
        [] => String::new(),
        [one] => (*one).to_string(),
        many => format!("({})", many.join(") && (")),
    };

    if !ns_sel.is_empty()
        && (!selector.is_empty() || !not_selector.is_empty() || !namespace_selector.is_empty())
    {
        if selector.is_empty() {
            return ns_sel;
        }
        return format!("({ns_sel}) && ({selector})");
    }
    selector
}

/// The v1 policy selector of a (namespaced) NetworkPolicy, including converted Kubernetes
/// NetworkPolicies: the namespace clause, then the `pcsa.`-prefixed serviceAccountSelector
/// (no `all()` rewrite here, so `all()` stays).
pub fn network_policy_selector(selector: &str, namespace: &str, sa_selector: &str) -> String {
    let mut sel = selector.to_string();
    if !namespace.is_empty() {
        let ns_sel = format!("{LABEL_NAMESPACE} == '{namespace}'");
        sel = if sel.is_empty() {
            ns_sel
        } else {
            format!("({sel}) && {ns_sel}")
        };
    }
    prefix_and_append(&sel, sa_selector, SERVICE_ACCOUNT_LABEL_PREFIX)
}

/// The v1 policy selector of a GlobalNetworkPolicy: namespaceSelector and serviceAccountSelector
/// prefixed and appended, each followed by a replacement of every `all()` **in the whole
/// string** (the GNP's own selector included).
pub fn global_network_policy_selector(
    selector: &str,
    namespace_selector: &str,
    sa_selector: &str,
) -> String {
    let mut sel = selector.to_string();
    if !namespace_selector.is_empty() {
        sel = prefix_and_append(&sel, namespace_selector, NAMESPACE_LABEL_PREFIX)
            .replace("all()", ALL_NAMESPACES);
    }
    if !sa_selector.is_empty() {
        sel = prefix_and_append(&sel, sa_selector, SERVICE_ACCOUNT_LABEL_PREFIX)
            .replace("all()", ANY_SERVICE_ACCOUNT);
    }
    sel
}

/// Felix's `combineMatchesIfPossible`: with a positive selector, a not-selector is folded in as
/// `"(" + pos + ") && (!(" + neg + "))"` and no negated set is made. Without a positive
/// selector the not-selector stays separate (and then matches non-Calico IPs too).
/// Returns `(positive, negated)`.
pub fn combine_not_selector(positive: &str, negated: &str) -> (String, String) {
    if positive.is_empty() || negated.is_empty() {
        return (positive.to_string(), negated.to_string());
    }
    (format!("({positive}) && (!({negated}))"), String::new())
}

/// ID of the IP set of a raw v1 selector string (`s:` + hash of its canonical form).
pub fn selector_ipset_id(raw: &str) -> Result<String, SelectorError> {
    Selector::parse(raw).map(|s| s.unique_id())
}

/// ID of a named-port IP set: `make_unique_id("n", selID + "," + proto + "," + port)`, where
/// `selector_id` is the ID of the side's positive selector (or of `all()`), and `protocol` is
/// `tcp`, `udp`, `sctp` or (v3.32+, rule without protocol) `any`.
pub fn named_port_ipset_id(selector_id: &str, protocol: &str, port_name: &str) -> String {
    make_unique_id("n", &format!("{selector_id},{protocol},{port_name}"))
}

/// ID of a service IP set: `svc:` (destination, `hash:ip,port`) or, without ports,
/// `svcnoport:` (source, `hash:net`), hashing `<namespace>/<name>`.
pub fn service_ipset_id(namespace: &str, name: &str, include_ports: bool) -> String {
    let prefix = if include_ports { "svc" } else { "svcnoport" };
    make_unique_id(prefix, &format!("{namespace}/{name}"))
}

// ---------------------------------------------------------------------------------------------
// Kubernetes label selectors
// ---------------------------------------------------------------------------------------------

/// A Kubernetes `metav1.LabelSelector` (deserialises from its YAML/JSON form).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct K8sLabelSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<K8sLabelExpr>,
}

/// One `matchExpressions` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct K8sLabelExpr {
    pub key: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`; anything else is silently dropped.
    pub operator: String,
    pub values: Vec<String>,
}

/// `k8sSelectorToCalico` for a selector that is present. `pod` selects the pod-selector
/// flavour (always starting with `projectcalico.org/orchestrator == 'k8s'`); otherwise it is a
/// namespace selector, where `{}` means `all()`.
pub fn k8s_selector_to_calico(sel: &K8sLabelSelector, pod: bool) -> String {
    k8s_optional_selector_to_calico(Some(sel), pod)
}

/// `k8sSelectorToCalico` with Go's nil: a nil pod selector gives just the orchestrator clause,
/// a nil namespace selector gives `""` ("the policy's own namespace").
pub fn k8s_optional_selector_to_calico(sel: Option<&K8sLabelSelector>, pod: bool) -> String {
    let mut parts: Vec<String> = Vec::new();
    if pod {
        parts.push(format!("{LABEL_ORCHESTRATOR} == 'k8s'"));
    }
    let Some(sel) = sel else {
        return parts.join(" && ");
    };
    if !pod && sel.match_labels.is_empty() && sel.match_expressions.is_empty() {
        return "all()".to_string();
    }
    // BTreeMap iterates in byte order, as Go's sort.Strings orders the keys.
    for (k, v) in &sel.match_labels {
        parts.push(format!("{k} == '{v}'"));
    }
    for e in &sel.match_expressions {
        let values = e.values.join("', '");
        match e.operator.as_str() {
            "In" => parts.push(format!("{} in {{ '{values}' }}", e.key)),
            "NotIn" => parts.push(format!("{} not in {{ '{values}' }}", e.key)),
            "Exists" => parts.push(format!("has({})", e.key)),
            "DoesNotExist" => parts.push(format!("! has({})", e.key)),
            _ => {}
        }
    }
    parts.join(" && ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(raw: &str) -> String {
        Selector::parse(raw)
            .map(|s| s.canonical().to_string())
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn namespaced_rule_with_not_selector_combines_as_felix_does() {
        let er = EntityRuleSelectors {
            selector: "app == 'a'".into(),
            not_selector: "env == 'dev'".into(),
            ..Default::default()
        };
        let pos = entity_rule_selector(&er, "prod");
        let (combined, neg) = combine_not_selector(&pos, &er.not_selector);
        assert_eq!(
            combined,
            "((projectcalico.org/namespace == 'prod') && (app == 'a')) && (!(env == 'dev'))"
        );
        assert!(neg.is_empty());
        assert_eq!(
            canonical(&combined),
            "((projectcalico.org/namespace == \"prod\" && app == \"a\") && !env == \"dev\")"
        );
    }

    #[test]
    fn not_selector_alone_scopes_to_the_namespace() {
        let er = EntityRuleSelectors {
            not_selector: "env == 'dev'".into(),
            ..Default::default()
        };
        assert_eq!(
            entity_rule_selector(&er, "prod"),
            "projectcalico.org/namespace == 'prod'"
        );
        assert_eq!(entity_rule_selector(&er, ""), "");
    }

    #[test]
    fn all_inside_a_namespace_label_value_is_rewritten_too() {
        let er = EntityRuleSelectors {
            namespace_selector: "name == 'all()'".into(),
            ..Default::default()
        };
        assert_eq!(
            entity_rule_selector(&er, "x"),
            "pcns.name == \"has(projectcalico.org/namespace)\""
        );
    }

    #[test]
    fn unparsable_namespace_selector_drops_the_namespace_scope() {
        let er = EntityRuleSelectors {
            selector: "app == 'a'".into(),
            namespace_selector: "team = 'x'".into(),
            ..Default::default()
        };
        assert_eq!(entity_rule_selector(&er, "prod"), "app == 'a'");
    }

    #[test]
    fn policy_selectors_match_the_update_processors() {
        assert_eq!(
            network_policy_selector("mylabel == 'selectme'", "namespace2", "all()"),
            "((mylabel == 'selectme') && projectcalico.org/namespace == 'namespace2') && all()"
        );
        assert_eq!(
            global_network_policy_selector("mylabel == 'selectme'", "all()", ""),
            "(mylabel == 'selectme') && has(projectcalico.org/namespace)"
        );
        assert_eq!(
            global_network_policy_selector("", "name == 'testing'", ""),
            "pcns.name == \"testing\""
        );
    }

    #[test]
    fn ipset_ids_hash_what_felix_hashes() {
        assert_eq!(
            service_ipset_id("default", "svc", true),
            "svc:Jhwii46PCMT5NlhWsUqZmv7al8TeHFbNQMhoVg"
        );
        assert_eq!(
            service_ipset_id("default", "svc", false),
            "svcnoport:T03S_6hogdrGKrNFBcbKTFsH_uKwDHEo8JddOg"
        );
        let all = selector_ipset_id("").unwrap_or_default();
        assert_eq!(
            named_port_ipset_id(&all, "tcp", "http"),
            make_unique_id("n", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug,tcp,http")
        );
    }

    #[test]
    fn k8s_selectors_distinguish_nil_from_empty() {
        let empty = K8sLabelSelector::default();
        assert_eq!(k8s_optional_selector_to_calico(None, false), "");
        assert_eq!(k8s_selector_to_calico(&empty, false), "all()");
        assert_eq!(
            k8s_optional_selector_to_calico(None, true),
            "projectcalico.org/orchestrator == 'k8s'"
        );
        assert_eq!(
            k8s_selector_to_calico(&empty, true),
            "projectcalico.org/orchestrator == 'k8s'"
        );
    }

    #[test]
    fn k8s_expressions_keep_order_and_drop_unknown_operators() {
        let yaml = "matchLabels: {b: '2', a: '1'}\nmatchExpressions:\n- {key: t, operator: In, values: [z, y]}\n- {key: u, operator: Gt, values: ['1']}\n- {key: v, operator: DoesNotExist}\n";
        let sel: K8sLabelSelector = serde_yaml::from_str(yaml).unwrap_or_default();
        assert_eq!(
            k8s_selector_to_calico(&sel, true),
            "projectcalico.org/orchestrator == 'k8s' && a == '1' && b == '2' && t in { 'z', 'y' } && ! has(v)"
        );
    }
}
