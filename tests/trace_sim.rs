//! The packet simulator (`calisnap::trace::sim`) against small hand-written rulesets in
//! `testdata/trace/` (one per piece of netfilter semantics) and against the demo bundle's
//! node-1 dump.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use calisnap::parse::{ipset, iptables_save};
use calisnap::trace::sim::{
    Action, CtState, Hook, Packet, SimOptions, SimResult, Step, Verdict, simulate, simulate_with,
};

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}

fn load(rel: &str) -> iptables_save::Dump {
    let text = fs::read_to_string(testdata(rel)).expect("fixture");
    let dump = iptables_save::parse(&text);
    assert!(dump.errors.is_empty(), "{rel}: {:?}", dump.errors);
    dump
}

fn load_sets(rel: &str) -> ipset::Dump {
    let text = fs::read_to_string(testdata(rel)).expect("fixture");
    let dump = ipset::parse(&text);
    assert!(dump.errors.is_empty(), "{rel}: {:?}", dump.errors);
    dump
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn tcp(src: &str, dst: &str, dport: u16) -> Packet {
    Packet::tcp(ip(src), ip(dst), dport)
}

fn udp(src: &str, dst: &str, dport: u16) -> Packet {
    Packet::udp(ip(src), ip(dst), dport)
}

/// The verdict plus the whole path, for assertion messages.
fn show(r: &SimResult) -> String {
    let mut s = format!("verdict {:?}, mark {:#x}\n", r.verdict, r.final_mark);
    for st in &r.path {
        s.push_str(&format!(
            "  {:?} {} {} #{:?} line {} mark {:#x} {:?}\n",
            st.action, st.table, st.chain, st.rule_index, st.line, st.mark, st.note
        ));
    }
    s.push_str(&format!(
        "  unknowns {:?}\n  notes {:?}\n",
        r.unknowns, r.notes
    ));
    s
}

/// The lines of the steps with this action, in path order.
fn lines_of(r: &SimResult, action: Action) -> Vec<usize> {
    r.path
        .iter()
        .filter(|s| s.action == action)
        .map(|s| s.line)
        .collect()
}

/// Where the packet's fate was sealed (the simulator's deciding step).
fn end(r: &SimResult) -> &Step {
    r.deciding_step().expect("a path")
}

// ---------------------------------------------------------------------------------------------
// Jumps, gotos, returns, policies
// ---------------------------------------------------------------------------------------------

#[test]
fn return_from_a_jumped_chain_resumes_in_the_caller() {
    let d = load("trace/jump-goto-return.txt");
    let r = simulate(&d, None, &tcp("10.0.0.1", "10.0.0.2", 1), Hook::Forward);
    assert_eq!(r.verdict, Verdict::Allow, "{}", show(&r));
    // outer's MARK ran after inner returned, then FORWARD's mark test accepted.
    assert_eq!(r.final_mark, 0x1);
    assert_eq!(lines_of(&r, Action::Jump), vec![11, 13]);
    assert_eq!(lines_of(&r, Action::Return), vec![16]);
    assert_eq!(lines_of(&r, Action::Mark), vec![15]);
    assert_eq!(end(&r).line, 12);
    assert_eq!(end(&r).action, Action::Accept);
}

#[test]
fn return_from_a_goto_chain_skips_the_chain_that_did_the_goto() {
    let d = load("trace/jump-goto-return.txt");
    let r = simulate(&d, None, &tcp("10.0.0.1", "10.0.0.2", 2), Hook::Forward);
    // inner's RETURN goes back to FORWARD (the caller of outer), so outer's MARK never runs
    // and FORWARD's policy drops.
    assert_eq!(r.verdict, Verdict::Deny, "{}", show(&r));
    assert_eq!(r.final_mark, 0);
    assert_eq!(lines_of(&r, Action::Goto), vec![14]);
    assert!(lines_of(&r, Action::Mark).is_empty());
    let end = end(&r);
    assert_eq!(
        (end.action, end.chain.as_str(), end.rule_index),
        (Action::Policy, "FORWARD", None)
    );
    assert_eq!(
        end.line, 4,
        "the policy's evidence is the chain declaration"
    );
    assert_eq!(end.text, ":FORWARD DROP");
}

#[test]
fn return_in_a_built_in_chain_applies_its_policy() {
    let d = load("trace/jump-goto-return.txt");
    let pkt = Packet::new(ip("10.0.0.1"), ip("10.0.0.2"), Packet::ICMP);
    let r = simulate(&d, None, &pkt, Hook::Forward);
    assert_eq!(r.verdict, Verdict::Deny, "{}", show(&r));
    assert_eq!(lines_of(&r, Action::Return), vec![9]);
    assert_eq!(end(&r).action, Action::Policy);
}

#[test]
fn falling_off_a_chain_reached_by_goto_from_a_built_in_chain_applies_the_policy() {
    let d = load("trace/jump-goto-return.txt");
    let r = simulate(&d, None, &udp("10.0.0.1", "10.0.0.2", 53), Hook::Forward);
    assert_eq!(r.verdict, Verdict::Deny, "{}", show(&r));
    let actions: Vec<Action> = r
        .path
        .iter()
        .filter(|s| s.table == "filter")
        .map(|s| s.action)
        .collect();
    assert_eq!(
        actions,
        vec![Action::Goto, Action::EndOfChain, Action::Policy]
    );
}

#[test]
fn accept_ends_only_its_table_and_the_next_table_still_decides() {
    let d = load("trace/policy.txt");
    let r = simulate(&d, None, &tcp("10.0.0.1", "10.0.0.2", 80), Hook::Forward);
    assert_eq!(r.verdict, Verdict::Deny, "{}", show(&r));
    assert_eq!(
        lines_of(&r, Action::Accept),
        vec![8],
        "mangle accepted first"
    );
    let end = end(&r);
    assert_eq!((end.table.as_str(), end.action), ("filter", Action::Policy));
    assert_eq!(end.counters.map(|c| c.packets), Some(7));

    let r = simulate(&d, None, &tcp("10.0.0.1", "10.0.0.2", 443), Hook::Forward);
    assert_eq!(r.verdict, Verdict::Allow, "{}", show(&r));
    assert_eq!(lines_of(&r, Action::Accept), vec![8, 16]);
    assert_eq!(r.deciding_step().map(|s| s.line), Some(16));
}

#[test]
fn tables_missing_from_the_dump_are_skipped_and_said_so_in_the_path() {
    let d = load("trace/policy.txt");
    let r = simulate(&d, None, &tcp("10.0.0.1", "10.0.0.2", 443), Hook::Forward);
    let skipped: Vec<(&str, &str)> = r
        .path
        .iter()
        .filter(|s| s.action == Action::Skipped)
        .map(|s| (s.table.as_str(), s.chain.as_str()))
        .collect();
    assert_eq!(
        skipped,
        vec![
            ("raw", "PREROUTING"),
            ("nat", "PREROUTING"),
            ("security", "FORWARD"),
            ("nat", "POSTROUTING"),
        ]
    );
    assert!(
        r.path
            .iter()
            .filter(|s| s.action == Action::Skipped)
            .all(|s| s.note.as_deref().is_some_and(|n| n.contains("no `*")))
    );
}

#[test]
fn reject_is_a_deny_and_the_input_hook_uses_the_input_chains() {
    let d = load("trace/policy.txt");
    let r = simulate(&d, None, &tcp("10.0.0.1", "10.0.0.2", 22), Hook::Input);
    assert_eq!(r.verdict, Verdict::Deny, "{}", show(&r));
    assert_eq!((end(&r).action, end(&r).line), (Action::Reject, 17));
    let r = simulate(&d, None, &tcp("10.0.0.1", "10.0.0.2", 23), Hook::Input);
    assert_eq!(r.verdict, Verdict::Allow, "{}", show(&r));
    assert!(r.path.iter().all(|s| s.chain != "FORWARD"));
}

// ---------------------------------------------------------------------------------------------
// Marks
// ---------------------------------------------------------------------------------------------

#[test]
fn marks_set_in_one_table_are_tested_in_the_next_with_masks_and_negation() {
    let d = load("trace/marks.txt");
    let pkt = tcp("10.65.0.5", "10.65.1.9", 80)
        .with_in_iface("cali1234567890a")
        .with_out_iface("vxlan.calico");
    let r = simulate(&d, None, &pkt, Hook::Forward);
    assert_eq!(r.verdict, Verdict::Allow, "{}", show(&r));
    let marks: Vec<(usize, u32)> = r
        .path
        .iter()
        .filter(|s| s.action == Action::Mark)
        .map(|s| (s.line, s.mark))
        .collect();
    // --set-xmark 0x40000/0x40000; --or-mark 0x100; --set-xmark 0x10000/0x50000 clears 0x40000
    // and sets 0x10000; `! --mark 0x0/0x100` holds, so --and-mark clears 0x100.
    assert_eq!(
        marks,
        vec![(8, 0x40000), (9, 0x40100), (17, 0x10100), (18, 0x10000)]
    );
    assert_eq!(r.final_mark, 0x10000);
    assert_eq!(end(&r).line, 19);
}

#[test]
fn a_mark_without_a_mask_compares_every_bit() {
    let d = load("trace/marks.txt");
    let pkt = tcp("192.0.2.1", "10.65.1.9", 80)
        .with_in_iface("eth0")
        .with_out_iface("cali1");
    let r = simulate(&d, None, &pkt, Hook::Forward);
    assert_eq!(r.verdict, Verdict::Allow, "{}", show(&r));
    assert_eq!(end(&r).line, 20);
    let r = simulate(&d, None, &pkt.with_mark(0x5), Hook::Forward);
    assert_eq!(r.verdict, Verdict::Deny, "{}", show(&r));
    assert_eq!(r.final_mark, 0x5);
}

// ---------------------------------------------------------------------------------------------
// IP sets
// ---------------------------------------------------------------------------------------------

#[test]
fn set_members_decide_src_and_dst_dst_matches() {
    let d = load("trace/sets.txt");
    let s = load_sets("trace/sets.ipset");
    let r = simulate(
        &d,
        Some(&s),
        &tcp("10.65.0.11", "10.65.0.21", 6379),
        Hook::Forward,
    );
    assert_eq!(r.verdict, Verdict::Allow, "{}", show(&r));
    assert_eq!(end(&r).line, 7);
    // Right address, port not in the hash:ip,port set.
    let r = simulate(
        &d,
        Some(&s),
        &tcp("10.65.0.11", "10.65.0.21", 6380),
        Hook::Forward,
    );
    assert_eq!(r.verdict, Verdict::Deny, "{}", show(&r));
    // Source not a member.
    let r = simulate(
        &d,
        Some(&s),
        &tcp("10.65.0.13", "10.65.0.21", 6379),
        Hook::Forward,
    );
    assert_eq!(r.verdict, Verdict::Deny, "{}", show(&r));
    // hash:net containment.
    let r = simulate(
        &d,
        Some(&s),
        &tcp("192.0.2.77", "10.65.0.21", 6379),
        Hook::Forward,
    );
    assert_eq!(
        (r.verdict, end(&r).line),
        (Verdict::Deny, 6),
        "{}",
        show(&r)
    );
}

#[test]
fn a_negated_set_match_holds_for_non_members_and_nomatch_entries_carve_holes() {
    let d = load("trace/sets.txt");
    let s = load_sets("trace/sets.ipset");
    let r = simulate(
        &d,
        Some(&s),
        &udp("10.65.0.5", "10.65.0.21", 5353),
        Hook::Forward,
    );
    assert_eq!(
        (r.verdict, end(&r).line),
        (Verdict::Allow, 9),
        "{}",
        show(&r)
    );
    // 10.65.0.200 is in 10.65.0.0/24 but the more specific 10.65.0.128/25 is `nomatch`.
    let r = simulate(
        &d,
        Some(&s),
        &udp("10.65.0.200", "10.65.0.21", 5353),
        Hook::Forward,
    );
    assert_eq!(
        (r.verdict, end(&r).line),
        (Verdict::Deny, 8),
        "{}",
        show(&r)
    );
    let r = simulate(
        &d,
        Some(&s),
        &udp("172.16.0.1", "10.65.0.21", 5353),
        Hook::Forward,
    );
    assert_eq!(
        (r.verdict, end(&r).line),
        (Verdict::Deny, 8),
        "{}",
        show(&r)
    );
}

#[test]
fn a_set_missing_from_the_dump_makes_the_verdict_unknown_when_it_matters() {
    let d = load("trace/sets.txt");
    let s = load_sets("trace/sets.ipset");
    let r = simulate(
        &d,
        Some(&s),
        &tcp("10.65.0.5", "10.65.0.21", 9001),
        Hook::Forward,
    );
    assert_eq!(r.verdict, Verdict::Unknown, "{}", show(&r));
    assert_eq!(r.unknowns.len(), 1, "{:?}", r.unknowns);
    assert!(
        r.unknowns[0].contains("line 11") && r.unknowns[0].contains("not-captured"),
        "{:?}",
        r.unknowns
    );
    // The path assumes the set does not match and says what the other branch did.
    let undecided = r
        .path
        .iter()
        .find(|s| s.action == Action::Undecided)
        .expect("an undecided step");
    assert_eq!(undecided.line, 11);
    let note = undecided.note.as_deref().unwrap_or("");
    assert!(note.contains("Had it matched: allow"), "{note}");
    assert_eq!(end(&r).action, Action::Policy);
}

#[test]
fn a_set_missing_from_the_dump_does_not_matter_when_both_answers_deny() {
    let d = load("trace/sets.txt");
    let s = load_sets("trace/sets.ipset");
    let r = simulate(
        &d,
        Some(&s),
        &tcp("10.65.0.5", "10.65.0.21", 9000),
        Hook::Forward,
    );
    assert_eq!(r.verdict, Verdict::Deny, "{}", show(&r));
    assert_eq!(r.unknowns.len(), 1, "the criterion is still reported");
}

#[test]
fn without_an_ipset_dump_every_set_criterion_is_undecided() {
    let d = load("trace/sets.txt");
    let r = simulate(
        &d,
        None,
        &tcp("10.65.0.11", "10.65.0.21", 6379),
        Hook::Forward,
    );
    assert_eq!(r.verdict, Verdict::Unknown, "{}", show(&r));
    assert!(r.unknowns.iter().any(|u| u.contains("no ipset dump")));
}

// ---------------------------------------------------------------------------------------------
// Ports and protocols
// ---------------------------------------------------------------------------------------------

#[test]
fn multiport_lists_and_ranges_match_inclusively() {
    let d = load("trace/ports.txt");
    for (port, verdict) in [
        (22, Verdict::Allow),
        (8000, Verdict::Allow),
        (8050, Verdict::Allow),
        (8099, Verdict::Allow),
        (9443, Verdict::Allow),
        (8100, Verdict::Deny),
        (21, Verdict::Deny),
    ] {
        let pkt = tcp("10.0.0.1", "10.0.0.2", port).with_sport(40000);
        let r = simulate(&d, None, &pkt, Hook::Forward);
        assert_eq!(r.verdict, verdict, "port {port}: {}", show(&r));
    }
}

#[test]
fn a_negated_port_range_holds_outside_it() {
    let d = load("trace/ports.txt");
    let r = simulate(&d, None, &udp("10.0.0.1", "10.0.0.2", 53), Hook::Forward);
    assert_eq!(r.verdict, Verdict::Deny, "{}", show(&r));
    let r = simulate(&d, None, &udp("10.0.0.1", "10.0.0.2", 5353), Hook::Forward);
    assert_eq!(
        (r.verdict, end(&r).line),
        (Verdict::Allow, 7),
        "{}",
        show(&r)
    );
}

#[test]
fn ports_matches_either_direction_and_source_ports_are_checked() {
    let d = load("trace/ports.txt");
    let pkt = tcp("10.0.0.1", "10.0.0.2", 80).with_sport(7000);
    let r = simulate(&d, None, &pkt, Hook::Forward);
    assert_eq!(
        (r.verdict, end(&r).line),
        (Verdict::Allow, 8),
        "{}",
        show(&r)
    );
    let pkt = tcp("10.0.0.1", "10.0.0.2", 6000).with_sport(2000);
    let r = simulate(&d, None, &pkt, Hook::Forward);
    assert_eq!(
        (r.verdict, end(&r).line),
        (Verdict::Allow, 9),
        "{}",
        show(&r)
    );
    let pkt = tcp("10.0.0.1", "10.0.0.2", 6000).with_sport(80);
    let r = simulate(&d, None, &pkt, Hook::Forward);
    assert_eq!(r.verdict, Verdict::Deny, "{}", show(&r));
    let pkt = Packet {
        dport: Some(3868),
        ..Packet::new(ip("10.0.0.1"), ip("10.0.0.2"), Packet::SCTP)
    };
    let r = simulate(&d, None, &pkt, Hook::Forward);
    assert_eq!(r.verdict, Verdict::Allow, "{}", show(&r));
}

#[test]
fn a_source_port_the_caller_did_not_give_is_undecided_where_a_rule_needs_it() {
    let d = load("trace/ports.txt");
    // `--ports 7000` could match on the unknown source port: that rule would accept.
    let r = simulate(&d, None, &tcp("10.0.0.1", "10.0.0.2", 8100), Hook::Forward);
    assert_eq!(r.verdict, Verdict::Unknown, "{}", show(&r));
    assert!(
        r.unknowns
            .iter()
            .any(|u| u.contains("line 8") && u.contains("source port")),
        "{:?}",
        r.unknowns
    );
    // Where the destination port already fails the rule, the source port does not matter.
    let r = simulate(&d, None, &tcp("10.0.0.1", "10.0.0.2", 22), Hook::Forward);
    assert_eq!(r.verdict, Verdict::Allow, "{}", show(&r));
    assert!(r.unknowns.is_empty(), "{:?}", r.unknowns);
}

// ---------------------------------------------------------------------------------------------
// Interfaces
// ---------------------------------------------------------------------------------------------

#[test]
fn interface_wildcards_match_prefixes_and_plus_matches_any() {
    let d = load("trace/interfaces.txt");
    let fwd = |i: &str, o: &str, p: Packet| {
        simulate(
            &d,
            None,
            &p.with_in_iface(i).with_out_iface(o),
            Hook::Forward,
        )
    };
    let r = fwd(
        "cali0e8ee4fc632",
        "vxlan.calico",
        tcp("10.0.0.1", "10.0.0.2", 80),
    );
    assert_eq!(
        (r.verdict, end(&r).line),
        (Verdict::Allow, 8),
        "{}",
        show(&r)
    );
    let r = fwd("eth0", "cali12345678901", tcp("10.0.0.1", "10.0.0.2", 80));
    assert_eq!(
        (r.verdict, end(&r).line),
        (Verdict::Allow, 9),
        "{}",
        show(&r)
    );
    let r = fwd("eth0", "cali99", tcp("10.0.0.1", "10.0.0.2", 80));
    assert_eq!(r.verdict, Verdict::Deny, "{}", show(&r));
    let r = fwd("eth0", "cali99", udp("10.0.0.1", "10.0.0.2", 53));
    assert_eq!(
        (r.verdict, end(&r).line),
        (Verdict::Allow, 10),
        "{}",
        show(&r)
    );
    let r = fwd("lo", "cali99", udp("10.0.0.1", "10.0.0.2", 53));
    assert_eq!(r.verdict, Verdict::Deny, "{}", show(&r));
}

#[test]
fn where_the_kernel_has_no_interface_a_named_one_never_matches_and_plus_always_does() {
    let d = load("trace/interfaces.txt");
    // INPUT has no output device: `-o eth0` cannot match.
    let pkt = tcp("10.65.0.5", "10.0.0.11", 9099).with_in_iface("cali1");
    let r = simulate(&d, None, &pkt, Hook::Input);
    assert_eq!(
        (r.verdict, end(&r).line),
        (Verdict::Allow, 7),
        "{}",
        show(&r)
    );
    assert!(r.unknowns.is_empty());
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("no output interface in INPUT")),
        "{:?}",
        r.notes
    );
    let pkt = tcp("10.65.0.5", "10.0.0.11", 9099).with_in_iface("eth0");
    let r = simulate(&d, None, &pkt, Hook::Input);
    assert_eq!(r.verdict, Verdict::Deny, "{}", show(&r));
    // OUTPUT has no input device: `-i +` still matches (an empty mask), as in the kernel.
    let pkt = tcp("10.0.0.11", "10.0.0.12", 10250).with_out_iface("eth0");
    let r = simulate(&d, None, &pkt, Hook::Output);
    assert_eq!(
        (r.verdict, end(&r).line),
        (Verdict::Allow, 11),
        "{}",
        show(&r)
    );
    let pkt = tcp("10.0.0.11", "10.0.0.12", 443).with_out_iface("eth1");
    let r = simulate(&d, None, &pkt, Hook::Output);
    assert_eq!(
        (r.verdict, end(&r).line),
        (Verdict::Allow, 12),
        "{}",
        show(&r)
    );
    let pkt = tcp("10.0.0.11", "10.65.0.5", 443).with_out_iface("cali1");
    let r = simulate(&d, None, &pkt, Hook::Output);
    assert_eq!(r.verdict, Verdict::Deny, "{}", show(&r));
}

#[test]
fn an_interface_the_caller_did_not_give_is_undecided() {
    let d = load("trace/interfaces.txt");
    let pkt = tcp("10.0.0.1", "10.0.0.2", 80).with_out_iface("vxlan.calico");
    let r = simulate(&d, None, &pkt, Hook::Forward);
    assert_eq!(r.verdict, Verdict::Unknown, "{}", show(&r));
    assert!(
        r.unknowns
            .iter()
            .any(|u| u.contains("-i cali+") && u.contains("input interface was not given")),
        "{:?}",
        r.unknowns
    );
}

// ---------------------------------------------------------------------------------------------
// Conntrack
// ---------------------------------------------------------------------------------------------

#[test]
fn a_new_connection_passes_the_new_rule_and_raw_sees_no_conntrack_entry_yet() {
    let d = load("trace/conntrack.txt");
    let r = simulate(&d, None, &tcp("10.0.0.1", "10.0.0.2", 80), Hook::Forward);
    assert_eq!(r.verdict, Verdict::Allow, "{}", show(&r));
    // raw's `--ctstate NEW -j DROP` cannot match: before conntrack the state is INVALID.
    assert!(r.path.iter().all(|s| s.line != 5));
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("raw runs before conntrack"))
    );
    assert_eq!(end(&r).line, 28);
}

#[test]
fn established_and_invalid_packets_take_their_own_rules_and_skip_nat() {
    let d = load("trace/conntrack.txt");
    let pkt = tcp("10.0.0.1", "10.0.0.2", 8443).with_ct_state(CtState::Established);
    let r = simulate(&d, None, &pkt, Hook::Forward);
    assert_eq!(
        (r.verdict, end(&r).line),
        (Verdict::Allow, 24),
        "{}",
        show(&r)
    );
    assert!(
        r.path
            .iter()
            .any(|s| s.table == "nat" && s.action == Action::Skipped),
        "{}",
        show(&r)
    );
    let pkt = tcp("10.0.0.1", "10.0.0.2", 80).with_ct_state(CtState::Invalid);
    let r = simulate(&d, None, &pkt, Hook::Forward);
    assert_eq!(
        (r.verdict, end(&r).line),
        (Verdict::Deny, 25),
        "{}",
        show(&r)
    );
}

#[test]
fn the_dnat_state_holds_only_after_a_dnat_rule_fired() {
    let d = load("trace/conntrack.txt");
    let r = simulate(&d, None, &tcp("10.0.0.1", "10.0.0.2", 8443), Hook::Forward);
    assert_eq!(r.verdict, Verdict::Allow, "{}", show(&r));
    assert_eq!(lines_of(&r, Action::Nat), vec![16]);
    assert_eq!(end(&r).line, 26);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("rewrites the destination"))
    );
    // Port 80: no DNAT, so `--ctstate DNAT` is false and the NEW rule decides.
    let r = simulate(&d, None, &tcp("10.0.0.1", "10.0.0.2", 80), Hook::Forward);
    assert!(lines_of(&r, Action::Nat).is_empty());
}

#[test]
fn notrack_makes_the_packet_untracked_and_nat_is_not_consulted() {
    let d = load("trace/conntrack.txt");
    let r = simulate(&d, None, &udp("10.0.0.1", "10.0.0.2", 4789), Hook::Forward);
    assert_eq!(
        (r.verdict, end(&r).line),
        (Verdict::Allow, 27),
        "{}",
        show(&r)
    );
    let nat: Vec<&str> = r
        .path
        .iter()
        .filter(|s| s.table == "nat")
        .filter_map(|s| s.note.as_deref())
        .collect();
    assert!(
        nat.iter().all(|n| n.contains("untracked")) && nat.len() == 2,
        "{nat:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// What cannot be decided offline
// ---------------------------------------------------------------------------------------------

#[test]
fn rpfilter_is_undecided_and_makes_a_workload_flow_unknown() {
    let d = load("trace/undecided.txt");
    let pkt = tcp("10.65.0.5", "10.65.0.21", 7)
        .with_in_iface("cali1")
        .with_out_iface("cali2");
    let r = simulate(&d, None, &pkt, Hook::Forward);
    assert_eq!(r.verdict, Verdict::Unknown, "{}", show(&r));
    assert!(r.unknowns.iter().any(|u| u.contains("rpfilter")));
    let first = r
        .path
        .iter()
        .find(|s| s.action == Action::Undecided)
        .expect("undecided rpfilter");
    assert_eq!((first.table.as_str(), first.line), ("raw", 5));
    assert!(
        first
            .note
            .as_deref()
            .is_some_and(|n| n.contains("Had it matched: deny")),
        "{:?}",
        first.note
    );
    // The path itself (rpfilter assumed to pass) ends accepted.
    assert_eq!(end(&r).line, 14);
}

#[test]
fn an_undecided_criterion_that_cannot_change_the_outcome_leaves_the_verdict_decided() {
    let d = load("trace/undecided.txt");
    // Not from cali+: the rpfilter rule fails on `-i` whatever rpfilter says. The physdev
    // rule only logs, so either answer ends in the same ACCEPT.
    let pkt = tcp("192.0.2.5", "10.65.0.21", 7)
        .with_in_iface("eth0")
        .with_out_iface("cali2");
    let r = simulate(&d, None, &pkt, Hook::Forward);
    assert_eq!(r.verdict, Verdict::Allow, "{}", show(&r));
    assert_eq!(r.unknowns.len(), 1, "{:?}", r.unknowns);
    assert!(r.unknowns[0].contains("physdev"));
}

#[test]
fn addrtype_local_is_decided_from_the_nodes_addresses_when_given() {
    let d = load("trace/undecided.txt");
    let pkt = tcp("192.0.2.5", "10.65.0.21", 9)
        .with_in_iface("eth0")
        .with_out_iface("cali2");
    let r = simulate(&d, None, &pkt, Hook::Forward);
    assert_eq!(r.verdict, Verdict::Unknown, "{}", show(&r));
    assert!(r.unknowns.iter().any(|u| u.contains("addrtype")));

    let node = SimOptions {
        local_addrs: Some(vec![ip("10.0.0.11")]),
        ..SimOptions::default()
    };
    let r = simulate_with(&d, None, &pkt, Hook::Forward, &node);
    assert_eq!(
        (r.verdict, end(&r).line),
        (Verdict::Allow, 17),
        "{}",
        show(&r)
    );
    assert!(r.unknowns.is_empty(), "{:?}", r.unknowns);

    let to_node = tcp("192.0.2.5", "10.0.0.11", 9)
        .with_in_iface("eth0")
        .with_out_iface("cali2");
    let r = simulate_with(&d, None, &to_node, Hook::Forward, &node);
    assert_eq!(
        (r.verdict, end(&r).line),
        (Verdict::Deny, 15),
        "{}",
        show(&r)
    );
}

#[test]
fn an_unknown_module_is_undecided() {
    let d = load("trace/undecided.txt");
    let node = SimOptions {
        local_addrs: Some(vec![ip("10.0.0.11")]),
        ..SimOptions::default()
    };
    let pkt = tcp("192.0.2.5", "10.65.0.21", 8)
        .with_in_iface("eth0")
        .with_out_iface("cali2");
    let r = simulate_with(&d, None, &pkt, Hook::Forward, &node);
    assert_eq!(r.verdict, Verdict::Unknown, "{}", show(&r));
    assert!(
        r.unknowns
            .iter()
            .any(|u| u.contains("line 16") && u.contains("statistic")),
        "{:?}",
        r.unknowns
    );
}

#[test]
fn a_jump_loop_in_a_dump_ends_unknown_instead_of_hanging() {
    let dump = iptables_save::parse(
        "*filter\n:FORWARD ACCEPT [0:0]\n:a - [0:0]\n:b - [0:0]\n-A FORWARD -j a\n\
         -A a -j b\n-A b -j a\nCOMMIT\n",
    );
    let r = simulate(&dump, None, &tcp("10.0.0.1", "10.0.0.2", 80), Hook::Forward);
    assert_eq!(r.verdict, Verdict::Unknown, "{}", show(&r));
    assert_eq!(end(&r).action, Action::Stop);
    let dump = iptables_save::parse(
        "*filter\n:FORWARD ACCEPT [0:0]\n:a - [0:0]\n-A FORWARD -j a\n-A a -g a\nCOMMIT\n",
    );
    let opts = SimOptions {
        max_steps: 10_000,
        ..SimOptions::default()
    };
    let r = simulate_with(
        &dump,
        None,
        &tcp("10.0.0.1", "10.0.0.2", 80),
        Hook::Forward,
        &opts,
    );
    assert_eq!(r.verdict, Verdict::Unknown);
    assert!(r.notes.iter().any(|n| n.contains("gave up")));
}

#[test]
fn an_ipv6_dump_refuses_an_ipv4_packet() {
    let dump = iptables_save::parse(
        "# Generated by ip6tables-save v1.8.9 (nf_tables) on Tue Nov 25 14:00:00 2026\n\
         *filter\n:FORWARD DROP [0:0]\nCOMMIT\n",
    );
    let r = simulate(&dump, None, &tcp("10.0.0.1", "10.0.0.2", 80), Hook::Forward);
    assert_eq!(r.verdict, Verdict::Unknown);
    assert!(r.notes[0].contains("ip6tables"));
}

// ---------------------------------------------------------------------------------------------
// Real dumps of ../shared/corpus
// ---------------------------------------------------------------------------------------------

fn corpus_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/iptables");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: {} does not exist", dir.display());
        None
    }
}

#[test]
fn every_corpus_dump_simulates_and_every_unknown_verdict_says_why() {
    let Some(dir) = corpus_dir() else { return };
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("corpus dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let ifaces = [
        (Hook::Forward, Some("cali1234"), Some("vxlan.calico")),
        (Hook::Forward, Some("eth0"), Some("cali99")),
        (Hook::Forward, None, None),
        (Hook::Input, Some("eth0"), None),
        (Hook::Output, None, Some("eth0")),
    ];
    let packets = [
        tcp("10.65.0.5", "10.65.1.9", 80),
        udp("131.159.14.5", "10.0.0.1", 53),
        Packet::new(ip("10.0.0.1"), ip("224.0.0.5"), 89),
        Packet {
            icmp_type: Some(8),
            icmp_code: Some(0),
            ..Packet::new(ip("10.0.0.1"), ip("10.0.0.2"), Packet::ICMP)
        },
    ];
    for f in &files {
        let dump = iptables_save::parse(&fs::read_to_string(f).expect("corpus file"));
        for (hook, i, o) in ifaces {
            for p in &packets {
                let mut p = p.clone();
                p.in_iface = i.map(str::to_string);
                p.out_iface = o.map(str::to_string);
                let r = simulate(&dump, None, &p, hook);
                assert!(!r.path.is_empty(), "{}: empty path", f.display());
                assert!(r.deciding_step().is_some());
                if r.verdict == Verdict::Unknown {
                    assert!(
                        !r.unknowns.is_empty() || !r.notes.is_empty(),
                        "{}: unknown without a reason\n{}",
                        f.display(),
                        show(&r)
                    );
                }
            }
        }
    }
}

#[test]
fn calico_fv_dump_drops_an_unknown_workload_interface_whatever_rpfilter_says() {
    let Some(dir) = corpus_dir() else { return };
    let text = fs::read_to_string(dir.join("calico-fv-cali-iptables-dump.txt")).expect("fixture");
    let dump = iptables_save::parse(&text);
    let pkt = tcp("10.65.0.5", "10.0.0.1", 22).with_in_iface("cali1234");
    let r = simulate(&dump, None, &pkt, Hook::Input);
    assert_eq!(r.verdict, Verdict::Deny, "{}", show(&r));
    assert!(r.unknowns.iter().any(|u| u.contains("rpfilter")));
    let end = end(&r);
    assert_eq!(end.chain, "cali-from-wl-dispatch");
    assert!(end.text.contains("Unknown interface"));
}

#[test]
fn calico_fv_dump_vxlan_to_the_node_depends_on_whether_the_address_is_local() {
    let Some(dir) = corpus_dir() else { return };
    let text = fs::read_to_string(dir.join("calico-fv-cali-iptables-dump.txt")).expect("fixture");
    let dump = iptables_save::parse(&text);
    let pkt = udp("192.0.2.9", "10.0.0.1", 4789).with_in_iface("eth0");
    // The VXLAN packet is not tracked (raw NOTRACK), so nat is skipped; the addrtype
    // criterion of "Drop IPv4 VXLAN packets from non-allowed hosts" needs the node's addresses.
    let r = simulate(&dump, None, &pkt, Hook::Input);
    assert_eq!(r.verdict, Verdict::Unknown, "{}", show(&r));
    let node = SimOptions {
        local_addrs: Some(vec![ip("10.0.0.1")]),
        ..SimOptions::default()
    };
    let r = simulate_with(&dump, None, &pkt, Hook::Input, &node);
    assert_eq!(r.verdict, Verdict::Deny, "{}", show(&r));
    assert!(
        end(&r)
            .text
            .contains("Drop IPv4 VXLAN packets from non-allowed hosts")
    );
    assert!(
        r.path
            .iter()
            .any(|s| s.table == "nat" && s.action == Action::Skipped)
    );
}

// ---------------------------------------------------------------------------------------------
// The demo bundle
// ---------------------------------------------------------------------------------------------

const DEMO_NODE1: &str = "bundles/calico-bundle-demo-20261125T140215Z/nodes/node-1";
const WEB_VETH: &str = "cali46b6bee22de";
const CLIENT_VETH: &str = "cali0e8ee4fc632";

fn demo() -> (iptables_save::Dump, ipset::Dump) {
    (
        load(&format!("{DEMO_NODE1}/iptables-save.txt")),
        load_sets(&format!("{DEMO_NODE1}/ipset-save.txt")),
    )
}

#[test]
fn demo_allowed_pod_reaches_web_through_the_trace_test_policy() {
    let (d, s) = demo();
    for in_iface in ["vxlan.calico", "eth0"] {
        let pkt = tcp("10.65.1.6", "10.65.0.7", 80)
            .with_in_iface(in_iface)
            .with_out_iface(WEB_VETH);
        let r = simulate(&d, Some(&s), &pkt, Hook::Forward);
        assert_eq!(r.verdict, Verdict::Allow, "{in_iface}: {}", show(&r));
        assert!(r.unknowns.is_empty(), "{:?}", r.unknowns);
        let chains: Vec<&str> = r.path.iter().map(|s| s.chain.as_str()).collect();
        assert!(chains.contains(&"cali-to-wl-dispatch"));
        assert!(!chains.contains(&"cali-from-wl-dispatch"), "{chains:?}");
        // The policy's allow rule set the accept mark; the endpoint chain returned on it;
        // FORWARD accepted on the mark.
        let policy = r
            .path
            .iter()
            .find(|s| s.chain == "cali-pi-_rV88Xej8277qXnICUmJ")
            .expect("the trace-test policy chain is on the path");
        assert_eq!(
            (policy.line, policy.action, policy.mark),
            (70, Action::Mark, 0x10000)
        );
        assert!(lines_of(&r, Action::Return).contains(&91));
        let end = r.deciding_step().expect("a deciding step");
        assert_eq!((end.chain.as_str(), end.line), ("FORWARD", 28));
        assert_eq!(r.final_mark & 0x10000, 0x10000);
    }
}

#[test]
fn demo_client_to_web_dies_at_the_end_of_tier_default() {
    let (d, s) = demo();
    let pkt = tcp("10.65.0.8", "10.65.0.7", 80)
        .with_in_iface(CLIENT_VETH)
        .with_out_iface(WEB_VETH);
    let r = simulate(&d, Some(&s), &pkt, Hook::Forward);
    assert_eq!(r.verdict, Verdict::Deny, "{}", show(&r));
    assert!(r.unknowns.is_empty(), "{:?}", r.unknowns);
    let end = end(&r);
    assert_eq!(
        (end.chain.as_str(), end.line, end.action),
        ("cali-tw-cali46b6bee22de", 92, Action::Drop)
    );
    assert!(end.text.contains("End of tier default"));
    assert_eq!(end.rule_index, Some(6));
    // The client's egress profile allowed it first.
    assert!(
        r.path
            .iter()
            .any(|s| s.chain == "cali-pro-kns.demo" && s.action == Action::Mark)
    );
}

#[test]
fn a_cut_short_dump_is_simulated_with_a_note_saying_so() {
    let dump = iptables_save::parse(
        "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -p tcp -j ACCEPT\n-A FORWARD -p udp -m udp --dport \"5",
    );
    let r = simulate(&dump, None, &tcp("10.0.0.1", "10.0.0.2", 80), Hook::Forward);
    assert_eq!(r.verdict, Verdict::Allow, "{}", show(&r));
    assert!(
        r.notes.iter().any(|n| n.contains("no COMMIT")),
        "{:?}",
        r.notes
    );
    assert!(
        r.notes.iter().any(|n| n.contains("could not read")),
        "{:?}",
        r.notes
    );
}

#[test]
fn a_limit_hit_in_another_branch_is_reported_with_the_branch_it_happened_in() {
    let dump = iptables_save::parse(
        "*filter\n:FORWARD ACCEPT [0:0]\n:a - [0:0]\n\
         -A FORWARD -m statistic --mode nth --every 2 -j a\n-A a -g a\nCOMMIT\n",
    );
    let opts = SimOptions {
        max_steps: 1_000,
        ..SimOptions::default()
    };
    let pkt = tcp("10.0.0.1", "10.0.0.2", 80);
    let r = simulate_with(&dump, None, &pkt, Hook::Forward, &opts);
    assert_eq!(r.verdict, Verdict::Unknown, "{}", show(&r));
    // The path itself (statistic assumed not to match) is accepted by the policy.
    assert_eq!(end(&r).action, Action::Policy);
    assert!(
        r.notes
            .iter()
            .any(|n| n.starts_with("in a branch where") && n.contains("gave up")),
        "{:?}",
        r.notes
    );
}
