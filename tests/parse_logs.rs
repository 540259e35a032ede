//! Felix / calico-node log parsing: fixtures under testdata/artifacts/felix-log, chunked
//! parsing equals whole-file parsing, and a sweep over the shared corpus.

use std::path::{Path, PathBuf};

use calisnap::parse::felix_log::{self, Format, Level, Log};

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/artifacts/felix-log")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Everything a caller can see of a parsed log, for equality between parses.
fn visible(log: &Log) -> String {
    format!(
        "{:#?}",
        (
            &log.records,
            log.total,
            log.by_level,
            log.first_ts,
            log.last_ts,
            log.dropped,
            log.lines,
            &log.versions,
            &log.errors,
        )
    )
}

/// Byte offsets where each line starts (after the first), so chunks split at line boundaries.
fn line_starts(text: &str) -> Vec<usize> {
    text.char_indices()
        .filter(|&(_, c)| c == '\n')
        .map(|(i, _)| i + 1)
        .collect()
}

fn parse_in_chunks(text: &str, cuts: &[usize]) -> Log {
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(text.len());
    let mut merged = Log::default();
    for w in bounds.windows(2) {
        let first_line = text[..w[0]].matches('\n').count() + 1;
        merged.merge(felix_log::parse_chunk(&text[w[0]..w[1]], first_line));
    }
    merged
}

const ALL_FIXTURES: &[&str] = &[
    "ebpf-verifier-reject.log",
    "calico-node-v3.26.log",
    "svlogd-current.log",
    "kubectl-prefix.log",
    "kubectl-cri.log",
    "logrus-cli-klog.log",
    "crlf.log",
];

#[test]
fn modern_log_counts_every_record_once_and_keeps_the_notable_ones() {
    let log = felix_log::parse(&fixture("calico-node-v3.26.log"));
    assert_eq!(log.lines, 28);
    assert_eq!(log.records(), 19);
    assert_eq!(log.count(Level::Info), 12);
    assert_eq!(log.count(Level::Debug), 1);
    assert_eq!(log.count(Level::Warning), 3);
    assert_eq!(log.count(Level::Error), 1);
    assert_eq!(log.count(Level::Panic), 1);
    assert_eq!(log.count(Level::Fatal), 1);
    let lines: Vec<usize> = log.records.iter().map(|r| r.line).collect();
    assert_eq!(lines, vec![2, 5, 8, 9, 10, 12, 14, 15, 25, 27]);
    assert_eq!(log.dropped, 0);
    assert!(log.errors.is_empty(), "{:?}", log.errors);
    assert_eq!(
        log.first_ts.map(|t| t.to_string()).as_deref(),
        Some("2023-06-02 10:15:30.118")
    );
    assert_eq!(
        log.last_ts.map(|t| t.to_string()).as_deref(),
        Some("2023-06-02 10:15:35.701")
    );
}

#[test]
fn felix_version_is_read_from_startup_lines_with_their_line_numbers() {
    let log = felix_log::parse(&fixture("calico-node-v3.26.log"));
    let found: Vec<(usize, &str)> = log
        .versions
        .iter()
        .map(|v| (v.line, v.version.as_str()))
        .collect();
    assert_eq!(found, vec![(2, "v3.26.1"), (5, "v3.26.1"), (25, "v3.26.1")]);
    assert_eq!(log.version().map(|v| v.line), Some(25));
    assert_eq!(log.versions[0].source, "Felix starting up");
}

#[test]
fn restore_failure_fields_are_unquoted_with_go_escapes_decoded() {
    let log = felix_log::parse(&fixture("calico-node-v3.26.log"));
    let r = log.records.iter().find(|r| r.line == 9).expect("line 9");
    assert_eq!(r.level, Level::Warning);
    assert_eq!(r.component.as_deref(), Some("felix"));
    assert_eq!(r.file.as_deref(), Some("table.go"));
    assert_eq!(r.src_line, Some(1543));
    assert_eq!(r.message, "Failed to execute ip(6)tables-restore command");
    assert_eq!(r.field("error"), Some("exit status 1"));
    assert_eq!(
        r.field("input"),
        Some(
            "*filter\n:cali-fw-cali1b2c3d4e5f6 - -\n-A cali-fw-cali1b2c3d4e5f6 -m comment --comment \"cali:xyz123\" --jump cali-pro-_Kd2Zr3dq3V4sO2tkFWX\nCOMMIT\n"
        )
    );
    assert!(
        r.field("errorOutput")
            .is_some_and(|e| e.contains("\n\nError occurred at line: 4\n"))
    );
    assert_eq!(r.field("output"), Some(""));
    assert_eq!(r.field("table"), Some("filter"));
    let keys: Vec<&str> = r.fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "error",
            "errorOutput",
            "input",
            "ipVersion",
            "output",
            "table"
        ]
    );
}

#[test]
fn a_panic_and_its_goroutine_trace_are_one_record() {
    let log = felix_log::parse(&fixture("calico-node-v3.26.log"));
    let r = log.records.iter().find(|r| r.line == 15).expect("line 15");
    assert_eq!(r.level, Level::Panic);
    assert_eq!(r.end_line, 24);
    assert!(
        r.message
            .starts_with("Failed to set up dataplane: unknown iptables backend")
    );
    assert!(
        r.field("error").is_some_and(
            |e| e.contains("goroutine 1 [running]:") && e.contains("calico-felix.go:49")
        )
    );
}

#[test]
fn klog_and_bird_lines_inside_a_felix_log_are_records_of_their_own() {
    let log = felix_log::parse(&fixture("calico-node-v3.26.log"));
    let k = log.records.iter().find(|r| r.line == 12).expect("klog");
    assert_eq!(k.format, Format::Klog);
    assert_eq!(k.level, Level::Warning);
    assert_eq!(k.pid, Some(70));
    assert_eq!(k.file.as_deref(), Some("warnings.go"));
    assert_eq!(k.src_line, Some(70));
    assert!(k.message.starts_with("policy/v1beta1 PodDisruptionBudget"));
    // The BIRD line (13) is a record, so the klog record ends at 12.
    assert_eq!(k.end_line, 12);
}

#[test]
fn messages_that_contain_key_value_text_keep_it_when_keys_are_out_of_order() {
    let log = felix_log::parse(
        "2023-06-02 10:15:32.000 [WARNING][70] felix/x.go 1: Summarising: zzz=1 longest=75ms error=boom\n",
    );
    let r = &log.records[0];
    // Calico sorts field keys, so `zzz=1 longest=…` cannot be the start of the fields.
    assert_eq!(r.message, "Summarising: zzz=1 longest=75ms");
    assert_eq!(r.field("error"), Some("boom"));
}

#[test]
fn svlogd_stamps_are_stripped_and_old_lines_without_component_are_read() {
    let log = felix_log::parse(&fixture("svlogd-current.log"));
    assert_eq!(log.records(), 6);
    assert_eq!(log.versions.len(), 1);
    assert_eq!(log.versions[0].version, "v3.7.0");
    let lines: Vec<usize> = log.records.iter().map(|r| r.line).collect();
    assert_eq!(lines, vec![1, 3, 4, 5]);
    let w = &log.records[2];
    assert_eq!(w.component, None);
    assert_eq!(w.file.as_deref(), Some("ipsets.go"));
    assert_eq!(w.src_line, Some(634));
    assert_eq!(
        w.field("stderr"),
        Some(
            "ipset v6.38: Error in line 3: Element cannot be added to the set: it's already added\n"
        )
    );
    assert_eq!(
        log.first_ts.map(|t| t.to_string()).as_deref(),
        Some("2019-05-14 09:12:41.318")
    );
}

#[test]
fn kubectl_and_stern_prefixes_and_quote_marks_are_stripped_from_every_line() {
    let log = felix_log::parse(&fixture("kubectl-prefix.log"));
    assert_eq!(log.records(), 5);
    let spans: Vec<(usize, usize)> = log.records.iter().map(|r| (r.line, r.end_line)).collect();
    assert_eq!(spans, vec![(1, 1), (2, 2), (3, 4), (5, 5), (6, 7)]);
    assert_eq!(log.records[1].field("ifaceName"), Some("vxlan.calico"));
    assert_eq!(log.records[1].field("error"), Some("file exists"));
    assert_eq!(log.versions[0].line, 1);
    assert_eq!(
        log.records[4].message,
        "Failed to complete ipset restore, IP sets may be out-of-sync."
    );
}

#[test]
fn cri_log_files_are_read_through_their_stream_prefix() {
    let log = felix_log::parse(&fixture("kubectl-cri.log"));
    assert_eq!(log.records(), 3);
    assert_eq!(log.count(Level::Debug), 1);
    let p = log
        .records
        .iter()
        .find(|r| r.level == Level::Panic)
        .expect("panic");
    assert_eq!((p.line, p.end_line), (3, 8));
    assert!(
        p.field("error")
            .is_some_and(|e| e.contains("\tgoroutine") || e.contains("goroutine 1"))
    );
    assert_eq!(log.versions[0].version, "v3.26.1");
}

#[test]
fn logrus_text_cli_and_klog_forms_are_records_with_levels_and_fields() {
    let log = felix_log::parse(&fixture("logrus-cli-klog.log"));
    assert_eq!(log.records(), 8);
    assert_eq!(log.count(Level::Info), 4);
    assert_eq!(log.count(Level::Warning), 1);
    assert_eq!(log.count(Level::Fatal), 1);
    assert_eq!(log.count(Level::Error), 2);
    let fatal = log.records.iter().find(|r| r.line == 4).expect("fatal");
    assert_eq!(fatal.format, Format::Logrus);
    assert_eq!(fatal.message, "Terminating");
    assert_eq!(
        fatal.fields,
        vec![("error".to_string(), "no IPv4 address".to_string())]
    );
    assert_eq!(
        fatal.ts.map(|t| t.to_string()).as_deref(),
        Some("2017-06-09 08:00:13")
    );
    let cli = log.records.iter().find(|r| r.line == 6).expect("cli");
    assert_eq!(cli.format, Format::Cli);
    assert_eq!(cli.message, "Failed to open BPF map");
    assert_eq!(cli.field("map"), Some("cali_v4_nat_fe3"));
    let klog = log.records.iter().find(|r| r.line == 8).expect("klog");
    assert_eq!(klog.message, "Failed to watch");
    assert_eq!(klog.field("kind"), Some("*v1.Node"));
}

#[test]
fn crlf_line_endings_do_not_reach_messages_or_fields() {
    let crlf = felix_log::parse(&fixture("crlf.log"));
    let lf = felix_log::parse(&fixture("crlf.log").replace("\r\n", "\n"));
    assert_eq!(visible(&crlf), visible(&lf));
    assert_eq!(crlf.records(), 5);
    assert!(crlf.records.iter().all(|r| !r.message.contains('\r')));
    assert_eq!(crlf.versions[0].version, "v3.26.1");
}

#[test]
fn leading_continuation_lines_form_one_headerless_record() {
    let log = felix_log::parse(&fixture("ebpf-verifier-reject.log"));
    assert_eq!(log.records(), 3);
    let spans: Vec<(usize, usize, Level)> = log
        .records
        .iter()
        .map(|r| (r.line, r.end_line, r.level))
        .collect();
    assert_eq!(
        spans,
        vec![
            (1, 10, Level::Unknown),
            (11, 12, Level::Warning),
            (13, 13, Level::Warning)
        ]
    );
    assert!(
        log.records[0]
            .message
            .contains("libbpf: failed to load object")
    );
    // The error text spilled onto line 12; the fields after it are still read.
    let w = &log.records[1];
    assert_eq!(w.field("name"), Some("enif327a56b833"));
    assert!(
        w.field("wepID")
            .is_some_and(|v| v.starts_with("&types.WorkloadEndpointID{"))
    );
    assert!(w.field("error").is_some_and(|e| e.lines().count() == 2));
}

#[test]
fn a_chunked_parse_split_at_any_line_equals_the_whole_file_parse() {
    for name in ALL_FIXTURES {
        let text = fixture(name);
        let whole = visible(&felix_log::parse(&text));
        for cut in line_starts(&text) {
            let merged = parse_in_chunks(&text, &[cut]);
            assert_eq!(visible(&merged), whole, "{name} cut at byte {cut}");
        }
    }
}

#[test]
fn a_parse_split_at_every_line_and_merged_in_a_tree_equals_the_whole_file_parse() {
    for name in ALL_FIXTURES {
        let text = fixture(name);
        let whole = visible(&felix_log::parse(&text));
        // One chunk per line, merged left to right.
        let merged = parse_in_chunks(&text, &line_starts(&text));
        assert_eq!(visible(&merged), whole, "{name} one chunk per line");
        // Pairs first, then pairs of pairs (as a parallel reduce would).
        let mut bounds = vec![0];
        bounds.extend(line_starts(&text));
        bounds.push(text.len());
        let mut parts: Vec<Log> = bounds
            .windows(2)
            .map(|w| {
                let first = text[..w[0]].matches('\n').count() + 1;
                felix_log::parse_chunk(&text[w[0]..w[1]], first)
            })
            .collect();
        while parts.len() > 1 {
            let mut next = Vec::new();
            let mut it = parts.into_iter();
            while let Some(mut a) = it.next() {
                if let Some(b) = it.next() {
                    a.merge(b);
                }
                next.push(a);
            }
            parts = next;
        }
        let tree = parts.pop().unwrap_or_default();
        assert_eq!(visible(&tree), whole, "{name} tree merge");
    }
}

#[test]
fn record_starts_are_recognised_through_wrappers_for_chunk_split_points() {
    let text = fixture("calico-node-v3.26.log");
    let starts: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| felix_log::is_record_start(l))
        .map(|(i, _)| i + 1)
        .collect();
    let mut expected: Vec<usize> = (1..=15).collect();
    expected.extend(25..=28);
    assert_eq!(starts, expected);
    assert!(felix_log::is_record_start(
        "2019-05-14_09:12:41.31841 2019-05-14 09:12:41.318 [INFO][47] daemon.go 245: x"
    ));
    assert!(!felix_log::is_record_start("\t/go/src/x.go:49 +0x1a5"));
    assert!(!felix_log::is_record_start("libbpf: failed to load object"));
}

#[test]
fn garbage_input_is_counted_without_panicking() {
    for text in [
        "",
        "\n\n\n",
        "2023-13-45 99:99:99.999 [INFO][1] x.go 1: bad date\n",
        "2023-06-02 10:15:30.118 [NOPE][1] x.go 1: bad level\n",
        "time=\"x\" level=info msg=\"unterminated\n",
        "\u{feff}é€\u{1F600} [ ] = == \"\\",
        "2023-06-02 10:15:30.118 [INFO][1] felix/x.go 1: Failed a=\"\\",
        "INFO[",
        "W0102",
    ] {
        let log = felix_log::parse(text);
        assert!(log.records() <= log.lines.max(1));
    }
    let log = felix_log::parse("2023-13-45 10:15:30.118 [INFO][1] x.go 1: bad date\n");
    assert_eq!(log.errors.len(), 1);
    assert_eq!(log.errors[0].line, 1);
}

#[test]
fn the_shared_corpus_of_felix_logs_parses_with_expected_record_counts() {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/felix-log");
    if !dir.exists() {
        eprintln!("skipping: {} does not exist", dir.display());
        return;
    }
    let expected = [(
        "tigera-docs-ebpf-verifier-reject-libbpf-and-felix-interleaved.log",
        3usize,
    )];
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("read corpus dir") {
        let path = entry.expect("entry").path();
        let text = String::from_utf8_lossy(&std::fs::read(&path).expect("read")).into_owned();
        let log = felix_log::parse(&text);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if let Some((_, n)) = expected.iter().find(|(f, _)| *f == name) {
            assert_eq!(log.records(), *n, "{name}");
            seen += 1;
        }
        assert!(log.records() > 0, "{name}");
    }
    assert_eq!(seen, expected.len());
}

mod generated {
    use super::*;
    use proptest::prelude::*;

    /// Lines a Felix log is made of: headers of every form, wrappers, continuations.
    const POOL: &[&str] = &[
        "2023-06-02 10:15:30.118 [INFO][1] felix/a.go 1: Felix starting up version=\"v3.27.0\"",
        "2023-06-02 10:15:30.200 [INFO][1] felix/a.go 2: nothing to see a=1",
        "2023-06-02 10:15:30.300 [DEBUG][1] felix/a.go 3: debug",
        "2023-06-02 10:15:30.400 [WARNING][1] felix/a.go 4: Failed error=exit status 1 x=\"q\\nr\"",
        "2023-06-02 10:15:30.500 [ERROR][1] felix/a.go 5: bad thing",
        "2023-06-02_10:15:30.50000 2023-06-02 10:15:30.500 [INFO][1] table.go 5: Resync done",
        "[calico-node-x calico-node]  2023-06-02 10:15:30.600 [PANIC][1] felix/a.go 6: boom",
        "time=\"2017-06-09T08:00:13Z\" level=warning msg=\"w\"",
        "W0112 12:33:01.881648     380 warnings.go:70] klog",
        "bird: Mesh up",
        "panic: (*logrus.Entry) 0xc0004a2e00",
        "",
        "\tgoroutine 1 [running]:",
        "        /go/src/x.go:49 +0x1a5",
        "libbpf: failed to load",
        "continued error text name=\"n\" wepID=&x{A:\"b\"}",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn any_text_parses_without_panicking(s in "\\PC*") {
            let log = felix_log::parse(&s);
            prop_assert!(log.records() <= log.lines.max(1));
        }

        #[test]
        fn generated_logs_parse_the_same_in_any_two_chunks(
            picks in proptest::collection::vec(0..POOL.len(), 0..40),
            cut_at in 0usize..40,
            crlf in any::<bool>(),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let text: String = picks.iter().map(|&i| format!("{}{eol}", POOL[i])).collect();
            let starts = line_starts(&text);
            let cut = starts.get(cut_at).copied().unwrap_or(text.len());
            let whole = visible(&felix_log::parse(&text));
            prop_assert_eq!(visible(&parse_in_chunks(&text, &[cut])), whole);
        }
    }
}
