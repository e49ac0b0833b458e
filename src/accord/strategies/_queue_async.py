"""The single writer with a queue: change requests applied in order, exactly once.

Agents that must not write a key themselves *submit* change requests; one
writer reads them oldest first and decides each: ``accept`` (write the new
value) or ``reject`` (with a reason). Everything is a record in the store,
written through the one atomic primitive:

``.accord/queue/<key>/writer``
    The writer role, held like a lease: ``{"agent", "epoch", "deadline"}``
    with ``author`` = the writer. The deadline is on the store's clock and is
    renewed while the writer works. When it passes, another agent may take
    the role over (the epoch moves on). The record is never expired by the
    backend: while it exists, every direct write to the key by anyone but
    the role's holder is refused with :class:`NotWriter` (see :func:`guard`),
    also when the writer is dead and nobody has taken over yet.
``.accord/queue/<key>/pending/<id>``
    One record per pending request, created by ``submit`` and removed by the
    decision. Its store revision is the submission order: revisions are
    assigned at commit and strictly increase, so "oldest first" is "lowest
    revision first", with no shared counter for submitters to fight over.
``.accord/request/<id>``
    The request itself (status, outcome), so ``AsyncRequest.wait`` and the CLI
    find a request by id alone.

Exactly once: ``accept`` writes the key, removes the pending record and
marks the request accepted in ONE transaction, guarded by three compares:
the role is held by this agent (a writer that lost its role is fenced), the
request is still pending (nothing is decided twice), and the key is at the
version the writer read (the version check done for it). A writer that
crashes between reading a request and deciding it leaves it pending; the
next writer finds it first in line.

The rules without I/O (records, the role's state, the guard, the group
decision, the errors) are in :mod:`accord._core.queue`; this module reads
and writes the store around them. Every time is the store's
(``backend.now()``) and every wait the store's (``backend.wait``), so a
simulated clock governs the queue too.
"""

from __future__ import annotations

import contextlib
import threading  # noqa: F401, RUF100 (the sync face's stop=)
import uuid
from collections import deque
from collections.abc import AsyncGenerator, Callable, Generator  # noqa: F401, RUF100
from dataclasses import dataclass, field, replace
from typing import Any

from .. import params
from .._core._faces_async import AsyncSessionLike, AsyncStoreLike
from .._core.queue import (
    DEFAULT_ROLE_TTL,
    ROLES,
    Reject,
    RequestView,
    Role,
    check_reason,
    check_request,
    check_request_id,
    check_role_ttl,
    check_serve_args,
    check_stop,
    decided_already,
    encode_change,
    fenced,
    fingerprint,
    guard,
    guard_refusal,
    held_by_other,
    json_bytes,
    kept_conflicting,
    not_attached,
    not_writer,
    oldest_first,
    out_of_order,
    pending_key,
    pending_prefix,
    plain_fields,
    plan_group,
    policy_writer,
    request_fields,
    request_id_for,
    request_key,
    role_key,
    still_pending,
    stored_dict,
    stored_value,
    undecided,
    unread_key,
    wrong_key,
)
from .._core.write import make_event
from ..clock import encode_clock
from ..errors import (
    AccordError,
    IdempotencyMismatch,
    NotFound,
    PreconditionFailed,
    call,
    var,
)
from ..keys import validate_key
from ..records import Append, Compare, Delete, Doc, Put, Record, TxnResult, Value
from ._writer_role_async import claim, release, renew, retire, writer_of

__all__ = [
    "DEFAULT_ROLE_TTL",
    "AsyncRequest",
    "Reject",
    "accept",
    "explain",
    "get_request",
    "guard",
    "install",
    "pending",
    "pending_prefix",
    "reject",
    "release",
    "request_key",
    "requests",
    "retire",
    "role_key",
    "serve",
    "submit",
    "writer_of",
]

if True:  # ASYNC
    WAIT_CHUNK = 1.0
    """Longest one wait of :meth:`AsyncRequest.wait` lasts on the store: on
    SQLite (a wait holds a worker thread of the store's pool) a cancelled wait
    frees its worker within this many seconds."""


if True:  # ASYNC
    # An AsyncRequest is a Request (the sync face's class, which this module
    # generates): the same fields, equal to it, pickled as it.
    from .queue import Request as RequestBase
else:
    from .._core.queue import RequestView as RequestBase


@dataclass(frozen=True, slots=True, eq=False)
class AsyncRequest(RequestBase):
    """A change request for ``key``, as submitted and as decided.

    ``status`` is ``"pending"``, ``"accepted"`` or ``"rejected"``.
    ``outcome`` is the written :class:`Doc` when accepted, the writer's
    reason (str) when rejected, None while pending. ``seq`` is the store
    revision of the submission: requests are decided in ``seq`` order.
    ``base`` is set on requests handed out by :func:`requests`: the key's
    document as the writer read it just before (None if the key is absent);
    ``accept`` writes against its version, ``base_version`` (0 when the
    key was absent). A request of either face equals the other face's
    request with the same fields.
    """

    id: str
    key: str
    change: Any
    submitter: str
    status: str = "pending"
    outcome: Doc | str | None = None
    decided_by: str | None = None
    seq: int = 0
    idempotency_key: str | None = None
    base: Doc | None = field(default=None, compare=False)
    base_version: int | None = field(default=None, compare=False)
    _store: Any = field(default=None, repr=False, compare=False)
    """The store the request came from (None once it crossed a process)."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Requests cross process boundaries (a result queue, a pool); the
        # store they came from does not: re-attach with get_request().
        if True:  # ASYNC
            return (RequestBase, plain_fields(self))
        else:
            return (AsyncRequest, plain_fields(self))

    if True:  # ASYNC

        async def refresh(self) -> AsyncRequest:  # type: ignore[override]
            """This request as the store has it now (a new object)."""
            return await _refresh(self)

        async def wait(self, timeout: float = 30) -> AsyncRequest:  # type: ignore[override]
            """Wait until the writer decides; return the decided request.

            Raises :class:`Timeout` if nothing was decided within ``timeout``
            seconds of the store's clock (the request stays pending).
            Cancelling the wait changes nothing in the store; on SQLite its
            worker thread is free within a second.
            """
            return await _wait(self, timeout)

    else:

        def refresh(self) -> AsyncRequest:
            """This request as the store has it now (a new object)."""
            return _refresh(self)

        def wait(self, timeout: float = 30) -> AsyncRequest:
            """Block until the writer decides; return the decided Request.

            ``status`` is then ``"accepted"`` with the written :class:`Doc` as
            ``outcome``, or ``"rejected"`` with the reason. Raises
            :class:`Timeout` if nothing was decided within ``timeout`` seconds
            of the store's clock (the request stays pending; wait again or
            give up).
            """
            return _wait(self, timeout)


async def _refresh(request: AsyncRequest) -> AsyncRequest:
    if request._store is None:
        raise not_attached()
    return await get_request(request._store, request.id)


async def _wait(request: AsyncRequest, timeout: float) -> AsyncRequest:
    if request._store is None:
        raise not_attached()
    timeout = params.seconds(timeout, "timeout", example="30")
    store: AsyncStoreLike = request._store
    backend = store.backend
    rkey = request_key(request.id)
    deadline: float | None = None
    while True:
        since = await backend.revision()
        current = await get_request(store, request.id)
        if not current.pending:
            return current
        now = await backend.now()
        if deadline is None:
            deadline = now + timeout
        left = deadline - now
        if left <= 0:
            raise still_pending(request, timeout)
        if True:  # ASYNC
            left = min(left, WAIT_CHUNK)
        await backend.wait([rkey], [], since, left)


def _request(
    store: AsyncStoreLike,
    data: dict[str, Any],
    *,
    seq: int | None = None,
    base: Doc | None = None,
    base_version: int | None = None,
) -> AsyncRequest:
    fields = request_fields(data, seq=seq, base=base, base_version=base_version)
    return AsyncRequest(**fields, _store=store)


# --- the guard on direct writes -----------------------------------------------------


async def explain(
    session: AsyncSessionLike, key: str, token: int | None, result: TxnResult
) -> None:
    """Raise :class:`NotWriter` when :func:`guard`'s compare is what refused a write."""
    error = guard_refusal(policy_writer(session.store, key), key, session.agent, result)
    if error is not None:
        raise error


def install(store: Any) -> None:
    """Install the NotWriter guard on ``store`` (``AsyncStore`` does this by default)."""
    store.add_guard(guard, explain)


# --- submitting ----------------------------------------------------------------------


async def submit(
    session: AsyncSessionLike, key: str, change: Any, *, idempotency_key: str | None = None
) -> AsyncRequest:
    """Store a change request for ``key`` durably and return it (status pending).

    ``change`` is any value accord can store (text, JSON data or bytes); its
    meaning is between the submitter and the writer. With
    ``idempotency_key`` a repeated submit returns the first request and adds
    nothing; reusing the key for a different change raises
    :class:`IdempotencyMismatch`. Call ``request.wait(timeout=)`` for the
    writer's decision.
    """
    validate_key(key)
    store = session.store
    change_kind, stored_change, raw = encode_change(change)
    if len(raw) > store.max_value_size:
        store.writes.encode(key, change)  # raises ValueTooLarge with the usual message
    await store.writes.intercept(
        session, "submit", key, change=change, idempotency_key=idempotency_key
    )
    digest = fingerprint(key, change_kind, raw)
    request_id = request_id_for(key, idempotency_key, uuid.uuid4().hex)
    data = {
        "id": request_id,
        "key": key,
        "change": stored_change,
        "change_kind": change_kind,
        "submitter": session.agent,
        "status": "pending",
        "idem": idempotency_key,
        "fingerprint": digest,
    }
    lamport, vector = await session._tick()
    clock_text = encode_clock(vector)
    event = make_event(
        session.agent,
        "submit",
        key,
        lamport,
        vector,
        check="queue",
        based_on=session.seen_version(key),
        idem=idempotency_key,
        request=request_id,
    )
    body = json_bytes(data)
    rkey = request_key(request_id)
    pkey = pending_key(key, request_id)
    result = await store.backend.txn(
        [Compare(rkey, "version", "==", 0)],
        [
            Put(pkey, "json", body, session.agent, lamport, clock_text),
            Put(rkey, "json", body, session.agent, lamport, clock_text),
            Append(event),
        ],
    )
    if result.succeeded:
        rec = result.records[pkey]
        seq = rec.revision if rec is not None else result.revision
        return _request(store, data, seq=seq)
    existing = result.records.get(rkey)
    assert existing is not None
    first = existing.value
    if first.get("fingerprint") != digest:
        raise IdempotencyMismatch(
            f"Idempotency key {idempotency_key!r} was first used for a different change "
            f"request on {key} (request {request_id}). A replay must repeat the same change; "
            "use a new idempotency key for a new change.",
            idempotency_key=idempotency_key,
            request=request_id,
        )
    return await get_request(store, request_id)


async def get_request(store: AsyncStoreLike, request_id: str) -> AsyncRequest:
    """The request with this id as the store has it now; :class:`NotFound` if none."""
    check_request_id(request_id)
    backend = store.backend
    rec = await backend.get(request_key(request_id))
    if rec is None or rec.deleted:
        raise NotFound(
            f"No request {request_id} in this store. List the pending requests of a key "
            f"with {call('session.requests', var('key'))}.",
            request=request_id,
        )
    data = rec.value
    if data["status"] == "pending":
        waiting = await backend.get(pending_key(data["key"], request_id))
        seq = waiting.revision if waiting is not None else 0
        return _request(store, data, seq=seq)
    request = _request(store, data)
    if request.accepted and isinstance(request.outcome, Doc) and not request.outcome.revision:
        outcome = await _with_revision(store, request.outcome, request.id)
        request = replace(request, outcome=outcome)
    return request


async def _with_revision(store: AsyncStoreLike, doc: Doc, request_id: str) -> Doc:
    # The request record is written in the same transaction as the accepted
    # value but cannot name that transaction's revision; find it.
    rec = await store.backend.get(doc.key)
    if rec is not None and rec.version == doc.version:
        return replace(doc, revision=rec.revision)
    async for ev in store.backend.history(key=doc.key):
        if ev.get("request") == request_id and ev.get("op") == "accept":
            return replace(doc, revision=ev["rev"])
    return doc


# --- reading requests (the writer) ---------------------------------------------------


async def _pending(store: AsyncStoreLike, key: str) -> list[Record]:
    prefix = pending_prefix(key)
    return oldest_first(await store.backend.scan(prefix), prefix)


async def pending(store: AsyncStoreLike, key: str) -> list[AsyncRequest]:
    """The pending requests of ``key``, oldest first, without claiming anything.

    A snapshot for people and tools (the CLI lists it); a writer uses
    :func:`requests`, which hands them out one at a time.
    """
    validate_key(key)
    return [_request(store, rec.value, seq=rec.revision) for rec in await _pending(store, key)]


async def requests(
    session: AsyncSessionLike,
    key: str,
    *,
    timeout: float = 5,
    ttl: float = DEFAULT_ROLE_TTL,
    role_wait: float = 0,
    stop: threading.Event | None = None,
) -> AsyncGenerator[AsyncRequest, None]:
    """Claim the writer role of ``key`` and iterate its pending requests, oldest first.

    The role is claimed now (not at the first ``next``): :class:`NotWriter`
    if another agent holds it (``role_wait`` seconds to wait for a dead
    writer's role to lapse) or the manifest names another writer. Each
    request is handed out after reading the key (``request.base``), so
    ``accept`` writes against that version. The caller *must* decide each
    request (``accept`` or ``reject``) before taking the next one; a request
    left undecided raises :class:`UsageError` at the next step. The
    iteration ends after ``timeout`` seconds without a pending request (or
    when ``stop`` is set), and keeps the role, which lapses ``ttl`` seconds
    after its last renewal unless the writer serves again.
    """
    validate_key(key)
    timeout = params.seconds(timeout, "timeout", example="5")
    ttl = check_role_ttl(ttl)
    role_wait = params.seconds(role_wait, "role_wait", example="0")
    check_stop(stop)
    await session.store.writes.intercept(session, "requests", key)
    role = await claim(session, key, ttl=ttl, wait=role_wait)
    return _iterate(session, key, role, timeout, stop)


if True:  # ASYNC

    class Requests:
        """``session.requests(key)`` on the async face: pending requests, oldest first.

        ``await`` it to claim the writer role at once (the sync face claims at
        the call), or iterate it with ``async for`` (claims at the first
        step). Cancelling a step (or leaving the ``async for``) changes
        nothing in the store; the role lapses unless the writer serves again.
        """

        def __init__(self, session: AsyncSessionLike, key: str, **kwargs: Any) -> None:
            self._session = session
            self._key = key
            self._kwargs = kwargs
            self._steps: AsyncGenerator[AsyncRequest, None] | None = None

        async def _claim(self) -> Requests:
            if self._steps is None:
                self._steps = await requests(self._session, self._key, **self._kwargs)
            return self

        def __await__(self) -> Generator[Any, None, Requests]:
            return self._claim().__await__()

        def __aiter__(self) -> Requests:
            return self

        async def __anext__(self) -> AsyncRequest:
            await self._claim()
            assert self._steps is not None
            return await self._steps.__anext__()

        async def aclose(self) -> None:
            """End the iteration (what leaving an ``async for`` early does)."""
            if self._steps is not None:
                await self._steps.aclose()


async def _iterate(
    session: AsyncSessionLike,
    key: str,
    role: Role,
    timeout: float,
    stop: Any,
) -> AsyncGenerator[AsyncRequest, None]:
    store = session.store
    backend = store.backend
    prefix = pending_prefix(key)
    queue: deque[Record] = deque()
    handed: str | None = None
    idle_until = role.renewed + timeout
    since = 0
    while True:
        if stop is not None and stop.is_set():
            return
        now = await backend.now()
        await renew(session, role, now)
        if handed is not None and await backend.get(prefix + handed) is not None:
            raise undecided(key, handed)
        if not queue:
            since = await backend.revision()
            # Everything submitted after this scan commits at a higher
            # revision than everything in it, so appending later scans keeps
            # the queue in submission order.
            queue.extend(await _pending(store, key))
        while queue:
            rec = queue.popleft()
            if await backend.get(rec.key) is None:
                continue  # decided meanwhile (another process of this agent)
            session.clock.observe(rec.key, rec.lamport, rec.clock)
            try:
                base: Doc | None = await session.read(key)
            except NotFound:
                base = None
            request = _request(
                store,
                rec.value,
                seq=rec.revision,
                base=base,
                base_version=0 if base is None else base.version,
            )
            handed = request.id
            role.head = request.id
            yield request
            idle_until = await backend.now() + timeout
            break
        else:
            left = idle_until - now
            if left <= 0:
                return
            # Wake for a new submission, but also in time to renew the role.
            chunk = min(left, role.ttl / 3)
            if stop is not None:
                chunk = min(chunk, 0.1)
            await backend.wait([], [prefix], since, chunk)


# --- deciding -------------------------------------------------------------------------


async def _prepare_decision(
    session: AsyncSessionLike, request: RequestView, what: str
) -> tuple[Role, AsyncRequest]:
    check_request(request, what)
    store = session.store
    key = request.key
    stored = await get_request(store, request.id)
    if stored.key != key:
        raise wrong_key(request.id, stored.key, key)
    role = ROLES.get(session, key)
    if role is None:
        # Deciding without having called requests(): claim without waiting
        # (the CLI decides in a process of its own, as the same agent).
        role = await claim(session, key, ttl=DEFAULT_ROLE_TTL, wait=0)
    if not stored.pending:
        raise decided_already(stored, what)
    if role.head != stored.id:
        waiting = await _pending(store, key)
        if waiting and waiting[0].value["id"] != stored.id:
            raise out_of_order(key, waiting[0].value["id"], stored.id)
    return role, stored


async def accept(
    session: AsyncSessionLike,
    request: RequestView,
    new_value: Value,
    *,
    expect: int | None = None,
) -> AsyncRequest:
    """Accept ``request``: write ``new_value`` to its key and mark it accepted, atomically.

    The write carries the version check: it applies only if the key is
    still at ``expect`` (default: ``request.base_version``, the version
    ``requests()`` read for you, else the version this session last read).
    Raises :class:`Conflict` if the key moved,
    :class:`PreconditionFailed` if the request was decided already,
    :class:`Fenced` if this writer's role was taken over, :class:`NotWriter`
    if another agent is the writer, and :class:`UsageError` if an older
    request is still pending. On any error nothing was written.
    """
    role, stored = await _prepare_decision(session, request, "accept")
    store = session.store
    backend = store.backend
    key = stored.key
    kind, data = store.writes.encode(key, new_value)
    if expect is None:
        expect = request.base_version
    if expect is None:
        expect = session.seen_version(key)
        if expect is None:
            raise unread_key(key)
    else:
        params.version(expect)
    await store.writes.intercept(session, "accept", key, request=stored.id, expect=expect)
    base_version = expect
    if expect == 0:
        # A re-create continues the version chain from a tombstone.
        old = await backend.get(key)
        base_version = old.version if old is not None else 0
    version = base_version + 1
    lamport, vector = await session._tick()
    clock_text = encode_clock(vector)
    event = make_event(
        session.agent,
        "accept",
        key,
        lamport,
        vector,
        check="queue",
        based_on=expect,
        request=stored.id,
    )
    decided = stored_dict(stored)
    decided.update(
        status="accepted",
        decided_by=session.agent,
        version=version,
        value_kind=kind,
        value=stored_value(kind, data),
    )
    rkey, pkey, wkey = request_key(stored.id), pending_key(key, stored.id), role_key(key)
    # One transaction on the one write path (which adds the guards every
    # write carries: a live lease on the key refuses the accept, and the
    # queue's own guard is among them): the value, the end of the pending
    # record and the request's new status commit together or not at all. A
    # crash cannot leave a request applied but still pending (applied twice
    # later) or marked accepted but never written.
    result = await store.writes.commit(
        session,
        key,
        [
            Put(key, kind, data, session.agent, lamport, clock_text, event=event),
            Delete(pkey, purge=True),
            Put(rkey, "json", json_bytes(decided), session.agent, lamport, clock_text),
        ],
        compares=[
            Compare(wkey, "holder", "==", session.agent),
            Compare(pkey, "version", "!=", 0),
            Compare(key, "version", "==", expect),
        ],
    )
    if not result.succeeded:
        raise await _refused(session, role, stored, "accept", event, result, expect)
    ev = result.events[0]
    doc = Doc(
        key=key,
        value=new_value,
        version=ev["version"],
        revision=ev["rev"],
        author=session.agent,
        kind=kind,
        lamport=lamport,
        clock=vector,
    )
    session.seen.remember(key, doc.version, new_value)
    role.head = None
    return replace(stored, status="accepted", outcome=doc, decided_by=session.agent)


async def reject(session: AsyncSessionLike, request: RequestView, reason: str) -> AsyncRequest:
    """Reject ``request`` with ``reason`` (shown to the submitter); nothing is written.

    Refused like :func:`accept` when the request was decided already, the
    role was lost, or an older request is still pending.
    """
    check_reason(reason)
    role, stored = await _prepare_decision(session, request, "reject")
    store = session.store
    key = stored.key
    await store.writes.intercept(session, "reject", key, request=stored.id)
    lamport, vector = await session._tick()
    clock_text = encode_clock(vector)
    event = make_event(
        session.agent,
        "reject",
        key,
        lamport,
        vector,
        check="queue",
        based_on=session.seen_version(key),
        request=stored.id,
        outcome="rejected",
    )
    decided = stored_dict(stored)
    decided.update(status="rejected", decided_by=session.agent, reason=reason)
    rkey, pkey, wkey = request_key(stored.id), pending_key(key, stored.id), role_key(key)
    result = await store.backend.txn(
        [Compare(wkey, "holder", "==", session.agent), Compare(pkey, "version", "!=", 0)],
        [
            Delete(pkey, purge=True),
            Put(rkey, "json", json_bytes(decided), session.agent, lamport, clock_text),
            Append(event),
        ],
    )
    if not result.succeeded:
        raise await _refused(session, role, stored, "reject", event, result, None)
    role.head = None
    return replace(stored, status="rejected", outcome=reason, decided_by=session.agent)


async def _refused(
    session: AsyncSessionLike,
    role: Role,
    stored: AsyncRequest,
    what: str,
    event: dict[str, Any],
    result: TxnResult,
    expect: int | None,
) -> Exception:
    """Work out which compare refused a decision; log it; return the error."""
    store = session.store
    key = stored.key
    records = result.records
    wrec = records.get(role_key(key))
    error: Exception
    outcome = "conflict"
    failed = result.failed
    if wrec is not None and held_by_other(wrec, session.agent):
        outcome = "fenced"
        ROLES.set(session, key, None)
        if wrec.value["epoch"] != role.epoch:
            error = fenced(key, session.agent, wrec)
        else:
            error = not_writer(key, wrec.value["agent"], session.agent)
    elif failed is not None and failed.target == "vacant":
        # A live lease on the key: the decision waits until it ends.
        outcome = failed.refusal or "fenced"
        try:
            await store.writes.explain(session, key, None, result)
        except AccordError as exc:
            error = exc
        else:  # pragma: no cover - a vacant compare is always explained
            error = PreconditionFailed(f"The {what} of {stored.id} was refused; try again.")
    elif records.get(pending_key(key, stored.id)) is None:
        error = decided_already(await get_request(store, stored.id), what)
    else:
        assert expect is not None
        rec = records.get(key)
        error = await store.writes.conflict(session, key, expect, rec)
    refusal = dict(event)
    refusal["outcome"] = outcome
    await store.backend.txn([], [Append(refusal)])
    return error


# --- the writer loop --------------------------------------------------------------------


async def serve(
    session: AsyncSessionLike,
    key: str,
    apply: Callable[[Any, Any], Any],
    *,
    timeout: float | None = None,
    stop: threading.Event | None = None,
    limit: int | None = None,
    ttl: float = DEFAULT_ROLE_TTL,
    role_wait: float = 0,
    retries: int = 8,
    batch: int = 64,
) -> int:
    """Be the writer of ``key``: decide each request with ``apply``; return how many.

    ``apply(current_value, change)`` returns the new value (accepted) or a
    :class:`Reject` (rejected with its reason); ``current_value`` is None
    when the key is absent. It must not write the key itself and should be
    deterministic and free of side effects: if the commit fails because the
    key moved under the writer (which only another process of the same
    writer can do), the requests are read again and ``apply`` is called
    again on the new value, up to ``retries`` times. An exception from
    ``apply`` stops the loop; the requests decided before it are committed,
    the rest stay pending for the next writer.

    Requests that are already waiting are decided in groups of up to
    ``batch`` in one transaction (group commit): each still gets its own
    version of the key, its own history event and its own status, in
    submission order, and the group commits all or nothing. Under load this
    keeps the writer's throughput from falling as submitters are added.

    The loop ends after ``timeout`` idle seconds (None: never; store clock),
    when ``stop`` is set, or after ``limit`` decisions, and then releases
    the role. ``role_wait`` is how long to wait for another writer's role to
    lapse (taking over from a dead writer). Raises :class:`Fenced` if the
    role is taken over meanwhile.
    """
    validate_key(key)
    timeout, limit, ttl, role_wait, retries, batch = check_serve_args(
        apply, timeout, stop, limit, ttl, role_wait, retries, batch
    )
    if limit == 0:
        return 0
    await session.store.writes.intercept(session, "requests", key)
    role = await claim(session, key, ttl=ttl, wait=role_wait)
    store = session.store
    backend = store.backend
    idle = timeout if timeout is not None else float("inf")
    idle_until = role.renewed + idle
    count = 0
    conflicts = 0
    try:
        while True:
            if stop is not None and stop.is_set():
                break
            now = await backend.now()
            await renew(session, role, now)
            since = await backend.revision()
            waiting = await _pending(store, key)
            if not waiting:
                left = idle_until - now
                if left <= 0:
                    break
                chunk = min(left, role.ttl / 3, 0.1 if stop is not None else role.ttl)
                await backend.wait([], [pending_prefix(key)], since, chunk)
                continue
            room = batch if limit is None else min(batch, limit - count)
            decided, error = await _decide_group(session, role, key, waiting[:room], apply)
            if decided < 0:
                conflicts += 1
                if conflicts > retries:
                    raise error or kept_conflicting(key)
                continue
            conflicts = 0
            count += decided
            if timeout is not None:
                # The idle time counts from the end of the last decision.
                idle_until = await backend.now() + idle
            if error is not None:
                raise error
            if limit is not None and count >= limit:
                break
    finally:
        # Best effort on the way out (also when cancelled, on the async
        # face): the role lapses by itself anyway.
        with contextlib.suppress(AccordError):
            await release(session, key)
    return count


async def _decide_group(
    session: AsyncSessionLike,
    role: Role,
    key: str,
    waiting: list[Record],
    apply: Callable[[Any, Any], Any],
) -> tuple[int, BaseException | None]:
    """Decide ``waiting`` (oldest first) with ``apply`` and commit them in one transaction.

    Returns (how many were decided, an exception from ``apply`` to re-raise
    after committing the ones before it). Returns (-1, error) when the
    commit was refused because the key or a request moved: the caller
    rescans and tries again. Raises :class:`Fenced` if the role was lost.
    """
    store = session.store
    current = await store.backend.get(key)
    if current is None or current.deleted:
        session.seen.remember(key, 0, None)
    else:
        session.seen.remember(key, current.version, current.value)
    if current is not None:
        session.clock.observe(key, current.lamport, current.clock)
    # The clocks resume from the store at the first tick (I/O); after it a
    # tick is plain arithmetic, which the group's plan does per request.
    if not session.clock.resumed:
        await session._tick()
    group = plan_group(
        session.agent, key, current, waiting, apply, session.clock, store.writes.encode
    )
    if group.decided == 0:
        return 0, group.failure
    # One transaction for the whole group: every request's value, status and
    # the end of its pending record commit together, so a crash leaves each
    # request either fully decided or still pending.
    result = await store.writes.commit(session, key, group.ops, compares=group.compares)
    if not result.succeeded:
        wkey = role_key(key)
        wrec = result.records.get(wkey)
        if held_by_other(wrec, session.agent):
            ROLES.set(session, key, None)
            raise fenced(key, session.agent, wrec)
        if result.failed is not None and result.failed.target == "vacant":
            # A live lease on the key: nothing of the group was applied; the
            # error says who holds it and how long.
            await store.writes.explain(session, key, None, result)
        return -1, group.failure
    session.seen.remember(key, group.version, group.value)
    role.head = None
    return group.decided, group.failure
