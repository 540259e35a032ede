//! conntrack -L output and conntrack -S statistics.

use super::ParseError;

/// Parsed `conntrack` output (being written).
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub errors: Vec<ParseError>,
}

impl Table {
    /// Records as the report counts them.
    pub fn records(&self) -> usize {
        0
    }
}

pub fn parse(text: &str) -> Table {
    let _ = text;
    Table::default()
}
