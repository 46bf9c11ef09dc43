"""``AsyncSandbox``: the ``Sandbox`` API for asyncio.

Every call runs the blocking native call in a worker thread (``asyncio.to_thread``;
the native calls release the GIL), so the event loop keeps running while a guest
boots, a command runs or a module computes. Cancelling an awaiting task does not
stop the guest-side work: close (kill) the sandbox or ``stop()`` a stream for that.

Host functions of a run (``run_wasm(host_functions=...)``) are called on a
library thread while the run's worker thread waits, never on the event loop: a
plain callable runs right there (it must not touch the loop's objects), and a
coroutine function is scheduled on the loop that awaits the run, whose result
the library thread waits for, so it may await anything the loop serves.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import os
import socket
from types import TracebackType
from typing import Any, Callable, Collection, Generic, Literal, Mapping, Optional, Sequence, Union

from . import (
    AgentLimits,
    CompletedProcess,
    Disk,
    Event,
    FileInfo,
    HostFunction,
    OutputStream,
    PathLike,
    R,
    Sandbox,
    Snapshot,
    WasmDirSource,
    WasmResult,
    WasmTemplate,
)

# How often a host function waiting for its coroutine checks that the loop still runs.
_LOOP_CHECK = 0.1


def _on_loop(loop: asyncio.AbstractEventLoop, func: Callable[..., Any]) -> Callable[..., Any]:
    """A plain callable for the library thread that runs the coroutine function
    ``func`` on ``loop`` and waits for it; a loop that stops meanwhile fails the
    call (trapping the module) instead of leaving the run waiting forever."""

    def call(*args: Any) -> Any:
        fut = asyncio.run_coroutine_threadsafe(func(*args), loop)
        while True:
            try:
                return fut.result(timeout=_LOOP_CHECK)
            except concurrent.futures.TimeoutError:
                if not loop.is_running():
                    fut.cancel()
                    raise RuntimeError("the event loop awaiting this run stopped") from None

    return call


def _for_thread(hosts: Optional[Sequence[HostFunction]]) -> Optional[list[HostFunction]]:
    """``hosts`` with each coroutine function wrapped by ``_on_loop`` for the running loop."""
    if not hosts:
        return None
    loop = asyncio.get_running_loop()
    return [
        HostFunction(h.module, h.name, h.params, h.results, _on_loop(loop, h.func))
        if inspect.iscoroutinefunction(h.func)
        else h
        for h in hosts
    ]


class AsyncOutputStream(Generic[R]):
    """An ``OutputStream`` for ``async for``; ``async with`` stops it at the end."""

    def __init__(self, stream: OutputStream[R]) -> None:
        self._stream: OutputStream[R] = stream

    @property
    def pid(self) -> Optional[int]:
        return self._stream.pid

    @property
    def result(self) -> Optional[R]:
        return self._stream.result

    def __aiter__(self) -> "AsyncOutputStream[R]":
        return self

    async def __anext__(self) -> Event[R]:
        def step() -> Optional[Event[R]]:
            return next(self._stream, None)

        item = await asyncio.to_thread(step)
        if item is None:
            raise StopAsyncIteration
        return item

    async def wait(self) -> R:
        return await asyncio.to_thread(self._stream.wait)

    async def write_stdin(self, data: bytes) -> None:
        await asyncio.to_thread(self._stream.write_stdin, data)

    async def close_stdin(self) -> None:
        await asyncio.to_thread(self._stream.close_stdin)

    async def stop(self) -> None:
        await asyncio.to_thread(self._stream.stop)

    async def __aenter__(self) -> "AsyncOutputStream[R]":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.stop()


class AsyncWasmTemplate:
    """A ``WasmTemplate`` for asyncio (``await AsyncSandbox.prepare_wasm(...)``)."""

    def __init__(self, template: WasmTemplate) -> None:
        self.sync = template
        """The blocking ``WasmTemplate`` underneath."""

    @property
    def id(self) -> int:
        return self.sync.id

    async def run(
        self,
        *,
        args: Sequence[str] = (),
        env: Optional[Mapping[str, str]] = None,
        stdin: bytes = b"",
        fuel: Optional[int] = None,
        timeout: Optional[float] = None,
        check: bool = False,
    ) -> WasmResult:
        return await asyncio.to_thread(
            lambda: self.sync.run(args=args, env=env, stdin=stdin, fuel=fuel, timeout=timeout, check=check)
        )


class AsyncSandbox:
    """A running sandbox driven from asyncio; ``async with`` kills it on exit.

    Create with ``await AsyncSandbox.create()`` (micro guest),
    ``await AsyncSandbox.linux(kernel, ...)``, ``await AsyncSandbox.attach_host_agent(path)``
    or ``await AsyncSandbox.attach_vsock(path)``; the arguments and defaults are
    those of ``Sandbox``.
    """

    def __init__(self, sandbox: Sandbox) -> None:
        """Wraps an existing ``Sandbox`` (use the async constructors to boot one)."""
        self.sync = sandbox
        """The blocking ``Sandbox`` underneath."""

    @classmethod
    async def create(
        cls,
        *,
        disks: Sequence[Disk] = (),
        vcpus: int = 1,
        memory_mib: Optional[int] = None,
        start_timeout: Optional[float] = None,
        image: Optional[PathLike] = None,
        **options: Any,
    ) -> "AsyncSandbox":
        sb = await asyncio.to_thread(
            lambda: Sandbox(
                disks=disks, vcpus=vcpus, memory_mib=memory_mib, start_timeout=start_timeout, image=image, **options
            )
        )
        return cls(sb)

    @classmethod
    async def linux(cls, kernel: PathLike, **kwargs: Any) -> "AsyncSandbox":
        return cls(await asyncio.to_thread(lambda: Sandbox.linux(kernel, **kwargs)))

    @classmethod
    async def attach_host_agent(
        cls, path: PathLike, *, timeout: Optional[float] = None, limits: Optional[AgentLimits] = None
    ) -> "AsyncSandbox":
        return cls(await asyncio.to_thread(lambda: Sandbox.attach_host_agent(path, timeout=timeout, limits=limits)))

    @classmethod
    async def attach_vsock(
        cls, path: PathLike, *, timeout: Optional[float] = None, limits: Optional[AgentLimits] = None
    ) -> "AsyncSandbox":
        return cls(await asyncio.to_thread(lambda: Sandbox.attach_vsock(path, timeout=timeout, limits=limits)))

    @classmethod
    async def from_snapshot(cls, snapshot: Snapshot, *, disks: Optional[Sequence[Disk]] = None) -> "AsyncSandbox":
        """A new sandbox continuing from ``snapshot`` (see ``Sandbox.from_snapshot``)."""
        return cls(await asyncio.to_thread(functools.partial(Sandbox.from_snapshot, snapshot, disks=disks)))

    async def __aenter__(self) -> "AsyncSandbox":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<kvmsandbox.AsyncSandbox {'closed' if self.closed else self.kind}>"

    @property
    def kind(self) -> Literal["micro", "linux", "host_agent"]:
        return self.sync.kind

    @property
    def closed(self) -> bool:
        return self.sync.closed

    @property
    def vsock_path(self) -> Optional[str]:
        return self.sync.vsock_path

    @property
    def limits(self) -> AgentLimits:
        return self.sync.limits

    @property
    def boot_timings(self) -> dict[str, float]:
        return self.sync.boot_timings

    @property
    def console_output(self) -> str:
        return self.sync.console_output

    async def shutdown(self) -> None:
        await asyncio.to_thread(self.sync.shutdown)

    async def kill(self) -> None:
        await asyncio.to_thread(self.sync.kill)

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)

    # -- snapshots (see Sandbox) -------------------------------------------------

    async def snapshot(self) -> Snapshot:
        return await asyncio.to_thread(self.sync.snapshot)

    async def restore(self, snapshot: Snapshot) -> None:
        await asyncio.to_thread(self.sync.restore, snapshot)

    async def set_call_isolation(self, snapshot: Optional[Snapshot]) -> None:
        await asyncio.to_thread(self.sync.set_call_isolation, snapshot)

    async def ping(self, *, timeout: Optional[float] = None) -> float:
        return await asyncio.to_thread(self.sync.ping, timeout=timeout)

    async def echo(self, data: bytes, *, timeout: Optional[float] = None) -> bytes:
        return await asyncio.to_thread(self.sync.echo, data, timeout=timeout)

    async def run_wasm(
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
        """As ``Sandbox.run_wasm``; ``host_functions`` may also be coroutine
        functions, run on this event loop (see the module docstring)."""
        hosts = _for_thread(host_functions)
        return await asyncio.to_thread(
            lambda: self.sync.run_wasm(
                module,
                args=args,
                env=env,
                stdin=stdin,
                fuel=fuel,
                max_memory_bytes=max_memory_bytes,
                timeout=timeout,
                check=check,
                dirs=dirs,
                read_only=read_only,
                write_back=write_back,
                fs_max_bytes=fs_max_bytes,
                fs_max_inodes=fs_max_inodes,
                host_functions=hosts,
            )
        )

    async def prepare_wasm(self, module: bytes, *, max_memory_bytes: Optional[int] = None) -> AsyncWasmTemplate:
        """As ``Sandbox.prepare_wasm``; the template's ``run`` is awaitable."""
        t = await asyncio.to_thread(lambda: self.sync.prepare_wasm(module, max_memory_bytes=max_memory_bytes))
        return AsyncWasmTemplate(t)

    async def run_wasm_stream(
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
    ) -> AsyncOutputStream[WasmResult]:
        s = await asyncio.to_thread(
            lambda: self.sync.run_wasm_stream(
                module,
                args=args,
                env=env,
                stdin=stdin,
                fuel=fuel,
                max_memory_bytes=max_memory_bytes,
                timeout=timeout,
                check=check,
            )
        )
        return AsyncOutputStream(s)

    async def run(
        self,
        cmd: Union[str, Sequence[str]],
        *,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        stdin: Optional[bytes] = None,
        timeout: Optional[float] = None,
        check: bool = False,
    ) -> CompletedProcess:
        return await asyncio.to_thread(
            lambda: self.sync.run(cmd, env=env, cwd=cwd, stdin=stdin, timeout=timeout, check=check)
        )

    async def stream(
        self,
        cmd: Union[str, Sequence[str]],
        *,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        stdin: Optional[bytes] = None,
        timeout: Optional[float] = None,
        check: bool = False,
    ) -> AsyncOutputStream[CompletedProcess]:
        s = await asyncio.to_thread(
            lambda: self.sync.stream(cmd, env=env, cwd=cwd, stdin=stdin, timeout=timeout, check=check)
        )
        return AsyncOutputStream(s)

    async def write_file(self, path: str, data: bytes, *, mode: int = 0o644, timeout: Optional[float] = None) -> int:
        return await asyncio.to_thread(lambda: self.sync.write_file(path, data, mode=mode, timeout=timeout))

    async def read_file(self, path: str, *, timeout: Optional[float] = None) -> bytes:
        return await asyncio.to_thread(lambda: self.sync.read_file(path, timeout=timeout))

    # -- files API (see Sandbox) ---------------------------------------------------

    async def upload(
        self, local_path: PathLike, path: str, *, mode: int = 0o644, timeout: Optional[float] = None
    ) -> int:
        return await asyncio.to_thread(lambda: self.sync.upload(local_path, path, mode=mode, timeout=timeout))

    async def download(self, path: str, local_path: PathLike, *, timeout: Optional[float] = None) -> int:
        return await asyncio.to_thread(lambda: self.sync.download(path, local_path, timeout=timeout))

    async def stat(self, path: str, *, follow: bool = True, timeout: Optional[float] = None) -> FileInfo:
        return await asyncio.to_thread(lambda: self.sync.stat(path, follow=follow, timeout=timeout))

    async def exists(self, path: str, *, timeout: Optional[float] = None) -> bool:
        return await asyncio.to_thread(lambda: self.sync.exists(path, timeout=timeout))

    async def list_dir(self, path: str, *, timeout: Optional[float] = None) -> list[FileInfo]:
        return await asyncio.to_thread(lambda: self.sync.list_dir(path, timeout=timeout))

    async def make_dir(
        self, path: str, *, mode: int = 0o755, parents: bool = False, timeout: Optional[float] = None
    ) -> None:
        await asyncio.to_thread(lambda: self.sync.make_dir(path, mode=mode, parents=parents, timeout=timeout))

    async def remove(self, path: str, *, recursive: bool = False, timeout: Optional[float] = None) -> None:
        await asyncio.to_thread(lambda: self.sync.remove(path, recursive=recursive, timeout=timeout))

    async def rename(self, src: str, dst: str, *, timeout: Optional[float] = None) -> None:
        await asyncio.to_thread(lambda: self.sync.rename(src, dst, timeout=timeout))

    # -- disks and sockets -----------------------------------------------------------

    async def disk_read(self, disk: int, offset: int, length: int, *, timeout: Optional[float] = None) -> bytes:
        return await asyncio.to_thread(lambda: self.sync.disk_read(disk, offset, length, timeout=timeout))

    async def disk_write(self, disk: int, offset: int, data: bytes, *, timeout: Optional[float] = None) -> None:
        await asyncio.to_thread(lambda: self.sync.disk_write(disk, offset, data, timeout=timeout))

    async def disk_flush(self, disk: int = 0, *, timeout: Optional[float] = None) -> None:
        await asyncio.to_thread(lambda: self.sync.disk_flush(disk, timeout=timeout))

    async def connect(self, port: int, *, timeout: Optional[float] = None) -> socket.socket:
        """A connected socket to guest vsock ``port``; use it with ``asyncio.open_connection(sock=...)``."""
        return await asyncio.to_thread(lambda: self.sync.connect(port, timeout=timeout))
