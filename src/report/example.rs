//! Example reports built by hand: a realistic one for previewing templates (`--templates`)
//! and for the renderers' tests, and a hostile one whose every bundle-derived string is an
//! injection attempt. Neither comes from analysing a bundle.

use super::{
    ArtifactInfo, BundleInfo, ChainDetail, ContextLine, EndpointDetail, EvidenceContext,
    IpsetDetail, NodeDetail, PolicyDetail, Report, StepNotChecked, Tool,
};
use crate::checks::{Evidence, Finding, Severity, Step, Subject};
use crate::parse::ParseError;

/// A two-node iptables cluster where `prod/web` cannot be reached from `prod/frontend`:
/// a selector typo, a chain missing on one node, an IP set behind, and conntrack absent.
pub fn sample_report() -> Report {
    let ipt_a = "nodes/worker-1/iptables-save.txt";
    let ipt_b = "nodes/worker-2/iptables-save.txt";
    let ipset_b = "nodes/worker-2/ipset-save.txt";
    let gnp = "cluster/calico/globalnetworkpolicies.yaml";
    let np = "cluster/calico/networkpolicies.yaml";

    let findings = vec![
        finding(
            "CAL001",
            "artifact-missing",
            Severity::Warning,
            Step::Bundle,
            "Felix log missing for a node",
            "worker-2 has no felix.log: programming errors on that node cannot be seen.",
            Some("worker-2"),
            vec![Subject::new("node", "worker-2")],
            vec![ev(
                "manifest.json",
                41,
                r#"{"node": "worker-2", "name": "felix-log", "exit_code": 1}"#,
            )],
            Some("kubectl -n calico-system logs ds/calico-node -c calico-node --since=1h"),
            Some("Re-run the collector with access to the calico-node pod on worker-2."),
        ),
        finding(
            "CAL002",
            "version-assumed",
            Severity::Info,
            Step::Bundle,
            "Calico version taken from the calico-node image tag",
            "No ClusterInformation in the bundle; v3.27.2 read from the image of calico-node.",
            None,
            vec![Subject::new("artifact", "cluster/k8s/pods.yaml")],
            vec![ev(
                "cluster/k8s/pods.yaml",
                212,
                "    image: docker.io/calico/node:v3.27.2",
            )],
            None,
            None,
        ),
        finding(
            "CAL010",
            "default-deny-without-allow",
            Severity::Error,
            Step::PoliciesPresent,
            "Ingress to prod/web is denied by default",
            "GlobalNetworkPolicy default-deny selects prod/web-7d9f8-x2x4k and no policy in \
             any tier allows TCP 8080 from prod/frontend.",
            Some("worker-1"),
            vec![
                Subject::new("endpoint", "prod/web-7d9f8-x2x4k"),
                Subject::new("policy", "default-deny"),
            ],
            vec![ev(
                gnp,
                14,
                "  selector: projectcalico.org/namespace == 'prod'",
            )],
            Some("calicoctl get gnp default-deny -o yaml"),
            Some("Add a NetworkPolicy in prod allowing TCP 8080 from app == 'frontend'."),
        ),
        finding(
            "CAL020",
            "selector-matches-nothing",
            Severity::Warning,
            Step::SelectorsMatch,
            "Selector matches no endpoint",
            "prod/allow-metrics selects app == 'prometeus'; no endpoint has that label. \
             Did you mean app == 'prometheus'?",
            None,
            vec![
                Subject::new("policy", "prod/allow-metrics"),
                Subject::new("selector", "app == 'prometeus'"),
            ],
            vec![ev(np, 33, "      selector: app == 'prometeus'")],
            Some("calisnap selector \"app == 'prometeus'\" --bundle <bundle>"),
            Some("Fix the label value in the policy's source selector."),
        ),
        finding(
            "CAL021",
            "selector-whitespace",
            Severity::Info,
            Step::SelectorsMatch,
            "Selector has redundant parentheses",
            "(app == 'web') canonicalises to app == \"web\".",
            None,
            vec![Subject::new("policy", "prod/allow-web")],
            vec![ev(np, 12, "  selector: (app == 'web')")],
            None,
            None,
        ),
        finding(
            "CAL030",
            "policy-chain-missing",
            Severity::Error,
            Step::ChainsProgrammed,
            "Policy chain not programmed",
            "Felix should have programmed cali-pi-_w2kq6Hgq0Cz3C4Q8nTk for \
             prod/allow-frontend on worker-2; iptables-save has no such chain.",
            Some("worker-2"),
            vec![
                Subject::new("policy", "prod/allow-frontend"),
                Subject::new("chain", "cali-pi-_w2kq6Hgq0Cz3C4Q8nTk"),
                Subject::new("node", "worker-2"),
            ],
            vec![ev(
                ipt_b,
                118,
                "-A cali-tw-cali3f0a2c1b7e4 -m comment --comment \"cali:Qh2c\" -j cali-pri-kns.prod",
            )],
            Some("iptables-save -t filter | grep cali-pi-_w2kq6Hgq0Cz3C4Q8nTk"),
            Some("Check felix.log on worker-2 for iptables-restore failures; restart calico-node."),
        ),
        finding(
            "CAL040",
            "ipset-missing-member",
            Severity::Error,
            Step::IpsetMembers,
            "IP set is missing a member",
            "cali40s:Vkt4sIhJ6SRb9KS7Jd2Tg7 (app == 'frontend') lacks 10.244.2.17 of \
             prod/frontend-5c6d-abcde.",
            Some("worker-2"),
            vec![
                Subject::new("ipset", "cali40s:Vkt4sIhJ6SRb9KS7Jd2Tg7"),
                Subject::new("ip", "10.244.2.17"),
                Subject::new("endpoint", "prod/frontend-5c6d-abcde"),
            ],
            vec![
                ev(
                    ipset_b,
                    7,
                    "create cali40s:Vkt4sIhJ6SRb9KS7Jd2Tg7 hash:net family inet hashsize 1024 maxelem 1048576",
                ),
                ev(ipset_b, 8, "add cali40s:Vkt4sIhJ6SRb9KS7Jd2Tg7 10.244.1.5"),
            ],
            Some("ipset list cali40s:Vkt4sIhJ6SRb9KS7Jd2Tg7"),
            Some(
                "Felix resyncs IP sets on restart; if it recurs, look for datastore errors in felix.log.",
            ),
        ),
        finding(
            "CAL041",
            "ipset-stale-member",
            Severity::Warning,
            Step::IpsetMembers,
            "IP set has a stale member",
            "10.244.2.99 is in cali40s:Vkt4sIhJ6SRb9KS7Jd2Tg7 but no endpoint has it.",
            Some("worker-2"),
            vec![
                Subject::new("ipset", "cali40s:Vkt4sIhJ6SRb9KS7Jd2Tg7"),
                Subject::new("ip", "10.244.2.99"),
            ],
            vec![ev(
                ipset_b,
                9,
                "add cali40s:Vkt4sIhJ6SRb9KS7Jd2Tg7 10.244.2.99",
            )],
            Some("ipset test cali40s:Vkt4sIhJ6SRb9KS7Jd2Tg7 10.244.2.99"),
            None,
        ),
        finding(
            "CAL031",
            "counters-zero",
            Severity::Info,
            Step::ChainsProgrammed,
            "Policy chain never hit",
            "cali-pi-_Ay2p0cM0qoBlE6gVwXe0 has zero packets on every rule.",
            Some("worker-1"),
            vec![Subject::new("chain", "cali-pi-_Ay2p0cM0qoBlE6gVwXe0")],
            vec![ev(
                ipt_a,
                212,
                "[0:0] -A cali-pi-_Ay2p0cM0qoBlE6gVwXe0 -p tcp -m multiport --dports 8080 -j MARK --set-xmark 0x10000/0x10000",
            )],
            None,
            None,
        ),
    ];

    let artifacts = vec![
        artifact("manifest.json", "manifest", None, 1, 6_210, vec![]),
        artifact(gnp, "calico-resources", None, 3, 2_048, vec![]),
        artifact(
            np,
            "calico-resources",
            None,
            5,
            4_410,
            vec![ParseError::new(
                57,
                "mapping values are not allowed in this context",
            )],
        ),
        artifact(
            "cluster/k8s/pods.yaml",
            "k8s-resources",
            None,
            14,
            88_100,
            vec![],
        ),
        artifact(
            ipt_a,
            "iptables-save",
            Some("worker-1"),
            412,
            61_220,
            vec![],
        ),
        artifact(
            "nodes/worker-1/ipset-save.txt",
            "ipset-save",
            Some("worker-1"),
            37,
            2_904,
            vec![],
        ),
        artifact(
            "nodes/worker-1/felix.log",
            "felix-log",
            Some("worker-1"),
            1_502,
            402_113,
            vec![],
        ),
        artifact(
            ipt_b,
            "iptables-save",
            Some("worker-2"),
            398,
            59_871,
            vec![
                ParseError::new(301, "rule outside a table: missing *filter header"),
                ParseError::new(302, "rule outside a table: missing *filter header"),
            ],
        ),
        artifact(ipset_b, "ipset-save", Some("worker-2"), 35, 2_750, vec![]),
    ];

    let mut report = Report::new(
        BundleInfo {
            source: "tickets/48213/calico-bundle-prod-eu1-20250314T101502Z.tar.gz".into(),
            layout: "calico-bundle".into(),
            collected_at: Some("2025-03-14T10:15:02Z".into()),
            calico_version: Some("3.27".into()),
            calico_version_source: Some(
                "image tag calico/node:v3.27.2 in cluster/k8s/pods.yaml".into(),
            ),
            dataplane: Some("iptables".into()),
            nodes: vec!["worker-1".into(), "worker-2".into()],
        },
        artifacts,
        findings,
    );
    report.tool = Tool {
        name: "calisnap",
        version: "0.0.0-example",
    };
    report.steps_not_checked = vec![
        StepNotChecked {
            step: Step::PacketPath,
            node: None,
            reason: "no conntrack.txt or dmesg.txt in the bundle".into(),
        },
        StepNotChecked {
            step: Step::ChainsProgrammed,
            node: Some("worker-2".into()),
            reason: "ip6tables-save.txt missing: IPv6 chains not checked".into(),
        },
    ];
    report.nodes_detail = vec![
        NodeDetail {
            node: "worker-1".into(),
            endpoints: vec![EndpointDetail {
                name: "prod/web-7d9f8-x2x4k".into(),
                interface: Some("cali81c4e2d9a07".into()),
                ips: vec!["10.244.1.23".into()],
                ingress: vec!["default-deny".into(), "prod/allow-web".into()],
                egress: vec!["default-deny".into()],
                profiles: vec!["kns.prod".into(), "ksa.prod.default".into()],
            }],
            policies: vec![PolicyDetail {
                policy: "prod/allow-web".into(),
                chains: vec![ChainDetail {
                    name: "cali-pi-_Ay2p0cM0qoBlE6gVwXe0".into(),
                    direction: Some("ingress".into()),
                    present: true,
                    rules: 3,
                    packets: Some(0),
                    bytes: Some(0),
                    path: Some(ipt_a.into()),
                    line: Some(209),
                }],
            }],
            ipsets: vec![IpsetDetail {
                name: "cali40s:Vkt4sIhJ6SRb9KS7Jd2Tg7".into(),
                selector: Some("app == 'frontend'".into()),
                present: true,
                expected_count: 2,
                actual_count: 2,
                missing: vec![],
                stale: vec![],
            }],
        },
        NodeDetail {
            node: "worker-2".into(),
            endpoints: vec![EndpointDetail {
                name: "prod/web-7d9f8-q7m2p".into(),
                interface: Some("cali3f0a2c1b7e4".into()),
                ips: vec!["10.244.2.23".into()],
                ingress: vec!["default-deny".into(), "prod/allow-frontend".into()],
                egress: vec!["default-deny".into()],
                profiles: vec!["kns.prod".into()],
            }],
            policies: vec![PolicyDetail {
                policy: "prod/allow-frontend".into(),
                chains: vec![ChainDetail {
                    name: "cali-pi-_w2kq6Hgq0Cz3C4Q8nTk".into(),
                    direction: Some("ingress".into()),
                    present: false,
                    ..ChainDetail::default()
                }],
            }],
            ipsets: vec![IpsetDetail {
                name: "cali40s:Vkt4sIhJ6SRb9KS7Jd2Tg7".into(),
                selector: Some("app == 'frontend'".into()),
                present: true,
                expected_count: 2,
                actual_count: 2,
                missing: vec!["10.244.2.17".into()],
                stale: vec!["10.244.2.99".into()],
            }],
        },
    ];
    report.evidence_context = vec![
        EvidenceContext {
            path: ipt_b.into(),
            line: 118,
            context: vec![
                cl(116, ":cali-tw-cali3f0a2c1b7e4 - [0:0]"),
                cl(
                    117,
                    "-A cali-tw-cali3f0a2c1b7e4 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                ),
                cl(
                    118,
                    "-A cali-tw-cali3f0a2c1b7e4 -m comment --comment \"cali:Qh2c\" -j cali-pri-kns.prod",
                ),
                cl(
                    119,
                    "-A cali-tw-cali3f0a2c1b7e4 -m comment --comment \"cali:9Ksd\" -m mark --mark 0x0/0x20000 -j DROP",
                ),
            ],
        },
        EvidenceContext {
            path: ipset_b.into(),
            line: 8,
            context: vec![
                cl(
                    7,
                    "create cali40s:Vkt4sIhJ6SRb9KS7Jd2Tg7 hash:net family inet hashsize 1024 maxelem 1048576",
                ),
                cl(8, "add cali40s:Vkt4sIhJ6SRb9KS7Jd2Tg7 10.244.1.5"),
                cl(9, "add cali40s:Vkt4sIhJ6SRb9KS7Jd2Tg7 10.244.2.99"),
            ],
        },
    ];
    report
}

/// A report whose bundle-derived strings all try to break out: HTML and script injection,
/// requests to `url_base` (e.g. `http://127.0.0.1:PORT`), template syntax, Markdown that
/// would make links, tables and code spans, terminal escapes.
pub fn hostile_report(url_base: &str) -> Report {
    let payloads: Vec<String> = hostile_strings(url_base);
    let p = |i: usize| payloads[i % payloads.len()].clone();
    let mut report = sample_report();
    report.bundle.source = p(0);
    report.bundle.layout = p(1);
    report.bundle.calico_version_source = Some(p(2));
    report.bundle.nodes.push(p(3));
    for (i, f) in report.findings.iter_mut().enumerate() {
        f.title = format!("{} {}", f.title, p(i));
        f.message = p(i + 1);
        f.node = Some(p(i + 2));
        f.subjects.push(Subject::new("label", p(i + 3)));
        f.evidence.push(ev(&p(i + 4), i + 1, &p(i + 5)));
        f.confirm = Some(p(i + 6));
        f.fix = Some(p(i + 7));
    }
    report.artifacts.push(artifact(
        &p(8),
        "unknown",
        Some(&p(9)),
        1,
        1,
        vec![ParseError::new(1, p(10))],
    ));
    report.steps_not_checked.push(StepNotChecked {
        step: Step::SelectorsMatch,
        node: Some(p(11)),
        reason: p(12),
    });
    report.nodes_detail.push(NodeDetail {
        node: p(13),
        endpoints: vec![EndpointDetail {
            name: p(14),
            interface: Some(p(15)),
            ips: vec![p(16)],
            ingress: vec![p(17)],
            egress: vec![p(18)],
            profiles: vec![p(19)],
        }],
        policies: vec![PolicyDetail {
            policy: p(20),
            chains: vec![ChainDetail {
                name: p(21),
                direction: Some(p(22)),
                present: true,
                path: Some(p(23)),
                ..ChainDetail::default()
            }],
        }],
        ipsets: vec![IpsetDetail {
            name: p(24),
            selector: Some(p(25)),
            missing: vec![p(26)],
            stale: vec![p(27)],
            ..IpsetDetail::default()
        }],
    });
    for (i, c) in report.evidence_context.iter_mut().enumerate() {
        c.context.push(cl(c.line + 5, &p(i + 28)));
    }
    // Evidence pointing at a hostile path gets hostile context too.
    if let Some(e) = report
        .findings
        .first()
        .and_then(|f| f.evidence.last())
        .cloned()
    {
        report.evidence_context.push(EvidenceContext {
            path: e.path,
            line: e.line,
            context: vec![cl(e.line, &p(30))],
        });
    }
    report.summary = super::Summary::compute(&report.findings, &report.artifacts);
    report
}

/// The injection attempts of [`hostile_report`], in a fixed order.
pub fn hostile_strings(url_base: &str) -> Vec<String> {
    let u = url_base.trim_end_matches('/');
    vec![
        "<script>document.title='PWNED'</script>".into(),
        "\"><img src=x onerror=\"document.title='PWNED'\">".into(),
        format!("<img src=\"{u}/img.png\">"),
        "{{7*7}} {% if true %}TEMPLATE-RAN{% endif %}".into(),
        "| ** _ [x](javascript:alert(1)) `".into(),
        format!("<link rel=\"stylesheet\" href=\"{u}/style.css\">"),
        format!("<style>@import url({u}/import.css); body{{background:url({u}/bg.png)}}</style>"),
        format!("<iframe src=\"{u}/frame\"></iframe>"),
        "</pre></details></script><div id=\"pwned\">injected</div>".into(),
        format!("![img]({u}/md.png) [link]({u}/md) <{u}/auto>"),
        "<svg onload=\"document.title='PWNED'\"><circle r=9></svg>".into(),
        "``x`` ```code``` `\n# heading\n- list\n| a | b |".into(),
        "\u{1b}[31mRED\u{1b}[0m\u{7}bell \u{202e}txt.exe".into(),
        format!("' onmouseover='fetch(\"{u}/js\")' x='"),
        "<object data=x></object><embed src=x>".into(),
        format!("<meta http-equiv=\"refresh\" content=\"0;url={u}/refresh\">"),
        "javascript:alert(1)".into(),
        "&lt;script&gt;alert(1)&lt;/script&gt; &amp;".into(),
        format!("<base href=\"{u}/\"><a href=\"{u}/a\">a</a>"),
        "<form action=x><input autofocus onfocus=\"document.title='PWNED'\"></form>".into(),
        format!("<video poster=\"{u}/poster.png\"></video><audio src=\"{u}/a.mp3\"></audio>"),
        "*bold* __under__ ~~strike~~ \\ \\* <!-- comment".into(),
        "1. not a list\n> quote\n=== heading".into(),
        format!("<script src=\"{u}/x.js\"></script>"),
        format!(
            "<link rel=\"prefetch\" href=\"{u}/prefetch\"><link rel=\"dns-prefetch\" href=\"{u}\">"
        ),
        "</code></td></tr></table><h1>broken table</h1>".into(),
        "{#- comment -#}{{ '%s' % 1 }}{% raw %}".into(),
        "@everyone <@U123> :smile:".into(),
        format!("<input type=image src=\"{u}/input.png\">"),
        format!("<object data=\"{u}/object\"></object>"),
        format!("<svg><image href=\"{u}/svg.png\"/></svg>"),
    ]
}

#[allow(clippy::too_many_arguments)]
fn finding(
    code: &str,
    check: &str,
    severity: Severity,
    step: Step,
    title: &str,
    message: &str,
    node: Option<&str>,
    subjects: Vec<Subject>,
    evidence: Vec<Evidence>,
    confirm: Option<&str>,
    fix: Option<&str>,
) -> Finding {
    Finding {
        code: code.into(),
        check: check.into(),
        severity,
        step,
        title: title.into(),
        message: message.into(),
        node: node.map(str::to_string),
        subjects,
        evidence,
        confirm: confirm.map(str::to_string),
        fix: fix.map(str::to_string),
    }
}

fn ev(path: &str, line: usize, excerpt: &str) -> Evidence {
    Evidence {
        path: path.into(),
        line,
        excerpt: excerpt.into(),
    }
}

fn cl(line: usize, text: &str) -> ContextLine {
    ContextLine {
        line,
        text: text.into(),
    }
}

fn artifact(
    path: &str,
    kind: &str,
    node: Option<&str>,
    records: usize,
    bytes: u64,
    errors: Vec<ParseError>,
) -> ArtifactInfo {
    ArtifactInfo {
        path: path.into(),
        kind: kind.into(),
        node: node.map(str::to_string),
        records,
        bytes,
        errors,
    }
}
