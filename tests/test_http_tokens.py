"""A token the HTTP server remembers cannot outlive its revocation.

A plain write of a key (PUT or DELETE, no Idempotency-Key) does not read the
token's record before the work when the server verified the token before:
the write carries the check in its own transaction (see
accord.credentials.presenting). These tests prove that a rotated or revoked
token, remembered by the server, still cannot write: the answer is 401 and
the key is untouched. In process on every backend (a spy on the backend shows
that the token's record was not read before the write, so the refusal came
from the write's own transaction), and against a real `accord serve` process
on SQLite and PostgreSQL with the token revoked by `accord agents` in another
process.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import accord
from accord import credentials
from accord.http import app

from .conftest import _postgres_schema_url, require_postgres
from .http_helpers import TEXT, bearer, if_match, serve
from .mcp_helpers import server_env

TOKENS = ".accord/tokens/"


class Spy:
    """Counts the reads of token records by the store's backend."""

    def __init__(self, store: accord.Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads = 0
        real = store.backend.get

        def get(key: str, *args: Any, **kwargs: Any) -> Any:
            if key.startswith(TOKENS):
                self.reads += 1
            return real(key, *args, **kwargs)

        monkeypatch.setattr(store.backend, "get", get)


@pytest.fixture
def served(open_store: Callable[..., accord.Store]) -> Iterator[tuple[accord.Store, TestClient]]:
    store = open_store()
    with TestClient(app(store), base_url="http://accord", raise_server_exceptions=False) as c:
        yield store, c


def _state(store: accord.Store, key: str) -> tuple[int, Any, int]:
    """(version, value, number of successful writes in the history) of ``key``."""
    doc = store.session("observer").read(key)
    writes = sum(1 for e in store.history(key) if e.op in ("write", "delete")
                 and e.outcome == "ok")
    return doc.version, doc.value, writes


def _remembered(c: TestClient, token: str, key: str) -> None:
    """Create ``key`` (version 1) with ``token``: the server verifies the token and
    remembers it."""
    created = c.put(f"/v1/keys/{key}", content="v1", headers={**bearer(token), **TEXT,
                                                               "If-None-Match": "*"})
    assert created.status_code == 201, created.text


def test_a_remembered_token_writes_without_reading_its_record(
    served: tuple[accord.Store, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, c = served
    token = credentials.add(store, "agent-a")[1]
    _remembered(c, token, "doc")
    spy = Spy(store, monkeypatch)
    wrote = c.put("/v1/keys/doc", content="v2", headers={**bearer(token), **TEXT,
                                                         **if_match(1)})
    assert wrote.status_code == 200, wrote.text
    assert spy.reads == 0
    # A read checks the token every time: what a read returned cannot be taken back.
    assert c.get("/v1/keys/doc", headers=bearer(token)).status_code == 200
    assert spy.reads == 1


@pytest.mark.parametrize("how", ["revoke", "rotate"])
@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_a_remembered_token_cannot_write_once_revoked_or_rotated(
    served: tuple[accord.Store, TestClient], monkeypatch: pytest.MonkeyPatch,
    how: str, method: str,
) -> None:
    store, c = served
    token = credentials.add(store, "agent-a")[1]
    _remembered(c, token, "doc")
    before = _state(store, "doc")
    new = None
    if how == "revoke":
        credentials.revoke(store, "agent-a")
    else:
        new = credentials.rotate(store, "agent-a")[1]
    spy = Spy(store, monkeypatch)
    headers = {**bearer(token), **TEXT, **if_match(1)}
    if method == "PUT":
        answer = c.put("/v1/keys/doc", content="after", headers=headers)
    else:
        answer = c.delete("/v1/keys/doc", headers=headers)
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert "accord agents rotate" in answer.json()["detail"]
    assert token not in answer.text
    # The write was refused in its own transaction; the 401 was decided by reading
    # the token's record once, after the refusal.
    assert spy.reads == 1
    assert _state(store, "doc") == before
    # Forgotten now: the next request reads the record first, and is refused before it.
    again = c.put("/v1/keys/doc", content="after", headers=headers)
    assert again.status_code == 401
    assert spy.reads == 2
    assert _state(store, "doc") == before
    if new is not None:
        ok = c.put("/v1/keys/doc", content="after", headers={**bearer(new), **TEXT,
                                                             **if_match(1)})
        assert ok.status_code == 200, ok.text
        assert store.session("observer").read("doc").value == "after"


def test_a_revoked_token_learns_nothing_from_a_refused_write(
    served: tuple[accord.Store, TestClient],
) -> None:
    """A stale If-Match would answer 412 with the current value and a diff: a revoked
    token gets 401, not the value."""
    store, c = served
    token = credentials.add(store, "agent-a")[1]
    other = credentials.add(store, "agent-b")[1]
    _remembered(c, token, "doc")
    moved = c.put("/v1/keys/doc", content="secret", headers={**bearer(other), **TEXT,
                                                             **if_match(1)})
    assert moved.status_code == 200
    stale = c.put("/v1/keys/doc", content="mine", headers={**bearer(token), **TEXT,
                                                           **if_match(1)})
    assert stale.status_code == 412 and "secret" in stale.text
    credentials.revoke(store, "agent-a")
    refused = c.put("/v1/keys/doc", content="mine", headers={**bearer(token), **TEXT,
                                                             **if_match(1)})
    assert refused.status_code == 401
    assert "secret" not in refused.text


def test_a_revocation_during_the_work_refuses_the_write(
    served: tuple[accord.Store, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token is revoked after the server checked it and before the write
    commits (the moment a separate check cannot cover): the write is refused."""
    store, c = served
    token = credentials.add(store, "agent-a")[1]
    _remembered(c, token, "doc")
    before = _state(store, "doc")
    session = store.session("agent-a")
    real = session.write

    def revoke_then_write(*args: Any, **kwargs: Any) -> Any:
        credentials.revoke(store, "agent-a")
        return real(*args, **kwargs)

    monkeypatch.setattr(session, "write", revoke_then_write)
    answer = c.put("/v1/keys/doc", content="late", headers={**bearer(token), **TEXT,
                                                            **if_match(1)})
    assert answer.status_code == 401, answer.text
    assert _state(store, "doc") == before


def test_the_guard_in_process(store: accord.Store) -> None:
    """credentials.presenting(): writes in the block carry the token's check; writes
    outside it do not."""
    cache = credentials.TokenCache(store)
    token = credentials.add(store, "agent-a")[1]
    presented = cache.verify(token)
    assert presented is not None and presented.agent == "agent-a"
    assert cache.recall(token) == presented and cache.recall(token + "x") is None
    session = store.session("agent-a")
    with credentials.presenting(presented):
        doc = session.write("doc", "v1", expect=0)
        doc = session.write("doc", "v2", expect=doc.version)
    credentials.revoke(store, "agent-a")
    with credentials.presenting(presented), pytest.raises(
        accord.PreconditionFailed, match="rotated or revoked"
    ):
        session.write("doc", "v3", expect=doc.version)
    assert session.read("doc").version == doc.version
    # The same session outside the block: no token involved, the write goes through.
    assert session.write("doc", "v3", expect=doc.version).version == doc.version + 1
    assert not cache.recheck(presented) and cache.recall(token) is None


def test_a_revoked_token_leaves_a_tombstone_that_never_verifies(store: accord.Store) -> None:
    cred, token = credentials.add(store, "agent-a")
    credentials.revoke(store, "agent-a")
    rec = store.backend.get(TOKENS + cred.token_id)
    assert rec is not None and not rec.deleted and rec.author == ""
    assert b"hash" not in rec.data
    assert credentials.verify(store, token) is None
    cred2, token2 = credentials.add(store, "agent-a")
    old = store.backend.get(TOKENS + cred2.token_id)
    assert old is not None and old.author == "agent-a"
    credentials.rotate(store, "agent-a")
    assert credentials.verify(store, token2) is None
    assert store.backend.get(TOKENS + cred2.token_id).author == ""  # type: ignore[union-attr]


# --- a real server, the token revoked by another process ----------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def served_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    require_postgres()
    url, drop = _postgres_schema_url()
    try:
        yield url
    finally:
        drop()


def _agents(url: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "accord", "agents", *args, "--store", url],
        env=server_env(), capture_output=True, text=True, timeout=120, check=True,
    )
    return done.stdout.strip()


@pytest.mark.parametrize("how", ["revoke", "rotate"])
def test_a_real_server_refuses_a_remembered_token_revoked_by_another_process(
    served_url: str, tmp_path: Path, how: str
) -> None:
    token = _agents(served_url, "add", "agent-a")
    with serve(served_url, log=tmp_path / "server.log") as server, httpx.Client(
        base_url=server.url, headers=bearer(token), timeout=30
    ) as c:
        assert c.put("/v1/keys/doc", content="v1",
                     headers={**TEXT, "If-None-Match": "*"}).status_code == 201
        assert c.put("/v1/keys/doc", content="v2", headers={**TEXT, **if_match(1)}
                     ).status_code == 200
        new = _agents(served_url, how, "agent-a")
        refused = c.put("/v1/keys/doc", content="v3", headers={**TEXT, **if_match(2)})
        assert refused.status_code == 401, refused.text
        assert c.delete("/v1/keys/doc", headers=if_match(2)).status_code == 401
        with accord.open(served_url) as store:
            assert _state(store, "doc") == (2, "v2", 2)
        if how == "rotate":
            ok = c.put("/v1/keys/doc", content="v3",
                       headers={**TEXT, **if_match(2), **bearer(new)})
            assert ok.status_code == 200, ok.text
