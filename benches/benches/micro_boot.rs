//! Micro guest lifecycle: create → ready marker on serial (`Vm::start`), create →
//! agent hello over vsock (`Sandbox::micro`), and a full create + destroy cycle.
//! Teardown is outside the timed region except in the cycle benchmark.

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use kvmsandbox::{Sandbox, Vm, VmConfig};
use kvmsandbox_benches::announce;
use std::time::{Duration, Instant};

fn micro_boot(c: &mut Criterion) {
    let mut g = c.benchmark_group("micro_boot");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));

    let mut announced = false;
    g.bench_function("create_to_ready_marker", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t0 = Instant::now();
                let vm =
                    Vm::start(VmConfig::micro().cmdline("test=exit")).expect("micro guest boots");
                total += t0.elapsed();
                if !announced {
                    announce(
                        "micro_boot/create_to_ready_marker",
                        vm.host_kind(),
                        "micro (test=exit)",
                    );
                    announced = true;
                }
                vm.wait().expect("micro guest exits cleanly");
            }
            total
        })
    });

    let mut announced = false;
    g.bench_function("create_to_agent_ready", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t0 = Instant::now();
                let sb = Sandbox::micro().expect("micro sandbox starts");
                total += t0.elapsed();
                if !announced {
                    if let Some(vm) = sb.vm() {
                        announce(
                            "micro_boot/create_to_agent_ready",
                            vm.host_kind(),
                            "micro (agent)",
                        );
                    }
                    announced = true;
                }
                drop(sb);
            }
            total
        })
    });

    g.bench_function("create_destroy_cycle", |b| {
        b.iter(|| {
            let sb = Sandbox::micro().expect("micro sandbox starts");
            drop(sb);
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = micro_boot
}
criterion_main!(benches);
