"""Every SQL statement the PostgreSQL backend sends, in one place.

The tables and the server functions (``accord_txn``, ``accord_put_if``,
``accord_purge``) are created by ``_pg_schema.sql`` (see ``_pg_schema.py``);
this module holds the statements that use them, rendered once per store
schema. No I/O: both faces of the backend send these same bytes.
"""

from __future__ import annotations

from psycopg import sql

__all__ = [
    "CLOCK",
    "COLUMNS",
    "CONFIGURE",
    "EVENT_COLUMNS",
    "PREFIX_END",
    "Statements",
    "listen",
    "listener_sql",
]

COLUMNS = "key, kind, data, version, revision, author, lamport, clock, deleted, expires"
"""The columns of a record row, in the order ``_pg_rows.record`` reads them."""
EVENT_COLUMNS = "rev, body, ts, version, prev, hash, expires"
"""The columns of a history row, in the order ``_pg_rows.event`` reads them."""
PREFIX_END = "\U0010ffff"
"""Appended to a prefix: the upper bound of a range scan of the keys under it."""

CLOCK = b"SELECT extract(epoch FROM clock_timestamp())::float8"
"""The database clock: the one clock all agents on all hosts share."""

CONFIGURE = b"SET default_transaction_isolation = 'read committed'"
"""Run on every new connection. accord_txn relies on Read Committed: after
waiting for the counter lock, each statement must see what the previous
writer committed. A server default of repeatable read or serializable would
turn every contended write into a serialization failure."""


def _render(template: str, schema: str) -> bytes:
    # Rendered to bytes once: psycopg then parses each query only once.
    return sql.SQL(template).format(s=sql.Identifier(schema)).as_bytes(None)


class Statements:
    """The statements of one store schema, as bytes ready to send."""

    def __init__(self, schema: str) -> None:
        self.txn = _render("SELECT * FROM {s}.accord_txn(%s::uuid, %s, %b::bytea[])", schema)
        self.put_if = _render(
            "SELECT * FROM {s}.accord_put_if(%s::uuid, %s, %s, %s, %s, %b, %s, %s, %s, %s, %s, "
            "%s, %s, %s::text[], %s::text[], %s::float8, %s, %s, %s)",
            schema,
        )
        self.get = _render("SELECT " + COLUMNS + " FROM {s}.accord_records WHERE key = %s", schema)
        self.scan = _render(
            "SELECT " + COLUMNS + " FROM {s}.accord_records WHERE key >= %s AND key < %s "
            "AND NOT deleted ORDER BY key LIMIT %s",
            schema,
        )
        self.revision = _render("SELECT rev FROM {s}.accord_counter WHERE id = 1", schema)
        self.history = _render(
            "SELECT " + EVENT_COLUMNS + " FROM {s}.accord_events "
            "WHERE rev > %s ORDER BY rev LIMIT %s",
            schema,
        )
        self.history_key = _render(
            "SELECT " + EVENT_COLUMNS + " FROM {s}.accord_events "
            "WHERE key = %s AND rev > %s ORDER BY rev LIMIT %s",
            schema,
        )
        self.changes = _render(
            "SELECT " + EVENT_COLUMNS + " FROM {s}.accord_events "
            "WHERE key = %s AND rev < %s AND change ORDER BY rev DESC LIMIT %s",
            schema,
        )
        # The revision now, and whether a watched record changed after
        # %(since)s (or records were purged after it).
        self.changed = _render(
            "SELECT c.rev, c.rev > %(since)s AND (c.purged > %(since)s "
            "OR EXISTS (SELECT 1 FROM {s}.accord_records r WHERE r.key = ANY (%(keys)s::text[]) "
            "AND r.revision > %(since)s) "
            "OR EXISTS (SELECT 1 FROM unnest(%(lo)s::text[], %(hi)s::text[]) AS p(lo, hi) "
            'JOIN {s}.accord_records r ON r.key >= p.lo COLLATE "C" '
            'AND r.key < p.hi COLLATE "C" WHERE r.revision > %(since)s)) '
            "FROM {s}.accord_counter c WHERE c.id = 1",
            schema,
        )
        self.expired = _render(
            "SELECT key FROM {s}.accord_records WHERE key >= %s AND key < %s "
            "AND expires IS NOT NULL AND expires < %s",
            schema,
        )
        self.purge = _render("SELECT {s}.accord_purge(%s::text[], %s::float8)", schema)
        self.sweep_tokens = _render(
            "DELETE FROM {s}.accord_tokens WHERE ts < extract(epoch FROM clock_timestamp()) - %s",
            schema,
        )


def listen(channel: str) -> sql.Composed:
    """``LISTEN`` on the store's channel."""
    return sql.SQL("LISTEN {}").format(sql.Identifier(channel))


def listener_sql(schema: str) -> tuple[list[sql.Composed], sql.Composed]:
    """The statements a LISTEN connection registers and unregisters with."""
    s = sql.Identifier(schema)
    register = [
        # Under the counter lock: a writer that committed before this
        # registration is seen by the waiters' table check that follows
        # it; a writer after it sees the registration and notifies.
        sql.SQL("SELECT 1 FROM {}.accord_counter WHERE id = 1 FOR UPDATE").format(s),
        sql.SQL(
            "DELETE FROM {}.accord_listeners WHERE pid NOT IN (SELECT pid FROM pg_stat_activity)"
        ).format(s),
        sql.SQL(
            "INSERT INTO {}.accord_listeners (pid, since) VALUES "
            "(pg_backend_pid(), extract(epoch FROM clock_timestamp())) "
            "ON CONFLICT (pid) DO NOTHING"
        ).format(s),
    ]
    unregister = sql.SQL("DELETE FROM {}.accord_listeners WHERE pid = pg_backend_pid()").format(s)
    return register, unregister
