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
///
/// The same split as `str::lines` (plus that one more `\r`), with line ends found by
/// `memchr`'s vectorised search: splitting lines is a visible part of every parser.
pub fn numbered_lines(text: &str, first_line: usize) -> impl Iterator<Item = (usize, &str)> {
    let mut start = 0;
    let mut ends = memchr::memchr_iter(b'\n', text.as_bytes());
    let mut no = first_line;
    std::iter::from_fn(move || {
        if start >= text.len() {
            return None;
        }
        // Cut after or at a `\n` (ASCII): always on a char boundary.
        let line = match ends.next() {
            Some(nl) => {
                let l = text.get(start..nl).unwrap_or_default();
                start = nl + 1;
                // `str::lines` strips the CR of CRLF, and we one more.
                let l = l.strip_suffix('\r').unwrap_or(l);
                l.strip_suffix('\r').unwrap_or(l)
            }
            None => {
                let l = text.get(start..).unwrap_or_default();
                start = text.len();
                l.strip_suffix('\r').unwrap_or(l)
            }
        };
        no += 1;
        Some((no - 1, line))
    })
}

/// The index of the first byte of `b` at or after `i` that is one of `needles`, or `b.len()`.
/// Eight bytes per step: a byte equal to a needle is a zero byte of `word ^ needle`, flagged
/// with the borrow trick, whose false flags only ever sit above a true zero, so the lowest flag
/// is exact. Tokenizers cut words with it.
#[inline]
pub fn find_any<const N: usize>(b: &[u8], mut i: usize, needles: [u8; N]) -> usize {
    const LO: u64 = u64::from_ne_bytes([0x01; 8]);
    const HI: u64 = u64::from_ne_bytes([0x80; 8]);
    while let Some(chunk) = b.get(i..i + 8) {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(bytes);
        let found = needles.iter().fold(0, |m, &c| {
            let x = w ^ (LO * u64::from(c));
            m | (x.wrapping_sub(LO) & !x & HI)
        });
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(c) = b.get(i) {
        if needles.contains(c) {
            return i;
        }
        i += 1;
    }
    b.len()
}

/// A CIDR, or a bare address as a host network (`10.0.0.5` → `10.0.0.5/32`), surrounding
/// blanks ignored: how addresses are written in IP sets, routes and Calico resources.
pub fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

/// A text with the start of every line indexed: line `n` in constant time, each line as
/// [`numbered_lines`] gives it (without `\n`, `\r\n` or a last `\r`).
pub struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> LineIndex<'a> {
        LineIndex {
            text,
            starts: line_starts(text),
        }
    }

    /// Lines in the text.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Line `n` (1-based).
    pub fn line(&self, n: usize) -> Option<&'a str> {
        line_at(self.text, &self.starts, n)
    }

    /// Lines `first..=last` (1-based, clipped to the text) with their numbers.
    pub fn lines(&self, first: usize, last: usize) -> impl Iterator<Item = (usize, &'a str)> + '_ {
        (first.max(1)..=last.min(self.len())).filter_map(|n| self.line(n).map(|l| (n, l)))
    }
}

/// Byte offsets where the lines of `text` start.
pub fn line_starts(text: &str) -> Vec<usize> {
    let mut starts = Vec::with_capacity(text.len() / 64 + 1);
    if !text.is_empty() {
        starts.push(0);
    }
    starts.extend(
        memchr::memchr_iter(b'\n', text.as_bytes())
            .map(|i| i + 1)
            .filter(|&i| i < text.len()),
    );
    starts
}

/// Line `n` (1-based) of `text` given its [`line_starts`], as [`numbered_lines`] gives it.
pub fn line_at<'a>(text: &'a str, starts: &[usize], n: usize) -> Option<&'a str> {
    let start = *starts.get(n.checked_sub(1)?)?;
    let end = starts.get(n).copied().unwrap_or(text.len());
    let mut l = text.get(start..end)?;
    if let Some(x) = l.strip_suffix('\n') {
        l = x.strip_suffix('\r').unwrap_or(x);
    }
    Some(l.strip_suffix('\r').unwrap_or(l))
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

#[cfg(test)]
mod line_tests {
    use super::{find_any, numbered_lines};

    #[test]
    fn find_any_finds_the_first_needle_at_every_offset_and_length() {
        let text = b"abc def=ghi\t\"jk  lmnopqrstuvwxyz0123456789=end";
        for start in 0..=text.len() {
            for len in start..=text.len() {
                let b = &text[..len];
                let naive = |needles: &[u8]| {
                    (start..b.len())
                        .find(|&i| needles.contains(&b[i]))
                        .unwrap_or(b.len())
                };
                assert_eq!(find_any(b, start, [b' ', b'=']), naive(b" ="));
                assert_eq!(find_any(b, start, [b' ', b'\t', b'"']), naive(b" \t\""));
                assert_eq!(find_any(b, start, [b'=']), naive(b"="));
            }
        }
    }

    #[test]
    fn lines_are_split_as_str_lines_splits_them_less_one_more_carriage_return() {
        for text in [
            "",
            "\n",
            "x",
            "a\r\r\nb\r\n\nc\r",
            "\r\n\r",
            "one\ntwo\n",
            "é\r\n\r\n",
            "last\r\r",
        ] {
            let ours: Vec<(usize, &str)> = numbered_lines(text, 7).collect();
            let std: Vec<(usize, &str)> = text
                .lines()
                .enumerate()
                .map(|(i, l)| (7 + i, l.strip_suffix('\r').unwrap_or(l)))
                .collect();
            assert_eq!(ours, std, "{text:?}");
        }
    }
}
