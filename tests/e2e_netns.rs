//! End to end on this machine's real Linux dataplane: the Felix-shaped lab of
//! `testdata/e2e` (see its README) gets real traffic, `collector/calico-collect.sh` collects it
//! in `node` and `cluster` mode, and the bundle is checked against the contract (layout,
//! manifest, counters, conntrack, the deliberate fault).
//!
//! Tests that build a lab need root, `ip`, `iptables-restore`, `ipset` and `python3`; without
//! them they print why and pass. The fixture tests at the bottom need nothing.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use base64::Engine;
use common::netns::{
    Bundle, CollectOptions, Lab, LabSpec, Proto, collector_script, collector_table_names,
    counted_rules, e2e_dir, keep_bundle, preflight, veth_name, which,
};
use sha2::{Digest, Sha224};

const NODE: &str = "e2e-node";

/// Chains of the fixture the assertions look at.
const NP_CHAIN: &str = "cali-pi-_3D3NG9FhsojfeqYXdsO"; // NetworkPolicy shop/allow-frontend
const GNP_CHAIN: &str = "cali-pi-default/default.ops"; // GlobalNetworkPolicy ops
const BACKEND_TW: &str = "cali-tw-cali1cea4782700";

/// The deliberate fault of the fixture (testdata/e2e/README.md).
struct ExpectedFault {
    ipset: &'static str,
    missing_ip: &'static str,
    endpoint: &'static str,
    policy: &'static str,
}

const FAULT: ExpectedFault = ExpectedFault {
    ipset: "cali40s:R2jIwhKxKcpepdexTl9ke3D",
    missing_ip: "10.65.0.12",
    endpoint: "shop/frontend-b",
    policy: "shop/allow-frontend",
};

/// One flow of the lab: what the dataplane does and what the policies intend.
struct Flow {
    from: &'static str,
    to: &'static str,
    proto: Proto,
    port: u16,
    dataplane_allows: bool,
    intent_allows: bool,
}

const fn flow(
    from: &'static str,
    to: &'static str,
    proto: Proto,
    port: u16,
    dataplane_allows: bool,
    intent_allows: bool,
) -> Flow {
    Flow {
        from,
        to,
        proto,
        port,
        dataplane_allows,
        intent_allows,
    }
}

/// Every flow the README lists. The two frontend-b rows are where intent and dataplane
/// disagree: the fault.
const FLOWS: &[Flow] = &[
    flow(
        "shop/frontend-a",
        "shop/backend",
        Proto::Tcp,
        8080,
        true,
        true,
    ),
    flow(
        "shop/frontend-a",
        "shop/backend",
        Proto::Udp,
        5353,
        true,
        true,
    ),
    flow(
        "shop/frontend-b",
        "shop/backend",
        Proto::Tcp,
        8080,
        false,
        true,
    ),
    flow(
        "shop/frontend-b",
        "shop/backend",
        Proto::Udp,
        5353,
        false,
        true,
    ),
    flow("ops/probe", "shop/backend", Proto::Tcp, 8080, false, false),
    flow("ops/probe", "shop/frontend-a", Proto::Tcp, 8080, true, true),
    flow("ops/probe", "shop/frontend-b", Proto::Tcp, 8080, true, true),
    flow("shop/backend", "ops/probe", Proto::Tcp, 8080, true, true),
    flow(
        "shop/frontend-a",
        "shop/frontend-b",
        Proto::Tcp,
        8080,
        false,
        false,
    ),
];

fn lab_or_skip(test: &str) -> Option<Lab> {
    if let Err(why) = preflight() {
        eprintln!("skipping {test}: {why}");
        return None;
    }
    Some(Lab::setup(&LabSpec::e2e()).expect("lab setup"))
}

/// Sends every flow once; returns the flows whose outcome differs from `dataplane_allows`.
fn send_all_flows(lab: &Lab) -> Vec<String> {
    FLOWS
        .iter()
        .filter(|f| lab.try_flow(f.from, f.to, f.proto, f.port) != f.dataplane_allows)
        .map(|f| {
            format!(
                "{} -> {} {}/{}: expected {}",
                f.from,
                f.to,
                f.proto.as_str(),
                f.port,
                if f.dataplane_allows { "allow" } else { "drop" }
            )
        })
        .collect()
}

/// The analyzer on a bundle the collector made from the lab: the injected fault must be
/// found (`FAULT.missing_ip` of `FAULT.endpoint` missing from `FAULT.ipset`, which the allow
/// rules of `FAULT.policy` use), with evidence from the real `ipset save` output, and nothing
/// else in the lab is an error. The flows' intent and dataplane verdicts are checked by the
/// trace tests.
fn analyze_hook(bundle: &Path, fault: &ExpectedFault, flows: &[Flow]) {
    assert!(bundle.exists(), "bundle to analyze: {}", bundle.display());
    // The expectations themselves are consistent: intent and dataplane disagree exactly on
    // the flows from the endpoint the fault is about.
    for f in flows {
        let disagree = f.intent_allows != f.dataplane_allows;
        assert_eq!(disagree, f.from == fault.endpoint, "{} -> {}", f.from, f.to);
    }
    let a = calisnap::analyze(bundle).expect("calisnap analyzes the collected bundle");
    let codes: Vec<(&str, Option<&str>)> = a
        .findings
        .iter()
        .map(|f| (f.code.as_str(), f.node.as_deref()))
        .collect();
    let hit = a
        .findings
        .iter()
        .find(|f| {
            f.code == "CAL040"
                && f.subjects
                    .iter()
                    .any(|s| s.kind == "ipset" && s.name == fault.ipset)
        })
        .unwrap_or_else(|| panic!("no CAL040 for {} in {codes:?}", fault.ipset));
    assert_eq!(hit.node.as_deref(), Some(NODE));
    let has = |kind: &str, name: &str| {
        hit.subjects
            .iter()
            .any(|s| s.kind == kind && s.name == name)
    };
    assert!(has("ip", fault.missing_ip), "{:?}", hit.subjects);
    assert!(has("endpoint", fault.endpoint), "{:?}", hit.subjects);
    assert!(has("policy", fault.policy), "{:?}", hit.subjects);
    let ev = &hit.evidence[0];
    assert_eq!(ev.path, format!("nodes/{NODE}/ipset-save.txt"));
    assert!(
        ev.excerpt.starts_with(&format!("create {} ", fault.ipset)),
        "evidence is the real `ipset save` line: {ev:?}"
    );
    // `calisnap trace` on the same bundle: for every flow of the lab, the dataplane verdict is
    // what the kernel did (the flows test asserts the kernel did `dataplane_allows`), the
    // intent is what the policies say, and where they part the explanation names the fault.
    let bundle_read = calisnap::bundle::Bundle::open(bundle).expect("bundle opens");
    let model = calisnap::model::Model::build(&bundle_read);
    let findings = calisnap::checks::run_all(&model);
    for f in flows {
        let t = calisnap::trace::trace(
            &model,
            &findings,
            f.from,
            &format!("{}:{}", f.to, f.port),
            Some(f.proto.as_str()),
            None,
        )
        .unwrap_or_else(|e| panic!("trace {} -> {}: {e}", f.from, f.to));
        let word = |b: bool| if b { "allow" } else { "deny" };
        assert_eq!(
            t.verdict,
            word(f.dataplane_allows),
            "dataplane {} -> {}: {t:#?}",
            f.from,
            f.to
        );
        assert_eq!(
            t.intent.verdict,
            word(f.intent_allows),
            "intent {} -> {}",
            f.from,
            f.to
        );
        assert_eq!(t.agree, f.dataplane_allows == f.intent_allows);
        if !t.agree {
            let why = t.explanation.as_deref().unwrap_or_default();
            assert!(
                why.contains(fault.ipset)
                    && why.contains(fault.missing_ip)
                    && why.contains(fault.policy),
                "{why}"
            );
            assert_eq!(t.findings, vec!["CAL040".to_string()]);
        }
    }

    // Nothing else in the lab is an error: the rest of the fixtures are consistent.
    let other_errors: Vec<&calisnap::checks::Finding> = a
        .findings
        .iter()
        .filter(|f| f.severity == calisnap::checks::Severity::Error && f.code != "CAL040")
        .collect();
    assert!(
        other_errors.is_empty(),
        "unexpected errors: {other_errors:#?}"
    );
}

#[test]
fn the_lab_drops_exactly_the_flows_the_fixture_says() {
    let Some(lab) = lab_or_skip("the_lab_drops_exactly_the_flows_the_fixture_says") else {
        return;
    };
    let wrong = send_all_flows(&lab);
    assert!(wrong.is_empty(), "flows with the wrong outcome: {wrong:#?}");
}

#[test]
fn node_mode_bundle_holds_every_command_real_counters_and_the_fault() {
    let Some(lab) = lab_or_skip("node_mode_bundle_holds_every_command_real_counters_and_the_fault")
    else {
        return;
    };
    let wrong = send_all_flows(&lab);
    assert!(wrong.is_empty(), "flows with the wrong outcome: {wrong:#?}");

    let out = tempfile::tempdir().expect("tempdir");
    let tarball = lab.collect_node(out.path());
    keep_bundle(&tarball);

    // Layout: calico-bundle-<name>-<UTC yyyymmddThhmmssZ>.tar.gz holding that directory.
    let file_name = tarball.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let stem = file_name
        .strip_suffix(".tar.gz")
        .expect("tarball ends in .tar.gz");
    let ts = stem
        .strip_prefix("calico-bundle-e2e-")
        .expect("tarball named after --name");
    assert!(is_utc_stamp(ts), "timestamp {ts:?}");
    assert_eq!(tarball.parent(), Some(out.path()));
    let leftovers: Vec<_> = fs::read_dir(out.path())
        .expect("out dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "only the tarball is left in --out: {leftovers:?}"
    );

    let b = Bundle::read(&tarball).expect("bundle");
    assert_eq!(b.root, stem);
    let m = &b.manifest;
    assert_eq!(m["format"], "calico-bundle/1");
    assert!(
        m["collector_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    assert!(
        m["collected_at"].as_str().is_some_and(is_rfc3339_utc),
        "collected_at {:?}",
        m["collected_at"]
    );
    assert_eq!(m["nodes"], serde_json::json!([NODE]));

    // Every command recorded, with the fields of the contract and files that match.
    for c in b.commands() {
        for field in ["name", "argv", "path", "exit_code", "duration_ms", "bytes"] {
            assert!(!c[field].is_null(), "{field} missing in {c}");
        }
        assert_eq!(c["node"], NODE);
        let path = c["path"].as_str().unwrap_or("");
        assert!(path.starts_with("nodes/e2e-node/"), "{path}");
        let bytes = c["bytes"].as_u64().unwrap_or(u64::MAX);
        match b.files.get(path) {
            Some(data) => assert_eq!(data.len() as u64, bytes, "bytes of {path}"),
            None => assert_eq!(bytes, 0, "{path} is missing but has bytes"),
        }
        if let Some(err) = c["stderr_path"].as_str() {
            assert!(b.files.get(err).is_some_and(|d| !d.is_empty()), "{err}");
        }
    }
    let recorded: BTreeSet<String> = b
        .commands()
        .iter()
        .chain(b.skipped().iter())
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    for name in collector_table_names() {
        assert!(
            recorded.contains(&name),
            "table row {name} neither run nor skipped"
        );
    }
    for name in [
        "hostname",
        "iptables-save",
        "ip6tables-save",
        "ipset-save",
        "conntrack",
        "conntrack-stats",
        "sysctl",
        "ip-addr",
        "ip-route",
        "ip-rule",
        "ip-link",
        "dmesg",
    ] {
        let c = b
            .command(Some(NODE), name)
            .unwrap_or_else(|| panic!("{name} not run"));
        assert_eq!(c["exit_code"], 0, "{name}: {c}");
    }
    for name in ["iptables-save", "ipset-save"] {
        let c = b.command(Some(NODE), name).expect("recorded");
        assert!(c["bytes"].as_u64().unwrap_or(0) > 0, "{name} is empty");
    }
    // eBPF rows are skipped with a reason on an iptables node.
    assert!(
        b.skipped().iter().any(|s| s["name"] == "bpftool-prog"
            && s["reason"].as_str().is_some_and(|r| r.contains("eBPF")))
    );

    // Counters are real: the policy chains that passed traffic and the end-of-tier drop that
    // stopped frontend-b and probe counted packets.
    let ipt = b
        .text("nodes/e2e-node/iptables-save.txt")
        .expect("iptables-save");
    let np = counted_rules(&ipt, NP_CHAIN);
    let np_tcp = np
        .iter()
        .find(|r| r.rule.contains("--dports 8080") && r.rule.contains("MARK"))
        .expect("TCP allow rule of the NetworkPolicy");
    assert!(
        np_tcp.packets > 0,
        "{NP_CHAIN} TCP allow counted nothing: {np:#?}"
    );
    assert!(counted_rules(&ipt, GNP_CHAIN).iter().any(|r| r.packets > 0));
    let end_of_tier = counted_rules(&ipt, BACKEND_TW)
        .into_iter()
        .find(|r| r.rule.contains("End of tier default"))
        .expect("end-of-tier drop in the backend's chain");
    assert!(
        end_of_tier.packets > 0,
        "nothing reached the end-of-tier drop"
    );

    // The fault is visible in the IP sets.
    let ipsets = b.text("nodes/e2e-node/ipset-save.txt").expect("ipset-save");
    assert!(ipsets.contains(&format!("add {} 10.65.0.11", FAULT.ipset)));
    assert!(!ipsets.contains(&format!("add {} {}", FAULT.ipset, FAULT.missing_ip)));

    // Conntrack: the allowed flow is there, the blocked one is absent or unreplied.
    let ct = b.text("nodes/e2e-node/conntrack.txt").expect("conntrack");
    let flow_lines = |src: &str, dst: &str| -> Vec<&str> {
        ct.lines()
            .filter(|l| {
                l.contains(&format!("src={src} dst={dst} "))
                    && l.contains("dport=8080 ")
                    && l.starts_with("tcp")
            })
            .collect()
    };
    assert!(
        !flow_lines("10.65.0.11", "10.65.0.21").is_empty(),
        "allowed flow missing from conntrack:\n{ct}"
    );
    for l in flow_lines(FAULT.missing_ip, "10.65.0.21") {
        assert!(l.contains("[UNREPLIED]"), "blocked flow was replied: {l}");
    }

    let sysctl = b.text("nodes/e2e-node/sysctl.txt").expect("sysctl");
    assert!(sysctl.contains("net.ipv4.ip_forward = 1"), "{sysctl}");
    let routes = b.text("nodes/e2e-node/ip-route.txt").expect("ip route");
    assert!(
        routes.contains("10.65.0.21 dev cali1cea4782700"),
        "{routes}"
    );

    // A node-mode bundle holds no cluster resources: the analyzer says which checks could not
    // run rather than guessing.
    let a = calisnap::analyze(&tarball).expect("calisnap analyzes the node bundle");
    assert!(
        a.findings.iter().any(|f| f.code == "CAL004"),
        "{:?}",
        a.findings
    );
    assert!(!a.findings.iter().any(|f| f.code == "CAL040"));
}

#[test]
fn node_mode_without_conntrack_on_path_still_writes_a_bundle_recording_exit_127() {
    let Some(lab) =
        lab_or_skip("node_mode_without_conntrack_on_path_still_writes_a_bundle_recording_exit_127")
    else {
        return;
    };
    let out = tempfile::tempdir().expect("tempdir");
    let opts = CollectOptions {
        hide_tools: vec!["conntrack".to_string()],
        ..CollectOptions::default()
    };
    let tarball = lab
        .collect_node_with(out.path(), &opts)
        .expect("collector runs without conntrack");
    let b = Bundle::read(&tarball).expect("bundle");
    for name in ["conntrack", "conntrack-stats"] {
        let c = b.command(Some(NODE), name).expect("recorded");
        assert_eq!(c["exit_code"], 127, "{c}");
        assert_eq!(c["bytes"], 0);
        let err = c["stderr_path"].as_str().expect("a stderr note");
        let note = b.text(err).unwrap_or_default();
        assert!(note.contains("not found"), "{note}");
        let path = c["path"].as_str().unwrap_or("");
        assert!(
            !b.files.contains_key(path),
            "no output file for a missing tool"
        );
    }
    let ipt = b.command(Some(NODE), "iptables-save").expect("recorded");
    assert_eq!(ipt["exit_code"], 0);
    // The analyzer reports the failed command as a completeness finding.
    let a = calisnap::analyze(&tarball).expect("calisnap analyzes it");
    let failed = a
        .findings
        .iter()
        .find(|f| f.code == "CAL002" && f.title.contains("conntrack"))
        .unwrap_or_else(|| panic!("no CAL002 for conntrack: {:?}", a.findings));
    assert_eq!(failed.node.as_deref(), Some(NODE));
    assert!(failed.message.contains("127"), "{}", failed.message);
}

#[test]
fn node_mode_on_an_ebpf_node_runs_the_bpf_rows_once_per_interface() {
    let Some(lab) = lab_or_skip("node_mode_on_an_ebpf_node_runs_the_bpf_rows_once_per_interface")
    else {
        return;
    };
    let out = tempfile::tempdir().expect("tempdir");
    let opts = CollectOptions {
        pretend_ebpf: true,
        // calico-node is never on a test machine; bpftool may be. Hide both so that the
        // outcome does not depend on the machine.
        hide_tools: vec!["calico-node".to_string(), "bpftool".to_string()],
        ..CollectOptions::default()
    };
    let tarball = lab.collect_node_with(out.path(), &opts).expect("collector");
    let b = Bundle::read(&tarball).expect("bundle");
    let probe = b
        .text("nodes/e2e-node/collector-probe.txt")
        .unwrap_or_default();
    assert!(probe.lines().any(|l| l == "bpf yes"), "{probe}");
    for name in [
        "bpftool-prog",
        "bpftool-net",
        "calico-bpf-conntrack",
        "calico-bpf-nat",
    ] {
        let c = b
            .command(Some(NODE), name)
            .unwrap_or_else(|| panic!("{name} not run"));
        assert_eq!(c["exit_code"], 127, "{c}");
    }
    let policy_paths: BTreeSet<&str> = b
        .commands()
        .into_iter()
        .filter(|c| c["name"] == "calico-bpf-policy")
        .filter_map(|c| c["path"].as_str())
        .collect();
    let want: BTreeSet<String> = lab
        .pods()
        .iter()
        .map(|p| format!("nodes/e2e-node/bpf/policy-{}.txt", p.iface))
        .collect();
    assert_eq!(
        policy_paths,
        want.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );
    assert!(!b.skipped().iter().any(|s| s["name"] == "bpftool-prog"));
}

#[test]
fn cluster_mode_with_stand_ins_collects_resources_logs_and_the_node_through_kubectl_exec() {
    let Some(lab) = lab_or_skip(
        "cluster_mode_with_stand_ins_collects_resources_logs_and_the_node_through_kubectl_exec",
    ) else {
        return;
    };
    assert!(lab.try_tcp("shop/frontend-a", "shop/backend", 8080));
    let out = tempfile::tempdir().expect("tempdir");
    let tarball = lab
        .collect_cluster(out.path(), &CollectOptions::default())
        .expect("cluster mode");
    keep_bundle(&tarball);
    let b = Bundle::read(&tarball).expect("bundle");
    assert_eq!(b.manifest["nodes"], serde_json::json!([NODE]));

    // Resources are the fixture, byte for byte, and were fetched with calicoctl.
    for (bundle_path, fixture) in [
        (
            "cluster/calico/networkpolicies.yaml",
            "cluster/calico/networkpolicies.yaml",
        ),
        (
            "cluster/calico/workloadendpoints.yaml",
            "cluster/calico/workloadendpoints.yaml",
        ),
        (
            "cluster/calico/globalnetworkpolicies.yaml",
            "cluster/calico/globalnetworkpolicies.yaml",
        ),
        ("cluster/k8s/pods.yaml", "cluster/k8s/pods.yaml"),
        ("cluster/k8s/namespaces.yaml", "cluster/k8s/namespaces.yaml"),
        ("nodes/e2e-node/felix.log", "cluster/calico-node.log"),
    ] {
        let want = fs::read(e2e_dir().join(fixture)).expect("fixture");
        assert_eq!(b.files.get(bundle_path), Some(&want), "{bundle_path}");
    }
    let np = b.command(None, "calico-networkpolicies").expect("recorded");
    assert_eq!(
        np["argv"],
        serde_json::json!(["calicoctl", "get", "networkpolicies", "-A", "-o", "yaml"])
    );
    let gnp = b
        .command(None, "calico-globalnetworkpolicies")
        .expect("recorded");
    assert_eq!(
        gnp["argv"],
        serde_json::json!(["calicoctl", "get", "globalnetworkpolicies", "-o", "yaml"])
    );
    for kind in [
        "pods",
        "namespaces",
        "networkpolicies",
        "nodes",
        "services",
        "serviceaccounts",
    ] {
        let c = b
            .command(None, &format!("k8s-{kind}"))
            .unwrap_or_else(|| panic!("k8s-{kind}"));
        assert_eq!(c["exit_code"], 0);
    }

    // The node table ran in the calico-node pod, i.e. through kubectl exec.
    let ipt = b.command(Some(NODE), "iptables-save").expect("recorded");
    assert_eq!(ipt["exit_code"], 0);
    assert_eq!(ipt["argv"], serde_json::json!(["iptables-save", "-c"]));
    assert_eq!(
        ipt["via"],
        serde_json::json!([
            "kubectl",
            "exec",
            "-n",
            "calico-system",
            "calico-node-7k2xq",
            "-c",
            "calico-node",
            "--"
        ])
    );
    let dump = b
        .text("nodes/e2e-node/iptables-save.txt")
        .unwrap_or_default();
    assert!(counted_rules(&dump, NP_CHAIN).iter().any(|r| r.packets > 0));
    let ipsets = b.text("nodes/e2e-node/ipset-save.txt").unwrap_or_default();
    assert!(ipsets.contains(FAULT.ipset));

    analyze_hook(&tarball, &FAULT, FLOWS);
}

// ---- Fixture and collector checks that need no root ----

#[test]
fn calico_veth_names_match_calicos_own_vector() {
    assert_eq!(veth_name("default", "podA"), "cali7f94ce7c295");
    assert_eq!(veth_name("default", "podB"), "cali92cf1f5e9f6");
}

/// Felix's rule hash (`felix/generictables/rules.go`): a chained sha224 seeded with the chain
/// name over `-A <chain> HASH <rule>`, base64url, first 16 characters.
fn felix_rule_hashes(chain_seed: &str, rules: &[String]) -> Vec<String> {
    let mut h = Sha224::digest(chain_seed.as_bytes()).to_vec();
    rules
        .iter()
        .map(|r| {
            let s = format!(
                "-A {} HASH{}{}",
                chain_seed,
                if r.is_empty() { "" } else { " " },
                r
            );
            let mut hasher = Sha224::new();
            hasher.update(&h);
            hasher.update(s.as_bytes());
            h = hasher.finalize().to_vec();
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&h);
            b64.chars().take(16).collect()
        })
        .collect()
}

#[test]
fn every_rule_hash_in_the_fixture_ruleset_follows_felixs_chained_sha224() {
    let text = fs::read_to_string(e2e_dir().join("iptables-restore.txt")).expect("fixture");
    // chain -> [(hash, rest of rule)], in file order.
    let mut chains: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("-A ") else {
            continue;
        };
        let (chain, rest) = rest.split_once(' ').expect("rule body");
        let rest = rest
            .strip_prefix("-m comment --comment \"cali:")
            .unwrap_or_else(|| panic!("rule without a cali: hash: {line}"));
        let (hash, rule) = rest.split_once('"').expect("closing quote");
        let rule = rule.strip_prefix(' ').unwrap_or(rule).to_string();
        match chains.iter_mut().find(|(c, _)| c == chain) {
            Some((_, rules)) => rules.push((hash.to_string(), rule)),
            None => chains.push((chain.to_string(), vec![(hash.to_string(), rule)])),
        }
    }
    assert!(chains.len() > 20, "parsed {} chains", chains.len());
    for (chain, rules) in &chains {
        let bodies: Vec<String> = rules.iter().map(|(_, r)| r.clone()).collect();
        let got: Vec<&str> = rules.iter().map(|(h, _)| h.as_str()).collect();
        if chain == "FORWARD" {
            // Felix inserts its jump at the top and appends the accept rules, which are
            // hashed as chain "FORWARD*appends*".
            assert_eq!(got[0], felix_rule_hashes("FORWARD", &bodies[..1])[0]);
            assert_eq!(
                got[1..],
                felix_rule_hashes("FORWARD*appends*", &bodies[1..])
            );
        } else {
            assert_eq!(got, felix_rule_hashes(chain, &bodies), "chain {chain}");
        }
    }
    // Felix's own published vectors, so that the check above can fail for the right reason.
    assert_eq!(
        felix_rule_hashes("FORWARD", &["--jump DROP".to_string()]),
        ["hecdSCslEjdBPBPo"]
    );
}

fn yaml(path: &str) -> serde_yaml::Value {
    let text = fs::read_to_string(e2e_dir().join(path)).expect("fixture");
    serde_yaml::from_str(&text).expect("fixture YAML")
}

#[test]
fn fixture_interfaces_and_addresses_agree_across_ruleset_yaml_and_lab() {
    let spec = LabSpec::e2e();
    let rules = fs::read_to_string(e2e_dir().join("iptables-restore.txt")).expect("fixture");
    let weps = yaml("cluster/calico/workloadendpoints.yaml");
    let pods = yaml("cluster/k8s/pods.yaml");
    let weps = weps["items"].as_sequence().expect("items");
    assert_eq!(weps.len(), spec.pods.len());
    for p in &spec.pods {
        let iface = p.iface();
        let wep = weps
            .iter()
            .find(|w| {
                w["spec"]["pod"] == p.name.as_str()
                    && w["metadata"]["namespace"] == p.namespace.as_str()
            })
            .unwrap_or_else(|| panic!("no WorkloadEndpoint for {}", p.key()));
        assert_eq!(wep["spec"]["interfaceName"], iface.as_str());
        assert_eq!(
            wep["spec"]["ipNetworks"][0],
            format!("{}/32", p.ip).as_str()
        );
        assert_eq!(wep["spec"]["node"], NODE);
        for chain in [format!("cali-tw-{iface}"), format!("cali-fw-{iface}")] {
            assert!(rules.contains(&format!(":{chain} - -")), "{chain}");
        }
        let pod = pods["items"]
            .as_sequence()
            .expect("items")
            .iter()
            .find(|x| x["metadata"]["name"] == p.name.as_str())
            .expect("pod in pods.yaml");
        assert_eq!(pod["status"]["podIP"], p.ip.to_string().as_str());
        assert_eq!(pod["spec"]["nodeName"], NODE);
    }
}

#[test]
fn the_one_deliberate_fault_is_frontend_b_missing_from_the_frontend_set() {
    let sets = fs::read_to_string(e2e_dir().join("ipset-restore.txt")).expect("fixture");
    let members = |set: &str| -> BTreeSet<String> {
        sets.lines()
            .filter_map(|l| l.strip_prefix("add "))
            .filter_map(|l| l.split_once(' '))
            .filter(|(s, _)| *s == set)
            .map(|(_, m)| m.trim_end_matches("/32").to_string())
            .collect()
    };
    // Who should be in the set: WEPs in namespace shop with app=frontend.
    let weps = yaml("cluster/calico/workloadendpoints.yaml");
    let expected: BTreeSet<String> = weps["items"]
        .as_sequence()
        .expect("items")
        .iter()
        .filter(|w| {
            w["metadata"]["namespace"] == "shop" && w["metadata"]["labels"]["app"] == "frontend"
        })
        .filter_map(|w| w["spec"]["ipNetworks"][0].as_str())
        .map(|ip| ip.trim_end_matches("/32").to_string())
        .collect();
    let actual = members(FAULT.ipset);
    let missing: Vec<&String> = expected.difference(&actual).collect();
    assert_eq!(missing, [FAULT.missing_ip]);
    assert!(actual.is_subset(&expected));
    // The other set is complete: members of namespace ops.
    let ops: BTreeSet<String> = weps["items"]
        .as_sequence()
        .expect("items")
        .iter()
        .filter(|w| w["metadata"]["namespace"] == "ops")
        .filter_map(|w| w["spec"]["ipNetworks"][0].as_str())
        .map(|ip| ip.trim_end_matches("/32").to_string())
        .collect();
    assert_eq!(members("cali40s:rn-YBBwg_IQ5gn_XI_vgeLV"), ops);
}

/// Runs the collector in node mode as whoever runs the tests, with a PATH holding only what
/// the collector itself needs: every node tool is missing.
#[test]
fn collector_with_no_node_tools_writes_valid_json_and_records_each_missing_tool_as_127() {
    let Some(bash) = which("bash") else {
        eprintln!("skipping: bash not found");
        return;
    };
    let base = [
        "bash", "sh", "cat", "date", "mkdir", "mktemp", "rm", "mv", "tar", "gzip", "wc", "tr",
        "sed", "tail", "head", "sort", "grep", "timeout", "uname",
    ];
    if base.iter().any(|t| which(t).is_none()) {
        eprintln!("skipping: a basic tool is missing");
        return;
    }
    let farm = common::netns::PathFarm::for_options(&CollectOptions {
        only_tools: Some(base.iter().map(|s| s.to_string()).collect()),
        ..CollectOptions::default()
    })
    .expect("PATH farm");
    let out = tempfile::tempdir().expect("tempdir");
    let odd_node = "odd \"node\"\\\t1";
    let run = std::process::Command::new(bash)
        .arg(collector_script())
        .args(["node", "--name", "no-tools", "--node", odd_node, "--out"])
        .arg(out.path())
        .env("PATH", farm.path())
        .output()
        .expect("collector");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let tarball = stdout
        .lines()
        .find_map(|l| l.strip_prefix("wrote "))
        .expect("wrote line");
    let b = Bundle::read(Path::new(tarball.trim())).expect("bundle with valid JSON");
    assert_eq!(b.manifest["nodes"], serde_json::json!([odd_node]));
    for name in ["iptables-save", "ipset-save", "ip-addr", "dmesg", "sysctl"] {
        let c = b
            .command(Some(odd_node), name)
            .unwrap_or_else(|| panic!("{name}"));
        assert_eq!(c["exit_code"], 127, "{c}");
        let err = c["stderr_path"].as_str().expect("stderr note");
        assert!(b.files.contains_key(err));
    }
    // cat is there, so the hostname row ran.
    assert_eq!(
        b.command(Some(odd_node), "hostname").expect("hostname")["exit_code"],
        0
    );
    assert!(stdout.contains("failed"), "{stdout}");
}

#[test]
fn collector_help_names_both_modes_and_every_option() {
    let run = std::process::Command::new("bash")
        .arg(collector_script())
        .arg("-h")
        .output()
        .expect("collector -h");
    assert!(run.status.success());
    let help = String::from_utf8_lossy(&run.stdout);
    for word in [
        "node",
        "cluster",
        "--out",
        "--since",
        "--max-log-bytes",
        "--nodes",
        "--name",
        "--timeout",
    ] {
        assert!(help.contains(word), "help lacks {word}");
    }
    let bad = std::process::Command::new("bash")
        .arg(collector_script())
        .arg("sideways")
        .output()
        .expect("collector");
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn shellcheck_finds_nothing_in_the_collector_or_the_stand_ins() {
    let Some(sc) = which("shellcheck") else {
        eprintln!("skipping: shellcheck not installed");
        return;
    };
    let run = std::process::Command::new(sc)
        .arg(collector_script())
        .arg(e2e_dir().join("bin/kubectl"))
        .arg(e2e_dir().join("bin/calicoctl"))
        .output()
        .expect("shellcheck");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );
}

fn is_utc_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
}

fn is_rfc3339_utc(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok_and(|t| t.offset().local_minus_utc() == 0)
}
