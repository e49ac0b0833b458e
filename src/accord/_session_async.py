"""The front door: one agent's handle on a store.

A :class:`AsyncSession` knows who the agent is, what it has read (so every write
records ``based_on``, the version the agent built on), and its logical
clocks. Every operation passes the store's hooks (``store.writes.intercept``),
the one point where policy (the manifest), history and test schedulers hook in.

What guards a write (the rules are in :mod:`accord._core.write`, the commit
in ``store.writes``):

* ``expect=v``: the store compares the key's version with ``v`` inside the
  same transaction that writes (optimistic concurrency);
* ``lease=lease``: the store checks that the lease is the key's live lease
  (fencing), see :mod:`accord.strategies._lease_async`;
* ``force=True``: an explicit blind write, recorded with ``check: none``;
* nothing: create-only. A write to an existing key with no guard is refused
  with :class:`PreconditionRequired`, because a blind write is how updates
  get lost.
"""

from __future__ import annotations

import threading  # noqa: F401, RUF100 (the sync face's watch(stop=))
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._clockio_async import stored_agent_clock
from ._core.write import (
    ABSENT,
    MAX_VERSION,
    Operation,
    Seen,
    backoff_delay,
    check_args,
    check_of,
    check_replay,
    check_update_args,
    create_refused,
    doc_of,
    idempotency_record,
    live_idempotency,
    make_event,
    needs_own_change,
    not_found,
    plan_write,
    replayed_doc,
    retries_exhausted,
    unguarded_delete,
)
from .backends.base import iso_time
from .clock import AgentClock, decode_clock
from .errors import Conflict, NotFound
from .keys import validate_key
from .records import Append, Compare, Doc, Put, Record, TxnResult, Value, decode_value, make_doc

if TYPE_CHECKING:
    from ._core.watch import WatchEvent
    from ._store_async import AsyncStore
    from .strategies._branch_async import AsyncBranch
    from .strategies._lease_async import AsyncLease, AsyncLeaseSet
    from .strategies._queue_async import AsyncRequest

    if True:  # ASYNC
        from ._aio_strategies import Leasing
        from .session import Session

__all__ = ["MAX_VERSION", "AsyncSession", "Operation", "decode_clock"]

if True:  # ASYNC

    def _resumed_by_tick() -> tuple[int, int, str]:
        raise RuntimeError(
            "An async session's clocks resume from the store in `await session._tick()`; "
            "a strategy on the async face must tick with it, not with clock.tick()."
        )


class AsyncSession:
    """One agent's handle: identity, clocks, and what it has read.

    Create with :meth:`AsyncStore.session`. A session may be used from several
    threads at once. Its clocks continue its agent's from the store at its
    first event (so across processes); each agent name should have one live
    session at a time, or two of them may carry colliding clocks (see
    docs/history.md).
    """

    def __init__(self, store: AsyncStore, agent: str) -> None:
        self.store = store
        self.agent = agent
        if True:  # ASYNC
            if store.sync is not None:
                self.sync: Session = store.sync.session(agent)
                """The same agent on the store's sync twin, sharing this
                session's clocks and memory (hooks and guards are given it,
                and the strategies run on it in worker threads). Absent when
                the store has no twin."""
                self.clock = self.sync.clock
                self.seen = self.sync.seen
            else:
                # No twin: the clocks resume from the store natively, at the
                # first tick (:meth:`_tick`).
                self.clock = AgentClock(agent, resume=_resumed_by_tick)
                self.seen = Seen()
        else:
            # The clocks continue the agent's from the store (its latest event,
            # and the store's largest Lamport time), read once, at the first
            # event this session makes: happened-before holds across processes.
            self.clock = AgentClock(agent, resume=lambda: stored_agent_clock(store.backend, agent))
            self.seen = Seen()
            """What this agent has read or written, ``key -> (version, value)``:
            a write names the version it built on from here."""

    def __repr__(self) -> str:
        return f"AsyncSession(agent={self.agent!r}, store={self.store.url!r})"

    def seen_version(self, key: str) -> int | None:
        """The version of ``key`` this agent last read or wrote, or None."""
        return self.seen.version(key)

    async def _tick(self) -> tuple[int, dict[str, int]]:
        """Advance this agent's clocks for an event it makes: (lamport, vector).

        The first tick resumes them from the store (its reads are awaited
        here, so a strategy on the async face ticks with ``await
        session._tick()``, never ``session.clock.tick()``).
        """
        clock = self.clock
        if not clock.resumed:
            clock.resume_with(await stored_agent_clock(self.store.backend, self.agent))
        return clock.tick()

    # --- reads -------------------------------------------------------------

    async def read(self, key: str) -> Doc:
        """Read the current version of ``key``.

        Raises :class:`NotFound` if the key is absent (never written, or
        deleted). The session remembers the version it read: a later write
        records it as ``based_on``, and the stored vector clock is merged into
        the agent's, so the read is part of happened-before.
        """
        validate_key(key)
        store = self.store
        writes = store.writes
        if writes.hooks:
            await writes.intercept(self, "read", key)
        backend = store.backend
        if not store.record_reads:
            # The hot path of a read: the row of a live key, without a
            # Record; absent or deleted keys take the general path below,
            # which explains them.
            row = await backend.read_live(key)
            if row is not None:
                kind, data, version, revision, author, lamport, clock_text = row
                self.clock.observe(key, lamport, clock_text)
                value = data.decode() if kind == "text" else decode_value(kind, data)
                self.seen[key] = (version, value)
                return make_doc(
                    key, value, version, revision, author, kind, lamport, decode_clock(clock_text)
                )
        # With reads recorded, the event says when the read began (store
        # clock), so the checker can order it against acknowledged writes.
        started = await backend.now() if store.record_reads else 0.0
        rec = await backend.get(key)
        if rec is None or rec.deleted:
            self.seen.remember(key, 0 if rec is None else rec.version, ABSENT)
            if store.record_reads:
                await self._record_read(key, rec, started)
            raise not_found(key, rec)
        self.clock.observe(key, rec.lamport, rec.clock)
        doc = doc_of(rec)
        self.seen.remember(key, rec.version, doc.value)
        if store.record_reads:
            await self._record_read(key, rec, started)
        return doc

    async def _record_read(self, key: str, rec: Record | None, started: float) -> None:
        lamport, vector = await self._tick()
        version = 0 if rec is None or rec.deleted else rec.version
        event = make_event(self.agent, "read", key, lamport, vector, check="none")
        event["version"] = version
        event["start"] = iso_time(started)
        if rec is not None and not rec.deleted:
            from .records import value_hash

            event["hash"] = value_hash(rec.data)
        await self.store.backend.txn([], [Append(event)])

    async def scan(self, prefix: str = "") -> list[Doc]:
        """Every live key starting with ``prefix`` (agent keys only), in key order."""
        from .keys import RESERVED_PREFIX, validate_prefix

        validate_prefix(prefix)
        out = []
        for rec in await self.store.backend.scan(prefix):
            if rec.key.startswith(RESERVED_PREFIX):
                continue
            self.clock.observe(rec.key, rec.lamport, rec.clock)
            doc = doc_of(rec)
            self.seen.remember(rec.key, rec.version, doc.value)
            out.append(doc)
        return out

    if True:  # ASYNC

        def watch(
            self,
            key_or_prefix: str,
            since: int | None = None,
            *,
            prefix: bool = False,
            timeout: float | None = None,
            stop: Any = None,
            retry_timeout: float = 30.0,
        ) -> AsyncIterator[WatchEvent]:
            """``async for event in session.watch(key_or_prefix, since)``: every
            committed write and delete of a key (or of the keys under a prefix)
            after revision ``since``, in revision order, none skipped, none
            twice; the sync face's :meth:`accord.Session.watch`, awaited (on
            PostgreSQL its waits are the ``LISTEN`` task on the loop). ``stop``
            is an ``asyncio.Event`` or a ``threading.Event``. See docs/watch.md.
            """
            from ._watch_async import watch

            # Native on every store: the loop needs no sync twin.
            return watch(
                self,
                key_or_prefix,
                since,
                prefix=prefix,
                timeout=timeout,
                stop=stop,
                retry_timeout=retry_timeout,
            )

    else:

        def watch(
            self,
            key_or_prefix: str,
            since: int | None = None,
            *,
            prefix: bool = False,
            timeout: float | None = None,
            stop: threading.Event | None = None,
            retry_timeout: float = 30.0,
        ) -> AsyncIterator[WatchEvent]:
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
            from ._watch_async import watch

            return watch(
                self,
                key_or_prefix,
                since,
                prefix=prefix,
                timeout=timeout,
                stop=stop,
                retry_timeout=retry_timeout,
            )

    # --- writes ------------------------------------------------------------

    async def write(
        self,
        key: str,
        value: Value,
        *,
        expect: int | None = None,
        force: bool = False,
        lease: AsyncLease | int | None = None,
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
        kind, data = self.store.writes.encode(key, value)
        return await self._mutate(
            "write", key, value, kind, data, expect, force, lease, idempotency_key
        )

    async def delete(
        self,
        key: str,
        *,
        expect: int | None = None,
        force: bool = False,
        lease: AsyncLease | int | None = None,
        idempotency_key: str | None = None,
    ) -> int:
        """Delete ``key``; returns the version of the delete.

        The same guards as :meth:`write` apply, and one is required: a delete
        with no ``expect``, ``lease`` or ``force`` is refused. The version
        moves on (a later re-create continues from it, so a version is never
        reused). Raises :class:`NotFound` if the key is absent.
        """
        validate_key(key)
        doc = await self._mutate(
            "delete", key, None, "text", b"", expect, force, lease, idempotency_key
        )
        return doc.version

    async def _mutate(
        self,
        op: str,
        key: str,
        value: Value,
        kind: str,
        data: bytes,
        expect: int | None,
        force: bool,
        lease: AsyncLease | int | None,
        idempotency_key: str | None,
    ) -> Doc:
        """A session's write or delete: the rules are in ``_core.write``; this
        does the reads they need and the commit (``store.writes``)."""
        check_args(op, key, expect, force)
        writes = self.store.writes
        allow_blind = False
        if writes.hooks:
            operation = await writes.intercept(
                self,
                op,
                key,
                expect=expect,
                force=force,
                lease=lease,
                idempotency_key=idempotency_key,
            )
            allow_blind = operation.allow_blind
        idem = None
        if idempotency_key is not None:
            idem = idempotency_record(
                self.agent, op, key, kind, data, idempotency_key, self.store.idempotency_window
            )
            await writes.purge_idempotency()
            replay = await self._replay(idem, key, value)
            if replay is not None:
                return replay
        fence: list[Compare] = []
        token: int | None = None
        if lease is not None:
            fence, token = await self._fence(key, lease)
        check = check_of(expect, force, allow_blind, lease is not None)
        if op == "delete" and expect is None and check == "create":
            raise unguarded_delete(key)
        seen_entry = self.seen.get(key)
        if needs_own_change(check, expect, seen_entry):
            seen_entry = await writes.own_change(self.agent, key)
        lamport, vector = await self._tick()
        plan = plan_write(
            self.agent,
            op,
            key,
            kind,
            data,
            check=check,
            expect=expect,
            force=force,
            token=token,
            seen_entry=seen_entry,
            idempotency_key=idempotency_key,
            idem_put=None if idem is None else (idem[0], idem[1]),
            extra=None,
            lamport=lamport,
            vector=vector,
        )
        if plan.fast:
            put = plan.success[0]
            assert isinstance(put, Put) and plan.checked is not None
            result = await writes.commit_put(self, put, plan.checked, plan.failure)
        else:
            result = await writes.commit(
                self,
                key,
                plan.success,
                compares=plan.compares,
                failure=plan.failure,
                token=token,
                fence=fence,
            )
        if not result.succeeded:
            return await self._refused(
                op, key, value, plan.checked, check, lease, token, idem, result
            )
        ev = result.events[0]
        version = ev["version"]
        self.seen[key] = (version, value if op == "write" else ABSENT)
        return make_doc(key, value, version, ev["rev"], self.agent, kind, lamport, vector)

    async def _fence(self, key: str, lease: AsyncLease | int) -> tuple[list[Compare], int]:
        """The compares that hold only while ``lease`` is ``key``'s live lease."""
        from .strategies import _lease_async as lease_mod

        return await lease_mod.fence_compares(self, key, lease)

    async def _refused(
        self,
        op: str,
        key: str,
        value: Value,
        expect: int | None,
        check: str,
        lease: AsyncLease | int | None,
        token: int | None,
        idem: tuple[str, Put, str] | None,
        result: TxnResult,
    ) -> Doc:
        records = result.records
        if idem is not None:
            replay = await self._replay(idem, key, value, records.get(idem[0]))
            if replay is not None:
                return replay
        writes = self.store.writes
        await writes.explain(self, key, token, result)
        failed = result.failed
        if check == "lease" and (failed is None or failed.key != key):
            from .strategies import _lease_async as lease_mod

            error = await lease_mod.fenced_error(self, key, lease, records)
            # A live lease of ours with the version check failing: the key
            # moved after the version this session saw (a conflict, not a
            # fence); anything else is the lease's own refusal.
            if getattr(error, "reason", None) != "version" or expect is None:
                raise error
        rec = records.get(key)
        current = 0 if rec is None or rec.deleted else rec.version
        if check == "create":
            raise create_refused(key, rec)
        if op == "delete" and current == 0 and expect is None:
            raise NotFound(f"{key} does not exist; there is nothing to delete.", key=key)
        raise await writes.conflict(self, key, expect if expect is not None else 0, rec)

    # --- idempotency -------------------------------------------------------

    async def _replay(
        self,
        idem: tuple[str, Put, str],
        key: str,
        value: Value,
        rec: Record | None = None,
    ) -> Doc | None:
        """The first call's result when ``idem``'s key was used already, else None."""
        record_key, _, fingerprint = idem
        backend = self.store.backend
        if rec is None:
            rec = await backend.get(record_key)
        if rec is None or rec.deleted:
            return None
        now = await backend.now() if rec.expires is not None else None
        stored = live_idempotency(rec, now)
        if stored is None:
            return None
        check_replay(stored, fingerprint)
        result = stored.get("result")
        if result is None:
            # The record and the write commit together, so the first call's
            # result is the write the record was committed with: find it.
            result = await self.store.writes.idempotent_result(stored["idem"], key)
        return replayed_doc(stored, result, key, value, rec.kind)

    # --- read-modify-write -------------------------------------------------

    async def update(
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
        retries, backoff, max_backoff = check_update_args(key, fn, retries, backoff, max_backoff)
        last: Conflict | None = None
        for attempt in range(retries + 1):
            try:
                doc: Doc | None = await self.read(key)
            except NotFound:
                doc = None
            expect = doc.version if doc is not None else 0
            new_value = fn(None if doc is None else doc.value)
            try:
                return await self.write(
                    key, new_value, expect=expect, idempotency_key=idempotency_key
                )
            except Conflict as exc:
                last = exc
                if attempt < retries:
                    store = self.store
                    await store.sleep(backoff_delay(attempt, backoff, max_backoff, store.random))
        assert last is not None
        raise retries_exhausted(key, retries, last)

    # --- strategies (recipes over the primitive) ---------------------------

    async def acquire(
        self,
        key: str,
        *,
        ttl: float = 30,
        wait: float = 10,
        mode: str = "exclusive",
        keepalive: bool = False,
    ) -> AsyncLease:
        """Acquire a lease on ``key``; you *must* release it (or let it expire).

        See :mod:`accord.strategies._lease_async`. Raises :class:`LeaseTimeout` if it
        is not granted within ``wait`` seconds.
        """
        from .strategies import _lease_async as lease_mod

        return await lease_mod.acquire(
            self, key, ttl=ttl, wait=wait, mode=mode, keepalive=keepalive
        )

    if True:  # ASYNC

        def lease(
            self,
            key: str,
            *,
            ttl: float = 30,
            wait: float = 10,
            mode: str = "exclusive",
            keepalive: bool = False,
        ) -> Leasing[AsyncLease]:
            """A lease as a context manager: ``async with session.lease(key) as lease:``.

            Entering acquires, leaving the block releases it, and raises
            :class:`LeaseLost` if the lease lapsed inside the block.
            ``await session.lease(key)`` acquires, as :meth:`acquire` does.
            """
            from ._aio_strategies import Leasing

            return Leasing(
                lambda: self.acquire(key, ttl=ttl, wait=wait, mode=mode, keepalive=keepalive)
            )

    else:

        def lease(
            self,
            key: str,
            *,
            ttl: float = 30,
            wait: float = 10,
            mode: str = "exclusive",
            keepalive: bool = False,
        ) -> AsyncLease:
            """A lease as a context manager: ``with session.lease(key) as lease:``.

            Leaving the block releases it, and raises :class:`LeaseLost` if the
            lease lapsed inside the block.
            """
            return self.acquire(key, ttl=ttl, wait=wait, mode=mode, keepalive=keepalive)

    async def lease_all(
        self,
        keys: Sequence[str],
        *,
        ttl: float = 30,
        wait: float = 10,
        mode: str = "exclusive",
        keepalive: bool = False,
    ) -> AsyncLeaseSet:
        """Leases on several keys, taken in one canonical order (no deadlock).

        ``keepalive=True`` renews each in the background, as for :meth:`acquire`.
        """
        from .strategies import _lease_async as lease_mod

        return await lease_mod.acquire_all(
            self, keys, ttl=ttl, wait=wait, mode=mode, keepalive=keepalive
        )

    async def submit(
        self, key: str, change: Any, *, idempotency_key: str | None = None
    ) -> AsyncRequest:
        """Submit a change request for ``key`` to its writer (queue strategy)."""
        from .strategies import _queue_async

        return await _queue_async.submit(self, key, change, idempotency_key=idempotency_key)

    def requests(
        self, key: str, *, timeout: float = 5, **kwargs: Any
    ) -> AsyncIterator[AsyncRequest]:
        """Pending requests for ``key``, oldest first; claims the writer role.

        ``kwargs`` (``ttl``, ``role_wait``, ``stop``): see ``strategies.queue.requests``.
        On the async face, ``async for req in session.requests(key)`` claims
        the role at the first step; ``await session.requests(key)`` claims it
        at once (:class:`NotWriter` there) and gives the iterator.
        """
        if True:  # ASYNC
            from .strategies._queue_async import Requests

            return Requests(self, key, timeout=timeout, **kwargs)
        else:
            from .strategies import queue

            requests: AsyncIterator[AsyncRequest] = queue.requests(
                self, key, timeout=timeout, **kwargs
            )
            return requests

    async def accept(
        self, request: AsyncRequest, new_value: Value, *, expect: int | None = None
    ) -> AsyncRequest:
        """Accept ``request``: write ``new_value`` and mark the request accepted.

        The write is checked against ``expect`` (default: the version read for it).
        """
        from .strategies import _queue_async

        return await _queue_async.accept(self, request, new_value, expect=expect)

    async def reject(self, request: AsyncRequest, reason: str) -> AsyncRequest:
        """Reject ``request`` with ``reason``; nothing is written."""
        from .strategies import _queue_async

        return await _queue_async.reject(self, request, reason)

    async def serve(self, key: str, apply: Callable[[Any, Any], Value], **kwargs: Any) -> int:
        """Run the writer loop for ``key``: ``apply(current_value, change)``.

        On the async face ``apply`` is called on the event loop (keep it
        quick); cancelling the call ends the loop and releases the role.
        """
        from .strategies import _queue_async

        served: int = await _queue_async.serve(self, key, apply, **kwargs)
        return served

    async def fork(self, key: str) -> AsyncBranch:
        """A private copy of ``key`` based on its current version."""
        from .strategies import _branch_async

        return await _branch_async.fork(self, key)

    async def branch(self, key: str, branch_id: str) -> AsyncBranch:
        """The branch ``branch_id`` of ``key``, acting as this agent.

        Read it freely; ``write()`` and ``discard()`` work only if this agent
        forked it (:class:`NotOwner` otherwise). :class:`NotFound` if none.
        """
        from .strategies import _branch_async

        return await _branch_async.get_branch(self.store, key, branch_id, self)

    async def branches(self, key: str) -> list[AsyncBranch]:
        """The open branches of ``key``, oldest first, acting as this agent."""
        from .strategies import _branch_async

        return await _branch_async.branches(self.store, key, self)
