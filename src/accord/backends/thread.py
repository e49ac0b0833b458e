"""Any sync :class:`~accord.backends.base.Backend` as an ``AsyncBackend``.

SQLite (sqlite3 blocks) and the memory backend have no async driver: this
adapter runs each of their calls in a worker thread of its own pool, so the
event loop never blocks on them. A call that waits (``wait``) holds one
worker a slice at a time (:data:`WAIT_SLICE`), so waiters share the pool
with the calls they wait for.

``history`` and ``changes`` are read in pages, each page by one call in one
thread: a backend's cursor never moves between threads (the SQLite backend
keeps one connection per thread).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..records import Compare, Op, Put, Record, TxnResult
from .base import HISTORY_PAGE, AsyncBackend, Backend, LiveRow

T = TypeVar("T")

DEFAULT_WORKERS = 32
"""Worker threads per adapter: enough for many agents waiting at once."""

WAIT_SLICE = 0.05
"""Longest one worker spends in one piece of a ``wait`` (see :meth:`ThreadBackend.wait`)."""


class ThreadBackend(AsyncBackend):
    """Run a sync backend's calls in worker threads. ``sync`` is the backend.

    ``owns``: whether closing the adapter closes the backend too (the
    default). With ``owns=False`` the caller keeps the backend, open, and
    *must* close it itself: closing the adapter only stops its worker
    threads (what the framework adapters' async face of a sync store does).
    """

    def __init__(
        self, backend: Backend, *, owns: bool = True, max_workers: int = DEFAULT_WORKERS
    ) -> None:
        self.sync = backend
        self.url = backend.url
        self.owns = owns
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="accord-aio")
        # A clock that is only a function of this process (SQLite's, the
        # memory backend's) is read inline: a worker hop would cost more
        # than the reading, and a lease reads it on every turn.
        self._inline_clock = bool(getattr(backend, "clock_in_process", False))
        self._closed = False

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            # The backend is closed too: its own error says so, at once.
            return fn(*args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` (sync code over :attr:`sync`) in a worker thread."""
        return await self._run(fn, *args)

    async def get(self, key: str) -> Record | None:
        return await self._run(self.sync.get, key)

    async def scan(self, prefix: str, limit: int | None = None) -> list[Record]:
        return await self._run(self.sync.scan, prefix, limit)

    async def txn(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        return await self._run(self.sync.txn, compares, success, failure)

    async def put_if_version(
        self,
        put: Put,
        expect: int,
        guards: Sequence[Compare] = (),
        failure: Sequence[Op] = (),
    ) -> TxnResult:
        return await self._run(self.sync.put_if_version, put, expect, guards, failure)

    async def read_live(self, key: str) -> LiveRow | None:
        return await self._run(self.sync.read_live, key)

    async def history(
        self, since: int = 0, key: str | None = None, limit: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        seen = 0
        while True:
            want = HISTORY_PAGE if limit is None else min(HISTORY_PAGE, limit - seen)
            if want <= 0:
                return
            page = await self._run(_page, self.sync.history, since, key, want)
            for event in page:
                yield event
            if len(page) < want:
                return
            since = page[-1]["rev"]
            seen += len(page)

    async def changes(self, key: str) -> AsyncIterator[dict[str, Any]]:
        # Newest first, and readers usually stop early: small pages first,
        # each read from the start of a new iterator in one thread.
        start, size = 0, 32
        while True:
            page = await self._run(_slice, self.sync.changes, key, start, start + size)
            for event in page:
                yield event
            if len(page) < size:
                return
            start += size
            size *= 4

    async def revision(self) -> int:
        return await self._run(self.sync.revision)

    async def wait(
        self, keys: Sequence[str], prefixes: Sequence[str], since: int, timeout: float
    ) -> int:
        """The sync backend's ``wait``, in slices of :data:`WAIT_SLICE` seconds.

        Each slice holds a worker; between slices the worker is free. So more
        coroutines than workers may wait at once (50 agents in line for one
        lease, say) and the calls of the agent they wait for still get a
        worker within about a slice, instead of queueing behind whole waits.
        A slice that ends early saw a change (or failed): that ends the wait.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            piece = max(0.0, min(deadline - loop.time(), WAIT_SLICE))
            revision, took = await self._run(_timed_wait, self.sync, keys, prefixes, since, piece)
            if took < piece or loop.time() >= deadline:
                return revision

    async def now(self) -> float:
        if self._inline_clock:
            return self.sync.now()
        return await self._run(self.sync.now)

    async def purge_expired(self, prefix: str, before: float) -> int:
        return await self._run(self.sync.purge_expired, prefix, before)

    async def close(self) -> None:
        if self._closed:
            return
        try:
            if self.owns:
                await self._run(self.sync.close)
        finally:
            self._closed = True
            self._pool.shutdown(wait=False)

    def drop(self) -> None:
        """Close from outside the event loop (it is gone, or runs in another
        thread): stop the worker threads without waiting for calls in
        flight, and close the backend if the adapter owns it."""
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=False)
        if self.owns:
            self.sync.close()


def _page(
    history: Callable[..., Any], since: int, key: str | None, want: int
) -> list[dict[str, Any]]:
    return list(history(since=since, key=key, limit=want))


def _slice(changes: Callable[[str], Any], key: str, start: int, stop: int) -> list[dict[str, Any]]:
    return list(itertools.islice(changes(key), start, stop))


def _timed_wait(
    backend: Backend, keys: Sequence[str], prefixes: Sequence[str], since: int, timeout: float
) -> tuple[int, float]:
    """``backend.wait(...)`` and how long it took in the worker (not counting
    the time the call queued for one)."""
    started = time.monotonic()
    revision = backend.wait(keys, prefixes, since, timeout)
    return revision, time.monotonic() - started
