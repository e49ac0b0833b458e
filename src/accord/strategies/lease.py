"""Pessimistic leases: fencing tokens, fair waiting, shared/exclusive, deadlocks.

A lease is state inside the store, written through ``Backend.txn`` like any
other record, so it works on every backend and every TTL runs on the store's
clock (``Backend.now()``, read inside the transaction). For a key ``K`` the
records live under ``.accord/lease/K/``:

``tickets``
    A sequence: every waiter takes the next version as its ticket number.
``tokens``
    A sequence: every grant takes the next version as its fencing token.
    Versions are never reused, so tokens start at 1 and only grow, also
    across restarts.
``q/<ticket>``
    A waiting request (agent, mode), with a TTL the waiter refreshes; a dead
    waiter's ticket lapses and the queue moves past it.
``held/<token>``
    A granted lease, with the lease's TTL. It is *the* fencing record: a
    write under token N is accepted only while ``held/N`` exists, has not
    expired and is held by the writer (compares ``expires > NOW`` and
    ``holder``, checked by the store in the write's own transaction). A
    held record is never revived once expired (renewal compares
    ``expires > NOW`` too), and token N is never granted again.

Exclusion: while any grant of ``K`` is live, every write and delete of
``K`` on every write path carries one ``vacant`` compare on the prefix
``held/`` (:func:`guard`, a store guard): it fails unless the only live grant
is the exclusive one the write carries. So nobody writes a leased key
without its lease (:class:`~accord.LeaseHeld`), checked by the store in the
write's own transaction, on its clock.

Waiting is first come, first served by ticket. An exclusive request is
granted when no live ticket is ahead of it and nothing is held; a shared
one when no exclusive ticket is ahead of it and no exclusive lease is held.
So a waiting exclusive request blocks shared requests that arrive after it
(no writer starvation). There is no thundering herd: a waiter sleeps in
``Backend.wait`` on its *own* ticket record only; whoever frees the key
(release, giving up) rewrites, in the same transaction, the tickets of the
waiters that became grantable, which wakes exactly those. A waiter also
wakes when the nearest blocker's deadline passes (a lapsed lease changes no
record), and to refresh its ticket.

Deadlocks: every waiter also writes ``.accord/waitfor/<agent>/<key-ticket>``
so the wait-for graph can be followed from agent to agent. A waiter that
finds itself on a cycle gives up its ticket in a transaction that commits
only if the whole cycle is still there, so exactly one waiter of a cycle
fails with :class:`~accord.Deadlock` and the others proceed.

History: ``lease_acquire``, ``lease_renew``, ``lease_release`` and
``lease_expire`` events carry the token in ``lease`` and the deadline in
``expires``; see docs/leases.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Self

from .. import params
from .._core.write import make_event
from ..errors import (
    AccordError,
    Deadlock,
    Fenced,
    LeaseHeld,
    LeaseLost,
    LeaseTimeout,
    UsageError,
    call,
    option,
    var,
)
from ..keys import internal, validate_key
from ..records import NOW, Append, Compare, Delete, Op, Put, Record, TxnResult

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..session import Session
    from ..store import Store

__all__ = [
    "MAX_TTL",
    "MAX_WAIT",
    "MIN_TTL",
    "Lease",
    "LeaseInfo",
    "LeaseSet",
    "LeaseStatus",
    "acquire",
    "acquire_all",
    "explain",
    "fence_compares",
    "fenced_error",
    "from_token",
    "guard",
    "install",
    "status",
]

Mode = Literal["exclusive", "shared"]
MODES: tuple[Mode, ...] = ("exclusive", "shared")
MIN_TTL = 0.01
"""Shortest TTL accepted, in seconds: a lease must outlive its own grant."""
MAX_TTL = 86400.0
"""Longest TTL accepted (one day). Renew, or use ``keepalive=True``, for longer work."""
MAX_WAIT = 86400.0
"""Longest ``wait`` accepted (one day)."""

_DIGITS = 20
_MAX_SLEEP = 1.0  # a lost wake-up costs at most this much latency, never correctness
# A cycle can only be closed by a request joining a line, and the last one to
# join sees every edge (each reads after its own commit), so the check at
# enqueue finds every deadlock; the slow re-check is a safety net.
_DEADLOCK_RECHECK = 5.0
_SPIN_LIMIT = 10_000  # compare-and-swap retries before we call the store broken
CANCEL_LATENCY = 0.05
"""Longest a cancellable acquire sleeps before it looks at its ``cancel`` event."""


class LeaseCancelled(AccordError):
    """An acquire given up through its ``cancel`` event; nothing is held.

    Internal to ``accord.aio``, which turns it back into the caller's
    ``asyncio.CancelledError``.
    """


# --- layout -------------------------------------------------------------------


def _prefix(key: str) -> str:
    return internal("lease", key) + "/"


def _tickets_key(key: str) -> str:
    return _prefix(key) + "tickets"


def _tokens_key(key: str) -> str:
    return _prefix(key) + "tokens"


def _queue_key(key: str, ticket: int) -> str:
    return f"{_prefix(key)}q/{ticket:0{_DIGITS}d}"


def _held_prefix(key: str) -> str:
    return _prefix(key) + "held/"


def _held_key(key: str, token: int) -> str:
    return f"{_held_prefix(key)}{token:0{_DIGITS}d}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _waitfor_prefix(agent: str) -> str:
    return internal("waitfor", _digest(agent)) + "/"


def _waitfor_key(agent: str, key: str, ticket: int) -> str:
    return f"{_waitfor_prefix(agent)}{_digest(key)}-{ticket:0{_DIGITS}d}"


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- what the store holds about one key ----------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    """One ticket (``q``) or grant (``held``) record, decoded."""

    kind: Literal["q", "held"]
    number: int
    record_key: str
    agent: str
    mode: str
    expires: float | None
    version: int
    data: bytes
    ticket: int | None

    def live(self, now: float) -> bool:
        return self.expires is None or self.expires > now


@dataclass(slots=True)
class _State:
    key: str
    tickets_version: int = 0
    tokens_version: int = 0
    queue: list[_Entry] = field(default_factory=list)
    held: list[_Entry] = field(default_factory=list)

    def entry(self, kind: str, number: int) -> _Entry | None:
        for e in self.queue if kind == "q" else self.held:
            if e.number == number:
                return e
        return None


def _scan(backend: Backend, key: str) -> _State:
    """Everything about ``key``'s leases, from one scan (one snapshot)."""
    prefix = _prefix(key)
    state = _State(key)
    for rec in backend.scan(prefix):
        rest = rec.key[len(prefix) :]
        if rest == "tickets":
            state.tickets_version = rec.version
        elif rest == "tokens":
            state.tokens_version = rec.version
        else:
            entry = _decode(rec, rest)
            if entry is not None:
                (state.queue if entry.kind == "q" else state.held).append(entry)
    # Keys nested under K (say K/sub) share the prefix; _decode drops them by shape.
    state.queue.sort(key=lambda e: e.number)
    state.held.sort(key=lambda e: e.number)
    return state


def _decode(rec: Record, rest: str) -> _Entry | None:
    kind, _, number = rest.partition("/")
    if kind not in ("q", "held") or len(number) != _DIGITS or not number.isdigit():
        return None
    try:
        value = json.loads(rec.data)
    except ValueError:  # pragma: no cover - we wrote it
        return None
    return _Entry(
        kind="q" if kind == "q" else "held",
        number=int(number),
        record_key=rec.key,
        agent=str(value.get("agent", rec.author)),
        mode=str(value.get("mode", "exclusive")),
        expires=rec.expires,
        version=rec.version,
        data=rec.data,
        ticket=value.get("ticket"),
    )


def _blockers(state: _State, now: float, ticket: int | None, mode: str) -> list[_Entry]:
    """The live records that keep a request (``ticket``, ``mode``) waiting.

    ``ticket=None`` is a request that has no ticket yet: everything queued is
    ahead of it.
    """
    out: list[_Entry] = []
    for e in state.queue:
        if ticket is not None and e.number >= ticket:
            break
        if e.live(now) and (mode == "exclusive" or e.mode == "exclusive"):
            out.append(e)
    for e in state.held:
        if e.live(now) and (mode == "exclusive" or e.mode == "exclusive"):
            out.append(e)
    return out


def _grantable_after(state: _State, now: float, removed: set[str]) -> list[_Entry]:
    """Waiting tickets that are grantable once ``removed`` records are gone.

    Whoever frees a key rewrites these tickets to wake exactly their owners.
    """
    view = _State(
        state.key,
        state.tickets_version,
        state.tokens_version,
        [e for e in state.queue if e.record_key not in removed],
        [e for e in state.held if e.record_key not in removed],
    )
    out: list[_Entry] = []
    for e in view.queue:
        if not e.live(now):
            continue
        if not _blockers(view, now, e.number, e.mode):
            out.append(e)
        if e.mode == "exclusive":
            break  # nobody behind a waiting exclusive request can be granted
    return out


def _ring(entries: Sequence[_Entry], now: float) -> tuple[list[Compare], list[Op]]:
    """Rewrite waiting tickets (unchanged data) so their owners wake up.

    The compares make sure a ticket that was granted or abandoned in the
    meantime is not brought back to life. The rewrite keeps each ticket's
    deadline (``now`` is the clock reading the caller decided on): only its
    owner extends it, so a dead waiter's ticket still lapses however often it
    is rung.
    """
    compares: list[Compare] = []
    ops: list[Op] = []
    for e in entries:
        compares.append(Compare(e.record_key, "expires", ">", NOW))
        compares.append(Compare(e.record_key, "holder", "==", e.agent))
        # Tickets always have a deadline; the fallback is for foreign records.
        ttl = max(MIN_TTL, e.expires - now) if e.expires is not None else _queue_ttl_from(e)
        ops.append(Put(e.record_key, "json", e.data, e.agent, ttl=ttl))
    return compares, ops


def _queue_ttl(ttl: float) -> float:
    # How long a silent waiter keeps its place: long enough to ride out a GC
    # pause or a slow store, short enough that a dead waiter does not hold
    # up the queue for long.
    return min(max(ttl, 2.0), 30.0)


def _queue_ttl_from(e: _Entry) -> float:
    try:
        return float(json.loads(e.data).get("qttl", 10.0))
    except (ValueError, TypeError):  # pragma: no cover - we wrote it
        return 10.0


# --- validation ------------------------------------------------------------------


def _check_ttl(ttl: object, name: str = "ttl") -> float:
    return params.seconds(
        ttl,
        name,
        minimum=MIN_TTL,
        maximum=MAX_TTL,
        example="30",
        hint=f"A lease lives from {MIN_TTL} s to {MAX_TTL:.0f} s (one day): pick the longest "
        f"time your work may run without renewing, and renew it ({call('lease.renew')}) for "
        "longer work.",
    )


def _check_wait(wait: object) -> float:
    return params.seconds(
        wait,
        "wait",
        maximum=MAX_WAIT,
        example="10",
        hint=f"{option('wait', 0)} means: do not wait at all.",
    )


def _check_mode(mode: object) -> Mode:
    if mode == "exclusive":
        return "exclusive"
    if mode == "shared":
        return "shared"
    raise UsageError(
        f"mode must be 'exclusive' (one holder, may write) or 'shared' (many readers), "
        f"not {mode!r}."
    )


def _check_token(token: object) -> int:
    if isinstance(token, bool) or not isinstance(token, int) or token < 1:
        raise UsageError(
            f"A lease token is a positive integer, the token of a lease "
            f"({call('session.acquire', var('key'))} gives it), not {token!r}."
        )
    return token


# --- the lease -----------------------------------------------------------------------


class _ReleasedOnExit:
    """``with`` support shared by Lease and LeaseSet: leaving the block releases.

    A lease that lapsed inside the block raises :class:`LeaseLost` on the way
    out, unless an error from the block is already leaving: that one wins.
    """

    def release(self) -> None:  # pragma: no cover - both subclasses define it
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self.release()
        except LeaseLost:
            if exc_type is None:
                raise


class Lease(_ReleasedOnExit):
    """A granted lease on one key. Get one with ``session.acquire()`` or ``session.lease()``.

    ``token`` is the fencing token (strictly increasing per key); ``expires``
    the deadline on the store's clock as last known to this object. Pass the
    lease to ``session.write(key, value, lease=lease)``: the store accepts the
    write only while this is the key's live lease.

    You *must* end a lease: call :meth:`release` (or leave the ``with``
    block), or let it expire. A holder that keeps working past ``expires``
    without renewing is not protected: its writes are fenced, and
    :meth:`ensure_held` raises :class:`LeaseLost`. Use as a context manager::

        with session.lease("docs/plan.md", ttl=30) as lease:
            session.write("docs/plan.md", text, lease=lease)

    A Lease may be used from several threads (``keepalive`` renews from one).
    """

    def __init__(
        self,
        session: Session,
        key: str,
        token: int,
        mode: Mode,
        ttl: float,
        expires: float,
        *,
        ticket: int | None = None,
        waited: float = 0.0,
        data: bytes = b"",
    ) -> None:
        self.session = session
        self.key = key
        self.token = token
        self.mode: Mode = mode
        self.ttl = ttl
        self.expires = expires
        self.ticket = ticket
        self.waited = waited
        self._data = data
        self._lock = threading.RLock()
        self._released = False
        self._lost: LeaseLost | None = None
        self._stop = threading.Event()
        self._keeper: threading.Thread | None = None

    def __repr__(self) -> str:
        return (
            f"Lease(key={self.key!r}, token={self.token}, mode={self.mode!r}, "
            f"agent={self.agent!r}, expires={_iso(self.expires)!r})"
        )

    @property
    def agent(self) -> str:
        """The agent that holds the lease."""
        return self.session.agent

    @property
    def record_key(self) -> str:
        return _held_key(self.key, self.token)

    @property
    def keepalive(self) -> bool:
        """True while a background thread renews this lease."""
        return self._keeper is not None and self._keeper.is_alive()

    @property
    def lost(self) -> bool:
        """True once this object knows the lease lapsed (keepalive or a failed renew)."""
        return self._lost is not None

    def remaining(self) -> float:
        """Seconds left before the deadline, on the store's clock (may be negative)."""
        return self.expires - self.session.store.backend.now()

    @property
    def held(self) -> bool:
        """Ask the store whether this is still a live lease of this agent (no exception)."""
        if self._released:
            return False
        rec = self.session.store.backend.get(self.record_key)
        backend = self.session.store.backend
        return (
            rec is not None
            and not rec.deleted
            and rec.author == self.agent
            and (rec.expires is None or rec.expires > backend.now())
        )

    # --- renew ----------------------------------------------------------------

    def renew(self, ttl: float | None = None) -> float:
        """Extend the lease to ``ttl`` seconds from now (store clock); returns the new deadline.

        ``ttl`` defaults to the TTL the lease was granted with. Raises
        :class:`LeaseLost` if the lease already expired or was released: an
        expired lease is never revived, because another agent may hold the
        key by now. Acquire a new one instead.
        """
        new_ttl = self.ttl if ttl is None else _check_ttl(ttl)
        with self._lock:
            if self._released:
                raise LeaseLost(
                    f"Cannot renew the lease on {self.key} (token {self.token}): you released it. "
                    f"Acquire a new lease ({call('session.acquire', self.key)}).",
                    key=self.key,
                    token=self.token,
                )
            session = self.session
            lamport, vector = session.clock.tick()
            event = _lease_event(session, "lease_renew", self.key, self.token, lamport, vector)
            event.update(mode=self.mode, ttl=new_ttl)
            hk = self.record_key
            result = session.store.backend.txn(
                [Compare(hk, "expires", ">", NOW), Compare(hk, "holder", "==", self.agent)],
                [Put(hk, "json", self._payload(), self.agent, lamport, "{}", ttl=new_ttl,
                     event=event)],
            )
            if not result.succeeded:
                exc = self._lost_error("renew", result.records.get(hk))
                self._lost = exc
                raise exc
            rec = result.records.get(hk)
            if rec is not None and rec.expires is not None:
                self.expires = rec.expires
            self.ttl = new_ttl
            return self.expires

    def _payload(self) -> bytes:
        if self._data:
            return self._data
        return _json({"agent": self.agent, "mode": self.mode, "token": self.token,
                      "ticket": self.ticket})

    # --- release --------------------------------------------------------------

    def release(self) -> None:
        """Give the lease up now, and wake the waiters that can go next.

        Raises :class:`LeaseLost` if the lease had already expired (writes
        after its deadline were fenced; redo them under a new lease) or was
        released before. Nothing is changed in that case.
        """
        self._stop_keepalive()
        with self._lock:
            if self._released:
                raise LeaseLost(
                    f"The lease on {self.key} (token {self.token}) was already released; "
                    "there is nothing to release.",
                    key=self.key,
                    token=self.token,
                )
            session = self.session
            session.store.writes.intercept(session, "lease_release", self.key, token=self.token)
            backend = session.store.backend
            hk = self.record_key
            for _ in range(_SPIN_LIMIT):
                state = _scan(backend, self.key)
                now = backend.now()
                mine = state.entry("held", self.token)
                if mine is None or mine.agent != self.agent or not mine.live(now):
                    break
                wake = _grantable_after(state, now, {hk})
                ring_compares, ring_ops = _ring(wake, now)
                lamport, vector = session.clock.tick()
                event = _lease_event(session, "lease_release", self.key, self.token, lamport,
                                     vector)
                event.update(mode=self.mode, expires=_iso(mine.expires or now))
                result = backend.txn(
                    [
                        Compare(hk, "expires", ">", NOW),
                        Compare(hk, "holder", "==", self.agent),
                        # A ticket taken after our scan would miss its wake-up.
                        Compare(_tickets_key(self.key), "version", "==", state.tickets_version),
                        *ring_compares,
                    ],
                    [Delete(hk, purge=True), Append(event), *ring_ops],
                )
                if result.succeeded:
                    self._released = True
                    return
            rec = backend.get(hk)
            exc = self._lost_error("release", rec)
            self._released = True
            self._lost = exc
            raise exc

    def _lost_error(self, doing: str, rec: Record | None) -> LeaseLost:
        """Explain why this lease is not held any more (and record its expiry)."""
        backend = self.session.store.backend
        now = backend.now()
        what = {"renew": "renew", "release": "release", "check": "use"}[doing]
        if rec is not None and not rec.deleted and rec.author == self.agent:
            expired_at = rec.expires if rec.expires is not None else now
            _reap(self.session, self.key, rec)
            why = (
                f"it expired at {_iso(expired_at)} (store clock), {now - expired_at:.3f} s ago"
            )
        else:
            why = _end_of(self.session.store, self.key, self.token)
        holders = _describe_holders(backend, self.key, now)
        return LeaseLost(
            f"Cannot {what} the lease on {self.key} (token {self.token}): {why}. {holders} "
            "Writes made under this lease after it lapsed were fenced. Stop, re-read "
            f"{self.key}, acquire a new lease and redo the work.",
            key=self.key,
            token=self.token,
        )

    # --- checks ---------------------------------------------------------------

    def ensure_held(self) -> None:
        """Raise :class:`LeaseLost` unless this is still the key's live lease.

        Call it before a long step or an external side effect; the store
        checks every write under the lease by itself.
        """
        if self._lost is not None:
            raise self._lost
        if self._released:
            raise LeaseLost(
                f"The lease on {self.key} (token {self.token}) was released; acquire a new one.",
                key=self.key,
                token=self.token,
            )
        backend = self.session.store.backend
        rec = backend.get(self.record_key)
        now = backend.now()
        if (
            rec is not None
            and not rec.deleted
            and rec.author == self.agent
            and (rec.expires is None or rec.expires > now)
        ):
            if rec.expires is not None:
                with self._lock:
                    self.expires = max(self.expires, rec.expires)
            return
        exc = self._lost_error("check", rec)
        self._lost = exc
        raise exc

    # --- keepalive ------------------------------------------------------------

    def start_keepalive(self) -> None:
        """Renew in the background every third of the TTL until released or lost.

        The thread never re-acquires: once a renewal finds the lease lost it
        stops, and :meth:`ensure_held` (and leaving the ``with`` block) raise
        :class:`LeaseLost`.
        """
        if self._keeper is not None:
            return
        self._keeper = threading.Thread(
            target=self._keepalive_loop, name=f"accord-keepalive-{self.key}", daemon=True
        )
        self._keeper.start()

    def _keepalive_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.renew()
            except LeaseLost:
                return
            except AccordError:
                # The store is unreachable now; try again next tick. If it
                # stays away past the deadline, the renewal fails as lost.
                continue

    def _stop_keepalive(self) -> None:
        self._stop.set()
        keeper = self._keeper
        if keeper is not None and keeper is not threading.current_thread():
            keeper.join(timeout=10)



@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """One holder or waiter of a key, as :func:`status` reports it.

    ``position`` is 1 for the first waiter in line (0 for holders).
    ``expires`` is on the store's clock (seconds since the epoch).
    """

    key: str
    agent: str
    mode: str
    state: Literal["held", "waiting"]
    token: int | None
    ticket: int | None
    position: int
    expires: float | None


@dataclass(frozen=True, slots=True)
class LeaseStatus:
    """Who holds ``key`` and who waits for it, in line order."""

    key: str
    holders: list[LeaseInfo]
    waiters: list[LeaseInfo]
    last_token: int


def status(store: Store, key: str) -> LeaseStatus:
    """The live holders and waiters of ``key`` (expired ones are left out)."""
    validate_key(key)
    backend = store.backend
    state = _scan(backend, key)
    now = backend.now()
    holders = [
        LeaseInfo(key, e.agent, e.mode, "held", e.number, e.ticket, 0, e.expires)
        for e in state.held
        if e.live(now)
    ]
    live_queue = [e for e in state.queue if e.live(now)]
    waiters = [
        LeaseInfo(key, e.agent, e.mode, "waiting", None, e.number, i + 1, e.expires)
        for i, e in enumerate(live_queue)
    ]
    return LeaseStatus(key, holders, waiters, state.tokens_version)


# --- acquire ------------------------------------------------------------------------


def _lease_event(
    session: Session, op: str, key: str, token: int | None, lamport: int, vector: dict[str, int]
) -> dict[str, Any]:
    event = make_event(session.agent, op, key, lamport, vector, check="lease", lease=token)
    # The version/prev/hash a backend fills in would describe the internal
    # lease record, not the key: say plainly that there are none.
    event.update(version=None, prev=None, hash=None)
    return event


def acquire(
    session: Session,
    key: str,
    *,
    ttl: float = 30,
    wait: float = 10,
    mode: str = "exclusive",
    keepalive: bool = False,
    on_wait: Any = None,
    cancel: threading.Event | None = None,
) -> Lease:
    """Acquire a lease on ``key``, waiting up to ``wait`` seconds in line.

    Returns the granted :class:`Lease`; you *must* release it (or use it as
    a context manager). Waiters are served first come, first served; a
    shared request joins other shared holders unless an exclusive request is
    waiting ahead of it. Raises :class:`LeaseTimeout` when ``wait`` runs out
    (the request leaves the line; nothing is held), and :class:`Deadlock`
    when waiting would close a cycle of agents waiting for each other.
    ``on_wait(position)`` is called with the request's place in line (1 =
    next) whenever it changes while waiting. Setting ``cancel`` gives up
    the wait (within :data:`CANCEL_LATENCY` seconds): the request leaves the
    line and :class:`LeaseCancelled` is raised (``accord.aio`` uses it for a
    cancelled ``acquire``).
    """
    validate_key(key)
    ttl = _check_ttl(ttl)
    wait = _check_wait(wait)
    mode_ = _check_mode(mode)
    params.flag(keepalive, "keepalive")
    session.store.writes.intercept(session, "lease_acquire", key, ttl=ttl, wait=wait, mode=mode_)
    lease = _Acquirer(session, key, ttl, wait, mode_, on_wait, cancel).run()
    if keepalive:
        lease.start_keepalive()
    return lease


class _Acquirer:
    """One acquire call: the loop that takes a ticket, waits, and is granted."""

    def __init__(
        self,
        session: Session,
        key: str,
        ttl: float,
        wait: float,
        mode: Mode,
        on_wait: Any,
        cancel: threading.Event | None = None,
    ) -> None:
        self.session = session
        self.backend = session.store.backend
        self.key = key
        self.ttl = ttl
        self.wait = wait
        self.mode = mode
        self.on_wait = on_wait
        self.cancel = cancel
        self.qttl = _queue_ttl(ttl)
        self.ticket: int | None = None
        self.ticket_data = b""
        self.started = time.monotonic()
        self.deadline = self.started + wait
        self.last_blockers: frozenset[str] | None = None
        self.last_check = 0.0
        self.position = 0

    # --- the loop ----------------------------------------------------------------

    def run(self) -> Lease:
        granted = False
        try:
            lease = self._loop()
            granted = True
            return lease
        finally:
            if not granted and self.ticket is not None:
                # Leaving the line (timeout, deadlock, interrupt): free our
                # place and wake whoever can go now.
                self._abandon(None)

    def _loop(self) -> Lease:
        agent = self.session.agent
        for _ in range(_SPIN_LIMIT * 10):
            if self.cancel is not None and self.cancel.is_set():
                raise LeaseCancelled(f"The acquire of the lease on {self.key} was cancelled.")
            since = self.backend.revision()
            state = _scan(self.backend, self.key)
            now = self.backend.now()
            mine: _Entry | None = None
            if self.ticket is not None:
                mine = state.entry("q", self.ticket)
                if mine is None or not mine.live(now) or mine.agent != agent:
                    # Our ticket lapsed (we were stalled past its TTL) and was
                    # reaped or passed over: join the line again at the back.
                    self.ticket = None
                    mine = None
            blockers = _blockers(state, now, self.ticket, self.mode)
            if not blockers:
                lease = self._grant(state, now)
                if lease is not None:
                    return lease
                continue
            left = self.deadline - time.monotonic()
            if self.ticket is None:
                if left <= 0:
                    self._timeout(state, now, blockers)
                self._enqueue(state, now)
                continue
            assert mine is not None
            self._report_position(state, now)
            names = frozenset(e.record_key for e in blockers)
            stale = time.monotonic() - self.last_check > _DEADLOCK_RECHECK
            if self.last_blockers is None or stale:
                self.last_blockers = names
                self.last_check = time.monotonic()
                if self._detect_deadlock(state, now):
                    continue
            if left <= 0:
                self._timeout(state, now, blockers)
            # Sleep until: our ticket is rewritten (we were rung), the nearest
            # blocker's deadline passes, our ticket needs refreshing, or wait
            # runs out.
            nearest = self._nearest(blockers)
            timeout = min(left, _MAX_SLEEP if self.cancel is None else CANCEL_LATENCY)
            if nearest.expires is not None:
                timeout = min(timeout, max(0.0, nearest.expires - now) + 0.001)
            refresh_in = (mine.expires or now) - now - self.qttl / 2
            if refresh_in <= 0:
                self._refresh()
                continue
            timeout = min(timeout, refresh_in)
            self.backend.wait([mine.record_key], [], since, max(timeout, 0.0))
        raise AccordError(  # pragma: no cover - the store keeps refusing consistent txns
            f"Acquiring the lease on {self.key} made no progress; the store may be damaged."
        )

    def _nearest(self, blockers: list[_Entry]) -> _Entry:
        # The waiter just ahead in line matters most; a held lease only when
        # nobody waits ahead of us.
        queued = [e for e in blockers if e.kind == "q"]
        if queued:
            return queued[-1]
        return min(blockers, key=lambda e: e.expires if e.expires is not None else math.inf)

    def _report_position(self, state: _State, now: float) -> None:
        if self.on_wait is None or self.ticket is None:
            return
        position = 1 + sum(1 for e in state.queue if e.number < self.ticket and e.live(now))
        if position != self.position:
            self.position = position
            self.on_wait(position)

    # --- transactions -----------------------------------------------------------

    def _reaps(self, state: _State, now: float) -> tuple[list[Compare], list[Op]]:
        """Remove lapsed records seen in ``state`` (recording each lease's expiry)."""
        compares: list[Compare] = []
        ops: list[Op] = []
        for e in state.held:
            if not e.live(now):
                compares.append(Compare(e.record_key, "version", "==", e.version))
                ops.append(Delete(e.record_key, purge=True))
                ops.append(Append(_expire_event(self.session, self.key, e)))
        for e in state.queue:
            if not e.live(now) and e.number != self.ticket:
                compares.append(Compare(e.record_key, "version", "==", e.version))
                ops.append(Delete(e.record_key, purge=True))
                ops.append(Delete(_waitfor_key(e.agent, self.key, e.number), purge=True))
        return compares, ops

    def _grant(self, state: _State, now: float) -> Lease | None:
        session = self.session
        agent = session.agent
        token = state.tokens_version + 1
        hk = _held_key(self.key, token)
        data = _json(
            {"agent": agent, "mode": self.mode, "token": token, "ticket": self.ticket,
             "ttl": self.ttl}
        )
        lamport, vector = session.clock.tick()
        event = _lease_event(session, "lease_acquire", self.key, token, lamport, vector)
        waited = time.monotonic() - self.started
        event.update(mode=self.mode, ttl=self.ttl, ticket=self.ticket, waited=round(waited, 6))
        # Every grant takes the next token, so comparing the token sequence
        # makes this grant fail if any other grant happened since our scan:
        # the decision "nothing conflicting is held" was made on that scan.
        compares = [Compare(_tokens_key(self.key), "version", "==", state.tokens_version)]
        ops: list[Op] = [Put(_tokens_key(self.key), "json", b"{}", agent)]
        if self.ticket is not None:
            qk = _queue_key(self.key, self.ticket)
            compares += [Compare(qk, "expires", ">", NOW), Compare(qk, "holder", "==", agent)]
            ops += [
                Delete(qk, purge=True),
                Delete(_waitfor_key(agent, self.key, self.ticket), purge=True),
            ]
        reap_compares, reap_ops = self._reaps(state, now)
        compares += reap_compares
        ops += reap_ops
        ops.append(
            Put(hk, "json", data, agent, lamport, "{}", ttl=self.ttl, event=event)
        )
        result = self.backend.txn(compares, ops)
        if not result.succeeded:
            return None
        rec = result.records.get(hk)
        expires = rec.expires if rec is not None and rec.expires is not None else now + self.ttl
        ticket, self.ticket = self.ticket, None
        return Lease(
            session, self.key, token, self.mode, self.ttl, expires,
            ticket=ticket, waited=waited, data=data,
        )

    def _enqueue(self, state: _State, now: float) -> None:
        agent = self.session.agent
        ticket = state.tickets_version + 1
        data = _json(
            {"agent": agent, "mode": self.mode, "ticket": ticket, "since": now, "qttl": self.qttl,
             "key": self.key}
        )
        index = _json({"agent": agent, "key": self.key, "ticket": ticket, "mode": self.mode})
        result = self.backend.txn(
            [Compare(_tickets_key(self.key), "version", "==", state.tickets_version)],
            [
                Put(_tickets_key(self.key), "json", b"{}", agent),
                Put(_queue_key(self.key, ticket), "json", data, agent, ttl=self.qttl),
                Put(_waitfor_key(agent, self.key, ticket), "json", index, agent, ttl=self.qttl),
            ],
        )
        if result.succeeded:
            self.ticket = ticket
            self.ticket_data = data
            self.last_blockers = None

    def _refresh(self) -> None:
        assert self.ticket is not None
        agent = self.session.agent
        qk = _queue_key(self.key, self.ticket)
        index = _json({"agent": agent, "key": self.key, "ticket": self.ticket, "mode": self.mode})
        result = self.backend.txn(
            [Compare(qk, "expires", ">", NOW), Compare(qk, "holder", "==", agent)],
            [
                Put(qk, "json", self.ticket_data, agent, ttl=self.qttl),
                Put(_waitfor_key(agent, self.key, self.ticket), "json", index, agent,
                    ttl=self.qttl),
            ],
        )
        if not result.succeeded:
            self.ticket = None  # lapsed: the loop joins the line again

    def _abandon(self, extra: dict[str, Any] | None, compares: Sequence[Compare] = ()) -> bool:
        """Leave the line: drop our ticket, wake who can go now, record why."""
        assert self.ticket is not None
        session = self.session
        agent = session.agent
        qk = _queue_key(self.key, self.ticket)
        for _ in range(_SPIN_LIMIT):
            try:
                state = _scan(self.backend, self.key)
                now = self.backend.now()
                ring_compares, ring_ops = _ring(_grantable_after(state, now, {qk}), now)
                ops: list[Op] = [
                    Delete(qk, purge=True),
                    Delete(_waitfor_key(agent, self.key, self.ticket), purge=True),
                    *ring_ops,
                ]
                if extra is not None:
                    lamport, vector = session.clock.tick()
                    event = _lease_event(session, "lease_acquire", self.key, None, lamport, vector)
                    event.update(outcome="rejected", mode=self.mode, ticket=self.ticket, **extra)
                    ops.append(Append(event))
                result = self.backend.txn(
                    [
                        *compares,
                        Compare(_tickets_key(self.key), "version", "==", state.tickets_version),
                        *ring_compares,
                    ],
                    ops,
                )
            except AccordError:
                if extra is None:
                    return False  # best effort on the way out: the ticket will lapse
                raise
            if result.succeeded:
                self.ticket = None
                return True
            if compares:
                return False  # the condition (a deadlock cycle) no longer holds
        return False  # pragma: no cover

    def _timeout(self, state: _State, now: float, blockers: list[_Entry]) -> None:
        waited = time.monotonic() - self.started
        who = _describe_blockers(blockers, now)
        if self.ticket is not None:
            position = 1 + sum(1 for e in state.queue if e.number < self.ticket and e.live(now))
            self._abandon({"reason": "timeout", "waited": round(waited, 6)})
        else:
            position = 1 + sum(1 for e in state.queue if e.live(now))
        me = self.session.agent
        own = (
            f" {me} is you: leases are not re-entrant, so use the lease you already hold "
            "(or release it first)."
            if any(e.kind == "held" and e.agent == me for e in blockers)
            else ""
        )
        raise LeaseTimeout(
            f"No {self.mode} lease on {self.key} within {self.wait:g} s "
            f"({option('wait', _whole(self.wait))}): {who}; you were number {position} in "
            f"line. You hold nothing new now.{own} Retry with a longer wait "
            f"({call('session.acquire', self.key, wait=var('seconds'))}), or do other work and "
            "come back.",
            key=self.key,
            waited=waited,
            position=position,
            holders=[e.agent for e in blockers if e.kind == "held"],
        )

    # --- deadlock detection ---------------------------------------------------

    def _detect_deadlock(self, state: _State, now: float) -> bool:
        """Fail this waiter with Deadlock if it is on a cycle; False if not.

        Returns True when the state changed under us and the loop should look
        again.
        """
        assert self.ticket is not None
        cycle = _find_cycle(self.session, self.key, self.ticket, self.mode, state, now)
        if cycle is None:
            return False
        # Give up our place only if every edge of the cycle still stands: of
        # several waiters that see the same cycle, the first to commit breaks
        # it and the others' transactions fail, so exactly one fails.
        compares: list[Compare] = []
        for edge in cycle:
            compares.append(Compare(edge.waiting_record, "expires", ">", NOW))
            compares.append(Compare(edge.blocker_record, "expires", ">", NOW))
        text = " -> ".join(str(edge) for edge in cycle) + f" -> {cycle[0].waiter}"
        description = [edge.as_dict() for edge in cycle]
        if not self._abandon({"reason": "deadlock", "cycle": description}, compares):
            self.last_blockers = None  # look again on the next turn of the loop
            return True
        agents = [edge.waiter for edge in cycle]
        raise Deadlock(
            f"Deadlock: {text}. Each agent holds a key the next one waits for, so none "
            f"could ever proceed; this request for {self.key} was chosen to fail (you hold "
            f"nothing new, but still hold your other leases). Release what you hold, then take "
            f"all the keys at once with {call('session.lease_all', var('keys'))}, which takes "
            "them in one order.",
            key=self.key,
            cycle=agents,
            edges=description,
        )


@dataclass(frozen=True, slots=True)
class _Edge:
    waiter: str
    key: str
    waiting_record: str
    blocker: str
    blocker_record: str
    blocker_state: str

    def __str__(self) -> str:
        how = "held by" if self.blocker_state == "held" else "queued ahead by"
        return f"{self.waiter} waits for {self.key} ({how} {self.blocker})"

    def as_dict(self) -> dict[str, str]:
        return {"agent": self.waiter, "key": self.key, "blocked_by": self.blocker,
                "state": self.blocker_state}


def _find_cycle(
    session: Session, key: str, ticket: int, mode: str, state: _State, now: float
) -> list[_Edge] | None:
    """A cycle of the wait-for graph through this waiter, as edges, or None.

    Nodes are agents; an agent waiting on a key points at every agent whose
    live lease or earlier ticket on that key blocks it. Waits of other agents
    come from their ``.accord/waitfor/`` index entries, each checked against
    the key's own records. Edges from an agent to itself are ignored (one
    agent's threads may legitimately wait on each other).
    """
    backend = session.store.backend
    me = session.agent
    states: dict[str, _State] = {key: state}
    my_record = _queue_key(key, ticket)
    # BFS; parent[agent] = the edge by which we reached it.
    parent: dict[str, _Edge] = {}
    frontier: list[str] = []
    for b in _blockers(state, now, ticket, mode):
        if b.agent != me and b.agent not in parent:
            parent[b.agent] = _Edge(me, key, my_record, b.agent, b.record_key, b.kind)
            frontier.append(b.agent)
    seen_agents = {me}
    while frontier:
        agent = frontier.pop(0)
        if agent in seen_agents:
            continue
        seen_agents.add(agent)
        for rec in backend.scan(_waitfor_prefix(agent)):
            if rec.expires is not None and rec.expires <= now:
                continue
            try:
                info = json.loads(rec.data)
                wkey, wticket, wmode = str(info["key"]), int(info["ticket"]), str(info["mode"])
            except (ValueError, KeyError, TypeError):  # pragma: no cover - we wrote it
                continue
            if info.get("agent") != agent:
                continue  # a digest collision of two agent names: not this agent
            st = states.get(wkey)
            if st is None:
                st = states[wkey] = _scan(backend, wkey)
            entry = st.entry("q", wticket)
            if entry is None or not entry.live(now) or entry.agent != agent:
                continue
            for b in _blockers(st, now, wticket, wmode):
                if b.agent == agent:
                    continue
                edge = _Edge(agent, wkey, entry.record_key, b.agent, b.record_key, b.kind)
                if b.agent == me:
                    path = [edge]
                    node = agent
                    while node != me:
                        prev = parent[node]
                        path.append(prev)
                        node = prev.waiter
                    path.reverse()
                    return path
                if b.agent not in parent:
                    parent[b.agent] = edge
                    frontier.append(b.agent)
    return None


# --- several keys ----------------------------------------------------------------------


class LeaseSet(_ReleasedOnExit):
    """Leases on several keys, taken in one canonical (sorted) order.

    Index by key (``leases["docs/a"]``), iterate in key order, and use as a
    context manager: leaving the block releases every lease, and raises
    :class:`LeaseLost` if any lapsed inside it. You *must* release it.
    """

    def __init__(self, leases: list[Lease]) -> None:
        self._leases = leases
        self._by_key = {lease.key: lease for lease in leases}

    def __repr__(self) -> str:
        return f"LeaseSet({', '.join(f'{x.key}#{x.token}' for x in self._leases)})"

    def __getitem__(self, key: str) -> Lease:
        try:
            return self._by_key[key]
        except KeyError:
            raise UsageError(
                f"This lease set holds {sorted(self._by_key)}, not {key!r}."
            ) from None

    def __iter__(self) -> Iterator[Lease]:
        return iter(self._leases)

    def __len__(self) -> int:
        return len(self._leases)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    @property
    def keys(self) -> list[str]:
        return [lease.key for lease in self._leases]

    @property
    def tokens(self) -> dict[str, int]:
        """key -> fencing token."""
        return {lease.key: lease.token for lease in self._leases}

    def renew(self, ttl: float | None = None) -> None:
        """Renew every lease; :class:`LeaseLost` names the first that lapsed."""
        for lease in self._leases:
            lease.renew(ttl)

    def ensure_held(self) -> None:
        """Raise :class:`LeaseLost` unless every lease is still live."""
        for lease in self._leases:
            lease.ensure_held()

    def release(self) -> None:
        """Release every lease (in reverse order); then raise LeaseLost if any had lapsed."""
        lost: list[LeaseLost] = []
        for lease in reversed(self._leases):
            try:
                lease.release()
            except LeaseLost as exc:
                lost.append(exc)
        if lost:
            raise LeaseLost(
                " ".join(exc.template for exc in lost),
                key=lost[0].key if hasattr(lost[0], "key") else None,
                keys=[getattr(exc, "key", None) for exc in lost],
            )



def acquire_all(
    session: Session,
    keys: Sequence[str],
    *,
    ttl: float = 30,
    wait: float = 10,
    mode: str = "exclusive",
    keepalive: bool = False,
) -> LeaseSet:
    """Acquire leases on every key of ``keys`` in sorted order, sharing one ``wait``.

    Taking keys in one canonical order means two agents using lease_all can
    never deadlock. If any lease cannot be had (timeout, deadlock), the ones
    already taken are released and the error is raised: all or nothing.
    """
    if isinstance(keys, (str, bytes)) or not hasattr(keys, "__iter__"):
        raise UsageError(
            f"{call('session.lease_all', var('keys'))} takes a list of keys, such as "
            "['docs/a', 'docs/b']."
        )
    key_list = list(keys)
    if not key_list:
        raise UsageError(f"{call('session.lease_all', var('keys'))} needs at least one key.")
    for key in key_list:
        validate_key(key)
    if len(set(key_list)) != len(key_list):
        twice = sorted({k for k in key_list if key_list.count(k) > 1})
        raise UsageError(
            f"{call('session.lease_all', var('keys'))} got {', '.join(twice)} more than once; "
            "list each key once."
        )
    ttl = _check_ttl(ttl)
    wait = _check_wait(wait)
    _check_mode(mode)
    params.flag(keepalive, "keepalive")
    deadline = time.monotonic() + wait
    taken: list[Lease] = []
    try:
        for key in sorted(key_list):
            left = max(0.0, deadline - time.monotonic())
            taken.append(acquire(session, key, ttl=ttl, wait=left, mode=mode, keepalive=keepalive))
    except BaseException:
        for lease in reversed(taken):
            with contextlib.suppress(AccordError):
                lease.release()
        raise
    return LeaseSet(taken)


# --- fencing (called by Session._mutate) -------------------------------------------------


def fence_compares(session: Session, key: str, lease: Any) -> tuple[list[Compare], int]:
    """Compares that hold only while ``lease`` is ``key``'s live lease, and its token.

    ``lease`` is a :class:`Lease` or an int token (the CLI's ``--lease``).
    The store checks them in the write's own transaction, on its own clock.
    A lease of another key, of another agent, or a shared lease gives a
    compare that always fails, so the refusal is recorded as ``fenced``.
    """
    impossible = False
    if isinstance(lease, Lease):
        token = lease.token
        if lease.key != key or lease.mode != "exclusive" or lease.agent != session.agent:
            impossible = True
    else:
        token = _check_token(lease)
    hk = _held_key(key, token)
    compares = [
        Compare(hk, "expires", ">", NOW, refusal="fenced"),
        Compare(hk, "holder", "==", session.agent, refusal="fenced"),
    ]
    if not impossible and not isinstance(lease, Lease):
        rec = session.store.backend.get(hk)
        if rec is not None and not rec.deleted and json.loads(rec.data).get("mode") == "shared":
            impossible = True
    if impossible:
        compares.append(Compare(hk, "version", "<", 0, refusal="fenced"))
    return compares, token


# --- exclusion (a guard on every write path, see Store.add_guard) --------------------------


def guard(session: Session, key: str, token: int | None = None) -> list[Compare]:
    """The compare that keeps every write of ``key`` out while a lease on it is live.

    It holds only when no live grant record of ``key`` exists other than
    ``held/<token>`` (the lease the write carries, whose own fence compares
    check that it is live, exclusive and the writer's). The store evaluates
    it in the write's own transaction on its own clock, so a lease that
    lapses stops blocking at its deadline without any record changing, and
    a grant cannot slip between the check and the write. A refusal is
    recorded with outcome ``fenced``.
    """
    if token is None:
        # Every write without a lease carries this one compare: built once
        # per key (Compare is immutable), not on every write.
        cached = _VACANT.get(key)
        if cached is None:
            if len(_VACANT) >= 4096:
                _VACANT.clear()
            cached = _VACANT[key] = Compare(
                _held_prefix(key), "vacant", "==", None, refusal="fenced"
            )
        return [cached]
    return [Compare(_held_prefix(key), "vacant", "==", _held_key(key, token), refusal="fenced")]


_VACANT: dict[str, Compare] = {}


def explain(session: Session, key: str, token: int | None, result: TxnResult) -> None:
    """Raise :class:`LeaseHeld` when :func:`guard`'s compare refused a write of ``key``."""
    prefix = _held_prefix(key)
    failed = result.failed
    if failed is not None and not (failed.target == "vacant" and failed.key == prefix):
        return
    backend = session.store.backend
    now = backend.now()
    exempt = None if token is None else _held_key(key, token)
    live = [e for e in _scan(backend, key).held if e.live(now) and e.record_key != exempt]
    if not live and failed is None:
        return  # the backend cannot say, and no lease is live now: not ours to explain
    raise held_error(session, key, live, now)


def install(store: Store) -> None:
    """Install the lease exclusion guard on ``store`` (``Store`` does this by default)."""
    store.add_guard(guard, explain)


def held_error(session: Session, key: str, live: Sequence[_Entry], now: float) -> LeaseHeld:
    """The :class:`LeaseHeld` error for a write of ``key`` refused by the ``live`` grants."""
    agent = session.agent
    rule = (
        "While a lease on a key is live, the store accepts only writes and deletes made under "
        "an exclusive lease of that key; nothing was written."
    )
    if not live:
        return LeaseHeld(
            f"Write to {key} refused: a lease on {key} was live when the store checked the "
            f"write, and it has ended since. {rule} Nobody holds {key} now: re-read it and "
            "write again.",
            key=key,
            holder=None,
            token=None,
            mode=None,
            expires=None,
            holders=[],
        )
    first = live[0]
    last = max((e.expires for e in live if e.expires is not None), default=None)
    if last is None:
        until = "with no deadline"
    else:
        until = f"until {_iso(last)} (store clock, {max(0.0, last - now):.1f} s from now)"
    if len(live) == 1:
        who = (
            f"{first.agent} holds a{'n' if first.mode == 'exclusive' else ''} {first.mode} "
            f"lease on it (token {first.number}) {until} unless renewed"
        )
    else:
        names = ", ".join(f"{e.agent} (token {e.number})" for e in live)
        who = f"{names} hold {first.mode} leases on it, the last {until} unless renewed"
    mine = [e for e in live if e.agent == agent]
    if mine and mine[0].mode == "exclusive":
        todo = (
            f" You ({agent}) hold that lease (token {mine[0].number}): write under it, "
            f"{call('session.write', key, var('value'), lease=mine[0].number)}."
        )
    elif mine:
        todo = (
            f" You ({agent}) hold a shared lease (token {mine[0].number}), which is for "
            f"reading: release it, then acquire {key} exclusively "
            f"({call('session.acquire', key, mode='exclusive')}) and write under that lease."
        )
    else:
        wait = 10 if last is None else max(1, math.ceil(last - now))
        todo = (
            f" Wait for it: {call('session.acquire', key, wait=wait)}, then re-read {key}, "
            "write under your lease "
            f"({call('session.write', key, var('value'), lease=var('lease'))}) and release it."
        )
    return LeaseHeld(
        f"Write to {key} refused: {who}. {rule}{todo}",
        key=key,
        holder=first.agent,
        token=first.number,
        mode=first.mode,
        expires=first.expires,
        holders=[
            {"agent": e.agent, "token": e.number, "mode": e.mode, "expires": e.expires}
            for e in live
        ],
    )


def fenced_error(
    session: Session, key: str, lease: Any, records: dict[str, Record | None]
) -> Fenced:
    """Explain why a write under ``lease`` was refused, as a :class:`Fenced` error."""
    backend = session.store.backend
    now = backend.now()
    token = lease.token if isinstance(lease, Lease) else int(lease)
    hk = _held_key(key, token)
    rec = records.get(hk, backend.get(hk))
    holders = _describe_holders(backend, key, now)
    tail = (
        f" Stop writing {key}: re-read it (it may have changed), acquire a new lease and redo "
        "your change under it."
    )
    reason: str
    if isinstance(lease, Lease) and lease.key != key:
        reason = "wrong-key"
        why = (
            f"the write carried the lease of {lease.key} (token {token}), and a lease guards only "
            f"its own key."
        )
        tail = f" Acquire a lease on {key} and write with that one."
    elif isinstance(lease, Lease) and lease.agent != session.agent:
        reason = "other-agent"
        why = f"that lease (token {token}) belongs to {lease.agent}, not to {session.agent}."
        tail = " Each agent writes under its own lease."
    elif (isinstance(lease, Lease) and lease.mode == "shared") or (
        rec is not None and not rec.deleted and json.loads(rec.data).get("mode") == "shared"
    ):
        reason = "shared"
        why = f"token {token} is a shared lease, for reading; writes need an exclusive one."
        tail = (
            f" Acquire {key} exclusively ({call('session.acquire', key, mode='exclusive')}) to "
            "write it."
        )
    elif rec is not None and not rec.deleted and rec.author != session.agent:
        reason = "other-agent"
        why = f"token {token} of {key} is held by {rec.author}, not by {session.agent}."
        tail = " Each agent writes under its own lease: acquire one."
    elif rec is not None and not rec.deleted and rec.expires is not None and rec.expires <= now:
        reason = "expired"
        why = (
            f"your lease (token {token}) expired at {_iso(rec.expires)} (store clock), "
            f"{now - rec.expires:.3f} s before this write was refused."
        )
    elif rec is None or rec.deleted:
        last = _tokens_version(backend, key)
        if token > last:
            reason = "unknown-token"
            why = (
                f"no lease with token {token} was ever granted on {key} (its latest token is "
                f"{last}). Tokens are per key: check the key and the token."
            )
            tail = f" Acquire a lease on {key} and write with its token."
        else:
            reason = "ended"
            why = f"your lease (token {token}) {_end_of(session.store, key, token)}."
    else:
        # The lease is live and ours: what failed is the version check
        # (expect=) that came with it.
        reason = "version"
        target = records.get(key)
        at = 0 if target is None or target.deleted else target.version
        why = (
            f"your lease (token {token}) is live, but the version check failed: {key} is at "
            f"version {at}."
        )
        tail = (
            f" Re-read {key} and write with {option('expect', at)} (or with no expected "
            "version, under the lease)."
        )
    current = _live_tokens(backend, key, now)
    return Fenced(
        f"Write to {key} refused: {why} {holders}{tail}",
        key=key,
        token=token,
        reason=reason,
        current_token=current[0][0] if current else None,
        holder=current[0][1] if current else None,
    )


# --- helpers shared by the explanations ---------------------------------------------------


def _tokens_version(backend: Backend, key: str) -> int:
    rec = backend.get(_tokens_key(key))
    return 0 if rec is None else rec.version


def _live_tokens(backend: Backend, key: str, now: float) -> list[tuple[int, str, str]]:
    state = _scan(backend, key)
    return [(e.number, e.agent, e.mode) for e in state.held if e.live(now)]


def _whole(seconds: float) -> float | int:
    """``seconds`` as an int when it is whole, so a message says ``--wait 0``, not ``0.0``."""
    return int(seconds) if float(seconds).is_integer() else seconds


def _describe_holders(backend: Backend, key: str, now: float) -> str:
    live = _live_tokens(backend, key, now)
    if not live:
        return f"Nobody holds {key} now."
    parts = [f"{agent} (token {token}, {mode})" for token, agent, mode in live]
    return f"{key} is now leased by {', '.join(parts)}."


def _describe_blockers(blockers: list[_Entry], now: float) -> str:
    held = [e for e in blockers if e.kind == "held"]
    queued = [e for e in blockers if e.kind == "q"]
    parts = []
    if held:
        parts.append(
            "held by "
            + ", ".join(
                f"{e.agent} (token {e.number}, {e.mode}"
                + (f", expires in {e.expires - now:.1f} s)" if e.expires is not None else ")")
                for e in held
            )
        )
    if queued:
        parts.append(f"{len(queued)} request(s) ahead in line")
    return "; ".join(parts) or "the key was busy"


def _end_of(store: Store, key: str, token: int) -> str:
    """How lease ``token`` of ``key`` ended, from the history."""
    for ev in store.backend.history(key=key):
        if ev.get("lease") != token:
            continue
        if ev.get("op") == "lease_release":
            return f"was released at {ev.get('time')}"
        if ev.get("op") == "lease_expire":
            return f"expired at {ev.get('expires')} (store clock)"
    return "is no longer held (it was released, or it expired)"


def _expire_event(session: Session, key: str, e: _Entry) -> dict[str, Any]:
    """The lease_expire event of a lapsed grant, recorded by whoever notices."""
    event = make_event(session.agent, "lease_expire", key, 0, {}, check="lease", lease=e.number)
    event.update(
        agent=e.agent,
        mode=e.mode,
        expires=_iso(e.expires) if e.expires is not None else None,
        observed_by=session.agent,
        version=None,
        prev=None,
        hash=None,
    )
    return event


def _reap(session: Session, key: str, rec: Record) -> None:
    """Remove an expired grant and record its lease_expire event (once)."""
    rest = rec.key[len(_prefix(key)) :]
    entry = _decode(rec, rest)
    if entry is None or entry.kind != "held":
        return
    session.store.backend.txn(
        [Compare(rec.key, "version", "==", rec.version), Compare(rec.key, "expires", "<=", NOW)],
        [Delete(rec.key, purge=True), Append(_expire_event(session, key, entry))],
    )


# --- the CLI's way in: a token instead of a Lease object -----------------------------------


def from_token(session: Session, key: str, token: int) -> Lease:
    """The :class:`Lease` of ``session``'s agent on ``key`` with fencing token ``token``.

    For tools that keep only the token (the CLI). Raises
    :class:`UsageError` if no such lease was ever granted on ``key`` or it
    belongs to another agent, and :class:`LeaseLost` if it was released or
    expired. Nothing is changed.
    """
    validate_key(key)
    token = _check_token(token)
    backend = session.store.backend
    rec = backend.get(_held_key(key, token))
    now = backend.now()
    if rec is None or rec.deleted:
        last = _tokens_version(backend, key)
        if token > last:
            raise UsageError(
                f"No lease with token {token} was ever granted on {key} (its latest token is "
                f"{last}). Tokens are per key: check the key and the token.",
                key=key,
                token=token,
            )
        raise LeaseLost(
            f"The lease on {key} with token {token} {_end_of(session.store, key, token)}; you "
            f"hold nothing to renew or release. {_describe_holders(backend, key, now)}",
            key=key,
            token=token,
        )
    value = json.loads(rec.data)
    if rec.author != session.agent:
        raise UsageError(
            f"Token {token} of {key} belongs to {rec.author}, not to {session.agent}. Only the "
            f"holder may renew or release a lease: act as {rec.author} "
            f"({call('store.session', rec.author)}).",
            key=key,
            token=token,
        )
    lease = Lease(
        session, key, token, _check_mode(value.get("mode", "exclusive")),
        float(value.get("ttl", 30.0)),
        rec.expires if rec.expires is not None else now, ticket=value.get("ticket"),
        data=rec.data,
    )
    if rec.expires is not None and rec.expires <= now:
        exc = lease._lost_error("check", rec)
        raise exc
    return lease
