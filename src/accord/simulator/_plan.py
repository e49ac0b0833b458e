"""``accord plan --simulate``: the measured choice for each shared resource.

Each resource that several agents write becomes a :class:`Workload`: its
writers (and submitters) are the agents; a pattern (``notes/*``) is many
keys with a mild hot set, a plain key one; the think time and the conflict
rate come from the manifest's hints (``reasoning``, ``conflicts``,
``mergeable``, ``builds_on``) or, with ``--from-history``, from what the
history shows: the read-to-write times of its writes (fitted to a
log-normal) and the share of writes refused. The simulator runs every
strategy on it and the row gets the cheapest safe one and why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..plan._classify import MANY_WRITERS
from ._api import simulate
from ._workload import MAX_AGENTS, Think, Workload

if TYPE_CHECKING:
    from ..plan import Plan, PlanRow

__all__ = ["simulate_plan", "workload_for"]

THINK = {"long": Think("lognormal", 30.0, 0.5), "short": Think("lognormal", 2.0, 0.5)}
"""The think time a ``reasoning`` hint stands for."""

DEFAULT_THINK = Think("lognormal", 10.0, 0.5)

CONFLICT = {"low": 0.05, "medium": 0.2, "high": 0.5}
"""The share of truly conflicting changes a ``conflicts`` hint stands for."""

DEFAULT_CONFLICT = 0.1

PATTERN_KEYS = 32
"""Keys a pattern resource stands for."""


def workload_for(row: PlanRow, agents_declared: int) -> tuple[Workload, str]:
    """The workload shape of ``row``'s resource, and where its numbers come from."""
    res = row.resource
    where: list[str] = []
    names = set(res.writers.names) | set(res.submitters.names)
    if res.writers.anyone or res.submitters.anyone or not names:
        agents = max(2, agents_declared)
    else:
        agents = len(names)
    agents = max(2, min(agents, MAX_AGENTS))
    obs = row.observed
    think = THINK.get(res.reasoning or "", DEFAULT_THINK)
    think_from = f"reasoning={res.reasoning}" if res.reasoning else "default think"
    conflict = CONFLICT.get(res.conflicts or "", DEFAULT_CONFLICT)
    conflict_from = f"conflicts={res.conflicts}" if res.conflicts else "default conflict"
    operations = 5
    if obs is not None:
        samples = [t for t in obs.think if t > 0]
        if len(samples) >= 2:
            think = Think.from_samples(samples)
            think_from = f"{len(samples)} observed read-to-write times"
        elif samples:
            think = Think("fixed", samples[0])
            think_from = "1 observed read-to-write time"
        if obs.attempts:
            conflict = min(1.0, obs.conflicts / obs.attempts)
            conflict_from = f"{obs.conflicts}/{obs.attempts} writes refused"
            operations = max(1, min(50, round(obs.attempts / agents)))
    if res.mergeable is False:
        conflict, conflict_from = 1.0, "mergeable=false"
    where.append(f"think {think} ({think_from})")
    where.append(f"conflict {conflict:.2g} ({conflict_from})")
    workload = Workload(
        name=res.key,
        agents=agents,
        resources=PATTERN_KEYS if res.is_pattern else 1,
        skew=1.0 if res.is_pattern else 0.0,
        think=think,
        operations=operations,
        conflict=conflict,
        rethink=res.builds_on is not False,
        apply=think.mean / 2 if res.builds_on is not False else 0.0,
    )
    return workload, "; ".join(where)


def simulate_plan(
    plan: Plan,
    *,
    seeds: int = 10,
    strategies: Iterable[str] | None = None,
    processes: int | None = 1,
    progress: Callable[[int, int], None] | None = None,
) -> Plan:
    """Fill each many-writer row of ``plan`` with the simulator's choice (in place)."""
    agents_declared = len(plan.manifest.agents)
    rows = [r for r in plan.rows if r.access == MANY_WRITERS]
    for done, row in enumerate(rows, 1):
        workload, where = workload_for(row, agents_declared)
        result = simulate(workload, seeds=seeds, strategies=strategies, processes=processes)
        row.simulated = result.choice.strategy
        row.simulated_why = (
            f"{result.choice.reason} ({workload.agents} agents, {where}, {seeds} seeds)"
        )
        if progress:
            progress(done, len(rows))
    return plan
