//! Calico's own naming and rendering test vectors (`testdata/reference/felix-cases.json`,
//! each taken from a test in projectcalico/calico) run against `calico::names` and
//! `calico::render`. Every case of every kind must pass; a kind this file does not know
//! fails the run, so nothing is skipped silently. The selector kinds are run by the
//! selector tests and are listed in `HANDLED_ELSEWHERE`.

use std::collections::BTreeMap;
use std::path::Path;

use calisnap::calico::names::{
    self, CalicoVersion, Direction, DispatchConfig, FelixPolicyKey, NflogAction, PolicyKind,
    RuleOwner,
};
use calisnap::calico::render::{self, FelixRule, ProtoRule};
use serde_json::Value;

/// Kinds whose cases belong to the selector implementation's tests.
const HANDLED_ELSEWHERE: &[&str] = &[
    "selector_canonical",
    "selector_unique_id",
    "selector_prefix_visitor",
    "entity_rule_selector",
    "k8s_selector_to_calico",
];

fn load_cases() -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/reference/felix-cases.json");
    let text = std::fs::read_to_string(&path).expect("felix-cases.json is committed");
    let doc: Value = serde_json::from_str(&text).expect("felix-cases.json is JSON");
    doc["cases"].as_array().expect("a cases array").clone()
}

fn s<'a>(input: &'a Value, key: &str) -> Result<&'a str, String> {
    input[key]
        .as_str()
        .ok_or_else(|| format!("input.{key} is not a string"))
}

fn opt_s<'a>(input: &'a Value, key: &str) -> Option<&'a str> {
    input.get(key).and_then(Value::as_str)
}

fn n(input: &Value, key: &str) -> Result<u64, String> {
    input[key]
        .as_u64()
        .ok_or_else(|| format!("input.{key} is not a number"))
}

fn version(input: &Value) -> Result<CalicoVersion, String> {
    match opt_s(input, "felix_version") {
        Some(v) => CalicoVersion::parse(v).ok_or_else(|| format!("bad felix_version {v}")),
        None => Ok(CalicoVersion::NEWEST),
    }
}

fn direction(input: &Value, key: &str) -> Result<Direction, String> {
    let d = s(input, key)?;
    Direction::parse(d).ok_or_else(|| format!("bad direction {d}"))
}

fn nft(input: &Value) -> bool {
    input.get("nft").and_then(Value::as_bool).unwrap_or(false)
}

/// The policy a `policy_chain_name`/`policy_chain_comment` case describes: a v1 name (up to
/// v3.31) or kind/namespace/name (v3.32+), and the tier as given (an empty tier stays
/// empty, as in Felix's own test).
fn policy_key(input: &Value, v: CalicoVersion) -> FelixPolicyKey {
    let kind = opt_s(input, "kind")
        .map(PolicyKind::parse)
        .unwrap_or(PolicyKind::GlobalNetworkPolicy);
    let namespace = opt_s(input, "namespace").map(str::to_string);
    let name = opt_s(input, "name")
        .or_else(|| opt_s(input, "v1_name"))
        .unwrap_or("")
        .to_string();
    let v1_name = match opt_s(input, "v1_name") {
        Some(v1) => v1.to_string(),
        None => names::v1_policy_name(&kind, &name, namespace.as_deref(), v),
    };
    let tier = opt_s(input, "tier").unwrap_or("default").to_string();
    FelixPolicyKey {
        kind,
        name,
        namespace,
        tier,
        v1_name,
    }
}

fn expected_str(case: &Value) -> Result<&str, String> {
    case["expected"]
        .as_str()
        .ok_or_else(|| "expected is not a string".to_string())
}

fn check_str(case: &Value, got: &str) -> Result<(), String> {
    let want = expected_str(case)?;
    if got == want {
        Ok(())
    } else {
        Err(format!("got {got:?}, want {want:?}"))
    }
}

fn rule_from(v: &Value) -> Result<FelixRule, String> {
    match v {
        Value::String(s) => Ok(FelixRule::new("", s.clone())),
        Value::Object(m) => Ok(FelixRule {
            comments: m
                .get("comments")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            matches: m
                .get("match")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            action: m
                .get("action")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        }),
        other => Err(format!("bad rule {other}")),
    }
}

fn run_case(case: &Value) -> Result<(), String> {
    let kind = case["kind"].as_str().unwrap_or("");
    let input = &case["input"];
    match kind {
        "get_length_limited_id" => {
            let got = names::get_length_limited_id(
                s(input, "prefix")?,
                s(input, "suffix")?,
                n(input, "max_len")? as usize,
                version(input)?,
            );
            check_str(case, &got)
        }
        "service_ipset_id" => {
            let include = input
                .get("include_ports")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let got = names::service_ipset_id(s(input, "namespace")?, s(input, "name")?, include);
            check_str(case, &got)
        }
        "policy_chain_name" => {
            let v = version(input)?;
            let key = policy_key(input, v);
            let got = names::policy_chain_name(direction(input, "direction")?, &key, v, nft(input));
            check_str(case, &got)
        }
        "policy_chain_comment" => {
            let v = version(input)?;
            let key = policy_key(input, v);
            let got = names::policy_chain_comment(direction(input, "direction")?, &key, v);
            match (&case["expected"], got) {
                (Value::Null, None) => Ok(()),
                (_, Some(g)) => check_str(case, &g),
                (want, None) => Err(format!("got no comment, want {want}")),
            }
        }
        "v1_policy_name" => {
            let v = version(input)?;
            let got = names::v1_policy_name(
                &PolicyKind::parse(s(input, "kind")?),
                s(input, "name")?,
                opt_s(input, "namespace"),
                v,
            );
            check_str(case, &got)
        }
        "profile_chain_name" => {
            let got = names::profile_chain_name(
                direction(input, "direction")?,
                s(input, "profile")?,
                version(input)?,
                nft(input),
            );
            check_str(case, &got)
        }
        "endpoint_chain_name" => {
            let got = names::endpoint_chain_name(
                s(input, "prefix")?,
                s(input, "iface")?,
                version(input)?,
                nft(input),
            );
            check_str(case, &got)
        }
        "ipset_main_name" => {
            let got = names::ipset_main_name(s(input, "set_id")?, n(input, "ip_version")? as u8);
            check_str(case, &got)
        }
        "ipset_temp_name" => {
            let got = names::ipset_temp_name(n(input, "n")?, n(input, "ip_version")? as u8);
            check_str(case, &got)
        }
        "iptables_rule_hashes" => {
            let rules = input["rules"]
                .as_array()
                .ok_or("input.rules is not an array")?
                .iter()
                .map(rule_from)
                .collect::<Result<Vec<_>, _>>()?;
            let chain = s(input, "chain")?;
            let got = if input.get("appends").and_then(Value::as_bool) == Some(true) {
                render::appended_rule_hashes(chain, &rules)
            } else {
                render::rule_hashes(chain, &rules)
            };
            let want: Vec<String> = serde_json::from_value(case["expected"].clone())
                .map_err(|e| format!("expected: {e}"))?;
            if got == want {
                Ok(())
            } else {
                Err(format!("got {got:?}, want {want:?}"))
            }
        }
        "nft_rule_comment" => {
            let comments: Vec<String> = serde_json::from_value(input["comments"].clone())
                .map_err(|e| format!("comments: {e}"))?;
            check_str(
                case,
                &render::nft_rule_comment(s(input, "hash")?, &comments),
            )
        }
        "nflog_prefix" => {
            let action = NflogAction::parse(s(input, "action")?).ok_or("bad action")?;
            let owner = RuleOwner::parse(s(input, "owner")?).ok_or("bad owner")?;
            let got = names::nflog_prefix(
                action,
                owner,
                direction(input, "dir")?,
                n(input, "idx")? as usize,
                s(input, "id")?,
            );
            check_str(case, &got)
        }
        "nflog_end_of_tier_drop" => check_str(
            case,
            &names::nflog_end_of_tier_drop(direction(input, "dir")?, s(input, "tier")?),
        ),
        "nflog_end_of_tier_pass" => check_str(
            case,
            &names::nflog_end_of_tier_pass(direction(input, "dir")?, s(input, "tier")?),
        ),
        "nflog_no_match_profile" => check_str(
            case,
            &names::nflog_no_match_profile(direction(input, "dir")?),
        ),
        "workload_dispatch_chains" => {
            let ifaces: Vec<String> = serde_json::from_value(input["ifaces"].clone())
                .map_err(|e| format!("ifaces: {e}"))?;
            let mut cfg = DispatchConfig::new(version(input)?);
            cfg.nft = nft(input);
            let chains = names::workload_dispatch_chains(&ifaces, &cfg);
            // The cases leave out the end rule ("Unknown interface" DROP).
            let got: Vec<Value> = chains
                .iter()
                .map(|c| {
                    let rules: Vec<Value> = c
                        .rules
                        .iter()
                        .filter_map(|r| r.iface_and_target())
                        .map(|(i, t)| serde_json::json!([i, t]))
                        .collect();
                    serde_json::json!({ "chain": c.name, "rules": rules })
                })
                .collect();
            let want = case["expected"]
                .as_array()
                .ok_or("expected is not an array")?;
            if &got == want {
                Ok(())
            } else {
                Err(format!(
                    "got {}, want {}",
                    Value::Array(got),
                    Value::Array(want.clone())
                ))
            }
        }
        "veth_name" => check_str(
            case,
            &names::veth_name(
                s(input, "namespace")?,
                s(input, "pod")?,
                opt_s(input, "prefix"),
            ),
        ),
        "iptables_rule_match" => {
            let rule: ProtoRule =
                serde_json::from_value(input["rule"].clone()).map_err(|e| format!("rule: {e}"))?;
            check_str(
                case,
                &render::calculate_rule_match(&rule, n(input, "ip_version")? as u8),
            )
        }
        other => Err(format!("unknown case kind {other:?}")),
    }
}

#[test]
fn every_felix_case_passes_and_no_kind_is_skipped() {
    let cases = load_cases();
    assert!(!cases.is_empty(), "no cases loaded");
    let mut failures = Vec::new();
    let mut per_kind: BTreeMap<String, usize> = BTreeMap::new();
    for (i, case) in cases.iter().enumerate() {
        let kind = case["kind"].as_str().unwrap_or("").to_string();
        if HANDLED_ELSEWHERE.contains(&kind.as_str()) {
            continue;
        }
        *per_kind.entry(kind.clone()).or_default() += 1;
        if let Err(e) = run_case(case) {
            failures.push(format!(
                "case #{i} {kind} {} ({}): {e}",
                case["input"],
                case["source"].as_str().unwrap_or("")
            ));
        }
    }
    eprintln!("felix cases run per kind: {per_kind:?}");
    assert!(
        failures.is_empty(),
        "{} of the felix cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_case_file_still_has_cases_of_every_kind_this_file_runs() {
    let cases = load_cases();
    let kinds: Vec<&str> = cases.iter().filter_map(|c| c["kind"].as_str()).collect();
    for k in [
        "get_length_limited_id",
        "policy_chain_name",
        "iptables_rule_match",
        "iptables_rule_hashes",
        "workload_dispatch_chains",
        "nflog_prefix",
    ] {
        assert!(kinds.contains(&k), "no {k} cases left in felix-cases.json");
    }
}

#[test]
fn an_unknown_case_kind_is_an_error_not_a_skip() {
    let case = serde_json::json!({"kind": "something_new", "input": {}, "expected": ""});
    assert!(run_case(&case).is_err());
}
