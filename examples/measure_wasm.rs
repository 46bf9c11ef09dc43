//! Measures WASM in the micro guest: hello world on a fresh sandbox (create ->
//! output) and a warm one (call -> output), and interpreter speed (fuel, roughly
//! wasm instructions, per second). `cargo run --release -p kvmsandbox --example measure_wasm`
use kvmsandbox::{Sandbox, WasmOutcome, WasmRequest};
use std::time::{Duration, Instant};

fn wat(name: &str) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    Ok(wat::parse_file(format!(
        "{}/tests/wasm/{name}.wat",
        env!("CARGO_MANIFEST_DIR")
    ))?)
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let hello = WasmRequest {
        module: wat("hello")?,
        ..Default::default()
    };
    let mut fresh = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let sb = Sandbox::micro()?;
        let out = sb.run_wasm(&hello, None)?;
        fresh.push(t.elapsed());
        assert_eq!(out.stdout, b"hello, world\n");
    }
    let sb = Sandbox::micro()?;
    let mut warm = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        sb.run_wasm(&hello, None)?;
        warm.push(t.elapsed());
    }
    let fuel = 5_000_000u64;
    let spin = WasmRequest {
        module: wat("infinite_loop")?,
        fuel: Some(fuel),
        ..Default::default()
    };
    let t = Instant::now();
    let out = sb.run_wasm(&spin, None)?;
    let dt = t.elapsed();
    assert_eq!(out.outcome, WasmOutcome::OutOfFuel);
    println!(
        "host: {}",
        sb.vm()
            .map(|v| v.host_kind().to_string())
            .unwrap_or_default()
    );
    println!(
        "hello world, fresh sandbox (create -> output): median {:.1} ms of 5",
        median(fresh)
    );
    println!(
        "hello world, warm sandbox (call -> output):    median {:.1} ms of 10",
        median(warm)
    );
    println!(
        "interpreter: {fuel} fuel in {:.2} s = {:.2} M fuel/s in the guest",
        dt.as_secs_f64(),
        fuel as f64 / dt.as_secs_f64() / 1e6
    );
    Ok(())
}
