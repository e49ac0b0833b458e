"""Leases: acquire+release per second, and a hot key under contention.

1. Uncontended acquire+release per second, with the ratio to the raw engine
   doing the least work in the same run:

   - SQLite: accord lease on a SQLite file vs ``filelock.FileLock``
     acquire+release (an OS file lock on the same machine);
   - PostgreSQL (when one answers at --pg): accord lease vs
     ``SELECT pg_advisory_lock(k)`` + ``SELECT pg_advisory_unlock(k)`` on one
     autocommit connection.

   Load on a shared machine comes and goes, so each pair runs in
   ``--rounds`` short rounds alternating raw and accord; a round's ratio
   compares neighbours, and medians are printed.

2. A hot key: 1, 4 and 16 agents (real processes) take an exclusive lease on
   one key, read and write a counter under it, release, for ``--seconds``.
   Printed: grants per second, and the p50/p99 time an acquire waited.

Run: .venv/bin/python bench/bench_lease.py [--seconds 5] [--rounds 5] [--pg URL]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import accord
from _timing import timed

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def rounds(
    raw: Callable[[], None], ours: Callable[[], None], seconds: float, count: int
) -> tuple[float, float, float]:
    """Median raw rate, median accord rate, median per-round ratio (accord / raw)."""
    raws, oursl, ratios = [], [], []
    for _ in range(count):
        r = timed(raw, seconds)
        o = timed(ours, seconds)
        raws.append(r)
        oursl.append(o)
        ratios.append(o / r)
    return statistics.median(raws), statistics.median(oursl), statistics.median(ratios)


def bench_sqlite(tmp: Path, seconds: float, count: int) -> None:
    from filelock import FileLock

    lock = FileLock(str(tmp / "raw.lock"))

    def raw() -> None:
        lock.acquire()
        lock.release()

    store = accord.open(f"sqlite:///{tmp / 'lease.db'}")
    session = store.session("bench")

    def ours() -> None:
        session.acquire("hot", ttl=30).release()

    r, o, ratio = rounds(raw, ours, seconds, count)
    print(
        f"sqlite     accord acquire+release {o:9,.0f}/s   filelock {r:9,.0f}/s   "
        f"ratio {ratio:.3f}"
    )
    store.close()


def pg_url_for(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}schema={schema}"


def bench_postgres(base: str, seconds: float, count: int) -> bool:
    try:
        import psycopg

        conn = psycopg.connect(base, autocommit=True, connect_timeout=3)
    except Exception as exc:  # no server: say so and skip
        print(f"postgresql skipped: {type(exc).__name__}: {exc}")
        return False
    schema = f"bench_lease_{os.getpid()}"

    def raw() -> None:
        conn.execute("SELECT pg_advisory_lock(4242)")
        conn.execute("SELECT pg_advisory_unlock(4242)")

    store = accord.open(pg_url_for(base, schema))
    session = store.session("bench")

    def ours() -> None:
        session.acquire("hot", ttl=30).release()

    try:
        r, o, ratio = rounds(raw, ours, seconds, count)
        print(
            f"postgresql accord acquire+release {o:9,.0f}/s   advisory lock {r:9,.0f}/s   "
            f"ratio {ratio:.3f}"
        )
    finally:
        store.close()
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.close()
    return True


def hot_worker(url: str, agent: str, seconds: float, barrier: Any, results: Any) -> None:
    """Take the hot key's lease over and over for ``seconds``; report grants and waits."""
    waits: list[float] = []
    with accord.open(url) as store:
        s = store.session(agent)
        barrier.wait(timeout=60)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                lease = s.acquire("counter", ttl=30, wait=60)
            except accord.LeaseTimeout:
                continue
            waits.append(time.perf_counter() - start)
            with lease:
                try:
                    value = s.read("counter").value
                except accord.NotFound:
                    value = 0
                s.write("counter", value + 1, lease=lease)
    results.put((agent, waits))


def bench_hot(url: str, agents: int, seconds: float) -> tuple[float, float, float, int]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(agents)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=hot_worker, args=(url, f"agent-{i}", seconds, barrier, results))
        for i in range(agents)
    ]
    for p in procs:
        p.start()
    out = []
    deadline = time.monotonic() + seconds + 300
    while len(out) < agents:
        try:
            out.append(results.get(timeout=1))
        except Exception:  # queue.Empty: check that no worker died
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                for p in procs:
                    p.kill()
                codes = [p.exitcode for p in procs]
                raise SystemExit(f"hot-key worker failed (exit codes {codes})") from None
    for p in procs:
        p.join(timeout=60)
    waits = sorted(w for _, ws in out for w in ws)
    grants = len(waits)
    with accord.open(url) as store:
        final = store.session("check").read("counter").value
    p50 = waits[len(waits) // 2] if waits else float("nan")
    p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))] if waits else float("nan")
    return grants / seconds, p50, p99, final - grants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per hot-key run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--round-seconds", type=float, default=1.0)
    parser.add_argument("--pg", default=os.environ.get("ACCORD_TEST_POSTGRES", PG_URL))
    parser.add_argument("--agents", default="1,4,16")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        print("== uncontended acquire+release (medians of alternating rounds)")
        bench_sqlite(tmp, args.round_seconds, args.rounds)
        has_pg = bench_postgres(args.pg, args.round_seconds, args.rounds)
        print(f"\n== hot key: N agents (processes), {args.seconds:g} s each, "
              "read+write a counter under each lease")
        targets = [("sqlite", None)]
        if has_pg:
            targets.append(("postgresql", f"bench_hot_{os.getpid()}"))
        for name, schema in targets:
            for n in (int(x) for x in args.agents.split(",")):
                if schema is None:
                    url = f"sqlite:///{tmp / f'hot-{n}.db'}"
                else:
                    url = pg_url_for(args.pg, f"{schema}_{n}")
                rate, p50, p99, lost = bench_hot(url, n, args.seconds)
                print(
                    f"{name:10} {n:3} agents  {rate:8,.0f} grants/s   wait p50 {p50 * 1000:8.2f} ms"
                    f"   p99 {p99 * 1000:8.2f} ms   counter off by {lost}"
                )
                if schema is not None:
                    import psycopg

                    with psycopg.connect(args.pg, autocommit=True) as conn:
                        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}_{n}" CASCADE')


if __name__ == "__main__":
    main()
