"""The plan of a manifest: one row per resource, and what ``--check`` reports.

:func:`make_plan` applies the protocol to a manifest (a declared strategy is
kept and compared with the recommendation; a missing one is recommended)
and, given a history, checks that the agents kept to it. :class:`Plan`,
:class:`PlanRow` and :class:`Violation` are what it returns.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..policy.manifest import Manifest, Resource, load_manifest
from ..policy.patterns import patterns_overlap
from ._access import Observed, access_from_history, merge_into, read_history
from ._classify import COSTS, MANY_WRITERS, SIMPLICITY, classify, recommend


@dataclass
class PlanRow:
    """One resource of the plan.

    ``strategy`` is the declared strategy when ``declared`` is true, else
    the recommended one. ``recommended`` is always the protocol's choice.
    ``origin`` says where ``strategy`` comes from: declared, recommended, or
    "in use" (what a history shows the agents used). ``simulated`` and
    ``simulated_why`` are the cost simulator's measured choice for the
    resource and its reason (``accord plan --simulate``), None when not run.
    """

    resource: Resource
    access: str
    strategy: str
    declared: bool
    recommended: str
    why: str
    cost: str
    observed: Observed | None = None
    origin: str = ""
    simulated: str | None = None
    simulated_why: str = ""

    def __post_init__(self) -> None:
        if not self.origin:
            self.origin = "declared" if self.declared else "recommended"

    def to_json(self) -> dict[str, Any]:
        """This row as JSON data (what ``accord plan --json`` prints)."""
        res = self.resource
        out: dict[str, Any] = {
            "key": res.key,
            "pattern": res.is_pattern,
            "readers": res.readers.to_toml(),
            "writers": res.writers.to_toml(),
            "submitters": res.submitters.to_toml(),
            "access": self.access,
            "strategy": self.strategy,
            "declared": self.declared,
            "origin": self.origin,
            "recommended": self.recommended,
            "why": self.why,
            "cost": self.cost,
            "hints": res.hints(),
        }
        if self.observed is not None:
            out["observed"] = self.observed.summary()
        if self.simulated is not None:
            out["simulated"] = {"strategy": self.simulated, "why": self.simulated_why}
        return out


@dataclass(frozen=True)
class Violation:
    """One problem ``accord plan --check`` reports.

    ``kind`` is one of ``no-strategy``, ``overlap``, ``undeclared-writer``,
    ``undeclared-agent``, ``undeclared-resource``, ``strategy-not-followed``.
    """

    kind: str
    key: str
    message: str

    def to_json(self) -> dict[str, str]:
        """This violation as JSON data."""
        return {"kind": self.kind, "key": self.key, "message": self.message}


@dataclass
class Plan:
    """The protocol applied: one :class:`PlanRow` per resource, and violations.

    ``source`` names where the table came from (a manifest path, a history).
    ``private`` counts keys a history shows touched by one agent only (they
    need no entry in the manifest).
    """

    rows: list[PlanRow]
    violations: list[Violation]
    source: str
    manifest: Manifest
    private: int = 0

    @property
    def ok(self) -> bool:
        """True when ``--check`` passes."""
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        """The whole plan as JSON data (what ``accord plan --json`` prints)."""
        return {
            "source": self.source,
            "ok": self.ok,
            "resources": [row.to_json() for row in self.rows],
            "violations": [v.to_json() for v in self.violations],
            "private_keys": self.private,
        }


def make_plan(
    manifest: Manifest,
    history: Iterable[Mapping[str, Any]] | None = None,
    *,
    source: str | None = None,
) -> Plan:
    """Apply the protocol to ``manifest``; with ``history``, check it too.

    With a history, every agent that wrote a resource it is not declared a
    writer of, every undeclared agent, every key several agents wrote that
    no resource covers, and every write that did not follow its resource's
    strategy, is a violation.
    """
    observed = access_from_history(history) if history is not None else None
    rows: list[PlanRow] = []
    per_resource: dict[str, Observed] = {}
    uncovered: list[Observed] = []
    if observed is not None:
        for obs in observed.values():
            res = manifest.resource_for(obs.key)
            if res is None:
                uncovered.append(obs)
                continue
            merged = per_resource.setdefault(res.key, Observed(res.key))
            merge_into(merged, obs)
    for res in manifest.resources:
        rows.append(row_of(res, per_resource.get(res.key)))
    violations = _static_violations(manifest, rows)
    if history is not None and observed is not None:
        violations.extend(_history_violations(manifest, history, uncovered))
    return Plan(rows, violations, source or manifest.name, manifest)


def plan_file(path: str | os.PathLike[str], history: str | None = None) -> Plan:
    """Load the manifest at ``path`` and plan it (checking ``history`` if given)."""
    manifest = load_manifest(path)
    events = list(read_history(history)) if history else None
    return make_plan(manifest, events, source=str(path))


def row_of(res: Resource, obs: Observed | None) -> PlanRow:
    access = classify(res)
    recommended, reason = recommend(res)
    if res.strategy is None:
        strategy, declared = recommended, False
        why = reason
    else:
        strategy, declared = res.strategy, True
        if res.strategy == recommended:
            why = reason
        else:
            simpler = SIMPLICITY[recommended] < SIMPLICITY[res.strategy]
            why = (
                f"declared. The protocol would pick {recommended}"
                f"{' (simpler)' if simpler else ''}: {reason}"
            )
    if obs is not None:
        why = f"{why}. {obs.summary()}"
    return PlanRow(res, access, strategy, declared, recommended, why, COSTS[strategy], obs)


def _static_violations(manifest: Manifest, rows: list[PlanRow]) -> list[Violation]:
    out: list[Violation] = []
    for row in rows:
        if row.access == MANY_WRITERS and not row.declared:
            res = row.resource
            who = res.writers.describe()
            if res.submitters:
                who += f"; submitters {res.submitters.describe()}"
            out.append(
                Violation(
                    "no-strategy",
                    res.key,
                    f"{res.key} has many writers ({who}) and no strategy. Declare one in "
                    f"{manifest.name}: the protocol recommends strategy = \"{row.recommended}\" "
                    f"({row.why}).",
                )
            )
    patterns = [r for r in manifest.resources if r.is_pattern]
    for i, a in enumerate(patterns):
        for b in patterns[i + 1 :]:
            if a.strategy == b.strategy or not patterns_overlap(a.key, b.key):
                continue
            out.append(
                Violation(
                    "overlap",
                    a.key,
                    f"patterns {a.key!r} ({a.strategy or 'no strategy'}, line {a.line}) and "
                    f"{b.key!r} ({b.strategy or 'no strategy'}, line {b.line}) overlap with "
                    f"different strategies; a key matching both follows {a.key!r}, the first in "
                    "the file. Make the patterns disjoint, or list such keys exactly (an exact "
                    "key beats every pattern).",
                )
            )
    return out


_MUTATING = frozenset({"write", "delete", "accept", "merge"})


def _history_violations(
    manifest: Manifest,
    history: Iterable[Mapping[str, Any]],
    uncovered: list[Observed],
) -> list[Violation]:
    out: list[Violation] = []
    seen: set[tuple[str, ...]] = set()

    def add(v: Violation, *ident: str) -> None:
        if ident not in seen:
            seen.add(ident)
            out.append(v)

    for event in history:
        agent, op, key = event.get("agent"), event.get("op"), event.get("key")
        if not isinstance(agent, str) or not isinstance(op, str):
            continue
        if manifest.agents and agent not in manifest.agents:
            add(
                Violation(
                    "undeclared-agent",
                    str(key or ""),
                    f"agent {agent!r} appears in the history but is not declared in "
                    f"{manifest.name}: add [agents.{agent}] or stop it from touching the store.",
                ),
                "agent",
                agent,
            )
        if not isinstance(key, str):
            continue
        res = manifest.resource_for(key)
        if res is None:
            continue
        where = f"resource {res.key!r}" if res.key != key else "its resource"
        if op in _MUTATING and agent not in res.writers:
            add(
                Violation(
                    "undeclared-writer",
                    key,
                    f"{agent} wrote {key} ({op}) but is not declared a writer of {where} "
                    f"(writers: {res.writers.describe()}). Add {agent} to writers, or change "
                    "the agent.",
                ),
                "writer",
                agent,
                res.key,
            )
        elif op == "submit" and res.submitters and agent not in res.submitters:
            add(
                Violation(
                    "undeclared-writer",
                    key,
                    f"{agent} submitted changes to {key} but is not declared a submitter of "
                    f"{where} (submitters: {res.submitters.describe()}).",
                ),
                "submitter",
                agent,
                res.key,
            )
        check = event.get("check")
        if op == "write" and isinstance(check, str) and event.get("outcome", "ok") == "ok":
            wanted = {"optimistic": ("version",), "lease": ("lease",), "branch": ("merge",)}
            allowed = wanted.get(res.strategy or "")
            if allowed is not None and check not in allowed:
                add(
                    Violation(
                        "strategy-not-followed",
                        key,
                        f"{agent} wrote {key} guarded by {check!r}, but {where} is "
                        f"{res.strategy}, whose writes are guarded by {allowed[0]!r}. Open the "
                        "store with the manifest (ACCORD_MANIFEST, or accord.open's manifest "
                        "option) to enforce it.",
                    ),
                    "follow",
                    agent,
                    res.key,
                    check,
                )
    for obs in uncovered:
        writers = obs.all_writers
        if len(writers) > 1:
            out.append(
                Violation(
                    "undeclared-resource",
                    obs.key,
                    f"{obs.key} was written by {', '.join(sorted(writers))} but no resource in "
                    f"{manifest.name} covers it. Add a [[resource]] for it with a strategy.",
                )
            )
    return out
