//! Keeps `corpus-seed/` in step with `kvmsandbox_fuzz::seeds`: fails if a seed
//! file is missing or differs. Run with `FUZZ_WRITE_SEEDS=1` to (re)write them.

use std::fs;
use std::path::Path;

#[test]
fn seed_files_match_generator() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus-seed");
    let write = std::env::var_os("FUZZ_WRITE_SEEDS").is_some();
    for (target, name, bytes) in kvmsandbox_fuzz::seeds::all() {
        let path = root.join(target).join(name);
        if write {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, &bytes).unwrap();
        } else {
            let on_disk = fs::read(&path).unwrap_or_default();
            assert!(
                on_disk == bytes,
                "{} is stale: rerun with FUZZ_WRITE_SEEDS=1",
                path.display()
            );
        }
    }
}
