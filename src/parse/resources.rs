//! Calico and Kubernetes resources from YAML and JSON.

use super::ParseError;

/// Parsed `resources` output (being written).
#[derive(Debug, Clone, Default)]
pub struct ResourceSet {
    pub errors: Vec<ParseError>,
}

impl ResourceSet {
    /// Records as the report counts them.
    pub fn records(&self) -> usize {
        0
    }
}

pub fn parse(text: &str) -> ResourceSet {
    let _ = text;
    ResourceSet::default()
}
