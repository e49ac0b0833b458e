"""HTTP: reads and conditional writes per second over `accord serve`, against the
same call in process on the same store.

A real ``accord serve`` process on 127.0.0.1 (SQLite file or PostgreSQL
schema; ``--workers`` uvicorn workers); N clients (threads of this process, each
with its own keep-alive connection of Python's http.client and its bearer token) send
``GET /v1/keys/bench/i`` or ``PUT /v1/keys/bench/i`` with ``If-Match``, as fast
as they can, each on a key of its own (no conflicts: this measures the layer,
not contention). The raw engine doing the least work for the same call is
accord itself in process: ``session.read(key)`` and ``session.write(key, value,
expect=v)`` on the same store from N threads. Rounds alternate in process and
HTTP (which goes first alternates too); rates and ratios are medians over the
rounds, p50/p99 over every call.

``--floor`` adds a third side: a bare ASGI app (no framework) on uvicorn, with
the same token handling and the same store call per request, to show what the
HTTP server alone costs (``floor``: a read checks the token against the store,
a write carries the check in its own transaction, as accord's routes do).
``--floor fold check none`` adds floors that differ only in the token: ``check``
reads the token's record before every request, writes too (accord before the
check moved into the write), ``none`` has no token at all (every request is
agent-0; one client only).

Run: .venv/bin/python bench/bench_http.py [--backend sqlite|postgresql]
     [--workers 1] [--seconds 3] [--rounds 3] [--clients 1 8] [--ops read write]
     [--floor [fold check none]] [--no-http]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.http_helpers import JSON, Server, add_agent, if_match  # noqa: E402
from tests.mcp_helpers import free_port, server_env  # noqa: E402

import accord  # noqa: E402

POSTGRES = os.environ.get("ACCORD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
VALUE = {"text": "x" * 64}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def in_process(store: accord.Store, op: str, clients: int, seconds: float
               ) -> tuple[float, list[float]]:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)

    def worker(i: int) -> None:
        session = store.session(f"agent-{i}")
        key = f"bench/{i}"
        version = session.read(key).version
        start.wait()
        deadline = time.perf_counter() + seconds
        mine = latencies[i]
        while True:
            t0 = time.perf_counter()
            if op == "read":
                session.read(key)
            else:
                version = session.write(key, VALUE, expect=version).version
            t1 = time.perf_counter()
            mine.append(t1 - t0)
            if t1 >= deadline:
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    flat = [x for lat in latencies for x in lat]
    return len(flat) / elapsed, flat


def over_http(url: str, tokens: list[str], op: str, seconds: float
              ) -> tuple[float, list[float]]:
    """Calls per second from ``len(tokens)`` clients (threads, each with its own
    keep-alive connection, Python's http.client: a light client, so that the
    client's own CPU, on the same two cores, stays small), and every latency."""
    host, port = url.rsplit("/", 1)[-1].split(":")
    clients = len(tokens)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    body = json.dumps(VALUE).encode()
    failures: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=60)
            auth = {"Authorization": f"Bearer {tokens[i]}"}
            path = f"/v1/keys/bench/{i}"
            conn.request("GET", path, headers=auth)
            got = conn.getresponse()
            got.read()
            version = int((got.getheader("etag") or '"0"').strip('"'))
            put_headers = {**auth, **JSON}
            start.wait()
            deadline = time.perf_counter() + seconds
            mine = latencies[i]
            while True:
                t0 = time.perf_counter()
                if op == "read":
                    conn.request("GET", path, headers=auth)
                else:
                    conn.request("PUT", path, body=body,
                                 headers={**put_headers, **if_match(version)})
                answer = conn.getresponse()
                answer.read()
                assert answer.status == 200, answer.status
                if op != "read":
                    version += 1
                t1 = time.perf_counter()
                mine.append(t1 - t0)
                if t1 >= deadline:
                    break
            conn.close()
        except BaseException as exc:
            failures.append(exc)
            start.abort()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    elapsed = time.perf_counter() - began
    flat = [x for lat in latencies for x in lat]
    return len(flat) / elapsed, flat


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 without one)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(store: accord.Store, urls: dict[str, str], tokens: list[str], op: str, n: int,
            seconds: float, rounds: int, pids: dict[str, int | None]) -> dict[str, Any]:
    """Rates, latencies and ratios of each side; and the CPU per call of the server
    (``pids``: one server process, else None) and of this process (the clients; in
    process, the whole call), medians over the rounds."""
    rates: dict[str, list[float]] = {"local": [], **{name: [] for name in urls}}
    lat: dict[str, list[float]] = {name: [] for name in rates}
    cpu: dict[str, list[tuple[float, float]]] = {name: [] for name in rates}
    sides = ["local", *urls]
    for r in range(rounds):
        order = sides if r % 2 == 0 else list(reversed(sides))
        for side in order:
            pid = pids.get(side)
            server0, client0 = cpu_seconds(pid), time.process_time()
            if side == "local":
                rate, got = in_process(store, op, n, seconds)
            else:
                rate, got = over_http(urls[side], tokens[:n], op, seconds)
            server1, client1 = cpu_seconds(pid), time.process_time()
            rates[side].append(rate)
            lat[side].extend(got)
            cpu[side].append(((server1 - server0) / len(got), (client1 - client0) / len(got)))
    row: dict[str, Any] = {"op": op, "clients": n}
    for side in sides:
        row[f"{side}_server_cpu"] = statistics.median(c[0] for c in cpu[side]) * 1000
        row[f"{side}_client_cpu"] = statistics.median(c[1] for c in cpu[side]) * 1000
        row[side] = statistics.median(rates[side])
        row[f"{side}_p50"] = percentile(lat[side], 0.5) * 1000
        row[f"{side}_p99"] = percentile(lat[side], 0.99) * 1000
        if side != "local":
            row[f"{side}_ratio"] = statistics.median(
                [h / lo for h, lo in zip(rates[side], rates["local"], strict=True)]
            )
    return row


FLOORS = {"fold": ("floor", []), "check": ("floor-check", ["--check-writes"]),
          "none": ("floor-none", ["--no-token"])}


def start_floor(url: str, port: int, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    args = [sys.executable, str(Path(__file__).with_name("_http_floor.py")), url, str(port),
            *extra]
    with log.open("ab") as out:
        proc = subprocess.Popen(args, env=server_env(), stdout=out, stderr=out)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the floor server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0, help="per round and side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--ops", nargs="+", default=["read", "write"])
    parser.add_argument("--floor", nargs="*", choices=list(FLOORS), default=None,
                        help="add floor sides (default: fold)")
    parser.add_argument("--no-http", action="store_true",
                        help="leave out accord serve (floors only)")
    args = parser.parse_args()
    most = max(args.clients)
    drop = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend == "sqlite":
            url = f"sqlite:///{Path(tmp) / 'state.db'}"
        else:
            import psycopg

            schema = "bench_" + uuid.uuid4().hex[:10]
            url = f"{POSTGRES}?schema={schema}"

            def drop() -> None:
                with psycopg.connect(POSTGRES, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

        try:
            tokens = [add_agent(url, f"agent-{i}") for i in range(most)]
            with accord.open(url) as store:
                for i in range(most):
                    store.session(f"agent-{i}").write(f"bench/{i}", VALUE, expect=0)
            print(f"{args.backend}, {args.workers} worker(s); load average before: "
                  f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
            server = Server(url, free_port(), log=Path(tmp) / "server.log",
                            extra=["--workers", str(args.workers)])
            server.start()
            floors: list[subprocess.Popen[bytes]] = []
            try:
                urls = {} if args.no_http else {"http": server.url}
                assert server.proc is not None
                pids: dict[str, int | None] = {
                    "http": server.proc.pid if args.workers == 1 else None}
                for mode in (args.floor or ["fold"]) if args.floor is not None else []:
                    name, extra = FLOORS[mode]
                    port = free_port()
                    floors.append(start_floor(url, port, Path(tmp) / f"{name}.log", *extra))
                    urls[name] = f"http://127.0.0.1:{port}"
                    pids[name] = floors[-1].pid
                rows = []
                with accord.open(url) as store:
                    for op in args.ops:
                        for n in args.clients:
                            row = measure(store, urls, tokens, op, n, args.seconds, args.rounds,
                                          pids)
                            rows.append(row)
                            text = (f"{op:5} {n} client(s): in process {row['local']:8,.0f}/s "
                                    f"(p50 {row['local_p50']:.3f} ms, CPU "
                                    f"{row['local_client_cpu']:.3f} ms)")
                            for side in urls:
                                text += (f" | {side} {row[side]:7,.0f}/s p50 "
                                         f"{row[side + '_p50']:.2f} ms p99 "
                                         f"{row[side + '_p99']:.2f} ms ratio "
                                         f"{row[side + '_ratio']:.3f} CPU server "
                                         f"{row[side + '_server_cpu']:.3f} ms client "
                                         f"{row[side + '_client_cpu']:.3f} ms")
                            print(text, flush=True)
            finally:
                server.stop()
                for floor in floors:
                    floor.terminate()
                    floor.wait(timeout=30)
            print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            print()
            head = "| op | clients | in process/s | in-process p50 |"
            rule = "|---|---:|---:|---:|"
            for side in urls:
                head += f" {side}/s | p50 | p99 | ratio |"
                rule += "---:|---:|---:|---:|"
            print(head)
            print(rule)
            for row in rows:
                line = (f"| {row['op']} | {row['clients']} | {row['local']:,.0f} | "
                        f"{row['local_p50']:.3f} ms |")
                for side in urls:
                    line += (f" {row[side]:,.0f} | {row[side + '_p50']:.2f} ms | "
                             f"{row[side + '_p99']:.2f} ms | {row[side + '_ratio']:.3f} |")
                print(line)
        finally:
            if drop is not None:
                drop()


if __name__ == "__main__":
    main()
