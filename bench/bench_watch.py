"""Watch: catching up on a backlog, and the wake-up after a commit.

Part 1, catch-up: N changes (writes across 100 keys under ``b/``, with one
refused write per 10 changes in between, as a busy store has) are in the
history; the rate at which ``session.watch("b/", since=start, timeout=0)``
hands them out, against the raw engine doing the least work for the same
events: ``backend.history(start)`` read to the end (no filter, no values,
no event objects).

Part 2, wake-up: a writer thread (its own store object: its own connection)
writes a key; the watcher is already waiting in ``watch(key)``. Latency is
from just before the write call to the event in the watcher's hands. The
raw engine doing the least work: the same write and a bare
``backend.wait([key], [], since, timeout)`` returning. p50 and p90 over
the samples; the ratio is raw p50 / watch p50.

Run: .venv/bin/python bench/bench_watch.py --backend sqlite|postgresql|memory
     [--changes 20000] [--samples 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import accord

POSTGRES_URL = os.environ.get("ACCORD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _url(backend: str, tmp: Path) -> tuple[str, Callable[[], None]]:
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'bench.db'}", lambda: None
    if backend == "memory":
        return "memory://", lambda: None
    schema = "bench_" + uuid.uuid4().hex[:10]

    def drop() -> None:
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    return f"{POSTGRES_URL}?schema={schema}", drop


def catch_up(store: accord.Store, changes: int, rounds: int) -> None:
    s = store.session("writer")
    start = store.revision()
    versions: dict[str, int] = {}
    for i in range(changes):
        key = f"b/{i % 100}"
        doc = s.write(key, {"i": i}, expect=versions.get(key, 0))
        versions[key] = doc.version
        if i % 10 == 0:
            with contextlib.suppress(accord.Conflict):
                s.write(key, "stale", expect=doc.version + 5)
    watcher = store.session("watcher")
    backend = store.backend
    ours, raw, ratios = [], [], []
    for r in range(rounds):
        def run_watch() -> float:
            t = time.perf_counter()
            n = sum(1 for _ in watcher.watch("b/", since=start, timeout=0))
            assert n == changes, n
            return changes / (time.perf_counter() - t)

        def run_raw() -> float:
            t = time.perf_counter()
            n = sum(1 for _ in backend.history(start))
            assert n >= changes, n
            return changes / (time.perf_counter() - t)

        if r % 2:
            o, b = run_watch(), run_raw()
        else:
            b, o = run_raw(), run_watch()
        ours.append(o)
        raw.append(b)
        ratios.append(o / b)
    print(
        f"catch-up, {changes} changes: watch {statistics.median(ours):,.0f} events/s, "
        f"raw history() {statistics.median(raw):,.0f} events/s, "
        f"ratio {statistics.median(ratios):.3f}"
    )


def wake_up(url: str, samples: int) -> None:
    with accord.open(url) as wstore, accord.open(url) as store:
        writer = wstore.session("writer")
        watcher = store.session("watcher")
        backend = store.backend
        backend.revision()

        def one(key: str, waiter: Callable[[int], None]) -> float:
            since = store.revision()
            ready, stamp = threading.Event(), [0.0]

            def write() -> None:
                ready.wait(10)
                time.sleep(0.005)  # let the waiter block
                stamp[0] = time.perf_counter()
                writer.write(key, "x", force=True)

            t = threading.Thread(target=write)
            t.start()
            ready.set()
            waiter(since)
            done = time.perf_counter()
            t.join(10)
            return done - stamp[0]

        watch_lat, raw_lat = [], []
        for i in range(samples):

            def via_watch(since: int) -> None:
                events = watcher.watch("wake", since=since, timeout=10)
                next(events)
                events.close()

            def via_wait(since: int) -> None:
                backend.wait(["wake"], [], since, 10)

            if i % 2:
                watch_lat.append(one("wake", via_watch))
                raw_lat.append(one("wake", via_wait))
            else:
                raw_lat.append(one("wake", via_wait))
                watch_lat.append(one("wake", via_watch))

    def q(xs: list[float], p: float) -> float:
        return sorted(xs)[int(p * (len(xs) - 1))] * 1000

    print(
        f"wake-up, {samples} samples: watch p50 {q(watch_lat, 0.5):.2f} ms "
        f"p90 {q(watch_lat, 0.9):.2f} ms; raw wait() p50 {q(raw_lat, 0.5):.2f} ms "
        f"p90 {q(raw_lat, 0.9):.2f} ms; ratio {q(raw_lat, 0.5) / q(watch_lat, 0.5):.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgresql", "memory"])
    parser.add_argument("--changes", type=int, default=20000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url, drop = _url(args.backend, Path(tmp))
        try:
            with accord.open(url) as store:
                catch_up(store, args.changes, args.rounds)
            if args.backend != "memory":
                wake_up(url, args.samples)
        finally:
            drop()


if __name__ == "__main__":
    main()
