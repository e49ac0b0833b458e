"""psycopg's errors in accord's words, and the rule of what may be retried.

No I/O, shared by both faces of the PostgreSQL backend. The backend's
``_run`` (written once, in ``postgres_async.py``) sends a statement and,
when it fails, asks :func:`transient` whether to send it again; an error that
is not transient leaves through :func:`translate` (or
:func:`compare_error`), one that stayed transient past ``retry_timeout``
through :func:`gave_up`. Every message says what happened to the write
(its ``fate``) and what to do.
"""

from __future__ import annotations

import random
from typing import Literal
from urllib.parse import urlsplit

import psycopg

from ..errors import BackendUnavailable, UsageError
from ._pg_config import PgConfig

__all__ = [
    "compare_error",
    "connect_error",
    "connect_problem",
    "first_line",
    "gave_up",
    "is_connection_loss",
    "retry_delay",
    "transient",
    "translate",
]


def first_line(exc: BaseException) -> str:
    """The first line of an error's text (its class name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_connection_loss(exc: psycopg.Error) -> bool:
    """Whether ``exc`` means the connection went away (the server restarted,
    the network dropped): what was sent on it may or may not have committed."""
    state = getattr(exc, "sqlstate", None) or ""
    if state.startswith("08") or state in ("57P01", "57P02", "57P03"):
        return True
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) and not state


def transient(exc: psycopg.Error) -> Literal["rolled back", "lost"] | None:
    """Whether a failed statement may be sent again, and why.

    ``"rolled back"``: a serialization failure or deadlock, nothing was
    applied. ``"lost"``: the connection, so a write's fate is in doubt until
    its repeat (with the same transaction token) reports it. None: the
    error is final.
    """
    state = getattr(exc, "sqlstate", None) or ""
    if state in ("40001", "40P01"):
        return "rolled back"
    if is_connection_loss(exc):
        return "lost"
    return None


def retry_delay(attempt: int, left: float) -> float:
    """Seconds to sleep before attempt ``attempt + 1`` (jittered, growing,
    at most a second, never past the deadline ``left`` seconds away)."""
    return min(left, random.uniform(0, min(1.0, 0.02 * 2**attempt)))


def compare_error(exc: psycopg.Error) -> UsageError | None:
    """The UsageError of a value compare the server could not order
    (``AC001``, raised by accord's functions), else None."""
    if (getattr(exc, "sqlstate", None) or "") != "AC001":
        return None
    return UsageError(
        f"Cannot compare these values: {first_line(exc)}. "
        "Ordering compares (< <= > >=) on values work on two numbers, two "
        "strings or two byte strings; == and != work on any values."
    )


def translate(
    exc: psycopg.Error, config: PgConfig, doing: str, *, wrote: bool
) -> BackendUnavailable:
    """Map a psycopg error that ended an operation to the accord tree."""
    state = getattr(exc, "sqlstate", None) or ""
    text = first_line(exc)
    schema = config.schema
    nothing = " Nothing was written." if wrote else ""
    if state == "42501":
        hint = (
            f"The database user lacks a permission on schema {schema!r}. Grant it, "
            f"as the schema owner: GRANT USAGE ON SCHEMA {schema} TO <user>; GRANT "
            f"SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO "
            f"<user>; GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} TO <user>."
        )
    elif state == "25006":
        hint = (
            "The server is read-only (a standby?): point the URL at the primary, or add "
            "target_session_attrs=read-write with every host listed."
        )
    elif state in ("42P01", "42883", "3F000"):
        hint = (
            f"accord's tables or functions in schema {schema!r} are missing (dropped "
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
        f"{config.where} failed while {doing}: {text}.{nothing} {hint}",
        fate="not applied" if wrote else None,
    )


def connect_problem(exc: psycopg.Error, config: PgConfig) -> str:
    """What went wrong connecting, and what to do about it."""
    text = str(exc).strip()
    parts = urlsplit(config.url)
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
            "The server refused the password: fix user and password in the URL (or in ~/.pgpass)."
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


def connect_error(exc: psycopg.Error, config: PgConfig) -> BackendUnavailable:
    """A clear message for a connection that could not be made."""
    return BackendUnavailable(
        f"Cannot connect to {config.where}: {connect_problem(exc, config)}",
        fate="not applied",
    )


def gave_up(
    reason: str, config: PgConfig, doing: str, *, write: bool, in_doubt: bool
) -> BackendUnavailable:
    """The error of an operation that stayed unreachable for ``retry_timeout``
    (``reason``: why, in words), with the fate of its write."""
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
        f"{config.where} was unreachable for {config.retry_timeout:g} s while {doing} "
        f"({reason}). {tail}",
        fate=fate,
    )
