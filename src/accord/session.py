"""The front door: one agent's handle on a store.

A :class:`Session` knows who the agent is, what it has read (so every write
records ``based_on``, the version the agent built on), and its logical
clocks. Every operation passes :meth:`Session._intercept`, the one point
where policy (the manifest), history and test schedulers hook in.

The write path, in one place, decides what guards a write:

* ``expect=v``: the store compares the key's version with ``v`` inside the
  same transaction that writes (optimistic concurrency);
* ``lease=lease``: the store checks that the lease is the key's live lease
  (fencing), see :mod:`accord.strategies.lease`;
* ``force=True``: an explicit blind write, recorded with ``check: none``;
* nothing: create-only. A write to an existing key with no guard is refused
  with :class:`PreconditionRequired`, because a blind write is how updates
  get lost.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import params
from .backends.base import iso_time
from .clock import AgentClock, decode_clock, encode_clock, stored_agent_clock
from .diff import describe_change
from .errors import (
    Conflict,
    IdempotencyMismatch,
    InvalidValue,
    NotFound,
    PreconditionRequired,
    RetriesExhausted,
    UsageError,
    call,
    option,
    var,
)
from .keys import has_surrogate, internal, validate_key
from .records import (
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
    make_doc,
)

if TYPE_CHECKING:
    from .store import Store
    from .strategies.branch import Branch
    from .strategies.lease import Lease
    from .strategies.queue import Request
    from .watch import WatchEvent

_MAX_IDEM_LENGTH = 256
# Versions count writes, so no key comes near this; the bound keeps a compared
# version (and version + 1) inside every backend's 64-bit integers.
MAX_VERSION = 2**62

_ABSENT: Any = type("_Absent", (), {"__repr__": lambda self: "<absent>"})()
"""What a session remembers as the value of a key it saw absent or deleted
(None is a value: JSON null)."""
_UNKNOWN: Any = type("_Unknown", (), {"__repr__": lambda self: "<unknown>"})()
"""The value of a version this agent wrote in an earlier process."""
_LOOKBACK = 256
"""How many of a key's latest changes a new session looks through for its
agent's own (a write naming no version, from a session that never saw the key)."""


@dataclass
class Operation:
    """What an agent is about to do, as hooks see it.

    Hooks (``Store.add_hook``) run before the operation touches the store and
    may raise to refuse it. ``allow_blind`` may be set by a policy that lets
    this agent write the key without ``expect`` (an owner, say).
    """

    session: Session
    op: str
    key: str
    info: dict[str, Any] = field(default_factory=dict)
    allow_blind: bool = False

    @property
    def agent(self) -> str:
        return self.session.agent


class Session:
    """One agent's handle: identity, clocks, and what it has read.

    Create with :meth:`Store.session`. A session may be used from several
    threads at once. Its clocks continue its agent's from the store at its
    first event (so across processes); each agent name should have one live
    session at a time, or two of them may carry colliding clocks (see
    docs/history.md).
    """

    def __init__(self, store: Store, agent: str) -> None:
        self.store = store
        self.agent = agent
        # The clocks continue the agent's from the store (its latest event,
        # and the store's largest Lamport time), read once, at the first
        # event this session makes: happened-before holds across processes.
        self.clock = AgentClock(agent, resume=lambda: stored_agent_clock(store.backend, agent))
        self._seen: dict[str, tuple[int, Any]] = {}

    def __repr__(self) -> str:
        return f"Session(agent={self.agent!r}, store={self.store.url!r})"

    # --- interception ------------------------------------------------------

    def _intercept(self, op: str, key: str, **info: Any) -> Operation:
        operation = Operation(self, op, key, info)
        for hook in self.store._hooks:
            hook(operation)
        return operation

    def _check(self, op: str, key: str) -> None:
        """Run the hooks for an operation that needs no answer from them."""
        if self.store._hooks:
            self._intercept(op, key)

    def _remember(self, key: str, version: int, value: Any) -> None:
        # One dict store: atomic, so threads sharing a session need no lock.
        self._seen[key] = (version, value)

    def seen_version(self, key: str) -> int | None:
        """The version of ``key`` this agent last read or wrote, or None."""
        entry = self._seen.get(key)
        return None if entry is None else entry[0]

    def _last_change_by_agent(self, key: str) -> tuple[int, Any] | None:
        """``(version, value)`` of this agent's latest change of ``key`` in the
        store (value :data:`_ABSENT` for a delete, else :data:`_UNKNOWN`), or
        None when none is among the key's last :data:`_LOOKBACK` changes."""
        for i, ev in enumerate(self.store.backend.changes(key)):
            if i >= _LOOKBACK:
                break
            version = ev.get("version")
            if not isinstance(version, int):
                continue  # a lease event that older stores list among the changes
            if ev.get("agent") == self.agent:
                return version, (_ABSENT if ev.get("op") == "delete" else _UNKNOWN)
        return None

    # --- reads -------------------------------------------------------------

    def read(self, key: str) -> Doc:
        """Read the current version of ``key``.

        Raises :class:`NotFound` if the key is absent (never written, or
        deleted). The session remembers the version it read: a later write
        records it as ``based_on``, and the stored vector clock is merged into
        the agent's, so the read is part of happened-before.
        """
        validate_key(key)
        store = self.store
        if store._hooks:
            self._intercept("read", key)
        backend = store.backend
        read_live = None if store.record_reads else getattr(backend, "read_live", None)
        if read_live is not None:
            # A backend may hand over the row of a live key without building
            # a Record first (the hot path of a read); absent or deleted keys
            # take the general path below, which explains them.
            row = read_live(key)
            if row is not None:
                kind, data, version, revision, author, lamport, clock_text = row
                self.clock.observe(key, lamport, clock_text)
                value = data.decode() if kind == "text" else decode_value(kind, data)
                self._seen[key] = (version, value)
                return make_doc(
                    key, value, version, revision, author, kind, lamport, decode_clock(clock_text)
                )
        # With reads recorded, the event says when the read began (store
        # clock), so the checker can order it against acknowledged writes.
        started = backend.now() if store.record_reads else 0.0
        rec = backend.get(key)
        if rec is None or rec.deleted:
            self._remember(key, 0 if rec is None else rec.version, _ABSENT)
            if self.store.record_reads:
                self._record_read(key, rec, started)
            raise NotFound(
                f"{key} does not exist"
                + (f" (it was deleted at version {rec.version})" if rec is not None else "")
                + f". Create it with {call('write', key, var('value'), expect=0)}.",
                key=key,
            )
        self.clock.observe(key, rec.lamport, rec.clock)
        doc = self.store._doc(rec)
        self._remember(key, rec.version, doc.value)
        if self.store.record_reads:
            self._record_read(key, rec, started)
        return doc

    def _record_read(self, key: str, rec: Record | None, started: float) -> None:
        lamport, vector = self.clock.tick()
        version = 0 if rec is None or rec.deleted else rec.version
        event = self._event("read", key, lamport, vector, check="none")
        event["version"] = version
        event["start"] = iso_time(started)
        if rec is not None and not rec.deleted:
            from .records import value_hash

            event["hash"] = value_hash(rec.data)
        self.store.backend.txn([], [Append(event)])

    def scan(self, prefix: str = "") -> list[Doc]:
        """Every live key starting with ``prefix`` (agent keys only), in key order."""
        from .keys import RESERVED_PREFIX, validate_prefix

        validate_prefix(prefix)
        out = []
        for rec in self.store.backend.scan(prefix):
            if rec.key.startswith(RESERVED_PREFIX):
                continue
            self.clock.observe(rec.key, rec.lamport, rec.clock)
            doc = self.store._doc(rec)
            self._remember(rec.key, rec.version, doc.value)
            out.append(doc)
        return out

    def watch(
        self,
        key_or_prefix: str,
        since: int | None = None,
        *,
        prefix: bool = False,
        timeout: float | None = None,
        stop: threading.Event | None = None,
        retry_timeout: float = 30.0,
    ) -> Iterator[WatchEvent]:
        """Every committed write and delete of a key (or of the keys under a
        prefix) after revision ``since``, in revision order, none skipped,
        none twice. See docs/watch.md.

        ``since``: None (the default) starts at the store revision now; 0
        replays every change; ``since=event.revision`` resumes after an
        event. A target that ends with ``/`` (or is empty) is a prefix, as
        is any target with ``prefix=True``; only agent keys are watched.
        The iteration ends after ``timeout`` seconds without a change (None:
        never) or when ``stop`` is set. While the store is unavailable it
        retries, for up to ``retry_timeout`` seconds, then raises
        :class:`BackendUnavailable`. Arguments are checked at the call.
        """
        from .watch import watch

        return watch(
            self, key_or_prefix, since, prefix=prefix, timeout=timeout, stop=stop,
            retry_timeout=retry_timeout,
        )

    # --- writes ------------------------------------------------------------

    def write(
        self,
        key: str,
        value: Value,
        *,
        expect: int | None = None,
        force: bool = False,
        lease: Lease | int | None = None,
        idempotency_key: str | None = None,
    ) -> Doc:
        """Write ``value`` to ``key`` and return the new :class:`Doc`.

        Pass ``expect=v`` to write only if the key is still at version ``v``
        (``expect=0``: only if it is absent), ``lease=`` to write under a
        lease (refused with :class:`Fenced` unless it is the key's live
        lease), or ``force=True`` for an explicit blind write. With none of
        them the write only creates: an existing key gives
        :class:`PreconditionRequired`. ``idempotency_key`` makes the call safe
        to repeat: a replay returns the first result and writes nothing.

        Raises :class:`Conflict` when the version moved; its message tells
        the agent what changed and how to retry.
        """
        validate_key(key)
        kind, data = self.store._encode(key, value)
        return self._mutate(
            "write", key, value, kind, data, expect, force, lease, idempotency_key, None
        )

    def delete(
        self,
        key: str,
        *,
        expect: int | None = None,
        force: bool = False,
        lease: Lease | int | None = None,
        idempotency_key: str | None = None,
    ) -> int:
        """Delete ``key``; returns the version of the delete.

        The same guards as :meth:`write` apply, and one is required: a delete
        with no ``expect``, ``lease`` or ``force`` is refused. The version
        moves on (a later re-create continues from it, so a version is never
        reused). Raises :class:`NotFound` if the key is absent.
        """
        validate_key(key)
        doc = self._mutate(
            "delete", key, None, "text", b"", expect, force, lease, idempotency_key, None
        )
        return doc.version

    def _mutate(
        self,
        op: str,
        key: str,
        value: Value,
        kind: str,
        data: bytes,
        expect: int | None,
        force: bool,
        lease: Lease | int | None,
        idempotency_key: str | None,
        extra: dict[str, Any] | None,
    ) -> Doc:
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
        store = self.store
        allow_blind = False
        if store._hooks:
            allow_blind = self._intercept(
                op, key, expect=expect, force=force, lease=lease, idempotency_key=idempotency_key
            ).allow_blind
        idem = None
        if idempotency_key is not None:
            idem = self._idempotency(op, key, kind, data, idempotency_key)
            replay = self._replay(idem, key, value)
            if replay is not None:
                return replay

        compares: list[Compare] = []
        token: int | None = None
        if lease is not None:
            from .strategies import lease as lease_mod

            lease_compares, token = lease_mod.fence_compares(self, key, lease)
            compares.extend(lease_compares)
            check = "lease"
        elif expect is not None:
            check = "version"
        elif force or allow_blind:
            check = "none"
        else:
            check = "create"
        if op == "delete" and expect is None and check == "create":
            raise PreconditionRequired(
                f"Refusing to delete {key} without a guard. Read it and delete with "
                f"{option('expect', var('the version you read'))}, hold its lease "
                f"({call('acquire', key)}, then {call('delete', key, lease=var('lease'))}), or "
                f"pass {option('force')} to delete blindly.",
                key=key,
            )
        # The guards every write path carries (the lease exclusion, the
        # queue's writer), in the write's own transaction, before the
        # version: a write refused by a live lease is told about the lease.
        guards = store._guards(self, key, token)
        compares.extend(guards)
        seen_entry = self._seen.get(key)
        if seen_entry is None and expect is None and check in ("lease", "none"):
            # A write that names no version, from a session that never saw
            # the key (a new process: each CLI command is one): what this
            # agent last knew of it is its own latest change in the store.
            seen_entry = self._last_change_by_agent(key)
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
                checked = 0 if seen_entry[1] is _ABSENT else seen_entry[0]
        if checked is not None:
            compares.append(Compare(key, "version", "==", checked))
        if op == "delete" and expect is None:
            compares.append(Compare(key, "version", "!=", 0))

        lamport, vector = self.clock.tick()
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
        # The same fields, in the same order, as _event() (inlined: hot path).
        event: dict[str, Any] = {
            "agent": self.agent,
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
            success = [Delete(key, self.agent, lamport, clock_text, event=event)]
        else:
            success = [Put(key, kind, data, self.agent, lamport, clock_text, event=event)]
        if idem is not None:
            success.append(idem[1])
            compares.append(Compare(idem[0], "expires", "<", NOW))
        # The refusal is recorded as a conflict unless the compare that
        # refused it says otherwise (its refusal: a lease's is "fenced").
        failed = dict(event)
        failed["outcome"] = "conflict"
        if checked is not None and check != "create":
            failed["expected"] = checked
        put_if = None
        if check == "version" and op == "write" and idem is None:
            # The common optimistic write: a backend may offer it in fewer
            # statements than the general txn() (same meaning).
            put_if = getattr(store.backend, "put_if_version", None)
        if put_if is not None:
            result = put_if(success[0], expect, guards, [Append(failed)])
        else:
            result = store.backend.txn(compares, success, [Append(failed)])
        if not result.succeeded:
            return self._refused(op, key, value, checked, check, lease, token, idem, result)
        ev = result.events[0]
        version = ev["version"]
        self._seen[key] = (version, value if op == "write" else _ABSENT)
        return make_doc(key, value, version, ev["rev"], self.agent, kind, lamport, vector)

    def _refused(
        self,
        op: str,
        key: str,
        value: Value,
        expect: int | None,
        check: str,
        lease: Lease | int | None,
        token: int | None,
        idem: tuple[str, Put, str] | None,
        result: TxnResult,
    ) -> Doc:
        records = result.records
        if idem is not None:
            replay = self._replay(idem, key, value, records.get(idem[0]))
            if replay is not None:
                return replay
        self.store._explain_guard_failure(self, key, token, result)
        failed = result.failed
        if check == "lease" and (failed is None or failed.key != key):
            from .strategies import lease as lease_mod

            error = lease_mod.fenced_error(self, key, lease, records)
            # A live lease of ours with the version check failing: the key
            # moved after the version this session saw (a conflict, not a
            # fence); anything else is the lease's own refusal.
            if getattr(error, "reason", None) != "version" or expect is None:
                raise error
        rec = records.get(key)
        current = 0 if rec is None or rec.deleted else rec.version
        if check == "create":
            raise PreconditionRequired(
                f"{key} already exists (version {current}, by {rec.author if rec else '?'}). "
                "A write without an expected version only creates. Read it and write with "
                f"{option('expect', current)}, use {call('update', key, var('fn'))}, hold its "
                f"lease ({call('acquire', key)}), or pass {option('force')} to overwrite "
                "blindly.",
                key=key,
                current=current,
            )
        if op == "delete" and current == 0 and expect is None:
            raise NotFound(f"{key} does not exist; there is nothing to delete.", key=key)
        raise self._conflict(key, expect if expect is not None else 0, rec)

    def _conflict(self, key: str, expected: int, rec: Record | None) -> Conflict:
        current = 0 if rec is None or rec.deleted else rec.version
        value = None if rec is None or rec.deleted else rec.value
        writers = self.store._writers_between(key, expected, rec)
        seen = self._seen.get(key)
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
                " Re-read it, apply your change on top, and write with "
                f"{option('expect', current)}."
            )
        diff = ""
        if (
            seen is not None
            and seen[0] == expected
            and value is not None
            and seen[1] is not None
            and seen[1] is not _ABSENT
            and seen[1] is not _UNKNOWN
        ):
            diff = describe_change(seen[1], value, f"v{expected}", f"v{current}")
            message += f" Changed since version {expected}:\n{diff}"
        elif value is not None and expected != 0:
            message += f" (Version {expected}'s value is not known to this session, so no diff.)"
        # The agent now knows the current version: the message carries it.
        if rec is not None:
            self._remember(key, rec.version, _ABSENT if rec.deleted else value)
            self.clock.observe(key, rec.lamport, rec.clock)
        return Conflict(
            message,
            key=key,
            expected=expected,
            current=current,
            writers=writers,
            value=value,
            diff=diff,
        )

    # --- idempotency -------------------------------------------------------

    def _idempotency(
        self, op: str, key: str, kind: str, data: bytes, idem_key: str
    ) -> tuple[str, Put, str]:
        if (
            not isinstance(idem_key, str)
            or not idem_key
            or len(idem_key) > _MAX_IDEM_LENGTH
            or has_surrogate(idem_key)
        ):
            raise UsageError(
                f"An idempotency key must be a non-empty string of at most {_MAX_IDEM_LENGTH} "
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
        put = Put(
            record_key,
            "json",
            json.dumps(payload).encode(),
            self.agent,
            ttl=self.store.idempotency_window,
        )
        self.store._maybe_purge_idempotency()
        return record_key, put, fingerprint

    def _replay(
        self,
        idem: tuple[str, Put, str],
        key: str,
        value: Value,
        rec: Record | None = None,
    ) -> Doc | None:
        record_key, _, fingerprint = idem
        if rec is None:
            rec = self.store.backend.get(record_key)
        if rec is None or rec.deleted:
            return None
        if rec.expires is not None and rec.expires < self.store.backend.now():
            return None
        stored = rec.value
        idem_key = stored["idem"]
        if stored["fingerprint"] != fingerprint:
            raise IdempotencyMismatch(
                f"Idempotency key {idem_key!r} was first used for a different change "
                f"({stored['op']} of {stored['key']}). A replay must repeat the same call with "
                "the same value; use a new idempotency key for a new change.",
                idempotency_key=idem_key,
            )
        result = stored.get("result")
        if result is None:
            # The record and the write commit together, so the first call's
            # result is the write the record was committed with: find it.
            result = self.store._idempotent_result(idem_key, key)
        return Doc(
            key=key,
            value=value if stored["op"] == "write" else None,
            version=result["version"],
            revision=result["rev"],
            author=result["agent"],
            kind=rec.kind if stored["op"] != "write" else _kind_of(value),
            lamport=result.get("lamport", 0),
            clock=result.get("clock", {}),
        )

    # --- read-modify-write -------------------------------------------------

    def update(
        self,
        key: str,
        fn: Callable[[Any], Value],
        *,
        retries: int = 8,
        backoff: float = 0.01,
        max_backoff: float = 2.0,
        idempotency_key: str | None = None,
    ) -> Doc:
        """Read ``key``, compute ``fn(old_value)`` and write it with ``expect``.

        ``fn`` receives None when the key is absent, and must be safe to call
        again: on a :class:`Conflict` the loop re-reads and calls it with the
        new value, after a jittered exponential backoff (full jitter, from
        ``backoff`` seconds doubling up to ``max_backoff``). After ``retries``
        lost attempts it raises :class:`RetriesExhausted`.
        """
        if not callable(fn):
            raise UsageError(
                f"{call('update', key, var('fn'))} takes a function old_value -> new_value, "
                f"not {fn!r}. Nothing was changed."
            )
        retries = params.count(retries, "retries")
        backoff = params.seconds(backoff, "backoff", example="0.01")
        max_backoff = params.seconds(max_backoff, "max_backoff", example="2")
        last: Conflict | None = None
        for attempt in range(retries + 1):
            try:
                doc: Doc | None = self.read(key)
            except NotFound:
                doc = None
            expect = doc.version if doc is not None else 0
            new_value = fn(None if doc is None else doc.value)
            try:
                return self.write(key, new_value, expect=expect, idempotency_key=idempotency_key)
            except Conflict as exc:
                last = exc
                if attempt < retries:
                    # Full jitter (AWS, "Exponential Backoff and Jitter"): the
                    # losers of one round spread out instead of colliding again.
                    # The defaults were tuned on 8 processes hammering one key
                    # of one SQLite file: none gives up (tests/test_sqlite_stress).
                    time.sleep(random.uniform(0, min(max_backoff, backoff * 2**attempt)))
        assert last is not None
        raise RetriesExhausted(
            f"{call('update', key, var('fn'))} lost {retries + 1} attempts in a row to other "
            f"writers (last: {last.template.splitlines()[0]}). The key is hot: retry later, "
            f"raise {option('retries', var('n'))}, or use a lease or a queue for it.",
            key=key,
            attempts=retries + 1,
        )

    # --- strategies (recipes over the primitive) ---------------------------

    def acquire(
        self,
        key: str,
        *,
        ttl: float = 30,
        wait: float = 10,
        mode: str = "exclusive",
        keepalive: bool = False,
    ) -> Lease:
        """Acquire a lease on ``key``; you *must* release it (or let it expire).

        See :mod:`accord.strategies.lease`. Raises :class:`LeaseTimeout` if it
        is not granted within ``wait`` seconds.
        """
        from .strategies import lease as lease_mod

        return lease_mod.acquire(self, key, ttl=ttl, wait=wait, mode=mode, keepalive=keepalive)

    def lease(
        self,
        key: str,
        *,
        ttl: float = 30,
        wait: float = 10,
        mode: str = "exclusive",
        keepalive: bool = False,
    ) -> Lease:
        """A lease as a context manager: ``with session.lease(key) as lease:``.

        Leaving the block releases it, and raises :class:`LeaseLost` if the
        lease lapsed inside the block.
        """
        return self.acquire(key, ttl=ttl, wait=wait, mode=mode, keepalive=keepalive)

    def lease_all(
        self,
        keys: Sequence[str],
        *,
        ttl: float = 30,
        wait: float = 10,
        mode: str = "exclusive",
        keepalive: bool = False,
    ) -> Any:
        """Leases on several keys, taken in one canonical order (no deadlock).

        ``keepalive=True`` renews each in the background, as for :meth:`acquire`.
        """
        from .strategies import lease as lease_mod

        return lease_mod.acquire_all(
            self, keys, ttl=ttl, wait=wait, mode=mode, keepalive=keepalive
        )

    def submit(self, key: str, change: Any, *, idempotency_key: str | None = None) -> Request:
        """Submit a change request for ``key`` to its writer (queue strategy)."""
        from .strategies import queue

        return queue.submit(self, key, change, idempotency_key=idempotency_key)

    def requests(self, key: str, *, timeout: float = 5, **kwargs: Any) -> Iterator[Request]:
        """Pending requests for ``key``, oldest first; claims the writer role.

        ``kwargs`` (``ttl``, ``role_wait``, ``stop``): see ``strategies.queue.requests``.
        """
        from .strategies import queue

        requests: Iterator[Request] = queue.requests(self, key, timeout=timeout, **kwargs)
        return requests

    def accept(self, request: Request, new_value: Value, *, expect: int | None = None) -> Request:
        """Accept ``request``: write ``new_value`` and mark the request accepted.

        The write is checked against ``expect`` (default: the version read for it).
        """
        from .strategies import queue

        return queue.accept(self, request, new_value, expect=expect)

    def reject(self, request: Request, reason: str) -> Request:
        """Reject ``request`` with ``reason``; nothing is written."""
        from .strategies import queue

        return queue.reject(self, request, reason)

    def serve(self, key: str, apply: Callable[[Any, Any], Value], **kwargs: Any) -> int:
        """Run the writer loop for ``key``: ``apply(current_value, change)``."""
        from .strategies import queue

        served: int = queue.serve(self, key, apply, **kwargs)
        return served

    def fork(self, key: str) -> Branch:
        """A private copy of ``key`` based on its current version."""
        from .strategies import branch

        return branch.fork(self, key)

    def branch(self, key: str, branch_id: str) -> Branch:
        """The branch ``branch_id`` of ``key``, acting as this agent.

        Read it freely; ``write()`` and ``discard()`` work only if this agent
        forked it (:class:`NotOwner` otherwise). :class:`NotFound` if none.
        """
        from .strategies import branch

        return branch.get_branch(self.store, key, branch_id, self)

    def branches(self, key: str) -> list[Branch]:
        """The open branches of ``key``, oldest first, acting as this agent."""
        from .strategies import branch

        found: list[Branch] = branch.branches(self.store, key, self)
        return found

    # --- helpers -----------------------------------------------------------

    def _event(
        self,
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
        """A history event of this agent; the backend adds rev, time, version."""
        return {
            "agent": self.agent,
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


def _kind_of(value: Value) -> str:
    try:
        return encode_value(value)[0]
    except InvalidValue:  # pragma: no cover - the value was stored once already
        return "bytes"


__all__ = ["Operation", "Session", "decode_clock"]
