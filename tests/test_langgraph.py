"""accord.langgraph.AccordStore: the BaseStore contract, the key mapping, versions, policies.

LangGraph's wheels (langgraph 1.2, langgraph-checkpoint 4.3) ship no store
tests to run against another store, so this file is the conformance suite:
the contract as BaseStore's docstrings state it, checked on every backend,
and the results of the same operations compared with LangGraph's own
InMemoryStore.
"""

from __future__ import annotations

import asyncio
import operator
import threading
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore
from langgraph.types import Send

import accord
from accord.keys import validate_key
from accord.langgraph import (
    AccordStore,
    VersionedItem,
    VersionedSearchItem,
    decode_key,
    encode_key,
    updates,
)

NS = ("docs", "team")


@pytest.fixture
def lg(store: accord.Store) -> AccordStore:
    return AccordStore(store)


# --- the key mapping ----------------------------------------------------------------

hard_text = st.one_of(
    st.sampled_from(["", ".", "..", "%", "%2E", "%%", "a/b", "/", "//", "%2F", "x\x00y", "\x7f"]),
    st.text(
        alphabet=st.one_of(
            st.sampled_from("./%\x00\x01\x1f\x7f\n\t "),
            st.characters(codec="utf-8", exclude_categories=("Cs",)),
        ),
        max_size=12,
    ),
)


@given(
    namespace=st.lists(hard_text, min_size=0, max_size=4).map(tuple),
    key=hard_text,
    prefix=st.sampled_from(["langgraph", "apps/memory", "ünï"]),
)
@settings(max_examples=400)
def test_key_mapping_is_reversible_and_valid(
    namespace: tuple[str, ...], key: str, prefix: str
) -> None:
    try:
        akey = encode_key(namespace, key, prefix)
    except accord.InvalidKey as exc:
        assert "over the limit of 512" in str(exc)
        return
    assert validate_key(akey) == akey
    assert akey.startswith(prefix + "/")
    assert decode_key(akey, prefix) == (namespace, key)
    assert akey.count("/") == prefix.count("/") + len(namespace) + 1


@given(
    a=st.tuples(st.lists(hard_text, max_size=3).map(tuple), hard_text),
    b=st.tuples(st.lists(hard_text, max_size=3).map(tuple), hard_text),
)
def test_key_mapping_is_injective(
    a: tuple[tuple[str, ...], str], b: tuple[tuple[str, ...], str]
) -> None:
    if a != b:
        assert encode_key(*a) != encode_key(*b)


def test_key_mapping_examples() -> None:
    assert encode_key(("docs", "user-1"), "plan.md") == "langgraph/docs/user-1/plan.md"
    assert encode_key(("a/b",), "..") == "langgraph/a%2Fb/%2E%2E"
    assert encode_key(("100%",), "") == "langgraph/100%25/%"
    assert encode_key(("π",), "line\n") == "langgraph/π/line%0A"
    # Keys under the prefix that are not canonical spellings are not items.
    for foreign in ("langgraph/a%2fb/k", "langgraph/a%/k", "langgraph/%41/k", "other/a/k"):
        assert decode_key(foreign) is None
    assert decode_key("langgraph/a/%") == (("a",), "")


def test_long_names_get_a_clear_error(lg: AccordStore) -> None:
    with pytest.raises(accord.InvalidKey, match="over the limit of 512"):
        lg.put(("x" * 300,), "y" * 300, {"v": 1})


def test_odd_keys_round_trip_through_the_store(lg: AccordStore) -> None:
    keys = ["", ".", "..", "a/b", "100%", "tab\tkey", "ключ", "%2F"]
    for key in keys:
        lg.put(("odd",), key, {"key": key})
    for key in keys:
        item = lg.get(("odd",), key)
        assert item is not None and item.value == {"key": key} and item.key == key
    found = lg.search(("odd",), limit=100)
    assert sorted(i.key for i in found) == sorted(keys)


# --- the BaseStore contract, on every backend ------------------------------------------


def test_get_put_delete(lg: AccordStore) -> None:
    assert lg.get(NS, "missing") is None
    lg.put(NS, "a", {"text": "hello", "n": 1})
    item = lg.get(NS, "a")
    assert isinstance(item, VersionedItem)
    assert item.value == {"text": "hello", "n": 1}
    assert item.key == "a" and item.namespace == NS and item.version == 1
    assert item.created_at == item.updated_at
    assert item.created_at.tzinfo is not None
    lg.put(NS, "a", {"text": "bye"}, expect=1)
    again = lg.get(NS, "a")
    assert again is not None and again.version == 2 and again.value == {"text": "bye"}
    assert again.created_at == item.created_at and again.updated_at >= item.updated_at
    assert again.dict()["version"] == 2
    lg.delete(NS, "a", expect=2)
    assert lg.get(NS, "a") is None
    lg.delete(NS, "a")  # deleting what does not exist is a no-op, as in LangGraph
    lg.put(NS, "a", {"text": "again"})  # re-create: versions go on, never reused
    recreated = lg.get(NS, "a")
    assert recreated is not None and recreated.version == 4


def test_batch_returns_results_in_order(lg: AccordStore) -> None:
    results = lg.batch(
        [
            PutOp(NS, "a", {"n": 1}),
            GetOp(NS, "a"),
            SearchOp(("docs",)),
            ListNamespacesOp(),
            PutOp(NS, "b", None),
            GetOp(NS, "b"),
        ]
    )
    assert results[0] is None
    assert isinstance(results[1], VersionedItem) and results[1].value == {"n": 1}
    assert [i.key for i in results[2]] == ["a"]  # type: ignore[union-attr]
    assert results[3] == [NS]
    assert results[4] is None and results[5] is None
    # A delete (PutOp with value None) of an existing item needs a version,
    # like a put: refused under the default policy.
    with pytest.raises(accord.PreconditionRequired):
        lg.batch([PutOp(NS, "a", None)])


def test_namespace_rules_are_langgraphs(lg: AccordStore) -> None:
    with pytest.raises(InvalidNamespaceError):
        lg.put(("a.b",), "k", {"v": 1})
    with pytest.raises(InvalidNamespaceError):
        lg.batch([GetOp(("a.b",), "k")])
    with pytest.raises(InvalidNamespaceError):
        lg.put((), "k", {"v": 1})
    with pytest.raises(InvalidNamespaceError):
        lg.put(("langgraph",), "k", {"v": 1})
    with pytest.raises(InvalidNamespaceError, match="cannot be empty"):
        lg.batch([PutOp((), "k", {"v": 1})])


def test_values_must_be_dicts(lg: AccordStore) -> None:
    with pytest.raises(accord.InvalidValue, match="must be a dict"):
        lg.put(NS, "k", "text")  # type: ignore[arg-type]
    with pytest.raises(accord.InvalidValue):
        lg.put(NS, "k", {"when": object()})
    assert lg.get(NS, "k") is None


def test_ttl_is_unsupported_and_says_so(lg: AccordStore) -> None:
    assert lg.supports_ttl is False
    with pytest.raises(NotImplementedError, match="TTL is not supported"):
        lg.put(NS, "k", {"v": 1}, ttl=5)
    with pytest.raises(NotImplementedError, match="TTL is not supported"):
        lg.batch([PutOp(NS, "k", {"v": 1}, ttl=5.0)])
    assert lg.get(NS, "k") is None
    lg.put(NS, "k", {"v": 1}, ttl=None)
    assert lg.get(NS, "k", refresh_ttl=True) is not None


def test_query_without_index_is_a_clear_error(lg: AccordStore) -> None:
    lg.put(NS, "k", {"v": 1})
    with pytest.raises(accord.UsageError, match="no semantic index"):
        lg.search(("docs",), query="what is k?")


def test_search_filter_limit_offset(lg: AccordStore) -> None:
    for i in range(7):
        lg.put(("docs", f"u{i % 2}"), f"k{i}", {"n": i, "tag": "even" if i % 2 == 0 else "odd"})
    lg.put(("other",), "x", {"n": 100, "tag": "even"})
    everything = lg.search(("docs",), limit=100)
    assert [(i.namespace, i.key) for i in everything] == sorted(
        (("docs", f"u{i % 2}"), f"k{i}") for i in range(7)
    )
    assert all(isinstance(i, VersionedSearchItem) and i.score is None for i in everything)
    assert [i.key for i in lg.search(("docs",), filter={"tag": "even"}, limit=100)] == [
        "k0", "k2", "k4", "k6"
    ]
    # Ordered by (namespace, key): ("docs", "u0") holds k4, ("docs", "u1") k3 and k5.
    assert [i.key for i in lg.search(("docs",), filter={"n": {"$gte": 3, "$lt": 6}})] == [
        "k4", "k3", "k5"
    ]
    assert [i.key for i in lg.search(("docs",), filter={"n": {"$ne": 0}}, limit=2, offset=1)] == [
        "k4", "k6"
    ]
    assert len(lg.search(("docs",))) == 7  # default limit is 10
    assert len(lg.search(("docs",), limit=3)) == 3
    assert lg.search(("docs",), offset=50) == []
    assert [i.key for i in lg.search(())] == [*(i.key for i in everything), "x"]
    assert lg.search(("doc",)) == []  # a prefix of labels, not of characters


def test_dotted_filter_keys_reach_nested_fields(lg: AccordStore) -> None:
    lg.put(("docs",), "nested", {"user": {"access-level": "high"}})
    lg.put(("docs",), "flat", {"user.access-level": "high"})
    found = lg.search(("docs",), filter={"user.access-level": "high"})
    assert sorted(i.key for i in found) == ["flat", "nested"]
    assert lg.search(("docs",), filter={"user.missing.deeper": "high"}) == []


@pytest.mark.parametrize("namespace", [("foo.bar",), ("foo", ""), (123,)])
def test_invalid_labels_are_refused_by_every_method(
    lg: AccordStore, namespace: tuple[Any, ...]
) -> None:
    calls: list[Callable[[], Any]] = [
        lambda: lg.get(namespace, "k"),
        lambda: lg.put(namespace, "k", {"v": 1}),
        lambda: lg.put(namespace, "k", {"v": 1}, expect=0),
        lambda: lg.delete(namespace, "k"),
        lambda: lg.delete(namespace, "k", expect=1),
        lambda: lg.update(namespace, "k", lambda v: {"v": 1}),
        lambda: lg.search(namespace),
        lambda: lg.list_namespaces(prefix=namespace),
        lambda: lg.list_namespaces(suffix=namespace),
        lambda: asyncio.run(lg.aput(namespace, "k", {"v": 1})),
        lambda: asyncio.run(lg.asearch(namespace)),
    ]
    for call in calls:
        with pytest.raises(InvalidNamespaceError):
            call()
    assert lg.store.revision() == 0  # nothing reached the store


def test_list_namespaces(lg: AccordStore) -> None:
    for ns in [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "b", "d", "i"), ("a", "b", "f"),
               ("a", "c", "f"), ("x", "v1")]:
        lg.put(ns, "k", {"v": 1})
    # The example of BaseStore.list_namespaces' docstring.
    assert lg.list_namespaces(prefix=("a", "b"), max_depth=3) == [
        ("a", "b", "c"), ("a", "b", "d"), ("a", "b", "f")
    ]
    assert lg.list_namespaces(suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f")]
    assert lg.list_namespaces(prefix=("a", "*", "f")) == [("a", "b", "f"), ("a", "c", "f")]
    assert lg.list_namespaces(prefix=("a",), suffix=("e",)) == [("a", "b", "d", "e")]
    assert lg.list_namespaces(max_depth=1) == [("a",), ("x",)]
    assert lg.list_namespaces(limit=2, offset=1) == [("a", "b", "d", "e"), ("a", "b", "d", "i")]
    lg.delete(("x", "v1"), "k", expect=1)
    assert ("x", "v1") not in lg.list_namespaces()  # a namespace lives while it holds items


# --- versions and the overwrite policy -----------------------------------------------------


def test_put_with_a_stale_version_is_a_conflict_naming_the_writer(store: accord.Store) -> None:
    a = AccordStore(store, agent="node-a")
    b = AccordStore(store, agent="node-b")
    a.put(NS, "doc", {"lines": ["one"]})
    seen_by_a = a.get(NS, "doc")
    seen_by_b = b.get(NS, "doc")
    assert seen_by_a is not None and seen_by_b is not None
    b.put(NS, "doc", {"lines": ["one", "two"]}, expect=seen_by_b.version)
    with pytest.raises(accord.Conflict) as info:
        a.put(NS, "doc", {"lines": ["one", "three"]}, expect=seen_by_a.version)
    message = str(info.value)
    assert "you wrote based on version 1, but it is at version 2 (v2 by node-b)" in message
    assert "write with expect=2" in message
    current = a.get(NS, "doc")
    assert current is not None and current.value == {"lines": ["one", "two"]}


def test_plain_put_over_an_item_is_refused_by_default(lg: AccordStore) -> None:
    lg.put(NS, "doc", {"v": 1})
    with pytest.raises(accord.PreconditionRequired) as info:
        lg.put(NS, "doc", {"v": 2})
    message = str(info.value)
    assert "already exists (version 1" in message
    assert "expect=item.version" in message and "store.update" in message
    assert info.value.key == "langgraph/docs/team/doc"  # type: ignore[attr-defined]
    with pytest.raises(accord.PreconditionRequired, match="without a version"):
        lg.delete(NS, "doc")
    item = lg.get(NS, "doc")
    assert item is not None and item.value == {"v": 1} and item.version == 1


def test_last_write_wins_is_a_recorded_blind_write(store: accord.Store) -> None:
    lg = AccordStore(store, on_overwrite="last-write-wins", agent="node")
    lg.put(NS, "doc", {"v": 1})
    first = lg.get(NS, "doc")
    lg.put(NS, "doc", {"v": 2})
    lg.delete(NS, "doc")
    lg.delete(NS, "doc")  # absent: still a no-op
    assert lg.get(NS, "doc") is None
    events = [e for e in store.history() if e.op in ("write", "delete") and e.outcome == "ok"]
    assert [(e.op, e.check) for e in events] == [
        ("write", "none"), ("write", "none"), ("delete", "none")
    ]
    assert first is not None and events[1].based_on == first.version


def test_update_retries_and_never_loses_a_change(store: accord.Store) -> None:
    lg = AccordStore(store)
    lg.put(NS, "counter", {"n": 0})
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        first = [True]

        def bump(value: dict[str, Any] | None) -> dict[str, Any]:
            assert value is not None
            if first[0]:
                first[0] = False
                barrier.wait(10)
            return {"n": value["n"] + 1}

        try:
            AccordStore(store, agent=f"w{i}").update(NS, "counter", bump, retries=20)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    item = lg.get(NS, "counter")
    assert item is not None and item.value == {"n": 4} and item.version == 5
    created = lg.update(NS, "fresh", lambda v: {"was": v})
    assert created.value == {"was": None} and created.version == 1
    with pytest.raises(accord.InvalidValue):
        lg.update(NS, "fresh", lambda v: None)  # type: ignore[arg-type,return-value]


def test_items_written_by_other_clients(store: accord.Store) -> None:
    lg = AccordStore(store)
    s = store.session("cli")
    s.write("langgraph/docs/team/plain", {"from": "cli"})
    s.write("langgraph/docs/team/text", "not a dict")
    item = lg.get(NS, "plain")
    assert item is not None and item.value == {"from": "cli"} and item.version == 1
    with pytest.raises(accord.InvalidValue, match="not a LangGraph item"):
        lg.get(NS, "text")


def test_async_methods(lg: AccordStore) -> None:
    async def go() -> None:
        await lg.aput(NS, "a", {"n": 1})
        item = await lg.aget(NS, "a")
        assert isinstance(item, VersionedItem) and item.version == 1
        await lg.aput(NS, "a", {"n": 2}, expect=1)
        updated = await lg.aupdate(NS, "a", lambda v: {"n": (v or {})["n"] + 1})
        assert updated.value == {"n": 3}
        assert [i.key for i in await lg.asearch(("docs",))] == ["a"]
        assert await lg.alist_namespaces() == [NS]
        await lg.adelete(NS, "a", expect=3)
        assert await lg.aget(NS, "a") is None
        with pytest.raises(accord.PreconditionRequired):
            await lg.aput(NS, "b", {"n": 1})
            await lg.aput(NS, "b", {"n": 2})

    asyncio.run(go())


def test_constructor_checks_its_arguments(store: accord.Store, tmp_path: Any) -> None:
    with pytest.raises(accord.UsageError, match="on_overwrite"):
        AccordStore(store, on_overwrite="merge")  # type: ignore[arg-type]
    with pytest.raises(accord.InvalidKey):
        AccordStore(store, prefix="a//b")
    with AccordStore(f"sqlite:///{tmp_path / 's.db'}") as owned:
        owned.put(NS, "k", {"v": 1})
        assert "sqlite" in repr(owned)


# --- the same operations on InMemoryStore give the same results ---------------------------

labels = st.sampled_from(["a", "b", "c"])
namespaces = st.lists(labels, min_size=1, max_size=3).map(tuple)
values = st.fixed_dictionaries(
    {"n": st.integers(0, 5), "tag": st.sampled_from(["x", "y"])},
    optional={"meta": st.fixed_dictionaries({"k": st.integers(0, 2)})},
)
filters = st.one_of(
    st.none(),
    st.fixed_dictionaries({"tag": st.sampled_from(["x", "y"])}),
    st.fixed_dictionaries({"n": st.sampled_from(
        [{"$gt": 2}, {"$gte": 2}, {"$lt": 3}, {"$lte": 1}, {"$ne": 3}, {"$eq": 4}, 2]
    )}),
    st.fixed_dictionaries({"meta": st.fixed_dictionaries({"k": st.integers(0, 2)})}),
)
patterns = st.lists(st.one_of(labels, st.just("*")), min_size=1, max_size=3).map(tuple)


def _filled(items: dict[tuple[tuple[str, ...], str], dict[str, Any]]) -> tuple[Any, Any]:
    accord_store = AccordStore(accord.open("memory://"))
    memory = InMemoryStore()
    # Inserted in (namespace, key) order, the order AccordStore returns: then
    # InMemoryStore's insertion order agrees, and pages can be compared too.
    for (ns, key), value in sorted(items.items()):
        accord_store.put(ns, key, value)
        memory.put(ns, key, value)
    return accord_store, memory


def _view(results: list[Any]) -> list[tuple[tuple[str, ...], str, dict[str, Any]]]:
    return [(tuple(i.namespace), i.key, i.value) for i in results]


@given(
    items=st.dictionaries(st.tuples(namespaces, st.sampled_from(["k1", "k2", "k3"])), values,
                          max_size=12),
    prefix=st.lists(labels, max_size=2).map(tuple),
    flt=filters,
    limit=st.integers(0, 6),
    offset=st.integers(0, 4),
)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_search_agrees_with_inmemorystore(
    items: dict[tuple[tuple[str, ...], str], dict[str, Any]],
    prefix: tuple[str, ...],
    flt: dict[str, Any] | None,
    limit: int,
    offset: int,
) -> None:
    ours, theirs = _filled(items)
    got = ours.search(prefix, filter=flt, limit=limit, offset=offset)
    want = theirs.search(prefix, filter=flt, limit=limit, offset=offset)
    assert _view(got) == _view(want)
    for (ns, key), _ in items.items():
        mine, other = ours.get(ns, key), theirs.get(ns, key)
        assert mine is not None and other is not None and mine.value == other.value


@given(
    items=st.dictionaries(st.tuples(namespaces, st.just("k")), values, min_size=0, max_size=10),
    prefix=st.one_of(st.none(), patterns),
    suffix=st.one_of(st.none(), patterns),
    max_depth=st.one_of(st.none(), st.integers(1, 3)),
    limit=st.integers(1, 6),
    offset=st.integers(0, 3),
)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_list_namespaces_agrees_with_inmemorystore(
    items: dict[tuple[tuple[str, ...], str], dict[str, Any]],
    prefix: tuple[str, ...] | None,
    suffix: tuple[str, ...] | None,
    max_depth: int | None,
    limit: int,
    offset: int,
) -> None:
    ours, theirs = _filled(items)
    kwargs: dict[str, Any] = {"prefix": prefix, "suffix": suffix, "max_depth": max_depth,
                              "limit": limit, "offset": offset}
    assert ours.list_namespaces(**kwargs) == theirs.list_namespaces(**kwargs)
    op = ListNamespacesOp(
        match_conditions=(MatchCondition("prefix", prefix),) if prefix else None,
        max_depth=max_depth, limit=limit, offset=offset,
    )
    assert ours.batch([op]) == theirs.batch([op])


# --- inside a graph -----------------------------------------------------------------------------


class _State(TypedDict):
    done: Annotated[list[str], operator.add]


def test_parallel_nodes_with_the_updates_helper(store: accord.Store) -> None:
    lg = AccordStore(store)
    lg.put(("shared",), "doc", {"lines": []})
    barrier = threading.Barrier(3)
    builder = StateGraph(_State)
    for name in ("alpha", "beta", "gamma"):
        first = [True]

        def append(doc: dict[str, Any] | None, state: Any, name: str = name,
                   first: list[bool] = first) -> dict[str, Any]:
            assert doc is not None
            if first[0]:
                first[0] = False
                barrier.wait(10)  # all three read the same version before writing
            return {"lines": [*doc["lines"], name]}

        builder.add_node(name, updates(("shared",), "doc")(append))
        builder.add_edge(START, name)
        builder.add_edge(name, END)
    builder.compile(store=lg).invoke({"done": []})
    item = lg.get(("shared",), "doc")
    assert item is not None and sorted(item.value["lines"]) == ["alpha", "beta", "gamma"]
    writers = {e.agent for e in store.history(key="langgraph/shared/doc") if e.op == "write"}
    assert writers == {"langgraph", "alpha", "beta", "gamma"}  # the node names are the agents
    assert accord.check(store).ok


def test_updates_helper_refuses_other_stores() -> None:
    node = updates(("a",), "k")(lambda doc, state: {"v": 1})
    builder = StateGraph(_State)
    builder.add_node("n", node)
    builder.add_edge(START, "n")
    with pytest.raises(accord.UsageError, match="Compile the graph with store=AccordStore"):
        builder.compile(store=InMemoryStore()).invoke({"done": []})


def test_send_tasks_of_one_node_are_different_agents(store: accord.Store) -> None:
    lg = AccordStore(store)

    def fan(state: _State) -> list[Send]:
        return [Send("worker", {"done": []}) for _ in range(3)]

    def worker(state: _State, *, store: BaseStore) -> dict[str, Any]:
        assert isinstance(store, AccordStore)
        store.update(("jobs",), "count", lambda v: {"n": (v or {"n": 0})["n"] + 1})
        return {"done": [store.agent_name()]}

    builder = StateGraph(_State)
    builder.add_node("worker", worker)
    builder.add_conditional_edges(START, fan)
    builder.add_edge("worker", END)
    done = builder.compile(store=lg).invoke({"done": []})["done"]
    assert len(set(done)) == 3 and all(a.startswith("worker#") for a in done)
    item = lg.get(("jobs",), "count")
    assert item is not None and item.value == {"n": 3}
    assert lg.agent_name() == "langgraph"
    fixed: Callable[[], str] = lambda: "me"  # noqa: E731
    assert AccordStore(store, agent=fixed).agent_name() == "me"


def test_async_graph_uses_abatch(store: accord.Store) -> None:
    lg = AccordStore(store)

    async def node(state: _State, *, store: BaseStore) -> dict[str, Any]:
        await store.aput(("a",), "k", {"v": 1})
        item = await store.aget(("a",), "k")
        assert isinstance(item, VersionedItem)
        return {"done": [f"v{item.version}"]}

    builder = StateGraph(_State)
    builder.add_node("n", node)
    builder.add_edge(START, "n")
    out = asyncio.run(builder.compile(store=lg).ainvoke({"done": []}))
    assert out["done"] == ["v1"]
    assert {e.agent for e in store.history() if e.op == "write"} == {"n"}
