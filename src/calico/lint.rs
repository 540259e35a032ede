//! Hints for the selector mistakes people actually make, with a corrected selector where one
//! can be computed, plus "near misses" for a selector that matches nothing.
//!
//! Errors are reported only for what Calico itself rejects ([`Selector::parse`] decides; this
//! module never second-guesses it): `app=='web'` is valid and gets no error. For an invalid
//! selector a lenient re-reading of the text looks for the usual culprits — `=` for `==`,
//! `AND`/`or`/`not`, upper-case keywords, `has (x)`, sets in `[…]`/`(…)`, unquoted values,
//! smart quotes and backticks, backslash escapes, mismatched or unclosed quotes, a newline from
//! a YAML block scalar — and repairs them all at once; every error hint then carries the
//! repaired selector, which is only offered if Calico's parser accepts it.
//!
//! Valid selectors get warnings about their meaning instead: `!=`/`not in` also matching items
//! without the label, contradictions (`LabelRestrictions().PossibleToSatisfy()`), `k in {}`,
//! v2-era labels, keys or values no Kubernetes object can carry, `global()` out of place.
//!
//! Not here: where a selector is used (a policy, a rule, a namespaceSelector) — callers add that
//! context; and no I/O.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::calico::labels::{
    LABEL_NAMESPACE, LABEL_SERVICE_ACCOUNT, NAMESPACE_LABEL_PREFIX, SERVICE_ACCOUNT_LABEL_PREFIX,
};
use crate::calico::selector::{
    ErrorKind, LabelSource, Node, Selector, SelectorError, is_label_byte, is_valid_label,
};

/// How bad a hint is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HintLevel {
    /// Calico rejects the selector (the policy holding it is not enforced at all).
    Error,
    /// Valid, but probably does not mean what was intended.
    Warning,
    /// Worth knowing.
    Info,
}

/// One finding about a selector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hint {
    pub severity: HintLevel,
    /// Stable identifier of the mistake (`single-equals`, `unquoted-value`, …).
    pub code: &'static str,
    pub message: String,
    /// The corrected selector; always one Calico's parser accepts.
    pub suggestion: Option<String>,
}

impl Hint {
    fn new(severity: HintLevel, code: &'static str, message: impl Into<String>) -> Hint {
        Hint {
            severity,
            code,
            message: message.into(),
            suggestion: None,
        }
    }

    fn with_suggestion(mut self, suggestion: Option<String>) -> Hint {
        // Never offer something Calico would reject.
        self.suggestion = suggestion.filter(|s| Selector::parse(s).is_ok());
        self
    }
}

/// All hints for a selector expression, errors first.
pub fn lint(expr: &str) -> Vec<Hint> {
    let mut hints = match Selector::parse(expr) {
        Ok(sel) => {
            let mut h = value_text_warnings(&sel);
            h.extend(lint_selector(&sel));
            h
        }
        Err(err) => error_hints(expr, &err),
    };
    hints.sort_by_key(|h| h.severity);
    hints
}

/// The corrected selector for an invalid expression, when the usual mistakes explain it.
pub fn suggest_fix(expr: &str) -> Option<String> {
    if Selector::parse(expr).is_ok() {
        return None;
    }
    let repair = repair(expr);
    (!repair.hints.is_empty())
        .then_some(repair.text)
        .filter(|t| Selector::parse(t).is_ok())
}

// ---------------------------------------------------------------------------------------------
// Errors: explain and repair
// ---------------------------------------------------------------------------------------------

fn error_hints(expr: &str, err: &SelectorError) -> Vec<Hint> {
    let repair = repair(expr);
    let fixed = Selector::parse(&repair.text).is_ok();
    let suggestion = fixed.then(|| repair.text.clone());
    let mut hints: Vec<Hint> = repair
        .hints
        .into_iter()
        .map(|(code, message)| {
            Hint::new(HintLevel::Error, code, message).with_suggestion(suggestion.clone())
        })
        .collect();
    if hints.is_empty() || !fixed {
        hints.push(generic_error_hint(expr, err));
    }
    if let Ok(old) = Selector::parse_legacy(expr) {
        hints.push(Hint::new(
            HintLevel::Info,
            "accepted-before-v3-30",
            format!(
                "Calico v3.29 and earlier accepted this as `{}`: their tokenizer also allowed \
                 newlines inside has( ), all( ), global( ), not in, starts with and ends with; \
                 from v3.30 only space and tab count as whitespace",
                old.canonical()
            ),
        ));
    }
    hints
}

/// What Calico's error means, when no specific mistake was recognised.
fn generic_error_hint(expr: &str, err: &SelectorError) -> Hint {
    let at = context_at(expr, err.offset);
    let msg = match err.kind {
        ErrorKind::UnterminatedString => {
            format!("a quoted value is never closed ({at}); selectors have no escapes")
        }
        ErrorKind::ExpectedEq => format!("`=` is not an operator, use `==` ({at})"),
        ErrorKind::ExpectedAnd => format!("use `&&` for AND ({at})"),
        ErrorKind::ExpectedOr => format!("use `||` for OR ({at})"),
        ErrorKind::ExpectedOperatorAfterLabel => format!(
            "after a label Calico expects ==, !=, in, not in, contains, starts with or ends with, \
             all lower case ({at})"
        ),
        ErrorKind::ExpectedIdentifier => format!(
            "unexpected character ({at}): labels are made of A-Z a-z 0-9 _ . / -, values must be \
             quoted with ' or \", and only space and tab count as whitespace"
        ),
        ErrorKind::LabelTooLong => "a label is longer than 512 bytes".to_string(),
        ErrorKind::NoClosingParen => {
            format!("has(label), all() and global() must be closed right away ({at})")
        }
        ErrorKind::UnexpectedEnd => {
            "a label with no operator after it; to require a label write has(label)".to_string()
        }
        ErrorKind::ExpectedString => {
            format!("the value after the operator must be quoted, e.g. 'web' ({at})")
        }
        ErrorKind::ExpectedSetLiteral => {
            format!("in / not in take a set in braces, e.g. {{'a', 'b'}} ({at})")
        }
        ErrorKind::ExpectedRBrace => {
            format!("a set holds quoted values separated by single commas and ends with }} ({at})")
        }
        ErrorKind::ExpectedOperator => format!("a label must be followed by an operator ({at})"),
        ErrorKind::ExpectedRParen => "a `(` is never closed".to_string(),
        ErrorKind::UnexpectedToken => {
            format!("a test was expected ({at}): a label test, has(), all() or `(`")
        }
        ErrorKind::TrailingContent => format!(
            "the selector is complete before {at}: join terms with && or ||, and check for an \
             extra `)`"
        ),
    };
    Hint::new(HintLevel::Error, "calico-error", msg)
}

/// "at byte N, near `…`" for messages.
fn context_at(expr: &str, offset: usize) -> String {
    let mut start = offset.min(expr.len());
    while !expr.is_char_boundary(start) {
        start -= 1;
    }
    let snippet: String = expr[start..].chars().take(12).collect();
    if snippet.is_empty() {
        format!("at the end, byte {offset}")
    } else {
        format!("at byte {offset}, near {}", snippet.escape_debug())
    }
}

/// A lenient token: the text read the way a person meant it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Lx {
    /// Whitespace; `odd` when it holds anything but space and tab.
    Space { text: String, odd: bool },
    /// A quoted value.
    Str(QuotedValue),
    /// A run of label bytes.
    Word(String),
    /// `==`, `=`, `===`, `!=`, `!==`, `!`, `&&`, `&`, `||`, `|`, `<`, `>`, `<=`, `>=`, `<>`.
    Op(String),
    /// `(` `)` `{` `}` `[` `]` `,` `;`.
    Punct(char),
    /// Anything else.
    Other(char),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct QuotedValue {
    /// The opening character as written.
    open: char,
    content: String,
    /// Opened with typographic quotes or a backtick.
    smart: bool,
    /// A backslash-escaped quote was read as part of the value.
    escaped: bool,
    /// Closed by a different quote character than it was opened with.
    mismatched: bool,
    terminated: bool,
}

fn is_odd_space(c: char) -> bool {
    c.is_whitespace() && c != ' ' && c != '\t'
}

fn is_quote_like(c: char) -> bool {
    matches!(
        c,
        '\'' | '"'
            | '`'
            | '\u{2018}'
            | '\u{2019}'
            | '\u{201A}'
            | '\u{201C}'
            | '\u{201D}'
            | '\u{201E}'
            | '\u{00B4}'
    )
}

/// Whether what follows a quote looks like the end of a value: `&&`, `||`, `)`, `}`, `,`, the
/// end of input (spaces skipped).
fn ends_value(rest: &[char]) -> bool {
    let rest: Vec<char> = rest
        .iter()
        .copied()
        .skip_while(|c| c.is_whitespace())
        .take(2)
        .collect();
    matches!(
        rest.as_slice(),
        [] | [')' | '}' | ',' | ']' | ';' | '&' | '|', ..]
    )
}

/// How to read quotes when the author's intent is ambiguous.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Reading {
    /// Read a backslash before a quote, followed by more value text, as an escaped quote.
    escapes: bool,
    /// Also take a different quote followed by `&&`, `||`, `)`, `,` or the end as the closing
    /// one when the opening quote occurs again later (`'web" && tier == 'db'`).
    loose: bool,
}

fn lex_lenient(input: &str, reading: Reading) -> Vec<Lx> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            let start = i;
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let odd = text.chars().any(is_odd_space);
            out.push(Lx::Space { text, odd });
            continue;
        }
        if c.is_ascii() && is_label_byte(c as u8) {
            let start = i;
            while i < chars.len() && chars[i].is_ascii() && is_label_byte(chars[i] as u8) {
                i += 1;
            }
            out.push(Lx::Word(chars[start..i].iter().collect()));
            continue;
        }
        if is_quote_like(c) {
            let (value, next) = lex_quoted(&chars, i, reading);
            out.push(Lx::Str(value));
            i = next;
            continue;
        }
        let next = chars.get(i + 1).copied();
        let run = |ch: char, from: usize| {
            let mut j = from;
            while chars.get(j) == Some(&ch) {
                j += 1;
            }
            j
        };
        let (tok, len) = match c {
            '=' => {
                let end = run('=', i);
                (Lx::Op("=".repeat(end - i)), end - i)
            }
            '!' if next == Some('=') => {
                let end = run('=', i + 1);
                (Lx::Op(format!("!{}", "=".repeat(end - i - 1))), end - i)
            }
            '!' => (Lx::Op("!".into()), 1),
            '&' | '|' => {
                let end = run(c, i);
                (Lx::Op(c.to_string().repeat(end - i)), end - i)
            }
            '<' if next == Some('>') => (Lx::Op("<>".into()), 2),
            '<' | '>' if next == Some('=') => (Lx::Op(format!("{c}=")), 2),
            '<' | '>' => (Lx::Op(c.to_string()), 1),
            '(' | ')' | '{' | '}' | '[' | ']' | ',' | ';' => (Lx::Punct(c), 1),
            _ => (Lx::Other(c), 1),
        };
        out.push(tok);
        i += len;
    }
    out
}

/// Read a quoted value starting at `chars[start]` the way its author meant it.
///
/// A plain quote closes at the next identical quote, as in Calico, except that a quote preceded
/// by a backslash and followed by more value text is read as an (intended) escape, and that
/// another quote-like character followed by `&&`, `||`, `)`, `,` or the end closes it as a
/// mismatched pair. Typographic quotes and backticks close at their partner.
fn lex_quoted(chars: &[char], start: usize, reading: Reading) -> (QuotedValue, usize) {
    let loose = reading.loose;
    let open = chars[start];
    let smart = !matches!(open, '\'' | '"');
    let closes = |c: char| -> bool {
        match open {
            '\'' | '"' => c == open,
            '\u{201C}' | '\u{201E}' => matches!(c, '\u{201D}' | '\u{201C}'),
            '\u{2018}' | '\u{201A}' => matches!(c, '\u{2019}' | '\u{2018}'),
            '`' => matches!(c, '`' | '\u{00B4}' | '\''),
            other => c == other,
        }
    };
    let mut v = QuotedValue {
        open,
        content: String::new(),
        smart,
        escaped: false,
        mismatched: false,
        terminated: false,
    };
    let mut i = start + 1;
    while i < chars.len() {
        let c = chars[i];
        if reading.escapes
            && c == '\\'
            && chars.get(i + 1).is_some_and(|&n| closes(n))
            && !ends_value(&chars[i + 2..])
        {
            v.escaped = true;
            v.content.push(chars[i + 1]);
            i += 2;
            continue;
        }
        if closes(c) {
            v.terminated = true;
            return (v, i + 1);
        }
        if is_quote_like(c)
            && ends_value(&chars[i + 1..])
            && (loose || !chars[i + 1..].contains(&open))
        {
            v.terminated = true;
            v.mismatched = true;
            return (v, i + 1);
        }
        v.content.push(c);
        i += 1;
    }
    // Unclosed: a trailing newline from a YAML block scalar is not part of the value.
    v.content = v.content.trim_end().to_string();
    (v, i)
}

/// The outcome of re-reading an invalid selector: the repaired text and what was repaired.
struct Repair {
    text: String,
    hints: Vec<(&'static str, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum St {
    Operand,
    AfterLabel,
    Value,
    SetOpen,
    InSet { closer: char, want_item: bool },
    Operator,
}

struct Repairer<'a> {
    toks: &'a [Lx],
    out: String,
    pending_space: bool,
    hints: Vec<(&'static str, String)>,
    depth: usize,
    /// Output length before the last `&&`/`||`, to drop a dangling one at the end.
    last_binop_at: Option<usize>,
    /// Set when the text stops making sense: the rest is copied unchanged and not diagnosed.
    stuck: bool,
}

impl Repairer<'_> {
    fn hint(&mut self, code: &'static str, msg: impl Into<String>) {
        if !self.hints.iter().any(|(c, _)| *c == code) {
            self.hints.push((code, msg.into()));
        }
    }

    fn emit(&mut self, text: &str) {
        if self.pending_space && !self.out.ends_with(' ') && !self.out.is_empty() {
            self.out.push(' ');
        }
        self.pending_space = false;
        self.out.push_str(text);
    }

    /// Emit an operator that needs spaces around it.
    fn emit_spaced(&mut self, text: &str) {
        if !self.out.is_empty() && !self.out.ends_with([' ', '(']) {
            self.out.push(' ');
        }
        self.out.push_str(text);
        self.pending_space = true;
    }

    fn space(&mut self, text: &str) {
        self.pending_space = false;
        // Dropped tokens can leave two runs of blanks side by side; keep one.
        if !self.out.is_empty() && !self.out.ends_with([' ', '\t']) {
            self.out.push_str(text);
        }
    }

    /// Index of the next non-space token at or after `i`.
    fn next_sig(&self, i: usize) -> Option<usize> {
        (i..self.toks.len()).find(|&j| !matches!(self.toks[j], Lx::Space { .. }))
    }

    fn sig(&self, i: usize) -> Option<&Lx> {
        self.next_sig(i).map(|j| &self.toks[j])
    }

    /// Note odd whitespace between `from` and `to` (exclusive).
    fn check_spaces(&mut self, from: usize, to: usize) {
        if self.toks[from.min(to)..to]
            .iter()
            .any(|t| matches!(t, Lx::Space { odd: true, .. }))
        {
            self.whitespace_hint(false);
        }
    }

    fn whitespace_hint(&mut self, trailing: bool) {
        let msg = if trailing {
            "trailing newline: only space and tab are whitespace in a selector, and a YAML `|` \
             or `>` block scalar ends with a newline; use `|-`, `>-` or a quoted string"
        } else {
            "line break or other unusual whitespace inside the selector: only space and tab count \
             as whitespace (a YAML block scalar keeps its line breaks)"
        };
        self.hint("whitespace", msg);
    }

    /// Render a quoted value with a quote Calico accepts; `None` if no quote can hold it.
    fn quoted(&mut self, v: &QuotedValue) -> Option<String> {
        if v.smart {
            self.hint(
                "smart-quotes",
                format!(
                    "the value {} is quoted with {}: selectors only know ' and \" as quotes, not \
                     typographic quotes or backticks",
                    v.content, v.open
                ),
            );
        }
        if v.escaped {
            self.hint(
                "backslash-escape",
                "selectors have no escapes: `\\` is an ordinary character and a quote always \
                 ends the value; to put \" in a value quote it with ' (and the other way round)",
            );
        }
        if v.mismatched {
            self.hint(
                "mismatched-quotes",
                format!(
                    "the value {}{}… is opened and closed with different quote characters",
                    v.open, v.content
                ),
            );
        } else if !v.terminated {
            self.hint(
                "unterminated-string",
                format!("the quoted value {}{}… is never closed", v.open, v.content),
            );
        }
        quote_value(&v.content, Some(v.open))
    }

    fn emit_value(&mut self, v: &QuotedValue, raw: &str) {
        match self.quoted(v) {
            Some(q) => self.emit(&q),
            None => self.emit(raw),
        }
    }

    fn run(&mut self) {
        let mut st = St::Operand;
        let mut i = 0;
        let last_sig = self
            .toks
            .iter()
            .rposition(|t| !matches!(t, Lx::Space { .. }));
        while i < self.toks.len() {
            if self.stuck {
                let rest: String = self.toks[i..].iter().map(raw_text).collect();
                self.out.push_str(&rest);
                return;
            }
            let t = self.toks[i].clone();
            if let Lx::Space { text, odd } = &t {
                if *odd {
                    let leading = self.out.is_empty();
                    let trailing = last_sig.is_none_or(|l| i > l);
                    self.whitespace_hint(trailing && !leading);
                    if !leading && !trailing {
                        self.space(" ");
                    }
                } else {
                    self.space(text);
                }
                i += 1;
                continue;
            }
            let (next_st, next_i) = self.step(&st, &t, i);
            st = next_st;
            i = next_i;
        }
        self.finish(&st);
    }

    fn finish(&mut self, st: &St) {
        if *st == St::Operand
            && let Some(at) = self.last_binop_at
        {
            self.hint(
                "dangling-operator",
                "the selector ends with && or ||: there is nothing after it",
            );
            self.out.truncate(at);
        }
        if *st == St::Operator && self.depth > 0 {
            self.hint("missing-paren", "a `(` is never closed");
            let close = ")".repeat(self.depth);
            self.out = format!("{}{close}", self.out.trim_end());
        }
        self.out = self.out.trim_matches([' ', '\t']).to_string();
    }

    /// One significant token; returns the next state and index.
    fn step(&mut self, st: &St, t: &Lx, i: usize) -> (St, usize) {
        match st {
            St::Operand => self.operand(t, i),
            St::AfterLabel => self.after_label(t, i),
            St::Value => match t {
                Lx::Str(v) => {
                    let raw = raw_text(t);
                    self.emit_value(v, &raw);
                    (St::Operator, i + 1)
                }
                Lx::Word(w) => {
                    self.unquoted(w);
                    (St::Operator, i + 1)
                }
                _ => self.give_up(t, i),
            },
            St::SetOpen => match t {
                Lx::Punct('{') => {
                    self.emit("{");
                    (
                        St::InSet {
                            closer: '}',
                            want_item: true,
                        },
                        i + 1,
                    )
                }
                Lx::Punct(c @ ('(' | '[')) => {
                    self.hint(
                        "set-brackets",
                        format!(
                            "sets are written in braces: {{'a', 'b'}}, not {c}…{}",
                            if *c == '(' { ')' } else { ']' }
                        ),
                    );
                    self.emit("{");
                    let closer = if *c == '(' { ')' } else { ']' };
                    (
                        St::InSet {
                            closer,
                            want_item: true,
                        },
                        i + 1,
                    )
                }
                Lx::Str(_) | Lx::Word(_) => {
                    self.hint(
                        "set-brackets",
                        "in / not in take a set in braces, even for one value: {'a'}",
                    );
                    self.emit("{");
                    if let Lx::Str(v) = t {
                        let raw = raw_text(t);
                        self.emit_value(v, &raw);
                    } else if let Lx::Word(w) = t {
                        self.unquoted(w);
                    }
                    self.emit("}");
                    (St::Operator, i + 1)
                }
                _ => self.give_up(t, i),
            },
            St::InSet { closer, want_item } => self.in_set(t, i, *closer, *want_item),
            St::Operator => self.operator(t, i),
        }
    }

    fn give_up(&mut self, t: &Lx, i: usize) -> (St, usize) {
        self.emit(&raw_text(t));
        self.stuck = true;
        (St::Operator, i + 1)
    }

    fn unquoted(&mut self, w: &str) {
        self.hint(
            "unquoted-value",
            format!("values must be quoted: '{w}' rather than {w}"),
        );
        let q = quote_value(w, Some('\'')).unwrap_or_else(|| w.to_string());
        self.emit(&q);
    }

    fn is_term_start(t: Option<&Lx>) -> bool {
        matches!(t, Some(Lx::Word(_) | Lx::Punct('(') | Lx::Str(_)))
            || matches!(t, Some(Lx::Op(o)) if o == "!")
    }

    fn operand(&mut self, t: &Lx, i: usize) -> (St, usize) {
        match t {
            Lx::Op(o) if o == "!" => {
                self.emit("!");
                (St::Operand, i + 1)
            }
            Lx::Punct('(') => {
                self.depth += 1;
                self.emit("(");
                (St::Operand, i + 1)
            }
            Lx::Word(w) => self.operand_word(w, i),
            Lx::Str(v)
                if is_valid_label(&v.content)
                    && matches!(self.sig(i + 1), Some(Lx::Op(o)) if o.contains('=')) =>
            {
                self.hint(
                    "quoted-label",
                    format!(
                        "label names are not quoted: {} rather than '{}'",
                        v.content, v.content
                    ),
                );
                self.emit(&v.content);
                (St::AfterLabel, i + 1)
            }
            Lx::Op(o) if o.starts_with('&') || o.starts_with('|') => {
                self.hint("dangling-operator", format!("`{o}` has no test before it"));
                (St::Operand, i + 1)
            }
            _ => self.give_up(t, i),
        }
    }

    fn operand_word(&mut self, w: &str, i: usize) -> (St, usize) {
        let lw = w.to_ascii_lowercase();
        let next = self.next_sig(i + 1);
        let next_tok = next.map(|j| &self.toks[j]);
        if matches!(lw.as_str(), "has" | "all" | "global")
            && next_tok == Some(&Lx::Punct('('))
            && let Some(done) = self.function(w, &lw, i, next.unwrap_or(i + 1))
        {
            return done;
        }
        if lw == "not" && Self::is_term_start(next_tok) {
            let next_is_op = matches!(next_tok, Some(Lx::Word(n)) if n.eq_ignore_ascii_case("in"));
            if !next_is_op {
                self.hint(
                    "keyword-operator",
                    "selectors spell AND, OR and NOT as &&, || and !",
                );
                self.emit("!");
                return (St::Operand, next.unwrap_or(i + 1));
            }
        }
        let ends_term = match next_tok {
            None => true,
            Some(Lx::Op(o)) => o.starts_with('&') || o.starts_with('|'),
            Some(Lx::Punct(')' | ',' | ';')) => true,
            Some(Lx::Word(n)) => matches!(n.to_ascii_lowercase().as_str(), "and" | "or"),
            _ => false,
        };
        if ends_term {
            self.hint(
                "bare-label",
                format!("`{w}` alone is not a test: write has({w}) to require the label"),
            );
            self.emit(&format!("has({w})"));
            return (St::Operator, i + 1);
        }
        self.emit(w);
        (St::AfterLabel, i + 1)
    }

    /// `has(x)`, `all()`, `global()` written with a space, in upper case or with a quoted label.
    fn function(&mut self, w: &str, lw: &str, i: usize, paren: usize) -> Option<(St, usize)> {
        let mut j = self.next_sig(paren + 1)?;
        let mut label = None;
        if lw == "has" {
            label = match &self.toks[j] {
                Lx::Word(l) => Some(l.clone()),
                Lx::Str(v) if is_valid_label(&v.content) => {
                    self.hint(
                        "quoted-label",
                        format!("has() takes a bare label: has({})", v.content),
                    );
                    Some(v.content.clone())
                }
                _ => return None,
            };
            j = self.next_sig(j + 1)?;
        }
        if self.toks[j] != Lx::Punct(')') {
            return None;
        }
        if w != lw {
            self.hint(
                "keyword-case",
                format!("keywords are lower case: {lw}( rather than {w}("),
            );
        }
        if paren != i + 1 {
            self.hint(
                "space-before-paren",
                format!("no space is allowed between {lw} and `(`: write {lw}(…)"),
            );
        }
        self.check_spaces(i + 1, j);
        match label {
            Some(l) => self.emit(&format!("has({l})")),
            None => self.emit(&format!("{lw}()")),
        }
        Some((St::Operator, j + 1))
    }

    fn after_label(&mut self, t: &Lx, i: usize) -> (St, usize) {
        match t {
            Lx::Op(o) if o == "==" || o == "!=" => {
                self.emit(o);
                (St::Value, i + 1)
            }
            Lx::Op(o) if o == "=" || o == "===" => {
                self.hint("single-equals", format!("use == to compare, not {o}"));
                self.emit("==");
                (St::Value, i + 1)
            }
            Lx::Op(o) if o == "!==" || o == "<>" => {
                self.hint("single-equals", format!("use != for not-equal, not {o}"));
                self.emit("!=");
                (St::Value, i + 1)
            }
            Lx::Op(o) if o.starts_with(['<', '>']) => {
                self.hint(
                    "ordering-operator",
                    format!(
                        "selectors have no {o} comparison: list the accepted values with in {{…}}"
                    ),
                );
                self.give_up(t, i)
            }
            Lx::Other(':') if matches!(self.sig(i + 1), Some(Lx::Word(_) | Lx::Str(_))) => {
                self.hint(
                    "colon-for-equals",
                    "`key: value` is the matchLabels form; a selector compares with ==",
                );
                self.emit(" ==");
                (St::Value, i + 1)
            }
            Lx::Word(w) => self.keyword_operator(w, i),
            Lx::Str(v) => {
                self.hint(
                    "missing-operator",
                    "a value follows the label with no operator; == assumed",
                );
                self.emit("==");
                let raw = raw_text(t);
                self.emit_value(v, &raw);
                (St::Operator, i + 1)
            }
            _ => self.give_up(t, i),
        }
    }

    fn keyword_operator(&mut self, w: &str, i: usize) -> (St, usize) {
        let lw = w.to_ascii_lowercase();
        let next = self.next_sig(i + 1);
        let next_word = next.and_then(|j| match &self.toks[j] {
            Lx::Word(n) => Some(n.to_ascii_lowercase()),
            _ => None,
        });
        let (canonical, value_state, consumed_to) = match (lw.as_str(), next_word.as_deref()) {
            ("contains", _) => ("contains", St::Value, i + 1),
            ("startswith" | "starts_with" | "starts-with", _) => ("starts with", St::Value, i + 1),
            ("endswith" | "ends_with" | "ends-with", _) => ("ends with", St::Value, i + 1),
            ("starts", Some("with")) => ("starts with", St::Value, next.unwrap_or(i) + 1),
            ("ends", Some("with")) => ("ends with", St::Value, next.unwrap_or(i) + 1),
            ("in", _) => ("in", St::SetOpen, i + 1),
            ("notin" | "not_in" | "not-in", _) => ("not in", St::SetOpen, i + 1),
            ("not", Some("in")) => ("not in", St::SetOpen, next.unwrap_or(i) + 1),
            _ => return self.give_up(&Lx::Word(w.to_string()), i),
        };
        let written: String = self.toks[i..consumed_to].iter().map(raw_text).collect();
        let collapsed = written
            .split([' ', '\t'])
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let accepted = [
            "contains",
            "starts with",
            "ends with",
            "in",
            "not in",
            "startswith",
            "endswith",
            "notin",
        ];
        if written.chars().any(is_odd_space) {
            self.whitespace_hint(false);
            self.emit(canonical);
        } else if accepted.contains(&collapsed.as_str()) {
            self.emit(&written);
        } else if written.chars().any(|c| c.is_ascii_uppercase()) {
            self.hint(
                "keyword-case",
                format!("operators are lower case: {canonical} rather than {written}"),
            );
            self.emit(canonical);
        } else {
            self.hint(
                "keyword-spelling",
                format!("write `{canonical}` rather than `{written}`"),
            );
            self.emit(canonical);
        }
        (value_state, consumed_to)
    }

    fn in_set(&mut self, t: &Lx, i: usize, closer: char, want_item: bool) -> (St, usize) {
        let missing_comma = |me: &mut Self| {
            if !want_item {
                me.hint(
                    "missing-comma",
                    "set values are separated by commas: {'a', 'b'}",
                );
                me.out = me.out.trim_end().to_string();
                me.emit(", ");
            }
        };
        match t {
            Lx::Str(v) => {
                missing_comma(self);
                let raw = raw_text(t);
                self.emit_value(v, &raw);
                (
                    St::InSet {
                        closer,
                        want_item: false,
                    },
                    i + 1,
                )
            }
            Lx::Word(w) => {
                missing_comma(self);
                self.unquoted(w);
                (
                    St::InSet {
                        closer,
                        want_item: false,
                    },
                    i + 1,
                )
            }
            Lx::Punct(',') => {
                if want_item {
                    self.hint(
                        "empty-set-item",
                        "a set has an empty item (two commas in a row)",
                    );
                } else {
                    self.emit(",");
                }
                (
                    St::InSet {
                        closer,
                        want_item: true,
                    },
                    i + 1,
                )
            }
            Lx::Punct(c) if *c == closer || *c == '}' => {
                self.out = self.out.trim_end().to_string();
                self.emit("}");
                (St::Operator, i + 1)
            }
            _ => self.give_up(t, i),
        }
    }

    fn operator(&mut self, t: &Lx, i: usize) -> (St, usize) {
        match t {
            Lx::Op(o) if o == "&&" || o == "||" => {
                self.last_binop_at = Some(self.out.trim_end().len());
                self.emit(o);
                (St::Operand, i + 1)
            }
            Lx::Op(o) if o.starts_with('&') || o.starts_with('|') => {
                let fixed = if o.starts_with('&') { "&&" } else { "||" };
                self.hint("single-ampersand", format!("use {fixed}, not {o}"));
                self.last_binop_at = Some(self.out.trim_end().len());
                self.emit(fixed);
                (St::Operand, i + 1)
            }
            Lx::Word(w) if matches!(w.to_ascii_lowercase().as_str(), "and" | "or") => {
                let fixed = if w.eq_ignore_ascii_case("and") {
                    "&&"
                } else {
                    "||"
                };
                self.hint(
                    "keyword-operator",
                    "selectors spell AND, OR and NOT as &&, || and !",
                );
                self.last_binop_at = Some(self.out.trim_end().len());
                self.emit(fixed);
                (St::Operand, i + 1)
            }
            Lx::Punct(')') => {
                if self.depth > 0 {
                    self.depth -= 1;
                    self.emit(")");
                } else {
                    self.hint("extra-paren", "a `)` closes nothing");
                }
                (St::Operator, i + 1)
            }
            Lx::Punct(',' | ';') => {
                self.hint(
                    "comma-as-and",
                    "a comma or semicolon does not join terms: use && (or ||)",
                );
                self.last_binop_at = Some(self.out.trim_end().len());
                self.emit_spaced("&&");
                (St::Operand, i + 1)
            }
            Lx::Other('#') => {
                self.hint("comment", "selectors cannot contain comments");
                (St::Operator, self.toks.len())
            }
            _ if Self::is_term_start(Some(t)) => {
                self.hint(
                    "missing-and",
                    "two tests follow each other with nothing between them; && assumed",
                );
                self.last_binop_at = Some(self.out.trim_end().len());
                self.emit_spaced("&&");
                (St::Operand, i)
            }
            _ => self.give_up(t, i),
        }
    }
}

/// The text a lenient token was read from (for tokens passed through unchanged).
fn raw_text(t: &Lx) -> String {
    match t {
        Lx::Space { text, .. } => text.clone(),
        Lx::Word(w) => w.clone(),
        Lx::Op(o) => o.clone(),
        Lx::Punct(c) | Lx::Other(c) => c.to_string(),
        Lx::Str(v) => {
            let close = if v.terminated {
                v.open.to_string()
            } else {
                String::new()
            };
            format!("{}{}{close}", v.open, v.content)
        }
    }
}

/// Quote a value so Calico reads it back unchanged: keep the author's plain quote when it
/// works, else whichever quote the value does not contain. `None` if it contains both.
fn quote_value(content: &str, preferred: Option<char>) -> Option<String> {
    let candidates = [
        preferred.filter(|q| *q == '\'' || *q == '"'),
        Some('\''),
        Some('"'),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|q| !content.contains(*q))
        .map(|q| format!("{q}{content}{q}"))
}

/// Re-read `expr` leniently and repair what was recognised. Quotes are ambiguous, so several
/// readings are tried: the first one (escapes recognised, quotes paired strictly) is kept unless
/// another gives a selector Calico accepts with fewer corrections, the likelier intent.
fn repair(expr: &str) -> Repair {
    let readings = [
        Reading {
            escapes: true,
            loose: false,
        },
        Reading {
            escapes: false,
            loose: false,
        },
        Reading {
            escapes: true,
            loose: true,
        },
        Reading {
            escapes: false,
            loose: true,
        },
    ];
    let mut best: Option<(bool, Repair)> = None;
    for reading in readings {
        let r = repair_with(expr, reading);
        let ok = Selector::parse(&r.text).is_ok();
        let better = match &best {
            None => true,
            Some((best_ok, b)) => ok && (!best_ok || r.hints.len() < b.hints.len()),
        };
        if better {
            best = Some((ok, r));
        }
    }
    best.map(|(_, r)| r).unwrap_or(Repair {
        text: String::new(),
        hints: Vec::new(),
    })
}

fn repair_with(expr: &str, reading: Reading) -> Repair {
    let toks = lex_lenient(expr, reading);
    let mut r = Repairer {
        toks: &toks,
        out: String::new(),
        pending_space: false,
        hints: Vec::new(),
        depth: 0,
        last_binop_at: None,
        stuck: false,
    };
    r.run();
    let text = if r.out.trim().is_empty() {
        "all()".to_string()
    } else {
        r.out
    };
    Repair {
        text,
        hints: r.hints,
    }
}

// ---------------------------------------------------------------------------------------------
// Warnings on valid selectors
// ---------------------------------------------------------------------------------------------

/// Warnings about what a valid selector means.
pub fn lint_selector(sel: &Selector) -> Vec<Hint> {
    let mut hints = Vec::new();
    let restrictions = sel.label_restrictions();

    for (label, r) in &restrictions {
        if r.possible_to_satisfy() {
            continue;
        }
        let why = if r.must_be_present && r.must_be_absent {
            format!("`{label}` would have to be both present and absent")
        } else {
            format!("no single value of `{label}` satisfies all the required values")
        };
        hints.push(Hint::new(
            HintLevel::Warning,
            "unsatisfiable",
            format!("this selector can never match anything: {why}"),
        ));
    }

    let mut leaves = Vec::new();
    collect_leaves(sel.root(), &mut Vec::new(), true, &mut leaves);
    for leaf in &leaves {
        match leaf.node {
            Node::InSet { label, values } if values.is_empty() => hints.push(Hint::new(
                HintLevel::Warning,
                "empty-set",
                format!("`{label} in {{}}` never matches anything"),
            )),
            Node::NotInSet { label, values } if values.is_empty() => hints.push(Hint::new(
                HintLevel::Info,
                "empty-set",
                format!("`{label} not in {{}}` matches everything"),
            )),
            _ => {}
        }
    }

    for leaf in &leaves {
        let negative_test = matches!(
            (leaf.node, leaf.positive),
            (Node::LabelNe { .. } | Node::NotInSet { .. }, true)
                | (Node::LabelEq { .. } | Node::InSet { .. }, false)
        );
        let Some(label) = leaf.node.label() else {
            continue;
        };
        if !negative_test || restrictions.get(label).is_some_and(|r| r.must_be_present) {
            continue;
        }
        // Suggest `has(k) && <term>` where the term can be replaced as a whole.
        let target = if leaf.positive {
            Some(leaf.path.clone())
        } else {
            leaf.not_parent.clone()
        };
        let suggestion = target.and_then(|path| {
            let old = node_at(sel.root(), &path)?.clone();
            let new = Node::And(vec![
                Node::Has {
                    label: label.to_string(),
                },
                old,
            ]);
            Some(
                Selector::from_node(replace_at(sel.root(), &path, new))
                    .canonical()
                    .to_string(),
            )
        });
        let shown = leaf
            .not_parent
            .as_ref()
            .filter(|_| !leaf.positive)
            .and_then(|p| node_at(sel.root(), p))
            .unwrap_or(leaf.node)
            .canonical();
        hints.push(
            Hint::new(
                HintLevel::Warning,
                "negation-matches-absent",
                format!(
                    "`{shown}` also matches every endpoint and network set that has no \
                     `{label}` label at all; add has({label}) if the label is meant to be required"
                ),
            )
            .with_suggestion(suggestion),
        );
    }

    if leaves
        .iter()
        .any(|l| l.node.label() == Some("calico/k8s_ns"))
    {
        let mut root = sel.root().clone();
        rename_label(&mut root, "calico/k8s_ns", LABEL_NAMESPACE);
        hints.push(
            Hint::new(
                HintLevel::Warning,
                "v2-label",
                format!(
                    "`calico/k8s_ns` is a Calico v2 label that no v3 endpoint carries; the \
                     namespace is `{LABEL_NAMESPACE}`"
                ),
            )
            .with_suggestion(Some(Selector::from_node(root).canonical().to_string())),
        );
    }

    let mut seen = Vec::new();
    for leaf in &leaves {
        let Some(label) = leaf.node.label() else {
            continue;
        };
        if seen.contains(&label) {
            continue;
        }
        seen.push(label);
        if !is_k8s_label_key(label) {
            hints.push(Hint::new(
                HintLevel::Warning,
                "not-a-k8s-key",
                format!(
                    "`{label}` is a valid selector label but not a valid Kubernetes label key, \
                     so no Kubernetes object (and no validated Calico resource) can carry it"
                ),
            ));
        }
    }
    for leaf in &leaves {
        let (label, values): (&str, Vec<&String>) = match leaf.node {
            Node::LabelEq { label, value } | Node::LabelNe { label, value } => (label, vec![value]),
            Node::InSet { label, values } | Node::NotInSet { label, values } => {
                (label, values.iter().collect())
            }
            _ => continue,
        };
        // Felix sets the service-account label from the spec, whatever its length.
        if label == LABEL_SERVICE_ACCOUNT
            || label == format!("{SERVICE_ACCOUNT_LABEL_PREFIX}projectcalico.org/name")
        {
            continue;
        }
        if let Some(bad) = values.into_iter().find(|v| !is_k8s_label_value(v)) {
            hints.push(Hint::new(
                HintLevel::Warning,
                "not-a-k8s-value",
                format!(
                    "{:?} is not a valid Kubernetes label value (at most 63 characters, \
                     alphanumeric at both ends, - _ . inside), so `{label}` never has it",
                    bad
                ),
            ));
        }
    }

    if contains_global(sel.root()) && *sel.root() != Node::Global {
        hints.push(Hint::new(
            HintLevel::Warning,
            "global-misplaced",
            "global() is only accepted as the whole namespaceSelector of a rule; combined with \
             other terms or elsewhere the API rejects it, and Felix would evaluate it as all()",
        ));
    }
    if leaves.iter().any(|l| {
        l.node
            .label()
            .is_some_and(|k| k.starts_with(NAMESPACE_LABEL_PREFIX))
    }) {
        hints.push(Hint::new(
            HintLevel::Info,
            "profile-label",
            "`pcns.` labels come from the namespace profile: usable in a selector, but a \
             namespaceSelector takes the namespace's own labels (Calico adds the prefix)",
        ));
    }
    hints
}

/// Warnings about value text that Calico takes literally.
fn value_text_warnings(sel: &Selector) -> Vec<Hint> {
    let mut leaves = Vec::new();
    collect_leaves(sel.root(), &mut Vec::new(), true, &mut leaves);
    let values: Vec<&str> = leaves
        .iter()
        .flat_map(|l| match l.node {
            Node::LabelEq { value, .. }
            | Node::LabelNe { value, .. }
            | Node::Contains { value, .. }
            | Node::StartsWith { value, .. }
            | Node::EndsWith { value, .. } => vec![value.as_str()],
            Node::InSet { values, .. } | Node::NotInSet { values, .. } => {
                values.iter().map(String::as_str).collect()
            }
            _ => vec![],
        })
        .collect();
    let mut hints = Vec::new();
    if values.iter().any(|v| v.contains('\\')) {
        hints.push(Hint::new(
            HintLevel::Warning,
            "backslash-literal",
            "a value contains `\\`: selectors have no escapes, so it is matched literally",
        ));
    }
    if values.iter().any(|v| v.contains(['\n', '\r'])) {
        hints.push(Hint::new(
            HintLevel::Warning,
            "newline-in-value",
            "a quoted value spans a line break; labels never contain one",
        ));
    }
    if values.iter().any(|v| v.chars().any(is_quote_like)) {
        hints.push(Hint::new(
            HintLevel::Warning,
            "quote-in-value",
            "a value contains a quote or typographic quote character; check the quoting",
        ));
    }
    hints
}

struct Leaf<'a> {
    node: &'a Node,
    path: Vec<usize>,
    positive: bool,
    /// Path of a `!` directly around this leaf.
    not_parent: Option<Vec<usize>>,
}

fn collect_leaves<'a>(
    node: &'a Node,
    path: &mut Vec<usize>,
    positive: bool,
    out: &mut Vec<Leaf<'a>>,
) {
    match node {
        Node::Not(op) => {
            path.push(0);
            let before = out.len();
            collect_leaves(op, path, !positive, out);
            path.pop();
            if out.len() == before + 1
                && op.label().is_some()
                && let Some(l) = out.last_mut()
            {
                l.not_parent = Some(path.clone());
            }
        }
        Node::And(ops) | Node::Or(ops) => {
            for (i, op) in ops.iter().enumerate() {
                path.push(i);
                collect_leaves(op, path, positive, out);
                path.pop();
            }
        }
        Node::All | Node::Global => {}
        leaf => out.push(Leaf {
            node: leaf,
            path: path.clone(),
            positive,
            not_parent: None,
        }),
    }
}

/// The node at a child-index path (`Not` has the single child 0).
pub fn node_at<'a>(node: &'a Node, path: &[usize]) -> Option<&'a Node> {
    let Some((&first, rest)) = path.split_first() else {
        return Some(node);
    };
    match node {
        Node::Not(op) if first == 0 => node_at(op, rest),
        Node::And(ops) | Node::Or(ops) => node_at(ops.get(first)?, rest),
        _ => None,
    }
}

/// A copy of `node` with the node at `path` replaced.
pub fn replace_at(node: &Node, path: &[usize], new: Node) -> Node {
    let Some((&first, rest)) = path.split_first() else {
        return new;
    };
    match node {
        Node::Not(op) if first == 0 => Node::Not(Box::new(replace_at(op, rest, new))),
        Node::And(ops) | Node::Or(ops) => {
            let ops: Vec<Node> = ops
                .iter()
                .enumerate()
                .map(|(i, op)| {
                    if i == first {
                        replace_at(op, rest, new.clone())
                    } else {
                        op.clone()
                    }
                })
                .collect();
            if matches!(node, Node::And(_)) {
                Node::And(ops)
            } else {
                Node::Or(ops)
            }
        }
        other => other.clone(),
    }
}

fn rename_label(node: &mut Node, from: &str, to: &str) {
    match node {
        Node::Not(op) => rename_label(op, from, to),
        Node::And(ops) | Node::Or(ops) => ops.iter_mut().for_each(|o| rename_label(o, from, to)),
        leaf => {
            if leaf.label() == Some(from) {
                *leaf = leaf.with_label(to);
            }
        }
    }
}

fn contains_global(node: &Node) -> bool {
    match node {
        Node::Global => true,
        Node::Not(op) => contains_global(op),
        Node::And(ops) | Node::Or(ops) => ops.iter().any(contains_global),
        _ => false,
    }
}

/// Kubernetes' qualified-name rule for label keys: optional DNS-subdomain prefix and `/`, then
/// a name of 1..=63 characters, alphanumeric at both ends with `-_.` inside.
pub fn is_k8s_label_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let dns_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if p.is_empty() || p.len() > 253 || !p.split('.').all(dns_label) {
            return false;
        }
    }
    !name.is_empty() && is_k8s_label_value(name)
}

/// Kubernetes' label value rule: empty, or at most 63 characters, alphanumeric at both ends,
/// `-_.` and alphanumerics inside.
pub fn is_k8s_label_value(value: &str) -> bool {
    if value.is_empty() {
        return true;
    }
    let b = value.as_bytes();
    value.len() <= 63
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

// ---------------------------------------------------------------------------------------------
// Near misses
// ---------------------------------------------------------------------------------------------

/// Why an endpoint almost matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NearMissKind {
    /// The endpoint's value differs from the selector's only in letter case.
    ValueCase,
    /// The endpoint has a label whose key is one edit (or only case) away.
    KeyTypo,
    /// Every other term matches; only the namespace clause does not.
    OtherNamespace,
}

/// An endpoint a selector would match after one small correction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NearMiss {
    /// The candidate's name as given.
    pub endpoint: String,
    pub kind: NearMissKind,
    /// The term that fails, in canonical form.
    pub term: String,
    /// What the endpoint has instead, as `key=value`.
    pub has: String,
    /// The selector with that term corrected (canonical form).
    pub corrected: String,
    pub message: String,
}

const NAMESPACE_KEYS: [&str; 3] = [
    LABEL_NAMESPACE,
    "pcns.projectcalico.org/name",
    "pcns.kubernetes.io/metadata.name",
];

/// For a selector that matches none of `candidates`, the candidates it would match after one
/// small correction: a value differing only in case, a key one edit away, or another namespace;
/// the first `limit` of them in candidate order. Empty when some candidate already matches.
pub fn near_misses(
    sel: &Selector,
    candidates: &[(&str, &BTreeMap<String, String>)],
    limit: usize,
) -> Vec<NearMiss> {
    if candidates.iter().any(|(_, l)| sel.evaluate(*l)) {
        return Vec::new();
    }
    near_misses_of_unmatched(sel, candidates, limit)
}

/// [`near_misses`] of a selector already known to match none of `candidates` (a caller that
/// found no match through an index need not evaluate it on every candidate again).
pub fn near_misses_of_unmatched(
    sel: &Selector,
    candidates: &[(&str, &BTreeMap<String, String>)],
    limit: usize,
) -> Vec<NearMiss> {
    let mut leaves = Vec::new();
    collect_leaves(sel.root(), &mut Vec::new(), true, &mut leaves);
    let mut out = Vec::new();
    for (name, labels) in candidates {
        if out.len() >= limit {
            break;
        }
        for leaf in leaves.iter().filter(|l| l.positive) {
            if leaf.node.evaluate(*labels) {
                continue;
            }
            for (kind, fixed, has) in leaf_fixes(leaf.node, labels) {
                let root = replace_at(sel.root(), &leaf.path, fixed);
                if !root.evaluate(*labels) {
                    continue;
                }
                let corrected = Selector::from_node(root).canonical().to_string();
                let term = leaf.node.canonical();
                let message = match kind {
                    NearMissKind::ValueCase => format!(
                        "{name} has {has}: the selector's `{term}` differs only in letter case \
                         (values are compared exactly)"
                    ),
                    NearMissKind::KeyTypo => {
                        format!("{name} has {has}, one edit away from the key in `{term}`")
                    }
                    NearMissKind::OtherNamespace => format!(
                        "{name} has the right labels but is in another namespace ({has}); only \
                         `{term}` fails"
                    ),
                };
                out.push(NearMiss {
                    endpoint: name.to_string(),
                    kind,
                    term,
                    has,
                    corrected,
                    message,
                });
                break;
            }
        }
    }
    out
}

/// Candidate corrections of one failing leaf for one endpoint.
fn leaf_fixes(leaf: &Node, labels: &BTreeMap<String, String>) -> Vec<(NearMissKind, Node, String)> {
    let mut fixes = Vec::new();
    let Some(key) = leaf.label() else {
        return fixes;
    };
    if let Some(have) = labels.get_label(key) {
        let kv = format!("{key}={have}");
        // A case-only difference is the more precise diagnosis, also for namespaces.
        if let Some(f) = case_fix(leaf, have) {
            fixes.push((NearMissKind::ValueCase, f, kv.clone()));
        }
        if NAMESPACE_KEYS.contains(&key)
            && let Some(f) = namespace_fix(leaf, have)
        {
            fixes.push((NearMissKind::OtherNamespace, f, kv));
        }
    } else {
        for (k, v) in labels {
            if k.eq_ignore_ascii_case(key) || edit_distance_is_one(k, key) {
                fixes.push((
                    NearMissKind::KeyTypo,
                    leaf.with_label(k),
                    format!("{k}={v}"),
                ));
            }
        }
    }
    fixes
}

/// The namespace clause asking for the endpoint's namespace instead.
fn namespace_fix(leaf: &Node, have: &str) -> Option<Node> {
    match leaf {
        Node::LabelEq { label, .. } => Some(Node::LabelEq {
            label: label.clone(),
            value: have.to_string(),
        }),
        Node::InSet { label, values } => {
            let mut values = values.clone();
            values.push(have.to_string());
            values.sort();
            values.dedup();
            Some(Node::InSet {
                label: label.clone(),
                values,
            })
        }
        _ => None,
    }
}

/// The leaf with a value that differs from the endpoint's only in (ASCII) letter case
/// replaced by the endpoint's spelling.
fn case_fix(leaf: &Node, have: &str) -> Option<Node> {
    let lower_have = have.to_ascii_lowercase();
    let same = |v: &str| v != have && v.eq_ignore_ascii_case(have);
    // ASCII folding keeps byte offsets, so a found range can be cut from `have`.
    let piece = |v: &str, at: Option<usize>| {
        let at = at?;
        have.get(at..at + v.len())
            .filter(|p| *p != v)
            .map(str::to_string)
    };
    let label = leaf.label()?.to_string();
    match leaf {
        Node::LabelEq { value, .. } if same(value) => Some(Node::LabelEq {
            label,
            value: have.to_string(),
        }),
        Node::InSet { values, .. } => {
            values.iter().position(|v| same(v))?;
            let mut values: Vec<String> = values
                .iter()
                .map(|v| if same(v) { have.to_string() } else { v.clone() })
                .collect();
            values.sort();
            values.dedup();
            Some(Node::InSet { label, values })
        }
        Node::StartsWith { value, .. } => {
            let lv = value.to_ascii_lowercase();
            let at = lower_have.starts_with(&lv).then_some(0);
            piece(value, at).map(|value| Node::StartsWith { label, value })
        }
        Node::EndsWith { value, .. } => {
            let lv = value.to_ascii_lowercase();
            let at = lower_have.ends_with(&lv).then(|| have.len() - value.len());
            piece(value, at).map(|value| Node::EndsWith { label, value })
        }
        Node::Contains { value, .. } => {
            let at = lower_have.find(&value.to_ascii_lowercase());
            piece(value, at).map(|value| Node::Contains { label, value })
        }
        _ => None,
    }
}

/// Levenshtein distance exactly one (one insertion, deletion or substitution).
fn edit_distance_is_one(a: &str, b: &str) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (short, long) = if a.len() <= b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    match long.len() - short.len() {
        0 => {
            short
                .iter()
                .zip(long.iter())
                .filter(|(x, y)| x != y)
                .count()
                == 1
        }
        1 => {
            let i = short
                .iter()
                .zip(long.iter())
                .position(|(x, y)| x != y)
                .unwrap_or(short.len());
            short[i..] == long[i + 1..]
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// CLI view
// ---------------------------------------------------------------------------------------------

/// The JSON `calisnap selector` prints: validity, canonical form, ID, IP set names, Calico's
/// error (v3.30+ and pre-v3.30 wording), our hints, and with `labels` whether it matches.
pub fn selector_json(expr: &str, labels: Option<&BTreeMap<String, String>>) -> Value {
    let parsed = Selector::parse(expr);
    let legacy = Selector::parse_legacy(expr);
    let hints = lint(expr);
    let first_error = hints
        .iter()
        .find(|h| h.severity == HintLevel::Error)
        .map(|h| h.suggestion.clone().unwrap_or_else(|| h.message.clone()));
    let mut v = json!({
        "input": expr,
        "valid": parsed.is_ok(),
        "canonical": parsed.as_ref().ok().map(|s| s.canonical().to_string()),
        "id": parsed.as_ref().ok().map(Selector::unique_id),
        "ipset": parsed.as_ref().ok().map(|s| s.ipset_name(false)),
        "ipset_v6": parsed.as_ref().ok().map(|s| s.ipset_name(true)),
        "nft_ipset": parsed.as_ref().ok().map(|s| s.nft_ipset_name(false)),
        "error": parsed.as_ref().err().map(|e| e.message.clone()),
        "legacy_valid": legacy.is_ok(),
        "legacy_error": legacy.as_ref().err().map(|e| e.message.clone()),
        "hint": first_error,
        "hints": hints,
    });
    if let (Some(labels), Some(obj)) = (labels, v.as_object_mut()) {
        // An invalid selector makes Felix drop the whole policy: it matches nothing.
        let matches = parsed.as_ref().map(|s| s.evaluate(labels)).unwrap_or(false);
        obj.insert("matches".to_string(), Value::Bool(matches));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(s: &str) -> Option<String> {
        suggest_fix(s)
    }

    #[test]
    fn valid_selectors_get_no_error_hints() {
        for s in ["app=='web'", "app == \"web\"", "", "has(a) && !has(b)"] {
            assert!(
                lint(s).iter().all(|h| h.severity != HintLevel::Error),
                "{s}: {:?}",
                lint(s)
            );
        }
    }

    #[test]
    fn lenient_lexer_reads_escaped_and_mismatched_quotes() {
        let reading = Reading {
            escapes: true,
            loose: false,
        };
        let toks = lex_lenient(r#"a == "x\"y" && b == 'c""#, reading);
        let strs: Vec<&QuotedValue> = toks
            .iter()
            .filter_map(|t| if let Lx::Str(v) = t { Some(v) } else { None })
            .collect();
        assert_eq!(strs.len(), 2);
        assert_eq!(strs[0].content, "x\"y");
        assert!(strs[0].escaped);
        assert_eq!(strs[1].content, "c");
        assert!(strs[1].mismatched);
    }

    #[test]
    fn a_backslash_before_a_closing_quote_is_kept_literal() {
        // Valid as written: the value is `C:\`.
        assert!(Selector::parse(r"a == 'C:\' && b == 'x'").is_ok());
        assert_eq!(
            fix(r"a == 'C:\' & b == 'x'").as_deref(),
            Some(r"a == 'C:\' && b == 'x'")
        );
    }

    #[test]
    fn edit_distance_one() {
        assert!(edit_distance_is_one("app", "ap"));
        assert!(edit_distance_is_one("app", "apq"));
        assert!(!edit_distance_is_one("tier", "teir"));
        assert!(edit_distance_is_one("app", "apps"));
        assert!(!edit_distance_is_one("app", "app"));
    }

    #[test]
    fn k8s_key_rules() {
        assert!(is_k8s_label_key("projectcalico.org/namespace"));
        assert!(is_k8s_label_key("pcns.kubernetes.io/metadata.name"));
        assert!(is_k8s_label_key("app"));
        assert!(!is_k8s_label_key("-a"));
        assert!(!is_k8s_label_key("a..b/c") && is_k8s_label_key("a.b/c"));
        assert!(!is_k8s_label_key("Calico/x"));
        assert!(!is_k8s_label_value("web "));
        assert!(is_k8s_label_value(""));
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn a_value_differing_only_in_case_is_a_near_miss() {
        let web = labels(&[("app", "web"), ("projectcalico.org/namespace", "prod")]);
        let db = labels(&[("app", "db"), ("projectcalico.org/namespace", "prod")]);
        let s = sel("app == 'Web'");
        let misses = near_misses(&s, &[("prod/web-1", &web), ("prod/db-1", &db)], usize::MAX);
        assert_eq!(misses.len(), 1);
        let m = &misses[0];
        assert_eq!(m.endpoint, "prod/web-1");
        assert_eq!(m.kind, NearMissKind::ValueCase);
        assert_eq!(m.term, "app == \"Web\"");
        assert_eq!(m.has, "app=web");
        assert_eq!(m.corrected, "app == \"web\"");
    }

    #[test]
    fn a_key_one_edit_away_is_a_near_miss() {
        let web = labels(&[("app", "web"), ("tier", "frontend")]);
        let s = sel("apps == 'web' && tier == 'frontend'");
        let misses = near_misses(&s, &[("web-1", &web)], usize::MAX);
        assert_eq!(misses.len(), 1);
        assert_eq!(misses[0].kind, NearMissKind::KeyTypo);
        assert_eq!(
            misses[0].corrected,
            "(app == \"web\" && tier == \"frontend\")"
        );
        let upper = sel("App == 'web'");
        assert_eq!(
            near_misses(&upper, &[("web-1", &web)], 1)[0].corrected,
            "app == \"web\""
        );
    }

    #[test]
    fn right_labels_in_another_namespace_is_a_near_miss() {
        let web = labels(&[("app", "web"), ("projectcalico.org/namespace", "staging")]);
        let s = sel("(app == 'web') && projectcalico.org/namespace == 'prod'");
        let misses = near_misses(&s, &[("staging/web-1", &web)], usize::MAX);
        assert_eq!(misses.len(), 1);
        assert_eq!(misses[0].kind, NearMissKind::OtherNamespace);
        assert_eq!(misses[0].has, "projectcalico.org/namespace=staging");
        assert_eq!(
            misses[0].corrected,
            "(app == \"web\" && projectcalico.org/namespace == \"staging\")"
        );
    }

    #[test]
    fn near_misses_stop_at_the_limit_in_candidate_order() {
        let ns = |n: &str| labels(&[("app", "web"), ("projectcalico.org/namespace", n)]);
        let (a, b, c) = (ns("a"), ns("b"), ns("c"));
        let s = sel("app == 'web' && projectcalico.org/namespace == 'prod'");
        let all: [(&str, &BTreeMap<String, String>); 3] =
            [("a/web", &a), ("b/web", &b), ("c/web", &c)];
        let names = |limit| -> Vec<String> {
            near_misses(&s, &all, limit)
                .into_iter()
                .map(|m| m.endpoint)
                .collect()
        };
        assert_eq!(names(usize::MAX), ["a/web", "b/web", "c/web"]);
        assert_eq!(names(2), ["a/web", "b/web"]);
        assert!(names(0).is_empty());
    }

    #[test]
    fn no_near_misses_when_something_matches_or_two_terms_fail() {
        let web = labels(&[("app", "web")]);
        assert!(near_misses(&sel("app == 'web'"), &[("w", &web)], usize::MAX).is_empty());
        let other = labels(&[("app", "api"), ("tier", "x")]);
        assert!(
            near_misses(
                &sel("app == 'Web' && tier == 'db'"),
                &[("o", &other)],
                usize::MAX
            )
            .is_empty()
        );
    }

    #[test]
    fn case_differences_inside_prefix_and_set_tests_are_found() {
        let web = labels(&[("app", "WebServer")]);
        let m = near_misses(&sel("app starts with 'web'"), &[("w", &web)], 1);
        assert_eq!(
            m.first().map(|m| m.corrected.as_str()),
            Some("app starts with \"Web\"")
        );
        let m = near_misses(&sel("app in {'webserver', 'db'}"), &[("w", &web)], 1);
        assert_eq!(
            m.first().map(|m| m.corrected.as_str()),
            Some("app in {\"WebServer\", \"db\"}")
        );
    }

    #[test]
    fn negations_warn_that_items_without_the_label_match() {
        let h = lint("a != 'x'");
        let w = h
            .iter()
            .find(|h| h.code == "negation-matches-absent")
            .expect("warning");
        assert_eq!(w.severity, HintLevel::Warning);
        assert_eq!(w.suggestion.as_deref(), Some("(has(a) && a != \"x\")"));
        assert!(
            lint("has(a) && a != 'x'")
                .iter()
                .all(|h| h.code != "negation-matches-absent")
        );
        assert!(
            lint("a not in {'x'}")
                .iter()
                .any(|h| h.code == "negation-matches-absent")
        );
    }

    #[test]
    fn contradictions_and_empty_sets_are_warned_about() {
        assert!(
            lint("a == 'x' && a == 'y'")
                .iter()
                .any(|h| h.code == "unsatisfiable")
        );
        assert!(
            lint("has(a) && !has(a)")
                .iter()
                .any(|h| h.code == "unsatisfiable")
        );
        assert!(lint("k in {}").iter().any(|h| h.code == "empty-set"));
        assert!(
            lint("a == 'x' || a == 'y'")
                .iter()
                .all(|h| h.code != "unsatisfiable")
        );
    }

    #[test]
    fn v2_namespace_label_gets_the_v3_name() {
        let h = lint("calico/k8s_ns == 'kube-system' && k8s-app == 'kube-dns'");
        let w = h.iter().find(|h| h.code == "v2-label").expect("warning");
        assert_eq!(
            w.suggestion.as_deref(),
            Some("(projectcalico.org/namespace == \"kube-system\" && k8s-app == \"kube-dns\")")
        );
    }

    #[test]
    fn selector_json_reports_what_the_cli_prints() {
        let v = selector_json("app == 'web'", Some(&labels(&[("app", "web")])));
        assert_eq!(v["valid"], true);
        assert_eq!(v["canonical"], "app == \"web\"");
        assert_eq!(v["id"], sel("app == 'web'").unique_id());
        assert_eq!(v["ipset"], sel("app == 'web'").ipset_name(false));
        assert_eq!(v["matches"], true);
        assert_eq!(v["hint"], Value::Null);

        let bad = selector_json("app = 'web'\n", None);
        assert_eq!(bad["valid"], false);
        assert_eq!(bad["error"], "expected ==");
        assert_eq!(bad["legacy_error"], "expected ==");
        assert_eq!(bad["hint"], "app == 'web'");
        assert!(bad.get("matches").is_none());
        assert_eq!(bad["canonical"], Value::Null);

        let old = selector_json("has(\napp)", None);
        assert_eq!(old["legacy_valid"], true);
        assert_eq!(old["legacy_error"], Value::Null);
    }
}
