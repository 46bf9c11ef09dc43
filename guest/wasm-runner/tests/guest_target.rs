//! The guard docs/platform.md asks for: the runner built for x86_64-unknown-none
//! (inside probe/, a static binary with the micro guest's release profile)
//! contains no instruction the PVM emulator cannot run, and executed as a
//! Linux process it gets floats (soft-float), traps and fuel right. Needs the
//! x86_64-unknown-none target and objdump; takes ~1 min on a cold cache.

use std::process::Command;

#[test]
fn guest_target_build_has_no_sse_and_runs() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/probe/check.sh");
    let output = Command::new("bash")
        .arg(script)
        .output()
        .expect("run probe/check.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "probe/check.sh failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ok   no SSE"), "{stdout}");
    assert!(
        stdout.contains("ok   floats (soft-float): Exited(0)"),
        "{stdout}"
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
}
