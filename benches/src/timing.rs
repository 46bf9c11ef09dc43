//! Sample keeping for the benchmarks that report tails (p50/p99) beside
//! criterion's mean: resets and forks have long tails on a shared machine.

use std::time::{Duration, Instant};

/// Prints p50 and p99 of `v` (criterion reports means; tails matter for resets).
pub fn percentiles(name: &str, mut v: Vec<Duration>) {
    if v.is_empty() {
        return;
    }
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    eprintln!(
        "[{name}] {} samples: p50 {:.3} ms, p99 {:.3} ms",
        v.len(),
        at(0.5),
        at(0.99)
    );
}

/// Times `f` once per iteration (given its index) for `iter_custom`, keeping
/// every sample in `samples` for [`percentiles`].
pub fn timed(samples: &mut Vec<Duration>, iters: u64, mut f: impl FnMut(u64)) -> Duration {
    let mut total = Duration::ZERO;
    for i in 0..iters {
        let t0 = Instant::now();
        f(i);
        let d = t0.elapsed();
        samples.push(d);
        total += d;
    }
    total
}
