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
* WASM failures (trap, out of fuel, a module that cannot run) raise ``WasmTrap``,
  ``OutOfFuel`` or ``WasmError`` by default (``check=True``); with ``check=False``
  they come back as ``WasmResult.outcome`` instead. The exception carries the
  result (``err.result``) with whatever the module printed before failing.
  A non-zero *exit code* is the program's answer, not a failure: it never raises
  unless you call ``result.check_returncode()`` (as with ``subprocess.run``).
* ``run(..., timeout=)`` raises ``Timeout`` (with ``err.result``) when the agent
  had to kill the command; ``run_wasm(..., timeout=)`` is a wall-clock limit that
  stops the whole VM (a running module cannot be interrupted otherwise).
* Every blocking call releases the GIL, so other Python threads run meanwhile
  and several sandboxes can be driven from several threads at once.
* Ctrl-C: the main thread wakes every 50 ms while it waits; a KeyboardInterrupt
  raised there kills the sandbox (its VM stops; later calls raise
  ``SandboxClosed`` or an agent error) and propagates at once. For a host agent
  (``attach_host_agent``) the running command keeps going until its own timeout.
* Streams (``stream``, ``run_wasm_stream``) yield ``("stdout", bytes)`` and
  ``("stderr", bytes)`` as output arrives, then one ``("exit", result)`` where
  ``result`` is the same object the non-streaming call returns (output included).
  Leaving the loop early does not stop the program; ``kill()`` the sandbox for that.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from types import TracebackType
from typing import Generic, Iterator, Literal, Mapping, Optional, Sequence, Tuple, TypeVar, Union, cast

from . import _kvmsandbox as _native
from ._kvmsandbox import (
    DEFAULT_AGENT_PORT,
    ECHO_PORT,
    SINK_PORT,
    AgentError,
    AlreadyExists,
    BootError,
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
    StartTimeout,
    Timeout,
    Unsupported,
    WasmError,
    WasmTrap,
)

__all__ = [
    "Sandbox",
    "Disk",
    "WasmResult",
    "CompletedProcess",
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
]

# Attributes some exceptions carry; defaults so reading them never fails.
# ``code`` is the agent's error code ("not_found", ...) on errors it reported.
Timeout.result = None
KvmSandboxError.code = None

#: The environment a command gets when ``env`` is not given (the agent passes
#: exactly the environment it is sent, nothing inherited).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PathLike = Union[str, "os.PathLike[str]"]
WasmOutcomeKind = Literal["exit", "trap", "out_of_fuel", "error"]


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


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


class _WasmFinisher(_Finisher[WasmResult]):
    def __init__(self, check: bool) -> None:
        self.check = check

    def finish(self, payload: object, stdout: bytes, stderr: bytes) -> WasmResult:
        r = _wasm_result(cast("_native.Outcome", payload), stdout, stderr)
        return r.check() if self.check else r


class _ProcessFinisher(_Finisher[CompletedProcess]):
    def __init__(self, argv: Sequence[str], pid: int, check: bool) -> None:
        self.argv = argv
        self.pid = pid
        self.check = check

    def finish(self, payload: object, stdout: bytes, stderr: bytes) -> CompletedProcess:
        code, sig, timed_out = cast("_native.ExitStatus", payload)
        r = CompletedProcess(list(self.argv), code, sig, stdout, stderr, timed_out, self.pid)
        return _check_process(r, self.check)


def _wasm_result(outcome: _native.Outcome, stdout: bytes, stderr: bytes) -> WasmResult:
    kind, code, message, error_kind = outcome
    return WasmResult(kind, code, stdout, stderr, message, error_kind)


def _check_process(r: CompletedProcess, check: bool) -> CompletedProcess:
    if r.timed_out:
        err = Timeout(f"command {list(r.args)!r} did not finish within its timeout and was killed")
        err.result = r
        raise err
    return r.check_returncode() if check else r


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
        return [("PATH", DEFAULT_PATH)]
    return [(str(k), str(v)) for k, v in env.items()]


def _disks(disks: Sequence[Disk]) -> list[tuple[str, bool]]:
    return [(os.fspath(d.path), bool(d.read_only)) for d in disks]


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
    ) -> None:
        """Boots the micro guest (``image``: another micro guest ELF; default the built-in one)."""
        self._sb = _native._Sandbox.start(
            vcpus=vcpus,
            memory_mib=memory_mib,
            disks=_disks(disks),
            start_timeout=start_timeout,
            micro_image=None if image is None else os.fspath(image),
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
        memory_mib: int = 256,
        start_timeout: Optional[float] = None,
    ) -> "Sandbox":
        """Boots a Linux guest (vmlinux or bzImage) and waits for its agent."""
        return cls._wrap(
            _native._Sandbox.start(
                kernel=os.fspath(kernel),
                initrd=None if initrd is None else os.fspath(initrd),
                cmdline=cmdline,
                vcpus=vcpus,
                memory_mib=memory_mib,
                disks=_disks(disks),
                start_timeout=start_timeout,
            )
        )

    @classmethod
    def attach_host_agent(cls, path: PathLike, *, timeout: float = 10.0) -> "Sandbox":
        """Development and testing aid: drives ``kvmsandbox-agent --unix PATH``
        running as an ordinary host process. Same API as a Linux guest, but
        **no VM and no isolation**: commands run on this host."""
        return cls._wrap(_native._Sandbox.attach_host_agent(os.fspath(path), timeout))

    @classmethod
    def attach_vsock(cls, path: PathLike, *, timeout: float = 10.0) -> "Sandbox":
        """Drives the Linux agent of a VM run by another VMM (Firecracker,
        cloud-hypervisor, QEMU with ``kvmsandbox-vhost-vsock``) through that
        VMM's hybrid vsock socket at ``path`` (``CONNECT <port>`` handshake).
        Closing the sandbox closes connections; the VM is the other VMM's."""
        return cls._wrap(_native._Sandbox.attach_vsock(os.fspath(path), timeout))

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

    def shutdown(self) -> None:
        """Asks the guest to shut down, waits (bounded) for it, then closes."""
        self._sb.shutdown()

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

    def ping(self) -> float:
        """Round trip to the guest agent, in seconds."""
        return self._sb.ping()

    def echo(self, data: bytes) -> bytes:
        """Sends bytes through the agent and returns what came back."""
        return self._sb.echo(data)

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
        check: bool = True,
    ) -> WasmResult:
        """Runs a WASI module (``_start``) to its end.

        ``args`` is the module's whole argv (argv[0] included); ``fuel`` bounds
        the instructions it may execute; ``timeout`` (seconds, wall clock) stops
        the VM if it passes and raises Timeout. ``check`` raises on trap/fuel/error.
        """
        outcome, out, err = self._sb.run_wasm(
            bytes(module), list(args), _wasm_env(env), bytes(stdin), fuel, max_memory_bytes, timeout
        )
        r = _wasm_result(outcome, out, err)
        return r.check() if check else r

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
        check: bool = True,
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

        ``env`` is the command's whole environment (default: just ``PATH``).
        ``timeout`` (seconds): the agent kills the command and Timeout is raised.
        ``check``: raise CommandError on a non-zero exit.
        """
        argv = _argv(cmd)
        pid, code, sig, timed_out, out, err = self._sb.exec(
            argv, _env(env), cwd, None if stdin is None else bytes(stdin), timeout
        )
        return _check_process(CompletedProcess(argv, code, sig, out, err, timed_out, pid), check)

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

    def write_file(self, path: str, data: bytes, *, mode: int = 0o644) -> int:
        """Creates or replaces a guest file; returns the number of bytes written."""
        return self._sb.write_file(path, bytes(data), mode)

    def read_file(self, path: str) -> bytes:
        """Reads a whole guest file (GuestError with ``code == "not_found"`` if missing)."""
        return self._sb.read_file(path)

    # -- disks and streams ---------------------------------------------------

    def disk_read(self, disk: int, offset: int, length: int) -> bytes:
        """Reads ``length`` bytes at byte ``offset`` of disk number ``disk``, through the guest."""
        return self._sb.disk_read(disk, offset, length)

    def disk_write(self, disk: int, offset: int, data: bytes) -> None:
        """Writes ``data`` at byte ``offset`` of disk number ``disk``, through the guest."""
        self._sb.disk_write(disk, offset, bytes(data))

    def disk_flush(self, disk: int = 0) -> None:
        """Makes earlier writes to ``disk`` durable in the host image file."""
        self._sb.disk_flush(disk)

    def connect(self, port: int) -> socket.socket:
        """A connected stream socket to guest vsock ``port`` (yours to close).
        The micro guest echoes on ECHO_PORT and discards on SINK_PORT."""
        fd = self._sb.connect(port)
        return socket.socket(fileno=fd)


def _wasm_env(env: Optional[Mapping[str, str]]) -> list[tuple[str, str]]:
    return [] if env is None else [(str(k), str(v)) for k, v in env.items()]
