"""The fleet's own failures, as kvmsandbox errors.

They are plain Python subclasses of ``KvmSandboxError`` defined in an
importable module, so they pickle by reference and arrive typed on the other
side of Ray (tests/test_ray.py pickles each one)."""

from __future__ import annotations

from .. import KvmSandboxError


class FleetError(KvmSandboxError):
    """The fleet could not run the work (as opposed to the sandbox failing it)."""


class NoNodes(FleetError):
    """No live node with /dev/kvm is left to run on."""


class RunLost(FleetError):
    """Every attempt of a run was lost with the node running it."""


class FleetClosed(FleetError):
    """The fleet was closed before the run finished."""
