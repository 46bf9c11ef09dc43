"""kvmsandbox: hardware-isolated microVM sandboxes on KVM, inside your Python process.

    from kvmsandbox import Sandbox

    with Sandbox() as sb:                      # the micro guest: boots in milliseconds
        r = sb.run_wasm(module_bytes, args=["prog", "x"], fuel=10_000_000)
        print(r.exit_code, r.stdout_text)

    with Sandbox.linux(kernel="vmlinux", initrd="initrd.cpio") as sb:
        print(sb.run(["uname", "-a"]).stdout_text)

Design notes
------------
* Errors: every failure has one kind, the same as the C API's status; the
  classes, their builtin bases (``Timeout`` is a ``TimeoutError``, ``NotFound``
  a ``FileNotFoundError``...) and the Rust errors behind them are listed in
  docs/errors.md.
* Defaults are the same in every face (Rust, C, Python; docs/timeouts.md):
  a command gets an empty environment unless ``env`` is given; ``check`` is
  False for ``run`` and ``run_wasm`` alike, so a trap, running out of fuel, a
  non-zero exit or a command killed at its timeout come back as a result
  (``WasmResult.outcome``, ``CompletedProcess.timed_out``), as in Rust and C.
  With ``check=True`` they raise ``WasmTrap``, ``OutOfFuel``, ``WasmError``,
  ``CommandError`` or ``Timeout``, each carrying the result (``err.result``).
* Every blocking call takes ``timeout=`` (seconds; None = the documented
  default). ``run(..., timeout=)`` has the agent kill the command;
  ``run_wasm(..., timeout=)`` is a wall-clock limit that stops the whole VM (a
  running module cannot be interrupted otherwise) and raises ``Timeout``; for
  ping, echo, files and disks it bounds each wait for the agent's answer.
* Every blocking call releases the GIL, so other Python threads run meanwhile
  and several sandboxes can be driven from several threads at once.
* Ctrl-C: the main thread wakes every 50 ms while it waits; a KeyboardInterrupt
  raised there kills the sandbox (its VM stops; later calls raise
  ``SandboxClosed`` or an agent error) and propagates at once. For a host agent
  (``attach_host_agent``) the running command keeps going until its own timeout.
* Streams (``stream``, ``run_wasm_stream``) yield ``("stdout", bytes)`` and
  ``("stderr", bytes)`` as output arrives, then one ``("exit", result)`` where
  ``result`` is the same object the non-streaming call returns (output included).
  Leaving the loop early does not stop the program; ``with sb.stream(...) as s:``
  does when the block ends (``stop()``: SIGKILL to a command's process group; a
  WASM module cannot be interrupted, so its sandbox is killed).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from types import TracebackType
from typing import Collection, Dict, Generic, Iterator, Literal, Mapping, Optional, Sequence, Tuple, TypeVar, Union, cast

from . import _kvmsandbox as _native
from ._host import HostFunction
from ._kvmsandbox import (
    DEFAULT_AGENT_PORT,
    ECHO_PORT,
    SINK_PORT,
    AgentError,
    AlreadyExists,
    BootError,
    Busy,
    CommandError,
    ConfigError,
    ConnectError,
    GuestCrashed,
    GuestError,
    GuestPanic,
    InvalidArgument,
    IoError,
    KvmSandboxError,
    KvmUnavailable,
    NotFound,
    OutOfFuel,
    OutputLimit,
    PermissionDenied,
    SandboxClosed,
    SeccompError,
    SnapshotError,
    StartTimeout,
    Timeout,
    Unsupported,
    WasmError,
    WasmTrap,
)

__all__ = [
    "Sandbox",
    "SandboxPool",
    "PooledSandbox",
    "PoolMetrics",
    "Snapshot",
    "AsyncSandbox",
    "AsyncOutputStream",
    "AsyncWasmTemplate",
    "Disk",
    "AgentLimits",
    "SeccompPolicy",
    "WasmResult",
    "WasmTemplate",
    "HostFunction",
    "CompletedProcess",
    "FileInfo",
    "OutputStream",
    "Event",
    "DEFAULT_PATH",
    "ECHO_PORT",
    "SINK_PORT",
    "DEFAULT_AGENT_PORT",
    "KvmSandboxError",
    "ConfigError",
    "BootError",
    "Timeout",
    "GuestError",
    "Unsupported",
    "AgentError",
    "ConnectError",
    "WasmTrap",
    "OutOfFuel",
    "WasmError",
    "CommandError",
    "SandboxClosed",
    "KvmUnavailable",
    "StartTimeout",
    "GuestCrashed",
    "GuestPanic",
    "NotFound",
    "PermissionDenied",
    "AlreadyExists",
    "InvalidArgument",
    "IoError",
    "SeccompError",
    "OutputLimit",
    "Busy",
    "SnapshotError",
]

# Attributes some exceptions carry; defaults so reading them never fails.
# ``code`` is the agent's error code ("not_found", ...) on errors it reported.
Timeout.result = None
KvmSandboxError.code = None

#: A usual ``PATH`` for ``env={"PATH": DEFAULT_PATH, ...}``. Without ``env`` a
#: command gets an empty environment (the agent passes exactly what it is sent;
#: it finds ``argv[0]`` in its own ``PATH``), as in Rust and C.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PathLike = Union[str, "os.PathLike[str]"]
WasmOutcomeKind = Literal["exit", "trap", "out_of_fuel", "error"]


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


SeccompPolicy = Literal["kill", "trap", "log", "disabled"]
"""What a VMM thread's syscall outside its allow-list does (docs/seccomp.md).
``"kill"`` (the core's default) kills the whole process, this interpreter
included; ``"trap"`` fails the syscall and raises ``SeccompError`` instead."""


@dataclass(frozen=True)
class AgentLimits:
    """Host-side bounds on one agent call (None: the core's default)."""

    max_output: Optional[int] = None
    """Most bytes one call collects per stream (default 64 MiB); more is ``OutputLimit``."""
    default_deadline: Optional[float] = None
    """Seconds after which a call without its own timeout ends (default 3600)."""
    max_stale_frames: Optional[int] = None
    """Frames of other requests skipped while waiting for an answer (default 1024)."""

    def _native(self) -> tuple[Optional[int], Optional[float], Optional[int]]:
        return (self.max_output, self.default_deadline, self.max_stale_frames)


def _limits(limits: Optional[AgentLimits]) -> Optional[tuple[Optional[int], Optional[float], Optional[int]]]:
    return None if limits is None else limits._native()


@dataclass(frozen=True)
class Disk:
    """A raw disk image attached as a virtio-blk device (disk 0, 1, ... in order)."""

    path: PathLike
    read_only: bool = False


@dataclass(frozen=True)
class WasmResult:
    """How a WASM module run ended, with everything it printed."""

    outcome: WasmOutcomeKind
    exit_code: Optional[int]
    stdout: bytes
    stderr: bytes
    message: Optional[str] = None
    """The trap message, or why the module could not run."""
    error_kind: Optional[str] = None
    """For outcome "error": invalid_module, memory_limit, missing_import, no_entry_point, other."""
    files: Dict[str, Dict[str, bytes]] = field(default_factory=dict)
    """The writable preopened directories' files after the run: guest path ->
    {path relative to it: bytes} (``run_wasm(dirs=...)``)."""

    @property
    def stdout_text(self) -> str:
        return _text(self.stdout)

    @property
    def stderr_text(self) -> str:
        return _text(self.stderr)

    @property
    def text(self) -> str:
        """stdout decoded as UTF-8 (undecodable bytes replaced)."""
        return self.stdout_text

    @property
    def ok(self) -> bool:
        """Exited with code 0."""
        return self.outcome == "exit" and self.exit_code == 0

    def check(self) -> "WasmResult":
        """Raises WasmTrap, OutOfFuel or WasmError unless the module exited; returns self."""
        if self.outcome == "trap":
            trap = WasmTrap(f"the module trapped: {self.message}")
            trap.result = self
            raise trap
        if self.outcome == "out_of_fuel":
            fuel = OutOfFuel("the module ran out of fuel")
            fuel.result = self
            raise fuel
        if self.outcome == "error":
            bad = WasmError(f"the module could not run ({self.error_kind}): {self.message}")
            bad.result = self
            raise bad
        return self

    def check_returncode(self) -> "WasmResult":
        """Like check(), and also raises CommandError for a non-zero exit code."""
        self.check()
        if self.exit_code != 0:
            err = CommandError(f"the module exited with code {self.exit_code}")
            err.result = self
            raise err
        return self


@dataclass(frozen=True)
class FileInfo:
    """What the guest reports about one file (``Sandbox.stat``/``list_dir``)."""

    name: str
    """The entry's name (for ``stat``: the last component of the path)."""
    kind: Literal["file", "dir", "symlink", "other"]
    size: int
    mode: int
    """Permission bits (``mode & 0o7777``)."""
    mtime_ns: int
    """Last modification, nanoseconds since the Unix epoch."""
    link_target: Optional[str] = None

    @property
    def is_dir(self) -> bool:
        return self.kind == "dir"

    @property
    def is_file(self) -> bool:
        return self.kind == "file"

    @property
    def modified(self) -> float:
        """Last modification as seconds since the epoch (like ``os.stat().st_mtime``)."""
        return self.mtime_ns / 1e9


def _file_info(t: Tuple[str, str, int, int, int, Optional[str]]) -> FileInfo:
    name, kind, size, mode, mtime_ns, link_target = t
    return FileInfo(name, cast(Literal["file", "dir", "symlink", "other"], kind), size, mode, mtime_ns, link_target)


@dataclass(frozen=True)
class CompletedProcess:
    """A finished command, like ``subprocess.CompletedProcess``."""

    args: Sequence[str]
    exit_code: Optional[int]
    """The exit code, or None when a signal ended it."""
    signal: Optional[int]
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    pid: int = 0

    @property
    def returncode(self) -> int:
        """subprocess's convention: the exit code, or -signal."""
        if self.exit_code is not None:
            return self.exit_code
        return -(self.signal or 0)

    @property
    def stdout_text(self) -> str:
        return _text(self.stdout)

    @property
    def stderr_text(self) -> str:
        return _text(self.stderr)

    @property
    def text(self) -> str:
        """stdout decoded as UTF-8 (undecodable bytes replaced)."""
        return self.stdout_text

    def check_returncode(self) -> "CompletedProcess":
        """Raises CommandError (with ``.result``) unless the command exited with 0."""
        if self.returncode != 0:
            how = f"exit code {self.exit_code}" if self.exit_code is not None else f"signal {self.signal}"
            err = CommandError(f"command {list(self.args)!r} failed with {how}")
            err.result = self
            raise err
        return self


R = TypeVar("R", WasmResult, CompletedProcess)
Event = Union[Tuple[Literal["stdout", "stderr"], bytes], Tuple[Literal["exit"], R]]
"""A stream item: output as it comes, then the final result."""


class OutputStream(Generic[R]):
    """Output of a running module or command, in arrival order.

    Iterating yields ``("stdout", bytes)``/``("stderr", bytes)`` then one
    ``("exit", result)``. ``wait()`` drains what is left and returns the result.
    """

    def __init__(self, native: _native._EventStream, finish: "_Finisher[R]") -> None:
        self._native = native
        self._finish: _Finisher[R] = finish
        self._stdout: list[bytes] = []
        self._stderr: list[bytes] = []
        self.result: Optional[R] = None
        """The final result, once the ``exit`` item was produced."""

    @property
    def pid(self) -> Optional[int]:
        """The guest pid of a command (None for a WASM module)."""
        return self._native.pid

    def __iter__(self) -> "OutputStream[R]":
        return self

    def __next__(self) -> Event[R]:
        item = next(self._native)
        if item[0] == "stdout":
            self._stdout.append(item[1])
            return ("stdout", item[1])
        if item[0] == "stderr":
            self._stderr.append(item[1])
            return ("stderr", item[1])
        result = self._finish.finish(item[1], b"".join(self._stdout), b"".join(self._stderr))
        self.result = result
        return ("exit", result)

    def wait(self) -> R:
        """Consumes the rest of the stream and returns the result."""
        for _ in self:
            pass
        if self.result is None:  # pragma: no cover - the native stream always ends with exit
            raise KvmSandboxError("stream ended without an exit")
        return self.result

    def __enter__(self) -> "OutputStream[R]":
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stops what still runs: SIGKILL to a command's process group, or, for a
        WASM module (which cannot be interrupted), kills the sandbox. Idempotent."""
        self._native.stop()

    def write_stdin(self, data: bytes) -> None:
        """Feeds the command's stdin (commands started without ``stdin=``)."""
        self._native.write_stdin(data)

    def close_stdin(self) -> None:
        """Closes the command's stdin (the command sees end of file)."""
        self._native.close_stdin()


class _Finisher(Generic[R]):
    """Turns a native exit payload plus the collected output into a result."""

    def finish(self, payload: object, stdout: bytes, stderr: bytes) -> R:
        raise NotImplementedError


class WasmTemplate:
    """A module prepared in a sandbox (``Sandbox.prepare_wasm``) and the
    snapshot taken right after: every run starts from it, so runs never see
    each other's state, and a wall-clock timeout restores it (raising Timeout)
    instead of stopping the sandbox."""

    def __init__(self, sandbox: "Sandbox", native: _native._WasmTemplate) -> None:
        self._sandbox = sandbox
        self._native = native

    @property
    def id(self) -> int:
        """The guest's id for the template."""
        return self._native.id

    def run(
        self,
        *,
        args: Sequence[str] = (),
        env: Optional[Mapping[str, str]] = None,
        stdin: bytes = b"",
        fuel: Optional[int] = None,
        timeout: Optional[float] = None,
        check: bool = False,
        sandbox: Optional["Sandbox"] = None,
    ) -> WasmResult:
        """Runs the module's ``_start`` with these inputs, as ``Sandbox.run_wasm``
        does (same result, same ``check``, off by default), in the sandbox that
        prepared it or in ``sandbox`` (one of the same shape, e.g. a fork of the
        template or one borrowed from ``SandboxPool.from_template``)."""
        out = (self._sandbox if sandbox is None else sandbox)._sb.run_template(
            self._native, list(args), _wasm_env(env), bytes(stdin), fuel, timeout
        )
        r = _wasm_output(out)
        return r.check() if check else r


class _WasmFinisher(_Finisher[WasmResult]):
    def __init__(self, check: bool) -> None:
        self.check = check

    def finish(self, payload: object, stdout: bytes, stderr: bytes) -> WasmResult:
        r = _wasm_result(cast("_native._WasmOutcome", payload), stdout, stderr)
        return r.check() if self.check else r


class _ProcessFinisher(_Finisher[CompletedProcess]):
    def __init__(self, argv: Sequence[str], pid: int, check: bool) -> None:
        self.argv = argv
        self.pid = pid
        self.check = check

    def finish(self, payload: object, stdout: bytes, stderr: bytes) -> CompletedProcess:
        st = cast("_native._ExitStatus", payload)
        r = CompletedProcess(list(self.argv), st.exit_code, st.signal, stdout, stderr, st.timed_out, self.pid)
        return _check_process(r, self.check)


def _wasm_result(
    o: _native._WasmOutcome,
    stdout: bytes,
    stderr: bytes,
    files: Sequence[Tuple[str, Sequence[Tuple[str, bytes]]]] = (),
) -> WasmResult:
    by_dir = {guest: dict(items) for guest, items in files}
    return WasmResult(o.kind, o.exit_code, stdout, stderr, o.message, o.error_kind, by_dir)


def _wasm_output(out: _native._WasmOutput) -> WasmResult:
    return _wasm_result(out.outcome, out.stdout, out.stderr, out.files)


def _check_process(r: CompletedProcess, check: bool) -> CompletedProcess:
    if not check:
        return r
    if r.timed_out:
        err = Timeout(f"command {list(r.args)!r} did not finish within its timeout and was killed")
        err.result = r
        raise err
    return r.check_returncode()


def _argv(cmd: Union[str, Sequence[str]]) -> list[str]:
    """A string runs through ``/bin/sh -c``; a sequence is the argv itself."""
    if isinstance(cmd, str):
        return ["/bin/sh", "-c", cmd]
    argv = [str(a) for a in cmd]
    if not argv:
        raise ValueError("cmd is empty")
    return argv


def _env(env: Optional[Mapping[str, str]]) -> list[tuple[str, str]]:
    if env is None:
        return []
    return [(str(k), str(v)) for k, v in env.items()]


def _disks(disks: Sequence[Disk]) -> list[tuple[str, bool]]:
    return [(os.fspath(d.path), bool(d.read_only)) for d in disks]


class Snapshot:
    """A sandbox at one instant (``Sandbox.snapshot()``): restore a sandbox to it
    in place, fork new sandboxes from it, save it to a file and load it back.
    Immutable and cheap to share between threads."""

    def __init__(self, native: _native._Snapshot) -> None:
        self._snap = native

    @classmethod
    def load(cls, path: PathLike) -> "Snapshot":
        """Loads a snapshot file, checking all of it first (SnapshotError names
        what is wrong); its memory image is mapped from the file, which must not
        change while the snapshot or a sandbox made from it lives."""
        return cls(_native._Snapshot.load(os.fspath(path)))

    def save(self, path: PathLike) -> None:
        """Writes the snapshot to ``path`` (a new file renamed into place)."""
        self._snap.save(os.fspath(path))

    @property
    def guest(self) -> Literal["micro", "linux"]:
        return self._snap.guest

    @property
    def memory_bytes(self) -> int:
        return self._snap.memory_bytes

    @property
    def vcpus(self) -> int:
        return self._snap.vcpus

    def __repr__(self) -> str:
        return f"<kvmsandbox.Snapshot {self.guest} {self.memory_bytes >> 20} MiB {self.vcpus} vCPU(s)>"


class Sandbox:
    """A running sandbox; a context manager that kills it on exit.

    ``Sandbox()`` boots the micro guest (WASM, disks, streams). ``Sandbox.linux()``
    boots a Linux kernel whose init is the kvmsandbox agent (commands, files).
    """

    def __init__(
        self,
        *,
        disks: Sequence[Disk] = (),
        vcpus: int = 1,
        memory_mib: Optional[int] = None,
        start_timeout: Optional[float] = None,
        image: Optional[PathLike] = None,
        cmdline: Optional[str] = None,
        seccomp: Optional[SeccompPolicy] = None,
        vsock: Optional[PathLike] = None,
        limits: Optional[AgentLimits] = None,
    ) -> None:
        """Boots the micro guest (``image``: another micro guest ELF; default the built-in one).

        ``cmdline``: words for the guest's command line; ``seccomp``: the VMM
        threads' policy (None: ``"kill"``); ``vsock``: where the VM's hybrid vsock
        socket goes (None: a private runtime directory); ``limits``: agent limits.
        """
        self._sb = _native._Sandbox.start(
            vcpus=vcpus,
            memory_mib=memory_mib,
            disks=_disks(disks),
            start_timeout=start_timeout,
            micro_image=None if image is None else os.fspath(image),
            cmdline=cmdline,
            seccomp=seccomp,
            vsock=None if vsock is None else os.fspath(vsock),
            limits=_limits(limits),
        )

    @classmethod
    def _wrap(cls, native: _native._Sandbox) -> "Sandbox":
        sb = cls.__new__(cls)
        sb._sb = native
        return sb

    @classmethod
    def linux(
        cls,
        kernel: PathLike,
        *,
        initrd: Optional[PathLike] = None,
        cmdline: Optional[str] = None,
        disks: Sequence[Disk] = (),
        vcpus: int = 1,
        memory_mib: Optional[int] = None,
        start_timeout: Optional[float] = None,
        seccomp: Optional[SeccompPolicy] = None,
        vsock: Optional[PathLike] = None,
        limits: Optional[AgentLimits] = None,
    ) -> "Sandbox":
        """Boots a Linux guest (vmlinux or bzImage) and waits for its agent
        (other arguments as for ``Sandbox()``)."""
        return cls._wrap(
            _native._Sandbox.start(
                kernel=os.fspath(kernel),
                initrd=None if initrd is None else os.fspath(initrd),
                cmdline=cmdline,
                vcpus=vcpus,
                memory_mib=memory_mib,
                disks=_disks(disks),
                start_timeout=start_timeout,
                seccomp=seccomp,
                vsock=None if vsock is None else os.fspath(vsock),
                limits=_limits(limits),
            )
        )

    @classmethod
    def attach_host_agent(
        cls, path: PathLike, *, timeout: Optional[float] = None, limits: Optional[AgentLimits] = None
    ) -> "Sandbox":
        """Development and testing aid: drives ``kvmsandbox-agent --unix PATH``
        running as an ordinary host process. Same API as a Linux guest, but
        **no VM and no isolation**: commands run on this host."""
        return cls._wrap(_native._Sandbox.attach_host_agent(os.fspath(path), timeout, _limits(limits)))

    @classmethod
    def attach_vsock(
        cls, path: PathLike, *, timeout: Optional[float] = None, limits: Optional[AgentLimits] = None
    ) -> "Sandbox":
        """Drives the Linux agent of a VM run by another VMM (Firecracker,
        cloud-hypervisor, QEMU with ``kvmsandbox-vhost-vsock``) through that
        VMM's hybrid vsock socket at ``path`` (``CONNECT <port>`` handshake).
        Closing the sandbox closes connections; the VM is the other VMM's."""
        return cls._wrap(_native._Sandbox.attach_vsock(os.fspath(path), timeout, _limits(limits)))

    # -- lifecycle -----------------------------------------------------------

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else self.kind
        return f"<kvmsandbox.Sandbox {state}>"

    @property
    def kind(self) -> Literal["micro", "linux", "host_agent"]:
        return self._sb.kind

    @property
    def closed(self) -> bool:
        return self._sb.closed

    @property
    def vsock_path(self) -> Optional[str]:
        """The VM's hybrid vsock socket (for other programs to reach guest ports); None for a host agent."""
        p = self._sb.vsock_path
        return None if p is None else os.fspath(p)

    @property
    def limits(self) -> AgentLimits:
        """The agent limits in force (every field filled in)."""
        n = self._sb.limits
        return AgentLimits(n.max_output, n.default_deadline, n.max_stale_frames)

    def shutdown(self) -> None:
        """Asks the guest to shut down, waits (bounded) for it, then closes."""
        self._sb.shutdown()

    # -- snapshots -------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """Captures the sandbox at a quiescent point. Raises Busy while a call
        runs or a stream (connect, spawn, a streaming run) is open."""
        return Snapshot(self._sb.snapshot())

    def restore(self, snapshot: Snapshot) -> None:
        """Puts the sandbox back to ``snapshot`` in place: memory, vCPUs and
        devices as they were; open streams read EOF. SnapshotError if it was
        taken of another shape of sandbox, Busy while a call runs."""
        self._sb.restore(snapshot._snap)

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot, *, disks: Optional[Sequence[Disk]] = None) -> "Sandbox":
        """A new sandbox continuing from ``snapshot`` (memory shared
        copy-on-write). Disks are reopened from the recorded paths, or ``disks``
        (same order, sizes and read-only flags). A snapshot loaded from a file
        that records disks needs ``disks``: paths in a file are not opened on
        its word (SnapshotError otherwise)."""
        native_disks = None if disks is None else _disks(disks)
        return cls._wrap(_native._Sandbox.from_snapshot(snapshot._snap, native_disks))

    def set_call_isolation(self, snapshot: Optional[Snapshot]) -> None:
        """With a snapshot, every call starts from it (the sandbox is restored
        now and after each call) and a ``run_wasm`` timeout restores instead of
        killing: Timeout is raised and the sandbox stays usable. None turns it off."""
        self._sb.set_call_isolation(None if snapshot is None else snapshot._snap)

    def kill(self) -> None:
        """Stops the VM now and closes the handle. Idempotent."""
        self._sb.kill()

    def close(self) -> None:
        """Same as kill(): what ``with`` does on exit. Idempotent."""
        self._sb.close()

    @property
    def boot_timings(self) -> dict[str, float]:
        """Boot phases reached, in order: name -> seconds since VM creation began."""
        return self._sb.timings()

    @property
    def console_output(self) -> str:
        """What the guest printed on its serial console so far."""
        return self._sb.console_output()

    # -- agent -----------------------------------------------------------------

    def ping(self, *, timeout: Optional[float] = None) -> float:
        """Round trip to the guest agent, in seconds."""
        return self._sb.ping(timeout)

    def echo(self, data: bytes, *, timeout: Optional[float] = None) -> bytes:
        """Sends bytes through the agent and returns what came back."""
        return self._sb.echo(data, timeout)

    # -- WASM (micro guest) ----------------------------------------------------

    def run_wasm(
        self,
        module: bytes,
        *,
        args: Sequence[str] = (),
        env: Optional[Mapping[str, str]] = None,
        stdin: bytes = b"",
        fuel: Optional[int] = None,
        max_memory_bytes: Optional[int] = None,
        timeout: Optional[float] = None,
        check: bool = False,
        dirs: Optional[Mapping[str, WasmDirSource]] = None,
        read_only: Collection[str] = (),
        write_back: Optional[Mapping[str, Union[str, "os.PathLike[str]"]]] = None,
        fs_max_bytes: Optional[int] = None,
        fs_max_inodes: Optional[int] = None,
        host_functions: Optional[Sequence[HostFunction]] = None,
    ) -> WasmResult:
        """Runs a WASI module (``_start``) to its end.

        ``args`` is the module's whole argv (argv[0] included); ``fuel`` bounds
        the instructions it may execute; ``timeout`` (seconds, wall clock) stops
        the VM if it passes and raises Timeout. ``check`` raises on trap/fuel/error.
        ``env`` is the module's whole environment (default: empty).

        ``dirs`` preopens directories for the module: guest path -> a host
        directory (copied in before the run, symlinks not followed) or a
        mapping of relative paths to bytes. Guest paths in ``read_only`` refuse
        every change (EROFS). The module works on a copy in the guest's memory
        (capped by ``fs_max_bytes``/``fs_max_inodes``); after the run the
        writable directories' files are in ``WasmResult.files``, and
        ``write_back`` (guest path -> host directory) writes a directory's
        whole final tree there.
        ``host_functions``: functions of this process the module may import
        (see ``HostFunction``); their callables run while this call waits.
        """
        hosts = [h._native() for h in host_functions] if host_functions else None
        native_dirs = _wasm_dirs(dirs, read_only)
        back = [(str(g), os.fspath(h)) for g, h in (write_back or {}).items()]
        out = self._sb.run_wasm(
            bytes(module),
            list(args),
            _wasm_env(env),
            bytes(stdin),
            fuel,
            max_memory_bytes,
            timeout,
            native_dirs,
            fs_max_bytes,
            fs_max_inodes,
            back,
            hosts,
        )
        r = _wasm_output(out)
        return r.check() if check else r

    def prepare_wasm(self, module: bytes, *, max_memory_bytes: Optional[int] = None) -> "WasmTemplate":
        """Has the guest validate and compile ``module`` once and snapshots the
        sandbox right there; each ``WasmTemplate.run`` restores that snapshot and
        runs ``_start`` with only that call's inputs. A module that cannot run
        raises WasmError-like ``KvmSandboxError`` (InvalidArgument kind) here.
        ``max_memory_bytes`` caps every run's linear memory."""
        return WasmTemplate(self, self._sb.prepare_wasm(bytes(module), max_memory_bytes))

    def run_wasm_stream(
        self,
        module: bytes,
        *,
        args: Sequence[str] = (),
        env: Optional[Mapping[str, str]] = None,
        stdin: bytes = b"",
        fuel: Optional[int] = None,
        max_memory_bytes: Optional[int] = None,
        timeout: Optional[float] = None,
        check: bool = False,
    ) -> OutputStream[WasmResult]:
        """Like run_wasm, yielding output as the module writes it (see OutputStream)."""
        native = self._sb.run_wasm_stream(
            bytes(module), list(args), _wasm_env(env), bytes(stdin), fuel, max_memory_bytes, timeout
        )
        return OutputStream(native, _WasmFinisher(check))

    # -- commands and files (Linux guest, host agent) ---------------------------

    def run(
        self,
        cmd: Union[str, Sequence[str]],
        *,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        stdin: Optional[bytes] = None,
        timeout: Optional[float] = None,
        check: bool = False,
    ) -> CompletedProcess:
        """Runs a command to its end. A string runs via ``/bin/sh -c``.

        ``env`` is the command's whole environment (default: empty).
        ``timeout`` (seconds): the agent kills the command (``timed_out`` is set).
        ``check``: raise CommandError on a non-zero exit, Timeout if it was killed.
        """
        argv = _argv(cmd)
        out = self._sb.exec(argv, _env(env), cwd, None if stdin is None else bytes(stdin), timeout)
        st = out.status
        r = CompletedProcess(argv, st.exit_code, st.signal, out.stdout, out.stderr, st.timed_out, out.pid)
        return _check_process(r, check)

    def stream(
        self,
        cmd: Union[str, Sequence[str]],
        *,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        stdin: Optional[bytes] = None,
        timeout: Optional[float] = None,
        check: bool = False,
    ) -> OutputStream[CompletedProcess]:
        """Starts a command and yields its output as it comes (see OutputStream).
        Without ``stdin`` the command's stdin stays open: ``write_stdin``/``close_stdin``."""
        argv = _argv(cmd)
        native = self._sb.spawn(argv, _env(env), cwd, None if stdin is None else bytes(stdin), timeout)
        return OutputStream(native, _ProcessFinisher(argv, native.pid or 0, check))

    def write_file(self, path: str, data: bytes, *, mode: int = 0o644, timeout: Optional[float] = None) -> int:
        """Creates or replaces a guest file; returns the number of bytes written."""
        return self._sb.write_file(path, bytes(data), mode, timeout)

    def read_file(self, path: str, *, timeout: Optional[float] = None) -> bytes:
        """Reads a whole guest file (GuestError with ``code == "not_found"`` if missing)."""
        return self._sb.read_file(path, timeout)

    # -- files API (Linux guests and the host agent; a micro guest raises Unsupported)
    # ``timeout`` (seconds): how long each call waits for every answer of the
    # agent; None keeps the sandbox's own (docs/timeouts.md), as for read_file.

    def upload(
        self,
        local_path: Union[str, "os.PathLike[str]"],
        path: str,
        *,
        mode: int = 0o644,
        timeout: Optional[float] = None,
    ) -> int:
        """Streams the host file ``local_path`` into the guest file ``path`` in chunks
        (never held whole in memory); returns the bytes written."""
        return self._sb.upload(os.fspath(local_path), path, mode, timeout)

    def download(
        self, path: str, local_path: Union[str, "os.PathLike[str]"], *, timeout: Optional[float] = None
    ) -> int:
        """Streams the guest file ``path`` into the host file ``local_path`` (created or
        truncated); returns the bytes read."""
        return self._sb.download(path, os.fspath(local_path), timeout)

    def stat(self, path: str, *, follow: bool = True, timeout: Optional[float] = None) -> FileInfo:
        """Describes a guest path; ``follow=False`` describes a symbolic link itself."""
        return _file_info(self._sb.stat(path, follow, timeout))

    def exists(self, path: str, *, timeout: Optional[float] = None) -> bool:
        """Whether the guest path exists (a dangling link counts as existing)."""
        try:
            self._sb.stat(path, False, timeout)
        except NotFound:
            return False
        return True

    def list_dir(self, path: str, *, timeout: Optional[float] = None) -> list[FileInfo]:
        """The entries of a guest directory (without ``.`` and ``..``)."""
        return [_file_info(t) for t in self._sb.list_dir(path, timeout)]

    def make_dir(
        self, path: str, *, mode: int = 0o755, parents: bool = False, timeout: Optional[float] = None
    ) -> None:
        """Creates a guest directory; ``parents=True`` works like ``mkdir -p``."""
        self._sb.make_dir(path, mode, parents, timeout)

    def remove(self, path: str, *, recursive: bool = False, timeout: Optional[float] = None) -> None:
        """Removes a guest file, link or empty directory; ``recursive=True``: a tree."""
        self._sb.remove(path, recursive, timeout)

    def rename(self, src: str, dst: str, *, timeout: Optional[float] = None) -> None:
        """Renames a guest path."""
        self._sb.rename(src, dst, timeout)

    # -- disks and streams ---------------------------------------------------

    def disk_read(self, disk: int, offset: int, length: int, *, timeout: Optional[float] = None) -> bytes:
        """Reads ``length`` bytes at byte ``offset`` of disk number ``disk``, through the guest."""
        return self._sb.disk_read(disk, offset, length, timeout)

    def disk_write(self, disk: int, offset: int, data: bytes, *, timeout: Optional[float] = None) -> None:
        """Writes ``data`` at byte ``offset`` of disk number ``disk``, through the guest."""
        self._sb.disk_write(disk, offset, bytes(data), timeout)

    def disk_flush(self, disk: int = 0, *, timeout: Optional[float] = None) -> None:
        """Makes earlier writes to ``disk`` durable in the host image file."""
        self._sb.disk_flush(disk, timeout)

    def connect(self, port: int, *, timeout: Optional[float] = None) -> socket.socket:
        """A connected stream socket to guest vsock ``port`` (yours to close).
        The micro guest echoes on ECHO_PORT and discards on SINK_PORT.
        ``timeout``: seconds the guest has to accept (default: the sandbox's
        answer timeout); past it, Timeout."""
        fd = self._sb.connect(port, timeout)
        return socket.socket(fileno=fd)


WasmDirSource = Union[str, "os.PathLike[str]", Mapping[str, bytes]]
"""What a preopened directory holds: a host directory, or files as bytes."""


def _wasm_dirs(
    dirs: Optional[Mapping[str, WasmDirSource]], read_only: Collection[str]
) -> list[tuple[str, bool, Optional[str], list[tuple[str, bytes]]]]:
    out: list[tuple[str, bool, Optional[str], list[tuple[str, bytes]]]] = []
    ro = {str(g) for g in read_only}
    for guest, source in (dirs or {}).items():
        if isinstance(source, Mapping):
            files = [(str(p), bytes(b)) for p, b in source.items()]
            out.append((str(guest), str(guest) in ro, None, files))
        else:
            out.append((str(guest), str(guest) in ro, os.fspath(source), []))
    unknown = ro - {g for g, _, _, _ in out}
    if unknown:
        raise InvalidArgument(f"read_only names {sorted(unknown)}, which are not in dirs")
    return out


def _wasm_env(env: Optional[Mapping[str, str]]) -> list[tuple[str, str]]:
    return [] if env is None else [(str(k), str(v)) for k, v in env.items()]


@dataclass(frozen=True)
class PoolMetrics:
    """A consistent copy of a pool's counters (durations in seconds)."""

    created: int
    """Sandboxes made (first fills, refills, replacements)."""
    create_failures: int
    acquired: int
    released: int
    resets: int
    """Released sandboxes made clean again (a config pool replaces them with fresh ones)."""
    reset_failures: int
    discarded: int
    """Thrown away: killed or stopped while borrowed, discarded, failed a reset, closed with the pool."""
    acquire_timeouts: int
    idle: int
    busy: int
    in_flight: int
    """Being booted, reset or thrown away by the pool threads."""
    acquire_wait_total: float
    acquire_wait_max: float


class PooledSandbox(Sandbox):
    """A sandbox borrowed from a ``SandboxPool``: every ``Sandbox`` method, plus
    ``release()``/``discard()``. As a context manager it is released on exit
    (not killed). After release the handle raises ``SandboxClosed``."""

    _lease: _native._Lease

    @classmethod
    def _from_lease(cls, lease: _native._Lease) -> "PooledSandbox":
        sb = cls.__new__(cls)
        sb._sb = lease.sandbox
        sb._lease = lease
        return sb

    def __enter__(self) -> "PooledSandbox":
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "released" if self.released else self.kind
        return f"<kvmsandbox.PooledSandbox {state}>"

    @property
    def released(self) -> bool:
        return self._lease.released

    def release(self) -> None:
        """Gives the sandbox back; the pool resets it in the background. Idempotent."""
        self._lease.release(False)

    def discard(self) -> None:
        """Gives the sandbox back to be killed rather than reused. Idempotent."""
        self._lease.release(True)


class SandboxPool:
    """A warm pool of clean sandboxes; a context manager that closes it on exit.

    ``SandboxPool(min_idle=2, max_size=8)`` boots micro guests (the keyword
    arguments of ``Sandbox()``; ``kernel=`` boots Linux guests as ``Sandbox.linux``).
    ``min_idle`` sandboxes are kept ready; at most ``max_size`` exist at once;
    ``threads`` pool threads boot and reset them in the background (they never
    hold the GIL). A released sandbox of a config pool is killed and replaced by
    a freshly booted one.

        with SandboxPool(min_idle=2, max_size=4) as pool:
            with pool.acquire(timeout=5) as sb:
                sb.run_wasm(module)

    ``close()`` kills idle sandboxes and stops the pool threads; sandboxes
    borrowed then keep working until released, and are killed at release.
    """

    def __init__(
        self,
        *,
        min_idle: int = 1,
        max_size: int = 4,
        threads: int = 2,
        disks: Sequence[Disk] = (),
        vcpus: int = 1,
        memory_mib: Optional[int] = None,
        start_timeout: Optional[float] = None,
        image: Optional[PathLike] = None,
        kernel: Optional[PathLike] = None,
        initrd: Optional[PathLike] = None,
        cmdline: Optional[str] = None,
        seccomp: Optional[SeccompPolicy] = None,
    ) -> None:
        if memory_mib is None and kernel is not None:
            memory_mib = 256  # as Sandbox.linux
        self._pool = _native._SandboxPool.from_config(
            min_idle=min_idle,
            max_size=max_size,
            threads=threads,
            kernel=None if kernel is None else os.fspath(kernel),
            initrd=None if initrd is None else os.fspath(initrd),
            cmdline=cmdline,
            vcpus=vcpus,
            memory_mib=memory_mib,
            disks=_disks(disks),
            start_timeout=start_timeout,
            micro_image=None if image is None else os.fspath(image),
            seccomp=seccomp,
        )

    @classmethod
    def from_snapshot(
        cls,
        snapshot: Snapshot,
        *,
        min_idle: int = 1,
        max_size: int = 4,
        threads: int = 2,
        seccomp: Optional[SeccompPolicy] = None,
    ) -> "SandboxPool":
        """A pool of sandboxes forked from ``snapshot`` (memory shared
        copy-on-write); a released one is reset in place to it in the
        background. ``seccomp`` is the forks' policy, as for ``Sandbox()``."""
        pool = cls.__new__(cls)
        pool._pool = _native._SandboxPool.from_snapshot(
            snapshot._snap, min_idle=min_idle, max_size=max_size, threads=threads, seccomp=seccomp
        )
        return pool

    @classmethod
    def from_template(
        cls,
        template: "WasmTemplate",
        *,
        min_idle: int = 1,
        max_size: int = 4,
        threads: int = 2,
        seccomp: Optional[SeccompPolicy] = None,
    ) -> "SandboxPool":
        """A pool of sandboxes forked from ``template``'s snapshot; run it in a
        borrowed one with ``template.run(..., sandbox=sb)``. ``seccomp`` as in
        ``from_snapshot``."""
        pool = cls.__new__(cls)
        pool._pool = _native._SandboxPool.from_template(
            template._native, min_idle=min_idle, max_size=max_size, threads=threads, seccomp=seccomp
        )
        return pool

    def __enter__(self) -> "SandboxPool":
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return "<kvmsandbox.SandboxPool closed>"
        m = self.metrics()
        return f"<kvmsandbox.SandboxPool idle={m.idle} busy={m.busy} max_size={self.max_size}>"

    @property
    def min_idle(self) -> int:
        return self._pool.config[0]

    @property
    def max_size(self) -> int:
        return self._pool.config[1]

    @property
    def closed(self) -> bool:
        return self._pool.closed

    def acquire(self, timeout: Optional[float] = None) -> PooledSandbox:
        """Borrows a clean sandbox, waiting at most ``timeout`` seconds (None: no
        limit). Raises ``Timeout`` when none became free in time, ``SandboxClosed``
        when the pool is closed, or the boot's error when its sandbox failed to start."""
        return PooledSandbox._from_lease(self._pool.acquire(timeout))

    def wait_idle(self, count: Optional[int] = None, timeout: float = 30.0) -> bool:
        """Waits until ``count`` (default ``min_idle``) sandboxes are idle; whether they are."""
        return self._pool.wait_idle(self.min_idle if count is None else count, timeout)

    def metrics(self) -> PoolMetrics:
        """The pool's counters."""
        return PoolMetrics(**self._pool.metrics())

    def close(self) -> None:
        """Kills idle sandboxes and stops the pool threads. Idempotent."""
        self._pool.close()


from ._async import AsyncOutputStream, AsyncSandbox, AsyncWasmTemplate  # noqa: E402  (needs the classes above)
