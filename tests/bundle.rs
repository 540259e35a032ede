//! Opening bundles the way customers send them: folders, tarballs, single files, damaged and
//! hostile archives.

use std::io::Write;
use std::path::{Path, PathBuf};

use calisnap::bundle::{ArtifactKind, Bundle, Layout, Limits};

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}

const DEMO: &str = "bundles/calico-bundle-demo-20261125T140215Z";
const NODE_DIAGS: &str = "bundles/node-diags-node-2";

type Row = (String, &'static str, Option<String>, usize, u64, usize);

fn inventory(b: &Bundle) -> Vec<Row> {
    b.artifacts
        .iter()
        .map(|a| {
            (
                a.path.clone(),
                a.kind.as_str(),
                a.node.clone(),
                a.parsed.records(),
                a.bytes,
                a.errors().len(),
            )
        })
        .collect()
}

/// Pack a folder as `<top>/…` into a tar (gzipped or not), like `tar czf x.tgz top`.
fn pack(dir: &Path, top: &str, gzip: bool, out: &Path) {
    let file = std::fs::File::create(out).unwrap();
    let writer: Box<dyn Write> = if gzip {
        Box::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        ))
    } else {
        Box::new(file)
    };
    let mut tar = tar::Builder::new(writer);
    tar.append_dir_all(top, dir).unwrap();
    tar.into_inner().unwrap().flush().unwrap();
}

#[test]
fn demo_tarball_analyses_to_the_same_inventory_as_its_folder() {
    let dir = testdata(DEMO);
    let tmp = tempfile::tempdir().unwrap();
    let tgz = tmp
        .path()
        .join("calico-bundle-demo-20261125T140215Z.tar.gz");
    pack(&dir, "calico-bundle-demo-20261125T140215Z", true, &tgz);
    let from_dir = Bundle::open(&dir).unwrap();
    let from_tgz = Bundle::open(&tgz).unwrap();
    assert_eq!(from_dir.layout, Layout::CalicoBundle);
    assert_eq!(from_tgz.layout, Layout::CalicoBundle);
    assert_eq!(inventory(&from_dir), inventory(&from_tgz));
    assert_eq!(from_dir.nodes, vec!["node-1", "node-2"]);
    let ipt = from_dir
        .artifacts
        .iter()
        .find(|a| a.path == "nodes/node-1/iptables-save.txt")
        .unwrap();
    assert_eq!(ipt.kind, ArtifactKind::IptablesSave);
    assert_eq!(ipt.node.as_deref(), Some("node-1"));
}

#[test]
fn node_diags_tarball_analyses_to_the_same_inventory_as_its_folder() {
    let dir = testdata(NODE_DIAGS).join("diagnostics");
    let tmp = tempfile::tempdir().unwrap();
    let tgz = tmp.path().join("diags-20261125_140213.tar.gz");
    pack(&dir, "diagnostics", true, &tgz);
    let from_dir = Bundle::open(&testdata(NODE_DIAGS)).unwrap();
    let from_tgz = Bundle::open(&tgz).unwrap();
    assert_eq!(from_tgz.layout, Layout::CalicoctlNodeDiags);
    assert_eq!(from_dir.layout, Layout::CalicoctlNodeDiags);
    assert_eq!(inventory(&from_dir), inventory(&from_tgz));
    let kinds: Vec<(&str, &str)> = from_tgz
        .artifacts
        .iter()
        .map(|a| (a.path.as_str(), a.kind.as_str()))
        .collect();
    for expected in [
        ("ipv4_tables", "iptables-save"),
        ("ipv6_tables", "ip6tables-save"),
        ("ipsets", "ipset-list"),
        ("ipv4_route", "ip-route"),
        ("ipv4_addr", "ip-addr"),
        ("logs/felix/current", "felix-log"),
        ("hostname", "hostname"),
        ("netstat", "unknown"),
    ] {
        assert!(kinds.contains(&expected), "{expected:?} not in {kinds:?}");
    }
    assert!(
        from_tgz
            .artifacts
            .iter()
            .filter(|a| a.kind != ArtifactKind::Unknown)
            .all(|a| a.node.as_deref() == Some("node-2"))
    );
}

#[test]
fn an_uncompressed_tar_reads_like_the_folder() {
    let dir = testdata(DEMO);
    let tmp = tempfile::tempdir().unwrap();
    let tar = tmp.path().join("bundle.tar");
    pack(&dir, "calico-bundle-demo-20261125T140215Z", false, &tar);
    assert_eq!(
        inventory(&Bundle::open(&dir).unwrap()),
        inventory(&Bundle::open(&tar).unwrap())
    );
}

#[test]
fn a_single_file_is_one_artifact_recognised_by_content() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("dump-from-customer.bin");
    std::fs::copy(testdata(DEMO).join("nodes/node-1/ipset-save.txt"), &f).unwrap();
    let b = Bundle::open(&f).unwrap();
    assert_eq!(b.layout, Layout::Loose);
    assert_eq!(b.artifacts.len(), 1);
    assert_eq!(b.artifacts[0].kind, ArtifactKind::IpsetSave);
    assert_eq!(b.artifacts[0].path, "dump-from-customer.bin");
}

#[test]
fn a_gzipped_single_file_is_read_through() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("felix.log.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&f).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(&std::fs::read(testdata(DEMO).join("nodes/node-2/felix.log")).unwrap())
        .unwrap();
    gz.finish().unwrap();
    let b = Bundle::open(&f).unwrap();
    assert_eq!(b.artifacts.len(), 1);
    assert_eq!(b.artifacts[0].path, "felix.log");
    assert_eq!(b.artifacts[0].kind, ArtifactKind::FelixLog);
    assert!(b.artifacts[0].errors().is_empty());
}

fn tar_with(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        if kind.is_symlink() {
            h.set_link_name("/etc/shadow").unwrap();
            h.set_size(0);
        }
        // Write the raw name so that `..` survives (the builder would refuse it).
        let name = h.as_old_mut().name.as_mut();
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        tar.append(&h, *data).unwrap();
    }
    tar.into_inner().unwrap()
}

#[test]
fn hostile_paths_and_links_are_labels_never_files() {
    let ipt = b"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n";
    let bytes = tar_with(&[
        ("../../etc/cron.d/x", tar::EntryType::Regular, ipt),
        ("/abs/path", tar::EntryType::Regular, b"hello\n"),
        ("link", tar::EntryType::Symlink, b""),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("evil.tar");
    std::fs::write(&f, bytes).unwrap();
    let b = Bundle::open(&f).unwrap();
    let paths: Vec<&str> = b.artifacts.iter().map(|a| a.path.as_str()).collect();
    assert_eq!(paths, vec!["../../etc/cron.d/x", "abs/path"]);
    assert_eq!(b.artifacts[0].kind, ArtifactKind::IptablesSave);
    assert!(
        b.notes.iter().any(|n| n.contains("link in archive")),
        "{:?}",
        b.notes
    );
    assert!(!tmp.path().join("etc").exists());
}

#[test]
fn limits_stop_an_archive_bomb_with_a_note() {
    let big = vec![b'a'; 4096];
    let entries: Vec<(String, Vec<u8>)> = (0..20).map(|i| (format!("f{i}"), big.clone())).collect();
    let refs: Vec<(&str, tar::EntryType, &[u8])> = entries
        .iter()
        .map(|(p, d)| (p.as_str(), tar::EntryType::Regular, d.as_slice()))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("bomb.tar");
    std::fs::write(&f, tar_with(&refs)).unwrap();
    let limits = Limits {
        max_entries: 1000,
        max_total_bytes: 10_000,
        max_entry_bytes: 3000,
        max_in_flight_bytes: 1 << 20,
        chunk_bytes: 1 << 20,
    };
    let b = Bundle::open_with(&f, limits).unwrap();
    let read: u64 = b.artifacts.iter().map(|a| a.bytes.min(3000)).sum();
    assert!(b.artifacts.len() < 20, "read {} entries", b.artifacts.len());
    assert!(read <= 12_000);
    assert!(
        b.artifacts[0]
            .errors()
            .iter()
            .any(|e| e.message.contains("first 3000 of 4096"))
    );
    assert!(b.notes.iter().any(|n| n.contains("limit")), "{:?}", b.notes);
    let few = Limits {
        max_entries: 3,
        ..Limits::default()
    };
    let b = Bundle::open_with(&f, few).unwrap();
    assert_eq!(b.artifacts.len(), 3);
    assert!(b.notes.iter().any(|n| n.contains("more than 3 entries")));
}

#[test]
fn a_truncated_tarball_yields_what_was_read_and_says_where_it_broke() {
    let dir = testdata(DEMO);
    let tmp = tempfile::tempdir().unwrap();
    let tgz = tmp.path().join("b.tar.gz");
    pack(&dir, "top", true, &tgz);
    let bytes = std::fs::read(&tgz).unwrap();
    let cut = tmp.path().join("cut.tar.gz");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let b = Bundle::open(&cut).unwrap();
    assert!(!b.artifacts.is_empty());
    assert!(
        b.notes
            .iter()
            .any(|n| n.contains("damaged or truncated") || n.contains("read failed")),
        "{:?}",
        b.notes
    );
}

#[test]
fn a_missing_path_is_an_error_naming_it() {
    let e = Bundle::open(Path::new("no/such/bundle.tgz")).unwrap_err();
    assert!(e.to_string().starts_with("no/such/bundle.tgz: "), "{e}");
}

#[test]
fn zip_archives_are_refused_with_a_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("sysdump.zip");
    std::fs::write(&f, b"PK\x03\x04rest-of-zip").unwrap();
    let e = Bundle::open(&f).unwrap_err();
    assert!(
        e.to_string().contains("zip archives are not supported"),
        "{e}"
    );
}

/// Every corpus file is recognised as the kind its INDEX section stands for.
#[test]
fn corpus_files_are_detected_as_their_index_says() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    if !corpus.exists() {
        eprintln!("skipped: ../shared/corpus is not present");
        return;
    }
    let expected = |dir: &str| match dir {
        "iptables" => "iptables-save",
        "ipset" => "ipset-list",
        "nft" => "nft-ruleset",
        "bpf" => "calico-bpf-dump",
        "felix-log" => "felix-log",
        "calicoctl-yaml" => "calico-resources",
        "diags-layout" => "unknown",
        other => panic!("corpus folder {other} has no expected kind"),
    };
    let mut seen = 0;
    for dir in std::fs::read_dir(&corpus).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            let b = Bundle::open(&f).unwrap();
            assert_eq!(b.artifacts.len(), 1);
            assert_eq!(
                b.artifacts[0].kind.as_str(),
                expected(&name),
                "{}",
                f.display()
            );
            seen += 1;
        }
    }
    assert!(seen >= 20, "only {seen} corpus files");
}

/// Big logs and conntrack tables are parsed in chunks cut at line boundaries and merged; the
/// result must be the same as parsing the file whole.
#[test]
fn chunked_parsing_of_logs_and_conntrack_equals_the_whole_file_parse() {
    use calisnap::parse::Parsed;
    for rel in [
        "artifacts/felix-log/calico-node-v3.26.log",
        "artifacts/felix-log/svlogd-current.log",
        "artifacts/felix-log/ebpf-verifier-reject.log",
        "artifacts/conntrack/list.txt",
        "artifacts/conntrack/extended.txt",
    ] {
        let path = testdata(rel);
        let whole = Bundle::open(&path).unwrap();
        let tiny = Limits {
            chunk_bytes: 200,
            ..Limits::default()
        };
        let chunked = Bundle::open_with(&path, tiny).unwrap();
        let (w, c) = (&whole.artifacts[0], &chunked.artifacts[0]);
        assert_eq!(w.kind, c.kind, "{rel}");
        assert_eq!(w.parsed.records(), c.parsed.records(), "{rel}");
        assert_eq!(w.parsed.errors(), c.parsed.errors(), "{rel}");
        match (&w.parsed, &c.parsed) {
            (Parsed::FelixLog(a), Parsed::FelixLog(b)) => {
                let lines = |l: &calisnap::parse::felix_log::Log| {
                    l.records
                        .iter()
                        .map(|r| (r.line, r.end_line, r.message.clone()))
                        .collect::<Vec<_>>()
                };
                assert_eq!(lines(a), lines(b), "{rel}");
                assert!(a.total > 0, "{rel}");
            }
            (Parsed::Conntrack(a), Parsed::Conntrack(b)) => {
                assert_eq!(a.counts, b.counts, "{rel}");
                assert_eq!(a.sample, b.sample, "{rel}");
                assert_eq!(a.unreplied, b.unreplied, "{rel}");
                assert_eq!(a.established, b.established, "{rel}");
                assert!(!a.sample.is_empty(), "{rel}");
            }
            other => panic!("{rel}: unexpected {other:?}"),
        }
    }
}
