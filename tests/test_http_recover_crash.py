"""SIGKILL a real ``accord serve`` inside the Idempotency-Key crash window of the lease
and queue routes, restart it: clients that repeat each request with its key get an
answer as the first attempt's, and nothing is applied twice.

Three agents over HTTP: one takes, renews and releases a lease round after round;
one submits changes; one accepts them in order. The server is killed eight times,
six of them inside a route's crash window (tests/http_crash_server.py: after the
operation committed, before the server kept the response: lease acquire, renew and
release, and accept), two as a request goes out. Every grant, renewal, release,
submission and decision is in the history exactly once per acknowledged request.
Without the recovery from the store (accord._recover) a repeat after a kill in the
window would take a second lease, or be refused as releasing a released lease or
deciding a decided request.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

import accord

from .conftest import _postgres_schema_url, require_postgres
from .http_helpers import JSON, TEXT, Server, add_agent, bearer, if_match
from .mcp_helpers import free_port

QUEUE_KEY = "docs/draft"
LEASE_KEY = "locks/doc"
ROUNDS = 6  # each client's least number of rounds; they go on until the killer is done
ACQUIRE = "POST /v1/leases/*"
RENEW = "PATCH /v1/leases/*"
RELEASE = "DELETE /v1/leases/*"
ACCEPT = "POST /v1/requests/*/accept"
# (acknowledged requests of all clients together, how to kill): a pattern kills the
# server in that route's crash window; "as-sent" as a request goes out.
KILLS = (
    (4, ACQUIRE), (8, ACCEPT), (12, "as-sent"), (16, RELEASE), (20, RENEW),
    (24, "as-sent"), (28, ACCEPT), (32, ACQUIRE),
)


@dataclass
class Shared:
    """What the clients and the killer share."""

    server: Server
    acked: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    stats: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)
    progress: threading.Event = field(default_factory=threading.Event)
    sending: threading.Event = field(default_factory=threading.Event)
    killed: threading.Event = field(default_factory=threading.Event)
    failed: threading.Event = field(default_factory=threading.Event)  # a client gave up
    errors: list[BaseException] = field(default_factory=list)

    def ack(self, what: str, value: Any) -> None:
        with self.lock:
            self.acked[what].append(value)
        self.progress.set()

    def count(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.acked.values())

    def note(self, what: str) -> None:
        with self.lock:
            self.stats[what] += 1


def _healthy(server: Server) -> None:
    for _ in range(1200):
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError("the server did not come back within 60 s")


class Retrying:
    """One agent's client that repeats a request, the very same request, until it is
    answered: after a lost connection, and after 409 "still being processed" (the dead
    request's claim) as long as ``Retry-After`` says to wait."""

    def __init__(self, shared: Shared, token: str) -> None:
        self.shared = shared
        self.client = httpx.Client(base_url=shared.server.url, headers=bearer(token),
                                   timeout=60)

    def send(self, method: str, url: str, ok: int = 200, **kwargs: Any) -> Any:
        for _ in range(200):
            try:
                self.shared.sending.set()
                answer = self.client.request(method, url, **kwargs)
            except httpx.TransportError:
                self.shared.note("lost requests")
                _healthy(self.shared.server)
                continue
            if answer.status_code == 409 and "still being processed" in answer.text:
                self.shared.note("repeats while the dead request's claim held")
                time.sleep(min(float(answer.headers.get("retry-after", "1")), 5.0))
                continue
            assert answer.status_code == ok, (method, url, answer.status_code, answer.text)
            if answer.headers.get("idempotent-replayed") == "true":
                self.shared.note("replayed")
            return answer.json()
        raise AssertionError(f"{method} {url} was never answered")

    def get(self, url: str) -> Any:
        return self.send("GET", url)

    def __enter__(self) -> Retrying:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()


def leaser(shared: Shared, token: str) -> None:
    with Retrying(shared, token) as client:
        n = 0
        while n < ROUNDS or not shared.killed.is_set():
            lease = client.send("POST", f"/v1/leases/{LEASE_KEY}?ttl=60&wait=1", ok=201,
                                headers={"Idempotency-Key": f"acquire-{n}"})
            shared.ack("acquired", lease["token"])
            renewed = client.send("PATCH", f"/v1/leases/{LEASE_KEY}?token={lease['token']}&ttl=60",
                                  headers={"Idempotency-Key": f"renew-{n}"})
            assert renewed["token"] == lease["token"]
            shared.ack("renewed", lease["token"])
            released = client.send("DELETE", f"/v1/leases/{LEASE_KEY}?token={lease['token']}",
                                   headers={"Idempotency-Key": f"release-{n}"})
            assert released["released"] is True
            shared.ack("released", lease["token"])
            n += 1


def submitter(shared: Shared, token: str) -> None:
    with Retrying(shared, token) as client:
        n = 0
        while n < ROUNDS or not shared.killed.is_set():
            request = client.send("POST", f"/v1/queue/{QUEUE_KEY}", ok=201,
                                  content=f"change-{n}",
                                  headers={**TEXT, "Idempotency-Key": f"submit-{n}"})
            shared.ack("submitted", (request["id"], f"change-{n}"))
            n += 1
        shared.acked["submitter done"].append(n)


def queue_writer(shared: Shared, token: str) -> None:
    """Accept every request in order, appending its change to the key's JSON list."""
    with Retrying(shared, token) as client:
        while not shared.acked["submitter done"] or (
            len(shared.acked["accepted"]) < len(shared.acked["submitted"])
        ):
            listed = client.get(f"/v1/queue/{QUEUE_KEY}")
            if not listed["requests"]:
                time.sleep(0.05)  # polling for work, as a writer does
                continue
            request = listed["requests"][0]
            value = [*listed["current_value"], request["change"]]
            accepted = client.send(
                "POST", f"/v1/requests/{request['id']}/accept", json=value,
                headers={**JSON, **if_match(listed["current_version"]),
                         "Idempotency-Key": f"accept-{request['id']}"})
            assert accepted["status"] == "accepted" and accepted["decided_by"] == "author"
            shared.ack("accepted", (request["id"], accepted["version"]))


def _client(shared: Shared, target: Any, token: str) -> threading.Thread:
    def run() -> None:
        try:
            target(shared, token)
        except BaseException as exc:
            shared.errors.append(exc)
            shared.failed.set()

    return threading.Thread(target=run)


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
def test_a_killed_server_applies_no_lease_or_decision_twice(
    store_url: str, tmp_path: Path
) -> None:
    tokens = {name: add_agent(store_url, name) for name in ("leaser", "critic", "author")}
    with accord.open(store_url) as store:
        store.session("author").write(QUEUE_KEY, [], expect=0)
    arm = tmp_path / "arm"
    server = Server(store_url, free_port(), log=tmp_path / "server.log",
                    module="tests.http_crash_server",
                    env={"ACCORD_TEST_CRASH_ARM": str(arm),
                         # -m finds tests/ from any working directory
                         "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    server.start()
    shared = Shared(server)
    clients = [
        _client(shared, leaser, tokens["leaser"]),
        _client(shared, submitter, tokens["critic"]),
        _client(shared, queue_writer, tokens["author"]),
    ]
    kills: list[str] = []
    for thread in clients:
        thread.start()
    try:
        for threshold, how in KILLS:
            quiet = 0
            while shared.count() < threshold and not shared.failed.is_set():
                if shared.progress.wait(timeout=1):
                    shared.progress.clear()
                    quiet = 0
                quiet += 1
                assert quiet < 120, "the clients stopped"
            if shared.failed.is_set():
                break
            if how == "as-sent":
                shared.sending.clear()
                assert shared.sending.wait(timeout=120), "no request was sent"
                server.kill()
            else:
                arm.write_text(how)
                assert server.proc is not None
                for _ in range(120):  # until the armed route's request killed it
                    if server.proc.poll() is not None or shared.failed.wait(timeout=1):
                        break
                if shared.failed.is_set():
                    break
                assert server.proc.poll() is not None, f"no {how} request came"
                assert not arm.exists()
            kills.append(how)
            server.start()
    finally:
        shared.killed.set()
        for thread in clients:
            thread.join(timeout=300)
        server.stop()
    assert not shared.errors, shared.errors
    print(dict(shared.stats))
    assert kills == [how for _, how in KILLS]
    assert shared.stats["lost requests"] >= len(KILLS)
    acked = shared.acked
    with accord.open(store_url) as store:
        history = list(store.history())

    def events(op: str, agent: str) -> list[Any]:
        return [e for e in history if e.op == op and e.agent == agent and e.outcome == "ok"]

    # Leases: one grant, one renewal, one release per acknowledged request, no more.
    grants = [e.lease for e in events("lease_acquire", "leaser") if e.lease is not None]
    assert grants == acked["acquired"], (grants, acked["acquired"])
    assert [e.lease for e in events("lease_renew", "leaser")] == acked["renewed"]
    assert [e.lease for e in events("lease_release", "leaser")] == acked["released"]
    assert acked["acquired"] == acked["released"] == acked["renewed"]
    # The queue: one request per submission, each accepted once, all in the value.
    submitted = [e.request for e in events("submit", "critic")]
    assert submitted == [rid for rid, _ in acked["submitted"]]
    accepts = [(e.request, e.version) for e in events("accept", "author")]
    assert accepts == acked["accepted"]
    with accord.open(store_url) as store:
        final = store.session("check").read(QUEUE_KEY).value
    assert final == [change for _, change in acked["submitted"]]
