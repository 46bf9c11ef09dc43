//! Talking to a running micro guest: agent ping round trip, raw vsock echo
//! throughput, and sequential virtio-blk reads and writes through the agent
//! (on a temporary raw image). One sandbox serves every benchmark here.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kvmsandbox::{Sandbox, VmConfig, ECHO_PORT};
use kvmsandbox_benches::announce;
use std::io::{Read, Write};
use std::time::Duration;

/// Size of the scratch disk.
const DISK_BYTES: u64 = 16 << 20;
/// Bytes per disk request.
const DISK_CHUNK: u32 = 256 << 10;
/// Bytes per echo round.
const ECHO_CHUNK: usize = 32 << 10;

fn micro_io(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let img = dir.path().join("disk.raw");
    let f = std::fs::File::create(&img).expect("create disk image");
    f.set_len(DISK_BYTES).expect("size disk image");
    drop(f);
    let sb = Sandbox::start(VmConfig::micro().disk(&img, false))
        .expect("micro sandbox with a disk starts");
    if let Some(vm) = sb.vm() {
        announce(
            "micro_io",
            vm.host_kind(),
            "micro (agent, 1 virtio-blk, vsock)",
        );
    }

    let mut g = c.benchmark_group("micro_io");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    g.bench_function("ping_round_trip", |b| b.iter(|| sb.ping().expect("ping")));

    let mut s = sb.connect(ECHO_PORT).expect("connect to the echo port");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("socket timeout");
    let out = vec![0x5au8; ECHO_CHUNK];
    let mut back = vec![0u8; ECHO_CHUNK];
    g.throughput(Throughput::Bytes(ECHO_CHUNK as u64));
    g.bench_function("echo_stream_32KiB", |b| {
        b.iter(|| {
            s.write_all(&out).expect("echo write");
            s.read_exact(&mut back).expect("echo read");
        })
    });
    assert_eq!(out, back, "echo returned other bytes");
    drop(s);

    g.throughput(Throughput::Bytes(u64::from(DISK_CHUNK)));
    let chunks = DISK_BYTES / u64::from(DISK_CHUNK);
    let data = vec![0xa5u8; DISK_CHUNK as usize];
    let mut i = 0u64;
    g.bench_function("disk_write_seq_256KiB", |b| {
        b.iter(|| {
            sb.disk_write(0, (i % chunks) * u64::from(DISK_CHUNK), &data)
                .expect("disk write");
            i += 1;
        })
    });
    let mut i = 0u64;
    g.bench_function("disk_read_seq_256KiB", |b| {
        b.iter(|| {
            let d = sb
                .disk_read(0, (i % chunks) * u64::from(DISK_CHUNK), DISK_CHUNK)
                .expect("disk read");
            assert_eq!(d.len(), DISK_CHUNK as usize);
            i += 1;
        })
    });
    g.finish();
    drop(sb);
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = micro_io
}
criterion_main!(benches);
