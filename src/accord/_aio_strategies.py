"""``async with session.lease(...)`` and ``session.watch(...)`` on the async face.

Leases, queues and branches are native on the async face (their async
sources in :mod:`accord.strategies`, from which the sync face is
generated); :class:`Leasing` lets ``session.lease(key)`` be both awaited
and entered. ``watch`` still runs the sync watch on the session's twin.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import params
from .backends.base import CLOSED
from .errors import BackendUnavailable, UsageError
from .strategies._lease_async import AsyncLease, AsyncLeaseSet

if TYPE_CHECKING:
    from ._session_async import AsyncSession
    from .watch import WatchEvent


# --- leases ---------------------------------------------------------------------------


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


# --- watch ---------------------------------------------------------------------------


def watch(
    session: AsyncSession,
    key_or_prefix: str,
    since: int | None = None,
    *,
    prefix: bool = False,
    timeout: float | None = None,
    stop: Any = None,
    retry_timeout: float = 30.0,
) -> Watching:
    """``session.watch`` on the async face: :func:`accord.watch.watch` with
    awaits, on the same :class:`~accord.watch.WatchState` (so the same
    events, in the same order, none skipped, none twice). Arguments are
    checked at the call; the store is first read at the first step. ``stop``
    is an ``asyncio.Event`` or a ``threading.Event``. Cancelling the ``async
    for`` loses nothing: resume with the revision of the last event taken."""
    from . import watch as watch_mod

    if timeout is not None:
        timeout = params.seconds(timeout, "timeout", example="30")
    retry_timeout = params.seconds(retry_timeout, "retry_timeout", example="30")
    if stop is not None and not (hasattr(stop, "is_set") and callable(stop.is_set)):
        raise UsageError(
            f"stop must be an asyncio.Event or a threading.Event (or None), not {stop!r}. "
            "Nothing was changed."
        )
    # Checked now (a start of 0 stands in for "the revision now" until it is
    # read: at ``await``, else at the first step).
    watch_mod.WatchState.open(key_or_prefix, 0 if since is None else since, prefix, 0)
    return Watching(session, key_or_prefix, since, prefix, timeout, stop, retry_timeout)


class Watching:
    """What ``session.watch(...)`` returns on the async face: ``async for`` it.

    With ``since=None`` the watch starts at the store revision when it is
    first read: ``await session.watch(key)`` reads it at once (as the sync
    call does) and gives the iterator; a bare ``async for`` reads it at its
    first step.
    """

    def __init__(
        self,
        session: AsyncSession,
        target: str,
        since: int | None,
        prefix: bool,
        timeout: float | None,
        stop: Any,
        retry_timeout: float,
    ) -> None:
        self._args = (session, target, since, prefix, timeout, stop, retry_timeout)
        self._steps: AsyncIterator[WatchEvent] | None = None

    async def _open(self) -> Watching:
        if self._steps is None:
            session, target, since, prefix, timeout, stop, retry_timeout = self._args
            if since is None:
                since = await session.store.backend.revision()
            self._steps = _watch(session, target, since, prefix, timeout, stop, retry_timeout)
        return self

    def __await__(self) -> Generator[Any, None, Watching]:
        return self._open().__await__()

    def __aiter__(self) -> Watching:
        return self

    async def __anext__(self) -> WatchEvent:
        await self._open()
        assert self._steps is not None
        return await self._steps.__anext__()

    async def aclose(self) -> None:
        """End the watch (what leaving an ``async for`` early does, at once)."""
        if self._steps is not None:
            aclose = getattr(self._steps, "aclose", None)
            if aclose is not None:
                await aclose()


async def _watch(
    session: AsyncSession,
    target: str,
    since: int,
    prefix: bool,
    timeout: float | None,
    stop: Any,
    retry_timeout: float,
) -> AsyncIterator[WatchEvent]:
    from .watch import STOP_POLL, WAIT_SLICE, WatchState, backoff, unavailable

    backend = session.store.backend
    loop = asyncio.get_running_loop()
    state = WatchState.open(target, since, prefix, 0)
    await session.store.writes.check(session, "watch", state.target)
    quiet_since = loop.time()  # the idle timeout counts from the last change
    failed_at: float | None = None
    attempt = 0

    async def retry(exc: BackendUnavailable) -> None:
        nonlocal failed_at, attempt
        if exc.template == CLOSED:
            raise exc
        moment = loop.time()
        if failed_at is None:
            failed_at = moment
        waited = moment - failed_at
        if waited >= retry_timeout:
            raise unavailable(state, exc, waited) from exc
        await asyncio.sleep(min(backoff(attempt), retry_timeout - waited))
        attempt += 1

    while True:
        if stop is not None and stop.is_set():
            return
        # One pass: the history page by page from the position, each page's
        # changes handed out before the next is read.
        try:
            head = await backend.revision()
        except BackendUnavailable as exc:
            await retry(exc)
            continue
        state.begin()
        done = False
        while not done:
            try:
                after, key, limit = state.read_args()
                page = [ev async for ev in backend.history(after, key, limit)]
                changes, done = state.take(page)
                records = {k: await backend.get(k) for k in state.keys_to_read(changes)}
                state.read(records)
            except BackendUnavailable as exc:
                await retry(exc)
                break
            failed_at, attempt = None, 0
            for ev in changes:
                event = state.event(ev, records)
                if event.kind == "write" and not event.superseded:
                    # Handing out a value is a read (happened-before, based_on).
                    rec = records[event.key]
                    assert rec is not None
                    session.clock.observe(rec.key, rec.lamport, rec.clock)
                    session.seen.remember(rec.key, rec.version, event.value)
                yield event
            state.handed_out()
            if changes:
                quiet_since = loop.time()
        if not done:
            continue  # the store went away: a new pass, from the position
        state.caught_up(head)
        read_at = loop.time()
        # Wait for a change (a hint), then read the history again; read it
        # again anyway every WAIT_SLICE, in case a hint was lost.
        while True:
            if stop is not None and stop.is_set():
                return
            moment = loop.time()
            left = read_at + WAIT_SLICE - moment
            if left <= 0:
                break
            if timeout is not None:
                idle = timeout - (moment - quiet_since)
                if idle <= 0:
                    return
                left = min(left, idle)
            if stop is not None:
                left = min(left, STOP_POLL)
            keys, prefixes, mark = state.wait_args()
            try:
                if await backend.wait(keys, prefixes, mark, left) > mark:
                    break
            except BackendUnavailable as exc:
                await retry(exc)
                break
