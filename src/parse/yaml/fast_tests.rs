//! The direct decoder against serde_yaml: wherever it answers, the same value as the
//! serde_yaml path; where it cannot be sure, no answer.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

/// What the module decodes a document's lines into without the direct decoder.
fn slow(lines: &[(usize, &str)]) -> Option<Value> {
    decode_yaml_text(&join(lines)).ok()
}

fn lines_of(text: &str) -> Vec<(usize, &str)> {
    numbered_lines(text, 1).collect()
}

/// The direct decoder on one document's text; panics when it answers and differs from
/// serde_yaml (or serde_yaml fails).
fn fast_checked(text: &str) -> Option<Value> {
    let lines = lines_of(text);
    let fast = fast::decode(&lines, 0);
    if let Some(v) = &fast {
        assert_eq!(Some(v), slow(&lines).as_ref(), "text {text:?}");
    }
    fast
}

#[derive(Default)]
struct Sweep {
    docs: usize,
    fast_docs: usize,
    items: usize,
    fast_items: usize,
    /// Documents (file:line) the direct decoder left to serde_yaml.
    fell_back: Vec<String>,
}

/// Both decoders (and both line scanners) over every document and every list item of `text`,
/// split the way `for_each_object` splits it.
fn sweep(name: &str, text: &str, out: &mut Sweep) {
    let mut errors = Vec::new();
    let normalised = normalise_breaks(text);
    let text = normalised.as_deref().unwrap_or(text);
    for doc in split_documents(text, &mut errors) {
        let Some((idx, first_sig)) = first_significant(&doc.lines) else {
            continue;
        };
        if doc.lines[idx].1.trim_start().starts_with(['{', '[']) {
            continue;
        }
        out.docs += 1;
        let slow_doc = slow(&doc.lines);
        match fast::decode(&doc.lines, 0) {
            Some(v) => {
                out.fast_docs += 1;
                assert_eq!(Some(&v), slow_doc.as_ref(), "{name}:{first_sig}");
            }
            None => out.fell_back.push(format!("{name}:{first_sig}")),
        }
        let map = scan_yaml(&doc.lines);
        for (_, (start, end)) in yaml_list_items(&map) {
            let from = start.saturating_sub(doc.first_line);
            let to = end.saturating_sub(doc.first_line);
            let Some(region) = doc.lines.get(from..=to) else {
                continue;
            };
            out.items += 1;
            if let Some(v) = decode_item_fast(region) {
                out.fast_items += 1;
                let indent = region[0].1.len() - region[0].1.trim_start_matches(' ').len();
                let mut text = format!("{} {}", &region[0].1[..indent], &region[0].1[indent + 1..]);
                for (_, l) in &region[1..] {
                    text.push('\n');
                    text.push_str(l);
                }
                assert_eq!(
                    Some(&v),
                    decode_yaml_text(&text).ok().as_ref(),
                    "item at {name}:{start}"
                );
            }
        }
    }
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| e.into_path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

fn sweep_dir(dir: &Path) -> Sweep {
    let mut out = Sweep::default();
    for path in yaml_files(dir) {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        sweep(&path.display().to_string(), &text, &mut out);
    }
    out
}

#[test]
fn every_corpus_and_testdata_document_decodes_the_same_both_ways() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("testdata")];
    let shared = root.join("../shared/corpus");
    if shared.exists() {
        dirs.push(shared);
    } else {
        eprintln!("../shared is missing: sweeping testdata/ only");
    }
    // Extra resource dumps to sweep (a bundle's cluster/ folder, say).
    if let Some(extra) = std::env::var_os("CALISNAP_YAML_SWEEP") {
        dirs.push(PathBuf::from(extra));
    }
    for dir in dirs {
        let s = sweep_dir(&dir);
        eprintln!(
            "{}: {} of {} documents and {} of {} list items decoded directly; left to serde_yaml: {:?}",
            dir.display(),
            s.fast_docs,
            s.docs,
            s.fast_items,
            s.items,
            s.fell_back
        );
        assert!(s.fast_docs > 0);
    }
}

/// Files written the way `kubectl get -o yaml` and `calicoctl get -o yaml` write: every
/// document must take the direct route, or the speed-up is lost without anyone noticing.
#[test]
fn kubectl_and_calicoctl_output_takes_the_direct_route() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![
        root.join("testdata/bundles/calico-bundle-demo-20261125T140215Z/cluster"),
        root.join("testdata/e2e/cluster"),
        root.join("testdata/yaml/kubectl-pods-last-applied.yaml"),
    ];
    let shared = root.join("../shared/corpus/calicoctl-yaml");
    if shared.exists() {
        dirs.push(shared);
    } else {
        eprintln!("../shared is missing: checking testdata/ only");
    }
    for dir in dirs {
        let s = sweep_dir(&dir);
        assert!(s.docs > 0, "{}", dir.display());
        assert!(s.fell_back.is_empty(), "{:?}", s.fell_back);
        assert_eq!(s.fast_items, s.items, "{}", dir.display());
    }
}

/// Scalars whose resolution differs between YAML versions and readers.
const TRICKY: &[&str] = &[
    "\"0x1F\"",
    "0x1F",
    "0x1f",
    "0X1F",
    "+0x1F",
    "-0x1F",
    "0x",
    "0x-1",
    "0o17",
    "-0o17",
    "0o18",
    "0b101",
    "-0b101",
    "0b2",
    "1e3",
    "1E3",
    "1e+3",
    "-1e-3",
    "1e400",
    ".5",
    "5.",
    "-.5",
    "+.5",
    "1.5e",
    ".inf",
    "-.inf",
    "+.inf",
    ".Inf",
    "-.INF",
    ".nan",
    ".NaN",
    "+.nan",
    "inf",
    "nan",
    "infinity",
    "-Infinity",
    "~",
    "null",
    "Null",
    "NULL",
    "nULL",
    "true",
    "True",
    "TRUE",
    "tRUE",
    "false",
    "yes",
    "no",
    "on",
    "off",
    "y",
    "0123",
    "-0123",
    "+0123",
    "0",
    "-0",
    "+0",
    "00",
    "0.0",
    "-0.0",
    "007.5",
    "+12",
    "-12",
    "+-12",
    "-+12",
    "--12",
    "+",
    "-x",
    ".",
    "1_000",
    "1,000",
    "12:30",
    "12:30:00",
    "2024-01-01",
    "2018-12-11T16:42:12Z",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "0xFFFFFFFFFFFFFFFF",
    "0x10000000000000000",
    "1.7976931348623157e308",
    "'it''s'",
    "''",
    "\"\"",
    "\"\\u00e9\\t\"",
    "\"\\x41\\N\\_\\L\\P\\e\\0\\a\\b\\v\\f\\r\\n\\/\\\\\\\"\\ \"",
    "\"\\U0001F600\"",
    "\"\\ud800\"",
    "\"\\q\"",
    "\"a # b\"",
    "'a # b'",
    "a #comment",
    "a#b",
    "a # b: c",
    "a: b",
    "a:b",
    "a:",
    "http://x:80/y",
    "10.0.0.0/8",
    "role == 'frontend'",
    "has(x) && !has(y)",
    "x   ",
    "  x",
    "",
    "   ",
    "# only a comment",
    "é",
    "\"é\"",
    "-",
    "- x",
    "[]",
    "{}",
    "[ ]",
    "{ }",
    "[a, b]",
    "[a, b,]",
    "[a,,b]",
    "[1, 0x10, .5, ~, 'q', \"d\"]",
    "{a: 1, b: [x, y]}",
    "{a: 1, a: 2}",
    "{\"a\":1}",
    "{a}",
    "[a: b]",
    "[-1, -x]",
    "[- x]",
    "[a #b]",
    "[http://x]",
    "[a]x",
    "[a] #c",
    "&a x",
    "*a",
    "!tag x",
    "!!str 1",
    "? x",
    "@x",
    "`x",
    "%x",
    ",x",
    "]x",
    "?x",
    ":x",
    "|",
    "|-",
    ">",
    "|x",
    "'unclosed",
    "\"unclosed",
    "\"trailing\\",
    "'a' b",
    "\"a\"b",
    "\"a\" #c",
    "\"a\"#c",
    "a << b",
];

/// Each tricky scalar as a mapping value, a sequence item, a key and a flow element.
fn placements(s: &str) -> Vec<String> {
    vec![
        format!("k: {s}"),
        format!("k: {s}\n"),
        format!("k: {s}\r\nj: 1\r\n"),
        format!("- {s}"),
        format!("- - {s}\n- x"),
        format!("- k: {s}\n  j: 1"),
        format!("{s}: v"),
        format!("- {s}: v"),
        format!("k: [{s}]"),
        format!("k: {{x: {s}}}"),
        format!("k: {{{s}: x}}"),
        format!("a:\n  k: {s}  \n  j: 2\nb: 3"),
    ]
}

#[test]
fn tricky_scalars_resolve_as_serde_yaml_resolves_them() {
    let mut answered = 0;
    for s in TRICKY {
        for text in placements(s) {
            // CRLF documents go through the module's own line splitting.
            if fast_checked(&text).is_some() {
                answered += 1;
            }
        }
    }
    // Most placements of most scalars are within the subset.
    assert!(answered > TRICKY.len() * 5, "{answered}");
}

#[test]
fn scalar_values_are_what_yaml_1_2_says() {
    let v = fast_checked(
        "a: 0x1F\nb: \"0x1F\"\nc: 0o17\nd: 1e3\ne: .5\nf: -.inf\ng: ~\nh: Null\ni: TRUE\nj: yes\nk: 0123\nl: +12\nm: 1_000\nn: 12:30\no: 2024-01-01\np: 'it''s'\nq: \"\\u00e9\\t\"\nr: \"a # b\"\ns: a #comment\nt:\nu: x   \n",
    )
    .expect("within the subset");
    assert_eq!(
        v,
        json!({"a": 31, "b": "0x1F", "c": 15, "d": 1000.0, "e": 0.5, "f": null, "g": null,
               "h": null, "i": true, "j": "yes", "k": "0123", "l": 12, "m": "1_000",
               "n": "12:30", "o": "2024-01-01", "p": "it's", "q": "é\t", "r": "a # b",
               "s": "a", "t": null, "u": "x"})
    );
    // Keys are their text, whatever they would resolve to as values.
    let v = fast_checked("1: a\ntrue: b\n~: c\n0x1F: d\n\"q\": e\n").expect("subset");
    assert_eq!(
        v,
        json!({"1": "a", "true": "b", "~": "c", "0x1F": "d", "q": "e"})
    );
    // Every escape libyaml knows, one line.
    assert_eq!(
        fast_checked(r#"k: "\x41\N\_\L\P\e\0\a\b\v\f\r\n\t\/\\\"\ \U0001F600""#),
        Some(
            json!({"k": "A\u{85}\u{a0}\u{2028}\u{2029}\u{1b}\u{0}\u{7}\u{8}\u{b}\u{c}\r\n\t/\\\" \u{1F600}"})
        )
    );
    // A later duplicate key wins.
    assert_eq!(fast_checked("a: 1\na: 2\n"), Some(json!({"a": 2})));
    // Nested sequences and compact mappings.
    assert_eq!(
        fast_checked("- - x\n  - y\n- k: 1\n  j:\n  - 2\n-\n- []\n"),
        Some(json!([["x", "y"], {"k": 1, "j": [2]}, null, []]))
    );
}

#[test]
fn block_scalars_read_as_libyaml_reads_them() {
    let cases = [
        "a: |\n  x\n  y\nb: 1",
        "a: |\n  x\n  y\n",
        "a: |\n  x\n  y",
        "a: |-\n  x\n\n",
        "a: |+\n  x\n\n\nb: 1",
        "a: |+\n  x\n\n",
        "a: |2\n    x\n   y\n",
        "a: |\n\n  x\n\n  y\n\n",
        "a: |\n    x\n   \n  y\n",
        "a: |\n  x\n      \n  y\n",
        "a: |\n     \n  x\n",
        "a: |\nb: 1",
        "a: |",
        "a: |+",
        "a: | # c\n  x\n  # not a comment\n# a comment\nb: 1",
        "- |\n  x\n- |-\n  y\n",
        "- k: |\n    x\n  j: 1",
        "a: >\n  x\n  y\n\n  z\n   more\n  w\n",
        "a: >-\n  x\n  y\n",
        "a: >+\n\n  x\n\n",
        "a: >\n   lead\n  x\n",
        "a: |1\n  x\n",
        "a: |0\n  x\n",
        "a: |++\n  x\n",
        "a: |-2\n    x\n",
        "a: |2-\n    x\n",
        "a: |\n  x\n y\n",
        "a: |\n  x\n   y\nb: |\n  z",
        "k:\n  a: |\n    x\n  b: 1\n",
    ];
    let mut answered = 0;
    for text in cases {
        if fast_checked(text).is_some() {
            answered += 1;
        }
    }
    assert!(answered >= cases.len() - 6, "{answered}");
    assert_eq!(
        fast_checked("a: |\n  {\"x\": 1}\n  y\nb: |-\n  z\n"),
        Some(json!({"a": "{\"x\": 1}\ny\n", "b": "z"}))
    );
}

#[test]
fn structure_the_decoder_reads_matches_serde_yaml() {
    let cases = [
        "apiVersion: v1\nitems:\n- kind: Pod\n  metadata:\n    name: a\n- kind: Pod\nkind: List\n",
        "items:\n  - a\n  - b\nkind: X\n",
        "a:\n  b:\n    c: 1\n  d: 2\ne: 3\n",
        "# c\na: 1 # c\n  # deeper comment\nb:   # c\n  c: 2\n",
        "  a: 1\n  b: 2\n",
        "a:\n- 1\n-\n  - 2\n- k: v\n",
        "a: 1\n- x\n",
        "a: 1\n  b: 2\n",
        "a:\n  b: 1\n c: 2\n",
        "- a\n - b\n",
        "- a\n  b\n",
        "a: x\n  y\n",
        "a: x\n\n  y\n",
        "a: x\n   # c\n   y\n",
        "a: \"x\n  y\"\n",
        "a: 'x\n  y'\n",
        "a: [x,\n  y]\n",
        "a: &x 1\nb: *x\n",
        "a: !!str 1\n",
        "<<: {a: 1}\nb: 2\n",
        "? a\n: b\n",
        "a:\tb\n",
        "a: b\n---\nc: d\n",
        "x\n",
        "- x\ny: 1\n",
        "a: 1\n...\n",
        "\"a\":b\n",
        "key with spaces: v\nkey  : w\n",
        "a: b: c\n",
        "a:b\n",
        "-x: 1\n",
        "a: -1\nb: - 1\n",
        "a:\n    - x\n  - y\n",
        "a:\n  - x\n  b: 1\n",
        "\u{feff}a: 1\n",
        "a: \u{1}\n",
        "a: \u{85}\n",
        "a: é\n",
    ];
    for text in cases {
        fast_checked(text);
    }
}

#[test]
fn anchors_tags_and_multi_line_scalars_are_left_to_serde_yaml() {
    for text in [
        "a: &x 1\nb: *x\n",
        "a: !!str 1\n",
        "a: !custom\n  b: 1\n",
        "a: x\n  y\n",
        "a: \"x\n  y\"\n",
        "a: 'x\n  y'\n",
        "a: [x,\n  y]\n",
        "? a\n: b\n",
        "a:\tb\n",
        "<<: {a: 1}\nb: 2\n",
        "a: b\n<<: {c: 1}\n",
        "- &a x\n- *a\n",
    ] {
        assert_eq!(fast::decode(&lines_of(text), 0), None, "{text:?}");
        let d = documents(text);
        assert!(d.errors.is_empty(), "{text:?}: {:?}", d.errors);
        assert_eq!(d.docs.len(), 1, "{text:?}");
    }
    assert_eq!(
        documents("a: &x 1\nb: *x\nc: !!str 2\nd: x\n  y\n").docs[0].value,
        json!({"a": 1, "b": 1, "c": "2", "d": "x y"})
    );
}

#[test]
fn a_list_item_decoded_alone_matches_serde_yaml_on_the_blanked_text() {
    let text = "items:\n  - kind: A\n    spec:\n      x: [1]\n  - - nested\n  -   spaced: 1\n  -\n    late: 2\n  - # c\n  - scalar\n";
    let lines = lines_of(text);
    let map = scan_yaml(&lines);
    let mut n = 0;
    for (_, (start, end)) in yaml_list_items(&map) {
        let region = &lines[start - 1..end];
        let indent = region[0].1.len() - region[0].1.trim_start_matches(' ').len();
        let mut item = format!("{} {}", &region[0].1[..indent], &region[0].1[indent + 1..]);
        for (_, l) in &region[1..] {
            item.push('\n');
            item.push_str(l);
        }
        let fast = decode_item_fast(region);
        if let Some(v) = &fast {
            n += 1;
            assert_eq!(Some(v), decode_yaml_text(&item).ok().as_ref(), "{item:?}");
        }
    }
    assert!(n >= 4, "{n}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Random scalars made of the characters that matter to resolution.
    #[test]
    fn random_scalars_resolve_as_serde_yaml_resolves_them(
        s in "[-+.0-9eExXoObBaAfFinINulLtTrsy_~: #'\"\\\\]{0,12}"
    ) {
        for text in [format!("k: {s}"), format!("- {s}"), format!("{s}: v"), format!("k: [{s}]")] {
            fast_checked(&text);
        }
    }

    /// Random small documents of keys, dashes, scalars and indentation.
    #[test]
    fn random_block_documents_decode_as_serde_yaml_decodes_them(
        lines in proptest::collection::vec(
            ("[ ]{0,4}", "(- |- - |)", "(a|b|kind|items|'q'|\"d\")?", "(: |:|)", "(1|x|~|\\||>-|\\[\\]|\\{\\}|\\[a, 1\\]|#c|'s'|)"),
            1..8,
        )
    ) {
        let text: String = lines
            .iter()
            .map(|(i, d, k, c, v)| format!("{i}{d}{k}{c}{v}\n"))
            .collect();
        fast_checked(&text);
    }
}

/// `normalise_breaks` as it was written first: char by char.
fn needs_normalising(text: &str) -> bool {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if matches!(c, '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
            && !(c == '\r' && chars.peek() == Some(&'\n'))
        {
            return true;
        }
    }
    false
}

proptest! {
    #[test]
    fn odd_line_breaks_are_found_by_their_bytes_as_by_their_chars(
        s in "[a\r\n\u{85}\u{2028}\u{2029}\u{2027}\u{202a}\u{c5}\u{e2}\u{a8}\u{2080}é€]{0,10}"
    ) {
        prop_assert_eq!(normalise_breaks(&s).is_some(), needs_normalising(&s));
    }
}

#[test]
fn hand_written_yaml_with_anchors_and_folds_is_left_to_serde_yaml() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/yaml/hand-written-anchors-and-folds.yaml");
    let s = sweep_dir(&path);
    assert_eq!(s.docs, 2);
    assert_eq!(s.fast_docs, 0, "{:?}", s.fell_back);
}
