//! The bundle understood: nodes, endpoints, policies, chains and IP sets cross-referenced.
//! Built once from parsed artifacts, then read-only. (Being written.)

/// The cluster and its nodes as the bundle shows them.
#[derive(Debug, Default)]
pub struct Model {}
