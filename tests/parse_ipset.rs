//! ipset list / save / restore parser against fixtures under `testdata/artifacts/ipset/` and,
//! when present, the shared corpus.

use std::path::{Path, PathBuf};

use calisnap::parse::ipset::{self, Format};

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/artifacts/ipset")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Members as a plain line filter counts them: `add` lines, or the lines after `Members:` up
/// to a blank line or the next `Name:`.
fn count_members(text: &str) -> usize {
    let mut n = 0;
    let mut in_members = false;
    for l in text.lines().map(str::trim) {
        if l.starts_with("add ") {
            n += 1;
        } else if l == "Members:" {
            in_members = true;
        } else if l.is_empty() || l.starts_with("Name:") {
            in_members = false;
        } else if in_members {
            n += 1;
        }
    }
    n
}

#[test]
fn ipset_list_of_calico_sets_reads_headers_and_members() {
    let text = fixture("ipset-list-calico.txt");
    let d = ipset::parse(&text);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.format, Format::List);
    assert_eq!(d.sets.len(), 5);
    assert_eq!(d.records(), 8);
    assert_eq!(d.records(), count_members(&text));

    let s = d.set("cali40s:qUkQoCdpJMVKYrLBHKjBA8").expect("set");
    assert_eq!(s.line, 11);
    assert_eq!(s.set_type, "hash:net");
    assert_eq!(s.revision, Some(7));
    assert_eq!(s.family.as_deref(), Some("inet"));
    assert_eq!((s.hashsize, s.maxelem), (Some(1024), Some(1048576)));
    assert_eq!(s.option("initval"), Some("0x5e2b1c4d"));
    assert_eq!(
        (s.size_in_memory, s.references, s.declared_entries),
        (Some(632), Some(2), Some(3))
    );
    assert_eq!(s.members[0].line, 19);
    assert_eq!(
        s.members_as_nets(),
        vec![
            "10.65.1.7/32".parse().unwrap(),
            "10.65.2.0/24".parse().unwrap(),
            "10.65.3.19/32".parse().unwrap()
        ]
    );

    let empty = d.set("cali40s:Ps4xbfXdFiz1TxOAtYxfvJ").expect("empty set");
    assert!(empty.members.is_empty());
    assert_eq!(empty.declared_entries, Some(0));

    let named = d
        .set("cali40n:WyDv3NxbgYfHq2SQMw6UDg")
        .expect("named-port set");
    assert_eq!(named.set_type, "hash:ip,port");
    assert!(named.members_as_nets().is_empty());
    assert_eq!(
        named.members[1].addr_port(),
        Some(("10.244.0.17".parse().unwrap(), "udp".to_string(), 53))
    );

    let v6 = d.set("cali60s:0RSdCvrcIzqrbD8RjNEx09").expect("v6 set");
    assert_eq!(v6.family.as_deref(), Some("inet6"));
    // The last member has no blank line after it.
    assert_eq!(
        v6.members_as_nets(),
        vec![
            "fd00:10:244:0:a1b2:c3d4:e5f6:1/128".parse().unwrap(),
            "fd00:10:245::/64".parse().unwrap()
        ]
    );
}

#[test]
fn older_ipset_list_with_crlf_trailing_spaces_and_member_options() {
    let text = fixture("ipset-list-old-crlf-no-count.txt");
    assert!(text.contains("\r\n"), "fixture must keep its CRLF endings");
    let d = ipset::parse(&text);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let s = d.set("cali4-s:7tzYYYr-ALSbjv0F4OkN8_").expect("set");
    assert_eq!(s.revision, None);
    assert_eq!(s.declared_entries, None);
    assert_eq!(s.option("timeout"), Some("600"));
    assert_eq!(s.option("comment"), Some(""));
    assert_eq!(s.members[0].value(), "10.65.0.3");
    assert_eq!(
        s.members[0].options(),
        ["timeout", "0", "comment", "pod a/b"]
    );
    assert_eq!(s.members[1].options(), ["timeout", "541"]);
    assert_eq!(
        d.set("cali4-all-ipam-pools").and_then(|s| s.maxelem),
        Some(1048576)
    );
}

#[test]
fn ipset_save_reads_create_and_add_lines() {
    let text = fixture("ipset-save.txt");
    let d = ipset::parse(&text);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.format, Format::Save);
    assert_eq!(d.records(), count_members(&text));
    let names: Vec<&str> = d.sets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "cali40all-ipam-pools",
            "cali40s:qUkQoCdpJMVKYrLBHKjBA8",
            "cali40n:WyDv3NxbgYfHq2SQMw6UDg",
            "cali40s:Ps4xbfXdFiz1TxOAtYxfvJ"
        ]
    );
    let s = d.set("cali40s:qUkQoCdpJMVKYrLBHKjBA8").expect("set");
    assert!(s.declared);
    assert_eq!(s.line, 3);
    assert_eq!(s.members.iter().map(|m| m.line).collect::<Vec<_>>(), [4, 5]);
    assert_eq!(s.option("bucketsize"), Some("12"));
    assert!(
        d.set("cali40s:Ps4xbfXdFiz1TxOAtYxfvJ")
            .is_some_and(|s| s.members.is_empty())
    );
}

#[test]
fn felix_restore_input_is_replayed_swap_destroy_and_deltas() {
    let d = ipset::parse(&fixture("felix-ipset-restore-input.txt"));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.format, Format::Save);
    assert!(d.set("cali4t0").is_none(), "temporary set was destroyed");
    let s = d.set("cali40s:qUkQoCdpJMVKYrLBHKjBA8").expect("swapped in");
    assert_eq!(s.set_type, "hash:net");
    assert_eq!(
        s.members
            .iter()
            .map(|m| (m.line, m.value().into_owned()))
            .collect::<Vec<_>>(),
        [
            (2, "10.65.1.7".to_string()),
            (3, "10.65.4.0/24".to_string())
        ]
    );
    let delta = d.set("cali40all-ipam-pools").expect("delta target");
    assert!(!delta.declared);
    assert_eq!(delta.members.len(), 1);
}

#[test]
fn upstream_list_outputs_without_revision_parse_cleanly() {
    let d = ipset::parse(&fixture(
        "upstream-hash-net-list-no-revision-trailing-space.txt",
    ));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let s = d.set("test").expect("set");
    assert_eq!(s.option("timeout"), Some("6"));
    assert!(s.members.is_empty());

    let d = ipset::parse(&fixture("upstream-hash-ip6-list-timeout-member.txt"));
    let s = d.set("test").expect("set");
    assert_eq!(s.option("netmask"), Some("64"));
    assert_eq!(s.members[0].value(), "200:100:10::");
    assert_eq!(s.members[0].options(), ["timeout", "0"]);
    assert_eq!(
        s.members_as_nets(),
        vec!["200:100:10::/128".parse().unwrap()]
    );
}

#[test]
fn unknown_lines_are_errors_with_their_line_and_parsing_goes_on() {
    let d = ipset::parse("create a hash:ip\n$ ipset save\nadd a 10.0.0.1\nbogus\n");
    assert_eq!(d.errors.iter().map(|e| e.line).collect::<Vec<_>>(), [2, 4]);
    assert_eq!(d.records(), 1);
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
fn every_corpus_ipset_file_parses_and_counts_every_member() {
    let Some(files) = shared_corpus("ipset") else {
        return;
    };
    assert!(!files.is_empty());
    for p in files {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let d = ipset::parse(&text);
        let name = p.display().to_string();
        assert_eq!(d.records(), count_members(&text), "{name}");
        assert!(d.errors.is_empty(), "{name}: {:?}", d.errors);
    }
}

mod never_panics {
    use calisnap::parse::ipset;
    use proptest::prelude::*;

    const FRAGMENTS: &[&str] = &[
        "Name:",
        "Type:",
        "Header:",
        "Members:",
        "Revision:",
        "Number of entries:",
        "x",
        "hash:ip",
        "family",
        "inet",
        "create",
        "add",
        "del",
        "swap",
        "destroy",
        "flush",
        "rename",
        "COMMIT",
        "10.0.0.1",
        "10.0.0.1,tcp:53",
        "timeout",
        "0",
        "\"",
        "-exist",
        "é",
        "\n",
        "\r\n",
        "\n\n",
    ];

    proptest! {
        #[test]
        fn arbitrary_fragments_never_panic(parts in prop::collection::vec(prop::sample::select(FRAGMENTS), 0..60)) {
            let _ = ipset::parse(&parts.join(" "));
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
            let _ = ipset::parse(&text);
        }
    }
}
