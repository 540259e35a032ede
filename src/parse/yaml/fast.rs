//! A direct decoder for the block YAML that `kubectl get -o yaml` and `calicoctl get -o yaml`
//! print, straight from a document's lines into a `serde_json::Value`.
//!
//! It reads block mappings and sequences (`- key: v` compact mappings and `- - x` included),
//! one-line plain, single- and double-quoted scalars, one-line flow collections, `|` and `>`
//! block scalars and comments, and gives exactly the value serde_yaml 0.9 gives for the same
//! text through `decode_yaml_text`: the same scalar resolution (YAML 1.2 core schema as
//! serde_yaml reads it), keys as their scalar text, a later duplicate key replacing an
//! earlier one. It is not a YAML parser: whatever lies outside that subset (anchors, aliases,
//! tags, multi-line plain or quoted scalars, `? ` keys, tabs, flow collections over several
//! lines, merge keys, control characters, integers beyond 64 bits, nesting deeper than
//! [`MAX_DEPTH`]) or looks the least bit ambiguous makes it answer `None`, and serde_yaml reads
//! the document as before (and reports its errors).
//!
//! The lines are those the document would be joined from: the last one has no line break
//! after it (which a block scalar ending there can tell).

use std::borrow::Cow;

use serde_json::{Map, Value};

/// Deepest nesting decoded here; serde_yaml refuses documents nested deeper than 128.
const MAX_DEPTH: usize = 64;

/// libyaml ends a simple key within 1024 characters of its start; longer keys are left to it.
const MAX_KEY: usize = 1000;

/// Decode one document from its lines. `skip_first` bytes of the first line count as blanks:
/// a list item decoded on its own is its lines with the item's `-` blanked out.
pub(super) fn decode(lines: &[(usize, &str)], skip_first: usize) -> Option<Value> {
    let first = lines.first()?.1;
    if first.get(skip_first..).is_none() || !lines_in_subset(lines, skip_first) {
        return None;
    }
    let mut p = Parser {
        lines,
        skip_first,
        pos: 0,
        partial: None,
        peeked: None,
        depth: 0,
    };
    let (col, _) = p.peek()?;
    let value = p.node(col)?;
    // Anything after the root collection is an error for serde_yaml to report.
    if p.peek().is_some() {
        return None;
    }
    Some(value)
}

/// Whole-line reasons to leave a document to serde_yaml: characters libyaml refuses or reads
/// specially (controls, tabs, DEL, C1 controls, byte order marks, non-characters), merge keys
/// (`<<` sends `decode_yaml_text` down another route), and document markers or directives at
/// the start of a line.
fn lines_in_subset(lines: &[(usize, &str)], skip_first: usize) -> bool {
    for (k, (_, line)) in lines.iter().enumerate() {
        let b = line.as_bytes();
        if (k > 0 || skip_first == 0)
            && (b.starts_with(b"---") || b.starts_with(b"...") || b.first() == Some(&b'%'))
        {
            return false;
        }
        // Without an early exit, so that it runs many bytes at a time.
        if b.iter()
            .fold(false, |odd, &c| odd | !(0x20..0x7f).contains(&c))
            && line.chars().any(|c| {
                c < ' '
                    || ('\u{7f}'..='\u{9f}').contains(&c)
                    || matches!(c, '\u{feff}' | '\u{fffe}' | '\u{ffff}')
            })
        {
            return false;
        }
        if memchr::memchr(b'<', b).is_some() && line.contains("<<") {
            return false;
        }
    }
    true
}

struct Parser<'a> {
    lines: &'a [(usize, &'a str)],
    skip_first: usize,
    /// Index of the first line not yet consumed.
    pos: usize,
    /// The rest of a consumed `- ` line that is a collection of its own (`- key: v`,
    /// `- - x`), with its column: the line to read next.
    partial: Option<(usize, &'a str)>,
    /// The last line [`Parser::peek`] found: its index, column and text.
    peeked: Option<(usize, usize, &'a str)>,
    depth: usize,
}

impl<'a> Parser<'a> {
    /// Column and text (from the first non-blank) of line `i`.
    fn line(&self, i: usize) -> (usize, &'a str) {
        let l = self.lines[i].1;
        let from = if i == 0 { self.skip_first } else { 0 };
        let text = l.get(from..).unwrap_or("").trim_start_matches(' ');
        (l.len() - text.len(), text)
    }

    /// The next significant line (blank and comment lines skipped), not consumed.
    fn peek(&mut self) -> Option<(usize, &'a str)> {
        if self.partial.is_some() {
            return self.partial;
        }
        if let Some((at, col, text)) = self.peeked
            && at == self.pos
        {
            return Some((col, text));
        }
        while self.pos < self.lines.len() {
            let (col, text) = self.line(self.pos);
            if !text.is_empty() && !text.starts_with('#') {
                self.peeked = Some((self.pos, col, text));
                return Some((col, text));
            }
            self.pos += 1;
        }
        None
    }

    /// Consume what [`Parser::peek`] returned.
    fn consume(&mut self) {
        if self.partial.take().is_none() {
            self.pos += 1;
        }
    }

    /// The block collection starting at the next significant line, at column `col`.
    fn node(&mut self, col: usize) -> Option<Value> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let (_, text) = self.peek()?;
        let v = if is_entry(text) {
            self.sequence(col)
        } else {
            self.mapping(col)
        };
        self.depth -= 1;
        v
    }

    /// A value given on the lines after its `key:` or `-`: a deeper collection, an indentless
    /// sequence (`key:` then `- x` at the key's column, `indentless`), or nothing (null).
    fn below(&mut self, n: usize, indentless: bool) -> Option<Value> {
        match self.peek() {
            Some((c, _)) if c > n => self.node(c),
            Some((c, t)) if indentless && c == n && is_entry(t) => self.node(c),
            _ => Some(Value::Null),
        }
    }

    fn sequence(&mut self, n: usize) -> Option<Value> {
        let mut items = Vec::new();
        while let Some((c, t)) = self.peek() {
            if c != n || !is_entry(t) {
                break;
            }
            self.consume();
            let rest = t[1..].trim_start_matches(' ');
            let rest_col = c + (t.len() - rest.len());
            let item = if rest.is_empty() || rest.starts_with('#') {
                self.below(n, false)?
            } else if is_entry(rest) || entry(rest).is_some() {
                self.partial = Some((rest_col, rest));
                self.node(rest_col)?
            } else {
                self.inline(rest, n)?
            };
            // A deeper line left over continues a scalar or is misplaced: serde_yaml decides.
            if self.peek().is_some_and(|(c, _)| c > n) {
                return None;
            }
            items.push(item);
        }
        Some(Value::Array(items))
    }

    fn mapping(&mut self, n: usize) -> Option<Value> {
        let mut map = Map::new();
        while let Some((c, t)) = self.peek() {
            if c != n {
                break;
            }
            self.consume();
            let (key, after) = entry(t)?;
            let value_text = after.trim_start_matches(' ');
            let value = if value_text.is_empty() || value_text.starts_with('#') {
                self.below(n, true)?
            } else {
                self.inline(value_text, n)?
            };
            if self
                .peek()
                .is_some_and(|(c, t)| c > n || (c == n && is_entry(t)))
            {
                return None;
            }
            // A later duplicate replaces the earlier value, as serde_json's map visitor does.
            map.insert(key.into_owned(), value);
        }
        Some(Value::Object(map))
    }

    /// A value written on its key's (or `- `'s) line, inside a collection at column `n`.
    fn inline(&mut self, text: &'a str, n: usize) -> Option<Value> {
        let b = text.as_bytes();
        match b[0] {
            b'"' => {
                let (s, used) = double_quoted(&text[1..])?;
                end_of_value(&text[1 + used..]).then_some(Value::String(s))
            }
            b'\'' => {
                let (s, used) = single_quoted(&text[1..])?;
                end_of_value(&text[1 + used..]).then_some(Value::String(s))
            }
            b'[' | b'{' => {
                let mut i = 0;
                let v = flow_node(text, &mut i, self.depth)?;
                end_of_value(&text[i..]).then_some(v)
            }
            b'|' | b'>' => self.block_scalar(text, n),
            b'-' if b.len() == 1 || b[1] == b' ' => None,
            c if is_indicator(c) => None,
            _ => plain(text),
        }
    }

    /// A `|` or `>` block scalar whose header is `header`, in a collection at column `n`,
    /// read the way libyaml reads it.
    fn block_scalar(&mut self, header: &str, n: usize) -> Option<Value> {
        #[derive(PartialEq)]
        enum Chomp {
            Strip,
            Clip,
            Keep,
        }
        let literal = header.starts_with('|');
        let hb = header.as_bytes();
        let (mut chomp, mut increment, mut i) = (Chomp::Clip, 0, 1);
        while let Some(&c) = hb.get(i) {
            match c {
                b'+' | b'-' if chomp == Chomp::Clip => {
                    chomp = if c == b'+' { Chomp::Keep } else { Chomp::Strip };
                }
                b'1'..=b'9' if increment == 0 => increment = usize::from(c - b'0'),
                _ => break,
            }
            i += 1;
        }
        if !end_of_value(&header[i..]) {
            return None;
        }
        let lines = self.lines;
        let last = lines.len().checked_sub(1)?;
        let mut indent = if increment > 0 { n + increment } else { 0 };
        let mut at = self.pos;
        let mut eof = at > last;
        let mut breaks = 0usize;

        // Blank lines before content (or the end): each a line break; with the indentation
        // still unknown, the deepest of them and the first content line set it.
        let scan_breaks =
            |at: &mut usize, eof: &mut bool, breaks: &mut usize, indent: usize| -> usize {
                let mut max_col = 0;
                while !*eof {
                    let l = lines[*at].1;
                    let spaces = l.len() - l.trim_start_matches(' ').len();
                    let col = if indent == 0 {
                        spaces
                    } else {
                        spaces.min(indent)
                    };
                    max_col = max_col.max(col);
                    if col < l.len() {
                        break;
                    }
                    if *at == last {
                        // The document's last line has no line break after it.
                        *at += 1;
                        *eof = true;
                    } else {
                        *breaks += 1;
                        *at += 1;
                    }
                }
                max_col
            };

        let max_col = scan_breaks(&mut at, &mut eof, &mut breaks, indent);
        if indent == 0 {
            indent = max_col.max(n + 1);
        }
        let mut out = String::new();
        let mut leading_break = false;
        let mut leading_blank = false;
        while !eof {
            let l = lines[at].1;
            let spaces = l.len() - l.trim_start_matches(' ').len();
            if spaces < indent {
                break;
            }
            let content = &l[indent..];
            let trailing_blank = content.starts_with(' ');
            if !literal && leading_break && !leading_blank && !trailing_blank {
                if breaks == 0 {
                    out.push(' ');
                }
            } else if leading_break {
                out.push('\n');
            }
            leading_break = false;
            out.extend(std::iter::repeat_n('\n', breaks));
            breaks = 0;
            leading_blank = trailing_blank;
            out.push_str(content);
            at += 1;
            if at > last {
                eof = true;
            } else {
                leading_break = true;
                scan_breaks(&mut at, &mut eof, &mut breaks, indent);
            }
        }
        if chomp != Chomp::Strip && leading_break {
            out.push('\n');
        }
        if chomp == Chomp::Keep {
            out.extend(std::iter::repeat_n('\n', breaks));
        }
        self.pos = at;
        Some(Value::String(out))
    }
}

/// A block sequence entry: `-` alone or followed by a blank.
fn is_entry(t: &str) -> bool {
    t == "-" || t.starts_with("- ")
}

/// First characters that make a plain scalar or key something else (or an error).
fn is_indicator(c: u8) -> bool {
    matches!(
        c,
        b'[' | b'{'
            | b']'
            | b'}'
            | b','
            | b'?'
            | b':'
            | b'&'
            | b'*'
            | b'!'
            | b'|'
            | b'>'
            | b'%'
            | b'@'
            | b'`'
            | b'#'
            | b'"'
            | b'\''
    )
}

/// What may follow a complete value on its line: nothing, or blanks and a comment.
fn end_of_value(rest: &str) -> bool {
    rest.is_empty() || {
        let r = rest.trim_start_matches(' ');
        rest.starts_with(' ') && (r.is_empty() || r.starts_with('#'))
    }
}

/// `key: value` or `key:` → the key's text and what follows the `:`; `None` when the line is
/// not a simple key this decoder reads.
fn entry(t: &str) -> Option<(Cow<'_, str>, &str)> {
    let b = t.as_bytes();
    let (key, rest) = match *b.first()? {
        q @ (b'"' | b'\'') => {
            let (key, used) = if q == b'"' {
                double_quoted(&t[1..])?
            } else {
                single_quoted(&t[1..])?
            };
            if used >= MAX_KEY {
                return None;
            }
            let after = t[1 + used..].trim_start_matches(' ');
            (Cow::Owned(key), after.strip_prefix(':')?)
        }
        b'-' if b.len() == 1 || b[1] == b' ' => return None,
        c if is_indicator(c) => return None,
        _ => {
            let colon = memchr::memchr2_iter(b':', b'#', b).find_map(|i| match b[i] {
                b':' if i + 1 == b.len() || b[i + 1] == b' ' => Some(Some(i)),
                // A comment before any `: `: not a key.
                b'#' if b[i - 1] == b' ' => Some(None),
                _ => None,
            })??;
            if colon > MAX_KEY {
                return None;
            }
            (
                Cow::Borrowed(t[..colon].trim_end_matches(' ')),
                &t[colon + 1..],
            )
        }
    };
    (rest.is_empty() || rest.starts_with(' ')).then_some((key, rest))
}

/// A one-line plain scalar in block context, comment dropped.
fn plain(text: &str) -> Option<Value> {
    let b = text.as_bytes();
    let mut end = b.len();
    for i in memchr::memchr2_iter(b':', b'#', b) {
        if b[i] == b'#' && i > 0 && b[i - 1] == b' ' {
            end = i;
            break;
        }
        // `a: b: c` is an error, and `a: b:` too.
        if b[i] == b':' && matches!(b.get(i + 1), None | Some(b' ')) {
            return None;
        }
    }
    resolve(text[..end].trim_end_matches(' '))
}

/// The inside of a double-quoted scalar, `s` starting after the opening quote: its value and
/// the bytes used up to and including the closing quote. `None` when it does not close on the
/// line or has an escape libyaml refuses.
fn double_quoted(s: &str) -> Option<(String, usize)> {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    loop {
        let k = i + memchr::memchr2(b'"', b'\\', &b[i..])?;
        out.push_str(&s[i..k]);
        if b[k] == b'"' {
            return Some((out, k + 1));
        }
        // A `\` ending the line continues the scalar on the next: left to serde_yaml.
        let esc = *b.get(k + 1)?;
        let digits = match esc {
            b'x' => 2,
            b'u' => 4,
            b'U' => 8,
            _ => 0,
        };
        if digits > 0 {
            let hex = s.get(k + 2..k + 2 + digits)?;
            if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            let code = u32::from_str_radix(hex, 16).ok()?;
            out.push(char::from_u32(code)?);
            i = k + 2 + digits;
            continue;
        }
        out.push(match esc {
            b'0' => '\0',
            b'a' => '\u{7}',
            b'b' => '\u{8}',
            b't' => '\t',
            b'n' => '\n',
            b'v' => '\u{b}',
            b'f' => '\u{c}',
            b'r' => '\r',
            b'e' => '\u{1b}',
            b' ' => ' ',
            b'"' => '"',
            b'/' => '/',
            b'\\' => '\\',
            b'N' => '\u{85}',
            b'_' => '\u{a0}',
            b'L' => '\u{2028}',
            b'P' => '\u{2029}',
            _ => return None,
        });
        i = k + 2;
    }
}

/// The inside of a single-quoted scalar (`''` is a quote), as [`double_quoted`].
fn single_quoted(s: &str) -> Option<(String, usize)> {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    loop {
        let k = i + memchr::memchr(b'\'', &b[i..])?;
        out.push_str(&s[i..k]);
        if b.get(k + 1) == Some(&b'\'') {
            out.push('\'');
            i = k + 2;
        } else {
            return Some((out, k + 1));
        }
    }
}

/// A one-line flow node at `s[*i..]` (blanks first skipped), `*i` left after it. Only what
/// reads the same in every YAML reader: plain scalars without `:`, `#` and flow indicators,
/// quoted scalars, `key: value` pairs in mappings, no empty or trailing entries.
fn flow_node(s: &str, i: &mut usize, depth: usize) -> Option<Value> {
    let b = s.as_bytes();
    skip_blanks(b, i);
    match *b.get(*i)? {
        open @ (b'[' | b'{') => {
            if depth + 1 > MAX_DEPTH {
                return None;
            }
            let close = if open == b'[' { b']' } else { b'}' };
            *i += 1;
            let mut items = Vec::new();
            let mut map = Map::new();
            skip_blanks(b, i);
            if b.get(*i) != Some(&close) {
                loop {
                    if open == b'[' {
                        items.push(flow_node(s, i, depth + 1)?);
                    } else {
                        let key = flow_key(s, i)?;
                        let value = flow_node(s, i, depth + 1)?;
                        map.insert(key, value);
                    }
                    skip_blanks(b, i);
                    match *b.get(*i)? {
                        b',' => {
                            *i += 1;
                            skip_blanks(b, i);
                            if b.get(*i) == Some(&close) {
                                return None;
                            }
                        }
                        c if c == close => break,
                        _ => return None,
                    }
                }
            }
            *i += 1;
            Some(if open == b'[' {
                Value::Array(items)
            } else {
                Value::Object(map)
            })
        }
        b'"' => {
            let (v, used) = double_quoted(&s[*i + 1..])?;
            *i += 1 + used;
            Some(Value::String(v))
        }
        b'\'' => {
            let (v, used) = single_quoted(&s[*i + 1..])?;
            *i += 1 + used;
            Some(Value::String(v))
        }
        _ => resolve(flow_plain(s, i)?),
    }
}

/// A flow mapping's key and its `: ` separator.
fn flow_key(s: &str, i: &mut usize) -> Option<String> {
    let b = s.as_bytes();
    skip_blanks(b, i);
    let key = match *b.get(*i)? {
        b'"' => {
            let (v, used) = double_quoted(&s[*i + 1..])?;
            *i += 1 + used;
            v
        }
        b'\'' => {
            let (v, used) = single_quoted(&s[*i + 1..])?;
            *i += 1 + used;
            v
        }
        _ => {
            let start = *i;
            while *i < b.len() && b[*i] != b':' {
                if matches!(b[*i], b',' | b'[' | b']' | b'{' | b'}' | b'#') {
                    return None;
                }
                *i += 1;
            }
            let k = s[start..*i].trim_end_matches(' ');
            if k.is_empty() || is_indicator(k.as_bytes()[0]) || k.starts_with("- ") {
                return None;
            }
            k.to_string()
        }
    };
    skip_blanks(b, i);
    if b.get(*i) != Some(&b':') || b.get(*i + 1) != Some(&b' ') {
        return None;
    }
    *i += 2;
    Some(key)
}

/// A plain scalar inside a flow collection.
fn flow_plain<'s>(s: &'s str, i: &mut usize) -> Option<&'s str> {
    let b = s.as_bytes();
    let start = *i;
    let first = *b.get(start)?;
    let lone_dash = first == b'-'
        && matches!(
            b.get(start + 1),
            None | Some(b' ' | b',' | b'[' | b']' | b'{' | b'}')
        );
    if is_indicator(first) || lone_dash {
        return None;
    }
    while *i < b.len() && !matches!(b[*i], b',' | b'[' | b']' | b'{' | b'}') {
        if matches!(b[*i], b':' | b'#') {
            return None;
        }
        *i += 1;
    }
    let v = s[start..*i].trim_end_matches(' ');
    (!v.is_empty()).then_some(v)
}

fn skip_blanks(b: &[u8], i: &mut usize) {
    while b.get(*i) == Some(&b' ') {
        *i += 1;
    }
}

/// A plain scalar's value as serde_yaml resolves it for `serde_json::Value`: null, boolean,
/// integer, float, else string. `None` for integers that fit 128 bits but not 64 (serde_yaml
/// then takes another route).
fn resolve(s: &str) -> Option<Value> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Value::Null),
        "true" | "True" | "TRUE" => return Some(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Value::Bool(false)),
        _ => {}
    }
    let first = s.as_bytes()[0];
    // Only these can start a number (Rust's float parser also takes `inf` and `nan`, but
    // serde_yaml keeps only finite floats from it).
    if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.')) {
        return Some(Value::String(s.to_string()));
    }
    match integer(s) {
        Int::Unsigned(u) => return Some(Value::from(u)),
        Int::Signed(i) => return Some(Value::from(i)),
        Int::TooBig => return None,
        Int::Not => {}
    }
    if !leading_zero_digits(s) {
        let unsigned = match s.strip_prefix('+') {
            Some(u) if u.starts_with(['+', '-']) => return Some(Value::String(s.to_string())),
            Some(u) => u,
            None => s,
        };
        if matches!(unsigned, ".inf" | ".Inf" | ".INF")
            || matches!(s, "-.inf" | "-.Inf" | "-.INF" | ".nan" | ".NaN" | ".NAN")
        {
            // Not a JSON number: serde_json's value visitor makes it null.
            return Some(Value::Null);
        }
        if let Ok(f) = unsigned.parse::<f64>()
            && f.is_finite()
        {
            return Some(Value::from(f));
        }
    }
    Some(Value::String(s.to_string()))
}

enum Int {
    Unsigned(u64),
    Signed(i64),
    /// Integer syntax, but outside 64 bits.
    TooBig,
    Not,
}

/// serde_yaml's integers: an optional sign, then `0x`/`0o`/`0b` and digits of that base, or
/// decimal digits without a leading zero. A `+` sign or none gives a u64, `-` an i64.
fn integer(s: &str) -> Int {
    let (negative, body) = match s.as_bytes()[0] {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = if let Some(d) = body.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = body.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = body.strip_prefix("0b") {
        (2, d)
    } else if leading_zero_digits(s) {
        return Int::Not;
    } else {
        (10, body)
    };
    if digits.is_empty() || !digits.bytes().all(|c| (c as char).is_digit(radix)) {
        return Int::Not;
    }
    let Ok(magnitude) = u64::from_str_radix(digits, radix) else {
        return Int::TooBig;
    };
    if !negative {
        return Int::Unsigned(magnitude);
    }
    match 0i64.checked_sub_unsigned(magnitude) {
        Some(v) => Int::Signed(v),
        None => Int::TooBig,
    }
}

/// `0123`, `-007`: a leading zero and more digits, a string in YAML 1.2.
fn leading_zero_digits(s: &str) -> bool {
    let d = s.strip_prefix(['+', '-']).unwrap_or(s);
    d.len() > 1 && d.starts_with('0') && d.bytes().all(|c| c.is_ascii_digit())
}
