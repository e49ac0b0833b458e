"""The HTTP API in process (the ASGI app under Starlette's TestClient), on every backend.

Preconditions (ETag, If-Match, If-None-Match, 304, 412, 428), values kept by
Content-Type, problem+json errors with the Python error's message, the
Idempotency-Key field (replay, 422, 409, kept across a restart), leases with
fencing, the queue, branches and merges, the history as a watch, the checker
and the plan; 401/403; 413 before a body is read whole.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import accord
from accord import credentials
from accord.http import app

from .http_helpers import TEXT, bearer, if_match

MANIFEST = """
[agents.author]
[agents.critic]

[[resource]]
key = "docs/draft.md"
strategy = "queue"
writer = "author"
submitters = ["critic"]
"""

HISTORIES = Path(__file__).parent / "histories"


class Api:
    """The app over one store, and a client per agent."""

    def __init__(self, store: accord.Store) -> None:
        self.store = store
        self.app = app(store)
        self._clients: list[TestClient] = []

    def client(self, agent: str | None = None, token: str | None = None) -> TestClient:
        if agent is not None and token is None:
            token = credentials.add(self.store, agent)[1]
        c = TestClient(self.app, base_url="http://accord", raise_server_exceptions=False)
        if token is not None:
            c.headers.update(bearer(token))
        self._clients.append(c)
        return c

    def close(self) -> None:
        for c in self._clients:
            c.close()


@pytest.fixture
def api(open_store: Callable[..., accord.Store]) -> Iterator[Api]:
    a = Api(open_store())
    yield a
    a.close()


def version_of(response: Any) -> int:
    return int(response.headers["etag"].strip('"'))


# --- keys and preconditions ---------------------------------------------------------------


def test_the_lost_update_picture_one_200_one_412_both_changes_survive(api: Api) -> None:
    a, b = api.client("agent-a"), api.client("agent-b")
    assert a.put("/v1/keys/docs/plan.md", content="intro\n",
                 headers={**TEXT, "If-None-Match": "*"}).status_code == 201
    read_a, read_b = a.get("/v1/keys/docs/plan.md"), b.get("/v1/keys/docs/plan.md")
    assert read_a.headers["etag"] == read_b.headers["etag"] == '"1"'
    first = a.put("/v1/keys/docs/plan.md", content=read_a.text + "A's section\n",
                  headers={**TEXT, "If-Match": read_a.headers["etag"]})
    second = b.put("/v1/keys/docs/plan.md", content=read_b.text + "B's section\n",
                   headers={**TEXT, "If-Match": read_b.headers["etag"]})
    assert first.status_code == 200 and first.headers["etag"] == '"2"'
    assert second.status_code == 412
    conflict = second.json()
    assert second.headers["content-type"] == "application/problem+json"
    assert second.headers["etag"] == '"2"'
    assert conflict["type"] == "Conflict" and conflict["status"] == 412
    assert conflict["expected"] == 1 and conflict["current"] == 2
    assert conflict["writers"] == [{"version": 2, "agent": "agent-a"}]
    assert conflict["value"] == "intro\nA's section\n" and conflict["value_kind"] == "text"
    assert "+A's section" in conflict["diff"]
    # The same words as the Python error (those messages are not marked up for HTTP yet).
    with pytest.raises(accord.Conflict) as python:
        api.store.session("agent-c").write("docs/plan.md", "x", expect=1)
    assert conflict["detail"].split(" (")[0] == python.value.message.split(" (")[0]
    # The retry: read again, apply the change on top, write with the new ETag.
    again = b.get("/v1/keys/docs/plan.md")
    retried = b.put("/v1/keys/docs/plan.md", content=again.text + "B's section\n",
                    headers={**TEXT, "If-Match": again.headers["etag"]})
    assert retried.status_code == 200
    final = a.get("/v1/keys/docs/plan.md")
    assert final.text == "intro\nA's section\nB's section\n"
    assert version_of(final) == 3


def test_values_keep_their_kind_by_content_type(api: Api) -> None:
    c = api.client("agent-a")
    cases = [
        ("t", "text/plain; charset=utf-8", "héllo\n".encode(), "text/plain; charset=utf-8"),
        ("j", "application/json", b'{"b": [1, 2.5, null], "a": "\xc3\xa9"}', "application/json"),
        ("b", "application/octet-stream", bytes(range(256)), "application/octet-stream"),
        ("p", "application/problem+json", b'{"x": 1}', "application/json"),
        ("m", "text/markdown", b"# title\n", "text/plain; charset=utf-8"),
    ]
    for key, sent, body, received in cases:
        put = c.put(f"/v1/keys/{key}", content=body,
                    headers={"Content-Type": sent, "If-None-Match": "*"})
        assert put.status_code == 201, put.text
        got = c.get(f"/v1/keys/{key}")
        assert got.headers["content-type"] == received
        if received == "application/json":
            assert got.json() == json.loads(body)
        else:
            assert got.content == body
    session = api.store.session("py")
    assert session.read("t").value == "héllo\n"
    assert session.read("j").value == {"a": "é", "b": [1, 2.5, None]}
    assert session.read("b").value == bytes(range(256))


@pytest.mark.parametrize(
    ("headers", "body", "status", "words"),
    [
        ({}, b"x", 415, "Content-Type"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"a=1", 415, "text/plain"),
        ({"Content-Type": "text/plain; charset=latin-1"}, b"x", 415, "UTF-8"),
        ({"Content-Type": "application/json"}, b"{nope", 400, "not valid JSON"),
        ({"Content-Type": "application/json"}, b"NaN", 400, "NaN"),
        ({"Content-Type": "text/plain"}, b"\xff\xfe", 400, "not valid UTF-8"),
        ({**TEXT, "If-Match": "*"}, b"x", 400, "If-Match: *"),
        ({**TEXT, "If-Match": 'W/"1"'}, b"x", 400, "weak"),
        ({**TEXT, "If-Match": '"1", "2"'}, b"x", 400, "2 entity tags"),
        ({**TEXT, "If-None-Match": '"1"'}, b"x", 400, "only *"),
        ({**TEXT, "If-None-Match": "*", "If-Match": '"1"'}, b"x", 400, "not both"),
        ({**TEXT, "Accord-Lease": "zero"}, b"x", 400, "accord-lease"),
        ({**TEXT, "Idempotency-Key": '""'}, b"x", 400, "Idempotency-Key"),
    ],
)
def test_bad_writes_are_refused_with_what_to_do_and_change_nothing(
    api: Api, headers: dict[str, str], body: bytes, status: int, words: str
) -> None:
    c = api.client("agent-a")
    c.put("/v1/keys/k", content="v1", headers={**TEXT, "If-None-Match": "*"})
    answer = c.put("/v1/keys/k", content=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert words.lower() in answer.json()["detail"].lower()
    assert "Traceback" not in answer.text
    assert c.get("/v1/keys/k").text == "v1"


def test_304_428_404_and_delete(api: Api) -> None:
    c = api.client("agent-a")
    missing = c.get("/v1/keys/nope")
    assert missing.status_code == 404 and missing.json()["type"] == "NotFound"
    # Without a precondition a write only creates (201 is for If-None-Match: *).
    assert c.put("/v1/keys/k", content="v1", headers=TEXT).status_code == 200
    assert c.get("/v1/keys/k", headers={"If-None-Match": '"1"'}).status_code == 304
    assert c.get("/v1/keys/k", headers={"If-None-Match": 'W/"1"'}).status_code == 304
    assert c.get("/v1/keys/k", headers={"If-None-Match": '"7"'}).status_code == 200
    blind = c.put("/v1/keys/k", content="v2", headers=TEXT)
    assert blind.status_code == 428 and blind.json()["type"] == "PreconditionRequired"
    assert c.delete("/v1/keys/k").status_code == 428
    stale = c.delete("/v1/keys/k", headers=if_match(5))
    assert stale.status_code == 412 and stale.json()["current"] == 1
    gone = c.delete("/v1/keys/k", headers=if_match(1))
    assert gone.status_code == 200 and gone.json() == {"key": "k", "version": 2, "deleted": True}
    assert c.get("/v1/keys/k").status_code == 404
    again = c.put("/v1/keys/k", content="v3", headers={**TEXT, "If-None-Match": "*"})
    assert again.status_code == 201 and again.headers["etag"] == '"3"'


def test_list_by_prefix(api: Api) -> None:
    c = api.client("agent-a")
    for key in ("docs/a", "docs/b", "notes/c"):
        c.put(f"/v1/keys/{key}", content="x", headers={**TEXT, "If-None-Match": "*"})
    listed = c.get("/v1/keys", params={"prefix": "docs/"}).json()
    assert [k["key"] for k in listed["keys"]] == ["docs/a", "docs/b"]
    assert listed["truncated"] is False
    assert c.get("/v1/keys", params={"limit": 1}).json()["truncated"] is True
    assert c.get("/v1/keys", params={"limit": 0}).status_code == 400


def test_invalid_keys_get_the_key_rules(api: Api) -> None:
    c = api.client("agent-a")
    for key in ("a//b", ".accord/x", "a%01b", "x/"):
        answer = c.put(f"/v1/keys/{key}", content="x", headers={**TEXT, "If-None-Match": "*"})
        assert answer.status_code in (400, 404), (key, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"


# --- identity ----------------------------------------------------------------------


def test_401_without_a_live_token_and_revocation_on_the_next_request(api: Api) -> None:
    token = credentials.add(api.store, "alice")[1]
    for bad in (None, "nonsense", token + "x", "accord_0123456789abcdef_" + "x" * 43):
        c = api.client(token=bad)
        answer = c.get("/v1/whoami")
        assert answer.status_code == 401, bad
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert "accord agents add" in answer.json()["detail"]
        assert token not in answer.text
    good = api.client(token=token)
    assert good.get("/v1/whoami").json()["agent"] == "alice"
    credentials.revoke(api.store, "alice")
    assert good.get("/v1/whoami").status_code == 401


def test_the_manifest_is_enforced_per_agent_server_side(
    open_store: Callable[..., accord.Store], tmp_path: Path
) -> None:
    manifest = tmp_path / "accord.toml"
    manifest.write_text(MANIFEST)
    store = open_store(manifest=str(manifest))
    a = Api(store)
    try:
        author, critic = a.client("author"), a.client("critic")
        refused = critic.put("/v1/keys/docs/draft.md", content="mine",
                             headers={**TEXT, "If-None-Match": "*"})
        assert refused.status_code == 403
        assert refused.json()["type"] in ("PolicyViolation", "NotWriter")
        # The policy's message, in this API's words rather than Python's.
        assert "POST /v1/queue/docs/draft.md" in refused.json()["detail"]
        assert "GET /v1/requests/REQUEST_ID?wait=SECONDS" in refused.json()["detail"]
        submitted = critic.post("/v1/queue/docs/draft.md", content="add a summary",
                                headers=TEXT)
        assert submitted.status_code == 201
        plan = author.get("/v1/plan").json()
        assert plan["manifest"] and plan["ok"] is True
        assert author.get("/v1/whoami").json()["manifest"]
    finally:
        a.close()


# --- Idempotency-Key ---------------------------------------------------------------------


def test_a_repeat_returns_the_first_response_and_applies_nothing(api: Api) -> None:
    c = api.client("agent-a")
    headers = {**TEXT, "If-None-Match": "*", "Idempotency-Key": '"create-k-1"'}
    first = c.put("/v1/keys/k", content="v1", headers=headers)
    repeat = c.put("/v1/keys/k", content="v1", headers=headers)
    assert first.status_code == repeat.status_code == 201
    assert first.content == repeat.content
    assert first.headers["etag"] == repeat.headers["etag"] == '"1"'
    assert first.headers["location"] == repeat.headers["location"]
    assert repeat.headers["idempotent-replayed"] == "true"
    # An error is kept too: the repeat of a refused request is refused the same way.
    stale = {**TEXT, **if_match(7), "Idempotency-Key": "stale-1"}
    refused = c.put("/v1/keys/k", content="v2", headers=stale)
    assert refused.status_code == 412
    assert c.put("/v1/keys/k", content="v2", headers=stale).content == refused.content
    # The same key with another request: 422, nothing done.
    other = c.put("/v1/keys/k", content="other", headers=headers)
    assert other.status_code == 422 and other.json()["type"] == "IdempotencyMismatch"
    writes = [e for e in api.store.history(key="k") if e.op == "write" and e.outcome == "ok"]
    assert len(writes) == 1
    # Keys are per agent: another agent's same key is another request.
    b = api.client("agent-b")
    mine = b.put("/v1/keys/k2", content="b", headers={**TEXT, "If-None-Match": "*",
                                                      "Idempotency-Key": '"create-k-1"'})
    assert mine.status_code == 201


def test_idempotency_keys_cover_every_mutating_route(api: Api) -> None:
    c = api.client("agent-a")
    c.put("/v1/keys/doc", content="a\n", headers={**TEXT, "If-None-Match": "*"})
    calls: list[tuple[str, str, dict[str, Any]]] = [
        # On another key: a live lease on doc would refuse the DELETE below (leases exclude).
        ("POST", "/v1/leases/lk?ttl=30&wait=0", {}),
        ("POST", "/v1/queue/q", {"content": "change", "headers": TEXT}),
        ("POST", "/v1/branches/doc", {}),
        ("DELETE", "/v1/keys/doc", {"headers": if_match(1)}),
    ]
    for n, (method, url, kwargs) in enumerate(calls):
        headers = {**kwargs.pop("headers", {}), "Idempotency-Key": f"route-{n}"}
        first = c.request(method, url, headers=headers, **kwargs)
        repeat = c.request(method, url, headers=headers, **kwargs)
        assert first.status_code < 300, first.text
        assert (repeat.status_code, repeat.content) == (first.status_code, first.content)
        assert repeat.headers["idempotent-replayed"] == "true"
    assert len(api.store.branches("doc")) == 1
    ops = [e.op for e in api.store.history()]
    assert ops.count("lease_acquire") == 1 and ops.count("submit") == 1
    assert ops.count("fork") == 1 and ops.count("delete") == 1


def test_a_repeat_while_the_first_is_in_flight_is_409(api: Api) -> None:
    holder, waiter = api.client("holder"), api.client("waiter")
    held = holder.post("/v1/leases/busy?ttl=60&wait=0").json()
    headers = {"Idempotency-Key": "take-busy"}
    answers: list[Any] = []
    first = threading.Thread(
        target=lambda: answers.append(waiter.post("/v1/leases/busy?ttl=30&wait=30",
                                                  headers=headers))
    )
    first.start()
    try:
        # The first request is in flight once it waits in the lease's line.
        for _ in range(2000):
            if holder.get("/v1/leases/busy").json()["waiters"]:
                break
            threading.Event().wait(0.01)
        else:
            pytest.fail("the first request never joined the line")
        repeat = waiter.post("/v1/leases/busy?ttl=30&wait=30", headers=headers)
        assert repeat.status_code == 409
        assert int(repeat.headers["retry-after"]) >= 1
        assert "still being processed" in repeat.json()["detail"]
    finally:
        holder.delete(f"/v1/leases/busy?token={held['token']}")
        first.join(timeout=60)
    assert answers and answers[0].status_code == 201
    after = waiter.post("/v1/leases/busy?ttl=30&wait=30", headers=headers)
    assert after.status_code == 201 and after.json() == answers[0].json()


def test_kept_responses_survive_a_new_server_on_the_same_store(
    open_store: Callable[..., accord.Store],
) -> None:
    first_server = Api(open_store())
    token = credentials.add(first_server.store, "agent-a")[1]
    headers = {**TEXT, "If-None-Match": "*", "Idempotency-Key": "across-restarts"}
    first = first_server.client(token=token).put("/v1/keys/k", content="v", headers=headers)
    first_server.close()
    second_server = Api(open_store())  # another Store object: another process's view
    try:
        repeat = second_server.client(token=token).put("/v1/keys/k", content="v",
                                                       headers=headers)
        assert (repeat.status_code, repeat.content) == (first.status_code, first.content)
    finally:
        second_server.close()


def test_a_lapsed_claim_runs_again_and_accords_own_key_applies_nothing_twice(api: Api) -> None:
    """The crash window: the write committed, the server died before keeping its answer."""
    from accord.http import _idempotency as idem

    c = api.client("agent-a")
    c.put("/v1/keys/k", content="v1", headers={**TEXT, "If-None-Match": "*"})
    # What the dead server left: the write, made with the derived key, and a claim.
    api.store.session("agent-a").write(
        "k", "v2", expect=1, idempotency_key=idem.session_key("agent-a", "retry-me")
    )
    headers = {**TEXT, **if_match(1), "Idempotency-Key": "retry-me"}
    retried = c.put("/v1/keys/k", content="v2", headers=headers)
    assert retried.status_code == 200 and retried.json()["version"] == 2
    writes = [e for e in api.store.history(key="k") if e.op == "write" and e.outcome == "ok"]
    assert len(writes) == 2


# --- leases, queue, branches ----------------------------------------------------------------


def test_leases_fence_writes_through_the_store(api: Api) -> None:
    a, b = api.client("agent-a"), api.client("agent-b")
    a.put("/v1/keys/doc", content="v1", headers={**TEXT, "If-None-Match": "*"})
    lease = a.post("/v1/leases/doc", params={"ttl": 30, "wait": 0})
    assert lease.status_code == 201
    token = lease.json()["token"]
    assert b.post("/v1/leases/doc", params={"ttl": 30, "wait": 0}).status_code == 409
    status = b.get("/v1/leases/doc").json()
    assert status["holders"][0]["agent"] == "agent-a"
    written = a.put("/v1/keys/doc", content="v2", headers={**TEXT, "Accord-Lease": str(token)})
    assert written.status_code == 200
    assert a.patch("/v1/leases/doc", params={"token": token, "ttl": 60}).json()["ttl"] == 60
    assert a.delete("/v1/leases/doc", params={"token": token}).json()["released"] is True
    fenced = a.put("/v1/keys/doc", content="v3", headers={**TEXT, "Accord-Lease": str(token)})
    assert fenced.status_code == 412 and fenced.json()["type"] == "Fenced"
    again = a.delete("/v1/leases/doc", params={"token": token})
    assert again.status_code == 409 and again.json()["type"] == "LeaseLost"
    assert a.get("/v1/keys/doc").text == "v2"
    assert a.post("/v1/leases/doc", params={"wait": 99}).status_code == 400


def test_the_queue_submit_decide_and_wait_for_the_decision(api: Api) -> None:
    writer, critic = api.client("writer"), api.client("critic")
    submitted = critic.post("/v1/queue/doc", content="add a summary", headers=TEXT)
    assert submitted.status_code == 201
    rid = submitted.json()["id"]
    assert submitted.headers["location"] == f"/v1/requests/{rid}"
    waited: list[Any] = []
    watcher = threading.Thread(
        target=lambda: waited.append(critic.get(f"/v1/requests/{rid}", params={"wait": 30}))
    )
    watcher.start()
    queue = writer.get("/v1/queue/doc").json()
    assert [r["id"] for r in queue["requests"]] == [rid] and queue["current_version"] == 0
    no_guard = writer.post(f"/v1/requests/{rid}/accept", content="summary", headers=TEXT)
    assert no_guard.status_code == 428
    accepted = writer.post(f"/v1/requests/{rid}/accept", content="summary",
                           headers={**TEXT, "If-None-Match": "*"})
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    watcher.join(timeout=60)
    assert waited and waited[0].json()["status"] == "accepted"
    assert waited[0].json()["version"] == 1
    second = critic.post("/v1/queue/doc", content="add a title", headers=TEXT).json()["id"]
    rejected = writer.post(f"/v1/requests/{second}/reject", json={"reason": "out of scope"})
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["reason"] == "out of scope"
    twice = writer.post(f"/v1/requests/{second}/reject", content="again", headers=TEXT)
    assert twice.status_code == 409
    pending = critic.get(f"/v1/requests/{second}").json()
    assert pending["status"] == "rejected"
    assert critic.get("/v1/requests/r-nope").status_code == 404


def test_branches_fork_write_and_merge(api: Api) -> None:
    a, b, synth = api.client("agent-a"), api.client("agent-b"), api.client("synth")
    a.put("/v1/keys/doc", content="one\ntwo\nthree\n", headers={**TEXT, "If-None-Match": "*"})
    ba = a.post("/v1/branches/doc").json()["branch_id"]
    bb = b.post("/v1/branches/doc").json()["branch_id"]
    assert a.put("/v1/branches/doc", params={"id": ba}, content="ONE\ntwo\nthree\n",
                 headers=TEXT).status_code == 200
    assert b.put("/v1/branches/doc", params={"id": bb}, content="one\ntwo\nTHREE\n",
                 headers=TEXT).status_code == 200
    theirs = a.put("/v1/branches/doc", params={"id": bb}, content="x", headers=TEXT)
    assert theirs.status_code == 403 and "belongs to agent-b" in theirs.json()["detail"]
    listed = synth.get("/v1/branches/doc").json()["branches"]
    assert {x["branch_id"] for x in listed} == {ba, bb}
    merged = synth.post("/v1/merges/doc", json={}).json()
    assert merged["committed"] and merged["value"] == "ONE\ntwo\nTHREE\n"
    assert synth.get("/v1/keys/doc").text == "ONE\ntwo\nTHREE\n"
    bad = synth.post("/v1/merges/doc", json={"nope": 1})
    assert bad.status_code == 400


# --- history, check, plan -------------------------------------------------------------------


def test_history_streams_json_lines_and_waits_for_new_events(api: Api) -> None:
    c = api.client("agent-a")
    c.put("/v1/keys/k", content="v1", headers={**TEXT, "If-None-Match": "*"})
    got = c.get("/v1/history")
    assert got.headers["content-type"].startswith("application/x-ndjson")
    events = [json.loads(line) for line in got.text.splitlines()]
    assert [e["op"] for e in events if e["key"] == "k"] == ["write"]
    last = events[-1]["rev"]
    assert c.get("/v1/history", params={"after": last}).text == ""
    watched: list[Any] = []
    watcher = threading.Thread(
        target=lambda: watched.append(c.get("/v1/history", params={"after": last, "wait": 30}))
    )
    watcher.start()
    c.put("/v1/keys/k", content="v2", headers={**TEXT, **if_match(1)})
    watcher.join(timeout=60)
    assert watched, "the watch did not answer"
    new = [json.loads(line) for line in watched[0].text.splitlines()]
    assert any(e["op"] == "write" and e["version"] == 2 for e in new)
    assert all(e["rev"] > last for e in new)
    only_k = c.get("/v1/history", params={"key": "k"}).text.splitlines()
    assert len(only_k) == 2


def test_check_an_uploaded_history(api: Api) -> None:
    c = api.client("agent-a")
    lost = (HISTORIES / "lost_update.jsonl").read_bytes()
    verdict = c.post("/v1/check", content=lost, headers={"Content-Type": "application/x-ndjson"})
    assert verdict.status_code == 200, verdict.text
    assert verdict.json()["verdict"] == "anomalies"
    assert "lost-update" in json.dumps(verdict.json()["report"])
    bad = c.post("/v1/check", content=b'{"agent": "a"}\nnot json\n')
    assert bad.status_code == 400
    assert "the uploaded history, line" in bad.json()["detail"]
    assert "?lenient=true" in bad.json()["detail"]
    own = c.post("/v1/check")
    assert own.status_code == 400  # an empty store has no history to call clean


def test_no_traceback_ever_reaches_a_client(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    c = api.client("agent-a")

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(accord.Session, "read", boom)
    answer = c.get("/v1/keys/k")
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert "secret" not in answer.text and "Traceback" not in answer.text
    assert "server's log" in answer.json()["detail"]


def test_bodies_over_the_limit_are_refused_before_they_are_read_whole(
    open_store: Callable[..., accord.Store],
) -> None:
    a = Api(open_store(max_value_size=1000))
    try:
        c = a.client("agent-a")
        big = c.put("/v1/keys/k", content=b"x" * 1001,
                    headers={**TEXT, "If-None-Match": "*"})
        assert big.status_code == 413 and big.json()["type"] == "ValueTooLarge"

        def chunks() -> Iterator[bytes]:
            for _ in range(100):
                yield b"y" * 100

        chunked = c.put("/v1/keys/k", content=chunks(), headers={**TEXT, "If-None-Match": "*"})
        assert chunked.status_code == 413
        assert c.get("/v1/keys/k").status_code == 404
        fits = c.put("/v1/keys/k", content=b"x" * 1000, headers={**TEXT, "If-None-Match": "*"})
        assert fits.status_code == 201
    finally:
        a.close()


def test_unknown_routes_and_methods_are_problems(api: Api) -> None:
    c = api.client("agent-a")
    assert c.get("/v2/nothing").json()["type"] == "NotFound"
    wrong = c.post("/v1/keys/k")
    assert wrong.status_code == 405
    assert wrong.headers["content-type"] == "application/problem+json"
    assert c.get("/healthz").json() == {"ok": True}


def test_the_openapi_document_is_served_and_committed(api: Api) -> None:
    served = api.client().get("/openapi.json").json()
    committed = json.loads((Path(__file__).parent.parent / "docs" / "openapi.json").read_text())
    assert served == committed, (
        "docs/openapi.json differs from the served document: regenerate it with "
        "`python tools/gen_openapi.py`"
    )


def test_messages_render_in_the_http_apis_words() -> None:
    from accord.errors import SURFACES, call, option, render, var

    message = (
        f"Create it with {call('write', 'docs/a.md', var('value'), expect=0)}, update with "
        f"{option('expect', 5)} or {call('update', 'docs/a.md', var('fn'))}, under "
        f"{call('session.write', 'k', var('...'), lease=var('lease'))}; list "
        f"{call('store.branches', 'docs/a.md')}; skip bad lines with {option('lenient')}."
    )
    assert "http" in SURFACES
    assert render(message, "http") == (
        "Create it with PUT /v1/keys/docs/a.md with If-None-Match: *, update with "
        'If-Match: "5" or GET /v1/keys/docs/a.md, then PUT /v1/keys/docs/a.md with '
        'If-Match: "<the version read>" (again on a 412), under PUT /v1/keys/k with '
        "Accord-Lease: TOKEN; list GET /v1/branches/docs/a.md; skip bad lines with "
        "?lenient=true."
    )
    # Python's own words are unchanged.
    assert "write('docs/a.md', value, expect=0)" in render(message)


def test_the_app_mounts_in_your_own_asgi_app(api: Api) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    token = credentials.add(api.store, "agent-a")[1]
    outer = Starlette(routes=[Mount("/accord", app=api.app)])
    with TestClient(outer, base_url="http://host") as c:
        c.headers.update(bearer(token))
        created = c.put("/accord/v1/keys/k", content="v", headers={**TEXT, "If-None-Match": "*"})
        assert created.status_code == 201, created.text
        assert c.get("/accord/v1/keys/k").text == "v"
        assert c.get("/accord/v1/whoami").json()["agent"] == "agent-a"


def test_the_short_way_to_the_key_routes_answers_as_fastapis_way() -> None:
    """GET/PUT/DELETE of a key skip FastAPI's layers unless the app is mounted under a
    prefix: the same requests both ways, each on a new store, give the same answers
    (what is compared is the HTTP layer: every backend's own answers are tested above)."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    cases: list[tuple[str, str, dict[str, str], bytes]] = [
        ("PUT", "k", {**TEXT, "If-None-Match": "*"}, b"v1"),
        ("GET", "k", {}, b""),
        ("PUT", "k", {**TEXT, **if_match(7)}, b"stale"),
        ("PUT", "k", TEXT, b"no precondition"),
        ("PUT", "k", {"Content-Type": "image/png", **if_match(1)}, b"x"),
        ("PUT", "k", {**TEXT, **if_match(1)}, b"v2"),
        ("GET", "missing", {}, b""),
        ("GET", "a//b", {}, b""),
        ("GET", "k?wiat=3", {}, b""),
        ("DELETE", "k", if_match(1), b""),
        ("DELETE", "k", if_match(2), b""),
    ]
    answers: dict[str, list[tuple[int, str, str]]] = {}
    for way, prefix in (("short", ""), ("fastapi", "/accord")):
        store = accord.open("memory://")
        token = credentials.add(store, "agent-a")[1]
        asgi = app(store)
        outer = asgi if not prefix else Starlette(routes=[Mount(prefix, app=asgi)])
        with TestClient(outer, base_url="http://host") as c:
            c.headers.update(bearer(token))
            got = []
            for method, key, headers, body in cases:
                answer = c.request(method, f"{prefix}/v1/keys/{key}", headers=headers,
                                   content=body)
                got.append((answer.status_code, answer.headers.get("content-type", ""),
                            answer.text.replace(prefix, "")))
            refused = c.get(f"{prefix}/v1/keys/k", headers={"Authorization": "Bearer nope"})
            got.append((refused.status_code, refused.headers.get("www-authenticate", ""),
                        refused.text))
        store.close()
        answers[way] = got
    assert [a[0] for a in answers["short"]] == [201, 200, 412, 428, 415, 200, 404, 400, 400,
                                               412, 200, 401]
    assert answers["short"] == answers["fastapi"]
