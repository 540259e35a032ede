//! Felix / calico-node logs: the Calico log format
//! (`2021-03-01 08:22:21.751 [INFO][48] felix/int_dataplane.go 1234: message key="value"`),
//! older lines without the component (`table.go 376:`), other calico-node components
//! (`confd/`, `tunnel-ip-allocator/`), logrus text (`time="…" level=info msg="…"`), the CLI
//! form (`INFO[0000] …`), klog lines (`W0112 12:33:01.881648 380 warnings.go:70] …`) and
//! BIRD's `bird: …` lines, each possibly wrapped by svlogd timestamps, `kubectl logs`
//! (`--timestamps`, CRI file form, `--prefix`), stern prefixes or `> ` quoting.
//!
//! A record is one header line plus every following line that is not a header (Go panics and
//! goroutine traces, kernel verifier dumps, `libbpf:` lines, error text that spilled onto
//! the next line). Lines before the first header become one record of level
//! [`Level::Unknown`].
//!
//! Logs can be a gibibyte, so this does not keep every record: it counts all of them (total
//! and per level), keeps first/last timestamps, and keeps in full only the *notable* ones —
//! WARNING and above, header-less leading text, and INFO lines that matter for diagnosis
//! (startup and version, in-sync, restarts and shutdowns, failures, restore commands,
//! resyncs) — up to [`MAX_NOTABLE`] records / [`MAX_NOTABLE_BYTES`], with a count of the
//! ones dropped. Big files are parsed in chunks ([`parse_chunk`]) and merged in file order
//! ([`Log::merge`]); the merged result equals a whole-file parse.
//!
//! This is a log reader, not a Calico interpreter: it does not decide what a message means
//! beyond the notable/version heuristics above.

use chrono::{NaiveDate, NaiveDateTime};
use serde::Serialize;

use super::{ParseError, numbered_lines};

/// Most notable records kept; later ones are only counted in [`Log::dropped`].
pub const MAX_NOTABLE: usize = 200_000;
/// Most bytes of notable record text kept (message plus field text).
pub const MAX_NOTABLE_BYTES: usize = 256 << 20;
/// Text kept per record; a longer record (a goroutine dump, a restore input) is cut here and
/// marked [`Record::truncated`].
pub const MAX_RECORD_BYTES: usize = 64 << 10;
/// Parse errors kept (a garbage file would otherwise yield one per line).
pub const MAX_ERRORS: usize = 1000;
/// Version mentions kept (each restart logs one).
pub const MAX_VERSIONS: usize = 1000;

/// Log severity. `Unknown` is text with no header (lines before the first record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Level {
    Unknown,
    Trace,
    Debug,
    Info,
    Warning,
    Error,
    Fatal,
    Panic,
}

impl Level {
    pub const ALL: [Level; 8] = [
        Level::Unknown,
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warning,
        Level::Error,
        Level::Fatal,
        Level::Panic,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// Parse a level word as the supported formats spell it (`WARNING`, `warn`, `ERRO`, …).
    pub fn from_word(word: &str) -> Option<Level> {
        let level = match word.to_ascii_uppercase().as_str() {
            "TRACE" | "TRAC" => Level::Trace,
            "DEBUG" | "DEBU" => Level::Debug,
            "INFO" => Level::Info,
            "WARNING" | "WARN" => Level::Warning,
            "ERROR" | "ERRO" => Level::Error,
            "FATAL" | "FATA" => Level::Fatal,
            "PANIC" | "PANI" => Level::Panic,
            _ => return None,
        };
        Some(level)
    }
}

/// Which header form a record started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Format {
    /// `2021-03-01 08:22:21.751 [INFO][48] felix/file.go 12: …`
    Calico,
    /// `time="…" level=info msg="…"`
    Logrus,
    /// `INFO[0000] …`
    Cli,
    /// `W0112 12:33:01.881648 380 warnings.go:70] …`
    Klog,
    /// `bird: …`
    Bird,
    /// Lines before the first header.
    Headerless,
}

/// One log record (a header line and its continuation lines).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// 1-based line of the header.
    pub line: usize,
    /// 1-based line of the last continuation line (== `line` for one-line records).
    pub end_line: usize,
    pub ts: Option<NaiveDateTime>,
    pub level: Level,
    pub pid: Option<u32>,
    /// `felix`, `confd`, … (the path before the file name); `None` on old lines.
    pub component: Option<String>,
    pub file: Option<String>,
    pub src_line: Option<u32>,
    /// The message, continuation lines joined with `\n`, fields removed.
    pub message: String,
    /// `key=value` fields in order; quoted values are unquoted (Go escapes decoded).
    pub fields: Vec<(String, String)>,
    pub format: Format,
    /// The text was longer than [`MAX_RECORD_BYTES`] and was cut.
    pub truncated: bool,
}

impl Record {
    /// The value of the first field called `key`.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A line that tells the running Calico/Felix version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionMention {
    pub line: usize,
    pub version: String,
    /// What said it: `Felix starting up`, `Starting node … with version …`, ….
    pub source: String,
}

/// Record counts per level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LevelCounts([usize; 8]);

impl LevelCounts {
    pub fn get(&self, level: Level) -> usize {
        self.0[level.index()]
    }
    fn add(&mut self, level: Level, n: isize) {
        let slot = &mut self.0[level.index()];
        *slot = slot.saturating_add_signed(n);
    }
}

/// A parsed Felix / calico-node log (or one chunk of it).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Log {
    /// Notable records, in file order (see the module doc).
    pub records: Vec<Record>,
    /// All records, notable or not.
    pub total: usize,
    pub by_level: LevelCounts,
    pub first_ts: Option<NaiveDateTime>,
    pub last_ts: Option<NaiveDateTime>,
    /// Notable records not kept because of [`MAX_NOTABLE`] / [`MAX_NOTABLE_BYTES`].
    pub dropped: usize,
    /// Lines read.
    pub lines: usize,
    pub versions: Vec<VersionMention>,
    pub errors: Vec<ParseError>,
    #[serde(skip)]
    state: MergeState,
}

/// What a chunk needs to be merged with its neighbours.
#[derive(Debug, Clone, Default)]
struct MergeState {
    /// Notable records admitted under the caps (the header-less head is exempt).
    admitted: usize,
    notable_bytes: usize,
    /// Admission stopped at the first notable record that did not fit.
    saturated: bool,
    /// The last record, still open to continuation lines of the next chunk.
    open: Option<Pending>,
    /// Leading header-less lines of this chunk, as last finished.
    head: Option<Pending>,
    limits: Limits,
}

/// Caps on what is kept ([`MAX_NOTABLE`], [`MAX_NOTABLE_BYTES`]); smaller in tests.
#[derive(Debug, Clone, Copy)]
struct Limits {
    notable: usize,
    bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            notable: MAX_NOTABLE,
            bytes: MAX_NOTABLE_BYTES,
        }
    }
}

#[derive(Debug, Clone)]
struct Pending {
    proto: Record,
    notable: bool,
    /// Raw text (first-line remainder plus continuation lines); only kept when notable.
    body: String,
    is_head: bool,
    /// Where it was put when last finished.
    outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    NotNotable,
    /// The head, made a record at `records[0]` (it has text).
    Head,
    /// A head of blank lines only: no record.
    BlankHead,
    Stored {
        idx: usize,
        charge: usize,
    },
    Dropped {
        caused_saturation: bool,
    },
}

impl Log {
    /// Records as the report counts them (a multi-line record counts once).
    pub fn records(&self) -> usize {
        self.total
    }

    /// Records of one level.
    pub fn count(&self, level: Level) -> usize {
        self.by_level.get(level)
    }

    /// The most recent version mention (the version running at the end of the log).
    pub fn version(&self) -> Option<&VersionMention> {
        self.versions.last()
    }

    /// Append the next chunk of the same file (chunks must be merged in file order, but the
    /// merges may nest: `(a+b)+(c+d)` equals `((a+b)+c)+d`). Lines at the start of `later`
    /// that continue this chunk's last record are joined to it.
    pub fn merge(&mut self, mut later: Log) {
        if self.lines == 0 {
            *self = later;
            return;
        }
        if later.lines == 0 {
            return;
        }
        if let Some(head) = later.state.head.take() {
            // The head belongs to our last record, not to a record of its own.
            if head.outcome == Outcome::Head {
                later.records.remove(0);
                later.total -= 1;
                later.by_level.add(Level::Unknown, -1);
                if let Some(Outcome::Stored { idx, .. }) =
                    later.state.open.as_mut().map(|o| &mut o.outcome)
                {
                    *idx -= 1;
                }
            }
            if later.state.open.as_ref().is_some_and(|o| o.is_head) {
                later.state.open = None;
            }
            if let Some(mut open) = self.state.open.take() {
                self.unfinish(&open);
                open.proto.end_line = head.proto.end_line;
                if open.notable && !open.proto.truncated {
                    push_body(&mut open.body, &mut open.proto.truncated, &head.body);
                    if head.proto.truncated {
                        open.proto.truncated = true;
                    }
                }
                self.finish(&mut open);
                self.state.open = Some(open);
            }
        }
        let mut last = Outcome::NotNotable;
        for rec in later.records {
            let charge = rec_charge(&rec);
            last = self.admit(rec, charge);
        }
        let saturated_before_open = self.state.saturated;
        // Records `later` dropped stay dropped: they would not fit here either.
        self.dropped += later.dropped;
        self.state.saturated |= later.state.saturated;
        self.total += later.total;
        for l in Level::ALL {
            self.by_level.add(l, later.by_level.get(l) as isize);
        }
        if self.first_ts.is_none() {
            self.first_ts = later.first_ts;
        }
        if later.last_ts.is_some() {
            self.last_ts = later.last_ts;
        }
        self.lines += later.lines;
        let room = MAX_VERSIONS.saturating_sub(self.versions.len());
        self.versions.extend(later.versions.into_iter().take(room));
        let room = MAX_ERRORS.saturating_sub(self.errors.len());
        self.errors.extend(later.errors.into_iter().take(room));
        if let Some(mut open) = later.state.open {
            open.outcome = match open.outcome {
                // It was the last of `later.records`.
                Outcome::Stored { .. } => last,
                Outcome::Dropped { caused_saturation } => Outcome::Dropped {
                    caused_saturation: caused_saturation && !saturated_before_open,
                },
                other => other,
            };
            self.state.open = Some(open);
        }
    }

    /// Take back what `finish` did for `p`, so it can be finished again with more lines.
    fn unfinish(&mut self, p: &Pending) {
        match p.outcome {
            Outcome::Stored { idx, charge } => {
                if idx + 1 == self.records.len() {
                    self.records.pop();
                    self.state.admitted -= 1;
                    self.state.notable_bytes -= charge;
                }
            }
            Outcome::Dropped { caused_saturation } => {
                self.dropped -= 1;
                if caused_saturation {
                    self.state.saturated = false;
                }
            }
            Outcome::Head => {
                // An open head is the chunk's only record.
                self.records.clear();
                self.total -= 1;
                self.by_level.add(Level::Unknown, -1);
            }
            Outcome::BlankHead | Outcome::NotNotable => {}
        }
    }

    /// Store (or count as dropped) a finished record. Counts of header records were taken
    /// at their start; the head is counted here because only now is it known to have text.
    fn finish(&mut self, p: &mut Pending) {
        if p.is_head {
            if p.body.trim().is_empty() {
                p.outcome = Outcome::BlankHead;
            } else {
                self.total += 1;
                self.by_level.add(Level::Unknown, 1);
                self.records.insert(0, build_record(&p.proto, &p.body));
                p.outcome = Outcome::Head;
            }
            self.state.head = Some(p.clone());
            return;
        }
        if !p.notable {
            p.outcome = Outcome::NotNotable;
            return;
        }
        let rec = build_record(&p.proto, &p.body);
        let charge = rec_charge(&rec);
        p.outcome = self.admit(rec, charge);
    }

    fn admit(&mut self, rec: Record, charge: usize) -> Outcome {
        if self.state.saturated {
            self.dropped += 1;
            return Outcome::Dropped {
                caused_saturation: false,
            };
        }
        if self.state.admitted >= self.state.limits.notable
            || self.state.notable_bytes + charge > self.state.limits.bytes
        {
            self.state.saturated = true;
            self.dropped += 1;
            return Outcome::Dropped {
                caused_saturation: true,
            };
        }
        self.state.admitted += 1;
        self.state.notable_bytes += charge;
        self.records.push(rec);
        Outcome::Stored {
            idx: self.records.len() - 1,
            charge,
        }
    }

    fn error(&mut self, line: usize, message: impl Into<String>) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(ParseError::new(line, message));
        }
    }
}

fn rec_charge(rec: &Record) -> usize {
    rec.message.len()
        + rec
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum::<usize>()
}

/// Append one line of text to a record body, keeping it under [`MAX_RECORD_BYTES`].
fn push_body(body: &mut String, truncated: &mut bool, text: &str) {
    if *truncated {
        return;
    }
    body.push('\n');
    body.push_str(text);
    cap_body(body, truncated);
}

fn cap_body(body: &mut String, truncated: &mut bool) {
    if body.len() > MAX_RECORD_BYTES {
        let mut cut = MAX_RECORD_BYTES;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
        *truncated = true;
    }
}

fn start_body(text: &str) -> (String, bool) {
    let mut body = text.to_string();
    let mut truncated = false;
    cap_body(&mut body, &mut truncated);
    (body, truncated)
}

/// Parse a whole log.
pub fn parse(text: &str) -> Log {
    parse_chunk(text, 1)
}

/// Parse one chunk of a log whose first line is line `first_line` of the file. Merge the
/// chunks of one file with [`Log::merge`].
pub fn parse_chunk(text: &str, first_line: usize) -> Log {
    parse_chunk_limited(text, first_line, Limits::default())
}

fn parse_chunk_limited(text: &str, first_line: usize, limits: Limits) -> Log {
    let mut log = Log::default();
    log.state.limits = limits;
    let mut cur: Option<Pending> = None;
    let mut scratch = String::new();
    for (no, raw) in numbered_lines(text, first_line) {
        log.lines += 1;
        let line = strip_wrappers(raw);
        if let Some(h) = parse_header(line) {
            if let Some(mut p) = cur.take() {
                log.finish(&mut p);
            }
            cur = Some(start_record(&mut log, no, h, &mut scratch));
            continue;
        }
        if looks_like_broken_header(line) {
            log.error(no, "line starts like a log header but could not be read");
        }
        match cur.as_mut() {
            Some(p) => {
                p.proto.end_line = no;
                if p.notable {
                    push_body(&mut p.body, &mut p.proto.truncated, line);
                }
            }
            None => {
                let (body, truncated) = start_body(line);
                cur = Some(Pending {
                    proto: Record {
                        line: no,
                        end_line: no,
                        ts: None,
                        level: Level::Unknown,
                        pid: None,
                        component: None,
                        file: None,
                        src_line: None,
                        message: String::new(),
                        fields: Vec::new(),
                        format: Format::Headerless,
                        truncated,
                    },
                    notable: true,
                    body,
                    is_head: true,
                    outcome: Outcome::NotNotable,
                });
            }
        }
    }
    if let Some(mut p) = cur.take() {
        log.finish(&mut p);
        log.state.open = Some(p);
    }
    log
}

fn start_record(log: &mut Log, no: usize, h: Header<'_>, scratch: &mut String) -> Pending {
    log.total += 1;
    log.by_level.add(h.level, 1);
    if let Some(ts) = h.ts {
        if log.first_ts.is_none() {
            log.first_ts = Some(ts);
        }
        log.last_ts = Some(ts);
    }
    let mut notable = h.level >= Level::Warning;
    if h.level == Level::Info {
        notable = info_is_notable(header_message(&h), scratch);
        if notable {
            detect_version(log, no, &h);
        }
    }
    let (body, truncated) = if notable {
        start_body(h.rest)
    } else {
        (String::new(), false)
    };
    Pending {
        proto: Record {
            line: no,
            end_line: no,
            ts: h.ts,
            level: h.level,
            pid: h.pid,
            component: h.component.map(str::to_string),
            file: h.file.map(str::to_string),
            src_line: h.src_line,
            message: String::new(),
            fields: Vec::new(),
            format: h.format,
            truncated,
        },
        notable,
        body,
        is_head: false,
        outcome: Outcome::NotNotable,
    }
}

/// INFO lines worth keeping: lowercase needles matched case-insensitively.
const NOTABLE_INFO: &[&str] = &[
    "starting up",
    "starting node",
    "with version",
    "successfully loaded configuration",
    "in sync",
    "in-sync",
    "restart",
    "shutting down",
    "shut down",
    "exiting",
    "failed",
    "failure",
    "-restore",
    "ipset restore",
    "resync",
    "panic",
];

fn info_is_notable(msg: &str, scratch: &mut String) -> bool {
    scratch.clear();
    scratch.push_str(msg);
    scratch.make_ascii_lowercase();
    NOTABLE_INFO
        .iter()
        .any(|n| memchr::memmem::find(scratch.as_bytes(), n.as_bytes()).is_some())
}

/// The message of a header line without its fields (cheap: for the notable check only).
fn header_message<'a>(h: &Header<'a>) -> &'a str {
    match h.format {
        Format::Logrus => h.rest.find(" msg=").map_or("", |i| &h.rest[i + 5..]),
        _ => match key_candidates(h.rest).next() {
            Some(i) => &h.rest[..i],
            None => h.rest,
        },
    }
}

fn detect_version(log: &mut Log, no: usize, h: &Header<'_>) {
    if log.versions.len() >= MAX_VERSIONS {
        return;
    }
    let rec = build_record_from_header(h);
    let msg = rec.message.trim();
    let mut found: Option<(String, String)> = None;
    if let Some(rest) = msg
        .strip_prefix("Starting node ")
        .and_then(|r| r.split_once(" with version "))
        .map(|(_, v)| v.trim())
    {
        if !rest.is_empty() {
            found = Some((rest.to_string(), msg.to_string()));
        }
    } else if (msg.ends_with("starting up") || msg.starts_with("Successfully loaded configuration"))
        && let Some(v) = rec.field("version")
        && !v.trim().is_empty()
    {
        found = Some((v.trim().to_string(), msg.to_string()));
    }
    if let Some((version, source)) = found {
        log.versions.push(VersionMention {
            line: no,
            version,
            source,
        });
    }
}

fn build_record_from_header(h: &Header<'_>) -> Record {
    let proto = Record {
        line: 0,
        end_line: 0,
        ts: h.ts,
        level: h.level,
        pid: h.pid,
        component: None,
        file: None,
        src_line: None,
        message: String::new(),
        fields: Vec::new(),
        format: h.format,
        truncated: false,
    };
    build_record(&proto, h.rest)
}

/// Turn a record prototype and its raw body into the finished record.
fn build_record(proto: &Record, body: &str) -> Record {
    let mut rec = proto.clone();
    match proto.format {
        Format::Calico => {
            let (m, f) = split_fields(body, true);
            rec.message = m;
            rec.fields = f;
        }
        Format::Cli => {
            let (m, f) = split_fields(body, true);
            rec.message = m.trim_end().to_string();
            rec.fields = f;
        }
        Format::Logrus => {
            let mut fields = parse_fields_from(body, 0).unwrap_or_default();
            let mut message = String::new();
            if let Some(i) = fields.iter().position(|(k, _)| k == "msg") {
                message = fields.remove(i).1;
            }
            // time and level are in the record already.
            fields.retain(|(k, _)| k != "time" && k != "level");
            rec.message = message;
            rec.fields = fields;
        }
        Format::Klog => {
            // Structured klog: `"message" key="value" …`.
            if body.starts_with('"')
                && let Some((msg, end)) = go_unquote_prefix(body)
            {
                let rest = &body[end..];
                let start = rest.len() - rest.trim_start().len();
                if let Some(f) = parse_fields_from(rest, start) {
                    rec.message = msg;
                    rec.fields = f;
                    return rec;
                }
            }
            rec.message = body.to_string();
        }
        Format::Bird | Format::Headerless => rec.message = body.to_string(),
    }
    rec
}

/// Split `message key=value …` into the message and its fields. Calico and logrus sort field
/// keys, so when `sorted` is set a split whose keys are out of order is passed over (the
/// message itself probably contained ` x=`).
fn split_fields(body: &str, sorted: bool) -> (String, Vec<(String, String)>) {
    let mut first: Option<(usize, Vec<(String, String)>)> = None;
    let mut tries = 0;
    for start in key_candidates(body) {
        tries += 1;
        if tries > 16 {
            break;
        }
        let Some(fields) = parse_fields_from(body, start) else {
            continue;
        };
        let in_order = fields.windows(2).all(|w| w[0].0 <= w[1].0);
        if !sorted || in_order {
            return (body[..start].trim_end().to_string(), fields);
        }
        if first.is_none() {
            first = Some((start, fields));
        }
    }
    match first {
        Some((start, fields)) => (body[..start].trim_end().to_string(), fields),
        None => (body.to_string(), Vec::new()),
    }
}

/// Byte offsets where ` key=` starts (after whitespace).
fn key_candidates(body: &str) -> impl Iterator<Item = usize> + '_ {
    let b = body.as_bytes();
    memchr::memchr_iter(b'=', b).filter_map(move |eq| {
        let mut i = eq;
        while i > 0 && is_key_byte(b[i - 1]) {
            i -= 1;
        }
        if i == eq || i == 0 {
            return None;
        }
        let ws = b[i - 1];
        if !(ws == b' ' || ws == b'\n' || ws == b'\t') {
            return None;
        }
        if !(b[i].is_ascii_alphabetic() || b[i] == b'_') {
            return None;
        }
        Some(i)
    })
}

fn is_key_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-'
}

/// Length of `key=` at the start of `s`, if it is one.
fn key_at(s: &[u8]) -> Option<usize> {
    let first = *s.first()?;
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return None;
    }
    let mut i = 1;
    while i < s.len() && is_key_byte(s[i]) {
        i += 1;
    }
    (s.get(i) == Some(&b'=')).then_some(i)
}

/// Parse `key=value key="value" …` from `start` to the end. `None` when the text there is
/// not a field list.
fn parse_fields_from(body: &str, start: usize) -> Option<Vec<(String, String)>> {
    let b = body.as_bytes();
    let mut fields = Vec::new();
    let mut i = start;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let klen = key_at(&b[i..])?;
        let key = &body[i..i + klen];
        i += klen + 1;
        let rest = &body[i..];
        let quoted = if rest.starts_with('"') {
            go_unquote_prefix(rest)
        } else if rest.starts_with("*\"") {
            go_unquote_prefix(&rest[1..]).map(|(v, n)| (v, n + 1))
        } else {
            None
        };
        if let Some((v, n)) = quoted {
            let after = &rest[n..];
            let ends_cleanly = after.is_empty()
                || after
                    .as_bytes()
                    .first()
                    .is_some_and(|c| c.is_ascii_whitespace())
                    && (after.trim().is_empty() || key_at(after.trim_start().as_bytes()).is_some());
            if ends_cleanly {
                fields.push((key.to_string(), v));
                i += n;
                continue;
            }
        }
        let n = unquoted_len(rest);
        fields.push((key.to_string(), rest[..n].trim_end().to_string()));
        i += n;
    }
    if fields.is_empty() {
        None
    } else {
        Some(fields)
    }
}

/// Length of an unquoted value: up to whitespace followed by `key=`, not counting text
/// inside `{…}`, `[…]`, `(…)` or `"…"` (Go `%#v` structs); when those do not balance, the
/// first whitespace-`key=` ends it.
fn unquoted_len(rest: &str) -> usize {
    scan_unquoted(rest, true).unwrap_or_else(|| scan_unquoted(rest, false).unwrap_or(rest.len()))
}

fn scan_unquoted(rest: &str, nesting: bool) -> Option<usize> {
    let b = rest.as_bytes();
    let mut depth: i32 = 0;
    let mut in_str = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if nesting && in_str {
            if c == b'\\' {
                i += 2;
                continue;
            }
            if c == b'"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        if nesting {
            match c {
                b'"' => in_str = true,
                b'{' | b'[' | b'(' => depth += 1,
                b'}' | b']' | b')' => depth -= 1,
                _ => {}
            }
        }
        if c.is_ascii_whitespace() && depth <= 0 && key_at(&b[i + 1..]).is_some() {
            return Some(i);
        }
        i += 1;
    }
    if nesting && (depth != 0 || in_str) {
        None
    } else {
        Some(b.len())
    }
}

/// Decode a Go double-quoted string at the start of `s`; returns the value and the bytes
/// consumed. `None` when there is no closing quote.
pub(crate) fn go_unquote_prefix(s: &str) -> Option<(String, usize)> {
    let mut chars = s.char_indices();
    if chars.next()?.1 != '"' {
        return None;
    }
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i + 1)),
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut v: u32 = 0;
                        for _ in 0..n {
                            let (_, h) = chars.next()?;
                            v = v * 16 + h.to_digit(16)?;
                        }
                        // `\x` escapes stand for raw bytes, which on their own are not
                        // UTF-8 above 0x7f: kept as the code point of the same value.
                        out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                    }
                    '0'..='7' => {
                        let mut v = e.to_digit(8)?;
                        for _ in 0..2 {
                            let (_, o) = chars.next()?;
                            v = v * 8 + o.to_digit(8)?;
                        }
                        out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                    }
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
            }
            c => out.push(c),
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// Headers and wrappers

struct Header<'a> {
    format: Format,
    ts: Option<NaiveDateTime>,
    level: Level,
    pid: Option<u32>,
    component: Option<&'a str>,
    file: Option<&'a str>,
    src_line: Option<u32>,
    /// The rest of the line: message and fields (logrus: the whole line).
    rest: &'a str,
}

/// Whether `line` starts a record (after removing wrappers). Chunkers use this to prefer
/// split points that start a record.
pub fn is_record_start(line: &str) -> bool {
    let line = line.strip_suffix('\r').unwrap_or(line);
    parse_header(strip_wrappers(line)).is_some()
}

/// Remove what log collectors put in front of a line: `> ` quoting, `[pod container]`
/// prefixes, `calico-node ` prefixes, CRI / `--timestamps` stamps and svlogd stamps.
fn strip_wrappers(mut line: &str) -> &str {
    for _ in 0..6 {
        let before = line.len();
        if let Some(r) = line.strip_prefix("> ") {
            line = r;
        } else if line == ">" {
            line = "";
        } else if let Some(r) = strip_bracket_prefix(line) {
            line = r;
        } else if let Some(r) = line.strip_prefix("calico-node ") {
            line = r.trim_start_matches(' ');
        } else if let Some(r) = strip_stamp_prefix(line) {
            line = r;
        }
        if line.len() == before {
            break;
        }
    }
    line
}

/// `[pod container]  ` or `[pod/name/container] ` (stern, kubectl --prefix).
fn strip_bracket_prefix(line: &str) -> Option<&str> {
    let inner_and_rest = line.strip_prefix('[')?;
    let (inner, rest) = inner_and_rest.split_once(']')?;
    if !rest.starts_with(' ') || inner.is_empty() {
        return None;
    }
    let words: Vec<&str> = inner.split(' ').collect();
    let ok_word = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'/'))
    };
    let shaped = match words.as_slice() {
        [one] => one.contains('/') && ok_word(one),
        [a, b] => ok_word(a) && ok_word(b),
        _ => false,
    };
    shaped.then(|| rest.trim_start_matches(' '))
}

/// `2021-03-01_08:22:21.75123 ` (svlogd), `2023-10-01T12:00:00.123456789Z ` (kubectl
/// --timestamps), optionally followed by the CRI `stdout F ` part.
fn strip_stamp_prefix(line: &str) -> Option<&str> {
    let b = line.as_bytes();
    if b.len() < 20 || !is_date(b) || !(b[10] == b'_' || b[10] == b'T') || !is_hms(&b[11..]) {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    match b.get(i) {
        Some(b'Z') => i += 1,
        Some(b'+') | Some(b'-') => {
            // +hh:mm
            if b.len() >= i + 6 && b[i + 3] == b':' {
                i += 6;
            } else {
                return None;
            }
        }
        _ => {}
    }
    if b.get(i) != Some(&b' ') {
        return None;
    }
    let rest = &line[i + 1..];
    for stream in ["stdout ", "stderr "] {
        if let Some(r) = rest.strip_prefix(stream)
            && let Some(r) = r
                .strip_prefix("F ")
                .or_else(|| r.strip_prefix("P "))
                .or_else(|| (r == "F" || r == "P").then_some(""))
        {
            return Some(r);
        }
    }
    Some(rest)
}

fn is_date(b: &[u8]) -> bool {
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
}

fn is_hms(b: &[u8]) -> bool {
    b.len() >= 8
        && b[..2].iter().all(u8::is_ascii_digit)
        && b[2] == b':'
        && b[3..5].iter().all(u8::is_ascii_digit)
        && b[5] == b':'
        && b[6..8].iter().all(u8::is_ascii_digit)
}

fn num(b: &[u8]) -> u32 {
    b.iter().fold(0u32, |a, c| {
        a.wrapping_mul(10)
            .wrapping_add((c.wrapping_sub(b'0')) as u32)
    })
}

/// `YYYY-MM-DD?HH:MM:SS[.frac]` at the start of `b`; returns the time and bytes used.
fn parse_datetime(b: &[u8]) -> Option<(NaiveDateTime, usize)> {
    if !is_date(b) || b.len() < 19 || !is_hms(&b[11..]) {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(num(&b[..4]) as i32, num(&b[5..7]), num(&b[8..10]))?;
    let (h, m, s) = (num(&b[11..13]), num(&b[14..16]), num(&b[17..19]));
    let mut i = 19;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let mut digits = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            if digits < 9 {
                nanos = nanos * 10 + (b[i] - b'0') as u32;
                digits += 1;
            }
            i += 1;
        }
        for _ in digits..9 {
            nanos *= 10;
        }
    }
    Some((date.and_hms_nano_opt(h, m, s, nanos)?, i))
}

fn parse_header(line: &str) -> Option<Header<'_>> {
    let b = line.as_bytes();
    let first = *b.first()?;
    if first.is_ascii_digit() {
        return parse_calico_header(line);
    }
    if line.starts_with("time=\"") {
        return parse_logrus_header(line);
    }
    if let Some(h) = parse_klog_header(line) {
        return Some(h);
    }
    if let Some(h) = parse_cli_header(line) {
        return Some(h);
    }
    for prefix in ["bird: ", "bird6: "] {
        if let Some(rest) = line.strip_prefix(prefix) {
            return Some(Header {
                format: Format::Bird,
                ts: None,
                level: Level::Info,
                pid: None,
                component: Some(prefix.trim_end_matches(": ")),
                file: None,
                src_line: None,
                rest,
            });
        }
    }
    None
}

fn parse_calico_header(line: &str) -> Option<Header<'_>> {
    let b = line.as_bytes();
    if b.get(10) != Some(&b' ') {
        return None;
    }
    let (ts, mut i) = parse_datetime(b)?;
    if b.get(i) != Some(&b' ') || b.get(i + 1) != Some(&b'[') {
        return None;
    }
    i += 2;
    let close = i + line[i..].find(']')?;
    let level = Level::from_word(&line[i..close])?;
    i = close + 1;
    let mut pid = None;
    if b.get(i) == Some(&b'[') {
        let close = i + line[i..].find(']')?;
        pid = line[i + 1..close].parse().ok();
        i = close + 1;
    }
    let rest = line[i..].strip_prefix(' ').unwrap_or(&line[i..]);
    let mut h = Header {
        format: Format::Calico,
        ts: Some(ts),
        level,
        pid,
        component: None,
        file: None,
        src_line: None,
        rest,
    };
    // `felix/file.go 123: ` or `file.go <nil>: `
    if let Some((path, after)) = rest.split_once(' ') {
        let (lineno, msg) = after
            .split_once(": ")
            .or_else(|| after.split_once('\u{ff1a}'))
            .or_else(|| after.strip_suffix(':').map(|l| (l, "")))
            .unwrap_or(("", ""));
        let lineno_ok =
            !lineno.is_empty() && (lineno.bytes().all(|c| c.is_ascii_digit()) || lineno == "<nil>");
        if lineno_ok && !path.is_empty() {
            match path.rsplit_once('/') {
                Some((comp, file)) => {
                    h.component = Some(comp);
                    h.file = Some(file);
                }
                None => h.file = Some(path),
            }
            h.src_line = lineno.parse().ok();
            h.rest = msg;
        }
    }
    Some(h)
}

fn parse_logrus_header(line: &str) -> Option<Header<'_>> {
    let (time, _) = go_unquote_prefix(&line[5..])?;
    let ts = parse_rfc3339ish(&time);
    let level_at = line.find(" level=")? + 7;
    let word_end = line[level_at..]
        .find(' ')
        .map_or(line.len(), |n| level_at + n);
    let level = Level::from_word(line[level_at..word_end].trim_matches('"'))?;
    Some(Header {
        format: Format::Logrus,
        ts,
        level,
        pid: None,
        component: None,
        file: None,
        src_line: None,
        rest: line,
    })
}

/// `2019-03-04T10:00:00Z`, `…+01:00`, `…T10:00:00.123-07:00`; converted to UTC.
fn parse_rfc3339ish(s: &str) -> Option<NaiveDateTime> {
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(dt.naive_utc());
    }
    parse_datetime(s.as_bytes()).map(|(t, _)| t)
}

/// `W0112 12:33:01.881648     380 warnings.go:70] message`
fn parse_klog_header(line: &str) -> Option<Header<'_>> {
    let b = line.as_bytes();
    if b.len() < 22 {
        return None;
    }
    let level = match b[0] {
        b'I' => Level::Info,
        b'W' => Level::Warning,
        b'E' => Level::Error,
        b'F' => Level::Fatal,
        _ => return None,
    };
    if !b[1..5].iter().all(u8::is_ascii_digit) || b[5] != b' ' || !is_hms(&b[6..]) {
        return None;
    }
    let after_time = line.get(14..)?;
    let after_time = after_time.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let after_time = after_time.trim_start();
    let (pid, rest) = after_time.split_once(' ')?;
    let pid: u32 = pid.parse().ok()?;
    let (loc, msg) = rest
        .split_once("] ")
        .or_else(|| rest.strip_suffix(']').map(|l| (l, "")))?;
    let (file, src) = loc.rsplit_once(':')?;
    Some(Header {
        format: Format::Klog,
        ts: None,
        level,
        pid: Some(pid),
        component: None,
        file: Some(file),
        src_line: src.parse().ok(),
        rest: msg,
    })
}

/// `INFO[0000] message   key=value`
fn parse_cli_header(line: &str) -> Option<Header<'_>> {
    let b = line.as_bytes();
    if b.len() < 7 || b[4] != b'[' {
        return None;
    }
    let level = match &line[..4] {
        "INFO" => Level::Info,
        "WARN" => Level::Warning,
        "ERRO" => Level::Error,
        "FATA" => Level::Fatal,
        "PANI" => Level::Panic,
        "DEBU" => Level::Debug,
        "TRAC" => Level::Trace,
        _ => return None,
    };
    let close = line[5..].find(']')? + 5;
    if close == 5 || !b[5..close].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(Header {
        format: Format::Cli,
        ts: None,
        level,
        pid: None,
        component: None,
        file: None,
        src_line: None,
        rest: line[close + 1..].trim_start(),
    })
}

/// A line that starts with a date but is no header we know: worth a diagnostic.
fn looks_like_broken_header(line: &str) -> bool {
    let b = line.as_bytes();
    is_date(b) && b.get(10) == Some(&b' ') && b.get(13) == Some(&b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modern_line_splits_header_message_and_fields() {
        let log = parse(
            "2021-03-01 08:22:21.751 [WARNING][48] felix/table.go 376: Failed to execute ip(6)tables-restore command error=exit status 1 errorOutput=\"iptables-restore: line 3 failed\\n\" ipVersion=0x4\n",
        );
        assert_eq!(log.records(), 1);
        let r = &log.records[0];
        assert_eq!(r.level, Level::Warning);
        assert_eq!(r.pid, Some(48));
        assert_eq!(r.component.as_deref(), Some("felix"));
        assert_eq!(r.file.as_deref(), Some("table.go"));
        assert_eq!(r.src_line, Some(376));
        assert_eq!(r.message, "Failed to execute ip(6)tables-restore command");
        assert_eq!(r.field("error"), Some("exit status 1"));
        assert_eq!(
            r.field("errorOutput"),
            Some("iptables-restore: line 3 failed\n")
        );
        assert_eq!(r.field("ipVersion"), Some("0x4"));
    }

    #[test]
    fn go_struct_values_keep_their_inner_spaces_and_quotes() {
        let (m, f) = split_fields(
            "Failed error=boom name=\"x\" wepID=&types.WorkloadEndpointID{OrchestratorId:\"k8s\", WorkloadId:\"a b=c\"}",
            true,
        );
        assert_eq!(m, "Failed");
        assert_eq!(f.len(), 3);
        assert_eq!(
            f[2].1,
            "&types.WorkloadEndpointID{OrchestratorId:\"k8s\", WorkloadId:\"a b=c\"}"
        );
    }

    fn visible(log: &Log) -> String {
        format!(
            "{:?}",
            (
                &log.records,
                log.total,
                log.dropped,
                log.lines,
                &log.versions
            )
        )
    }

    #[test]
    fn notable_records_past_the_caps_are_counted_as_dropped_the_same_way_in_chunks() {
        let mut text = String::new();
        for i in 0..12 {
            let pad = "x".repeat(if i == 7 { 40 } else { 5 });
            text.push_str(&format!(
                "2023-06-02 10:15:30.{i:03} [WARNING][1] felix/a.go {i}: w{i} {pad}\n  more {i}\n"
            ));
            text.push_str("2023-06-02 10:15:31.000 [DEBUG][1] felix/a.go 1: noise\n");
        }
        for limits in [
            Limits {
                notable: 5,
                bytes: usize::MAX,
            },
            Limits {
                notable: 100,
                bytes: 150,
            },
        ] {
            let whole = parse_chunk_limited(&text, 1, limits);
            assert_eq!(whole.total, 24);
            assert!(whole.dropped > 0);
            assert_eq!(whole.records.len() + whole.dropped, 12);
            let starts: Vec<usize> = text.match_indices('\n').map(|(i, _)| i + 1).collect();
            for &cut in &starts {
                let first = text[..cut].matches('\n').count() + 1;
                let mut merged = parse_chunk_limited(&text[..cut], 1, limits);
                merged.merge(parse_chunk_limited(&text[cut..], first, limits));
                assert_eq!(visible(&merged), visible(&whole), "cut at {cut}");
            }
        }
    }

    #[test]
    fn go_escapes_are_decoded() {
        let (v, n) = go_unquote_prefix(r#""a\tb\x41\u00e9\101\"" tail"#).expect("quoted");
        assert_eq!(v, "a\tbA\u{e9}A\"");
        assert_eq!(n, 22);
    }

    #[test]
    fn wrappers_are_stripped_before_the_header() {
        for l in [
            "2021-03-01_08:22:21.75123 2021-03-01 08:22:21.751 [INFO][48] felix/a.go 1: x",
            "2023-10-01T12:00:00.123456789Z stdout F 2021-03-01 08:22:21.751 [INFO][48] felix/a.go 1: x",
            "[calico-node-abc calico-node]  2021-03-01 08:22:21.751 [INFO][48] felix/a.go 1: x",
            "calico-node 2021-03-01 08:22:21.751 [INFO][48] felix/a.go 1: x",
            "> 2021-03-01 08:22:21.751 [INFO][48] felix/a.go 1: x",
        ] {
            assert!(is_record_start(l), "{l}");
        }
        assert!(!is_record_start("\tgoroutine 1 [running]:"));
        assert!(!is_record_start(
            "[signal SIGSEGV: segmentation violation code=0x1]"
        ));
    }
}
