"""Real processes on SQLite: 8 submitters x 100 requests, one writer killed and replaced.

The first writer is killed with SIGKILL in the middle of the run (it may be
inside a transaction, or between reading a request and deciding it); a
second writer takes the role over once the first one's role lapses. Every
request must be applied exactly once, in submission order. The unsafe
baseline (blind read-modify-write from as many processes) loses updates.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

import accord
from accord.strategies import queue
from tests.stress import run_increments

KEY = "log"
SUBMITTERS = 8
PER_SUBMITTER = 100
TOTAL = SUBMITTERS * PER_SUBMITTER
ROLE_TTL = 1.0


def submitter(url: str, index: int, start: Any) -> None:
    with accord.open(url) as store:
        session = store.session(f"critic-{index}")
        start.wait(60)
        for n in range(PER_SUBMITTER):
            session.submit(KEY, f"{index}:{n}", idempotency_key=f"{index}:{n}")


def writer(url: str, agent: str, stop: Any, ready: Any) -> None:
    with accord.open(url) as store:
        session = store.session(agent)

        def apply(value: list[str], change: str) -> list[str]:
            return [*value, change]

        ready.set()
        session.serve(KEY, apply, stop=stop, ttl=ROLE_TTL, role_wait=60)


def _wait_for_length(store: accord.Store, at_least: int, timeout: float) -> int:
    """Block (on the store's own wait) until the log holds ``at_least`` entries."""
    deadline = time.monotonic() + timeout
    while True:
        since = store.revision()
        length = len(store.session("observer").read(KEY).value)
        if length >= at_least:
            return length
        left = deadline - time.monotonic()
        if left <= 0:
            return length
        store.backend.wait([KEY], [], since, min(left, 1.0))


@pytest.mark.slow
def test_writer_killed_and_replaced_applies_every_request_once_in_order(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with accord.open(url) as store:
        store.session("setup").write(KEY, [])
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    stop = ctx.Event()
    first_ready, second_ready = ctx.Event(), ctx.Event()
    first = ctx.Process(target=writer, args=(url, "writer-1", stop, first_ready))
    first.start()
    assert first_ready.wait(60)
    submitters = [ctx.Process(target=submitter, args=(url, i, start)) for i in range(SUBMITTERS)]
    for p in submitters:
        p.start()
    start.set()
    second = ctx.Process(target=writer, args=(url, "writer-2", stop, second_ready))
    with accord.open(url) as store:
        at_kill = _wait_for_length(store, TOTAL // 8, timeout=120)
        assert TOTAL // 8 <= at_kill < TOTAL, "the writer must die mid-run"
        assert first.pid is not None
        os.kill(first.pid, signal.SIGKILL)
        first.join(30)
        assert first.exitcode == -signal.SIGKILL
        second.start()
        for p in submitters:
            p.join(120)
            assert p.exitcode == 0
        final = _wait_for_length(store, TOTAL, timeout=120)
        stop.set()
        second.join(60)
        assert second.exitcode == 0
        assert final == TOTAL

        log: list[str] = store.session("observer").read(KEY).value
        # Exactly once: every change present, none twice.
        assert len(log) == len(set(log)) == TOTAL
        assert set(log) == {f"{i}:{n}" for i in range(SUBMITTERS) for n in range(PER_SUBMITTER)}
        # In order: each submitter's requests in its own order...
        for i in range(SUBMITTERS):
            mine = [int(e.split(":")[1]) for e in log if e.startswith(f"{i}:")]
            assert mine == list(range(PER_SUBMITTER))
        # ...and the whole log in submission order (the requests' seq).
        records = [r.value for r in store.backend.scan(".accord/request/")]
        assert len(records) == TOTAL and all(r["status"] == "accepted" for r in records)
        by_seq = sorted(records, key=lambda r: r["seq"])
        assert [r["change"] for r in by_seq] == log
        assert [r["version"] for r in by_seq] == list(range(2, TOTAL + 2))
        # Both writers decided some; the history has one accept per request.
        accepts = [e for e in store.history(key=KEY) if e.op == "accept" and e.outcome == "ok"]
        assert len(accepts) == TOTAL and len({e.request for e in accepts}) == TOTAL
        by_writer = {e.agent for e in accepts}
        assert by_writer == {"writer-1", "writer-2"}
        assert queue.pending(store, KEY) == []


@pytest.mark.slow
def test_unsafe_baseline_loses_updates(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'base.db'}"
    run_increments(url, procs=SUBMITTERS, n=50, mode="blind")
    with accord.open(url) as store:
        assert store.session("x").read("counter").value < SUBMITTERS * 50
