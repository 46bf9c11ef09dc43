//! One host function round trip (guest → host callback → guest) beside an
//! agent ping, in one micro sandbox. A module calls `host.next` in a loop
//! until it returns 0; each iteration's time is measured between consecutive
//! callbacks, so module upload, link and run start are left out.

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use kvmsandbox::agent::{HostFunctions, HostReturn, Val};
use kvmsandbox::{Sandbox, WasmOutcome, WasmRequest};
use kvmsandbox_benches::announce;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LOOP_WAT: &str = r#"(module
  (import "host" "next" (func $next (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (loop $l (br_if $l (call $next)))))"#;

/// Calls left and when the first and the latest call arrived.
#[derive(Default)]
struct Calls {
    left: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

fn host_fn(c: &mut Criterion) {
    let sb = Sandbox::micro().expect("micro sandbox starts");
    if let Some(vm) = sb.vm() {
        announce(
            "host_fn",
            vm.host_kind(),
            "micro (agent, wasm host functions)",
        );
    }
    let calls = Arc::new(Mutex::new(Calls::default()));
    let state = calls.clone();
    let mut hosts = HostFunctions::new();
    hosts
        .add(
            "host",
            "next",
            &[],
            &[kvmsandbox::agent::HostType::I32],
            move |_| {
                let mut s = state.lock().map_err(|_| "poisoned".to_string())?;
                let now = Instant::now();
                s.first.get_or_insert(now);
                s.last = Some(now);
                s.left = s.left.saturating_sub(1);
                Ok(HostReturn::values([Val::I32(i32::from(s.left > 0))]))
            },
        )
        .expect("register host.next");
    let req = WasmRequest {
        module: wat::parse_str(LOOP_WAT).expect("loop WAT compiles"),
        host_functions: hosts,
        ..Default::default()
    };

    let mut g = c.benchmark_group("host_fn");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    g.bench_function("ping_round_trip", |b| b.iter(|| sb.ping().expect("ping")));
    g.bench_function("host_call_round_trip", |b| {
        b.iter_custom(|iters| {
            // One call more than measured: the first call starts the clock.
            *calls.lock().expect("calls") = Calls {
                left: iters + 1,
                ..Calls::default()
            };
            let out = sb
                .run_wasm(&req, Some(Duration::from_secs(600)))
                .expect("run_wasm");
            assert_eq!(out.outcome, WasmOutcome::Exit(0));
            let s = calls.lock().expect("calls");
            match (s.first, s.last) {
                (Some(first), Some(last)) => last - first,
                _ => panic!("the module made no calls"),
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = host_fn
}
criterion_main!(benches);
