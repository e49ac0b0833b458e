"""SIGKILL the streamable-HTTP server mid-run, restart it: nothing acknowledged is
lost, and nothing is applied twice when clients retry with their idempotency keys.

Two kinds of kill, alternating: as a write goes out (it may or may not reach the
store), and after the server committed a write but before its answer reached
the client (a client-side transport swallows the answer and kills the server:
the case idempotency keys exist for, made certain rather than left to timing).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

import accord

from .mcp_helpers import CALL_TIMEOUT, HttpServer, add_agent, free_port, ok, run

WRITERS = 2
APPENDS = 40
# (acknowledged appends of all writers together, how to kill) for each SIGKILL.
KILLS = ((10, "as-sent"), (20, "after-commit"), (35, "as-sent"), (50, "after-commit"))


class LoseTheAnswer(httpx2.AsyncBaseTransport):
    """Passes requests through; when armed, lets the next write reach the server and
    commit, then SIGKILLs the server and reports the connection lost instead of the
    answer."""

    def __init__(self, server: HttpServer) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.server = server
        self.armed = threading.Event()
        self.fired = threading.Event()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = request.content if request.method == "POST" else b""
        is_write = b'"tools/call"' in body and b'"name":"write"' in body.replace(b" ", b"")
        if not (self.armed.is_set() and is_write):
            return await self.inner.handle_async_request(request)
        self.armed.clear()
        response = await self.inner.handle_async_request(request)
        await response.aread()  # the server answered: the write is committed
        await response.aclose()
        self.server.kill()
        self.fired.set()
        raise httpx2.ReadError("the server died before its answer arrived", request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@contextlib.asynccontextmanager
async def client_via(url: str, token: str, transport: httpx2.AsyncBaseTransport
                     ) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx2.Timeout(30, read=CALL_TIMEOUT),
        transport=transport,
    )
    async with http, Client(streamable_http_client(url, http_client=http),
                             read_timeout_seconds=CALL_TIMEOUT) as client:
        yield client


async def _healthy(port: int) -> None:
    """Wait (bounded) until the restarted server answers."""
    async with httpx2.AsyncClient() as probe:
        for _ in range(1200):
            try:
                answer = await probe.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                if answer.status_code == 200:
                    return
            except httpx2.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("the server did not come back within 60 s")


async def writer(
    server: HttpServer, token: str, key: str, transport: LoseTheAnswer, acked: list[int],
    progress: threading.Event, sending: threading.Event, stats: dict[str, int],
) -> None:
    """Append 0..APPENDS-1 to ``key``, each append one idempotent write.

    After a failure the client does not re-read to rebuild its change: it repeats the
    very same call (same value, same expect, same idempotency key). If the first
    attempt was applied, the repeat returns its result and writes nothing.
    """
    n = 0
    pending: dict[str, Any] | None = None
    suspect = False
    while n < APPENDS:
        try:
            async with client_via(server.url, token, transport) as client:
                while n < APPENDS:
                    if pending is None:
                        seen = await ok(client, "read", key=key)
                        pending = {
                            "key": key,
                            "value": json.dumps([*seen["value"], n]),
                            "expect": seen["version"],
                            "kind": "json",
                            "idempotency_key": f"{key}-append-{n}",
                        }
                    if suspect:
                        # The server died under this very write: was it applied?
                        now = await ok(client, "read", key=key)
                        applied = now["version"] > pending["expect"]
                        stats["applied, answer lost" if applied else "not applied"] += 1
                        suspect = False
                    sending.set()
                    result = await client.call_tool("write", pending)
                    assert not result.is_error, result.structured_content
                    acked.append(n)
                    n += 1
                    pending = None
                    progress.set()
        except AssertionError:
            raise
        except Exception:
            stats["failed calls"] += 1
            suspect = pending is not None
            await _healthy(server.port)


@pytest.mark.slow
def test_a_killed_server_loses_no_acknowledged_write_and_applies_none_twice(
    sqlite_url: str, tmp_path: Path
) -> None:
    tokens = [add_agent(sqlite_url, f"writer-{i}") for i in range(WRITERS)]
    keys = [f"log/writer-{i}" for i in range(WRITERS)]
    with accord.open(sqlite_url) as store:
        for key in keys:
            store.session("setup").write(key, [], expect=0)
    server = HttpServer(sqlite_url, free_port(), log=tmp_path / "server.log")
    server.start()
    transports = [LoseTheAnswer(server) for _ in range(WRITERS)]
    acked: list[list[int]] = [[] for _ in range(WRITERS)]
    stats: dict[str, int] = defaultdict(int)
    progress, sending = threading.Event(), threading.Event()
    kills: list[str] = []

    def killer() -> None:
        for threshold, how in KILLS:
            while sum(len(a) for a in acked) < threshold:
                assert progress.wait(timeout=120), "the writers stopped making progress"
                progress.clear()
            if how == "as-sent":
                sending.clear()
                assert sending.wait(timeout=120), "no write was sent"
                server.kill()
            else:
                transport = transports[len(kills) % WRITERS]
                transport.fired.clear()
                transport.armed.set()
                assert transport.fired.wait(timeout=120), "the armed write never came"
            kills.append(how)
            server.start()

    thread = threading.Thread(target=killer)
    thread.start()
    try:

        async def everyone() -> None:
            await asyncio.gather(*(
                writer(server, tokens[i], keys[i], transports[i], acked[i], progress, sending,
                       stats)
                for i in range(WRITERS)
            ))

        run(everyone(), 600)
    finally:
        thread.join(timeout=180)
        server.stop()
    print(dict(stats))
    assert kills == [how for _, how in KILLS]
    # Each after-commit kill left a committed write unacknowledged: the retry found it
    # applied and got the first result back instead of applying it again.
    assert stats["applied, answer lost"] >= 2
    with accord.open(sqlite_url) as store:
        for i, key in enumerate(keys):
            final = store.session("check").read(key).value
            assert final == list(range(APPENDS)), (key, final)  # all there, each once
            assert acked[i] == list(range(APPENDS))
            writes = [e for e in store.history(key=key) if e.op == "write" and e.outcome == "ok"]
            assert len(writes) == APPENDS + 1  # the setup write and one per append
            idems = [e.idem for e in writes if e.idem is not None]
            assert len(idems) == len(set(idems)) == APPENDS
