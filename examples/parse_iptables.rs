//! Times `calisnap::parse::iptables_save::parse` over one file: reads it once, parses it N
//! times, prints one JSON line (best and median wall time, throughput, records). The
//! benchmark script compares this with insights-core's parser on the same file.
//!
//! `parse` copies the text into the dump; the `shared_*` figures time `parse_shared` on a
//! shared copy made once, which is how the bundle reader hands dumps over.
//!
//! ```text
//! cargo run --release --example parse_iptables -- FILE [ITERATIONS]
//! ```

use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: parse_iptables FILE [ITERATIONS]"))?;
    let iterations: usize = match args.next() {
        Some(n) => n.parse()?,
        None => 10,
    };
    let text = std::fs::read_to_string(&path)?;
    let lines = text.lines().count();
    let mut times = Vec::with_capacity(iterations);
    let mut records = 0;
    let mut errors = 0;
    for _ in 0..iterations.max(1) {
        let t = Instant::now();
        let dump = calisnap::parse::iptables_save::parse(&text);
        times.push(t.elapsed().as_secs_f64());
        records = dump.records();
        errors = dump.errors.len();
        drop(std::hint::black_box(dump));
    }
    let shared: std::sync::Arc<str> = std::sync::Arc::from(text.as_str());
    let mut shared_times = Vec::with_capacity(iterations);
    for _ in 0..iterations.max(1) {
        let t = Instant::now();
        let dump = calisnap::parse::iptables_save::parse_shared(&shared);
        shared_times.push(t.elapsed().as_secs_f64());
        drop(std::hint::black_box(dump));
    }
    times.sort_by(f64::total_cmp);
    shared_times.sort_by(f64::total_cmp);
    let best = times[0];
    let median = times[times.len() / 2];
    let shared_best = shared_times[0];
    println!(
        "{}",
        serde_json::json!({
            "parser": "calisnap::parse::iptables_save::parse",
            "file": path,
            "bytes": text.len(),
            "lines": lines,
            "records": records,
            "errors": errors,
            "iterations": times.len(),
            "best_s": best,
            "median_s": median,
            "mb_per_s": text.len() as f64 / 1e6 / best,
            "shared_best_s": shared_best,
            "shared_median_s": shared_times[shared_times.len() / 2],
            "shared_mb_per_s": text.len() as f64 / 1e6 / shared_best,
            "rule_size": std::mem::size_of::<calisnap::parse::iptables_save::Rule>(),
            "match_size": std::mem::size_of::<calisnap::parse::iptables_save::Match>(),
            "target_size": std::mem::size_of::<calisnap::parse::iptables_save::Target>(),
        })
    );
    Ok(())
}
