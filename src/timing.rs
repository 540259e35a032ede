//! Phase timings on stderr, for profiling: set `CALISNAP_TIMINGS=1`.
//!
//! Off by default and free when off (one environment lookup per process).

use std::sync::OnceLock;
use std::time::Instant;

fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("CALISNAP_TIMINGS").is_some_and(|v| v != "0"))
}

/// Run `f`, and when timings are on print how long it took as `timing: <name> <seconds>`.
pub fn phase<T>(name: &str, f: impl FnOnce() -> T) -> T {
    if !enabled() {
        return f();
    }
    let start = Instant::now();
    let out = f();
    eprintln!("timing: {name} {:.3}s", start.elapsed().as_secs_f64());
    out
}
