"""The GIL is released around blocking calls; Ctrl-C interrupts them cleanly."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import kvmsandbox
from kvmsandbox import Sandbox


def test_gil_released_while_a_call_blocks(agent: Sandbox) -> None:
    counter = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal counter
        while not stop.is_set():
            counter += 1

    t = threading.Thread(target=count)
    t.start()
    try:
        time.sleep(0.05)
        before = counter
        start = time.monotonic()
        agent.run(["sleep", "1"])
        blocked = time.monotonic() - start
        during = counter - before
    finally:
        stop.set()
        t.join()
    assert blocked >= 0.9
    # A pure-Python loop manages millions of increments a second; with the GIL
    # held for the whole call it would have made none.
    assert during > 100_000, during


def test_two_threads_block_in_parallel(agent_socket: object, agent: Sandbox) -> None:
    results: list[float] = []

    def work() -> None:
        t = time.monotonic()
        agent.run(["sleep", "1"])
        results.append(time.monotonic() - t)

    start = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 3
    assert time.monotonic() - start < 2.5  # concurrent, not 3 s in a row


def test_ctrl_c_interrupts_a_long_call_and_kills_the_sandbox(agent: Sandbox) -> None:
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        agent.run(["sleep", "30"])
    elapsed = time.monotonic() - start
    timer.join()
    assert elapsed < 3, elapsed
    assert agent.closed
    with pytest.raises(kvmsandbox.SandboxClosed):
        agent.ping()


def test_ctrl_c_interrupts_a_stream(sandbox: Sandbox, agent: Sandbox) -> None:
    s = agent.stream(["sleep", "30"])
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        next(s)
    timer.join()
    assert time.monotonic() - start < 3
    assert list(s) == []  # the stream is finished
    assert sandbox.ping() > 0  # other sandboxes are unaffected
