"""PostgreSQL: reads, versioned writes and update() per second, against bare psycopg.

The raw engine doing the least work is a bare psycopg connection (autocommit,
prepared statements) on a plain table in the same database, in the same run:

- pair      ``SELECT data, version FROM t WHERE key = %s`` then
            ``UPDATE t SET data = %s, version = version + 1 WHERE key = %s
            AND version = %s``: the read + compare-and-set every figure is
            compared with (the issue's yardstick)
- select    the bare ``SELECT`` alone (for reads)

Part 1, one client: read, ``write(expect=)`` and ``update()``, in short
alternating rounds (medians), each with its ratio to the pair.

Part 2, round trips: the same operations direct and through a relay that
delays every answer by ``--latency`` ms (a network between agent and
database); the difference divided by the delay is the number of network
round trips an operation costs, and the last column is its rate relative to
the bare pair's when both pay the delay.

Part 3, contention: 1, 4 and 16 client processes incrementing one hot key,
or each a key of its own, for ``--seconds`` each: accord's read +
``write(expect=)`` repeated until it wins (``update()`` without its backoff,
so retries are counted), against bare psycopg processes repeating the pair
until its UPDATE matches, on the same shape.

Run: .venv/bin/python bench/bench_postgres.py [--url postgresql://...] [--seconds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

import accord
from _timing import paired

DEFAULT_URL = os.environ.get("ACCORD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


class Bare:
    """The raw engine: one psycopg connection on a plain table."""

    def __init__(self, base: str, table: str) -> None:
        self.conn = psycopg.connect(base, autocommit=True, prepare_threshold=0)
        self.table = table
        self.sel = f"SELECT data, version FROM {table} WHERE key = %s"
        self.cas = (
            f"UPDATE {table} SET data = %s, version = version + 1 WHERE key = %s AND version = %s"
        )

    def select(self, key: str = "k") -> tuple[Any, int]:
        row = self.conn.execute(self.sel, (key,)).fetchone()
        assert row is not None
        return row[0], row[1]

    def pair(self, key: str = "k") -> bool:
        data, version = self.select(key)
        return self.conn.execute(self.cas, (data, key, version)).rowcount == 1


def single_client(url: str, base: str, table: str, seconds: float, rounds: int) -> list[Any]:
    store = accord.open(url)
    s = store.session("bench")
    s.write("doc", "hello")
    bare = Bare(base, table)
    state = {"v": 1}

    def write() -> None:
        state["v"] = s.write("doc", "hello", expect=state["v"]).version

    def update() -> None:
        state["v"] = s.update("doc", lambda v: v).version

    rows = []
    for name, ours in (("read", lambda: s.read("doc")), ("write(expect=)", write),
                       ("update()", update)):
        o, b, r = paired(ours, bare.pair, seconds, rounds)
        rows.append((name, o, b, r))
    o, b, r = paired(lambda: s.read("doc"), bare.select, seconds, rounds)
    rows.append(("read vs bare SELECT", o, b, r))
    store.close()
    bare.conn.close()
    return rows


# --- round trips through a delaying relay -------------------------------------------


def relay(target: tuple[str, int], delay: float) -> int:
    """Start a TCP relay that delays every answer by ``delay`` (like netem: each
    chunk is due ``delay`` after it arrived, so chunks do not add up)."""
    server = socket.create_server(("127.0.0.1", 0))

    def close(*socks: socket.socket) -> None:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()

    def pump(src: socket.socket, dst: socket.socket, slow: bool) -> None:
        due: queue.Queue[tuple[float, bytes]] = queue.Queue()

        def send() -> None:
            try:
                while True:
                    at, data = due.get()
                    if not data:
                        break
                    time.sleep(max(0.0, at - time.perf_counter()))
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                close(src, dst)

        if slow:
            threading.Thread(target=send, daemon=True).start()
        try:
            while data := src.recv(1 << 16):
                if slow:
                    due.put((time.perf_counter() + delay, data))
                else:
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            due.put((0.0, b""))
            if not slow:
                close(src, dst)

    def accept() -> None:
        while True:
            client, _ = server.accept()
            upstream = socket.create_connection(target)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client, True), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return int(server.getsockname()[1])


def with_port(url: str, port: int) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{port}"))


def round_trips(
    url: str, base: str, table: str, delay: float
) -> list[tuple[str, float, float, float]]:
    """Network round trips per operation: (time through the relay - time
    direct) / delay, so server and client work cancel out."""
    parts = base.split("@", 1)[-1].split("/", 1)[0]
    host, _, port = parts.partition(":")
    rport = relay((host or "127.0.0.1", int(port or 5432)), delay)
    n = 30

    def per_op(fn: Callable[[], None]) -> float:
        for _ in range(5):
            fn()
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / n

    times: dict[str, list[float]] = {}
    for target_url, target_base in ((url, base), (with_port(url, rport), with_port(base, rport))):
        store = accord.open(target_url)
        s = store.session("rt")
        state = {"v": s.update("rt", lambda x: "x").version}
        bare = Bare(target_base, table)

        def write(s: Any = s, state: dict[str, int] = state) -> None:
            state["v"] = s.write("rt", "x", expect=state["v"]).version

        def update(s: Any = s, state: dict[str, int] = state) -> None:
            state["v"] = s.update("rt", lambda x: x).version

        for name, fn in (
            ("bare SELECT", lambda bare=bare: bare.select()),
            ("bare SELECT + UPDATE pair", lambda bare=bare: bare.pair()),
            ("read", lambda s=s: s.read("rt")),
            ("write(expect=)", write),
            ("update()", update),
        ):
            times.setdefault(name, []).append(per_op(fn))
        store.close()
        bare.conn.close()
    return [(name, fast, slow, (slow - fast) / delay) for name, (fast, slow) in times.items()]


# --- contention across processes ----------------------------------------------------


def _accord_worker(url: str, key: str, seconds: float, barrier: Any, out: Any) -> None:
    with accord.open(url) as store:
        s = store.session(f"w{os.getpid()}")
        b: Any = store.backend
        barrier.wait(timeout=120)
        n, conflicts = 0, 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            # update() with retries counted here, so conflicts are visible.
            while True:
                try:
                    doc = s.read(key)
                    s.write(key, doc.value + 1, expect=doc.version)
                    break
                except accord.Conflict:
                    conflicts += 1
            n += 1
        out.put((n, conflicts, b.retried))


def _bare_worker(base: str, table: str, key: str, seconds: float, barrier: Any, out: Any) -> None:
    bare = Bare(base, table)
    barrier.wait(timeout=120)
    n, conflicts = 0, 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        while not bare.pair(key):
            conflicts += 1
        n += 1
    out.put((n, conflicts, 0))


def create_keys(store: accord.Store, keys: list[str]) -> None:
    """Create each of ``keys`` at 0 unless it exists.

    Asks for each key by name: a prefix scan for "own/1" also finds
    "own/10".."own/15", which is how the 16-client case once skipped
    creating own/1 and died with NotFound.
    """
    s = store.session("setup")
    for key in dict.fromkeys(keys):
        try:
            s.read(key)
        except accord.NotFound:
            s.write(key, 0, expect=0)


def contention(
    url: str, base: str, table: str, clients: int, hot: bool, seconds: float
) -> tuple[float, float, float, float]:
    keys = ["hot"] * clients if hot else [f"own/{i}" for i in range(clients)]
    with accord.open(url) as store:
        create_keys(store, keys)
    with psycopg.connect(base, autocommit=True) as conn:
        for key in set(keys):
            conn.execute(
                f"INSERT INTO {table} VALUES (%s, 'x', 0) ON CONFLICT DO NOTHING", (key,)
            )
    ctx = mp.get_context("spawn")
    result = []
    for side in ("accord", "bare"):
        barrier = ctx.Barrier(clients)
        out = ctx.Queue()
        procs = [
            ctx.Process(
                target=_accord_worker if side == "accord" else _bare_worker,
                args=(url, keys[i], seconds, barrier, out)
                if side == "accord"
                else (base, table, keys[i], seconds, barrier, out),
            )
            for i in range(clients)
        ]
        for p in procs:
            p.start()
        got = [out.get(timeout=300) for _ in procs]
        for p in procs:
            p.join(60)
        done = sum(g[0] for g in got)
        result.append((done / seconds, sum(g[1] for g in got) / max(done, 1)))
    (a_rate, a_conf), (b_rate, b_conf) = result
    return a_rate, b_rate, a_conf, b_conf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=DEFAULT_URL, help="a PostgreSQL URL without ?schema=")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--latency", type=float, default=5.0, help="ms per answer, part 2")
    parser.add_argument("--clients", default="1,4,16")
    args = parser.parse_args()
    base = args.url
    schema = "bench_" + uuid.uuid4().hex[:8]
    url = f"{base}{'&' if '?' in base else '?'}schema={schema}"
    table = f"{schema}.bare"
    with psycopg.connect(base, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        sync = conn.execute("SHOW synchronous_commit").fetchone()
    try:
        accord.open(url).close()  # creates the schema
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(
                f"CREATE TABLE {table} (key text PRIMARY KEY, data bytea, version bigint)"
            )
            conn.execute(f"INSERT INTO {table} VALUES ('k', 'hello', 1)")
        print(f"PostgreSQL {version[0] if version else '?'} (synchronous_commit="
              f"{sync[0] if sync else '?'}), {os.cpu_count()} cores, "
              f"load average {os.getloadavg()[0]:.1f}")
        print("\n1. one client (medians of alternating rounds); ratio vs the bare pair")
        print(f"{'operation':<22} {'accord/s':>10} {'bare/s':>10} {'ratio':>6}")
        for name, o, b, r in single_client(url, base, table, args.seconds, args.rounds):
            print(f"{name:<22} {o:>10,.0f} {b:>10,.0f} {r:>6.2f}")

        print(f"\n2. network round trips per operation ({args.latency:g} ms delay per answer)")
        rows = round_trips(url, base, table, args.latency / 1000)
        pair = {name: slow for name, _, slow, _ in rows}["bare SELECT + UPDATE pair"]
        print(f"{'operation':<26} {'direct ms':>9} {'delayed ms':>10} {'round trips':>11} "
              f"{'vs pair, delayed':>16}")
        for name, fast, slow, rt in rows:
            print(f"{name:<26} {fast * 1000:>9.2f} {slow * 1000:>10.2f} {rt:>11.2f} "
                  f"{pair / slow:>16.2f}")

        print(f"\n3. contention: processes x {args.seconds:g} s; read + write(expect=) until it "
              "wins (update() without backoff) vs the bare pair until it wins")
        print(f"{'clients':>7} {'keys':<5} {'accord/s':>10} {'bare/s':>10} {'ratio':>6} "
              f"{'accord retries/op':>17} {'bare retries/op':>15}")
        for clients in (int(c) for c in args.clients.split(",")):
            for hot in (True, False):
                a, b, ac, bc = contention(url, base, table, clients, hot, args.seconds)
                print(f"{clients:>7} {'hot' if hot else 'own':<5} {a:>10,.0f} {b:>10,.0f} "
                      f"{a / b:>6.2f} {ac:>17.2f} {bc:>15.2f}")
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


if __name__ == "__main__":
    main()
