//! kvmsandbox-agent: the Linux guest's PID 1 (and, with `--unix`, a host process
//! used by tests). It listens on vsock (or a Unix socket) and serves the agent
//! protocol of `kvmsandbox-proto` on every connection, one thread each.

mod args;
mod cgroup;
mod exec;
mod files;
mod fs_ops;
mod mounts;
mod output;
mod pid1;
mod reaper;
mod serve;
mod stdin;
mod transport;
mod wire;

use std::sync::OnceLock;

/// The listener, kept so host-mode shutdown can remove its socket file.
static LISTENER: OnceLock<transport::Listener> = OnceLock::new();

fn host_shutdown() -> ! {
    if let Some(l) = LISTENER.get() {
        l.cleanup();
    }
    if let Some(t) = cgroup::subtree() {
        t.remove();
    }
    std::process::exit(0)
}

fn main() {
    let is_pid1 = std::process::id() == 1;
    if let Err(msg) = run(is_pid1) {
        eprintln!("kvmsandbox-agent: {msg}");
        if is_pid1 {
            // Exiting PID 1 panics the kernel; end the VM cleanly instead.
            pid1::end_vm();
        }
        std::process::exit(1);
    }
}

fn run(is_pid1: bool) -> Result<(), String> {
    let args = args::parse(std::env::args().skip(1), is_pid1).map_err(|e| e.to_string())?;
    let transport = args.transport;
    if is_pid1 {
        pid1::init().map_err(|e| e.to_string())?;
        let root = args
            .cgroup_root
            .unwrap_or_else(|| mounts::CGROUP_ROOT.into());
        cgroup::init(Some(&root));
    } else {
        // Orphans of our commands come to us, as they would to PID 1, so host mode
        // reaps and contains the same way.
        // SAFETY: prctl(2) with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) } < 0 {
            eprintln!(
                "kvmsandbox-agent: PR_SET_CHILD_SUBREAPER: {}",
                std::io::Error::last_os_error()
            );
        }
        cgroup::init(args.cgroup_root.as_deref());
    }
    reaper::start().map_err(|e| format!("spawning the reaper: {e}"))?;
    let listener = transport::Listener::bind(&transport)
        .map_err(|e| format!("listening on {transport:?}: {e}"))?;
    let listener = LISTENER.get_or_init(|| listener);
    let shutdown = if is_pid1 {
        serve::ShutdownHook {
            prepare: pid1::prepare_shutdown,
            linger: pid1::SHUTDOWN_LINGER,
            end: pid1::end_vm,
        }
    } else {
        // A Unix socket delivers `Ok` before `send` returns: nothing to wait for.
        serve::ShutdownHook {
            prepare: || {},
            linger: std::time::Duration::ZERO,
            end: host_shutdown,
        }
    };
    if is_pid1 {
        pid1::announce_ready();
    } else {
        // Not println!: a closed stdout must not panic the agent.
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "{} on {transport:?}", pid1::READY_MARKER);
    }
    loop {
        let conn = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("kvmsandbox-agent: accept: {e}");
                std::thread::sleep(std::time::Duration::from_millis(50));
                continue;
            }
        };
        let spawned = std::thread::Builder::new()
            .name("conn".into())
            .spawn(move || {
                match serve::serve(conn, shutdown) {
                    Ok(()) => {}
                    // The host hung up (e.g. a readiness probe): nothing to report.
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                        ) => {}
                    Err(e) => eprintln!("kvmsandbox-agent: connection: {e}"),
                }
            });
        if let Err(e) = spawned {
            eprintln!("kvmsandbox-agent: spawning a connection thread: {e}");
        }
    }
}
