//! File throughput inside the micro guest: a WASI module writes a file of
//! 1 MiB into a preopened writable directory in 64 KiB `fd_write`s, seeks
//! back, reads it all in 64 KiB `fd_read`s, and unlinks it (so no file comes
//! back to the host: the result carries only the empty directory).
//!
//! `write_read_1MiB` is the whole `run_wasm` (upload, link, run, result) in a
//! running sandbox; `baseline` is the same module with no chunks, so the
//! difference between the two is the 2 MiB moved through the guest's
//! in-memory file tree (docs/benchmarks.md gives that figure).

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kvmsandbox::{Error, Sandbox, WasmDir, WasmOutcome, WasmRequest};
use kvmsandbox_benches::announce;
use std::time::Duration;

/// Bytes per `fd_write` / `fd_read`.
const CHUNK: u64 = 64 << 10;
/// Chunks in the 1 MiB file.
const CHUNKS: u64 = 16;

/// The module, writing and reading `chunks` chunks. Exit codes: 0 success,
/// 10 + step for a failed call, 9 for a short read.
fn module_wat(chunks: u64) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_seek" (func $fd_seek (param i32 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_unlink_file" (func $unlink (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 3)
  ;; 16: the file name; 32: one iovec over the 64 KiB buffer at 65536;
  ;; 48: bytes moved; 52: the file's fd; 56: fd_seek's new offset.
  (data (i32.const 16) "f")
  (func $check (param $errno i32) (param $step i32)
    (if (local.get $errno) (then (call $exit (i32.add (i32.const 10) (local.get $step))))))
  (func (export "_start")
    (local $i i32) (local $total i64)
    (i32.store (i32.const 32) (i32.const 65536))
    (i32.store (i32.const 36) (i32.const {CHUNK}))
    (memory.fill (i32.const 65536) (i32.const 0xab) (i32.const {CHUNK}))
    ;; fd 3 is the preopened /data; oflags creat|trunc; rights read|seek|tell|write.
    (call $check (call $path_open (i32.const 3) (i32.const 0) (i32.const 16) (i32.const 1)
      (i32.const 9) (i64.const 102) (i64.const 0) (i32.const 0) (i32.const 52)) (i32.const 0))
    (block $written (loop $write
      (br_if $written (i32.ge_u (local.get $i) (i32.const {chunks})))
      (call $check (call $fd_write (i32.load (i32.const 52)) (i32.const 32) (i32.const 1) (i32.const 48)) (i32.const 1))
      (local.set $total (i64.add (local.get $total) (i64.extend_i32_u (i32.load (i32.const 48)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $write)))
    (call $check (call $fd_seek (i32.load (i32.const 52)) (i64.const 0) (i32.const 0) (i32.const 56)) (i32.const 2))
    (local.set $i (i32.const 0))
    (block $read (loop $more
      (call $check (call $fd_read (i32.load (i32.const 52)) (i32.const 32) (i32.const 1) (i32.const 48)) (i32.const 3))
      (br_if $read (i32.eqz (i32.load (i32.const 48))))
      (local.set $total (i64.sub (local.get $total) (i64.extend_i32_u (i32.load (i32.const 48)))))
      (br $more)))
    (if (i64.ne (local.get $total) (i64.const 0)) (then (call $exit (i32.const 9))))
    (call $check (call $fd_close (i32.load (i32.const 52))) (i32.const 4))
    (call $check (call $unlink (i32.const 3) (i32.const 16) (i32.const 1)) (i32.const 5))))
"#
    )
}

fn request(chunks: u64) -> WasmRequest {
    WasmRequest {
        module: wat::parse_str(module_wat(chunks)).expect("the bench module's WAT compiles"),
        dirs: vec![WasmDir::new("/data", false)],
        ..Default::default()
    }
}

fn run(sb: &Sandbox, req: &WasmRequest) {
    let out = sb
        .run_wasm(req, Some(Duration::from_secs(120)))
        .expect("run_wasm");
    assert_eq!(
        out.outcome,
        WasmOutcome::Exit(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wasm_fs(c: &mut Criterion) {
    let file = request(CHUNKS);
    let baseline = request(0);
    let sb = Sandbox::micro().expect("micro sandbox starts");
    if let Some(vm) = sb.vm() {
        announce(
            "wasm_fs",
            vm.host_kind(),
            "micro (agent, wasm, preopened dir)",
        );
    }
    match sb.run_wasm(&file, Some(Duration::from_secs(120))) {
        Err(Error::Unsupported { op, guest }) => {
            eprintln!("[wasm_fs] SKIPPED: the {guest} answers {op}: unsupported (no WASM runtime in this build)");
            return;
        }
        Err(e) => panic!("run_wasm of the file module failed: {e}"),
        Ok(out) => assert_eq!(
            out.outcome,
            WasmOutcome::Exit(0),
            "stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }

    let mut g = c.benchmark_group("wasm_fs");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    g.bench_function("baseline", |b| b.iter(|| run(&sb, &baseline)));
    // Written once and read once.
    g.throughput(Throughput::Bytes(2 * CHUNK * CHUNKS));
    g.bench_function("write_read_1MiB", |b| b.iter(|| run(&sb, &file)));
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = wasm_fs
}
criterion_main!(benches);
