"""The cost simulator: a sweep of 5 strategies x 8 agent counts x 5 conflict
rates x 20 seeds (4,000 runs), on 2 processes, against the store work bare.

The shape (``BENCH``): 64 keys picked with Zipf skew 1 (the first is hot),
exponential think times of mean 10 s, 2 changes per agent, 5 ms per store
operation; agent counts 1, 2, 4, 8, 16, 24, 32, 64; conflict rates 0, 0.1,
0.25, 0.5, 1. "Ours" is the wall time of ``accord.simulator.sweep`` on 2
processes (every run: the real strategy code on the explorer's scheduler in
virtual time). "Bare" is the least work the same runs need: their store
operations (as counted by the simulator) done back to back on a bare
``MemoryBackend`` (reads and writes alternating), no scheduler, no session,
no strategy, on one core; the ratios are ours (wall on 2 processes, and
the workers' CPU seconds, which a loaded machine does not inflate) over bare.

Run: .venv/bin/python bench/bench_simulate.py [--processes 2] [--seeds 20]
"""

from __future__ import annotations

import argparse
import os
import time

from accord.backends.memory import MemoryBackend
from accord.records import Put
from accord.simulator import Workload, sweep

BENCH = Workload(
    name="bench",
    resources=64,
    skew=1.0,
    think="exp:10",
    operations=2,
    op_latency=0.005,
)
AGENTS = (1, 2, 4, 8, 16, 24, 32, 64)
CONFLICTS = (0.0, 0.1, 0.25, 0.5, 1.0)


def bare_seconds(operations: int) -> float:
    """Seconds a bare MemoryBackend takes for ``operations`` reads and writes."""
    backend = MemoryBackend("memory://")
    data = b'{"c0.0": 1}'
    start = time.perf_counter()
    for i in range(operations // 2):
        key = f"r/{i % 64}"
        backend.get(key)
        backend.txn([], [Put(key, "json", data)])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    runs = 5 * len(AGENTS) * len(CONFLICTS) * args.seeds
    print(
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; {runs} runs on "
        f"{args.processes} processes",
        flush=True,
    )
    start = time.perf_counter()
    result = sweep(
        BENCH, agents=AGENTS, conflicts=CONFLICTS, seeds=args.seeds, processes=args.processes
    )
    wall = time.perf_counter() - start
    cpu = sum(s.cpu for p in result.points.values() for s in p.summaries)
    operations = round(
        sum(s.operations * s.runs for p in result.points.values() for s in p.summaries)
    )
    failed = sum(s.failed for p in result.points.values() for s in p.summaries)
    bare = bare_seconds(operations)
    print(f"sweep: {wall:.1f} s wall ({runs / wall:.0f} runs/s), {failed} failed runs")
    print(
        f"       {cpu:.1f} CPU seconds in the workers: {cpu / args.processes:.1f} s on "
        f"{args.processes} idle cores"
    )
    print(f"bare:  {operations:,} store operations in {bare:.2f} s")
    print(f"ratio: {wall / bare:.1f} wall, {cpu / bare:.1f} CPU (ours over bare)")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
