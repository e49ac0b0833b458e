# WARNING: generated from src/accord/backends/postgres_async.py
# by tools/async_to_sync.py; do not edit.
# Edit the async source and run: .venv/bin/python tools/async_to_sync.py
"""PostgreSQL backend: many agents on many machines share one database.

URL: ``postgresql://user:password@host:5432/dbname?schema=NAME`` (``postgres://``
works too). accord's own options in the query string:

* ``schema``: the schema accord keeps its tables in (default ``accord``), so
  several stores can share one database. Created on first use.
* ``pool_size``: the most connections one store object opens for its calls
  (default 8; it opens 1 up front and grows on demand). ``wait()`` uses one
  more, a listener, opened the first time something waits.
* ``retry_timeout``: seconds to keep retrying an operation while the server
  is unreachable (a restart, a failover, a dropped connection; default 30).
* ``poll``: seconds between checks of the tables while waiting, when a
  notification could have been missed (default 1).

Every other query option (``sslmode``, ``connect_timeout``,
``application_name``, ``target_session_attrs``, ...) goes to libpq as is.

How it keeps the promises (see docs/postgres.md):

* One round trip per transaction: ``Backend.txn`` is one call of the
  PL/pgSQL function ``accord_txn`` in ``_pg_schema.sql``, which locks,
  checks, writes, appends history and commits in a single statement. The
  common optimistic write (``put_if_version``) calls ``accord_put_if``, the
  same meaning for that one shape in a third of the server time.
* Writers take a row lock on the revision counter before anything else and
  hold it to COMMIT: revisions are strictly increasing in commit order, and
  the version and fencing checks run in the transaction that writes.
* Every TTL and every ``$now`` compare uses the database clock
  (``clock_timestamp()`` read after the locks are granted).
* Every write transaction carries a token the client makes up; the function
  records it with the commit. When a connection is lost while a write is in
  flight, the client sends the same transaction again: if the first attempt
  committed, the function reports its outcome instead of applying it twice.
  So a write is retried only where that is safe, and every write is.
* ``wait()`` listens for NOTIFY as a wake-up hint and checks the tables as
  the truth, with a bounded poll when a notification could have been lost.

It spans processes and hosts.

This module is the I/O layer, written once as async code: the async face
uses psycopg's async pool and reads ``LISTEN`` on the event loop (no thread
per waiting agent); the sync backend (``accord.backends.postgres``, a
psycopg pool and a listener thread) is generated from it by
``tools/async_to_sync.py``. What has no I/O
is in modules both faces import: the URL (``_pg_config``), the SQL
(``_pg_sql``), rows and arguments (``_pg_rows``), errors and the retry rule
(``_pg_errors``), the schema and its migration (``_pg_schema``); the
``LISTEN`` listener (``_pg_listener``) is generated from its async source
the same way.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import psycopg
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from ..errors import BackendUnavailable
from ..records import Compare, Op, Put, Record, TxnResult
from . import _pg_rows as rows_of
from ._pg_config import DEFAULT_SCHEMA, PgConfig, parse, redact
from ._pg_errors import (
    compare_error,
    connect_problem,
    first_line,
    gave_up,
    retry_delay,
    transient,
    translate,
)
from ._pg_listener import Listener
from ._pg_schema import SCHEMA_VERSION, migrate
from ._pg_sql import CLOCK, CONFIGURE, PREFIX_END, Statements, listener_sql
from .base import CLOSED, HISTORY_PAGE, Backend, LiveRow, put_if_compares, touched_keys

__all__ = [
    "DEFAULT_SCHEMA",
    "SCHEMA_VERSION",
    "PostgresBackend",
    "listener_sql",
    "redact",
]

Conn = psycopg.Connection[Any]

_TOKEN_HORIZON = 3600.0  # seconds a transaction token is kept for retries


def _configure(conn: Conn) -> None:
    conn.execute(CONFIGURE)


class PostgresBackend(Backend):
    """A store in one schema of a PostgreSQL database, shared across hosts.

    URL: ``postgresql://user[:password]@host[:port]/dbname[?schema=NAME&...]``
    (options in the module docstring and docs/postgres.md). Connections come
    from a psycopg pool (``pool_size``), plus one listener connection once
    ``wait()`` is used. Safe to use from many threads (the sync face) or
    coroutines of one event loop (the async face); not across ``fork()``
    (open the store in the child). You *must* ``close()`` it when done.
    """

    spans_processes: ClassVar[bool] = True
    spans_hosts: ClassVar[bool] = True

    def __init__(self, url: str) -> None:
        config = parse(url)
        self.url = url
        self.config: PgConfig = config
        self.schema = config.schema
        self._sql = Statements(config.schema)
        self._pool_size = config.pool_size
        self.retried = 0
        """Operations repeated after a lost connection or a rolled-back conflict."""
        self.replayed = 0
        """Write transactions found committed by an earlier attempt (not applied again)."""
        self._closed = False
        self._listener: Listener | None = None
        self._listener_lock = threading.Lock()
        self._last_token_sweep = time.monotonic()
        self._sweep_lock = threading.Lock()
        migrate(config)
        self._pool: ConnectionPool[Conn] = ConnectionPool(
            config.conninfo,
            min_size=1,
            max_size=config.pool_size,
            kwargs={"autocommit": True},
            configure=_configure,
            open=False,
            name=f"accord:{config.schema}",
            timeout=config.retry_timeout,
            reconnect_timeout=max(config.retry_timeout, 60.0),
        )
        self._pool.open()

    # --- running statements ---------------------------------------------------

    def _rows(
        self,
        query: bytes,
        params: Any,
        doing: str,
        *,
        write: bool = False,
        fetch: bool = True,
        repeat_at: int | None = None,
    ) -> list[tuple[Any, ...]]:
        """Run one statement on a pooled connection and return its rows,
        retrying while that is safe.

        Reads are always safe to repeat. A write is safe to repeat because it
        carries its transaction token (see ``accord_txn``): a repeat of a
        write that committed reports the first outcome. Serialization
        failures and deadlocks roll back, so they are retried too.
        ``repeat_at``: the index in ``params`` of a flag that is True when the
        statement is sent again (``accord_put_if``: only a repeat can find
        its token already used).
        """
        if self._closed:
            raise BackendUnavailable(CLOSED)
        config = self.config
        deadline = time.monotonic() + config.retry_timeout
        attempt = 0
        in_doubt = False
        direct = tried_direct = False
        last: Exception | None = None
        sent = 0
        while True:
            attempt += 1
            try:
                if direct:
                    direct = False
                    try:
                        conn = self._connect_direct()
                    except psycopg.Error as exc:
                        last = exc  # not connected: nothing was sent
                    else:
                        with conn:
                            sent += 1
                            return _execute(conn, query, _nth(params, repeat_at, sent), fetch)
                else:
                    timeout = max(0.05, deadline - time.monotonic())
                    with self._pool.connection(timeout=timeout) as conn:
                        sent += 1
                        return _execute(conn, query, _nth(params, repeat_at, sent), fetch)
            except PoolClosed as exc:
                raise BackendUnavailable(CLOSED) from exc
            except PoolTimeout as exc:
                last = exc
                if not tried_direct:
                    # After failed connections the pool waits out a growing
                    # backoff (seconds) before it tries the server again, so a
                    # server that is back may not be used before the deadline.
                    # One direct attempt settles it, even at the deadline.
                    direct = tried_direct = True
                    continue
            except psycopg.Error as exc:
                why = transient(exc)
                if why is None:
                    bad = compare_error(exc)
                    if bad is not None:
                        raise bad from exc
                    raise translate(exc, config, doing, wrote=write) from exc
                last = exc
                in_doubt = in_doubt or (why == "lost" and write)
            if self._closed:
                raise BackendUnavailable(CLOSED)
            left = deadline - time.monotonic()
            assert last is not None
            if left <= 0:
                raise self._gave_up(last, doing, write=write, in_doubt=in_doubt) from last
            self.retried += 1
            time.sleep(retry_delay(attempt, left))

    def _connect_direct(self) -> Conn:
        """A connection outside the pool, set up as the pool's are (the caller
        closes it)."""
        conn = psycopg.Connection.connect(self.config.conninfo, autocommit=True, connect_timeout=3)
        try:
            _configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _gave_up(
        self, exc: Exception, doing: str, *, write: bool, in_doubt: bool
    ) -> BackendUnavailable:
        reason = first_line(exc)
        if isinstance(exc, PoolTimeout):
            # The pool only says it timed out; one direct attempt says why.
            try:
                probe = psycopg.Connection.connect(self.config.conninfo, connect_timeout=3)
                probe.close()
                reason = f"no connection became free within {self.config.retry_timeout:g} s"
            except psycopg.Error as failed:
                reason = connect_problem(failed, self.config)
        return gave_up(reason, self.config, doing, write=write, in_doubt=in_doubt)

    # --- the contract -------------------------------------------------------

    def now(self) -> float:
        # The database clock is the one clock all agents on all hosts share.
        found = self._rows(CLOCK, None, "reading the clock")
        return float(found[0][0])

    def get(self, key: str) -> Record | None:
        found = self._rows(self._sql.get, (key,), f"reading {key!r}")
        return rows_of.record(found[0]) if found else None

    def read_live(self, key: str) -> LiveRow | None:
        rec = self.get(key)
        if rec is None or rec.deleted:
            return None
        return rec.kind, rec.data, rec.version, rec.revision, rec.author, rec.lamport, rec.clock

    def scan(self, prefix: str, limit: int | None = None) -> list[Record]:
        found = self._rows(
            self._sql.scan, (prefix, prefix + PREFIX_END, limit), f"scanning {prefix!r}"
        )
        return [rows_of.record(r) for r in found]

    def revision(self) -> int:
        found = self._rows(self._sql.revision, None, "reading the revision")
        return int(found[0][0])

    def txn(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        has_ops = bool(success) or bool(failure)
        return self._txn(compares, success, failure, rows_of.token() if has_ops else None)

    def _txn(
        self,
        compares: Sequence[Compare],
        success: Sequence[Op],
        failure: Sequence[Op],
        token: uuid.UUID | None,
    ) -> TxnResult:
        keys = touched_keys(compares, success, failure)
        has_ops = bool(success) or bool(failure)
        spec, blobs = rows_of.txn_spec(compares, success, failure)
        found = self._rows(
            self._sql.txn,
            (token, spec, blobs),
            "writing" if has_ops else "checking",
            write=has_ops,
        )
        result = self._finish(found, keys, compares, success, failure)
        self._maybe_sweep_tokens()
        return result

    def _finish(
        self,
        found: list[tuple[Any, ...]],
        keys: list[str],
        compares: Sequence[Compare],
        success: Sequence[Op],
        failure: Sequence[Op],
    ) -> TxnResult:
        """The TxnResult of a call of accord_txn or accord_put_if (see
        ``_pg_rows.txn_result``); a repeat of a transaction that committed
        reads the keys it only compared again."""
        if found[-1][14]:
            self.replayed += 1
        now_read: dict[str, Record | None] = {}
        for key in rows_of.read_again(found, keys, success, failure) or ():
            now_read[key] = self.get(key)
        return rows_of.txn_result(
            found, keys, compares, success, failure, now_read, self.config.where
        )

    def put_if_version(
        self,
        put: Put,
        expect: int,
        guards: Sequence[Compare] = (),
        failure: Sequence[Op] = (),
    ) -> TxnResult:
        """The common optimistic write in one call of ``accord_put_if``.

        Means exactly ``txn([*guards, Compare(put.key, "version", "==",
        expect)], [put], failure)``, with one difference in the result: when
        the write succeeds, ``records`` is empty (nothing is read back). Takes
        the short path for a put with an event and no ``ttl``, ``expect`` >=
        1, guards that are at most one ``vacant`` compare (first) and
        ``holder`` compares on other keys, and at most one failure op, an
        ``Append`` of an event naming the same key as the put's; anything
        else goes through :meth:`txn`. The transaction token is kept in the
        event row (see ``accord_put_if``).
        """
        plan = rows_of.put_if_plan(put, expect, guards, failure, self.config.retry_timeout)
        if plan is None:
            return self.txn(put_if_compares(put.key, expect, guards), [put], failure)
        found = self._rows(
            self._sql.put_if, (plan.token, False, *plan.params), "writing", write=True, repeat_at=1
        )
        self._maybe_sweep_tokens()
        done = rows_of.put_if_done(found, plan, expect)
        if done is None:
            return self._finish(
                found, plan.keys, put_if_compares(put.key, expect, guards), [put], failure
            )
        if found[-1][14]:
            self.replayed += 1  # a first attempt that committed reports the same way
        return done

    def _maybe_sweep_tokens(self) -> None:
        # Tokens only matter while a client may still retry (retry_timeout);
        # drop old ones now and then, outside any writer's critical section.
        # The lock is only tried, never waited for (so the loop never blocks).
        now = time.monotonic()
        if now - self._last_token_sweep < 60 or not self._sweep_lock.acquire(blocking=False):
            return
        try:
            self._last_token_sweep = now
            horizon = max(_TOKEN_HORIZON, 10 * self.config.retry_timeout)
            self._rows(self._sql.sweep_tokens, (horizon,), "sweeping tokens", fetch=False)
        except BackendUnavailable:
            pass  # best effort; the next sweep will do it
        finally:
            self._sweep_lock.release()

    def history(
        self, since: int = 0, key: str | None = None, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        # In pages, so a long history never sits in memory at once.
        seen = 0
        while True:
            want = HISTORY_PAGE if limit is None else min(HISTORY_PAGE, limit - seen)
            if want <= 0:
                return
            if key is None:
                found = self._rows(self._sql.history, (since, want), "reading history")
            else:
                found = self._rows(self._sql.history_key, (key, since, want), "reading history")
            for row in found:
                yield rows_of.event(*row)
            if found:
                since = found[-1][0]
            seen += len(found)
            if len(found) < want:
                return

    def changes(self, key: str) -> Iterator[dict[str, Any]]:
        # Newest first, in small pages: callers usually stop after a few.
        before = 2**63 - 1
        page = 16
        while True:
            found = self._rows(
                self._sql.changes, (key, before, page), f"reading the changes of {key!r}"
            )
            for row in found:
                yield rows_of.event(*row)
                before = row[0]
            if len(found) < page:
                return
            page = min(page * 4, 2000)

    def wait(self, keys: Sequence[str], prefixes: Sequence[str], since: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        listener = self._get_listener()
        gen, ready = listener.mark()
        # Check the tables after taking the mark: a change committed after
        # this check sends a notification the listener receives after the mark.
        rev = self._changed(keys, prefixes, since)
        if rev is not None:
            return rev
        quick = 0.02
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return self.revision()
            # While the listener is down, notifications can be lost: poll
            # fast, backing off; while it is up, poll only as a safety net.
            step = self.config.poll if ready else quick
            quick = min(quick * 2, 0.5)
            notes, gen, ready, lost = listener.wait_after(gen, min(left, step))
            for rev, changed in notes:
                if rev > since and rows_of.matches(changed, keys, prefixes):
                    return rev
            if lost or not notes:
                rev = self._changed(keys, prefixes, since)
                if rev is not None:
                    return rev

    def _changed(self, keys: Sequence[str], prefixes: Sequence[str], since: int) -> int | None:
        """The revision now if a watched record changed after ``since``, else None."""
        params = {
            "since": since,
            "keys": list(keys),
            "lo": list(prefixes),
            "hi": [p + PREFIX_END for p in prefixes],
        }
        found = self._rows(self._sql.changed, params, "waiting for a change")
        rev, changed = int(found[0][0]), bool(found[0][1])
        return rev if changed else None

    def _get_listener(self) -> Listener:
        with self._listener_lock:
            if self._closed:
                raise BackendUnavailable(CLOSED)
            if self._listener is None:
                config = self.config
                self._listener = Listener(config.conninfo, config.channel, config.schema)
            return self._listener

    def purge_expired(self, prefix: str, before: float) -> int:
        # Find candidates without any lock, so the writers' critical section
        # never includes a scan of the prefix; the function checks them again.
        found = self._rows(
            self._sql.expired, (prefix, prefix + PREFIX_END, before), "purging expired records"
        )
        if not found:
            return 0
        purged = self._rows(
            self._sql.purge, ([r[0] for r in found], before), "purging expired records", write=True
        )
        return int(purged[0][0])

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._listener_lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
        self._pool.close(timeout=5)


def _nth(params: Any, repeat_at: int | None, sent: int) -> Any:
    """``params`` for the ``sent``-th sending, with its repeat flag set."""
    if repeat_at is None:
        return params
    return (*params[:repeat_at], sent > 1, *params[repeat_at + 1 :])


def _execute(conn: Conn, query: bytes, params: Any, fetch: bool) -> list[tuple[Any, ...]]:
    # Binary results: bytea values arrive as bytes without hex decoding.
    cur = conn.cursor(binary=True)
    cur.execute(query, params)
    return cur.fetchall() if fetch else []
