"""The Idempotency-Key field (draft-ietf-httpapi-idempotency-key-header).

The HTTP face of :mod:`accord.replay`, the one replay mechanism of the
remote surfaces: a mutating request that carries ``Idempotency-Key`` is
remembered, per agent, in a record of the store under ``.accord/idem/http/``,
so every server process on the store (uvicorn workers, a restarted server)
sees the same memory. What this module adds is HTTP's part:

* the fingerprint of a request (method, path, query, the precondition and
  Content-Type fields, and the body): what makes two requests "the same";
* the answer kept: the response's status, fields and body (a 5xx is not
  kept: a retry runs the request again);
* the refusals: 409 with ``Retry-After`` while the first request is in
  flight, 422 when the key was first used for another request.

The server may die between the operation's commit and keeping its answer.
The claim then lapses after its deadline and a retry takes it over; writes,
deletes and submissions pass a key derived from the same Idempotency-Key to
accord's own idempotency (which commits with the write), so that run applies
nothing twice and answers as the first did. The other routes get the revision
the first attempt began at (``Call.since``) and look in the store for what it
did (:mod:`accord._recover`).
"""

from __future__ import annotations

import base64
import hashlib
import math
from dataclasses import dataclass
from typing import Any

from .. import replay
from ..errors import IdempotencyMismatch, PreconditionFailed
from ..store import Store
from ._wire import Refusal

SURFACE = "http"
PREFIX = replay.prefix(SURFACE)
IN_FLIGHT = replay.IN_FLIGHT
"""Seconds an in-flight claim lasts beyond the request's own waiting: after
a crash, a retry runs again once the dead request's claim has lapsed."""

_FIELDS = ("content-type", "if-match", "if-none-match", "accord-lease")


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
    return replay.session_key(SURFACE, agent, key)


@dataclass
class Stored:
    """A response kept for an Idempotency-Key."""

    status: int
    headers: dict[str, str]
    body: bytes


Claim = replay.Claim


def begin(store: Store, agent: str, key: str, fp: str, hold: float) -> Claim | Stored:
    """Claim ``key`` for a new request, or return the response of its first run.

    Raises a 409 :class:`Refusal` while the first run is in flight, and a
    422 one when the key was first used for a request with another fingerprint.
    """
    got = replay.begin(store, SURFACE, agent, key, fp, hold)
    if isinstance(got, replay.Done):
        answer = got.answer
        return Stored(
            int(answer["status"]),
            dict(answer["headers"]),
            base64.b64decode(answer["body"]),
        )
    if isinstance(got, replay.Mismatch):
        raise Refusal(
            422,
            IdempotencyMismatch(
                f"Idempotency-Key {key!r} was first used for another request "
                f"({got.operation or 'a different one'}); nothing was done. A repeat "
                "must send the very same request (method, path, query, If-Match, "
                "Content-Type and body); send a new Idempotency-Key for a new request, "
                "such as one corrected after a 412.",
                idempotency_key=key,
            ),
        )
    if isinstance(got, replay.Busy):
        left = max(1, math.ceil(got.left))
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
    return got


def finish(store: Store, claim: Claim, request: str, response: Stored) -> None:
    """Keep ``response`` for the claim's key (a 5xx is forgotten instead)."""
    if response.status >= 500:
        replay.finish(store, claim, request, None)
        return
    replay.finish(store, claim, request, {
        "status": response.status,
        "headers": response.headers,
        "body": base64.b64encode(response.body).decode("ascii"),
    })
