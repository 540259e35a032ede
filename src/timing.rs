//! Phase timings on stderr, for profiling: set `CALISNAP_TIMINGS=1`.
//!
//! Off by default and free when off (one environment lookup per process).

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("CALISNAP_TIMINGS").is_some_and(|v| v != "0"))
}

/// Run `f`, and when timings are on print how long it took as `timing: <name> <seconds>`.
pub fn phase<T>(name: &str, f: impl FnOnce() -> T) -> T {
    if !enabled() {
        return f();
    }
    let (start, cpu_start) = (Instant::now(), process_cpu());
    let out = f();
    let wall = start.elapsed().as_secs_f64();
    // Peak memory so far tells which phase set it.
    let peak = peak_rss_mib()
        .map(|m| format!(", peak RSS {m} MiB"))
        .unwrap_or_default();
    match (cpu_start, process_cpu()) {
        // CPU time of all threads next to wall time shows how parallel a phase ran.
        (Some(a), Some(b)) => eprintln!(
            "timing: {name} {wall:.3}s (CPU {:.2}s{peak})",
            b.saturating_sub(a).as_secs_f64()
        ),
        _ => eprintln!("timing: {name} {wall:.3}s"),
    }
    out
}

/// The process's peak resident set so far, in MiB (Linux: `VmHWM` in `/proc/self/status`).
fn peak_rss_mib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// User and system CPU time of the whole process so far, in clock ticks of 10 ms (Linux:
/// `/proc/self/stat`).
fn process_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces, so cut at its closing paren):
    // utime and stime are the 12th and 13th.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Time spent in `f` added to the running total of `name` (work done on several threads,
/// such as parsing one kind of artifact); [`print_totals`] prints the totals.
pub fn add_to<T>(name: &'static str, f: impl FnOnce() -> T) -> T {
    if !enabled() {
        return f();
    }
    let (start, cpu_start) = (Instant::now(), thread_cpu());
    let out = f();
    // CPU time of this thread where the system tells it (a loaded machine stretches wall time).
    let spent = match (cpu_start, thread_cpu()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => start.elapsed(),
    };
    if let Ok(mut t) = totals().lock() {
        *t.entry(name).or_default() += spent;
    }
    out
}

/// CPU time of the calling thread so far (Linux: `/proc/thread-self/schedstat`).
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Print and clear the totals of [`add_to`] as `timing: <name> <seconds> (CPU, all threads)`.
pub fn print_totals() {
    if !enabled() {
        return;
    }
    if let Ok(mut t) = totals().lock() {
        for (name, spent) in std::mem::take(&mut *t) {
            eprintln!(
                "timing: {name} {:.3}s (CPU, all threads)",
                spent.as_secs_f64()
            );
        }
    }
}

fn totals() -> &'static Mutex<BTreeMap<&'static str, Duration>> {
    static TOTALS: OnceLock<Mutex<BTreeMap<&'static str, Duration>>> = OnceLock::new();
    TOTALS.get_or_init(Default::default)
}
