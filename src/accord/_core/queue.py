"""The queue's rules without I/O, run by both faces.

What a change request looks like as a record and back, the names of the
queue's records, the writer role's state, the guard on direct writes, the
group decision of a writer (which requests a group writes, in which order,
with which compares), and every error the queue raises. The I/O layer
(:mod:`accord.strategies._queue_async`, from which
:mod:`accord.strategies.queue` is generated) reads the store, calls these,
and commits what they return.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from .. import params
from ..clock import AgentClock, encode_clock
from ..errors import (
    Fenced,
    NotWriter,
    PreconditionFailed,
    Timeout,
    UsageError,
    call,
    option,
    var,
)
from ..keys import has_surrogate, internal
from ..records import (
    Append,
    Compare,
    Delete,
    Doc,
    Put,
    Record,
    TxnResult,
    decode_value,
    encode_value,
)
from .write import make_event

DEFAULT_ROLE_TTL = 15.0
"""Seconds a writer holds the role without renewing it (store clock)."""

MAX_IDEM_LENGTH = 256
MAX_REASON_LENGTH = 4096


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


def pending_key(key: str, request_id: str) -> str:
    """The pending record of one request of ``key``."""
    return pending_prefix(key) + request_id


def is_own_pending(prefix: str, rec: Record) -> bool:
    """True when ``rec`` (from a scan of ``prefix``) is a pending request of that key.

    Keys nest ("a" and "a/pending/x" are both keys), so the prefix scan can
    reach another key's records: keep exactly prefix + id.
    """
    return "/" not in rec.key[len(prefix) :]


def oldest_first(records: Iterable[Record], prefix: str) -> list[Record]:
    """The pending records of a scan of ``prefix``, in submission order."""
    out = [rec for rec in records if is_own_pending(prefix, rec)]
    out.sort(key=lambda r: r.revision)
    return out


# --- a request ---------------------------------------------------------------------


class RequestView:
    """What both faces' requests share: their status, read from their fields.

    A sync :class:`accord.Request` and an :class:`accord.aio.AsyncRequest`
    with the same fields compare equal (they are the same request).
    """

    __slots__ = ()

    id: str
    key: str
    change: Any
    submitter: str
    status: str
    outcome: Doc | str | None
    decided_by: str | None
    seq: int
    idempotency_key: str | None
    base: Doc | None
    base_version: int | None

    def _compared(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.key,
            self.change,
            self.submitter,
            self.status,
            self.outcome,
            self.decided_by,
            self.seq,
            self.idempotency_key,
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RequestView):
            return self._compared() == other._compared()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._compared())

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


def plain_fields(request: RequestView) -> tuple[Any, ...]:
    """The fields a request is pickled with (everything but its store), in order."""
    return (
        request.id,
        request.key,
        request.change,
        request.submitter,
        request.status,
        request.outcome,
        request.decided_by,
        request.seq,
        request.idempotency_key,
        request.base,
        request.base_version,
    )


@dataclass(frozen=True, slots=True)
class Reject:
    """Returned by a ``serve`` ``apply`` function to reject the request."""

    reason: str


def encode_change(change: Any) -> tuple[str, Any, bytes]:
    """``(kind, JSON-storable form, raw bytes)`` of a request's change."""
    kind, data = encode_value(change)
    if kind == "text":
        stored: Any = data.decode("utf-8")
    elif kind == "json":
        stored = json.loads(data)
    else:
        stored = base64.b64encode(data).decode("ascii")
    return kind, stored, data


def decode_change(kind: str, stored: Any) -> Any:
    if kind == "bytes":
        return base64.b64decode(stored)
    return stored


def fingerprint(key: str, kind: str, raw: bytes) -> str:
    """What a replay with the same idempotency key must repeat."""
    return hashlib.sha256(f"{key}\0{kind}\0".encode() + raw).hexdigest()


def stored_value(kind: str, data: bytes) -> str:
    """A value as the request record keeps it (bytes as base64)."""
    return base64.b64encode(data).decode("ascii") if kind == "bytes" else data.decode("utf-8")


def request_fields(
    data: dict[str, Any],
    *,
    seq: int | None = None,
    base: Doc | None = None,
    base_version: int | None = None,
) -> dict[str, Any]:
    """The fields of a request (without its store) from its stored record."""
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
    return {
        "id": data["id"],
        "key": data["key"],
        "change": decode_change(data["change_kind"], data["change"]),
        "submitter": data["submitter"],
        "status": data["status"],
        "outcome": outcome,
        "decided_by": data.get("decided_by"),
        "seq": seq if seq is not None else int(data.get("seq") or 0),
        "idempotency_key": data.get("idem"),
        "base": base,
        "base_version": base_version,
    }


def stored_dict(request: RequestView) -> dict[str, Any]:
    """The record of ``request`` as submitted (the decision adds to it)."""
    change_kind, stored_change, raw = encode_change(request.change)
    return {
        "id": request.id,
        "key": request.key,
        "change": stored_change,
        "change_kind": change_kind,
        "submitter": request.submitter,
        "status": request.status,
        "idem": request.idempotency_key,
        "fingerprint": fingerprint(request.key, change_kind, raw),
        "seq": request.seq,
    }


def json_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")


def request_id_for(key: str, idempotency_key: str | None, fresh: str) -> str:
    """The id of a new request: a function of the idempotency key when there is one.

    A replay then lands on the same record, and the submit's create-only
    compare refuses it. ``fresh`` (random hex) names a request without one.
    """
    if idempotency_key is None:
        return "r-" + fresh[:24]
    if (
        not isinstance(idempotency_key, str)
        or not idempotency_key
        or len(idempotency_key) > MAX_IDEM_LENGTH
        or has_surrogate(idempotency_key)
    ):
        raise UsageError(
            f"An idempotency key must be a non-empty string of at most {MAX_IDEM_LENGTH} "
            f"characters of Unicode text, not {idempotency_key!r}. Use one unique id per "
            "change request."
        )
    return "r-" + hashlib.sha256(f"{key}\0{idempotency_key}".encode()).hexdigest()[:24]


def check_request_id(request_id: object) -> None:
    if (
        not isinstance(request_id, str)
        or not request_id
        or "/" in request_id
        or has_surrogate(request_id)
    ):
        raise UsageError(f"{request_id!r} is not a request id; ids look like 'r-3f2a...'.")


# --- the writer role ---------------------------------------------------------------


@dataclass
class Role:
    """What one session knows about a writer role it holds."""

    key: str
    epoch: int
    ttl: float
    renewed: float  # the store clock at the last renewal
    head: str | None = None  # the request the iterator handed out last

    def due(self, now: float) -> bool:
        """True when a third of the role's time has passed since its last renewal."""
        return now - self.renewed >= self.ttl / 3


class Roles:
    """The roles each session holds, beside the session, not in it: a role
    dies with the session object."""

    def __init__(self) -> None:
        self._held: weakref.WeakKeyDictionary[object, dict[str, Role]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, session: object, key: str) -> Role | None:
        with self._lock:
            return self._held.get(session, {}).get(key)

    def set(self, session: object, key: str, role: Role | None) -> None:
        with self._lock:
            held = self._held.setdefault(session, {})
            if role is None:
                held.pop(key, None)
            else:
                held[key] = role


ROLES = Roles()
"""The roles of every session of this process (both faces)."""


class HasPolicy(Protocol):
    @property
    def policy(self) -> Any: ...


def policy_writer(store: HasPolicy, key: str) -> str | None:
    """The writer the manifest names for ``key``, or None."""
    policy = store.policy
    writer_for = getattr(policy, "writer_for", None) if policy is not None else None
    if writer_for is None:
        return None
    writer: str | None = writer_for(key)
    return writer


def writer_info(rec: Record | None, named: str | None, now: float) -> dict[str, Any] | None:
    """What ``writer_of`` returns, from the role record (and the manifest's writer)."""
    if rec is None or rec.deleted:
        if named is None:
            return None
        return {"agent": named, "epoch": 0, "deadline": None, "live": False}
    value = rec.value
    return {
        "agent": value["agent"],
        "epoch": value["epoch"],
        "deadline": value["deadline"],
        "live": value["deadline"] > now,
    }


def takeover(rec: Record | None, agent: str, now: float, ttl: float) -> dict[str, Any] | None:
    """The role record ``agent`` may write now, or None while another holds it."""
    current = None if rec is None or rec.deleted else rec.value
    if current is None:
        epoch = 1
    elif current["agent"] == agent:
        epoch = int(current["epoch"])
    elif current["deadline"] <= now:
        epoch = int(current["epoch"]) + 1
    else:
        return None
    return {"agent": agent, "epoch": epoch, "deadline": now + ttl}


def role_busy(key: str, rec: Record, agent: str, now: float) -> NotWriter:
    """The error of a claim that gave up waiting for another writer's role."""
    current = rec.value
    return not_writer(
        key,
        current["agent"],
        agent,
        f" for at least {max(0.0, current['deadline'] - now):.1f}s more "
        "(it can be taken over only once its role lapses)",
    )


def held_by_other(rec: Record | None, agent: str) -> bool:
    return rec is not None and not rec.deleted and rec.author != agent


def not_writer(key: str, holder: str, agent: str, why: str = "") -> NotWriter:
    return NotWriter(
        f"{agent} is not the writer of {key}: {holder} is{why}. Only the writer applies "
        f"changes to a queue key. Submit a change request instead: "
        f"{call('session.submit', key, var('change'))}, and wait for the writer's decision "
        f"({call('request.wait', timeout=var('seconds'))}).",
        key=key,
        writer=holder,
        agent=agent,
    )


def named_writer(key: str, named: str, agent: str) -> NotWriter:
    return not_writer(key, named, agent, " (named by the manifest)")


def fenced(key: str, agent: str, rec: Record | None) -> Fenced:
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


# --- the guard on direct writes -----------------------------------------------------

_HOLDER: dict[tuple[str, str], Compare] = {}
_NEVER_CACHE: dict[str, list[Compare]] = {}


def guard_compares(policy_named: str | None, key: str, agent: str) -> list[Compare]:
    """The compares the queue adds to every direct write of ``key`` by ``agent``.

    A key whose writer role exists (or that the manifest gives a queue
    writer) may be written directly only by that writer. The compare is
    inside the write's own transaction, so a takeover cannot slip between
    the check and the write.
    """
    if policy_named is not None and policy_named != agent:
        # Never true: the write is refused and the explainer says why.
        return [Compare(role_key(key), "version", "<", 0)]
    # Built once per key and agent (Compare is immutable): every write carries it.
    cached = _HOLDER.get((key, agent))
    if cached is None:
        if len(_HOLDER) >= 4096:
            _HOLDER.clear()
        cached = _HOLDER[(key, agent)] = Compare(role_key(key), "holder", "==", agent)
    return [cached]


def guard(session: Any, key: str, token: int | None = None) -> list[Compare]:
    """Compares added to every direct write of ``key`` (see ``Store.add_guard``).

    A key whose writer role exists (or that the manifest gives a queue
    writer) may be written directly only by that writer. The compare is
    inside the write's own transaction, so a takeover cannot slip between
    the check and the write. One function for both faces (it does no I/O):
    a store whose two faces share their guards registers it once, with an
    explanation of each kind.
    """
    return guard_compares(policy_writer(session.store, key), key, session.agent)


def guard_refusal(
    policy_named: str | None, key: str, agent: str, result: TxnResult
) -> NotWriter | None:
    """The :class:`NotWriter` to raise when the guard's compare refused a write."""
    failed = result.failed
    if failed is not None and failed.key != role_key(key):
        return None
    if policy_named is not None and policy_named != agent:
        return named_writer(key, policy_named, agent)
    rec = result.records.get(role_key(key))
    if held_by_other(rec, agent):
        assert rec is not None
        return not_writer(key, rec.value["agent"], agent)
    return None


# --- arguments ---------------------------------------------------------------------


def not_attached() -> UsageError:
    return UsageError(
        "This Request is not attached to a store; get it from "
        f"{call('session.submit', var('key'), var('change'))} or "
        f"{call('session.requests', var('key'))}."
    )


def still_pending(request: RequestView, timeout: float) -> Timeout:
    return Timeout(
        f"Request {request.id} for {request.key} is still pending after {timeout:g}s: "
        "its writer has not decided it yet. Wait again, or check that a writer "
        f"serves {request.key}: its writer takes requests with "
        f"{call('session.requests', request.key)}.",
        request=request.id,
        key=request.key,
    )


def check_role_ttl(ttl: object) -> float:
    return params.seconds(
        ttl,
        "ttl",
        minimum=0.0,
        above=True,
        example=f"{DEFAULT_ROLE_TTL:g}",
        hint="It is how long the writer role outlives the writer's last renewal.",
    )


def check_stop(stop: object) -> None:
    if stop is not None and not (hasattr(stop, "is_set") and callable(stop.is_set)):
        raise UsageError(
            f"stop must be a threading.Event (or None), not {stop!r}. Nothing was changed."
        )


def check_reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise UsageError(
            "A rejection needs a reason the submitter can act on, such as 'duplicate of an "
            f"earlier comment' ({call('session.reject', var('request'), var('reason'))}).",
        )
    if len(reason) > MAX_REASON_LENGTH:
        raise UsageError(f"A reason is at most {MAX_REASON_LENGTH} characters.")
    if has_surrogate(reason):
        raise UsageError(
            f"The reason {reason!r} holds a surrogate code point, which is not Unicode text; "
            "nothing was decided. Give the reason as plain text."
        )
    return reason


def check_request(request: object, what: str) -> RequestView:
    if not isinstance(request, RequestView):
        raise UsageError(
            f"{call(f'session.{what}', var('request'), var('...'))} takes a Request (from "
            f"{call('session.requests', var('key'))}), not {type(request).__name__}."
        )
    return request


def check_serve_args(
    apply: object,
    timeout: float | None,
    stop: object,
    limit: int | None,
    ttl: float,
    role_wait: float,
    retries: int,
    batch: int,
) -> tuple[float | None, int | None, float, float, int, int]:
    """``serve``'s arguments checked: (timeout, limit, ttl, role_wait, retries, batch)."""
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
    check_stop(stop)
    if limit is not None:
        limit = params.count(limit, "limit", example="100")
    return (
        timeout,
        limit,
        check_role_ttl(ttl),
        params.seconds(role_wait, "role_wait", example="0"),
        params.count(retries, "retries"),
        params.count(batch, "batch", minimum=1, example="64"),
    )


def wrong_key(request_id: str, stored_key: str, key: str) -> UsageError:
    return UsageError(
        f"Request {request_id} is a request for {stored_key}, not {key}; nothing was "
        "changed. Decide it as the writer of its own key."
    )


def out_of_order(key: str, oldest: str, request_id: str) -> UsageError:
    return UsageError(
        f"Requests for {key} are decided oldest first: {oldest} was submitted before "
        f"{request_id} and is still pending. Decide {oldest} first; nothing was changed."
    )


def undecided(key: str, handed: str) -> UsageError:
    return UsageError(
        f"Request {handed} for {key} was handed out but not decided. Call "
        f"{call('session.accept', var('request'), var('new_value'))} or "
        f"{call('session.reject', var('request'), var('reason'))} for each request "
        "before taking the next one."
    )


def unread_key(key: str) -> UsageError:
    return UsageError(
        f"Accepting writes {key} with a version check, but this session has not read "
        f"{key}. Read it (or take the request from {call('session.requests', key)}, "
        "which does) and accept again, or pass "
        f"{option('expect', var('the version you read'))}."
    )


def decided_already(stored: RequestView, what: str) -> PreconditionFailed:
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


def kept_conflicting(key: str) -> PreconditionFailed:
    return PreconditionFailed(f"{call('session.serve', key, var('apply'))} kept conflicting.")


# --- the writer's group decision ---------------------------------------------------


@dataclass
class Group:
    """A writer's decision of several waiting requests, to commit in one transaction."""

    compares: list[Compare]
    ops: list[Put | Delete | Append]
    decided: int
    failure: BaseException | None
    version: int
    value: Any


def plan_group(
    agent: str,
    key: str,
    current: Record | None,
    waiting: list[Record],
    apply: Callable[[Any, Any], Any],
    clock: AgentClock,
    encode: Callable[[str, Any], tuple[str, bytes]],
) -> Group:
    """Decide ``waiting`` (oldest first) with ``apply`` against the key's ``current`` record.

    Each request gets its own version of the key, its own history event and
    its own status, in submission order; an exception from ``apply`` stops
    the group there (``failure``), the ones before it still commit. The
    clock must have resumed already (``tick`` does no I/O).
    """
    if current is None or current.deleted:
        value: Any = None
        expect = 0
        version = 0 if current is None else current.version
    else:
        value = current.value
        expect = version = current.version
    # The role and the version the group was decided on; the write path
    # adds the guards of every write (a live lease on the key refuses the
    # group) in front of them.
    compares = [
        Compare(role_key(key), "holder", "==", agent),
        Compare(key, "version", "==", expect),
    ]
    ops: list[Put | Delete | Append] = []
    decided = 0
    failure: BaseException | None = None
    for rec in waiting:
        stored = request_fields(rec.value, seq=rec.revision)
        clock.observe(rec.key, rec.lamport, rec.clock)
        try:
            result = apply(value, stored["change"])
        except Exception as exc:  # committed up to here, then re-raised
            failure = exc
            break
        lamport, vector = clock.tick()
        clock_text = encode_clock(vector)
        decided_data = dict(rec.value)
        decided_data["seq"] = rec.revision
        decided_data["decided_by"] = agent
        if isinstance(result, Reject):
            decided_data.update(status="rejected", reason=str(result.reason))
            event = make_event(
                agent,
                "reject",
                key,
                lamport,
                vector,
                check="queue",
                based_on=version,
                request=stored["id"],
                outcome="rejected",
            )
            ops.append(Append(event))
        else:
            kind, data = encode(key, result)
            event = make_event(
                agent,
                "accept",
                key,
                lamport,
                vector,
                check="queue",
                based_on=expect if decided == 0 else version,
                request=stored["id"],
            )
            version += 1
            decided_data.update(
                status="accepted", version=version, value_kind=kind, value=stored_value(kind, data)
            )
            ops.append(Put(key, kind, data, agent, lamport, clock_text, event=event))
            value = result
        pkey = pending_key(key, stored["id"])
        compares.append(Compare(pkey, "version", "!=", 0))
        ops.append(Delete(pkey, purge=True))
        ops.append(
            Put(
                request_key(stored["id"]),
                "json",
                json_bytes(decided_data),
                agent,
                lamport,
                clock_text,
            )
        )
        decided += 1
    return Group(compares, ops, decided, failure, version, value)
