# WARNING: generated from src/accord/_store_async.py by tools/async_to_sync.py; do not edit.
# Edit the async source and run: .venv/bin/python tools/async_to_sync.py
"""Open a store by URL, and the Store object agents share.

``accord.open()`` picks a backend from the URL scheme, as tooz picks a
driver: ``memory://``, ``sqlite:///path`` and ``postgresql://...``. Without a
URL it uses ``ACCORD_URL``, else the SQLite file ``./.accord/state.db``.
``accord.aio.open()`` opens the same stores for asyncio.
"""

from __future__ import annotations

import inspect
import json
import os
import random as _random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import params
from ._core.write import Explain, Guard, Hook
from ._open import DEFAULT_IDEMPOTENCY_WINDOW, DEFAULT_MAX_VALUE_SIZE, DEFAULT_URL, backend_for
from ._writepath import WritePath
from .backends.base import Backend
from .errors import UsageError, call, var
from .keys import has_surrogate, validate_prefix
from .records import EVENT_FIELDS, Event
from .session import Session

if TYPE_CHECKING:
    from .strategies.branch import Branch, Merge

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
    from ._open import prepare

    url, policy = prepare(url, manifest, max_value_size, record_reads, idempotency_window, clock)
    backend = backend_for(url, clock)
    store = Store(
        backend,
        max_value_size=max_value_size,
        record_reads=record_reads,
        idempotency_window=idempotency_window,
    )
    if policy is not None:
        policy.install(store)
    return store


class Store:
    """A versioned store shared by agents. Get one with ``accord.open()``
    (``await accord.aio.open()`` for the async face).

    A Store and its sessions may be used from several threads at once.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        max_value_size: int = DEFAULT_MAX_VALUE_SIZE,
        record_reads: bool = False,
        idempotency_window: float = DEFAULT_IDEMPOTENCY_WINDOW,
        sleep: Callable[[float], Any] | None = None,
        random: Callable[[], float] | None = None,
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
        self.sleep: Callable[[float], Any] = time.sleep if sleep is None else sleep
        """How the write path sleeps (``update()``'s backoff): ``asyncio.sleep``
        by default; a simulation passes its virtual clock's sleep."""
        self.random: Callable[[], float] = _random.random if random is None else random
        """Where the write path's jitter comes from (uniform in [0, 1)); a
        simulation passes a seeded one, so a run replays exactly."""
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.policy: Any = None
        """The manifest's policy this store enforces (``Policy.install``), or None."""
        self.writes = WritePath(backend, max_value_size=max_value_size)
        """The one write path of this store: its hooks, guards and commit."""
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
        """Run ``hook(operation)`` before every session operation; it may raise.

        On the async face ``hook`` may be a coroutine function, awaited with
        the async session (see :class:`accord._core.write.Guards`).
        """
        _refuse_coroutine(hook, "add_hook")
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
        what refused it (``result.failed``). On the async face ``explain`` may
        be a coroutine function, awaited with the async session; adding a
        guard that is already here gives it the explanation of that kind
        (see :class:`accord._core.write.Guards`).
        """
        _refuse_coroutine(explain, "add_guard")
        self.writes.add_guard(guard, explain)

    # --- history -------------------------------------------------------------

    def history(self, key: str | None = None, since: int = 0) -> Iterator[Event]:
        """Every history event with revision > ``since``, oldest first."""
        since = params.count(since, "since", example="0")
        if key is not None:
            validate_prefix(key)
        return _events(self.backend.history(since=since, key=key))

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

        return branch.branches(self, key)

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


def _refuse_coroutine(fn: Any, method: str) -> None:
    if inspect.iscoroutinefunction(fn):
        raise UsageError(
            f"{fn.__qualname__} is a coroutine function: a sync Store cannot await it. "
            f"Add it with {call('store.' + method, var('fn'))} on a store opened with "
            f"{call('accord.aio.open', var('url'))}, or pass a plain function."
        )


def _events(source: Iterator[dict[str, Any]]) -> Iterator[Event]:
    for data in source:
        yield Event.from_dict(data)


def _ordered(data: dict[str, Any]) -> dict[str, Any]:
    out = {name: data.get(name) for name in EVENT_FIELDS}
    for name, value in data.items():
        if name not in out:
            out[name] = value
    return out
