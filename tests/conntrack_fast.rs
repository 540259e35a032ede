//! The fast reader of `conntrack -L` lines and the general one read every file to the same
//! table: same entries, counts, groups, errors and line numbers.

use std::path::{Path, PathBuf};

use calisnap::parse::conntrack::{self, Reader, Table};
use proptest::prelude::*;

fn odd_lines() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/conntrack/odd-lines.txt");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn table(text: &str, first_line: usize, reader: Reader) -> String {
    let t: Table = conntrack::parse_chunk_with(text, first_line, reader);
    format!("{t:#?}")
}

/// Both readers give the same table, and the fast one agrees line by line with the general.
fn assert_same(text: &str, what: &str) {
    for first_line in [1, 1000] {
        let fast = table(text, first_line, Reader::Fast);
        let general = table(text, first_line, Reader::General);
        assert!(
            fast == general,
            "{what} (from line {first_line}):\n{fast}\n---\n{general}"
        );
    }
    for (i, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(e) = conntrack::entry_fast(i + 1, line) {
            assert_eq!(
                conntrack::entry_general(i + 1, line.trim()),
                Ok(e),
                "{what}:{}: {line:?}",
                i + 1
            );
        }
    }
}

#[test]
fn odd_lines_read_the_same_with_both_readers() {
    assert_same(&odd_lines(), "odd-lines.txt");
}

#[test]
fn odd_lines_with_crlf_read_the_same_with_both_readers() {
    assert_same(
        &odd_lines().replace('\n', "\r\n"),
        "odd-lines.txt with CRLF",
    );
}

#[test]
fn every_odd_line_alone_reads_the_same_with_both_readers() {
    for (i, line) in odd_lines().lines().enumerate() {
        assert_same(line, &format!("line {}", i + 1));
        assert_same(
            &format!("{line}\n"),
            &format!("line {} with a newline", i + 1),
        );
    }
}

#[test]
fn the_fast_reader_takes_the_lines_conntrack_prints() {
    // The first lines of the fixture are the layouts conntrack prints: none may be left to
    // the general reader, or the fast one would be fast for nothing.
    let text = odd_lines();
    for (i, line) in text.lines().take(16).enumerate() {
        assert!(
            conntrack::entry_fast(i + 1, line).is_some(),
            "line {}: {line:?}",
            i + 1
        );
    }
}

#[test]
fn the_fast_reader_leaves_events_messages_and_broken_lines_to_the_general_one() {
    for line in [
        "[DESTROY] tcp      6 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1",
        "conntrack v1.4.6 (conntrack-tools): 3 flow entries have been shown.",
        "cpu=0 found=0 invalid=12",
        "1234",
        "tcp      6 10 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 mark=0 use=1",
        "tcp      6 10 ESTABLISHED src=10.0.0.1\tdst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1",
    ] {
        assert_eq!(conntrack::entry_fast(1, line), None, "{line:?}");
    }
}

/// Conntrack captures in the repository's own fixtures, and in the shared corpus when present.
fn conntrack_files(root: &Path, into: &mut Vec<PathBuf>) {
    let Ok(dir) = std::fs::read_dir(root) else {
        return;
    };
    for entry in dir.flatten() {
        let path = entry.path();
        if path.is_dir() {
            conntrack_files(&path, into);
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains("conntrack"))
        {
            into.push(path);
        }
    }
}

#[test]
fn every_conntrack_fixture_reads_the_same_with_both_readers() {
    let mut files = Vec::new();
    conntrack_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata"),
        &mut files,
    );
    assert!(files.len() > 10, "{files:?}");
    for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        assert_same(&text, &path.display().to_string());
    }
}

#[test]
fn every_conntrack_file_of_the_shared_corpus_reads_the_same_with_both_readers() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    if !shared.exists() {
        eprintln!("skipped: {} does not exist", shared.display());
        return;
    }
    let mut files = Vec::new();
    conntrack_files(&shared.join("corpus"), &mut files);
    for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        assert_same(&text, &path.display().to_string());
    }
}

/// Pieces of flow lines, right and wrong, to shuffle.
const PIECES: &[&str] = &[
    "tcp",
    "udp",
    "icmp",
    "ipv4",
    "ipv6",
    "unknown",
    "6",
    "17",
    "1",
    "2",
    "10",
    "0",
    "431999",
    "99999999999",
    "ESTABLISHED",
    "SYN_SENT",
    "BOGUS",
    "src=10.0.0.1",
    "dst=10.0.0.2",
    "src=10.0.0.01",
    "dst=255.255.255.256",
    "src=fd00::1",
    "dst=::ffff:1.2.3.4",
    "sport=1",
    "dport=65535",
    "sport=65536",
    "dport=+2",
    "type=8",
    "code=0",
    "id=17",
    "id=70000",
    "[UNREPLIED]",
    "[ASSURED]",
    "[OFFLOAD]",
    "mark=0",
    "mark=0x10",
    "mark=4294967296",
    "zone=3",
    "zone=",
    "use=1",
    "use=01",
    "packets=3",
    "bytes=120",
    "labels=0x1",
    "=",
    "x=y",
    "é",
    "[NEW]",
];

proptest! {
    #[test]
    fn shuffled_lines_read_the_same_with_both_readers(
        lines in prop::collection::vec(
            (
                prop::collection::vec((0..PIECES.len(), prop::sample::select(vec![" ", "  ", " ", "\t"])), 0..24),
                prop::bool::ANY,
            ),
            1..6,
        )
    ) {
        let mut text = String::new();
        for (pieces, crlf) in &lines {
            // Around a valid flow, so that most lines are entries and the fast reader is tried.
            let (before, after) = pieces.split_at(pieces.len() / 2);
            text.push_str("tcp      6 10 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2");
            for (p, sep) in before {
                text.push_str(sep);
                text.push_str(PIECES[*p]);
            }
            text.push_str(" src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1");
            for (p, sep) in after {
                text.push_str(sep);
                text.push_str(PIECES[*p]);
            }
            text.push_str(if *crlf { "\r\n" } else { "\n" });
        }
        let fast = table(&text, 1, Reader::Fast);
        let general = table(&text, 1, Reader::General);
        prop_assert_eq!(fast, general);
    }

    #[test]
    fn canonical_lines_with_any_numbers_read_the_same_with_both_readers(
        a in any::<[u8; 4]>(), b in any::<[u8; 4]>(), sport in 0u32..70_000, dport in any::<u16>(),
        timeout in 0u64..5_000_000_000, mark in 0u64..5_000_000_000, unreplied in prop::bool::ANY,
    ) {
        let (a, b) = (std::net::Ipv4Addr::from(a), std::net::Ipv4Addr::from(b));
        let flag = if unreplied { "[UNREPLIED] " } else { "" };
        let line = format!(
            "tcp      6 {timeout} ESTABLISHED src={a} dst={b} sport={sport} dport={dport} {flag}src={b} dst={a} sport={dport} dport={sport} [ASSURED] mark={mark} use=1"
        );
        let fast = table(&line, 1, Reader::Fast);
        let general = table(&line, 1, Reader::General);
        prop_assert_eq!(fast, general);
    }
}
