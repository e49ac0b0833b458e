"""The queue's module functions on a store's face, for the conformance suite.

On the sync face they are :mod:`accord.strategies.queue`'s; on the async
faces the async source's (:mod:`accord.strategies._queue_async`), awaited
on the test's loop, so ``get_request``, ``writer_of`` and ``pending`` run
natively there too (also on a store with no sync twin).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import accord
from accord.strategies import _queue_async, queue
from tests.aio_driver import Loop, Proxy, unwrap, wrap


class _OnLoop:
    """The async source's module functions (``get_request``, ``writer_of``,
    ``pending``), called as the sync module's are and awaited on the test's
    loop: on the async faces the module functions are the native ones."""

    def __init__(self, loop: Loop) -> None:
        self._loop = loop

    def __getattr__(self, name: str) -> Callable[..., object]:
        fn = getattr(_queue_async, name)

        def call(*args: object) -> object:
            return wrap(self._loop.run(fn(*unwrap(args))), self._loop)

        return call


def queue_of(store: accord.Store) -> Any:
    """The queue module of ``store``'s face."""
    if isinstance(store, Proxy):
        return _OnLoop(store._loop)
    return queue
