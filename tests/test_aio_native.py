"""An AsyncStore over an async backend with no sync twin: everything in the loop.

The explorer's store is such a store: its backend is async alone, so the
store cannot hand anything to a worker thread (threads and real time would
break a deterministic schedule). Here, on ``tests/aio_native.py``'s inline
memory backend: the primitives run with ``asyncio.to_thread`` forbidden;
the agent clocks resume from the store with awaited reads; ``update()``
sleeps through ``store.sleep`` and jitters through ``store.random``; hooks
and guard explanations may be coroutine functions, awaited with the async
session; a strategy that still needs a twin refuses with a UsageError
naming it. The same rules on a store with a twin (SQLite, a real file).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import accord
from accord import aio
from accord._core.write import Guards, Operation
from accord.backends.memory import MemoryBackend
from accord.backends.sqlite import SQLiteBackend
from accord.backends.thread import ThreadBackend
from accord.clock import CHECKPOINT_KEY, agent_clock_key
from accord.records import Compare, TxnResult
from accord.store import Store

from .aio_native import InlineMemoryBackend


@pytest.fixture
def no_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any worker thread the async face would start fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"asyncio.to_thread was called: {args[:1]}")

    monkeypatch.setattr(asyncio, "to_thread", refuse)
    yield


def native(memory: MemoryBackend | None = None, **kwargs: Any) -> aio.AsyncStore:
    return aio.AsyncStore(InlineMemoryBackend(memory), **kwargs)


def test_the_primitives_run_in_the_loop_without_a_twin(no_threads: None, tmp_path: Path) -> None:
    async def main() -> None:
        store = native()
        assert store.sync is None
        a, b = store.session("agent-a"), store.session("agent-b")
        doc = await a.write("docs/plan.md", "v1")
        assert (doc.version, doc.author) == (1, "agent-a")
        read = await b.read("docs/plan.md")
        await b.write("docs/plan.md", read.value + " v2", expect=read.version)
        with pytest.raises(accord.Conflict):
            await a.write("docs/plan.md", "stale", expect=1)
        with pytest.raises(accord.PreconditionRequired):
            await a.write("docs/plan.md", "blind")
        await a.write("docs/plan.md", "forced", force=True)
        assert (await a.update("stats/runs", lambda n: (n or 0) + 1)).value == 1
        assert (await b.update("stats/runs", lambda n: (n or 0) + 1)).value == 2
        assert [d.key for d in await a.scan("docs/")] == ["docs/plan.md"]
        assert await a.delete("docs/plan.md", expect=3) == 4
        with pytest.raises(accord.NotFound):
            await b.read("docs/plan.md")
        events = [e async for e in store.history()]
        refused = [e for e in events if e.outcome != "ok"]
        assert [(e.agent, e.outcome) for e in refused] == [
            ("agent-a", "conflict"),
            ("agent-a", "conflict"),  # the create-only write, refused by the store
        ]
        events = [e for e in events if e.outcome == "ok"]
        assert [(e.agent, e.op, e.key) for e in events] == [
            ("agent-a", "write", "docs/plan.md"),
            ("agent-b", "write", "docs/plan.md"),
            ("agent-a", "write", "docs/plan.md"),
            ("agent-a", "write", "stats/runs"),
            ("agent-b", "write", "stats/runs"),
            ("agent-a", "delete", "docs/plan.md"),
        ]
        # Lamport times and vector clocks as on any store: b read a's write.
        assert events[1].clock == {"agent-a": 1, "agent-b": 1}
        assert await store.revision() >= len(events)
        assert await store.export_history(tmp_path / "h.jsonl") == len(events) + len(refused)
        report = accord.check(str(tmp_path / "h.jsonl"))
        # The forced write came after agent-a was told of b's version (its
        # conflict): it built on it, so nothing was lost.
        assert report.anomalies == []

    asyncio.run(main())


def test_the_clocks_resume_from_the_store_natively(no_threads: None) -> None:
    memory = MemoryBackend()

    async def main() -> None:
        first = native(memory)
        writer = first.session("agent-a")
        for i in range(300):  # past the checkpoint interval (256 events)
            await writer.write(f"k/{i}", i)
        # A new store object over the same data (a new process): agent-a's
        # clocks continue from the store, and the checkpoint is written.
        again = native(memory).session("agent-a")
        doc = await again.write("k/next", 1)
        assert doc.lamport == 301
        head = memory.get(CHECKPOINT_KEY)
        assert head is not None
        assert memory.get(agent_clock_key("agent-a")) is not None
        # A third start reads only what came after the checkpoint.
        third = native(memory).session("agent-a")
        assert (await third.write("k/last", 1)).lamport == 302

    asyncio.run(main())


def test_update_sleeps_and_jitters_through_the_store(no_threads: None) -> None:
    memory = MemoryBackend()
    rival = Store(memory).session("rival")
    slept: list[float] = []
    draws = iter([0.5, 0.25, 0.75])

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def main() -> None:
        store = native(memory, sleep=sleep, random=lambda: next(draws))
        agent = store.session("agent")
        await agent.write("counter", 0)
        losses = 2

        def bump(n: int) -> int:
            nonlocal losses
            if losses:
                # Another agent moves the key under this attempt: it loses.
                losses -= 1
                rival.write("counter", 100 + losses, force=True)
            return n + 1

        doc = await agent.update("counter", bump, backoff=0.01)
        assert doc.value == 101
        # Full jitter from the store's random: draw x min(max, backoff * 2**attempt).
        assert slept == [0.5 * 0.01, 0.25 * 0.02]

    asyncio.run(main())


def test_the_sync_face_sleeps_through_its_store_too() -> None:
    slept: list[float] = []
    store = Store(MemoryBackend(), sleep=slept.append, random=lambda: 1.0)
    rival = Store(store.backend).session("rival")
    agent = store.session("agent")
    agent.write("counter", 0)
    lost = [True]

    def bump(n: int) -> int:
        if lost.pop() if lost else False:
            rival.write("counter", 10, force=True)
        return n + 1

    assert agent.update("counter", bump, backoff=0.5).value == 11
    assert slept == [0.5]


def test_hooks_may_be_coroutines_awaited_with_the_async_session(no_threads: None) -> None:
    seen: list[tuple[str, str, str]] = []

    async def async_hook(operation: Operation) -> None:
        assert isinstance(operation.session, aio.AsyncSession)
        seen.append(("async", operation.op, operation.key))
        if operation.key == "owned":
            operation.allow_blind = True  # an owner's write needs no expect
        if operation.key == "forbidden":
            raise accord.PolicyViolation("forbidden is read-only here", agent=operation.agent)

    def plain_hook(operation: Operation) -> None:
        # No twin: the plain hook is called inline, with the async session.
        assert isinstance(operation.session, aio.AsyncSession)
        seen.append(("plain", operation.op, operation.key))

    async def main() -> None:
        store = native()
        store.add_hook(async_hook)
        store.add_hook(plain_hook)
        a = store.session("agent-a")
        await a.write("owned", 1)
        await a.write("owned", 2)  # allowed blind by the async hook
        with pytest.raises(accord.PolicyViolation):
            await a.write("forbidden", 1)
        assert (await a.read("owned")).value == 2

    asyncio.run(main())
    assert seen[:2] == [("async", "write", "owned"), ("plain", "write", "owned")]
    assert ("async", "read", "owned") in seen


class Refused(accord.UsageError):
    pass


def _always_refuses(session: Any, key: str, token: int | None) -> list[Compare]:
    if key != "guarded":
        return []
    return [Compare("guard/" + key, "version", "<", 0)]  # never true


def test_an_async_explanation_is_awaited_with_the_async_session(no_threads: None) -> None:
    calls: list[Any] = []

    async def explain(session: Any, key: str, token: int | None, result: TxnResult) -> None:
        calls.append(session)
        assert (await session.store.backend.revision()) >= 0  # it may read the store
        raise Refused(f"{key} is guarded")

    async def main() -> None:
        store = native()
        store.add_guard(_always_refuses, explain)
        a = store.session("agent-a")
        with pytest.raises(Refused):
            await a.write("guarded", 1)
        await a.write("free", 1)
        assert calls == [a]

    asyncio.run(main())


def test_on_a_store_with_a_twin_each_face_runs_its_own_explanation(tmp_path: Path) -> None:
    faces: list[str] = []

    def explain(session: Any, key: str, token: int | None, result: TxnResult) -> None:
        assert isinstance(session, accord.Session)
        faces.append("sync")
        raise Refused(f"{key} is guarded (sync)")

    async def explain_async(session: Any, key: str, token: int | None, result: TxnResult) -> None:
        assert isinstance(session, aio.AsyncSession)
        faces.append("async")
        raise Refused(f"{key} is guarded (async)")

    async def main() -> None:
        sync_backend = SQLiteBackend(f"sqlite:///{tmp_path / 'state.db'}")
        store = aio.AsyncStore(ThreadBackend(sync_backend))
        assert store.sync is not None
        store.add_guard(_always_refuses, explain)
        a = store.session("agent-a")
        with pytest.raises(Refused, match="sync"):
            await a.write("guarded", 1)  # the plain one, in a thread, on the twin
        store.add_guard(_always_refuses, explain_async)  # the same guard: no second compare
        with pytest.raises(Refused, match="async"):
            await a.write("guarded", 1)
        with pytest.raises(Refused, match="sync"):
            store.sync.session("agent-b").write("guarded", 1)
        await store.close()

    asyncio.run(main())
    assert faces == ["sync", "async", "sync"]


def test_one_guard_registered_twice_adds_one_compare() -> None:
    guards = Guards()

    def explain(*args: Any) -> None:
        return None

    async def explain_async(*args: Any) -> None:
        return None

    guards.add(_always_refuses, explain)
    guards.add(_always_refuses, explain_async)
    assert len(guards.compares(None, "guarded", None)) == 1
    assert guards.explainers(None, "guarded", None, None) == [(explain, explain_async)]


def test_a_sync_store_refuses_a_coroutine_hook() -> None:
    async def hook(operation: Operation) -> None:
        return None

    async def explain(*args: Any) -> None:
        return None

    store = Store(MemoryBackend())
    with pytest.raises(accord.UsageError, match="coroutine function"):
        store.add_hook(hook)
    with pytest.raises(accord.UsageError, match=r"add_guard\(fn\) on a store opened with"):
        store.add_guard(_always_refuses, explain)


def test_watch_the_queue_and_branches_run_natively(no_threads: None) -> None:
    async def main() -> None:
        store = native()
        a = store.session("agent-a")
        await a.write("doc", 1)
        # Watch is one async source that needs no twin: it runs here too.
        async for event in a.watch("doc", since=0):
            assert (event.key, event.version, event.value) == ("doc", 1, 1)
            break
        assert (await a.read("doc")).value == 1
        # The queue and branches are native: they run here, in the loop.
        request = await a.submit("queued", "change")
        assert request.pending
        writer = store.session("writer")
        assert await writer.serve("queued", lambda v, c: c, timeout=0) == 1
        assert (await request.wait(timeout=5)).accepted
        branch = await a.fork("doc")
        assert [b.id for b in await store.branches("doc")] == [branch.id]
        await branch.write(3)
        assert (await (await store.merge("doc", [branch])).commit()).value == 3

    asyncio.run(main())


def test_leases_run_natively_on_a_store_with_no_twin(no_threads: None) -> None:
    """Leases are native on the async face: granted, fenced, explained
    (LeaseHeld, by the awaited explanation) and released in the loop."""

    async def main() -> None:
        store = native()
        a, b = store.session("agent-a"), store.session("agent-b")
        await a.write("doc", 1)
        async with a.lease("doc", ttl=5) as lease:
            assert lease.token == 1
            await a.write("doc", 2, lease=lease)
            with pytest.raises(accord.LeaseHeld, match="agent-a holds an exclusive lease"):
                await b.write("doc", 3, expect=2)
            with pytest.raises(accord.LeaseTimeout):
                await b.acquire("doc", wait=0)
        with pytest.raises(accord.Fenced, match="token 1"):
            await a.write("doc", 4, lease=lease.token)
        assert (await a.read("doc")).value == 2

    asyncio.run(main())


def test_a_backend_naming_a_twin_that_is_not_a_backend_is_refused() -> None:
    class Odd(InlineMemoryBackend):
        sync = "not a backend"

    with pytest.raises(accord.UsageError, match="not a Backend"):
        aio.AsyncStore(Odd())
