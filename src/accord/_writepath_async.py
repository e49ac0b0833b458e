"""The one write path: every strategy that writes an agent key commits here.

A session's write and delete, a queue writer's accept and group decision,
and a merge commit all build their ops, then call :meth:`AsyncWritePath.commit`,
which puts the store's guards (the lease exclusion, the queue's writer,
anything added with ``Store.add_guard``) in the write's own transaction;
:meth:`AsyncWritePath.commit_put` takes the backend's ``put_if_version`` short
path for the common optimistic write. The rules themselves (what a write
compares, what a refusal means) live in :mod:`accord._core.write`, without
I/O; this module does the reads and the commit around them.

One ``AsyncWritePath`` belongs to one store (``store.writes``). Hooks and
guards are shared by both faces of a store that has a sync twin. A plain
hook or explanation is given the sync session (an async session's ``sync``
twin), and on the async face runs in a worker thread, since it may read the
store; on a store with no twin it is called inline with the async session
(it must do no I/O there). A hook or explanation that is a coroutine
function is awaited with the async session, in the loop; the sync face skips
it. See :class:`accord._core.write.Guards`.
"""

from __future__ import annotations

import asyncio  # ASYNC-ONLY
import inspect
import threading
from collections.abc import Sequence
from typing import Any

from ._core.write import (
    ABSENT,
    LOOKBACK,
    Actor,
    Explain,
    Guard,
    Guards,
    Hook,
    Operation,
    conflict_error,
    encode,
    own_change_in,
    take_writer,
)
from .backends.base import AsyncBackend
from .errors import BackendUnavailable, Conflict
from .records import Compare, Op, Put, Record, TxnResult, Value

if True:  # ASYNC

    def twin(actor: Any) -> Any:
        """The session plain hooks and guards are given: an async session's sync
        twin, or the async session itself on a store with no twin."""
        return getattr(actor, "sync", None) or actor

else:

    def twin(actor: Any) -> Any:
        """The sync session hooks and guards are given (the session itself)."""
        return actor


class AsyncWritePath:
    """Hooks, guards and the commit of every write of an agent key on one store."""

    def __init__(
        self,
        backend: AsyncBackend,
        *,
        max_value_size: int,
        hooks: list[Hook] | None = None,
        guards: Guards | None = None,
    ) -> None:
        self.backend = backend
        self.max_value_size = max_value_size
        self.hooks: list[Hook] = [] if hooks is None else hooks
        self.guards = Guards() if guards is None else guards
        self._lock = threading.Lock()
        self._idem_writes = 0

    # --- before the write -----------------------------------------------------

    def add_hook(self, hook: Hook) -> None:
        self.hooks.append(hook)

    def add_guard(self, guard: Guard, explain: Explain) -> None:
        self.guards.add(guard, explain)

    async def intercept(self, actor: Any, op: str, key: str, **info: Any) -> Operation:
        """Run every hook on an operation (policy, history, test schedulers)."""
        plain = twin(actor)
        operation = Operation(plain, op, key, info)
        for hook in self.hooks:
            if inspect.iscoroutinefunction(hook):
                if True:  # ASYNC
                    # Awaited with the async session; what it decides
                    # (allow_blind) joins the operation's.
                    native = operation
                    if plain is not actor:
                        native = Operation(actor, op, key, info, operation.allow_blind)
                    await hook(native)
                    operation.allow_blind = native.allow_blind
                continue  # the sync face cannot run it: only an async store adds one
            if True:  # ASYNC
                if plain is actor:
                    hook(operation)  # no twin: inline, so it must do no I/O
                else:
                    await asyncio.to_thread(hook, operation)
            else:
                hook(operation)
        return operation

    async def check(self, actor: Any, op: str, key: str) -> None:
        """Run the hooks for an operation that needs no answer from them."""
        if self.hooks:
            await self.intercept(actor, op, key)

    def encode(self, key: str, value: Value) -> tuple[str, bytes]:
        """``(kind, data)`` of ``value`` within this store's size limit."""
        return encode(key, value, self.max_value_size)

    # --- the commit -----------------------------------------------------------

    async def commit(
        self,
        actor: Any,
        key: str,
        success: Sequence[Op],
        *,
        compares: Sequence[Compare] = (),
        failure: Sequence[Op] = (),
        token: int | None = None,
        fence: Sequence[Compare] = (),
    ) -> TxnResult:
        """Commit a write of ``key``: ``fence``, then the guards, then ``compares``.

        ``token`` is the fencing token the write carries (None without a
        lease); ``fence`` its compares (they come first: a write under a
        dead lease is told about its lease). On a refusal the caller reads
        the result: :meth:`explain` first where the guards' errors come
        before its own.
        """
        guards = self.guards.compares(twin(actor), key, token)
        return await self.backend.txn([*fence, *guards, *compares], success, failure)

    async def commit_put(
        self, actor: Any, put: Put, expect: int, failure: Sequence[Op]
    ) -> TxnResult:
        """Commit the common optimistic write: ``put`` if its key is at version
        ``expect``, with the guards; the same as :meth:`commit` with that one
        compare, which a backend may do in fewer statements
        (``put_if_version``)."""
        guards = self.guards.compares(twin(actor), put.key, None)
        return await self.backend.put_if_version(put, expect, guards, failure)

    async def explain(self, actor: Any, key: str, token: int | None, result: TxnResult) -> None:
        """Raise the error of the guard whose compare refused ``result``, if any."""
        plain = twin(actor)
        explainers = self.guards.explainers(plain, key, token, result.failed)
        for sync, coro in explainers:  # noqa: B007, RUF100 (the sync face skips coroutines)
            if True:  # ASYNC
                if coro is not None:
                    await coro(actor, key, token, result)
                elif sync is None:
                    pass
                elif plain is actor:
                    sync(actor, key, token, result)  # no twin: inline, no I/O allowed
                else:
                    await asyncio.to_thread(sync, plain, key, token, result)
            else:
                if sync is not None:
                    sync(actor, key, token, result)

    # --- reading a refusal ----------------------------------------------------

    async def writers_between(
        self, key: str, expected: int, rec: Record | None
    ) -> list[tuple[int, str]]:
        """(version, agent) of each committed change after ``expected``, oldest first."""
        out: list[tuple[int, str]] = []
        if rec is None:
            return out
        async for ev in self.backend.changes(key):
            if take_writer(out, ev, expected):
                break
        out.reverse()
        return out

    async def conflict(self, actor: Actor, key: str, expected: int, rec: Record | None) -> Conflict:
        """The :class:`Conflict` for ``actor``'s write of ``key`` based on ``expected``.

        The agent now knows the current version (the message carries it), so
        it is remembered, and the record's clock observed.
        """
        writers = await self.writers_between(key, expected, rec)
        error = conflict_error(key, expected, rec, writers, actor.seen.get(key))
        if rec is not None:
            actor.seen.remember(key, rec.version, ABSENT if rec.deleted else rec.value)
            actor.clock.observe(key, rec.lamport, rec.clock)
        return error

    async def idempotent_result(self, idem_key: str, key: str) -> dict[str, Any]:
        """The event of the write committed with the idempotency key ``idem_key``."""
        async for ev in self.backend.changes(key):
            if ev.get("idem") == idem_key:
                return ev
        raise BackendUnavailable(
            f"The idempotency record of {idem_key!r} exists but its write is missing from the "
            "history; the store is damaged."
        )

    async def purge_idempotency(self) -> None:
        """Now and then, remove expired idempotency records.

        They are ignored on read; purging them every 512th keyed write keeps
        the table small without a background thread.
        """
        with self._lock:
            self._idem_writes += 1
            due = self._idem_writes % 512 == 1
        if due:
            await self.backend.purge_expired(".accord/idem/", await self.backend.now())

    async def own_change(self, agent: str, key: str) -> tuple[int, Any] | None:
        """``agent``'s latest change of ``key`` among the key's last :data:`LOOKBACK`."""
        walked = 0
        async for ev in self.backend.changes(key):
            found = own_change_in(agent, ev)
            if found is not None:
                return found
            walked += 1  # noqa: SIM113, RUF100 (the async source has no enumerate)
            if walked >= LOOKBACK:
                break
        return None
