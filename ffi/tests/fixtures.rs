//! The WASM modules embedded as C byte arrays (for the C tests and the C
//! example, which have no WAT assembler) must be exactly their `.wat` sources
//! assembled. `KVMSANDBOX_BLESS_HEADER=1` rewrites the arrays instead of failing.

use std::fmt::Write;
use std::path::PathBuf;

/// (wat source, generated C header, C array name)
const FIXTURES: &[(&str, &str, &str)] = &[
    (
        "examples/c/hello.wat",
        "examples/c/hello_wasm.h",
        "kvmsb_example_hello_wasm",
    ),
    (
        "examples/c/ask_host.wat",
        "examples/c/ask_host_wasm.h",
        "kvmsb_example_ask_host_wasm",
    ),
    (
        "ffi/c-tests/trap.wat",
        "ffi/c-tests/trap_wasm.h",
        "kvmsb_test_trap_wasm",
    ),
    (
        "ffi/c-tests/args_env.wat",
        "ffi/c-tests/args_env_wasm.h",
        "kvmsb_test_args_env_wasm",
    ),
    (
        "core/tests/wasm/files.wat",
        "ffi/c-tests/files_wasm.h",
        "kvmsb_test_files_wasm",
    ),
    (
        "ffi/c-tests/host_fn.wat",
        "ffi/c-tests/host_fn_wasm.h",
        "kvmsb_test_host_fn_wasm",
    ),
    (
        "ffi/c-tests/host_fn_fail.wat",
        "ffi/c-tests/host_fn_fail_wasm.h",
        "kvmsb_test_host_fn_fail_wasm",
    ),
];

fn render(wat: &str, array: &str, bytes: &[u8]) -> String {
    let guard = array.to_uppercase() + "_H";
    let mut s = format!(
        "/* GENERATED from {wat} by ffi/tests/fixtures.rs: do not edit.\n \
         * Regenerate: KVMSANDBOX_BLESS_HEADER=1 cargo test -p kvmsandbox-ffi --test fixtures */\n\
         #ifndef {guard}\n#define {guard}\n\n\
         static const unsigned char {array}[{}] = {{\n",
        bytes.len()
    );
    for line in bytes.chunks(12) {
        s.push_str("   ");
        for b in line {
            write!(s, " 0x{b:02x},").unwrap();
        }
        s.push('\n');
    }
    s.push_str("};\n\n#endif\n");
    s
}

#[test]
fn embedded_modules_match_their_wat() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bless = std::env::var_os("KVMSANDBOX_BLESS_HEADER").is_some();
    for (wat, header, array) in FIXTURES {
        let bytes = wat::parse_file(root.join(wat)).unwrap_or_else(|e| panic!("{wat}: {e}"));
        assert_eq!(&bytes[..4], b"\0asm");
        let fresh = render(wat, array, &bytes);
        if bless {
            std::fs::write(root.join(header), &fresh).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(root.join(header)).unwrap_or_default();
        assert!(committed == fresh, "{header} is out of date with {wat}; regenerate with KVMSANDBOX_BLESS_HEADER=1 cargo test -p kvmsandbox-ffi --test fixtures");
    }
}
