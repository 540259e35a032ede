//! bpftool JSON and calico-node -bpf dumps.

use super::ParseError;

/// Parsed `bpf` output (being written).
#[derive(Debug, Clone, Default)]
pub struct BpfDump {
    pub errors: Vec<ParseError>,
}

impl BpfDump {
    /// Records as the report counts them.
    pub fn records(&self) -> usize {
        0
    }
}

pub fn parse(text: &str) -> BpfDump {
    let _ = text;
    BpfDump::default()
}
