//! The allow-lists rendered as Markdown, so `docs/seccomp.md` is generated from the
//! same tables as the filters (a unit test fails when the document is stale).

use std::fmt::Write;

use super::{allowed_ioctls, syscall_table, ThreadKind};

/// Markdown tables (syscalls, then ioctl requests) of `kind`'s allow-list.
pub fn allow_list_markdown(kind: ThreadKind) -> String {
    let mut out = String::new();
    out.push_str("| syscall | arguments allowed | why |\n|---|---|---|\n");
    for entry in syscall_table(kind) {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "| `{}` | {} | {} |",
            entry.name(),
            entry.args.describe(),
            entry.reason
        );
    }
    out.push_str("\n| ioctl request | number | why |\n|---|---|---|\n");
    for value in allowed_ioctls(kind) {
        let _ = writeln!(
            out,
            "| `{}` | `{:#x}` | {} |",
            value.name, value.value, value.reason
        );
    }
    out
}
