//! CAL004: the bundle has no cluster resources, so policy checks cannot run.

use super::{Check, Finding, Severity, Step};
use crate::model::Model;

pub const CHECK: Check = Check {
    code: "CAL004",
    name: "no-cluster-resources",
    severity: Severity::Warning,
    step: Step::Bundle,
    doc: r#"
## What it finds
A bundle with node dumps but no Calico or Kubernetes resources: no policies, workload
endpoints, pods or namespaces.

## Why it matters
Without them calisnap cannot tell what Felix should have programmed: whether a policy's
selector matches a pod, which chains and IP set members are expected. Only the node-level
checks (completeness, counters, conntrack, logs) run.

## Example
A `calicoctl node diags` tarball: it captures the node, never the cluster.

## How to confirm by hand
`calicoctl get networkpolicy -A -o yaml`, `kubectl get pods -A -o yaml`.

## What to do
Add the cluster view: `collector/calico-collect.sh cluster`, or these commands into
`cluster/calico/` and `cluster/k8s/`: `calicoctl get networkpolicies,globalnetworkpolicies,tiers,
workloadendpoints,hostendpoints,profiles,networksets,globalnetworksets,felixconfigurations,
ippools,clusterinformations -A -o yaml` and `kubectl get pods,namespaces,networkpolicies,
serviceaccounts -A -o yaml`.
"#,
    run,
};

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    if m.has_cluster_resources() {
        return;
    }
    out.push(
        Finding::of(
            &CHECK,
            "No cluster resources in the bundle",
            "The bundle has no Calico or Kubernetes resources, so these checks could not run: \
             selector problems, policy applied to endpoints, missing and orphan policy chains, \
             IP set members. Only bundle, counter, conntrack and log checks ran.",
        )
        .subject("artifact", "cluster/")
        .evidence(crate::checks::Evidence {
            path: m.bundle.source.clone(),
            line: 0,
            excerpt: format!(
                "{} artifacts, none of them Calico or Kubernetes resources",
                m.bundle.artifacts.len()
            ),
        })
        .confirm("calicoctl get networkpolicies,globalnetworkpolicies,workloadendpoints -A -o yaml")
        .fix(
            "Collect the cluster view: collector/calico-collect.sh cluster (or `calicoctl get <kinds> -A -o yaml` \
             and `kubectl get pods,namespaces,networkpolicies -A -o yaml` into cluster/).",
        ),
    );
}
