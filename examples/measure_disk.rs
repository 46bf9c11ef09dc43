//! Measures the micro guest's sequential virtio-blk throughput through its agent
//! on a 64 MiB disk, and the VM exits that reach the VMM per block request.
//! `cargo run --release -p kvmsandbox --example measure_disk`
use kvmsandbox::{Sandbox, VmConfig};
use std::time::Instant;

const DISK: usize = 64 << 20;
const CHUNK: usize = 512 << 10;
/// The guest's virtio-blk driver splits requests at 128 KiB.
const BLK_REQUEST: usize = 128 << 10;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join(format!("kvmsb-measure-{}.img", std::process::id()));
    std::fs::write(&path, vec![0u8; DISK])?;
    let sb = Sandbox::start(VmConfig::micro().disk(&path, false))?;
    let vm = sb.vm().ok_or("no vm")?;
    let data: Vec<u8> = (0..CHUNK).map(|i| (i * 7) as u8).collect();

    let before = vm.exit_stats();
    let t = Instant::now();
    for off in (0..DISK).step_by(CHUNK) {
        sb.disk_write(0, off as u64, &data)?;
    }
    sb.disk_flush(0)?;
    let w = t.elapsed();
    let mid = vm.exit_stats();
    let t = Instant::now();
    for off in (0..DISK).step_by(CHUNK) {
        sb.disk_read(0, off as u64, CHUNK as u32)?;
    }
    let r = t.elapsed();
    let after = vm.exit_stats();

    let requests = (DISK / BLK_REQUEST) as f64;
    println!("host: {}", vm.host_kind());
    println!(
        "sequential write: {:.2} MB/s ({:.1} s for 64 MiB)",
        DISK as f64 / w.as_secs_f64() / 1e6,
        w.as_secs_f64()
    );
    println!(
        "sequential read:  {:.2} MB/s ({:.1} s for 64 MiB)",
        DISK as f64 / r.as_secs_f64() / 1e6,
        r.as_secs_f64()
    );
    println!(
        "blk window MMIO exits per 128 KiB request: write {:.2}, read {:.2}",
        (mid.mmio_device[0] - before.mmio_device[0]) as f64 / requests,
        (after.mmio_device[0] - mid.mmio_device[0]) as f64 / requests
    );
    println!(
        "all exits during the read phase (blk + vsock + pio): {:?} -> {:?}",
        mid, after
    );
    sb.shutdown()?;
    std::fs::remove_file(&path)?;
    Ok(())
}
