//! Guard: the micro guest (and everything linked into it) must not contain
//! instructions PVM's emulator cannot run (docs/platform.md): SSE/AVX registers,
//! popcnt, cmpxchg16b, xsave. Uses objdump from binutils.

#[test]
fn micro_guest_has_no_unemulated_instructions() {
    let path = std::env::temp_dir().join(format!("kvmsb-micro-{}.elf", std::process::id()));
    std::fs::write(&path, kvmsandbox::config::MICRO_GUEST_ELF).unwrap();
    let out = std::process::Command::new("objdump")
        .arg("-d")
        .arg(&path)
        .output()
        .expect("objdump (binutils) is needed");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().count() > 100, "disassembly looks empty");
    // Instruction lines are "addr:\tbytes\tmnemonic operands"; symbol names (wasmi
    // has functions called `i32_popcnt`) must not count.
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| {
            let Some(insn) = l.split('\t').nth(2) else {
                return false;
            };
            let mnemonic = insn.split_whitespace().next().unwrap_or("");
            ["%xmm", "%ymm", "%zmm"].iter().any(|r| insn.contains(r))
                || [
                    "popcnt",
                    "cmpxchg16b",
                    "xsave",
                    "xrstor",
                    "fxsave",
                    "ldmxcsr",
                    "stmxcsr",
                ]
                .iter()
                .any(|m| mnemonic.starts_with(m))
        })
        .take(20)
        .collect();
    assert!(
        bad.is_empty(),
        "unemulated instructions in the micro guest:\n{}",
        bad.join("\n")
    );
    std::fs::remove_file(&path).ok();
}
