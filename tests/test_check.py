"""The race detector on hand-written histories: one or more per anomaly, clean
histories that look suspicious but are fine, and histories whose answer must
be "unknown".

Each case is a small history and what the checker must say about it: the
count of each anomaly name (absent names must be 0), the verdict, and, where
it is known, how many committed writes are missing from the final state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import accord
from accord.history import ANOMALY_NAMES

HERE = Path(__file__).parent / "histories"


def t(seconds: float) -> str:
    """An accord event time, ``seconds`` after 19:00:00."""
    minutes, sec = divmod(seconds, 60)
    return f"2026-11-28T19:{int(minutes):02d}:{sec:09.6f}Z"


def ev(
    rev: int,
    agent: str,
    op: str,
    key: str | None = "doc",
    *,
    at: float | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """An accord history event; committed writes default to outcome ok."""
    out: dict[str, Any] = {
        "rev": rev,
        "time": t(rev if at is None else at),
        "agent": agent,
        "op": op,
        "key": key,
        "check": "none",
        "outcome": "ok",
        "clock": {},
        "lease": None,
        "idem": None,
        "request": None,
    }
    out.update(fields)
    return out


def w(rev: int, agent: str, version: int, based_on: int | None, *, key: str = "doc",
      prev: int | None = None, clock: dict[str, int] | None = None, **fields: Any
      ) -> dict[str, Any]:
    """A committed write of ``version`` (prev defaults to version - 1)."""
    return ev(
        rev,
        agent,
        fields.pop("op", "write"),
        key,
        version=version,
        prev=version - 1 if prev is None else prev,
        based_on=based_on,
        clock=clock or {},
        **fields,
    )


def r(rev: int, agent: str, version: int, *, key: str = "doc", **fields: Any) -> dict[str, Any]:
    return ev(rev, agent, "read", key, version=version, **fields)


def f(agent: str, op: str, value: Any, start: float, end: float, key: str = "doc",
      **fields: Any) -> dict[str, Any]:
    """A foreign event (no versions)."""
    return {
        "agent": agent,
        "op": op,
        "key": key,
        "value": value,
        "start": t(start),
        "end": t(end),
        **fields,
    }


SETUP = w(1, "setup", 1, 0, check="version", clock={"setup": 1})

CASES: list[tuple[str, list[dict[str, Any]], dict[str, int], str, int | None]] = [
    # --- lost-update -------------------------------------------------------
    (
        "classic lost update, reads recorded",
        [
            SETUP,
            r(2, "a", 1, clock={"setup": 1, "a": 1}),
            r(3, "b", 1, clock={"setup": 1, "b": 1}),
            w(4, "b", 2, 1, clock={"setup": 1, "b": 2}),
            w(5, "a", 3, 1, clock={"setup": 1, "a": 2}),
        ],
        {"lost-update": 1},
        "anomalies",
        1,
    ),
    (
        "lost update without recorded reads (based_on tells)",
        [SETUP, w(2, "b", 2, 1), w(3, "a", 3, 1)],
        {"lost-update": 1},
        "anomalies",
        1,
    ),
    (
        "one blind write erases two writes",
        [SETUP, w(2, "b", 2, 1), w(3, "c", 3, 2), w(4, "a", 4, 1)],
        {"lost-update": 1},
        "anomalies",
        2,
    ),
    (
        "a write built on an erased version brings it back: two lost updates, one lost write",
        [SETUP, w(2, "a", 2, 1), w(3, "b", 3, 2), w(4, "c", 4, 2), w(5, "b", 5, 3)],
        {"lost-update": 2},
        "anomalies",
        1,
    ),
    (
        "lost update on a queue accept",
        [SETUP, w(2, "writer", 2, 1, op="accept", request="r1"), w(3, "x", 3, 1)],
        {"lost-update": 1},
        "anomalies",
        1,
    ),
    # --- concurrent-writes -------------------------------------------------
    (
        "blind overwrite without reading: a race that lost nothing",
        [
            w(1, "a", 1, 0, clock={"a": 1}, check="version"),
            w(2, "b", 2, None, clock={"b": 1}),
        ],
        {"concurrent-writes": 1},
        "anomalies",
        0,
    ),
    # --- fenced-write-accepted ---------------------------------------------
    (
        "write under an expired lease",
        [
            SETUP,
            ev(2, "a", "lease_acquire", lease=1, ttl=1.0, at=2),
            r(3, "a", 1, at=2.5),
            w(4, "a", 2, 1, check="lease", lease=1, at=4.0),
        ],
        {"fenced-write-accepted": 1},
        "anomalies",
        0,
    ),
    (
        "write under a superseded token",
        [
            SETUP,
            ev(2, "a", "lease_acquire", lease=1, ttl=30.0),
            ev(3, "a", "lease_expire", lease=1),
            ev(4, "b", "lease_acquire", lease=2, ttl=30.0),
            r(5, "a", 1),
            w(6, "a", 2, 1, check="lease", lease=1),
        ],
        {"fenced-write-accepted": 1},
        "anomalies",
        0,
    ),
    (
        "write after release",
        [
            SETUP,
            ev(2, "a", "lease_acquire", lease=1, expires=t(60)),
            r(3, "a", 1),
            ev(4, "a", "lease_release", lease=1),
            w(5, "a", 2, 1, check="lease", lease=1),
        ],
        {"fenced-write-accepted": 1},
        "anomalies",
        0,
    ),
    # --- duplicate-apply ---------------------------------------------------
    (
        "one idempotency key applied twice",
        [SETUP, w(2, "a", 2, 1, check="version", idem="req-17"),
         w(3, "a", 3, 2, check="version", idem="req-17")],
        {"duplicate-apply": 1},
        "anomalies",
        0,
    ),
    (
        "one queue request applied twice",
        [SETUP, w(2, "writer", 2, 1, op="accept", request="q-1"),
         w(3, "writer", 3, 2, op="accept", request="q-1")],
        {"duplicate-apply": 1},
        "anomalies",
        0,
    ),
    # --- stale-read --------------------------------------------------------
    (
        "a read returns an older version than a write acknowledged before it",
        [SETUP, w(2, "a", 2, 1, check="version"), ev(3, "b", "submit", "other"), r(4, "b", 1)],
        {"stale-read": 1},
        "anomalies",
        0,
    ),
    # --- clean, but suspicious-looking --------------------------------------
    (
        "a conflict that was retried correctly",
        [
            SETUP,
            w(2, "a", 2, 1, check="version", clock={"setup": 1, "a": 1}),
            ev(3, "b", "write", version=None, based_on=1, check="version", outcome="conflict"),
            r(4, "b", 2, clock={"setup": 1, "a": 1, "b": 1}),
            w(5, "b", 3, 2, check="version", clock={"setup": 1, "a": 1, "b": 2}),
        ],
        {},
        "clean",
        0,
    ),
    (
        "a write under a lease renewed in time",
        [
            SETUP,
            ev(2, "a", "lease_acquire", lease=1, ttl=1.0, at=2),
            r(3, "a", 1, at=2.5),
            ev(4, "a", "lease_renew", lease=1, ttl=1.0, at=2.8),
            w(5, "a", 2, 1, check="lease", lease=1, at=3.5),
            ev(6, "a", "lease_release", lease=1, at=3.6),
        ],
        {},
        "clean",
        0,
    ),
    (
        "a fenced write that was refused is no anomaly",
        [
            SETUP,
            ev(2, "a", "lease_acquire", lease=1, ttl=1.0),
            ev(3, "b", "lease_acquire", lease=2, ttl=10.0),
            ev(4, "a", "write", version=None, based_on=1, check="lease", lease=1,
               outcome="fenced"),
        ],
        {},
        "clean",
        0,
    ),
    (
        "concurrent writes to different keys",
        [
            w(1, "a", 1, 0, key="x", check="version", clock={"a": 1}),
            w(2, "b", 1, 0, key="y", check="version", clock={"b": 1}),
            w(3, "a", 2, 1, key="x", check="version", clock={"a": 2}),
            w(4, "b", 2, 1, key="y", check="version", clock={"b": 2}),
        ],
        {},
        "clean",
        0,
    ),
    (
        "lease-guarded writes by two agents, clocks never merged",
        [
            SETUP,
            ev(2, "a", "lease_acquire", lease=1, ttl=30.0),
            w(3, "a", 2, 1, check="lease", lease=1, clock={"setup": 1, "a": 1}),
            ev(4, "a", "lease_release", lease=1),
            ev(5, "b", "lease_acquire", lease=2, ttl=30.0),
            w(6, "b", 3, 2, check="lease", lease=2, clock={"setup": 1, "b": 1}),
        ],
        {},
        "clean",
        0,
    ),
    (
        "re-creating a deleted key while believing it absent",
        [
            SETUP,
            w(2, "a", 2, 1, op="delete", check="version"),
            w(3, "b", 3, 0, prev=2, check="version"),
        ],
        {},
        "clean",
        0,
    ),
    (
        "an idempotent replay applies nothing (one event)",
        [SETUP, w(2, "a", 2, 1, check="version", idem="req-1"), r(3, "a", 2)],
        {},
        "clean",
        0,
    ),
    (
        "a read that says it began after a newer write was acknowledged",
        [SETUP, w(2, "a", 2, 1, check="version", at=2), r(3, "b", 1, at=4, start=t(3))],
        {"stale-read": 1},
        "anomalies",
        0,
    ),
    (
        "a read that says it began before the newer write (another thread went first)",
        [SETUP, w(2, "a", 2, 1, check="version", at=2), ev(3, "b", "submit", "other", at=3),
         r(4, "b", 1, at=4, start=t(1.5))],
        {},
        "clean",
        0,
    ),
    (
        "a read of an older version that started before the newer write",
        [SETUP, ev(2, "b", "submit", "other"), w(3, "a", 2, 1, check="version"), r(4, "b", 1)],
        {},
        "clean",
        0,
    ),
    # --- foreign histories --------------------------------------------------
    (
        "foreign: lost update, exact order from unique values",
        [
            f("a", "write", "v1", 0, 0.1),
            f("a", "read", "v1", 1, 1.1),
            f("b", "read", "v1", 2, 2.1),
            f("b", "write", "v2 by b", 4, 4.1),
            f("a", "write", "v2 by a", 5, 5.1),
        ],
        {"lost-update": 1},
        "anomalies",
        1,
    ),
    (
        "foreign: two overlapping writes on one basis, order unknown, one change lost",
        [
            f("a", "write", "v1", 0, 0.1),
            f("a", "read", "v1", 1, 1.1),
            f("b", "read", "v1", 1, 1.1),
            f("a", "write", "A", 2, 4),
            f("b", "write", "B", 2.5, 3.5),
        ],
        {"lost-update": 1},
        "anomalies",
        None,
    ),
    (
        "foreign: stale read",
        [
            f("a", "write", "v1", 0, 0.1),
            f("a", "write", "v2", 1, 1.1),
            f("b", "read", "v1", 2, 2.1),
        ],
        {"stale-read": 1},
        "anomalies",
        0,
    ),
    (
        "foreign: blind writes that never read race",
        [f("a", "write", "v1", 0, 0.1), f("b", "write", "v2", 1, 1.1)],
        {"concurrent-writes": 1},
        "anomalies",
        0,
    ),
    (
        "foreign: one idempotency key applied twice",
        [
            f("a", "write", "v1", 0, 0.1, idem="k1"),
            f("a", "write", "v2", 1, 1.1, idem="k1"),
        ],
        {"duplicate-apply": 1},
        "anomalies",
        0,
    ),
    (
        "foreign clean: overlapping writes, the second read the first",
        [
            f("a", "write", "v1", 0, 0.1),
            f("a", "read", "v1", 1, 1.1),
            f("a", "write", "v2", 2, 6),
            f("b", "read", "v2", 3, 3.5),
            f("b", "write", "v3", 4, 5),
        ],
        {},
        "clean",
        0,
    ),
    (
        "foreign clean: concurrent writes to different keys",
        [
            f("a", "read", None, 0, 0.1, key="x"),
            f("b", "read", None, 0, 0.1, key="y"),
            f("a", "write", "x1", 1, 2, key="x"),
            f("b", "write", "y1", 1, 2, key="y"),
        ],
        {},
        "clean",
        0,
    ),
    (
        "foreign unknown: the value read was written twice",
        [
            f("a", "write", "x", 0, 0.1),
            f("a", "write", "y", 1, 1.1),
            f("c", "read", "y", 2, 2.1),
            f("c", "write", "x", 3, 3.1),
            f("b", "read", "x", 4, 4.1),
            f("b", "write", "z", 5, 5.1),
        ],
        {},
        "unknown",
        None,
    ),
    (
        "foreign unknown: a hash written twice, the later write built on it",
        [
            {"agent": "a", "op": "write", "key": "doc", "hash": "h1", "start": t(0), "end": t(0.1)},
            {"agent": "a", "op": "write", "key": "doc", "hash": "h2", "start": t(1), "end": t(1.1)},
            {"agent": "c", "op": "read", "key": "doc", "hash": "h2", "start": t(2), "end": t(2.1)},
            {"agent": "c", "op": "write", "key": "doc", "hash": "h1", "start": t(3), "end": t(3.1)},
            {"agent": "b", "op": "read", "key": "doc", "hash": "h1", "start": t(4), "end": t(4.1)},
            {"agent": "b", "op": "write", "key": "doc", "hash": "h3", "start": t(5), "end": t(5.1)},
        ],
        {},
        "unknown",
        None,
    ),
]


@pytest.mark.parametrize(
    ("events", "expected", "verdict", "lost"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_hand_written_history(
    events: list[dict[str, Any]], expected: dict[str, int], verdict: str, lost: int | None
) -> None:
    result = accord.check(events)
    counts = {name: result.counts.get(name, 0) for name in ANOMALY_NAMES}
    assert counts == {name: expected.get(name, 0) for name in ANOMALY_NAMES}, [
        a.explanation for a in result.anomalies
    ]
    assert result.verdict == verdict
    assert result.ok == (verdict == "clean")
    if lost is not None:
        assert result.lost_writes == lost
    for anomaly in result.anomalies + result.unknown:
        assert anomaly.name in ANOMALY_NAMES
        assert anomaly.explanation
        assert anomaly.events
        assert anomaly.agents
        assert anomaly.certain == (anomaly in result.anomalies)


def test_lost_update_explanation_names_writes_agents_and_window() -> None:
    result = accord.check(HERE / "lost_update.jsonl")
    (a,) = result.anomalies
    assert a.name == "lost-update" and a.key == "docs/plan.md"
    assert set(a.agents) == {"agent-a", "agent-b"}
    assert a.explanation.startswith("Let W1 = agent-b's write of docs/plan.md v2")
    assert "W2 erased W1's change without having seen it" in a.explanation
    assert "agent-b read it at 19:00:02.000000 and agent-a read it at 19:00:01.000000" in (
        a.explanation
    )
    # Both held v1 from agent-b's read (the later one) until agent-b's write.
    assert a.window == ("2026-11-28T19:00:02.000000Z", "2026-11-28T19:00:04.000000Z")
    assert [e["rev"] for e in a.events] == [4, 5]
    assert a.details["erased"] == [{"version": 2, "agent": "agent-b", "rev": 4}]
    data = result.to_dict()
    assert data["verdict"] == "anomalies" and data["counts"] == {"lost-update": 1}


def test_unknown_is_not_clean() -> None:
    result = accord.check(HERE / "foreign_unknown.jsonl")
    assert result.verdict == "unknown"
    assert not result.ok
    (u,) = result.unknown
    assert not u.certain and u.explanation.startswith("Unknown:")
    assert "unknown" in result.summary()


def test_check_accepts_events_and_a_store() -> None:
    with accord.open("memory://", record_reads=True) as store:
        a, b = store.session("a"), store.session("b")
        a.write("k", 1)
        x, y = a.read("k"), b.read("k")
        a.write("k", x.value + 1, force=True)
        b.write("k", y.value + 1, force=True)
        from_store = accord.check(store)
        from_events = accord.check(list(store.history()))
    assert from_store.counts["lost-update"] == from_events.counts["lost-update"] == 1
    assert from_store.lost_writes == 1


def test_window_bounds_memory_but_still_reports() -> None:
    from accord.history.format import EventStream
    from accord.history.native import NativeChecker

    events = [w(1, "s", 1, 0)] + [w(v, "a", v, v - 1) for v in range(2, 3001)]
    events.append(w(3001, "b", 3001, 5))
    checker = NativeChecker(EventStream(events), window_versions=100, window_revisions=1000)
    for i, e in enumerate(events, 1):
        checker.feed(i, e)
    assert all(len(k.recent) <= 100 for k in checker.keys.values())
    result = checker.finish()
    assert result.counts["lost-update"] == 1
    # The ancestry path is kept as runs of versions, so the count stays exact.
    assert result.lost_writes == 2995
    assert not result.notes


# --- bad input -------------------------------------------------------------


def test_malformed_line_names_the_line() -> None:
    with pytest.raises(accord.HistoryFormatError, match=r"line 2: not valid JSON") as info:
        accord.check(HERE / "malformed.jsonl")
    # One message, two renderings: Python's words, and the command line's.
    assert "lenient=True" in str(info.value)
    assert "--lenient" in info.value.render("cli")


def test_lenient_skips_and_counts() -> None:
    result = accord.check(HERE / "malformed.jsonl", lenient=True)
    assert result.skipped == 1 and result.events == 2
    assert result.problems and result.problems[0].startswith("line 2:")
    assert result.ok


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([w(2, "a", 1, 0), w(1, "a", 2, 1)], "out of revision order"),
        ([ev(1, "a", "frobnicate")], "unknown op 'frobnicate'"),
        ([{"rev": 1, "op": "write", "key": "k", "version": 1}], "'agent'"),
        ([ev(1, "a", "write", None, version=1)], "without a 'key'"),
        ([{"rev": "x", "agent": "a", "op": "read"}], "non-integer 'rev'"),
        ([ev(1, "a", "write", version="two")], "'version' must be an integer"),
        ([{"agent": "a", "op": "increment", "key": "k", "value": 1, "start": 0}], "unknown op"),
        ([{"agent": "a", "op": "write", "key": "k", "start": 0}], "without 'value' or 'hash'"),
        ([{"agent": "a", "op": "write", "key": "k", "value": 1}], "start"),
        ([{"agent": "a", "op": "read", "key": "k", "value": 1, "start": "noon"}], "time"),
        ([SETUP, {"agent": "a", "op": "read", "key": "k", "value": 1, "start": 0}], "foreign"),
        ([[1, 2]], "expected a dict"),
    ],
)
def test_bad_events_are_clear_errors(events: list[Any], message: str) -> None:
    with pytest.raises(accord.HistoryFormatError, match=message):
        accord.check(events)


def test_empty_history_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(accord.HistoryFormatError, match="no events"):
        accord.check(HERE / "empty.jsonl")
    with pytest.raises(accord.HistoryFormatError, match="no events"):
        accord.check([])
    with pytest.raises(accord.HistoryFormatError, match="No history file"):
        accord.check(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("nope\n[]\n")
    with pytest.raises(accord.HistoryFormatError, match="every line was malformed"):
        accord.check(bad, lenient=True)


def test_unknown_extra_fields_are_ignored() -> None:
    events = [dict(e, mode="exclusive", extra={"x": 1}, shard=7) for e in CASES[0][1]]
    assert accord.check(events).counts["lost-update"] == 1


def test_two_processes_find_the_same_as_one(tmp_path: Path) -> None:
    import json
    import random

    rnd = random.Random(3)
    events: list[dict[str, Any]] = []
    versions: dict[str, int] = {}
    for rev in range(1, 3001):
        key = f"k{rnd.randrange(40)}"
        agent = f"a{rnd.randrange(5)}"
        cur = versions.get(key, 0)
        roll = rnd.random()
        if roll < 0.3 and cur:
            events.append(r(rev, agent, cur - 1 if roll < 0.01 else cur, key=key))
            continue
        based: int | None = cur
        if roll > 0.97 and cur > 2:
            based = cur - 2
        elif roll > 0.95:
            based = None
        idem = f"i{rnd.randrange(2000)}" if roll > 0.9 else None
        versions[key] = cur + 1
        events.append(w(rev, agent, cur + 1, based, key=key, idem=idem,
                        clock={agent: rev}))
    path = tmp_path / "h.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    one = accord.check(path, workers=1)
    two = accord.check(path, workers=2)
    assert one.counts == two.counts and any(one.counts.values())
    assert all(one.counts[name] for name in ("lost-update", "concurrent-writes",
                                              "duplicate-apply", "stale-read"))
    assert (one.lost_writes, one.writes, one.keys, one.events, one.agents) == (
        two.lost_writes, two.writes, two.keys, two.events, two.agents)
    assert sorted(a.explanation for a in one.anomalies) == sorted(
        a.explanation for a in two.anomalies)
    assert [a.events[-1]["rev"] for a in two.anomalies] == sorted(
        a.events[-1]["rev"] for a in two.anomalies)
    # Bad input is reported the same way.
    bad = tmp_path / "bad.jsonl"
    bad.write_text(path.read_text() + "{oops\n")
    with pytest.raises(accord.HistoryFormatError, match="line 3001"):
        accord.check(bad, workers=2)
    assert accord.check(bad, workers=2, lenient=True).skipped == 1


def test_every_backend_history_checks_the_same(open_store: Any) -> None:
    store = open_store(record_reads=True)
    a, b = store.session("agent-a"), store.session("agent-b")
    a.write("doc", "v0")
    x, y = a.read("doc"), b.read("doc")
    a.write("doc", x.value + " A", force=True)
    b.write("doc", y.value + " B", force=True)
    d = a.read("doc")
    a.write("doc", d.value + " C", expect=d.version)
    result = accord.check(store)
    assert result.counts["lost-update"] == 1 and result.lost_writes == 1
    (anomaly,) = result.anomalies
    assert anomaly.agents == ("agent-a", "agent-b")
    assert "agent-a read it at" in anomaly.explanation


def test_history_modules_import_without_a_loop() -> None:
    """Each module of accord.history imports only modules below it (no cycle)."""
    import ast

    root = Path(accord.__file__).parent / "history"
    graph: dict[str, set[str]] = {}
    for path in root.glob("*.py"):
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                deps.add(node.module.split(".")[0])
        graph[path.stem] = deps
    done: set[str] = set()

    def visit(name: str, stack: tuple[str, ...]) -> None:
        assert name not in stack, f"import loop: {' -> '.join((*stack, name))}"
        if name in done or name not in graph:
            return
        for dep in graph[name]:
            visit(dep, (*stack, name))
        done.add(name)

    for name in graph:
        visit(name, ())


# --- fields that decide a finding must be readable (issue 11, item 7) -------


def _lease_then_late_write(**acquire: Any) -> list[dict[str, Any]]:
    """A lease granted at 2 s, and a write under it 5 s later."""
    return [
        SETUP,
        {**ev(2, "a", "lease_acquire", lease=1, at=2), **acquire},
        w(3, "a", 2, 1, check="lease", lease=1, at=7),
    ]


@pytest.mark.parametrize(
    ("acquire", "message"),
    [
        ({"ttl": "x"}, r"line 2: 'ttl' must be a number of seconds"),
        ({"ttl": None}, r"line 2: a lease_acquire without 'ttl'"),
        ({}, r"line 2: a lease_acquire without 'ttl'"),
        ({"ttl": True}, r"line 2: 'ttl' must be a number"),
        ({"ttl": -1}, r"line 2: 'ttl' must be a number of seconds \(0 or more\)"),
        ({"expires": "soon"}, r"line 2: 'expires' must be a time"),
        ({"ttl": 1, "time": "garbage"}, r"line 2: 'time' must be an RFC 3339 time"),
        ({"ttl": 1, "mode": "sometimes"}, r"line 2: 'mode' must be exclusive or shared"),
        ({"ttl": 1, "lease": 1.5}, r"line 2: a lease_acquire needs 'lease'"),
    ],
)
def test_an_unreadable_lease_field_is_a_format_error(acquire: dict[str, Any], message: str
                                                     ) -> None:
    with pytest.raises(accord.HistoryFormatError, match=message) as info:
        accord.check(_lease_then_late_write(**acquire))
    assert info.value.line == 2
    assert "Fix the line" in str(info.value)


@pytest.mark.parametrize("acquire", [{"ttl": "x"}, {"ttl": None}, {"expires": "soon"}])
def test_lenient_makes_a_write_under_an_unreadable_lease_unknown_never_clean(
    acquire: dict[str, Any]
) -> None:
    result = accord.check(_lease_then_late_write(**acquire), lenient=True)
    assert result.skipped == 1
    assert result.verdict == "unknown" and not result.ok
    (u,) = result.unknown
    assert u.name == "fenced-write-accepted" and not u.certain
    assert "line 2 was skipped" in u.explanation


def test_a_readable_lease_decides_the_same_history() -> None:
    late = accord.check(_lease_then_late_write(ttl=1))
    assert late.counts["fenced-write-accepted"] == 1
    in_time = accord.check(_lease_then_late_write(ttl=10))
    assert in_time.verdict == "clean"


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({k: v for k, v in w(2, "a", 2, 1).items() if k != "time"},
         r"line 2: an event without 'time'"),
        (w(2, "a", 2, 1, time=None), r"line 2: an event without 'time'"),
        (w(2, "a", 2, 1, time="garbage"), r"line 2: 'time' must be an RFC 3339 time"),
        (w(2, "a", 2, 1, time=1_800_000_000), r"line 2: 'time' must be an RFC 3339 time"),
        (r(2, "a", 1, start="noon"), r"line 2: 'start' must be an RFC 3339 time"),
        ({**w(2, "a", 2, 1), "based_on": "one"}, r"line 2: 'based_on' must be the version"),
        (w(2, "a", 2, 1, prev="one"), r"line 2: 'prev' must be the version"),
        (w(2, "a", 2, None, lease=[1]), r"line 2: 'lease' must be the lease's token"),
        (w(2, "a", 2, None, clock="a:1"), r"line 2: 'clock' must be a vector clock"),
        (w(2, "a", 2, 1, outcome=5), r"line 2: 'outcome' must be a word"),
    ],
)
def test_an_unreadable_field_is_a_format_error(event: dict[str, Any], message: str) -> None:
    with pytest.raises(accord.HistoryFormatError, match=message):
        accord.check([SETUP, event])


def test_clocks_that_cannot_be_compared_make_a_race_unknown() -> None:
    events = [
        w(1, "a", 1, 0, clock={"a": "one"}, check="version"),
        w(2, "b", 2, None, clock={"b": 1}),
    ]
    result = accord.check(events)
    assert result.verdict == "unknown"
    (u,) = result.unknown
    assert u.name == "concurrent-writes" and "cannot be compared" in u.explanation
    events[0]["clock"] = {"a": 1}
    assert accord.check(events).counts["concurrent-writes"] == 1
