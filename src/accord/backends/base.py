"""The backend contract: one small Protocol, and the logic all backends share.

A backend stores records and history and offers one atomic primitive,
:meth:`Backend.txn`: check every compare, then apply the ``success`` ops
(or the ``failure`` ops when a compare fails), append their history events,
and commit it all at once. Leases, queues, branches and idempotency records
are records like any other, written through ``txn``; that is what lets one
conformance suite prove every backend.

Backends import only this module, :mod:`accord.records` and
:mod:`accord.errors`.
"""

from __future__ import annotations

import math
import operator
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from ..errors import call, var
from ..records import (
    NOW,
    Append,
    Compare,
    Delete,
    Op,
    Put,
    Record,
    TxnResult,
    decode_value,
    value_hash,
)

CLOSED = f"This store was closed; open it again ({call('accord.open', var('url'))})."
"""The message of an operation on a closed store (rendered per surface)."""

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


LiveRow = tuple[str, bytes, int, int, str, int, str]
"""A live key's ``(kind, data, version, revision, author, lamport, clock)``."""


@runtime_checkable
class Backend(Protocol):
    """What a storage engine must offer accord.

    ``spans_processes`` and ``spans_hosts`` state where the backend can be
    shared: memory spans neither, SQLite spans processes on one machine,
    PostgreSQL spans hosts.

    The backends subclass it, so :meth:`read_live` and
    :meth:`put_if_version` have working defaults built on the other methods.
    """

    url: str
    spans_processes: ClassVar[bool]
    spans_hosts: ClassVar[bool]

    def get(self, key: str) -> Record | None:
        """The record of ``key`` (tombstones included), or None."""

    def scan(self, prefix: str, limit: int | None = None) -> list[Record]:
        """Live records whose key starts with ``prefix``, in key order."""

    def txn(
        self,
        compares: Sequence[Compare],
        success: Sequence[Op],
        failure: Sequence[Op] = (),
    ) -> TxnResult:
        """Atomically: if every compare holds apply ``success``, else ``failure``."""

    def history(
        self, since: int = 0, key: str | None = None, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """History events with ``rev > since``, oldest first (optionally one key)."""

    def changes(self, key: str) -> Iterator[dict[str, Any]]:
        """The events that changed ``key`` (writes and deletes), newest first.

        Cheap to start and to stop early: callers walk back only as far as
        they need (the writers since a version, the write of an idempotency
        key). Events appended without a change (a refused write) are not
        included; :meth:`history` has them.
        """

    def revision(self) -> int:
        """The store revision now."""

    def wait(self, keys: Sequence[str], prefixes: Sequence[str], since: int, timeout: float) -> int:
        """Block until a record in ``keys`` or under ``prefixes`` changes after
        revision ``since``, or ``timeout`` seconds pass. Returns the revision now.

        A wake-up is a hint: callers re-read and decide; a spurious wake-up is
        allowed, a missed change within ``timeout`` is not.
        """

    def now(self) -> float:
        """The store's clock, in seconds since the epoch. Every TTL uses it."""

    # --- with defaults: a backend may offer them faster ----------------------

    def read_live(self, key: str) -> LiveRow | None:
        """``(kind, data, version, revision, author, lamport, clock)`` of a live key.

        None when the key is absent or deleted (then :meth:`get` tells
        which). The hot path of ``Session.read``; the default builds it from
        :meth:`get`, a backend may read the row without building a Record.
        """
        rec = self.get(key)
        if rec is None or rec.deleted:
            return None
        return rec.kind, rec.data, rec.version, rec.revision, rec.author, rec.lamport, rec.clock

    def put_if_version(
        self,
        put: Put,
        expect: int,
        guards: Sequence[Compare] = (),
        failure: Sequence[Op] = (),
    ) -> TxnResult:
        """The common optimistic write: ``txn([*guards, Compare(put.key,
        "version", "==", expect)], [put], failure)``.

        Same meaning as that call, with one difference in the result: when
        the write succeeds, ``records`` may be empty. The default is that
        call; a backend may do it in fewer statements (see
        :func:`short_put` for the shape the SQLite and PostgreSQL backends
        take a short path for).
        """
        return self.txn(put_if_compares(put.key, expect, guards), [put], failure)

    def purge_expired(self, prefix: str, before: float) -> int:
        """Remove live records under ``prefix`` whose ``expires`` < ``before``."""

    def close(self) -> None:
        """Release connections; the backend is unusable afterwards."""


class AsyncBackend(Protocol):
    """:class:`Backend` for asyncio: the same methods, awaited.

    ``history`` and ``changes`` are async iterators. Any sync backend
    becomes one through :class:`accord.backends.thread.ThreadBackend`, which
    runs each call in a worker thread (SQLite and memory: sqlite3 blocks).
    """

    url: str

    async def get(self, key: str) -> Record | None:
        """See :meth:`Backend.get`."""

    async def scan(self, prefix: str, limit: int | None = None) -> list[Record]:
        """See :meth:`Backend.scan`."""

    async def txn(
        self,
        compares: Sequence[Compare],
        success: Sequence[Op],
        failure: Sequence[Op] = (),
    ) -> TxnResult:
        """See :meth:`Backend.txn`."""

    def history(
        self, since: int = 0, key: str | None = None, limit: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """See :meth:`Backend.history`."""

    def changes(self, key: str) -> AsyncIterator[dict[str, Any]]:
        """See :meth:`Backend.changes`."""

    async def revision(self) -> int:
        """See :meth:`Backend.revision`."""

    async def wait(
        self, keys: Sequence[str], prefixes: Sequence[str], since: int, timeout: float
    ) -> int:
        """See :meth:`Backend.wait`; waits without blocking the event loop."""

    async def now(self) -> float:
        """See :meth:`Backend.now`."""

    async def purge_expired(self, prefix: str, before: float) -> int:
        """See :meth:`Backend.purge_expired`."""

    async def close(self) -> None:
        """See :meth:`Backend.close`."""

    async def read_live(self, key: str) -> LiveRow | None:
        """See :meth:`Backend.read_live`."""

    async def put_if_version(
        self,
        put: Put,
        expect: int,
        guards: Sequence[Compare] = (),
        failure: Sequence[Op] = (),
    ) -> TxnResult:
        """See :meth:`Backend.put_if_version`."""


# --- shared logic ----------------------------------------------------------


_LAST_SECOND: tuple[int, str] = (-1, "")


def iso_time(ts: float) -> str:
    """RFC 3339 UTC time with microseconds, as history events carry it."""
    global _LAST_SECOND
    seconds = int(ts)
    micros = round((ts - seconds) * 1_000_000)
    if micros == 1_000_000:
        seconds, micros = seconds + 1, 0
    # Every write stamps its events; formatting the date costs more than the
    # rest of the stamp, and it changes once a second. One tuple, replaced
    # whole, so threads never see a second paired with another's text.
    last = _LAST_SECOND
    if last[0] != seconds:
        last = _LAST_SECOND = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{last[1]}.{micros:06d}Z"


VACANT_END = ":"
"""The character after ``9``: a vacant compare on prefix ``p`` probes the
key range ``[p + "0", p + ":")``, where every slot (``p`` and digits) lies."""


def slot_range(prefix: str) -> tuple[str, str]:
    """The key range a ``vacant`` compare on ``prefix`` probes."""
    return prefix + "0", prefix + VACANT_END


def occupies(rec: Record, cmp: Compare, now: float) -> bool:
    """Whether ``rec`` makes the ``vacant`` compare ``cmp`` fail at ``now``."""
    rest = rec.key[len(cmp.key) :] if rec.key.startswith(cmp.key) else ""
    return (
        rest.isascii()
        and rest.isdigit()
        and rec.key != cmp.value
        and not rec.deleted
        and (rec.expires is None or rec.expires > now)
    )


Vacancy = Callable[[Compare, float], bool]
"""How a backend evaluates a ``vacant`` compare at ``now``: a range probe."""


def check_compare(
    cmp: Compare, record: Record | None, now: float, vacant: Vacancy | None = None
) -> bool:
    """Evaluate one compare against the current record of its key.

    A ``vacant`` compare has no record of its own: ``vacant(cmp, now)``
    (the backend's range probe) decides it.
    """
    if cmp.target == "vacant":
        if vacant is None:  # pragma: no cover - every backend passes one
            raise ValueError("a vacant compare needs the backend's range probe")
        return vacant(cmp, now)
    expected = now if cmp.value == NOW else cmp.value
    if cmp.target == "version":
        actual: Any = 0 if record is None or record.deleted else record.version
    elif cmp.target == "expires":
        actual = math.inf if record is None or record.expires is None else record.expires
        if record is None or record.deleted:
            actual = -math.inf
        if expected is None:
            expected = math.inf
    elif cmp.target == "holder":
        if record is None or record.deleted:
            return True
        if record.expires is not None and record.expires <= now:
            return True
        return record.author == expected
    elif cmp.target == "value":
        actual = (
            None if record is None or record.deleted else decode_value(record.kind, record.data)
        )
    else:  # pragma: no cover - guarded by the type
        raise ValueError(f"unknown compare target {cmp.target!r}")
    return _OPS[cmp.op](actual, expected)


def first_failure(
    compares: Sequence[Compare],
    current: dict[str, Record | None],
    now: float,
    vacant: Vacancy,
) -> Compare | None:
    """The first compare that does not hold (None: they all hold)."""
    for cmp in compares:
        if not check_compare(cmp, current.get(cmp.key), now, vacant):
            return cmp
    return None


def plan_ops(
    ops: Iterable[Op],
    current: dict[str, Record | None],
    revision: int,
    now: float,
    changes: list[dict[str, Any]] | None = None,
    outcome: str | None = None,
) -> tuple[list[tuple[str, Record | None]], list[dict[str, Any]], int]:
    """Work out what ``ops`` do, given the records they touch.

    Returns the rows to store (``None`` means remove the row), the events to
    append (fields filled in), and the new store revision. Every op consumes
    one revision. ``current`` is updated in place, so several ops on one key
    in one transaction see each other. If ``changes`` is given, the events of
    Put and Delete ops (those that changed a key) are also appended to it.
    ``outcome``, when given, replaces every event's ``outcome`` (the
    ``refusal`` of the compare that sent a transaction to its failure ops).
    """
    writes: list[tuple[str, Record | None]] = []
    events: list[dict[str, Any]] = []
    stamp = iso_time(now)
    for op in ops:
        revision += 1
        if isinstance(op, Append):
            events.append(_stamp(op.event, revision, stamp, None, None, None))
            if outcome is not None:
                events[-1]["outcome"] = outcome
            continue
        old = current.get(op.key)
        # The version chain runs through tombstones, so ``prev`` of a
        # re-create is the delete's version and the chain has no gaps.
        base = prev = 0 if old is None else old.version
        if isinstance(op, Put):
            new: Record | None = Record(
                key=op.key,
                kind=op.kind,
                data=op.data,
                version=base + 1,
                revision=revision,
                author=op.author,
                lamport=op.lamport,
                clock=op.clock,
                deleted=False,
                expires=None if op.ttl is None else now + op.ttl,
            )
            if op.event is not None:
                events.append(
                    _stamp(op.event, revision, stamp, base + 1, prev, value_hash(op.data))
                )
                if outcome is not None:
                    events[-1]["outcome"] = outcome
                # A record with a TTL (a lease) tells the history its deadline,
                # computed from the same clock reading as the event's time.
                if new is not None and new.expires is not None and "expires" not in events[-1]:
                    events[-1]["expires"] = iso_time(new.expires)
                # A change of the record's own key: a lease grant's event
                # names the leased key, but changes only its grant record.
                if changes is not None and op.event.get("key") == op.key:
                    changes.append(events[-1])
        elif isinstance(op, Delete):
            if op.purge:
                new = None
            elif old is None or old.deleted:
                new = old
            else:
                new = Record(
                    key=op.key,
                    kind=old.kind,
                    data=b"",
                    version=base + 1,
                    revision=revision,
                    author=op.author,
                    lamport=op.lamport,
                    clock=op.clock,
                    deleted=True,
                    expires=None,
                )
            if op.event is not None:
                version = None if new is None else new.version
                events.append(_stamp(op.event, revision, stamp, version, prev, None))
                if outcome is not None:
                    events[-1]["outcome"] = outcome
                if changes is not None and new is not old and op.event.get("key") == op.key:
                    changes.append(events[-1])
        else:  # pragma: no cover - guarded by the type
            raise TypeError(f"unknown op {op!r}")
        current[op.key] = new
        if new is not old:
            writes.append((op.key, new))
    return writes, events, revision


def _stamp(
    event: dict[str, Any],
    rev: int,
    stamp: str,
    version: int | None,
    prev: int | None,
    hash_: str | None,
) -> dict[str, Any]:
    out = dict(event)
    out["rev"] = rev
    out["time"] = stamp
    if version is not None and "version" not in out:
        out["version"] = version
    if prev is not None and "prev" not in out:
        out["prev"] = prev
    if hash_ is not None and "hash" not in out:
        out["hash"] = hash_
    return out


HISTORY_PAGE = 2000


def paged_history(
    fetch: Callable[[int, int], list[dict[str, Any]]],
    since: int,
    limit: int | None,
) -> Iterator[dict[str, Any]]:
    """Stream history in pages so a long history never sits in memory at once.

    ``fetch(since, count)`` returns at most ``count`` events with ``rev >
    since``, oldest first; a short page ends the stream.
    """
    seen = 0
    while True:
        want = HISTORY_PAGE if limit is None else min(HISTORY_PAGE, limit - seen)
        if want <= 0:
            return
        page = fetch(since, want)
        yield from page
        if page:
            since = page[-1]["rev"]
        seen += len(page)
        if len(page) < want:
            return


def short_put(put: Put, expect: int, guards: Sequence[Compare]) -> bool:
    """Whether a ``put_if_version`` call has the shape the backends' short
    paths take: a put with an event and no TTL over an existing version,
    guarded only by ``vacant`` compares (at most one, listed first) and
    ``holder`` compares on other keys."""
    vacant = 0
    for i, g in enumerate(guards):
        if g.target == "vacant":
            vacant += 1
            if i != 0:
                return False
        elif g.target != "holder" or g.key == put.key:
            return False
    return put.event is not None and put.ttl is None and expect >= 1 and vacant <= 1


def put_if_compares(expect_key: str, expect: int, guards: Sequence[Compare]) -> list[Compare]:
    """The compares a ``put_if_version`` call means, in the order they are
    checked: the guards as given, then the version."""
    return [*guards, Compare(expect_key, "version", "==", expect)]


def touched_keys(compares: Sequence[Compare], *branches: Sequence[Op]) -> list[str]:
    """Every key a transaction reads or writes, in first-seen order.

    A ``vacant`` compare names a prefix, not a key: it is left out.
    """
    seen: dict[str, None] = {}
    for cmp in compares:
        if cmp.target != "vacant":
            seen.setdefault(cmp.key, None)
    for ops in branches:
        for op in ops:
            if not isinstance(op, Append):
                seen.setdefault(op.key, None)
    return list(seen)
