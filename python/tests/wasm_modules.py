"""Tiny WASI test modules, assembled here byte by byte so the tests need no
WAT compiler. Each builder mirrors one of core/tests/wasm/*.wat."""

from __future__ import annotations

I32 = 0x7F
I64 = 0x7E
WASI = "wasi_snapshot_preview1"
# name -> (params, results)
WASI_FUNCS = {
    "fd_write": ([I32, I32, I32, I32], [I32]),
    "fd_read": ([I32, I32, I32, I32], [I32]),
    "proc_exit": ([I32], []),
    "path_open": ([I32, I32, I32, I32, I32, I64, I64, I32, I32], [I32]),
}


def uleb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def sleb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if (n == 0 and not b & 0x40) or (n == -1 and b & 0x40):
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def vec(items: list[bytes]) -> bytes:
    return uleb(len(items)) + b"".join(items)


def name(s: str) -> bytes:
    return uleb(len(s)) + s.encode()


def section(sid: int, body: bytes) -> bytes:
    return bytes([sid]) + uleb(len(body)) + body


# Instructions.
def const(n: int) -> bytes:
    return b"\x41" + sleb(n)


def const64(n: int) -> bytes:
    return b"\x42" + sleb(n)


def call(idx: int) -> bytes:
    return b"\x10" + uleb(idx)


def load(addr: int) -> bytes:
    return const(addr) + b"\x28\x02\x00"


def store(addr: int, value: int) -> bytes:
    return const(addr) + const(value) + b"\x36\x02\x00"


DROP = b"\x1a"
UNREACHABLE = b"\x00"
END = b"\x0b"


def module(imports: list[str], body: bytes, data: list[tuple[int, bytes]] = (), locals_i32: int = 0) -> bytes:  # type: ignore[assignment]
    """One exported `_start` calling `imports` (WASI names, indices 0..), one page of memory."""
    types = [b"\x60" + vec([bytes([p]) for p in WASI_FUNCS[f][0]]) + vec([bytes([r]) for r in WASI_FUNCS[f][1]]) for f in imports]
    types.append(b"\x60\x00\x00")  # _start: [] -> []
    start_type = len(types) - 1
    out = b"\x00asm\x01\x00\x00\x00"
    out += section(1, vec(types))
    if imports:
        out += section(2, vec([name(WASI) + name(f) + b"\x00" + uleb(i) for i, f in enumerate(imports)]))
    out += section(3, vec([uleb(start_type)]))
    out += section(5, vec([b"\x00\x01"]))
    out += section(7, vec([name("_start") + b"\x00" + uleb(len(imports)), name("memory") + b"\x02\x00"]))
    locals_ = vec([uleb(locals_i32) + bytes([I32])]) if locals_i32 else vec([])
    code = locals_ + body + END
    out += section(10, vec([uleb(len(code)) + code]))
    if data:
        out += section(11, vec([b"\x00" + const(off) + END + uleb(len(d)) + d for off, d in data]))
    return out


def write(fd_write: int, fd: int, addr: int, length: int) -> bytes:
    """fd_write(fd, iovec at 0 = {addr, length}, 1, nwritten at 8), result dropped."""
    return store(0, addr) + store(4, length) + const(fd) + const(0) + const(1) + const(8) + call(fd_write) + DROP


def hello() -> bytes:
    """Prints "hello, world\\n" to stdout and "oops\\n" to stderr, returns (exit 0)."""
    return module(["fd_write"], write(0, 1, 16, 13) + write(0, 2, 32, 5), [(16, b"hello, world\n"), (32, b"oops\n")])


def exit_with(code: int) -> bytes:
    """proc_exit(code); traps if it ever returns."""
    return module(["proc_exit"], const(code) + call(0) + UNREACHABLE)


def trap() -> bytes:
    """Prints "before\\n", then executes `unreachable`."""
    return module(["fd_write"], write(0, 1, 16, 7) + UNREACHABLE, [(16, b"before\n")])


def infinite_loop() -> bytes:
    """Never ends: only fuel or a wall-clock timeout stops it."""
    return module([], b"\x03\x40" + b"\x0c\x00" + END)


def ticks(count: int, spin: int) -> bytes:
    """Prints "tick\\n" `count` times, spinning `spin` iterations between prints."""
    # local 0: remaining ticks; local 1: spin counter
    body = const(count) + b"\x21\x00"  # local.set 0
    body += b"\x03\x40"  # loop $tick
    body += write(0, 1, 16, 5)
    body += const(spin) + b"\x21\x01"
    body += b"\x03\x40"  # loop $spin
    body += b"\x20\x01" + const(1) + b"\x6b" + b"\x22\x01"  # local.tee 1 (l1 - 1)
    body += b"\x0d\x00"  # br_if $spin
    body += END
    body += b"\x20\x00" + const(1) + b"\x6b" + b"\x22\x00"  # local.tee 0 (l0 - 1)
    body += b"\x0d\x00"  # br_if $tick
    body += END
    return module(["fd_write"], body, [(16, b"tick\n")], locals_i32=2)


def cat_once() -> bytes:
    """Reads up to 4096 bytes of stdin once and writes them to stdout."""
    body = store(0, 4096) + store(4, 4096)
    body += const(0) + const(0) + const(1) + const(16) + call(0) + DROP  # fd_read(0, iov, 1, &nread)
    body += store(32, 4096)
    body += const(36) + const(16) + b"\x28\x02\x00" + b"\x36\x02\x00"  # mem[36] = mem[16]
    body += const(1) + const(32) + const(1) + const(40) + call(1) + DROP
    return module(["fd_read", "fd_write"], body)


def copy_in_to_out() -> bytes:
    """Copies `in.txt` of preopened directory fd 3 to `copy.txt` of fd 4 (the
    first steps of core/tests/wasm/files.wat); exits 0, or 10-13 naming the
    step that failed (open in.txt, read, create copy.txt, write)."""
    path_open, fd_read, fd_write, proc_exit = range(4)

    def or_exit(code: int) -> bytes:  # if (result != 0) proc_exit(code)
        return b"\x04\x40" + const(code) + call(proc_exit) + END

    body = const(3) + const(0) + const(100) + const(6) + const(0) + const64(2) + const64(0) + const(0) + const(200)
    body += call(path_open) + or_exit(10)
    body += store(0, 1024) + store(4, 60000)
    body += load(200) + const(0) + const(1) + const(204) + call(fd_read) + or_exit(11)
    body += const(4) + const(0) + const(120) + const(8) + const(9) + const64(64) + const64(0) + const(0) + const(208)
    body += call(path_open) + or_exit(12)
    body += const(4) + load(204) + b"\x36\x02\x00"  # iovec length = bytes read
    body += load(208) + const(0) + const(1) + const(212) + call(fd_write) + or_exit(13)
    return module(["path_open", "fd_read", "fd_write", "proc_exit"], body, [(100, b"in.txt"), (120, b"copy.txt")])


def counter() -> bytes:
    """Adds one to a digit it keeps in memory (initially "0") and prints it: "1\n"
    on a fresh instance, more if the memory of an earlier run were still there."""
    body = const(64) + const(64) + b"\x2d\x00\x00" + const(1) + b"\x6a" + b"\x3a\x00\x00"  # mem8[64] += 1
    return module(["fd_write"], body + write(0, 1, 64, 2), [(64, b"0\n")])


def renamed(module_bytes: bytes, label: str) -> bytes:
    """The same module with a custom section added: same behaviour, another digest."""
    return module_bytes + section(0, name(label))
