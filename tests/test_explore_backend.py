"""The explorer's store backend: accord's memory backend under the scheduler.

Agents call the backend's async operations directly (the async store API
that will sit on top of it is another issue): every operation is a
scheduling point, TTLs lapse in virtual time, waits are woken by commits.
"""

from __future__ import annotations

from typing import Any

import accord
from accord.explorer import EPOCH, World, explore
from accord.explorer._backend import ExplorerBackend
from accord.records import Compare, Delete, Put


def backend(world: World) -> ExplorerBackend:
    return ExplorerBackend(world.scheduler)


def put(key: str, text: str, author: str, ttl: float | None = None, event: Any = None) -> Put:
    return Put(key, "text", text.encode(), author=author, ttl=ttl, event=event)


async def blind_or_checked(world: World, checked: bool) -> None:
    store = backend(world)
    await store.txn([], [put("doc", "", "setup")])

    async def agent(name: str, line: str) -> None:
        while True:
            rec = await store.get("doc")
            assert rec is not None
            await accord.think(30)
            compares = [Compare("doc", "version", "==", rec.version)] if checked else []
            result = await store.txn(compares, [put("doc", rec.value + line, name)])
            if result.succeeded:
                return

    world.spawn("agent-a", agent("agent-a", "A"))
    world.spawn("agent-b", agent("agent-b", "B"))
    await world.join()
    final = store.memory.get("doc")
    assert final is not None and sorted(final.value) == ["A", "B"], final.value


async def blind(world: World) -> None:
    await blind_or_checked(world, False)


async def checked(world: World) -> None:
    await blind_or_checked(world, True)


def test_blind_writes_lose_an_update_and_version_checks_do_not() -> None:
    for seed in range(20):
        assert explore(blind, schedules=100, seed=seed, store=None).failure is not None
    assert explore(checked, schedules=1000, seed=1, store=None).ok
    full = explore(checked, strategy="exhaustive", preemptions=None, store=None)
    assert full.ok and full.exhausted


def test_a_lease_lapses_in_virtual_time_and_the_waiter_takes_it() -> None:
    """Two agents take a 30 s lease record in turn; neither releases it. Whoever comes
    second waits out the first one's TTL, in virtual time, then takes it."""
    got: dict[str, float] = {}

    async def workflow(world: World) -> None:
        store = backend(world)
        key = ".accord/lease/doc"

        async def agent(name: str, think: float) -> None:
            while True:
                mine = Compare(key, "holder", "==", name)
                result = await store.txn([mine], [put(key, "", name, ttl=30)])
                if result.succeeded:
                    got[name] = world.clock.monotonic()
                    break
                rec = result.records[key]
                assert rec is not None and rec.expires is not None
                await store.wait([key], [], result.revision, rec.expires - await store.now())
            await accord.think(think)

        world.spawn("holder", agent("holder", 3600))
        world.spawn("waiter", agent("waiter", 0))
        await world.join()

    seen = set()
    for seed in range(10):
        got.clear()
        result = explore(workflow, schedules=1, seed=seed, store=None, keep_runs=True)
        assert result.ok, result.report()
        assert sorted(got.values()) == [0.0, 30.0]
        seen.add(min(got, key=lambda n: got[n]))
        assert result.runs[0].time == (3600.0 if got["holder"] == 0.0 else 3630.0)
    assert seen == {"holder", "waiter"}


def test_a_commit_wakes_the_agents_waiting_on_its_keys() -> None:
    async def workflow(world: World) -> float:
        store = backend(world)
        woke: list[float] = []

        async def waiter() -> None:
            rev = await store.revision()
            while (await store.get("jobs/1")) is None:
                rev = await store.wait([], ["jobs/"], rev, None)
            woke.append(world.clock.monotonic())

        async def producer() -> None:
            await accord.think(12)
            await store.txn([], [put("other", "x", "producer")])
            await store.txn([], [put("jobs/1", "x", "producer")])

        world.spawn("waiter", waiter())
        world.spawn("producer", producer())
        await world.join()
        assert woke == [12.0]
        return woke[0]

    result = explore(workflow, schedules=200, seed=3, store=None)
    assert result.ok, result.report()
    exhaustive = explore(workflow, strategy="exhaustive", preemptions=None, store=None)
    assert exhaustive.ok and exhaustive.exhausted


def test_waiting_on_each_others_records_is_a_deadlock_with_the_cycle() -> None:
    async def workflow(world: World) -> None:
        store = backend(world)

        async def agent(name: str, first: str, second: str) -> None:
            for key in (first, second):
                while True:
                    free = Compare(key, "holder", "==", name)
                    result = await store.txn([free], [put(key, "", name)])
                    if result.succeeded:
                        break
                    await store.wait([key], [], result.revision, None)
            for key in (second, first):
                await store.txn([], [Delete(key, author=name)])

        world.spawn("agent-a", agent("agent-a", "lock/1", "lock/2"))
        world.spawn("agent-b", agent("agent-b", "lock/2", "lock/1"))
        await world.join()

    result = explore(workflow, strategy="exhaustive", store=None)
    failure = result.failure
    assert failure is not None and failure.kind == "deadlock"
    assert failure.deadlock is not None
    assert failure.deadlock.cycle in (
        ("agent-a", "agent-b", "agent-a"),
        ("agent-b", "agent-a", "agent-b"),
    )


def test_a_holder_that_finished_without_releasing_is_named() -> None:
    async def workflow(world: World) -> None:
        store = backend(world)

        async def taker() -> None:
            await store.txn([], [put("lock", "", "taker")])

        async def waiter() -> None:
            await accord.think(1)
            while True:
                result = await store.txn(
                    [Compare("lock", "holder", "==", "waiter")], [put("lock", "", "waiter")]
                )
                if result.succeeded:
                    return
                await store.wait(["lock"], [], result.revision, None)

        world.spawn("taker", taker())
        world.spawn("waiter", waiter())
        await world.join()

    failure = explore(workflow, schedules=1, store=None).failure
    assert failure is not None and failure.kind == "deadlock"
    assert "waiter waits for wait for lock, held by taker (finished)" in failure.message


def test_operations_on_different_keys_are_explored_once() -> None:
    async def workflow(world: World) -> None:
        store = backend(world)

        async def agent(key: str) -> None:
            rec = await store.get(key)
            assert rec is None
            await store.txn([Compare(key, "version", "==", 0)], [put(key, "v", key)])

        for key in ("x", "y", "z"):
            world.spawn(key, agent(key))
        await world.join()

    result = explore(workflow, strategy="exhaustive", preemptions=None, store=None)
    assert result.ok and result.exhausted and result.schedules == 1


def test_history_times_are_virtual_and_the_same_in_every_replay() -> None:
    histories: list[list[dict[str, Any]]] = []

    async def workflow(world: World) -> None:
        store = backend(world)

        async def agent(name: str) -> None:
            await accord.think(1.5 if name == "a" else 2)
            event = {"agent": name, "op": "write", "key": "doc"}
            await store.txn([], [put("doc", name, name, event=event)])

        world.spawn("a", agent("a"))
        world.spawn("b", agent("b"))
        await world.join()
        histories.append(store.events())

    for _ in range(3):
        explore(workflow, schedules=1, seed=9, store=None)
    assert histories[0] == histories[1] == histories[2]
    times = [e["time"] for e in histories[0]]
    assert times == ["2026-01-01T00:00:01.500000Z", "2026-01-01T00:00:02.000000Z"]
    assert EPOCH == 1_767_225_600.0
