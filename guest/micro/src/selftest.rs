//! `test=blk-selftest`: writes a pattern over the first 64 KiB of disk 0, reads
//! it back, and prints a checksum line the host test compares:
//! `blk-selftest: ok sectors=<capacity> checksum=<fnv1a64 hex>` (or `FAIL ...`).

use alloc::vec;

use crate::virtio::blk::Blk;

const BYTES: usize = 64 * 1024;

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The pattern byte at `i` (also computed by the host test).
pub fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 9)) as u8
}

/// Runs the self test; returns the exit status (0 = pass).
pub fn blk(disks: &mut [Blk]) -> u32 {
    let Some(disk) = disks.first_mut() else {
        crate::println!("blk-selftest: FAIL no disk");
        return 1;
    };
    let len = BYTES.min(disk.capacity() as usize * 512);
    let data: alloc::vec::Vec<u8> = (0..len).map(pattern).collect();
    if let Err(e) = disk.write(0, &data).and_then(|()| disk.flush()) {
        crate::println!("blk-selftest: FAIL write: {}", e);
        return 1;
    }
    let mut back = vec![0u8; len];
    if let Err(e) = disk.read(0, &mut back) {
        crate::println!("blk-selftest: FAIL read: {}", e);
        return 1;
    }
    if back != data {
        let at = back
            .iter()
            .zip(&data)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        crate::println!("blk-selftest: FAIL mismatch at byte {}", at);
        return 1;
    }
    crate::println!(
        "blk-selftest: ok sectors={} checksum={:016x}",
        disk.capacity(),
        fnv1a(&back)
    );
    0
}

/// `test=vsock-connect port=<p>`: connects out to the host (CID 2) on port `p`,
/// sends `hello from the micro guest\n`, prints what comes back until the host
/// closes (`vsock-connect: reply <text>`), and returns the exit status.
pub fn vsock_connect(vsock: Option<&mut crate::virtio::vsock::Vsock>, port: Option<&str>) -> u32 {
    use crate::virtio::vsock::HOST_CID;
    let (Some(vs), Some(port)) = (vsock, port.and_then(|p| p.parse::<u32>().ok())) else {
        crate::println!("vsock-connect: FAIL need a vsock device and port=<n>");
        return 1;
    };
    let conn = match vs.connect(HOST_CID, port) {
        Ok(c) => c,
        Err(e) => {
            crate::println!("vsock-connect: FAIL {}", e);
            return 1;
        }
    };
    if let Err(e) = vs.send(conn, b"hello from the micro guest\n") {
        crate::println!("vsock-connect: FAIL send: {}", e);
        return 1;
    }
    let mut reply = alloc::vec::Vec::new();
    while reply.len() < 4096 {
        vs.wait_until(|v| v.available(conn) > 0 || v.at_eof(conn));
        if vs.at_eof(conn) {
            break;
        }
        let _ = vs.recv_with(conn, 4096, |b| reply.extend_from_slice(b));
    }
    vs.close(conn);
    vs.flush_blocking();
    crate::println!(
        "vsock-connect: reply {}",
        core::str::from_utf8(&reply)
            .unwrap_or("<not utf-8>")
            .trim_end()
    );
    0
}
