//! CAL070: WARNING, ERROR, FATAL and PANIC records of a Felix log, grouped by signature.
//! Dataplane update failures are left to CAL071, which says more about them.

use super::{Check, Finding, Severity, Step};
use crate::model::Model;
use crate::model::logsig::{self, FelixLog, Group};
use crate::parse::felix_log::Level;

pub const CHECK: Check = Check {
    code: "CAL070",
    name: "felix-log-errors",
    severity: Severity::Warning,
    step: Step::PacketPath,
    doc: r#"
## What it finds
The WARNING, ERROR, FATAL and PANIC records of each node's Felix (calico-node) log, grouped
by signature: the message with numbers, addresses, hex, quoted values, interface, chain and
IP set names normalised away, so that a message repeated ten thousand times is one finding
with its count, first and last time and line. The chains, IP sets and endpoints the records
name become the finding's subjects. PANIC and FATAL records are errors. Failures to update
the dataplane (iptables-restore, ipset restore, nft, eBPF attach) are reported by CAL071
instead, with the restore input line.

## Why it matters
Felix logs what it could not do; a policy that "does nothing" often has its explanation a few
lines away in the log of the node the pod runs on. Grouping makes the one unusual message
visible among the repeats.

## Example
`iptables-legacy-save command failed` ×1 on node-1 at 14:01:40 (line 5): Felix could not read
the filter table back.

## How to confirm by hand
`kubectl logs -n calico-system <calico-node pod on the node> -c calico-node | grep -F '<message>'`.

## What to do
Read the records around the line given. Repeated warnings about reading iptables usually mean
the host and Felix use different iptables backends (set `iptablesBackend`); lost datastore
connections point at Typha or the API server; a PANIC or FATAL record is followed by a
restart (see CAL072).
"#,
    run,
};

/// Signatures listed per log before the rest are summed up in one finding.
const LISTED: usize = 30;

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    use rayon::prelude::*;
    // Logs are independent: group them on the pool, keep log order.
    let per_log: Vec<Vec<Finding>> = logsig::felix_logs(m)
        .par_iter()
        .map(|fl| {
            let mut out = Vec::new();
            log_findings(m, fl, &mut out);
            out
        })
        .collect();
    out.extend(per_log.into_iter().flatten());
}

fn log_findings(m: &Model<'_>, fl: &FelixLog<'_>, out: &mut Vec<Finding>) {
    {
        let records = &fl.log.records;
        // Felix's `Retrying...` right after a failed update belongs to that failure (CAL071).
        let recs = records.iter().enumerate().filter(|(i, r)| {
            r.level >= Level::Warning
                && logsig::update_failure(r).is_none()
                && !(r.message.starts_with("Retrying...")
                    && i.checked_sub(1)
                        .and_then(|p| records.get(p))
                        .is_some_and(|p| logsig::update_failure(p).is_some()))
        });
        let recs = recs.map(|(_, r)| r);
        let mut groups = logsig::group(recs);
        // Worst first, then the most frequent, then file order.
        groups.sort_by(|a, b| {
            (b.max_level(), b.records.len(), a.first().line).cmp(&(
                a.max_level(),
                a.records.len(),
                b.first().line,
            ))
        });
        for g in groups.iter().take(LISTED) {
            out.push(finding(m, fl, g));
        }
        if groups.len() > LISTED {
            out.push(rest(m, fl, &groups[LISTED..]));
        }
    }
}

fn where_(fl: &FelixLog<'_>) -> String {
    fl.node
        .map(str::to_string)
        .unwrap_or_else(|| fl.path().to_string())
}

fn finding(m: &Model<'_>, fl: &FelixLog<'_>, g: &Group<'_>) -> Finding {
    let first = g.first();
    let last = g.last();
    let n = g.records.len();
    let level = logsig::level_name(g.max_level());
    let sig = &g.signature.text;
    let mentions = g.mentions();
    let endpoints = mentions.endpoints(m, fl.node);
    let fields: Vec<String> = first
        .fields
        .iter()
        .filter(|(k, _)| !["input", "tx", "output", "config"].contains(&k.as_str()))
        .take(4)
        .map(|(k, v)| {
            let v = v.lines().next().unwrap_or("");
            let short = logsig::cut(v, 120);
            format!(
                "{k}={short}{}",
                if short.len() < v.len() { "…" } else { "" }
            )
        })
        .collect();
    let mut message = format!(
        "{} has {n} {level} record{} with the message `{sig}`: the first at {}",
        fl.path(),
        if n == 1 { "" } else { "s" },
        logsig::when(first),
    );
    if n > 1 {
        message.push_str(&format!(", the last at {}", logsig::when(last)));
    }
    message.push('.');
    if !fields.is_empty() {
        message.push_str(&format!(" First record's fields: {}.", fields.join(", ")));
    }
    let named = named(m, &mentions, &endpoints);
    if !named.is_empty() {
        message.push_str(&format!(" It names {named}."));
    }
    let mut f = Finding::of(
        &CHECK,
        format!("{}: Felix logged \"{sig}\" {n}× ({level})", where_(fl)),
        message,
    )
    .severity(if g.max_level() >= Level::Fatal {
        Severity::Error
    } else {
        Severity::Warning
    })
    .subject("log-signature", sig.as_str());
    if let Some(node) = fl.node {
        f = f.on_node(node);
    }
    f = add_subjects(m, f, &mentions, &endpoints);
    f = f.evidence(
        crate::model::Loc::new(fl.path(), first.line).evidence(logsig::excerpt(
            m,
            fl.path(),
            first,
        )),
    );
    if last.line != first.line {
        f = f.evidence(
            crate::model::Loc::new(fl.path(), last.line).evidence(logsig::excerpt(
                m,
                fl.path(),
                last,
            )),
        );
    }
    f.confirm(logsig::logs_command(m, fl.node, &g.signature.literal))
        .fix(hint(fl, g))
}

/// The chains, IP sets and endpoints a group names, for the message.
pub(crate) fn named(m: &Model<'_>, mentions: &logsig::Mentions, endpoints: &[usize]) -> String {
    let list = |kind: &str, items: Vec<String>| {
        let more = items.len().saturating_sub(5);
        let shown: Vec<String> = items.into_iter().take(5).collect();
        if shown.is_empty() {
            None
        } else if more > 0 {
            Some(format!("{kind} {} and {more} more", shown.join(", ")))
        } else {
            Some(format!("{kind} {}", shown.join(", ")))
        }
    };
    [
        list("chain(s)", mentions.chains.iter().cloned().collect()),
        list("IP set(s)", mentions.ipsets.iter().cloned().collect()),
        list(
            "endpoint(s)",
            endpoints
                .iter()
                .map(|&i| m.endpoints[i].key.clone())
                .collect(),
        ),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("; ")
}

/// Chains, IP sets and endpoints as subjects (a few of each).
pub(crate) fn add_subjects(
    m: &Model<'_>,
    mut f: Finding,
    mentions: &logsig::Mentions,
    endpoints: &[usize],
) -> Finding {
    for c in mentions.chains.iter().take(5) {
        f = f.subject("chain", c.as_str());
    }
    for s in mentions.ipsets.iter().take(5) {
        f = f.subject("ipset", s.as_str());
    }
    for &e in endpoints.iter().take(5) {
        f = f.subject("endpoint", m.endpoints[e].key.as_str());
    }
    f
}

fn hint(fl: &FelixLog<'_>, g: &Group<'_>) -> String {
    let lower = g.first().message.to_ascii_lowercase();
    let node = fl.node.unwrap_or("the node");
    if lower.contains("-save command failed")
        || lower.contains("incompatible nft rules")
        || lower.contains("iptables save failed")
    {
        return format!(
            "Felix could not read {node}'s iptables back. Compare `iptables-legacy-save | wc -l` with `iptables-nft-save | wc -l` on {node}: rules in both mean two backends are in use; set iptablesBackend (FELIX_IPTABLESBACKEND) to the one the host's kube-proxy uses."
        );
    }
    if lower.contains("datastore became unready")
        || lower.contains("connection refused")
        || lower.contains("unauthorized")
        || lower.contains("forbidden")
        || lower.contains("typha")
    {
        return format!(
            "Felix lost its datastore: check calico-typha and the API server from {node}, and the calico-node service account's RBAC."
        );
    }
    if g.max_level() >= Level::Fatal {
        return format!(
            "Felix died here and was restarted (CAL072 lists restarts): read the stack trace or reason after line {} and look the message up in projectcalico/calico issues for this version.",
            g.first().line
        );
    }
    format!(
        "Read the records around line {} of {}; if the message keeps repeating, look it up in projectcalico/calico issues for this Calico version; restarting calico-node on {node} resets Felix's dataplane state.",
        g.first().line,
        fl.path()
    )
}

fn rest(m: &Model<'_>, fl: &FelixLog<'_>, groups: &[Group<'_>]) -> Finding {
    let total: usize = groups.iter().map(|g| g.records.len()).sum();
    let listed: Vec<String> = groups
        .iter()
        .take(10)
        .map(|g| format!("`{}` ×{}", g.signature.text, g.records.len()))
        .collect();
    let worst = groups
        .iter()
        .map(|g| g.max_level())
        .max()
        .unwrap_or(Level::Warning);
    let first = groups[0].first();
    let mut f = Finding::of(
        &CHECK,
        format!(
            "{}: {} more warning signatures in the Felix log",
            where_(fl),
            groups.len()
        ),
        format!(
            "{} also has {total} records of {} other signatures: {}{}.",
            fl.path(),
            groups.len(),
            listed.join(", "),
            if groups.len() > 10 { ", …" } else { "" }
        ),
    )
    .severity(if worst >= Level::Fatal {
        Severity::Error
    } else {
        Severity::Warning
    })
    .subject("log-signature", "(other signatures)")
    .evidence(
        crate::model::Loc::new(fl.path(), first.line)
            .evidence(logsig::excerpt(m, fl.path(), first)),
    )
    .confirm(format!(
        "{} | grep -E '\\[(WARNING|ERROR|FATAL|PANIC)\\]'",
        logsig::logs_source(m, fl.node)
    ))
    .fix("Read the listed messages in the log; the findings above cover the most frequent and most severe ones.");
    if let Some(node) = fl.node {
        f = f.on_node(node);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    // CAL070-repeated-warnings: the demo bundle with node-1's felix.log extended by three
    // `Detected out-of-sync Calico chain` warnings (table.go) and a datastore-unready exit
    // (daemon.go), in Felix's log format and wording (v3.30 sources).

    fn findings(case: &str) -> Vec<Finding> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/checks")
            .join(case);
        crate::analyze(&dir)
            .expect("fixture opens")
            .findings
            .into_iter()
            .filter(|f| f.code == CHECK.code)
            .collect()
    }

    fn with_signature<'a>(found: &'a [Finding], sig: &str) -> &'a Finding {
        found
            .iter()
            .find(|f| {
                f.subjects
                    .iter()
                    .any(|s| s.kind == "log-signature" && s.name == sig)
            })
            .unwrap_or_else(|| panic!("no finding for {sig:?} in {found:#?}"))
    }

    #[test]
    fn repeated_warnings_are_one_finding_with_count_first_and_last_line() {
        let found = findings("CAL070-repeated-warnings");
        let f = with_signature(
            &found,
            "Detected out-of-sync Calico chain, marking for resync",
        );
        assert_eq!(f.node.as_deref(), Some("node-1"));
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.title.contains("3×"), "{}", f.title);
        assert_eq!(f.evidence.len(), 2);
        assert_eq!(f.evidence[0].path, "nodes/node-1/felix.log");
        assert_eq!(f.evidence[0].line, 5);
        assert!(
            f.evidence[0]
                .excerpt
                .contains("chainName=\"cali-tw-cali46b6bee22de\"")
        );
        assert_eq!(f.evidence[1].line, 7);
        assert!(f.message.contains("line 5") && f.message.contains("line 7"));
    }

    #[test]
    fn the_chains_and_endpoints_a_record_names_become_subjects() {
        let found = findings("CAL070-repeated-warnings");
        let f = with_signature(
            &found,
            "Detected out-of-sync Calico chain, marking for resync",
        );
        let has =
            |kind: &str, name: &str| f.subjects.iter().any(|s| s.kind == kind && s.name == name);
        assert!(has("chain", "cali-tw-cali46b6bee22de"));
        assert!(has("chain", "cali-fw-cali46b6bee22de"));
        assert!(has("chain", "cali-tw-cali0e8ee4fc632"));
        assert!(has("endpoint", "demo/web"));
        assert!(has("endpoint", "demo/client"));
        assert!(!has("endpoint", "demo/backend"));
    }

    #[test]
    fn fatal_records_are_errors_and_the_confirm_command_greps_the_message() {
        let found = findings("CAL070-repeated-warnings");
        let f = with_signature(&found, "Exiting.");
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(f.evidence[0].line, 13);
        assert!(
            f.message.contains("reason=datastore became unready"),
            "{}",
            f.message
        );
        let c = f.confirm.as_deref().unwrap_or("");
        assert!(c.starts_with("kubectl logs -n calico-system $(kubectl get pods -n calico-system -l k8s-app=calico-node --field-selector spec.nodeName=node-1 -o name) -c calico-node"), "{c}");
        assert!(c.ends_with("| grep -F Exiting."), "{c}");
    }

    #[test]
    fn dataplane_update_failures_and_their_retries_are_left_to_cal071() {
        let found = findings("CAL071-iptables-restore-failed");
        assert!(
            found.iter().all(|f| f.node.as_deref() != Some("node-1")),
            "{found:#?}"
        );
        // The demo's ipset failure on node-2 is CAL071's too.
        assert!(found.iter().all(|f| f.node.as_deref() != Some("node-2")));
    }
}
