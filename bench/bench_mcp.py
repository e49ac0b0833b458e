"""MCP: tool calls per second over streamable HTTP, against the same call in process.

A real ``accord mcp --http`` server (a subprocess) on a SQLite file; N clients
(the MCP SDK's own client, each with its own HTTP session and bearer token,
as asyncio tasks of this process) call ``read`` or ``write`` as fast as they
can, each on a key of its own (no conflicts: this measures the cost of the
layer, not contention). The raw engine doing the least work for the same
operation is accord itself in process: ``session.read(key)`` and
``session.write(key, value, expect=v)`` on the same file, from N threads.
The ratio says what the MCP layer (JSON-RPC, HTTP, the token check on every
request, thread hops) costs on top.

``write-idem`` is ``write`` with a new ``idempotency_key`` on every call: over
MCP the replay record (a claim before the call, the result kept after it, see
accord.replay) on top of the library's own idempotency record; in process the
library's ``session.write(..., idempotency_key=...)`` alone.

Load on a shared machine comes and goes, so each case runs ``--rounds``
rounds of ``--seconds`` that alternate in process and MCP (which one goes
first alternates too); rates and the ratio are medians over the rounds, and
p50/p99 are over every call of every round. Client and server share the
machine's cores, as they would on one host.

Run: .venv/bin/python bench/bench_mcp.py [--seconds 3] [--rounds 3] [--clients 1 8]
     [--ops read write write-idem]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from uuid import uuid4

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.mcp_helpers import HttpServer, add_agent, http_client, http_server  # noqa: E402

import accord  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def in_process(store: accord.Store, op: str, clients: int, seconds: float
               ) -> tuple[float, list[float]]:
    """Calls per second of ``op`` from ``clients`` threads, and every call's latency."""
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
            elif op == "write-idem":
                version = session.write(key, "x" * 64, expect=version,
                                        idempotency_key=f"{key}-{version}-{uuid4()}").version
            else:
                version = session.write(key, "x" * 64, expect=version).version
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


async def over_mcp(url: str, tokens: list[str], op: str, seconds: float
                   ) -> tuple[float, list[float]]:
    """Calls per second of tool ``op`` from ``len(tokens)`` MCP clients, and latencies."""
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(http_client(url, t)) for t in tokens]
        versions = []
        for i, client in enumerate(clients):
            got = await client.call_tool("read", {"key": f"bench/{i}"})
            versions.append(got.structured_content["version"])  # type: ignore[index]
        latencies: list[list[float]] = [[] for _ in clients]

        async def worker(i: int, deadline: float) -> None:
            client, key, mine = clients[i], f"bench/{i}", latencies[i]
            while True:
                t0 = time.perf_counter()
                if op == "read":
                    result = await client.call_tool("read", {"key": key})
                elif op == "write-idem":
                    result = await client.call_tool(
                        "write", {"key": key, "value": "x" * 64, "expect": versions[i],
                                  "idempotency_key": str(uuid4())})
                    versions[i] = result.structured_content["version"]  # type: ignore[index]
                else:
                    result = await client.call_tool(
                        "write", {"key": key, "value": "x" * 64, "expect": versions[i]})
                    versions[i] = result.structured_content["version"]  # type: ignore[index]
                assert not result.is_error, result.structured_content
                t1 = time.perf_counter()
                mine.append(t1 - t0)
                if t1 >= deadline:
                    return

        began = time.perf_counter()
        await asyncio.gather(*(worker(i, began + seconds) for i in range(len(clients))))
        elapsed = time.perf_counter() - began
    flat = [x for lat in latencies for x in lat]
    return len(flat) / elapsed, flat


def measure(
    store: accord.Store, server: HttpServer, tokens: list[str], op: str, n: int,
    seconds: float, rounds: int,
) -> dict[str, Any]:
    """Alternating rounds of ``op`` in process and over MCP with ``n`` clients."""
    local_rates, mcp_rates, ratios = [], [], []
    local_lat: list[float] = []
    mcp_lat: list[float] = []
    server_cpu: list[float] = []
    client_cpu: list[float] = []

    def local() -> float:
        rate, lat = in_process(store, op, n, seconds)
        local_lat.extend(lat)
        return rate

    def remote() -> float:
        assert server.proc is not None
        s0, c0 = cpu_seconds(server.proc.pid), time.process_time()
        rate, lat = asyncio.run(over_mcp(server.url, tokens[:n], op, seconds))
        server_cpu.append((cpu_seconds(server.proc.pid) - s0) / len(lat))
        client_cpu.append((time.process_time() - c0) / len(lat))
        mcp_lat.extend(lat)
        return rate

    for r in range(rounds):
        if r % 2:
            m, lo = remote(), local()
        else:
            lo, m = local(), remote()
        local_rates.append(lo)
        mcp_rates.append(m)
        ratios.append(m / lo)
    return {
        "op": op,
        "clients": n,
        "local": statistics.median(local_rates),
        "mcp": statistics.median(mcp_rates),
        "ratio": statistics.median(ratios),
        "local_p50": percentile(local_lat, 0.5) * 1000,
        "local_p99": percentile(local_lat, 0.99) * 1000,
        "p50": percentile(mcp_lat, 0.5) * 1000,
        "p99": percentile(mcp_lat, 0.99) * 1000,
        "server_cpu": statistics.median(server_cpu) * 1000,
        "client_cpu": statistics.median(client_cpu) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per round and side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--ops", nargs="+", default=["read", "write", "write-idem"],
                        choices=["read", "write", "write-idem"])
    args = parser.parse_args()
    most = max(args.clients)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'state.db'}"
        tokens = [add_agent(url, f"agent-{i}") for i in range(most)]
        with accord.open(url) as store:
            for i in range(most):
                store.session(f"agent-{i}").write(f"bench/{i}", "x" * 64, expect=0)
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        rows: list[dict[str, Any]] = []
        with http_server(url, log=Path(tmp) / "server.log") as server, accord.open(url) as store:
            for op in args.ops:
                for n in args.clients:
                    row = measure(store, server, tokens, op, n, args.seconds, args.rounds)
                    rows.append(row)
                    print(
                        f"{op:5} {n} client(s): MCP {row['mcp']:8,.0f}/s "
                        f"(p50 {row['p50']:.2f} ms, p99 {row['p99']:.2f} ms)   in process "
                        f"{row['local']:8,.0f}/s (p50 {row['local_p50']:.3f} ms, p99 "
                        f"{row['local_p99']:.3f} ms)   ratio {row['ratio']:.3f}   CPU per call: "
                        f"server {row['server_cpu']:.2f} ms, client {row['client_cpu']:.2f} ms",
                        flush=True,
                    )
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print()
        print("| tool | clients | MCP calls/s | p50 | p99 | server CPU/call | client CPU/call "
              "| in process/s | in-process p50 | ratio |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for row in rows:
            print(
                f"| {row['op']} | {row['clients']} | {row['mcp']:,.0f} | {row['p50']:.2f} ms | "
                f"{row['p99']:.2f} ms | {row['server_cpu']:.2f} ms | {row['client_cpu']:.2f} ms "
                f"| {row['local']:,.0f} | {row['local_p50']:.3f} ms | {row['ratio']:.3f} |"
            )


if __name__ == "__main__":
    main()
