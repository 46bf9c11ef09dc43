//! Boots the micro guest N times (default 20) and prints the median of each boot
//! phase, create -> ready marker. `cargo run --release -p kvmsandbox --example measure_boot [N]`
use kvmsandbox::{Vm, VmConfig};
use std::time::Duration;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20);
    let mut phases: Vec<Vec<Duration>> = vec![Vec::new(); 7];
    let mut host = None;
    for _ in 0..n {
        let vm = Vm::start(VmConfig::micro().cmdline("test=exit"))?;
        vm.wait()?;
        host = Some(vm.host_kind());
        for (i, (_, t)) in vm.timings().phases().iter().enumerate() {
            if let Some(t) = t {
                phases[i].push(*t);
            }
        }
    }
    println!(
        "host: {}; {n} boots of the micro guest; median per phase (from create):",
        host.ok_or("no boots")?
    );
    let names = kvmsandbox::BootTimings::default().phases().map(|(n, _)| n);
    for (name, v) in names.iter().zip(phases) {
        if !v.is_empty() {
            println!("  {name:<18} {:>9.3} ms", median(v).as_secs_f64() * 1e3);
        }
    }
    Ok(())
}
