//! Calico's label-selector language, reproduced exactly (`libcalico-go/lib/selector`).
//!
//! This module tokenizes, parses, prints, hashes and evaluates selectors the way Calico does:
//! the v3.30+ byte-wise tokenizer with its exact error texts, the pre-v3.30 regex tokenizer's
//! acceptance and wording ([`Selector::parse_legacy`]), an AST that is *not* simplified (Felix
//! hashes the AST of the raw string it receives, so `!(!x)` must stay two nodes), the canonical
//! printer (`String()`), `UniqueID()`, the IP set names Felix derives from it, the prefix visitor
//! behind `pcns.`/`pcsa.` and the label restrictions Felix indexes selectors with.
//!
//! It is not a linter (see [`crate::calico::lint`]) and does not know where a selector comes
//! from: turning v3 policy fields into the strings Felix parses is [`crate::calico::rules`],
//! and which labels an endpoint carries is [`crate::calico::labels`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::calico::hash::make_unique_id;

/// Longest label the v3.30+ tokenizer accepts (`tokenizer.MaxLabelLength`).
pub const MAX_LABEL_LENGTH: usize = 512;

/// Longest IP set name Felix programs (`ipsets.MaxIPSetNameLength`).
pub const MAX_IPSET_NAME_LENGTH: usize = 31;

// ---------------------------------------------------------------------------------------------
// Label sources
// ---------------------------------------------------------------------------------------------

/// Anything a selector can be evaluated against: one lookup, "is the key present and with which
/// value" (Calico's `Labels.GetHandle`). Inheritance lives behind this trait, see
/// [`crate::calico::labels::InheritedLabels`].
pub trait LabelSource {
    /// The value of `key`, or `None` when the item does not carry it (an empty value is present).
    fn get_label(&self, key: &str) -> Option<&str>;
}

impl LabelSource for BTreeMap<String, String> {
    fn get_label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<S: std::hash::BuildHasher> LabelSource for HashMap<String, String, S> {
    fn get_label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<T: LabelSource + ?Sized> LabelSource for &T {
    fn get_label(&self, key: &str) -> Option<&str> {
        (**self).get_label(key)
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

/// Token kinds, in Calico's declaration order (the order gives the pre-v3.30 integer codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    None,
    Label,
    StringLiteral,
    LBrace,
    RBrace,
    Comma,
    Eq,
    Ne,
    In,
    Not,
    NotIn,
    Contains,
    StartsWith,
    EndsWith,
    All,
    Has,
    LParen,
    RParen,
    And,
    Or,
    Global,
    Eof,
}

impl TokenKind {
    /// The Go identifier (`TokLabel`, …), as v3.30+ error messages print it.
    pub fn name(self) -> &'static str {
        match self {
            TokenKind::None => "TokNone",
            TokenKind::Label => "TokLabel",
            TokenKind::StringLiteral => "TokStringLiteral",
            TokenKind::LBrace => "TokLBrace",
            TokenKind::RBrace => "TokRBrace",
            TokenKind::Comma => "TokComma",
            TokenKind::Eq => "TokEq",
            TokenKind::Ne => "TokNe",
            TokenKind::In => "TokIn",
            TokenKind::Not => "TokNot",
            TokenKind::NotIn => "TokNotIn",
            TokenKind::Contains => "TokContains",
            TokenKind::StartsWith => "TokStartsWith",
            TokenKind::EndsWith => "TokEndsWith",
            TokenKind::All => "TokAll",
            TokenKind::Has => "TokHas",
            TokenKind::LParen => "TokLParen",
            TokenKind::RParen => "TokRParen",
            TokenKind::And => "TokAnd",
            TokenKind::Or => "TokOr",
            TokenKind::Global => "TokGlobal",
            TokenKind::Eof => "TokEOF",
        }
    }

    /// The integer pre-v3.30 error messages print (`{21 <nil>}` is EOF).
    pub fn legacy_code(self) -> u8 {
        self as u8
    }

    /// Inverse of [`TokenKind::name`].
    pub fn from_name(name: &str) -> Option<TokenKind> {
        ALL_KINDS.iter().copied().find(|k| k.name() == name)
    }

    /// Whether tokens of this kind carry a value (label, literal, or the label of `has()`).
    pub fn has_value(self) -> bool {
        matches!(
            self,
            TokenKind::Label | TokenKind::StringLiteral | TokenKind::Has
        )
    }
}

const ALL_KINDS: [TokenKind; 22] = [
    TokenKind::None,
    TokenKind::Label,
    TokenKind::StringLiteral,
    TokenKind::LBrace,
    TokenKind::RBrace,
    TokenKind::Comma,
    TokenKind::Eq,
    TokenKind::Ne,
    TokenKind::In,
    TokenKind::Not,
    TokenKind::NotIn,
    TokenKind::Contains,
    TokenKind::StartsWith,
    TokenKind::EndsWith,
    TokenKind::All,
    TokenKind::Has,
    TokenKind::LParen,
    TokenKind::RParen,
    TokenKind::And,
    TokenKind::Or,
    TokenKind::Global,
    TokenKind::Eof,
];

/// One token. `value` is empty for kinds without a value; `start` is the byte offset of the
/// token in the input (for pointing at the place of an error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub value: String,
    pub start: usize,
}

impl Token {
    fn new(kind: TokenKind, value: impl Into<String>, start: usize) -> Token {
        Token {
            kind,
            value: value.into(),
            start,
        }
    }

    /// v3.30+ rendering, `TokLabel(tier)` / `TokEOF()`.
    pub fn display(&self) -> String {
        format!("{}({})", self.kind.name(), self.value)
    }

    /// Pre-v3.30 rendering: Go's `%v` of `struct{Kind uint8; Value interface{}}`,
    /// `{1 tier}` / `{21 <nil>}`.
    pub fn legacy_display(&self) -> String {
        if self.kind.has_value() {
            format!("{{{} {}}}", self.kind.legacy_code(), self.value)
        } else {
            format!("{{{} <nil>}}", self.kind.legacy_code())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Which rule of the language was broken; the message holds Calico's exact text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    UnterminatedString,
    ExpectedEq,
    ExpectedAnd,
    ExpectedOr,
    /// After a label, none of the keyword operators (v3.30+ `expected operator after label`,
    /// pre-v3.30 `unexpected characters after label`).
    ExpectedOperatorAfterLabel,
    /// An identifier was needed (pre-v3.30: `unexpected characters`).
    ExpectedIdentifier,
    LabelTooLong,
    NoClosingParen,
    UnexpectedEnd,
    ExpectedString,
    ExpectedSetLiteral,
    ExpectedRBrace,
    ExpectedOperator,
    ExpectedRParen,
    UnexpectedToken,
    TrailingContent,
}

/// A selector Calico rejects: `message` is `err.Error()` verbatim, `offset` the byte offset in
/// the input where the tokenizer stopped or where the offending token starts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SelectorError {
    pub kind: ErrorKind,
    pub message: String,
    pub offset: usize,
}

impl SelectorError {
    fn new(kind: ErrorKind, message: impl Into<String>, offset: usize) -> SelectorError {
        SelectorError {
            kind,
            message: message.into(),
            offset,
        }
    }
}

/// Which Calico release's tokenizer and wording to reproduce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// v3.30 and later: hand-written tokenizer, lower-case errors, `TokX(value)` tokens.
    Current,
    /// v3.29 and earlier (v3.15+ for `global()`): regex tokenizer, `\s` whitespace inside
    /// `has( )`, `not in` etc., capitalised parser errors, `{kind value}` tokens.
    Legacy,
}

/// Go's `%q` for the strings that reach it here (labels: printable ASCII only, but escape the
/// rest properly anyway so the output stays a valid Go literal).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------------------------

/// `[A-Za-z0-9_./-]`, the bytes a label is made of.
pub fn is_label_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'/' | b'-')
}

/// Whether `label` is a single label token (1 to 512 label bytes), Calico's `ValidLabel`.
pub fn is_valid_label(label: &str) -> bool {
    !label.is_empty() && label.len() <= MAX_LABEL_LENGTH && label.bytes().all(is_label_byte)
}

/// Go's regexp `\s`: `[\t\n\f\r ]`.
fn is_go_regex_space(c: u8) -> bool {
    matches!(c, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

/// Go's regexp `\w` (ASCII), which decides `\b` in the old `in\b` / `not\s*in\b`.
fn is_go_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn skip_while(b: &[u8], mut pos: usize, pred: impl Fn(u8) -> bool) -> usize {
    while pos < b.len() && pred(b[pos]) {
        pos += 1;
    }
    pos
}

fn skip_blanks(b: &[u8], pos: usize) -> usize {
    skip_while(b, pos, |c| c == b' ' || c == b'\t')
}

/// Lossless for our slices: they start and end at ASCII bytes or at the ends of a `&str`.
fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn starts_at(b: &[u8], pos: usize, word: &[u8]) -> bool {
    b.get(pos..).is_some_and(|rest| rest.starts_with(word))
}

/// Tokenize with the v3.30+ rules (`tokenizer.Tokenize`). The token list always ends with EOF.
pub fn tokenize(input: &str) -> Result<Vec<Token>, SelectorError> {
    tokenize_with(input, Dialect::Current)
}

/// Tokenize with the pre-v3.30 (regex) rules.
pub fn tokenize_legacy(input: &str) -> Result<Vec<Token>, SelectorError> {
    tokenize_with(input, Dialect::Legacy)
}

/// Tokenize `input` as the given Calico release does.
pub fn tokenize_with(input: &str, dialect: Dialect) -> Result<Vec<Token>, SelectorError> {
    let b = input.as_bytes();
    let mut toks: Vec<Token> = Vec::new();
    let mut pos = 0usize;
    loop {
        // Both tokenizers trim only space and tab between tokens.
        pos = skip_blanks(b, pos);
        let Some(&c) = b.get(pos) else {
            toks.push(Token::new(TokenKind::Eof, "", pos));
            return Ok(toks);
        };
        let start = pos;
        let last_label = toks
            .last()
            .filter(|t| t.kind == TokenKind::Label)
            .map(|t| t.value.clone());
        let simple = |kind| Token::new(kind, "", start);
        match c {
            b'(' => {
                toks.push(simple(TokenKind::LParen));
                pos += 1;
            }
            b')' => {
                toks.push(simple(TokenKind::RParen));
                pos += 1;
            }
            b'{' => {
                toks.push(simple(TokenKind::LBrace));
                pos += 1;
            }
            b'}' => {
                toks.push(simple(TokenKind::RBrace));
                pos += 1;
            }
            b',' => {
                toks.push(simple(TokenKind::Comma));
                pos += 1;
            }
            b'"' | b'\'' => {
                // No escaping: the literal runs to the next identical quote byte.
                let body = pos + 1;
                let Some(len) = b[body..].iter().position(|&x| x == c) else {
                    return Err(SelectorError::new(
                        ErrorKind::UnterminatedString,
                        "unterminated string",
                        start,
                    ));
                };
                toks.push(Token::new(
                    TokenKind::StringLiteral,
                    text(&b[body..body + len]),
                    start,
                ));
                pos = body + len + 1;
            }
            b'=' => {
                if b.get(pos + 1) == Some(&b'=') {
                    toks.push(simple(TokenKind::Eq));
                    pos += 2;
                } else {
                    return Err(SelectorError::new(
                        ErrorKind::ExpectedEq,
                        "expected ==",
                        start,
                    ));
                }
            }
            b'!' => {
                if b.get(pos + 1) == Some(&b'=') {
                    toks.push(simple(TokenKind::Ne));
                    pos += 2;
                } else {
                    toks.push(simple(TokenKind::Not));
                    pos += 1;
                }
            }
            b'&' => {
                if b.get(pos + 1) == Some(&b'&') {
                    toks.push(simple(TokenKind::And));
                    pos += 2;
                } else {
                    return Err(SelectorError::new(
                        ErrorKind::ExpectedAnd,
                        "expected &&",
                        start,
                    ));
                }
            }
            b'|' => {
                if b.get(pos + 1) == Some(&b'|') {
                    toks.push(simple(TokenKind::Or));
                    pos += 2;
                } else {
                    return Err(SelectorError::new(
                        ErrorKind::ExpectedOr,
                        "expected ||",
                        start,
                    ));
                }
            }
            _ => {
                let (tok, next) = match (dialect, last_label) {
                    (Dialect::Current, Some(label)) => current_operator(b, pos, &label)?,
                    (Dialect::Legacy, Some(label)) => legacy_operator(b, pos, &label)?,
                    (Dialect::Current, None) => current_term(b, pos)?,
                    (Dialect::Legacy, None) => legacy_term(b, pos)?,
                };
                toks.push(tok);
                pos = next;
            }
        }
    }
}

/// v3.30+: after a label only the keyword operators may follow, each ending at a word boundary
/// (end of input or a non-label byte). Blanks are skipped after every word of a multi-word
/// operator, including the last, before the boundary check.
fn current_operator(b: &[u8], pos: usize, label: &str) -> Result<(Token, usize), SelectorError> {
    let boundary = |at: usize| b.get(at).is_none_or(|&c| !is_label_byte(c));
    let single = |word: &[u8]| -> Option<usize> {
        let end = pos + word.len();
        (starts_at(b, pos, word) && boundary(end)).then_some(end)
    };
    let multi = |words: &[&[u8]]| -> Option<usize> {
        let mut at = pos;
        for w in words {
            if !starts_at(b, at, w) {
                return None;
            }
            at = skip_blanks(b, at + w.len());
        }
        boundary(at).then_some(at)
    };
    let found = if let Some(n) = single(b"contains") {
        Some((TokenKind::Contains, n))
    } else if let Some(n) = multi(&[b"starts", b"with"]) {
        Some((TokenKind::StartsWith, n))
    } else if let Some(n) = multi(&[b"ends", b"with"]) {
        Some((TokenKind::EndsWith, n))
    } else if let Some(n) = multi(&[b"not", b"in"]) {
        Some((TokenKind::NotIn, n))
    } else {
        single(b"in").map(|n| (TokenKind::In, n))
    };
    match found {
        Some((kind, next)) => Ok((Token::new(kind, "", pos), next)),
        None => Err(SelectorError::new(
            ErrorKind::ExpectedOperatorAfterLabel,
            format!("expected operator after label {}", go_quote(label)),
            pos,
        )),
    }
}

/// v3.30+ identifier: 1..=512 label bytes.
fn current_identifier(b: &[u8], pos: usize) -> Result<(String, usize), SelectorError> {
    let end = skip_while(b, pos, is_label_byte);
    let ident = &b[pos..end];
    if ident.is_empty() {
        return Err(SelectorError::new(
            ErrorKind::ExpectedIdentifier,
            "expected identifier",
            pos,
        ));
    }
    if ident.len() > MAX_LABEL_LENGTH {
        return Err(SelectorError::new(
            ErrorKind::LabelTooLong,
            format!("label too long: {}", text(ident)),
            pos,
        ));
    }
    Ok((text(ident), end))
}

fn current_term(b: &[u8], pos: usize) -> Result<(Token, usize), SelectorError> {
    let no_close = |what: &str, at: usize| {
        SelectorError::new(
            ErrorKind::NoClosingParen,
            format!("no closing ')' after {what}("),
            at,
        )
    };
    if starts_at(b, pos, b"has(") {
        let at = skip_blanks(b, pos + 4);
        let (ident, after) = current_identifier(b, at)?;
        let at = skip_blanks(b, after);
        if b.get(at) == Some(&b')') {
            return Ok((Token::new(TokenKind::Has, ident, pos), at + 1));
        }
        return Err(no_close("has", at));
    }
    for (word, kind) in [
        (&b"all("[..], TokenKind::All),
        (b"global(", TokenKind::Global),
    ] {
        if starts_at(b, pos, word) {
            let at = skip_blanks(b, pos + word.len());
            if b.get(at) == Some(&b')') {
                return Ok((Token::new(kind, "", pos), at + 1));
            }
            let name = if kind == TokenKind::All {
                "all"
            } else {
                "global"
            };
            return Err(no_close(name, at));
        }
    }
    let (ident, next) = current_identifier(b, pos)?;
    Ok((Token::new(TokenKind::Label, ident, pos), next))
}

/// Pre-v3.30 operators after a label: `^contains`, `^starts\s*with`, `^ends\s*with` (no boundary
/// check at all), `^not\s*in\b`, `^in\b` (Go's ASCII `\b`).
fn legacy_operator(b: &[u8], pos: usize, label: &str) -> Result<(Token, usize), SelectorError> {
    let words = |w1: &[u8], w2: &[u8]| -> Option<usize> {
        if !starts_at(b, pos, w1) {
            return None;
        }
        let at = skip_while(b, pos + w1.len(), is_go_regex_space);
        starts_at(b, at, w2).then_some(at + w2.len())
    };
    // `\b` after "in": the last matched byte 'n' is a word byte, so a boundary needs a non-word
    // byte or the end next.
    let word_boundary = |at: usize| b.get(at).is_none_or(|&c| !is_go_word_byte(c));
    let found = if starts_at(b, pos, b"contains") {
        Some((TokenKind::Contains, pos + 8))
    } else if let Some(n) = words(b"starts", b"with") {
        Some((TokenKind::StartsWith, n))
    } else if let Some(n) = words(b"ends", b"with") {
        Some((TokenKind::EndsWith, n))
    } else if let Some(n) = words(b"not", b"in").filter(|&n| word_boundary(n)) {
        Some((TokenKind::NotIn, n))
    } else if starts_at(b, pos, b"in") && word_boundary(pos + 2) {
        Some((TokenKind::In, pos + 2))
    } else {
        None
    };
    match found {
        Some((kind, next)) => Ok((Token::new(kind, "", pos), next)),
        None => Err(SelectorError::new(
            ErrorKind::ExpectedOperatorAfterLabel,
            format!("unexpected characters after label '{label}', was expecting an operator"),
            pos,
        )),
    }
}

/// Pre-v3.30 terms: `^has\(\s*([label]{1,512})\s*\)`, `^all\(\s*\)`, `^global\(\s*\)`, then
/// `^[label]{1,512}` (a longer run is split after 512 bytes).
fn legacy_term(b: &[u8], pos: usize) -> Result<(Token, usize), SelectorError> {
    if starts_at(b, pos, b"has(") {
        let at = skip_while(b, pos + 4, is_go_regex_space);
        let end = skip_while(b, at, is_label_byte);
        let len = end - at;
        // A longer run cannot match: backtracking leaves a label byte where `\s*\)` must follow.
        if (1..=MAX_LABEL_LENGTH).contains(&len) {
            let close = skip_while(b, end, is_go_regex_space);
            if b.get(close) == Some(&b')') {
                return Ok((
                    Token::new(TokenKind::Has, text(&b[at..end]), pos),
                    close + 1,
                ));
            }
        }
    }
    for (word, kind) in [
        (&b"all("[..], TokenKind::All),
        (b"global(", TokenKind::Global),
    ] {
        if starts_at(b, pos, word) {
            let close = skip_while(b, pos + word.len(), is_go_regex_space);
            if b.get(close) == Some(&b')') {
                return Ok((Token::new(kind, "", pos), close + 1));
            }
        }
    }
    let end = skip_while(b, pos, is_label_byte).min(pos + MAX_LABEL_LENGTH);
    if end == pos {
        return Err(SelectorError::new(
            ErrorKind::ExpectedIdentifier,
            "unexpected characters",
            pos,
        ));
    }
    Ok((Token::new(TokenKind::Label, text(&b[pos..end]), pos), end))
}

// ---------------------------------------------------------------------------------------------
// AST
// ---------------------------------------------------------------------------------------------

/// A parsed selector, node for node as Calico's parser builds it.
///
/// Nothing is simplified: `&&`/`||` chains are n-ary in the order written, a parenthesised group
/// is its own node (`a && (b && c)` is `And[a, And[b, c]]`; the parentheses themselves leave no
/// node), and only a *run* of `!` collapses by parity, so `!(!has(a))` is `Not(Not(Has))`.
/// Set values are sorted byte-wise and de-duplicated, as Calico stores them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// `label == "value"`: label present with exactly that value.
    LabelEq { label: String, value: String },
    /// `label != "value"`: label absent, or present with another value.
    LabelNe { label: String, value: String },
    /// `label contains "value"`: label present and containing the value.
    Contains { label: String, value: String },
    /// `label starts with "value"`.
    StartsWith { label: String, value: String },
    /// `label ends with "value"`.
    EndsWith { label: String, value: String },
    /// `label in {…}`: label present with one of the values (an empty set never matches).
    /// `values` is kept sorted and de-duplicated ([`to_string_set`]), as the printer expects.
    InSet { label: String, values: Vec<String> },
    /// `label not in {…}`: label absent, or its value not in the set.
    NotInSet { label: String, values: Vec<String> },
    /// `has(label)`: label present (an empty value counts).
    Has { label: String },
    /// `all()`, also the empty selector.
    All,
    /// `global()`: always true in the evaluator; only the v3→v1 string rewrite gives it meaning.
    Global,
    /// `!operand`.
    Not(Box<Node>),
    /// `(a && b && …)`, at least two operands.
    And(Vec<Node>),
    /// `(a || b || …)`, at least two operands.
    Or(Vec<Node>),
}

impl Node {
    /// The label a leaf tests, `None` for `all()`, `global()`, `!`, `&&`, `||`.
    pub fn label(&self) -> Option<&str> {
        match self {
            Node::LabelEq { label, .. }
            | Node::LabelNe { label, .. }
            | Node::Contains { label, .. }
            | Node::StartsWith { label, .. }
            | Node::EndsWith { label, .. }
            | Node::InSet { label, .. }
            | Node::NotInSet { label, .. }
            | Node::Has { label } => Some(label),
            _ => None,
        }
    }

    /// The same leaf testing another label (no-op on nodes without a label).
    pub fn with_label(&self, new_label: &str) -> Node {
        let mut n = self.clone();
        match &mut n {
            Node::LabelEq { label, .. }
            | Node::LabelNe { label, .. }
            | Node::Contains { label, .. }
            | Node::StartsWith { label, .. }
            | Node::EndsWith { label, .. }
            | Node::InSet { label, .. }
            | Node::NotInSet { label, .. }
            | Node::Has { label } => *label = new_label.to_string(),
            _ => {}
        }
        n
    }

    /// Evaluate against one item's labels (`Node.Evaluate`).
    pub fn evaluate<L: LabelSource + ?Sized>(&self, labels: &L) -> bool {
        match self {
            Node::LabelEq { label, value } => labels.get_label(label) == Some(value.as_str()),
            Node::LabelNe { label, value } => labels.get_label(label) != Some(value.as_str()),
            Node::Contains { label, value } => labels
                .get_label(label)
                .is_some_and(|v| v.contains(value.as_str())),
            Node::StartsWith { label, value } => labels
                .get_label(label)
                .is_some_and(|v| v.starts_with(value.as_str())),
            Node::EndsWith { label, value } => labels
                .get_label(label)
                .is_some_and(|v| v.ends_with(value.as_str())),
            Node::InSet { label, values } => labels
                .get_label(label)
                .is_some_and(|v| set_contains(values, v)),
            Node::NotInSet { label, values } => labels
                .get_label(label)
                .is_none_or(|v| !set_contains(values, v)),
            Node::Has { label } => labels.get_label(label).is_some(),
            Node::All | Node::Global => true,
            Node::Not(op) => !op.evaluate(labels),
            Node::And(ops) => ops.iter().all(|o| o.evaluate(labels)),
            Node::Or(ops) => ops.iter().any(|o| o.evaluate(labels)),
        }
    }

    /// Append the canonical text (`collectFragments`).
    pub fn write_canonical(&self, out: &mut String) {
        match self {
            Node::LabelEq { label, value } => write_op(out, label, " == ", value),
            Node::LabelNe { label, value } => write_op(out, label, " != ", value),
            Node::Contains { label, value } => write_op(out, label, " contains ", value),
            Node::StartsWith { label, value } => write_op(out, label, " starts with ", value),
            Node::EndsWith { label, value } => write_op(out, label, " ends with ", value),
            Node::InSet { label, values } => write_set(out, label, "in", values),
            Node::NotInSet { label, values } => write_set(out, label, "not in", values),
            Node::Has { label } => {
                out.push_str("has(");
                out.push_str(label);
                out.push(')');
            }
            Node::All => out.push_str("all()"),
            Node::Global => out.push_str("global()"),
            Node::Not(op) => {
                out.push('!');
                op.write_canonical(out);
            }
            Node::And(ops) => write_chain(out, ops, " && "),
            Node::Or(ops) => write_chain(out, ops, " || "),
        }
    }

    /// The canonical text of this node alone.
    pub fn canonical(&self) -> String {
        let mut s = String::new();
        self.write_canonical(&mut s);
        s
    }

    /// Prefix every label (Calico's `PrefixVisitor`).
    pub fn prefix_labels(&mut self, prefix: &str) {
        match self {
            Node::LabelEq { label, .. }
            | Node::LabelNe { label, .. }
            | Node::Contains { label, .. }
            | Node::StartsWith { label, .. }
            | Node::EndsWith { label, .. }
            | Node::InSet { label, .. }
            | Node::NotInSet { label, .. }
            | Node::Has { label } => label.insert_str(0, prefix),
            Node::All | Node::Global => {}
            Node::Not(op) => op.prefix_labels(prefix),
            Node::And(ops) | Node::Or(ops) => ops.iter_mut().for_each(|o| o.prefix_labels(prefix)),
        }
    }

    /// Calico's per-node `LabelRestrictions()`, including its slice-order behaviour.
    fn restrictions(&self) -> LabelRestrictions {
        let mut m = LabelRestrictions::new();
        match self {
            Node::LabelEq { label, value } => {
                m.insert(
                    label.clone(),
                    LabelRestriction::present(Some(vec![value.clone()])),
                );
            }
            Node::InSet { label, values } => {
                // Calico's parser builds a nil slice for `{}`, so an empty set carries no value
                // restriction (and counts as satisfiable), unlike a contradiction of `==`s.
                let vals = (!values.is_empty()).then(|| values.clone());
                m.insert(label.clone(), LabelRestriction::present(vals));
            }
            Node::Contains { label, .. }
            | Node::StartsWith { label, .. }
            | Node::EndsWith { label, .. }
            | Node::Has { label } => {
                m.insert(label.clone(), LabelRestriction::present(None));
            }
            Node::LabelNe { .. } | Node::NotInSet { .. } | Node::All | Node::Global => {}
            Node::Not(op) => {
                // Only `!has(k)` inverts into a restriction (k must be absent).
                if let Node::Has { label } = op.as_ref() {
                    m.insert(
                        label.clone(),
                        LabelRestriction {
                            must_be_present: false,
                            must_be_absent: true,
                            must_have_one_of_values: None,
                        },
                    );
                }
            }
            Node::And(ops) => {
                for op in ops {
                    for (label, r) in op.restrictions() {
                        let base = m.entry(label).or_default();
                        base.must_be_present |= r.must_be_present;
                        base.must_be_absent |= r.must_be_absent;
                        base.must_have_one_of_values = match (
                            base.must_have_one_of_values.take(),
                            r.must_have_one_of_values,
                        ) {
                            (None, other) => other,
                            (Some(a), None) => Some(a),
                            (Some(a), Some(b)) => {
                                Some(a.into_iter().filter(|v| b.contains(v)).collect())
                            }
                        };
                    }
                }
            }
            Node::Or(ops) => {
                let Some((first, rest)) = ops.split_first() else {
                    return m;
                };
                m = first.restrictions();
                for op in rest {
                    let other = op.restrictions();
                    let labels: Vec<String> = m.keys().cloned().collect();
                    for label in labels {
                        let Some(mut r) = m.remove(&label) else {
                            continue;
                        };
                        let opr = other.get(&label).cloned().unwrap_or_default();
                        r.must_be_present = r.must_be_present && opr.must_be_present;
                        if !r.must_be_present {
                            r.must_have_one_of_values = None;
                        } else {
                            r.must_have_one_of_values = match (
                                r.must_have_one_of_values.take(),
                                opr.must_have_one_of_values,
                            ) {
                                (Some(a), Some(b)) => Some(union_like_calico(a, b)),
                                _ => None,
                            };
                        }
                        r.must_be_absent = r.must_be_absent && opr.must_be_absent;
                        if r.must_be_present || r.must_be_absent {
                            m.insert(label, r);
                        }
                    }
                }
            }
        }
        m
    }
}

/// `unionStringSlicesInPlace`: `a` is sorted (and de-duplicated) first, then the values of `b`
/// that are not in it are appended in `b`'s order.
fn union_like_calico(mut a: Vec<String>, b: Vec<String>) -> Vec<String> {
    a.sort();
    a.dedup();
    let sorted_len = a.len();
    for v in b {
        if a[..sorted_len].binary_search(&v).is_err() {
            a.push(v);
        }
    }
    a
}

/// Membership without relying on order, so a hand-built (unsorted) set still evaluates right.
fn set_contains(values: &[String], v: &str) -> bool {
    values.iter().any(|x| x == v)
}

fn quote_for(value: &str) -> char {
    if value.contains('"') { '\'' } else { '"' }
}

fn write_op(out: &mut String, label: &str, op: &str, value: &str) {
    let q = quote_for(value);
    out.push_str(label);
    out.push_str(op);
    out.push(q);
    out.push_str(value);
    out.push(q);
}

fn write_set(out: &mut String, label: &str, op: &str, values: &[String]) {
    out.push_str(label);
    out.push(' ');
    out.push_str(op);
    out.push_str(" {");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let q = quote_for(v);
        out.push(q);
        out.push_str(v);
        out.push(q);
    }
    out.push('}');
}

fn write_chain(out: &mut String, ops: &[Node], sep: &str) {
    out.push('(');
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        op.write_canonical(out);
    }
    out.push(')');
}

/// Sort byte-wise and de-duplicate (`ConvertToStringSetInPlace`).
pub fn to_string_set(mut values: Vec<String>) -> Vec<String> {
    values.sort();
    values.dedup();
    values
}

// ---------------------------------------------------------------------------------------------
// Label restrictions
// ---------------------------------------------------------------------------------------------

/// What a selector requires of one label (Calico's `LabelRestriction`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelRestriction {
    /// The label must be present (`has(k)`, `k == …`, `k in {…}`, `contains` …).
    pub must_be_present: bool,
    /// The label must be absent (`!has(k)`).
    pub must_be_absent: bool,
    /// If `Some`, the value must be one of these; `Some(vec![])` means nothing can match.
    pub must_have_one_of_values: Option<Vec<String>>,
}

impl LabelRestriction {
    fn present(values: Option<Vec<String>>) -> LabelRestriction {
        LabelRestriction {
            must_be_present: true,
            must_be_absent: false,
            must_have_one_of_values: values,
        }
    }

    /// False when the restriction contradicts itself (`PossibleToSatisfy`).
    pub fn possible_to_satisfy(&self) -> bool {
        let contradictory = self.must_be_present && self.must_be_absent;
        let no_value_left = matches!(&self.must_have_one_of_values, Some(v) if v.is_empty());
        !contradictory && !no_value_left
    }
}

/// Restrictions per label; empty where Calico returns `nil`.
pub type LabelRestrictions = BTreeMap<String, LabelRestriction>;

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

static EOF_TOKEN: Token = Token {
    kind: TokenKind::Eof,
    value: String::new(),
    start: 0,
};

struct Parser<'t> {
    toks: &'t [Token],
    dialect: Dialect,
}

impl Parser<'_> {
    fn tok(&self, i: usize) -> &Token {
        // The list always ends with EOF; past it (or if it were empty) keep answering EOF.
        self.toks.get(i).or(self.toks.last()).unwrap_or(&EOF_TOKEN)
    }

    fn show(&self, t: &Token) -> String {
        match self.dialect {
            Dialect::Current => t.display(),
            Dialect::Legacy => t.legacy_display(),
        }
    }

    fn show_list(&self, from: usize) -> String {
        let items: Vec<String> = self
            .toks
            .get(from..)
            .unwrap_or_default()
            .iter()
            .map(|t| self.show(t))
            .collect();
        format!("[{}]", items.join(" "))
    }

    fn err(&self, kind: ErrorKind, current: &str, legacy: &str, at: usize) -> SelectorError {
        let msg = match self.dialect {
            Dialect::Current => current,
            Dialect::Legacy => legacy,
        };
        SelectorError::new(kind, msg, self.tok(at).start)
    }

    fn parse_or(&self, i: usize) -> Result<(Node, usize), SelectorError> {
        let (first, mut i) = self.parse_and(i)?;
        let mut nodes = vec![first];
        while self.tok(i).kind == TokenKind::Or {
            let (n, next) = self.parse_and(i + 1)?;
            nodes.push(n);
            i = next;
        }
        Ok((single_or(nodes, Node::Or), i))
    }

    fn parse_and(&self, i: usize) -> Result<(Node, usize), SelectorError> {
        let (first, mut i) = self.parse_operation(i)?;
        let mut nodes = vec![first];
        while self.tok(i).kind == TokenKind::And {
            let (n, next) = self.parse_operation(i + 1)?;
            nodes.push(n);
            i = next;
        }
        Ok((single_or(nodes, Node::And), i))
    }

    fn parse_operation(&self, mut i: usize) -> Result<(Node, usize), SelectorError> {
        let mut negated = false;
        while self.tok(i).kind == TokenKind::Not {
            negated = !negated;
            i += 1;
        }
        let t = self.tok(i);
        let (node, next) = match t.kind {
            TokenKind::Has => (
                Node::Has {
                    label: t.value.clone(),
                },
                i + 1,
            ),
            TokenKind::All => (Node::All, i + 1),
            TokenKind::Global => (Node::Global, i + 1),
            TokenKind::Label => self.parse_label_op(i)?,
            TokenKind::LParen => {
                let (inner, after) = self.parse_or(i + 1)?;
                if self.tok(after).kind != TokenKind::RParen {
                    return Err(self.err(
                        ErrorKind::ExpectedRParen,
                        "expected )",
                        "Expected )",
                        after,
                    ));
                }
                (inner, after + 1)
            }
            _ => {
                let shown = self.show(t);
                return Err(self.err(
                    ErrorKind::UnexpectedToken,
                    &format!("unexpected token: {shown}"),
                    &format!("Unexpected token: {shown}"),
                    i,
                ));
            }
        };
        let node = if negated {
            Node::Not(Box::new(node))
        } else {
            node
        };
        Ok((node, next))
    }

    fn parse_label_op(&self, i: usize) -> Result<(Node, usize), SelectorError> {
        let label = self.tok(i).value.clone();
        if self.toks.len().saturating_sub(i) < 3 {
            return Err(self.err(
                ErrorKind::UnexpectedEnd,
                "unexpected end of string looking for op",
                &format!(
                    "Unexpected end of string in middle of op{}",
                    self.show_list(i)
                ),
                i + 1,
            ));
        }
        let op = self.tok(i + 1);
        let operand = self.tok(i + 2);
        let valued = |make: fn(String, String) -> Node| {
            if operand.kind == TokenKind::StringLiteral {
                Ok((make(label.clone(), operand.value.clone()), i + 3))
            } else {
                Err(self.err(
                    ErrorKind::ExpectedString,
                    "expected string",
                    "Expected string",
                    i + 2,
                ))
            }
        };
        match op.kind {
            TokenKind::Eq => valued(|label, value| Node::LabelEq { label, value }),
            TokenKind::Ne => valued(|label, value| Node::LabelNe { label, value }),
            TokenKind::Contains => valued(|label, value| Node::Contains { label, value }),
            TokenKind::StartsWith => valued(|label, value| Node::StartsWith { label, value }),
            TokenKind::EndsWith => valued(|label, value| Node::EndsWith { label, value }),
            TokenKind::In | TokenKind::NotIn => {
                if operand.kind != TokenKind::LBrace {
                    return Err(self.err(
                        ErrorKind::ExpectedSetLiteral,
                        "expected set literal",
                        "Expected set literal",
                        i + 2,
                    ));
                }
                let mut j = i + 3;
                let mut values = Vec::new();
                // Items are literals separated by commas; one trailing comma is tolerated.
                while self.tok(j).kind == TokenKind::StringLiteral {
                    values.push(self.tok(j).value.clone());
                    j += 1;
                    if self.tok(j).kind == TokenKind::Comma {
                        j += 1;
                    } else {
                        break;
                    }
                }
                if self.tok(j).kind != TokenKind::RBrace {
                    return Err(self.err(ErrorKind::ExpectedRBrace, "expected }", "Expected }", j));
                }
                let values = to_string_set(values);
                let node = if op.kind == TokenKind::In {
                    Node::InSet { label, values }
                } else {
                    Node::NotInSet { label, values }
                };
                Ok((node, j + 1))
            }
            _ => {
                let shown = self.show(op);
                Err(self.err(
                    ErrorKind::ExpectedOperator,
                    &format!("expected == or != not: {shown}"),
                    &format!("Expected == or != not {shown}"),
                    i + 1,
                ))
            }
        }
    }
}

fn single_or(mut nodes: Vec<Node>, wrap: fn(Vec<Node>) -> Node) -> Node {
    if nodes.len() == 1 {
        nodes.pop().unwrap_or(Node::All)
    } else {
        wrap(nodes)
    }
}

/// Parse `input` as the given Calico release does.
pub fn parse_with(input: &str, dialect: Dialect) -> Result<Selector, SelectorError> {
    let toks = tokenize_with(input, dialect)?;
    let parser = Parser {
        toks: &toks,
        dialect,
    };
    if parser.tok(0).kind == TokenKind::Eof {
        return Ok(Selector::from_node(Node::All));
    }
    let (root, rest) = parser.parse_or(0)?;
    if toks.len().saturating_sub(rest) != 1 {
        let list = parser.show_list(rest);
        return Err(SelectorError::new(
            ErrorKind::TrailingContent,
            format!("unexpected content at end of selector {list}"),
            parser.tok(rest).start,
        ));
    }
    Ok(Selector::from_node(root))
}

// ---------------------------------------------------------------------------------------------
// Selector
// ---------------------------------------------------------------------------------------------

/// A parsed selector with its canonical string (`Selector.String()`) computed once.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Selector {
    root: Node,
    canonical: String,
}

impl Selector {
    /// `selector.Parse` (v3.30+). The raw string is used as is: only space and tab are
    /// whitespace, so a trailing newline is an error. Empty or blank input is `all()`.
    pub fn parse(input: &str) -> Result<Selector, SelectorError> {
        parse_with(input, Dialect::Current)
    }

    /// `selector.Parse` as Calico v3.29 and earlier did it (regex tokenizer, old wording).
    pub fn parse_legacy(input: &str) -> Result<Selector, SelectorError> {
        parse_with(input, Dialect::Legacy)
    }

    /// Wrap an AST (e.g. a rewritten one) and compute its canonical form.
    pub fn from_node(root: Node) -> Selector {
        let canonical = root.canonical();
        Selector { root, canonical }
    }

    /// The root of the AST.
    pub fn root(&self) -> &Node {
        &self.root
    }

    /// Take the AST out.
    pub fn into_root(self) -> Node {
        self.root
    }

    /// Calico's `String()`: the text Felix hashes.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// `UniqueID()`: `make_unique_id("s", canonical)`; also the ID of the selector's IP set.
    pub fn unique_id(&self) -> String {
        make_unique_id("s", &self.canonical)
    }

    /// Evaluate against an item's labels.
    pub fn evaluate<L: LabelSource + ?Sized>(&self, labels: &L) -> bool {
        self.root.evaluate(labels)
    }

    /// A copy with every label prefixed (`AcceptVisitor(PrefixVisitor{prefix})`).
    pub fn prefixed(&self, prefix: &str) -> Selector {
        let mut root = self.root.clone();
        root.prefix_labels(prefix);
        Selector::from_node(root)
    }

    /// `LabelRestrictions()`: per label, what any matching item must satisfy.
    pub fn label_restrictions(&self) -> LabelRestrictions {
        self.root.restrictions()
    }

    /// False when the `&&`-reachable restrictions contradict each other, so the selector can
    /// never match (`a == 'x' && a == 'y'`, `has(a) && !has(a)`). True does not prove a match
    /// is possible: `||` and `!` are treated conservatively, and `k in {}` is not caught.
    pub fn possible_to_satisfy(&self) -> bool {
        self.label_restrictions()
            .values()
            .all(LabelRestriction::possible_to_satisfy)
    }

    /// Name of this selector's IP set in ipset/iptables.
    pub fn ipset_name(&self, ipv6: bool) -> String {
        ipset_name(&self.unique_id(), ipv6)
    }

    /// Name of this selector's IP set in nftables.
    pub fn nft_ipset_name(&self, ipv6: bool) -> String {
        nft_ipset_name(&self.unique_id(), ipv6)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

impl std::str::FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Selector, SelectorError> {
        Selector::parse(s)
    }
}

/// `selector.Validate`: same language and error text as [`Selector::parse`].
pub fn validate(input: &str) -> Result<(), SelectorError> {
    Selector::parse(input).map(|_| ())
}

/// `selector.Normalise`: Go's `strings.TrimSpace`, then the canonical form if that parses,
/// else the trimmed input unchanged.
pub fn normalise(input: &str) -> String {
    let trimmed = input.trim();
    match Selector::parse(trimmed) {
        Ok(sel) => sel.canonical,
        Err(_) => trimmed.to_string(),
    }
}

/// Felix's main IP set name for a set ID: `cali40` / `cali60` + ID, cut to 31 bytes.
pub fn ipset_name(id: &str, ipv6: bool) -> String {
    let mut name = String::from(if ipv6 { "cali60" } else { "cali40" });
    name.push_str(id);
    truncate_bytes(&mut name, MAX_IPSET_NAME_LENGTH);
    name
}

/// The nftables form of [`ipset_name`] (`LegalizeSetName`: `:` becomes `-`).
pub fn nft_ipset_name(id: &str, ipv6: bool) -> String {
    ipset_name(id, ipv6).replace(':', "-")
}

fn truncate_bytes(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        match Selector::parse(s) {
            Ok(sel) => sel.canonical().to_string(),
            Err(e) => format!("ERR {e}"),
        }
    }

    fn err(s: &str) -> String {
        Selector::parse(s)
            .err()
            .map(|e| e.message)
            .unwrap_or_default()
    }

    fn legacy(s: &str) -> String {
        match Selector::parse_legacy(s) {
            Ok(sel) => format!("OK {}", sel.canonical()),
            Err(e) => e.message,
        }
    }

    #[test]
    fn blank_selectors_are_all() {
        for s in ["", " ", "\t", " all() ", " (all() )"] {
            assert_eq!(canon(s), "all()");
        }
        assert_eq!(
            Selector::parse("").map(|s| s.unique_id()).ok().as_deref(),
            Some("s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug")
        );
    }

    #[test]
    fn double_negation_through_parentheses_is_kept() {
        let sel = Selector::parse("!(!has(a))").map(Selector::into_root).ok();
        let inner = Node::Not(Box::new(Node::Has { label: "a".into() }));
        assert_eq!(sel, Some(Node::Not(Box::new(inner))));
        assert_eq!(canon("!(!has(a))"), "!!has(a)");
        assert_eq!(canon("!!has(a)"), "has(a)");
    }

    #[test]
    fn chains_are_n_ary_and_groups_nest() {
        assert_eq!(
            canon("a == 'x' && (b == 'y' && c == 'z')"),
            "(a == \"x\" && (b == \"y\" && c == \"z\"))"
        );
        assert_eq!(
            canon("a == 'x' || b == 'y' && c == 'z'"),
            "(a == \"x\" || (b == \"y\" && c == \"z\"))"
        );
    }

    #[test]
    fn keyword_operators_need_a_word_boundary() {
        assert_eq!(canon("a in{'x'}"), "a in {\"x\"}");
        assert_eq!(err("a inside {'x'}"), "expected operator after label \"a\"");
        assert_eq!(
            err("a starts with x"),
            "expected operator after label \"a\""
        );
        assert_eq!(err("a contains x"), "expected string");
    }

    #[test]
    fn tokenizer_errors_win_over_earlier_parse_errors() {
        assert_eq!(err(") %"), "expected identifier");
    }

    #[test]
    fn legacy_accepts_newlines_inside_keywords() {
        assert_eq!(legacy("a starts\nwith 'x'"), "OK a starts with \"x\"");
        assert_eq!(legacy("has(\na)"), "OK has(a)");
        assert_eq!(err("has(\na)"), "expected identifier");
        assert_eq!(legacy("a containsx 'y'"), "Expected string");
        assert_eq!(
            legacy("b"),
            "Unexpected end of string in middle of op[{1 b} {21 <nil>}]"
        );
    }

    #[test]
    fn legacy_in_uses_ascii_word_boundary() {
        // `.` is a label byte but not a regexp word byte, so the old `in\b` matched.
        assert_eq!(legacy("a in.b"), "Expected set literal");
        assert_eq!(err("a in.b"), "expected operator after label \"a\"");
    }

    #[test]
    fn empty_set_has_no_value_restriction() {
        let sel = Selector::parse("a in {}").ok();
        let r = sel.map(|s| s.label_restrictions());
        let expected =
            LabelRestrictions::from([("a".to_string(), LabelRestriction::present(None))]);
        assert_eq!(r, Some(expected));
    }

    #[test]
    fn or_union_sorts_the_first_side_then_appends() {
        let sel = Selector::parse("a in {'z', 'b'} || a == 'c' || a == 'a'").ok();
        let vals = sel
            .and_then(|s| s.label_restrictions().remove("a"))
            .and_then(|r| r.must_have_one_of_values);
        // {b, z} ∪ {c} = [b, z, c]; sorted again, then a appended: [b, c, z, a].
        assert_eq!(
            vals,
            Some(vec!["b".into(), "c".into(), "z".into(), "a".into()])
        );
    }

    #[test]
    fn ipset_names_are_truncated_to_31_bytes() {
        assert_eq!(
            ipset_name("s:qMt7iLlGDhvLnCjM0l9nzxbabcd", false),
            "cali40s:qMt7iLlGDhvLnCjM0l9nzxb"
        );
        assert_eq!(ipset_name("ipsetid1", true), "cali60ipsetid1");
        assert_eq!(
            nft_ipset_name("s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug", false),
            "cali40s-5y5I3VdRZfDU01O--xXAPx2"
        );
    }

    #[test]
    fn normalise_trims_unicode_space_first() {
        assert_eq!(normalise("app == 'web'\n"), "app == \"web\"");
        assert_eq!(normalise("\n"), "all()");
        assert_eq!(normalise(" b == b "), "b == b");
    }

    #[test]
    fn odd_bytes_never_panic() {
        for s in [
            "'",
            "\"",
            "has(",
            "a not",
            "wéb == 'x'",
            "“",
            "a == '\u{1F600}'",
            "!",
        ] {
            let _ = Selector::parse(s);
            let _ = Selector::parse_legacy(s);
        }
    }
}
