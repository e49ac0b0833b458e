"""Logical clocks: Lamport time and vector clocks for happened-before.

Each session keeps a Lamport counter and a vector clock (agent -> count).
A write ticks the agent's own entry and is stored with the clock; a read
merges the clock stored with the version it read. So "B read what A wrote"
makes A's write happen-before everything B does next, and two writes whose
clocks are concurrent were made without either agent seeing the other's.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping

from .keys import internal
from .records import compact_json_encoder

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
        self._apply_locked(self._resume())

    def _apply_locked(self, resumed: tuple[int, int, str]) -> None:
        top, mine, clock_text = resumed
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

    def resume_with(self, resumed: tuple[int, int, str]) -> None:
        """Continue from ``resumed`` (what ``resume()`` would return), read by
        the caller: the async face reads it with ``await``. Merging is a max,
        so a second resume (two threads at once) changes nothing wrong."""
        with self._lock:
            self._apply_locked(resumed)

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
