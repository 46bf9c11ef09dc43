//! `run_wasm` of a WASI hello world: "fresh" = a new sandbox per run (boot +
//! agent hello + module upload + run + teardown), "warm" = one run in a sandbox
//! that is already up. If the guest answers Unsupported, that is reported and
//! the benchmarks are skipped (the micro guest's WASM support may be missing).
//! "template" = a run of the same module prepared once (`prepare_wasm`): restore
//! the snapshot taken after preparing, reconnect, send the call's inputs, run.

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use kvmsandbox::{Error, Sandbox, WasmCall, WasmOutcome, WasmOutput, WasmRequest, WasmTemplate};
use kvmsandbox_benches::{announce, HELLO_OUTPUT, HELLO_WAT};
use std::time::Duration;

fn run_hello(sb: &Sandbox, req: &WasmRequest) {
    let out = sb
        .run_wasm(req, Some(Duration::from_secs(60)))
        .expect("run_wasm");
    check_hello(out);
}

fn run_template(sb: &Sandbox, t: &WasmTemplate) {
    let out = t
        .run(sb, &WasmCall::default(), Some(Duration::from_secs(60)))
        .expect("template run");
    check_hello(out);
}

fn check_hello(out: WasmOutput) {
    assert_eq!(
        out.outcome,
        WasmOutcome::Exit(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, HELLO_OUTPUT);
}

fn wasm(c: &mut Criterion) {
    let module = wat::parse_str(HELLO_WAT).expect("hello world WAT compiles");
    let req = WasmRequest {
        module,
        ..Default::default()
    };

    let sb = Sandbox::micro().expect("micro sandbox starts");
    if let Some(vm) = sb.vm() {
        announce("wasm", vm.host_kind(), "micro (agent, wasm)");
    }
    match sb.run_wasm(&req, Some(Duration::from_secs(60))) {
        Err(Error::Unsupported { op, guest }) => {
            eprintln!("[wasm] SKIPPED: the {guest} answers {op}: unsupported (no WASM runtime in this build)");
            return;
        }
        Err(e) => panic!("run_wasm of hello world failed: {e}"),
        Ok(_) => {}
    }

    let mut g = c.benchmark_group("wasm");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    g.bench_function("hello_warm", |b| b.iter(|| run_hello(&sb, &req)));
    let t = sb.prepare_wasm(&req.module, None).expect("prepare_wasm");
    g.bench_function("hello_template", |b| b.iter(|| run_template(&sb, &t)));
    drop(sb);
    g.bench_function("hello_fresh", |b| {
        b.iter(|| {
            let sb = Sandbox::micro().expect("micro sandbox starts");
            run_hello(&sb, &req);
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = wasm
}
criterion_main!(benches);
