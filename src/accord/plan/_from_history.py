"""``accord plan --from-history``: the plan, and a starting manifest, from a history.

With no manifest, :func:`manifest_from_history` writes down what a history
shows (one resource per key that several agents touched, the strategy in
use or the recommended one, hints measured from the history), and
:func:`plan_history` is the plan of it: a key several agents wrote with no
strategy in use is a violation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from ..policy.manifest import STRATEGIES, Manifest, Resource, Who
from ._access import Observed, access_from_history
from ._classify import MANY_WRITERS, classify, recommend
from ._plan import Plan, PlanRow, Violation, row_of


def manifest_from_history(
    history: Iterable[Mapping[str, Any]], *, store_url: str | None = None
) -> tuple[Manifest, dict[str, Observed], int]:
    """A starting manifest from what a history shows.

    Returns ``(manifest, observed, private)``: one resource per key that more
    than one agent touched (``private`` counts the others), with the
    strategy the history shows in use, else the recommended one, and hints
    measured from the history (conflict rate, reasoning time, builds_on).
    """
    observed = access_from_history(history)
    agents: set[str] = set()
    resources: list[Resource] = []
    private = 0
    for obs in observed.values():
        agents |= obs.agents
        if len(obs.agents) < 2:
            private += 1
            continue
        strategy = obs.strategy()
        if strategy == "queue":
            writers = sorted(obs.acceptors) or sorted(obs.writers)
            submitters = sorted(obs.submitters - set(writers))
        else:
            writers = sorted(obs.all_writers)
            submitters = sorted(obs.submitters)
        readers = sorted(obs.readers - set(writers) - set(submitters))
        res = Resource(
            key=obs.key,
            writers=Who(tuple(writers)),
            readers=Who(tuple(readers)),
            submitters=Who(tuple(submitters)),
        )
        if classify(res) == MANY_WRITERS:
            # Hints matter only where the plan must choose between strategies.
            res = _replace(
                res,
                conflicts=obs.conflict_rate(),
                reasoning=obs.reasoning(),
                builds_on=True if obs.builds_on else None,
            )
        # What the agents used stands for a shared resource; a key with one
        # writer (or none) needs nothing, whatever guarded its writes.
        if (
            strategy is None
            or classify(res) != MANY_WRITERS
            or (strategy == "queue" and len(writers) != 1)
        ):
            strategy = recommend(res)[0]
        resources.append(_replace(res, strategy=strategy))
    manifest = Manifest(
        resources=resources,
        agents={name: {} for name in sorted(agents)},
        store_url=store_url,
        path=None,
    )
    return manifest, observed, private


def _replace(res: Resource, **changes: Any) -> Resource:
    return replace(res, **changes)


def plan_history(history: Iterable[Mapping[str, Any]], *, source: str) -> Plan:
    """The plan of what a history shows (no manifest): the ``--from-history`` table.

    Violations: every key several agents wrote without a strategy in use
    (their writes were blind or unguarded).
    """
    events = list(history)
    manifest, observed, private = manifest_from_history(events)
    rows: list[PlanRow] = []
    violations: list[Violation] = []
    for res in manifest.resources:
        obs = observed[res.key]
        in_use = obs.strategy() if classify(res) == MANY_WRITERS else None
        bare = _replace(res, strategy=in_use if in_use in STRATEGIES else None)
        row = row_of(bare, obs)
        if in_use is not None:
            row.declared, row.origin = False, "in use"
            row.why = row.why.replace("declared. ", "in use. ", 1)
        if in_use is None and row.access == MANY_WRITERS:
            row.why = f"no strategy in use: {row.why}"
            blind = obs.checks.get("none", 0)
            how = (
                f"with {blind} blind write{'s' if blind != 1 else ''} (check: none)"
                if blind
                else "with no strategy guarding the writes"
            )
            violations.append(
                Violation(
                    "no-strategy",
                    res.key,
                    f"{res.key} was written by {res.writers.describe()} {how}: updates can be "
                    f"lost. The protocol recommends {row.recommended}.",
                )
            )
        rows.append(row)
    return Plan(rows, violations, source, manifest, private)
