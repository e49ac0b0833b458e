"""Workflows over the explorer's store (``world.store``): the seed's picture and its cures.

Two agents read a document, think (a model call), and write it back. Blind
writes (``force=True``) lose an update in some schedule; ``write(expect=)``
with a retry, ``update()``, a lease, the queue and branches do not, in any.
A planted write skew (each agent reads two keys and writes one) breaks an
invariant no single key shows. Used by tests/test_explore_store.py, the CLI
tests (``accord explore tests/explore_store_flows.py:blind``) and
bench/bench_explore.py. No real time anywhere: ``think`` is virtual.
"""

from __future__ import annotations

import contextlib
from typing import Any

import accord
from accord.aio import AsyncSession
from accord.explorer import World

DOC = "docs/plan.md"


async def _setup(world: World, **values: Any) -> AsyncSession:
    setup = world.store.session("setup")
    for key, value in values.items():
        await setup.write(key, value)
    return setup


async def _two(world: World, agent: Any) -> None:
    await world.run({"agent-a": agent, "agent-b": agent})


async def _final(setup: AsyncSession, key: str = DOC) -> Any:
    return (await setup.read(key)).value


# --- the seed's picture ----------------------------------------------------------------


async def blind(world: World) -> None:
    """Read, think, write blind: the checker finds the lost update in the history."""
    await _setup(world, **{DOC: 0})

    async def agent(s: AsyncSession) -> None:
        doc = await s.read(DOC)
        await accord.think()
        await s.write(DOC, doc.value + 1, force=True)

    await _two(world, agent)


async def expect_retry(world: World) -> None:
    """Read, think, write with ``expect``; on a Conflict, read again."""
    setup = await _setup(world, **{DOC: 0})

    async def agent(s: AsyncSession) -> None:
        while True:
            doc = await s.read(DOC)
            await accord.think()
            try:
                await s.write(DOC, doc.value + 1, expect=doc.version)
                return
            except accord.Conflict:
                continue

    await _two(world, agent)
    assert await _final(setup) == 2


async def updated(world: World) -> None:
    """Think, then ``update()`` (read, compute, write with expect, back off, retry)."""
    setup = await _setup(world, **{DOC: 0})

    async def agent(s: AsyncSession) -> None:
        await accord.think()
        await s.update(DOC, lambda n: n + 1)

    await _two(world, agent)
    assert await _final(setup) == 2


async def leased(world: World) -> None:
    """Under a lease: read, think, write with the lease (fenced), release."""
    setup = await _setup(world, **{DOC: 0})

    async def agent(s: AsyncSession) -> None:
        async with s.lease(DOC, ttl=30, wait=120) as lease:
            doc = await s.read(DOC)
            await accord.think()
            await s.write(DOC, doc.value + 1, lease=lease)

    await _two(world, agent)
    assert await _final(setup) == 2


async def queued(world: World) -> None:
    """Through the queue: each agent submits its change; one writer applies them."""
    setup = await _setup(world, **{DOC: 0})

    async def submitter(s: AsyncSession) -> None:
        await accord.think()
        request = await s.submit(DOC, 1)
        decided = await request.wait(timeout=120)
        assert decided.accepted, decided

    async def writer(s: AsyncSession) -> None:
        assert await s.serve(DOC, lambda value, change: value + change, limit=2) == 2

    await world.run({"agent-a": submitter, "agent-b": submitter, "writer": writer})
    assert await _final(setup) == 2


async def branched(world: World) -> None:
    """On branches: each agent edits its own part of a JSON document on a
    branch; the merge keeps both (JSON merges by path)."""
    store = world.store
    setup = await _setup(world, **{DOC: {"agent-a": None, "agent-b": None}})
    forks: dict[str, Any] = {}

    async def agent(s: AsyncSession) -> None:
        branch = await s.fork(DOC)
        forks[s.agent] = branch
        draft = dict(await branch.read())
        await accord.think()
        draft[s.agent] = f"section by {s.agent}"
        await branch.write(draft)

    await _two(world, agent)
    merged = await store.merge(DOC, [forks["agent-a"], forks["agent-b"]], agent="setup")
    await merged.commit()
    assert await _final(setup) == {
        "agent-a": "section by agent-a",
        "agent-b": "section by agent-b",
    }


async def blind_sections(world: World) -> None:
    """The branches' workflow without branches: each agent reads the
    document, thinks, writes it back with its section, blind."""
    setup = await _setup(world, **{DOC: {"agent-a": None, "agent-b": None}})

    async def agent(s: AsyncSession) -> None:
        doc = await s.read(DOC)
        draft = dict(doc.value)
        await accord.think()
        draft[s.agent] = f"section by {s.agent}"
        await s.write(DOC, draft, force=True)

    await _two(world, agent)
    final = await _final(setup)
    assert None not in final.values(), f"a section was lost: {final}"


# --- leases done wrong -----------------------------------------------------------------------


async def fenced_bug(world: World) -> None:
    """The holder pauses past its TTL (a 31 s model call on a 30 s lease),
    then writes without the lease (blind): the planted fenced-write bug."""
    setup = await _setup(world, **{DOC: 0})

    async def agent(s: AsyncSession) -> None:
        lease = await s.acquire(DOC, ttl=30, wait=120)
        doc = await s.read(DOC)
        await accord.think(31)
        await s.write(DOC, doc.value + 1, force=True)  # the bug: no lease=, no expect=
        with contextlib.suppress(accord.LeaseLost):
            await lease.release()

    await _two(world, agent)
    assert await _final(setup) == 2


async def opposite_order(world: World) -> None:
    """Two agents take two leases in opposite order (without lease_all)."""
    await _setup(world, x=0, y=0)

    def agent(first: str, second: str) -> Any:
        async def run(s: AsyncSession) -> None:
            async with s.lease(first, ttl=300, wait=120) as one:
                await accord.think()
                async with s.lease(second, ttl=300, wait=120) as two:
                    for key, lease in ((first, one), (second, two)):
                        doc = await s.read(key)
                        await s.write(key, doc.value + 1, lease=lease)

        return run

    await world.run({"agent-a": agent("x", "y"), "agent-b": agent("y", "x")})


# --- write skew ----------------------------------------------------------------------------


async def write_skew(world: World) -> None:
    """Two doctors on call; each goes off call if the other still is.

    Each reads both keys and writes its own with ``expect``: no update is
    lost (different keys), yet both may go off call. Only the invariant
    (at least one on call) sees it.
    """
    setup = await _setup(world, **{"oncall/alice": 1, "oncall/bob": 1})

    def doctor(me: str, other: str) -> Any:
        async def agent(s: AsyncSession) -> None:
            mine = await s.read(f"oncall/{me}")
            theirs = await s.read(f"oncall/{other}")
            await accord.think()
            if mine.value + theirs.value >= 2:
                await s.write(f"oncall/{me}", 0, expect=mine.version)

        return agent

    await world.run({"alice": doctor("alice", "bob"), "bob": doctor("bob", "alice")})
    total = await _final(setup, "oncall/alice") + await _final(setup, "oncall/bob")
    assert total >= 1, "nobody is on call"


# --- the speed benchmark's workflow ----------------------------------------------------------


async def ten_ops(world: World) -> None:
    """2 agents x 10 store operations (5 updates of their own key and a shared one)."""
    store = world.store

    async def agent(s: AsyncSession) -> None:
        for i in range(5):
            await s.write(f"own/{s.agent}/{i}", i)
            await s.read(f"own/{s.agent}/{i}")

    await world.run({"agent-a": agent, "agent-b": agent})
    assert len(await store.session("check").scan("own/")) == 10
