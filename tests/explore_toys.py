"""Toy workflows for the explorer's own tests.

The agents share plain Python state and mark every access to it with a
scheduling point (``point``), so these tests need nothing from accord's
store. No real time anywhere: ``think`` and ``wait_for`` timeouts are
virtual.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import accord
from accord.explorer import World, notify, point, wait_for


class Shared:
    """A dict of values with a version each: the toy store."""

    def __init__(self, **values: Any) -> None:
        self.values: dict[str, Any] = dict(values)
        self.versions: dict[str, int] = dict.fromkeys(values, 1)

    async def read(self, key: str) -> tuple[Any, int]:
        await point(f"read {key}", reads={key})
        return self.values.get(key), self.versions.get(key, 0)

    async def write(self, key: str, value: Any, expect: int | None = None) -> bool:
        await point(f"write {key}", writes={key})
        if expect is not None and self.versions.get(key, 0) != expect:
            return False
        self.values[key] = value
        self.versions[key] = self.versions.get(key, 0) + 1
        return True


class ToyLock:
    """A lock whose waiters block in ``wait_for`` and name the holder."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.owner: str | None = None

    async def acquire(self, me: str, timeout: float | None = None) -> bool:
        while True:
            await point(f"acquire {self.key}", writes={self.key})
            if self.owner is None:
                self.owner = me
                return True
            woken = await wait_for(
                [self.key], timeout=timeout, label=f"lock {self.key}", holders=self.holders
            )
            if not woken:
                return False

    def holders(self) -> Iterable[str]:
        return [self.owner] if self.owner else []

    async def release(self) -> None:
        await point(f"release {self.key}", writes={self.key})
        self.owner = None
        notify([self.key])


async def lost_update(world: World) -> None:
    """The seed's picture: read, think, write back without checking."""
    doc = Shared(doc="")

    async def agent(line: str) -> None:
        text, _ = await doc.read("doc")
        await accord.think(30)
        await doc.write("doc", text + line)

    world.spawn("agent-a", agent("A"))
    world.spawn("agent-b", agent("B"))
    await world.join()
    assert "A" in doc.values["doc"] and "B" in doc.values["doc"], doc.values


async def lost_update_no_think(world: World) -> None:
    """The lost update without a pause: only a preemption between read and write
    loses the update."""
    doc = Shared(doc="")

    async def agent(line: str) -> None:
        text, _ = await doc.read("doc")
        await doc.write("doc", text + line)

    world.spawn("agent-a", agent("A"))
    world.spawn("agent-b", agent("B"))
    await world.join()
    assert "A" in doc.values["doc"] and "B" in doc.values["doc"], doc.values


async def optimistic_update(world: World) -> None:
    """Read, think, write with expect, retry on conflict: never loses an update."""
    doc = Shared(doc="")

    async def agent(line: str) -> None:
        while True:
            text, version = await doc.read("doc")
            await accord.think(30)
            if await doc.write("doc", text + line, expect=version):
                return

    world.spawn("agent-a", agent("A"))
    world.spawn("agent-b", agent("B"))
    await world.join()
    assert sorted(doc.values["doc"]) == ["A", "B"], doc.values


async def locked_update(world: World) -> None:
    """The update under a lock: never loses an update."""
    doc = Shared(doc="")
    lock = ToyLock("doc-lock")

    async def agent(name: str, line: str) -> None:
        await lock.acquire(name)
        try:
            text, _ = await doc.read("doc")
            await accord.think(30)
            await doc.write("doc", text + line)
        finally:
            await lock.release()

    world.spawn("agent-a", agent("agent-a", "A"))
    world.spawn("agent-b", agent("agent-b", "B"))
    await world.join()
    assert sorted(doc.values["doc"]) == ["A", "B"], doc.values


async def opposite_locks(world: World) -> None:
    """Two agents take two locks in opposite orders: a deadlock in some schedules."""
    first, second = ToyLock("lock-1"), ToyLock("lock-2")

    async def agent(name: str, a: ToyLock, b: ToyLock) -> None:
        await a.acquire(name)
        await b.acquire(name)
        await b.release()
        await a.release()

    world.spawn("agent-a", agent("agent-a", first, second))
    world.spawn("agent-b", agent("agent-b", second, first))
    await world.join()


async def ttl_lease(world: World) -> None:
    """A lease with a 30 s TTL on the virtual clock; the holder's model call takes
    5 s or 60 s (``think(5, up_to=60)``) and it writes without checking that it
    still holds the lease. Planted bug: two holders write in overlapping terms."""
    lease: dict[str, Any] = {"holder": None, "expires": 0.0, "token": 0}
    writes: list[tuple[str, int]] = []

    async def agent(name: str) -> None:
        while True:
            await point("acquire lease", writes={"lease"})
            now = world.clock.monotonic()
            if lease["holder"] is None or lease["expires"] <= now:
                lease.update(holder=name, expires=now + 30, token=lease["token"] + 1)
                token = lease["token"]
                break
            await wait_for(["lease"], timeout=lease["expires"] - now, label="lease")
        await accord.think(5, up_to=60)
        await point("write doc", writes={"doc"})
        writes.append((name, token))
        assert token == lease["token"], (
            f"{name} wrote with lease token {token}, but token {lease['token']} is live"
        )
        await point("release lease", writes={"lease"})
        if lease["holder"] == name and lease["token"] == token:
            lease["holder"] = None
            notify(["lease"])

    world.spawn("agent-a", agent("agent-a"))
    world.spawn("agent-b", agent("agent-b"))
    await world.join()


async def spinner(world: World) -> None:
    """An agent that never finishes (each turn is a point): a livelock."""

    async def spin() -> None:
        while True:
            await point("spin", reads={"nothing"})

    world.spawn("spinner", spin())
    await world.join()


async def independent_keys(world: World) -> None:
    """Each agent works on its own key: every order is equivalent."""
    data = Shared(x=0, y=0, z=0)

    async def agent(key: str) -> None:
        value, _ = await data.read(key)
        await data.write(key, value + 1)

    for key in ("x", "y", "z"):
        world.spawn(f"agent-{key}", agent(key))
    await world.join()
    assert data.values == {"x": 1, "y": 1, "z": 1}


@accord.explores(schedules=200, seed=7)
async def test_decorated_lost_update(world: World) -> None:
    """A decorated exploration the CLI can run too."""
    await lost_update(world)
