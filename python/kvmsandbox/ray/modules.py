"""Modules travel once per node: a digest names each module, the client puts
its bytes in Ray's object store once, and each node actor keeps the bytes it
fetched under that digest (least recently used first out, bounded in count
and bytes), so later runs of the same module send only the digest and a
reference the actor never resolves on a hit."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Callable

from .errors import FleetError


def digest(module: bytes) -> str:
    """The name of a module's bytes (SHA-256, hex)."""
    return hashlib.sha256(module).hexdigest()


class ModuleCache:
    """Bytes by digest, bounded by ``max_modules`` and ``max_bytes``; thread-safe."""

    def __init__(self, max_modules: int = 64, max_bytes: int = 256 << 20) -> None:
        if max_modules < 1 or max_bytes < 1:
            raise ValueError(f"max_modules = {max_modules}, max_bytes = {max_bytes}: both must be at least 1")
        self.max_modules = max_modules
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._gates: dict[str, threading.Lock] = {}  # one fetch per missing key at a time
        self.fetches = 0
        """How many times a miss fetched a module (the test of "once per node")."""

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def get(self, key: str, fetch: Callable[[], bytes]) -> bytes:
        """The module named ``key``; on a miss ``fetch()`` brings it (once, however
        many threads miss together) and its digest is checked."""
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
            gate = self._gates.setdefault(key, threading.Lock())
        with gate:
            try:
                with self._lock:
                    hit = self._items.get(key)
                if hit is not None:
                    return hit  # another thread fetched it while this one waited
                data = bytes(fetch())
                if digest(data) != key:
                    raise FleetError(f"module {key[:12]}: the fetched bytes have digest {digest(data)[:12]}")
                with self._lock:
                    self.fetches += 1
                    self._items[key] = data
                    self._bytes += len(data)
                    self._evict()
                return data
            finally:
                with self._lock:
                    self._gates.pop(key, None)

    def _evict(self) -> None:
        # Oldest first; a module larger than the whole budget is used, not kept.
        while self._items and (len(self._items) > self.max_modules or self._bytes > self.max_bytes):
            self._bytes -= len(self._items.popitem(last=False)[1])

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
