"""Template runs on one node: sandboxes dedicated to one prepared module each.

A template (``Sandbox.prepare_wasm``) is bound to the sandbox that prepared it,
and preparing another module there replaces it, so a pool sandbox (handed out
clean, reset on release) cannot carry one between runs. This cache boots its
own sandboxes, prepares one module in each once, and lends each to one run at
a time. Every ``WasmTemplate.run`` restores the snapshot taken right after the
module was compiled, so the next borrower of a sandbox sees nothing of the last
run, and a wall-clock timeout restores rather than stops it: the sandbox goes
back to the cache. Any other failure of the sandbox closes it.

Idle sandboxes are kept by (module digest, max_memory_bytes), least recently
used out, at most ``max_idle`` in all; busy ones are bounded by the actor's
threads. ``close()`` closes the idle ones at once and the busy ones when their
run ends. When the actor's process ends instead, its VMs end with it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from .. import OutOfFuel, Sandbox, StartTimeout, Timeout, WasmError, WasmResult, WasmTemplate, WasmTrap
from .errors import FleetClosed

#: A key of the cache: the module's digest and the memory cap it was prepared with.
Key = tuple[str, Optional[int]]


@dataclass
class Prepared:
    """A sandbox and the one template it prepared."""

    sandbox: Sandbox
    template: WasmTemplate


def _keeps_sandbox(err: BaseException) -> bool:
    """Whether the sandbox is still clean and usable after a run raised ``err``:
    the run's own answers (check=True) and a run timeout, which restores."""
    if isinstance(err, StartTimeout):
        return False
    return isinstance(err, (WasmTrap, OutOfFuel, WasmError, Timeout))


class TemplateCache:
    """Prepared sandboxes by key, lent to one run at a time; thread-safe."""

    def __init__(self, boot: Callable[[], Sandbox], max_idle: int = 4) -> None:
        if max_idle < 1:
            raise ValueError(f"max_idle = {max_idle}: must be at least 1")
        self.max_idle = max_idle
        self._boot = boot
        self._lock = threading.Lock()
        self._idle: OrderedDict[Key, list[Prepared]] = OrderedDict()
        self._idle_count = 0
        self._live = 0
        self._closed = False
        self.prepared = 0
        """Templates prepared (one per sandbox booted for a module)."""
        self.runs = 0
        self.evicted = 0
        """Idle sandboxes closed to stay within ``max_idle``."""
        self.discarded = 0
        """Sandboxes closed because a run failed them."""

    def run(self, key: Key, code: bytes, run: Mapping[str, Any]) -> WasmResult:
        """Runs the template of ``code`` (named by ``key``) with ``run`` as
        ``WasmTemplate.run``'s keywords, in an idle prepared sandbox or a new one."""
        entry = self._take(key) or self._prepare(key, code)
        keep = False
        try:
            result = entry.template.run(**run)
            keep = True
            return result
        except BaseException as e:
            keep = _keeps_sandbox(e)
            raise
        finally:
            self._give_back(key, entry, keep)

    def _take(self, key: Key) -> Optional[Prepared]:
        with self._lock:
            if self._closed:
                raise FleetClosed("the node is closed")
            idle = self._idle.get(key)
            if not idle:
                return None
            entry = idle.pop()
            if not idle:
                del self._idle[key]
            self._idle_count -= 1
            return entry

    def _prepare(self, key: Key, code: bytes) -> Prepared:
        sb = self._boot()
        try:
            template = sb.prepare_wasm(code, max_memory_bytes=key[1])
        except BaseException:
            sb.close()
            raise
        with self._lock:
            self._live += 1
            self.prepared += 1
        return Prepared(sb, template)

    def _give_back(self, key: Key, entry: Prepared, keep: bool) -> None:
        out: list[Prepared] = []
        usable = keep and not entry.sandbox.closed
        with self._lock:
            self.runs += 1
            if usable and not self._closed:
                self._idle.setdefault(key, []).append(entry)
                self._idle.move_to_end(key)
                self._idle_count += 1
                while self._idle_count > self.max_idle:
                    oldest, idle = next(iter(self._idle.items()))
                    out.append(idle.pop(0))
                    if not idle:
                        del self._idle[oldest]
                    self._idle_count -= 1
                    self.evicted += 1
            else:
                out.append(entry)
                self.discarded += 0 if usable else 1
            self._live -= len(out)
        for e in out:
            e.sandbox.close()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "templates_prepared": self.prepared,
                "template_runs": self.runs,
                "template_sandboxes": self._live,
                "template_idle": self._idle_count,
                "template_modules": len(self._idle),
                "template_evicted": self.evicted,
                "template_discarded": self.discarded,
            }

    def close(self) -> None:
        """Closes the idle sandboxes now; busy ones close when their run ends. Idempotent."""
        with self._lock:
            self._closed = True
            out = [e for idle in self._idle.values() for e in idle]
            self._idle.clear()
            self._idle_count = 0
            self._live -= len(out)
        for e in out:
            e.sandbox.close()
