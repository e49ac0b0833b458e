"""The async face of a sync :class:`~accord.Store`, for the framework adapters.

:class:`AsyncTwin` opens an :class:`accord.aio.AsyncStore` over the same
store the first time async code asks for it, and shares the sync store's
sessions (each agent's clocks and what it has read), hooks, guards and
policy, so a framework that calls an adapter from both sync and async code
records one history per agent, as if one face had been used:

* PostgreSQL: a native :class:`~accord.backends.postgres_async.AsyncPostgresBackend`
  on the same URL (its own ``AsyncConnectionPool``; no worker thread);
* SQLite and memory: the thread-offload adapter over the very backend object
  of the sync store (a second ``memory://`` store would be another store).

The twin closes the sync store only when it owns it (``owns_store``: the
adapter opened it from a URL); :meth:`AsyncTwin.close` always closes what the
twin opened (the async pool, the worker threads).

A psycopg async pool belongs to the event loop it was opened on: when the
adapter is used from a new loop (``asyncio.run`` twice), the twin of the old
loop is dropped and a new one opened.
"""

from __future__ import annotations

import asyncio
import threading

from .aio import AsyncStore
from .backends.base import AsyncBackend
from .backends.thread import ThreadBackend
from .store import Store

__all__ = ["AsyncTwin"]


def _native(store: Store) -> bool:
    try:
        from .backends.postgres import PostgresBackend
    except ImportError:  # pragma: no cover - without psycopg
        return False
    return isinstance(store.backend, PostgresBackend)


class AsyncTwin:
    """The lazily opened async face of ``store`` (see the module docstring)."""

    def __init__(self, store: Store, *, owns_store: bool = False) -> None:
        self.store = store
        self.owns_store = owns_store
        """Whether :meth:`close` also closes ``store`` (the adapter opened it
        from a URL)."""
        self._astore: AsyncStore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._opening: tuple[asyncio.AbstractEventLoop, asyncio.Task[AsyncStore]] | None = None

    @property
    def native(self) -> bool:
        """True when the async face runs without worker threads (PostgreSQL)."""
        return _native(self.store)

    async def get(self) -> AsyncStore:
        """The async store for the running event loop, opened on first use
        (once: coroutines that ask while it opens wait for that one)."""
        loop = asyncio.get_running_loop()
        astore = self._astore
        if astore is not None and (self._loop is loop or not self.native):
            return astore
        with self._lock:
            opening = self._opening
            if opening is None or opening[0] is not loop:
                opening = self._opening = (loop, loop.create_task(self._install(loop)))
        return await asyncio.shield(opening[1])

    async def _install(self, loop: asyncio.AbstractEventLoop) -> AsyncStore:
        try:
            opened = await self._open()
        finally:
            with self._lock:
                self._opening = None
        with self._lock:
            old, self._astore, self._loop = self._astore, opened, loop
        if old is not None:
            # The twin of a previous event loop: its pool's connections
            # cannot be used (nor closed) from this one; its sync half can.
            await asyncio.to_thread(_drop, old)
        return opened

    async def _open(self) -> AsyncStore:
        store = self.store
        backend: AsyncBackend
        if self.native:
            from .backends.postgres_async import AsyncPostgresBackend

            backend = await AsyncPostgresBackend.open(store.backend.url)
        else:
            # The very backend object of the sync store, which stays open
            # when the twin closes.
            backend = ThreadBackend(store.backend, owns=False)
        # One set of sessions, hooks, guards and policy for both faces: the
        # async sessions are the sync store's sessions' twins.
        return AsyncStore(
            backend,
            max_value_size=store.max_value_size,
            record_reads=store.record_reads,
            idempotency_window=store.idempotency_window,
            twin=store,
        )

    async def aclose(self) -> None:
        """Close what the twin opened, and the sync store if it owns it."""
        with self._lock:
            astore, loop, self._astore, self._loop = self._astore, self._loop, None, None
        try:
            if astore is None:
                pass
            elif loop is asyncio.get_running_loop() or not self.native:
                await astore.close()
            else:
                await asyncio.to_thread(_drop, astore)
        finally:
            if self.owns_store:
                self.store.close()

    def close(self) -> None:
        """Close what the twin opened, and the sync store if it owns it; from
        sync code."""
        with self._lock:
            astore, loop, self._astore, self._loop = self._astore, self._loop, None, None
        try:
            if astore is None:
                pass
            elif loop is not None and not loop.is_closed() and not loop.is_running():
                loop.run_until_complete(astore.close())
            else:
                _drop(astore)
        finally:
            if self.owns_store:
                self.store.close()


def _drop(astore: AsyncStore) -> None:
    # Without its event loop: stop the worker threads, or close the
    # PostgreSQL twin's own sync backend (its async pool's connections go
    # with their loop).
    backend = astore.backend
    if isinstance(backend, ThreadBackend):
        backend.drop()
    else:
        from .backends.postgres_async import AsyncPostgresBackend

        assert isinstance(backend, AsyncPostgresBackend)
        backend.drop()
