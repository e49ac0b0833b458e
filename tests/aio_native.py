"""An async backend with no sync twin, for the async face's native path.

:class:`InlineMemoryBackend` answers the async backend contract from one
:class:`~accord.backends.memory.MemoryBackend`, inline on the event loop (a
dict never blocks), and names no ``.sync``: an ``AsyncStore`` over it runs
every primitive without a worker thread, as it does over the explorer's
backend. ``wait`` polls in the loop (a waiting lease's pauses).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from accord.backends.base import LiveRow
from accord.backends.memory import MemoryBackend
from accord.records import Compare, Op, Put, Record, TxnResult


class InlineMemoryBackend:
    """The async face of one memory backend, with no thread and no twin."""

    spans_processes = False
    spans_hosts = False

    def __init__(self, memory: MemoryBackend | None = None) -> None:
        self.memory = memory if memory is not None else MemoryBackend()
        self.url = self.memory.url
        self.calls = 0
        """How many backend calls were made (a test's sanity check)."""

    def _count(self) -> None:
        self.calls += 1

    async def get(self, key: str) -> Record | None:
        self._count()
        return self.memory.get(key)

    async def scan(self, prefix: str, limit: int | None = None) -> list[Record]:
        self._count()
        return self.memory.scan(prefix, limit)

    async def txn(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        self._count()
        return self.memory.txn(compares, success, failure)

    async def put_if_version(
        self, put: Put, expect: int, guards: Sequence[Compare] = (), failure: Sequence[Op] = ()
    ) -> TxnResult:
        self._count()
        return self.memory.put_if_version(put, expect, guards, failure)

    async def read_live(self, key: str) -> LiveRow | None:
        self._count()
        return self.memory.read_live(key)

    async def history(
        self, since: int = 0, key: str | None = None, limit: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        self._count()
        for event in list(self.memory.history(since, key, limit)):
            yield event

    async def changes(self, key: str) -> AsyncIterator[dict[str, Any]]:
        self._count()
        for event in list(self.memory.changes(key)):
            yield event

    async def revision(self) -> int:
        self._count()
        return self.memory.revision()

    async def now(self) -> float:
        return self.memory.now()

    async def purge_expired(self, prefix: str, before: float) -> int:
        self._count()
        return self.memory.purge_expired(prefix, before)

    async def wait(
        self, keys: Sequence[str], prefixes: Sequence[str], since: int, timeout: float | None
    ) -> int:
        """Until one of ``keys`` (or a key under ``prefixes``) changed after
        revision ``since``, or ``timeout`` seconds passed: in the loop, no
        thread. It looks, then lets the loop run for a millisecond, and looks
        again (the writers may be on this loop; a test backend may poll)."""
        self._count()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        memory = self.memory
        while True:
            with memory._cond:
                if memory._changed(keys, prefixes, since):
                    return memory._revision
                revision = memory._revision
            if deadline is not None and loop.time() >= deadline:
                return revision
            await asyncio.sleep(0.001)

    async def close(self) -> None:
        self.memory.close()


def inline_memory(clock: Callable[[], float] | None = None) -> InlineMemoryBackend:
    return InlineMemoryBackend(MemoryBackend(clock=clock))
