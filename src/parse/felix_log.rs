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
//! Logs can be a gibibyte, so this is a scan that keeps little: it counts every record (total
//! and per level) and keeps first/last timestamps, but builds a [`Record`] only for the
//! *notable* ones — WARNING and above, header-less leading text, and INFO records whose
//! message names a lifecycle event or a failure ([`INFO_EVENTS`]: startup and version,
//! in-sync, restarts and shutdowns, failures, restore commands, resyncs). A DEBUG or ordinary
//! INFO line costs a header read by bytes (level word at its fixed place, no allocation) and,
//! for INFO, one case-folded multi-needle search of its message. The routine reports Felix
//! logs after every periodic pass (`Finished IPSets resync`, `Finished iptables resync`:
//! [`ROUTINE_INFO`]) are counted, not kept, unless they carry a marker the log checks read
//! ([`INFO_READ`]) or have continuation lines (a Go panic printed after one).
//!
//! What is kept is capped per log: [`MAX_NOTABLE`] records and [`MAX_NOTABLE_BYTES`] of
//! memory (a realistic failing log has a few thousand WARNING/ERROR records of a few hundred
//! bytes). Past the cap no further notable record is kept — the log keeps its first notable
//! records, in file order — and the ones not kept are counted in [`Log::dropped`], which the
//! report shows; the level counts still include them. Big files are parsed in chunks
//! ([`parse_chunk`]) and merged in file order ([`Log::merge`]); the merged result equals a
//! whole-file parse, caps included.
//!
//! This is a log reader, not a Calico interpreter: it does not decide what a message means
//! beyond the notable/version heuristics above.

use std::sync::LazyLock;

use chrono::{NaiveDate, NaiveDateTime, Timelike};
use serde::Serialize;

use super::ParseError;

/// Most notable records kept per log; later ones are only counted in [`Log::dropped`].
pub const MAX_NOTABLE: usize = 10_000;
/// Most bytes the notable records of one log may hold: their text plus a fixed cost per record
/// and per field (see `rec_charge`). Twenty logs of a bundle stay under 100 MiB together.
pub const MAX_NOTABLE_BYTES: usize = 4 << 20;
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
        // Compared in place (no upper-casing copy): this runs on every header line.
        const WORDS: [(&str, Level); 13] = [
            ("DEBUG", Level::Debug),
            ("INFO", Level::Info),
            ("WARNING", Level::Warning),
            ("ERROR", Level::Error),
            ("DEBU", Level::Debug),
            ("WARN", Level::Warning),
            ("ERRO", Level::Error),
            ("TRACE", Level::Trace),
            ("TRAC", Level::Trace),
            ("FATAL", Level::Fatal),
            ("FATA", Level::Fatal),
            ("PANIC", Level::Panic),
            ("PANI", Level::Panic),
        ];
        WORDS
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(word))
            .map(|&(_, level)| level)
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
    /// The record without message and fields; for a record not kept only its line numbers,
    /// level, time and format are filled in.
    proto: Record,
    keep: Keep,
    /// Raw text (first-line remainder plus continuation lines); only held when kept (and for
    /// an open [`Keep::IfContinued`] record).
    body: String,
    is_head: bool,
    /// Where it was put when last finished.
    outcome: Outcome,
}

/// Whether a record's text is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Counted only.
    No,
    /// Notable: kept in full.
    Yes,
    /// A routine INFO report ([`ROUTINE_INFO`]) that ends a chunk: notable if the next chunk
    /// continues it. `proto` and `body` are filled in for the merge.
    IfContinued,
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
                if open.keep == Keep::IfContinued {
                    open.keep = Keep::Yes;
                }
                if open.keep == Keep::Yes && !open.proto.truncated {
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
        if p.keep != Keep::Yes {
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

/// What a kept record costs against [`MAX_NOTABLE_BYTES`]: its text and the fixed size of the
/// record and of each field, so the cap bounds memory, not only text.
fn rec_charge(rec: &Record) -> usize {
    std::mem::size_of::<Record>()
        + rec.message.len()
        + rec.component.as_ref().map_or(0, String::len)
        + rec.file.as_ref().map_or(0, String::len)
        + rec
            .fields
            .iter()
            .map(|(k, v)| std::mem::size_of::<(String, String)>() + k.len() + v.len())
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
    let mut scan = Scan::default();
    // The current record: `kept` when its text is kept (or it is the header-less head),
    // `counted` when it is only counted; at most one is set.
    let mut kept: Option<Pending> = None;
    let mut counted: Option<Counted> = None;
    // The header line of the current record (wrappers removed): read again only when an
    // INFO record turns out to have continuation lines or ends the chunk.
    let mut cur_header = "";
    // The header line of the last record when that record came through the fast path above:
    // its time becomes `last_ts` at the end unless a later record has a time of its own.
    let mut last_ts_line: Option<&str> = None;
    for (no, raw) in super::numbered_lines(text, first_line) {
        log.lines += 1;
        // Most lines of a log are Calico-format DEBUG and routine INFO headers, which are only
        // counted: recognise them without building a time (a Calico header has no wrapper).
        if let Some(prefix) = calico_prefix(raw, &mut scan.dates)
            && (prefix.level == Level::Debug
                || (prefix.level == Level::Info && {
                    let rest = calico_rest(raw, prefix);
                    let text = calico_location(rest).map_or(rest, |(_, _, msg)| msg);
                    !info_text_is_kept(Format::Calico, text, &mut scan)
                }))
        {
            if let Some(mut p) = kept.take() {
                log.finish(&mut p);
            }
            log.total += 1;
            log.by_level.add(prefix.level, 1);
            if log.first_ts.is_none() {
                log.first_ts = header_time(raw, &mut scan.dates);
            }
            last_ts_line = Some(raw);
            counted = Some(Counted {
                line: no,
                end_line: no,
                level: prefix.level,
                format: Format::Calico,
                ts: None,
                ts_from_header: true,
                undecided: prefix.level == Level::Info,
            });
            cur_header = raw;
            continue;
        }
        let line = strip_wrappers(raw);
        if let Some(h) = parse_header(line, &mut scan.dates) {
            if let Some(mut p) = kept.take() {
                log.finish(&mut p);
            }
            if h.ts.is_some() {
                last_ts_line = None;
            }
            match start_record(&mut log, no, &h, &mut scan) {
                Started::Kept(p) => {
                    kept = Some(p);
                    counted = None;
                }
                Started::Counted(c) => counted = Some(c),
            }
            cur_header = line;
            continue;
        }
        if looks_like_broken_header(line) {
            log.error(no, "line starts like a log header but could not be read");
        }
        if let Some(c) = counted.as_mut() {
            c.end_line = no;
            if !c.undecided {
                continue;
            }
            c.undecided = false;
            match decide_info(c, cur_header, &mut scan, true) {
                Some(p) => {
                    counted = None;
                    kept = Some(p);
                }
                None => continue,
            }
        }
        match kept.as_mut() {
            Some(p) => {
                p.proto.end_line = no;
                if p.keep == Keep::Yes {
                    push_body(&mut p.body, &mut p.proto.truncated, line);
                }
            }
            None => {
                let (body, truncated) = start_body(line);
                let mut proto = bare_record(no, Level::Unknown, Format::Headerless, None);
                proto.truncated = truncated;
                kept = Some(Pending {
                    proto,
                    keep: Keep::Yes,
                    body,
                    is_head: true,
                    outcome: Outcome::NotNotable,
                });
            }
        }
    }
    if let Some(l) = last_ts_line {
        log.last_ts = header_time(l, &mut scan.dates);
    }
    let open = match counted {
        Some(mut c) => {
            if c.ts_from_header {
                c.ts = header_time(cur_header, &mut scan.dates);
            }
            let decided = if c.undecided {
                decide_info(&c, cur_header, &mut scan, false)
            } else {
                None
            };
            Some(decided.unwrap_or_else(|| {
                let mut proto = bare_record(c.line, c.level, c.format, c.ts);
                proto.end_line = c.end_line;
                Pending {
                    proto,
                    keep: Keep::No,
                    body: String::new(),
                    is_head: false,
                    outcome: Outcome::NotNotable,
                }
            }))
        }
        None => kept,
    };
    if let Some(mut p) = open {
        log.finish(&mut p);
        log.state.open = Some(p);
    }
    log
}

/// Per-chunk scratch space of the scan.
#[derive(Default)]
struct Scan {
    dates: DateCache,
    /// Case-folded copy of the INFO text being searched.
    lower: Vec<u8>,
    /// [`names_event`] of INFO messages met before: most INFO lines repeat a few messages
    /// (`Applying dataplane updates`), so one lookup replaces the fold and the search.
    events: std::collections::HashMap<String, bool, foldhash::fast::RandomState>,
}

/// Distinct INFO messages remembered per chunk at most.
const EVENT_CACHE: usize = 4096;

impl Scan {
    fn names_event(&mut self, msg: &str) -> bool {
        if let Some(&known) = self.events.get(msg) {
            return known;
        }
        let named = names_event(msg, &mut self.lower);
        if self.events.len() < EVENT_CACHE {
            self.events.insert(msg.to_string(), named);
        }
        named
    }
}

/// A record with no text: what is known of a record that is only counted.
fn bare_record(no: usize, level: Level, format: Format, ts: Option<NaiveDateTime>) -> Record {
    Record {
        line: no,
        end_line: no,
        ts,
        level,
        pid: None,
        component: None,
        file: None,
        src_line: None,
        message: String::new(),
        fields: Vec::new(),
        format,
        truncated: false,
    }
}

/// A kept record's prototype (all but message and fields) and its first body text.
fn kept_start(no: usize, h: &Header<'_>) -> (Record, String) {
    let (body, truncated) = start_body(h.rest);
    let proto = Record {
        pid: h.pid,
        component: h.component.map(str::to_string),
        file: h.file.map(str::to_string),
        src_line: h.src_line,
        truncated,
        ..bare_record(no, h.level, h.format, h.ts)
    };
    (proto, body)
}

/// A record that is only counted, while it is the current one.
#[derive(Debug, Clone, Copy)]
struct Counted {
    line: usize,
    end_line: usize,
    level: Level,
    format: Format,
    ts: Option<NaiveDateTime>,
    /// `ts` is not read yet: it is the time of the header line (fast path of Calico headers).
    ts_from_header: bool,
    /// An INFO record not kept on its header line: looked at again if continuation lines
    /// follow or the chunk ends (`decide_info`).
    undecided: bool,
}

enum Started {
    Kept(Pending),
    Counted(Counted),
}

fn start_record(log: &mut Log, no: usize, h: &Header<'_>, scan: &mut Scan) -> Started {
    log.total += 1;
    log.by_level.add(h.level, 1);
    if let Some(ts) = h.ts {
        if log.first_ts.is_none() {
            log.first_ts = Some(ts);
        }
        log.last_ts = Some(ts);
    }
    let keep = match h.level {
        Level::Info => {
            if info_is_kept(h, scan) {
                detect_version(log, no, h);
                true
            } else {
                false
            }
        }
        level => level >= Level::Warning,
    };
    if keep {
        let (proto, body) = kept_start(no, h);
        Started::Kept(Pending {
            proto,
            keep: Keep::Yes,
            body,
            is_head: false,
            outcome: Outcome::NotNotable,
        })
    } else {
        Started::Counted(Counted {
            line: no,
            end_line: no,
            level: h.level,
            format: h.format,
            ts: h.ts,
            ts_from_header: false,
            undecided: h.level == Level::Info,
        })
    }
}

/// An INFO record not kept on its header line, at its first continuation line (`continued`)
/// or at the end of the chunk: it is kept when it has continuation lines and its message
/// names an event ([`INFO_EVENTS`]; a routine report), so a Go panic printed after it is
/// read. At the end of a chunk such a record becomes [`Keep::IfContinued`], for the merge.
fn decide_info(
    c: &Counted,
    header_line: &str,
    scan: &mut Scan,
    continued: bool,
) -> Option<Pending> {
    let h = parse_header(header_line, &mut scan.dates)?;
    if !scan.names_event(header_message(h.format, h.rest)) {
        return None;
    }
    let (mut proto, body) = kept_start(c.line, &h);
    proto.end_line = c.end_line;
    Some(Pending {
        proto,
        keep: if continued {
            Keep::Yes
        } else {
            Keep::IfContinued
        },
        body,
        is_head: false,
        outcome: Outcome::NotNotable,
    })
}

/// Case-folded message prefixes of the INFO reports Felix logs after every periodic pass: they
/// name a resync, but only that it ran.
pub const ROUTINE_INFO: &[&str] = &["finished "];

/// What the log checks read in INFO records (`model::logsig`), lowercase, matched against the
/// case-folded header line text (message and fields): a process start and its version
/// (`Felix starting up`, `Successfully loaded configuration.`, `Starting node … with version
/// …`), in-sync (`Datastore now in sync`, `First time we've been in sync`), the resync and
/// retry markers of a resync loop, and Go panics.
pub const INFO_READ: &[&str] = &[
    "starting up",
    "successfully loaded configuration",
    "with version",
    "in sync",
    "marking for resync",
    "marking dataplane for resync",
    "resync with dataplane",
    "will do partial resync",
    "will do full resync",
    "retrying after",
    "will retry",
    "panic",
    "fatal error",
];

/// INFO messages that name a lifecycle event or a failure, lowercase, matched against the
/// case-folded message of the header line. An INFO record is notable when it matches this and
/// is not routine ([`ROUTINE_INFO`]), or is routine but carries an [`INFO_READ`] marker or has
/// continuation lines.
pub const INFO_EVENTS: &[&str] = &[
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

/// One pass over the case-folded text for every [`INFO_READ`] marker.
static INFO_READ_RE: LazyLock<regex::bytes::Regex> = LazyLock::new(|| {
    let alternatives: Vec<String> = INFO_READ.iter().map(|n| regex::escape(n)).collect();
    regex::bytes::Regex::new(&alternatives.join("|")).expect("literal alternatives compile")
});

/// One pass over the case-folded message for every [`INFO_EVENTS`] needle.
static INFO_EVENTS_RE: LazyLock<regex::bytes::Regex> = LazyLock::new(|| {
    let alternatives: Vec<String> = INFO_EVENTS.iter().map(|n| regex::escape(n)).collect();
    regex::bytes::Regex::new(&alternatives.join("|")).expect("literal alternatives compile")
});

fn fold_into<'a>(text: &str, lower: &'a mut Vec<u8>) -> &'a [u8] {
    lower.clear();
    lower.extend(text.bytes().map(|c| c.to_ascii_lowercase()));
    lower
}

/// Whether an INFO header line is notable on its own: its message names an event and is not
/// a routine report, or is one that carries a marker the checks read.
fn info_is_kept(h: &Header<'_>, scan: &mut Scan) -> bool {
    info_text_is_kept(h.format, h.rest, scan)
}

/// [`info_is_kept`] of a header's format and text after its location.
fn info_text_is_kept(format: Format, rest: &str, scan: &mut Scan) -> bool {
    let msg = header_message(format, rest);
    if !scan.names_event(msg) {
        return false;
    }
    let routine = ROUTINE_INFO.iter().any(|p| {
        msg.as_bytes()
            .get(..p.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(p.as_bytes()))
    });
    !routine || INFO_READ_RE.is_match(fold_into(rest, &mut scan.lower))
}

fn names_event(msg: &str, lower: &mut Vec<u8>) -> bool {
    INFO_EVENTS_RE.is_match(fold_into(msg, lower))
}

/// The message of a header line without its fields (cheap: for the notable check only), from
/// its format and text after the location.
fn header_message(format: Format, rest: &str) -> &str {
    match format {
        Format::Logrus => rest.find(" msg=").map_or("", |i| &rest[i + 5..]),
        _ => match key_candidates(rest).next() {
            Some(i) => &rest[..i],
            None => rest,
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
    KEY_BYTES[c as usize]
}

/// The bytes of a field key (`[A-Za-z0-9_.-]`), as a table: looked up for every byte before a
/// `=` in INFO messages.
static KEY_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-';
        c += 1;
    }
    t
};

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
    parse_header(strip_wrappers(line), &mut DateCache::default()).is_some()
}

/// Remove what log collectors put in front of a line: `> ` quoting, `[pod container]`
/// prefixes, `calico-node ` prefixes, CRI / `--timestamps` stamps and svlogd stamps.
fn strip_wrappers(mut line: &str) -> &str {
    // A Calico header (`2021-03-01 08:…`) has no wrapper: none of the forms below starts
    // with a digit and has a space at byte 10. Most lines are such headers.
    let b = line.as_bytes();
    if b.len() > 10 && b[0].is_ascii_digit() && b[10] == b' ' {
        return line;
    }
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

/// The last `YYYY-MM-DD?HH:MM:SS` read and its time, so that the lines of one second check and
/// build it once (only the fraction is read per line).
#[derive(Debug, Default)]
struct DateCache {
    key: [u8; 19],
    /// `None` until a valid time was read; the key is then that time's text.
    time: Option<NaiveDateTime>,
}

/// `YYYY-MM-DD?HH:MM:SS[.frac]` at the start of `b`; returns the time and bytes used.
fn parse_datetime(b: &[u8]) -> Option<(NaiveDateTime, usize)> {
    parse_datetime_cached(b, &mut DateCache::default())
}

fn parse_datetime_cached(b: &[u8], dates: &mut DateCache) -> Option<(NaiveDateTime, usize)> {
    let second = match (b.get(..19), dates.time) {
        // Same text as a time read before (the separator at 10 is part of the key).
        (Some(key), Some(t)) if key == dates.key => t,
        // Same minute, another second: only the seconds are read.
        (Some(key), Some(t))
            if key[..17] == dates.key[..17]
                && key[17..].iter().all(u8::is_ascii_digit)
                && let Some(t) = t.with_second(num(&key[17..])) =>
        {
            dates.key.copy_from_slice(key);
            dates.time = Some(t);
            t
        }
        _ => {
            if !is_date(b) || b.len() < 19 || !is_hms(&b[11..]) {
                return None;
            }
            let date = NaiveDate::from_ymd_opt(num(&b[..4]) as i32, num(&b[5..7]), num(&b[8..10]))?;
            let (h, m, s) = (num(&b[11..13]), num(&b[14..16]), num(&b[17..19]));
            let t = date.and_hms_opt(h, m, s)?;
            dates.key.copy_from_slice(&b[..19]);
            dates.time = Some(t);
            t
        }
    };
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
    Some((second.with_nanosecond(nanos)?, i))
}

/// What [`calico_prefix`] reads of a Calico-format header line.
#[derive(Debug, Clone, Copy)]
struct CalicoPrefix {
    level: Level,
    /// The bytes between the brackets of `[pid]`, when there is one.
    pid: Option<(usize, usize)>,
    /// Where the text after `[level][pid]` starts.
    after: usize,
}

/// The prefix of a Calico-format header (`2026-11-24 14:02:15.582 [DEBUG][42] …`) read without
/// building its time: the date and time are validated once per second of log (the
/// `DateCache` key), so most lines cost a compare. Accepts exactly the lines
/// [`parse_calico_header`] accepts.
#[inline]
fn calico_prefix(line: &str, dates: &mut DateCache) -> Option<CalicoPrefix> {
    let b = line.as_bytes();
    if b.len() < 19 || b[10] != b' ' || !b[0].is_ascii_digit() {
        return None;
    }
    let mut i = if dates.time.is_some() && b[..19] == dates.key {
        let mut i = 19;
        if b.get(i) == Some(&b'.') {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
        i
    } else {
        parse_datetime_cached(b, dates)?.1
    };
    if b.get(i..i + 2) != Some(b" [") {
        return None;
    }
    i += 2;
    // The two levels of most lines, then any level word.
    let (level, close) = if b[i..].starts_with(b"DEBUG]") {
        (Level::Debug, i + 5)
    } else if b[i..].starts_with(b"INFO]") {
        (Level::Info, i + 4)
    } else {
        let close = close_bracket(b, i)?;
        // `[` and `]` are ASCII: both ends are char boundaries.
        (Level::from_word(&line[i..close])?, close)
    };
    i = close + 1;
    let mut pid = None;
    if b.get(i) == Some(&b'[') {
        // Usually digits and the `]`.
        let mut j = i + 1;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let close = if b.get(j) == Some(&b']') {
            j
        } else {
            close_bracket(b, j)?
        };
        pid = Some((i + 1, close));
        i = close + 1;
    }
    Some(CalicoPrefix {
        level,
        pid,
        after: i,
    })
}

/// The first `]` at or after `from`. A plain loop: in a header it is a few bytes away, closer
/// than a vector search pays off.
fn close_bracket(b: &[u8], from: usize) -> Option<usize> {
    let mut j = from;
    while j < b.len() {
        if b[j] == b']' {
            return Some(j);
        }
        j += 1;
    }
    None
}

/// The time of a header line (`None` when it has none).
fn header_time(line: &str, dates: &mut DateCache) -> Option<NaiveDateTime> {
    parse_header(strip_wrappers(line), dates).and_then(|h| h.ts)
}

fn parse_header<'a>(line: &'a str, dates: &mut DateCache) -> Option<Header<'a>> {
    let b = line.as_bytes();
    let first = *b.first()?;
    if first.is_ascii_digit() {
        return parse_calico_header(line, dates);
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

fn parse_calico_header<'a>(line: &'a str, dates: &mut DateCache) -> Option<Header<'a>> {
    let prefix = calico_prefix(line, dates)?;
    // The prefix validated the time: this reads it from the cache.
    let ts = parse_datetime_cached(line.as_bytes(), dates).map(|(t, _)| t);
    Some(calico_header(line, prefix, ts))
}

/// The header of a line whose prefix [`calico_prefix`] read, with the time given.
fn calico_header(line: &str, prefix: CalicoPrefix, ts: Option<NaiveDateTime>) -> Header<'_> {
    let rest = calico_rest(line, prefix);
    let mut h = Header {
        format: Format::Calico,
        ts,
        level: prefix.level,
        pid: prefix.pid.and_then(|(a, z)| line[a..z].parse().ok()),
        component: None,
        file: None,
        src_line: None,
        rest,
    };
    // DEBUG and TRACE records are only counted (never kept, never searched), so where they
    // were logged from is not read.
    if h.level <= Level::Debug {
        return h;
    }
    if let Some((path, lineno, msg)) = calico_location(rest) {
        match memchr::memrchr(b'/', path.as_bytes()) {
            Some(slash) => {
                h.component = Some(&path[..slash]);
                h.file = Some(&path[slash + 1..]);
            }
            None => h.file = Some(path),
        }
        h.src_line = lineno.parse().ok();
        h.rest = msg;
    }
    h
}

/// The text after `[level][pid] `.
fn calico_rest(line: &str, prefix: CalicoPrefix) -> &str {
    let rest = &line[prefix.after..];
    rest.strip_prefix(' ').unwrap_or(rest)
}

/// `felix/file.go 123: message` or `file.go <nil>: message` split into path, line and
/// message; `None` when the text does not start with a location.
fn calico_location(rest: &str) -> Option<(&str, &str, &str)> {
    let sp = memchr::memchr(b' ', rest.as_bytes())?;
    let (path, after) = (&rest[..sp], &rest[sp + 1..]);
    let (lineno, msg) = split_colon_space(after)
        .or_else(|| after.split_once('\u{ff1a}'))
        .or_else(|| after.strip_suffix(':').map(|l| (l, "")))?;
    let lineno_ok =
        !lineno.is_empty() && (lineno.bytes().all(|c| c.is_ascii_digit()) || lineno == "<nil>");
    (lineno_ok && !path.is_empty()).then_some((path, lineno, msg))
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

/// `s.split_once(": ")`, by a plain loop: the colon after a source line number is a few
/// bytes in.
fn split_colon_space(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b':' && b[i + 1] == b' ' {
            // `:` is ASCII: both sides are char boundaries.
            return Some((&s[..i], &s[i + 2..]));
        }
        i += 1;
    }
    None
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

    /// Everything a caller can see of a parsed log.
    fn all_visible(log: &Log) -> String {
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

    fn kept_lines(log: &Log) -> Vec<usize> {
        log.records.iter().map(|r| r.line).collect()
    }

    const MIXED: &str = "2023-06-02 10:15:30.100 [info][7] felix/a.go 1: lower-case level\n\
2023-06-02 10:15:30.200 [Debug][7] felix/a.go 2: mixed-case level\n\
2023-06-02 10:15:30.300 [WARN][7] felix/a.go 3: short warning word\n\
  continuation of the warning\n\
2023-06-02_10:15:30.40000 2023-06-02 10:15:30.400 [ERROR][7] a.go 4: behind an svlogd stamp\n\
2023-10-01T12:00:00.123456789Z stdout F 2023-06-02 10:15:30.500 [DEBUG][7] felix/a.go 5: cri\n\
[calico-node-abc calico-node] 2023-06-02 10:15:30.600 [INFO][7] felix/a.go 6: stern\n\
> 2023-06-02 10:15:30.700 [FATAL][7] felix/a.go 7: quoted\n\
time=\"2023-06-02T10:15:31Z\" level=warning msg=\"logrus\"\n\
time=\"2023-06-02T10:15:32Z\" level=\"error\" msg=\"quoted level\"\n\
WARN[0003] cli warning\n\
DEBU[0003] cli debug\n\
E0602 10:15:33.000001       7 klog.go:12] klog error\n\
I0602 10:15:33.000002       7 klog.go:13] klog info\n\
bird: BGP session up\n\
2023-06-02 10:15:34.000 [TRACE][7] felix/a.go 8: trace\n\
2023-06-02 10:15:34 [PANIC][7] felix/a.go 9: no fraction\n\
2023-13-02 10:15:34.000 [INFO][7] felix/a.go 10: no such month\n\
2023-06-02 10:15:35.000 [NOTICE][7] felix/a.go 11: unknown level word\n";

    #[test]
    fn levels_are_counted_once_per_record_in_every_format_case_and_line_ending() {
        let log = parse(MIXED);
        let counts: Vec<(Level, usize)> = Level::ALL.iter().map(|&l| (l, log.count(l))).collect();
        assert_eq!(
            counts,
            vec![
                (Level::Unknown, 0),
                (Level::Trace, 1),
                (Level::Debug, 3),
                (Level::Info, 4),
                (Level::Warning, 3),
                (Level::Error, 3),
                (Level::Fatal, 1),
                (Level::Panic, 1),
            ]
        );
        assert_eq!((log.total, log.lines), (16, 19));
        assert_eq!(kept_lines(&log), vec![3, 5, 8, 9, 10, 11, 13, 17]);
        assert_eq!(log.records[0].end_line, 4);
        assert_eq!(log.records[7].end_line, 19);
        assert_eq!(log.records[1].file.as_deref(), Some("a.go"));
        let error_lines: Vec<usize> = log.errors.iter().map(|e| e.line).collect();
        assert_eq!(error_lines, vec![18, 19]);
        assert_eq!(
            log.first_ts.map(|t| t.to_string()).as_deref(),
            Some("2023-06-02 10:15:30.100")
        );
        assert_eq!(
            log.last_ts.map(|t| t.to_string()).as_deref(),
            Some("2023-06-02 10:15:34")
        );
        let crlf = parse(&MIXED.replace('\n', "\r\n"));
        assert_eq!(all_visible(&crlf), all_visible(&log));
    }

    #[test]
    fn level_words_are_read_in_any_ascii_case_without_guessing() {
        for (w, l) in [
            ("info", Level::Info),
            ("INFO", Level::Info),
            ("Warning", Level::Warning),
            ("warn", Level::Warning),
            ("ERRO", Level::Error),
            ("debu", Level::Debug),
            ("Trace", Level::Trace),
            ("fata", Level::Fatal),
            ("PANIC", Level::Panic),
        ] {
            assert_eq!(Level::from_word(w), Some(l), "{w}");
        }
        for w in ["", "INF", "INFOO", "NOTICE", "ınfo"] {
            assert_eq!(Level::from_word(w), None, "{w}");
        }
    }

    const LIFECYCLE: &str = "leading text before any header\n\
2023-06-02 10:15:30.000 [INFO][7] felix/daemon.go 1: Felix starting up version=\"v3.26.1\"\n\
2023-06-02 10:15:30.100 [DEBUG][7] felix/a.go 1: debug with a tail\n\
  debug tail\n\
2023-06-02 10:15:30.200 [INFO][7] felix/ipsets.go 2: Finished IPSets resync family=\"inet\" numInconsistenciesFound=0\n\
2023-06-02 10:15:30.300 [INFO][7] felix/table.go 3: Finished iptables resync\n\
panic: boom\n\
\n\
goroutine 1 [running]:\n\
2023-06-02 10:15:30.400 [WARNING][7] felix/a.go 4: Failed to add route error=file exists\n\
sync interface cali0: link not found\n\
2023-06-02 10:15:30.500 [INFO][7] felix/a.go 5: Applying dataplane updates\n\
  not an event's tail\n\
2023-06-02 10:15:30.600 [INFO][7] felix/a.go 6: Restarting the resync timer\n\
2023-06-02 10:15:30.700 [INFO][7] felix/daemon.go 7: Datastore now in sync.\n\
2023-06-02 10:15:30.800 [INFO][7] felix/ipsets.go 8: Finished IPSets resync family=\"inet\"\n";

    #[test]
    fn a_routine_info_report_is_kept_only_with_the_continuation_lines_after_it() {
        let log = parse(LIFECYCLE);
        assert_eq!(kept_lines(&log), vec![1, 2, 6, 10, 14, 15]);
        let routine = &log.records[2];
        assert_eq!((routine.line, routine.end_line), (6, 9));
        assert_eq!(
            routine.message,
            "Finished iptables resync\npanic: boom\n\ngoroutine 1 [running]:"
        );
        assert_eq!(log.count(Level::Info), 7);
        assert_eq!(log.versions.len(), 1);
    }

    /// Calico-format DEBUG lines, which are recognised without a full header parse, next to
    /// near misses that are not headers.
    const DEBUG_LINES: &str = "2023-06-02 10:15:30.000 [DEBUG][7] felix/a.go 1: first\n\
2023-06-02 10:15:30.100 [DEBUG][7 felix/a.go 2: pid bracket never closed\n\
2023-06-02 25:15:30.200 [DEBUG][7] felix/a.go 3: no such hour\n\
2023-06-02 10:15:30.300 [DEBUG]\n\
2023-06-02 10:15:30.400 [WARNING][7] felix/a.go 4: a warning\n\
2023-06-02 10:15:31 [DEBUG][7] felix/a.go 5: no fraction\n\
2023-06-02 10:15:31.5 [DEBUG] felix/a.go 6: no pid\n\
  its tail\n";

    #[test]
    fn debug_lines_are_counted_as_a_full_header_parse_would_count_them() {
        let log = parse(DEBUG_LINES);
        assert_eq!(log.count(Level::Debug), 4);
        assert_eq!((log.total, log.lines), (5, 8));
        // The near misses are continuation lines of the first record.
        assert_eq!(kept_lines(&log), vec![5]);
        assert_eq!(
            log.first_ts.map(|t| t.to_string()).as_deref(),
            Some("2023-06-02 10:15:30")
        );
        // The last record is a DEBUG one: its time is the last time.
        assert_eq!(
            log.last_ts.map(|t| t.to_string()).as_deref(),
            Some("2023-06-02 10:15:31.500")
        );
    }

    #[test]
    fn cached_times_are_read_as_a_fresh_parse_reads_them() {
        let mut dates = DateCache::default();
        let mut read = |text: &str| {
            let cached = parse_datetime_cached(text.as_bytes(), &mut dates);
            assert_eq!(cached, parse_datetime(text.as_bytes()), "{text}");
            cached.map(|(t, n)| (t.to_string(), n))
        };
        let at = |t: &str, n: usize| Some((t.to_string(), n));
        assert_eq!(
            read("2023-06-02 10:15:59.9 x"),
            at("2023-06-02 10:15:59.900", 21)
        );
        // Another second of the cached minute, earlier or later.
        assert_eq!(read("2023-06-02 10:15:07 x"), at("2023-06-02 10:15:07", 19));
        assert_eq!(
            read("2023-06-02 10:15:08.000000001"),
            at("2023-06-02 10:15:08.000000001", 29)
        );
        // Seconds that are no seconds, in the cached minute.
        assert_eq!(read("2023-06-02 10:15:60.000"), None);
        assert_eq!(read("2023-06-02 10:15:99"), None);
        assert_eq!(read("2023-06-02 10:15:5x"), None);
        assert_eq!(read("2023-06-02 10:15:+5"), None);
        // The cache still holds the last good time.
        assert_eq!(read("2023-06-02 10:15:08"), at("2023-06-02 10:15:08", 19));
        // Another minute, another day, another separator.
        assert_eq!(read("2023-06-02 10:16:08"), at("2023-06-02 10:16:08", 19));
        assert_eq!(read("2023-06-03 10:16:08"), at("2023-06-03 10:16:08", 19));
        assert_eq!(read("2023-06-03T10:16:09"), at("2023-06-03 10:16:09", 19));
        assert_eq!(read("2023-02-30 10:16:09"), None);
    }

    #[test]
    fn headers_in_one_minute_keep_their_own_seconds() {
        let text = "\
2023-06-02 10:15:59.900 [DEBUG][1] a.go 1: first
2023-06-02 10:15:07.100 [INFO][1] a.go 2: Applying dataplane updates
2023-06-02 10:15:60.000 [DEBUG][1] a.go 3: no such second
2023-06-02 10:15:30.000 [debug][1] a.go 4: lower case
2023-06-02 10:16:00.250 [INFO][1] a.go 5: Applying dataplane updates
";
        let log = parse(text);
        assert_eq!(log.count(Level::Debug), 2);
        assert_eq!(log.count(Level::Info), 2);
        assert_eq!((log.total, log.lines), (4, 5));
        let errors: Vec<usize> = log.errors.iter().map(|e| e.line).collect();
        assert_eq!(errors, [3]);
        assert_eq!(
            log.first_ts.map(|t| t.to_string()).as_deref(),
            Some("2023-06-02 10:15:59.900")
        );
        assert_eq!(
            log.last_ts.map(|t| t.to_string()).as_deref(),
            Some("2023-06-02 10:16:00.250")
        );
    }

    #[test]
    fn a_chunked_parse_equals_the_whole_parse_at_any_two_cuts() {
        for text in [LIFECYCLE, MIXED, DEBUG_LINES] {
            let whole = all_visible(&parse(text));
            let mut starts: Vec<usize> = text.match_indices('\n').map(|(i, _)| i + 1).collect();
            starts.insert(0, 0);
            let line_of = |at: usize| text[..at].matches('\n').count() + 1;
            for (n, &a) in starts.iter().enumerate() {
                for &b in &starts[n..] {
                    let mut merged = parse_chunk(&text[..a], 1);
                    merged.merge(parse_chunk(&text[a..b], line_of(a)));
                    merged.merge(parse_chunk(&text[b..], line_of(b)));
                    assert_eq!(all_visible(&merged), whole, "cuts at {a} and {b}");
                    // The same chunks merged right to left.
                    let mut right = parse_chunk(&text[a..b], line_of(a));
                    right.merge(parse_chunk(&text[b..], line_of(b)));
                    let mut tree = parse_chunk(&text[..a], 1);
                    tree.merge(right);
                    assert_eq!(all_visible(&tree), whole, "tree cuts at {a} and {b}");
                }
            }
        }
    }

    #[test]
    fn periodic_info_lines_are_counted_but_not_kept_while_resync_markers_are() {
        let log = parse(
            "2023-06-02 10:15:30.000 [INFO][7] felix/ipsets.go 306: Finished IPSets resync family=\"inet\" numInconsistenciesFound=0 resyncDuration=3.1ms\n\
2023-06-02 10:15:30.100 [INFO][7] felix/summary.go 100: Summarising 12 dataplane reconciliation loops over 1m2.1s: avg=11ms longest=75ms (resync-filter-v4,resync-ipsets-v4)\n\
2023-06-02 10:15:30.200 [INFO][7] felix/table.go 1262: Invalidating dataplane cache ipVersion=0x4 reason=\"refresh timer\" table=\"filter\"\n\
2023-06-02 10:15:30.300 [INFO][7] felix/int_dataplane.go 1446: Failed to update IP sets. Marking dataplane for resync. error=boom\n\
2023-06-02 10:15:30.400 [INFO][7] felix/ipsets.go 400: Retrying after an ipsets update failure...\n\
2023-06-02 10:15:30.500 [info][7] felix/table.go 900: Detected out-of-sync Calico chain, MARKING FOR RESYNC chainName=\"cali-fw-x\"\n",
        );
        assert_eq!(log.count(Level::Info), 6);
        assert_eq!(kept_lines(&log), vec![4, 5, 6]);
        assert!(
            log.records.iter().all(crate::model::logsig::is_resync),
            "{:?}",
            log.records
        );
        assert_eq!(log.dropped, 0);
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
