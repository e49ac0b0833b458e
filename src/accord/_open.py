"""Opening a store by URL: the arguments, the manifest, and the backend.

Both faces open stores the same way (``accord.open`` and
``accord.aio.open``); this is where a URL becomes a backend, as tooz picks a
driver from the URL scheme.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from . import params
from .backends.base import AsyncBackend, Backend
from .errors import BackendUnavailable, UsageError, argument

DEFAULT_URL = "sqlite:///.accord/state.db"
DEFAULT_MAX_VALUE_SIZE = 16 * 1024 * 1024
DEFAULT_IDEMPOTENCY_WINDOW = 24 * 3600.0


def prepare(
    url: str | None,
    manifest: str | os.PathLike[str] | None,
    max_value_size: int,
    record_reads: bool,
    idempotency_window: float,
    clock: Callable[[], float] | None,
) -> tuple[str, Any]:
    """Check ``open()``'s arguments and load the manifest: ``(url, policy or None)``.

    Checked before anything is opened: a bad argument leaves no connection behind.
    """
    if clock is not None and not callable(clock):
        raise UsageError(
            f"clock must be a function returning seconds (such as time.time), not {clock!r}."
        )
    params.count(max_value_size, "max_value_size", minimum=1, example=str(DEFAULT_MAX_VALUE_SIZE))
    params.flag(record_reads, "record_reads")
    params.seconds(idempotency_window, "idempotency_window", above=True, example="86400")
    manifest_path = manifest if manifest is not None else os.environ.get("ACCORD_MANIFEST")
    policy = None
    if manifest_path:
        from .policy import load_policy

        policy = load_policy(manifest_path)
        if url is None and policy.store_url:
            url = policy.store_url
    if url is None:
        url = os.environ.get("ACCORD_URL") or DEFAULT_URL
    return url, policy


def backend_for(url: str, clock: Callable[[], float] | None) -> Backend:
    if not isinstance(url, str) or "://" not in url:
        raise UsageError(
            f"Unknown store URL {url!r}. Use memory://, sqlite:///path/state.db or "
            "postgresql://user@host:5432/db."
        )
    scheme = url.split("://", 1)[0].lower()
    _check_url_syntax(url, scheme)
    if scheme == "memory":
        from .backends.memory import MemoryBackend

        if url.split("://", 1)[1]:
            raise UsageError(
                f"The memory store takes no name or options ({url!r}): every memory:// store "
                "is new and empty, and lives as long as the process. Use memory://, or a "
                "sqlite:///path/state.db store to share state between processes."
            )
        return MemoryBackend(url, clock=clock)
    if clock is not None:
        raise UsageError(
            f"{argument('clock')} replaces the clock of memory:// stores only; open other "
            "stores without it."
        )
    if scheme == "sqlite":
        from .backends.sqlite import SQLiteBackend

        return SQLiteBackend(url)
    if scheme in ("postgresql", "postgres"):
        try:
            from .backends.postgres import PostgresBackend
        except ImportError as exc:
            missing = (exc.name or "").split(".")[0]
            package = {"psycopg": "psycopg", "psycopg_pool": "psycopg-pool"}.get(missing)
            if package is None:
                raise
            raise BackendUnavailable(
                f"The PostgreSQL backend needs the package {package!r}, which is not "
                f"installed: pip install 'accord[postgres]' (it brings psycopg 3 and "
                "psycopg-pool)."
            ) from exc
        backend: Backend = PostgresBackend(url)
        return backend
    raise UsageError(
        f"Unknown store URL scheme {scheme!r} in {url!r}. Use memory://, "
        "sqlite:///path/state.db or postgresql://user@host:5432/db."
    )


def _check_url_syntax(url: str, scheme: str) -> None:
    """Refuse a URL that cannot be parsed at all, before any backend reads it."""
    from urllib.parse import urlsplit

    try:
        urlsplit(url)
    except ValueError as exc:
        shown = url if scheme not in ("postgresql", "postgres") else _redacted(url)
        raise UsageError(
            f"Cannot parse the store URL {shown!r}: {exc}. Use memory://, "
            "sqlite:///path/state.db or postgresql://user@host:5432/db (put an IPv6 host in "
            "brackets, [::1], and percent-encode special characters in a password)."
        ) from exc


def _redacted(url: str) -> str:
    """``url`` with whatever sits between '://' and the last '@' (the user and
    any password) replaced, for messages about URLs that cannot be parsed."""
    head, sep, rest = url.partition("://")
    if "@" not in rest.split("/", 1)[0]:
        return url
    return f"{head}{sep}***@{rest.split('@')[-1]}"


async def async_backend_for(url: str, clock: Callable[[], float] | None) -> AsyncBackend:
    """The AsyncBackend for ``url``: PostgreSQL natively (psycopg's async pool,
    ``LISTEN`` on the loop); SQLite and memory through the thread-offload
    adapter (sqlite3 blocks)."""
    import asyncio

    from .backends.thread import ThreadBackend

    scheme = url.split("://", 1)[0].lower() if isinstance(url, str) else ""
    if scheme in ("postgresql", "postgres") and clock is None:
        try:
            from .backends.postgres_async import AsyncPostgresBackend
        except ImportError:
            pass  # backend_for below says what is missing
        else:
            _check_url_syntax(url, scheme)
            return await AsyncPostgresBackend.open(url)
    # Opening may create a file or a schema: off the event loop.
    return ThreadBackend(await asyncio.to_thread(backend_for, url, clock))
