//! Kernel `TRACE:` lines in a node's dmesg are grouped per packet and each step is mapped to
//! the policy, profile or endpoint its chain implements, with the rule it names.

use std::path::Path;

#[test]
fn a_traced_packet_is_rendered_with_its_owners_and_rules() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bundles/demo-with-kernel-trace");
    let a = calisnap::analyze(&dir).unwrap();
    assert_eq!(a.kernel_traces.len(), 1, "{:#?}", a.kernel_traces);
    let k = &a.kernel_traces[0];
    assert_eq!(k.node.as_deref(), Some("node-1"));
    assert!(
        k.packet.starts_with("10.65.0.8:51234 → 10.65.0.7:80"),
        "{}",
        k.packet
    );
    assert_eq!(k.steps.len(), 12);
    let last = k.steps.last().unwrap();
    assert_eq!(last.chain, "cali-tw-cali46b6bee22de");
    assert_eq!(last.owner.as_deref(), Some("endpoint demo/web"));
    assert_eq!(last.rule_line, Some(92));
    assert!(
        last.rule
            .as_deref()
            .unwrap()
            .contains("End of tier default")
    );
    let pol = k
        .steps
        .iter()
        .find(|s| s.chain.starts_with("cali-pi-"))
        .unwrap();
    assert_eq!(
        pol.owner.as_deref(),
        Some("policy demo/knp.default.trace-test")
    );
    let prof = k
        .steps
        .iter()
        .find(|s| s.chain == "cali-pro-kns.demo")
        .unwrap();
    assert_eq!(prof.owner.as_deref(), Some("profile kns.demo"));
    assert_eq!(k.outcome.as_deref(), Some("rule DROP"));
    let report = a.report();
    let md = calisnap::report::render_markdown(&report, None).unwrap();
    assert!(md.contains("Kernel TRACE"));
}
