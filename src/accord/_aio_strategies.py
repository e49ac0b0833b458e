"""Leases on the async face.

Leases run on the session's sync twin in worker threads (the store's
thread-offload backend); these classes give their results the async face:
``async with`` for leases. Cancellation is safe: a cancelled :func:`acquire`
leaves the line (and releases a lease granted meanwhile). The queue and
branches are native: their async classes are in
:mod:`accord.strategies._queue_async` and :mod:`accord.strategies._branch_async`;
watch is one async source, :mod:`accord._watch_async`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from .errors import LeaseLost
from .strategies import lease as lease_mod
from .strategies.lease import Lease, LeaseSet

if TYPE_CHECKING:
    from ._session_async import AsyncSession

T = TypeVar("T")


async def _finish(future: asyncio.Future[T], undo: Callable[[T], None]) -> T:
    """Await ``future`` (a call running in a worker thread); if the caller is
    cancelled meanwhile, wait for the call to end and ``undo`` its result in
    a thread, then let the cancellation through."""
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            result = await future
            await asyncio.to_thread(undo, result)
        raise


# --- leases -------------------------------------------------------------------------


class _AsyncReleasedOnExit:
    async def release(self) -> None:  # pragma: no cover - both subclasses define it
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            await self.release()
        except LeaseLost:
            if exc_type is None:
                raise


class AsyncLease(_AsyncReleasedOnExit):
    """A granted lease, on the async face: ``async with await session.lease(key):``.

    The same lease as :class:`accord.Lease` (``sync``); its calls that touch
    the store are awaited. You *must* end it: ``await lease.release()``,
    leave the ``async with`` block, or let it expire.
    """

    def __init__(self, session: AsyncSession, lease: Lease) -> None:
        self.session = session
        self.sync = lease

    def __repr__(self) -> str:
        return "Async" + repr(self.sync)

    @property
    def key(self) -> str:
        return self.sync.key

    @property
    def token(self) -> int:
        """The fencing token: strictly increasing per key."""
        return self.sync.token

    @property
    def mode(self) -> str:
        return self.sync.mode

    @property
    def agent(self) -> str:
        return self.sync.agent

    @property
    def ttl(self) -> float:
        return self.sync.ttl

    @property
    def expires(self) -> float:
        return self.sync.expires

    @property
    def record_key(self) -> str:
        return self.sync.record_key

    @property
    def keepalive(self) -> bool:
        return self.sync.keepalive

    @property
    def lost(self) -> bool:
        return self.sync.lost

    async def remaining(self) -> float:
        """Seconds left before the deadline, on the store's clock (may be negative)."""
        return await asyncio.to_thread(self.sync.remaining)

    async def held(self) -> bool:
        """Ask the store whether this is still a live lease of this agent."""
        return await asyncio.to_thread(lambda: self.sync.held)

    async def renew(self, ttl: float | None = None) -> float:
        """See :meth:`accord.Lease.renew`."""
        return await asyncio.to_thread(self.sync.renew, ttl)

    async def ensure_held(self) -> None:
        """See :meth:`accord.Lease.ensure_held`."""
        await asyncio.to_thread(self.sync.ensure_held)

    async def start_keepalive(self) -> None:
        """See :meth:`accord.Lease.start_keepalive` (a background thread renews it)."""
        await asyncio.to_thread(self.sync.start_keepalive)

    async def release(self) -> None:
        """See :meth:`accord.Lease.release`. Runs to its end even if cancelled."""
        await asyncio.shield(asyncio.to_thread(self.sync.release))


class AsyncLeaseSet(_AsyncReleasedOnExit):
    """Leases on several keys (``session.lease_all``), on the async face."""

    def __init__(self, session: AsyncSession, leases: LeaseSet) -> None:
        self.session = session
        self.sync = leases
        self._leases = [AsyncLease(session, lease) for lease in leases]

    def __repr__(self) -> str:
        return "Async" + repr(self.sync)

    def __getitem__(self, key: str) -> AsyncLease:
        for lease in self._leases:
            if lease.key == key:
                return lease
        self.sync[key]  # raises the sync face's error
        raise KeyError(key)  # pragma: no cover

    def __iter__(self) -> Iterator[AsyncLease]:
        return iter(self._leases)

    def __len__(self) -> int:
        return len(self._leases)

    def __contains__(self, key: object) -> bool:
        return key in self.sync

    @property
    def keys(self) -> list[str]:
        return self.sync.keys

    @property
    def tokens(self) -> dict[str, int]:
        return self.sync.tokens

    async def renew(self, ttl: float | None = None) -> None:
        await asyncio.to_thread(self.sync.renew, ttl)

    async def ensure_held(self) -> None:
        await asyncio.to_thread(self.sync.ensure_held)

    async def release(self) -> None:
        await asyncio.shield(asyncio.to_thread(self.sync.release))


L = TypeVar("L", AsyncLease, AsyncLeaseSet)


class Leasing(Generic[L]):
    """What ``session.lease(...)`` returns on the async face: ``async with
    session.lease(key) as lease:`` acquires on entry and releases on exit;
    ``lease = await session.lease(key)`` just acquires."""

    def __init__(self, acquire: Callable[[], Awaitable[L]]) -> None:
        self._acquire: Callable[[], Awaitable[L]] = acquire
        self._lease: L | None = None

    def __await__(self) -> Generator[Any, None, L]:
        return self._acquire().__await__()

    async def __aenter__(self) -> L:
        self._lease = await self._acquire()
        return self._lease

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self._lease is not None
        await self._lease.__aexit__(exc_type, exc, tb)


def _release_quietly(lease: Lease | LeaseSet) -> None:
    with contextlib.suppress(Exception):
        lease.release()


async def acquire(
    session: AsyncSession,
    key: str,
    *,
    ttl: float,
    wait: float,
    mode: str,
    keepalive: bool,
) -> AsyncLease:
    """``session.acquire`` on the async face; a cancelled call leaves the line."""
    cancel = threading.Event()
    twin = session.sync
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(
        None,
        lambda: lease_mod.acquire(
            twin, key, ttl=ttl, wait=wait, mode=mode, keepalive=keepalive, cancel=cancel
        ),
    )
    try:
        lease = await asyncio.shield(future)
    except asyncio.CancelledError:
        # Leave the line: the acquirer sees the event within CANCEL_LATENCY,
        # gives up its ticket and raises; a grant that won the race is
        # released. Either way nothing is held when the cancellation goes on.
        cancel.set()
        with contextlib.suppress(BaseException):
            granted = await future
            await asyncio.to_thread(_release_quietly, granted)
        raise
    return AsyncLease(session, lease)


async def acquire_all(
    session: AsyncSession,
    keys: Sequence[str],
    *,
    ttl: float,
    wait: float,
    mode: str,
    keepalive: bool,
) -> AsyncLeaseSet:
    """``session.lease_all`` on the async face; a cancelled call releases what it took."""
    twin = session.sync
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(
        None,
        lambda: twin.lease_all(keys, ttl=ttl, wait=wait, mode=mode, keepalive=keepalive),
    )
    taken: LeaseSet = await _finish(future, _release_quietly)
    return AsyncLeaseSet(session, taken)
