"""The shared-state design protocol: classify every resource, pick a strategy.

The protocol, as :func:`make_plan` applies it to a manifest:

1. list every resource that more than one agent reads or writes;
2. classify its access: **read-only** (nobody writes), **one writer**, or
   **many writers** (several writers, or one writer with submitters);
3. choose the simplest strategy that works: read-only and one-writer
   resources need nothing (``read_only``, ``owner``). For many writers:
   isolated copies (``branch``) when agents need not build on each other's
   work and the value merges; a ``queue`` for an author with contributors;
   ``optimistic`` for low conflict; a ``lease`` for high conflict with long
   reasoning between read and write;
4. make writes idempotent (``idempotency_key=``) wherever a retry can repeat.

A declared strategy is kept (and compared with the recommendation); a
missing one is recommended. :meth:`Plan.violations` is what
``accord plan --check`` gates on (exit 6).

:func:`access_from_history` builds the same table from a recorded history
(accord's own JSONL, or the foreign format of ``docs/history.md``), and
:func:`manifest_from_history` turns it into a starting manifest.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import HistoryFormatError, ManifestError, call, var
from .policy.manifest import (
    STRATEGIES,
    Manifest,
    Resource,
    Who,
    load_manifest,
    patterns_overlap,
    toml_string,
)

READ_ONLY = "read-only"
ONE_WRITER = "one writer"
MANY_WRITERS = "many writers"

COSTS: dict[str, str] = {
    "read_only": "none: reads never conflict",
    "owner": "none: one writer needs no coordination; others cannot write it",
    "branch": "cheapest: no waiting, no retries; merge at the end, conflicts reported then",
    "optimistic": "no waiting; retries grow with conflicts (each redoes the agent's work)",
    "queue": "one writer's latency: contributors wait for the writer to apply their changes",
    "lease": "waiting for the holder, lock management (TTL, renewal), deadlock risk",
}
"""The cost of each strategy in one line."""

FITS: dict[str, str] = {
    "read_only": "nobody writes it",
    "owner": "one agent writes it",
    "branch": "agents need not build on each other's work, and the value merges",
    "optimistic": "several writers, conflicts are rare",
    "queue": "one author, others contribute changes",
    "lease": "conflicts are frequent and each change takes long reasoning",
}
"""When each strategy is the simplest that works."""

_SIMPLICITY = {name: rank for rank, name in enumerate(
    ("read_only", "owner", "branch", "optimistic", "queue", "lease")
)}


# --- classification and recommendation ------------------------------------------


def classify(resource: Resource) -> str:
    """The access class of ``resource``: read-only, one writer, or many writers.

    Submitters count as writers of the class: a writer with contributors is
    a many-writer resource (its writer serialises their changes).
    """
    writers = resource.writers.count()
    if writers == 0 and not resource.submitters:
        return READ_ONLY
    if writers == 1 and not resource.submitters:
        return ONE_WRITER
    return MANY_WRITERS


def recommend(resource: Resource) -> tuple[str, str]:
    """The simplest strategy that works for ``resource``, and why.

    Uses only the access class and the hints; a declared strategy is
    ignored here (:func:`make_plan` compares the two).
    """
    access = classify(resource)
    if access == READ_ONLY:
        return "read_only", "nobody writes it: readers need nothing"
    if access == ONE_WRITER:
        return "owner", f"one writer ({resource.writers.describe()}): nothing can race it"
    if resource.submitters and resource.writer is not None:
        return "queue", (
            f"an author ({resource.writer}) with contributors "
            f"({resource.submitters.describe()}): they submit, the author applies in order"
        )
    if resource.builds_on is False and resource.mergeable is True:
        return "branch", (
            "agents need not build on each other's work and the value merges: isolated copies, "
            "merged at synthesis"
        )
    after = ""
    if resource.builds_on is None and resource.mergeable is not False:
        after = (
            "; if agents need not see each other's changes and the value merges, set "
            "builds_on = false, mergeable = true for isolated copies (cheaper)"
        )
    elif resource.builds_on is not False:
        after = "; agents build on each other's work, so isolated copies would not do"
    elif resource.mergeable is False:
        after = "; the value does not merge, so isolated copies would end in conflicts"
    if resource.conflicts == "high":
        if resource.reasoning == "long":
            why = (
                "high conflict with long reasoning: a retry would throw that reasoning away, "
                "so writers wait their turn instead"
            )
            if resource.latency == "sensitive":
                why += (
                    " (writers cannot wait long: consider one author with a queue if there "
                    "is one)"
                )
            return "lease", why
        return "optimistic", (
            "high conflict but short changes: a retry is cheap (update retries on conflicts); if "
            "RetriesExhausted shows up, move to a lease or a queue" + after
        )
    if resource.conflicts in ("low", "medium"):
        return "optimistic", (
            f"{resource.conflicts} conflict: a retry now and then, nobody waits" + after
        )
    return "optimistic", (
        "conflict rate not stated: optimistic is the simplest safe choice for many writers, and "
        "conflicts show up as retries (set conflicts = \"high\" if they are frequent)" + after
    )


# --- the plan -----------------------------------------------------------------------


@dataclass
class Observed:
    """What a recorded history shows about one key (or the keys of a resource)."""

    key: str
    readers: set[str] = field(default_factory=set)
    writers: set[str] = field(default_factory=set)
    submitters: set[str] = field(default_factory=set)
    acceptors: set[str] = field(default_factory=set)
    forkers: set[str] = field(default_factory=set)
    attempts: int = 0
    conflicts: int = 0
    checks: Counter[str] = field(default_factory=Counter)
    think: list[float] = field(default_factory=list)
    builds_on: bool = False
    events: int = 0

    @property
    def agents(self) -> set[str]:
        """Every agent that touched the key in any way."""
        return self.readers | self.writers | self.submitters | self.acceptors | self.forkers

    @property
    def all_writers(self) -> set[str]:
        """Everyone who changed the key or tried to (writes, accepts, forks, merges)."""
        return self.writers | self.acceptors | self.forkers

    def strategy(self) -> str | None:
        """The strategy the history shows in use, or None.

        None when any write was blind (``check: none``): a strategy that is
        bypassed now and then is not in use.
        """
        if self.checks.get("none"):
            return None
        if self.submitters or self.acceptors or self.checks.get("queue"):
            return "queue"
        if self.forkers or self.checks.get("merge"):
            return "branch"
        if self.checks.get("lease"):
            return "lease"
        if self.checks.get("version"):
            return "optimistic"
        return None

    def conflict_rate(self) -> str | None:
        """The ``conflicts`` hint the refused share of writes suggests (None: no writes)."""
        if not self.attempts:
            return None
        rate = self.conflicts / self.attempts
        return "high" if rate >= 0.2 else "medium" if rate >= 0.05 else "low"

    def reasoning(self) -> str | None:
        """The ``reasoning`` hint the median read-to-write time suggests (None: unknown)."""
        if not self.think:
            return None
        return "long" if _median(self.think) >= 5.0 else "short"

    def summary(self) -> str:
        """One line for people: what was seen."""
        parts = [f"{self.attempts} write{'s' if self.attempts != 1 else ''}"]
        if self.attempts:
            parts.append(f"{self.conflicts} refused ({100 * self.conflicts / self.attempts:.0f}%)")
        guards = ", ".join(f"{name} {count}" for name, count in sorted(self.checks.items()))
        if guards:
            parts.append(f"guards: {guards}")
        if self.think:
            parts.append(f"median read-to-write {_median(self.think):.1f}s")
        return "seen: " + "; ".join(parts)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


@dataclass
class PlanRow:
    """One resource of the plan.

    ``strategy`` is the declared strategy when ``declared`` is true, else
    the recommended one. ``recommended`` is always the protocol's choice.
    ``origin`` says where ``strategy`` comes from: declared, recommended, or
    "in use" (what a history shows the agents used).
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
            _merge_into(merged, obs)
    for res in manifest.resources:
        rows.append(_row(res, per_resource.get(res.key)))
    violations = _static_violations(manifest, rows)
    if history is not None and observed is not None:
        violations.extend(_history_violations(manifest, history, uncovered))
    return Plan(rows, violations, source or manifest.name, manifest)


def plan_file(path: str | os.PathLike[str], history: str | None = None) -> Plan:
    """Load the manifest at ``path`` and plan it (checking ``history`` if given)."""
    manifest = load_manifest(path)
    events = list(read_history(history)) if history else None
    return make_plan(manifest, events, source=str(path))


def _row(res: Resource, obs: Observed | None) -> PlanRow:
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
            simpler = _SIMPLICITY[recommended] < _SIMPLICITY[res.strategy]
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


# --- histories ----------------------------------------------------------------------


def read_history(source: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The events of a history: a JSONL file, or a store URL (``scheme://...``).

    Accepts accord's own format and the foreign format (``agent``, ``op``
    read or write, ``key``, ``value`` or ``hash``, ``start``, ``end``).
    Raises :class:`HistoryFormatError` naming the line of a malformed one.
    """
    text = os.fspath(source)
    if "://" in text:
        from .store import open as open_store

        with open_store(text) as store:
            for event in store.history():
                yield event.to_dict()
        return
    path = Path(text)
    try:
        # Bytes, decoded line by line by json.loads: a line that is not
        # UTF-8 is then a format error naming its line, as in `accord check`.
        handle = path.open("rb")
    except OSError as exc:
        raise HistoryFormatError(
            f"Cannot read the history {path}: {exc.strerror or exc}. Export one with "
            f"{call('store.export_history', var('path'))}, or name a store URL.",
            path=str(path),
        ) from exc
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except (ValueError, RecursionError) as exc:
                raise HistoryFormatError(
                    f"{path} line {number} is not JSON ({exc}). A history has one JSON object "
                    "a line, in UTF-8 (see docs/history.md).",
                    path=str(path),
                    line=number,
                ) from exc
            if not isinstance(data, dict):
                raise HistoryFormatError(
                    f"{path} line {number} is not a JSON object; each line is one operation.",
                    path=str(path),
                    line=number,
                )
            if not isinstance(data.get("agent"), str) or not isinstance(data.get("op"), str):
                raise HistoryFormatError(
                    f"{path} line {number} has no \"agent\" or \"op\" string; every operation "
                    "names the agent and what it did (see docs/history.md).",
                    path=str(path),
                    line=number,
                )
            yield data


def _seconds(value: Any) -> float | None:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def access_from_history(history: Iterable[Mapping[str, Any]]) -> dict[str, Observed]:
    """The access table a history shows, by key (agent keys only), in key order."""
    table: dict[str, Observed] = {}
    last_read: dict[tuple[str, str], float] = {}
    authors: dict[tuple[str, int], str] = {}
    for event in history:
        agent, op, key = event.get("agent"), event.get("op"), event.get("key")
        if not isinstance(agent, str) or not isinstance(op, str) or not isinstance(key, str):
            continue
        if key.startswith(".accord/"):
            continue
        obs = table.get(key)
        if obs is None:
            obs = table[key] = Observed(key)
        obs.events += 1
        outcome = event.get("outcome", "ok")
        when = _seconds(event.get("start", event.get("time")))
        if op == "read":
            obs.readers.add(agent)
            end = _seconds(event.get("end", event.get("time")))
            if end is not None:
                last_read[(agent, key)] = end
            continue
        if op in ("write", "delete", "merge"):
            obs.attempts += 1
            if op == "merge":
                obs.forkers.add(agent)
            else:
                obs.writers.add(agent)
            if outcome not in ("ok", None):
                obs.conflicts += 1
            check = event.get("check")
            if isinstance(check, str):
                obs.checks["version" if check == "create" else check] += 1
            read_at = last_read.pop((agent, key), None)
            if read_at is not None and when is not None and when >= read_at:
                obs.think.append(when - read_at)
            based_on, version = event.get("based_on"), event.get("version")
            if isinstance(based_on, int) and based_on > 0:
                author = authors.get((key, based_on))
                if author is not None and author != agent:
                    obs.builds_on = True
            if isinstance(version, int) and outcome == "ok":
                authors[(key, version)] = agent
        elif op in ("cas", "append"):
            # Foreign histories' atomic operations (docs/checker.md): a cas
            # reads the key and writes it in one step, guarded by the value
            # it compares, so a failed cas is a refused write; an append
            # writes without reading and needs no guard.
            obs.attempts += 1
            obs.writers.add(agent)
            if op == "cas":
                obs.readers.add(agent)
                obs.checks["version"] += 1
                if outcome not in ("ok", None, "info"):
                    obs.conflicts += 1
            read_at = last_read.pop((agent, key), None)
            if read_at is not None and when is not None and when >= read_at:
                obs.think.append(when - read_at)
        elif op == "submit":
            obs.submitters.add(agent)
        elif op in ("accept", "reject"):
            obs.acceptors.add(agent)
            obs.checks["queue"] += 1
            version = event.get("version")
            if op == "accept" and isinstance(version, int):
                obs.attempts += 1
                authors[(key, version)] = agent
        elif op == "fork":
            obs.forkers.add(agent)
    return dict(sorted(table.items()))


def _merge_into(total: Observed, obs: Observed) -> None:
    total.readers |= obs.readers
    total.writers |= obs.writers
    total.submitters |= obs.submitters
    total.acceptors |= obs.acceptors
    total.forkers |= obs.forkers
    total.attempts += obs.attempts
    total.conflicts += obs.conflicts
    total.checks.update(obs.checks)
    total.think.extend(obs.think)
    total.builds_on = total.builds_on or obs.builds_on
    total.events += obs.events


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
        row = _row(bare, obs)
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


def manifest_to_toml(
    manifest: Manifest, *, header: str = "", comments: Mapping[str, str] | None = None
) -> str:
    """``manifest`` as accord.toml text (what ``--write-manifest`` writes).

    Recommended strategies are written explicitly, so the file passes
    ``accord plan --check``; ``comments`` (by resource key) are written above
    each resource, so a reviewer sees where each strategy came from.
    """
    lines: list[str] = []
    if header:
        lines.extend(f"# {line}".rstrip() for line in header.splitlines())
        lines.append("")
    if manifest.store_url:
        lines += ["[store]", f"url = {toml_string(manifest.store_url)}", ""]
    for agent, info in manifest.agents.items():
        lines.append(f"[agents.{_key(agent)}]")
        for name, value in info.items():
            lines.append(f"{name} = {toml_string(str(value))}")
    if manifest.agents:
        lines.append("")
    for res in manifest.resources:
        comment = (comments or {}).get(res.key)
        if comment:
            lines.extend(f"# {line}".rstrip() for line in textwrap.wrap(comment, 86))
        lines.append("[[resource]]")
        lines.append(f"key = {toml_string(res.key)}")
        if res.description:
            lines.append(f"description = {toml_string(res.description)}")
        if res.strategy:
            lines.append(f"strategy = {toml_string(res.strategy)}")
        if res.strategy in ("owner", "queue") and res.writer is not None:
            lines.append(f"writer = {toml_string(res.writer)}")
        elif res.writers:
            lines.append(f"writers = {_toml_list(res.writers.to_toml())}")
        if res.readers:
            lines.append(f"readers = {_toml_list(res.readers.to_toml())}")
        if res.submitters:
            lines.append(f"submitters = {_toml_list(res.submitters.to_toml())}")
        for name, value in res.hints().items():
            shown = str(value).lower() if isinstance(value, bool) else toml_string(str(value))
            lines.append(f"{name} = {shown}")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(toml_string(i) for i in items) + "]"


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else toml_string(name)


def write_manifest(
    manifest: Manifest,
    path: str | os.PathLike[str],
    *,
    source: str,
    plan: Plan | None = None,
) -> None:
    """Write ``manifest`` to ``path`` as TOML; refuses to overwrite an existing file.

    With ``plan`` (the plan of the same history), each resource gets a
    comment saying whether its strategy is in use or recommended, and why.
    """
    target = Path(path)
    if target.exists():
        raise ManifestError(
            f"{target} already exists; not overwriting it. Remove it or name another path.",
            path=str(target),
        )
    header = (
        f"Starting manifest built by `accord plan --from-history {source}`.\n"
        "Review every resource: the comment above each says whether its strategy is what\n"
        "the agents used (in use) or the protocol's recommendation. See docs/protocol.md."
    )
    comments = {}
    for row in plan.rows if plan is not None else []:
        comments[row.resource.key] = f"{row.strategy} ({row.origin}): {row.why}"
    target.write_text(
        manifest_to_toml(manifest, header=header, comments=comments), encoding="utf-8"
    )


# --- rendering ------------------------------------------------------------------------


WIDE = 130
"""Consoles at least this wide get one table row per resource; narrower
ones get one block per resource (the same fields, stacked)."""


def plan_table(plan: Plan, *, title: str | None = None, wide: bool = True) -> Any:
    """The plan as a rich Table.

    ``wide``: one row per resource with the columns resource, readers,
    writers, access, strategy, why, cost. Otherwise one row per resource
    whose right cell stacks readers, writers, why and cost (fits 80 columns).
    """
    from rich.table import Table
    from rich.text import Text

    flagged = {v.key for v in plan.violations if v.kind == "no-strategy"}

    def strategy_cell(row: PlanRow) -> Text:
        text = Text(row.strategy, style="bold")
        if row.origin != "recommended":
            text.append(f" ({row.origin})" if not wide else f"\n{row.origin}", style="dim")
        else:
            style = "red" if row.resource.key in flagged else "yellow"
            text.append(" (recommended)" if not wide else "\nrecommended", style=style)
        return text

    def writers_of(res: Resource) -> str:
        writers = res.writers.describe()
        if res.submitters:
            writers += f"\n(submit: {res.submitters.describe()})" if wide else (
                f"; submit: {res.submitters.describe()}"
            )
        return writers

    table = Table(title=title, show_lines=True, header_style="bold", expand=False)
    if wide:
        table.add_column("resource", overflow="fold", ratio=2)
        table.add_column("readers", overflow="fold", ratio=2)
        table.add_column("writers", overflow="fold", ratio=2)
        table.add_column("access", ratio=1)
        table.add_column("strategy", ratio=2)
        table.add_column("why", ratio=5)
        table.add_column("cost", ratio=3)
        for row in plan.rows:
            res = row.resource
            table.add_row(
                res.key, res.readers.describe(), writers_of(res), row.access,
                strategy_cell(row), row.why, row.cost,
            )
        return table
    table.add_column("resource", overflow="fold", max_width=24)
    table.add_column("plan")
    for row in plan.rows:
        res = row.resource
        detail = Table.grid(padding=(0, 1))
        detail.add_column(style="dim", no_wrap=True)
        detail.add_column()
        detail.add_row("strategy", strategy_cell(row))
        detail.add_row("readers", res.readers.describe())
        detail.add_row("writers", writers_of(res))
        detail.add_row("why", row.why)
        detail.add_row("cost", row.cost)
        table.add_row(Text(res.key, style="bold") + Text(f"\n{row.access}"), detail)
    return table


def render_plan(plan: Plan, console: Any, *, check: bool = False) -> None:
    """Print ``plan`` for people on a rich ``console`` (table, then violations)."""
    wide = console.width >= WIDE
    if plan.rows:
        console.print(plan_table(plan, title=f"accord plan: {plan.source}", wide=wide))
    else:
        console.print(f"accord plan: {plan.source}: no resource that more than one agent touches.")
    if plan.private:
        console.print(
            f"{plan.private} key{'s' if plan.private != 1 else ''} touched by one agent only "
            "(not listed: nothing can race them)."
        )
    if plan.violations:
        count = len(plan.violations)
        label = ("violation" if count == 1 else "violations") if check else "would fail --check"
        console.print(f"[bold red]{count} {label}:[/]")
        for v in plan.violations:
            console.print(f"  [red]{v.kind}[/] {v.message}")
    elif check:
        console.print("[bold green]check passed:[/] every many-writer resource has a strategy.")


# --- the demo's resources ---------------------------------------------------------------

DEMO_MANIFEST = """\
# The demo's resources: two agents edit one shared plan.
[agents.agent-a]
[agents.agent-b]

[[resource]]
key = "docs/plan.md"
description = "the shared plan both agents add a line to"
readers = ["agent-a", "agent-b"]
writers = ["agent-a", "agent-b"]
builds_on = true       # each agent edits the plan as it stands
conflicts = "low"      # two agents, a few writes each
reasoning = "short"
"""

def demo_plan() -> Plan:
    """The plan of the demo's resources (agent-a and agent-b write docs/plan.md)."""
    from .policy.manifest import parse_manifest

    return make_plan(parse_manifest(DEMO_MANIFEST, path="demo manifest"), source="accord demo")


def render_demo_plan(console: Any) -> None:
    """Print the protocol on the demo's own resources (``accord demo --plan``).

    Shows the manifest, the plan table, and every strategy the demo runs
    with when it is the simplest that works and what it costs.
    """
    from rich.syntax import Syntax
    from rich.table import Table

    plan = demo_plan()
    console.print(
        "[bold]The shared-state design protocol[/], on the demo's own resources: list every "
        "resource more than one agent touches, classify its access, pick the simplest strategy "
        "that works, make writes idempotent."
    )
    console.print(Syntax(DEMO_MANIFEST, "toml", theme="ansi_dark", background_color="default"))
    console.print(plan_table(plan, title="accord plan: the demo", wide=console.width >= WIDE))
    row = plan.rows[0]
    console.print(
        f"Declare it: add strategy = \"{row.strategy}\" to the resource. Until then "
        "`accord plan --check` fails (exit 6): a many-writer resource needs a strategy."
    )
    table = Table(title="the alternatives for docs/plan.md", header_style="bold", show_lines=True)
    table.add_column("strategy")
    table.add_column("simplest when")
    table.add_column("cost")
    table.add_column("see it: accord demo", no_wrap=True)
    for name in ("optimistic", "branch", "queue", "lease"):
        marker = " (chosen)" if name == plan.rows[0].strategy else ""
        table.add_row(name + marker, FITS[name], COSTS[name], f"--strategy {name}")
    table.add_row("none", "never: blind writes lose updates", "no cost, no safety",
                  "--strategy none")
    console.print(table)
    console.print(
        "Enforce it: save the manifest as accord.toml and set ACCORD_MANIFEST=accord.toml "
        "(in Python, open the store with its manifest option): a blind write to docs/plan.md "
        "is then refused with PolicyViolation."
    )
