//! calisnap: offline analysis of Calico support bundles.
//!
//! The pipeline, in the order it runs:
//! [`bundle::Bundle::open`] streams the archive once and parses every artifact in parallel →
//! [`model::Model::build`] cross-references policies, endpoints, chains and IP sets →
//! [`checks::run_all`] turns what is wrong into findings with evidence →
//! [`report`] renders JSON, HTML or Markdown.

pub mod bundle;
pub mod calico;
pub mod checks;
pub mod model;
pub mod parse;
pub mod report;
pub mod trace;

use std::path::Path;

use bundle::{Bundle, OpenError};
use checks::Finding;
use model::Model;

/// A bundle analysed: what was read, what it means, and what is wrong.
pub struct Analysis {
    pub bundle: Bundle,
    pub findings: Vec<Finding>,
    /// The Calico version naming followed, and why.
    pub version: model::VersionInfo,
    pub dataplane: Option<model::Dataplane>,
    /// Per-node tables for the report.
    pub nodes_detail: Vec<report::NodeDetail>,
}

/// Open, parse, model and check a bundle.
pub fn analyze(path: &Path) -> Result<Analysis, OpenError> {
    Ok(analyze_bundle(Bundle::open(path)?))
}

/// Model and check an opened bundle.
pub fn analyze_bundle(bundle: Bundle) -> Analysis {
    let (findings, version, dataplane, nodes_detail) = {
        let model = Model::build(&bundle);
        let findings = checks::run_all(&model);
        let details = report::detail::nodes_detail(&model);
        (findings, model.version.clone(), model.dataplane, details)
    };
    Analysis {
        bundle,
        findings,
        version,
        dataplane,
        nodes_detail,
    }
}

impl Analysis {
    /// The report view of this analysis (contract §3 of the JSON report, plus extensions).
    pub fn report(&self) -> report::Report {
        use report::{ArtifactInfo, BundleInfo, Report};
        let b = &self.bundle;
        let artifacts: Vec<ArtifactInfo> = b
            .artifacts
            .iter()
            .map(|a| ArtifactInfo {
                path: a.path.clone(),
                kind: a.kind.as_str().to_string(),
                node: a.node.clone(),
                records: a.parsed.records(),
                bytes: a.bytes,
                errors: a.errors(),
            })
            .collect();
        let bundle = BundleInfo {
            source: b.source.clone(),
            layout: b.layout.as_str().to_string(),
            collected_at: b.manifest.as_ref().and_then(|m| m.collected_at.clone()),
            calico_version: Some(self.version.text.clone()),
            calico_version_source: Some(self.version.source.clone()),
            dataplane: self.dataplane.map(|d| d.as_str().to_string()),
            nodes: b.nodes.clone(),
        };
        let mut r = Report::new(bundle, artifacts, self.findings.clone());
        r.nodes_detail = self.nodes_detail.clone();
        r.attach_evidence_context(3, |path| b.text_of(path));
        r
    }
}
