//! Calico and Kubernetes resource dumps, read through `parse::resources`.
//!
//! Fixtures are under `testdata/artifacts/resources/` (origins in its README); the corpus
//! sweep reads `../shared/corpus/calicoctl-yaml/` when it is there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use calisnap::parse::resources::{self, HasMeta, Port, Protocol, ResourceSet};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/artifacts/resources")
}

fn fixture(name: &str) -> (String, ResourceSet) {
    let path = fixture_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let set = resources::parse(&text);
    (text, set)
}

fn no_errors(set: &ResourceSet) {
    assert!(
        set.errors.is_empty(),
        "unexpected errors: {:#?}",
        set.errors
    );
}

/// Every object's line must be a line of the file that names the object's kind.
fn lines_point_at_kinds(text: &str, set: &ResourceSet, file: &str) {
    let lines: Vec<&str> = text.lines().collect();
    for m in set.metas() {
        let line = lines.get(m.line.wrapping_sub(1)).copied().unwrap_or("");
        assert!(
            line.contains("kind") && line.contains(&m.kind),
            "{file}: {} {} at line {} which reads {line:?}",
            m.kind,
            m.name,
            m.line
        );
    }
}

fn count_by_kind(set: &ResourceSet) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for m in set.metas() {
        *counts.entry(m.kind.clone()).or_default() += 1;
    }
    counts
}

fn kinds(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

// ---------------------------------------------------------------------------------------
// The shared corpus.

/// Object counts per corpus file, counted by hand from the files (`kind:` lines and list
/// items), not by this parser.
const CORPUS_COUNTS: &[(&str, &[(&str, usize)])] = &[
    (
        "calico-kind-migration-seed-resources.yaml",
        &[
            ("Tier", 1),
            ("GlobalNetworkPolicy", 2),
            ("NetworkPolicy", 1),
            ("HostEndpoint", 1),
            ("GlobalNetworkSet", 1),
            ("NetworkSet", 1),
            ("BGPPeer", 1),
        ],
    ),
    ("ibm-nca-49-profiles-multidoc.yaml", &[("Profile", 49)]),
    // Despite its name, the file holds only the six GlobalNetworkPolicies.
    (
        "ibm-nca-6-gnps-hostendpoint-multidoc.yaml",
        &[("GlobalNetworkPolicy", 6)],
    ),
    (
        "ibm-nca-hep-wep-netset-gnetset-lists-array.json",
        &[
            ("HostEndpoint", 3),
            ("WorkloadEndpoint", 11),
            ("NetworkSet", 3),
            ("GlobalNetworkSet", 2),
        ],
    ),
    (
        "ibm-nca-wdc-workloadendpointlist-70-weps.json",
        &[("WorkloadEndpoint", 70)],
    ),
    (
        "tigera-docs-felixconfigurationlist-elided-with-dots.yaml",
        &[("FelixConfiguration", 1)],
    ),
];

#[test]
fn every_corpus_resource_file_parses_into_the_objects_it_holds() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    if !shared.exists() {
        eprintln!("skipping: {} is absent", shared.display());
        return;
    }
    let dir = shared.join("corpus/calicoctl-yaml");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let set = resources::parse(&text);
        lines_point_at_kinds(&text, &set, &name);
        assert!(set.is_calico(), "{name} should read as calico-resources");
        // Only the elided FelixConfigurationList has anything to report, and only warnings.
        assert!(
            set.errors
                .iter()
                .all(|e| e.message.starts_with("warning: ")),
            "{name}: {:#?}",
            set.errors
        );
        match CORPUS_COUNTS.iter().find(|(n, _)| *n == name) {
            Some((_, expected)) => {
                assert_eq!(count_by_kind(&set), kinds(expected), "{name}");
            }
            None => assert!(set.records() > 0, "{name}: nothing read"),
        }
    }
}

#[test]
fn the_corpus_workload_endpoint_list_keeps_named_ports_and_profiles() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus/calicoctl-yaml/ibm-nca-wdc-workloadendpointlist-70-weps.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("skipping: {} is absent", path.display());
        return;
    };
    let set = resources::parse(&text);
    assert_eq!(set.workload_endpoints.len(), 70);
    let first = &set.workload_endpoints[0];
    assert_eq!(first.meta.line, 7);
    assert_eq!(first.meta.namespace.as_deref(), Some("acc-research"));
    assert_eq!(first.node, "10.73.127.7");
    assert_eq!(first.interface_name, "cali30cec35312f");
    assert_eq!(first.ip_networks, ["172.30.209.14/32"]);
    assert_eq!(
        first.profiles,
        ["kns.acc-research", "ksa.acc-research.helm-tiller"]
    );
    let ports: Vec<(&str, u16)> = first
        .ports
        .iter()
        .map(|p| (p.name.as_str(), p.port))
        .collect();
    assert_eq!(ports, [("tiller", 44134), ("http", 44135)]);
    assert_eq!(
        first.ports[0].protocol,
        Some(Protocol::Name("TCP".to_string()))
    );
    assert_eq!(set.workload_endpoints[69].meta.line, 2933);
}

// ---------------------------------------------------------------------------------------
// Project fixtures.

const FIXTURES: &[(&str, bool)] = &[
    // (file, reads as calico-resources rather than k8s-resources)
    ("calico-seed-resources.yaml", true),
    ("felixconfigurationlist-elided.yaml", true),
    ("gnps-iks-trimmed.yaml", true),
    ("profiles-trimmed.yaml", true),
    ("hep-wep-netset-array-trimmed.json", true),
    ("calico-policy-tiered.yaml", true),
    ("k8s-networkpolicies.yaml", false),
    ("crd-v1-policies.yaml", true),
    ("broken-middle-multidoc.yaml", true),
    ("pre-v3-calicoctl-v1.yaml", true),
    ("calico-config-objects.yaml", true),
    ("k8s-pods-named-ports.json", false),
    ("k8s-core-objects-session.txt", false),
];

#[test]
fn every_fixture_locates_its_objects_and_is_labelled_calico_or_kubernetes() {
    for (name, calico) in FIXTURES {
        let (text, set) = fixture(name);
        assert!(set.records() > 0, "{name}: nothing read");
        lines_point_at_kinds(&text, &set, name);
        assert_eq!(set.is_calico(), *calico, "{name}");
        assert_eq!(set.is_k8s(), !*calico, "{name}");
    }
}

#[test]
fn the_seed_resources_read_as_calico_applies_them() {
    let (_, set) = fixture("calico-seed-resources.yaml");
    no_errors(&set);
    assert_eq!(set.records(), 8);
    assert_eq!(set.tiers[0].order, Some(200.0));
    let gnp = &set.global_network_policies[1];
    assert_eq!(gnp.meta.name, "security.test-allow-dns");
    assert_eq!(gnp.spec.tier.as_deref(), Some("security"));
    assert_eq!(gnp.spec.order, Some(100.0));
    assert_eq!(gnp.spec.types, ["Egress"]);
    assert_eq!(gnp.spec.egress[0].destination.ports, [Port::Number(53)]);
    assert_eq!(gnp.spec.egress[0].line, 47);
    let np = &set.network_policies[0];
    assert_eq!(np.meta.namespace.as_deref(), Some("migration-test"));
    assert_eq!(
        np.spec.ingress[0].destination.ports,
        [Port::Number(80), Port::Number(443)]
    );
    let hep = &set.host_endpoints[0];
    assert_eq!(
        (hep.node.as_str(), hep.interface_name.as_str()),
        ("kind-worker", "eth0")
    );
    assert_eq!(hep.expected_ips, ["10.0.0.1"]);
    assert_eq!(
        set.global_network_sets[0].nets,
        ["198.51.100.0/24", "203.0.113.0/24"]
    );
    assert_eq!(set.network_sets[0].nets, ["10.0.0.0/8"]);
    assert_eq!(set.other[0].meta.kind, "BGPPeer");
    assert_eq!(set.other[0].value["spec"]["asNumber"], 64512);
}

#[test]
fn the_tiered_policy_fixture_keeps_every_rule_field() {
    let (_, set) = fixture("calico-policy-tiered.yaml");
    no_errors(&set);
    let tier = &set.tiers[0];
    assert_eq!(tier.meta.line, 3, "the `$ cat` prompt on line 1 is skipped");
    assert_eq!(tier.default_action.as_deref(), Some("Pass"));

    let np = &set.network_policies[0];
    assert_eq!(np.meta.name, "internal-access.allow-tcp-6379");
    assert_eq!(np.spec.tier.as_deref(), Some("internal-access"));
    assert_eq!(np.spec.order, Some(10.5));
    assert_eq!(
        np.spec.service_account_selector.as_deref(),
        Some("role == 'db'")
    );
    assert_eq!(np.spec.types, ["Ingress", "Egress"]);

    let allow = &np.spec.ingress[0];
    assert_eq!(allow.line, 24);
    assert_eq!(allow.protocol, Some(Protocol::Name("TCP".into())));
    assert_eq!(allow.metadata_annotations["from"], "frontend");
    let src = &allow.source;
    assert_eq!(src.selector.as_deref(), Some("role == 'frontend'"));
    assert_eq!(src.not_selector.as_deref(), Some("env == 'dev'"));
    assert_eq!(
        src.namespace_selector.as_deref(),
        Some("projectcalico.org/name == 'web'")
    );
    let sa = src.service_accounts.as_ref().expect("serviceAccounts");
    assert_eq!(sa.names, ["api-sa", "web-sa"]);
    assert_eq!(sa.selector.as_deref(), Some("app == 'web'"));
    assert_eq!(
        allow.destination.ports,
        [
            Port::Number(6379),
            Port::Range(7000, 7010),
            Port::Named("redis-tls".into())
        ]
    );
    assert_eq!(allow.destination.not_ports, [Port::Number(7005)]);
    assert_eq!(allow.destination.selector, None);

    let deny = &np.spec.ingress[1];
    assert_eq!(deny.line, 46);
    assert_eq!(deny.action, "Deny");
    assert_eq!(deny.ip_version, Some(4));
    let icmp = deny.icmp.as_ref().expect("icmp");
    assert_eq!((icmp.icmp_type, icmp.code), (Some(8), Some(0)));
    assert_eq!(deny.source.nets, ["10.0.0.0/8"]);
    assert_eq!(deny.source.not_nets, ["10.1.0.0/16"]);

    let dns = &np.spec.egress[0];
    let svc = dns.destination.services.as_ref().expect("services");
    assert_eq!(
        (svc.name.as_str(), svc.namespace.as_str()),
        ("kube-dns", "kube-system")
    );
    assert_eq!(np.spec.egress[1].action, "Pass");
    assert_eq!(np.spec.egress[1].line, 64);

    let staged = &set.staged_network_policies[0];
    assert_eq!(staged.spec.staged_action.as_deref(), Some("Set"));
    assert_eq!(staged.spec.selector.as_deref(), Some("all()"));
}

#[test]
fn an_empty_namespace_selector_is_kept_apart_from_an_absent_one() {
    let (_, set) = fixture("calico-policy-tiered.yaml");
    let gnp = &set.global_network_policies[0];
    assert_eq!(gnp.spec.namespace_selector.as_deref(), Some(""));
    assert_eq!(gnp.spec.service_account_selector, None);
    assert!(gnp.spec.do_not_track && gnp.spec.apply_on_forward && !gnp.spec.pre_dnat);
    assert_eq!(gnp.spec.types, ["Ingress"], "flow-style list");
    assert_eq!(gnp.spec.performance_hints, ["AssumeNeededOnEveryNode"]);
    let rule = &gnp.spec.ingress[0];
    assert_eq!(rule.not_protocol, Some(Protocol::Name("TCP".into())));
    let not_icmp = rule.not_icmp.as_ref().expect("notICMP");
    assert_eq!((not_icmp.icmp_type, not_icmp.code), (Some(3), None));
}

#[test]
fn kubernetes_network_policy_peers_keep_absent_and_empty_selectors_apart() {
    let (_, set) = fixture("k8s-networkpolicies.yaml");
    no_errors(&set);
    assert_eq!(set.k8s_network_policies.len(), 2);
    let p = &set.k8s_network_policies[0];
    assert_eq!(p.meta.line, 4);
    assert_eq!(p.spec.pod_selector.match_labels["role"], "db");
    assert_eq!(p.spec.policy_types, ["Ingress", "Egress"]);

    let from = &p.spec.ingress[0].from;
    assert_eq!(from.len(), 4);
    let block = from[0].ip_block.as_ref().expect("ipBlock");
    assert_eq!(block.cidr, "172.17.0.0/16");
    assert_eq!(block.except, ["172.17.1.0/24"]);
    assert!(from[0].pod_selector.is_none() && from[0].namespace_selector.is_none());
    let ns = from[1]
        .namespace_selector
        .as_ref()
        .expect("namespaceSelector");
    assert_eq!(ns.match_labels["project"], "myproject");
    assert!(
        from[1].pod_selector.is_none(),
        "absent podSelector stays None"
    );
    let both = &from[3];
    let expr = &both
        .namespace_selector
        .as_ref()
        .expect("ns")
        .match_expressions[0];
    assert_eq!((expr.key.as_str(), expr.operator.as_str()), ("team", "In"));
    assert_eq!(expr.values, ["a", "b"]);
    assert_eq!(
        both.pod_selector,
        Some(Default::default()),
        "`podSelector: {{}}` is an empty selector, not an absent one"
    );
    assert_eq!(p.spec.ingress[0].ports[0].port, Some(Port::Number(6379)));
    assert_eq!(p.spec.ingress[0].line, 24);

    let egress_ports = &p.spec.egress[0].ports;
    assert_eq!(egress_ports[0].port, Some(Port::Number(32000)));
    assert_eq!(egress_ports[0].end_port, Some(32768));
    assert_eq!(egress_ports[1].port, Some(Port::Named("metrics".into())));
    assert_eq!(egress_ports[1].protocol.as_deref(), Some("TCP"));
    assert_eq!(p.spec.egress[0].line, 14);

    let all = &set.k8s_network_policies[1];
    assert_eq!(all.spec.pod_selector, Default::default());
    assert_eq!(all.spec.ingress.len(), 1, "`ingress: [{{}}]` is one rule");
    assert!(all.spec.ingress[0].from.is_empty() && all.spec.ingress[0].ports.is_empty());
    assert!(all.spec.egress.is_empty());
}

#[test]
fn crd_view_policies_keep_tier_prefixed_names_and_values_as_written() {
    let (_, set) = fixture("crd-v1-policies.yaml");
    no_errors(&set);
    let np = &set.network_policies[0];
    assert_eq!(np.meta.name, "default.allow-dns");
    assert_eq!(np.meta.api_version, "crd.projectcalico.org/v1");
    assert!(np.meta.is_crd_view());
    assert!(
        np.meta.annotations.is_empty(),
        "`annotations:` with no value"
    );
    assert_eq!(
        np.meta.creation_timestamp.as_deref(),
        Some("2024-03-01T10:00:00Z")
    );
    let rule = &np.spec.egress[0];
    assert_eq!(rule.action, "allow");
    assert_eq!(rule.protocol, Some(Protocol::Name("udp".into())));
    assert_eq!(rule.line, 15);
    let gnp = &set.global_network_policies[0];
    assert_eq!(gnp.meta.name, "security.block-metadata");
    assert_eq!(gnp.spec.egress[0].destination.nets, ["169.254.169.254/32"]);
}

#[test]
fn a_broken_document_in_the_middle_costs_only_that_document() {
    let (_, set) = fixture("broken-middle-multidoc.yaml");
    let names: Vec<&str> = set
        .global_network_sets
        .iter()
        .map(|s| s.meta.name.as_str())
        .collect();
    assert_eq!(names, ["first", "third"]);
    assert_eq!(set.global_network_sets[1].meta.line, 20);
    assert_eq!(set.errors.len(), 1, "{:#?}", set.errors);
    assert_eq!(set.errors[0].line, 15);
    assert!(
        set.errors[0].message.contains("line 15"),
        "{:?}",
        set.errors[0]
    );
}

#[test]
fn the_elided_felix_configuration_list_is_read_around_its_dots() {
    let (_, set) = fixture("felixconfigurationlist-elided.yaml");
    let fc = &set.felix_configurations[0];
    assert_eq!(fc.meta.name, "default");
    assert_eq!(fc.meta.line, 4);
    assert_eq!(
        fc.meta.creation_timestamp.as_deref(),
        Some("2020-10-05T13:41:20Z")
    );
    assert_eq!(fc.ipip_enabled(), Some(false));
    assert_eq!(fc.vxlan_enabled(), Some(false));
    assert_eq!(fc.bpf_enabled(), None);
    let warnings: Vec<usize> = set.errors.iter().map(|e| e.line).collect();
    assert_eq!(warnings, [11, 13]);
    assert!(
        set.errors
            .iter()
            .all(|e| e.message.starts_with("warning: "))
    );
}

#[test]
fn calico_configuration_objects_are_typed() {
    let (_, set) = fixture("calico-config-objects.yaml");
    no_errors(&set);
    let pool = &set.ip_pools[0];
    assert_eq!(pool.meta.line, 4);
    assert_eq!(pool.cidr, "192.168.0.0/16");
    assert_eq!(
        (pool.ipip_mode.as_str(), pool.vxlan_mode.as_str()),
        ("Always", "Never")
    );
    assert!(pool.nat_outgoing && !pool.disabled);
    assert_eq!(pool.block_size, Some(26));
    assert_eq!(pool.node_selector.as_deref(), Some("all()"));
    assert_eq!(pool.allowed_uses, ["Workload", "Tunnel"]);

    let ci = &set.cluster_informations[0];
    assert_eq!(ci.calico_version, "v3.28.0");
    assert_eq!(ci.cluster_type, "k8s,bgp,kubeadm,kdd");
    assert_eq!(ci.datastore_ready, Some(true));

    let node = &set.nodes[0];
    let bgp = node.bgp.as_ref().expect("bgp");
    assert_eq!(bgp.ipv4_address, "10.0.0.11/24");
    assert_eq!(bgp.ipv4_ipip_tunnel_addr, "192.168.84.128");
    assert_eq!(node.orch_refs[0].node_name, "node-1");
    assert_eq!(node.addresses[0].address_type, "CalicoNodeIP");
    assert_eq!(node.pod_cidrs, ["192.168.1.0/24"]);

    let fc = &set.felix_configurations[0];
    assert_eq!(fc.meta.name, "node.node-1");
    assert_eq!(fc.iptables_mark_mask(), Some(0xffff_0000));
    assert_eq!(fc.iptables_backend(), Some("NFT"));
    assert_eq!(fc.interface_prefix(), Some("cali,tap"));
    assert_eq!(fc.chain_insert_mode(), Some("Append"));
    assert_eq!(fc.default_endpoint_to_host_action(), Some("Accept"));
    assert_eq!(fc.log_prefix(), Some("calico-drop"));
    assert_eq!(fc.bpf_enabled(), Some(false));
    assert_eq!(fc.nftables_mode(), None);
    assert_eq!(fc.str_field("logSeverityScreen"), Some("Info"));
}

#[test]
fn pods_keep_named_container_ports_ips_and_host_networking() {
    let (_, set) = fixture("k8s-pods-named-ports.json");
    no_errors(&set);
    let web = &set.pods[0];
    assert_eq!(web.meta.line, 6);
    assert_eq!(web.meta.qualified_name(), "production/web-5d8f7c9b6-x2x7q");
    assert_eq!(web.node_name, "node-1");
    assert_eq!(web.service_account_name, "web");
    assert_eq!(web.pod_ips, ["192.168.1.17", "fd00:10:244:1::11"]);
    assert_eq!(web.phase, "Running");
    let ports: Vec<(&str, u16)> = web.containers[0]
        .ports
        .iter()
        .map(|p| (p.name.as_str(), p.container_port))
        .collect();
    assert_eq!(ports, [("http", 8080), ("metrics", 9113)]);
    let sidecar = &web.init_containers[0];
    assert_eq!(sidecar.restart_policy.as_deref(), Some("Always"));
    assert_eq!(sidecar.ports[0].name, "proxy-admin");

    let node_pod = &set.pods[1];
    assert_eq!(node_pod.meta.line, 70);
    assert!(node_pod.host_network);
    assert_eq!(
        node_pod.pod_ips,
        ["10.0.0.11"],
        "podIP when podIPs is absent"
    );
    assert!(node_pod.containers[0].ports.is_empty());
}

#[test]
fn a_pasted_kubectl_session_is_split_at_its_prompts() {
    let (_, set) = fixture("k8s-core-objects-session.txt");
    no_errors(&set);
    assert_eq!(set.records(), 5);
    let ns = &set.namespaces[0];
    assert_eq!((ns.meta.line, ns.phase.as_str()), (3, "Active"));
    assert_eq!(ns.meta.labels["team"], "a");

    let web = &set.services[0];
    assert_eq!(web.meta.line, 21);
    let selector = web.selector.as_ref().expect("selector");
    assert_eq!(selector["app"], "web");
    assert_eq!(web.ports[0].target_port, Some(Port::Named("http".into())));
    assert_eq!(web.cluster_ip, "10.96.120.7");
    assert_eq!(web.service_type, "ClusterIP");
    let db = &set.services[1];
    assert_eq!(db.selector, None, "a Service without a selector");
    assert_eq!(db.ports[0].target_port, Some(Port::Number(5432)));

    assert_eq!(set.service_accounts[0].meta.labels["role"], "frontend");

    let node = &set.k8s_nodes[0];
    assert_eq!(node.meta.line, 61);
    assert_eq!(node.pod_cidrs, ["192.168.1.0/24"]);
    assert_eq!(node.addresses[0].address, "10.0.0.11");
    assert_eq!(node.addresses[0].address_type, "InternalIP");
    assert_eq!(
        node.meta.annotations["projectcalico.org/IPv4Address"],
        "10.0.0.11/24"
    );
}

#[test]
fn a_json_array_of_calicoctl_lists_and_objects_is_flattened() {
    let (_, set) = fixture("hep-wep-netset-array-trimmed.json");
    no_errors(&set);
    assert_eq!(set.records(), 4);
    assert_eq!(set.host_endpoints[0].meta.line, 10);
    assert_eq!(set.host_endpoints[0].interface_name, "eth1");
    assert_eq!(
        set.host_endpoints[0].meta.labels["vendor.role"],
        "worker_public"
    );
    let wep = &set.workload_endpoints[0];
    assert_eq!(wep.meta.line, 34);
    assert_eq!(wep.pod, "kube-dns-amd64-7899c75955-9xf2v");
    assert_eq!(wep.endpoint, "eth0");
    assert_eq!(wep.ports.len(), 6);
    assert_eq!(wep.ports[3].name, "dns");
    assert_eq!(wep.ports[3].port, 53);
    assert_eq!(wep.ports[3].protocol, Some(Protocol::Name("UDP".into())));
    assert_eq!(set.network_sets[0].meta.line, 101);
    assert_eq!(
        set.network_sets[0].nets,
        ["198.51.200.0/27", "203.0.115.0/29"]
    );
    assert_eq!(set.global_network_sets[0].meta.line, 128);
}

#[test]
fn profiles_keep_rules_and_labels_to_apply() {
    let (_, set) = fixture("profiles-trimmed.yaml");
    no_errors(&set);
    assert_eq!(set.profiles.len(), 3);
    let kns = &set.profiles[0];
    assert_eq!(kns.ingress.len(), 1);
    assert_eq!(kns.egress[0].action, "Allow");
    assert_eq!(kns.egress[0].line, 10);
    assert_eq!(kns.ingress[0].source, Default::default());
    assert!(set.profiles[1].ingress.is_empty(), "`spec: {{}}`");
    let coredns = &set.profiles[2];
    assert_eq!(
        coredns.labels_to_apply["pcsa.kubernetes.io/cluster-service"],
        "true"
    );
}

#[test]
fn numeric_protocols_and_numeric_ports_are_numbers() {
    let (_, set) = fixture("gnps-iks-trimmed.yaml");
    no_errors(&set);
    let names: Vec<&str> = set
        .global_network_policies
        .iter()
        .map(|p| p.meta.name.as_str())
        .collect();
    assert_eq!(names, ["allow-bigfix-port", "allow-icmp", "allow-vrrp"]);
    let bigfix = &set.global_network_policies[0];
    assert_eq!(
        bigfix.spec.ingress[1].protocol,
        Some(Protocol::Name("UDP".into()))
    );
    assert_eq!(
        bigfix.spec.ingress[1].destination.ports,
        [Port::Number(52311)]
    );
    assert_eq!(
        bigfix.spec.selector.as_deref(),
        Some("vendor.role in { 'worker_public', 'master_public' }")
    );
    assert_eq!(
        bigfix.meta.uid.as_deref(),
        Some("b55dff49-fd63-11e8-86fb-a2ef5a666dfb")
    );
    let vrrp = &set.global_network_policies[2];
    assert_eq!(vrrp.spec.ingress[0].protocol, Some(Protocol::Number(112)));
    assert_eq!(vrrp.spec.order, Some(1500.0));
}

#[test]
fn pre_v3_calico_resources_are_kept_aside_with_a_note() {
    let (_, set) = fixture("pre-v3-calicoctl-v1.yaml");
    no_errors(&set);
    assert_eq!(set.records(), 2);
    assert!(set.network_policies.is_empty() && set.profiles.is_empty());
    let kinds: Vec<&str> = set.other.iter().map(|o| o.meta.kind.as_str()).collect();
    assert_eq!(kinds, ["policy", "profile"]);
    assert_eq!(set.other[0].meta.line, 2);
    assert!(
        set.other
            .iter()
            .all(|o| o.note.as_deref().is_some_and(|n| n.contains("pre-v3")))
    );
}

#[test]
fn merged_sets_remember_which_artifact_each_object_came_from() {
    let (_, mut calico) = fixture("calico-seed-resources.yaml");
    let (_, mut k8s) = fixture("k8s-pods-named-ports.json");
    calico.set_artifact("cluster/calico/seed.yaml");
    k8s.set_artifact("cluster/k8s/pods.json");
    calico.merge(k8s);
    assert_eq!(calico.records(), 10);
    assert_eq!(
        calico.pods[1].meta().artifact.as_deref(),
        Some("cluster/k8s/pods.json")
    );
    assert_eq!(
        calico.tiers[0].meta().artifact.as_deref(),
        Some("cluster/calico/seed.yaml")
    );
    assert!(calico.is_calico());
}

#[test]
fn the_content_sniffer_accepts_every_fixture() {
    for (name, _) in FIXTURES {
        let (text, _) = fixture(name);
        let head: String = text.chars().take(2048).collect();
        assert!(resources::looks_like_resources(&head), "{name}");
    }
    assert!(!resources::looks_like_resources(
        "Chain INPUT (policy ACCEPT)\ntarget prot opt source destination\n"
    ));
}

mod never_panics {
    use proptest::prelude::*;

    /// Pieces of YAML, JSON and pasted-terminal text, glued into lines at random.
    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "- ",
            "-",
            "  ",
            "\t",
            "kind: ",
            "kind: PodList",
            "apiVersion: v1",
            "items:",
            "metadata:",
            "name: a",
            "spec:",
            "ingress:",
            "- action: Allow",
            "ports: [80, \"x:y\"]",
            "---",
            "...",
            "[...]",
            "$ kubectl get pods -o yaml",
            "# kubectl get x",
            "{",
            "}",
            "[",
            "]",
            "\"",
            "'",
            ":",
            ",",
            "\"kind\": \"Pod\"",
            "\"items\": [",
            "|",
            ">-",
            "&a ",
            "*a",
            "<<: *a",
            "é",
            "\u{feff}",
            "\r",
            "#",
            "? ",
            "!!str ",
            "%YAML 1.2",
        ])
    }

    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::collection::vec(piece(), 0..6), 0..25).prop_map(|lines| {
            lines
                .iter()
                .map(|l| l.concat())
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    proptest! {
        #[test]
        fn parsing_any_text_returns_without_panicking(t in text()) {
            let set = calisnap::parse::resources::parse(&t);
            let lines = t.lines().count().max(1);
            for e in &set.errors {
                prop_assert!(e.line >= 1 && e.line <= lines + 1, "{e:?} in {lines} lines");
            }
            for m in set.metas() {
                prop_assert!(m.line >= 1 && m.line <= lines, "{m:?}");
            }
            let _ = calisnap::parse::yaml::documents(&t);
        }
    }
}
