//! docs/checks.md is generated from the check registry; this fails when it is stale.

#[test]
fn docs_checks_md_matches_the_registry() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/checks.md");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = calisnap::checks::render_docs();
    assert!(
        on_disk == generated,
        "docs/checks.md is stale: run `cargo run -- checks --markdown > docs/checks.md`"
    );
}

#[test]
fn every_check_doc_has_the_five_sections_and_a_unique_code() {
    let mut codes = std::collections::BTreeSet::new();
    for c in calisnap::checks::CHECKS {
        assert!(codes.insert(c.code), "duplicate code {}", c.code);
        for section in [
            "## What it finds",
            "## Why it matters",
            "## Example",
            "## How to confirm by hand",
            "## What to do",
        ] {
            assert!(c.doc.contains(section), "{} lacks {section}", c.code);
        }
    }
}
