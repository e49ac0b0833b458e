"""The Idempotency-Key field (draft-ietf-httpapi-idempotency-key-header).

A mutating request that carries ``Idempotency-Key`` is remembered, per
agent, in a record of the store (beside accord's own idempotency records,
under ``.accord/idem/http/``), so every server process on the store (uvicorn
workers, a restarted server) sees the same memory:

1. **claim**: before the operation runs, an in-flight record with the
   request's fingerprint (method, path, query, the precondition and
   Content-Type fields, and the body) is created with a short deadline. A
   repeat that finds it gets 409 (still in flight), or 422 if its
   fingerprint differs (the key was reused for another request).
2. **finish**: the response (status, fields, body) replaces the in-flight
   record and is kept for the store's idempotency window (24 hours by
   default). A repeat with the same fingerprint gets that response back,
   and nothing is applied again. A 5xx is not kept: the record is removed,
   so a retry runs the request again.

The server may die between the operation's commit and step 2. The in-flight
record then lapses after its deadline and a retry runs the request again;
writes, deletes and submissions pass a key derived from the same
Idempotency-Key to accord's own idempotency (which commits with the write),
so that run applies nothing twice and answers as the first did.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import threading
from dataclasses import dataclass
from typing import Any

from ..errors import IdempotencyMismatch, PreconditionFailed
from ..records import Compare, Delete, Put
from ..store import Store
from ._wire import Refusal

PREFIX = ".accord/idem/http/"
IN_FLIGHT = 10.0
"""Seconds an in-flight claim lasts beyond the request's own waiting: after
a crash, a retry runs again once the dead request's claim has lapsed."""

_FIELDS = ("content-type", "if-match", "if-none-match", "accord-lease")
_counter = 0
_counter_lock = threading.Lock()


def fingerprint(method: str, path: str, query: str, headers: Any, body: bytes) -> str:
    """What makes two requests "the same request" for an Idempotency-Key."""
    digest = hashlib.sha256()
    params = "&".join(sorted(query.split("&"))) if query else ""
    for part in (method.upper(), path, params):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    for name in _FIELDS:
        digest.update(name.encode() + b":" + (headers.get(name) or "").encode() + b"\0")
    digest.update(hashlib.sha256(body).digest())
    return digest.hexdigest()


def session_key(agent: str, key: str) -> str:
    """The idempotency key handed to accord's own idempotency for the same request."""
    text = f"http:{agent}:{key}"
    if len(text) <= 256:
        return text
    return "http:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Stored:
    """A response kept for an Idempotency-Key."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Claim:
    record_key: str
    version: int
    fingerprint: str
    agent: str
    key: str


def _record_key(agent: str, key: str) -> str:
    return PREFIX + hashlib.sha256(f"{agent}\0{key}".encode()).hexdigest()


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def begin(store: Store, agent: str, key: str, fp: str, hold: float) -> Claim | Stored:
    """Claim ``key`` for a new request, or return the response of its first run.

    Raises a 409 :class:`Refusal` while the first run is in flight, and a
    422 one when the key was first used for a request with another fingerprint.
    """
    _maybe_purge(store)
    backend = store.backend
    rkey = _record_key(agent, key)
    for _ in range(16):
        rec = backend.get(rkey)
        now = backend.now()
        if rec is not None and not rec.deleted and (rec.expires is None or rec.expires > now):
            data = json.loads(rec.data)
            if data.get("fingerprint") != fp:
                raise Refusal(
                    422,
                    IdempotencyMismatch(
                        f"Idempotency-Key {key!r} was first used for another request "
                        f"({data.get('request', 'a different one')}); nothing was done. A repeat "
                        "must send the very same request (method, path, query, If-Match, "
                        "Content-Type and body); send a new Idempotency-Key for a new request, "
                        "such as one corrected after a 412.",
                        idempotency_key=key,
                    ),
                )
            if data.get("state") == "done":
                return Stored(
                    int(data["status"]),
                    dict(data["headers"]),
                    base64.b64decode(data["body"]),
                )
            left = max(1, math.ceil((rec.expires or now) - now))
            raise Refusal(
                409,
                PreconditionFailed(
                    f"A request with Idempotency-Key {key!r} is still being processed; nothing "
                    f"was done. Repeat it after it finished (in about {left} s) to get its "
                    "response.",
                    idempotency_key=key,
                ),
                {"Retry-After": str(left)},
            )
        version = 0 if rec is None or rec.deleted else rec.version
        data = {"agent": agent, "fingerprint": fp, "state": "in-flight"}
        result = backend.txn(
            [Compare(rkey, "version", "==", version)],
            [Put(rkey, "json", _json(data), agent, ttl=hold)],
        )
        if result.succeeded:
            mine = result.records[rkey]
            assert mine is not None
            return Claim(rkey, mine.version, fp, agent, key)
    raise Refusal(  # pragma: no cover - 16 lost races on one key of one agent
        409,
        PreconditionFailed(
            f"Idempotency-Key {key!r} is being claimed by several requests at once; repeat the "
            "request.",
            idempotency_key=key,
        ),
        {"Retry-After": "1"},
    )


def finish(store: Store, claim: Claim, request: str, response: Stored) -> None:
    """Keep ``response`` for the claim's key (a 5xx is forgotten instead)."""
    backend = store.backend
    if response.status >= 500:
        backend.txn(
            [Compare(claim.record_key, "version", "==", claim.version)],
            [Delete(claim.record_key, purge=True)],
        )
        return
    data = {
        "agent": claim.agent,
        "fingerprint": claim.fingerprint,
        "state": "done",
        "request": request,
        "status": response.status,
        "headers": response.headers,
        "body": base64.b64encode(response.body).decode("ascii"),
    }
    # Only over our own claim: if it lapsed and a retry took it over, the
    # retry's answer is the one to keep.
    backend.txn(
        [Compare(claim.record_key, "version", "==", claim.version)],
        [Put(claim.record_key, "json", _json(data), claim.agent,
             ttl=store.idempotency_window)],
    )


def _maybe_purge(store: Store) -> None:
    # Lapsed records are ignored on read; purging now and then keeps them
    # from piling up, without a background thread.
    global _counter
    with _counter_lock:
        _counter += 1
        due = _counter % 512 == 1
    if due:
        store.backend.purge_expired(PREFIX, store.backend.now())
