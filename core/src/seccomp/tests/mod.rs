//! Unit tests: the tables and compiled filters here; behaviour under a live filter (in
//! forked children, so the test runner itself is never filtered) in the sibling files.

mod child;
mod doc;
mod kvm;
mod policies;
mod tgkill;
mod threads;
mod vcpu_ops;
mod vmm_ops;

use super::*;

const POLICIES: [SeccompPolicy; 4] = [
    SeccompPolicy::Kill,
    SeccompPolicy::Trap,
    SeccompPolicy::Log,
    SeccompPolicy::Disabled,
];
const KINDS: [ThreadKind; 2] = [ThreadKind::Vcpu, ThreadKind::Vmm];

#[test]
fn seccomp_filters_compile_for_every_policy() {
    for kind in KINDS {
        for policy in POLICIES {
            let program = filter_for(kind, policy).unwrap();
            match policy {
                SeccompPolicy::Disabled => assert!(program.is_none(), "{kind} {policy:?}"),
                _ => {
                    let filters = program.unwrap();
                    let program = &filters.main;
                    assert!(!program.is_empty(), "{kind} {policy:?}");
                    // Longer than the entries: every syscall compiles to a jump at least.
                    assert!(
                        program.len() > syscall_table(kind).len(),
                        "{kind} {policy:?}"
                    );
                    // Opens are refused with EACCES by a filter of their own,
                    // except under Log, which logs them like any other.
                    assert_eq!(
                        filters.deny_opens.is_some(),
                        policy != SeccompPolicy::Log,
                        "{kind} {policy:?}"
                    );
                }
            }
        }
        // The policy only changes the mismatch action, so the programs differ.
        let kill = filter_for(kind, SeccompPolicy::Kill).unwrap().unwrap();
        let trap = filter_for(kind, SeccompPolicy::Trap).unwrap().unwrap();
        assert_eq!(kill.main.len(), trap.main.len());
        assert_ne!(kill.main, trap.main);
        assert_eq!(kill.deny_opens, trap.deny_opens);
    }
}

#[test]
fn seccomp_disabled_install_is_a_no_op() {
    // Installs nothing, so it is safe to call on the test thread.
    let record = TrapRecord::new();
    install(ThreadKind::Vcpu, SeccompPolicy::Disabled, &record).unwrap();
    install(ThreadKind::Vmm, SeccompPolicy::Disabled, &record).unwrap();
    assert!(forbidden_syscall_probe(Probe::Socket).is_ok());
}

#[test]
fn seccomp_default_policy_is_kill() {
    assert_eq!(SeccompPolicy::default(), SeccompPolicy::Kill);
}

#[test]
fn seccomp_tables_are_unique_and_explained() {
    for kind in KINDS {
        let table = syscall_table(kind);
        let mut numbers: Vec<i64> = table.iter().map(|s| s.nr).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(
            numbers.len(),
            table.len(),
            "{kind}: a syscall is listed twice"
        );
        for entry in table {
            assert!(entry.ident.starts_with("SYS_"), "{}", entry.ident);
            assert!(
                !entry.reason.trim().is_empty(),
                "{kind}: {} has no reason",
                entry.name()
            );
            for value in entry.args.values() {
                assert!(
                    !value.reason.trim().is_empty(),
                    "{}: {}",
                    entry.name(),
                    value.name
                );
            }
        }
        let values = allowed_ioctls(kind);
        let ioctl = table.iter().find(|s| s.name() == "ioctl").unwrap();
        assert_eq!(ioctl.args.values().len(), values.len());
    }
}

#[test]
fn seccomp_tables_leave_out_dangerous_syscalls() {
    let never = [
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_fork,
        libc::SYS_vfork,
        libc::SYS_clone,
        libc::SYS_clone3,
        libc::SYS_ptrace,
        libc::SYS_open,
        libc::SYS_openat,
        libc::SYS_bind,
        libc::SYS_listen,
    ];
    for kind in KINDS {
        for entry in syscall_table(kind) {
            assert!(!never.contains(&entry.nr), "{kind} allows {}", entry.name());
        }
    }
    let vcpu_names: Vec<&str> = allowed_syscalls(ThreadKind::Vcpu)
        .iter()
        .map(|(n, _)| *n)
        .collect();
    for name in ["socket", "connect", "accept4", "read", "epoll_wait"] {
        assert!(!vcpu_names.contains(&name), "vCPU allows {name}");
    }
    // The VMM thread's socket() is narrowed to AF_UNIX, mmap/mprotect refuse PROT_EXEC.
    let vmm = syscall_table(ThreadKind::Vmm);
    let socket = vmm.iter().find(|s| s.name() == "socket").unwrap();
    let domains: Vec<u64> = socket.args.values().iter().map(|v| v.value).collect();
    assert_eq!(domains, vec![libc::AF_UNIX as u64]);
    for kind in KINDS {
        for name in ["mmap", "mprotect"] {
            let entry = syscall_table(kind)
                .iter()
                .find(|s| s.name() == name)
                .unwrap();
            assert!(
                matches!(entry.args, Args::BitsClear { index: 2, mask, .. } if mask == libc::PROT_EXEC as u64),
                "{kind} {name}"
            );
        }
    }
}

#[test]
fn seccomp_allowed_syscalls_mirror_the_table() {
    for kind in KINDS {
        let pairs = allowed_syscalls(kind);
        let table = syscall_table(kind);
        assert_eq!(pairs.len(), table.len());
        for ((name, reason), entry) in pairs.iter().zip(table) {
            assert_eq!(*name, entry.name());
            assert_eq!(*reason, entry.reason);
            assert!(!name.starts_with("SYS_"));
        }
        // The brief's must-haves are there.
        let names: Vec<&str> = pairs.iter().map(|(n, _)| *n).collect();
        for must in [
            "futex",
            "mmap",
            "munmap",
            "exit",
            "exit_group",
            "rt_sigreturn",
            "write",
            "ioctl",
        ] {
            assert!(names.contains(&must), "{kind} lacks {must}");
        }
    }
    let vcpu_ioctls: Vec<&str> = allowed_ioctls(ThreadKind::Vcpu)
        .iter()
        .map(|v| v.name)
        .collect();
    assert!(vcpu_ioctls.contains(&"KVM_RUN"));
    assert!(!vcpu_ioctls.contains(&"FIONBIO"));
}

#[test]
fn seccomp_syscall_names_resolve() {
    assert_eq!(syscall_name(libc::SYS_socket), Some("socket"));
    assert_eq!(syscall_name(libc::SYS_futex), Some("futex"));
    assert_eq!(syscall_name(libc::SYS_epoll_wait), Some("epoll_wait"));
    assert_eq!(syscall_name(999_999), None);
}

#[test]
fn seccomp_trapped_error_names_the_syscall() {
    let err = TrappedSyscall {
        kind: ThreadKind::Vcpu,
        number: libc::SYS_socket,
        name: "socket",
        count: 1,
    }
    .into_error();
    let text = err.to_string();
    assert!(
        text.contains("vCPU") && text.contains("`socket`") && text.contains("41"),
        "{text}"
    );
}
