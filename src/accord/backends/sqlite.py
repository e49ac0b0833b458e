"""Embedded backend on one SQLite file: the default.

URL: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or
``sqlite:///:memory:``-style paths are refused (use ``memory://``). Query
options: ``?synchronous=full`` for fsync on every commit (default
``normal``: a committed write survives a process crash, and a power loss may
drop the last commits), ``?busy_timeout=SECONDS`` (default 30).

Many processes on one machine may share the file (WAL mode). Every write
transaction starts with ``BEGIN IMMEDIATE``, so the write lock is taken
before anything is read and two writers can never interleave a check and a
write. It spans processes, not hosts: a SQLite file on a network share is
not safe to share between machines.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from ..errors import BackendUnavailable, UsageError
from ..records import (
    Compare,
    Delete,
    Op,
    Put,
    Record,
    TxnResult,
    compact_json_encoder,
    fast_event_encoder,
    value_hash,
)
from .base import (
    CLOSED,
    Backend,
    first_failure,
    iso_time,
    paged_history,
    plan_ops,
    put_if_compares,
    short_put,
    slot_range,
    touched_keys,
)

APPLICATION_ID = 0x41434344  # "ACCD"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accord_records (
    key      TEXT PRIMARY KEY,
    kind     TEXT NOT NULL,
    data     BLOB NOT NULL,
    version  INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    author   TEXT NOT NULL,
    lamport  INTEGER NOT NULL,
    clock    TEXT NOT NULL,
    deleted  INTEGER NOT NULL,
    expires  REAL,
    erev     INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS accord_events (
    rev   INTEGER PRIMARY KEY,
    key   TEXT,
    kprev INTEGER,
    body  TEXT
);
"""
# Why the history has no index on key: every index is one more page written
# at every commit, and the hot paths never search history by key. Instead
# each change event points at the key's previous change (kprev) and the
# record at its latest (erev), so "who wrote since version v" walks back a
# few primary-key lookups. history(key=) for people scans the table.
#
# The store revision is MAX(rev) of accord_events: every op of a transaction
# consumes one revision and appends one row (a row with a NULL body for ops
# that carry no event), so the counter needs no row of its own to update.
#
# A body may leave out "rev" (put_if_version appends the row before it knows
# the rowid): the row's rev is the event's rev, and readers put it back.

_MAX_BUSY_TIMEOUT = 86400.0  # a day: longer is a hang, not a wait

_COLUMNS = "key, kind, data, version, revision, author, lamport, clock, deleted, expires"
_MAX_REV = "SELECT MAX(rev) FROM accord_events"
_GET = f"SELECT {_COLUMNS} FROM accord_records WHERE key = ?"
_READ_LIVE = (
    "SELECT kind, data, version, revision, author, lamport, clock FROM accord_records "
    "WHERE key = ? AND deleted = 0"
)
# The statement that opens every write: the revision (first branch, the
# only row whose key is NULL) and the touched rows with their change-chain
# heads, in one round trip. Point lookups joined by UNION ALL cost much less
# than ``key IN (?, ?)``, for which SQLite builds a temporary index on every
# call. sqlite3 caches prepared statements by SQL text, so the text is built
# once per number of keys.
_SELECT_TOUCHED: dict[int, str] = {}
_REVISION_ROW = "SELECT " + "NULL, " * 11 + "MAX(rev) FROM accord_events"
_TOUCHED_ROW = f"SELECT {_COLUMNS}, erev, NULL FROM accord_records WHERE key = ?"
_MAX_UNION = 16


def _select_touched(n: int) -> str:
    sql = _SELECT_TOUCHED.get(n)
    if sql is None:
        if n <= _MAX_UNION:
            parts = [_REVISION_ROW] + [_TOUCHED_ROW] * n
        else:
            marks = ",".join("?" * n)
            parts = [
                _REVISION_ROW,
                f"SELECT {_COLUMNS}, erev, NULL FROM accord_records WHERE key IN ({marks})",
            ]
        sql = _SELECT_TOUCHED.setdefault(n, " UNION ALL ".join(parts))
    return sql


# A vacant compare (base.check_compare, target "vacant") fails when a live,
# unexpired row lies in its slot range, other than the exempt key, whose key
# is the prefix and digits only. Usually the range is empty: one probe of
# the primary key settles it. Parameters: lo, hi, now, exempt key, the
# position of the first character after the prefix.
_OCCUPIED = (
    "SELECT 1 FROM accord_records WHERE key >= ? AND key < ? AND deleted = 0 "
    "AND (expires IS NULL OR expires > ?) AND key != ? "
    "AND substr(key, ?) NOT GLOB '*[^0-9]*'"
)
_OCCUPIED_ONE = _OCCUPIED + " LIMIT 1"


def _occupied_params(cmp: Compare, now: float) -> tuple[str, str, float, str, int]:
    bounds = _SLOTS.get(cmp.key)
    if bounds is None:
        if len(_SLOTS) >= 4096:
            _SLOTS.clear()
        lo, hi = slot_range(cmp.key)
        bounds = _SLOTS[cmp.key] = (lo, hi, len(cmp.key) + 1)
    exempt = cmp.value if isinstance(cmp.value, str) else ""
    return bounds[0], bounds[1], now, exempt, bounds[2]


_SLOTS: dict[str, tuple[str, str, int]] = {}


_PUT_IF: dict[tuple[int, int], str] = {}


def _put_if_sql(vacant: int, holders: int) -> str:
    sql = _PUT_IF.get((vacant, holders))
    if sql is None:
        # A holder compare holds unless a live, unexpired row of its key is
        # held by someone else (base.check_compare, target "holder").
        held_by_other = (
            " AND NOT EXISTS (SELECT 1 FROM accord_records WHERE key = ? AND deleted = 0 "
            "AND (expires IS NULL OR expires > ?) AND author != ?)"
        )
        occupied = f" AND NOT EXISTS ({_OCCUPIED})"
        head = (
            "INSERT INTO accord_events (key, kprev, body) SELECT key, erev, ? "
            "FROM accord_records WHERE key = ? AND version = ? AND deleted = 0"
        )
        sql = _PUT_IF.setdefault(
            (vacant, holders), head + occupied * vacant + held_by_other * holders
        )
    return sql


_dumps_event = compact_json_encoder()


_dumps_short_event = fast_event_encoder()
_INSERT = (
    "INSERT INTO accord_records (kind, data, version, revision, author, lamport, clock, "
    "deleted, expires, erev, key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE = (
    "UPDATE accord_records SET kind = ?, data = ?, version = ?, revision = ?, author = ?, "
    "lamport = ?, clock = ?, deleted = ?, expires = ?, erev = ? WHERE key = ?"
)
_INSERT_EVENT = "INSERT INTO accord_events (rev, key, kprev, body) VALUES (?, ?, ?, ?)"
_BUSY_RETRIES = 20


def _row_to_record(row: tuple[Any, ...]) -> Record:
    return Record(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], bool(row[8]), row[9]
    )


def _prefix_end(prefix: str) -> str:
    return prefix + "\U0010ffff"


class SQLiteBackend(Backend):
    """One SQLite file, one connection per thread."""

    spans_processes: ClassVar[bool] = True
    spans_hosts: ClassVar[bool] = False
    clock_in_process: ClassVar[bool] = True
    """``now()`` reads this machine's clock and nothing else (no I/O): the
    thread adapter calls it inline, not in a worker."""

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)
        raw = parts.path
        if parts.netloc:
            raise UsageError(
                f"Unknown SQLite URL {url!r}: use sqlite:///relative/path.db or "
                "sqlite:////absolute/path.db (three or four slashes)."
            )
        path = raw[1:] if raw.startswith("/") else raw
        if not path or path == ":memory:":
            raise UsageError(
                f"SQLite URL {url!r} names no file. Use sqlite:///.accord/state.db, or "
                "memory:// for an in-process store."
            )
        options = self._options(url, parts.query)
        self.path = Path(path)
        self._synchronous = options.get("synchronous", "normal").upper()
        if self._synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise UsageError(
                f"Invalid synchronous={options['synchronous']!r} in the SQLite URL {url!r}: use "
                "normal (the default: a committed write survives a process crash) or full "
                "(it also survives a power loss)."
            )
        self._busy_timeout = self._seconds(url, options.get("busy_timeout", "30"))
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._closed = False
        self._prepare()

    OPTIONS: ClassVar[tuple[str, ...]] = ("synchronous", "busy_timeout")
    """The query options a SQLite URL may carry; any other is refused."""

    @classmethod
    def _options(cls, url: str, query: str) -> dict[str, str]:
        options: dict[str, str] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            if name not in cls.OPTIONS:
                raise UsageError(
                    f"Unknown option {name!r} in the SQLite URL {url!r}: a SQLite store "
                    f"takes {' and '.join(cls.OPTIONS)} (such as ?busy_timeout=5). Fix the "
                    "spelling or drop the option."
                )
            if name in options and options[name] != value:
                raise UsageError(
                    f"The option {name} is given twice in the SQLite URL {url!r} "
                    f"({options[name]!r} and {value!r}): give it once."
                )
            options[name] = value
        return options

    @staticmethod
    def _seconds(url: str, text: str) -> float:
        try:
            seconds = float(text)
        except ValueError:
            seconds = math.nan
        if not (0 <= seconds <= _MAX_BUSY_TIMEOUT):
            raise UsageError(
                f"Invalid busy_timeout={text!r} in the SQLite URL {url!r}: use a number of "
                f"seconds from 0 to {_MAX_BUSY_TIMEOUT:g}, such as ?busy_timeout=30 (how long "
                "a writer waits for another process's write lock)."
            )
        return seconds

    # --- connections -------------------------------------------------------

    def _prepare(self) -> None:
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendUnavailable(
                f"Cannot create the store directory {str(parent)!r}: {exc.strerror}. "
                "Create it yourself, or point ACCORD_URL / --store at a writable place.",
            ) from exc
        if self.path.exists() and not os.access(self.path, os.W_OK):
            raise BackendUnavailable(
                f"The store file {str(self.path)!r} is read-only. Give this user write access "
                "to it (and its directory, for the WAL files), or open another store."
            )
        conn = self._conn()
        try:
            # One read transaction, so both answers come from one snapshot: a
            # process creating the schema at the same moment commits the
            # tables and the application id together.
            conn.execute("BEGIN")
            try:
                app_id = conn.execute("PRAGMA application_id").fetchone()[0]
                tables = {
                    r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
            finally:
                conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise BackendUnavailable(
                f"{str(self.path)!r} is not an accord store (SQLite says: {exc}). "
                "Point the store URL at a new file, or at one accord created."
            ) from exc
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables):
            raise BackendUnavailable(
                f"{str(self.path)!r} is a SQLite database that accord did not create. "
                "accord will not write into it; use a new file such as .accord/state.db."
            )
        try:
            self._execute_script(conn)
        except sqlite3.OperationalError as exc:
            raise self._translate(exc, "creating the schema") from exc
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise BackendUnavailable(
                f"{str(self.path)!r} was written by a newer accord (schema {version}, this one "
                f"knows {SCHEMA_VERSION}). Upgrade accord to open it."
            )

    def _execute_script(self, conn: sqlite3.Connection) -> None:
        for attempt in range(_BUSY_RETRIES):
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or attempt == _BUSY_RETRIES - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise BackendUnavailable(CLOSED)
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
            # WAL is a property of the file: set it once. Switching modes needs
            # a lock that a concurrent opener may hold, so retry a busy answer.
            for attempt in range(_BUSY_RETRIES):
                try:
                    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                        conn.execute("PRAGMA journal_mode=WAL")
                    break
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc) or attempt == _BUSY_RETRIES - 1:
                        raise
                    time.sleep(0.01 * (attempt + 1))
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
        except sqlite3.Error as exc:
            raise self._translate(exc, "opening the store") from exc
        self._local.conn = conn
        # The cursor of read_live, kept: making one per read costs about a
        # tenth of a read. It always runs its statement to the end
        # (fetchall), so it never holds a read snapshot between calls.
        self._local.reader = conn.cursor()
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _translate(self, exc: sqlite3.Error, doing: str) -> BackendUnavailable:
        """Map a sqlite3 error to the accord tree: one place, most specific first."""
        text = str(exc)
        if "readonly" in text or "read-only" in text:
            hint = "The store file or its directory is read-only: give this user write access."
        elif _is_busy(exc):
            hint = (
                "Another process held the write lock for longer than the busy timeout "
                f"({self._busy_timeout:g} s). Nothing was written; retry, or raise "
                "?busy_timeout= in the store URL."
            )
        elif "not a database" in text or "malformed" in text:
            hint = "The file is not an accord store or is damaged; point the URL at another file."
        elif "unable to open" in text:
            hint = "Check that the path exists and is writable."
        else:
            hint = "Nothing was written by the failed operation; retry once the cause is fixed."
        return BackendUnavailable(
            f"SQLite store {str(self.path)!r} failed while {doing}: {text}. {hint}"
        )

    # --- the contract ------------------------------------------------------

    def now(self) -> float:
        # Every process sharing the file runs on this machine, so they share
        # this clock; TTLs never use a clock that differs between agents.
        return time.time()

    def get(self, key: str) -> Record | None:
        try:
            row = self._conn().execute(_GET, (key,)).fetchone()
        except sqlite3.Error as exc:
            raise self._translate(exc, f"reading {key!r}") from exc
        return None if row is None else _row_to_record(row)

    def read_live(self, key: str) -> tuple[str, bytes, int, int, str, int, str] | None:
        """``(kind, data, version, revision, author, lamport, clock)`` of a live key.

        None when the key is absent or deleted (then :meth:`get` tells which).
        The hot path of ``Session.read``: the same row as :meth:`get`, without
        building a :class:`Record` around it.
        """
        try:
            reader: sqlite3.Cursor | None = getattr(self._local, "reader", None)
            if reader is None:
                self._conn()
                reader = self._local.reader
            rows = reader.execute(_READ_LIVE, (key,)).fetchall()
        except sqlite3.Error as exc:
            raise self._translate(exc, f"reading {key!r}") from exc
        return rows[0] if rows else None

    def scan(self, prefix: str, limit: int | None = None) -> list[Record]:
        sql = (
            f"SELECT {_COLUMNS} FROM accord_records WHERE key >= ? AND key < ? AND deleted = 0 "
            "ORDER BY key"
        )
        params: tuple[Any, ...] = (prefix, _prefix_end(prefix))
        if limit is not None:
            sql += " LIMIT ?"
            params += (limit,)
        try:
            rows = self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._translate(exc, f"scanning {prefix!r}") from exc
        return [_row_to_record(r) for r in rows]

    def revision(self) -> int:
        try:
            row = self._conn().execute(_MAX_REV).fetchone()
        except sqlite3.Error as exc:
            raise self._translate(exc, "reading the revision") from exc
        return int(row[0] or 0)

    def txn(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        conn = self._conn()
        keys = touched_keys(compares, success, failure)
        with self._writing(conn, "writing"):
            return self._txn_locked(conn, keys, compares, success, failure)

    @contextlib.contextmanager
    def _writing(self, conn: sqlite3.Connection, doing: str) -> Iterator[None]:
        """One write transaction: ``BEGIN IMMEDIATE`` (busy retried), COMMIT
        when the block ends; on any error ROLLBACK, sqlite3 errors translated."""
        self._begin(conn)
        try:
            yield
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._translate(exc, doing) from exc
            raise

    def _begin(self, conn: sqlite3.Connection) -> None:
        for attempt in range(_BUSY_RETRIES):
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                # BEGIN IMMEDIATE failing means nothing ran: always safe to retry.
                if _is_busy(exc) and attempt < _BUSY_RETRIES - 1:
                    time.sleep(0.005 * (attempt + 1))
                    continue
                raise self._translate(exc, "starting a write") from exc

    def put_if_version(
        self,
        put: Put,
        expect: int,
        guards: Sequence[Compare] = (),
        failure: Sequence[Op] = (),
    ) -> TxnResult:
        """The common optimistic write, in fewer statements than :meth:`txn`.

        Means exactly ``txn([*guards, Compare(put.key, "version", "==",
        expect)], [put], failure)``, with one difference in the result: when
        the write succeeds, ``records`` is empty (the compares are checked by
        SQLite, and no row is read back). Takes the short path for a put with
        an event and no ``ttl``, ``expect`` >= 1, and guards that are at most
        one ``vacant`` compare (first) and ``holder`` compares on other keys
        (:func:`~accord.backends.base.short_put`); anything else goes through
        :meth:`txn`, and a refusal is decided by the general path inside the
        same transaction.
        """
        event = put.event
        key = put.key
        if not short_put(put, expect, guards) or event is None:
            return self.txn(put_if_compares(key, expect, guards), [put], failure)
        # short_put() allows one vacant compare, first, then holder compares.
        vacant = guards[:1] if guards and guards[0].target == "vacant" else ()
        holders = guards[len(vacant) :]
        insert = _put_if_sql(len(vacant), len(holders))
        version = expect + 1
        hash_ = value_hash(put.data)
        conn = self._conn()
        with self._writing(conn, "writing"):
            # The stamp is taken with the write lock held, as in txn(), so
            # event times never run backwards along the revisions.
            now = self.now()
            out = dict(event)
            out["time"] = iso_time(now)
            out.setdefault("version", version)
            out.setdefault("prev", expect)
            out.setdefault("hash", hash_)
            params: list[Any] = [_dumps_short_event(out), key, expect]
            for guard in vacant:
                params += _occupied_params(guard, now)
            for guard in holders:
                params += (guard.key, now, guard.value)
            # The compares are the INSERT's WHERE clause: the event row is
            # appended only if they hold, and its rev is the next rowid
            # (MAX(rev) + 1, as txn() numbers it). The body leaves rev out:
            # it is the row's key, and readers put it back.
            cur = conn.execute(insert, params)
            if cur.rowcount != 1:
                # Nothing was written. Decide again the general way inside
                # the same transaction (the lock is held, so nothing moved):
                # it takes the failure branch and records the refusal, and a
                # loser under contention holds the write lock once, not twice.
                compares = put_if_compares(key, expect, guards)
                return self._txn_locked(
                    conn, touched_keys(compares, [put], failure), compares, [put], failure
                )
            rev = cur.lastrowid
            assert rev is not None
            conn.execute(
                _UPDATE,
                (
                    put.kind,
                    put.data,
                    version,
                    rev,
                    put.author,
                    put.lamport,
                    put.clock,
                    False,
                    None,
                    rev,
                    key,
                ),
            )
        out["rev"] = rev
        return TxnResult(True, rev, {}, [out])

    def _txn_locked(
        self,
        conn: sqlite3.Connection,
        keys: list[str],
        compares: Sequence[Compare],
        success: Sequence[Op],
        failure: Sequence[Op],
    ) -> TxnResult:
        # One statement reads the touched rows and the revision: every
        # statement is a round trip through the sqlite3 module.
        rows = conn.execute(_select_touched(len(keys)), keys).fetchall()
        current: dict[str, Record | None] = dict.fromkeys(keys)
        heads: dict[str, int | None] = {}
        revision = 0
        for row in rows:
            if row[0] is None:
                revision = row[11] or 0
            else:
                current[row[0]] = _row_to_record(row)
                heads[row[0]] = row[10]
        existing = set(heads)
        now = self.now()

        def vacant(cmp: Compare, at: float) -> bool:
            return conn.execute(_OCCUPIED_ONE, _occupied_params(cmp, at)).fetchone() is None

        failed = first_failure(compares, current, now, vacant)
        ok = failed is None
        changes: list[dict[str, Any]] = []
        ops = success if ok else failure
        writes, events, new_revision = plan_ops(
            ops, current, revision, now, changes, None if failed is None else failed.refusal
        )
        change_ids = {id(e) for e in changes}
        # A purged row leaves no record for wait() to see; its revision's row
        # names the key instead, so a waiter on it still wakes.
        purged = {
            revision + 1 + i: op.key
            for i, op in enumerate(ops)
            if isinstance(op, Delete) and op.purge
        }
        event_rows: list[tuple[int, str | None, int | None, str | None]] = []
        # Every op consumed one revision; an op without an event still gets
        # its row (NULL body), because the revision is MAX(rev).
        rev = revision + 1
        for event in events:
            while rev < event["rev"]:
                event_rows.append((rev, purged.get(rev), None, None))
                rev += 1
            ekey: str | None = event.get("key")
            kprev = None
            if ekey is not None and id(event) in change_ids:
                kprev = heads.get(ekey)
                heads[ekey] = rev
            event_rows.append((rev, ekey, kprev, _dumps_event(event)))
            rev += 1
        while rev <= new_revision:
            event_rows.append((rev, purged.get(rev), None, None))
            rev += 1
        for key, rec in writes:
            if rec is None:
                conn.execute("DELETE FROM accord_records WHERE key = ?", (key,))
                existing.discard(key)
                continue
            # An UPDATE of the row in place is cheaper than INSERT OR REPLACE
            # (a delete plus an insert); we know which rows exist already
            # (several ops of one transaction may write one key).
            if key in existing:
                sql = _UPDATE
            else:
                sql = _INSERT
                existing.add(key)
            conn.execute(
                sql,
                (
                    rec.kind,
                    rec.data,
                    rec.version,
                    rec.revision,
                    rec.author,
                    rec.lamport,
                    rec.clock,
                    rec.deleted,
                    rec.expires,
                    heads.get(key),
                    key,
                ),
            )
        if len(event_rows) == 1:
            conn.execute(_INSERT_EVENT, event_rows[0])
        elif event_rows:
            conn.executemany(_INSERT_EVENT, event_rows)
        return TxnResult(ok, new_revision, current, events, failed)

    def history(
        self, since: int = 0, key: str | None = None, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        if key is None:
            sql = (
                "SELECT rev, body FROM accord_events WHERE rev > ? "
                "AND body IS NOT NULL ORDER BY rev LIMIT ?"
            )
        else:
            sql = (
                "SELECT rev, body FROM accord_events WHERE key = ? AND rev > ? "
                "AND body IS NOT NULL ORDER BY rev LIMIT ?"
            )

        def fetch(after: int, count: int) -> list[dict[str, Any]]:
            params = (after, count) if key is None else (key, after, count)
            try:
                rows = self._conn().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._translate(exc, "reading history") from exc
            out = []
            for rev, body in rows:
                event = json.loads(body)
                event["rev"] = rev  # the fast write path leaves it to the row
                out.append(event)
            return out

        return paged_history(fetch, since, limit)

    def changes(self, key: str) -> Iterator[dict[str, Any]]:
        conn = self._conn()
        try:
            row = conn.execute("SELECT erev FROM accord_records WHERE key = ?", (key,)).fetchone()
            rev = None if row is None else row[0]
            while rev is not None:
                found = conn.execute(
                    "SELECT kprev, body FROM accord_events WHERE rev = ?", (rev,)
                ).fetchone()
                if found is None:
                    return
                event = json.loads(found[1])
                event["rev"] = rev
                yield event
                rev = found[0]
        except sqlite3.Error as exc:
            raise self._translate(exc, f"reading the changes of {key!r}") from exc

    def wait(self, keys: Sequence[str], prefixes: Sequence[str], since: int, timeout: float) -> int:
        # SQLite has no notifications across processes. PRAGMA data_version is
        # a cheap per-connection counter that moves when another connection
        # commits, so the poll costs almost nothing until something changes;
        # only then do we look at the keys we care about.
        conn = self._conn()
        deadline = time.monotonic() + timeout
        delay = 0.001
        last_version = None
        while True:
            try:
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                if version != last_version:
                    last_version = version
                    revision = self.revision()
                    if revision > since and self._changed(conn, keys, prefixes, since):
                        return revision
            except sqlite3.Error as exc:
                raise self._translate(exc, "waiting for a change") from exc
            left = deadline - time.monotonic()
            if left <= 0:
                return self.revision()
            time.sleep(min(delay, left))
            delay = min(delay * 1.5, 0.02)

    def _changed(
        self, conn: sqlite3.Connection, keys: Sequence[str], prefixes: Sequence[str], since: int
    ) -> bool:
        for key in keys:
            row = conn.execute(
                "SELECT revision FROM accord_records WHERE key = ?", (key,)
            ).fetchone()
            if row is not None and row[0] > since:
                return True
            # No row: it may have been purged since; purges name their key in
            # a body-less history row (a range scan of the revisions since).
            if (
                row is None
                and conn.execute(
                    "SELECT 1 FROM accord_events WHERE rev > ? AND key = ? "
                    "AND body IS NULL LIMIT 1",
                    (since, key),
                ).fetchone()
            ):
                return True
        for prefix in prefixes:
            end = _prefix_end(prefix)
            row = conn.execute(
                "SELECT 1 FROM accord_records WHERE key >= ? AND key < ? AND revision > ? LIMIT 1",
                (prefix, end, since),
            ).fetchone()
            if row is not None:
                return True
            if conn.execute(
                "SELECT 1 FROM accord_events WHERE rev > ? AND key >= ? AND key < ? "
                "AND body IS NULL LIMIT 1",
                (since, prefix, end),
            ).fetchone():
                return True
        return False

    def purge_expired(self, prefix: str, before: float) -> int:
        conn = self._conn()
        with self._writing(conn, "purging expired records"):
            doomed = [
                row[0]
                for row in conn.execute(
                    "SELECT key FROM accord_records WHERE key >= ? AND key < ? "
                    "AND expires IS NOT NULL AND expires < ?",
                    (prefix, _prefix_end(prefix), before),
                )
            ]
            if doomed:
                conn.executemany("DELETE FROM accord_records WHERE key = ?", [(k,) for k in doomed])
                # Like a purge inside txn(): each removed row takes a
                # revision whose body-less history row names the key, so
                # wait() on that key (and only on it) wakes.
                rev = conn.execute(_MAX_REV).fetchone()[0] or 0
                conn.executemany(
                    _INSERT_EVENT,
                    [(rev + 1 + i, k, None, None) for i, k in enumerate(doomed)],
                )
        return len(doomed)

    def close(self) -> None:
        self._closed = True
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)
