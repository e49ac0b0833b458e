"""idempotency_key on every mutating MCP tool, on every backend.

For each tool: a repeat with the same key and arguments gets the first
result back (the same structured content) and applies nothing (no history
event, the same state); the same key with other arguments is an
IdempotencyMismatch; a repeat while the first call still runs (its claim in
the store, as another server process would leave it) is refused with when
to retry. Then the crash window: a server that died after the operation
committed but before it kept the answer leaves a claim that lapses; the
retry answers from what the store shows the first attempt did, and applies
nothing twice.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from mcp import Client

import accord
from accord import replay
from accord.mcp import build_server
from accord.mcp.server import fingerprint
from accord.remote import merge_branches
from accord.strategies import lease as lease_mod
from accord.strategies import queue

from .mcp_helpers import call, fails, ok, run

Setup = Callable[[accord.Store, Client], Awaitable[dict[str, Any]]]


def events(store: accord.Store) -> int:
    return sum(1 for _ in store.history())


def count(store: accord.Store, op: str, agent: str = "agent-a") -> int:
    return sum(1 for e in store.history() if e.op == op and e.agent == agent
               and e.outcome in ("ok", "rejected"))


# --- what each tool needs first; the arguments are complete (defaults spelled out),
# so that the test can compute the call's fingerprint as the server does.


async def _write(store: accord.Store, a: Client) -> dict[str, Any]:
    return {"key": "k", "value": "one", "expect": 0, "kind": "text"}


async def _delete(store: accord.Store, a: Client) -> dict[str, Any]:
    await ok(a, "write", key="k", value="one", expect=0)
    return {"key": "k", "expect": 1}


async def _write_leased(store: accord.Store, a: Client) -> dict[str, Any]:
    lease = await ok(a, "lease_acquire", key="k", wait=0)
    return {"key": "k", "value": "one", "token": lease["token"], "kind": "text"}


async def _submit(store: accord.Store, a: Client) -> dict[str, Any]:
    return {"key": "q", "change": "add a line", "kind": "text"}


async def _lease_acquire(store: accord.Store, a: Client) -> dict[str, Any]:
    return {"key": "k", "ttl": 30, "wait": 0, "mode": "exclusive"}


async def _lease_renew(store: accord.Store, a: Client) -> dict[str, Any]:
    lease = await ok(a, "lease_acquire", key="k", wait=0)
    return {"key": "k", "token": lease["token"], "ttl": 60}


async def _lease_release(store: accord.Store, a: Client) -> dict[str, Any]:
    lease = await ok(a, "lease_acquire", key="k", wait=0)
    return {"key": "k", "token": lease["token"]}


async def _pending(store: accord.Store, a: Client) -> str:
    request = store.session("agent-b").submit("q", "add a line")
    listed = await ok(a, "requests", key="q")  # agent-a becomes the writer of q
    assert [r["id"] for r in listed["requests"]] == [request.id]
    return request.id


async def _accept(store: accord.Store, a: Client) -> dict[str, Any]:
    request_id = await _pending(store, a)
    return {"key": "q", "request_id": request_id, "value": "a line", "expect": 0,
            "kind": "text"}


async def _reject(store: accord.Store, a: Client) -> dict[str, Any]:
    request_id = await _pending(store, a)
    return {"key": "q", "request_id": request_id, "reason": "not now"}


async def _fork(store: accord.Store, a: Client) -> dict[str, Any]:
    await ok(a, "write", key="k", value="base\n", expect=0)
    return {"key": "k"}


async def _branch_write(store: accord.Store, a: Client) -> dict[str, Any]:
    await ok(a, "write", key="k", value="base\n", expect=0)
    branch = await ok(a, "fork", key="k")
    return {"key": "k", "branch_id": branch["branch_id"], "value": "mine\n", "kind": "text"}


async def _merge(store: accord.Store, a: Client) -> dict[str, Any]:
    await ok(a, "write", key="k", value="one\ntwo\nthree\n", expect=0)
    first = await ok(a, "fork", key="k")
    second = await ok(a, "fork", key="k")
    await ok(a, "branch_write", key="k", branch_id=first["branch_id"],
             value="ONE\ntwo\nthree\n")
    await ok(a, "branch_write", key="k", branch_id=second["branch_id"],
             value="one\ntwo\nTHREE\n")
    return {"key": "k", "branch_ids": [first["branch_id"], second["branch_id"]],
            "prefer": None, "resolutions": None}


@dataclass(frozen=True)
class Case:
    tool: str
    setup: Setup
    op: str  # the history op the call makes
    other: Callable[[dict[str, Any]], dict[str, Any]]  # the same key for another call

    def __str__(self) -> str:
        return self.tool


def _with(**changes: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda args: {**args, **changes}


CASES = [
    Case("write", _write, "write", _with(value="two")),
    Case("delete", _delete, "delete", _with(expect=2)),
    Case("write_leased", _write_leased, "write", _with(value="two")),
    Case("submit", _submit, "submit", _with(change="another line")),
    Case("lease_acquire", _lease_acquire, "lease_acquire", _with(ttl=60)),
    Case("lease_renew", _lease_renew, "lease_renew", _with(ttl=90)),
    Case("lease_release", _lease_release, "lease_release", _with(key="other")),
    Case("accept", _accept, "accept", _with(value="another line")),
    Case("reject", _reject, "reject", _with(reason="never")),
    Case("fork", _fork, "fork", _with(key="other")),
    Case("branch_write", _branch_write, "branch_write", _with(value="theirs\n")),
    Case("merge", _merge, "merge", _with(prefer="current")),
]


def _a(store: accord.Store) -> Client:
    return Client(build_server(store, agent="agent-a"))


def _state(store: accord.Store) -> dict[str, Any]:
    """Every record an agent's call can change, without the replay records themselves."""
    out = {}
    for key in ("k", "q", "other"):
        rec = store.backend.get(key)
        out[key] = None if rec is None else (rec.version, rec.deleted, rec.data)
    out["lease"] = [(h.agent, h.token, h.expires) for h in lease_mod.status(store, "k").holders]
    out["branches"] = sorted(
        (b.id, repr(b.read()), store.backend.get(b.record_key).version)  # type: ignore[union-attr]
        for b in store.branches("k")
    )
    out["requests"] = sorted((r.id, r.status) for r in queue.pending(store, "q"))
    return out


def test_every_mutating_tool_offers_an_idempotency_key(store: accord.Store) -> None:
    async def go() -> None:
        async with _a(store) as a:
            tools = {t.name: t for t in (await a.list_tools()).tools}
            for case in CASES:
                schema = tools[case.tool].input_schema
                assert "idempotency_key" in schema["properties"], case.tool
                assert "idempotency_key" not in schema.get("required", []), case.tool
                assert "idempotency_key" in (tools[case.tool].description or ""), case.tool

    run(go())


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_repeat_returns_the_first_result_and_applies_nothing(
    store: accord.Store, case: Case
) -> None:
    async def go() -> None:
        async with _a(store) as a:
            args = await case.setup(store, a)
            first = await a.call_tool(case.tool, {**args, "idempotency_key": "once"})
            assert not first.is_error, first.structured_content
            assert case.op == "branch_write" or count(store, case.op) >= 1  # no branch events
            before, state = events(store), _state(store)
            again = await a.call_tool(case.tool, {**args, "idempotency_key": "once"})
            assert not again.is_error
            assert again.structured_content == first.structured_content
            assert again.content == first.content
            assert (again.meta or {}).get("accord/replayed") is True
            assert events(store) == before and _state(store) == state
            # The same key for another call: refused, nothing done.
            other = await fails(a, case.tool, **case.other(args), idempotency_key="once")
            assert other["error"] == "IdempotencyMismatch", other
            assert "idempotency_key 'once' was first used for another call" in other["message"]
            assert events(store) == before and _state(store) == state

    run(go())


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_repeat_while_the_first_call_runs_is_refused_with_when_to_retry(
    store: accord.Store, case: Case
) -> None:
    async def go() -> None:
        async with _a(store) as a:
            args = await case.setup(store, a)
            # The first call, running in another server process, has claimed the key.
            claim = replay.begin(store, "mcp", "agent-a", "busy", fingerprint(case.tool, args),
                                 30)
            assert isinstance(claim, replay.Claim) and not claim.retry
            before, state = events(store), _state(store)
            busy = await fails(a, case.tool, **args, idempotency_key="busy")
            assert busy["error"] == "PreconditionFailed"
            assert "is still running; nothing was done" in busy["message"]
            assert 1 <= busy["retry_after"] <= 30
            assert events(store) == before and _state(store) == state

    run(go())


def test_keys_belong_to_the_agent(store: accord.Store) -> None:
    async def go() -> None:
        async with _a(store) as a, Client(build_server(store, agent="agent-b")) as b:
            await ok(a, "write", key="a", value="x", expect=0, idempotency_key="same")
            # agent-b's "same" is another key: its write is its own.
            mine = await ok(b, "write", key="a", value="x", expect=1, idempotency_key="same")
            assert mine["version"] == 2 and mine["author"] == "agent-b"

    run(go())


def test_a_refused_call_is_not_remembered(store: accord.Store) -> None:
    async def go() -> None:
        async with _a(store) as a, Client(build_server(store, agent="agent-b")) as b:
            await ok(b, "lease_acquire", key="k", wait=0)
            refused = await fails(a, "lease_acquire", key="k", wait=0, idempotency_key="l-1")
            assert refused["error"] == "LeaseTimeout"
            await ok(b, "lease_release", key="k", token=1)
            # The same call again runs again (nothing was applied), and now gets the lease.
            granted = await ok(a, "lease_acquire", key="k", wait=0, idempotency_key="l-1")
            assert granted["agent"] == "agent-a"
            assert await ok(a, "lease_acquire", key="k", wait=0,
                            idempotency_key="l-1") == granted

    run(go())


def test_a_merge_that_left_conflicts_is_not_remembered(store: accord.Store) -> None:
    async def go() -> None:
        async with _a(store) as a:
            await ok(a, "write", key="k", value="line\n", expect=0)
            one, two = await ok(a, "fork", key="k"), await ok(a, "fork", key="k")
            await ok(a, "branch_write", key="k", branch_id=one["branch_id"], value="A\n")
            await ok(a, "branch_write", key="k", branch_id=two["branch_id"], value="B\n")
            ids = [one["branch_id"], two["branch_id"]]
            left = await ok(a, "merge", key="k", branch_ids=ids, idempotency_key="m-1")
            assert left["committed"] is False and left["conflicts"]
            # Settled by editing a branch: the same merge call now commits.
            await ok(a, "branch_write", key="k", branch_id=two["branch_id"], value="A\n")
            done = await ok(a, "merge", key="k", branch_ids=ids, idempotency_key="m-1")
            assert done["committed"] is True and done["version"] == 2
            assert await ok(a, "merge", key="k", branch_ids=ids, idempotency_key="m-1") == done
            assert count(store, "merge") == 1

    run(go())


def test_bad_idempotency_keys_are_usage_errors(store: accord.Store) -> None:
    async def go() -> None:
        async with _a(store) as a:
            for bad in ("", "z" * 257, "\ud800"):
                refused = await fails(a, "lease_acquire", key="k", wait=0, idempotency_key=bad)
                assert refused["error"] == "UsageError", refused
                assert "idempotency key must be a non-empty string" in refused["message"]
            assert lease_mod.status(store, "k").holders == []
            wrong = await fails(a, "fork", key="k", idempotency_key=5)
            assert wrong["error"] == "UsageError" and "idempotency_key" in wrong["message"]

    run(go())


# --- the crash window ----------------------------------------------------------------


def _died(store: accord.Store, tool: str, args: dict[str, Any], key: str) -> None:
    """What a server that died mid-call leaves: its claim, which has lapsed."""
    claim = replay.begin(store, "mcp", "agent-a", key, fingerprint(tool, args), 0)
    assert isinstance(claim, replay.Claim)


async def _retry(store: accord.Store, a: Client, tool: str, args: dict[str, Any],
                 key: str) -> dict[str, Any]:
    result = await ok(a, tool, **args, idempotency_key=key)
    # Its answer is now kept: one more repeat is a plain replay.
    again = await a.call_tool(tool, {**args, "idempotency_key": key})
    assert again.structured_content == result and (again.meta or {}).get("accord/replayed") is True
    return result


def test_a_lease_granted_before_the_crash_is_the_answer(store: accord.Store) -> None:
    async def go() -> None:
        async with _a(store) as a:
            args = await _lease_acquire(store, a)
            _died(store, "lease_acquire", args, "acq")
            first = lease_mod.acquire(store.session("agent-a"), "k", ttl=30, wait=0)
            got = await _retry(store, a, "lease_acquire", args, "acq")
            assert got["token"] == first.token
            assert count(store, "lease_acquire") == 1
            # A lease held from before the call is not this call's: a new call waits for it.
            _died(store, "lease_acquire", args, "acq-2")
            late = await fails(a, "lease_acquire", **args, idempotency_key="acq-2")
            assert late["error"] == "LeaseTimeout"

    run(go())


def test_a_crash_before_anything_was_applied_runs_the_call(store: accord.Store) -> None:
    async def go() -> None:
        async with _a(store) as a:
            args = await _lease_acquire(store, a)
            _died(store, "lease_acquire", args, "acq")
            got = await _retry(store, a, "lease_acquire", args, "acq")
            assert got["token"] == 1 and count(store, "lease_acquire") == 1

    run(go())


def test_renew_and_release_done_before_the_crash_are_not_done_again(
    store: accord.Store,
) -> None:
    async def go() -> None:
        async with _a(store) as a:
            args = await _lease_renew(store, a)
            _died(store, "lease_renew", args, "renew")
            lease_mod.from_token(store.session("agent-a"), "k", args["token"]).renew(60)
            got = await _retry(store, a, "lease_renew", args, "renew")
            assert got["token"] == args["token"] and got["ttl"] == 60
            assert count(store, "lease_renew") == 1
            release = {"key": "k", "token": args["token"]}
            _died(store, "lease_release", release, "release")
            lease_mod.from_token(store.session("agent-a"), "k", args["token"]).release()
            assert await _retry(store, a, "lease_release", release, "release") == {
                "key": "k", "token": args["token"], "released": True}
            assert count(store, "lease_release") == 1

    run(go())


def test_a_request_decided_before_the_crash_answers_as_decided(store: accord.Store) -> None:
    async def go() -> None:
        async with _a(store) as a:
            args = await _accept(store, a)
            _died(store, "accept", args, "acc")
            request = queue.get_request(store, args["request_id"])
            store.session("agent-a").accept(request, "a line", expect=0)
            got = await _retry(store, a, "accept", args, "acc")
            assert got["status"] == "accepted" and got["version"] == 1
            assert count(store, "accept") == 1
            args = await _reject(store, a)
            _died(store, "reject", args, "rej")
            store.session("agent-a").reject(queue.get_request(store, args["request_id"]),
                                            "not now")
            got = await _retry(store, a, "reject", args, "rej")
            assert got["status"] == "rejected" and got["reason"] == "not now"
            assert count(store, "reject") == 1

    run(go())


def test_a_request_decided_otherwise_is_not_taken_for_this_call(store: accord.Store) -> None:
    async def go() -> None:
        async with _a(store) as a:
            args = await _accept(store, a)
            _died(store, "accept", args, "acc")
            request = queue.get_request(store, args["request_id"])
            store.session("agent-a").accept(request, "another value", expect=0)
            refused = await fails(a, "accept", **args, idempotency_key="acc")
            assert refused["error"] == "PreconditionFailed" and "already" in refused["message"]
            assert count(store, "accept") == 1

    run(go())


def test_a_fork_and_a_branch_write_before_the_crash_are_not_done_again(
    store: accord.Store,
) -> None:
    async def go() -> None:
        async with _a(store) as a:
            args = await _fork(store, a)
            _died(store, "fork", args, "fork")
            first = store.session("agent-a").fork("k")
            got = await _retry(store, a, "fork", args, "fork")
            assert got["branch_id"] == first.id and len(store.branches("k")) == 1
            write = {"key": "k", "branch_id": first.id, "value": "mine\n", "kind": "text"}
            _died(store, "branch_write", write, "bw")
            store.session("agent-a").branch("k", first.id).write("mine\n")
            version = store.backend.get(first.record_key)
            got = await _retry(store, a, "branch_write", write, "bw")
            assert got["value"] == "mine\n"
            assert store.backend.get(first.record_key) == version  # not written again

    run(go())


def test_a_branch_written_again_since_the_crash_is_not_overwritten(
    store: accord.Store,
) -> None:
    async def go() -> None:
        async with _a(store) as a:
            args = await _branch_write(store, a)
            _died(store, "branch_write", args, "bw")
            branch = store.session("agent-a").branch("k", args["branch_id"])
            branch.write("mine\n")
            branch.write("later\n")
            refused = await fails(a, "branch_write", **args, idempotency_key="bw")
            assert refused["error"] == "PreconditionFailed"
            assert "was written again after this call was first made" in refused["message"]
            assert branch.read() == "later\n"

    run(go())


def test_a_merge_committed_before_the_crash_is_not_committed_again(
    store: accord.Store,
) -> None:
    async def go() -> None:
        async with _a(store) as a:
            args = await _merge(store, a)
            _died(store, "merge", args, "m")
            _, doc = merge_branches(store.session("agent-a"), "k", args["branch_ids"])
            assert doc is not None
            got = await _retry(store, a, "merge", args, "m")
            assert got["committed"] is True and got["version"] == doc.version == 2
            assert got["value"] == "ONE\ntwo\nTHREE\n"
            assert sorted(got["branches"]) == sorted(args["branch_ids"])
            assert count(store, "merge") == 1

    run(go())


def test_writes_and_submissions_rely_on_the_librarys_own_key(store: accord.Store) -> None:
    async def go() -> None:
        async with _a(store) as a:
            args = await _write(store, a)
            _died(store, "write", args, "w")
            session = store.session("agent-a")
            session.write("k", "one", expect=0,
                          idempotency_key=replay.session_key("mcp", "agent-a", "w"))
            got = await _retry(store, a, "write", args, "w")
            assert got["version"] == 1 and count(store, "write") == 1
            args = await _submit(store, a)
            _died(store, "submit", args, "s")
            first = session.submit("q", "add a line",
                                   idempotency_key=replay.session_key("mcp", "agent-a", "s"))
            got = await _retry(store, a, "submit", args, "s")
            assert got["id"] == first.id and count(store, "submit") == 1

    run(go())


def test_two_crashes_in_a_row_keep_where_the_first_attempt_began(
    store: accord.Store,
) -> None:
    async def go() -> None:
        async with _a(store) as a:
            args = await _lease_acquire(store, a)
            _died(store, "lease_acquire", args, "acq")
            first = lease_mod.acquire(store.session("agent-a"), "k", ttl=30, wait=0)
            # The retry died too (its claim lapsed as well).
            again = replay.begin(store, "mcp", "agent-a", "acq",
                                 fingerprint("lease_acquire", args), 0)
            assert isinstance(again, replay.Claim) and again.retry
            got = await _retry(store, a, "lease_acquire", args, "acq")
            assert got["token"] == first.token and count(store, "lease_acquire") == 1

    run(go())


def test_a_repeat_waits_out_a_running_lease_acquire(store: accord.Store) -> None:
    """Two real calls with one key: the second comes while the first waits in line."""

    async def go() -> None:
        async with _a(store) as a, Client(build_server(store, agent="agent-b")) as b:
            held = await ok(b, "lease_acquire", key="k", wait=0)
            first = asyncio.ensure_future(
                a.call_tool("lease_acquire", {"key": "k", "wait": 20, "idempotency_key": "w"}))
            # Bounded wait until the first call is in line (the store's own view).
            for _ in range(400):
                if lease_mod.status(store, "k").waiters:
                    break
                await asyncio.sleep(0.025)
            assert lease_mod.status(store, "k").waiters, "the first call never queued"
            error, busy = await call(a, "lease_acquire", key="k", wait=20, idempotency_key="w")
            assert error and busy["error"] == "PreconditionFailed", busy
            await ok(b, "lease_release", key="k", token=held["token"])
            granted = await asyncio.wait_for(first, 30)
            assert not granted.is_error
            replayed = await ok(a, "lease_acquire", key="k", wait=20, idempotency_key="w")
            assert replayed == granted.structured_content
            assert count(store, "lease_acquire") == 1

    run(go())


def test_replay_records_are_json_in_their_own_prefix(store: accord.Store) -> None:
    async def go() -> None:
        async with _a(store) as a:
            await ok(a, "lease_acquire", key="k", wait=0, idempotency_key="r")
        rec = store.backend.get(replay.record_key("mcp", "agent-a", "r"))
        assert rec is not None and rec.key.startswith(".accord/idem/mcp/")
        data = json.loads(rec.data)
        assert data["state"] == "done" and data["answer"]["structured"]["token"] == 1
        assert data["operation"] == "lease_acquire of k"

    run(go())
