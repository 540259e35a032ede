//! dmesg, sysctl, ip and eBPF dump parsing on fixtures under testdata/artifacts, and a sweep
//! over the shared corpus of eBPF dumps.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use calisnap::parse::bpf::{self, BpfVariant, JsonKind};
use calisnap::parse::dmesg::{self, Dmesg, TraceKind, TraceSource};
use calisnap::parse::ip::{self, AddrFamily, RouteKind};
use calisnap::parse::sysctl;

fn fixture(kind: &str, name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/artifacts")
        .join(kind)
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

// ---------------------------------------------------------------------------------------
// dmesg

#[test]
fn legacy_trace_lines_give_table_chain_kind_and_packet() {
    let d = dmesg::parse(&fixture("dmesg", "trace-legacy.txt"));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.records(), 12);
    assert_eq!(d.traces.len(), 7);
    let steps: Vec<(&str, &str, TraceKind, Option<u32>)> = d
        .traces
        .iter()
        .map(|t| (t.table.as_str(), t.chain.as_str(), t.kind, t.rulenum))
        .collect();
    assert_eq!(steps[0], ("raw", "PREROUTING", TraceKind::Rule, Some(1)));
    assert_eq!(
        steps[2],
        ("raw", "cali-PREROUTING", TraceKind::Return, Some(6))
    );
    assert_eq!(steps[3], ("raw", "PREROUTING", TraceKind::Policy, Some(2)));
    let t = &d.traces[4];
    assert_eq!(t.line, 7);
    assert_eq!(t.source, TraceSource::Kernel);
    assert_eq!(t.uptime.as_deref(), Some("5312.483102"));
    assert_eq!(t.chain, "cali-fw-cali1b2c3d4e5f6");
    assert_eq!(t.packet.in_iface.as_deref(), Some("cali1b2c3d4e5f6"));
    assert_eq!(t.packet.out_iface.as_deref(), Some("vxlan.calico"));
    assert_eq!(t.packet.src, Some(ip("10.244.1.5")));
    assert_eq!(t.packet.dst, Some(ip("10.244.2.9")));
    assert_eq!(t.packet.proto.as_deref(), Some("TCP"));
    assert_eq!((t.packet.sport, t.packet.dport), (Some(40022), Some(8080)));
    assert_eq!(t.packet.mark, Some(0x10000));
    assert_eq!(t.packet.len, Some(60));
    assert!(t.packet.flags.iter().any(|f| f == "SYN"));
    // No MARK= when the mark is 0; OUT= empty is no interface.
    assert_eq!(d.traces[0].packet.mark, None);
    assert_eq!(d.traces[0].packet.out_iface, None);
}

#[test]
fn icmp_and_ipv6_trace_lines_are_read() {
    let d = dmesg::parse(&fixture("dmesg", "trace-legacy.txt"));
    let icmp = &d.traces[5];
    assert_eq!(icmp.packet.proto.as_deref(), Some("ICMP"));
    assert_eq!(
        (icmp.packet.icmp_type, icmp.packet.icmp_code),
        (Some(0), Some(0))
    );
    assert_eq!(icmp.packet.sport, None);
    let v6 = &d.traces[6];
    assert_eq!(v6.kind, TraceKind::Policy);
    assert_eq!(v6.packet.src, Some(ip("fd00:10:244::9")));
    assert_eq!(v6.packet.proto.as_deref(), Some("UDP"));
    // The first LEN= is the IP length, not the UDP one.
    assert_eq!(v6.packet.len, Some(72));
}

#[test]
fn log_action_lines_and_notable_kernel_messages_are_kept() {
    let d = dmesg::parse(&fixture("dmesg", "trace-legacy.txt"));
    assert_eq!(d.logged.len(), 1);
    assert_eq!(d.logged[0].prefix, "calico-packet:");
    assert_eq!(d.logged[0].packet.dst, Some(ip("8.8.8.8")));
    assert_eq!(d.logged[0].line, 10);
    let notable: Vec<usize> = d.notable.iter().map(|n| n.line).collect();
    assert_eq!(notable, vec![11]);
    assert!(d.notable[0].text.contains("table full"));
    assert_eq!(d.other, 3);
}

#[test]
fn xtables_monitor_traces_take_their_packet_from_the_packet_line_of_their_id() {
    let d = dmesg::parse(&fixture("dmesg", "trace-xtables-monitor.txt"));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.traces.len(), 5);
    let first = &d.traces[0];
    assert_eq!(first.source, TraceSource::XtablesMonitor);
    assert_eq!(first.trace_id, Some(0xfa5a6e3e));
    assert_eq!(first.family, Some(2));
    assert_eq!(first.handle, Some(3));
    assert_eq!(first.verdict.as_deref(), Some("JUMP:cali-PREROUTING"));
    assert!(
        first
            .rule
            .as_deref()
            .is_some_and(|r| r.starts_with("-4 -t raw -A PREROUTING"))
    );
    assert_eq!(first.packet_line, Some(2));
    assert_eq!(first.packet.dport, Some(8080));
    assert_eq!(first.packet.proto.as_deref(), Some("TCP"));
    assert_eq!(first.packet.mark, Some(0x40000));
    let ret = &d.traces[1];
    assert_eq!(
        (ret.kind, ret.verdict.as_deref()),
        (TraceKind::Return, None)
    );
    let drop = &d.traces[3];
    assert_eq!(drop.chain, "cali-fw-cali1b2c3d4e5f6");
    assert_eq!(
        (drop.handle, drop.verdict.as_deref()),
        (Some(0x52), Some("DROP"))
    );
    assert_eq!(drop.packet.src, Some(ip("10.244.1.5")));
    // The PACKET line can also come after the policy line of its id.
    let policy = &d.traces[4];
    assert_eq!(policy.verdict.as_deref(), Some("ACCEPT"));
    assert_eq!(policy.packet_line, Some(7));
    assert_eq!(policy.packet.sport, Some(179));
}

#[test]
fn syslog_dmesg_t_and_dmesg_x_prefixes_are_removed() {
    let d = dmesg::parse(&fixture("dmesg", "syslog-and-T.txt"));
    let chains: Vec<(&str, &str)> = d
        .traces
        .iter()
        .map(|t| (t.table.as_str(), t.chain.as_str()))
        .collect();
    assert_eq!(
        chains,
        vec![
            ("mangle", "PREROUTING"),
            ("nat", "cali-PREROUTING"),
            ("filter", "FORWARD")
        ]
    );
    assert_eq!(d.traces[0].uptime.as_deref(), Some("5312.482950"));
    assert_eq!(d.traces[1].uptime, None);
    assert_eq!(d.errors.len(), 1);
    assert_eq!(d.errors[0].line, 5);
}

fn dmesg_visible(d: &Dmesg) -> String {
    format!(
        "{:?}",
        (
            &d.traces, &d.logged, &d.notable, d.lines, d.other, &d.errors
        )
    )
}

#[test]
fn a_chunked_dmesg_parse_equals_the_whole_file_parse() {
    for name in [
        "trace-legacy.txt",
        "trace-xtables-monitor.txt",
        "syslog-and-T.txt",
    ] {
        let text = fixture("dmesg", name);
        let whole = dmesg_visible(&dmesg::parse(&text));
        let cuts: Vec<usize> = text.match_indices('\n').map(|(i, _)| i + 1).collect();
        for &cut in &cuts {
            let first = text[..cut].matches('\n').count() + 1;
            let mut m = dmesg::parse_chunk(&text[..cut], 1);
            m.merge(dmesg::parse_chunk(&text[cut..], first));
            assert_eq!(dmesg_visible(&m), whole, "{name} cut at {cut}");
        }
        let mut all = Dmesg::default();
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&text.len())) {
            let first = text[..start].matches('\n').count() + 1;
            all.merge(dmesg::parse_chunk(&text[start..cut], first));
            start = cut;
        }
        assert_eq!(dmesg_visible(&all), whole, "{name} one chunk per line");
    }
}

// ---------------------------------------------------------------------------------------
// sysctl

#[test]
fn sysctl_a_values_are_found_by_dotted_and_slash_names() {
    let s = sysctl::parse(&fixture("sysctl", "sysctl-a.txt"));
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.records(), 11);
    assert_eq!(s.value("net.netfilter.nf_conntrack_max"), Some("262144"));
    assert_eq!(
        s.value("/proc/sys/net/netfilter/nf_conntrack_max"),
        Some("262144")
    );
    assert_eq!(s.value("net/netfilter/nf_conntrack_max"), Some("262144"));
    assert_eq!(s.get("net.ipv4.ip_forward").map(|e| e.line), Some(6));
    assert_eq!(s.value("net.ipv4.tcp_rmem"), Some("4096\t131072\t6291456"));
    // An interface with a dot: `eth0/100` in dotted names, `eth0.100` in paths.
    assert_eq!(s.value("net/ipv4/conf/eth0.100/rp_filter"), Some("2"));
    assert_eq!(s.value("net.ipv4.conf.eth0/100.rp_filter"), Some("2"));
    assert_eq!(s.messages.len(), 1);
    assert_eq!(s.messages[0].0, 10);
    assert_eq!(s.value("net.nope"), None);
}

#[test]
fn proc_sys_listings_and_sysctl_d_files_are_read() {
    let p = sysctl::parse(&fixture("sysctl", "proc-sys-grep.txt"));
    assert_eq!(p.records(), 4);
    assert_eq!(p.value("net.netfilter.nf_conntrack_max"), Some("262144"));
    assert_eq!(p.value("net.ipv4.conf.eth0/100.rp_filter"), Some("2"));
    let k = sysctl::parse(&fixture("sysctl", "key-equals-value.txt"));
    assert_eq!(k.records(), 3);
    assert_eq!(k.value("net.netfilter.nf_conntrack_max"), Some("1048576"));
    assert_eq!(k.errors.len(), 1);
    assert_eq!(k.errors[0].line, 5);
}

// ---------------------------------------------------------------------------------------
// ip

#[test]
fn ip_route_reads_calico_routes() {
    let r = ip::parse_routes(&fixture("ip", "ip-route.txt"));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.records(), 11);
    let def = &r.routes[0];
    assert!(def.is_default());
    assert_eq!(def.via, Some(ip("10.128.0.1")));
    assert_eq!(def.src, Some(ip("10.128.0.2")));
    assert_eq!(
        (def.metric, def.proto.as_deref()),
        (Some(100), Some("dhcp"))
    );
    let ipip = &r.routes[1];
    assert_eq!(
        ipip.dst.map(|d| d.to_string()).as_deref(),
        Some("10.65.0.0/26")
    );
    assert_eq!(ipip.dev.as_deref(), Some("tunl0"));
    assert!(ipip.onlink);
    let bh = &r.routes[2];
    assert_eq!(bh.kind, RouteKind::Blackhole);
    assert_eq!(bh.dev, None);
    let wl = &r.routes[3];
    assert_eq!(
        wl.dst.map(|d| d.to_string()).as_deref(),
        Some("10.65.1.5/32")
    );
    assert_eq!(wl.scope.as_deref(), Some("link"));
    assert!(r.routes[4].linkdown);
    let mp = &r.routes[6];
    assert_eq!(mp.nexthops.len(), 2);
    assert_eq!(mp.nexthops[1].via, Some(ip("10.128.0.4")));
    assert_eq!(mp.nexthops[1].line, 9);
    assert_eq!(r.routes[8].kind, RouteKind::Local);
    assert_eq!(r.routes[8].table.as_deref(), Some("local"));
    assert_eq!(r.routes[8].line, 11);
    let v6 = &r.routes[9];
    assert_eq!(v6.via, Some(ip("fe80::1")));
    assert_eq!(v6.mtu, Some(1430));
    assert_eq!(r.routes[10].kind, RouteKind::Unreachable);
}

#[test]
fn ip_route_json_matches_the_text_form() {
    let j = ip::parse_routes(&fixture("ip", "ip-route.json"));
    assert!(j.errors.is_empty(), "{:?}", j.errors);
    assert_eq!(j.records(), 5);
    let t = ip::parse_routes(&fixture("ip", "ip-route.txt"));
    for (jr, tr) in j.routes.iter().zip([
        &t.routes[0],
        &t.routes[1],
        &t.routes[2],
        &t.routes[3],
        &t.routes[6],
    ]) {
        assert_eq!(
            (
                jr.kind,
                jr.dst,
                jr.via,
                &jr.dev,
                &jr.proto,
                jr.onlink,
                jr.metric,
                jr.nexthops.len()
            ),
            (
                tr.kind,
                tr.dst,
                tr.via,
                &tr.dev,
                &tr.proto,
                tr.onlink,
                tr.metric,
                tr.nexthops.len()
            )
        );
    }
}

#[test]
fn ip_addr_reads_interfaces_peers_and_addresses() {
    let a = ip::parse_addrs(&fixture("ip", "ip-addr.txt"));
    assert!(a.errors.is_empty(), "{:?}", a.errors);
    assert_eq!(a.records(), 6);
    let eth0 = a.iface("eth0").expect("eth0");
    assert_eq!(
        (eth0.index, eth0.mtu, eth0.state.as_deref()),
        (Some(2), Some(1500), Some("UP"))
    );
    assert!(eth0.is_up());
    assert_eq!(eth0.mac.as_deref(), Some("42:01:0a:80:00:02"));
    assert_eq!(eth0.addrs.len(), 3);
    assert_eq!(eth0.addrs[0].addr.to_string(), "10.128.0.2/20");
    assert_eq!(eth0.addrs[0].brd, Some(ip("10.128.15.255")));
    assert_eq!(eth0.addrs[0].flags, vec!["dynamic".to_string()]);
    assert_eq!(eth0.addrs[0].label, None);
    assert_eq!(eth0.addrs[1].label.as_deref(), Some("eth0:vip"));
    assert_eq!(eth0.addrs[2].family, AddrFamily::Inet6);
    let tunl = a.iface("tunl0").expect("tunl0");
    assert_eq!(tunl.peer.as_deref(), Some("NONE"));
    assert_eq!(tunl.link_type.as_deref(), Some("ipip"));
    assert!(a.iface("vxlan.calico").is_some());
    let veth = a.iface("cali1b2c3d4e5f6").expect("veth");
    assert_eq!(veth.peer.as_deref(), Some("if3"));
    assert_eq!(veth.line, 23);
    assert_eq!(
        veth.link_netns.as_deref(),
        Some("cni-8a1f6c2e-3b4d-5e6f-7a8b-9c0d1e2f3a4b")
    );
    let down = a.iface("cali99aabbccdd").expect("down veth");
    assert_eq!(down.state.as_deref(), Some("DOWN"));
    assert!(down.flags.iter().any(|f| f == "NO-CARRIER"));
    assert_eq!(down.link_netns.as_deref(), Some("2"));
}

#[test]
fn ip_addr_json_and_brief_forms_are_read() {
    let j = ip::parse_addrs(&fixture("ip", "ip-addr.json"));
    assert!(j.errors.is_empty(), "{:?}", j.errors);
    assert_eq!(j.records(), 2);
    let veth = j.iface("cali1b2c3d4e5f6").expect("veth");
    assert_eq!(veth.peer.as_deref(), Some("if3"));
    assert_eq!(
        veth.addrs[0].addr.to_string(),
        "fe80::ecee:eeff:feee:eeee/64"
    );
    assert_eq!(j.ifaces[0].addrs[0].label, None);
    let b = ip::parse_addrs(&fixture("ip", "ip-br-addr.txt"));
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    assert_eq!(b.records(), 3);
    assert_eq!(b.ifaces[1].addrs.len(), 2);
    assert_eq!(b.ifaces[2].peer.as_deref(), Some("if3"));
}

// ---------------------------------------------------------------------------------------
// eBPF dumps

#[test]
fn bpftool_json_is_counted_with_ids_names_and_kinds() {
    let p = bpf::parse(&fixture("bpf", "bpftool-prog-list.json"));
    assert_eq!(p.variant, Some(BpfVariant::Json));
    assert_eq!(p.json_kind, Some(JsonKind::Programs));
    assert_eq!(p.records(), 3);
    assert_eq!(p.json[1].id, Some(413));
    assert_eq!(p.json[1].name.as_deref(), Some("calico_tc_main"));
    assert_eq!(p.json[2].kind.as_deref(), Some("xdp"));
    let m = bpf::parse(&fixture("bpf", "bpftool-map-list-pretty.json"));
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    assert_eq!(m.command.as_ref().map(|c| c.0), Some(1));
    assert_eq!(m.json_kind, Some(JsonKind::Maps));
    assert_eq!(m.records(), 2);
    assert_eq!(m.json[1].name.as_deref(), Some("cali_v4_routes"));
    assert_eq!(m.json[1].line, 2);
    let d = bpf::parse(&fixture("bpf", "bpftool-map-dump.json"));
    assert_eq!((d.json_kind, d.records()), (Some(JsonKind::MapEntries), 2));
    let n = bpf::parse(&fixture("bpf", "bpftool-net-list.json"));
    assert_eq!(
        (n.json_kind, n.records()),
        (Some(JsonKind::NetAttachments), 1)
    );
}

#[test]
fn the_commented_policy_dump_gives_rules_with_tier_policy_ipsets_and_counts() {
    let d = bpf::parse(&fixture("bpf", "policy-dump.txt"));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.variant, Some(BpfVariant::PolicyDump));
    let p = d.policy.as_ref().expect("policy");
    assert_eq!(p.iface.as_deref(), Some("calic31b4f7fc58"));
    assert_eq!(p.hook.as_deref(), Some("tc egress"));
    assert_eq!(p.error.as_deref(), Some(""));
    assert_eq!(d.records(), 2);
    let r = &p.rules[0];
    assert_eq!(r.line, 7);
    assert_eq!(r.tier.as_deref(), Some("default"));
    assert_eq!(
        r.policy.as_deref(),
        Some("default/knp.default.allow-nginx-from-ubuntu")
    );
    assert_eq!(r.rule_id.as_deref(), Some("29vMYcPWr7reSxxN"));
    assert_eq!(r.action.as_deref(), Some("allow"));
    assert_eq!(r.ipset_ids, vec![0x303904ae5eae5418]);
    assert_eq!(r.count, Some(9));
    // The rule after the tier's end belongs to no tier (profile rules).
    let last = &p.rules[1];
    assert_eq!((last.tier.as_deref(), last.count), (None, Some(0)));
    assert_eq!(last.rule_id.as_deref(), Some("aBMQCbsUMESPKGRp"));
    assert_eq!(p.tier_ends.len(), 1);
    assert_eq!(
        (p.tier_ends[0].tier.as_str(), p.tier_ends[0].action.as_str()),
        ("default", "deny")
    );
}

#[test]
fn the_indented_policy_dump_gives_the_same_kind_of_rules() {
    let d = bpf::parse(&fixture("bpf", "policy-dump-indented.txt"));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let p = d.policy.as_ref().expect("policy");
    assert_eq!(p.rules.len(), 2);
    let r = &p.rules[0];
    assert_eq!(
        r.policy.as_deref(),
        Some("GlobalNetworkPolicy default.allow-dns")
    );
    assert_eq!(r.rule_id.as_deref(), Some("Lp5yGvWW1WWPNd3_"));
    assert_eq!(r.action.as_deref(), Some("allow"));
    assert_eq!(r.count, Some(42));
    assert_eq!(r.ipset_ids, vec![0x303904ae5eae5418]);
    assert_eq!(p.rules[1].action.as_deref(), Some("deny"));
    assert_eq!(
        p.rules[1].policy.as_deref(),
        Some("NetworkPolicy app/default.deny-all")
    );
    assert_eq!(p.tier_ends[0].action, "deny");
}

#[test]
fn the_ipsets_dump_keeps_hashed_ids_and_members() {
    let d = bpf::parse(&fixture("bpf", "ipsets-dump.txt"));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.variant, Some(BpfVariant::IpsetsDump));
    assert_eq!(d.records(), 2);
    assert_eq!(d.ipsets[1].id, 0xffef9f925a8a4ca4);
    assert_eq!(
        d.ipsets[1].members,
        vec![
            (7, "192.168.129.66/32".to_string()),
            (8, "192.168.129.68/32".to_string())
        ]
    );
    assert!(
        d.command
            .as_ref()
            .is_some_and(|c| c.1.ends_with("ipsets dump"))
    );
}

#[test]
fn the_annotated_conntrack_dump_sets_annotations_aside() {
    let d = bpf::parse(&fixture("bpf", "conntrack-dump-annotated.txt"));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.variant, Some(BpfVariant::ConntrackDump));
    assert_eq!(d.records(), 6);
    assert_eq!(d.annotations.len(), 2);
    assert_eq!(d.annotations[0].0, 3);
    let nat = &d.conntrack[0];
    assert_eq!(nat.src.addr, ip("192.168.58.7"));
    assert_eq!(nat.dst.port, 80);
    assert_eq!(nat.backend.map(|b| b.addr), Some(ip("192.168.105.136")));
    assert_eq!(nat.active_ago, "4.486606371s");
    assert_eq!(nat.state.as_deref(), Some("CLOSED"));
    let plain = &d.conntrack[1];
    assert_eq!(plain.backend, None);
    assert_eq!(plain.state.as_deref(), Some("ESTABLISHED"));
    assert_eq!(d.conntrack[4].proto, "UDP");
    assert_eq!(d.conntrack[4].state, None);
}

#[test]
fn conntrack_dump_notes_ipv6_raw_lines_and_summaries_are_read() {
    let d = bpf::parse(&fixture("bpf", "conntrack-dump-variants.txt"));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.conntrack.len(), 4);
    assert_eq!(d.conntrack_raw, 1);
    assert_eq!(d.records(), 5);
    assert_eq!(
        d.conntrack[0].note.as_deref(),
        Some("external client, service forwarded to/from 10.128.0.4")
    );
    assert_eq!(d.conntrack[0].backend.map(|b| b.port), Some(8080));
    assert_eq!(d.conntrack[1].src.addr, ip("fd00:10:65::3"));
    assert_eq!(d.conntrack[1].src.port, 40000);
    assert_eq!(
        d.conntrack[3].note.as_deref(),
        Some("source port changed from 38001")
    );
    assert_eq!(
        d.summary,
        vec![
            (6, "Conntrack map size".to_string(), "512000".to_string()),
            (7, "Total connections".to_string(), "4".to_string())
        ]
    );
}

#[test]
fn the_nat_dump_reads_frontends_and_tab_indented_backends() {
    let d = bpf::parse(&fixture("bpf", "nat-dump.txt"));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.variant, Some(BpfVariant::NatDump));
    assert_eq!(d.records(), 8);
    assert_eq!(d.nat_backends.len(), 13);
    let dns = &d.nat_frontends[0];
    assert_eq!(
        (dns.addr, dns.port, dns.proto, dns.id, dns.count),
        (ip("10.96.0.10"), 53, 6, 4, 2)
    );
    let b: Vec<String> = d
        .backends_of(4)
        .filter_map(|b| b.endpoint.map(|e| format!("{}:{}", e.addr, e.port)))
        .collect();
    assert_eq!(b, vec!["192.168.129.66:53", "192.168.129.68:53"]);
    let v = bpf::parse(&fixture("bpf", "nat-dump-variants.txt"));
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    assert_eq!(v.nat_frontends[0].flags.as_deref(), Some("ext-local"));
    assert_eq!(v.backends_of(9).count(), 2);
    assert_eq!(v.nat_backends[1].endpoint, None);
    assert_eq!(v.nat_frontends[2].count, -1);
    assert_eq!(v.nat_frontends[2].src.as_deref(), Some("203.0.113.0/24"));
}

#[test]
fn the_counters_table_joins_wrapped_cells() {
    let d = bpf::parse(&fixture("bpf", "counters-dump.txt"));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.variant, Some(BpfVariant::CountersTable));
    let t = d.table.as_ref().expect("table");
    assert_eq!(
        t.header,
        vec!["CATEGORY", "TYPE", "INGRESS", "EGRESS", "XDP"]
    );
    assert_eq!(d.records(), 24);
    let collision = &t.rows[3];
    assert_eq!(collision.cells[1], "NAT source collision resolution failed");
    assert_eq!((collision.line, collision.end_line), (8, 9));
    let by_policy = t.rows.iter().find(|r| r.line == 11).expect("line 11");
    assert_eq!(by_policy.cells[t.column("egress").expect("EGRESS")], "11");
    let total = t.rows.last().expect("total");
    assert_eq!(total.cells, vec!["Total", "packets", "34", "22", "N/A"]);
}

#[test]
fn the_profiling_table_without_its_first_plus_is_read() {
    let d = bpf::parse(&fixture("bpf", "profiling-e2e.txt"));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.variant, Some(BpfVariant::ProfilingTable));
    let t = d.table.as_ref().expect("table");
    assert_eq!(t.header.len(), 9);
    assert_eq!(t.header[0], "IFACE");
    assert_eq!(d.records(), 7);
    assert_eq!(t.rows[1].cells[0], "eth0");
    assert_eq!(t.rows[1].cells[2], "32");
}

#[test]
fn the_routes_dump_reads_right_aligned_cidrs() {
    let d = bpf::parse(&fixture("bpf", "routes-dump.txt"));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.variant, Some(BpfVariant::RoutesDump));
    assert_eq!(d.records(), 4);
    assert_eq!(d.routes[0].cidr.to_string(), "10.65.0.0/16");
    assert_eq!(d.routes[0].flags, "remote in-pool nh 10.128.0.4");
}

#[test]
fn detect_recognises_each_dump_by_content() {
    let cases = [
        ("bpftool-prog-list.json", BpfVariant::Json),
        ("policy-dump.txt", BpfVariant::PolicyDump),
        ("policy-dump-indented.txt", BpfVariant::PolicyDump),
        ("ipsets-dump.txt", BpfVariant::IpsetsDump),
        ("conntrack-dump-annotated.txt", BpfVariant::ConntrackDump),
        ("nat-dump.txt", BpfVariant::NatDump),
        ("routes-dump.txt", BpfVariant::RoutesDump),
        ("counters-dump.txt", BpfVariant::CountersTable),
        ("profiling-e2e.txt", BpfVariant::ProfilingTable),
    ];
    for (name, v) in cases {
        assert_eq!(bpf::detect(&fixture("bpf", name)), Some(v), "{name}");
    }
    assert_eq!(bpf::detect("hello world\n"), None);
    assert_eq!(bpf::detect(""), None);
}

#[test]
fn odd_input_never_panics_any_misc_parser() {
    for text in [
        "",
        "\n",
        "[",
        "{\"id\": -1, \"name\": 5}",
        "IP set 0xzz\n  member",
        "| a | b |\n| 1 |",
        "TCP 1.2.3.4:5 -> 6.7.8.9:x  Active ago",
        "10.0.0.1 port 1 proto 2 id 3 count x local 0",
        "\t9:0\t is missing",
        "IfaceName:\n// count = x\n// count = 1",
        "1: : <",
        "nexthop via",
        "default via",
        "TRACE: :::",
        "TRACE: 2 zz x",
        "PACKET: 2",
        "é€\u{1F600}<--- a",
    ] {
        let _ = bpf::parse(text);
        let _ = bpf::detect(text);
        let _ = dmesg::parse(text);
        let _ = sysctl::parse(text);
        let _ = ip::parse_routes(text);
        let _ = ip::parse_addrs(text);
    }
}

#[test]
fn the_shared_corpus_of_bpf_dumps_parses_with_expected_record_counts() {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/bpf");
    if !dir.exists() {
        eprintln!("skipping: {} does not exist", dir.display());
        return;
    }
    let expected = [
        (
            "tigera-docs-calico-node-bpf-conntrack-dump-annotated.txt",
            BpfVariant::ConntrackDump,
            6,
        ),
        (
            "tigera-docs-calico-node-bpf-counters-dump-table.txt",
            BpfVariant::CountersTable,
            24,
        ),
        (
            "tigera-docs-calico-node-bpf-ipsets-dump.txt",
            BpfVariant::IpsetsDump,
            2,
        ),
        (
            "tigera-docs-calico-node-bpf-nat-dump.txt",
            BpfVariant::NatDump,
            8,
        ),
        (
            "tigera-docs-calico-node-bpf-policy-dump.txt",
            BpfVariant::PolicyDump,
            2,
        ),
        (
            "tigera-docs-calico-node-bpf-profiling-e2e-table-missing-first-plus.txt",
            BpfVariant::ProfilingTable,
            7,
        ),
    ];
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("read corpus dir") {
        let path = entry.expect("entry").path();
        let text = String::from_utf8_lossy(&std::fs::read(&path).expect("read")).into_owned();
        let d = bpf::parse(&text);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert!(d.variant.is_some(), "{name} not recognised");
        assert!(d.errors.is_empty(), "{name}: {:?}", d.errors);
        if let Some((_, v, n)) = expected.iter().find(|(f, _, _)| *f == name) {
            assert_eq!((d.variant, d.records()), (Some(*v), *n), "{name}");
            seen += 1;
        }
    }
    assert_eq!(seen, expected.len());
}
