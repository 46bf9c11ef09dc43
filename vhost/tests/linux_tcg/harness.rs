//! Boots the Linux guest (our kernel, the agent as PID 1) under QEMU TCG, with our
//! vsock device served by `kvmsandbox-vhost-vsock` over vhost-user, and hands the
//! test a `Sandbox` attached to the device's hybrid socket.
//!
//! TCG because this machine's KVM (nested PVM) cannot run Linux user space; the
//! guest side — kernel config, PID-1 duties, the agent over the real Linux
//! virtio-vsock driver, ext4 on virtio-blk — is the same as under our VMM.
//! Both child processes are killed in `Drop` (so also when a test panics) and get
//! SIGKILL if the test process dies first (PR_SET_PDEATHSIG).

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kvmsandbox::Sandbox;

/// The agent's ready line on the console.
pub const READY: &str = "kvmsandbox-agent ready";
/// How long a TCG boot may take on a loaded 2-core machine (about 3 s when idle).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

/// Where the inputs live. Panics with what to run when one is missing.
pub struct Inputs {
    pub vmlinux: PathBuf,
    pub initrd: PathBuf,
    pub backend: PathBuf,
}

impl Inputs {
    pub fn from_env() -> Inputs {
        let kdir = std::env::var("KVMSANDBOX_KERNEL_DIR").expect(
            "KVMSANDBOX_KERNEL_DIR is not set: run `make test`, or `make kernel` and point it at the directory it prints",
        );
        let vmlinux = Path::new(&kdir).join("vmlinux");
        let initrd = std::env::var_os("KVMSANDBOX_LINUX_INITRD")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/linux/initramfs.cpio")
            });
        for (what, p) in [
            ("kernel", &vmlinux),
            ("initramfs (make linux-guest)", &initrd),
        ] {
            assert!(p.is_file(), "{what} not found at {}", p.display());
        }
        Inputs {
            vmlinux,
            initrd,
            backend: backend_binary(),
        }
    }
}

/// The backend binary: cargo names it to integration tests; the launcher
/// (`kvmsandbox-linux-tcg`) finds it next to itself in the same target directory.
fn backend_binary() -> PathBuf {
    const NAME: &str = "kvmsandbox-vhost-vsock";
    match option_env!("CARGO_BIN_EXE_kvmsandbox-vhost-vsock") {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join(NAME)))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "{NAME} not found next to this program: cargo build -p kvmsandbox-vhost-vsock"
                )
            }),
    }
}

/// What to boot.
#[derive(Default)]
pub struct BootOptions {
    /// Raw disk images, attached as /dev/vda, /dev/vdb…
    pub disks: Vec<PathBuf>,
    /// Appended to the kernel command line (e.g. `kvmsandbox.root=/dev/vda`).
    pub append: String,
}

/// A running QEMU TCG guest and its vhost-user vsock backend.
pub struct TcgVm {
    dir: PathBuf,
    backend: Child,
    qemu: Child,
    boot_time: Duration,
}

/// Starts `cmd` so that it dies with the test process.
fn spawn_tied(cmd: &mut Command, log: &Path) -> Child {
    let out = File::create(log).expect("create log file");
    let err = out.try_clone().expect("clone log file");
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("starting {:?}: {e}", cmd.get_program()))
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

impl TcgVm {
    /// Boots and waits for the agent's ready line.
    pub fn boot(inputs: &Inputs, opts: &BootOptions) -> TcgVm {
        Self::boot_until(inputs, opts, READY)
    }

    /// Boots and waits for `marker` on the console (e.g. an error line of a boot
    /// meant to fail).
    pub fn boot_until(inputs: &Inputs, opts: &BootOptions, marker: &str) -> TcgVm {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("kvmsb-tcg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create run directory");
        let vhu = dir.join("vhost-user.sock");
        let backend = spawn_tied(
            Command::new(&inputs.backend)
                .arg("--socket")
                .arg(&vhu)
                .arg("--uds-path")
                .arg(dir.join("vsock.sock")),
            &dir.join("backend.log"),
        );
        let mut vm = TcgVm {
            dir,
            backend,
            // Replaced below; a placeholder child keeps Drop simple.
            qemu: Command::new("true").spawn().expect("spawn true"),
            boot_time: Duration::ZERO,
        };
        let backend_up = wait_until(Duration::from_secs(10), || {
            vhu.exists() || matches!(vm.backend.try_wait(), Ok(Some(_)))
        });
        assert!(
            backend_up && vhu.exists(),
            "the vhost-user backend did not start: {}",
            vm.log("backend.log")
        );
        let _ = vm.qemu.wait();
        let mut q = Command::new("qemu-system-x86_64");
        q.args(["-M", "microvm,accel=tcg,acpi=off,memory-backend=mem"])
            .args(["-cpu", "max", "-smp", "2", "-m", "512"])
            .args(["-object", "memory-backend-memfd,id=mem,size=512M,share=on"])
            .args([
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-no-reboot",
            ])
            .arg("-serial")
            .arg(format!("file:{}", vm.dir.join("console.log").display()))
            .arg("-chardev")
            .arg(format!("socket,id=vhu,path={}", vhu.display()))
            .args(["-device", "vhost-user-vsock-device,chardev=vhu"]);
        for (i, d) in opts.disks.iter().enumerate() {
            q.arg("-drive")
                .arg(format!("file={},if=none,id=d{i},format=raw", d.display()))
                .arg("-device")
                .arg(format!("virtio-blk-device,drive=d{i}"));
        }
        q.arg("-kernel")
            .arg(&inputs.vmlinux)
            .arg("-initrd")
            .arg(&inputs.initrd)
            .arg("-append")
            .arg(format!("console=ttyS0 {}", opts.append));
        let start = Instant::now();
        vm.qemu = spawn_tied(&mut q, &vm.dir.join("qemu.log"));
        let ready = wait_until(BOOT_TIMEOUT, || {
            vm.console().contains(marker) || matches!(vm.qemu.try_wait(), Ok(Some(_)))
        });
        assert!(
            ready && vm.console().contains(marker),
            "no `{marker}` within {BOOT_TIMEOUT:?}\n--- console ---\n{}\n--- qemu ---\n{}\n--- backend ---\n{}",
            vm.console(),
            vm.log("qemu.log"),
            vm.log("backend.log")
        );
        vm.boot_time = start.elapsed();
        vm
    }

    /// Wall time from starting QEMU to the agent's ready line (or the marker).
    pub fn boot_time(&self) -> Duration {
        self.boot_time
    }

    /// The device's hybrid vsock socket.
    pub fn vsock_path(&self) -> PathBuf {
        self.dir.join("vsock.sock")
    }

    /// A sandbox driving the guest's agent.
    pub fn sandbox(&self) -> Sandbox {
        Sandbox::attach_vsock(self.vsock_path(), Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("attach: {e}\n{}", self.diagnostics()))
    }

    /// The guest console so far.
    pub fn console(&self) -> String {
        self.log("console.log")
    }

    fn log(&self, name: &str) -> String {
        std::fs::read(self.dir.join(name))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Console, QEMU and backend output, for failure messages.
    pub fn diagnostics(&self) -> String {
        let console = self.console();
        let tail: String = console
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        format!(
            "--- console (tail) ---\n{tail}\n--- qemu ---\n{}\n--- backend ---\n{}",
            self.log("qemu.log"),
            self.log("backend.log")
        )
    }

    /// Waits until the console shows `marker` (or QEMU exits); true if it did.
    pub fn wait_console(&mut self, marker: &str, timeout: Duration) -> bool {
        wait_until(timeout, || {
            self.console().contains(marker) || matches!(self.qemu.try_wait(), Ok(Some(_)))
        });
        self.console().contains(marker)
    }

    /// Waits for QEMU to exit by itself; its status, or `None` if it still runs
    /// after `timeout`.
    // Each test file compiles its own copy of the harness; not all of them use this.
    #[allow(dead_code)]
    pub fn wait_qemu_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.qemu.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// Stops QEMU and the backend now and waits for both.
    pub fn stop(&mut self) {
        for c in [&mut self.qemu, &mut self.backend] {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

impl Drop for TcgVm {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Builds an ext4 image of `size_mib` holding a static busybox with its applet
/// links (so the switched-to root has `sh`), owned by root, at `path`.
pub fn busybox_ext4(path: &Path, size_mib: u32) {
    let busybox =
        which("busybox").expect("busybox not found on PATH (apt-get install busybox-static)");
    let root = path.with_extension("root");
    let _ = std::fs::remove_dir_all(&root);
    for d in ["bin", "dev", "proc", "sys", "tmp", "data"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(&busybox, root.join("bin/busybox")).unwrap();
    let list = Command::new(&busybox).arg("--list-full").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let p = root.join(applet);
        if applet.is_empty() || p.exists() {
            continue;
        }
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink("/bin/busybox", &p).unwrap();
    }
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-E", "root_owner=0:0", "-L", "kvmsbroot", "-d"])
        .arg(&root)
        .arg(path)
        .arg(format!("{size_mib}M"))
        .status()
        .expect("run mkfs.ext4 (apt-get install e2fsprogs)");
    assert!(st.success(), "mkfs.ext4 failed: {st}");
    let _ = std::fs::remove_dir_all(&root);
}

/// The first `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}
