"""AsyncSandbox: the same API for asyncio, never blocking the event loop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import kvmsandbox
from kvmsandbox import AsyncSandbox



async def ticks_while(coro_seconds: float, work: "asyncio.Future[object]") -> int:
    """Counts 10 ms ticks of the event loop until `work` is done."""
    n = 0
    while not work.done():
        await asyncio.sleep(0.01)
        n += 1
    return n


@pytest.mark.asyncio
async def test_a_running_command_does_not_block_the_loop(agent_socket: Path) -> None:
    async with await AsyncSandbox.attach_host_agent(agent_socket) as sb:
        t = time.monotonic()
        work = asyncio.ensure_future(sb.run(["sleep", "1"]))
        ticks = await ticks_while(1.0, work)
        r = await work
        assert r.exit_code == 0
        # A blocked loop would tick about once; a free one about 100 times in 1 s.
        assert ticks > 20, ticks
        assert time.monotonic() - t < 10
        assert await sb.ping() > 0
        await sb.write_file("/tmp/kvmsb-async-test", b"async\n")
        assert await sb.read_file("/tmp/kvmsb-async-test") == b"async\n"
    assert sb.closed


@pytest.mark.asyncio
async def test_async_results_errors_and_streams(agent_socket: Path) -> None:
    async with await AsyncSandbox.attach_host_agent(agent_socket) as sb:
        r = await sb.run("echo out; exit 4")
        assert r.exit_code == 4 and r.stdout == b"out\n"
        with pytest.raises(kvmsandbox.CommandError):
            await sb.run("exit 4", check=True)
        r = await sb.run(["sleep", "30"], timeout=0.3)
        assert r.timed_out
        items = []
        async with await sb.stream("echo a; echo b >&2") as s:
            async for item in s:
                items.append(item)
        assert ("stdout", b"a\n") in items and ("stderr", b"b\n") in items
        assert items[-1][0] == "exit"


@pytest.mark.asyncio
async def test_concurrent_calls_overlap(agent_socket: Path) -> None:
    async with await AsyncSandbox.attach_host_agent(agent_socket) as sb:
        t = time.monotonic()
        results = await asyncio.gather(*(sb.run(["sleep", "1"]) for _ in range(4)))
        assert all(r.exit_code == 0 for r in results)
        # Serialised they would take 4 s.
        assert time.monotonic() - t < 3.5


@pytest.mark.asyncio
async def test_async_micro_guest_wasm() -> None:
    import wasm_modules as wm

    async with await AsyncSandbox.create() as sb:
        r = await sb.run_wasm(wm.hello())
        assert r.ok
        r = await sb.run_wasm(wm.trap())
        assert r.outcome == "trap"


def test_async_sandbox_offers_every_sandbox_method() -> None:
    """Every public Sandbox method has an awaitable AsyncSandbox twin with the
    same parameters, and every property a property."""
    import inspect

    # Constructors whose extra options AsyncSandbox passes through as **kwargs.
    passthrough = {"linux"}
    for name, member in vars(kvmsandbox.Sandbox).items():
        if name.startswith("_"):
            continue
        twin = getattr(AsyncSandbox, name, None)
        assert twin is not None, f"AsyncSandbox lacks {name}"
        if isinstance(member, property):
            assert isinstance(inspect.getattr_static(AsyncSandbox, name), property), name
            continue
        assert inspect.iscoroutinefunction(twin), name
        if name in passthrough:
            continue
        sync_params = list(inspect.signature(getattr(kvmsandbox.Sandbox, name)).parameters.values())
        async_params = list(inspect.signature(twin).parameters.values())
        assert [(p.name, p.kind, p.default) for p in async_params] == [
            (p.name, p.kind, p.default) for p in sync_params
        ], name


@pytest.mark.asyncio
async def test_async_files_api(agent_socket: Path, tmp_path: Path) -> None:
    async with await AsyncSandbox.attach_host_agent(agent_socket) as sb:
        root = str(tmp_path)
        await sb.make_dir(f"{root}/a/b", parents=True)
        src = tmp_path / "src.bin"
        src.write_bytes(b"x" * 100_000)
        assert await sb.upload(src, f"{root}/a/f.bin", mode=0o600) == 100_000
        info = await sb.stat(f"{root}/a/f.bin")
        assert (info.kind, info.size, info.mode) == ("file", 100_000, 0o600)
        assert sorted(e.name for e in await sb.list_dir(f"{root}/a")) == ["b", "f.bin"]
        await sb.rename(f"{root}/a/f.bin", f"{root}/a/g.bin")
        assert await sb.exists(f"{root}/a/g.bin") and not await sb.exists(f"{root}/a/f.bin")
        assert await sb.download(f"{root}/a/g.bin", tmp_path / "back.bin") == 100_000
        assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
        with pytest.raises(kvmsandbox.NotFound):
            await sb.stat(f"{root}/nope")
        await sb.remove(f"{root}/a", recursive=True)
        assert not (tmp_path / "a").exists()


@pytest.mark.asyncio
async def test_async_snapshots_and_templates() -> None:
    import wasm_modules as wm

    async with await AsyncSandbox.create() as sb:
        snap = await sb.snapshot()
        assert isinstance(snap, kvmsandbox.Snapshot) and snap.guest == "micro"
        assert (await sb.run_wasm(wm.hello())).ok
        await sb.restore(snap)
        assert await sb.ping() > 0
        async with await AsyncSandbox.from_snapshot(snap) as fork:
            assert (await fork.run_wasm(wm.hello())).stdout == b"hello, world\n"

        t = await sb.prepare_wasm(wm.cat_once())
        assert isinstance(t, kvmsandbox.AsyncWasmTemplate) and t.id > 0
        for i in range(3):
            assert (await t.run(stdin=f"run {i}".encode())).stdout == f"run {i}".encode()
        trap = await sb.prepare_wasm(wm.trap())
        assert (await trap.run()).outcome == "trap"
        with pytest.raises(kvmsandbox.WasmTrap):
            await trap.run(check=True)

        await sb.set_call_isolation(snap)
        assert (await sb.run_wasm(wm.hello())).ok
        await sb.set_call_isolation(None)


@pytest.mark.asyncio
async def test_async_run_wasm_with_directories(tmp_path: Path) -> None:
    import wasm_modules as wm

    data = bytes(range(256)) * 40
    async with await AsyncSandbox.create() as sb:
        r = await sb.run_wasm(
            wm.copy_in_to_out(),
            dirs={"/in": {"in.txt": data}, "/out": {}},
            read_only=["/in"],
            write_back={"/out": tmp_path},
        )
        assert (r.outcome, r.exit_code) == ("exit", 0), r
        assert r.files == {"/out": {"copy.txt": data}}
        assert (tmp_path / "copy.txt").read_bytes() == data


@pytest.mark.asyncio
async def test_async_host_functions_plain_and_coroutine() -> None:
    """A plain callable runs on a library thread; a coroutine function runs on
    this event loop, which stays free to serve it (and other tasks) meanwhile."""
    import threading

    from test_host_functions import REPO, every_type, fixture

    loop_thread = threading.get_ident()
    seen: list[int] = []
    async with await AsyncSandbox.create() as sb:
        r = await sb.run_wasm(fixture("host_fn"), host_functions=every_type(seen), timeout=120)
        assert (r.outcome, r.stdout) == ("exit", b"HELLO FROM WASM\n"), r
        assert len(seen) == 5 and loop_thread not in seen

        ran_on: list[int] = []
        records = {"city": "Lisbon"}

        async def lookup(key: bytes) -> bytes:
            ran_on.append(threading.get_ident())
            await asyncio.sleep(0.01)  # awaiting works: the loop is not blocked by the run
            return records[key.decode()].encode()

        hosts = [
            kvmsandbox.HostFunction("host", "lookup", ["bytes"], ["bytes"], lookup),
            kvmsandbox.HostFunction("host", "scale", ["f64"], ["f64"], lambda x: x * 10),
        ]
        module = (REPO / "core" / "tests" / "wasm" / "host_lookup.wasm").read_bytes()
        r = await sb.run_wasm(module, args=["host_lookup", "city"], host_functions=hosts, timeout=120)
        assert r.outcome == "exit" and r.stdout == b"city = Lisbon\nscaled: 15.00\n", r
        assert ran_on == [loop_thread]
        # An exception raised by the coroutine traps the module, as a plain callable's does.
        r = await sb.run_wasm(module, args=["host_lookup", "nothing"], host_functions=hosts, timeout=120)
        assert r.outcome == "trap" and r.message is not None and "KeyError" in r.message, r
