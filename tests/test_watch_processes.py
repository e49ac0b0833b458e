"""Watch with real processes: 8 writer processes, one watcher.

Each writer update()s its own key and one shared key; the watcher (this
process) follows the prefix and must see every version 1..N of every key
exactly once and in order, on SQLite and on PostgreSQL. The same across a
PostgreSQL restart is in test_postgres_faults.py (the file CI runs for
restarts).

The unsafe baseline: a watcher that polls the current value loses the
versions written between two polls.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import accord

from .postgres_helpers import schema_url
from .watch_helpers import SHARED, Tally, collect_done, follow, own_key, watch_writer

WRITERS = 8
ROUNDS = 40
BOUND = 120.0


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
    else:
        with schema_url() as pg_url:
            yield pg_url


@pytest.mark.slow
def test_watcher_sees_every_version_of_every_key_once_in_order(url: str) -> None:
    ctx = mp.get_context("spawn")
    start, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    agents = [f"w{i}" for i in range(WRITERS)]
    with accord.open(url) as store:
        watcher = store.session("watcher")
        events = watcher.watch("w/", since=store.revision(), timeout=BOUND)
        writers = [
            ctx.Process(target=watch_writer, args=(url, a, ROUNDS, start, stop, out))
            for a in agents
        ]
        for w in writers:
            w.start()
        try:
            start.set()
            finals = {own_key(a): ROUNDS for a in agents} | {SHARED: WRITERS * ROUNDS}
            tally = Tally()
            follow(events, tally, lambda: tally.reached(finals), time.monotonic() + BOUND * 3)
            assert collect_done(out, writers, BOUND) == dict.fromkeys(agents, ROUNDS)
        finally:
            stop.set()
            for w in writers:
                w.join(timeout=60)
                if w.is_alive():
                    w.kill()
        assert [w.exitcode for w in writers] == [0] * WRITERS
        assert tally.versions == {k: list(range(1, v + 1)) for k, v in finals.items()}
        # Nothing after the last version: the watch ends at its idle timeout
        # with no more events (checked with a short one, from where it stopped).
        assert list(watcher.watch("w/", since=tally.last_revision, timeout=0)) == []
        print(
            f"{tally.events} changes watched in order, once each "
            f"({tally.superseded} already superseded when read)"
        )


def test_polling_the_value_loses_versions_and_watch_does_not(sqlite_url: str) -> None:
    """The baseline a watch replaces: poll read() and compare versions. Two
    commits between polls (forced here with events, the way a busy writer
    gets them in) and the poller never sees the first one."""
    with accord.open(sqlite_url) as store:
        start = store.revision()
        writer = store.session("writer")
        writer.write("p", 1)
        polled_once, wrote_twice = threading.Event(), threading.Event()
        polled: list[int] = []

        def poller() -> None:
            reader = store.session("poller")
            polled.append(reader.read("p").version)
            polled_once.set()
            assert wrote_twice.wait(30)
            polled.append(reader.read("p").version)

        t = threading.Thread(target=poller)
        t.start()
        assert polled_once.wait(30)
        writer.update("p", lambda v: v + 1)
        writer.update("p", lambda v: v + 1)
        wrote_twice.set()
        t.join(30)
        assert polled == [1, 3]  # version 2 was never seen
        watched = [e.version for e in store.session("w").watch("p", since=start, timeout=0)]
        assert watched == [1, 2, 3]


@pytest.mark.slow
def test_postgres_revisions_become_visible_in_revision_order() -> None:
    """No reader sees revision N+1 committed while N is still invisible: the
    premise of a cursor over the history. Writers run in processes; a
    reader reads the recent history over and over and checks that no
    revision below the highest it has seen ever appears later."""
    with schema_url() as url:
        ctx = mp.get_context("spawn")
        start, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
        writers = [
            ctx.Process(target=watch_writer, args=(url, f"v{i}", 60, start, stop, out))
            for i in range(4)
        ]
        for w in writers:
            w.start()
        seen: set[int] = set()
        highest = reads = 0
        with accord.open(url) as store:
            backend = store.backend
            start.set()
            deadline = time.monotonic() + BOUND
            while any(w.is_alive() for w in writers) and time.monotonic() < deadline:
                floor = max(0, highest - 400)
                for ev in backend.history(floor):
                    rev = ev["rev"]
                    if rev not in seen:
                        assert rev > highest or rev <= floor, (
                            f"revision {rev} became visible after {highest} was read"
                        )
                        seen.add(rev)
                        highest = max(highest, rev)
                reads += 1
        done = collect_done(out, writers, BOUND)
        for w in writers:
            w.join(timeout=60)
        assert sum(done.values()) == 4 * 60
        assert reads > 10 and highest >= 2 * 4 * 60
