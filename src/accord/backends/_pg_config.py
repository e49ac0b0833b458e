"""A PostgreSQL URL read into accord's options and libpq's connection string.

No I/O: both faces of the backend (``postgres.py`` and ``postgres_async.py``)
and the schema migration (``_pg_schema.py``) start from a :class:`PgConfig`.
The options are documented in ``postgres.py`` and docs/postgres.md.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ..errors import UsageError

__all__ = ["DEFAULT_SCHEMA", "OPTIONS", "PgConfig", "channel_name", "parse", "redact"]

DEFAULT_SCHEMA = "accord"
OPTIONS = ("schema", "pool_size", "retry_timeout", "poll")
"""accord's own query options; every other one goes to libpq."""

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True, slots=True)
class PgConfig:
    """What a PostgreSQL URL says: where to connect and accord's options."""

    url: str
    """The URL as given (it may hold a password: show :attr:`shown`)."""
    shown: str
    """The URL with any password replaced by ``***``, for messages."""
    conninfo: str
    """libpq's connection string: the URL without accord's options, with
    ``connect_timeout`` and ``application_name`` defaults."""
    schema: str
    pool_size: int
    retry_timeout: float
    poll: float

    @property
    def channel(self) -> str:
        """The NOTIFY channel of this schema."""
        return channel_name(self.schema)

    @property
    def where(self) -> str:
        """The store, for messages."""
        return f"PostgreSQL {self.shown} (schema {self.schema!r})"


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def channel_name(schema: str) -> str:
    """The NOTIFY channel of ``schema`` (an identifier of at most 63 bytes)."""
    name = "accord_" + schema
    if len(name) > 63:
        name = "accord_" + hashlib.sha256(schema.encode()).hexdigest()[:32]
    return name


def parse(url: str) -> PgConfig:
    """Read ``url``; a :class:`UsageError` says what is wrong with it."""
    shown = redact(url)
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise UsageError(
            f"{shown!r} is not a PostgreSQL URL. Use "
            "postgresql://user@host:5432/dbname?schema=accord."
        )
    options = {"schema": DEFAULT_SCHEMA, "pool_size": "8", "retry_timeout": "30", "poll": "1"}
    passthrough: list[tuple[str, str]] = []
    given: set[str] = set()
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in OPTIONS:
            if name in given and options[name] != value:
                raise UsageError(
                    f"The option {name} is given twice in {shown!r} "
                    f"({options[name]!r} and {value!r}): give it once."
                )
            given.add(name)
            options[name] = value
        else:
            passthrough.append((name, value))
    schema = options["schema"]
    if not _SCHEMA_NAME.match(schema) or schema.lower().startswith("pg_"):
        raise UsageError(
            f"Invalid schema name {schema!r} in {shown!r}: use 1 to 63 letters, "
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
                f"Invalid {name}={options[name]!r} in {shown!r}: use a number "
                + (
                    "(a whole number of connections, at least 1)."
                    if name == "pool_size"
                    else f"of seconds (finite), at least {low:g}."
                )
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
            f"Invalid PostgreSQL URL {shown!r}: {str(exc).strip()}. accord's own "
            f"options are {', '.join(OPTIONS)}; anything else must be a libpq connection "
            "parameter such as sslmode or connect_timeout."
        ) from exc
    return PgConfig(
        url=url,
        shown=shown,
        conninfo=conninfo,
        schema=schema,
        pool_size=int(float(options["pool_size"])),
        retry_timeout=float(options["retry_timeout"]),
        poll=float(options["poll"]),
    )
