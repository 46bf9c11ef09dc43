//! cargo-fuzz entry point; the body lives in `kvmsandbox_fuzz::proto_frames` so stable
//! `cargo test` can replay regressions through the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kvmsandbox_fuzz::proto_frames::fuzz(data);
});
