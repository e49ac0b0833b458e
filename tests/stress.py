"""Multi-process workers for stress tests (importable by spawned children)."""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

import accord


def increment_worker(url: str, agent: str, n: int, mode: str, barrier: Any, results: Any) -> None:
    """Increment the counter ``n`` times: ``update`` (safe) or ``blind`` (unsafe)."""
    gave_up = 0
    with accord.open(url) as store:
        s = store.session(agent)
        barrier.wait(timeout=60)
        for _ in range(n):
            if mode == "update":
                try:
                    s.update("counter", lambda v: (v or 0) + 1)
                except accord.RetriesExhausted:
                    gave_up += 1
            else:
                value = s.read("counter").value
                s.write("counter", value + 1, force=True)
    results.put((agent, gave_up))


def run_increments(url: str, procs: int, n: int, mode: str) -> list[tuple[str, int]]:
    """Run ``procs`` processes of ``increment_worker``; returns (agent, gave_up) each."""
    with accord.open(url) as store:
        store.session("setup").write("counter", 0)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(procs)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=increment_worker, args=(url, f"agent-{i}", n, mode, barrier, results))
        for i in range(procs)
    ]
    for w in workers:
        w.start()
    out = [results.get(timeout=300) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0, f"worker exited with {w.exitcode}"
    return out


def acking_writer(url: str, agent: str, acks: Any) -> None:
    """Append to a log key forever, reporting each acknowledged write."""
    with accord.open(url) as store:
        s = store.session(agent)
        i = 0
        while True:
            doc = s.update(f"log/{agent}", lambda v, i=i: [*(v or []), i])
            acks.put((agent, doc.version))
            i += 1
