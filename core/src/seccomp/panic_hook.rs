//! A panic on a filtered thread must not become a seccomp kill.
//!
//! Device code runs inside `catch_unwind` on the event-loop thread, but the panic
//! hook runs first, and std's default hook prints a backtrace when `RUST_BACKTRACE`
//! is set: symbolising opens files (`/proc/self/exe`, debug info), which the filter
//! forbids, so under the Kill policy a caught device panic would take the whole
//! process down. Filtered threads therefore get a hook that prints one line to
//! stderr (a `write`, which every allow-list has) and nothing else; every other
//! thread keeps whatever hook was installed before ours. A caller that installs its
//! own hook later replaces ours: that is their call to make, and it is documented.

use std::cell::Cell;
use std::io::Write;
use std::sync::Once;

thread_local! {
    static FILTERED: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as filtered and makes sure the process's panic hook
/// spares filtered threads (installed once, chaining to the previous hook).
pub(crate) fn mark_current_thread_filtered() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if is_current_thread_filtered() {
                let name = std::thread::current().name().unwrap_or("<unnamed>").to_string();
                // One formatted write to an unbuffered stderr: no allocation-heavy
                // machinery, no file opened. A failing write has nowhere to go.
                let _ = writeln!(std::io::stderr(), "kvmsandbox: thread '{name}' panicked: {info} (seccomp-filtered thread: no backtrace)");
            } else {
                previous(info);
            }
        }));
    });
    FILTERED.with(|f| f.set(true));
}

/// Whether the calling thread has a seccomp filter of ours.
pub(crate) fn is_current_thread_filtered() -> bool {
    FILTERED.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_marked_threads_are_filtered() {
        let marked = std::thread::spawn(|| {
            mark_current_thread_filtered();
            is_current_thread_filtered()
        })
        .join()
        .unwrap();
        assert!(marked);
        assert!(!std::thread::spawn(is_current_thread_filtered)
            .join()
            .unwrap());
    }
}
