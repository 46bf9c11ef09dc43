//! Compiles the WAT workloads the probe runs (core/tests/wasm/) into OUT_DIR.

use std::path::PathBuf;

const WORKLOADS: &[&str] = &[
    "hello",
    "floats",
    "oob_load",
    "infinite_loop",
    "stack_overflow",
    "count_loop",
];

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../core/tests/wasm");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for name in WORKLOADS {
        let source = dir.join(format!("{name}.wat"));
        println!("cargo:rerun-if-changed={}", source.display());
        let wasm = wat::parse_file(&source)
            .unwrap_or_else(|error| panic!("{}: {error}", source.display()));
        std::fs::write(out.join(format!("{name}.wasm")), wasm).expect("write wasm");
    }
}
