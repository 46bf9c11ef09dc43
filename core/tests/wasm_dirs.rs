//! Preopened directories end to end in the micro guest: files in (bytes and a
//! host directory copied in), files out (as data and written to a host
//! directory), a read-only directory refusing writes with EROFS, and the
//! tree's caps (ENOSPC inside the guest; contents over the caps a typed
//! error). Needs /dev/kvm.

use kvmsandbox::agent::WasmErrorKind;
use kvmsandbox::{Sandbox, WasmDir, WasmFileKind, WasmFsLimits, WasmOutcome, WasmRequest};
use std::path::PathBuf;

fn files_module() -> Vec<u8> {
    let path = format!("{}/tests/wasm/files.wat", env!("CARGO_MANIFEST_DIR"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kvmsb-wasm-dirs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn file<'a>(files: &'a [kvmsandbox::WasmFile], path: &str) -> Option<&'a WasmFileKind> {
    files.iter().find(|f| f.path == path).map(|f| &f.kind)
}

#[test]
fn files_in_out_read_only_and_write_back() {
    let src = tmp("src");
    let input: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(src.join("in.txt"), &input).unwrap();
    let sb = Sandbox::micro().unwrap();
    let req = WasmRequest {
        module: files_module(),
        dirs: vec![
            WasmDir::from_host("/in", &src, true, 1 << 20).unwrap(),
            WasmDir::new("/out", false).with_file("keep.txt", b"untouched".to_vec()),
        ],
        ..Default::default()
    };
    let out = sb.run_wasm(&req, None).unwrap();
    // 69 = EROFS: creating a file in the read-only directory was refused.
    assert_eq!(
        out.outcome,
        WasmOutcome::Exit(69),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.dirs.len(), 1, "only the writable directory comes back");
    let dir = &out.dirs[0];
    assert_eq!(dir.guest_path, "/out");
    assert_eq!(
        file(&dir.files, "copy.txt"),
        Some(&WasmFileKind::File(input.clone()))
    );
    assert_eq!(file(&dir.files, "made"), Some(&WasmFileKind::Dir));
    assert_eq!(
        file(&dir.files, "keep.txt"),
        Some(&WasmFileKind::File(b"untouched".to_vec()))
    );

    let dest = tmp("dest");
    dir.write_to(&dest).unwrap();
    assert_eq!(std::fs::read(dest.join("copy.txt")).unwrap(), input);
    assert!(dest.join("made").is_dir());
    // The host directory that was copied in is as it was.
    assert_eq!(std::fs::read_dir(&src).unwrap().count(), 1);

    // The same sandbox runs the next module with a fresh tree.
    let again = sb.run_wasm(&req, None).unwrap();
    assert_eq!(again.outcome, WasmOutcome::Exit(69));
    std::fs::remove_dir_all(&src).unwrap();
    std::fs::remove_dir_all(&dest).unwrap();
}

#[test]
fn caps_are_enospc_in_the_guest_and_oversized_contents_are_refused() {
    let sb = Sandbox::micro().unwrap();
    let input = vec![b'x'; 8192];
    let mut req = WasmRequest {
        module: files_module(),
        dirs: vec![
            WasmDir::new("/in", true).with_file("in.txt", input),
            WasmDir::new("/out", false),
        ],
        fs_limits: WasmFsLimits {
            max_bytes: Some(12_000),
            max_inodes: None,
        },
        ..Default::default()
    };
    let out = sb.run_wasm(&req, None).unwrap();
    // 100 + 51 (ENOSPC): the copy did not fit the tree's cap.
    assert_eq!(out.outcome, WasmOutcome::Exit(151));
    match file(&out.dirs[0].files, "copy.txt") {
        Some(WasmFileKind::File(bytes)) => assert!(bytes.is_empty(), "{} bytes", bytes.len()),
        other => panic!("copy.txt: {other:?}"),
    }

    req.fs_limits.max_bytes = Some(4096);
    let out = sb.run_wasm(&req, None).unwrap();
    match out.outcome {
        WasmOutcome::Error {
            kind: WasmErrorKind::Other(102),
            message,
        } => assert!(message.contains("in.txt"), "{message}"),
        other => panic!("expected a preopen error, got {other:?}"),
    }
    assert!(sb.ping().is_ok(), "the sandbox works on");
}
