//! The only serialisation: the JSON report of `../shared` contract §3, and (being written)
//! HTML and Markdown renderings of the same view model.

use serde::Serialize;

mod interim;
pub use interim::{render_html, render_json, render_markdown, terminal_summary};

use crate::checks::Finding;
use crate::parse::ParseError;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: Tool,
    pub bundle: BundleInfo,
    pub artifacts: Vec<ArtifactInfo>,
    pub findings: Vec<Finding>,
    pub summary: Summary,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

impl Default for Tool {
    fn default() -> Self {
        Tool {
            name: "calisnap",
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BundleInfo {
    pub source: String,
    pub layout: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collected_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calico_version: Option<String>,
    /// Why that version was assumed (which artifact told it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calico_version_source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataplane: Option<String>,
    pub nodes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArtifactInfo {
    pub path: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub records: usize,
    pub bytes: u64,
    pub errors: Vec<ParseError>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
    pub artifacts: usize,
    pub parse_errors: usize,
}
