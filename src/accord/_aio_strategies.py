"""``async with session.lease(...)`` on the async face.

Leases, queues and branches are native on the async face (their async
sources in :mod:`accord.strategies`, from which the sync face is
generated); :class:`Leasing` lets ``session.lease(key)`` be both awaited
and entered. Watch is one async source too, :mod:`accord._watch_async`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar

from .strategies._lease_async import AsyncLease, AsyncLeaseSet

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
