//! CAL071: Felix failed to update the dataplane (iptables-restore, ipset restore, nft, eBPF
//! attach), by its log, with the restore input line the tool rejected when Felix quoted it.

use std::collections::BTreeMap;

use super::{Check, Finding, Severity, Step};
use crate::model::logsig::{self, FelixLog, UpdateKind};
use crate::model::{Loc, Model};
use crate::parse::felix_log::Record;

pub const CHECK: Check = Check {
    code: "CAL071",
    name: "felix-dataplane-update-failed",
    severity: Severity::Error,
    step: Step::ChainsProgrammed,
    doc: r#"
## What it finds
Records of a node's Felix log saying an update of the dataplane failed, grouped by what
failed: `Failed to execute ip(6)tables-restore command` and `Failed to program iptables`
(iptables / ip6tables), `Failed to complete ipset restore, IP sets may be out-of-sync.`,
`Failed to write to ipset restore`, `Bad return code from 'ipset …'.`, `Failed to resync with
dataplane` and `Failed to update IP sets…` (IP sets), `Failed to run nft transaction` and
`Failed to program nftables` (nftables), `Failed to apply policy to endpoint` (eBPF). When the
record carries the tool's error output and its input, the input line the tool rejected is
quoted (`Error in line 3`, `Error occurred at line: 4`, `line 4 failed`).

## Why it matters
Until an update succeeds the node's chains or IP sets are not what the policies say: a new
pod's address is missing from a set, a changed policy keeps its old rules. Felix retries and,
after repeated failures, panics and restarts. The rejected line usually names the cause: an
IP set or chain that does not exist, a duplicate element, a set at its size limit, or an
iptables backend that does not match the host's.

## Example
`Bad return code from 'ipset restore'.` on node-2 at 14:00:12, stderr `ipset v7.11: Error in
line 3: Element cannot be added to the set: it's already added`, followed by `Failed to resync
with dataplane`.

## How to confirm by hand
`kubectl logs -n calico-system <calico-node pod on the node> -c calico-node | grep -F 'ipset restore'`;
then `ipset list <set>` or `iptables-save | grep -F <chain>` on the node for what the rejected
line names.

## What to do
Fix what the rejected line shows (a missing set or chain, an ipset at `maxelem` — raise
`maxIpsetSize` —, another program holding the xtables lock, a legacy/nft backend mismatch —
set `iptablesBackend` —), then restart calico-node on the node so Felix rebuilds the dataplane
from scratch.
"#,
    run,
};

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    use rayon::prelude::*;
    // Logs are independent: read them on the pool, keep log order.
    let per_log: Vec<Vec<Finding>> = logsig::felix_logs(m)
        .par_iter()
        .map(|fl| {
            let mut by_kind: BTreeMap<UpdateKind, Vec<&Record>> = BTreeMap::new();
            for r in &fl.log.records {
                if let Some(k) = logsig::update_failure(r) {
                    by_kind.entry(k).or_default().push(r);
                }
            }
            by_kind
                .into_iter()
                .map(|(kind, recs)| finding(m, fl, kind, &recs))
                .collect()
        })
        .collect();
    out.extend(per_log.into_iter().flatten());
}

fn finding(m: &Model<'_>, fl: &FelixLog<'_>, kind: UpdateKind, recs: &[&Record]) -> Finding {
    let node = fl.node.unwrap_or("the node");
    let groups = logsig::group(recs.iter().copied());
    let sigs: Vec<String> = groups
        .iter()
        .map(|g| {
            format!(
                "`{}` ×{} (first at {})",
                g.signature.text,
                g.records.len(),
                logsig::when(g.first())
            )
        })
        .collect();
    // The first record that quotes the tool's error, preferring one with a line number.
    let restore = recs
        .iter()
        .filter_map(|r| logsig::restore_error(r).map(|e| (*r, e)))
        .max_by_key(|(r, e)| {
            (
                e.input_line.is_some(),
                e.line.is_some(),
                std::cmp::Reverse(r.line),
            )
        });
    let mut mentions = logsig::Mentions::default();
    for g in &groups {
        let gm = g.mentions();
        mentions.chains.extend(gm.chains);
        mentions.ipsets.extend(gm.ipsets);
        mentions.workloads.extend(gm.workloads);
        mentions.words.extend(gm.words);
    }
    let endpoints = mentions.endpoints(m, fl.node);
    let last = recs[recs.len() - 1];
    let mut message = format!(
        "Felix could not update {} on {node}: {}.",
        kind.what(),
        sigs.join(", ")
    );
    if let Some((r, e)) = &restore {
        let tool = match kind {
            UpdateKind::Ipset => "ipset",
            UpdateKind::Iptables => "iptables-restore",
            UpdateKind::Ip6tables => "ip6tables-restore",
            _ => "The tool",
        };
        message.push_str(&format!(" {tool} said `{}`", e.error));
        match (e.line, &e.input_line) {
            (Some(n), Some(text)) => {
                message.push_str(&format!(" about line {n} of its input: `{text}`"))
            }
            (Some(n), None) => message.push_str(&format!(
                " about line {n} of its input (the record at line {} does not carry the input)",
                r.line
            )),
            _ => {}
        }
        message.push('.');
    }
    let named = super::felix_log_errors::named(m, &mentions, &endpoints);
    if !named.is_empty() {
        message.push_str(&format!(" The failing update names {named}."));
    }
    message.push_str(&format!(
        " The last failure is at {}; until an update succeeds, {} differ from what the policies say.",
        logsig::when(last),
        kind.what()
    ));
    let mut f = Finding::of(
        &CHECK,
        format!(
            "{} failed on {node} ({} record{})",
            kind.title(),
            recs.len(),
            if recs.len() == 1 { "" } else { "s" }
        ),
        message,
    );
    if let Some(n) = fl.node {
        f = f.on_node(n);
    }
    for g in &groups {
        f = f.subject("log-signature", g.signature.text.as_str());
    }
    f = super::felix_log_errors::add_subjects(m, f, &mentions, &endpoints);
    let mut lines: Vec<&Record> = groups.iter().map(|g| g.first()).take(5).collect();
    if let Some((r, _)) = &restore {
        lines.push(r);
    }
    lines.push(last);
    lines.sort_by_key(|r| r.line);
    lines.dedup_by_key(|r| r.line);
    for r in lines {
        f = f.evidence(Loc::new(fl.path(), r.line).evidence(logsig::excerpt(m, fl.path(), r)));
    }
    let needle = groups
        .first()
        .map(|g| g.signature.literal.clone())
        .unwrap_or_default();
    let mut confirm = logsig::logs_command(m, fl.node, &needle);
    match kind {
        UpdateKind::Ipset => match mentions.ipsets.iter().next() {
            Some(s) => confirm.push_str(&format!(
                "; ipset list {}   # on {node}",
                super::shell_quote(s)
            )),
            None => confirm.push_str(&format!(
                "; ipset list -t   # on {node}: each set's header, with its entries and maxelem"
            )),
        },
        UpdateKind::Iptables | UpdateKind::Ip6tables => {
            let save = if kind == UpdateKind::Iptables {
                "iptables-save"
            } else {
                "ip6tables-save"
            };
            if let Some(c) = mentions.chains.iter().next() {
                confirm.push_str(&format!(
                    "; {save} | grep -F -- {}   # on {node}",
                    super::shell_quote(c)
                ));
            }
        }
        _ => {}
    }
    f.confirm(confirm).fix(fix(kind, node))
}

fn fix(kind: UpdateKind, node: &str) -> String {
    let restart = format!(
        "then restart calico-node on {node} so that Felix rebuilds the dataplane from scratch"
    );
    match kind {
        UpdateKind::Ipset => format!(
            "Read ipset's error: a set at maxelem (raise maxIpsetSize in the FelixConfiguration), a set of another type under the same name (delete it: `ipset destroy <set>` when nothing references it), or a kernel lacking the set type; {restart}."
        ),
        UpdateKind::Iptables | UpdateKind::Ip6tables => format!(
            "Read the rejected line: a jump to a chain or a match on an IP set that does not exist points at an earlier failure (see the IP set finding); `Another app is currently holding the xtables lock` means kube-proxy or firewalld contend for the lock; rules in both iptables-legacy-save and iptables-nft-save mean a backend mismatch (set iptablesBackend); {restart}."
        ),
        UpdateKind::Nftables => format!(
            "Read the nft error in the record (unsupported expression on this kernel or nft version, a set or chain that does not exist); check `nft --version` and the kernel against Calico's requirements; {restart}."
        ),
        UpdateKind::Bpf => format!(
            "Read the verifier or libbpf lines before the record: a kernel that refuses Calico's eBPF programs (check the kernel version against Calico's eBPF requirements) or a conflicting tc/XDP program on the interface; {restart}."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    // CAL071-iptables-restore-failed: the demo bundle with node-1's felix.log carrying two
    // `Failed to execute ip(6)tables-restore command` records (input and errorOutput fields as
    // table.go logs them) and the `Failed to program iptables, will retry` / `Retrying...` pair.

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

    #[test]
    fn an_iptables_restore_failure_quotes_the_rejected_input_line() {
        let found = findings("CAL071-iptables-restore-failed");
        let f = found
            .iter()
            .find(|f| f.node.as_deref() == Some("node-1"))
            .expect("node-1 finding");
        assert_eq!(f.title, "iptables-restore failed on node-1 (3 records)");
        assert_eq!(f.severity, Severity::Error);
        assert!(
            f.message.contains(
                "about line 3 of its input: `-A cali-tw-cali46b6bee22de -m comment --comment \"cali:7xQDejbYoOtEou0r\" -m mark --mark 0x0/0x20000 --jump cali-pi-_Kd2Zr3dq3V4sO2tkFWX`"
            ),
            "{}",
            f.message
        );
        assert!(f.message.contains("Couldn't load target"), "{}", f.message);
        let has =
            |kind: &str, name: &str| f.subjects.iter().any(|s| s.kind == kind && s.name == name);
        assert!(has(
            "log-signature",
            "Failed to execute ip(6)tables-restore command"
        ));
        assert!(has(
            "log-signature",
            "Failed to program iptables, will retry"
        ));
        assert!(has("chain", "cali-pi-_Kd2Zr3dq3V4sO2tkFWX"));
        assert!(has("chain", "cali-tw-cali46b6bee22de"));
        assert!(has("endpoint", "demo/web"));
        let lines: Vec<usize> = f.evidence.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![5, 6, 7]);
        assert!(
            f.evidence
                .iter()
                .all(|e| e.path == "nodes/node-1/felix.log")
        );
        // The whole restore input is on the line; the excerpt is cut.
        assert!(f.evidence[0].excerpt.ends_with('…'));
        let c = f.confirm.as_deref().unwrap_or("");
        assert!(
            c.contains("grep -F 'Failed to execute ip(6)tables-restore command'"),
            "{c}"
        );
        assert!(
            c.contains("iptables-save | grep -F -- cali-pi-_Kd2Zr3dq3V4sO2tkFWX"),
            "{c}"
        );
    }

    #[test]
    fn an_ipset_failure_without_input_still_names_the_line_ipset_rejected() {
        let found = findings("CAL071-iptables-restore-failed");
        let f = found
            .iter()
            .find(|f| f.node.as_deref() == Some("node-2"))
            .expect("node-2 finding");
        assert_eq!(f.title, "ipset restore failed on node-2 (2 records)");
        assert!(
            f.message.contains(
                "Error in line 3: Element cannot be added to the set: it's already added"
            ),
            "{}",
            f.message
        );
        assert_eq!(
            f.evidence.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![3, 4]
        );
        assert!(
            f.confirm
                .as_deref()
                .is_some_and(|c| c.contains("ipset list -t"))
        );
    }
}
