"""PostgreSQL for asyncio: psycopg's ``AsyncConnectionPool``, ``LISTEN`` on the loop.

The same database, schema and server functions as
:class:`~accord.backends.postgres.PostgresBackend`: every statement, every
parameter list and every reading of a result is the sync backend's (this
class holds one, ``sync``, which also migrates the schema); only the
round trips differ. Calls never block the event loop and never use a
thread: connections come from one ``AsyncConnectionPool`` of ``pool_size``
connections, and waiters share one ``LISTEN`` connection whose
notifications are read by a task on the loop.

Retries follow the sync backend: reads, serialization failures, deadlocks
and lost connections are retried until ``retry_timeout``; a write carries
its transaction token, so a repeat of a write that committed reports the
first outcome and applies nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from ..errors import BackendUnavailable, UsageError
from ..records import Compare, Op, Put, Record, TxnResult
from .base import CLOSED, HISTORY_PAGE, AsyncBackend, LiveRow, put_if_compares, touched_keys
from .postgres import (
    _PREFIX_END,
    PostgresBackend,
    _event,
    _is_connection_loss,
    _matches,
    _row_to_record,
    _token,
    _txn_spec,
)

T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]


async def _configure(conn: Conn) -> None:
    # As the sync pool's connections: accord_txn relies on Read Committed.
    await conn.execute("SET default_transaction_isolation = 'read committed'")


class AsyncPostgresBackend(AsyncBackend):
    """A PostgreSQL store for asyncio; open it with :meth:`open` (``accord.aio.open``)."""

    def __init__(self, sync: PostgresBackend) -> None:
        self.sync = sync
        self.url = sync.url
        self._pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            sync._conninfo,
            min_size=1,
            max_size=sync._pool_size,
            kwargs={"autocommit": True},
            configure=_configure,
            open=False,
            name=f"accord-aio:{sync.schema}",
            timeout=sync._retry_timeout,
        )
        self._closed = False
        self._listener: _AsyncListener | None = None

    @classmethod
    async def open(cls, url: str) -> AsyncPostgresBackend:
        """Connect (and migrate the schema) without blocking the loop."""
        sync = await asyncio.to_thread(PostgresBackend, url)
        backend = cls(sync)
        try:
            await backend._pool.open(wait=True, timeout=sync._retry_timeout)
        except BaseException:
            await asyncio.to_thread(sync.close)
            raise
        return backend

    # --- running statements ---------------------------------------------------

    async def _run(
        self, fn: Callable[[Conn], Awaitable[T]], doing: str, *, write: bool = False
    ) -> T:
        """Run ``fn`` on a pooled connection, retrying while that is safe (see
        ``PostgresBackend._run``, whose rules these are)."""
        if self._closed:
            raise BackendUnavailable(CLOSED)
        sync = self.sync
        deadline = time.monotonic() + sync._retry_timeout
        attempt = 0
        in_doubt = False
        last: Exception | None = None
        while True:
            attempt += 1
            try:
                timeout = max(0.05, deadline - time.monotonic())
                async with self._pool.connection(timeout=timeout) as conn:
                    return await fn(conn)
            except PoolClosed as exc:
                raise BackendUnavailable(CLOSED) from exc
            except PoolTimeout as exc:
                last = exc
            except psycopg.Error as exc:
                state = getattr(exc, "sqlstate", None) or ""
                if state in ("40001", "40P01"):
                    last = exc  # rolled back: nothing was applied
                elif _is_connection_loss(exc):
                    last = exc
                    in_doubt = in_doubt or write
                elif state == "AC001":
                    raise UsageError(
                        f"Cannot compare these values: {str(exc).strip().splitlines()[0]}. "
                        "Ordering compares (< <= > >=) on values work on two numbers, two "
                        "strings or two byte strings; == and != work on any values."
                    ) from exc
                else:
                    raise sync._translate(exc, doing, wrote=write) from exc
            if self._closed:
                raise BackendUnavailable(CLOSED)
            left = deadline - time.monotonic()
            assert last is not None
            if left <= 0:
                raise await asyncio.to_thread(
                    sync._gave_up, last, doing, write=write, in_doubt=in_doubt
                ) from last
            sync.retried += 1
            await asyncio.sleep(min(left, random.uniform(0, min(1.0, 0.02 * 2**attempt))))

    async def _rows(self, query: Any, params: Any, doing: str, *, write: bool = False) -> Any:
        async def go(conn: Conn) -> list[tuple[Any, ...]]:
            cur = conn.cursor(binary=True)
            await cur.execute(query, params)
            return await cur.fetchall()

        return await self._run(go, doing, write=write)

    # --- the contract -------------------------------------------------------

    async def now(self) -> float:
        rows = await self._rows(
            "SELECT extract(epoch FROM clock_timestamp())::float8", None, "reading the clock"
        )
        return float(rows[0][0])

    async def get(self, key: str) -> Record | None:
        rows = await self._rows(self.sync._sql_get, (key,), f"reading {key!r}")
        return _row_to_record(rows[0]) if rows else None

    async def read_live(self, key: str) -> LiveRow | None:
        rec = await self.get(key)
        if rec is None or rec.deleted:
            return None
        return rec.kind, rec.data, rec.version, rec.revision, rec.author, rec.lamport, rec.clock

    async def scan(self, prefix: str, limit: int | None = None) -> list[Record]:
        rows = await self._rows(
            self.sync._sql_scan, (prefix, prefix + _PREFIX_END, limit), f"scanning {prefix!r}"
        )
        return [_row_to_record(r) for r in rows]

    async def revision(self) -> int:
        rows = await self._rows(self.sync._sql_revision, None, "reading the revision")
        return int(rows[0][0])

    async def txn(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        has_ops = bool(success) or bool(failure)
        token: uuid.UUID | None = _token() if has_ops else None
        keys = touched_keys(compares, success, failure)
        spec, blobs = _txn_spec(compares, success, failure)
        rows = await self._rows(
            self.sync._sql_txn,
            (token, spec, blobs),
            "writing" if has_ops else "checking",
            write=has_ops,
        )
        # Reading the rows is the sync backend's (a replay's "before" rows
        # may take one more read there, after a lost connection only).
        return await self._finish(rows, keys, compares, success, failure)

    async def _finish(
        self,
        rows: list[tuple[Any, ...]],
        keys: list[str],
        compares: Sequence[Compare],
        success: Sequence[Op],
        failure: Sequence[Op],
    ) -> TxnResult:
        replay = rows[-1][14]
        if replay and rows[-1][15] is not None:
            return await asyncio.to_thread(
                self.sync._finish, rows, keys, compares, success, failure
            )
        return self.sync._finish(rows, keys, compares, success, failure)

    async def put_if_version(
        self,
        put: Put,
        expect: int,
        guards: Sequence[Compare] = (),
        failure: Sequence[Op] = (),
    ) -> TxnResult:
        """See ``PostgresBackend.put_if_version``: one call of ``accord_put_if``."""
        sync = self.sync
        plan = sync._put_if_plan(put, expect, guards, failure)
        if plan is None:
            return await self.txn(put_if_compares(put.key, expect, guards), [put], failure)
        attempts = 0

        async def go(conn: Conn) -> list[tuple[Any, ...]]:
            # Only a repeat can find its token already used.
            nonlocal attempts
            attempts += 1
            cur = conn.cursor(binary=True)
            await cur.execute(sync._sql_put_if, (plan.token, attempts > 1, *plan.params))
            return await cur.fetchall()

        rows = await self._run(go, "writing", write=True)
        if not rows[-1][10] and rows[-1][14] and rows[-1][15] is not None:
            return await asyncio.to_thread(
                sync._put_if_result, rows, plan, put, expect, guards, failure
            )
        return sync._put_if_result(rows, plan, put, expect, guards, failure)

    async def history(
        self, since: int = 0, key: str | None = None, limit: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        seen = 0
        while True:
            want = HISTORY_PAGE if limit is None else min(HISTORY_PAGE, limit - seen)
            if want <= 0:
                return
            if key is None:
                rows = await self._rows(self.sync._sql_history, (since, want), "reading history")
            else:
                rows = await self._rows(
                    self.sync._sql_history_key, (key, since, want), "reading history"
                )
            for row in rows:
                yield _event(*row)
            if len(rows) < want:
                return
            since = rows[-1][0]
            seen += len(rows)

    async def changes(self, key: str) -> AsyncIterator[dict[str, Any]]:
        # Newest first, in small pages: callers usually stop after a few.
        before = 2**63 - 1
        page = 16
        while True:
            rows = await self._rows(
                self.sync._sql_changes, (key, before, page), f"reading the changes of {key!r}"
            )
            for row in rows:
                yield _event(*row)
                before = row[0]
            if len(rows) < page:
                return
            page = min(page * 4, 2000)

    async def wait(
        self, keys: Sequence[str], prefixes: Sequence[str], since: int, timeout: float
    ) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        listener = self._get_listener()
        gen, ready = listener.mark()
        # Check the tables after taking the mark: a change committed after
        # this check sends a notification the listener receives after the mark.
        rev = await self._changed(keys, prefixes, since)
        if rev is not None:
            return rev
        quick = 0.02
        while True:
            left = deadline - loop.time()
            if left <= 0:
                return await self.revision()
            # While the listener is down, notifications can be lost: poll
            # fast, backing off; while it is up, poll only as a safety net.
            step = self.sync._poll if ready else quick
            quick = min(quick * 2, 0.5)
            notes, gen, ready, lost = await listener.wait_after(gen, min(left, step))
            for rev, changed in notes:
                if rev > since and _matches(changed, keys, prefixes):
                    return rev
            if lost or not notes:
                rev = await self._changed(keys, prefixes, since)
                if rev is not None:
                    return rev

    async def _changed(
        self, keys: Sequence[str], prefixes: Sequence[str], since: int
    ) -> int | None:
        params = {
            "since": since,
            "keys": list(keys),
            "lo": list(prefixes),
            "hi": [p + _PREFIX_END for p in prefixes],
        }
        rows = await self._rows(self.sync._sql_changed, params, "waiting for a change")
        rev, changed = int(rows[0][0]), bool(rows[0][1])
        return rev if changed else None

    def _get_listener(self) -> _AsyncListener:
        if self._closed:
            raise BackendUnavailable(CLOSED)
        if self._listener is None:
            sync = self.sync
            self._listener = _AsyncListener(sync._conninfo, sync._channel, sync.schema)
        return self._listener

    async def purge_expired(self, prefix: str, before: float) -> int:
        # Find candidates without any lock, so the writers' critical section
        # never includes a scan of the prefix; the function checks them again.
        sync = self.sync

        async def go(conn: Conn) -> int:
            cur = await conn.execute(sync._sql_expired, (prefix, prefix + _PREFIX_END, before))
            keys = [r[0] for r in await cur.fetchall()]
            if not keys:
                return 0
            cur = await conn.execute(sync._sql_purge, (keys, before))
            row = await cur.fetchone()
            assert row is not None
            return int(row[0])

        return await self._run(go, "purging expired records", write=True)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.stop()
        await self._pool.close(timeout=5)
        await asyncio.to_thread(self.sync.close)


class _AsyncListener:
    """The sync backend's ``_Listener``, as a task on the event loop.

    ``gen`` counts events (notifications and connection changes). A waiter
    takes a mark, checks the tables, then asks for what came after its mark;
    ``lost`` tells it that notifications may have been missed, so it must
    check the tables again: the tables are the truth, notifications a hint.
    """

    _BUFFER = 4096

    def __init__(self, conninfo: str, channel: str, schema: str) -> None:
        self._conninfo = conninfo
        self._channel = channel
        s = sql.Identifier(schema)
        self._sql_register = [
            sql.SQL("SELECT 1 FROM {}.accord_counter WHERE id = 1 FOR UPDATE").format(s),
            sql.SQL(
                "DELETE FROM {}.accord_listeners WHERE pid NOT IN "
                "(SELECT pid FROM pg_stat_activity)"
            ).format(s),
            sql.SQL(
                "INSERT INTO {}.accord_listeners (pid, since) VALUES "
                "(pg_backend_pid(), extract(epoch FROM clock_timestamp())) "
                "ON CONFLICT (pid) DO NOTHING"
            ).format(s),
        ]
        self._sql_unregister = sql.SQL(
            "DELETE FROM {}.accord_listeners WHERE pid = pg_backend_pid()"
        ).format(s)
        self._changed = asyncio.Condition()
        self._gen = 0
        self._lost_gen = 0
        self._ready = False
        self._notes: list[tuple[int, int, list[str] | None]] = []
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    def mark(self) -> tuple[int, bool]:
        return self._gen, self._ready

    async def wait_after(
        self, gen: int, timeout: float
    ) -> tuple[list[tuple[int, list[str] | None]], int, bool, bool]:
        async with self._changed:
            if self._gen == gen:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout)
            notes = [(rev, keys) for g, rev, keys in self._notes if g > gen]
            oldest = self._notes[0][0] if self._notes else self._gen + 1
            lost = self._lost_gen > gen or (oldest > gen + 1 and self._gen > gen)
            return notes, self._gen, self._ready, lost

    async def _bump(self, ready: bool) -> None:
        async with self._changed:
            self._gen += 1
            self._lost_gen = self._gen
            self._ready = ready
            self._changed.notify_all()

    async def _deliver(self, payload: str) -> None:
        head, _, rest = payload.partition("\n")
        try:
            rev = int(head)
        except ValueError:
            return
        keys = None if rest == "*" else rest.split("\n")
        async with self._changed:
            self._gen += 1
            self._notes.append((self._gen, rev, keys))
            del self._notes[: -self._BUFFER]
            self._changed.notify_all()

    async def _run(self) -> None:
        delay = 0.05
        while not self._stopping:
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            except psycopg.Error:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            try:
                async with conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    # Writers notify only while a listener is registered (see
                    # the sync listener); one that may not register polls.
                    try:
                        async with conn.transaction():
                            for statement in self._sql_register:
                                await conn.execute(statement)
                        registered = True
                    except psycopg.errors.InsufficientPrivilege:
                        registered = False
                    await self._bump(registered)
                    delay = 0.05
                    while not self._stopping:
                        async for note in conn.notifies(timeout=0.25):
                            await self._deliver(note.payload)
                    if registered:
                        await conn.execute(self._sql_unregister)
            except psycopg.Error:
                pass
            await self._bump(False)
            if not self._stopping:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def stop(self) -> None:
        self._stopping = True
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self._task, 5)
