"""SIGKILL `accord serve` mid-run and restart it: every write a client saw
acknowledged is in the history once, and clients that repeat a request with its
Idempotency-Key apply nothing twice.

Two kinds of kill, alternating: as a write goes out (it may or may not reach the
store), and after the server answered a write but before the answer reached the
client (a client-side transport reads the answer, kills the server and reports
the connection lost: the case Idempotency-Key exists for, made certain rather
than left to timing).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import accord

from .conftest import _postgres_schema_url, require_postgres
from .http_helpers import JSON, Server, add_agent, bearer, if_match
from .mcp_helpers import free_port

WRITERS = 2
APPENDS = 40
KILLS = ((10, "as-sent"), (20, "after-commit"), (35, "as-sent"), (50, "after-commit"))


class LoseTheAnswer(httpx.BaseTransport):
    """Passes requests through; when armed, lets the next PUT reach the server and be
    answered, then SIGKILLs the server and reports the connection lost instead."""

    def __init__(self, server: Server) -> None:
        self.inner = httpx.HTTPTransport()
        self.server = server
        self.armed = threading.Event()
        self.fired = threading.Event()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not (self.armed.is_set() and request.method == "PUT"):
            return self.inner.handle_request(request)
        self.armed.clear()
        response = self.inner.handle_request(request)
        response.read()  # the server answered: the write is committed
        response.close()
        self.server.kill()
        self.fired.set()
        raise httpx.ReadError("the server died before its answer arrived", request=request)

    def close(self) -> None:
        self.inner.close()


def _healthy(server: Server) -> None:
    for _ in range(1200):
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError("the server did not come back within 60 s")


def writer(
    server: Server, token: str, key: str, transport: LoseTheAnswer, acked: list[int],
    progress: threading.Event, sending: threading.Event, stats: dict[str, int],
    errors: list[BaseException],
) -> None:
    """Append 0..APPENDS-1 to ``key``; after a failure, repeat the very same request."""
    try:
        client = httpx.Client(base_url=server.url, headers=bearer(token), timeout=60,
                              transport=transport)
        with client:
            for n in range(APPENDS):
                request: dict[str, Any] | None = None
                while True:
                    try:
                        if request is None:
                            got = client.get(f"/v1/keys/{key}")
                            assert got.status_code == 200, got.text
                            version = int(got.headers["etag"].strip('"'))
                            request = {
                                "json": [*got.json(), n],
                                "headers": {**JSON, **if_match(version),
                                            "Idempotency-Key": f'"{key}-append-{n}"'},
                            }
                        sending.set()
                        put = client.put(f"/v1/keys/{key}", **request)
                    except httpx.TransportError:
                        stats["lost connections"] += 1
                        _healthy(server)
                        continue
                    if put.status_code == 409:
                        # The dead server's claim on the key has not lapsed yet.
                        stats["409 in flight"] += 1
                        time.sleep(min(float(put.headers.get("retry-after", "1")), 15))
                        continue
                    assert put.status_code == 200, put.text
                    if put.headers.get("idempotent-replayed") == "true":
                        stats["replayed"] += 1
                    acked.append(n)
                    progress.set()
                    break
    except BaseException as exc:
        errors.append(exc)
        progress.set()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    require_postgres()
    url, drop = _postgres_schema_url()
    try:
        yield url
    finally:
        drop()


@pytest.mark.slow
def test_a_killed_server_loses_no_acknowledged_write_and_applies_none_twice(
    store_url: str, tmp_path: Path
) -> None:
    tokens = [add_agent(store_url, f"writer-{i}") for i in range(WRITERS)]
    keys = [f"log/writer-{i}" for i in range(WRITERS)]
    with accord.open(store_url) as store:
        for key in keys:
            store.session("setup").write(key, [], expect=0)
    server = Server(store_url, free_port(), log=tmp_path / "server.log")
    server.start()
    transports = [LoseTheAnswer(server) for _ in range(WRITERS)]
    acked: list[list[int]] = [[] for _ in range(WRITERS)]
    stats: dict[str, int] = defaultdict(int)
    errors: list[BaseException] = []
    progress, sending = threading.Event(), threading.Event()
    kills: list[str] = []
    threads = [
        threading.Thread(target=writer, args=(server, tokens[i], keys[i], transports[i],
                                              acked[i], progress, sending, stats, errors))
        for i in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    try:
        for threshold, how in KILLS:
            while sum(len(a) for a in acked) < threshold:
                assert progress.wait(timeout=120), "the writers stopped making progress"
                progress.clear()
                assert not errors, errors
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
        for thread in threads:
            thread.join(timeout=300)
    finally:
        server.stop()
    assert not errors, errors
    print(dict(stats))
    assert kills == [how for _, how in KILLS]
    # Each after-commit kill lost an answer the server had given and kept: the repeat
    # got that answer back instead of writing again.
    assert stats["replayed"] >= 2
    with accord.open(store_url) as store:
        for i, key in enumerate(keys):
            assert store.session("check").read(key).value == list(range(APPENDS))
            assert acked[i] == list(range(APPENDS))
            writes = [e for e in store.history(key=key) if e.op == "write" and e.outcome == "ok"]
            assert len(writes) == APPENDS + 1  # the setup write and one per append
            idems = [e.idem for e in writes if e.idem is not None]
            assert len(idems) == len(set(idems)) == APPENDS
