//! The demo `make run` shows: a micro sandbox boots, its agent answers, and the
//! boot phases are printed. `cargo run --release -p kvmsandbox --example sandbox_demo`
use kvmsandbox::{Sandbox, VmConfig, WasmRequest};

const HELLO_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from WebAssembly in a microVM\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 36))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sb = Sandbox::start(VmConfig::micro().vcpus(1))?;
    let rtt = sb.ping()?;
    let echoed = sb.echo(b"hello from the host")?;
    // An untrusted WASI program, run in the guest's interpreter with a fuel budget.
    let module = wat::parse_str(HELLO_WAT)?;
    let t = std::time::Instant::now();
    let run = sb.run_wasm(
        &WasmRequest {
            module,
            fuel: Some(1_000_000),
            ..Default::default()
        },
        None,
    )?;
    let wasm_time = t.elapsed();
    println!("--- guest console ---\n{}", sb.console_output().trim_end());
    println!(
        "--- host: {} ---",
        sb.vm()
            .map(|v| v.host_kind().to_string())
            .unwrap_or_default()
    );
    println!("agent ping round trip: {:.3} ms", rtt.as_secs_f64() * 1e3);
    println!("echo: {}", String::from_utf8_lossy(&echoed));
    println!(
        "wasm: {:?}, stdout {:?} in {:.1} ms",
        run.outcome,
        String::from_utf8_lossy(&run.stdout),
        wasm_time.as_secs_f64() * 1e3
    );
    println!("boot phases (from create):\n{}", sb.timings());
    sb.shutdown()?;
    Ok(())
}
