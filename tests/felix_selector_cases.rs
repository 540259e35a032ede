//! The selector kinds of Felix's own cases (`testdata/reference/felix-cases.json`):
//! canonical form, unique ID, prefix visitor, entity-rule selector strings and the Kubernetes
//! selector conversion. Other kinds in that file are checked elsewhere.

use std::collections::BTreeMap;
use std::path::Path;

use calisnap::calico::rules::{
    EntityRuleSelectors, K8sLabelExpr, K8sLabelSelector, entity_rule_selector,
    k8s_optional_selector_to_calico,
};
use calisnap::calico::selector::Selector;
use serde_json::Value;

const KINDS: [&str; 5] = [
    "selector_canonical",
    "selector_unique_id",
    "selector_prefix_visitor",
    "entity_rule_selector",
    "k8s_selector_to_calico",
];

fn cases_of(kind: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/reference/felix-cases.json");
    let text = std::fs::read_to_string(&path).expect("felix-cases.json is committed");
    let all: Value = serde_json::from_str(&text).expect("felix-cases.json is JSON");
    let list: Vec<Value> = all["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter(|c| c["kind"] == kind)
        .cloned()
        .collect();
    assert!(!list.is_empty(), "no {kind} cases");
    list
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// What our code gives for one case's input.
fn compute(case: &Value) -> Result<String, String> {
    let input = &case["input"];
    match case["kind"].as_str().unwrap_or("") {
        "selector_canonical" => Selector::parse(str_of(input, "selector"))
            .map(|s| s.canonical().to_string())
            .map_err(|e| e.to_string()),
        "selector_unique_id" => Selector::parse(str_of(input, "selector"))
            .map(|s| s.unique_id())
            .map_err(|e| e.to_string()),
        "selector_prefix_visitor" => Selector::parse(str_of(input, "selector"))
            .map(|s| s.prefixed(str_of(input, "prefix")).canonical().to_string())
            .map_err(|e| e.to_string()),
        "entity_rule_selector" => {
            let er = EntityRuleSelectors {
                selector: str_of(input, "selector").to_string(),
                not_selector: str_of(input, "not_selector").to_string(),
                namespace_selector: str_of(input, "namespace_selector").to_string(),
                sa_names: strings(&input["sa_names"]),
                sa_selector: str_of(input, "sa_selector").to_string(),
            };
            Ok(entity_rule_selector(&er, str_of(input, "policy_namespace")))
        }
        "k8s_selector_to_calico" => {
            let pod = input["pod"].as_bool().unwrap_or(true);
            if input["is_nil"].as_bool() == Some(true) {
                return Ok(k8s_optional_selector_to_calico(None, pod));
            }
            let match_labels: BTreeMap<String, String> = input["match_labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let match_expressions = input["match_expressions"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|e| K8sLabelExpr {
                            key: str_of(e, "key").to_string(),
                            operator: str_of(e, "operator").to_string(),
                            values: strings(&e["values"]),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let sel = K8sLabelSelector {
                match_labels,
                match_expressions,
            };
            Ok(k8s_optional_selector_to_calico(Some(&sel), pod))
        }
        other => Err(format!("not a selector kind: {other}")),
    }
}

fn run_kind(kind: &str) {
    let cases = cases_of(kind);
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            let want = c["expected"].as_str().unwrap_or("");
            match compute(c) {
                Ok(got) if got == want => None,
                other => Some(format!("{}: got {other:?}, want {want:?}", c["input"])),
            }
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{kind}: {} of {} failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn selector_canonical_cases_match_felix() {
    run_kind("selector_canonical");
}

#[test]
fn selector_unique_id_cases_match_felix() {
    run_kind("selector_unique_id");
}

#[test]
fn selector_prefix_visitor_cases_match_felix() {
    run_kind("selector_prefix_visitor");
}

#[test]
fn entity_rule_selector_cases_match_the_update_processor() {
    run_kind("entity_rule_selector");
}

#[test]
fn k8s_selector_to_calico_cases_match_the_conversion() {
    run_kind("k8s_selector_to_calico");
}

#[test]
fn every_kind_this_file_owns_is_run() {
    for kind in KINDS {
        assert!(!cases_of(kind).is_empty());
    }
}
