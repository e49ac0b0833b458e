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
    The request itself (status, outcome), so ``Request.wait`` and the CLI
    find a request by id alone.

Exactly once: ``accept`` writes the key, removes the pending record and
marks the request accepted in ONE transaction, guarded by three compares:
the role is held by this agent (a writer that lost its role is fenced), the
request is still pending (nothing is decided twice), and the key is at the
version the writer read (the version check done for it). A writer that
crashes between reading a request and deciding it leaves it pending; the
next writer finds it first in line.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from .. import params
from .._core.write import make_event
from ..clock import encode_clock
from ..errors import (
    AccordError,
    Fenced,
    IdempotencyMismatch,
    NotFound,
    NotWriter,
    PreconditionFailed,
    Timeout,
    UsageError,
    call,
    option,
    var,
)
from ..keys import has_surrogate, internal, validate_key
from ..records import (
    Append,
    Compare,
    Delete,
    Doc,
    Put,
    Record,
    TxnResult,
    Value,
    decode_value,
    encode_value,
)

if TYPE_CHECKING:
    from ..session import Session
    from ..store import Store

__all__ = [
    "DEFAULT_ROLE_TTL",
    "Reject",
    "Request",
    "accept",
    "get_request",
    "guard",
    "install",
    "pending",
    "reject",
    "release",
    "requests",
    "retire",
    "serve",
    "submit",
    "writer_of",
]

DEFAULT_ROLE_TTL = 15.0
"""Seconds a writer holds the role without renewing it (store clock)."""

_MAX_IDEM_LENGTH = 256
_MAX_REASON_LENGTH = 4096


# --- records and names -----------------------------------------------------------


def role_key(key: str) -> str:
    """The record holding the writer role of ``key``."""
    return internal("queue", key, "writer")


def pending_prefix(key: str) -> str:
    """The prefix under which the pending requests of ``key`` live."""
    return internal("queue", key, "pending") + "/"


def request_key(request_id: str) -> str:
    """The record of one request, by id."""
    return internal("request", request_id)


@dataclass(frozen=True, slots=True)
class Request:
    """A change request for ``key``, as submitted and as decided.

    ``status`` is ``"pending"``, ``"accepted"`` or ``"rejected"``.
    ``outcome`` is the written :class:`Doc` when accepted, the writer's
    reason (str) when rejected, None while pending. ``seq`` is the store
    revision of the submission: requests are decided in ``seq`` order.
    ``base`` is set on requests handed out by :func:`requests`: the key's
    document as the writer read it just before (None if the key is absent);
    ``accept`` writes against its version, ``base_version`` (0 when the
    key was absent).
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
    _store: Store | None = field(default=None, repr=False, compare=False)

    def __reduce__(self) -> tuple[Any, ...]:
        # Requests cross process boundaries (a result queue, a pool); the
        # store they came from does not: re-attach with get_request().
        values = tuple(getattr(self, f.name) for f in fields(self) if f.name != "_store")
        return (Request, values)

    @property
    def pending(self) -> bool:
        """True while the writer has not decided the request."""
        return self.status == "pending"

    @property
    def accepted(self) -> bool:
        """True once accepted (``outcome`` is the written Doc)."""
        return self.status == "accepted"

    @property
    def rejected(self) -> bool:
        """True once rejected (``reason`` says why)."""
        return self.status == "rejected"

    @property
    def reason(self) -> str | None:
        """The writer's reason when rejected, else None."""
        return self.outcome if self.status == "rejected" and isinstance(self.outcome, str) else None

    def refresh(self) -> Request:
        """This request as the store has it now (a new object)."""
        if self._store is None:
            raise UsageError(
                "This Request is not attached to a store; get it from "
                f"{call('session.submit', var('key'), var('change'))} or "
                f"{call('session.requests', var('key'))}."
            )
        return get_request(self._store, self.id)

    def wait(self, timeout: float = 30) -> Request:
        """Block until the writer decides; return the decided Request.

        ``status`` is then ``"accepted"`` with the written :class:`Doc` as
        ``outcome``, or ``"rejected"`` with the reason. Raises
        :class:`Timeout` if nothing was decided within ``timeout`` seconds
        (the request stays pending; wait again or give up).
        """
        if self._store is None:
            raise UsageError(
                "This Request is not attached to a store; get it from "
                f"{call('session.submit', var('key'), var('change'))} or "
                f"{call('session.requests', var('key'))}."
            )
        timeout = params.seconds(timeout, "timeout", example="30")
        store = self._store
        backend = store.backend
        rkey = request_key(self.id)
        deadline = time.monotonic() + timeout
        while True:
            since = backend.revision()
            current = get_request(store, self.id)
            if not current.pending:
                return current
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout(
                    f"Request {self.id} for {self.key} is still pending after {timeout:g}s: "
                    "its writer has not decided it yet. Wait again, or check that a writer "
                    f"serves {self.key}: its writer takes requests with "
                    f"{call('session.requests', self.key)}.",
                    request=self.id,
                    key=self.key,
                )
            backend.wait([rkey], [], since, left)


@dataclass(frozen=True, slots=True)
class Reject:
    """Returned by a :func:`serve` ``apply`` function to reject the request."""

    reason: str


# --- encoding ----------------------------------------------------------------------


def _encode_change(change: Any) -> tuple[str, Any, bytes]:
    kind, data = encode_value(change)
    if kind == "text":
        stored: Any = data.decode("utf-8")
    elif kind == "json":
        stored = json.loads(data)
    else:
        stored = base64.b64encode(data).decode("ascii")
    return kind, stored, data


def _decode_change(kind: str, stored: Any) -> Any:
    if kind == "bytes":
        return base64.b64decode(stored)
    return stored


def _from_record(
    store: Store,
    data: dict[str, Any],
    *,
    seq: int | None = None,
    base: Doc | None = None,
    base_version: int | None = None,
) -> Request:
    outcome: Doc | str | None = None
    if data.get("status") == "accepted" and data.get("version") is not None:
        outcome = Doc(
            key=data["key"],
            value=decode_value(data["value_kind"], data["value"].encode("utf-8"))
            if data["value_kind"] != "bytes"
            else base64.b64decode(data["value"]),
            version=data["version"],
            revision=data.get("revision") or 0,
            author=data.get("decided_by") or "",
            kind=data["value_kind"],
        )
    elif data.get("status") == "rejected":
        outcome = data.get("reason") or ""
    return Request(
        id=data["id"],
        key=data["key"],
        change=_decode_change(data["change_kind"], data["change"]),
        submitter=data["submitter"],
        status=data["status"],
        outcome=outcome,
        decided_by=data.get("decided_by"),
        seq=seq if seq is not None else int(data.get("seq") or 0),
        idempotency_key=data.get("idem"),
        base=base,
        base_version=base_version,
        _store=store,
    )


def _json_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")


# --- the writer role ---------------------------------------------------------------


@dataclass
class _Role:
    """What one session knows about a writer role it holds."""

    key: str
    epoch: int
    ttl: float
    renewed: float  # time.monotonic() of the last renewal
    head: str | None = None  # the request the iterator handed out last


# Role state lives beside the session, not in it: the session is the
# foundation's class, and a role dies with the session object.
_roles: weakref.WeakKeyDictionary[Session, dict[str, _Role]] = weakref.WeakKeyDictionary()
_roles_lock = threading.Lock()


def _role_of(session: Session, key: str) -> _Role | None:
    with _roles_lock:
        return _roles.get(session, {}).get(key)


def _set_role(session: Session, role: _Role | None, key: str) -> None:
    with _roles_lock:
        held = _roles.setdefault(session, {})
        if role is None:
            held.pop(key, None)
        else:
            held[key] = role


def _policy_writer(store: Store, key: str) -> str | None:
    policy = store.policy
    writer_for = getattr(policy, "writer_for", None) if policy is not None else None
    if writer_for is None:
        return None
    writer: str | None = writer_for(key)
    return writer


def writer_of(store: Store, key: str) -> dict[str, Any] | None:
    """Who holds the writer role of ``key``: ``{"agent", "epoch", "deadline", "live"}``.

    ``live`` is False once the deadline passed (the role may be taken over).
    Returns None when no session ever claimed the role. With a manifest
    naming a writer that has not claimed yet, returns that writer with
    ``epoch`` 0 and ``live`` False.
    """
    validate_key(key)
    rec = store.backend.get(role_key(key))
    if rec is None or rec.deleted:
        named = _policy_writer(store, key)
        if named is None:
            return None
        return {"agent": named, "epoch": 0, "deadline": None, "live": False}
    value = rec.value
    return {
        "agent": value["agent"],
        "epoch": value["epoch"],
        "deadline": value["deadline"],
        "live": value["deadline"] > store.backend.now(),
    }


def _not_writer(key: str, holder: str, agent: str, why: str = "") -> NotWriter:
    return NotWriter(
        f"{agent} is not the writer of {key}: {holder} is{why}. Only the writer applies "
        f"changes to a queue key. Submit a change request instead: "
        f"{call('session.submit', key, var('change'))}, and wait for the writer's decision "
        f"({call('request.wait', timeout=var('seconds'))}).",
        key=key,
        writer=holder,
        agent=agent,
    )


def _claim(session: Session, key: str, *, ttl: float, wait: float) -> _Role:
    """Take (or keep) the writer role of ``key`` for this session's agent.

    The role belongs to the agent *name*: another process running as the
    same agent (the CLI, a restarted writer) continues it without waiting.
    Another agent gets it only once the holder's deadline has passed; this
    waits up to ``wait`` seconds for that, then raises :class:`NotWriter`.
    """
    store = session.store
    backend = store.backend
    agent = session.agent
    named = _policy_writer(store, key)
    if named is not None and named != agent:
        raise _not_writer(key, named, agent, " (named by the manifest)")
    rkey = role_key(key)
    give_up = time.monotonic() + wait
    while True:
        rec = backend.get(rkey)
        now = backend.now()
        current = None if rec is None or rec.deleted else rec.value
        if current is None or current["agent"] == agent or current["deadline"] <= now:
            if current is None:
                epoch = 1
            elif current["agent"] == agent:
                epoch = int(current["epoch"])
            else:
                epoch = int(current["epoch"]) + 1
            value = {"agent": agent, "epoch": epoch, "deadline": now + ttl}
            # A compare on the role's version makes the takeover atomic: if
            # the holder renewed (or someone else took over) between our read
            # and this commit, the version moved and we look again.
            version = 0 if rec is None or rec.deleted else rec.version
            result = backend.txn(
                [Compare(rkey, "version", "==", version)],
                [Put(rkey, "json", _json_bytes(value), agent)],
            )
            if result.succeeded:
                role = _Role(key, epoch, ttl, time.monotonic())
                _set_role(session, role, key)
                return role
            continue
        left = give_up - time.monotonic()
        if left <= 0:
            raise _not_writer(
                key,
                current["agent"],
                agent,
                f" for at least {max(0.0, current['deadline'] - now):.1f}s more "
                "(it can be taken over only once its role lapses)",
            )
        assert rec is not None
        # The holder renews by writing the record, and a dead holder's role
        # lapses by the clock: wake on either, whichever comes first.
        backend.wait([rkey], [], rec.revision, min(left, max(0.005, current["deadline"] - now)))


def _renew(session: Session, role: _Role, *, force: bool = False) -> None:
    """Push the role's deadline forward; raise :class:`Fenced` if it was taken."""
    if not force and time.monotonic() - role.renewed < role.ttl / 3:
        return
    store = session.store
    backend = store.backend
    rkey = role_key(role.key)
    rec = backend.get(rkey)
    if rec is not None and not rec.deleted and rec.author != session.agent:
        _set_role(session, None, role.key)
        raise _fenced(role.key, session.agent, rec)
    value = {"agent": session.agent, "epoch": role.epoch, "deadline": backend.now() + role.ttl}
    result = backend.txn(
        [Compare(rkey, "holder", "==", session.agent)],
        [Put(rkey, "json", _json_bytes(value), session.agent)],
    )
    if not result.succeeded:
        _set_role(session, None, role.key)
        raise _fenced(role.key, session.agent, result.records.get(rkey))
    role.renewed = time.monotonic()


def _fenced(key: str, agent: str, rec: Record | None) -> Fenced:
    holder = "another agent" if rec is None or rec.deleted else rec.value["agent"]
    epoch = "?" if rec is None or rec.deleted else rec.value["epoch"]
    return Fenced(
        f"{agent} lost the writer role of {key}: {holder} took it over (epoch {epoch}) after "
        f"{agent}'s role lapsed. Your decision was NOT applied. Stop deciding requests for "
        f"{key}; the new writer decides them. To serve again, take its requests "
        f"({call('session.requests', key)}) once the role is free.",
        key=key,
        writer=holder,
        agent=agent,
    )


def release(session: Session, key: str) -> None:
    """Give up the writer role of ``key`` now, so another writer can take over at once.

    The key stays a queue key: direct writes by others are still refused
    until another writer claims the role. Releasing a role you do not hold
    does nothing.
    """
    validate_key(key)
    backend = session.store.backend
    rkey = role_key(key)
    rec = backend.get(rkey)
    _set_role(session, None, key)
    if rec is None or rec.deleted or rec.author != session.agent:
        return
    value = dict(rec.value)
    value["deadline"] = backend.now()
    backend.txn(
        [Compare(rkey, "version", "==", rec.version)],
        [Put(rkey, "json", _json_bytes(value), session.agent)],
    )


def retire(session: Session, key: str) -> None:
    """Turn ``key`` back into an ordinary key: remove its writer role record.

    Afterwards direct writes are guarded as for any key (no :class:`NotWriter`)
    until someone claims the role again. Only the role's holder may retire
    it, or anyone once the role has lapsed; otherwise :class:`NotWriter`.
    Pending requests stay pending.
    """
    validate_key(key)
    backend = session.store.backend
    rkey = role_key(key)
    rec = backend.get(rkey)
    if rec is None or rec.deleted:
        return
    if rec.author != session.agent and rec.value["deadline"] > backend.now():
        raise _not_writer(key, rec.value["agent"], session.agent)
    _set_role(session, None, key)
    backend.txn([Compare(rkey, "version", "==", rec.version)], [Delete(rkey, purge=True)])


# --- the guard on direct writes -----------------------------------------------------


def guard(session: Session, key: str, token: int | None = None) -> list[Compare]:
    """Compares added to every direct write of ``key`` (see ``Store.add_guard``).

    A key whose writer role exists (or that the manifest gives a queue
    writer) may be written directly only by that writer. The compare is
    inside the write's own transaction, so a takeover cannot slip between
    the check and the write.
    """
    named = _policy_writer(session.store, key)
    if named is not None and named != session.agent:
        # Never true: the write is refused and explain() says why.
        return [Compare(role_key(key), "version", "<", 0)]
    # Built once per key and agent (Compare is immutable): every write carries it.
    cached = _HOLDER.get((key, session.agent))
    if cached is None:
        if len(_HOLDER) >= 4096:
            _HOLDER.clear()
        cached = _HOLDER[(key, session.agent)] = Compare(
            role_key(key), "holder", "==", session.agent
        )
    return [cached]


_HOLDER: dict[tuple[str, str], Compare] = {}


def explain(session: Session, key: str, token: int | None, result: TxnResult) -> None:
    """Raise :class:`NotWriter` when :func:`guard`'s compare is what refused a write."""
    failed = result.failed
    if failed is not None and failed.key != role_key(key):
        return
    named = _policy_writer(session.store, key)
    if named is not None and named != session.agent:
        raise _not_writer(key, named, session.agent, " (named by the manifest)")
    rec = result.records.get(role_key(key))
    if rec is not None and not rec.deleted and rec.author != session.agent:
        raise _not_writer(key, rec.value["agent"], session.agent)


def install(store: Store) -> None:
    """Install the NotWriter guard on ``store`` (``Store`` does this by default)."""
    store.add_guard(guard, explain)


# --- submitting ----------------------------------------------------------------------


def submit(
    session: Session, key: str, change: Any, *, idempotency_key: str | None = None
) -> Request:
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
    change_kind, stored_change, raw = _encode_change(change)
    if len(raw) > store.max_value_size:
        store.writes.encode(key, change)  # raises ValueTooLarge with the usual message
    store.writes.intercept(session, "submit", key, change=change, idempotency_key=idempotency_key)
    digest = hashlib.sha256(f"{key}\0{change_kind}\0".encode() + raw).hexdigest()
    if idempotency_key is not None:
        if (
            not isinstance(idempotency_key, str)
            or not idempotency_key
            or len(idempotency_key) > _MAX_IDEM_LENGTH
            or has_surrogate(idempotency_key)
        ):
            raise UsageError(
                f"An idempotency key must be a non-empty string of at most {_MAX_IDEM_LENGTH} "
                f"characters of Unicode text, not {idempotency_key!r}. Use one unique id per "
                "change request."
            )
        # The id is a function of the idempotency key, so a replay lands on
        # the same record and the create-only compare below refuses it.
        request_id = "r-" + hashlib.sha256(f"{key}\0{idempotency_key}".encode()).hexdigest()[:24]
    else:
        request_id = "r-" + uuid.uuid4().hex[:24]
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
    lamport, vector = session.clock.tick()
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
    body = _json_bytes(data)
    rkey = request_key(request_id)
    pkey = pending_prefix(key) + request_id
    result = store.backend.txn(
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
        return _from_record(store, data, seq=seq)
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
    return get_request(store, request_id)


def get_request(store: Store, request_id: str) -> Request:
    """The request with this id as the store has it now; :class:`NotFound` if none."""
    if (
        not isinstance(request_id, str)
        or not request_id
        or "/" in request_id
        or has_surrogate(request_id)
    ):
        raise UsageError(f"{request_id!r} is not a request id; ids look like 'r-3f2a...'.")
    rec = store.backend.get(request_key(request_id))
    if rec is None or rec.deleted:
        raise NotFound(
            f"No request {request_id} in this store. List the pending requests of a key "
            f"with {call('session.requests', var('key'))}.",
            request=request_id,
        )
    data = rec.value
    if data["status"] == "pending":
        pending = store.backend.get(pending_prefix(data["key"]) + request_id)
        seq = pending.revision if pending is not None else 0
        return _from_record(store, data, seq=seq)
    request = _from_record(store, data)
    if request.accepted and isinstance(request.outcome, Doc) and not request.outcome.revision:
        request = replace(request, outcome=_with_revision(store, request.outcome, request.id))
    return request


def _with_revision(store: Store, doc: Doc, request_id: str) -> Doc:
    # The request record is written in the same transaction as the accepted
    # value but cannot name that transaction's revision; find it.
    rec = store.backend.get(doc.key)
    if rec is not None and rec.version == doc.version:
        return replace(doc, revision=rec.revision)
    for ev in store.backend.history(key=doc.key):
        if ev.get("request") == request_id and ev.get("op") == "accept":
            return replace(doc, revision=ev["rev"])
    return doc


# --- reading requests (the writer) ---------------------------------------------------


def _pending(store: Store, key: str) -> list[Record]:
    prefix = pending_prefix(key)
    out = []
    for rec in store.backend.scan(prefix):
        # Keys nest ("a" and "a/pending/x" are both keys), so the prefix scan
        # can reach another key's records: keep exactly prefix + id.
        if "/" in rec.key[len(prefix) :]:
            continue
        out.append(rec)
    out.sort(key=lambda r: r.revision)
    return out


def pending(store: Store, key: str) -> list[Request]:
    """The pending requests of ``key``, oldest first, without claiming anything.

    A snapshot for people and tools (the CLI lists it); a writer uses
    :func:`requests`, which hands them out one at a time.
    """
    validate_key(key)
    return [_from_record(store, rec.value, seq=rec.revision) for rec in _pending(store, key)]


def requests(
    session: Session,
    key: str,
    *,
    timeout: float = 5,
    ttl: float = DEFAULT_ROLE_TTL,
    role_wait: float = 0,
    stop: threading.Event | None = None,
) -> Generator[Request, None, None]:
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
    ttl = _check_role_ttl(ttl)
    role_wait = params.seconds(role_wait, "role_wait", example="0")
    _check_stop(stop)
    session.store.writes.intercept(session, "requests", key)
    role = _claim(session, key, ttl=ttl, wait=role_wait)
    return _iterate(session, key, role, timeout, stop)


def _check_role_ttl(ttl: object) -> float:
    return params.seconds(
        ttl,
        "ttl",
        minimum=0.0,
        above=True,
        example=f"{DEFAULT_ROLE_TTL:g}",
        hint="It is how long the writer role outlives the writer's last renewal.",
    )


def _check_stop(stop: object) -> None:
    if stop is not None and not (hasattr(stop, "is_set") and callable(stop.is_set)):
        raise UsageError(
            f"stop must be a threading.Event (or None), not {stop!r}. Nothing was changed."
        )


def _iterate(
    session: Session,
    key: str,
    role: _Role,
    timeout: float,
    stop: threading.Event | None,
) -> Generator[Request, None, None]:
    store = session.store
    backend = store.backend
    prefix = pending_prefix(key)
    queue: deque[Record] = deque()
    handed: str | None = None
    idle_until = time.monotonic() + timeout
    since = 0
    while True:
        if stop is not None and stop.is_set():
            return
        _renew(session, role)
        if handed is not None and backend.get(prefix + handed) is not None:
            raise UsageError(
                f"Request {handed} for {key} was handed out but not decided. Call "
                f"{call('session.accept', var('request'), var('new_value'))} or "
                f"{call('session.reject', var('request'), var('reason'))} for each request "
                "before taking the next one."
            )
        if not queue:
            since = backend.revision()
            # Everything submitted after this scan commits at a higher
            # revision than everything in it, so appending later scans keeps
            # the queue in submission order.
            queue.extend(_pending(store, key))
        while queue:
            rec = queue.popleft()
            if backend.get(rec.key) is None:
                continue  # decided meanwhile (another process of this agent)
            session.clock.observe(rec.key, rec.lamport, rec.clock)
            try:
                base: Doc | None = session.read(key)
            except NotFound:
                base = None
            request = _from_record(
                store,
                rec.value,
                seq=rec.revision,
                base=base,
                base_version=0 if base is None else base.version,
            )
            handed = request.id
            role.head = request.id
            yield request
            idle_until = time.monotonic() + timeout
            break
        else:
            left = idle_until - time.monotonic()
            if left <= 0:
                return
            # Wake for a new submission, but also in time to renew the role.
            chunk = min(left, role.ttl / 3)
            if stop is not None:
                chunk = min(chunk, 0.1)
            backend.wait([], [prefix], since, chunk)


# --- deciding -------------------------------------------------------------------------


def _prepare_decision(session: Session, request: Request, what: str) -> tuple[_Role, Request]:
    if not isinstance(request, Request):
        raise UsageError(
            f"{call(f'session.{what}', var('request'), var('...'))} takes a Request (from "
            f"{call('session.requests', var('key'))}), not {type(request).__name__}."
        )
    store = session.store
    key = request.key
    stored = get_request(store, request.id)
    if stored.key != key:
        raise UsageError(
            f"Request {request.id} is a request for {stored.key}, not {key}; nothing was "
            "changed. Decide it as the writer of its own key."
        )
    role = _role_of(session, key)
    if role is None:
        # Deciding without having called requests(): claim without waiting
        # (the CLI decides in a process of its own, as the same agent).
        role = _claim(session, key, ttl=DEFAULT_ROLE_TTL, wait=0)
    if not stored.pending:
        raise _decided_already(stored, what)
    if role.head != stored.id:
        pending = _pending(store, key)
        if pending and pending[0].value["id"] != stored.id:
            oldest = pending[0].value["id"]
            raise UsageError(
                f"Requests for {key} are decided oldest first: {oldest} was submitted before "
                f"{stored.id} and is still pending. Decide {oldest} first; nothing was changed."
            )
    return role, stored


def _decided_already(stored: Request, what: str) -> PreconditionFailed:
    if stored.accepted and isinstance(stored.outcome, Doc):
        how = f"accepted by {stored.decided_by} (written as version {stored.outcome.version})"
    else:
        how = f"rejected by {stored.decided_by} ({stored.reason})"
    return PreconditionFailed(
        f"Request {stored.id} for {stored.key} was already {how}; a request is decided "
        f"once, so this {what} changed nothing. Take the next request from "
        f"{call('session.requests', stored.key)}.",
        request=stored.id,
        key=stored.key,
        status=stored.status,
    )


def accept(
    session: Session, request: Request, new_value: Value, *, expect: int | None = None
) -> Request:
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
    role, stored = _prepare_decision(session, request, "accept")
    store = session.store
    backend = store.backend
    key = stored.key
    kind, data = store.writes.encode(key, new_value)
    if expect is None:
        expect = request.base_version
    if expect is None:
        expect = session.seen_version(key)
        if expect is None:
            raise UsageError(
                f"Accepting writes {key} with a version check, but this session has not read "
                f"{key}. Read it (or take the request from {call('session.requests', key)}, "
                "which does) and accept again, or pass "
                f"{option('expect', var('the version you read'))}."
            )
    else:
        params.version(expect)
    session.store.writes.intercept(session, "accept", key, request=stored.id, expect=expect)
    base_version = expect
    if expect == 0:
        # A re-create continues the version chain from a tombstone.
        old = backend.get(key)
        base_version = old.version if old is not None else 0
    version = base_version + 1
    lamport, vector = session.clock.tick()
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
    decided = _stored_dict(stored)
    decided.update(
        status="accepted",
        decided_by=session.agent,
        version=version,
        value_kind=kind,
        value=base64.b64encode(data).decode("ascii") if kind == "bytes" else data.decode("utf-8"),
    )
    rkey, pkey, wkey = request_key(stored.id), pending_prefix(key) + stored.id, role_key(key)
    # One transaction on the one write path (which adds the guards every
    # write carries: a live lease on the key refuses the accept, and the
    # queue's own guard is among them): the value, the end of the pending
    # record and the request's new status commit together or not at all. A
    # crash cannot leave a request applied but still pending (applied twice
    # later) or marked accepted but never written.
    result = store.writes.commit(
        session,
        key,
        [
            Put(key, kind, data, session.agent, lamport, clock_text, event=event),
            Delete(pkey, purge=True),
            Put(rkey, "json", _json_bytes(decided), session.agent, lamport, clock_text),
        ],
        compares=[
            Compare(wkey, "holder", "==", session.agent),
            Compare(pkey, "version", "!=", 0),
            Compare(key, "version", "==", expect),
        ],
    )
    if not result.succeeded:
        raise _refused(session, role, stored, "accept", event, result, expect)
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


def reject(session: Session, request: Request, reason: str) -> Request:
    """Reject ``request`` with ``reason`` (shown to the submitter); nothing is written.

    Refused like :func:`accept` when the request was decided already, the
    role was lost, or an older request is still pending.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise UsageError(
            "A rejection needs a reason the submitter can act on, such as 'duplicate of an "
            f"earlier comment' ({call('session.reject', var('request'), var('reason'))}).",
        )
    if len(reason) > _MAX_REASON_LENGTH:
        raise UsageError(f"A reason is at most {_MAX_REASON_LENGTH} characters.")
    if has_surrogate(reason):
        raise UsageError(
            f"The reason {reason!r} holds a surrogate code point, which is not Unicode text; "
            "nothing was decided. Give the reason as plain text."
        )
    role, stored = _prepare_decision(session, request, "reject")
    store = session.store
    key = stored.key
    session.store.writes.intercept(session, "reject", key, request=stored.id)
    lamport, vector = session.clock.tick()
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
    decided = _stored_dict(stored)
    decided.update(status="rejected", decided_by=session.agent, reason=reason)
    rkey, pkey, wkey = request_key(stored.id), pending_prefix(key) + stored.id, role_key(key)
    result = store.backend.txn(
        [Compare(wkey, "holder", "==", session.agent), Compare(pkey, "version", "!=", 0)],
        [
            Delete(pkey, purge=True),
            Put(rkey, "json", _json_bytes(decided), session.agent, lamport, clock_text),
            Append(event),
        ],
    )
    if not result.succeeded:
        raise _refused(session, role, stored, "reject", event, result, None)
    role.head = None
    return replace(stored, status="rejected", outcome=reason, decided_by=session.agent)


def _stored_dict(request: Request) -> dict[str, Any]:
    change_kind, stored_change, raw = _encode_change(request.change)
    return {
        "id": request.id,
        "key": request.key,
        "change": stored_change,
        "change_kind": change_kind,
        "submitter": request.submitter,
        "status": request.status,
        "idem": request.idempotency_key,
        "fingerprint": hashlib.sha256(f"{request.key}\0{change_kind}\0".encode() + raw).hexdigest(),
        "seq": request.seq,
    }


def _refused(
    session: Session,
    role: _Role,
    stored: Request,
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
    if wrec is not None and not wrec.deleted and wrec.author != session.agent:
        outcome = "fenced"
        _set_role(session, None, key)
        if wrec.value["epoch"] != role.epoch:
            error = _fenced(key, session.agent, wrec)
        else:
            error = _not_writer(key, wrec.value["agent"], session.agent)
    elif failed is not None and failed.target == "vacant":
        # A live lease on the key: the decision waits until it ends.
        outcome = failed.refusal or "fenced"
        try:
            store.writes.explain(session, key, None, result)
        except AccordError as exc:
            error = exc
        else:  # pragma: no cover - a vacant compare is always explained
            error = PreconditionFailed(f"The {what} of {stored.id} was refused; try again.")
    elif records.get(pending_prefix(key) + stored.id) is None:
        error = _decided_already(get_request(store, stored.id), what)
    else:
        assert expect is not None
        rec = records.get(key)
        error = session.store.writes.conflict(session, key, expect, rec)
    refusal = dict(event)
    refusal["outcome"] = outcome
    store.backend.txn([], [Append(refusal)])
    return error


# --- the writer loop --------------------------------------------------------------------


def serve(
    session: Session,
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

    The loop ends after ``timeout`` idle seconds (None: never), when ``stop``
    is set, or after ``limit`` decisions, and then releases the role.
    ``role_wait`` is how long to wait for another writer's role to lapse
    (taking over from a dead writer). Raises :class:`Fenced` if the role is
    taken over meanwhile.
    """
    validate_key(key)
    if not callable(apply):
        raise UsageError(
            f"{call('session.serve', var('key'), var('apply'))} takes a function "
            f"apply(current_value, change) -> new value or Reject(reason), not {apply!r}. "
            "Nothing was changed."
        )
    if timeout is not None:
        timeout = params.seconds(
            timeout,
            "timeout",
            example="60",
            hint=f"Pass {option('timeout', None)} to serve until stopped.",
        )
    _check_stop(stop)
    if limit is not None:
        limit = params.count(limit, "limit", example="100")
    ttl = _check_role_ttl(ttl)
    role_wait = params.seconds(role_wait, "role_wait", example="0")
    retries = params.count(retries, "retries")
    batch = params.count(batch, "batch", minimum=1, example="64")
    if limit == 0:
        return 0
    session.store.writes.intercept(session, "requests", key)
    role = _claim(session, key, ttl=ttl, wait=role_wait)
    store = session.store
    backend = store.backend
    idle = timeout if timeout is not None else float("inf")
    idle_until = time.monotonic() + idle
    count = 0
    conflicts = 0
    try:
        while True:
            if stop is not None and stop.is_set():
                break
            _renew(session, role)
            since = backend.revision()
            waiting = _pending(store, key)
            if not waiting:
                left = idle_until - time.monotonic()
                if left <= 0:
                    break
                chunk = min(left, role.ttl / 3, 0.1 if stop is not None else role.ttl)
                backend.wait([], [pending_prefix(key)], since, chunk)
                continue
            room = batch if limit is None else min(batch, limit - count)
            decided, error = _decide_group(session, role, key, waiting[:room], apply)
            if decided < 0:
                conflicts += 1
                if conflicts > retries:
                    raise error or PreconditionFailed(
                        f"{call('session.serve', key, var('apply'))} kept conflicting."
                    )
                continue
            conflicts = 0
            count += decided
            idle_until = time.monotonic() + idle
            if error is not None:
                raise error
            if limit is not None and count >= limit:
                break
    finally:
        # Best effort on the way out: the role lapses by itself anyway.
        with contextlib.suppress(AccordError):
            release(session, key)
    return count


def _decide_group(
    session: Session,
    role: _Role,
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
    backend = store.backend
    current = backend.get(key)
    if current is None or current.deleted:
        value: Any = None
        expect = 0
        version = 0 if current is None else current.version
    else:
        value = current.value
        expect = version = current.version
    session.seen.remember(key, expect, value)
    if current is not None:
        session.clock.observe(key, current.lamport, current.clock)
    wkey = role_key(key)
    # The role and the version the group was decided on; the write path
    # adds the guards of every write (a live lease on the key refuses the
    # group) in front of them.
    compares = [
        Compare(wkey, "holder", "==", session.agent),
        Compare(key, "version", "==", expect),
    ]
    ops: list[Put | Delete | Append] = []
    decided = 0
    failure: BaseException | None = None
    for rec in waiting:
        stored = _from_record(store, rec.value, seq=rec.revision)
        session.clock.observe(rec.key, rec.lamport, rec.clock)
        try:
            result = apply(value, stored.change)
        except Exception as exc:  # committed up to here, then re-raised
            failure = exc
            break
        lamport, vector = session.clock.tick()
        clock_text = encode_clock(vector)
        decided_data = _stored_dict(stored)
        decided_data["decided_by"] = session.agent
        if isinstance(result, Reject):
            decided_data.update(status="rejected", reason=str(result.reason))
            event = make_event(
                session.agent,
                "reject",
                key,
                lamport,
                vector,
                check="queue",
                based_on=version,
                request=stored.id,
                outcome="rejected",
            )
            ops.append(Append(event))
        else:
            kind, data = store.writes.encode(key, result)
            event = make_event(
                session.agent,
                "accept",
                key,
                lamport,
                vector,
                check="queue",
                based_on=expect if decided == 0 else version,
                request=stored.id,
            )
            version += 1
            decided_data.update(
                status="accepted",
                version=version,
                value_kind=kind,
                value=base64.b64encode(data).decode("ascii")
                if kind == "bytes"
                else data.decode("utf-8"),
            )
            ops.append(Put(key, kind, data, session.agent, lamport, clock_text, event=event))
            value = result
        pkey = pending_prefix(key) + stored.id
        compares.append(Compare(pkey, "version", "!=", 0))
        ops.append(Delete(pkey, purge=True))
        ops.append(
            Put(
                request_key(stored.id),
                "json",
                _json_bytes(decided_data),
                session.agent,
                lamport,
                clock_text,
            )
        )
        decided += 1
    if decided == 0:
        return 0, failure
    # One transaction for the whole group: every request's value, status and
    # the end of its pending record commit together, so a crash leaves each
    # request either fully decided or still pending.
    result = store.writes.commit(session, key, ops, compares=compares)
    if not result.succeeded:
        wrec = result.records.get(wkey)
        if wrec is not None and not wrec.deleted and wrec.author != session.agent:
            _set_role(session, None, key)
            raise _fenced(key, session.agent, wrec)
        if result.failed is not None and result.failed.target == "vacant":
            # A live lease on the key: nothing of the group was applied; the
            # error says who holds it and how long.
            store.writes.explain(session, key, None, result)
        return -1, failure
    session.seen.remember(key, version, value)
    role.head = None
    return decided, failure
