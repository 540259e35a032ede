//! Calico's own semantics, reproduced exactly: the selector language, label inheritance, how
//! v3 resources become the selector strings Felix evaluates, policy order, and the names Felix
//! gives chains and IP sets in each version. Pure functions: nothing here reads a bundle.

pub mod hash;
pub mod labels;
pub mod lint;
pub mod names;
pub mod order;
pub mod render;
pub mod rules;
pub mod selector;
