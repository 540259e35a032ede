//! Every check against a fixture that is the demo bundle with exactly one fault injected
//! (`testdata/checks/<code>-<case>/`, described in `testdata/checks/README.md`), and faithful
//! renderings of the demo by other Calico versions that must yield no false finding.
//!
//! The demo already carries its seed faults (CAL002 ×2 for ip6tables-save, CAL011 for
//! `app == 'Web'`, CAL040/CAL041 on node-2), so each fixture is expected to yield those plus
//! (or minus) what its fault changes; the tests assert the exact list. Evidence lines are
//! located by content in the fixture itself, so a test states which line the finding must
//! point at, not a number copied from the tool's output.

use std::path::{Path, PathBuf};

use calisnap::Analysis;
use calisnap::calico::names::VersionFamily;
use calisnap::calico::selector::Selector;
use calisnap::checks::{Evidence, Finding, Severity};

const DEMO: &str = "bundles/calico-bundle-demo-20261125T140215Z";

const N1_IPT: &str = "nodes/node-1/iptables-save.txt";
const N2_IPT: &str = "nodes/node-2/iptables-save.txt";
const N1_IPSET: &str = "nodes/node-1/ipset-save.txt";
const N2_IPSET: &str = "nodes/node-2/ipset-save.txt";
const CALICO_NP: &str = "cluster/calico/networkpolicies.yaml";
const K8S_NP: &str = "cluster/k8s/networkpolicies.yaml";
const WEPS: &str = "cluster/calico/workloadendpoints.yaml";

/// `(demo && role == "frontend")`, used by allow-to-backend on node-2.
const SET_FRONTEND: &str = "cali40s:8NS3fTg751-Dej4GL4An75l";
/// `(demo && k8s && app == "allowed")`, used by trace-test on node-1.
const SET_ALLOWED: &str = "cali40s:NspJUqIXPi0uTPBoR_x-xZ-";
/// allow-to-backend's chain under v3.29–v3.31 (`default/demo/default.allow-to-backend`).
const PI_BACKEND: &str = "cali-pi-_KRHdavhfzMk0BqCqEjF";
/// trace-test's chain under v3.29–v3.31 (`default/demo/knp.default.trace-test`).
const PI_TRACE: &str = "cali-pi-_rV88Xej8277qXnICUmJ";
const TW_WEB: &str = "cali-tw-cali46b6bee22de";

/// What the demo itself yields: (code, node).
const SEED: &[(&str, Option<&str>)] = &[
    ("CAL002", Some("node-1")),
    ("CAL002", Some("node-2")),
    ("CAL011", None),
    ("CAL040", Some("node-2")),
    ("CAL041", Some("node-2")),
];

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}

fn fixture(name: &str) -> PathBuf {
    testdata(&format!("checks/{name}"))
}

fn analyze(name: &str) -> Analysis {
    analyze_dir(&fixture(name))
}

fn analyze_dir(dir: &Path) -> Analysis {
    calisnap::analyze(dir).unwrap_or_else(|e| panic!("{} opens: {e}", dir.display()))
}

type Code = (String, Option<String>);

/// The codes of the checks these fixtures are about (bundle, selectors, chains, IP sets:
/// CAL001–CAL043 except the informational CAL014/CAL015). Counter, conntrack and log checks
/// have fixtures of their own.
fn codes(a: &Analysis) -> Vec<Code> {
    let mut v: Vec<Code> = a
        .findings
        .iter()
        .filter(|f| f.code.as_str() < "CAL050" && !matches!(f.code.as_str(), "CAL014" | "CAL015"))
        .map(|f| (f.code.clone(), f.node.clone()))
        .collect();
    v.sort();
    v
}

fn list(items: &[(&str, Option<&str>)]) -> Vec<Code> {
    let mut v: Vec<Code> = items
        .iter()
        .map(|(c, n)| (c.to_string(), n.map(str::to_string)))
        .collect();
    v.sort();
    v
}

/// The seed's findings, without `drop`, plus `add`.
fn seed_with(drop: &[(&str, Option<&str>)], add: &[(&str, Option<&str>)]) -> Vec<Code> {
    let mut v: Vec<(&str, Option<&str>)> = SEED.to_vec();
    for d in drop {
        let i = v
            .iter()
            .position(|x| x == d)
            .unwrap_or_else(|| panic!("{d:?} not in the seed"));
        v.remove(i);
    }
    v.extend_from_slice(add);
    list(&v)
}

fn assert_codes(a: &Analysis, want: Vec<Code>) {
    assert_eq!(codes(a), want, "findings: {:#?}", summary(a));
}

fn summary(a: &Analysis) -> Vec<String> {
    a.findings
        .iter()
        .map(|f| format!("{} {:?} {}", f.code, f.node, f.title))
        .collect()
}

/// The one finding with this code on this node.
fn the<'a>(a: &'a Analysis, code: &str, node: Option<&str>) -> &'a Finding {
    let found: Vec<&Finding> = a
        .findings
        .iter()
        .filter(|f| f.code == code && f.node.as_deref() == node)
        .collect();
    assert_eq!(found.len(), 1, "{code} on {node:?}: {:#?}", summary(a));
    found[0]
}

fn has_subject(f: &Finding, kind: &str, name: &str) -> bool {
    f.subjects.iter().any(|s| s.kind == kind && s.name == name)
}

fn assert_subjects(f: &Finding, want: &[(&str, &str)]) {
    for (kind, name) in want {
        assert!(
            has_subject(f, kind, name),
            "{} lacks subject {kind} {name}: {:?}",
            f.code,
            f.subjects
        );
    }
}

fn text(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The 1-based line of the fixture file holding `needle`, which must occur on one line only.
fn line_of(dir: &Path, rel: &str, needle: &str) -> (usize, String) {
    let t = text(dir, rel);
    let hits: Vec<(usize, &str)> = t
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .map(|(i, l)| (i + 1, l))
        .collect();
    assert_eq!(hits.len(), 1, "{needle:?} in {rel}: {hits:?}");
    (hits[0].0, hits[0].1.to_string())
}

/// Lines `(first, last)` of the list item (`- apiVersion: …` … up to the next item) of a
/// YAML list file that contains `needle`.
fn item_span(dir: &Path, rel: &str, needle: &str) -> (usize, usize) {
    let t = text(dir, rel);
    let lines: Vec<&str> = t.lines().collect();
    let (at, _) = line_of(dir, rel, needle);
    let start = (1..=at)
        .rev()
        .find(|&n| lines[n - 1].starts_with("- "))
        .expect("item start");
    let end = (at + 1..=lines.len())
        .find(|&n| lines[n - 1].starts_with("- ") || !lines[n - 1].starts_with(' '))
        .map(|n| n - 1)
        .unwrap_or(lines.len());
    (start, end)
}

/// The evidence of `f` in artifact `path` (the first, when several).
fn evidence_in<'a>(f: &'a Finding, path: &str) -> &'a Evidence {
    f.evidence
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("{} has no evidence in {path}: {:#?}", f.code, f.evidence))
}

/// Evidence at exactly this line of the fixture, quoting it.
fn assert_points_at_line(f: &Finding, dir: &Path, path: &str, needle: &str) {
    let (line, line_text) = line_of(dir, path, needle);
    assert!(
        f.evidence
            .iter()
            .any(|e| e.path == path && e.line == line && e.excerpt.trim() == line_text.trim()),
        "{} has no evidence {path}:{line} `{}`: {:#?}",
        f.code,
        line_text.trim(),
        f.evidence
    );
}

/// Evidence somewhere inside the YAML object that holds `needle`.
fn assert_points_into_item(f: &Finding, dir: &Path, path: &str, needle: &str) {
    let (first, last) = item_span(dir, path, needle);
    assert!(
        f.evidence
            .iter()
            .any(|e| e.path == path && (first..=last).contains(&e.line)),
        "{} has no evidence in {path}:{first}-{last} (the object with {needle:?}): {:#?}",
        f.code,
        f.evidence
    );
}

fn assert_none_of(a: &Analysis, forbidden: &[&str]) {
    for code in forbidden {
        assert!(
            !a.findings.iter().any(|f| f.code == *code),
            "unexpected {code}: {:#?}",
            summary(a)
        );
    }
}

const CHAIN_AND_SET_CODES: &[&str] = &[
    "CAL020", "CAL021", "CAL022", "CAL023", "CAL030", "CAL031", "CAL032", "CAL042",
];

// ---------------------------------------------------------------------------------------------
// Other Calico versions: the same resources, rendered as that version's Felix would.
// ---------------------------------------------------------------------------------------------

/// The parts of the IP set findings that must not depend on the version.
/// Code, node, `kind=name` subjects and evidence of a finding.
type Essentials = (String, Option<String>, Vec<String>, Vec<Evidence>);

fn ipset_findings(a: &Analysis) -> Vec<Essentials> {
    a.findings
        .iter()
        .filter(|f| f.code == "CAL040" || f.code == "CAL041")
        .map(|f| {
            (
                f.code.clone(),
                f.node.clone(),
                f.subjects
                    .iter()
                    .map(|s| format!("{}={}", s.kind, s.name))
                    .collect(),
                f.evidence.clone(),
            )
        })
        .collect()
}

fn assert_faithful_rendering(a: &Analysis) {
    assert_none_of(a, CHAIN_AND_SET_CODES);
    let demo = analyze_dir(&testdata(DEMO));
    assert_eq!(ipset_findings(a), ipset_findings(&demo));
}

#[test]
fn the_demo_rendered_by_v3_28_yields_only_the_seed_faults() {
    let a = analyze("version-v3.28");
    assert_codes(&a, seed_with(&[], &[]));
    assert_faithful_rendering(&a);
    assert_eq!(a.version.text, "v3.28.2");
    assert_eq!(a.version.version.family(), VersionFamily::V328);
    assert!(!a.version.assumed);
}

#[test]
fn the_demo_rendered_by_v3_32_yields_only_the_seed_faults() {
    let a = analyze("version-v3.32");
    assert_codes(&a, seed_with(&[], &[]));
    assert_faithful_rendering(&a);
    assert_eq!(a.version.text, "v3.32.1");
    assert_eq!(a.version.version.family(), VersionFamily::From332);
}

#[test]
fn a_v3_30_bundle_without_cluster_information_or_felix_log_is_recognised_by_its_chains() {
    let a = analyze("version-v3.30-without-version-info");
    // The missing Felix logs are reported (info), nothing else changes.
    assert_codes(
        &a,
        seed_with(
            &[],
            &[("CAL001", Some("node-1")), ("CAL001", Some("node-2"))],
        ),
    );
    for node in ["node-1", "node-2"] {
        let f = the(&a, "CAL001", Some(node));
        assert_eq!(f.severity, Severity::Info);
        assert_subjects(f, &[("node", node), ("artifact", "Felix log")]);
    }
    assert_faithful_rendering(&a);
    assert_eq!(a.version.version.family(), VersionFamily::V329To331);
    assert_eq!((a.version.version.major, a.version.version.minor), (3, 30));
    assert!(!a.version.assumed);
    assert!(
        a.version.source.contains("End of tier"),
        "{}",
        a.version.source
    );
}

#[test]
fn a_v3_28_bundle_without_cluster_information_or_felix_log_is_recognised_by_its_chains() {
    let a = analyze("version-v3.28-without-version-info");
    assert_codes(
        &a,
        seed_with(
            &[],
            &[("CAL001", Some("node-1")), ("CAL001", Some("node-2"))],
        ),
    );
    assert_faithful_rendering(&a);
    assert_eq!(a.version.version.family(), VersionFamily::V328);
    assert!(!a.version.assumed);
    assert!(
        a.version.source.contains("without tier rules"),
        "{}",
        a.version.source
    );
}

// ---------------------------------------------------------------------------------------------
// The seed's lab cases.
// ---------------------------------------------------------------------------------------------

/// Every fixture in which trace-test (K8s NetworkPolicy selecting app=web, admitting only
/// app=allowed on TCP 80) is rendered as Felix would.
const TRACE_TEST_INTACT: &[&str] = &[
    "version-v3.28",
    "version-v3.32",
    "version-v3.28-without-version-info",
    "version-v3.30-without-version-info",
    "CAL010-selector-invalid",
    "CAL012-rule-selector-matches-nothing",
    "CAL022-policy-jump-unexpected",
    "CAL030-policy-chain-missing",
    "CAL042-ipset-missing",
];

#[test]
fn the_trace_test_policy_that_only_admits_app_allowed_yields_no_finding() {
    let mut dirs = vec![testdata(DEMO)];
    dirs.extend(TRACE_TEST_INTACT.iter().map(|n| fixture(n)));
    for dir in dirs {
        let a = analyze_dir(&dir);
        // Counted drops after the policy (CAL050+) are its intended effect, not a fault.
        let about: Vec<String> = a
            .findings
            .iter()
            .filter(|f| f.code.as_str() < "CAL050")
            .filter(|f| {
                f.subjects.iter().any(|s| {
                    s.name.contains("trace-test")
                        || s.name == SET_ALLOWED
                        || s.name.starts_with(PI_TRACE)
                        || s.name == "cali-pi-_rorqzLijtIeto2U57kh"
                        || s.name == "cali-pi-knp/demo/trace-test"
                })
            })
            .map(|f| format!("{} {}", f.code, f.title))
            .collect();
        assert!(about.is_empty(), "{}: {about:?}", dir.display());
    }
}

#[test]
fn a_relabelled_backend_must_join_one_set_and_leave_another() {
    // Backend went from app=allowed to app=backend,role=frontend; node-1's set for
    // app=allowed still holds 10.65.1.5 and node-2's set for role=frontend still lacks it.
    let dir = fixture("lab-backend-relabelled");
    let a = analyze_dir(&dir);
    assert_codes(&a, seed_with(&[], &[("CAL041", Some("node-1"))]));

    let missing = the(&a, "CAL040", Some("node-2"));
    assert_subjects(
        missing,
        &[
            ("ipset", SET_FRONTEND),
            ("ip", "10.65.1.5"),
            ("endpoint", "demo/backend"),
            // The seed's member is still reported alongside.
            ("ip", "10.65.0.7"),
            ("endpoint", "demo/web"),
            ("policy", "demo/allow-to-backend"),
        ],
    );
    assert_points_at_line(missing, &dir, N2_IPSET, &format!("create {SET_FRONTEND} "));
    assert_points_into_item(missing, &dir, WEPS, "name: node--2-k8s-backend-eth0");
    assert!(
        missing.message.contains("10.65.1.5 (demo/backend)"),
        "{}",
        missing.message
    );

    let stale = the(&a, "CAL041", Some("node-1"));
    assert_subjects(stale, &[("ipset", SET_ALLOWED), ("ip", "10.65.1.5")]);
    assert!(
        !has_subject(stale, "ip", "10.65.1.6"),
        "{:?}",
        stale.subjects
    );
    assert_points_at_line(
        stale,
        &dir,
        N1_IPSET,
        &format!("add {SET_ALLOWED} 10.65.1.5"),
    );
    assert_eq!(stale.evidence.len(), 1, "{:#?}", stale.evidence);
    assert_none_of(&a, CHAIN_AND_SET_CODES);
}

// ---------------------------------------------------------------------------------------------
// Bundle complete: CAL001–CAL005.
// ---------------------------------------------------------------------------------------------

#[test]
fn an_empty_iptables_save_is_reported_and_its_node_is_not_checked() {
    let dir = fixture("CAL001-iptables-save-empty");
    let a = analyze_dir(&dir);
    // node-2's IP set findings need its iptables dump, so they are gone with it.
    assert_codes(
        &a,
        seed_with(
            &[("CAL040", Some("node-2")), ("CAL041", Some("node-2"))],
            &[("CAL001", Some("node-2"))],
        ),
    );
    let f = the(&a, "CAL001", Some("node-2"));
    assert_eq!(f.severity, Severity::Warning);
    assert_subjects(f, &[("artifact", N2_IPT)]);
    let e = evidence_in(f, N2_IPT);
    assert_eq!((e.line, e.excerpt.as_str()), (0, ""));
    assert!(f.title.contains("Empty iptables-save"), "{}", f.title);
}

#[test]
fn a_node_without_its_ipset_dump_is_reported() {
    let a = analyze("CAL001-ipset-save-missing");
    assert_codes(&a, seed_with(&[], &[("CAL001", Some("node-1"))]));
    let f = the(&a, "CAL001", Some("node-1"));
    assert_eq!(f.severity, Severity::Warning);
    assert_subjects(f, &[("node", "node-1"), ("artifact", "ipset")]);
    assert!(f.title.contains("No ipset"), "{}", f.title);
}

#[test]
fn a_collector_command_that_exited_1_is_reported_with_its_stderr() {
    let dir = fixture("CAL002-command-exit-1");
    let a = analyze_dir(&dir);
    assert_codes(&a, seed_with(&[], &[("CAL002", Some("node-1"))]));
    let f = a
        .findings
        .iter()
        .find(|f| {
            f.code == "CAL002" && has_subject(f, "artifact", "nodes/node-1/conntrack-stats.txt")
        })
        .expect("CAL002 for conntrack -S");
    assert_eq!(f.node.as_deref(), Some("node-1"));
    assert_subjects(f, &[("node", "node-1")]);
    assert!(f.message.contains("exited 1"), "{}", f.message);
    assert_points_at_line(
        f,
        &dir,
        "nodes/node-1/conntrack-stats.txt.stderr",
        "Operation failed: Operation not permitted",
    );
    assert!(
        f.evidence
            .iter()
            .any(|e| e.path == "manifest.json" && e.excerpt.contains("\"exit_code\": 1")),
        "{:#?}",
        f.evidence
    );
}

#[test]
fn a_failed_command_s_evidence_points_at_its_exit_code_in_the_manifest() {
    let dir = fixture("CAL002-command-exit-1");
    let a = analyze_dir(&dir);
    let f = a
        .findings
        .iter()
        .find(|f| {
            f.code == "CAL002" && has_subject(f, "artifact", "nodes/node-1/conntrack-stats.txt")
        })
        .expect("CAL002 for conntrack -S");
    let (line, _) = line_of(&dir, "manifest.json", "\"exit_code\": 1,");
    let e = evidence_in(f, "manifest.json");
    assert_eq!(e.line, line, "{e:?}");
}

#[test]
fn an_iptables_save_without_commit_is_reported_as_truncated() {
    let dir = fixture("CAL003-iptables-save-without-commit");
    let a = analyze_dir(&dir);
    // A CAL005 for the same cut is the subject of the ignored test below.
    let got: Vec<Code> = codes(&a)
        .into_iter()
        .filter(|(c, _)| c != "CAL005")
        .collect();
    assert_eq!(
        got,
        seed_with(&[], &[("CAL003", Some("node-2"))]),
        "{:#?}",
        summary(&a)
    );
    let f = the(&a, "CAL003", Some("node-2"));
    assert_subjects(f, &[("artifact", N2_IPT)]);
    let (nat, _) = line_of(&dir, N2_IPT, "*nat");
    let e = evidence_in(f, N2_IPT);
    assert_eq!(e.line, nat);
    assert!(
        e.excerpt.contains("nat") && e.excerpt.contains("COMMIT"),
        "{}",
        e.excerpt
    );
    // The filter table is whole, so its chains are still checked without false findings.
    assert_none_of(&a, CHAIN_AND_SET_CODES);
}

#[test]
fn a_missing_commit_is_not_also_reported_as_unreadable_lines() {
    let a = analyze("CAL003-iptables-save-without-commit");
    assert_none_of(&a, &["CAL005"]);
}

#[test]
fn a_bundle_of_node_dumps_only_is_reported_and_no_cluster_check_runs() {
    let a = analyze("CAL004-node-dumps-only");
    assert_codes(
        &a,
        list(&[
            ("CAL002", Some("node-1")),
            ("CAL002", Some("node-2")),
            ("CAL004", None),
        ]),
    );
    let f = the(&a, "CAL004", None);
    assert_subjects(f, &[("artifact", "cluster/")]);
}

#[test]
fn a_broken_yaml_document_is_reported_at_its_line_and_the_rest_is_read() {
    let dir = fixture("CAL005-broken-yaml-document");
    let a = analyze_dir(&dir);
    assert_codes(&a, seed_with(&[], &[("CAL005", None)]));
    let path = "cluster/calico/globalnetworkpolicies.yaml";
    let f = the(&a, "CAL005", None);
    assert_eq!(f.severity, Severity::Info);
    assert_subjects(f, &[("artifact", path)]);
    let (bad, _) = line_of(&dir, path, " spec:");
    let e = evidence_in(f, path);
    assert_eq!(e.line, bad);
    assert!(
        e.excerpt.contains("did not find expected key"),
        "{}",
        e.excerpt
    );
}

// ---------------------------------------------------------------------------------------------
// Selectors match: CAL010, CAL012, CAL013.
// ---------------------------------------------------------------------------------------------

#[test]
fn an_invalid_policy_selector_is_reported_with_calico_s_error_and_a_fix() {
    let dir = fixture("CAL010-selector-invalid");
    let a = analyze_dir(&dir);
    // The policy is dropped whole, so the seed's CAL011 for it goes away.
    assert_codes(&a, seed_with(&[("CAL011", None)], &[("CAL010", None)]));
    let f = the(&a, "CAL010", None);
    assert_subjects(
        f,
        &[
            ("policy", "demo/allow-frontend"),
            ("selector", "app = 'web'"),
        ],
    );
    assert!(f.message.contains("expected =="), "{}", f.message);
    // The fix offers a selector Calico accepts that means what was meant.
    let fix = f.fix.as_deref().unwrap_or("");
    let offered = fix.split('`').nth(1).unwrap_or_else(|| panic!("{fix}"));
    let sel = Selector::parse(offered).unwrap_or_else(|e| panic!("{offered}: {e:?}"));
    assert_eq!(sel.canonical(), r#"app == "web""#, "{fix}");
    assert_points_into_item(f, &dir, CALICO_NP, "name: allow-frontend");
}

#[test]
fn an_invalid_selector_s_evidence_is_the_selector_line() {
    let dir = fixture("CAL010-selector-invalid");
    let a = analyze_dir(&dir);
    let f = the(&a, "CAL010", None);
    assert_points_at_line(f, &dir, CALICO_NP, "selector: app = 'web'");
}

#[test]
fn a_rule_selector_that_matches_nothing_is_reported_at_its_line() {
    let dir = fixture("CAL012-rule-selector-matches-nothing");
    let a = analyze_dir(&dir);
    // node-2 now programs the (empty) set of the new selector: the seed's set is gone.
    assert_codes(
        &a,
        seed_with(
            &[("CAL040", Some("node-2")), ("CAL041", Some("node-2"))],
            &[("CAL012", None)],
        ),
    );
    let f = the(&a, "CAL012", None);
    assert_subjects(
        f,
        &[
            ("policy", "demo/allow-to-backend"),
            (
                "selector",
                r#"(projectcalico.org/namespace == "demo" && role == "front-end")"#,
            ),
        ],
    );
    assert_points_at_line(f, &dir, CALICO_NP, "selector: role == 'front-end'");
    assert!(f.message.contains("ingress[0]"), "{}", f.message);
}

#[test]
fn a_namespace_selector_that_matches_no_namespace_is_reported_at_its_line() {
    let dir = fixture("CAL013-namespace-selector-matches-nothing");
    let a = analyze_dir(&dir);
    // The rule's peers are then nobody, so CAL012 reports the same rule too.
    assert_codes(
        &a,
        seed_with(
            &[("CAL040", Some("node-2")), ("CAL041", Some("node-2"))],
            &[("CAL012", None), ("CAL013", None)],
        ),
    );
    let f = the(&a, "CAL013", None);
    assert_subjects(
        f,
        &[
            ("policy", "demo/allow-to-backend"),
            ("selector", "name == 'demo'"),
        ],
    );
    assert_points_at_line(f, &dir, CALICO_NP, "namespaceSelector: name == 'demo'");
    assert!(
        f.message.contains("kubernetes.io/metadata.name=demo"),
        "{}",
        f.message
    );
    let rule = the(&a, "CAL012", None);
    assert_subjects(
        rule,
        &[("selector", r#"(pcns.name == "demo" && role == "frontend")"#)],
    );
}

// ---------------------------------------------------------------------------------------------
// Chains programmed: CAL020–CAL023, CAL030–CAL032.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_missing_endpoint_chain_is_reported_for_its_endpoint() {
    let dir = fixture("CAL020-endpoint-chain-missing");
    let a = analyze_dir(&dir);
    assert_codes(&a, seed_with(&[], &[("CAL020", Some("node-1"))]));
    let f = the(&a, "CAL020", Some("node-1"));
    assert_subjects(f, &[("endpoint", "demo/web"), ("chain", TW_WEB)]);
    let e = evidence_in(f, N1_IPT);
    assert_eq!(
        (e.line, e.excerpt.as_str()),
        (0, "(no chain cali-tw-cali46b6bee22de)")
    );
    assert_points_into_item(f, &dir, WEPS, "name: node--1-k8s-web-eth0");
    // Only the ingress chain is gone.
    assert!(
        !a.findings
            .iter()
            .any(|f| has_subject(f, "chain", "cali-fw-cali46b6bee22de"))
    );
}

#[test]
fn a_missing_endpoint_chain_s_interface_evidence_is_the_interface_name_line() {
    let dir = fixture("CAL020-endpoint-chain-missing");
    let a = analyze_dir(&dir);
    let f = the(&a, "CAL020", Some("node-1"));
    assert_points_at_line(f, &dir, WEPS, "interfaceName: cali46b6bee22de");
}

#[test]
fn an_endpoint_chain_the_dispatch_chain_does_not_reach_is_reported() {
    let dir = fixture("CAL020-endpoint-chain-not-dispatched");
    let a = analyze_dir(&dir);
    assert_codes(&a, seed_with(&[], &[("CAL020", Some("node-1"))]));
    let f = the(&a, "CAL020", Some("node-1"));
    assert_subjects(f, &[("endpoint", "demo/web"), ("chain", TW_WEB)]);
    assert_points_at_line(f, &dir, N1_IPT, &format!(":{TW_WEB} - [0:0]"));
    assert!(f.message.contains("Unknown interface"), "{}", f.message);
}

#[test]
fn a_missing_jump_to_a_policy_that_selects_the_endpoint_is_reported() {
    let dir = fixture("CAL021-policy-jump-missing");
    let a = analyze_dir(&dir);
    assert_codes(&a, seed_with(&[], &[("CAL021", Some("node-1"))]));
    let f = the(&a, "CAL021", Some("node-1"));
    assert_subjects(
        f,
        &[
            ("policy", "demo/knp.default.trace-test"),
            ("endpoint", "demo/web"),
            ("chain", TW_WEB),
            ("chain", PI_TRACE),
        ],
    );
    assert_points_at_line(f, &dir, N1_IPT, &format!(":{TW_WEB} - [0:0]"));
    assert_points_into_item(f, &dir, K8S_NP, "name: trace-test");
}

#[test]
fn a_jump_to_a_policy_that_does_not_select_the_endpoint_is_reported_at_the_jump() {
    let dir = fixture("CAL022-policy-jump-unexpected");
    let a = analyze_dir(&dir);
    assert_codes(&a, seed_with(&[], &[("CAL022", Some("node-2"))]));
    let f = the(&a, "CAL022", Some("node-2"));
    assert_subjects(
        f,
        &[
            ("policy", "demo/allow-to-backend"),
            ("endpoint", "demo/allowed"),
            ("chain", PI_BACKEND),
        ],
    );
    assert_points_at_line(
        f,
        &dir,
        N2_IPT,
        &format!(
            "-A cali-tw-caliaa2ec4ff2e0 -m comment --comment \"cali:Of2CDta_aGZDvjjN\" -m mark --mark 0x0/0x20000 -j {PI_BACKEND}"
        ),
    );
    assert!(
        f.message.contains("does not match demo/allowed"),
        "{}",
        f.message
    );
}

#[test]
fn two_policies_of_a_tier_in_the_wrong_order_are_reported_at_the_first_misplaced_jump() {
    let dir = fixture("CAL023-policy-order-wrong");
    let a = analyze_dir(&dir);
    assert_codes(&a, seed_with(&[], &[("CAL023", Some("node-1"))]));
    let f = the(&a, "CAL023", Some("node-1"));
    assert_subjects(f, &[("endpoint", "demo/web"), ("chain", TW_WEB)]);
    assert_points_at_line(
        f,
        &dir,
        N1_IPT,
        &format!("-A {TW_WEB} -m comment --comment \"cali:wTMGq0D7dJk7O4In\""),
    );
    assert!(
        f.title
            .contains("evaluates demo/knp.default.trace-test before demo/allow-probes"),
        "{}",
        f.title
    );
    assert!(
        f.message
            .contains("Expected order: demo/allow-probes → demo/knp.default.trace-test"),
        "{}",
        f.message
    );
}

#[test]
fn policies_in_the_wrong_order_are_subjects_of_the_finding() {
    let a = analyze("CAL023-policy-order-wrong");
    let f = the(&a, "CAL023", Some("node-1"));
    assert_subjects(
        f,
        &[
            ("policy", "demo/allow-probes"),
            ("policy", "demo/knp.default.trace-test"),
        ],
    );
}

#[test]
fn a_missing_policy_chain_is_reported_with_the_policy_and_the_endpoint_it_applies_to() {
    let dir = fixture("CAL030-policy-chain-missing");
    let a = analyze_dir(&dir);
    // Without the chain there can be no jump to it either: CAL021 reports that side.
    assert_codes(
        &a,
        seed_with(
            &[],
            &[("CAL021", Some("node-2")), ("CAL030", Some("node-2"))],
        ),
    );
    let f = the(&a, "CAL030", Some("node-2"));
    assert_subjects(
        f,
        &[
            ("policy", "demo/allow-to-backend"),
            ("chain", PI_BACKEND),
            ("endpoint", "demo/backend"),
        ],
    );
    let e = evidence_in(f, N2_IPT);
    assert_eq!(e.excerpt, format!("(no chain {PI_BACKEND})"));
    assert_points_into_item(f, &dir, CALICO_NP, "name: allow-to-backend");
    let jump = the(&a, "CAL021", Some("node-2"));
    assert_subjects(
        jump,
        &[
            ("policy", "demo/allow-to-backend"),
            ("endpoint", "demo/backend"),
        ],
    );
}

#[test]
fn an_orphan_policy_chain_without_comment_is_reported_at_its_declaration() {
    let dir = fixture("CAL031-policy-chain-orphan");
    let a = analyze_dir(&dir);
    assert_codes(&a, seed_with(&[], &[("CAL031", Some("node-1"))]));
    let f = the(&a, "CAL031", Some("node-1"));
    // The v3.21 name of a deleted `demo/allow-db` (sha256 of `demo/default.allow-db`).
    let chain = "cali-pi-_ecG8R28yC0bGZEV5tQc";
    assert_subjects(f, &[("chain", chain)]);
    assert_points_at_line(f, &dir, N1_IPT, &format!(":{chain} - [0:0]"));
    assert_eq!(
        f.evidence.len(),
        1,
        "nothing jumps to it: {:#?}",
        f.evidence
    );
}

#[test]
fn a_chain_whose_comment_names_a_policy_the_bundle_lacks_is_reported() {
    let dir = fixture("CAL032-chain-comment-unknown-policy");
    let a = analyze_dir(&dir);
    assert_codes(&a, seed_with(&[], &[("CAL032", Some("node-2"))]));
    let f = the(&a, "CAL032", Some("node-2"));
    // The v3.30 name of `demo/allow-db` (sha256 of `default/demo/default.allow-db`).
    let chain = "cali-pi-_uyF_vAf2ndPf42WP9Xr";
    assert_subjects(f, &[("chain", chain)]);
    assert_points_at_line(f, &dir, N2_IPT, "Policy demo/default.allow-db ingress");
}

// ---------------------------------------------------------------------------------------------
// IP set members right: CAL040–CAL043 (CAL040/CAL041 above and in the demo's own test).
// ---------------------------------------------------------------------------------------------

#[test]
fn a_referenced_ip_set_missing_from_the_ipset_dump_is_reported() {
    let dir = fixture("CAL042-ipset-missing");
    let a = analyze_dir(&dir);
    // Without the set, its member findings go too.
    assert_codes(
        &a,
        seed_with(
            &[("CAL040", Some("node-2")), ("CAL041", Some("node-2"))],
            &[("CAL042", Some("node-2"))],
        ),
    );
    let f = the(&a, "CAL042", Some("node-2"));
    assert_subjects(f, &[("ipset", SET_FRONTEND)]);
    assert!(
        f.message
            .contains("rule ingress[0] source of demo/allow-to-backend"),
        "{}",
        f.message
    );
    let e = evidence_in(f, N2_IPSET);
    assert_eq!(e.excerpt, format!("(no set {SET_FRONTEND})"));
}

#[test]
fn a_missing_ip_set_s_evidence_is_the_rule_that_references_it() {
    let dir = fixture("CAL042-ipset-missing");
    let a = analyze_dir(&dir);
    let f = the(&a, "CAL042", Some("node-2"));
    assert_points_at_line(
        f,
        &dir,
        N2_IPT,
        &format!("-m set --match-set {SET_FRONTEND} src"),
    );
}

#[test]
fn an_ip_set_at_its_maxelem_is_reported_as_an_error() {
    let dir = fixture("CAL043-ipset-at-maxelem");
    let a = analyze_dir(&dir);
    assert_codes(&a, seed_with(&[], &[("CAL043", Some("node-1"))]));
    let f = the(&a, "CAL043", Some("node-1"));
    assert_eq!(f.severity, Severity::Error);
    assert_subjects(f, &[("ipset", SET_ALLOWED)]);
    assert_points_at_line(f, &dir, N1_IPSET, "maxelem 1 ");
    assert!(f.title.contains("1 of 1"), "{}", f.title);
}
