"""Leases, queues and branches on the async face.

The strategies run on the session's sync twin in worker threads (the
store's thread-offload backend); these classes give their results the
async face: ``async with`` for leases, ``await request.wait()``, ``await
branch.write(...)``. Cancellation is safe: a cancelled :func:`acquire`
leaves the line (and releases a lease granted meanwhile); a cancelled
``wait`` stops waiting within a second and holds nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from . import params
from .errors import LeaseLost, Timeout, call
from .records import Doc, Value
from .strategies import lease as lease_mod
from .strategies import queue as queue_mod
from .strategies.branch import Branch, Merge
from .strategies.lease import Lease, LeaseSet
from .strategies.queue import Request

if TYPE_CHECKING:
    from ._session_async import AsyncSession
    from ._store_async import AsyncStore

T = TypeVar("T")

WAIT_CHUNK = 1.0
"""Longest one thread-offloaded wait of :meth:`AsyncRequest.wait` lasts: a
cancelled wait frees its worker thread within this many seconds."""


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


# --- queue ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AsyncRequest(Request):
    """A change request (``session.submit``), on the async face.

    A :class:`accord.Request` (same fields, compares equal to it), whose
    :meth:`wait` and :meth:`refresh` are awaited.
    """

    _astore: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, store: AsyncStore, request: Request) -> AsyncRequest:
        values = {f.name: getattr(request, f.name) for f in fields(Request)}
        values["_store"] = store.sync
        return cls(**values, _astore=store)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as the plain Request it is (its store does not travel).
        return self.sync.__reduce__()

    def __eq__(self, other: object) -> bool:
        # Equal to the sync face's Request with the same fields.
        if isinstance(other, Request):
            return bool(self.sync == sync_request(other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.sync)

    @property
    def sync(self) -> Request:
        """This request as an :class:`accord.Request` of the store's sync twin."""
        values = {f.name: getattr(self, f.name) for f in fields(Request)}
        return Request(**values)

    async def refresh(self) -> AsyncRequest:  # type: ignore[override]
        """This request as the store has it now (a new object)."""
        return AsyncRequest.of(self._astore, await asyncio.to_thread(self.sync.refresh))

    async def wait(self, timeout: float = 30) -> AsyncRequest:  # type: ignore[override]
        """Wait until the writer decides; return the decided request.

        Raises :class:`Timeout` if nothing was decided within ``timeout``
        seconds (the request stays pending). Cancelling the wait changes
        nothing in the store; its worker thread is free within a second.
        """
        timeout = params.seconds(timeout, "timeout", example="30")
        store = self._astore
        backend = store.backend
        rkey = queue_mod.request_key(self.id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            since = await backend.revision()
            current = await asyncio.to_thread(queue_mod.get_request, store.sync, self.id)
            if not current.pending:
                return AsyncRequest.of(store, current)
            left = deadline - loop.time()
            if left <= 0:
                raise Timeout(
                    f"Request {self.id} for {self.key} is still pending after "
                    f"{timeout:g}s: its writer has not decided it yet. Wait again, or check "
                    f"that a writer serves {self.key}: its writer takes requests with "
                    f"{call('session.requests', self.key)}.",
                    request=self.id,
                    key=self.key,
                )
            await backend.wait([rkey], [], since, min(left, WAIT_CHUNK))


def sync_request(request: AsyncRequest | Request) -> Request:
    """The :class:`accord.Request` behind ``request``."""
    if isinstance(request, AsyncRequest):
        return request.sync
    return request


class Requests:
    """``session.requests(key)`` on the async face: pending requests, oldest first.

    ``await`` it to claim the writer role at once (the sync face claims at
    the call), or iterate it with ``async for`` (claims at the first step).
    Each step runs in a worker thread.
    """

    def __init__(self, session: AsyncSession, key: str, **kwargs: Any) -> None:
        self._session = session
        self._key = key
        self._kwargs = kwargs
        self._steps: Iterator[Request] | None = None

    async def _claim(self) -> Requests:
        if self._steps is None:
            twin = self._session.sync
            self._steps = await asyncio.to_thread(
                lambda: iter(twin.requests(self._key, **self._kwargs))
            )
        return self

    def __await__(self) -> Generator[Any, None, Requests]:
        return self._claim().__await__()

    def __aiter__(self) -> Requests:
        return self

    async def __anext__(self) -> AsyncRequest:
        await self._claim()
        steps = self._steps
        assert steps is not None
        item = await asyncio.to_thread(next, steps, None)
        if item is None:
            raise StopAsyncIteration
        return AsyncRequest.of(self._session.store, item)


# --- branches ------------------------------------------------------------------------


class AsyncBranch:
    """A private copy of a key (``session.fork``), on the async face."""

    def __init__(self, store: AsyncStore, branch: Branch) -> None:
        self.store = store
        self.sync = branch

    def __repr__(self) -> str:
        return "Async" + repr(self.sync)

    def __getattr__(self, name: str) -> Any:
        # id, key, base_version, agent, kind, record_key: the sync Branch's.
        if name.startswith("_") or name in ("read", "write", "discard", "status"):
            raise AttributeError(name)
        return getattr(self.sync, name)

    async def status(self) -> str:
        """``open``, ``merged`` or ``discarded``, as the store has it now."""
        return await asyncio.to_thread(lambda: self.sync.status)

    async def read(self) -> Value:
        """The branch's value."""
        return await asyncio.to_thread(self.sync.read)

    async def write(self, value: Value) -> None:
        """Replace the branch's value (see :meth:`accord.Branch.write`)."""
        await asyncio.to_thread(self.sync.write, value)

    async def discard(self) -> None:
        """Close the branch without merging it."""
        await asyncio.to_thread(self.sync.discard)


class AsyncMerge:
    """The result of ``await store.merge(...)``: commit it with ``await merge.commit()``."""

    def __init__(self, store: AsyncStore, merge: Merge) -> None:
        self.store = store
        self.sync = merge

    def __repr__(self) -> str:
        return "Async" + repr(self.sync)

    def __getattr__(self, name: str) -> Any:
        # value, conflicts, clean, report(), base_version, ...: the sync Merge's.
        if name.startswith("_") or name == "commit":
            raise AttributeError(name)
        return getattr(self.sync, name)

    async def commit(self, agent: str | None = None) -> Doc:
        """Write the merged value and close the merged branches, atomically."""
        return await asyncio.to_thread(self.sync.commit, agent)
