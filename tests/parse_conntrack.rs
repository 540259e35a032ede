//! conntrack -L / -E / -S / -C parsing on fixtures under testdata/artifacts/conntrack.

use std::net::IpAddr;
use std::path::Path;

use calisnap::parse::conntrack::{self, Event, Family, L4, Table, TcpState};

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/artifacts/conntrack")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn visible(t: &Table) -> String {
    format!(
        "{:?}",
        (
            &t.counts,
            &t.sample,
            t.last_line,
            &t.unreplied,
            &t.unreplied_events,
            &t.established,
            &t.summary,
            &t.messages,
            &t.stats,
            t.lines,
            &t.errors
        )
    )
}

#[test]
fn list_output_reads_every_flow_and_the_summary_count() {
    let t = conntrack::parse(&fixture("list.txt"));
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    assert_eq!(t.records(), 8);
    let s = t.summary.expect("summary");
    assert_eq!((s.line, s.shown), (9, 8));
    let lines: Vec<u32> = t.sample.iter().map(|e| e.line).collect();
    assert_eq!(lines, (1..=8).collect::<Vec<u32>>());
}

#[test]
fn a_tcp_flow_through_a_service_keeps_both_tuples() {
    let t = conntrack::parse(&fixture("list.txt"));
    let e = &t.sample[0];
    assert_eq!(e.family, Family::Ipv4);
    assert_eq!(e.proto, 6);
    assert_eq!(e.timeout, 431999);
    assert_eq!(e.state, Some(TcpState::Established));
    assert_eq!(e.orig.src, ip("10.244.1.5"));
    assert_eq!(e.orig.dst, ip("10.96.0.1"));
    assert_eq!(
        e.orig.l4,
        L4::Ports {
            sport: 51506,
            dport: 443
        }
    );
    // The reply comes from the backend: DNAT is visible in the reply tuple.
    assert_eq!(e.reply.src, ip("10.128.0.2"));
    assert_eq!(
        e.reply.l4,
        L4::Ports {
            sport: 6443,
            dport: 51506
        }
    );
    assert!(e.assured);
    assert!(!e.unreplied);
    assert_eq!((e.mark, e.zone, e.use_count), (0, None, 1));
}

#[test]
fn unreplied_flows_marks_and_zones_are_read() {
    let t = conntrack::parse(&fixture("list.txt"));
    let syn = &t.sample[1];
    assert_eq!(syn.state, Some(TcpState::SynSent));
    assert!(syn.unreplied && !syn.assured);
    assert_eq!(syn.mark, 65536);
    let dns = &t.sample[2];
    assert_eq!(dns.proto, 17);
    assert_eq!(dns.state, None);
    assert!(dns.unreplied);
    assert_eq!(dns.zone, Some(3));
    assert_eq!(dns.reply.src, ip("10.244.3.4"));
    assert_eq!(t.sample[3].use_count, 2);
}

#[test]
fn icmp_ipv6_and_unknown_protocols_are_read() {
    let t = conntrack::parse(&fixture("list.txt"));
    let icmp = &t.sample[4];
    assert_eq!(icmp.proto, 1);
    assert_eq!(
        icmp.orig.l4,
        L4::Icmp {
            kind: 8,
            code: 0,
            id: 17
        }
    );
    assert_eq!(
        icmp.reply.l4,
        L4::Icmp {
            kind: 0,
            code: 0,
            id: 17
        }
    );
    let v6 = &t.sample[5];
    assert_eq!(v6.family, Family::Ipv6);
    assert_eq!(v6.state, Some(TcpState::TimeWait));
    assert_eq!(v6.orig.src, ip("fd00:10:244::5"));
    let icmp6 = &t.sample[6];
    assert_eq!((icmp6.proto, icmp6.family), (58, Family::Ipv6));
    assert_eq!(
        icmp6.orig.l4,
        L4::Icmp {
            kind: 128,
            code: 0,
            id: 5
        }
    );
    let unknown = &t.sample[7];
    assert_eq!(unknown.proto, 4);
    assert_eq!(unknown.orig.l4, L4::None);
}

#[test]
fn extended_output_takes_the_family_from_its_prefix() {
    let t = conntrack::parse(&fixture("extended.txt"));
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    let fams: Vec<(Family, u8, Option<u16>)> = t
        .sample
        .iter()
        .map(|e| (e.family, e.proto, e.zone))
        .collect();
    assert_eq!(
        fams,
        vec![
            (Family::Ipv4, 6, Some(0)),
            (Family::Ipv4, 17, Some(0)),
            (Family::Ipv6, 6, Some(0))
        ]
    );
    assert!(t.sample[1].unreplied);
}

#[test]
fn event_lines_keep_their_event_kind() {
    let t = conntrack::parse(&fixture("events.txt"));
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    let evs: Vec<(Option<Event>, Option<TcpState>, u32)> = t
        .sample
        .iter()
        .map(|e| (e.event, e.state, e.timeout))
        .collect();
    assert_eq!(
        evs,
        vec![
            (Some(Event::New), Some(TcpState::SynSent), 120),
            (Some(Event::Update), Some(TcpState::SynRecv), 60),
            (Some(Event::Update), Some(TcpState::Established), 432000),
            // DESTROY events print no timeout.
            (Some(Event::Destroy), None, 0),
            (Some(Event::New), None, 30),
        ]
    );
    assert!(t.sample[3].assured);
    // "flow events" is not the -L summary; it is kept as a tool message.
    assert_eq!(t.summary, None);
    assert_eq!(t.messages.len(), 1);
    assert_eq!(t.messages[0].0, 6);
}

#[test]
fn stats_sum_every_counter_over_cpus() {
    let s = conntrack::parse_stats(&fixture("stats.txt"));
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.records(), 2);
    assert_eq!(s.cpus[1].cpu, 1);
    assert_eq!(s.cpus[1].line, 2);
    assert_eq!(s.total("invalid"), Some(42));
    assert_eq!(s.total("insert_failed"), Some(4));
    assert_eq!(s.total("drop"), Some(4));
    assert_eq!(s.total("search_restart"), Some(9));
    assert_eq!(s.total("clash_resolve"), Some(1));
    assert_eq!(s.total("nope"), None);
}

#[test]
fn count_alone_is_read_as_the_table_size() {
    let s = conntrack::parse_stats(&fixture("count.txt"));
    assert_eq!(s.count.map(|c| (c.line, c.value)), Some((1, 1234)));
    assert_eq!(s.records(), 1);
}

#[test]
fn a_mixed_crlf_capture_yields_flows_stats_and_count() {
    let t = conntrack::parse(&fixture("mixed-crlf.txt"));
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    assert_eq!(t.records(), 2);
    assert_eq!(t.summary.map(|s| s.shown), Some(2));
    assert_eq!(t.stats.cpus.len(), 2);
    assert_eq!(t.stats.total("invalid"), Some(42));
    assert_eq!(t.stats.count.map(|c| (c.line, c.value)), Some((6, 2)));
    assert_eq!(t.sample[1].use_count, 1);
}

#[test]
fn a_cut_last_line_is_an_error_and_the_rest_is_kept() {
    let t = conntrack::parse(&fixture("truncated.txt"));
    assert_eq!(t.records(), 1);
    assert_eq!(t.errors.len(), 1);
    assert_eq!(t.errors[0].line, 2);
}

#[test]
fn a_chunked_parse_split_at_any_line_equals_the_whole_file_parse() {
    for name in [
        "list.txt",
        "extended.txt",
        "events.txt",
        "mixed-crlf.txt",
        "truncated.txt",
    ] {
        let text = fixture(name);
        let whole = visible(&conntrack::parse(&text));
        for (cut, _) in text.match_indices('\n') {
            let cut = cut + 1;
            let first = text[..cut].matches('\n').count() + 1;
            let mut merged = conntrack::parse_chunk(&text[..cut], 1);
            merged.merge(conntrack::parse_chunk(&text[cut..], first));
            assert_eq!(visible(&merged), whole, "{name} cut at {cut}");
        }
    }
}

#[test]
fn garbage_lines_become_errors_not_panics() {
    let t = conntrack::parse(
        "tcp 6\ntcp x 1 src=1.1.1.1\nfoo bar baz\ntcp 6 10 src=999.1.1.1 dst=1.1.1.1\nudp 17 10 src=1.1.1.1 dst=1.1.1.2 sport=70000 dport=1\n<?xml version=\"1.0\"?>\n<conntrack><flow></flow>\n\u{1F600}\n",
    );
    assert_eq!(t.records(), 0);
    let lines: Vec<usize> = t.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![1, 2, 3, 4, 5, 6, 8]);
}

mod generated {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn any_text_parses_without_panicking(s in "\\PC*") {
            let t = conntrack::parse(&s);
            prop_assert!(t.records() <= t.lines);
            let _ = conntrack::parse_stats(&s);
        }
    }
}

/// A listing where the same flows come back many times (retried connections, several
/// clients), written in the `conntrack -L` layout of list.txt.
fn repeated_flows() -> String {
    let mut text = String::new();
    for i in 0..60u32 {
        // Every third line a retry of one of four unreplied flows, from a new source port.
        let sport = 40000 + i;
        match i % 3 {
            0 => text.push_str(&format!(
                "tcp      6 117 SYN_SENT src=10.244.1.5 dst=10.244.2.{} sport={sport} dport=8080 [UNREPLIED] src=10.244.2.{} dst=10.244.1.5 sport=8080 dport={sport} mark=0 use=1\n",
                i % 4,
                i % 4
            )),
            1 => text.push_str(&format!(
                "tcp      6 431999 ESTABLISHED src=10.244.1.{} dst=10.96.0.1 sport={sport} dport=443 src=10.128.0.2 dst=10.244.1.5 sport=6443 dport={sport} [ASSURED] mark=0 use=1\n",
                i % 5
            )),
            _ => text.push_str(&format!(
                "udp      17 27 src=10.244.1.5 dst=10.96.0.10 sport={sport} dport=53 src=10.244.3.4 dst=10.244.1.5 sport=53 dport={sport} mark=0 zone=3 use=1\n"
            )),
        }
    }
    text.push_str("conntrack v1.4.6 (conntrack-tools): 60 flow entries have been shown.\n");
    text
}

#[test]
fn a_group_counts_every_repeat_and_keeps_its_earliest_line() {
    let t = conntrack::parse(&repeated_flows());
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    assert_eq!(t.records(), 60);
    // Lines 1, 4, 7, …: four keys (dst 10.244.2.0, .3, .2, .1 first), five retries each.
    let firsts: Vec<(u32, u64)> = t
        .unreplied
        .iter()
        .map(|g| (g.first.line, g.count))
        .collect();
    assert_eq!(firsts, vec![(1, 5), (4, 5), (7, 5), (10, 5)]);
    let g = t
        .unreplied
        .iter()
        .find(|g| g.key.dst == ip("10.244.2.1"))
        .expect("the flow to 10.244.2.1");
    assert_eq!(g.key.reply_src, ip("10.244.2.1"));
    assert_eq!((g.key.proto, g.key.dport), (6, Some(8080)));
    // Its first retry (line 10, i = 9), not a later one.
    assert_eq!(g.first.line, 10);
    assert_eq!(g.first.orig.sport(), Some(40009));
    assert_eq!(t.unreplied.entries(), t.counts.unreplied);
    // Established: five TCP sources to the API service, and the replied DNS flow.
    assert_eq!(t.established.len(), 6);
    assert_eq!(t.established.entries(), 40);
    let dns = t
        .established
        .iter()
        .find(|g| g.key.proto == 17)
        .expect("dns");
    assert_eq!((dns.first.line, dns.count), (3, 20));
    assert_eq!(t.counts.state(TcpState::SynSent), 20);
    assert_eq!(t.counts.state(TcpState::Established), 20);
    assert_eq!(t.counts.proto(17), 20);
    assert_eq!(t.last_line, Some(60));
}

#[test]
fn repeated_flows_parsed_in_chunks_merge_to_the_whole_file_parse() {
    let text = repeated_flows();
    let whole = visible(&conntrack::parse(&text));
    let cuts: Vec<usize> = text.match_indices('\n').map(|(i, _)| i + 1).collect();
    for &cut in &cuts {
        let first = text[..cut].matches('\n').count() + 1;
        let mut merged = conntrack::parse_chunk(&text[..cut], 1);
        merged.merge(conntrack::parse_chunk(&text[cut..], first));
        assert_eq!(visible(&merged), whole, "cut at {cut}");
    }
    // Many chunks, merged in file order as the bundle reader does.
    let mut start = 0;
    let mut line = 1;
    let mut merged: Option<Table> = None;
    for &end in cuts.iter().step_by(7).chain(std::iter::once(&text.len())) {
        if end <= start {
            continue;
        }
        let chunk = conntrack::parse_chunk(&text[start..end], line);
        line += text[start..end].matches('\n').count();
        start = end;
        match &mut merged {
            Some(m) => m.merge(chunk),
            None => merged = Some(chunk),
        }
    }
    assert_eq!(visible(&merged.expect("chunks")), whole);
}

/// `n` unreplied flows, each to its own destination, then one more retry of the first.
fn distinct_unreplied(n: u32) -> String {
    let mut text = String::new();
    for i in 0..=n {
        let i = if i == n { 0 } else { i };
        let (b, c) = (i / 250, i % 250);
        text.push_str(&format!(
            "tcp      6 117 SYN_SENT src=10.244.1.5 dst=10.{b}.{c}.9 sport=40000 dport=80 [UNREPLIED] src=10.{b}.{c}.9 dst=10.244.1.5 sport=80 dport=40000 mark=0 use=1\n"
        ));
    }
    text
}

#[test]
fn groups_stop_at_their_cap_and_count_the_rest_as_dropped() {
    let over = conntrack::UNREPLIED_GROUPS as u32 + 100;
    let text = distinct_unreplied(over);
    let t = conntrack::parse(&text);
    assert_eq!(t.records(), over as usize + 1);
    assert_eq!(t.unreplied.len(), conntrack::UNREPLIED_GROUPS);
    assert_eq!(t.unreplied.cap(), conntrack::UNREPLIED_GROUPS);
    assert_eq!(t.unreplied.dropped, 100);
    // The first keys of the file are the ones kept, and a kept key still counts its repeat.
    let first = t.unreplied.iter().next().expect("a group");
    assert_eq!((first.first.line, first.count), (1, 2));
    assert_eq!(t.unreplied.entries(), t.counts.unreplied);
    // Merged chunks keep to the cap too.
    let cut = text.len() / 2;
    let cut = cut + text[cut..].find('\n').expect("a line end") + 1;
    let first_line = text[..cut].matches('\n').count() + 1;
    let mut merged = conntrack::parse_chunk(&text[..cut], 1);
    merged.merge(conntrack::parse_chunk(&text[cut..], first_line));
    assert_eq!(merged.unreplied.len(), conntrack::UNREPLIED_GROUPS);
    assert_eq!(visible(&merged), visible(&t));
}

#[test]
fn events_of_new_flows_are_grouped_apart_from_flows_destroyed_unreplied() {
    // `[NEW]` prints every flow unreplied; the `[DESTROY]` of a flow never answered is one
    // that got no reply.
    let t = conntrack::parse(
        "    [NEW] tcp      6 120 SYN_SENT src=10.244.1.5 dst=10.244.2.9 sport=40022 dport=8080 [UNREPLIED] src=10.244.2.9 dst=10.244.1.5 sport=8080 dport=40022\n\
         [DESTROY] tcp      6 src=10.244.1.5 dst=10.244.2.7 sport=40023 dport=8080 [UNREPLIED] src=10.244.2.7 dst=10.244.1.5 sport=8080 dport=40023\n\
         \x20   [NEW] udp      17 30 src=10.244.1.5 dst=10.96.0.10 sport=43012 dport=53 [UNREPLIED] src=10.244.3.4 dst=10.244.1.5 sport=53 dport=43012\n",
    );
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    let lines = |it: &mut dyn Iterator<Item = &conntrack::FlowGroup<conntrack::UnrepliedKey>>| {
        it.map(|g| g.first.line).collect::<Vec<u32>>()
    };
    assert_eq!(lines(&mut t.unreplied.iter()), vec![2]);
    assert_eq!(
        t.unreplied.iter().next().map(|g| g.first.event),
        Some(Some(Event::Destroy))
    );
    assert_eq!(lines(&mut t.unreplied_events.iter()), vec![1, 3]);
    assert_eq!(lines(&mut t.unreplied_all()), vec![1, 2, 3]);
    assert_eq!(t.counts.events(), 3);
    assert_eq!(t.counts.event(Event::New), 2);
}
