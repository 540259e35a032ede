//! What the IP set parser reads from unusual member lines, in `ipset save` and `ipset list`
//! form: addresses written otherwise than `ipset` prints them, per-member options, blanks,
//! CRLF endings, a missing member, a set never created. Most lines of a real dump take a
//! shortcut (`add <set> <address>`); these results hold whichever way a line is read.

use std::path::Path;

use calisnap::parse::ipset::{self, Dump, Format};

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/ipset")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `(line, value as written, element as ipset prints it, options)` of a set's members.
fn members(d: &Dump, set: &str) -> Vec<(u32, String, String, Vec<String>)> {
    d.set(set)
        .unwrap_or_else(|| panic!("no set {set}"))
        .members
        .iter()
        .map(|m| {
            (
                m.line,
                m.value().into_owned(),
                m.key.to_string(),
                m.options().to_vec(),
            )
        })
        .collect()
}

fn row(line: u32, value: &str, key: &str, options: &[&str]) -> (u32, String, String, Vec<String>) {
    (
        line,
        value.to_string(),
        key.to_string(),
        options.iter().map(|o| o.to_string()).collect(),
    )
}

fn check_save(d: &Dump) {
    assert_eq!(d.format, Format::Save);
    let errors: Vec<(usize, &str)> = d
        .errors
        .iter()
        .map(|e| (e.line, e.message.as_str()))
        .collect();
    assert_eq!(errors, [(15, "add needs a set name and a member")]);

    let web = d.set("cali40s:web").expect("set");
    assert!(web.declared);
    assert_eq!((web.line, web.set_type.as_str()), (1, "hash:net"));
    let got = members(d, "cali40s:web");
    // The address members are compared as ipset prints them; the text as written is kept.
    assert_eq!(
        got[..4],
        [
            row(2, "10.65.0.7", "10.65.0.7", &[]),
            row(3, "10.65.1.0/24", "10.65.1.0/24", &[]),
            row(4, "10.65.2.9/32", "10.65.2.9", &[]),
            row(5, "10.65.3.5/24", "10.65.3.0/24", &[]),
        ]
    );
    // A leading zero is not how ipset prints an octet: kept as written, whatever it means.
    assert_eq!((got[4].0, got[4].1.as_str()), (6, "010.65.0.8"));
    assert_eq!(
        got[5..],
        [
            // Not an address: kept as text.
            row(7, "10.65.0.300", "10.65.0.300", &[]),
            row(8, "10.65.0.10", "10.65.0.10", &["timeout", "0"]),
            row(
                9,
                "10.65.0.11",
                "10.65.0.11",
                &["comment", "pod default/web-1"]
            ),
            row(10, "10.65.0.12", "10.65.0.12", &["nomatch"]),
            row(
                11,
                "10.65.0.13",
                "10.65.0.13",
                &["packets", "3", "bytes", "180"]
            ),
            row(12, "10.65.0.14", "10.65.0.14", &[]),
            row(13, "10.65.0.15", "10.65.0.15", &[]),
            // `-exist` is an instruction to `ipset restore`, not a member option.
            row(14, "10.65.0.16", "10.65.0.16", &[]),
            // Line 15 names no member; line 25 comes back to the set after others.
            row(25, "10.65.0.19", "10.65.0.19", &[]),
        ]
    );
    let nets: Vec<String> = web
        .members
        .iter()
        .take(4)
        .filter_map(|m| m.net().map(|n| n.to_string()))
        .collect();
    assert_eq!(
        nets,
        [
            "10.65.0.7/32",
            "10.65.1.0/24",
            "10.65.2.9/32",
            "10.65.3.5/24"
        ]
    );
    assert_eq!(web.members[5].net(), None);

    assert_eq!(
        members(d, "cali60s:web"),
        [
            row(17, "fd00:65::7", "fd00:65::7", &[]),
            row(18, "fd00:65::1:2/64", "fd00:65::/64", &[]),
        ]
    );
    let dns = d.set("cali40n:dns").expect("set");
    assert_eq!(
        dns.members[0].addr_port(),
        Some(("10.65.0.17".parse().unwrap(), "tcp".to_string(), 53))
    );
    // A zero-padded port is another text, so another member than `udp:53`.
    assert_eq!(
        members(d, "cali40n:dns")[1],
        row(21, "10.65.0.17,udp:053", "10.65.0.17,udp:053", &[])
    );
    let netport = d.set("cali40h:web").expect("set");
    assert_eq!(netport.members[0].value(), "10.65.0.0/16,tcp:80");
    assert_eq!(netport.members[0].net(), None);

    // Added to but never created: a set of the kernel's, not an error.
    let unknown = d.set("cali40s:unknown").expect("set");
    assert!(!unknown.declared);
    assert_eq!(unknown.line, 24);
    assert_eq!(
        members(d, "cali40s:unknown"),
        [row(24, "10.65.0.18", "10.65.0.18", &[])]
    );
    assert_eq!(d.records(), 9 + 5 + 2 + 2 + 1 + 1);
}

#[test]
fn odd_save_members_read_as_written_with_their_options_and_lines() {
    check_save(&ipset::parse(&fixture("save-odd-members.txt")));
}

#[test]
fn crlf_endings_change_nothing_in_a_save_dump() {
    let text = fixture("save-odd-members.txt").replace('\n', "\r\n");
    check_save(&ipset::parse(&text));
}

#[test]
fn a_dump_without_its_last_newline_reads_the_same() {
    let text = fixture("save-odd-members.txt");
    check_save(&ipset::parse(text.trim_end_matches('\n')));
}

fn check_list(d: &Dump) {
    assert_eq!(d.format, Format::List);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(
        members(d, "cali40s:web"),
        [
            row(9, "10.65.0.7", "10.65.0.7", &[]),
            row(10, "10.65.1.0/24", "10.65.1.0/24", &[]),
            row(11, "10.65.0.10", "10.65.0.10", &["timeout", "0"]),
            row(
                12,
                "10.65.0.11",
                "10.65.0.11",
                &["comment", "pod default/web-1"]
            ),
            row(13, "10.65.2.9/32", "10.65.2.9", &[]),
            row(14, "10.65.0.14", "10.65.0.14", &[]),
        ]
    );
    assert_eq!(
        members(d, "cali40n:dns"),
        [row(24, "10.65.0.17,tcp:53", "10.65.0.17,tcp:53", &[])]
    );
}

#[test]
fn odd_list_members_read_as_written_with_their_options_and_lines() {
    check_list(&ipset::parse(&fixture("list-odd-members.txt")));
}

#[test]
fn crlf_endings_change_nothing_in_a_list_dump() {
    check_list(&ipset::parse(
        &fixture("list-odd-members.txt").replace('\n', "\r\n"),
    ));
}

#[test]
fn many_adds_to_sets_in_turn_land_in_their_own_sets() {
    // Sets written one after another, then interleaved, as restore input may be.
    let mut text = String::new();
    for set in ["a", "b", "c"] {
        text.push_str(&format!("create {set} hash:ip family inet\n"));
        for i in 0..50 {
            text.push_str(&format!("add {set} 10.0.{}.{i}\n", set.as_bytes()[0]));
        }
    }
    for i in 0..30 {
        let set = ["a", "b", "c"][i % 3];
        text.push_str(&format!("add {set} 10.1.{}.{i}\n", set.as_bytes()[0]));
    }
    let d = ipset::parse(&text);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    for set in ["a", "b", "c"] {
        let s = d.set(set).expect("set");
        assert_eq!(s.members.len(), 60);
        let third = format!(".{}.", set.as_bytes()[0]);
        assert!(
            s.members.iter().all(|m| m.value().contains(&third)),
            "{set}"
        );
    }
}
