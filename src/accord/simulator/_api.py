"""``accord.simulate``: run a workload under each strategy, over many seeds,
and sweeps of it over agent counts and conflict rates (on every core).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from .. import params
from ..errors import UsageError
from ._metrics import Choice, Summary, choose, summarize
from ._run import STRATEGIES, run_once
from ._workload import Workload

__all__ = ["Point", "Simulation", "Sweep", "simulate", "sweep"]

DEFAULT_SEEDS = 20


@dataclass(frozen=True)
class Point:
    """Every strategy on one workload: the summaries and the choice."""

    workload: Workload
    summaries: tuple[Summary, ...]
    choice: Choice

    def summary(self, strategy: str) -> Summary:
        """The summary of ``strategy``."""
        for s in self.summaries:
            if s.strategy == strategy:
                return s
        raise UsageError(
            f"{strategy!r} was not simulated here: the strategies were "
            f"{', '.join(s.strategy for s in self.summaries)}."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload.to_dict(),
            "strategies": [s.to_dict() for s in self.summaries],
            "choice": self.choice.to_dict(),
        }


@dataclass(frozen=True)
class Simulation(Point):
    """:func:`simulate`'s result: one workload, every strategy, ``seeds`` seeds."""

    seeds: int = DEFAULT_SEEDS

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "seeds": self.seeds}


@dataclass(frozen=True)
class Sweep:
    """:func:`sweep`'s result: a :class:`Point` per (agents, conflict) pair."""

    base: Workload
    agents: tuple[int, ...]
    conflicts: tuple[float, ...]
    seeds: int
    points: dict[tuple[int, float], Point] = field(default_factory=dict)

    def point(self, agents: int, conflict: float) -> Point:
        return self.points[(agents, conflict)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "workload": self.base.to_dict(),
            "agents": list(self.agents),
            "conflicts": list(self.conflicts),
            "seeds": self.seeds,
            "points": [p.to_dict() for p in self.points.values()],
        }


def _strategies(strategies: Iterable[str] | None) -> tuple[str, ...]:
    if strategies is None:
        return STRATEGIES
    if isinstance(strategies, str):
        strategies = [s for s in strategies.split(",") if s]
    chosen = tuple(strategies)
    unknown = [s for s in chosen if s not in STRATEGIES]
    if unknown or not chosen:
        raise UsageError(
            f"unknown strategy {', '.join(map(repr, unknown)) or '(none given)'}: choose among "
            f"{', '.join(STRATEGIES)} (e.g. strategies=['optimistic', 'queue'])."
        )
    return tuple(dict.fromkeys(chosen))


def _task(job: tuple[Workload, str, int, int]) -> Summary:
    workload, strategy, seeds, first = job
    start = time.process_time()
    runs = [run_once(workload, strategy, first + i) for i in range(seeds)]
    return replace(summarize(workload, strategy, runs), cpu=time.process_time() - start)


def _processes(processes: int | None) -> int:
    if processes is None:
        return max(1, min(os.cpu_count() or 1, 8))
    return params.count(processes, "processes", minimum=1, maximum=256, example="2")


def _run_jobs(
    jobs: Sequence[tuple[Workload, str, int, int]],
    processes: int,
    progress: Callable[[int, int], None] | None,
) -> list[Summary]:
    done = 0
    out: list[Summary] = []
    if processes == 1 or len(jobs) == 1:
        for job in jobs:
            out.append(_task(job))
            done += 1
            if progress:
                progress(done, len(jobs))
        return out
    import multiprocessing

    # forkserver: no fork of a process that may hold threads (the
    # workers import accord once, then every job is cheap).
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=processes, mp_context=ctx) as pool:
        for summary in pool.map(_task, jobs, chunksize=1):
            out.append(summary)
            done += 1
            if progress:
                progress(done, len(jobs))
    return out


def simulate(
    workload: Workload | None = None,
    *,
    strategies: Iterable[str] | None = None,
    seeds: int = DEFAULT_SEEDS,
    seed: int = 0,
    processes: int | None = 1,
    progress: Callable[[int, int], None] | None = None,
    **fields: Any,
) -> Simulation:
    """Run ``workload`` under each of ``strategies`` (default all five) for
    ``seeds`` seeds (``seed``, ``seed + 1``, ...) in virtual time.

    ``fields`` build or change the workload (``accord.simulate(agents=16,
    think="lognormal:30")``). Returns a :class:`Simulation`: a
    :class:`Summary` per strategy and the recommended :class:`Choice`.
    ``processes`` runs strategies in that many processes (None: one per
    core). A run takes no real time for the time it simulates.
    """
    base = workload if workload is not None else Workload()
    if not isinstance(base, Workload):
        raise UsageError(
            f"simulate() takes a Workload, not {type(base).__name__}: build one with "
            "accord.simulate.Workload(agents=8, ...) or pass its fields as keywords."
        )
    if fields:
        base = base.with_(**fields)
    names = _strategies(strategies)
    seeds = params.count(seeds, "seeds", minimum=1, maximum=100_000, example="20")
    seed = params.count(seed, "seed", example="0")
    jobs = [(base, name, seeds, seed) for name in names]
    summaries = tuple(_run_jobs(jobs, _processes(processes), progress))
    return Simulation(base, summaries, choose(base, summaries), seeds)


def sweep(
    workload: Workload | None = None,
    *,
    agents: Iterable[int] = (1, 2, 4, 8, 16, 24, 32, 64),
    conflicts: Iterable[float] = (0.0, 0.1, 0.25, 0.5, 1.0),
    strategies: Iterable[str] | None = None,
    seeds: int = DEFAULT_SEEDS,
    seed: int = 0,
    processes: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Sweep:
    """:func:`simulate` at every (agent count, conflict rate) pair, the other
    fields from ``workload``; on ``processes`` processes (None: every core)."""
    base = workload if workload is not None else Workload()
    names = _strategies(strategies)
    seeds = params.count(seeds, "seeds", minimum=1, maximum=100_000, example="20")
    agent_counts = tuple(dict.fromkeys(agents))
    rates = tuple(dict.fromkeys(float(c) for c in conflicts))
    if not agent_counts or not rates:
        raise UsageError("a sweep needs at least one agent count and one conflict rate.")
    shapes = {(n, c): base.with_(agents=n, conflict=c) for n in agent_counts for c in rates}
    jobs = [(w, name, seeds, seed) for w in shapes.values() for name in names]
    results = _run_jobs(jobs, _processes(processes), progress)
    points: dict[tuple[int, float], Point] = {}
    for i, (where, w) in enumerate(shapes.items()):
        summaries = tuple(results[i * len(names) : (i + 1) * len(names)])
        points[where] = Point(w, summaries, choose(w, summaries))
    return Sweep(base, agent_counts, rates, seeds, points)
