"""What the one-pass checker remembers, and the rules that order it.

:class:`~accord.history.native.NativeChecker` keeps, per key, a window of
recent versions (each a :data:`W` record, a list indexed by the field
numbers below, built for speed), the ancestry path of the current version
(runs of consecutive versions), the agents' last reads and the leases seen;
this module holds those records and the small rules that compare them (which
lease token is newer, whether one vector clock includes another). No
checking happens here: the checker's rules are in ``native``, the words of
its findings in ``native_explain``, the reading of an event's fields in
``native_fields``.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

__all__ = [
    "AGENT",
    "BASED",
    "CHECK",
    "KEYED",
    "LEASE",
    "LINE",
    "LOSTBY",
    "MUTATING",
    "ONPATH",
    "OP",
    "PARENT",
    "PREV",
    "READ",
    "REV",
    "TIME",
    "WINDOW_REVISIONS",
    "WINDOW_VERSIONS",
    "KeyState",
    "LeaseState",
    "V",
    "W",
    "clock_leq",
    "lease_after",
    "older",
    "on_runs",
    "push",
]

WINDOW_VERSIONS = 100_000
"""Versions of one key remembered for explanations and lost-write accounting."""

WINDOW_REVISIONS = 100_000
"""Revisions after which a version is forgotten (the memory bound)."""

MUTATING = frozenset({"write", "delete", "accept", "merge"})
"""Operations that change a key when their outcome is ok."""

KEYED = MUTATING | {"read"}
"""Operations on one key whose version the checker follows."""

V, REV, TIME, AGENT, OP, PREV, BASED, CHECK, LEASE, LINE, READ, PARENT, ONPATH, LOSTBY = range(14)
W = list[Any]
"""One version of a key, a list indexed by the numbers above (a list, not an
object: the checker builds one per write, inline, on its hot path):
``[version, rev, time, agent, op, prev, based_on, check, lease, line,
read_time, parent, on_path, lost_by]``. ``read_time``: when the writer read
its basis (None: unknown); ``parent``: the version it built on (``based_on``,
else ``prev``); ``on_path``: whether its change is in the current value;
``lost_by``: the version that erased it (None: not erased)."""


class KeyState:
    """What the checker remembers about one key."""

    __slots__ = ("cur", "deleted", "last", "last_clock", "leases", "path", "reads", "recent")

    def __init__(self) -> None:
        self.cur = 0
        self.deleted = False
        self.last: W | None = None
        self.last_clock: dict[str, int] | None = None
        self.recent: dict[int, W] = {}
        # The ancestry of the current version (newest last): the versions
        # whose changes the current value contains, through based_on links.
        self.path: list[list[int]] = []
        self.leases: dict[Any, LeaseState] | None = None
        # agent -> (version, time) of its last read of this key
        self.reads: dict[str, tuple[int, str]] | None = None


class LeaseState:
    """A lease seen in the history: its grant, its deadline, how it ended."""

    __slots__ = (
        "agent",
        "end_reason",
        "end_rev",
        "end_time",
        "expires",
        "mode",
        "rev",
        "token",
        "unreadable",
    )

    def __init__(self, token: Any, agent: str, rev: int, mode: str) -> None:
        self.token = token
        self.agent = agent
        self.rev = rev
        self.mode = mode
        self.expires: float | None = None
        self.end_time: str | None = None
        self.end_rev: int | None = None
        self.end_reason: str | None = None
        # The line of an acquire or renew whose deadline could not be read
        # (skipped in lenient mode): writes under this token are undecidable.
        self.unreadable: int | None = None


def lease_after(token: Any, other: Any) -> bool:
    """True if lease ``token`` was granted after ``other`` (both known tokens)."""
    try:
        return token is not None and other is not None and bool(token > other)
    except TypeError:
        return False


def clock_leq(a: dict[str, Any], b: dict[str, Any]) -> bool | None:
    """True if vector clock ``a`` happened before or equals ``b``; None if an entry is
    not a number (the clocks cannot be compared)."""
    for clock in (a, b):
        for n in clock.values():
            if type(n) is not int:
                return None
    return all(n <= b.get(who, 0) for who, n in a.items())


def push(path: list[list[int]], v: int) -> None:
    """Put version ``v`` on the ancestry path (runs of consecutive versions)."""
    if path and path[-1][1] == v - 1:
        path[-1][1] = v
    else:
        path.append([v, v])


def on_runs(path: list[list[int]], v: int) -> bool:
    """Whether version ``v`` is on the ancestry path."""
    i = bisect_right(path, [v, _BIG]) - 1
    return i >= 0 and path[i][0] <= v <= path[i][1]


_BIG = 1 << 62


def older(a: LeaseState, b: LeaseState) -> bool:
    """Whether lease ``a`` was granted before ``b`` (by token, else by revision)."""
    try:
        return bool(a.token < b.token)
    except TypeError:
        return a.rev < b.rev
