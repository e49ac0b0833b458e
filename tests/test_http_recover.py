"""The Idempotency-Key crash window of the HTTP routes, on every backend.

A server that died after a request's operation committed and before it kept
the response leaves a claim that lapses (:mod:`accord.replay`). Each test
rebuilds that state in the store (the claim, then the operation as the dead
request made it) and repeats the request: the repeat answers as the first
attempt would have (same status, same body shape) from what the store shows
it did (:mod:`accord._recover`), and applies nothing twice. A crash before
anything was applied runs the request. tests/test_http_recover_crash.py kills
a real ``accord serve`` in the window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

import accord
from accord import replay
from accord.http import _idempotency as idem
from accord.remote import merge_branches
from accord.strategies import lease as lease_mod
from accord.strategies import queue

from .http_helpers import TEXT, if_match
from .test_http import Api

AGENT = "agent-a"


@pytest.fixture
def api(open_store: Callable[..., accord.Store]) -> Iterator[Api]:
    a = Api(open_store())
    yield a
    a.close()


def count(store: accord.Store, op: str, agent: str = AGENT) -> int:
    return sum(1 for e in store.history() if e.op == op and e.agent == agent
               and e.outcome in ("ok", "rejected"))


def _died(store: accord.Store, c: TestClient, method: str, url: str, key: str,
          **kwargs: Any) -> None:
    """What a server that died mid-request leaves: its claim, which has lapsed."""
    headers = {**kwargs.pop("headers", {}), "Idempotency-Key": key}
    request = c.build_request(method, url, headers=headers, **kwargs)
    fp = idem.fingerprint(request.method, request.url.path, request.url.query.decode(),
                          request.headers, request.read())
    claim = replay.begin(store, "http", AGENT, key, fp, 0)
    assert isinstance(claim, replay.Claim) and not claim.retry


def _retry(c: TestClient, method: str, url: str, key: str, **kwargs: Any) -> Any:
    """The repeat after the crash; its response is then kept: one more is a replay."""
    headers = {**kwargs.pop("headers", {}), "Idempotency-Key": key}
    got = c.request(method, url, headers=headers, **kwargs)
    assert "idempotent-replayed" not in got.headers
    again = c.request(method, url, headers=headers, **kwargs)
    assert (again.status_code, again.content) == (got.status_code, got.content)
    assert again.headers["idempotent-replayed"] == "true"
    return got


def _writer_of_q(api: Api, a: TestClient) -> str:
    request = api.store.session("agent-b").submit("q", "add a line")
    listed = a.get("/v1/queue/q").json()  # agent-a becomes the writer of q
    assert [r["id"] for r in listed["requests"]] == [request.id]
    return request.id


def test_a_lease_granted_before_the_crash_is_the_answer(api: Api) -> None:
    a = api.client(AGENT)
    url = "/v1/leases/k?ttl=30&wait=0"
    _died(api.store, a, "POST", url, "acq")
    first = lease_mod.acquire(api.store.session(AGENT), "k", ttl=30, wait=0)
    got = _retry(a, "POST", url, "acq")
    assert got.status_code == 201
    body = got.json()
    assert body["token"] == first.token and body["agent"] == AGENT
    assert set(body) == {"key", "token", "mode", "agent", "ttl", "expires", "expires_in"}
    assert count(api.store, "lease_acquire") == 1
    # A lease held from before the request is not this request's: it waits for it.
    _died(api.store, a, "POST", url, "acq-2")
    late = a.post(url, headers={"Idempotency-Key": "acq-2"})
    assert late.status_code == 409 and late.json()["type"] == "LeaseTimeout"


def test_a_crash_before_anything_was_applied_runs_the_request(api: Api) -> None:
    a = api.client(AGENT)
    url = "/v1/leases/k?ttl=30&wait=0"
    _died(api.store, a, "POST", url, "acq")
    got = _retry(a, "POST", url, "acq")
    assert got.status_code == 201 and got.json()["token"] == 1
    assert count(api.store, "lease_acquire") == 1


def test_a_lease_that_lapsed_since_is_taken_anew(api: Api) -> None:
    a = api.client(AGENT)
    url = "/v1/leases/k?ttl=30&wait=0"
    _died(api.store, a, "POST", url, "acq")
    lease_mod.acquire(api.store.session(AGENT), "k", ttl=30, wait=0).release()
    got = _retry(a, "POST", url, "acq")
    assert got.status_code == 201 and got.json()["token"] == 2


def test_renew_and_release_done_before_the_crash_are_not_done_again(api: Api) -> None:
    a = api.client(AGENT)
    token = a.post("/v1/leases/k?ttl=30&wait=0").json()["token"]
    renew = f"/v1/leases/k?token={token}&ttl=60"
    _died(api.store, a, "PATCH", renew, "renew")
    lease_mod.from_token(api.store.session(AGENT), "k", token).renew(60)
    got = _retry(a, "PATCH", renew, "renew")
    assert got.status_code == 200
    assert got.json()["token"] == token and got.json()["ttl"] == 60
    assert count(api.store, "lease_renew") == 1
    release = f"/v1/leases/k?token={token}"
    _died(api.store, a, "DELETE", release, "release")
    lease_mod.from_token(api.store.session(AGENT), "k", token).release()
    got = _retry(a, "DELETE", release, "release")
    assert got.status_code == 200
    assert got.json() == {"key": "k", "token": token, "released": True}
    assert count(api.store, "lease_release") == 1


def test_a_request_decided_before_the_crash_answers_as_decided(api: Api) -> None:
    a = api.client(AGENT)
    rid = _writer_of_q(api, a)
    accept = (f"/v1/requests/{rid}/accept", "acc")
    kwargs = {"content": "a line", "headers": {**TEXT, "If-None-Match": "*"}}
    _died(api.store, a, "POST", *accept, **dict(kwargs))
    api.store.session(AGENT).accept(queue.get_request(api.store, rid), "a line", expect=0)
    got = _retry(a, "POST", *accept, **dict(kwargs))
    assert got.status_code == 200
    assert got.json()["status"] == "accepted" and got.json()["version"] == 1
    assert count(api.store, "accept") == 1
    rid = api.store.session("agent-b").submit("q", "another line").id
    reject = (f"/v1/requests/{rid}/reject", "rej")
    _died(api.store, a, "POST", *reject, json={"reason": "not now"})
    api.store.session(AGENT).reject(queue.get_request(api.store, rid), "not now")
    got = _retry(a, "POST", *reject, json={"reason": "not now"})
    assert got.status_code == 200
    assert got.json()["status"] == "rejected" and got.json()["reason"] == "not now"
    assert count(api.store, "reject") == 1


def test_a_request_decided_otherwise_is_not_taken_for_this_request(api: Api) -> None:
    a = api.client(AGENT)
    rid = _writer_of_q(api, a)
    kwargs = {"content": "a line", "headers": {**TEXT, "If-None-Match": "*"}}
    _died(api.store, a, "POST", f"/v1/requests/{rid}/accept", "acc", **dict(kwargs))
    api.store.session(AGENT).accept(queue.get_request(api.store, rid), "another value",
                                     expect=0)
    headers = {**TEXT, "If-None-Match": "*", "Idempotency-Key": "acc"}
    refused = a.post(f"/v1/requests/{rid}/accept", content="a line", headers=headers)
    assert refused.status_code == 409 and "already" in refused.json()["detail"]
    assert count(api.store, "accept") == 1
    assert a.get("/v1/keys/q").text == "another value"


def test_a_fork_and_a_branch_write_before_the_crash_are_not_done_again(api: Api) -> None:
    a = api.client(AGENT)
    a.put("/v1/keys/k", content="base\n", headers={**TEXT, "If-None-Match": "*"})
    _died(api.store, a, "POST", "/v1/branches/k", "fork")
    first = api.store.session(AGENT).fork("k")
    got = _retry(a, "POST", "/v1/branches/k", "fork")
    assert got.status_code == 201 and got.json()["branch_id"] == first.id
    assert len(api.store.branches("k")) == 1 and count(api.store, "fork") == 1
    url = f"/v1/branches/k?id={first.id}"
    _died(api.store, a, "PUT", url, "bw", content="mine\n", headers=TEXT)
    api.store.session(AGENT).branch("k", first.id).write("mine\n")
    before = api.store.backend.get(first.record_key)
    got = _retry(a, "PUT", url, "bw", content="mine\n", headers=TEXT)
    assert got.status_code == 200 and got.json()["value"] == "mine\n"
    assert api.store.backend.get(first.record_key) == before  # not written again


def test_a_branch_written_again_since_the_crash_is_not_overwritten(api: Api) -> None:
    a = api.client(AGENT)
    a.put("/v1/keys/k", content="base\n", headers={**TEXT, "If-None-Match": "*"})
    branch_id = a.post("/v1/branches/k").json()["branch_id"]
    url = f"/v1/branches/k?id={branch_id}"
    _died(api.store, a, "PUT", url, "bw", content="mine\n", headers=TEXT)
    branch = api.store.session(AGENT).branch("k", branch_id)
    branch.write("mine\n")
    branch.write("later\n")
    refused = a.put(url, content="mine\n", headers={**TEXT, "Idempotency-Key": "bw"})
    assert refused.status_code == 409 and refused.json()["type"] == "PreconditionFailed"
    detail = refused.json()["detail"]
    assert "was written again after this call was first made" in detail
    assert "GET /v1/branches/k" in detail and "Idempotency-Key" in detail
    assert branch.read() == "later\n"


def test_a_discard_before_the_crash_is_not_refused(api: Api) -> None:
    a = api.client(AGENT)
    a.put("/v1/keys/k", content="base\n", headers={**TEXT, "If-None-Match": "*"})
    branch_id = a.post("/v1/branches/k").json()["branch_id"]
    url = f"/v1/branches/k?id={branch_id}"
    _died(api.store, a, "DELETE", url, "discard")
    api.store.session(AGENT).branch("k", branch_id).discard()
    got = _retry(a, "DELETE", url, "discard")
    assert got.status_code == 200
    assert got.json() == {"key": "k", "branch_id": branch_id, "status": "discarded"}
    # A branch discarded before the request began is closed: the request is refused.
    _died(api.store, a, "DELETE", url, "discard-2")
    late = a.delete(url, headers={"Idempotency-Key": "discard-2"})
    assert late.status_code == 409 and "was discarded" in late.json()["detail"]


def test_a_merge_committed_before_the_crash_is_not_committed_again(api: Api) -> None:
    a = api.client(AGENT)
    a.put("/v1/keys/k", content="one\ntwo\nthree\n", headers={**TEXT, "If-None-Match": "*"})
    first = a.post("/v1/branches/k").json()["branch_id"]
    second = a.post("/v1/branches/k").json()["branch_id"]
    a.put(f"/v1/branches/k?id={first}", content="ONE\ntwo\nthree\n", headers=TEXT)
    a.put(f"/v1/branches/k?id={second}", content="one\ntwo\nTHREE\n", headers=TEXT)
    spec = {"branches": [first, second]}
    _died(api.store, a, "POST", "/v1/merges/k", "m", json=spec)
    _, doc = merge_branches(api.store.session(AGENT), "k", [first, second])
    assert doc is not None
    got = _retry(a, "POST", "/v1/merges/k", "m", json=spec)
    assert got.status_code == 200 and got.headers["etag"] == f'"{doc.version}"'
    body = got.json()
    assert body["committed"] is True and body["version"] == doc.version == 2
    assert body["value"] == "ONE\ntwo\nTHREE\n" and body["kind"] == "text"
    assert sorted(body["branches"]) == sorted([first, second])
    assert count(api.store, "merge") == 1
    # The key moved on since the merge: the answer says so and gives no stale value.
    third = a.post("/v1/branches/k").json()["branch_id"]
    a.put(f"/v1/branches/k?id={third}", content="third\n", headers=TEXT)
    spec = {"branches": [third]}
    _died(api.store, a, "POST", "/v1/merges/k", "m-2", json=spec)
    _, again = merge_branches(api.store.session(AGENT), "k", [third])
    assert again is not None and again.version == 3
    a.put("/v1/keys/k", content="after\n", headers={**TEXT, **if_match(3)})
    got = _retry(a, "POST", "/v1/merges/k", "m-2", json=spec)
    body = got.json()
    assert got.status_code == 200 and body["committed"] is True and body["version"] == 3
    assert body["value"] is None and "moved on since" in body["message"]
    assert count(api.store, "merge") == 2 and a.get("/v1/keys/k").text == "after\n"


def test_writes_and_submissions_rely_on_the_librarys_own_key(api: Api) -> None:
    a = api.client(AGENT)
    _died(api.store, a, "PUT", "/v1/keys/k", "w", content="one",
          headers={**TEXT, "If-None-Match": "*"})
    api.store.session(AGENT).write("k", "one", expect=0,
                                   idempotency_key=idem.session_key(AGENT, "w"))
    got = _retry(a, "PUT", "/v1/keys/k", "w", content="one",
                 headers={**TEXT, "If-None-Match": "*"})
    assert got.status_code in (200, 201) and got.json()["version"] == 1
    assert count(api.store, "write") == 1
    _died(api.store, a, "POST", "/v1/queue/q", "s", content="change", headers=TEXT)
    first = api.store.session(AGENT).submit("q", "change",
                                            idempotency_key=idem.session_key(AGENT, "s"))
    got = _retry(a, "POST", "/v1/queue/q", "s", content="change", headers=TEXT)
    assert got.status_code == 201 and got.json()["id"] == first.id
    assert count(api.store, "submit") == 1


def test_two_crashes_in_a_row_keep_where_the_first_attempt_began(api: Api) -> None:
    a = api.client(AGENT)
    url = "/v1/leases/k?ttl=30&wait=0"
    _died(api.store, a, "POST", url, "acq")
    first = lease_mod.acquire(api.store.session(AGENT), "k", ttl=30, wait=0)
    request = a.build_request("POST", url, headers={"Idempotency-Key": "acq"})
    fp = idem.fingerprint("POST", request.url.path, request.url.query.decode(),
                          request.headers, b"")
    again = replay.begin(api.store, "http", AGENT, "acq", fp, 0)  # the retry died too
    assert isinstance(again, replay.Claim) and again.retry
    got = _retry(a, "POST", url, "acq")
    assert got.json()["token"] == first.token and count(api.store, "lease_acquire") == 1
