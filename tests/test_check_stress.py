"""The checker on real multi-process stress histories (SQLite, spawned processes).

The blind-write baseline loses increments; the checker, reading only the
exported history, must count exactly the increments the counter lost. The
optimistic run (update() with expect) and a queue run (submitters and a
writer in separate processes) must check clean, and so must a history of
leases (renewed in time, one fenced late write) and a branch merge.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import pytest

import accord

from .stress import run_increments

PROCS, N = 4, 150


@pytest.mark.slow
def test_blind_write_lost_updates_match_the_counter(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/blind.db"
    run_increments(url, PROCS, N, "blind")
    path = tmp_path / "blind.jsonl"
    with accord.open(url) as store:
        final = store.session("check").read("counter").value
        store.export_history(path)
    lost = PROCS * N - final
    assert lost > 0, "blind writes lost nothing: the stress test cannot fail"
    result = accord.check(path)
    assert result.verdict == "anomalies"
    assert result.counts["lost-update"] > 0
    assert result.lost_writes == lost
    assert not result.notes
    for anomaly in result.by_name("lost-update"):
        assert anomaly.details["based_on"] < anomaly.details["replaced"]


@pytest.mark.slow
def test_optimistic_history_checks_clean(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/update.db"
    run_increments(url, PROCS, N, "update")
    path = tmp_path / "update.jsonl"
    with accord.open(url) as store:
        assert store.session("check").read("counter").value == PROCS * N
        store.export_history(path)
    result = accord.check(path)
    assert result.ok, [a.explanation for a in result.anomalies[:3]]
    assert result.lost_writes == 0
    assert result.writes == PROCS * N + 1


SUBMITTERS, REQUESTS = 3, 40


def queue_submitter(url: str, index: int, start: Any) -> None:
    with accord.open(url) as store:
        session = store.session(f"critic-{index}")
        start.wait(60)
        for n in range(REQUESTS):
            session.submit("log", f"{index}:{n}", idempotency_key=f"{index}:{n}")


def queue_writer(url: str, stop: Any, ready: Any) -> None:
    with accord.open(url) as store:
        ready.set()
        store.session("author").serve(
            "log", lambda value, change: [*value, change], stop=stop, role_wait=60
        )


@pytest.mark.slow
def test_queue_history_across_processes_checks_clean(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/queue.db"
    with accord.open(url) as store:
        store.session("setup").write("log", [])
    ctx = mp.get_context("spawn")
    start, stop, ready = ctx.Event(), ctx.Event(), ctx.Event()
    writer = ctx.Process(target=queue_writer, args=(url, stop, ready))
    writer.start()
    assert ready.wait(60)
    subs = [ctx.Process(target=queue_submitter, args=(url, i, start)) for i in range(SUBMITTERS)]
    for p in subs:
        p.start()
    start.set()
    for p in subs:
        p.join(120)
        assert p.exitcode == 0
    total = SUBMITTERS * REQUESTS
    with accord.open(url) as store:
        deadline = time.monotonic() + 120
        while len(store.session("observer").read("log").value) < total:
            since = store.revision()
            assert time.monotonic() < deadline, "the writer did not apply every request"
            store.backend.wait(["log"], [], since, 1.0)
        stop.set()
        writer.join(60)
        assert writer.exitcode == 0
        path = tmp_path / "queue.jsonl"
        store.export_history(path)
    result = accord.check(path)
    assert result.ok, [a.explanation for a in result.anomalies[:3]]
    assert result.writes == total + 1


def test_lease_and_branch_histories_check_clean() -> None:
    now = [1_800_000_000.0]
    with accord.open("memory://", record_reads=True, clock=lambda: now[0]) as store:
        a, b = store.session("a"), store.session("b")
        a.write("doc", "v0")
        with a.lease("doc", ttl=10) as lease:
            a.write("doc", a.read("doc").value + " a", lease=lease)
            now[0] += 8
            lease.renew()
            now[0] += 8  # past the first deadline, inside the renewed one
            a.write("doc", a.read("doc").value + " a2", lease=lease)
        late = a.acquire("doc", ttl=1)
        now[0] += 5  # the lease lapses; its write must be fenced, not accepted
        with pytest.raises(accord.LeaseError):
            a.write("doc", "late", lease=late)
        with b.lease("doc", ttl=10) as lease:
            b.write("doc", b.read("doc").value + " b", lease=lease)
        a.write("cfg", {"base": 1})
        x, y = a.fork("cfg"), b.fork("cfg")
        x.write({**x.read(), "x": 1})
        y.write({**y.read(), "y": 2})
        store.merge("cfg", [x, y]).commit()
        result = accord.check(store)
    assert result.ok, [a.explanation for a in result.anomalies]
    assert result.counts["fenced-write-accepted"] == 0


def test_stdlib_json_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from accord.history import format as fmt

    monkeypatch.setattr(fmt, "_loads", json.loads)
    monkeypatch.setattr(fmt, "_JSONError", (ValueError,))
    here = Path(__file__).parent / "histories"
    assert accord.check(here / "lost_update.jsonl").counts["lost-update"] == 1
    with pytest.raises(accord.HistoryFormatError, match="line 2"):
        accord.check(here / "malformed.jsonl")
