"""The backends' short paths mean exactly what the general txn() means.

``put_if_version`` (SQLite: the optimistic write in four statements;
PostgreSQL: one call of ``accord_put_if`` instead of ``accord_txn``) and
SQLite's ``read_live`` (a read without a Record) are taken by every
``Session.write(expect=)`` and ``Session.read``, so the conformance suite
covers them through the API; these tests pin the equivalence at the
backend, on both: the same events, the same revisions, the same refusals,
including the guard compares other strategies add.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from accord.backends.base import check_compare
from accord.backends.sqlite import SQLiteBackend
from accord.records import Append, Compare, Delete, Put

from .conftest import _postgres_schema_url, require_postgres


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> Any:
    b = SQLiteBackend(f"sqlite:///{tmp_path}/fast.db")
    yield b
    b.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        b: Any = SQLiteBackend(f"sqlite:///{tmp_path}/fast.db")
        yield b
        b.close()
        return
    require_postgres()
    from accord.backends.postgres import PostgresBackend

    url, drop = _postgres_schema_url()
    b = PostgresBackend(url)
    yield b
    b.close()
    drop()


def _event(agent: str = "a", **extra: Any) -> dict[str, Any]:
    return {"agent": agent, "op": "write", "key": "k", "check": "version", **extra}


def _put(value: bytes, agent: str = "a", event: dict[str, Any] | None = None) -> Put:
    return Put("k", "text", value, agent, 1, "{}", event=_event(agent) if event is None else event)


def _create(backend: Any) -> None:
    backend.txn([Compare("k", "version", "==", 0)], [_put(b"v1")])


def _strip(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "time"}


def test_short_path_event_equals_the_general_one(backend: Any) -> None:
    _create(backend)
    general = backend.txn([Compare("k", "version", "==", 1)], [_put(b"v2")])
    short = backend.put_if_version(_put(b"v3"), 2)
    assert short.succeeded and general.succeeded
    assert short.records == {}
    assert short.revision == general.revision + 1 == backend.revision()
    g, s = _strip(general.events[0]), _strip(short.events[0])
    assert (s["version"], s["prev"], s["rev"]) == (3, 2, g["rev"] + 1)
    assert {k: v for k, v in s.items() if k not in ("version", "prev", "rev", "hash")} == {
        k: v for k, v in g.items() if k not in ("version", "prev", "rev", "hash")
    }
    # History and the change chain give the event back with its rev.
    history = list(backend.history())
    assert history[-1] == short.events[0]
    assert [e["version"] for e in backend.changes("k")] == [3, 2, 1]
    rec = backend.get("k")
    assert rec is not None
    assert (rec.version, rec.revision, rec.data, rec.deleted) == (3, short.revision, b"v3", False)


def test_short_path_body_leaves_rev_to_the_row(sqlite_backend: Any, tmp_path: Path) -> None:
    backend = sqlite_backend
    _create(backend)
    backend.put_if_version(_put(b"v2"), 1)
    raw = sqlite3.connect(tmp_path / "fast.db")
    rev, body = raw.execute("SELECT rev, body FROM accord_events ORDER BY rev DESC").fetchone()
    raw.close()
    assert "rev" not in json.loads(body)
    assert [e["rev"] for e in backend.history(since=rev - 1)] == [rev]


def test_refusal_is_decided_and_recorded_in_one_transaction(backend: Any) -> None:
    _create(backend)
    before = backend.revision()
    refused = _event(outcome="conflict", expected=7)
    result = backend.put_if_version(_put(b"nope"), 7, failure=[Append(refused)])
    assert not result.succeeded
    rec = result.records["k"]
    assert rec is not None and rec.version == 1
    # The short attempt consumed no revision: the refusal is the next one.
    assert result.revision == backend.revision() == before + 1
    assert list(backend.history(since=before)) == [
        {**refused, "rev": before + 1, "time": result.events[0]["time"]}
    ]
    assert backend.get("k") == rec


@pytest.mark.parametrize(
    ("holder", "expires_in", "deleted", "ok"),
    [
        (None, None, False, True),  # no role record
        ("a", None, False, True),  # held by the writer
        ("b", None, False, False),  # held by another, no deadline
        ("b", 60.0, False, False),  # held by another, not expired
        ("b", -60.0, False, True),  # held by another, expired
        ("b", None, True, True),  # deleted
    ],
)
def test_holder_guard_means_what_check_compare_means(
    backend: Any, holder: str | None, expires_in: float | None, deleted: bool, ok: bool
) -> None:
    _create(backend)
    if holder is not None:
        backend.txn([], [Put("role", "json", b"{}", holder, ttl=None)])
        if expires_in is not None:
            backend.txn([], [Put("role", "json", b"{}", holder, ttl=expires_in)])
        if deleted:
            backend.txn([], [Delete("role", holder)])
    guard = Compare("role", "holder", "==", "a")
    general = backend.txn([Compare("k", "version", "==", 0), guard], [])  # reads only
    assert general.succeeded is False  # version 1, not 0: nothing applied
    assert check_compare(guard, general.records["role"], backend.now()) is ok
    result = backend.put_if_version(_put(b"v2"), 1, [guard], [Append(_event(outcome="conflict"))])
    assert result.succeeded is ok
    rec = backend.get("k")
    assert rec is not None and rec.version == (2 if ok else 1)


@pytest.mark.parametrize(
    "case",
    ["create", "ttl", "no-event", "guard-on-the-key", "value-guard"],
)
def test_other_shapes_take_the_general_path(backend: Any, case: str) -> None:
    if case == "create":
        result = backend.put_if_version(_put(b"v1"), 0)
        assert result.succeeded and result.records["k"] is not None
        return
    _create(backend)
    put = _put(b"v2")
    guards: list[Compare] = []
    if case == "ttl":
        put = Put("k", "text", b"v2", "a", 1, "{}", ttl=30, event=_event())
    elif case == "no-event":
        put = Put("k", "text", b"v2", "a", 1, "{}")
    elif case == "guard-on-the-key":
        guards = [Compare("k", "holder", "==", "a")]
    else:
        guards = [Compare("other", "value", "==", None)]
    result = backend.put_if_version(put, 1, guards)
    assert result.succeeded
    # The general path reads the rows back: records are filled in.
    rec = result.records["k"]
    assert rec is not None and rec.version == 2


def test_one_transaction_may_write_a_new_key_twice(backend: Any) -> None:
    result = backend.txn(
        [Compare("n", "version", "==", 0)],
        [Put("n", "text", b"1", "a"), Put("n", "text", b"2", "a")],
    )
    assert result.succeeded
    rec = backend.get("n")
    assert rec is not None and (rec.version, rec.data) == (2, b"2")


def test_read_live(sqlite_backend: Any) -> None:
    backend = sqlite_backend
    assert backend.read_live("k") is None
    _create(backend)
    row = backend.read_live("k")
    assert row is not None
    kind, data, version, revision, author, lamport, clock = row
    assert (kind, bytes(data), version, author, lamport, clock) == ("text", b"v1", 1, "a", 1, "{}")
    assert revision == backend.revision()
    backend.txn([], [Delete("k", "a")])
    assert backend.read_live("k") is None
    rec = backend.get("k")
    assert rec is not None and rec.deleted


def test_non_ascii_names_round_trip_through_the_short_path(tmp_path: Path) -> None:
    import accord

    with accord.open(f"sqlite:///{tmp_path}/utf8.db") as store:
        s = store.session("agénte-✓")
        s.write("dóc/ü", "v1")
        doc = s.write("dóc/ü", "v2 ✓", expect=1)
        last = list(store.history(key="dóc/ü"))[-1]
        assert (last.agent, last.key, last.version, last.rev) == (
            "agénte-✓",
            "dóc/ü",
            2,
            doc.revision,
        )
        assert last.clock == {"agénte-✓": 2}
        assert s.read("dóc/ü").value == "v2 ✓"
