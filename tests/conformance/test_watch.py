"""Watch: every committed change after a revision, in order, once: every backend."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import accord
from accord.errors import BackendUnavailable
from accord.watch import PAGE, WatchState, is_change

BOUND = 30.0  # seconds: the bound of every wait in these tests


def _changes(events: Iterator[accord.WatchEvent]) -> list[tuple[str, int, str]]:
    return [(e.key, e.version, e.kind) for e in events]


def test_every_change_in_order_once(store: accord.Store) -> None:
    a, b = store.session("a"), store.session("b")
    start = store.revision()
    a.write("docs/x", "x1")
    b.write("docs/y", {"n": 1})
    a.update("docs/x", lambda v: v + "+")
    with pytest.raises(accord.Conflict):
        b.write("docs/x", "stale", expect=1)  # refused: not a change
    a.delete("docs/y", expect=1)
    with pytest.raises(accord.NotFound):
        a.delete("docs/y", force=True)  # already deleted: nothing changes
    b.write("docs/y", "back")  # re-created: the version chain goes on
    a.write("elsewhere", "z")
    events = list(a.watch("docs/", since=start, timeout=0))
    assert _changes(iter(events)) == [
        ("docs/x", 1, "write"),
        ("docs/y", 1, "write"),
        ("docs/x", 2, "write"),
        ("docs/y", 2, "delete"),
        ("docs/y", 3, "write"),
    ]
    revisions = [e.revision for e in events]
    assert revisions == sorted(set(revisions))
    assert [e.agent for e in events] == ["a", "b", "a", "a", "b"]
    assert [e.op for e in events] == ["write", "write", "write", "delete", "write"]
    assert all(e.time.endswith("Z") and e.event.rev == e.revision for e in events)


def test_values_and_superseded_versions(store: accord.Store) -> None:
    a = store.session("a")
    start = store.revision()
    a.write("k", "v1")
    a.write("k", "v2", expect=1)
    a.write("j", {"a": [1]})
    a.write("b", b"\x00\xff")
    a.write("null", None)
    events = {(e.key, e.version): e for e in a.watch("", since=start, timeout=0)}
    # The store keeps the latest value of a key: an older version's value is
    # gone by the time the watcher reads, and the event says so.
    assert events["k", 1].superseded and events["k", 1].value is None
    assert events["k", 1].hash is not None
    assert not events["k", 2].superseded and events["k", 2].value == "v2"
    assert events["j", 1].value == {"a": [1]}
    assert events["b", 1].value == b"\x00\xff"
    # A JSON null is a value like any other: not superseded, not a delete.
    assert (events["null", 1].value, events["null", 1].superseded) == (None, False)
    assert events["null", 1].kind == "write"


def test_key_watch_ignores_other_keys_and_prefix_neighbours(store: accord.Store) -> None:
    a = store.session("a")
    start = store.revision()
    for key in ("doc", "docs", "doc/a", "doc"):
        a.write(key, "v", force=True)
    assert _changes(a.watch("doc", since=start, timeout=0)) == [
        ("doc", 1, "write"),
        ("doc", 2, "write"),
    ]
    assert [e.key for e in a.watch("doc", since=start, prefix=True, timeout=0)] == [
        "doc", "docs", "doc/a", "doc",
    ]
    assert [e.key for e in a.watch("doc/", since=start, timeout=0)] == ["doc/a"]


def test_resume_from_any_event(store: accord.Store) -> None:
    a = store.session("a")
    start = store.revision()
    for i in range(12):
        a.write(f"r/{i % 3}", i, force=True)
    everything = list(a.watch("r/", since=start, timeout=0))
    assert len(everything) == 12
    for i, event in enumerate(everything):
        rest = list(a.watch("r/", since=event.revision, timeout=0))
        assert [e.revision for e in rest] == [e.revision for e in everything[i + 1 :]]


def test_default_since_is_now_and_zero_replays(store: accord.Store) -> None:
    a = store.session("a")
    a.write("old", "1")
    assert list(a.watch("old", timeout=0)) == []
    assert [e.version for e in a.watch("old", since=0, timeout=0)] == [1]


def test_history_that_spans_pages(store: accord.Store) -> None:
    a = store.session("a")
    start = store.revision()
    # Unwatched events in between: the read cursor walks over them page by page.
    for i in range(PAGE + 40):
        a.write(f"noise/{i}", i)
        if i % 100 == 0:
            a.write("watched", i, force=True)
    versions = [e.version for e in a.watch("watched", since=start, timeout=0)]
    assert versions == list(range(1, (PAGE + 40 + 99) // 100 + 1))
    assert len(list(a.watch("noise/", since=start, timeout=0))) == PAGE + 40


def test_internal_records_and_other_events_are_not_changes(store: accord.Store) -> None:
    a, b = store.session("a"), store.session("b")
    start = store.revision()
    with a.lease("q", ttl=30) as lease:
        a.write("q", "under lease", lease=lease)
    req = b.submit("inbox", "please")
    w = store.session("w")
    for request in w.requests("inbox", timeout=0):
        w.accept(request, "done")
    assert req.id
    branch = b.fork("q")
    branch.write("branched")
    store.merge("q", [branch]).commit()
    changes = list(a.watch("", since=start, timeout=0))
    assert [(e.key, e.version, e.op) for e in changes] == [
        ("q", 1, "write"),
        ("inbox", 1, "accept"),
        ("q", 2, "merge"),
    ]
    # The history holds more (lease, submit, fork events); none is a change.
    others = [e for e in store.history(since=start) if e.op not in ("write", "accept", "merge")]
    assert others and not any(is_change(e.to_dict()) for e in others)


def test_a_waiting_watcher_wakes_for_each_change(
    open_store: Callable[..., accord.Store],
) -> None:
    watcher_store, writer_store = open_store(), open_store()
    w = watcher_store.session("watcher")
    events = w.watch("live/", timeout=BOUND)
    got: list[accord.WatchEvent] = []
    for i in range(5):
        # The watcher is (or will be) waiting; the write happens in another
        # thread, on another store object (another connection).
        t = threading.Thread(
            target=lambda i=i: writer_store.session("writer").write(f"live/{i}", i)
        )
        t.start()
        got.append(next(events))
        t.join(BOUND)
    assert [(e.key, e.value) for e in got] == [(f"live/{i}", i) for i in range(5)]


def test_stop_and_idle_timeout_end_the_iteration(store: accord.Store) -> None:
    a = store.session("a")
    stop = threading.Event()
    events = a.watch("s", stop=stop, timeout=BOUND)
    threading.Timer(0.05, stop.set).start()
    assert list(events) == []  # ended by stop, well before BOUND
    assert list(a.watch("s", timeout=0.05)) == []


def test_watch_reads_join_happened_before(store: accord.Store) -> None:
    a, b = store.session("a"), store.session("b")
    start = store.revision()
    b.write("hb", "from b")
    event = next(a.watch("hb", since=start, timeout=0))
    assert event.value == "from b"
    # Like a read: the write that follows is based on the version watched.
    a.write("hb", "from a", expect=event.version)
    last = list(store.history(key="hb"))[-1]
    assert last.based_on == 1 and last.clock.get("b", 0) >= 1


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "words"),
    [
        ((42,), {}, accord.UsageError, "a key or a prefix"),
        (("bad//key",), {}, accord.InvalidKey, "empty segment"),
        ((".accord/x",), {}, accord.InvalidKey, ".accord"),
        (("k",), {"since": -1}, accord.UsageError, "since"),
        (("k",), {"since": "3"}, accord.UsageError, "since"),
        (("k",), {"timeout": -1}, accord.UsageError, "timeout"),
        (("k",), {"prefix": "yes"}, accord.UsageError, "prefix"),
        (("k",), {"retry_timeout": float("nan")}, accord.UsageError, "retry_timeout"),
        (("k",), {"stop": True}, accord.UsageError, "threading.Event"),
    ],
)
def test_bad_arguments_are_refused_at_the_call(
    store: accord.Store, args: tuple[Any, ...], kwargs: dict[str, Any], error: type, words: str
) -> None:
    with pytest.raises(error, match=words):
        store.session("a").watch(*args, **kwargs)


class _Flaky:
    """A real backend whose reads fail ``failures`` times, as while a server restarts."""

    def __init__(self, backend: Any, failures: int, after: int = 0) -> None:
        self._backend = backend
        self.failures = failures
        self.after = after  # calls that succeed before the failures
        self.calls = 0

    def history(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.failures and self.calls > self.after:
            self.failures -= 1
            raise BackendUnavailable("The server went away (a test).")
        return self._backend.history(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def test_unavailable_store_is_retried_then_resumed(store: accord.Store) -> None:
    a = store.session("a")
    start = store.revision()
    a.write("f", "1")
    flaky = _Flaky(store.backend, failures=3)
    store.backend = flaky  # type: ignore[assignment]
    try:
        got = [e.version for e in a.watch("f", since=start, timeout=0, retry_timeout=BOUND)]
    finally:
        store.backend = flaky._backend
    assert got == [1] and flaky.calls == 4


def test_a_read_cut_short_by_the_store_is_read_again(store: accord.Store) -> None:
    a = store.session("a")
    start = store.revision()
    for i in range(PAGE + 20):
        a.write(f"h/{i}", i)
    # The first page of the catch-up arrives, the second fails twice.
    flaky = _Flaky(store.backend, failures=2, after=1)
    store.backend = flaky  # type: ignore[assignment]
    try:
        got = [e.key for e in a.watch("h/", since=start, timeout=0, retry_timeout=BOUND)]
    finally:
        store.backend = flaky._backend
    assert got == [f"h/{i}" for i in range(PAGE + 20)]


def test_a_backlog_is_handed_out_page_by_page(store: accord.Store) -> None:
    a = store.session("a")
    start = store.revision()
    for i in range(PAGE + 20):
        a.write(f"l/{i}", i)
    counting = _Flaky(store.backend, failures=0)
    store.backend = counting  # type: ignore[assignment]
    try:
        events = a.watch("l/", since=start, timeout=0)
        assert next(events).key == "l/0"
        assert counting.calls == 1  # the first page only, however long the backlog
        assert len(list(events)) == PAGE + 19
    finally:
        store.backend = counting._backend


def test_unavailable_store_for_too_long_raises_with_the_resume_point(
    store: accord.Store,
) -> None:
    a = store.session("a")
    start = store.revision()
    a.write("g/1", "1")
    flaky = _Flaky(store.backend, failures=0)
    store.backend = flaky  # type: ignore[assignment]
    try:
        events = a.watch("g/", since=start, retry_timeout=0.2, timeout=BOUND)
        first = next(events)
        store.session("b").write("g/2", "2")  # a change, for the watcher's next read
        flaky.failures = 10**9
        with pytest.raises(accord.BackendUnavailable) as info:
            next(events)
    finally:
        store.backend = flaky._backend
    assert info.value.since == first.revision  # type: ignore[attr-defined]
    message = info.value.render("cli")
    assert f"accord watch g/ --since {first.revision}" in message
    assert "Nothing was lost" in message
    # And the resume point is right: nothing after it was handed out.
    assert [e.key for e in a.watch("g/", since=first.revision, timeout=0)] == ["g/2"]


def test_closed_store_is_not_retried(
    open_store: Callable[..., accord.Store], backend_name: str
) -> None:
    if backend_name == "memory":
        pytest.skip("a memory store stays usable after close()")
    store = open_store()
    events = store.session("a").watch("c", since=0, retry_timeout=BOUND, timeout=BOUND)
    store.close()
    with pytest.raises(accord.BackendUnavailable, match="closed"):
        next(events)


# --- the bookkeeping without I/O -------------------------------------------------


def _ev(rev: int, key: str, version: int | None, outcome: str = "ok") -> dict[str, Any]:
    ev: dict[str, Any] = {"rev": rev, "time": "2026-11-29T10:00:00.000000Z", "key": key,
                          "op": "write", "agent": "a", "outcome": outcome}
    if version is not None:
        ev.update(version=version, prev=version - 1, hash="sha256:x")
    return ev


def test_position_never_passes_a_trailing_event_that_is_not_a_change() -> None:
    """A refused write commits without a WAL flush on PostgreSQL: after a
    server crash its revision can be given to a change. The read cursor
    stays before it, so that change is still read."""
    state = WatchState("k", 0, prefix=False)
    state.begin()
    out, done = state.take([_ev(1, "k", 1), _ev(2, "k", None, outcome="conflict")])
    assert [e["rev"] for e in out] == [1] and done
    records: dict[str, Any] = {}
    [state.event(e, records) for e in out]
    state.handed_out()
    state.caught_up(2)
    assert state.position == 1 and state.wait_args() == (["k"], [], 2)
    # The crash lost revision 2; a change took it.
    state.begin()
    assert state.read_args() == (1, "k", PAGE)
    out, _ = state.take([_ev(2, "k", 2)])
    assert [e["rev"] for e in out] == [2]


def test_an_event_is_never_handed_out_twice() -> None:
    state = WatchState("p/", 0, prefix=True)
    state.begin()
    out, _ = state.take([_ev(1, "p/a", 1), _ev(2, "p/b", 1)])
    for e in out:
        state.event(e, {})
    # Not marked handed out (a failure came first): read again, none twice.
    state.begin()
    again, _ = state.take([_ev(1, "p/a", 1), _ev(2, "p/b", 1), _ev(3, "p/a", 2)])
    assert [e["rev"] for e in again] == [3]
    assert state.keys_to_read(again) == ["p/a"]


def test_a_pass_that_fails_half_way_reads_its_changes_again() -> None:
    """The store went away after the first page of a pass: its changes were
    never handed out, so the next pass reads them again."""
    state = WatchState("p/", 0, prefix=True)
    state.begin()
    first, done = state.take([_ev(i, "p/a", i) for i in range(1, PAGE + 1)])
    assert len(first) == PAGE and not done
    # ... the second page raised BackendUnavailable; the driver starts over.
    state.begin()
    assert state.read_args() == (0, None, PAGE)
    again, _ = state.take([_ev(i, "p/a", i) for i in range(1, PAGE + 1)])
    assert [e["rev"] for e in again] == list(range(1, PAGE + 1))


def test_a_key_read_at_a_later_version_is_not_read_again_in_the_pass() -> None:
    from accord.records import Record

    state = WatchState("p/", 0, prefix=True)
    state.begin()
    page1, _ = state.take([_ev(i, "p/a", i) for i in range(1, 11)])
    assert state.keys_to_read(page1) == ["p/a"]
    rec = Record(key="p/a", kind="json", data=b"30", version=30, revision=300,
                 author="a", lamport=1, clock="{}", deleted=False, expires=None)
    state.read({"p/a": rec})
    assert all(state.event(e, {"p/a": rec}).superseded for e in page1)
    state.handed_out()
    # Versions 11..29 are older than the record read: superseded, no read.
    page2, _ = state.take([_ev(i, "p/a", i) for i in range(11, 30)])
    assert state.keys_to_read(page2) == []
    assert all(state.event(e, {}).superseded for e in page2)
    # Version 30 is the record read: read again, for its value.
    page3, _ = state.take([_ev(30, "p/a", 30)])
    assert state.keys_to_read(page3) == ["p/a"]
    assert state.event(page3[0], {"p/a": rec}).value == 30


def test_a_revision_past_the_stores_range_is_a_usage_error(store: Any) -> None:
    with pytest.raises(accord.UsageError, match="at most"):
        store.session("w").watch("k", since=10**20, timeout=0)
