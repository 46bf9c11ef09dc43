//! Replays every saved input through the fuzz target bodies on stable Rust:
//! crash reproducers in `regressions/<target>/` (each one a bug that was fixed and
//! must stay fixed) and the seed corpora in `corpus-seed/<target>/`. A target
//! directory may be missing or empty; an unknown target directory is an error.

use std::fs;
use std::panic;
use std::path::Path;

use kvmsandbox_fuzz::TARGETS;

fn replay(root: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(root);
    let Ok(dirs) = fs::read_dir(&root) else {
        return 0;
    };
    let mut count = 0;
    let mut failures = Vec::new();
    for dir in dirs {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let Some((_, body)) = TARGETS.iter().find(|(t, _)| *t == name) else {
            panic!("{}: no fuzz target named {name}", dir.display());
        };
        let mut files: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files.iter().filter(|f| f.is_file()) {
            let data = fs::read(f).unwrap();
            if panic::catch_unwind(|| body(&data)).is_err() {
                failures.push(f.display().to_string());
            }
            count += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "inputs that still crash: {failures:#?}"
    );
    count
}

#[test]
fn regression_inputs_do_not_crash() {
    replay("regressions");
}

#[test]
fn seed_corpora_do_not_crash_and_exist_for_every_target() {
    let n = replay("corpus-seed");
    for (t, _) in TARGETS {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus-seed")
            .join(t);
        let files = fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert!(files > 0, "no seed inputs for {t} in {}", dir.display());
    }
    assert!(n >= TARGETS.len());
}

#[test]
fn every_target_survives_empty_and_small_inputs() {
    for (name, body) in TARGETS {
        for data in [&[][..], &[0], &[0xff; 7], &[1; 64]] {
            assert!(
                panic::catch_unwind(|| body(data)).is_ok(),
                "{name} crashed on {data:?}"
            );
        }
    }
}
