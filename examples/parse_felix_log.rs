//! Times `calisnap::parse::felix_log::parse` over one file: reads it once, parses it N times,
//! prints one JSON line (best and median wall time, throughput, records counted per level,
//! notable records kept and dropped, the bytes of text they keep).
//!
//! ```text
//! cargo run --release --example parse_felix_log -- FILE [ITERATIONS]
//! ```

use std::time::Instant;

use calisnap::parse::felix_log::{Level, Log};

/// Text held by the kept records (message, field keys and values, component and file).
fn kept_text_bytes(log: &Log) -> usize {
    log.records
        .iter()
        .map(|r| {
            r.message.len()
                + r.fields
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>()
                + r.component.as_ref().map_or(0, String::len)
                + r.file.as_ref().map_or(0, String::len)
        })
        .sum()
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: parse_felix_log FILE [ITERATIONS]"))?;
    let iterations: usize = match args.next() {
        Some(n) => n.parse()?,
        None => 10,
    };
    let text = std::fs::read_to_string(&path)?;
    let mut times = Vec::with_capacity(iterations);
    let mut last = None;
    for _ in 0..iterations.max(1) {
        let t = Instant::now();
        let log = calisnap::parse::felix_log::parse(&text);
        times.push(t.elapsed().as_secs_f64());
        last = Some(std::hint::black_box(log));
    }
    let log = last.unwrap_or_default();
    times.sort_by(f64::total_cmp);
    let best = times[0];
    let median = times[times.len() / 2];
    let by_level: serde_json::Map<String, serde_json::Value> = Level::ALL
        .iter()
        .map(|l| (format!("{l:?}"), log.count(*l).into()))
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "parser": "calisnap::parse::felix_log::parse",
            "file": path,
            "bytes": text.len(),
            "lines": log.lines,
            "records": log.records(),
            "by_level": by_level,
            "kept": log.records.len(),
            "kept_text_bytes": kept_text_bytes(&log),
            "dropped": log.dropped,
            "versions": log.versions.len(),
            "errors": log.errors.len(),
            "iterations": times.len(),
            "best_s": best,
            "median_s": median,
            "mb_per_s": text.len() as f64 / 1e6 / best,
        })
    );
    Ok(())
}
