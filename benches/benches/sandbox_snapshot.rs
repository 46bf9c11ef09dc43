//! Clean sandboxes through the `Sandbox` API, each timed to the agent's first
//! answer: reset in place (`sb.restore`), a fork (`Sandbox::from_snapshot`), and
//! Firecracker's path, a new VM from a snapshot *file* (`SandboxSnapshot::load`,
//! which maps the memory image, then a fork of it), beside a cold boot. Besides
//! criterion's estimates each benchmark prints p50/p99 of its own samples.

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use kvmsandbox::{Sandbox, SandboxSnapshot, VmConfig};
use kvmsandbox_benches::{percentiles, timed};
use std::time::Duration;

fn clean_sandboxes(c: &mut Criterion) {
    let mut g = c.benchmark_group("sandbox_snapshot");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let cfg = || VmConfig::micro().memory_mib(64);
    let sb = Sandbox::start(cfg()).expect("micro guest boots");
    sb.ping().expect("ping");
    let snap = sb.snapshot().expect("snapshot");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("micro.snap");
    snap.save(&file).expect("save");

    let mut samples = Vec::new();
    g.bench_function("reset_in_place_to_ping", |b| {
        b.iter_custom(|iters| {
            timed(&mut samples, iters, |_| {
                sb.restore(&snap).expect("restore");
                sb.ping().expect("ping");
            })
        })
    });
    percentiles("sandbox_snapshot/reset_in_place_to_ping", samples);

    let mut samples = Vec::new();
    g.bench_function("fork_to_ping", |b| {
        b.iter_custom(|iters| {
            let mut forks = Vec::new();
            let t = timed(&mut samples, iters, |_| {
                let f = Sandbox::from_snapshot(&snap).expect("fork");
                f.ping().expect("ping");
                forks.push(f);
            });
            drop(forks);
            t
        })
    });
    percentiles("sandbox_snapshot/fork_to_ping", samples);

    let mut samples = Vec::new();
    g.bench_function("file_to_ping", |b| {
        b.iter_custom(|iters| {
            let mut forks = Vec::new();
            let t = timed(&mut samples, iters, |_| {
                let loaded = SandboxSnapshot::load(&file).expect("load");
                let f = Sandbox::from_snapshot(&loaded).expect("restore from file");
                f.ping().expect("ping");
                forks.push(f);
            });
            drop(forks);
            t
        })
    });
    percentiles("sandbox_snapshot/file_to_ping", samples);

    let mut samples = Vec::new();
    g.bench_function("cold_boot_to_ping", |b| {
        b.iter_custom(|iters| {
            let mut boots = Vec::new();
            let t = timed(&mut samples, iters, |_| {
                let s = Sandbox::start(cfg()).expect("boot");
                s.ping().expect("ping");
                boots.push(s);
            });
            drop(boots);
            t
        })
    });
    percentiles("sandbox_snapshot/cold_boot_to_ping", samples);
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = clean_sandboxes
}
criterion_main!(benches);
