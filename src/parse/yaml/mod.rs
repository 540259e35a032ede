//! The one place YAML is decoded, and where resource JSON is split and decoded too.
//!
//! Resource dumps arrive in every shape `kubectl`, `calicoctl` and people produce: one object,
//! `---` multi-document streams, `kind: XList` with `items`, bare YAML sequences, a JSON
//! object, a JSON array of lists and objects, concatenated JSON values, shell prompts pasted
//! in front of the output and `...` lines where someone elided part of it. This module turns
//! all of them into a flat list of [`SourceObject`]s, each a `serde_json::Value` with the
//! 1-based line it came from, and never fails as a whole: a document that does not decode
//! becomes a [`ParseError`] at the line the decoder names, and the other documents (and,
//! for a broken or truncated list, the list's intact items) are still read.
//!
//! It knows YAML and JSON and the Kubernetes list conventions (items of a `PodList` from a
//! raw API response lack `kind`; they get it from the list), not what any kind means:
//! turning objects into typed resources is `resources`' job.
//!
//! Lists over a few megabytes are decoded item by item and handed on one object at a time
//! ([`for_each_object`]): serde_yaml holds a whole document's events in memory, some forty
//! times the text, and a big cluster's `kubectl get pods -A -o yaml` is 100 MB.
//!
//! The block YAML that `kubectl` and `calicoctl` print is decoded by a direct decoder of
//! our own (`fast`), straight from the document's lines; anything outside the subset it
//! reads is left to serde_yaml, and both give the same value wherever the direct one answers.
//!
//! Neither serde_yaml nor serde_json reports where a value sits in the text, so line numbers
//! come from two small scanners of our own ([`LineMap`]): an indentation tracker for block
//! YAML and a bracket tracker for JSON. They are best effort (flow-style YAML spanning lines
//! is not followed) and only keep what is worth pointing at: list elements at list positions,
//! the elements of `ingress` and `egress`, and `kind` keys.
//!
//! Warnings (dropped elision lines) are [`ParseError`]s whose message starts with
//! `"warning: "`; the object around them is still decoded.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use regex::Regex;
use serde_json::Value;

use super::{ParseError, numbered_lines};

mod fast;
#[cfg(test)]
mod fast_tests;

/// One step of a path from the root of a decoded unit to a node in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// Start and end lines (1-based, inclusive) of the nodes of one decoded unit (a YAML
/// document, or the JSON values of one segment) that are worth pointing at.
#[derive(Debug, Default, PartialEq)]
pub struct LineMap {
    spans: HashMap<Vec<PathSeg>, (usize, usize), Hasher>,
    /// `kind` and `apiVersion` values of objects at list positions, so a list decoded item
    /// by item still knows its own kind (of a YAML document, only the root's are kept).
    scalars: HashMap<Vec<PathSeg>, String, Hasher>,
}

/// Paths are hashed on every lookup while objects are handed on; SipHash's resistance to
/// chosen keys buys nothing for a map of our own paths.
type Hasher = foldhash::fast::RandomState;

impl LineMap {
    /// Line where the node at `path` starts: the `- ` of a YAML list item, the `{` of a JSON
    /// element, the line of a `kind` key.
    pub fn start(&self, path: &[PathSeg]) -> Option<usize> {
        self.spans.get(path).map(|s| s.0)
    }

    fn span(&self, path: &[PathSeg]) -> Option<(usize, usize)> {
        self.spans.get(path).copied()
    }

    fn record_start(&mut self, path: Vec<PathSeg>, line: usize) {
        self.spans.insert(path, (line, line));
    }

    /// What a typed list at `path` (`kind: PodList`) gives its items.
    fn list_inheritance(&self, path: &[PathSeg]) -> Inherited {
        let kind = self
            .scalars
            .get(&child(path, PathSeg::Key("kind".into())))?;
        let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty())?;
        let api_version = self
            .scalars
            .get(&child(path, PathSeg::Key("apiVersion".into())))
            .map(|v| Value::String(v.clone()));
        Some((item_kind.to_string(), api_version))
    }

    fn record_scalar(&mut self, parent: &[PathSeg], key: &str, value: String) {
        let at_list = parent.is_empty() || matches!(parent.last(), Some(PathSeg::Index(_)));
        if at_list && matches!(key, "kind" | "apiVersion") {
            self.scalars
                .insert(child(parent, PathSeg::Key(key.to_string())), value);
        }
    }

    fn record_end(&mut self, path: &[PathSeg], line: usize) {
        if let Some(span) = self.spans.get_mut(path) {
            span.1 = line.max(span.0);
        }
    }
}

/// Whether the node reached from `parent` through `seg` is kept in a [`LineMap`].
fn interesting(parent: &[PathSeg], seg: &PathSeg) -> bool {
    match seg {
        PathSeg::Key(k) => k == "kind",
        PathSeg::Index(_) => match parent.last() {
            None | Some(PathSeg::Index(_)) => true,
            Some(PathSeg::Key(k)) => matches!(k.as_str(), "items" | "ingress" | "egress"),
        },
    }
}

/// Whether a list element at `parent + [Index]` can be a resource object (or a list of them).
fn list_position(parent: &[PathSeg]) -> bool {
    match parent.last() {
        None | Some(PathSeg::Index(_)) => true,
        Some(PathSeg::Key(k)) => k == "items",
    }
}

fn child(parent: &[PathSeg], seg: PathSeg) -> Vec<PathSeg> {
    let mut p = Vec::with_capacity(parent.len() + 1);
    p.extend_from_slice(parent);
    p.push(seg);
    p
}

/// One decoded YAML document or JSON value, before lists are flattened.
#[derive(Debug, Clone)]
pub struct Document {
    /// 1-based line of the document's first significant (non-blank, non-comment) line.
    pub first_line: usize,
    pub value: Value,
}

/// Every document of a text, with what could not be decoded.
#[derive(Debug, Default)]
pub struct Documents {
    pub docs: Vec<Document>,
    pub errors: Vec<ParseError>,
}

/// One object taken out of a document, list or array, with where it came from.
#[derive(Debug, Clone)]
pub struct SourceObject {
    pub value: Value,
    /// 1-based line of the object's `kind` key, or of the object's start when it has none.
    pub line: usize,
    lines: Arc<LineMap>,
    path: Vec<PathSeg>,
}

impl SourceObject {
    /// Line where a node inside this object starts, `rel` being its path from the object
    /// (e.g. `spec`, `ingress`, `2` for the third ingress rule). Best effort: only list
    /// elements under `items`/`ingress`/`egress` and `kind` keys are known.
    pub fn line_of(&self, rel: &[PathSeg]) -> Option<usize> {
        let mut p = self.path.clone();
        p.extend_from_slice(rel);
        self.lines.start(&p)
    }
}

/// Every object of a text, lists flattened, with what could not be decoded.
#[derive(Debug, Default)]
pub struct Objects {
    pub objects: Vec<SourceObject>,
    pub errors: Vec<ParseError>,
}

/// Decode every document of `text` (YAML or JSON) whole, without flattening lists. For small
/// files of any shape (configuration, version dumps); resource dumps go through [`objects`].
pub fn documents(text: &str) -> Documents {
    let mut out = Documents::default();
    let normalised = normalise_breaks(text);
    let text = normalised.as_deref().unwrap_or(text);
    for doc in split_documents(text, &mut out.errors) {
        let Some((idx, first_sig)) = first_significant(&doc.lines) else {
            continue;
        };
        if doc.lines[idx].1.trim_start().starts_with(['{', '[']) {
            let text = join(&doc.lines[idx..]);
            let mut stream = serde_json::Deserializer::from_str(&text).into_iter::<Value>();
            // Line of each value's start, counted from where the previous one ended.
            let (mut counted_to, mut line) = (0, first_sig);
            loop {
                let from = stream.byte_offset();
                let Some(next) = stream.next() else { break };
                let start = text
                    .get(from..)
                    .and_then(|t| t.find(|c: char| !c.is_whitespace()))
                    .map_or(from, |k| from + k);
                line += text
                    .get(counted_to..start)
                    .map_or(0, |t| t.bytes().filter(|b| *b == b'\n').count());
                counted_to = start;
                match next {
                    Ok(value) => out.docs.push(Document {
                        first_line: line,
                        value,
                    }),
                    Err(e) => {
                        let what = "JSON value";
                        out.errors
                            .push(json_error(&e, first_sig - 1, first_sig, what));
                        break;
                    }
                }
            }
        } else {
            match decode_yaml_lines(&doc.lines) {
                Ok(value) => out.docs.push(Document {
                    first_line: first_sig,
                    value,
                }),
                Err(e) => {
                    let offset = doc.first_line - 1;
                    out.errors
                        .push(yaml_error(&e, offset, first_sig, "YAML document"));
                }
            }
        }
    }
    out
}

/// Decode every object of `text` (YAML or JSON), flattening `kind: XList`/`items`, bare
/// sequences, JSON arrays and lists nested in lists.
pub fn objects(text: &str) -> Objects {
    let mut out = Objects::default();
    let mut objects = Vec::new();
    for_each_object(text, &mut out.errors, |o| objects.push(o));
    out.objects = objects;
    out
}

/// [`objects`], handing each object to `f` as soon as it is decoded. Lists larger than a few
/// megabytes are decoded item by item, so a 100 MB `kubectl get pods -A -o yaml` is never
/// held as one tree.
pub fn for_each_object(text: &str, errors: &mut Vec<ParseError>, mut f: impl FnMut(SourceObject)) {
    let normalised = normalise_breaks(text);
    let text = normalised.as_deref().unwrap_or(text);
    let mut em = Emitter {
        errors,
        out: &mut f,
    };
    for doc in split_documents(text, em.errors) {
        let Some((idx, first_sig)) = first_significant(&doc.lines) else {
            continue;
        };
        if doc.lines[idx].1.trim_start().starts_with(['{', '[']) {
            process_json(&doc.lines[idx..], first_sig, &mut em);
        } else {
            process_yaml(&doc, first_sig, &mut em);
        }
    }
}

/// Where decoded objects and errors go.
struct Emitter<'a> {
    errors: &'a mut Vec<ParseError>,
    out: &'a mut dyn FnMut(SourceObject),
}

/// Kind and apiVersion a typed list (`PodList`) gives items that lack their own: raw API
/// responses leave them out of list items.
type Inherited = Option<(String, Option<Value>)>;

fn flatten(
    value: Value,
    path: Vec<PathSeg>,
    lines: &Arc<LineMap>,
    fallback_line: usize,
    inherited: &Inherited,
    out: &mut Emitter,
) {
    let start = lines.start(&path).unwrap_or(fallback_line);
    match value {
        Value::Null => {}
        Value::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                let p = child(&path, PathSeg::Index(i));
                flatten(item, p, lines, start, &None, out);
            }
        }
        Value::Object(mut map) => {
            let is_list =
                match map.get("kind") {
                    None | Some(Value::Null) => true,
                    Some(Value::String(k)) => k.ends_with("List"),
                    Some(_) => false,
                } && matches!(map.get("items"), Some(Value::Array(_)) | Some(Value::Null));
            if is_list {
                let item_kind = match map.get("kind") {
                    Some(Value::String(k)) if k != "List" => {
                        k.strip_suffix("List").map(str::to_string)
                    }
                    _ => None,
                };
                let inherit = item_kind.map(|k| (k, map.get("apiVersion").cloned()));
                if let Some(Value::Array(items)) = map.remove("items") {
                    let items_path = child(&path, PathSeg::Key("items".into()));
                    for (i, item) in items.into_iter().enumerate() {
                        let p = child(&items_path, PathSeg::Index(i));
                        flatten(item, p, lines, start, &inherit, out);
                    }
                }
                return;
            }
            if let Some((kind, api_version)) = inherited {
                if !map.contains_key("kind") {
                    map.insert("kind".into(), Value::String(kind.clone()));
                }
                if let Some(av) = api_version
                    .as_ref()
                    .filter(|_| !map.contains_key("apiVersion"))
                {
                    map.insert("apiVersion".into(), av.clone());
                }
            }
            let line = lines
                .start(&child(&path, PathSeg::Key("kind".into())))
                .unwrap_or(start);
            (out.out)(SourceObject {
                value: Value::Object(map),
                line,
                lines: Arc::clone(lines),
                path,
            });
        }
        other => out.errors.push(ParseError::new(
            start,
            format!("expected a resource object, found {}", type_name(&other)),
        )),
    }
}

/// Name of a JSON value's type, for messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Cheap content sniff: does the start of a file look like Kubernetes-style resources
/// (an `apiVersion` and a `kind`, in YAML or JSON)?
pub fn looks_like_resources(head: &str) -> bool {
    let mut api_version = false;
    let mut kind = false;
    let mut significant = 0;
    for (_, line) in numbered_lines(head, 1) {
        let t = line.trim_start_matches('\u{feff}').trim();
        if t.is_empty() || t.starts_with('#') || is_prompt(line) {
            continue;
        }
        significant += 1;
        if significant > 60 {
            break;
        }
        let t = t
            .strip_prefix("- ")
            .unwrap_or(t)
            .trim_start_matches(['{', '[', ' ']);
        if t.starts_with("apiVersion:") || t.starts_with("\"apiVersion\"") {
            api_version = true;
        }
        if t.starts_with("kind:") || t.starts_with("\"kind\"") {
            kind = true;
        }
        if api_version && kind {
            return true;
        }
    }
    // One-line JSON (`kubectl get -o json | jq -c`) keeps both keys on one line.
    let compact = head.trim_start_matches('\u{feff}').trim_start();
    (compact.starts_with('{') || compact.starts_with('['))
        && compact.contains("\"kind\"")
        && compact.contains("\"apiVersion\"")
}

// ---------------------------------------------------------------------------------------
// Splitting the text into documents.

/// libyaml also breaks lines at a lone `\r`, NEL, LS and PS; our line numbers count `\n`
/// only. Those characters become spaces so that both count the same lines.
fn normalise_breaks(text: &str) -> Option<String> {
    let odd = |c: char| matches!(c, '\r' | '\u{85}' | '\u{2028}' | '\u{2029}');
    // Found by their first byte: `\r`, or the lead byte of U+0085 (C2 85) or of U+2028 and
    // U+2029 (E2 80 A8/A9); lead bytes never occur inside another character.
    let b = text.as_bytes();
    let needed = memchr::memchr3_iter(b'\r', 0xC2, 0xE2, b).any(|i| match b[i] {
        b'\r' => b.get(i + 1) != Some(&b'\n'),
        0xC2 => b.get(i + 1) == Some(&0x85),
        _ => b.get(i + 1) == Some(&0x80) && matches!(b.get(i + 2), Some(0xA8 | 0xA9)),
    });
    if !needed {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if odd(c) && !(c == '\r' && chars.peek() == Some(&'\n')) {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Lines of one document; dropped lines are kept as empty strings so line numbers hold.
struct DocLines<'a> {
    first_line: usize,
    lines: Vec<(usize, &'a str)>,
}

/// Lines that stand for "some output left out here" in pasted dumps.
fn is_elision(line: &str) -> bool {
    let t = line.trim();
    let t = t.strip_prefix("- ").map(str::trim).unwrap_or(t);
    matches!(
        t,
        "…" | "[...]" | "[…]" | "(...)" | "<...>" | "[snip]" | "<snip>" | "<snipped>" | "# ..."
    ) || (t.len() >= 3 && t.bytes().all(|b| b == b'.'))
}

static PROMPT_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[$%] \S|[\w.-]+@[\w.-]+[^\s]*\s*[$#%] ?\S|PS [^>]*> \S|(?:sudo\s+)?(?:kubectl|calicoctl|oc|k|calico)\s+(?:get|describe|-n|--namespace|--context|--allow-version-mismatch|-o)\b)",
    )
    .expect("static regex")
});

static COMMENT_PROMPT_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^#\s*(?:sudo\s+)?(?:kubectl|calicoctl|oc|calico)\s").expect("static regex")
});

/// A shell prompt or command line pasted before (or between) command outputs.
fn is_prompt(line: &str) -> bool {
    match line.as_bytes().first() {
        Some(b' ' | b'\t' | b'-' | b'{' | b'[' | b'}' | b']' | b'"') | None => false,
        _ => PROMPT_RE.is_match(line),
    }
}

/// Does this line start a new resource document (used after a `# kubectl …` comment)?
fn starts_resource(line: &str) -> bool {
    let t = line.strip_prefix("- ").unwrap_or(line);
    t.starts_with("apiVersion:")
        || t.starts_with("kind:")
        || t.starts_with('{')
        || t.starts_with('[')
}

fn is_separator(line: &str) -> bool {
    line == "---" || line.starts_with("--- ") || line.starts_with("---\t")
}

fn split_documents<'a>(text: &'a str, errors: &mut Vec<ParseError>) -> Vec<DocLines<'a>> {
    // Sized once: a big dump has millions of lines. Lines are then blanked or replaced in
    // place, and each document is a run of them.
    let mut all: Vec<(usize, &str)> =
        Vec::with_capacity(memchr::memchr_iter(b'\n', text.as_bytes()).count() + 1);
    all.extend(numbered_lines(text, 1).map(|(n, l)| {
        if n == 1 {
            (n, l.trim_start_matches('\u{feff}'))
        } else {
            (n, l)
        }
    }));
    // (first line, index of its first line, index past its last line)
    let mut spans = Vec::new();
    let (mut first_line, mut from) = (1, 0);
    let mut i = 0;
    while i < all.len() {
        let (n, line) = all[i];
        i += 1;
        let mut boundary = false;
        let mut carry: Option<&str> = None;
        if is_separator(line) {
            boundary = true;
            let rest = line[3..].trim_start();
            if !rest.is_empty() && !rest.starts_with('#') {
                carry = Some(rest);
            }
        } else if line == "..." {
            // A document end marker at column 0 is valid YAML; only indented dots are elisions.
            boundary = true;
        } else if is_prompt(line) {
            boundary = true;
        } else if line.starts_with('#') && COMMENT_PROMPT_RE.is_match(line) {
            // `# kubectl get …` is a root prompt only when a new resource follows it;
            // otherwise it is an ordinary comment.
            let next = all[i..]
                .iter()
                .map(|(_, l)| *l)
                .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
            boundary = next.is_some_and(starts_resource);
        }
        if boundary {
            spans.push((first_line, from, i - 1));
            (first_line, from) = (n + 1, i);
            if let Some(rest) = carry {
                all[i - 1] = (n, rest);
                (first_line, from) = (n, i - 1);
            }
            continue;
        }
        if is_elision(line) {
            errors.push(ParseError::new(
                n,
                format!("warning: elision line {:?} dropped", line.trim()),
            ));
            all[i - 1].1 = "";
        } else if line.starts_with("%YAML") || line.starts_with("%TAG") {
            all[i - 1].1 = "";
        }
    }
    spans.push((first_line, from, all.len()));
    spans
        .into_iter()
        .map(|(first_line, from, to)| DocLines {
            first_line,
            lines: all[from..to].to_vec(),
        })
        .collect()
}

fn first_significant(lines: &[(usize, &str)]) -> Option<(usize, usize)> {
    lines.iter().enumerate().find_map(|(i, (n, l))| {
        let t = l.trim();
        (!t.is_empty() && !t.starts_with('#')).then_some((i, *n))
    })
}

/// Join lines so that line 1 of the result is `first_line` of the file.
fn join(lines: &[(usize, &str)]) -> String {
    let mut s = String::with_capacity(lines.iter().map(|(_, l)| l.len() + 1).sum());
    for (k, (_, l)) in lines.iter().enumerate() {
        if k > 0 {
            s.push('\n');
        }
        s.push_str(l);
    }
    s
}

// ---------------------------------------------------------------------------------------
// Decoding one document.

static LINE_COL_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"line (\d+) column (\d+)").expect("static regex"));

/// Rewrite the decoder's "line N column M" (relative to the decoded text) to file lines.
fn absolute_message(msg: &str, offset: usize) -> String {
    LINE_COL_RE
        .replace_all(msg, |c: &regex::Captures| {
            let n: usize = c[1].parse().unwrap_or(0);
            format!("line {} column {}", n + offset, &c[2])
        })
        .into_owned()
}

fn yaml_error(e: &serde_yaml::Error, offset: usize, fallback: usize, what: &str) -> ParseError {
    let line = e
        .location()
        .map(|l| l.line() + offset)
        .filter(|l| *l > offset)
        .unwrap_or(fallback);
    ParseError::new(
        line,
        format!(
            "{what} not decoded: {}",
            absolute_message(&e.to_string(), offset)
        ),
    )
}

fn json_error(e: &serde_json::Error, offset: usize, fallback: usize, what: &str) -> ParseError {
    let line = if e.line() == 0 {
        fallback
    } else {
        e.line() + offset
    };
    ParseError::new(
        line,
        format!(
            "{what} not decoded: {}",
            absolute_message(&e.to_string(), offset)
        ),
    )
}

/// Size above which a list is decoded item by item rather than as one tree.
const LARGE: usize = 4 << 20;

/// Top-level list items of a YAML document: a bare sequence's, or `items`'.
fn yaml_list_items(lines: &LineMap) -> Vec<(Vec<PathSeg>, (usize, usize))> {
    let mut out = Vec::new();
    for list in [vec![], vec![PathSeg::Key("items".into())]] {
        let mut i = 0;
        while let Some(span) = lines.span(&child(&list, PathSeg::Index(i))) {
            out.push((child(&list, PathSeg::Index(i)), span));
            i += 1;
        }
    }
    out
}

/// Size above which a YAML list whose items stand alone is decoded item by item. serde_yaml
/// holds every event of a document (tens of times its text) and then the whole tree, so even
/// a 2 MB `kubectl get pods -o yaml` costs ~100 MB decoded whole; item by item it costs one
/// item's worth. Small documents keep the simpler whole decode.
const ITEMWISE: usize = 64 << 10;

fn process_yaml(doc: &DocLines, first_sig: usize, em: &mut Emitter) {
    let lines = Arc::new(scan_yaml(&doc.lines));
    let items = yaml_list_items(&lines);
    let inherit = lines.list_inheritance(&[]);
    let size: usize = doc.lines.iter().map(|(_, l)| l.len() + 1).sum();
    if size > LARGE && !items.is_empty() {
        decode_yaml_items(doc, &items, &lines, &inherit, None, em);
        return;
    }
    if size > ITEMWISE && !items.is_empty() && items_stand_alone(doc, &lines) {
        // Same objects as the whole decode; on a broken item, the same errors too: the
        // document's own error first, then the items' other errors.
        let mut item_errors = Vec::new();
        let mut sub = Emitter {
            errors: &mut item_errors,
            out: &mut *em.out,
        };
        decode_yaml_items(doc, &items, &lines, &inherit, None, &mut sub);
        if !item_errors.is_empty() {
            let reported = match decode_yaml_lines(&doc.lines) {
                Ok(_) => None,
                Err(e) => {
                    let offset = doc.first_line.saturating_sub(1);
                    let err = yaml_error(&e, offset, first_sig, "YAML document");
                    let line = err.line;
                    em.errors.push(err);
                    Some(line)
                }
            };
            em.errors
                .extend(item_errors.into_iter().filter(|e| Some(e.line) != reported));
        }
        return;
    }
    match decode_yaml_lines(&doc.lines) {
        Ok(v) => flatten(v, Vec::new(), &lines, first_sig, &None, em),
        Err(e) => {
            let offset = doc.first_line.saturating_sub(1);
            let err = yaml_error(&e, offset, first_sig, "YAML document");
            let err_line = err.line;
            em.errors.push(err);
            // The document may be a list whose other items are fine.
            decode_yaml_items(doc, &items, &lines, &inherit, Some(err_line), em);
        }
    }
}

/// Whether decoding the document's list items one by one gives what decoding it whole gives:
/// the root is a bare sequence or a list (`kind` absent or `…List`, plain `apiVersion`), and
/// no anchor or alias can tie one item to another.
fn items_stand_alone(doc: &DocLines, lines: &LineMap) -> bool {
    let plain = |key: &str, ok: &dyn Fn(&str) -> bool| {
        lines
            .scalars
            .get([PathSeg::Key(key.into())].as_slice())
            .is_none_or(|v| ok(v))
    };
    let word = |v: &str| {
        v.starts_with(|c: char| c.is_ascii_alphabetic())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'-' | b'_'))
    };
    let kind_ok = plain("kind", &|v| {
        v.ends_with("List") && v.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    let api_ok = plain("apiVersion", &|v| {
        word(v)
            && !matches!(
                v.to_ascii_lowercase().as_str(),
                "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n"
            )
    });
    kind_ok && api_ok && !doc.lines.iter().any(|(_, l)| may_anchor(l))
}

/// Whether a line may hold a YAML anchor (`&a`), alias (`*a`) or merge key (`<<`). Errs on
/// the side of yes: `*` or `&` starting a token anywhere, quoted or not.
fn may_anchor(line: &str) -> bool {
    let b = line.as_bytes();
    if memchr::memchr3(b'&', b'*', b'<', b).is_none() {
        return false;
    }
    line.contains("<<")
        || b.iter().enumerate().any(|(i, &c)| {
            (c == b'&' || c == b'*')
                && (i == 0 || matches!(b[i - 1], b' ' | b'\t' | b'[' | b'{' | b',' | b'-' | b':'))
                && b.get(i + 1).is_some_and(|n| !n.is_ascii_whitespace())
        })
}

/// Decode list items one by one: `- key: v` becomes `  key: v` (same columns, same lines)
/// and the item is a document of its own. `reported` is the line of an error already
/// reported for the whole document, not to be reported twice.
fn decode_yaml_items(
    doc: &DocLines,
    items: &[(Vec<PathSeg>, (usize, usize))],
    lines: &Arc<LineMap>,
    inherit: &Inherited,
    reported: Option<usize>,
    em: &mut Emitter,
) {
    for (path, (start, end)) in items {
        // Every line of the document is in `doc.lines`, so a line's index is its offset
        // from the document's first line.
        let from = start.saturating_sub(doc.first_line);
        let to = end.saturating_sub(doc.first_line);
        let Some(region) = doc.lines.get(from..=to) else {
            continue;
        };
        if let Some(v) = decode_item_fast(region) {
            flatten(v, path.clone(), lines, *start, inherit, em);
            continue;
        }
        let mut text = String::with_capacity(region.iter().map(|(_, l)| l.len() + 1).sum());
        for (k, (_, l)) in region.iter().enumerate() {
            if k == 0 {
                let indent = l.len() - l.trim_start_matches(' ').len();
                text.push_str(&l[..indent]);
                text.push(' ');
                text.push_str(l.get(indent + 1..).unwrap_or(""));
            } else {
                text.push('\n');
                text.push_str(l);
            }
        }
        match decode_yaml_text(&text) {
            Ok(v) => flatten(v, path.clone(), lines, *start, inherit, em),
            Err(e) => {
                let err = yaml_error(&e, start - 1, *start, "list item");
                if Some(err.line) != reported {
                    em.errors.push(err);
                }
            }
        }
    }
}

fn process_json(lines: &[(usize, &str)], first_sig: usize, em: &mut Emitter) {
    let text = join(lines);
    let offset = first_sig - 1;
    let scan = scan_json(&text, first_sig);
    let map = Arc::new(scan.lines);
    let mut dec = JsonDecoder {
        text: &text,
        cands: &scan.candidates,
        lines: &map,
        reported: None,
        large: text.len() > LARGE,
    };
    if dec.large {
        for line in scan.stray {
            let msg = "text outside any JSON value";
            em.errors.push(ParseError::new(line, msg));
        }
        let mut m = 0;
        while dec.cands.contains_key([PathSeg::Index(m)].as_slice()) {
            dec.emit(vec![PathSeg::Index(m)], &None, false, em);
            m += 1;
        }
        return;
    }
    let stream = serde_json::Deserializer::from_str(&text).into_iter::<Value>();
    let mut n = 0;
    for next in stream {
        match next {
            Ok(v) => {
                let first = map.start(&[PathSeg::Index(n)]).unwrap_or(first_sig);
                flatten(v, vec![PathSeg::Index(n)], &map, first, &None, em);
                n += 1;
            }
            Err(e) => {
                // Flow-style YAML also starts with `{` or `[`.
                if n == 0
                    && let Ok(v) = serde_yaml::from_str::<serde_yaml::Value>(&text)
                {
                    let v = yaml_to_json(v);
                    flatten(v, vec![PathSeg::Index(0)], &map, first_sig, &None, em);
                    return;
                }
                let err = json_error(&e, offset, first_sig, "JSON value");
                dec.reported = Some(err.line);
                em.errors.push(err);
                // What follows the error, and the intact elements of the broken value
                // (a truncated `kubectl get pods -o json` keeps its complete pods).
                let mut m = n;
                while dec.cands.contains_key([PathSeg::Index(m)].as_slice()) {
                    dec.emit(vec![PathSeg::Index(m)], &None, m == n, em);
                    m += 1;
                }
                return;
            }
        }
    }
}

/// A JSON container at a list position, as the scanner found it.
struct Candidate {
    start: usize,
    /// Byte just past its closing bracket; `None` when it never closes.
    end: Option<usize>,
    line: usize,
}

/// Decodes JSON containers by their byte spans: big lists item by item, broken values by
/// their intact elements.
struct JsonDecoder<'a> {
    text: &'a str,
    cands: &'a HashMap<Vec<PathSeg>, Candidate>,
    lines: &'a Arc<LineMap>,
    /// Line of an error already reported for the whole value, not to be reported twice.
    reported: Option<usize>,
    large: bool,
}

impl JsonDecoder<'_> {
    fn children(&self, path: &[PathSeg]) -> Vec<Vec<PathSeg>> {
        let mut out = Vec::new();
        for list in [path.to_vec(), child(path, PathSeg::Key("items".into()))] {
            let mut i = 0;
            while self.cands.contains_key(&child(&list, PathSeg::Index(i))) {
                out.push(child(&list, PathSeg::Index(i)));
                i += 1;
            }
        }
        out
    }

    /// Decode the container at `path`: whole when it is small enough or has no elements
    /// (and is not `known_bad`), else element by element.
    fn emit(&self, path: Vec<PathSeg>, inherit: &Inherited, known_bad: bool, em: &mut Emitter) {
        let Some(c) = self.cands.get(&path) else {
            return;
        };
        let slice = c.end.and_then(|e| self.text.get(c.start..e));
        let kids = self.children(&path);
        let mut own_error = None;
        if let Some(slice) = slice.filter(|s| !known_bad && (kids.is_empty() || s.len() <= LARGE)) {
            match serde_json::from_str::<Value>(slice) {
                Ok(v) => {
                    flatten(v, path, self.lines, c.line, inherit, em);
                    return;
                }
                Err(e) => own_error = Some(json_error(&e, c.line - 1, c.line, "JSON value")),
            }
        }
        if kids.is_empty() {
            if let Some(err) = own_error.filter(|e| Some(e.line) != self.reported) {
                em.errors.push(err);
            } else if slice.is_none() && self.large {
                let msg = "JSON value not decoded: it is not closed (truncated file?)";
                em.errors.push(ParseError::new(c.line, msg));
            }
            return;
        }
        let inherit = self.lines.list_inheritance(&path);
        for kid in kids {
            self.emit(kid, &inherit, false, em);
        }
    }
}

/// One YAML document from its lines: the direct decoder when the document is within the block
/// YAML it reads (what `kubectl` and `calicoctl` print), else serde_yaml over the joined text.
/// Both give the same value wherever the direct decoder answers.
fn decode_yaml_lines(lines: &[(usize, &str)]) -> Result<Value, serde_yaml::Error> {
    match fast::decode(lines, 0) {
        Some(v) => Ok(v),
        None => decode_yaml_text(&join(lines)),
    }
}

/// A list item's lines (the first starting with its `-`) decoded by the direct decoder, as
/// `decode_yaml_items` would decode them with the `-` blanked out; `None` when serde_yaml
/// has to.
fn decode_item_fast(region: &[(usize, &str)]) -> Option<Value> {
    let first = region.first()?.1;
    let indent = first.len() - first.trim_start_matches(' ').len();
    if first.as_bytes().get(indent) != Some(&b'-') {
        return None;
    }
    fast::decode(region, indent + 1)
}

// ---------------------------------------------------------------------------------------
// Converting serde_yaml values.

/// Decode one YAML document. Straight into a JSON value when that works (half the memory of
/// going through `serde_yaml::Value` for a big `kubectl get pods -o yaml`); through
/// `serde_yaml::Value` when the text uses merge keys, or when the direct route fails (tags,
/// non-string keys), which also gives the error to report.
fn decode_yaml_text(text: &str) -> Result<Value, serde_yaml::Error> {
    if !text.contains("<<")
        && let Ok(v) = serde_yaml::from_str::<Value>(text)
    {
        return Ok(v);
    }
    serde_yaml::from_str::<serde_yaml::Value>(text).map(yaml_to_json)
}

/// serde_yaml's value as a JSON value: non-string keys become their text, tags are dropped,
/// merge keys (`<<`) are applied first.
fn yaml_to_json(mut v: serde_yaml::Value) -> Value {
    // A malformed merge (`<<: scalar`) leaves the key as it is rather than losing the value.
    let _ = v.apply_merge();
    convert(v)
}

fn convert(v: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(seq) => Value::Array(seq.into_iter().map(convert).collect()),
        Y::Mapping(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (key_text(k), convert(v)))
                .collect(),
        ),
        Y::Tagged(t) => convert(t.value),
    }
}

fn key_text(k: serde_yaml::Value) -> String {
    use serde_yaml::Value as Y;
    match k {
        Y::String(s) => s,
        Y::Bool(b) => b.to_string(),
        Y::Number(n) => n.to_string(),
        Y::Null => "null".to_string(),
        Y::Tagged(t) => key_text(t.value),
        other => serde_yaml::to_string(&other)
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------------------
// Line scanners.

/// One open block collection, as far as the scanner follows it. A frame's path is not kept:
/// it is the current segment of every frame below it (a frame is popped before the
/// collection holding it moves on to its next key or item).
enum YKind<'a> {
    Map {
        last_key: Option<&'a str>,
    },
    Seq {
        next: usize,
        /// Path of the current item while its span is kept in the map, to record its end.
        open: Option<Vec<PathSeg>>,
    },
}

struct YFrame<'a> {
    indent: usize,
    kind: YKind<'a>,
}

impl YFrame<'_> {
    /// The segment from this collection to its current child.
    fn seg(&self) -> PathSeg {
        match &self.kind {
            YKind::Map { last_key } => PathSeg::Key(last_key.unwrap_or_default().to_string()),
            YKind::Seq { next, .. } => PathSeg::Index(next.saturating_sub(1)),
        }
    }
}

/// Follow block-style YAML by indentation and record where list items and `kind` keys are.
fn scan_yaml(lines: &[(usize, &str)]) -> LineMap {
    let mut st = YScan {
        map: LineMap::default(),
        stack: Vec::new(),
        skip_deeper: None,
        last_sig: 0,
    };
    for &(no, line) in lines {
        let content = line.trim_start_matches(' ');
        let indent = line.len() - content.len();
        if content.trim().is_empty() {
            continue;
        }
        if let Some(d) = st.skip_deeper {
            if indent > d {
                st.last_sig = no;
                continue;
            }
            st.skip_deeper = None;
        }
        if content.starts_with('#') {
            continue;
        }
        st.handle(indent, content, no);
        st.last_sig = no;
    }
    while let Some(f) = st.stack.pop() {
        st.close(f);
    }
    st.map
}

struct YScan<'a> {
    map: LineMap,
    stack: Vec<YFrame<'a>>,
    skip_deeper: Option<usize>,
    last_sig: usize,
}

impl<'a> YScan<'a> {
    fn close(&mut self, f: YFrame) {
        if let YKind::Seq { open: Some(p), .. } = f.kind {
            self.map.record_end(&p, self.last_sig);
        }
    }

    fn pop_while(&mut self, cond: impl Fn(&YFrame) -> bool) {
        while let Some(top) = self.stack.last() {
            if !cond(top) {
                break;
            }
            if let Some(f) = self.stack.pop() {
                self.close(f);
            }
        }
    }

    /// Path of the top frame's collection, with `seg` added.
    fn top_path(&self, seg: PathSeg) -> Vec<PathSeg> {
        let below = &self.stack[..self.stack.len().saturating_sub(1)];
        let mut p = Vec::with_capacity(below.len() + 1);
        p.extend(below.iter().map(YFrame::seg));
        p.push(seg);
        p
    }

    /// The frame holding the top frame's collection, if any.
    fn parent_frame(&self) -> Option<&YFrame<'a>> {
        self.stack.len().checked_sub(2).map(|i| &self.stack[i])
    }

    fn handle(&mut self, col: usize, content: &'a str, no: usize) {
        if content == "-" || content.starts_with("- ") || content.starts_with("-\t") {
            self.pop_while(|f| f.indent > col);
            let continues = matches!(
                self.stack.last(),
                Some(YFrame { indent, kind: YKind::Seq { .. } }) if *indent == col
            );
            if !continues {
                self.stack.push(YFrame {
                    indent: col,
                    kind: YKind::Seq {
                        next: 0,
                        open: None,
                    },
                });
            }
            // `interesting` for an item: what the sequence itself is reached through.
            let kept = match self.parent_frame().map(|f| &f.kind) {
                None | Some(YKind::Seq { .. }) => true,
                Some(YKind::Map { last_key }) => {
                    matches!(last_key.unwrap_or_default(), "items" | "ingress" | "egress")
                }
            };
            let last_sig = self.last_sig;
            let index = match self.stack.last_mut() {
                Some(YFrame {
                    kind: YKind::Seq { next, open },
                    ..
                }) => {
                    if let Some(p) = open.take() {
                        self.map.record_end(&p, last_sig);
                    }
                    *next += 1;
                    *next - 1
                }
                _ => return,
            };
            if kept {
                let p = self.top_path(PathSeg::Index(index));
                self.map.record_start(p.clone(), no);
                if let Some(YFrame {
                    kind: YKind::Seq { open, .. },
                    ..
                }) = self.stack.last_mut()
                {
                    *open = Some(p);
                }
            }
            let rest = content[1..].trim_start_matches([' ', '\t']);
            if rest.is_empty() || rest.starts_with('#') {
                return;
            }
            let col2 = col + (content.len() - rest.len());
            self.handle(col2, rest, no);
        } else if let Some((key, value)) = split_key(content) {
            self.pop_while(|f| {
                f.indent > col || (f.indent == col && matches!(f.kind, YKind::Seq { .. }))
            });
            let same_map = matches!(
                self.stack.last(),
                Some(YFrame { indent, kind: YKind::Map { .. } }) if *indent == col
            );
            if !same_map {
                self.stack.push(YFrame {
                    indent: col,
                    kind: YKind::Map { last_key: None },
                });
            }
            if key == "kind" {
                let p = self.top_path(PathSeg::Key(key.to_string()));
                self.map.record_start(p, no);
            }
            // Only the root's are read (`list_inheritance(&[])`, `items_stand_alone`): list
            // items of a YAML document are decoded, kind and all, before they are flattened.
            if self.stack.len() == 1 && matches!(key, "kind" | "apiVersion") {
                let p = self.top_path(PathSeg::Key(key.to_string()));
                self.map.scalars.insert(p, scalar_text(value));
            }
            if let Some(YFrame {
                kind: YKind::Map { last_key },
                ..
            }) = self.stack.last_mut()
            {
                *last_key = Some(key);
            }
            let value = strip_properties(value);
            if !value.is_empty() && !value.starts_with('#') {
                // An inline value (scalar, flow collection or block scalar header): deeper
                // lines that follow are its continuation, not structure.
                self.skip_deeper = Some(col);
            }
        }
    }
}

/// An inline scalar's text: unquoted (without unescaping), comment dropped.
fn scalar_text(v: &str) -> String {
    let v = v.trim();
    for q in ['"', '\''] {
        if let Some(rest) = v.strip_prefix(q) {
            return rest.split(q).next().unwrap_or("").to_string();
        }
    }
    v.split(" #").next().unwrap_or("").trim().to_string()
}

/// Drop leading `&anchor` and `!tag` tokens from a value.
fn strip_properties(mut v: &str) -> &str {
    loop {
        v = v.trim();
        if v.starts_with('&') || v.starts_with('!') {
            v = v.find([' ', '\t']).map_or("", |i| &v[i..]);
        } else {
            return v;
        }
    }
}

/// `key: value` → (key, value). Quoted keys are unquoted (without unescaping).
fn split_key(content: &str) -> Option<(&str, &str)> {
    let b = content.as_bytes();
    let first = *b.first()?;
    if first == b'"' || first == b'\'' {
        let mut i = 1;
        let close = loop {
            match b.get(i) {
                None => return None,
                Some(&c) if first == b'"' && c == b'\\' => i += 2,
                Some(&c) if c == first => {
                    if first == b'\'' && b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                    } else {
                        break i;
                    }
                }
                Some(_) => i += 1,
            }
        };
        let key = content.get(1..close)?;
        let after = content.get(close + 1..)?.trim_start();
        let rest = after.strip_prefix(':')?;
        if rest.is_empty() || rest.starts_with([' ', '\t']) {
            return Some((key, rest.trim()));
        }
        return None;
    }
    if matches!(
        first,
        b'[' | b'{' | b'?' | b'|' | b'>' | b'*' | b'&' | b'!' | b'%' | b'@' | b'`' | b'#'
    ) {
        return None;
    }
    for i in 0..b.len() {
        match b[i] {
            b':' if i + 1 == b.len() || matches!(b[i + 1], b' ' | b'\t') => {
                let key = content[..i].trim_end();
                return Some((key, content[i + 1..].trim()));
            }
            b'#' if i > 0 && matches!(b[i - 1], b' ' | b'\t') => return None,
            _ => {}
        }
    }
    None
}

struct JFrame {
    obj: bool,
    path: Vec<PathSeg>,
    expect_key: bool,
    key: Option<String>,
    next: usize,
}

struct JsonScan {
    lines: LineMap,
    /// Containers at list positions, by path.
    candidates: HashMap<Vec<PathSeg>, Candidate>,
    /// Lines of scalars outside any container (text that is not JSON).
    stray: Vec<usize>,
}

/// Follow JSON by brackets: record where list elements and `kind` keys are, and the byte
/// spans of containers at list positions (to decode big lists item by item, and what is
/// intact of a broken value).
fn scan_json(text: &str, first_line: usize) -> JsonScan {
    let b = text.as_bytes();
    let mut map = LineMap::default();
    let mut cands: HashMap<Vec<PathSeg>, Candidate> = HashMap::new();
    let mut stray = Vec::new();
    let mut stack: Vec<JFrame> = Vec::new();
    let mut top = 0usize;
    let mut line = first_line;
    let mut i = 0;
    // The segment the next value is reached through, from its parent's path.
    fn next_seg(stack: &mut [JFrame], top: &mut usize) -> PathSeg {
        match stack.last_mut() {
            None => {
                *top += 1;
                PathSeg::Index(*top - 1)
            }
            Some(f) if f.obj => PathSeg::Key(f.key.take().unwrap_or_default()),
            Some(f) => {
                f.next += 1;
                PathSeg::Index(f.next - 1)
            }
        }
    }
    const ROOT: &[PathSeg] = &[];
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b' ' | b'\t' | b'\r' | b',' | b':' => {
                if let Some(f) = stack.last_mut() {
                    if f.obj && c == b',' {
                        f.expect_key = true;
                    } else if f.obj && c == b':' {
                        f.expect_key = false;
                    }
                }
                i += 1;
            }
            b'"' => {
                let start_line = line;
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    if b[j] == b'\\' {
                        j += 1;
                    } else if b[j] == b'\n' {
                        line += 1;
                    }
                    j += 1;
                }
                let end = j.min(b.len());
                let is_key = matches!(stack.last(), Some(f) if f.obj && f.expect_key);
                if is_key {
                    let key = text.get(i + 1..end).unwrap_or("").to_string();
                    if let Some(f) = stack.last_mut() {
                        let seg = PathSeg::Key(key.clone());
                        if interesting(&f.path, &seg) {
                            map.record_start(child(&f.path, seg), start_line);
                        }
                        f.key = Some(key);
                    }
                } else {
                    let seg = next_seg(&mut stack, &mut top);
                    let parent = stack.last().map_or(ROOT, |f| f.path.as_slice());
                    if stack.is_empty() {
                        stray.push(start_line);
                    } else if let PathSeg::Key(k) = &seg {
                        let value = text.get(i + 1..end).unwrap_or("").to_string();
                        map.record_scalar(parent, k, value);
                    }
                    if interesting(parent, &seg) {
                        map.record_start(child(parent, seg), start_line);
                    }
                }
                i = end + 1;
            }
            b'{' | b'[' => {
                let seg = next_seg(&mut stack, &mut top);
                let parent = stack.last().map_or(ROOT, |f| f.path.as_slice());
                let at_list = matches!(seg, PathSeg::Index(_)) && list_position(parent);
                let keep = interesting(parent, &seg);
                let path = child(parent, seg);
                if keep {
                    map.record_start(path.clone(), line);
                }
                if at_list {
                    cands.insert(
                        path.clone(),
                        Candidate {
                            start: i,
                            end: None,
                            line,
                        },
                    );
                }
                stack.push(JFrame {
                    obj: c == b'{',
                    path,
                    expect_key: c == b'{',
                    key: None,
                    next: 0,
                });
                i += 1;
            }
            b'}' | b']' => {
                if let Some(f) = stack.pop() {
                    map.record_end(&f.path, line);
                    if let Some(cand) = cands.get_mut(&f.path) {
                        cand.end = Some(i + 1);
                    }
                }
                i += 1;
            }
            _ => {
                if stack.is_empty() {
                    stray.push(line);
                }
                let seg = next_seg(&mut stack, &mut top);
                let parent = stack.last().map_or(ROOT, |f| f.path.as_slice());
                if interesting(parent, &seg) {
                    map.record_start(child(parent, seg), line);
                }
                while i < b.len()
                    && !matches!(
                        b[i],
                        b',' | b'}'
                            | b']'
                            | b' '
                            | b'\n'
                            | b'\t'
                            | b'\r'
                            | b':'
                            | b'"'
                            | b'{'
                            | b'['
                    )
                {
                    i += 1;
                }
            }
        }
    }
    JsonScan {
        lines: map,
        candidates: cands,
        stray,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(objs: &Objects) -> Vec<(String, usize)> {
        objs.objects
            .iter()
            .map(|o| (o.value["kind"].as_str().unwrap_or("?").to_string(), o.line))
            .collect()
    }

    #[test]
    fn a_single_object_is_located_at_its_kind_line() {
        let o = objects("# comment\napiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n");
        assert_eq!(kinds(&o), vec![("Pod".into(), 3)]);
        assert!(o.errors.is_empty());
    }

    #[test]
    fn multi_document_streams_keep_per_document_lines() {
        let text = "---\nkind: A\n---\n# c\n\nkind: B\n---\n";
        let o = objects(text);
        assert_eq!(kinds(&o), vec![("A".into(), 2), ("B".into(), 6)]);
    }

    #[test]
    fn list_items_at_the_keys_indentation_are_located() {
        let text = "apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: a\n- kind: Pod\n  metadata:\n    name: b\nkind: List\n";
        let o = objects(text);
        assert_eq!(kinds(&o), vec![("Pod".into(), 4), ("Pod".into(), 7)]);
    }

    #[test]
    fn list_items_indented_under_items_are_located() {
        let text = "kind: PodList\nitems:\n  - metadata: {name: a}\n    kind: Pod\n  - metadata: {name: b}\n";
        let o = objects(text);
        // The second item has no kind of its own: it takes `Pod` from `PodList`, and its line
        // is where the item starts.
        assert_eq!(kinds(&o), vec![("Pod".into(), 4), ("Pod".into(), 5)]);
    }

    #[test]
    fn a_bare_sequence_of_objects_is_flattened() {
        let text = "- apiVersion: v1\n  kind: Namespace\n- apiVersion: v1\n  kind: Pod\n";
        let o = objects(text);
        assert_eq!(kinds(&o), vec![("Namespace".into(), 2), ("Pod".into(), 4)]);
    }

    #[test]
    fn a_json_array_of_lists_and_objects_is_flattened_with_lines() {
        let text = "[\n  {\"kind\": \"PodList\", \"items\": [\n    {\"kind\": \"Pod\"},\n    {\n      \"kind\": \"Pod\"\n    }\n  ]},\n  {\"kind\": \"Namespace\"}\n]\n";
        let o = objects(text);
        assert_eq!(
            kinds(&o),
            vec![
                ("Pod".into(), 3),
                ("Pod".into(), 5),
                ("Namespace".into(), 8)
            ]
        );
    }

    #[test]
    fn items_of_a_typed_list_without_kind_take_it_from_the_list() {
        let text =
            "{\"kind\": \"PodList\", \"apiVersion\": \"v1\", \"items\": [{\"metadata\": {}}]}";
        let o = objects(text);
        assert_eq!(o.objects[0].value["kind"], "Pod");
        assert_eq!(o.objects[0].value["apiVersion"], "v1");
    }

    #[test]
    fn concatenated_json_values_are_all_read() {
        let o = objects("{\"kind\": \"A\"}\n{\n \"kind\": \"B\"\n}\n");
        assert_eq!(kinds(&o), vec![("A".into(), 1), ("B".into(), 3)]);
    }

    #[test]
    fn prompts_before_and_between_outputs_are_skipped() {
        let text = "$ calicoctl get tier -o yaml\nkind: Tier\nmetadata:\n  name: a\nroot@node-1:~# kubectl get ns -o yaml\nkind: Namespace\n";
        let o = objects(text);
        assert_eq!(kinds(&o), vec![("Tier".into(), 2), ("Namespace".into(), 6)]);
        assert!(o.errors.is_empty(), "{:?}", o.errors);
    }

    #[test]
    fn a_kubectl_comment_only_splits_when_a_resource_follows() {
        let text = "kind: A\n# kubectl get b -o yaml\nkind: B\n";
        assert_eq!(kinds(&objects(text)).len(), 2);
        let text = "kind: A\n# kubectl shows this differently\nspec: {}\n";
        let o = objects(text);
        assert_eq!(kinds(&o), vec![("A".into(), 1)]);
        assert!(o.objects[0].value.get("spec").is_some());
    }

    #[test]
    fn elision_lines_are_dropped_with_a_warning() {
        let text = "kind: X\nspec:\n    ...\n    a: 1\n    [...]\n    b: 2\n";
        let o = objects(text);
        assert_eq!(o.objects.len(), 1);
        assert_eq!(o.objects[0].value["spec"]["b"], 2);
        let lines: Vec<usize> = o.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 5]);
        assert!(o.errors.iter().all(|e| e.message.starts_with("warning: ")));
    }

    #[test]
    fn a_broken_document_is_an_error_at_its_file_line_and_others_are_read() {
        let text = "kind: A\n---\nkind: B\nmetadata:\n  name: [unclosed\n---\nkind: C\n";
        let o = objects(text);
        assert_eq!(kinds(&o), vec![("A".into(), 1), ("C".into(), 7)]);
        assert_eq!(o.errors.len(), 1);
        let e = &o.errors[0];
        assert!((5..=6).contains(&e.line), "{e:?}");
        assert!(e.message.contains("YAML document not decoded"), "{e:?}");
        assert!(
            !e.message.contains("line 3 column"),
            "relative line leaked: {e:?}"
        );
    }

    #[test]
    fn a_broken_item_in_a_yaml_list_costs_only_that_item() {
        let text = "kind: List\nitems:\n- kind: A\n- kind: B\n  metadata: {name: [x}\n- kind: C\n";
        let o = objects(text);
        assert_eq!(kinds(&o), vec![("A".into(), 3), ("C".into(), 6)]);
        assert_eq!(o.errors.len(), 1, "{:?}", o.errors);
    }

    #[test]
    fn a_truncated_json_list_keeps_its_complete_items() {
        let text = "{\n \"kind\": \"PodList\",\n \"items\": [\n  {\"kind\": \"Pod\", \"n\": 1},\n  {\"kind\": \"Pod\", \"n\": 2},\n  {\"kind\": \"Pod\", \"n\"";
        let o = objects(text);
        assert_eq!(kinds(&o), vec![("Pod".into(), 4), ("Pod".into(), 5)]);
        assert_eq!(o.errors.len(), 1);
        assert_eq!(o.errors[0].line, 6);
    }

    #[test]
    fn null_annotations_flow_lists_and_unquoted_timestamps_decode() {
        let text = "kind: X\nmetadata:\n  annotations:\n  creationTimestamp: 2018-12-11T16:42:12Z\nspec:\n  types: [Ingress, Egress]\n";
        let o = objects(text);
        let v = &o.objects[0].value;
        assert!(v["metadata"]["annotations"].is_null());
        assert_eq!(v["metadata"]["creationTimestamp"], "2018-12-11T16:42:12Z");
        assert_eq!(v["spec"]["types"][1], "Egress");
    }

    #[test]
    fn rule_lines_are_known_inside_an_object() {
        let text = "kind: NetworkPolicy\nspec:\n  ingress:\n  - action: Allow\n  - action: Deny\n  egress:\n    - action: Allow\n";
        let o = objects(text);
        let obj = &o.objects[0];
        let at = |dir: &str, i| {
            obj.line_of(&[
                PathSeg::Key("spec".into()),
                PathSeg::Key(dir.into()),
                PathSeg::Index(i),
            ])
        };
        assert_eq!(at("ingress", 0), Some(4));
        assert_eq!(at("ingress", 1), Some(5));
        assert_eq!(at("egress", 0), Some(7));
    }

    #[test]
    fn block_scalars_do_not_confuse_the_scanner() {
        let text = "items:\n- kind: A\n  metadata:\n    annotations:\n      x: |\n        - kind: fake\n        kind: fake\n- kind: B\n";
        let o = objects(text);
        assert_eq!(kinds(&o), vec![("A".into(), 2), ("B".into(), 8)]);
    }

    #[test]
    fn sniffing_recognises_yaml_and_json_resources() {
        assert!(looks_like_resources(
            "apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: Pod\n"
        ));
        assert!(looks_like_resources(
            "{\n  \"kind\": \"List\",\n  \"apiVersion\": \"v1\"\n}"
        ));
        assert!(looks_like_resources(
            "$ kubectl get pods -o yaml\napiVersion: v1\nkind: Pod\n"
        ));
        assert!(!looks_like_resources("*filter\n:INPUT ACCEPT [0:0]\n"));
        assert!(!looks_like_resources(
            "{\"clientVersion\": {\"major\": \"1\"}}"
        ));
    }

    /// A `PodList` over the size where lists are decoded item by item; items carry no kind.
    fn large_pod_list(json: bool) -> (String, usize) {
        let pad = "x".repeat(1000);
        let n = LARGE / 1000 + 50;
        let mut text = String::new();
        if json {
            text.push_str("{\n\"kind\": \"PodList\",\n\"apiVersion\": \"v1\",\n\"items\": [\n");
            for i in 0..n {
                let sep = if i + 1 == n { "" } else { "," };
                text.push_str(&format!(
                    "{{\"metadata\": {{\"name\": \"p{i}\", \"pad\": \"{pad}\"}}}}{sep}\n"
                ));
            }
            text.push_str("]\n}\n");
        } else {
            text.push_str("apiVersion: v1\nkind: PodList\nitems:\n");
            for i in 0..n {
                text.push_str(&format!("- metadata:\n    name: p{i}\n    pad: {pad}\n"));
            }
        }
        (text, n)
    }

    #[test]
    fn a_large_yaml_list_is_read_item_by_item_with_kinds_and_lines() {
        let (text, n) = large_pod_list(false);
        assert!(text.len() > LARGE);
        let o = objects(&text);
        assert!(
            o.errors.is_empty(),
            "{:?}",
            &o.errors[..o.errors.len().min(3)]
        );
        assert_eq!(o.objects.len(), n);
        let last = &o.objects[n - 1];
        assert_eq!(last.value["kind"], "Pod");
        assert_eq!(last.value["apiVersion"], "v1");
        assert_eq!(last.value["metadata"]["name"], format!("p{}", n - 1));
        assert_eq!(last.line, 4 + 3 * (n - 1));

        // Decoded item by item, a broken item is reported as such and costs only itself.
        let broken = text.replacen("    name: p7\n", "    name: [p7\n", 1);
        let o = objects(&broken);
        assert_eq!(o.objects.len(), n - 1);
        assert_eq!(o.errors.len(), 1, "{:?}", o.errors);
        assert!(o.errors[0].message.starts_with("list item not decoded"));
        assert!(
            (4 + 3 * 7..=4 + 3 * 8).contains(&o.errors[0].line),
            "{:?}",
            o.errors
        );
    }

    /// A `PodList` between the item-by-item size and the large size.
    fn medium_pod_list() -> String {
        let pad = "x".repeat(200);
        let mut text = String::from("apiVersion: v1\nkind: PodList\nitems:\n");
        for i in 0..400 {
            text.push_str(&format!(
                "- metadata:\n    name: p{i}\n    pad: {pad}\n  spec:\n    ports: [1, 2]\n"
            ));
        }
        assert!(text.len() > ITEMWISE && text.len() < LARGE);
        text
    }

    #[test]
    fn a_list_read_item_by_item_gives_what_the_whole_decode_gives() {
        let text = medium_pod_list();
        let o = objects(&text);
        assert!(o.errors.is_empty(), "{:?}", o.errors);
        let whole = documents(&text);
        let items = whole.docs[0].value["items"].as_array().expect("items");
        assert_eq!(o.objects.len(), items.len());
        for (k, (obj, item)) in o.objects.iter().zip(items).enumerate() {
            let mut want = item.clone();
            want["kind"] = "Pod".into();
            want["apiVersion"] = "v1".into();
            assert_eq!(obj.value, want);
            assert_eq!(obj.line, 4 + 5 * k);
        }

        // A broken item: the document's error comes first, as when it is decoded whole,
        // and the other items are still read.
        let broken = text.replacen("    name: p7\n", "    name: [p7\n", 1);
        let o = objects(&broken);
        assert_eq!(o.objects.len(), 399);
        assert!(
            o.errors[0].message.starts_with("YAML document not decoded"),
            "{:?}",
            o.errors
        );
    }

    #[test]
    fn a_list_whose_items_share_an_anchor_is_decoded_whole() {
        let mut text = medium_pod_list();
        text.push_str("- metadata: &shared\n    name: a\n- metadata: *shared\n");
        let o = objects(&text);
        assert!(o.errors.is_empty(), "{:?}", o.errors);
        assert_eq!(o.objects.len(), 402);
        assert_eq!(o.objects[401].value["metadata"]["name"], "a");
        // Not a list kind: the object is read whole, `items` and all.
        let other = text.replacen("kind: PodList", "kind: Thing", 1);
        let other = other.replace("&shared", "").replace("*shared", "{}");
        let o = objects(&other);
        assert_eq!(o.objects.len(), 1, "{:?}", o.errors);
    }

    #[test]
    fn a_large_json_list_is_read_item_by_item_and_survives_truncation() {
        let (text, n) = large_pod_list(true);
        let o = objects(&text);
        assert!(
            o.errors.is_empty(),
            "{:?}",
            &o.errors[..o.errors.len().min(3)]
        );
        assert_eq!(o.objects.len(), n);
        assert_eq!(o.objects[n - 1].value["kind"], "Pod");
        assert_eq!(o.objects[n - 1].line, 5 + (n - 1));

        let cut = text.len() - 700;
        let o = objects(&text[..cut]);
        assert_eq!(o.objects.len(), n - 1);
        assert_eq!(o.errors.len(), 1, "{:?}", o.errors);
        assert_eq!(o.errors[0].line, 5 + (n - 1));
        assert!(o.errors[0].message.contains("not closed"));
    }

    #[test]
    fn documents_are_decoded_whole_with_their_first_lines() {
        let d = documents("# c\na: 1\n---\nitems: [1]\n---\n{\"x\": 1}\n\n{\"y\":\n 2}\n");
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        let lines: Vec<usize> = d.docs.iter().map(|d| d.first_line).collect();
        assert_eq!(lines, [2, 4, 6, 8]);
        assert_eq!(d.docs[1].value["items"][0], 1, "lists are not flattened");
    }

    #[test]
    fn lone_carriage_returns_do_not_shift_line_numbers() {
        // libyaml breaks lines at a lone CR; the error must still be on our line 3.
        let o = objects("kind: A\r\nx: \"a\rb\"\n]\n");
        assert_eq!(o.errors.len(), 1, "{:?}", o.errors);
        assert_eq!(o.errors[0].line, 3);
        let o = objects("kind: A\r\nname: a\rb\r\n");
        assert_eq!(o.objects[0].value["name"], "a b");
    }

    #[test]
    fn odd_input_never_panics() {
        for text in [
            "",
            "\u{feff}",
            "- ",
            "-",
            "---\n---\n...",
            "\"unterminated: x",
            "'a'': b",
            "{",
            "[[[[",
            "]]}}",
            "key: ü\n  - é: ö",
            "\t- a\n\t\tb: c",
            "- - - a",
            "kind: [",
            "\"\\",
        ] {
            let _ = objects(text);
            let _ = documents(text);
        }
    }
}
