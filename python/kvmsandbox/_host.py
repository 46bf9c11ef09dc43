"""Host functions: Python callables a WASM module imports by name.

    def lookup(key: bytes) -> bytes:
        return records[key.decode()].encode()

    sb.run_wasm(module, host_functions=[
        HostFunction("host", "lookup", ["bytes"], ["bytes"], lookup),
    ])

Types are "i32", "i64", "f32", "f64" (int or float) and "bytes" (a buffer in
the module's memory, copied; see docs/host-functions.md for how it appears
in the wasm signature). The callable gets one positional argument per
parameter and returns None (no results), one value, or a tuple in declaration
order. It runs on the library thread waiting for the run, holding the GIL only
while it runs; an exception traps the module with "Type: message". Calling the
same sandbox from inside it raises InvalidArgument (the call would wait for
the run it is part of).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence, Tuple

HostType = Literal["i32", "i64", "f32", "f64", "bytes"]


@dataclass(frozen=True)
class HostFunction:
    """``module``.``name`` with these parameter and result types, answered by ``func``."""

    module: str
    name: str
    params: Sequence[HostType]
    results: Sequence[HostType]
    func: Callable[..., Any]

    def _native(self) -> Tuple[str, str, list[str], list[str], Callable[..., Any]]:
        return (self.module, self.name, list(self.params), list(self.results), self.func)
