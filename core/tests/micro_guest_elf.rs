//! Guard: the micro guest (and everything linked into it) must not contain
//! instructions PVM's emulator cannot run (PLATFORM.md): SSE/AVX registers,
//! popcnt, cmpxchg16b, xsave. Uses objdump from binutils.

#[test]
fn micro_guest_has_no_unemulated_instructions() {
    let path = std::env::temp_dir().join(format!("kvmsb-micro-{}.elf", std::process::id()));
    std::fs::write(&path, kvmsandbox::config::MICRO_GUEST_ELF).unwrap();
    let out = std::process::Command::new("objdump").arg("-d").arg(&path).output().expect("objdump (binutils) is needed");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().count() > 100, "disassembly looks empty");
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| ["xmm", "ymm", "zmm", "popcnt", "cmpxchg16b", "xsave", "xrstor"].iter().any(|w| l.contains(w)))
        .take(20)
        .collect();
    assert!(bad.is_empty(), "unemulated instructions in the micro guest:\n{}", bad.join("\n"));
    std::fs::remove_file(&path).ok();
}
