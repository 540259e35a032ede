//! `calisnap trace` on the example bundle: the seed's experiment 2 (a Kubernetes
//! NetworkPolicy `trace-test` that only admits `app=allowed` to `app=web` on TCP 80) and the
//! IP set fault, through the command line as a support engineer runs it.

use std::path::Path;
use std::process::Command;

fn trace_json(from: &str, to: &str) -> serde_json::Value {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/bundles/calico-bundle-demo-20261125T140215Z");
    let out = Command::new(env!("CARGO_BIN_EXE_calisnap"))
        .arg("trace")
        .arg(&demo)
        .args(["--from", from, "--to", to, "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn client_to_web_is_denied_at_the_end_of_tier_by_intent_and_dataplane() {
    let t = trace_json("demo/client", "demo/web:80");
    assert_eq!(t["flow"]["src_ip"], "10.65.0.8");
    assert_eq!(t["flow"]["dst_ip"], "10.65.0.7");
    assert_eq!(t["flow"]["dport"], 80);
    assert_eq!(t["verdict"], "deny");
    assert_eq!(t["intent"]["verdict"], "deny");
    assert_eq!(t["agree"], true);
    let ing = &t["intent"]["ingress"]["deciding"];
    assert_eq!(ing["policy"], "demo/knp.default.trace-test");
    assert_eq!(ing["action"], "eot-deny");
    let last = t["dataplane"]["path"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["action"], "drop");
    assert_eq!(last["chain"], "cali-tw-cali46b6bee22de");
    assert_eq!(last["path"], "nodes/node-1/iptables-save.txt");
    assert_eq!(last["line"], 92);
}

#[test]
fn allowed_to_web_is_allowed_by_trace_test_rule_0() {
    let t = trace_json("demo/allowed", "demo/web:80");
    assert_eq!(t["verdict"], "allow");
    assert_eq!(t["intent"]["verdict"], "allow");
    assert_eq!(t["agree"], true);
    let ing = &t["intent"]["ingress"]["deciding"];
    assert_eq!(ing["policy"], "demo/knp.default.trace-test");
    assert_eq!(ing["action"], "allow");
    assert_eq!(ing["rule"], 0);
    assert_eq!(ing["path"], "cluster/k8s/networkpolicies.yaml");
    // The dataplane went through the policy chain and its accept mark on both nodes.
    let path = t["dataplane"]["path"].as_array().unwrap();
    assert!(
        path.iter()
            .any(|s| s["policy"] == "demo/knp.default.trace-test" && s["action"] == "mark")
    );
    assert_eq!(t["flow"]["node"], "node-2 → node-1");
}

#[test]
fn web_to_backend_is_allowed_by_policy_but_dropped_for_the_missing_set_member() {
    let t = trace_json("demo/web", "demo/backend:8080");
    assert_eq!(t["intent"]["verdict"], "allow");
    assert_eq!(t["verdict"], "deny");
    assert_eq!(t["agree"], false);
    let why = t["explanation"].as_str().unwrap();
    assert_eq!(
        why,
        "policy demo/allow-to-backend rule 0 allows it, but cali40s:8NS3fTg751-Dej4GL4An75l \
         lacks 10.65.0.7, so cali-pi-_KRHdavhfzMk0BqCqEjF does not match and the end-of-tier \
         drop at nodes/node-2/iptables-save.txt:84 drops it"
    );
    assert_eq!(t["findings"], serde_json::json!(["CAL040"]));
}

#[test]
fn an_unknown_pod_is_a_clear_error_and_exit_2() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/bundles/calico-bundle-demo-20261125T140215Z");
    let out = Command::new(env!("CARGO_BIN_EXE_calisnap"))
        .arg("trace")
        .arg(&demo)
        .args(["--from", "demo/wbe", "--to", "demo/web:80"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("demo/wbe") && err.contains("demo/web"),
        "{err}"
    );
}

#[test]
fn analyze_with_trace_puts_the_flow_in_the_report() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/bundles/calico-bundle-demo-20261125T140215Z");
    let out = Command::new(env!("CARGO_BIN_EXE_calisnap"))
        .arg("analyze")
        .arg(&demo)
        .args([
            "--format",
            "json",
            "-o",
            "-",
            "--trace",
            "demo/client,demo/web:80",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let traces = v["traces"].as_array().unwrap();
    assert!(
        traces
            .iter()
            .any(|t| t["flow"]["src"] == "demo/client" && t["verdict"] == "deny")
    );
    // And the UNREPLIED conntrack flow web → backend is traced on its own.
    assert!(
        traces
            .iter()
            .any(|t| t["flow"]["src"] == "demo/web" && t["agree"] == false)
    );
}
