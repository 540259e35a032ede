//! The bundle understood: nodes, endpoints, policies, chains and IP sets cross-referenced.
//! Built once from parsed artifacts, then read-only. (Being written.)

use crate::bundle::Bundle;

/// The cluster and its nodes as the bundle shows them.
#[derive(Debug, Default)]
pub struct Model {
    /// Calico version assumed for naming, and why.
    pub calico_version: Option<(String, String)>,
    /// `iptables`, `nftables` or `bpf`, when the bundle tells.
    pub dataplane: Option<String>,
}

impl Model {
    pub fn build(bundle: &Bundle) -> Model {
        let _ = bundle;
        Model::default()
    }
}
