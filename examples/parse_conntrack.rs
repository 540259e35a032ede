//! Times `calisnap::parse::conntrack::parse` over one file: reads it once, parses it N times,
//! prints one JSON line (best and median wall time, throughput, records, groups kept).
//!
//! ```text
//! cargo run --release --example parse_conntrack -- FILE [ITERATIONS]
//! ```

use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: parse_conntrack FILE [ITERATIONS]"))?;
    let iterations: usize = match args.next() {
        Some(n) => n.parse()?,
        None => 10,
    };
    let text = std::fs::read_to_string(&path)?;
    let lines = text.lines().count();
    let mut times = Vec::with_capacity(iterations);
    let mut records = 0;
    let mut errors = 0;
    let mut groups = serde_json::Value::Null;
    for _ in 0..iterations.max(1) {
        let t = Instant::now();
        let table = calisnap::parse::conntrack::parse(&text);
        times.push(t.elapsed().as_secs_f64());
        records = table.records();
        errors = table.errors.len();
        groups = serde_json::json!({
            "unreplied": table.unreplied.len(),
            "unreplied_dropped": table.unreplied.dropped,
            "unreplied_events": table.unreplied_events.len(),
            "established": table.established.len(),
            "established_dropped": table.established.dropped,
            "events": table.counts.events(),
            "sample": table.sample.len(),
        });
        drop(std::hint::black_box(table));
    }
    times.sort_by(f64::total_cmp);
    let best = times[0];
    let median = times[times.len() / 2];
    println!(
        "{}",
        serde_json::json!({
            "parser": "calisnap::parse::conntrack::parse",
            "file": path,
            "bytes": text.len(),
            "lines": lines,
            "records": records,
            "errors": errors,
            "groups": groups,
            "iterations": times.len(),
            "best_s": best,
            "median_s": median,
            "mb_per_s": text.len() as f64 / 1e6 / best,
        })
    );
    Ok(())
}
