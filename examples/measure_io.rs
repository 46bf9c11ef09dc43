//! Measures the agent ping round trip and the vsock echo-stream throughput of a
//! micro sandbox. `cargo run --release -p kvmsandbox --example measure_io`
use kvmsandbox::{Sandbox, ECHO_PORT};
use std::io::{Read, Write};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sb = Sandbox::micro()?;
    let mut rtts: Vec<f64> = (0..50)
        .map(|_| sb.ping().map(|d| d.as_secs_f64() * 1e3))
        .collect::<Result<_, _>>()?;
    rtts.sort_by(f64::total_cmp);
    let mut s = sb.connect(ECHO_PORT)?;
    let data = vec![0xa5u8; 16 << 20];
    let mut w = s.try_clone()?;
    let d2 = data.clone();
    let t = Instant::now();
    let writer = std::thread::spawn(move || w.write_all(&d2));
    let mut back = vec![0u8; data.len()];
    s.read_exact(&mut back)?;
    let dt = t.elapsed();
    writer.join().map_err(|_| "writer panicked")??;
    assert_eq!(back, data);
    println!(
        "host: {}",
        sb.vm()
            .map(|v| v.host_kind().to_string())
            .unwrap_or_default()
    );
    println!(
        "ping round trip: median {:.2} ms (min {:.2}, max {:.2}) of 50",
        rtts[25], rtts[0], rtts[49]
    );
    println!(
        "echo stream: 16 MiB each way in {:.2} s = {:.1} MB/s",
        dt.as_secs_f64(),
        data.len() as f64 / dt.as_secs_f64() / 1e6
    );
    Ok(())
}
