"""The simulator checked against reality: the same agents as real processes.

:func:`run_real` runs one seed of a workload as real processes, one per
agent (and one per queue writer), on a real store (a SQLite file), with real
sleeps for the think times, and measures it as :func:`run_once` measures a
simulated run. The agents' code is the simulator's own (``_Run``'s
strategies), with the clock swapped: ``asyncio.sleep`` and wall-clock time
instead of the explorer's virtual ones. The difference between the two is
then the simulator's model of time: its scheduler, its virtual clock, the
latency it charges per store operation.

Scale the workload down (think times of tenths of a second) to keep a run
short; the store operations take their real time.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from typing import Any

from ..errors import AccordError, UsageError
from ._run import Change, RunStats, _Run, refused_writes
from ._workload import Workload

__all__ = ["run_real"]

START_TIMEOUT = 60.0
"""Real seconds the processes have to open the store and meet at the start."""


class _RealRun(_Run):
    """A :class:`_Run` on the wall clock, for one process."""

    async def sleep(self, seconds: float, label: str) -> None:
        await asyncio.sleep(seconds)

    def now(self) -> float:
        return time.time()


def _process(
    url: str,
    workload: Workload,
    strategy: str,
    seed: int,
    role: tuple[str, Any],
    barrier: Any,
    out: Any,
) -> None:
    async def main() -> list[Change]:
        from .._store_async import open as aio_open

        run = _RealRun(workload, strategy, seed)
        async with await aio_open(url) as store:
            run.store = store
            # Meet the others before the first move: every agent starts at once.
            await asyncio.to_thread(barrier.wait, START_TIMEOUT)
            kind, what = role
            if kind == "writers":
                # One writer process serves every key (a coroutine per key).
                await asyncio.gather(*(run.writer(key, count) for key, count in what))
            else:
                await run.agent(what)
        return run.changes

    try:
        out.put((role, asyncio.run(main()), None))
    except BaseException as exc:  # reported to the parent, which fails the run
        out.put((role, [], f"{type(exc).__name__}: {exc}"))


def run_real(
    workload: Workload, strategy: str, seed: int, url: str, *, timeout: float = 120.0
) -> RunStats:
    """Run seed ``seed`` of ``workload`` under ``strategy`` as real processes
    on the (empty) store at ``url``; measured as :func:`run_once` measures.

    One process per agent; for the queue, one more process runs the writers
    of every key.

    ``branch`` is not run here (its synthesis is one more process's work
    after the others; not needed for the comparison). Raises
    :class:`UsageError` for it.
    """
    if strategy == "branch":
        raise UsageError("run_real runs blind, optimistic, lease and queue; not branch.")
    from ..store import open as sync_open

    plan = _RealRun(workload, strategy, seed)
    counts = plan.counts()
    with sync_open(url) as store:
        setup = store.session("setup")
        for key in sorted(counts):
            setup.write(key, {}, expect=0)
    roles: list[tuple[str, Any]] = [("agent", i) for i in range(workload.agents)]
    if strategy == "queue":
        roles.append(("writers", sorted(counts.items())))
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(roles) + 1)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_process, args=(url, workload, strategy, seed, role, barrier, out))
        for role in roles
    ]
    for p in procs:
        p.start()
    try:
        barrier.wait(START_TIMEOUT)
        start = time.time()
        changes: list[Change] = []
        errors: list[str] = []
        for _ in roles:
            _, got, error = out.get(timeout=timeout)
            changes.extend(got)
            if error:
                errors.append(error)
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()
    end = max([c.landed for c in changes if c.landed is not None] or [start])
    for c in changes:
        c.intent -= start
        if c.landed is not None:
            c.landed -= start
    stats = RunStats(strategy, seed, end - start, changes)
    if errors:
        stats.outcome, stats.error = "failed", errors[0]
    with sync_open(url) as store:
        stats.refused = refused_writes(e.to_dict() for e in store.history())
        values = {}
        for key in counts:
            try:
                values[key] = store.session("check").read(key).value
            except AccordError:
                values[key] = None
    plan.changes = changes
    stats.lost = plan.count_lost(values)
    return stats
