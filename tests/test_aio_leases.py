"""Leases are native on the async face: a waiting coroutine holds no thread.

50 coroutines on one event loop wait in line for one lease, on a SQLite file
and on the real PostgreSQL server. Each is served in turn (grants in ticket
order), each adds 1 to a counter under its lease, and the process runs no
more threads while they wait than before: on PostgreSQL not one more (the
waits are the backend's ``LISTEN`` task on the loop); on SQLite at most the
thread-offload adapter's own pool (sqlite3 blocks, so each store call runs
in one of its workers, which is shared and bounded, not one per waiter).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from accord import aio
from accord.backends.postgres_async import AsyncPostgresBackend
from accord.backends.thread import DEFAULT_WORKERS, ThreadBackend
from accord.strategies import _lease_async as alease

from .conftest import _postgres_schema_url, require_postgres

BOUND = 60.0
"""Longest any wait here may take (a hang fails, it does not hang)."""

WAITERS = 50


async def _until_in_line(store: aio.AsyncStore, count: int, peak: list[int]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    while len((await alease.status(store, "doc")).waiters) < count:
        peak.append(threading.active_count())
        if loop.time() > deadline:
            raise AssertionError(f"{count} waiters did not get in line within {BOUND} s")
        await asyncio.sleep(0.01)


async def _fifty_wait_for_one_lease(store: aio.AsyncStore) -> tuple[int, int]:
    """Run the line; returns (threads before the waiters came, most threads seen after)."""
    agents = [store.session(f"agent-{i}") for i in range(WAITERS)]
    holder = store.session("holder")
    await holder.write("doc", 0)
    # Each agent's clocks continue from the store at its first event (a read
    # of the store made once per session, before the lease work starts).
    for i, agent in enumerate(agents):
        await agent.write(f"own/{i}", 0)
    held = await holder.acquire("doc", ttl=30)
    before = threading.active_count()
    peak: list[int] = [before]
    tickets: list[int | None] = []

    async def wait_in_line(i: int) -> None:
        session = agents[i]
        async with session.lease("doc", ttl=30, wait=BOUND) as lease:
            peak.append(threading.active_count())
            tickets.append(lease.ticket)
            doc = await session.read("doc")
            await session.write("doc", doc.value + 1, lease=lease)

    tasks = [asyncio.create_task(wait_in_line(i)) for i in range(WAITERS)]
    await _until_in_line(store, WAITERS, peak)
    await held.release()
    await asyncio.wait_for(asyncio.gather(*tasks), BOUND)
    peak.append(threading.active_count())

    assert (await holder.read("doc")).value == WAITERS
    # Served in turn: first come (lowest ticket), first served.
    assert len(tickets) == WAITERS and None not in tickets
    assert tickets == sorted(tickets)
    status = await alease.status(store, "doc")
    assert status.holders == [] and status.waiters == []
    return before, max(peak)


def test_fifty_coroutines_wait_for_one_lease_on_sqlite_in_the_adapters_pool(
    tmp_path: Path,
) -> None:
    async def main() -> tuple[int, int]:
        async with await aio.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
            assert isinstance(store.backend, ThreadBackend)
            return await _fifty_wait_for_one_lease(store)

    before, peak = asyncio.run(main())
    assert peak - before <= DEFAULT_WORKERS, (before, peak)


def test_fifty_coroutines_wait_for_one_lease_on_postgres_with_no_thread() -> None:
    require_postgres()
    url, drop = _postgres_schema_url()

    async def main() -> tuple[int, int]:
        async with await aio.open(url) as store:
            assert isinstance(store.backend, AsyncPostgresBackend)
            return await _fifty_wait_for_one_lease(store)

    try:
        before, peak = asyncio.run(main())
    finally:
        drop()
    assert peak == before, (before, peak)


@pytest.mark.parametrize("twice", [False, True])
def test_a_cancelled_lease_all_holds_nothing(tmp_path: Path, twice: bool) -> None:
    """Cancelling ``lease_all`` while it waits for its second key releases the first."""

    async def main() -> None:
        async with await aio.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
            holder, taker = store.session("holder"), store.session("taker")
            held = await holder.acquire("b", ttl=30)
            task = asyncio.create_task(taker.lease_all(["a", "b"], ttl=30, wait=BOUND))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + BOUND
            while not (await alease.status(store, "b")).waiters:
                assert loop.time() < deadline, "the lease_all never got in line for b"
                await asyncio.sleep(0.01)
            task.cancel()
            if twice:
                task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for key in ("a", "b"):
                status = await alease.status(store, key)
                assert status.waiters == []
                assert [h.agent for h in status.holders] == (["holder"] if key == "b" else [])
            await held.release()

    asyncio.run(main())


def test_keepalive_on_the_async_face_is_a_task_not_a_thread(tmp_path: Path) -> None:
    async def main() -> None:
        async with await aio.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
            session = store.session("agent")
            lease = await session.acquire("doc", ttl=0.3, keepalive=True)
            assert lease.keepalive
            assert not any(t.name.startswith("accord-keepalive") for t in threading.enumerate())
            first = lease.expires
            loop = asyncio.get_running_loop()
            deadline = loop.time() + BOUND
            # The task renews every ttl/3: the deadline moves on by itself.
            while lease.expires == first:
                assert loop.time() < deadline, "keepalive never renewed"
                await asyncio.sleep(0.02)
            await lease.ensure_held()
            await lease.release()
            assert not lease.keepalive
            assert not await lease.held()

    asyncio.run(main())
