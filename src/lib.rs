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
pub mod timing;
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
    /// Flows explained: the ones asked for, then those behind `[UNREPLIED]` conntrack entries.
    pub traces: Vec<trace::Trace>,
    /// Packets the kernel traced (dmesg `TRACE:` lines).
    pub kernel_traces: Vec<trace::kernel::KernelTrace>,
    /// Flows asked for that could not be traced, with why.
    pub trace_errors: Vec<String>,
    /// Debugging-flow steps the bundle could not answer, and why.
    pub steps_not_checked: Vec<report::StepNotChecked>,
    /// The lines around each evidence line of the findings, read from the bundle.
    pub evidence_context: Vec<report::EvidenceContext>,
}

/// What to do beyond the checks.
#[derive(Debug, Clone, Default)]
pub struct AnalyzeOptions {
    /// Flows to explain, as `(from, to[:port])`.
    pub traces: Vec<(String, String)>,
}

/// Lines of context shown either side of each evidence line.
pub const EVIDENCE_CONTEXT_LINES: usize = 3;

/// Flows behind `[UNREPLIED]` conntrack entries traced per report, at most.
pub const MAX_UNREPLIED_TRACES: usize = 5;

/// Open, parse, model and check a bundle.
pub fn analyze(path: &Path) -> Result<Analysis, OpenError> {
    analyze_with(path, &AnalyzeOptions::default())
}

/// [`analyze`], with flows to explain.
pub fn analyze_with(path: &Path, opts: &AnalyzeOptions) -> Result<Analysis, OpenError> {
    let bundle = timing::phase("open", || Bundle::open(path));
    timing::print_totals();
    timing::phase("trim", release_free_memory);
    let bundle = bundle?;
    Ok(analyze_bundle(bundle, opts))
}

/// Model and check an opened bundle.
pub fn analyze_bundle(bundle: Bundle, opts: &AnalyzeOptions) -> Analysis {
    let model = timing::phase("model", || Model::build(&bundle));
    // The node details and kernel traces read only the model: they fill the pool's gaps
    // while the checks run.
    let (findings, (nodes_detail, kernel_traces)) = rayon::join(
        || timing::phase("checks", || checks::run_all(&model)),
        || {
            (
                timing::phase("detail", || report::detail::nodes_detail(&model)),
                timing::phase("kernel traces", || trace::kernel::kernel_traces(&model)),
            )
        },
    );
    let mut traces = Vec::new();
    let mut trace_errors = Vec::new();
    for (from, to) in &opts.traces {
        match trace::trace(&model, &findings, from, to, None, None) {
            Ok(t) => traces.push(t),
            Err(e) => trace_errors.push(format!("--trace {from},{to}: {e}")),
        }
    }
    timing::phase("traces", || {
        traces.extend(unreplied_traces(&model, &findings))
    });
    let steps_not_checked = not_checked(&model);
    let version = model.version.clone();
    let dataplane = model.dataplane;
    // The model is freed first: the evidence context decompresses blocks of kept texts into
    // the memory it held.
    timing::phase("drop model", || drop(model));
    let evidence_context = timing::phase("evidence context", || {
        report::evidence_context(&findings, EVIDENCE_CONTEXT_LINES, |path, n| {
            bundle.line(path, n)
        })
    });
    Analysis {
        bundle,
        findings,
        version,
        dataplane,
        nodes_detail,
        traces,
        kernel_traces,
        trace_errors,
        steps_not_checked,
        evidence_context,
    }
}

/// Which steps the bundle cannot answer: without cluster resources nothing says what Felix
/// should have programmed; without a node's iptables or ipset dump its chains and sets are
/// unseen.
fn not_checked(model: &Model<'_>) -> Vec<report::StepNotChecked> {
    use checks::Step;
    let mut out = Vec::new();
    let push = |out: &mut Vec<report::StepNotChecked>, step, node: Option<&str>, reason: &str| {
        out.push(report::StepNotChecked {
            step,
            node: node.map(str::to_string),
            reason: reason.to_string(),
        })
    };
    if !model.has_cluster_resources() {
        let why = "no Calico or Kubernetes resources in the bundle (see CAL004)";
        for step in [
            Step::PoliciesPresent,
            Step::SelectorsMatch,
            Step::ChainsProgrammed,
            Step::IpsetMembers,
        ] {
            push(&mut out, step, None, why);
        }
        return out;
    }
    if model.dataplane == Some(model::Dataplane::Iptables) || model.dataplane.is_none() {
        for n in &model.nodes {
            if n.iptables.is_none() {
                push(
                    &mut out,
                    Step::ChainsProgrammed,
                    Some(&n.name),
                    "no iptables-save for this node",
                );
                push(
                    &mut out,
                    Step::PacketPath,
                    Some(&n.name),
                    "no iptables-save (counters) for this node",
                );
            }
            if n.ipsets.is_none() {
                push(
                    &mut out,
                    Step::IpsetMembers,
                    Some(&n.name),
                    "no ipset dump for this node",
                );
            }
        }
    } else {
        let why = format!(
            "the {} dataplane: calisnap checks chains and IP sets of the iptables dataplane only",
            model.dataplane.map(|d| d.as_str()).unwrap_or("unknown")
        );
        push(&mut out, Step::ChainsProgrammed, None, &why);
        push(&mut out, Step::IpsetMembers, None, &why);
    }
    out
}

/// Trace the flows behind `[UNREPLIED]` conntrack entries between endpoints of the bundle
/// (the likely drops), a few of them, each distinct flow once.
fn unreplied_traces(model: &Model<'_>, findings: &[Finding]) -> Vec<trace::Trace> {
    use rayon::prelude::*;
    use std::collections::BTreeSet;
    let by_ip = model.endpoints_by_ip();
    let mut seen = BTreeSet::new();
    let mut flows = Vec::new();
    'nodes: for node in &model.nodes {
        for ct in &node.conntrack {
            // Unreplied flow keys (listing and events) by the line each first appears at.
            for g in ct.data.unreplied_all() {
                let e = &g.first;
                if flows.len() >= MAX_UNREPLIED_TRACES {
                    break 'nodes;
                }
                let (Some(s), Some(d)) = (by_ip.get(e.orig.src), by_ip.get(e.orig.dst)) else {
                    continue;
                };
                let dport = g.key.dport;
                if !seen.insert((s, d, e.proto, dport)) {
                    continue;
                }
                flows.push(trace::flow::Flow {
                    src: trace::flow::endpoint_end(model, s, e.orig.src),
                    dst: trace::flow::endpoint_end(model, d, e.orig.dst),
                    protocol: e.proto,
                    dport,
                });
            }
        }
    }
    // The flows are independent: trace them on the pool, in the order chosen.
    flows
        .par_iter()
        .map(|f| trace::trace_flow(model, findings, f, None))
        .collect()
}

impl Analysis {
    /// The report view of this analysis (contract §3 of the JSON report, plus extensions).
    pub fn report(&self) -> report::Report {
        let mut r = self.report_head(self.findings.clone());
        r.nodes_detail = self.nodes_detail.clone();
        r.traces = self.traces.clone();
        r.kernel_traces = self.kernel_traces.clone();
        r.steps_not_checked = self.steps_not_checked.clone();
        r.evidence_context = self.evidence_context.clone();
        r
    }

    /// [`Analysis::report`] without copying (the findings and tables move into the report),
    /// and the bundle it was read from: freeing a big parsed bundle takes a while, and a
    /// caller about to exit need not do it.
    pub fn into_parts(mut self) -> (report::Report, Bundle) {
        let findings = std::mem::take(&mut self.findings);
        let mut r = self.report_head(findings);
        r.nodes_detail = self.nodes_detail;
        r.traces = self.traces;
        r.kernel_traces = self.kernel_traces;
        r.steps_not_checked = self.steps_not_checked;
        r.evidence_context = self.evidence_context;
        (r, self.bundle)
    }

    /// The report's bundle and artifact tables, with `findings`.
    fn report_head(&self, findings: Vec<Finding>) -> report::Report {
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
        Report::new(bundle, artifacts, findings)
    }
}

/// Hand the memory the reader and parsers freed back to the system (glibc keeps it in its
/// heaps otherwise): the phases after reading then grow from what is actually in use.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: malloc_trim only returns free pages of glibc's heaps to the system.
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}
