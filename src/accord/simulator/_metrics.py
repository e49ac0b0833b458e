"""What the runs of one strategy on one workload measured, summed over seeds,
and the choice among strategies.

Every figure is per run (then averaged over the seeds) or per change (over
every change of every seed). Model time is priced at the workload's
``cost_per_second``: the thinking of every change that landed, the thinking
thrown away (lost optimistic attempts, blind writes overwritten, changes
given up), the queue writer's applying and the synthesis of merge
conflicts. Cost per change divides it by the changes that landed and
survived, so a strategy that loses work pays for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ._run import RunStats
from ._workload import Workload, percentile

__all__ = ["Choice", "Summary", "choose", "summarize"]

TIE = 0.05
"""Costs within this share of the cheapest count as a tie, broken by goodput."""


@dataclass(frozen=True)
class Summary:
    """One strategy on one workload, over ``runs`` seeds.

    ``goodput``: changes landed (and not lost) per virtual second;
    ``p50``/``p99``: seconds from a change's intent to its landing;
    ``retries``: lost attempts per change; ``wasted``: model seconds thrown
    away per run, ``wasted_cost`` their price; ``waiting``: seconds per change
    not spent thinking (waits for a lease or the writer, backoffs, store
    operations); ``conflicts``: merge conflicts left for synthesis per run;
    ``lost``: landed changes overwritten per run (blind writes);
    ``gave_up``: changes abandoned per run (retries exhausted);
    ``cost``: the price of model time per landed change; ``landed``: changes
    landed per run; ``operations``: store operations per run; ``failed``:
    runs that raised (``error`` is the first one's error); ``cpu``: the CPU
    seconds the runs took.
    """

    strategy: str
    runs: int
    goodput: float
    p50: float
    p99: float
    retries: float
    wasted: float
    wasted_cost: float
    waiting: float
    conflicts: float
    lost: float
    gave_up: float
    cost: float
    landed: float
    operations: float
    failed: int
    error: str | None = None
    cpu: float = field(default=0.0, compare=False)
    """CPU seconds the runs took (not compared: it is the machine's, not the model's)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (an infinite cost, nothing landed, is None)."""
        return {k: (None if v == float("inf") else v) for k, v in asdict(self).items()}

    @property
    def safe(self) -> bool:
        """Nothing was lost nor given up, and no run failed."""
        return self.lost == 0 and self.gave_up == 0 and self.failed == 0


def summarize(workload: Workload, strategy: str, runs: Sequence[RunStats]) -> Summary:
    """Sum ``runs`` (one per seed) of ``strategy`` on ``workload``."""
    latencies: list[float] = []
    waiting: list[float] = []
    goodputs: list[float] = []
    retries = wasted = conflicts = lost = gave_up = landed = ops = 0.0
    model = 0.0
    changes = 0
    failed = 0
    error = None
    for run in runs:
        if run.outcome != "ok":
            failed += 1
            error = error or run.error or run.outcome
        good = 0
        # A lost attempt is a write the store refused; the history counts
        # them all (update()'s own retries too, which its caller never sees).
        retries += max(run.refused, sum(c.retries for c in run.changes))
        for c in run.changes:
            changes += 1
            conflicts += c.conflicts
            thrown = c.wasted
            if c.landed is None:
                gave_up += 1
            elif c.lost:
                lost += 1
                thrown += c.think
            else:
                good += 1
                latency = c.landed - c.intent
                latencies.append(latency)
                waiting.append(max(0.0, latency - c.think - c.wasted))
            wasted += thrown
            model += thrown + (c.think if c.landed is not None and not c.lost else 0.0)
        model += run.writer_time + run.synthesis_time
        conflicts += run.conflicts
        landed += good
        ops += run.operations
        goodputs.append(good / run.duration if run.duration > 0 else 0.0)
    n = max(len(runs), 1)
    price = workload.cost_per_second
    return Summary(
        strategy=strategy,
        runs=len(runs),
        goodput=sum(goodputs) / n,
        p50=percentile(latencies, 50),
        p99=percentile(latencies, 99),
        retries=retries / max(changes, 1),
        wasted=wasted / n,
        wasted_cost=wasted * price / n,
        waiting=sum(waiting) / max(len(waiting), 1),
        conflicts=conflicts / n,
        lost=lost / n,
        gave_up=gave_up / n,
        cost=model * price / landed if landed else float("inf"),
        landed=landed / n,
        operations=ops / n,
        failed=failed,
        error=error,
    )


@dataclass(frozen=True)
class Choice:
    """The strategy to use for a workload, and why, in one line."""

    strategy: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


SIMPLEST = ("optimistic", "lease", "queue", "branch", "blind")
"""The order of simplicity: among strategies that tie on every figure, the first."""


def choose(workload: Workload, summaries: Sequence[Summary]) -> Choice:
    """The strategy to use: the cheapest per landed change among those that
    lose nothing. A cost within 5 % of the cheapest is a tie, won by the
    higher goodput; a goodput within 5 % of the best is a tie, won by the
    lower median latency (within 5 %), then by the simpler strategy."""
    if not summaries:
        return Choice("none", "no strategy was simulated")
    safe = [s for s in summaries if s.safe] or list(summaries)
    cheapest = min(s.cost for s in safe)
    tied = [s for s in safe if s.cost <= cheapest * (1 + TIE)]
    fastest = max(s.goodput for s in tied)
    tied = [s for s in tied if s.goodput >= fastest * (1 - TIE)]
    quickest = min(s.p50 for s in tied)
    tied = [s for s in tied if s.p50 <= quickest * (1 + TIE)]
    order = {name: i for i, name in enumerate(SIMPLEST)}
    best = min(tied, key=lambda s: order.get(s.strategy, len(order)))
    money = workload.currency
    parts = [
        f"{best.cost:.3g} {money} per change, {best.goodput:.3g} changes/s, "
        f"p50 {best.p50:.3g} s, p99 {best.p99:.3g} s"
    ]
    others = sorted((s for s in summaries if s is not best), key=lambda s: s.cost)
    for other in others[:2]:
        if other.failed:
            parts.append(f"{other.strategy} failed ({other.error})")
        elif other.lost:
            parts.append(f"{other.strategy} loses {other.lost:.3g} changes per run")
        elif other.gave_up:
            parts.append(f"{other.strategy} gives up {other.gave_up:.3g} changes per run")
        elif other.cost > best.cost * (1 + TIE):
            parts.append(f"{other.strategy} costs {_more(other.cost, best.cost)} more")
        elif other.goodput < best.goodput * (1 - TIE):
            parts.append(f"{other.strategy} has {_less(other.goodput, best.goodput)} less goodput")
        elif other.p50 > best.p50 * (1 + TIE):
            parts.append(f"{other.strategy} takes {other.p50:.3g} s at p50")
        else:
            parts.append(f"{other.strategy} ties, and is not simpler")
    return Choice(best.strategy, "; ".join(parts))


def _more(a: float, b: float) -> str:
    if b <= 0 or a == float("inf"):
        return "far"
    return f"{(a / b - 1) * 100:.0f} %"


def _less(a: float, b: float) -> str:
    return f"{(1 - a / b) * 100:.0f} %" if b > 0 else "no"
