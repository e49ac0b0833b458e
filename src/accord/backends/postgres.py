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
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from ..errors import BackendUnavailable, UsageError
from ..records import (
    NOW,
    Append,
    Compare,
    Delete,
    Op,
    Put,
    Record,
    TxnResult,
    fast_event_encoder,
    value_hash,
)
from .base import (
    CLOSED,
    Backend,
    _stamp,
    iso_time,
    paged_history,
    plan_ops,
    put_if_compares,
    short_put,
    touched_keys,
)

SCHEMA_VERSION = 1
"""The schema version this accord creates and understands."""

DEFAULT_SCHEMA = "accord"
_LOCK_CLASS = 0x41434344  # "ACCD": the advisory lock class of schema migrations
_OPTIONS = ("schema", "pool_size", "retry_timeout", "poll")
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_PREFIX_END = "\U0010ffff"
_TOKEN_HORIZON = 3600.0  # seconds a transaction token is kept for retries
_COLUMNS = "key, kind, data, version, revision, author, lamport, clock, deleted, expires"
_EVENT_COLUMNS = "rev, body, ts, version, prev, hash, expires"
_EVENT_JSON = json.JSONEncoder(separators=(",", ":"))
_SPEC_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_dumps_short_event = fast_event_encoder()

T = TypeVar("T")


def _load_schema_sql() -> str:
    return resources.files(__package__).joinpath("_pg_schema.sql").read_text("utf-8")


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _row_to_record(row: Sequence[Any]) -> Record:
    return Record(
        key=row[0],
        kind=row[1],
        data=b"" if row[2] is None else bytes(row[2]),
        version=row[3],
        revision=row[4],
        author=row[5],
        lamport=row[6],
        clock=row[7],
        deleted=row[8],
        expires=row[9],
    )


class PostgresBackend(Backend):
    """A store in one schema of a PostgreSQL database, shared across hosts.

    URL: ``postgresql://user[:password]@host[:port]/dbname[?schema=NAME&...]``
    (options in the module docstring and docs/postgres.md). Connections come
    from a psycopg pool (``pool_size``), plus one listener connection once
    ``wait()`` is used. Safe to use from many threads; not across ``fork()``
    (open the store in the child). You *must* ``close()`` it when done.
    """

    spans_processes: ClassVar[bool] = True
    spans_hosts: ClassVar[bool] = True

    def __init__(self, url: str) -> None:
        self.url = url
        self._shown = redact(url)
        conninfo, options = self._parse(url)
        self.schema = options["schema"]
        self._conninfo = conninfo
        self._pool_size = int(float(options["pool_size"]))
        self._retry_timeout = float(options["retry_timeout"])
        self._poll = float(options["poll"])
        s = sql.Identifier(self.schema)
        self._channel = self._channel_name(self.schema)
        # Rendered to bytes once: psycopg then parses each query only once.
        self._sql_txn = sql.SQL(
            "SELECT * FROM {}.accord_txn(%s::uuid, %s, %b::bytea[])"
        ).format(s).as_bytes(None)
        self._sql_put_if = sql.SQL(
            "SELECT * FROM {}.accord_put_if(%s::uuid, %s, %s, %s, %s, %b, %s, %s, %s, %s, %s, "
            "%s, %s, %s::text[], %s::text[], %s::float8, %s, %s, %s)"
        ).format(s).as_bytes(None)
        self._sql_get = sql.SQL(
            "SELECT " + _COLUMNS + " FROM {}.accord_records WHERE key = %s"
        ).format(s).as_bytes(None)
        self._sql_scan = sql.SQL(
            "SELECT " + _COLUMNS + " FROM {}.accord_records WHERE key >= %s AND key < %s "
            "AND NOT deleted ORDER BY key LIMIT %s"
        ).format(s).as_bytes(None)
        self._sql_revision = sql.SQL(
            "SELECT rev FROM {}.accord_counter WHERE id = 1"
        ).format(s).as_bytes(None)
        self._sql_history = sql.SQL(
            "SELECT " + _EVENT_COLUMNS + " FROM {}.accord_events "
            "WHERE rev > %s ORDER BY rev LIMIT %s"
        ).format(s).as_bytes(None)
        self._sql_history_key = sql.SQL(
            "SELECT " + _EVENT_COLUMNS + " FROM {}.accord_events "
            "WHERE key = %s AND rev > %s ORDER BY rev LIMIT %s"
        ).format(s).as_bytes(None)
        self._sql_changes = sql.SQL(
            "SELECT " + _EVENT_COLUMNS + " FROM {}.accord_events "
            "WHERE key = %s AND rev < %s AND change ORDER BY rev DESC LIMIT %s"
        ).format(s).as_bytes(None)
        self._sql_changed = sql.SQL(
            "SELECT c.rev, c.rev > %(since)s AND (c.purged > %(since)s "
            "OR EXISTS (SELECT 1 FROM {s}.accord_records r WHERE r.key = ANY (%(keys)s::text[]) "
            "AND r.revision > %(since)s) "
            "OR EXISTS (SELECT 1 FROM unnest(%(lo)s::text[], %(hi)s::text[]) AS p(lo, hi) "
            "JOIN {s}.accord_records r ON r.key >= p.lo COLLATE \"C\" "
            "AND r.key < p.hi COLLATE \"C\" WHERE r.revision > %(since)s)) "
            "FROM {s}.accord_counter c WHERE c.id = 1"
        ).format(s=s).as_bytes(None)
        self._sql_expired = sql.SQL(
            "SELECT key FROM {}.accord_records WHERE key >= %s AND key < %s "
            "AND expires IS NOT NULL AND expires < %s"
        ).format(s).as_bytes(None)
        self._sql_purge = sql.SQL(
            "SELECT {}.accord_purge(%s::text[], %s::float8)"
        ).format(s).as_bytes(None)
        self._sql_tokens = sql.SQL(
            "DELETE FROM {}.accord_tokens WHERE ts < extract(epoch FROM clock_timestamp()) - %s"
        ).format(s).as_bytes(None)
        self.retried = 0
        """Operations repeated after a lost connection or a rolled-back conflict."""
        self.replayed = 0
        """Write transactions found committed by an earlier attempt (not applied again)."""
        self._closed = False
        self._listener: _Listener | None = None
        self._listener_lock = threading.Lock()
        self._last_token_sweep = time.monotonic()
        self._sweep_lock = threading.Lock()
        self._migrate()
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=self._pool_size,
            kwargs={"autocommit": True},
            configure=_configure,
            open=True,
            name=f"accord:{self.schema}",
            timeout=self._retry_timeout,
            reconnect_timeout=max(self._retry_timeout, 60.0),
        )

    # --- URL and errors -----------------------------------------------------

    def _parse(self, url: str) -> tuple[str, dict[str, str]]:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("postgresql", "postgres"):
            raise UsageError(
                f"{self._shown!r} is not a PostgreSQL URL. Use "
                "postgresql://user@host:5432/dbname?schema=accord."
            )
        options = {"schema": DEFAULT_SCHEMA, "pool_size": "8", "retry_timeout": "30", "poll": "1"}
        passthrough: list[tuple[str, str]] = []
        given: set[str] = set()
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name in _OPTIONS:
                if name in given and options[name] != value:
                    raise UsageError(
                        f"The option {name} is given twice in {self._shown!r} "
                        f"({options[name]!r} and {value!r}): give it once."
                    )
                given.add(name)
                options[name] = value
            else:
                passthrough.append((name, value))
        schema = options["schema"]
        if not _SCHEMA_NAME.match(schema) or schema.lower().startswith("pg_"):
            raise UsageError(
                f"Invalid schema name {schema!r} in {self._shown!r}: use 1 to 63 letters, "
                "digits and underscores, starting with a letter or underscore and not with "
                "'pg_', such as ?schema=accord."
            )
        for name, low in (("pool_size", 1.0), ("retry_timeout", 0.0), ("poll", 0.01)):
            try:
                number = float(options[name])
            except ValueError:
                number = float("nan")
            if (
                not number >= low
                or not math.isfinite(number)
                or (name == "pool_size" and not number.is_integer())
            ):
                raise UsageError(
                    f"Invalid {name}={options[name]!r} in {self._shown!r}: use a number "
                    + ("(a whole number of connections, at least 1)." if name == "pool_size"
                       else f"of seconds (finite), at least {low:g}.")
                )
        names = {name for name, _ in passthrough}
        if "connect_timeout" not in names:
            passthrough.append(("connect_timeout", "10"))
        if "application_name" not in names:
            passthrough.append(("application_name", "accord"))
        # %20, not "+", for spaces: libpq does not read "+" as a space.
        conninfo = urlunsplit(parts._replace(query=urlencode(passthrough, quote_via=quote)))
        try:
            conninfo_to_dict(conninfo)
        except psycopg.ProgrammingError as exc:
            raise UsageError(
                f"Invalid PostgreSQL URL {self._shown!r}: {str(exc).strip()}. accord's own "
                f"options are {', '.join(_OPTIONS)}; anything else must be a libpq connection "
                "parameter such as sslmode or connect_timeout."
            ) from exc
        return conninfo, options

    @staticmethod
    def _channel_name(schema: str) -> str:
        name = "accord_" + schema
        if len(name) > 63:
            name = "accord_" + hashlib.sha256(schema.encode()).hexdigest()[:32]
        return name

    def _where(self) -> str:
        return f"PostgreSQL {self._shown} (schema {self.schema!r})"

    def _connect_error(self, exc: psycopg.Error) -> BackendUnavailable:
        """A clear message for a connection that could not be made."""
        return BackendUnavailable(
            f"Cannot connect to {self._where()}: {self._connect_problem(exc)}",
            fate="not applied",
        )

    def _connect_problem(self, exc: psycopg.Error) -> str:
        """What went wrong connecting, and what to do about it."""
        text = str(exc).strip()
        parts = urlsplit(self.url)
        user = parts.username or "(your login name)"
        db = parts.path.lstrip("/") or user
        if "does not exist" in text and "database" in text:
            hint = (
                f"The database {db!r} does not exist: create it (createdb {db}, or CREATE "
                "DATABASE) or fix the database name in the URL."
            )
        elif "role" in text and "does not exist" in text:
            hint = f"The user {user!r} does not exist on the server: create it or fix the URL."
        elif "password authentication failed" in text or "no password supplied" in text:
            hint = (
                "The server refused the password: fix user and password in the URL "
                "(or in ~/.pgpass)."
            )
        elif "pg_hba.conf" in text:
            hint = (
                "The server does not accept connections from this host and user: add a "
                "line for them to pg_hba.conf and reload the server."
            )
        elif "Connection refused" in text or "could not connect" in text:
            hint = (
                "Nothing accepts connections there: check that the server runs, that host "
                "and port are right, and that listen_addresses covers this address."
            )
        elif "timeout expired" in text:
            hint = (
                "The connection timed out: check host, port, firewalls and that the server "
                "is up (raise ?connect_timeout= on slow networks)."
            )
        elif "translate host name" in text or "Name or service not known" in text:
            hint = "The host name does not resolve: fix the host in the URL."
        else:
            hint = "Check the URL and that the server accepts connections from this host."
        return f"{text}. {hint}"

    def _translate(self, exc: psycopg.Error, doing: str, *, wrote: bool) -> BackendUnavailable:
        """Map a psycopg error that ended an operation to the accord tree."""
        state = getattr(exc, "sqlstate", None) or ""
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        nothing = " Nothing was written." if wrote else ""
        if state == "42501":
            hint = (
                f"The database user lacks a permission on schema {self.schema!r}. Grant it, "
                f"as the schema owner: GRANT USAGE ON SCHEMA {self.schema} TO <user>; GRANT "
                f"SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {self.schema} TO "
                f"<user>; GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {self.schema} TO <user>."
            )
        elif state == "25006":
            hint = (
                "The server is read-only (a standby?): point the URL at the primary, or add "
                "target_session_attrs=read-write with every host listed."
            )
        elif state in ("42P01", "42883", "3F000"):
            hint = (
                f"accord's tables or functions in schema {self.schema!r} are missing (dropped "
                "while this store was open?). Open the store again to recreate them."
            )
        elif state == "57014":
            hint = "The statement was cancelled (statement_timeout?); retry, or raise the timeout."
        elif state in ("53300", "53400"):
            hint = (
                "The server has no connection slots left: lower ?pool_size= on the agents, "
                "or raise max_connections on the server."
            )
        else:
            hint = "Retry once the cause is fixed."
        return BackendUnavailable(
            f"{self._where()} failed while {doing}: {text}.{nothing} {hint}",
            fate="not applied" if wrote else None,
        )

    # --- schema --------------------------------------------------------------

    def _migrate(self) -> None:
        """Create or upgrade the schema: idempotent, and safe from many processes."""
        start = time.monotonic()
        while True:
            try:
                conn = psycopg.connect(self._conninfo, autocommit=True)
                break
            except psycopg.OperationalError as exc:
                # A server starting or stopping is worth waiting for, and a
                # refused connection briefly too (a restart takes a second or
                # two); anything else is a wrong URL or a server not there.
                text = str(exc)
                waited = time.monotonic() - start
                if (
                    ("starting up" in text or "shutting down" in text)
                    and waited < self._retry_timeout
                ) or ("Connection refused" in text and waited < min(3.0, self._retry_timeout)):
                    time.sleep(0.2)
                    continue
                raise self._connect_error(exc) from exc
        script = _load_schema_sql()
        digest = hashlib.sha256(script.encode()).hexdigest()[:16]
        try:
            with conn:
                _configure(conn)
                if self._schema_version(conn) == (SCHEMA_VERSION, digest):
                    return
                with conn.transaction():
                    # Two processes opening a new store at once: the second
                    # waits here, then finds the schema done and does nothing.
                    conn.execute(
                        "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                        (_LOCK_CLASS, self.schema),
                    )
                    if self._schema_version(conn) == (SCHEMA_VERSION, digest):
                        return
                    # The script is idempotent (IF NOT EXISTS, OR REPLACE): it
                    # creates a new schema, and brings the functions of an
                    # existing one of this version up to date. Later schema
                    # versions add their steps here, each from version n to
                    # n + 1, inside this one transaction.
                    self._create(conn, script, digest)
        except psycopg.Error as exc:
            state = getattr(exc, "sqlstate", None)
            if state == "42501":
                raise BackendUnavailable(
                    f"{self._where()}: the database user may not create accord's schema "
                    f"({str(exc).strip()}). Either let it create schemas once (GRANT CREATE ON "
                    "DATABASE <db> TO <user>), or have an administrator run accord once with "
                    f"a user that may, or create the schema for it: CREATE SCHEMA {self.schema} "
                    "AUTHORIZATION <user>;",
                    fate="not applied",
                ) from exc
            if isinstance(exc, psycopg.OperationalError):
                raise self._connect_error(exc) from exc
            raise self._translate(exc, "creating accord's schema", wrote=True) from exc

    def _schema_version(self, conn: psycopg.Connection[Any]) -> tuple[int, str] | None:
        """The schema version and functions digest stored in the database
        (None: no schema yet)."""
        # A query of the catalog, not to_regclass(): after waiting for the
        # migration lock, to_regclass() may still answer from this backend's
        # cache as it was before the lock holder committed the schema, and
        # every process opening a new store at once would then run the
        # script again (whose ALTER TABLE deadlocks with the first one's
        # writers).
        exists = conn.execute(
            "SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = 'accord_meta'",
            (self.schema,),
        ).fetchone()
        if exists is None:
            return None
        row = conn.execute(
            sql.SQL(
                "SELECT v.value, f.value FROM {s}.accord_meta v LEFT JOIN {s}.accord_meta f "
                "ON f.name = 'functions' WHERE v.name = 'schema_version'"
            ).format(s=sql.Identifier(self.schema))
        ).fetchone()
        if row is None:
            raise BackendUnavailable(
                f"{self._where()}: the table accord_meta exists but holds no schema version, "
                "so this schema was not made by accord. Use another ?schema= name."
            )
        version = int(row[0])
        if version > SCHEMA_VERSION:
            raise BackendUnavailable(
                f"{self._where()} was created by a newer accord (schema version {version}; "
                f"this accord knows up to {SCHEMA_VERSION}). Upgrade accord on this machine "
                "(pip install -U accord), or use another ?schema= for this version.",
                schema_version=version,
            )
        return version, str(row[1] or "")

    def _create(self, conn: psycopg.Connection[Any], script: str, digest: str) -> None:
        exists = conn.execute("SELECT to_regnamespace(%s)", (f'"{self.schema}"',)).fetchone()
        ident = sql.Identifier(self.schema).as_string(conn)
        if exists is None or exists[0] is None:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
        script = script.replace("@s@", ident).replace(
            "@channel@", sql.Literal(self._channel).as_string(conn)
        )
        for statement in script.split("-- ;;"):
            body = "\n".join(
                line for line in statement.splitlines() if not line.startswith("--")
            ).strip()
            if body:
                conn.execute(body.encode())
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.accord_meta (name, value) VALUES ('schema_version', %s), "
                "('functions', %s) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value"
            ).format(sql.Identifier(self.schema)),
            (str(SCHEMA_VERSION), digest),
        )

    # --- running statements ---------------------------------------------------

    def _run(
        self, fn: Callable[[psycopg.Connection[Any]], T], doing: str, *, write: bool = False
    ) -> T:
        """Run ``fn`` on a pooled connection, retrying while that is safe.

        Reads are always safe to repeat. A write is safe to repeat because it
        carries its transaction token (see ``accord_txn``): a repeat of a
        write that committed reports the first outcome. Serialization
        failures and deadlocks roll back, so they are retried too.
        """
        if self._closed:
            raise BackendUnavailable(CLOSED)
        deadline = time.monotonic() + self._retry_timeout
        attempt = 0
        in_doubt = False
        direct = tried_direct = False
        last: Exception | None = None
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
                            return fn(conn)
                else:
                    timeout = max(0.05, deadline - time.monotonic())
                    with self._pool.connection(timeout=timeout) as conn:
                        return fn(conn)
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
                    raise self._translate(exc, doing, wrote=write) from exc
            if self._closed:
                raise BackendUnavailable(CLOSED)
            left = deadline - time.monotonic()
            assert last is not None
            if left <= 0:
                raise self._gave_up(last, doing, write=write, in_doubt=in_doubt) from last
            self.retried += 1
            time.sleep(min(left, random.uniform(0, min(1.0, 0.02 * 2**attempt))))

    def _connect_direct(self) -> psycopg.Connection[Any]:
        """A connection outside the pool, set up as the pool's are (the caller
        closes it)."""
        conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=3)
        try:
            _configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _gave_up(
        self, exc: Exception, doing: str, *, write: bool, in_doubt: bool
    ) -> BackendUnavailable:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, PoolTimeout):
            # The pool only says it timed out; one direct attempt says why.
            try:
                psycopg.connect(self._conninfo, connect_timeout=3).close()
                reason = f"no connection became free within {self._retry_timeout:g} s"
            except psycopg.Error as probe:
                reason = self._connect_problem(probe)
        if not write:
            fate, tail = None, "Nothing was written. Retry once the server is back."
        elif in_doubt:
            fate = "unknown"
            tail = (
                "The connection was lost after the write was sent, and the server could not "
                "be reached again to find out whether it committed: its fate is UNKNOWN. Read "
                "the key to see whether your change is there, or repeat the call with the "
                "same idempotency_key, which applies it at most once."
            )
        else:
            fate = "not applied"
            tail = "The write was never applied. Retry it once the server is back."
        return BackendUnavailable(
            f"{self._where()} was unreachable for {self._retry_timeout:g} s while {doing} "
            f"({reason}). {tail}",
            fate=fate,
        )

    # --- the contract -------------------------------------------------------

    def now(self) -> float:
        # The database clock is the one clock all agents on all hosts share.
        def go(conn: psycopg.Connection[Any]) -> float:
            row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
            assert row is not None
            return float(row[0])

        return self._run(go, "reading the clock")

    def get(self, key: str) -> Record | None:
        def go(conn: psycopg.Connection[Any]) -> Record | None:
            row = conn.cursor(binary=True).execute(self._sql_get, (key,)).fetchone()
            return None if row is None else _row_to_record(row)

        return self._run(go, f"reading {key!r}")

    def scan(self, prefix: str, limit: int | None = None) -> list[Record]:
        def go(conn: psycopg.Connection[Any]) -> list[Record]:
            rows = (
                conn.cursor(binary=True)
                .execute(self._sql_scan, (prefix, prefix + _PREFIX_END, limit))
                .fetchall()
            )
            return [_row_to_record(r) for r in rows]

        return self._run(go, f"scanning {prefix!r}")

    def revision(self) -> int:
        def go(conn: psycopg.Connection[Any]) -> int:
            row = conn.execute(self._sql_revision).fetchone()
            assert row is not None
            return int(row[0])

        return self._run(go, "reading the revision")

    def txn(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        has_ops = bool(success) or bool(failure)
        return self._txn(compares, success, failure, _token() if has_ops else None)

    def _txn(
        self,
        compares: Sequence[Compare],
        success: Sequence[Op],
        failure: Sequence[Op],
        token: uuid.UUID | None,
    ) -> TxnResult:
        keys = touched_keys(compares, success, failure)
        has_ops = bool(success) or bool(failure)
        spec, blobs = _txn_spec(compares, success, failure)
        params = (token, spec, blobs)

        def go(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            return conn.cursor(binary=True).execute(self._sql_txn, params).fetchall()

        rows = self._run(go, "writing" if has_ops else "checking", write=has_ops)
        result = self._finish(rows, keys, compares, success, failure)
        self._maybe_sweep_tokens()
        return result

    def _finish(
        self,
        rows: list[tuple[Any, ...]],
        keys: list[str],
        compares: Sequence[Compare],
        success: Sequence[Op],
        failure: Sequence[Op],
    ) -> TxnResult:
        """The TxnResult of a call of accord_txn or accord_put_if: its rows
        of the touched keys before the transaction, then a header row.
        ``compares`` are the compares in the order the function checked them
        (its ``h_failed`` counts from 1 in that order)."""
        header = rows[-1]
        ok, rev0, rev1, now, replay, before_text, failed_at = header[10:17]
        failed = None
        if not ok and failed_at is not None and 1 <= failed_at <= len(compares):
            failed = compares[failed_at - 1]
        current: dict[str, Record | None] = dict.fromkeys(keys)
        if replay:
            self.replayed += 1
        if replay and before_text is not None:
            self._replay_before(current, success if ok else failure, before_text)
        else:
            for row in rows[:-1]:
                current[row[0]] = _row_to_record(row)
        # The function already gave the refused events the failed compare's
        # refusal as their outcome; plan_ops rebuilds them the same way.
        outcome = None if failed is None else failed.refusal
        ops = success if ok else failure
        _, events, revision = plan_ops(ops, current, rev0, now, None, outcome)
        if revision != rev1:
            raise BackendUnavailable(
                f"{self._where()}: the database applied a transaction as revisions "
                f"{rev0}..{rev1} but accord expected {revision}; the schema's functions do "
                "not match this accord. Open the store with the accord that created it."
            )
        return TxnResult(ok, revision, current, events, failed)

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
        plan = self._put_if_plan(put, expect, guards, failure)
        if plan is None:
            return self.txn(put_if_compares(put.key, expect, guards), [put], failure)
        attempts = 0

        def go(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            # Only a repeat can find its token already used.
            nonlocal attempts
            attempts += 1
            cur = conn.cursor(binary=True)
            args = (plan.token, attempts > 1, *plan.params)
            return cur.execute(self._sql_put_if, args).fetchall()

        rows = self._run(go, "writing", write=True)
        self._maybe_sweep_tokens()
        return self._put_if_result(rows, plan, put, expect, guards, failure)

    def _put_if_plan(
        self, put: Put, expect: int, guards: Sequence[Compare], failure: Sequence[Op]
    ) -> _PutIf | None:
        """The parameters of one ``accord_put_if`` call, or None when the write
        does not have the short path's shape (then it is a :meth:`txn`).
        Shared with the async backend."""
        event = put.event
        key = put.key
        short = (
            short_put(put, expect, guards)
            and event is not None
            and len(failure) <= 1
            and all(
                isinstance(op, Append)
                and op.event is not None
                and op.event.get("key") == event.get("key")
                for op in failure
            )
        )
        if not short or event is None:
            return None
        failed = failure[0].event if failure else None
        vacant = guards[0] if guards and guards[0].target == "vacant" else None
        holders = guards[1:] if vacant is not None else guards
        refused = None
        if vacant is not None and vacant.refusal is not None and failed is not None:
            refused = dict(failed)
            refused["outcome"] = vacant.refusal
        hash_ = value_hash(put.data)
        params = (
            key,
            expect,
            put.kind,
            put.data,
            put.author,
            put.lamport,
            put.clock,
            hash_,
            _dumps_short_event(event),
            event.get("key"),
            None if failed is None else _dumps_short_event(failed),
            _text_array([g.key for g in holders]) if holders else None,
            _text_array([g.value if isinstance(g.value, str) else None for g in holders])
            if holders
            else None,
            # How far back a repeat looks for its first attempt's event: beyond
            # the time _run keeps retrying, with a minute to spare.
            self._retry_timeout + 60.0,
            None if vacant is None else vacant.key,
            None if vacant is None or not isinstance(vacant.value, str) else vacant.value,
            None if refused is None else _dumps_short_event(refused),
        )
        # The token as text (the function casts it): cheaper than a UUID object.
        token = f"{_token_int():032x}"
        keys = list(dict.fromkeys([key, *(g.key for g in holders)]))
        return _PutIf(token, params, hash_, event, keys)

    def _put_if_result(
        self,
        rows: list[tuple[Any, ...]],
        plan: _PutIf,
        put: Put,
        expect: int,
        guards: Sequence[Compare],
        failure: Sequence[Op],
    ) -> TxnResult:
        """The TxnResult of an ``accord_put_if`` call's rows."""
        ok, rev1, now, replay = rows[-1][10], rows[-1][12], rows[-1][13], rows[-1][14]
        if ok:
            # A first attempt that committed (a replay) reports the same way.
            if replay:
                self.replayed += 1
            out = _stamp(plan.event, rev1, iso_time(now), expect + 1, expect, plan.hash)
            return TxnResult(True, rev1, {}, [out])
        return self._finish(
            rows, plan.keys, put_if_compares(put.key, expect, guards), [put], failure
        )

    def _replay_before(
        self, current: dict[str, Record | None], ops: Sequence[Op], before_text: str
    ) -> None:
        """Rebuild the "before" rows of a transaction that committed on an
        earlier attempt: the keys it wrote from its token row (absent there:
        absent then), the keys it only compared as they are now."""
        written = {op.key for op in ops if not isinstance(op, Append)}
        rows = {row[0]: row for row in json.loads(before_text)}
        for key in current:
            if key not in written:
                current[key] = self.get(key)
            elif key in rows:
                _, kind, version, revision, author, lamport, clock, deleted, expires = rows[key]
                current[key] = Record(
                    key, kind, b"", version, revision, author, lamport, clock, deleted, expires
                )
            else:
                current[key] = None

    def _maybe_sweep_tokens(self) -> None:
        # Tokens only matter while a client may still retry (retry_timeout);
        # drop old ones now and then, outside any writer's critical section.
        now = time.monotonic()
        if now - self._last_token_sweep < 60 or not self._sweep_lock.acquire(blocking=False):
            return
        try:
            self._last_token_sweep = now
            horizon = max(_TOKEN_HORIZON, 10 * self._retry_timeout)
            self._run(lambda conn: conn.execute(self._sql_tokens, (horizon,)), "sweeping tokens")
        except BackendUnavailable:
            pass  # best effort; the next sweep will do it
        finally:
            self._sweep_lock.release()

    def history(
        self, since: int = 0, key: str | None = None, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        def fetch(after: int, count: int) -> list[dict[str, Any]]:
            params: tuple[Any, ...]
            if key is None:
                query, params = self._sql_history, (after, count)
            else:
                query, params = self._sql_history_key, (key, after, count)

            def go(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
                return conn.cursor(binary=True).execute(query, params).fetchall()

            return [_event(*row) for row in self._run(go, "reading history")]

        return paged_history(fetch, since, limit)

    def changes(self, key: str) -> Iterator[dict[str, Any]]:
        # Newest first, in small pages: callers usually stop after a few.
        before = 2**63 - 1
        page = 16
        while True:

            def go(conn: psycopg.Connection[Any], b: int = before, n: int = page) -> list[Any]:
                return conn.cursor(binary=True).execute(self._sql_changes, (key, b, n)).fetchall()

            rows = self._run(go, f"reading the changes of {key!r}")
            for row in rows:
                yield _event(*row)
                before = row[0]
            if len(rows) < page:
                return
            page = min(page * 4, 2000)

    def wait(
        self, keys: Sequence[str], prefixes: Sequence[str], since: int, timeout: float
    ) -> int:
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
            step = self._poll if ready else quick
            quick = min(quick * 2, 0.5)
            notes, gen, ready, lost = listener.wait_after(gen, min(left, step))
            for rev, changed in notes:
                if rev > since and _matches(changed, keys, prefixes):
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
            "hi": [p + _PREFIX_END for p in prefixes],
        }

        def go(conn: psycopg.Connection[Any]) -> tuple[int, bool]:
            row = conn.execute(self._sql_changed, params).fetchone()
            assert row is not None
            return int(row[0]), bool(row[1])

        rev, changed = self._run(go, "waiting for a change")
        return rev if changed else None

    def _get_listener(self) -> _Listener:
        with self._listener_lock:
            if self._closed:
                raise BackendUnavailable(CLOSED)
            if self._listener is None:
                self._listener = _Listener(self._conninfo, self._channel, self.schema)
            return self._listener

    def purge_expired(self, prefix: str, before: float) -> int:
        # Find candidates without any lock, so the writers' critical section
        # never includes a scan of the prefix; the function checks them again.
        def go(conn: psycopg.Connection[Any]) -> int:
            keys = [
                r[0]
                for r in conn.execute(
                    self._sql_expired, (prefix, prefix + _PREFIX_END, before)
                ).fetchall()
            ]
            if not keys:
                return 0
            row = conn.execute(self._sql_purge, (keys, before)).fetchone()
            assert row is not None
            return int(row[0])

        return self._run(go, "purging expired records", write=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._listener_lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
        self._pool.close(timeout=5)


# --- helpers ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PutIf:
    """One ``accord_put_if`` call: its token and parameters, and what reads its result."""

    token: str
    params: tuple[Any, ...]
    hash: str
    event: dict[str, Any]
    keys: list[str]


def _configure(conn: psycopg.Connection[Any]) -> None:
    # accord_txn relies on Read Committed: after waiting for the counter
    # lock, each statement must see what the previous writer committed. A
    # server default of repeatable read or serializable would turn every
    # contended write into a serialization failure.
    conn.execute("SET default_transaction_isolation = 'read committed'")


def _is_connection_loss(exc: psycopg.Error) -> bool:
    state = getattr(exc, "sqlstate", None) or ""
    if state.startswith("08") or state in ("57P01", "57P02", "57P03"):
        return True
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) and not state


def _event(
    rev: int,
    body: str,
    ts: float,
    version: int | None,
    prev: int | None,
    hash_: str | None,
    expires: float | None,
) -> dict[str, Any]:
    # The same stamping plan_ops does (base._stamp and the lease deadline),
    # done at read time from the columns the function stored.
    out: dict[str, Any] = json.loads(body)
    out["rev"] = rev
    out["time"] = iso_time(ts)
    if version is not None and "version" not in out:
        out["version"] = version
    if prev is not None and "prev" not in out:
        out["prev"] = prev
    if hash_ is not None and "hash" not in out:
        out["hash"] = hash_
    if expires is not None and "expires" not in out:
        out["expires"] = iso_time(expires)
    return out


def _text_array(items: Sequence[str | None]) -> str:
    """A text[] literal, for a parameter cast with ``::text[]``: psycopg's
    list adaptation, written in Python, costs tens of microseconds a call."""
    return (
        "{"
        + ",".join(
            "NULL" if item is None else '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'
            for item in items
        )
        + "}"
    )


def _token_int() -> int:
    # Time first, then randomness: new tokens land at the right edge of the
    # tokens' primary key index instead of on random pages (which, after
    # every checkpoint, would each cost a full page image in the WAL).
    return ((time.time_ns() << 64) | random.getrandbits(64)) & ((1 << 128) - 1)


def _token() -> uuid.UUID:
    return uuid.UUID(int=_token_int())


def _number(value: float) -> float | str:
    # JSON has no infinities; PostgreSQL reads these spellings as float8.
    return value if math.isfinite(value) else str(value).replace("inf", "Infinity")


def _txn_spec(
    compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]
) -> tuple[str, list[bytes]]:
    """The arguments of ``accord_txn``: JSON for the structure, and the byte
    strings (values) apart, referred to by 1-based index, so they travel in
    binary and are never escaped."""
    blobs: list[bytes] = []
    cs: list[list[Any]] = []
    for cmp in compares:
        value = cmp.value
        is_now = isinstance(value, str) and value == NOW
        num: float | str | None = None
        text: str | None = None
        js: Any = None
        blob: int | None = None
        if not is_now:
            if cmp.target in ("version", "expires"):
                if value is not None:
                    if not isinstance(value, int | float):
                        raise UsageError(f"A {cmp.target} compare needs a number, not {value!r}.")
                    num = _number(float(value))
            elif cmp.target in ("holder", "vacant"):
                text = value if isinstance(value, str) else None
            elif isinstance(value, bytes | bytearray | memoryview):
                blobs.append(bytes(value))
                blob = len(blobs)
            else:
                js = value
        cs.append([cmp.key, cmp.target, cmp.op, num, text, js, is_now, blob, cmp.refusal])
    ops: list[list[Any]] = []
    for branch, branch_ops in ((True, success), (False, failure)):
        for op in branch_ops:
            event = op.event
            body = None if event is None else _EVENT_JSON.encode(event)
            evkey = None if event is None else event.get("key")
            if isinstance(op, Append):
                ops.append([branch, "a", None, "", None, "", 0, "{}", None, body, evkey, None])
            elif isinstance(op, Put):
                blobs.append(op.data)
                ttl = None if op.ttl is None else _number(float(op.ttl))
                hash_ = None if event is None else value_hash(op.data)
                ops.append([branch, "p", op.key, op.kind, len(blobs), op.author, op.lamport,
                            op.clock, ttl, body, evkey, hash_])
            elif isinstance(op, Delete):
                ops.append([branch, "x" if op.purge else "d", op.key, "", None, op.author,
                            op.lamport, op.clock, None, body, evkey, None])
            else:  # pragma: no cover - guarded by the type
                raise TypeError(f"unknown op {op!r}")
    try:
        spec = _SPEC_JSON.encode({"c": cs, "o": ops})
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"A value compare needs str, bytes or JSON data ({exc})."
        ) from exc
    return spec, blobs


def _matches(changed: list[str] | None, keys: Sequence[str], prefixes: Sequence[str]) -> bool:
    if changed is None:
        return True
    return any(key in keys or key.startswith(tuple(prefixes)) for key in changed)


class _Listener:
    """One LISTEN connection per store object, shared by all its waiters.

    ``gen`` counts events (notifications and connection changes). A waiter
    takes a mark, checks the tables, then asks for what came after its
    mark. ``lost`` tells it that notifications may have been missed (the
    connection dropped, came up, or the buffer overflowed), so it must check
    the tables again: the tables are the truth, notifications only a hint.
    """

    _BUFFER = 4096

    def __init__(self, conninfo: str, channel: str, schema: str) -> None:
        self._conninfo = conninfo
        self._channel = channel
        s = sql.Identifier(schema)
        self._sql_register = [
            # Under the counter lock: a writer that committed before this
            # registration is seen by the waiters' table check that follows
            # it; a writer after it sees the registration and notifies.
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
        self._cond = threading.Condition()
        self._gen = 0
        self._lost_gen = 0
        self._ready = False
        self._notes: deque[tuple[int, int, list[str] | None]] = deque(maxlen=self._BUFFER)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="accord-pg-listen", daemon=True)
        self._thread.start()

    def mark(self) -> tuple[int, bool]:
        with self._cond:
            return self._gen, self._ready

    def wait_after(
        self, gen: int, timeout: float
    ) -> tuple[list[tuple[int, list[str] | None]], int, bool, bool]:
        """Wait up to ``timeout`` for anything after mark ``gen``.

        Returns (notifications after the mark as (rev, keys or None for
        "anything"), the new mark, whether the listener is up, whether
        notifications may have been lost since the mark).
        """
        with self._cond:
            if self._gen == gen:
                self._cond.wait(timeout)
            notes = [(rev, keys) for g, rev, keys in self._notes if g > gen]
            oldest = self._notes[0][0] if self._notes else self._gen + 1
            lost = self._lost_gen > gen or (oldest > gen + 1 and self._gen > gen)
            return notes, self._gen, self._ready, lost

    def _bump(self, ready: bool) -> None:
        with self._cond:
            self._gen += 1
            self._lost_gen = self._gen
            self._ready = ready
            self._cond.notify_all()

    def _run(self) -> None:
        delay = 0.05
        while not self._stop.is_set():
            try:
                conn = psycopg.connect(self._conninfo, autocommit=True)
            except psycopg.Error:
                self._stop.wait(delay)
                delay = min(delay * 2, 2.0)
                continue
            try:
                with conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    # Writers notify only while a listener is registered, so
                    # a store nobody waits on pays nothing for NOTIFY (whose
                    # commit takes a lock shared by the whole cluster). A
                    # listener that may not register (a read-only user) is
                    # "not ready": its waiters poll quickly instead.
                    try:
                        with conn.transaction():
                            for statement in self._sql_register:
                                conn.execute(statement)
                        registered = True
                    except psycopg.errors.InsufficientPrivilege:
                        registered = False
                    self._bump(registered)
                    delay = 0.05
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.25):
                            self._deliver(note.payload)
                    if registered:
                        conn.execute(self._sql_unregister)
            except psycopg.Error:
                pass
            self._bump(False)
            if not self._stop.is_set():
                self._stop.wait(delay)
                delay = min(delay * 2, 2.0)

    def _deliver(self, payload: str) -> None:
        head, _, rest = payload.partition("\n")
        try:
            rev = int(head)
        except ValueError:
            return
        keys = None if rest == "*" else rest.split("\n")
        with self._cond:
            self._gen += 1
            self._notes.append((self._gen, rev, keys))
            self._cond.notify_all()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
