//! CAL072: Felix's lifecycle in its log is not a steady "started, in sync, running": no in-sync
//! line after the last start, restarts and panics, or resyncs in a loop.

use super::{Check, Finding, Severity, Step};
use crate::model::logsig::{self, FelixLog};
use crate::model::{Loc, Model};
use crate::parse::felix_log::Record;

pub const CHECK: Check = Check {
    code: "CAL072",
    name: "felix-not-in-sync",
    severity: Severity::Warning,
    step: Step::ChainsProgrammed,
    doc: r#"
## What it finds
In each node's Felix log:
- a Felix start (`Felix starting up`, or `Successfully loaded configuration.` of a process whose
  start line is not in the log) with no `Datastore now in sync` (or `Datastore in sync, flushing
  the dataplane for the first time...`) after the last start;
- Felix restarting (several starts) or dying (PANIC or FATAL records, Go `panic:` text), with
  the reason logged before each restart;
- the same resync or retry message (`Failed to resync with dataplane`, `Retrying after an
  ipsets update failure...`, `Detected out-of-sync Calico chain, marking for resync`, …) five
  times or more: a resync loop.

## Why it matters
Felix programs policy only for what it has learned from the datastore; before it is in sync,
a node's chains and IP sets reflect an older state (or nothing). A Felix that restarts or keeps
resyncing rewrites the dataplane over and over, and anything that changed in between may be
missing — the symptom is "the policy works on some nodes, sometimes".

## Example
node-2's log has `Felix starting up` at 10:15:30 (line 2), a PANIC `Failed to set up dataplane`
at 10:15:34, another start at 10:15:35, and no in-sync line after it.

## How to confirm by hand
`kubectl logs -n calico-system <calico-node pod> -c calico-node | grep -E 'Felix starting up|in sync|PANIC|FATAL'`;
`kubectl get pods -n calico-system -o wide | grep calico-node` shows the restart count.

## What to do
Read the reason logged before each restart (a PANIC's message, `Exiting. reason=…`); a Felix that
never gets in sync usually cannot reach Typha or the API server (check calico-typha and the
calico-node readiness); a resync loop follows a failure that keeps repeating (see CAL071).
"#,
    run,
};

/// The same resync message this many times is a loop.
pub const LOOP_MIN: usize = 5;

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    use rayon::prelude::*;
    // Logs are independent: read them on the pool, keep log order.
    let per_log: Vec<Vec<Finding>> = logsig::felix_logs(m)
        .par_iter()
        .map(|fl| {
            let mut out = Vec::new();
            not_in_sync(m, fl, &mut out);
            restarts(m, fl, &mut out);
            resync_loops(m, fl, &mut out);
            out
        })
        .collect();
    out.extend(per_log.into_iter().flatten());
}

fn base(fl: &FelixLog<'_>, title: String, message: String) -> Finding {
    let f = Finding::of(&CHECK, title, message);
    match fl.node {
        Some(n) => f.on_node(n),
        None => f,
    }
}

fn ev(m: &Model<'_>, fl: &FelixLog<'_>, r: &Record) -> crate::checks::Evidence {
    Loc::new(fl.path(), r.line).evidence(logsig::excerpt(m, fl.path(), r))
}

fn node_name<'a>(fl: &'a FelixLog<'_>) -> &'a str {
    fl.node.unwrap_or(fl.path())
}

fn not_in_sync(m: &Model<'_>, fl: &FelixLog<'_>, out: &mut Vec<Finding>) {
    let starts = logsig::starts(fl.log);
    // Dropped records could include the in-sync line.
    let Some(last_start) = starts.last().copied() else {
        return;
    };
    if fl.log.dropped > 0 {
        return;
    }
    if fl
        .log
        .records
        .iter()
        .any(|r| r.line > last_start.line && logsig::is_in_sync(r))
    {
        return;
    }
    let span = match (last_start.ts, fl.log.last_ts) {
        (Some(a), Some(b)) if b >= a => {
            format!(
                ", and the log goes on for {}s after it",
                (b - a).num_seconds()
            )
        }
        _ => String::new(),
    };
    let node = node_name(fl);
    let mut f = base(
        fl,
        format!("Felix never reported in sync on {node} after its last start"),
        format!(
            "Felix started at {}{span}, but no `Datastore now in sync` line follows: until Felix is in sync, {node}'s chains and IP sets reflect an older state of the cluster, or none.",
            logsig::when(last_start)
        ),
    )
    .subject("log-signature", logsig::signature(&last_start.message).text)
    .evidence(ev(m, fl, last_start));
    // The log's last line shows how long Felix ran without getting in sync.
    let end = fl.log.lines;
    if end > last_start.line
        && let Some(text) = super::line_text(m, fl.path(), end)
    {
        f = f.evidence(Loc::new(fl.path(), end).evidence(logsig::cut(&text, logsig::MAX_EXCERPT)));
    }
    out.push(
        f.confirm(format!(
            "{} | grep -E 'Felix starting up|in sync'",
            logsig::logs_source(m, fl.node)
        ))
        .fix(format!(
            "Check that calico-node on {node} reaches Typha or the API server (calico-typha pods ready, `kubectl describe pod` of calico-node shows readiness); the records after line {} say what Felix waits for.",
            last_start.line
        )),
    );
}

fn restarts(m: &Model<'_>, fl: &FelixLog<'_>, out: &mut Vec<Finding>) {
    let starts = logsig::starts(fl.log);
    let deaths: Vec<(&Record, String)> = fl
        .log
        .records
        .iter()
        .filter_map(|r| logsig::death(r).map(|d| (r, d)))
        .collect();
    if starts.len() < 2 && deaths.is_empty() {
        return;
    }
    let node = node_name(fl);
    let mut events: Vec<String> = Vec::new();
    for (i, s) in starts.iter().enumerate().skip(1) {
        let prev = starts[i - 1].line;
        let reason = deaths
            .iter()
            .rev()
            .find(|(r, _)| r.line > prev && r.line < s.line)
            .map(|(r, d)| format!("after `{d}` (line {})", r.line))
            .unwrap_or_else(|| {
                "with no panic or exit logged before it (killed: liveness probe, OOM, or the container restarted)".to_string()
            });
        events.push(format!("a restart at {} {reason}", logsig::when(s)));
    }
    let last_start = starts.last().map(|s| s.line).unwrap_or(0);
    for (r, d) in deaths.iter().filter(|(r, _)| r.line > last_start) {
        events.push(format!(
            "`{d}` (line {}) with no start after it in the log",
            r.line
        ));
    }
    let restarts = starts.len().saturating_sub(1);
    let title = if restarts > 0 {
        format!(
            "Felix restarted {restarts} time{} on {node}",
            if restarts == 1 { "" } else { "s" }
        )
    } else {
        format!("Felix died on {node}")
    };
    let mut f = base(
        fl,
        title,
        format!(
            "{} shows {} Felix start{} and {} death{}: {}. Each restart rebuilds the dataplane; changes made while Felix was down were not programmed.",
            fl.path(),
            starts.len(),
            if starts.len() == 1 { "" } else { "s" },
            deaths.len(),
            if deaths.len() == 1 { "" } else { "s" },
            events.join("; ")
        ),
    );
    for (r, _) in deaths.iter().take(5) {
        f = f.subject("log-signature", logsig::signature(&r.message).text);
    }
    let mut lines: Vec<&Record> = starts.iter().copied().take(5).collect();
    lines.extend(deaths.iter().map(|(r, _)| *r).take(5));
    lines.sort_by_key(|r| r.line);
    lines.dedup_by_key(|r| r.line);
    for r in lines {
        f = f.evidence(ev(m, fl, r));
    }
    let ns = logsig::calico_namespace(m);
    out.push(
        f.confirm(format!(
            "{} | grep -E 'Felix starting up|PANIC|FATAL|Exiting'; kubectl get pods -n {ns} -l k8s-app=calico-node -o wide | grep -F {}",
            logsig::logs_source(m, fl.node),
            super::shell_quote(node)
        ))
        .fix(
            "Fix the reason logged before each restart (the PANIC or FATAL message, `Exiting. reason=…`); without one, look at `kubectl describe pod` of calico-node for OOMKilled or failed liveness probes.",
        ),
    );
}

fn resync_loops(m: &Model<'_>, fl: &FelixLog<'_>, out: &mut Vec<Finding>) {
    let groups = logsig::group(fl.log.records.iter().filter(|r| logsig::is_resync(r)));
    let looping: Vec<&logsig::Group<'_>> = groups
        .iter()
        .filter(|g| g.records.len() >= LOOP_MIN)
        .collect();
    let Some(top) = looping.iter().max_by_key(|g| g.records.len()) else {
        return;
    };
    let node = node_name(fl);
    let described: Vec<String> = looping
        .iter()
        .map(|g| {
            let (first, last) = (g.first(), g.last());
            let span = match (first.ts, last.ts) {
                (Some(a), Some(b)) if b >= a => format!(" over {}s", (b - a).num_seconds()),
                _ => String::new(),
            };
            format!(
                "`{}` ×{}{span} (lines {} to {})",
                g.signature.text,
                g.records.len(),
                first.line,
                last.line
            )
        })
        .collect();
    let mut f = base(
        fl,
        format!(
            "Felix resyncs in a loop on {node}: \"{}\" ×{}",
            top.signature.text,
            top.records.len()
        ),
        format!(
            "{} repeats {}: Felix keeps finding the dataplane out of sync and rewriting it, so updates lag or fail in between.",
            fl.path(),
            described.join(", ")
        ),
    );
    for g in &looping {
        f = f.subject("log-signature", g.signature.text.as_str());
    }
    f = f
        .evidence(ev(m, fl, top.first()))
        .evidence(ev(m, fl, top.last()));
    out.push(
        f.confirm(logsig::logs_command(m, fl.node, &top.signature.literal))
            .fix(
                "Find the failure that precedes each resync (CAL071 lists dataplane update failures) and fix it; another program rewriting Calico's chains or IP sets (a firewall manager, an old calico-node) also causes endless resyncs.",
            ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    // CAL072-panic-restart-resync-loop: the demo bundle with node-2's felix.log replaced by an
    // ipset restore failure, five resync/retry rounds (ipsets.go), the PANIC after retries with
    // its Go panic text, and a new Felix process that logs no in-sync line.

    fn findings_at(path: &Path) -> Vec<Finding> {
        crate::analyze(path)
            .expect("fixture opens")
            .findings
            .into_iter()
            .filter(|f| f.code == CHECK.code)
            .collect()
    }

    fn findings(case: &str) -> Vec<Finding> {
        findings_at(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata/checks")
                .join(case),
        )
    }

    fn titled<'a>(found: &'a [Finding], start: &str) -> &'a Finding {
        found
            .iter()
            .find(|f| f.title.starts_with(start))
            .unwrap_or_else(|| panic!("no {start:?} in {found:#?}"))
    }

    #[test]
    fn a_panic_and_restart_are_reported_with_the_reason() {
        let found = findings("CAL072-panic-restart-resync-loop");
        let f = titled(&found, "Felix restarted 1 time on node-2");
        assert_eq!(f.node.as_deref(), Some("node-2"));
        assert!(
            f.message.contains(
                "after `PANIC: Failed to update IP sets after multiple retries.` (line 16)"
            ),
            "{}",
            f.message
        );
        assert_eq!(
            f.evidence.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![1, 16, 24]
        );
        assert_eq!(f.evidence[0].path, "nodes/node-2/felix.log");
        assert!(f.subjects.iter().any(|s| s.kind == "log-signature"
            && s.name == "Failed to update IP sets after multiple retries."));
    }

    #[test]
    fn no_in_sync_line_after_the_last_start_is_reported() {
        let found = findings("CAL072-panic-restart-resync-loop");
        let f = titled(&found, "Felix never reported in sync on node-2");
        assert_eq!(f.evidence[0].line, 24);
        assert!(f.evidence[0].excerpt.contains("Felix starting up"));
        assert_eq!(f.evidence[1].line, 27);
        assert!(f.message.contains("91s"), "{}", f.message);
    }

    #[test]
    fn five_resyncs_of_one_signature_are_a_loop() {
        let found = findings("CAL072-panic-restart-resync-loop");
        let f = titled(&found, "Felix resyncs in a loop on node-2");
        assert!(
            f.title.ends_with("\"Failed to resync with dataplane\" ×5"),
            "{}",
            f.title
        );
        assert_eq!(
            f.evidence.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![7, 15]
        );
        assert!(
            f.subjects.iter().any(|s| s.kind == "log-signature"
                && s.name == "Retrying after an ipsets update failure...")
        );
    }

    #[test]
    fn a_felix_that_started_once_and_got_in_sync_is_fine() {
        let found = findings("CAL072-panic-restart-resync-loop");
        assert!(found.iter().all(|f| f.node.as_deref() == Some("node-2")));
        let demo = findings_at(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata/bundles/calico-bundle-demo-20261125T140215Z"),
        );
        assert!(demo.is_empty(), "{demo:#?}");
    }

    #[test]
    fn a_lone_calico_node_log_shows_its_panic_restart_and_final_exit() {
        let log = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/artifacts/felix-log/calico-node-v3.26.log");
        let found = findings_at(&log);
        let f = titled(&found, "Felix restarted 1 time");
        assert!(
            f.message
                .contains("after `PANIC: Failed to set up dataplane: unknown iptables backend"),
            "{}",
            f.message
        );
        assert!(
            f.message
                .contains("`FATAL: Exiting. (config changed)` (line 27) with no start after it"),
            "{}",
            f.message
        );
    }
}
