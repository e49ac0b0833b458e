"""accord.aio against the sync API on PostgreSQL: reads and writes per second.

Each agent reads its own key, or writes it with ``expect=`` (the version it
last wrote), for ``--seconds``; 1 agent, then ``--agents`` agents at once.
The sync face runs its agents as threads (how a sync program hosts many
agents); the async face as coroutines on one event loop. Both use one store
object with a pool of ``--pool`` connections. The figure of merit is the
ratio async/sync for the same work, in the same run, alternating which face
goes first, medians over ``--rounds``; the bare engine's floor (psycopg's
async connection pool doing the bare ``SELECT`` and ``UPDATE ... WHERE
version = %s`` for the same agents) is in the last columns.

Run: .venv/bin/python bench/bench_async.py [--url postgresql://...] [--seconds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time
import uuid

import psycopg
from psycopg_pool import AsyncConnectionPool

import accord
from accord import aio

DEFAULT_URL = os.environ.get("ACCORD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def sync_rate(store: accord.Store, op: str, agents: int, seconds: float) -> float:
    counts = [0] * agents
    start = threading.Barrier(agents + 1)
    stop = threading.Event()

    def agent(i: int) -> None:
        s = store.session(f"sync-{i}")
        key = f"k/{i}"
        version = s.read(key).version
        start.wait()
        n = 0
        while not stop.is_set():
            if op == "read":
                s.read(key)
            else:
                version = s.write(key, "x", expect=version).version
            n += 1
        counts[i] = n

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(agents)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - began)


async def async_rate(store: aio.AsyncStore, op: str, agents: int, seconds: float) -> float:
    counts = [0] * agents
    go = asyncio.Event()
    stop = asyncio.Event()

    async def agent(i: int) -> None:
        s = store.session(f"async-{i}")
        key = f"k/{i}"
        version = (await s.read(key)).version
        await go.wait()
        n = 0
        while not stop.is_set():
            if op == "read":
                await s.read(key)
            else:
                version = (await s.write(key, "x", expect=version)).version
            n += 1
        counts[i] = n

    tasks = [asyncio.create_task(agent(i)) for i in range(agents)]
    await asyncio.sleep(0.2)  # every agent has read its version
    go.set()
    began = time.perf_counter()
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    return sum(counts) / (time.perf_counter() - began)


async def bare_rate(
    pool: AsyncConnectionPool, table: str, op: str, agents: int, seconds: float
) -> float:
    counts = [0] * agents
    stop = asyncio.Event()

    async def agent(i: int) -> None:
        key = f"k/{i}"
        n = 0
        while not stop.is_set():
            async with pool.connection() as conn:
                if op == "read":
                    cur = await conn.execute(
                        f"SELECT data, version FROM {table} WHERE key = %s", (key,)
                    )
                    await cur.fetchone()
                else:
                    await conn.execute(
                        f"UPDATE {table} SET data = %s, version = version + 1 WHERE key = %s",
                        (b"x", key),
                    )
            n += 1
        counts[i] = n

    tasks = [asyncio.create_task(agent(i)) for i in range(agents)]
    began = time.perf_counter()
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    return sum(counts) / (time.perf_counter() - began)


async def main_async(args: argparse.Namespace) -> None:
    base = args.url
    schema = "bench_" + uuid.uuid4().hex[:8]
    url = f"{base}{'&' if '?' in base else '?'}schema={schema}&pool_size={args.pool}"
    table = f"{schema}.bare"
    agent_counts = [int(a) for a in args.agents.split(",")]
    most = max(agent_counts)
    sync_store = await asyncio.to_thread(accord.open, url)
    async_store = await aio.open(url)
    pool = AsyncConnectionPool(base, min_size=1, max_size=args.pool, open=False,
                               kwargs={"autocommit": True})
    await pool.open()
    try:
        async with pool.connection() as conn:
            await conn.execute(f"CREATE TABLE {table} (key text PRIMARY KEY, data bytea, "
                               "version bigint)")
            for i in range(most):
                await conn.execute(f"INSERT INTO {table} VALUES (%s, 'x', 1)", (f"k/{i}",))
        setup = sync_store.session("setup")
        for i in range(most):
            await asyncio.to_thread(setup.write, f"k/{i}", "x", force=True)
        print(f"PostgreSQL, {os.cpu_count()} cores, pool of {args.pool} connections, "
              f"load average {os.getloadavg()[0]:.1f}; medians of {args.rounds} rounds of "
              f"{args.seconds:g} s per side")
        print(f"{'operation':<8} {'agents':>6} {'sync/s':>9} {'async/s':>9} {'async/sync':>10} "
              f"{'bare/s':>9} {'async/bare':>10}")
        for op in ("read", "write"):
            for agents in agent_counts:
                syncs, asyncs, bares, ratios = [], [], [], []
                for r in range(args.rounds):
                    if r % 2:
                        a = await async_rate(async_store, op, agents, args.seconds)
                        s = await asyncio.to_thread(sync_rate, sync_store, op, agents,
                                                    args.seconds)
                    else:
                        s = await asyncio.to_thread(sync_rate, sync_store, op, agents,
                                                    args.seconds)
                        a = await async_rate(async_store, op, agents, args.seconds)
                    b = await bare_rate(pool, table, op, agents, args.seconds)
                    syncs.append(s)
                    asyncs.append(a)
                    bares.append(b)
                    ratios.append(a / s)
                s, a, b = (statistics.median(x) for x in (syncs, asyncs, bares))
                print(f"{op:<8} {agents:>6} {s:>9,.0f} {a:>9,.0f} "
                      f"{statistics.median(ratios):>10.2f} {b:>9,.0f} {a / b:>10.2f}")
    finally:
        await pool.close()
        await async_store.close()
        await asyncio.to_thread(sync_store.close)
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=DEFAULT_URL, help="a PostgreSQL URL without ?schema=")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--agents", default="1,50")
    parser.add_argument("--pool", type=int, default=10)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
