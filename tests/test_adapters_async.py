"""The adapters' async faces on accord.aio: the same results, errors and history as
the sync faces; no worker thread on PostgreSQL; exact counts under contention.

AccordStore (LangGraph) and AccordSession (Agents SDK) run their async methods
on an AsyncStore opened over the same store (accord._async_twin). One scenario
runs through both faces of AccordStore, each under its own key prefix of one
store, and everything it returns, raises and records is compared.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from agents.items import TResponseInputItem
from langgraph.store.base import GetOp, ListNamespacesOp, PutOp, SearchOp

import accord
from accord.agents_sdk import AccordSession
from accord.langgraph import AccordStore

NS = ("docs", "team")
WAIT = 30.0


# --- one scenario, two faces -------------------------------------------------------


class SyncFace:
    """The sync methods, awaitable (called directly: no thread, no loop I/O)."""

    def __init__(self, lg: AccordStore) -> None:
        self.lg = lg

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.lg, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        return call


class AsyncFace:
    def __init__(self, lg: AccordStore) -> None:
        self.lg = lg

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        return getattr(self.lg, "a" + name)  # type: ignore[no-any-return]


def _shown(result: Any, prefix: str) -> Any:
    """A result without what differs between runs (times) or prefixes."""
    if isinstance(result, list):
        return [_shown(r, prefix) for r in result]
    if hasattr(result, "version") and hasattr(result, "namespace"):
        return ("item", result.namespace, result.key, result.value, result.version)
    return result


async def _scenario(face: Any, lww: Any, store: accord.Store, prefix: str) -> list[Any]:
    out: list[Any] = []

    async def step(name: str, *args: Any, **kwargs: Any) -> None:
        try:
            got = await getattr(face, name)(*args, **kwargs)
        except Exception as exc:
            message = getattr(exc, "message", str(exc))
            out.append((name, "raised", type(exc).__name__, message.replace(prefix, "P")))
        else:
            out.append((name, _shown(got, prefix)))

    await step("put", NS, "a", {"n": 1})
    await step("get", NS, "a")
    await step("put", NS, "a", {"n": 2})  # refused: a blind overwrite
    await step("put", NS, "a", {"n": 2}, expect=1)
    await step("put", NS, "a", {"n": 3}, expect=1)  # a conflict
    await step("update", NS, "a", lambda v: {"n": (v or {"n": 0})["n"] + 10})
    await step("update", NS, "new", lambda v: {"n": 1 if v is None else -1})
    await step("put", ("docs", "x"), "b", {"kind": "x", "user": {"level": 2}})
    await step("put", ("other",), "c", {"kind": "x"})
    await step("search", ("docs",), filter={"kind": "x"})
    await step("search", ("docs",), filter={"user.level": {"$gte": 2}}, limit=5)
    await step("search", ("docs",), query="semantic")
    await step("list_namespaces", prefix=("docs",))
    await step("list_namespaces", suffix=("x",), max_depth=1)
    await step(
        "batch",
        [
            GetOp(NS, "a"),
            PutOp(NS, "batched", {"v": 1}),
            SearchOp(("docs",), limit=2, offset=1),
            ListNamespacesOp(match_conditions=None, max_depth=None, limit=10, offset=0),
            GetOp(NS, "missing"),
        ],
    )
    await step("batch", [PutOp(NS, "batched", {"v": 2})])  # refused
    await step("put", NS, "t", {"v": 1}, ttl=5.0)
    await step("put", (), "k", {"v": 1})
    await step("put", NS, "bad", ["not", "a", "dict"])
    # A plain JSON object written by another accord client: times from history.
    store.session("other-client").write(f"{prefix}/docs/team/plain", {"p": 1})
    await step("get", NS, "plain")
    await step("update", NS, "plain", lambda v: {"p": (v or {})["p"] + 1})
    await step("delete", NS, "a")  # refused
    await step("delete", NS, "a", expect=2)  # a conflict (it is at 3)
    await step("delete", NS, "a", expect=3)
    await step("get", NS, "a")
    await step("delete", NS, "never")
    # The last-write-wins policy: a recorded blind write and delete.
    await step("put", NS, "new", {"n": 100})
    await lww.put(NS, "new", {"n": 100})
    await lww.delete(NS, "new")
    await lww.delete(NS, "new")
    await step("get", NS, "new")
    return out


def _history(store: accord.Store, prefix: str) -> list[tuple[Any, ...]]:
    return [
        (e.agent, e.op, e.key[len(prefix) :], e.version, e.prev, e.based_on, e.check, e.outcome)
        for e in store.history()
        if e.key is not None and e.key.startswith(prefix + "/")
    ]


@pytest.mark.parametrize("backend_name", ["memory", "sqlite", "postgresql"], indirect=True)
def test_async_face_equals_sync_face(store: accord.Store) -> None:
    sync_lg = AccordStore(store, prefix="sync", agent="writer")
    sync_lww = AccordStore(store, prefix="sync", agent="blind", on_overwrite="last-write-wins")
    async_lg = AccordStore(store, prefix="async", agent="writer")
    async_lww = AccordStore(store, prefix="async", agent="blind", on_overwrite="last-write-wins")

    sync_out = asyncio.run(_scenario(SyncFace(sync_lg), SyncFace(sync_lww), store, "sync"))

    async def run_async() -> list[Any]:
        async with async_lg, async_lww:
            return await _scenario(AsyncFace(async_lg), AsyncFace(async_lww), store, "async")

    async_out = asyncio.run(run_async())
    assert async_out == sync_out
    # Every kind of outcome is exercised: results, refusals, conflicts.
    raised = {entry[2] for entry in sync_out if entry[1] == "raised"}
    assert {"PreconditionRequired", "Conflict", "UsageError", "NotImplementedError",
            "InvalidNamespaceError", "InvalidValue"} <= raised
    assert _history(store, "async") == _history(store, "sync")
    assert len(_history(store, "sync")) >= 12


@pytest.mark.parametrize("backend_name", ["memory", "sqlite", "postgresql"], indirect=True)
def test_agents_sdk_session_async_equals_sync_history(store: accord.Store) -> None:
    def msg(text: str) -> TResponseInputItem:
        return {"role": "user", "content": text}  # type: ignore[return-value]

    async def run(session: AccordSession) -> list[Any]:
        out: list[Any] = []
        await session.add_items([msg("one"), msg("two")])
        await session.add_items([msg("three")])
        out.append(await session.get_items())
        out.append(await session.get_items(limit=2))
        out.append(await session.pop_item())
        out.append(await session.get_items())
        await session.clear_session()
        out.append(await session.get_items())
        out.append(await session.pop_item())
        await session.aclose()
        return out

    first = asyncio.run(run(AccordSession("s1", store, agent="run-1")))
    second = asyncio.run(run(AccordSession("s2", store, agent="run-1")))
    assert first == second
    assert first[2] == msg("three")
    assert [(e.op, e.version, e.based_on) for e in store.history(key="agents/sessions/s1")] == [
        (e.op, e.version, e.based_on) for e in store.history(key="agents/sessions/s2")
    ]


# --- no worker thread on PostgreSQL -----------------------------------------------


@pytest.fixture
def thread_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every ``asyncio.to_thread`` and ``run_in_executor`` call, by function name."""
    calls: list[str] = []
    to_thread = asyncio.to_thread
    run_in_executor = asyncio.BaseEventLoop.run_in_executor

    def _name(fn: Any) -> str:
        fn = getattr(fn, "func", fn)
        return getattr(fn, "__qualname__", repr(fn))

    async def recording_to_thread(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        calls.append(_name(fn))
        return await to_thread(fn, *args, **kwargs)

    def recording_executor(self: Any, executor: Any, fn: Any, *args: Any) -> Any:
        if _name(fn) != "Context.run":  # asyncio.to_thread's own: recorded above
            calls.append(_name(fn))
        return run_in_executor(self, executor, fn, *args)

    monkeypatch.setattr(asyncio, "to_thread", recording_to_thread)
    monkeypatch.setattr(asyncio.BaseEventLoop, "run_in_executor", recording_executor)
    yield calls


@pytest.mark.parametrize("backend_name", ["postgresql"], indirect=True)
def test_postgres_async_faces_use_no_worker_thread(
    store: accord.Store, thread_calls: list[str]
) -> None:
    async def workload(lg: AccordStore, reader: AccordStore, session: AccordSession,
                       round_: int) -> None:
        ns = (*NS, str(round_))
        await lg.aput(ns, "a", {"n": 1})
        item = await reader.aget(ns, "a")
        assert item is not None and item.version == 1
        await lg.aput(ns, "a", {"n": 2}, expect=1)
        with pytest.raises(accord.Conflict):
            await lg.aput(ns, "a", {"n": 3}, expect=1)
        with pytest.raises(accord.PreconditionRequired):
            await lg.aput(ns, "a", {"n": 3})
        await asyncio.gather(
            *(lg.aupdate(ns, "count", lambda v: {"n": (v or {"n": 0})["n"] + 1}, retries=100)
              for _ in range(8))
        )
        assert (await reader.aget(ns, "count")).value == {"n": 8}  # type: ignore[union-attr]
        assert len(await reader.asearch(ns)) == 2
        assert ns in await reader.alist_namespaces()
        await lg.abatch([GetOp(ns, "a"), PutOp(ns, "b", {"v": 1}), SearchOp(ns)])
        with pytest.raises(accord.PreconditionRequired):
            await lg.adelete(ns, "a")
        await lg.adelete(ns, "a", expect=2)
        await asyncio.gather(
            *(session.add_items([{"role": "user", "content": str(i)}])  # type: ignore[list-item]
              for i in range(8))
        )
        assert len(await session.get_items()) == 8
        assert await session.pop_item() is not None
        await session.clear_session()

    async def main() -> list[str]:
        async with AccordStore(store, agent="writer") as lg, AccordStore(
            store, agent="reader"
        ) as reader:
            session = AccordSession("chat", store, agent="session-agent")
            await workload(lg, reader, session, 1)
            # What ran in a thread: opening each adapter's twin (its pool;
            # the schema check is the sync backend's) and each agent's first
            # clock ticks (accord.aio resumes an agent's clocks from the
            # store once). No operation.
            assert set(thread_calls) <= {"PostgresBackend", "AgentClock.tick"}, thread_calls
            assert thread_calls.count("PostgresBackend") == 3
            # Once open, the same workload runs no thread at all.
            first = len(thread_calls)
            await workload(lg, reader, session, 2)
            during = thread_calls[first:]
            await session.aclose()  # closing the twin's sync half: in a thread
            return during

    assert asyncio.run(main()) == []


@pytest.mark.parametrize("backend_name", ["memory", "sqlite"], indirect=True)
def test_sqlite_and_memory_offload_to_the_store_threads(
    store: accord.Store, thread_calls: list[str]
) -> None:
    async def main() -> None:
        async with AccordStore(store) as lg:
            await lg.aput(NS, "a", {"n": 1})
            assert (await lg.aget(NS, "a")) is not None
            assert (await lg.astore()).backend.sync is store.backend  # the same backend

    asyncio.run(main())
    assert thread_calls  # sqlite3 and the memory backend block: they run in workers


# --- contention -----------------------------------------------------------------------

_agent: contextvars.ContextVar[str] = contextvars.ContextVar("agent", default="main")


@pytest.mark.parametrize("backend_name", ["memory", "sqlite", "postgresql"], indirect=True)
def test_many_coroutines_aupdate_one_key_exact_count(store: accord.Store) -> None:
    coroutines, rounds = 16, 5

    async def worker(lg: AccordStore, i: int) -> None:
        _agent.set(f"worker-{i}")
        for _ in range(rounds):
            await lg.aupdate(
                NS, "counter",
                lambda v: {"n": (v or {"n": 0})["n"] + 1, "by": _agent.get()},
                retries=1000,
            )

    async def main() -> int:
        async with AccordStore(store, agent=_agent.get) as lg:
            await asyncio.wait_for(
                asyncio.gather(*(worker(lg, i) for i in range(coroutines))), WAIT * 4
            )
            item = await lg.aget(NS, "counter")
            assert item is not None
            return int(item.value["n"])

    assert asyncio.run(main()) == coroutines * rounds
    assert accord.check(store).ok


@pytest.mark.parametrize("backend_name", ["memory", "sqlite", "postgresql"], indirect=True)
def test_the_unsafe_async_baseline_loses_updates(store: accord.Store) -> None:
    """Read, wait until every coroutine has read, then write blindly: updates are lost."""
    coroutines = 8

    async def worker(lg: AccordStore, barrier: asyncio.Barrier, i: int) -> None:
        _agent.set(f"worker-{i}")
        item = await lg.aget(NS, "counter")
        n = 0 if item is None else item.value["n"]
        await asyncio.wait_for(barrier.wait(), WAIT)
        await lg.aput(NS, "counter", {"n": n + 1})

    async def main() -> int:
        async with AccordStore(
            store, agent=_agent.get, on_overwrite="last-write-wins"
        ) as lg:
            await lg.aput(NS, "counter", {"n": 0})
            barrier = asyncio.Barrier(coroutines)
            await asyncio.gather(*(worker(lg, barrier, i) for i in range(coroutines)))
            item = await lg.aget(NS, "counter")
            assert item is not None
            return int(item.value["n"])

    assert asyncio.run(main()) == 1  # seven of eight increments lost
    assert accord.check(store).counts["lost-update"] == coroutines - 1


def test_mixed_faces_share_one_session_per_agent(tmp_path: Any) -> None:
    """A sync and an async call as one agent carry one clock (no collision)."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with AccordStore(url, agent="node") as lg:
        lg.put(NS, "a", {"n": 1})

        async def more() -> None:
            await lg.aupdate(NS, "a", lambda v: {"n": (v or {"n": 0})["n"] + 1})
            assert (await lg.asession()).sync is lg.session()

        asyncio.run(more())
        lg.update(NS, "a", lambda v: {"n": (v or {"n": 0})["n"] + 1})
        events = [e for e in lg.store.history() if e.agent == "node"]
        counters = [e.clock["node"] for e in events]
        assert counters == sorted(set(counters))  # strictly increasing: one clock
        assert accord.check(lg.store).ok

