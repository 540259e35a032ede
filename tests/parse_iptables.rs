//! iptables-save / restore / listing parser against fixtures under
//! `testdata/artifacts/iptables-save/` and, when present, the shared corpus.

use std::path::{Path, PathBuf};

use calisnap::parse::iptables_save::{
    self, Backend, Dump, Form, LogTarget, MarkOp, MarkTarget, MatchKind, NflogTarget, PortDir,
    PortRange, Rule, RuleOp, SetDir, TargetKind,
};

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/artifacts/iptables-save")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn rule<'d>(d: &'d Dump, table: &str, chain: &str, idx: usize) -> &'d Rule {
    let t = d.table(table).unwrap_or_else(|| panic!("no table {table}"));
    let c = t.chain(chain).unwrap_or_else(|| panic!("no chain {chain}"));
    c.rules
        .get(idx)
        .unwrap_or_else(|| panic!("{chain} has no rule {idx}"))
}

/// Rules as a plain line filter counts them: `-A …` and `[p:b] -A …` lines.
fn count_append_lines(text: &str) -> usize {
    text.lines()
        .map(str::trim_start)
        .filter(|l| {
            l.starts_with("-A ")
                || (l.starts_with('[')
                    && l.split_once("] ")
                        .is_some_and(|(_, r)| r.starts_with("-A ")))
        })
        .count()
}

#[test]
fn calico_fv_dump_parses_without_errors_into_tables_chains_and_rules() {
    let text = fixture("calico-fv-cali-iptables-dump.txt");
    let d = iptables_save::parse(&text);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.form, Form::Save);
    assert_eq!(d.records(), 57);
    assert_eq!(d.records(), count_append_lines(&text));
    let names: Vec<&str> = d.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["raw", "nat", "filter", "mangle"]);
    assert!(d.tables.iter().all(|t| t.committed));
    let h = d.header.as_ref().expect("header");
    assert_eq!(
        (h.line, h.program.as_str(), h.version.as_deref()),
        (1, "iptables-save", Some("1.8.4"))
    );
    assert_eq!(h.backend, None);

    let filter = d.table("filter").expect("filter");
    let input = filter.chain("INPUT").expect("INPUT");
    assert_eq!(input.policy.as_deref(), Some("ACCEPT"));
    assert_eq!(
        input.counters.map(|c| (c.packets, c.bytes)),
        Some((348, 105097))
    );
    let fwd = filter.chain("cali-FORWARD").expect("cali-FORWARD");
    assert_eq!(fwd.policy, None);
    assert_eq!(fwd.line, 52);
    // Declaration order is kept.
    assert_eq!(filter.chains[3].name, "cali-FORWARD");
}

#[test]
fn mark_set_xmark_target_is_parsed_with_value_and_mask() {
    let d = iptables_save::parse(&fixture("calico-fv-cali-iptables-dump.txt"));
    let r = rule(&d, "filter", "FORWARD", 2);
    assert_eq!(r.line, 66);
    assert_eq!(r.comments, ["cali:mp77cMpurHhyjLrM"]);
    let t = r.target.as_ref().expect("target");
    assert_eq!(t.name, "MARK");
    assert_eq!(
        t.kind,
        TargetKind::Mark(MarkTarget {
            op: MarkOp::SetXmark,
            value: 0x10000,
            mask: Some(0x10000)
        })
    );
    assert_eq!(r.jump_target(), None);
    assert_eq!(
        r.text,
        "-A FORWARD -m comment --comment \"cali:mp77cMpurHhyjLrM\" -j MARK --set-xmark 0x10000/0x10000"
    );
}

#[test]
fn a_rule_with_two_comments_keeps_both_in_order() {
    let d = iptables_save::parse(&fixture("calico-fv-cali-iptables-dump.txt"));
    let r = rule(&d, "filter", "FORWARD", 1);
    assert_eq!(
        r.comments,
        [
            "cali:S93hcgKJrXEqnTfs",
            "Policy explicitly accepted packet."
        ]
    );
    assert_eq!(
        r.mark_matches().collect::<Vec<_>>(),
        [(0x10000, 0x10000, false)]
    );
    assert_eq!(
        r.target.as_ref().map(|t| &t.kind),
        Some(&TargetKind::Accept)
    );
}

#[test]
fn rpfilter_addrtype_conntrack_and_goto_are_structured() {
    let d = iptables_save::parse(&fixture("calico-fv-cali-iptables-dump.txt"));
    let r = rule(&d, "raw", "cali-PREROUTING", 4);
    let rpf = r.matches.iter().find_map(|m| match &m.kind {
        MatchKind::RpFilter(f) => Some(f.clone()),
        _ => None,
    });
    let rpf = rpf.expect("rpfilter");
    assert!(rpf.invert && rpf.validmark && !rpf.loose && !rpf.accept_local);

    let masq = rule(&d, "nat", "cali-POSTROUTING", 2);
    let types: Vec<_> = masq
        .matches
        .iter()
        .filter_map(|m| match &m.kind {
            MatchKind::AddrType(a) => Some(a.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(types.len(), 2);
    let first = types[0].src_type.as_ref().expect("src-type");
    assert!(first.negated && first.types == ["LOCAL"] && types[0].limit_iface_out);
    assert!(!types[1].src_type.as_ref().expect("src-type").negated && !types[1].limit_iface_out);
    assert_eq!(
        masq.target.as_ref().map(|t| &t.kind),
        Some(&TargetKind::Masquerade {
            random: false,
            random_fully: true,
            to_ports: None
        })
    );
    assert!(
        masq.matches
            .iter()
            .any(|m| m.kind == MatchKind::OutInterface("vxlan.calico".into()))
    );

    let dnat_check = rule(&d, "filter", "cali-OUTPUT", 3);
    let ct = dnat_check
        .matches
        .iter()
        .find(|m| matches!(m.kind, MatchKind::ConnState(_)))
        .expect("ctstate");
    assert!(ct.negated);
    assert_eq!(ct.module.as_deref(), Some("conntrack"));
    assert_eq!(ct.kind, MatchKind::ConnState(vec!["DNAT".into()]));

    let wl = rule(&d, "filter", "cali-INPUT", 1);
    let t = wl.target.as_ref().expect("target");
    assert!(t.goto);
    assert_eq!(wl.jump_target(), Some("cali-wl-to-host"));
    assert!(
        wl.matches
            .iter()
            .any(|m| m.kind == MatchKind::InInterface("cali+".into()) && !m.negated)
    );

    let vxlan = rule(&d, "filter", "cali-INPUT", 0);
    let ports = vxlan.matches.iter().find_map(|m| match &m.kind {
        MatchKind::Ports { dir, ports } => Some((m.module.clone(), *dir, ports.clone())),
        _ => None,
    });
    assert_eq!(
        ports,
        Some((
            Some("multiport".into()),
            PortDir::Dst,
            vec![PortRange {
                start: 4789,
                end: 4789
            }]
        ))
    );
}

#[test]
fn ip6tables_save_with_counters_and_crlf_reads_ipv6_and_set_matches() {
    let text = fixture("ip6tables-nft-save-c-crlf.txt");
    assert!(text.contains("\r\n"), "fixture must keep its CRLF endings");
    let d = iptables_save::parse(&text);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let h = d.header.as_ref().expect("header");
    assert_eq!(h.line, 2);
    assert_eq!(h.backend, Some(Backend::NfTables));
    assert_eq!(h.version.as_deref(), Some("1.8.7"));
    assert!(h.is_ipv6());
    assert_eq!(d.is_ipv6(), Some(true));
    assert!(
        d.comments
            .iter()
            .any(|(l, c)| *l == 1 && c.starts_with("Warning: iptables-legacy tables present"))
    );

    let r = rule(&d, "filter", "cali-pi-_4yvZ5ZVhFcwUbr8BuB5", 0);
    assert_eq!(r.counters.map(|c| (c.packets, c.bytes)), Some((0, 0)));
    assert_eq!(
        r.comments,
        [
            "cali:M5sTQa1KWsUgyFPC",
            "Policy default.allow-frontend ingress"
        ]
    );
    let sets: Vec<_> = r.match_sets().collect();
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].0.name, "cali60s:0RSdCvrcIzqrbD8RjNEx09");
    assert_eq!(sets[0].0.dirs, [SetDir::Src]);
    assert!(!sets[0].1);
    assert!(r.matches.iter().any(|m| m.kind
        == MatchKind::Ports {
            dir: PortDir::Dst,
            ports: vec![
                PortRange {
                    start: 8080,
                    end: 8080
                },
                PortRange {
                    start: 9000,
                    end: 9100
                }
            ]
        }));
    assert!(!r.text.ends_with('\r'));

    let icmp = rule(&d, "filter", "cali-pi-_4yvZ5ZVhFcwUbr8BuB5", 1);
    let src = icmp.matches.iter().find_map(|m| match &m.kind {
        MatchKind::Source(a) => Some((a.net, m.negated)),
        _ => None,
    });
    assert_eq!(src, Some(("fd00:10:244::/64".parse().ok(), false)));
    let dst = icmp.matches.iter().find_map(|m| match &m.kind {
        MatchKind::Destination(a) => Some((a.net, m.negated)),
        _ => None,
    });
    assert_eq!(dst, Some(("fd00:10:96::1/128".parse().ok(), true)));
    assert!(
        icmp.matches
            .iter()
            .any(|m| m.kind == MatchKind::IcmpType("128".into()))
    );
    let proto = icmp.matches.iter().find_map(|m| match &m.kind {
        MatchKind::Protocol(p) => Some(p.clone()),
        _ => None,
    });
    assert_eq!(
        proto.map(|p| (p.name, p.number)),
        Some(("ipv6-icmp".into(), Some(58)))
    );

    let notmark = rule(&d, "filter", "cali-tw-calia1b2c3d4e5f", 2);
    assert_eq!(
        notmark.mark_matches().collect::<Vec<_>>(),
        [(0, 0x20000, true)]
    );
    assert_eq!(notmark.jump_target(), Some("cali-pi-_4yvZ5ZVhFcwUbr8BuB5"));
    let chain_counters = d
        .table("filter")
        .and_then(|t| t.chain("INPUT"))
        .and_then(|c| c.counters);
    assert_eq!(chain_counters.map(|c| c.bytes), Some(340000));
}

#[test]
fn a_dump_pasted_with_a_hash_prefix_parses_like_the_plain_one() {
    let text = fixture("iptables-legacy-save-pasted-prefix.txt");
    let d = iptables_save::parse(&text);
    // Only the `$ sudo …` prompt line is an error.
    assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
    assert_eq!(d.errors[0].line, 1);
    assert_eq!(
        d.header.as_ref().and_then(|h| h.backend),
        Some(Backend::Legacy)
    );
    assert_eq!(d.records(), 7);
    let t = d.table("filter").expect("filter");
    assert!(t.committed);
    assert_eq!(
        t.chain("FORWARD").and_then(|c| c.policy.as_deref()),
        Some("DROP")
    );

    let r = rule(&d, "filter", "cali-pi-_ABCDEF123456789abcde", 0);
    assert_eq!(r.line, 10);
    assert!(
        r.text.starts_with("-A cali-pi-_ABCDEF"),
        "prefix must be gone from the evidence text"
    );
    let sets: Vec<_> = r
        .match_sets()
        .map(|(s, neg)| (s.name.as_str(), neg))
        .collect();
    assert_eq!(
        sets,
        [
            ("cali40s:qUkQoCdpJMVKYrLBHKjBA8", false),
            ("cali40s:Ps4xbfXdFiz1TxOAtYxfvJ", true)
        ]
    );
    let dport = r
        .matches
        .iter()
        .find(|m| matches!(m.kind, MatchKind::Ports { .. }))
        .expect("dport");
    assert!(dport.negated);
    assert_eq!(dport.module.as_deref(), Some("udp"));

    let neg = rule(&d, "filter", "cali-pi-_ABCDEF123456789abcde", 1);
    assert_eq!(neg.comments, ["cali:Zq8wNb2fTm7vPs1K"]);
    let src = neg
        .matches
        .iter()
        .find(|m| matches!(m.kind, MatchKind::Source(_)))
        .expect("src");
    assert!(src.negated);
    assert!(
        neg.matches
            .iter()
            .any(|m| m.kind == MatchKind::OutInterface("eth0".into()) && m.negated)
    );
    let proto = neg.matches.iter().find_map(|m| match &m.kind {
        MatchKind::Protocol(p) => p.number,
        _ => None,
    });
    assert_eq!(proto, Some(6));
    let (set, _) = neg.match_sets().next().expect("set");
    assert_eq!(set.dirs, [SetDir::Dst, SetDir::Dst]);

    let log = rule(&d, "filter", "cali-pi-_ABCDEF123456789abcde", 2);
    assert_eq!(
        log.target.as_ref().map(|t| &t.kind),
        Some(&TargetKind::Log(Box::new(LogTarget {
            prefix: Some("calico-packet: ".into()),
            level: Some("5".into())
        })))
    );
    let nflog = rule(&d, "filter", "cali-pi-_ABCDEF123456789abcde", 3);
    assert_eq!(
        nflog.target.as_ref().map(|t| &t.kind),
        Some(&TargetKind::Nflog(Box::new(NflogTarget {
            group: Some(1),
            prefix: Some("API0|default.allow-dns".into()),
            range: None,
            size: Some(80),
            threshold: None
        })))
    );

    let esc = rule(&d, "filter", "cali-log-drop", 0);
    assert_eq!(esc.comments[1], r#"Quote "inside" and back\slash"#);
    assert_eq!(
        esc.target.as_ref().map(|t| &t.kind),
        Some(&TargetKind::Reject {
            with: Some("icmp-port-unreachable".into())
        })
    );
    let bare = rule(&d, "filter", "cali-log-drop", 1);
    assert!(bare.target.is_none() && bare.matches.is_empty());
    assert_eq!(bare.comments, ["cali:xY9zW8vU7tS6rQ5p"]);
}

#[test]
fn a_truncated_excerpt_reports_each_problem_with_its_line_and_keeps_the_rest() {
    let d = iptables_save::parse(&fixture("iptables-save-truncated-excerpt.txt"));
    let lines: Vec<usize> = d.errors.iter().map(|e| e.line).collect();
    // Line 1 lost its start; lines 9 and 10 use undeclared chains; line 10 is cut inside a
    // quote and no COMMIT follows it.
    assert!(lines.contains(&1), "{:?}", d.errors);
    assert!(lines.contains(&9), "{:?}", d.errors);
    assert!(
        d.errors
            .iter()
            .any(|e| e.line == 10 && e.message.contains("unterminated")),
        "{:?}",
        d.errors
    );
    assert!(
        d.errors.iter().any(|e| e.message.contains("no COMMIT")),
        "{:?}",
        d.errors
    );
    assert_eq!(d.records(), 4);
    let nat = d.table("nat").expect("nat");
    assert!(!nat.committed);
    let snat_chain = nat.chain("cali-fip-snat").expect("created by its rule");
    assert!(!snat_chain.declared);
    assert_eq!(snat_chain.line, 9);
    let dnat = rule(&d, "nat", "cali-fip-dnat", 0);
    assert_eq!(
        dnat.target.as_ref().map(|t| &t.kind),
        Some(&TargetKind::Dnat {
            to: Some("10.65.1.7".into())
        })
    );
    let snat = rule(&d, "nat", "cali-fip-snat", 0);
    assert_eq!(
        snat.target.as_ref().map(|t| &t.kind),
        Some(&TargetKind::Snat {
            to: Some("203.0.113.10".into())
        })
    );
    let cut = rule(&d, "nat", "cali-POSTROUTING", 0);
    assert_eq!(cut.comments, ["cali:e9dnSgSV"]);
}

#[test]
fn felix_long_flag_restore_input_reads_like_saved_output() {
    let d = iptables_save::parse(&fixture("felix-restore-input-long-flags.txt"));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let t = d.table("filter").expect("filter");
    let chain = t.chain("cali-tw-cali12345678901").expect("chain");
    assert!(chain.declared && chain.policy.is_none() && chain.counters.is_none());

    let clear = rule(&d, "filter", "cali-tw-cali12345678901", 2);
    let Some(TargetKind::Mark(m)) = clear.target.as_ref().map(|t| &t.kind) else {
        panic!("MARK expected: {:?}", clear.target);
    };
    assert_eq!(m.op, MarkOp::SetMark);
    assert_eq!(
        m.xmark(),
        (0, 0x30000),
        "same as iptables-save's --set-xmark 0x0/0x30000"
    );

    let long = rule(&d, "filter", "cali-tw-cali12345678901", 3);
    assert_eq!(long.jump_target(), Some("cali-pri-kns.default"));
    assert!(long.target.as_ref().is_some_and(|t| t.goto));
    assert!(
        long.matches
            .iter()
            .any(|m| m.kind == MatchKind::InInterface("cali+".into()))
    );
    assert!(
        long.matches
            .iter()
            .any(|m| m.kind == MatchKind::OutInterface("cali12345678901".into()))
    );
    assert!(
        long.matches.iter().any(
            |m| matches!(&m.kind, MatchKind::Source(a) if a.net == "10.65.0.0/16".parse().ok())
        )
    );
    assert!(long.matches.iter().any(
        |m| matches!(&m.kind, MatchKind::Destination(a) if a.net == "10.65.1.7/32".parse().ok())
    ));
    let src_ports = long
        .matches
        .iter()
        .find(|m| {
            matches!(
                m.kind,
                MatchKind::Ports {
                    dir: PortDir::Src,
                    ..
                }
            )
        })
        .expect("source ports");
    assert!(src_ports.negated);

    let set_mark = rule(&d, "filter", "cali-pri-kns.default", 0);
    let Some(TargetKind::Mark(m)) = set_mark.target.as_ref().map(|t| &t.kind) else {
        panic!("MARK expected");
    };
    assert_eq!(m.xmark(), (0x10000, 0x10000));

    assert_eq!(
        rule(&d, "filter", "cali-tw-cali12345678901", 4).op,
        RuleOp::Replace(2)
    );
    let del = rule(&d, "filter", "cali-tw-cali12345678901", 5);
    assert_eq!(del.op, RuleOp::Delete(Some(5)));
    assert_eq!(t.commands.len(), 1);
    assert_eq!(
        (t.commands[0].op.as_str(), t.commands[0].args.as_slice()),
        ("--delete-chain", &["cali-old-chain".to_string()][..])
    );
}

#[test]
fn non_calico_rules_without_match_or_target_are_kept() {
    let text = fixture("calico-fv-iptables-dump-docker-kube.txt");
    let d = iptables_save::parse(&text);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.records(), count_append_lines(&text));
    let empty = rule(&d, "nat", "KUBE-FW-NPX46M4PTMTKRN6Y", 0);
    assert!(empty.matches.is_empty() && empty.target.is_none());
    let dnat = rule(&d, "nat", "KUBE-SEP-QAX236RR3UXXQODE", 1);
    assert_eq!(
        dnat.target.as_ref().map(|t| &t.kind),
        Some(&TargetKind::Dnat {
            to: Some("10.128.0.183:6443".into())
        })
    );
}

#[test]
fn unknown_modules_are_kept_verbatim_with_their_negations() {
    let d = iptables_save::parse(&fixture("diekmann-parser-test-odd-chain-names.txt"));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let r = rule(&d, "filter", "FORWARD", 20);
    assert_eq!(r.line, 30);
    let m = &r.matches[0];
    assert_eq!(m.module.as_deref(), Some("iprange"));
    assert_eq!(
        m.kind,
        MatchKind::Unknown {
            args: vec![
                "!".into(),
                "--dst-range".into(),
                "127.0.0.1-127.0.10.0".into()
            ]
        }
    );
    let quote = rule(&d, "filter", "DOS~Pro-t_ect", 8);
    assert_eq!(quote.comments, ["\""]);
    let logdrop = d
        .table("filter")
        .and_then(|t| t.chain("LOGDROP"))
        .expect("LOGDROP");
    assert!(logdrop.rules[0].target.is_none());
    assert_eq!(
        rule(&d, "filter", "FORWARD", 21).jump_target(),
        Some("Terminal")
    );
}

#[test]
fn iptables_list_listing_gives_the_same_shape() {
    let text = fixture("iptables-list-v-n.txt");
    let d = iptables_save::parse_list(&text);
    assert_eq!(d.form, Form::List);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    // `parse` recognises a listing too.
    assert_eq!(iptables_save::parse(&text).form, Form::List);
    let names: Vec<&str> = d.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["filter", "nat", "filter"]);
    assert_eq!(d.records(), 13);

    let filter = &d.tables[0];
    let input = filter.chain("INPUT").expect("INPUT");
    assert_eq!(
        input.counters.map(|c| (c.packets, c.bytes)),
        Some((1234, 567_000))
    );
    let first = &input.rules[0];
    assert_eq!(
        first.counters.map(|c| (c.packets, c.bytes)),
        Some((219_000, 93_000_000))
    );
    assert_eq!(first.jump_target(), Some("cali-INPUT"));
    assert_eq!(first.comments, ["cali:Cz_u1IQiXIMmKD4c"]);
    assert_eq!(
        filter.chain("cali-INPUT").and_then(|c| c.references),
        Some(1)
    );

    let fwd = filter.chain("FORWARD").expect("FORWARD");
    assert_eq!(fwd.policy.as_deref(), Some("DROP"));
    assert_eq!(
        fwd.rules[1].comments,
        [
            "cali:S93hcgKJrXEqnTfs",
            "Policy explicitly accepted packet."
        ]
    );
    assert_eq!(
        fwd.rules[1].mark_matches().collect::<Vec<_>>(),
        [(0x10000, 0x10000, false)]
    );
    let Some(TargetKind::Mark(m)) = fwd.rules[2].target.as_ref().map(|t| &t.kind) else {
        panic!("MARK expected");
    };
    assert_eq!(m.xmark(), (0x10000, 0x10000));

    let goto = &filter.chain("cali-INPUT").expect("cali-INPUT").rules[1];
    assert!(
        goto.target
            .as_ref()
            .is_some_and(|t| t.goto && t.name == "cali-wl-to-host")
    );
    assert!(
        goto.matches
            .iter()
            .any(|m| m.kind == MatchKind::InInterface("cali+".into()))
    );
    let and = &filter.chain("cali-INPUT").expect("cali-INPUT").rules[2];
    let Some(TargetKind::Mark(m)) = and.target.as_ref().map(|t| &t.kind) else {
        panic!("MARK expected");
    };
    assert_eq!(m.xmark(), (0, 0x1b0000));
    assert_eq!(and.counters.map(|c| c.packets), Some(1_200_000));

    let pol = filter
        .chain("cali-pi-_ABCDEF123456789abcde")
        .expect("policy chain");
    let sets: Vec<_> = pol.rules[0]
        .match_sets()
        .map(|(s, n)| (s.name.as_str(), n))
        .collect();
    assert_eq!(
        sets,
        [
            ("cali40s:qUkQoCdpJMVKYrLBHKjBA8", false),
            ("cali40s:Ps4xbfXdFiz1TxOAtYxfvJ", true)
        ]
    );
    assert!(
        pol.rules[0].matches.iter().any(
            |m| matches!(&m.kind, MatchKind::Source(a) if a.text == "10.65.0.0/16") && m.negated
        )
    );
    assert!(pol.rules[0].matches.iter().any(|m| m.kind
        == MatchKind::Ports {
            dir: PortDir::Dst,
            ports: vec![PortRange {
                start: 8080,
                end: 8080
            }]
        }));
    assert!(pol.rules[1].target.is_none());
    assert_eq!(pol.rules[1].comments, ["cali:xY9zW8vU7tS6rQ5p"]);

    let nat = &d.tables[1];
    let masq = &nat.chain("cali-POSTROUTING").expect("nat chain").rules[0];
    assert!(matches!(
        masq.target.as_ref().map(|t| &t.kind),
        Some(TargetKind::Masquerade {
            random_fully: true,
            ..
        })
    ));
    assert!(
        masq.matches
            .iter()
            .any(|m| m.kind == MatchKind::OutInterface("vxlan.calico".into()))
    );

    let v6 = &d.tables[2]
        .chain("cali-tw-calia1b2c3d4e5f")
        .expect("v6 chain")
        .rules;
    assert_eq!(v6.len(), 2);
    assert!(
        v6[0]
            .matches
            .iter()
            .any(|m| m.kind == MatchKind::ConnState(vec!["RELATED".into(), "ESTABLISHED".into()]))
    );
    assert_eq!(
        v6[1].target.as_ref().map(|t| &t.kind),
        Some(&TargetKind::Drop)
    );
}

fn shared_corpus(kind: &str) -> Option<Vec<PathBuf>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus")
        .join(kind);
    if !dir.exists() {
        eprintln!("skipping: {} does not exist", dir.display());
        return None;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Some(files)
}

#[test]
fn every_corpus_iptables_dump_parses_and_counts_every_append_line() {
    let Some(files) = shared_corpus("iptables") else {
        return;
    };
    assert!(!files.is_empty());
    for p in files {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let d = iptables_save::parse(&text);
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert_eq!(d.records(), count_append_lines(&text), "{name}");
        if name.starts_with("calico-fv") {
            assert!(d.errors.is_empty(), "{name}: {:?}", d.errors);
        }
    }
}

mod never_panics {
    use calisnap::parse::iptables_save;
    use proptest::prelude::*;

    const FRAGMENTS: &[&str] = &[
        "*filter",
        "COMMIT",
        ":X - [0:0]",
        ":X ACCEPT",
        "[1:2]",
        "[",
        "-A",
        "X",
        "-j",
        "-g",
        "-m",
        "set",
        "--match-set",
        "src,dst",
        "!",
        "-p",
        "tcp",
        "-s",
        "10.0.0.0/8",
        "-i",
        "cali+",
        "--comment",
        "\"a b",
        "\"",
        "\\",
        "\\\"",
        "mark",
        "--mark",
        "0x1/0x1",
        "MARK",
        "--set-xmark",
        "multiport",
        "--dports",
        "1:2,3",
        "addrtype",
        "--src-type",
        "rpfilter",
        "--invert",
        "# Generated by iptables-save v1",
        "Chain X (1 references)",
        "pkts bytes target",
        "0 0",
        "all",
        "--",
        "*",
        "0.0.0.0/0",
        "/*",
        "*/",
        "-c",
        "9",
        "é",
        "\n",
        "\r\n",
        "  # ",
        "$ ",
    ];

    proptest! {
        #[test]
        fn arbitrary_fragments_never_panic(parts in prop::collection::vec(prop::sample::select(FRAGMENTS), 0..60)) {
            let text = parts.join(" ");
            let _ = iptables_save::parse(&text);
            let _ = iptables_save::parse_list(&text);
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
            let _ = iptables_save::parse(&text);
            let _ = iptables_save::parse_list(&text);
        }
    }
}
