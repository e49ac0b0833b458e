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

The rules without I/O (what the records mean, who blocks whom, every
compare and message) are in :mod:`accord._core.lease`; this module reads the
records and commits what the rules decide. It is the async source:
``strategies/lease.py`` (the sync face) is generated from it by
``tools/async_to_sync.py``.
"""

from __future__ import annotations

import asyncio  # ASYNC-ONLY
import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, Self

from .. import params
from .._core import lease as core
from .._core.lease import (
    CANCEL_LATENCY,
    MAX_SLEEP,
    MAX_TTL,
    MAX_WAIT,
    MIN_TTL,
    MODES,
    SPIN_LIMIT,
    CancelFlag,
    Carried,
    Entry,
    LeaseCancelled,
    LeaseInfo,
    LeaseStatus,
    Mode,
    State,
    guard,
)
from .._writepath_async import AsyncWritePath
from ..backends.base import AsyncBackend
from ..errors import AccordError, Fenced, LeaseHeld, LeaseLost, UsageError, call, var
from ..keys import validate_key
from ..records import NOW, Append, Compare, Delete, Op, Put, Record, TxnResult

__all__ = [
    "CANCEL_LATENCY",
    "MAX_TTL",
    "MAX_WAIT",
    "MIN_TTL",
    "MODES",
    "AsyncLease",
    "AsyncLeaseSet",
    "LeaseCancelled",
    "LeaseInfo",
    "LeaseSession",
    "LeaseStatus",
    "LeaseStore",
    "Mode",
    "acquire",
    "acquire_all",
    "explain",
    "fence_compares",
    "fenced_error",
    "from_token",
    "guard",
    "held_error",
    "install",
    "status",
]


# --- what a lease needs of a session and a store ----------------------------------------


class LeaseStore(Protocol):
    """What leases need of a store: its backend, its one write path and its
    sleep (``AsyncStore`` has them)."""

    @property
    def backend(self) -> AsyncBackend: ...

    @property
    def writes(self) -> AsyncWritePath: ...

    @property
    def sleep(self) -> Callable[[float], Any]: ...


class LeaseSession(Protocol):
    """What leases need of a session: its agent, its store, and its clocks'
    tick for each event it makes (``AsyncSession`` has them)."""

    @property
    def agent(self) -> str: ...

    @property
    def store(self) -> LeaseStore: ...

    async def _tick(self) -> tuple[int, dict[str, int]]:
        """Advance the agent's clocks for an event (the first tick resumes
        them from the store, with the session's own reads)."""
        ...


class GuardedStore(Protocol):
    """A store that takes guards (``AsyncStore.add_guard``)."""

    def add_guard(self, guard: Any, explain: Any) -> None: ...


async def _scan(backend: AsyncBackend, key: str) -> State:
    """Everything about ``key``'s leases, from one scan (one snapshot)."""
    return core.state_of(key, await backend.scan(core.prefix(key)))


# --- the lease -----------------------------------------------------------------------


class _ReleasedOnExit:
    """``async with`` support shared by AsyncLease and AsyncLeaseSet: leaving the block releases.

    A lease that lapsed inside the block raises :class:`LeaseLost` on the way
    out, unless an error from the block is already leaving: that one wins.
    """

    async def release(self) -> None:  # pragma: no cover - both subclasses define it
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            await self.release()
        except LeaseLost:
            if exc_type is None:
                raise


class AsyncLease(_ReleasedOnExit):
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

    On the async face (``accord.aio``) the calls that touch the store are
    awaited (``async with session.lease(key) as lease:``) and ``keepalive``
    renews from a task on the event loop; on the sync face from a thread, and
    the lease may be used from several threads.
    """

    def __init__(
        self,
        session: LeaseSession,
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
        self._released = False
        self._lost: LeaseLost | None = None
        if True:  # ASYNC
            self._lock = asyncio.Lock()
            self._keeper: asyncio.Task[None] | None = None
        else:
            self._lock = threading.RLock()
            self._stop = threading.Event()
            self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(key={self.key!r}, token={self.token}, mode={self.mode!r}, "
            f"agent={self.agent!r}, expires={core.iso(self.expires)!r})"
        )

    @property
    def agent(self) -> str:
        """The agent that holds the lease."""
        return self.session.agent

    @property
    def record_key(self) -> str:
        return core.held_key(self.key, self.token)

    @property
    def keepalive(self) -> bool:
        """True while a background renewer (a thread; a task on the async face) runs."""
        if True:  # ASYNC
            return self._keeper is not None and not self._keeper.done()
        else:
            return self._thread is not None and self._thread.is_alive()

    @property
    def lost(self) -> bool:
        """True once this object knows the lease lapsed (keepalive or a failed renew)."""
        return self._lost is not None

    async def remaining(self) -> float:
        """Seconds left before the deadline, on the store's clock (may be negative)."""
        return self.expires - await self.session.store.backend.now()

    if True:  # ASYNC

        async def held(self) -> bool:
            """Ask the store whether this is still a live lease of this agent (no exception)."""
            return await self._held()

    else:

        @property
        def held(self) -> bool:
            """Ask the store whether this is still a live lease of this agent (no exception)."""
            return self._held()

    async def _held(self) -> bool:
        if self._released:
            return False
        backend = self.session.store.backend
        rec = await backend.get(self.record_key)
        return (
            rec is not None
            and not rec.deleted
            and rec.author == self.agent
            and (rec.expires is None or rec.expires > await backend.now())
        )

    # --- renew ----------------------------------------------------------------

    async def renew(self, ttl: float | None = None) -> float:
        """Extend the lease to ``ttl`` seconds from now (store clock); returns the new deadline.

        ``ttl`` defaults to the TTL the lease was granted with. Raises
        :class:`LeaseLost` if the lease already expired or was released: an
        expired lease is never revived, because another agent may hold the
        key by now. Acquire a new one instead.
        """
        new_ttl = self.ttl if ttl is None else core.check_ttl(ttl)
        async with self._lock:
            if self._released:
                raise LeaseLost(
                    f"Cannot renew the lease on {self.key} (token {self.token}): you released it. "
                    f"Acquire a new lease ({call('session.acquire', self.key)}).",
                    key=self.key,
                    token=self.token,
                )
            session = self.session
            lamport, vector = await session._tick()
            event = core.lease_event(
                self.agent, "lease_renew", self.key, self.token, lamport, vector
            )
            event.update(mode=self.mode, ttl=new_ttl)
            hk = self.record_key
            result = await session.store.backend.txn(
                [Compare(hk, "expires", ">", NOW), Compare(hk, "holder", "==", self.agent)],
                [
                    Put(
                        hk,
                        "json",
                        self._payload(),
                        self.agent,
                        lamport,
                        "{}",
                        ttl=new_ttl,
                        event=event,
                    )
                ],
            )
            if not result.succeeded:
                exc = await self._lost_error("renew", result.records.get(hk))
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
        return core.pack(
            {"agent": self.agent, "mode": self.mode, "token": self.token, "ticket": self.ticket}
        )

    # --- release --------------------------------------------------------------

    async def release(self) -> None:
        """Give the lease up now, and wake the waiters that can go next.

        Raises :class:`LeaseLost` if the lease had already expired (writes
        after its deadline were fenced; redo them under a new lease) or was
        released before. Nothing is changed in that case. On the async face
        the release runs to its end even if the caller is cancelled.
        """
        if True:  # ASYNC
            await _shielded(self.session.store.backend, self._release())
        else:
            self._release()

    async def _release(self) -> None:
        await self._stop_keepalive()
        async with self._lock:
            if self._released:
                raise LeaseLost(
                    f"The lease on {self.key} (token {self.token}) was already released; "
                    "there is nothing to release.",
                    key=self.key,
                    token=self.token,
                )
            session = self.session
            await session.store.writes.intercept(
                session, "lease_release", self.key, token=self.token
            )
            backend = session.store.backend
            hk = self.record_key
            for _ in range(SPIN_LIMIT):
                state = await _scan(backend, self.key)
                now = await backend.now()
                mine = state.entry("held", self.token)
                if mine is None or mine.agent != self.agent or not mine.live(now):
                    break
                wake = core.grantable_after(state, now, {hk})
                ring_compares, ring_ops = core.ring(wake, now)
                lamport, vector = await session._tick()
                event = core.lease_event(
                    self.agent, "lease_release", self.key, self.token, lamport, vector
                )
                event.update(mode=self.mode, expires=core.iso(mine.expires or now))
                result = await backend.txn(
                    [
                        Compare(hk, "expires", ">", NOW),
                        Compare(hk, "holder", "==", self.agent),
                        # A ticket taken after our scan would miss its wake-up.
                        Compare(core.tickets_key(self.key), "version", "==", state.tickets_version),
                        *ring_compares,
                    ],
                    [Delete(hk, purge=True), Append(event), *ring_ops],
                )
                if result.succeeded:
                    self._released = True
                    return
            rec = await backend.get(hk)
            exc = await self._lost_error("release", rec)
            self._released = True
            self._lost = exc
            raise exc

    async def _lost_error(self, doing: str, rec: Record | None) -> LeaseLost:
        """Explain why this lease is not held any more (and record its expiry)."""
        backend = self.session.store.backend
        now = await backend.now()
        if rec is not None and not rec.deleted and rec.author == self.agent:
            expired_at = rec.expires if rec.expires is not None else now
            await _reap(self.session, self.key, rec)
            why = core.expired_why(expired_at, now)
        else:
            why = await _end_of(backend, self.key, self.token)
        holders = core.describe_holders(
            self.key, core.live_tokens(await _scan(backend, self.key), now)
        )
        return core.lost_error(self.key, self.token, doing, why, holders)

    # --- checks ---------------------------------------------------------------

    async def ensure_held(self) -> None:
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
        rec = await backend.get(self.record_key)
        now = await backend.now()
        if (
            rec is not None
            and not rec.deleted
            and rec.author == self.agent
            and (rec.expires is None or rec.expires > now)
        ):
            if rec.expires is not None:
                # No await between the read and the write of ``expires``: a
                # renewal cannot interleave on the async face; the sync face
                # has several threads, so it takes the lock.
                if True:  # ASYNC
                    self.expires = max(self.expires, rec.expires)
                else:
                    with self._lock:
                        self.expires = max(self.expires, rec.expires)
            return
        exc = await self._lost_error("check", rec)
        self._lost = exc
        raise exc

    # --- keepalive ------------------------------------------------------------

    async def start_keepalive(self) -> None:
        """Renew in the background every third of the TTL until released or lost.

        The renewer (a thread; a task on the event loop on the async face)
        never re-acquires: once a renewal finds the lease lost it stops, and
        :meth:`ensure_held` (and leaving the ``with`` block) raise
        :class:`LeaseLost`.
        """
        if True:  # ASYNC
            if _inline(self.session.store.backend):
                from ..errors import option

                raise UsageError(
                    f"{option('keepalive', True)} renews from an asyncio task, which the "
                    "interleaving explorer cannot schedule: inside an exploration, renew the lease "
                    f"yourself ({call('lease.renew')}) or give it a TTL that covers the work."
                )
            if self._keeper is None:
                self._keeper = asyncio.create_task(
                    self._keepalive_loop(), name=f"accord-keepalive-{self.key}"
                )
        else:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._keepalive_loop, name=f"accord-keepalive-{self.key}", daemon=True
                )
                self._thread.start()

    async def _keepalive_loop(self) -> None:
        while True:
            if True:  # ASYNC
                # The store's sleep: a simulation's virtual clock runs it.
                await self.session.store.sleep(self.ttl / 3)
            else:
                if self._stop.wait(self.ttl / 3):
                    return
            try:
                await self.renew()
            except LeaseLost:
                return
            except AccordError:
                # The store is unreachable now; try again next tick. If it
                # stays away past the deadline, the renewal fails as lost.
                continue

    async def _stop_keepalive(self) -> None:
        if True:  # ASYNC
            keeper = self._keeper
            if keeper is not None and keeper is not asyncio.current_task():
                keeper.cancel()
                # asyncio.wait: the keeper's end, without its CancelledError
                # (ours, if we are cancelled meanwhile, still goes through).
                await asyncio.wait([keeper])
        else:
            self._stop.set()
            thread = self._thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=10)


async def status(store: LeaseStore, key: str) -> LeaseStatus:
    """The live holders and waiters of ``key`` (expired ones are left out)."""
    validate_key(key)
    backend = store.backend
    state = await _scan(backend, key)
    return core.lease_status(state, await backend.now())


# --- acquire ------------------------------------------------------------------------


async def acquire(
    session: LeaseSession,
    key: str,
    *,
    ttl: float = 30,
    wait: float = 10,
    mode: str = "exclusive",
    keepalive: bool = False,
    on_wait: Any = None,
    cancel: CancelFlag | None = None,
) -> AsyncLease:
    """Acquire a lease on ``key``, waiting up to ``wait`` seconds in line.

    Returns the granted :class:`AsyncLease`; you *must* release it (or use it as
    a context manager). Waiters are served first come, first served; a
    shared request joins other shared holders unless an exclusive request is
    waiting ahead of it. Raises :class:`LeaseTimeout` when ``wait`` runs out
    (the request leaves the line; nothing is held), and :class:`Deadlock`
    when waiting would close a cycle of agents waiting for each other.
    ``on_wait(position)`` is called with the request's place in line (1 =
    next) whenever it changes while waiting. Setting ``cancel`` (a
    ``threading.Event``) gives up the wait (within :data:`CANCEL_LATENCY`
    seconds): the request leaves the line and :class:`LeaseCancelled` is
    raised. On the async face, cancelling the call does the same: the
    request leaves the line, a lease granted meanwhile is released, and the
    caller's ``asyncio.CancelledError`` goes on.
    """
    validate_key(key)
    ttl = core.check_ttl(ttl)
    wait = core.check_wait(wait)
    mode_ = core.check_mode(mode)
    params.flag(keepalive, "keepalive")
    await session.store.writes.intercept(
        session, "lease_acquire", key, ttl=ttl, wait=wait, mode=mode_
    )
    acquirer = _Acquirer(session, key, ttl, wait, mode_, on_wait, cancel)
    if True:  # ASYNC
        lease = await _cancellable(acquirer)
    else:
        lease = acquirer.run()
    if keepalive:
        await lease.start_keepalive()
    return lease


if True:  # ASYNC

    def _inline(backend: Any) -> bool:
        """True when the backend's caller drives every coroutine itself, one
        step at a time (the explorer's, ``runs_inline``): an asyncio task
        started there would run outside its schedule, so none is."""
        return bool(getattr(backend, "runs_inline", False))

    async def _shielded(backend: Any, work: Any) -> None:
        """``await asyncio.shield(work)``; ``work`` itself on an inline backend
        (nothing there is cancelled by asyncio)."""
        if _inline(backend):
            await work
        else:
            await asyncio.shield(work)

    async def _cancellable(acquirer: _Acquirer) -> AsyncLease:
        """Run ``acquirer`` in a task of its own; if the caller is cancelled,
        leave the line and hold nothing before the cancellation goes on.

        The task is cancelled at once unless it is committing a ticket or a
        grant (``busy``): a cancelled transaction may or may not have
        committed, and a ticket or a grant nobody knows of would block the
        line until it lapses. A busy task stops at its next turn instead
        (``stopped``), and a grant that won the race is released.
        """
        if _inline(acquirer.backend):
            return await acquirer.run()
        inner = asyncio.ensure_future(acquirer.run())
        try:
            return await asyncio.shield(inner)
        except asyncio.CancelledError:
            acquirer.stopped = True
            if not acquirer.busy:
                inner.cancel()
            with contextlib.suppress(BaseException):
                granted = await inner
                await granted.release()
            raise


class _Acquirer:
    """One acquire call: the loop that takes a ticket, waits, and is granted.

    Every time is the store's clock (``backend.now()``), every pause a
    ``backend.wait`` on the waiter's own ticket: so leases run on virtual
    time under the explorer as they run on the database's clock.
    """

    def __init__(
        self,
        session: LeaseSession,
        key: str,
        ttl: float,
        wait: float,
        mode: Mode,
        on_wait: Any,
        cancel: CancelFlag | None = None,
    ) -> None:
        self.session = session
        self.backend = session.store.backend
        self.key = key
        self.ttl = ttl
        self.wait = wait
        self.mode = mode
        self.on_wait = on_wait
        self.cancel = cancel
        self.qttl = core.queue_ttl(ttl)
        self.ticket: int | None = None
        self.ticket_data = b""
        self.started: float | None = None  # store clock, at the first look
        self.deadline = 0.0
        self.last_blockers: frozenset[str] | None = None
        self.last_check = 0.0
        self.position = 0
        self.stopped = False
        """Set to give up at the next turn of the loop (a cancelled async acquire)."""
        self.busy = False
        """True while a transaction that takes a ticket or a grant is out."""

    # --- the loop ----------------------------------------------------------------

    async def run(self) -> AsyncLease:
        try:
            return await self._loop()
        except GeneratorExit:
            # The coroutine is being closed, not cancelled: its event loop is
            # gone, so nothing can be awaited. The ticket lapses by itself.
            raise
        except BaseException:
            if self.ticket is not None:
                # Leaving the line (timeout, deadlock, cancel, interrupt):
                # free our place and wake whoever can go now.
                if True:  # ASYNC
                    # Shielded: a second cancellation must not cut it short.
                    await _shielded(self.backend, self._abandon(None))
                else:
                    self._abandon(None)
            raise

    def _given_up(self) -> bool:
        return self.stopped or (self.cancel is not None and self.cancel.is_set())

    async def _loop(self) -> AsyncLease:
        agent = self.session.agent
        for _ in range(SPIN_LIMIT * 10):
            if self._given_up():
                raise LeaseCancelled(f"The acquire of the lease on {self.key} was cancelled.")
            # The revision a wait starts from must be read before the scan
            # it decides on (a change between them would be missed). Only a
            # waiter with a ticket waits: an acquire free at once (or one
            # that joins the line now) does not read it.
            since = 0 if self.ticket is None else await self.backend.revision()
            state = await _scan(self.backend, self.key)
            now = await self.backend.now()
            if self.started is None:
                self.started = now
                self.deadline = now + self.wait
            mine: Entry | None = None
            if self.ticket is not None:
                mine = state.entry("q", self.ticket)
                if mine is None or not mine.live(now) or mine.agent != agent:
                    # Our ticket lapsed (we were stalled past its TTL) and was
                    # reaped or passed over: join the line again at the back.
                    self.ticket = None
                    mine = None
            blockers = core.blockers(state, now, self.ticket, self.mode)
            if not blockers:
                lease = await self._grant(state, now)
                if lease is not None:
                    return lease
                continue
            left = self.deadline - now
            if self.ticket is None:
                if left <= 0:
                    await self._timeout(state, now, blockers)
                await self._enqueue(state, now)
                continue
            assert mine is not None
            self._report_position(state, now)
            names = frozenset(e.record_key for e in blockers)
            stale = now - self.last_check > core.DEADLOCK_RECHECK
            if self.last_blockers is None or stale:
                self.last_blockers = names
                self.last_check = now
                if await self._detect_deadlock(state, now):
                    continue
            if left <= 0:
                await self._timeout(state, now, blockers)
            # Sleep until: our ticket is rewritten (we were rung), the nearest
            # blocker's deadline passes, our ticket needs refreshing, or wait
            # runs out.
            nearest = core.nearest(blockers)
            timeout = min(left, MAX_SLEEP if self.cancel is None else CANCEL_LATENCY)
            if True:  # ASYNC
                if _inline(self.backend):
                    # Under a scheduler that drives every coroutine, a wait
                    # is woken exactly by the commit that rings it: no
                    # safety poll (it would only cost steps).
                    timeout = left
            if nearest.expires is not None:
                timeout = min(timeout, max(0.0, nearest.expires - now) + 0.001)
            refresh_in = (mine.expires or now) - now - self.qttl / 2
            if refresh_in <= 0:
                await self._refresh()
                continue
            timeout = min(timeout, refresh_in)
            await self.backend.wait([mine.record_key], [], since, max(timeout, 0.0))
        raise AccordError(  # pragma: no cover - the store keeps refusing consistent txns
            f"Acquiring the lease on {self.key} made no progress; the store may be damaged."
        )

    def _report_position(self, state: State, now: float) -> None:
        if self.on_wait is None or self.ticket is None:
            return
        place = core.position(state, now, self.ticket)
        if place != self.position:
            self.position = place
            self.on_wait(place)

    # --- transactions -----------------------------------------------------------

    def _reaps(self, state: State, now: float) -> tuple[list[Compare], list[Op]]:
        """Remove lapsed records seen in ``state`` (recording each lease's expiry)."""
        compares: list[Compare] = []
        ops: list[Op] = []
        agent = self.session.agent
        for e in state.held:
            if not e.live(now):
                compares.append(Compare(e.record_key, "version", "==", e.version))
                ops.append(Delete(e.record_key, purge=True))
                ops.append(Append(core.expire_event(agent, self.key, e)))
        for e in state.queue:
            if not e.live(now) and e.number != self.ticket:
                compares.append(Compare(e.record_key, "version", "==", e.version))
                ops.append(Delete(e.record_key, purge=True))
                ops.append(Delete(core.waitfor_key(e.agent, self.key, e.number), purge=True))
        return compares, ops

    async def _grant(self, state: State, now: float) -> AsyncLease | None:
        session = self.session
        agent = session.agent
        token = state.tokens_version + 1
        hk = core.held_key(self.key, token)
        data = core.pack(
            {
                "agent": agent,
                "mode": self.mode,
                "token": token,
                "ticket": self.ticket,
                "ttl": self.ttl,
            }
        )
        lamport, vector = await session._tick()
        event = core.lease_event(agent, "lease_acquire", self.key, token, lamport, vector)
        waited = now - (self.started if self.started is not None else now)
        event.update(mode=self.mode, ttl=self.ttl, ticket=self.ticket, waited=round(waited, 6))
        # Every grant takes the next token, so comparing the token sequence
        # makes this grant fail if any other grant happened since our scan:
        # the decision "nothing conflicting is held" was made on that scan.
        tokens = core.tokens_key(self.key)
        compares = [Compare(tokens, "version", "==", state.tokens_version)]
        ops: list[Op] = [Put(tokens, "json", b"{}", agent)]
        if self.ticket is not None:
            qk = core.queue_key(self.key, self.ticket)
            compares += [Compare(qk, "expires", ">", NOW), Compare(qk, "holder", "==", agent)]
            ops += [
                Delete(qk, purge=True),
                Delete(core.waitfor_key(agent, self.key, self.ticket), purge=True),
            ]
        reap_compares, reap_ops = self._reaps(state, now)
        compares += reap_compares
        ops += reap_ops
        ops.append(Put(hk, "json", data, agent, lamport, "{}", ttl=self.ttl, event=event))
        self.busy = True
        try:
            result = await self.backend.txn(compares, ops)
        finally:
            self.busy = False
        if not result.succeeded:
            return None
        rec = result.records.get(hk)
        expires = rec.expires if rec is not None and rec.expires is not None else now + self.ttl
        ticket, self.ticket = self.ticket, None
        return AsyncLease(
            session,
            self.key,
            token,
            self.mode,
            self.ttl,
            expires,
            ticket=ticket,
            waited=waited,
            data=data,
        )

    async def _enqueue(self, state: State, now: float) -> None:
        agent = self.session.agent
        ticket = state.tickets_version + 1
        data = core.pack(
            {
                "agent": agent,
                "mode": self.mode,
                "ticket": ticket,
                "since": now,
                "qttl": self.qttl,
                "key": self.key,
            }
        )
        index = core.pack({"agent": agent, "key": self.key, "ticket": ticket, "mode": self.mode})
        tickets = core.tickets_key(self.key)
        self.busy = True
        try:
            result = await self.backend.txn(
                [Compare(tickets, "version", "==", state.tickets_version)],
                [
                    Put(tickets, "json", b"{}", agent),
                    Put(core.queue_key(self.key, ticket), "json", data, agent, ttl=self.qttl),
                    Put(
                        core.waitfor_key(agent, self.key, ticket),
                        "json",
                        index,
                        agent,
                        ttl=self.qttl,
                    ),
                ],
            )
        finally:
            self.busy = False
        if result.succeeded:
            self.ticket = ticket
            self.ticket_data = data
            self.last_blockers = None

    async def _refresh(self) -> None:
        assert self.ticket is not None
        agent = self.session.agent
        qk = core.queue_key(self.key, self.ticket)
        index = core.pack(
            {"agent": agent, "key": self.key, "ticket": self.ticket, "mode": self.mode}
        )
        result = await self.backend.txn(
            [Compare(qk, "expires", ">", NOW), Compare(qk, "holder", "==", agent)],
            [
                Put(qk, "json", self.ticket_data, agent, ttl=self.qttl),
                Put(
                    core.waitfor_key(agent, self.key, self.ticket),
                    "json",
                    index,
                    agent,
                    ttl=self.qttl,
                ),
            ],
        )
        if not result.succeeded:
            self.ticket = None  # lapsed: the loop joins the line again

    async def _abandon(
        self, extra: dict[str, Any] | None, compares: Sequence[Compare] = ()
    ) -> bool:
        """Leave the line: drop our ticket, wake who can go now, record why."""
        assert self.ticket is not None
        session = self.session
        agent = session.agent
        qk = core.queue_key(self.key, self.ticket)
        for _ in range(SPIN_LIMIT):
            try:
                state = await _scan(self.backend, self.key)
                now = await self.backend.now()
                ring_compares, ring_ops = core.ring(core.grantable_after(state, now, {qk}), now)
                ops: list[Op] = [
                    Delete(qk, purge=True),
                    Delete(core.waitfor_key(agent, self.key, self.ticket), purge=True),
                    *ring_ops,
                ]
                if extra is not None:
                    lamport, vector = await session._tick()
                    event = core.lease_event(
                        agent, "lease_acquire", self.key, None, lamport, vector
                    )
                    event.update(outcome="rejected", mode=self.mode, ticket=self.ticket, **extra)
                    ops.append(Append(event))
                result = await self.backend.txn(
                    [
                        *compares,
                        Compare(core.tickets_key(self.key), "version", "==", state.tickets_version),
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

    async def _timeout(self, state: State, now: float, blockers: list[Entry]) -> None:
        waited = now - (self.started if self.started is not None else now)
        place = core.position(state, now, self.ticket)
        if self.ticket is not None:
            await self._abandon({"reason": "timeout", "waited": round(waited, 6)})
        raise core.timeout_error(
            self.key, self.mode, self.wait, waited, place, blockers, self.session.agent, now
        )

    # --- deadlock detection ---------------------------------------------------

    async def _detect_deadlock(self, state: State, now: float) -> bool:
        """Fail this waiter with Deadlock if it is on a cycle; False if not.

        Returns True when the state changed under us and the loop should look
        again.
        """
        assert self.ticket is not None
        cycle = await _find_cycle(self.session, self.key, self.ticket, self.mode, state, now)
        if cycle is None:
            return False
        # Give up our place only if every edge of the cycle still stands: of
        # several waiters that see the same cycle, the first to commit breaks
        # it and the others' transactions fail, so exactly one fails.
        description = [edge.as_dict() for edge in cycle]
        abandoned = await self._abandon(
            {"reason": "deadlock", "cycle": description}, core.cycle_compares(cycle)
        )
        if not abandoned:
            self.last_blockers = None  # look again on the next turn of the loop
            return True
        raise core.deadlock_error(self.key, cycle)


async def _find_cycle(
    session: LeaseSession, key: str, ticket: int, mode: str, state: State, now: float
) -> list[core.Edge] | None:
    """A cycle of the wait-for graph through this waiter, as edges, or None.

    Nodes are agents; an agent waiting on a key points at every agent whose
    live lease or earlier ticket on that key blocks it. Waits of other agents
    come from their ``.accord/waitfor/`` index entries, each checked against
    the key's own records. Edges from an agent to itself are ignored (one
    agent's threads may legitimately wait on each other).
    """
    backend = session.store.backend
    me = session.agent
    states: dict[str, State] = {key: state}
    my_record = core.queue_key(key, ticket)
    # BFS; parent[agent] = the edge by which we reached it.
    parent: dict[str, core.Edge] = {}
    frontier: list[str] = []
    for b in core.blockers(state, now, ticket, mode):
        if b.agent != me and b.agent not in parent:
            parent[b.agent] = core.Edge(me, key, my_record, b.agent, b.record_key, b.kind)
            frontier.append(b.agent)
    seen_agents = {me}
    while frontier:
        agent = frontier.pop(0)
        if agent in seen_agents:
            continue
        seen_agents.add(agent)
        for rec in await backend.scan(core.waitfor_prefix(agent)):
            found = core.waitfor_entry(rec, agent, now)
            if found is None:
                continue
            wkey, wticket, wmode = found
            st = states.get(wkey)
            if st is None:
                st = states[wkey] = await _scan(backend, wkey)
            entry = st.entry("q", wticket)
            if entry is None or not entry.live(now) or entry.agent != agent:
                continue
            for b in core.blockers(st, now, wticket, wmode):
                if b.agent == agent:
                    continue
                edge = core.Edge(agent, wkey, entry.record_key, b.agent, b.record_key, b.kind)
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


class AsyncLeaseSet(_ReleasedOnExit):
    """Leases on several keys, taken in one canonical (sorted) order.

    Index by key (``leases["docs/a"]``), iterate in key order, and use as a
    context manager: leaving the block releases every lease, and raises
    :class:`LeaseLost` if any lapsed inside it. You *must* release it.
    """

    def __init__(self, leases: list[AsyncLease]) -> None:
        self._leases = leases
        self._by_key = {lease.key: lease for lease in leases}

    def __repr__(self) -> str:
        held = ", ".join(f"{x.key}#{x.token}" for x in self._leases)
        return f"{type(self).__name__}({held})"

    def __getitem__(self, key: str) -> AsyncLease:
        try:
            return self._by_key[key]
        except KeyError:
            raise UsageError(f"This lease set holds {sorted(self._by_key)}, not {key!r}.") from None

    def __iter__(self) -> Iterator[AsyncLease]:
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

    async def renew(self, ttl: float | None = None) -> None:
        """Renew every lease; :class:`LeaseLost` names the first that lapsed."""
        for lease in self._leases:
            await lease.renew(ttl)

    async def ensure_held(self) -> None:
        """Raise :class:`LeaseLost` unless every lease is still live."""
        for lease in self._leases:
            await lease.ensure_held()

    async def release(self) -> None:
        """Release every lease (in reverse order); then raise LeaseLost if any had lapsed."""
        lost: list[LeaseLost] = []
        for lease in reversed(self._leases):
            try:
                await lease.release()
            except LeaseLost as exc:
                lost.append(exc)
        if lost:
            raise LeaseLost(
                " ".join(exc.template for exc in lost),
                key=lost[0].key if hasattr(lost[0], "key") else None,
                keys=[getattr(exc, "key", None) for exc in lost],
            )


async def acquire_all(
    session: LeaseSession,
    keys: Sequence[str],
    *,
    ttl: float = 30,
    wait: float = 10,
    mode: str = "exclusive",
    keepalive: bool = False,
) -> AsyncLeaseSet:
    """Acquire leases on every key of ``keys`` in sorted order, sharing one ``wait``.

    Taking keys in one canonical order means two agents using lease_all can
    never deadlock. If any lease cannot be had (timeout, deadlock, a
    cancelled call), the ones already taken are released and the error is
    raised: all or nothing.
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
    ttl = core.check_ttl(ttl)
    wait = core.check_wait(wait)
    core.check_mode(mode)
    params.flag(keepalive, "keepalive")
    backend = session.store.backend
    deadline = await backend.now() + wait
    taken: list[AsyncLease] = []
    try:
        for key in sorted(key_list):
            left = wait if not taken else max(0.0, deadline - await backend.now())
            taken.append(
                await acquire(session, key, ttl=ttl, wait=left, mode=mode, keepalive=keepalive)
            )
    except BaseException:
        for lease in reversed(taken):
            with contextlib.suppress(AccordError):
                await lease.release()
        raise
    return AsyncLeaseSet(taken)


# --- fencing (called by the session's write) -------------------------------------------------


def _carried(lease: object) -> Carried | None:
    """What a lease object says about itself (token, key, agent, mode); None
    for anything else (a bare token). Either face's lease is accepted."""
    if isinstance(lease, int):
        return None
    token = getattr(lease, "token", None)
    if isinstance(token, int) and not isinstance(token, bool) and hasattr(lease, "key"):
        return Carried(
            token, str(lease.key), str(getattr(lease, "agent", "")), getattr(lease, "mode", None)
        )
    return None


async def fence_compares(session: LeaseSession, key: str, lease: Any) -> tuple[list[Compare], int]:
    """Compares that hold only while ``lease`` is ``key``'s live lease, and its token.

    ``lease`` is a :class:`AsyncLease` or an int token (the CLI's ``--lease``).
    The store checks them in the write's own transaction, on its own clock.
    A lease of another key, of another agent, or a shared lease gives a
    compare that always fails, so the refusal is recorded as ``fenced``.
    """
    carried = _carried(lease)
    if carried is not None:
        token = carried.token
        impossible = (
            carried.key != key or carried.mode != "exclusive" or carried.agent != session.agent
        )
    else:
        token = core.check_token(lease)
        rec = await session.store.backend.get(core.held_key(key, token))
        impossible = core.is_shared(rec)
    return core.fence(key, session.agent, token, impossible), token


# --- exclusion (a guard on every write path, see Store.add_guard) --------------------------


async def explain(session: LeaseSession, key: str, token: int | None, result: TxnResult) -> None:
    """Raise :class:`LeaseHeld` when :func:`guard`'s compare refused a write of ``key``."""
    prefix = core.held_prefix(key)
    failed = result.failed
    if failed is not None and not (failed.target == "vacant" and failed.key == prefix):
        return
    backend = session.store.backend
    now = await backend.now()
    exempt = None if token is None else core.held_key(key, token)
    live = [e for e in (await _scan(backend, key)).held if e.live(now) and e.record_key != exempt]
    if not live and failed is None:
        return  # the backend cannot say, and no lease is live now: not ours to explain
    raise core.held_error(session.agent, key, live, now)


def install(store: GuardedStore) -> None:
    """Install the lease exclusion guard on ``store`` (``Store`` does this by default)."""
    store.add_guard(guard, explain)


def held_error(session: LeaseSession, key: str, live: Sequence[Entry], now: float) -> LeaseHeld:
    """The :class:`LeaseHeld` error for a write of ``key`` refused by the ``live`` grants."""
    return core.held_error(session.agent, key, live, now)


async def fenced_error(
    session: LeaseSession, key: str, lease: Any, records: dict[str, Record | None]
) -> Fenced:
    """Explain why a write under ``lease`` was refused, as a :class:`Fenced` error."""
    backend = session.store.backend
    now = await backend.now()
    carried = _carried(lease) or Carried(int(lease))
    hk = core.held_key(key, carried.token)
    rec = records[hk] if hk in records else await backend.get(hk)
    live = core.live_tokens(await _scan(backend, key), now)
    last_token, ended = 0, ""
    gone = rec is None or rec.deleted
    if gone and core.fenced_reason(session.agent, key, carried, rec, now) is None:
        last_token = await _tokens_version(backend, key)
        if carried.token <= last_token:
            ended = await _end_of(backend, key, carried.token)
    target = records.get(key)
    version = 0 if target is None or target.deleted else target.version
    return core.fenced_error(
        session.agent, key, carried, rec, now, live, last_token, ended, version
    )


# --- reads shared by the explanations ---------------------------------------------------


async def _tokens_version(backend: AsyncBackend, key: str) -> int:
    rec = await backend.get(core.tokens_key(key))
    return 0 if rec is None else rec.version


async def _end_of(backend: AsyncBackend, key: str, token: int) -> str:
    """How lease ``token`` of ``key`` ended, from the history."""
    async for ev in backend.history(key=key):
        if ev.get("lease") == token and ev.get("op") in ("lease_release", "lease_expire"):
            return core.end_of([ev], token)
    return core.end_of([], token)


async def _reap(session: LeaseSession, key: str, rec: Record) -> None:
    """Remove an expired grant and record its lease_expire event (once)."""
    entry = core.decode(rec, rec.key[len(core.prefix(key)) :])
    if entry is None or entry.kind != "held":
        return
    await session.store.backend.txn(
        [Compare(rec.key, "version", "==", rec.version), Compare(rec.key, "expires", "<=", NOW)],
        [Delete(rec.key, purge=True), Append(core.expire_event(session.agent, key, entry))],
    )


# --- the CLI's way in: a token instead of a Lease object -----------------------------------


async def from_token(session: LeaseSession, key: str, token: int) -> AsyncLease:
    """The :class:`AsyncLease` of ``session``'s agent on ``key`` with fencing token ``token``.

    For tools that keep only the token (the CLI). Raises
    :class:`UsageError` if no such lease was ever granted on ``key`` or it
    belongs to another agent, and :class:`LeaseLost` if it was released or
    expired. Nothing is changed.
    """
    validate_key(key)
    token = core.check_token(token)
    backend = session.store.backend
    rec = await backend.get(core.held_key(key, token))
    now = await backend.now()
    if rec is None or rec.deleted:
        last = await _tokens_version(backend, key)
        if token > last:
            raise core.unknown_token(key, token, last)
        ended = await _end_of(backend, key, token)
        holders = core.describe_holders(key, core.live_tokens(await _scan(backend, key), now))
        raise LeaseLost(
            f"The lease on {key} with token {token} {ended}; you hold nothing to renew or "
            f"release. {holders}",
            key=key,
            token=token,
        )
    if rec.author != session.agent:
        raise core.not_holder(key, token, rec.author, session.agent)
    value = core.unpack(rec.data)
    lease = AsyncLease(
        session,
        key,
        token,
        core.check_mode(value.get("mode", "exclusive")),
        float(value.get("ttl", 30.0)),
        rec.expires if rec.expires is not None else now,
        ticket=value.get("ticket"),
        data=rec.data,
    )
    if rec.expires is not None and rec.expires <= now:
        raise await lease._lost_error("check", rec)
    return lease
