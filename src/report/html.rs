//! The HTML report: one self-contained file (inline CSS and JS, no request of any kind)
//! rendered from `templates/report.html.j2` with HTML autoescaping on for every value.
//! The page's Content-Security-Policy allows only its own inline script, by nonce.

use std::path::Path;

use minijinja::AutoEscape;
use sha2::{Digest, Sha256};

use super::view::ReportView;
use super::{RenderError, Report, environment, render_json, to_template_value};

const TEMPLATE: &str = "report.html.j2";
const EMBEDDED: &str = include_str!("../../templates/report.html.j2");

/// The HTML report. `templates` is a directory whose `report.html.j2`, when present,
/// replaces the embedded template.
pub fn render_html(report: &Report, templates: Option<&Path>) -> Result<String, RenderError> {
    let view = ReportView::build(report);
    let env = environment(TEMPLATE, EMBEDDED, templates, AutoEscape::Html)?;
    let ctx = minijinja::context! {
        r => to_template_value(&view),
        nonce => nonce(report),
    };
    super::render(&env, TEMPLATE, ctx)
}

/// The script nonce: a hash of the report's data. Deterministic (the same report renders to
/// the same bytes) and not guessable by the data itself, which would have to contain its own
/// hash to forge a `<script nonce>` even if escaping ever failed.
fn nonce(report: &Report) -> String {
    let digest = Sha256::digest(render_json(report).as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in UNITS.iter().skip(1) {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_as_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(402_113), "392.7 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn the_nonce_is_stable_and_changes_with_the_data() {
        let a = crate::report::example::sample_report();
        let mut b = a.clone();
        b.bundle.source.push('x');
        assert_eq!(nonce(&a), nonce(&a));
        assert_ne!(nonce(&a), nonce(&b));
        assert_eq!(nonce(&a).len(), 32);
    }
}
