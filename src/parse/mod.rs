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

/// One artifact's parsed content, whatever its format.
#[derive(Debug, Clone)]
pub enum Parsed {
    Iptables(iptables_save::Dump),
    Ipset(ipset::Dump),
    Nft(nft::Ruleset),
    Conntrack(conntrack::Table),
    FelixLog(felix_log::Log),
    Dmesg(dmesg::Dmesg),
    Resources(resources::ResourceSet),
    Sysctl(sysctl::Sysctl),
    IpRoute(ip::Routes),
    IpAddr(ip::Addrs),
    Bpf(bpf::BpfDump),
    /// A `hostname` file: the node name.
    Hostname(String),
    /// `manifest.json` (kept in `Bundle::manifest`).
    Manifest,
    /// Not a supported kind: kept in the inventory, not guessed at.
    Unknown,
}

impl Parsed {
    /// Records as the report counts them: rules, members, entries, log records, objects.
    pub fn records(&self) -> usize {
        match self {
            Parsed::Iptables(d) => d.records(),
            Parsed::Ipset(d) => d.records(),
            Parsed::Nft(d) => d.records(),
            Parsed::Conntrack(d) => d.records(),
            Parsed::FelixLog(d) => d.records(),
            Parsed::Dmesg(d) => d.records(),
            Parsed::Resources(d) => d.records(),
            Parsed::Sysctl(d) => d.records(),
            Parsed::IpRoute(d) => d.records(),
            Parsed::IpAddr(d) => d.records(),
            Parsed::Bpf(d) => d.records(),
            Parsed::Hostname(_) => 1,
            Parsed::Manifest | Parsed::Unknown => 0,
        }
    }

    /// What could not be read, with line numbers.
    pub fn errors(&self) -> &[ParseError] {
        match self {
            Parsed::Iptables(d) => &d.errors,
            Parsed::Ipset(d) => &d.errors,
            Parsed::Nft(d) => &d.errors,
            Parsed::Conntrack(d) => &d.errors,
            Parsed::FelixLog(d) => &d.errors,
            Parsed::Dmesg(d) => &d.errors,
            Parsed::Resources(d) => &d.errors,
            Parsed::Sysctl(d) => &d.errors,
            Parsed::IpRoute(d) => &d.errors,
            Parsed::IpAddr(d) => &d.errors,
            Parsed::Bpf(d) => &d.errors,
            Parsed::Hostname(_) | Parsed::Manifest | Parsed::Unknown => &[],
        }
    }
}
