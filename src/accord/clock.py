"""Logical clocks: Lamport time and vector clocks for happened-before.

Each session keeps a Lamport counter and a vector clock (agent -> count).
A write ticks the agent's own entry and is stored with the clock; a read
merges the clock stored with the version it read. So "B read what A wrote"
makes A's write happen-before everything B does next, and two writes whose
clocks are concurrent were made without either agent seeing the other's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .keys import internal
from .records import Compare, Put, compact_json_encoder

if TYPE_CHECKING:
    from .backends.base import Backend

_encode_clock = compact_json_encoder(sort_keys=True)


def encode_clock(clock: Mapping[str, int]) -> str:
    """The stored form of a vector clock: compact JSON with sorted keys."""
    return _encode_clock(clock if type(clock) is dict else dict(clock))


_DECODED: dict[str, dict[str, int]] = {}


def decode_clock(text: str | None) -> dict[str, int]:
    """Parse a stored vector clock (returns a fresh dict the caller may keep)."""
    if not text:
        return {}
    cached = _DECODED.get(text)
    if cached is None:
        value = json.loads(text)
        cached = {str(k): int(v) for k, v in value.items()}
        # Reads of a hot key see the same few clocks again and again; parsing
        # JSON is most of a read's cost once the row is fetched.
        if len(_DECODED) > 4096:
            _DECODED.clear()
        _DECODED[text] = cached
    return dict(cached)


def happened_before(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    """True if the event with clock ``a`` happened before the one with ``b``."""
    return all(v <= b.get(k, 0) for k, v in a.items()) and dict(a) != dict(b)


def concurrent(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    """True if neither clock happened before the other (and they differ)."""
    return not happened_before(a, b) and not happened_before(b, a) and dict(a) != dict(b)


class AgentClock:
    """One agent's Lamport time and vector clock, safe across threads.

    ``resume()``, when given, returns ``(lamport_max, lamport, clock_text)``
    (see ``Backend.agent_clock``): the clock continues from them at its
    first :meth:`tick` (and :meth:`snapshot`), so an agent's clocks do not
    restart in every process. If it raises, the next call tries again.
    """

    def __init__(
        self, agent: str, resume: Callable[[], tuple[int, int, str]] | None = None
    ) -> None:
        self.agent = agent
        self.lamport = 0
        self.vector: dict[str, int] = {}
        self._lock = threading.Lock()
        self._merged: dict[str, str] = {}
        self._resume = resume

    def _resume_locked(self) -> None:
        assert self._resume is not None
        top, mine, clock_text = self._resume()
        self._resume = None
        self.lamport = max(self.lamport, top, mine)
        for agent, count in decode_clock(clock_text).items():
            if count > self.vector.get(agent, 0):
                self.vector[agent] = count

    @property
    def resumed(self) -> bool:
        """True once the clock has continued from the store (or has nothing to
        resume): :meth:`tick` then reads nothing."""
        return self._resume is None

    def tick(self) -> tuple[int, dict[str, int]]:
        """Advance for a local event; returns (lamport, vector) after it."""
        with self._lock:
            if self._resume is not None:
                self._resume_locked()
            self.lamport += 1
            self.vector[self.agent] = self.vector.get(self.agent, 0) + 1
            return self.lamport, dict(self.vector)

    def observe(self, key: str, lamport: int, clock_text: str) -> None:
        """Merge the clock stored with a version this agent read."""
        if self._merged.get(key) == clock_text:
            # The same stored clock was merged already: only the Lamport time
            # can move, and it only ever grows, so a stale look at it without
            # the lock can only send us into the locked max() needlessly.
            if lamport > self.lamport:
                with self._lock:
                    self.lamport = max(self.lamport, lamport)
            return
        other = decode_clock(clock_text)
        with self._lock:
            self.lamport = max(self.lamport, lamport)
            for agent, count in other.items():
                if count > self.vector.get(agent, 0):
                    self.vector[agent] = count
            self._merged[key] = clock_text

    def snapshot(self) -> tuple[int, dict[str, int]]:
        with self._lock:
            if self._resume is not None:
                self._resume_locked()
            return self.lamport, dict(self.vector)


# --- continuing an agent's clocks in a new process ---------------------------------


_encode = compact_json_encoder(sort_keys=True)
_CHECKPOINT_EVERY = 256

CHECKPOINT_KEY = internal("clocks", "head")
"""``{"rev": R, "lamport": L}``: every event up to revision R has been folded
into the per-agent records, and L is the largest Lamport time among them."""


def agent_clock_key(agent: str) -> str:
    """The record of ``agent``'s latest clocks: ``{"agent", "lamport", "clock"}``."""
    return internal("clocks", "agent", hashlib.sha256(agent.encode()).hexdigest()[:32])


def _loads(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:  # pragma: no cover - we wrote it
        return None


def stored_agent_clock(backend: Backend, agent: str) -> tuple[int, int, str]:
    """``(lamport_max, lamport, clock_text)``: the largest Lamport time of any
    event in the store, and the Lamport time and vector clock (JSON) of
    ``agent``'s latest event (0 and ``"{}"`` when it has none).

    A recipe over the primitive, like leases: the store keeps a checkpoint
    (:data:`CHECKPOINT_KEY`) and one record per agent, brought up to date
    here from the history appended since the checkpoint, so each event is
    read about once, by a session that starts after it, and writes pay
    nothing. The checkpoint moves once at least :data:`_CHECKPOINT_EVERY`
    events came after it: a session start reads fewer events than that, or
    writes the checkpoint (a transaction of internal records, which takes
    revisions of its own, as every op does).
    Bringing them up to date is best effort: when another session did it at
    the same moment (the compare on the checkpoint fails), or it cannot be
    written, the answer computed here is still right.
    """
    head = backend.get(CHECKPOINT_KEY)
    state = _loads(head.data) if head is not None and not head.deleted else None
    if not isinstance(state, dict):
        state = {"rev": 0, "lamport": 0}
    since, top = int(state.get("rev", 0)), int(state.get("lamport", 0))
    latest: dict[str, tuple[int, Any]] = {}
    last = since
    scanned = 0
    for event in backend.history(since=since):
        last = event["rev"]
        scanned += 1
        lamport, who = event.get("lamport"), event.get("agent")
        # Events with no Lamport time of their own (a lease_expire that
        # another agent recorded for the holder) say nothing of the agent.
        if type(lamport) is not int or lamport < 1 or type(who) is not str:
            continue
        top = max(top, lamport)
        known = latest.get(who)
        if known is None or lamport >= known[0]:
            latest[who] = (lamport, event.get("clock") or {})
    records = {name: backend.get(agent_clock_key(name)) for name in {*latest, agent}}
    stored: dict[str, tuple[int, Any]] = {}
    for name, rec in records.items():
        data = _loads(rec.data) if rec is not None and not rec.deleted else None
        if isinstance(data, dict) and data.get("agent") == name:
            stored[name] = (int(data.get("lamport", 0)), data.get("clock") or {})
    mine = stored.get(agent, (0, {}))
    if agent in latest and latest[agent][0] >= mine[0]:
        mine = latest[agent]
    if scanned >= _CHECKPOINT_EVERY:
        _checkpoint(backend, head.version if head is not None else 0, last, top, latest,
                    stored, records)
    return top, mine[0], _encode_clock(mine[1] if isinstance(mine[1], dict) else {})


def _checkpoint(
    backend: Backend,
    head_version: int,
    rev: int,
    top: int,
    latest: dict[str, tuple[int, Any]],
    stored: dict[str, tuple[int, Any]],
    records: dict[str, Any],
) -> None:
    from .errors import AccordError

    compares = [Compare(CHECKPOINT_KEY, "version", "==", head_version)]
    puts = [Put(CHECKPOINT_KEY, "json", _encode({"rev": rev, "lamport": top}).encode())]
    for name, (lamport, clock) in latest.items():
        if name in stored and stored[name][0] > lamport:
            continue
        key = agent_clock_key(name)
        rec = records.get(name)
        compares.append(Compare(key, "version", "==", 0 if rec is None else rec.version))
        data = {"agent": name, "lamport": lamport, "clock": clock}
        puts.append(Put(key, "json", _encode(data).encode()))
    # Best effort: if it cannot be written, the next session catches up.
    with contextlib.suppress(AccordError):
        backend.txn(compares, puts)
