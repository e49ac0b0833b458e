"""accord.agents_sdk: tools whose failures reach the model, and AccordSession.

Every agent here runs on the SDK's own ScriptedModel: no model, no network.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from agents import Agent, RunContextWrapper, Runner, set_tracing_disabled
from agents.memory import Session as SDKSession
from agents.memory import SessionSettings
from agents.testing import ScriptedModel, assistant_message, function_call

import accord
from accord.agents_sdk import AccordSession, accord_error_message, tools

set_tracing_disabled(True)

WAIT = 10.0


class Caller:
    """One agent's tool set, called through the SDK one call at a time (keeps leases)."""

    def __init__(self, session: accord.Session) -> None:
        self.session = session
        self.tools = tools(session)

    def __call__(self, name: str, **args: Any) -> str:
        model = ScriptedModel(
            [[function_call(name, args, call_id="c1")], [assistant_message("done")]]
        )
        agent = Agent(name=self.session.agent, model=model, tools=self.tools)
        asyncio.run(Runner.run(agent, "go"))
        items = model.calls[1].input
        assert isinstance(items, list)
        return str(next(i["output"] for i in items if i.get("type") == "function_call_output"))


def test_tool_names_and_schemas(store: accord.Store) -> None:
    made = tools(store.session("a"))
    assert [t.name for t in made] == [
        "accord_read", "accord_write", "accord_submit", "accord_lease_acquire",
        "accord_lease_release", "accord_fork", "accord_branch_write", "accord_merge",
    ]
    write = made[1]
    assert set(write.params_json_schema["required"]) == {"key", "value", "expect", "is_json"}
    assert "version you read" in write.params_json_schema["properties"]["expect"]["description"]
    assert tools(store.session("a"), prefix="kv_")[0].name == "kv_read"


def test_read_write_and_a_conflict_reaching_the_model(store: accord.Store) -> None:
    a, b = Caller(store.session("agent-a")), Caller(store.session("agent-b"))
    out = json.loads(a("accord_write", key="notes/plan.md", value="one\n", expect=0,
                       is_json=False))
    assert out == {"key": "notes/plan.md", "version": 1, "written": True}
    assert json.loads(b("accord_read", key="notes/plan.md"))["version"] == 1
    b("accord_write", key="notes/plan.md", value="one\ntwo\n", expect=1, is_json=False)
    message = a("accord_write", key="notes/plan.md", value="one\nthree\n", expect=1,
                is_json=False)
    assert message.startswith(
        "Conflict on notes/plan.md: you wrote based on version 1, but it is at version 2 "
        "(v2 by agent-b). Re-read it, apply your change on top, and write with expect=2."
    )
    assert "+two" in message  # the diff of what changed
    read = json.loads(a("accord_read", key="notes/plan.md"))
    assert read == {"key": "notes/plan.md", "version": 2, "author": "agent-b", "kind": "text",
                    "value": "one\ntwo\n"}
    json_out = a("accord_write", key="notes/data", value='{"n": 1}', expect=0, is_json=True)
    assert json.loads(json_out)["version"] == 1
    assert json.loads(a("accord_read", key="notes/data"))["value"] == {"n": 1}
    bad = a("accord_write", key="notes/data2", value="{nope", expect=0, is_json=True)
    assert bad.startswith("InvalidValue: is_json was true but the value is not valid JSON")
    missing = a("accord_read", key="notes/none")
    assert missing.startswith("NotFound: notes/none does not exist")
    blind = a("accord_write", key="notes/plan.md", value="x", expect=None, is_json=False)
    assert blind.startswith("PreconditionRequired: notes/plan.md already exists")


def test_submit_reaches_the_writer(store: accord.Store) -> None:
    author = store.session("author")
    author.write("docs/d.md", "Budget: TBD.\n", expect=0)
    critic = Caller(store.session("critic"))
    out = json.loads(critic("accord_submit", key="docs/d.md", change="Budget: 40k.",
                            wait_seconds=0, is_json=False))
    assert out["status"] == "pending" and out["request"].startswith("r-")
    served = author.serve("docs/d.md", lambda cur, change: cur + change + "\n", timeout=0)
    assert served == 1
    assert author.read("docs/d.md").value == "Budget: TBD.\nBudget: 40k.\n"
    # The writer now holds the role: a direct write by the critic is refused, in words.
    refused = critic("accord_write", key="docs/d.md", value="mine", expect=2, is_json=False)
    assert refused.startswith("NotWriter:")
    decided = threading.Event()

    def writer() -> None:
        for request in author.requests("docs/d.md", timeout=WAIT):
            author.reject(request, "out of scope")
            decided.set()
            return

    thread = threading.Thread(target=writer)
    thread.start()
    out = json.loads(critic("accord_submit", key="docs/d.md", change="Rename it.",
                            wait_seconds=WAIT, is_json=False))
    thread.join(WAIT)
    assert decided.is_set()
    assert out["status"] == "rejected" and out["reason"] == "out of scope"


def test_leases_through_tools(store: accord.Store) -> None:
    a, b = Caller(store.session("agent-a")), Caller(store.session("agent-b"))
    store.session("agent-a").write("cfg", "v1", expect=0)
    granted = json.loads(a("accord_lease_acquire", key="cfg", ttl_seconds=30, wait_seconds=1))
    assert granted["token"] >= 1
    busy = b("accord_lease_acquire", key="cfg", ttl_seconds=30, wait_seconds=0)
    assert busy.startswith("LeaseTimeout:")
    # The holder's writes carry its lease (fenced by the store).
    assert json.loads(a("accord_write", key="cfg", value="v2", expect=1, is_json=False))[
        "version"] == 2
    (event,) = [e for e in store.history(key="cfg") if e.op == "write" and e.version == 2]
    assert event.check == "lease" and event.lease == granted["token"]
    assert json.loads(a("accord_lease_release", key="cfg")) == {"key": "cfg", "released": True}
    again = a("accord_lease_release", key="cfg")
    assert again.startswith("UsageError: You hold no lease on cfg")
    assert json.loads(b("accord_write", key="cfg", value="v3", expect=2, is_json=False))[
        "version"] == 3


def test_fork_and_merge_through_tools(store: accord.Store) -> None:
    store.session("lead").write("doc", "intro\nbody\nend\n", expect=0)
    a, b = Caller(store.session("agent-a")), Caller(store.session("agent-b"))
    fa = json.loads(a("accord_fork", key="doc"))
    fb = json.loads(b("accord_fork", key="doc"))
    assert fa["base_version"] == 1 and fa["value"] == "intro\nbody\nend\n"
    a("accord_branch_write", key="doc", branch=fa["branch"], value="INTRO\nbody\nend\n",
      is_json=False)
    b("accord_branch_write", key="doc", branch=fb["branch"], value="intro\nbody\nEND\n",
      is_json=False)
    merged = json.loads(a("accord_merge", key="doc", branch_ids=[fa["branch"], fb["branch"]],
                          commit=True))
    assert merged["clean"] is True and merged["version"] == 2
    assert store.session("lead").read("doc").value == "INTRO\nbody\nEND\n"
    unknown = a("accord_branch_write", key="doc", branch="b-nope", value="x", is_json=False)
    assert unknown.startswith("NotFound: No open branch b-nope of doc")


def test_other_errors_keep_the_sdk_default() -> None:
    ctx = RunContextWrapper(context=None)
    assert accord_error_message(ctx, ValueError("secret detail")) == (
        "An error occurred while running the tool. Please try again."
    )
    wrapped = RuntimeError("wrapper")
    wrapped.__cause__ = accord.Conflict("Conflict on k: ...")
    assert accord_error_message(ctx, wrapped) == "Conflict on k: ..."
    assert accord_error_message(ctx, accord.Timeout("late")) == "Timeout: late"


# --- AccordSession -------------------------------------------------------------------------


def _msg(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def test_session_protocol(store: accord.Store) -> None:
    session = AccordSession("chat/1", store)
    assert isinstance(session, SDKSession)
    assert session.key == "agents/sessions/chat%2F1"

    async def go() -> None:
        assert await session.get_items() == []
        assert await session.pop_item() is None
        await session.add_items([_msg("a"), _msg("b")])
        await session.add_items([])
        await session.add_items([_msg("c")])
        assert [i["content"] for i in await session.get_items()] == ["a", "b", "c"]  # type: ignore[index]
        assert [i["content"] for i in await session.get_items(limit=2)] == ["b", "c"]  # type: ignore[index]
        assert await session.get_items(limit=0) == []
        other = AccordSession("chat/1", store, session_settings=SessionSettings(limit=1))
        assert [i["content"] for i in await other.get_items()] == ["c"]  # type: ignore[index]
        assert await session.pop_item() == _msg("c")
        await session.clear_session()
        assert await session.get_items() == []
        await session.clear_session()
        await session.add_items([_msg("d")])
        assert await other.get_items(limit=5) == [_msg("d")]

    asyncio.run(go())
    assert accord.check(store).ok


def test_session_refuses_foreign_data(store: accord.Store) -> None:
    store.session("x").write("agents/sessions/s", "text", expect=0)
    with pytest.raises(accord.InvalidValue, match="not a conversation"):
        asyncio.run(AccordSession("s", store).get_items())


class NaiveSession(AccordSession):
    """The unsafe baseline: read the list, append, write it back blindly."""

    async def add_items(self, items: list[Any]) -> None:
        def go() -> None:
            old = self._items()
            self._session.write(self.key, [*old, *items], force=True)

        await asyncio.to_thread(go)


def _barrier_before_first_write(key: str, parties: int) -> Callable[[accord.Operation], None]:
    """A hook: every appender reads, then all wait here before their first write."""
    barrier = threading.Barrier(parties)
    local = threading.local()

    def hook(operation: accord.Operation) -> None:
        if operation.op == "write" and operation.key == key and not getattr(local, "done", 0):
            local.done = 1
            barrier.wait(WAIT)

    return hook


def _append_concurrently(open_store: Callable[..., accord.Store],
                         make: Callable[[accord.Store, int], AccordSession],
                         parties: int) -> list[Any]:
    stores = [open_store() for _ in range(parties)]  # one Store per run, as separate processes
    hook = _barrier_before_first_write("agents/sessions/shared", parties)
    for s in stores:
        s.add_hook(hook)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            asyncio.run(make(stores[i], i).add_items([_msg(f"run {i} in"), _msg(f"run {i} out")]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(parties)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 3)
    assert not errors
    return asyncio.run(AccordSession("shared", stores[0]).get_items())


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"], indirect=True)
def test_concurrent_appends_lose_nothing(open_store: Callable[..., accord.Store]) -> None:
    parties = 4
    items = _append_concurrently(
        open_store, lambda s, i: AccordSession("shared", s, agent=f"run-{i}"), parties
    )
    assert len(items) == 2 * parties
    contents = [i["content"] for i in items]
    for i in range(parties):
        # Each run's items are all there, together and in order.
        at = contents.index(f"run {i} in")
        assert contents[at + 1] == f"run {i} out"
    assert accord.check(open_store()).ok


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"], indirect=True)
def test_the_unsafe_baseline_loses_appends(open_store: Callable[..., accord.Store]) -> None:
    items = _append_concurrently(
        open_store, lambda s, i: NaiveSession("shared", s, agent=f"run-{i}"), 4
    )
    assert len(items) == 2  # three of the four runs' items are gone
    result = accord.check(open_store())
    assert result.counts["lost-update"] == 3


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"], indirect=True)
def test_concurrent_sdk_runs_on_one_session_id(open_store: Callable[..., accord.Store]) -> None:
    store = open_store()
    runs = 6

    async def one(i: int) -> None:
        model = ScriptedModel([[assistant_message(f"answer {i}")]])
        agent = Agent(name=f"agent-{i}", model=model)
        await Runner.run(agent, f"question {i}", session=AccordSession("chat", store,
                                                                          agent=f"run-{i}"))
        model.assert_complete()

    async def all_runs() -> None:
        await asyncio.gather(*(one(i) for i in range(runs)))

    asyncio.run(all_runs())
    items = asyncio.run(AccordSession("chat", store).get_items())
    texts = [json.dumps(i) for i in items]
    for i in range(runs):
        assert sum(f"question {i}" in t for t in texts) == 1
        assert sum(f"answer {i}" in t for t in texts) == 1
    assert len(items) == 2 * runs
    assert accord.check(store).ok


@pytest.mark.slow
@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"], indirect=True)
def test_appends_from_separate_processes(open_store: Callable[..., accord.Store]) -> None:
    import multiprocessing as mp

    from tests.agents_sdk_workers import append_worker

    store = open_store()
    url = open_store.url  # type: ignore[attr-defined]
    procs, turns = 4, 15
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(procs), ctx.Queue()
    workers = [ctx.Process(target=append_worker, args=(url, i, turns, barrier, results))
               for i in range(procs)]
    for w in workers:
        w.start()
    done = sorted(results.get(timeout=120) for _ in workers)
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert done == list(range(procs))
    items = asyncio.run(AccordSession("shared", store).get_items())
    assert len(items) == procs * turns * 2
    contents = [i["content"] for i in items]
    for p in range(procs):
        mine = [c for c in contents if c.startswith(f"p{p} ")]
        # Each process's turns: all there, in its order, each turn's two items adjacent.
        assert mine == [f"p{p} t{t} {s}" for t in range(turns) for s in ("in", "out")]
        for t in range(turns):
            at = contents.index(f"p{p} t{t} in")
            assert contents[at + 1] == f"p{p} t{t} out"
    assert accord.check(store).ok
