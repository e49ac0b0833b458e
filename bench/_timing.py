"""Timing shared by the benchmarks: rates, and ratios against a raw engine.

The machine is shared and its load moves, so a ratio is taken per round
from runs of both sides close together in time, alternating which goes
first, and the median round is reported.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed(fn: Callable[[], None], seconds: float, batch: int = 20) -> float:
    """Calls per second of ``fn`` over about ``seconds``."""
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            fn()
        n += batch
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def paired(
    ours: Callable[[], None],
    bare: Callable[[], None],
    seconds: float,
    rounds: int,
    *,
    warmup: int = 50,
    batch: int = 20,
) -> tuple[float, float, float]:
    """Median rates of ``ours`` and ``bare``, and the median per-round ratio ours/bare.

    ``seconds`` is the time of each side over all rounds.
    """
    for _ in range(warmup):
        bare()
        ours()
    ours_rates, bare_rates, ratios = [], [], []
    for i in range(rounds):
        # Alternate which goes first so neither always gets the quieter half.
        if i % 2:
            o = timed(ours, seconds / rounds, batch)
            b = timed(bare, seconds / rounds, batch)
        else:
            b = timed(bare, seconds / rounds, batch)
            o = timed(ours, seconds / rounds, batch)
        ours_rates.append(o)
        bare_rates.append(b)
        ratios.append(o / b)
    return statistics.median(ours_rates), statistics.median(bare_rates), statistics.median(ratios)
