"""The rules of a write, without I/O: each written once, for every write path.

A write of an agent key (a session's write or delete, a queue writer's
accept and group decision, a merge commit) is built here and committed by
:class:`accord._writepath.WritePath`:

* :func:`check_args` refuses arguments no key can satisfy;
* :func:`plan_write` turns a session write's intent (``expect``, ``lease``,
  ``force``, nothing) into the compares, the ops and the history event;
* :func:`make_event` builds every history event an agent makes;
* :func:`conflict_error`, :func:`create_refused` and :func:`unguarded_delete`
  read a refused write into the error the agent gets;
* :func:`encode` applies the store's value size limit;

The guards every write path carries (the lease exclusion, the queue's
writer, anything added with ``Store.add_guard``) are registered in one place,
:class:`Guards`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import params
from ..clock import AgentClock, decode_clock, encode_clock
from ..diff import describe_change
from ..errors import (
    Conflict,
    IdempotencyMismatch,
    InvalidValue,
    NotFound,
    PreconditionRequired,
    RetriesExhausted,
    UsageError,
    ValueTooLarge,
    argument,
    call,
    option,
    var,
)
from ..keys import has_surrogate, internal
from ..records import (
    NOW,
    Append,
    Compare,
    Delete,
    Doc,
    Op,
    Put,
    Record,
    TxnResult,
    Value,
    decode_value,
    encode_value,
)

MAX_VERSION = 2**62
"""The largest version a write may name. Versions count writes, so no key
comes near it; the bound keeps a compared version (and version + 1) inside
every backend's 64-bit integers."""

ABSENT: Any = type("_Absent", (), {"__repr__": lambda self: "<absent>"})()
"""What a session remembers as the value of a key it saw absent or deleted
(None is a value: JSON null)."""
UNKNOWN: Any = type("_Unknown", (), {"__repr__": lambda self: "<unknown>"})()
"""The value of a version this agent wrote in an earlier process."""
LOOKBACK = 256
"""How many of a key's latest changes a new session looks through for its
agent's own (a write naming no version, from a session that never saw the key)."""


class Seen(dict[str, tuple[int, Any]]):
    """What one agent has read or written: ``key -> (version, value)``.

    A plain dict underneath (one item store is atomic, so threads sharing a
    session need no lock); the value is :data:`ABSENT` for a key seen absent
    or deleted, :data:`UNKNOWN` for a version this agent wrote in an earlier
    process.
    """

    __slots__ = ()

    def remember(self, key: str, version: int, value: Any) -> None:
        self[key] = (version, value)

    def version(self, key: str) -> int | None:
        entry = self.get(key)
        return None if entry is None else entry[0]


class Actor(Protocol):
    """What the write path needs of the agent writing: its name, clocks and memory."""

    agent: str
    clock: AgentClock
    seen: Seen


@dataclass
class Operation:
    """What an agent is about to do, as hooks see it.

    Hooks (``Store.add_hook``) run before the operation touches the store and
    may raise to refuse it. ``allow_blind`` may be set by a policy that lets
    this agent write the key without ``expect`` (an owner, say).
    """

    session: Any
    op: str
    key: str
    info: dict[str, Any] = field(default_factory=dict)
    allow_blind: bool = False

    @property
    def agent(self) -> str:
        agent: str = self.session.agent
        return agent


Hook = Callable[[Operation], Any]
"""``hook(operation)``: may raise to refuse the operation. A hook may be a
coroutine function: the async face awaits it (see :class:`Guards` for the
rules both kinds follow)."""
Guard = Callable[[Any, str, "int | None"], list[Compare]]
"""``guard(session, key, token)``: compares for a write of ``key`` by
``session``'s agent carrying the fencing token ``token`` (None without a lease).
Always a plain function, with no I/O: it runs inside every write."""
Explain = Callable[[Any, str, "int | None", TxnResult], Any]
"""``explain(session, key, token, result)``: raise the guard's own error when
one of its compares refused the write (``result.failed``). A plain function
or a coroutine function (see :class:`Guards`)."""


class Guards:
    """The guards every write of an agent key carries, registered one way.

    ``Store`` registers the lease exclusion first (a write refused by a live
    lease and by something else is told about the lease, which it must wait
    out), then the queue's writer guard; a manifest or a user adds more with
    ``Store.add_guard``.

    **Sync and async explanations.** A guard itself is a plain function with
    no I/O (it only builds compares). Its explanation, like a hook, may read
    the store, so it comes in two kinds:

    * a plain function, run with a sync ``Session``. The sync face calls it
      directly. The async face runs it in a worker thread with the session's
      sync twin when the store has one (``AsyncStore.sync``: SQLite, memory
      through a thread, PostgreSQL); a store with no twin (an async backend
      alone, such as the explorer's) calls it inline with the *async*
      session, so there it must do no I/O (the queue's writer guard reads
      only the refused result: it qualifies);
    * a coroutine function, awaited by the async face with the async
      session, in the loop, without a thread. The sync face never runs it.

    A guard may have one of each: registering a guard that is already here
    adds no second compare; it gives the guard the explanation of the kind
    it lacked (or replaces the one of the same kind). So a store with a sync
    twin, whose sync face registered ``(lease.guard, lease.explain)``, gives
    its async face a native explanation with
    ``astore.add_guard(lease.guard, explain_async)``; a store with no twin
    registers the async one alone. The async face prefers the coroutine.
    Hooks follow the same rules (``Store.add_hook``); the sync face skips a
    coroutine hook, which only an async store sharing its hooks can add.
    """

    __slots__ = ("_async", "_guards", "_sync")

    def __init__(self) -> None:
        self._guards: list[Guard] = []
        self._sync: list[Explain | None] = []
        self._async: list[Explain | None] = []

    def add(self, guard: Guard, explain: Explain) -> None:
        is_async = inspect.iscoroutinefunction(explain)
        for i, known in enumerate(self._guards):
            if known is guard:
                (self._async if is_async else self._sync)[i] = explain
                return
        self._guards.append(guard)
        self._sync.append(None if is_async else explain)
        self._async.append(explain if is_async else None)

    def compares(self, actor: Any, key: str, token: int | None) -> list[Compare]:
        out: list[Compare] = []
        for guard in self._guards:
            out += guard(actor, key, token)
        return out

    def explainers(
        self, actor: Any, key: str, token: int | None, failed: Compare | None
    ) -> list[tuple[Explain | None, Explain | None]]:
        """``(sync, async)`` explanations to run for a write refused by
        ``failed``: those of the guards whose compares include it (every one
        when the backend could not say which compare failed)."""
        return [
            (sync, coro)
            for guard, sync, coro in zip(self._guards, self._sync, self._async, strict=True)
            if failed is None or failed in guard(actor, key, token)
        ]


def make_event(
    agent: str,
    op: str,
    key: str | None,
    lamport: int,
    vector: dict[str, int],
    *,
    check: str = "none",
    based_on: int | None = None,
    lease: int | None = None,
    idem: str | None = None,
    request: str | None = None,
    outcome: str = "ok",
) -> dict[str, Any]:
    """A history event of ``agent``; the backend adds rev, time, version.

    The fields, in this order, are the ones docs/history.md lists.
    """
    return {
        "agent": agent,
        "op": op,
        "key": key,
        "based_on": based_on,
        "check": check,
        "outcome": outcome,
        "lamport": lamport,
        "clock": vector,
        "lease": lease,
        "idem": idem,
        "request": request,
    }


def encode(key: str, value: Value, limit: int) -> tuple[str, bytes]:
    """``(kind, data)`` of ``value``; :class:`ValueTooLarge` over ``limit`` bytes."""
    kind, data = encode_value(value)
    if len(data) > limit:
        raise ValueTooLarge(
            f"The value for {key} is {len(data):,} bytes, over this store's limit of "
            f"{limit:,} bytes; nothing was written. Split it across several "
            f"keys, or open the store with a larger limit ({argument('max_value_size')}).",
            key=key,
            size=len(data),
            limit=limit,
        )
    return kind, data


def kind_of(value: Value) -> str:
    try:
        return encode_value(value)[0]
    except InvalidValue:  # pragma: no cover - the value was stored once already
        return "bytes"


def doc_of(rec: Record) -> Doc:
    """The :class:`Doc` of a live record."""
    return Doc(
        key=rec.key,
        value=decode_value(rec.kind, rec.data),
        version=rec.version,
        revision=rec.revision,
        author=rec.author,
        kind=rec.kind,
        lamport=rec.lamport,
        clock=decode_clock(rec.clock),
    )


def not_found(key: str, rec: Record | None) -> NotFound:
    """The error of a read of an absent (``rec`` None) or deleted key."""
    return NotFound(
        f"{key} does not exist"
        + (f" (it was deleted at version {rec.version})" if rec is not None else "")
        + f". Create it with {call('write', key, var('value'), expect=0)}.",
        key=key,
    )


# --- a session's write ------------------------------------------------------------


def check_args(op: str, key: str, expect: int | None, force: bool) -> None:
    """Refuse a write's arguments that no key can satisfy (before any I/O)."""
    if expect is not None:
        params.version(expect)
        if expect > MAX_VERSION:
            raise UsageError(
                f"{option('expect', expect)} is not a version any key can have (at most "
                f"{MAX_VERSION}). Read {key} and pass the version you read."
            )
    params.flag(force, "force")
    if op == "delete" and expect == 0:
        raise UsageError(
            f"Refusing to delete {key} with {option('expect', 0)}: {option('expect', 0)} "
            "means 'the key is absent', and an absent key has nothing to delete. Read it and "
            f"delete with {option('expect', var('the version you read'))}."
        )


def check_of(expect: int | None, force: bool, allow_blind: bool, leased: bool) -> str:
    """What guards a write: ``lease``, ``version``, ``none`` (blind) or ``create``."""
    if leased:
        return "lease"
    if expect is not None:
        return "version"
    if force or allow_blind:
        return "none"
    return "create"


def unguarded_delete(key: str) -> PreconditionRequired:
    return PreconditionRequired(
        f"Refusing to delete {key} without a guard. Read it and delete with "
        f"{option('expect', var('the version you read'))}, hold its lease "
        f"({call('acquire', key)}, then {call('delete', key, lease=var('lease'))}), or "
        f"pass {option('force')} to delete blindly.",
        key=key,
    )


def needs_own_change(check: str, expect: int | None, seen_entry: object) -> bool:
    """Whether a write must look up this agent's own latest change of the key.

    A write that names no version, from a session that never saw the key (a
    new process: each CLI command is one): what this agent last knew of it
    is its own latest change in the store.
    """
    return seen_entry is None and expect is None and check in ("lease", "none")


def own_change_in(agent: str, ev: dict[str, Any]) -> tuple[int, Any] | None:
    """``(version, value)`` when ``ev`` (one of a key's changes, newest first)
    is ``agent``'s change (value :data:`ABSENT` for a delete, else
    :data:`UNKNOWN`). The walk stops at the first, and after :data:`LOOKBACK`."""
    version = ev.get("version")
    if not isinstance(version, int):
        return None  # a lease event that older stores list among the changes
    if ev.get("agent") == agent:
        return version, (ABSENT if ev.get("op") == "delete" else UNKNOWN)
    return None


@dataclass(slots=True)
class WritePlan:
    """A session write, ready to commit: what to check, what to apply, what to log."""

    check: str
    checked: int | None
    compares: list[Compare]
    success: list[Op]
    failure: list[Op]
    fast: bool
    """One put checked by one version compare on its key: the shape of the
    backends' ``put_if_version`` (``success[0]`` against ``checked``)."""


def plan_write(
    agent: str,
    op: str,
    key: str,
    kind: str,
    data: bytes,
    *,
    check: str,
    expect: int | None,
    force: bool,
    token: int | None,
    seen_entry: tuple[int, Any] | None,
    idempotency_key: str | None,
    idem_put: tuple[str, Put] | None,
    extra: dict[str, Any] | None,
    lamport: int,
    vector: dict[str, int],
) -> WritePlan:
    """The compares (after the lease's fence and the guards), ops and event of
    a session's write or delete."""
    compares: list[Compare] = []
    # The version the write is checked against: the one named, for a
    # create none, and under a lease the one this agent last saw. A
    # lease keeps others out only while it is live; a version written
    # before the grant that this agent never saw must not be erased by
    # it. An agent that never touched the key relies on the lease alone:
    # every change since the grant was made under this lease.
    checked = expect
    if expect is None:
        if check == "create":
            checked = 0
        elif check == "lease" and not force and seen_entry is not None:
            checked = 0 if seen_entry[1] is ABSENT else seen_entry[0]
    if checked is not None:
        compares.append(Compare(key, "version", "==", checked))
    if op == "delete" and expect is None:
        compares.append(Compare(key, "version", "!=", 0))
    seen = None if seen_entry is None else seen_entry[0]
    # based_on is what the agent built on: the version it named, or for a
    # create the tombstone it saw (so the version chain stays unbroken),
    # or for an unguarded write whatever it last read. That last case is
    # what makes a lost update visible in the history.
    if expect:
        based_on: int | None = expect
    elif expect == 0 or check == "create":
        based_on = seen or 0
    else:
        based_on = seen
    # The same fields, in the same order, as make_event() (inlined: hot path).
    event: dict[str, Any] = {
        "agent": agent,
        "op": op,
        "key": key,
        "based_on": based_on,
        "check": "version" if check == "create" else check,
        "outcome": "ok",
        "lamport": lamport,
        "clock": vector,
        "lease": token,
        "idem": idempotency_key,
        "request": None,
    }
    if extra:
        event.update(extra)
    clock_text = encode_clock(vector)
    success: list[Op]
    if op == "delete":
        success = [Delete(key, agent, lamport, clock_text, event=event)]
    else:
        success = [Put(key, kind, data, agent, lamport, clock_text, event=event)]
    if idem_put is not None:
        success.append(idem_put[1])
        compares.append(Compare(idem_put[0], "expires", "<", NOW))
    # The refusal is recorded as a conflict unless the compare that
    # refused it says otherwise (its refusal: a lease's is "fenced").
    failed = dict(event)
    failed["outcome"] = "conflict"
    if checked is not None and check != "create":
        failed["expected"] = checked
    fast = op == "write" and idem_put is None and check in ("version", "create")
    return WritePlan(check, checked, compares, success, [Append(failed)], fast)


# --- reading a refusal into an error ------------------------------------------------


def create_refused(key: str, rec: Record | None) -> PreconditionRequired:
    """A create-only write found the key existing."""
    current = 0 if rec is None or rec.deleted else rec.version
    return PreconditionRequired(
        f"{key} already exists (version {current}, by {rec.author if rec else '?'}). "
        "A write without an expected version only creates. Read it and write with "
        f"{option('expect', current)}, use {call('update', key, var('fn'))}, hold its "
        f"lease ({call('acquire', key)}), or pass {option('force')} to overwrite "
        "blindly.",
        key=key,
        current=current,
    )


WRITERS_SHOWN = 20
"""How many of the writers since a version a Conflict names."""


def take_writer(out: list[tuple[int, str]], ev: dict[str, Any], expected: int) -> bool:
    """Walking a key's changes newest first: add ``ev``'s (version, agent) to
    ``out`` if it came after ``expected``; True when the walk is done (then
    reverse ``out``: oldest first)."""
    version = ev.get("version")
    if not isinstance(version, int):
        return False  # a lease event, which older stores listed among the changes
    if version <= expected or len(out) >= WRITERS_SHOWN:
        return True
    out.append((version, ev["agent"]))
    return False


def conflict_error(
    key: str,
    expected: int,
    rec: Record | None,
    writers: list[tuple[int, str]],
    seen: tuple[int, Any] | None,
) -> Conflict:
    """The :class:`Conflict` of a write based on ``expected`` that found ``rec``.

    ``writers`` are the changes since ``expected``; ``seen`` is what the
    writing agent remembers of the key (for the diff).
    """
    current = 0 if rec is None or rec.deleted else rec.version
    value = None if rec is None or rec.deleted else rec.value
    if rec is not None and rec.deleted:
        state = f"it was deleted (delete is version {rec.version})"
    elif current == 0:
        state = "it does not exist"
    else:
        state = f"it is at version {current}"
    if expected == 0:
        lead = f"Conflict on {key}: you wrote to create it ({option('expect', 0)}), but {state}"
    else:
        lead = f"Conflict on {key}: you wrote based on version {expected}, but {state}"
    who = ", ".join(f"v{v} by {a}" for v, a in writers)
    message = lead + (f" ({who})." if who else ".")
    if current == 0:
        message += (
            f" Re-read it, and create it again with {option('expect', 0)} if it should exist."
        )
    else:
        message += (
            f" Re-read it, apply your change on top, and write with {option('expect', current)}."
        )
    diff = ""
    if (
        seen is not None
        and seen[0] == expected
        and value is not None
        and seen[1] is not None
        and seen[1] is not ABSENT
        and seen[1] is not UNKNOWN
    ):
        diff = describe_change(seen[1], value, f"v{expected}", f"v{current}")
        message += f" Changed since version {expected}:\n{diff}"
    elif value is not None and expected != 0:
        message += f" (Version {expected}'s value is not known to this session, so no diff.)"
    return Conflict(
        message,
        key=key,
        expected=expected,
        current=current,
        writers=writers,
        value=value,
        diff=diff,
    )


# --- idempotency keys ---------------------------------------------------------------

MAX_IDEM_LENGTH = 256


def idempotency_record(
    agent: str, op: str, key: str, kind: str, data: bytes, idem_key: str, window: float
) -> tuple[str, Put, str]:
    """``(record key, the record's Put, fingerprint)`` of a write carrying
    ``idem_key``: the record commits with the write, in its transaction, and
    lives ``window`` seconds."""
    if (
        not isinstance(idem_key, str)
        or not idem_key
        or len(idem_key) > MAX_IDEM_LENGTH
        or has_surrogate(idem_key)
    ):
        raise UsageError(
            f"An idempotency key must be a non-empty string of at most {MAX_IDEM_LENGTH} "
            f"characters of Unicode text, not {idem_key!r}. Use one unique id per logical "
            "change."
        )
    digest = hashlib.sha256()
    for part in (op, key, kind):
        digest.update(part.encode() + b"\0")
    digest.update(data)
    fingerprint = digest.hexdigest()
    record_key = internal("idem", hashlib.sha256(idem_key.encode()).hexdigest())
    payload = {"idem": idem_key, "op": op, "key": key, "fingerprint": fingerprint}
    put = Put(record_key, "json", json.dumps(payload).encode(), agent, ttl=window)
    return record_key, put, fingerprint


def live_idempotency(rec: Record | None, now: float | None) -> dict[str, Any] | None:
    """The stored payload of an idempotency record still in its window, or None.

    ``now`` is the store clock (None: the record has no deadline to check).
    """
    if rec is None or rec.deleted:
        return None
    if rec.expires is not None and now is not None and rec.expires < now:
        return None
    stored: dict[str, Any] = rec.value
    return stored


def check_replay(stored: dict[str, Any], fingerprint: str) -> None:
    """Refuse a replay of an idempotency key with another change."""
    if stored["fingerprint"] != fingerprint:
        raise IdempotencyMismatch(
            f"Idempotency key {stored['idem']!r} was first used for a different change "
            f"({stored['op']} of {stored['key']}). A replay must repeat the same call with "
            "the same value; use a new idempotency key for a new change.",
            idempotency_key=stored["idem"],
        )


def replayed_doc(
    stored: dict[str, Any], result: dict[str, Any], key: str, value: Value, rec_kind: str
) -> Doc:
    """The :class:`Doc` a replay returns: the first call's write (``result``, its event)."""
    return Doc(
        key=key,
        value=value if stored["op"] == "write" else None,
        version=result["version"],
        revision=result["rev"],
        author=result["agent"],
        kind=rec_kind if stored["op"] != "write" else kind_of(value),
        lamport=result.get("lamport", 0),
        clock=result.get("clock", {}),
    )


# --- update(): the read-modify-write loop's decisions ------------------------------------


def check_update_args(
    key: str, fn: object, retries: object, backoff: object, max_backoff: object
) -> tuple[int, float, float]:
    """Checked ``(retries, backoff, max_backoff)`` of an ``update()`` call."""
    if not callable(fn):
        raise UsageError(
            f"{call('update', key, var('fn'))} takes a function old_value -> new_value, "
            f"not {fn!r}. Nothing was changed."
        )
    return (
        params.count(retries, "retries"),
        params.seconds(backoff, "backoff", example="0.01"),
        params.seconds(max_backoff, "max_backoff", example="2"),
    )


def backoff_delay(
    attempt: int, backoff: float, max_backoff: float, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to sleep after losing attempt ``attempt`` (0-based); ``rand``
    gives the jitter (uniform in [0, 1): the store's ``random``).

    Full jitter (AWS, "Exponential Backoff and Jitter"): the losers of one
    round spread out instead of colliding again. The defaults were tuned on
    8 processes hammering one key of one SQLite file: none gives up
    (tests/test_sqlite_stress).
    """
    return float(rand() * min(max_backoff, backoff * 2**attempt))


def retries_exhausted(key: str, retries: int, last: Conflict) -> RetriesExhausted:
    return RetriesExhausted(
        f"{call('update', key, var('fn'))} lost {retries + 1} attempts in a row to other "
        f"writers (last: {last.template.splitlines()[0]}). The key is hot: retry later, "
        f"raise {option('retries', var('n'))}, or use a lease or a queue for it.",
        key=key,
        attempts=retries + 1,
    )
