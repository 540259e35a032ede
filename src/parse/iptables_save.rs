//! iptables-save output (with or without -c), IPv4 and IPv6.

use super::ParseError;

/// Parsed `iptables_save` output (being written).
#[derive(Debug, Clone, Default)]
pub struct Dump {
    pub errors: Vec<ParseError>,
}

impl Dump {
    /// Records as the report counts them.
    pub fn records(&self) -> usize {
        0
    }
}

pub fn parse(text: &str) -> Dump {
    let _ = text;
    Dump::default()
}
