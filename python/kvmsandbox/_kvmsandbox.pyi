"""Type stubs of the native module (python/src/*.rs). Use the `kvmsandbox` package API."""

from typing import Literal, Optional, Tuple, Union

from . import CompletedProcess, WasmResult

ECHO_PORT: int
SINK_PORT: int
DEFAULT_AGENT_PORT: int

class KvmSandboxError(Exception): ...
class ConfigError(KvmSandboxError): ...
class BootError(KvmSandboxError): ...

class Timeout(KvmSandboxError):
    result: Optional[CompletedProcess]

class GuestError(KvmSandboxError):
    code: Optional[str]
    """The agent's error code (not_found, permission_denied, ...) when it refused an operation."""

class Unsupported(KvmSandboxError): ...
class AgentError(KvmSandboxError): ...
class ConnectError(KvmSandboxError): ...

class WasmTrap(KvmSandboxError):
    result: WasmResult

class OutOfFuel(KvmSandboxError):
    result: WasmResult

class WasmError(KvmSandboxError):
    result: WasmResult

class CommandError(KvmSandboxError):
    result: Union[CompletedProcess, WasmResult]

class SandboxClosed(KvmSandboxError): ...

# (kind, exit code, message, error kind)
Outcome = Tuple[Literal["exit", "trap", "out_of_fuel", "error"], Optional[int], Optional[str], Optional[str]]
# (code, signal, timed_out)
ExitStatus = Tuple[Optional[int], Optional[int], bool]
StreamItem = Union[
    Tuple[Literal["stdout", "stderr"], bytes],
    Tuple[Literal["exit"], Union[Outcome, ExitStatus]],
]

class _EventStream:
    @property
    def pid(self) -> Optional[int]: ...
    def __iter__(self) -> _EventStream: ...
    def __next__(self) -> StreamItem: ...
    def write_stdin(self, data: bytes) -> None: ...
    def close_stdin(self) -> None: ...

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
    ) -> _Sandbox: ...
    @staticmethod
    def attach_host_agent(path: str, timeout: float = 10.0) -> _Sandbox: ...
    @staticmethod
    def attach_vsock(path: str, timeout: float = 10.0) -> _Sandbox: ...
    @property
    def kind(self) -> Literal["micro", "linux", "host_agent"]: ...
    @property
    def closed(self) -> bool: ...
    def ping(self) -> float: ...
    def echo(self, data: bytes) -> bytes: ...
    def run_wasm(
        self,
        module: bytes,
        args: list[str],
        env: list[tuple[str, str]],
        stdin: bytes,
        fuel: Optional[int],
        max_memory_bytes: Optional[int],
        timeout: Optional[float],
    ) -> tuple[Outcome, bytes, bytes]: ...
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
    ) -> tuple[int, Optional[int], Optional[int], bool, bytes, bytes]: ...
    def spawn(
        self,
        argv: list[str],
        env: list[tuple[str, str]],
        cwd: Optional[str],
        stdin: Optional[bytes],
        timeout: Optional[float],
    ) -> _EventStream: ...
    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> int: ...
    def read_file(self, path: str) -> bytes: ...
    def disk_read(self, disk: int, offset: int, length: int) -> bytes: ...
    def disk_write(self, disk: int, offset: int, data: bytes) -> None: ...
    def disk_flush(self, disk: int) -> None: ...
    def connect(self, port: int) -> int: ...
    def timings(self) -> dict[str, float]: ...
    def console_output(self) -> str: ...
    def shutdown(self) -> None: ...
    def kill(self) -> None: ...
    def close(self) -> None: ...
