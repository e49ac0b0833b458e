"""The MCP tools: a thin layer over :class:`accord.Session`.

Every tool maps to one call of the public Python API, made as the calling
agent: ``store.session(agent)``, so the store's manifest (if it was opened
with one) is enforced by the store's own policy hook, exactly as for Python
callers. Nothing here re-implements a rule. What the layer adds:

* identity: over stdio the agent is fixed when the server starts; over
  streamable HTTP it is the agent whose bearer token came with the request
  (see :mod:`accord.mcp.auth`), whatever a tool argument claims;
* the wire form of values (text as is; JSON data as JSON text in, JSON
  out; bytes as base64 with ``kind`` ``"bytes"``, via
  :func:`accord.records.to_wire` and :func:`accord.records.from_wire`);
* errors as tool results: an :class:`accord.AccordError` comes back with
  ``isError`` true, the error's own message as its text, and its fields as
  structured content. Anything else is logged on the server and reported
  without a traceback.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

from accord import _recover, replay
from accord.errors import (
    AccordError,
    IdempotencyMismatch,
    InvalidValue,
    NotFound,
    PolicyViolation,
    PreconditionFailed,
    Timeout,
    UsageError,
    option,
    var,
)
from accord.keys import validate_key
from accord.records import Doc, from_wire, to_wire
from accord.remote import merge_branches
from accord.session import MAX_VERSION, Operation, Session

from .models import (
    BranchOut,
    CheckOut,
    DeleteOut,
    DocOut,
    KeyOut,
    LeaseHolderOut,
    LeaseOut,
    LeaseStatusOut,
    ListOut,
    LogOut,
    MergeOut,
    PlanOut,
    ReleaseOut,
    RequestOut,
    RequestsOut,
    WhoAmIOut,
    WriteOut,
)

if TYPE_CHECKING:
    from accord.store import Store
    from accord.strategies.lease import Lease
    from accord.strategies.queue import Request

__all__ = ["MAX_WAIT", "Identity", "build_server", "fingerprint"]

logger = logging.getLogger("accord.mcp")

MAX_WAIT = 55.0
"""The longest a tool waits (lease_acquire, request_status). Many clients cut
a tool call off after 60 seconds (the TypeScript SDK's default), after which
the answer would be lost: call again to keep waiting."""

_MAX_LIST = 10_000
_MAX_LOG = 1_000

Kind = Literal["text", "json", "bytes"]
# Versions and tokens fit 64-bit integers in every backend (see
# accord.session.MAX_VERSION); the schema says so to clients up front.
Version = Annotated[int, Field(le=MAX_VERSION)]
Token = Annotated[int, Field(le=MAX_VERSION)]
Identity = Callable[[Context], str]
"""How the server learns who is calling: a function of the request context."""

_INSTRUCTIONS = """\
accord keeps shared state for several agents and makes sure no agent silently \
erases another's change. The protocol: read a key first and keep its version; \
write it back with expect=<that version> (expect=0 creates a key that does not exist). \
If someone wrote it meanwhile, the write fails with a Conflict that says who changed \
it, shows the diff, and names the current version: read again, apply your change on \
top of the current value, and write with the new version. Never retry a conflicting \
write with the same value and a guessed version. For long work, take a lease \
(lease_acquire), write with write_leased and the lease's token, and release it. On \
queue keys, submit a change and let the writer accept or reject it. Pass an \
idempotency_key (one per change) to every call that changes state when you may retry it \
after a timeout: a repeat of the same call returns the first result and applies nothing \
twice."""


def _now_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _plain(value: Any) -> Any:
    """JSON-ready form of an error detail (tuples as lists, bytes as base64)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return to_wire(bytes(value))[1]
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def error_result(exc: AccordError) -> CallToolResult:
    """An accord error as a tool result: its message as text, its fields as structured content."""
    message = exc.render("mcp")
    data: dict[str, Any] = {"error": type(exc).__name__, "message": message}
    for name, value in getattr(exc, "_details", {}).items():
        if name == "writers" and isinstance(value, list):
            data["writers"] = [
                {"version": v, "agent": a} for v, a in value if isinstance(v, int)
            ]
        elif name == "value":
            if value is not None:
                data["value_kind"], data["value"] = to_wire(value)
            else:
                data["value"] = None
        else:
            data[name] = _plain(value)
    return CallToolResult(
        content=[TextContent(type="text", text=message)],
        structured_content=data,
        is_error=True,
    )


def _internal_error(tool: str, exc: BaseException) -> CallToolResult:
    # The traceback goes to the server's log only: it may show paths and
    # internals a model cannot act on.
    logger.error("tool %s failed unexpectedly", tool, exc_info=exc)
    message = (
        f"The accord server failed while running {tool} ({type(exc).__name__}); the details are "
        "in the server's log. Read the keys involved to see what was applied before retrying, "
        "and report the problem if it repeats."
    )
    return CallToolResult(
        content=[TextContent(type="text", text=message)],
        structured_content={"error": "InternalError", "message": message},
        is_error=True,
    )


def _ok(model: BaseModel) -> CallToolResult:
    return _result(model.model_dump(mode="json"))


def _result(
    data: dict[str, Any], replayed: bool = False, text: str | None = None
) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=text or json.dumps(data, ensure_ascii=False))],
        structured_content=data,
        # A replay carries the first call's structured content unchanged; the
        # flag is for clients that care (HTTP says Idempotent-Replayed).
        _meta={"accord/replayed": True} if replayed else None,
    )


SURFACE = "mcp"


def fingerprint(tool: str, arguments: dict[str, Any]) -> str:
    """What makes two calls "the same call" for an idempotency_key: the tool and its
    arguments as validated (defaults filled in), without the key itself."""
    text = json.dumps([tool, _canonical(arguments)], sort_keys=True, ensure_ascii=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(value: Any) -> Any:
    # ttl=30 and ttl=30.0 are one call (a default is an int, a sent number a float).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def _same_call(tool: str, key: str) -> str:
    return f"{tool} of {key}" if key else tool


def _value(value: str, kind: str, what: str = "value") -> Any:
    """The stored value for ``value`` sent as ``kind`` (JSON data arrives as JSON text)."""
    if kind == "json":
        if not isinstance(value, str):
            raise InvalidValue(
                f"With kind='json', {what} is the JSON text, such as '{{\"a\": 1}}'."
            )
        try:
            return from_wire("json", json.loads(value))
        except ValueError as exc:
            raise InvalidValue(
                f"{what} is not valid JSON ({exc}). With kind='json' pass the JSON text, such as "
                f"'{{\"a\": 1}}'; to store it as plain text, pass kind='text'."
            ) from exc
    return from_wire(kind, value)


def _check_wait(wait: float, name: str = "wait") -> float:
    if wait > MAX_WAIT:
        raise UsageError(
            f"{name}={wait:g} is over this server's limit of {MAX_WAIT:g} seconds per tool call "
            "(many clients give up on a call after 60 s, and the answer would be lost). "
            f"Call with {name}={MAX_WAIT:g} or less, and call again to keep waiting."
        )
    return wait


def _check_limit(limit: int, most: int) -> int:
    if limit < 1 or limit > most:
        raise UsageError(f"limit must be between 1 and {most}, not {limit}.")
    return limit


def _doc_out(doc: Doc) -> DocOut:
    kind, wire = to_wire(doc.value)
    return DocOut(
        key=doc.key,
        exists=True,
        version=doc.version,
        value=wire,
        kind=kind,
        revision=doc.revision,
        author=doc.author,
    )


def _write_out(doc: Doc) -> WriteOut:
    return WriteOut(
        key=doc.key,
        version=doc.version,
        revision=doc.revision,
        author=doc.author,
        kind=to_wire(doc.value)[0] if doc.value is not None else doc.kind,
    )


def _lease_out(lease: Lease) -> LeaseOut:
    return LeaseOut(
        key=lease.key,
        token=lease.token,
        mode=lease.mode,
        agent=lease.agent,
        ttl=lease.ttl,
        expires=_now_iso(lease.expires),
        expires_in=round(lease.remaining(), 3),
    )


def _request_out(request: Request, message: str | None = None) -> RequestOut:
    change_kind, change = to_wire(request.change)
    outcome = request.outcome
    return RequestOut(
        id=request.id,
        key=request.key,
        status=request.status,
        submitter=request.submitter,
        change=change,
        change_kind=change_kind,
        decided_by=request.decided_by,
        version=outcome.version if isinstance(outcome, Doc) else None,
        reason=request.reason,
        message=message,
    )


def _annotations(
    title: str, *, read_only: bool = False, destructive: bool = False, idempotent: bool = False
) -> ToolAnnotations:
    return ToolAnnotations(
        title=title,
        read_only_hint=read_only,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=False,
    )


class _Tools:
    """The tools of one server: a store and a way to tell who is calling."""

    def __init__(self, store: Store, identity: Identity, transport: str) -> None:
        self.store = store
        self.identity = identity
        self.transport = transport

    def run(
        self, tool: str, ctx: Context, body: Callable[[Session], BaseModel]
    ) -> CallToolResult:
        """Run ``body`` as the calling agent; every outcome is a tool result."""
        try:
            session = self.store.session(self.identity(ctx))
            return _ok(body(session))
        except AccordError as exc:
            return error_result(exc)
        except Exception as exc:
            return _internal_error(tool, exc)

    def mutate(
        self,
        tool: str,
        ctx: Context,
        arguments: dict[str, Any],
        idempotency_key: str | None,
        body: Callable[[Session, str | None], BaseModel],
        *,
        recover: Callable[[Session, int], BaseModel | None] | None = None,
        hold: float = 0.0,
        keep: Callable[[Any], bool] | None = None,
    ) -> CallToolResult:
        """Run a tool that changes state, remembering its result for ``idempotency_key``.

        Without a key this is :meth:`run`. With one, the call is claimed in the
        store first (:mod:`accord.replay`): a repeat of the same call gets the
        first result back and nothing runs; another call with the key, or a
        repeat while the first still runs, is a tool error. ``body`` gets the
        session and the key to hand to the library's own idempotency (derived
        per agent). ``recover`` runs instead of ``body`` when an earlier attempt
        with this key died before its result was kept: given the store revision
        that attempt began at, it answers from what the store shows that attempt
        did, or returns None when the attempt left nothing (``body`` then runs).
        ``hold`` is the call's longest wait; ``keep`` says whether a successful
        result is kept (a refused call applied nothing and is never kept).
        """
        if idempotency_key is None:
            return self.run(tool, ctx, lambda session: body(session, None))
        what = _same_call(tool, str(arguments.get("key") or ""))
        try:
            session = self.store.session(self.identity(ctx))
            key = replay.check_key(idempotency_key)
            got = replay.begin(self.store, SURFACE, session.agent, key,
                               fingerprint(tool, arguments), replay.IN_FLIGHT + hold, what)
        except AccordError as exc:
            return error_result(exc)
        except Exception as exc:
            return _internal_error(tool, exc)
        if isinstance(got, replay.Done):
            # The text as first sent: the store may keep JSON in another key order.
            return _result(got.answer["structured"], True, got.answer["text"])
        if isinstance(got, replay.Mismatch):
            return error_result(IdempotencyMismatch(
                f"idempotency_key {key!r} was first used for another call "
                f"({got.operation or 'a different one'}); nothing was done. A repeat must be the "
                "very same call (the same tool with the same arguments); use a new "
                "idempotency_key for a new change, such as one corrected after a Conflict.",
                idempotency_key=key,
            ))
        if isinstance(got, replay.Busy):
            left = max(1, math.ceil(got.left))
            return error_result(PreconditionFailed(
                f"A call with idempotency_key {key!r} is still running; nothing was done. "
                f"Repeat it after it finished (in about {left} s) to get its result.",
                idempotency_key=key,
                retry_after=left,
            ))
        claim = got
        try:
            model = recover(session, claim.since) if claim.retry and recover else None
            if model is None:
                model = body(session, replay.session_key(SURFACE, session.agent, key))
            result = _ok(model)
        except AccordError as exc:
            self._forget(tool, claim, what)
            return error_result(exc)
        except Exception as exc:
            self._forget(tool, claim, what)
            return _internal_error(tool, exc)
        kept = keep is None or keep(model)
        try:
            text = result.content[0].text if isinstance(result.content[0], TextContent) else ""
            answer = {"structured": result.structured_content, "text": text}
            replay.finish(self.store, claim, what, answer if kept else None)
        except Exception as exc:  # the result is still the result
            logger.error("keeping the result of %s for its idempotency_key failed", tool,
                         exc_info=exc)
        return result

    def _forget(self, tool: str, claim: replay.Claim, what: str) -> None:
        try:
            replay.finish(self.store, claim, what, None)
        except Exception as exc:  # the claim lapses at its deadline instead
            logger.error("releasing the idempotency_key of %s failed", tool, exc_info=exc)

    # --- reading ---------------------------------------------------------------

    def read(self, key: str, ctx: Context) -> Annotated[CallToolResult, DocOut]:
        """Read `key`: its value, version, kind and author. An absent key has exists=false
        and version 0 (create it with write and expect=0). Keep the version: write the
        key back with expect=<version> so that no one else's change is erased."""

        def body(session: Session) -> DocOut:
            validate_key(key)
            try:
                return _doc_out(session.read(key))
            except NotFound as exc:
                return DocOut(key=key, exists=False, version=0, message=exc.render("mcp"))

        return self.run("read", ctx, body)

    def list_keys(
        self, ctx: Context, prefix: str = "", limit: int = 200
    ) -> Annotated[CallToolResult, ListOut]:
        """List the keys that start with `prefix` (all keys when empty), in key order,
        with their versions and authors, at most `limit` of them (no values: read a key
        for its value)."""

        def body(session: Session) -> ListOut:
            most = _check_limit(limit, _MAX_LIST)
            docs = session.scan(prefix)
            keys = [
                KeyOut(
                    key=d.key,
                    version=d.version,
                    kind=to_wire(d.value)[0],
                    author=d.author,
                    revision=d.revision,
                )
                for d in docs[:most]
            ]
            return ListOut(prefix=prefix, count=len(keys), keys=keys, truncated=len(docs) > most)

        return self.run("list", ctx, body)

    # --- writing ---------------------------------------------------------------

    def write(
        self,
        key: str,
        value: str,
        expect: Version,
        ctx: Context,
        kind: Kind = "text",
        idempotency_key: str | None = None,
    ) -> Annotated[CallToolResult, WriteOut]:
        """Write `value` to `key` only if the key is still at version `expect` (the
        version you read; expect=0 creates a key that does not exist). On a Conflict
        nothing was written: the error says who changed the key and what changed; read it
        again, redo your change on top of the current value, and write with the new
        version. `value` is text; with kind='json' it is JSON text stored as JSON data,
        with kind='bytes' base64. Pass an `idempotency_key` (one per logical change) to make
        a retry after a timeout safe: a repeat returns the first result and writes nothing."""

        def body(session: Session, idem: str | None) -> WriteOut:
            stored = _value(value, kind)
            doc = session.write(key, stored, expect=expect, idempotency_key=idem)
            return _write_out(doc)

        arguments = {"key": key, "value": value, "expect": expect, "kind": kind}
        return self.mutate("write", ctx, arguments, idempotency_key, body)

    def write_owned(
        self,
        key: str,
        value: str,
        ctx: Context,
        kind: Kind = "text",
        idempotency_key: str | None = None,
    ) -> Annotated[CallToolResult, WriteOut]:
        """Write `value` to a `key` that the manifest gives you alone (you are its owner,
        or the writer of its queue), without expect: nobody else can write it, so there is
        no version to compare. Refused on any other key: use write with expect there.
        `kind` and `idempotency_key` as for write."""

        def body(session: Session, idem: str | None) -> WriteOut:
            validate_key(key)
            stored = _value(value, kind)
            policy = self.store.policy
            operation = Operation(
                session,
                "write",
                key,
                {"expect": None, "force": False, "lease": None, "idempotency_key": idem},
            )
            if policy is not None:
                policy.check(operation)
            if not operation.allow_blind:
                strategy = policy.strategy_for(key) if policy is not None else None
                raise PolicyViolation(
                    f"{session.agent} may not write {key} without expect: write_owned is only for "
                    "keys the manifest gives one agent alone (strategy owner, or the queue's "
                    f"writer), and {key} is "
                    + (f"a {strategy} resource." if strategy else "not covered by the manifest.")
                    + f" Read {key} and write it with {option('expect', var('its version'))} "
                    "instead.",
                    key=key,
                    strategy=strategy,
                )
            doc = session.write(key, stored, idempotency_key=idem)
            return _write_out(doc)

        arguments = {"key": key, "value": value, "kind": kind}
        return self.mutate("write_owned", ctx, arguments, idempotency_key, body)

    def delete(
        self, key: str, expect: Version, ctx: Context, idempotency_key: str | None = None
    ) -> Annotated[CallToolResult, DeleteOut]:
        """Delete `key` only if it is still at version `expect` (the version you read).
        The version moves on: a later create (expect=0) continues from it. On a Conflict
        nothing was deleted; read the key again and decide. `idempotency_key` as for
        write."""

        def body(session: Session, idem: str | None) -> DeleteOut:
            version = session.delete(key, expect=expect, idempotency_key=idem)
            return DeleteOut(key=key, version=version)

        arguments = {"key": key, "expect": expect}
        return self.mutate("delete", ctx, arguments, idempotency_key, body)

    # --- leases ----------------------------------------------------------------

    def lease_acquire(
        self,
        key: str,
        ctx: Context,
        ttl: float = 30,
        wait: float = 10,
        mode: Literal["exclusive", "shared"] = "exclusive",
        idempotency_key: str | None = None,
    ) -> Annotated[CallToolResult, LeaseOut]:
        """Take the lease on `key` for long work: while you hold it (exclusive mode),
        writes under its token are yours alone. Waits up to `wait` seconds in line (at most
        55; call again to wait longer). The lease is yours until you release it or it
        lapses `ttl` seconds after it was granted or last renewed: renew it while you work
        and release it when done. Write with write_leased and the token. Leases are not
        re-entrant: if you already hold it, use your token (lease_status shows it).
        mode='shared' is for readers that want no writer meanwhile. Pass an
        `idempotency_key` to make a retry after a timeout safe: a repeat returns the first
        result (the same lease) and takes nothing again."""

        def body(session: Session, idem: str | None) -> LeaseOut:
            from accord.strategies import lease as lease_mod

            granted = lease_mod.acquire(session, key, ttl=ttl, wait=_check_wait(wait), mode=mode)
            return _lease_out(granted)

        def recover(session: Session, since: int) -> LeaseOut | None:
            # The first attempt was granted a lease after its claim: while that
            # lease is live it is the answer (a second one would queue behind it).
            held = _recover.lease_acquired(session, key, since, mode)
            return _lease_out(held) if held is not None else None

        arguments = {"key": key, "ttl": ttl, "wait": wait, "mode": mode}
        hold = min(max(wait, 0.0), MAX_WAIT) if math.isfinite(wait) else 0.0
        return self.mutate("lease_acquire", ctx, arguments, idempotency_key, body,
                           recover=recover, hold=hold)

    def lease_renew(
        self,
        key: str,
        token: Token,
        ctx: Context,
        ttl: float | None = None,
        idempotency_key: str | None = None,
    ) -> Annotated[CallToolResult, LeaseOut]:
        """Extend your lease `token` on `key` to `ttl` seconds from now (default: the TTL
        it was granted with). A lease that already lapsed cannot be renewed (someone else
        may hold the key now): re-read the key and acquire a new lease.
        `idempotency_key` as for lease_acquire: a repeat returns the first result and
        renews nothing again."""

        def body(session: Session, idem: str | None) -> LeaseOut:
            from accord.strategies import lease as lease_mod

            held = lease_mod.from_token(session, key, token)
            held.renew(ttl)
            return _lease_out(held)

        def recover(session: Session, since: int) -> LeaseOut | None:
            # Renewed by the first attempt: answer with the lease as it is, and
            # the TTL that renewal gave it.
            held = _recover.lease_renewed(session, key, token, since)
            return _lease_out(held) if held is not None else None

        arguments = {"key": key, "token": token, "ttl": ttl}
        return self.mutate("lease_renew", ctx, arguments, idempotency_key, body,
                           recover=recover)

    def lease_release(
        self, key: str, token: Token, ctx: Context, idempotency_key: str | None = None
    ) -> Annotated[CallToolResult, ReleaseOut]:
        """Release your lease `token` on `key` when your work is done, so that the next
        agent in line gets it at once instead of after the TTL. `idempotency_key` as for
        lease_acquire: a repeat returns the first result."""

        def body(session: Session, idem: str | None) -> ReleaseOut:
            from accord.strategies import lease as lease_mod

            lease_mod.from_token(session, key, token).release()
            return ReleaseOut(key=key, token=token)

        def recover(session: Session, since: int) -> ReleaseOut | None:
            if _recover.lease_released(session, key, token, since):
                return ReleaseOut(key=key, token=token)
            return None

        arguments = {"key": key, "token": token}
        return self.mutate("lease_release", ctx, arguments, idempotency_key, body,
                           recover=recover)

    def lease_status(self, key: str, ctx: Context) -> Annotated[CallToolResult, LeaseStatusOut]:
        """Who holds the lease on `key` (agents, tokens, deadlines) and who waits for it,
        in line order. Use it to find your own token again after a lost answer."""

        def body(session: Session) -> LeaseStatusOut:
            from accord.strategies import lease as lease_mod

            info = lease_mod.status(self.store, key)

            def out(i: Any) -> LeaseHolderOut:
                return LeaseHolderOut(
                    agent=i.agent,
                    mode=i.mode,
                    state=i.state,
                    token=i.token,
                    position=i.position,
                    expires=_now_iso(i.expires) if i.expires is not None else None,
                )

            return LeaseStatusOut(
                key=key,
                holders=[out(h) for h in info.holders],
                waiters=[out(w) for w in info.waiters],
                last_token=info.last_token,
            )

        return self.run("lease_status", ctx, body)

    def write_leased(
        self,
        key: str,
        value: str,
        token: Token,
        ctx: Context,
        kind: Kind = "text",
        idempotency_key: str | None = None,
    ) -> Annotated[CallToolResult, WriteOut]:
        """Write `value` to `key` under your lease `token`. The store accepts it only
        while that lease is the key's live lease; if it lapsed or was superseded the write
        is Fenced and nothing is written: stop, re-read the key, acquire a new lease and
        redo the work. `value`, `kind` and `idempotency_key` as for write."""

        def body(session: Session, idem: str | None) -> WriteOut:
            stored = _value(value, kind)
            doc = session.write(key, stored, lease=token, idempotency_key=idem)
            return _write_out(doc)

        arguments = {"key": key, "value": value, "token": token, "kind": kind}
        return self.mutate("write_leased", ctx, arguments, idempotency_key, body)

    # --- queue -----------------------------------------------------------------

    def submit(
        self,
        key: str,
        change: str,
        ctx: Context,
        kind: Kind = "text",
        idempotency_key: str | None = None,
    ) -> Annotated[CallToolResult, RequestOut]:
        """Submit a change request for `key` to its writer (on queue keys you may not
        write yourself). `change` says what you want changed, in words or data the writer
        understands (`kind` as for write). Returns the request id: request_status tells
        you the writer's decision. An `idempotency_key` makes a resubmission safe."""

        def body(session: Session, idem: str | None) -> RequestOut:
            stored = _value(change, kind, "change")
            return _request_out(session.submit(key, stored, idempotency_key=idem))

        arguments = {"key": key, "change": change, "kind": kind}
        return self.mutate("submit", ctx, arguments, idempotency_key, body)

    def request_status(
        self, request_id: str, ctx: Context, wait: float = 0
    ) -> Annotated[CallToolResult, RequestOut]:
        """The status of change request `request_id`: pending, accepted (with the
        version written) or rejected (with the writer's reason). With `wait` > 0, wait up
        to that many seconds (at most 55) for the decision."""

        def body(session: Session) -> RequestOut:
            from accord.strategies import queue

            if wait < 0:
                raise UsageError(f"wait must be 0 or more seconds, not {wait:g}.")
            request = queue.get_request(self.store, request_id)
            if request.pending and wait > 0:
                try:
                    request = request.wait(timeout=_check_wait(wait))
                except Timeout as exc:
                    return _request_out(request.refresh(), exc.render("mcp"))
            return _request_out(request)

        return self.run("request_status", ctx, body)

    def requests(self, key: str, ctx: Context) -> Annotated[CallToolResult, RequestsOut]:
        """For the writer of the queue key `key`: its pending change requests, oldest
        first, with the key's current value and version. Decide them in that order with
        accept (write the new value, with expect=current_version) or reject (with a
        reason). Calling this claims the writer role of the key if nobody holds it."""

        def body(session: Session) -> RequestsOut:
            from accord.strategies import queue

            session.requests(key, timeout=0)  # claims the role (NotWriter if another holds it)
            pending = queue.pending(self.store, key)
            try:
                current = session.read(key)
                version: int = current.version
                kind, value = to_wire(current.value)
            except NotFound:
                version, kind, value = 0, None, None
            return RequestsOut(
                key=key,
                writer=session.agent,
                current_version=version,
                current_value=value,
                current_kind=kind,
                requests=[_request_out(r) for r in pending],
            )

        return self.run("requests", ctx, body)

    def accept(
        self,
        key: str,
        request_id: str,
        value: str,
        expect: Version,
        ctx: Context,
        kind: Kind = "text",
        idempotency_key: str | None = None,
    ) -> Annotated[CallToolResult, RequestOut]:
        """As the writer of `key`: accept the change request `request_id` by writing
        `value` (the key's new value, with the change applied) if the key is still at
        version `expect`. The write and the decision commit together, exactly once.
        `kind` and `idempotency_key` as for write."""

        def body(session: Session, idem: str | None) -> RequestOut:
            request = self._request_of(key, request_id)
            stored = _value(value, kind)
            return _request_out(session.accept(request, stored, expect=expect))

        def recover(session: Session, since: int) -> RequestOut | None:
            # Accepted by this agent with this value on top of `expect`: that is
            # the first attempt's decision (a request is decided once).
            request = _recover.accepted(session, self._request_of(key, request_id),
                                        _value(value, kind), expect)
            return _request_out(request) if request is not None else None

        arguments = {"key": key, "request_id": request_id, "value": value, "expect": expect,
                     "kind": kind}
        return self.mutate("accept", ctx, arguments, idempotency_key, body, recover=recover)

    def reject(
        self,
        key: str,
        request_id: str,
        reason: str,
        ctx: Context,
        idempotency_key: str | None = None,
    ) -> Annotated[CallToolResult, RequestOut]:
        """As the writer of `key`: reject the change request `request_id` with a
        `reason` the submitter can act on. Nothing is written. `idempotency_key` as for
        write: a repeat returns the first result and decides nothing again."""

        def body(session: Session, idem: str | None) -> RequestOut:
            return _request_out(session.reject(self._request_of(key, request_id), reason))

        def recover(session: Session, since: int) -> RequestOut | None:
            request = _recover.rejected(session, self._request_of(key, request_id), reason)
            return _request_out(request) if request is not None else None

        arguments = {"key": key, "request_id": request_id, "reason": reason}
        return self.mutate("reject", ctx, arguments, idempotency_key, body, recover=recover)

    def _request_of(self, key: str, request_id: str) -> Request:
        from accord.strategies import queue

        validate_key(key)
        request = queue.get_request(self.store, request_id)
        if request.key != key:
            raise UsageError(
                f"Request {request_id} is a request for {request.key}, not {key}; nothing was "
                f"changed. Decide it with key={request.key!r}.",
                key=key,
                request=request_id,
            )
        return request

    # --- branches --------------------------------------------------------------

    def fork(
        self, key: str, ctx: Context, idempotency_key: str | None = None
    ) -> Annotated[CallToolResult, BranchOut]:
        """Fork `key`: a private copy (a branch) based on its current version, for work
        that should neither see nor disturb the others'. Write it with branch_write; the
        branches of one base are merged at the end with merge. Pass an `idempotency_key`
        to make a retry after a timeout safe: a repeat returns the first result (the same
        branch) and forks nothing again."""

        def body(session: Session, idem: str | None) -> BranchOut:
            branch = session.fork(key)
            return self._branch_out(branch)

        def recover(session: Session, since: int) -> BranchOut | None:
            branch = _recover.forked(session, key, since)
            return self._branch_out(branch) if branch is not None else None

        return self.mutate("fork", ctx, {"key": key}, idempotency_key, body, recover=recover)

    def branch_read(
        self, key: str, branch_id: str, ctx: Context
    ) -> Annotated[CallToolResult, BranchOut]:
        """Read the branch `branch_id` of `key`: its value, its agent and the version it
        was forked from (anyone may read a branch; only its agent writes it)."""

        def body(session: Session) -> BranchOut:
            from accord.strategies.branch import get_branch

            return self._branch_out(get_branch(self.store, key, branch_id))

        return self.run("branch_read", ctx, body)

    def branch_write(
        self,
        key: str,
        branch_id: str,
        value: str,
        ctx: Context,
        kind: Kind = "text",
        idempotency_key: str | None = None,
    ) -> Annotated[CallToolResult, BranchOut]:
        """Replace the value of your branch `branch_id` of `key` (from fork). Only the
        branch changes; the key changes when the branches are merged. The value must be of
        the key's kind (text stays text, JSON stays JSON). `idempotency_key` as for
        write."""

        def body(session: Session, idem: str | None) -> BranchOut:
            branch = session.branch(key, branch_id)
            branch.write(_value(value, kind))
            return self._branch_out(branch)

        def recover(session: Session, since: int) -> BranchOut | None:
            found = _recover.branch_written(session, key, branch_id, _value(value, kind), since)
            if isinstance(found, _recover.Overwritten):
                # Writing again would erase this agent's later write.
                raise found.error("branch_read", "idempotency_key")
            return self._branch_out(found) if found is not None else None

        arguments = {"key": key, "branch_id": branch_id, "value": value, "kind": kind}
        return self.mutate("branch_write", ctx, arguments, idempotency_key, body,
                           recover=recover)

    def _branch_out(self, branch: Any) -> BranchOut:
        kind, wire = to_wire(branch.read())
        return BranchOut(
            branch_id=branch.id,
            key=branch.key,
            agent=branch.agent,
            base_version=branch.base_version,
            kind=kind,
            value=wire,
            status=branch.status,
        )

    def merge(
        self,
        key: str,
        ctx: Context,
        branch_ids: list[str] | None = None,
        prefer: str | None = None,
        resolutions: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Annotated[CallToolResult, MergeOut]:
        """Merge the branches `branch_ids` of `key` (default: every open branch)
        three-way against their base and, when no conflict is left, write the result
        (committed=true). Otherwise nothing is written and the conflicts are listed, each
        with where it is, the base and every side (a branch id, or 'current' for the key's
        value if it moved). Settle them by merging again with resolutions={where: side}
        (or prefer=side for all of them), or by editing the branches so that they agree.
        Pass an `idempotency_key` to make a retry after a timeout safe: a repeat of a
        committed merge returns the first result and writes nothing again (a merge that
        left conflicts wrote nothing and is not remembered)."""

        def body(session: Session, idem: str | None) -> MergeOut:
            merged, doc = merge_branches(session, key, branch_ids, prefer, resolutions)
            kind, wire = to_wire(merged.value)
            return MergeOut(
                key=key,
                committed=doc is not None,
                clean=merged.clean,
                version=doc.version if doc is not None else None,
                value=wire,
                kind=kind,
                base_version=merged.base_version,
                current_version=merged.current_version,
                branches=list(merged.branch_ids),
                conflicts=[_plain(c.to_dict()) for c in merged.conflicts],
                resolved=len(merged.resolved),
                message=merged.report()
                + ("" if doc is None else f" Committed as version {doc.version}."),
            )

        def recover(session: Session, since: int) -> MergeOut | None:
            found = _recover.merged(session, key, since, branch_ids)
            if found is None:
                return None
            kind, wire = _recover.merged_value(found)
            return MergeOut(
                key=key,
                committed=True,
                clean=True,
                version=found.version,
                value=wire,
                kind=kind,
                base_version=found.base_version,
                current_version=found.current_version,
                branches=found.branches,
                conflicts=[],
                resolved=0,
                message=found.message(),
            )

        arguments = {"key": key, "branch_ids": branch_ids, "prefer": prefer,
                     "resolutions": resolutions}
        return self.mutate("merge", ctx, arguments, idempotency_key, body, recover=recover,
                           keep=lambda out: bool(out.committed))

    # --- history, checker, plan ------------------------------------------------

    def log(
        self, ctx: Context, key: str | None = None, limit: int = 50
    ) -> Annotated[CallToolResult, LogOut]:
        """The latest `limit` history events (of `key`, or of the whole store), oldest
        first: who wrote, leased, submitted or merged what, with versions and outcomes."""

        def body(session: Session) -> LogOut:
            most = _check_limit(limit, _MAX_LOG)
            if key is not None:
                validate_key(key)
            events: deque[dict[str, Any]] = deque(maxlen=most)
            for event in self.store.history(key=key):
                events.append(_plain(event.to_dict()))
            return LogOut(key=key, count=len(events), events=list(events))

        return self.run("log", ctx, body)

    def check(self, ctx: Context) -> Annotated[CallToolResult, CheckOut]:
        """Run the race detector on this store's history: lost updates, racing writes,
        writes accepted under a lapsed lease, duplicates. A clean verdict means none."""

        def body(session: Session) -> CheckOut:
            from accord.history import check

            result = check(self.store)
            return CheckOut(
                verdict=result.verdict,
                summary=result.summary(),
                report=_plain(result.to_dict("mcp")),
            )

        return self.run("check", ctx, body)

    def plan(self, ctx: Context) -> Annotated[CallToolResult, PlanOut]:
        """The manifest this server enforces, as the plan's table: every shared resource,
        who reads and writes it, its access class and its strategy."""

        def body(session: Session) -> PlanOut:
            policy = self.store.policy
            if policy is None:
                return PlanOut(
                    manifest=None,
                    message="This server runs without a manifest: no resource has a declared "
                    "strategy, and every key follows the store's defaults (write with expect).",
                )
            from accord.plan import make_plan

            manifest = policy.manifest
            table = make_plan(manifest, source=manifest.name)
            return PlanOut(
                manifest=manifest.name,
                ok=table.ok,
                plan=_plain(table.to_json()),
                message=f"{len(table.rows)} resources in {manifest.name}.",
            )

        return self.run("plan", ctx, body)

    def whoami(self, ctx: Context) -> Annotated[CallToolResult, WhoAmIOut]:
        """Who this server takes you for (your agent name), and how you are connected."""

        def body(session: Session) -> WhoAmIOut:
            policy = self.store.policy
            return WhoAmIOut(
                agent=session.agent,
                transport=self.transport,
                manifest=policy.manifest.name if policy is not None else None,
            )

        return self.run("whoami", ctx, body)


class _AccordServer(MCPServer):
    """MCPServer whose refusals of malformed arguments say what to send instead."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context | None = None
    ) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc, UnexpectedToolError):
                raise
            tool = self._tool_manager.get_tool(name)
            if tool is None:
                names = ", ".join(t.name for t in self._tool_manager.list_tools())
                return _usage_result(f"There is no tool {name!r} on this server. The tools are: "
                                     f"{names}.")
            if isinstance(exc.__cause__, ValidationError):
                return _usage_result(_bad_arguments(name, tool.parameters, exc.__cause__))
            raise


def _usage_result(message: str, **fields: Any) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=message)],
        structured_content={"error": "UsageError", "message": message, **fields},
        is_error=True,
    )


def _bad_arguments(tool: str, schema: dict[str, Any], error: ValidationError) -> str:
    problems = []
    for item in error.errors()[:8]:
        where = ".".join(str(part) for part in item["loc"]) or "arguments"
        shown = repr(item.get("input"))
        if len(shown) > 60:
            shown = shown[:57] + "..."
        problems.append(f"{where}: {item['msg']} (got {shown})")
    required = set(schema.get("required", []))
    params = []
    for pname, spec in schema.get("properties", {}).items():
        types = [spec.get("type")] if "type" in spec else [
            s.get("type") for s in spec.get("anyOf", []) if s.get("type") != "null"
        ]
        if "enum" in spec:
            types = [" | ".join(repr(v) for v in spec["enum"])]
        label = f"{pname} ({'/'.join(t for t in types if t) or 'any'})"
        params.append(label if pname in required else label + " optional")
    return (
        f"Bad arguments for {tool}, nothing was done: " + "; ".join(problems) + ". "
        f"{tool} takes: " + ", ".join(params) + "."
    )


_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "ToolError",
    "description": "A refused call (isError true): the error's class, its message (what "
    "happened and what to do next), and the error's own fields (key, expected, current, "
    "writers, diff, token, holder, ...).",
    "properties": {
        "error": {"type": "string", "description": "The accord error class, e.g. Conflict."},
        "message": {"type": "string"},
    },
    "required": ["error", "message"],
}


def _with_errors(success: dict[str, Any] | None) -> dict[str, Any]:
    """An output schema that admits the success result or the error result.

    Clients (the TypeScript SDK among them) check ``structuredContent`` against the
    output schema on errors too; an error's fields must not make its result invalid.
    """
    assert success is not None
    success = dict(success)
    defs = dict(success.pop("$defs", {}))
    defs["ToolError"] = _ERROR_SCHEMA
    return {
        "type": "object",
        "title": success.get("title", "Result"),
        "anyOf": [success, {"$ref": "#/$defs/ToolError"}],
        "$defs": defs,
    }


def _offers_owned_writes(store: Store) -> bool:
    """True when the manifest gives some key to one agent alone (owner or queue writer)."""
    policy = store.policy
    if policy is None:
        return False
    return any(
        policy.writer_for(resource.key) is not None for resource in policy.manifest.resources
    )


def build_server(
    store: Store,
    *,
    agent: str | None = None,
    identity: Identity | None = None,
    transport: str = "stdio",
    token_verifier: TokenVerifier | None = None,
    auth: AuthSettings | None = None,
) -> MCPServer:
    """The accord MCP server over ``store``, its tools acting as the calling agent.

    Give exactly one of ``agent`` (every call acts as this agent: stdio, or
    tests in process) or ``identity`` (a function of the request context
    that returns the agent: streamable HTTP, see
    :func:`accord.mcp.auth.token_identity`, with ``token_verifier`` and
    ``auth`` for the SDK's bearer middleware). The store's manifest, if it
    was opened with one, is enforced for every call. The caller keeps
    ownership of ``store`` and must close it after the server stops.
    """
    if (agent is None) == (identity is None):
        raise UsageError("build_server() takes either agent= or identity=, and one of them.")
    if agent is not None:
        store.session(agent)  # an invalid or undeclared name fails now, not on every call
        fixed = agent

        def identity(ctx: Context) -> str:
            return fixed

    assert identity is not None
    from accord import __version__

    tools = _Tools(store, identity, transport)
    reading = {"read_only": True, "idempotent": True}
    specs: list[tuple[str, Callable[..., Any], ToolAnnotations]] = [
        ("read", tools.read, _annotations("Read a key", **reading)),
        ("list", tools.list_keys, _annotations("List keys", **reading)),
        ("write", tools.write, _annotations("Write a key (with expect)", destructive=True)),
        ("delete", tools.delete, _annotations("Delete a key (with expect)", destructive=True)),
        ("lease_acquire", tools.lease_acquire, _annotations("Acquire a lease")),
        ("lease_renew", tools.lease_renew, _annotations("Renew a lease", idempotent=True)),
        ("lease_release", tools.lease_release, _annotations("Release a lease")),
        ("lease_status", tools.lease_status, _annotations("Lease holders", **reading)),
        ("write_leased", tools.write_leased,
         _annotations("Write under a lease", destructive=True)),
        ("submit", tools.submit, _annotations("Submit a change request")),
        ("request_status", tools.request_status, _annotations("Request status", **reading)),
        ("requests", tools.requests, _annotations("Pending requests (writer)", idempotent=True)),
        ("accept", tools.accept, _annotations("Accept a request (writer)", destructive=True)),
        ("reject", tools.reject, _annotations("Reject a request (writer)")),
        ("fork", tools.fork, _annotations("Fork a key into a branch")),
        ("branch_read", tools.branch_read, _annotations("Read a branch", **reading)),
        ("branch_write", tools.branch_write,
         _annotations("Write your branch", destructive=True)),
        ("merge", tools.merge, _annotations("Merge branches", destructive=True)),
        ("log", tools.log, _annotations("History", **reading)),
        ("check", tools.check, _annotations("Race detector", **reading)),
        ("plan", tools.plan, _annotations("Manifest plan", **reading)),
        ("whoami", tools.whoami, _annotations("Who am I", **reading)),
    ]
    if _offers_owned_writes(store):
        specs.insert(
            3,
            ("write_owned", tools.write_owned,
             _annotations("Write a key you own (no expect)", destructive=True)),
        )
    registered = []
    for name, fn, hints in specs:
        tool = Tool.from_function(
            fn, name=name, description=inspect.cleandoc(fn.__doc__ or ""), annotations=hints
        )
        # Results are validated against the success model on the server; clients see a
        # schema that also admits the error shape (see _with_errors).
        tool.fn_metadata.output_schema = _with_errors(tool.fn_metadata.output_schema)
        tool.__dict__.pop("output_schema", None)
        registered.append(tool)
    return _AccordServer(
        "accord",
        title="accord shared state",
        version=__version__,
        instructions=_INSTRUCTIONS,
        log_level="WARNING",
        token_verifier=token_verifier,
        auth=auth,
        tools=registered,
    )
