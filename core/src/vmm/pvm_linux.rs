//! Recognises the way a Linux guest dies on a PVM host: the kernel boots (it is
//! built for PVM's emulated execution), but user space faults at once — init is
//! killed by a signal and the kernel panics with "Attempted to kill init!". That
//! panic alone reads like a broken initramfs, so [`init_killed_by_signal`] lets
//! the VM turn it into an error that says what is really wrong.

/// The signal that killed init, if `panic` (the kernel's panic line) or the
/// console lines before it show init dying by a signal. `None` for any other
/// panic, and for init exiting with a status (a broken init, not the host).
pub fn init_killed_by_signal(panic: &str, last_lines: &[String]) -> Option<i32> {
    if !panic.contains("Attempted to kill init!") {
        return None;
    }
    // exitcode is init's wait status: the low 7 bits are the killing signal
    // (0 = a normal exit, 0x7f = stopped).
    if let Some(status) = exitcode(panic) {
        let signal = (status & 0x7f) as i32;
        return (signal != 0 && signal != 0x7f).then_some(signal);
    }
    // No exitcode in the panic line: the kernel's own report of the fault.
    last_lines.iter().find_map(|l| {
        if l.contains("init[1]: segfault") {
            Some(libc::SIGSEGV)
        } else if l.contains("init[1] trap invalid opcode") {
            Some(libc::SIGILL)
        } else if l.contains("init[1] general protection") {
            Some(libc::SIGSEGV)
        } else {
            None
        }
    })
}

fn exitcode(panic: &str) -> Option<u32> {
    let rest = &panic[panic.find("exitcode=")? + "exitcode=".len()..];
    let hex = rest.strip_prefix("0x")?;
    let end = hex
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(hex.len());
    u32::from_str_radix(&hex[..end], 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_killed_by_sigsegv_is_recognised() {
        let p = "Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b";
        assert_eq!(init_killed_by_signal(p, &[]), Some(libc::SIGSEGV));
        let p = "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000004";
        assert_eq!(init_killed_by_signal(p, &[]), Some(libc::SIGILL));
    }

    #[test]
    fn init_exiting_with_a_status_is_not_the_host() {
        let p = "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100";
        assert_eq!(
            init_killed_by_signal(p, &["init[1]: segfault at 0".into()]),
            None
        );
        let p = "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)";
        assert_eq!(
            init_killed_by_signal(p, &["init[1]: segfault at 0".into()]),
            None
        );
    }

    #[test]
    fn a_segfault_report_stands_in_for_a_missing_exitcode() {
        let lines = ["init[1]: segfault at 10 ip 0000000000401000 sp 00007ffc error 4".to_string()];
        let p = "Kernel panic - not syncing: Attempted to kill init!";
        assert_eq!(init_killed_by_signal(p, &lines), Some(libc::SIGSEGV));
        assert_eq!(init_killed_by_signal(p, &[]), None);
    }
}
