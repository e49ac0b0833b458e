"""The queue and branches on the async face run natively: no thread per waiter.

50 coroutines on one event loop each ``await request.wait()`` while one
writer (a coroutine on the same loop) serves them. On PostgreSQL every wait
is the ``LISTEN`` task on the loop, so the process's thread count does not
move; on SQLite each wait holds a worker of the store's own thread pool for
at most a second at a time, so the count stays within that pool. Every wait
is bounded; the waiters are counted into their waits through the backend's
own ``wait`` (instrumented), not by sleeping.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest

import accord
from accord import aio
from accord.backends.postgres_async import AsyncPostgresBackend
from accord.backends.thread import DEFAULT_WORKERS, ThreadBackend
from accord.strategies import queue

from .conftest import _postgres_schema_url, require_postgres

BOUND = 60.0
"""Longest any wait here may take (a hang fails, it does not hang)."""

WAITERS = 50


class CountedWaits:
    """Wraps a store's backend ``wait``: records which request records are
    waited on, and the largest thread count seen while a wait begins."""

    def __init__(self, store: aio.AsyncStore) -> None:
        self.backend = store.backend
        self.original = self.backend.wait
        self.waited: set[str] = set()
        self.all_waiting = asyncio.Event()
        self.peak_threads = threading.active_count()
        self.backend.wait = self._wait  # type: ignore[method-assign]

    async def _wait(
        self, keys: Sequence[str], prefixes: Sequence[str], since: int, timeout: float
    ) -> int:
        self.peak_threads = max(self.peak_threads, threading.active_count())
        for key in keys:
            if key.startswith(".accord/request/"):
                self.waited.add(key)
        if len(self.waited) >= WAITERS:
            self.all_waiting.set()
        result: int = await self.original(keys, prefixes, since, timeout)
        return result


async def _fifty_waiters(store: aio.AsyncStore) -> tuple[int, int, CountedWaits]:
    """Submit 50 requests, wait on all of them, then serve: (threads before, peak, waits)."""
    agents = [store.session(f"agent-{i}") for i in range(WAITERS)]
    requests = [await s.submit("draft", f"[{i}]") for i, s in enumerate(agents)]
    assert all(isinstance(r, aio.AsyncRequest) and isinstance(r, accord.Request) for r in requests)
    # The store's own worker threads (SQLite) start with its first calls;
    # count from here, once the store is open and in use.
    threads_before = threading.active_count()
    counted = CountedWaits(store)
    waits = [asyncio.create_task(r.wait(timeout=BOUND)) for r in requests]
    async with asyncio.timeout(BOUND):
        await counted.all_waiting.wait()
    assert not any(w.done() for w in waits)  # nobody decided them yet
    writer = store.session("author")
    stop = asyncio.Event()
    serving = asyncio.create_task(
        writer.serve("draft", lambda value, change: (value or "") + change, stop=stop)
    )
    async with asyncio.timeout(BOUND):
        decided = await asyncio.gather(*waits)
    stop.set()
    async with asyncio.timeout(BOUND):
        served = await serving
    assert served == WAITERS
    assert all(d.accepted for d in decided)
    assert sorted(d.outcome.version for d in decided) == list(range(1, WAITERS + 1))
    final = await agents[0].read("draft")
    assert sorted(final.value.replace("]", "] ").split()) == sorted(
        f"[{i}]" for i in range(WAITERS)
    )
    assert await queue_pending(store) == []
    return threads_before, counted.peak_threads, counted


async def queue_pending(store: aio.AsyncStore) -> list[Any]:
    from accord.strategies import _queue_async

    return await _queue_async.pending(store, "draft")


def test_50_coroutines_wait_on_postgres_without_a_thread_each() -> None:
    require_postgres()
    url, drop = _postgres_schema_url()
    try:

        async def main() -> None:
            async with await aio.open(url) as store:
                assert isinstance(store.backend, AsyncPostgresBackend)
                before, peak, _ = await _fifty_waiters(store)
                # 50 waiters and a writer, and not one thread more.
                assert peak <= before, (before, peak)
                assert threading.active_count() <= before

        asyncio.run(main())
    finally:
        drop()


def test_50_coroutines_wait_on_sqlite_within_the_store_pool(sqlite_url: str) -> None:
    async def main() -> None:
        async with await aio.open(sqlite_url) as store:
            assert isinstance(store.backend, ThreadBackend)
            await store.revision()  # the pool's first worker
            before, peak, _ = await _fifty_waiters(store)
            # The waits hold workers of the store's pool, never more.
            assert peak <= before + DEFAULT_WORKERS, (before, peak)

    asyncio.run(main())


def test_a_cancelled_serve_releases_the_role(sqlite_url: str) -> None:
    async def main() -> None:
        async with await aio.open(sqlite_url) as store:
            writer = store.session("author")
            served = asyncio.create_task(writer.serve("draft", lambda v, c: c))
            async with asyncio.timeout(BOUND):
                while (await _queue_async_writer(store)) is None:
                    await asyncio.sleep(0.01)
            served.cancel()
            with pytest.raises(asyncio.CancelledError):
                await served
            role = await _queue_async_writer(store)
            assert role is not None and not role["live"]
            # Another writer takes over at once.
            other = store.session("other")
            request = await store.session("critic").submit("draft", "x")
            taken = await other.requests("draft", timeout=0)
            async for step in taken:
                await other.accept(step, "x")
            assert (await request.wait(timeout=BOUND)).accepted

    asyncio.run(main())


async def _queue_async_writer(store: aio.AsyncStore) -> dict[str, Any] | None:
    from accord.strategies import _queue_async

    return await _queue_async.writer_of(store, "draft")


def test_the_sync_module_functions_take_a_sync_store(sqlite_url: str) -> None:
    # The generated sync module and the async source hold the same records.
    with accord.open(sqlite_url) as sync_store:
        request = sync_store.session("critic").submit("draft", "x")
        assert queue.get_request(sync_store, request.id) == request


def test_an_async_writer_serves_sync_submitters(sqlite_url: str) -> None:
    """The other way round from tests/test_aio.py: sync agents submit and wait
    in threads, a coroutine serves them; one store file, both faces."""
    with accord.open(sqlite_url) as sync_store:
        requests = [sync_store.session(f"agent-{i}").submit("draft", f"[{i}]") for i in range(5)]
        decided: list[accord.Request] = []
        waiters = [
            threading.Thread(target=lambda r=r: decided.append(r.wait(timeout=BOUND)))
            for r in requests
        ]
        for waiter in waiters:
            waiter.start()

        async def main() -> None:
            async with await aio.open(sqlite_url) as store:
                writer = store.session("author")
                served = await writer.serve(
                    "draft", lambda value, change: (value or "") + change, timeout=0
                )
                assert served == 5

        asyncio.run(main())
        for waiter in waiters:
            waiter.join(BOUND)
        assert sorted(d.id for d in decided) == sorted(r.id for r in requests)
        assert all(d.accepted and type(d) is accord.Request for d in decided)
        assert sync_store.session("reader").read("draft").value == "[0][1][2][3][4]"
