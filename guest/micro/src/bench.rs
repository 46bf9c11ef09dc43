//! `test=bench`: micro-benchmarks of the primitives the data path is made of,
//! timed by the host from the console lines' arrival (the guest has no clock it
//! can trust under PVM). Each phase prints `bench <name> <iterations>` when it
//! starts; the next line ends it.

use alloc::vec;

fn phase(name: &str, iters: usize, mut f: impl FnMut()) {
    crate::println!("bench {} {}", name, iters);
    for _ in 0..iters {
        f();
    }
}

/// Runs every phase, then prints `bench done`.
pub fn run() {
    let src = vec![1u8; 64 * 1024];
    let mut dst = vec![0u8; 64 * 1024];
    phase("copy-64k", 20, || {
        dst.copy_from_slice(core::hint::black_box(&src))
    });
    phase("zero-64k", 20, || core::hint::black_box(&mut dst).fill(0));
    phase("alloc-64k", 20, || {
        core::hint::black_box(alloc::vec::Vec::<u8>::with_capacity(64 * 1024));
    });
    let mut x = 0u64;
    phase("loop-100k", 1, || {
        for i in 0..100_000u64 {
            x = core::hint::black_box(x.wrapping_add(i));
        }
    });
    phase("byte-loop-64k", 1, || {
        for (d, s) in dst.iter_mut().zip(src.iter()) {
            *d = core::hint::black_box(*s);
        }
    });
    phase("pio-exit", 1000, || {
        let _ = crate::io::inb(0x3fd);
    });
    let ping = kvmsandbox_proto::Frame::new(1, kvmsandbox_proto::Message::Ping { nonce: 7 })
        .encode()
        .unwrap_or_default();
    phase("frame-decode-encode", 100, || {
        let mut d = kvmsandbox_proto::FrameDecoder::new();
        d.feed(core::hint::black_box(&ping));
        if let Ok(Some(f)) = d.next_frame() {
            core::hint::black_box(
                kvmsandbox_proto::Frame::new(f.request_id, f.msg)
                    .encode()
                    .ok(),
            );
        }
    });
    phase("small-alloc", 100, || {
        core::hint::black_box(alloc::boxed::Box::new(core::hint::black_box([0u8; 44])));
    });
    crate::println!("bench done");
}
