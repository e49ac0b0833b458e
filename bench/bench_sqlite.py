"""SQLite: reads, versioned writes and update() per second, against the bare engine.

Every figure comes with its ratio to the raw engine doing the least possible
work on the same file in the same run:

- read      vs a bare ``SELECT data, version FROM t WHERE key = ?``
- write     vs a bare ``UPDATE t SET data = ?, version = version + 1
              WHERE key = ? AND version = ?`` (one autocommit statement)
- update()  vs the bare ``SELECT`` + ``UPDATE ... WHERE version = ?`` pair

The raw engine uses the same file and the same pragmas as accord (WAL,
synchronous=NORMAL). On a machine shared with other work, load comes and goes
within seconds, so each operation runs in ``--rounds`` short rounds that
alternate bare and accord; a round's ratio compares two neighbouring
measurements, and the figures printed are medians over the rounds.

Then whether throughput decays as history grows: ``--writes`` versioned
writes to one key, timed per block of 1,000; the last block against the
first, by wall clock and by this thread's CPU time (which other processes
on the machine disturb far less), then the last five blocks against the
first five (median, and best: the block least disturbed by other work);
and, to cancel the load out, alternating blocks on this store (long
history) and on a new one (short history).

Run: .venv/bin/python bench/bench_sqlite.py [--writes 100000] [--seconds 2] [--rounds 10]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import accord
from _timing import paired


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writes", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=2.0, help="per operation and side")
    parser.add_argument("--rounds", type=int, default=10)
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
        cur = raw.execute(
            "UPDATE raw SET data = ?, version = version + 1 WHERE key = ? AND version = ?",
            (row[0], "k", row[1]),
        )
        assert cur.rowcount == 1
        state["v"] += 1

    s.write("doc", "hello")

    def read() -> None:
        s.read("doc")

    doc_state = {"v": 1}

    def write() -> None:
        doc_state["v"] = s.write("doc", "hello", expect=doc_state["v"]).version

    def update() -> None:
        doc_state["v"] = s.update("doc", lambda v: v).version

    rows = []
    for name, ours, bare in (
        ("read", read, raw_select),
        ("write(expect=)", write, raw_cas),
        ("update()", update, raw_rmw),
    ):
        rows.append((name, *paired(ours, bare, args.seconds, args.rounds, warmup=200, batch=50)))

    print(f"SQLite {sqlite3.sqlite_version}, {os.cpu_count()} cores, file {path}")
    print(f"load average before the decay run: {os.getloadavg()[0]:.1f}")
    print(f"{'operation':<16} {'accord/s':>10} {'bare/s':>10} {'ratio':>6}")
    for name, ours_r, bare_r, ratio in rows:
        print(f"{name:<16} {ours_r:>10,.0f} {bare_r:>10,.0f} {ratio:>6.2f}")

    # Decay: N writes to one key; compare the first and the last 1,000.
    s.write("decay", 0)
    v = 1
    block = 1000
    wall: list[float] = []
    cpu: list[float] = []
    for i in range(max(args.writes // block, 1)):
        start, start_cpu = time.perf_counter(), time.thread_time()
        for _ in range(block):
            v = s.write("decay", i, expect=v).version
        wall.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - start_cpu)
    k = min(5, len(wall))
    med = statistics.median
    print(
        f"history growth: {len(wall) * block:,} writes to one key; first 1,000 in "
        f"{wall[0]:.3f} s, last 1,000 in {wall[-1]:.3f} s (last/first = {wall[-1] / wall[0]:.2f}); "
        f"CPU {cpu[0]:.3f} s and {cpu[-1]:.3f} s (last/first = {cpu[-1] / cpu[0]:.2f})"
    )
    print(
        f"last {k} blocks / first {k}: median {med(wall[-k:]) / med(wall[:k]):.2f} wall, "
        f"{med(cpu[-k:]) / med(cpu[:k]):.2f} CPU; "
        f"best {min(wall[-k:]) / min(wall[:k]):.2f} wall, {min(cpu[-k:]) / min(cpu[:k]):.2f} CPU"
    )

    # The same question with the machine's load cancelled out: alternate
    # short blocks of writes on this store (its history now long) and on a
    # new one (history short), and compare neighbours.
    fresh_store = accord.open(f"sqlite:///{tmp / 'fresh.db'}")
    fresh = fresh_store.session("bench")
    fresh.write("decay", 0)
    fv = 1
    pair_ratios = []
    for i in range(20):
        start = time.perf_counter()
        for _ in range(250):
            fv = fresh.write("decay", i, expect=fv).version
        short = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(250):
            v = s.write("decay", i, expect=v).version
        pair_ratios.append((time.perf_counter() - start) / short)
    quartiles = statistics.quantiles(pair_ratios, n=4)
    print(
        f"20 alternating blocks of 250 writes, long history / new store: median "
        f"{med(pair_ratios):.2f} (quartiles {quartiles[0]:.2f} to {quartiles[2]:.2f})"
    )
    fresh_store.close()
    store.close()


if __name__ == "__main__":
    main()
