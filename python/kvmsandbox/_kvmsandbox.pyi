"""Type stubs of the native module (python/src/*.rs). Use the `kvmsandbox` package API."""

from typing import Any, Callable, Literal, Optional, Tuple, Union, final


from . import CompletedProcess, WasmResult

__all__ = [
    "KvmSandboxError",
    "ConfigError",
    "InvalidArgument",
    "KvmUnavailable",
    "BootError",
    "StartTimeout",
    "GuestPanic",
    "GuestCrashed",
    "Timeout",
    "AgentError",
    "NotFound",
    "PermissionDenied",
    "Unsupported",
    "IoError",
    "ConnectError",
    "SeccompError",
    "AlreadyExists",
    "SandboxClosed",
    "OutputLimit",
    "Busy",
    "SnapshotError",
    "GuestError",
    "WasmTrap",
    "OutOfFuel",
    "WasmError",
    "CommandError",
    "_error_kinds",
    "_WasmOutcome",
    "_ExitStatus",
    "_ExecOutput",
    "_WasmOutput",
    "_AgentLimits",
    "_Sandbox",
    "_Snapshot",
    "_WasmTemplate",
    "_SandboxPool",
    "_Lease",
    "_EventStream",
    "ECHO_PORT",
    "SINK_PORT",
    "DEFAULT_AGENT_PORT",
]

ECHO_PORT: int
SINK_PORT: int
DEFAULT_AGENT_PORT: int

# The error kinds (docs/errors.md; core/src/error_kind.rs is the table).
class KvmSandboxError(Exception):
    code: Optional[str]
    """The agent's error code (not_found, permission_denied, ...) when the agent reported the error."""

class ConfigError(KvmSandboxError): ...
class BootError(KvmSandboxError): ...
class KvmUnavailable(BootError): ...

class Timeout(KvmSandboxError, TimeoutError):
    result: Optional[CompletedProcess]

class StartTimeout(BootError, Timeout): ...
class GuestCrashed(KvmSandboxError): ...
class GuestPanic(GuestCrashed): ...
class GuestError(KvmSandboxError): ...
class NotFound(GuestError, FileNotFoundError): ...
class PermissionDenied(GuestError, PermissionError): ...
class AlreadyExists(GuestError, FileExistsError): ...
class InvalidArgument(GuestError, ValueError): ...
class Unsupported(KvmSandboxError, NotImplementedError): ...
class IoError(KvmSandboxError, OSError): ...
class AgentError(KvmSandboxError): ...
class OutputLimit(AgentError): ...
class ConnectError(KvmSandboxError, ConnectionError): ...
class SeccompError(KvmSandboxError): ...
class SandboxClosed(KvmSandboxError): ...
class Busy(KvmSandboxError): ...
class SnapshotError(KvmSandboxError): ...

class WasmTrap(KvmSandboxError):
    result: WasmResult

class OutOfFuel(KvmSandboxError):
    result: WasmResult

class WasmError(KvmSandboxError):
    result: WasmResult

class CommandError(KvmSandboxError):
    result: Union[CompletedProcess, WasmResult]

# Typed results (python/src/results.rs).
@final
class _WasmOutcome:
    @property
    def kind(self) -> Literal["exit", "trap", "out_of_fuel", "error"]: ...
    @property
    def exit_code(self) -> Optional[int]: ...
    @property
    def message(self) -> Optional[str]: ...
    @property
    def error_kind(self) -> Optional[str]: ...

@final
class _ExitStatus:
    @property
    def exit_code(self) -> Optional[int]: ...
    @property
    def signal(self) -> Optional[int]: ...
    @property
    def timed_out(self) -> bool: ...

@final
class _ExecOutput:
    @property
    def pid(self) -> int: ...
    @property
    def status(self) -> _ExitStatus: ...
    @property
    def stdout(self) -> bytes: ...
    @property
    def stderr(self) -> bytes: ...

@final
class _WasmOutput:
    @property
    def outcome(self) -> _WasmOutcome: ...
    @property
    def stdout(self) -> bytes: ...
    @property
    def stderr(self) -> bytes: ...
    @property
    def files(self) -> list[tuple[str, list[tuple[str, bytes]]]]: ...

@final
class _AgentLimits:
    @property
    def max_output(self) -> int: ...
    @property
    def default_deadline(self) -> float: ...
    @property
    def max_stale_frames(self) -> int: ...

@final
class _EventStream:
    @property
    def pid(self) -> Optional[int]: ...
    def __iter__(self) -> _EventStream: ...
    def __next__(
        self,
    ) -> Union[Tuple[Literal["stdout", "stderr"], bytes], Tuple[Literal["exit"], Union[_WasmOutcome, _ExitStatus]]]: ...
    def write_stdin(self, data: bytes) -> None: ...
    def close_stdin(self) -> None: ...
    def stop(self) -> None: ...

@final
class _Snapshot:
    @staticmethod
    def load(path: str) -> _Snapshot: ...
    def save(self, path: str) -> None: ...
    @property
    def guest(self) -> Literal["micro", "linux"]: ...
    @property
    def memory_bytes(self) -> int: ...
    @property
    def vcpus(self) -> int: ...

@final
class _Sandbox:
    @staticmethod
    def start(
        *,
        kernel: Optional[str] = None,
        initrd: Optional[str] = None,
        cmdline: Optional[str] = None,
        vcpus: int = 1,
        memory_mib: Optional[int] = None,
        disks: list[tuple[str, bool]] = ...,
        start_timeout: Optional[float] = None,
        micro_image: Optional[str] = None,
        seccomp: Optional[str] = None,
        vsock: Optional[str] = None,
        limits: Optional[Tuple[Optional[int], Optional[float], Optional[int]]] = None,
    ) -> _Sandbox: ...
    @staticmethod
    def attach_host_agent(path: str, timeout: Optional[float] = None, limits: Optional[Tuple[Optional[int], Optional[float], Optional[int]]] = None) -> _Sandbox: ...
    @staticmethod
    def attach_vsock(path: str, timeout: Optional[float] = None, limits: Optional[Tuple[Optional[int], Optional[float], Optional[int]]] = None) -> _Sandbox: ...
    @property
    def kind(self) -> Literal["micro", "linux", "host_agent"]: ...
    @property
    def closed(self) -> bool: ...
    @property
    def vsock_path(self) -> Optional[str]: ...
    @property
    def limits(self) -> _AgentLimits: ...
    def ping(self, timeout: Optional[float] = None) -> float: ...
    def echo(self, data: bytes, timeout: Optional[float] = None) -> bytes: ...
    def run_wasm(
        self,
        module: bytes,
        args: list[str],
        env: list[tuple[str, str]],
        stdin: bytes,
        fuel: Optional[int],
        max_memory_bytes: Optional[int],
        timeout: Optional[float],
        dirs: list[tuple[str, bool, Optional[str], list[tuple[str, bytes]]]] = ...,
        fs_max_bytes: Optional[int] = ...,
        fs_max_inodes: Optional[int] = ...,
        write_back: list[tuple[str, str]] = ...,
        host_functions: Optional[list[tuple[str, str, list[str], list[str], Callable[..., Any]]]] = None,
    ) -> _WasmOutput: ...
    def prepare_wasm(self, module: bytes, max_memory_bytes: Optional[int]) -> _WasmTemplate: ...
    def run_template(
        self,
        template: _WasmTemplate,
        args: list[str],
        env: list[tuple[str, str]],
        stdin: bytes,
        fuel: Optional[int],
        timeout: Optional[float],
    ) -> _WasmOutput: ...
    def run_wasm_stream(
        self,
        module: bytes,
        args: list[str],
        env: list[tuple[str, str]],
        stdin: bytes,
        fuel: Optional[int],
        max_memory_bytes: Optional[int],
        timeout: Optional[float],
    ) -> _EventStream: ...
    def exec(
        self,
        argv: list[str],
        env: list[tuple[str, str]],
        cwd: Optional[str],
        stdin: Optional[bytes],
        timeout: Optional[float],
    ) -> _ExecOutput: ...
    def spawn(
        self,
        argv: list[str],
        env: list[tuple[str, str]],
        cwd: Optional[str],
        stdin: Optional[bytes],
        timeout: Optional[float],
    ) -> _EventStream: ...
    def write_file(self, path: str, data: bytes, mode: int = 0o644, timeout: Optional[float] = None) -> int: ...
    def read_file(self, path: str, timeout: Optional[float] = None) -> bytes: ...
    def stat(
        self, path: str, follow: bool = True, timeout: Optional[float] = None
    ) -> tuple[str, str, int, int, int, Optional[str]]: ...
    def list_dir(self, path: str, timeout: Optional[float] = None) -> list[tuple[str, str, int, int, int, Optional[str]]]: ...
    def make_dir(self, path: str, mode: int = 0o755, parents: bool = False, timeout: Optional[float] = None) -> None: ...
    def remove(self, path: str, recursive: bool = False, timeout: Optional[float] = None) -> None: ...
    def rename(self, src: str, dst: str, timeout: Optional[float] = None) -> None: ...
    def upload(self, local: str, path: str, mode: int = 0o644, timeout: Optional[float] = None) -> int: ...
    def download(self, path: str, local: str, timeout: Optional[float] = None) -> int: ...
    def disk_read(self, disk: int, offset: int, length: int, timeout: Optional[float] = None) -> bytes: ...
    def disk_write(self, disk: int, offset: int, data: bytes, timeout: Optional[float] = None) -> None: ...
    def disk_flush(self, disk: int, timeout: Optional[float] = None) -> None: ...
    def connect(self, port: int, timeout: Optional[float] = None) -> int: ...
    def timings(self) -> dict[str, float]: ...
    def console_output(self) -> str: ...
    def shutdown(self) -> None: ...
    def snapshot(self) -> _Snapshot: ...
    def restore(self, snapshot: _Snapshot) -> None: ...
    @staticmethod
    def from_snapshot(snapshot: _Snapshot, disks: Optional[list[tuple[str, bool]]] = None) -> _Sandbox: ...
    def set_call_isolation(self, snapshot: Optional[_Snapshot]) -> None: ...
    def kill(self) -> None: ...
    def close(self) -> None: ...

@final
class _Lease:
    @property
    def sandbox(self) -> _Sandbox: ...
    @property
    def released(self) -> bool: ...
    def release(self, discard: bool = False) -> None: ...

@final
class _SandboxPool:
    @staticmethod
    def from_config(
        *,
        min_idle: int,
        max_size: int,
        threads: int,
        kernel: Optional[str] = None,
        initrd: Optional[str] = None,
        cmdline: Optional[str] = None,
        vcpus: int = 1,
        memory_mib: Optional[int] = None,
        disks: list[tuple[str, bool]] = ...,
        start_timeout: Optional[float] = None,
        micro_image: Optional[str] = None,
        seccomp: Optional[str] = None,
    ) -> _SandboxPool: ...
    @staticmethod
    def from_snapshot(
        snapshot: _Snapshot, *, min_idle: int, max_size: int, threads: int, seccomp: Optional[str] = None
    ) -> _SandboxPool: ...
    @staticmethod
    def from_template(
        template: _WasmTemplate, *, min_idle: int, max_size: int, threads: int, seccomp: Optional[str] = None
    ) -> _SandboxPool: ...
    def acquire(self, timeout: Optional[float] = None) -> _Lease: ...
    def wait_idle(self, count: int, timeout: float) -> bool: ...
    def metrics(self) -> dict[str, Any]: ...
    @property
    def config(self) -> tuple[int, int, int]: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...

@final
class _WasmTemplate:
    @property
    def id(self) -> int: ...

def _error_kinds() -> list[Tuple[str, str, type[KvmSandboxError]]]:
    """Test aid: (kind, C status name, exception class) for every error kind."""
