//! The example bundle of the README, end to end: its findings (what must and must not be
//! found), and snapshots of its JSON and Markdown reports.

use std::path::Path;

fn demo() -> calisnap::Analysis {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/bundles/calico-bundle-demo-20261125T140215Z");
    let mut a = calisnap::analyze(&dir).expect("demo bundle opens");
    // A stable source name whatever the checkout path.
    a.bundle.source = "calico-bundle-demo-20261125T140215Z".to_string();
    a
}

fn codes(a: &calisnap::Analysis) -> Vec<(String, Option<String>)> {
    a.findings
        .iter()
        .map(|f| (f.code.clone(), f.node.clone()))
        .collect()
}

#[test]
fn the_demo_bundle_shows_the_seed_faults_and_nothing_else() {
    let a = demo();
    let got = codes(&a);
    let want = |code: &str, node: Option<&str>| {
        assert!(
            got.contains(&(code.to_string(), node.map(str::to_string))),
            "{code} on {node:?} not in {got:?}"
        )
    };
    // The wrong-case selector: app == 'Web' while the pod has app=web.
    want("CAL011", None);
    let sel = a.findings.iter().find(|f| f.code == "CAL011").unwrap();
    assert!(
        sel.message.contains("demo/web has app=web"),
        "{}",
        sel.message
    );
    assert!(
        sel.fix.as_deref().unwrap().contains(r#"app == \"web\""#),
        "{:?}",
        sel.fix
    );
    assert_eq!(sel.evidence[0].path, "cluster/calico/networkpolicies.yaml");
    assert_eq!(sel.evidence[0].excerpt.trim(), "selector: app == 'Web'");
    // The IP set that must gain web's IP and lose the stale one, on node-2 only.
    want("CAL040", Some("node-2"));
    want("CAL041", Some("node-2"));
    let missing = a.findings.iter().find(|f| f.code == "CAL040").unwrap();
    assert!(
        missing
            .subjects
            .iter()
            .any(|s| s.kind == "ip" && s.name == "10.65.0.7")
    );
    assert_eq!(missing.evidence[0].path, "nodes/node-2/ipset-save.txt");
    assert_eq!(missing.evidence[0].line, 5);
    let stale = a.findings.iter().find(|f| f.code == "CAL041").unwrap();
    assert_eq!(stale.evidence[0].line, 6);
    assert!(stale.evidence[0].excerpt.ends_with("10.65.0.99"));
    // The collector could not run ip6tables-save.
    want("CAL002", Some("node-1"));
    // No false chain or jump findings: the dumps are what Felix v3.30 renders.
    for code in [
        "CAL020", "CAL021", "CAL022", "CAL023", "CAL030", "CAL031", "CAL032", "CAL042",
    ] {
        assert!(
            !got.iter().any(|(c, _)| c == code),
            "unexpected {code}: {got:?}"
        );
    }
    assert_eq!(a.version.text, "v3.30.2");
    // Pods no policy selects: demo/allowed and demo/client for ingress, every pod for egress,
    // left to kns.demo, which allows all.
    want("CAL014", None);
    let open = a.findings.iter().find(|f| f.code == "CAL014").unwrap();
    assert_eq!(
        open.title,
        "demo: 2 of 4 endpoints without ingress policy, 4 of 4 endpoints without egress policy"
    );
    assert!(
        open.message
            .contains("2 of its 4 workload endpoints for ingress (demo/allowed, demo/client)"),
        "{}",
        open.message
    );
    // node-1's Felix could not read its filter table back once.
    want("CAL070", Some("node-1"));
    let warn = a.findings.iter().find(|f| f.code == "CAL070").unwrap();
    assert_eq!(warn.evidence[0].path, "nodes/node-1/felix.log");
    assert_eq!(warn.evidence[0].line, 5);
    assert!(
        warn.subjects
            .iter()
            .any(|s| s.kind == "log-signature" && s.name == "iptables-legacy-save command failed")
    );
    // node-2's Felix failed an ipset restore (line 3 of its input) and its resync.
    want("CAL071", Some("node-2"));
    let failed = a.findings.iter().find(|f| f.code == "CAL071").unwrap();
    assert_eq!(failed.title, "ipset restore failed on node-2 (2 records)");
    assert!(
        failed.message.contains("Error in line 3"),
        "{}",
        failed.message
    );
    assert_eq!(
        failed
            .evidence
            .iter()
            .map(|e| (e.path.as_str(), e.line))
            .collect::<Vec<_>>(),
        vec![("nodes/node-2/felix.log", 3), ("nodes/node-2/felix.log", 4)]
    );
    // Those two records are CAL071's, not repeated as log warnings; node-1 updated fine.
    assert!(!got.contains(&("CAL070".to_string(), Some("node-2".to_string()))));
    assert!(!got.contains(&("CAL071".to_string(), Some("node-1".to_string()))));
    // No staged policies, Felix started once and got in sync, NAT outgoing is programmed,
    // namespace labels agree with kns.demo, no host endpoints or node ports.
    for code in ["CAL015", "CAL072", "CAL080", "CAL081", "CAL082"] {
        assert!(
            !got.iter().any(|(c, _)| c == code),
            "unexpected {code}: {got:?}"
        );
    }
}

#[test]
fn demo_json_report_matches_its_snapshot() {
    let a = demo();
    let json = calisnap::report::render_json(&a.report());
    insta::assert_snapshot!("demo_report_json", json);
}

#[test]
fn demo_markdown_report_matches_its_snapshot() {
    let a = demo();
    let md = calisnap::report::render_markdown(&a.report(), None).unwrap();
    insta::assert_snapshot!("demo_report_md", md);
}
