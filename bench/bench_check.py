"""The race detector: time and memory to check a long history, against bare parsing.

Writes a synthetic accord history (reads and version-checked writes by 20
agents over 10,000 keys, with one blind lost update per 1,000 writes), then
checks it with ``accord.check`` in a fresh process, and compares with the
least possible work on the same file in the same run: reading every line and
parsing its JSON (with the same parser the checker uses), nothing else.

The check runs in child processes so each one's peak memory (max RSS) is its
own: memory that stays flat from the small history to the large one shows
the check streams. It runs twice: in one process (``workers=1``), and split
between two processes by key (``workers=2``).

Run: .venv/bin/python bench/bench_check.py [--events 1000000] [--keys 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
mode, path = sys.argv[1], sys.argv[2]
start = time.perf_counter()
if mode == "parse":
    from accord.history.format import _loads
    n = 0
    with open(path, "rb") as f:
        for line in f:
            _loads(line)
            n += 1
    out = {"events": n}
else:
    import accord
    r = accord.check(path, workers=int(mode[5:]))
    out = {"events": r.events, "lost_update": r.counts["lost-update"],
           "lost_writes": r.lost_writes, "verdict": r.verdict}
out["seconds"] = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
out["cpu"] = usage.ru_utime + usage.ru_stime
out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def generate(path: Path, events: int, keys: int, seed: int = 7) -> int:
    """Write ``events`` history events; returns how many lost updates it holds."""
    rnd = random.Random(seed)
    agents = [f"agent-{i}" for i in range(20)]
    version = [0] * keys
    clocks = dict.fromkeys(agents, 0)
    lost = 0
    rev = 0
    t0 = 1_800_000_000.0
    with path.open("w", encoding="utf-8") as out:
        while rev < events:
            k = rnd.randrange(keys)
            agent = rnd.choice(agents)
            key = f"docs/k{k}"
            cur = version[k]
            clocks[agent] += 1
            rev += 1
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 + rev / 1000))
            stamp += f".{rev % 1000:03d}000Z"
            clock = json.dumps({agent: clocks[agent]})
            if cur and rev % 2 == 0:
                out.write(
                    f'{{"rev": {rev}, "time": "{stamp}", "agent": "{agent}", "op": "read", '
                    f'"key": "{key}", "version": {cur}, "prev": null, "based_on": null, '
                    f'"check": "none", "outcome": "ok", "hash": "sha256:{rev:064x}", '
                    f'"lamport": {rev}, "clock": {clock}, "lease": null, "idem": null, '
                    f'"request": null}}\n'
                )
                continue
            based = cur
            check = "version"
            if cur > 2 and rnd.random() < 0.001:
                based, check = cur - 1, "none"  # a blind write on a stale read
                lost += 1
            version[k] = cur + 1
            out.write(
                f'{{"rev": {rev}, "time": "{stamp}", "agent": "{agent}", "op": "write", '
                f'"key": "{key}", "version": {cur + 1}, "prev": {cur}, "based_on": {based}, '
                f'"check": "{check}", "outcome": "ok", "hash": "sha256:{rev:064x}", '
                f'"lamport": {rev}, "clock": {clock}, "lease": null, "idem": null, '
                f'"request": null}}\n'
            )
    return lost


def child(mode: str, path: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=10_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    sizes = sorted({max(1, args.events // 4), args.events})
    print(f"history: {args.keys:,} keys, 20 agents; sizes {', '.join(f'{s:,}' for s in sizes)}")
    print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    for size in sizes:
        path = tmp / f"history-{size}.jsonl"
        lost = generate(path, size, args.keys)
        mb = path.stat().st_size / 1e6
        parse = child("parse", path)
        two = child("check2", path)
        check = child("check1", path)
        for result in (check, two):
            assert result["events"] == size, result
            assert result["lost_update"] == lost, (result, lost)
        print(
            f"{size:>10,} events ({mb:,.0f} MB): check {check['seconds']:.2f} s wall, "
            f"{check['cpu']:.2f} s CPU, max RSS {check['max_rss_mb']:.0f} MB "
            f"({size / check['seconds']:,.0f} events/s)"
        )
        print(
            f"{'':>10}  split between 2 processes (workers=2): "
            f"{two['seconds']:.2f} s wall, main process {two['cpu']:.2f} s CPU"
        )
        print(
            f"{'':>10}  bare parse {parse['seconds']:.2f} s wall, {parse['cpu']:.2f} s CPU, "
            f"max RSS {parse['max_rss_mb']:.0f} MB; check/parse = "
            f"{check['seconds'] / parse['seconds']:.2f}x wall, "
            f"{check['cpu'] / parse['cpu']:.2f}x CPU; "
            f"{int(check['lost_update'])} lost updates found of {lost}"
        )
        path.unlink()
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
