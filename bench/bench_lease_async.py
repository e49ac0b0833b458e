"""Leases on the async face against the sync face: acquire+release per second.

1. Uncontended: one agent takes and releases a lease on one key, as fast as
   it can, on the sync face (``Session.acquire``) and on the async face
   (``await AsyncSession.acquire``); ``--rounds`` short rounds alternating
   the two, medians; the figure of merit is the ratio async/sync.
2. A hot key: ``--agents`` agents take an exclusive lease on one key, add 1
   to a counter under it and release, for ``--seconds``; on the sync face
   each agent is a thread, on the async face a coroutine of one event loop.
   Printed: grants per second, the ratio async/sync, and the threads the
   process ran at the end (a waiting coroutine should hold none).

On SQLite (a temporary file) and on PostgreSQL (``--pg``, when one answers).

Run: .venv/bin/python bench/bench_lease_async.py [--rounds 5] [--round-seconds 1]
     [--seconds 3] [--agents 50] [--pg URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import accord
from accord import aio

PG_URL = os.environ.get("ACCORD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def sync_uncontended(store: accord.Store, seconds: float) -> float:
    s = store.session("sync-one")
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        s.acquire("one", ttl=30, wait=0).release()
        n += 1
    return n / (time.perf_counter() - start)


async def async_uncontended(store: aio.AsyncStore, seconds: float) -> float:
    s = store.session("async-one")
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        lease = await s.acquire("one", ttl=30, wait=0)
        await lease.release()
        n += 1
    return n / (time.perf_counter() - start)


def sync_hot(store: accord.Store, agents: int, seconds: float) -> tuple[float, int]:
    counts = [0] * agents
    stop = threading.Event()

    def agent(i: int) -> None:
        s = store.session(f"sync-{i}")
        while not stop.is_set():
            try:
                with s.lease("hot", ttl=30, wait=30) as lease:
                    doc = s.read("hot")
                    s.write("hot", doc.value + 1, lease=lease)
            except accord.LeaseTimeout:
                continue
            counts[i] += 1

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(agents)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    running = threading.active_count()
    stop.set()
    elapsed = time.perf_counter() - start
    done = sum(counts)
    for t in threads:
        t.join(60)
    return done / elapsed, running


async def async_hot(store: aio.AsyncStore, agents: int, seconds: float) -> tuple[float, int]:
    counts = [0] * agents
    stop = asyncio.Event()

    async def agent(i: int) -> None:
        s = store.session(f"async-{i}")
        while not stop.is_set():
            try:
                async with s.lease("hot", ttl=30, wait=30) as lease:
                    doc = await s.read("hot")
                    await s.write("hot", doc.value + 1, lease=lease)
            except accord.LeaseTimeout:
                continue
            counts[i] += 1

    start = time.perf_counter()
    tasks = [asyncio.create_task(agent(i)) for i in range(agents)]
    await asyncio.sleep(seconds)
    running = threading.active_count()
    stop.set()
    elapsed = time.perf_counter() - start
    # The waiters still in line leave it (a cancelled acquire holds nothing).
    for task in tasks:
        task.cancel()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 120)
    return sum(counts) / elapsed, running


def bench(name: str, url: str, args: argparse.Namespace) -> None:
    store = accord.open(url)
    store.session("setup").write("hot", 0)

    async def run() -> None:
        async with await aio.open(url) as astore:
            syncs, asyncs, ratios = [], [], []
            for i in range(args.rounds):
                if i % 2:
                    a = await async_uncontended(astore, args.round_seconds)
                    s = sync_uncontended(store, args.round_seconds)
                else:
                    s = sync_uncontended(store, args.round_seconds)
                    a = await async_uncontended(astore, args.round_seconds)
                syncs.append(s)
                asyncs.append(a)
                ratios.append(a / s)
            print(
                f"{name:10} uncontended acquire+release: sync {statistics.median(syncs):8,.0f}/s"
                f"   async {statistics.median(asyncs):8,.0f}/s"
                f"   async/sync {statistics.median(ratios):.2f}"
            )
            srate, sthreads = sync_hot(store, args.agents, args.seconds)
            arate, athreads = await async_hot(astore, args.agents, args.seconds)
            print(
                f"{name:10} hot key, {args.agents} agents: sync (threads) {srate:8,.0f} grants/s"
                f" ({sthreads} threads)   async (coroutines) {arate:8,.0f} grants/s"
                f" ({athreads} threads)   async/sync {arate / srate:.2f}"
            )
            final = await astore.session("check").read("hot")
            print(f"{name:10} counter {final.value} (every counted grant added 1, and more after)")

    try:
        asyncio.run(run())
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--round-seconds", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=3.0, help="per hot-key run")
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--pg", default=PG_URL)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench("sqlite", f"sqlite:///{Path(tmp) / 'lease.db'}", args)
    try:
        import psycopg

        psycopg.connect(args.pg, autocommit=True, connect_timeout=3).close()
    except Exception as exc:  # no server: say so and skip
        print(f"postgresql skipped: {type(exc).__name__}: {exc}")
        return
    schema = f"bench_lease_async_{os.getpid()}"
    sep = "&" if "?" in args.pg else "?"
    try:
        bench("postgresql", f"{args.pg}{sep}schema={schema}", args)
    finally:
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
