"""Runs per second of a WASM hello world through SandboxFleet vs SandboxPool
used directly (Ray's overhead), with 1 and with 2 Ray nodes on this machine.

    build/venv/bin/python python/benches/ray_fleet.py [--runs N] [--per-node K]

Run manually (needs /dev/kvm and `pip install './python[ray]'`); the numbers
are in docs/benchmarks.md. Each case first runs ``per_node`` runs untimed so
the pools are warm and the module is cached on every node.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # keep Ray on loopback

import ray
from ray.cluster_utils import Cluster

import kvmsandbox
from kvmsandbox.ray import SandboxFleet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import wasm_modules  # noqa: E402

LOOPBACK = "127.0.0.1"


def timed(label: str, runs: int, fn: Callable[[], int]) -> float:
    t0 = time.perf_counter()
    done = fn()
    dt = time.perf_counter() - t0
    assert done == runs, f"{label}: {done} of {runs} runs succeeded"
    print(f"{label:<40} {runs} runs in {dt:6.2f} s = {runs / dt:6.2f} runs/s ({1000 * dt / runs:6.1f} ms/run)")
    return runs / dt


def pool_direct(module: bytes, runs: int, threads: int) -> float:
    with kvmsandbox.SandboxPool(min_idle=threads, max_size=threads) as pool:
        pool.wait_idle(threads, timeout=60)

        def one(_: int) -> bool:
            with pool.acquire(timeout=60) as sb:
                return sb.run_wasm(module).ok

        with ThreadPoolExecutor(threads) as ex:
            list(ex.map(one, range(threads)))  # warm-up
            return timed(f"pool directly, {threads} threads", runs, lambda: sum(ex.map(one, range(runs))))


def fleet(module: bytes, runs: int, per_node: int, label: str) -> float:
    with SandboxFleet(per_node=per_node, pool={"min_idle": per_node, "max_size": per_node}) as f:
        list(f.map(module, [{}] * (per_node * len(f.nodes))))  # warm-up: pools filled, module cached
        actor = f._dispatcher.nodes[0].actor
        t0 = time.perf_counter()
        for _ in range(100):
            ray.get(actor.info.remote())
        print(f"{'actor round trip, no sandbox':<40} {10 * (time.perf_counter() - t0):6.2f} ms/call (100 calls)")
        return timed(label, runs, lambda: sum(r.ok for r in f.map(module, [{}] * runs)))  # type: ignore[union-attr]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--per-node", type=int, default=2)
    a = ap.parse_args()
    module = wasm_modules.hello()
    print(f"kvmsandbox.ray bench: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, ray {ray.__version__}")
    pool_direct(module, a.runs, a.per_node)
    pool_direct(module, a.runs, 2 * a.per_node)  # as many in flight as the 2-node fleet
    store = 80 * 1024 * 1024
    args = {"node_ip_address": LOOPBACK, "num_cpus": 1, "resources": {"kvm": 2}, "object_store_memory": store}
    cluster = Cluster(initialize_head=True, head_node_args={**args, "include_dashboard": False})
    ray.init(address=cluster.address, _node_ip_address=LOOPBACK, log_to_driver=False)
    try:
        fleet(module, a.runs, a.per_node, f"fleet, 1 node x {a.per_node} in flight")
        cluster.add_node(**args)
        cluster.wait_for_nodes()
        fleet(module, a.runs, a.per_node, f"fleet, 2 nodes x {a.per_node} in flight")
    finally:
        ray.shutdown()
        cluster.shutdown()
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
