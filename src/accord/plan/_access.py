"""What a recorded history shows about each key: who read, wrote, submitted, forked.

:func:`read_history` reads a history (a JSONL file in accord's format or
the foreign one, or a store URL); :func:`access_from_history` turns its
events into one :class:`Observed` per key: the agents in each role, the
refused share of writes, the guards used, the time from read to write.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import HistoryFormatError, call, var


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


def read_history(source: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The events of a history: a JSONL file, or a store URL (``scheme://...``).

    Accepts accord's own format and the foreign format (``agent``, ``op``
    read or write, ``key``, ``value`` or ``hash``, ``start``, ``end``).
    Raises :class:`HistoryFormatError` naming the line of a malformed one.
    """
    text = os.fspath(source)
    if "://" in text:
        from ..store import open as open_store

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


def merge_into(total: Observed, obs: Observed) -> None:
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
