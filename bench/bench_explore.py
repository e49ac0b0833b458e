"""The interleaving explorer: schedules per second, against the workflow run bare.

The workflow: 2 agents x 10 operations (each agent reads and writes two
keys of a shared dict, five times), every operation behind a scheduling
point. "Ours" explores it (PCT, then random, then exhaustive with at most
2 preemptions), 100 schedules per call, no shrinking; "bare" is the least
possible work for the same workflow: the two agents' coroutines run one
after the other with the points doing nothing (outside an exploration a
point returns at once), no scheduler, no event loop. The ratio is ours
(schedules/s) over bare (workflows/s), taken per round from runs close
together in time.

The store version (the issue's figure): 2 agents x 10 operations on the
explorer's memory store (``world.store``, an ``accord.aio.AsyncStore`` with
every operation a scheduling point): each agent reads the shared document
and writes a key of its own, five times. Its "bare" run is the same
workflow once on an ``AsyncStore`` over the same memory backend with no
explorer (``tests/aio_native.py``'s inline backend: no scheduler, no event
loop, no thread).

Run: .venv/bin/python bench/bench_explore.py [--seconds 4] [--rounds 3] [--only-store]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from _timing import paired
from accord.aio import AsyncSession, AsyncStore
from accord.explorer import World, explore, point

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.aio_native import InlineMemoryBackend

OPS = 10
BATCH = 100


async def agent(data: dict[str, int], name: str) -> None:
    for i in range(OPS // 2):
        key = f"k{i % 2}"
        await point("read", reads={key})
        value = data[key]
        await point("write", writes={key})
        data[key] = value + 1


async def workflow(world: World) -> None:
    data = {"k0": 0, "k1": 0}
    world.spawn("a", agent(data, "a"))
    world.spawn("b", agent(data, "b"))
    await world.join()


def bare() -> None:
    data = {"k0": 0, "k1": 0}
    for name in ("a", "b"):
        coro = agent(data, name)
        try:
            coro.send(None)
        except StopIteration:
            pass
        else:  # pragma: no cover - points never suspend outside an exploration
            raise AssertionError("a point suspended outside an exploration")


# --- on the explorer's store ----------------------------------------------------------

DOC = "docs/plan.md"


async def store_agent(s: AsyncSession) -> None:
    for i in range(OPS // 2):
        await s.read(DOC)
        await s.write(f"own/{s.agent}/{i}", i)


async def store_workflow(world: World) -> None:
    await world.store.session("setup").write(DOC, "plan")
    await world.run({"a": store_agent, "b": store_agent})


def store_bare() -> None:
    store = AsyncStore(InlineMemoryBackend())

    async def run() -> None:
        await store.session("setup").write(DOC, "plan")
        await store_agent(store.session("a"))
        await store_agent(store.session("b"))

    coro = run()
    try:
        coro.send(None)
    except StopIteration:
        pass
    else:  # pragma: no cover - the inline backend never suspends
        raise AssertionError("the bare store run suspended")


def store_ours(strategy: str) -> Any:
    def run() -> None:
        result = explore(
            store_workflow,
            schedules=BATCH,
            strategy=strategy,
            seed=1,
            shrink=False,
            preemptions=2,
        )
        assert result.ok and result.schedules == BATCH, result.report()

    return run


def ours(strategy: str) -> Any:
    def run() -> None:
        result = explore(
            workflow,
            schedules=BATCH,
            strategy=strategy,
            seed=1,
            store=None,
            shrink=False,
            preemptions=2,
        )
        assert result.ok and result.schedules == BATCH

    return run


def per_cpu_second(fn: Any, seconds: float) -> float:
    """Calls of ``fn`` per second of this process's CPU time, over about ``seconds``."""
    n, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        fn()
        n += 1
    return n / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only-store", action="store_true", help="only the store's figures")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("| case | per second | vs bare workflow |")
    print("|---|---:|---:|")
    bare_rate = None
    if not args.only_store:
        for strategy in ("pct", "random", "exhaustive"):
            o, b, ratio = paired(ours(strategy), bare, args.seconds, args.rounds, warmup=3, batch=1)
            bare_rate = b
            print(f"| explore, {strategy}: schedules | {o * BATCH:,.0f} | {ratio * BATCH:.4f} |")
        print(f"| bare workflow (2 agents x {OPS} operations) | {bare_rate:,.0f} | 1 |")
    # Not exhaustive here: the agents' writes are to keys of their own, so it
    # finds every order equivalent to one and stops after a single schedule.
    for strategy in ("pct", "random"):
        o, b, ratio = paired(
            store_ours(strategy), store_bare, args.seconds, args.rounds, warmup=3, batch=1
        )
        bare_rate = b
        print(f"| store, explore, {strategy}: schedules | {o * BATCH:,.0f} | {ratio * BATCH:.4f} |")
    print(f"| store, bare workflow (2 agents x {OPS} store operations) | {bare_rate:,.0f} | 1 |")
    # The machine is shared: CPU time is what one schedule costs whatever else
    # runs (the wall-clock rates above move with the load).
    for strategy in ("pct", "random"):
        cpu = per_cpu_second(store_ours(strategy), args.seconds / 2) * BATCH
        print(f"| store, explore, {strategy}: schedules per CPU-second | {cpu:,.0f} | |")
    cpu = per_cpu_second(store_bare, args.seconds / 2)
    print(f"| store, bare workflow: runs per CPU-second | {cpu:,.0f} | |")
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
