"""The node actors' module cache (no cluster needed): one fetch per module
however many runs miss at once, bounded size, bytes checked against the name."""

from __future__ import annotations

import threading
import time

import pytest

from kvmsandbox.ray import FleetError, ModuleCache, digest


def test_concurrent_misses_fetch_once() -> None:
    cache = ModuleCache()
    module = b"\x00asm module"
    calls = []

    def fetch() -> bytes:
        calls.append(1)
        time.sleep(0.1)  # every other thread misses meanwhile
        return module

    got: list[bytes] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(digest(module), fetch))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [module] * 8 and len(calls) == 1 and cache.fetches == 1


def test_bounded_by_count_and_bytes_oldest_out() -> None:
    cache = ModuleCache(max_modules=2, max_bytes=10)
    a, b, c = b"aaaa", b"bbbb", b"cccc"
    for m in (a, b):
        cache.get(digest(m), lambda m=m: m)  # type: ignore[misc]
    cache.get(digest(a), lambda: pytest.fail("a is cached"))  # a is now the newest
    cache.get(digest(c), lambda: c)  # evicts b
    assert len(cache) == 2 and cache.fetches == 3
    cache.get(digest(b), lambda: b)
    assert cache.fetches == 4
    big = b"x" * 11  # larger than the whole budget: used, not kept
    assert cache.get(digest(big), lambda: big) == big
    assert len(cache) == 0


def test_fetched_bytes_must_match_their_name() -> None:
    cache = ModuleCache()
    with pytest.raises(FleetError, match="digest"):
        cache.get(digest(b"expected"), lambda: b"something else")
    assert len(cache) == 0
    assert cache.get(digest(b"expected"), lambda: b"expected") == b"expected"  # a later fetch may succeed


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_modules = 0"):
        ModuleCache(max_modules=0)
