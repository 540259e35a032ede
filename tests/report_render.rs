//! The report renderers on hand-built reports: snapshots of the JSON and Markdown of a
//! realistic two-node report, the JSON contract, the Markdown size budget on a big report,
//! escaping of hostile bundle text, and template overrides.

use std::collections::BTreeMap;

use calisnap::checks::{Evidence, Finding, Severity, Step, Subject};
use calisnap::report::example::{hostile_report, hostile_strings, sample_report};
use calisnap::report::{
    MARKDOWN_BUDGET, RenderError, Report, render_html, render_json, render_markdown,
};
use regex::Regex;
use serde_json::Value;

const URL: &str = "http://127.0.0.1:9";

#[test]
fn json_report_of_the_sample_matches_its_snapshot() {
    insta::assert_snapshot!("sample_report_json", render_json(&sample_report()));
}

#[test]
fn markdown_report_of_the_sample_matches_its_snapshot() {
    let md = render_markdown(&sample_report(), None).unwrap();
    insta::assert_snapshot!("sample_report_md", md);
}

#[test]
fn json_report_carries_every_field_of_the_contract() {
    let v: Value = serde_json::from_str(&render_json(&sample_report())).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["tool"]["name"], "calisnap");
    assert!(v["tool"]["version"].is_string());
    for key in [
        "source",
        "layout",
        "collected_at",
        "calico_version",
        "dataplane",
    ] {
        assert!(v["bundle"][key].is_string(), "bundle.{key}");
    }
    assert!(v["bundle"]["nodes"].is_array());
    for a in v["artifacts"].as_array().unwrap() {
        assert!(a["path"].is_string() && a["kind"].is_string());
        assert!(a["records"].is_u64() && a["bytes"].is_u64());
        for e in a["errors"].as_array().unwrap() {
            assert!(e["line"].is_u64() && e["message"].is_string());
        }
    }
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 9);
    for f in findings {
        for key in ["code", "check", "title", "message", "step", "anchor"] {
            assert!(f[key].is_string(), "finding.{key}");
        }
        assert!(["error", "warning", "info"].contains(&f["severity"].as_str().unwrap()));
        for s in f["subjects"].as_array().unwrap() {
            assert!(s["kind"].is_string() && s["name"].is_string());
        }
        for e in f["evidence"].as_array().unwrap() {
            assert!(e["path"].is_string() && e["line"].is_u64() && e["excerpt"].is_string());
        }
        assert!(
            f["anchor"]
                .as_str()
                .unwrap()
                .starts_with(f["code"].as_str().unwrap())
        );
    }
    assert_eq!(v["summary"]["errors"], 3);
    assert_eq!(v["summary"]["warnings"], 3);
    assert_eq!(v["summary"]["infos"], 3);
    assert_eq!(v["summary"]["parse_errors"], 3);
    let verdicts: Vec<(&str, &str)> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["verdict"].as_str().unwrap()))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            ("bundle", "warning"),
            ("policies-present", "error"),
            ("selectors-match", "warning"),
            ("chains-programmed", "error"),
            ("ipset-members", "error"),
            ("packet-path", "not-checked"),
        ]
    );
    assert_eq!(v["steps_not_checked"][0]["step"], "packet-path");
    assert_eq!(v["nodes_detail"].as_array().unwrap().len(), 2);
    assert!(v["evidence_context"][0]["context"].is_array());
}

#[test]
fn html_report_of_the_sample_has_the_flow_the_tables_and_the_inventory() {
    let html = render_html(&sample_report(), None).unwrap();
    for step in [
        "step-bundle",
        "step-policies-present",
        "step-selectors-match",
        "step-chains-programmed",
        "step-ipset-members",
        "step-packet-path",
    ] {
        assert!(html.contains(&format!("id=\"{step}\"")), "{step}");
    }
    for anchor in calisnap::report::view::anchors(&sample_report().findings) {
        assert!(html.contains(&format!("id=\"{anchor}\"")), "{anchor}");
    }
    // Per-node tables, context lines, parse errors, why-it-was-assumed.
    assert!(html.contains("Endpoints and their policies, in evaluation order"));
    assert!(html.contains("cali-pi-_w2kq6Hgq0Cz3C4Q8nTk"));
    assert!(html.contains("<span class=\"no\">116</span>"));
    assert!(html.contains("mapping values are not allowed in this context"));
    assert!(html.contains("assumed from image tag calico"));
    assert!(html.contains("No conntrack.txt or dmesg.txt".to_lowercase().as_str()));
    // Offline: no URL of any kind, and a policy that forbids requests.
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"));
    assert!(
        html.contains(
            "content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-"
        )
    );
}

/// 2,000 findings over five checks, with long messages: the Markdown must summarise.
fn big_report() -> (Report, BTreeMap<&'static str, usize>) {
    let mut report = sample_report();
    let plan: [(&str, Severity, Step, usize); 5] = [
        ("CAL041", Severity::Warning, Step::IpsetMembers, 1_200),
        ("CAL040", Severity::Error, Step::IpsetMembers, 400),
        ("CAL030", Severity::Error, Step::ChainsProgrammed, 120),
        ("CAL020", Severity::Warning, Step::SelectorsMatch, 30),
        ("CAL031", Severity::Info, Step::ChainsProgrammed, 250),
    ];
    let mut findings = Vec::new();
    for (code, severity, step, n) in plan {
        for i in 0..n {
            findings.push(Finding {
                code: code.into(),
                check: "generated".into(),
                severity,
                step,
                title: format!("Problem {code} number {i}"),
                message: format!(
                    "IP 10.{}.{}.{} of endpoint ns-{}/pod-{i} is not where Felix should have put \
                     it; the rest of this sentence only makes the message realistically long.",
                    i / 65536 % 256,
                    i / 256 % 256,
                    i % 256,
                    i % 17
                ),
                node: Some(format!("worker-{}", i % 40)),
                subjects: vec![
                    Subject::new("ipset", format!("cali40s:set{}", i % 13)),
                    Subject::new("ip", format!("10.0.{}.{}", i / 256 % 256, i % 256)),
                ],
                evidence: vec![
                    Evidence {
                        path: format!("nodes/worker-{}/ipset-save.txt", i % 40),
                        line: i + 1,
                        excerpt: format!("add cali40s:set{} 10.0.{}.{}", i % 13, i / 256, i % 256),
                    };
                    3
                ],
                confirm: Some(format!("ipset list cali40s:set{}", i % 13)),
                fix: Some(
                    "Restart calico-node on the node and look for errors in felix.log.".into(),
                ),
            });
        }
    }
    report.findings = findings;
    report.summary = calisnap::report::Summary::compute(&report.findings, &report.artifacts);
    let counts = plan.iter().map(|(c, _, _, n)| (*c, *n)).collect();
    (report, counts)
}

#[test]
fn markdown_of_two_thousand_findings_stays_under_64_kb_and_counts_what_it_summarised() {
    let (report, counts) = big_report();
    assert_eq!(report.findings.len(), 2_000);
    let md = render_markdown(&report, None).unwrap();
    assert!(
        md.len() < MARKDOWN_BUDGET,
        "{} bytes is over the budget",
        md.len()
    );
    assert!(md.contains("Summarised to stay ticket-sized"), "{md}");
    assert!(md.contains("of 2000 findings"));
    assert!(md.contains("more warnings of CAL041 not shown; see the HTML/JSON report."));

    // Every finding is accounted for: shown in full, in one line, or counted.
    let omitted = Regex::new(
        r"(\d+) more (?:errors?|warnings?|info findings?) of (CAL\d+) not shown; see the HTML/JSON report\.",
    )
    .unwrap();
    for (code, n) in counts {
        let full = md
            .lines()
            .filter(|l| l.starts_with("#### ") && l.contains(&format!(" {code}: ")))
            .count();
        let brief = md
            .lines()
            .filter(|l| l.starts_with("- ") && l.contains(&format!("`{code}`")))
            .count();
        let counted: usize = omitted
            .captures_iter(&md)
            .filter(|c| &c[2] == code)
            .map(|c| c[1].parse::<usize>().unwrap())
            .sum();
        assert_eq!(
            full + brief + counted,
            n,
            "{code}: {full} + {brief} + {counted}"
        );
        if code == "CAL041" {
            assert!(counted > 1_000, "CAL041: only {counted} summarised");
        }
    }
}

#[test]
fn markdown_cut_at_the_budget_says_so() {
    // Thousands of distinct checks and nodes not checked: even the counts are too long.
    let (mut report, _) = big_report();
    for (i, f) in report.findings.iter_mut().enumerate() {
        f.code = format!("CAL{i:05}");
    }
    for i in 0..3_000 {
        report
            .steps_not_checked
            .push(calisnap::report::StepNotChecked {
                step: Step::PacketPath,
                node: Some(format!("node-{i}")),
                reason: "no conntrack.txt".into(),
            });
    }
    let md = render_markdown(&report, None).unwrap();
    assert!(md.len() <= MARKDOWN_BUDGET, "{}", md.len());
    assert!(md.contains("2998 more not checked, see the HTML report"));
    assert!(md.ends_with("see the HTML/JSON report for the rest.**\n"));
}

#[test]
fn a_small_report_is_not_summarised() {
    let md = render_markdown(&sample_report(), None).unwrap();
    assert!(!md.contains("Summarised"));
    assert!(!md.contains("not shown"));
}

#[test]
fn one_huge_evidence_line_is_cut_and_marked() {
    let mut report = sample_report();
    report.findings[2].evidence[0].excerpt = "x".repeat(1_000_000);
    report.findings[2].message = "m".repeat(200_000);
    let md = render_markdown(&report, None).unwrap();
    assert!(md.len() < MARKDOWN_BUDGET);
    assert!(md.contains("xxx…"));
    assert!(md.contains("mmm…"));
}

// ---- hostile text ----

/// Real tags of the rendered HTML (data `<` is escaped, so these are the template's own)
/// and their attributes.
fn tags(html: &str) -> Vec<(String, Vec<(String, String)>)> {
    let tag =
        Regex::new(r"<([a-zA-Z][a-zA-Z0-9]*)((?:[^>\x22']|\x22[^\x22]*\x22|'[^']*')*)>").unwrap();
    let attr = Regex::new(r#"([^\s=/>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?"#).unwrap();
    tag.captures_iter(html)
        .map(|c| {
            let attrs = attr
                .captures_iter(&c[2])
                .map(|a| {
                    let value = a
                        .get(2)
                        .or(a.get(3))
                        .or(a.get(4))
                        .map(|m| m.as_str().to_string())
                        .unwrap_or_default();
                    (a[1].to_ascii_lowercase(), value)
                })
                .collect();
            (c[1].to_ascii_lowercase(), attrs)
        })
        .collect()
}

#[test]
fn html_of_hostile_text_has_only_the_templates_own_tags_and_attributes() {
    let html = render_html(&hostile_report(URL), None).unwrap();
    let allowed_tags = [
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "header",
        "h1",
        "h2",
        "h3",
        "h4",
        "dl",
        "dt",
        "dd",
        "span",
        "a",
        "nav",
        "ol",
        "li",
        "div",
        "label",
        "input",
        "select",
        "option",
        "button",
        "main",
        "section",
        "p",
        "b",
        "article",
        "code",
        "ul",
        "figure",
        "figcaption",
        "pre",
        "details",
        "summary",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "footer",
        "script",
    ];
    let allowed_attrs = [
        "lang",
        "charset",
        "http-equiv",
        "content",
        "name",
        "class",
        "id",
        "href",
        "aria-label",
        "role",
        "type",
        "data-sev",
        "checked",
        "value",
        "placeholder",
        "autocomplete",
        "aria-live",
        "data-severity",
        "data-node",
        "data-code",
        "data-start-collapsed",
        "title",
        "data-node-scope",
        "colspan",
        "hidden",
        "nonce",
    ];
    let all = tags(&html);
    assert!(all.len() > 100);
    for (tag, attrs) in &all {
        assert!(
            allowed_tags.contains(&tag.as_str()),
            "tag <{tag}> {attrs:?}"
        );
        for (name, value) in attrs {
            assert!(
                allowed_attrs.contains(&name.as_str()),
                "<{tag} {name}={value}>"
            );
            if name == "href" {
                assert!(value.starts_with('#'), "<{tag} href={value}>");
            }
        }
    }
    assert_eq!(all.iter().filter(|(t, _)| t == "script").count(), 1);
    assert!(!html.contains("<div id=\"pwned\""));
    // Template syntax in data comes out as text, not evaluated.
    assert!(html.contains("{{7*7}} {% if true %}TEMPLATE-RAN{% endif %}"));
    assert!(!html.contains("49 TEMPLATE-RAN"));
    assert!(html.contains("&lt;script&gt;document.title="));
}

#[test]
fn html_anchors_stay_plain_tokens_whatever_the_code() {
    let mut report = sample_report();
    report.findings[0].code = "CAL0\"><script>x</script>".into();
    let html = render_html(&report, None).unwrap();
    assert!(html.contains("id=\"CAL0___script_x__script_-"));
    assert_eq!(html.matches("<script").count(), 1);
}

/// The Markdown with fenced code blocks and code spans removed, failing on a code span that
/// does not close on its line (which would swallow what follows).
fn outside_code(md: &str) -> String {
    let mut out = String::new();
    let mut fence: Option<usize> = None;
    for line in md.lines() {
        let ticks = line.chars().take_while(|c| *c == '`').count();
        match fence {
            Some(n) => {
                if ticks >= n && line.trim_start_matches('`').trim().is_empty() {
                    fence = None;
                }
                continue;
            }
            None if ticks >= 3 => {
                fence = Some(ticks);
                continue;
            }
            None => {}
        }
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '\\' && i + 1 < chars.len() {
                out.push(chars[i]);
                out.push(chars[i + 1]);
                i += 2;
                continue;
            }
            if chars[i] == '`' {
                let n = chars[i..].iter().take_while(|c| **c == '`').count();
                let mut j = i + n;
                let close = loop {
                    if j >= chars.len() {
                        break None;
                    }
                    if chars[j] == '`' {
                        let m = chars[j..].iter().take_while(|c| **c == '`').count();
                        if m == n {
                            break Some(j + m);
                        }
                        j += m;
                    } else {
                        j += 1;
                    }
                };
                let Some(end) = close else {
                    panic!("unclosed code span in line: {line}");
                };
                out.push_str("CODE");
                i = end;
                continue;
            }
            out.push(chars[i]);
            i += 1;
        }
        out.push('\n');
    }
    assert!(fence.is_none(), "unclosed code block");
    out
}

#[test]
fn markdown_of_hostile_text_is_inert_outside_code_and_safe_inside_it() {
    let md = render_markdown(&hostile_report(URL), None).unwrap();
    let text = outside_code(&md);
    let allowed_html = ["<details>", "</details>", "<summary>", "</summary>"];
    for (i, _) in text.match_indices('<') {
        assert!(
            allowed_html.iter().any(|t| text[i..].starts_with(t)),
            "raw HTML at: {}",
            &text[i..text.len().min(i + 60)]
        );
    }
    for line in text.lines() {
        let chars: Vec<char> = line.chars().collect();
        for (i, c) in chars.iter().enumerate() {
            let escaped = i > 0 && chars[i - 1] == '\\';
            if matches!(c, '[' | ']' | '_' | '~' | '$') {
                assert!(escaped, "unescaped {c} in: {line}");
            }
        }
        // Table rows keep their column count: every cell `|` of data is escaped.
        if line.starts_with('|') {
            let bars = chars
                .iter()
                .enumerate()
                .filter(|(i, c)| **c == '|' && (*i == 0 || chars[i - 1] != '\\'))
                .count();
            assert!(bars == 5 || bars == 6, "table row broken: {line}");
        }
        // No heading, list or quote made by data: such lines start with template text.
        if line.starts_with('#') {
            assert!(
                line.starts_with("# calisnap report:")
                    || line.starts_with("## ")
                    || line.starts_with("### ")
                    || line.starts_with("#### "),
                "{line}"
            );
        }
    }
    // `[x](javascript:…)` only ever appears with its brackets escaped.
    assert!(!Regex::new(r"[^\\]\]\(javascript:").unwrap().is_match(&text));
    assert!(!text.contains("!["));
    assert!(text.contains(r"{{7\*7}}"));
    assert!(!md.contains("49 TEMPLATE-RAN"));
    assert!(!md.contains('\u{1b}'));
    // Code spans around text with backticks still hold the whole text.
    assert!(md.contains("```` ``x`` ```code``` ` # heading - list | a | b |:8 ````"));
    // Bidi overrides cannot reorder what the reader sees.
    assert!(!md.contains('\u{202e}'));
}

#[test]
fn every_hostile_string_reaches_the_markdown_in_some_form() {
    // Escaping must not become deletion: each payload's letters are still there.
    let md = render_markdown(&hostile_report(URL), None).unwrap();
    let letters = |s: &str| -> String { s.chars().filter(|c| c.is_ascii_alphanumeric()).collect() };
    let md_letters = letters(&md);
    let hits = hostile_strings(URL)
        .iter()
        .filter(|p| md_letters.contains(&letters(p)))
        .count();
    assert!(hits >= 10, "only {hits} payloads found");
}

// ---- templates ----

#[test]
fn a_template_directory_overrides_one_template_and_keeps_the_other() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("report.md.j2"),
        "custom {{ r.bundle.layout }} {{ r.counts.errors }}\n",
    )
    .unwrap();
    let md = render_markdown(&sample_report(), Some(dir.path())).unwrap();
    assert_eq!(md, "custom calico-bundle 3\n");
    let html = render_html(&sample_report(), Some(dir.path())).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
}

#[test]
fn overriding_templates_are_escaped_too() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("report.md.j2"), "{{ r.bundle.source }}").unwrap();
    std::fs::write(dir.path().join("report.html.j2"), "{{ r.bundle.source }}").unwrap();
    let report = hostile_report(URL);
    let md = render_markdown(&report, Some(dir.path())).unwrap();
    assert_eq!(md, "&lt;script&gt;document.title='PWNED'&lt;/script&gt;");
    let html = render_html(&report, Some(dir.path())).unwrap();
    assert!(html.starts_with("&lt;script&gt;"), "{html}");
}

#[test]
fn a_missing_template_directory_or_a_broken_template_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    assert!(matches!(
        render_html(&sample_report(), Some(&missing)),
        Err(RenderError::TemplateDir { .. })
    ));
    std::fs::write(dir.path().join("report.html.j2"), "{% for %}").unwrap();
    let err = render_html(&sample_report(), Some(dir.path())).unwrap_err();
    assert!(matches!(err, RenderError::Template { .. }));
    assert!(err.to_string().contains("report.html.j2"), "{err}");
}

#[test]
fn rendering_is_deterministic() {
    let r = sample_report();
    assert_eq!(
        render_html(&r, None).unwrap(),
        render_html(&r, None).unwrap()
    );
    assert_eq!(
        render_markdown(&r, None).unwrap(),
        render_markdown(&r, None).unwrap()
    );
    assert_eq!(render_json(&r), render_json(&r));
}

#[test]
fn an_empty_report_renders_in_every_format() {
    let r = Report::default();
    let html = render_html(&r, None).unwrap();
    assert!(html.contains("No findings."));
    let md = render_markdown(&r, None).unwrap();
    assert!(md.contains("No errors or warnings."));
    let v: Value = serde_json::from_str(&render_json(&r)).unwrap();
    assert_eq!(v["findings"].as_array().unwrap().len(), 0);
}
