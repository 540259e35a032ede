//! Kernel agreement for the packet simulator: real flows through a Felix-shaped ruleset on
//! this machine's Linux dataplane (`testdata/e2e/trace/`, see its README), the node collected
//! with the collector and read back with `Bundle::open`, and `trace::sim` run on each flow's
//! first packet. The simulator must give the verdict the kernel gave, for every flow.
//!
//! Needs root, `ip`, `iptables-restore`, `ipset` and `python3`; without them the test prints
//! why and passes.

mod common;

use std::net::IpAddr;

use calisnap::bundle::{ArtifactKind, Bundle};
use calisnap::parse::Parsed;
use calisnap::trace::sim::{Action, Hook, Packet, Verdict, simulate};
use common::netns::{Lab, LabSpec, PodSpec, Proto, e2e_dir, keep_bundle, preflight};

const NODE: &str = "trace-node";

fn lab_spec() -> LabSpec {
    let ip = |last| std::net::Ipv4Addr::new(10, 65, 0, last);
    let mut cache = PodSpec::new("shop", "cache", ip(22));
    cache.tcp_ports = vec![6379, 8080, 9000, 9001, 9002];
    cache.udp_ports = vec![5353, 5354];
    LabSpec {
        node_name: NODE.to_string(),
        pods: vec![
            PodSpec::new("shop", "frontend-a", ip(11)),
            PodSpec::new("shop", "frontend-b", ip(12)),
            PodSpec::new("shop", "backend", ip(21)),
            PodSpec::new("ops", "probe", ip(31)),
            cache,
        ],
        ipset_restore: Some(e2e_dir().join("trace/ipset-restore.txt")),
        iptables_restore: Some(e2e_dir().join("trace/iptables-restore.txt")),
    }
}

struct Flow {
    from: &'static str,
    to: &'static str,
    proto: Proto,
    port: u16,
    /// What the README says the kernel does (the matrix's claim about its own coverage).
    expect: bool,
    why: &'static str,
}

const fn f(
    from: &'static str,
    to: &'static str,
    proto: Proto,
    port: u16,
    expect: bool,
    why: &'static str,
) -> Flow {
    Flow {
        from,
        to,
        proto,
        port,
        expect,
        why,
    }
}

use Proto::{Tcp, Udp};

const FLOWS: &[Flow] = &[
    f("frontend-a", "backend", Tcp, 8080, true, "allow-frontend"),
    f("frontend-a", "backend", Udp, 5353, true, "allow-frontend"),
    f(
        "frontend-b",
        "backend",
        Tcp,
        8080,
        false,
        "missing set member",
    ),
    f(
        "frontend-b",
        "backend",
        Udp,
        5353,
        false,
        "missing set member",
    ),
    f("probe", "backend", Tcp, 8080, false, "end of tier"),
    f("probe", "backend", Udp, 5353, false, "end of tier"),
    f("probe", "frontend-a", Tcp, 8080, true, "GNP ops"),
    f("probe", "frontend-b", Tcp, 8080, true, "GNP ops"),
    f("probe", "frontend-a", Udp, 5353, false, "end of tier"),
    f("frontend-a", "frontend-b", Tcp, 8080, false, "end of tier"),
    f("backend", "probe", Tcp, 8080, true, "profiles"),
    f("backend", "probe", Udp, 5353, true, "profiles"),
    f("frontend-a", "cache", Tcp, 6379, true, "named-port set"),
    f(
        "frontend-b",
        "cache",
        Tcp,
        6379,
        false,
        "missing set member",
    ),
    f("probe", "cache", Tcp, 6379, false, "end of tier"),
    f("frontend-a", "cache", Tcp, 9000, true, "port range"),
    f("backend", "cache", Tcp, 9001, true, "port range"),
    f("probe", "cache", Tcp, 9001, false, "negated set"),
    f("frontend-a", "cache", Tcp, 9002, false, "outside the range"),
    f("probe", "cache", Udp, 5353, true, "UDP from anywhere"),
    f("frontend-a", "cache", Udp, 5354, false, "tier sec deny"),
    f(
        "frontend-a",
        "cache",
        Tcp,
        8080,
        false,
        "sec pass, default end",
    ),
    f("cache", "backend", Tcp, 8080, false, "backend ingress"),
    f("cache", "probe", Tcp, 8080, true, "egress TCP, profiles"),
    f("cache", "probe", Udp, 5353, false, "egress end of tier"),
    f("cache", "frontend-a", Tcp, 8080, false, "GNP ops"),
];

fn word(allowed: bool) -> &'static str {
    if allowed { "allow" } else { "deny" }
}

#[test]
fn the_simulator_agrees_with_the_kernel_on_every_flow_of_the_trace_lab() {
    if let Err(why) = preflight() {
        eprintln!(
            "skipping the_simulator_agrees_with_the_kernel_on_every_flow_of_the_trace_lab: {why}"
        );
        return;
    }
    assert!(FLOWS.len() >= 20);
    let lab = Lab::setup(&lab_spec()).expect("lab setup");

    // What the kernel does, flow by flow.
    let kernel: Vec<bool> = FLOWS
        .iter()
        .map(|fl| lab.try_flow(fl.from, fl.to, fl.proto, fl.port))
        .collect();

    let out = tempfile::tempdir().expect("tempdir");
    let tarball = lab.collect_node(out.path());
    keep_bundle(&tarball);
    let bundle = Bundle::open(&tarball).expect("the collector's bundle opens");
    let of_node = |kind: ArtifactKind| {
        bundle
            .artifacts
            .iter()
            .find(|a| a.kind == kind && a.node.as_deref() == Some(NODE))
    };
    let ipt = match of_node(ArtifactKind::IptablesSave).map(|a| &a.parsed) {
        Some(Parsed::Iptables(d)) => d,
        other => panic!("no parsed iptables-save for {NODE}: {other:?}"),
    };
    let sets = match of_node(ArtifactKind::IpsetSave).map(|a| &a.parsed) {
        Some(Parsed::Ipset(d)) => d,
        other => panic!("no parsed ipset-save for {NODE}: {other:?}"),
    };
    assert!(ipt.errors.is_empty(), "{:?}", ipt.errors);
    assert!(sets.errors.is_empty(), "{:?}", sets.errors);

    let mut table = String::from(
        "\n| # | flow | kernel | sim | deciding rule | why |\n|---|---|---|---|---|---|\n",
    );
    let mut wrong = Vec::new();
    for (i, (fl, &kernel_allowed)) in FLOWS.iter().zip(&kernel).enumerate() {
        let src = lab.pod(fl.from);
        let dst = lab.pod(fl.to);
        let (s, d): (IpAddr, IpAddr) = (src.spec.ip.into(), dst.spec.ip.into());
        let pkt = match fl.proto {
            Proto::Tcp => Packet::tcp(s, d, fl.port),
            Proto::Udp => Packet::udp(s, d, fl.port),
        }
        .with_in_iface(&src.iface)
        .with_out_iface(&dst.iface);
        let r = simulate(ipt, Some(sets), &pkt, Hook::Forward);
        let mut deciding = r
            .deciding_step()
            .map(|st| {
                format!(
                    "{} {} line {} ({:?})",
                    st.table, st.chain, st.line, st.action
                )
            })
            .unwrap_or_default();
        // For an allow, also the policy or profile rule that set the accept mark.
        if r.verdict == Verdict::Allow
            && let Some(st) = r.path.iter().rev().find(|st| {
                st.action == Action::Mark
                    && st.chain.starts_with("cali-p")
                    && st.mark & 0x10000 != 0
            })
        {
            deciding.push_str(&format!(" after {} line {}", st.chain, st.line));
        }
        table.push_str(&format!(
            "| {} | {} → {} {}/{} | {} | {} | {} | {} |\n",
            i + 1,
            fl.from,
            fl.to,
            fl.proto.as_str(),
            fl.port,
            word(kernel_allowed),
            r.verdict,
            deciding,
            fl.why
        ));
        let want = if kernel_allowed {
            Verdict::Allow
        } else {
            Verdict::Deny
        };
        if r.verdict != want {
            wrong.push(format!(
                "flow {}: kernel {}, simulator {} (unknowns {:?}, notes {:?})",
                i + 1,
                word(kernel_allowed),
                r.verdict,
                r.unknowns,
                r.notes
            ));
        }
        if kernel_allowed != fl.expect {
            wrong.push(format!(
                "flow {}: the kernel did {}, the matrix says {} ({})",
                i + 1,
                word(kernel_allowed),
                word(fl.expect),
                fl.why
            ));
        }
    }
    println!("{table}");
    assert!(wrong.is_empty(), "{table}\n{wrong:#?}");
}
