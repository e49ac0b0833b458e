"""accord for asyncio: ``store = await accord.aio.open(url)``.

The same API as :mod:`accord`, awaited: :class:`AsyncStore`,
:class:`AsyncSession` (every public method of :class:`accord.Session`),
:class:`AsyncLease` (``async with session.lease(key) as lease:``),
:class:`AsyncRequest` (``await request.wait()``), :class:`AsyncBranch`; the
same names, the same errors (:mod:`accord`'s), the same semantics.

The store and session I/O are generated from one source with the sync face
(``src/accord/_store_async.py``, ``_session_async.py``,
``_writepath_async.py``; the queue and branches in
``strategies/_queue_async.py`` and ``strategies/_branch_async.py``; see
docs/async.md). Every backend runs through a
thread-offload adapter (:class:`accord.backends.thread.ThreadBackend`):
sqlite3 and the memory backend block, so their calls run in worker threads
and the event loop never waits on them.

Cancellation: a cancelled ``acquire`` leaves the line and holds nothing; a
cancelled ``wait`` changes nothing; a cancelled write either committed or
did not (the call runs to its end in its worker thread), and repeating it
with the same ``idempotency_key`` tells which, without writing twice.
"""

from __future__ import annotations

from .._aio_strategies import AsyncLease, AsyncLeaseSet
from .._session_async import AsyncSession
from .._store_async import AsyncStore, open
from ..strategies._branch_async import AsyncBranch, AsyncMerge
from ..strategies._queue_async import AsyncRequest

__all__ = [
    "AsyncBranch",
    "AsyncLease",
    "AsyncLeaseSet",
    "AsyncMerge",
    "AsyncRequest",
    "AsyncSession",
    "AsyncStore",
    "open",
]
