//! The intent half of `calisnap trace`: flows resolved against a bundle and judged by the
//! policies alone, as Felix evaluates them. The demo bundle carries the seed's experiment 2;
//! the fixtures under testdata/trace-intent/ are copies of its cluster resources with one
//! policy feature added each.

use std::path::{Path, PathBuf};

use calisnap::bundle::Bundle;
use calisnap::model::Model;
use calisnap::trace::flow::{Flow, FlowError, resolve_flow};
use calisnap::trace::intent::{HitAction, IntentVerdict, RuleOutcome, Verdict, evaluate};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn demo() -> Bundle {
    Bundle::open(&root().join("bundles/calico-bundle-demo-20261125T140215Z")).expect("demo bundle")
}

fn fixture(name: &str) -> Bundle {
    Bundle::open(&root().join("trace-intent").join(name)).expect("fixture")
}

fn flow(b: &Bundle, from: &str, to: &str, proto: Option<&str>) -> Flow {
    let m = Model::build(b);
    resolve_flow(&m, from, to, proto, None).unwrap_or_else(|e| panic!("{from} → {to}: {e}"))
}

fn intent(b: &Bundle, from: &str, to: &str, proto: Option<&str>) -> IntentVerdict {
    let m = Model::build(b);
    let f =
        resolve_flow(&m, from, to, proto, None).unwrap_or_else(|e| panic!("{from} → {to}: {e}"));
    evaluate(&m, &f)
}

fn resolve_err(b: &Bundle, from: &str, to: &str) -> FlowError {
    let m = Model::build(b);
    resolve_flow(&m, from, to, None, None).expect_err("should not resolve")
}

// ---------------------------------------------------------------------------------------------
// The demo bundle (seed experiment 2)
// ---------------------------------------------------------------------------------------------

#[test]
fn client_to_web_is_denied_at_the_end_of_the_default_tier() {
    let v = intent(&demo(), "demo/client", "demo/web:80", None);
    assert_eq!(v.verdict, Verdict::Deny);
    assert_eq!(v.egress.verdict, Verdict::Allow);
    let ing = &v.ingress;
    assert_eq!(ing.endpoint.as_deref(), Some("demo/web"));
    assert_eq!(ing.verdict, Verdict::Deny);
    let d = ing.deciding.as_ref().expect("a deciding step");
    assert_eq!(d.action, HitAction::EotDeny);
    assert_eq!(d.tier, "default");
    assert_eq!(
        d.to_flow_log(),
        "0|default|demo/knp.default.trace-test|deny|-1"
    );
    // The trace-test rule was looked at and failed on the source selector.
    assert_eq!(ing.checked.len(), 1);
    assert_eq!(ing.checked[0].policy, "demo/knp.default.trace-test");
    assert_eq!(ing.checked[0].outcome, RuleOutcome::NoMatch);
    assert!(
        ing.checked[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("demo/client")
    );
    // allow-frontend selects `app == 'Web'` (capital W): it never applies to web.
    assert!(
        ing.checked
            .iter()
            .all(|c| c.policy != "demo/allow-frontend")
    );
    assert!(ing.steps.iter().all(|s| s.policy != "demo/allow-frontend"));
}

#[test]
fn allowed_to_web_is_allowed_by_the_trace_test_rule_with_its_yaml_line() {
    let v = intent(&demo(), "demo/allowed", "demo/web:80", None);
    assert_eq!(v.verdict, Verdict::Allow);
    let d = v.ingress.deciding.as_ref().unwrap();
    assert_eq!(d.action, HitAction::Allow);
    assert_eq!(d.policy, "demo/knp.default.trace-test");
    assert_eq!(d.rule, Some(0));
    // cluster/k8s/networkpolicies.yaml: the ingress rule `- from:` is on line 11.
    assert_eq!(d.rule_line, Some(11));
    assert_eq!(d.path.as_deref(), Some("cluster/k8s/networkpolicies.yaml"));
    assert_eq!(
        v.ingress.flow_log(),
        ["0|default|demo/knp.default.trace-test|allow|0"]
    );
}

#[test]
fn web_to_backend_is_allowed_by_intent_through_the_frontend_role() {
    let v = intent(&demo(), "demo/web", "demo/backend:8080", None);
    assert_eq!(v.verdict, Verdict::Allow);
    let d = v.ingress.deciding.as_ref().unwrap();
    assert_eq!(d.policy, "demo/allow-to-backend");
    assert_eq!(d.rule, Some(0));
    // cluster/calico/networkpolicies.yaml: `- action: Allow` of allow-to-backend.
    assert_eq!(d.rule_line, Some(35));
    assert_eq!(
        d.to_flow_log(),
        "0|default|demo/default.allow-to-backend|allow|0"
    );
    // No policy selects web for egress: its namespace profile allows.
    let e = v.egress.deciding.as_ref().unwrap();
    assert_eq!(e.action, HitAction::ProfileAllow);
    assert_eq!(
        e.to_flow_log(),
        "0|__PROFILE__|__PROFILE__.kns.demo|allow|0"
    );
}

#[test]
fn client_to_backend_is_denied_at_the_end_of_the_default_tier() {
    let v = intent(&demo(), "demo/client", "demo/backend:8080", None);
    assert_eq!(v.verdict, Verdict::Deny);
    let d = v.ingress.deciding.as_ref().unwrap();
    assert_eq!(d.action, HitAction::EotDeny);
    assert_eq!(
        d.to_flow_log(),
        "0|default|demo/default.allow-to-backend|deny|-1"
    );
}

#[test]
fn web_to_client_is_allowed_by_the_profile_as_no_policy_selects_client() {
    let v = intent(&demo(), "demo/web", "demo/client:80", None);
    assert_eq!(v.verdict, Verdict::Allow);
    assert!(v.ingress.checked.iter().all(|c| c.tier == "__PROFILE__"));
    let d = v.ingress.deciding.as_ref().unwrap();
    assert_eq!(d.action, HitAction::ProfileAllow);
    assert_eq!(d.policy, "kns.demo");
    assert_eq!(d.path.as_deref(), Some("cluster/calico/profiles.yaml"));
}

#[test]
fn udp_to_web_is_denied_because_the_k8s_rule_is_tcp_only() {
    let v = intent(&demo(), "demo/allowed", "demo/web:80", Some("udp"));
    assert_eq!(v.verdict, Verdict::Deny);
    let reason = v.ingress.checked[0].reason.clone().unwrap();
    assert!(reason.contains("protocol TCP"), "{reason}");
}

// ---------------------------------------------------------------------------------------------
// Flow resolution
// ---------------------------------------------------------------------------------------------

#[test]
fn pods_resolve_by_namespace_and_name_or_by_unique_name_or_by_ip() {
    let b = demo();
    let f = flow(&b, "client", "10.65.0.7:80", None);
    assert_eq!(f.src.label, "demo/client");
    assert_eq!(f.src.ip.to_string(), "10.65.0.8");
    assert_eq!(f.src.node.as_deref(), Some("node-1"));
    assert_eq!(f.src.iface.as_deref(), Some("cali0e8ee4fc632"));
    assert_eq!(f.dst.label, "demo/web");
    assert_eq!((f.protocol, f.dport), (6, Some(80)));
}

#[test]
fn a_named_destination_port_resolves_on_the_destination_pod() {
    let f = flow(&demo(), "demo/client", "demo/web:http", None);
    assert_eq!(f.dport, Some(80));
    let e = resolve_err(&demo(), "demo/client", "demo/backend:http");
    assert!(matches!(e, FlowError::UnknownNamedPort { .. }), "{e}");
}

#[test]
fn an_ip_outside_the_bundle_is_external_and_not_policed() {
    let b = demo();
    let f = flow(&b, "demo/client", "203.0.113.10:443", None);
    assert!(f.dst.is_external());
    assert_eq!(f.dst.label, "203.0.113.10 (external)");
    let v = intent(&b, "demo/client", "203.0.113.10:443", None);
    assert!(!v.ingress.policed);
    assert!(v.ingress.notes[0].contains("not a Calico endpoint"));
    assert_eq!(v.verdict, Verdict::Allow);
}

#[test]
fn a_node_address_is_named_after_its_node() {
    let f = flow(&demo(), "10.0.0.11", "demo/web:80", None);
    assert_eq!(f.src.label, "10.0.0.11 (node node-1)");
    assert_eq!(f.src.node.as_deref(), Some("node-1"));
    assert_eq!(f.src.endpoint, None);
}

#[test]
fn an_unknown_pod_is_reported_with_the_names_it_resembles() {
    let e = resolve_err(&demo(), "demo/clinet", "demo/web:80");
    match &e {
        FlowError::UnknownEndpoint { near, .. } => assert_eq!(near, &["demo/client"]),
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("did you mean demo/client"));
}

#[test]
fn a_pod_name_in_two_namespaces_is_ambiguous() {
    let e = resolve_err(&fixture("resolve"), "web", "demo/dual:80");
    match e {
        FlowError::Ambiguous { candidates, .. } => {
            assert_eq!(candidates, ["demo/web", "other/web"])
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_pod_without_an_ip_cannot_be_traced() {
    let e = resolve_err(&fixture("resolve"), "demo/pending-job", "demo/web:80");
    assert!(matches!(e, FlowError::NoIp { .. }), "{e}");
    assert!(e.to_string().contains("demo/pending-job"));
}

#[test]
fn a_dual_stack_pod_uses_the_family_of_the_other_end() {
    let b = fixture("resolve");
    let f = flow(&b, "demo/dual", "fd00:65::99", Some("icmp"));
    assert_eq!(f.src.ip.to_string(), "fd00:65::20");
    assert_eq!(f.protocol, 58);
    let f = flow(&b, "demo/dual", "demo/web:80", None);
    assert_eq!(f.src.ip.to_string(), "10.65.0.20");
    let e = resolve_err(&b, "demo/web", "fd00:65::99");
    assert!(matches!(e, FlowError::NoIpOfFamily { .. }), "{e}");
}

#[test]
fn an_ip_in_a_network_set_is_labelled_with_it() {
    let f = flow(&fixture("resolve"), "192.0.2.5", "demo/web:80", None);
    assert_eq!(f.src.label, "192.0.2.5 (network set demo/databases)");
    assert_eq!(f.src.net_sets.len(), 1);
}

#[test]
fn protocols_and_ports_are_checked() {
    let b = demo();
    let m = Model::build(&b);
    let e = resolve_flow(&m, "demo/client", "demo/web", Some("tpc"), None).unwrap_err();
    assert!(matches!(e, FlowError::BadProtocol(_)));
    let e = resolve_flow(&m, "demo/client", "demo/web:80", Some("icmp"), None).unwrap_err();
    assert!(matches!(e, FlowError::PortWithoutPorts(_)));
    let e = resolve_flow(&m, "demo/client:1234", "demo/web:80", None, None).unwrap_err();
    assert!(matches!(e, FlowError::PortOnSource(_)));
    let e = resolve_flow(&m, "demo/client", "demo/web:80", None, Some("81")).unwrap_err();
    assert!(matches!(e, FlowError::PortConflict(..)));
    let f = resolve_flow(&m, "demo/client", "demo/web", Some("SCTP"), Some("80")).unwrap();
    assert_eq!((f.protocol, f.dport), (132, Some(80)));
}

// ---------------------------------------------------------------------------------------------
// Fixtures: one policy feature each
// ---------------------------------------------------------------------------------------------

#[test]
fn a_pass_rule_hands_the_flow_to_the_next_tier() {
    let v = intent(&fixture("tiers-pass"), "demo/allowed", "demo/web:80", None);
    assert_eq!(v.verdict, Verdict::Allow);
    assert_eq!(
        v.ingress.flow_log(),
        [
            "0|platform|platform.block-ssh|pass|-1",
            "1|security|security.pass-demo|pass|0",
            "2|default|demo/knp.default.trace-test|allow|0",
        ]
    );
}

#[test]
fn a_tier_that_denies_by_default_stops_flows_its_rules_do_not_pass() {
    let v = intent(&fixture("tiers-pass"), "demo/client", "demo/web:80", None);
    assert_eq!(v.verdict, Verdict::Deny);
    let d = v.ingress.deciding.unwrap();
    assert_eq!(d.action, HitAction::EotDeny);
    assert_eq!(d.tier, "security");
    assert_eq!(d.to_flow_log(), "1|security|security.pass-demo|deny|-1");
}

#[test]
fn a_deny_in_an_earlier_tier_wins_over_later_allows() {
    let v = intent(&fixture("tiers-pass"), "demo/allowed", "demo/web:22", None);
    assert_eq!(v.verdict, Verdict::Deny);
    assert_eq!(
        v.ingress.deciding.unwrap().to_flow_log(),
        "0|platform|platform.block-ssh|deny|0"
    );
}

#[test]
fn a_pass_out_of_the_last_tier_with_policies_reaches_the_profiles() {
    // Nothing in the default tier selects client: after security passes, profiles decide.
    let v = intent(
        &fixture("tiers-pass"),
        "demo/allowed",
        "demo/client:80",
        None,
    );
    assert_eq!(v.verdict, Verdict::Allow);
    assert_eq!(
        v.ingress.flow_log(),
        [
            "0|platform|platform.block-ssh|pass|-1",
            "1|security|security.pass-demo|pass|0",
            "2|__PROFILE__|__PROFILE__.kns.demo|allow|0",
        ]
    );
}

#[test]
fn an_explicit_deny_rule_before_an_allow_rule_decides_first() {
    let b = fixture("deny-before-allow");
    let v = intent(&b, "demo/client", "demo/web:80", None);
    assert_eq!(v.verdict, Verdict::Deny);
    let d = v.ingress.deciding.unwrap();
    assert_eq!((d.action, d.rule), (HitAction::Deny, Some(0)));
    assert_eq!(d.policy, "demo/web-deny-client-first");
    let v = intent(&b, "demo/backend", "demo/web:80", None);
    assert_eq!(v.verdict, Verdict::Allow);
    let d = v.ingress.deciding.unwrap();
    assert_eq!((d.action, d.rule), (HitAction::Allow, Some(1)));
    assert_eq!(
        d.to_flow_log(),
        "0|default|demo/default.web-deny-client-first|allow|1"
    );
}

#[test]
fn port_ranges_and_not_ports_bound_what_a_rule_admits() {
    let b = fixture("ports");
    let at = |port: &str| intent(&b, "demo/client", &format!("demo/backend:{port}"), None);
    let v = at("8080");
    assert_eq!(v.verdict, Verdict::Allow);
    assert_eq!(
        v.ingress.deciding.unwrap().policy,
        "demo/backend-port-range"
    );
    let v = at("8081");
    assert_eq!(v.verdict, Verdict::Deny);
    assert!(
        v.ingress.checked[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("notPorts")
    );
    assert_eq!(at("8999").verdict, Verdict::Allow);
    assert_eq!(at("9000").verdict, Verdict::Deny);
}

#[test]
fn without_a_destination_port_a_port_rule_leaves_the_verdict_unknown() {
    let v = intent(&fixture("ports"), "demo/client", "demo/backend", None);
    assert_eq!(v.verdict, Verdict::Unknown);
    let d = v.ingress.deciding.unwrap();
    assert_eq!(d.action, HitAction::Unknown);
    assert!(d.note.unwrap().contains("destination port is not given"));
}

#[test]
fn a_named_port_matches_the_port_the_destination_declares() {
    let b = fixture("named-port");
    let v = intent(&b, "demo/client", "demo/web:80", None);
    assert_eq!(v.verdict, Verdict::Allow);
    assert_eq!(v.ingress.deciding.unwrap().policy, "demo/web-by-port-name");
    // 8080 is not web's `http`: falls to trace-test, which does not admit client.
    let v = intent(&b, "demo/client", "demo/web:8080", None);
    assert_eq!(v.verdict, Verdict::Deny);
    assert_eq!(v.ingress.deciding.unwrap().action, HitAction::EotDeny);
}

#[test]
fn egress_nets_and_not_nets_judge_external_destinations() {
    let b = fixture("egress-nets");
    let v = intent(&b, "demo/client", "203.0.113.10:443", None);
    assert_eq!(v.verdict, Verdict::Allow);
    assert_eq!(
        v.egress.deciding.unwrap().to_flow_log(),
        "0|default|demo/default.client-egress|allow|0"
    );
    assert!(!v.ingress.policed);
    let v = intent(&b, "demo/client", "203.0.113.66:443", None);
    assert_eq!(v.verdict, Verdict::Deny);
    let reasons: Vec<String> = v
        .egress
        .checked
        .iter()
        .filter_map(|c| c.reason.clone())
        .collect();
    assert!(reasons[0].contains("notNets"), "{reasons:?}");
    assert!(reasons[1].contains("cannot match"), "{reasons:?}");
    assert_eq!(
        intent(&b, "demo/client", "192.0.2.1:443", None).verdict,
        Verdict::Deny
    );
}

#[test]
fn a_selector_matches_an_ip_through_the_network_set_holding_it() {
    let v = intent(
        &fixture("egress-nets"),
        "demo/client",
        "198.51.100.7:443",
        None,
    );
    assert_eq!(v.verdict, Verdict::Allow);
    assert_eq!(v.egress.deciding.unwrap().rule, Some(2));
}

#[test]
fn egress_policy_at_the_source_and_ingress_at_the_destination_both_count() {
    let b = fixture("egress-nets");
    // client's egress admits backend:8080, backend's ingress does not admit client.
    let v = intent(&b, "demo/client", "demo/backend:8080", None);
    assert_eq!(v.egress.verdict, Verdict::Allow);
    assert_eq!(v.egress.deciding.as_ref().unwrap().rule, Some(1));
    assert_eq!(v.ingress.verdict, Verdict::Deny);
    assert_eq!(v.verdict, Verdict::Deny);
    // client's egress to web:80 matches none of its rules.
    let v = intent(&b, "demo/client", "demo/web:80", None);
    assert_eq!(v.egress.deciding.unwrap().action, HitAction::EotDeny);
    // web has no egress policy: its profile decides.
    let v = intent(&b, "demo/web", "203.0.113.10:443", None);
    assert_eq!(v.egress.deciding.unwrap().action, HitAction::ProfileAllow);
}

#[test]
fn an_external_source_is_not_policed_and_no_selector_matches_it() {
    let v = intent(&fixture("egress-nets"), "203.0.113.10", "demo/web:80", None);
    assert!(!v.egress.policed);
    assert_eq!(v.verdict, Verdict::Deny);
    assert_eq!(v.ingress.deciding.unwrap().action, HitAction::EotDeny);
}

#[test]
fn a_global_policy_with_a_namespace_selector_polices_only_that_namespace() {
    let b = fixture("gnp-namespace-selector");
    let v = intent(&b, "other/probe", "demo/web:80", None);
    assert_eq!(v.verdict, Verdict::Deny);
    assert_eq!(
        v.ingress.deciding.unwrap().to_flow_log(),
        "0|default|default.ns-guard|deny|0"
    );
    let v = intent(&b, "demo/allowed", "demo/web:80", None);
    assert_eq!(v.verdict, Verdict::Allow);
    assert_eq!(
        v.ingress.deciding.unwrap().policy,
        "demo/knp.default.trace-test"
    );
    // ns-guard now selects client: the default tier ends in a deny for it.
    let v = intent(&b, "demo/web", "demo/client:80", None);
    assert_eq!(v.verdict, Verdict::Deny);
    assert_eq!(
        v.ingress.deciding.unwrap().to_flow_log(),
        "0|default|default.ns-guard|deny|-1"
    );
    // probe lives in `other`: not selected; kns.other (not in the bundle) allows all.
    let v = intent(&b, "demo/client", "other/probe:80", None);
    assert_eq!(v.verdict, Verdict::Allow);
    let d = v.ingress.deciding.unwrap();
    assert_eq!(
        (d.action, d.policy.as_str()),
        (HitAction::ProfileAllow, "kns.other")
    );
}

#[test]
fn a_log_rule_is_a_step_but_not_a_decision() {
    let v = intent(
        &fixture("log-and-staged"),
        "demo/allowed",
        "demo/web:80",
        None,
    );
    assert_eq!(v.verdict, Verdict::Allow);
    let actions: Vec<HitAction> = v.ingress.steps.iter().map(|s| s.action).collect();
    assert_eq!(actions, [HitAction::Log, HitAction::Allow]);
    assert_eq!(v.ingress.steps[0].policy, "demo/log-web");
    assert_eq!(
        v.ingress.flow_log(),
        ["0|default|demo/knp.default.trace-test|allow|0"]
    );
}

#[test]
fn a_staged_policy_is_listed_but_not_enforced() {
    let v = intent(
        &fixture("log-and-staged"),
        "demo/allowed",
        "demo/web:80",
        None,
    );
    assert_eq!(v.verdict, Verdict::Allow);
    assert_eq!(v.ingress.staged.len(), 1);
    assert!(v.ingress.staged[0].contains("demo/lockdown-web"));
    assert!(v.ingress.staged[0].contains("staged: not enforced"));
}

#[test]
fn icmp_type_matches_are_unknown_offline_when_they_decide() {
    let v = intent(
        &fixture("unknown"),
        "demo/client",
        "demo/backend",
        Some("icmp"),
    );
    assert_eq!(v.verdict, Verdict::Unknown);
    let d = v.ingress.deciding.unwrap();
    assert_eq!((d.action, d.rule), (HitAction::Unknown, Some(0)));
    assert!(d.note.unwrap().contains("ICMP type"));
}

#[test]
fn an_http_match_is_not_evaluated_but_cannot_change_a_verdict_reached_either_way() {
    let b = fixture("unknown");
    // web is a frontend: allow-to-backend admits it whether or not the http rule matches.
    let v = intent(&b, "demo/web", "demo/backend:8080", None);
    assert_eq!(v.verdict, Verdict::Allow);
    assert_eq!(v.ingress.deciding.unwrap().policy, "demo/allow-to-backend");
    assert!(
        v.ingress
            .notes
            .iter()
            .any(|n| n.contains("not evaluated offline")
                && n.contains("the same whether or not it matches"))
    );
    // client: allowed if the http rule matches, denied otherwise.
    let v = intent(&b, "demo/client", "demo/backend:8080", None);
    assert_eq!(v.verdict, Verdict::Unknown);
    assert!(v.ingress.deciding.unwrap().note.unwrap().contains("http"));
}

#[test]
fn without_profile_objects_a_namespace_profile_still_allows_all() {
    // The resolve fixture has pods only: endpoints get kns.demo / ksa.demo.default by name.
    let v = intent(&fixture("resolve"), "demo/dual", "demo/web:80", None);
    assert_eq!(v.verdict, Verdict::Allow);
    for d in [&v.egress, &v.ingress] {
        let h = d.deciding.as_ref().unwrap();
        assert_eq!(
            (h.action, h.policy.as_str()),
            (HitAction::ProfileAllow, "kns.demo")
        );
        assert!(
            h.note
                .as_deref()
                .unwrap()
                .contains("namespace profile allows all")
        );
    }
}
