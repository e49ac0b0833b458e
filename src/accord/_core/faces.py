# WARNING: generated from src/accord/_core/_faces_async.py by tools/async_to_sync.py; do not edit.
# Edit the async source and run: .venv/bin/python tools/async_to_sync.py
"""What the strategies need of a session and a store, as Protocols.

The strategies (queue, branches) are recipes over the core: they take the
session and store they act through as these Protocols, never the
:class:`~accord.session.Session` and :class:`~accord.store.Store` classes
(which sit above them and bind them), so the import goes one way. Both
faces satisfy them: the async source names the async face's types; the sync
module generated from it names the sync face's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..backends.base import Backend
from ..clock import AgentClock
from ..records import Doc
from .write import Seen

if TYPE_CHECKING:
    # Named for types only: the write path imports the core to run.
    from .._writepath import WritePath

__all__ = ["SessionLike", "StoreLike"]


class StoreLike(Protocol):
    """A store as a strategy uses it: its backend, its write path and its policy."""

    @property
    def backend(self) -> Backend: ...

    @property
    def writes(self) -> WritePath: ...

    @property
    def policy(self) -> Any: ...

    @property
    def max_value_size(self) -> int: ...

    def session(self, agent: str) -> SessionLike: ...


class SessionLike(Protocol):
    """A session as a strategy uses it: the agent, its clocks and memory, its reads."""

    agent: str
    clock: AgentClock
    seen: Seen

    @property
    def store(self) -> StoreLike: ...

    def seen_version(self, key: str) -> int | None: ...

    def read(self, key: str) -> Doc: ...

    def _tick(self) -> tuple[int, dict[str, int]]:
        """The agent's clocks, moved on for one event (the first resumes them
        from the store)."""
        ...
