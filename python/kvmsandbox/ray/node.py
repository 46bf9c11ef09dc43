"""The per-node actor: one sandbox pool on one Ray node that has /dev/kvm.

An actor rather than a task per run, because warm sandboxes and the module
cache must outlive a single call; one per node, because sandboxes are
in-process VMs and a pool is the unit that bounds how many a host runs. The
actor is threaded (``max_concurrency``), each call borrowing a sandbox from
the pool for the length of one run, or for a template run a sandbox that
prepared the module (templates.py). When the actor's process ends, by
``close()`` or by being killed, its VMs end with it: they live in its
address space and file descriptors, which the kernel reclaims.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Optional, Sequence

import ray

from .. import KvmUnavailable, Sandbox, SandboxPool, Unsupported, WasmResult
from .modules import ModuleCache
from .resources import KVM_DEVICE, kvm_available
from .templates import TemplateCache

#: The pool keywords that are not a sandbox's (the rest boot template sandboxes alike).
POOL_ONLY = frozenset({"min_idle", "max_size", "threads"})


def kvm_fds() -> int:
    """How many of this process's file descriptors are KVM's (/dev/kvm, VMs, vCPUs)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor, for one)
        if target == KVM_DEVICE or target.startswith("anon_inode:kvm"):
            count += 1
    return count


class SandboxNode:
    """Runs WASM modules in sandboxes from its pool. Made a Ray actor by SandboxFleet."""

    def __init__(
        self,
        pool: Mapping[str, Any],
        *,
        acquire_timeout: Optional[float] = 60.0,
        max_modules: int = 64,
        max_module_bytes: int = 256 << 20,
        max_templates: int = 4,
    ) -> None:
        if not kvm_available():
            raise KvmUnavailable(
                f"{KVM_DEVICE} is not usable on {socket.gethostname()}: this node should not advertise the kvm resource"
            )
        self._pool = SandboxPool(**pool)
        self._acquire_timeout = acquire_timeout
        self._modules = ModuleCache(max_modules, max_module_bytes)
        boot = {k: v for k, v in pool.items() if k not in POOL_ONLY}
        self._templates = TemplateCache(lambda: self._boot_template_sandbox(boot), max_templates)
        self._lock = threading.Lock()
        self._runs = 0
        self._running = 0
        self._max_running = 0

    def info(self) -> dict[str, Any]:
        """Where this actor runs: Ray node id, host name, process id."""
        return {"node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(), "pid": os.getpid()}

    def run_wasm(self, key: str, module: Sequence[Any], run: Mapping[str, Any]) -> WasmResult:
        """Runs the module named ``key`` (``module[0]`` is its ObjectRef, resolved
        only when this node has not cached it) with ``run`` as run_wasm's keywords.

        Errors raise their kvmsandbox class; Ray carries them to the caller typed."""
        code = self._modules.get(key, lambda: ray.get(module[0]))
        with self._running_one():
            with self._pool.acquire(timeout=self._acquire_timeout) as sb:
                return sb.run_wasm(code, **run)

    def run_template(self, key: str, module: Sequence[Any], run: Mapping[str, Any]) -> WasmResult:
        """As ``run_wasm``, but as a template run: in a sandbox of this node that
        prepared the module (with ``run["max_memory_bytes"]``) once, restored to
        the snapshot taken right after compiling it before each run."""
        code = self._modules.get(key, lambda: ray.get(module[0]))
        keywords = dict(run)
        cap = keywords.pop("max_memory_bytes", None)
        with self._running_one():
            return self._templates.run((key, cap), code, keywords)

    def _boot_template_sandbox(self, boot: Mapping[str, Any]) -> Sandbox:
        if boot.get("kernel") is not None:
            raise Unsupported("template runs need micro guests: this fleet's pool boots Linux guests (kernel=)")
        return Sandbox(**{k: v for k, v in boot.items() if k not in ("kernel", "initrd")})

    @contextmanager
    def _running_one(self) -> Iterator[None]:
        with self._lock:
            self._running += 1
            self._max_running = max(self._max_running, self._running)
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                self._runs += 1

    def stats(self) -> dict[str, Any]:
        """Counters of this node: runs (done, running, most at once), module fetches and cache, pool metrics
        (None once closed), template sandboxes (templates.py), KVM file descriptors this process holds."""
        with self._lock:
            runs, running, most = self._runs, self._running, self._max_running
        return {
            "runs": runs,
            "running": running,
            "max_running": most,
            "module_fetches": self._modules.fetches,
            "cached_modules": len(self._modules),
            "pool": None if self._pool.closed else dataclasses.asdict(self._pool.metrics()),
            **self._templates.stats(),
            "kvm_fds": kvm_fds(),
        }

    def close(self, settle: float = 5.0) -> dict[str, Any]:
        """Closes the pool and the template sandboxes and returns the stats after that, once the VMs' KVM file
        descriptors are gone (the core closes them on a background thread after a
        VM stops) or ``settle`` seconds have passed."""
        self._templates.close()
        self._pool.close()
        self._modules.clear()
        deadline = time.monotonic() + settle
        while kvm_fds() and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.stats()
