"""Open a store by URL, and the Store object agents share.

``accord.open()`` picks a backend from the URL scheme, as tooz picks a
driver: ``memory://``, ``sqlite:///path`` and ``postgresql://...``. Without a
URL it uses ``ACCORD_URL``, else the SQLite file ``./.accord/state.db``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import params
from ._core.write import Explain, Guard, Hook
from ._writepath import WritePath
from .backends.base import Backend
from .errors import (
    BackendUnavailable,
    UsageError,
    argument,
    call,
    var,
)
from .keys import has_surrogate, validate_prefix
from .records import Event
from .session import Session

if TYPE_CHECKING:
    from .records import Put  # noqa: F401
    from .strategies.branch import Branch, Merge

DEFAULT_URL = "sqlite:///.accord/state.db"
DEFAULT_MAX_VALUE_SIZE = 16 * 1024 * 1024
DEFAULT_IDEMPOTENCY_WINDOW = 24 * 3600.0

__all__ = ["DEFAULT_URL", "Explain", "Guard", "Hook", "Store", "open"]


def open(
    url: str | None = None,
    *,
    manifest: str | os.PathLike[str] | None = None,
    max_value_size: int = DEFAULT_MAX_VALUE_SIZE,
    record_reads: bool = False,
    idempotency_window: float = DEFAULT_IDEMPOTENCY_WINDOW,
    clock: Callable[[], float] | None = None,
) -> Store:
    """Open the store at ``url`` and return a :class:`Store`.

    ``url`` defaults to ``ACCORD_URL``, else ``sqlite:///.accord/state.db``.
    ``manifest`` (or ``ACCORD_MANIFEST``) names an accord.toml whose policy
    the store enforces. ``max_value_size`` (bytes, default 16 MiB) refuses
    larger values with :class:`ValueTooLarge`. ``record_reads`` appends a
    history event for every read (off by default, so reads stay reads).
    ``idempotency_window`` is how long, in seconds, an idempotency key is
    remembered (default 24 hours). ``clock`` replaces the store clock of the
    memory backend (simulation only).

    You *must* close the store (``store.close()`` or ``with``) when done.
    """
    # Checked before anything is opened: a bad argument leaves no connection behind.
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
    backend = _backend_for(url, clock)
    store = Store(
        backend,
        max_value_size=max_value_size,
        record_reads=record_reads,
        idempotency_window=idempotency_window,
    )
    if policy is not None:
        policy.install(store)
    return store


def _backend_for(url: str, clock: Callable[[], float] | None) -> Backend:
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


class Store:
    """A versioned store shared by agents. Get one with :func:`accord.open`.

    A Store and its sessions may be used from several threads at once.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        max_value_size: int = DEFAULT_MAX_VALUE_SIZE,
        record_reads: bool = False,
        idempotency_window: float = DEFAULT_IDEMPOTENCY_WINDOW,
    ) -> None:
        max_value_size = params.count(
            max_value_size, "max_value_size", minimum=1, example=str(DEFAULT_MAX_VALUE_SIZE)
        )
        idempotency_window = params.seconds(
            idempotency_window,
            "idempotency_window",
            above=True,
            example="86400",
            hint="It is how long an idempotency key is remembered.",
        )
        self.backend = backend
        self.record_reads = params.flag(record_reads, "record_reads")
        self.idempotency_window = idempotency_window
        self.policy: Any = None
        self.writes = WritePath(backend, max_value_size=max_value_size)
        """The one write path of this store: its hooks, guards and commit."""
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        # The lease guard first: a write refused by a live lease and by
        # something else is told about the lease, which it must wait out.
        __import__("accord.strategies.lease", fromlist=["install"]).install(self)
        __import__("accord.strategies.queue", fromlist=["install"]).install(self)

    @property
    def max_value_size(self) -> int:
        """The largest value, in bytes, this store accepts."""
        return self.writes.max_value_size

    @property
    def url(self) -> str:
        return self.backend.url

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the backend's connections. The store is unusable afterwards."""
        self.backend.close()

    # --- sessions and hooks --------------------------------------------------

    def session(self, agent: str) -> Session:
        """The session of ``agent`` (one per agent name and store object).

        Agent names are 1 to 128 characters without control characters. A
        store opened with a manifest that lists agents refuses unknown ones
        with :class:`PolicyViolation`.
        """
        if (
            not isinstance(agent, str)
            or not agent.strip()
            or len(agent) > 128
            or any(ord(c) < 32 for c in agent)
            or has_surrogate(agent)
        ):
            raise UsageError(
                f"Invalid agent name {agent!r}: use 1 to 128 printable characters, such as "
                f"'agent-a'. Set it with {call('store.session', var('name'))}."
            )
        if self.policy is not None:
            self.policy.check_agent(agent)
        with self._lock:
            session = self._sessions.get(agent)
            if session is None:
                session = self._sessions[agent] = Session(self, agent)
            return session

    def add_hook(self, hook: Hook) -> None:
        """Run ``hook(operation)`` before every session operation; it may raise."""
        self.writes.add_hook(hook)

    def add_guard(self, guard: Guard, explain: Explain) -> None:
        """Add compares to every write of an agent key, on every write path.

        ``guard(session, key, token)`` returns the compares; every path that
        writes or deletes a key (a session's write and delete, a queue
        writer's accept and group decision, a merge commit) commits through
        ``store.writes.commit``, which puts them in the write's own
        transaction. ``token`` is the fencing token the write carries (None
        without a lease). When a write is refused,
        ``explain(session, key, token, result)`` runs before the path's own
        explanation and raises the guard's error if one of its compares is
        what refused it (``result.failed``).
        """
        self.writes.add_guard(guard, explain)

    # --- history -------------------------------------------------------------

    def history(self, key: str | None = None, since: int = 0) -> Iterator[Event]:
        """Every history event with revision > ``since``, oldest first."""
        since = params.count(since, "since", example="0")
        if key is not None:
            validate_prefix(key)
        return (Event.from_dict(data) for data in self.backend.history(since=since, key=key))

    def export_history(self, path: str | os.PathLike[str], *, since: int = 0) -> int:
        """Write the history as JSONL (see docs/history.md); returns the count."""
        since = params.count(since, "since", example="0")
        count = 0
        target = Path(path)
        with target.open("w", encoding="utf-8") as out:
            for data in self.backend.history(since=since):
                out.write(json.dumps(_ordered(data), separators=(", ", ": ")) + "\n")
                count += 1
        return count

    def revision(self) -> int:
        """The store revision now (strictly increasing)."""
        return self.backend.revision()

    # --- branches (isolated copies) -------------------------------------------

    def branches(self, key: str) -> list[Branch]:
        """Every open branch of ``key``."""
        from .strategies import branch

        found: list[Branch] = branch.branches(self, key)
        return found

    def merge(
        self,
        key: str,
        branches: Sequence[Branch],
        resolve: Callable[..., Any] | None = None,
        *,
        agent: str | None = None,
    ) -> Merge:
        """Merge ``branches`` of ``key`` against their common base."""
        from .strategies import branch

        return branch.merge(self, key, branches, resolve=resolve, agent=agent)


def _ordered(data: dict[str, Any]) -> dict[str, Any]:
    from .records import EVENT_FIELDS

    out = {name: data.get(name) for name in EVENT_FIELDS}
    for name, value in data.items():
        if name not in out:
            out[name] = value
    return out
