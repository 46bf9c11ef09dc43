"""The fleet's scheduler: which node runs what, and what happens when a node dies.

One thread owns the decisions. It keeps the runs not yet sent, sends one to
the least busy live node whenever that node has fewer than ``per_node`` runs
in flight (the backpressure: a node never queues more than that), and
settles each run's future when Ray reports the call done. Ray's completion
callbacks only post to this thread's queue: they run on Ray's own threads,
which must not block or send work. Counters shared with readers (metrics)
change under ``lock``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Deque

import ray
from ray.exceptions import RayActorError, RayTaskError

from .. import WasmResult
from .errors import FleetClosed, NoNodes, RunLost

log = logging.getLogger(__name__)


@dataclass
class Run:
    """One run: the module's digest and ObjectRef, run_wasm's keywords, its future,
    and whether it is a template run (SandboxNode.run_template)."""

    key: str
    module: Any
    keywords: dict[str, Any]
    future: "Future[WasmResult]"
    prepared: bool = False
    attempts: int = 0
    lost_on: list[str] = field(default_factory=list)


@dataclass
class Node:
    """A SandboxNode actor and what the dispatcher knows of it."""

    node_id: str
    actor: Any
    info: dict[str, Any]
    alive: bool = True
    in_flight: int = 0
    runs: int = 0


class Dispatcher:
    def __init__(self, nodes: list[Node], per_node: int, max_attempts: int) -> None:
        self.nodes = nodes
        self.per_node = per_node
        self.max_attempts = max_attempts
        self.lock = threading.Lock()
        self.retried = 0
        self.lost_nodes = 0
        self._events: "queue.SimpleQueue[tuple[Any, ...]]" = queue.SimpleQueue()
        self._pending: Deque[Run] = deque()
        self._thread = threading.Thread(target=self._loop, name="kvmsandbox-fleet", daemon=True)
        self._thread.start()

    def submit(self, run: Run) -> None:
        self._events.put(("submit", run))

    def stop(self, timeout: float) -> None:
        """Fails the runs not yet sent with FleetClosed and ends the thread (waits at most ``timeout``)."""
        self._events.put(("stop",))
        self._thread.join(timeout)

    def alive(self) -> list[Node]:
        with self.lock:
            return [n for n in self.nodes if n.alive]

    def _loop(self) -> None:
        while True:
            event = self._events.get()
            if event[0] == "stop":
                for run in self._pending:
                    if not run.future.done():
                        run.future.set_exception(FleetClosed("the fleet was closed before this run finished"))
                self._pending.clear()
                return
            try:
                if event[0] == "submit":
                    self._pending.append(event[1])
                else:
                    self._finish(event[1], event[2], event[3])
                self._dispatch()
            except Exception:  # pragma: no cover - a bug here must not stop every later run
                log.exception("kvmsandbox fleet dispatcher")

    def _dispatch(self) -> None:
        while self._pending:
            alive = self.alive()
            if not alive:
                while self._pending:
                    self._pending.popleft().future.set_exception(NoNodes("every node of the fleet was lost"))
                return
            free = [n for n in alive if n.in_flight < self.per_node]
            if not free:
                return
            run = self._pending.popleft()
            if run.attempts == 0 and not run.future.set_running_or_notify_cancel():
                continue  # cancelled while it waited
            # Least busy first, then fewest runs (round robin); a node the run was lost on last.
            node = min(free, key=lambda n: (n.node_id in run.lost_on, n.in_flight, n.runs))
            self._send(run, node)

    def _send(self, run: Run, node: Node) -> None:
        run.attempts += 1
        try:
            # The ObjectRef travels inside a list so that Ray does not fetch it for the call.
            method = node.actor.run_template if run.prepared else node.actor.run_wasm
            ref = method.remote(run.key, [run.module], run.keywords)
        except Exception as e:  # noqa: BLE001 - a handle that cannot send means the node is gone
            self._lost(run, node, e)
            return
        with self.lock:
            node.in_flight += 1
        ref.future().add_done_callback(lambda done: self._events.put(("done", run, node, done)))

    def _finish(self, run: Run, node: Node, done: "Future[Any]") -> None:
        with self.lock:
            node.in_flight -= 1
        try:
            result = done.result()
        except RayTaskError as e:  # the run raised: hand over the original exception
            self._ran(node)
            cause = e.cause
            run.future.set_exception(cause if isinstance(cause, BaseException) else e)
        except RayActorError as e:  # the node died under the run
            self._lost(run, node, e)
        except BaseException as e:  # noqa: BLE001 - any other Ray failure is the run's
            run.future.set_exception(e)
        else:
            self._ran(node)
            run.future.set_result(result)

    def _ran(self, node: Node) -> None:
        with self.lock:
            node.runs += 1

    def _lost(self, run: Run, node: Node, err: BaseException) -> None:
        with self.lock:
            if node.alive:
                node.alive = False
                self.lost_nodes += 1
                log.warning("kvmsandbox fleet: lost node %s: %s", node.node_id, err)
            run.lost_on.append(node.node_id)
        try:
            ray.kill(node.actor)  # an actor that is only unreachable must not go on running
        except Exception:  # noqa: BLE001 - already gone
            pass
        if run.attempts < self.max_attempts:
            with self.lock:
                self.retried += 1
            self._pending.appendleft(run)
        else:
            run.future.set_exception(
                RunLost(f"the run was lost with the node each time it was sent (max_attempts = {self.max_attempts}; "
                        f"lost on {run.lost_on}): {err}")
            )
