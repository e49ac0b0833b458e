"""The explorer's store backend: memory, virtual time, a scheduling point before every operation.

It wraps accord's :class:`~accord.backends.memory.MemoryBackend`, whose
clock is the run's virtual clock (so TTLs lapse when the scheduler moves
time), and offers the async backend contract (``get``, ``scan``, ``txn``,
``history``, ``changes``, ``revision``, ``wait``, ``now``,
``purge_expired``, ``close``). Before each operation the calling agent
reaches a scheduling point whose footprint is the operation's keys, so the
strategies interleave agents at every store operation and the exhaustive
strategy skips orders of operations on different keys. ``wait`` blocks in
the scheduler (:func:`~accord.explorer.wait_for`) and a committed
transaction wakes the agents waiting on the keys it changed; a wait names
the authors of the records it waits on as their holders, so a deadlock on
leases is reported with its cycle.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, ClassVar

from ..backends.base import LiveRow, put_if_compares
from ..backends.memory import MemoryBackend
from ..records import Append, Compare, Op, Put, Record, TxnResult
from ._runtime import Footprint, Scheduler, current_agent, notify, point, wait_for

__all__ = ["ExplorerBackend"]


def _keys_of(ops: Iterable[Op]) -> tuple[set[str], set[str], bool]:
    """(keys written, keys read, unknown) by a branch of a transaction.

    An ``Append`` writes a history event: its order matters against changes
    to the event's key (a read event must stay on its side of a write), not
    against other keys; an event without a key conflicts with everything.
    """
    writes: set[str] = set()
    reads: set[str] = set()
    unknown = False
    for op in ops:
        if isinstance(op, Append):
            key = op.event.get("key") if isinstance(op.event, dict) else None
            if isinstance(key, str) and key:
                reads.add(key)
            else:
                unknown = True
        else:
            writes.add(op.key)
    return writes, reads, unknown


class ExplorerBackend:
    """A fresh in-memory store for one schedule, under the scheduler.

    ``events()`` returns the whole history without a scheduling point (for
    the check after the run).
    """

    spans_processes: ClassVar[bool] = False
    spans_hosts: ClassVar[bool] = False
    runs_inline: ClassVar[bool] = True
    """The scheduler drives every coroutine itself: code over this backend
    starts no asyncio task (a lease's acquire and release run in the caller)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.url = "memory://"
        self.scheduler = scheduler
        self.memory = MemoryBackend("memory://", clock=scheduler.clock.time)

    # -- reads ---------------------------------------------------------------------

    async def get(self, key: str) -> Record | None:
        await point(f"get {key}", footprint=Footprint(reads=frozenset((key,))))
        return self.memory.get(key)

    async def scan(self, prefix: str, limit: int | None = None) -> list[Record]:
        await point(f"scan {prefix}*", footprint=Footprint(prefixes=frozenset((prefix,))))
        return self.memory.scan(prefix, limit)

    async def read_live(self, key: str) -> LiveRow | None:
        await point(f"get {key}", footprint=Footprint(reads=frozenset((key,))))
        return self.memory.read_live(key)

    async def history(
        self, since: int = 0, key: str | None = None, limit: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        # One scheduling point, then a snapshot: the events are read at once,
        # as one step (an iteration that yields between events would not be
        # one atomic read).
        fp = None if key is None else Footprint(reads=frozenset((key,)))
        await point("history" if key is None else f"history {key}", footprint=fp)
        for event in list(self.memory.history(since, key, limit)):
            yield event

    async def changes(self, key: str) -> AsyncIterator[dict[str, Any]]:
        await point(f"changes {key}", footprint=Footprint(reads=frozenset((key,))))
        for event in list(self.memory.changes(key)):
            yield event

    async def revision(self) -> int:
        # The store revision counts every commit, whatever its key: reading it
        # depends on every write.
        await point("revision", footprint=None)
        return self.memory.revision()

    async def agent_clock(self, agent: str) -> tuple[int, int, str]:
        """Where ``agent``'s clocks resume (``accord._clockio.stored_agent_clock``),
        read from memory without a scheduling point: a session's first event
        reads the clock records, which is bookkeeping of the agent's own, not
        an access the other agents race with (a fresh store per schedule has
        no earlier process to continue from)."""
        from .._clockio import stored_agent_clock

        return stored_agent_clock(self.memory, agent)

    async def now(self) -> float:
        # The clock moves only between steps: reading it is not a choice.
        return self.memory.now()

    # -- writes --------------------------------------------------------------------

    async def txn(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        ok_writes, ok_reads, ok_unknown = _keys_of(success)
        ko_writes, ko_reads, ko_unknown = _keys_of(failure)
        # A "vacant" compare (the lease exclusion) probes every slot under its
        # prefix: it reads the prefix, not one key.
        vacant = {c.key for c in compares if c.target == "vacant"}
        reads = {c.key for c in compares if c.target != "vacant"} | ok_reads | ko_reads
        writes = ok_writes | ko_writes
        fp = None
        if not (ok_unknown or ko_unknown):
            fp = Footprint(
                reads=frozenset(reads), writes=frozenset(writes), prefixes=frozenset(vacant)
            )
        shown = sorted(writes) or sorted(reads)
        await point("txn " + ", ".join(shown), footprint=fp)
        result = self.memory.txn(compares, success, failure)
        changed = ok_writes if result.succeeded else ko_writes
        if changed:
            notify(changed)
        return result

    async def put_if_version(
        self, put: Put, expect: int, guards: Sequence[Compare] = (), failure: Sequence[Op] = ()
    ) -> TxnResult:
        return await self.txn(put_if_compares(put.key, expect, guards), [put], failure)

    async def purge_expired(self, prefix: str, before: float) -> int:
        await point(f"purge {prefix}*", footprint=None)
        doomed = [
            r.key for r in self.memory.scan(prefix) if r.expires is not None and r.expires < before
        ]
        count = self.memory.purge_expired(prefix, before)
        if doomed:
            notify(doomed)
        return count

    # -- waiting -------------------------------------------------------------------

    async def wait(
        self, keys: Sequence[str], prefixes: Sequence[str], since: int, timeout: float | None
    ) -> int:
        """Block until a record in ``keys`` or under ``prefixes`` changes after
        ``since``, or ``timeout`` virtual seconds pass; returns the revision."""
        fp = Footprint(reads=frozenset(keys), prefixes=frozenset(prefixes))
        await point("wait " + ", ".join([*keys, *(p + "*" for p in prefixes)]), footprint=fp)
        # No scheduling point between this check and the wait below, so no
        # commit can slip in between: a change is never missed.
        if self.memory._changed(keys, prefixes, since):
            return self.memory.revision()
        if timeout is not None and timeout <= 0:
            return self.memory.revision()
        me = current_agent()
        waiter = me.name if me is not None else ""

        def holders() -> list[str]:
            now = self.memory.now()
            out = []
            for key in keys:
                rec = self.memory.get(key)
                if rec is None or rec.deleted or not rec.author or rec.author == waiter:
                    continue
                if rec.expires is not None and rec.expires <= now:
                    continue
                out.append(rec.author)
            return out

        await wait_for(
            keys,
            prefixes=prefixes,
            timeout=timeout,
            label="wait for " + ", ".join([*keys, *(p + "*" for p in prefixes)]),
            holders=holders,
        )
        return self.memory.revision()

    # -- the rest ------------------------------------------------------------------

    def events(self) -> list[dict[str, Any]]:
        """Every history event, oldest first, without a scheduling point."""
        return list(self.memory.history())

    async def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"<ExplorerBackend revision={self.memory.revision()}>"
