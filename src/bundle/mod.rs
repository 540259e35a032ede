//! The only module that does IO. It opens a bundle the way customers send it (a directory, a
//! `.tar`, a `.tar.gz`/`.tgz`, or a single file), streams the entries once without extracting
//! anything to disk, recognises each artifact's kind (manifest first, then content), hands each
//! entry to a parser on the rayon pool while the archive keeps streaming, and attributes every
//! artifact to its node.
//!
//! A bundle is untrusted: entries are never written anywhere, paths are only labels, links and
//! devices are skipped, and the amount read is bounded (see [`Limits`]). A damaged archive
//! yields what could be read plus a note saying where it broke.

pub mod detect;
pub mod kept;
pub mod kind;
pub mod manifest;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read};
use std::path::Path;
use std::sync::{Condvar, Mutex};

use serde::Serialize;

use crate::parse::{self, ParseError, Parsed};
pub use kept::KeptText;
pub use kind::ArtifactKind;
pub use manifest::Manifest;

/// How a bundle is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// Our own collector's layout, with `manifest.json` (`calico-bundle/1`).
    CalicoBundle,
    /// `calicoctl node diags`: everything under `diagnostics/`, files without extensions.
    CalicoctlNodeDiags,
    /// `calicoctl cluster diags`: `cluster/…` and `nodes/<node>/…`.
    CalicoctlClusterDiags,
    /// Files with no known layout around them.
    Loose,
}

impl Layout {
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::CalicoBundle => "calico-bundle",
            Layout::CalicoctlNodeDiags => "calicoctl-node-diags",
            Layout::CalicoctlClusterDiags => "calicoctl-cluster-diags",
            Layout::Loose => "loose",
        }
    }
}

/// Bounds on what is read from an untrusted bundle.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Entries read from one archive; the rest are skipped with a note.
    pub max_entries: usize,
    /// Bytes decompressed in all (an archive bomb stops here).
    pub max_total_bytes: u64,
    /// Bytes of one entry analysed; the rest is skipped and the artifact marked truncated.
    pub max_entry_bytes: u64,
    /// Bytes of entries read but not yet parsed: the archive waits for the parsers here.
    pub max_in_flight_bytes: u64,
    /// Logs and conntrack tables bigger than this are parsed in chunks of about this size.
    pub chunk_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 200_000,
            max_total_bytes: 64 << 30,
            max_entry_bytes: 4 << 30,
            max_in_flight_bytes: 48 << 20,
            chunk_bytes: 16 << 20,
        }
    }
}

/// Why a bundle could not be opened at all. Anything less is a note in [`Bundle::notes`].
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path}: {message}")]
    Unsupported { path: String, message: String },
}

/// One file of the bundle, parsed.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// Path inside the bundle, relative to its root directory.
    pub path: String,
    pub kind: ArtifactKind,
    pub node: Option<String>,
    /// Size of the file in the bundle.
    pub bytes: u64,
    pub parsed: Parsed,
    /// Problems with the file itself (not valid UTF-8, cut at a limit, unreadable).
    pub notes: Vec<ParseError>,
    /// The text itself, kept for small artifacts so reports can show the lines around a piece
    /// of evidence ([`KEEP_TEXT_BYTES`]); big logs and conntrack tables are not kept.
    pub text: Option<KeptText>,
}

/// Artifacts up to this size keep their text for evidence context.
pub const KEEP_TEXT_BYTES: usize = 8 << 20;

/// Logs and conntrack tables keep their text only up to this size: their evidence lines are
/// one entry each, quoted from the parsed records, and across many nodes their texts would
/// be most of the memory.
pub const KEEP_STREAM_TEXT_BYTES: usize = 1 << 20;

impl Artifact {
    /// Line `n` (1-based) of the kept text, without its line ending (as
    /// [`parse::numbered_lines`] gives it). `None` when the text was not kept or is shorter.
    pub fn line(&self, n: usize) -> Option<&str> {
        self.text.as_ref()?.line(n)
    }

    /// Lines `first..=last` (1-based, clipped to the kept text) with their numbers.
    pub fn lines(&self, first: usize, last: usize) -> impl Iterator<Item = (usize, &str)> {
        (first.max(1)..=last).map_while(move |n| self.line(n).map(|l| (n, l)))
    }

    /// Every problem met while reading and parsing this artifact, by line.
    pub fn errors(&self) -> Vec<ParseError> {
        let mut all: Vec<ParseError> = self.notes.clone();
        all.extend_from_slice(self.parsed.errors());
        all.sort_by_key(|e| e.line);
        all
    }
}

/// A support bundle, opened and parsed.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// What the user named (file or directory), as given.
    pub source: String,
    pub layout: Layout,
    pub manifest: Option<Manifest>,
    /// Node names, sorted.
    pub nodes: Vec<String>,
    /// Artifacts sorted by path (deterministic whatever the parse order).
    pub artifacts: Vec<Artifact>,
    /// Problems with the bundle as a whole (skipped entries, a damaged archive, limits hit).
    pub notes: Vec<String>,
}

impl Bundle {
    /// Open and parse a bundle with the default [`Limits`].
    pub fn open(path: &Path) -> Result<Bundle, OpenError> {
        Bundle::open_with(path, Limits::default())
    }

    pub fn open_with(path: &Path, limits: Limits) -> Result<Bundle, OpenError> {
        let source = path.display().to_string();
        let io_err = |source: io::Error| OpenError::Io {
            path: path.display().to_string(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io_err)?;
        let gate = Gate::new(limits.max_in_flight_bytes);
        let results = Mutex::new(Vec::new());
        let chunk_results = Mutex::new(Vec::new());
        let buffers = ChunkBuffers::default();
        let (manifest, notes, chunked) = rayon::in_place_scope(|scope| {
            let mut sink = Sink {
                limits,
                entries: 0,
                total: 0,
                manifest: None,
                notes: Vec::new(),
                scope,
                gate: &gate,
                results: &results,
                chunk_results: &chunk_results,
                buffers: &buffers,
                chunked: Vec::new(),
            };
            if meta.is_dir() {
                read_dir(path, &mut sink);
            } else {
                let file = File::open(path).map_err(io_err)?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "input".to_string());
                read_file(file, &name, meta.len(), &mut sink).map_err(|message| {
                    OpenError::Unsupported {
                        path: source.clone(),
                        message,
                    }
                })?;
            }
            Ok::<_, OpenError>((sink.manifest, sink.notes, sink.chunked))
        })?;
        let mut parsed = results.into_inner().unwrap_or_else(|p| p.into_inner());
        drop(buffers);
        let mut chunks: Vec<Vec<(usize, Parsed)>> = chunked.iter().map(|_| Vec::new()).collect();
        let mut invalid_utf8 = vec![false; chunked.len()];
        for (id, idx, p, invalid) in chunk_results
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
        {
            if let Some(v) = chunks.get_mut(id) {
                v.push((idx, p));
                invalid_utf8[id] |= invalid;
            }
        }
        for ((mut entry, parts), invalid) in chunked.into_iter().zip(chunks).zip(invalid_utf8) {
            if invalid {
                entry.notes.push(ParseError::new(
                    0,
                    "not valid UTF-8; invalid bytes replaced",
                ));
            }
            parsed.push((
                entry.path.clone(),
                Artifact {
                    path: entry.path,
                    kind: entry.kind,
                    node: None,
                    bytes: entry.bytes,
                    parsed: merge_chunks(parts),
                    notes: entry.notes,
                    text: None,
                },
            ));
        }
        Ok(assemble(source, parsed, manifest, notes))
    }

    /// The text of a small artifact, by its path in the bundle.
    pub fn text_of(&self, path: &str) -> Option<&str> {
        self.artifact(path)?.text.as_ref()?.as_str()
    }

    /// The artifact at this path in the bundle.
    pub fn artifact(&self, path: &str) -> Option<&Artifact> {
        // Sorted by path (see `assemble`); the first of duplicate paths wins.
        let i = self.artifacts.partition_point(|a| a.path.as_str() < path);
        self.artifacts.get(i).filter(|a| a.path == path)
    }

    /// Line `n` (1-based) of a kept artifact text (see [`Artifact::line`]).
    pub fn line(&self, path: &str, n: usize) -> Option<&str> {
        self.artifact(path)?.line(n)
    }

    /// Artifacts of one kind.
    pub fn of_kind(&self, kind: ArtifactKind) -> impl Iterator<Item = &Artifact> {
        self.artifacts.iter().filter(move |a| a.kind == kind)
    }
}

/// Takes entries as they stream in and hands each to a parser on the rayon pool, so the
/// archive keeps streaming while earlier entries are parsed. Memory is bounded by the gate:
/// the reader waits when parsers already hold `max_in_flight_bytes`.
struct Sink<'s, 'scope> {
    limits: Limits,
    entries: usize,
    total: u64,
    manifest: Option<(String, Manifest)>,
    notes: Vec<String>,
    scope: &'s rayon::Scope<'scope>,
    gate: &'scope Gate,
    results: &'scope Mutex<Vec<(String, Artifact)>>,
    /// Per chunk: entry id, chunk index, what it parsed to, whether it held invalid UTF-8.
    chunk_results: &'scope Mutex<Vec<(usize, usize, Parsed, bool)>>,
    buffers: &'scope ChunkBuffers,
    chunked: Vec<ChunkedEntry>,
}

impl<'s, 'scope> Sink<'s, 'scope> {
    /// Whether another entry may be read.
    fn admit(&mut self, path: &str) -> bool {
        if self.entries >= self.limits.max_entries {
            if self.entries == self.limits.max_entries {
                self.notes.push(format!(
                    "more than {} entries: {path} and the rest were not read",
                    self.limits.max_entries
                ));
                self.entries += 1;
            }
            return false;
        }
        if self.total >= self.limits.max_total_bytes {
            self.notes.push(format!(
                "{path}: not read, the bundle already expanded to {} bytes (limit)",
                self.total
            ));
            return false;
        }
        self.entries += 1;
        true
    }

    /// Read one entry's content (bounded) and hand it to a parser. `size` is what the
    /// archive or filesystem says, `None` when unknown (a gzipped single file). Big logs and
    /// conntrack tables are never held whole: they go to [`Sink::add_chunked`].
    fn add(&mut self, path: String, size: Option<u64>, reader: &mut dyn Read) {
        let cap = self
            .limits
            .max_entry_bytes
            .min(self.limits.max_total_bytes.saturating_sub(self.total));
        let mut reader = reader.take(cap);
        // The head decides the kind (unless the manifest does).
        let mut data =
            Vec::with_capacity(size.unwrap_or(0).min(detect::HEAD_BYTES as u64) as usize);
        let mut read_error = None;
        if let Err(e) = (&mut reader)
            .take(detect::HEAD_BYTES as u64)
            .read_to_end(&mut data)
        {
            read_error = Some(format!("read failed after {} bytes: {e}", data.len()));
        }
        let hint = self.manifest.as_ref().and_then(|(root, m)| {
            let rel = path.strip_prefix(root.as_str())?;
            m.kind_for(rel)
        });
        let kind = hint.unwrap_or_else(|| detect::detect(&path, &data));
        if read_error.is_none()
            && is_chunked(kind)
            && size.is_none_or(|s| s > self.limits.chunk_bytes)
        {
            return self.add_chunked(path, size, kind, data, &mut reader);
        }
        let expected = size.unwrap_or(0).min(cap);
        let held = self.gate.hold(expected);
        if read_error.is_none() {
            data.reserve(expected.saturating_sub(data.len() as u64).min(64 << 20) as usize);
            if let Err(e) = reader.read_to_end(&mut data) {
                read_error = Some(format!("read failed after {} bytes: {e}", data.len()));
            }
        }
        let held = held.resize(data.len() as u64);
        self.total += data.len() as u64;
        let bytes = size.unwrap_or(data.len() as u64);
        let truncated = read_error.is_some() || (data.len() as u64) < bytes;
        if let Some(e) = &read_error {
            self.notes.push(format!("{path}: {e}"));
        }
        if path.ends_with("manifest.json")
            && self.manifest.is_none()
            && let Ok(text) = std::str::from_utf8(&data)
            && text.contains("\"calico-bundle/")
        {
            match Manifest::parse(text) {
                Ok(m) => {
                    let root = path.strip_suffix("manifest.json").unwrap_or("").to_string();
                    self.manifest = Some((root, m));
                }
                Err(e) => self.notes.push(e),
            }
        }
        let entry = Entry {
            bytes,
            data,
            truncated,
        };
        let results = self.results;
        self.run(move || {
            let artifact = process(&path, entry, kind);
            drop(held);
            results
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((path, artifact));
        });
    }

    /// Parse a big log or conntrack table in chunks cut at line boundaries, in parallel,
    /// while the archive keeps streaming; the chunks are merged in order at the end.
    fn add_chunked(
        &mut self,
        path: String,
        size: Option<u64>,
        kind: ArtifactKind,
        head: Vec<u8>,
        reader: &mut dyn Read,
    ) {
        let id = self.chunked.len();
        // Chunks are read into recycled buffers (see `ChunkBuffers`): `filled` bytes of
        // `buf` hold data, and what follows the last newline moves to the next buffer.
        let buf_size = (self.limits.chunk_bytes as usize).max(head.len()).max(1);
        let mut buf = self.buffers.take(buf_size);
        buf[..head.len()].copy_from_slice(&head);
        let mut filled = head.len();
        drop(head);
        let mut line = 1usize;
        let mut index = 0usize;
        let mut read = 0u64;
        let mut eof = false;
        let mut read_error = None;
        while !eof || filled > 0 {
            // Fill to a chunk, then cut after its last newline.
            let want = (self.limits.chunk_bytes as usize).max(filled);
            while !eof && filled < want {
                match reader.read(&mut buf[filled..want]) {
                    Ok(0) => eof = true,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        read_error = Some(e.to_string());
                        eof = true;
                    }
                }
            }
            let cut = if eof {
                filled
            } else {
                match memchr::memrchr(b'\n', &buf[..filled]) {
                    Some(i) => i + 1,
                    None => filled,
                }
            };
            if cut == 0 {
                break;
            }
            let mut next = self.buffers.take(buf_size);
            let rest = filled - cut;
            next[..rest].copy_from_slice(&buf[cut..filled]);
            filled = rest;
            let chunk = std::mem::replace(&mut buf, next);
            read += cut as u64;
            let lines = memchr::memchr_iter(b'\n', &chunk[..cut]).count();
            let held = self.gate.hold(cut as u64);
            let first_line = line;
            let chunk_results = self.chunk_results;
            let buffers = self.buffers;
            let idx = index;
            self.run(move || {
                // SIMD validation: the chunks of a gigabyte log are mostly ASCII.
                let (parsed, invalid) = match simdutf8::basic::from_utf8(&chunk[..cut]) {
                    Ok(text) => (parse_chunk(kind, text, first_line), false),
                    Err(_) => {
                        let text = String::from_utf8_lossy(&chunk[..cut]);
                        (parse_chunk(kind, &text, first_line), true)
                    }
                };
                buffers.put(chunk);
                drop(held);
                chunk_results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((id, idx, parsed, invalid));
            });
            line += lines;
            index += 1;
        }
        self.buffers.put(buf);
        self.total += read;
        let bytes = size.unwrap_or(read);
        let mut notes = Vec::new();
        if let Some(e) = &read_error {
            self.notes
                .push(format!("{path}: read failed after {read} bytes: {e}"));
        }
        if read_error.is_some() || read < bytes {
            notes.push(ParseError::new(
                0,
                format!("only the first {read} of {bytes} bytes were read"),
            ));
        }
        self.chunked.push(ChunkedEntry {
            path,
            kind,
            bytes,
            notes,
        });
    }

    /// Run a parse job on the pool, or here when already on it (many bundles analysed at
    /// once), so that no pool thread blocks on the gate.
    fn run(&self, job: impl FnOnce() + Send + 'scope) {
        if rayon::current_thread_index().is_some() {
            job();
        } else {
            self.scope.spawn(move |_| job());
        }
    }
}

/// Buffers that parsed chunks hand back for the next chunk. A fresh 16 MiB buffer costs page
/// faults, and `read_to_end` zeroes the spare room of every buffer it fills; a recycled,
/// already initialised buffer costs neither. Holds at most a few: the gate bounds how many
/// chunks are out at once.
#[derive(Default)]
struct ChunkBuffers(Mutex<Vec<Vec<u8>>>);

impl ChunkBuffers {
    const KEPT: usize = 4;

    /// A buffer of `size` initialised bytes.
    fn take(&self, size: usize) -> Vec<u8> {
        let recycled = self.0.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match recycled {
            Some(mut buf) => {
                buf.resize(size, 0);
                buf
            }
            // Zeroed by the allocator (fresh pages from the system), not written here.
            None => vec![0; size],
        }
    }

    fn put(&self, buf: Vec<u8>) {
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() < Self::KEPT {
            kept.push(buf);
        }
    }
}

/// A big artifact parsed in chunks: what is known of it while its chunks are parsed.
struct ChunkedEntry {
    path: String,
    kind: ArtifactKind,
    bytes: u64,
    notes: Vec<ParseError>,
}

/// Kinds whose parsers read chunks and merge them: logs and conntrack tables can be huge.
fn is_chunked(kind: ArtifactKind) -> bool {
    matches!(
        kind,
        ArtifactKind::FelixLog | ArtifactKind::Conntrack | ArtifactKind::Dmesg
    )
}

fn parse_chunk(kind: ArtifactKind, text: &str, first_line: usize) -> Parsed {
    if !is_chunked(kind) {
        return parse_as(kind, text);
    }
    crate::timing::add_to(kind.as_str(), || {
        parse_chunk_untimed(kind, text, first_line)
    })
}

fn parse_chunk_untimed(kind: ArtifactKind, text: &str, first_line: usize) -> Parsed {
    match kind {
        ArtifactKind::FelixLog => Parsed::FelixLog(parse::felix_log::parse_chunk(text, first_line)),
        ArtifactKind::Conntrack => {
            Parsed::Conntrack(parse::conntrack::parse_chunk(text, first_line))
        }
        ArtifactKind::Dmesg => Parsed::Dmesg(parse::dmesg::parse_chunk(text, first_line)),
        other => parse_as(other, text),
    }
}

/// Merge the chunks of one artifact, in file order.
fn merge_chunks(mut chunks: Vec<(usize, Parsed)>) -> Parsed {
    chunks.sort_by_key(|(i, _)| *i);
    let mut it = chunks.into_iter().map(|(_, p)| p);
    let Some(mut acc) = it.next() else {
        return Parsed::Unknown;
    };
    for later in it {
        match (&mut acc, later) {
            (Parsed::FelixLog(a), Parsed::FelixLog(b)) => a.merge(b),
            (Parsed::Conntrack(a), Parsed::Conntrack(b)) => a.merge(b),
            (Parsed::Dmesg(a), Parsed::Dmesg(b)) => a.merge(b),
            _ => {}
        }
    }
    acc
}

struct Entry {
    bytes: u64,
    data: Vec<u8>,
    truncated: bool,
}

/// Put the parsed artifacts in order, make paths relative to the bundle root, attribute
/// nodes and tell the layout.
fn assemble(
    source: String,
    parsed: Vec<(String, Artifact)>,
    manifest: Option<(String, Manifest)>,
    mut notes: Vec<String>,
) -> Bundle {
    let root = common_root(parsed.iter().map(|(p, _)| p.as_str()), manifest.as_ref());
    let manifest = manifest.map(|(_, m)| m);
    let mut artifacts: Vec<Artifact> = parsed
        .into_iter()
        .map(|(path, mut a)| {
            a.path = path
                .strip_prefix(root.as_str())
                .unwrap_or(&path)
                .to_string();
            if a.kind != ArtifactKind::Manifest
                && let Some(kind) = manifest.as_ref().and_then(|m| m.kind_for(&a.path))
                && kind != a.kind
            {
                a.notes.push(ParseError::new(
                    0,
                    format!(
                        "manifest says {}, content was read as {}",
                        kind.as_str(),
                        a.kind.as_str()
                    ),
                ));
            }
            a
        })
        .collect();
    artifacts.sort_by(|a, b| a.path.cmp(&b.path));
    let layout = layout_of(&artifacts, manifest.as_ref());
    attribute_nodes(&mut artifacts, layout, manifest.as_ref());
    let mut nodes: Vec<String> = artifacts.iter().filter_map(|a| a.node.clone()).collect();
    if let Some(m) = &manifest {
        nodes.extend(m.nodes.iter().cloned());
    }
    nodes.sort();
    nodes.dedup();
    notes.sort();
    Bundle {
        source,
        layout,
        manifest,
        nodes,
        artifacts,
        notes,
    }
}

/// Bounds the bytes held by parsers at once.
struct Gate {
    max: u64,
    held: Mutex<u64>,
    freed: Condvar,
}

struct Held<'a> {
    gate: &'a Gate,
    bytes: u64,
}

impl Gate {
    fn new(max: u64) -> Gate {
        Gate {
            max,
            held: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    fn hold(&self, bytes: u64) -> Held<'_> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        while *held > 0 && *held + bytes > self.max {
            held = self.freed.wait(held).unwrap_or_else(|p| p.into_inner());
        }
        *held += bytes;
        Held { gate: self, bytes }
    }
}

impl Held<'_> {
    /// Hold what was really read rather than what the header announced.
    fn resize(mut self, bytes: u64) -> Self {
        let mut held = self.gate.held.lock().unwrap_or_else(|p| p.into_inner());
        *held = held.saturating_sub(self.bytes) + bytes;
        self.bytes = bytes;
        drop(held);
        self.gate.freed.notify_all();
        self
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut held = self.gate.held.lock().unwrap_or_else(|p| p.into_inner());
        *held = held.saturating_sub(self.bytes);
        self.gate.freed.notify_all();
    }
}

/// Recognise and parse one entry.
fn process(path: &str, e: Entry, kind: ArtifactKind) -> Artifact {
    let Entry {
        bytes,
        data,
        truncated,
    } = e;
    let mut notes = Vec::new();
    if truncated {
        notes.push(ParseError::new(
            0,
            format!("only the first {} of {bytes} bytes were read", data.len()),
        ));
    }
    let text = match String::from_utf8(data) {
        Ok(s) => s,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            notes.push(ParseError::new(
                0,
                format!("not valid UTF-8 after byte {valid}; invalid bytes replaced"),
            ));
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        }
    };
    let keep = text.len()
        <= if is_chunked(kind) {
            KEEP_STREAM_TEXT_BYTES
        } else {
            KEEP_TEXT_BYTES
        };
    let (parsed, text) = match kind {
        // Parsed rules point into the text they were read from: one copy serves both.
        ArtifactKind::IptablesSave | ArtifactKind::Ip6tablesSave | ArtifactKind::IptablesList => {
            crate::timing::add_to(kind.as_str(), || {
                let shared: std::sync::Arc<str> = std::sync::Arc::from(text);
                let dump = parse::iptables_save::parse_shared(&shared);
                (
                    Parsed::Iptables(dump),
                    keep.then(|| KeptText::plain(shared)),
                )
            })
        }
        _ => {
            let parsed = parse_as(kind, &text);
            (parsed, keep.then(|| KeptText::new(text)))
        }
    };
    Artifact {
        path: path.to_string(),
        kind,
        node: None,
        bytes,
        parsed,
        notes,
        text,
    }
}

/// Run the parser for `kind` over `text`.
pub fn parse_as(kind: ArtifactKind, text: &str) -> Parsed {
    crate::timing::add_to(kind.as_str(), || parse_as_untimed(kind, text))
}

fn parse_as_untimed(kind: ArtifactKind, text: &str) -> Parsed {
    match kind {
        ArtifactKind::IptablesSave | ArtifactKind::Ip6tablesSave | ArtifactKind::IptablesList => {
            Parsed::Iptables(parse::iptables_save::parse(text))
        }
        ArtifactKind::IpsetSave | ArtifactKind::IpsetList => {
            Parsed::Ipset(parse::ipset::parse(text))
        }
        ArtifactKind::NftRuleset => Parsed::Nft(parse::nft::parse(text)),
        ArtifactKind::Conntrack => Parsed::Conntrack(parse::conntrack::parse(text)),
        ArtifactKind::ConntrackStats => Parsed::Conntrack(parse::conntrack::Table {
            stats: parse::conntrack::parse_stats(text),
            ..Default::default()
        }),
        ArtifactKind::FelixLog => Parsed::FelixLog(parse::felix_log::parse(text)),
        ArtifactKind::Dmesg => Parsed::Dmesg(parse::dmesg::parse(text)),
        ArtifactKind::CalicoResources | ArtifactKind::K8sResources => {
            Parsed::Resources(parse::resources::parse(text))
        }
        ArtifactKind::Sysctl => Parsed::Sysctl(parse::sysctl::parse(text)),
        ArtifactKind::IpRoute => Parsed::IpRoute(parse::ip::parse_routes(text)),
        ArtifactKind::IpAddr => Parsed::IpAddr(parse::ip::parse_addrs(text)),
        ArtifactKind::BpfJson | ArtifactKind::CalicoBpfDump => Parsed::Bpf(parse::bpf::parse(text)),
        ArtifactKind::Hostname => Parsed::Hostname(text.trim().to_string()),
        ArtifactKind::Manifest => Parsed::Manifest,
        ArtifactKind::Unknown => Parsed::Unknown,
    }
}

/// The directory every entry sits in (`calico-bundle-x-20260101T000000Z/`), so that a
/// tarball and its unpacked folder give the same paths. Empty when there is none.
fn common_root<'a>(
    paths: impl Iterator<Item = &'a str>,
    manifest: Option<&(String, Manifest)>,
) -> String {
    if let Some((root, _)) = manifest {
        return root.clone();
    }
    let mut root: Option<&str> = None;
    for p in paths {
        let Some((first, _)) = p.split_once('/') else {
            return String::new();
        };
        match root {
            None => root = Some(first),
            Some(r) if r == first => {}
            Some(_) => return String::new(),
        }
    }
    root.map(|r| format!("{r}/")).unwrap_or_default()
}

fn layout_of(artifacts: &[Artifact], manifest: Option<&Manifest>) -> Layout {
    if manifest.is_some_and(|m| m.format.starts_with("calico-bundle/")) {
        return Layout::CalicoBundle;
    }
    let has = |f: &dyn Fn(&str) -> bool| artifacts.iter().any(|a| f(&a.path));
    if has(&|p| {
        p.starts_with("diagnostics/") || matches!(p, "ipv4_tables" | "ipv6_tables" | "ipsets")
    }) {
        return Layout::CalicoctlNodeDiags;
    }
    if has(&|p| p.starts_with("cluster/")) && has(&|p| p.starts_with("nodes/")) {
        return Layout::CalicoctlClusterDiags;
    }
    Layout::Loose
}

/// The node each artifact belongs to: `nodes/<node>/…`, the manifest, or a `hostname` file
/// beside it (calicoctl node diags and loose folders).
fn attribute_nodes(artifacts: &mut [Artifact], layout: Layout, manifest: Option<&Manifest>) {
    let mut hostnames: BTreeMap<String, String> = BTreeMap::new();
    for a in artifacts.iter() {
        if let Parsed::Hostname(h) = &a.parsed
            && !h.is_empty()
        {
            hostnames.insert(parent_dir(&a.path).to_string(), h.clone());
        }
    }
    for a in artifacts.iter_mut() {
        a.node = node_from_path(&a.path)
            .or_else(|| {
                manifest
                    .and_then(|m| m.command_for(&a.path))
                    .and_then(|c| c.node.clone())
            })
            .or_else(|| {
                if matches!(
                    a.kind,
                    ArtifactKind::CalicoResources | ArtifactKind::K8sResources
                ) {
                    return None;
                }
                // The nearest hostname file in this directory or above.
                let mut dir = parent_dir(&a.path);
                loop {
                    if let Some(h) = hostnames.get(dir) {
                        return Some(h.clone());
                    }
                    if dir.is_empty() {
                        return None;
                    }
                    dir = parent_dir(dir.trim_end_matches('/'));
                }
            });
        if a.node.is_none() && layout == Layout::CalicoctlNodeDiags && is_node_kind(a.kind) {
            a.node = Some("unknown-node".to_string());
        }
    }
}

fn is_node_kind(kind: ArtifactKind) -> bool {
    !matches!(
        kind,
        ArtifactKind::CalicoResources
            | ArtifactKind::K8sResources
            | ArtifactKind::Manifest
            | ArtifactKind::Unknown
    )
}

/// `a/b/c` → `a/b/`; `c` → ``.
fn parent_dir(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "",
    }
}

fn node_from_path(path: &str) -> Option<String> {
    let mut parts = path.split('/');
    while let Some(p) = parts.next() {
        if p == "nodes" {
            let node = parts.next()?;
            // `nodes/<node>` must be a directory, not the file itself.
            parts.next()?;
            if !node.is_empty() {
                return Some(node.to_string());
            }
        }
    }
    None
}

/// Walk a directory (sorted, links not followed) and read every regular file, the manifest
/// first so that its kinds apply to the rest.
fn read_dir(dir: &Path, sink: &mut Sink) {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                sink.notes
                    .push(format!("cannot read part of the folder: {e}"));
                continue;
            }
        };
        let rel = entry
            .path()
            .strip_prefix(dir)
            .unwrap_or(entry.path())
            .to_string_lossy()
            .replace('\\', "/");
        if entry.file_type().is_symlink() {
            sink.notes
                .push(format!("{rel}: symbolic link, not followed"));
        } else if entry.file_type().is_file() {
            files.push((rel, entry.into_path()));
        }
    }
    // The shallowest manifest.json goes first.
    if let Some(i) = files
        .iter()
        .enumerate()
        .filter(|(_, (rel, _))| rel == "manifest.json" || rel.ends_with("/manifest.json"))
        .min_by_key(|(_, (rel, _))| rel.matches('/').count())
        .map(|(i, _)| i)
    {
        let m = files.remove(i);
        files.insert(0, m);
    }
    for (rel, full) in files {
        if !sink.admit(&rel) {
            continue;
        }
        match File::open(&full) {
            Ok(mut f) => {
                let size = f.metadata().map(|m| m.len()).ok();
                sink.add(rel, size, &mut f);
            }
            Err(e) => sink.notes.push(format!("{rel}: {e}")),
        }
    }
}

/// A file: a (gzipped) tar archive, or a single (gzipped) artifact.
fn read_file(file: File, name: &str, size: u64, sink: &mut Sink) -> Result<(), String> {
    let mut reader: Box<dyn Read> = Box::new(BufReader::with_capacity(1 << 20, file));
    let mut head = peek(&mut reader, 512).map_err(|e| e.to_string())?;
    let mut name = name.to_string();
    let mut gz = false;
    if head.starts_with(&[0x1f, 0x8b]) {
        gz = true;
        let chained = Cursor::new(head).chain(reader);
        reader = Box::new(flate2::read::MultiGzDecoder::new(chained));
        head = peek(&mut reader, 512).map_err(|e| format!("not a readable gzip file: {e}"))?;
        if let Some(stem) = name.strip_suffix(".tgz") {
            name = format!("{stem}.tar");
        } else if let Some(stem) = name.strip_suffix(".gz") {
            name = stem.to_string();
        }
    } else if head.starts_with(b"PK\x03\x04") {
        return Err("zip archives are not supported: unpack it and pass the folder".into());
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Err(
            "xz archives are not supported: unpack it (tar xJf) and pass the folder".into(),
        );
    }
    let mut chained = Cursor::new(head.clone()).chain(reader);
    if is_tar_header(&head) {
        read_tar(chained, sink);
    } else if sink.admit(&name) {
        sink.add(name, (!gz).then_some(size), &mut chained);
    }
    Ok(())
}

/// Read up to `n` bytes without losing them: the caller chains them back in front.
fn peek(reader: &mut Box<dyn Read>, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    reader.take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// A POSIX/GNU tar header: `ustar` magic, or a valid v7 header checksum.
fn is_tar_header(h: &[u8]) -> bool {
    if h.len() < 512 {
        return false;
    }
    if &h[257..262] == b"ustar" {
        return true;
    }
    let stored = std::str::from_utf8(&h[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok());
    let computed: u32 = h[..512]
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    stored == Some(computed) && h[0] != 0
}

fn read_tar(reader: impl Read, sink: &mut Sink) {
    let mut archive = tar::Archive::new(reader);
    let entries = match archive.entries() {
        Ok(e) => e,
        Err(e) => {
            sink.notes.push(format!("not a readable tar archive: {e}"));
            return;
        }
    };
    let mut last = String::from("(start)");
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                sink.notes
                    .push(format!("archive damaged or truncated after {last}: {e}"));
                break;
            }
        };
        let path = clean_path(&String::from_utf8_lossy(&entry.path_bytes()));
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            sink.notes
                .push(format!("{path}: link in archive, not followed"));
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        last = path.clone();
        if !sink.admit(&path) {
            continue;
        }
        let size = entry.header().size().ok();
        sink.add(path, size, &mut entry);
    }
}

/// Archive paths are labels, never written to disk: drop `./` and leading `/`, keep the rest.
fn clean_path(p: &str) -> String {
    p.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_comes_from_the_nodes_directory() {
        assert_eq!(
            node_from_path("nodes/n1/iptables-save.txt").as_deref(),
            Some("n1")
        );
        assert_eq!(
            node_from_path("calico-diagnostics-x/nodes/n2/ipset-list.txt").as_deref(),
            Some("n2")
        );
        assert_eq!(node_from_path("nodes/n1"), None);
        assert_eq!(node_from_path("cluster/k8s/pods.yaml"), None);
    }

    #[test]
    fn archive_paths_lose_dot_segments_and_leading_slashes() {
        assert_eq!(clean_path("./a/./b"), "a/b");
        assert_eq!(clean_path("/etc/passwd"), "etc/passwd");
        assert_eq!(clean_path("../x"), "../x");
    }

    #[test]
    fn common_root_is_the_single_top_directory() {
        let p = ["top/a", "top/b/c"];
        assert_eq!(common_root(p.iter().copied(), None), "top/");
        let q = ["top/a", "b"];
        assert_eq!(common_root(q.iter().copied(), None), "");
    }
}
