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
            &t.entries,
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
    let lines: Vec<u32> = t.entries.iter().map(|e| e.line).collect();
    assert_eq!(lines, (1..=8).collect::<Vec<u32>>());
}

#[test]
fn a_tcp_flow_through_a_service_keeps_both_tuples() {
    let t = conntrack::parse(&fixture("list.txt"));
    let e = &t.entries[0];
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
    let syn = &t.entries[1];
    assert_eq!(syn.state, Some(TcpState::SynSent));
    assert!(syn.unreplied && !syn.assured);
    assert_eq!(syn.mark, 65536);
    let dns = &t.entries[2];
    assert_eq!(dns.proto, 17);
    assert_eq!(dns.state, None);
    assert!(dns.unreplied);
    assert_eq!(dns.zone, Some(3));
    assert_eq!(dns.reply.src, ip("10.244.3.4"));
    assert_eq!(t.entries[3].use_count, 2);
}

#[test]
fn icmp_ipv6_and_unknown_protocols_are_read() {
    let t = conntrack::parse(&fixture("list.txt"));
    let icmp = &t.entries[4];
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
    let v6 = &t.entries[5];
    assert_eq!(v6.family, Family::Ipv6);
    assert_eq!(v6.state, Some(TcpState::TimeWait));
    assert_eq!(v6.orig.src, ip("fd00:10:244::5"));
    let icmp6 = &t.entries[6];
    assert_eq!((icmp6.proto, icmp6.family), (58, Family::Ipv6));
    assert_eq!(
        icmp6.orig.l4,
        L4::Icmp {
            kind: 128,
            code: 0,
            id: 5
        }
    );
    let unknown = &t.entries[7];
    assert_eq!(unknown.proto, 4);
    assert_eq!(unknown.orig.l4, L4::None);
}

#[test]
fn extended_output_takes_the_family_from_its_prefix() {
    let t = conntrack::parse(&fixture("extended.txt"));
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    let fams: Vec<(Family, u8, Option<u16>)> = t
        .entries
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
    assert!(t.entries[1].unreplied);
}

#[test]
fn event_lines_keep_their_event_kind() {
    let t = conntrack::parse(&fixture("events.txt"));
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    let evs: Vec<(Option<Event>, Option<TcpState>, u32)> = t
        .entries
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
    assert!(t.entries[3].assured);
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
    assert_eq!(t.entries[1].use_count, 1);
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
