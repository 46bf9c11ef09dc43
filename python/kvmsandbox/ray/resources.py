"""Which Ray nodes may run sandboxes: the ``kvm`` custom resource.

Ray has no notion of /dev/kvm, so a node advertises it as a custom resource
(``ray start --resources='{"kvm": 4}'``) and the node actors ask for it. The
amount is the number of sandbox slots the operator wants on that node; the
fleet takes ``kvm_per_node`` of it (default 1) for its one actor there.
"""

from __future__ import annotations

import json
import os
from typing import Optional

#: The custom resource name the fleet looks for by default.
KVM_RESOURCE = "kvm"

KVM_DEVICE = "/dev/kvm"


def kvm_available(device: str = KVM_DEVICE) -> bool:
    """Whether this process may open ``device`` for reading and writing."""
    return os.access(device, os.R_OK | os.W_OK)


def kvm_resources(slots: Optional[int] = None, *, device: str = KVM_DEVICE) -> dict[str, float]:
    """``{"kvm": slots}`` if this machine has a usable /dev/kvm, else ``{}``.

    ``slots`` defaults to the CPU count. Pass the result to ``ray.init(resources=...)``
    or print it for ``ray start --resources`` (``python -m kvmsandbox.ray``).
    """
    if slots is not None and slots < 1:
        raise ValueError(f"slots = {slots}: a node with /dev/kvm offers at least 1 slot")
    if not kvm_available(device):
        return {}
    return {KVM_RESOURCE: float(slots if slots is not None else (os.cpu_count() or 1))}


def resources_json(slots: Optional[int] = None) -> str:
    """kvm_resources() as the JSON ``ray start --resources`` takes."""
    return json.dumps(kvm_resources(slots))
