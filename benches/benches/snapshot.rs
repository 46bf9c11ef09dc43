//! Snapshots at the VMM level: reset in place (restore of the same VM) after the
//! host dirtied 1, 64 or 1024 pages of a 64 MiB micro guest, the first snapshot
//! of a booted VM, and VM teardown (what the caller waits for in `drop`). Only the
//! restore is timed in the reset benchmarks; dirtying is not. With devices: reset
//! in place of a guest whose vsock device is active (alone, and to the agent's
//! first answer on a fresh connection), and a fork (`Vm::from_snapshot`) to the
//! agent's first answer beside a cold boot to the same point. Besides
//! criterion's estimates each benchmark prints p50/p99 of its own samples.

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use kvmsandbox::agent::AgentClient;
use kvmsandbox::sandbox::DEFAULT_AGENT_PORT;
use kvmsandbox::{Vm, VmConfig};
use kvmsandbox_benches::{announce, percentiles, timed};
use std::path::Path;
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestAddress};

/// Dirtied pages start here (above the guest's image and heap start).
const DIRTY_BASE: u64 = 0x100_0000;

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

/// Connects to the agent and pings it once.
fn first_ping(uds: &Path) {
    let timeout = Duration::from_secs(20);
    AgentClient::connect_hybrid(uds, DEFAULT_AGENT_PORT, timeout)
        .expect("agent connection")
        .ping()
        .expect("ping");
}

/// Waits (bounded) until no device holds anything a snapshot cannot carry.
fn quiescent(vm: &Vm) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while vm.check_devices_quiescent().is_err() {
        assert!(Instant::now() < deadline, "devices never quiescent");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn with_devices(c: &mut Criterion) {
    let mut g = c.benchmark_group("snapshot");
    g.sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let dir = tempfile::tempdir().expect("temp dir");
    let uds = dir.path().join("v.sock");
    let cfg = |uds: &Path| VmConfig::micro().memory_mib(64).vsock(uds);
    let vm = Vm::start(cfg(&uds)).expect("micro guest boots");
    announce(
        "snapshot/with_devices",
        vm.host_kind(),
        "micro (agent, vsock active, 64 MiB)",
    );
    first_ping(&uds);
    quiescent(&vm);
    let snap = vm.snapshot().expect("snapshot");

    let mut samples = Vec::new();
    g.bench_function("restore_with_devices", |b| {
        b.iter_custom(|iters| timed(&mut samples, iters, |_| vm.restore(&snap).expect("restore")))
    });
    percentiles("snapshot/restore_with_devices", samples);

    let mut samples = Vec::new();
    g.bench_function("restore_with_devices_to_first_ping", |b| {
        b.iter_custom(|iters| {
            timed(&mut samples, iters, |_| {
                vm.restore(&snap).expect("restore");
                first_ping(&uds);
            })
        })
    });
    percentiles("snapshot/restore_with_devices_to_first_ping", samples);

    let mut samples = Vec::new();
    let mut n = 0u64;
    g.sample_size(20);
    g.bench_function("fork_to_first_ping", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let fork_uds = dir.path().join(format!("f{n}.sock"));
                let t0 = Instant::now();
                let fork = Vm::from_snapshot(cfg(&fork_uds), &snap).expect("fork");
                first_ping(&fork_uds);
                let d = t0.elapsed();
                samples.push(d);
                total += d;
                drop(fork);
            }
            total
        })
    });
    percentiles("snapshot/fork_to_first_ping", samples);

    let mut samples = Vec::new();
    g.bench_function("cold_boot_to_first_ping", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let boot_uds = dir.path().join(format!("b{n}.sock"));
                let t0 = Instant::now();
                let vm = Vm::start(cfg(&boot_uds)).expect("micro guest boots");
                first_ping(&boot_uds);
                let d = t0.elapsed();
                samples.push(d);
                total += d;
                drop(vm);
            }
            total
        })
    });
    percentiles("snapshot/cold_boot_to_first_ping", samples);
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = reset_in_place, with_devices, teardown
}
criterion_main!(benches);
