"""SandboxFleet: runs spread over one SandboxNode actor per /dev/kvm node
(the scheduling itself is dispatch.py's).

Retry contract: a run whose node (actor, raylet or machine) dies before it
answers is sent again to another node, up to ``max_attempts`` sends in all.
That is safe because a run starts from a clean sandbox and a WASM module's
only effects are its result (stdout, stderr, exit): running it twice is
indistinguishable from running it once. It does not hold when the pool's
sandboxes carry writable disks (``Disk(read_only=False)``): a lost run may
have written its disk image before the node died, and the retry writes
again. A run that itself kills the node it runs on (a crash of the host
process) is retried too and takes down at most ``max_attempts`` nodes.
Errors the sandbox reports (a timeout; with ``check=True`` also a trap, out
of fuel, ...) are results of the run: they are raised to the caller, never
retried. As for ``Sandbox.run_wasm``, ``check`` defaults to False.

Template runs (``prepared=True``) hold to the same contract: each node
prepares the module once per sandbox it dedicates to it, and every run
restores the snapshot taken right after compiling, so a run sees nothing of
the runs before it on that sandbox (templates.py).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections import OrderedDict, deque
from concurrent.futures import Future
from typing import Any, Deque, Iterable, Iterator, Mapping, Optional, Union

import ray
from ray.exceptions import RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from .. import WasmResult
from .dispatch import Dispatcher, Node, Run
from .errors import FleetClosed, FleetError, NoNodes
from .modules import digest
from .node import SandboxNode
from .resources import KVM_RESOURCE

log = logging.getLogger(__name__)

#: The keywords a run takes: those of ``Sandbox.run_wasm`` after the module.
RUN_KEYWORDS = frozenset({"args", "env", "stdin", "fuel", "max_memory_bytes", "timeout", "check"})


def _run_keywords(run: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(run) - RUN_KEYWORDS
    if unknown:
        raise TypeError(f"unknown run keyword(s) {sorted(unknown)}; a run takes {sorted(RUN_KEYWORDS)}")
    out = dict(run)
    if "args" in out:
        out["args"] = [str(a) for a in out["args"]]
    if out.get("env") is not None:
        out["env"] = {str(k): str(v) for k, v in out["env"].items()}
    if "stdin" in out:
        out["stdin"] = bytes(out["stdin"])
    return out


class SandboxFleet:
    """WASM runs spread over every live Ray node offering the ``kvm`` resource.

        ray.init(address="auto")
        with SandboxFleet(per_node=4, pool={"min_idle": 2, "max_size": 4}) as fleet:
            fut = fleet.submit(module, args=["prog", "x"], fuel=10_000_000)
            print(fut.result().stdout_text)
            for r in fleet.map(module, [{"stdin": s} for s in inputs]):
                ...
            for r in fleet.map(module, [{"stdin": s} for s in inputs], prepared=True):
                ...  # template runs: compiled once per node sandbox, clean state each run

    ``pool`` is the keyword set of each node's ``SandboxPool`` (default
    ``min_idle=1, max_size=per_node``). Futures resolve to ``WasmResult`` or
    raise the kvmsandbox exception the run raised; see the module docstring
    for which failures are retried.
    """

    def __init__(
        self,
        *,
        per_node: int = 2,
        pool: Optional[Mapping[str, Any]] = None,
        resource: str = KVM_RESOURCE,
        kvm_per_node: float = 1.0,
        max_attempts: int = 3,
        acquire_timeout: Optional[float] = 60.0,
        start_timeout: float = 120.0,
        max_pending: int = 10_000,
        templates_per_node: Optional[int] = None,
    ) -> None:
        templates = per_node if templates_per_node is None else templates_per_node
        if per_node < 1 or max_attempts < 1 or max_pending < 1 or templates < 1:
            raise ValueError(
                f"per_node = {per_node}, max_attempts = {max_attempts}, max_pending = {max_pending}, "
                f"templates_per_node = {templates}: each must be at least 1"
            )
        if not ray.is_initialized():
            raise FleetError("Ray is not initialized: call ray.init() (or ray.init(address=...)) first")
        self.per_node = per_node
        self._lock = threading.Lock()
        self._room = threading.BoundedSemaphore(max_pending)
        self._outstanding: set["Future[WasmResult]"] = set()
        self._modules: OrderedDict[str, Any] = OrderedDict()
        self._closed = False
        self._counts = {"submitted": 0, "completed": 0, "failed": 0}
        self.start_errors: dict[str, BaseException] = {}
        """Nodes whose actor failed to start, with why."""
        nodes = self._start_nodes(dict(pool or {"min_idle": 1, "max_size": per_node}), resource, kvm_per_node,
                                  acquire_timeout, start_timeout, templates)
        self._dispatcher = Dispatcher(nodes, per_node, max_attempts)

    # -- start-up ------------------------------------------------------------

    def _start_nodes(
        self,
        pool: dict[str, Any],
        resource: str,
        amount: float,
        acquire_timeout: Optional[float],
        start_timeout: float,
        templates: int,
    ) -> list[Node]:
        cluster: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
        node_ids = [n["NodeID"] for n in cluster if n.get("Alive") and n.get("Resources", {}).get(resource, 0) >= amount]
        if not node_ids:
            raise NoNodes(f"no live Ray node offers {amount} of the {resource!r} resource (start nodes with "
                          f"--resources='{{\"{resource}\": N}}' where /dev/kvm is usable)")
        actor_class: Any = ray.remote(SandboxNode)
        actors = {
            nid: actor_class.options(
                num_cpus=0,
                resources={resource: amount},
                scheduling_strategy=NodeAffinitySchedulingStrategy(nid, soft=False),
                max_concurrency=self.per_node + 2,  # runs, plus stats/close calls beside them
                max_restarts=0,
                max_task_retries=0,
            ).remote(pool, acquire_timeout=acquire_timeout, max_templates=templates)
            for nid in node_ids
        }
        infos = {nid: a.info.remote() for nid, a in actors.items()}
        ray.wait(list(infos.values()), num_returns=len(infos), timeout=start_timeout)
        nodes = []
        for nid, ref in infos.items():
            try:
                nodes.append(Node(nid, actors[nid], ray.get(ref, timeout=0)))
            except Exception as e:  # noqa: BLE001 - any failure leaves this node out
                self.start_errors[nid] = e.cause if isinstance(e, RayTaskError) else e
                ray.kill(actors[nid])
        if not nodes:
            raise NoNodes(f"no node actor started: {self.start_errors}")
        return nodes

    # -- submitting ----------------------------------------------------------

    @property
    def nodes(self) -> list[str]:
        """Ids of the nodes still in the fleet."""
        return [n.node_id for n in self._dispatcher.alive()]

    @property
    def capacity(self) -> int:
        """How many runs the fleet has in flight at most (live nodes × per_node)."""
        return len(self.nodes) * self.per_node

    def _module_ref(self, module: bytes) -> tuple[str, Any]:
        """The module's digest and its ObjectRef, put in the object store once."""
        module = bytes(module)
        key = digest(module)
        with self._lock:
            ref = self._modules.get(key)
            if ref is not None:
                self._modules.move_to_end(key)
                return key, ref
        ref = ray.put(module)
        with self._lock:
            self._modules[key] = ref
            while len(self._modules) > 256:  # in-flight runs hold their own reference
                self._modules.popitem(last=False)
        return key, ref

    def submit(self, module: bytes, *, prepared: bool = False, **run: Any) -> "Future[WasmResult]":
        """Queues one run of ``module`` (keywords as ``Sandbox.run_wasm``'s) and
        returns its future. Blocks while ``max_pending`` runs are unfinished.

        ``prepared=True`` makes it a template run: the node runs it in a sandbox
        that prepared the module (``Sandbox.prepare_wasm``, with this run's
        ``max_memory_bytes``) once and restores the compiled snapshot before
        each run, which skips compiling the module every time."""
        key, ref = self._module_ref(module)
        return self._submit(key, ref, _run_keywords(run), prepared)

    def _submit(self, key: str, ref: Any, run: dict[str, Any], prepared: bool = False) -> "Future[WasmResult]":
        fut: Future[WasmResult] = Future()
        self._room.acquire()
        with self._lock:
            if self._closed:
                self._room.release()
                raise FleetClosed("the fleet is closed")
            self._outstanding.add(fut)
            self._counts["submitted"] += 1
        fut.add_done_callback(self._settled)
        self._dispatcher.submit(Run(key, ref, run, fut, prepared))
        return fut

    def _settled(self, fut: "Future[WasmResult]") -> None:
        with self._lock:
            self._outstanding.discard(fut)
            if fut.cancelled() or fut.exception() is not None:
                self._counts["failed"] += 1
            else:
                self._counts["completed"] += 1
        self._room.release()

    def run_wasm(self, module: bytes, *, prepared: bool = False, **run: Any) -> WasmResult:
        """One run, waited for: ``submit(module, prepared=prepared, **run).result()``."""
        return self.submit(module, prepared=prepared, **run).result()

    def map(
        self,
        module: bytes,
        inputs: Iterable[Mapping[str, Any]],
        *,
        return_exceptions: bool = False,
        prepared: bool = False,
        **common: Any,
    ) -> Iterator[Union[WasmResult, BaseException]]:
        """Runs ``module`` once per input (a dict of run keywords over ``common``)
        and yields the results in input order, keeping at most twice the fleet's
        capacity submitted ahead. A failed run raises there, or is yielded as its
        exception with ``return_exceptions=True`` (traps and fuel exhaustion
        are results unless ``check=True``). ``prepared=True``: template runs (see submit)."""
        key, ref = self._module_ref(module)
        base = _run_keywords(common)
        window: Deque[Future[WasmResult]] = deque()

        def take() -> Union[WasmResult, BaseException]:
            fut = window.popleft()
            if return_exceptions:
                err = fut.exception()
                if err is not None:
                    return err
            return fut.result()

        for item in inputs:
            window.append(self._submit(key, ref, {**base, **_run_keywords(item)}, prepared))
            if len(window) >= max(1, 2 * self.capacity):
                yield take()
        while window:
            yield take()

    # -- inspection and shutdown ---------------------------------------------------

    def metrics(self) -> dict[str, Any]:
        """Client-side counters, and per node: alive, runs in flight, runs done, host, pid."""
        with self._lock:
            out: dict[str, Any] = dict(self._counts)
            out["outstanding"] = len(self._outstanding)
        d = self._dispatcher
        with d.lock:
            out["retried"] = d.retried
            out["lost_nodes"] = d.lost_nodes
            out["nodes"] = {
                n.node_id: {"alive": n.alive, "in_flight": n.in_flight, "runs": n.runs, "host": n.info.get("host"),
                            "pid": n.info.get("pid")}
                for n in d.nodes
            }
        return out

    def node_stats(self, timeout: float = 30.0) -> dict[str, dict[str, Any]]:
        """Each live node actor's own stats (SandboxNode.stats)."""
        alive = self._dispatcher.alive()
        refs = [n.actor.stats.remote() for n in alive]
        return dict(zip([n.node_id for n in alive], ray.get(refs, timeout=timeout)))

    def close(self, *, wait: bool = True, timeout: float = 60.0) -> dict[str, dict[str, Any]]:
        """Stops the fleet: waits (``wait``, at most ``timeout`` s) for submitted
        runs, fails the rest with FleetClosed, closes every node's pool and ends
        its actor. Returns each node's stats after its pool closed. Idempotent."""
        with self._lock:
            if self._closed:
                return {}
            self._closed = True
            outstanding = list(self._outstanding)
        if wait and outstanding:
            concurrent.futures.wait(outstanding, timeout=timeout)
        self._dispatcher.stop(timeout)
        d = self._dispatcher
        with d.lock:
            nodes = [n for n in d.nodes if n.alive]
            for n in d.nodes:
                n.alive = False
        refs = {n.node_id: n.actor.close.remote() for n in nodes}
        if refs:
            ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout)
        closed = {}
        for n in nodes:
            try:
                closed[n.node_id] = ray.get(refs[n.node_id], timeout=0)
            except Exception as e:  # noqa: BLE001 - reported, and the actor is killed below anyway
                log.warning("kvmsandbox fleet: node %s did not close cleanly: %s", n.node_id, e)
            ray.kill(n.actor)
        for fut in outstanding:
            try:
                fut.set_exception(FleetClosed("the fleet was closed before this run finished"))
            except concurrent.futures.InvalidStateError:
                pass  # it finished after all
        return closed

    def __enter__(self) -> "SandboxFleet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(wait=exc[0] is None)
