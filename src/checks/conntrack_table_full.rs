//! CAL060: a node's conntrack table near or at its limit (`nf_conntrack_count` against
//! `nf_conntrack_max`), or signs that it was full: `drop`/`early_drop` in `conntrack -S`, or
//! "table full, dropping packet" in the kernel log. Which flows fill the table is not judged.

use super::{Check, Evidence, Finding, Severity, Step};
use crate::bundle::ArtifactKind;
use crate::model::Model;
use crate::model::node::NodeModel;
use crate::parse::Parsed;
use crate::parse::conntrack::Table;

pub const CHECK: Check = Check {
    code: "CAL060",
    name: "conntrack-table-full",
    severity: Severity::Warning,
    step: Step::PacketPath,
    doc: r#"
## What it finds
A node whose conntrack table holds 80% or more of `net.netfilter.nf_conntrack_max` (warning),
95% or more (error), or that shows it has been full: `drop` or `early_drop` above zero in
`conntrack -S`, or `nf_conntrack: table full, dropping packet` in the kernel log (error). The
count is `net.netfilter.nf_conntrack_count` from the sysctl capture, else `conntrack -C`, else
the number of flows in the `conntrack -L` capture.

## Why it matters
When the table is full the kernel cannot track a new flow and drops its first packet: new
connections fail at random, on every pod of the node, whatever the policies say. `early_drop`
means the kernel already evicted flows to make room.

## Example
node-1: `net.netfilter.nf_conntrack_count = 255012` with `net.netfilter.nf_conntrack_max =
262144` (97%).

## How to confirm by hand
`sysctl net.netfilter.nf_conntrack_count net.netfilter.nf_conntrack_max` and `conntrack -S` on
the node (`drop=`/`early_drop=` growing between two runs), `dmesg | grep -i 'table full'`.

## What to do
Raise `nf_conntrack_max` (kube-proxy sets it from `conntrack.maxPerCore`; set that, or the
sysctl, persistently), and find what fills the table:

    conntrack -L | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^src=/) { print $1, $i; break }}' \
      | sort | uniq -c | sort -rn | head

counts flows by protocol and source. Many short UDP or TIME_WAIT flows point at timeouts
(`nf_conntrack_udp_timeout`, `…_tcp_timeout_time_wait`); traffic that needs no tracking can be
exempted with a Calico `doNotTrack` policy.
"#,
    run,
};

/// Percent of the table at which the check warns, and at which it reports an error.
const WARN_PERCENT: u64 = 80;
const ERROR_PERCENT: u64 = 95;

/// A number read from the bundle, with where.
struct Read {
    value: u64,
    evidence: Evidence,
}

fn sysctl_value(m: &Model<'_>, node: &NodeModel<'_>, keys: &[&str]) -> Option<Read> {
    let d = node.sysctl?;
    keys.iter().find_map(|k| {
        let e = d.data.get(k)?;
        let value = e.value.trim().parse::<u64>().ok()?;
        Some(Read {
            value,
            evidence: Evidence {
                path: d.path().to_string(),
                line: e.line,
                excerpt: super::line_text(m, d.path(), e.line)
                    .unwrap_or_else(|| format!("{} = {}", e.key, e.value)),
            },
        })
    })
}

/// The number of tracked flows when sysctl does not say: `conntrack -C`, else the `-L` flows.
fn counted_flows(m: &Model<'_>, node: &NodeModel<'_>) -> Option<Read> {
    let tables: Vec<(&str, &Table)> = node.conntrack.iter().map(|d| (d.path(), d.data)).collect();
    if let Some((path, c)) = tables
        .iter()
        .find_map(|(p, t)| t.stats.count.map(|c| (*p, c)))
    {
        return Some(Read {
            value: c.value,
            evidence: Evidence {
                path: path.to_string(),
                line: c.line,
                excerpt: super::line_text(m, path, c.line).unwrap_or_else(|| c.value.to_string()),
            },
        });
    }
    // Events (`conntrack -E`) are not a table.
    let (path, t) = tables
        .iter()
        .filter(|(_, t)| t.counts.flows > 0 && t.counts.events() == 0)
        .max_by_key(|(_, t)| t.counts.flows)?;
    let (line, excerpt) = match (t.summary, t.last_line) {
        (Some(s), _) => (
            s.line,
            super::line_text(m, path, s.line)
                .unwrap_or_else(|| format!("{} flow entries have been shown.", s.shown)),
        ),
        (None, Some(last)) => (
            last as usize,
            format!("({} flows in the capture)", t.counts.flows),
        ),
        (None, None) => return None,
    };
    Some(Read {
        value: t.counts.flows,
        evidence: Evidence {
            path: path.to_string(),
            line,
            excerpt,
        },
    })
}

/// `drop` and `early_drop` of `conntrack -S`, summed over CPUs, with the line that counted most.
fn stats_drops(m: &Model<'_>, node: &NodeModel<'_>) -> Vec<(String, u64, Evidence)> {
    let mut out = Vec::new();
    let Some(d) = node
        .conntrack
        .iter()
        .find(|d| !d.data.stats.cpus.is_empty())
    else {
        return out;
    };
    for key in ["drop", "early_drop"] {
        let total = d.data.stats.total(key).unwrap_or(0);
        if total == 0 {
            continue;
        }
        let worst = d.data.stats.cpus.iter().max_by_key(|c| {
            c.counters
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| *v)
                .unwrap_or(0)
        });
        if let Some(cpu) = worst {
            out.push((
                key.to_string(),
                total,
                Evidence {
                    path: d.path().to_string(),
                    line: cpu.line,
                    excerpt: super::line_text(m, d.path(), cpu.line)
                        .unwrap_or_else(|| format!("cpu={} {key}={total}", cpu.cpu)),
                },
            ));
        }
    }
    out
}

/// Kernel log lines saying the table was full: the first one, and how many.
fn kernel_full(m: &Model<'_>, node: &NodeModel<'_>) -> Option<(usize, Evidence)> {
    let mut first = None;
    let mut n = 0;
    for a in m.node_artifacts(&node.name, ArtifactKind::Dmesg) {
        let Parsed::Dmesg(d) = &a.parsed else {
            continue;
        };
        for l in &d.notable {
            let lower = l.text.to_ascii_lowercase();
            if lower.contains("table full") && !lower.contains("expectation table") {
                n += 1;
                if first.is_none() {
                    first = Some(Evidence {
                        path: a.path.clone(),
                        line: l.line,
                        excerpt: super::line_text(m, &a.path, l.line)
                            .unwrap_or_else(|| l.text.clone()),
                    });
                }
            }
        }
    }
    first.map(|e| (n, e))
}

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    for node in &m.nodes {
        let count = sysctl_value(
            m,
            node,
            &[
                "net.netfilter.nf_conntrack_count",
                "net.ipv4.netfilter.ip_conntrack_count",
            ],
        )
        .or_else(|| counted_flows(m, node));
        let max = sysctl_value(
            m,
            node,
            &[
                "net.netfilter.nf_conntrack_max",
                "net.nf_conntrack_max",
                "net.ipv4.netfilter.ip_conntrack_max",
            ],
        );
        let percent = match (&count, &max) {
            (Some(c), Some(mx)) if mx.value > 0 => Some(c.value.saturating_mul(100) / mx.value),
            _ => None,
        };
        let drops = stats_drops(m, node);
        let kernel = kernel_full(m, node);
        let near = percent.is_some_and(|p| p >= WARN_PERCENT);
        if !near && drops.is_empty() && kernel.is_none() {
            continue;
        }
        let severity =
            if percent.is_some_and(|p| p >= ERROR_PERCENT) || !drops.is_empty() || kernel.is_some()
            {
                Severity::Error
            } else {
                Severity::Warning
            };
        let mut said = Vec::new();
        if let (Some(c), Some(mx), Some(p)) = (&count, &max, percent) {
            said.push(format!(
                "the table holds {} flows of {} allowed ({p}%)",
                c.value, mx.value
            ));
        }
        for (key, total, _) in &drops {
            said.push(format!("`conntrack -S` counts {key}={total} over all CPUs"));
        }
        if let Some((n, _)) = &kernel {
            said.push(format!(
                "the kernel log says \"table full, dropping packet\" {n} time(s)"
            ));
        }
        let title = match (percent, &count, &max) {
            (Some(p), Some(c), Some(mx)) if near => format!(
                "conntrack table at {p}% ({} of {}) on {}",
                c.value, mx.value, node.name
            ),
            _ => format!("conntrack table has been full on {}", node.name),
        };
        let mut f = Finding::of(
            &CHECK,
            title,
            format!(
                "On {}, {}. A full table makes the kernel drop the first packet of every new \
                 flow, for every pod of the node, whatever the policies allow{}.",
                node.name,
                said.join("; "),
                if drops.iter().any(|(k, _, _)| k == "early_drop") {
                    "; early_drop means flows were already evicted to make room"
                } else {
                    ""
                }
            ),
        )
        .severity(severity)
        .on_node(&node.name)
        .subject("node", &node.name);
        if near {
            for r in [&count, &max].into_iter().flatten() {
                f = f.evidence(r.evidence.clone());
            }
        }
        for (_, _, e) in &drops {
            f = f.evidence(e.clone());
        }
        if let Some((_, e)) = kernel {
            f = f.evidence(e);
        }
        out.push(
            f.confirm(format!(
                "sysctl net.netfilter.nf_conntrack_count net.netfilter.nf_conntrack_max; conntrack -S; dmesg | grep -i 'table full'   # on {}",
                node.name
            ))
            .fix(format!(
                "Raise nf_conntrack_max on {} (kube-proxy sets it from conntrack.maxPerCore: set \
                 that, or the sysctl, persistently) and find what fills the table: `conntrack -L | \
                 awk '{{for (i = 1; i <= NF; i++) if ($i ~ /^src=/) {{ print $1, $i; break }}}}' \
                 | sort | uniq -c | sort -rn | head` counts flows by protocol and source. Shorter UDP and \
                 TIME_WAIT timeouts, or a doNotTrack policy for traffic that needs no tracking, \
                 reduce the load.",
                node.name
            )),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::checks::{Finding, Severity};

    fn findings(dir: &str) -> Vec<Finding> {
        crate::checks::testing::findings(dir, "CAL060")
    }

    fn on<'a>(found: &'a [Finding], node: &str) -> Option<&'a Finding> {
        found.iter().find(|f| f.node.as_deref() == Some(node))
    }

    #[test]
    fn the_demo_tables_are_nearly_empty_and_say_nothing() {
        let found = findings("testdata/bundles/calico-bundle-demo-20261125T140215Z");
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn a_table_past_eighty_percent_warns_and_past_ninety_five_is_an_error() {
        let found = findings("testdata/checks/CAL060-near-max");
        let n1 = on(&found, "node-1").expect("node-1");
        assert_eq!(n1.severity, Severity::Warning);
        assert!(n1.title.contains("85% (222823 of 262144)"), "{}", n1.title);
        assert!(
            n1.subjects
                .iter()
                .any(|s| s.kind == "node" && s.name == "node-1")
        );
        assert_eq!(n1.evidence[0].path, "nodes/node-1/sysctl.txt");
        assert_eq!(n1.evidence[0].line, 3);
        assert_eq!(
            n1.evidence[0].excerpt,
            "net.netfilter.nf_conntrack_count = 222823"
        );
        assert_eq!(n1.evidence[1].line, 4);
        let n2 = on(&found, "node-2").expect("node-2");
        assert_eq!(n2.severity, Severity::Error);
        assert!(n2.title.contains("97%"), "{}", n2.title);
    }

    #[test]
    fn early_drops_and_the_kernel_log_make_an_error_even_when_the_table_is_empty_now() {
        let found = findings("testdata/checks/CAL060-was-full");
        let f = on(&found, "node-2").expect("node-2");
        assert!(on(&found, "node-1").is_none());
        assert_eq!(f.severity, Severity::Error);
        assert!(f.title.contains("has been full"), "{}", f.title);
        assert!(f.message.contains("early_drop=142"), "{}", f.message);
        assert!(f.message.contains("2 time(s)"), "{}", f.message);
        assert_eq!(f.evidence[0].path, "nodes/node-2/conntrack-stats.txt");
        assert_eq!(f.evidence[0].line, 2);
        assert_eq!(f.evidence[1].path, "nodes/node-2/dmesg.txt");
        assert_eq!(f.evidence[1].line, 2);
        assert!(
            f.evidence[1]
                .excerpt
                .contains("table full, dropping packet")
        );
    }
}
