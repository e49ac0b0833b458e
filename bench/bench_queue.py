"""The queue on a hot key against optimistic update(), and merge time for N branches.

Part 1, a hot key on one SQLite file, every agent a process of its own:

* queue: S submitter processes submit requests to one key; one writer
  process serves them (appends each change to a list). Throughput is
  requests applied per second, from the start signal to the last decision.
* optimistic: S processes call ``update()`` on the same key with the same
  append. Retries are the version conflicts the history records.
* raw engine: the least work for the same number of commits: one process,
  one connection, a bare ``UPDATE ... WHERE version = ?`` per commit on a
  SQLite WAL file.

Part 2: merge time for 2, 8 and 32 branches of a 10,000-line text, each
branch editing lines of its own (a clean merge), through ``store.merge``
(reads the branches and the base from SQLite, then merges), against the
least work: one ``difflib`` diff of the base against one branch.

With ``--postgres URL`` part 1 runs on PostgreSQL instead (one schema per
case, dropped after), against a bare versioned ``UPDATE`` on one psycopg
connection; ``--only-queue`` leaves out ``update()`` and the merges.

Run: .venv/bin/python bench/bench_queue.py [--requests 480] [--think 0 2]
     [--postgres postgresql://postgres@127.0.0.1:5432/test] [--only-queue]
"""

from __future__ import annotations

import argparse
import difflib
import multiprocessing as mp
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import accord

KEY = "hot/doc"


def _submitter(url: str, index: int, count: int, start: Any, ready: Any) -> None:
    with accord.open(url) as store:
        session = store.session(f"submitter-{index}")
        store.revision()  # connect before the clock starts
        ready.put(index)
        start.wait(120)
        for n in range(count):
            session.submit(KEY, f"{index}:{n}")


def _think(seconds: float) -> None:
    # Stands for the agent computing the new value (a model call, a tool):
    # work that update() must redo on every retry and the writer does once.
    if seconds:
        time.sleep(seconds)


def _writer(url: str, ready: Any, stop: Any, think: float) -> None:
    with accord.open(url) as store:
        session = store.session("writer")
        next(session.requests(KEY, timeout=0), None)  # claim the role first
        ready.set()

        def apply(value: list[str], change: str) -> list[str]:
            _think(think)
            return [*value, change]

        session.serve(KEY, apply, stop=stop)


def _updater(
    url: str, index: int, count: int, start: Any, ready: Any, out: Any, think: float
) -> None:
    gave_up = 0

    def change(value: list[str], c: str) -> list[str]:
        _think(think)
        return [*value, c]

    with accord.open(url) as store:
        session = store.session(f"updater-{index}")
        store.revision()
        ready.put(index)
        start.wait(120)
        for n in range(count):
            try:
                session.update(
                    KEY,
                    lambda value, c=f"{index}:{n}": change(value, c),
                    retries=1000,
                    backoff=0.001,
                )
            except accord.RetriesExhausted:
                gave_up += 1
    out.put(gave_up)


def _wait_length(store: accord.Store, length: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while True:
        since = store.revision()
        if len(store.session("observer").read(KEY).value) >= length:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark did not finish")
        store.backend.wait([KEY], [], since, 1.0)


def _url(tmp: Path, name: str, postgres: str | None) -> str:
    """A fresh store for one case: a SQLite file, or a PostgreSQL schema."""
    if postgres is None:
        return f"sqlite:///{tmp / f'{name}.db'}"
    schema = "bench_" + uuid.uuid4().hex[:8]
    return f"{postgres}{'&' if '?' in postgres else '?'}schema={schema}"


def _drop(url: str) -> None:
    if not url.startswith("postgresql"):
        return
    import psycopg

    base, _, schema = url.rpartition("schema=")
    with psycopg.connect(base.rstrip("?&"), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def run_queue(
    tmp: Path, submitters: int, total: int, think: float, postgres: str | None = None
) -> dict[str, float]:
    url = _url(tmp, f"queue-{submitters}-{think}", postgres)
    try:
        return _run_queue(url, submitters, total, think)
    finally:
        _drop(url)


def _run_queue(url: str, submitters: int, total: int, think: float) -> dict[str, float]:
    per = total // submitters
    with accord.open(url) as store:
        store.session("writer").write(KEY, [])
        ctx = mp.get_context("spawn")
        start, ready, stop, ready_q = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Queue()
        writer = ctx.Process(target=_writer, args=(url, ready, stop, think))
        writer.start()
        assert ready.wait(60)
        procs = [
            ctx.Process(target=_submitter, args=(url, i, per, start, ready_q))
            for i in range(submitters)
        ]
        for p in procs:
            p.start()
        for _ in procs:  # every child has imported accord and connected
            ready_q.get(timeout=120)
        began = time.perf_counter()
        start.set()
        _wait_length(store, per * submitters)
        elapsed = time.perf_counter() - began
        stop.set()
        for p in [*procs, writer]:
            p.join(60)
        conflicts = sum(1 for e in store.history(key=KEY) if e.op == "accept" and e.outcome != "ok")
    return {"per_second": per * submitters / elapsed, "retries": conflicts, "seconds": elapsed}


def run_optimistic(
    tmp: Path, agents: int, total: int, think: float, postgres: str | None = None
) -> dict[str, float]:
    url = _url(tmp, f"optimistic-{agents}-{think}", postgres)
    try:
        return _run_optimistic(url, agents, total, think)
    finally:
        _drop(url)


def _run_optimistic(url: str, agents: int, total: int, think: float) -> dict[str, float]:
    per = total // agents
    with accord.open(url) as store:
        store.session("setup").write(KEY, [])
        ctx = mp.get_context("spawn")
        start, out, ready_q = ctx.Event(), ctx.Queue(), ctx.Queue()
        procs = [
            ctx.Process(target=_updater, args=(url, i, per, start, ready_q, out, think))
            for i in range(agents)
        ]
        for p in procs:
            p.start()
        for _ in procs:
            ready_q.get(timeout=120)
        began = time.perf_counter()
        start.set()
        gave_up = sum(out.get(timeout=600) for _ in procs)
        elapsed = time.perf_counter() - began
        for p in procs:
            p.join(60)
        applied = len(store.session("observer").read(KEY).value)
        retries = sum(
            1 for e in store.history(key=KEY) if e.op == "write" and e.outcome == "conflict"
        )
    return {
        "per_second": applied / elapsed,
        "retries": retries,
        "retries_per_update": retries / max(1, applied),
        "gave_up": gave_up,
        "seconds": elapsed,
    }


def run_raw(tmp: Path, total: int) -> float:
    path = tmp / "raw.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB, version INTEGER)")
    conn.execute("INSERT INTO kv VALUES (?, ?, 1)", (KEY, b"[]"))
    began = time.perf_counter()
    for version in range(1, total + 1):
        conn.execute(
            "UPDATE kv SET value = ?, version = version + 1 WHERE key = ? AND version = ?",
            (b"[1]", KEY, version),
        )
    elapsed = time.perf_counter() - began
    conn.close()
    return total / elapsed


def run_raw_postgres(postgres: str, total: int) -> float:
    import psycopg

    schema = "bench_" + uuid.uuid4().hex[:8]
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            conn.execute(
                f"CREATE TABLE {schema}.kv (key text PRIMARY KEY, value bytea, version bigint)"
            )
            conn.execute(f"INSERT INTO {schema}.kv VALUES (%s, %s, 1)", (KEY, b"[]"))
            began = time.perf_counter()
            for version in range(1, total + 1):
                conn.execute(
                    f"UPDATE {schema}.kv SET value = %s, version = version + 1 "
                    "WHERE key = %s AND version = %s",
                    (b"[1]", KEY, version),
                )
            elapsed = time.perf_counter() - began
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    return total / elapsed


def make_text(lines: int) -> str:
    return "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(lines))


def run_merge(tmp: Path, branches: int, lines: int = 10_000) -> dict[str, float]:
    url = f"sqlite:///{tmp / f'merge-{branches}.db'}"
    base = make_text(lines)
    base_lines = base.splitlines(keepends=True)
    with accord.open(url) as store:
        store.session("owner").write("big.md", base)
        made = []
        stride = lines // branches
        for b in range(branches):
            mine = list(base_lines)
            for j in range(5):  # five edits in this branch's own stretch of lines
                at = b * stride + j * (stride // 5)
                mine[at] = f"line {at}: edited by branch {b}\n"
            branch = store.session(f"agent-{b}").fork("big.md")
            branch.write("".join(mine))
            made.append(branch)
        began = time.perf_counter()
        merge = store.merge("big.md", made)
        elapsed = time.perf_counter() - began
        assert merge.clean and merge.value.count("edited by branch") == 5 * branches
        one = made[0].read().splitlines(keepends=True)
        raw_began = time.perf_counter()
        difflib.SequenceMatcher(None, base_lines, one, autojunk=False).get_opcodes()
        raw = time.perf_counter() - raw_began
    return {"seconds": elapsed, "raw_seconds": raw}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=480, help="requests per case")
    parser.add_argument(
        "--think",
        type=float,
        nargs="*",
        default=[0.0, 2.0],
        help="milliseconds each agent spends computing a new value (default: 0 and 2)",
    )
    parser.add_argument(
        "--postgres", metavar="URL", help="run part 1 on PostgreSQL (a URL without ?schema=)"
    )
    parser.add_argument(
        "--only-queue", action="store_true", help="the queue alone: no update(), no merges"
    )
    args = parser.parse_args()
    total = args.requests
    pg = args.postgres
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        raw = run_raw(tmp, total) if pg is None else run_raw_postgres(pg, total)
        engine = "SQLite WAL file" if pg is None else "PostgreSQL"
        print(
            f"raw engine: {raw:,.0f} commits/s (bare versioned UPDATE, one connection, {engine})\n"
        )
        print(
            "| think | agents | queue req/s | vs raw | queue retries | update() req/s | vs raw "
            "| update() retries | retries per update | gave up |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for think_ms in args.think:
            for agents in (1, 4, 16):
                q = run_queue(tmp, agents, total, think_ms / 1000, pg)
                if args.only_queue:
                    print(
                        f"| {think_ms:g} ms | {agents} | {q['per_second']:,.0f} "
                        f"| {q['per_second'] / raw:.4f} | {q['retries']:.0f} | | | | | |",
                        flush=True,
                    )
                    continue
                o = run_optimistic(tmp, agents, total, think_ms / 1000, pg)
                print(
                    f"| {think_ms:g} ms | {agents} | {q['per_second']:,.0f} "
                    f"| {q['per_second'] / raw:.4f} | {q['retries']:.0f} "
                    f"| {o['per_second']:,.0f} | {o['per_second'] / raw:.4f} "
                    f"| {o['retries']:.0f} | {o['retries_per_update']:.2f} "
                    f"| {o['gave_up']:.0f} |",
                    flush=True,
                )
        if args.only_queue:
            return
        print("\n| branches of a 10,000-line text | store.merge | one difflib diff (raw) | ratio |")
        print("|---:|---:|---:|---:|")
        for branches in (2, 8, 32):
            m = run_merge(tmp, branches)
            print(
                f"| {branches} | {m['seconds'] * 1000:,.0f} ms | {m['raw_seconds'] * 1000:,.1f} ms "
                f"| {m['seconds'] / m['raw_seconds']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
