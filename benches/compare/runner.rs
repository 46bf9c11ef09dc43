//! Runs one boot under each VMM and times it to the guest's ready marker.
//! QEMU: from spawning `qemu-system-x86_64 -M microvm -enable-kvm` to the marker
//! line on its serial (stdout). kvmsandbox: a `bench-compare-ours` child process
//! reports its own `Vm::start` duration, and we time spawn → its report line
//! (process start included, as for QEMU). Memory is read from /proc at the marker.

use kvmsandbox_benches::procmem::{read_proc, ProcMem};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Errors running one boot.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The VMM process could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The marker did not appear in time.
    #[error("{vmm}: no {marker:?} within {timeout:?}; last output: {last:?}")]
    Timeout {
        /// Which VMM.
        vmm: &'static str,
        /// The awaited line.
        marker: String,
        /// How long we waited.
        timeout: Duration,
        /// Its last output line.
        last: String,
    },
    /// The process ended before the marker.
    #[error("{vmm} ended before {marker:?}; last output: {last:?}")]
    Ended {
        /// Which VMM.
        vmm: &'static str,
        /// The awaited line.
        marker: String,
        /// Its last output line.
        last: String,
    },
    /// Our child's report line was malformed.
    #[error("bad report line from bench-compare-ours: {0:?}")]
    BadReport(String),
    /// /proc could not be read.
    #[error(transparent)]
    Proc(#[from] kvmsandbox_benches::procmem::ProcMemError),
}

/// A guest to boot under both VMMs.
#[derive(Clone, Debug)]
pub enum GuestSpec {
    /// The micro guest ELF (the same bytes kvmsandbox embeds).
    Micro {
        /// The ELF written out for QEMU.
        elf: PathBuf,
    },
    /// A Linux kernel and initramfs.
    Linux {
        /// vmlinux (PVH ELF).
        vmlinux: PathBuf,
        /// newc cpio.
        initrd: PathBuf,
        /// The command line kvmsandbox would use (minus its virtio devices).
        cmdline: String,
    },
}

impl GuestSpec {
    /// The console line that means "booted".
    pub fn marker(&self) -> &'static str {
        match self {
            GuestSpec::Micro { .. } => MICRO_MARKER,
            GuestSpec::Linux { .. } => kvmsandbox::vmm::vm::LINUX_DEFAULT_MARKER,
        }
    }

    /// Guest RAM in MiB (same on both sides).
    pub fn mem_mib(&self) -> u64 {
        match self {
            GuestSpec::Micro { .. } => kvmsandbox::config::DEFAULT_MICRO_MEM_MIB,
            GuestSpec::Linux { .. } => kvmsandbox::config::DEFAULT_LINUX_MEM_MIB,
        }
    }

    fn timeout(&self) -> Duration {
        match self {
            GuestSpec::Micro { .. } => Duration::from_secs(60),
            GuestSpec::Linux { .. } => Duration::from_secs(400),
        }
    }
}

/// The micro guest's ready line (`kvmsandbox_proto::bootinfo::READY_MARKER`).
pub const MICRO_MARKER: &str = "KVMSANDBOX-READY";

/// One measured boot.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Process spawn → marker (both VMMs).
    pub wall: Duration,
    /// VMM-internal start → marker (QEMU: same as `wall`; ours: `Vm::start`).
    pub start: Duration,
    /// Start → first guest console line (QEMU: includes its firmware and loader).
    pub first_line: Option<Duration>,
    /// Memory at the marker.
    pub mem: ProcMem,
}

/// Kills the child on every path out.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stdout lines of a child with their arrival times.
type Lines = mpsc::Receiver<(Instant, String)>;

/// Spawns `cmd` and streams its stdout lines (with arrival times) over a channel.
fn spawn_lines(mut cmd: Command) -> Result<(Reaper, Instant, Lines), RunError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let t0 = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|source| RunError::Spawn { program, source })?;
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(out).split(b'\n').map_while(Result::ok) {
                let s = String::from_utf8_lossy(&line)
                    .trim_end_matches('\r')
                    .to_string();
                if tx.send((Instant::now(), s)).is_err() {
                    break;
                }
            }
        });
    }
    if let Some(err) = child.stderr.take() {
        // Drained so the child never blocks on a full pipe; QEMU warns about CPUID there.
        std::thread::spawn(move || std::io::copy(&mut BufReader::new(err), &mut std::io::sink()));
    }
    Ok((Reaper(child), t0, rx))
}

/// Waits for a line satisfying `pred`, returning it and its arrival time.
fn wait_line(
    rx: &Lines,
    vmm: &'static str,
    marker: &str,
    timeout: Duration,
    pred: impl Fn(&str) -> bool,
) -> Result<(Instant, String), RunError> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((t, l)) if pred(&l) => return Ok((t, l)),
            Ok((_, l)) => last = l,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(RunError::Timeout {
                    vmm,
                    marker: marker.to_string(),
                    timeout,
                    last,
                })
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(RunError::Ended {
                    vmm,
                    marker: marker.to_string(),
                    last,
                })
            }
        }
    }
}

/// One boot under `qemu-system-x86_64 -M microvm -enable-kvm`.
pub fn run_qemu(guest: &GuestSpec) -> Result<Sample, RunError> {
    let mem = guest.mem_mib();
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-M", "microvm", "-enable-kvm", "-smp", "1", "-m"])
        .arg(format!("{mem}M"));
    cmd.args([
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
    ]);
    match guest {
        GuestSpec::Micro { elf } => {
            cmd.arg("-kernel").arg(elf).args(["-append", "test=stay"]);
        }
        GuestSpec::Linux {
            vmlinux,
            initrd,
            cmdline,
        } => {
            cmd.arg("-kernel")
                .arg(vmlinux)
                .arg("-initrd")
                .arg(initrd)
                .arg("-append")
                .arg(cmdline);
        }
    }
    let (child, t0, rx) = spawn_lines(cmd)?;
    let marker = guest.marker();
    let (first, l) = wait_line(&rx, "QEMU", marker, guest.timeout(), |l| {
        !l.trim().is_empty()
    })?;
    let t = if l.contains(marker) {
        first
    } else {
        wait_line(&rx, "QEMU", marker, guest.timeout(), |l| l.contains(marker))?.0
    };
    let mem = read_proc(&child.0.id().to_string(), mem)?;
    drop(child);
    Ok(Sample {
        wall: t - t0,
        start: t - t0,
        first_line: Some(first - t0),
        mem,
    })
}

/// One boot under kvmsandbox, in a `bench-compare-ours` child process.
pub fn run_ours(ours: &Path, guest: &GuestSpec) -> Result<Sample, RunError> {
    let mut cmd = Command::new(ours);
    match guest {
        GuestSpec::Micro { .. } => {
            cmd.arg("micro").arg(guest.mem_mib().to_string());
        }
        GuestSpec::Linux {
            vmlinux, initrd, ..
        } => {
            cmd.arg("linux")
                .arg(guest.mem_mib().to_string())
                .arg(vmlinux)
                .arg(initrd);
        }
    }
    let (child, t0, rx) = spawn_lines(cmd)?;
    let (t, line) = wait_line(&rx, "kvmsandbox", "READY", guest.timeout(), |l| {
        l.starts_with("READY ")
    })?;
    drop(child);
    let field = |name: &str| -> Result<u64, RunError> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            .ok_or_else(|| RunError::BadReport(line.clone()))
    };
    let mem = ProcMem {
        rss_kib: field("rss_kib")?,
        hwm_kib: field("hwm_kib")?,
        guest_rss_kib: field("guest_rss_kib")?,
    };
    let first_line = field("first_us").ok().map(Duration::from_micros);
    Ok(Sample {
        wall: t - t0,
        start: Duration::from_micros(field("start_us")?),
        first_line,
        mem,
    })
}

/// Runs `bench-compare-ours clean` and returns each way's samples in ms, in
/// the order printed.
pub fn run_ours_clean(ours: &Path, runs: usize) -> Result<Vec<(String, Vec<f64>)>, RunError> {
    let mut cmd = Command::new(ours);
    cmd.arg("clean").arg("64").arg(runs.to_string());
    let (child, _, rx) = spawn_lines(cmd)?;
    // Four ways, up to ~100 ms each on a loaded PVM host, plus slack.
    let timeout = Duration::from_secs(60) + Duration::from_millis(500) * runs as u32;
    let mut ways = Vec::new();
    loop {
        let (_, line) = wait_line(&rx, "kvmsandbox", "CLEAN", timeout, |l| {
            l.starts_with("CLEAN ")
        })?;
        let mut words = line.split_whitespace().skip(1);
        let name = words.next().unwrap_or_default().to_string();
        if name == "done" {
            break;
        }
        let ms: Vec<f64> = words
            .filter_map(|w| w.parse::<f64>().ok())
            .map(|us| us / 1e3)
            .collect();
        if ms.is_empty() {
            return Err(RunError::BadReport(line));
        }
        ways.push((name, ms));
    }
    drop(child);
    Ok(ways)
}
