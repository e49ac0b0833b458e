"""The HTTP API's routes: each one a thin layer over one :class:`accord.Session` call.

Every route runs the same way (:meth:`_Api.call`): the bearer token names the
agent (checked against the store before the request's work, so a revocation
counts at once; a plain write of a key instead carries the check in its own
transaction, see :meth:`_Api.call`), the store's manifest is enforced
by the store's own policy hook (``store.session(agent)``), the operation
runs in a worker thread (the store is synchronous and may be across the
network), and its outcome, success or an accord error, becomes a response.
A mutating request with an ``Idempotency-Key`` goes through
:mod:`accord.http._idempotency` around that.
"""

from __future__ import annotations

import inspect
import json
import os
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import anyio
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from .. import _recover, credentials
from ..errors import (
    AccordError,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    Timeout,
    UsageError,
)
from ..keys import validate_key, validate_prefix
from ..records import Doc, to_wire
from ..remote import merge_branches, plain
from . import _idempotency as idem
from . import _models as m
from ._params import P, parse, unauthorized
from ._params import openapi as openapi_params
from ._problems import TITLES, internal, problem, refusal
from ._wire import (
    JSON,
    NDJSON,
    PROBLEM,
    Refusal,
    decode,
    encode,
    etag,
    idempotency_key,
    kind_of,
    none_match,
    precondition,
    read_body,
)

if TYPE_CHECKING:
    from ..session import Session
    from ..store import Store
    from ..strategies.branch import Branch
    from ..strategies.lease import Lease
    from ..strategies.queue import Request as QueueRequest

MAX_WAIT = 55.0
"""The longest one request waits (lease acquire, request status, history):
proxies and clients often cut a request off after 60 s. Ask again to wait longer."""

_MAX_LIST = 10_000
_MAX_HISTORY = 100_000



def _now_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _path_of(key: str) -> str:
    return quote(key, safe="/")


@dataclass
class Out:
    """A response as the store keeps it for an Idempotency-Key."""

    status: int
    headers: dict[str, str]
    body: bytes


def _dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _json(status: int, data: Any, headers: dict[str, str] | None = None) -> Out:
    out = {"Content-Type": JSON}
    if headers:
        out.update(headers)
    return Out(status, out, _dumps(data))


def _problem_out(parts: tuple[int, dict[str, str], dict[str, Any]]) -> Out:
    status, headers, body = parts
    return Out(status, headers, _dumps(body))


def _response(out: Out, replayed: bool = False) -> Response:
    headers = dict(out.headers)
    media = headers.pop("Content-Type", None)
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(out.body, out.status, headers=headers, media_type=media)


@dataclass
class Call:
    """What a route's work gets: the agent's session and the idempotency key to pass on.

    ``since`` is set when an earlier attempt with the request's Idempotency-Key
    died before its response was kept: the store revision that attempt began
    at. A route whose operation the library's own idempotency does not cover
    then looks in the store (:mod:`accord._recover`) for what that attempt did,
    and answers with it instead of doing it again.
    """

    session: Session
    idempotency_key: str | None
    since: int | None = None


# --- the shapes of results -------------------------------------------------------


def _write_out(doc: Doc) -> dict[str, Any]:
    return {
        "key": doc.key,
        "version": doc.version,
        "revision": doc.revision,
        "author": doc.author,
        "kind": to_wire(doc.value)[0] if doc.value is not None else doc.kind,
    }


def _lease_out(lease: Lease) -> dict[str, Any]:
    return {
        "key": lease.key,
        "token": lease.token,
        "mode": lease.mode,
        "agent": lease.agent,
        "ttl": lease.ttl,
        "expires": _now_iso(lease.expires),
        "expires_in": round(lease.remaining(), 3),
    }


def _request_out(request: QueueRequest, message: str | None = None) -> dict[str, Any]:
    change_kind, change = to_wire(request.change)
    outcome = request.outcome
    return {
        "id": request.id,
        "key": request.key,
        "status": request.status,
        "submitter": request.submitter,
        "change": change,
        "change_kind": change_kind,
        "decided_by": request.decided_by,
        "version": outcome.version if isinstance(outcome, Doc) else None,
        "reason": request.reason,
        "message": message,
    }


def _branch_out(branch: Branch) -> dict[str, Any]:
    kind, wire = to_wire(branch.read())
    return {
        "branch_id": branch.id,
        "key": branch.key,
        "agent": branch.agent,
        "base_version": branch.base_version,
        "kind": kind,
        "value": wire,
        "status": branch.status,
    }


def _check_wait(wait: float) -> float:
    if not wait >= 0:
        raise UsageError(f"wait must be 0 or more seconds, not {wait}.")
    if wait > MAX_WAIT:
        raise UsageError(
            f"wait={wait:g} is over this server's limit of {MAX_WAIT:g} seconds per request "
            "(proxies and clients often give up after 60 s, and the answer would be lost). "
            f"Ask with wait={MAX_WAIT:g} or less, and ask again to keep waiting."
        )
    return wait


# --- documentation helpers ---------------------------------------------------------

_ERRORS = (400, 401, 403, 404, 409, 412, 413, 415, 422, 428, 503)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses: the problem document for each status."""
    return {
        code: {
            "description": TITLES.get(code, "Error"),
            "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for code in codes
    }


def _ok(model: type[Any], description: str, code: int = 200) -> dict[int | str, dict[str, Any]]:
    return {code: {"description": description, "model": model}}


_VALUE_BODY = {
    "requestBody": {
        "required": True,
        "description": "The value. Its Content-Type is its kind: text, JSON data, or bytes.",
        "content": {
            "text/plain": {"schema": {"type": "string"}},
            "application/json": {"schema": {}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}

_VALUE_RESPONSE = {
    "description": "The value, its kind in the Content-Type, its version in the ETag.",
    "headers": {
        "ETag": {"description": 'The version: "5".', "schema": {"type": "string"}},
        "Accord-Revision": {"description": "Store revision of the write.",
                            "schema": {"type": "string"}},
    },
    "content": {
        "text/plain": {"schema": {"type": "string"}},
        "application/json": {"schema": {}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}

_SECURED: dict[str, Any] = {"security": [{"bearer": []}]}

class _Api:
    """The routes of one app over one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.limit = store.max_value_size
        # Long-polls wait in threads of their own: a crowd of waiters must not
        # take the threads that quick requests need.
        self.quick = anyio.CapacityLimiter(40)
        self.waits = anyio.CapacityLimiter(256)
        self.tokens = credentials.TokenCache(store)

    # --- the one way every route runs ---------------------------------------------

    def agent_of(self, authorization: str | None) -> str:
        return self.presented(authorization).agent

    def presented(self, authorization: str | None, *, recall: bool = False
                  ) -> credentials.Presented:
        """The live token of the ``Authorization`` header, checked against the store
        (with ``recall``: remembered, if it was checked before); 401 otherwise."""
        scheme, _, token = (authorization or "").partition(" ")
        found = None
        if scheme.lower() == "bearer" and token.strip():
            token = token.strip()
            if recall:
                found = self.tokens.recall(token)
            if found is None:
                found = self.tokens.verify(token)
        if found is None:
            raise unauthorized()
        return found

    async def call(
        self,
        request: Request,
        work: Callable[[Call], Out],
        *,
        body: bytes = b"",
        mutating: bool = False,
        waits: float = 0.0,
        fold: bool = False,
    ) -> Response:
        """Authenticate, run ``work`` in a thread, answer; remember it for an Idempotency-Key.

        ``work`` always runs inside :func:`accord.credentials.presenting`: each
        write it makes commits only while the request's token is live, checked
        in the write's own transaction. ``fold`` (a route whose every effect is
        one such write: PUT and DELETE of a key, without an Idempotency-Key)
        lets a token this server verified before skip the check before the
        work, one round trip to the store: the write's own check refuses a
        rotated or revoked token, and an answer other than success is given
        only after the token is checked again (an error must not tell a
        revoked token anything the store holds).
        """
        headers = request.headers

        def what() -> str:
            # Only for a message: building request.url costs a few percent of a
            # quick request's CPU.
            return f"{request.method} {request.url.path}"

        try:
            key = idempotency_key(headers.get("idempotency-key")) if mutating else None
        except Refusal as exc:
            return _response(_problem_out(refusal(exc)))
        fp = (
            idem.fingerprint(request.method, request.url.path, request.url.query, headers, body)
            if key is not None
            else ""
        )
        authorization = headers.get("authorization")
        replayed = False

        def run() -> Out:
            nonlocal replayed
            recall = fold and key is None
            try:
                presented = self.presented(authorization, recall=recall)
                agent = presented.agent
                session = self.store.session(agent)
            except Refusal as exc:
                return _problem_out(refusal(exc))
            except AccordError as exc:
                return _problem_out(problem(exc))
            except Exception as exc:
                return _problem_out(internal(what(), exc))
            claim = None
            if key is not None:
                try:
                    got = idem.begin(self.store, agent, key, fp, idem.IN_FLIGHT + waits)
                except Refusal as exc:
                    return _problem_out(refusal(exc))
                except AccordError as exc:
                    return _problem_out(problem(exc))
                except Exception as exc:
                    return _problem_out(internal(what(), exc))
                if isinstance(got, idem.Stored):
                    replayed = True
                    return Out(got.status, got.headers, got.body)
                claim = got
            ctx = Call(
                session,
                idem.session_key(agent, key) if key is not None else None,
                claim.since if claim is not None and claim.retry else None,
            )
            try:
                with credentials.presenting(presented):
                    out = work(ctx)
            except Exception as exc:
                out = self._failed(what, exc, presented, recall)
            if claim is not None:
                try:
                    idem.finish(self.store, claim, what(), idem.Stored(out.status, out.headers,
                                                                     out.body))
                except Exception as exc:  # the answer is still the answer
                    internal(f"{what()} (keeping its response for Idempotency-Key)", exc)
            return out

        limiter = self.waits if waits > 0 else self.quick
        out = await anyio.to_thread.run_sync(run, limiter=limiter)
        return _response(out, replayed)

    def _failed(
        self, what: Callable[[], str], exc: Exception, presented: credentials.Presented,
        recalled: bool,
    ) -> Out:
        """The answer for a request whose work raised ``exc``: 401 if the token is no
        longer live, else the error's own answer. Checked again when the token may
        have been taken from memory, or when a write was refused (the write's own
        check refuses a token revoked during the work)."""
        if recalled or isinstance(exc, PreconditionFailed):
            try:
                live = self.tokens.recheck(presented)
            except Exception as failure:
                return _problem_out(internal(what(), failure))
            if not live:
                return _problem_out(refusal(unauthorized()))
        if isinstance(exc, Refusal):
            return _problem_out(refusal(exc))
        if isinstance(exc, AccordError):
            return _problem_out(problem(exc))
        return _problem_out(internal(what(), exc))

    async def body(self, request: Request) -> bytes | Response:
        try:
            return await read_body(request, self.limit)
        except Refusal as exc:
            return _response(_problem_out(refusal(exc)))

    async def value_call(
        self,
        request: Request,
        work: Callable[[Call, Any], Out],
        what: str = "The body",
        *,
        fold: bool = False,
    ) -> Response:
        """A mutating call whose body is a value, its kind in the Content-Type."""
        try:
            kind, _ = kind_of(request.headers.get("content-type"), what)
        except Refusal as exc:
            return _response(_problem_out(refusal(exc)))
        body = await self.body(request)
        if isinstance(body, Response):
            return body

        def with_value(ctx: Call) -> Out:
            return work(ctx, decode(kind, body, what))

        return await self.call(request, with_value, body=body, mutating=True, fold=fold)

    # --- keys ------------------------------------------------------------------------

    async def list_keys(self, request: Request, prefix: str, limit: int) -> Response:
        def work(ctx: Call) -> Out:
            validate_prefix(prefix)
            if not 1 <= limit <= _MAX_LIST:
                raise UsageError(f"limit must be between 1 and {_MAX_LIST}, not {limit}.")
            docs = ctx.session.scan(prefix)
            keys = [
                {"key": d.key, "version": d.version, "kind": to_wire(d.value)[0],
                 "author": d.author, "revision": d.revision}
                for d in docs[:limit]
            ]
            return _json(200, {"prefix": prefix, "count": len(keys), "keys": keys,
                               "truncated": len(docs) > limit})

        return await self.call(request, work)

    async def read(self, request: Request, key: str, if_none_match: str | None) -> Response:
        def work(ctx: Call) -> Out:
            doc = ctx.session.read(key)
            tag = etag(doc.version)
            headers = {"ETag": tag, "Accord-Revision": str(doc.revision),
                       "Accord-Author": quote(doc.author, safe="")}
            if none_match(if_none_match, doc.version):
                return Out(304, headers, b"")
            media, data = encode(doc.value)
            headers["Content-Type"] = media
            return Out(200, headers, data)

        return await self.call(request, work)

    async def write(
        self,
        request: Request,
        key: str,
        if_match: str | None,
        if_none_match: str | None,
        lease: int | None,
    ) -> Response:
        try:
            expect = precondition(if_match, if_none_match)
        except Refusal as exc:
            return _response(_problem_out(refusal(exc)))

        def work(ctx: Call, value: Any) -> Out:
            doc = ctx.session.write(
                key, value, expect=expect, lease=lease, idempotency_key=ctx.idempotency_key
            )
            created = expect == 0
            headers = {"ETag": etag(doc.version)}
            if created:
                headers["Location"] = "/v1/keys/" + _path_of(key)
            return _json(201 if created else 200, _write_out(doc), headers)

        return await self.value_call(request, work, "The value", fold=True)

    async def delete(
        self, request: Request, key: str, if_match: str | None, if_none_match: str | None,
        lease: int | None,
    ) -> Response:
        if if_none_match is not None:
            return _response(_problem_out(refusal(Refusal(400, UsageError(
                "If-None-Match has no meaning on DELETE. Send If-Match with the version you "
                'read, such as If-Match: "5".'
            )))))
        try:
            expect = precondition(if_match, None)
        except Refusal as exc:
            return _response(_problem_out(refusal(exc)))

        def work(ctx: Call) -> Out:
            version = ctx.session.delete(
                key, expect=expect, lease=lease, idempotency_key=ctx.idempotency_key
            )
            return _json(200, {"key": key, "version": version, "deleted": True})

        return await self.call(request, work, mutating=True, fold=True)

    # --- leases ----------------------------------------------------------------------

    async def lease_status(self, request: Request, key: str) -> Response:
        def work(ctx: Call) -> Out:
            from ..strategies import lease as lease_mod

            info = lease_mod.status(self.store, key)

            def one(i: Any) -> dict[str, Any]:
                return {"agent": i.agent, "mode": i.mode, "state": i.state, "token": i.token,
                        "position": i.position,
                        "expires": _now_iso(i.expires) if i.expires is not None else None}

            return _json(200, {"key": key, "holders": [one(h) for h in info.holders],
                               "waiters": [one(w) for w in info.waiters],
                               "last_token": info.last_token})

        return await self.call(request, work)

    async def acquire(
        self, request: Request, key: str, ttl: float, wait: float, mode: str
    ) -> Response:
        def work(ctx: Call) -> Out:
            from ..strategies import lease as lease_mod

            if ctx.since is not None:
                # The first attempt's lease, while it is live (a second one would
                # queue behind it).
                held = _recover.lease_acquired(ctx.session, key, ctx.since, mode)
                if held is not None:
                    return _json(201, _lease_out(held))
            granted = lease_mod.acquire(ctx.session, key, ttl=ttl, wait=_check_wait(wait),
                                        mode=mode)
            return _json(201, _lease_out(granted))

        waiting = wait if 0 < wait <= MAX_WAIT else 0.0
        return await self.call(request, work, mutating=True, waits=waiting)

    async def renew(self, request: Request, key: str, token: int, ttl: float | None) -> Response:
        def work(ctx: Call) -> Out:
            from ..strategies import lease as lease_mod

            if ctx.since is not None:
                renewed = _recover.lease_renewed(ctx.session, key, token, ctx.since)
                if renewed is not None:
                    return _json(200, _lease_out(renewed))
            held = lease_mod.from_token(ctx.session, key, token)
            held.renew(ttl)
            return _json(200, _lease_out(held))

        return await self.call(request, work, mutating=True)

    async def release(self, request: Request, key: str, token: int) -> Response:
        def work(ctx: Call) -> Out:
            from ..strategies import lease as lease_mod

            if ctx.since is None or not _recover.lease_released(ctx.session, key, token,
                                                                ctx.since):
                lease_mod.from_token(ctx.session, key, token).release()
            return _json(200, {"key": key, "token": token, "released": True})

        return await self.call(request, work, mutating=True)

    # --- queue -----------------------------------------------------------------------

    async def queue(self, request: Request, key: str) -> Response:
        def work(ctx: Call) -> Out:
            from ..strategies import queue

            validate_key(key)
            pending = queue.pending(self.store, key)
            role = queue.writer_of(self.store, key)
            try:
                current = ctx.session.read(key)
                version: int = current.version
                kind, value = to_wire(current.value)
            except NotFound:
                version, kind, value = 0, None, None
            return _json(200, {
                "key": key,
                "writer": role.get("agent") if role else None,
                "current_version": version,
                "current_value": value,
                "current_kind": kind,
                "requests": [_request_out(r) for r in pending],
            })

        return await self.call(request, work)

    async def submit(self, request: Request, key: str) -> Response:
        def work(ctx: Call, change: Any) -> Out:
            req = ctx.session.submit(key, change, idempotency_key=ctx.idempotency_key)
            return _json(201, _request_out(req), {"Location": f"/v1/requests/{quote(req.id)}"})

        return await self.value_call(request, work, "The change")

    async def request_status(self, request: Request, request_id: str, wait: float) -> Response:
        def work(ctx: Call) -> Out:
            from ..strategies import queue

            req = queue.get_request(self.store, request_id)
            if req.pending and _check_wait(wait) > 0:
                try:
                    req = req.wait(timeout=wait)
                except Timeout as exc:
                    return _json(200, _request_out(req.refresh(), exc.render("http")))
            return _json(200, _request_out(req))

        return await self.call(request, work, waits=wait if 0 < wait <= MAX_WAIT else 0.0)

    async def accept(
        self, request: Request, request_id: str, if_match: str | None, if_none_match: str | None
    ) -> Response:
        try:
            expect = precondition(if_match, if_none_match)
        except Refusal as exc:
            return _response(_problem_out(refusal(exc)))

        def work(ctx: Call, value: Any) -> Out:
            from ..strategies import queue

            req = queue.get_request(self.store, request_id)
            if expect is None:
                raise PreconditionRequired(
                    f"Accepting request {request_id} writes {req.key}, and a write names the "
                    f"version it builds on: GET /v1/queue/{req.key} (or the key), then accept "
                    'with If-Match: "<current_version>" (If-None-Match: * when the key does '
                    "not exist yet).",
                    key=req.key,
                    request=request_id,
                )
            if ctx.since is not None:
                # Accepted by this agent with this value on top of `expect`: the
                # first attempt's decision (a request is decided once).
                decided = _recover.accepted(ctx.session, req, value, expect)
                if decided is not None:
                    return _json(200, _request_out(decided))
            return _json(200, _request_out(ctx.session.accept(req, value, expect=expect)))

        return await self.value_call(request, work, "The new value")

    async def reject(self, request: Request, request_id: str) -> Response:
        try:
            kind, _ = kind_of(request.headers.get("content-type"), "The reason")
        except Refusal as exc:
            return _response(_problem_out(refusal(exc)))
        body = await self.body(request)
        if isinstance(body, Response):
            return body

        def work(ctx: Call) -> Out:
            from ..strategies import queue

            given = decode(kind, body, "The reason")
            reason = given.get("reason") if isinstance(given, dict) else given
            if not isinstance(reason, str):
                raise UsageError(
                    'Send the reason as text (text/plain) or as JSON {"reason": "..."}, in words '
                    "the submitter can act on."
                )
            req = queue.get_request(self.store, request_id)
            if ctx.since is not None:
                decided = _recover.rejected(ctx.session, req, reason)
                if decided is not None:
                    return _json(200, _request_out(decided))
            return _json(200, _request_out(ctx.session.reject(req, reason)))

        return await self.call(request, work, body=body, mutating=True)

    # --- branches --------------------------------------------------------------------

    async def branches(self, request: Request, key: str) -> Response:
        def work(ctx: Call) -> Out:
            found = self.store.branches(key)
            return _json(200, {"key": key, "branches": [_branch_out(b) for b in found]})

        return await self.call(request, work)

    async def fork(self, request: Request, key: str) -> Response:
        def work(ctx: Call) -> Out:
            forked = _recover.forked(ctx.session, key, ctx.since) if ctx.since is not None else None
            branch = forked if forked is not None else ctx.session.fork(key)
            return _json(201, _branch_out(branch))

        return await self.call(request, work, mutating=True)

    async def branch_write(self, request: Request, key: str, branch_id: str) -> Response:
        def work(ctx: Call, value: Any) -> Out:
            if ctx.since is not None:
                found = _recover.branch_written(ctx.session, key, branch_id, value, ctx.since)
                if isinstance(found, _recover.Overwritten):
                    # Writing again would erase this agent's later write.
                    raise found.error(f"GET /v1/branches/{key}", "Idempotency-Key")
                if found is not None:
                    return _json(200, _branch_out(found))
            branch = ctx.session.branch(key, branch_id)
            branch.write(value)
            return _json(200, _branch_out(branch))

        return await self.value_call(request, work, "The branch's value")

    async def branch_discard(self, request: Request, key: str, branch_id: str) -> Response:
        def work(ctx: Call) -> Out:
            if ctx.since is None or not _recover.discarded(ctx.session, key, branch_id,
                                                           ctx.since):
                ctx.session.branch(key, branch_id).discard()
            return _json(200, {"key": key, "branch_id": branch_id, "status": "discarded"})

        return await self.call(request, work, mutating=True)

    async def merge(self, request: Request, key: str) -> Response:
        body = await self.body(request)
        if isinstance(body, Response):
            return body

        def work(ctx: Call) -> Out:
            spec = m.MergeIn()
            if body.strip():
                try:
                    spec = m.MergeIn.model_validate_json(body)
                except ValueError as exc:
                    raise UsageError(
                        "The merge request must be JSON such as {\"branches\": [\"b-1\", "
                        "\"b-2\"], \"prefer\": \"b-1\", \"resolutions\": {\"where\": \"side\"}} "
                        f"(every field optional): {str(exc).splitlines()[0]}"
                    ) from None
            if ctx.since is not None:
                # The commit and the closing of its branches are one transaction:
                # a merge of this agent with these branches is the first attempt's.
                found = _recover.merged(ctx.session, key, ctx.since, spec.branches)
                if found is not None:
                    found_kind, found_wire = _recover.merged_value(found)
                    return _json(200, {
                        "key": key,
                        "committed": True,
                        "clean": True,
                        "version": found.version,
                        "value": found_wire,
                        "kind": found_kind,
                        "base_version": found.base_version,
                        "current_version": found.current_version,
                        "branches": found.branches,
                        "conflicts": [],
                        "resolved": 0,
                        "message": found.message(),
                    }, {"ETag": etag(found.version)})
            merged, doc = merge_branches(ctx.session, key, spec.branches, spec.prefer,
                                         spec.resolutions)
            kind, wire = to_wire(merged.value)
            return _json(200, {
                "key": key,
                "committed": doc is not None,
                "clean": merged.clean,
                "version": doc.version if doc is not None else None,
                "value": wire,
                "kind": kind,
                "base_version": merged.base_version,
                "current_version": merged.current_version,
                "branches": list(merged.branch_ids),
                "conflicts": [plain(c.to_dict()) for c in merged.conflicts],
                "resolved": len(merged.resolved),
                "message": merged.report()
                + ("" if doc is None else f" Committed as version {doc.version}."),
            }, {"ETag": etag(doc.version)} if doc is not None else None)

        return await self.call(request, work, body=body, mutating=True)

    # --- history, checker, plan --------------------------------------------------------

    async def history(
        self, request: Request, after: int, key: str | None, limit: int, wait: float
    ) -> Response:
        store = self.store
        authorization = request.headers.get("authorization")

        def start() -> Out | int:
            try:
                self.store.session(self.agent_of(authorization))
                if key is not None:
                    validate_prefix(key)
                if not 1 <= limit <= _MAX_HISTORY:
                    raise UsageError(f"limit must be between 1 and {_MAX_HISTORY}, not {limit}.")
                if after < 0:
                    raise UsageError(f"after must be a revision >= 0, not {after}.")
                _check_wait(wait)
                return store.revision()
            except Refusal as exc:
                return _problem_out(refusal(exc))
            except AccordError as exc:
                return _problem_out(problem(exc))

        started = await anyio.to_thread.run_sync(start, limiter=self.quick)
        if isinstance(started, Out):
            return _response(started)

        def lines() -> Iterator[bytes]:
            deadline = time.monotonic() + wait
            since, sent = after, 0
            try:
                while True:
                    batch: deque[bytes] = deque()
                    for event in store.history(key=key, since=since):
                        batch.append(_dumps(plain(event.to_dict())) + b"\n")
                        since = event.rev
                        sent += 1
                        if len(batch) >= 500 or sent >= limit:
                            yield b"".join(batch)
                            batch.clear()
                        if sent >= limit:
                            return
                    if batch:
                        yield b"".join(batch)
                    left = deadline - time.monotonic()
                    if sent or left <= 0:
                        return
                    # A wake-up is a hint (refused writes change no record, so
                    # they wake no one): look again at least every second.
                    store.backend.wait([], [""], since, min(left, 1.0))
            except AccordError as exc:
                yield _dumps({"error": type(exc).__name__, "message": exc.render("http")}) + b"\n"

        return StreamingResponse(
            lines(), media_type=NDJSON, headers={"Accord-Revision": str(started)}
        )

    async def check(self, request: Request, lenient: bool) -> Response:
        body = await self.body(request)
        if isinstance(body, Response):
            return body

        def work(ctx: Call) -> Out:
            from ..history import check

            if not body.strip():
                result = check(self.store, lenient=lenient)
            else:
                with tempfile.TemporaryDirectory(prefix="accord-check-") as tmp:
                    path = _Upload(Path(tmp) / "history.jsonl")
                    Path(path).write_bytes(body)
                    result = check(path, lenient=lenient)
            return _json(200, {"verdict": result.verdict, "summary": result.summary(),
                               "report": plain(result.to_dict())})

        return await self.call(request, work)

    async def plan(self, request: Request) -> Response:
        def work(ctx: Call) -> Out:
            policy = self.store.policy
            if policy is None:
                return _json(200, {
                    "manifest": None,
                    "message": "This server runs without a manifest: no resource has a "
                    "declared strategy, and every key follows the store's defaults (write "
                    "with If-Match).",
                })
            from ..plan import make_plan

            manifest = policy.manifest
            table = make_plan(manifest, source=manifest.name)
            return _json(200, {"manifest": manifest.name, "ok": table.ok,
                               "plan": plain(table.to_json()),
                               "message": f"{len(table.rows)} resources in {manifest.name}."})

        return await self.call(request, work)

    async def whoami(self, request: Request) -> Response:
        def work(ctx: Call) -> Out:
            policy = self.store.policy
            return _json(200, {"agent": ctx.session.agent,
                               "manifest": policy.manifest.name if policy is not None else None})

        return await self.call(request, work)


class _Upload(os.PathLike[str]):
    """A temporary file that messages call "the uploaded history"."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return "the uploaded history"


# --- the app -----------------------------------------------------------------------------

_KEYS = "/v1/keys/"
_KEY_ROUTE = _KEYS + "{key:path}"


class _App(FastAPI):
    """FastAPI, with a short way in for ``GET``, ``PUT`` and ``DELETE /v1/keys/{key}``.

    Those three are most of the traffic, and FastAPI's layers around a route
    (its middleware stack, the route table's walk, the per-request dependency
    machinery) cost a tenth of such a request's CPU, although the route takes
    the ``Request`` alone and catches its own errors. The short way runs the
    same endpoint (the one the route table has, so the two cannot disagree) and
    answers a :class:`Refusal` or a crash the way the app's handlers do. Only
    when the app is not mounted under a prefix (``root_path`` empty): a mounted
    app, and every other request, takes FastAPI's way.
    """

    fast: dict[str, Callable[[Request], Awaitable[Response]]]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = None
        if (
            scope["type"] == "http"
            and not scope.get("root_path")
            and scope["path"].startswith(_KEYS)
        ):
            endpoint = self.fast.get(scope["method"])
        if endpoint is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        scope["path_params"] = {"key": scope["path"][len(_KEYS):]}
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except Refusal as exc:
            response = _response(_problem_out(refusal(exc)))
        except Exception as exc:
            response = _response(_problem_out(internal(f"{request.method} {scope['path']}",
                                                       exc)))
        await response(scope, receive, send)


def build(store: Store) -> FastAPI:
    """The FastAPI app of the HTTP API over ``store`` (see :func:`accord.http.app`)."""
    from .. import __version__

    api = _Api(store)
    app = _App(
        title="accord",
        version=__version__,
        summary="Shared state for agents: versioned keys with ETags, leases with fencing "
        "tokens, a single-writer queue, branches, history and a race checker.",
        description=(
            "Read a key (GET, keep its ETag), write it back with If-Match: a stale one is 412 "
            "with what changed. See docs/http.md."
        ),
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.accord_store = store
    app.fast = {}

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for item in exc.errors()[:8]:
            where = ".".join(str(p) for p in item.get("loc", ())) or "request"
            problems.append(f"{where}: {item.get('msg', 'invalid')}")
        error = UsageError(
            "The request is malformed, nothing was done: " + "; ".join(problems)
            + ". See GET /openapi.json for every parameter and its type."
        )
        return _response(_problem_out(problem(error, 400)))

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal) -> Response:
        return _response(_problem_out(refusal(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            text = (f"There is no {request.url.path} in this API. The routes start with /v1/ "
                    "(keys, leases, queue, requests, branches, merges, history, check, plan); "
                    "GET /openapi.json lists them.")
        elif exc.status_code == 405:
            text = (f"{request.method} is not a method of {request.url.path}. GET "
                    "/openapi.json lists the methods of each route.")
        else:
            text = str(exc.detail)
        error = NotFound(text) if exc.status_code == 404 else UsageError(text)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # One route per method: Starlette names only the first route's methods.
            allowed: set[str] = set()
            for route in app.routes:
                regex = getattr(route, "path_regex", None)
                if regex is not None and regex.match(request.url.path):
                    allowed |= set(getattr(route, "methods", None) or ())
            headers["Allow"] = ", ".join(sorted(allowed))
        return _response(_problem_out(problem(error, exc.status_code, headers)))

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> Response:
        return _response(_problem_out(internal(f"{request.method} {request.url.path}", exc)))

    def route(
        method: str, path: str, params: tuple[P, ...], handler: Callable[..., Any],
        *, tags: str, summary: str, responses: dict[int | str, dict[str, Any]],
        body: dict[str, Any] | None = None, secured: bool = True,
    ) -> None:
        """Register ``handler(request, **parameters)``; its docstring is the description."""

        async def endpoint(request: Request) -> Response:
            answer: Response = await handler(request, **parse(request, params, secured=secured))
            return answer

        extra = openapi_params(*params)
        if secured:
            extra.update(_SECURED)
        if body is not None:
            extra.update(body)
        app.add_api_route(
            path, endpoint, methods=[method], tags=[tags], summary=summary,
            description=inspect.cleandoc(handler.__doc__ or ""), responses=responses,
            openapi_extra=extra, name=f"{method.lower()} {path}",
        )
        if path == _KEY_ROUTE:
            app.fast[method] = endpoint

    key_p = P("key", "path", description="A path-like key, such as docs/plan.md.")
    rid_p = P("request_id", "path", description="The request id from the submit, r-...")
    if_match_p = P("If-Match", "header",
                   description='The version you read, as GET gave it in its ETag: "5".')
    create_p = P("If-None-Match", "header", description="* to create a key that must not exist.")
    lease_p = P("Accord-Lease", "header", "integer", minimum=1, maximum=2**62,
                description="The fencing token of your lease on the key.")
    idem_p = P("Idempotency-Key", "header",
               description='A new unique id per request (such as a UUID in quotes, "8e03..."); '
               "repeat it only when you repeat that very request: the repeat returns the first "
               "response and applies nothing again.")
    wait_p = P("wait", "query", "number", default=0, minimum=0, maximum=MAX_WAIT,
               description="Seconds to wait.")
    token_p = P("token", "query", "integer", required=True, minimum=1, maximum=2**62,
                description="Your lease's fencing token.")
    branch_p = P("id", "query", required=True, description="The branch id, from the fork.")

    async def list_keys(request: Request, prefix: str, limit: int) -> Response:
        """The keys that start with `prefix`, with versions and authors (no values)."""
        return await api.list_keys(request, prefix, limit)

    async def read_key(request: Request, key: str, **h: Any) -> Response:
        """The value of `key`, its kind in the Content-Type and its version in the ETag.
        Keep the ETag: write the key back with `If-Match` set to it."""
        return await api.read(request, key, h["If-None-Match"])

    async def write_key(request: Request, key: str, **h: Any) -> Response:
        """Write `key` only if it is still at the version in `If-Match` (412 with what changed
        otherwise), or create it with `If-None-Match: *`. Without either, an existing key is
        428. Under a lease, send its token in `Accord-Lease`: the store fences the write."""
        return await api.write(request, key, h["If-Match"], h["If-None-Match"],
                               h["Accord-Lease"])

    async def delete_key(request: Request, key: str, **h: Any) -> Response:
        """Delete `key` only if it is still at the version in `If-Match` (or under your lease)."""
        return await api.delete(request, key, h["If-Match"], request.headers.get("if-none-match"),
                                h["Accord-Lease"])

    route("GET", "/v1/keys", (
        P("prefix", "query", default="", description="Keys that start with this."),
        P("limit", "query", "integer", default=1000, minimum=1, maximum=_MAX_LIST),
    ), list_keys, tags="keys", summary="List keys",
        responses={**_ok(m.ListOut, "The keys under the prefix, in key order."),
                   **_errors(400, 401, 403, 503)})
    route("GET", "/v1/keys/{key:path}", (
        key_p, P("If-None-Match", "header", description='An ETag you hold: "5".'),
    ), read_key, tags="keys", summary="Read a key",
        responses={200: _VALUE_RESPONSE, 304: {"description": "Not modified (If-None-Match)."},
                   **_errors(400, 401, 403, 404, 503)})
    route("PUT", "/v1/keys/{key:path}", (key_p, if_match_p, create_p, lease_p, idem_p),
          write_key, tags="keys", summary="Write a key", body=_VALUE_BODY,
          responses={**_ok(m.WriteOut, "Written."),
                     **_ok(m.WriteOut, "Created (If-None-Match: *).", 201),
                     **_errors(400, 401, 403, 404, 409, 412, 413, 415, 422, 428, 503)})
    route("DELETE", "/v1/keys/{key:path}", (key_p, if_match_p, lease_p, idem_p),
          delete_key, tags="keys", summary="Delete a key",
          responses={**_ok(m.DeleteOut, "Deleted."),
                     **_errors(400, 401, 403, 404, 409, 412, 422, 428, 503)})

    # leases
    lease_errors = _errors(400, 401, 403, 404, 409, 412, 422, 503)

    async def lease_status(request: Request, key: str) -> Response:
        """Who holds the lease on `key` (agents, tokens, deadlines) and who waits, in order."""
        return await api.lease_status(request, key)

    async def acquire(request: Request, key: str, ttl: float, wait: float, mode: str,
                      **h: Any) -> Response:
        """Take the lease on `key`, waiting up to `wait` seconds in line (409 when it runs
        out). Write under it with its token in `Accord-Lease`; renew it while you work and
        release it when done."""
        return await api.acquire(request, key, ttl, wait, mode)

    async def renew(request: Request, key: str, token: int, ttl: float | None,
                    **h: Any) -> Response:
        """Extend your lease `token` on `key` to `ttl` seconds from now (default: its TTL)."""
        return await api.renew(request, key, token, ttl)

    async def release(request: Request, key: str, token: int, **h: Any) -> Response:
        """Release your lease `token` on `key`, so the next in line gets it at once."""
        return await api.release(request, key, token)

    ttl_p = P("ttl", "query", "number", default=30, minimum=0, exclusive_minimum=True,
              maximum=86400, description="Seconds the lease lives without a renewal.")
    route("GET", "/v1/leases/{key:path}", (key_p,), lease_status, tags="leases",
          summary="Lease holders and waiters",
          responses={**_ok(m.LeaseStatusOut, "Holders and waiters."), **lease_errors})
    route("POST", "/v1/leases/{key:path}", (
        key_p, ttl_p,
        P("wait", "query", "number", default=10, minimum=0, maximum=MAX_WAIT,
          description="Seconds to wait in line."),
        P("mode", "query", default="exclusive", enum=("exclusive", "shared")),
        idem_p,
    ), acquire, tags="leases", summary="Acquire a lease",
        responses={**_ok(m.LeaseOut, "Granted.", 201), **lease_errors})
    route("PATCH", "/v1/leases/{key:path}", (
        key_p, token_p,
        P("ttl", "query", "number", minimum=0, exclusive_minimum=True, maximum=86400,
          description="Seconds from now (default: the lease's TTL)."),
        idem_p,
    ), renew, tags="leases", summary="Renew a lease",
        responses={**_ok(m.LeaseOut, "Renewed."), **lease_errors})
    route("DELETE", "/v1/leases/{key:path}", (key_p, token_p, idem_p), release, tags="leases",
          summary="Release a lease", responses={**_ok(m.ReleaseOut, "Released."), **lease_errors})

    # queue
    queue_errors = _errors(400, 401, 403, 404, 409, 412, 413, 415, 422, 428, 503)

    async def queue(request: Request, key: str) -> Response:
        """The pending change requests of `key`, oldest first, with its writer and its
        current value and version (send that version as If-Match when you accept)."""
        return await api.queue(request, key)

    async def submit(request: Request, key: str, **h: Any) -> Response:
        """Submit a change request for `key` to its writer (the body is the change, its kind
        in the Content-Type). GET /v1/requests/{id}?wait= tells the writer's decision."""
        return await api.submit(request, key)

    async def request_status(request: Request, request_id: str, wait: float) -> Response:
        """The status of change request `request_id`; with `wait`, wait that long for the
        writer's decision."""
        return await api.request_status(request, request_id, wait)

    async def accept(request: Request, request_id: str, **h: Any) -> Response:
        """As the writer of the request's key: write the body (the key's new value) if the
        key is still at `If-Match`, and mark the request accepted, in one commit."""
        return await api.accept(request, request_id, h["If-Match"], h["If-None-Match"])

    async def reject(request: Request, request_id: str, **h: Any) -> Response:
        """As the writer: reject the request with a reason the submitter can act on."""
        return await api.reject(request, request_id)

    route("GET", "/v1/queue/{key:path}", (key_p,), queue, tags="queue",
          summary="Pending change requests",
          responses={**_ok(m.QueueOut, "The pending requests, oldest first."),
                     **_errors(400, 401, 403, 503)})
    route("POST", "/v1/queue/{key:path}", (key_p, idem_p), submit, tags="queue",
          summary="Submit a change request", body=_VALUE_BODY,
          responses={**_ok(m.RequestOut, "Submitted.", 201), **queue_errors})
    route("GET", "/v1/requests/{request_id}", (rid_p, wait_p), request_status, tags="queue",
          summary="A request's status",
          responses={**_ok(m.RequestOut, "The request as decided, or still pending."),
                     **_errors(400, 401, 403, 404, 503)})
    route("POST", "/v1/requests/{request_id}/accept", (rid_p, if_match_p, create_p, idem_p),
          accept, tags="queue", summary="Accept a request", body=_VALUE_BODY,
          responses={**_ok(m.RequestOut, "Accepted and written."), **queue_errors})
    route("POST", "/v1/requests/{request_id}/reject", (rid_p, idem_p), reject, tags="queue",
          summary="Reject a request", body={"requestBody": {
              "required": True,
              "content": {
                  "application/json": {"schema": {"$ref": "#/components/schemas/RejectIn"}},
                  "text/plain": {"schema": {"type": "string"}},
              }}},
          responses={**_ok(m.RequestOut, "Rejected."), **queue_errors})

    # branches
    branch_errors = _errors(400, 401, 403, 404, 409, 412, 413, 415, 422, 503)

    async def branches(request: Request, key: str) -> Response:
        """The open branches of `key`, oldest first, with their values."""
        return await api.branches(request, key)

    async def fork(request: Request, key: str, **h: Any) -> Response:
        """A private copy of `key` (a branch) at its current version."""
        return await api.fork(request, key)

    async def branch_write(request: Request, key: str, id: str, **h: Any) -> Response:
        """Replace the value of your branch `id` of `key` (same kind as the key)."""
        return await api.branch_write(request, key, id)

    async def branch_discard(request: Request, key: str, id: str, **h: Any) -> Response:
        """Close your branch `id` of `key` without merging it."""
        return await api.branch_discard(request, key, id)

    async def merge(request: Request, key: str, **h: Any) -> Response:
        """Merge branches of `key` three-way against their base and, when no conflict is
        left, write the result (committed true). Otherwise nothing is written and the
        conflicts are listed: merge again with resolutions or prefer."""
        return await api.merge(request, key)

    route("GET", "/v1/branches/{key:path}", (key_p,), branches, tags="branches",
          summary="Open branches",
          responses={**_ok(m.BranchesOut, "The open branches."), **_errors(400, 401, 403, 503)})
    route("POST", "/v1/branches/{key:path}", (key_p, idem_p), fork, tags="branches",
          summary="Fork a key", responses={**_ok(m.BranchOut, "Forked.", 201), **branch_errors})
    route("PUT", "/v1/branches/{key:path}", (key_p, branch_p, idem_p), branch_write,
          tags="branches", summary="Write your branch", body=_VALUE_BODY,
          responses={**_ok(m.BranchOut, "Written."), **branch_errors})
    route("DELETE", "/v1/branches/{key:path}", (key_p, branch_p, idem_p), branch_discard,
          tags="branches", summary="Discard your branch",
          responses={**_ok(m.BranchOut, "Discarded."), **branch_errors})
    route("POST", "/v1/merges/{key:path}", (key_p, idem_p), merge, tags="branches",
          summary="Merge branches", body={"requestBody": {
              "required": False,
              "content": {
                  "application/json": {"schema": {"$ref": "#/components/schemas/MergeIn"}}
              }}},
          responses={**_ok(m.MergeOut, "Merged (committed) or the conflicts to settle."),
                     **branch_errors})

    # history, check, plan
    async def history(request: Request, after: int, key: str | None, limit: int,
                      wait: float) -> Response:
        """The store's history after revision `after`, oldest first, one JSON event a line.
        With `wait`, an empty answer waits for the next events (long-poll): ask again with
        `after` set to the last `rev` you got."""
        return await api.history(request, after, key, limit, wait)

    async def check(request: Request, lenient: bool) -> Response:
        """Run the race detector on the uploaded history (or, with an empty body, on this
        store's): lost updates, racing writes, fenced writes accepted, duplicates."""
        return await api.check(request, lenient)

    async def plan(request: Request) -> Response:
        """The manifest this server enforces, as the plan's table."""
        return await api.plan(request)

    async def whoami(request: Request) -> Response:
        """The agent your token belongs to."""
        return await api.whoami(request)

    async def healthz(request: Request) -> Response:
        """200 while the server runs (no token needed)."""
        return Response(b'{"ok":true}', media_type=JSON)

    route("GET", "/v1/history", (
        P("after", "query", "integer", default=0, minimum=0, maximum=2**62,
          description="Events after this revision."),
        P("key", "query", description="Only this key's events."),
        P("limit", "query", "integer", default=10_000, minimum=1, maximum=_MAX_HISTORY),
        P("wait", "query", "number", default=0, minimum=0, maximum=MAX_WAIT,
          description="With nothing after `after`, wait this long for new events (a watch)."),
    ), history, tags="history", summary="History as JSON lines",
        responses={200: {"description": "One event per line (application/x-ndjson).",
                         "content": {NDJSON: {"schema": {"type": "string"}}}},
                   **_errors(400, 401, 403, 503)})
    route("POST", "/v1/check", (
        P("lenient", "query", "boolean", default=False,
          description="Skip malformed lines, counting them."),
    ), check, tags="history", summary="Check a history for races", body={"requestBody": {
        "required": False,
        "description": "A JSONL history (accord's, or foreign operations). Empty: this "
        "store's own history.",
        "content": {NDJSON: {"schema": {"type": "string"}},
                    "text/plain": {"schema": {"type": "string"}}}}},
        responses={**_ok(m.CheckOut, "The verdict and the anomalies."),
                   **_errors(400, 401, 403, 413, 503)})
    route("GET", "/v1/plan", (), plan, tags="history", summary="The manifest's plan",
          responses={**_ok(m.PlanOut, "The plan table."), **_errors(401, 403, 503)})
    route("GET", "/v1/whoami", (), whoami, tags="history", summary="Who am I",
          responses={**_ok(m.WhoAmIOut, "Your agent."), **_errors(401, 403, 503)})
    route("GET", "/healthz", (), healthz, tags="server", summary="Health", secured=False,
          responses={200: {"description": "The server answers.",
                           "content": {JSON: {"schema": {"type": "object"}}}}})

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary,
            description=app.description, routes=app.routes,
        )
        components = schema.setdefault("components", {})
        components.setdefault("securitySchemes", {})["bearer"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from `accord agents add NAME`.",
        }
        schemas = components.setdefault("schemas", {})
        for model in (m.Problem, m.RejectIn, m.MergeIn):
            schemas[model.__name__] = model.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        for path in schema.get("paths", {}).values():
            for op in path.values():
                # FastAPI documents a 422 of its own for malformed parameters; this API
                # answers those with 400, and keeps 422 for a reused Idempotency-Key.
                responses = op.get("responses", {})
                if PROBLEM not in responses.get("422", {}).get("content", {PROBLEM: 1}):
                    del responses["422"]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
