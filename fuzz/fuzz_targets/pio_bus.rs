//! cargo-fuzz entry point; the body lives in `kvmsandbox_fuzz::pio_bus` so stable
//! `cargo test` can replay regressions through the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kvmsandbox_fuzz::pio_bus::fuzz(data);
});
