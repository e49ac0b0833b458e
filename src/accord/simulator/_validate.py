"""The simulator's prediction against reality, shape by shape (docs/simulate.md).

:data:`SHAPES` are the three shapes of the docs scaled down to tenths of a
second of thinking, so that real processes run them in seconds. :func:`compare`
runs one seed of a shape under a strategy both ways (simulated, and as real
processes on a SQLite file with real sleeps) and returns both measurements.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ._metrics import Summary, summarize
from ._real import run_real
from ._run import run_once
from ._workload import Think, Workload

__all__ = ["SHAPES", "Comparison", "compare", "within"]

SQLITE_OP = 0.001
"""Seconds one store operation takes on a local SQLite file (WAL), about."""

SHAPES = {
    "document": Workload(
        name="document",
        agents=2,
        resources=1,
        skew=0.0,
        think=Think("fixed", 0.4),
        operations=4,
        conflict=0.3,
        apply=0.2,
        op_latency=SQLITE_OP,
    ),
    "counter": Workload(
        name="counter",
        agents=6,
        resources=1,
        skew=0.0,
        think=Think("exponential", 0.2),
        operations=3,
        conflict=1.0,
        rethink=False,
        op_latency=SQLITE_OP,
    ),
    "memory": Workload(
        name="memory",
        agents=8,
        resources=40,
        skew=0.8,
        think=Think("lognormal", 0.2, 0.5),
        operations=3,
        conflict=0.05,
        apply=0.1,
        op_latency=SQLITE_OP,
    ),
}


@dataclass(frozen=True)
class Comparison:
    """One shape under one strategy: the simulated and the real measurement."""

    shape: str
    strategy: str
    simulated: Summary
    real: Summary
    retries_simulated: int
    retries_real: int


def compare(shape: str, strategy: str, seed: int = 1) -> Comparison:
    """Seed ``seed`` of :data:`SHAPES` ``[shape]`` under ``strategy``, both ways."""
    workload = SHAPES[shape]
    simulated = run_once(workload, strategy, seed)
    with tempfile.TemporaryDirectory() as tmp:
        real = run_real(workload, strategy, seed, f"sqlite:///{Path(tmp) / 'state.db'}")
    return Comparison(
        shape,
        strategy,
        summarize(workload, strategy, [simulated]),
        summarize(workload, strategy, [real]),
        max(simulated.refused, sum(c.retries for c in simulated.changes)),
        max(real.refused, sum(c.retries for c in real.changes)),
    )


def within(a: float, b: float, share: float = 0.25, slack: float = 0.0) -> bool:
    """``a`` and ``b`` differ by at most ``share`` of the larger (or ``slack``)."""
    return abs(a - b) <= max(share * max(abs(a), abs(b)), slack)
