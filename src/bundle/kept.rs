//! Artifact texts kept for evidence: the line a finding points at and the lines around it.
//!
//! A small text is kept as it is. A larger one is kept LZ4-compressed in blocks of whole lines
//! (about 64 KiB each): evidence reads a handful of lines, so only the blocks holding them are
//! ever decompressed (once, then cached), while IP set dumps and resource lists, which are
//! kept whole across every node, cost a fraction of their size. Lines come out exactly as
//! [`parse::numbered_lines`] gives them, compressed or not.
//!
//! This is storage only: it does not decide which texts are kept (`bundle` does).

use std::sync::{Arc, OnceLock};

use crate::parse;

/// Texts longer than this are kept compressed.
pub const PACK_MIN_BYTES: usize = 256 << 10;

/// Uncompressed size of a block, at least (blocks end at the end of a line).
const BLOCK_BYTES: usize = 64 << 10;

/// A kept artifact text.
#[derive(Debug, Clone)]
pub struct KeptText {
    repr: Repr,
}

#[derive(Debug, Clone)]
enum Repr {
    Plain {
        text: Arc<str>,
        /// Where each line starts, built on first use.
        starts: OnceLock<Vec<usize>>,
    },
    Packed {
        blocks: Vec<Block>,
        /// The whole text, decompressed on first use of [`KeptText::as_str`].
        whole: OnceLock<Option<String>>,
    },
}

#[derive(Debug, Clone)]
struct Block {
    /// Number of the block's first line (1-based).
    first_line: usize,
    raw_len: usize,
    packed: Box<[u8]>,
    open: OnceLock<Option<Open>>,
}

#[derive(Debug, Clone)]
struct Open {
    text: String,
    starts: Vec<usize>,
}

impl KeptText {
    /// Keep `text` as it is.
    pub fn plain(text: Arc<str>) -> KeptText {
        KeptText {
            repr: Repr::Plain {
                text,
                starts: OnceLock::new(),
            },
        }
    }

    /// Keep `text`, compressed when it is longer than [`PACK_MIN_BYTES`].
    pub fn new(text: String) -> KeptText {
        if text.len() <= PACK_MIN_BYTES {
            return KeptText::plain(Arc::from(text));
        }
        let b = text.as_bytes();
        let mut blocks = Vec::with_capacity(text.len() / BLOCK_BYTES + 1);
        let (mut start, mut first_line) = (0, 1);
        while start < b.len() {
            // Cut after the first `\n` at or past the block size: every block holds whole
            // lines, so a line is found in exactly one block.
            let end = match b.get(start + BLOCK_BYTES..) {
                Some(rest) => {
                    memchr::memchr(b'\n', rest).map_or(b.len(), |i| start + BLOCK_BYTES + i + 1)
                }
                None => b.len(),
            };
            let raw = &b[start..end];
            blocks.push(Block {
                first_line,
                raw_len: raw.len(),
                packed: lz4_flex::block::compress(raw).into_boxed_slice(),
                open: OnceLock::new(),
            });
            first_line += memchr::memchr_iter(b'\n', raw).count();
            start = end;
        }
        KeptText {
            repr: Repr::Packed {
                blocks,
                whole: OnceLock::new(),
            },
        }
    }

    /// Bytes held in memory for it now (compressed blocks, and what was decompressed).
    #[cfg(test)]
    fn held_bytes(&self) -> usize {
        match &self.repr {
            Repr::Plain { text, .. } => text.len(),
            Repr::Packed { blocks, whole, .. } => {
                blocks
                    .iter()
                    .map(|b| {
                        b.packed.len()
                            + b.open
                                .get()
                                .and_then(Option::as_ref)
                                .map_or(0, |o| o.text.len())
                    })
                    .sum::<usize>()
                    + whole.get().and_then(Option::as_ref).map_or(0, String::len)
            }
        }
    }

    /// Line `n` (1-based), without its line ending, as [`parse::numbered_lines`] gives it.
    pub fn line(&self, n: usize) -> Option<&str> {
        match &self.repr {
            Repr::Plain { text, starts } => {
                let starts = starts.get_or_init(|| parse::line_starts(text));
                parse::line_at(text, starts, n)
            }
            Repr::Packed { blocks, .. } => {
                let i = blocks
                    .partition_point(|b| b.first_line <= n)
                    .checked_sub(1)?;
                let block = &blocks[i];
                let open = block.open.get_or_init(|| block.unpack()).as_ref()?;
                parse::line_at(&open.text, &open.starts, n - block.first_line + 1)
            }
        }
    }

    /// The whole text (a compressed one is decompressed, once).
    pub fn as_str(&self) -> Option<&str> {
        match &self.repr {
            Repr::Plain { text, .. } => Some(text),
            Repr::Packed { blocks, whole, .. } => whole
                .get_or_init(|| {
                    let mut out = String::new();
                    for b in blocks {
                        out.push_str(&b.unpack()?.text);
                    }
                    Some(out)
                })
                .as_deref(),
        }
    }
}

impl Block {
    /// The block's text and line starts. `None` cannot happen for blocks this module wrote
    /// (valid UTF-8 cut at line ends); it is handled rather than assumed.
    fn unpack(&self) -> Option<Open> {
        let raw = lz4_flex::block::decompress(&self.packed, self.raw_len).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let starts = parse::line_starts(&text);
        Some(Open { text, starts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(text: &str) -> Vec<(usize, &str)> {
        parse::numbered_lines(text, 1).collect()
    }

    fn all_lines(k: &KeptText) -> Vec<(usize, &str)> {
        (1..).map_while(|n| k.line(n).map(|l| (n, l))).collect()
    }

    #[test]
    fn a_compressed_text_gives_every_line_as_numbered_lines_does() {
        // Long enough for several blocks, with CRLF endings, blank lines, non-ASCII text and
        // no newline at the very end.
        let mut text = String::new();
        for i in 0..40_000 {
            match i % 7 {
                0 => text.push_str(&format!(
                    "add cali40s:abc 10.0.{}.{}\n",
                    i / 256 % 256,
                    i % 256
                )),
                1 => text.push_str("\r\n"),
                2 => text.push_str(&format!("labels: {{app: \"é{i}\"}}\r\n")),
                _ => text.push_str(&format!("line {i} {}\n", "x".repeat(i % 50))),
            }
        }
        text.push_str("last line\r");
        let kept = KeptText::new(text.clone());
        assert!(matches!(kept.repr, Repr::Packed { .. }));
        assert!(kept.held_bytes() < text.len() / 2, "{}", kept.held_bytes());
        assert_eq!(all_lines(&kept), expected(&text));
        assert_eq!(kept.line(0), None);
        assert_eq!(kept.as_str(), Some(text.as_str()));
    }

    #[test]
    fn a_small_text_is_kept_as_it_is() {
        let text = "one\r\ntwo\n\nfour";
        let kept = KeptText::new(text.to_string());
        assert!(matches!(kept.repr, Repr::Plain { .. }));
        assert_eq!(all_lines(&kept), expected(text));
    }

    #[test]
    fn one_huge_line_is_one_block() {
        let text = format!("{}\nshort\n", "y".repeat(PACK_MIN_BYTES * 2));
        let kept = KeptText::new(text.clone());
        assert_eq!(all_lines(&kept), expected(&text));
    }
}
