//! The demo `make run` shows: a micro sandbox boots, its agent answers, and the
//! boot phases are printed. `cargo run --release -p kvmsandbox --example sandbox_demo`
use kvmsandbox::{Sandbox, VmConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sb = Sandbox::start(VmConfig::micro().vcpus(1))?;
    let rtt = sb.ping()?;
    let echoed = sb.echo(b"hello from the host")?;
    println!("--- guest console ---\n{}", sb.console_output().trim_end());
    println!("--- host: {} ---", sb.vm().map(|v| v.host_kind().to_string()).unwrap_or_default());
    println!("agent ping round trip: {:.3} ms", rtt.as_secs_f64() * 1e3);
    println!("echo: {}", String::from_utf8_lossy(&echoed));
    println!("boot phases (from create):\n{}", sb.timings());
    sb.shutdown()?;
    Ok(())
}
