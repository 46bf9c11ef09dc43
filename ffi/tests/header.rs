//! The committed `include/kvmsandbox.h` must be exactly what cbindgen generates
//! from `ffi/src` today. `KVMSANDBOX_BLESS_HEADER=1` rewrites it instead of failing.

use std::path::{Path, PathBuf};

fn generate(crate_dir: &Path) -> String {
    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("ffi/cbindgen.toml parses");
    // Compile-time version macros, from the crate version (kvmsb_version() is the
    // run-time one: a program can compare the two).
    config.after_includes = Some(format!(
        "\n#define KVMSB_VERSION_MAJOR {}\n#define KVMSB_VERSION_MINOR {}\n\
         #define KVMSB_VERSION_PATCH {}\n#define KVMSB_VERSION_STRING \"{}\"",
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
        env!("CARGO_PKG_VERSION"),
    ));
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

#[test]
fn header_matches_the_sources() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let header = crate_dir.join("../include/kvmsandbox.h");
    let fresh = generate(&crate_dir);
    assert!(
        fresh.contains("kvmsb_status kvmsb_sandbox_start("),
        "generated header lacks kvmsb_sandbox_start:\n{fresh}"
    );
    if std::env::var_os("KVMSANDBOX_BLESS_HEADER").is_some() {
        std::fs::write(&header, &fresh).expect("include/kvmsandbox.h is writable");
        return;
    }
    let committed = std::fs::read_to_string(&header).unwrap_or_default();
    if committed != fresh {
        let tmp = std::env::temp_dir().join(format!("kvmsandbox-{}.h", std::process::id()));
        std::fs::write(&tmp, &fresh).expect("temp dir is writable");
        panic!(
            "include/kvmsandbox.h is out of date with ffi/src (fresh copy: {}).\n\
             Regenerate: KVMSANDBOX_BLESS_HEADER=1 cargo test -p kvmsandbox-ffi --test header",
            tmp.display()
        );
    }
}
