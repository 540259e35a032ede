//! calisnap: offline analysis of Calico support bundles.
//!
//! The pipeline: open → parse → model → checks → report.

pub mod bundle;
pub mod calico;
pub mod checks;
pub mod model;
pub mod parse;
pub mod report;
pub mod trace;
