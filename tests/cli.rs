//! The command line as a support engineer and a script use it: outputs, exit codes.

use std::path::Path;
use std::process::Command;

fn calisnap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_calisnap"))
}

fn demo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/bundles/calico-bundle-demo-20261125T140215Z")
}

#[test]
fn analyze_json_to_stdout_follows_the_contract() {
    let out = calisnap()
        .args(["analyze", "--format", "json", "-o", "-"])
        .arg(demo())
        .output()
        .unwrap();
    assert!(
        out.status.code().is_some_and(|c| c == 0 || c == 1),
        "{out:?}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["tool"]["name"], "calisnap");
    assert_eq!(v["bundle"]["layout"], "calico-bundle");
    assert_eq!(
        v["bundle"]["nodes"],
        serde_json::json!(["node-1", "node-2"])
    );
    let arts = v["artifacts"].as_array().unwrap();
    assert!(
        arts.iter()
            .any(|a| a["path"] == "nodes/node-1/iptables-save.txt"
                && a["kind"] == "iptables-save"
                && a["node"] == "node-1")
    );
    for key in ["errors", "warnings", "infos"] {
        assert!(v["summary"][key].is_u64(), "summary.{key}");
    }
}

#[test]
fn analyze_without_output_writes_the_html_report_beside_the_bundle_and_says_where() {
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("calico-bundle-demo");
    copy_dir(&demo(), &copy);
    let out = calisnap().arg("analyze").arg(&copy).output().unwrap();
    assert!(
        out.status.code().is_some_and(|c| c == 0 || c == 1),
        "{out:?}"
    );
    let report = tmp.path().join("calico-bundle-demo.report.html");
    assert!(report.exists());
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("<html") || html.contains("<!doctype") || html.contains("<!DOCTYPE"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("calico-bundle-demo.report.html"),
        "{stdout}"
    );
    assert!(
        !stdout.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
}

#[test]
fn an_unreadable_bundle_is_a_one_line_error_and_exit_2() {
    let out = calisnap()
        .args(["analyze", "no/such/bundle.tgz"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no/such/bundle.tgz"));
}

#[test]
fn bad_arguments_exit_2() {
    let out = calisnap()
        .args(["analyze", "--format", "pdf", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = calisnap().args(["frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn json_of(args: &[&str]) -> serde_json::Value {
    let out = calisnap().args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn selector_reports_calicos_error_and_a_corrected_selector() {
    let v = json_of(&["selector", "app = 'web'"]);
    assert_eq!(v["valid"], false);
    assert_eq!(v["error"], "expected ==");
    assert_eq!(v["hint"], "app == 'web'", "{v}");
}

#[test]
fn selector_gives_canonical_form_id_ipset_and_match() {
    let v = json_of(&["selector", "app=='web'", "--labels", r#"{"app":"web"}"#]);
    assert_eq!(v["valid"], true);
    assert_eq!(v["canonical"], r#"app == "web""#);
    let id = v["id"].as_str().unwrap();
    assert!(id.starts_with("s:") && id.len() == 40, "{id}");
    assert_eq!(v["ipset"].as_str().unwrap(), &format!("cali40{id}")[..31]);
    assert_eq!(v["matches"], true);
    let v = json_of(&["selector", "", "--labels", "{}"]);
    assert_eq!(v["canonical"], "all()");
    assert_eq!(v["id"], "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug");
}

#[test]
fn selector_with_a_bundle_lists_the_matching_endpoints() {
    let demo = demo();
    let v = json_of(&[
        "selector",
        "app == 'web'",
        "--bundle",
        demo.to_str().unwrap(),
    ]);
    let eps = v["endpoints"].as_array().unwrap();
    assert_eq!(eps.len(), 1, "{v}");
    assert_eq!(eps[0]["endpoint"], "demo/web");
    assert_eq!(eps[0]["node"], "node-1");
}

#[test]
fn names_follow_the_calico_version() {
    let v = json_of(&[
        "names",
        "policy",
        "xdpf",
        "--kind",
        "gnp",
        "--calico-version",
        "3.30",
    ]);
    assert_eq!(v["ingress_chain"], "cali-pi-default/default.xdpf");
    let v = json_of(&[
        "names",
        "policy",
        "xdpf",
        "--kind",
        "gnp",
        "--calico-version",
        "3.32",
    ]);
    assert_eq!(v["ingress_chain"], "cali-pi-gnp/xdpf");
    let v = json_of(&[
        "names",
        "policy",
        "xdp-filter",
        "--kind",
        "gnp",
        "--calico-version",
        "3.28",
    ]);
    assert_eq!(v["ingress_chain"], "cali-pi-default.xdp-filter");
    let v = json_of(&["names", "veth", "default", "podA"]);
    assert_eq!(v["interface"], "cali7f94ce7c295");
    let out = calisnap()
        .args(["names", "policy", "x", "--kind", "np"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a namespaced kind needs --namespace"
    );
}
