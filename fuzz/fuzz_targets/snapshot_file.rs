//! cargo-fuzz entry point; the body lives in `kvmsandbox_fuzz::snapshot_file` so stable
//! `cargo test` can replay regressions through the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kvmsandbox_fuzz::snapshot_file::fuzz(data);
});
