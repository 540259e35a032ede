//! CAL081: a namespaceSelector on a label key no namespace carries while a namespace shows a
//! near key or the value under another key; and Namespace labels that disagree with the
//! `pcns.*` labels of their `kns.<ns>` profile. CAL013 says when a namespaceSelector matches no
//! namespace at all; this check names the label that is missing and where the near one is.

use std::collections::{BTreeMap, BTreeSet};

use super::{Check, Evidence, Finding, Severity, Step};
use crate::calico::labels::{NAMESPACE_LABEL_PREFIX, NAMESPACE_PROFILE_PREFIX};
use crate::calico::lint::replace_at;
use crate::calico::selector::{Node, Selector};
use crate::model::{Loc, Model, Policy};

pub const CHECK: Check = Check {
    code: "CAL081",
    name: "namespace-labels-missing",
    severity: Severity::Warning,
    step: Step::SelectorsMatch,
    doc: r#"
## What it finds
- A `namespaceSelector` (of a rule, or of a GlobalNetworkPolicy) that tests a label key which
  neither any Namespace object nor any `kns.<ns>` profile carries, while a namespace has a near
  key (`name` vs `kubernetes.io/metadata.name`, a case or one-letter difference) or carries the
  selector's value under another key (`name == 'monitoring'` vs
  `kubernetes.io/metadata.name=monitoring`).
- A namespace whose Namespace object labels disagree with the `pcns.*` labels of its
  `kns.<ns>` profile (a label missing on one side, or another value): a stale profile.

## Why it matters
Calico matches namespaceSelectors against the namespace's labels as the `kns.<ns>` profile
carries them (`pcns.<key>`), so a selector on a label the namespaces do not have selects no
peer in them and the traffic falls to the end-of-tier drop; a stale profile makes Felix see
other labels than `kubectl get ns --show-labels` shows.

## Example
`namespaceSelector: name == 'monitoring'` while namespace `monitoring` only has
`kubernetes.io/metadata.name=monitoring`; or namespace `monitoring` labelled `team=obs` while
`kns.monitoring` still has `pcns.team: ops`.

## How to confirm by hand
`kubectl get ns --show-labels`; `calicoctl get profile kns.<ns> -o yaml` (its `labelsToApply`).

## What to do
Select on a label the namespaces have (`kubernetes.io/metadata.name == 'monitoring'` exists on
Kubernetes ≥ 1.21), or add the label: `kubectl label namespace monitoring name=monitoring`. For
a stale profile, check calico-kube-controllers (it copies namespace labels in etcd mode) and
restart it.
"#,
    run,
};

/// Where a namespace's labels come from.
#[derive(Debug, Clone)]
struct Source {
    ns: String,
    /// `Namespace monitoring` or `profile kns.monitoring`.
    what: String,
    labels: BTreeMap<String, String>,
    loc: Loc,
    /// The profile's labels are `pcns.`-prefixed in the YAML.
    prefixed: bool,
}

fn sources(m: &Model<'_>) -> Vec<Source> {
    let mut out = Vec::new();
    for n in &m.resources.namespaces {
        let name = n.item.meta.name.clone();
        out.push(Source {
            what: format!("Namespace {name}"),
            ns: name,
            labels: n.item.meta.labels.clone(),
            loc: n.loc(),
            prefixed: false,
        });
    }
    for p in &m.resources.profiles {
        let Some(ns) = p.item.meta.name.strip_prefix(NAMESPACE_PROFILE_PREFIX) else {
            continue;
        };
        let labels = p
            .item
            .labels_to_apply
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(NAMESPACE_LABEL_PREFIX)
                    .map(|k| (k.to_string(), v.clone()))
            })
            .collect();
        out.push(Source {
            ns: ns.to_string(),
            what: format!("profile {}", p.item.meta.name),
            labels,
            loc: p.loc(),
            prefixed: true,
        });
    }
    out
}

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    let srcs = sources(m);
    if srcs.is_empty() {
        return;
    }
    selectors(m, &srcs, out);
    stale_profiles(m, &srcs, out);
}

// ---------------------------------------------------------------------------------------
// namespaceSelectors on a missing key

/// A leaf that must hold for the selector to match, with its path in the tree.
struct Leaf<'a> {
    node: &'a Node,
    path: Vec<usize>,
}

fn positive_leaves<'a>(
    n: &'a Node,
    path: &mut Vec<usize>,
    positive: bool,
    out: &mut Vec<Leaf<'a>>,
) {
    match n {
        Node::Not(op) => {
            path.push(0);
            positive_leaves(op, path, !positive, out);
            path.pop();
        }
        Node::And(ops) | Node::Or(ops) => {
            for (i, op) in ops.iter().enumerate() {
                path.push(i);
                positive_leaves(op, path, positive, out);
                path.pop();
            }
        }
        Node::LabelEq { .. }
        | Node::InSet { .. }
        | Node::Has { .. }
        | Node::Contains { .. }
        | Node::StartsWith { .. }
        | Node::EndsWith { .. }
            if positive =>
        {
            out.push(Leaf {
                node: n,
                path: path.clone(),
            })
        }
        _ => {}
    }
}

fn leaf_values(n: &Node) -> Vec<&str> {
    match n {
        Node::LabelEq { value, .. } => vec![value.as_str()],
        Node::InSet { values, .. } => values.iter().map(String::as_str).collect(),
        _ => Vec::new(),
    }
}

/// `a` and `b` differ by one insertion, deletion or substitution (or only in case).
fn near_key(a: &str, b: &str) -> bool {
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    // `kubernetes.io/metadata.name` ends in `name` after a `/` or a `.`.
    let tail = |long: &str, short: &str| {
        long.len() > short.len()
            && long.ends_with(short)
            && long[..long.len() - short.len()].ends_with(['/', '.'])
    };
    if tail(a, b) || tail(b, a) {
        return true;
    }
    let x: Vec<char> = a.chars().collect();
    let y: Vec<char> = b.chars().collect();
    let (s, l) = if x.len() <= y.len() {
        (&x, &y)
    } else {
        (&y, &x)
    };
    match l.len() - s.len() {
        0 => s.iter().zip(l.iter()).filter(|(p, q)| p != q).count() == 1,
        1 => {
            let i = s
                .iter()
                .zip(l.iter())
                .position(|(p, q)| p != q)
                .unwrap_or(s.len());
            s[i..] == l[i + 1..]
        }
        _ => false,
    }
}

/// The best near label for a leaf whose key no namespace carries.
struct Near<'s> {
    src: &'s Source,
    key: String,
    value: String,
    corrected: Node,
}

fn find_near<'s>(leaf: &Node, key: &str, srcs: &'s [Source]) -> Option<Near<'s>> {
    let values = leaf_values(leaf);
    let mut best: Option<(u8, Near<'s>)> = None;
    for s in srcs {
        for (k, v) in &s.labels {
            let key_near = near_key(k, key);
            let value_hit = values.contains(&v.as_str());
            let rank = match (key_near, value_hit) {
                (true, true) => 3,
                (false, true) => 2,
                (true, false) => 1,
                _ => continue,
            };
            if best.as_ref().is_some_and(|(r, _)| *r >= rank) {
                continue;
            }
            let corrected = if value_hit && matches!(leaf, Node::LabelEq { .. }) {
                Node::LabelEq {
                    label: k.clone(),
                    value: v.clone(),
                }
            } else {
                leaf.with_label(k)
            };
            best = Some((
                rank,
                Near {
                    src: s,
                    key: k.clone(),
                    value: v.clone(),
                    corrected,
                },
            ));
        }
    }
    best.map(|(_, n)| n)
}

/// Every namespaceSelector of an enforced policy: (field, selector, line to search from).
fn namespace_selectors(m: &Model<'_>, p: &Policy) -> Vec<(String, String, usize)> {
    let mut fields = Vec::new();
    if !p.policy_ref.kind.is_namespaced()
        && let Some(g) = m
            .resources
            .global_network_policies
            .iter()
            .find(|g| g.path == p.loc.path && g.item.meta.line == p.loc.line)
        && let Some(sel) = &g.item.spec.namespace_selector
    {
        fields.push((
            "spec.namespaceSelector".to_string(),
            sel.clone(),
            p.loc.line,
        ));
    }
    for r in &p.rules {
        for (side_name, side) in [("source", &r.src), ("destination", &r.dst)] {
            if let Some(sel) = &side.namespace_selector {
                let dir = format!("{:?}", r.direction).to_lowercase();
                fields.push((
                    format!("{dir}[{}].{side_name}.namespaceSelector", r.index),
                    sel.clone(),
                    r.line.max(p.loc.line),
                ));
            }
        }
    }
    fields
}

fn selectors(m: &Model<'_>, srcs: &[Source], out: &mut Vec<Finding>) {
    let carried: BTreeSet<&str> = srcs
        .iter()
        .flat_map(|s| s.labels.keys().map(String::as_str))
        .chain(["projectcalico.org/name"])
        .collect();
    let mut seen = BTreeSet::new();
    for p in m.policies.iter().filter(|p| p.enforced()) {
        for (field, raw, line) in namespace_selectors(m, p) {
            let t = raw.trim();
            if t.is_empty() || t == "all()" || t == "global()" {
                continue;
            }
            let Ok(sel) = Selector::parse(&raw) else {
                continue;
            };
            let mut leaves = Vec::new();
            positive_leaves(sel.root(), &mut Vec::new(), true, &mut leaves);
            for leaf in leaves {
                let Some(key) = leaf.node.label() else {
                    continue;
                };
                if carried.contains(key)
                    || !seen.insert((p.display.clone(), field.clone(), key.to_string()))
                {
                    continue;
                }
                let Some(near) = find_near(leaf.node, key, srcs) else {
                    continue;
                };
                let corrected =
                    Selector::from_node(replace_at(sel.root(), &leaf.path, near.corrected.clone()));
                out.push(selector_finding(
                    m,
                    p,
                    &field,
                    &raw,
                    line,
                    key,
                    &near,
                    corrected.canonical(),
                ));
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn selector_finding(
    m: &Model<'_>,
    p: &Policy,
    field: &str,
    raw: &str,
    line: usize,
    key: &str,
    near: &Near<'_>,
    corrected: &str,
) -> Finding {
    let ns = &near.src.ns;
    let shown_key = if near.src.prefixed {
        format!("{NAMESPACE_LABEL_PREFIX}{}", near.key)
    } else {
        near.key.clone()
    };
    let message = format!(
        "{field} of {} is `{raw}`, which tests label `{key}`; no namespace in the bundle carries `{key}` (neither a Namespace object nor a kns.<ns> profile), so the term never holds. {} has `{shown_key}={}`: the selector probably means `{corrected}`.",
        p.display, near.src.what, near.value
    );
    let ev = super::find_field_line(m, &p.loc.path, line, "namespaceSelector", raw)
        .or_else(|| super::find_field_line(m, &p.loc.path, line, "namespaceSelector", ""))
        .map(|(l, t)| p.loc.clone().with_line(l).evidence(t))
        .unwrap_or_else(|| {
            p.loc
                .clone()
                .with_line(line)
                .evidence(format!("namespaceSelector: {raw}"))
        });
    let near_ev = super::find_field_line(
        m,
        &near.src.loc.path,
        near.src.loc.line,
        &shown_key,
        &near.value,
    )
    .map(|(l, t)| near.src.loc.clone().with_line(l).evidence(t))
    .unwrap_or_else(|| {
        near.src
            .loc
            .evidence(format!("{shown_key}: {}", near.value))
    });
    let mut f = Finding::of(
        &CHECK,
        format!(
            "namespaceSelector of {} tests `{key}`, which no namespace has",
            p.display
        ),
        message,
    )
    .subject("policy", p.display.as_str())
    .subject("selector", raw)
    .subject("namespace", ns.as_str())
    .subject("label", key)
    .evidence(ev)
    .evidence(near_ev)
    .confirm(format!(
        "kubectl get ns {} --show-labels; calicoctl get profile {} -o yaml",
        super::shell_quote(ns),
        super::shell_quote(&format!("{NAMESPACE_PROFILE_PREFIX}{ns}"))
    ));
    let label_it = match leaf_value_for_fix(raw, key) {
        Some(v) => format!(
            " Or label the namespace: kubectl label namespace {} {}={}.",
            super::shell_quote(ns),
            key,
            super::shell_quote(&v)
        ),
        None => String::new(),
    };
    f = f.fix(format!(
        "Select on a label the namespace has: `{corrected}` ({}).{label_it}",
        super::apply_hint(p)
    ));
    f
}

/// The value a `key == 'v'` term asks for, to suggest labelling the namespace.
fn leaf_value_for_fix(raw: &str, key: &str) -> Option<String> {
    let sel = Selector::parse(raw).ok()?;
    let mut leaves = Vec::new();
    positive_leaves(sel.root(), &mut Vec::new(), true, &mut leaves);
    leaves.iter().find_map(|l| match l.node {
        Node::LabelEq { label, value } if label == key => Some(value.clone()),
        _ => None,
    })
}

// ---------------------------------------------------------------------------------------
// Namespace labels vs the kns.<ns> profile

fn stale_profiles(m: &Model<'_>, srcs: &[Source], out: &mut Vec<Finding>) {
    for ns_src in srcs.iter().filter(|s| !s.prefixed) {
        let Some(prof) = srcs.iter().find(|s| s.prefixed && s.ns == ns_src.ns) else {
            continue;
        };
        let mut diffs: Vec<(String, Option<&String>, Option<&String>)> = Vec::new();
        let keys: BTreeSet<&String> = ns_src
            .labels
            .keys()
            .chain(prof.labels.keys())
            .filter(|k| k.as_str() != "projectcalico.org/name")
            .collect();
        for k in keys {
            let a = ns_src.labels.get(k);
            let b = prof.labels.get(k);
            if a != b {
                diffs.push((k.clone(), a, b));
            }
        }
        if diffs.is_empty() {
            continue;
        }
        let ns = &ns_src.ns;
        let described: Vec<String> = diffs
            .iter()
            .map(|(k, a, b)| match (a, b) {
                (Some(a), None) => format!("`{k}={a}` is not in the profile"),
                (None, Some(b)) => format!("the profile still has `pcns.{k}={b}`"),
                (Some(a), Some(b)) => {
                    format!("`{k}` is `{a}` on the Namespace but `{b}` in the profile")
                }
                (None, None) => String::new(),
            })
            .collect();
        let mut f = Finding::of(
            &CHECK,
            format!("Namespace {ns}'s labels disagree with profile kns.{ns}"),
            format!(
                "Namespace {ns} and its profile kns.{ns} disagree: {}. Felix matches namespaceSelectors against the profile's pcns.* labels, so it sees the profile's version.",
                described.join("; ")
            ),
        )
        .subject("namespace", ns.as_str())
        .subject("profile", format!("{NAMESPACE_PROFILE_PREFIX}{ns}"));
        for (k, a, b) in diffs.iter().take(3) {
            f = f.subject("label", k.as_str());
            if let Some(a) = a {
                f = f.evidence(label_evidence(m, ns_src, k, a));
            }
            if let Some(b) = b {
                f = f.evidence(label_evidence(
                    m,
                    prof,
                    &format!("{NAMESPACE_LABEL_PREFIX}{k}"),
                    b,
                ));
            }
        }
        if f.evidence.is_empty() {
            f = f.evidence(ns_src.loc.evidence(format!("Namespace {ns}")));
        }
        out.push(
            f.confirm(format!(
                "kubectl get ns {} --show-labels; calicoctl get profile {} -o yaml",
                super::shell_quote(ns),
                super::shell_quote(&format!("{NAMESPACE_PROFILE_PREFIX}{ns}"))
            ))
            .fix(
                "The profile should mirror the Namespace: in etcd mode calico-kube-controllers copies the labels, so check its log and restart it; in Kubernetes-datastore mode the profile is derived on read, so collect both again to rule out a bundle taken mid-change.",
            ),
        );
    }
}

fn label_evidence(m: &Model<'_>, src: &Source, key: &str, value: &str) -> Evidence {
    super::find_field_line(m, &src.loc.path, src.loc.line, key, value)
        .map(|(l, t)| src.loc.clone().with_line(l).evidence(t))
        .unwrap_or_else(|| src.loc.evidence(format!("{key}: {value}")))
}

#[cfg(test)]
mod tests {
    use super::near_key;

    #[test]
    fn near_keys_are_suffixes_case_changes_and_one_edit() {
        assert!(near_key("kubernetes.io/metadata.name", "name"));
        assert!(near_key("Team", "team"));
        assert!(near_key("teams", "team"));
        assert!(!near_key("tame", "team"));
        assert!(!near_key("environment", "team"));
    }
}

#[cfg(test)]
mod fixture_tests {
    use super::*;
    use std::path::Path;

    // CAL081-name-vs-metadata-name: namespace monitoring (Namespace and kns.monitoring) and a
    // policy whose rule selects `name == 'monitoring'`. CAL081-stale-profile: Namespace demo
    // labelled team=web while kns.demo still has pcns.team=shop.

    fn findings(case: &str) -> Vec<Finding> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/checks")
            .join(case);
        crate::analyze(&dir)
            .expect("fixture opens")
            .findings
            .into_iter()
            .filter(|f| f.code == CHECK.code)
            .collect()
    }

    #[test]
    fn a_selector_on_name_points_at_kubernetes_metadata_name() {
        let found = findings("CAL081-name-vs-metadata-name");
        assert_eq!(found.len(), 1, "{found:#?}");
        let f = &found[0];
        assert_eq!(f.node, None);
        let subjects: Vec<(&str, &str)> = f
            .subjects
            .iter()
            .map(|s| (s.kind.as_str(), s.name.as_str()))
            .collect();
        assert_eq!(
            subjects,
            vec![
                ("policy", "demo/allow-monitoring"),
                ("selector", "name == 'monitoring'"),
                ("namespace", "monitoring"),
                ("label", "name"),
            ]
        );
        assert_eq!(f.evidence[0].path, "cluster/calico/networkpolicies.yaml");
        assert_eq!(f.evidence[0].line, 63);
        assert_eq!(
            f.evidence[0].excerpt.trim(),
            "namespaceSelector: name == 'monitoring'"
        );
        assert_eq!(f.evidence[1].path, "cluster/k8s/namespaces.yaml");
        assert_eq!(f.evidence[1].line, 20);
        assert_eq!(
            f.evidence[1].excerpt.trim(),
            "kubernetes.io/metadata.name: monitoring"
        );
        let fix = f.fix.as_deref().unwrap_or("");
        assert!(
            fix.contains(r#"`kubernetes.io/metadata.name == "monitoring"`"#),
            "{fix}"
        );
        assert!(
            fix.contains("kubectl label namespace monitoring name=monitoring"),
            "{fix}"
        );
        assert_eq!(
            f.confirm.as_deref(),
            Some(
                "kubectl get ns monitoring --show-labels; calicoctl get profile kns.monitoring -o yaml"
            )
        );
    }

    #[test]
    fn a_profile_that_disagrees_with_its_namespace_is_stale() {
        let found = findings("CAL081-stale-profile");
        assert_eq!(found.len(), 1, "{found:#?}");
        let f = &found[0];
        assert!(
            f.message
                .contains("`team` is `web` on the Namespace but `shop` in the profile"),
            "{}",
            f.message
        );
        assert!(
            f.subjects
                .iter()
                .any(|s| s.kind == "profile" && s.name == "kns.demo")
        );
        assert!(
            f.subjects
                .iter()
                .any(|s| s.kind == "label" && s.name == "team")
        );
        assert_eq!(f.evidence[0].path, "cluster/k8s/namespaces.yaml");
        assert_eq!(f.evidence[0].line, 9);
        assert_eq!(f.evidence[1].path, "cluster/calico/profiles.yaml");
        assert_eq!(f.evidence[1].line, 19);
        assert_eq!(f.evidence[1].excerpt.trim(), "pcns.team: shop");
    }

    #[test]
    fn namespaces_that_agree_with_their_profiles_are_not_reported() {
        assert!(findings("CAL014-egress-open").is_empty());
    }
}
