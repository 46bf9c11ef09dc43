//! Snapshots at the VMM level: reset in place (restore of the same VM) after the
//! host dirtied 1, 64 or 1024 pages of a 64 MiB micro guest, the first snapshot
//! of a booted VM, and VM teardown (what the caller waits for in `drop`). Only the
//! restore is timed in the reset benchmarks; dirtying is not. Besides criterion's
//! estimates each benchmark prints p50/p99 of its own samples.

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use kvmsandbox::{Vm, VmConfig};
use kvmsandbox_benches::announce;
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestAddress};

/// Dirtied pages start here (above the guest's image and heap start).
const DIRTY_BASE: u64 = 0x100_0000;

fn percentiles(name: &str, mut v: Vec<Duration>) {
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

fn reset_in_place(c: &mut Criterion) {
    let mut g = c.benchmark_group("snapshot");
    g.sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let vm = Vm::start(VmConfig::micro().memory_mib(64).cmdline("test=stay"))
        .expect("micro guest boots");
    announce(
        "snapshot/reset_in_place",
        vm.host_kind(),
        "micro (test=stay, 64 MiB)",
    );
    let snap = vm.snapshot().expect("snapshot");
    let mem = vm.guest_memory();
    for pages in [1u64, 64, 1024] {
        let mut samples = Vec::new();
        g.bench_function(format!("reset_in_place_{pages}_dirty_pages"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    for p in 0..pages {
                        mem.write_obj(i + 1, GuestAddress(DIRTY_BASE + p * 4096))
                            .expect("guest RAM");
                    }
                    let t0 = Instant::now();
                    vm.restore(&snap).expect("restore");
                    let d = t0.elapsed();
                    samples.push(d);
                    total += d;
                }
                total
            })
        });
        percentiles(
            &format!("snapshot/reset_in_place_{pages}_dirty_pages"),
            samples,
        );
    }

    let mut samples = Vec::new();
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    g.bench_function("first_snapshot_64mib", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let vm = Vm::start(VmConfig::micro().memory_mib(64).cmdline("test=stay"))
                    .expect("micro guest boots");
                let t0 = Instant::now();
                let s = vm.snapshot().expect("snapshot");
                let d = t0.elapsed();
                samples.push(d);
                total += d;
                drop(s);
            }
            total
        })
    });
    percentiles("snapshot/first_snapshot_64mib", samples);
    g.finish();
}

fn teardown(c: &mut Criterion) {
    let mut g = c.benchmark_group("vm");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    let mut ready = Vec::new();
    let mut drops = Vec::new();
    g.bench_function("create_to_ready_marker", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t0 = Instant::now();
                let vm =
                    Vm::start(VmConfig::micro().cmdline("test=stay")).expect("micro guest boots");
                let d = t0.elapsed();
                ready.push(d);
                total += d;
                let t1 = Instant::now();
                drop(vm);
                drops.push(t1.elapsed());
            }
            total
        })
    });
    percentiles("vm/create_to_ready_marker", ready);
    percentiles("vm/drop (kill + teardown)", drops);
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = reset_in_place, teardown
}
criterion_main!(benches);
