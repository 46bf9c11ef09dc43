"""kvmsandbox.ray on a real local Ray cluster: two nodes (one raylet each, the
head and a worker) in this machine, both offering the ``kvm`` resource. The
cluster starts once for the module (Ray's start-up takes seconds here).

Every address stays on loopback (node_ip_address here, and conftest.py's
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 for the addresses Ray derives itself):
these tests talk to no one outside this machine."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from typing import Iterator

import pytest
import ray
from ray.cluster_utils import Cluster

import kvmsandbox
import wasm_modules as wm
from kvmsandbox.ray import FleetClosed, FleetError, NoNodes, RunLost, SandboxFleet, SandboxNode, kvm_resources

LOOPBACK = "127.0.0.1"
STORE = 80 * 1024 * 1024  # object store per node: modules are tiny


def node_args(**extra: object) -> dict[str, object]:
    args: dict[str, object] = {
        "node_ip_address": LOOPBACK,
        "num_cpus": 1,
        "resources": {"kvm": 2},
        "object_store_memory": STORE,
    }
    args.update(extra)
    return args


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(
        initialize_head=True,
        head_node_args=node_args(
            include_dashboard=False,
            # Notice a dead node within ~1.5 s instead of Ray's default 30 s.
            _system_config={"health_check_period_ms": 500, "health_check_failure_threshold": 3,
                            "health_check_initial_delay_ms": 0},
        ),
    )
    c.add_node(**node_args())
    c.wait_for_nodes()
    ray.init(address=c.address, _node_ip_address=LOOPBACK, log_to_driver=False)
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def fleet(cluster: Cluster) -> Iterator[SandboxFleet]:
    with SandboxFleet(per_node=2, pool={"min_idle": 1, "max_size": 2}) as f:
        yield f


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, within: float = 20.0) -> bool:
    deadline = time.monotonic() + within
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_work_lands_on_both_nodes_and_modules_travel_once(fleet: SandboxFleet) -> None:
    assert len(fleet.nodes) == 2
    results = list(fleet.map(wm.cat_once(), [{"stdin": f"input {i}".encode()} for i in range(12)]))
    assert [r.stdout for r in results] == [f"input {i}".encode() for i in range(12)]  # type: ignore[union-attr]
    per_node = fleet.metrics()["nodes"]
    assert all(n["runs"] >= 1 for n in per_node.values()), per_node
    stats = fleet.node_stats()
    assert {nid: s["module_fetches"] for nid, s in stats.items()} == {nid: 1 for nid in stats}
    assert sum(s["runs"] for s in stats.values()) >= 12


def test_in_flight_per_node_is_bounded(fleet: SandboxFleet) -> None:
    futures = [fleet.submit(wm.hello()) for _ in range(12)]
    while not all(f.done() for f in futures):
        assert all(n["in_flight"] <= fleet.per_node for n in fleet.metrics()["nodes"].values())
        time.sleep(0.01)
    assert all(f.result().stdout == b"hello, world\n" for f in futures)
    # What the actors saw: never more than per_node runs at once, and that many did overlap.
    most = [s["max_running"] for s in fleet.node_stats().values()]
    assert max(most) == fleet.per_node, most


def test_errors_stay_typed_across_ray(fleet: SandboxFleet) -> None:
    # check=False is the default, as for Sandbox.run_wasm: a trap is a result.
    assert fleet.run_wasm(wm.trap()).outcome == "trap"
    with pytest.raises(kvmsandbox.WasmTrap) as trap:
        fleet.run_wasm(wm.trap(), check=True)
    assert type(trap.value) is kvmsandbox.WasmTrap
    assert trap.value.result.stdout == b"before\n" and trap.value.result.outcome == "trap"
    with pytest.raises(kvmsandbox.OutOfFuel):
        fleet.run_wasm(wm.infinite_loop(), fuel=10_000, check=True)
    with pytest.raises(kvmsandbox.WasmError) as bad:
        fleet.run_wasm(b"\x00asm\x01\x00\x00\x00garbage", check=True)
    assert bad.value.result.outcome == "error"
    # map can also hand exceptions back in order.
    out = list(fleet.map(wm.trap(), [{"check": True}, {}], return_exceptions=True))
    assert isinstance(out[0], kvmsandbox.WasmTrap) and isinstance(out[1], kvmsandbox.WasmResult)
    # A wall-clock timeout stops the node's VM: Timeout, also a builtin TimeoutError.
    with pytest.raises(kvmsandbox.Timeout) as late:
        fleet.run_wasm(wm.infinite_loop(), timeout=0.5)
    assert isinstance(late.value, TimeoutError)
    assert fleet.run_wasm(wm.hello()).ok  # the pool replaced that sandbox
    with pytest.raises(TypeError, match="unknown run keyword"):
        fleet.submit(wm.hello(), stdn=b"x")


def deltas(before: dict[str, dict[str, object]], after: dict[str, dict[str, object]], key: str) -> dict[str, int]:
    return {nid: int(after[nid][key]) - int(before[nid][key]) for nid in after}  # type: ignore[call-overload]


def test_template_runs_land_on_both_nodes_prepare_once_and_fetch_once(fleet: SandboxFleet) -> None:
    module = wm.renamed(wm.cat_once(), "template runs")  # a digest no other test sends
    before = fleet.node_stats()
    results = list(fleet.map(module, [{"stdin": f"input {i}".encode()} for i in range(12)], prepared=True))
    assert [r.stdout for r in results] == [f"input {i}".encode() for i in range(12)]  # type: ignore[union-attr]
    after = fleet.node_stats()
    runs = deltas(before, after, "template_runs")
    assert sum(runs.values()) == 12 and all(n >= 1 for n in runs.values()), runs  # both nodes ran some
    assert deltas(before, after, "module_fetches") == {nid: 1 for nid in after}
    prepared = deltas(before, after, "templates_prepared")
    # At most one sandbox per run in flight on the node, then reused: compiled far fewer times than run.
    assert all(1 <= prepared[nid] <= min(fleet.per_node, runs[nid]) for nid in after), (prepared, runs)
    assert all(s["template_sandboxes"] >= 1 for s in after.values()), after
    # submit takes prepared= too, and plain runs of the same module still work beside template runs.
    assert fleet.submit(module, prepared=True, stdin=b"one").result().stdout == b"one"
    assert fleet.submit(module, stdin=b"two").result().stdout == b"two"


def test_a_template_run_starts_from_the_compiled_snapshot_every_time(fleet: SandboxFleet) -> None:
    module = wm.counter()
    before = fleet.node_stats()
    results = list(fleet.map(module, [{} for _ in range(10)], prepared=True))
    assert [r.stdout for r in results] == [b"1\n"] * 10  # type: ignore[union-attr]
    after = fleet.node_stats()
    runs, prepared = deltas(before, after, "template_runs"), deltas(before, after, "templates_prepared")
    assert sum(runs.values()) == 10 and sum(prepared.values()) < 10, (runs, prepared)  # sandboxes were reused


def test_template_runs_errors_timeouts_eviction_and_close(cluster: Cluster) -> None:
    """One node actor driven directly (one template sandbox kept idle): typed
    errors, a timeout that leaves the template sandbox in use, eviction, and
    close() or a kill leaving no VM behind."""
    from kvmsandbox.ray import digest

    def call(actor: object, module: bytes, **run: object) -> kvmsandbox.WasmResult:
        ref = actor.run_template.remote(digest(module), [ray.put(module)], run)  # type: ignore[attr-defined]
        return ray.get(ref, timeout=120)  # type: ignore[no-any-return]

    def stats(actor: object) -> dict[str, object]:
        return ray.get(actor.stats.remote(), timeout=30)  # type: ignore[attr-defined,no-any-return]

    options = {"num_cpus": 0, "resources": {"kvm": 1}, "max_concurrency": 3}
    node = ray.remote(SandboxNode).options(**options).remote({"max_size": 1}, max_templates=1)
    with pytest.raises(kvmsandbox.Timeout):
        call(node, wm.infinite_loop(), timeout=0.5)
    assert call(node, wm.infinite_loop(), fuel=10_000).outcome == "out_of_fuel"  # the same sandbox, restored
    with pytest.raises(kvmsandbox.WasmTrap) as trap:
        call(node, wm.trap(), check=True)
    assert trap.value.result.stdout == b"before\n"
    with pytest.raises(kvmsandbox.KvmSandboxError, match="InvalidModule"):
        call(node, b"\x00asm\x01\x00\x00\x00\xff garbage")
    s = stats(node)
    # infinite_loop prepared once for both runs; trap's sandbox evicted it; the invalid module was never kept.
    assert s["templates_prepared"] == 2 and s["template_runs"] == 3, s
    assert s["template_evicted"] == 1 and s["template_discarded"] == 0 and s["template_sandboxes"] == 1, s
    closed = ray.get(node.close.remote(), timeout=60)
    assert closed["template_sandboxes"] == 0 and closed["kvm_fds"] == 0, closed
    ray.kill(node)

    killed = ray.remote(SandboxNode).options(**options).remote({"max_size": 1})
    assert call(killed, wm.hello()).stdout == b"hello, world\n"
    assert stats(killed)["template_sandboxes"] == 1
    pid = ray.get(killed.info.remote(), timeout=30)["pid"]
    ray.kill(killed)
    assert wait_gone(pid)  # the process, and the template sandbox's VM inside it, are gone


def test_direct_actor_calls_raise_the_kvmsandbox_class(cluster: Cluster) -> None:
    """Without the fleet, ray.get raises Ray's wrapper, which is also the original class."""
    node = ray.remote(SandboxNode).options(num_cpus=0, resources={"kvm": 1}).remote({"max_size": 1})
    try:
        module = ray.put(wm.trap())
        from kvmsandbox.ray import digest

        with pytest.raises(kvmsandbox.WasmTrap) as e:
            ray.get(node.run_wasm.remote(digest(wm.trap()), [module], {"check": True}), timeout=60)
        assert e.value.result.stdout == b"before\n"  # type: ignore[attr-defined]
    finally:
        ray.kill(node)


@pytest.mark.parametrize("cls", [c for c in vars(kvmsandbox).values() if isinstance(c, type)
                                 and issubclass(c, kvmsandbox.KvmSandboxError)]
                         + [FleetError, NoNodes, RunLost, FleetClosed], ids=lambda c: c.__name__)
def test_every_error_class_pickles_with_its_attributes(cls: type[kvmsandbox.KvmSandboxError]) -> None:
    err = cls("message")
    err.code = "not_found"
    err.result = kvmsandbox.WasmResult("trap", None, b"out", b"err", "unreachable")  # type: ignore[attr-defined]
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and back.args == ("message",)
    assert back.code == "not_found" and back.result == err.result  # type: ignore[attr-defined]


def test_killed_node_mid_batch_still_delivers_every_result(cluster: Cluster) -> None:
    victim = cluster.add_node(**node_args())
    cluster.wait_for_nodes()
    with SandboxFleet(per_node=2, pool={"min_idle": 1, "max_size": 2}) as fleet:
        assert victim.node_id in fleet.nodes and len(fleet.nodes) == 3
        victim_pid = fleet.metrics()["nodes"][victim.node_id]["pid"]
        futures = [fleet.submit(wm.cat_once(), stdin=f"run {i}".encode()) for i in range(30)]
        deadline = time.monotonic() + 60
        while fleet.metrics()["nodes"][victim.node_id]["runs"] < 2:
            assert time.monotonic() < deadline, fleet.metrics()
            time.sleep(0.02)
        assert fleet.metrics()["nodes"][victim.node_id]["in_flight"] >= 1
        cluster.remove_node(victim)
        results = [f.result(timeout=90) for f in futures]
        assert [r.stdout for r in results] == [f"run {i}".encode() for i in range(30)]
        m = fleet.metrics()
        assert m["lost_nodes"] == 1 and m["retried"] >= 1 and not m["nodes"][victim.node_id]["alive"]
        assert victim.node_id not in fleet.nodes
        assert wait_gone(victim_pid)  # the actor's process, and the VMs inside it, are gone


def test_close_closes_every_pool_and_ends_the_actors(cluster: Cluster) -> None:
    fleet = SandboxFleet(per_node=1, pool={"min_idle": 2, "max_size": 2})
    assert fleet.run_wasm(wm.hello()).ok
    assert all(fleet.run_wasm(wm.hello(), prepared=True).ok for _ in range(2))  # template sandboxes too
    before = fleet.node_stats()
    assert all(s["kvm_fds"] > 0 for s in before.values()), before  # warm sandboxes hold VMs
    assert sum(s["template_sandboxes"] for s in before.values()) >= 1, before
    pids = [n["pid"] for n in fleet.metrics()["nodes"].values()]
    closed = fleet.close()
    assert set(closed) == set(before)
    assert all(s["kvm_fds"] == 0 for s in closed.values()), closed  # the pool released every VM
    assert all(s["template_sandboxes"] == 0 for s in closed.values()), closed
    assert all(wait_gone(pid) for pid in pids)
    with pytest.raises(FleetClosed):
        fleet.submit(wm.hello())
    assert fleet.close() == {}  # idempotent


def test_killing_an_actor_leaks_nothing_and_its_runs_move(cluster: Cluster) -> None:
    with SandboxFleet(per_node=1, pool={"min_idle": 1, "max_size": 1}) as fleet:
        nodes = fleet.metrics()["nodes"]
        first, other = list(nodes)
        pid = nodes[first]["pid"]
        ray.kill(fleet._dispatcher.nodes[0].actor)  # as an operator or Ray's OOM killer would
        assert wait_gone(pid)
        results = [fleet.submit(wm.hello()).result(timeout=60) for _ in range(3)]
        assert all(r.ok for r in results)
        assert fleet.nodes == [other]


def test_a_run_lost_max_attempts_times_raises_run_lost(cluster: Cluster) -> None:
    """The bound on retries: a run that (as far as the fleet can tell) kills its
    node is sent at most max_attempts times, then fails with RunLost."""
    with SandboxFleet(per_node=1, max_attempts=1, pool={"min_idle": 1, "max_size": 1}) as fleet:
        fut = fleet.submit(wm.infinite_loop(), timeout=60)
        deadline = time.monotonic() + 30
        while not any(n["in_flight"] for n in fleet.metrics()["nodes"].values()):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        busy = next(n for n in fleet._dispatcher.nodes if n.in_flight)
        while ray.get(busy.actor.stats.remote(), timeout=30)["running"] == 0:  # the guest is running it
            assert time.monotonic() < deadline
            time.sleep(0.05)
        ray.kill(busy.actor)
        with pytest.raises(RunLost, match="max_attempts = 1") as lost:
            fut.result(timeout=60)
        assert busy.node_id in str(lost.value)
        assert fleet.metrics()["retried"] == 0 and len(fleet.nodes) == 1


def test_no_kvm_nodes_is_a_typed_error(cluster: Cluster) -> None:
    with pytest.raises(NoNodes, match="gpu-ish"):
        SandboxFleet(resource="gpu-ish")


def test_kvm_resources_detects_the_device() -> None:
    assert kvm_resources(3) == {"kvm": 3.0}  # this machine has /dev/kvm
    assert kvm_resources(device="/nonexistent/kvm") == {}
    with pytest.raises(ValueError, match="slots = 0"):
        kvm_resources(0)
    # What `ray start --resources="$(python -m kvmsandbox.ray 3)"` gets.
    cli = subprocess.run([sys.executable, "-m", "kvmsandbox.ray", "3"], capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0 and json.loads(cli.stdout) == {"kvm": 3.0}, cli.stderr
    bad = subprocess.run([sys.executable, "-m", "kvmsandbox.ray", "zero"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "zero" in bad.stderr
