"""A leaseholder and optimistic writers race in real processes; nothing is lost.

One process appends to a list under exclusive leases (acquire, read, append,
write under the lease, release), three others append with ``update()`` for
as long as it runs, on one SQLite file and on PostgreSQL. While the lease is
live, every optimistic write is refused with :class:`LeaseHeld` (the writer
then waits its turn in the lease line and retries), so at the end the list
holds every append exactly once.

The baseline shows what the store did before a lease excluded others: a
holder that reads, lets a writer's change land (the old store accepted it)
and then writes, erases that change. The same detector reports the loss,
so the test above can fail.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import accord

from .postgres_helpers import schema_url

KEY = "shared/list"
ROUNDS = 15
WRITERS = 3
BOUND = 60.0


def holder(url: str, barrier: Any, attempted: Any, stop: Any, results: Any) -> None:
    """Append ``L<i>`` under an exclusive lease, ROUNDS times; then stop the writers."""
    try:
        with accord.open(url) as store:
            s = store.session("holder")
            barrier.wait(timeout=BOUND)
            for i in range(ROUNDS):
                with s.lease(KEY, ttl=30, wait=BOUND) as lease:
                    value = s.read(KEY).value
                    # Let a writer try while the lease is live (bounded: the
                    # test holds without it, it is only stronger with it).
                    attempted.clear()
                    attempted.wait(timeout=5.0)
                    s.write(KEY, [*value, f"L{i}"], lease=lease)
    finally:
        stop.set()
    results.put(("holder", 0, ROUNDS))


def writer(url: str, name: str, barrier: Any, attempted: Any, stop: Any, results: Any) -> None:
    """Append ``<name>-<i>`` with update() until the holder is done; wait out any lease."""
    refused = count = 0
    with accord.open(url) as store:
        s = store.session(name)
        barrier.wait(timeout=BOUND)
        while not stop.is_set():
            try:
                s.update(KEY, lambda v, i=count: [*v, f"{name}-{i}"], retries=50)
                count += 1
            except accord.LeaseHeld:
                refused += 1
                attempted.set()
                # Wait in the lease line (shared: the writers go together),
                # then try again once the holder has released.
                s.acquire(KEY, ttl=5, wait=BOUND, mode="shared").release()
    results.put((name, refused, count))


def baseline_holder(url: str, barrier: Any, landed: Any, stop: Any, results: Any) -> None:
    """The old behaviour: read, let a writer's change land, then write over it."""
    try:
        with accord.open(url) as store:
            s = store.session("holder")
            barrier.wait(timeout=BOUND)
            for i in range(ROUNDS):
                doc = s.read(KEY)
                # What a lease that did not exclude allowed: another agent's
                # write lands between the holder's read and its leased write.
                store.backend.wait([KEY], [], doc.revision, 5.0)
                s.write(KEY, [*doc.value, f"L{i}"], force=True)
    finally:
        stop.set()
    results.put(("holder", 0, ROUNDS))


def baseline_writer(
    url: str, name: str, barrier: Any, landed: Any, stop: Any, results: Any
) -> None:
    count = 0
    with accord.open(url) as store:
        s = store.session(name)
        barrier.wait(timeout=BOUND)
        while not stop.is_set():
            s.update(KEY, lambda v, i=count: [*v, f"{name}-{i}"], retries=50)
            count += 1
    results.put((name, 0, count))


def race(url: str, baseline: bool) -> tuple[list[str], list[tuple[str, int, int]]]:
    with accord.open(url) as store:
        store.session("setup").write(KEY, [])
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(1 + WRITERS)
    signal, stop = ctx.Event(), ctx.Event()
    results = ctx.Queue()
    hold_fn, write_fn = (baseline_holder, baseline_writer) if baseline else (holder, writer)
    procs = [ctx.Process(target=hold_fn, args=(url, barrier, signal, stop, results))]
    procs += [
        ctx.Process(target=write_fn, args=(url, f"w{n}", barrier, signal, stop, results))
        for n in range(WRITERS)
    ]
    for p in procs:
        p.start()
    done = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=BOUND)
        assert p.exitcode == 0, f"{p.name} exited with {p.exitcode}"
    with accord.open(url) as store:
        final = store.session("check").read(KEY).value
    return final, done


def expected(done: list[tuple[str, int, int]]) -> list[str]:
    """Every append the processes made (each reported how many)."""
    out = []
    for name, _, count in done:
        prefix = "L" if name == "holder" else f"{name}-"
        out += [f"{prefix}{i}" for i in range(count)]
    return sorted(out)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/race.db"
    else:
        with schema_url() as pg:
            yield pg


@pytest.mark.slow
def test_a_leaseholder_and_optimistic_writers_lose_nothing(url: str, tmp_path: Path) -> None:
    final, done = race(url, baseline=False)
    assert sorted(final) == expected(done), "an append was lost or applied twice"
    with accord.open(url) as store:
        events = [e for e in store.history(key=KEY) if e.op == "write"]
        path = tmp_path / "history.jsonl"
        store.export_history(path)
    fenced = [e for e in events if e.outcome == "fenced"]
    # Every refusal reported to a writer is in the history as fenced, and
    # each one came while the holder's lease was live.
    assert len(fenced) == sum(refused for _, refused, _ in done)
    assert all(e.agent != "holder" for e in fenced)
    assert len(fenced) > 0, "no writer ever met the lease: the race did not happen"
    result = accord.check(path)
    assert result.counts["lost-update"] == 0


@pytest.mark.slow
def test_baseline_a_lease_that_does_not_exclude_loses_appends(url: str) -> None:
    final, done = race(url, baseline=True)
    assert len(final) < len(expected(done)), "the baseline lost nothing: the test proves nothing"
