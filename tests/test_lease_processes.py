"""Leases across real processes on one SQLite file: contention, SIGKILL, SIGSTOP.

* 8 processes x 100 increments under exclusive leases end at exactly 800,
  and the history shows no write accepted outside a live lease (the race
  checker agrees); the blind-write baseline of the same shape loses updates.
* A holder killed with SIGKILL is replaced once its TTL runs out, with a
  higher token, within a bounded margin.
* A holder stopped with SIGSTOP past its TTL, then resumed, has every write
  fenced: zero accepted.
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

from .stress import run_increments

PROCS, N = 8, 100
BOUND = 60.0


def leased_increments(url: str, agent: str, n: int, barrier: Any, results: Any) -> None:
    """Increment ``counter`` ``n`` times, each read-modify-write under an exclusive lease."""
    with accord.open(url) as store:
        s = store.session(agent)
        barrier.wait(timeout=BOUND)
        for _ in range(n):
            with s.lease("counter", ttl=30, wait=BOUND) as lease:
                value = s.read("counter").value
                s.write("counter", value + 1, lease=lease)
    results.put(agent)


@pytest.mark.slow
def test_leased_increments_lose_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/leases.db"
    with accord.open(url) as store:
        store.session("setup").write("counter", 0)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(PROCS)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=leased_increments, args=(url, f"agent-{i}", N, barrier, results))
        for i in range(PROCS)
    ]
    for w in workers:
        w.start()
    done = sorted(results.get(timeout=300) for _ in workers)
    for w in workers:
        w.join(timeout=BOUND)
        assert w.exitcode == 0
    assert done == sorted(f"agent-{i}" for i in range(PROCS))
    with accord.open(url) as store:
        assert store.session("check").read("counter").value == PROCS * N
        events = list(store.history(key="counter"))
        path = tmp_path / "history.jsonl"
        store.export_history(path)
    # Walk the history in revision order: grants and releases alternate
    # (never two live exclusive leases), every write carries the live token,
    # and no write was refused or accepted outside a lease.
    live: int | None = None
    tokens: list[int] = []
    writes = 0
    for ev in events[1:]:
        if ev.op == "lease_acquire" and ev.outcome == "ok":
            assert live is None, f"token {ev.lease} granted while {live} was live"
            assert ev.lease is not None
            live = ev.lease
            tokens.append(live)
        elif ev.op == "lease_release":
            assert ev.lease == live
            live = None
        elif ev.op == "write":
            assert ev.outcome == "ok" and ev.check == "lease"
            assert ev.lease is not None and ev.lease == live, f"write outside a lease: {ev}"
            assert ev.based_on == ev.prev  # each increment built on the latest version
            writes += 1
        assert ev.op != "lease_expire", "a lease lapsed during the run"
    assert writes == PROCS * N
    assert tokens == list(range(1, PROCS * N + 1))  # strictly increasing, no gaps
    result = accord.check(path)
    assert result.counts["fenced-write-accepted"] == 0
    assert result.counts["lost-update"] == 0


@pytest.mark.slow
def test_blind_baseline_loses_updates(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/blind.db"
    run_increments(url, PROCS, N, "blind")
    with accord.open(url) as store:
        final = store.session("check").read("counter").value
    assert final < PROCS * N, "blind writes lost nothing: the lease test proves nothing"


# --- a holder that dies -------------------------------------------------------------


def hold_and_hang(url: str, ttl: float, reports: Any) -> None:
    """Take the lease, write under it, report, then hang until killed."""
    with accord.open(url) as store:
        s = store.session("doomed")
        lease = s.acquire("doc", ttl=ttl, wait=BOUND)
        s.write("doc", "from the doomed holder", lease=lease)
        reports.put((lease.token, lease.expires))
        while True:
            time.sleep(3600)


@pytest.mark.slow
def test_killed_holder_is_replaced_after_its_ttl(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/kill.db"
    ttl, margin = 1.0, 2.0
    with accord.open(url) as store:
        store.session("setup").write("doc", "initial")
    ctx = mp.get_context("spawn")
    reports = ctx.Queue()
    holder = ctx.Process(target=hold_and_hang, args=(url, ttl, reports))
    holder.start()
    try:
        token, expires = reports.get(timeout=BOUND)
        os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
        holder.join(timeout=BOUND)
        assert holder.exitcode == -signal.SIGKILL
        with accord.open(url) as store:
            s = store.session("successor")
            lease = s.acquire("doc", ttl=10, wait=ttl + BOUND)
            granted_at = store.backend.now()
            assert lease.token > token
            # Replaced no earlier than the dead lease's deadline, and within a
            # bounded margin after it (the waiter sleeps until that deadline).
            assert expires <= granted_at < expires + margin
            s.write("doc", "from the successor", lease=lease)
            lease.release()
            ops = [(e.op, e.agent, e.lease) for e in store.history(key="doc") if e.op != "write"]
        assert ops == [
            ("lease_acquire", "doomed", token),
            ("lease_expire", "doomed", token),
            ("lease_acquire", "successor", lease.token),
            ("lease_release", "successor", lease.token),
        ]
    finally:
        if holder.is_alive():
            holder.kill()


# --- a holder that is paused past its TTL -------------------------------------------


def hold_pause_write(url: str, ttl: float, reports: Any, resume: Any, writes: int) -> None:
    """Take the lease, write once, report; after ``resume``, try ``writes`` more writes."""
    with accord.open(url) as store:
        s = store.session("sleeper")
        lease = s.acquire("doc", ttl=ttl, wait=BOUND)
        s.write("doc", "sleeper 0", lease=lease)
        reports.put(("held", lease.token, lease.expires))
        resume.wait(timeout=BOUND)  # the SIGSTOP lands while we block here
        accepted = fenced = 0
        for i in range(1, writes + 1):
            try:
                s.write("doc", f"sleeper {i}", lease=lease)
                accepted += 1
            except accord.Fenced:
                fenced += 1
        try:
            lease.ensure_held()
            lost = False
        except accord.LeaseLost:
            lost = True
        reports.put(("done", accepted, fenced, lost))


@pytest.mark.slow
def test_paused_holder_has_every_late_write_fenced(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/stop.db"
    ttl, attempts = 0.5, 20
    with accord.open(url) as store:
        store.session("setup").write("doc", "initial")
    ctx = mp.get_context("spawn")
    reports, resume = ctx.Queue(), ctx.Event()
    sleeper = ctx.Process(target=hold_pause_write, args=(url, ttl, reports, resume, attempts))
    sleeper.start()
    try:
        _, token, expires = reports.get(timeout=BOUND)
        os.kill(sleeper.pid, signal.SIGSTOP)  # type: ignore[arg-type]
        with accord.open(url) as store:
            other = store.session("other")
            # The lease lapses while its holder is stopped; another agent takes over.
            lease = other.acquire("doc", ttl=30, wait=BOUND)
            assert lease.token > token and store.backend.now() >= expires
            other.write("doc", "from the new holder", lease=lease)
            # Continue first: Event.set() waits for the sleeping side to wake.
            # The holder still blocks on the event, so it writes only after it.
            os.kill(sleeper.pid, signal.SIGCONT)  # type: ignore[arg-type]
            resume.set()
            _, accepted, fenced, lost = reports.get(timeout=BOUND)
            sleeper.join(timeout=BOUND)
            assert sleeper.exitcode == 0
            assert (accepted, fenced, lost) == (0, attempts, True)
            assert other.read("doc").value == "from the new holder"
            lease.release()
            late = [
                e for e in store.history(key="doc") if e.op == "write" and e.agent == "sleeper"
            ]
        assert [e.outcome for e in late] == ["ok"] + ["fenced"] * attempts
        assert all(e.lease == token for e in late)
    finally:
        if sleeper.is_alive():
            os.kill(sleeper.pid, signal.SIGCONT)  # type: ignore[arg-type]
            sleeper.kill()


# --- a waiter that dies in line -------------------------------------------------------


def wait_in_line(url: str, reports: Any) -> None:
    """Queue for the lease (report the place in line), until killed."""
    from accord.strategies import lease as lease_mod

    with accord.open(url) as store:
        lease_mod.acquire(
            store.session("ghost"), "doc", ttl=1.0, wait=BOUND, on_wait=reports.put
        )
        reports.put("granted")  # must not happen: the holder keeps it until we are killed


@pytest.mark.slow
def test_waiter_killed_in_line_does_not_block_the_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ghost.db"
    ctx = mp.get_context("spawn")
    reports = ctx.Queue()
    with accord.open(url) as store:
        holder = store.session("holder").acquire("doc", ttl=30)
        ghost = ctx.Process(target=wait_in_line, args=(url, reports))
        ghost.start()
        try:
            assert reports.get(timeout=BOUND) == 1  # first in line
            os.kill(ghost.pid, signal.SIGKILL)  # type: ignore[arg-type]
            ghost.join(timeout=BOUND)
            assert [w.agent for w in accord.lease_status(store, "doc").waiters] == ["ghost"]
            holder.release()
            # The dead waiter's ticket lapses (it no longer refreshes it) and the
            # line moves past it.
            lease = store.session("next").acquire("doc", ttl=10, wait=BOUND)
            assert lease.token == holder.token + 1
            assert accord.lease_status(store, "doc").waiters == []
            lease.release()
        finally:
            if ghost.is_alive():
                ghost.kill()
