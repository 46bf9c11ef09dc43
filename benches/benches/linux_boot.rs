//! Linux kernel boot to "Run /init" (the kernel found by `make kernel`, with a
//! trivial initramfs). Opt-in: set KVMSANDBOX_BENCH_LINUX=1. On a PVM host one
//! boot takes about a minute, so this uses criterion's minimum of 10 samples with
//! one boot each (`iter_custom`), i.e. ~11 minutes there; on hardware KVM it is
//! seconds.

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use kvmsandbox::{Vm, VmConfig};
use kvmsandbox_benches::{announce, initramfs, kernel_dir, linux_opted_in, LINUX_OPT_IN};
use std::time::{Duration, Instant};

fn linux_boot(c: &mut Criterion) {
    if !linux_opted_in() {
        eprintln!(
            "[linux_boot] skipped: set {LINUX_OPT_IN}=1 to run it (~1 min per boot on PVM hosts)"
        );
        return;
    }
    let dir = kernel_dir().expect("guest kernel");
    let initrd = initramfs().expect("initramfs");
    let vmlinux = dir.join("vmlinux");
    let mut g = c.benchmark_group("linux_boot");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    let mut announced = false;
    g.bench_function("create_to_run_init", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t0 = Instant::now();
                let vm = Vm::start(VmConfig::linux(&vmlinux).initrd(&initrd))
                    .expect("Linux boots to /init");
                total += t0.elapsed();
                if !announced {
                    announce(
                        "linux_boot",
                        vm.host_kind(),
                        &format!("Linux {}", vmlinux.display()),
                    );
                    announced = true;
                }
                vm.kill();
            }
            total
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = linux_boot
}
criterion_main!(benches);
