"""Warm pools from Python: reuse, refill, bounds, timeouts, a killed sandbox,
stale handles, close, threads, and the GIL left free while the pool works."""

from __future__ import annotations

import threading
import time

import pytest

import kvmsandbox
from kvmsandbox import PooledSandbox, SandboxPool


def settle(pool: SandboxPool, timeout: float = 30.0) -> kvmsandbox.PoolMetrics:
    deadline = time.monotonic() + timeout
    while True:
        m = pool.metrics()
        if m.in_flight == 0:
            return m
        assert time.monotonic() < deadline, m
        time.sleep(0.005)


def test_pool_acquire_release_and_refill() -> None:
    with SandboxPool(min_idle=2, max_size=3) as pool:
        assert pool.wait_idle(timeout=30)
        with pool.acquire(timeout=30) as sb:
            assert isinstance(sb, kvmsandbox.Sandbox)
            assert sb.kind == "micro"
            assert sb.echo(b"pooled") == b"pooled"
            # One borrowed; the pool boots another to keep two idle.
            assert pool.wait_idle(2, timeout=30)
        assert sb.released
        with pytest.raises(kvmsandbox.SandboxClosed):
            sb.ping()
        m = settle(pool)
        assert (m.acquired, m.released, m.resets, m.busy, m.idle) == (1, 1, 1, 0, 3), m
    assert pool.closed
    with pytest.raises(kvmsandbox.SandboxClosed):
        pool.acquire(timeout=1)


def test_pool_max_size_blocks_then_times_out() -> None:
    with SandboxPool(min_idle=0, max_size=1) as pool:
        held = pool.acquire(timeout=30)
        t = time.monotonic()
        with pytest.raises(kvmsandbox.Timeout):
            pool.acquire(timeout=0.2)
        assert 0.2 <= time.monotonic() - t < 2
        got: list[PooledSandbox] = []
        waiter = threading.Thread(target=lambda: got.append(pool.acquire(timeout=30)))
        waiter.start()
        time.sleep(0.1)
        held.release()
        waiter.join(30)
        assert len(got) == 1
        got[0].ping()
        got[0].release()
        m = pool.metrics()
        assert (m.acquired, m.acquire_timeouts) == (2, 1), m
        assert m.acquire_wait_max >= 0.05, m


def test_pool_replaces_a_killed_sandbox() -> None:
    with SandboxPool(min_idle=1, max_size=1) as pool:
        with pool.acquire(timeout=30) as sb:
            sb.kill()
        with pool.acquire(timeout=30) as sb:
            sb.ping()
            sb.discard()
        m = settle(pool)
        assert (m.discarded, m.resets, m.idle, m.busy) == (2, 0, 1, 0), m


def test_pool_threads_do_not_hold_the_gil() -> None:
    counter = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal counter
        while not stop.is_set():
            counter += 1

    with SandboxPool(min_idle=0, max_size=4) as pool:
        held = [pool.acquire(timeout=30) for _ in range(4)]
        t = threading.Thread(target=count)
        t.start()
        try:
            time.sleep(0.02)
            before = counter
            for sb in held:
                sb.release()
            # Four VMs killed and rebooted by the pool threads meanwhile.
            assert pool.wait_idle(4, timeout=60)
            during = counter - before
        finally:
            stop.set()
            t.join()
        assert pool.metrics().resets == 4
        assert during > 100_000, during


def test_pool_four_threads_acquire_concurrently() -> None:
    errors: list[BaseException] = []
    with SandboxPool(min_idle=1, max_size=2) as pool:

        def work() -> None:
            try:
                for _ in range(3):
                    with pool.acquire(timeout=60) as sb:
                        sb.ping()
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        m = settle(pool)
        assert (m.acquired, m.released, m.busy, m.acquire_timeouts) == (12, 12, 0, 0), m


def test_pool_close_leaves_borrowed_sandbox_to_its_owner() -> None:
    pool = SandboxPool(min_idle=1, max_size=2)
    sb = pool.acquire(timeout=30)
    pool.close()
    sb.ping()
    sb.release()
    assert pool.closed


def test_pool_rejects_bad_settings() -> None:
    with pytest.raises(kvmsandbox.ConfigError, match="min_idle = 3"):
        SandboxPool(min_idle=3, max_size=2)
    with pytest.raises(kvmsandbox.ConfigError, match="max_size = 0"):
        SandboxPool(min_idle=0, max_size=0)


def test_pool_takes_the_seccomp_policy_of_sandbox() -> None:
    with pytest.raises(ValueError, match="bogus"):
        SandboxPool(seccomp="bogus")  # type: ignore[arg-type]
    with SandboxPool(min_idle=0, max_size=1, seccomp="trap") as pool:
        with pool.acquire(timeout=30) as sb:
            assert sb.ping() > 0


def test_pool_from_a_snapshot_and_from_a_template() -> None:
    """The snapshot and template sources of the Rust pool, from Python: every
    borrow starts from the snapshot (the template's counter is 1 each time)."""
    import wasm_modules as wm

    with kvmsandbox.Sandbox() as origin:
        snap = origin.snapshot()
        with pytest.raises(ValueError):
            SandboxPool.from_snapshot(snap, seccomp="lenient")  # type: ignore[arg-type]
        with SandboxPool.from_snapshot(snap, min_idle=1, max_size=2, threads=1, seccomp="trap") as pool:
            for _ in range(3):
                with pool.acquire(timeout=30) as sb:
                    assert sb.echo(b"forked") == b"forked"
            m = settle(pool)
            assert (m.acquired, m.released, m.resets, m.discarded) == (3, 3, 3, 0), m

        template = origin.prepare_wasm(wm.counter())
        with SandboxPool.from_template(template, min_idle=1, max_size=2, threads=1) as pool:
            for _ in range(3):
                with pool.acquire(timeout=30) as sb:
                    out = template.run(sandbox=sb, check=True)
                    assert out.stdout == b"1\n", out
            m = settle(pool)
            assert (m.acquired, m.resets, m.discarded) == (3, 3, 0), m
