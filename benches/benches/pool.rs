//! Warm pools, one row per source (a VM config, a snapshot, a prepared WASM
//! template): a whole acquire → ping → release cycle, run back to back by one
//! thread, so the rate includes waiting for the background resets whenever
//! they are the bottleneck (a config pool boots a fresh VM per release); and
//! acquire → first answered ping alone. The template pool also runs its
//! module in each cycle. Besides criterion's estimates each benchmark prints
//! p50/p99 of its own samples and cycles per second.

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use kvmsandbox::{PoolConfig, PoolSource, Sandbox, SandboxPool, VmConfig, WasmCall, WasmOutcome};
use kvmsandbox_benches::announce;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

const HELLO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello, world\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 13))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

fn report(name: &str, mut v: Vec<Duration>) {
    if v.is_empty() {
        return;
    }
    let total: Duration = v.iter().sum();
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    eprintln!(
        "[{name}] {} samples: p50 {:.3} ms, p99 {:.3} ms, {:.1} cycles/s",
        v.len(),
        at(0.5),
        at(0.99),
        v.len() as f64 / total.as_secs_f64()
    );
}

fn pool(source: PoolSource) -> SandboxPool {
    let p = SandboxPool::new(
        source,
        PoolConfig {
            min_idle: 1,
            max_size: 2,
            threads: 2,
        },
    )
    .expect("pool");
    assert!(p.wait_idle(1, WAIT), "pool did not fill");
    p
}

fn sources() -> Vec<(&'static str, PoolSource)> {
    let base = Sandbox::micro().expect("micro guest boots");
    announce(
        "pool",
        base.vm().expect("a VM").host_kind(),
        "micro (64 MiB)",
    );
    let snap = base.snapshot().expect("snapshot");
    let module = wat::parse_str(HELLO).expect("hello WAT");
    let template = base.prepare_wasm(&module, None).expect("prepare");
    vec![
        ("config", PoolSource::config(VmConfig::micro)),
        ("snapshot", PoolSource::from_snapshot(&snap)),
        ("template", PoolSource::from_template(&template)),
    ]
}

fn cycles(c: &mut Criterion) {
    let mut g = c.benchmark_group("pool");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for (name, source) in sources() {
        let template = matches!(source, PoolSource::Template(..));
        let p = pool(source);
        let mut cycle = Vec::new();
        g.bench_function(format!("acquire_ping_release_{name}"), |b| {
            b.iter_custom(|iters| {
                let t0 = Instant::now();
                for _ in 0..iters {
                    let t = Instant::now();
                    let sb = p.acquire(WAIT).expect("acquire");
                    sb.ping().expect("ping");
                    drop(sb);
                    cycle.push(t.elapsed());
                }
                t0.elapsed()
            })
        });
        report(&format!("pool/acquire_ping_release_{name}"), cycle);

        let mut first = Vec::new();
        g.bench_function(format!("acquire_to_first_ping_{name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Only from an idle sandbox: the wait for a reset is not timed.
                    assert!(p.wait_idle(1, WAIT));
                    let t = Instant::now();
                    let sb = p.acquire(WAIT).expect("acquire");
                    sb.ping().expect("ping");
                    let d = t.elapsed();
                    first.push(d);
                    total += d;
                }
                total
            })
        });
        report(&format!("pool/acquire_to_first_ping_{name}"), first);

        if template {
            let mut runs = Vec::new();
            g.bench_function("acquire_run_release_template", |b| {
                b.iter_custom(|iters| {
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        let t = Instant::now();
                        let sb = p.acquire(WAIT).expect("acquire");
                        let tpl = sb.template().expect("a template pool");
                        let out = tpl.run(&sb, &WasmCall::default(), None).expect("run");
                        assert_eq!(out.outcome, WasmOutcome::Exit(0));
                        drop(sb);
                        runs.push(t.elapsed());
                    }
                    t0.elapsed()
                })
            });
            report("pool/acquire_run_release_template", runs);
        }
        eprintln!("[pool/{name}] {:?}", p.metrics());
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = cycles
}
criterion_main!(benches);
