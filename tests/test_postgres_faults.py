"""Faults: PostgreSQL restarts while 8 writers run.

Each writer appends 0, 1, 2, ... to its own log key and bumps one shared
counter, every call with its own idempotency key, and repeats a call that
failed until it is acknowledged. The server is restarted
(``pg_ctlcluster restart``) once every writer has had writes acknowledged,
and the run goes on until every writer has had more acknowledged after the
restart. Afterwards every acknowledged write is present exactly once: each
log is exactly 0..n-1, the counter is exactly the number of increments, and
the history holds one applied write per idempotency key.

The same run without idempotency keys (plain ``update()`` appends, each a
call of ``accord_put_if``): every log is exactly 0..n-1, so no write the
backend repeated after the restart was applied twice.

And a watcher across a restart: 8 writer processes update() their own key
and a shared one while a watcher follows them; it sees every version of
every key exactly once, in order, before and after the restart.

The server is running again at the end whatever happens (the finalizer
starts it if needed).
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import accord

from .conftest import require_postgres
from .postgres_helpers import (
    POSTGRES_URL,
    ensure_server_running,
    idempotent_writer,
    pg_ctl,
    plain_writer,
    schema_url,
    wait_for_server,
)

WRITERS = 8


@pytest.fixture
def server_back_up() -> Iterator[None]:
    require_postgres()  # before the teardown that restarts a server we never had
    try:
        yield
    finally:
        ensure_server_running()


def _start_time() -> str:
    with psycopg.connect(POSTGRES_URL) as conn:
        row = conn.execute("SELECT pg_postmaster_start_time()::text").fetchone()
        assert row is not None
        return str(row[0])


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["idempotency keys", "no keys"])
def test_restart_loses_and_duplicates_no_acknowledged_write(
    server_back_up: None, mode: str
) -> None:
    """With idempotency keys (the general accord_txn path, and the keys'
    own records), and without (plain update(): accord_put_if and the token
    it keeps in the event row)."""
    writer = idempotent_writer if mode == "idempotency keys" else plain_writer
    with schema_url() as url:
        ctx = mp.get_context("spawn")
        acks = ctx.Queue()
        stop = ctx.Event()
        agents = [f"w{i}" for i in range(WRITERS)]
        writers = [
            ctx.Process(target=writer, args=(url, agent, acks, stop)) for agent in agents
        ]
        acked: dict[str, list[str]] = {a: [] for a in agents}
        done: dict[str, int] = {}
        retried: dict[str, tuple[int, int]] = {}
        unavailable: list[str] = []

        def drain_until(ready: callable, timeout: float) -> None:  # type: ignore[valid-type]
            deadline = time.monotonic() + timeout
            while not ready():
                assert time.monotonic() < deadline, f"writers stalled: {acked_counts()}"
                try:
                    kind, agent, what = acks.get(timeout=1)
                except queue.Empty:
                    dead = [w.exitcode for w in writers if w.exitcode not in (None, 0)]
                    assert not dead, f"writers died with exit codes {dead}"
                    continue
                if kind == "ack":
                    acked[agent].append(what)
                elif kind == "done":
                    done[agent], *counts = what
                    retried[agent] = (counts[0], counts[1])
                else:
                    unavailable.append(what)

        def acked_counts() -> dict[str, int]:
            return {a: len(v) for a, v in acked.items()}

        for w in writers:
            w.start()
        try:
            drain_until(lambda: min(acked_counts().values()) >= 20, 120)
            before = _start_time()
            at_restart = acked_counts()
            result = pg_ctl("restart")
            assert result.returncode == 0, result.stderr
            wait_for_server()
            assert _start_time() != before, "the server did not restart"
            drain_until(
                lambda: all(len(acked[a]) >= at_restart[a] + 20 for a in agents), 180
            )
            stop.set()
            drain_until(lambda: len(done) == WRITERS, 120)
        finally:
            stop.set()
            for w in writers:
                w.join(timeout=30)
                if w.is_alive():
                    w.kill()
        assert [w.exitcode for w in writers] == [0] * WRITERS

        if mode == "no keys":
            with accord.open(url) as store:
                s = store.session("check")
                for agent in agents:
                    n = done[agent]
                    assert len(acked[agent]) == n
                    # Each acknowledged append exactly once, in order: no
                    # repeat after the restart applied a write twice.
                    assert s.read(f"log/{agent}").value == list(range(n))
            assert sum(r for r, _ in retried.values()) > 0
            print(
                f"acknowledged {sum(done.values())} appends; operations the backend retried: "
                f"{sum(r for r, _ in retried.values())}, of them writes found already "
                f"committed: {sum(p for _, p in retried.values())}"
            )
            return
        with accord.open(url) as store:
            s = store.session("check")
            for agent in agents:
                n = done[agent]
                # Every call was repeated until acknowledged, so all n are acked,
                # and each one is in the log exactly once, in order.
                assert len(acked[agent]) == 2 * n
                assert s.read(f"log/{agent}").value == list(range(n))
            assert s.read("counter").value == sum(done.values())
            applied = Counter(
                e.idem for e in store.history() if e.outcome == "ok" and e.idem is not None
            )
        every_ack = [idem for agent in agents for idem in acked[agent]]
        assert len(every_ack) == len(set(every_ack))
        assert {idem: applied[idem] for idem in every_ack} == dict.fromkeys(every_ack, 1)
        assert sum(applied.values()) == len(every_ack)
        # The restart hit the writers mid-run: operations were retried.
        assert sum(r for r, _ in retried.values()) > 0
        print(
            f"acknowledged {len(every_ack)} writes; operations the backend retried: "
            f"{sum(r for r, _ in retried.values())}, of them writes found already committed: "
            f"{sum(p for _, p in retried.values())}; calls that failed and were repeated: "
            f"{len(unavailable)}"
        )


@pytest.mark.slow
def test_watch_sees_every_version_across_a_restart(server_back_up: None) -> None:
    """8 writer processes update() their own key and a shared one while a
    watcher follows the prefix; the server stops in the middle and starts
    again once the watch has met the outage. The watcher's store gives up on
    the server after half a second, so the watch itself meets
    BackendUnavailable, backs off and reads on from its cursor; it sees
    every version 1..N of every key exactly once, in order, before and
    after the restart."""
    from .watch_helpers import (
        SHARED,
        Observed,
        Tally,
        collect_done,
        follow,
        own_key,
        watch_writer,
    )

    bound = 180.0
    # Long enough for the writers' and the watcher's calls to outlast a restart.
    with schema_url(retry_timeout=120) as url:
        ctx = mp.get_context("spawn")
        start, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
        agents = [f"w{i}" for i in range(WRITERS)]
        writers = [
            ctx.Process(target=watch_writer, args=(url, a, None, start, stop, out))
            for a in agents
        ]
        with accord.open(url.replace("retry_timeout=120", "retry_timeout=0.5")) as store:
            observed = Observed(store.backend)
            store.backend = observed  # type: ignore[assignment]
            watcher = store.session("watcher")
            events = watcher.watch("w/", since=store.revision(), timeout=bound, retry_timeout=bound)
            for w in writers:
                w.start()
            restarted: list[Any] = []
            try:
                start.set()
                tally = Tally()
                deadline = time.monotonic() + 4 * bound
                follow(events, tally, lambda: tally.events >= 300, deadline)
                before = _start_time()

                def stop_until_the_watch_meets_it() -> None:
                    # Down until the watch itself has met the outage (bounded),
                    # then up again: the outage is certain to fall inside the
                    # watch's calls, not only between them.
                    restarted.append(pg_ctl("stop"))
                    until = time.monotonic() + bound
                    while observed.unavailable == 0 and time.monotonic() < until:
                        time.sleep(0.05)
                    restarted.append(pg_ctl("start"))

                restart = threading.Thread(target=stop_until_the_watch_meets_it)
                at_restart = tally.events
                restart.start()
                # Watch on while the server goes down and comes back, until
                # the writers have committed plenty after the restart.
                follow(
                    events,
                    tally,
                    lambda: not restart.is_alive() and tally.events >= at_restart + 600,
                    deadline,
                )
                restart.join(bound)
                assert [r.returncode for r in restarted] == [0, 0], restarted
                wait_for_server()
                assert _start_time() != before, "the server did not restart"
                stop.set()
                done = collect_done(out, writers, bound)
                # The watch met the outage itself and rode it out.
                assert observed.unavailable > 0
            finally:
                stop.set()
                for w in writers:
                    w.join(timeout=60)
                    if w.is_alive():
                        w.kill()
            assert [w.exitcode for w in writers] == [0] * WRITERS
            check = store.session("check")
            finals = {own_key(a): check.read(own_key(a)).version for a in agents}
            finals[SHARED] = check.read(SHARED).version
            # Every round bumped each key once: nothing lost, nothing twice.
            assert finals == {own_key(a): done[a] for a in agents} | {
                SHARED: sum(done.values())
            }
            follow(events, tally, lambda: tally.reached(finals), deadline)
        assert tally.versions == {k: list(range(1, v + 1)) for k, v in finals.items()}
        print(
            f"{tally.events} changes watched in order, once each, {at_restart} of them "
            f"before the restart; the watch retried {observed.unavailable} failed calls"
        )
