//! A WASM program asks the host for data through host functions the host
//! grants, and nothing else: `host.lookup(key) -> bytes` reads a record from
//! a map in this process, `host.log(level, message)` prints on the host.
//! `cargo run --release -p kvmsandbox --example host_functions`
use kvmsandbox::agent::{HostFunctions, HostReturn, HostType, Val};
use kvmsandbox::{Sandbox, WasmRequest};
use std::collections::HashMap;
use std::time::Duration;

/// Looks up "user:7", logs what it got at level 1, prints it and exits.
const PROGRAM_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "host" "lookup" (func $lookup (param i32 i32 i32 i32) (result i32)))
  (import "host" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "user:7")
  (func (export "_start") (local $n i32)
    ;; value = lookup("user:7") into 100..356
    (local.set $n (call $lookup (i32.const 16) (i32.const 6) (i32.const 100) (i32.const 256)))
    (call $log (i32.const 1) (i32.const 100) (local.get $n))
    ;; print it with a newline
    (i32.store8 (i32.add (i32.const 100) (local.get $n)) (i32.const 10))
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.add (local.get $n) (i32.const 1)))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let records: HashMap<&str, &str> =
        [("user:7", "Ada Lovelace"), ("user:8", "Alan Turing")].into();
    let mut hosts = HostFunctions::new();
    hosts
        .add(
            "host",
            "lookup",
            &[HostType::Bytes],
            &[HostType::Bytes],
            move |call| {
                let key = String::from_utf8_lossy(&call.buffers[0]);
                match records.get(key.as_ref()) {
                    Some(value) => Ok(HostReturn::bytes(value.as_bytes())),
                    None => Err(format!("no record {key:?}")),
                }
            },
        )?
        .add(
            "host",
            "log",
            &[HostType::I32, HostType::Bytes],
            &[],
            |call| {
                let level = match call.args {
                    [Val::I32(level)] => *level,
                    _ => 0,
                };
                println!(
                    "[guest log, level {level}] {}",
                    String::from_utf8_lossy(&call.buffers[0])
                );
                Ok(HostReturn::default())
            },
        )?;

    let sb = Sandbox::micro()?;
    let req = WasmRequest {
        module: wat::parse_str(PROGRAM_WAT)?,
        fuel: Some(1_000_000),
        host_functions: hosts,
        ..Default::default()
    };
    let out = sb.run_wasm(&req, Some(Duration::from_secs(60)))?;
    println!("outcome: {:?}", out.outcome);
    print!("stdout: {}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}
