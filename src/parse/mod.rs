//! One module per tool format. A parser knows its tool's output, not Calico: it turns text
//! into records that keep their 1-based line number, and never fails as a whole. What it
//! cannot read becomes a [`ParseError`] with the line, and parsing goes on with the next line.
//!
//! Parsers borrow the text they are given and never touch the filesystem (only `bundle` does).

use serde::Serialize;

pub mod bpf;
pub mod conntrack;
pub mod dmesg;
pub mod felix_log;
pub mod ip;
pub mod ipset;
pub mod iptables_save;
pub mod nft;
pub mod resources;
pub mod sysctl;
pub mod yaml;

/// A problem met while parsing one line (or one document) of an artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParseError {
    /// 1-based line number in the artifact.
    pub line: usize,
    pub message: String,
}

impl ParseError {
    pub fn new(line: usize, message: impl Into<String>) -> Self {
        ParseError {
            line,
            message: message.into(),
        }
    }
}

/// Iterate the lines of `text` with their 1-based numbers, starting at `first_line`.
/// `\r\n` endings lose their `\r` (captures through `kubectl exec -t` have CRLF).
pub fn numbered_lines(text: &str, first_line: usize) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(move |(i, l)| (first_line + i, l.strip_suffix('\r').unwrap_or(l)))
}
