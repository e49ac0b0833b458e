"""Hypothesis throws bad tool arguments at the MCP server, on every backend.

Wrong types, huge strings, invalid keys, negative or absurd TTLs, unknown
request and branch ids, other agents' lease tokens, bad and reused
idempotency keys (on every tool that takes one):
every call must come back as a result (a tool error with a message, never an
internal error), the server keeps serving, and the store holds exactly what
the calls that succeeded acknowledged.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

import accord
from accord.mcp import MAX_WAIT, build_server

from .mcp_helpers import run

LIMIT = 4096  # the store's value size limit in these tests, so "huge" stays cheap
GOOD_KEYS = ["a", "docs/b.md", "x/y/z"]
BAD_KEYS: list[Any] = [
    "", "/", "a//b", "../x", "a/./b", ".accord/agents/x", ".accord", "a\x00b", "k" * 600,
    5, None, ["a"], {"k": 1}, True,
]

keys = st.one_of(st.sampled_from(GOOD_KEYS), st.sampled_from(BAD_KEYS))
texts = st.one_of(
    st.text(max_size=30),
    st.just("x" * (LIMIT + 1)),
    st.just('{"a": [1, 2]}'),
    st.just("bm90IGJhc2U2NA=="),
    st.just("not base64!!"),
)
anything = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
    st.text(max_size=10), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
values = st.one_of(texts, anything)
versions = st.one_of(st.integers(-3, 6), st.just(2**70), anything)
seconds = st.one_of(
    st.floats(-10, 0.5), st.just(1e9), st.just(float("inf")), st.just(-0.0), anything,
    st.just(30),
)
kinds = st.one_of(st.sampled_from(["text", "json", "bytes"]), anything)
idem = st.one_of(st.none(), st.sampled_from(["i-1", "i-2", "", "z" * 300, "\ud800"]),
                anything)
ids = st.one_of(st.sampled_from(["r-0", "b-0", "", "../x", "r-" + "0" * 24]), anything)


def _args(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Arguments where each field may be present or missing, of any type."""
    return st.fixed_dictionaries({}, optional=fields)


def _typed(
    required: dict[str, st.SearchStrategy[Any]], **optional: st.SearchStrategy[Any]
) -> st.SearchStrategy[dict[str, Any]]:
    """Arguments of the right types, with adversarial values."""
    return st.fixed_dictionaries(required, optional=optional)


str_keys = st.one_of(st.sampled_from(GOOD_KEYS), st.sampled_from(GOOD_KEYS),
                     st.sampled_from([k for k in BAD_KEYS if isinstance(k, str)]))
ints = st.one_of(st.integers(-3, 6), st.just(2**70))
floats = st.one_of(st.floats(-10, 2), st.just(1e9), st.just(0.0), st.just(30.0))
text_kinds = st.sampled_from(["text", "text", "json", "bytes"])
str_idem = st.sampled_from(["i-1", "i-2", "", "z" * 300, "\ud800", "i-1"])
str_ids = st.sampled_from(["r-0", "b-0", "", "../x", "r-" + "0" * 24, "b-" + "0" * 12])
TOKEN = st.one_of(st.integers(-2, 12), st.just("other"))

PLAUSIBLE = st.one_of(
    st.tuples(st.just("write"), _typed(
        {"key": st.sampled_from(GOOD_KEYS), "value": st.text(max_size=20),
         "expect": st.integers(0, 3)}, idempotency_key=str_idem)),
    st.tuples(st.just("delete"), _typed(
        {"key": st.sampled_from(GOOD_KEYS), "expect": st.integers(1, 4)})),
    st.tuples(st.just("lease_acquire"), _typed(
        {"key": st.sampled_from(GOOD_KEYS)}, ttl=st.just(30.0), wait=st.just(0),
        idempotency_key=str_idem)),
    st.tuples(st.just("write_leased"), _typed(
        {"key": st.sampled_from(GOOD_KEYS), "value": st.text(max_size=20),
         "token": st.integers(1, 4)})),
)

WELL_TYPED = st.one_of(
    st.tuples(st.just("read"), _typed({"key": str_keys})),
    st.tuples(st.just("list"), _typed({}, prefix=st.sampled_from(["", "docs/", "\x01"]),
                                      limit=ints)),
    st.tuples(st.just("write"), _typed({"key": str_keys, "value": texts, "expect": ints},
                                       kind=text_kinds, idempotency_key=str_idem)),
    st.tuples(st.just("delete"), _typed({"key": str_keys, "expect": ints},
                                        idempotency_key=str_idem)),
    st.tuples(st.just("lease_acquire"), _typed(
        {"key": str_keys}, ttl=floats, wait=st.sampled_from([0, -1.5, 1e6]),
        mode=st.sampled_from(["exclusive", "shared"]), idempotency_key=str_idem)),
    st.tuples(st.just("lease_renew"), _typed({"key": str_keys, "token": TOKEN}, ttl=floats,
                                             idempotency_key=str_idem)),
    st.tuples(st.just("lease_release"), _typed({"key": str_keys, "token": TOKEN},
                                               idempotency_key=str_idem)),
    st.tuples(st.just("write_leased"), _typed(
        {"key": str_keys, "value": texts, "token": TOKEN}, kind=text_kinds,
        idempotency_key=str_idem)),
    st.tuples(st.just("submit"), _typed({"key": str_keys, "change": texts}, kind=text_kinds,
                                        idempotency_key=str_idem)),
    st.tuples(st.just("request_status"), _typed(
        {"request_id": str_ids}, wait=st.sampled_from([0, -1.0, 600]))),
    st.tuples(st.just("accept"), _typed(
        {"key": str_keys, "request_id": str_ids, "value": texts, "expect": ints},
        idempotency_key=str_idem)),
    st.tuples(st.just("reject"), _typed(
        {"key": str_keys, "request_id": str_ids, "reason": texts}, idempotency_key=str_idem)),
    st.tuples(st.just("fork"), _typed({"key": str_keys}, idempotency_key=str_idem)),
    st.tuples(st.just("branch_write"), _typed(
        {"key": str_keys, "branch_id": str_ids, "value": texts}, idempotency_key=str_idem)),
    st.tuples(st.just("merge"), _typed(
        {"key": str_keys}, branch_ids=st.lists(str_ids, max_size=2),
        prefer=st.sampled_from(["current", "b-0"]),
        resolutions=st.dictionaries(st.sampled_from(["line 1", "$.a"]), str_ids, max_size=1),
        idempotency_key=str_idem)),
    st.tuples(st.just("log"), _typed({}, key=str_keys, limit=ints)),
)

WILD = st.one_of(
    st.tuples(st.sampled_from(["read", "write", "delete", "lease_acquire", "lease_renew",
                               "lease_release", "write_leased", "submit", "accept", "reject",
                               "fork", "branch_write", "merge", "log", "list"]),
              _args(key=keys, value=values, expect=versions, ttl=seconds, token=anything,
                    kind=kinds, idempotency_key=idem, request_id=ids, limit=anything,
                    branch_ids=anything, resolutions=anything)),
    st.tuples(st.sampled_from(["no_such_tool", "WRITE", ""]), _args(key=keys)),
)

CALLS = st.one_of(PLAUSIBLE, PLAUSIBLE, WELL_TYPED, WELL_TYPED, WILD)


def _state(store: accord.Store, key: str) -> tuple[bool, Any, int]:
    """(exists, value, version) of ``key``; the version of a deleted key is its delete's."""
    rec = store.backend.get(key)
    if rec is None:
        return (False, None, 0)
    if rec.deleted:
        return (False, None, rec.version)
    return (True, rec.value, rec.version)


def _stored(value: str, kind: str) -> Any:
    if kind == "json":
        return json.loads(value)
    if kind == "bytes":
        return base64.b64decode(value)
    return value


def test_bad_arguments_give_tool_errors_and_lose_nothing(
    open_store: Callable[..., accord.Store],
) -> None:
    store = open_store(max_value_size=LIMIT)
    seen: Counter[tuple[str, str]] = Counter()
    # agent-b holds leases whose tokens agent-a will try to use.
    other = store.session("agent-b")
    other_tokens = [other.acquire(k, ttl=3600, wait=0).token for k in ("x/y/z",)]

    @settings(
        max_examples=50,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(calls=st.lists(CALLS, min_size=5, max_size=25))
    def check(calls: list[tuple[str, dict[str, Any]]]) -> None:
        # What the successful calls acknowledged: key -> (exists, value, version). The
        # version counts deletes too, so an idempotent replay (which answers with the
        # first call's version) is told apart from a new write.
        model = {key: _state(store, key) for key in GOOD_KEYS}
        my_tokens: list[int] = []

        async def go() -> None:
            async with Client(build_server(store, agent="agent-a")) as client:
                for tool, arguments in calls:
                    arguments = dict(arguments)
                    if arguments.get("token") == "other":
                        arguments["token"] = other_tokens[0]
                    wait = arguments.get("wait", 10)
                    if (tool == "lease_acquire" and isinstance(wait, (int, float))
                            and 0 < wait <= MAX_WAIT):
                        # A lease held by agent-a itself would make it wait out the whole
                        # wait: keep the run fast (waits over the limit are still sent).
                        arguments["wait"] = 0
                    result = await client.call_tool(tool, arguments)
                    data = result.structured_content or {}
                    seen[(tool, data.get("error", "?") if result.is_error else "ok")] += 1
                    if result.is_error:
                        text = result.content[0].text  # type: ignore[union-attr]
                        assert data.get("error") not in (None, "InternalError"), (tool, data)
                        assert text and data.get("message") == text
                        assert "Traceback" not in text
                        continue
                    if tool == "lease_acquire":
                        my_tokens.append(data["token"])
                    version = data.get("version")
                    if tool in ("write", "write_leased", "merge", "delete") and (
                        isinstance(version, int) and version > model[data["key"]][2]
                    ):
                        if tool == "delete":
                            model[data["key"]] = (False, None, version)
                        elif tool == "merge":
                            model[data["key"]] = (True, data["value"], version)
                        else:
                            kind = arguments.get("kind", "text")
                            model[data["key"]] = (True, _stored(arguments["value"], kind),
                                                  version)
                # Still serving after all that.
                assert (await client.call_tool("whoami", {})).structured_content == {
                    "agent": "agent-a", "transport": "stdio", "manifest": None}
                for token in my_tokens:
                    for key in GOOD_KEYS:
                        await client.call_tool("lease_release", {"key": key, "token": token})

        run(go())
        for key in GOOD_KEYS:
            assert _state(store, key) == model[key], key
        agent_keys = {d.key for d in store.session("model").scan("")}
        assert agent_keys <= set(GOOD_KEYS), agent_keys

    check()
    print(sorted(seen.items()))
    # The run reached both sides: calls that were refused and calls that changed the store.
    errors = {error for (_, error) in seen}
    assert seen[("write", "ok")] and {"Conflict", "InvalidKey", "UsageError"} <= errors, seen
