"""Drive accord.aio from sync code: the conformance suite's async face.

The suite is written against the sync API. ``face="async"`` hands it an
:class:`AsyncStore` behind :class:`Proxy`: every call goes to the async
object, runs on an event loop in a private thread, and its result comes back
wrapped the same way (an ``AsyncLease`` is used as a ``Lease``, an async
iterator as an iterator). So each conformance test runs, unchanged, on both
faces; nothing here decides an outcome, it only waits for the loop's answer.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from accord import aio
from accord._aio_strategies import Leasing
from accord.backends.thread import ThreadBackend

T = TypeVar("T")

TIMEOUT = 120.0
"""Longest any one call may take on the loop (a hung call fails, not hangs)."""

_WRAPPED = (
    aio.AsyncStore,
    aio.AsyncSession,
    aio.AsyncLease,
    aio.AsyncLeaseSet,
    aio.AsyncRequest,
    aio.AsyncBranch,
    aio.AsyncMerge,
    Leasing,
)
# Properties of the sync face that read the store; the async face has
# coroutine methods of the same name.
_AWAITED_PROPERTIES = {"held", "status"}


class Loop:
    """An event loop running in a daemon thread, for one test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self.thread:
            # A call made from code the loop is running (an update() fn that
            # writes, to make the update lose a round): the loop is blocked
            # in that code, as a sync caller would be, so the call runs to
            # its end on a loop of its own.
            with ThreadPoolExecutor(1) as nested:
                return nested.submit(asyncio.run, coro).result(TIMEOUT)
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT)

    def close(self) -> None:
        # As asyncio.run does: the calls still running (a test that left an
        # acquire waiting in another thread) are cancelled and run to their
        # end first, so none is destroyed pending with the loop.
        asyncio.run_coroutine_threadsafe(_cancel_pending(), self.loop).result(TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            # A call another thread scheduled after the first sweep (it was
            # still calling in): cancel it too, or it is destroyed pending
            # with the loop and warns in whichever later test collects it.
            self.loop.run_until_complete(_cancel_pending())
        self.loop.close()


async def _cancel_pending() -> None:
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=TIMEOUT)


def wrap(value: Any, loop: Loop) -> Any:
    if isinstance(value, _WRAPPED):
        return _proxy_type(type(value))(value, loop)
    if isinstance(value, list):
        return [wrap(v, loop) for v in value]
    if isinstance(value, AsyncIterator):
        return SyncIterator(value, loop)
    return value


def unwrap(value: Any) -> Any:
    if isinstance(value, Proxy):
        return value._target
    # Shallow: a list of leases or branches; values (which may even
    # contain themselves) pass untouched.
    if isinstance(value, (list, tuple)) and any(isinstance(v, Proxy) for v in value):
        return type(value)(unwrap(v) for v in value)
    return value


class SyncIterator:
    def __init__(self, source: AsyncIterator[Any], loop: Loop) -> None:
        self._source = source
        self._loop = loop

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        async def step() -> tuple[bool, Any]:
            try:
                return True, await self._source.__anext__()
            except StopAsyncIteration:
                return False, None

        more, value = self._loop.run(step())
        if not more:
            raise StopIteration
        return wrap(value, self._loop)

    def close(self) -> None:
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            self._loop.run(aclose())


class Proxy:
    """An async accord object, used through the sync API."""

    def __init__(self, target: Any, loop: Loop) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_loop", loop)

    def __repr__(self) -> str:
        return repr(self._target)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance() sees the async object's class
        return type(self._target)

    def __reduce__(self) -> Any:
        return self._target.__reduce__()

    def __getattr__(self, name: str) -> Any:
        target = self._target
        if name in ("backend", "writes", "sync") and _twinless(target):
            # The sync API's view of a store with no twin does not exist:
            # the test is one for a face with a twin (NotNativeYet).
            store = target if isinstance(target, aio.AsyncStore) else target.store
            store.needs_twin(f"the sync view ({name})")
        # A test hands a session or store to the strategies' module
        # functions (lease_mod.acquire(session, ...)), which are the sync
        # API: there they act as the sync twin, whose backend, write path
        # and store take sync calls.
        if isinstance(target, aio.AsyncStore) and name in ("backend", "writes"):
            return getattr(target.sync, name)
        if isinstance(target, aio.AsyncSession) and name == "store" and not _twinless(target):
            return target.sync.store
        if name == "sync":
            return target.sync
        attr = getattr(target, name)
        if name in _AWAITED_PROPERTIES and inspect.iscoroutinefunction(attr):
            return wrap(self._loop.run(attr()), self._loop)
        if not callable(attr) or isinstance(attr, type):
            return wrap(attr, self._loop)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*unwrap(args), **{k: unwrap(v) for k, v in kwargs.items()})
            if inspect.isawaitable(result) and not isinstance(result, _WRAPPED):
                result = self._loop.run(_awaited(result))
            return wrap(result, self._loop)

        return call

    def __setattr__(self, name: str, value: Any) -> None:
        target = self._target
        if isinstance(target, aio.AsyncStore) and name == "backend":
            # A test swaps in a sync backend of its own (one that fails on
            # purpose) and then puts the one it read back: the async store
            # gets it through the thread adapter, and its own back after.
            original = self.__dict__.setdefault("_original_backend", target.backend)
            target.backend = original if value is original.sync else ThreadBackend(value)
            return
        setattr(target, name, unwrap(value))

    def __eq__(self, other: object) -> bool:
        return bool(self._target == unwrap(other))

    def __hash__(self) -> int:
        return hash(self._target)

    def __enter__(self) -> Any:
        entered = self._loop.run(_awaited(self._target.__aenter__()))
        return wrap(entered, self._loop)

    def __exit__(self, *exc: Any) -> Any:
        return self._loop.run(_awaited(self._target.__aexit__(*exc)))

    def __iter__(self) -> Iterator[Any]:
        return iter(wrap(list(self._target), self._loop))

    def __len__(self) -> int:
        return len(self._target)

    def __contains__(self, item: object) -> bool:
        return item in self._target

    def __getitem__(self, key: Any) -> Any:
        return wrap(self._target[key], self._loop)


_TYPES: dict[type, type] = {}


def _proxy_type(cls: type) -> type:
    """Proxy, with the dataclass fields of ``cls`` (so dataclasses.replace works)."""
    if cls not in _TYPES:
        extra = {}
        if hasattr(cls, "__dataclass_fields__"):
            extra["__dataclass_fields__"] = cls.__dataclass_fields__
        _TYPES[cls] = type(f"Proxy{cls.__name__}", (Proxy,), extra)
    return _TYPES[cls]


def _twinless(target: Any) -> bool:
    if isinstance(target, aio.AsyncStore):
        return target.sync is None
    if isinstance(target, aio.AsyncSession):
        return target.store.sync is None
    return False


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
