"""accord's schema in PostgreSQL: created on first use, brought up to date.

The tables and server functions are in ``_pg_schema.sql``; :func:`migrate`
runs it when the schema is missing or its functions are older than this
accord's, once however many processes open the store at the same moment
(they wait on an advisory lock). Both faces run it before their pool opens:
the sync backend in its constructor, the async one in a worker thread
(``AsyncPostgresBackend.open``), so it is written once, as sync code: it runs
once per opened store and no coroutine waits on it.
"""

from __future__ import annotations

import hashlib
import time
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

from ..errors import BackendUnavailable
from ._pg_config import PgConfig
from ._pg_errors import connect_error, translate
from ._pg_sql import CONFIGURE

__all__ = ["SCHEMA_VERSION", "create", "load_schema_sql", "migrate", "schema_version"]

SCHEMA_VERSION = 1
"""The schema version this accord creates and understands."""

_LOCK_CLASS = 0x41434344  # "ACCD": the advisory lock class of schema migrations


def load_schema_sql() -> str:
    """The text of ``_pg_schema.sql``."""
    return resources.files(__package__).joinpath("_pg_schema.sql").read_text("utf-8")


def migrate(config: PgConfig) -> None:
    """Create or upgrade the schema: idempotent, and safe from many processes."""
    start = time.monotonic()
    while True:
        try:
            conn = psycopg.connect(config.conninfo, autocommit=True)
            break
        except psycopg.OperationalError as exc:
            # A server starting or stopping is worth waiting for, and a
            # refused connection briefly too (a restart takes a second or
            # two); anything else is a wrong URL or a server not there.
            text = str(exc)
            waited = time.monotonic() - start
            if (
                ("starting up" in text or "shutting down" in text) and waited < config.retry_timeout
            ) or ("Connection refused" in text and waited < min(3.0, config.retry_timeout)):
                time.sleep(0.2)
                continue
            raise connect_error(exc, config) from exc
    script = load_schema_sql()
    digest = hashlib.sha256(script.encode()).hexdigest()[:16]
    try:
        with conn:
            conn.execute(CONFIGURE)
            if schema_version(conn, config) == (SCHEMA_VERSION, digest):
                return
            with conn.transaction():
                # Two processes opening a new store at once: the second
                # waits here, then finds the schema done and does nothing.
                conn.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                    (_LOCK_CLASS, config.schema),
                )
                if schema_version(conn, config) == (SCHEMA_VERSION, digest):
                    return
                # The script is idempotent (IF NOT EXISTS, OR REPLACE): it
                # creates a new schema, and brings the functions of an
                # existing one of this version up to date. Later schema
                # versions add their steps here, each from version n to
                # n + 1, inside this one transaction.
                create(conn, config, script, digest)
    except psycopg.Error as exc:
        state = getattr(exc, "sqlstate", None)
        if state == "42501":
            raise BackendUnavailable(
                f"{config.where}: the database user may not create accord's schema "
                f"({str(exc).strip()}). Either let it create schemas once (GRANT CREATE ON "
                "DATABASE <db> TO <user>), or have an administrator run accord once with "
                f"a user that may, or create the schema for it: CREATE SCHEMA {config.schema} "
                "AUTHORIZATION <user>;",
                fate="not applied",
            ) from exc
        if isinstance(exc, psycopg.OperationalError):
            raise connect_error(exc, config) from exc
        raise translate(exc, config, "creating accord's schema", wrote=True) from exc


def schema_version(conn: psycopg.Connection[Any], config: PgConfig) -> tuple[int, str] | None:
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
        (config.schema,),
    ).fetchone()
    if exists is None:
        return None
    row = conn.execute(
        sql.SQL(
            "SELECT v.value, f.value FROM {s}.accord_meta v LEFT JOIN {s}.accord_meta f "
            "ON f.name = 'functions' WHERE v.name = 'schema_version'"
        ).format(s=sql.Identifier(config.schema))
    ).fetchone()
    if row is None:
        raise BackendUnavailable(
            f"{config.where}: the table accord_meta exists but holds no schema version, "
            "so this schema was not made by accord. Use another ?schema= name."
        )
    version = int(row[0])
    if version > SCHEMA_VERSION:
        raise BackendUnavailable(
            f"{config.where} was created by a newer accord (schema version {version}; "
            f"this accord knows up to {SCHEMA_VERSION}). Upgrade accord on this machine "
            "(pip install -U accord), or use another ?schema= for this version.",
            schema_version=version,
        )
    return version, str(row[1] or "")


def create(conn: psycopg.Connection[Any], config: PgConfig, script: str, digest: str) -> None:
    """Run the schema script (inside the caller's transaction) and record its version."""
    exists = conn.execute("SELECT to_regnamespace(%s)", (f'"{config.schema}"',)).fetchone()
    ident = sql.Identifier(config.schema).as_string(conn)
    if exists is None or exists[0] is None:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(config.schema)))
    script = script.replace("@s@", ident).replace(
        "@channel@", sql.Literal(config.channel).as_string(conn)
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
        ).format(sql.Identifier(config.schema)),
        (str(SCHEMA_VERSION), digest),
    )
