"""kvmsandbox on Ray: sandboxes across a cluster (``pip install kvmsandbox[ray]``).

    import ray
    from kvmsandbox.ray import SandboxFleet

    ray.init(address="auto")          # nodes started with --resources='{"kvm": N}'
    with SandboxFleet(per_node=4) as fleet:
        results = list(fleet.map(module, [{"args": ["prog", str(i)]} for i in range(1000)]))
        results = list(fleet.map(module, [{"stdin": s} for s in inputs], prepared=True))  # template runs

One ``SandboxNode`` actor per node that offers the ``kvm`` resource owns that
node's sandbox pool; ``SandboxFleet`` spreads runs over them with at most
``per_node`` runs in flight per node, sends each module once per node, and
sends a run again elsewhere when its node dies (fleet.py says when that is
safe). Errors keep their kvmsandbox class across Ray. Template runs
(``prepared=True``) use sandboxes of each node that prepared the module once
and start every run from the compiled snapshot (templates.py).
"""

from __future__ import annotations

from .errors import FleetClosed, FleetError, NoNodes, RunLost
from .fleet import RUN_KEYWORDS, SandboxFleet
from .modules import ModuleCache, digest
from .node import SandboxNode, kvm_fds
from .templates import TemplateCache
from .resources import KVM_RESOURCE, kvm_available, kvm_resources, resources_json

__all__ = [
    "SandboxFleet",
    "SandboxNode",
    "FleetError",
    "NoNodes",
    "RunLost",
    "FleetClosed",
    "ModuleCache",
    "TemplateCache",
    "digest",
    "kvm_fds",
    "KVM_RESOURCE",
    "RUN_KEYWORDS",
    "kvm_available",
    "kvm_resources",
    "resources_json",
]
