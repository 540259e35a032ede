//! sysctl listings: `sysctl -a` (`key = value`), `sysctl -n`-less `key=value`, and the
//! `grep -r . /proc/sys/…` form (`/proc/sys/net/netfilter/nf_conntrack_max:262144`).
//!
//! Keys are stored in sysctl's dotted form. A slash-form name is turned into it the way
//! `sysctl` does: `/` becomes `.` and a `.` inside a path element (an interface such as
//! `eth0.100`) becomes `/`, so `net/ipv4/conf/eth0.100/rp_filter` is
//! `net.ipv4.conf.eth0/100.rp_filter`. [`Sysctl::get`] accepts either form.
//!
//! Lines that are not settings (`sysctl: permission denied on key …`, `sysctl: cannot stat
//! …`) are kept as tool messages, not errors. What a value means is not judged here.

use std::collections::HashMap;

use serde::Serialize;

use super::{ParseError, numbered_lines};

/// One setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub line: usize,
    /// Dotted form (`net.netfilter.nf_conntrack_max`).
    pub key: String,
    /// As printed, trimmed; multi-value settings keep their TABs (`4096\t131072\t6291456`).
    pub value: String,
}

/// Parsed sysctl listing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sysctl {
    pub entries: Vec<Entry>,
    /// `sysctl: …` lines (permission denied, cannot stat, …) with their line.
    pub messages: Vec<(usize, String)>,
    pub errors: Vec<ParseError>,
    #[serde(skip)]
    index: HashMap<String, usize>,
}

impl Sysctl {
    /// Records as the report counts them: settings.
    pub fn records(&self) -> usize {
        self.entries.len()
    }

    /// The setting called `name` (dotted or slash form, with or without `/proc/sys/`). When
    /// a key appears twice, the last one wins, as it would in the kernel.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.index
            .get(&normalise(name))
            .and_then(|&i| self.entries.get(i))
    }

    /// The value of `name`, see [`Sysctl::get`].
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).map(|e| e.value.as_str())
    }
}

/// Dotted form of a sysctl name.
pub fn normalise(name: &str) -> String {
    let name = name.trim();
    let stripped = name
        .strip_prefix("/proc/sys/")
        .or_else(|| name.strip_prefix("proc/sys/"));
    let slash_form = stripped.is_some()
        || name.starts_with('/')
        || name
            .find(['.', '/'])
            .is_some_and(|i| name.as_bytes()[i] == b'/');
    let name = stripped.unwrap_or(name).trim_start_matches('/');
    if !slash_form {
        return name.to_string();
    }
    name.chars()
        .map(|c| match c {
            '/' => '.',
            '.' => '/',
            c => c,
        })
        .collect()
}

pub fn parse(text: &str) -> Sysctl {
    let mut s = Sysctl::default();
    for (no, line) in numbered_lines(text, 1) {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        if t.starts_with("sysctl:") {
            s.messages.push((no, t.to_string()));
            continue;
        }
        let split = if t.starts_with("/proc/sys/") {
            t.split_once(':')
        } else {
            t.split_once('=')
        };
        let Some((key, value)) = split else {
            s.errors.push(ParseError::new(no, "not a sysctl setting"));
            continue;
        };
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            s.errors.push(ParseError::new(no, "not a sysctl setting"));
            continue;
        }
        let key = normalise(key);
        s.index.insert(key.clone(), s.entries.len());
        s.entries.push(Entry {
            line: no,
            key,
            value: value.trim().to_string(),
        });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slash_names_swap_dots_and_slashes_like_sysctl() {
        assert_eq!(
            normalise("/proc/sys/net/ipv4/conf/eth0.100/rp_filter"),
            "net.ipv4.conf.eth0/100.rp_filter"
        );
        assert_eq!(
            normalise("net.ipv4.conf.eth0/100.rp_filter"),
            "net.ipv4.conf.eth0/100.rp_filter"
        );
        assert_eq!(
            normalise("net/netfilter/nf_conntrack_max"),
            "net.netfilter.nf_conntrack_max"
        );
    }
}
