"""Watch without I/O: the events, the bookkeeping, the retry policy.

``session.watch(target, since)`` yields one :class:`WatchEvent` per write or
delete of the watched keys committed after revision ``since``, in revision
order: none skipped, none twice. This module is the part of it that reads
nothing: :class:`WatchState` (what to read and what to wait on, the read
cursor and the resume rule, the filter, and turning history events into
:class:`WatchEvent` objects), :func:`is_change`, the backoff and the error of
a watch that gave up. The loop that reads and waits is written once, as
async code, in :mod:`accord._watch_async`; the sync loop
(:mod:`accord._watch`) is generated from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .. import params
from ..errors import BackendUnavailable, UsageError, call
from ..keys import RESERVED_PREFIX, validate_key, validate_prefix
from ..records import Event, Record, Value, decode_value

__all__ = [
    "PAGE",
    "STOP_POLL",
    "WAIT_SLICE",
    "WatchEvent",
    "WatchState",
    "backoff",
    "is_change",
    "unavailable",
]

PAGE = 500
"""History events read per query while catching up."""

WAIT_SLICE = 5.0
"""The longest single wait before the history is read again.

A wake-up is a hint and the history is the truth: reading it again now and
then bounds the cost of any hint that is lost (see :meth:`WatchState.caught_up`).
"""

STOP_POLL = 0.25
"""How often a watch with a ``stop`` event looks at it while waiting."""


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One committed change of a watched key.

    ``kind`` is ``"write"`` or ``"delete"``; ``op`` is the history operation
    that made the change (``write``, ``delete``, ``accept``, ``merge``).
    ``version`` is the key's version after the change, ``revision`` the
    store revision of the commit (pass it as ``since`` to resume).

    ``value`` is the value written at ``version``, when the watcher read the
    key while it was still at that version. The store keeps only the latest
    value of a key, so when a newer change came first ``superseded`` is True
    and ``value`` is None (the later events carry the newer values; read
    the key for the latest). For a delete ``value`` is None and
    ``superseded`` False. ``hash`` is the sha256 of the written bytes, as in
    the history, whichever the case. ``event`` is the whole history event
    (an :class:`accord.Event`, built when asked for).
    """

    key: str
    revision: int
    version: int
    kind: Literal["write", "delete"]
    value: Value | None
    superseded: bool
    agent: str
    time: str
    op: str
    hash: str | None
    _history: dict[str, Any] = field(repr=False, compare=False)

    @property
    def event(self) -> Event:
        """The whole history event (``based_on``, ``check``, clocks, lease
        token, idempotency key, request id), built when asked for."""
        return Event.from_dict(self._history)


def is_change(event: dict[str, Any]) -> bool:
    """Whether a history event is the record of a committed change of its key.

    A write or delete that changed its key moves the key's version by one
    (``version == prev + 1``, stamped by the backend) with outcome ``ok``.
    Everything else is left out: refused writes, reads, lease events (they
    state ``version`` None), queue submissions, forks (no ``prev``), and a
    delete of an absent key (the version does not move).
    """
    version = event.get("version")
    prev = event.get("prev")
    return (
        event.get("outcome") == "ok"
        and isinstance(event.get("key"), str)
        and isinstance(version, int)
        and isinstance(prev, int)
        and version == prev + 1
    )


class WatchState:
    """The bookkeeping of one watch, without I/O.

    Three revisions move forward, never back:

    * ``last``: the revision of the last event handed out. Events at or
      below it are never handed out again (none twice).
    * ``position``: history is read from here (exclusive). It moves only to
      the revision of a *change* event (of any key), never past a trailing
      event of another kind. On PostgreSQL a refused write commits without
      waiting for the WAL flush (docs/postgres.md), so after a server crash
      its revision can be given again to a change; changes always commit
      durably, and a durable commit flushes everything before it. Trailing
      non-change events are read again on the next pass and dropped again.
      It moves when every change of a page has been handed out, so a page
      the store cut short is read again.
    * ``head``: the revision the next wait starts from: the store revision
      read before the last pass, or the highest revision that pass read.
      Records changed at or below it do not wake the watcher again.

    Revisions become visible in order on every backend (SQLite and memory
    commit one writer at a time; PostgreSQL writers hold the counter row
    lock to COMMIT), so a read never sees revision N+1 without N and a
    cursor over the history never jumps a change.
    """

    def __init__(self, target: str, since: int, prefix: bool) -> None:
        self.target = target
        self.prefix = prefix
        self.last = since
        self.position = since
        self.head = since
        self._cursor = since  # the read position within one pass
        self._reach = since  # the last change event read in this pass
        # Per key, the version of its record when last read in this pass.
        # Versions only grow, so an event below it is superseded without
        # reading the record again: a watcher catching up on a long
        # backlog reads each key about once, not once per page.
        self._known: dict[str, int] = {}

    @classmethod
    def open(cls, target: object, since: object, prefix: object, now: int) -> WatchState:
        """Check a watch's arguments and make its state (``now``: the store
        revision, the start when ``since`` is None)."""
        prefix = params.flag(prefix, "prefix")
        if not isinstance(target, str):
            raise UsageError(
                f"watch takes a key or a prefix (str), not {target!r}. Pass, say, "
                f"{call('session.watch', 'docs/plan.md')} or {call('session.watch', 'docs/')}."
            )
        # A key never ends with "/" and is never empty: such a target can
        # only mean a prefix, so it is one without prefix=True.
        if prefix or target == "" or target.endswith("/"):
            validate_prefix(target)
            prefix = True
        else:
            validate_key(target)
        start = now if since is None else params.count(since, "since", maximum=2**62, example="0")
        return cls(target, start, prefix)

    # --- what to read and wait on -------------------------------------------

    def matches(self, key: str) -> bool:
        """Whether a change of ``key`` is watched (agent keys only)."""
        if key.startswith(RESERVED_PREFIX):
            return False
        return key.startswith(self.target) if self.prefix else key == self.target

    def begin(self) -> None:
        """Start a pass: read again from ``position``. A pass that failed
        half way (the store went away) left ``position`` where it was."""
        self._cursor = self._reach = self.position
        self._known.clear()

    def read_args(self) -> tuple[int, str | None, int]:
        """``(since, key, limit)`` of the next ``Backend.history`` page."""
        return self._cursor, None if self.prefix else self.target, PAGE

    def take(self, page: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
        """Take one page read with :meth:`read_args`: the watched changes in
        it, in revision order, and whether the pass caught up (a short page)."""
        out: list[dict[str, Any]] = []
        for ev in page:
            rev = int(ev["rev"])
            self._cursor = max(self._cursor, rev)
            if not is_change(ev):
                continue
            self._reach = max(self._reach, rev)
            if rev > self.last and self.matches(ev["key"]):
                out.append(ev)
        return out, len(page) < PAGE

    def keys_to_read(self, changes: Sequence[dict[str, Any]]) -> list[str]:
        """The keys whose records give the values of ``changes``: for each
        key only its latest write can still be current, and only if no
        record read earlier in this pass was at a later version."""
        latest: dict[str, dict[str, Any]] = {}
        for ev in changes:
            latest[ev["key"]] = ev
        return [
            key
            for key, ev in latest.items()
            if ev.get("hash") is not None and int(ev["version"]) >= self._known.get(key, 0)
        ]

    def read(self, records: dict[str, Record | None]) -> None:
        """Note the records read for :meth:`keys_to_read` (before :meth:`event`)."""
        for key, rec in records.items():
            if rec is not None:
                self._known[key] = max(self._known.get(key, 0), rec.version)

    def event(self, ev: dict[str, Any], records: dict[str, Record | None]) -> WatchEvent:
        """The :class:`WatchEvent` of change ``ev`` (handing it out: ``last``
        moves to its revision). ``records``: the records of
        :meth:`keys_to_read`, read after the page."""
        key: str = ev["key"]
        version = int(ev["version"])
        rec = records.get(key)
        # A Put's event always carries the hash of the bytes written, a
        # Delete's never does (whatever op the history names, say a merge).
        kind: Literal["write", "delete"] = (
            "delete" if ev.get("op") == "delete" or ev.get("hash") is None else "write"
        )
        value: Value | None = None
        superseded = False
        if kind == "write":
            if rec is not None and rec.version == version and not rec.deleted:
                value = decode_value(rec.kind, rec.data)
            else:
                superseded = True
        self.last = max(self.last, int(ev["rev"]))
        return WatchEvent(
            key=key,
            revision=int(ev["rev"]),
            version=version,
            kind=kind,
            value=value,
            superseded=superseded,
            agent=str(ev.get("agent", "")),
            time=str(ev.get("time", "")),
            op=str(ev.get("op", "")),
            hash=ev.get("hash"),
            _history=ev,
        )

    def handed_out(self) -> None:
        """Every change :meth:`take` returned has been handed out: the
        position moves to the last change event read."""
        self.position = max(self.position, self._reach)

    def caught_up(self, head: int) -> None:
        """End a pass that read to the end; ``head`` is the store revision
        read before it. The next wait is for changes after the higher of
        ``head`` and the last revision read."""
        self.head = max(self.head, head, self._cursor)

    def wait_args(self) -> tuple[list[str], list[str], int]:
        """``(keys, prefixes, since)`` for ``Backend.wait``."""
        if self.prefix:
            return [], [self.target], self.head
        return [self.target], [], self.head


def backoff(attempt: int) -> float:
    """Seconds to sleep before retry ``attempt`` (from 0) of an unavailable store."""
    return float(min(0.05 * 2**attempt, 2.0))


def unavailable(state: WatchState, exc: BackendUnavailable, waited: float) -> BackendUnavailable:
    """The error of a watch that gave up on an unavailable store."""
    what = "prefix" if state.prefix else "key"
    # A prefix that does not end with "/" needs prefix=True to stay one.
    spelled = {"prefix": True} if state.prefix and state.target[-1:] not in ("", "/") else {}
    return BackendUnavailable(
        f"Watching {what} {state.target!r}: the store has been unavailable for "
        f"{waited:.0f} s ({exc.template}). Nothing was lost: when it is back, resume with "
        f"{call('session.watch', state.target, since=state.last, **spelled)}, the revision "
        "of the last change you received.",
        since=state.last,
    )
