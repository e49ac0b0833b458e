"""SQLite: reads, versioned writes and update() per second, against the bare engine.

Every figure comes with its ratio to the raw engine doing the least possible
work on the same file in the same run:

- read      vs a bare ``SELECT data, version FROM t WHERE key = ?``
- write     vs a bare ``UPDATE t SET data = ?, version = version + 1
              WHERE key = ? AND version = ?`` (one autocommit statement)
- update()  vs the bare ``SELECT`` + ``UPDATE ... WHERE version = ?`` pair

and whether throughput decays as history grows: the last 1,000 of N writes
to one key against the first 1,000.

Run: .venv/bin/python bench/bench_sqlite.py [--writes 100000] [--seconds 2]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import accord


def rate(fn: Callable[[], None], seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds``."""
    for _ in range(50):
        fn()
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            fn()
        n += 100
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writes", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    path = tmp / "bench.db"
    store = accord.open(f"sqlite:///{path}")
    s = store.session("bench")

    # The raw engine: same file, same pragmas accord uses (WAL, synchronous=NORMAL).
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute("CREATE TABLE raw (key TEXT PRIMARY KEY, data BLOB, version INTEGER)")
    raw.execute("INSERT INTO raw VALUES ('k', 'hello', 1)")
    state = {"v": 1}

    def raw_select() -> None:
        raw.execute("SELECT data, version FROM raw WHERE key = ?", ("k",)).fetchone()

    def raw_cas() -> None:
        cur = raw.execute(
            "UPDATE raw SET data = ?, version = version + 1 WHERE key = ? AND version = ?",
            ("hello", "k", state["v"]),
        )
        assert cur.rowcount == 1
        state["v"] += 1

    def raw_rmw() -> None:
        row = raw.execute("SELECT data, version FROM raw WHERE key = ?", ("k",)).fetchone()
        raw.execute(
            "UPDATE raw SET data = ?, version = version + 1 WHERE key = ? AND version = ?",
            (row[0], "k", row[1]),
        )

    s.write("doc", "hello")

    def read() -> None:
        s.read("doc")

    doc_state = {"v": 1}

    def write() -> None:
        doc_state["v"] = s.write("doc", "hello", expect=doc_state["v"]).version

    def update() -> None:
        s.update("doc", lambda v: v)

    rows = []
    for name, ours, bare in (
        ("read", read, raw_select),
        ("write(expect=)", write, raw_cas),
        ("update()", update, raw_rmw),
    ):
        bare_rate = rate(bare, args.seconds)
        our_rate = rate(ours, args.seconds)
        rows.append((name, our_rate, bare_rate))

    print(f"SQLite {sqlite3.sqlite_version}, file {path}")
    print(f"{'operation':<16} {'accord/s':>10} {'bare/s':>10} {'ratio':>6}")
    for name, ours_r, bare_r in rows:
        print(f"{name:<16} {ours_r:>10,.0f} {bare_r:>10,.0f} {ours_r / bare_r:>6.2f}")

    # Decay: N writes to one key; compare the first and the last 1,000.
    s.write("decay", 0)
    v = 1
    block = 1000
    times = []
    for i in range(args.writes // block):
        start = time.perf_counter()
        for _ in range(block):
            v = s.write("decay", i, expect=v).version
        times.append(time.perf_counter() - start)
    first, last = times[0], times[-1]
    print(
        f"history growth: {args.writes:,} writes to one key; first 1,000 in {first:.3f} s, "
        f"last 1,000 in {last:.3f} s (last/first = {last / first:.2f})"
    )
    store.close()


if __name__ == "__main__":
    main()
