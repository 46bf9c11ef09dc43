//! Bodies of the kvmsandbox fuzz targets, one module per target.
//!
//! Each `fuzz(data)` builds guest-controlled state (guest memory, descriptor rings,
//! register accesses, wire bytes) from the input and drives the *real* parsing code
//! with it: the same functions the VMM and the guests call. The cargo-fuzz binaries
//! in `fuzz_targets/` are one-line wrappers, so stable `cargo test` replays saved
//! crash inputs and seeds through identical code (`tests/regressions.rs`).
//!
//! A panic anywhere is a finding: either the device panicked on guest input, or one
//! of the invariants asserted here (a documented promise of the code under test)
//! was broken.

pub mod input;
pub mod mem;
pub mod ring;
pub mod seeds;
pub mod tmp;

pub mod agent_client;
pub mod mmio_registers;
pub mod pio_bus;
pub mod proto_frames;
pub mod snapshot_file;
pub mod virtio_blk;
pub mod vsock_lifecycle;
pub mod vsock_muxer;
pub mod vsock_packet;
pub mod wasi_abi;
pub mod wasm_fs;

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target, by name, for the regression runner.
pub const TARGETS: &[(&str, Target)] = &[
    ("virtio_blk", virtio_blk::fuzz),
    ("vsock_packet", vsock_packet::fuzz),
    ("vsock_muxer", vsock_muxer::fuzz),
    ("mmio_registers", mmio_registers::fuzz),
    ("proto_frames", proto_frames::fuzz),
    ("wasi_abi", wasi_abi::fuzz),
    ("snapshot_file", snapshot_file::fuzz),
    ("wasm_fs", wasm_fs::fuzz),
    ("agent_client", agent_client::fuzz),
    ("pio_bus", pio_bus::fuzz),
    ("vsock_lifecycle", vsock_lifecycle::fuzz),
];

/// Whether `FUZZ_TRACE` is set: targets then print what the device did, to check
/// by eye that a seed reaches the state it is meant to.
pub fn trace_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some())
}
