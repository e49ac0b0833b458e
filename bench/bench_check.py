"""The race detector and the linearizability search: time against bare parsing.

**race** (``--part race``): writes a synthetic accord history (reads and
version-checked writes by 20 agents over 10,000 keys, with one blind lost
update per 1,000 writes), then checks it with ``accord.check`` in a fresh
process, and compares with the least possible work on the same file in the
same run: reading every line and parsing its JSON (with the same parser the
checker uses), nothing else. The check runs in child processes so each one's
peak memory (max RSS) is its own: memory that stays flat from the small
history to the large one shows the check streams. It runs twice: in one
process (``workers=1``), and split between two processes by key
(``workers=2``).

**linearizable** (``--part linearizable``): ``accord.check(path,
linearizable=True)`` on generated register histories (Jepsen's etcd shape:
5 clients, 100 operations, read/write/cas, timeouts), as histories per
second against a bare parse of the same files, in alternating rounds; then
a 3,000-operation key-value history with 50 clients (Jepsen's kv shape:
get/put/append on 10 keys) and six variants that are not linearizable; one
register with 3,000 operations by 5 to 50 concurrent clients; then the worst
case: concurrent writes that no order explains, by how many.

Run: .venv/bin/python bench/bench_check.py [--part race|linearizable|all]
     [--events 1000000] [--keys 10000] [--histories 200]
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
    parser.add_argument("--part", choices=["race", "linearizable", "all"], default="all")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--histories", type=int, default=200)
    args = parser.parse_args()
    if args.part in ("race", "all"):
        race(args)
    if args.part in ("linearizable", "all"):
        linearizable(args.histories)


def race(args: argparse.Namespace) -> None:
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



def linearizable(count: int) -> None:
    import statistics

    import accord
    from accord.history.format import _loads
    from histories import broken, kv_history, register_history

    print(f"\nlinearizability; load average at start: {os.getloadavg()[0]:.1f}")
    tmp = Path(tempfile.mkdtemp())
    paths = []
    ops = 0
    for seed in range(count):
        path = tmp / f"register-{seed}.jsonl"
        history = register_history(seed=seed)
        ops += len(history)
        path.write_text("".join(json.dumps(e) + "\n" for e in history))
        paths.append(path)

    def parse_all() -> None:
        for path in paths:
            with path.open("rb") as handle:
                for line in handle:
                    _loads(line)

    def check_all() -> None:
        for path in paths:
            result = accord.check(path, linearizable=True)
            assert result.linearizable is True, (path, result.notes)

    check_all()  # warm up, and every generated history must pass
    rounds = []
    for i in range(5):
        order = [("parse", parse_all), ("check", check_all)]
        if i % 2:
            order.reverse()
        took = {}
        for name, fn in order:
            start = time.perf_counter()
            fn()
            took[name] = time.perf_counter() - start
        rounds.append(took)
    parse_s = statistics.median(r["parse"] for r in rounds)
    check_s = statistics.median(r["check"] for r in rounds)
    ratio = statistics.median(r["check"] / r["parse"] for r in rounds)
    print(
        f"register histories ({count} x {ops // count} operations, 5 clients, read/write/cas, "
        f"5% timeouts): check {count / check_s:,.0f} histories/s, bare parse "
        f"{count / parse_s:,.0f} histories/s; check/parse = {ratio:.1f}x (median of 5 "
        "alternating rounds)"
    )
    for path in paths:
        path.unlink()

    kv = kv_history()
    cases = [("linearizable", kv)] + [
        (f"{how}, at {int(where * 100)}%", broken(kv, how, where))
        for how in ("stale", "phantom", "reordered")
        for where in (0.5, 0.9)
    ]
    print(f"key-value history: {len(kv):,} operations, 50 clients, 10 keys (get/put/append)")
    for name, history in cases:
        start = time.perf_counter()
        result = accord.check(history, linearizable=True)
        took = time.perf_counter() - start
        steps = result.notes[-1].split(" in ")[1].split(" steps")[0]
        print(
            f"  {name:<22} {result.linearizable!s:<6} {took:5.2f} s wall "
            f"({steps} search steps)"
        )
        assert result.linearizable is (name == "linearizable"), name

    print("one register, 3,000 operations, 5% timeouts, by concurrent clients")
    for clients in (5, 10, 20, 50):
        history = register_history(clients=clients, ops=3000, seed=1)
        start = time.perf_counter()
        result = accord.check(history, linearizable=True)
        took = time.perf_counter() - start
        steps = result.notes[-1].split(" in ")[1].split(" steps")[0]
        print(f"  {clients:>2} clients {result.linearizable!s:<6} {took:6.2f} s ({steps} steps)")

    print("worst case: n blind writes all concurrent, then two reads no order explains")
    for n in range(6, 19, 2):
        history = [
            {"agent": f"w{i}", "op": "write", "key": "k", "value": i, "blind": True,
             "start": 0, "end": 10}
            for i in range(n)
        ]
        history += [
            {"agent": "r", "op": "read", "key": "k", "value": 1, "start": 11, "end": 12},
            {"agent": "r", "op": "read", "key": "k", "value": 0, "start": 13, "end": 14},
        ]
        start = time.perf_counter()
        result = accord.check(history, linearizable=True)
        took = time.perf_counter() - start
        steps = result.notes[-1].split(" in ")[1].split(" steps")[0]
        print(f"  n={n:<3} {result.linearizable!s:<6} {took:6.2f} s ({steps} steps)")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
