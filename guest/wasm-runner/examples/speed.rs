//! Measures wasmi's speed on the host: runs core/tests/wasm/count_loop.wat
//! (10 M iterations of a counted loop) metered, and prints fuel per second
//! (fuel ≈ wasm instructions executed). Run with
//! `cargo run --release --example speed`.

use kvmsandbox_wasm_runner::{run_with_stats, Outcome, RunRequest};
use std::time::Instant;

fn main() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../core/tests/wasm/count_loop.wat"
    );
    let module = wat::parse_file(path).expect("count_loop.wat compiles");
    let clock = || 0u64;
    for round in 0..3 {
        let req = RunRequest {
            module: &module,
            args: &[b"count_loop"],
            env: &[],
            stdin: b"",
            fuel: Some(u64::MAX / 2),
            max_memory_bytes: Some(1 << 20),
            random_seed: [0; 32],
            clock: &clock,
            clock_resolution_ns: Some(1_000),
        };
        let started = Instant::now();
        let (outcome, stats) = run_with_stats(&req, &mut |_: _, _: &[u8]| {}).expect("runs");
        let elapsed = started.elapsed();
        assert_eq!(outcome, Outcome::Exited(0));
        let fuel = stats.fuel_consumed.unwrap_or(0);
        println!(
            "round {round}: {fuel} fuel in {:.1} ms = {:.0} M fuel/s",
            elapsed.as_secs_f64() * 1e3,
            fuel as f64 / elapsed.as_secs_f64() / 1e6
        );
    }
}
