//! The iptables-save reader's fast paths (the chunked tokenizer, the direct reading of
//! `--comment` and `--mark`, numbers and option names read from bytes) against rules whose
//! reading is fixed by iptables' own syntax: odd blanks and quoting that must not change a
//! rule, escapes, negations, modules the reader does not know, truncated lines and counters.
//! Fixture: `testdata/iptables/spelling-and-edge-cases.txt`, written by hand in
//! `iptables-restore` syntax.

use std::path::Path;
use std::sync::Arc;

use calisnap::parse::iptables_save::{
    self, Counters, Dump, MarkOp, MarkTarget, Match, MatchKind, PortDir, PortRange, Rule, SetDir,
    TargetKind,
};

fn dump() -> Dump {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/iptables/spelling-and-edge-cases.txt");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    iptables_save::parse(&text)
}

fn rules<'d>(d: &'d Dump, table: &str, chain: &str) -> &'d [Rule] {
    let t = d.table(table).unwrap_or_else(|| panic!("no table {table}"));
    let c = t.chain(chain).unwrap_or_else(|| panic!("no chain {chain}"));
    &c.rules
}

fn errors_at(d: &Dump, line: usize) -> Vec<&str> {
    d.errors
        .iter()
        .filter(|e| e.line == line)
        .map(|e| e.message.as_str())
        .collect()
}

fn kinds(r: &Rule) -> Vec<(&MatchKind, bool, Option<&str>)> {
    r.matches
        .iter()
        .map(|m: &Match| (&m.kind, m.negated, m.module.as_deref()))
        .collect()
}

#[test]
fn blanks_tabs_and_quoting_around_words_do_not_change_a_rule() {
    let d = dump();
    let r = rules(&d, "filter", "cali-spacing");
    assert_eq!(r.len(), 3);
    for (i, rule) in r.iter().enumerate() {
        assert!(
            errors_at(&d, rule.line).is_empty(),
            "rule {i}: {:?}",
            d.errors
        );
        assert_eq!(rule.comments, ["cali:spacing-a"], "rule {i}");
        assert_eq!(
            kinds(rule),
            vec![(
                &MatchKind::Mark {
                    value: 0x10000,
                    mask: Some(0x10000)
                },
                false,
                Some("mark")
            )],
            "rule {i}"
        );
        let t = rule.target.as_ref().expect("target");
        assert_eq!((t.name.as_str(), &t.kind), ("ACCEPT", &TargetKind::Accept));
        assert!(t.args.is_empty());
    }
    // The evidence text is the line as written, without its leading and trailing blanks.
    assert_eq!(
        r[1].text,
        "-A cali-spacing   -m  comment\t--comment \"cali:spacing-a\"  -m mark --mark\t0x10000/0x10000   -j ACCEPT"
    );
    assert!(
        r[2].text
            .starts_with("-A cali-spacing -m comment --comment cali:\"spacing-a\"")
    );
}

#[test]
fn quoted_comments_are_unescaped_and_kept_in_order() {
    let d = dump();
    let r = rules(&d, "filter", "cali-quotes");
    assert_eq!(r[0].comments, [r#"say "hi" to c:\tmp"#]);
    assert_eq!(r[1].comments, ["", "two words", "third"]);
    assert_eq!(r[2].comments, ["Politique « défaut »"]);
    assert!(r.iter().all(|x| x.matches.is_empty()));
}

#[test]
fn negations_before_options_and_in_the_old_argument_position_are_kept() {
    let d = dump();
    let r = rules(&d, "filter", "cali-neg");
    let first = kinds(&r[0]);
    assert_eq!(first.len(), 4);
    match first[0] {
        (MatchKind::Source(a), true, None) => {
            assert_eq!(a.text, "10.0.0.0/8");
            assert_eq!(a.net.map(|n| n.to_string()).as_deref(), Some("10.0.0.0/8"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        first[1],
        (&MatchKind::InInterface("cali+".into()), true, None)
    );
    match first[2] {
        (MatchKind::Set(s), true, Some("set")) => {
            assert_eq!(s.name, "cali40s:abc");
            assert_eq!(s.dirs, [SetDir::Src, SetDir::Dst]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        first[3],
        (
            &MatchKind::Mark {
                value: 1,
                mask: Some(1)
            },
            true,
            Some("mark")
        )
    );
    assert_eq!(r[0].mark_matches().collect::<Vec<_>>(), vec![(1, 1, true)]);

    // `--dport ! 80`, as iptables before 1.4.3 wrote it.
    let second = kinds(&r[1]);
    assert!(matches!(second[0], (MatchKind::Protocol(p), false, None) if p.number == Some(6)));
    assert_eq!(
        second[1],
        (
            &MatchKind::Ports {
                dir: PortDir::Dst,
                ports: vec![PortRange { start: 80, end: 80 }]
            },
            true,
            Some("tcp")
        )
    );
    assert_eq!(
        kinds(&r[2]),
        vec![(
            &MatchKind::ConnState(vec!["RELATED".into(), "ESTABLISHED".into()]),
            true,
            Some("conntrack")
        )]
    );
}

#[test]
fn unknown_modules_keep_their_words_up_to_the_next_core_option() {
    let d = dump();
    let r = rules(&d, "filter", "cali-unknown");
    let iprange = kinds(&r[0]);
    assert_eq!(
        iprange[0],
        (
            &MatchKind::Unknown {
                args: vec!["--src-range".into(), "10.0.0.1-10.0.0.9".into()]
            },
            false,
            Some("iprange")
        )
    );
    assert!(
        matches!(iprange[1], (MatchKind::Destination(a), true, None) if a.text == "10.1.0.0/16")
    );
    assert_eq!(
        kinds(&r[1]),
        vec![(
            &MatchKind::Unknown {
                args: ["--hashlimit-above", "5/sec", "!", "--hashlimit-name", "x y"]
                    .map(Into::into)
                    .to_vec()
            },
            false,
            Some("hashlimit")
        )]
    );
    // Module names are case-sensitive: `Comment` is not `comment`.
    assert!(r[2].comments.is_empty());
    assert_eq!(r[2].matches[0].module.as_deref(), Some("Comment"));
    assert_eq!(
        r[2].matches[0].kind,
        MatchKind::Unknown {
            args: vec!["--comment".into(), "capitalised is another module".into()]
        }
    );
    assert!(
        d.errors.iter().all(|e| !(10..=30).contains(&e.line)),
        "{:?}",
        d.errors
    );
}

#[test]
fn counters_are_read_from_brackets_and_from_dash_c() {
    let d = dump();
    let r = rules(&d, "filter", "cali-counters");
    let c: Vec<_> = r.iter().map(|x| x.counters).collect();
    assert_eq!(
        c,
        vec![
            Some(Counters {
                packets: 5,
                bytes: 300
            }),
            Some(Counters {
                packets: u64::MAX,
                bytes: 0
            }),
            Some(Counters {
                packets: 7,
                bytes: 8
            }),
        ]
    );
    // The evidence text keeps the bracket counters.
    assert!(r[0].text.starts_with("[5:300] -A cali-counters"));
    let input = d.table("filter").and_then(|t| t.chain("INPUT"));
    assert_eq!(
        input.and_then(|c| c.counters),
        Some(Counters {
            packets: 10,
            bytes: 2000
        })
    );
}

#[test]
fn marks_and_protocols_read_in_every_spelling_iptables_accepts() {
    let d = dump();
    let r = rules(&d, "filter", "cali-marks");
    assert_eq!(
        r[0].mark_matches().collect::<Vec<_>>(),
        vec![(0xFF, u32::MAX, false)]
    );
    assert_eq!(
        r[1].mark_matches().collect::<Vec<_>>(),
        vec![(u32::MAX, u32::MAX, false)]
    );
    let t = r[2].target.as_ref().expect("MARK");
    assert_eq!(
        t.kind,
        TargetKind::Mark(MarkTarget {
            op: MarkOp::SetXmark,
            value: u32::MAX,
            mask: Some(0)
        })
    );
    assert_eq!(t.args.len(), 2);
    assert_eq!(t.args[1], "0xffffffff/0x0");
    match &r[3].matches[0].kind {
        MatchKind::Protocol(p) => assert_eq!((p.name.as_str(), p.number), ("TCP", Some(6))),
        other => panic!("{other:?}"),
    }
    match &r[4].matches[0].kind {
        MatchKind::Protocol(p) => assert_eq!(p.number, Some(58)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncated_and_malformed_lines_are_errors_on_their_line_and_keep_their_rule() {
    let d = dump();
    let r = rules(&d, "nat", "POSTROUTING");
    assert_eq!(r.len(), 5, "every rule line is kept");
    let line = |i: usize| r[i].line;

    assert_eq!(
        errors_at(&d, line(0)),
        vec!["unterminated quote (truncated line?)"]
    );
    assert_eq!(r[0].comments, ["truncated here"]);

    // 2^32 is no mark: an error, and the option kept as written.
    assert_eq!(errors_at(&d, line(1)), vec!["bad mark `0x100000000`"]);
    assert_eq!(
        r[1].matches[0].kind,
        MatchKind::Option {
            name: "--mark".into(),
            args: vec!["0x100000000".into()]
        }
    );
    assert_eq!(
        errors_at(&d, line(2)),
        vec!["option --mark needs an argument"]
    );
    assert_eq!(errors_at(&d, line(3)), vec!["-j needs a target"]);
    assert!(r[3].target.is_none());
    // The last line also carries the missing COMMIT of the nat section.
    assert_eq!(
        errors_at(&d, line(4)),
        vec![
            "bad counters `[1:x]`",
            "table `nat` has no COMMIT (truncated dump?)"
        ]
    );
    assert_eq!(r[4].counters, None);
    assert_eq!(r[4].jump_target(), None);
    assert_eq!(
        r[4].target.as_ref().map(|t| t.kind.clone()),
        Some(TargetKind::Accept)
    );
}

#[test]
fn a_shared_text_reads_the_same_as_a_copied_one() {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/iptables/spelling-and-edge-cases.txt");
    let text = std::fs::read_to_string(&p).expect("fixture");
    let copied = iptables_save::parse(&text);
    let shared = iptables_save::parse_shared(&Arc::from(text.as_str()));
    let a: Vec<_> = copied.rules().map(|(_, _, r)| format!("{r:?}")).collect();
    let b: Vec<_> = shared.rules().map(|(_, _, r)| format!("{r:?}")).collect();
    assert_eq!(a, b);
    assert_eq!(copied.errors, shared.errors);
}
